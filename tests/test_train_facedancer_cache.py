"""The sharded aligned-face cache: lazy per-item reads (synthetic shards, exact), and on the real face set:
the same faces whether prepared by one process or split over parts, resume after a kill, ranks reading only
their own rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from test_train_facedancer_run import TINY_MODEL
from vidswap.cli import main
from vidswap.train.facedancer.data import PairSampler, local_rows
from vidswap.train.facedancer.facecache import ShardedImages, load_face_cache, prepare_faces, prepare_shards


def write_shards(folder: Path, counts: list[int], size: int = 2) -> list[Path]:
    """Shards whose every pixel holds the face's global row number (mod 256)."""
    files, row = [], 0
    for j, n in enumerate(counts):
        arr = (np.arange(row, row + n, dtype=np.int64)[:, None, None, None] % 256).astype(np.uint8)
        files.append(folder / f"s{j}.npy")
        np.save(files[-1], np.broadcast_to(arr, (n, size, size, 3)).copy())
        row += n
    return files


def test_sharded_images_gather_exact(tmp_path):
    files = write_shards(tmp_path, [3, 0, 4, 2])
    imgs = ShardedImages(files, [3, 0, 4, 2], 2)
    assert imgs.shape == (9, 2, 2, 3) and len(imgs) == 9
    got = imgs[np.array([8, 0, 4, 4, 2])]
    assert got.shape == (5, 2, 2, 3) and got[:, 0, 0, 0].tolist() == [8, 0, 4, 4, 2]
    assert sorted(imgs._maps) == [0, 2, 3]  # the empty shard was never opened
    assert imgs[-1][0, 0, 0] == 8 and imgs[5].shape == (2, 2, 3)
    assert imgs[2:5][:, 0, 0, 0].tolist() == [2, 3, 4]
    assert imgs[np.array([[1, 7], [6, 3]])][..., 0, 0, 0].tolist() == [[1, 7], [6, 3]]
    fresh = ShardedImages(files, [3, 0, 4, 2], 2)
    fresh[np.array([5, 6])]
    assert list(fresh._maps) == [2]  # only the shard holding rows 5, 6 is read
    with pytest.raises(IndexError):
        imgs[np.array([9])]
    capped = ShardedImages(files, [3, 0, 4, 2], 2, max_open=2)  # at most two maps (descriptors) open
    for rows in ([0, 8], [3, 1], [6, 2, 8], [0]):
        assert capped[np.array(rows)][:, 0, 0, 0].tolist() == rows and len(capped._maps) <= 2
    assert list(capped._maps) == [3, 0]  # least recently used closed first: 0,3 -> 3,0 -> 0,2 -> 2,3 -> 3,0
    import pickle

    clone = pickle.loads(pickle.dumps(capped))  # DataLoader workers / spawn: maps are reopened per process
    assert clone._maps == {} and clone[np.array([7])][0, 0, 0, 0] == 7


class CountingDetector:
    """The real detector, counting calls; raises after ``fail_after`` calls (a kill mid-preparation)."""

    def __init__(self, inner, fail_after: int | None = None):
        self.inner, self.fail_after, self.calls = inner, fail_after, 0

    def __call__(self, images):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.calls += 1
        return self.inner(images)


def same_faces(a, b) -> bool:
    return (np.array_equal(a.images[np.arange(len(a))], b.images[np.arange(len(b))])
            and np.array_equal(a.identity, b.identity) and a.names == b.names and a.files == b.files)


def test_cache_parts_resume_and_rank_reads(face_set, detector, tmp_path):
    root, _ = face_set
    n_images = len([p for p in root.rglob("*.png")])
    det = CountingDetector(detector)
    ref = prepare_faces(root, 64, tmp_path / "one", detector=det, shard_images=4, log=lambda m: None)
    assert det.calls == n_images and 0 < len(ref) <= n_images
    assert isinstance(ref.images, ShardedImages) and len(ref.images.files) == -(-n_images // 4)
    again = CountingDetector(detector)
    assert same_faces(prepare_faces(root, 64, tmp_path / "one", detector=again, shard_images=4), ref)
    assert again.calls == 0  # cached: nothing detected twice

    # split over two parts with the CLI (a farm array job / torchrun ranks): part 1 alone leaves no index
    cfg = tmp_path / "t.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"root": str(root), "cache": str(tmp_path / "parts"), "shard_images": 4},
                                   "model": TINY_MODEL}))
    res = CliRunner().invoke(main, ["train", "prepare", "--config", str(cfg), "--part", "1/2"])
    assert res.exit_code == 0 and "other parts still pending" in res.output, res.output
    res = CliRunner().invoke(main, ["train", "prepare", "--config", str(cfg), "--part", "0/2"])
    assert res.exit_code == 0 and "complete (index written)" in res.output, res.output
    folder = next((tmp_path / "parts").glob("faces_64_*"))
    assert same_faces(load_face_cache(folder), ref)
    res = CliRunner().invoke(main, ["train", "prepare", "--config", str(cfg), "--part", "2/2"])
    assert res.exit_code == 2 and "0 <= part < parts" in res.output

    # a run killed inside its second shard resumes there: only the unfinished shards are detected again
    killed = CountingDetector(detector, fail_after=6)
    with pytest.raises(KeyboardInterrupt):
        prepare_shards(root, 64, tmp_path / "resume", detector=killed, shard_images=4, log=lambda m: None)
    folder = next((tmp_path / "resume").glob("faces_64_*"))
    assert sorted(p.name for p in folder.glob("shard_*.json")) == ["shard_000000.json"]
    (folder / ".shard_000001.npy.999.part").write_bytes(b"partial")  # a killed writer's leftover
    resumed = CountingDetector(detector)
    rep = prepare_shards(root, 64, tmp_path / "resume", detector=resumed, shard_images=4, log=lambda m: None)
    assert resumed.calls == n_images - 4 and (rep.done, rep.reused, rep.complete) == (rep.shards - 1, 1, True)
    assert not list(folder.glob(".*.part"))
    faces = load_face_cache(folder)
    assert same_faces(faces, ref)

    # DDP ranks: each reads exactly its slice of the global batch, and the slices make up the global batch
    train_rows = np.arange(len(faces))
    sampler = PairSampler(len(train_rows), batch=4, seed=3)
    read: list[np.ndarray] = []
    getitem = ShardedImages.__getitem__

    def recording(self, index):
        read.append(np.asarray(index).ravel().copy())
        return getitem(self, index)

    ShardedImages.__getitem__ = recording
    try:
        per_rank = []
        for rank in range(2):
            read.clear()
            t_rows, s_rows, pb = local_rows(sampler, train_rows, 7, rank, 2)
            faces.tensor(t_rows), faces.tensor(s_rows)
            assert sorted(np.concatenate(read).tolist()) == sorted([*t_rows.tolist(), *s_rows.tolist()])
            per_rank.append((t_rows, s_rows))
    finally:
        ShardedImages.__getitem__ = getitem
    whole = sampler(7)
    assert np.array_equal(np.concatenate([p[0] for p in per_rank]), whole.target.numpy())
    assert np.array_equal(np.concatenate([p[1] for p in per_rank]), whole.source.numpy())
    x = faces.tensor(per_rank[0][0])
    assert x.shape == (2, 3, 64, 64) and x.dtype == torch.float32
