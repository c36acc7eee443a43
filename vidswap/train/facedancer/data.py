"""Training data for FaceDancer: image folders -> cached aligned faces -> deterministic pairs per step.

Layouts (:func:`scan_dataset`): ``root/<identity>/*.jpg`` (VGGFace2 / CelebA-by-identity) or a flat ``root/*.jpg``
(each image its own identity). Extensions: :data:`vidswap.io.sequences.IMAGE_EXTS`.

Preprocessing (:mod:`.facecache`) runs once per dataset: the project's YuNet detector, the largest face, its
five keypoints aligned to the ArcFace template at side S (:func:`align_face`), faces smaller than ``min_face``
pixels dropped, stored as uint8 ``.npy`` shards plus an index that the dataset reads lazily per item (resumable,
parallel over processes; see that module).

Pairs (:class:`PairSampler`): at step k the *global* batch is a pure function of (seed, k) -- target and source
indices, which pairs are the same image (probability ``same_rate``, the paper's 20 %, and always the first pair
of the batch: "at least one pair in the batch being the same") and the colour augmentation factors. Each DDP
process takes its slice, so 1 process and N processes see the same global batch, and a resumed run the same
batches as an uninterrupted one. Augmentation (the paper: brightness, contrast and saturation on X_t and X_s;
ranges not given, ``augment`` here): multiply by b, blend with the image's mean grey by c, blend with its grey
image by s, each factor uniform in [1 - r, 1 + r].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from vidswap.errors import InputError
from vidswap.faces.align import arcface_template, estimate_alignment
from vidswap.io.sequences import IMAGE_EXTS

__all__ = ["DataConfig", "FaceSet", "scan_dataset", "align_face", "PairSampler", "PairBatch", "augment",
           "holdout_split", "local_rows"]


@dataclass(frozen=True)
class DataConfig:
    """``data:`` section of train.yaml.

    Attributes:
        root: the image folder.
        cache: preprocessing cache folder (default: ``<train.out>/data_cache``).
        min_face: smallest face kept (detector box short side, pixels).
        same_rate: probability that a pair is the same image (paper: 0.2).
        augment: brightness, contrast, saturation ranges r (factor uniform in [1 - r, 1 + r]).
        holdout: fraction of each identity's images held out for evaluation (every 1/holdout-th image).
        max_images: use at most this many images (0: all), the first in sorted order.
        shard_images: source images per cache shard (a shard holds their aligned faces; 2048 at 256² is at most
            ~400 MB).
    """

    root: str = ""
    cache: str | None = None
    min_face: float = 32.0
    same_rate: float = 0.2
    augment: tuple[float, float, float] = (0.2, 0.2, 0.2)
    holdout: float = 0.1
    max_images: int = 0
    shard_images: int = 2048


@dataclass
class FaceSet:
    """Aligned faces: ``images`` (N, S, S, 3) uint8 RGB (an array, or the cache's lazy
    :class:`~.facecache.ShardedImages`: only indexed rows are read), ``identity`` (N,) int64 labels, ``names`` the
    identity names (label -> name), ``files`` the source file of each face (relative to the root)."""

    images: np.ndarray
    identity: np.ndarray
    names: list[str]
    files: list[str]

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, rows: np.ndarray) -> "FaceSet":
        return FaceSet(self.images[rows], self.identity[rows], self.names, [self.files[i] for i in rows])

    def tensor(self, rows: Tensor | np.ndarray) -> Tensor:
        """(B, 3, S, S) float32 in [0, 1] of the given rows."""
        idx = np.asarray(rows, dtype=np.int64)
        return torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2).float() / 255.0


def scan_dataset(root: str | Path) -> list[tuple[str, str]]:
    """(relative path, identity name) of every image under ``root``, sorted: sub-folders are identities, images
    directly in ``root`` are each their own identity. InputError for a missing or image-less folder."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"dataset folder {root} does not exist (data.root in train.yaml)")
    items: list[tuple[str, str]] = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in IMAGE_EXTS or not path.is_file():
            continue
        rel = path.relative_to(root)
        identity = rel.parts[0] if len(rel.parts) > 1 else path.stem
        items.append((rel.as_posix(), identity))
    if not items:
        raise InputError(f"dataset folder {root} has no images ({', '.join(IMAGE_EXTS)}); give a folder of face "
                         f"photos, one sub-folder per identity or flat")
    return items


