"""The training data of per-clip tuning: frames of the shot's target tracks, cut exactly as the render stage cuts
them (:func:`vidswap.render.batch_from_track` in the core's crop), plus source-photo crops of the same frames for
self-reenactment pairs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vidswap.composite.convert import to_float
from vidswap.faces.align import CropSpec, MeshCrop, transform_landmarks, warp_to_crop
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.io import Frame, MediaInfo, probe, read_frames
from vidswap.render import batch_from_track
from vidswap.swap.base import SwapBatch
from vidswap.swap.geometric.core import default_texture_size

#: ``fn(numbers) -> iterable of Frame`` (any order): how tuning reads the frames it samples.
FramesReader = Callable[[Sequence[int]], Iterable[Frame]]


@dataclass
class TuneData:
    """Aligned training crops of a clip (what :func:`collect_tune_data` reads), N frames.

    Attributes:
        numbers: (N,) frame numbers; tracks: (N,) their track ids.
        targets: the N frames as one :class:`~vidswap.swap.base.SwapBatch` (the render's recipe,
            :func:`vidswap.render.batch_from_track`).
        neutral: (N, 478, 3) the track's neutral shape (canonical frame) of each frame.
        textures: (N, 3, T, T) source-photo crops of the frames (what self-reenactment hands to the core's
            ``prepare``); texture_landmarks (N, 478, 3) in their pixels.
        next_index: (N,) index of the following frame of the same track in this data, -1 if none.
    """

    numbers: list[int]
    tracks: list[int]
    targets: SwapBatch
    neutral: Tensor
    textures: Tensor
    texture_landmarks: Tensor
    next_index: Tensor

    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def crops(self) -> Tensor:
        """(N, 3, S, S) the aligned target crops."""
        return self.targets.target_crops

    @property
    def landmarks(self) -> Tensor:
        """(N, 478, 3) the targets' landmarks in crop pixels."""
        return self.targets.target_landmarks

    def batch(self, idx: Sequence[int] | Tensor) -> SwapBatch:
        """Rows ``idx`` as a :class:`~vidswap.swap.base.SwapBatch`."""
        return self.targets.select(idx)

    def to(self, device: torch.device | str) -> "TuneData":
        return dataclasses.replace(self, targets=self.targets.to(device), neutral=self.neutral.to(device),
                                   textures=self.textures.to(device),
                                   texture_landmarks=self.texture_landmarks.to(device),
                                   next_index=self.next_index.to(device))


def frame_reader(source: MediaInfo | str | Path) -> FramesReader:
    """A ``frames_reader_fn`` for :func:`~vidswap.train.tune.cache.tune_for_shot` over a video or image sequence
    (a path, or the :class:`~vidswap.io.MediaInfo` of a probed input): ``fn(numbers)`` streams the range from the
    first to the last wanted frame (``vidswap.io.read_frames``) and yields the wanted :class:`~vidswap.io.Frame`
    objects."""
    info = source if isinstance(source, MediaInfo) else probe(source)

    def read(numbers: Sequence[int]):
        want = set(int(n) for n in numbers)
        if not want:
            return
        with read_frames(info, range(min(want), max(want) + 1)) as frames:
            for f in frames:
                if f.number in want:
                    yield f

    return read


def _sample_positions(n: int, budget: int) -> list[int]:
    """Anchor rows p of consecutive pairs (p, p+1) spread evenly over a track of n frames, about budget // 2."""
    if n < 2:
        return [0] if n == 1 else []
    pairs = max(1, budget // 2)
    if pairs >= n - 1:
        return list(range(n - 1))
    return sorted(set(np.linspace(0, n - 2, pairs).round().astype(int).tolist()))


def default_texture_crop(crop: CropSpec) -> MeshCrop:
    """The source-photo crops self-reenactment hands to ``prepare``: a mesh crop 1.25 x the core's crop side
    (rounded to 32) with a 0.25 margin -- the geometric core's own texture recipe at its default settings."""
    return MeshCrop(size=default_texture_size(crop.size), margin=0.25)


def collect_tune_data(analysis: ShotAnalysis, frames_reader_fn: FramesReader, crop: CropSpec, max_frames: int = 48,
                      track_ids: Sequence[int] | None = None, texture: CropSpec | None = None,
                      device: torch.device | str = "cpu") -> TuneData:
    """Sample up to ``max_frames`` frames of the shot's tracks (evenly, as consecutive pairs) and cut their target
    crops exactly as the render stage does (:func:`~vidswap.render.batch_from_track` in the core's ``crop``), plus
    source-photo crops of the same frames for self-reenactment (``texture``, default :func:`default_texture_crop`).

    Args:
        analysis: the shot's :class:`~vidswap.faces.tracksfile.ShotAnalysis`.
        frames_reader_fn: ``fn(numbers) -> iterable`` of :class:`~vidswap.io.Frame` in any order
            (:func:`frame_reader`).
        crop: the core's crop spec.
        max_frames: frame budget over all tracks (shared in proportion to track length).
        track_ids: tracks to sample (default all).
        texture: the source-photo crop spec.
        device: where the data lives.
    """
    tracks = [analysis.track(t) for t in track_ids] if track_ids is not None else list(analysis.tracks)
    tracks = [t for t in tracks if len(t.frames)]
    if not tracks:
        raise ValueError("collect_tune_data: no track with frames")
    texture = texture or default_texture_crop(crop)
    total = sum(len(t.frames) for t in tracks)
    picked: set[tuple[int, int]] = set()  # (track index, track row)
    for k, tr in enumerate(tracks):
        budget = max(2, int(round(max_frames * len(tr.frames) / total)))
        for p in _sample_positions(len(tr.frames), budget):
            picked.add((k, p))
            if p + 1 < len(tr.frames):
                picked.add((k, p + 1))
    wanted = sorted(picked)
    by_number: dict[int, list[tuple[int, int]]] = {}
    for k, p in wanted:
        by_number.setdefault(int(tracks[k].frames[p]), []).append((k, p))
    images: dict[int, np.ndarray] = {}
    for frame in frames_reader_fn(sorted(by_number)):
        if frame.number in by_number:
            images[int(frame.number)] = frame.image
    missing = sorted(set(by_number) - set(images))
    if missing:
        raise ValueError(f"collect_tune_data: the reader did not return frames {missing[:8]}")

    batches, textures, texture_lms, neutrals = [], [], [], []
    for k, p in wanted:
        tr = tracks[k]
        plate = to_float(images[int(tr.frames[p])], device)[None]
        batch, _ = batch_from_track(tr, [p], plate, crop, device)
        batches.append(batch)
        lm = torch.from_numpy(tr.smoothed[p:p + 1]).to(device)
        m = texture.frame_to_crop(lm)
        textures.append(warp_to_crop(plate, m, texture.size)[0])
        texture_lms.append(transform_landmarks(lm, m)[0])
        neutrals.append(torch.from_numpy(tr.neutral).to(device))

    nxt = torch.full((len(wanted),), -1, dtype=torch.long)
    for a, (ka, pa) in enumerate(wanted[:-1]):
        if wanted[a + 1] == (ka, pa + 1):
            nxt[a] = a + 1
    targets = SwapBatch.concat(batches)
    return TuneData(numbers=[int(tracks[k].frames[p]) for k, p in wanted],
                    tracks=[int(tracks[k].id) for k, _ in wanted], targets=targets,
                    neutral=torch.stack(neutrals).float(), textures=torch.stack(textures),
                    texture_landmarks=torch.stack(texture_lms), next_index=nxt.to(targets.target_crops.device))
