"""The compositor stage: masks, occlusion, colour match (temporally smoothed), paste-back, grain, for one track.

``composite_track`` takes consecutive frames of *one* face track as the batch (batch index = time), which is
what the temporal smoothing of masks and colour statistics needs. It is a thin composition of the pure
functions in ``masks``, ``colour``, ``blend``, ``paste`` and ``grain``; pipelines with other needs can call those
directly.

Chunked (farm) renders: zero-phase smoothing looks both ways in time, so render each chunk with a few frames of
overlap on both sides (``3 * colour.smooth_sigma`` frames is enough) and drop the overlap, or the chunk seams
will differ from a single-pass render. Causal mode (previews) carries :class:`TrackState` between batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from vidswap.composite.colour import (
    ColourParams,
    histogram_match,
    masked_lab_stats,
    pack_stats,
    smooth_stats,
)
from vidswap.composite.colour_window import (blur_reach, crop_windows, grow_windows, transfer_in_windows,
                                             window_lab_stats)
from vidswap.composite.contrast import KeepContrastParams, contrast_base, keep_contrast_weight
from vidswap.composite.edge import BandParams, EdgeParams, band_feather, edge_match
from vidswap.composite.grain import GrainParams, GrainStats, grain_seed, measure_plate_grain, ring_mask, select_items
from vidswap.composite.masks import (SWAP_REGIONS, MaskParams, below_eyes, confidence_weight, face_regions, face_size,
                                     feather_mask, polygon_mask, region_polygon, smooth_masks_temporal, union)
from vidswap.composite.occlusion import OcclusionParams, fit_skin_model, occlusion_visibility, skin_sample_mask
from vidswap.composite.paste import PasteParams, antialias_sigma, paste_crop
from vidswap.composite.regions import check_regions, covers_face, region_alpha
from vidswap.composite.tone import ToneParams, tone_match
from vidswap.hands.mask import HandMaskParams
from vidswap.sections import CompositeConfig  # noqa: F401 - declared there (torch-free)


@dataclass(frozen=True)
class CompositeParams:
    """Everything the compositor does, with defaults meant for finals.

    Attributes:
        regions: which face regions to swap (``eyes, brows, nose, mouth, skin`` or ``face``).
        mask: region mask shaping.
        occlusion: skin-colour occlusion test (None: off).
        colour: colour match.
        paste: paste-back blending.
        grain: grain re-application (None: off; see ``track_grain`` of :func:`composite_track`).
        temporal: ``"zero_phase"`` (finals), ``"ema"`` (causal previews) or ``"none"``.
        mask_alpha: temporal weight of the current frame for the region alpha.
        visibility_alpha: temporal weight of the current frame for the occlusion visibility (kept high so a
            moving hand does not leave a trail).
        min_stat_pixels: fewer skin pixels than this and a frame's colour stats are taken from its neighbours.
        seed: job seed for the grain.
        hands: the hand occlusion mask (from the hands stored in the analysis; None: off).
        edge: the plate's colour and fine detail along the paste boundary (:mod:`~vidswap.composite.edge`;
            None: off).
        region_feather: with ``regions`` a part of the face: how far eyes, brows and mouth are grown for the
            selection and the reach of its soft edge (fraction of the face size; :mod:`~vidswap.composite.regions`).
        mask_size: the masks and the occlusion test run on crops of at most this side (the crop box-filtered
            down, the soft masks bilinearly up; :func:`build_masks`); None: at the crop's own size.
        tone: a smooth lightness offset over the face meeting the plate's along the boundary
            (:mod:`~vidswap.composite.tone`; None: off).
        keep_contrast: with the ``reinhard`` match, its L* gain partly undone on the face around its central
            features, in the fine band (:mod:`~vidswap.composite.contrast`; None: off).
        band: the render's low-frequency difference from the plate crosses the paste boundary over a wider ramp
            than the paste alpha's (:func:`~vidswap.composite.edge.band_feather`; None: off; whole-face swaps only).
        motion_blur: the shutter's share of the frame interval over which the render is smeared along the face's
            motion before it is composited (:mod:`~vidswap.composite.motion_blur`; 0: off; None: each track's
            shutter as the analysis measured it, :func:`~vidswap.composite.motion_blur.track_shutter`).
    """

    regions: tuple[str, ...] = SWAP_REGIONS
    mask: MaskParams = field(default_factory=MaskParams)
    occlusion: OcclusionParams | None = field(default_factory=OcclusionParams)
    colour: ColourParams = field(default_factory=ColourParams)
    paste: PasteParams = field(default_factory=PasteParams)
    grain: GrainParams | None = field(default_factory=GrainParams)
    temporal: str = "zero_phase"
    mask_alpha: float = 0.5
    visibility_alpha: float = 0.8
    min_stat_pixels: int = 64
    seed: int = 0
    hands: HandMaskParams | None = field(default_factory=HandMaskParams)
    edge: EdgeParams | None = None
    region_feather: float = 0.03
    mask_size: int | None = None
    tone: ToneParams | None = None
    keep_contrast: KeepContrastParams | None = None
    band: BandParams | None = None
    motion_blur: float | None = 0.0


#: ``composite.colour_keep_contrast: auto`` for the relit appearance.
RELIT_KEEP_CONTRAST = 0.6
#: ``composite.colour_chroma_limit: auto`` for the relit appearance: the Reinhard match's a* / b* std gains at most
#: this. On the 9 bench pairs 1.25 moved ArcFace by -0.002..+0.003 and the colour step by -0.07..+0.04 (1.0: ArcFace
#: -0.009..+0.001); multi_face.jpg's graded faces took gains of 2-3.4 and green eye sockets (RESULTS.md, lead s41)
RELIT_CHROMA_LIMIT = 1.25
#: ``composite.erode: auto``: for the relit appearance / for every other core.
RELIT_ERODE, ERODE = 0.0, 0.02
#: ``composite.band_feather: auto`` for the relit appearance (0, off, for every other core).
RELIT_BAND_FEATHER = 0.1  # with tone match + relit_outline_detail; 0.07: hand stretch jitter 1.16 (seamjit-s13)
#: ``composite.grain: auto``: a track's measured grain is applied from none at this grain share (the share of the
#: face's fine detail that changes from frame to frame, :mod:`vidswap.appearance.plate_noise`) to all of it at this
#: one: the registry clips read 0.22-0.44, noisy versions of pexels_clip and single_face_clip 0.86-1.17 (RESULTS.md,
#: lead s33)
AUTO_GRAIN_RANGE = (0.55, 0.75)
#: ``composite.tone_order: auto``: for the relit appearance / for every other core (the tone match's polynomial order).
RELIT_TONE_ORDER, TONE_ORDER = 0, 2


def composite_params(cfg: CompositeConfig, seed: int, relit: bool = False) -> CompositeParams:
    """The compositor's parameters from the job config's ``composite`` section (``relit``: the swap core renders
    the relit appearance, which ``tone_match: auto`` turns the tone match on for (``tone_order: auto``:
    :data:`RELIT_TONE_ORDER`, else :data:`TONE_ORDER`), ``colour_keep_contrast:
    auto`` sets to :data:`RELIT_KEEP_CONTRAST`, ``colour_chroma_limit: auto`` to :data:`RELIT_CHROMA_LIMIT` (else
    ``colour_std_limit`` alone), ``erode: auto`` to :data:`RELIT_ERODE` (else :data:`ERODE`) and
    ``band_feather: auto`` to :data:`RELIT_BAND_FEATHER` (else off)).

    No state is carried between frames (``temporal="none"``): masks follow the whole-shot smoothed landmarks and
    the plate's colour statistics are smoothed over the whole track in the analyze pass, so every frame's result
    depends only on the analysis and that frame, and farm chunks are identical to a single-pass render.
    """
    return CompositeParams(
        regions=tuple(cfg.regions),
        mask=MaskParams(erosion=_auto(cfg.erode, RELIT_ERODE if relit else ERODE), feather=cfg.feather),
        occlusion=OcclusionParams() if cfg.occlusion else None,
        colour=ColourParams(method=cfg.colour, max_std_ratio=float(cfg.colour_std_limit),
                            max_chroma_ratio=_chroma_limit(cfg.colour_chroma_limit, relit)),
        paste=PasteParams(mode={"feather": "alpha"}.get(cfg.blend, cfg.blend)),
        grain=_grain(cfg.grain),
        temporal="none",
        seed=seed,
        hands=HandMaskParams() if cfg.hands else None,
        edge=EdgeParams() if cfg.edge_match else None,
        region_feather=cfg.region_feather,
        mask_size=cfg.mask_size,
        tone=_tone(cfg, relit),
        keep_contrast=_keep_contrast(cfg.colour_keep_contrast, relit),
        band=_band(cfg, relit),
        motion_blur=None if cfg.motion_blur == "auto" else float(cfg.motion_blur),
    )


def _auto(value: str | float, auto: float) -> float:
    return auto if value == "auto" else float(value)


def _grain(value: str | bool) -> GrainParams | None:
    """``composite.grain``: auto (the track's measured grain over :data:`AUTO_GRAIN_RANGE`), true, false."""
    if value == "auto":
        return GrainParams(auto_range=AUTO_GRAIN_RANGE)
    return GrainParams() if value else None


def _tone(cfg: CompositeConfig, relit: bool) -> ToneParams | None:
    if not (cfg.tone_match is True or (cfg.tone_match == "auto" and relit)):
        return None
    return ToneParams(order=int(_auto(cfg.tone_order, RELIT_TONE_ORDER if relit else TONE_ORDER)))


def _band(cfg: CompositeConfig, relit: bool) -> BandParams | None:
    feather = _auto(cfg.band_feather, RELIT_BAND_FEATHER if relit else 0.0)
    return BandParams(feather=feather, sigma=cfg.band_sigma) if feather > 0.0 else None


def _chroma_limit(value: str | float, relit: bool) -> float | None:
    return (RELIT_CHROMA_LIMIT if relit else None) if value == "auto" else float(value)


def _keep_contrast(value: str | float, relit: bool) -> KeepContrastParams | None:
    strength = (RELIT_KEEP_CONTRAST if relit else 0.0) if value == "auto" else float(value)
    return KeepContrastParams(strength=strength) if strength > 0.0 else None


@dataclass(frozen=True)
class CropMasks:
    """Crop-space masks of a batch ``(B, 1, h, w)`` and the face sizes ``(B,)`` in crop pixels."""

    region: torch.Tensor
    visibility: torch.Tensor
    stats: torch.Tensor
    face: torch.Tensor
    size: torch.Tensor


@dataclass(frozen=True)
class TrackState:
    """Causal smoothing state carried from one batch of a track to the next (``temporal="ema"``)."""

    region: torch.Tensor | None = None
    visibility: torch.Tensor | None = None
    src_stats: torch.Tensor | None = None
    dst_stats: torch.Tensor | None = None


@dataclass(frozen=True)
class CompositeResult:
    """Output of :func:`composite_track`.

    Attributes:
        frames: ``(B, 3, H, W)`` composited plates (convert back with ``from_float``).
        crop: ``(B, 3, h, w)`` the colour-matched render that was pasted.
        alpha: ``(B, 1, h, w)`` the crop-space alpha that was pasted (for face-patch outputs and debug strips).
        state: smoothing state for the next batch of this track.
        foreground: ``(B, 3, H, W)`` with ``layers=True``: ``crop`` warped to the plate, unblended (the plate's
            own pixels outside the crop), for compositing in another space (scene-linear EXR plates).
        plate_alpha: ``(B, 1, H, W)`` with ``layers=True``: the plate-space alpha ``foreground`` is laid over with.
        boxes: per face the box ``(x0, y0, x1, y1)`` of ``frames`` the paste wrote (end exclusive; None: none):
            outside it ``frames`` is the input plate, bit for bit (:func:`~vidswap.composite.paste.paste_crop`).
    """

    frames: torch.Tensor
    crop: torch.Tensor
    alpha: torch.Tensor
    state: TrackState
    foreground: torch.Tensor | None = None
    plate_alpha: torch.Tensor | None = None
    boxes: list[tuple[int, int, int, int] | None] | None = None


@dataclass
class FaceLayer:
    """One swapped face of one frame, as it was composited (for debug strips, face patches, linear compositing).

    target_crop:   (3, h, w) the plate's aligned crop.
    crop:          (3, h, w) the colour-matched swapped face that was pasted (same space as the plate).
    alpha:         (1, h, w) its crop-space alpha.
    crop_to_plate: (2, 3) affine from crop pixel centres to plate pixel centres.
    foreground, plate_alpha: (3, H, W) / (1, H, W) the face warped to the plate, unblended, and its alpha; only
                   when the render stage's ``plate_layers`` is set.
    """

    number: int
    track: int
    target_crop: torch.Tensor
    crop: torch.Tensor
    alpha: torch.Tensor
    crop_to_plate: torch.Tensor
    foreground: torch.Tensor | None = None
    plate_alpha: torch.Tensor | None = None
    occlusion: torch.Tensor | None = None


def mask_scale(size: tuple[int, int], mask_size: int | None) -> tuple[int, int]:
    """The ``(h, w)`` the masks of a crop of ``size`` are computed at: ``size`` scaled so its longer side is at most
    ``mask_size`` (rounded to whole pixels, at least 1), or ``size`` itself when it already is (or None)."""
    h, w = int(size[0]), int(size[1])
    if mask_size is None or max(h, w) <= mask_size:
        return h, w
    f = mask_size / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def _to_work(landmarks: torch.Tensor, size: tuple[int, int], work: tuple[int, int]) -> torch.Tensor:
    """Landmarks ``(B, N, 2 or 3)`` from crop pixels to working-size pixels (pixel centres at integers: a box
    filter of factor f maps x to (x + 0.5) / f - 0.5); a third coordinate scales with x."""
    fy, fx = work[0] / size[0], work[1] / size[1]
    xy = torch.stack([(landmarks[..., 0] + 0.5) * fx - 0.5, (landmarks[..., 1] + 0.5) * fy - 0.5], -1)
    return torch.cat([xy, landmarks[..., 2:] * fx], -1)


def _up(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, 1, h, w)`` -> ``(B, 1, H, W)`` bilinear (pixel centres aligned as in :func:`_to_work`), in [0, 1]."""
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=False).clamp_(0.0, 1.0)


def build_masks(
    target_crop: torch.Tensor,
    landmarks: torch.Tensor,
    regions: Mapping[str, np.ndarray],
    params: CompositeParams = CompositeParams(),
) -> CropMasks:
    """Region alpha, occlusion visibility and colour-statistics mask in crop space.

    With ``params.mask_size`` smaller than the crop, the feature masks (eyes, brows, mouth, skin), the skin
    sample and the occlusion test run on the crop box-filtered (area) down to :func:`mask_scale`, with the
    landmarks scaled to it (the face-relative radii follow the face size there); the visibility comes back up
    bilinearly, the statistics mask is the upsampled sample mask above 0.5 where that visibility is above 0.5.
    The face outline, its erosion and feather (the paste seam) stay at the crop's size: for the default regions
    (the whole face) the region alpha, ``face`` and ``size`` are the full-size path's, bit for bit; a regional
    swap's parts (``composite.regions``) and their soft edges are rasterised at the crop's size too.

    Args:
        target_crop: ``(B, 3, h, w)`` aligned crop of the plate.
        landmarks: ``(B, 478, 2 or 3)`` the target's landmarks in crop pixels.
        regions: ``MeshTopology.regions``.

    Returns:
        :class:`CropMasks`.
    """
    size = (int(target_crop.shape[-2]), int(target_crop.shape[-1]))
    work = mask_scale(size, params.mask_size)
    if work == size:
        fr = face_regions(landmarks, regions, size, params.mask)
        sample, vis = _sample_and_visibility(target_crop, fr, params)
        fs = fr["size"]
        region = region_alpha(fr, params.regions, params.mask, params.region_feather, landmarks, regions)
        vis = torch.ones_like(region) if vis is None else vis
        return CropMasks(region=region, visibility=vis, stats=sample * (vis > 0.5), face=fr["face"], size=fs)
    fr = face_regions(_to_work(landmarks, size, work), regions, work, params.mask)
    sample, vis = _sample_and_visibility(F.interpolate(target_crop, size=work, mode="area"), fr, params)
    oval = region_polygon(landmarks, regions["face_oval"])
    fs, face = face_size(oval), polygon_mask(oval, size, params.mask.antialias)
    if covers_face(check_regions(params.regions)):
        region = feather_mask(face, fs, params.mask.erosion, params.mask.feather)
    else:  # a regional swap: its parts and their soft edges at the crop's own size
        full = face_regions(landmarks, regions, size, params.mask)
        region = region_alpha(full, params.regions, params.mask, params.region_feather, landmarks, regions)
    vis = torch.ones_like(region) if vis is None else _up(vis, size)
    stats = ((_up(sample, size) > 0.5) & (vis > 0.5)).to(vis.dtype)
    return CropMasks(region=region, visibility=vis, stats=stats, face=face, size=fs)


def _sample_and_visibility(crop: torch.Tensor, fr: Mapping[str, torch.Tensor], params: CompositeParams
                           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The skin sample mask and the occlusion visibility (None: no occlusion test) of ``crop (B, 3, h, w)`` from
    its :func:`~vidswap.composite.masks.face_regions` ``fr`` at the same size."""
    occ = params.occlusion
    fs = fr["size"]
    sample = skin_sample_mask(fr["skin"], fs, occ.sample_erosion if occ else 0.06)
    if occ is None:
        return sample, None
    model = fit_skin_model(crop, sample, occ, below_eyes=below_eyes(fr["eyes"]))
    protect = union(fr["eyes"], fr["brows"], fr["mouth"])
    return sample, occlusion_visibility(crop, fr["face"], model, fs, protect, occ)


def _fill_invalid(stats: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Replace rows of ``stats (T, D)`` where ``valid`` is False by the nearest valid row."""
    if bool(valid.all()) or not bool(valid.any()):
        return stats
    t = torch.arange(stats.shape[0], device=stats.device)
    good = t[valid]
    nearest = good[(t[:, None] - good[None, :]).abs().argmin(dim=1)]
    return stats[nearest]


def composite_track(
    plate: torch.Tensor,
    target_crop: torch.Tensor,
    render: torch.Tensor,
    landmarks: torch.Tensor,
    regions: Mapping[str, np.ndarray],
    crop_to_plate: torch.Tensor,
    frames: Sequence[int],
    track_id: int = 0,
    params: CompositeParams = CompositeParams(),
    confidence: torch.Tensor | None = None,
    render_alpha: torch.Tensor | None = None,
    state: TrackState | None = None,
    plate_stats: torch.Tensor | None = None,
    layers: bool = False,
    occluder: torch.Tensor | None = None,
    window: bool = False,
    inplace: bool = False,
    track_grain: GrainStats | None = None,
) -> CompositeResult:
    """Composite a batch of consecutive frames of one track.

    Args:
        plate: ``(B, 3, H, W)`` full-resolution plates.
        target_crop: ``(B, 3, h, w)`` the aligned crops of the plates the render was made for.
        render: ``(B, 3, h, w)`` swapped faces in the same crop space.
        landmarks: ``(B, 478, 2 or 3)`` target landmarks in crop pixels.
        regions: ``MeshTopology.regions`` index loops.
        crop_to_plate: ``(B, 2, 3)`` affine from crop to plate pixels.
        frames: the B frame indices (seed the grain; deterministic across chunks).
        track_id: the track's id (seeds the grain).
        params: :class:`CompositeParams`.
        confidence: ``(B,)`` face confidence or ``(B, 478)`` per-landmark confidence.
        render_alpha: ``(B, 1, h, w)`` alpha from the generator, multiplied in.
        state: causal state from the previous batch of this track (``temporal="ema"``).
        plate_stats: ``(B, 6)`` the plate's skin LAB statistics (:func:`pack_stats`) measured and smoothed over the
            whole track beforehand (the analyze pass). With them, a frame's result depends on that frame alone,
            so farm chunks agree with a single-pass render at their seams; ``temporal`` then only concerns masks.
        layers: also return the plate-space ``foreground`` and ``plate_alpha`` (one more warp per face).
        occluder: ``(B, 1, h, w)`` in [0, 1], what is in front of the face in crop space (hands, a user's matte):
            subtracted from the paste alpha (``alpha * (1 - occluder)``) and left out of the colour statistics
            measured here (with ``plate_stats`` the render's statistics cover the whole face's skin, as the
            analysis measured the plate's: the colour match does not move with the occluder).
        window: the Reinhard colour match only over each face's window that paste-back reads
            (:mod:`~vidswap.composite.colour_window`): the same pasted plates (the statistics' sums within float
            rounding), but the returned ``crop`` keeps the render's colours outside that window. With the kept
            contrast the window is grown by its base's blur radius (the base is then the whole crop's inside the
            paste's window), and with the two-band feather it covers the paste alpha before occluders (which the
            band reads). Ignored with ``layers``, tone or edge match (they read the whole crop).
        inplace: paste into ``plate`` itself (the returned ``frames`` is ``plate``), without a copy of it; for a
            caller that owns ``plate``. Ignored with ``layers`` (the foreground is pasted on the unchanged plate).
        track_grain: with ``params.grain`` set, the grain every frame gets (one item: the track's, measured by the
            analysis, :func:`~vidswap.composite.grain.track_grain`); None: none with ``params.grain.auto_range``
            set, else each frame's own ring measure (:func:`~vidswap.composite.grain.measure_plate_grain`).

    Returns:
        :class:`CompositeResult`.
    """
    if params.temporal not in ("zero_phase", "ema", "none"):
        raise ValueError(f"temporal must be 'zero_phase', 'ema' or 'none', got {params.temporal!r}")
    state = state or TrackState()
    masks = build_masks(target_crop, landmarks, regions, params)
    region, vis = masks.region, masks.visibility
    whole_face = None  # a regional swap's tone match fits the whole face's alpha (below)
    if params.tone is not None and not covers_face(check_regions(params.regions)):
        whole_face = feather_mask(masks.face.to(region), masks.size, params.mask.erosion, params.mask.feather)
    if confidence is not None:
        conf = confidence_weight(landmarks, confidence, tuple(region.shape[-2:]), masks.size)
        region, whole_face = region * conf, (None if whole_face is None else whole_face * conf)
    if render_alpha is not None:
        ra = render_alpha.to(region)
        region, whole_face = region * ra, (None if whole_face is None else whole_face * ra)
    if params.temporal != "none":
        mode = "ema" if params.temporal == "ema" else "zero_phase"
        init_r = state.region if mode == "ema" else None
        init_v = state.visibility if mode == "ema" else None
        region = smooth_masks_temporal(region, params.mask_alpha, mode, init_r)
        vis = smooth_masks_temporal(vis, params.visibility_alpha, mode, init_v)
        if whole_face is not None:  # (ema: from no state; the state carries the region's)
            whole_face = smooth_masks_temporal(whole_face, params.mask_alpha, mode)
    alpha = region * vis
    face_alpha = alpha
    # a regional swap takes the whole face's tone offset (its ring along the face outline), so that inside its parts
    # it pastes what the whole-face swap pastes
    tone_alpha = alpha if whole_face is None else whole_face * vis
    stats_mask = skin = masks.stats
    if occluder is not None:
        keep = (1.0 - occluder.to(alpha)).clamp(0.0, 1.0)
        alpha = alpha * keep
        stats_mask = stats_mask * (keep > 0.5)
        masks = CropMasks(region=masks.region, visibility=masks.visibility, stats=stats_mask, face=masks.face,
                          size=masks.size)

    crop = render
    src_s = dst_s = None
    cp = params.colour
    if cp.method == "reinhard":
        # The render's statistics are taken where the plate's are. The plate's from the analysis cover the face's
        # skin, a hand in front included, so the render's (which has no hand) cover that skin too: a hand-shaped
        # hole moving over the render would move its statistics and the whole face's colour with the hand.
        # Measured here, the plate's leave the occluder out, and the render's the same pixels.
        render_skin = skin if plate_stats is not None else masks.stats
        valid = render_skin.sum(dim=(1, 2, 3)) >= params.min_stat_pixels
        # the render's L*a*b* once, for its statistics and the transfer (one crop at a time: its temporaries),
        # over the window paste-back reads or the whole crop
        whole = [True] * render.shape[0]
        if window and not layers and params.edge is None:
            blurred = antialias_sigma(crop_to_plate) >= 0.2
            whole = [bool(params.paste.antialias and blurred[i]) for i in range(render.shape[0])]
        # the two-band feather and the tone match read the render wherever the paste alpha before occluders is > 0
        # (the tone match within one pixel of it, as the window's margin)
        reads = face_alpha if params.band is not None else alpha
        reads = torch.maximum(reads, tone_alpha) if params.tone is not None else reads
        wins = crop_windows(torch.maximum(reads, render_skin), whole)
        if params.keep_contrast is not None:  # the kept band's blur reads that far around the window
            wins = grow_windows(wins, blur_reach(masks.size, params.keep_contrast.band), tuple(render.shape[-2:]))
        render_lab, src_s = window_lab_stats(render, render_skin, wins)
        if plate_stats is not None:  # smoothed over the whole track beforehand; the render follows smooth geometry
            dst_s = plate_stats.to(src_s)
            src_s = torch.where(valid[:, None], src_s, dst_s)  # too little skin seen: leave that frame's colour
            valid = torch.ones_like(valid)
        else:
            src_s = _fill_invalid(src_s, valid)
            dst_s = _fill_invalid(pack_stats(*masked_lab_stats(target_crop, masks.stats)), valid)
            if params.temporal == "zero_phase":
                src_s, dst_s = smooth_stats(src_s, cp.smooth_sigma), smooth_stats(dst_s, cp.smooth_sigma)
            elif params.temporal == "ema":
                src_s = smooth_stats(src_s, mode="ema", alpha=cp.ema_alpha, initial=state.src_stats)
                dst_s = smooth_stats(dst_s, mode="ema", alpha=cp.ema_alpha, initial=state.dst_stats)
        if bool(valid.any()):
            keep_l = keep_base = None
            if params.keep_contrast is not None:  # the base blurred in each (grown) window
                kc = params.keep_contrast
                keep_l = keep_contrast_weight(landmarks, regions, masks.face, masks.size, kc)
                keep_base = [None if lab is None else contrast_base(lab[:, :1], masks.size[i:i + 1], kc.band)
                             for i, lab in enumerate(render_lab)]
            crop = transfer_in_windows(render, render_lab, wins, src_s, dst_s, cp.strength, cp.max_std_ratio,
                                       keep_l, keep_base, cp.max_chroma_ratio)
    elif cp.method == "histogram":
        crop = histogram_match(render, target_crop, masks.stats, masks.stats)
    elif cp.method != "none":
        raise ValueError(f"colour method must be 'reinhard', 'histogram' or 'none', got {cp.method!r}")

    if params.tone is not None:  # skin the plate shows (no occluder, no hand) along the boundary is measured
        valid = masks.face.to(crop) * (masks.visibility > 0.5).to(crop)
        if occluder is not None:
            valid = valid * (occluder.to(crop) < 0.5)
        crop = tone_match(crop, target_crop.to(crop), tone_alpha, masks.size, params.tone, valid)
    if params.edge is not None:
        crop = edge_match(crop, target_crop.to(crop), face_alpha, masks.size, params.edge)
    if params.band is not None and covers_face(check_regions(params.regions)):
        crop = band_feather(crop, target_crop.to(crop), face_alpha, masks.face, masks.size, params.mask.erosion,
                            params.band, visible=None if occluder is None else (1.0 - occluder.to(crop)).clamp(0, 1))

    grain = seeds = None
    if params.grain is not None and track_grain is not None:  # the track's, measured over time by the analysis
        grain = select_items(track_grain, [0] * plate.shape[0])
        grain = GrainStats(*(t.to(plate.device) for t in (grain.std, grain.corr, grain.sigma, grain.valid)))
    elif params.grain is not None and params.grain.auto_range is None:  # each frame's ring, measured here
        gp = params.grain
        ring = ring_mask(masks.face, masks.size, gp.ring_inner, gp.ring_outer)
        grain = measure_plate_grain(plate, ring, crop_to_plate, gp)
    if grain is not None:
        seeds = [grain_seed(params.seed, f, track_id) for f in frames]
    regrain = dict(grain=grain, grain_seeds=seeds, grain_strength=params.grain.strength if params.grain else 1.0)
    out = paste_crop(plate, crop, alpha, crop_to_plate, params=params.paste, return_alpha=layers,
                     inplace=inplace and not layers, return_boxes=True, **regrain)
    foreground = plate_alpha = None
    if not layers:
        out, boxes = out
    else:
        out, plate_alpha, boxes = out
        # The crop laid over with full opacity: inside the crop it is the unblended face (its alpha is 0 at the
        # crop border, so the plate filling the border's partial coverage is never used). With grain, the face
        # carries all of it (a linear plate's blend weighs it by the alpha, as it weighs the plate's own).
        foreground = paste_crop(plate, crop, torch.ones_like(alpha), crop_to_plate, mode="alpha",
                                params=params.paste, **regrain)
        if grain is not None:
            foreground = foreground.clamp(0.0, 1.0)
    new_state = TrackState(
        region=region[-1:].detach(),
        visibility=vis[-1:].detach(),
        src_stats=None if src_s is None else src_s[-1].detach(),
        dst_stats=None if dst_s is None else dst_s[-1].detach(),
    )
    return CompositeResult(frames=out, crop=crop, alpha=alpha, state=new_state, foreground=foreground,
                           plate_alpha=plate_alpha, boxes=boxes)
