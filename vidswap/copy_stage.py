"""The render stage of a core that passes every frame through (``SwapCore.passes_through``): frames are handed on
as they are, with no analysis, no device and no torch (:func:`vidswap.pipeline.build_render`).

It answers what the pipeline asks of a :class:`~vidswap.render.RenderStage` -- ``core``, ``sinks``, ``matte``,
``matte_sinks``, ``plate_layers``, ``summary()`` -- the way a render stage with no target does: no face layer ever
reaches a sink, every frame is reported as passed through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from vidswap.io.frames import Frame
    from vidswap.swap.base import SwapCore


@dataclass
class CopyStage:
    """Hands each batch on unchanged (the same frame records, in a new list) and records their numbers.

    core:        the job's pass-through core (its ``runtime()`` and ``passes_through`` are reported).
    sinks:       face-layer sinks (debug strips, patch writers): kept for the pipeline's wiring, never called.
    matte_sinks: per-frame occlusion matte sinks: none (a pass-through job writes no matte).
    """

    core: SwapCore
    sinks: list[Callable[[Any], None]] = field(default_factory=list)
    matte_sinks: list[Callable[[int, Any], None]] = field(default_factory=list)
    matte: None = None
    plate_layers: bool = False
    seen: list[int] = field(default_factory=list)

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        self.seen.extend(f.number for f in frames)
        return list(frames)

    def summary(self) -> tuple[int, list[int]]:
        """(frames swapped: 0, frame numbers passed through untouched: all of them, in order)."""
        return 0, list(self.seen)
