"""ID retrieval of the periodic evaluation: class-mean galleries and chunked nearest-identity search (synthetic
vectors, exact answers), and the held-out gallery on the real face set with generators whose answer is known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from vidswap.train.facedancer.data import holdout_split
from vidswap.train.facedancer.evaluate import (evaluate_heldout, heldout_gallery, heldout_pairs,
                                               stored_heldout_gallery)
from vidswap.train.facedancer.facecache import prepare_faces
from vidswap.train.facedancer.retrieval import Gallery, class_means, embed_rows, nearest_class, top1_retrieval


def test_class_means_and_top1_exact():
    emb = np.array([[1, 0], [0, 1], [1, 0], [3, 4]], np.float32)
    classes, vectors = class_means(emb, np.array([2, 1, 2, 5]))
    assert classes.tolist() == [1, 2, 5]
    assert np.allclose(vectors, [[0, 1], [1, 0], [0.6, 0.8]])
    g = Gallery(classes, vectors)
    q = np.array([[0.1, 1], [2, 0.1], [0.5, 0.9], [0.7, 0.7]], np.float32)
    assert nearest_class(q, g).tolist() == [1, 2, 5, 5]
    assert top1_retrieval(q, np.array([1, 2, 1, 5]), g) == 0.75
    assert np.isnan(top1_retrieval(q[:0], np.zeros(0), g))


def test_chunked_search_equals_full_matrix():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(500, 16)).astype(np.float32)
    labels = rng.integers(0, 40, 500)
    g = Gallery(*class_means(emb, labels))
    q = rng.normal(size=(123, 16)).astype(np.float32)
    full = g.classes[np.argmax((q / np.linalg.norm(q, axis=1, keepdims=True)) @ g.vectors.T, axis=1)]
    assert np.array_equal(nearest_class(q, g, chunk=7), full)
    assert np.array_equal(nearest_class(q, g, chunk=1000), full)
    calls = []

    def load(rows):
        calls.append(len(rows))
        return torch.from_numpy(emb[rows])

    out = embed_rows(load, lambda x: x.numpy() * 2, np.arange(10, 60), batch=16)
    assert calls == [16, 16, 16, 2] and np.array_equal(out, emb[10:60] * 2)


class BankGenerator(torch.nn.Module):
    """A generator whose swap is a known face: the bank face whose identity vector is ``z`` (``source=True``: the
    source itself, a perfect swap), or the target unchanged (``source=False``: no swap at all)."""

    def __init__(self, bank: torch.Tensor, keys: torch.Tensor, source: bool):
        super().__init__()
        self.bank, self.keys, self.source = bank, keys, source

    def forward(self, target, z):
        return self.bank[torch.argmax(z @ self.keys.T, dim=1)] if self.source else target


def test_heldout_gallery_retrieval_on_real_faces(face_set, model, tmp_path):
    """Gallery = the held-out identities; no swap (the target back) is never retrieved as the source (training
    encoder), a perfect swap (the source itself) always (ArcFace judge; and the pairs-only gallery)."""
    from vidswap.eval.judges import ArcFaceJudge
    from vidswap.models.runtime import onnx_session, prepare_onnx
    from vidswap.train.facedancer.identity import IdentityNet

    root, cache = face_set
    faces = prepare_faces(root, 64, cache, log=lambda m: None)  # the run tests' cache
    _, held = holdout_split(faces, 0.5)  # one frame of each clip identity
    idnet = IdentityNet.load()
    targets, sources = heldout_pairs(faces.identity, held, len(held))
    bank = faces.tensor(np.unique(sources))
    with torch.no_grad():
        keys = idnet(bank)
    perfect, none = BankGenerator(bank, keys, True), BankGenerator(bank, keys, False)
    arcface = SimpleNamespace(arcface=ArcFaceJudge(onnx_session(prepare_onnx(model("arcface_mbf"),
                                                                             dynamic_batch=True))), landmarks=None)
    for judges, name in ((None, "training identity encoder"), (arcface, "arcface_mbf")):
        gallery = heldout_gallery(faces, held, judges, idnet, batch=2)
        assert len(gallery) == len(np.unique(faces.identity[held])) >= 3 and gallery.judge == name
        generator, expected = (none, 0.0) if judges is None else (perfect, 1.0)
        res = evaluate_heldout(generator, idnet, faces, targets, sources, judges, gallery=gallery)
        assert res["retrieval"] == expected and res["retrieval_gallery"] == float(len(gallery)), (name, res)
        assert res["retrieval_judge"] == name
    stored = tmp_path / "eval_gallery.npz"  # kept for resumed runs; rebuilt for other rows
    first, reused = stored_heldout_gallery(stored, faces, held, arcface, idnet)
    assert not reused and np.array_equal(first.vectors, gallery.vectors)
    again, reused = stored_heldout_gallery(stored, faces, held, arcface, idnet)
    assert reused and np.array_equal(again.vectors, first.vectors) and again.judge == "arcface_mbf"
    other, reused = stored_heldout_gallery(stored, faces, held[:-1], arcface, idnet)
    assert not reused and len(other) == len(first) - 1
    pairs_only = evaluate_heldout(perfect, idnet, faces, targets, sources)  # the training encoder, no gallery
    assert pairs_only["retrieval"] == 1.0 and pairs_only["id_swap"] > 0.999
    assert pairs_only["retrieval_gallery"] == len(np.unique(faces.identity[sources]))
