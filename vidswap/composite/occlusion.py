"""The skin-colour occlusion test: a robust Gaussian model of the face's skin colour in CIE LAB, fitted on the
skin sample region, marks what is not skin inside the face (hands, hair, props) so the plate keeps it.

A face under two lights -- a hard shadow edge across it, a warm key on one side and a cool fill on the other -- shows
its skin in two colours. One Gaussian took the larger part (or, with the face cut near its middle, sat between the two
and fitted neither) and the rest of the face read as an occluder: the plate showed through over part of the swapped
face, and the colour match's statistics, taken where the face is visible, left that part out. So where the skin
samples spread wide or many lie beyond the model, they are split between two means, and the two parts are kept as
skin under two lights when both are large and far apart, both reach below the eyes (cheeks, nose, chin, where a
fringe or hair over the temples does not), they lie side by side rather than one above the other (a light falls from
one side; a fringe, a beard or a face mask covers the face from above or below), and their textures are alike (the
local contrast of the log luma; hair and beards are strands).
:func:`skin_distance` is then the nearest of the two models and of their blends (:data:`MIX_STEPS`: along a
shadow's edge the skin is lit by a mix of both). A face under one light is tested as before, bit for bit.

Masks are float ``(B, 1, H, W)`` in [0, 1] on the device of their inputs (conventions:
:mod:`vidswap.composite.masks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from vidswap.composite.filters import dilate, erode, gaussian_blur, in_window, per_item
from vidswap.composite.lab import rgb_to_lab


#: where a face has skin under two lights, the blends between them tested as skin too (the first light's model at 0,
#: the second's at 1): the pixels along a shadow's edge, lit by a mix of both
MIX_STEPS = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class OcclusionParams:
    """Skin-colour occlusion test (distances are Mahalanobis distances in CIE LAB).

    Attributes:
        sample_erosion: the skin sample region is the skin mask eroded by this fraction of the face size
            (cheeks, forehead, nose; away from hairline, jaw and features).
        keep_below: distance under which a pixel counts as skin (visibility 1).
        drop_above: distance over which a pixel counts as occluder (visibility 0); linear in between.
        trim: samples further than this are dropped when refitting the robust skin model.
        iterations: robust refits after the median/MAD start.
        min_std: floor on the model's per-channel std (L, a, b units), so a very flat face is not over-strict.
        luma_slack: the L std is multiplied by this (shading is not occlusion).
        open_radius: opening (erode then dilate) of the occluder map removes specks smaller than this fraction
            of the face size (pores, highlights).
        grow: occluders are grown by this fraction of the face size (covers their soft edges).
        soften: blur sigma of the final visibility, fraction of the face size.
        min_samples: fewer sample pixels than this and the model is invalid (visibility 1 everywhere).
        max_fit_pixels: the model is fitted on a regular subsample of at most about this many pixels.
        second_share, second_apart: where at least half ``second_share`` of the samples lie beyond ``keep_below``
            of the skin model, or the model's standard deviation along its main axis reaches half ``second_apart``,
            the samples are split in two (two means); when each part holds at least
            ``second_share`` of them and their means are at least ``second_apart`` apart (CIE76 delta E: one light's
            skin splits into halves ~10 apart), a model is fitted to each (0 share: never) ...
        second_below: ... and both are kept (skin under two lights) when at least this share of each part lies
            below the eyes and the parts lie side by side (their centroids further apart across the face than up
            and down it: hair over the forehead, a beard or a face mask covers the face from above or below) ...
        second_texture: ... and the rougher part's median local contrast (log luma against its blur of sigma 1 px)
            is at most this many times the smoother's (plus 0.01: film grain on a smooth face).
    """

    sample_erosion: float = 0.06
    keep_below: float = 4.5
    drop_above: float = 6.5
    trim: float = 3.0
    iterations: int = 3
    min_std: tuple[float, float, float] = (2.0, 1.0, 1.0)
    luma_slack: float = 1.5
    open_radius: float = 0.015
    grow: float = 0.01
    soften: float = 0.004
    min_samples: int = 32
    max_fit_pixels: int = 65536
    second_share: float = 0.2
    second_apart: float = 20.0
    second_below: float = 0.3
    second_texture: float = 2.0


@dataclass(frozen=True)
class SkinModel:
    """Robust Gaussian model of a face's skin colour in LAB.

    Attributes:
        mean: ``(B, 3)`` LAB mean.
        cov: ``(B, 3, 3)`` LAB covariance (floors and luma slack applied).
        valid: ``(B,)`` bool, enough samples to trust the model.
        second_mean, second_cov, second: the skin under a second light (see the module docstring): ``(B, 3)``,
            ``(B, 3, 3)`` and ``(B,)`` bool, where each face has one; None: no face has.
    """

    mean: torch.Tensor
    cov: torch.Tensor
    valid: torch.Tensor
    second_mean: torch.Tensor | None = None
    second_cov: torch.Tensor | None = None
    second: torch.Tensor | None = None



def _masked_median_mad(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row median and MAD of ``x (R, N)`` over entries with ``w (R, N) > 0.5``."""
    inside = w > 0.5
    med, ks = _lower_median(x, inside)
    big = torch.finfo(x.dtype).max
    dev = torch.where(inside, (x - med[:, None]).abs(), torch.full_like(x, big))
    mad = _kth(dev, ks)
    return med, mad


