"""The relit render's brows: a source whose brows are faint against the plate actor's takes the track's brow detail
(on its own tone), in proportion to how faint; dark-browed sources, and sources with a kept frame of glasses over
the brows, are left exactly as they are. Synthetic texture-space layers with exact answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vidswap.appearance.relight import RelightParams
from vidswap.appearance.skin_tone import SkinToneParams
from vidswap.appearance.track import TrackAppearance
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import load_topology
from vidswap.swap.geometric.relit import RelitRenderer, brow_contrast, brow_region, faint_brows

U = 128


@pytest.fixture(scope="module")
def renderer():
    return RelitRenderer(load_topology(), relight=RelightParams(brow_borrow=1.0),
                         skin_tone=SkinToneParams(method="none"), eyewear="soften")  # the core's, brows on


def test_brow_contrast_reads_how_much_darker_the_brows_are(renderer):
    _, masks = renderer.space(U)
    albedo = torch.full((1, 3, U, U), 0.8)
    albedo = torch.where(masks["brows"] > 0.5, albedo * 0.3, albedo)
    weight = torch.ones(1, 1, U, U)
    assert brow_contrast(albedo, weight, masks["brows"], masks["skin"]) == pytest.approx(0.7, abs=1e-6)
    assert math.isnan(brow_contrast(albedo, torch.zeros_like(weight), masks["brows"], masks["skin"]))


def test_faint_brows_is_a_smoothstep_of_the_contrast_ratio():
    assert faint_brows(0.1, 0.7, 0.35, 0.6) == 1.0
    assert faint_brows(0.5, 0.7, 0.35, 0.6) == 0.0
    assert faint_brows(0.475 * 0.7, 0.7, 0.35, 0.6) == pytest.approx(0.5, abs=1e-9)
    assert faint_brows(float("nan"), 0.7, 0.35, 0.6) == 0.0
    assert faint_brows(0.1, 0.0, 0.35, 0.6) == 0.0


def _hairs(masks) -> torch.Tensor:
    """(1, U, U) bool: every other column of the brows."""
    cols = (torch.arange(U) % 2 == 0).view(1, 1, U)
    return (masks["brows"][0] > 0.5) & cols


def _model(renderer, brow_level: float) -> TrackAppearance:
    """A track appearance at U: skin 0.5, brows of hairs (every other column) ``brow_level`` x the skin, flat light,
    everything seen."""
    _, masks = renderer.space(U)
    mean = torch.full((3, U, U), 0.5)
    mean = torch.where(_hairs(masks), mean * brow_level, mean)
    lighting = np.zeros((1, 9), np.float32)
    lighting[0, 0] = 1.0 / 0.886227  # SH band 0 only: shading 1 everywhere
    return TrackAppearance(mean=mean.numpy().astype(np.float16), weight=np.ones((1, U, U), np.float16),
                           broad=np.ones((3, U, U), np.float16), lighting=lighting,
                           edge_blur=np.array([float("nan")], np.float32), frames=8)


def _source(renderer, brow_level: float) -> torch.Tensor:
    """A 6-channel source albedo (detail, weight, no eyewear region, the brows' borrow band) at U."""
    _, masks = renderer.space(U)
    detail = torch.ones(1, 3, U, U) * torch.tensor([1.0, 0.9, 0.8]).view(1, 3, 1, 1)
    detail = torch.where(masks["brows"] > 0.5, detail * brow_level, detail)
    band = brow_region(masks["brows"], renderer.relight.brow_borrow_grow)
    return torch.cat([detail, torch.ones(1, 1, U, U), torch.zeros(1, 1, U, U), band], 1)


def test_faint_source_brows_take_the_tracks_and_dark_ones_stay(renderer):
    _, masks = renderer.space(U)
    lm = torch.as_tensor(canonical_face()).float()[None] * 100.0 + 200.0
    brows = _hairs(masks)[None]
    dark_track = _model(renderer, 0.3)
    faint = _source(renderer, 0.95)  # contrast 0.05 against the track's (median over the brows) 0.7: fully faint
    out = renderer.track_albedo(faint, dark_track, lm)
    assert out.shape == (1, 4, U, U)
    ratio = out[:, 1:2][brows] / faint[:, 1:2][brows]
    assert float(ratio.median()) < 0.85  # the brows now carry the track's darkness (its part finer than the band) ...
    far = brow_region(masks["brows"], 0.05) == 0
    assert torch.equal(out[:, :4][far.expand(1, 4, U, U)], faint[:, :4][far.expand(1, 4, U, U)])  # ... nowhere else
    dark = _source(renderer, 0.35)  # contrast 0.65 against 0.7: not faint -> exactly the 4 channels
    assert torch.equal(renderer.track_albedo(dark, dark_track, lm), dark[:, :4])
    off = RelitRenderer(load_topology(), relight=RelightParams(brow_borrow=0.0), skin_tone=SkinToneParams(method="none"),
                        eyewear="soften")
    assert torch.equal(off.track_albedo(faint, dark_track, lm), faint[:, :4])  # brow_borrow 0: nothing borrowed
