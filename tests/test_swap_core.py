"""Tests of the swap-core interface and the geometric swap core (vidswap.swap.geometric)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidswap.config import load_config
from vidswap.errors import ConfigError
from vidswap.faces import pose
from vidswap.faces.align import crop_frame_from_landmarks, transform_landmarks, warp_to_crop
from vidswap.swap import SourceFace, SwapBatch, SwapCore, build_core
from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore
from vidswap.swap.geometric.core import mixed_identity
from vidswap.swap.geometric.reenact import canonical_from_landmarks
from vidswap.swap.geometric.synthetic import face_cap, face_cap_mirror, rotation_y, test_texture

RINGS, SEGMENTS = 15, 32


def _vid(r: int, k: int) -> int:
    """Index of face_cap vertex on ring r (1-based), segment k."""
    return 1 + (r - 1) * SEGMENTS + k % SEGMENTS


def synthetic_topology():
    """face_cap as a 'topology': two eye loops and a mouth loop on the cap, mirror map, no holes."""
    _, tri = face_cap(RINGS, SEGMENTS)

    def patch(r0, k0, dk=1):
        return [_vid(r0, k0 - dk), _vid(r0, k0), _vid(r0, k0 + dk), _vid(r0 + 1, k0 + dk), _vid(r0 + 1, k0),
                _vid(r0 + 1, k0 - dk)]

    regions = {"right_eye": patch(8, 20), "left_eye": patch(8, 28), "lips_inner": patch(9, 8, 2)}
    return SimpleNamespace(triangles=tri, regions=regions, mirror=face_cap_mirror(RINGS, SEGMENTS))


EYES = ((_vid(8, 20),), (_vid(8, 28),))  # one point per eye on the cap, mirror images of each other


def euler(yaw=0.0, roll=0.0):
    a = math.radians(roll)
    rz = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    return rotation_y(yaw) @ rz


def frame_face(canonical, yaw, roll=0.0, s=100.0, centre=(160.0, 150.0)):
    R = euler(yaw, roll)
    t = torch.tensor([centre[0], centre[1], 0.0])
    return s * canonical @ R.T + t, s, R, t


def make_batch(frame, lm_frame, canonical, S=256, eye_corners=EYES):
    """Aligned crops + pose (from the known canonical, by Umeyama) for frames (B, 3, H, W) and (B, V, 3)."""
    M = crop_frame_from_landmarks(lm_frame, S, 0.2, eye_corners=eye_corners)
    crops = warp_to_crop(frame, M, S)
    lm = transform_landmarks(lm_frame, M)
    s, R, t = pose.umeyama(canonical.expand(lm.shape[0], -1, -1), lm)
    expr = canonical_from_landmarks(lm, s, R, t) - canonical
    return SwapBatch(target_crops=crops, target_landmarks=lm, s=s, R=R, t=t, expression=expr,
                     confidence=torch.ones(lm.shape[0]), frame_to_crop=M)


@pytest.fixture(scope="module")
def cap():
    verts, _ = face_cap(RINGS, SEGMENTS)
    return verts / verts.norm(dim=1).pow(2).mean().sqrt()  # unit RMS radius, like the canonical frame


def smooth_texture(H, W):
    tex = test_texture(H, W)
    return F.avg_pool2d(tex, 5, 1, 2, count_include_pad=False)  # soften the checker: resampling-friendly


# ---------------------------------------------------------------------------------------------------------------

def test_geometric_core_satisfies_the_protocol():
    core = GeometricSwapCore(GeometricSwapConfig(appearance="texture"), topology=synthetic_topology())
    assert isinstance(core, SwapCore)
    with pytest.raises(ValueError):
        GeometricSwapCore(GeometricSwapConfig(inner="nobody"), topology=synthetic_topology())
    with pytest.raises(ValueError, match="appearance relit needs the face mesh"):
        GeometricSwapCore(GeometricSwapConfig(), topology=synthetic_topology())


def test_config_section_builds_the_core_with_those_settings():
    """``swap.geometric`` is validated by GeometricSwapConfig itself (declared once) and builds the core."""
    cfg = load_config(overrides={"swap": {"geometric": {"shape": "blend", "shape_weight": 0.3, "inner": "source",
                                                        "crop_size": 128}}})
    section = cfg.swap.section()
    assert section == GeometricSwapConfig(shape="blend", shape_weight=0.3, inner="source", crop_size=128)
    core = build_core("geometric", section)
    assert isinstance(core, GeometricSwapCore) and core.config is section
    assert (core.crop.size, core.crop.margin) == (128, 0.2)
    with pytest.raises(ConfigError, match="swap.geometric.shape"):
        load_config(overrides={"swap": {"geometric": {"shape": "nobody"}}})


def test_self_swap_reproduces_the_target_crop(cap):
    """Source photo == target frame: the swap re-renders the plate's own face (PSNR over the face)."""
    frame = smooth_texture(300, 320)
    lm, *_ = frame_face(cap, yaw=20.0, roll=10.0)
    core = GeometricSwapCore(GeometricSwapConfig(appearance="texture", inner="source", texture_size=320), topology=synthetic_topology())
    ident = core.prepare([SourceFace(image=frame[0], landmarks=lm, x_c_obs=cap, yaw=20.0, roll=10.0)])
    batch = make_batch(frame, lm[None], cap, S=192)
    res = core.swap(batch, ident)
    assert res.crops.shape == (1, 3, 192, 192) and res.alpha.shape == (1, 1, 192, 192)
    assert torch.allclose(res.driven_landmarks, batch.target_landmarks, atol=1e-2)
    face = (res.alpha > 0.999) & (res.confidence > 0.5)
    assert int(face.sum()) > 5000
    mse = float(((res.crops - batch.target_crops) ** 2)[face.expand_as(res.crops)].mean())
    assert 10 * math.log10(1 / mse) > 35


