"""The source portraits' analysis -- the largest face's landmarks and identity embedding, and the hands in the photo
-- kept in the job folder, so farm render tasks and re-runs of a shot neither load the analysis models nor analyse
the sources again.

A record is keyed by the source file's bytes and the analysis models' pinned hashes, and stamped with the code that
made it (:func:`~vidswap.code_stamp.package_digest`); it holds exactly the arrays the analysis produced (the
:class:`~vidswap.swap.base.SourceFace` built from it is the same as from a fresh analysis). A missing, unreadable,
other-keyed or other-code record is analysed again and rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from vidswap.composite.convert import to_float
from vidswap.faces.align import as_rgb8, face_height
from vidswap.errors import NoFaceError
from vidswap.faces.pose import decompose
from vidswap.code_stamp import package_digest, record_stamp
from vidswap.io.atomic import atomic_file
from vidswap.swap import SourceFace

if TYPE_CHECKING:
    from vidswap.faces.analyze import AnalysisModels


#: A source photo without a face found that is smaller than this (px, long side) is named as too small: the
#: astronaut portrait at 128x128 has its face's box 22 px wide, under the detector's 24 px ``min_face``.
SMALL_SOURCE = 256
#: A source face shorter than this (px, :func:`~vidswap.faces.align.face_height`) is warned about: faces of a team
#: photo (82-84 px) gave blotchy skin, a quarter-size grace_hopper (57 px) a soft face; the test portraits measure
#: 114 (astronaut) to 356 px.
SMALL_FACE = 100
#: A hand over more than this share of a source face's landmarks is warned about (the plate shows there).
COVERED_FACE = 0.02


@dataclass
class SourceRecord:
    """What the analysis of one source photo keeps.

    Attributes:
        points: (478, 3) landmarks of its largest face (image pixels).
        embedding: (D,) that face's identity embedding.
        count: faces found in the photo.
        hands: (K, 21, 3) landmarks of the hands in the photo ((0, 21, 3): none).
    """

    points: np.ndarray
    embedding: np.ndarray
    count: int
    hands: np.ndarray

    ARRAYS = ("points", "embedding", "count", "hands")


def source_face(image: np.ndarray, record: SourceRecord) -> SourceFace:
    """A :class:`SourceFace` from the source photo (HxWx3) and its analysis; what its hands cover becomes the
    face's ``occlusion`` (:func:`~vidswap.hands.still.photo_hand_matte`)."""
    pts = torch.from_numpy(np.asarray(record.points))
    pose = decompose(pts[None])
    occlusion = None
    if len(record.hands):
        from vidswap.hands.still import photo_hand_matte  # only for a photo with a hand in it

        occlusion = torch.from_numpy(photo_hand_matte(as_rgb8(image), record.hands))
    return SourceFace(image=to_float(image), landmarks=pts, x_c_obs=pose.x_c_obs[0], yaw=float(pose.yaw[0]),
                      pitch=float(pose.pitch[0]), roll=float(pose.roll[0]),
                      embedding=torch.from_numpy(np.asarray(record.embedding)), occlusion=occlusion)


def photo_warnings(path: str, record: SourceRecord, face: SourceFace) -> list[str]:
    """One line for each thing about a source photo its user should know: several faces (the largest is used), a
    small face (:data:`SMALL_FACE`), a hand over the face (:data:`COVERED_FACE`)."""
    out = []
    if record.count > 1:
        out.append(f"source {path} has {record.count} faces; using the largest")
    height = float(face_height(face.landmarks[None].float())[0])
    if height < SMALL_FACE:
        out.append(f"the face in source {path} is {height:.0f} px tall; under {SMALL_FACE} px the swap is soft and "
                   "its skin blotchy: use a larger photo")
    if face.occlusion is not None:
        h, w = face.occlusion.shape
        xy = face.landmarks[:, :2].round().long()
        xy[:, 0].clamp_(0, w - 1)
        xy[:, 1].clamp_(0, h - 1)
        covered = float((face.occlusion[xy[:, 1], xy[:, 0]] > 0.5).float().mean())
        if covered > COVERED_FACE:
            out.append(f"a hand covers {covered:.0%} of the face in source {path}: those parts come from the other "
                       "side of the face or, hidden on both, from the plate")
    return out


def analyse_source(path: str, image: np.ndarray, models: AnalysisModels) -> SourceRecord:
    """The largest face of a source photo and the hands in it; NoFaceError (exit 3) when there is no face."""
    from vidswap.faces.analyze import analyze_image  # the analyzer only where a photo is analysed

    found = analyze_image(image, models)
    if not found:
        h, w = image.shape[:2]
        small = "" if max(h, w) >= SMALL_SOURCE else \
            f" at least {SMALL_SOURCE} px on its long side (this one is {w}x{h})"
        raise NoFaceError(f"no usable face in source {path}: use a clear, front-facing portrait{small}")
    face = found[0]
    from vidswap.hands.still import photo_hands

    hands = photo_hands(as_rgb8(image), [np.asarray(face.detection.box, np.float64)], *models.hands)
    return SourceRecord(face.landmarks.points, face.embedding, len(found), hands)


def source_key(path: str | Path) -> str:
    """sha256 of the source file's bytes and the hashes of the models that analyse it (the face models and the hand
    models, which a source photo is always analysed with, whatever ``analysis.hands`` says of the plate)."""
    from vidswap.faces.analysis_key import analysis_model_hashes

    digest = hashlib.sha256(Path(path).read_bytes())
    digest.update(json.dumps(analysis_model_hashes(hands=True), sort_keys=True).encode())
    return digest.hexdigest()


def record_path(folder: Path, key: str) -> Path:
    return folder / f"{key[:32]}.npz"


def read_record(path: Path, key: str) -> SourceRecord | None:
    """The saved analysis if ``path`` holds the record of ``key``; else None."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            return SourceRecord(data["points"], data["embedding"], int(data["count"]), data["hands"])
    except (OSError, KeyError, ValueError):
        return None


def write_record(path: Path, key: str, record: SourceRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as temp:
        with open(temp, "wb") as f:
            np.savez(f, key=np.array(key), **{name: np.asarray(getattr(record, name)) for name in record.ARRAYS})


def source_faces(paths: tuple[str, ...], images: list[np.ndarray],
                 record_of: Callable[[str, np.ndarray], SourceRecord], warnings: list[str]) -> list[SourceFace]:
    """Each source's face from its record (``record_of(path, image)``), the photo's warnings added to
    ``warnings`` (:func:`photo_warnings`)."""
    faces = []
    for path, image in zip(paths, images):
        record = record_of(path, image)
        faces.append(source_face(image, record))
        warnings.extend(photo_warnings(path, record, faces[-1]))
    return faces


def cached_source_faces(paths: tuple[str, ...], images: list[np.ndarray], folder: Path,
                        models: Callable[[], AnalysisModels], warnings: list[str]) -> list[SourceFace]:
    """The sources' faces from ``folder``'s records, analysing (with ``models()``, called only then) and
    recording the ones not found there, or recorded by other code (:func:`~vidswap.code_stamp.package_digest`:
    the record is replaced)."""
    code = package_digest()

    def record_of(path: str, image: np.ndarray) -> SourceRecord:
        key = source_key(path)
        where = record_path(folder, key)
        stamp = record_stamp(key, code)
        record = read_record(where, stamp)
        if record is None:
            record = analyse_source(path, image, models())
            write_record(where, stamp, record)
        return record

    return source_faces(paths, images, record_of, warnings)
