"""What covers a source photo's face (vidswap.swap.geometric.source_validity, vidswap.hands.still,
vidswap.appearance.eyewear.dark_lenses): a hand found in the photo, or opaque sunglasses, are left out of the
identity's appearance, exactly where found, and nothing changes for a photo without them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from vidswap.appearance.encoding import luminance
from vidswap.faces.align import MeshCrop, transform_landmarks, warp_to_crop
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import load_topology
from vidswap.source_cache import SourceRecord, read_record, write_record
from vidswap.swap.base import SourceFace
from vidswap.swap.geometric.source_validity import crop_source, forehead_validity, photo_validity


def _photo(seed: int = 0, size: int = 96) -> SourceFace:
    """A random 'photo' with a canonical face's landmarks spread over it."""
    g = torch.Generator().manual_seed(seed)
    face = canonical_face().float()
    points = face.clone()
    points[:, :2] = (face[:, :2] - face[:, :2].mean(0)) / (face[:, :2].max() - face[:, :2].min()) * 48 + size / 2
    points[:, 1] = size - points[:, 1]  # image rows grow downwards
    return SourceFace(image=torch.rand(3, size, size, generator=g), landmarks=points, x_c_obs=face)


def test_crop_source_warps_the_occlusion_exactly_as_the_photo():
    """The cover is the 4th channel of the same warp: a cover equal to the photo's green channel crops to the
    crop's green channel, bit for bit; without a cover the crop is the plain warp and the cover zero."""
    photo = _photo()
    crop = MeshCrop(size=64, margin=0.3)
    m = crop.frame_to_crop(photo.landmarks[None])
    plain, nothing = crop_source(photo, m, 64, "cpu")
    assert torch.equal(plain, warp_to_crop(photo.image[None], m, 64)[0])
    assert nothing.shape == (1, 64, 64) and not nothing.any()
    covered_photo = dataclasses.replace(photo, occlusion=photo.image[1].clone())
    image, covered = crop_source(covered_photo, m, 64, "cpu")
    assert torch.equal(image, plain)
    assert torch.equal(covered, plain[1:2].clamp(0, 1))


def test_photo_validity_is_the_hair_test_times_what_no_hand_covers():
    photo = _photo(1)
    crop = MeshCrop(size=64, margin=0.3)
    m = crop.frame_to_crop(photo.landmarks[None])
    image, _ = crop_source(photo, m, 64, "cpu")
    images, landmarks = image[None], transform_landmarks(photo.landmarks[None], m)
    regions = load_topology().regions
    covered = torch.zeros(1, 1, 64, 64)
    covered[..., 5:20, 10:50] = 1.0
    covered[..., 20:24, 10:50] = 0.25
    hair = forehead_validity(images, landmarks, regions)
    assert torch.equal(photo_validity(images, landmarks, torch.zeros_like(covered), regions), hair)
    assert torch.equal(photo_validity(images, landmarks, covered, regions), hair * (1.0 - covered))
    # a topology without the face regions (a reduced test mesh) has no forehead to test: the hands alone, or none
    reduced = {"face_oval": regions["face_oval"]}
    assert photo_validity(images, landmarks, torch.zeros_like(covered), reduced) is None
    assert torch.equal(photo_validity(images, landmarks, covered, reduced), 1.0 - covered)


def _hand(wrist=(50.0, 80.0), size=20.0) -> np.ndarray:
    """(21, 3) a hand pointing up: the wrist, the finger bases ``size`` above it, the index (5) and pinky (17)
    bases 8 px either side of the middle one (9)."""
    points = np.zeros((21, 3))
    points[:, :2] = wrist
    points[1:, 1] -= size
    points[5:9, 0] -= 4.0
    points[17:21, 0] += 4.0
    points[5, 0], points[17, 0] = wrist[0] - 8.0, wrist[0] + 8.0
    return points


