"""Independent judges for evaluation: ArcFace identity and InsightFace 106-point landmarks.

Both are InsightFace models under a **non-commercial research license**. They are never defaults, never used by
the pipeline, and are fetched into the model cache on demand only when an evaluation runs
(:func:`eval_model_path`); every report says so. They are deliberately *different* networks from the
pipeline's own (SFace identity, MediaPipe mesh landmarks), so the pipeline is not graded by the models it was
tuned against.

* ``arcface_mbf`` (``w600k_mbf.onnx``): 1x3x112x112 RGB ArcFace-aligned crop, ``(x - 127.5) / 127.5`` -> 512-d.
* ``landmarks_2d106`` (``2d106det.onnx``): 1x3x192x192 RGB crop with pixel values 0-255 (the graph itself
  subtracts 127.5 and multiplies by 1/128: checked in the file); the crop is InsightFace's: centred on the
  detector box, scaled so ``1.5 x`` the box's long side fills 192 px, upright. Output: 212 values = 106 (x, y)
  in [-1, 1] of the crop (pixel = (v + 1) * 96). Checked by drawing the points on real faces.

The 106-point layout (indices found by drawing the points on a smiling, open-mouthed frame of ``pexels_clip``;
"image-left" = left in an upright, unmirrored frame):

* 0-32 face contour (0 the chin), 33-42 image-left eye, 43-51 image-left brow, 52-71 mouth, 72-86 nose,
  87-96 image-right eye, 97-105 image-right brow.
* mouth: outer corners 52 / 61; inner corners 65 / 69; inner upper lip 66, 62, 70 over inner lower lip
  54, 60, 57 (left to right).
* eyes: image-left eye corners 35 (outer) / 39 (inner), upper lid 41, 40, 42 over lower lid 36, 33, 37;
  image-right eye corners 89 (inner) / 93 (outer), upper lid 95, 94, 96 over lower lid 90, 87, 91.
* nose: bridge to tip 72, 73, 74, 86; subnasale 80; mirror pairs 75/81 (bridge sides), 76/82 (side walls),
  77/83 (alae), 78/84 (nostrils), 79/85.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Self, Sequence

import cv2
import numpy as np

from vidswap.errors import ModelError
from vidswap.faces.align import as_rgb8, estimate_alignment
from vidswap.faces.identity import l2_normalize
from vidswap.models.registry import fetch_model, load_manifest, model_path
from vidswap.models.prepared import prepared_onnx
from vidswap.models.runtime import onnx_session

CROP = 112
LANDMARK_SIZE = 192
LANDMARK_BOX_SCALE = 1.5

CHIN = 0
CONTOUR = tuple(range(0, 33))
MOUTH_CORNERS = (52, 61)
MOUTH_INNER_UPPER = (66, 62, 70)
MOUTH_INNER_LOWER = (54, 60, 57)
LEFT_EYE_CORNERS = (35, 39)  # image-left eye: outer, inner
LEFT_EYE_UPPER = (41, 40, 42)
LEFT_EYE_LOWER = (36, 33, 37)
RIGHT_EYE_CORNERS = (89, 93)  # image-right eye: inner, outer
RIGHT_EYE_UPPER = (95, 94, 96)
RIGHT_EYE_LOWER = (90, 87, 91)
BROWS = tuple(range(43, 52)) + tuple(range(97, 106))
#: Points used for the rigid head-pose fit: nose (the most rigid part of the face) and the four eye corners.
RIGID_106 = (72, 73, 74, 86, 80, 75, 81, 76, 82, 77, 83, 78, 84, 79, 85, 35, 39, 89, 93)
#: Left/right partners among RIGID_106 (for the template's symmetry); the other rigid points are on the midline.
RIGID_MIRROR_PAIRS = ((75, 81), (76, 82), (77, 83), (78, 84), (79, 85), (35, 93), (39, 89))

#: 3D positions of RIGID_106 in the canonical face frame of ``vidswap.faces.pose`` (x image-right, y down, z away
#: from the camera, unit RMS radius of the 468 mesh points). Built once by ``python
#: tools/build_template.py`` (triangulated over the head motion of the sample clips; see that module).
RIGID_TEMPLATE = np.array([
    [ 0.00000, -0.65739, -0.11381],
    [ 0.00000, -0.42457, -0.27944],
    [ 0.00000, -0.19270, -0.44675],
    [ 0.00000,  0.03861, -0.61260],
    [ 0.00000,  0.26658, -0.36629],
    [-0.20593, -0.56648, -0.01320],
    [ 0.20593, -0.56648, -0.01320],
    [-0.30050, -0.10994, -0.20512],
    [ 0.30050, -0.10994, -0.20512],
    [-0.39494,  0.09666, -0.14981],
    [ 0.39494,  0.09666, -0.14981],
    [-0.27641,  0.18463, -0.23789],
    [ 0.27641,  0.18463, -0.23789],
    [-0.14564,  0.22176, -0.29797],
    [ 0.14564,  0.22176, -0.29797],
    [-0.88092, -0.59392,  0.12699],
    [-0.35629, -0.57472,  0.05648],
    [ 0.35629, -0.57472,  0.05648],
    [ 0.88092, -0.59392,  0.12699],
], dtype=np.float32)

ARCFACE_MEAN = 127.5
ARCFACE_STD = 127.5


def eval_model_path(name: str) -> tuple[Path, str]:
    """Path of an evaluation-only model, fetching it into the cache if it is not there yet.

    Returns the path and a one-line note for reports (name, file, license, that it was fetched on demand).
    """
    manifest = load_manifest()
    spec = manifest[name]
    try:
        path = model_path(name, manifest)
        how = "from the cache"
    except ModelError:
        path = fetch_model(spec)
        how = "fetched on demand into the cache"
    note = (f"{name} ({spec.file}; license: {spec.license}; evaluation only, never used by the pipeline; {how})")
    return path, note


@dataclass
class OnnxJudge:
    """An evaluation model run through onnxruntime in batches. Build with :meth:`load` (fetches the manifest
    entry ``MODEL`` on demand; ``note`` says where it came from and its license)."""

    MODEL: ClassVar[str] = ""
    session: object
    note: str = ""
    batch_size: int = 16

    @classmethod
    def load(cls, threads: int | None = None) -> Self:
        path, note = eval_model_path(cls.MODEL)
        return cls(onnx_session(prepared_onnx(path, dynamic_batch=True), threads=threads), note)

    def run_batched(self, x: np.ndarray) -> np.ndarray:
        """The model's first output for the (N, ...) input ``x``, run ``batch_size`` items at a time."""
        name = self.session.get_inputs()[0].name
        return np.concatenate([self.session.run(None, {name: np.ascontiguousarray(x[i:i + self.batch_size])})[0]
                               for i in range(0, len(x), self.batch_size)])


