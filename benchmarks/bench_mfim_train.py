"""MFIM training at 64 px on CPU (issue 18): a `vidswap train` run on the registry face set with the tiny model of
tests/test_train_mfim.py (random 64 px StyleGAN2, noise strengths 0.2), then a table of every loss term's mean over
the first and last 10 logged steps, and the float64 check that one step's encoder gradients on a batch equal the
mean of those on its halves (what DDP computes).

    python benchmarks/bench_mfim_train.py --out /tmp/mfim-s8/bench --steps 300 [--plot docs/screenshots/mfim_losses.png]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

SMALL = dict(resolution=64, z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=16)
TINY = {"input_size": 64, "stem": 8, "widths": [8, 16, 16, 16], "depths": [1, 1, 1, 1], "fpn": 16, "groups": 4,
        "map_max": 32, "id_from": 32}


def setup(out: Path, steps: int, batch: int, lr: float) -> Path:
    import face_set

    from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
    from vidswap.swap.stylegan.importer import save_generator

    faces = face_set.build_face_set(out / "faces", frames_per_clip=12)
    torch.manual_seed(0)
    gen = StyleGAN2Generator(StyleGANConfig(**SMALL))
    with torch.no_grad():
        for _, block in gen.synthesis.blocks():
            for name in block.layer_names[:-1]:
                getattr(block, name).noise_strength.fill_(0.2)
    g = save_generator(gen, out / "G.safetensors")
    cfg = {"method": "mfim", "generator": {"checkpoint": str(g)},
           "data": {"root": str(faces), "cache": str(out / "cache"), "holdout": 0.0},
           "model": TINY, "optim": {"lr": lr}, "discriminator": {"channels": [8, 16]},
           "run": {"out": str(out / "run"), "steps": steps, "batch_size": batch, "log_every": 1, "image_every": 0,
                   "eval_every": 0, "save_every_steps": 0, "save_every_minutes": 0, "threads": 1, "resume": "never"}}
    path = out / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def float64_check(cfg_path: Path) -> tuple[float, float]:
    """(float32, float64) worst relative difference of the encoder gradients: batch of 4 vs mean of its halves."""
    from vidswap.train.facedancer.distributed import DistInfo
    from vidswap.train.mfim.config import load_mfim_config
    from vidswap.train.mfim.step import mfim_step
    from vidswap.train.mfim.trainer import MFIMTrainer

    cfg = load_mfim_config(cfg_path, {"run": {"out": str(cfg_path.parent / "check")}})
    t = MFIMTrainer(cfg, DistInfo(), log=lambda _m: None)
    t.opt_e.step = t.opt_d.step = lambda *a, **k: None  # gradients only
    batch = t.local_batch(0)
    res = []
    for dt in (torch.float32, torch.float64):
        for part in (t.model, t.identity, t.disc):
            part.to(dt)
        xs, xt, ks, kt = (v[:4].to(dt) for v in batch)

        def grads(a, b):
            mfim_step(t.models, xs[a:b], xt[a:b], ks[a:b], kt[a:b], cfg.loss)
            return {n: p.grad.clone() for n, p in t.model.encoder.named_parameters()}

        whole, first, second = grads(0, 4), grads(0, 2), grads(2, 4)
        scale = max(float(g.abs().max()) for g in whole.values())
        res.append(max(float(((first[n] + second[n]) / 2 - whole[n]).abs().max()) for n in whole) / scale)
    return res[0], res[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/mfim-s8/bench")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--plot", help="copy the run's losses.png here")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = setup(out, args.steps, args.batch, args.lr)
    from click.testing import CliRunner

    from vidswap.cli import main as cli

    t0 = time.perf_counter()
    res = CliRunner().invoke(cli, ["train", "--config", str(cfg), "-q"])
    wall = time.perf_counter() - t0
    if res.exit_code != 0:
        raise SystemExit(res.output)
    recs = [json.loads(line) for line in (out / "run/metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "run/summary.json").read_text())
    print(f"{len(recs)} steps, batch {args.batch}, lr {args.lr}, {summary['train_faces']} faces, wall {wall:.0f} s, "
          f"median step {summary['step_s_median']:.2f} s")
    print(f"| loss | first 10 | last 10 | ratio |\n|---|---|---|---|")
    for k in ("total", "identity", "rec_l1", "perceptual", "adv", "d_loss", "r1"):
        a = sum(r[k] for r in recs[:10]) / 10
        b = sum(r[k] for r in recs[-10:]) / 10
        print(f"| {k} | {a:.4f} | {b:.4f} | {b / a if a else float('nan'):.2f} |")
    if args.plot:
        shutil.copy(out / "run/losses.png", args.plot)
    f32, f64 = float64_check(cfg)
    print(f"encoder gradients, batch of 4 vs mean of its halves (worst / largest): float32 {f32:.2e}, "
          f"float64 {f64:.2e}")


if __name__ == "__main__":
    main()
