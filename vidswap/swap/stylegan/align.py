"""FFHQ alignment: the crop StyleGAN face generators were trained on, from our landmarks.

The FFHQ dataset recipe (Karras et al. 2019, the dataset's alignment script; facts only): from the two eye
centres and the two mouth corners,

    eye_avg = (eye_l + eye_r) / 2,  eye_to_eye = eye_r - eye_l,  eye_to_mouth = (mouth_l + mouth_r) / 2 - eye_avg
    x = eye_to_eye - rot90(eye_to_mouth),  |x| = max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)
    y = rot90(x),  c = eye_avg + 0.1 eye_to_mouth
    quad = (c - x - y, c - x + y, c + x + y, c + x - y)      (top-left, bottom-left, bottom-right, top-right)

where rot90((u, v)) = (-v, u) turns image-down into image-left. The quad maps onto the square output, so the crop
is a similarity: centre c to the middle, x along +x with scale size / (2 |x|). The eye centres and mouth corners come
from the dense landmarks through :func:`~vidswap.faces.align.kps5_from_landmarks` (image-left eye first).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vidswap.faces.align import CropSpec, kps5_from_landmarks

__all__ = ["FFHQCrop", "ffhq_frame", "ffhq_matrix", "ffhq_quad"]


def _rot90(v: Tensor) -> Tensor:
    """(..., 2) vectors turned a quarter: (u, v) -> (-v, u)."""
    return torch.stack([-v[..., 1], v[..., 0]], -1)


def ffhq_frame(kps: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 5, 2) keypoints (eyes, nose, mouth corners; image-left first) -> FFHQ centre c (B, 2) and half-axis
    x (B, 2) of the crop square."""
    kps = kps.double()
    eye_l, eye_r, mouth_l, mouth_r = kps[:, 0], kps[:, 1], kps[:, 3], kps[:, 4]
    eye_avg = (eye_l + eye_r) / 2
    eye_to_eye = eye_r - eye_l
    eye_to_mouth = (mouth_l + mouth_r) / 2 - eye_avg
    x = eye_to_eye - _rot90(eye_to_mouth)
    x = x / x.norm(dim=-1, keepdim=True)
    x = x * torch.maximum(eye_to_eye.norm(dim=-1) * 2.0, eye_to_mouth.norm(dim=-1) * 1.8)[:, None]
    return eye_avg + 0.1 * eye_to_mouth, x


def ffhq_quad(kps: Tensor) -> Tensor:
    """(B, 5, 2) keypoints -> (B, 4, 2) the FFHQ quad in frame pixels (top-left, bottom-left, bottom-right,
    top-right)."""
    c, x = ffhq_frame(kps)
    y = _rot90(x)
    return torch.stack([c - x - y, c - x + y, c + x + y, c + x - y], 1)


def ffhq_matrix(kps: Tensor, size: int) -> Tensor:
    """(B, 5, 2) keypoints -> (B, 2, 3) frame -> FFHQ crop matrices at side ``size``."""
    c, x = ffhq_frame(kps)
    scale = size / (2.0 * x.norm(dim=-1))  # (B,)
    cos, sin = x[:, 0] / x.norm(dim=-1), x[:, 1] / x.norm(dim=-1)
    rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], 1)  # x -> +x
    lin = scale[:, None, None] * rot
    t = size / 2.0 - (lin @ c[:, :, None])[:, :, 0]
    return torch.cat([lin, t[:, :, None]], -1).float()


@dataclass(frozen=True)
class FFHQCrop(CropSpec):
    """The FFHQ crop at ``size`` (1024 for NVIDIA's FFHQ checkpoints; a generator's resolution generally)."""

    def frame_to_crop(self, landmarks: Tensor) -> Tensor:
        return ffhq_matrix(kps5_from_landmarks(landmarks), self.size)
