"""The tracks file: a shot's analysis as compressed npz arrays plus a JSON header (versioned).

numpy only (no torch), so light passes (assemble, farm export) can read it quickly.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidswap.errors import InputError
from vidswap.models.sources import cache_home

TRACKS_VERSION = 4
#: Confidence given to a track's interpolated frames (bridged detection gaps) when rendering: the compositor keeps
#: the face at full strength from 0.7 up, so bridged frames are swapped like detected ones.
INTERPOLATED_CONFIDENCE = 0.7


def shared_analysis_path(key: str) -> Path:
    """Where the analysis with cache key ``key`` is shared between jobs: ``$VIDSWAP_HOME/shot_analyses/<key>.npz``.

    The key covers the input, its frames and every analysis setting (never the output), so a preview, a compare
    and the final render of one shot analyse it once.
    """
    return cache_home() / "shot_analyses" / f"{key}.npz"


@dataclass
class TrackAnalysis:
    """One smoothed, pose-decomposed track.

    Attributes:
        id, shot: track id (first appearance order) and shot index.
        frames: (T,) int64 frame numbers.
        boxes: (T, 4) float32; confidences (T,) float32; interpolated (T,) bool.
        raw: (T, 478, 3) float32 landmarks as measured (interpolated across misses).
        smoothed: (T, 478, 3) float32 landmarks after temporal smoothing.
        s, R, t: (T,), (T, 3, 3), (T, 3) float32 pose of the smoothed landmarks (canonical -> frame).
        neutral: (478, 3) float32 the track's neutral shape in the canonical frame.
        embedding: (D,) float32 mean identity, or empty.
        colour: (T, 6) float32 the plate's skin LAB mean and std per frame, smoothed over the track (zero-phase),
            or empty when not measured.
        appearance: the track's appearance model in texture space, name -> array
            (:class:`vidswap.appearance.track.TrackAppearance`), or empty when too little of the face was seen.
    """

    id: int
    shot: int
    frames: np.ndarray
    boxes: np.ndarray
    confidences: np.ndarray
    interpolated: np.ndarray
    raw: np.ndarray
    smoothed: np.ndarray
    s: np.ndarray
    R: np.ndarray
    t: np.ndarray
    neutral: np.ndarray
    embedding: np.ndarray
    colour: np.ndarray
    appearance: dict[str, np.ndarray] = field(default_factory=dict)

    ARRAYS = ("frames", "boxes", "confidences", "interpolated", "raw", "smoothed", "s", "R", "t", "neutral",
              "embedding", "colour")

    def index_of(self, number: int) -> int | None:
        i = int(np.searchsorted(self.frames, number))
        return i if i < len(self.frames) and self.frames[i] == number else None

    def render_confidence(self, rows: np.ndarray) -> np.ndarray:
        """(B,) float32 confidence of the track's ``rows`` for rendering: the measured confidence (at least 0), or
        :data:`INTERPOLATED_CONFIDENCE` for interpolated rows."""
        measured = np.maximum(self.confidences[rows], 0.0).astype(np.float32)
        return np.where(self.interpolated[rows], np.float32(INTERPOLATED_CONFIDENCE), measured).astype(np.float32)

    @property
    def mean_area(self) -> float:
        wh = np.clip(self.boxes[:, 2:] - self.boxes[:, :2], 0, None)
        return float((wh[:, 0] * wh[:, 1]).mean())


@dataclass
class ShotAnalysis:
    """The analysis of one shot: header (inputs, parameters, cuts, frames) and its tracks."""

    header: dict
    tracks: list[TrackAnalysis]

    def track(self, track_id: int) -> TrackAnalysis:
        for t in self.tracks:
            if t.id == track_id:
                return t
        raise KeyError(track_id)

    def save(self, path: Path) -> None:
        """Write atomically: ``path`` is either complete or absent."""
        arrays = {f"t{t.id}_{name}": getattr(t, name) for t in self.tracks for name in TrackAnalysis.ARRAYS}
        arrays.update({f"t{t.id}_appearance_{name}": a for t in self.tracks for name, a in t.appearance.items()})
        meta = dict(self.header, version=TRACKS_VERSION,
                    tracks=[{"id": t.id, "shot": t.shot, "appearance": sorted(t.appearance)} for t in self.tracks])
        arrays["header"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> "ShotAnalysis":
        with np.load(path) as z:
            header = json.loads(bytes(z["header"]).decode())
            if header.get("version") != TRACKS_VERSION:
                raise InputError(f"tracks file {path} has version {header.get('version')}, expected "
                                 f"{TRACKS_VERSION}; delete it to re-analyse")
            tracks = [TrackAnalysis(id=m["id"], shot=m["shot"],
                                    **{n: z[f"t{m['id']}_{n}"] for n in TrackAnalysis.ARRAYS},
                                    appearance={n: z[f"t{m['id']}_appearance_{n}"] for n in m.get("appearance", [])})
                      for m in header.pop("tracks")]
        return cls(header=header, tracks=tracks)


def input_fingerprint(path: Path, chunk: int = 4 << 20) -> str:
    """Cheap content fingerprint of a media file or sequence: size, mtime and sha256 of its head and tail."""
    path = Path(path)
    h = hashlib.sha256()
    files = [path] if path.exists() else []
    if not files:
        import fileseq

        files = [Path(f) for f in fileseq.FileSequence(str(path))]
    for f in files[:1] + files[-1:]:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(chunk))
            if st.st_size > chunk:
                fh.seek(max(chunk, st.st_size - chunk))
                h.update(fh.read(chunk))
    h.update(str(len(files)).encode())
    return h.hexdigest()


