"""Grain on real footage: the low-light clip (samples/noisy_plate.py, the Pexels woman under noise of a known std)
-- the analysis reads the noise on the face and tells it from the clean clip's texture, and the default
``composite.grain: auto`` gives the swapped face the plate's grain."""

from __future__ import annotations

import numpy as np
import pytest
from media_run_helpers import only_track as _track, run_cli as _run, video_frames as _frames

FRAMES = 32
SIGMA = 6.0


def _face_noise(plate, result, points):
    """The eval's frame-to-frame noise (:func:`~vidswap.eval.frame_metrics.temporal_noise`) of the plate and the
    result inside the face's landmark hull (eroded clear of its outline), over all frames: (plate, result)
    medians in 8-bit levels."""
    import cv2

    from vidswap.eval.frame_metrics import dis_flow, eroded, temporal_noise

    got = {"plate": [], "result": []}
    for i in range(1, len(plate)):
        hull = np.zeros(plate[i].shape[:2], np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(points[i].astype(np.float32)).astype(np.int32), 1)
        inner = eroded(hull, 6)
        flow = dis_flow(plate[i - 1], plate[i])
        got["plate"].append(temporal_noise(plate[i - 1], plate[i], flow, inner))
        got["result"].append(temporal_noise(result[i - 1], result[i], flow, inner))
    return float(np.median(got["plate"])), float(np.median(got["result"]))


@pytest.fixture(scope="module")
def noisy(media, tmp_path_factory):
    import noisy_plate

    return noisy_plate.noisy_clip(media("pexels_clip"), tmp_path_factory.mktemp("noisy") / "noisy.mp4",
                                  frames=FRAMES, sigma=SIGMA)


def test_the_analysis_reads_the_plate_noise_and_tells_it_from_texture(noisy, media, tmp_path):
    """The noisy clip's track reads a grain std within 15 % of the noise added (the codec keeps most of it) and a
    high grain share; the clean clip's track a low share, so ``auto`` gives it no grain (measured: 6.1-6.3 levels
    and 0.9 on the noisy clip, 0.40 on the clean one)."""
    from vidswap.composite.compositor import AUTO_GRAIN_RANGE
    from vidswap.composite.grain import GrainParams, track_grain

    auto = GrainParams(auto_range=AUTO_GRAIN_RANGE)
    _run(["analyze", noisy, "-s", media("grace_hopper"), "-o", tmp_path / "n.mkv", "-q"])
    grainy = _track(tmp_path / "n.vidswap").appearance
    assert np.all(np.abs(grainy["grain_std"] * 255 / SIGMA - 1.0) < 0.15), grainy["grain_std"] * 255
    assert grainy["grain_share"][0] > AUTO_GRAIN_RANGE[1]
    assert track_grain(grainy, auto) is not None
    _run(["analyze", media("pexels_clip"), "-s", media("grace_hopper"), "-o", tmp_path / "c.mkv", "--frames",
          f"0-{FRAMES - 1}", "-q"])
    clean = _track(tmp_path / "c.vidswap").appearance
    assert clean["grain_share"][0] < AUTO_GRAIN_RANGE[0], clean["grain_share"]
    assert track_grain(clean, auto) is None


def test_the_swapped_face_carries_the_plate_grain(noisy, media, tmp_path):
    """The noisy clip swapped with the default (``composite.grain: auto``) and with grain off: inside the face, the
    result's frame-to-frame noise against the plate's is near 1 with it and a small fraction without (measured on
    60 frames: 1.03 and 0.10; the eval's ``quality.noise``)."""
    auto, off = tmp_path / "auto.mkv", tmp_path / "off.mkv"
    _run(["run", noisy, "-s", media("grace_hopper"), "-o", auto, "--codec", "ffv1", "-q"])
    config = tmp_path / "off.yaml"
    config.write_text("composite:\n  grain: false\n")
    _run(["run", noisy, "-s", media("grace_hopper"), "-o", off, "--codec", "ffv1", "--config", config, "-q"])
    points = _track(tmp_path / "auto.vidswap").smoothed[..., :2]
    plate = _frames(noisy)
    plate_noise, with_grain = _face_noise(plate, _frames(auto), points)
    _, without = _face_noise(plate, _frames(off), points)
    assert plate_noise > 4.0  # the eval reads the plate's face as noisy (its high-pass keeps ~0.9 of white noise)
    assert 0.85 < with_grain / plate_noise < 1.2, (with_grain, plate_noise)
    assert without / plate_noise < 0.3, (without, plate_noise)


def test_a_scene_linear_plate_gets_the_grain_too(noisy, media, tmp_path):
    """The noisy clip as a scene-linear EXR sequence: the analysis reads the grain on the plate as the models see it
    (the working space), the face takes it there before it goes back to linear, so seen through the view again
    the face is as grainy as the plate (measured: 0.97; 0.09 before the linear path took the grain)."""
    from vidswap.composite.linear import display_plate
    from vidswap.io.colour import ColourPipeline
    from vidswap.io.sequences import read_image_file, write_image_file
    from vidswap.shot import job_dir

    colour = ColourPipeline.create()
    frames = _frames(noisy)[:24]
    for i, image in enumerate(frames):
        write_image_file(tmp_path / f"plate.{1001 + i:04d}.exr", colour.to_linear(image), "exr")
    _run(["run", tmp_path / "plate.####.exr", "-s", media("grace_hopper"), "-o", tmp_path / "out.####.exr", "-q"])
    job = job_dir(tmp_path / "out.####.exr")
    assert _track(job).appearance["grain_share"][0] > 0.75

    def seen(name):
        return [(display_plate(colour, read_image_file(tmp_path / f"{name}.{1001 + i:04d}.exr")) * 255 + 0.5)
                .clip(0, 255).astype(np.uint8) for i in range(len(frames))]

    plate_noise, result_noise = _face_noise(seen("plate"), seen("out"), _track(job).smoothed[..., :2])
    assert 0.8 < result_noise / plate_noise < 1.25, (result_noise, plate_noise)
