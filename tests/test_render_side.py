"""The relit render's side from the plate's measured sharpness (issue 19): exact sizes on synthetic inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore
from vidswap.swap.geometric.core import GeometricIdentity
from vidswap.swap.geometric.relit import downsize_albedo, render_side

from test_swap_relit import _track


def test_render_side_follows_the_plate_blur():
    assert render_side(1024, 3.3, 1.0) == 320  # 1024 / 3.3 = 310.3 -> next multiple of 32
    assert render_side(1024, 4.0, 1.0) == 256
    assert render_side(1024, 2.0, 1.5) == 768
    assert render_side(1024, 20.0, 1.0) == 128  # floor
    assert render_side(100, 20.0, 1.0) == 100  # a crop below the floor stays as it is
    assert render_side(256, 1.0, 1.0) == 256  # sharp enough: full size
    assert render_side(256, 0.6, 1.0) == 256
    assert render_side(384, 1.15, 1.0) == 384  # 352 would save less than a quarter: full size
    assert render_side(1024, 1.3, 1.0) == 1024  # 800 > 3/4 of 1024
    assert render_side(1024, 1.34, 1.0) == 768  # 764.2 -> 768 = 3/4 of 1024
    assert render_side(1024, float("nan"), 1.0) == 1024  # blur unknown
    assert render_side(1024, 3.3, 0.0) == 1024  # off


def test_downsize_albedo_keeps_texel_centres_and_levels():
    U = 512
    ramp = torch.linspace(0.0, 1.0, U)[None, None, None].expand(1, 4, U, U).contiguous()
    small = downsize_albedo(ramp, 160 / 480)
    assert small.shape == (1, 4, 192, 192)
    expect = torch.linspace(0.0, 1.0, 192)
    inner = slice(8, -8)  # away from the blur's replicated border a linear ramp stays the same ramp
    assert torch.allclose(small[0, 0, 50, inner], expect[inner], atol=1e-5)
    const = torch.full((1, 4, U, U), 0.25)
    assert torch.allclose(downsize_albedo(const, 0.3), torch.full((1, 4, 160, 160), 0.25), atol=1e-6)
    assert downsize_albedo(ramp, 0.99) is ramp  # no smaller multiple of 32: unchanged


def _model(edge_blur: float) -> dict:
    u = 128
    return {"mean": np.full((3, u, u), 0.3, np.float16), "weight": np.ones((1, u, u), np.float16),
            "broad": np.ones((3, u, u), np.float16), "lighting": np.array([[1.0] + [0.0] * 8], np.float32),
            "edge_blur": np.array([edge_blur], np.float32), "frames": np.array([3], np.int64)}


@pytest.mark.parametrize("edge_blur, sigma, expect", [(0.01, 1.0, (480, 160)), (0.001, 1.0, None),
                                                      (0.01, 0.0, None), (float("nan"), 1.0, None)])
def test_for_target_picks_the_render_side_from_the_track(edge_blur, sigma, expect):
    """Face height 330 px -> crop 480 with the face 480 / 1.4 px tall in it; relative blur 0.01 -> 3.43 crop px ->
    480 / 3.43 = 140 -> 160 at ``render_sigma`` 1; the albedo (512) shrinks by the same 1/3 -> 192."""
    core = GeometricSwapCore(GeometricSwapConfig(render_sigma=sigma))
    track = _track(scale=100.0, appearance=_model(edge_blur))
    albedo = torch.rand(1, 4, 512, 512)
    identity = GeometricIdentity(images=torch.zeros(1, 3, 8, 8), landmarks=torch.zeros(1, 478, 3),
                                 canonical=torch.zeros(478, 3), albedo=albedo, eye_openness=torch.full((2,), 0.3),
                                 edge_blur=torch.tensor([0.002]))
    out = core.for_target(identity, track)
    assert out.plate_light is not None and out.render_size == expect
    assert out.albedo.shape[-1] == (192 if expect else 512)
    assert GeometricSwapCore._render_side(out, 480, 480) == (expect[1] if expect else None)
    assert GeometricSwapCore._render_side(out, 512, 512) is None  # other crops: at their own size
    assert math.isclose(core.config.render_sigma, sigma)


def test_render_sigma_is_checked():
    with pytest.raises(ValueError, match="render_sigma must be in"):
        GeometricSwapConfig(render_sigma=-1.0)
