"""Where a crop-space face lands on the plate: the bounding box of its alpha and the plate regions of interest
that paste-back, grain measurement, the render stage and the analysis's face crops work in (so their cost
follows the face size, not the plate size)."""

from __future__ import annotations

import numpy as np
import torch

from vidswap.composite.convert import to_float
from vidswap.faces.align import crop_halvings, halved_matrices, invert_affine, warp_to_crop


def alpha_bbox(alpha: torch.Tensor) -> torch.Tensor:
    """``(B, 1, h, w) -> (B, 4)`` float ``x0, y0, x1, y1`` of alpha > 0 (-1s for an empty alpha)."""
    b = alpha.shape[0]
    nz = alpha[:, 0] > 0
    rows, cols = nz.any(dim=2), nz.any(dim=1)
    h, w = nz.shape[1:]
    ar_h = torch.arange(h, device=alpha.device)
    ar_w = torch.arange(w, device=alpha.device)
    big = max(h, w) + 1
    y0 = torch.where(rows, ar_h, big).min(dim=1).values
    y1 = torch.where(rows, ar_h, -1).max(dim=1).values
    x0 = torch.where(cols, ar_w, big).min(dim=1).values
    x1 = torch.where(cols, ar_w, -1).max(dim=1).values
    box = torch.stack([x0, y0, x1, y1], dim=1).float()
    empty = ~rows.any(dim=1)
    return torch.where(empty[:, None], torch.full((b, 4), -1.0, device=alpha.device), box)


def plate_rois(
    alpha: torch.Tensor, crop_to_plate: torch.Tensor, plate_size: tuple[int, int], margin: int
) -> tuple[list[tuple[int, int] | None], tuple[int, int]]:
    """Where each face lands on the plate.

    Args:
        alpha: ``(B, 1, h, w)`` crop-space alpha.
        crop_to_plate: ``(B, 2, 3)`` affine from crop pixels to plate pixels.
        plate_size: ``(H, W)``.
        margin: pixels added around the warped alpha bounding box.

    Returns:
        per item the ROI's top-left ``(x0, y0)`` or None when the face misses the plate, and the common ROI
        size ``(rh, rw)`` (all ROIs share it so they batch).
    """
    hp, wp = plate_size
    box = alpha_bbox(alpha).cpu().double()
    mats = crop_to_plate.detach().cpu().double()
    spans, tops = [], []
    for i in range(alpha.shape[0]):
        x0, y0, x1, y1 = box[i].tolist()
        if x1 < 0:
            spans.append(None)
            continue
        corners = torch.tensor([[x0 - 1, y0 - 1, 1], [x1 + 1, y0 - 1, 1], [x0 - 1, y1 + 1, 1], [x1 + 1, y1 + 1, 1]])
        pts = corners.double() @ mats[i].T
        lo = torch.floor(pts.min(0).values) - margin
        hi = torch.ceil(pts.max(0).values) + margin
        px0, py0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
        px1, py1 = min(int(hi[0]), wp - 1), min(int(hi[1]), hp - 1)
        if px1 < px0 or py1 < py0:
            spans.append(None)
            continue
        spans.append((px0, py0, px1, py1))
    live = [s for s in spans if s is not None]
    if not live:
        return [None] * len(spans), (0, 0)
    rw = min(wp, max(s[2] - s[0] + 1 for s in live))
    rh = min(hp, max(s[3] - s[1] + 1 for s in live))
    tops = [None if s is None else (min(s[0], wp - rw), min(s[1], hp - rh)) for s in spans]
    return tops, (rh, rw)


