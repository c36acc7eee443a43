"""Texture space: layout symmetry, unwrap -> render round trip of a face with known albedo and shading."""

from __future__ import annotations

import math

import pytest
import torch

from vidswap.appearance.encoding import linear_to_srgb, linear_to_srgb_drawn, srgb_to_linear, srgb_to_linear_within
from vidswap.appearance.lighting import sh_shading
from vidswap.appearance.source import mirror_fill, texel_density
from vidswap.appearance.texture_space import (build_texture_space, mirror_texture, region_masks,
                                              render_from_texture, texel_normals, unwrap)
from vidswap.faces.pose import canonical_face, matrix_from_euler
from vidswap.faces.topology import load_topology
from vidswap.appearance.texture import texture_confidence


@pytest.fixture(scope="module")
def topo():
    return load_topology()


@pytest.fixture(scope="module")
def space(topo):
    return build_texture_space(canonical_face(), torch.as_tensor(topo.triangles), 128)


def posed(yaw: float = 0.0, pitch: float = 0.0, scale: float = 60.0, centre=(100.0, 110.0)) -> torch.Tensor:
    """The canonical face rotated and scaled into a 200x220 image: (1, 478, 3) pixels (z in the same scale)."""
    R = matrix_from_euler(torch.tensor([yaw]), torch.tensor([pitch]), torch.tensor([0.0]))[0]
    x = canonical_face().float() @ R.T * scale
    return (x + torch.tensor([centre[0], centre[1], 0.0]))[None]


def smooth_albedo(U: int) -> torch.Tensor:
    """A smooth known albedo texture (1, 3, U, U): slow sinusoids around a skin colour."""
    y, x = torch.meshgrid(torch.linspace(0, 1, U), torch.linspace(0, 1, U), indexing="ij")
    base = torch.tensor([0.55, 0.40, 0.32])[:, None, None]
    return (base * (1 + 0.25 * torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * y)))[None]


def test_srgb_round_trip_and_known_values():
    x = torch.linspace(0, 1, 1001)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6)
    assert float(srgb_to_linear(torch.tensor(0.5))) == pytest.approx(0.2140411, abs=1e-6)
    assert float(srgb_to_linear(torch.tensor(0.04045))) == pytest.approx(0.04045 / 12.92, abs=1e-9)


def test_box_restricted_conversions_equal_the_whole_ones():
    """A render that is 0 where it drew nothing encodes as the whole tensor would, bit for bit (nothing drawn: all
    the encoding of 0); a linearisation within a box is the whole one there and 0 elsewhere."""
    g = torch.Generator().manual_seed(2)
    render = torch.zeros(2, 3, 40, 50)
    render[0, :, 5:20, 7:30] = torch.rand(3, 15, 23, generator=g) * 1.2 - 0.05  # above 1 and below 0 clamp
    render[1, 1, 30:33, 40:41] = 0.5
    drawn = (render != 0).any(1, keepdim=True).float()
    assert torch.equal(linear_to_srgb_drawn(render, drawn), linear_to_srgb(render))
    nothing = torch.zeros(1, 3, 8, 8)
    assert torch.equal(linear_to_srgb_drawn(nothing, nothing[:, :1]), linear_to_srgb(nothing))
    codes = torch.rand(2, 3, 40, 50, generator=g)
    within = srgb_to_linear_within(codes, slice(3, 30), slice(10, 41))
    assert torch.equal(within[..., 3:30, 10:41], srgb_to_linear(codes)[..., 3:30, 10:41])
    within[..., 3:30, 10:41] = 0.0
    assert float(within.abs().max()) == 0.0


def test_layout_is_mirror_symmetric(space, topo):
    """The mirrored vertex sits at the flipped texel, so mirror fill is a flip of the texture."""
    uv = space.uv
    mirror = torch.as_tensor(topo.mirror)
    flipped = torch.stack([space.size - 1 - uv[mirror, 0], uv[mirror, 1]], 1)
    assert torch.allclose(flipped[:468], uv[:468], atol=1e-3)
    assert uv.min() >= 0 and uv.max() <= space.size - 1


