"""Evaluation metrics on synthetic inputs with known answers (no models, no media)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from vidswap.errors import UsageError
from vidswap.eval import frame_metrics as FM
from vidswap.eval import judges
from vidswap.eval import metrics as M
from vidswap.faces.pose import matrix_from_euler


def _rot(yaw: float, pitch: float, roll: float) -> np.ndarray:
    return matrix_from_euler(np.array([yaw], float), np.array([pitch], float), np.array([roll], float))[0].numpy()


def _texture(h: int = 160, w: int = 200, seed: int = 0) -> np.ndarray:
    """A smooth random texture (uint8 RGB) optical flow can lock onto."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (h // 4, w // 4, 3)).astype(np.float32)
    img = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(cv2.GaussianBlur(img, (0, 0), 1.0), 0, 255).astype(np.uint8)


def _disc(h: int, w: int, c=(100, 80), r: float = 45) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (xx - c[0]) ** 2 + (yy - c[1]) ** 2 <= r * r


# ------------------------------------------------------------------------------------------------ identity


def test_identical_embeddings_have_cosine_one():
    e = np.random.default_rng(1).normal(size=(5, 512)).astype(np.float32)
    np.testing.assert_allclose(M.identity_similarity(e, e), 1.0, atol=1e-6)
    np.testing.assert_allclose(M.identity_similarity(e, -e[0])[0], -1.0, atol=1e-6)


def test_mean_embedding_is_unit_mean_direction():
    a, b = np.eye(4)[0] * 3, np.eye(4)[1] * 0.5
    np.testing.assert_allclose(M.mean_embedding(np.stack([a, b])), [math.sqrt(0.5), math.sqrt(0.5), 0, 0],
                               atol=1e-6)


def test_retrieval_on_synthetic_gallery():
    g = np.eye(8, 16)  # 8 identities, orthonormal
    clip0 = np.repeat(g[[0]], 10, 0)  # exactly identity 0: rank 0
    clip1 = np.repeat(0.6 * g[[2]] + 0.5 * g[[1]], 10, 0)  # true (1) is second: top-5 only
    clip2 = np.repeat(g[3] + g[4] + g[5] + g[6] + g[7] + 0.1 * g[[2]], 10, 0)  # true (2) is 6th: miss
    top1, top5 = M.retrieval([clip0, clip1, clip2], g, [0, 1, 2])
    assert top1 == pytest.approx(10 / 30)
    assert top5 == pytest.approx(20 / 30)
    # NaN rows (no face) are skipped; ties go to the true identity
    tie = np.stack([0.5 * g[0] + 0.5 * g[1], np.full(16, np.nan)])
    assert M.retrieval([tie], g, [1], k=1) == (1.0, 1.0)
    with pytest.raises(UsageError):
        M.retrieval([clip0], g, [0, 1])


# ------------------------------------------------------------------------------------------------ pose


@pytest.mark.parametrize("ypr", [(0, 0, 0), (30, -15, 10), (-45, 20, -25), (60, 5, 0), (-10, -30, 40)])
def test_fit_pose_recovers_known_rotation(ypr):
    R0 = _rot(*ypr)
    tpl = judges.RIGID_TEMPLATE.astype(np.float64)
    pts = 137.0 * (tpl @ R0.T)[:, :2] + [321.0, 178.0]  # scaled orthographic projection
    s, R, t, rms = M.fit_pose(pts)
    assert s[0] == pytest.approx(137.0, rel=1e-6)
    np.testing.assert_allclose(t[0], [321.0, 178.0], atol=1e-4)
    assert rms[0] < 1e-6
    assert M.pose_error(R, R0[None])["angle"][0] < 1e-4
    np.testing.assert_allclose(M.euler_degrees(R)[0], ypr, atol=1e-4)


def test_fit_pose_accepts_106_points_and_known_pose_error():
    tpl = judges.RIGID_TEMPLATE.astype(np.float64)
    full = np.full((2, 106, 2), 500.0)
    for i, ypr in enumerate([(10, 0, 0), (25, 0, 0)]):
        full[i, list(judges.RIGID_106)] = 100.0 * (tpl @ _rot(*ypr).T)[:, :2]
    _, R, _, _ = M.fit_pose(full)
    err = M.pose_error(R[1:], R[:1])
    assert err["angle"][0] == pytest.approx(15.0, abs=1e-4)
    assert err["yaw"][0] == pytest.approx(15.0, abs=1e-4)
    assert err["pitch"][0] < 1e-4 and err["roll"][0] < 1e-4
    assert err["l2"][0] == pytest.approx(15.0, abs=1e-4)