def test_the_forearm_runs_from_the_palm_on_past_the_wrist_as_wide_as_the_palm():
    """Capsule from the palm's middle (10 px above the wrist) to 1.5 x 20 px below the wrist, radius 8 px (half of
    the index-to-pinky width): full on its axis, anti-aliased over a pixel at its side, nothing beyond."""
    from vidswap.hands.still import forearm_matte

    cover = forearm_matte(_hand()[None], 140, 100)
    assert cover.dtype == np.float32 and cover.shape == (140, 100)
    assert cover[70, 50] == 1.0 and cover[109, 50] == 1.0  # the palm's middle .. the capsule's end
    assert cover[69 - 8, 50] == 0.0 and cover[110 + 9, 50] == 0.0  # past the rounded ends
    assert cover[90, 50 + 8] == 0.5 and cover[90, 50 - 8] == 0.5  # the edge, at the radius
    assert cover[90, 50 + 9] == 0.0 and cover[90, 50 + 7] == 1.0
    assert not forearm_matte(np.zeros((0, 21, 3)), 10, 10).any()


def test_brows_seen_is_one_for_brows_seen_whole_and_zero_for_hidden_ones():
    from vidswap.appearance.source import brows_seen

    U = 64
    brows = torch.zeros(1, 1, U, U)
    brows[..., 20:24, 10:26] = 1.0
    brows[..., 20:24, 38:54] = 1.0
    masks = {"brows": brows}
    assert torch.equal(brows_seen(torch.ones(1, 1, U, U), masks)[..., 12:32, 4:60], torch.ones(1, 1, 20, 56))
    hidden = torch.ones(1, 1, U, U)
    hidden[..., :, 32:] = 0.0  # the right brow hidden: its band is not covered, the left's is
    seen = brows_seen(hidden, masks)
    assert torch.equal(seen[..., 12:32, 4:22], torch.ones(1, 1, 20, 18))
    assert float(seen[..., 12:32, 44:60].max()) == 0.0
    half = brows_seen(torch.full((1, 1, U, U), 0.5), masks)  # halfway between the levels: the smoothstep's middle
    assert torch.allclose(half[..., 20:24, 10:54], torch.full((1, 1, 4, 44), 0.5))


def test_photo_warnings_name_several_faces_a_small_face_and_a_hand():
    """Exact lines: the canonical face spread over 48 px is small (its face height under 100 px); a hand matte over
    the left half of the photo covers about half of its landmarks; at 3x the size, without a hand and alone in its
    photo, nothing is said."""
    from vidswap.faces.align import face_height
    from vidswap.source_cache import photo_warnings

    photo = _photo(size=96)
    record = SourceRecord(photo.landmarks.numpy(), np.zeros(4, np.float32), 2, np.zeros((0, 21, 3), np.float32))
    height = float(face_height(photo.landmarks[None])[0])
    assert height < 100
    cover = torch.zeros(96, 96)
    cover[:, :48] = 1.0
    share = float((photo.landmarks[:, 0].round() < 48).float().mean())
    assert photo_warnings("a.jpg", record, dataclasses.replace(photo, occlusion=cover)) == [
        "source a.jpg has 2 faces; using the largest",
        f"the face in source a.jpg is {height:.0f} px tall; under 100 px the swap is soft and its skin blotchy: "
        "use a larger photo",
        f"a hand covers {share:.0%} of the face in source a.jpg: those parts come from the other side of the face "
        "or, hidden on both, from the plate"]
    large = dataclasses.replace(photo, landmarks=photo.landmarks * 3)
    assert photo_warnings("a.jpg", dataclasses.replace(record, count=1), large) == []


def test_a_source_record_keeps_the_photos_hands(tmp_path):
    record = SourceRecord(np.arange(478 * 3, dtype=np.float32).reshape(478, 3), np.ones(128, np.float32), 2,
                          np.full((1, 21, 3), 7.0, np.float32))
    path = tmp_path / "rec.npz"
    write_record(path, "key", record)
    back = read_record(path, "key")
    assert back.count == 2
    for name in ("points", "embedding", "hands"):
        assert np.array_equal(getattr(back, name), getattr(record, name))
    assert read_record(path, "another key") is None
    # a record written before hands were recorded is analysed again
    np.savez(path, key=np.array("key"), points=record.points, embedding=record.embedding, count=np.array(1))
    assert read_record(path, "key") is None


@pytest.fixture(scope="module")
def analysed(media):
    from vidswap.config import AnalysisConfig
    from vidswap.faces.analyze import AnalysisModels
    from vidswap.io import read_image
    from vidswap.source_cache import analyse_source

    models = AnalysisModels.load(AnalysisConfig())
    out = {}
    for name in ("hand_on_forehead", "grace_hopper", "astronaut"):
        image = read_image(media(name))
        out[name] = (image, analyse_source(name, image, models))
    return out


