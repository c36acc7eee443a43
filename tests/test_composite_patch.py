"""Face-patch files, transforms and the Nuke corner pin, on synthetic data with exact answers."""

from __future__ import annotations

import numpy as np
import pytest

from vidswap.composite.patch import (
    NukePlate,
    affine_3x3,
    nuke_corners,
    nuke_script,
    patch_record,
    read_patch,
    recomposite_patch,
    track_pattern,
    write_rgba,
)
from vidswap.errors import InputError
from vidswap.io.sequences import SequencePattern


def test_track_pattern_inserts_the_track_before_the_frame_number():
    p = SequencePattern.parse("/comp/face.####.png")
    assert track_pattern(p, 3).name(1001) == "face_t3.1001.png"
    assert track_pattern(SequencePattern.parse("/comp/face_%05d.exr"), 0).name(7) == "face_t0_00007.exr"


def test_identity_transform_pins_the_patch_onto_itself():
    record = patch_record(1001, 0, np.array([[1.0, 0, 0], [0, 1.0, 0]]), (256, 256), (256, 256), "f.png",
                          "straight", None)
    assert nuke_corners(record) == [(0.0, 0.0), (256.0, 0.0), (256.0, 256.0), (0.0, 256.0)]
    assert np.array_equal(np.array(record["plate_to_crop"]), [[1, 0, 0], [0, 1, 0]])


def test_scaled_and_shifted_transform_corners_in_nuke_coordinates():
    # crop pixel centre (x, y) -> plate (2x + 10, 2y + 20); plate 640x360
    record = patch_record(5, 0, np.array([[2.0, 0, 10], [0, 2.0, 20]]), (100, 50), (640, 360), "f.png",
                          "straight", None)
    # bottom-left corner of the patch = its top-left edge corner (-0.5, 49.5) in centre coordinates
    (x1, y1), (x2, y2), (x3, y3), (x4, y4) = nuke_corners(record)
    assert (x1, y1) == pytest.approx((2 * -0.5 + 10 + 0.5, 360 - (2 * 49.5 + 20 + 0.5)))
    assert (x3, y3) == pytest.approx((2 * 99.5 + 10 + 0.5, 360 - (2 * -0.5 + 20 + 0.5)))
    assert x2 - x1 == pytest.approx(200.0) and y4 - y1 == pytest.approx(100.0)
    assert np.allclose(affine_3x3(record["crop_to_plate"]) @ affine_3x3(record["plate_to_crop"]), np.eye(3))
    script = nuke_script(SequencePattern.parse("/comp/face.####.png"), 0, [record])
    assert "to1 {{curve x5 9.500000}" in script and "Premult {" in script and "premultiplied false" in script


@pytest.mark.parametrize("ext", [".png", ".exr"])
def test_patch_file_round_trip(tmp_path, ext):
    rng = np.random.default_rng(0)
    rgb = rng.random((32, 48, 3), dtype=np.float32)
    alpha = np.clip(rng.random((32, 48), dtype=np.float32) * 1.5 - 0.25, 0, 1)
    write_rgba(tmp_path / f"p{ext}", rgb, alpha, ext)
    back_rgb, back_a = read_patch(tmp_path / f"p{ext}")
    assert back_rgb.shape == rgb.shape and back_a.shape == alpha.shape
    tol = 0.5 / 65535 if ext == ".png" else 1e-3
    assert np.abs(back_a - alpha).max() <= tol + 1e-7
    seen = alpha > 0.05  # premultiplied half: colour is recoverable where there is alpha
    assert np.abs(back_rgb - rgb)[seen].max() <= (tol + 1e-7 if ext == ".png" else 2e-2)


def test_opaque_patch_shifted_by_whole_pixels_lands_exactly():
    plate = np.zeros((40, 60, 3), np.uint8)
    rgb = np.zeros((10, 10, 3), np.float32)
    rgb[..., 0] = np.arange(10)[None, :] / 255.0  # a ramp: code value = patch column
    alpha = np.zeros((10, 10), np.float32)
    alpha[2:8, 2:8] = 1.0
    out = recomposite_patch(plate, rgb, alpha, np.array([[1.0, 0, 20], [0, 1.0, 5]]))
    assert np.array_equal(out[7:13, 22:28, 0], np.tile(np.arange(2, 8, dtype=np.uint8), (6, 1)))
    assert out[:7].max() == 0 and out[13:].max() == 0 and out[:, :22].max() == 0 and out[:, 28:].max() == 0


def test_patch_output_pattern_is_checked():
    from vidswap.composite.patch import check_patch_pattern

    with pytest.raises(InputError, match="pattern"):
        check_patch_pattern("face.mov")
    with pytest.raises(InputError, match="pattern"):
        check_patch_pattern("face.####.tif")
    assert check_patch_pattern("face.####.exr").ext == ".exr"


def _nodes(script: str) -> list[str]:
    """The node classes of a Nuke script in the order they are pushed."""
    return [line[:-2] for line in script.splitlines() if line.endswith(" {") and not line.startswith(" ")]


def test_nuke_script_reads_the_plate_and_merges_the_patch_over_it():
    record = patch_record(1001, 0, np.eye(3)[:2], (256, 256), (1920, 1080), "face_t0.1001.exr", "premultiplied",
                          "ACEScg")
    plate = NukePlate("/plates/sh010/plate.####.exr", 1001, 1100, "ACEScg")
    script = nuke_script(SequencePattern.parse("/comp/face.####.exr"), 0, [record], plate)
    # patch chain first (Merge input A), the plate last (input 0, B), then the Merge: the comp shows on opening
    assert _nodes(script) == ["Read", "Reformat", "CornerPin2D", "Read", "Merge2"]
    patch_read, plate_read = script.split("Read {")[1], script.split("Read {")[2]
    assert ' colorspace "ACEScg"' in patch_read and ' file "/plates/sh010/plate.####.exr"' in plate_read
    assert " first 1001" in plate_read and " last 1100" in plate_read and ' colorspace "ACEScg"' in plate_read
    merge = script.split("Merge2 {")[1]
    assert " inputs 2" in merge and " operation over" in merge


def test_nuke_movie_plate_starts_at_the_plates_first_frame():
    record = patch_record(0, 1, np.eye(3)[:2], (256, 256), (640, 360), "face_t1.0000.png", "straight",
                          "sRGB Encoded Rec.709 (sRGB)")
    script = nuke_script(SequencePattern.parse("/comp/face.####.png"), 1, [record],
                         NukePlate("/plates/clip.mp4", 0, 47, "sRGB Encoded Rec.709 (sRGB)", movie=True))
    plate_read = script.split("Read {")[2]
    # Nuke numbers movie frames from 1; vidswap from 0: the Read starts the movie at frame 0
    assert " last 48" in plate_read and ' frame_mode "start at"' in plate_read and " frame 0" in plate_read
    assert _nodes(script) == ["Read", "Premult", "Reformat", "CornerPin2D", "Read", "Merge2"]
    assert ' colorspace "sRGB Encoded Rec.709 (sRGB)"' in script.split("Read {")[1]
