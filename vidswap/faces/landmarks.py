"""Dense 3D face landmarks: MediaPipe face mesh (468 points) + iris model (2 x 5 points) under LiteRT.

Output layout: 478 points, MediaPipe's refined-mesh convention.

- 0-467: the face mesh. ``z`` is depth in the same pixel scale as x and y, relative to the face centre,
  smaller = closer to the camera.
- 468-472: iris of the eye whose corners are mesh points 33 (outer) and 133 (inner), i.e. the subject's right
  eye, on the image left of an upright face (MediaPipe's ``FACEMESH_RIGHT_IRIS`` = 469-472); centre first,
  then four points on the iris edge in the iris model's order.
- 473-477: iris of the eye at 362 (inner) / 263 (outer) (``FACEMESH_LEFT_IRIS``); centre first.
  Iris ``z`` is the mean ``z`` of that eye's 16 mesh contour points (MediaPipe refines iris depth the same way).

How a face is processed (MediaPipe's face-landmark pipeline, re-implemented on numpy/OpenCV):

1. A region of interest (ROI): a square rotated so the eye line is horizontal. From a detection: centred on
   the box (shifted down by ``det_shift`` x box width along the face's vertical), side ``det_scale`` x the
   box's long side, angle from the two eye keypoints. From landmarks (tracking mode: the previous frame's
   points of the same face, or a first pass from a detection when ``refine_detections``): the bounds of the
   points in the eye-aligned frame, scaled by ``roi_scale`` (1.5, as MediaPipe), angle from points 33 -> 263.
2. The ROI is resampled to 192x192 (bilinear, border replicated), RGB in [0, 1]; the mesh runs batched over
   all faces of all frames of a call. Its 468 x (x, y, z) come out in crop pixels and are mapped back to
   the frame; z is scaled by the same factor as x and y. The face-presence output is a logit: confidence =
   sigmoid(logit).
3. Each eye: a square ROI on the eye corners (side 2.3 x the corner distance, rotated with the corner line)
   resampled to 64x64. The iris model is trained on the image-left eye; the image-right eye (362/263) is
   flipped horizontally before the model and its points flipped back (checked: the model's first 16 eye-
   contour points land on the mesh's eye contour only with this convention).

Five-point keypoints (``kps5``) from the mesh, in the order of ``vidswap.faces.types``: mean of each eye's
16 contour points (image-left eye first), nose tip (1), mouth corners (61 image-left, 291 image-right).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from vidswap.faces.align import as_rgb8, kps5_from_landmarks
from vidswap.faces.types import LEFT_EYE_CONTOUR, RIGHT_EYE_CONTOUR, Detection, FaceLandmarks
from vidswap.models.runtime import TFLiteRunner

MESH_SIZE = 192
IRIS_SIZE = 64

#: Eye corners (start -> end along the image x axis of an upright face) used for the iris ROIs.
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (362, 263)
RIGHT_IRIS = tuple(range(468, 473))
LEFT_IRIS = tuple(range(473, 478))
#: Points whose line sets the roll of a landmark ROI (outer eye corners).
ROLL_POINTS = (33, 263)


@dataclass(frozen=True)
class Rois:
    """Rotated square regions, batched.

    Attributes:
        center: (N, 2) frame pixels.
        size: (N,) side in frame pixels.
        angle: (N,) radians; direction of the crop's x axis in the frame (0 = upright).
    """

    center: np.ndarray
    size: np.ndarray
    angle: np.ndarray

    def __len__(self) -> int:
        return len(self.size)


def _rot(angle: np.ndarray) -> np.ndarray:
    """(N,) radians -> (N, 2, 2) rotation matrices mapping crop axes to frame axes."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def crop_matrices(rois: Rois, out: int) -> np.ndarray:
    """Frame->crop affine matrices for ``out`` x ``out`` crops of ``rois``.

    The ROI centre lands on the crop's centre (``out / 2`` in continuous coordinates). Returns (N, 2, 3)
    float32, ``cv2.warpAffine`` convention (pixel centres at integers).
    """
    k = (out / rois.size)[:, None, None]
    lin = np.swapaxes(_rot(rois.angle), -1, -2) * k  # R^T * k
    t = -(lin @ rois.center[..., None])[..., 0] + (out / 2 - 0.5)
    return np.concatenate([lin, t[..., None]], -1).astype(np.float32)


def crop_to_frame(points: np.ndarray, rois: Rois, out: int) -> np.ndarray:
    """Map model outputs in crop pixels back to frame pixels.

    Args:
        points: (N, P, 3) x, y in continuous crop coordinates of an ``out`` crop (the crop spans [0, out]),
            z in the same units.
        rois: the N regions the crops came from.
        out: crop side.

    Returns:
        (N, P, 3) float32: x, y in frame pixels (integer pixel centres), z scaled like x and y.
    """
    scale = (rois.size / out)[:, None]
    rel = (points[..., :2] - out / 2) * scale[..., None]
    xy = rel @ np.swapaxes(_rot(rois.angle), -1, -2) + rois.center[:, None, :]
    return np.concatenate([xy, points[..., 2:3] * scale[..., None]], -1).astype(np.float32)


