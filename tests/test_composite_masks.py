"""Masks: polygon raster, region algebra, relative feathering, occlusion, confidence, temporal smoothing."""

import numpy as np
import pytest
import torch

from vidswap.composite.masks import (
    MaskParams,
    confidence_weight,
    face_regions,
    face_size,
    feather_mask,
    polygon_mask,
    smooth_masks_temporal,
    swap_region_mask,
)
from vidswap.composite.occlusion import _masked_median_mad, fit_skin_model, occlusion_visibility, skin_sample_mask


def circle(cx, cy, r, n=48, ry=None):
    t = torch.arange(n, dtype=torch.float32) * (2 * np.pi / n)
    return torch.stack([cx + r * torch.cos(t), cy + (ry or r) * torch.sin(t)], dim=-1)


@pytest.mark.parametrize("antialias", [True, False])
def test_square_mask_is_exactly_its_pixels(antialias):
    sq = torch.tensor([[[9.5, 9.5], [19.5, 9.5], [19.5, 19.5], [9.5, 19.5]]])
    m = polygon_mask(sq, (32, 40), antialias=antialias)
    expected = torch.zeros(1, 1, 32, 40)
    expected[..., 10:20, 10:20] = 1.0
    assert m.shape == (1, 1, 32, 40)
    assert torch.equal(m, expected)


def brute_force_coverage(poly, size):
    """Reference: crossing test and distance to every edge, for every pixel."""
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    px, py = xs.reshape(1, -1), ys.reshape(1, -1)
    a, b = poly[:, None, :], torch.roll(poly, -1, 0)[:, None, :]
    d = b - a
    crosses = (a[..., 1] > py) != (b[..., 1] > py)
    xint = a[..., 0] + (py - a[..., 1]) * d[..., 0] / torch.where(d[..., 1] == 0, torch.ones_like(d[..., 1]), d[..., 1])
    inside = ((crosses & (px < xint)).sum(0) % 2) == 1
    t = (((px - a[..., 0]) * d[..., 0] + (py - a[..., 1]) * d[..., 1]) / (d**2).sum(-1).clamp(min=1e-12)).clamp(0, 1)
    dist = ((a[..., 0] + t * d[..., 0] - px) ** 2 + (a[..., 1] + t * d[..., 1] - py) ** 2).min(0).values.sqrt()
    return (0.5 + torch.where(inside, dist, -dist)).clamp(0, 1).reshape(h, w)


def test_polygon_mask_equals_brute_force_on_face_like_shapes():
    g = torch.Generator().manual_seed(0)
    t = torch.arange(36) * (2 * np.pi / 36)
    polys = []
    for _ in range(6):
        rx, ry = 10 + 20 * torch.rand(2, generator=g)
        rad = 1 + 0.05 * torch.randn(36, generator=g)
        rot = torch.rand(1, generator=g) * np.pi
        x, y = rx * rad * torch.cos(t), ry * rad * torch.sin(t)
        polys.append(torch.stack([33.3 + x * rot.cos() - y * rot.sin(), 31.7 + x * rot.sin() + y * rot.cos()], -1))
    polys = torch.stack(polys)
    masks = polygon_mask(polys, (64, 70))
    for i in range(6):
        assert torch.allclose(masks[i, 0], brute_force_coverage(polys[i], (64, 70)), atol=1e-5)


def test_polygon_mask_batch_orientation_and_antialias():
    # Integer corners: the edge pixels are half covered; clockwise and counter-clockwise give the same mask.
    sq = torch.tensor([[10.0, 10.0], [20.0, 10.0], [20.0, 20.0], [10.0, 20.0]])
    tri = torch.tensor([[2.0, 2.0], [30.0, 2.0], [2.0, 30.0], [2.0, 2.0]])  # repeated vertex is harmless
    m = polygon_mask(torch.stack([sq, sq.flip(0), tri]), (32, 32))
    assert torch.equal(m[0], m[1])
    assert m[0, 0, 15, 10].item() == 0.5 and m[0, 0, 15, 15].item() == 1.0 and m[0, 0, 15, 9].item() == 0.0
    assert abs(m[0].sum().item() - 101.0) < 1e-4  # 81 inside + 36 half edges + 4 half corners
    assert abs(m[2].sum().item() - 28 * 28 / 2) < 20  # triangle area, within its perimeter/2
    # Clipped by the image border and entirely outside both work.
    off = polygon_mask(torch.tensor([[[-50.0, -50], [-40, -50], [-40, -40]]]), (8, 8))
    assert off.sum() == 0


