"""composite.regions end to end on the real clip: `vidswap run` three times (all regions, eyes + brows, everything but
the mouth) on the first frames, lossless, measured in the plate's own landmark regions (tools/regions_figure.py);
a farm chunk of the eyes + brows job equals the single pass."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from regions_figure import VARIANTS, decoded, measure, plate_areas, swap

from vidswap.config import load_config
from vidswap.faces.analyze import AnalysisModels, analyze_image
from vidswap.io import read_image

FRAMES = "0-3"


@pytest.fixture(scope="module")
def runs(media, tmp_path_factory):
    clip, source = media("single_face_clip"), media("grace_hopper")
    work = tmp_path_factory.mktemp("regions")
    results = {name: decoded(swap(clip, source, regs, work / name, FRAMES)) for name, regs in VARIANTS.items()}
    n = len(results["full"])
    models = AnalysisModels.load(load_config().analysis)
    plates = decoded(clip)[:n]
    src = analyze_image(read_image(source), models)[0].embedding
    areas = plate_areas(plates, models)
    return {"plates": plates, "results": results, "rows": measure(plates, results, src, models, areas),
            "areas": areas, "work": work}


def test_every_frame_is_swapped(runs):
    assert len(runs["plates"]) == 4
    assert all(len(r) == 4 for r in runs["results"].values())


def test_eyes_and_brows_only_keep_the_plates_mouth(runs):
    rows = runs["rows"]
    full, eb = np.array(rows["full"]["mouth"]), np.array(rows["eyes_brows"]["mouth"])
    assert full.min() > 0.02  # the whole-face swap changes the mouth ...
    assert eb.max() < 0.5 / 255  # ... the eyes + brows swap leaves it the plate's (8-bit, lossless output)
    # the eyes and brows change as much as in the full swap: inside their contours both paste the same render
    assert np.array(rows["eyes_brows"]["eyes_brows"]).min() > 0.05
    for (_, masks), a, b in zip(runs["areas"], runs["results"]["eyes_brows"], runs["results"]["full"]):
        m = masks["eyes_brows"]
        assert np.abs(a.astype(float) - b.astype(float)).mean(-1)[m].mean() < 1.0  # 8-bit levels


def test_a_farm_chunk_equals_the_single_pass(runs):
    shot = runs["work"] / "eyes_brows" / "shot.yaml"
    proc = subprocess.run([sys.executable, "-m", "vidswap.cli", "render", "--config", str(shot), "--frames", "2-3",
                           "-q"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (chunk,) = (runs["work"] / "eyes_brows" / "swapped.vidswap" / "chunks").glob("*/00000002-00000003.mkv")
    got = decoded(chunk)
    assert len(got) == 2 and all(np.array_equal(a, b) for a, b in zip(got, runs["results"]["eyes_brows"][2:]))


def test_mouth_kept(runs):
    rows = runs["rows"]
    assert np.array(rows["mouth_kept"]["mouth"]).max() < 0.5 / 255
    assert np.array(rows["mouth_kept"]["eyes_brows"]).min() > 0.05


def test_identity_between_none_and_full(runs):
    ident = {k: float(np.mean(r["identity"])) for k, r in runs["rows"].items()}
    # the plate's own face < eyes + brows of the source < the whole face of the source; all but the mouth is close
    # to the whole face
    assert ident["plate"] + 0.05 < ident["eyes_brows"] < ident["full"] - 0.2, ident
    assert ident["eyes_brows"] < ident["mouth_kept"] <= ident["full"] + 0.02, ident
