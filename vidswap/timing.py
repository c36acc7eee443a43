"""Wall seconds per stage of a run, and the batching of a frame stream that charges decoding to ``decode``."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from vidswap.io.frames import Frame

#: ``progress(stage, done, total)``: called as a pass moves through its frames.
Progress = Callable[[str, int, int], None]


@dataclass
class StageTimer:
    """Accumulates wall seconds per stage name."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


def batches(frames: Iterator[Frame], size: int, timer: StageTimer) -> Iterator[list[Frame]]:
    """Consecutive batches of ``size`` frames (the last may be shorter); decoding time goes to ``decode``."""
    batch: list[Frame] = []
    it = iter(frames)
    while True:
        with timer.stage("decode"):
            frame = next(it, None)
        if frame is None:
            break
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
