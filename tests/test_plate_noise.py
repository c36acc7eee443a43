"""The plate's noise on a face, read in the analyze pass from its change between frames
(vidswap.appearance.plate_noise), and the grain a track's frames get from it (vidswap.composite.grain.track_grain)."""

import cv2
import numpy as np
import pytest
import torch

from vidswap.appearance.plate_noise import NOISE_FIELDS, face_noise, track_noise
from vidswap.appearance.track import TrackAppearance
from vidswap.composite.grain import TRACK_FIELDS, GrainParams, grain_from_residual, track_grain
from vidswap.faces.align import face_height

SIZE = 320
OVAL = np.arange(36)


def textured(seed: int, skin: float = 3.0, size: int = SIZE + 16) -> np.ndarray:
    """A picture (HxWx3 float): a face-sized disk of skin (a gradient with fine texture of ``skin`` levels and a
    few dark 'features') at the centre, hair-like detail of 25 levels around it."""
    rng = np.random.default_rng(seed)
    detail = cv2.GaussianBlur(rng.normal(0, 1, (size, size, 3)).astype(np.float32), (0, 0), 1.2)
    detail /= detail.std()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    disk = np.hypot(xx - size / 2, yy - size / 2) < 64
    out = np.where(disk[..., None], 140 + 30 * yy[..., None] / size + skin * detail, 70 + 25 * detail)
    for fx, fy in ((-22, -15), (22, -15), (0, 25)):  # eyes and mouth
        cv2.circle(out, (int(size / 2 + fx), int(size / 2 + fy)), 7, (60.0, 40.0, 40.0), -1)
    return np.clip(out, 0, 255)


def face_points(cx: float, cy: float, radius: float = 60.0) -> np.ndarray:
    """(478, 3) landmarks: the oval (the first 36) a circle, the rest spread inside it."""
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    oval = np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], 1)
    r, a = radius * np.sqrt(rng.uniform(0, 0.9, 442)), rng.uniform(0, 2 * np.pi, 442)
    inner = np.stack([cx + r * np.cos(a), cy + r * np.sin(a)], 1)
    return np.concatenate([np.concatenate([oval, inner]), np.zeros((478, 1))], 1).astype(np.float32)


def frame(picture: np.ndarray, dx: int, dy: int, sigma: float, seed: int) -> np.ndarray:
    """The picture seen through a SIZE window at (dx, dy), with fresh Gaussian noise of ``sigma`` levels, uint8."""
    view = picture[dy:dy + SIZE, dx:dx + SIZE]
    noise = np.random.default_rng(1000 + seed).normal(0, sigma, view.shape) if sigma else 0.0
    return np.clip(view + noise + 0.5, 0, 255).astype(np.uint8)


def readings(sigma: float, move: tuple[int, int], pairs: int = 6) -> np.ndarray:
    """(pairs, len(NOISE_FIELDS)): the face (a disk at the picture's centre, moving with it) read on consecutive
    frames, the picture moving ``move`` pixels a frame."""
    picture = textured(1)
    out = []
    for k in range(pairs):
        x0, y0 = 8, 8
        prev = frame(picture, x0, y0, sigma, 2 * k)
        cur = frame(picture, x0 + move[0], y0 + move[1], sigma, 2 * k + 1)
        pts = face_points(SIZE / 2 - move[0], SIZE / 2 - move[1])
        out.append(face_noise(prev, cur, pts, OVAL, float(np.hypot(*move))))
    return np.stack(out)


def test_fresh_noise_on_a_still_textured_picture_reads_its_std_and_a_high_share():
    """Noise of 6 levels, new in every frame, on a face with skin texture of 3 levels: the grain's std is
    recovered within 8 % and its share of the face's fine detail is high."""
    model = track_noise(readings(6.0, (0, 0)))
    assert np.all(np.abs(model["grain_std"] * 255 / 6.0 - 1.0) < 0.08), model["grain_std"] * 255
    assert model["grain_share"][0] > 0.75
    assert model["grain_sigma"][0] < 0.5  # white noise


def test_texture_moving_with_the_picture_is_not_grain():
    """The same picture panned 3 px right and 2 px down a frame, with no noise: the flow lines the skin's texture
    up, so little of it is left and the share is low (auto gives this track no grain)."""
    model = track_noise(readings(0.0, (3, 2)))
    assert np.all(model["grain_std"] * 255 < 0.4)
    assert model["grain_share"][0] < 0.15
    assert track_grain(model, GrainParams(auto_range=(0.55, 0.75))) is None


def test_noise_on_a_moving_picture_is_read_after_following_the_motion():
    model = track_noise(readings(5.0, (3, 2)))
    assert np.all(np.abs(model["grain_std"] * 255 / 5.0 - 1.0) < 0.12), model["grain_std"] * 255
    assert model["grain_share"][0] > 0.75


