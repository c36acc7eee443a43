"""What the benchmarks that time ``vidswap`` with a setting on and off share: one timed CLI run, runs in
alternating order (ABBA...: both settings see the same drift in the machine's load), and their table."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Callable


def vidswap_seconds(*args: object, env: dict | None = None) -> float:
    """Wall seconds of ``python -m vidswap.cli ARGS`` (exits with vidswap's error on failure)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vidswap.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)
    if proc.returncode:
        raise SystemExit(f"vidswap {args[0]} failed: {proc.stderr.strip()[-500:]}")
    return time.perf_counter() - t0


def alternating(names: tuple[str, str], pairs: int, run: Callable[[str, int], float]) -> dict[str, list[float]]:
    """``pairs`` runs of each of the two ``names`` (``run(name, pair) -> seconds``), the first name first in even
    pairs and second in odd ones."""
    times: dict[str, list[float]] = {name: [] for name in names}
    for p in range(pairs):
        for name in (names if p % 2 == 0 else names[::-1]):
            times[name].append(run(name, p))
    return times


def print_ratio_table(setting: str, times: dict[str, list[float]], baseline: str) -> None:
    """A Markdown table: each setting's runs, median and median over the ``baseline``'s, the baseline first."""
    print(f"| {setting} | runs (s) | median s | ratio to {baseline} |")
    print("|---|---|---|---|")
    base = statistics.median(times[baseline])
    for name in [baseline, *(n for n in times if n != baseline)]:
        median = statistics.median(times[name])
        print(f"| {name} | {', '.join(f'{t:.1f}' for t in times[name])} | {median:.1f} | {median / base:.3f} |")
