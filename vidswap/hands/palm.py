"""MediaPipe palm detection (``palm_detection_full.tflite``) under LiteRT: SSD anchors, decoding, weighted NMS.

The model sees the whole frame letterboxed to 192x192 (aspect kept, padded with black), RGB in [0, 1]. Its 2016
anchors: 24x24 cells x 2 (stride 8) then 12x12 cells x 6 (stride 16), fixed size, centres at (i + 0.5) / grid.
Each row of the regressor output is box centre x, y, width, height and 7 keypoints x, y, in 192-px units relative to
the anchor centre; scores are logits. Keypoint 0 is the wrist, 2 the middle finger's MCP joint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidswap.models.runtime import TFLiteRunner

PALM_SIZE = 192


def palm_anchors(size: int = PALM_SIZE) -> np.ndarray:
    """(2016, 2) anchor centres in [0, 1] (x, y), MediaPipe's order: per stride group, rows, columns, anchors."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        grid = size // stride
        ys, xs = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], -1)
        out.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class Letterbox:
    """Frame -> square model input mapping: ``input = frame * scale + pad`` (pixel-corner convention)."""

    scale: float
    pad: tuple[float, float]
    size: int

    @classmethod
    def fit(cls, width: int, height: int, size: int = PALM_SIZE) -> "Letterbox":
        scale = size / max(width, height)
        return cls(scale, ((size - width * scale) / 2, (size - height * scale) / 2), size)

    def to_frame(self, xy: np.ndarray) -> np.ndarray:
        """Normalised model coordinates (..., 2) in [0, 1] -> frame pixels (integer pixel centres)."""
        return (xy * self.size - np.asarray(self.pad)) / self.scale - 0.5

    def image(self, frame: np.ndarray) -> np.ndarray:
        """(size, size, 3) float32 RGB in [0, 1] from an HxWx3 uint8 frame."""
        h, w = frame.shape[:2]
        m = np.array([[self.scale, 0, self.pad[0] + 0.5 * self.scale - 0.5],
                      [0, self.scale, self.pad[1] + 0.5 * self.scale - 0.5]], np.float32)
        out = cv2.warpAffine(frame, m, (self.size, self.size), flags=cv2.INTER_AREA if self.scale < 1
                             else cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out.astype(np.float32) / 255.0


@dataclass(frozen=True)
class Palms:
    """Palm detections of one frame.

    Attributes:
        boxes: (N, 4) centre x, y, width, height in frame pixels.
        keypoints: (N, 7, 2) frame pixels (0 wrist, 2 middle-finger MCP).
        scores: (N,) in [0, 1].
    """

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def decode_palms(raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray, threshold: float,
                 size: int = PALM_SIZE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Anchor-relative regressions -> (boxes (N, 4) cx, cy, w, h, keypoints (N, 7, 2), scores (N,)), all in
    normalised input coordinates, keeping anchors whose sigmoid score exceeds ``threshold``.

    Args:
        raw: (2016, 18) regressor rows; logits: (2016,) or (2016, 1); anchors: (2016, 2).
    """
    score = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1), -100, 100)))
    keep = score > threshold
    r = raw[keep].astype(np.float64) / size
    a = anchors[keep].astype(np.float64)
    boxes = np.concatenate([r[:, :2] + a, r[:, 2:4]], 1)
    kps = r[:, 4:18].reshape(-1, 7, 2) + a[:, None]
    return boxes, kps, score[keep]


def box_iou_cxcywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of one box ``a`` (4,) with boxes ``b`` (N, 4), centre/size form."""
    lo = np.maximum(a[:2] - a[2:] / 2, b[:, :2] - b[:, 2:] / 2)
    hi = np.minimum(a[:2] + a[2:] / 2, b[:, :2] + b[:, 2:] / 2)
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    union = a[2] * a[3] + b[:, 2] * b[:, 3] - inter
    return inter / np.maximum(union, 1e-12)


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, iou: float = 0.3
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: each cluster (IoU > ``iou`` with its best box) becomes the
    score-weighted mean of its boxes and keypoints, with the best score. Sorted by score, best first."""
    order = np.argsort(-scores, kind="stable")
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    alive = np.ones(len(scores), bool)
    out_b, out_k, out_s = [], [], []
    for i in range(len(scores)):
        if not alive[i]:
            continue
        member = alive & (box_iou_cxcywh(boxes[i], boxes) > iou)
        member[i] = True
        w = scores[member][:, None]
        out_b.append((boxes[member] * w).sum(0) / w.sum())
        out_k.append((kps[member] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
        alive &= ~member
    if not out_s:
        return np.zeros((0, 4)), np.zeros((0, 7, 2)), np.zeros(0)
    return np.stack(out_b), np.stack(out_k), np.asarray(out_s)


@dataclass
class PalmDetector:
    """Palms in whole frames. Build with ``PalmDetector.from_path(model_path('palm_detection'))``."""

    runner: TFLiteRunner
    threshold: float = 0.5
    nms_iou: float = 0.3
    max_palms: int = 2

    @classmethod
    def from_path(cls, path: Path | bytes, num_threads: int | None = None, **kwargs) -> "PalmDetector":
        return cls(TFLiteRunner.from_path(path, num_threads, max_batch=1), **kwargs)

    def __post_init__(self) -> None:
        self.anchors = palm_anchors()

    def __call__(self, frame: np.ndarray) -> Palms:
        """Palms of an HxWx3 RGB uint8 frame, best first (at most ``max_palms``)."""
        h, w = frame.shape[:2]
        lb = Letterbox.fit(w, h)
        raw, logits = self.runner(lb.image(frame)[None])
        boxes, kps, scores = decode_palms(raw[0], logits[0], self.anchors, self.threshold)
        boxes, kps, scores = weighted_nms(boxes, kps, scores, self.nms_iou)
        boxes, kps, scores = boxes[:self.max_palms], kps[:self.max_palms], scores[:self.max_palms]
        centre = lb.to_frame(boxes[:, :2]) if len(boxes) else np.zeros((0, 2))
        wh = boxes[:, 2:] * lb.size / lb.scale
        return Palms(np.concatenate([centre, wh], 1).astype(np.float32),
                     lb.to_frame(kps).astype(np.float32) if len(kps) else np.zeros((0, 7, 2), np.float32),
                     scores.astype(np.float32))
