"""The measures that judge a landmark smoother (:mod:`vidswap.faces.smooth`), and its picture.

:func:`jitter` (RMS second difference: high-pass, frame-to-frame shake), :func:`lag` (delay of the output behind
the input, from the cross-correlation of their frame-to-frame velocities), :func:`step_delay` (how late a step
comes through) and :func:`plot_trajectories` (raw vs smoothed tracks of a few points).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from vidswap.errors import UsageError

__all__ = ["jitter", "lag", "step_delay", "plot_trajectories"]


def jitter(track: np.ndarray) -> float:
    """RMS second difference of a track: ``sqrt(mean((x[t+1] - 2 x[t] + x[t-1])**2))`` over all frames and
    coordinates (input units per frame^2).

    A high-pass measure: its gain is ``(2 sin(pi f / fps))**2``, 16 at Nyquist and ~0 for slow motion, so it
    measures frame-to-frame shake and barely sees smooth head motion. Noise of std sigma gives
    ``sqrt(6) sigma``. NaN frames are ignored.
    """
    x = np.asarray(track, dtype=np.float64)
    if x.shape[0] < 3:
        raise UsageError("jitter: need at least 3 frames")
    d2 = x[2:] - 2 * x[1:-1] + x[:-2]
    d2 = d2[np.isfinite(d2)]
    return float(np.sqrt(np.mean(d2 ** 2)))


def lag(inp: np.ndarray, out: np.ndarray, max_lag: int = 15) -> float:
    """Delay of ``out`` behind ``inp`` in frames (positive: the output is late).

    Both (T,) (or (T, ...) flattened per frame to several signals whose correlations are summed). The delay is
    the peak of the cross-correlation of the frame-to-frame velocities ``diff(inp)`` and ``diff(out)`` over
    shifts in [-max_lag, max_lag], refined to sub-frame precision by a parabola through the peak. For a step
    input this is the delay of the output's steepest rise; for general motion the delay that best aligns the
    two motions.
    """
    a = np.asarray(inp, dtype=np.float64).reshape(len(inp), -1)
    b = np.asarray(out, dtype=np.float64).reshape(len(out), -1)
    if a.shape != b.shape:
        raise UsageError(f"lag: input {a.shape} and output {b.shape} differ")
    va = np.nan_to_num(np.diff(a, axis=0))
    vb = np.nan_to_num(np.diff(b, axis=0))
    va = va - va.mean(0)
    vb = vb - vb.mean(0)
    n = len(va)
    shifts = np.arange(-max_lag, max_lag + 1)
    cc = np.array([(va[max(0, -s):n - max(0, s)] * vb[max(0, s):n - max(0, -s)]).sum() for s in shifts])
    i = int(np.argmax(cc))
    shift = float(shifts[i])
    if 0 < i < len(cc) - 1:
        den = cc[i - 1] - 2 * cc[i] + cc[i + 1]
        if den < 0:
            shift += 0.5 * (cc[i - 1] - cc[i + 1]) / den
    return shift


def step_delay(inp: np.ndarray, out: np.ndarray, level: float = 0.5) -> float:
    """For a step input (T,): frames by which the output's first crossing of ``level`` (fraction of the step)
    comes after the input's own crossing (sub-frame, linear interpolation between frames; negative = early).
    ``level=0.9`` gives how long the output takes to nearly settle after the step."""
    a = np.asarray(inp, dtype=np.float64)
    b = np.asarray(out, dtype=np.float64)
    k0 = int(np.argmax(np.abs(np.diff(a)))) + 1
    lo, hi = np.median(a[:k0]), np.median(a[k0:])

    def crossing(sig: np.ndarray) -> float:
        frac = (sig - lo) / (hi - lo)
        above = np.flatnonzero(frac >= level)
        if above.size == 0:
            return float("inf")
        j = int(above[0])
        if j == 0:
            return 0.0
        return float(j - 1 + (level - frac[j - 1]) / (frac[j] - frac[j - 1]))

    return crossing(b) - crossing(a)


# ---------------------------------------------------------------------------------------------------------------
# pictures
# ---------------------------------------------------------------------------------------------------------------

def plot_trajectories(raw: np.ndarray, smoothed: np.ndarray | dict[str, np.ndarray], indices: Sequence[int],
                      path_png: Path | str, fps: float | None = None, title: str = "") -> Path:
    """Draw raw vs smoothed trajectories of a few points, one row per point, one column per coordinate.

    Args:
        raw: (T, N, D) track.
        smoothed: (T, N, D) track, or ``{label: (T, N, D)}`` to compare several smoothers.
        indices: the point indices to draw.
        path_png: output file (written via a temp name, then renamed).
        fps: time axis in seconds when given, else frames.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    raw = np.asarray(raw)
    if raw.ndim == 2:
        raw = raw[:, :, None]
    series = smoothed if isinstance(smoothed, dict) else {"smoothed": smoothed}
    series = {k: (np.asarray(v)[:, :, None] if np.asarray(v).ndim == 2 else np.asarray(v))
              for k, v in series.items()}
    t = np.arange(raw.shape[0]) / (fps or 1.0)
    dims = raw.shape[2]
    names = "xyz" if dims <= 3 else [str(d) for d in range(dims)]
    fig, axes = plt.subplots(len(indices), dims, figsize=(4.5 * dims, 2.2 * len(indices)), squeeze=False)
    for r, i in enumerate(indices):
        for d in range(dims):
            ax = axes[r, d]
            ax.plot(t, raw[:, i, d], ".", ms=2.5, color="0.55", label="raw")
            for label, s in series.items():
                ax.plot(t, s[:, i, d], "-", lw=1.2, label=label)
            ax.set_title(f"point {i} {names[d]}", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("s" if fps else "frame", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path_png)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
    return path
