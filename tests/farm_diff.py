"""What differs between a chunked farm render and a single pass, for the farm tests' failure messages (a helper, not
a test): the frames that differ (pixels, largest difference) and every array of the two job folders' analysis and
source records that differs, so a failure names the stage that was not deterministic."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from vidswap.io import probe, read_frames


def _frames(path: Path) -> list[np.ndarray]:
    with read_frames(probe(path)) as frames:
        return [f.image.copy() for f in frames]


def frame_hashes(path: Path) -> list[str]:
    """sha256 of each decoded frame of the video at ``path``: what the farm tests compare."""
    with read_frames(probe(path)) as frames:
        return [hashlib.sha256(f.image.tobytes()).hexdigest() for f in frames]


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """A job record's arrays: an .npz's members or a .safetensors file's tensors (floating ones as float64)."""
    if path.suffix == ".npz":
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    import torch
    from safetensors.torch import load_file

    return {k: (t.double() if t.is_floating_point() else t).numpy() for k, t in load_file(str(path)).items()}


def _where(d: np.ndarray) -> str:
    """How many pixels of an (H, W) difference differ, by how much at most, and where: their bounding box and the
    first few (x, y) positions, so a failure tells a face region's arithmetic from a whole plate's decode."""
    ys, xs = np.nonzero(d)
    first = ", ".join(f"({x}, {y})" for x, y in zip(xs[:6], ys[:6]))
    return (f"{len(xs)} px differ, at most {int(d.max())}, in x {xs.min()}-{xs.max()} y {ys.min()}-{ys.max()} "
            f"(first: {first})")


def machine() -> str:
    """The machine the comparison ran on (CPU model, usable cores, load), for a failure message: a mismatch seen on
    one kind of machine only is told apart from one that comes and goes."""
    model = "unknown CPU"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"machine: {model}, {len(os.sched_getaffinity(0))} usable cores, load {os.getloadavg()[0]:.1f}"


def render_differences(a: Path, b: Path, job_a: Path, job_b: Path) -> str:
    """One line per differing frame of videos ``a``/``b`` and per differing array of the job folders' ``tracks.npz``
    and ``sources/*`` records (``job_a``/``job_b``); "" when everything is equal."""
    lines = []
    fa, fb = _frames(a), _frames(b)
    if len(fa) != len(fb):
        lines.append(f"frame counts {len(fa)} vs {len(fb)}")
    for k, (x, y) in enumerate(zip(fa, fb)):
        if x.shape != y.shape or not np.array_equal(x, y):
            d = np.abs(x.astype(np.int64) - y.astype(np.int64)) if x.shape == y.shape else None
            lines.append(f"frame {k}: " + ("shapes differ" if d is None else _where(d.max(axis=-1))))
    records = sorted({p.relative_to(job_a) for p in [job_a / "tracks.npz", *(job_a / "sources").glob("*")]}
                     | {p.relative_to(job_b) for p in [job_b / "tracks.npz", *(job_b / "sources").glob("*")]})
    for rel in records:
        pa, pb = job_a / rel, job_b / rel
        if not (pa.is_file() and pb.is_file()):
            lines.append(f"{rel}: only in {job_a.name if pa.is_file() else job_b.name}")
            continue
        xa, xb = _arrays(pa), _arrays(pb)
        for key in sorted(set(xa) | set(xb)):
            u, v = xa.get(key), xb.get(key)
            if u is None or v is None or u.shape != v.shape:
                lines.append(f"{rel}:{key}: present or shaped differently")
            elif not np.array_equal(u, v, equal_nan=u.dtype.kind == "f"):
                lines.append(f"{rel}:{key}: {int((u != v).sum())} values differ, at most "
                             f"{float(np.nanmax(np.abs(u.astype(np.float64) - v.astype(np.float64)))):.3g}")
    return "\n".join(lines + ([machine()] if lines else []))
