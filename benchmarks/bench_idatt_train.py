"""IDATT training at 64 px on CPU on the registry faces: do the losses fall in every stage?

    python benchmarks/bench_idatt_train.py OUT_DIR [--steps 300] [--batch 2]     # build, train, print the table
    python benchmarks/bench_idatt_train.py OUT_DIR --summarise                   # the table of an existing run

A random 64 px StyleGAN2 (the machinery, not the quality: no StyleGAN weights here), the tiny model of
tests/test_train_idatt.py, the three stages a third of the steps each, lr 0.002, `vidswap train` in a subprocess.
Prints, per stage and loss term, the mean of the stage's first and last 10 logged steps and their ratio; the run
folder holds losses.png, metrics.jsonl and TensorBoard.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = {"input_size": 64, "stem": 8, "widths": [8, 16, 16], "depths": [1, 1, 1], "fpn": 16, "medium_codes": 3,
        "blend_from": 16, "blend_width": 8, "groups": 4}


def prepare(out: Path, steps: int, batch: int) -> Path:
    import torch
    import yaml

    sys.path.insert(0, str(ROOT / "samples"))
    import face_set

    from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
    from vidswap.swap.stylegan.importer import save_generator

    out.mkdir(parents=True, exist_ok=True)
    if not (out / "set").exists():
        face_set.build_face_set(out / "set", frames_per_clip=3,
                                stills={"astronaut": "astronaut", "grace_hopper": "grace_hopper"})
    torch.manual_seed(0)
    gen = save_generator(StyleGAN2Generator(StyleGANConfig(resolution=64, z_dim=32, w_dim=32, mapping_layers=2,
                                                           channel_base=256, channel_max=16)), out / "G.safetensors")
    third = steps // 3
    cfg = {"method": "idatt", "generator": {"checkpoint": str(gen)},
           "data": {"root": str(out / "set"), "cache": str(out / "cache"), "holdout": 0.0, "same_rate": 0.5},
           "model": TINY, "optim": {"lr": 0.002}, "encoder_steps": third, "idatt_steps": third,
           "run": {"out": str(out / "run"), "steps": steps, "batch_size": batch, "log_every": 1,
                   "image_every": third, "eval_every": 0, "save_every_steps": 0, "save_every_minutes": 0,
                   "threads": 2, "resume": "never"}}
    path = out / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def summarise(run: Path, n: int = 10) -> None:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    print(f"{'stage':8} {'loss':11} {'first ' + str(n):>9} {'last ' + str(n):>9} {'last/first':>10}")
    for stage in ("encoder", "idatt", "blend"):
        rows = [r for r in recs if r.get("stage") == stage]
        if not rows:
            continue
        for key in (k for k in rows[0] if k not in ("step", "stage", "step_s")):
            a = sum(r[key] for r in rows[:n]) / len(rows[:n])
            b = sum(r[key] for r in rows[-n:]) / len(rows[-n:])
            print(f"{stage:8} {key:11} {a:9.4f} {b:9.4f} {b / a if a else float('nan'):10.3f}")
    times = sorted(r["step_s"] for r in recs)
    print(f"{len(recs)} steps, median step {times[len(times) // 2]:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--summarise", action="store_true")
    args = ap.parse_args()
    if not args.summarise:
        cfg = prepare(args.out, args.steps, args.batch)
        env = {**os.environ, "OMP_NUM_THREADS": "2"}
        subprocess.run([sys.executable, "-m", "vidswap.cli", "train", "--config", str(cfg), "-q"], check=True, env=env)
    summarise(args.out / "run")


if __name__ == "__main__":
    main()
