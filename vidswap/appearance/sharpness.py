"""Camera sharpness, measured on edges outside the face, and matching a render to the plate's.

A source photo is usually sharper than a video plate, and a face crisper than the picture around it reads as
pasted. What makes a plate soft is the camera (focus, lens, compression, scaling), which blurs every edge alike;
skin smoothness is the actor's, so it is measured *outside* the face -- on the hairline, ears, jaw and collar
edges around it -- never on the skin.

Edge blur by re-blurring (Zhuo & Sim, "Defocus map estimation from a single image", 2011): a step edge blurred by
a Gaussian of sigma, blurred again by ``sigma0``, has its gradient peak reduced by
``R = sqrt(sigma^2 + sigma0^2) / sigma``, so ``sigma = sigma0 / sqrt(R^2 - 1)``. The estimate is the median over
the strongest edge pixels of a region. The render, whose own blur follows from the source photo's (measured the
same way around the photo's face and scaled to the render), is blurred by ``sqrt(sigma_plate^2 - sigma_render^2)``
when the plate is the softer.

Shapes: images (B, C, H, W) float, masks (B, 1, H, W).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from kornia.filters import spatial_gradient
from torch import Tensor

from vidswap.appearance.encoding import luminance
from vidswap.appearance.raster import fill_polygons
from vidswap.composite.filters import dilate, gaussian_blur
from vidswap.faces.align import face_height as face_height_of

__all__ = ["edge_blur", "match_blur", "face_ring", "relative_edge_blur", "RESAMPLING_BLUR", "directional_blur",
           "face_blur_tensor", "shutter_estimate", "SHUTTER_MIN_SPEED", "SHUTTER_MIN_PIXELS",
           "SMEAR_RESPONSE"]

#: blur a bilinear resampling adds (pixels), part of every render's own blur
RESAMPLING_BLUR = 0.5
_EPS = 1e-8


def _gradient(lum: Tensor) -> Tensor:
    """(B, 1, H, W) -> (B, 1, H, W) the Sobel gradient's magnitude, as ``hypot`` of its two components (torch's
    ``norm`` over the component axis takes ~80x the time on CPU: 110 ms against 1.3 ms for (4, 1, 512, 512); the
    same values to the last bit of float32)."""
    g = spatial_gradient(lum, mode="sobel", normalized=True)  # (B, 1, 2, H, W)
    return torch.hypot(g[:, :, 0], g[:, :, 1])


def edge_blur(images: Tensor, mask: Tensor, sigma0: float = 1.0, strongest: float = 0.1,
              min_edges: int = 32) -> Tensor:
    """Gaussian blur sigma (pixels) of the edges in ``mask``: (B, C, H, W), (B, 1, H, W) -> (B,), NaN where the
    mask has fewer than ``min_edges`` edge pixels.

    Edge pixels: local maxima of the gradient magnitude (3x3) among the ``strongest`` fraction within the mask.
    """
    lum = luminance(images) if images.shape[1] == 3 else images[:, :1]
    g1 = _gradient(lum)
    g2 = _gradient(gaussian_blur(lum, sigma0))
    peak = g1 >= torch.nn.functional.max_pool2d(g1, 3, stride=1, padding=1)
    inside = (mask > 0.5) & peak & (g1 > 1e-3)
    out = torch.full((images.shape[0],), float("nan"), device=images.device)
    for b in range(images.shape[0]):
        v1, v2 = g1[b][inside[b]], g2[b][inside[b]]
        if v1.numel() < min_edges:
            continue
        keep = v1 >= torch.quantile(v1, 1.0 - strongest)
        if int(keep.sum()) < min_edges // 4:
            continue
        ratio = (v1[keep] / v2[keep].clamp(min=_EPS)).clamp(min=1.0 + 1e-3)
        out[b] = (sigma0 / (ratio * ratio - 1.0).sqrt()).median()
    return out


def match_blur(render: Tensor, sigma_render: Tensor, sigma_plate: Tensor) -> Tensor:
    """Blur a render (B, C, H, W) whose own blur is ``sigma_render`` (B,) to the plate's ``sigma_plate`` (B,):
    by ``sqrt(sigma_plate^2 - sigma_render^2)`` where that is positive (a NaN sigma leaves the render as it is)."""
    extra = (sigma_plate * sigma_plate - sigma_render * sigma_render).clamp(min=0.0).sqrt()
    extra = torch.nan_to_num(extra, nan=0.0)
    if float(extra.max()) < 0.05:
        return render
    out = render
    for b in range(render.shape[0]):
        # Only the window around what is not 0 (the rendered face; 0 outside the mesh) plus the blur's radius can
        # change: zeros beyond it blur to zeros, and replicating the window's zero border is what the crop's zeros
        # give. The same blur, on fewer pixels. Frame by frame: a window shared by the batch made the blur's last
        # bit follow the batch's make-up (farm chunks batch frames differently from one pass).
        if float(extra[b]) < 0.05:
            continue
        covered = (render[b] != 0).any(0)  # (H, W)
        rows, cols = covered.any(1).nonzero()[:, 0], covered.any(0).nonzero()[:, 0]
        if rows.numel() == 0:
            continue
        sigma = extra[b:b + 1].clamp(min=1e-3)
        r = int(torch.ceil(3.0 * sigma).max())
        h, w = render.shape[-2:]
        y0, y1 = max(0, int(rows[0]) - r), min(h, int(rows[-1]) + 1 + r)
        x0, x1 = max(0, int(cols[0]) - r), min(w, int(cols[-1]) + 1 + r)
        out = render.clone() if out is render else out
        out[b:b + 1, :, y0:y1, x0:x1] = gaussian_blur(render[b:b + 1, :, y0:y1, x0:x1], sigma)
    return out


def face_ring(landmarks: Tensor, oval: Tensor, size: tuple[int, int], heights: Tensor, inner: float = 0.03,
              outer: float = 0.15) -> Tensor:
    """The band around a face, from ``inner`` to ``outer`` x its height outside the face oval: (B, 478, 2+)
    landmarks, the oval's index loop, (H, W), (B,) face heights -> (B, 1, H, W) float (hairline, ears, jaw,
    collar: the edges that show the camera's sharpness)."""
    face = fill_polygons(landmarks, [oval], size)[:, None].float()
    return (dilate(face, (outer * heights).round()) - dilate(face, (inner * heights).round())).clamp(0.0, 1.0)


