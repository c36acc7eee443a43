"""Evaluation of swapped clips: metrics, per-clip reports and a multi-swap suite.

Public API:

* ``evaluate(result, target, sources, out_dir, frames=None, every=1) -> dict`` (:mod:`vidswap.eval.report`):
  writes ``metrics.json``, ``report.html`` (self-contained), per-frame plots, contact sheets and
  ``embeddings.npz`` into ``out_dir``; ``frame_range("0-47")`` turns a CLI frame range into the ``frames`` range.
* ``run_suite(config_yaml, out_dir=None, reuse=False) -> dict`` (:mod:`vidswap.eval.suite`): several swaps via
  the CLI, each evaluated, ``summary.md`` / ``summary.json`` with identity retrieval.
* :mod:`vidswap.eval.metrics`: the pure metric functions (identity, retrieval, pose, expression, flicker,
  jitter, sharpness, seam, boundary tone step).
* :mod:`vidswap.eval.judges`: the independent judges (ArcFace MobileFaceNet, InsightFace 2d106), non-commercial
  research models fetched on demand for evaluation only.
"""

from __future__ import annotations

from vidswap.eval.report import evaluate, frame_range
from vidswap.eval.suite import run_suite

__all__ = ["evaluate", "frame_range", "run_suite"]