def test_feather_width_scales_with_face_size():
    ramps, sizes = [], []
    for r in (75.2, 150.4):  # face sizes ~133 and ~267 px: feather radii of exactly 4 and 8 px
        poly = circle(170.0, 170.0, r, n=96)[None]
        fs = face_size(poly)
        sizes.append(fs.item())
        mask = polygon_mask(poly, (340, 340))
        alpha = feather_mask(mask, fs, erosion=0.02, feather=0.06)
        row = alpha[0, 0, 170]
        ramps.append(((row > 0) & (row < 0.999)).sum().item() / 2)  # two ramps per row
        assert (alpha <= mask).all()
        # The ramp lies inside the region and stops erosion short of its edge.
        assert alpha[mask < 1].max().item() == 0.0
        inner_edge = 170 + r - (row[170:] > 0).sum().item()
        assert inner_edge >= round(0.02 * fs.item()) - 1
    assert sizes[1] / sizes[0] == pytest.approx(2.0, rel=0.01)
    assert ramps[1] / ramps[0] == pytest.approx(2.0, rel=0.2)
    assert ramps[1] == pytest.approx(0.06 * sizes[1], abs=2.0)


def test_feather_per_item_in_one_batch():
    polys = torch.stack([circle(100, 100, 40, 64), circle(100, 100, 80, 64)])
    masks = polygon_mask(polys, (200, 200))
    fs = face_size(polys)
    both = feather_mask(masks, fs)
    for i in range(2):
        alone = feather_mask(masks[i : i + 1], fs[i : i + 1])
        assert torch.allclose(both[i], alone[0], atol=1e-6)


def synthetic_face(n_points=478):
    """Landmarks and index loops of a cartoon face: oval, eyes, brows, nose, lips (not MediaPipe's numbering)."""
    pts = torch.zeros(n_points, 3)
    regions, start = {}, 0

    def add(name, poly):
        nonlocal start
        k = poly.shape[0]
        pts[start : start + k, :2] = poly
        regions[name] = np.arange(start, start + k)
        start += k

    add("face_oval", circle(64, 68, 44, 36, ry=54))
    add("left_eye", circle(46, 56, 9, 16, ry=4))
    add("right_eye", circle(82, 56, 9, 16, ry=4))
    add("left_brow", circle(46, 43, 11, 10, ry=2.5))
    add("right_brow", circle(82, 43, 11, 10, ry=2.5))
    add("nose", torch.tensor([[64.0, 58], [72, 82], [56, 82]]))
    add("lips_outer", circle(64, 98, 14, 20, ry=6))
    add("lips_inner", circle(64, 98, 10, 12, ry=2))
    add("left_iris", circle(46, 56, 3, 5))
    add("right_iris", circle(82, 56, 3, 5))
    return pts[None], regions


def test_face_regions_partition_the_face():
    lm, regions = synthetic_face()
    fr = face_regions(lm, regions, (136, 128), MaskParams(antialias=False))
    face = fr["face"]
    union_all = swap_region_mask(fr, ["eyes", "brows", "nose", "mouth", "skin"])
    assert torch.equal(union_all, face)
    parts = torch.maximum(torch.maximum(fr["eyes"], fr["brows"]), torch.maximum(fr["mouth"], fr["skin"]))
    assert torch.equal(parts, face)  # skin is the face minus the grown features
    assert (fr["skin"] * fr["eyes"]).sum() == 0
    eyes_only = swap_region_mask(fr, ["eyes"])
    ys, xs = torch.nonzero(eyes_only[0, 0] > 0, as_tuple=True)
    assert ys.min() >= 48 and ys.max() <= 64 and xs.min() >= 33 and xs.max() <= 95
    assert fr["size"].item() == pytest.approx(np.sqrt(np.pi * 44 * 54), rel=0.02)
    with pytest.raises(ValueError):
        swap_region_mask(fr, ["ears"])


def occlusion_scene(size=160):
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    cx = cy = size / 2
    r = size * 0.375
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
    shade = 1.0 - 0.15 * (xx - cx) / r  # side lighting is not occlusion
    skin = torch.tensor([0.85, 0.62, 0.50]).view(3, 1, 1) * shade + 0.01 * torch.randn(3, size, size, generator=g)
    img = torch.where(inside, skin, torch.tensor([0.2, 0.35, 0.25]).view(3, 1, 1))
    hand = (xx >= 90) & (xx < 130) & (yy >= 60) & (yy < 100)
    img = torch.where(hand, torch.tensor([0.30, 0.30, 0.75]).view(3, 1, 1), img).clamp(0, 1)[None]
    poly = circle(cx, cy, r, 48)[None]
    return img, poly, inside, hand


