"""Face detection with YuNet (OpenCV Zoo, MIT) run by onnxruntime, batched over frames.

The ONNX graph is prepared once per model (``runtime.prepare_onnx``, kept on disk by ``models.prepared``):
symbolic batch / height / width, and the heads' hard-coded batch-1 reshapes rewritten, so a list of same-sized
frames runs as one batch. Decoding follows OpenCV's ``FaceDetectorYN`` exactly (checked in the tests): per stride
s in (8, 16, 32) and grid cell (r, c),
``score = sqrt(clip(cls) * clip(obj))``, centre ``((c, r) + bbox[:2]) * s``, size ``exp(bbox[2:]) * s``,
keypoints ``((c, r) + kps) * s``; then non-maximum suppression.

Frames are scaled so their longest side is ``input_size`` (up or down) and zero-padded to multiples of 32.
Frames where nothing is found are retried rotated by the further entries of ``angles`` (FaceFusion's
``--face-detector-angles``), with boxes and keypoints mapped back to the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from vidswap.errors import InputError
from vidswap.faces.align import as_rgb8
from vidswap.faces.types import Detection
from vidswap.models.prepared import prepared_onnx
from vidswap.models.runtime import onnx_session

STRIDES = (8, 16, 32)
_ROTATE = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression.

    Args:
        boxes: (N, 4) x0, y0, x1, y1.
        scores: (N,).
        iou_threshold: boxes overlapping a kept box by more than this IoU are dropped.

    Returns:
        (K,) int64 indices of kept boxes, best score first.
    """
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        x0 = np.maximum(boxes[i, 0], boxes[rest, 0])
        y0 = np.maximum(boxes[i, 1], boxes[rest, 1])
        x1 = np.minimum(boxes[i, 2], boxes[rest, 2])
        y1 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def decode_yunet(outputs: dict[str, np.ndarray], padded_hw: tuple[int, int], score_threshold: float
                 ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Decode raw YuNet outputs of a batch.

    Args:
        outputs: ``{cls_s, obj_s, bbox_s, kps_s}`` for s in 8/16/32, each (B, cells, k).
        padded_hw: network input height and width (multiples of 32).
        score_threshold: minimum score kept.

    Returns:
        per batch item ``(boxes (N, 4) x0,y0,x1,y1, kps (N, 5, 2), scores (N,))`` in network-input pixels,
        before NMS.
    """
    ph, pw = padded_hw
    batch = outputs["cls_8"].shape[0]
    per_item: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in range(batch)]
    for s in STRIDES:
        rows, cols = ph // s, pw // s
        r, c = np.divmod(np.arange(rows * cols, dtype=np.float32), cols)
        cls = np.clip(outputs[f"cls_{s}"][..., 0], 0, 1)
        obj = np.clip(outputs[f"obj_{s}"][..., 0], 0, 1)
        score = np.sqrt(cls * obj)
        for b in range(batch):
            sel = np.nonzero(score[b] >= score_threshold)[0]
            if sel.size == 0:
                continue
            bb = outputs[f"bbox_{s}"][b, sel]
            kp = outputs[f"kps_{s}"][b, sel].reshape(-1, 5, 2)
            cx = (c[sel] + bb[:, 0]) * s
            cy = (r[sel] + bb[:, 1]) * s
            w = np.exp(bb[:, 2]) * s
            h = np.exp(bb[:, 3]) * s
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
            kps = (kp + np.stack([c[sel], r[sel]], 1)[:, None, :]) * s
            per_item[b].append((boxes, kps, score[b, sel]))
    out = []
    for parts in per_item:
        if parts:
            out.append(tuple(np.concatenate(p) for p in zip(*parts)))
        else:
            out.append((np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32), np.zeros(0, np.float32)))
    return out


def _unrotate(pts: np.ndarray, angle: int, hw: tuple[int, int]) -> np.ndarray:
    """Map (..., 2) points from a frame rotated clockwise by ``angle`` back to the original (H, W) frame."""
    h, w = hw
    x, y = pts[..., 0], pts[..., 1]
    if angle == 90:  # rotated frame is (w, h); original (x, y) -> (h - 1 - y, x)
        out = np.stack([y, h - 1 - x], -1)
    elif angle == 180:
        out = np.stack([w - 1 - x, h - 1 - y], -1)
    elif angle == 270:  # original (x, y) -> (y, w - 1 - x)
        out = np.stack([w - 1 - y, x], -1)
    else:
        out = pts.copy()
    return out.astype(np.float32)


def rotate_frame(frame: np.ndarray, angle: int) -> np.ndarray:
    """Rotate an HxWxC frame clockwise by 0/90/180/270 degrees."""
    return frame if angle == 0 else cv2.rotate(frame, _ROTATE[angle])


@dataclass
class YuNetDetector:
    """YuNet face detector over lists of frames.

    Build with ``YuNetDetector.from_path(model_path('yunet'), ...)``.

    Attributes:
        session: onnxruntime session of the prepared graph.
        input_size: longest side of the network input (frames are scaled up or down to it).
        score_threshold: minimum detection score.
        nms_threshold: IoU above which overlapping boxes are suppressed.
        min_face: smallest face kept, in frame pixels (box short side).
        angles: rotations (degrees clockwise) of the frame. The first is the normal pass (usually 0); where it
            finds nothing, every further angle is tried and the one whose best detection scores highest is
            kept (a sideways face often scores above threshold upside down too, so first-found is not
            enough). E.g. ``(0, 90, 270)`` for footage shot sideways.
        max_batch: frames per network call.
        edge_margin: a box reaching this many pixels past the frame border counts as ``truncated``.
    """

    session: object
    input_size: int = 320
    score_threshold: float = 0.6
    nms_threshold: float = 0.3
    min_face: float = 24.0
    angles: tuple[int, ...] = (0,)
    max_batch: int = 8
    edge_margin: float = 0.0

    def __post_init__(self) -> None:
        bad = [a for a in self.angles if a not in (0, 90, 180, 270)]
        if bad or not self.angles:
            raise InputError(f"detector angles must be among 0, 90, 180, 270; got {list(self.angles)}")
        if self.input_size < 32:
            raise InputError(f"detector input size must be at least 32 px; got {self.input_size}")

    @classmethod
    def from_path(cls, path: Path | bytes, providers: Sequence[str] | None = None, threads: int | None = None,
                  **kwargs) -> "YuNetDetector":
        """Prepare the YuNet graph for batched, any-size input and open a session on it."""
        graph = prepared_onnx(path, dynamic_batch=True, dynamic_spatial=True, batch_reshapes=True)
        return cls(onnx_session(graph, providers=providers, threads=threads), **kwargs)

    def _geometry(self, hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """Network size for a frame: resized (nh, nw) with the long side ``input_size``, padded (ph, pw)."""
        h, w = hw
        scale = self.input_size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        return nh, nw, (nh + 31) // 32 * 32, (nw + 31) // 32 * 32

    def network_frame(self, frame: np.ndarray) -> np.ndarray:
        """The frame (HxWx3 RGB, any dtype :func:`as_rgb8` takes) at the network's size, unpadded: (nh, nw, 3)
        uint8, the frame itself where it is that size. Reductions are area averages (INTER_AREA), enlargements
        bilinear."""
        frame = as_rgb8(frame)
        hw = frame.shape[:2]
        nh, nw, _, _ = self._geometry(hw)
        if (nh, nw) == hw:
            return frame
        return cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA if nw < hw[1] else cv2.INTER_LINEAR)

    def _run(self, frames: Sequence[np.ndarray], resized: Sequence[np.ndarray] | None = None
             ) -> list[list[Detection]]:
        """Detect in frames of one size (no rotation retry); ``resized``: their :meth:`network_frame`, when the
        caller has them."""
        if not frames:
            return []
        hw = frames[0].shape[:2]
        nh, nw, ph, pw = self._geometry(hw)
        scale = np.array([nw / hw[1], nh / hw[0]], np.float32)
        results: list[list[Detection]] = []
        for start in range(0, len(frames), self.max_batch):
            chunk = frames[start:start + self.max_batch]
            blob = np.zeros((len(chunk), 3, ph, pw), np.float32)
            for i, frame in enumerate(chunk):
                small = self.network_frame(frame) if resized is None else resized[start + i]
                blob[i, :, :nh, :nw] = small[..., ::-1].transpose(2, 0, 1)  # RGB -> BGR planes
            names = [o.name for o in self.session.get_outputs()]
            outs = dict(zip(names, self.session.run(None, {self.session.get_inputs()[0].name: blob})))
            for boxes, kps, scores in decode_yunet(outs, (ph, pw), self.score_threshold):
                results.append(self._finish(boxes, kps, scores, scale, hw))
        return results

    def _finish(self, boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, scale: np.ndarray,
                hw: tuple[int, int]) -> list[Detection]:
        if len(scores) == 0:
            return []
        keep = nms(boxes, scores, self.nms_threshold)
        h, w = hw
        dets = []
        for i in keep:
            # network-input px -> frame px (cv2.resize maps pixel centres; padding is bottom/right)
            box = ((boxes[i].reshape(2, 2) + 0.5) / scale - 0.5).reshape(4).astype(np.float32)
            kp = ((kps[i] + 0.5) / scale - 0.5).astype(np.float32)
            if min(box[2] - box[0], box[3] - box[1]) < self.min_face:
                continue
            m = self.edge_margin
            truncated = bool(box[0] < -m or box[1] < -m or box[2] > w - 1 + m or box[3] > h - 1 + m)
            dets.append(Detection(box=box, kps=kp, score=float(scores[i]), angle=0, truncated=truncated))
        return dets

    def __call__(self, frames: Sequence[np.ndarray], resized: Sequence[np.ndarray] | None = None
                 ) -> list[list[Detection]]:
        """Detect faces in each frame.

        Args:
            frames: HxWx3 RGB frames, uint8 (uint16 / float [0, 1] are converted), any sizes; same-sized
                frames run together.
            resized: the frames' :meth:`network_frame` when the caller has made them (the analysis takes its cut
                thumbnails from them); the normal pass then reads no full frame.

        Returns:
            per frame, the detections sorted by score (best first); an empty list where none is found.
        """
        frames = [as_rgb8(f) for f in frames]
        results: list[list[Detection] | None] = [None] * len(frames)
        todo = list(range(len(frames)))
        for n, angle in enumerate(self.angles):
            if not todo:
                break
            groups: dict[tuple[int, ...], list[int]] = {}  # same-sized frames batch together
            for i in todo:
                groups.setdefault(tuple(frames[i].shape), []).append(i)
            for idxs in groups.values():
                rotated = [rotate_frame(frames[i], angle) for i in idxs]
                small = [resized[i] for i in idxs] if resized is not None and angle == 0 else None
                for i, dets in zip(idxs, self._run(rotated, small)):
                    if not dets:
                        continue
                    if angle != 0:
                        dets = [self._unrotate(d, angle, frames[i].shape[:2]) for d in dets]
                    if not results[i] or dets[0].score > results[i][0].score:
                        results[i] = dets
            if n == 0:  # retries: every further angle runs; the one with the best top score wins
                todo = [i for i in todo if not results[i]]
        return [r or [] for r in results]

    def _unrotate(self, det: Detection, angle: int, hw: tuple[int, int]) -> Detection:
        h, w = hw
        x0, y0, x1, y1 = det.box
        corners = _unrotate(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32), angle, hw)
        box = np.concatenate([corners.min(0), corners.max(0)]).astype(np.float32)
        m = self.edge_margin
        truncated = bool(box[0] < -m or box[1] < -m or box[2] > w - 1 + m or box[3] > h - 1 + m)
        return Detection(box=box, kps=_unrotate(det.kps, angle, hw), score=det.score, angle=angle,
                         truncated=truncated)


def largest_face(detections: Sequence[Detection]) -> Detection | None:
    """The detection with the largest box area (ties: higher score); None for an empty list."""
    if not detections:
        return None
    return max(detections, key=lambda d: (d.area, d.score))
