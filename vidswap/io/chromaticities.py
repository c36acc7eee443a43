"""The RGB primaries and white point (EXR ``chromaticities``) of an OpenColorIO colourspace.

OCIO colourspaces do not state their primaries, so the gamut is identified by comparison: for each gamut below,
a processor from its reference colourspace in the pinned built-in config to the colourspace asked about (across
configs, through the configs' interchange roles) must map each pure primary to a pure primary and white to
neutral -- per-channel curves (sRGB, ACEScct, gamma) are allowed, a matrix is not.  The first gamut that passes
is the answer, with its published (unadapted) primaries, so an ACEScg EXR carries the AP1 primaries with the
ACES white, as ACES tools expect::

    chromaticities(config, "ACEScg")          # (0.713, 0.293, 0.165, 0.83, 0.128, 0.044, 0.32168, 0.33767)

None when no known gamut matches or the config has no interchange role to compare through (e.g. a config
without ``aces_interchange`` / ``cie_xyz_d65_interchange``); callers then write the colourspace name alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Pinned built-in config the reference colourspaces come from (the same one ``vidswap.io.colour`` defaults to).
REFERENCE_CONFIG = "ocio://cg-config-v2.2.0_aces-v1.3_ocio-v2.4"

D65 = (0.3127, 0.3290)
ACES_WHITE = (0.32168, 0.33767)

# name: (reference colourspace in REFERENCE_CONFIG, (rx, ry, gx, gy, bx, by, wx, wy)), most common first
GAMUTS: dict[str, tuple[str, tuple[float, ...]]] = {
    "AP1": ("ACEScg", (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, *ACES_WHITE)),
    "Rec.709": ("Linear Rec.709 (sRGB)", (0.640, 0.330, 0.300, 0.600, 0.150, 0.060, *D65)),
    "AP0": ("ACES2065-1", (0.7347, 0.2653, 0.0, 1.0, 0.0001, -0.0770, *ACES_WHITE)),
    "Rec.2020": ("Linear Rec.2020", (0.708, 0.292, 0.170, 0.797, 0.131, 0.046, *D65)),
    "P3-D65": ("Linear P3-D65", (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, *D65)),
    "AdobeRGB": ("Linear AdobeRGB", (0.640, 0.330, 0.210, 0.710, 0.150, 0.060, *D65)),
}

# test colours: black, the three primaries at 0.5 (inside every curve's range) and white at 0.5
_PROBE = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5], [0.5, 0.5, 0.5]],
                  np.float32)


def _ocio():
    import PyOpenColorIO

    return PyOpenColorIO


def same_primaries(processor: Any, tolerance: float = 1e-4) -> bool:
    """True when the OCIO ``processor`` changes channels independently (no gamut change) and keeps white neutral."""
    rgb = np.array(_PROBE, copy=True)
    processor.getDefaultCPUProcessor().applyRGB(rgb)
    if not np.all(np.isfinite(rgb)):
        return False
    black, primaries, white = rgb[0], rgb[1:4], rgb[4]
    off_diagonal = [abs(primaries[i, j] - black[j]) for i in range(3) for j in range(3) if i != j]
    moved = [abs(primaries[i, i] - black[i]) for i in range(3)]
    return max(off_diagonal) <= tolerance and min(moved) > tolerance and np.ptp(white) <= tolerance


def gamut_of(config: Any, colourspace: str) -> str | None:
    """The name of the gamut (a key of ``GAMUTS``) of ``colourspace`` in the OCIO ``config``; None if unknown."""
    ocio = _ocio()
    space_object = config.getColorSpace(colourspace)
    if space_object is None or space_object.isData():  # data (Raw) has no colour, hence no primaries
        return None
    reference = ocio.Config.CreateFromFile(REFERENCE_CONFIG)
    for name, (space, _) in GAMUTS.items():
        try:
            processor = ocio.Config.GetProcessorFromConfigs(reference, space, config, colourspace)
        except Exception:  # noqa: BLE001 - OCIO's own types: the config has no interchange role, unknown space
            return None
        if same_primaries(processor):
            return name
    return None


def chromaticities(config: Any, colourspace: str) -> tuple[float, ...] | None:
    """EXR ``chromaticities`` (rx, ry, gx, gy, bx, by, wx, wy) of ``colourspace``; None when not identified."""
    gamut = gamut_of(config, colourspace)
    return None if gamut is None else GAMUTS[gamut][1]
