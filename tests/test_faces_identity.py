"""SFace identity embeddings on real faces: same person across a clip vs different people."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidswap.faces.align import images_to_tensor
from vidswap.faces.detect import largest_face
from vidswap.faces.identity import IdentityEncoder, align_faces, cosine, l2_normalize
from vidswap.models.registry import model_path
from vidswap.models.runtime import prepare_onnx


from media_helpers import read_frames, read_image  # noqa: E402


@pytest.fixture(scope="module")
def encoder():
    return IdentityEncoder.from_path(model_path("sface"), threads=2)


def embed_frames(frames, detector, mesh, encoder) -> np.ndarray:
    """One embedding per frame, aligned on the mesh's five keypoints (what the pipeline uses)."""
    dets = [[largest_face(d)] for d in detector(frames)]
    assert all(d[0] is not None for d in dets)
    kps = np.stack([lm[0].kps5 for lm in mesh(frames, dets)])
    return encoder.embed(frames, kps)


@pytest.fixture(scope="module")
def embeddings(media, detector, mesh, encoder) -> dict[str, np.ndarray]:
    out = {
        "pexels_clip": embed_frames(read_frames(media("pexels_clip"), step=16), detector, mesh, encoder),
        "single_face_clip": embed_frames(read_frames(media("single_face_clip"), step=6), detector, mesh, encoder),
        "carphone_clip": embed_frames(read_frames(media("carphone_clip"), step=10), detector, mesh, encoder),
    }
    for name in ("portrait_f1", "portrait_m7", "astronaut", "grace_hopper"):
        out[name] = embed_frames([read_image(media(name))], detector, mesh, encoder)
    return out


def test_same_person_well_above_different_people(embeddings):
    """Each clip's frames against the clip's mean identity vs every other person's faces.

    Measured (SFace, mesh keypoints): frames vs clip mean min 0.64 (pexels: a hand across the eyes; median
    0.85), 0.93 (single_face_clip), 0.85 (carphone); different people max 0.24.
    """
    clips = ("pexels_clip", "single_face_clip", "carphone_clip")
    cross_max = max(float(cosine(embeddings[a][:, None], embeddings[b][None]).max())
                    for a in embeddings for b in embeddings if a < b)
    lines = []
    for clip in clips:
        e = embeddings[clip]
        same = cosine(e, l2_normalize(e.mean(0)))
        pair = cosine(e[:, None], e[None])[~np.eye(len(e), dtype=bool)]
        lines.append(f"{clip}: frames vs clip mean min {same.min():.2f} median {np.median(same):.2f}; "
                     f"frame pairs min {pair.min():.2f}")
        assert same.min() > 0.5
        assert same.min() - cross_max > 0.2
        assert np.median(pair) > 0.6
    print("\n".join(lines + [f"different people (all pairs of frames/photos): max {cross_max:.2f}"]))
    assert cross_max < 0.35


def test_embeddings_are_unit_length(embeddings):
    for e in embeddings.values():
        assert e.dtype == np.float32 and e.shape[1] == 128
        np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_matches_opencv_face_recognizer(media, tmp_path, encoder):
    """Same preprocessing as cv2.FaceRecognizerSF (alignment + RGB 0-255 input)."""
    bgr = cv2.imread(str(media("astronaut")))
    h, w = bgr.shape[:2]
    _, faces = cv2.FaceDetectorYN.create(str(model_path("yunet")), "", (w, h)).detect(bgr)
    stripped = tmp_path / "sface.onnx"
    stripped.write_bytes(prepare_onnx(model_path("sface")))  # OpenCV 5 also needs the unused inputs gone
    rec = cv2.FaceRecognizerSF.create(str(stripped), "")
    ref = rec.feature(rec.alignCrop(bgr, faces[0])).ravel()
    ours = encoder.embed([np.ascontiguousarray(bgr[:, :, ::-1])], faces[0][4:14].reshape(1, 5, 2))[0]
    assert float(cosine(ours, ref)) > 0.999


def test_batch_tensor_and_flip_consistency(media, detector, encoder):
    frames = read_frames(media("single_face_clip"), step=10)
    kps = np.stack([largest_face(d).kps for d in detector(frames)])
    batched = encoder.embed(frames, kps)
    singles = np.concatenate([encoder.embed([f], k[None]) for f, k in zip(frames, kps)])
    np.testing.assert_allclose(batched, singles, atol=1e-4)
    from_tensor = encoder.embed(images_to_tensor(frames), kps)  # kornia crops of torch frames
    assert cosine(from_tensor, batched).min() > 0.995
    # a mirrored face is still the same person
    w = frames[0].shape[1]
    flipped = np.ascontiguousarray(frames[0][:, ::-1])
    kf = kps[0].copy()
    kf[:, 0] = w - 1 - kf[:, 0]
    kf = kf[[1, 0, 2, 4, 3]]
    assert float(cosine(encoder.embed([flipped], kf[None])[0], batched[0])) > 0.8


def test_align_faces_puts_keypoints_on_the_template(media, detector):
    img = read_image(media("grace_hopper"))
    det = largest_face(detector([img])[0])
    crops, mats = align_faces([img], det.kps[None])
    assert crops.shape == (1, 3, 112, 112) and crops.dtype == torch.float32
    assert 0.0 <= float(crops.min()) and float(crops.max()) <= 1.0
    mapped = det.kps @ mats[0, :, :2].T + mats[0, :, 2]
    from vidswap.faces.align import ARCFACE_TEMPLATE_112
    assert np.abs(mapped - ARCFACE_TEMPLATE_112).max() < 6.0
    assert align_faces([img], np.zeros((0, 5, 2)))[0].shape == (0, 3, 112, 112)


def test_cosine_shapes():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    b = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, -1.0]])
    m = cosine(a[:, None], b[None])
    assert m.shape == (2, 3)
    np.testing.assert_allclose(m, [[1, 2 ** -0.5, 0], [0, 2 ** -0.5, -1]], atol=1e-6)
    t = cosine(torch.tensor(a), torch.tensor(a))
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.ones(2, dtype=t.dtype))
