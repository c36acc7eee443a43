"""Issue 18: a small generator trained here (tests/data/stylegan_glo_32.safetensors: 32 px, GLO on the registry
face set without portrait_f1 and single_face_photo; command and numbers in benchmarks/RESULTS.md, section
sgtrain-s8) reconstructs a held-out person's face after inversion + PTI above a floor, and better than a random
generator of the same architecture. Measured (dev-2c, load ~10): portrait_f1 mean W 14.98 dB, inverted 20.23 dB,
+ PTI 22.86 dB; the random generator 6.29 / 13.85 / 18.74 dB."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_stylegan_glo import CHECKPOINT, random_like, reconstruct  # noqa: E402

#: PSNR floor (dB) after inversion + PTI, and the margins over the random generator (after PTI / inversion)
GLO_PTI_FLOOR_DB = 21.5
GLO_PTI_MARGIN_DB = 2.5
GLO_INVERSION_MARGIN_DB = 4.0


@pytest.fixture(scope="module")
def unseen_face(media, tmp_path_factory) -> torch.Tensor:
    """(1, 3, 32, 32): portrait_f1 in the FFHQ crop the training data used (never in the training folder)."""
    import cv2

    from vidswap.faces.align import as_rgb8
    from vidswap.io import read_image
    from vidswap.train.megafs.data import prepare_ffhq_faces

    root = tmp_path_factory.mktemp("glo_heldout")
    (root / "set/portrait_f1").mkdir(parents=True)
    cv2.imwrite(str(root / "set/portrait_f1/0000.png"),
                cv2.cvtColor(as_rgb8(read_image(media("portrait_f1"))), cv2.COLOR_RGB2BGR))
    faces = prepare_ffhq_faces(root / "set", 32, root / "cache", log=lambda _m: None).faces
    return faces.tensor(np.arange(1)).float().clamp(0, 1)


def test_glo_trained_generator_reconstructs_a_held_out_person_better_than_a_random_one(unseen_face):
    from vidswap.swap.stylegan.importer import load_generator

    torch.set_num_threads(2)
    gen = load_generator(CHECKPOINT).eval().requires_grad_(False)
    assert gen.cfg.resolution == 32 and CHECKPOINT.stat().st_size < 2_000_000
    glo, rnd = reconstruct(gen, unseen_face), reconstruct(random_like(gen), unseen_face)
    print({k: (float(glo[k][0]), float(rnd[k][0])) for k in ("start", "inverted", "tuned")})
    assert float(glo["tuned"][0]) >= GLO_PTI_FLOOR_DB
    assert float(glo["tuned"][0]) >= float(rnd["tuned"][0]) + GLO_PTI_MARGIN_DB
    assert float(glo["inverted"][0]) >= float(rnd["inverted"][0]) + GLO_INVERSION_MARGIN_DB
    assert float(glo["tuned"][0]) > float(glo["inverted"][0]) > float(glo["start"][0])
