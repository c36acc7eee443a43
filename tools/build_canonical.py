"""Regenerate the static face data in ``vidswap/faces/data/`` from real frontal face images (a developer tool; not
shipped with the package).

    python tools/build_canonical.py [--media NAME --frames K | --image PATH] [--out FILE]

Default: the first 10 frames of the sample clip ``single_face_clip`` (samples/media.yaml: a man looking
straight into the lens with a neutral expression). Writes ``canonical_face.npz`` (~5 KB) with

* ``mirror`` (478,) int64: the left/right symmetric partner of every landmark (an involution),
* ``canonical`` (478, 3) float32: the frontal, symmetric, centred, unit-scale canonical face
  (see :func:`vidswap.faces.pose.canonical_face` for the frame convention),
* ``source`` str: what it was built from.

How: dense landmarks of each frame (MediaPipe face mesh + iris TFLite models, run here directly on crops;
production landmarks come from ``vidswap.faces.landmarks``) -> each frontalised (:func:`frontalise`: symmetry
plane by an iterated reflection fit; mirror-nearest-neighbour pairs as a one-to-one assignment with
``scipy.optimize.linear_sum_assignment``, so the pairing is a permutation) and normalised -> per-point median
over the frames -> frontalised again -> mirror map checked to be an involution -> canonical = symmetrised
(average of the face and its mirror image), centred, unit RMS radius.

The small landmark runner below (:class:`FaceMeshRunner`, :func:`face_landmarks`) is a development tool used
by this script and by tests that need real landmarks; it is deliberately simple (one face, no batching).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from scipy.optimize import linear_sum_assignment

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

import fetch_media  # noqa: E402

from vidswap.errors import NoFaceError  # noqa: E402
from vidswap.models.registry import model_path  # noqa: E402

DATA_DIR = ROOT / "vidswap" / "faces" / "data"
CANONICAL_FILE = DATA_DIR / "canonical_face.npz"
DEFAULT_MEDIA = "single_face_clip"  # a still, frontal, neutral face looking into the lens (samples/media.yaml)
DEFAULT_FRAMES = 10

MESH_SIZE = 192
IRIS_SIZE = 64
# eye-corner landmarks per eye: (outer, inner); first = the eye whose iris is 468..472
EYE_CORNERS = ((33, 133), (263, 362))
EYE_CONTOUR_16 = (  # the 16 mesh eye-contour points, same order as the iris model's first 16 contour points
    (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173),
    (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398),
)


# ---------------------------------------------------------------------------------------------------------------
# development landmark runner
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CropWindow:
    """A square, rotated crop: centre (x, y) in frame pixels, side in frame pixels, rotation in radians."""

    cx: float
    cy: float
    side: float
    angle: float

    def matrix(self, size: int) -> np.ndarray:
        """(2, 3) affine frame -> crop pixels (crop is ``size`` square, upright)."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = size / self.side
        rot = np.array([[c, s], [-s, c]]) * k  # rotate by -angle, scale
        t = np.array([size / 2, size / 2]) - rot @ np.array([self.cx, self.cy])
        return np.concatenate([rot, t[:, None]], axis=1)

    def to_frame(self, pts: np.ndarray, size: int) -> np.ndarray:
        """(N, 3) crop pixels (x, y, z) -> frame pixels; z is scaled like x and y."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        k = self.side / size
        u = (pts[:, :2] - size / 2) * k
        xy = u @ np.array([[c, s], [-s, c]]) + np.array([self.cx, self.cy])
        return np.concatenate([xy, pts[:, 2:3] * k], axis=1)


class FaceMeshRunner:
    """MediaPipe face mesh + iris TFLite models on one RGB frame (development tool, not the production path)."""

    def __init__(self, mesh_model: Path | None = None, iris_model: Path | None = None,
                 detector_model: Path | None = None):
        self._mesh = Interpreter(str(mesh_model or model_path("face_mesh")), num_threads=1)
        self._iris = Interpreter(str(iris_model or model_path("iris")), num_threads=1)
        self._mesh.allocate_tensors()
        self._iris.allocate_tensors()
        self._detector_model = str(detector_model or model_path("yunet"))

    def _run(self, interp, crop: np.ndarray) -> list[np.ndarray]:
        interp.set_tensor(interp.get_input_details()[0]["index"], crop[None].astype(np.float32))
        interp.invoke()
        return [interp.get_tensor(o["index"]).reshape(-1) for o in interp.get_output_details()]

    def detect(self, rgb: np.ndarray) -> CropWindow:
        """Largest face by YuNet -> a first crop window (eye line sets the rotation)."""
        h, w = rgb.shape[:2]
        det = cv2.FaceDetectorYN.create(self._detector_model, "", (w, h), 0.6)
        _, faces = det.detect(np.ascontiguousarray(rgb[..., ::-1]))
        if faces is None or len(faces) == 0:
            raise NoFaceError("no face found by the detector")
        f = faces[np.argmax(faces[:, 2] * faces[:, 3])]
        x, y, bw, bh = f[:4]
        (rex, rey), (lex, ley) = f[4:6], f[6:8]
        return CropWindow(x + bw / 2, y + bh / 2, 1.3 * max(bw, bh), float(np.arctan2(ley - rey, lex - rex)))

    @staticmethod
    def window_from_landmarks(lm: np.ndarray, scale: float = 1.5) -> CropWindow:
        """Crop window from landmarks: eye line rotation, rotated bounding box scaled by ``scale``, square."""
        d = lm[263, :2] - lm[33, :2]
        angle = float(np.arctan2(d[1], d[0]))
        c, s = np.cos(angle), np.sin(angle)
        u = lm[:468, :2] @ np.array([[c, -s], [s, c]])  # rotate by -angle
        lo, hi = u.min(0), u.max(0)
        mid = (lo + hi) / 2 @ np.array([[c, s], [-s, c]])
        return CropWindow(float(mid[0]), float(mid[1]), float(scale * (hi - lo).max()), angle)

    def mesh(self, rgb: np.ndarray, win: CropWindow) -> tuple[np.ndarray, float]:
        """(468, 3) frame-pixel landmarks and the face score (logit) for one crop window."""
        crop = cv2.warpAffine(rgb, win.matrix(MESH_SIZE), (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
        out = self._run(self._mesh, crop.astype(np.float32) / 255.0)
        pts, score = (out[0], out[1]) if out[0].size == 1404 else (out[1], out[0])
        return win.to_frame(pts.reshape(468, 3), MESH_SIZE), float(score[0])

    def irises(self, rgb: np.ndarray, lm: np.ndarray) -> np.ndarray:
        """(10, 3) iris points (centre + 4) for both eyes, frame pixels, z relative to the eye contour depth."""
        out = []
        for eye, (a, b) in enumerate(EYE_CORNERS):
            p, q = lm[a, :2], lm[b, :2]
            centre = (p + q) / 2
            d = lm[263, :2] - lm[33, :2]
            win = CropWindow(float(centre[0]), float(centre[1]), 2.3 * float(np.linalg.norm(p - q)),
                             float(np.arctan2(d[1], d[0])))
            crop = cv2.warpAffine(rgb, win.matrix(IRIS_SIZE), (IRIS_SIZE, IRIS_SIZE), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE).astype(np.float32) / 255.0
            flip = eye == 1  # the iris model expects the 33/133 eye's orientation; mirror the other eye
            if flip:
                crop = crop[:, ::-1]
            res = self._run(self._iris, np.ascontiguousarray(crop))
            contour, iris = (res[0], res[1]) if res[0].size == 213 else (res[1], res[0])
            iris = iris.reshape(5, 3).copy()
            contour = contour.reshape(71, 3).copy()
            if flip:
                iris[:, 0] = IRIS_SIZE - iris[:, 0]
                contour[:, 0] = IRIS_SIZE - contour[:, 0]
            iris_f = win.to_frame(iris, IRIS_SIZE)
            contour_f = win.to_frame(contour[:16], IRIS_SIZE)
            # depth: iris model z is relative to its own crop; anchor on the mesh eye contour depth
            eye_idx = list(EYE_CONTOUR_16[eye])
            iris_f[:, 2] += lm[eye_idx, 2].mean() - contour_f[:, 2].mean()
            out.append(iris_f)
        return np.concatenate(out, axis=0)

    def __call__(self, rgb: np.ndarray, win: CropWindow | None = None, refine: int = 2
                 ) -> tuple[np.ndarray, float, CropWindow]:
        """Landmarks (478, 3) float32 in frame pixels, face score, and the crop window to reuse next frame.

        ``win`` None runs the detector; each refinement re-crops from the previous landmarks.
        """
        win = win or self.detect(rgb)
        lm, score = self.mesh(rgb, win)
        for _ in range(refine):
            win = self.window_from_landmarks(lm)
            lm, score = self.mesh(rgb, win)
        full = np.concatenate([lm, self.irises(rgb, lm)], axis=0).astype(np.float32)
        return full, score, self.window_from_landmarks(lm)


def face_landmarks(rgb: np.ndarray, runner: FaceMeshRunner | None = None) -> np.ndarray:
    """(478, 3) float32 landmarks of the largest face in an RGB uint8 image (development helper)."""
    return (runner or FaceMeshRunner())(rgb)[0]


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(path)
    return np.ascontiguousarray(bgr[..., ::-1])


# ---------------------------------------------------------------------------------------------------------------
# symmetry, mirror map, canonical face
# ---------------------------------------------------------------------------------------------------------------

def _kabsch(src: np.ndarray, dst: np.ndarray, det_sign: float) -> np.ndarray:
    """Orthogonal Q (3, 3) with det = det_sign minimising ||Q src_c - dst_c|| over centred point sets (N, 3)."""
    h = (dst - dst.mean(0)).T @ (src - src.mean(0))
    u, _, vt = np.linalg.svd(h)
    d = np.diag([1.0, 1.0, det_sign * np.sign(np.linalg.det(u @ vt))])
    return u @ d @ vt


def mirror_pairs(points: np.ndarray) -> np.ndarray:
    """Left/right partner (478,) of every point of a frontalised face (478, 3) (symmetry plane x = 0).

    Mesh points 0..467: the point nearest each point's x-mirror, as a one-to-one assignment
    (``linear_sum_assignment``) on the symmetric cost ``C[i, j] = |F p_i - p_j| + |F p_j - p_i|`` (F flips x),
    so the result is a permutation. Iris points by construction: the iris model runs on the 263-side eye
    crop flipped horizontally, so 468 + k <-> 473 + k (gaze would make a geometric pairing unreliable).
    """
    mesh = points[:468]
    flipped = mesh * np.array([-1.0, 1.0, 1.0])
    c = np.linalg.norm(flipped[:, None] - mesh[None], axis=-1)
    _, col = linear_sum_assignment(c + c.T)
    iris = np.concatenate([np.arange(473, 478), np.arange(468, 473)])
    return np.concatenate([col, iris]).astype(np.int64)


def frontalise(points: np.ndarray, iters: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Frontalise a face (N, 3): rotate and centre it so its symmetry plane is x = 0 and it faces -z.

    Returns ``(frontal (N, 3), mirror (N,))``. Starts from the eye line (33 -> 263) as +x and the camera's y;
    then iterates: mirror pairs in the current frame -> the reflection best mapping each point onto its
    partner (orthogonal fit with det -1) -> its -1 eigenvector is the symmetry-plane normal -> new +x.
    Pitch is kept as seen by the camera (y is the camera's y made orthogonal to the plane normal), so a
    portrait looking into the lens gives a face looking along -z. +x points to the subject's left (263).
    """
    p = points - points.mean(0)
    x_axis = p[263] - p[33]
    rot = _frame_from_x(x_axis)
    mirror = np.arange(len(p))
    for _ in range(iters):
        q = p @ rot.T
        q = q - q.mean(0)
        new_mirror = mirror_pairs(q)
        refl = _kabsch(q, q[new_mirror], det_sign=-1.0)
        w, v = np.linalg.eigh((refl + refl.T) / 2)
        n = v[:, 0] * np.sign(v[0, 0])  # eigenvalue -1 of the reflection, pointing along current +x
        rot = _frame_from_x(n) @ rot
        converged = np.array_equal(new_mirror, mirror) and abs(n[0]) > 1 - 1e-10
        mirror = new_mirror
        if converged:
            break
    q = p @ rot.T
    q -= q.mean(0)
    if q[1, 2] > q[:468, 2].mean():  # nose tip (1) must be the nearest to the camera (smallest z)
        q = q * np.array([-1.0, 1.0, -1.0])  # 180 degrees about y
        mirror = mirror_pairs(q)
    return q, mirror


