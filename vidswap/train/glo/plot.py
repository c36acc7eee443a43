"""``<run>/losses.png`` of a StyleGAN-GLO run: the reconstruction terms (log scale) and the batch PSNR per logged
step (faint) with a trailing moving average, from ``metrics.jsonl``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidswap.train.facedancer.plot import moving_average, read_metrics

__all__ = ["plot_glo_run"]


def plot_glo_run(run: str | Path, smooth: int = 10) -> Path | None:
    """Write ``<run>/losses.png``; None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    recs, _ = read_metrics(run / "metrics.jsonl")
    if not recs:
        return None
    x = np.array([r["step"] for r in recs])
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4))
    for name in ("total", "l2", "l1", "multiscale", "code_reg"):
        y = np.array([r[name] for r in recs])
        line, = ax.plot(x, y, alpha=0.25)
        ax.plot(x, moving_average(y, smooth), color=line.get_color(), label=name)
    ax.set_yscale("log")
    ax.set_title("GLO losses")
    y = np.array([r["psnr"] for r in recs])
    bx.plot(x, y, alpha=0.25, color="C0")
    bx.plot(x, moving_average(y, smooth), color="C0")
    bx.set_title("training batch PSNR (dB)")
    for a in (ax, bx):
        a.set_xlabel("step")
        a.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = run / "losses.png"
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