def relative_edge_blur(images: Tensor, landmarks: Tensor, oval: Tensor, heights: Tensor) -> Tensor:
    """The edge blur around faces as a fraction of their height (scale-free, so a photo's and a plate's compare
    at any size): (B, C, H, W), (B, 478, 3) landmarks in those images, the face oval loop, (B,) face heights in
    pixels -> (B,), NaN where too few edges."""
    ring = face_ring(landmarks, oval, tuple(images.shape[-2:]), heights)
    return edge_blur(images, ring) / heights.clamp(min=1.0)


#: the directions (radians) whose edge blur :func:`directional_blur` measures
_DIRECTIONS = (0.0, 0.25 * math.pi, 0.5 * math.pi, 0.75 * math.pi)


def directional_blur(images: Tensor, mask: Tensor, sigma0: float = 2.0, strongest: float = 0.1,
                     min_edges: int = 24) -> Tensor:
    """The blur of the edges in ``mask`` as a 2x2 covariance (pixels^2): (B, C, H, W), (B, 1, H, W) -> (B, 2, 2),
    NaN where any direction has fewer than ``min_edges`` edge pixels.

    A Gaussian blur of covariance S gives an edge whose normal is the unit vector u the profile variance
    ``u^T S u``; a camera's focus and scaling blur every direction alike, the motion over an open shutter only
    along the motion (a box of length L adds ``L^2 / 12``). For each of four directions u, the re-blur estimate of
    :func:`edge_blur` on the edge pixels whose gradient lies within ~25 degrees of u (the component along u at
    least 0.9 of the magnitude, a local maximum, among the ``strongest`` fraction) gives ``u^T S u``; S is their
    least-squares fit. Measured with OpenCV on the CPU (a measurement of a few sampled faces, not a render)."""
    lum = (luminance(images) if images.shape[1] == 3 else images[:, :1]).detach().float().cpu().numpy()
    inside_all = (mask[:, 0] > 0.5).detach().cpu().numpy()
    variances = np.full((images.shape[0], len(_DIRECTIONS)), np.nan, np.float64)
    box = np.ones((3, 3), np.uint8)
    for b in range(images.shape[0]):
        g = np.ascontiguousarray(lum[b, 0])
        blurred = cv2.GaussianBlur(g, (0, 0), sigma0, borderType=cv2.BORDER_REPLICATE)
        gx1, gy1 = (cv2.Sobel(g, cv2.CV_32F, 1, 0, borderType=cv2.BORDER_REPLICATE) / 8.0,
                    cv2.Sobel(g, cv2.CV_32F, 0, 1, borderType=cv2.BORDER_REPLICATE) / 8.0)
        gx2, gy2 = (cv2.Sobel(blurred, cv2.CV_32F, 1, 0, borderType=cv2.BORDER_REPLICATE) / 8.0,
                    cv2.Sobel(blurred, cv2.CV_32F, 0, 1, borderType=cv2.BORDER_REPLICATE) / 8.0)
        magnitude = np.hypot(gx1, gy1)
        for j, angle in enumerate(_DIRECTIONS):
            c, s = np.float32(math.cos(angle)), np.float32(math.sin(angle))
            a1 = np.abs(gx1 * c + gy1 * s)
            peak = a1 >= cv2.dilate(a1, box)
            edges = inside_all[b] & peak & (a1 >= 0.9 * magnitude) & (a1 > 1e-3)
            v1 = a1[edges]
            if v1.size < min_edges:
                continue
            v2 = np.abs(gx2 * c + gy2 * s)[edges]
            keep = v1 >= np.quantile(v1, 1.0 - strongest)
            ratio = np.maximum(v1[keep] / np.maximum(v2[keep], _EPS), 1.0 + 1e-3).astype(np.float64)
            variances[b, j] = np.median(sigma0 * sigma0 / (ratio * ratio - 1.0))
    # u^T S u = Sxx c^2 + 2 Sxy c s + Syy s^2 for the four directions: least squares in (Sxx, Sxy, Syy)
    design = np.array([[math.cos(a) ** 2, 2.0 * math.cos(a) * math.sin(a), math.sin(a) ** 2] for a in _DIRECTIONS])
    fit = variances @ np.linalg.pinv(design).T  # (B, 3); NaN rows stay NaN
    cov = np.stack([fit[:, 0], fit[:, 1], fit[:, 1], fit[:, 2]], -1).reshape(-1, 2, 2)
    return torch.from_numpy(cov.astype(np.float32)).to(images.device)


