"""The appearance part of the analyze pass: unwrap sampled faces while frames stream, build track models at the end.

The analyze pass calls :meth:`AppearanceCollector.push` for each batch of frames with every face's landmarks and
a key naming the face within its frame, and :meth:`AppearanceCollector.models` once the faces are linked into
tracks. Faces of sampled frames (:class:`~vidswap.appearance.track.AppearanceSampler`) are cropped (the same
similarity crop as the render, at a size matched to the texture), unwrapped in linear light with their
visibility, and their texel normals taken from the plate-pixel landmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

import numpy as np
import torch

from vidswap.appearance.source import source_masks
from vidswap.appearance.texture_space import TextureSpace, build_texture_space, region_masks, texel_normals
from vidswap.appearance.sharpness import relative_edge_blur
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

    def __post_init__(self) -> None:
        self.sampler = AppearanceSampler(max_frames=self.max_frames, stride=max(1, int(self.every)))

    def push(self, images: Sequence[np.ndarray], points: Sequence[np.ndarray], keys: Sequence[Sequence[Hashable]]
             ) -> None:
        """One batch of consecutive frames: images HxWx3 (any depth), per frame (N_i, 478, 3) landmarks in frame
        pixels and N_i face keys."""
        rows, crops_of = [], []
        for image, pts, ks in zip(images, points, keys):
            position = self._position
            self._position += 1
            if not self.sampler.wants(position) or len(pts) == 0:
                continue
            rows.append((position, list(ks)))
            crops_of.append((image, np.asarray(pts, np.float32)))
        if not rows:
            return
        size = int(round(self.space.size * CROP_FACTOR))
        crops, crop_lms, frame_lms, heights = [], [], [], []
        for image, pts in crops_of:
            lm = torch.from_numpy(pts).to(self.device)
            m = crop_frame_from_landmarks(lm, size, CROP_MARGIN)
            crops.append(region_crops(image, m, size, self.device))  # only the faces' region goes to float
            crop_lms.append(transform_landmarks(lm, m))
            frame_lms.append(lm)
            heights.append(face_height(crop_lms[-1]))
        space = self.space.to(self.device)
        crops, crop_lms = torch.cat(crops), torch.cat(crop_lms)
        tex, w = unwrap_frames(space, crops, crop_lms)
        normals = texel_normals(space, torch.cat(frame_lms))
        blur = relative_edge_blur(crops, crop_lms, self.oval.to(crops.device), torch.cat(heights))
        i = 0
        for position, ks in rows:
            for key in ks:
                self.sampler.push(position, key, FaceSample(tex[i], w[i], normals[i], float(blur[i])))
                i += 1

    def models(self, owners: Mapping[int, Mapping[int, Hashable]]) -> dict[int, dict[str, np.ndarray]]:
        """Track id -> the model's arrays (:meth:`TrackAppearance.to_arrays`), from ``owners``: track id ->
        {analysis position -> the track's face key there}. Tracks without a sampled face get none."""
        out = {}
        for track_id, owner in owners.items():
            model = build_track_appearance(self.sampler.samples(dict(owner)), self.masks)
            if model is not None:
                out[int(track_id)] = model.to_arrays()
        return out
