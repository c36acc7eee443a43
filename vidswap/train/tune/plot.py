"""The loss curves of a tuning run, drawn next to the tuned weights."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vidswap.train.tune.loop import TuneInfo


def plot_history(info: TuneInfo, path: str | Path, title: str = "generator tuning") -> Path:
    """PNG of the training loss terms (per step) and the validation total (at each validation)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib loads only when a plot is drawn
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(11, 4), dpi=100)
    axes = fig.subplots(1, 2)

    def series(hist, k):
        x = np.asarray(hist.get("step", []), dtype=float)
        y = np.asarray(hist.get(k, []), dtype=float)
        keep = np.isfinite(y)
        return x[keep], np.maximum(y[keep], 1e-5)  # log axis: a zero hinge is drawn at the floor

    steps = info.history.get("step", [])
    for k in ("total", "l1", "ssim", "identity", "temporal", "mask_temporal", "mask"):
        if k in info.history and steps:
            axes[0].plot(*series(info.history, k), label=k, lw=1.2)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("step")
    axes[0].set_title("training losses (per step)")
    axes[0].legend(fontsize=7)
    vs = info.val_history.get("step", [])
    for k in ("total", "l1", "ssim", "identity", "temporal"):
        if k in info.val_history and vs:
            axes[1].plot(*series(info.val_history, k), marker="o", ms=3, label=f"val {k}")
    if vs:
        axes[1].axvline(info.best_step, color="k", ls="--", lw=0.8, label=f"kept: step {info.best_step}")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("step")
    axes[1].set_title("validation (held-out pairs)")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{title}: {info.steps_run} steps, {info.seconds_per_step:.2f} s/step on {info.device}"
                 + (", stopped early" if info.stopped_early else ""), fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part.png")
    FigureCanvasAgg(fig).print_png(str(tmp))
    os.replace(tmp, path)
    return path
