"""Training data for FaceDancer: image folders -> cached aligned faces -> deterministic pairs per step.

Layouts (:func:`scan_dataset`): ``root/<identity>/*.jpg`` (VGGFace2 / CelebA-by-identity) or a flat ``root/*.jpg``
(each image its own identity). Extensions: :data:`vidswap.io.sequences.IMAGE_EXTS`.

Preprocessing (:func:`prepare_faces`) runs once per dataset: the project's YuNet detector, the largest face, its
five keypoints aligned to the ArcFace template at side S (:func:`vidswap.faces.align.arcface_template`), faces
smaller than ``min_face`` pixels dropped. The result is an uint8 ``.npz`` (no pickles) in the cache folder, keyed by
the file list (paths, sizes, modification times), S and the filter settings; a changed dataset makes a new one.

Pairs (:class:`PairSampler`): at step k the *global* batch is a pure function of (seed, k) -- target and source
indices, which pairs are the same image (probability ``same_rate``, the paper's 20 %, and always the first pair
of the batch: "at least one pair in the batch being the same") and the colour augmentation factors. Each DDP
process takes its slice, so 1 process and N processes see the same global batch, and a resumed run the same
batches as an uninterrupted one. Augmentation (the paper: brightness, contrast and saturation on X_t and X_s;
ranges not given, ``augment`` here): multiply by b, blend with the image's mean grey by c, blend with its grey
image by s, each factor uniform in [1 - r, 1 + r].
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from vidswap.errors import InputError, NoFaceError
from vidswap.faces.align import arcface_template, estimate_alignment
from vidswap.io.sequences import IMAGE_EXTS

__all__ = ["DataConfig", "FaceSet", "scan_dataset", "prepare_faces", "PairSampler", "PairBatch", "augment",
           "holdout_split"]

CACHE_VERSION = 1


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
    """

    root: str = ""
    cache: str | None = None
    min_face: float = 32.0
    same_rate: float = 0.2
    augment: tuple[float, float, float] = (0.2, 0.2, 0.2)
    holdout: float = 0.1
    max_images: int = 0


@dataclass
class FaceSet:
    """Aligned faces: ``images`` (N, S, S, 3) uint8 RGB, ``identity`` (N,) int64 labels, ``names`` the identity
    names (label -> name), ``files`` the source file of each face (relative to the root)."""

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


def _cache_key(root: Path, items: list[tuple[str, str]], size: int, min_face: float) -> str:
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "size": size, "min_face": min_face}).encode())
    for rel, ident in items:
        st = (root / rel).stat()
        h.update(f"{rel}\0{ident}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def align_face(image: np.ndarray, kps: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 image, (5, 2) keypoints -> (size, size, 3) uint8 ArcFace-template crop."""
    m = estimate_alignment(kps.astype(np.float32), size, arcface_template(size)).astype(np.float64)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA if size < 200 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def prepare_faces(root: str | Path, size: int, cache_dir: str | Path, min_face: float = 32.0, detector=None,
                  max_images: int = 0, log=print) -> FaceSet:
    """Detect, align and filter every image once (cached; see the module doc). NoFaceError (exit 3) when no
    image has a usable face."""
    from vidswap.faces.detect import largest_face
    from vidswap.io.readers import read_image
    from vidswap.faces.align import as_rgb8

    root = Path(root)
    items = scan_dataset(root)
    if max_images:
        items = items[:max_images]
    cache = Path(cache_dir) / f"faces_{size}_{_cache_key(root, items, size, min_face)}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return FaceSet(z["images"], z["identity"], meta["names"], meta["files"])
    if detector is None:
        from vidswap.faces.detect import YuNetDetector
        from vidswap.models.registry import model_path

        detector = YuNetDetector.from_path(model_path("yunet"))
    names = sorted({ident for _, ident in items})
    label = {n: i for i, n in enumerate(names)}
    faces, ids, files = [], [], []
    for rel, ident in items:
        try:
            image = as_rgb8(read_image(root / rel))
        except InputError as exc:
            log(f"skipped {rel}: {exc}")
            continue
        det = largest_face(detector([image])[0])
        if det is None or min(det.width, det.height) < min_face:
            continue
        faces.append(align_face(image, det.kps, size))
        ids.append(label[ident])
        files.append(rel)
    if not faces:
        raise NoFaceError(f"no detectable face (>= {min_face:g} px) in any of the {len(items)} images under {root}; "
                          f"give aligned-able face photos")
    used = sorted(set(ids))
    remap = {old: new for new, old in enumerate(used)}
    out = FaceSet(np.stack(faces), np.array([remap[i] for i in ids], np.int64), [names[i] for i in used], files)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.part.npz")
    np.savez(tmp, images=out.images, identity=out.identity,
             meta=np.array(json.dumps({"names": out.names, "files": out.files})))
    os.replace(tmp, cache)
    log(f"prepared {len(out)} faces of {len(out.names)} identities from {len(items)} images -> {cache}")
    return out


def holdout_split(faces: FaceSet, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): of each identity with >= 2 images, every round(1/fraction)-th image (the
    last of each run) is held out. fraction 0: nothing held out."""
    if fraction <= 0:
        return np.arange(len(faces)), np.zeros(0, np.int64)
    every = max(2, round(1.0 / fraction))
    held = []
    for ident in np.unique(faces.identity):
        rows = np.flatnonzero(faces.identity == ident)
        if len(rows) >= 2:
            held.extend(rows[every - 1::every].tolist() or [int(rows[-1])])
    mask = np.zeros(len(faces), bool)
    mask[held] = True
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
