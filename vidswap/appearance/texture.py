"""Texture rendering on the rasterised mesh: which parts of a source photo the photo actually saw (texture
confidence from source-side visibility) and the texture renderer (source photo -> driven mesh, with mirror fill
of unseen parts and supersampling). Conventions: :mod:`vidswap.appearance.raster`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.appearance.raster import interpolate_corners, raster_fragments, rasterize

__all__ = ["render_texture", "triangle_visibility", "texture_confidence", "vertex_confidence_from_triangles"]


# ---------------------------------------------------------------------------------------------------------------
# source-side visibility
# ---------------------------------------------------------------------------------------------------------------

# barycentric sample points per triangle for the visibility test: centroid and three inner points
_VIS_SAMPLES = torch.tensor(
    [[1 / 3, 1 / 3, 1 / 3], [4 / 6, 1 / 6, 1 / 6], [1 / 6, 4 / 6, 1 / 6], [1 / 6, 1 / 6, 4 / 6]],
    dtype=torch.float32)


def triangle_visibility(
    verts: Tensor,
    triangles: Tensor,
    *,
    image_size: tuple[int, int] | None = None,
    resolution: int = 256,
    depth_tol: float = 0.01,
    grazing: tuple[float, float] = (0.05, 0.35),
) -> Tensor:
    """How well each triangle is seen in the image its vertices were measured in, in [0, 1].

    Combines (a) occlusion: the fraction of 4 sample points per triangle that are not behind another part of
    the same mesh (z-buffer of the mesh rasterised at ``resolution`` around its bounding box), (b) facing:
    a ramp on the cosine between the triangle normal and the view axis (0 for back-facing and grazing
    triangles, whose texture is missing or badly stretched), and (c) optionally, whether the samples fall
    inside the image.

    Which winding is "front" is taken per mesh from the sign that covers most projected area, so the
    triangle winding convention of the topology does not matter.

    Args:
        verts: (B, V, 3) vertices in the source image's pixels (z: smaller = nearer).
        triangles: (T, 3) int64.
        image_size: (H, W) of the source image; samples outside it count as invisible.
        resolution: side of the visibility z-buffer (the face's bounding box is fitted into it).
        depth_tol: occlusion tolerance as a fraction of the bounding-box size.
        grazing: (lo, hi) cosine ramp for the facing term.

    Returns:
        (B, T) float32 visibility.
    """
    device = verts.device
    tri = triangles.to(device=device, dtype=torch.long)
    v = verts.float()
    B = v.shape[0]
    used = torch.unique(tri)
    lo = v[:, used, :2].amin(1)  # (B, 2)
    hi = v[:, used, :2].amax(1)
    extent = (hi - lo).amax(1).clamp(min=1e-6)  # (B,)
    scale = (resolution - 3) / extent
    vn = torch.cat([(v[..., :2] - lo[:, None]) * scale[:, None, None] + 1.0,
                    v[..., 2:3] * scale[:, None, None]], -1)
    tri_id, _, depth = rasterize(vn, tri, (resolution, resolution), return_depth=True)

    q = vn[:, tri]  # (B, T, 3, 3)
    e1 = q[:, :, 1] - q[:, :, 0]
    e2 = q[:, :, 2] - q[:, :, 0]
    n = torch.cross(e1, e2, dim=-1)
    nz = n[..., 2]
    # the winding seen at the pixels the z-buffer keeps is the front winding (works for open and closed meshes)
    covered = tri_id >= 0
    win_sign = torch.sign(torch.gather(nz, 1, tri_id.clamp(min=0).view(B, -1))) * covered.view(B, -1)
    front_sign = torch.sign(win_sign.sum(1, keepdim=True))
    front_sign = torch.where(front_sign == 0, torch.ones_like(front_sign), front_sign)
    cos = front_sign * nz / n.norm(dim=-1).clamp(min=1e-12)
    facing = ((cos - grazing[0]) / (grazing[1] - grazing[0])).clamp(0.0, 1.0)

    samples = _VIS_SAMPLES.to(device)
    sp = torch.einsum("sk,btkc->btsc", samples, q)  # (B, T, S, 3)
    px = sp[..., 0].round().long()
    py = sp[..., 1].round().long()
    inb = (px >= 0) & (px < resolution) & (py >= 0) & (py < resolution)
    pxc = px.clamp(0, resolution - 1)
    pyc = py.clamp(0, resolution - 1)
    bidx = torch.arange(B, device=device)[:, None, None]
    zbuf = depth[bidx, pyc, pxc]
    owner = tri_id[bidx, pyc, pxc]
    # the sample triangle's own plane evaluated at the pixel centre (compare like with like)
    area = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    safe = torch.where(area.abs() > 1e-9, area, torch.ones_like(area))
    gx = (e1[..., 2] * e2[..., 1] - e2[..., 2] * e1[..., 1]) / safe
    gy = (e2[..., 2] * e1[..., 0] - e1[..., 2] * e2[..., 0]) / safe
    z_self = sp[..., 2] + gx[..., None] * (pxc.float() - sp[..., 0]) + gy[..., None] * (pyc.float() - sp[..., 1])
    own = owner == torch.arange(tri.shape[0], device=device)[None, :, None]
    tol = depth_tol * resolution
    seen = inb & (own | (z_self <= zbuf + tol))
    if image_size is not None:
        Hs, Ws = image_size
        spo = torch.einsum("sk,btkc->btsc", samples, v[:, tri])
        seen = seen & (spo[..., 0] >= -0.5) & (spo[..., 0] <= Ws - 0.5) & (spo[..., 1] >= -0.5) \
            & (spo[..., 1] <= Hs - 0.5)
    frac = seen.float().mean(-1)
    return frac * facing


def vertex_confidence_from_triangles(tri_conf: Tensor, triangles: Tensor, num_vertices: int) -> Tensor:
    """Average per-triangle values onto vertices: (B, T) -> (B, V); vertices in no triangle get 1."""
    device = tri_conf.device
    tri = triangles.to(device=device, dtype=torch.long)
    B = tri_conf.shape[0]
    acc = torch.zeros(B, num_vertices, device=device)
    cnt = torch.zeros(num_vertices, device=device)
    flat = tri.reshape(-1)
    acc.index_add_(1, flat, tri_conf.float().repeat_interleave(3, dim=1))
    cnt.index_add_(0, flat, torch.ones_like(flat, dtype=torch.float32))
    out = acc / cnt.clamp(min=1)
    return torch.where(cnt[None] > 0, out, torch.ones_like(out))


def texture_confidence(
    src_verts: Tensor,
    triangles: Tensor,
    *,
    image_size: tuple[int, int] | None = None,
    resolution: int = 256,
) -> Tensor:
    """Per-vertex texture confidence of a source photo: (B, V, 3) source landmarks -> (B, V) in [0, 1].

    Triangles that are hidden, back-facing, grazing or off-image in the source get low confidence
    (:func:`triangle_visibility`); vertex values are the mean over the adjacent triangles, so a confidence map
    interpolated with barycentrics is continuous across triangle edges. Compute once per source photo.
    """
    tri_vis = triangle_visibility(src_verts, triangles, image_size=image_size, resolution=resolution)
    return vertex_confidence_from_triangles(tri_vis, triangles, src_verts.shape[1])


# ---------------------------------------------------------------------------------------------------------------
# texture renderer
# ---------------------------------------------------------------------------------------------------------------

def _sample_flat(image: Tensor, uv: Tensor, pix: Tensor, hw: int) -> Tensor:
    """Bilinear samples (C, N) of (B or 1, C, Hs, Ws) at pixel positions uv (N, 2); pixel n belongs to batch item
    ``pix[n] // hw`` (``pix`` ascending)."""
    Hs, Ws = image.shape[-2:]
    scale = torch.tensor([2.0 / max(Ws - 1, 1), 2.0 / max(Hs - 1, 1)], device=uv.device)
    grid = (uv * scale - 1.0).to(image.dtype)
    if image.shape[0] == 1:
        out = F.grid_sample(image, grid[None, None], mode="bilinear", padding_mode="border", align_corners=True)
        return out[0, :, 0]
    bounds = torch.searchsorted(pix, torch.arange(image.shape[0] + 1, device=pix.device) * hw).tolist()
    parts = []
    for b in range(image.shape[0]):
        lo, hi = bounds[b], bounds[b + 1]
        if hi > lo:
            o = F.grid_sample(image[b:b + 1], grid[None, None, lo:hi], mode="bilinear", padding_mode="border",
                              align_corners=True)
            parts.append(o[0, :, 0])
    return torch.cat(parts, 1) if parts else uv.new_zeros(image.shape[1], 0)


def _with_texture_gain(color: Tensor, gain: Tensor, uv: Tensor, size: tuple[int, int], pix: Tensor, hw: int,
                       keep: Tensor | None) -> Tensor:
    """The sampled colour (C, N) with its first K channels faded by ``keep`` (N,) (or None) and multiplied by
    ``gain`` (B or 1, K, u, u) sampled at the texture positions ``uv`` (N, 2) of a (Hs, Ws) = ``size`` texture,
    scaled to the gain's side (texel centres at integers: position x of side n is x (m - 1) / (n - 1) of side m)."""
    K = gain.shape[1]
    head = color[:K]
    if keep is not None:
        keep = keep.to(color.dtype)
        head = torch.where(keep < 1.0 - 1e-6, (head - 1.0) * keep + 1.0, head)
    scale = torch.tensor([(gain.shape[-1] - 1) / max(int(size[1]) - 1, 1),
                          (gain.shape[-2] - 1) / max(int(size[0]) - 1, 1)], device=uv.device, dtype=uv.dtype)
    head = head * _sample_flat(gain.to(color.dtype), uv * scale, pix, hw)
    return torch.cat([head, color[K:]], 0)


def _corner_table(values: Tensor, tri: Tensor) -> Tensor:
    """Per-vertex values (B, V, C) -> per-triangle-corner table (B*T, 3, C)."""
    B, _, C = values.shape
    T = tri.shape[0]
    return values.index_select(1, tri.reshape(-1)).view(B * T, 3, C)


def render_texture(
    src_image: Tensor,
    src_uv: Tensor,
    verts_driven: Tensor,
    triangles: Tensor,
    size: tuple[int, int],
    *,
    mirror: Tensor | None = None,
    vertex_confidence: Tensor | None = None,
    vertex_gain: Tensor | None = None,
    texture_gain: Tensor | None = None,
    vertex_keep: Tensor | None = None,
    supersample: int = 1,
    feather: bool = True,
    return_confidence: bool = False,
    max_candidates: int = 1 << 20,
):
    """Render the source photo's texture on the driven mesh.

    For each output pixel covered by the driven mesh (z-buffered, nearest wins) the barycentrics of the
    covering triangle interpolate the source position of the same surface point, which is sampled bilinearly
    (``grid_sample``, pixel centres at integer coordinates).

    Source self-occlusion: with per-vertex source confidences (``vertex_confidence``, or computed here by
    :func:`texture_confidence` when ``src_uv`` carries the source depth as a third column) and a ``mirror`` map,
    surface points that were hidden, back-facing or grazing in the source photo take their texture from the
    left/right mirrored point instead, blended smoothly: ``w_self = a / (a + b (1 - a))`` with ``a`` and ``b``
    the interpolated confidences of the point and of its mirror partner. A point that is poor on both sides
    keeps its own texture. The returned confidence is ``a + b (1 - a)``.

    Args:
        src_image: (B, C, Hs, Ws) float source image(s); a batch of 1 is broadcast.
        src_uv: (B, V, 2) source pixel position of every vertex, or (B, V, 3) with source depth; a batch of 1
            is broadcast.
        verts_driven: (B, V, 3) vertices in output pixels, z smaller = nearer.
        triangles: (T, 3) int64.
        size: (H, W) of the output crop.
        mirror: (V,) int64 left/right partner of every vertex, or None (no fill).
        vertex_confidence: (B, V) or (1, V) source texture confidence in [0, 1], or None.
        vertex_gain: (B or 1, V, K) per-vertex factors interpolated over the driven mesh (Gouraud) and multiplied
            into the first K channels of the sampled colour (e.g. per-vertex shading), or None.
        texture_gain: (B or 1, K, u, u) factors over the same layout as ``src_image`` (a square texture whose
            layout scales with its side - 1, :func:`~vidswap.appearance.texture_space.build_texture_space`) at
            their own size, sampled bilinearly at the same surface points and multiplied into the first K channels
            (a frame's smooth light on a finer detail texture: the product is never made at the detail's size), or
            None.
        vertex_keep: (B, V) in [0, 1], or None: how much of the first K channels' departure from 1 each vertex
            keeps (K: ``texture_gain``'s channels, which it needs), interpolated over the driven mesh and applied
            before the gains, ``1 + (c - 1) x keep`` (a detail layer faded toward plain); where it interpolates to
            1 (within 1e-6) the colour is left exactly as sampled.
        supersample: render at ``supersample`` x resolution and box-filter (anti-aliased colour and alpha).
        feather: with ``supersample == 1``, soften alpha on the 1-px rim inside the silhouette
            (covered rim pixels get 0.5..1 by the covered fraction of their 3x3 neighbourhood).
        return_confidence: also return the texture confidence map.

    Returns:
        crop: (B, C, H, W) rendered texture, 0 outside the mesh.
        alpha: (B, 1, H, W) coverage in [0, 1].
        confidence: (B, 1, H, W) texture confidence after the mirror fill, 0 outside the mesh
            (only with ``return_confidence``; all ones inside when no confidence is known).
    """
    H, W = int(size[0]), int(size[1])
    if verts_driven.dim() != 3 or verts_driven.shape[-1] != 3:
        raise ValueError(f"verts_driven must be (B, V, 3), got {tuple(verts_driven.shape)}")
    B, V, _ = verts_driven.shape
    device = verts_driven.device
    tri = triangles.to(device=device, dtype=torch.long)
    src_image = src_image.to(device)
    if src_image.shape[0] not in (1, B):
        raise ValueError(f"src_image batch {src_image.shape[0]} is neither 1 nor {B}")
    if src_image.shape[0] == B and B > 1 and src_image.stride(0) == 0:
        src_image = src_image[:1]  # an expanded single texture: sample it once
    src_uv = src_uv.to(device=device, dtype=torch.float32)
    if src_uv.shape[0] != B:
        src_uv = src_uv.expand(B, *src_uv.shape[1:])

    if vertex_confidence is None and mirror is not None and src_uv.shape[-1] >= 3:
        vertex_confidence = texture_confidence(src_uv[:1] if src_uv.stride(0) == 0 else src_uv, tri,
                                               image_size=tuple(src_image.shape[-2:]))
    use_mirror = mirror is not None and vertex_confidence is not None

    ss = max(int(supersample), 1)
    v = verts_driven.float()
    if ss > 1:  # hi-res pixel j has its centre at low-res coordinate (j + 0.5) / ss - 0.5
        v = torch.cat([(v[..., :2] + 0.5) * ss - 0.5, v[..., 2:3] * ss], -1)
    Hr, Wr = H * ss, W * ss
    pix, g, w = raster_fragments(v, tri, Hr, Wr, 1e-5, max_candidates)

    # one gather of everything the covered pixels need: uv (+ confidence, mirrored uv and confidence)
    cols = [src_uv[..., :2]]
    if vertex_confidence is not None:
        vc = vertex_confidence.to(device=device, dtype=torch.float32).clamp(0, 1)
        vc = vc.expand(B, V) if vc.shape[0] != B else vc
        cols.append(vc[..., None])
    if use_mirror:
        m = torch.as_tensor(mirror, device=device, dtype=torch.long)[:V]
        cols.append(src_uv[..., :2].index_select(1, m))
        cols.append(vc.index_select(1, m)[..., None])
    n_uv = sum(c.shape[-1] for c in cols)
    if vertex_keep is not None:
        if texture_gain is None:
            raise ValueError("vertex_keep needs texture_gain (the channels it fades)")
        cols.append(vertex_keep.to(device=device, dtype=torch.float32).expand(B, V)[..., None])
    n_keep = n_uv + (vertex_keep is not None)
    if vertex_gain is not None:
        cols.append(vertex_gain.to(device=device, dtype=torch.float32).expand(B, V, -1))
    attrs = interpolate_corners(_corner_table(torch.cat(cols, -1), tri), g, w)  # (N, C)

    color = _sample_flat(src_image, attrs[:, 0:2], pix, Hr * Wr)  # (C, N)
    conf = None
    if vertex_confidence is not None:
        a = attrs[:, 2].clamp(0, 1)
        conf = a
        if use_mirror:
            b = attrs[:, 5].clamp(0, 1)
            gain = b * (1 - a)
            w_self = (a + 1e-6) / (a + gain + 1e-6)
            if bool((w_self < 0.999).any()):
                color_m = _sample_flat(src_image, attrs[:, 3:5], pix, Hr * Wr)
                color = color_m.add_((color - color_m).mul_(w_self.to(color.dtype)))
            conf = a + gain
    if texture_gain is not None:
        color = _with_texture_gain(color, texture_gain.to(device), attrs[:, 0:2], src_image.shape[-2:], pix,
                                   Hr * Wr, attrs[:, n_uv] if vertex_keep is not None else None)
    if vertex_gain is not None:  # the first channels of the colour times the interpolated per-vertex factors
        factors = attrs[:, n_keep:].T.to(color.dtype)
        color = torch.cat([color[: len(factors)] * factors, color[len(factors):]], 0)

    # scatter the covered pixels into dense (B, C, H, W) images
    hw = Hr * Wr
    b_of = torch.div(pix, hw, rounding_mode="floor")
    yx = pix - b_of * hw

    def dense(values: Tensor) -> Tensor:  # (K, N) -> (B, K, Hr, Wr)
        K = values.shape[0]
        idx = (b_of * (K * hw) + yx)[None] + (torch.arange(K, device=device) * hw)[:, None]
        out = torch.zeros(B * K * hw, dtype=values.dtype, device=device)
        out.scatter_(0, idx.reshape(-1), values.reshape(-1))
        return out.view(B, K, Hr, Wr)

    color = dense(color)
    extra = dense(torch.stack([torch.ones_like(attrs[:, 0]), conf if conf is not None else torch.ones_like(
        attrs[:, 0])]).to(color.dtype))
    cov = extra[:, 0:1]
    conf = extra[:, 1:2]
    if ss > 1:
        alpha = F.avg_pool2d(cov, ss)
        inv = 1.0 / alpha.clamp(min=1e-6)
        color = F.avg_pool2d(color, ss) * inv
        conf = F.avg_pool2d(conf, ss) * inv
    elif feather:
        # a covered pixel on the rim has its centre inside, so its true coverage is in [0.5, 1]:
        # 0.5 + 0.5 * (covered fraction of its 3x3 neighbourhood; outside the image counts as covered)
        frac = _box3_replicate(cov) * (1.0 / 9.0)
        alpha = cov * torch.where(frac >= 1.0 - 1e-6, torch.ones_like(frac), 0.5 + 0.5 * frac)
    else:
        alpha = cov
    if return_confidence:
        return color, alpha, conf
    return color, alpha


def _box3_replicate(x: Tensor) -> Tensor:
    """3x3 box sum of (B, 1, H, W) with replicated borders (slices only; padding ops are slow on CPU)."""
    r = x.clone()
    r[..., :, 1:] += x[..., :, :-1]
    r[..., :, :-1] += x[..., :, 1:]
    r[..., :, 0] += x[..., :, 0]
    r[..., :, -1] += x[..., :, -1]
    out = r.clone()
    out[..., 1:, :] += r[..., :-1, :]
    out[..., :-1, :] += r[..., 1:, :]
    out[..., 0, :] += r[..., 0, :]
    out[..., -1, :] += r[..., -1, :]
    return out
