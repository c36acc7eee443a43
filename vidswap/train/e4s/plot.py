"""``<run>/losses.png`` of an E4S run from ``metrics.jsonl`` (FaceDancer's reader: a resumed run's later record
for a step replaces the earlier one): left, each weighted term's contribution to the total (log scale); right, the
pixel error as PSNR of the reconstruction (from the pixel L2 in [-1, 1]). Faint: per logged step; solid: trailing
moving average."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vidswap.train.facedancer.plot import moving_average, read_metrics

__all__ = ["plot_e4s_run"]

TERMS = ("total", "mse", "perceptual", "identity", "multiscale")


def plot_e4s_run(run: str | Path, smooth: int = 10) -> Path | None:
    """Write ``<run>/losses.png``; None when nothing was logged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    recs = [r for r in read_metrics(run / "metrics.jsonl")[0] if "mse" in r]
    if not recs:
        return None
    x = np.array([r["step"] for r in recs])
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    for name in TERMS:
        y = np.array([r.get(name, np.nan) for r in recs], dtype=np.float64)
        line, = left.plot(x, y, alpha=0.25)
        left.plot(x, moving_average(y, smooth), color=line.get_color(), label=name)
    left.set_title("E4S reconstruction losses (unweighted terms)")
    left.set_yscale("log")
    # pixel L2 is on [-1, 1] images: PSNR on [0, 1] = 10 log10(4 / mse)
    psnr = 10 * np.log10(4.0 / np.maximum(np.array([r["mse"] for r in recs]), 1e-12))
    right.plot(x, psnr, alpha=0.25, color="C1")
    right.plot(x, moving_average(psnr, smooth), color="C1", label="reconstruction PSNR (dB)")
    right.set_title("training-batch reconstruction PSNR")
    for ax in (left, right):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = run / "losses.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
