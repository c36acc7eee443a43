"""Build the 3D template of the rigid 106-landmark points used by the evaluation's head-pose estimator.

    python tools/build_template.py        # prints RIGID_TEMPLATE for vidswap/eval/judges.py (a developer tool)

Each rigid 2d106 point (``judges.RIGID_106``) is triangulated in the canonical face frame of
``vidswap.faces.pose`` over the head motion of the sample clips: in every frame the pipeline's mesh gives the
head pose ``(s, R, t)``, and the 2d106 point ``q`` satisfies ``q = s · (R X)[:2] + t[:2]`` (scaled orthographic
projection), linear in the unknown ``X`` -- one least-squares solve per point over all frames, refitted once
without the frames whose residual is above 3x the median. The result is made mirror-symmetric
(``judges.RIGID_MIRROR_PAIRS``; midline points get x = 0).

The template is static data: only its *shape* comes from the mesh. Per-frame evaluation uses the 2d106 points
alone, so pose is measured independently of the pipeline's landmarks.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "samples"))

import fetch_media  # noqa: E402

from vidswap.eval.judges import RIGID_106, RIGID_MIRROR_PAIRS, Landmarks106  # noqa: E402
from vidswap.faces.detect import YuNetDetector, largest_face  # noqa: E402
from vidswap.faces.landmarks import FaceMesh  # noqa: E402
from vidswap.faces.pose import decompose  # noqa: E402
from vidswap.io import probe, read_frames  # noqa: E402
from vidswap.models.registry import model_path  # noqa: E402


def collect(names: tuple[str, ...] = ("pexels_clip", "single_face_clip"), step: int = 2):
    """(poses s (F,), R (F, 3, 3), t (F, 3)) from the pipeline's mesh and (F, 106, 2) 2d106 points."""
    det = YuNetDetector.from_path(model_path("yunet"))
    mesh = FaceMesh.from_paths(model_path("face_mesh"), model_path("iris"))
    lm106 = Landmarks106.load()
    S, R, T, Q = [], [], [], []
    for name in names:
        info = probe(fetch_media.fetch(name))
        with read_frames(info, info.frame_numbers[::step]) as frames:
            for f in frames:
                d = largest_face(det([f.image])[0])
                if d is None:
                    continue
                lm = mesh([f.image], [[d]])[0][0]
                if lm.confidence < 0.9:
                    continue
                pose = decompose(lm.points[None].astype(np.float64))
                S.append(float(pose.s[0]))
                R.append(pose.R[0].numpy())
                T.append(pose.t[0].numpy())
                Q.append(lm106([f.image], d.box[None])[0])
    return np.array(S), np.array(R), np.array(T), np.array(Q)


def triangulate(s: np.ndarray, R: np.ndarray, t: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares X (3,) with ``q_f ≈ s_f (R_f X)[:2] + t_f[:2]`` over frames f; returns X and per-frame
    residuals (F,) in pixels."""
    A = s[:, None, None] * R[:, :2, :]  # (F, 2, 3)
    b = q - t[:, :2]
    keep = np.ones(len(s), bool)
    for _ in range(2):
        X = np.linalg.lstsq(A[keep].reshape(-1, 3), b[keep].reshape(-1), rcond=None)[0]
        res = np.linalg.norm(np.einsum("fij,j->fi", A, X) - b, axis=1)
        keep = res <= 3 * np.median(res)
    return X, res


def build() -> np.ndarray:
    s, R, t, Q = collect()
    X = np.zeros((len(RIGID_106), 3))
    for j, idx in enumerate(RIGID_106):
        X[j], res = triangulate(s, R, t, Q[:, idx])
        print(f"# point {idx}: median residual {np.median(res):.2f} px over {len(s)} frames", file=sys.stderr)
    pos = {idx: j for j, idx in enumerate(RIGID_106)}
    paired = set()
    for a, b in RIGID_MIRROR_PAIRS:
        ja, jb = pos[a], pos[b]
        mean = (X[ja] * [-1, 1, 1] + X[jb]) / 2
        X[jb], X[ja] = mean, mean * [-1, 1, 1]
        paired |= {a, b}
    for idx in RIGID_106:
        if idx not in paired:
            X[pos[idx], 0] = 0.0
    return X


def main() -> int:
    X = build()
    print("RIGID_TEMPLATE = np.array([")
    for row in X:
        print(f"    [{row[0]: .5f}, {row[1]: .5f}, {row[2]: .5f}],")
    print("], dtype=np.float32)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
