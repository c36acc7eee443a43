"""Tests of the reenactment geometry (vidswap.swap.geometric.reenact)."""

from __future__ import annotations

import pytest
import torch

from vidswap.swap.geometric.reenact import (
    canonical_from_landmarks,
    combine_sources,
    driven_geometry,
    hole_triangles,
    inner_loops,
    inner_mask,
    mix_shape,
    robust_mean_shape,
)


def random_rotations(B: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(B, 3, 3, generator=g))
    return q * torch.sign(torch.linalg.det(q))[:, None, None]


def test_driven_geometry_identity_returns_the_canonical_exactly():
    x_c = torch.randn(2, 478, 3)
    out = driven_geometry(x_c, torch.zeros(2, 478, 3), torch.ones(2), torch.eye(3).expand(2, 3, 3),
                          torch.zeros(2, 3))
    assert torch.equal(out, x_c)


def test_driven_geometry_is_s_R_x_plus_t_and_inverts():
    B = 4
    x_c = torch.randn(478, 3)
    delta = 0.05 * torch.randn(B, 478, 3)
    s = torch.tensor([1.0, 80.0, 120.5, 3.0])
    R = random_rotations(B)
    t = torch.randn(B, 3) * 100
    out = driven_geometry(x_c, delta, s, R, t)
    ref = torch.stack([s[b] * (R[b] @ (x_c + delta[b]).T).T + t[b] for b in range(B)])
    assert torch.allclose(out, ref, atol=1e-3)
    back = canonical_from_landmarks(out, s, R, t)
    assert torch.allclose(back, x_c + delta, atol=1e-4)
    assert driven_geometry(x_c, None, s, R, t).shape == (B, 478, 3)


def test_driven_geometry_matches_the_pose_module_convention():
    from vidswap.faces import pose
    B = 3
    x_c = torch.randn(478, 3)
    delta = 0.1 * torch.randn(B, 478, 3)
    s, R, t = torch.rand(B) + 0.5, random_rotations(B, 1), torch.randn(B, 3)
    assert torch.allclose(driven_geometry(x_c, delta, s, R, t), pose.compose(s, R, t, x_c, delta), atol=1e-5)


def test_mix_shape_modes():
    src = torch.zeros(5, 3)
    tgt = torch.ones(2, 5, 3)
    assert torch.equal(mix_shape(src, tgt, "source"), torch.zeros(2, 5, 3))
    assert torch.equal(mix_shape(src, tgt, "target"), torch.ones(2, 5, 3))
    assert torch.allclose(mix_shape(src, tgt, "blend", 0.25), torch.full((2, 5, 3), 0.75))
    with pytest.raises(ValueError):
        mix_shape(src, tgt, "bogus")


def test_robust_mean_ignores_an_outlier_shape():
    base = torch.randn(100, 3)
    shapes = torch.stack([base + 0.01 * torch.randn(100, 3) for _ in range(4)] + [base + 2.0])
    m = robust_mean_shape(shapes)
    assert float((m - base).abs().mean()) < 0.1
    assert float((shapes.mean(0) - base).abs().mean()) > 0.3
    nan = shapes.clone()
    nan[1, 3] = float("nan")
    assert torch.isfinite(robust_mean_shape(nan)).all()


def test_combine_sources_picks_the_frontal_neutral_photo():
    shapes = torch.randn(1, 50, 3).expand(4, -1, -1) + 0.01 * torch.randn(4, 50, 3)
    x_c, best = combine_sources(shapes, yaws=[35.0, -4.0, 20.0, 60.0], pitches=[0.0, 3.0, -10.0, 0.0])
    assert best == 1 and x_c.shape == (50, 3)
    # a frontal but strongly expressive photo loses to a slightly turned neutral one
    _, best = combine_sources(shapes, [0.0, 8.0, 30.0, 40.0], [0.0, 0.0, 0.0, 0.0],
                              expr_energy=[0.05 ** 2 * 4, 0.0, 0.0, 0.0])
    assert best == 1
    x1, b1 = combine_sources(shapes[:1], [10.0], [0.0])
    assert b1 == 0 and torch.allclose(x1, shapes[0])


