"""vidswap.io.colour: OCIO plate <-> display conversion, and compositing in linear that keeps untouched EXR
pixels bit-exact (through the real EXR write/read path of vidswap.io)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from vidswap.errors import ConfigError
from vidswap.io import EncodeSettings, Frame, open_sink, probe, read_frames, read_image
from vidswap.io.colour import DEFAULT_CONFIG, ColourPipeline, composite_in_linear
from vidswap.io.sequences import write_image_file


@pytest.fixture(scope="module")
def colour():
    return ColourPipeline.create()  # built-in CG config, ACEScg plate, sRGB-encoded Rec.709 working space


@pytest.fixture(scope="module")
def portrait(media):
    """A real portrait, 8-bit sRGB as shot (512x512)."""
    return read_image(media("astronaut"))


def _ellipse_alpha(h: int, w: int, cy: float, cx: float, ry: float, rx: float, feather: float = 0.25) -> np.ndarray:
    """1 inside, a soft edge, and exactly 0 outside (like the compositor's face mask)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2)
    return np.clip((1.0 + feather - r) / feather, 0.0, 1.0).astype(np.float32)


def test_defaults_resolve_to_aces_cg_and_srgb(colour):
    assert colour.config_name == DEFAULT_CONFIG.removeprefix("ocio://")
    assert (colour.input, colour.working, colour.output) == ("ACEScg", "sRGB Encoded Rec.709 (sRGB)", "ACEScg")


def test_display_linear_display_round_trip_within_1e3(colour, portrait):
    display = portrait.astype(np.float32) / 255.0
    linear = colour.to_linear(display)
    assert linear.dtype == np.float32 and linear.shape == display.shape
    assert not np.allclose(linear, display, atol=0.02)  # it really converted (gamma + AP1 primaries)
    back = colour.to_display(linear)
    assert np.abs(back - display).max() < 1e-3
    assert np.array_equal(colour.to_display(linear, dtype=np.uint8), portrait)  # 8-bit values come back exactly
    ramp = np.linspace(0.0, 1.0, 3 * 4096, dtype=np.float32).reshape(-1, 3)  # every in-gamut level, no image
    assert np.abs(colour.to_display(colour.to_linear(ramp)) - ramp).max() < 1e-3


def test_known_values(colour):
    """sRGB mid grey 0.5 -> 0.214 linear (grey stays grey through Rec.709 -> AP1); linear 0.18 -> 0.461."""
    grey = colour.to_linear(np.full((1, 1, 3), 0.5, np.float32))
    assert np.allclose(grey, 0.21404, atol=2e-4)
    assert np.allclose(colour.to_display(np.full((1, 1, 3), 0.18, np.float32)), 0.46135, atol=2e-4)


def test_untouched_exr_pixels_stay_bit_exact(colour, portrait, tmp_path):
    """Plate (real portrait made scene-linear, float16 EXR) -> display -> 'swap' -> composite in linear -> EXR:
    every pixel with alpha == 0 is the plate's own half float, bit for bit; the face region did change."""
    h, w = portrait.shape[:2]
    plate16 = (colour.to_linear(portrait) * 1.6).astype(np.float16)  # exposure up: highlights above 1.0
    plate16[:8, :8] = np.array([-0.25, 0.0, np.inf], np.float16)  # negative and inf
    for i in range(2):
        write_image_file(tmp_path / f"plate.{1001 + i:04d}.exr", plate16.astype(np.float32), "exr")
    info = probe(tmp_path / "plate.####.exr")
    assert info.pix_fmt == "rgbf16"
    alpha = _ellipse_alpha(h, w, cy=180, cx=250, ry=110, rx=85)
    assert (alpha == 0).mean() > 0.7 and ((alpha > 0) & (alpha < 1)).any() and (alpha == 1).any()

    out_dir = tmp_path / "comp"
    with read_frames(info) as frames, open_sink(out_dir / "comp.####.exr", info, EncodeSettings("exr")) as sink:
        for frame in frames:
            display = colour.to_display(frame.image)
            swapped = np.clip(display[..., ::-1] * 0.8 + 0.1, 0.0, 1.0)  # a very different "face" everywhere
            out = colour.composite_in_linear(frame.image, swapped, alpha)
            assert out.dtype == frame.image.dtype and out.shape == frame.image.shape
            sink.write(Frame(frame.number, frame.pts, frame.timecode, colour.to_output(out)))

    with read_frames(probe(out_dir / "comp.####.exr")) as stream:
        comp = list(stream)
    assert [f.number for f in comp] == [1001, 1002]
    untouched = alpha == 0
    plate_bits = plate16.view(np.uint16)
    for f in comp:
        bits = f.image.astype(np.float16).view(np.uint16)
        assert np.array_equal(bits[untouched], plate_bits[untouched])  # bit-identical half floats
        assert np.isinf(f.image[0, 0, 2]) and f.image[0, 0, 0] == np.float16(-0.25)
        inside = alpha == 1
        expected = colour.to_linear(swapped[inside]).astype(np.float16)
        assert np.array_equal(f.image[inside].astype(np.float16), expected)  # fully swapped = the swap, linear
        assert np.abs(f.image[inside] - plate16[inside].astype(np.float32)).mean() > 0.05


def test_float32_plate_exact_where_a_colour_round_trip_is_not(colour, portrait):
    """float32 plates: a display round trip changes the low bits of most pixels; compositing does not."""
    plate = colour.to_linear(portrait) * np.float32(1.37)
    round_trip = colour.to_linear(colour.to_display(plate))
    assert (round_trip != plate).mean() > 0.5  # so exactness below is not an accident of precision
    h, w = plate.shape[:2]
    alpha = _ellipse_alpha(h, w, cy=200, cx=260, ry=120, rx=90)
    out = composite_in_linear(plate, colour.to_display(plate, dtype=np.uint8), alpha, colour)
    assert np.array_equal(out[alpha == 0], plate[alpha == 0])
    assert (out[alpha > 0] != plate[alpha > 0]).mean() > 0.5


def test_composite_blends_in_linear_light(colour):
    plate = np.full((4, 4, 4), 0.5, np.float32)  # RGBA plate: the 4th channel is always kept
    plate[..., 3] = 0.25
    swapped = np.zeros((4, 4, 3), np.uint8)  # display black -> linear 0
    alpha = np.zeros((4, 4, 1), np.float32)
    alpha[1, 1] = 0.5
    alpha[2, 2] = 1.0
    out = composite_in_linear(plate, swapped, alpha, colour)
    assert np.allclose(out[1, 1, :3], 0.25, atol=1e-6)  # half of linear 0.5 (not of its display value)
    assert np.allclose(out[2, 2, :3], 0.0, atol=1e-6)
    assert np.array_equal(out[0, 0], plate[0, 0]) and np.array_equal(out[..., 3], plate[..., 3])
    nothing = composite_in_linear(plate, swapped, np.zeros((4, 4), np.uint8), colour)
    assert np.array_equal(nothing, plate) and nothing is not plate
    with pytest.raises(ValueError):
        composite_in_linear(plate, swapped[:2], alpha, colour)


def test_output_space_and_config_section(colour):
    same = ColourPipeline.from_config(SimpleNamespace(config=None, input="lin_ap1", working="srgb_tx", output=None))
    x = np.random.default_rng(0).uniform(0, 2, (8, 8, 3)).astype(np.float32)
    assert same.to_output(x) is x  # output == input: nothing computed
    aces = ColourPipeline.create(input="ACEScg", output="ACES2065-1")
    assert aces.output == "ACES2065-1"
    y = aces.to_output(x)
    assert y.shape == x.shape and not np.allclose(y, x)
    grey = aces.to_output(np.full((1, 1, 3), 0.18, np.float32))
    assert np.allclose(grey, 0.18, atol=1e-4)  # grey is grey in every ACES space


def test_display_view_working_space(colour):
    view = ColourPipeline.create(working="sRGB - Display/ACES 1.0 - SDR Video")
    assert view.working == "sRGB - Display/ACES 1.0 - SDR Video"
    lin = np.array([[[0.18, 0.18, 0.18], [4.0, 4.0, 4.0]]], np.float32)
    disp = view.to_display(lin)
    assert 0.3 < disp[0, 0, 0] < 0.5 and disp[0, 1, 0] < 1.0  # tone-mapped: highlights fit the display
    near_grey = np.linspace(0.05, 0.9, 300, dtype=np.float32)[:, None].repeat(3, axis=1)
    assert np.abs(view.to_display(view.to_linear(near_grey)) - near_grey).max() < 2e-3


def test_bad_config_and_spaces_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot load the OCIO config"):
        ColourPipeline.create(config=str(tmp_path / "missing.ocio"))
    with pytest.raises(ConfigError, match="colorspace.input: 'ACEScgg'"):
        ColourPipeline.create(input="ACEScgg")
    with pytest.raises(ConfigError, match="display/view|<display>/<view>"):
        ColourPipeline.create(working="sRGB - Display/No Such View")
    with pytest.raises(ConfigError, match="environment variable"):
        ColourPipeline.create(config="$VIDSWAP_TEST_UNSET_OCIO_VAR")