def align_face(image: np.ndarray, kps: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 image, (5, 2) keypoints -> (size, size, 3) uint8 ArcFace-template crop."""
    m = estimate_alignment(kps.astype(np.float32), size, arcface_template(size)).astype(np.float64)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA if size < 200 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def holdout_split(faces: FaceSet, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): of each identity with >= 2 images, every round(1/fraction)-th image (the
    last of each run) is held out, or its last image when it has fewer. fraction 0: nothing held out.
    One stable sort over the labels (O(N log N), VGGFace2-size label arrays take well under a second)."""
    if fraction <= 0:
        return np.arange(len(faces)), np.zeros(0, np.int64)
    every = max(2, round(1.0 / fraction))
    labels = np.asarray(faces.identity)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    counts = np.diff(np.r_[starts, len(labels)])
    pos = np.arange(len(labels)) - np.repeat(starts, counts)  # rank within its identity (file order)
    cnt = np.repeat(counts, counts)
    held_sorted = (cnt >= 2) & (((pos + 1) % every == 0) | ((cnt < every) & (pos == cnt - 1)))
    mask = np.zeros(len(labels), bool)
    mask[order[held_sorted]] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


@dataclass
class PairBatch:
    """One global batch: target / source rows (B,), same (B,) float 0/1, aug_t / aug_s (B, 3) factors."""

    target: Tensor
    source: Tensor
    same: Tensor
    aug_t: Tensor
    aug_s: Tensor

    def slice(self, rank: int, world: int) -> "PairBatch":
        """This process's contiguous share of the global batch."""
        n = self.target.shape[0] // world
        sl = slice(rank * n, (rank + 1) * n)
        return PairBatch(self.target[sl], self.source[sl], self.same[sl], self.aug_t[sl], self.aug_s[sl])


@dataclass(frozen=True)
class PairSampler:
    """Deterministic global batches of ``batch`` pairs over ``n`` faces (see the module doc)."""

    n: int
    batch: int
    same_rate: float = 0.2
    augment: tuple[float, float, float] = (0.2, 0.2, 0.2)
    seed: int = 0

    def __call__(self, step: int) -> PairBatch:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        t = torch.randint(self.n, (self.batch,), generator=g)
        s = torch.randint(self.n, (self.batch,), generator=g)
        same = torch.rand(self.batch, generator=g) < self.same_rate
        same[0] = True
        s = torch.where(same, t, s)
        r = torch.tensor(self.augment, dtype=torch.float32)
        aug_t = 1.0 + (torch.rand(self.batch, 3, generator=g) * 2 - 1) * r
        aug_s = 1.0 + (torch.rand(self.batch, 3, generator=g) * 2 - 1) * r
        return PairBatch(t, s, same.float(), aug_t, aug_s)


def local_rows(sampler: PairSampler, train_rows: np.ndarray, step: int, rank: int, world: int
               ) -> tuple[np.ndarray, np.ndarray, PairBatch]:
    """(target face rows, source face rows, this rank's PairBatch) at ``step``: the rank's slice of the global
    batch mapped to face rows -- the only rows the rank reads."""
    pb = sampler(step).slice(rank, world)
    return train_rows[pb.target.numpy()], train_rows[pb.source.numpy()], pb


def augment(images: Tensor, factors: Tensor) -> Tensor:
    """Colour jitter: images (B, 3, H, W) in [0, 1], factors (B, 3) = (brightness, contrast, saturation) ->
    (B, 3, H, W) clamped to [0, 1]. Factors of 1 return the images unchanged."""
    b, c, s = (factors[:, i, None, None, None] for i in range(3))
    x = images * b
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - grey.mean(dim=(2, 3), keepdim=True)) * c + grey.mean(dim=(2, 3), keepdim=True)
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = (x - grey) * s + grey
    return x.clamp(0.0, 1.0)
