"""``<run>/losses.png`` of an IDATT run: one panel per stage that logged (encoder, idatt, blend), each loss term
relative to its first logged values (faint) with a trailing moving average, from ``metrics.jsonl``
(FaceDancer's reader)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidswap.train.facedancer.plot import moving_average, read_metrics
from vidswap.train.idatt.step import STAGES

__all__ = ["plot_idatt_run"]


def plot_idatt_run(run: str | Path, smooth: int = 10) -> Path | None:
    """Write ``<run>/losses.png``; None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    records, _ = read_metrics(run / "metrics.jsonl")
    panels = [(s, [r for r in records if r.get("stage") == s]) for s in STAGES]
    panels = [(s, recs) for s, recs in panels if recs]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
    for ax, (stage, recs) in zip(axes[0], panels):
        x = np.array([r["step"] for r in recs])
        for name in (k for k in recs[0] if k not in ("step", "stage", "step_s")):
            y = np.array([r[name] for r in recs], dtype=float)
            y = y / max(float(np.abs(y[: max(1, smooth)]).mean()), 1e-12)
            line, = ax.plot(x, y, alpha=0.25)
            ax.plot(x, moving_average(y, smooth), color=line.get_color(), label=name)
        ax.set_title(f"IDATT {stage} stage: losses / their start")
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = run / "losses.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