def face_blur_tensor(images: Tensor, landmarks: Tensor, oval: Tensor, frame_to_crop: Tensor,
                     frame_heights: Tensor, grow: float = 0.03) -> Tensor:
    """The blur covariance of the edges on and just around faces (eyes, brows, nostrils, lips, the face's outline),
    in the frame's orientation as a fraction of the face height squared, from aligned crops: (B, C, H, W) crops,
    (B, 478, 2+) their landmarks, the oval's index loop, (B, 2, 3) frame -> crop matrices, (B,) face heights in
    frame pixels -> (B, 2, 2) (NaN where too few edges; :func:`directional_blur`)."""
    size = tuple(images.shape[-2:])
    face = fill_polygons(landmarks, [oval], size)[:, None].float()
    heights = face_height_of(landmarks)
    face = dilate(face, (grow * heights).round())
    cov = directional_blur(images, face)
    inverse = torch.linalg.inv(frame_to_crop[:, :, :2].to(cov))  # crop -> frame, linear part
    frame_cov = inverse @ cov @ inverse.transpose(1, 2)
    return frame_cov / (frame_heights.to(cov) ** 2).clamp(min=1.0)[:, None, None]


#: faces slower than this many face heights a frame, or than SHUTTER_MIN_PIXELS plate pixels a frame, do not tell the
#: shutter (their smear is within the measure's noise)
SHUTTER_MIN_SPEED = 0.012
SHUTTER_MIN_PIXELS = 2.0
#: the share of a box smear's variance that :func:`directional_blur` reads on a face's edges: the re-blur measure
#: models an edge as a Gaussian one, and a box-smeared face's gradient peaks fall less than that model expects.
#: Measured on the whip-pan clip (samples/whip_pan.py) at 180 and 360 degrees: the variance read along the
#: motion over that across grows by 0.53-0.57 of ``(shutter |v|)^2 / 12`` (benchmarks/RESULTS.md, lead s32)
SMEAR_RESPONSE = 0.55


def shutter_estimate(covariances: np.ndarray, velocities: np.ndarray, heights: np.ndarray | None = None,
                     min_speed: float = SHUTTER_MIN_SPEED, min_pixels: float = SHUTTER_MIN_PIXELS,
                     min_frames: int = 4, response: float = SMEAR_RESPONSE) -> float:
    """The shutter's share of the frame interval from a track's sampled faces: (N, 2, 2) blur covariances and
    (N, 2) face velocities per frame, both relative to the face height (:func:`face_blur_tensor`), and the (N,)
    face heights in plate pixels (None: not checked) -> a number in [0, 1], NaN when fewer than ``min_frames``
    faces move at least ``min_speed`` face heights and ``min_pixels`` plate pixels a frame.

    A face moving at v smears over a box of length ``shutter x |v|`` along v, adding ``(shutter |v|)^2 / 12`` to
    the blur along the motion and nothing across it, so per moving face ``12 (d^T S d - e^T S e) / |v|^2``
    (d along v, e across) estimates ``response x shutter^2`` (the face's own anisotropy and the camera's isotropic
    blur cancel in the difference, up to the face's features; ``response``: the share of a box smear's variance
    the re-blur measure reads, :data:`SMEAR_RESPONSE`); the estimate is the square root of their median over
    ``response``."""
    cov = np.asarray(covariances, np.float64).reshape(-1, 2, 2)
    vel = np.asarray(velocities, np.float64).reshape(-1, 2)
    speed = np.linalg.norm(vel, axis=1)
    ok = (speed >= min_speed) & np.isfinite(cov).all((1, 2)) & np.isfinite(speed)
    if heights is not None:
        ok &= speed * np.asarray(heights, np.float64).reshape(-1) >= min_pixels
    if int(ok.sum()) < min_frames:
        return float("nan")
    d = vel[ok] / speed[ok, None]
    e = np.stack([-d[:, 1], d[:, 0]], 1)
    along = np.einsum("ni,nij,nj->n", d, cov[ok], d)
    across = np.einsum("ni,nij,nj->n", e, cov[ok], e)
    square = float(np.median(12.0 * (along - across) / speed[ok] ** 2)) / response
    return float(min(1.0, math.sqrt(max(0.0, square))))
