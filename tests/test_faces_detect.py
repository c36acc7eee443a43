"""YuNet detection on real media: decoding matches OpenCV, detection rates, rotation retry, edge faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidswap.errors import InputError
from vidswap.faces.detect import YuNetDetector, largest_face, nms
from vidswap.faces.types import Detection
from vidswap.models.registry import model_path


from media_helpers import read_frames, read_image  # noqa: E402


def test_decoding_matches_opencv_facedetectoryn(media):
    """At native input size (no resize) our onnxruntime decode + NMS equals cv2.FaceDetectorYN."""
    img = read_image(media("multi_face_image"))
    h, w = img.shape[:2]
    ours = YuNetDetector.from_path(model_path("yunet"), threads=2, input_size=max(h, w), score_threshold=0.6,
                                   min_face=0)([img])[0]
    cv = cv2.FaceDetectorYN.create(str(model_path("yunet")), "", (w, h), 0.6, 0.3, 5000)
    _, faces = cv.detect(np.ascontiguousarray(img[:, :, ::-1]))
    assert len(ours) == len(faces) == 5
    ref = sorted(faces, key=lambda f: -f[14])
    for d, f in zip(ours, ref):
        np.testing.assert_allclose(d.box, [f[0], f[1], f[0] + f[2], f[1] + f[3]], atol=0.05)
        np.testing.assert_allclose(d.kps, f[4:14].reshape(5, 2), atol=0.05)
        assert d.score == pytest.approx(float(f[14]), abs=1e-4)


def test_multi_face_image_finds_five(media, detector):
    dets = detector([read_image(media("multi_face_image"))])[0]
    assert len(dets) == 5
    assert all(d.score >= 0.6 and d.angle == 0 and not d.truncated for d in dets)
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    for d in dets:  # keypoints inside their box, eyes above the mouth, image-left eye first
        assert np.all(d.kps >= d.box[:2] - 2) and np.all(d.kps <= d.box[2:] + 2)
        assert d.kps[0, 0] < d.kps[1, 0] and d.kps[3, 0] < d.kps[4, 0]
        assert d.kps[:2, 1].mean() < d.kps[2, 1] < d.kps[3:, 1].mean()


def test_pexels_clip_detection_rate(media, detector):
    """Every 2nd frame of the Pexels clip (occlusions, expressions): the face is found in >= 98% of frames."""
    frames = read_frames(media("pexels_clip"), step=2)
    results = detector(frames)
    found = sum(1 for r in results if r)
    rate = found / len(frames)
    print(f"pexels_clip: face found in {found}/{len(frames)} frames ({rate:.1%})")
    assert len(frames) >= 230
    assert rate >= 0.98
    assert sum(len(r) > 1 for r in results) <= 0.02 * len(frames)  # no ghost second faces


def test_carphone_small_faces(media, detector):
    """176x144 clip, face ~50 px: found in every 3rd frame sampled (the frame is scaled up to the input)."""
    frames = read_frames(media("carphone_clip"), step=3)
    results = detector(frames)
    found = [largest_face(r) for r in results]
    assert sum(f is not None for f in found) >= 0.95 * len(frames)
    widths = [f.width for f in found if f is not None]
    assert 30 < np.median(widths) < 80


def test_no_face_clip_is_empty(media, detector):
    frames = read_frames(media("no_face_clip"), step=4)
    assert frames
    assert detector(frames) == [[] for _ in frames]


def test_batched_equals_single(media, detector):
    frames = read_frames(media("single_face_clip"), step=9)
    batched = detector(frames)
    for frame, dets in zip(frames, batched):
        single = detector([frame])[0]
        assert len(single) == len(dets) == 1
        np.testing.assert_allclose(single[0].box, dets[0].box, atol=1e-3)


def test_network_frames_given_equal_the_detectors_own(media, detector):
    """The analysis hands the detector the frames it reduced (and takes its cut thumbnails from them): the same
    detections as the detector's own reduction, for plates larger, equal to and smaller than its input."""
    frame = read_image(media("multi_face_image"))
    for size in (640, 320, 200):
        f = cv2.resize(frame, (size, round(size * frame.shape[0] / frame.shape[1])), interpolation=cv2.INTER_AREA)
        small = detector.network_frame(f)
        assert max(small.shape[:2]) == detector.input_size and small.dtype == np.uint8
        if max(f.shape[:2]) == detector.input_size:
            assert small is f
        given, own = detector([f], resized=[small])[0], detector([f])[0]
        assert len(given) == len(own) and (len(own) > 0 or size < 320)  # 200 px: the faces are too small
        for a, b in zip(given, own):
            assert np.array_equal(a.box, b.box) and np.array_equal(a.kps, b.kps) and a.score == b.score


