"""The tracks file: a shot's analysis as compressed npz arrays plus a JSON header (versioned).

numpy only (no torch), so light passes (assemble, farm export) can read it quickly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidswap.errors import TRANSIENT_ERRNOS, InputError, MediaError
from vidswap.hands.types import HandTracks
from vidswap.io.atomic import owned_prefix, remove_dead_temporaries
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
    """The analysis of one shot: header (inputs, parameters, cuts, frames), its face tracks and the hands found in
    it (per frame, smoothed per hand; empty when hands were not analysed)."""

    header: dict
    tracks: list[TrackAnalysis]
    hands: HandTracks = field(default_factory=HandTracks.empty)

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
        arrays.update(self.hands.to_arrays())
        arrays["header"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the job folder {path.parent} ({exc.strerror}); pick an output in a "
                             "writable folder") from None
        fd, name = _exclusive_temp(path)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, **arrays)
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno in TRANSIENT_ERRNOS:
                raise MediaError(f"writing the analysis {path} failed ({exc.strerror}); free space and "
                                 "retry") from None
            raise InputError(f"cannot write the analysis {path} ({exc.strerror}); check the job folder") from None
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: Path) -> "ShotAnalysis":
        """Read a tracks file; :class:`CorruptAnalysis` (exit 2) when it is truncated, not a tracks file or
        of another version."""
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                if not isinstance(header, dict):
                    raise ValueError("the header is not a mapping")
                if header.get("version") != TRACKS_VERSION:
                    raise CorruptAnalysis(f"tracks file {path} has version {header.get('version')!r:.20}, "
                                          f"expected {TRACKS_VERSION}; run `vidswap analyze` again")
                tracks = [TrackAnalysis(id=m["id"], shot=m["shot"],
                                        **{n: z[f"t{m['id']}_{n}"] for n in TrackAnalysis.ARRAYS},
                                        appearance={n: z[f"t{m['id']}_appearance_{n}"]
                                                    for n in m.get("appearance", [])})
                          for m in header.pop("tracks")]
                hands = HandTracks.from_arrays(z)
        except CorruptAnalysis:
            raise
        except FileNotFoundError:
            raise
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error,
                UnicodeDecodeError) as exc:
            raise CorruptAnalysis(f"the analysis {path} is corrupt ({type(exc).__name__}); run `vidswap analyze` "
                                  "again") from None
        return cls(header=header, tracks=tracks, hands=hands)


class CorruptAnalysis(InputError):
    """A tracks file that cannot be read back (truncated, foreign, another version): exit 2."""


def _exclusive_temp(path: Path) -> tuple[int, str]:
    """A new, unpredictably named temporary beside ``path``, created exclusively (never follows a link); those
    of killed processes are removed first."""
    remove_dead_temporaries(path.parent)
    return tempfile.mkstemp(prefix=owned_prefix(), suffix=f"-{path.name}.part", dir=path.parent)


def input_fingerprint(path: Path, chunk: int = 4 << 20) -> str:
    """Cheap content fingerprint of a media file or sequence: size, mtime and sha256 of its head and tail.

    A settled file's fingerprint is computed once per process while its stat (size, mtime, ctime, inode) is
    unchanged: a farm task checks the recorded probe and then the analysis against the same plate
    (:mod:`vidswap.probe_record`), and any write to the file moves its ctime. A file changed in the last
    :data:`SETTLE_NS` is read every time (as git treats "racy" entries: the filesystem's clock is coarse, so two
    writes close together can leave the same ctime)."""
    path = Path(path)
    if path.is_file():
        st = path.stat()
        if time.time_ns() - st.st_ctime_ns > SETTLE_NS:
            return _file_fingerprint(path, chunk, (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev))
    files = [path] if path.exists() else []
    if not files:
        import fileseq

        files = [Path(f) for f in fileseq.FileSequence(str(path))]
    return _hash_files(files, chunk)


#: a file whose status changed less than this long ago (ns) is not fingerprinted from the per-process cache
SETTLE_NS = 2_000_000_000


@functools.lru_cache(maxsize=8)
def _file_fingerprint(path: Path, chunk: int, stat_key: tuple) -> str:
    """:func:`input_fingerprint` of one file; ``stat_key`` keys the cache (a changed file is read again)."""
    return _hash_files([path], chunk)


def _hash_files(files: list[Path], chunk: int) -> str:
    """sha256 of the first and last of ``files``: name, size and mtime, the first and the last ``chunk`` bytes; and
    how many files there are."""
    h = hashlib.sha256()
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


def input_size(path: Path) -> int | None:
    """Bytes of a media file (None for a sequence pattern or a missing file): named in stale-analysis messages."""
    try:
        return Path(path).stat().st_size if Path(path).is_file() else None
    except OSError:
        return None


def stale_reasons(saved: dict | None, now: dict, input_name: str) -> list[str]:
    """What changed between the inputs an analysis was made from (``saved``, the tracks file's ``inputs``
    header) and the job's inputs ``now`` (same keys: input, size, frames, settings, models), in words."""
    if not isinstance(saved, dict):
        return ["it was written by an older vidswap"]
    reasons = []
    if saved.get("input") != now["input"]:
        sizes = (saved.get("size"), now["size"])
        detail = (f"{sizes[0]} -> {sizes[1]} bytes" if None not in sizes and sizes[0] != sizes[1]
                  else "same size, other content or modification time")
        reasons.append(f"the input {input_name} changed since it was analysed ({detail})")
    if saved.get("frames") != now["frames"]:
        reasons.append(f"the shot's frames changed ({_span(saved.get('frames'))} -> {_span(now['frames'])})")
    if saved.get("settings") != now["settings"]:
        reasons.append("the analysis or smoothing settings changed")
    if saved.get("models") != now["models"]:
        reasons.append("the analysis models or the plate's colour pipeline changed")
    return reasons or ["it was made for other inputs"]


def _span(frames) -> str:
    try:
        first, last, count = (int(x) for x in frames)
        return f"{first}-{last} ({count} frames)"
    except (TypeError, ValueError):
        return "unknown"