def test_shape_modes_and_inner_holes(cap):
    frame = smooth_texture(300, 320)
    wide = cap * torch.tensor([1.2, 1.0, 1.0])  # the source has a wider face than the plate actor
    src_lm, *_ = frame_face(wide, yaw=0.0)
    tgt_lm, *_ = frame_face(cap, yaw=-25.0, roll=5.0)
    S = 160
    batch = make_batch(frame, tgt_lm[None], cap, S=S)
    src = SourceFace(image=frame[0], landmarks=src_lm, x_c_obs=wide)
    topo = synthetic_topology()
    out = {}
    ident = None
    for shape in ("source", "target", "blend"):
        core = GeometricSwapCore(GeometricSwapConfig(appearance="texture", shape=shape, shape_weight=0.5, texture_size=160), topology=topo)
        ident = ident or core.prepare([src])
        out[shape] = core.swap(batch, ident).driven_landmarks
    assert torch.allclose(out["target"], batch.target_landmarks, atol=1e-2)
    assert float((out["source"] - batch.target_landmarks).abs().max()) > 5.0
    assert torch.allclose(out["blend"], 0.5 * (out["source"] + out["target"]), atol=1e-2)

    core_t = GeometricSwapCore(GeometricSwapConfig(appearance="texture", shape="target", inner="target"), topology=topo)
    core_s = GeometricSwapCore(GeometricSwapConfig(appearance="texture", shape="target", inner="source"), topology=topo)
    res_t = core_t.swap(batch, ident)
    res_s = core_s.swap(batch, ident)
    from vidswap.appearance.raster import fill_polygons

    lm = batch.target_landmarks
    for name in ("left_eye", "right_eye", "lips_inner"):
        inside = fill_polygons(lm, [torch.tensor(topo.regions[name])], (S, S))[:, None]
        assert int(inside.sum()) > 20
        assert float(res_t.alpha[inside].max()) < 0.05, name  # the plate's eye / mouth shows through
        assert float(res_s.alpha[inside].min()) > 0.9, name  # the source's own
    assert float(res_t.alpha.sum()) < float(res_s.alpha.sum())


