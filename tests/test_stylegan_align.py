"""FFHQ alignment from dense landmarks: exact quad and crop matrix on synthetic keypoints, rotation invariance."""

import math

import torch

from vidswap.faces.align import transform_points
from vidswap.faces.types import LEFT_EYE_CONTOUR, MOUTH_CORNERS, NOSE_TIP, RIGHT_EYE_CONTOUR
from vidswap.swap.stylegan.align import FFHQCrop, ffhq_quad


def landmarks_with(eye_l, eye_r, nose, mouth_l, mouth_r) -> torch.Tensor:
    """(1, 478, 3) landmarks whose five keypoints (kps5_from_landmarks) are exactly these points."""
    lm = torch.zeros(1, 478, 3)
    lm[0, list(RIGHT_EYE_CONTOUR), :2] = torch.tensor(eye_l)
    lm[0, list(LEFT_EYE_CONTOUR), :2] = torch.tensor(eye_r)
    lm[0, NOSE_TIP, :2] = torch.tensor(nose)
    lm[0, MOUTH_CORNERS[0], :2] = torch.tensor(mouth_l)
    lm[0, MOUTH_CORNERS[1], :2] = torch.tensor(mouth_r)
    return lm


FACE = dict(eye_l=(40.0, 50.0), eye_r=(60.0, 50.0), nose=(50.0, 65.0), mouth_l=(42.0, 80.0), mouth_r=(58.0, 80.0))


def test_ffhq_quad_of_an_upright_face():
    # eye_to_eye (20, 0), eye_to_mouth (0, 30): x = (20, 0) - (-30, 0) = (50, 0) -> unit x * max(40, 54) = (54, 0);
    # y = (0, 54); c = (50, 50) + 0.1 (0, 30) = (50, 53)
    kps = torch.tensor([[FACE[k] for k in ("eye_l", "eye_r", "nose", "mouth_l", "mouth_r")]])
    quad = ffhq_quad(kps)
    expected = torch.tensor([[[-4.0, -1.0], [-4.0, 107.0], [104.0, 107.0], [104.0, -1.0]]], dtype=torch.float64)
    torch.testing.assert_close(quad, expected)


def test_ffhq_crop_maps_the_quad_onto_the_square():
    crop = FFHQCrop(size=1024)
    m = crop.frame_to_crop(landmarks_with(**FACE))
    s = 1024 / 108
    expected = torch.tensor([[[s, 0.0, 512 - 50 * s], [0.0, s, 512 - 53 * s]]])
    torch.testing.assert_close(m, expected, rtol=0, atol=1e-4)
    corners = transform_points(m[0].double(), ffhq_quad(torch.tensor([[FACE[k] for k in FACE]]))[0])
    torch.testing.assert_close(corners, torch.tensor([[0.0, 0.0], [0.0, 1024.0], [1024.0, 1024.0], [1024.0, 0.0]],
                                                     dtype=torch.float64), rtol=0, atol=1e-3)


def test_ffhq_crop_is_rotation_and_translation_invariant():
    crop = FFHQCrop(size=256)
    a = math.radians(30.0)
    rot = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    moved = {k: tuple((rot @ torch.tensor(v) + torch.tensor([300.0, -20.0])).tolist()) for k, v in FACE.items()}
    m0 = crop.frame_to_crop(landmarks_with(**FACE))[0].double()
    m1 = crop.frame_to_crop(landmarks_with(**moved))[0].double()
    for k in FACE:
        p0 = transform_points(m0, torch.tensor([FACE[k]], dtype=torch.float64))
        p1 = transform_points(m1, torch.tensor([moved[k]], dtype=torch.float64))
        torch.testing.assert_close(p0, p1, rtol=0, atol=1e-3)