def _frame_from_x(x_axis: np.ndarray) -> np.ndarray:
    """Rotation (3, 3) whose rows are x = ``x_axis``, y = camera y made orthogonal to x, z = x cross y."""
    x = x_axis / np.linalg.norm(x_axis)
    y = np.array([0.0, 1.0, 0.0]) - x * x[1]
    y /= np.linalg.norm(y)
    return np.stack([x, y, np.cross(x, y)])


def check_involution(mirror: np.ndarray) -> None:
    if not np.array_equal(mirror[mirror], np.arange(len(mirror))):
        bad = np.flatnonzero(mirror[mirror] != np.arange(len(mirror)))
        raise ValueError(f"mirror map is not an involution at {bad[:10].tolist()}")


def symmetrise(points: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """(N, 3) -> the average of the face and its x-mirrored partner points; midline points get x = 0."""
    flipped = points[mirror] * np.array([-1.0, 1.0, 1.0], dtype=points.dtype)
    return (points + flipped) / 2


def read_video_frames(path: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of a video as RGB uint8 arrays (PyAV)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def normalise(points: np.ndarray) -> np.ndarray:
    """(478, 3) -> centred on the mesh-point centroid, scaled to unit RMS radius of the 468 mesh points."""
    p = points - points[:468].mean(0)
    return p / np.sqrt((p[:468] ** 2).sum(1).mean())


def build_from_landmarks(landmarks: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Frontal landmark sets (K, 478, 3) of one still face -> ``{"mirror", "canonical"}``.

    Each set is frontalised and normalised; the canonical is the per-point median over the sets, frontalised
    again, symmetrised with the mirror map and normalised (centroid 0, RMS radius 1).
    """
    shapes = [normalise(frontalise(np.asarray(lm, np.float64))[0]) for lm in landmarks]
    median = np.median(np.stack(shapes), axis=0)
    frontal, mirror = frontalise(median)
    check_involution(mirror)
    canonical = normalise(symmetrise(frontal, mirror))
    return {"mirror": mirror, "canonical": canonical.astype(np.float32)}


def build(frames: list[np.ndarray], out: Path = CANONICAL_FILE, source: str = "") -> dict[str, np.ndarray]:
    """Build and write ``canonical_face.npz`` from RGB frames of a still, frontal, neutral face."""
    runner = FaceMeshRunner()
    data = build_from_landmarks([runner(f)[0] for f in frames])
    data["source"] = np.array(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.npz")
    np.savez_compressed(tmp, **data)
    tmp.replace(out)
    return data


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--media", default=DEFAULT_MEDIA, help="sample media name (samples/media.yaml)")
    ap.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames of a clip to take the median of")
    ap.add_argument("--image", type=Path, default=None, help="a frontal portrait file instead of --media")
    ap.add_argument("--out", type=Path, default=CANONICAL_FILE)
    args = ap.parse_args(argv)
    if args.image is not None:
        path, source = args.image, args.image.name
    else:
        path = fetch_media.fetch(args.media, fetch_media.load_manifest())
        source = f"samples/media.yaml:{args.media}"
    if path.suffix.lower() in {".mp4", ".mov", ".mkv", ".avi"}:
        frames = read_video_frames(path, args.frames)
        source += f" frames 0..{len(frames) - 1}"
    else:
        frames = [read_rgb(path)]
    data = build(frames, args.out, source)
    n_mid = int((data["mirror"] == np.arange(len(data["mirror"]))).sum())
    print(f"wrote {args.out}: {len(data['mirror'])} points, {n_mid} on the midline, from {source}")


if __name__ == "__main__":
    main()
