"""What every `vidswap train` method's run loop shares (FaceDancer, MegaFS): the checkpoint schedule and one step's
scalars to TensorBoard and ``metrics.jsonl``.

Pure bookkeeping: nothing here touches a model or a gradient, so each trainer keeps its own step.
"""

from __future__ import annotations

import json
import time
from typing import Callable, TextIO


def save_schedule(every_steps: int | None, every_minutes: float | None,
                  clock: Callable[[], float] = time.monotonic) -> Callable[[int], bool]:
    """``due(step)``: True every ``every_steps`` steps, or when ``every_minutes`` have passed since the last True
    (or since the schedule was made); either may be 0 / None (off)."""
    last = [clock()]

    def due(step: int) -> bool:
        hit = bool((every_steps and step % every_steps == 0)
                   or (every_minutes and clock() - last[0] > 60 * every_minutes))
        if hit:
            last[0] = clock()
        return hit

    return due


def record_step(writer, metrics: TextIO, step: int, losses: dict[str, float], lr: float, dt: float,
                prefix: str = "loss", extra: dict | None = None) -> None:
    """One step's losses (``<prefix>/<name>``), learning rate and step time to the TensorBoard ``writer``, and a
    JSON line ``{"step", **extra, "step_s", **losses}`` to ``metrics`` (flushed)."""
    for k, v in losses.items():
        writer.add_scalar(f"{prefix}/{k}", v, step)
    writer.add_scalar("lr", lr, step)
    writer.add_scalar("time/step_s", dt, step)
    metrics.write(json.dumps({"step": step, **(extra or {}), "step_s": dt, **losses}) + "\n")
    metrics.flush()
