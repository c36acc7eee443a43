"""Time the FaceDancer trainer's data and evaluation machinery at scale, for benchmarks/RESULTS.md.

    python benchmarks/bench_facedancer_data.py [--identities 9131] [--per-identity 4] [--queries 256 10000]
                                               [--old-max 20000] [--skip-real]

1. ID retrieval on synthetic 512-d embeddings (timing only: the vectors are random): a held-out gallery of
   ``identities × per_identity`` embeddings (default: VGGFace2's 9,131 identities at ~1 % held out), the
   per-identity means and the nearest identity of each query -- the previous code (one boolean mask per identity,
   one full query × gallery product) against :mod:`vidswap.train.facedancer.retrieval` (one sort + reduceat, query
   chunks). Both must give the same top-1 labels (checked).
2. The lazy shard reader: random batch-10 gathers at 256² from synthetic shards (page-cached after writing).
3. With the registry face set (``--skip-real`` to skip): face-cache preparation seconds per image (YuNet +
   alignment at 256²) and the ArcFace judge's embedding throughput on aligned crops (the held-out gallery's
   one-time cost per run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

from vidswap.train.facedancer.facecache import ShardedImages  # noqa: E402
from vidswap.train.facedancer.retrieval import Gallery, class_means, nearest_class  # noqa: E402


def old_retrieval(emb: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The evaluation's retrieval before this change (a mask per identity, then one full product), with the means
    normalised as the new code does (so that both must pick the same labels)."""
    classes = np.unique(labels)
    gallery = np.stack([emb[labels == lab].mean(0) for lab in classes])
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    return classes[np.argmax(queries @ gallery.T, axis=1)]


def timed(fn, repeat: int = 3):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def bench_retrieval(identities: int, per_identity: int, queries: list[int], old_max: int) -> None:
    rng = np.random.default_rng(0)
    n = identities * per_identity
    labels = rng.permutation(np.repeat(np.arange(identities), per_identity))
    centres = rng.normal(size=(identities, 512)).astype(np.float32)
    emb = centres[labels] + rng.normal(scale=0.5, size=(n, 512)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    t_new_gallery, (classes, vectors) = timed(lambda: class_means(emb, labels))
    gallery = Gallery(classes, vectors)
    print(f"gallery {identities} identities x {per_identity} = {n} embeddings (512-d): class means "
          f"{t_new_gallery * 1e3:.1f} ms")
    for q in queries:
        qv = centres[rng.integers(identities, size=q)] + rng.normal(scale=0.5, size=(q, 512)).astype(np.float32)
        qv /= np.linalg.norm(qv, axis=1, keepdims=True)
        t_new, ours = timed(lambda: nearest_class(qv, gallery))
        line = (f"  {q} queries: new (means + chunked search) {(t_new_gallery + t_new) * 1e3:.1f} ms "
                f"(search {t_new * 1e3:.1f} ms)")
        if identities <= old_max:
            t_old, theirs = timed(lambda: old_retrieval(emb, labels, qv), repeat=1)
            assert np.array_equal(ours, theirs), "new and old retrieval disagree"
            line += f", old {t_old * 1e3:.0f} ms; same top-1 labels"
        print(line)


def bench_shards(size: int = 256, shards: int = 4, per_shard: int = 256) -> None:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for j in range(shards):
            files.append(Path(tmp) / f"shard_{j:06d}.npy")
            np.save(files[-1], rng.integers(0, 256, size=(per_shard, size, size, 3), dtype=np.uint8))
        imgs = ShardedImages(files, [per_shard] * shards, size)
        rows = [rng.integers(len(imgs), size=10) for _ in range(200)]
        t0 = time.perf_counter()
        for r in rows:
            imgs[r]
        dt = (time.perf_counter() - t0) / len(rows)
        print(f"shard reader: batch-10 random gather at {size}² from {shards} x {per_shard} faces: {dt * 1e3:.2f} ms")


def bench_real() -> None:
    import face_set as fs
    import torch

    from vidswap.eval.judges import ArcFaceJudge
    from vidswap.models.registry import model_path
    from vidswap.models.runtime import onnx_session, prepare_onnx
    from vidswap.train.facedancer.facecache import prepare_faces
    from vidswap.train.facedancer.identity import arcface_window

    with tempfile.TemporaryDirectory() as tmp:
        root = fs.build_face_set(Path(tmp) / "set", frames_per_clip=6)
        n_images = len(list(root.rglob("*.png")))
        t0 = time.perf_counter()
        faces = prepare_faces(root, 256, Path(tmp) / "cache", log=lambda m: None)
        dt = time.perf_counter() - t0
        print(f"face cache preparation at 256²: {n_images} images, {len(faces)} faces, {dt:.1f} s = "
              f"{dt / n_images * 1e3:.0f} ms per image (YuNet + alignment + shard write; detector load included)")
        judge = ArcFaceJudge(onnx_session(prepare_onnx(model_path("arcface_mbf"), dynamic_batch=True)))
        crops = arcface_window(faces.tensor(np.arange(len(faces)) % len(faces))).numpy()
        crops = np.concatenate([crops] * max(1, 128 // len(crops)))[:128]
        judge.embed_crops(crops[:8])
        t0 = time.perf_counter()
        judge.embed_crops(crops)
        dt = time.perf_counter() - t0
        print(f"ArcFace judge (onnxruntime CPU, {torch.get_num_threads()} torch threads): {len(crops)} crops in "
              f"{dt:.2f} s = {dt / len(crops) * 1e3:.1f} ms per face")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--identities", type=int, default=9131)
    ap.add_argument("--per-identity", type=int, default=4)
    ap.add_argument("--queries", type=int, nargs="+", default=[256, 10000])
    ap.add_argument("--old-max", type=int, default=20000, help="time the old code only up to this many identities")
    ap.add_argument("--skip-real", action="store_true")
    a = ap.parse_args()
    bench_retrieval(a.identities, a.per_identity, a.queries, a.old_max)
    bench_shards()
    if not a.skip_real:
        bench_real()


if __name__ == "__main__":
    main()
