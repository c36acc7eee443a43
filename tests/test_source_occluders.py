"""What covers a source photo's face (vidswap.swap.geometric.source_validity, vidswap.hands.still): a hand found in
the photo is left out of the identity's appearance, exactly where its matte says, and nothing changes for a photo
without one."""

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
    """The forehead texels above the brows: with the hand left out their detail is plain skin (mean |detail - 1|
    measured 0.022, against 0.101 with the hand unwrapped as skin: its fingers and the gaps between them) and the
    render's weight falls there (0.57 against 0.96, the plate's forehead shows). Without a hand in the photo
    (grace_hopper) the prepared identity is unchanged."""
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
        top = int(torch.nonzero(masks["brows"][0, 0].amax(1) > 0.5)[0, 0])
        forehead = (masks["skin"][0, 0] > 0.5) & (masks["forehead_fade"][0, 0] > 0.5) & \
            (torch.arange(U)[:, None] < top)
        detail = (luminance(albedo[:, :3])[0, 0] - 1.0).abs()[forehead].mean()
        measured[name] = (float(detail), float(albedo[0, 3][forehead].mean()))
    assert measured["left out"][0] < 0.04 and measured["as skin"][0] > 0.08, measured
    assert measured["left out"][1] < 0.7 and measured["as skin"][1] > 0.9, measured
    image, record = analysed["grace_hopper"]
    assert source_face(image, record).occlusion is None
