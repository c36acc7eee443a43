"""Every face crop: 2D similarity alignment to templates, the crop specs swap cores ask for, batched crops and
their inverse (for paste-back).

Matrices are ``(..., 2, 3)`` affine maps from *frame* pixels to *crop* pixels (OpenCV ``warpAffine``
convention: pixel centres at integer coordinates), so ``crop = warp(frame, M)`` and a crop point ``p``
maps back to the frame by ``invert_affine(M)``.

Crop specs (:class:`CropSpec`): how a swap core wants its target crops aligned, as a function of the 478 dense
landmarks of each face:

* :class:`MeshCrop` -- eye line level, mesh centre in the middle, scale from the 3D RMS radius (pose-stable):
  the geometric core's crop;
* :class:`TemplateCrop` -- five keypoints (:func:`kps5_from_landmarks`) fitted to a template by a similarity
  (Umeyama, no reflection): ``TemplateCrop.arcface(128)`` is the inswapper-class crop.

A core with its own alignment subclasses :class:`CropSpec` and implements ``frame_to_crop``.

The alignment functions accept numpy arrays or torch tensors and return the same kind (``warp_crops``,
``warp_to_crop`` and the crop specs are torch only).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import warp_affine
from torch import Tensor

from vidswap.errors import InputError
from vidswap.faces.types import LEFT_EYE_CONTOUR, MOUTH_CORNERS, NOSE_TIP, RIGHT_EYE_CONTOUR

Array = np.ndarray | torch.Tensor

#: The ArcFace / InsightFace five-point template for 112x112 crops (eyes, nose tip, mouth corners; the
#: image-left eye first). SFace and inswapper use the same points.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def arcface_template(size: int = 112) -> np.ndarray:
    """The ArcFace five-point template for a square crop of ``size`` pixels.

    Sizes that are multiples of 112 scale the template; other sizes (128, 256, ...) follow InsightFace's
    convention: scale by ``size / 128`` and shift x by ``8 * size / 128`` (the 112 template sits centred in
    a 128 crop). Returns (5, 2) float32.
    """
    if size % 112 == 0:
        return ARCFACE_TEMPLATE_112 * np.float32(size / 112)
    ratio = size / 128.0
    out = ARCFACE_TEMPLATE_112 * np.float32(ratio)
    out[:, 0] += np.float32(8.0 * ratio)
    return out


#: (outer, inner) eye-corner landmarks of the subject's right eye (image left) and left eye (image right)
EYE_CORNERS: tuple[tuple[int, int], tuple[int, int]] = ((33, 133), (263, 362))
#: height of the canonical face mesh in units of its RMS radius (vidswap.faces.pose canonical frame: ~3.26)
FACE_HEIGHT_RMS = 3.3


def _is_torch(x: Array) -> bool:
    return isinstance(x, torch.Tensor)


def similarity_transform(src: Array, dst: Array, weights: Array | None = None) -> Array:
    """Least-squares 2D similarity (rotation, uniform scale, translation; no reflection) mapping src to dst.

    Closed form of Umeyama's method in 2D: with centred points, ``a = Σ w (s·d) / Σ w |s|²`` and
    ``b = Σ w (s × d) / Σ w |s|²`` give ``[[a, -b], [b, a]]``.

    Args:
        src: (..., N, 2) points (e.g. detected keypoints in frame pixels), N >= 2.
        dst: (N, 2) or (..., N, 2) target points (e.g. ``arcface_template(112)``).
        weights: optional (N,) or (..., N) non-negative weights per point.

    Returns:
        (..., 2, 3) float32 matrices M with ``dst ≈ M[:, :2] @ src + M[:, 2]``.
    """
    torch_mode = _is_torch(src)
    if torch_mode:
        dst = torch.as_tensor(dst, dtype=src.dtype, device=src.device)
        w = torch.ones(src.shape[:-1], dtype=src.dtype, device=src.device) if weights is None else \
            torch.as_tensor(weights, dtype=src.dtype, device=src.device).expand(src.shape[:-1])
    else:
        src = np.asarray(src, dtype=np.float64)
        dst = np.asarray(dst, dtype=np.float64)
        w = np.ones(src.shape[:-1]) if weights is None else \
            np.broadcast_to(np.asarray(weights, dtype=np.float64), src.shape[:-1])
    w = w[..., None]
    wsum = w.sum(-2, keepdims=True)
    mu_s = (w * src).sum(-2, keepdims=True) / wsum
    mu_d = (w * dst).sum(-2, keepdims=True) / wsum
    s = src - mu_s
    d = dst - mu_d
    var = (w[..., 0] * (s ** 2).sum(-1)).sum(-1)
    a = (w[..., 0] * (s[..., 0] * d[..., 0] + s[..., 1] * d[..., 1])).sum(-1) / var
    b = (w[..., 0] * (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0])).sum(-1) / var
    ms, md = mu_s[..., 0, :], mu_d[..., 0, :]
    tx = md[..., 0] - (a * ms[..., 0] - b * ms[..., 1])
    ty = md[..., 1] - (b * ms[..., 0] + a * ms[..., 1])
    rows = [a, -b, tx, b, a, ty]
    if torch_mode:
        return torch.stack(rows, -1).reshape(*a.shape, 2, 3)
    return np.stack(rows, -1).reshape(*a.shape, 2, 3).astype(np.float32)


def estimate_alignment(kps: Array, size: int = 112, template: Array | None = None) -> Array:
    """Frame->crop matrices aligning five-point keypoints to the ArcFace template of a ``size`` crop.

    Args:
        kps: (..., 5, 2) keypoints in frame pixels (order as in ``vidswap.faces.types``).
        size: crop side in pixels.
        template: (5, 2) points in crop pixels; default ``arcface_template(size)``.

    Returns:
        (..., 2, 3) matrices.
    """
    tpl = arcface_template(size) if template is None else template
    return similarity_transform(kps, tpl)


def invert_affine(m: Array) -> Array:
    """Inverse of (..., 2, 3) affine matrices (crop->frame for paste-back). Same kind and shape."""
    if _is_torch(m):
        lin = m[..., :2]
        inv = torch.linalg.inv(lin)
        t = -(inv @ m[..., 2:])
        return torch.cat([inv, t], -1)
    m64 = np.asarray(m, dtype=np.float64)
    inv = np.linalg.inv(m64[..., :2])
    t = -(inv @ m64[..., 2:])
    return np.concatenate([inv, t], -1).astype(np.float32)


def transform_points(m: Array, pts: Array) -> Array:
    """Apply (..., 2, 3) matrices to (..., N, 2) points -> (..., N, 2)."""
    return pts @ m[..., :2].swapaxes(-1, -2) + m[..., None, :, 2] if not _is_torch(m) else \
        pts @ m[..., :2].transpose(-1, -2) + m[..., None, :, 2]


def warp_crops(images: torch.Tensor, matrices: Array, size: int | tuple[int, int],
               index: Sequence[int] | torch.Tensor | None = None, mode: str = "bilinear",
               padding_mode: str = "zeros") -> torch.Tensor:
    """Batched affine crops with kornia.

    Args:
        images: (B, C, H, W) float tensor (frames).
        matrices: (N, 2, 3) frame->crop matrices (numpy or torch).
        size: crop side, or (height, width).
        index: (N,) which image each crop comes from; default ``range(N)`` (then N must equal B).
        mode: ``bilinear`` or ``nearest``.
        padding_mode: ``zeros``, ``border`` or ``reflection`` for samples outside the frame.

    Returns:
        (N, C, h, w) crops, same dtype and device as ``images``. Matches ``cv2.warpAffine`` sampling
        (pixel centres at integer coordinates).
    """
    h, w = (size, size) if isinstance(size, int) else size
    m = torch.as_tensor(matrices, dtype=images.dtype, device=images.device)
    if m.ndim == 2:
        m = m[None]
    if index is not None:
        idx = torch.as_tensor(index, dtype=torch.long, device=images.device)
        src = images if (len(idx) == images.shape[0] and bool((idx == torch.arange(len(idx),
                                                                                   device=idx.device)).all())) \
            else images.index_select(0, idx)
    else:
        src = images
    if src.shape[0] != m.shape[0]:
        raise ValueError(f"warp_crops: {src.shape[0]} images for {m.shape[0]} matrices; pass index=")
    return warp_affine(src, m, (h, w), mode=mode, padding_mode=padding_mode, align_corners=True)


def as_rgb8(frame: np.ndarray) -> np.ndarray:
    """An HxWx3 RGB frame as uint8 for the analysis models (which all take 8-bit input).

    uint8 passes through unchanged; uint16 (10/12/16-bit plates scaled to 16 bits) is shifted down; float is
    taken as [0, 1] and clipped. An RGBA frame drops its alpha. Raises InputError for other shapes.
    """
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"expected an HxWx3 RGB frame, got an array of shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        return (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise InputError(f"unsupported frame dtype {arr.dtype}; expected uint8, uint16 or float")


def images_to_tensor(images: Sequence[np.ndarray], device: str | torch.device = "cpu") -> torch.Tensor:
    """HxWx3 uint8 RGB frames (same size) -> (B, 3, H, W) float32 in [0, 1]."""
    arr = np.stack([np.asarray(im) for im in images])
    t = torch.from_numpy(arr).to(device).permute(0, 3, 1, 2)
    return t.float().div_(255.0)


def kps5_from_landmarks(landmarks: Array) -> Array:
    """Five keypoints ``(..., 5, 2)`` (order of :mod:`vidswap.faces.types`: eye centres, nose tip, mouth corners)
    from dense landmarks ``(..., >=468, 2 or 3)``; numpy in -> float32 numpy out, torch in -> float32 torch out."""
    if _is_torch(landmarks):
        pts = landmarks[..., :2].float()
        stack = torch.stack
    else:
        pts = landmarks[..., :2]
        stack = np.stack
    kps = stack([
        pts[..., list(RIGHT_EYE_CONTOUR), :].mean(-2),
        pts[..., list(LEFT_EYE_CONTOUR), :].mean(-2),
        pts[..., NOSE_TIP, :],
        pts[..., MOUTH_CORNERS[0], :],
        pts[..., MOUTH_CORNERS[1], :],
    ], -2)
    return kps if _is_torch(landmarks) else kps.astype(np.float32)


def face_height(landmarks: Tensor) -> Tensor:
    """Pose-stable face height in pixels, the mesh crop's measure (``FACE_HEIGHT_RMS`` x the 3D RMS radius of the
    468 mesh points, which does not change as the head turns): (B, 478, 3) -> (B,)."""
    mesh = landmarks[..., :468, :].float()
    rms = ((mesh - mesh.mean(-2, keepdim=True)) ** 2).sum(-1).mean(-1).sqrt()
    return FACE_HEIGHT_RMS * rms


def crop_frame_from_landmarks(
    landmarks: Tensor,
    size: int,
    margin: float = 0.2,
    *,
    eye_corners: tuple[Sequence[int], Sequence[int]] = EYE_CORNERS,
) -> Tensor:
    """Similarity frame -> crop for aligned face crops: eye line horizontal, face centred, pose-stable scale.

    * rotation: the line from the image-left eye (mean of ``eye_corners[0]``) to the other eye becomes +x;
    * centre: the mean of the 468 mesh points (the canonical origin) lands on the crop centre ``(S-1)/2``;
    * scale: from the 3D RMS radius of the mesh, which does not change with head rotation, so the crop does not
      zoom when the head turns: the face height (``FACE_HEIGHT_RMS`` radii) times ``1 + 2 * margin`` fills ``S``.

    Args:
        landmarks: (B, N, 3) frame pixels (N = 478 or 468; z in pixel scale).
        size: crop side S.
        margin: extra border on each side as a fraction of the face height.
        eye_corners: landmark indices of the two eyes.

    Returns:
        (B, 2, 3) float32 affine matrices frame -> crop (OpenCV ``warpAffine`` convention).
    """
    x = landmarks.float()
    mesh = x[:, :468, :3]
    centre = mesh.mean(1)  # (B, 3)
    rms = ((mesh - centre[:, None]) ** 2).sum(-1).mean(-1).sqrt().clamp(min=1e-6)
    eye_a = x[:, list(eye_corners[0]), :2].mean(1)
    eye_b = x[:, list(eye_corners[1]), :2].mean(1)
    d = eye_b - eye_a
    ang = torch.atan2(d[:, 1], d[:, 0])
    k = size / (FACE_HEIGHT_RMS * rms * (1.0 + 2.0 * margin))
    c, s = torch.cos(ang) * k, torch.sin(ang) * k
    A = torch.stack([torch.stack([c, s], -1), torch.stack([-s, c], -1)], 1)  # k * R(-ang)
    b = (size - 1) / 2.0 - torch.einsum("bij,bj->bi", A, centre[:, :2])
    return torch.cat([A, b[..., None]], -1)


def transform_landmarks(points: Tensor, affine: Tensor) -> Tensor:
    """Apply (..., 2, 3) similarity matrices to (..., N, 2 or 3) points.

    x, y are mapped by the affine; z (if present) is multiplied by the matrix's scale ``sqrt(|det A|)`` so that
    depth stays in the same pixel scale as x and y.
    """
    A = affine[..., :2].to(points.dtype)
    b = affine[..., 2].to(points.dtype)
    xy = points[..., :2] @ A.transpose(-1, -2) + b[..., None, :]
    if points.shape[-1] == 2:
        return xy
    scale = torch.linalg.det(A).abs().sqrt()
    return torch.cat([xy, points[..., 2:] * scale[..., None, None]], -1)


def warp_to_crop(images: Tensor, affine: Tensor, size: int | tuple[int, int],
                 padding_mode: str = "border") -> Tensor:
    """Affine crops (kornia ``warp_affine``, pixel centres at integer coordinates) with anti-aliasing.

    When the crop shrinks the image by more than 2x, the image is first halved with 2x2 box filters (and the
    matrices adjusted) until it does not, so small crops of big photos do not alias.

    Args:
        images: (B, C, H, W) float.
        affine: (B, 2, 3) image -> crop.
        size: crop side or (h, w).

    Returns:
        (B, C, h, w).
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    m = affine.to(device=images.device, dtype=torch.float32)
    img = images.float()
    k = crop_halvings(m, tuple(img.shape[-2:]))
    for _ in range(k):
        img = F.avg_pool2d(img, 2, ceil_mode=True)
    m = halved_matrices(m, k)
    out = warp_affine(img, m, (h, w), mode="bilinear", padding_mode=padding_mode, align_corners=True)
    return out.to(images.dtype)


