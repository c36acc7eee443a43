"""Tests of the swap renderer (vidswap.appearance.raster, .texture) on synthetic meshes and textures."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from vidswap.appearance.raster import fill_polygons, rasterize
from vidswap.appearance.texture import render_texture, texture_confidence, triangle_visibility
from vidswap.swap.geometric.synthetic import face_cap, face_cap_mirror, grid_mesh, rotation_y, test_texture, uv_sphere


def psnr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (peak 1) over the pixels where mask (B, 1, H, W) is set."""
    m = mask.expand_as(a)
    mse = float(((a - b) ** 2)[m].mean())
    return 10 * math.log10(1.0 / max(mse, 1e-20))


# ---------------------------------------------------------------------------------------------------------------
# rasterize
# ---------------------------------------------------------------------------------------------------------------

def test_grid_mesh_covers_every_pixel_without_cracks():
    v, tri = grid_mesh(13, 96, 128, jitter=0.3)
    tri_id, bary = rasterize(v[None], tri, (96, 128))
    assert tri_id.shape == (1, 96, 128) and bary.shape == (1, 96, 128, 3)
    assert bool((tri_id >= 0).all())
    assert torch.allclose(bary.sum(-1), torch.ones(1, 96, 128), atol=1e-4)
    # the barycentrics reproduce the pixel position from the winning triangle's corners
    corners = v[tri[tri_id[0]]][..., :2]  # (H, W, 3, 2)
    pos = (bary[0, ..., None] * corners).sum(-2)
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(128.0), indexing="ij")
    assert torch.allclose(pos, torch.stack([xx, yy], -1), atol=1e-3)


def test_empty_and_offscreen_and_degenerate():
    v = torch.tensor([[[-50.0, -50, 0], [-40, -50, 0], [-50, -40, 0],  # off-screen
                       [5, 5, 0], [5, 5, 0], [5, 5, 0]]])  # degenerate
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]])
    tri_id, bary = rasterize(v, tri, (16, 16))
    assert bool((tri_id == -1).all()) and float(bary.abs().sum()) == 0


def test_depth_nearest_wins_regardless_of_order():
    H = W = 64
    # two big triangles covering the whole image: A at z=10, B at z=5 (nearer)
    a = [[-10.0, -10, 10], [200, -10, 10], [-10, 200, 10]]
    b = [[-10.0, -10, 5], [200, -10, 5], [-10, 200, 5]]
    for order in ([0, 1], [1, 0]):
        pts = torch.tensor([a, b])[order].reshape(1, 6, 3)
        tri = torch.tensor([[0, 1, 2], [3, 4, 5]])
        tri_id, _ = rasterize(pts, tri, (H, W))
        nearer = order.index(1)
        assert bool((tri_id == nearer).all())


def test_depth_intersecting_planes_split_where_they_cross():
    """A slanted plane z = x against a flat one z = 31.5: each wins exactly on its nearer side."""
    H = W = 64
    slanted = [[-1.0, -1, -1], [200, -1, 200], [-1, 200, -1]]
    flat = [[-1.0, -1, 31.5], [200, -1, 31.5], [-1, 200, 31.5]]
    pts = torch.tensor([flat, slanted]).reshape(1, 6, 3)
    tri = torch.tensor([[0, 1, 2], [3, 4, 5]])
    tri_id, _, depth = rasterize(pts, tri, (H, W), return_depth=True)
    xx = torch.arange(W).expand(H, W)
    expected = torch.where(xx < 31.5, torch.ones_like(xx), torch.zeros_like(xx))
    covered = tri_id[0] >= 0
    assert bool((tri_id[0][covered] == expected[covered]).all())
    assert torch.allclose(depth[0][covered], torch.minimum(xx.float(), torch.tensor(31.5))[covered], atol=1e-3)