def _lower_median(x: torch.Tensor, inside: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Per-row lower median of ``x (R, N)`` over the entries ``inside (R, N)`` (bool; a row with none gives the
    dtype's largest value), and its rank (1-based) per row."""
    n = inside.sum(dim=1).clamp(min=1)
    big = torch.finfo(x.dtype).max
    ks = ((n - 1) // 2 + 1).tolist()  # the lower median's rank (1-based) per row
    return _kth(torch.where(inside, x, torch.full_like(x, big)), ks), ks


def _kth(x: torch.Tensor, ks: list[int]) -> torch.Tensor:
    """``(R,)`` the ``ks[r]``-th smallest value (1-based) of each row of ``x (R, N)``: an order statistic, the
    same value a sort would put there, without sorting the row."""
    return torch.stack([row.kthvalue(k).values for row, k in zip(x, ks)])


def fit_skin_model(
    image: torch.Tensor, sample_mask: torch.Tensor, params: OcclusionParams = OcclusionParams(),
    below_eyes: torch.Tensor | None = None,
) -> SkinModel:
    """Fit a robust LAB colour model to the skin under ``sample_mask``.

    Starts from the per-channel median / MAD of the samples, then refits mean and full covariance on the
    samples within ``params.trim`` Mahalanobis distance, ``params.iterations`` times, so a minority of
    non-skin samples (hair, a hand over a cheek) does not bend the model. With ``below_eyes``, a second model for
    the skin under a second light (module docstring; ``params.second_share``).

    Args:
        image: ``(B, 3, H, W)`` RGB in [0, 1].
        sample_mask: ``(B, 1, H, W)``; pixels with value > 0.5 are samples.
        below_eyes: ``(B, 1, H, W)``, 1 below the eyes (:func:`~vidswap.composite.masks.below_eyes`), or None (no
            second model).

    Returns:
        :class:`SkinModel` with ``mean (B, 3)``, ``cov (B, 3, 3)``, ``valid (B,)``.
    """
    b, _, h, w_ = image.shape
    step = max(1, int(np.ceil(np.sqrt(h * w_ / params.max_fit_pixels))))  # a regular subsample is plenty
    full = image
    image, sample_mask = image[..., ::step, ::step], sample_mask[..., ::step, ::step]
    lab = rgb_to_lab(image.clamp(0.0, 1.0)).reshape(b, 3, -1)  # (B, 3, N)
    w = (sample_mask.reshape(b, 1, -1) > 0.5).to(lab.dtype)  # (B, 1, N)
    count = w.sum(dim=(1, 2))
    floor = torch.tensor(params.min_std, device=lab.device, dtype=lab.dtype)
    mean, cov = _robust_gaussian(lab, w, params, floor)
    slack = torch.tensor([params.luma_slack, 1.0, 1.0], device=lab.device, dtype=lab.dtype)
    slack = slack[:, None] * slack[None, :]  # the luma slack, as a factor of each covariance entry
    model = SkinModel(mean=mean, cov=cov * slack, valid=count >= params.min_samples)
    if below_eyes is None or params.second_share <= 0:
        return model
    # where many samples lie beyond the model's skin (a face under one light: a few per cent), or the model spreads
    # over half of ``second_apart`` (one standard deviation along its main axis: it took both lights' skin), the
    # samples are split between two means: one light's skin splits into two halves a few L* apart, two lights'
    # into two groups far apart
    beyond = (w[:, 0] * (_mahalanobis2(lab, model.mean, model.cov) > params.keep_below ** 2)).sum(dim=1)
    spread = torch.linalg.eigvalsh(cov)[:, -1].clamp(min=0.0).sqrt()
    wide = (beyond >= 0.5 * params.second_share * count) | (spread >= 0.5 * params.second_apart)
    if not bool((model.valid & wide).any()):
        return model
    first, second = _two_means(lab, w[:, 0], model.mean, model.cov)
    n1, n2 = first.sum(dim=1), second.sum(dim=1)
    apart = (_centroid(lab, first, n1) - _centroid(lab, second, n2)).norm(dim=1) >= params.second_apart
    big = torch.minimum(n1, n2) >= torch.clamp(params.second_share * count, min=float(params.min_samples))
    candidates = model.valid & wide & apart & big  # each face's own test (a batch's faces do not change it)
    if not bool(candidates.any()):
        return model
    mean1, cov1 = _robust_gaussian(lab, first[:, None], params, floor)
    mean2, cov2 = _robust_gaussian(lab, second[:, None], params, floor)
    cov1, cov2 = cov1 * slack, cov2 * slack
    low = (below_eyes[..., ::step, ::step].reshape(b, -1) > 0.5).to(lab.dtype)
    reaches = torch.minimum((first * low).sum(dim=1) / n1.clamp(min=1.0),
                            (second * low).sum(dim=1) / n2.clamp(min=1.0)) >= params.second_below
    # side by side, not one above the other: a light falls on a face from one side; hair over the forehead, a beard
    # or a face mask covers it from above or below
    rows, cols = torch.meshgrid(torch.arange(image.shape[-2], device=lab.device, dtype=lab.dtype),
                                torch.arange(image.shape[-1], device=lab.device, dtype=lab.dtype), indexing="ij")
    where = torch.stack([cols.reshape(-1), rows.reshape(-1)])  # (2, N): x, y of the samples
    apart_xy = (_centroid(where, first, n1) - _centroid(where, second, n2)).abs()  # (B, 2)
    reaches = reaches & (apart_xy[:, 0] > apart_xy[:, 1])
    contrast = local_contrast(full)[..., ::step, ::step].reshape(b, -1)  # (B, N)
    t1, t2 = _masked_median(contrast, first), _masked_median(contrast, second)
    smooth = torch.maximum(t1, t2) <= params.second_texture * torch.minimum(t1, t2) + 0.01
    two = candidates & reaches & smooth
    if not bool(two.any()):
        return model
    k = two[:, None]
    return SkinModel(mean=torch.where(k, mean1, model.mean), cov=torch.where(k[:, :, None], cov1, model.cov),
                     valid=model.valid, second_mean=mean2, second_cov=cov2, second=two)


def _centroid(x: torch.Tensor, mask: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` (B, C, N) or (C, N) over each row's samples ``mask (B, N)`` (0/1), their ``count (B,)``
    given: ``(B, C)`` (0 where there are none)."""
    return (x * mask[:, None]).sum(2) / count[:, None].clamp(min=1.0)


def _two_means(lab: torch.Tensor, w: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, rounds: int = 6,
               stride: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples ``w (B, N)`` > 0.5 of ``lab (B, 3, N)`` split between two means: Lloyd's iterations on every
    ``stride``-th sample from ``mean (B, 3)`` -/+ one standard deviation along the main axis of ``cov (B, 3, 3)``,
    then every sample to the nearer. Returns the two (B, N) 0/1 sample masks."""
    values, vectors = torch.linalg.eigh(cov)
    axis = vectors[:, :, -1] * values[:, -1:].clamp(min=0.0).sqrt()  # (B, 3)
    c1, c2 = mean - axis, mean + axis
    sub, inside = lab[..., ::stride], w[:, ::stride] > 0.5
    for _ in range(rounds):
        nearer = ((sub - c1[:, :, None]) ** 2).sum(1) <= ((sub - c2[:, :, None]) ** 2).sum(1)  # (B, n)
        a, b = (inside & nearer).to(lab.dtype), (inside & ~nearer).to(lab.dtype)
        na, nb = a.sum(1, keepdim=True), b.sum(1, keepdim=True)
        c1 = torch.where(na > 0, (sub * a[:, None]).sum(2) / na.clamp(min=1), c1)
        c2 = torch.where(nb > 0, (sub * b[:, None]).sum(2) / nb.clamp(min=1), c2)
    nearer = ((lab - c1[:, :, None]) ** 2).sum(1) <= ((lab - c2[:, :, None]) ** 2).sum(1)
    inside = w > 0.5
    return (inside & nearer).to(lab.dtype), (inside & ~nearer).to(lab.dtype)


def _robust_gaussian(lab: torch.Tensor, w: torch.Tensor, params: OcclusionParams, floor: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The robust mean ``(B, 3)`` and covariance ``(B, 3, 3)`` of ``lab (B, 3, N)`` over the samples ``w (B, 1, N)``
    > 0.5: the per-channel median / MAD, then ``params.iterations`` refits within ``params.trim``."""
    b = lab.shape[0]
    med, mad = _masked_median_mad(lab.reshape(b * 3, -1), w.expand(-1, 3, -1).reshape(b * 3, -1))
    std0 = torch.maximum(1.4826 * mad.reshape(b, 3), floor)
    mean = med.reshape(b, 3)
    cov = torch.diag_embed(std0**2)
    for _ in range(max(0, params.iterations)):
        d2 = _mahalanobis2(lab, mean, cov)  # (B, N)
        wi = w[:, 0] * (d2 < params.trim**2).to(lab.dtype)
        n = wi.sum(dim=1).clamp(min=1.0)
        mean_new = (lab * wi[:, None]).sum(dim=2) / n[:, None]
        xc = (lab - mean_new[:, :, None]) * wi[:, None].sqrt()
        cov_new = xc @ xc.transpose(1, 2) / n[:, None, None]
        ok = (wi.sum(dim=1) >= params.min_samples)[:, None]
        mean = torch.where(ok, mean_new, mean)
        cov = torch.where(ok[:, :, None], cov_new, cov)
        cov = _regularise(cov, floor)
    return mean, cov


def local_contrast(image: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` RGB in [0, 1] -> ``(B, 1, H, W)``: the log luma's departure from its Gaussian blur of sigma
    1 px (absolute): the texture a strand of hair has and skin, lit or in shadow, has not."""
    rgb = image.clamp(0.0, 1.0)
    luma = (0.2126 * rgb[:, :1] + 0.7152 * rgb[:, 1:2] + 0.0722 * rgb[:, 2:3]).clamp(min=1.0 / 255.0).log()
    return (luma - gaussian_blur(luma, 1.0)).abs()


def _masked_median(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the lower median of each row of ``x (B, N)`` over entries with ``w (B, N) > 0.5`` (0 for none)."""
    inside = w > 0.5
    med, _ = _lower_median(x, inside)
    return torch.where(inside.any(dim=1), med, torch.zeros_like(med))


def _regularise(cov: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Raise each variance to at least ``floor**2`` (adds to the diagonal)."""
    diag = torch.diagonal(cov, dim1=1, dim2=2)
    add = (floor**2 - diag).clamp(min=0.0)
    return cov + torch.diag_embed(add) + 1e-6 * torch.eye(3, device=cov.device, dtype=cov.dtype)


def _mahalanobis2(lab: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distance of ``lab (B, 3, N)`` to ``(mean (B,3), cov (B,3,3))`` -> ``(B, N)``."""
    inv = torch.linalg.inv(cov)
    xc = lab - mean[:, :, None]
    return (xc * (inv @ xc)).sum(dim=1)


def skin_distance(image: torch.Tensor, model: SkinModel) -> torch.Tensor:
    """Mahalanobis distance of every pixel's LAB colour to the skin model.

    Args:
        image: ``(B, 3, H, W)`` RGB in [0, 1].
        model: from :func:`fit_skin_model`.

    Returns:
        ``(B, 1, H, W)`` distances (0 where the model is invalid).
    """
    b, _, h, w = image.shape
    lab = rgb_to_lab(image.clamp(0.0, 1.0)).reshape(b, 3, -1)
    d2 = _mahalanobis2(lab, model.mean, model.cov)
    if model.second is not None:  # the nearest of the two lights' skin and their blends (a shadow's soft edge)
        for t in MIX_STEPS:
            mean = model.mean + t * (model.second_mean - model.mean)
            cov = model.cov + t * (model.second_cov - model.cov)
            d2 = torch.where(model.second[:, None], torch.minimum(d2, _mahalanobis2(lab, mean, cov)), d2)
    d = d2.clamp(min=0.0).sqrt()
    d = torch.where(model.valid[:, None], d, torch.zeros_like(d))
    return d.reshape(b, 1, h, w)


def occlusion_visibility(
    image: torch.Tensor,
    face_mask: torch.Tensor,
    model: SkinModel,
    size: torch.Tensor | float,
    protect: torch.Tensor | None = None,
    params: OcclusionParams = OcclusionParams(),
) -> torch.Tensor:
    """Visibility of the face (1) versus something in front of it (0), from skin colour.

    Pixels inside ``face_mask`` whose colour is far from the skin model are occluders, except inside
    ``protect`` (eyes, brows, mouth: not skin coloured, but part of the face). Specks smaller than
    ``open_radius`` are removed, occluders are grown by ``grow`` and the result is softened.

    Args:
        image: ``(B, 3, H, W)`` the *target* image (what is in front of the actor's face).
        face_mask: ``(B, 1, H, W)`` where to look.
        model: skin model of the same faces.
        size: ``(B,)`` face sizes in pixels.
        protect: ``(B, 1, H, W)`` regions never tested.

    Returns:
        ``(B, 1, H, W)`` visibility in [0, 1]; multiply it into the alpha.
    """
    b = image.shape[0]
    fs = per_item(size, b, image.device)
    r_open = torch.round(fs * params.open_radius)
    r_grow = torch.round(fs * params.grow)
    soft = fs * params.soften
    r_soft = torch.ceil(2.0 * soft)
    look = (face_mask > 0.0).to(torch.float32)
    if protect is not None:
        look = look * (1.0 - protect)
    span = max(params.drop_above - params.keep_below, 1e-6)

    def occluders(lk: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        d = skin_distance(img, model)
        raw = ((d - params.keep_below) / span).clamp(0.0, 1.0) * lk
        occ = dilate(erode(raw, r_open), r_open)  # opening: drops specks ...
        for _ in range(2 * int(r_open.max()) + 1):  # ... reconstruction: the surviving occluders keep their shape
            occ = torch.minimum(dilate(occ, 1, shape="square"), raw)
        occ = dilate(occ, r_grow)
        return gaussian_blur(occ, soft, r_soft, opencv=False)  # kornia's rounding, as before:
        # OpenCV's (~3e-7 apart) moved up to 12 levels at hair over the face's edge (thresholds downstream)

    reach = int((r_open + r_grow + r_soft).max()) + 1 if b else 1
    return (1.0 - in_window(look, reach, occluders, image)).clamp(0.0, 1.0)


def skin_sample_mask(skin: torch.Tensor, size: torch.Tensor | float, erosion: float = 0.06) -> torch.Tensor:
    """Where to sample skin colour: the skin region eroded by ``erosion * size`` (binary ``(B, 1, H, W)``)."""
    b = skin.shape[0]
    fs = per_item(size, b, skin.device)
    return in_window(skin, 1, lambda m: (erode(m, torch.round(fs * erosion)) > 0.5).to(skin.dtype))


def mattes_to_crop(mattes: Sequence[np.ndarray | None], frame_to_crop: np.ndarray, size: tuple[int, int]
                   ) -> np.ndarray | None:
    """(B, h, w) float32 crop-space occluders from per-frame (H, W) plate-space mattes (None: nothing in front),
    bilinear with pixel centres at integers and zeros outside the plate (the convention of
    :func:`vidswap.faces.align.warp_to_crop`, without its anti-aliasing: a face crop does not shrink the plate by
    2x); None when no frame has a matte. One ``cv2.warpAffine`` per frame with a matte (a few tenths of a ms),
    where a batched ``grid_sample`` over the plate cost tens of ms under load.

    Args:
        frame_to_crop: (B, 2, 3) plate -> crop affine matrices; size: the crop's (h, w).
    """
    if all(m is None for m in mattes):
        return None
    h, w = int(size[0]), int(size[1])
    out = np.zeros((len(mattes), h, w), np.float32)
    for b, m in enumerate(mattes):
        if m is not None:
            out[b] = cv2.warpAffine(np.asarray(m, np.float32), np.asarray(frame_to_crop[b], np.float64), (w, h),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.clip(out, 0.0, 1.0, out=out)