def crop_halvings(affine: Tensor, image_size: tuple[int, int]) -> int:
    """How many 2x2 box halvings :func:`warp_to_crop` applies before sampling: while the crop shrinks the image by
    more than 2x (the largest scale of the (B, 2, 3) image -> crop matrices below 0.5) and the image's shorter
    side ``min(image_size)`` (H, W) is at least 4 px; each halving halves the scale and the size (rounded up)."""
    scale = float(torch.linalg.det(affine[:, :, :2].float()).abs().sqrt().max()) if len(affine) else 1.0
    h, w = int(image_size[0]), int(image_size[1])
    k = 0
    while scale < 0.5 and min(h, w) >= 4:
        scale, h, w, k = scale * 2.0, -(-h // 2), -(-w // 2), k + 1
    return k


def halved_matrices(affine: Tensor, k: int) -> Tensor:
    """(B, 2, 3) image -> crop matrices as matrices from the image halved ``k`` times by 2x2 boxes: a pixel x of a
    halved image is at 2x + 0.5 in the one before it."""
    m = affine.clone()
    for _ in range(k):
        m[:, :, 2] = m[:, :, 2] + 0.5 * m[:, :, :2].sum(-1)
        m[:, :, :2] = m[:, :, :2] * 2.0
    return m


# ---------------------------------------------------------------------------------------------------------------
# crop specs: the crop a swap core asks for
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CropSpec(ABC):
    """How a swap core wants its target crops aligned: square crops of ``size`` pixels.

    Subclasses implement :meth:`frame_to_crop`; the render stage warps the plate with it
    (:func:`warp_to_crop`) and moves the landmarks with it (:func:`transform_landmarks`).
    """

    size: int

    @abstractmethod
    def frame_to_crop(self, landmarks: Tensor) -> Tensor:
        """(B, 478, 3) landmarks in frame pixels -> (B, 2, 3) float32 frame -> crop similarity matrices."""


@dataclass(frozen=True)
class MeshCrop(CropSpec):
    """Mesh-based crop (:func:`crop_frame_from_landmarks`): eye line level, face centred, pose-stable scale;
    ``margin`` is the border on each side as a fraction of the face height."""

    margin: float = 0.2

    def frame_to_crop(self, landmarks: Tensor) -> Tensor:
        return crop_frame_from_landmarks(landmarks, self.size, self.margin)


@dataclass(frozen=True)
class TemplateCrop(CropSpec):
    """Five-point template crop: the similarity (Umeyama, no reflection) that best maps the face's five keypoints
    (:func:`kps5_from_landmarks`) onto ``template`` ((5, 2) points in crop pixels at this size)."""

    template: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if len(self.template) != 5 or any(len(p) != 2 for p in self.template):
            raise ValueError(f"TemplateCrop needs 5 (x, y) template points, got {self.template!r}")

    @classmethod
    def arcface(cls, size: int = 112) -> "TemplateCrop":
        """The ArcFace / InsightFace template at ``size`` (:func:`arcface_template`: multiples of 112 scale the
        112 template; other sizes scale by ``size / 128`` and shift x by ``8 * size / 128``)."""
        return cls(size=size, template=tuple((float(x), float(y)) for x, y in arcface_template(size)))

    def frame_to_crop(self, landmarks: Tensor) -> Tensor:
        kps = kps5_from_landmarks(landmarks)  # (B, 5, 2) float32
        template = torch.tensor(self.template, dtype=torch.float64, device=kps.device)
        return similarity_transform(kps.double(), template).float()
