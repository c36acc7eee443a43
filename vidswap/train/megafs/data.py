"""MegaFS training faces: the dataset's images in the FFHQ crop (the generator's alignment), with the five
keypoints in crop pixels (the identity network's ArcFace crop is cut from them, differentiably).

Reuses FaceDancer's dataset layout, sampler and augmentation (:mod:`vidswap.train.facedancer.data`); only the
crop differs: :func:`~vidswap.swap.stylegan.align.ffhq_matrix` from the detector's keypoints instead of the ArcFace
template. Cached as one uint8 ``.npz`` keyed by the file list (paths, sizes, modification times), the size and
the filter settings (small sets; FaceDancer's sharded cache is for datasets at scale).
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
from vidswap.faces.align import estimate_alignment, warp_to_crop
from vidswap.swap.stylegan.align import ffhq_matrix
from vidswap.train.facedancer.data import FaceSet, scan_dataset

__all__ = ["FFHQFaces", "prepare_ffhq_faces", "arcface_crops"]

CACHE_VERSION = 1


@dataclass
class FFHQFaces:
    """``faces`` (a FaceSet of FFHQ crops) and ``kps`` (N, 5, 2) float32 keypoints in crop pixels."""

    faces: FaceSet
    kps: np.ndarray


def _cache_key(root: Path, items: list[tuple[str, str]], size: int, min_face: float) -> str:
    """sha256 prefix over the settings and every file's path, identity, size and modification time."""
    h = hashlib.sha256(json.dumps({"v": CACHE_VERSION, "ffhq": size, "min_face": min_face}).encode())
    for rel, ident in items:
        st = (root / rel).stat()
        h.update(f"{rel}\0{ident}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _crop(image: np.ndarray, kps: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    m = ffhq_matrix(torch.from_numpy(kps[None].astype(np.float64)), size)[0].numpy().astype(np.float64)
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT_101)
    return crop, (kps @ m[:, :2].T + m[:, 2]).astype(np.float32)


def prepare_ffhq_faces(root: str | Path, size: int, cache_dir: str | Path, min_face: float = 32.0,
                       max_images: int = 0, log=print) -> FFHQFaces:
    """Detect (YuNet, largest face), crop and cache every image once; NoFaceError (exit 3) when none has a face."""
    from vidswap.faces.align import as_rgb8
    from vidswap.faces.detect import YuNetDetector, largest_face
    from vidswap.io.readers import read_image
    from vidswap.models.registry import model_path

    root = Path(root)
    items = scan_dataset(root)[: max_images or None]
    cache = Path(cache_dir) / f"ffhq_{size}_{_cache_key(root, items, size, min_face)}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            return FFHQFaces(FaceSet(z["images"], z["identity"], meta["names"], meta["files"]), z["kps"])
    detector = YuNetDetector.from_path(model_path("yunet"))
    names = sorted({ident for _, ident in items})
    label = {n: i for i, n in enumerate(names)}
    crops, kpss, ids, files = [], [], [], []
    for rel, ident in items:
        try:
            image = as_rgb8(read_image(root / rel))
        except InputError as exc:
            log(f"skipped {rel}: {exc}")
            continue
        det = largest_face(detector([image])[0])
        if det is None or min(det.width, det.height) < min_face:
            continue
        crop, kps = _crop(image, np.asarray(det.kps, np.float32), size)
        crops.append(crop)
        kpss.append(kps)
        ids.append(label[ident])
        files.append(rel)
    if not crops:
        raise NoFaceError(f"no detectable face (>= {min_face:g} px) in any of the {len(items)} images under {root}")
    used = sorted(set(ids))
    remap = {old: new for new, old in enumerate(used)}
    out = FFHQFaces(FaceSet(np.stack(crops), np.array([remap[i] for i in ids], np.int64), [names[i] for i in used],
                            files), np.stack(kpss))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.part.npz")
    np.savez(tmp, images=out.faces.images, identity=out.faces.identity, kps=out.kps,
             meta=np.array(json.dumps({"names": out.faces.names, "files": out.faces.files})))
    os.replace(tmp, cache)
    log(f"prepared {len(out.faces)} FFHQ crops of {len(out.faces.names)} identities -> {cache}")
    return out


def ffhq_faces_for_run(data, size: int, out: Path, info, log=print) -> FFHQFaces:
    """The run's FFHQ-crop faces under DDP: rank 0 prepares ``data`` (a train.yaml data section: root, cache,
    min_face, max_images; cache default ``<out>/data_cache``) while the others wait, then they read its cache."""
    cache = Path(data.cache) if data.cache else Path(out) / "data_cache"

    def prepare() -> FFHQFaces:
        return prepare_ffhq_faces(data.root, size, cache, data.min_face, data.max_images, log=log)

    faces = prepare() if info.rank == 0 else None
    if info.enabled:
        torch.distributed.barrier()
    return faces if faces is not None else prepare()


def arcface_crops(images: Tensor, kps: Tensor) -> Tensor:
    """(B, 3, S, S) crops and their (B, 5, 2) keypoints -> (B, 3, 112, 112) ArcFace-template crops
    (differentiable in ``images``)."""
    m = torch.from_numpy(estimate_alignment(kps.detach().cpu().numpy(), 112)).float().to(images.device)
    return warp_to_crop(images, m, 112)
