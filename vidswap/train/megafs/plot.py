"""``<run>/losses.png`` of a MegaFS run: the encoder stage's and the FTM stage's loss terms per logged step
(faint) with a trailing moving average, from ``metrics.jsonl`` (FaceDancer's reader: a resumed run's later
record for a step replaces the earlier one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidswap.train.facedancer.plot import moving_average, read_metrics

__all__ = ["plot_megafs_run"]


def plot_megafs_run(run: str | Path, smooth: int = 10) -> Path | None:
    """Write ``<run>/losses.png``; None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    steps, _ = read_metrics(run / "metrics.jsonl")
    stages = [(s, [r for r in steps if r.get("stage") == s]) for s in ("encoder", "ftm")]
    stages = [(s, recs) for s, recs in stages if recs]
    if not stages:
        return None
    fig, axes = plt.subplots(1, len(stages), figsize=(8 * len(stages), 4.5), squeeze=False)
    for ax, (stage, recs) in zip(axes[0], stages):
        x = np.array([r["step"] for r in recs])
        for name in [k for k in recs[0] if k not in ("step", "stage", "step_s")]:
            y = np.array([r[name] for r in recs])
            y = y / max(float(np.abs(y[: max(1, smooth)]).mean()), 1e-12)  # relative to the first logged values
            line, = ax.plot(x, y, alpha=0.25)
            ax.plot(x, moving_average(y, smooth), color=line.get_color(), label=name)
        ax.set_title(f"{stage} stage: losses relative to their start")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = run / "losses.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