def test_mixed_sizes_in_one_call(media, detector):
    a = read_image(media("multi_face_image"))
    b = read_image(media("astronaut"))
    out = detector([a, b, a.astype(np.uint16) * 257])  # a 16-bit plate is analysed as 8-bit
    assert [len(r) for r in out] == [5, 1, 5]
    np.testing.assert_allclose(out[2][0].box, out[0][0].box, atol=1e-3)


def test_rotation_retry_maps_back(media):
    """A frame turned sideways: nothing upright, the 270-degree retry finds the faces, mapped to the frame."""
    img = read_image(media("multi_face_image"))
    h = img.shape[0]
    upright = YuNetDetector.from_path(model_path("yunet"), threads=2, input_size=640)([img])[0]
    sideways = cv2.rotate(img, cv2.ROTATE_90_CLOCKWISE)  # upright (x, y) -> (h - 1 - y, x)
    det = YuNetDetector.from_path(model_path("yunet"), threads=2, input_size=640, angles=(0, 90, 180, 270))
    assert YuNetDetector.from_path(model_path("yunet"), threads=2, input_size=640)([sideways])[0] == []
    found = det([sideways])[0]
    assert len(found) == 5 and all(d.angle == 270 for d in found)
    for d in found:
        # map back to the upright image and match the nearest upright detection
        kps_up = np.stack([d.kps[:, 1], h - 1 - d.kps[:, 0]], -1)
        ref = min(upright, key=lambda u: np.abs(u.kps - kps_up).sum())
        iod = np.linalg.norm(ref.kps[0] - ref.kps[1])
        assert np.abs(ref.kps - kps_up).max() < 0.15 * iod
        x0, y0, x1, y1 = d.box  # box is axis-aligned in the sideways frame and contains the keypoints
        assert np.all((d.kps[:, 0] > x0) & (d.kps[:, 0] < x1) & (d.kps[:, 1] > y0) & (d.kps[:, 1] < y1))


def test_truncated_face_at_frame_edge(media, detector):
    img = read_image(media("astronaut"))
    full = largest_face(detector([img])[0])
    assert full is not None and not full.truncated
    x0, _, x1, _ = full.box
    cut = np.ascontiguousarray(img[:, int(x0 + 0.3 * (x1 - x0)):])  # left ~30% of the face cut away
    part = largest_face(detector([cut])[0])
    assert part is not None and part.truncated and part.box[0] < 0


def test_min_face_and_threshold(media):
    img = read_image(media("multi_face_image"))
    sizes = [d.width for d in YuNetDetector.from_path(model_path("yunet"), threads=2)([img])[0]]
    big_only = YuNetDetector.from_path(model_path("yunet"), threads=2, min_face=max(sizes) + 1)([img])[0]
    assert big_only == []
    strict = YuNetDetector.from_path(model_path("yunet"), threads=2, score_threshold=0.999)([img])[0]
    assert strict == []


def test_bad_angles_rejected():
    with pytest.raises(InputError):
        YuNetDetector.from_path(model_path("yunet"), angles=(0, 45))


def test_largest_face_and_nms():
    a = Detection(np.array([0, 0, 10, 10], np.float32), np.zeros((5, 2), np.float32), 0.9)
    b = Detection(np.array([0, 0, 20, 20], np.float32), np.zeros((5, 2), np.float32), 0.7)
    assert largest_face([a, b]) is b and largest_face([]) is None
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    keep = nms(boxes, np.array([0.5, 0.9, 0.8]), 0.3)
    assert keep.tolist() == [1, 2]
