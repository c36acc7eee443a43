"""Grain: measured on the plate around the face, re-applied to the swapped area to match, deterministically."""

import pytest
import torch

from vidswap.composite.grain import (
    GrainStats,
    apply_grain,
    grain_seed,
    highpass,
    measure_grain,
    measure_plate_grain,
    ring_mask,
    synthesize_grain,
)
from vidswap.composite.paste import paste_crop

S = 200


def grainy_plate(sigma, seed=0, std=(0.02, 0.015, 0.025)):
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    smooth = torch.stack([0.3 + 0.3 * xx / S, 0.4 + 0.2 * yy / S, 0.5 - 0.2 * xx / S])[None]
    truth = GrainStats(
        std=torch.tensor([std]),
        corr=torch.tensor([[[1.0, 0.5, 0.3], [0.5, 1.0, 0.4], [0.3, 0.4, 1.0]]]),
        sigma=torch.tensor([sigma]),
        valid=torch.tensor([True]),
    )
    grain = synthesize_grain(truth, (S, S), [seed])
    r2 = (xx - 100) ** 2 + (yy - 100) ** 2
    face = (r2 < 50**2).float()[None, None]
    ring = ((r2 >= 55**2) & (r2 < 95**2)).float()[None, None]
    return smooth, smooth + grain, face, ring, truth


@pytest.mark.parametrize("sigma", [0.0, 0.8, 1.5])
def test_measure_grain_recovers_synthetic_grain(sigma):
    _, plate, _, ring, truth = grainy_plate(sigma)
    st = measure_grain(plate, ring)
    assert torch.allclose(st.std, truth.std, rtol=0.1)
    assert st.sigma.item() == pytest.approx(sigma, abs=0.3)
    assert torch.allclose(st.corr, truth.corr, atol=0.08)
    assert bool(st.valid[0])


def test_reapplied_grain_matches_plate_grain_within_20_percent():
    smooth, plate, face, ring, _ = grainy_plate(1.0, seed=3)
    measured = measure_grain(plate, ring)
    clean_face = torch.where(face > 0, smooth, plate)  # a generated face has no grain
    assert highpass(clean_face)[0][:, face[0, 0] > 0].std() < 0.002
    out = apply_grain(clean_face, face, measured, [grain_seed(7, 1001)])
    got = measure_grain(out, face)
    ratio = got.std / measured.std
    assert ((ratio - 1).abs() < 0.2).all(), ratio
    assert got.sigma.item() == pytest.approx(measured.sigma.item(), abs=0.3)
    outside = (face == 0).expand_as(out)
    assert torch.equal(out[outside], clean_face[outside])


def test_texture_in_the_ring_does_not_inflate_the_estimate():
    _, plate, _, ring, truth = grainy_plate(0.8, seed=4)
    textured = plate.clone()
    textured[..., :, 100:] += 0.3  # a hard background edge crossing the ring
    textured[..., 20:24, :] -= 0.2  # and a thin line
    st = measure_grain(textured, ring)
    assert torch.allclose(st.std, truth.std, rtol=0.2)


def test_ring_mask_lies_outside_the_face():
    _, _, face, _, _ = grainy_plate(0.0)
    ring = ring_mask(face, 100.0, inner=0.05, outer=0.2)
    assert (ring * face).sum() == 0
    ys, xs = torch.nonzero(ring[0, 0], as_tuple=True)
    radius = ((xs - 100.0) ** 2 + (ys - 100.0) ** 2).sqrt()
    assert radius.min() > 50 + 3 and radius.max() < 50 + 20 * 1.45  # octagonal dilation


def test_grain_is_deterministic_per_seed():
    _, _, _, _, truth = grainy_plate(1.0)
    a = synthesize_grain(truth, (32, 32), [grain_seed(1, 1001, 0)])
    b = synthesize_grain(truth, (32, 32), [grain_seed(1, 1001, 0)])
    c = synthesize_grain(truth, (32, 32), [grain_seed(1, 1002, 0)])
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert grain_seed(1, 1001, 0) != grain_seed(1, 1001, 1) != grain_seed(2, 1001, 0)
    assert 0 <= grain_seed(2**70, -5, 3) < 2**63


def test_paste_with_grain_on_the_plate():
    smooth, plate, face, ring, _ = grainy_plate(1.0, seed=5)
    # Crop space = a 2x downscaled copy of the plate; crop_to_plate scales by 2.
    m = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    ring_crop = torch.nn.functional.interpolate(ring, scale_factor=0.5, mode="nearest")
    measured = measure_plate_grain(plate, ring_crop, m)
    assert torch.allclose(measured.std, torch.tensor([[0.02, 0.015, 0.025]]), rtol=0.15)
    crop = torch.nn.functional.interpolate(smooth, scale_factor=0.5, mode="bilinear", align_corners=False)
    alpha = torch.nn.functional.interpolate(face, scale_factor=0.5, mode="nearest")
    out, a_plate = paste_crop(plate, crop, alpha, m, grain=measured, grain_seeds=[11], return_alpha=True)
    core = (a_plate == 1.0) & (torch.nn.functional.max_pool2d(1 - a_plate, 9, 1, 4) == 0)
    got = measure_grain(out, core.float())
    assert (((got.std / measured.std) - 1).abs() < 0.2).all()
    zero = (a_plate == 0).expand_as(out)
    assert torch.equal(out[zero], plate[zero])
    again = paste_crop(plate, crop, alpha, m, grain=measured, grain_seeds=[11])
    assert torch.equal(out, again)
    with pytest.raises(ValueError):
        paste_crop(plate, crop, alpha, m, grain=measured)