def test_rotated_sphere_shows_only_front_texture():
    """A closed sphere turned 40 degrees: every rendered texel is on the camera-facing half, and the rendered
    depth is the front surface (no far-side bleed through the z-buffer)."""
    S = 128
    verts, tri, lonlat = uv_sphere(24, 48)
    R = rotation_y(40.0) @ torch.tensor([[1.0, 0, 0], [0, math.cos(0.3), -math.sin(0.3)], [0, math.sin(0.3),
                                                                                            math.cos(0.3)]])
    r = 50.0
    c = torch.tensor([S / 2 - 0.3, S / 2 + 0.2, 0.0])
    driven = (r * verts @ R.T + c)[None]
    # texture = a linear (u, v) ramp, so the sampled colour decodes the surface point's longitude/latitude
    Ht = Wt = 65
    yy, xx = torch.meshgrid(torch.arange(Ht, dtype=torch.float32), torch.arange(Wt, dtype=torch.float32),
                            indexing="ij")
    tex = torch.stack([xx / (Wt - 1), yy / (Ht - 1), torch.zeros_like(xx)])[None]
    uv = torch.stack([(lonlat[:, 0] + math.pi) / (2 * math.pi) * (Wt - 1),
                      (lonlat[:, 1] + math.pi / 2) / math.pi * (Ht - 1)], -1)[None]
    crop, alpha = render_texture(tex, uv, driven, tri, (S, S), feather=False)
    cov = alpha[0, 0] > 0
    lon = crop[0, 0][cov] * 2 * math.pi - math.pi
    lat = crop[0, 1][cov] * math.pi - math.pi / 2
    p = torch.stack([torch.cos(lat) * torch.sin(lon), torch.sin(lat), -torch.cos(lat) * torch.cos(lon)], -1)
    z_view = (p @ R.T)[:, 2]  # camera-space depth of the textured surface point (sphere centre at 0)
    assert cov.sum() > 0.7 * math.pi * r * r
    assert float(z_view.max()) < 0.15, "far-side texels visible"
    # rendered depth equals the analytic front surface
    _, _, depth = rasterize(driven, tri, (S, S), return_depth=True)
    yy, xx = torch.meshgrid(torch.arange(S, dtype=torch.float32), torch.arange(S, dtype=torch.float32),
                            indexing="ij")
    d2 = (xx - c[0]) ** 2 + (yy - c[1]) ** 2
    inner = d2 < (0.9 * r) ** 2
    front = -torch.sqrt((r * r - d2).clamp(min=0))
    assert float((depth[0][inner] - front[inner]).abs().max()) < 0.02 * r


def test_batch_elements_are_independent():
    v, tri = grid_mesh(6, 40, 40)
    a = v.clone()
    b = v.clone()
    b[:, :2] = b[:, :2] * 0.5 + 5  # smaller, shifted
    both_id, both_bary = rasterize(torch.stack([a, b]), tri, (40, 40))
    a_id, a_bary = rasterize(a[None], tri, (40, 40))
    b_id, b_bary = rasterize(b[None], tri, (40, 40))
    assert torch.equal(both_id[0], a_id[0]) and torch.equal(both_id[1], b_id[0])
    assert torch.allclose(both_bary[1], b_bary[0])


def test_chunked_rasterisation_matches():
    v, tri = grid_mesh(9, 64, 64, jitter=0.3)
    v[:, 2] = torch.rand(v.shape[0], generator=torch.Generator().manual_seed(1)) * 10
    full = rasterize(v[None], tri, (64, 64))
    small = rasterize(v[None], tri, (64, 64), max_candidates=300)
    assert torch.equal(full[0], small[0]) and torch.allclose(full[1], small[1])


# ---------------------------------------------------------------------------------------------------------------
# render_texture
# ---------------------------------------------------------------------------------------------------------------

def test_identity_render_reproduces_the_source():
    """Source == target geometry: the render reproduces the source crop (PSNR over the covered region)."""
    H, W = 96, 128
    tex = test_texture(H, W)
    v, tri = grid_mesh(12, H, W, jitter=0.35, seed=3)
    crop, alpha = render_texture(tex, v[None, :, :2], v[None], tri, (H, W))
    cov = alpha > 0
    assert bool(cov.all())
    value = psnr(crop, tex, cov)
    assert value > 40.0, value  # measured: > 100 dB (exact up to float rounding)