def test_strong_skin_texture_under_weak_noise_reads_a_low_share():
    """The limit of the share: skin texture of 12 levels (pores in a close-up) under noise of 2 levels reads as
    mostly texture, though the noise's own std is still read."""
    picture = textured(1, skin=12.0)
    rows = [face_noise(frame(picture, 8, 8, 2.0, 2 * k), frame(picture, 8, 8, 2.0, 2 * k + 1),
                       face_points(SIZE / 2, SIZE / 2), OVAL, 0.0) for k in range(5)]
    model = track_noise(np.stack(rows))
    assert model["grain_share"][0] < 0.4
    assert np.all(np.abs(model["grain_std"] * 255 / 2.0 - 1.0) < 0.15)


def test_a_face_too_small_or_off_the_frame_is_not_read():
    blank = np.zeros((40, 40, 3), np.uint8)
    row = face_noise(blank, blank, face_points(20, 20, radius=12), OVAL, 0.0)
    assert row.shape == (len(NOISE_FIELDS),) and np.isnan(row).all()
    row = face_noise(blank, blank, face_points(200, 200, radius=30), OVAL, 0.0)
    assert np.isnan(row).all()


def test_track_noise_is_the_median_of_the_readings_converted_to_grain():
    rows = np.array([[0.02, 0.03, 0.04, 0.5, 0.4, 0.6, 0.1, 0.02],
                     [0.04, 0.05, 0.06, 0.7, 0.6, 0.8, 0.2, 0.04],
                     [0.03, 0.04, 0.05, 0.6, 0.5, 0.7, 0.15, 0.05],
                     [0.03, 0.04, 0.05, 0.6, 0.5, 0.7, 0.15, 0.05],
                     [np.nan] * 8], np.float32)
    model = track_noise(rows)
    corr = torch.tensor([[[1.0, 0.6, 0.5], [0.6, 1.0, 0.7], [0.5, 0.7, 1.0]]])
    expect = grain_from_residual(torch.tensor([[0.03, 0.04, 0.05]]), corr, torch.tensor([0.15]),
                                 torch.tensor([True]))
    np.testing.assert_allclose(model["grain_std"], expect.std[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(model["grain_sigma"], expect.sigma.numpy(), rtol=1e-6)
    np.testing.assert_allclose(model["grain_corr"], [0.6, 0.5, 0.7], rtol=1e-6)
    np.testing.assert_allclose(model["grain_share"], [0.04 / 0.045], rtol=1e-6)
    few = track_noise(rows[:3])
    assert set(few) == set(TRACK_FIELDS) and all(np.isnan(v).all() for v in few.values())


def _model(share: float) -> dict:
    return {"grain_std": np.array([0.02, 0.03, 0.04], np.float32), "grain_corr": np.array([0.9, 0.8, 0.85]),
            "grain_sigma": np.array([0.5]), "grain_share": np.array([share])}


@pytest.mark.parametrize("share, scale", [(0.5, None), (0.55, None), (0.6, 0.25), (0.65, 0.5), (0.75, 1.0),
                                          (1.2, 1.0)])
def test_auto_applies_the_measured_grain_over_the_share_ramp(share, scale):
    got = track_grain(_model(share), GrainParams(auto_range=(0.55, 0.75)))
    if scale is None:
        assert got is None
        return
    np.testing.assert_allclose(got.std[0].numpy(), np.array([0.02, 0.03, 0.04]) * scale, rtol=1e-5)
    assert got.sigma.tolist() == [0.5] and got.valid.tolist() == [True]
    assert torch.allclose(got.corr[0], got.corr[0].T) and torch.allclose(torch.diagonal(got.corr[0]), torch.ones(3))
    torch.linalg.cholesky(got.corr[0])  # a valid correlation matrix


def test_true_applies_the_measured_grain_at_any_share_and_nothing_without_a_measurement():
    got = track_grain(_model(0.2), GrainParams())
    np.testing.assert_allclose(got.std[0].numpy(), [0.02, 0.03, 0.04], rtol=1e-6)
    assert track_grain({}, GrainParams()) is None
    assert track_grain(dict(_model(0.9), grain_std=np.full(3, np.nan)), GrainParams()) is None


def test_inconsistent_median_correlations_become_a_valid_matrix():
    model = dict(_model(0.9), grain_corr=np.array([0.95, 0.95, -0.9]))  # no such 3x3 correlation matrix
    got = track_grain(model, GrainParams())
    torch.linalg.cholesky(got.corr[0] + 1e-5 * torch.eye(3))
    assert torch.allclose(torch.diagonal(got.corr[0]), torch.ones(3), atol=1e-5)


def test_track_appearance_keeps_the_grain_and_reads_old_files_as_unmeasured():
    arrays = {"mean": np.zeros((3, 4, 4), np.float16), "weight": np.ones((1, 4, 4), np.float16),
              "broad": np.zeros((3, 4, 4), np.float16), "lighting": np.zeros((1, 9), np.float32),
              "edge_blur": np.zeros(1, np.float32), "frames": np.array([3])}
    old = TrackAppearance.from_arrays(arrays)
    assert all(np.isnan(getattr(old, k)).all() for k in TRACK_FIELDS)
    model = TrackAppearance.from_arrays({**arrays, **_model(0.8)})
    back = model.to_arrays()
    for k, v in _model(0.8).items():
        np.testing.assert_array_equal(back[k], np.asarray(v, np.float32))


def test_the_synthetic_face_is_read_inside_its_oval():
    """The test face's height (the read region starts 0.08 of it inside the oval) leaves most of the disk read."""
    h = float(face_height(torch.from_numpy(face_points(160, 160)[None]))[0])
    assert 60 < h < 160 and 0.08 * h < 12


@pytest.mark.parametrize("value, expect", [("auto", (0.55, 0.75)), (True, None), (False, "off")])
def test_composite_grain_setting(value, expect):
    """``composite.grain``: auto (the default: the track's grain over the share ramp), true (all of it, or each
    frame's ring measure without one), false (off)."""
    from vidswap.composite.compositor import AUTO_GRAIN_RANGE, composite_params
    from vidswap.sections import CompositeConfig

    assert CompositeConfig().grain == "auto" and AUTO_GRAIN_RANGE == (0.55, 0.75)
    params = composite_params(CompositeConfig(grain=value), seed=0)
    if expect == "off":
        assert params.grain is None
    else:
        assert params.grain == GrainParams(auto_range=expect)


def test_the_collector_reads_noise_on_an_odd_stride_that_triples_and_skips_a_cut():
    """Readings at every 5th position (every phase of a codec's group of pictures), the stride tripled once more
    than 48 positions were read, those off it dropped; a face whose nearest face in the frame before is over half a
    face height away (a cut) is not read."""
    from vidswap.appearance.analysis import NOISE_EVERY, NOISE_POSITIONS, AppearanceCollector

    collector = AppearanceCollector(space=None, masks={}, oval=torch.as_tensor(OVAL))
    picture = textured(2)
    prev, cur = frame(picture, 8, 8, 4.0, 0), frame(picture, 8, 8, 4.0, 1)
    pts = face_points(SIZE / 2, SIZE / 2)[None]
    centre = pts[:, :, :2].mean(1)
    for position in range(0, NOISE_EVERY * (NOISE_POSITIONS + 1) + 1, NOISE_EVERY):
        if position % collector._noise_stride == 0:  # as push asks
            collector._read_noise(position, prev, cur, pts, ["a"], centre)
    assert collector._noise_stride == 3 * NOISE_EVERY
    assert sorted(collector._noise) == list(range(0, NOISE_EVERY * (NOISE_POSITIONS + 1) + 1, 3 * NOISE_EVERY))
    assert all(np.isfinite(v["a"]).all() for v in collector._noise.values())
    collector._read_noise(10**6, prev, cur, pts, ["a"], centre + 200.0)
    assert collector._noise[10**6] == {}


def test_the_analyze_report_says_what_the_plate_camera_was_read_as():
    from vidswap.jobs.passes import camera_line

    noisy = dict(_model(0.9), shutter=np.array([0.5]))
    assert camera_line(noisy) == ("plate camera: shutter 0.50 (measured); grain 7.6 8-bit levels, share 0.90 "
                                  "(auto adds all of it)")
    half = dict(_model(0.65), shutter=np.array([np.nan]))
    assert camera_line(half) == ("plate camera: shutter 0.50 (too little motion to measure); grain 7.6 8-bit "
                                 "levels, share 0.65 (auto adds 50% of it)")
    clean = {"shutter": np.array([0.1]), **{k: np.full(n, np.nan) for k, n in TRACK_FIELDS.items()}}
    assert camera_line(clean) == "plate camera: shutter 0.10 (measured); grain not read (too few faces read)"
    assert camera_line({}) == ""


def test_patch_sidecars_carry_the_track_grain_for_the_comp(tmp_path):
    """A patch is clean; its sidecar says what grain the plate had on that face (the comp re-grains it)."""
    import json

    from vidswap.composite.compositor import FaceLayer
    from vidswap.composite.patch import PatchWriter, plate_grain_record
    from vidswap.io.sequences import SequencePattern

    record = plate_grain_record(_model(0.9))
    assert record["std"] == [0.02, 0.03, 0.04] and record["size_px"] == 0.5 and record["share"] == 0.9
    assert record["correlation"] == {"rg": 0.9, "rb": 0.8, "gb": 0.85}
    assert plate_grain_record({}) is None and plate_grain_record(dict(_model(0.9), grain_share=[np.nan])) is None
    writer = PatchWriter(tmp_path, SequencePattern.parse(tmp_path / "face.####.png"), (64, 48),
                         plate_grain={0: record, 1: None})
    for track in (0, 1):
        writer(FaceLayer(7, track, torch.zeros(3, 32, 32), torch.full((3, 32, 32), 0.5), torch.ones(1, 32, 32),
                         torch.tensor([[1.0, 0.0, 10.0], [0.0, 1.0, 5.0]])))
    assert json.loads((tmp_path / "face_t0.0007.json").read_text())["plate_grain"] == record
    assert "plate_grain" not in json.loads((tmp_path / "face_t1.0007.json").read_text())