def test_pose_error_is_exactly_zero_for_equal_rotations_and_nan_for_misses():
    R = _rot(12, -7, 3)[None]
    assert M.pose_error(R, R)["angle"][0] == 0.0
    s, Rn, t, rms = M.fit_pose(np.full((len(judges.RIGID_106), 2), np.nan))
    assert np.isnan(Rn).all() and np.isnan(rms).all()


def test_fit_pose_is_robust_to_landmark_noise():
    rng = np.random.default_rng(3)
    R0 = _rot(20, 10, -5)
    pts = 150.0 * (judges.RIGID_TEMPLATE.astype(np.float64) @ R0.T)[:, :2] + 200.0
    _, R, _, _ = M.fit_pose(pts + rng.normal(0, 1.0, pts.shape))  # 1 px noise on a ~260 px face
    assert M.pose_error(R, R0[None])["angle"][0] < 2.0


def test_pose_motion_error_takes_out_a_constant_tilt_and_keeps_the_motion():
    plate = np.stack([_rot(y, p, r) for y, p, r in [(0, 2, 0), (10, 4, 1), (25, 7, -2), (15, 1, 0), (-5, 3, 2)]])
    tilt = _rot(0, -6.5, 0)  # another face's proportions read as 6.5 degrees of pitch on every frame
    result = plate @ tilt
    assert M.pose_error(result, plate)["angle"] == pytest.approx([6.5] * 5, abs=1e-9)
    motion, offset = M.pose_motion_error(result, plate)
    assert motion.max() < 1e-6
    assert M.pose_error(offset[None], tilt[None])["angle"][0] < 1e-6
    nodded = result.copy()
    nodded[2] = nodded[2] @ _rot(0, 5, 0)  # one frame nods 5 degrees more than the plate
    motion, _ = M.pose_motion_error(nodded, plate)
    assert motion[2] == pytest.approx(4.0, abs=0.1) and motion[[0, 1, 3, 4]].max() == pytest.approx(1.0, abs=0.1)
    missing = result.copy()
    missing[1] = np.nan
    motion, offset = M.pose_motion_error(missing, plate)
    assert np.isnan(motion[1]) and np.nanmax(motion) < 1e-6
    assert (M.pose_offset(np.full((2, 3, 3), np.nan), plate[:2]) == np.eye(3)).all()


# ------------------------------------------------------------------------------------------------ expression


def _face_points(mouth_gap: float = 20.0, eye_gap: float = 6.0) -> np.ndarray:
    p = np.zeros((106, 2))
    p[list(judges.MOUTH_CORNERS)] = [[0, 100], [100, 100]]
    p[list(judges.MOUTH_INNER_UPPER)] = [[30, 100 - mouth_gap / 2], [50, 100 - mouth_gap / 2],
                                         [70, 100 - mouth_gap / 2]]
    p[list(judges.MOUTH_INNER_LOWER)] = [[30, 100 + mouth_gap / 2], [50, 100 + mouth_gap / 2],
                                         [70, 100 + mouth_gap / 2]]
    for corners, upper, lower, x0 in ((judges.LEFT_EYE_CORNERS, judges.LEFT_EYE_UPPER, judges.LEFT_EYE_LOWER, 0),
                                      (judges.RIGHT_EYE_CORNERS, judges.RIGHT_EYE_UPPER, judges.RIGHT_EYE_LOWER,
                                       70)):
        p[list(corners)] = [[x0, 40], [x0 + 30, 40]]
        p[list(upper)] = [[x0 + 10, 40 - eye_gap / 2], [x0 + 15, 40 - eye_gap / 2], [x0 + 20, 40 - eye_gap / 2]]
        p[list(lower)] = [[x0 + 10, 40 + eye_gap / 2], [x0 + 15, 40 + eye_gap / 2], [x0 + 20, 40 + eye_gap / 2]]
    return p


def test_opening_ratios_of_known_shapes():
    p = _face_points(mouth_gap=20.0, eye_gap=6.0)
    assert M.mouth_open_ratio(p) == pytest.approx(0.2)
    np.testing.assert_allclose(M.eye_aspect_ratio(p), [0.2, 0.2])
    # invariant to scale, rotation and translation
    c, s = math.cos(0.4), math.sin(0.4)
    q = 2.5 * p @ np.array([[c, -s], [s, c]]).T + [40, -7]
    np.testing.assert_allclose(M.expression_features(q), M.expression_features(p), atol=1e-12)


