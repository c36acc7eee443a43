"""Crop-space work bounded in size (issue 19): the compositor's masks at a capped working size (exact scaling rules
on synthetic data, the output against the full-size masks on real frames of the sample clip) and the render stage's
faces in groups of bounded crop pixels (the same pictures as one group)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidswap.composite.compositor import CompositeConfig, _to_work, build_masks, composite_params, mask_scale
from vidswap.composite.masks import face_size, polygon_mask, region_polygon
from test_composite_compositor import synthetic_face


def test_mask_scale_caps_the_longer_side():
    assert mask_scale((1024, 1024), 384) == (384, 384)
    assert mask_scale((576, 576), 384) == (384, 384)
    assert mask_scale((600, 400), 300) == (300, 200)
    assert mask_scale((136, 128), 64) == (64, 60)  # 128 * 64 / 136 = 60.2
    assert mask_scale((256, 256), 384) == (256, 256)  # small crops keep their size
    assert mask_scale((384, 384), 384) == (384, 384)
    assert mask_scale((1024, 1024), None) == (1024, 1024)
    assert composite_params(CompositeConfig(), 0).mask_size == 384
    assert composite_params(CompositeConfig(mask_size=None), 0).mask_size is None


def test_landmarks_follow_the_box_filter_pixel_centres():
    # factor 2: pixels 0 and 1 average into working pixel 0, so x = 0.5 -> 0, x = 2.5 -> 1, x = -0.5 -> -0.5
    lm = torch.tensor([[[0.5, 2.5, 6.0], [-0.5, 1.5, 4.0]]])
    out = _to_work(lm, (8, 8), (4, 4))
    assert torch.equal(out, torch.tensor([[[0.0, 1.0, 3.0], [-0.5, 0.5, 2.0]]]))
    # and the area filter of a ramp puts its values where those centres say
    ramp = torch.arange(8, dtype=torch.float32).expand(1, 1, 8, 8)
    assert torch.equal(F.interpolate(ramp, size=(4, 4), mode="area")[0, 0, 0], torch.tensor([0.5, 2.5, 4.5, 6.5]))


def _crop(frames: int = 2, scale: int = 1) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """A skin-coloured synthetic face on a grey crop (136 x 128 times ``scale``, the compositor test's face)."""
    pts, regions = synthetic_face()
    lm = ((pts + 0.5) * scale - 0.5).expand(frames, -1, -1).clone()
    face = polygon_mask(region_polygon(lm, regions["face_oval"]), (136 * scale, 128 * scale))
    skin = torch.tensor([0.80, 0.58, 0.47]).view(1, 3, 1, 1)
    crop = skin * face + 0.3 * (1 - face)
    return crop, lm, regions


def test_mask_size_at_or_above_the_crop_is_the_full_size_path_bit_for_bit():
    crop, lm, regions = _crop()
    params = composite_params(CompositeConfig(mask_size=None), 0)
    ref = build_masks(crop, lm, regions, params)
    for size in (136, 512):
        got = build_masks(crop, lm, regions, dataclasses.replace(params, mask_size=size))
        for name in ("region", "visibility", "stats", "face", "size"):
            assert torch.equal(getattr(got, name), getattr(ref, name)), name


def test_working_size_keeps_the_seam_exact_and_the_occlusion_close():
    # the face fills the crop as an auto-sized crop's does (face size ~0.63 of the side): 258 px in a 408 crop,
    # feature masks at half that (the default 384 takes a 576-px crop to 2/3, a 1024-px one to 3/8)
    crop, lm, regions = _crop(scale=3)
    params = composite_params(CompositeConfig(mask_size=None), 0)
    ref = build_masks(crop, lm, regions, params)
    got = build_masks(crop, lm, regions, dataclasses.replace(params, mask_size=204))
    assert got.region.shape == ref.region.shape == got.visibility.shape == got.stats.shape == (2, 1, 408, 384)
    for name in ("region", "face", "size"):  # outline, erosion and feather at the crop's size: the same seam
        assert torch.equal(getattr(got, name), getattr(ref, name)), name
    assert torch.equal(got.visibility, torch.ones_like(got.visibility))  # nothing but skin in front: all visible
    assert set(got.stats.unique().tolist()) <= {0.0, 1.0}
    inside = ref.stats.sum()
    assert float((got.stats != ref.stats).sum()) < 0.05 * float(inside)  # the skin sample moves by its rounding
    assert bool((got.stats <= (ref.face > 0)).all())


def test_regional_swap_region_is_upsampled_then_feathered_at_crop_size():
    crop, lm, regions = _crop(scale=3)
    params = composite_params(CompositeConfig(mask_size=None, regions=("eyes", "mouth")), 0)
    ref = build_masks(crop, lm, regions, params)
    got = build_masks(crop, lm, regions, dataclasses.replace(params, mask_size=204))
    d = (got.region - ref.region).abs()
    assert float(got.region.max()) > 0.99 and float(d.max()) < 0.2 and float(d.mean()) < 2e-3
    assert float((got.region * (1 - (ref.face > 0).float())).max()) == 0.0  # nothing outside the face


def test_working_size_masks_of_a_batch_equal_those_of_its_parts():
    """Each face's masks depend on that face alone (farm chunks split batches anywhere)."""
    crop, lm, regions = _crop(frames=4, scale=3)
    shift = torch.tensor([[-9.0, 4.0], [0.0, 0.0], [7.5, -3.0], [3.0, 11.0]])
    lm = lm.clone()
    lm[..., :2] += shift[:, None, :]
    crop = torch.roll(crop, shifts=(2, -1), dims=(-2, -1))
    params = dataclasses.replace(composite_params(CompositeConfig(), 0), mask_size=204)
    whole = build_masks(crop, lm, regions, params)
    parts = [build_masks(crop[s], lm[s], regions, params) for s in (slice(0, 1), slice(1, 4))]
    for name in ("region", "visibility", "stats", "face", "size"):
        assert torch.equal(getattr(whole, name), torch.cat([getattr(p, name) for p in parts])), name


@pytest.fixture(scope="module")
def real(media, tmp_path_factory):
    """Frames 56-63 of the sample clip (a hand partly over the face) rendered with full-size masks and with masks
    at about 2/3 of the crop (256 -> 176, as the default 384 takes a 576-px crop to 384)."""
    from vidswap.config import load_config
    from vidswap.io import probe, read_frames
    from vidswap.pipeline import StageTimer, build_render
    from vidswap.shot import plan_shot

    clip, source = media("pexels_clip"), media("grace_hopper")
    out = tmp_path_factory.mktemp("masksize") / "out.mp4"
    cfg = load_config(overrides={"input": str(clip), "sources": [str(source)], "frames": "56-63",
                                 "output": {"path": str(out)}})
    plan = plan_shot(cfg)
    cache = Path.home() / ".cache" / "vidswap" / "analysis" / "region_pexels_56-63.npz"
    if cache.exists():  # the same analysis test_render_region caches; its key is checked on use
        plan.tracks_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache, plan.tracks_path)
    stage = build_render(cfg, plan, StageTimer(), None, []).stage
    with read_frames(probe(clip), range(56, 64)) as stream:
        frames = list(stream)
    stage.params = dataclasses.replace(stage.params, mask_size=None)
    full = stage(list(frames))
    stage.crop_pixels = 3 * 256 * 256  # the 8 faces in groups of 3, 3 and 2
    grouped = stage(list(frames))
    stage.crop_pixels = 0
    stage.params = dataclasses.replace(stage.params, mask_size=176)
    half = stage(list(frames))
    return frames, full, half, grouped


