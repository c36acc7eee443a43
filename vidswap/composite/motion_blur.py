"""Motion blur of the swapped face: the plate's camera smears a moving face over the time its shutter is open.

A render is drawn at one instant, so on a fast move (a head turn, a whip pan) the swapped face stays crisp while
the eyes and mouth that show through it, the hair around it and everything else in the plate are smeared: the
face reads as pasted on. As a compositor adds motion blur to a CG element, the render is smeared along the face's
own motion over the shutter's share of the frame interval (``composite.motion_blur``: 0.5 is the 180-degree
shutter of film and most video cameras; 0 leaves the render as drawn).

The face's motion comes from the analysis alone (the track's smoothed landmarks on the frames before and after),
so every frame's result depends only on the analysis and that frame, as farm chunks need. Per frame it is fitted
as an affine velocity field ``v(x) = A [x, y, 1]`` in crop pixels per frame (translation, rotation in the image
plane, a head coming closer), and the render is averaged over ``K`` positions along ``[-1/2, 1/2] x shutter x
v(x)`` with its alpha (premultiplied), so the face's edge and the holes the plate's eyes and mouth show through
smear as the plate's do.

Shapes: images (B, C, H, W) float, alpha (B, 1, H, W), motions (B, 2, 3).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["AUTO_SHUTTER", "track_shutter", "track_velocity", "crop_motion", "motion_blur", "path_length"]

_EPS = 1e-6
#: ``composite.motion_blur: auto`` for a track whose analysis could not measure its shutter (too few of its sampled
#: faces move): the 180-degree shutter of film and most video cameras
AUTO_SHUTTER = 0.5


def track_shutter(appearance: dict[str, np.ndarray] | None) -> float:
    """``composite.motion_blur: auto``: the shutter the analysis measured for a track (its appearance model's
    ``shutter``, :func:`~vidswap.appearance.sharpness.shutter_estimate`), or :data:`AUTO_SHUTTER` where it has none
    or it is NaN."""
    value = np.asarray((appearance or {}).get("shutter", np.nan), np.float64).reshape(-1)
    return float(value[0]) if value.size and np.isfinite(value[0]) else AUTO_SHUTTER


def track_velocity(frames: np.ndarray, points: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per-point image velocity (pixels per frame) at ``rows`` of a track: (N,) frame numbers, (N, P, 2) points,
    (B,) row indices -> (B, P, 2) float32.

    The central difference over the rows before and after where both are the adjacent frames; the one-sided
    difference where only one is (a track's first or last frame, or beside a gap); zero where neither is.
    """
    frames = np.asarray(frames, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((len(rows),) + tuple(points.shape[1:]), np.float32)
    for b, i in enumerate(rows):
        before = i > 0 and frames[i - 1] == frames[i] - 1
        after = i + 1 < len(frames) and frames[i + 1] == frames[i] + 1
        if before and after:
            out[b] = (points[i + 1] - points[i - 1]) * 0.5
        elif after:
            out[b] = points[i + 1] - points[i]
        elif before:
            out[b] = points[i] - points[i - 1]
    return out


def crop_motion(points: Tensor, velocity: Tensor, frame_to_crop: Tensor) -> Tensor:
    """The affine velocity field in crop pixels per frame that best explains the points' motion (least squares):
    (B, P, 2+) points in crop pixels, (B, P, 2) their velocities in frame pixels, (B, 2, 3) frame -> crop
    alignment -> (B, 2, 3) ``A`` with ``v(x) = A @ [x, y, 1]``."""
    linear = frame_to_crop[:, :, :2].to(points)
    v = torch.einsum("bij,bpj->bpi", linear, velocity.to(points))  # (B, P, 2) in crop pixels
    xy = points[..., :2]
    centre = xy.mean(1, keepdim=True)
    scale = (xy - centre).abs().mean((1, 2), keepdim=True).clamp(min=1.0)
    design = torch.cat([(xy - centre) / scale, torch.ones_like(xy[..., :1])], -1).double()  # (B, P, 3)
    normal = design.transpose(1, 2) @ design + 1e-9 * torch.eye(3, dtype=design.dtype, device=design.device)
    coef = torch.linalg.solve(normal, design.transpose(1, 2) @ v.double())  # (B, 3, 2): v = [(x-c)/s, 1] @ coef
    a = (coef[:, :2] / scale.double()).transpose(1, 2)  # (B, 2, 2)
    b = coef[:, 2] - (a @ centre.double().transpose(1, 2))[..., 0]  # (B, 2)
    return torch.cat([a, b[..., None]], -1).to(points.dtype)


def path_length(motion: Tensor, box: tuple[int, int, int, int], shutter: float) -> float:
    """The longest smear (pixels) of one frame's affine field ``motion`` (2, 3) over the box ``(x0, y0, x1, y1)``:
    an affine field's largest speed over a box is at one of its corners."""
    x0, y0, x1, y1 = box
    corners = torch.tensor([[x0, y0, 1.0], [x1, y0, 1.0], [x0, y1, 1.0], [x1, y1, 1.0]], dtype=motion.dtype,
                           device=motion.device)
    return float((corners @ motion.T).norm(dim=-1).max()) * shutter


def motion_blur(image: Tensor, alpha: Tensor, motion: Tensor, shutter: float, max_samples: int = 32,
                min_length: float = 0.5) -> tuple[Tensor, Tensor]:
    """Smear a render and its alpha along its motion over the shutter: (B, C, H, W), (B, 1, H, W), (B, 2, 3) affine
    velocity fields (crop pixels per frame, :func:`crop_motion`) -> the blurred (image, alpha).

    Each frame is averaged over ``K = ceil(length) + 1`` (at most ``max_samples``) positions evenly spread along
    ``[-1/2, 1/2] x shutter x v(x)``, colour premultiplied by alpha (bilinear, the crop's border replicated),
    within the window of what alpha covers grown by the smear. Frames whose longest smear is under ``min_length``
    pixels, and all frames at ``shutter`` 0, come back as they are (the same values)."""
    if shutter <= 0.0:
        return image, alpha
    out_image, out_alpha = image, alpha
    h, w = image.shape[-2:]
    for b in range(image.shape[0]):
        covered = alpha[b, 0] > 0
        rows, cols = covered.any(1).nonzero()[:, 0], covered.any(0).nonzero()[:, 0]
        if rows.numel() == 0:
            continue
        box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
        length = path_length(motion[b], box, shutter)
        if length < min_length:
            continue
        r = int(math.ceil(length / 2.0)) + 1
        x0, y0 = max(0, box[0] - r), max(0, box[1] - r)
        x1, y1 = min(w, box[2] + r), min(h, box[3] + r)
        k = min(max_samples, int(math.ceil(length)) + 1)
        premult = torch.cat([torch.where(alpha[b] > 0, image[b] * alpha[b], 0.0), alpha[b]], 0)  # (C + 1, H, W)
        acc = _smear(premult, motion[b].to(image) * shutter, (x0, y0, x1, y1), k)
        a = acc[-1:]
        colour = torch.where(a > _EPS, acc[:-1] / a.clamp(min=_EPS), image[b, :, y0:y1, x0:x1])
        if out_image is image:
            out_image, out_alpha = image.clone(), alpha.clone()
        out_image[b, :, y0:y1, x0:x1] = colour
        out_alpha[b, :, y0:y1, x0:x1] = a.clamp(0.0, 1.0)
    return out_image, out_alpha


def _smear(premult: Tensor, field: Tensor, window: tuple[int, int, int, int], k: int) -> Tensor:
    """The mean of ``k`` samples of ``premult`` (C, H, W) along ``[-1/2, 1/2] x field(x)`` ((2, 3) affine, pixels)
    for the pixels of ``window`` (x0, y0, x1, y1) -> (C, y1 - y0, x1 - x0); bilinear, the image's border
    replicated beyond it (a render covering its crop's edge keeps its alpha there).
    OpenCV's remap on CPU tensors of up to 4 channels (~3x faster than grid_sample there), grid_sample otherwise."""
    x0, y0, x1, y1 = window
    h, w = premult.shape[-2:]
    if premult.device.type == "cpu" and premult.shape[0] <= 4 and not premult.requires_grad:
        src = np.ascontiguousarray(premult.permute(1, 2, 0).numpy(), dtype=np.float32)
        xs, ys = np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))
        m = field.double().numpy()
        vx = (m[0, 0] * xs + m[0, 1] * ys + m[0, 2]).astype(np.float32)
        vy = (m[1, 0] * xs + m[1, 1] * ys + m[1, 2]).astype(np.float32)
        acc = np.zeros((y1 - y0, x1 - x0, premult.shape[0]), np.float32)
        for j in range(k):
            step = np.float32((j + 0.5) / k - 0.5)
            got = cv2.remap(src, xs + step * vx, ys + step * vy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            acc += got.reshape(acc.shape)
        return torch.from_numpy(acc / np.float32(k)).permute(2, 0, 1).to(premult.dtype)
    ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=premult.dtype, device=premult.device),
                            torch.arange(x0, x1, dtype=premult.dtype, device=premult.device), indexing="ij")
    vx = field[0, 0] * xs + field[0, 1] * ys + field[0, 2]
    vy = field[1, 0] * xs + field[1, 1] * ys + field[1, 2]
    acc = torch.zeros((premult.shape[0], y1 - y0, x1 - x0), dtype=premult.dtype, device=premult.device)
    for j in range(k):
        step = (j + 0.5) / k - 0.5
        gx = (xs + step * vx + 0.5) * (2.0 / w) - 1.0  # pixel centres -> grid_sample's [-1, 1]
        gy = (ys + step * vy + 0.5) * (2.0 / h) - 1.0
        acc += F.grid_sample(premult[None], torch.stack([gx, gy], -1)[None], mode="bilinear",
                             padding_mode="border", align_corners=False)[0]
    return acc / k
