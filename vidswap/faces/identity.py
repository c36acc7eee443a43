"""Face identity embeddings with SFace (OpenCV Zoo, Apache-2.0) under onnxruntime.

Faces are aligned by a 2D similarity from their five keypoints to the ArcFace 112x112 template
(``vidswap.faces.align``), cropped (kornia for torch frames, ``cv2.warpAffine`` for numpy frames: the same
sampling), and embedded in batches. SFace takes RGB in 0-255 (what
``cv2.FaceRecognizerSF`` feeds it; checked to match it to cosine 0.99999). Embeddings are L2-normalised, so
the cosine similarity is a dot product: same person across frames of a clip ~0.6-0.9, different people
below ~0.3 (measured margins in the tests and the issue note).

The int8 SFace graph carries 29 unused inputs that onnxruntime would ask for; ``prepare_onnx`` drops them
and makes the batch dimension symbolic (the arithmetic is unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from vidswap.faces.align import as_rgb8, estimate_alignment, warp_crops
from vidswap.models.prepared import prepared_onnx
from vidswap.models.runtime import onnx_session

CROP_SIZE = 112


def cosine(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Cosine similarity over the last axis, broadcasting the rest.

    Args:
        a: (..., D) embeddings.
        b: (..., D) embeddings (e.g. ``a[:, None]`` against ``b[None]`` for an (N, M) matrix).

    Returns:
        (...) similarities in [-1, 1]. Works without pre-normalised inputs.
    """
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-12)
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(na * nb, 1e-12)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """(..., D) -> unit length along the last axis (float32)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def align_faces(images: Sequence[np.ndarray] | torch.Tensor, kps: np.ndarray, image_index: Sequence[int] | None = None,
                size: int = CROP_SIZE) -> tuple[torch.Tensor, np.ndarray]:
    """ArcFace-aligned crops of faces.

    Args:
        images: HxWx3 uint8 RGB frames (sizes may differ), or a (B, 3, H, W) float tensor in [0, 1].
        kps: (N, 5, 2) five-point keypoints in frame pixels.
        image_index: (N,) the image of each face; default ``range(N)``.
        size: crop side.

    Returns:
        crops (N, 3, size, size) float32 in [0, 1] and the frame->crop matrices (N, 2, 3).
    """
    kps = np.asarray(kps, dtype=np.float32).reshape(-1, 5, 2)
    index = list(range(len(kps))) if image_index is None else list(image_index)
    mats = estimate_alignment(kps, size)
    if len(kps) == 0:
        return torch.zeros((0, 3, size, size)), mats
    if isinstance(images, torch.Tensor):
        return warp_crops(images, mats, size, index=index, padding_mode="border"), mats
    # numpy frames (the I/O edge): cv2.warpAffine on uint8 samples exactly like kornia's warp_affine
    # (align_corners=True) but skips converting whole frames to float tensors (~10 ms per 1080p frame)
    crops = np.empty((len(kps), size, size, 3), np.uint8)
    for i, (fi, m) in enumerate(zip(index, mats)):
        crops[i] = cv2.warpAffine(as_rgb8(images[fi]), m, (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
    return torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0), mats


@dataclass
class IdentityEncoder:
    """SFace embeddings (128-d, L2-normalised) of aligned faces, batched.

    Build with ``IdentityEncoder.from_path(model_path('sface'))``.
    """

    session: object
    batch_size: int = 8
    flip: bool = False  # also embed the mirrored crop and average (steadier, 2x cost)

    @classmethod
    def from_path(cls, path: Path | bytes, providers: Sequence[str] | None = None, threads: int | None = None,
                  **kwargs) -> "IdentityEncoder":
        graph = prepared_onnx(path, dynamic_batch=True)
        return cls(onnx_session(graph, providers=providers, threads=threads), **kwargs)

    @property
    def dim(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def embed_crops(self, crops: torch.Tensor | np.ndarray) -> np.ndarray:
        """Embeddings of aligned crops.

        Args:
            crops: (N, 3, 112, 112) float in [0, 1] (torch or numpy), RGB, ArcFace-aligned.

        Returns:
            (N, 128) float32, unit length.
        """
        x = crops.detach().cpu().numpy() if isinstance(crops, torch.Tensor) else np.asarray(crops)
        x = np.ascontiguousarray(x, dtype=np.float32) * np.float32(255.0)
        n = len(x)
        if n == 0:
            return np.zeros((0, self.dim), np.float32)
        name = self.session.get_inputs()[0].name
        outs = []
        for start in range(0, n, self.batch_size):
            chunk = x[start:start + self.batch_size]
            emb = self.session.run(None, {name: chunk})[0]
            if self.flip:
                emb = l2_normalize(emb) + l2_normalize(
                    self.session.run(None, {name: np.ascontiguousarray(chunk[..., ::-1])})[0])
            outs.append(emb)
        return l2_normalize(np.concatenate(outs))

    def embed(self, images: Sequence[np.ndarray] | torch.Tensor, kps: np.ndarray,
              image_index: Sequence[int] | None = None) -> np.ndarray:
        """Embeddings of faces given by five-point keypoints.

        Args:
            images: HxWx3 uint8 RGB frames (sizes may differ) or a (B, 3, H, W) float tensor in [0, 1].
            kps: (N, 5, 2) keypoints in frame pixels (detector or landmark ``kps5``).
            image_index: (N,) the image of each face; default ``range(N)``.

        Returns:
            (N, 128) float32 unit-length embeddings.
        """
        crops, _ = align_faces(images, kps, image_index)
        return self.embed_crops(crops)
