"""A frowning source photo's brows put at rest (vidswap.swap.geometric.brow_rest, ``relit_brow_rest``): exact
geometry, the skin between the brows, the core's use of it on the real frowning portrait."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vidswap.faces.pose import canonical_face, decompose
from vidswap.faces.topology import load_topology
from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore
from vidswap.swap.geometric.brow_rest import BROW_REACH, brow_region_weights, glabella_region, rest_brows
from vidswap.swap.geometric.core import GeometricIdentity

from appearance_helpers import plain_track_model


@pytest.fixture(scope="module")
def topology():
    return load_topology()


def _brows(topology) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(topology.regions["left_brow"]), np.asarray(topology.regions["right_brow"])


def test_brow_region_weights_are_one_on_the_brows_and_zero_on_the_eyes_and_beyond_the_reach(topology):
    face = canonical_face().float()
    left, right = _brows(topology)
    eyes = np.r_[topology.regions["left_eye"], topology.regions["right_eye"]]
    w = brow_region_weights(face, np.r_[left, right], eyes)
    assert w.shape == (478,)
    assert torch.equal(w[np.r_[left, right]], torch.ones(len(left) + len(right)))
    assert float(w[eyes].abs().max()) == 0.0
    far = torch.cdist(face, face[np.r_[left, right]]).amin(1) >= BROW_REACH
    assert int(far.sum()) > 300 and float(w[far].abs().max()) == 0.0


def test_rest_brows_takes_the_neutrals_form_about_each_brows_own_place(topology):
    """Amount 0: the shape itself. A neutral that is the shape moved as a whole: nothing changes (the brows keep
    their place). A neutral whose brows are drawn apart and raised at their inner ends: at amount 1 each brow is
    the neutral's brow moved onto the shape's brow's mean position, exactly; at 0.5 halfway."""
    shape = canonical_face().float()
    left, right = _brows(topology)
    weights = torch.zeros(478)
    weights[np.r_[left, right]] = 1.0
    assert rest_brows(shape, shape + 1.0, weights, 0.0, left, right) is shape
    moved = rest_brows(shape, shape + torch.tensor([0.1, -0.2, 0.05]), weights, 1.0, left, right)
    assert torch.allclose(moved, shape, atol=1e-6)
    neutral = shape.clone()
    for side in (left, right):
        x = neutral[side, 0]
        inner = (1.0 - (x.abs() - x.abs().min()) / (x.abs().max() - x.abs().min()))  # 1 at the inner end
        neutral[side, 0] = x * 1.1
        neutral[side, 1] -= 0.08 * inner  # y down: the inner ends up
    rested = rest_brows(shape, neutral, weights, 1.0, left, right)
    for side in (left, right):
        assert torch.allclose(rested[side].mean(0), shape[side].mean(0), atol=1e-6)
        assert torch.allclose(rested[side] - rested[side].mean(0), neutral[side] - neutral[side].mean(0), atol=1e-6)
    half = rest_brows(shape, neutral, weights, 0.5, left, right)
    assert torch.allclose(half, (shape + rested) / 2, atol=1e-6)
    others = weights == 0
    assert torch.equal(rested[others], shape[others])


def test_the_glabella_lies_between_the_brows_on_the_skin():
    """Brows over rows 20-23, columns 8-25 and 38-55 of a 64-texel face: the region covers columns 25-38 (the
    gap, columns 26-37, widened by a texel each side) from row 17 to 24, none on the brows or outside the skin;
    brows joined over the middle, or none, give no region."""
    U = 64
    brows = torch.zeros(1, 1, U, U)
    brows[..., 20:24, 8:26] = 1.0
    brows[..., 20:24, 38:56] = 1.0
    skin = torch.ones(1, 1, U, U)
    region = glabella_region(brows, skin, soft=0.0)
    inside = region[0, 0] > 0
    assert bool(inside[17:25, 27:37].all())
    assert not bool(inside[:17].any()) and not bool(inside[25:].any())
    assert not bool(inside[:, :24].any()) and not bool(inside[:, 40:].any())
    assert float(region[brows > 0.5].max()) == 0.0
    assert float(glabella_region(brows, torch.zeros_like(skin)).abs().max()) == 0.0
    joined = brows.clone()
    joined[..., 20:24, 20:44] = 1.0
    assert float(glabella_region(joined, skin).abs().max()) == 0.0
    assert float(glabella_region(torch.zeros_like(brows), skin).abs().max()) == 0.0