def test_unwrap_render_round_trip_recovers_known_albedo(space):
    """A face with known albedo and SH shading rendered into an image, unwrapped, divided by the known shading
    gives the albedo back on every well-seen texel (bilinear resampling twice: ~1e-3)."""
    verts = posed(yaw=15.0)
    albedo = smooth_albedo(space.size)
    normals = texel_normals(space, verts)
    coeffs = torch.tensor([[0.9, 0.1, -0.5, 0.2, 0.0, 0.05, -0.1, 0.0, 0.02]]).repeat(3, 1)[None]
    shading = sh_shading(normals, coeffs)
    image, alpha = render_from_texture(space, albedo * shading, verts, (220, 200), supersample=1)
    vis = texture_confidence(verts, space.triangles, image_size=(220, 200))
    tex, weight = unwrap(space, image, verts, vis)
    good = (weight > 0.95) & (shading.amin(1, keepdim=True) > 0.2)
    # texels whose bilinear footprint reaches the silhouette mix in the background: stay a few texels inside
    inner = -torch.nn.functional.max_pool2d(-good.float(), 7, 1, 3) > 0.5
    assert inner.sum() > 2000
    recovered = tex / shading
    err = (recovered - albedo).abs()[inner.expand(1, 3, -1, -1)]
    assert float(err.mean()) < 5e-4 and float(err.max()) < 5e-3