def test_prepare_combines_several_photos(cap):
    frame = smooth_texture(300, 320)
    sources = []
    for yaw, emb in ((40.0, [1.0, 0.0]), (3.0, [0.0, 1.0]), (-30.0, [1.0, 1.0])):
        lm, *_ = frame_face(cap, yaw=yaw, s=80.0 + yaw)
        sources.append(SourceFace(image=frame[0], landmarks=lm, x_c_obs=cap + 0.001 * torch.randn_like(cap),
                                  yaw=yaw, embedding=torch.tensor(emb)))
    core = GeometricSwapCore(GeometricSwapConfig(appearance="texture", texture_size=128), topology=synthetic_topology())
    ident = core.prepare(sources)
    assert ident.texture_index == 1
    assert ident.images.shape == (3, 3, 128, 128) and ident.landmarks.shape == (3, cap.shape[0], 3)
    assert ident.vertex_confidence.shape == (3, cap.shape[0])
    assert torch.allclose(ident.canonical, cap, atol=5e-3)
    assert ident.embedding is not None and math.isclose(float(ident.embedding.norm()), 1.0, rel_tol=1e-5)
    # the turned photos see one side worse than the frontal one
    assert float(ident.vertex_confidence[0].mean()) < float(ident.vertex_confidence[1].mean())


# ---------------------------------------------------------------------------------------------------------------
# crop frames
# ---------------------------------------------------------------------------------------------------------------

def test_crop_frame_is_upright_centred_and_pose_stable(cap):
    S = 256
    lms = torch.stack([frame_face(cap, yaw=y, roll=r, s=sc)[0] for y, r, sc in
                       ((0.0, 0.0, 100.0), (40.0, 0.0, 100.0), (0.0, 35.0, 60.0), (-30.0, -20.0, 140.0))])
    M = crop_frame_from_landmarks(lms, S, 0.2, eye_corners=EYES)
    out = transform_landmarks(lms, M)
    eye_a, eye_b = out[:, EYES[0][0]], out[:, EYES[1][0]]
    assert torch.all(eye_b[:, 0] > eye_a[:, 0])
    tilt = torch.rad2deg(torch.atan2(eye_b[:, 1] - eye_a[:, 1], eye_b[:, 0] - eye_a[:, 0]))
    assert float(tilt[[0, 2]].abs().max()) < 0.01  # pure roll: exactly level
    assert float(tilt.abs().max()) < 8.0  # with yaw the eye line is level up to perspective of depth
    centre = out[:, :468].mean(1)
    assert torch.allclose(centre[:, :2], torch.full((4, 2), (S - 1) / 2), atol=1e-3)
    rms = ((out[:, :468] - centre[:, None]) ** 2).sum(-1).mean(-1).sqrt()
    assert torch.allclose(rms, rms[0].expand(4), rtol=1e-4)  # same size whatever the pose and distance


def test_crop_frame_on_the_real_canonical_face():
    can = pose.canonical_face()
    R = pose.matrix_from_euler(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([25.0]))
    lm = pose.compose(torch.tensor([90.0]), R, torch.tensor([[300.0, 200.0, 0.0]]), can)
    M = crop_frame_from_landmarks(lm, 256, 0.2)
    out = transform_landmarks(lm, M)
    eye_r, eye_l = out[0, [33, 133]].mean(0), out[0, [263, 362]].mean(0)
    assert abs(float(eye_r[1] - eye_l[1])) < 1e-3 and float(eye_r[0]) < float(eye_l[0])
    assert float(out[0, 13, 1]) > float(eye_r[1])  # the mouth is below the eyes: upright
    top, bottom = float(out[0, :468, 1].min()), float(out[0, :468, 1].max())
    assert 0 < top and bottom < 255 and (bottom - top) > 0.6 * 256