def test_the_skin_between_the_brows_takes_the_tracks_detail():
    """A dark crease between the brows in the source albedo, a track whose own skin there is plain: at amount 1
    the crease takes the tone around it (1) times the track's detail (plain); outside the region the albedo is
    exactly its own; amount 0 leaves the albedo itself."""
    from vidswap.swap.geometric.relit import RelitRenderer

    renderer = RelitRenderer(load_topology())
    U, u = 128, 64
    _, masks = renderer.space(U)
    region = glabella_region(masks["brows"], masks["skin"])
    crease = region > 0.99
    assert int(crease.sum()) > 20
    albedo = torch.ones(1, 4, U, U)
    albedo[:, :3][crease.expand(1, 3, U, U)] = 0.5
    model = plain_track_model(u)
    landmarks = (canonical_face().float() * 40 + 64)[None]
    assert renderer.glabella_at_rest(albedo, model, landmarks, 0.0) is albedo
    out = renderer.glabella_at_rest(albedo, model, landmarks, 1.0)
    outside = ~(region[0, 0] > 0)
    assert torch.equal(out[:, :, outside], albedo[:, :, outside])
    assert float((out[:, :3][crease.expand(1, 3, U, U)] - 1.0).abs().max()) < 0.05  # was 0.5
    assert torch.equal(out[:, 3:], albedo[:, 3:])


def _gap(shape: torch.Tensor) -> float:
    """The brows' inner ends' distance apart over the inner eye corners' (MediaPipe 55 / 285, 133 / 362)."""
    return float((shape[55, 0] - shape[285, 0]).abs() / (shape[133, 0] - shape[362, 0]).abs())


def test_the_relit_core_puts_a_frowning_photos_brows_at_the_tracks_rest(media, detector, mesh):
    """portrait_m7 (disgust: brows drawn together, their inner ends 0.63 of the inner eye corners' distance apart;
    the canonical face 0.74) against a track whose neutral is the canonical face: with ``relit_brow_rest: 1`` its
    brows take the neutral's distance apart (within 0.01) and keep their height; by default the identity is the
    photo's, untouched."""
    from vidswap.io import read_image

    img = read_image(media("portrait_m7"))
    points = mesh([img], [detector([img])[0]])[0][0].points
    shape = decompose(torch.from_numpy(points)[None].float()).x_c_obs[0]
    neutral = canonical_face().float()
    assert _gap(shape) < 0.68 and _gap(neutral) > 0.72
    identity = GeometricIdentity(images=torch.zeros(1, 3, 8, 8), landmarks=torch.zeros(1, 478, 3), canonical=shape)
    track = SimpleNamespace(neutral=neutral.numpy())
    core = GeometricSwapCore(GeometricSwapConfig(appearance="relit", relit_brow_rest=1.0))
    rested = core._brows_at_rest(identity, track).canonical
    assert abs(_gap(rested) - _gap(neutral)) < 0.01
    for side in (core.regions["left_brow"], core.regions["right_brow"]):
        assert float(rested[side, 1].mean()) == pytest.approx(float(shape[side, 1].mean()), abs=1e-5)
    assert torch.equal(rested[core.brow_weights == 0], shape[core.brow_weights == 0])
    default = GeometricSwapCore(GeometricSwapConfig(appearance="relit"))
    assert default.config.relit_brow_rest == 0.0 and default._brows_at_rest(identity, track) is identity


def test_the_option_is_range_checked():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="relit_brow_rest must be in"):
            GeometricSwapConfig(relit_brow_rest=bad)
    GeometricSwapConfig(relit_brow_rest=1.0)
