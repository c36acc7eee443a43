"""Inversion + PTI of held-out registry faces with the GLO-trained 32 px generator (tests/data/stylegan_glo_32.*)
against a random generator of the same architecture (issue 18: "a small generator trained here reconstructs
held-out faces ..."). Held out: the identities portrait_f1 and single_face_photo (never in the training folder)
and the frames `data.holdout` kept out of each clip identity.

    PYTHONPATH=. python benchmarks/bench_stylegan_glo.py [--run RUN_FOLDER] [--figure docs/screenshots/X.jpg]

Prints a table (PSNR dB: mean W start, after inversion, after inversion + PTI) per generator and face group, and
with --figure writes held-out face | inverted | after PTI for both generators (+ the run's training curves from
RUN_FOLDER/metrics.jsonl when given).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

from vidswap.swap.stylegan import StyleGAN2Generator  # noqa: E402
from vidswap.swap.stylegan.importer import load_generator  # noqa: E402
from vidswap.swap.stylegan.inversion import (InversionParams, PTIParams, from_unit, invert, pivotal_tuning,  # noqa: E402
                                             psnr, synthesize)

CHECKPOINT = ROOT / "tests/data/stylegan_glo_32.safetensors"
INVERSION = InversionParams(steps=20, lr=0.05)
PTI = PTIParams(steps=30, lr=1e-2, batch=1)


def heldout_faces(size: int, work: Path) -> tuple[torch.Tensor, list[str]]:
    """(N, 3, size, size) FFHQ crops in [0, 1] of the held-out identities and the clips' held-out frames (the
    training run's data.holdout 0.25 of the same 24-frame clip sets), with their names."""
    from face_set import CLIPS, build_face_set

    from vidswap.train.facedancer.data import holdout_split
    from vidswap.train.megafs.data import prepare_ffhq_faces

    unseen = build_face_set(work / "unseen", 24, clips={}, stills={"portrait_f1": "portrait_f1",
                                                                   "single_face_photo": "single_face_image"})
    a = prepare_ffhq_faces(unseen, size, work / "cache", log=lambda _m: None).faces
    clips = build_face_set(work / "clips", 24, clips=CLIPS, stills={})
    b = prepare_ffhq_faces(clips, size, work / "cache", log=lambda _m: None).faces
    _, held = holdout_split(b, 0.25)
    images = torch.cat([a.tensor(np.arange(len(a))), b.tensor(held)]).float().clamp(0, 1)
    names = [a.names[i] for i in a.identity] + [f"{b.names[b.identity[r]]}/{b.files[r].split('/')[-1]}" for r in held]
    return images, names


def reconstruct(gen: StyleGAN2Generator, faces: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per face: PSNR at the mean code, after inversion, after inversion + PTI, and the images."""
    start = psnr(from_unit(synthesize(gen, invert(gen, faces, InversionParams(steps=0)))), faces)
    pivots = invert(gen, faces, INVERSION)
    inverted = from_unit(synthesize(gen, pivots))
    tuned = torch.cat([from_unit(synthesize(pivotal_tuning(gen, pivots[i:i + 1], faces[i:i + 1], PTI).generator,
                                            pivots[i:i + 1])) for i in range(len(faces))])
    return {"start": start, "inverted": psnr(inverted, faces), "tuned": psnr(tuned, faces),
            "inverted_img": inverted, "tuned_img": tuned}


def random_like(gen: StyleGAN2Generator, seed: int = 0) -> StyleGAN2Generator:
    torch.manual_seed(seed)
    return StyleGAN2Generator(gen.cfg).eval().requires_grad_(False)


def figure(faces, names, results: dict, out: Path, run: Path | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    show = sorted({min(i, len(faces) - 1) for i in (0, 1, 2, len(faces) // 2 + 1, len(faces) - 1)})
    cols = 5 + (1 if run else 0)
    fig, axes = plt.subplots(len(show), cols, figsize=(2.1 * cols, 2.1 * len(show)), squeeze=False)
    heads = ["held-out face", "GLO: inverted", "GLO: + PTI", "random G: inverted", "random G: + PTI"]
    for r, i in enumerate(show):
        imgs = [faces[i], results["glo"]["inverted_img"][i], results["glo"]["tuned_img"][i],
                results["random"]["inverted_img"][i], results["random"]["tuned_img"][i]]
        vals = ["", results["glo"]["inverted"][i], results["glo"]["tuned"][i], results["random"]["inverted"][i],
                results["random"]["tuned"][i]]
        for c, (img, v) in enumerate(zip(imgs, vals)):
            ax = axes[r][c]
            ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(names[i][:22] if c == 0 else f"{heads[c]}\n{float(v):.1f} dB", fontsize=7)
        if run:
            axes[r][-1].axis("off")
    if run:
        from vidswap.train.facedancer.plot import moving_average, read_metrics

        recs, _ = read_metrics(run / "metrics.jsonl")
        x = np.array([q["step"] for q in recs])
        gs = axes[0][-1].get_gridspec()
        ax = fig.add_subplot(gs[:, -1])
        for name in ("total", "l2", "l1"):
            ax.plot(x, moving_average(np.array([q[name] for q in recs]), 10), label=name)
        ax.set_yscale("log"), ax.set_xlabel("step"), ax.legend(fontsize=7), ax.grid(alpha=0.3)
        ax.set_title("GLO training losses", fontsize=8)
        bx = ax.twinx()
        bx.plot(x, moving_average(np.array([q["psnr"] for q in recs]), 10), color="k", lw=0.8)
        bx.set_ylabel("batch PSNR dB (black)", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80, pil_kwargs={"quality": 88})
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=str(CHECKPOINT))
    ap.add_argument("--run", help="the training run folder (for the loss curves in the figure)")
    ap.add_argument("--figure", help="write the picture here (.jpg)")
    a = ap.parse_args()
    torch.set_num_threads(2)
    gen = load_generator(a.checkpoint).eval().requires_grad_(False)
    with tempfile.TemporaryDirectory() as tmp:
        faces, names = heldout_faces(gen.cfg.resolution, Path(tmp))
    results = {}
    for label, g in (("glo", gen), ("random", random_like(gen))):
        t0 = time.perf_counter()
        results[label] = reconstruct(g, faces)
        results[label]["seconds"] = time.perf_counter() - t0
    print(f"{len(faces)} held-out faces at {gen.cfg.resolution} px; inversion {INVERSION.steps} steps, PTI "
          f"{PTI.steps} steps each")
    print(f"{'generator':10} {'group':18} {'mean W':>8} {'inverted':>9} {'+ PTI':>8}")
    groups = {"unseen people": slice(0, 2), "held-out frames": slice(2, None), "all": slice(None)}
    for label, res in results.items():
        for gname, sl in groups.items():
            print(f"{label:10} {gname:18} {res['start'][sl].mean():8.2f} {res['inverted'][sl].mean():9.2f} "
                  f"{res['tuned'][sl].mean():8.2f}")
    gain = results["glo"]["tuned"] - results["random"]["tuned"]
    print(f"GLO - random after PTI: mean {gain.mean():.2f} dB, min {gain.min():.2f} dB")
    if a.figure:
        figure(faces, names, results, Path(a.figure), Path(a.run) if a.run else None)
        print("figure:", a.figure)


if __name__ == "__main__":
    main()