def test_hands_are_found_on_a_source_photo_only_where_there_are_some(analysed):
    """hand_on_forehead (a hand laid flat on the forehead, its back to the camera) has one hand, found by the
    palm detector; the portraits have none (the pose landmarker looked around their faces and found nothing)."""
    assert {k: len(r.hands) for k, (_, r) in analysed.items()} == {"hand_on_forehead": 1, "grace_hopper": 0,
                                                                   "astronaut": 0}
    image, record = analysed["hand_on_forehead"]
    hand = record.hands[0]
    brows = record.points[np.r_[load_topology().regions["left_brow"], load_topology().regions["right_brow"]]]
    assert np.median(hand[:, 1]) < brows[:, 1].min()  # the hand lies above the brows, on the forehead


def test_a_hand_on_the_source_forehead_is_left_out_of_the_relit_albedo(analysed):
    """The forehead texels above the brows: with the hand left out they are plain skin, weight 0 (the plate's
    forehead shows; measured mean |detail - 1| 0.000, weight 0.000), against detail 0.101 and weight 0.96 with the
    hand unwrapped as skin (its fingers and the gaps between them). The hand lies across both brows: their texels
    are not covered either (the plate's brows show; weight 0.015 against 1.0 with the hand as skin, whose heel the
    brow band then painted as a bright arc over the eyes). Without a hand in
    the photo (grace_hopper) there is no cover."""
    from vidswap.source_cache import source_face
    from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore

    core = GeometricSwapCore(GeometricSwapConfig())
    image, record = analysed["hand_on_forehead"]
    photo = source_face(image, record)
    assert photo.occlusion is not None and photo.occlusion.shape == image.shape[:2]
    measured = {}
    for name, face in (("left out", photo), ("as skin", dataclasses.replace(photo, occlusion=None))):
        albedo = core.prepare([face]).albedo
        U = albedo.shape[-1]
        _, masks = core.relit.space(U, "cpu")
        brows = masks["brows"][0, 0] > 0.5
        top = int(torch.nonzero(brows.amax(1))[0, 0])
        forehead = (masks["skin"][0, 0] > 0.5) & (masks["forehead_fade"][0, 0] > 0.5) & \
            (torch.arange(U)[:, None] < top)
        detail = (luminance(albedo[:, :3])[0, 0] - 1.0).abs()[forehead].mean()
        weight = albedo[0, 3]
        measured[name] = (float(detail), float(weight[forehead].mean()), float(weight[brows].mean()))
    assert measured["left out"][0] < 0.01 and measured["as skin"][0] > 0.08, measured
    assert measured["left out"][1] < 0.1 and measured["as skin"][1] > 0.9, measured
    assert measured["left out"][2] < 0.3 and measured["as skin"][2] > 0.9, measured
    image, record = analysed["grace_hopper"]
    assert source_face(image, record).occlusion is None


def test_the_shadow_under_a_fringe_is_not_painted_as_a_line(analysed):
    """The astronaut's fringe reaches down to her brows; the skin under it lies in its shadow and holds its light
    tips, which the hair test keeps. Their darkest row between the fringe and the brows (the median over the brows'
    columns of the relit albedo's luminance detail) was 0.843 of the skin: a dark line across the plate's forehead.
    Lifted (``AlbedoParams.cover_shadow``), measured 0.961."""
    from vidswap.source_cache import source_face
    from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore

    core = GeometricSwapCore(GeometricSwapConfig())
    image, record = analysed["astronaut"]
    photo = source_face(image, record)
    darkest = {}
    for shadow in (0.0, core.relit.albedo.cover_shadow):
        core.relit.albedo = dataclasses.replace(core.relit.albedo, cover_shadow=shadow)
        albedo = core.prepare([photo]).albedo
        U = albedo.shape[-1]
        brows = core.relit.space(U, "cpu")[1]["brows"][0, 0] > 0.5
        top = int(torch.nonzero(brows.amax(1))[0, 0])
        cols = torch.nonzero(brows.amax(0))[:, 0]
        lum, weight = luminance(albedo[:, :3])[0, 0, :, cols], albedo[0, 3, :, cols]
        rows = [float(lum[r][weight[r] > 0.5].median()) for r in range(top - U // 10, top)
                if int((weight[r] > 0.5).sum()) > len(cols) // 4]
        assert len(rows) > 10
        darkest[shadow] = min(rows)
    assert darkest[0.0] < 0.88 and darkest[core.relit.albedo.cover_shadow] > 0.93, darkest


def _frames(path, count: int = 6) -> list[np.ndarray]:
    """The first ``count`` frames of a video, RGB uint8."""
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(count), container.decode(video=0))]