def test_moved_mesh_matches_an_affine_warp_of_the_source():
    """A rotated, scaled, sub-pixel shifted mesh renders what cv2.warpAffine makes of the source (> 40 dB)."""
    Hs, Ws = 96, 96
    tex = test_texture(Hs, Ws)
    v, tri = grid_mesh(10, Hs, Ws, jitter=0.3)
    ang, k = math.radians(17.0), 0.8
    A = torch.tensor([[k * math.cos(ang), -k * math.sin(ang), 20.3], [k * math.sin(ang), k * math.cos(ang), 6.7]])
    moved = torch.cat([v[:, :2] @ A[:, :2].T + A[:, 2], v[:, 2:]], 1)
    crop, alpha = render_texture(tex, v[None, :, :2], moved[None], tri, (Hs, Ws), feather=False)
    ref = cv2.warpAffine(tex[0].permute(1, 2, 0).numpy(), A.numpy(), (Ws, Hs), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    ref = torch.from_numpy(ref).permute(2, 0, 1)[None]
    inner = torch.nn.functional.max_pool2d(-alpha, 3, 1, 1) > -0.5  # drop the 1-px silhouette rim
    inner = ~inner & (alpha > 0)
    value = psnr(crop, ref, inner)
    assert value > 40.0, value


def test_supersampled_alpha_is_antialiased_and_consistent():
    S = 64
    v = torch.tensor([[[10.3, 8.7, 0.0], [55.2, 20.1, 0.0], [20.6, 58.4, 0.0]]])
    tri = torch.tensor([[0, 1, 2]])
    tex = test_texture(S, S)
    crop1, alpha1 = render_texture(tex, v[..., :2], v, tri, (S, S), feather=False)
    crop4, alpha4 = render_texture(tex, v[..., :2], v, tri, (S, S), supersample=4)
    area = 0.5 * abs((55.2 - 10.3) * (58.4 - 8.7) - (20.1 - 8.7) * (20.6 - 10.3))
    assert abs(float(alpha4.sum()) - area) < 0.01 * area
    soft = (alpha4 > 0.02) & (alpha4 < 0.98)
    assert int(soft.sum()) > 50  # fractional coverage along the edges
    full = (alpha4 > 0.999) & (alpha1 > 0)
    # on the smooth gradient channels, the box-filtered colour equals the point-sampled one (linear texture)
    assert psnr(crop4[:, :2], crop1[:, :2], full) > 50
    _, alpha_f = render_texture(tex, v[..., :2], v, tri, (S, S), feather=True)
    rim = (alpha_f > 0) & (alpha_f < 1)
    assert int(rim.sum()) > 50 and float(alpha_f[rim].min()) >= 0.5


def test_outputs_follow_input_dtype_and_broadcast_source():
    v, tri = grid_mesh(4, 32, 32)
    tex = test_texture(32, 32)
    crop, alpha, conf = render_texture(tex, v[None, :, :2], torch.stack([v, v, v]), tri, (32, 32),
                                       return_confidence=True)
    assert crop.shape == (3, 3, 32, 32) and alpha.shape == (3, 1, 32, 32) and conf.shape == (3, 1, 32, 32)
    assert crop.dtype == torch.float32 and bool((conf[alpha > 0] == 1).all())


# ---------------------------------------------------------------------------------------------------------------
# source visibility and mirror fill
# ---------------------------------------------------------------------------------------------------------------

def test_triangle_visibility_on_a_sphere():
    verts, tri, _ = uv_sphere(12, 24)
    v = (40 * verts + torch.tensor([64.0, 64.0, 0.0]))[None]
    vis = triangle_visibility(v, tri)
    centre_z = v[0, tri, 2].mean(1)
    assert float(vis[0][centre_z > 10].max()) == 0.0  # the far half is invisible
    assert float(vis[0][centre_z < -30].min()) > 0.9  # the near cap is fully visible
    # off-image samples count as invisible
    vis_crop = triangle_visibility(v, tri, image_size=(128, 64))
    right = v[0, tri, 0].mean(1) > 66
    assert float(vis_crop[0][right].max()) == 0.0


def test_mirror_fill_takes_hidden_texture_from_the_other_side():
    """A source photo with the head turned 70 degrees hides one cheek; rendering that face frontally takes the
    hidden cheek's texture from the mirrored, visible cheek."""
    verts, tri = face_cap()
    mirror = face_cap_mirror()
    assert torch.equal(mirror[mirror], torch.arange(verts.shape[0]))
    assert torch.allclose(verts[mirror] * torch.tensor([-1.0, 1, 1]), verts, atol=1e-5)
    Hs = Ws = 160
    tex = test_texture(Hs, Ws)
    src = (60 * verts @ rotation_y(-70.0).T + torch.tensor([80.0, 80.0, 0.0]))[None]
    S = 128
    driven = (50 * verts + torch.tensor([64.0, 64.0, 0.0]))[None]
    vc = texture_confidence(src, tri, image_size=(Hs, Ws))
    side = verts[:, 0]
    assert float(vc[0][side > 0.4].mean()) < 0.2 < 0.8 < float(vc[0][side < -0.4].mean())

    plain, alpha, a_map = render_texture(tex, src[..., :2], driven, tri, (S, S), vertex_confidence=vc,
                                         return_confidence=True)
    mirrored, _ = render_texture(tex, src[:, mirror, :2], driven, tri, (S, S))
    filled, _, conf = render_texture(tex, src, driven, tri, (S, S), mirror=mirror, return_confidence=True)
    inside = alpha > 0
    hidden = inside & (a_map < 1e-3)
    seen = inside & (a_map > 0.999)
    assert int(hidden.sum()) > 300 and int(seen.sum()) > 300
    h3, s3 = hidden.expand_as(filled), seen.expand_as(filled)
    assert float((plain - mirrored).abs()[h3].mean()) > 0.05  # the test is not vacuous
    assert float((filled - mirrored).abs()[h3].max()) < 2e-3
    assert float((filled - plain).abs()[s3].max()) < 2e-3
    assert float(conf[hidden].min()) > 0.9


# ---------------------------------------------------------------------------------------------------------------
# polygon fill
# ---------------------------------------------------------------------------------------------------------------

def _crossing_fill(poly: np.ndarray, H: int, W: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    inside = np.zeros((H, W), bool)
    n = len(poly)
    for i in range(n):
        (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % n]
        cond = (y0 > yy) != (y1 > yy)
        xint = x0 + (yy - y0) * (x1 - x0) / ((y1 - y0) if y1 != y0 else 1e-12)
        inside ^= cond & (xx < xint)
    return inside


def test_fill_polygons_matches_crossing_test_for_concave_polygons():
    H, W = 60, 70
    angles = np.linspace(0, 2 * np.pi, 11)[:-1]
    radii = np.where(np.arange(10) % 2 == 0, 25.3, 10.7)  # a concave star
    star = np.stack([35.2 + radii * np.cos(angles), 29.9 + radii * np.sin(angles)], 1)
    quad = np.array([[2.3, 3.1], [12.7, 2.2], [11.4, 14.6], [3.3, 9.9]])
    pts = torch.from_numpy(np.concatenate([star, quad])).float()[None]
    loops = [torch.arange(10), torch.arange(10, 14)]
    got = fill_polygons(pts, loops, (H, W))[0].numpy()
    ref = _crossing_fill(star, H, W) | _crossing_fill(quad, H, W)
    assert (got != ref).sum() <= 2  # pixels exactly on an edge may go either way
    assert ref.sum() > 500


def test_fill_polygons_unions_overlapping_loops_of_either_winding():
    sq = torch.tensor([[4.2, 4.1], [20.3, 4.2], [20.1, 20.2], [4.1, 20.3]])
    pts = torch.cat([sq, sq + 8.0])[None]
    same = fill_polygons(pts, [torch.arange(4), torch.arange(4, 8)], (32, 32))
    flipped = fill_polygons(pts, [torch.arange(4), torch.arange(7, 3, -1)], (32, 32))
    assert torch.equal(same, flipped)
    assert bool(same[0, 15, 15]) and bool(same[0, 6, 6]) and bool(same[0, 26, 26]) and not bool(same[0, 26, 6])


def test_per_item_source_images():
    v, tri = grid_mesh(4, 24, 24)
    tex = torch.stack([torch.full((3, 24, 24), 0.2), torch.full((3, 24, 24), 0.7)])
    crop, alpha = render_texture(tex, v[None, :, :2], torch.stack([v, v]), tri, (24, 24))
    assert torch.allclose(crop[0], torch.full_like(crop[0], 0.2))
    assert torch.allclose(crop[1], torch.full_like(crop[1], 0.7))
