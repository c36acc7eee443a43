"""Identity retrieval (the paper's "ID retrieval") against a gallery of identities, batched for large galleries.

The gallery holds one vector per identity: the unit-length mean of that identity's embeddings (:func:`class_means`,
one sort and one ``np.add.reduceat``, O(N log N)). A query is retrieved correctly when the gallery identity of
largest cosine is its true one (:func:`top1_retrieval`; queries are compared ``chunk`` at a time, so memory is
``chunk × identities`` floats whatever the number of queries). :func:`embed_rows` embeds face rows a batch at a
time (the faces come from the lazily read cache), so a held-out gallery of tens of thousands of faces never sits in
memory as pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from torch import Tensor

__all__ = ["Gallery", "class_means", "nearest_class", "top1_retrieval", "embed_rows"]


@dataclass
class Gallery:
    """``classes`` (L,) identity labels and ``vectors`` (L, D) their unit-length mean embeddings; ``judge`` names
    the embedder."""

    classes: np.ndarray
    vectors: np.ndarray
    judge: str = ""

    def __len__(self) -> int:
        return len(self.classes)


def class_means(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) embeddings, (N,) labels -> (classes (L,) sorted, (L, D) unit-length class means, float32)."""
    emb = np.asarray(emb, np.float32)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return labels[:0], np.zeros((0, emb.shape[-1] if emb.ndim == 2 else 0), np.float32)
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    sums = np.add.reduceat(emb[order], starts, axis=0)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return sorted_labels[starts], (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def nearest_class(queries: np.ndarray, gallery: Gallery, chunk: int = 2048) -> np.ndarray:
    """(Q, D) queries -> (Q,) the gallery label of largest cosine (queries normalised here), ``chunk`` queries
    at a time."""
    q = np.asarray(queries, np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    out = np.empty(len(q), gallery.classes.dtype)
    for i in range(0, len(q), chunk):
        out[i:i + chunk] = gallery.classes[np.argmax(q[i:i + chunk] @ gallery.vectors.T, axis=1)]
    return out


def top1_retrieval(queries: np.ndarray, truth: np.ndarray, gallery: Gallery, chunk: int = 2048) -> float:
    """Fraction of queries whose nearest gallery identity is ``truth`` (NaN for no queries)."""
    if len(queries) == 0:
        return float("nan")
    return float((nearest_class(queries, gallery, chunk) == np.asarray(truth)).mean())


def embed_rows(load: Callable[[np.ndarray], Tensor], embed: Callable[[Tensor], np.ndarray], rows: np.ndarray,
               batch: int = 256) -> np.ndarray:
    """(N, D) embeddings of face ``rows``: ``embed(load(rows[i:i + batch]))`` a batch at a time."""
    parts = [embed(load(rows[i:i + batch])) for i in range(0, len(rows), batch)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