@dataclass
class ArcFaceJudge(OnnxJudge):
    """ArcFace MobileFaceNet (InsightFace ``w600k_mbf``) 512-d embeddings, L2-normalised. Evaluation only."""

    MODEL: ClassVar[str] = "arcface_mbf"

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, 3, 112, 112) float RGB in [0, 1], ArcFace-aligned -> (N, 512) unit-length float32."""
        x = np.asarray(crops, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, 512), np.float32)
        x = (x * np.float32(255.0) - np.float32(ARCFACE_MEAN)) / np.float32(ARCFACE_STD)
        return l2_normalize(self.run_batched(x))

    def embed(self, images: Sequence[np.ndarray], kps: np.ndarray, image_index: Sequence[int] | None = None
              ) -> np.ndarray:
        """Embeddings of faces given by five-point keypoints (N, 5, 2) in HxWx3 RGB frames -> (N, 512)."""
        kps = np.asarray(kps, dtype=np.float32).reshape(-1, 5, 2)
        if len(kps) == 0:
            return np.zeros((0, 512), np.float32)
        index = list(range(len(kps))) if image_index is None else list(image_index)
        mats = estimate_alignment(kps, CROP)
        crops = np.empty((len(kps), 3, CROP, CROP), np.float32)
        for i, (fi, m) in enumerate(zip(index, mats)):
            # numpy + OpenCV only (the same sampling as ``identity.align_faces``): a torch op here would wake
            # torch's thread pool, which then competes with onnxruntime's for the cores
            crop = cv2.warpAffine(as_rgb8(images[fi]), m, (CROP, CROP), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
            crops[i] = crop.transpose(2, 0, 1) * np.float32(1 / 255)
        return self.embed_crops(crops)


def landmark_crop_matrices(boxes: np.ndarray, size: int = LANDMARK_SIZE, scale: float = LANDMARK_BOX_SCALE
                           ) -> np.ndarray:
    """Frame->crop matrices (N, 2, 3) of InsightFace's landmark crop: centred on the box, ``scale`` x its long
    side mapped to ``size`` px, upright (``cv2.warpAffine`` convention)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = boxes[:, 2:] - boxes[:, :2]
    k = size / (np.maximum(wh.max(1), 1e-6) * scale)
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    m = np.zeros((len(boxes), 2, 3))
    m[:, 0, 0] = m[:, 1, 1] = k
    m[:, :, 2] = size / 2 - k[:, None] * c
    return m.astype(np.float32)


@dataclass
class Landmarks106(OnnxJudge):
    """InsightFace 2d106det: 106 2D landmarks per face box. Evaluation only."""

    MODEL: ClassVar[str] = "landmarks_2d106"

    def __call__(self, images: Sequence[np.ndarray], boxes: np.ndarray, image_index: Sequence[int] | None = None
                 ) -> np.ndarray:
        """Landmarks of faces.

        Args:
            images: HxWx3 RGB frames (uint8; uint16 / float [0, 1] converted).
            boxes: (N, 4) face boxes ``x0, y0, x1, y1`` in frame pixels (a detector's).
            image_index: (N,) the image of each box; default ``range(N)``.

        Returns:
            (N, 106, 2) float32 points in frame pixels.
        """
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        n = len(boxes)
        if n == 0:
            return np.zeros((0, 106, 2), np.float32)
        index = list(range(n)) if image_index is None else list(image_index)
        mats = landmark_crop_matrices(boxes)
        s = LANDMARK_SIZE
        blob = np.empty((n, 3, s, s), np.float32)
        for i, (fi, m) in enumerate(zip(index, mats)):
            crop = cv2.warpAffine(as_rgb8(images[fi]), m, (s, s), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT)
            blob[i] = crop.transpose(2, 0, 1)
        raw = self.run_batched(blob)
        pts = (raw.reshape(n, 106, 2).astype(np.float64) + 1.0) * (s // 2)
        inv = np.stack([cv2.invertAffineTransform(m.astype(np.float64)) for m in mats])
        out = pts @ inv[:, :, :2].transpose(0, 2, 1) + inv[:, None, :, 2]
        return out.astype(np.float32)
