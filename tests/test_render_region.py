"""The render stage works on each track's face region only (issue 19): the same pictures as the whole-plate path.

Real footage: frames 56-63 of the sample clip (a hand partly over the face, so the occluder path runs too) through
the default render stage twice, with ``face_regions`` on (the default) and off (the whole-plate reference).
Synthetic data only for :func:`footprint_roi`'s exact boxes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vidswap.composite.roi import footprint_roi
from vidswap.config import load_config
from vidswap.io import probe, read_frames
from vidswap.pipeline import StageTimer, build_render
from vidswap.composite.roi import shift_source, shift_target
from vidswap.shot import plan_shot


def _translate(x: float, y: float, scale: float = 1.0) -> torch.Tensor:
    return torch.tensor([[[scale, 0.0, x], [0.0, scale, y]]])


def test_footprint_roi_is_the_aligned_bounding_box_of_the_crops_plus_margin():
    # a 10x10 crop at (100, 50): pixels 100..109 x 50..59; margin 4 -> 96..114 x 46..64 (ends exclusive +1)
    assert footprint_roi(_translate(100, 50), (10, 10), (1080, 1920), 4, align=32) == (96, 32, 128, 64)
    assert footprint_roi(_translate(100, 50), (10, 10), (1080, 1920), 4, align=1) == (96, 46, 114, 64)
    # two frames: the union; clamped to the plate (H=60, W=120)
    both = torch.cat([_translate(100, 50), _translate(20, 5, 2.0)])
    assert footprint_roi(both, (10, 10), (60, 120), 4, align=1) == (16, 1, 114, 60)
    assert footprint_roi(both, (10, 10), (60, 120), 4, align=32) == (0, 0, 120, 60)
    # a crop entirely off the plate: the whole plate (nothing is cut)
    assert footprint_roi(_translate(5000, 5000), (10, 10), (60, 120), 4) == (0, 0, 120, 60)


def test_shifted_matrices_map_region_pixels_like_plate_pixels():
    frame_to_crop = torch.tensor([[[0.5, -0.1, 3.0], [0.1, 0.5, -7.0]]])
    p = torch.tensor([13.0, 21.0, 1.0])
    origin = (64, 32)
    in_region = torch.tensor([13.0 - 64, 21.0 - 32, 1.0])
    assert torch.allclose(shift_source(frame_to_crop, origin)[0] @ in_region, frame_to_crop[0] @ p)
    crop_to_plate = torch.tensor([[[2.0, 0.4, 100.0], [-0.4, 2.0, 50.0]]])
    q = torch.tensor([5.0, 6.0, 1.0])
    assert torch.allclose(shift_target(crop_to_plate, origin)[0] @ q,
                          crop_to_plate[0] @ q - torch.tensor([64.0, 32.0]))
    assert shift_source(frame_to_crop, (0, 0)) is frame_to_crop


@pytest.fixture(scope="module")
def renders(media, tmp_path_factory):
    clip, source = media("pexels_clip"), media("grace_hopper")
    out = tmp_path_factory.mktemp("region") / "out.mp4"
    cfg = load_config(overrides={"input": str(clip), "sources": [str(source)], "frames": "56-63",
                                 "output": {"path": str(out)}})
    plan = plan_shot(cfg)
    cache = Path.home() / ".cache" / "vidswap" / "analysis" / "region_pexels_56-63.npz"
    if cache.exists():  # its key is checked on use: a stale copy is analysed again
        plan.tracks_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache, plan.tracks_path)
    setup = build_render(cfg, plan, StageTimer(), None, [])
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plan.tracks_path, cache)
    with read_frames(probe(clip), range(56, 64)) as stream:
        frames = list(stream)
    stage = setup.stage
    fast = stage(list(frames))
    stage.face_regions = False
    slow = stage(list(frames))
    track = next(iter(stage.targets))
    whole = stage.face_region(setup.analysis.track(track), stage.core.crop_for(setup.analysis.track(track)),
                               frames[0].image.shape[:2])
    stage.face_regions = True
    return frames, fast, slow, stage.face_region(setup.analysis.track(track),
                                                 stage.core.crop_for(setup.analysis.track(track)),
                                                 frames[0].image.shape[:2]), whole


def test_face_region_render_matches_the_whole_plate_render_within_one_code_value(renders):
    frames, fast, slow, region, whole = renders
    h, w = frames[0].image.shape[:2]
    assert whole == (0, 0, w, h)
    x0, y0, x1, y1 = region
    assert (x1 - x0) * (y1 - y0) < 0.7 * w * h  # the work follows the face, not the plate
    for plate, a, b in zip(frames, fast, slow):
        assert a.image.dtype == plate.image.dtype == np.uint8
        diff = np.abs(a.image.astype(int) - b.image.astype(int))
        assert diff.max() <= 1, f"frame {plate.number}: {diff.max()} code values apart"
        assert (diff > 0).mean() < 0.01
        changed = np.abs(a.image.astype(int) - plate.image.astype(int)).max(-1) > 8
        assert changed.sum() > 1000  # the face was swapped
        outside = np.ones((h, w), bool)
        outside[y0:y1, x0:x1] = False
        assert np.array_equal(a.image[outside], plate.image[outside])  # never converted, bit for bit


def test_region_crops_equal_whole_frame_crops():
    """The analysis's face crops (colour statistics, appearance unwrap) from the faces' region only equal the
    crops of the whole converted frame (up to float rounding of the shifted matrices)."""
    from vidswap.composite.convert import to_float
    from vidswap.composite.roi import region_crops
    from vidswap.faces.align import warp_to_crop

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    m = torch.tensor([[[0.8, 0.1, -300.0], [-0.1, 0.8, -120.0]],
                      [[0.5, 0.0, -20.0], [0.0, 0.5, -10.0]]], dtype=torch.float32)
    whole = warp_to_crop(to_float(image)[None].expand(2, -1, -1, -1), m, 96)
    region = region_crops(image, m, 96)
    assert region.shape == (2, 3, 96, 96)
    torch.testing.assert_close(region, whole, atol=2e-4, rtol=0)
