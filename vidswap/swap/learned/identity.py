"""The source identity vector a one-shot swapper reads, from the source photos and the swapper's identity network.

* ArcFace embedding (:func:`arcface_embeddings`): each photo's five keypoints (from its dense landmarks) aligned
  by a similarity to the ArcFace 112 template (InsightFace ``face_align.norm_crop``: ``arcface_dst`` at 112), the
  112 x 112 RGB crop normalised ``(x - 127.5) / 127.5`` on 8-bit values, i.e. ``(x - 0.5) / 0.5`` on [0, 1]
  (InsightFace ``model_zoo/arcface_onnx.py``: ``input_mean = input_std = 127.5`` for graphs without a baked-in
  Sub/Mul; FaceFusion ``face_recognizer.py``: ``x / 127.5 - 1``), through the identity network -> (512,).
* Several photos: the mean of their L2-normalised embeddings, re-normalised (InsightFace's ``normed_embedding``
  per face; FaceFusion averages the faces' embeddings, ``get_average_face``).
* inswapper (:func:`inswapper_vector`): ``latent = normed_embedding @ emap``, then ``latent /= ||latent||``
  (InsightFace ``model_zoo/inswapper.py``, ``INSwapper.get``), ``emap`` being the graph's last initializer.
* SimSwap class (:func:`converted_vector`): the ArcFace embedding through the embedding converter when one is
  configured (FaceFusion ``crossface_simswap``: ``convert_source_embedding``), then L2-normalised.
* GHOST (:func:`ghost_vector`): the mean raw embedding of GHOST's own identity network, or of the w600k ArcFace
  through ``crossface_ghost``; not normalised (see :mod:`vidswap.models.router`, ``ghost_256``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vidswap.faces.align import arcface_template, kps5_from_landmarks, similarity_transform, warp_to_crop
from vidswap.swap.base import SourceFace
from vidswap.swap.learned.runtime import LearnedSession

ARCFACE_SIZE = 112


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x / ||x||`` along ``axis`` (float64 norms, float32 out)."""
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=axis, keepdims=True)).astype(np.float32)


def arcface_crops(sources: list[SourceFace], template: np.ndarray | None = None) -> Tensor:
    """Each source photo aligned to the ArcFace 112 template (or ``template``, (5, 2) points in 112-px crop
    pixels: GHOST's identity network reads ``arcface_112_v1``): (N, 3, 112, 112) float RGB in [0, 1]."""
    points = arcface_template(ARCFACE_SIZE) if template is None else np.asarray(template, np.float64)
    template = torch.from_numpy(points).double()
    crops = []
    for face in sources:
        kps = kps5_from_landmarks(face.landmarks[None].double())
        m = similarity_transform(kps.double(), template).float()
        crops.append(warp_to_crop(face.image[None].float(), m, ARCFACE_SIZE))
    return torch.cat(crops)


def arcface_embeddings(session: LearnedSession, crops: Tensor) -> np.ndarray:
    """Raw ArcFace embeddings of aligned crops: (N, 3, 112, 112) in [0, 1] -> (N, 512) float32."""
    x = ((crops.detach().cpu().float().numpy() - 0.5) / 0.5).astype(np.float32)
    return session.run({session.input_names[0]: x}, per_item=frozenset({session.input_names[0]}))


def mean_identity(embeddings: np.ndarray) -> np.ndarray:
    """(N, 512) raw embeddings -> (512,) the normalised mean of their normalised rows."""
    return l2_normalise(l2_normalise(embeddings).mean(0))


def inswapper_vector(normed: np.ndarray, emap: np.ndarray) -> np.ndarray:
    """inswapper's source input: ``normalize(normed @ emap)``; (512,) and (512, 512) -> (512,) float32."""
    return l2_normalise(np.asarray(normed, np.float64) @ np.asarray(emap, np.float64))


def converted_vector(normed: np.ndarray, converter: LearnedSession | None) -> np.ndarray:
    """A SimSwap-class source input: the embedding through ``converter`` (if any), L2-normalised; (512,)."""
    if converter is None:
        return l2_normalise(normed)
    name = converter.input_names[0]
    out = converter.run({name: np.asarray(normed, np.float32)[None]}, per_item=frozenset({name}))
    return l2_normalise(out[0])


def ghost_vector(embeddings: np.ndarray, converter: LearnedSession | None) -> np.ndarray:
    """GHOST's source input from (N, 512) raw identity embeddings: their mean (FaceFusion ``get_average_face``
    averages raw embeddings), through ``converter`` when one is given, *not* normalised (GHOST feeds
    ``source_embeds`` to its generator as they come, ``utils/inference/core.py``; FaceFusion's type ``ghost``
    takes the un-normalised converter output). (512,) float32."""
    mean = np.asarray(embeddings, np.float64).mean(0).astype(np.float32)
    if converter is None:
        return mean
    name = converter.input_names[0]
    return converter.run({name: mean[None]}, per_item=frozenset({name}))[0].astype(np.float32)