def test_expression_error_known_and_zero():
    a, b = _face_points(20.0, 6.0), _face_points(35.0, 3.0)
    err = M.expression_error(a[None], b[None])
    assert err["mouth"][0] == pytest.approx(0.15)
    assert err["eyes"][0] == pytest.approx(0.1)
    assert err["l2"][0] == pytest.approx(math.sqrt(0.15 ** 2 + 0.1 ** 2 + 0.1 ** 2))
    zero = M.expression_error(a[None], a[None])
    assert zero["l2"][0] == 0.0


# ------------------------------------------------------------------------------------------------ temporal


def test_flicker_of_identical_clips_is_exactly_one():
    prev, cur = _texture(seed=1), np.roll(_texture(seed=1), 2, axis=1)
    mask = _disc(*prev.shape[:2])
    flow = FM.dis_flow(prev, cur)
    errs = [FM.flicker_error(prev, cur, flow, mask) for _ in range(2)]
    summary = FM.ratio_summary([errs[0]], [errs[1]])
    assert summary["ratio"] == 1.0 and summary["excess"] == 0.0


def test_dis_flow_recovers_a_translation_and_compensates_it():
    prev = _texture(seed=2)
    cur = np.roll(prev, (2, 3), axis=(0, 1))  # content moves right 3, down 2
    flow = FM.dis_flow(prev, cur, max_side=None)
    inner = flow[20:-20, 20:-20].reshape(-1, 2)
    np.testing.assert_allclose(np.median(inner, 0), [-3.0, -2.0], atol=0.2)
    mask = np.zeros(prev.shape[:2], bool)
    mask[30:-30, 30:-30] = True
    compensated = FM.flicker_error(prev, cur, flow, mask)
    raw = float(np.abs(cur.astype(np.float32) - prev)[mask].mean())
    assert compensated < 0.2 * raw
    # the same at a reduced measuring size
    small = FM.dis_flow(prev, cur, max_side=100)
    assert np.median(small[20:-20, 20:-20].reshape(-1, 2), 0) == pytest.approx([-3.0, -2.0], abs=0.5)


def test_flicker_ratio_above_one_for_a_flickering_result():
    rng = np.random.default_rng(5)
    frames = [np.roll(_texture(seed=3), k, axis=1) for k in range(6)]
    mask = _disc(*frames[0].shape[:2])
    res = [np.clip(f.astype(np.int16) + int(rng.choice([-8, 8])) * mask[..., None], 0, 255).astype(np.uint8)
           for f in frames]
    r, t = [], []
    for k in range(1, len(frames)):
        flow = FM.dis_flow(frames[k - 1], frames[k])
        t.append(FM.flicker_error(frames[k - 1], frames[k], flow, mask))
        r.append(FM.flicker_error(res[k - 1], res[k], flow, mask))
    s = FM.ratio_summary(r, t)
    assert s["ratio"] > 2.0 and s["excess"] > 3.0
    assert np.isnan(FM.flicker_error(frames[0], frames[1], FM.dis_flow(frames[0], frames[1]),
                                    np.zeros(mask.shape, bool)))


def test_temporal_noise_reads_fresh_noise_and_not_texture_that_moves():
    """A textured picture moving right 3 and down 2 with the exact flow: 0 without noise (each pixel taken from its
    source); fresh white noise of 10 levels in each frame reads 10 x the high-pass's gain (the 13-tap Gaussian of
    sigma 1.5 OpenCV uses) within 4 %; a mask under 64 pixels gives NaN."""
    prev = _texture(seed=7).astype(np.float32)
    cur = np.roll(prev, (2, 3), axis=(0, 1))
    flow = np.zeros(prev.shape[:2] + (2,), np.float32)
    flow[..., 0], flow[..., 1] = -3.0, -2.0
    mask = np.zeros(prev.shape[:2], bool)
    mask[20:-20, 20:-20] = True
    assert FM.temporal_noise(prev.astype(np.uint8), cur.astype(np.uint8), flow, mask) == 0.0
    rng = np.random.default_rng(8)
    grey = np.full((200, 200, 3), 128.0, np.float32)
    a, b = (np.clip(grey + rng.normal(0, 10, grey.shape), 0, 255).astype(np.uint8) for _ in range(2))
    k = cv2.getGaussianKernel(13, 1.5)
    kernel = k @ k.T
    gain = math.sqrt(1.0 - 2.0 * kernel[6, 6] + float((kernel ** 2).sum()))
    got = FM.temporal_noise(a, b, np.zeros((200, 200, 2), np.float32), np.ones((200, 200), bool))
    assert got == pytest.approx(10.0 * gain, rel=0.04)
    tiny = np.zeros((200, 200), bool)
    tiny[:7, :9] = True
    assert math.isnan(FM.temporal_noise(a, b, np.zeros((200, 200, 2), np.float32), tiny))


