"""User occlusion mattes (``composite.matte``), the occlusion matte written out (``composite.matte_output``, the
face patches' occlusion channel): exact synthetic checks, the bad-input errors through the real command line, and a
real swap with an all-white matte that must leave the plate untouched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vidswap.composite.matte import UserMatte, matte_from_image
from vidswap.errors import InputError
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.hands.mask import HandMaskParams, hand_matte
from vidswap.hands.types import HandTracks
from vidswap.render import occluders_to_crop, plate_occluders

VIDSWAP = [sys.executable, "-m", "vidswap.cli"]


def vidswap(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([*VIDSWAP, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)


def write_mattes(directory: Path, numbers, size=(64, 48), channels=1, value=255, dtype=np.uint8) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0]) if channels == 1 else (size[1], size[0], channels)
    for n in numbers:
        cv2.imwrite(str(directory / f"matte.{n:04d}.png"), np.full(shape, value, dtype))
    return str(directory / "matte.####.png")


def test_matte_channels_and_bit_depths():
    p = Path("m.png")
    grey = np.array([[0, 255], [51, 102]], np.uint8)
    np.testing.assert_allclose(matte_from_image(grey, p, (2, 2)), grey / 255.0)
    rgba = np.zeros((2, 2, 4), np.uint16)
    rgba[..., 3] = 65535
    rgba[0, 0, 3] = 0
    np.testing.assert_allclose(matte_from_image(rgba, p, (2, 2)), [[0, 1], [1, 1]])  # the alpha is the matte
    ga = np.zeros((2, 2, 2), np.uint8)
    ga[..., 1] = 255
    np.testing.assert_allclose(matte_from_image(ga, p, (2, 2)), 1.0)
    with pytest.raises(InputError, match=r"m\.png has 3 channels"):
        matte_from_image(np.zeros((2, 2, 3), np.uint8), p, (2, 2))
    with pytest.raises(InputError, match=r"m\.png is 2x2, the plate is 4x2"):
        matte_from_image(grey, p, (4, 2))


def test_missing_frames_named_before_rendering(tmp_path):
    pattern = write_mattes(tmp_path / "roto", [1, 2, 4])
    with pytest.raises(InputError, match=r"matte\.0003\.png is missing and 1 more"):
        UserMatte.open(pattern, [1, 2, 3, 4, 5], (64, 48))
    matte = UserMatte.open(pattern, [1, 2, 4], (64, 48))
    assert matte.read(4).shape == (48, 64) and matte.read(4).min() == 1.0
    with pytest.raises(InputError, match="numbered PNG or TIFF sequence"):
        UserMatte.open(tmp_path / "roto" / "matte.0001.png", [1], (64, 48))


def test_user_matte_and_hands_combine():
    h, w = 60, 80
    pts = np.zeros((21, 3), np.float32)
    pts[:, 0] = 40 + np.linspace(-8, 8, 21)
    pts[:, 1] = 30 + np.linspace(10, -10, 21)
    pts[9, :2], pts[0, :2] = (40, 25), (40, 40)
    hands = HandTracks(np.array([7]), np.array([0], np.int32), pts[None], np.array([0.9], np.float32))
    analysis = ShotAnalysis(header={}, tracks=[], hands=hands)

    class Half:
        def read(self, number):
            return np.full((h, w), 0.5, np.float32)

    plate = np.full((h, w, 3), 128, np.uint8)
    params = HandMaskParams()
    got = plate_occluders(analysis, [7, 8], [plate, plate], params, Half())
    hand = hand_matte(pts[None], plate, params)
    np.testing.assert_allclose(got[0], 1 - (1 - hand) * 0.5, atol=1e-6)
    np.testing.assert_allclose(got[1], 0.5)  # no hand in frame 8: the user's matte alone
    assert plate_occluders(analysis, [8], [plate], params, None) == [None]
    # to the crop: an identity transform keeps the matte; nothing in front gives None
    eye = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    crop = occluders_to_crop([got[0]], eye, (h, w))
    np.testing.assert_allclose(crop[0, 0].numpy(), got[0], atol=1e-5)
    assert occluders_to_crop([None, None], eye.repeat(2, 1, 1), (h, w)) is None


@pytest.mark.parametrize("problem, message", [
    ("missing", r"matte\.0002\.png is missing"),
    ("size", r"matte\.0000\.png is 64x48, the plate is 640x360"),
    ("channels", r"matte\.0000\.png has 3 channels"),
])
def test_bad_matte_sequences_exit_2_naming_the_file(media, tmp_path, problem, message):
    import re

    roto = tmp_path / "roto"
    if problem == "missing":
        pattern = write_mattes(roto, [0, 1, 3], size=(640, 360))
    elif problem == "size":
        pattern = write_mattes(roto, [0, 1, 2, 3])
    else:
        pattern = write_mattes(roto, [0, 1, 2, 3], size=(640, 360), channels=3)
    shot = tmp_path / "shot.yaml"
    shot.write_text(f"input: {media('single_face_clip')}\nsources: [{media('grace_hopper')}]\nframes: 0-3\n"
                    f"output: {{path: {tmp_path / 'out.mkv'}}}\ncomposite: {{matte: {pattern}}}\n")
    proc = vidswap("run", "--config", shot, "-q")
    assert proc.returncode == 2, proc.stderr
    assert re.search(message, proc.stderr) and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.mkv").exists()


def test_white_matte_keeps_the_plate_and_patches_carry_the_occlusion(media, tmp_path):
    """An all-white roto over frames 0-3: the swap leaves every pixel within 2 code values of the plate; the
    debug sequence and the face patches' occlusion files carry the matte."""
    from media_helpers import read_frames

    clip = media("single_face_clip")
    pattern = write_mattes(tmp_path / "roto", range(4), size=(640, 360))
    shot = tmp_path / "shot.yaml"
    shot.write_text(f"input: {clip}\nsources: [{media('grace_hopper')}]\nframes: 0-3\n"
                    f"output: {{path: {tmp_path / 'out' / 'f.####.png'}}}\n"
                    f"composite: {{matte: {pattern}, matte_output: {tmp_path / 'occ' / 'occ.####.png'}}}\n")
    proc = vidswap("run", "--config", shot, "-q")
    assert proc.returncode == 0, proc.stderr
    plates = read_frames(clip, limit=4)
    for n, plate in enumerate(plates):
        out = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / f"f.{n:04d}.png")), cv2.COLOR_BGR2RGB)
        assert np.abs(out.astype(int) - plate.astype(int)).max() <= 2
        occ = cv2.imread(str(tmp_path / "occ" / f"occ.{n:04d}.png"), cv2.IMREAD_UNCHANGED)
        assert occ.dtype == np.uint16 and occ.shape == (360, 640) and occ.min() == 65535
    # without the matte the same frames are swapped (the check above can fail)
    plain = tmp_path / "plain.yaml"
    plain.write_text(f"input: {clip}\nsources: [{media('grace_hopper')}]\nframes: 0-0\n"
                     f"output: {{path: {tmp_path / 'plain' / 'f.####.png'}}}\n")
    assert vidswap("run", "--config", plain, "-q").returncode == 0
    swapped = cv2.cvtColor(cv2.imread(str(tmp_path / "plain" / "f.0000.png")), cv2.COLOR_BGR2RGB)
    assert (np.abs(swapped.astype(int) - plates[0].astype(int)).max(-1) > 2).sum() > 1000
    # face patches: the occlusion matte beside each patch, 1 over the whole crop
    shot.write_text(shot.read_text().replace(str(tmp_path / "out" / "f.####.png"), str(tmp_path / "p" / "face.####.png")))
    proc = vidswap("run", "--config", shot, "--patches", "-q")
    assert proc.returncode == 0, proc.stderr
    occ = sorted((tmp_path / "p").glob("face_t*.occlusion.png"))
    assert len(occ) == 4
    m = cv2.imread(str(occ[0]), cv2.IMREAD_UNCHANGED)
    rgba = cv2.imread(str(occ[0]).replace(".occlusion", ""), cv2.IMREAD_UNCHANGED)
    assert m.shape == rgba.shape[:2] and m[m.shape[0] // 2, m.shape[1] // 2] == 65535
    assert rgba[..., 3].max() == 0  # the occluded face is fully transparent
