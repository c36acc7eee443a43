"""2D similarity alignment, crop specs (mesh and five-point template), inverse matrices and batched kornia crops."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vidswap.errors import InputError
from vidswap.faces.align import (ARCFACE_TEMPLATE_112, MeshCrop, TemplateCrop, arcface_template, as_rgb8,
                                 crop_frame_from_landmarks, estimate_alignment, images_to_tensor, invert_affine,
                                 similarity_transform, transform_landmarks, transform_points, warp_crops)
from vidswap.faces.types import LEFT_EYE_CONTOUR, MOUTH_CORNERS, NOSE_TIP, RIGHT_EYE_CONTOUR


def similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def test_recovers_exact_similarity_batched_numpy_and_torch():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, (6, 5, 2))
    truth = np.stack([similarity(rng.uniform(0.2, 3), rng.uniform(-3, 3), *rng.uniform(-200, 200, 2))
                      for _ in range(6)])
    dst = src @ np.swapaxes(truth[:, :, :2], 1, 2) + truth[:, None, :, 2]
    m = similarity_transform(src, dst)
    assert m.shape == (6, 2, 3) and m.dtype == np.float32
    np.testing.assert_allclose(m, truth, atol=1e-3)
    mt = similarity_transform(torch.tensor(src), torch.tensor(dst))
    assert isinstance(mt, torch.Tensor)
    np.testing.assert_allclose(mt.numpy(), truth, atol=1e-6)


def test_least_squares_matches_opencv_and_weights():
    rng = np.random.default_rng(1)
    src = (ARCFACE_TEMPLATE_112 * 2 + 40 + rng.normal(0, 2, (5, 2))).astype(np.float32)
    m = similarity_transform(src, ARCFACE_TEMPLATE_112)
    # no reflection: the linear part is [[a, -b], [b, a]]
    assert m[0, 0] == pytest.approx(m[1, 1]) and m[0, 1] == pytest.approx(-m[1, 0])
    # least squares among similarities: any small change of a, b, tx or ty raises the residual
    def residual(mat):
        return ((src @ mat[:, :2].T + mat[:, 2] - ARCFACE_TEMPLATE_112) ** 2).sum()
    base = residual(m.astype(np.float64))
    steps = [np.array([[1, 0, 0], [0, 1, 0]]), np.array([[0, -1, 0], [1, 0, 0]]),
             np.array([[0, 0, 1], [0, 0, 0]]), np.array([[0, 0, 0], [0, 0, 1]])]
    for step in steps:
        for eps in (1e-3, -1e-3):
            assert residual(m + eps * step) > base
    # zero weight on a point = leaving it out
    w = np.array([1, 1, 1, 1, 0.0])
    np.testing.assert_allclose(similarity_transform(src, ARCFACE_TEMPLATE_112, w),
                               similarity_transform(src[:4], ARCFACE_TEMPLATE_112[:4]), atol=1e-5)


def test_templates():
    np.testing.assert_allclose(arcface_template(112), ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(arcface_template(224), ARCFACE_TEMPLATE_112 * 2)
    t128 = arcface_template(128)  # InsightFace: the 112 template centred in 128 (x + 8)
    np.testing.assert_allclose(t128, ARCFACE_TEMPLATE_112 + [8, 0], atol=1e-5)
    kps = ARCFACE_TEMPLATE_112 * 3 + [100, 50]
    m = estimate_alignment(kps[None], 256)
    np.testing.assert_allclose(transform_points(m, kps[None]), arcface_template(256)[None], atol=1e-3)


def test_invert_and_transform_points():
    m = np.stack([similarity(1.7, 0.4, 10, -20), similarity(0.3, -2.0, 5, 7)]).astype(np.float32)
    inv = invert_affine(m)
    pts = np.random.default_rng(2).uniform(-100, 100, (2, 7, 2)).astype(np.float32)
    np.testing.assert_allclose(transform_points(inv, transform_points(m, pts)), pts, atol=1e-3)
    inv_t = invert_affine(torch.tensor(m, dtype=torch.float64))
    np.testing.assert_allclose(inv_t.numpy(), inv, atol=1e-5)
    np.testing.assert_allclose(transform_points(torch.tensor(m), torch.tensor(pts)).numpy(),
                               transform_points(m, pts), atol=1e-4)
    np.testing.assert_allclose(invert_affine(inv), m, atol=1e-4)


def test_warp_crops_matches_cv2_warpaffine(media):
    img = np.ascontiguousarray(cv2.imread(str(media("astronaut")))[:, :, ::-1])
    frames = images_to_tensor([img, img[::-1].copy()])
    mats = np.stack([similarity(0.5, 0.2, -40, -10), similarity(0.8, -0.3, -60, 30)]).astype(np.float32)
    # 3 crops from 2 frames via index
    crops = warp_crops(frames, mats[[0, 1, 0]], 112, index=[0, 1, 0])
    assert crops.shape == (3, 3, 112, 112)
    for crop, src, m in ((crops[0], img, mats[0]), (crops[1], img[::-1].copy(), mats[1])):
        ref = cv2.warpAffine(src, m, (112, 112), flags=cv2.INTER_LINEAR).astype(np.float32) / 255
        got = crop.permute(1, 2, 0).numpy()
        assert np.abs(got - ref)[2:-2, 2:-2].max() < 2.5 / 255  # uint8 rounding in cv2
    torch.testing.assert_close(crops[0], crops[2])
    # paste-back direction: warping the crop with the inverse puts content back where it came from
    back = warp_crops(crops[:1], invert_affine(mats[:1]), (img.shape[0], img.shape[1]))
    inside = cv2.warpAffine(np.ones((112, 112), np.uint8), invert_affine(mats[0]), (img.shape[1], img.shape[0])) > 0
    inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    diff = (back[0].permute(1, 2, 0).numpy() - img / 255.0)[inside]
    assert np.abs(diff).mean() < 0.03
    with pytest.raises(ValueError):
        warp_crops(frames, mats[[0, 1, 0]], 112)


def test_as_rgb8_converts_plate_formats():
    rgb = np.random.default_rng(3).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    assert as_rgb8(rgb) is rgb
    np.testing.assert_array_equal(as_rgb8(rgb.astype(np.uint16) * 257), rgb)
    np.testing.assert_array_equal(as_rgb8(rgb.astype(np.float32) / 255), rgb)
    np.testing.assert_array_equal(as_rgb8(np.dstack([rgb, rgb[..., :1]])), rgb)
    with pytest.raises(InputError):
        as_rgb8(rgb[..., 0])


def landmarks_on(kps: torch.Tensor) -> torch.Tensor:
    """(B, 478, 3) landmarks whose five keypoints are ``kps`` (B, 5, 2) (the rest at the nose tip)."""
    lm = kps[:, 2:3, :].expand(-1, 478, -1).clone()
    lm[:, list(RIGHT_EYE_CONTOUR)] = kps[:, None, 0]
    lm[:, list(LEFT_EYE_CONTOUR)] = kps[:, None, 1]
    lm[:, MOUTH_CORNERS[0]] = kps[:, 3]
    lm[:, MOUTH_CORNERS[1]] = kps[:, 4]
    return torch.cat([lm, torch.zeros(lm.shape[0], 478, 1)], -1)


@pytest.mark.parametrize("size", [112, 128, 256])
def test_template_crop_maps_the_five_points_onto_the_arcface_template(size):
    """Faces whose keypoints are the template moved by a known similarity come back onto the template exactly."""
    crop = TemplateCrop.arcface(size)
    assert crop.size == size and np.allclose(np.array(crop.template), arcface_template(size))
    tpl = torch.from_numpy(arcface_template(size)).double()
    moves = torch.from_numpy(np.stack([similarity(2.0, 0.3, 400.0, 250.0), similarity(0.7, -1.2, 90.0, 60.0)]))
    kps = tpl @ moves[:, :, :2].transpose(1, 2) + moves[:, None, :, 2]  # template -> frame
    m = crop.frame_to_crop(landmarks_on(kps).float())
    assert m.shape == (2, 2, 3) and m.dtype == torch.float32
    back = transform_landmarks(landmarks_on(kps).float(), m)
    assert torch.allclose(back[:, list(RIGHT_EYE_CONTOUR)[0], :2].double(), tpl[0].expand(2, 2), atol=1e-3)
    assert torch.allclose(back[:, NOSE_TIP, :2].double(), tpl[2].expand(2, 2), atol=1e-3)
    expected = torch.from_numpy(invert_affine(moves.numpy())).double()  # frame -> template: the moves undone
    assert torch.allclose(m.double(), expected, atol=1e-3)


def test_template_crop_needs_five_points_and_mesh_crop_is_the_mesh_recipe():
    with pytest.raises(ValueError, match="5"):
        TemplateCrop(size=128, template=((1.0, 2.0),))
    lm = torch.rand(3, 478, 3) * 100 + 50
    assert torch.equal(MeshCrop(256, 0.3).frame_to_crop(lm), crop_frame_from_landmarks(lm, 256, 0.3))
