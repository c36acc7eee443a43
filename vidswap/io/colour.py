"""OpenColorIO colour management for scene-linear plates (EXR).

The face models see display-referred pictures (sRGB-encoded Rec.709 by default); a compositor wants the plate
back in its own scene-linear space with every pixel the swap did not touch exactly as it came in.  So the
plate is converted to the display-referred working space for analysis and swapping, and the result is blended
back *in linear*, from the original plate, only where the compositor's alpha is above zero::

    colour = ColourPipeline.create(input="ACEScg")               # or ColourPipeline.from_config(cfg.colour)
    display = colour.to_display(plate_lin)                       # HxWx3 float32, for detection and the swap
    out_lin = colour.composite_in_linear(plate_lin, swapped_display, alpha)   # the plate's own bits at alpha 0
    written = colour.to_output(out_lin)                          # no-op when output is the input space

Spaces are OCIO colourspace names, aliases or roles.  ``working`` may instead be a ``"<display>/<view>"``
pair (a DisplayViewTransform such as ``"sRGB - Display/ACES 1.0 - SDR Video"``); output transforms with tone
mapping are not exactly invertible for saturated colours, so the default is the plain sRGB encoding.

Processors are created once, in ``create``, and kept on the (immutable) pipeline: nothing is global, and OCIO
CPU processors are safe to share between threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidswap.errors import ConfigError

# Pinned, not "ocio://default": the default built-in config changes between OCIO releases, and farm workers
# must agree.  Available from OpenColorIO 2.4.
DEFAULT_CONFIG = "ocio://cg-config-v2.2.0_aces-v1.3_ocio-v2.4"
DEFAULT_INPUT = "scene_linear"  # role: ACEScg in the CG/studio configs
DEFAULT_WORKING = ("sRGB Encoded Rec.709 (sRGB)", "srgb_tx", "sRGB - Texture", "Utility - sRGB - Texture")


def _ocio():
    import PyOpenColorIO

    return PyOpenColorIO


def load_ocio_config(config: str | None = None) -> Any:
    """An OCIO config from a file path or ``ocio://`` URI (``$VARS`` expanded); None: the pinned built-in."""
    ocio = _ocio()
    name = DEFAULT_CONFIG if config is None else os.path.expandvars(str(config))
    if "$" in name:
        raise ConfigError(f"colorspace.config {config!r}: environment variable not set; set it or give a path")
    try:
        cfg = ocio.Config.CreateFromFile(name)
        cfg.validate()
    except Exception as exc:  # OCIO raises its own exception types (missing file, parse errors, ...)
        raise ConfigError(f"cannot load the OCIO config {name}: {' '.join(str(exc).split())}; give a valid "
                          "colorspace.config (a .ocio file or an ocio:// built-in)") from None
    return cfg


def _colourspace(cfg: Any, name: str | None, defaults: tuple[str, ...], key: str) -> str:
    candidates = (name,) if name else defaults
    for candidate in candidates:
        space = cfg.getColorSpace(candidate)  # names, aliases and roles
        if space is not None:
            return space.getName()
    known = ", ".join(cs.getName() for cs in cfg.getColorSpaces())
    what = repr(name) if name else f"none of the defaults ({', '.join(defaults)})"
    hint = " (or a <display>/<view> pair)" if key == "working" else ""
    raise ConfigError(f"colorspace.{key}: {what} is not a colourspace or role of the OCIO config "
                      f"{cfg.getName() or ''}; known: {known}{hint}")


def _display_view(cfg: Any, text: str) -> tuple[str, str] | None:
    """``"<display>/<view>"`` -> (display, view) when the config has that pair, else None."""
    for i, char in enumerate(text):
        if char != "/":
            continue
        display, view = text[:i].strip(), text[i + 1:].strip()
        if display in cfg.getDisplays() and view in cfg.getViews(display):
            return display, view
    return None