def test_occluding_hand_is_removed_from_the_mask():
    img, poly, inside, hand = occlusion_scene()
    fs = face_size(poly)
    face = polygon_mask(poly, img.shape[-2:])
    model = fit_skin_model(img, skin_sample_mask(face, fs))
    assert bool(model.valid[0])
    vis = occlusion_visibility(img, face, model, fs)
    alpha = feather_mask(face, fs) * vis
    hand_on_face = hand & inside
    assert hand_on_face.sum() > 1000
    assert alpha[0, 0][hand_on_face].max().item() < 0.02
    far_from_hand = inside & ~hand & ((torch.arange(160)[None, :] < 84) | (torch.arange(160)[:, None] > 106))
    assert vis[0, 0][far_from_hand].min().item() == 1.0  # shading and noise are not occluders


def test_protected_features_are_kept():
    img, poly, inside, hand = occlusion_scene()
    fs = face_size(poly)
    face = polygon_mask(poly, img.shape[-2:])
    model = fit_skin_model(img, skin_sample_mask(face, fs))
    protect = torch.zeros_like(face)
    protect[..., 60:100, 90:130] = 1.0  # e.g. a mouth region the hand happens to cover
    vis = occlusion_visibility(img, face, model, fs, protect=protect)
    assert vis[0, 0, 70:90, 100:120].min().item() == 1.0


def test_low_confidence_landmarks_fade_their_side():
    pts = circle(64, 64, 40, 32)[None]
    conf = torch.ones(1, 32)
    conf[0, :5] = 0.0  # points on the right (angle ~0)
    conf[0, -4:] = 0.0
    w = confidence_weight(pts, conf, (128, 128), torch.tensor([80.0]))
    assert w.shape == (1, 1, 128, 128)
    assert w[0, 0, 64, 104].item() < 0.1
    assert w[0, 0, 64, 24].item() > 0.99
    per_face = confidence_weight(pts, torch.tensor([0.5]), (16, 16), 80.0)
    assert torch.allclose(per_face, torch.full((1, 1, 16, 16), 0.5))


def test_temporal_mask_smoothing_reduces_flicker():
    g = torch.Generator().manual_seed(1)
    base = polygon_mask(circle(32, 32, 20)[None], (64, 64))
    seq = (base + 0.2 * torch.randn(40, 1, 64, 64, generator=g)).clamp(0, 1)

    def flicker(x):
        return (x[1:] - x[:-1]).var().item()

    for mode in ("zero_phase", "ema"):
        out = smooth_masks_temporal(seq, alpha=0.3, mode=mode)
        assert out.shape == seq.shape
        assert flicker(out) < 0.25 * flicker(seq)
    const = base.expand(10, -1, -1, -1)
    assert torch.allclose(smooth_masks_temporal(const, 0.3), const, atol=1e-6)
    # Zero phase has no lag: a step at t=10 stays centred (symmetric response around the step).
    step = torch.zeros(21, 1, 1, 1)
    step[10:] = 1.0
    zp = smooth_masks_temporal(step, 0.5)[:, 0, 0, 0]
    assert zp[9].item() + zp[10].item() == pytest.approx(1.0, abs=0.15)
    causal = smooth_masks_temporal(step, 0.5, "ema")[:, 0, 0, 0]
    assert causal[9].item() == 0.0
    # Causal chunks chain through their state.
    a = smooth_masks_temporal(seq[:20], 0.3, "ema")
    b = smooth_masks_temporal(seq[20:], 0.3, "ema", initial=a[-1:])
    assert torch.allclose(torch.cat([a, b]), smooth_masks_temporal(seq, 0.3, "ema"), atol=1e-6)


def test_masked_median_mad_is_the_sorted_rows_lower_median():
    x = torch.tensor([[5.0, 1.0, 4.0, 1.0, 9.0, 2.0], [3.0, 3.0, 7.0, -1.0, 0.0, 8.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    w = torch.tensor([[1.0, 1, 1, 1, 0, 1], [0, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0]])
    med, mad = _masked_median_mad(x, w)
    # row 0: inside 5,1,4,1,2 -> sorted 1,1,2,4,5 -> 2; |x - 2| 3,1,2,1,0 -> 0,1,1,2,3 -> 1
    # row 1: inside 3,7,-1,0 -> -1,0,3,7 -> lower median 0; deviations 3,7,1,0 -> 0,1,3,7 -> 1
    # row 2: nothing inside -> the fill value
    big = torch.finfo(torch.float32).max
    assert med.tolist() == [2.0, 0.0, big] and mad.tolist() == [1.0, 1.0, big]
