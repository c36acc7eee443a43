"""The geometric core's relit appearance: eye closing, crop sizing, per-target light, and an end-to-end check on a
real clip that the relit swap is lit like the plate (and the texture swap it replaces is not as much)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from vidswap.eval.appearance import lighting_correlation
from vidswap.eval.metrics import polygon_mask
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import load_topology
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.io import probe, read_frames
from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore
from vidswap.faces.align import face_height
from vidswap.swap.geometric.relit import auto_crop_size, eye_openness, lid_closing, source_texture_size

VIDSWAP = [sys.executable, "-m", "vidswap.cli"]


def test_eye_openness_and_lid_closing():
    lm = canonical_face().float()[None].clone() * 100
    open_ = eye_openness(lm)[0]
    assert open_.shape == (2,) and float(open_.min()) > 0.15
    closed = lm.clone()
    for upper, lower in (((386, 385, 387), (374, 380, 373)), ((159, 158, 160), (145, 153, 144))):
        closed[0, list(upper), :2] = closed[0, list(lower), :2]  # lids meet
    assert torch.allclose(eye_openness(closed)[0], torch.zeros(2), atol=1e-6)
    source = torch.tensor([0.3, 0.3])
    c = lid_closing(torch.tensor([[0.3, 0.09], [0.2, 0.15]]), source, start=0.65, full=0.35)
    # 0.3/0.3 = 1 (open: 0); 0.09/0.3 = 0.3 < 0.35 (closed: 1); 0.2/0.3 = 0.667 > 0.65 (0); 0.5 -> x = 0.5 -> 0.5
    assert torch.allclose(c, torch.tensor([[0.0, 1.0], [0.0, 0.5]]), atol=1e-6)


def test_crop_and_texture_sizes():
    assert auto_crop_size(100.0, 0.2) == 256  # small faces keep the 256 floor
    assert auto_crop_size(300.0, 0.2) == 32 * int(np.ceil(300 * 1.4 / 32))  # 420 -> 448
    assert auto_crop_size(300.0, 0.2) == 448
    assert auto_crop_size(2000.0, 0.2) == 1024
    assert source_texture_size(100) == 256 and source_texture_size(300) == 512 and source_texture_size(5000) == 1024
    lm = canonical_face().float()[None] * 50.0  # RMS radius 1 -> 50 px: the face height is 3.3 x 50
    assert float(face_height(lm)[0]) == pytest.approx(3.3 * 50.0, rel=1e-4)


def test_crop_max_caps_the_auto_crop_and_the_preview_preset_sets_it():
    from vidswap.config import load_config

    assert auto_crop_size(300.0, 0.2, hi=384) == 384 and auto_crop_size(200.0, 0.2, hi=384) == 288
    assert GeometricSwapConfig().crop_max == 1024
    for bad in (200, 400, 2048):
        with pytest.raises(ValueError, match="crop_max must be a multiple of 32"):
            GeometricSwapConfig(crop_max=bad)
    with pytest.raises(ValueError, match="mix_weight must be in"):  # validated (it was dead code after a return)
        GeometricSwapConfig(mix_weight=1.5)
    for key, bad in (("relit_outline", 0.3), ("relit_outline_match", -0.1), ("relit_outline_detail", 0.6)):
        with pytest.raises(ValueError, match=f"{key} must be in"):
            GeometricSwapConfig(**{key: bad})
    core = GeometricSwapCore(GeometricSwapConfig(relit_outline=0.1, relit_outline_match=0.2, relit_outline_detail=0.3))
    assert (core.relit.relight.outline, core.relit.relight.outline_match, core.relit.relight.outline_detail) == (
        0.1, 0.2, 0.3)
    assert GeometricSwapCore(GeometricSwapConfig()).relit.relight.outline_detail == 0.095  # the default (lead s14)
    preview = load_config(preset="preview")
    assert preview.swap.section("geometric").crop_max == 256 and not preview.analysis.hands  # the faster preview
    assert preview.composite.mask_size == 128 and load_config().composite.mask_size == 384
    assert preview.composite.tone_match is False and load_config().composite.tone_match == "auto"
    assert load_config().swap.section("geometric").crop_max == 1024


def _track(scale: float, appearance: dict | None = None):
    from vidswap.faces.tracksfile import TrackAnalysis

    lm = (canonical_face().numpy() * scale + 400.0).astype(np.float32)[None].repeat(3, 0)
    z = np.zeros
    return TrackAnalysis(id=0, shot=0, frames=np.arange(3), boxes=z((3, 4), np.float32),
                         confidences=np.ones(3, np.float32), interpolated=z(3, bool), raw=lm, smoothed=lm,
                         s=z(3, np.float32), R=np.eye(3, dtype=np.float32)[None].repeat(3, 0),
                         t=z((3, 3), np.float32), neutral=lm[0], embedding=z(0, np.float32),
                         colour=z((0, 6), np.float32), appearance=appearance or {})


def test_crop_follows_the_face_size_per_track():
    core = GeometricSwapCore(GeometricSwapConfig())  # crop_size auto
    assert core.crop.size == 256
    big = core.crop_for(_track(scale=100.0))  # face height 330 px -> 330 x 1.4 = 462 -> 480
    assert big.size == 480 and big.margin == core.config.crop_margin
    assert core.crop_for(_track(scale=20.0)).size == 256
    fixed = GeometricSwapCore(GeometricSwapConfig(crop_size=320))
    assert fixed.crop_for(_track(scale=100.0)).size == 320


@pytest.fixture(scope="module")
def relit_and_texture(media, tmp_path_factory):
    """The same 16 frames swapped with the relit appearance (default) and the texture appearance, lossless."""
    work = tmp_path_factory.mktemp("relit")
    clip, src = media("single_face_clip"), media("astronaut")
    outs = {}
    for mode in ("relit", "texture"):
        out = work / f"{mode}.mkv"
        proc = subprocess.run([*VIDSWAP, "run", str(clip), "-s", str(src), "-o", str(out), "--frames", "0-15", "-q",
                               "--appearance", mode], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        outs[mode] = out
    return clip, work, outs


def test_relit_swap_is_lit_like_the_plate(relit_and_texture):
    """Inside the face (the mesh's oval, forehead included), the relit result's low-frequency luminance follows the
    plate's (>= 0.9 every frame, >= 0.94 on average; what is left is identity: the source's brows, eyes and lips
    where the plate has its own), well above the texture swap's; the track's appearance model is in the
    analysis."""
    clip, work, outs = relit_and_texture
    analysis = ShotAnalysis.load(work / "relit.vidswap" / "tracks.npz")
    track = analysis.tracks[0]
    assert {"mean", "weight", "broad", "lighting", "frames"} <= set(track.appearance)
    oval = load_topology().regions["face_oval"]
    with read_frames(probe(clip), range(0, 16)) as plates, read_frames(probe(outs["relit"])) as relit, \
            read_frames(probe(outs["texture"])) as texture:
        corr = {"relit": [], "texture": []}
        for p, r, t in zip(plates, relit, texture):
            mask = polygon_mask(p.image.shape, track.smoothed[track.index_of(p.number)][oval, :2])
            corr["relit"].append(lighting_correlation(r.image, p.image, mask))
            corr["texture"].append(lighting_correlation(t.image, p.image, mask))
    assert len(corr["relit"]) == 16
    assert min(corr["relit"]) >= 0.9 and np.mean(corr["relit"]) >= 0.94
    assert np.mean(corr["relit"]) > np.mean(corr["texture"]) + 0.1


def test_a_track_without_an_appearance_model_renders_the_texture(relit_and_texture):
    """A track the analysis has no model for (too little of the face seen) keeps the texture render."""
    _, work, _ = relit_and_texture
    track = ShotAnalysis.load(work / "relit.vidswap" / "tracks.npz").tracks[0]
    core = GeometricSwapCore(GeometricSwapConfig())
    from vidswap.swap.geometric.core import GeometricIdentity

    ident = GeometricIdentity(images=torch.zeros(1, 3, 8, 8), landmarks=torch.zeros(1, 478, 3),
                              canonical=torch.zeros(478, 3), albedo=torch.ones(1, 4, 256, 256),
                              eye_openness=torch.tensor([0.3, 0.3]))
    assert core.for_target(ident, replace(track, appearance={})).plate_light is None
    lit = core.for_target(ident, track).plate_light
    assert lit is not None and lit.lighting.shape == (1, 1, 9) and lit.broad.shape[-1] == 128


def test_the_frame_ratio_leaves_the_occluder_out():
    """A hand in front of the face (the occluder) does not reach the relit render's frame light: whatever the
    occluded pixels hold, the ratio is the same; without the occluder they move it. A zero occluder is none."""
    from vidswap.appearance.relight import plate_light
    from vidswap.swap.geometric.relit import RelitRenderer

    renderer = RelitRenderer(load_topology())
    space, masks = renderer.space(64)
    g = torch.Generator().manual_seed(5)
    mean = torch.rand(1, 3, 64, 64, generator=g) * 0.3 + 0.3
    light = plate_light({"mean": mean, "weight": space.covered, "broad": torch.ones(1, 3, 64, 64),
                         "lighting": torch.zeros(1, 3, 9), "edge_blur": torch.tensor([[0.01]])}, masks)
    lm = (canonical_face().float() * 50 + 64)[None]
    crops = torch.full((1, 3, 128, 128), 0.5)
    occluder = torch.zeros(1, 1, 128, 128)
    occluder[..., 70:, :] = 1.0  # the lower part of the crop
    hand = crops.clone()
    hand[..., 76:, :] = 0.95  # a bright hand, inside the occluder by more than the box filter and the bilinear reach
    both, lms = torch.cat([hand, crops]), lm.expand(2, -1, -1)
    kept, lenses = renderer.frame_ratio(light, both, lms, occluder.expand(2, -1, -1, -1))
    assert torch.allclose(kept[0], kept[1], atol=1e-6) and lenses is None  # no sunglasses
    seen = renderer.frame_ratio(light, both, lms)[0]
    assert float((seen[0] - seen[1]).abs().max()) > 0.05
    assert torch.allclose(renderer.frame_ratio(light, both, lms, torch.zeros(2, 1, 128, 128))[0], seen, atol=1e-6)
