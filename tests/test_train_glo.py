"""``vidswap train`` with ``method: stylegan-glo`` (GLO training of a small StyleGAN2 generator) on the registry
face set: losses, files, exact resume, the generator file the inversion reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from vidswap.cli import main
from vidswap.train.glo.config import load_glo_config
from vidswap.train.glo.trainer import GLO_LOSSES, batch_rows

GEN = {"resolution": 16, "z_dim": 8, "w_dim": 16, "mapping_layers": 1, "channel_base": 128, "channel_max": 8}


def write_cfg(path: Path, face_set, out: Path, **run) -> Path:
    root, cache = face_set
    cfg = {"method": "stylegan-glo", "data": {"root": str(root), "cache": str(cache), "holdout": 0.25},
           "generator": GEN, "run": {"out": str(out), "steps": 3, "batch_size": 4, "log_every": 1, "image_every": 2,
                                     "eval_every": 0, "save_every_steps": 0, "save_every_minutes": 0, "threads": 1,
                                     "device": "cpu", **run}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_glo_run_logs_writes_the_generator_and_resumes_exactly(face_set, tmp_path):
    straight = write_cfg(tmp_path / "a.yaml", face_set, tmp_path / "a")
    r = CliRunner().invoke(main, ["train", "--config", str(straight), "-q"])
    assert r.exit_code == 0, r.output
    run = tmp_path / "a"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3] and list(lines[0])[2:] == list(GLO_LOSSES)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_faces"] + summary["heldout_faces"] == summary["faces"] and summary["heldout_faces"] > 0
    assert (run / "losses.png").is_file()
    from vidswap.swap.stylegan.importer import load_generator

    gen = load_generator(run / "generator.safetensors")
    codes = load_file(str(run / "checkpoints/last.safetensors"))["codes"]
    assert codes.shape == (summary["train_faces"], gen.num_ws, 16)
    assert torch.equal(gen.mapping.w_avg, codes.mean((0, 1)))  # inversion starts at the codes' mean
    # 2 steps, then resume to 3: the same weights, codes and Adam states as 3 straight steps
    cut = write_cfg(tmp_path / "b.yaml", face_set, tmp_path / "b", steps=2)
    assert CliRunner().invoke(main, ["train", "--config", str(cut), "-q"]).exit_code == 0
    r = CliRunner().invoke(main, ["train", "--config", str(cut), "--steps", "3", "-q"])
    assert r.exit_code == 0 and "resumed from" in r.output
    a, b = (load_file(str(tmp_path / x / "checkpoints/last.safetensors")) for x in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_glo_config_and_batches(face_set, tmp_path):
    cfg = load_glo_config(write_cfg(tmp_path / "c.yaml", face_set, tmp_path / "c"))
    assert cfg.generator.resolution == 16 and cfg.run.batch_size == 4
    rows = batch_rows(10, 4, 0, 5)
    assert len(set(rows.tolist())) == 4 and torch.equal(rows, batch_rows(10, 4, 0, 5))
    assert torch.equal(torch.cat([batch_rows(10, 4, 0, 5, r, 2) for r in range(2)]), rows)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"method": "stylegan-glo", "data": {"root": "x"}, "generator": {"resolution": 24}}))
    r = CliRunner().invoke(main, ["train", "--config", str(bad)])
    assert r.exit_code == 2 and "generator:" in r.output and "power of two" in r.output
    with pytest.raises(Exception, match="unknown key"):
        bad.write_text(yaml.safe_dump({"method": "stylegan-glo", "data": {"root": "x"}, "identity": {}}))
        load_glo_config(bad)
