"""The aligned-face cache: detect, align and filter every dataset image once, into shards read lazily per item.

Layout of one cache (``<data.cache>/faces_<S>_<key>/``; the key hashes the file list with sizes and modification
times, S, ``min_face`` and ``shard_images``, so a changed dataset or setting makes a new cache):

* ``plan.json``: the identity names of the scanned dataset, the number of source images and of shards;
* ``shard_NNNNNN.npy``: uint8 (n, S, S, 3) RGB aligned faces of source images ``[j·shard_images, (j+1)·
  shard_images)`` (n <= shard_images: images without a usable face are dropped), a plain ``.npy`` (no pickles)
  that :class:`ShardedImages` memory-maps, so a process reads from disk only the faces it indexes;
* ``shard_NNNNNN.json``: written after its ``.npy`` (both by atomic rename), the commit mark of the shard: the
  scanned-identity label and the source file of each face, and the images skipped;
* ``index.json`` + ``labels.npy``: written once every shard is committed: shard names and counts, the identity
  names that kept a face, each face's label (0..U-1) and source file.

Resumable: a killed preparation leaves its committed shards; the next run (same command) does only the shards
without a ``.json``. Parallel: process r of W prepares shards j with ``j % W == r`` (``vidswap train prepare``
under ``torchrun`` or as a farm array job with ``--part r/W``, or the trainer's own DDP ranks); whichever process
finds every shard committed writes the index (idempotent: same content, atomic rename).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from vidswap.errors import InputError, NoFaceError
from vidswap.train.facedancer.data import FaceSet, align_face, scan_dataset

__all__ = ["CACHE_VERSION", "ShardedImages", "cache_folder", "prepare_shards", "load_face_cache", "prepare_faces",
           "PrepareReport"]

CACHE_VERSION = 2


class ShardedImages:
    """Read-only (N, S, S, 3) uint8 view over shard files: ``images[rows]`` gathers the rows (an int, a slice or
    an integer array, any shape) from the shards' memory maps, opened on first use; nothing else is read. At most
    ``max_open`` maps stay open (least recently used closed first): each holds a file descriptor, and VGGFace2
    makes ~1,600 shards against a usual limit of 1,024 descriptors per process."""

    def __init__(self, files: list[Path], counts: list[int], size: int, max_open: int = 256):
        self.files, self.size = [Path(f) for f in files], int(size)
        self.offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self.max_open = max(1, int(max_open))
        self._maps: OrderedDict[int, np.ndarray] = OrderedDict()

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (int(self.offsets[-1]), self.size, self.size, 3)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def shard(self, j: int) -> np.ndarray:
        """Shard ``j``'s memory map (n_j, S, S, 3)."""
        if j in self._maps:
            self._maps.move_to_end(j)
            return self._maps[j]
        while len(self._maps) >= self.max_open:
            self._maps.popitem(last=False)  # the map (and its descriptor) closes when no array views it
        self._maps[j] = np.load(self.files[j], mmap_mode="r", allow_pickle=False)
        return self._maps[j]

    def __getitem__(self, index) -> np.ndarray:
        n = len(self)
        if isinstance(index, slice):
            index = np.arange(n)[index]
        idx = np.asarray(index, dtype=np.int64)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"face row out of range 0..{n - 1}")
        flat = np.where(idx < 0, idx + n, idx).ravel()
        out = np.empty((flat.size, self.size, self.size, 3), np.uint8)
        which = np.searchsorted(self.offsets, flat, side="right") - 1
        for j in np.unique(which):
            sel = which == j
            out[sel] = self.shard(int(j))[flat[sel] - self.offsets[j]]
        return out.reshape(*idx.shape, self.size, self.size, 3)

    def __getstate__(self):  # maps are per process
        return {**self.__dict__, "_maps": OrderedDict()}


def _cache_key(root: Path, items: list[tuple[str, str]], size: int, min_face: float, shard_images: int) -> str:
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "size": size, "min_face": min_face,
                                   "shard_images": shard_images}).encode())
    for rel, ident in items:
        st = (root / rel).stat()
        h.update(f"{rel}\0{ident}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def cache_folder(root: Path, items: list[tuple[str, str]], size: int, cache_dir: Path, min_face: float,
                 shard_images: int) -> Path:
    """The cache folder of this dataset and these settings (see the module doc)."""
    return Path(cache_dir) / f"faces_{size}_{_cache_key(root, items, size, min_face, shard_images)}"


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    write(tmp)
    os.replace(tmp, path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    _atomic_write(path, write)


def _write_json(path: Path, obj) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj)))


def shard_name(j: int) -> str:
    return f"shard_{j:06d}"


@dataclass
class PrepareReport:
    """What one :func:`prepare_shards` call did: the cache folder, shards done here / already there / in all,
    images read here, and whether the index exists (every shard committed)."""

    folder: Path
    done: int
    reused: int
    shards: int
    images: int
    complete: bool


