"""The input's probe, recorded in the job folder by the analyze pass and reused by the farm tasks that follow it.

:func:`~vidswap.io.media.probe` reads every packet of a video to count its frames exactly and to see a variable
frame rate: for a long ProRes or 4K plate that is the whole file, gigabytes, and every render-chunk task of the
shot read it again before its first frame. The analyze pass records what it found (:func:`record_probe`) with the
input's fingerprint (size, mtime, the first and last 4 MiB: :func:`~vidswap.faces.tracksfile.input_fingerprint`,
which the tasks check against the analysis anyway); a later task takes the record while the input still has that
fingerprint and the same path, and probes the input itself otherwise (:func:`probe_for_job`).

Only video files are recorded: an image sequence or a still is probed from one file's header.
"""

from __future__ import annotations

import json
from pathlib import Path

from vidswap.faces.tracksfile import input_fingerprint
from vidswap.io import MediaInfo, probe
from vidswap.io.atomic import atomic_file

__all__ = ["PROBE_RECORD", "probe_for_job", "record_probe", "recorded_probe"]

PROBE_RECORD = "input_probe.json"
_VERSION = 1


def record_probe(job_dir: Path, info: MediaInfo) -> Path | None:
    """Write ``info`` (a video's probe) with its input's fingerprint into ``job_dir``, atomically; returns the
    record's path, or None for inputs that are not recorded (sequences, stills)."""
    if info.kind != "video":
        return None
    record = {"version": _VERSION, "input": str(info.path), "fingerprint": input_fingerprint(info.path),
              "info": info.to_dict()}
    path = Path(job_dir) / PROBE_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as temp:
        temp.write_text(json.dumps(record, indent=1) + "\n")
    return path


def recorded_probe(job_dir: Path, input_path: str | Path) -> MediaInfo | None:
    """The probe recorded in ``job_dir`` for ``input_path``, or None: no record, a record of another path or
    version, an unreadable one, or an input whose fingerprint has changed since (re-exported, truncated, replaced)."""
    path = Path(job_dir) / PROBE_RECORD
    try:
        record = json.loads(path.read_text())
        if record.get("version") != _VERSION or record.get("input") != str(Path(input_path)):
            return None
        info = MediaInfo.from_dict(record["info"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    try:
        if not Path(input_path).is_file() or input_fingerprint(Path(input_path)) != record.get("fingerprint"):
            return None
    except OSError:
        return None
    return info


def probe_for_job(input_path: str | Path, job_dir: Path) -> MediaInfo:
    """The input's probe: the record in ``job_dir`` while it holds (:func:`recorded_probe`), else :func:`probe`."""
    return recorded_probe(job_dir, input_path) or probe(input_path)
