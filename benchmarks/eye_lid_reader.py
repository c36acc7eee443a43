"""A candidate eye-opening reader for the eval, checked by ``eye_judge_regions.py`` and not adopted (RESULTS.md,
lead s14: it too reads the brows and rims around the eye): MediaPipe's iris landmark model on a crop of each eye.

The eval's expression judge (InsightFace 2d106, :mod:`vidswap.eval.judges`) reads a face's eye aspect ratio from
points that also follow the brows and a pair of glasses' rims (eyes-s12: pasting only the plate's brows into a
result moved its reading as much as the whole eye region did; pasting the plate's eye opening and lids changed
nothing). This reader looks at the eye alone: a 64x64 crop centred on the 2d106 eye corners (side 2.3 x the corner
distance, rotated with the corner line, as MediaPipe crops the iris model's input), the model's first 16 eye
contour points (the lid line: corner, 7 lower-lid points, corner, 7 upper-lid points, in the face mesh's order), and
the opening = mean gap between the three middle upper / lower lid pairs over the corner distance.

The same model runs in the analysis pass (the iris points of the 478-point tracker), but here it reads the plate
and the result independently from the 2d106 judge's corners, never from the tracker's points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vidswap.eval.judges import LEFT_EYE_CORNERS, RIGHT_EYE_CORNERS
from vidswap.faces.landmarks import IRIS_SIZE, Rois, crop_matrices, extract_crops

#: (lower lid, upper lid) index pairs among the model's first 16 contour points: mesh points 144 / 160, 145 / 159,
#: 153 / 158 (the middle of the lids); 0 and 8 are the corners.
LID_PAIRS = ((3, 11), (4, 12), (5, 13))
CORNERS = (0, 8)
#: ROI side over the eye-corner distance (MediaPipe's iris crop).
ROI_SCALE = 2.3


def lid_opening(contour: np.ndarray) -> np.ndarray:
    """(..., >=16, 2+) eye contour points in the model's order -> (...,) mean lid gap over the corner distance."""
    xy = np.asarray(contour, np.float64)[..., :2]
    gap = np.mean([np.linalg.norm(xy[..., u, :] - xy[..., lo, :], axis=-1) for lo, u in LID_PAIRS], axis=0)
    width = np.linalg.norm(xy[..., CORNERS[1], :] - xy[..., CORNERS[0], :], axis=-1)
    return gap / np.maximum(width, 1e-6)


def eye_rois(points106: np.ndarray) -> Rois:
    """ROIs of both eyes of (N, 106, 2) judge points: N image-left eyes, then N image-right eyes, each from the
    corner on the image's left to the one on its right."""
    pts = np.asarray(points106, np.float64)[..., :2]
    a = np.concatenate([pts[:, LEFT_EYE_CORNERS[0]], pts[:, RIGHT_EYE_CORNERS[0]]])
    b = np.concatenate([pts[:, LEFT_EYE_CORNERS[1]], pts[:, RIGHT_EYE_CORNERS[1]]])
    v = b - a
    return Rois((a + b) / 2, np.linalg.norm(v, axis=1) * ROI_SCALE, np.arctan2(v[:, 1], v[:, 0]))


@dataclass
class EyeLidJudge:
    """The iris landmark model run on the judge's eye crops. Build with :meth:`load`."""

    runner: object
    note: str = ""

    @classmethod
    def load(cls, threads: int | None = 1) -> "EyeLidJudge":
        from vidswap.models.registry import fetch_model, load_manifest, model_path
        from vidswap.models.runtime import TFLiteRunner

        manifest = load_manifest()
        try:
            path = model_path("iris", manifest)
        except Exception:  # not in the cache yet: a default model, fetched like `models fetch --defaults` does
            path = fetch_model(manifest["iris"])
        note = (f"iris ({manifest['iris'].file}; license: {manifest['iris'].license}): eye opening from the lids, "
                "on crops placed from the 2d106 judge's eye corners")
        return cls(TFLiteRunner.from_path(path, threads), note)

    def __call__(self, images: Sequence[np.ndarray], points106: np.ndarray,
                 image_index: Sequence[int]) -> np.ndarray:
        """(N, 2) lid openings (image-left eye, image-right eye) of the faces with (N, 106, 2) judge points in
        ``images[image_index[i]]`` (H, W, 3 uint8 RGB)."""
        n = len(points106)
        if n == 0:
            return np.zeros((0, 2))
        rois = eye_rois(points106)
        crops = extract_crops(images, list(image_index) * 2, crop_matrices(rois, IRIS_SIZE), IRIS_SIZE)
        crops[n:] = crops[n:, :, ::-1]  # the model is trained on an image-left eye: the other one mirrored
        contour, _ = self.runner(crops)
        contour = np.asarray(contour, np.float64).reshape(2 * n, -1, 3)
        opening = lid_opening(contour[:, :16])  # a ratio: the same in crop and frame pixels, mirrored or not
        return np.stack([opening[:n], opening[n:]], 1)