def prepare_shards(root: str | Path, size: int, cache_dir: str | Path, min_face: float = 32.0, detector=None,
                   max_images: int = 0, shard_images: int = 2048, part: int = 0, parts: int = 1,
                   log: Callable[[str], None] = print) -> PrepareReport:
    """Prepare this process's uncommitted shards (``j % parts == part``), then write the index if every shard
    is committed (see the module doc)."""
    from vidswap.faces.align import as_rgb8
    from vidswap.faces.detect import largest_face
    from vidswap.io.readers import read_image

    if shard_images < 1 or not 0 <= part < parts:
        raise InputError(f"need shard_images >= 1 and 0 <= part < parts, got {shard_images}, {part}/{parts}")
    root = Path(root)
    items = scan_dataset(root)
    if max_images:
        items = items[:max_images]
    folder = cache_folder(root, items, size, Path(cache_dir), min_face, shard_images)
    names = sorted({ident for _, ident in items})
    count = -(-len(items) // shard_images)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "plan.json").is_file():
        _write_json(folder / "plan.json", {"version": CACHE_VERSION, "size": size, "images": len(items),
                                           "shards": count, "shard_images": shard_images, "names": names})
    if (folder / "index.json").is_file():
        return PrepareReport(folder, 0, count, count, 0, True)
    label = {n: i for i, n in enumerate(names)}
    done = reused = read = 0
    for j in range(part, count, parts):
        if (folder / f"{shard_name(j)}.json").is_file():
            reused += 1
            continue
        if detector is None:
            from vidswap.faces.detect import YuNetDetector
            from vidswap.models.registry import model_path

            detector = YuNetDetector.from_path(model_path("yunet"))
        faces, labels, files, skipped = [], [], [], 0
        for rel, ident in items[j * shard_images:(j + 1) * shard_images]:
            read += 1
            try:
                image = as_rgb8(read_image(root / rel))
            except InputError as exc:
                log(f"skipped {rel}: {exc}")
                skipped += 1
                continue
            det = largest_face(detector([image])[0])
            if det is None or min(det.width, det.height) < min_face:
                skipped += 1
                continue
            faces.append(align_face(image, det.kps, size))
            labels.append(label[ident])
            files.append(rel)
        array = np.stack(faces) if faces else np.zeros((0, size, size, 3), np.uint8)
        _save_npy(folder / f"{shard_name(j)}.npy", array)
        _write_json(folder / f"{shard_name(j)}.json", {"labels": labels, "files": files, "skipped": skipped})
        done += 1
        log(f"face cache shard {j + 1}/{count}: {len(faces)} faces ({skipped} images skipped)")
    complete = write_index(folder, root)
    return PrepareReport(folder, done, reused, count, read, complete)


def write_index(folder: Path, root: Path | None = None) -> bool:
    """Write ``index.json`` + ``labels.npy`` when every shard of ``plan.json`` is committed; returns whether the
    index exists. NoFaceError when the complete cache holds no face."""
    if (folder / "index.json").is_file():
        return True
    plan = json.loads((folder / "plan.json").read_text())
    metas = []
    for j in range(plan["shards"]):
        meta = folder / f"{shard_name(j)}.json"
        if not meta.is_file():
            return False
        metas.append(json.loads(meta.read_text()))
    raw = np.array([lab for m in metas for lab in m["labels"]], np.int64)
    if raw.size == 0:
        raise NoFaceError(f"no detectable face in any of the {plan['images']} images under {root or folder}; give "
                          f"align-able face photos")
    used, labels = np.unique(raw, return_inverse=True)
    _save_npy(folder / "labels.npy", labels.astype(np.int64))
    _write_json(folder / "index.json", {
        "version": CACHE_VERSION, "size": plan["size"], "faces": int(raw.size),
        "shards": [{"file": f"{shard_name(j)}.npy", "count": len(m["labels"])} for j, m in enumerate(metas)],
        "names": [plan["names"][i] for i in used], "files": [f for m in metas for f in m["files"]]})
    for stale in folder.glob(".shard_*.part"):  # a killed shard writer's leftovers (every shard is committed now)
        stale.unlink(missing_ok=True)
    return True


def load_face_cache(folder: str | Path) -> FaceSet:
    """The :class:`FaceSet` of a complete cache folder, its images a lazy :class:`ShardedImages`."""
    folder = Path(folder)
    index = json.loads((folder / "index.json").read_text())
    images = ShardedImages([folder / s["file"] for s in index["shards"]], [s["count"] for s in index["shards"]],
                           index["size"])
    labels = np.load(folder / "labels.npy", allow_pickle=False)
    return FaceSet(images, labels, index["names"], index["files"])


def prepare_faces(root: str | Path, size: int, cache_dir: str | Path, min_face: float = 32.0, detector=None,
                  max_images: int = 0, shard_images: int = 2048, log: Callable[[str], None] = print) -> FaceSet:
    """One process: prepare every missing shard and load the cache. NoFaceError (exit 3) when no image has a
    usable face."""
    report = prepare_shards(root, size, cache_dir, min_face, detector, max_images, shard_images, log=log)
    faces = load_face_cache(report.folder)
    if report.done:
        log(f"prepared {len(faces)} faces of {len(faces.names)} identities -> {report.folder}")
    return faces
