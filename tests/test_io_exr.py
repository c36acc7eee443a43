"""EXR conventions: scene-linear pixels (display-referred plates decoded through OCIO, never sRGB-encoded values
in an EXR), ``chromaticities``, ``colorSpace``, software and provenance attributes in every EXR written."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import PyOpenColorIO as ocio
import pytest

from vidswap import __version__
from vidswap.composite.patch import write_rgba
from vidswap.config import ColourspaceConfig, load_config
from vidswap.errors import ConfigError
from vidswap.io import Frame, MediaInfo, open_sink
from vidswap.io.chromaticities import GAMUTS, REFERENCE_CONFIG, chromaticities, gamut_of
from vidswap.io.exr import ExrOutput, read_exr_attributes
from vidswap.io.sequences import read_image_file, write_image_file
from vidswap.shot import exr_output

AP1 = GAMUTS["AP1"][1]
REC709 = GAMUTS["Rec.709"][1]


def srgb_to_linear(code: np.ndarray) -> np.ndarray:
    """The sRGB decoding (IEC 61966-2-1), written out independently of OCIO."""
    v = code / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


@pytest.fixture(scope="module")
def builtin():
    return ocio.Config.CreateFromFile(REFERENCE_CONFIG)


@pytest.mark.parametrize("space, gamut", [
    ("ACEScg", "AP1"), ("ACEScct", "AP1"), ("ACES2065-1", "AP0"), ("sRGB Encoded Rec.709 (sRGB)", "Rec.709"),
    ("Linear Rec.709 (sRGB)", "Rec.709"), ("Linear Rec.2020", "Rec.2020"), ("sRGB Encoded P3-D65", "P3-D65"),
    ("Raw", None)])
def test_gamut_identified_by_the_colourspace_transform(builtin, space, gamut):
    assert gamut_of(builtin, space) == gamut


def test_config_without_interchange_roles_gives_no_chromaticities():
    raw = ocio.Config.CreateRaw()  # one colourspace, no interchange role to compare through
    assert chromaticities(raw, "raw") is None


def test_display_referred_frames_are_linearised_and_tagged(tmp_path):
    codes = np.array([0, 10, 64, 128, 200, 255], np.uint8)
    image = np.repeat(np.repeat(codes[None, :, None], 4, axis=0), 3, axis=2)  # greys: the same in any gamut
    rec709 = ExrOutput.create(ColourspaceConfig(output="Linear Rec.709 (sRGB)"), {"vidswap:input": "plate.mov"})
    write_image_file(tmp_path / "grey.exr", image, "exr", rec709)
    written = read_image_file(tmp_path / "grey.exr")[0, :, 0]
    assert np.allclose(written, srgb_to_linear(codes.astype(np.float64)), rtol=2e-3, atol=1e-4)
    attrs = read_exr_attributes(tmp_path / "grey.exr")
    assert attrs["colorSpace"] == "Linear Rec.709 (sRGB)"
    assert attrs["chromaticities"] == pytest.approx(REC709, abs=1e-6)
    assert attrs["software"] == f"vidswap {__version__}" and attrs["vidswap:input"] == "plate.mov"
    assert attrs["vidswap:ocioConfig"].startswith("cg-config")


def test_default_exr_space_is_scene_linear_acescg_with_ap1(tmp_path):
    red = np.zeros((2, 2, 3), np.uint8)
    red[..., 0] = 255
    write_image_file(tmp_path / "red.exr", red, "exr")  # no ExrOutput given: the built-in defaults
    attrs = read_exr_attributes(tmp_path / "red.exr")
    assert attrs["colorSpace"] == "ACEScg" and attrs["chromaticities"] == pytest.approx(AP1, abs=1e-6)
    pixel = read_image_file(tmp_path / "red.exr")[0, 0]
    assert pixel[0] < 0.7 and pixel[1] > 0.02 and pixel[2] > 0.01  # Rec.709 red inside AP1: not (1, 0, 0)


def test_transposed_frames_are_written(tmp_path):
    """Frames that come from torch as permuted views (not C-contiguous) go through OCIO all the same."""
    chw = np.random.default_rng(0).integers(0, 256, (3, 4, 6), dtype=np.uint8)
    view = chw.transpose(1, 2, 0)  # HxWx3 with channel-first memory
    assert not view.flags.c_contiguous
    write_image_file(tmp_path / "t.exr", view, "exr")
    write_image_file(tmp_path / "c.exr", np.ascontiguousarray(view), "exr")
    assert np.array_equal(read_image_file(tmp_path / "t.exr"), read_image_file(tmp_path / "c.exr"))


def test_float_frames_pass_unchanged(tmp_path):
    linear = np.array([[[0.18, 2.5, -0.01]]], np.float32)  # scene-linear values outside [0, 1] survive
    write_image_file(tmp_path / "f.exr", linear, "exr")
    assert np.allclose(read_image_file(tmp_path / "f.exr"), linear, rtol=1e-3)


def test_sequence_sink_tags_every_exr_with_the_jobs_colour(tmp_path):
    info = MediaInfo(path=Path("plate.mov"), kind="video", width=4, height=2, frame_count=2, first_frame=0,
                     fps=Fraction(24), vfr=False, time_base=Fraction(1, 24), duration=2 / 24, codec="h264",
                     pix_fmt="yuv420p", bit_depth=8, color_primaries=None, color_trc=None, colorspace=None,
                     color_range=None, timecode=None, rotation=0, audio=(), pattern=None)
    cfg = load_config(overrides={"input": "plate.mov", "sources": ["actor.jpg"],
                                 "colorspace": {"output": "Linear Rec.2020"}})
    with open_sink(tmp_path / "out.####.exr", info, size=(4, 2), exr=exr_output(cfg, info)) as sink:
        for n in range(2):
            sink.write(Frame(number=n, pts=n, timecode=None, image=np.full((2, 4, 3), 128, np.uint8)))
    for n in range(2):
        attrs = read_exr_attributes(tmp_path / f"out.{n:04d}.exr")
        assert attrs["colorSpace"] == "Linear Rec.2020" and attrs["vidswap:sources"] == "actor.jpg"
        assert attrs["chromaticities"] == pytest.approx(GAMUTS["Rec.2020"][1], abs=1e-6)
        assert attrs["vidswap:swapCore"] == "geometric" and attrs["vidswap:input"] == "plate.mov"
        value = read_image_file(tmp_path / f"out.{n:04d}.exr")[0, 0]
        assert np.allclose(value, srgb_to_linear(np.float64(128)), rtol=2e-3)  # grey: linear in any gamut


def test_patch_exr_carries_the_attributes(tmp_path):
    exr = ExrOutput.create(ColourspaceConfig(), {"vidswap:input": "plate.mov"})
    write_rgba(tmp_path / "p.exr", np.full((4, 4, 3), 0.5, np.float32), np.ones((4, 4), np.float32), ".exr", exr)
    attrs = read_exr_attributes(tmp_path / "p.exr")
    assert attrs["colorSpace"] == "ACEScg" and attrs["chromaticities"] == pytest.approx(AP1, abs=1e-6)
    assert attrs["vidswap:input"] == "plate.mov"


def test_unknown_output_space_is_a_config_error():
    with pytest.raises(ConfigError, match="colorspace.output"):
        ExrOutput.create(ColourspaceConfig(output="No Such Space"))
