"""Swapping scene-linear plates (EXR) with display-referred models, compositing back in linear light.

The face models and the swap core see display-referred pictures; a float plate is converted to the working space
(OpenColorIO, :class:`~vidswap.io.colour.ColourPipeline`) for the swap, and each swapped face is laid back over
the *original* linear plate with its alpha, so every pixel the swap does not touch keeps its bits (NaN, negative
and > 1 values included) and the blend happens in linear light::

    stage = RenderStage(..., plate_layers=True)     # vidswap.render: swaps display-referred frames
    linear = SceneLinearProcessor(stage, colour)
    stage.sinks.append(linear.collect)              # the stage hands every composited face to the wrapper
    frames_out = linear(frames_lin)                 # linear in colour.output, or display-referred for video/PNG

The blend in linear is straight alpha-over of the unblended face (``feather``); the multi-band and Poisson
blends of the display path are not applied to linear plates. Grain is: the compositor adds it to the unblended face
in the working space (where the analysis read it on the plate), before the face is converted back to linear.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from vidswap.composite.compositor import FaceLayer
from vidswap.io.colour import ColourPipeline, composite_in_linear
from vidswap.io.frames import Frame


def display_plate(colour: ColourPipeline, image: np.ndarray) -> np.ndarray:
    """HxWx3 scene-linear plate -> HxWx3 float32 in the working space, clipped to [0, 1] for the models
    (NaN and inf become 0 / 1 first)."""
    display = colour.to_display(np.nan_to_num(image, nan=0.0, posinf=1e4, neginf=0.0))
    return np.clip(display, 0.0, 1.0, out=display)


def display_frames(frames, colour: ColourPipeline):
    """Frames with their scene-linear images converted by :func:`display_plate` (a generator)."""
    for frame in frames:
        yield dataclasses.replace(frame, image=display_plate(colour, frame.image))


@dataclass
class SceneLinearProcessor:
    """Swaps scene-linear plates with a display-referred face processor and lays the faces over the linear plates.

    inner:          the face processor (the render stage, with ``plate_layers`` on): display-referred frames in,
                    display-referred frames out; every face it composites is handed to :meth:`collect`.
    colour:         the shot's OCIO pipeline.
    display_output: return display-referred frames (for H.264/ProRes/PNG outputs of a linear plate) instead of
                    linear frames in ``colour.output``.
    """

    inner: Callable[[list[Frame]], list[Frame]]
    colour: ColourPipeline
    display_output: bool = False
    _layers: dict[int, list[FaceLayer]] = field(default_factory=dict, repr=False)

    def collect(self, layer: FaceLayer) -> None:
        """The inner stage's face sink: keeps the plate-space layers of the batch being processed."""
        if layer.foreground is None or layer.plate_alpha is None:
            raise ValueError("SceneLinearProcessor needs plate-space layers: set the render stage's plate_layers")
        self._layers.setdefault(layer.number, []).append(layer)

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        self._layers = {}
        self.inner(list(display_frames(frames, self.colour)))
        out = []
        for frame in frames:
            image = frame.image
            for layer in self._layers.get(frame.number, []):
                foreground = layer.foreground.permute(1, 2, 0).cpu().numpy()
                alpha = layer.plate_alpha[0].cpu().numpy()
                image = composite_in_linear(image, foreground, alpha, self.colour)
            image = display_plate(self.colour, image) if self.display_output else self.colour.to_output(image)
            out.append(frame if image is frame.image else dataclasses.replace(frame, image=image))
        self._layers = {}
        return out