def _as_unit_float(image: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> [0, 1] float32; float -> float32.  Always a new contiguous array (OCIO works in place)."""
    if image.dtype == np.uint8:  # order="C": astype keeps a transposed (e.g. torch-permuted) view's layout
        return image.astype(np.float32, order="C") / np.float32(255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32, order="C") / np.float32(65535.0)
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"expected a uint8, uint16 or float image, got {image.dtype}")
    return np.array(image, dtype=np.float32, order="C", copy=True)


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim < 1 or image.shape[-1] < 3:
        raise ValueError(f"expected ...x3 (or more) channels, got shape {image.shape}")
    return image[..., :3]


@dataclass(frozen=True)
class ColourPipeline:
    """Input plate space <-> display-referred working space (and the output space), processors built once."""

    config_name: str
    input: str  # the plate's colourspace (resolved name)
    working: str  # the models' display-referred space: a colourspace name or "display/view"
    output: str  # the colourspace written (resolved name)
    _to_display: Any = field(repr=False, compare=False)
    _to_linear: Any = field(repr=False, compare=False)
    _to_output: Any = field(repr=False, compare=False)  # None: output is the input space (bit-exact no-op)

    @classmethod
    def create(cls, config: str | None = None, input: str | None = None, working: str | None = None,
               output: str | None = None) -> ColourPipeline:
        """Resolve the spaces and build the CPU processors.  ConfigError for an unknown config or space.

        config:  .ocio file or ``ocio://`` URI (``$OCIO`` works); None: the pinned built-in CG config.
        input:   the plate's space; None: the ``scene_linear`` role.
        working: the display-referred space the models see; None: sRGB-encoded Rec.709.
        output:  the written space; None: the input space (untouched pixels stay bit-exact).
        """
        ocio = _ocio()
        cfg = load_ocio_config(config)
        src = _colourspace(cfg, input, (DEFAULT_INPUT,), "input")
        dst = _colourspace(cfg, output, (src,), "output")
        pair = _display_view(cfg, working) if working and cfg.getColorSpace(working) is None else None
        if pair is not None:
            transform = ocio.DisplayViewTransform(src=src, display=pair[0], view=pair[1])
            forward = cfg.getProcessor(transform)
            inverse = cfg.getProcessor(transform, ocio.TRANSFORM_DIR_INVERSE)
            working_name = f"{pair[0]}/{pair[1]}"
        else:
            working_name = _colourspace(cfg, working, DEFAULT_WORKING, "working")
            forward = cfg.getProcessor(src, working_name)
            inverse = cfg.getProcessor(working_name, src)
        to_output = None if dst == src else cfg.getProcessor(src, dst)

        def cpu(processor: Any) -> Any:
            return processor.getOptimizedCPUProcessor(ocio.BIT_DEPTH_F32, ocio.BIT_DEPTH_F32,
                                                      ocio.OPTIMIZATION_DEFAULT)

        return cls(config_name=cfg.getName() or str(config), input=src, working=working_name, output=dst,
                   _to_display=cpu(forward), _to_linear=cpu(inverse),
                   _to_output=None if to_output is None or to_output.isNoOp() else cpu(to_output))

    @classmethod
    def from_config(cls, colour: Any) -> ColourPipeline:
        """From a config section with ``config``, ``input``, ``working``, ``output`` attributes (None: defaults)."""
        return cls.create(**{k: getattr(colour, k, None) for k in ("config", "input", "working", "output")})

    # ----------------------------------------------------------------------------------------------------------

    def to_display(self, linear: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """Plate pixels (...x3+, scene-linear in ``input``) -> ...x3 in the working space.

        float32 output is unclipped; ``dtype=np.uint8``/``np.uint16`` clips to [0, 1] and quantizes (rounded).
        """
        rgb = _as_unit_float(_rgb(linear))
        self._to_display.applyRGB(rgb)
        if np.dtype(dtype) == np.float32:
            return rgb
        scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(np.dtype(dtype))
        if scale is None:
            raise TypeError(f"to_display: dtype must be float32, uint8 or uint16, not {np.dtype(dtype)}")
        return np.rint(np.clip(rgb, 0.0, 1.0) * scale).astype(dtype)

    def to_linear(self, display: np.ndarray) -> np.ndarray:
        """Working-space pixels (...x3+, float or uint8/uint16 full range) -> ...x3 float32 in ``input``."""
        rgb = _as_unit_float(_rgb(display))
        self._to_linear.applyRGB(rgb)
        return rgb

    def to_output(self, linear: np.ndarray) -> np.ndarray:
        """``input`` -> ``output`` space (RGB only; extra channels kept).  The same array when they match."""
        if self._to_output is None:
            return linear
        out = np.array(linear, copy=True)
        rgb = _as_unit_float(_rgb(linear))
        self._to_output.applyRGB(rgb)
        out[..., :3] = rgb.astype(out.dtype, copy=False)
        return out

    def composite_in_linear(self, plate_lin: np.ndarray, swapped_display: np.ndarray,
                            alpha: np.ndarray) -> np.ndarray:
        """Blend the swapped picture into the plate in linear light: see ``composite_in_linear``."""
        return composite_in_linear(plate_lin, swapped_display, alpha, self)


def composite_in_linear(plate_lin: np.ndarray, swapped_display: np.ndarray, alpha: np.ndarray,
                        colour: ColourPipeline) -> np.ndarray:
    """``out = plate`` where ``alpha == 0``; ``plate·(1-a) + to_linear(swapped)·a`` where ``alpha > 0``.

    plate_lin:       HxWxC (C >= 3) float16/float32, scene-linear in ``colour.input`` (as read from the EXR).
    swapped_display: HxWx3 in the working space: float [0, 1] or uint8/uint16; the swapped face pasted onto
                     the frame *before* blending (only pixels under alpha > 0 are read).
    alpha:           HxW or HxWx1 blend weight in [0, 1] (float, or uint8 0..255).
    Returns a new array with the plate's shape and dtype.  Where alpha == 0 every channel is the plate's own
    value, bit for bit (NaN, inf and negative values included: they are copied, never computed on); channels
    past the third (e.g. the plate's alpha) are always the plate's.
    """
    if plate_lin.ndim != 3 or plate_lin.shape[2] < 3:
        raise ValueError(f"plate must be HxWxC with C >= 3, got shape {plate_lin.shape}")
    weight = alpha[..., 0] if alpha.ndim == 3 else alpha
    if weight.shape != plate_lin.shape[:2] or swapped_display.shape[:2] != plate_lin.shape[:2]:
        raise ValueError(f"plate {plate_lin.shape[:2]}, swapped {swapped_display.shape[:2]} and alpha "
                         f"{weight.shape} must have the same height and width")
    out = plate_lin.copy()
    mask = weight > 0
    if not mask.any():
        return out
    a = weight[mask].astype(np.float32)
    if weight.dtype == np.uint8:
        a = a / np.float32(255.0)
    a = np.clip(a, 0.0, 1.0)[:, None]
    swap = colour.to_linear(swapped_display[mask])  # N x 3: only the pixels under the mask are converted
    plate = plate_lin[mask][:, :3].astype(np.float32)
    blended = np.where(a >= 1.0, swap, plate * (1.0 - a) + swap * a)
    rows, cols = np.nonzero(mask)
    out[rows, cols, :3] = blended.astype(out.dtype)
    return out
