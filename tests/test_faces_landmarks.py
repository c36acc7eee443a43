"""478-point landmarks (MediaPipe mesh + iris under LiteRT) on real faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidswap.faces.align import kps5_from_landmarks
from vidswap.faces.detect import largest_face
from vidswap.faces.landmarks import (LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR, Rois, crop_matrices, crop_to_frame,
                                     rois_from_landmarks)
from vidswap.faces.types import NUM_LANDMARKS, Detection, FaceLandmarks

# left/right partners (subject's right <-> left) and points on the midline
MIRROR_PAIRS = [(33, 263), (133, 362), (61, 291), (468, 473), (234, 454), (70, 300), (1, 1), (152, 152), (10, 10)]
FRONTAL = ["astronaut", "portrait_f1", "grace_hopper"]


from media_helpers import read_frames, read_image  # noqa: E402


def eye_loop(indices: tuple[int, ...]) -> list[int]:
    """The 16 contour points as a closed polygon: lower lid corner->corner, then the upper lid back."""
    lower, upper = list(indices[:9]), list(indices[9:])
    return lower + upper[::-1]


def landmarks_of(img, detector, mesh) -> tuple[Detection, FaceLandmarks]:
    det = largest_face(detector([img])[0])
    assert det is not None
    return det, mesh([img], [[det]])[0][0]


@pytest.mark.parametrize("name", FRONTAL + ["portrait_m7", "single_face_image"])
def test_landmarks_on_the_face(media, detector, mesh, name):
    img = read_image(media(name))
    det, lm = landmarks_of(img, detector, mesh)
    pts = lm.points
    assert pts.shape == (NUM_LANDMARKS, 3) and pts.dtype == np.float32 and lm.kps5.shape == (5, 2)
    assert lm.confidence > 0.9
    # inside the detection box expanded by 25% per side
    w, h = det.width, det.height
    lo = det.box[:2] - 0.25 * np.array([w, h])
    hi = det.box[2:] + 0.25 * np.array([w, h])
    assert np.all(pts[:, :2] >= lo) and np.all(pts[:, :2] <= hi)
    # the iris centres sit inside their eye's contour; the right iris is the image-left one
    for centre, contour in ((468, RIGHT_EYE_CONTOUR), (473, LEFT_EYE_CONTOUR)):
        poly = pts[eye_loop(contour), :2].astype(np.float32).reshape(-1, 1, 2)
        assert cv2.pointPolygonTest(poly, tuple(map(float, pts[centre, :2])), False) >= 0
    assert pts[468, 0] < pts[473, 0]
    # iris ring points around their centre, about an iris radius away (~0.1-0.3 of the eye width)
    eye_w = np.linalg.norm(pts[33, :2] - pts[133, :2])
    ring = np.linalg.norm(pts[469:473, :2] - pts[468, :2], axis=1)
    assert np.all((ring > 0.1 * eye_w) & (ring < 0.45 * eye_w))
    # mesh keypoints agree with the detector's keypoints
    iod = np.linalg.norm(det.kps[0] - det.kps[1])
    assert np.linalg.norm(lm.kps5 - det.kps, axis=1).max() < 0.35 * iod
    # depth: same scale as x/y; the nose tip is in front of (smaller z than) the face oval
    face_w = np.ptp(pts[:468, 0])
    assert 0.3 * face_w < np.ptp(pts[:468, 2]) < 1.5 * face_w
    assert pts[1, 2] < np.percentile(pts[:468, 2], 10)
    assert pts[1, 2] < pts[234, 2] and pts[1, 2] < pts[454, 2]


@pytest.mark.parametrize("name", FRONTAL)
def test_frontal_face_is_symmetric(media, detector, mesh, name):
    """On frontal portraits, partner points sit at mirror distances from the eye-line centre."""
    _, lm = landmarks_of(read_image(media(name)), detector, mesh)
    p = lm.points[:, :2]
    iod = np.linalg.norm(p[33] - p[263])
    axis = (p[263] - p[33]) / iod
    mid = (p[33] + p[263]) / 2
    for a, b in MIRROR_PAIRS[:6]:
        assert abs(np.dot(p[a] - mid, axis) + np.dot(p[b] - mid, axis)) < 0.06 * iod, (a, b)


@pytest.mark.parametrize("name", FRONTAL + ["portrait_m7"])
def test_mirrored_image_gives_mirrored_landmarks(media, detector, mesh, name):
    img = read_image(media(name))
    w = img.shape[1]
    _, lm = landmarks_of(img, detector, mesh)
    _, lm_f = landmarks_of(np.ascontiguousarray(img[:, ::-1]), detector, mesh)
    a, b = lm.points, lm_f.points.copy()
    b[:, 0] = w - 1 - b[:, 0]
    iod = np.linalg.norm(a[33, :2] - a[263, :2])
    errors = [np.linalg.norm(a[i, :2] - b[j, :2]) for i, j in MIRROR_PAIRS]
    # a few px: eyes, mouth, irises within 4% of the eye distance; oval / brow / chin (softer edges) within 7%
    # (measured 0.1-5.4 px on faces 60-180 px between the eyes)
    assert max(errors[:4]) < 0.04 * iod, errors
    assert max(errors) < 0.07 * iod, errors
    # the whole mirrored mesh lies on the original one
    nn = np.sqrt(((a[:468, None, :2] - b[None, :468, :2]) ** 2).sum(-1)).min(1)
    assert np.median(nn) < 0.03 * iod


def test_roll_follows_the_face(media, detector, mesh):
    """A 30-degree in-plane rotation of the frame rotates the landmarks by the same amount."""
    img = read_image(media("astronaut"))
    _, lm = landmarks_of(img, detector, mesh)
    h, w = img.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 30, 1.0)
    _, lm_r = landmarks_of(cv2.warpAffine(img, rot, (w, h), borderMode=cv2.BORDER_REFLECT), detector, mesh)
    expected = lm.points[:, :2] @ rot[:, :2].T + rot[:, 2]
    iod = np.linalg.norm(lm.points[33, :2] - lm.points[263, :2])
    err = np.linalg.norm(lm_r.points[:, :2] - expected, axis=1)
    assert np.median(err) < 0.05 * iod and np.percentile(err, 95) < 0.12 * iod


def test_tracking_mode_follows_the_clip(media, detector, mesh):
    """Landmarks seeded once from the detector, then from the previous frame only, stay on the face."""
    frames = read_frames(media("pexels_clip"), limit=96)
    det = largest_face(detector(frames[:1])[0])
    prev = mesh(frames[:1], [[det]])[0][0]
    tracked = [prev]
    for frame in frames[1:]:
        prev = mesh([frame], [[prev]])[0][0]
        tracked.append(prev)
    assert min(t.confidence for t in tracked) > 0.5
    # compare with detector-seeded landmarks on every 8th frame (batched over frames)
    sample = list(range(0, len(frames), 8))
    dets = detector([frames[i] for i in sample])
    fresh = mesh([frames[i] for i in sample], [[largest_face(d)] for d in dets])
    for i, lms in zip(sample, fresh):
        iod = np.linalg.norm(lms[0].points[33, :2] - lms[0].points[263, :2])
        diff = np.linalg.norm(tracked[i].points[:, :2] - lms[0].points[:, :2], axis=1)
        assert np.median(diff) < 0.08 * iod, i


def test_batched_equals_single(media, detector, mesh):
    frames = read_frames(media("single_face_clip"), step=12)
    dets = [[largest_face(d)] for d in detector(frames)]
    batched = mesh(frames, dets)
    for frame, prior, out in zip(frames, dets, batched):
        single = mesh([frame], [prior])[0][0]
        np.testing.assert_allclose(out[0].points, single.points, atol=1e-3)


def test_multi_face_image_and_empty_frames(media, detector, mesh):
    img = read_image(media("multi_face_image"))
    dets = detector([img])[0]
    out = mesh([img, img], [dets, []])
    assert len(out[0]) == 5 and out[1] == []
    for det, lm in zip(dets, out[0]):  # each mesh on its own face
        centre = (det.box[:2] + det.box[2:]) / 2
        assert np.linalg.norm(lm.points[:468, :2].mean(0) - centre) < 0.3 * det.width
        assert lm.confidence > 0.5
    assert mesh([], []) == []


def test_no_face_gives_low_confidence(media, mesh):
    frame = read_frames(media("no_face_clip"), limit=1)[0]
    fake = Detection(np.array([300, 200, 420, 320], np.float32),
                     np.array([[330, 240], [390, 240], [360, 270], [335, 295], [385, 295]], np.float32), 1.0)
    assert mesh([frame], [[fake]])[0][0].confidence < 0.5


def test_small_faces_carphone(media, detector, mesh):
    frames = read_frames(media("carphone_clip"), step=15)
    dets = [[largest_face(d)] for d in detector(frames)]
    out = mesh(frames, dets)
    assert all(o[0].confidence > 0.5 for o in out)
    for o, d in zip(out, dets):
        assert np.linalg.norm(o[0].kps5 - d[0].kps, axis=1).max() < 0.5 * np.linalg.norm(d[0].kps[0] - d[0].kps[1])


def test_crop_roundtrip_and_rois():
    rois = Rois(np.array([[100.0, 80.0], [300.0, 200.0]]), np.array([150.0, 60.0]), np.array([0.3, -1.2]))
    m = crop_matrices(rois, 192)
    pts = np.array([[[120.0, 90.0], [50.0, 40.0]], [[310.0, 190.0], [280.0, 230.0]]])
    crop = pts @ np.swapaxes(m[:, :, :2], 1, 2) + m[:, None, :, 2]
    back = crop_to_frame(np.concatenate([crop + 0.5, np.ones((2, 2, 1))], -1), rois, 192)
    np.testing.assert_allclose(back[..., :2], pts, atol=1e-3)
    np.testing.assert_allclose(back[..., 2], (rois.size / 192)[:, None].repeat(2, 1), rtol=1e-5)
    # the ROI centre maps to the crop centre
    c = (m[:, :, :2] @ rois.center[..., None])[..., 0] + m[:, :, 2]
    np.testing.assert_allclose(c, 95.5, atol=1e-3)
    # landmark ROI of a rotated square of points: its centre, side * scale and its angle
    ang = 0.4
    rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    sq = np.random.default_rng(0).uniform(-50, 50, (1, 468, 2))
    sq[0, 33], sq[0, 263] = (-50, 0), (50, 0)
    sq[0, 0], sq[0, 1] = (-50, -50), (50, 50)
    pts = sq @ rot.T + [200, 100]
    r = rois_from_landmarks(pts, scale=1.5)
    np.testing.assert_allclose(r.angle, [ang], atol=1e-6)
    np.testing.assert_allclose(r.size, [150.0], atol=1e-6)
    np.testing.assert_allclose(r.center, [[200.0, 100.0]], atol=1e-6)


def test_kps5_from_landmarks_order_numpy_and_torch():
    pts = np.zeros((478, 3), np.float32)
    pts[list(RIGHT_EYE_CONTOUR), 0] = 10
    pts[list(LEFT_EYE_CONTOUR), 0] = 30
    pts[1] = (20, 25, 0)
    pts[61] = (12, 40, 0)
    pts[291] = (28, 40, 0)
    k = kps5_from_landmarks(pts)
    assert k.dtype == np.float32
    np.testing.assert_allclose(k, [[10, 0], [30, 0], [20, 25], [12, 40], [28, 40]])
    np.testing.assert_array_equal(kps5_from_landmarks(torch.from_numpy(pts)[None])[0].numpy(), k)
