"""Small records exchanged by the face-analysis stages.

Coordinates are frame pixels (x right, y down; pixel centres at integer coordinates, OpenCV convention).
Five-point keypoints are always ordered like YuNet / InsightFace / the ArcFace template, by *image side* of an
upright face: ``[eye on the image left (the subject's right eye), eye on the image right, nose tip,
mouth corner on the image left, mouth corner on the image right]``.

Records hold numpy arrays, so they compare by identity (``eq=False``), not by value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Number of points in the dense layout: 468 mesh points + 2 x 5 iris points (MediaPipe's refined mesh).
NUM_LANDMARKS = 478
#: The 16 mesh points of each eye contour, in the order of the iris model's first 16 eye-contour outputs; their
#: means are the eye keypoints of the five-point layout.
RIGHT_EYE_CONTOUR = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173)
LEFT_EYE_CONTOUR = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398)
NOSE_TIP = 1
MOUTH_CORNERS = (61, 291)


@dataclass(frozen=True, eq=False)
class Detection:
    """One detected face.

    Attributes:
        box: (4,) float32 ``x0, y0, x1, y1`` in frame pixels. Not clipped: may extend past the frame.
        kps: (5, 2) float32 keypoints (see module doc for the order).
        score: detector confidence in [0, 1].
        angle: clockwise rotation (0/90/180/270 degrees) the frame was given for the detector to find this
            face; 0 for upright faces. Box and keypoints are always in the original frame.
        truncated: the box reaches past the frame border (a face cut off at the edge).
    """

    box: np.ndarray
    kps: np.ndarray
    score: float
    angle: int = 0
    truncated: bool = False

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def size(self) -> float:
        """Geometric mean of the box sides (pixels)."""
        return float(np.sqrt(max(self.width, 0.0) * max(self.height, 0.0)))

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


@dataclass(frozen=True, eq=False)
class FaceLandmarks:
    """Dense landmarks of one face in one frame.

    Attributes:
        points: (478, 3) float32, frame pixels; z in the same pixel scale, relative to the face centre,
            smaller = closer to the camera (MediaPipe convention). Indices 0-467: MediaPipe face mesh;
            468-472: iris of the eye around mesh points 33/133 (the subject's right eye, image left when
            upright), centre first; 473-477: iris of the eye around 362/263, centre first.
        kps5: (5, 2) float32 five-point keypoints derived from the mesh (module doc of ``types`` for order).
        confidence: face-presence probability in [0, 1] from the mesh model.
        box: (4,) float32 axis-aligned bounds of the 478 points ``x0, y0, x1, y1`` (frame pixels).
    """

    points: np.ndarray
    kps5: np.ndarray
    confidence: float
    box: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.box is None:
            xy = self.points[:, :2]
            object.__setattr__(self, "box", np.concatenate([xy.min(0), xy.max(0)]).astype(np.float32))


@dataclass(frozen=True, eq=False)
class FaceObservation:
    """What analysis knows about one face in one frame (the track stage links these across frames).

    Attributes:
        frame: frame index in the shot.
        detection: the detector's box, if the detector ran on this frame and found this face.
        landmarks: dense landmarks, if computed.
        embedding: (D,) float32 L2-normalised identity embedding, if computed (new tracks / re-checks).
    """

    frame: int
    detection: Detection | None = None
    landmarks: FaceLandmarks | None = None
    embedding: np.ndarray | None = None

    @property
    def kps5(self) -> np.ndarray | None:
        """Best available five-point keypoints: from the landmarks, else from the detection."""
        if self.landmarks is not None:
            return self.landmarks.kps5
        return None if self.detection is None else self.detection.kps