def test_transform_landmarks_scales_depth():
    M = torch.tensor([[[0.0, -2.0, 10.0], [2.0, 0.0, 5.0]]])  # 90 degree rotation, scale 2
    p = torch.tensor([[[1.0, 0.0, 3.0], [0.0, 1.0, -1.0]]])
    out = transform_landmarks(p, M)
    assert torch.allclose(out, torch.tensor([[[10.0, 7.0, 6.0], [8.0, 5.0, -2.0]]]))
    assert transform_landmarks(p[..., :2], M).shape == (1, 2, 2)


def test_warp_to_crop_matches_opencv_and_antialiases():
    img = test_texture(120, 160)
    ang = math.radians(12.0)
    M = torch.tensor([[[1.3 * math.cos(ang), -1.3 * math.sin(ang), -20.5],
                       [1.3 * math.sin(ang), 1.3 * math.cos(ang), 10.25]]])
    out = warp_to_crop(img, M, (100, 90), padding_mode="zeros")
    ref = cv2.warpAffine(img[0].permute(1, 2, 0).numpy(), M[0].numpy(), (90, 100), flags=cv2.INTER_LINEAR)
    ref = torch.from_numpy(ref).permute(2, 0, 1)[None]
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))
    assert float((out - ref)[inner].abs().mean()) < 2e-3
    # an 8x reduction of a fine checker averages it instead of aliasing
    fine = ((torch.arange(256)[:, None] + torch.arange(256)[None]) % 2).float().expand(1, 3, 256, 256)
    small = warp_to_crop(fine, torch.tensor([[[0.125, 0.0, 0.0], [0.0, 0.125, 0.0]]]), 32)
    assert float((small[..., 2:-2, 2:-2] - 0.5).abs().max()) < 0.05


# ---------------------------------------------------------------------------------------------------------------
# with the real MediaPipe topology (when its data file is available)
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_face(model):
    from vidswap.faces import topology

    return pose, topology.load_topology(model("mesh_topology")), pose.canonical_face()


def test_real_topology_swap_turned_source(real_face):
    """A 35-degree turned source photo driven to the other side: holes at the plate's eyes and mouth, the
    hidden cheek filled from the mirror, and shape=target landmarks equal to the plate's."""
    pose, topo, can = real_face
    frame = smooth_texture(360, 400)
    R_src = pose.matrix_from_euler(torch.tensor([35.0]), torch.tensor([0.0]), torch.tensor([0.0]))
    src_lm = pose.compose(torch.tensor([70.0]), R_src, torch.tensor([[200.0, 180.0, 0.0]]), can)[0]
    src = SourceFace(image=frame[0], landmarks=src_lm, x_c_obs=can, yaw=35.0)
    core = GeometricSwapCore(GeometricSwapConfig(appearance="texture", shape="target", texture_size=256), topology=topo)
    ident = core.prepare([src])
    # the far side of the turned source is poorly seen
    x = can[:, 0]
    vc = ident.vertex_confidence[0]
    assert float(vc[:468][x[:468] < -0.6].mean()) < float(vc[:468][x[:468] > 0.6].mean())

    R_t = pose.matrix_from_euler(torch.tensor([-30.0, 0.0]), torch.tensor([5.0, -5.0]), torch.tensor([0.0, 8.0]))
    tgt = pose.compose(torch.tensor([80.0, 90.0]), R_t, torch.tensor([[200.0, 180.0, 0.0], [190.0, 170, 0]]), can)
    frames = frame.expand(2, -1, -1, -1)
    M = crop_frame_from_landmarks(tgt, 256, 0.2)
    lm = transform_landmarks(tgt, M)
    p = pose.decompose(lm)
    batch = SwapBatch(target_crops=warp_to_crop(frames, M, 256), target_landmarks=lm, s=p.s, R=p.R, t=p.t,
                      expression=p.x_c_obs - can, confidence=torch.ones(2), frame_to_crop=M)
    res = core.swap(batch, ident)
    assert torch.allclose(res.driven_landmarks, lm, atol=0.05)
    assert float(res.confidence[res.alpha > 0.5].mean()) > 0.9
    from vidswap.appearance.raster import fill_polygons

    for name in ("left_eye", "right_eye"):
        inside = fill_polygons(lm, [torch.as_tensor(topo.regions[name])], (256, 256))[:, None]
        assert float(res.alpha[inside].max()) < 0.05
    cheeks = fill_polygons(lm, [torch.as_tensor(topo.regions["face_oval"])], (256, 256))[:, None]
    assert float(res.alpha[cheeks].mean()) > 0.8


