"""The render stage for a batch of frames: per target track, the crops the core asks for -> core -> refiner ->
compositor.

:class:`RenderStage` is called with consecutive frames (the pipeline's batches) and returns them with the target
faces replaced; frames without a target face come back untouched (the same array objects, bit-identical). No
state is carried from batch to batch (see :func:`vidswap.composite.compositor.composite_params`), so the result
does not depend on where the batches start and farm chunks equal a single-pass render.

:func:`batch_from_track` -- a track's rows as a :class:`~vidswap.swap.base.SwapBatch` in a core's crop -- is shared
by this stage and the training-data collection of :mod:`vidswap.train.tune.data`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from vidswap.composite.compositor import CompositeParams, FaceLayer, composite_track
from vidswap.composite.convert import from_float, to_float
from vidswap.faces.align import CropSpec, as_rgb8, invert_affine, transform_landmarks, warp_to_crop
from vidswap.composite.matte import UserMatte
from vidswap.composite.grain import track_grain
from vidswap.composite.motion_blur import crop_motion, motion_blur, track_shutter, track_velocity
from vidswap.composite.occlusion import mattes_to_crop
from vidswap.composite.paste import paste_margin
from vidswap.composite.roi import footprint_roi, shift_source, shift_target
from vidswap.hands.mask import HandMaskParams, hand_matte
from vidswap.io.region_write import changed_box, union_box
from vidswap.faces.pose import decompose, expression
from vidswap.faces.tracksfile import ShotAnalysis, TrackAnalysis
from vidswap.io.frames import Frame
from vidswap.opencv_threads import opencv_threads
from vidswap.swap.base import Refiner, SourceIdentity, SwapBatch, SwapCore


def batch_from_track(track: TrackAnalysis, rows: Sequence[int] | np.ndarray, plates: torch.Tensor, crop: CropSpec,
                     device: torch.device | str, origin: tuple[int, int] = (0, 0)) -> tuple[SwapBatch, torch.Tensor]:
    """Rows of a track cut from their plates in the crop a core asks for.

    Args:
        track: the track's analysis (smoothed landmarks, neutral shape, confidences).
        rows: (B,) indices into the track's arrays (``track.index_of(frame number)``).
        plates: (B, 3, H, W) float display-referred plates of those rows' frames, or the same region of each
            (the face's region, :func:`~vidswap.composite.roi.footprint_roi`) whose top-left plate pixel is
            ``origin`` = (x, y).
        crop: the core's :class:`~vidswap.faces.align.CropSpec`.
        device: where the batch lives.

    Returns:
        the :class:`~vidswap.swap.base.SwapBatch` (crops, landmarks in crop pixels, pose, expression against the
        track's neutral shape, confidence, ``frame_to_crop``) and (B, 2, 3) float32 ``crop_to_plate`` matrices
        (whole-plate pixels, whatever ``origin``).
    """
    idx = np.asarray(rows, dtype=np.int64)
    landmarks = torch.from_numpy(track.smoothed[idx]).to(device)  # (B, 478, 3) frame px
    frame_to_crop = crop.frame_to_crop(landmarks)
    crops = warp_to_crop(plates, shift_source(frame_to_crop, origin), crop.size)
    lm_crop = transform_landmarks(landmarks, frame_to_crop)
    pose = decompose(lm_crop)
    delta = expression(pose.x_c_obs, torch.from_numpy(track.neutral).to(device))
    confidence = torch.from_numpy(track.render_confidence(idx)).to(device)
    batch = SwapBatch(target_crops=crops, target_landmarks=lm_crop, s=pose.s, R=pose.R, t=pose.t,
                      expression=delta, confidence=confidence, frame_to_crop=frame_to_crop)
    crop_to_plate = torch.as_tensor(invert_affine(frame_to_crop), dtype=torch.float32, device=device)
    return batch, crop_to_plate


FaceSink = Callable[[FaceLayer], None]


def plate_occluders(analysis: ShotAnalysis, numbers: Sequence[int], images: Sequence[np.ndarray],
                    hands: HandMaskParams | None, matte: UserMatte | None,
                    lips_loop: np.ndarray | None = None) -> list[np.ndarray | None]:
    """Per frame the (H, W) float32 plate-space occlusion matte (1 = in front of the face), or None where nothing
    is: the hands stored in the analysis (rasterised, refined against the plate ``images``) and the user's matte,
    combined as ``1 - (1 - hands) * (1 - matte)``. ``lips_loop``: the mesh's outer lip loop, so the hands' colour
    split knows each tracked face's lips in the frame (:func:`~vidswap.hands.mask.hand_matte`). The hands are
    rasterised with OpenCV on one thread (:mod:`vidswap.opencv_threads`: the same mattes at ~28 % less CPU time)."""
    with opencv_threads(1):
        return [_plate_occluder(analysis, n, im, hands, matte, lips_loop) for n, im in zip(numbers, images)]


def _plate_occluder(analysis: ShotAnalysis, n: int, im: np.ndarray, hands: HandMaskParams | None,
                    matte: UserMatte | None, lips_loop: np.ndarray | None) -> np.ndarray | None:
    """One frame's :func:`plate_occluders`."""
    occ = None
    if hands is not None:
        reach = hands.time_reach
        pts = analysis.hands.around(n, reach) if reach else analysis.hands.swept(n, hands.sweep)
        if len(pts):
            lips = None
            if lips_loop is not None:
                lips = [t.smoothed[i][lips_loop] for t in analysis.tracks if (i := t.index_of(n)) is not None]
            occ = hand_matte(pts, as_rgb8(im), hands, lips)
    if matte is not None:
        user = matte.read(n)
        occ = user if occ is None else 1.0 - (1.0 - occ) * (1.0 - user)
    return occ


def occluders_to_crop(mattes: Sequence[np.ndarray | None], frame_to_crop: torch.Tensor,
                      size: int | tuple[int, int]) -> torch.Tensor | None:
    """(B, 1, h, w) crop-space occluders from per-frame plate-space mattes (None: nothing in front); None when no
    frame has one."""
    size = (size, size) if isinstance(size, int) else size
    crop = mattes_to_crop(mattes, frame_to_crop.detach().cpu().numpy(), size)
    return None if crop is None else torch.from_numpy(crop)[:, None].to(frame_to_crop.device)


MatteSink = Callable[[int, np.ndarray], None]


@dataclass
class RenderStage:
    """Swap the faces of ``targets`` (track id -> the core's prepared source identity) in batches of frames.

    analysis:     the shot's analysis (tracks with smoothed landmarks, colour statistics).
    core:         the swap core; its ``crop`` decides the alignment.
    regions:      the mesh topology's region loops (compositor masks).
    params:       the compositor's parameters (:func:`~vidswap.composite.compositor.composite_params`).
    refiner:      a post-core generator keyed by track id, or None.
    sinks:        callables receiving every composited :class:`~vidswap.composite.compositor.FaceLayer` (debug
                  strips, face patches, linear compositing).
    plate_layers: the face layers also carry the plate-space foreground and alpha.
    matte:        the user's occlusion matte sequence (``composite.matte``), or None.
    matte_sinks:  callables receiving ``(frame number, (H, W) occlusion matte)`` for every frame (debug sequence).
    face_regions: convert, composite and convert back only each track's face region (:meth:`face_region`); the
                  rest of the plate stays in its own dtype, untouched. False: whole plates (the reference path;
                  the results agree within 1 code value).
    in_place:     paste each face into the batch's own decoded frames instead of a copy of each (a 4K frame's copy
                  costs ~30 ms: a fresh mapping, faulted in); only when nothing looks at the plates after the stage
                  (:func:`~vidswap.pipeline.render_frames` sets it for the pass when there is no observer or
                  decoration) and the frames are the reader's own (read-only arrays are still copied).
    crop_pixels:  the most crop pixels (faces x crop area) swapped and composited at once: a track's rows of a
                  batch go through in groups of ``max(1, crop_pixels // (h * w))`` faces (8 at a 512-px crop,
                  2 at 1024), so the crop-space tensors alive at once do not grow with the crop size. Every face's
                  result depends on that face alone, so the pictures are the same for any value (0: no limit).
    """

    analysis: ShotAnalysis
    targets: dict[int, SourceIdentity]
    core: SwapCore
    regions: dict[str, np.ndarray]
    params: CompositeParams
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    refiner: Refiner | None = None
    sinks: list[FaceSink] = field(default_factory=list)
    plate_layers: bool = False
    matte: UserMatte | None = None
    matte_sinks: list[MatteSink] = field(default_factory=list)
    face_regions: bool = True
    in_place: bool = False
    crop_pixels: int = 1 << 21
    swapped: set[int] = field(default_factory=set)
    seen: list[int] = field(default_factory=list)
    _regions: dict[tuple, tuple[int, int, int, int]] = field(default_factory=dict, repr=False)

    def __call__(self, frames: list[Frame]) -> list[Frame]:
        self.seen.extend(f.number for f in frames)
        out = list(frames)
        occluders = self._occluders(frames)
        for track_id, identity in self.targets.items():
            track = self.analysis.track(track_id)
            rows = [(k, i) for k, f in enumerate(out) if (i := track.index_of(f.number)) is not None]
            if rows:
                self._swap_track(out, rows, track, identity, occluders)
        return out

    def _occluders(self, frames: list[Frame]) -> dict[int, np.ndarray | None]:
        """Frame number -> plate-space occlusion matte, for the frames any target track covers (every frame when
        a matte sink wants them)."""
        wanted = [f for f in frames if self.matte_sinks or any(
            self.analysis.track(t).index_of(f.number) is not None for t in self.targets)]
        mattes = plate_occluders(self.analysis, [f.number for f in wanted], [f.image for f in wanted],
                                 self.params.hands, self.matte, np.asarray(self.regions["lips_outer"]))
        for sink in self.matte_sinks:
            for f, m in zip(wanted, mattes):
                sink(f.number, m if m is not None else np.zeros(f.image.shape[:2], np.float32))
        return {f.number: m for f, m in zip(wanted, mattes)}

    def face_region(self, track: TrackAnalysis, crop: CropSpec, plate_size: tuple[int, int]) -> tuple[int, ...]:
        """``(x0, y0, x1, y1)``: the plate region every frame of ``track`` is read from and written to (the crops
        of the whole track plus the paste-back's context; :func:`~vidswap.composite.roi.footprint_roi`). It
        depends on the analysis alone, so farm chunks cut the same region as a single pass. The whole plate
        when the faces are also laid out as plate-sized layers (``plate_layers``)."""
        key = (track.id, plate_size, self.face_regions and not self.plate_layers)
        if key not in self._regions:
            if self.plate_layers or not self.face_regions or not len(track.frames):
                self._regions[key] = (0, 0, plate_size[1], plate_size[0])
            else:
                landmarks = torch.from_numpy(track.smoothed).to(self.device)
                crop_to_plate = torch.as_tensor(invert_affine(crop.frame_to_crop(landmarks)), dtype=torch.float32)
                self._regions[key] = footprint_roi(crop_to_plate, (crop.size, crop.size) if isinstance(
                    crop.size, int) else tuple(crop.size), plate_size, paste_margin(self.params.paste))
        return self._regions[key]

    def group_size(self, crop: CropSpec) -> int:
        """How many faces of a track are swapped and composited at once (:attr:`crop_pixels`)."""
        h, w = (crop.size, crop.size) if isinstance(crop.size, int) else tuple(crop.size)
        return max(1, self.crop_pixels // (int(h) * int(w))) if self.crop_pixels > 0 else 1 << 30

    def _swap_track(self, out: list[Frame], rows: list[tuple[int, int]], track: TrackAnalysis,
                    identity: SourceIdentity, occluders: dict[int, np.ndarray | None]) -> None:
        crop = self.core.crop_for(track)
        n = self.group_size(crop)
        for start in range(0, len(rows), n):
            self._swap_rows(out, rows[start:start + n], track, identity, occluders, crop)

    def _swap_rows(self, out: list[Frame], rows: list[tuple[int, int]], track: TrackAnalysis,
                   identity: SourceIdentity, occluders: dict[int, np.ndarray | None], crop: CropSpec) -> None:
        ks = [k for k, _ in rows]
        idx = np.array([i for _, i in rows])
        dtype = out[ks[0]].image.dtype
        x0, y0, x1, y1 = self.face_region(track, crop, out[ks[0]].image.shape[:2])
        # only the face's region is converted, composited and converted back, in the plate's own dtype outside it
        plate = torch.stack([to_float(out[k].image[y0:y1, x0:x1], self.device) for k in ks])  # (B, 3, h, w)
        batch, crop_to_plate = batch_from_track(track, idx, plate, crop, self.device, origin=(x0, y0))
        numbers = [out[k].number for k in ks]
        occluder = occluders_to_crop([occluders.get(n) for n in numbers], batch.frame_to_crop,
                                     tuple(batch.target_crops.shape[-2:]))
        batch = dataclasses.replace(batch, occluder=occluder)  # e.g. kept out of the relit render's frame light
        result = self.core.swap(batch, identity)
        if self.refiner is not None:
            result = self.refiner(track.id, batch, result, identity)
        shutter = track_shutter(track.appearance) if self.params.motion_blur is None else self.params.motion_blur
        if shutter > 0:  # the render smeared along the face's motion, as the plate's camera does
            velocity = torch.from_numpy(track_velocity(track.frames, track.smoothed[..., :2], idx)).to(self.device)
            motion = crop_motion(batch.target_landmarks, velocity, batch.frame_to_crop)
            crops, alpha = motion_blur(result.crops, result.alpha, motion, shutter)
            result = dataclasses.replace(result, crops=crops, alpha=alpha)
        stats = torch.from_numpy(track.colour[idx]).to(self.device) if track.colour.size else None
        grain = track_grain(track.appearance, self.params.grain) if self.params.grain is not None else None
        crop_to_region = shift_target(crop_to_plate, (x0, y0))  # crop -> the converted region's pixels
        comp = composite_track(plate, batch.target_crops, result.crops, batch.target_landmarks, self.regions,
                               crop_to_region, numbers, track_id=track.id, params=self.params,
                               confidence=batch.confidence, render_alpha=result.alpha, plate_stats=stats,
                               layers=self.plate_layers, occluder=occluder, window=not self.sinks,
                               inplace=True, track_grain=grain)  # the region converted above is this batch's own
        # only the box paste-back wrote is converted back: outside it the region is the plate's own codes
        boxes = comp.boxes
        for b, k in enumerate(ks):
            f = out[k]
            image = f.image if self.in_place and f.image.flags.writeable else f.image.copy()
            changed = f.changed
            if boxes[b] is not None:
                bx0, by0, bx1, by1 = boxes[b]
                pasted = from_float(comp.frames[b][:, by0:by1, bx0:bx1], dtype)
                before = image[y0 + by0:y0 + by1, x0 + bx0:x0 + bx1]
                if changed is not None:  # the pixels the paste changed: what the writer converts back
                    changed = union_box(changed, changed_box(before, pasted, (x0 + bx0, y0 + by0)))
                before[...] = pasted
            out[k] = dataclasses.replace(f, image=image, changed=changed)
            self.swapped.add(f.number)
            if self.sinks:
                layer = FaceLayer(f.number, track.id, batch.target_crops[b], comp.crop[b], comp.alpha[b],
                                  crop_to_plate[b], None if comp.foreground is None else comp.foreground[b],
                                  None if comp.plate_alpha is None else comp.plate_alpha[b],
                                  None if occluder is None else occluder[b])
                for sink in self.sinks:
                    sink(layer)

    def summary(self) -> tuple[int, list[int]]:
        """(frames swapped, frame numbers passed through untouched)."""
        return len(self.swapped), [n for n in self.seen if n not in self.swapped]