def test_unwrap_weight_follows_visibility(space):
    """A face turned 60 degrees: the far cheek is unseen (weight ~0), the near cheek fully seen."""
    verts = posed(yaw=60.0)
    vis = texture_confidence(verts, space.triangles, image_size=(220, 200))
    image = torch.rand(1, 3, 220, 200)
    _, weight = unwrap(space, image, verts, vis)
    masks = region_masks(space, load_topology().regions)
    face = masks["face"][0, 0] > 0.5
    U = space.size
    left = weight[0, 0][:, : U // 4][face[:, : U // 4]]
    right = weight[0, 0][:, 3 * U // 4:][face[:, 3 * U // 4:]]
    seen, hidden = (left, right) if left.mean() > right.mean() else (right, left)
    assert float(seen.mean()) > 0.5 and float(hidden.mean()) < 0.1


def test_mirror_fill_takes_the_other_side():
    tex = torch.zeros(1, 1, 4, 4)
    tex[..., :2] = 1.0  # left half known = 1
    w = torch.zeros(1, 1, 4, 4)
    w[..., :2] = 1.0
    filled, w2 = mirror_fill(tex, w)
    assert torch.equal(filled, torch.ones_like(tex))
    assert torch.equal(w2, torch.ones_like(w))
    assert torch.equal(mirror_texture(tex)[..., 2:], tex[..., :2].flip(-1))


def test_texel_density_scales_with_the_face(space):
    small = texel_density(space, posed(scale=30.0))
    big = texel_density(space, posed(scale=90.0))
    inside = space.covered[0, 0] > 0.5
    ratio = (big[0, 0][inside] / small[0, 0][inside].clamp(min=1e-6)).median()
    assert float(ratio) == pytest.approx(3.0, rel=0.02)


def test_edge_blur_measures_a_known_blur():
    """A square's edges blurred by a known Gaussian: the re-blur estimate recovers the sigma (the pixel grid's own
    blur adds ~0.7 px in quadrature, so small sigmas read high); a render is blurred up to the plate's."""
    from vidswap.appearance.sharpness import edge_blur, match_blur
    from vidswap.composite.filters import gaussian_blur

    square = torch.zeros(1, 3, 128, 128)
    square[..., 32:96, 32:96] = 1.0
    everywhere = torch.ones(1, 1, 128, 128)
    for sigma in (2.0, 3.0):
        assert float(edge_blur(gaussian_blur(square, sigma), everywhere)[0]) == pytest.approx(sigma, rel=0.1)
    sharp = gaussian_blur(square, 1.0)
    est = lambda img: float(edge_blur(img, everywhere)[0])  # noqa: E731
    matched = match_blur(sharp, torch.tensor([est(sharp)]), torch.tensor([est(gaussian_blur(square, 3.0))]))
    assert est(matched) == pytest.approx(est(gaussian_blur(square, 3.0)), rel=0.1)
    assert torch.equal(match_blur(sharp, torch.tensor([3.0]), torch.tensor([1.0])), sharp)  # never sharpened
    assert torch.isnan(edge_blur(square, torch.zeros(1, 1, 128, 128)))[0]  # no edges: unknown


def test_match_blur_window_equals_the_whole_crop_blur():
    """match_blur blurs only the window around the render's non-zero pixels plus the blur radius: the whole
    crop's blur (per-item sigmas, one item not blurred, a face near the border, an empty render) up to float
    rounding, which on OpenCV depends on where a row's vectorised and scalar parts fall (22 of 69120 values,
    1.2e-10, here)."""
    from vidswap.appearance.sharpness import match_blur
    from vidswap.composite.filters import gaussian_blur

    g = torch.Generator().manual_seed(5)
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(80.0), indexing="ij")
    inside = ((((yy - 40) / 30) ** 2 + ((xx - 44) / 22) ** 2) < 1).float()
    near_border = ((((yy - 85) / 20) ** 2 + ((xx - 8) / 15) ** 2) < 1).float()
    render = torch.rand(3, 3, 96, 80, generator=g) * torch.stack([inside, near_border, inside])[:, None]
    own, plate = torch.tensor([1.0, 0.8, 2.0]), torch.tensor([2.5, 3.0, 1.5])  # the third: never sharpened
    extra = (plate ** 2 - own ** 2).clamp(min=0.0).sqrt()
    whole = gaussian_blur(render, extra.clamp(min=1e-3))
    want = torch.where(extra[:, None, None, None] >= 0.05, whole, render)
    got = match_blur(render, own, plate)
    assert torch.equal(got == 0, want == 0)  # nothing beyond the window's reach is touched
    assert float((got - want).abs().max()) <= 1e-8
    assert torch.equal(match_blur(torch.zeros(1, 3, 16, 16), own[:1], plate[:1]), torch.zeros(1, 3, 16, 16))


def test_match_blur_of_a_frame_does_not_depend_on_the_rest_of_the_batch():
    """Each frame's window is its own: a frame blurred beside others (one whose face reaches the border, which
    widened a window the batch shared and moved where OpenCV's vectorised and scalar parts fall) is bit for bit
    the frame blurred alone. Farm chunks batch frames differently from one pass."""
    from vidswap.appearance.sharpness import match_blur

    g = torch.Generator().manual_seed(9)
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(80.0), indexing="ij")
    inside = ((((yy - 40) / 30) ** 2 + ((xx - 44) / 22) ** 2) < 1).float()
    near_border = ((((yy - 85) / 20) ** 2 + ((xx - 8) / 15) ** 2) < 1).float()
    render = torch.rand(3, 3, 96, 80, generator=g) * torch.stack([inside, near_border, inside])[:, None]
    own, plate = torch.tensor([1.0, 0.8, 1.2]), torch.tensor([2.5, 3.0, 2.9])
    batch = match_blur(render, own, plate)
    for b in range(3):
        assert torch.equal(batch[b:b + 1], match_blur(render[b:b + 1], own[b:b + 1], plate[b:b + 1]))


def test_channel_length_and_the_gradient_magnitude_equal_torch_norm_to_float_rounding():
    """texture_space.channel_length and sharpness._gradient compute what torch's ``norm`` over the channel axis does
    (its CPU kernel is 13-80x slower there): within 2 float32 ulps of it, and the gradient's magnitude exactly the
    float64 hypot rounded to float32."""
    from vidswap.appearance.sharpness import _gradient
    from vidswap.appearance.texture_space import channel_length
    from kornia.filters import spatial_gradient

    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 3, 17, 23, generator=g)
    want = x.norm(dim=1, keepdim=True)
    got = channel_length(x)
    assert got.shape == want.shape and torch.allclose(got, want, rtol=2.5e-7, atol=0)
    lum = torch.rand(2, 1, 31, 29, generator=g)
    comp = spatial_gradient(lum, mode="sobel", normalized=True).double()
    exact = (comp[:, :, 0] ** 2 + comp[:, :, 1] ** 2).sqrt().float()
    assert torch.equal(_gradient(lum), exact)
    assert torch.allclose(_gradient(lum), spatial_gradient(lum, mode="sobel", normalized=True).norm(dim=2),
                          rtol=2.5e-7, atol=0)