def rois_from_detections(boxes: np.ndarray, kps: np.ndarray, scale: float = 1.32, shift: float = 0.05) -> Rois:
    """Mesh ROIs from detector boxes (N, 4) and keypoints (N, 5, 2).

    ``scale`` and ``shift`` are calibrated so the ROI matches the landmark-based ROI (1.5 x the bounds of
    the mesh) on average for YuNet boxes.
    """
    eye = kps[:, 1] - kps[:, 0]
    angle = np.arctan2(eye[:, 1], eye[:, 0])
    wh = boxes[:, 2:] - boxes[:, :2]
    down = np.stack([-np.sin(angle), np.cos(angle)], -1)  # the face's +y axis in the frame
    center = (boxes[:, :2] + boxes[:, 2:]) / 2 + shift * wh[:, :1] * down
    return Rois(center.astype(np.float64), (wh.max(1) * scale).astype(np.float64), angle.astype(np.float64))


def rois_from_landmarks(points: np.ndarray, scale: float = 1.5) -> Rois:
    """Mesh ROIs from landmarks (N, >=468, 2 or 3): eye-aligned bounds of the points, scaled by ``scale``."""
    pts = points[:, :468, :2].astype(np.float64)
    eye = pts[:, ROLL_POINTS[1]] - pts[:, ROLL_POINTS[0]]
    angle = np.arctan2(eye[:, 1], eye[:, 0])
    rot = _rot(angle)
    local = pts @ rot  # R^T p for each point
    lo, hi = local.min(1), local.max(1)
    center = (rot @ ((lo + hi) / 2)[..., None])[..., 0]
    return Rois(center, (hi - lo).max(1) * scale, angle)


def eye_rois(points: np.ndarray, corners: tuple[int, int], scale: float = 2.3) -> Rois:
    """Iris-model ROIs from the eye corners of landmarks (N, >=468, 2 or 3)."""
    a = points[:, corners[0], :2].astype(np.float64)
    b = points[:, corners[1], :2].astype(np.float64)
    v = b - a
    return Rois((a + b) / 2, np.linalg.norm(v, axis=1) * scale, np.arctan2(v[:, 1], v[:, 0]))


def extract_crops(frames: Sequence[np.ndarray], frame_index: Sequence[int], matrices: np.ndarray,
                  out: int, black_border: bool = False) -> np.ndarray:
    """(N, out, out, 3) float32 RGB crops in [0, 1] with ``cv2.warpAffine`` (bilinear; beyond the frame the border
    replicated, or black with ``black_border``)."""
    crops = np.empty((len(matrices), out, out, 3), np.float32)
    border = cv2.BORDER_CONSTANT if black_border else cv2.BORDER_REPLICATE
    for i, (fi, m) in enumerate(zip(frame_index, matrices)):
        crop = cv2.warpAffine(frames[fi], m, (out, out), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=0)
        np.multiply(crop, np.float32(1 / 255), out=crops[i], casting="unsafe")
    return crops


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


Prior = Detection | FaceLandmarks