def test_flow_miss_is_the_points_departure_from_the_picture_motion():
    """The picture moves right 3, down 2: points that move with it miss by ~0, points left behind by the whole
    motion (sqrt(13) px), and points without a position give NaN."""
    prev = _texture(seed=4)
    cur = np.roll(prev, (2, 3), axis=(0, 1))
    rng = np.random.default_rng(6)
    pts = rng.uniform(40, prev.shape[0] - 40, (50, 2))
    assert FM.flow_miss(prev, cur, pts, pts + [3.0, 2.0]) < 0.2
    assert FM.flow_miss(prev, cur, pts, pts) == pytest.approx(math.sqrt(13.0), abs=0.2)
    assert math.isnan(FM.flow_miss(prev, cur, np.full((3, 2), np.nan), pts[:3]))


def test_ratio_summary_drops_nan_frames():
    s = FM.ratio_summary([2.0, np.nan, 4.0], [1.0, 5.0, np.nan])
    assert s == {"result": 2.0, "target": 1.0, "ratio": 2.0, "excess": 1.0}


def test_jitter_ratio_identical_and_noisy():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 1, 30)[:, None, None] * np.ones((1, 106, 2)) * 50
    same = FM.jitter_ratio(t, t.copy())
    assert same["ratio"] == 1.0
    noisy = FM.jitter_ratio(t + rng.normal(0, 1, t.shape), t + rng.normal(0, 0.25, t.shape))
    assert 3.0 < noisy["ratio"] < 5.0  # jitter scales with the noise std (1 vs 0.25)
    acc = FM.landmark_acceleration(t)
    assert np.isnan(acc[0]) and np.isnan(acc[-1]) and np.allclose(acc[1:-1], 0.0, atol=1e-9)


# ------------------------------------------------------------------------------------------------ quality


def test_sharpness_ratio_identical_and_blurred():
    img = _texture(seed=4)
    mask = _disc(*img.shape[:2])
    assert FM.sharpness_ratio(img, img.copy(), mask) == 1.0
    blurred = cv2.GaussianBlur(img, (0, 0), 1.5)
    assert FM.sharpness_ratio(blurred, img, mask) < 0.5
    sixteen = img.astype(np.uint16) * 257  # bit depth does not change the measure
    assert FM.laplacian_energy(sixteen, mask) == pytest.approx(FM.laplacian_energy(img, mask), rel=1e-4)


def test_seam_ratio_identical_hard_and_feathered_paste():
    img = (128 + 0.15 * (_texture(seed=6).astype(np.float32) - 128)).astype(np.uint8)  # low contrast, like skin
    mask = _disc(*img.shape[:2])
    assert FM.seam_ratio(img, img.copy(), mask) == 1.0
    shifted = np.clip(img.astype(np.float32) + 25, 0, 255)
    hard = np.where(mask[..., None], shifted, img).astype(np.uint8)
    soft_alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 6)[..., None]
    soft = (soft_alpha * shifted + (1 - soft_alpha) * img).astype(np.uint8)
    hard_seam = FM.seam_ratio(hard, img, mask, width=2)
    soft_seam = FM.seam_ratio(soft, img, mask, width=2)
    assert hard_seam > 1.5
    assert 1.0 <= soft_seam < hard_seam


def test_boundary_step_sees_feathered_tone_mismatch():
    img = (128 + 0.15 * (_texture(seed=8).astype(np.float32) - 128)).astype(np.uint8)
    mask = _disc(*img.shape[:2])
    assert FM.boundary_step(img, img.copy(), mask, width=8) == 0.0
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 6)[..., None]
    brighter = (alpha * (img + 20.0) + (1 - alpha) * img).astype(np.uint8)  # +20 levels, feathered edge
    step = FM.boundary_step(brighter, img, mask, width=8)
    assert 0.3 * 20 * math.sqrt(3) < step < 20 * math.sqrt(3) + 1  # caught although the edge is soft
    assert FM.seam_ratio(brighter, img, mask, width=2) < 1.5  # ... where the gradient hardly moves
    assert np.isnan(FM.boundary_step(img, img, np.zeros(mask.shape, bool), width=8))


