"""Batched triangle-mesh rasteriser and polygon filler (pure torch, runs on the device of its inputs).

Conventions (shared with the rest of ``vidswap``):

* image coordinates are pixels, x right, y down, **pixel centres at integer coordinates** (OpenCV / kornia
  ``align_corners=True`` convention): pixel ``(i, j)`` is covered by a triangle when the point ``(x=j, y=i)``
  lies inside it;
* ``z`` is depth in the same pixel scale, **smaller z = closer to the camera**; the projection is orthographic
  in these coordinates (landmarks are already in image pixels), so depth and texture coordinates are
  interpolated linearly in screen space;
* triangles are ``(T, 3)`` int64 vertex indices, any winding; no back-face culling is done by the rasteriser
  (the z-buffer resolves self-occlusion of closed or folded surfaces).

How :func:`rasterize` works (no custom kernels; the same code runs on CPU and CUDA):

1. per triangle: its bounding box clipped to the image, and the barycentric coordinates and depth as affine
   functions of the box-local pixel offsets;
2. triangles are grouped by box size (classes about sqrt(2) apart, small classes merged while that is cheaper
   than another group), and every group is evaluated densely over its padded ``(G, s, s)`` candidate boxes
   with broadcasting -- plain arithmetic only: a candidate outside its triangle gets a huge depth penalty
   instead of a mask;
3. the winner per pixel comes from one ``scatter_reduce(amin)`` per group over packed 64-bit keys
   ``(float32 depth bits << 32) | triangle index`` (depths are shifted positive, where the bit patterns sort
   like the floats): the nearest triangle wins, ties go to the lower index; the result is deterministic;
4. barycentrics are recomputed exactly for the winning triangle at each covered pixel (compactly, over the
   covered pixels only; :func:`vidswap.appearance.texture.render_texture` stays compact until the final
   scatter into images).

Groups are split so that at most ``max_candidates`` candidates are alive at once (memory).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["rasterize", "raster_fragments", "interpolate_corners", "fill_polygons", "fill_loops", "loop_outlines"]

_LOW32 = 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------------------------
# candidate enumeration (shared by the z-buffer rasteriser and the polygon filler)
# ---------------------------------------------------------------------------------------------------------------

# box side classes (about sqrt(2) apart): a triangle's box is padded to the next class, so dense broadcasting
# over (G, s, s) candidates wastes ~2x work at most, while the number of groups (kernel launches) stays small
_SIDES = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096,
          6144, 8192, 12288, 16384)


def _edge_setup(xy0: Tensor, xy1: Tensor, xy2: Tensor, H: int, W: int, offset: tuple[float, float] = (0.0, 0.0)):
    """Per-triangle bounding boxes (clipped to the image) and affine barycentric coefficients.

    Args:
        xy0, xy1, xy2: (N, 2) float32 triangle corners in pixels.
        offset: sample at pixel centre + offset (only in the edge functions; used to break exact ties).

    Returns:
        bx0, by0, bw, bh: (N,) int64 clipped box origin and size (``bw * bh == 0`` when off-image or degenerate);
        coef: (N, 6) float32 ``[a1, b1, c1, a2, b2, c2]`` so that for box-local offsets ``(lx, ly)``
            ``w1 = a1*lx + b1*ly + c1``, ``w2 = a2*lx + b2*ly + c2`` and ``w0 = 1 - w1 - w2`` (box-local keeps
            the float32 constants small, so precision does not depend on where the triangle is);
        area: (N,) float32 signed doubled area.
    """
    e1 = xy1 - xy0
    e2 = xy2 - xy0
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    xs = torch.stack([xy0[:, 0], xy1[:, 0], xy2[:, 0]], 1)
    ys = torch.stack([xy0[:, 1], xy1[:, 1], xy2[:, 1]], 1)
    finite = torch.isfinite(xs).all(1) & torch.isfinite(ys).all(1) & torch.isfinite(area)
    valid = finite & (area.abs() > 1e-9)
    xs = torch.where(finite[:, None], xs, torch.zeros_like(xs))
    ys = torch.where(finite[:, None], ys, torch.zeros_like(ys))
    # pixel centres inside the box; clamp in float first so huge coordinates cannot overflow int64
    bx0 = torch.ceil(xs.amin(1).clamp(-1.0, W + 1.0)).long().clamp(min=0)
    bx1 = torch.floor(xs.amax(1).clamp(-1.0, W + 1.0)).long().clamp(max=W - 1)
    by0 = torch.ceil(ys.amin(1).clamp(-1.0, H + 1.0)).long().clamp(min=0)
    by1 = torch.floor(ys.amax(1).clamp(-1.0, H + 1.0)).long().clamp(max=H - 1)
    bw = (bx1 - bx0 + 1).clamp(min=0)
    bh = (by1 - by0 + 1).clamp(min=0)
    bw = torch.where(valid, bw, torch.zeros_like(bw))
    bh = torch.where(valid, bh, torch.zeros_like(bh))

    safe = torch.where(valid, area, torch.ones_like(area))
    a1 = e2[:, 1] / safe
    b1 = -e2[:, 0] / safe
    a2 = -e1[:, 1] / safe
    b2 = e1[:, 0] / safe
    ox = (bx0.to(xy0.dtype) - xy0[:, 0]) + offset[0]  # box origin relative to corner 0 (small numbers)
    oy = (by0.to(xy0.dtype) - xy0[:, 1]) + offset[1]
    c1 = a1 * ox + b1 * oy
    c2 = a2 * ox + b2 * oy
    coef = torch.stack([a1, b1, c1, a2, b2, c2], 1)
    return bx0, by0, bw, bh, coef, area


def _box_groups(bw: Tensor, bh: Tensor, max_candidates: int, merge: int = 16384):
    """Group items by padded box side: returns a list of ``(items (G,) int64 on the device, side s)``.

    Items are sorted into the ``_SIDES`` classes; neighbouring classes are merged while padding the smaller
    boxes up costs fewer than ``merge`` extra candidates (a group costs a fixed ~25 kernel launches, so at small
    batch sizes fewer, more padded groups are faster). Groups are split to respect ``max_candidates``.
    """
    side = torch.maximum(bw, bh)
    sides = torch.tensor(_SIDES, device=side.device)
    cls = torch.searchsorted(sides, side.clamp(max=_SIDES[-1]))
    cls = torch.where(side > 0, cls, torch.full_like(cls, -1))
    order = torch.argsort(cls)
    counts = torch.bincount(cls + 1, minlength=len(_SIDES) + 1).tolist()  # one host sync
    groups = []  # [start, n, side] over the sorted order
    pos = counts[0]  # skip the empty ones (class -1)
    for c, n in enumerate(counts[1:]):
        if n == 0:
            continue
        s = _SIDES[c]
        if groups and groups[-1][1] * (s * s - groups[-1][2] ** 2) < merge:
            groups[-1][1] += n
            groups[-1][2] = s
        else:
            groups.append([pos, n, s])
        pos += n
    out = []
    for start, n, s in groups:
        per = max(1, max_candidates // (s * s))
        for j in range(0, n, per):
            out.append((order[start + j:start + min(n, j + per)], s))
    return out


def _group_inside(coef_g: Tensor, s: int, eps: float, bounds: tuple[Tensor, Tensor] | None = None):
    """Inside test over the padded (G, s, s) boxes: returns (inside (G, s, s) bool, lx (1, 1, s), ly (1, s, 1)).

    ``bounds`` = (bw, bh) of the clipped boxes, only needed where a triangle reaches past the image edge
    (elsewhere the padded candidates beyond the box are outside the triangle anyway).
    """
    ar = torch.arange(s, device=coef_g.device)
    lx = ar.view(1, 1, s)
    ly = ar.view(1, s, 1)
    lxf = lx.to(coef_g.dtype)
    lyf = ly.to(coef_g.dtype)
    c = coef_g[:, :, None, None]
    w1 = (c[:, 0] * lxf) + (c[:, 1] * lyf + c[:, 2])  # (G,1,s) + (G,s,1): one full-size op
    w2 = (c[:, 3] * lxf) + (c[:, 4] * lyf + c[:, 5])
    inside = (w1 >= -eps) & (w2 >= -eps) & ((w1 + w2) <= 1.0 + eps)
    if bounds is not None:
        inside &= (lx < bounds[0][:, None, None]) & (ly < bounds[1][:, None, None])
    return inside, lx, ly


_INF_BITS = 0x7F800000  # float32 +inf
_FAR_BITS = 0x60AD78EC  # float32 1e20: depth keys at or beyond it are empty (real depths are ~1 .. 1e6)
_PENALTY = 1e35  # depth penalty per barycentric unit outside a triangle


# ---------------------------------------------------------------------------------------------------------------
# rasteriser
# ---------------------------------------------------------------------------------------------------------------

def raster_fragments(verts: Tensor, tri: Tensor, H: int, W: int, eps: float, max_candidates: int):
    """Core of :func:`rasterize`, compact output over the covered pixels only.

    Returns:
        pix: (N,) int64 flat indices ``b*H*W + y*W + x`` of the covered pixels (ascending);
        g: (N,) int64 global triangle ids ``b*T + t`` of the winners;
        w: (N, 3) float32 barycentrics of the winners' corners at the pixel centres.
    """
    B = verts.shape[0]
    device = verts.device
    T = tri.shape[0]
    v = verts.float()
    # depth made positive (float32 bit patterns of positive floats sort like the floats); the margin covers
    # the tiny extrapolation allowed by eps
    zfin = torch.nan_to_num(v[..., 2], nan=0.0, posinf=0.0, neginf=0.0)
    z0 = zfin.amin(1, keepdim=True)
    zr = zfin.amax(1, keepdim=True) - z0
    vz = v[..., 2] - z0 + 1.0 + 0.01 * zr
    flat = tri.reshape(-1)
    vt = v.index_select(1, flat).view(B, T, 3, 3)
    zt = vz.index_select(1, flat).reshape(-1, 3)
    p0 = vt[:, :, 0].reshape(-1, 3)
    p1 = vt[:, :, 1].reshape(-1, 3)
    p2 = vt[:, :, 2].reshape(-1, 3)
    bx0, by0, bw, bh, coef, _ = _edge_setup(p0[:, :2], p1[:, :2], p2[:, :2], H, W)
    # depth as an affine function of the box-local offsets
    dz1 = zt[:, 1] - zt[:, 0]
    dz2 = zt[:, 2] - zt[:, 0]
    zc = torch.stack([coef[:, 0] * dz1 + coef[:, 3] * dz2, coef[:, 1] * dz1 + coef[:, 4] * dz2,
                      zt[:, 0] + coef[:, 2] * dz1 + coef[:, 5] * dz2], 1)
    item_ids = torch.arange(B * T, device=device)
    bidx = torch.div(item_ids, T, rounding_mode="floor")
    base = (bidx * H + by0) * W + bx0  # (BT,) flat index of each box origin
    low = item_ids - bidx * T  # triangle index within its mesh
    # per item: affine coefficients of w0, w1, w2 and z over the box-local offsets; then int64 fields
    w0c = torch.stack([-coef[:, 0] - coef[:, 3], -coef[:, 1] - coef[:, 4], 1.0 - coef[:, 2] - coef[:, 5]], 1)
    ftab = torch.cat([w0c, coef, zc], 1)  # (BT, 12)
    itab = torch.stack([bw - 1, bh - 1, base, low, bx0, by0], 1)  # (BT, 6)

    # Candidates are scored with plain arithmetic (no masks: torch.where is slow on CPU): a candidate outside
    # its triangle gets its depth pushed past _FAR by a penalty, so it never wins a pixel and its key decodes
    # as empty; such candidates may therefore land anywhere, and the buffer gets a tail for padded boxes
    # running past the last row.
    empty = (_INF_BITS << 32) | _LOW32
    n_pix = B * H * W
    groups = _box_groups(bw, bh, max_candidates)
    if not groups:
        e = torch.zeros(0, dtype=torch.long, device=device)
        return e, e, torch.zeros(0, 3, device=device)
    s_max = max(s for _, s in groups)
    key = torch.full((n_pix + s_max * W + s_max,), empty, dtype=torch.long, device=device)
    for items, s in groups:
        cg = ftab.index_select(0, items)[:, :, None, None]
        ig = itab.index_select(0, items)
        ar = torch.arange(s, device=device)
        lx = ar.view(1, 1, s)
        ly = ar.view(1, s, 1)
        lxf = lx.to(cg.dtype)
        lyf = ly.to(cg.dtype)

        def affine(j):  # (G,1,s) + (G,s,1): one full-size op
            return (cg[:, j] * lxf) + (cg[:, j + 1] * lyf + cg[:, j + 2])

        m = torch.minimum(torch.minimum(affine(0), affine(3)), affine(6))
        pen = m.neg_().sub_(eps).clamp_(min=0.0)  # > 0 outside the triangle
        if bool(((ig[:, 4] + s > W) | (ig[:, 5] + s > H)).any()):  # a box runs past the image edge
            pen = pen + (lxf - ig[:, 0, None, None]).clamp_(min=0.0) + (lyf - ig[:, 1, None, None]).clamp_(min=0.0)
        z = affine(9).add_(pen, alpha=_PENALTY)
        k = z.view(torch.int32).long().bitwise_left_shift_(32).bitwise_or_(ig[:, 3, None, None])
        pix = ig[:, 2, None, None] + (ly * W + lx)
        key.scatter_reduce_(0, pix.reshape(-1), k.reshape(-1), reduce="amin", include_self=True)

    key = key[:n_pix]
    pix = ((key >> 32) < _FAR_BITS).nonzero().squeeze(1)
    kk = key.index_select(0, pix)
    b = torch.div(pix, H * W, rounding_mode="floor")
    g = b * T + (kk & _LOW32)
    rem = pix - b * (H * W)
    py = torch.div(rem, W, rounding_mode="floor")
    px = (rem - py * W).float()
    py = py.float()

    # exact barycentrics of the winners at the pixel centres: w1 = a1 (x - x0) + b1 (y - y0), same for w2
    gtab = torch.stack([coef[:, 0], coef[:, 1], coef[:, 3], coef[:, 4], p0[:, 0], p0[:, 1]], 1)
    q = gtab.index_select(0, g)
    dx = px - q[:, 4]
    dy = py - q[:, 5]
    w1 = q[:, 0] * dx + q[:, 1] * dy
    w2 = q[:, 2] * dx + q[:, 3] * dy
    w = torch.stack([1.0 - w1 - w2, w1, w2], 1).clamp_(min=0.0)
    return pix, g, w


def rasterize(
    verts: Tensor,
    triangles: Tensor,
    size: tuple[int, int],
    *,
    eps: float = 1e-5,
    max_candidates: int = 1 << 20,
    return_depth: bool = False,
):
    """Z-buffered rasterisation of a batch of triangle meshes that share one topology.

    Args:
        verts: (B, V, 3) vertices in output pixels (x, y) and depth z (smaller = nearer).
        triangles: (T, 3) int64 vertex indices (any winding; degenerate triangles are skipped).
        size: (H, W) of the output.
        eps: inclusive tolerance of the inside test in barycentric units (shared edges have no cracks;
            the z-buffer decides pixels on an edge).
        max_candidates: bound on candidate pixels processed at once (memory).
        return_depth: also return the interpolated depth of the winning triangle.

    Returns:
        tri_id: (B, H, W) int64 index of the nearest covering triangle, -1 where empty.
        bary: (B, H, W, 3) float32 barycentric weights of that triangle's vertices at the pixel centre
            (zeros where empty).
        depth: (B, H, W) float32, +inf where empty (only with ``return_depth``).
    """
    if verts.dim() != 3 or verts.shape[-1] != 3:
        raise ValueError(f"verts must be (B, V, 3), got {tuple(verts.shape)}")
    H, W = int(size[0]), int(size[1])
    B = verts.shape[0]
    tri = triangles.to(device=verts.device, dtype=torch.long)
    T = tri.shape[0]
    pix, g, w = raster_fragments(verts, tri, H, W, eps, max_candidates)
    tri_id = torch.full((B * H * W,), -1, dtype=torch.long, device=verts.device)
    tri_id[pix] = g - torch.div(pix, H * W, rounding_mode="floor") * T
    bary = torch.zeros(B * H * W, 3, dtype=torch.float32, device=verts.device)
    bary[pix] = w
    tri_id = tri_id.view(B, H, W)
    bary = bary.view(B, H, W, 3)
    if not return_depth:
        return tri_id, bary
    zv = verts.float()[..., 2].index_select(1, tri.reshape(-1)).reshape(B * T, 3)
    depth = torch.full((B * H * W,), float("inf"), dtype=torch.float32, device=verts.device)
    depth[pix] = interpolate_corners(zv[:, :, None], g, w)[:, 0]
    return tri_id, bary, depth.view(B, H, W)


def interpolate_corners(table: Tensor, g: Tensor, w: Tensor) -> Tensor:
    """Interpolate per-triangle-corner attributes: table (B*T, 3, C), g (N,), w (N, 3) -> (N, C)."""
    C = table.shape[-1]
    a = table.reshape(table.shape[0], 3 * C).index_select(0, g)
    out = a[:, 0:C] * w[:, 0:1]
    out.addcmul_(a[:, C:2 * C], w[:, 1:2])
    out.addcmul_(a[:, 2 * C:], w[:, 2:3])
    return out


def fill_polygons(
    points: Tensor,
    loops,
    size: tuple[int, int],
    *,
    max_candidates: int = 1 << 20,
) -> Tensor:
    """Hard fill of closed polygons given as landmark index loops (non-zero winding rule, any simple polygon).

    Each loop is fanned into triangles from its first point; every fan triangle adds its orientation sign
    (relative to its loop's orientation) to the pixels it covers, and pixels with a non-zero sum are inside (the
    stencil-buffer polygon fill). Overlapping loops add up whatever their winding, so the result is their union.

    Args:
        points: (B, N, 2+) points in pixels.
        loops: sequence of index loops (L_i,) into the N points; the closing edge is implied.
        size: (H, W).

    Returns:
        (B, H, W) bool, the union of all polygons.
    """
    H, W = int(size[0]), int(size[1])
    B = points.shape[0]
    device = points.device
    out = torch.zeros(B * H * W, dtype=torch.int32, device=device)
    xy = points[..., :2].float()
    fans, orient = [], []
    for loop in loops:
        loop = torch.as_tensor(loop, dtype=torch.long, device=device).reshape(-1)
        if loop.numel() < 3:
            continue
        k = torch.arange(1, loop.numel() - 1, device=device)
        fans.append(torch.stack([loop[0].expand_as(k), loop[k], loop[k + 1]], 1))
        p = xy[:, loop]  # (B, L, 2): shoelace orientation of the loop in each batch item
        a = (p[..., 0] * p.roll(-1, 1)[..., 1] - p.roll(-1, 1)[..., 0] * p[..., 1]).sum(1)
        orient.append(torch.where(a < 0, -1, 1).to(torch.int32)[:, None].expand(B, k.numel()))
    if not fans:
        return out.view(B, H, W).bool()
    tri = torch.cat(fans, 0)
    T = tri.shape[0]
    vt = xy[:, tri]  # (B, T, 3, 2)
    # sample a hair off the pixel centres so that no sample lies exactly on a fan edge (which would be
    # counted by both or neither of the two triangles sharing it)
    bx0, by0, bw, bh, coef, area = _edge_setup(
        vt[:, :, 0].reshape(-1, 2), vt[:, :, 1].reshape(-1, 2), vt[:, :, 2].reshape(-1, 2), H, W,
        offset=(3.1e-4, 2.3e-4))
    sign = torch.sign(area).to(torch.int32) * torch.cat(orient, 1).reshape(-1)
    item_ids = torch.arange(B * T, device=device)
    bidx = torch.div(item_ids, T, rounding_mode="floor")
    base = (bidx * H + by0) * W + bx0
    for items, s in _box_groups(bw, bh, max_candidates):
        inside, lx, ly = _group_inside(coef.index_select(0, items), s, 0.0,
                                       (bw.index_select(0, items), bh.index_select(0, items)))
        pix = base.index_select(0, items)[:, None, None] + (ly * W + lx)
        val = torch.where(inside, sign.index_select(0, items)[:, None, None],
                          torch.zeros_like(inside, dtype=torch.int32))
        pix = torch.where(inside, pix, torch.zeros_like(pix))
        out.index_add_(0, pix.reshape(-1), val.reshape(-1))
    return (out != 0).view(B, H, W)


def fill_loops(points: Tensor, loops: Sequence, size: tuple[int, int]) -> Tensor:
    """The union of the polygons ``loops`` (landmark index loops) of ``points`` (B, N, 2+, pixels) filled on (H, W):
    (B, 1, H, W) float in {0, 1}. On the CPU by OpenCV (a tenth of the cost of :func:`fill_polygons`, whose stencil
    fill runs on any device; OpenCV's also takes the pixels the outline crosses, a pixel more along the edges),
    elsewhere by :func:`fill_polygons`."""
    if points.device.type != "cpu":
        return fill_polygons(points[..., :2].float(), list(loops), size).float()[:, None]
    H, W = int(size[0]), int(size[1])
    canvas = np.zeros((points.shape[0], H, W), np.uint8)
    xy = points[..., :2].detach().double().numpy()
    for b in range(len(canvas)):
        polys = [np.round(xy[b, np.asarray(loop)] * 16).astype(np.int32).reshape(-1, 1, 2) for loop in loops]
        cv2.fillPoly(canvas[b], polys, 1, lineType=cv2.LINE_8, shift=4)
    return torch.from_numpy(canvas).float()[:, None]


def loop_outlines(points: Tensor, loops, size: tuple[int, int]) -> Tensor:
    """The pixels the closed loops' edges pass through: each edge sampled at steps of at most one pixel along
    either axis, every sample rounded to its nearest pixel (an 8-connected line; samples off the image, and edges
    with a non-finite end, are dropped; an edge longer than ``H + W`` px takes ``H + W + 1`` samples). A loop whose
    points all lie on a line -- which :func:`fill_polygons` fills with nothing -- is that line. Each item's
    pixels depend on its own points alone, whatever else is in the batch.

    Args:
        points: (B, N, 2+) points in pixels.
        loops: sequence of index loops (L_i,) into the N points; the closing edge is implied.
        size: (H, W).

    Returns:
        (B, H, W) bool.
    """
    H, W = int(size[0]), int(size[1])
    B = points.shape[0]
    device = points.device
    out = torch.zeros(B, H * W, dtype=torch.uint8, device=device)
    xy = points[..., :2].float()
    for loop in loops:
        loop = torch.as_tensor(loop, dtype=torch.long, device=device).reshape(-1)
        if loop.numel() < 2:
            continue
        start, end = xy[:, loop], xy[:, loop.roll(-1)]  # (B, L, 2) each edge's ends
        # each item's own step count (its longest edge): a batch-wide one moved the samples, and so the rounded
        # pixels, of every other item with the batch's make-up (farm chunks batch frames differently)
        span = torch.nan_to_num((end - start).abs(), nan=0.0, posinf=0.0).amax(dim=(1, 2))  # (B,)
        steps = span.ceil().clamp(max=H + W) + 1
        k = torch.arange(int(steps.max()), device=device, dtype=torch.float32).view(1, 1, -1, 1)
        t = (k / (steps - 1).clamp(min=1).view(B, 1, 1, 1)).clamp(max=1.0)  # past an item's last step: its end
        px = (start[:, :, None] + (end - start)[:, :, None] * t).round().reshape(B, -1, 2)
        px = torch.nan_to_num(px, nan=-1.0, posinf=-1.0, neginf=-1.0)
        ok = (px[..., 0] >= 0) & (px[..., 0] < W) & (px[..., 1] >= 0) & (px[..., 1] < H)
        flat = (px[..., 1].clamp(0, H - 1) * W + px[..., 0].clamp(0, W - 1)).long()
        out.scatter_reduce_(1, flat, ok.to(torch.uint8), reduce="amax")
    return out.view(B, H, W).bool()