def test_identity_mixing_takes_shape_from_one_source_and_texture_from_another():
    shapes = torch.stack([torch.zeros(478, 3), torch.ones(478, 3)])
    shape, texture = mixed_identity(shapes, shape_source=1, texture_source=0, weight=1.0, default_texture=0)
    assert texture == 0 and torch.equal(shape, shapes[1])
    shape, texture = mixed_identity(shapes, shape_source=1, texture_source=0, weight=0.25, default_texture=1)
    assert texture == 0 and torch.allclose(shape, torch.full((478, 3), 0.25))
    shape, texture = mixed_identity(shapes, shape_source=None, texture_source=None, weight=1.0, default_texture=1)
    assert texture == 1 and torch.equal(shape, shapes[1])
    with pytest.raises(ValueError, match="out of range"):
        mixed_identity(shapes, shape_source=2, texture_source=0, weight=1.0, default_texture=0)


def test_hair_over_the_source_forehead_is_left_out_and_glasses_are_kept(media):
    """The astronaut's fringe (hair over the forehead) and Grace Hopper's hat brim are not painted onto the plate;
    nothing below the brows is touched inside the face's inner width (Grace Hopper keeps her glasses); hair over
    the sides of the face (portrait_f1) is left out too."""
    from vidswap.config import AnalysisConfig
    from vidswap.faces.analyze import AnalysisModels
    from vidswap.faces.topology import load_topology
    from vidswap.io import read_image
    from vidswap.pipeline import load_source_faces

    models = AnalysisModels.load(AnalysisConfig())
    topology = load_topology()
    brows = np.concatenate([topology.regions["left_brow"], topology.regions["right_brow"]])
    for name, least in (("astronaut", 2000), ("grace_hopper", 300)):
        path = media(name)
        src = load_source_faces((str(path),), [read_image(path)], models, [])
        ident = GeometricSwapCore(GeometricSwapConfig(), topology).prepare(src)
        valid = ident.texture_validity[0, 0].numpy()
        brow_top = float(ident.landmarks[0, brows, 1].min())
        oval = ident.landmarks[0, topology.regions["face_oval"], 0].numpy()
        centre, half = (oval.max() + oval.min()) / 2, (oval.max() - oval.min()) / 2
        inner = slice(int(np.ceil(centre - 0.7 * half)), int(centre + 0.7 * half))  # inside the outer 20% + ramp
        assert valid[int(np.ceil(brow_top)):, inner].min() == 1.0  # below the brows (glasses, eyes): untouched
        assert (valid[:int(brow_top)] < 0.5).sum() > least  # fringe / hat brim left out
        no_test = GeometricSwapCore(GeometricSwapConfig(source_occlusion=False), topology).prepare(src)
        assert no_test.texture_validity is None
    path = media("portrait_f1")  # hair hangs over both sides of her face, above the mouth
    src = load_source_faces((str(path),), [read_image(path)], models, [])
    ident = GeometricSwapCore(GeometricSwapConfig(), topology).prepare(src)
    valid = ident.texture_validity[0, 0].numpy()
    lm = ident.landmarks[0].numpy()
    rows = slice(int(lm[brows, 1].max()), int(lm[[61, 291], 1].min()))  # between the brows and the mouth
    oval = lm[topology.regions["face_oval"], 0]
    for side in (slice(int(oval.min()), int(oval.min() + 0.1 * (oval.max() - oval.min()))),
                 slice(int(oval.max() - 0.1 * (oval.max() - oval.min())), int(oval.max()))):
        assert (valid[rows, side] < 0.5).mean() > 0.2  # hair over the temples (the lower cheeks are skin)