def _low_contrast(seed: int) -> np.ndarray:
    return (128 + 0.15 * (_texture(seed=seed).astype(np.float32) - 128)).astype(np.uint8)  # like skin


def test_boundary_tone_offset_of_a_hard_uniform_patch_is_exact_and_ignores_a_feature_at_the_edge():
    img = _low_contrast(9)
    mask = _disc(*img.shape[:2])
    assert FM.boundary_tone_offset(img, img.copy(), mask, width=8) == 0.0
    patch = np.where(mask[..., None], img.astype(np.int16) + 12, img).astype(np.uint8)
    assert FM.boundary_tone_offset(patch, img, mask, width=8) == pytest.approx(12 * math.sqrt(3), rel=1e-12)
    steps = FM.boundary_arc_steps(patch, img, mask, width=8)
    assert steps.shape == (FM.STEP_ARCS, 3) and (steps == 12).all()
    browed = patch.copy()
    browed[36:40, 95:105] = 20  # a dark brow inside the top edge: less than half of its arcs' bands
    assert FM.boundary_tone_offset(browed, img, mask, width=8) == pytest.approx(12 * math.sqrt(3), rel=1e-12)
    moved = FM.boundary_step(browed, img, mask, width=8) - FM.boundary_step(patch, img, mask, width=8)
    assert abs(moved) > 0.5  # the point-by-point step does move


def test_boundary_tone_offset_averages_out_a_difference_that_changes_sign_along_the_border():
    img = _low_contrast(10)
    mask = _disc(*img.shape[:2])  # centre x = 100
    xx = np.mgrid[:img.shape[0], :img.shape[1]][1]
    sign = np.where(xx < 100, 10, -10)[..., None]  # the left half lighter, the right half darker
    two_sided = np.where(mask[..., None], img.astype(np.int16) + sign, img).astype(np.uint8)
    assert FM.boundary_tone_offset(two_sided, img, mask, width=8) == 0.0
    assert FM.boundary_step(two_sided, img, mask, width=8) > 10  # the point-by-point step sees both sides


def test_boundary_tone_offset_sees_a_feathered_patch_and_needs_a_boundary():
    img = _low_contrast(11)
    mask = _disc(*img.shape[:2])
    alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 6)[..., None]
    brighter = (alpha * (img + 20.0) + (1 - alpha) * img).astype(np.uint8)
    assert 0.3 * 20 * math.sqrt(3) < FM.boundary_tone_offset(brighter, img, mask, width=8) < 20 * math.sqrt(3)
    assert np.isnan(FM.boundary_tone_offset(img, img, np.zeros(mask.shape, bool), width=8))
    assert np.isnan(FM.boundary_tone_offset(img, img, np.ones(mask.shape, bool), width=8))
    assert FM.boundary_arc_steps(img, img, np.zeros(mask.shape, bool), width=8).shape == (0, 3)


def test_change_mask_finds_a_pasted_region():
    img = _texture(seed=7)
    mask = _disc(*img.shape[:2])
    pasted = np.where(mask[..., None], 255 - img, img).astype(np.uint8)
    found = FM.change_mask(pasted, img, sigma=1.0)
    iou = (found & mask).sum() / (found | mask).sum()
    assert iou > 0.9
    assert not FM.change_mask(img, img.copy()).any()


def test_boundary_ring_and_polygon_mask():
    m = M.polygon_mask((50, 60), np.array([[10, 10], [40, 10], [40, 30], [10, 30]], float))
    assert m.sum() == 31 * 21  # pixel centres on the edges are inside
    ring = FM.boundary_ring(m, 2)
    assert ring[10, 25] and ring[8, 25] and not ring[20, 25] and not ring[2, 2]


def test_face_polygon_covers_points_and_forehead():
    p = _face_points()
    p[judges.CHIN] = [50, 160]
    p[list(judges.BROWS)] = np.linspace([0, 20], [100, 20], len(judges.BROWS))
    poly = M.face_polygon(p, forehead=0.3)
    assert poly[:, 1].min() == pytest.approx(20 - 0.3 * 140, abs=1e-3)
    assert poly[:, 1].max() == pytest.approx(160)


def test_summarize_ignores_nan():
    s = M.summarize([1.0, np.nan, 3.0])
    assert s["mean"] == 2.0 and s["n"] == 2 and s["max"] == 3.0
    assert M.summarize([np.nan])["mean"] is None
