"""Production outputs on real footage: scene-linear EXR plates (OCIO), face patches with transforms and a Nuke
script, preview compares with burn-in, and in-place chunked renders of sequences."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from vidswap.composite.patch import nuke_corners, read_patch, recomposite_patch
from vidswap.io import probe, read_frames
from vidswap.io.colour import ColourPipeline
from vidswap.io.sequences import read_image_file, write_image_file

VIDSWAP = [sys.executable, "-m", "vidswap.cli"]
FRAMES = 6


def vidswap(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*VIDSWAP, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def plates(media) -> list[np.ndarray]:
    with read_frames(probe(media("pexels_clip")), range(0, FRAMES)) as frames:
        return [f.image for f in frames]


@pytest.fixture(scope="module")
def exr_plate(plates, tmp_path_factory) -> Path:
    """The real clip as a scene-linear ACEScg half EXR sequence 1001-1006, with out-of-range values (a hot
    highlight, a negative and a NaN) in a corner no face touches."""
    colour = ColourPipeline.create()
    folder = tmp_path_factory.mktemp("exr")
    for i, image in enumerate(plates):
        linear = colour.to_linear(image)
        linear[0, 0] = (12.5, -0.25, np.nan)
        write_image_file(folder / f"plate.{1001 + i:04d}.exr", linear, "exr")
    return folder / "plate.####.exr"


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    return ~same.all(axis=2)


def test_exr_plate_untouched_pixels_stay_bit_exact_in_linear(exr_plate, media, tmp_path, plates):
    out = tmp_path / "out.####.exr"
    ok(vidswap("run", exr_plate, "-s", media("grace_hopper"), "-o", out, "-q", "--contact-sheet",
               tmp_path / "sheet.png"))
    sheet = cv2.imread(str(tmp_path / "sheet.png"))  # thumbnails of the display picture, not of linear values
    assert abs(float(sheet.mean()) / float(np.mean(plates)) - 1.0) < 0.3
    for number in range(1001, 1001 + FRAMES):
        plate = read_image_file(exr_plate.parent / f"plate.{number}.exr")
        result = read_image_file(tmp_path / f"out.{number}.exr")
        changed = _changed(plate, result)
        ys, xs = np.nonzero(changed)
        assert 0.02 < changed.mean() < 0.5  # the face was swapped ...
        assert 150 < xs.mean() < 500 and 30 < ys.mean() < 330  # ... where the face is
        assert result[0, 0, 0] == np.float32(np.float16(12.5)) and np.isnan(result[0, 0, 2])  # copied, not computed
        # the swapped face is display-referred sRGB in the working space: converting it back stays in [0, 1]
        assert np.nanmax(result[changed]) <= 1.01


def test_exr_plate_to_video_preview_is_display_referred(exr_plate, media, tmp_path, plates):
    out = tmp_path / "preview.mp4"
    ok(vidswap("run", exr_plate, "-s", media("grace_hopper"), "-o", out, "--frames", "1001-1003", "-q"))
    with read_frames(probe(out)) as frames:
        first = next(iter(frames)).image
    corner = (slice(0, 40), slice(560, 640))  # background, untouched: the original sRGB picture again
    assert np.abs(first[corner].astype(int) - plates[0][corner].astype(int)).mean() < 3.0


def test_exr_chunks_write_in_place_and_equal_a_single_pass(exr_plate, media, tmp_path):
    whole, chunked = tmp_path / "whole.####.exr", tmp_path / "chunk.####.exr"
    src = media("grace_hopper")
    ok(vidswap("run", exr_plate, "-s", src, "-o", whole, "-q"))
    ok(vidswap("analyze", exr_plate, "-s", src, "-o", chunked, "-q"))
    for chunk in ("1001-1004", "1005-1006"):
        ok(vidswap("render", exr_plate, "-s", src, "-o", chunked, "--frames", chunk, "-q"))
    assert "skipped" in ok(vidswap("render", exr_plate, "-s", src, "-o", chunked, "--frames", "1005-1006")).stdout
    ok(vidswap("assemble", exr_plate, "-s", src, "-o", chunked, "-q"))
    for number in range(1001, 1001 + FRAMES):
        a = read_image_file(tmp_path / f"whole.{number}.exr")
        b = read_image_file(tmp_path / f"chunk.{number}.exr")
        assert not _changed(a, b).any()
    # a chunk whose frame file went missing is not complete: the assemble check says which
    (tmp_path / "chunk.1002.exr").unlink()
    proc = vidswap("assemble", exr_plate, "-s", src, "-o", chunked, "-q")
    assert proc.returncode == 2 and "1002" in proc.stderr


@pytest.fixture(scope="module")
def patch_job(media, tmp_path_factory):
    work = tmp_path_factory.mktemp("patch")
    clip, src = media("pexels_clip"), media("grace_hopper")
    ok(vidswap("run", clip, "-s", src, "--frames", f"0-{FRAMES - 1}", "-o", work / "full.####.png", "-q"))
    report = ok(vidswap("run", clip, "-s", src, "--frames", f"0-{FRAMES - 1}", "--patches", "-o",
                        work / "patches" / "face.####.png", "-q")).stdout
    (work / "patches.log").write_text(report)
    return work


def test_patch_run_reports_the_files_it_wrote_and_keeps_its_job_folder_out(patch_job):
    report = (patch_job / "patches.log").read_text()
    assert f"wrote {patch_job / 'patches' / 'face_t0.####.png'}:" in report  # what is on disk, not face.####.png
    assert (patch_job / "patches" / "face_t0.0000.png").is_file()
    assert not list((patch_job / "patches").glob("*.vidswap"))  # not where Nuke's file browser lists it
    assert (patch_job / "patches.vidswap" / "face" / "tracks.npz").is_file()


def test_patch_recomposited_onto_the_plate_matches_the_full_render(patch_job, plates):
    for n in range(FRAMES):
        record = json.loads((patch_job / "patches" / f"face_t0.{n:04d}.json").read_text())
        assert record["frame"] == n and record["alpha"] == "straight"
        assert "plate_grain" not in record  # 6 frames: the grain is read on every 5th, too few readings
        rgb, alpha = read_patch(patch_job / "patches" / record["file"])
        side = record["patch"]["width"]  # the crop renders the face at the plate's resolution (a multiple of 32)
        assert record["patch"]["height"] == side and side % 32 == 0 and side >= 256
        assert rgb.shape == (side, side, 3) and alpha.max() == 1.0 and alpha[0, 0] == 0.0
        full = read_image_file(patch_job / f"full.{n:04d}.png")  # 16-bit PNG of the 8-bit render
        full = np.round(full.astype(np.float64) / 257).astype(np.uint8)
        recomp = recomposite_patch(plates[n], rgb, alpha, np.array(record["crop_to_plate"]))
        assert np.abs(recomp.astype(int) - full.astype(int)).max() <= 1


def test_patch_transform_is_exact_and_independent_warp_agrees(patch_job, plates):
    """The 2x3 matrix with a plain OpenCV bilinear warp (no vidswap code) puts the face where the render has it."""
    n = 2
    record = json.loads((patch_job / "patches" / f"face_t0.{n:04d}.json").read_text())
    m = np.array(record["crop_to_plate"])
    assert np.allclose(np.array(record["crop_to_plate_3x3"]) @ np.vstack([np.array(record["plate_to_crop"]),
                                                                          [0, 0, 1]]), np.eye(3), atol=1e-9)
    rgb, alpha = read_patch(patch_job / "patches" / record["file"])
    h, w = plates[n].shape[:2]
    fg = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
    recomp = np.round((plates[n] / 255.0 * (1 - a) + fg * a) * 255).astype(int)
    full = np.round(read_image_file(patch_job / f"full.{n:04d}.png") / 257).astype(int)
    diff = np.abs(recomp - full)
    assert np.percentile(diff, 99.9) <= 2 and diff.mean() < 0.05


def test_patch_nuke_script_pins_the_patch_corners(patch_job):
    script = (patch_job / "patches" / "face_t0.nk").read_text()
    assert "Read {" in script and "CornerPin2D {" in script and "face_t0.####.png" in script
    assert "Merge2 {" in script and "WolfgangLanger_Pexels.mp4" in script  # merged over the plate's Read
    records = [json.loads((patch_job / "patches" / f"face_t0.{n:04d}.json").read_text()) for n in range(FRAMES)]
    for k in range(4):
        line = re.search(rf" to{k + 1} \{{\{{curve ([^}}]*)\}} \{{curve ([^}}]*)\}}\}}", script)
        xs = dict(zip(*[iter(line.group(1).split())] * 2))
        ys = dict(zip(*[iter(line.group(2).split())] * 2))
        for record in records:
            x, y = nuke_corners(record)[k]
            assert float(xs[f"x{record['frame']}"]) == pytest.approx(x, abs=1e-5)
            assert float(ys[f"x{record['frame']}"]) == pytest.approx(y, abs=1e-5)
    # the corners are where the matrix sends them (Nuke: pixel edges, y up)
    r = records[0]
    m = np.array(r["crop_to_plate"])
    top_left_centre = m @ np.array([0.0, 0.0, 1.0])
    x4, y4 = nuke_corners(r)[3]  # top-left corner in Nuke's order
    edge = m @ np.array([-0.5, -0.5, 1.0])
    assert (x4, y4) == pytest.approx((edge[0] + 0.5, r["plate"]["height"] - (edge[1] + 0.5)))
    assert np.hypot(*(edge - top_left_centre)) > 0.5


def test_patch_output_needs_an_image_pattern(media, tmp_path):
    proc = vidswap("run", media("pexels_clip"), "-s", media("grace_hopper"), "--frames", "0-1", "--patches",
                   "-o", tmp_path / "face.mp4", "-q")
    assert proc.returncode == 2 and "pattern" in proc.stderr and not list(tmp_path.iterdir())


def test_compare_preview_is_plate_beside_result_with_burn_in(media, tmp_path, plates):
    out = tmp_path / "cmp.mp4"
    ok(vidswap("run", media("pexels_clip"), "-s", media("grace_hopper"), "--frames", f"0-{FRAMES - 1}",
               "--preview", "--compare", "--burn-in", "-o", out, "-q"))
    info = probe(out)
    assert (info.width, info.height, info.frame_count, info.codec) == (640, 180, FRAMES, "h264")
    with read_frames(info) as frames:
        first = next(iter(frames)).image.astype(np.float32)
    plate_half = cv2.resize(plates[0], (320, 180), interpolation=cv2.INTER_AREA).astype(np.float32)
    middle = (slice(40, 140), slice(60, 260))  # away from the burned-in text
    left_err = np.abs(first[:, :320][middle] - plate_half[middle]).mean()
    right_err = np.abs(first[:, 320:][middle] - plate_half[middle]).mean()
    assert left_err < 4.0 < right_err  # left is the plate, right is the swap
    text_band = first[160:180, 0:110]  # "frame 0  00:00:00:00" in white with a dark outline, after H.264
    assert (text_band.min(axis=2) > 200).mean() > 0.01 and (first[40:140, 0:60].min(axis=2) > 200).mean() == 0


def test_burn_in_draws_only_in_its_corners_at_every_depth():
    from vidswap.composite.burnin import burn_in, decorate_frame
    from vidswap.io import Frame

    for dtype, white in ((np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)):
        grey = np.full((360, 640, 3), white * 0.5, dtype)
        out = burn_in(grey, "shot_010", "vidswap preview", "frame 1001  01:00:00:00", "")
        changed = (out != grey).any(axis=2)
        assert out.dtype == grey.dtype and (out > white * 0.9).all(axis=2).sum() > 200 and (out < white * 0.4).any()
        assert not changed[60:300].any() and not changed[:, 300:360].any()  # the middle is the picture
        assert changed[:60, :200].any() and changed[:60, 440:].any() and changed[300:, :300].any()
    plate = Frame(1001, None, None, np.zeros((100, 200, 3), np.uint8))
    result = Frame(1001, None, None, np.full((100, 200, 3), 255, np.uint8))
    side = decorate_frame(plate, result, compare=True, burnin=False, shot="s", preset="p", size=(200, 50))
    assert side.shape == (50, 200, 3) and side[:30, :60].max() == 0 and side[:30, 100:160].min() == 255
    tc = decorate_frame(plate, result, compare=False, burnin=True, shot="s", preset="p", size=(400, 200), fps=24)
    assert tc.shape == (200, 400, 3)