def test_faces_in_groups_render_the_same_pictures(real):
    """Groups of 3 against one group of 8: the same pictures up to the float rounding of batched convolutions
    (the relit core's normalised blur gives 2e-7 apart for another batch composition, which can tip a pixel by one
    code value; a farm chunk's batches differ from a single pass's in the same way)."""
    frames, full, _, grouped = real
    diff = np.stack([np.abs(a.image.astype(int) - b.image.astype(int)) for a, b in zip(full, grouped)])
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4


def test_group_size_follows_the_crop_area():
    from vidswap.faces.align import MeshCrop
    from vidswap.render import RenderStage

    stage = RenderStage.__new__(RenderStage)
    for pixels, side, n in ((1 << 21, 512, 8), (1 << 21, 576, 6), (1 << 21, 1024, 2), (1 << 21, 2048, 1),
                            (1 << 21, 256, 32), (0, 1024, 1 << 30)):
        stage.crop_pixels = pixels
        assert stage.group_size(MeshCrop(size=side)) == n


def test_working_size_masks_change_few_pixels_of_real_frames(real):
    frames, full, half, _ = real
    for plate, a, b in zip(frames, full, half):
        diff = np.abs(a.image.astype(int) - b.image.astype(int)).max(-1)
        face = np.abs(a.image.astype(int) - plate.image.astype(int)).max(-1) > 0
        assert face.sum() > 1000  # the face was swapped
        assert not diff[~face & (np.abs(b.image.astype(int) - plate.image.astype(int)).max(-1) == 0)].any()
        assert diff.mean() < 0.25, f"frame {plate.number}: mean {diff.mean():.3f} code values"
        assert (diff[face] > 2).mean() < 0.10, f"frame {plate.number}: {(diff[face] > 2).mean():.3%} over 2"
