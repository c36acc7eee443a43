"""E4S learning run summary (issue 18): the loss terms' first / last 10 logged steps of a `vidswap train` run with
`method: e4s`, the reconstruction PSNR of the run's faces at step 0 (the initial encoder, same seed) and at the
end, and a picture: per row target | source | target reconstructed | swap (all face regions) | swap (eyes + nose).

    vidswap train --config learn.yaml            # method: e4s (see benchmarks/RESULTS.md for the one used)
    python benchmarks/bench_e4s.py RUN_FOLDER --config learn.yaml -o docs/screenshots/e4s_swap.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from vidswap.swap.stylegan.e4s import E4S, region_select
from vidswap.swap.stylegan.e4s_core import load_e4s
from vidswap.swap.stylegan.importer import load_generator
from vidswap.swap.stylegan.inversion import from_unit, psnr
from vidswap.train.e4s.config import load_e4s_config
from vidswap.train.megafs.data import prepare_ffhq_faces


def table(run: Path) -> None:
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    keys = [k for k in recs[0] if k not in ("step", "step_s")]
    print(f"{'term':<12} {'first 10':>10} {'last 10':>10}")
    for k in keys:
        a, b = np.mean([r[k] for r in recs[:10]]), np.mean([r[k] for r in recs[-10:]])
        print(f"{k:<12} {a:>10.3f} {b:>10.3f}")
    print(f"steps {recs[-1]['step']}, median step {np.median([r['step_s'] for r in recs]):.2f} s")


@torch.no_grad()
def recon_psnr(model: E4S, x: torch.Tensor, k: torch.Tensor) -> float:
    m = model.masks(k)
    return float(psnr(from_unit(model.decode(model.encode(x, m), m)), x).mean())


@torch.no_grad()
def figure(model: E4S, x: torch.Tensor, k: torch.Tensor, out: Path, rows: int = 4) -> None:
    m = model.masks(k)
    codes = model.encode(x, m)
    tiles = []
    for i in range(rows):
        t, s = i, (i + 3) % len(x)
        rec = from_unit(model.decode(codes[t:t + 1], m[t:t + 1]))
        swap_all = from_unit(model.decode(model.mix(codes[s], codes[t:t + 1], region_select(None)), m[t:t + 1]))
        swap_en = from_unit(model.decode(model.mix(codes[s], codes[t:t + 1], region_select(["eyes", "nose"])),
                                         m[t:t + 1]))
        tiles.append(torch.cat([x[t:t + 1], x[s:s + 1], rec, swap_all, swap_en], 3))
    grid = torch.cat(tiles, 2)[0].permute(1, 2, 0).numpy()
    img = (grid * 255).round().astype(np.uint8)
    img = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), img[:, :, ::-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--config", required=True)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    table(args.run)
    cfg = load_e4s_config(args.config)
    trained, _ = load_e4s(args.run / "checkpoints" / "last.safetensors")
    torch.manual_seed(cfg.run.seed)  # the trainer's initial weights
    initial = E4S(cfg.model, load_generator(cfg.generator.checkpoint)).eval()
    d = cfg.data
    faces = prepare_ffhq_faces(d.root, trained.generator.cfg.resolution, d.cache, d.min_face, d.max_images,
                               log=lambda _m: None)
    rows = np.arange(0, len(faces.faces), 3)[:16]
    x, k = faces.faces.tensor(rows), torch.from_numpy(faces.kps[rows]).float()
    print(f"reconstruction PSNR of {len(rows)} training faces: initial {recon_psnr(initial, x, k):.2f} dB, "
          f"trained {recon_psnr(trained, x, k):.2f} dB")
    figure(trained, x, k, args.output)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
