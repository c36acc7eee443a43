"""Boundary tone match (vidswap.composite.tone): a smooth L* offset fitted on the ring inside the paste boundary."""

import pytest
import torch
from kornia.color import lab_to_rgb, rgb_to_lab

from vidswap.composite.tone import ToneParams, boundary_ring_weight, fit_offset, polynomial_basis, tone_match


def _disc(size: int = 96, radius: float = 36.0) -> torch.Tensor:
    """(1, 1, size, size) a filled disc, 1 inside."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    c = (size - 1) / 2
    return (((y - c) ** 2 + (x - c) ** 2) <= radius ** 2).float()[None, None]


def test_polynomial_basis_monomials():
    b = polynomial_basis(3, 5, 2)
    assert b.shape == (6, 3, 5)
    assert torch.equal(b[0], torch.ones(3, 5))
    assert torch.equal(b[1, 0], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]))  # x
    assert torch.equal(b[2, :, 0], torch.tensor([-1.0, 0.0, 1.0]))  # y
    assert torch.equal(b[3], b[1] * b[1]) and torch.equal(b[4], b[1] * b[2]) and torch.equal(b[5], b[2] * b[2])
    assert polynomial_basis(4, 4, 0).shape == (1, 4, 4) and polynomial_basis(4, 4, 1).shape == (3, 4, 4)
    with pytest.raises(ValueError):
        polynomial_basis(4, 4, 3)


def test_fit_recovers_a_quadratic_from_a_ring_and_extends_it_inside():
    basis = polynomial_basis(64, 64, 2)
    coef = torch.tensor([3.0, -2.0, 1.5, 4.0, -1.0, 2.5])
    truth = (coef[:, None, None] * basis).sum(0)[None, None]
    g = torch.Generator().manual_seed(1)
    noise = torch.rand(1, 1, 64, 64, generator=g) * 40.0
    disc = _disc(64, 24.0)
    ring = boundary_ring_weight(disc, torch.tensor([50.0]), ToneParams(ring=0.1))
    # garbage where the ring is 0: the fit must not see it
    data = truth * ring + noise * (1 - ring)
    fitted = fit_offset(data, ring, 2, ridge=0.0)
    assert torch.allclose(fitted, truth, atol=1e-3)
    # a constant (order 0) is the ring's weighted mean
    const = fit_offset(data, ring, 0, ridge=0.0)
    assert torch.allclose(const, (truth * ring).sum() / ring.sum() * torch.ones_like(const), atol=1e-4)


def _hair_arc(ring: torch.Tensor, share: float = 0.2) -> torch.Tensor:
    """(1, 1, H, W) the ring's pixels on the left ``share`` of its columns: a strand of hair along one side."""
    cols = torch.nonzero(ring[0, 0].any(0))[:, 0]
    cut = int(cols.min()) + share * float(cols.max() - cols.min())
    x = torch.arange(ring.shape[-1], dtype=torch.float32)[None, None, None]
    return ring * (x <= cut).float()


def test_the_robust_fit_leaves_out_a_minority_of_the_ring_that_is_not_skin():
    disc = _disc(96, 36.0)
    ring = boundary_ring_weight(disc, torch.tensor([100.0]), ToneParams(ring=0.08))
    hair = _hair_arc(ring)
    share = float(hair.sum() / ring.sum())
    assert 0.05 < share < 0.3
    data = 5.0 - 35.0 * hair  # the skin 5 L* darker in the plate; a strand of dark hair 30 L* darker than the face
    plain = fit_offset(data, ring, 0, ridge=0.0)
    assert abs(float(plain[0, 0, 0, 0]) - (5.0 - 35.0 * share)) < 1e-3  # least squares: pulled toward the hair
    robust = fit_offset(data, ring, 0, ridge=0.0, robust=3.0)
    assert torch.allclose(robust, torch.full_like(robust, 5.0), atol=1e-4)  # the skin's offset, the strand left out
    # a plane under the hair as well: the robust quadratic fit recovers it exactly where the skin is
    basis = polynomial_basis(96, 96, 2)
    plane = 2.0 + 3.0 * basis[1] - 1.5 * basis[2]
    fitted = fit_offset(plane[None, None] - 35.0 * hair, ring, 2, ridge=0.0, robust=3.0)
    assert torch.allclose(fitted, plane[None, None], atol=1e-3)


