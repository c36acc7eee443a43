"""What every EXR vidswap writes holds and says: scene-linear pixels, their colourspace and primaries, provenance.

Nuke and other compositing tools read EXR as scene-linear.  A display-referred plate (8/10/16-bit video, PNG,
TIFF) holds sRGB-encoded values, so writing them into an EXR as they are would be silently wrong; they are
decoded through OpenColorIO from ``colorspace.working`` (the plate's encoding, default sRGB-encoded Rec.709) to
``colorspace.output`` (default ``colorspace.input``: the ``scene_linear`` role, ACEScg in the built-in config).
Float frames of a scene-linear plate are already in ``output`` (``vidswap.composite.linear``) and pass as they
are.  Every EXR gets the standard ``chromaticities`` attribute (when the gamut is identified,
:mod:`vidswap.io.chromaticities`), ``colorSpace`` (the OCIO name), ``software`` and ``vidswap:*`` provenance::

    exr = ExrOutput.create(colour_section, provenance={"vidswap:input": "plate.mov"})
    write_exr(path, {"RGB": exr.encode(frame.image).astype(np.float16)}, exr)
    read_exr_attributes(path)["colorSpace"]          # "ACEScg"
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import OpenEXR

from vidswap import __version__
from vidswap.io.colour import ColourPipeline, load_ocio_config
from vidswap.io.chromaticities import chromaticities

SOFTWARE = f"vidswap {__version__}"


@dataclass(frozen=True)
class ExrOutput:
    """The colourspace EXR pixels are written in, the conversion of display-referred pixels into it, and the
    header attributes.

    colourspace:     OCIO name of the written pixels (the ``colorSpace`` attribute).
    chromaticities:  (rx, ry, gx, gy, bx, by, wx, wy) or None when the gamut is not identified.
    ocio_config:     the OCIO config's name or URI (``vidswap:ocioConfig``).
    display:         the display-referred colourspace ``from_display`` decodes (``colorspace.working``).
    from_display:    ...x3 display-referred pixels (float [0, 1] or uint8/uint16) -> float32 in ``colourspace``.
    provenance:      extra string attributes (``vidswap:input``, ``vidswap:sources``, ...).
    """

    colourspace: str
    chromaticities: tuple[float, ...] | None
    ocio_config: str
    display: str
    from_display: Callable[[np.ndarray], np.ndarray] = field(repr=False, compare=False)
    provenance: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, colour: Any = None, provenance: Mapping[str, str] | None = None) -> ExrOutput:
        """From a ``colorspace`` config section (``config``, ``input``, ``working``, ``output``; None: defaults).
        ConfigError for an unknown OCIO config or colourspace."""
        names = {k: getattr(colour, k, None) for k in ("config", "input", "working", "output")}
        pipeline = ColourPipeline.create(**names)
        config = load_ocio_config(names["config"])

        def from_display(image: np.ndarray) -> np.ndarray:
            return pipeline.to_output(pipeline.to_linear(image))

        return cls(colourspace=pipeline.output, chromaticities=chromaticities(config, pipeline.output),
                   ocio_config=pipeline.config_name, display=pipeline.working, from_display=from_display,
                   provenance={k: str(v) for k, v in (provenance or {}).items()})

    def encode(self, image: np.ndarray) -> np.ndarray:
        """A frame's pixels as written: integer (display-referred) images decoded to ``colourspace``; float
        images (already scene-linear in it) unchanged."""
        if np.issubdtype(image.dtype, np.integer):
            return self.from_display(image)
        return image

    def attributes(self) -> dict[str, Any]:
        """The header attributes every EXR of this output carries."""
        attrs: dict[str, Any] = {"colorSpace": self.colourspace, "software": SOFTWARE,
                                 "vidswap:ocioConfig": self.ocio_config}
        if self.chromaticities is not None:
            attrs["chromaticities"] = tuple(float(v) for v in self.chromaticities)
        attrs.update(self.provenance)
        return attrs


def write_exr(path: Path, channels: dict[str, np.ndarray], exr: ExrOutput) -> None:
    """Write ``channels`` (e.g. ``{"RGB": HxWx3 half}``) as a ZIP-compressed scanline EXR with ``exr``'s
    attributes.  OpenEXR errors propagate (callers turn them into MediaError)."""
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, **exr.attributes()}
    OpenEXR.File(header, {k: np.ascontiguousarray(v) for k, v in channels.items()}).write(str(path))


def read_exr_attributes(path: Path) -> dict[str, Any]:
    """The header attributes of an EXR file (``chromaticities``, ``colorSpace``, ``software``, ...)."""
    with OpenEXR.File(str(path), header_only=True) as exr:
        return dict(exr.header())
