"""``<run>/losses.png``: the training curves of a run from its ``metrics.jsonl`` (written at the end of training).

Panels: the identity loss; reconstruction (same-image pairs) and cycle; IFSR and adversarial -- each per logged
step, faint, with a trailing moving average (``smooth`` logged points); and the held-out evaluations (identity similarity of
the swap to its source, the unchanged target's as the baseline, and the retrieval rate).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = ["read_metrics", "moving_average", "plot_run"]


def read_metrics(path: str | Path) -> tuple[list[dict], list[dict]]:
    """(step records, eval records) of a metrics.jsonl; a later record for the same step replaces an earlier one
    (a resumed run logs from its checkpoint on)."""
    steps: dict[int, dict] = {}
    evals: dict[int, dict] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if "eval" in rec:
            evals[int(rec["eval"]["step"])] = rec["eval"]
        else:
            steps[int(rec["step"])] = rec
    return [steps[k] for k in sorted(steps)], [evals[k] for k in sorted(evals)]


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values (same length as ``values``)."""
    v = np.asarray(values, dtype=np.float64)
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(0, idx - window)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_run(run: str | Path, smooth: int = 5) -> Path | None:
    """Write ``<run>/losses.png``; None when the run has no logged steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run)
    steps, evals = read_metrics(run / "metrics.jsonl")
    if not steps:
        return None
    x = np.array([r["step"] for r in steps])
    fig, axes = plt.subplots(1, 4, figsize=(19, 4))
    for ax, names in zip(axes[:3], (("identity",), ("reconstruction", "cycle"), ("ifsr", "adv"))):
        for name in names:
            y = np.array([r[name] for r in steps])
            line, = ax.plot(x, y, alpha=0.3)
            ax.plot(x, moving_average(y, smooth), color=line.get_color(), label=name)
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    axes[0].set_title("identity loss (1 - cos)")
    axes[1].set_title("reconstruction (same pairs) and cycle, L1")
    axes[2].set_title("IFSR and adversarial")
    ax = axes[3]
    if evals:
        ex = [e["step"] for e in evals]
        for key, label in (("id_swap", "cos(swap, source)"), ("id_target", "cos(target, source) baseline"),
                           ("retrieval", "ID retrieval")):
            if all(key in e for e in evals):
                ax.plot(ex, [e[key] for e in evals], marker="o", label=label)
        ax.legend()
    ax.set_title("held-out pairs")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = run / "losses.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
