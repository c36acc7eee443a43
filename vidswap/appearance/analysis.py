"""The appearance part of the analyze pass: unwrap sampled faces while frames stream, build track models at the end.

The analyze pass calls :meth:`AppearanceCollector.push` for each batch of frames with every face's landmarks and
a key naming the face within its frame, and :meth:`AppearanceCollector.models` once the faces are linked into
tracks. Faces of sampled frames (:class:`~vidswap.appearance.track.AppearanceSampler`) are cropped (the same
similarity crop as the render, at a size matched to the texture), unwrapped in linear light with their
visibility, and their texel normals taken from the plate-pixel landmarks. Moving faces have their blur measured (the
camera's shutter); at every 5th analysis position (a stride that triples as the shot grows) the plate's noise on
each face is read against the frame before (:mod:`~vidswap.appearance.plate_noise`). Opaque sunglasses
(:func:`~vidswap.appearance.eyewear.lens_cover`) are left out of the unwrapped faces' weights, so the track's light
is taken over its skin around them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch

from vidswap.appearance.eyewear import LensZones, lens_cover
from vidswap.appearance.plate_noise import MAX_STEP, NOISE_FIELDS, face_noise, track_noise
from vidswap.appearance.source import source_masks
from vidswap.appearance.texture_space import TextureSpace, build_texture_space, region_masks, texel_normals
from vidswap.appearance.sharpness import (SHUTTER_MIN_PIXELS, SHUTTER_MIN_SPEED, face_blur_tensor, relative_edge_blur,
                                          shutter_estimate)
from vidswap.appearance.track import (TRACK_TEXTURE, AppearanceSampler, FaceSample, build_track_appearance,
                                      unwrap_frames)
from vidswap.composite.roi import region_crops
from vidswap.faces.align import crop_frame_from_landmarks, face_height, transform_landmarks
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import MeshTopology

__all__ = ["track_texture_space", "AppearanceCollector"]

#: the unwrap crop is this many times the texture side (the face spans about the texture's size in it)
CROP_FACTOR = 1.5
#: margin of the unwrap crop (fraction of the face height per side), as the render's crop
CROP_MARGIN = 0.2
#: the side range of the crops the faces' blur covariance is measured on (the face's own size in the frame within)
BLUR_CROP_RANGE = (128, 384)
#: faces that moved at least this many face heights, and BLUR_MIN_PIXELS plate pixels, since the previous frame have
#: their blur covariance measured (slower ones cannot tell the shutter: :func:`shutter_estimate` takes those above
#: SHUTTER_MIN_SPEED and SHUTTER_MIN_PIXELS)
BLUR_MIN_SPEED = 0.8 * SHUTTER_MIN_SPEED
BLUR_MIN_PIXELS = 0.8 * SHUTTER_MIN_PIXELS
#: and only at every this many analysis positions (a shutter estimate needs a dozen or two moving faces, not all)
BLUR_EVERY = 2
#: the plate's noise on the faces is read at every this many analysis positions (against the frame before;
#: :func:`~vidswap.appearance.plate_noise.face_noise`), an odd stride so the readings fall on every phase of a
#: codec's group of pictures (B- and P-frames keep different shares of the noise) ...
NOISE_EVERY = 5
#: ... tripled (still odd) whenever more than this many positions were read, those off the new stride dropped: a
#: median of a few dozen readings is steady
NOISE_POSITIONS = 48


def track_texture_space(topology: MeshTopology, size: int = TRACK_TEXTURE
                        ) -> tuple[TextureSpace, dict[str, torch.Tensor]]:
    """The texture space of the track models and its masks (:func:`~vidswap.appearance.source.source_masks`)."""
    space = build_texture_space(canonical_face(), torch.as_tensor(topology.triangles), size)
    return space, source_masks(space, region_masks(space, topology.regions))


@dataclass
class AppearanceCollector:
    """Streams faces into an :class:`AppearanceSampler`; see the module docstring.

    space, masks: :func:`track_texture_space`; oval: the face oval's landmark loop.
    device: torch device of the unwrapping.
    every: the sampler's starting stride: faces of analysis positions 0, N, 2N, ... are unwrapped (the stride
        still doubles past the ``2 * max_frames`` budget); 1 is the default analysis, previews take 4.
    """

    space: TextureSpace
    masks: dict[str, torch.Tensor]
    oval: torch.Tensor  # the face oval's index loop (the edges around it tell the camera's sharpness)
    max_frames: int = 48
    device: torch.device | str = "cpu"
    every: int = 1  # unwrap the faces of every N-th frame (the sampler's starting stride)
    sampler: AppearanceSampler = field(init=False)
    _position: int = 0
    _previous: np.ndarray | None = None  # (N, 2) the face centres of the previous analysis position
    _previous_image: np.ndarray | None = None  # the previous analysis position's frame (the noise is read against it)
    _flow: object = None  # the DIS optical flow of the noise readings (made once)
    _noise_stride: int = NOISE_EVERY
    _noise: dict = field(default_factory=dict)  # position -> {face key: (len(NOISE_FIELDS),) reading}

    def __post_init__(self) -> None:
        self.sampler = AppearanceSampler(max_frames=self.max_frames, stride=max(1, int(self.every)))
        self._lenses: LensZones | None = None  # made on the first unwrap

    def push(self, images: Sequence[np.ndarray], points: Sequence[np.ndarray], keys: Sequence[Sequence[Hashable]]
             ) -> None:
        """One batch of consecutive frames: images HxWx3 (any depth), per frame (N_i, 478, 3) landmarks in frame
        pixels and N_i face keys."""
        rows, crops_of = [], []
        for image, pts, ks in zip(images, points, keys):
            position = self._position
            self._position += 1
            pts = np.asarray(pts, np.float32).reshape(-1, 478, 3)
            previous, self._previous = self._previous, pts[:, :, :2].mean(1)
            previous_image, self._previous_image = self._previous_image, image
            if position % self._noise_stride == 0 and len(pts):
                self._read_noise(position, previous_image, image, pts, list(ks), previous)
            if not self.sampler.wants(position) or len(pts) == 0:
                continue
            rows.append((position, list(ks)))
            moving = self._moving(pts, previous) & (position % BLUR_EVERY == 0)
            crops_of.append((image, pts, moving))
        if not rows:
            return
        size = int(round(self.space.size * CROP_FACTOR))
        crops, crop_lms, frame_lms, heights = [], [], [], []
        for image, pts, _ in crops_of:
            lm = torch.from_numpy(pts).to(self.device)
            m = crop_frame_from_landmarks(lm, size, CROP_MARGIN)
            crops.append(region_crops(image, m, size, self.device))  # only the faces' region goes to float
            crop_lms.append(transform_landmarks(lm, m))
            frame_lms.append(lm)
            heights.append(face_height(crop_lms[-1]))
        space = self.space.to(self.device)
        crops, crop_lms = torch.cat(crops), torch.cat(crop_lms)
        tex, w = unwrap_frames(space, crops, crop_lms)
        self._lenses = self._lenses or LensZones.of(self.masks)
        lenses = lens_cover(tex, w, self._lenses.to(tex.device))
        if lenses is not None:  # opaque sunglasses are no skin: the track's light is taken around them
            w = w * (1.0 - lenses)
        normals = texel_normals(space, torch.cat(frame_lms))
        oval = self.oval.to(crops.device)
        blur = relative_edge_blur(crops, crop_lms, oval, torch.cat(heights))
        covariance = np.concatenate([self._blur_covariance(image, pts, moving) for image, pts, moving in crops_of])
        i = 0
        for position, ks in rows:
            for key in ks:
                self.sampler.push(position, key, FaceSample(tex[i], w[i], normals[i], float(blur[i]), covariance[i]))
                i += 1

    @staticmethod
    def _steps(points: np.ndarray, previous: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """How far each of a frame's faces (N, 478, 3) moved since the previous frame (``previous``: that frame's
        face centres (M, 2), the nearest one taken) and its face height (at least 1), both (N,) pixels; None when
        that is not known (no previous frame, or no face in it or in this one)."""
        if previous is None or not len(previous) or not len(points):
            return None
        centres = points[:, :, :2].mean(1)
        step = np.linalg.norm(centres[:, None] - previous[None], axis=-1).min(1)
        return step, np.maximum(face_height(torch.from_numpy(np.ascontiguousarray(points))).numpy(), 1.0)

    @classmethod
    def _moving(cls, points: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        """(N,) bool: which of a frame's faces moved at least :data:`BLUR_MIN_SPEED` face heights and
        :data:`BLUR_MIN_PIXELS` pixels since the previous frame (:meth:`_steps`; not known: none)."""
        moved = cls._steps(points, previous)
        if moved is None:
            return np.zeros(len(points), bool)
        step, heights = moved
        return (step >= BLUR_MIN_SPEED * heights) & (step >= BLUR_MIN_PIXELS)

    def _read_noise(self, position: int, previous_image: np.ndarray | None, image: np.ndarray, points: np.ndarray,
                    keys: list, previous: np.ndarray | None) -> None:
        """Read the plate's noise on each of a frame's faces against the frame before
        (:func:`~vidswap.appearance.plate_noise.face_noise`), except faces whose nearest face there is more than
        :data:`~vidswap.appearance.plate_noise.MAX_STEP` face heights away (a cut, or another face), and keep the
        readings under :data:`NOISE_POSITIONS`."""
        moved = self._steps(points, previous)
        if previous_image is None or moved is None or previous_image.shape != image.shape:
            return
        if self._flow is None:
            import cv2
            self._flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        oval = self.oval.cpu().numpy()
        read = {}
        for key, pts, step, height in zip(keys, points, *moved):
            if step <= MAX_STEP * height:
                read[key] = face_noise(previous_image, image, pts, oval, float(step), self._flow)
        self._noise[position] = read
        while len(self._noise) > NOISE_POSITIONS:
            self._noise_stride *= 3
            self._noise = {p: v for p, v in self._noise.items() if p % self._noise_stride == 0}

    def _blur_covariance(self, image: np.ndarray, points: np.ndarray, moving: np.ndarray) -> np.ndarray:
        """(N, 2, 2) the blur covariance of one frame's N faces (:func:`face_blur_tensor`), each measured on a crop
        at the face's own resolution in the frame (its side :data:`BLUR_CROP_RANGE`-bounded): a camera's motion
        blur is a few pixels of the plate, which the unwrap crop's scale would shrink below what the measure
        tells apart. Only faces that are ``moving`` are measured (only they tell the shutter); NaN for the rest."""
        out = np.full((len(points), 2, 2), np.nan, np.float32)
        for i in np.flatnonzero(moving):
            lm = torch.from_numpy(points[i:i + 1]).to(self.device)
            height = float(face_height(lm)[0])
            size = int(min(max(round(height * (1.0 + 2.0 * CROP_MARGIN)), BLUR_CROP_RANGE[0]), BLUR_CROP_RANGE[1]))
            m = crop_frame_from_landmarks(lm, size, CROP_MARGIN)
            crop = region_crops(image, m, size, self.device)
            out[i] = face_blur_tensor(crop, transform_landmarks(lm, m), self.oval.to(crop.device), m,
                                      torch.tensor([height])).cpu().numpy()[0]
        return out

    def models(self, owners: Mapping[int, Mapping[int, Hashable]],
               velocities: Mapping[int, Mapping[int, np.ndarray]] | None = None) -> dict[int, dict[str, np.ndarray]]:
        """Track id -> the model's arrays (:meth:`TrackAppearance.to_arrays`), from ``owners``: track id ->
        {analysis position -> the track's face key there}. Tracks without a sampled face get none.
        ``velocities``: track id -> {analysis position -> (3,) the face's image velocity there in face heights a
        frame, and its face height in pixels}, from which the model's ``shutter`` is estimated
        (:func:`shutter_estimate`; None: not estimated)."""
        out = {}
        for track_id, owner in owners.items():
            owned = self.sampler.owned(dict(owner))
            model = build_track_appearance([sample for _, sample in owned], self.masks)
            if model is None:
                continue
            track_motion = (velocities or {}).get(track_id, {})  # position -> (vx, vy, face height)
            pairs = [(s.blur_covariance, track_motion[p]) for p, s in owned if p in track_motion]
            if pairs:
                motion = np.stack([v for _, v in pairs])
                model.shutter = np.asarray([shutter_estimate(np.stack([c for c, _ in pairs]), motion[:, :2],
                                                             motion[:, 2])], np.float32)
            readings = [self._noise[p][key] for p, key in owner.items() if key in self._noise.get(p, {})]
            for k, v in track_noise(np.stack(readings) if readings else np.zeros((0, len(NOISE_FIELDS)))).items():
                setattr(model, k, v)
            out[int(track_id)] = model.to_arrays()
        return out
