"""Held-out evaluation of a FaceDancer generator with ``vidswap eval``'s measures.

On fixed held-out pairs (target, source of another identity where the held-out set has several):

* ``id_swap``: mean cosine between the swap's and the source's identity vectors (the training encoder);
* ``id_target``: the same for the unchanged target (the baseline the swap must rise above);
* ``retrieval``: the paper's ID retrieval -- the fraction of swaps whose nearest gallery identity (cosine to
  the unit-length mean embedding of each identity, :mod:`.retrieval`) is the true source -- with the independent
  ArcFace judge when it is in the model cache (``arcface_mbf``, evaluation only), else the training encoder
  (``retrieval_judge`` says which). The gallery (``run.eval_gallery``) is every held-out identity (``heldout``:
  its faces embedded in batches once, kept in the run folder's ``eval_gallery.npz`` for resumed runs;
  ``retrieval_gallery`` gives its size) or only the pairs' sources (``pairs``);
* ``pose``: mean head-rotation angle (degrees) between swap and target from the 106-point landmark judge
  (:func:`vidswap.eval.metrics.fit_pose`), when that judge is cached; the face box is the target crop's
  template box.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vidswap.train.facedancer.data import FaceSet
from vidswap.train.facedancer.identity import IdentityNet, arcface_window
from vidswap.train.facedancer.retrieval import Gallery, class_means, embed_rows, top1_retrieval

__all__ = ["heldout_pairs", "evaluate_heldout", "Judges", "judge_embedder", "heldout_gallery",
           "stored_heldout_gallery"]

TRAINING_ENCODER = "training identity encoder"


def heldout_pairs(identity: np.ndarray, rows: np.ndarray, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(target rows, source rows), ``count`` pairs among ``rows``: a source of another identity when there is
    one, else another image. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    rows = np.asarray(rows)
    if len(rows) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    targets, sources = [], []
    for k in range(count):
        t = rows[k % len(rows)]
        other = rows[identity[rows] != identity[t]]
        if len(other) == 0:
            other = rows[rows != t]
        targets.append(t)
        sources.append(other[rng.integers(len(other))])
    return np.array(targets, np.int64), np.array(sources, np.int64)


class Judges:
    """The evaluation-only judges that are in the model cache (none are fetched here: no network in training)."""

    def __init__(self):
        from vidswap.errors import ModelError
        from vidswap.models.registry import model_path

        self.arcface = self.landmarks = None
        try:
            from vidswap.eval.judges import ArcFaceJudge, Landmarks106
            from vidswap.models.runtime import onnx_session, prepare_onnx

            self.arcface = ArcFaceJudge(onnx_session(prepare_onnx(model_path("arcface_mbf"), dynamic_batch=True)))
        except (ModelError, KeyError):
            pass
        try:
            self.landmarks = Landmarks106(onnx_session(prepare_onnx(model_path("landmarks_2d106"),
                                                                    dynamic_batch=True)))
        except (ModelError, KeyError):
            pass


def judge_embedder(judges: Judges | None, idnet: IdentityNet, device: torch.device
                   ) -> tuple[str, Callable[[torch.Tensor], np.ndarray]]:
    """(name, embed): the retrieval embedder, ``embed((B, 3, S, S) crops in [0, 1]) -> (B, D)`` unit vectors --
    the independent ArcFace judge when cached, else the training encoder."""
    if judges is not None and judges.arcface is not None:
        return "arcface_mbf", lambda x: judges.arcface.embed_crops(arcface_window(x.float().cpu()).numpy())
    return TRAINING_ENCODER, lambda x: idnet(x.to(device)).float().cpu().numpy()


@torch.no_grad()
def heldout_gallery(faces: FaceSet, rows: np.ndarray, judges: Judges | None, idnet: IdentityNet, batch: int = 256,
                    device: torch.device = torch.device("cpu")) -> Gallery:
    """The retrieval gallery of the held-out ``rows``: every held-out identity's mean embedding, the faces
    embedded ``batch`` at a time (read lazily from the cache). Built once per run: the faces and the judge do not
    change."""
    judge, embed = judge_embedder(judges, idnet, device)
    rows = np.asarray(rows, np.int64)
    return Gallery(*class_means(embed_rows(faces.tensor, embed, rows, batch), faces.identity[rows]), judge)


def gallery_key(faces: FaceSet, rows: np.ndarray, judge: str) -> str:
    """What a stored gallery must match: the judge, the held-out rows, their labels and source files."""
    rows = np.asarray(rows, np.int64)
    h = hashlib.sha256(judge.encode())
    h.update(rows.tobytes())
    h.update(np.asarray(faces.identity[rows], np.int64).tobytes())
    h.update("\0".join(faces.files[i] for i in rows).encode())
    return h.hexdigest()


def stored_heldout_gallery(path: Path, faces: FaceSet, rows: np.ndarray, judges: Judges | None, idnet: IdentityNet,
                           device: torch.device = torch.device("cpu")) -> tuple[Gallery, bool]:
    """(gallery, reused): :func:`heldout_gallery`, kept in ``path`` (``.npz``, no pickles) so that a resumed run
    does not embed the held-out faces again; rebuilt when the judge, the rows or their faces differ."""
    judge, _ = judge_embedder(judges, idnet, device)
    key = gallery_key(faces, rows, judge)
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) == key:
                return Gallery(z["classes"], z["vectors"], str(z["judge"])), True
    gallery = heldout_gallery(faces, rows, judges, idnet, device=device)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part.npz")
    np.savez(tmp, classes=gallery.classes, vectors=gallery.vectors, judge=np.array(gallery.judge), key=np.array(key))
    os.replace(tmp, path)
    return gallery, False


def _template_box(size: int) -> np.ndarray:
    """The face box of an ArcFace-template crop of side ``size`` (the 112 crop's face, scaled): x0 y0 x1 y1."""
    k = size / 128.0
    return np.array([8 * k + 14 * k, 20 * k, 120 * k - 14 * k, 112 * k], np.float32)


@torch.no_grad()
def evaluate_heldout(generator: torch.nn.Module, idnet: IdentityNet, faces: FaceSet, targets: np.ndarray,
                     sources: np.ndarray, judges: Judges | None = None, batch: int = 8,
                     device: torch.device = torch.device("cpu"), gallery: Gallery | None = None
                     ) -> dict[str, float | str]:
    """The measures of the module doc on the given pairs (empty dict for no pairs). ``gallery``: the retrieval
    gallery (:func:`heldout_gallery`, built once per run); None: the pairs' sources."""
    if len(targets) == 0:
        return {}
    was_training = generator.training
    generator.eval()
    swaps, z_src, z_swap, z_tgt = [], [], [], []
    for i in range(0, len(targets), batch):
        xt = faces.tensor(targets[i:i + batch]).to(device)
        xs = faces.tensor(sources[i:i + batch]).to(device)
        zs = idnet(xs)
        xc = generator(xt, zs).float()
        swaps.append(xc.cpu())
        z_src.append(zs.cpu())
        z_swap.append(idnet(xc).cpu())
        z_tgt.append(idnet(xt).cpu())
    generator.train(was_training)
    swaps_t = torch.cat(swaps)
    zs, zc, zt = torch.cat(z_src), torch.cat(z_swap), torch.cat(z_tgt)
    out: dict[str, float | str] = {"pairs": float(len(targets)), "id_swap": float((zs * zc).sum(-1).mean()),
                                   "id_target": float((zs * zt).sum(-1).mean())}
    src_ident = faces.identity[sources]
    judge, embed = judge_embedder(judges, idnet, device)
    if gallery is None:  # the pairs' own sources
        rows = np.unique(sources)
        gallery = Gallery(*class_means(embed_rows(faces.tensor, embed, rows, batch * 8), faces.identity[rows]), judge)
    if len(gallery) >= 2:
        queries = zc.numpy() if gallery.judge == TRAINING_ENCODER else np.concatenate(
            [embed(swaps_t[i:i + batch * 8]) for i in range(0, len(swaps_t), batch * 8)])
        out["retrieval"] = top1_retrieval(queries, src_ident, gallery)
        out["retrieval_judge"] = gallery.judge
        out["retrieval_gallery"] = float(len(gallery))
    if judges is not None and judges.landmarks is not None:
        from vidswap.eval.metrics import fit_pose, pose_error

        size = faces.images.shape[1]
        box = np.repeat(_template_box(size)[None], len(targets), 0)
        to8 = lambda x: (x.permute(0, 2, 3, 1).clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)  # noqa: E731
        pts_c = judges.landmarks(list(to8(swaps_t)), box)
        pts_t = judges.landmarks(list(faces.images[targets]), box)
        err = pose_error(fit_pose(pts_c)[1], fit_pose(pts_t)[1])["angle"]
        out["pose"] = float(np.nanmean(err))
    return out