def _swapped(clip, source, settings: dict[str, str], tmp_path) -> dict[str, list[np.ndarray]]:
    """``vidswap run`` of ``clip``'s frames 0-5 with ``source``, once per named config (YAML text): name -> the
    result's frames."""
    import subprocess
    import sys

    out = {}
    for k, (name, setting) in enumerate(settings.items()):
        config, result = tmp_path / f"run{k}.yaml", tmp_path / f"run{k}.mkv"
        config.write_text(setting)
        proc = subprocess.run([sys.executable, "-m", "vidswap.cli", "run", str(clip), "-s", str(source), "-o",
                               str(result), "--frames", "0-5", "--config", str(config), "-q"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        out[name] = _frames(result)
    return out


def test_a_hand_on_the_source_forehead_never_reaches_the_plate(media, detector, mesh, tmp_path):
    """hand_on_forehead swapped onto single_face_clip 0-5: between the top of the plate's face and its brows the
    result is the plate (mean |result - plate| measured 0.00 levels), also with ``analysis.hands: false`` (as the
    preview preset has: no hands tracked on the plate); with ``swap.geometric.source_occlusion: false`` the hand
    is unwrapped as skin and its fingers painted there (3.78 levels)."""
    clip = media("single_face_clip")
    plate = _frames(clip)
    points = mesh([plate[0]], [detector([plate[0]])[0]])[0][0].points
    regions = load_topology().regions
    brows = points[np.r_[regions["left_brow"], regions["right_brow"]]]
    y0, y1 = int(points[regions["face_oval"], 1].min()), int(brows[:, 1].min()) - 3
    x0, x1 = int(brows[:, 0].min()), int(brows[:, 0].max())
    runs = _swapped(clip, media("hand_on_forehead"), {"left out": "analysis:\n  hands: false\n",
                                                      "as skin": "swap:\n  geometric:\n    source_occlusion: false\n"},
                    tmp_path)
    difference = {name: float(np.mean([np.abs(r[y0:y1, x0:x1].astype(float) - p[y0:y1, x0:x1]).mean()
                                       for r, p in zip(frames, plate)])) for name, frames in runs.items()}
    assert y1 - y0 > 15 and x1 - x0 > 80
    assert difference["left out"] < 0.5 and difference["as skin"] > 2.0, difference


def _texture_masks(U: int = 128):
    from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore

    return GeometricSwapCore(GeometricSwapConfig()).relit.space(U, "cpu")[1]


def test_dark_lenses_are_found_only_where_most_of_both_eye_zones_are_dark():
    """Synthetic unwrapped photos on plain skin (0.5): dark (0.05) ellipses over both eyes' zones are sunglasses,
    covered fully at the zones' middle; one dark lens, or a dark lash line only, is
    not; a face without them returns None (the albedo is left exactly as it was)."""
    from vidswap.appearance.eyewear import dark_lenses, eyewear_zones

    U = 128
    masks = _texture_masks(U)
    zones = eyewear_zones(masks)
    weight = torch.ones(1, 1, U, U)
    skin = torch.full((1, 3, U, U), 0.5)
    assert dark_lenses(skin, weight, masks) is None
    both = (zones["radius_left"] <= 0.9) | (zones["radius_right"] <= 0.9)
    sunglasses = torch.where(both, torch.tensor(0.05), skin)
    cover = dark_lenses(sunglasses, weight, masks)
    assert cover is not None and cover.shape == (1, 1, U, U)
    middle = (zones["radius_left"] <= 0.5) & (zones["rings"] > 0.5)
    assert float(cover[middle].min()) > 0.999
    assert float(cover[masks["lips"] > 0.5].max()) < 0.01  # nowhere near the mouth
    one = torch.where(zones["radius_left"] <= 0.9, torch.tensor(0.05), skin)
    assert dark_lenses(one, weight, masks) is None
    lashes = torch.where(dilate_eyes(masks, 2) > 0.5, torch.tensor(0.05), skin)
    assert dark_lenses(lashes, weight, masks) is None
    # two photos at once: only the one in sunglasses gets a cover
    pair = dark_lenses(torch.cat([skin, sunglasses]), weight.expand(2, 1, U, U), masks)
    assert float(pair[0].max()) == 0.0 and torch.equal(pair[1:], cover)


def dilate_eyes(masks, texels: int) -> torch.Tensor:
    """The eye openings grown by ``texels``: a lash line."""
    from vidswap.composite.filters import dilate

    return dilate(masks["eyes"], texels)


@pytest.fixture(scope="module")
def sunglasses_photo(media, tmp_path_factory):
    """multi_face.jpg cropped to the young man in sunglasses (its largest face is another person's)."""
    import cv2

    from vidswap.io import read_image

    image = read_image(media("multi_face_image"))[0:210, 170:400]
    path = tmp_path_factory.mktemp("sunglasses") / "sunglasses.png"
    cv2.imwrite(str(path), image[..., ::-1])
    return path


def test_sunglasses_on_the_source_leave_the_plates_eyes(media, detector, mesh, sunglasses_photo, tmp_path):
    """The man in sunglasses on single_face_clip 0-5: around the plate's eyes (a box from the brows down to the
    cheekbones, the eye openings left out) the result is the plate's own, mean |result - plate| measured 0.08
    levels; with ``source_occlusion: false`` the lenses are painted there as a grey mask (29.8 levels)."""
    import cv2

    clip = media("single_face_clip")
    plate = _frames(clip)
    points = mesh([plate[0]], [detector([plate[0]])[0]])[0][0].points
    regions = load_topology().regions
    eyes = points[np.r_[regions["left_eye"], regions["right_eye"]]]
    brows = points[np.r_[regions["left_brow"], regions["right_brow"]]]
    y0, y1 = int(brows[:, 1].max()), int(eyes[:, 1].max() + 0.6 * (eyes[:, 1].max() - brows[:, 1].min()))
    x0, x1 = int(eyes[:, 0].min()), int(eyes[:, 0].max())
    keep = np.ones((y1 - y0, x1 - x0), bool)
    for name in ("left_eye", "right_eye"):
        hull = cv2.convexHull(points[regions[name], :2].astype(np.int32) - [x0, y0])
        opening = np.zeros(keep.shape, np.uint8)
        cv2.fillConvexPoly(opening, hull, 1)
        keep &= cv2.dilate(opening, np.ones((7, 7), np.uint8)) == 0
    runs = _swapped(clip, sunglasses_photo, {"left out": "swap:\n  geometric:\n    source_occlusion: true\n",
                                             "painted": "swap:\n  geometric:\n    source_occlusion: false\n"},
                    tmp_path)
    difference = {name: float(np.mean([np.abs(r[y0:y1, x0:x1].astype(float) - p[y0:y1, x0:x1]).mean(-1)[keep]
                                       .mean() for r, p in zip(frames, plate)])) for name, frames in runs.items()}
    assert difference["left out"] < 1.0 and difference["painted"] > 15.0, difference


def test_grey_photos_are_told_by_their_channels_spread():
    from vidswap.swap.geometric.source_validity import grey_photos

    face = torch.zeros(2, 1, 40, 40)
    face[..., 4:36, 4:36] = 1.0
    grey = torch.rand(1, 1, 40, 40, generator=torch.Generator().manual_seed(0)).expand(1, 3, 40, 40)
    colour = grey.clone()
    colour[:, 0, 6, 6] += 0.1  # a single reddish pixel of the 1024 in the face: past the 99th percentile ...
    assert grey_photos(torch.cat([grey, colour]), face).tolist() == [True, True]
    colour[:, 0] += 0.05  # ... a colour cast over the whole face is not
    assert grey_photos(torch.cat([grey, colour]), face).tolist() == [True, False]


def test_texture_visibility_marks_strands_and_keeps_smooth_skin():
    """Synthetic: smooth skin (0.6) with a band of fine stripes (hair strands, 0.3/0.6 every 2 px) across the top;
    the skin sample is the smooth lower half."""
    from vidswap.swap.geometric.source_validity import texture_visibility

    image = torch.full((1, 3, 64, 64), 0.6)
    image[:, :, 0:20, ::2] = 0.3
    skin = torch.zeros(1, 1, 64, 64)
    skin[..., 40:60, 10:54] = 1.0
    noise = 0.005 * torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    visible = texture_visibility(image + noise, skin, torch.tensor([60.0]))
    assert visible.shape == (1, 1, 64, 64)
    assert float(visible[..., 2:16, 8:56].max()) == 0.0  # the strands
    assert float(visible[..., 36:64, :].min()) == 1.0  # the smooth skin


def test_a_grey_photos_fringe_is_found_by_its_texture(media):
    """The astronaut in black and white: the skin-colour test alone found little of her fringe (its pixels are as
    grey as her skin: validity over the forehead box 0.747); the strands' texture finds it as the colour photo's
    test does (measured 0.317 against the colour photo's 0.353)."""
    from vidswap.config import AnalysisConfig
    from vidswap.faces.analyze import AnalysisModels
    from vidswap.io import read_image
    from vidswap.source_cache import analyse_source, source_face
    from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore

    models, core = AnalysisModels.load(AnalysisConfig()), GeometricSwapCore(GeometricSwapConfig(appearance="texture"))
    colour = read_image(media("astronaut"))
    grey = np.repeat(np.round(colour.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)[..., None], 3, 2)
    regions = load_topology().regions
    measured = {}
    for name, image in (("colour", colour), ("grey", grey)):
        identity = core.prepare([source_face(image, analyse_source(name, image, models))])
        points = identity.landmarks[0]
        brows = points[np.r_[regions["left_brow"], regions["right_brow"]]]
        y0, y1 = int(points[regions["face_oval"], 1].min()), int(brows[:, 1].min())
        x0, x1 = int(brows[:, 0].min()), int(brows[:, 0].max())
        measured[name] = float(identity.texture_validity[0, 0, y0:y1, x0:x1].mean())
    assert measured["grey"] < 0.45 and abs(measured["grey"] - measured["colour"]) < 0.1, measured


def test_the_texture_render_leaves_sunglasses_out_too(media, sunglasses_photo):
    """With ``appearance: texture`` (and for the relit core's texture render on a track without an appearance model)
    the lenses found in texture space are rendered back into the photo's crop and
    made transparent there (the plate's eyes show): the crop's validity over the lenses' box (between the eyes'
    outer corners, from the brows to the eyes' lowest point) measured 0.15 (the hair test alone leaves it ~1);
    grace_hopper's clear glasses give no cover."""
    from vidswap.config import AnalysisConfig
    from vidswap.faces.analyze import AnalysisModels
    from vidswap.io import read_image
    from vidswap.source_cache import analyse_source, source_face
    from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore
    from vidswap.swap.geometric.source_validity import lens_cover

    models, core = AnalysisModels.load(AnalysisConfig()), GeometricSwapCore(GeometricSwapConfig(appearance="texture"))
    regions = load_topology().regions
    image = read_image(sunglasses_photo)
    photo = source_face(image, analyse_source("sunglasses", image, models))
    # the relit core renders the plain texture on a track without an appearance model: the same validity
    relit = GeometricSwapCore(GeometricSwapConfig(appearance="relit"))
    for identity in (core.prepare([photo]), relit.prepare([photo])):
        points = identity.landmarks[0]
        eyes = points[np.r_[regions["left_eye"], regions["right_eye"]]]
        brows = points[np.r_[regions["left_brow"], regions["right_brow"]]]
        y0, y1 = int(brows[:, 1].max()), int(eyes[:, 1].max()) + 2
        x0, x1 = int(eyes[:, 0].min()), int(eyes[:, 0].max())
        assert float(identity.texture_validity[0, 0, y0:y1, x0:x1].mean()) < 0.3
    grace = read_image(media("grace_hopper"))
    clear = core.prepare([source_face(grace, analyse_source("grace", grace, models))])
    assert lens_cover(clear.images, clear.landmarks, core.triangles, core.topology_regions) is None
