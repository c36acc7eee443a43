"""The compositor follows its inputs' device: CUDA results match CPU results (skipped without a GPU)."""

import pytest
import torch

from test_composite_compositor import scene

from vidswap.composite.compositor import CompositeParams, composite_track
from vidswap.composite.paste import PasteParams

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("mode", ["alpha", "laplacian", "poisson"])
def test_cuda_matches_cpu(mode):
    _, plate, target, lm, regions, m, _ = scene(frames=2)
    render = (target * 0.85 + 0.05).clamp(0, 1)
    params = CompositeParams(paste=PasteParams(mode=mode))
    cpu = composite_track(plate, target, render, lm, regions, m, [7, 8], params=params)
    args = [t.cuda() for t in (plate, target, render, lm)]
    gpu = composite_track(*args, regions, m.cuda(), [7, 8], params=params)
    assert gpu.frames.is_cuda and gpu.alpha.is_cuda
    assert (gpu.alpha.cpu() - cpu.alpha).abs().max() < 1e-3
    assert (gpu.frames.cpu() - cpu.frames).abs().max() < 2e-3
    untouched = (cpu.frames == plate) & (gpu.frames.cpu() == plate)
    assert untouched.float().mean() > 0.6