def footprint_roi(crop_to_plate: torch.Tensor, crop_size: tuple[int, int], plate_size: tuple[int, int],
                  margin: int, align: int = 32) -> tuple[int, int, int, int]:
    """The plate region a set of face crops covers: where the render stage reads and writes a track's faces.

    Args:
        crop_to_plate: ``(N, 2, 3)`` affine from crop pixels to plate pixels (every frame of a track), a
            tensor or an array.
        crop_size: ``(h, w)`` of the crop.
        plate_size: ``(H, W)``.
        margin: plate pixels added around the crops' bounding box (bilinear taps, paste-back context).
        align: the region starts at multiples of ``align`` (so a crop's 2x2 box-filter halvings, see
            :func:`vidswap.faces.align.warp_to_crop`, see the same pixel blocks as on the whole plate) and ends at a
            multiple of ``align`` or the plate's edge.

    Returns:
        ``(x0, y0, x1, y1)`` with exclusive ends, inside the plate; the whole plate when the crops miss it (or
        a matrix is not finite).
    """
    hp, wp = plate_size
    h, w = crop_size
    corners = np.array([[0.0, 0.0, 1.0], [w - 1.0, 0.0, 1.0], [0.0, h - 1.0, 1.0], [w - 1.0, h - 1.0, 1.0]])
    mats = np.asarray(crop_to_plate.detach().cpu().numpy() if torch.is_tensor(crop_to_plate) else crop_to_plate,
                      np.float64)
    pts = (corners @ mats.transpose(0, 2, 1)).reshape(-1, 2)  # (N * 4, 2)
    if pts.shape[0] == 0 or not np.isfinite(pts).all():
        return 0, 0, wp, hp
    lo = np.floor(pts.min(axis=0)) - margin
    hi = np.ceil(pts.max(axis=0)) + margin + 1
    x0 = min(max(int(lo[0]) // align * align, 0), wp)
    y0 = min(max(int(lo[1]) // align * align, 0), hp)
    x1 = max(min(-(-int(hi[0]) // align) * align, wp), x0)
    y1 = max(min(-(-int(hi[1]) // align) * align, hp), y0)
    if x1 <= x0 or y1 <= y0:  # the crops miss the plate: nothing of it is read
        return 0, 0, wp, hp
    return x0, y0, x1, y1


def shift_source(affine: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
    """(B, 2, 3) plate -> crop matrices as matrices from the plate region whose top-left plate pixel is ``origin``
    (x, y): ``A (p + o) + t = A p + (A o + t)``. The same tensor for origin (0, 0)."""
    if origin == (0, 0):
        return affine
    o = torch.tensor([float(origin[0]), float(origin[1])], dtype=affine.dtype, device=affine.device)
    return torch.cat([affine[:, :, :2], affine[:, :, 2:] + (affine[:, :, :2] @ o)[..., None]], dim=-1)


def shift_target(affine: torch.Tensor, origin: tuple[int, int]) -> torch.Tensor:
    """(B, 2, 3) crop -> plate matrices as matrices to the plate region whose top-left plate pixel is ``origin``."""
    if origin == (0, 0):
        return affine
    o = torch.tensor([float(origin[0]), float(origin[1])], dtype=affine.dtype, device=affine.device)
    return torch.cat([affine[:, :, :2], affine[:, :, 2:] - o[:, None]], dim=-1)



def region_crops(image: np.ndarray, frame_to_crop: torch.Tensor, size: int,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """``warp_to_crop(to_float(image)[None].expand(N, ...), frame_to_crop, size)`` -- N face crops of one frame --
    from only the plate region the crops cover (:func:`footprint_roi`, from this frame's matrices alone), shrunk
    by warp_to_crop's 2x2 box halvings before it goes to float (:func:`halved_region`): the float work follows
    the crop's size, not the plate's. Equal to the whole-frame crops up to float rounding.

    Args:
        image: HxWx3 plate (uint8 / uint16 / float).
        frame_to_crop: (N, 2, 3) frame -> crop matrices.
        size: crop side.

    Returns:
        (N, 3, size, size) float32 crops on ``device``.
    """
    m = frame_to_crop.to(device=device, dtype=torch.float32)
    x0, y0, x1, y1 = footprint_roi(invert_affine(m.detach().cpu().numpy()), (size, size), image.shape[:2], margin=4)
    m = shift_source(m, (x0, y0))
    k = crop_halvings(m, (y1 - y0, x1 - x0))
    plate = halved_region(image[y0:y1, x0:x1], k).to(device)[None].expand(len(m), -1, -1, -1)
    return warp_to_crop(plate, halved_matrices(m, k), size)


def halved_region(image: np.ndarray, k: int) -> torch.Tensor:
    """``to_float(image)`` halved ``k`` times by 2x2 boxes (``avg_pool2d(.., 2, ceil_mode=True)``, as
    :func:`~vidswap.faces.align.warp_to_crop` does), with an integer image's full ``2^k`` blocks summed in
    integers before anything goes to float: HxWxC (uint8 / uint16 / float) -> (C, ceil(H / 2^k), ceil(W / 2^k))
    float32, equal to the float halvings up to float rounding. The last row and column of blocks, partial where
    H or W is not a multiple of ``2^k``, are halved in float (a strip under ``2^k`` px wide)."""
    if image.dtype not in (np.uint8, np.uint16):
        return to_float(_halve_float(image.astype(np.float32), k))
    s = 1 << k
    h, w, c = image.shape
    hf, wf = h // s * s, w // s * s
    white = np.float32(255 if image.dtype == np.uint8 else 65535)
    out = np.empty((-(-h // s), -(-w // s), c), np.float32)
    if hf and wf:
        acc = np.uint16 if image.dtype == np.uint8 and k <= 4 else np.uint32 if image.dtype == np.uint8 or k <= 8 \
            else np.uint64  # holds s * s * the largest code
        blocks = image[:hf, :wf]
        for _ in range(k):  # sums of 2x2 neighbours, level by level (strided adds: one pass per level)
            blocks = np.add(blocks[0::2], blocks[1::2], dtype=acc)
            blocks = np.add(blocks[:, 0::2], blocks[:, 1::2], dtype=acc)
        out[:hf // s, :wf // s] = blocks / (float(white) * s * s)
    if wf < w:  # the last, partial column of blocks (and the corner)
        out[:, wf // s:] = _halve_float(image[:, wf:].astype(np.float32) / white, k)
    if hf < h and wf:  # the last, partial row of blocks
        out[hf // s:, :wf // s] = _halve_float(image[hf:, :wf].astype(np.float32) / white, k)
    return torch.from_numpy(out).permute(2, 0, 1).contiguous()


def _halve_float(image: np.ndarray, k: int) -> np.ndarray:
    """HxWxC float32 halved ``k`` times by 2x2 boxes, a lone last row / column averaged alone (ceil mode)."""
    for _ in range(k):
        if image.shape[0] % 2:
            image = np.concatenate([image, image[-1:]], 0)
        if image.shape[1] % 2:
            image = np.concatenate([image, image[:, -1:]], 1)
        image = (image[0::2, 0::2] + image[1::2, 0::2] + image[0::2, 1::2] + image[1::2, 1::2]) * np.float32(0.25)
    return image
