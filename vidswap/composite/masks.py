"""Face masks: polygon rasterisation, region algebra, feathering relative to face size, landmark confidence,
temporal smoothing (the skin-colour occlusion test is :mod:`vidswap.composite.occlusion`).

Coordinates are pixels of the image the mask belongs to (x right, y down, pixel centres at integer
coordinates, OpenCV convention). Masks are float ``(B, 1, H, W)`` in [0, 1] on the device of their inputs.
Region polygons come from landmark index loops (``vidswap.faces.topology.load_topology().regions``), but every
function here takes plain arrays so it can be tested on synthetic shapes.

Region vocabulary for regional swaps (E4S-style "swap only these parts"):

* ``face``  -- inside the face oval,
* ``eyes``  -- left and right eye contours, grown by ``MaskParams.feature_grow`` (takes in the lids),
* ``brows`` -- left and right brows, grown,
* ``nose``  -- the nose contour,
* ``mouth`` -- outer lip contour, grown,
* ``skin``  -- face minus grown eyes, brows and mouth (the nose is skin), so all five together are the face.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vidswap.composite.filters import dilate, erode, gaussian_blur, in_window, per_item
from vidswap.sections import SWAP_REGIONS  # noqa: F401 - region names understood by :func:`swap_region_mask`

_PAIRS = {"eyes": ("left_eye", "right_eye"), "brows": ("left_brow", "right_brow")}


@dataclass(frozen=True)
class MaskParams:
    """Mask shaping, lengths as fractions of the face size (see :func:`face_size`).

    Attributes:
        erosion: extra inward shrink of the region before feathering (keeps the seam off the jaw line).
        feather: width of the alpha ramp (0 -> 1); the ramp lies entirely inside the (eroded) region.
        feature_grow: growth of eyes / brows / mouth contours for regional swaps and for protecting them.
        antialias: 1-pixel antialiased polygon edges (otherwise a hard inside test).
    """

    erosion: float = 0.02
    feather: float = 0.06
    feature_grow: float = 0.03
    antialias: bool = True


# ----------------------------------------------------------------------------------------------- polygons


def region_polygon(landmarks: torch.Tensor, loop: np.ndarray | Sequence[int]) -> torch.Tensor:
    """Gather a region's outline from landmarks.

    Args:
        landmarks: ``(B, N, 2 or 3)`` pixel coordinates.
        loop: ``(K,)`` ordered landmark indices; a repeated closing index is dropped.

    Returns:
        ``(B, K, 2)`` polygon vertices (x, y).
    """
    idx = np.asarray(loop, dtype=np.int64).reshape(-1)
    if idx.size > 1 and idx[0] == idx[-1]:
        idx = idx[:-1]
    return landmarks[:, torch.as_tensor(idx, device=landmarks.device), :2]


def polygon_area(polygons: torch.Tensor) -> torch.Tensor:
    """Unsigned shoelace area.

    Args:
        polygons: ``(B, K, 2)``.

    Returns:
        ``(B,)`` area in square pixels.
    """
    x, y = polygons[..., 0], polygons[..., 1]
    xn, yn = torch.roll(x, -1, dims=1), torch.roll(y, -1, dims=1)
    return 0.5 * (x * yn - xn * y).sum(dim=1).abs()


def face_size(oval: torch.Tensor) -> torch.Tensor:
    """Rotation-invariant face size: the square root of the face-oval area (about the face width).

    Args:
        oval: ``(B, K, 2)`` face-oval polygon.

    Returns:
        ``(B,)`` pixels.
    """
    return polygon_area(oval).sqrt()


def polygon_mask(
    polygons: torch.Tensor, size: tuple[int, int], antialias: bool = True, chunk_elems: int = 1 << 22
) -> torch.Tensor:
    """Rasterise closed polygons (even-odd rule), vectorised over the batch.

    A pixel centre is inside when a ray to +x crosses the outline an odd number of times (scanline fill:
    the crossings of every row are histogrammed and summed, so the cost is ``B*K*rows + B*pixels``). With
    ``antialias`` the pixels along the outline get coverage ``clamp(0.5 + d, 0, 1)``, ``d`` their signed
    distance to the outline (pixels, positive inside); only pixels within 2 of an inside/outside change are
    measured, so a sliver thinner than a pixel that holds no pixel centre may be dropped (face outlines are
    smooth). A square with corners on half-integer coordinates covers its pixels exactly in both modes.

    Args:
        polygons: ``(B, K, 2)`` vertices (x, y) in pixels; K >= 3.
        size: ``(H, W)`` of the mask.
        antialias: 1-pixel linear edge ramp.
        chunk_elems: memory bound for the edge-distance step (``band pixels * K`` elements at a time).

    Returns:
        ``(B, 1, H, W)`` float32 coverage on the polygons' device.
    """
    b, k, _ = polygons.shape
    h, w = int(size[0]), int(size[1])
    dev = polygons.device
    out = torch.zeros(b, 1, h, w, device=dev, dtype=torch.float32)
    if b == 0 or k < 3:
        return out
    p = polygons.to(torch.float32)
    if not bool(torch.isfinite(p).all()):
        raise ValueError("polygon vertices must be finite")
    lo = torch.floor(p.reshape(-1, 2).min(0).values) - 2
    hi = torch.ceil(p.reshape(-1, 2).max(0).values) + 2
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), w - 1), min(int(hi[1]), h - 1)
    if x1 < x0 or y1 < y0:
        return out
    nx, ny = x1 - x0 + 1, y1 - y0 + 1
    ax, ay = p[..., 0][:, :, None], p[..., 1][:, :, None]  # (B, K, 1)
    q = torch.roll(p, -1, dims=1)
    bx, by = q[..., 0][:, :, None], q[..., 1][:, :, None]
    dx, dy = bx - ax, by - ay
    dy_safe = torch.where(dy == 0, torch.ones_like(dy), dy)
    ys = torch.arange(y0, y1 + 1, device=dev, dtype=torch.float32)[None, None, :]  # (1, 1, R)
    crosses = (ay > ys) != (by > ys)  # (B, K, R)
    xint = ax + (ys - ay) * dx / dy_safe
    # pixel x is left of the crossing (x < xint)  <=>  x <= ceil(xint) - 1
    last = (torch.ceil(xint) - 1 - x0).clamp(-1, nx - 1).long() + 1  # slot 0: no pixel of the row
    hist = torch.zeros(b, ny, nx + 1, device=dev, dtype=torch.int32)
    hist.scatter_add_(2, last.permute(0, 2, 1), crosses.permute(0, 2, 1).to(torch.int32))
    count = hist.flip(-1).cumsum(-1).flip(-1)[..., 1:]  # (B, R, nx): crossings right of each pixel
    inside = (count % 2) == 1
    cov = inside.to(torch.float32)
    if antialias:
        cov = _antialias_band(cov, inside, ax, ay, dx, dy, x0, y0, chunk_elems)
    out[:, 0, y0 : y1 + 1, x0 : x1 + 1] = cov
    return out


def _antialias_band(
    cov: torch.Tensor,
    inside: torch.Tensor,
    ax: torch.Tensor,
    ay: torch.Tensor,
    dx: torch.Tensor,
    dy: torch.Tensor,
    x0: int,
    y0: int,
    chunk_elems: int,
) -> torch.Tensor:
    """Replace the coverage of pixels next to an inside/outside change by ``clamp(0.5 + signed distance)``."""
    f = inside.to(torch.float32)[:, None]
    change = (dilate(f, 2) - erode(f, 2))[:, 0] > 0  # the 5x5 neighbourhood holds inside and outside pixels
    bi, yi, xi = torch.nonzero(change, as_tuple=True)
    if bi.numel() == 0:
        return cov
    len2 = (dx * dx + dy * dy).clamp(min=1e-12)
    k = ax.shape[1]
    step = max(1, chunk_elems // k)
    vals = []
    for s in range(0, bi.numel(), step):
        bb = bi[s : s + step]
        px = (xi[s : s + step] + x0).to(torch.float32)[:, None]  # (N, 1)
        py = (yi[s : s + step] + y0).to(torch.float32)[:, None]
        eax, eay, edx, edy = ax[bb, :, 0], ay[bb, :, 0], dx[bb, :, 0], dy[bb, :, 0]  # (N, K)
        t = (((px - eax) * edx + (py - eay) * edy) / len2[bb, :, 0]).clamp(0.0, 1.0)
        ex, ey = eax + t * edx - px, eay + t * edy - py
        d = (ex * ex + ey * ey).min(dim=1).values.sqrt()
        ins = inside[bb, yi[s : s + step], xi[s : s + step]]
        vals.append((0.5 + torch.where(ins, d, -d)).clamp(0.0, 1.0))
    cov = cov.clone()
    cov[bi, yi, xi] = torch.cat(vals)
    return cov


def _loops(entry: np.ndarray | Sequence) -> list[np.ndarray]:
    """A region entry may be one loop ``(K,)``, several loops ``(L, K)`` or a list of loops."""
    if isinstance(entry, np.ndarray) and entry.ndim == 1:
        return [entry]
    if isinstance(entry, np.ndarray) and entry.ndim == 2:
        return list(entry)
    if len(entry) and np.ndim(entry[0]) == 0:
        return [np.asarray(entry)]
    return [np.asarray(e) for e in entry]


def region_mask(
    landmarks: torch.Tensor, loop: np.ndarray | Sequence, size: tuple[int, int], antialias: bool = True
) -> torch.Tensor:
    """Rasterise one landmark region (the union of its loops).

    Args:
        landmarks: ``(B, N, 2 or 3)`` pixel coordinates.
        loop: ``(K,)`` index loop, ``(L, K)`` loops, or a list of loops.
        size: ``(H, W)``.

    Returns:
        ``(B, 1, H, W)``.
    """
    masks = [polygon_mask(region_polygon(landmarks, lp), size, antialias) for lp in _loops(loop)]
    out = masks[0]
    for m in masks[1:]:
        out = torch.maximum(out, m)
    return out


# ------------------------------------------------------------------------------------------ region algebra


def union(*masks: torch.Tensor) -> torch.Tensor:
    """Soft union (pointwise max) of ``(B, 1, H, W)`` masks."""
    out = masks[0]
    for m in masks[1:]:
        out = torch.maximum(out, m)
    return out


def subtract(mask: torch.Tensor, *holes: torch.Tensor) -> torch.Tensor:
    """Soft difference ``mask * prod(1 - hole)`` of ``(B, 1, H, W)`` masks."""
    out = mask
    for h in holes:
        out = out * (1.0 - h)
    return out


def face_regions(
    landmarks: torch.Tensor,
    regions: Mapping[str, np.ndarray],
    size: tuple[int, int],
    params: MaskParams = MaskParams(),
) -> dict[str, torch.Tensor]:
    """Rasterise the regional-swap vocabulary (module doc) for a batch of faces.

    Args:
        landmarks: ``(B, 478, 2 or 3)`` pixels of the image the masks are for.
        regions: index loops with keys ``face_oval, left_eye, right_eye, left_brow, right_brow, nose,
            lips_outer`` (``MeshTopology.regions``).
        size: ``(H, W)``.
        params: feature growth and antialiasing.

    Returns:
        dict with ``face, eyes, brows, nose, mouth, skin`` masks ``(B, 1, H, W)`` and ``size`` ``(B,)``, the face
        size in pixels.
    """
    aa = params.antialias
    oval = region_polygon(landmarks, regions["face_oval"])
    fs = face_size(oval)
    grow = torch.round(fs * params.feature_grow)
    reach = int(grow.max()) + 1 if grow.numel() else 1
    face = polygon_mask(oval, size, aa)
    out: dict[str, torch.Tensor] = {"face": face, "size": fs}
    for name, (left, right) in _PAIRS.items():
        m = union(region_mask(landmarks, regions[left], size, aa), region_mask(landmarks, regions[right], size, aa))
        out[name] = in_window(m, reach, lambda x: dilate(x, grow)) * face
    lips = region_mask(landmarks, regions["lips_outer"], size, aa)
    out["mouth"] = in_window(lips, reach, lambda x: dilate(x, grow)) * face
    out["nose"] = region_mask(landmarks, regions["nose"], size, aa) * face
    out["skin"] = subtract(face, out["eyes"], out["brows"], out["mouth"])
    return out


def swap_region_mask(regions: Mapping[str, torch.Tensor], select: Sequence[str] = SWAP_REGIONS) -> torch.Tensor:
    """Union of the selected regions of :func:`face_regions` (``eyes, brows, nose, mouth, skin``; ``face``).

    Raises:
        ValueError: an unknown region name.
    """
    if not select:
        raise ValueError("select at least one region")
    names = list(select)
    bad = [n for n in names if n not in (*SWAP_REGIONS, "face")]
    if bad:
        raise ValueError(f"unknown face region(s) {bad}; choose from {', '.join((*SWAP_REGIONS, 'face'))}")
    if "face" in names or set(SWAP_REGIONS) <= set(names):
        return regions["face"]
    return union(*(regions[n] for n in names))


def feather_mask(
    mask: torch.Tensor, size: torch.Tensor | float, erosion: float = 0.02, feather: float = 0.06
) -> torch.Tensor:
    """Erode then feather a mask by amounts relative to the face size.

    The mask is eroded by ``erosion * size`` pixels (octagon) and by the feather radius
    ``r = feather / 2 * size`` (square: the support of the separable blur), then blurred with a Gaussian of
    radius ``r`` (sigma = r / 2, truncated at r). The alpha therefore rises from exactly 0 at the eroded
    boundary to 1 over ``feather * size`` pixels, and never exceeds the input mask anywhere.

    Args:
        mask: ``(B, 1, H, W)``.
        size: ``(B,)`` face sizes in pixels (or a scalar).
        erosion: fraction of the face size.
        feather: fraction of the face size.

    Returns:
        ``(B, 1, H, W)`` alpha.
    """
    b = mask.shape[0]
    fs = per_item(size, b, mask.device)
    radius = torch.round(fs * feather / 2.0)
    shrink = torch.round(fs * erosion)

    def shape(m: torch.Tensor) -> torch.Tensor:
        m = erode(erode(m, shrink), radius, shape="square")
        return gaussian_blur(m, radius / 2.0, radius)

    return in_window(mask, 1, shape)  # the result never leaves the mask: work in its bounding box


# ------------------------------------------------------------------------------------ landmark confidence


def confidence_weight(
    points: torch.Tensor,
    confidence: torch.Tensor,
    size: tuple[int, int],
    face_px: torch.Tensor | float,
    radius: float = 0.15,
    low: float = 0.3,
    high: float = 0.7,
    max_grid: int = 64,
) -> torch.Tensor:
    """Mask multiplier that fades the face where its landmarks are unsure.

    Per-face confidence ``(B,)`` scales the whole mask by ``clamp((c - low) / (high - low), 0, 1)``.
    Per-point confidence ``(B, K)`` splats each point's doubt ``1 - that`` as a Gaussian of ``radius * face_px``
    around the point; the weight is ``1 - max(doubt)``. The splat is computed on a coarse grid (at most
    ``max_grid`` cells a side) and upsampled bilinearly: doubt is a low-frequency thing.

    Args:
        points: ``(B, K, 2 or 3)`` pixel coordinates (ignored for per-face confidence).
        confidence: ``(B,)`` or ``(B, K)`` in [0, 1].
        size: ``(H, W)``.
        face_px: ``(B,)`` face sizes in pixels.

    Returns:
        ``(B, 1, H, W)`` weight in [0, 1].
    """
    h, w = int(size[0]), int(size[1])
    b = points.shape[0]
    dev = points.device
    c = confidence.to(device=dev, dtype=torch.float32)
    keep = ((c - low) / max(high - low, 1e-6)).clamp(0.0, 1.0)
    if c.ndim == 1:
        return keep.view(b, 1, 1, 1).expand(b, 1, h, w).clone()
    step = max(1.0, max(h, w) / max_grid)
    gh, gw = max(2, int(np.ceil(h / step))), max(2, int(np.ceil(w / step)))
    gy = torch.linspace(0, h - 1, gh, device=dev)
    gx = torch.linspace(0, w - 1, gw, device=dev)
    fs = per_item(face_px, b, dev)
    sig = (fs * radius).clamp(min=1.0)[:, None, None]
    px, py = points[..., 0].float(), points[..., 1].float()  # (B, K)
    dx2 = (gx[None, None, :] - px[:, :, None]) ** 2  # (B, K, gw)
    dy2 = (gy[None, None, :] - py[:, :, None]) ** 2  # (B, K, gh)
    doubt = (1.0 - keep)[:, :, None, None]
    g = torch.exp(-(dy2[:, :, :, None] + dx2[:, :, None, :]) / (2 * sig[..., None] ** 2)) * doubt
    weight = 1.0 - g.max(dim=1).values[:, None]  # (B, 1, gh, gw)
    weight = torch.nn.functional.interpolate(weight, size=(h, w), mode="bilinear", align_corners=True)
    return weight.clamp(0.0, 1.0)


# ------------------------------------------------------------------------------------- temporal smoothing


def smooth_masks_temporal(
    masks: torch.Tensor, alpha: float = 0.5, mode: str = "zero_phase", initial: torch.Tensor | None = None
) -> torch.Tensor:
    """Smooth one track's masks over time (in the track-aligned crop space, frames in order).

    ``ema`` is causal: ``y[t] = alpha * x[t] + (1 - alpha) * y[t-1]`` (for previews / live). ``zero_phase`` runs
    the same filter forwards then backwards, which removes its lag (for finals).

    Args:
        masks: ``(T, 1, H, W)`` (any channel count works).
        alpha: weight of the current frame in (0, 1]; 1 is no smoothing.
        mode: ``"zero_phase"`` or ``"ema"``.
        initial: ``(1, C, H, W)`` state carried over from the previous chunk (``ema``: the last output;
            ``zero_phase``: the forward pass starts from it). Default: the first frame.

    Returns:
        ``(T, C, H, W)``.
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if mode not in ("zero_phase", "ema"):
        raise ValueError(f"mode must be 'zero_phase' or 'ema', got {mode!r}")
    if masks.shape[0] == 0 or alpha == 1.0:
        return masks.clone()

    def ema(seq: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(seq)
        prev = start
        for t in range(seq.shape[0]):
            prev = alpha * seq[t] + (1.0 - alpha) * prev
            out[t] = prev
        return out

    start = masks[0] if initial is None else initial.reshape(masks.shape[1:]).to(masks)
    fwd = ema(masks, start)
    if mode == "ema":
        return fwd
    return ema(fwd.flip(0), fwd[-1]).flip(0)


def below_eyes(eyes: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` 1 on the rows below the lowest row of each face's eye mask ``eyes (B, 1, H, W)`` (0 for a
    face without eye pixels): where a second light's skin must reach
    (:func:`~vidswap.composite.occlusion.fit_skin_model`), as hair hanging over a face does not."""
    rows = (eyes > 0).any(dim=-1)[:, 0]  # (B, H)
    index = torch.arange(rows.shape[-1], device=eyes.device)
    lowest = torch.where(rows, index, torch.full_like(index, -1)).amax(dim=-1)  # (B,)
    below = (index[None] > lowest[:, None]) & (lowest[:, None] >= 0)
    return below[:, None, :, None].expand(-1, 1, -1, eyes.shape[-1]).to(eyes.dtype)
