"""Edge matching (vidswap.composite.edge): the plate's colour and fine detail along the paste boundary."""

import torch

from vidswap.composite.edge import EdgeParams, boundary_weight, edge_match
from vidswap.composite.filters import gaussian_blur


def _disc(size: int = 96, radius: float = 36.0) -> torch.Tensor:
    """(1, 1, size, size) a filled disc, 1 inside."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    c = (size - 1) / 2
    return (((y - c) ** 2 + (x - c) ** 2) <= radius ** 2).float()[None, None]


def _band_outside(size: int = 96, radius: float = 36.0, width: float = 8.0) -> torch.Tensor:
    """(size, size) bool: the band of ``width`` px just outside the disc (where a feathered paste still shows)."""
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                          indexing="ij")
    c = (size - 1) / 2
    r = ((y - c) ** 2 + (x - c) ** 2).sqrt()
    return (r > radius) & (r <= radius + width)


def test_boundary_weight_is_one_outside_and_zero_deep_inside():
    inside = _disc()
    w = boundary_weight(inside, torch.tensor([10.0]))
    assert torch.equal(w[inside == 0], torch.ones_like(w[inside == 0]))
    centre = w[0, 0, 40:56, 40:56]  # > 28 px (> 1.5 reach) from the boundary
    assert float(centre.max()) < 1e-6
    assert 0.2 < float(w[0, 0, 47, 47 - 36 + 4]) < 1.0  # 4 px inside: partly


def test_identical_render_and_empty_alpha_are_left_exactly():
    g = torch.Generator().manual_seed(0)
    plate = torch.rand(2, 3, 96, 96, generator=g)
    alpha = _disc().expand(2, -1, -1, -1)
    size = torch.tensor([72.0, 72.0])
    assert torch.equal(edge_match(plate, plate, alpha, size), plate)
    render = torch.rand(2, 3, 96, 96, generator=g)
    assert torch.equal(edge_match(render, plate, torch.zeros_like(alpha), size), render)


def test_constant_colour_step_is_removed_at_the_boundary_and_kept_inside():
    plate = torch.full((1, 3, 96, 96), 0.5)
    plate[:, 0] = 0.6
    step = torch.tensor([0.1, -0.05, 0.02])[None, :, None, None]
    render = plate + step
    alpha = _disc()
    params = EdgeParams(colour_reach=0.15, detail_reach=0.0)
    out = edge_match(render, plate, alpha, torch.tensor([72.0]), params)
    # on the boundary and just outside the render is the plate's colour (the ring's mismatch is exactly -step) ...
    outside = _band_outside()
    # (to within the low-passed remainder of the corrected ramp that the plate's detail is laid on: < 5 % of it)
    assert torch.allclose(out[0][:, outside], plate[0][:, outside], atol=0.005)
    assert torch.allclose(out[0, :, 47, 47 - 36], plate[0, :, 47, 47 - 36], atol=0.005)
    # ... and deep inside it is the render's
    assert torch.allclose(out[0, :, 44:52, 44:52], render[0, :, 44:52, 44:52], atol=1e-6)


def test_fine_detail_at_the_boundary_is_the_plates():
    y = torch.arange(128, dtype=torch.float32)
    stripes = 0.1 * torch.sign(torch.sin(y * 3.14159 / 2.0))  # a 4-px period: all fine detail
    plate = torch.full((1, 3, 128, 128), 0.5)
    render = plate + stripes[None, None, None, :]  # the source's fine detail, e.g. a glasses arm's edges
    alpha = _disc(128)
    params = EdgeParams(colour_reach=0.0, detail_reach=0.1, detail_sigma=0.03)
    out = edge_match(render, plate, alpha, torch.tensor([72.0]), params)
    outside = _band_outside(128)
    # just outside the boundary no fine detail of the render is left: what differs from the plate there is smooth
    # (the colour membrane's estimate of the ring's mean), its band above the detail sigma < 10 % of the stripes
    resid = out - plate
    fine = resid - gaussian_blur(resid, 0.03 * 72.0)
    assert float(fine[0][:, outside].abs().max()) < 0.01
    assert float((render - plate)[0][:, outside].abs().max()) > 0.099  # (there were stripes to remove)
    # deep inside the stripes are the render's
    assert torch.allclose(out[0, :, 60:68, 60:68], render[0, :, 60:68, 60:68], atol=1e-6)


def test_config_switch_reaches_the_compositor():
    from vidswap.composite.compositor import CompositeConfig, composite_params

    assert composite_params(CompositeConfig(), 0).edge is None
    assert composite_params(CompositeConfig(edge_match=True), 0).edge == EdgeParams()


# ----------------------------------------------------------------------------------- two-band feather


def _band_setup(size: int = 96):
    from vidswap.composite.masks import feather_mask

    face = _disc(size)
    fs = torch.tensor([72.0])
    alpha = feather_mask(face, fs, 0.02, 0.06)
    return face, fs, alpha


def test_band_feather_ramps_a_colour_step_over_the_wide_feather():
    from vidswap.composite.edge import BandParams, band_feather
    from vidswap.composite.masks import feather_mask

    face, fs, alpha = _band_setup()
    plate = torch.full((1, 3, 96, 96), 0.5)
    step = torch.tensor([0.1, -0.05, 0.02])[None, :, None, None]
    render = plate + step
    params = BandParams(feather=0.25, sigma=0.03)
    out = band_feather(render, plate, alpha, face, fs, 0.02, params)
    pasted = plate + alpha * (out - plate)
    # a constant difference is all low band (its normalised blur over the support is itself): the paste
    # shows it under min(wide alpha, alpha)
    a_low = torch.minimum(feather_mask(face, fs, 0.02, 0.25), alpha)
    assert torch.allclose(pasted, plate + a_low * step, atol=1e-6)
    assert float((alpha - a_low).max()) > 0.3  # (the wide ramp is lower than the paste's near the boundary)
    # exactly the render where the paste alpha is 0 (the plate there after the paste) or the wide ramp reached it
    assert torch.equal(out[..., alpha[0, 0] == 0], render[..., alpha[0, 0] == 0])
    deep = (a_low >= alpha)[0, 0]
    assert torch.equal(out[..., deep], render[..., deep])


def test_band_feather_keeps_fine_detail_under_the_paste_alpha():
    from vidswap.composite.edge import BandParams, band_feather

    face, fs, alpha = _band_setup(128)
    y = torch.arange(128, dtype=torch.float32)
    stripes = 0.1 * torch.sign(torch.sin(y * 3.14159 / 2.0))  # a 4-px period: no low band
    plate = torch.full((1, 3, 128, 128), 0.5)
    render = plate + stripes[None, None, None, :]
    out = band_feather(render, plate, alpha, face, fs, 0.02, BandParams(feather=0.25, sigma=0.05))
    # the stripes' blur (sigma 3.6 px) is ~0 away from the support's edge, and a partial window's imbalance at
    # most a tenth of them near it: the pasted detail is the render's to within that
    shown = alpha * (out - render)
    assert float(shown.abs().max()) < 0.01
    assert float(shown[..., alpha[0, 0] > 0].abs().mean()) < 0.0005


def test_band_config_reaches_the_compositor():
    from vidswap.composite.compositor import CompositeConfig, composite_params
    from vidswap.composite.edge import BandParams

    from vidswap.composite.compositor import ERODE, RELIT_BAND_FEATHER, RELIT_ERODE

    assert composite_params(CompositeConfig(band_feather=0.0), 0, relit=True).band is None
    assert composite_params(CompositeConfig(band_feather=0.2, band_sigma=0.05), 0).band == BandParams(0.2, 0.05)
    # auto (the default): the relit appearance only, with the face reaching the outline (no erosion)
    assert composite_params(CompositeConfig(), 0).band is None
    assert composite_params(CompositeConfig(), 0, relit=True).band == BandParams(RELIT_BAND_FEATHER, 0.03)
    assert composite_params(CompositeConfig(), 0).mask.erosion == ERODE == 0.02
    assert composite_params(CompositeConfig(), 0, relit=True).mask.erosion == RELIT_ERODE == 0.0
    assert composite_params(CompositeConfig(erode=0.05), 0, relit=True).mask.erosion == 0.05


def test_band_yaml_values(tmp_path):
    import pytest

    from vidswap.config import load_config
    from vidswap.errors import ConfigError

    path = tmp_path / "ok.yaml"
    path.write_text("composite:\n  band_feather: 0.15\n  erode: auto\n  band_sigma: 0.05\n")
    cfg = load_config(path).composite
    assert (cfg.band_feather, cfg.erode, cfg.band_sigma) == (0.15, "auto", 0.05)
    for bad in ("band_feather: 0.5", "erode: sometimes", "band_sigma: 0"):
        path.write_text(f"composite:\n  {bad}\n")
        with pytest.raises(ConfigError):
            load_config(path)


def test_band_step_and_the_downsampled_low_band_match_the_full_size_one():
    """The low band's step: the largest (<= max_step) leaving min_sigma px of sigma; below 2 x min_sigma, 1 (the
    crop's own pixels, as before). At steps 2 and 4 the pasted band stays within 2e-3 of the full-size one on a
    face whose render differs from the plate by a shading ramp plus a colour step."""
    from vidswap.composite.edge import BandParams, _low_band, band_feather, band_step
    p = BandParams()
    assert [band_step(s, p) for s in (0.5, 3.9, 7.9, 8.0, 12.0, 15.9, 16.0, 40.0)] == [1, 1, 1, 2, 3, 3, 4, 4]
    h = w = 256
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    support = (((yy - 128) / 100) ** 2 + ((xx - 128) / 80) ** 2 <= 1).float()[None, None]
    d = torch.stack([0.1 * xx / w, 0.05 * (yy > 140).float(), 0.02 * torch.ones(h, w)])[None] * support
    full = _low_band(d, support, 16.0, 1) * support
    for step in (2, 4):
        err = ((_low_band(d, support, 16.0, step) - full) * support).abs().max().item()
        assert err < 2e-3, (step, err)
    assert ((_low_band(d, support, 16.0, 4) - full) * support).abs().max().item() > 1e-6  # it is a real change
    # the compositor's entry: a small face (sigma < 2 x min_sigma) is computed at its own pixels
    render, plate = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    face = torch.zeros(1, 1, 64, 64)
    face[..., 16:48, 16:48] = 1.0
    out = band_feather(render, plate, face, face, torch.tensor([40.0]), 0.0, BandParams(sigma=0.03))
    assert torch.equal(out[..., :16, :], render[..., :16, :])


def test_band_feather_leaves_an_occluder_out_of_the_low_band():
    """What is behind an occluder (``visible`` 0: a hand, whose plate colours differ from the render's face) does
    not reach the low band: the visible face gets the same result whatever the plate holds behind the hand, and
    the same as with the occluded part of the paste support removed; ``visible`` all ones is no occluder."""
    from vidswap.composite.edge import BandParams, band_feather
    g = torch.Generator().manual_seed(7)
    h = w = 96
    render = torch.rand(1, 3, h, w, generator=g) * 0.2 + 0.5
    plate = torch.rand(1, 3, h, w, generator=g) * 0.2 + 0.3
    face = torch.zeros(1, 1, h, w)
    face[..., 16:80, 20:76] = 1.0
    size = torch.tensor([60.0])
    visible = torch.ones(1, 1, h, w)
    visible[..., 50:, 40:60] = 0.0  # a hand over the lower middle of the face
    hand = plate.clone()
    hand[..., 50:, 40:60] = 0.95  # a bright hand
    p = BandParams(feather=0.2, sigma=0.05)
    a = band_feather(render, plate, face, face, size, 0.0, p, visible=visible)
    b = band_feather(render, hand, face, face, size, 0.0, p, visible=visible)
    seen = (visible > 0) & (face > 0)
    assert torch.allclose(a * seen, b * seen, atol=1e-6)
    without = band_feather(render, hand, face, face, size, 0.0, p)  # the hand counted: the face around it moves
    assert ((without - b).abs() * seen).amax() > 1e-2
    assert torch.equal(band_feather(render, plate, face, face, size, 0.0, p, visible=torch.ones(1, 1, h, w)),
                       band_feather(render, plate, face, face, size, 0.0, p))