def test_the_robust_fit_of_a_ring_without_outliers_is_the_least_squares_one():
    basis = polynomial_basis(64, 64, 2)
    truth = ((torch.tensor([3.0, -2.0, 1.5, 4.0, -1.0, 2.5])[:, None, None] * basis).sum(0))[None, None]
    ring = boundary_ring_weight(_disc(64, 24.0), torch.tensor([50.0]), ToneParams(ring=0.1))
    g = torch.Generator().manual_seed(3)
    data = truth + 0.2 * torch.randn(1, 1, 64, 64, generator=g)  # noise within the least spread: nothing rejected
    assert torch.allclose(fit_offset(data, ring, 2, ridge=0.0, robust=3.0), fit_offset(data, ring, 2, ridge=0.0),
                          atol=0.05)
    assert fit_offset(data, torch.zeros_like(ring), 2, robust=3.0).abs().max() == 0.0  # no weight: 0
    assert ToneParams().robust == 4.685 and ToneParams().rounds == 3


def test_tone_match_meets_the_skin_not_the_hair_on_the_ring():
    g = torch.Generator().manual_seed(4)
    skin = 0.45 + 0.02 * torch.rand(1, 3, 96, 96, generator=g)
    plate_lab = rgb_to_lab(skin)
    alpha = _disc()
    ring = boundary_ring_weight(alpha, torch.tensor([72.0]), ToneParams())
    hair = _hair_arc(ring, 0.15)
    plate = lab_to_rgb(torch.cat([plate_lab[:, :1] - 30.0 * hair, plate_lab[:, 1:]], 1)).clamp(0, 1)
    render = lab_to_rgb(torch.cat([plate_lab[:, :1] + 6.0, plate_lab[:, 1:]], 1)).clamp(0, 1)  # 6 L* lighter
    inside = (alpha[0, 0] > 0) & (hair[0, 0] == 0)
    for params in (ToneParams(order=0, ridge=0.0), ToneParams(order=0, ridge=0.0, robust=0.0)):
        out_l = rgb_to_lab(tone_match(render, plate, alpha, torch.tensor([72.0]), params))[:, :1]
        step = float((out_l - plate_lab[:, :1])[0, 0][inside].mean())
        share = float(hair.sum() / (ring * (alpha > 0)).sum())
        want = 0.0 if params.robust else -30.0 * share  # least squares: the face darker by the hair's share of it
        assert abs(step - want) < 0.3, (params, step, want)


def test_ring_is_the_inner_band_of_the_boundary():
    disc = _disc(96, 36.0)
    ring = boundary_ring_weight(disc, torch.tensor([100.0]), ToneParams(ring=0.05))  # 5 px wide
    assert float(ring[disc == 0].abs().max()) == 0.0
    assert float(ring[0, 0, 47, 47 - 36 + 2]) == 1.0  # 2 px inside the edge
    assert float(ring[0, 0, 47, 47]) == 0.0  # the centre
    valid = torch.zeros_like(disc)
    assert float(boundary_ring_weight(disc, torch.tensor([100.0]), ToneParams(ring=0.05), valid).sum()) == 0.0


def test_tone_match_removes_a_lightness_step_and_keeps_the_detail():
    g = torch.Generator().manual_seed(0)
    plate = 0.35 + 0.1 * torch.rand(1, 3, 96, 96, generator=g)
    lab = rgb_to_lab(plate)
    y, x = torch.meshgrid(torch.linspace(-1, 1, 96), torch.linspace(-1, 1, 96), indexing="ij")
    step = 6.0 + 3.0 * x  # the face 3..9 L* lighter than the plate, more so on the right
    detail = 8.0 * (torch.rand(1, 1, 96, 96, generator=g) - 0.5)  # the face's own features
    render = lab_to_rgb(torch.cat([lab[:, :1] + step + detail, lab[:, 1:]], 1)).clamp(0, 1)
    alpha = _disc()
    # measured only on the ring, where the features are cancelled by the fit's averaging of plate - render
    out = tone_match(render, plate, alpha, torch.tensor([72.0]), ToneParams(ring=0.15, order=1, ridge=0.0))
    out_l, ren_l, plate_l = rgb_to_lab(out)[:, :1], rgb_to_lab(render)[:, :1], lab[:, :1]
    inside = alpha[0, 0] > 0
    # the smooth step is gone (what is left is the features' own mean over the ring, a fraction of an L* level)
    residual = (out_l - plate_l - detail)[0, 0][inside]
    assert float(residual.mean().abs()) < 0.5 and float(residual.std()) < 0.3
    # the change is smooth: the features (render - its smooth offset) are exactly kept
    change = (out_l - ren_l)[0, 0]
    assert float((change - change[inside].mean())[inside].abs().max()) < 4.0  # a plane of slope ~3 L* over the face
    assert torch.equal(out[..., :5, :5], render[..., :5, :5])  # outside the face's window: the render as it is
    assert torch.allclose(rgb_to_lab(out)[:, 1:], rgb_to_lab(render)[:, 1:], atol=0.05)  # a*, b* stay