@dataclass
class FaceMesh:
    """478-point landmarks for faces in frames, batched over all faces of a call.

    Build with ``FaceMesh.from_paths(model_path('face_mesh'), model_path('iris'))``.

    Attributes:
        mesh: runner of ``face_landmark.tflite``.
        iris: runner of ``iris_landmark.tflite``; None leaves 468-477 at the eye-contour centres.
        refine_detections: for faces given as detections, run the mesh a second time on the ROI of the
            first pass (the tracking-mode ROI), which removes the detector box's bias (~+0.8 ms per face).
        roi_scale: margin of landmark ROIs (MediaPipe: 1.5).
        det_scale, det_shift: detection ROI calibration (see ``rois_from_detections``).
        iris_scale: eye ROI side / eye-corner distance (MediaPipe: 2.3).
    """

    mesh: TFLiteRunner
    iris: TFLiteRunner | None = None
    refine_detections: bool = True
    roi_scale: float = 1.5
    det_scale: float = 1.32
    det_shift: float = 0.05
    iris_scale: float = 2.3

    @classmethod
    def from_paths(cls, mesh_path: Path | bytes, iris_path: Path | bytes | None = None, num_threads: int | None = None,
                   **kwargs) -> "FaceMesh":
        mesh = TFLiteRunner.from_path(mesh_path, num_threads)
        iris = TFLiteRunner.from_path(iris_path, num_threads) if iris_path is not None else None
        return cls(mesh, iris, **kwargs)

    def run_mesh(self, frames: Sequence[np.ndarray], frame_index: Sequence[int], rois: Rois
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Mesh on ROIs: (N, 468, 3) frame-pixel points and (N,) face-presence confidence."""
        if len(rois) == 0:
            return np.zeros((0, 468, 3), np.float32), np.zeros(0, np.float32)
        crops = extract_crops(frames, frame_index, crop_matrices(rois, MESH_SIZE), MESH_SIZE)
        raw, logit = self.mesh(crops)
        pts = crop_to_frame(raw.reshape(len(rois), 468, 3), rois, MESH_SIZE)
        return pts, _sigmoid(logit.reshape(len(rois))).astype(np.float32)

    def run_iris(self, frames: Sequence[np.ndarray], frame_index: Sequence[int], mesh: np.ndarray) -> np.ndarray:
        """Iris points (N, 10, 3) for meshes (N, 468, 3): 5 right-iris then 5 left-iris points."""
        n = len(mesh)
        if n == 0:
            return np.zeros((0, 10, 3), np.float32)
        right = eye_rois(mesh, RIGHT_EYE_CORNERS, self.iris_scale)
        left = eye_rois(mesh, LEFT_EYE_CORNERS, self.iris_scale)
        rois = Rois(np.concatenate([right.center, left.center]), np.concatenate([right.size, left.size]),
                    np.concatenate([right.angle, left.angle]))
        index = list(frame_index) * 2
        crops = extract_crops(frames, index, crop_matrices(rois, IRIS_SIZE), IRIS_SIZE)
        crops[n:] = crops[n:, :, ::-1]  # the model expects an image-left eye: mirror the other one
        _, iris = self.iris(crops)
        iris = iris.reshape(2 * n, 5, 3).copy()
        iris[n:, :, 0] = IRIS_SIZE - iris[n:, :, 0]
        iris = crop_to_frame(iris, rois, IRIS_SIZE)
        iris[:n, :, 2] = mesh[:, list(RIGHT_EYE_CONTOUR), 2].mean(1, keepdims=True)
        iris[n:, :, 2] = mesh[:, list(LEFT_EYE_CONTOUR), 2].mean(1, keepdims=True)
        return np.concatenate([iris[:n], iris[n:]], 1)

    def __call__(self, frames: Sequence[np.ndarray], priors: Sequence[Sequence[Prior]]
                 ) -> list[list[FaceLandmarks]]:
        """Landmarks for the given faces.

        Args:
            frames: HxWx3 RGB frames, uint8 (uint16 / float [0, 1] are converted).
            priors: per frame, the faces to process: a ``Detection`` (detector mode) or the previous frame's
                ``FaceLandmarks`` of the same face (tracking mode: the ROI follows the face without the
                detector).

        Returns:
            per frame, one ``FaceLandmarks`` per prior, in the same order. The caller decides what a low
            ``confidence`` means (e.g. below 0.5: tracking lost, run the detector).
        """
        if len(frames) != len(priors):
            raise ValueError(f"FaceMesh: {len(frames)} frames but {len(priors)} prior lists")
        frames = [as_rgb8(f) if faces else f for f, faces in zip(frames, priors)]
        index = [fi for fi, faces in enumerate(priors) for _ in faces]
        flat = [p for faces in priors for p in faces]
        n = len(flat)
        if n == 0:
            return [[] for _ in frames]
        centers, sizes, angles = np.zeros((n, 2)), np.zeros(n), np.zeros(n)
        is_det = np.array([isinstance(p, Detection) for p in flat])
        if is_det.any():
            det = [p for p in flat if isinstance(p, Detection)]
            r = rois_from_detections(np.stack([d.box for d in det]), np.stack([d.kps for d in det]),
                                     self.det_scale, self.det_shift)
            centers[is_det], sizes[is_det], angles[is_det] = r.center, r.size, r.angle
        if (~is_det).any():
            lms = [p for p in flat if not isinstance(p, Detection)]
            r = rois_from_landmarks(np.stack([lm.points for lm in lms]), self.roi_scale)
            centers[~is_det], sizes[~is_det], angles[~is_det] = r.center, r.size, r.angle
        rois = Rois(centers, sizes, angles)
        mesh, conf = self.run_mesh(frames, index, rois)
        if self.refine_detections and is_det.any():
            sel = np.nonzero(is_det)[0]
            again = rois_from_landmarks(mesh[sel], self.roi_scale)
            mesh2, conf2 = self.run_mesh(frames, [index[i] for i in sel], again)
            mesh[sel], conf[sel] = mesh2, conf2
        if self.iris is not None:
            iris = self.run_iris(frames, index, mesh)
        else:
            centre_r = mesh[:, list(RIGHT_EYE_CONTOUR)].mean(1, keepdims=True)
            centre_l = mesh[:, list(LEFT_EYE_CONTOUR)].mean(1, keepdims=True)
            iris = np.concatenate([np.repeat(centre_r, 5, 1), np.repeat(centre_l, 5, 1)], 1)
        points = np.concatenate([mesh, iris], 1).astype(np.float32)  # (n, NUM_LANDMARKS, 3)
        kps = kps5_from_landmarks(points)
        out: list[list[FaceLandmarks]] = [[] for _ in frames]
        for i, fi in enumerate(index):
            out[fi].append(FaceLandmarks(points=points[i], kps5=kps[i], confidence=float(conf[i])))
        return out
