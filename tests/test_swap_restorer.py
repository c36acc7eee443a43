"""Restorers (GFPGAN / GPEN-BFR ``restorer_512`` and CodeFormer ``codeformer_512``) inside a learned swapper, on
stand-ins: the restorer maps its [-1, 1] input x to ``0.5 x`` (CodeFormer: ``weight * x``), i.e. a [0, 1] colour c
to ``0.5 c + 0.25``. Bilinear warps reproduce linear ramps exactly, so on a ramp crop the swapper-crop -> ffhq_512 ->
swapper-crop round trip is exact and the blend ``c + strength * (0.5 c + 0.25 - c)`` can be checked to 1e-3
(float32 warp coordinates).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onnx_standins as standin
from test_swap_inswapper import batch_of, umeyama
from vidswap.errors import ConfigError, ModelError
from vidswap.faces.align import TemplateCrop
from vidswap.models.registry import add_model
from vidswap.swap import build_core
from vidswap.swap.learned import LearnedIdentity
from vidswap.swap.learned.restore import FFHQ_512, crop_to_ffhq
from vidswap.swap.registry import CoreContext

NAMES = ("inswapper_128", "arcface_w600k_r50", "gfpgan_1.4", "codeformer", "gpen_bfr_512")


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSWAP_HOME", str(tmp_path / "home"))
    man = standin.inswapper_manifest(tmp_path, NAMES)
    add_model(man, "gfpgan_1.4", standin.restorer(tmp_path / "g.onnx", 0.5))
    add_model(man, "codeformer", standin.codeformer(tmp_path / "c.onnx"))
    return man


def core_with(manifest, **config):
    return build_core("inswapper", config, CoreContext(models=manifest, accept_noncommercial=frozenset(NAMES)))


def ramps(n: int, size: int) -> torch.Tensor:
    """(n, 3, size, size) linear ramps in [0.1, 0.9] (a different direction per channel and item)."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")
    out = []
    for i in range(n):
        chans = [(0.1 + 0.8 * (x / (size - 1))), (0.1 + 0.8 * (y / (size - 1))),
                 (0.1 + 0.4 * (x + y) / (size - 1) * (1 - 0.3 * i))]
        out.append(torch.stack(chans))
    return torch.stack(out).float()


def zero_identity() -> LearnedIdentity:
    return LearnedIdentity(vector=torch.zeros(512), arcface=torch.zeros(512))  # the stand-in then copies the crop


def test_ffhq_frame_is_the_similarity_between_the_templates():
    crop = TemplateCrop.arcface(128)
    m = crop_to_ffhq(crop).numpy()
    # the least-squares similarity of the two five-point templates (independent SVD Umeyama)
    np.testing.assert_allclose(m, umeyama(np.array(crop.template), np.array(FFHQ_512) * 512), atol=1e-6)
    assert 3.0 < np.sqrt(abs(np.linalg.det(m[:, :2]))) < 4.0  # 128 -> 512 with a looser framing


@pytest.mark.parametrize("model, extra", [("gfpgan_1.4", {}), ("codeformer", {"restorer_fidelity": 0.5})])
@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_restorer_blends_with_strength_exactly_where_its_frame_covers_the_crop(manifest, model, extra, strength):
    core = core_with(manifest, restorer=model, restorer_strength=strength, **extra)
    crops = ramps(2, 128)
    result = core.swap(batch_of(crops), zero_identity()).crops
    expected = crops + strength * (0.5 * crops + 0.25 - crops)
    # the FFHQ frame (looser than ArcFace 128) covers the whole crop: every pixel is restored and blended
    err = (result - expected).abs().amax(1)
    assert float(err.max()) < 1e-3  # float32 warp coordinates: a quarter of an 8-bit level


def test_restorer_leaves_what_its_frame_does_not_cover(manifest):
    core = core_with(manifest, restorer="gfpgan_1.4", restorer_strength=1.0)
    # a crop framed twice as loose as ArcFace 128: the FFHQ 512 frame covers only its middle
    loose = TemplateCrop(size=128, template=tuple((0.5 * x + 32, 0.5 * y + 32) for x, y in core.crop.template))
    crops = ramps(1, 128)
    result = core.restorer(crops, loose)
    m = crop_to_ffhq(loose).numpy()
    yy, xx = np.mgrid[0:128, 0:128]
    fx, fy = m[0, 0] * xx + m[0, 1] * yy + m[0, 2], m[1, 0] * xx + m[1, 1] * yy + m[1, 2]
    inside = torch.from_numpy((fx > 12) & (fx < 499) & (fy > 12) & (fy < 499))
    outside = torch.from_numpy((fx < -2) | (fx > 513) | (fy < -2) | (fy > 513))
    assert inside.sum() > 3000 and outside.sum() > 3000
    assert float((result - (0.5 * crops + 0.25)).abs().amax(1)[:, inside].max()) < 1e-3
    assert torch.equal(result[:, :, outside], crops[:, :, outside])

def test_restorer_strength_zero_is_the_swap_and_bad_settings_are_config_errors(manifest):
    crops = ramps(1, 128)
    assert torch.equal(core_with(manifest, restorer="gfpgan_1.4", restorer_strength=0.0)
                       .swap(batch_of(crops), zero_identity()).crops, crops)
    with pytest.raises(ConfigError, match="strength and fidelity must be in"):
        core_with(manifest, restorer="gfpgan_1.4", restorer_strength=1.5)
    with pytest.raises(ModelError, match="has the arcface_112 signature .identity., not the restorer one expected"):
        core_with(manifest, restorer="arcface_w600k_r50")
    with pytest.raises(ModelError, match="run: vidswap models add gpen_bfr_512 /path/to/gpen_bfr_512.onnx .download gpen_bfr_512.onnx from https://github.com/facefusion/"):
        core_with(manifest, restorer="gpen_bfr_512")  # configured but not supplied