def _square_landmarks(B: int = 1):
    """Landmarks with two 'eyes' (squares) and a 'mouth' (a hexagon) in a 64x64 crop."""
    pts = torch.tensor([[10.0, 10], [20, 10], [20, 18], [10, 18],  # eye 1
                        [40.0, 10], [52, 10], [52, 18], [40, 18],  # eye 2
                        [20.0, 40], [32, 36], [44, 40], [44, 46], [32, 50], [20, 46]])  # mouth
    pts = torch.cat([pts, torch.zeros(14, 1)], 1)
    regions = {"left_eye": [0, 1, 2, 3], "right_eye": [4, 5, 6, 7], "lips_inner": [8, 9, 10, 11, 12, 13]}
    return pts[None].expand(B, -1, -1), regions


def test_inner_mask_covers_eye_and_mouth_polygons():
    pts, regions = _square_landmarks(2)
    loops = inner_loops(regions)
    hard = inner_mask(pts, loops, (64, 64), grow=0, feather=0)
    assert hard.shape == (2, 1, 64, 64)
    assert float(hard[0, 0, 11:18, 11:20].min()) == 1.0
    assert float(hard[0, 0, 40:47, 21:44].min()) == 1.0
    assert float(hard[0, 0, 25:32].max()) == 0.0
    soft = inner_mask(pts, loops, (64, 64), grow=1.0, feather=1.0)
    assert float(soft[0, 0, 9:19, 9:21].min()) == 1.0  # the polygon grown by 1 px is fully covered
    assert 0.0 < float(soft[0, 0, 14, 23]) < 1.0  # a soft edge outside it
    assert float(soft[0, 0, 14, 26]) == 0.0
    assert float(soft[0, 0, 28, :].max()) == 0.0
    with pytest.raises(KeyError):
        inner_loops({"left_eye": [0, 1, 2]})


@pytest.mark.parametrize("grow, feather", [(1.0, 0.0), (1.0, 1.0), (2.5, 1.0), (0.0, 2.0)])
def test_the_outline_leaves_open_loops_as_they_were_and_cuts_closed_ones_all_along(grow, feather):
    pts, regions = _square_landmarks(2)
    loops = inner_loops(regions)
    assert torch.equal(inner_mask(pts, loops, (64, 64), grow=grow, feather=feather, outline=True),
                       inner_mask(pts, loops, (64, 64), grow=grow, feather=feather))
    # a closed mouth: its contour collapsed onto the line y = 30 from x = 10 to 50 encloses no pixel
    closed = torch.tensor([[[10.0, 30], [30, 30], [50, 30], [30, 30]]])
    assert float(inner_mask(closed, [[0, 1, 2, 3]], (64, 64), grow=3.0, feather=0.0).max()) == 0.0
    cut = inner_mask(closed, [[0, 1, 2, 3]], (64, 64), grow=3.0, feather=0.0, outline=True)
    band = torch.zeros(1, 1, 64, 64)
    band[..., 28:33, 8:53] = 1.0  # the line grown by 3 - 1 px
    assert torch.equal(cut, band)


def test_loop_outlines_are_the_rounded_pixels_along_each_edge_on_the_image():
    from vidswap.appearance.raster import loop_outlines

    pts = torch.tensor([[[2.0, 5.0], [9.0, 5.0], [-3.0, 1.0], [4.4, 1.0], [3.0, 3.0], [3.0, 3.0]]])
    out = loop_outlines(pts, [[0, 1], [2, 3], [4, 5]], (8, 12))
    expect = torch.zeros(1, 8, 12, dtype=torch.bool)
    expect[0, 5, 2:10] = True  # an edge and its way back
    expect[0, 1, 0:5] = True  # off the image: dropped
    expect[0, 3, 3] = True  # a loop of one point twice: that pixel
    assert torch.equal(out, expect)
    diag = loop_outlines(torch.tensor([[[1.0, 1.0], [9.0, 5.0]]]), [[0, 1]], (8, 12))[0]
    ys, xs = torch.nonzero(diag, as_tuple=True)
    assert diag[1, 1] and diag[5, 9] and set(xs.tolist()) == set(range(1, 10))  # no gap along the line
    assert int(diag.sum()) == 9 and bool(((ys.float() - 1) - (xs.float() - 1) / 2).abs().max() <= 0.5)
    lost = torch.tensor([[[float("nan"), 2.0], [5.0, 2.0], [5.0, 6.0], [1e5, 6.0]]])  # a lost point, a runaway one
    edges = loop_outlines(lost, [[1, 2]], (8, 12))
    assert torch.equal(loop_outlines(lost, [[0, 1, 2]], (8, 12)), edges)  # the edges to the lost point: dropped
    assert edges[0, 2:7, 5].all() and int(edges.sum()) == 5
    far = loop_outlines(lost, [[2, 3]], (8, 12))[0]  # 1e5 px long: H + W + 1 samples, none of them on the image
    assert far[6, 5] and int(far.sum()) == 1