def test_identical_images_and_empty_alpha_are_left_as_they_are():
    g = torch.Generator().manual_seed(2)
    plate = torch.rand(2, 3, 96, 96, generator=g) * 0.8 + 0.1
    alpha = _disc().expand(2, -1, -1, -1)
    size = torch.tensor([72.0, 72.0])
    assert torch.allclose(tone_match(plate, plate, alpha, size), plate, atol=1e-4)
    render = torch.rand(2, 3, 96, 96, generator=g)
    assert torch.equal(tone_match(render, plate, torch.zeros_like(alpha), size), render)
    # a frame with too small a ring is left exactly; the other is matched
    tiny = torch.cat([alpha[:1], torch.zeros_like(alpha[:1])])
    out = tone_match(render, plate, tiny, size)
    assert torch.equal(out[1], render[1]) and not torch.equal(out[0], render[0])


def test_config_switch_reaches_the_compositor():
    from vidswap.composite.compositor import CompositeConfig, composite_params

    assert composite_params(CompositeConfig(), 0).tone is None
    # on by default for the relit appearance, as a constant per frame (order 0)
    assert composite_params(CompositeConfig(), 0, relit=True).tone == ToneParams(order=0)
    assert composite_params(CompositeConfig(tone_match="auto"), 0).tone is None
    assert composite_params(CompositeConfig(tone_order=2), 0, relit=True).tone == ToneParams(order=2)
    assert composite_params(CompositeConfig(tone_match=False), 0, relit=True).tone is None
    assert composite_params(CompositeConfig(tone_match=True), 0).tone == ToneParams()  # quadratic for other cores
    assert composite_params(CompositeConfig(tone_match=True, tone_order=1), 0).tone == ToneParams(order=1)


def test_yaml_values_of_the_switch(tmp_path):
    from vidswap.config import load_config
    from vidswap.errors import ConfigError

    for text, want in (("auto", "auto"), ("on", True), ("false", False)):
        path = tmp_path / f"{text}.yaml"
        path.write_text(f"composite:\n  tone_match: {text}\n")
        assert load_config(path).composite.tone_match == want
    for text, want in (("auto", "auto"), ("0", 0), ("2", 2)):
        path = tmp_path / f"order{text}.yaml"
        path.write_text(f"composite:\n  tone_order: {text}\n")
        assert load_config(path).composite.tone_order == want
    for bad in ("tone_match: sometimes", "tone_order: 3", "tone_order: true", "tone_order: flat"):
        path = tmp_path / "bad.yaml"
        path.write_text(f"composite:\n  {bad}\n")
        with pytest.raises(ConfigError):
            load_config(path)


def test_lightness_shift_in_f_space_is_kornias_lab_round_trip():
    """tone_match moves L* by adding d / 116 to fx, fy and fz (a*, b* held): the same as kornia's L*a*b* round trip."""
    from vidswap.composite.lab import f_to_rgb, lightness_f, rgb_to_f

    g = torch.Generator().manual_seed(3)
    image = torch.rand(2, 3, 17, 23, generator=g)
    shift = 12.0 * (torch.rand(2, 1, 17, 23, generator=g) - 0.5)
    lab = rgb_to_lab(image)
    expected = lab_to_rgb(torch.cat([lab[:, :1] + shift, lab[:, 1:]], 1), clip=False)
    f = rgb_to_f(image)
    assert torch.allclose(116.0 * f[:, 1:2] - 16.0, lab[:, :1], atol=1e-4)
    assert torch.allclose(lightness_f(image), f[:, 1:2], atol=1e-6)
    assert torch.allclose(f_to_rgb(f + shift / 116.0), expected, atol=2e-5)
