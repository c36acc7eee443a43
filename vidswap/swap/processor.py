"""The render stage for a batch of frames: align -> swap core -> compositor, per target track.

``FaceSwapProcessor`` is called with consecutive frames (the pipeline's batches) and returns them with the target
faces replaced; frames without a target face come back untouched (the same array objects, bit-identical).
Per-track compositor state (causal mask / colour smoothing) is carried from batch to batch, so the result does not
depend on where the batches start.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from vidswap.composite.colour import ColourParams, masked_lab_stats, pack_stats
from vidswap.composite.compositor import CompositeParams, build_masks, composite_track
from vidswap.composite.convert import from_float, to_float
from vidswap.composite.grain import GrainParams
from vidswap.composite.masks import MaskParams, OcclusionParams
from vidswap.composite.paste import PasteParams
from vidswap.config import CompositeConfig
from vidswap.faces.align import invert_affine
from vidswap.faces.tracksfile import ShotAnalysis, TrackAnalysis
from vidswap.faces.pose import decompose, expression
from vidswap.io import Frame
from vidswap.swap.core import SourceIdentity, SwapBatch, SwapCore, crop_frame_from_landmarks, transform_landmarks, \
    warp_to_crop

CROP_MARGIN = 0.2  # aligned crop border, fraction of the face height per side


def composite_params(cfg: CompositeConfig, seed: int) -> CompositeParams:
    """The compositor's parameters from the job config.

    No state is carried between frames (``temporal="none"``): masks follow the whole-shot smoothed landmarks and
    the plate's colour statistics are smoothed over the whole track in the analyze pass, so every frame's result
    depends only on the analysis and that frame, and farm chunks are identical to a single-pass render.
    """
    regions = tuple(cfg.regions)
    return CompositeParams(
        regions=regions,
        mask=MaskParams(erosion=cfg.erode, feather=cfg.feather),
        occlusion=OcclusionParams() if cfg.occlusion else None,
        colour=ColourParams(method=cfg.colour),
        paste=PasteParams(mode={"feather": "alpha"}.get(cfg.blend, cfg.blend)),
        grain=GrainParams() if cfg.grain else None,
        temporal="none",
        seed=seed,
    )


@dataclass
class FaceLayer:
    """One swapped face of one frame, as it was composited (for debug strips, face patches, linear compositing).

    target_crop:   (3, h, w) the plate's aligned crop.
    crop:          (3, h, w) the colour-matched swapped face that was pasted (same space as the plate).
    alpha:         (1, h, w) its crop-space alpha.
    crop_to_plate: (2, 3) affine from crop pixel centres to plate pixel centres.
    foreground, plate_alpha: (3, H, W) / (1, H, W) the face warped to the plate, unblended, and its alpha; only
                   when the processor's ``plate_layers`` is set.
    """

    number: int
    track: int
    target_crop: torch.Tensor
    crop: torch.Tensor
    alpha: torch.Tensor
    crop_to_plate: torch.Tensor
    foreground: torch.Tensor | None = None
    plate_alpha: torch.Tensor | None = None


@dataclass
class FaceSwapProcessor:
    """Swap the faces of ``targets`` (track id -> source identity) in batches of frames."""

    analysis: ShotAnalysis
    targets: dict[int, SourceIdentity]
    core: SwapCore
    regions: dict[str, np.ndarray]
    params: CompositeParams
    crop_size: int = 256
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    sinks: list = field(default_factory=list)  # callables(FaceLayer): debug strips, face patches, linear comp
    plate_layers: bool = False  # FaceLayer carries the plate-space foreground and alpha
    refiner: object | None = None  # callable(SwapBatch, SwapResult, SourceIdentity) -> SwapResult (learned generator)
    swapped: set[int] = field(default_factory=set)
    seen: list[int] = field(default_factory=list)

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        self.seen.extend(f.number for f in frames)
        out = list(frames)
        for track_id, identity in self.targets.items():
            track = self.analysis.track(track_id)
            rows = [(k, i) for k, f in enumerate(out) if (i := track.index_of(f.number)) is not None]
            if rows:
                self._swap_track(out, rows, track, identity)
        return out

    def _swap_track(self, out: list[Frame], rows: list[tuple[int, int]], track: TrackAnalysis,
                    identity: SourceIdentity) -> None:
        ks = [k for k, _ in rows]
        idx = np.array([i for _, i in rows])
        dtype = out[ks[0]].image.dtype
        plate = torch.stack([to_float(out[k].image, self.device) for k in ks])  # (B, 3, H, W)
        lm = torch.from_numpy(track.smoothed[idx]).to(self.device)  # (B, 478, 3) frame px
        frame_to_crop = crop_frame_from_landmarks(lm, self.crop_size, CROP_MARGIN)
        crop = warp_to_crop(plate, frame_to_crop, self.crop_size)
        lm_crop = transform_landmarks(lm, frame_to_crop)
        pose = decompose(lm_crop)
        delta = expression(pose.x_c_obs, torch.from_numpy(track.neutral).to(self.device))
        conf = torch.from_numpy(np.maximum(track.confidences[idx], 0.0)).to(self.device)
        conf = torch.where(torch.from_numpy(track.interpolated[idx]).to(self.device), torch.full_like(conf, 0.7), conf)
        batch = SwapBatch(target_crops=crop, target_landmarks=lm_crop, s=pose.s, R=pose.R, t=pose.t,
                          expression=delta, confidence=conf)
        result = self.core.swap(batch, identity)
        if self.refiner is not None:
            result = self.refiner(batch, result, identity)
        crop_to_plate = torch.as_tensor(invert_affine(frame_to_crop), dtype=torch.float32, device=self.device)
        numbers = [out[k].number for k in ks]
        stats = torch.from_numpy(track.colour[idx]).to(self.device) if track.colour.size else None
        comp = composite_track(plate, crop, result.crops, lm_crop, self.regions, crop_to_plate, numbers,
                               track_id=track.id, params=self.params, confidence=conf,
                               render_alpha=result.alpha, plate_stats=stats, layers=self.plate_layers)
        for b, k in enumerate(ks):
            f = out[k]
            out[k] = dataclasses.replace(f, image=from_float(comp.frames[b], dtype))
            self.swapped.add(f.number)
            if self.sinks:
                layer = FaceLayer(f.number, track.id, crop[b], comp.crop[b], comp.alpha[b], crop_to_plate[b],
                                  None if comp.foreground is None else comp.foreground[b],
                                  None if comp.plate_alpha is None else comp.plate_alpha[b])
                for sink in self.sinks:
                    sink(layer)

    def summary(self) -> tuple[int, list[int]]:
        """(frames swapped, frame numbers passed through untouched)."""
        return len(self.swapped), [n for n in self.seen if n not in self.swapped]


def plate_skin_stats(images: np.ndarray | list[np.ndarray], points: np.ndarray | list[np.ndarray],
                     regions: dict[str, np.ndarray], crop_size: int = 128,
                     device: torch.device | str = "cpu") -> np.ndarray | list[np.ndarray]:
    """The plate's skin colour statistics of each face, as the compositor samples them.

    Args:
        images: one HxWx3 RGB frame (uint8 / uint16 / float), or a list of frames (a batch: one batched mask
            and statistics pass over every face of every frame, much cheaper than frame by frame).
        points: (N, 478, 3) landmarks of the N faces in frame pixels, or a list of them (one per frame).

    Returns:
        (N, 6) float32 masked LAB mean and std (:func:`pack_stats`), NaN rows where too little skin is visible;
        a list of them for a list of frames.
    """
    if not isinstance(images, (list, tuple)):
        return plate_skin_stats([images], [points], regions, crop_size, device)[0]
    counts = [len(p) for p in points]
    if sum(counts) == 0:
        return [np.zeros((0, 6), np.float32) for _ in counts]
    crops, lms = [], []
    for image, pts in zip(images, points):
        if len(pts) == 0:
            continue
        plate = to_float(image, device)[None].expand(len(pts), -1, -1, -1)
        lm = torch.from_numpy(np.asarray(pts, np.float32)).to(device)
        frame_to_crop = crop_frame_from_landmarks(lm, crop_size, CROP_MARGIN)
        crops.append(warp_to_crop(plate, frame_to_crop, crop_size))
        lms.append(transform_landmarks(lm, frame_to_crop))
    crop = torch.cat(crops)
    masks = build_masks(crop, torch.cat(lms), regions, CompositeParams())
    stats = pack_stats(*masked_lab_stats(crop, masks.stats)).cpu().numpy().astype(np.float32)
    enough = masks.stats.sum(dim=(1, 2, 3)).cpu().numpy() >= 64 * (crop_size / 256) ** 2
    stats[~enough] = np.nan
    bounds = np.cumsum([0] + counts)
    return [stats[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
