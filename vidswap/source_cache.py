"""The source portraits' analysis -- the largest face's landmarks and identity embedding -- kept in the job folder,
so farm render tasks and re-runs of a shot neither load the analysis models nor analyse the sources again.

A record is keyed by the source file's bytes and the analysis models' pinned hashes, and stamped with the code that
made it (:func:`~vidswap.code_stamp.package_digest`); it holds exactly the arrays the analysis produced (the
:class:`~vidswap.swap.base.SourceFace` built from it is the same as from a fresh analysis). A missing, unreadable,
other-keyed or other-code record is analysed again and rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vidswap.composite.convert import to_float
from vidswap.errors import NoFaceError
from vidswap.faces.pose import decompose
from vidswap.code_stamp import package_digest, record_stamp
from vidswap.io.atomic import atomic_file
from vidswap.swap import SourceFace

if TYPE_CHECKING:
    from vidswap.faces.analyze import AnalysisModels


def source_face(image: np.ndarray, points: np.ndarray, embedding: np.ndarray) -> SourceFace:
    """A :class:`SourceFace` from the source photo (HxWx3) and its face's (478, 3) landmarks and (D,) embedding."""
    pts = torch.from_numpy(np.asarray(points))
    pose = decompose(pts[None])
    return SourceFace(image=to_float(image), landmarks=pts, x_c_obs=pose.x_c_obs[0], yaw=float(pose.yaw[0]),
                      pitch=float(pose.pitch[0]), roll=float(pose.roll[0]),
                      embedding=torch.from_numpy(np.asarray(embedding)))


def analyse_source(path: str, image: np.ndarray, models: AnalysisModels) -> tuple[np.ndarray, np.ndarray, int]:
    """The largest face of a source photo: ((478, 3) landmarks, (D,) embedding, faces found); NoFaceError (exit 3)
    when there is none."""
    from vidswap.faces.analyze import analyze_image  # the analyzer only where a photo is analysed

    found = analyze_image(image, models)
    if not found:
        raise NoFaceError(f"no usable face in source {path}: use a clear, front-facing portrait")
    return found[0].landmarks.points, found[0].embedding, len(found)


def source_key(path: str | Path, model_hashes: dict[str, str]) -> str:
    """sha256 of the source file's bytes and the analysis models' hashes."""
    digest = hashlib.sha256(Path(path).read_bytes())
    digest.update(json.dumps(model_hashes, sort_keys=True).encode())
    return digest.hexdigest()


def record_path(folder: Path, key: str) -> Path:
    return folder / f"{key[:32]}.npz"


def read_record(path: Path, key: str) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The saved (landmarks, embedding, faces found) if ``path`` holds the record of ``key``; else None."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            return data["points"], data["embedding"], int(data["count"])
    except (OSError, KeyError, ValueError):
        return None


def write_record(path: Path, key: str, points: np.ndarray, embedding: np.ndarray, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as temp:
        with open(temp, "wb") as f:
            np.savez(f, key=np.array(key), points=np.asarray(points), embedding=np.asarray(embedding),
                     count=np.array(count))


def cached_source_faces(paths: tuple[str, ...], images: list[np.ndarray], folder: Path,
                        model_hashes: dict[str, str], models: Callable[[], AnalysisModels],
                        warnings: list[str]) -> list[SourceFace]:
    """The sources' faces from ``folder``'s records, analysing (with ``models()``, called only then) and
    recording the ones not found there, or recorded by other code (:func:`~vidswap.code_stamp.package_digest`:
    the record is replaced)."""
    faces = []
    code = package_digest()
    for path, image in zip(paths, images):
        key = source_key(path, model_hashes)
        where = record_path(folder, key)
        stamp = record_stamp(key, code)
        record = read_record(where, stamp)
        if record is None:
            record = analyse_source(path, image, models())
            write_record(where, stamp, *record)
        points, embedding, count = record
        if count > 1:
            warnings.append(f"source {path} has {count} faces; using the largest")
        faces.append(source_face(image, points, embedding))
    return faces