def test_loop_outlines_of_an_item_do_not_depend_on_the_rest_of_the_batch():
    """Farm chunks batch frames differently from one pass: an item's outline is the same alone as beside an item
    with a longer edge (a batch-wide step count moved its samples: 21 pixels of a mouth's outline on
    single_face_clip's frame 15, 1-code-value differences in the chunked render)."""
    from vidswap.appearance.raster import loop_outlines

    g = torch.Generator().manual_seed(11)
    short = torch.rand(1, 12, 2, generator=g) * 6.3 + 20.0  # edges of at most ~6 px, at fractional positions
    long = torch.rand(1, 12, 2, generator=g) * 90.0 + 5.0
    loops = [list(range(6)), list(range(6, 12))]
    alone = loop_outlines(short, loops, (128, 128))
    batch = loop_outlines(torch.cat([short, long, short]), loops, (128, 128))
    assert torch.equal(batch[0:1], alone) and torch.equal(batch[2:3], alone)
    assert torch.equal(batch[1:2], loop_outlines(long, loops, (128, 128)))


@pytest.mark.parametrize("r", [1, 2, 4, 12])
def test_inner_mask_opencv_morphology_equals_the_shifted_slices(r):
    """On CPU tensors the hole's growth (composite.filters.dilate, square) and box sums run on OpenCV; the other
    paths give the same values bit for bit, zeros outside the image included, and the soft mask is exactly 0 and 1
    where the box sees none or all of the grown polygon, with only multiples of 1 / (2 rf + 1)^4 between."""
    from vidswap.composite.filters import dilate
    from vidswap.swap.geometric.reenact import _box_sum, _box_sum_opencv

    g = torch.Generator().manual_seed(r)
    mask = torch.rand(2, 1, 70, 90, generator=g) > 0.99
    mask[0, 0, 0, 0] = mask[1, 0, -1, -1] = True  # corners: what lies outside the image counts as 0
    grown = dilate(mask.float(), r, shape="square")  # the hole's growth (OpenCV on CPU)
    square = torch.nn.functional.max_pool2d(mask.float(), 2 * r + 1, stride=1, padding=r)
    assert torch.equal(grown, square) and torch.equal(grown, dilate(mask.float(), r, shape="square", opencv=False))
    sums = _box_sum(_box_sum(grown, r), r)
    assert torch.equal(sums, _box_sum_opencv(_box_sum_opencv(grown, r), r))
    pts, regions = _square_landmarks(2)
    rf = min(r, 2)  # the 64-px test face: wider boxes reach every pixel
    soft = inner_mask(pts, inner_loops(regions), (64, 64), grow=1.0, feather=float(rf))
    n4 = float((2 * rf + 1) ** 4)
    assert torch.equal(soft, (soft * n4).round() / n4) and float(soft.min()) == 0.0 and float(soft.max()) == 1.0


def test_hole_triangles_close_the_loops():
    pts, regions = _square_landmarks()
    tri = hole_triangles(inner_loops(regions))
    assert tri.shape == (2 + 2 + 4, 3)
    from vidswap.appearance.raster import rasterize

    tri_id, _ = rasterize(pts, tri, (64, 64))
    hard = inner_mask(pts, inner_loops(regions), (64, 64), grow=0, feather=0)[:, 0] > 0.5
    cov = tri_id >= 0
    # the rasteriser includes pixels on the outline, the polygon fill is half-open: equal up to the rim
    assert int((hard & ~cov).sum()) == 0
    assert 0 < int((cov & ~hard).sum()) <= 60 and int(hard.sum()) > 200

