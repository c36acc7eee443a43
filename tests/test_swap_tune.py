"""Per-clip generator tuning (vidswap.train.tune), its losses (vidswap.swap.losses) and the differentiable SFace
(vidswap.swap.identity_torch), on a real clip."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidswap.swap import losses as L
from vidswap.swap.identity_torch import SFaceTorch, UnsupportedOp, align_for_identity, dequantize, load_sface

CHANNELS = (8, 16, 32, 64)  # small: the whole file has a CPU budget of about a minute


# ---------------------------------------------------------------------------------------------------------------
# differentiable SFace


def test_dequantize_blocked_per_axis_and_per_tensor():
    q = np.array([[1, 2, 3, 4, 5], [-1, -2, -3, -4, -5]], np.int8)
    s = np.array([[0.5, 2.0], [1.0, 3.0]], np.float32)  # blocks of 3 along axis 1 (the last one is short)
    z = np.array([[1, 0], [0, -1]], np.int8)
    out = dequantize(q, s, z, axis=1, block_size=3)
    want = np.array([[0.0, 0.5, 1.0, 8.0, 10.0], [-1, -2, -3, -9, -12]], np.float32)
    assert np.array_equal(out, want)
    assert np.array_equal(dequantize(q, np.array([2.0, 0.5], np.float32), axis=0), q * np.array([[2.0], [0.5]]))
    assert np.array_equal(dequantize(q, np.float32(0.25), np.int8(1)), (q.astype(np.float32) - 1) * 0.25)


def test_unknown_onnx_op_is_named(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Softmax", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(UnsupportedOp, match="Softmax"):
        SFaceTorch.from_onnx(path)


@pytest.fixture(scope="module")
def clip_crops(media):
    """ArcFace crops of real faces: frames of single_face_clip and pexels_clip, and the astronaut portrait."""
    import av
    import cv2

    from vidswap.faces.detect import YuNetDetector, largest_face
    from vidswap.faces.identity import align_faces
    from vidswap.models.registry import model_path

    frames = []
    for name, step in (("single_face_clip", 24), ("pexels_clip", 40)):
        with av.open(str(media(name))) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % step == 0:
                    frames.append(f.to_ndarray(format="rgb24"))
                if i >= 3 * step:
                    break
    frames.append(np.ascontiguousarray(cv2.imread(str(media("astronaut")))[:, :, ::-1]))
    det = YuNetDetector.from_path(model_path("yunet"), threads=2)
    kps = np.stack([largest_face(d).kps for d in det(frames)])
    crops, _ = align_faces(frames, kps)
    return crops


def test_sface_torch_matches_onnxruntime(clip_crops):
    from vidswap.faces.identity import IdentityEncoder
    from vidswap.models.registry import model_path

    ref = IdentityEncoder.from_path(model_path("sface"), threads=2).embed_crops(clip_crops)
    net = load_sface()
    assert not list(net.parameters())  # frozen: buffers only
    with torch.no_grad():
        out = net(clip_crops, normalize=True).numpy()
    cos = (out * ref).sum(1)
    assert cos.min() > 0.99, cos
    # and it is differentiable with respect to the image
    x = clip_crops[:2].clone().requires_grad_(True)
    net(x, normalize=True)[:, 0].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_align_for_identity_matches_the_pipeline_alignment():
    from vidswap.faces.align import arcface_template

    # landmarks whose five keypoints sit exactly on the template (scaled x2 in a 224 image): the crop is a
    # 2x down-sampling of the image
    img = F.interpolate(torch.rand(1, 3, 14, 14), size=(224, 224), mode="bilinear", align_corners=False)
    from vidswap.faces.types import LEFT_EYE_CONTOUR, MOUTH_CORNERS, NOSE_TIP, RIGHT_EYE_CONTOUR

    tpl = torch.from_numpy(arcface_template(112)) * 2 + 0.5
    lm = torch.zeros(1, 478, 3)
    lm[0, list(RIGHT_EYE_CONTOUR), :2] = tpl[0]
    lm[0, list(LEFT_EYE_CONTOUR), :2] = tpl[1]
    lm[0, NOSE_TIP, :2] = tpl[2]
    lm[0, MOUTH_CORNERS[0], :2] = tpl[3]
    lm[0, MOUTH_CORNERS[1], :2] = tpl[4]
    crop = align_for_identity(img, lm)
    assert crop.shape == (1, 3, 112, 112)
    assert torch.allclose(crop[..., 4:-4, 4:-4], F.avg_pool2d(img, 2)[..., 4:-4, 4:-4], atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# losses


def smooth_image(H=150, W=150, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(1, 3, 18, 18, generator=g), size=(H, W), mode="bicubic",
                         align_corners=False).clamp(0, 1)


def test_dis_flow_convention_and_warp():
    img = smooth_image()
    prev = img[..., 10:138, 10:138]
    cur = img[..., 13:141, 8:136]  # cur(y, x) = prev(y + 3, x - 2)
    flow = L.dis_flow(cur, prev)
    assert torch.allclose(flow[..., 20:-20, 20:-20].mean(dim=(2, 3)), torch.tensor([[-2.0, 3.0]]), atol=0.05)
    warped = L.warp(prev, flow)
    assert float((warped - cur)[..., 10:-10, 10:-10].abs().mean()) < 0.01 < float((prev - cur).abs().mean())
    conf = L.flow_confidence(flow, L.dis_flow(prev, cur))
    assert float(conf.mean()) > 0.85
    assert torch.equal(L.dis_flow(cur, prev), flow)  # deterministic
    w = torch.ones_like(cur[:, :1])
    assert float(L.temporal_loss(cur, prev, flow, w)) < 0.01


def test_masked_losses_and_identity_hinge():
    x = torch.zeros(1, 3, 8, 8)
    y = torch.ones(1, 3, 8, 8)
    w = torch.zeros(1, 1, 8, 8)
    w[..., :4, :] = 1
    y[..., 4:, :] = 5.0  # outside the mask: must not count
    assert float(L.masked_l1(x, y, w)) == pytest.approx(1.0)
    img = smooth_image(64, 64)
    assert float(L.multiscale_ssim_loss(img, img, torch.ones(1, 1, 64, 64))) < 1e-4
    assert float(L.multiscale_ssim_loss(img, torch.rand_like(img), torch.ones(1, 1, 64, 64))) > 0.3
    e = F.normalize(torch.randn(3, 128), dim=1)
    assert float(L.identity_loss(e, e)) == pytest.approx(0.0, abs=1e-6)
    assert float(L.identity_loss(e, -e)) == pytest.approx(2.0, abs=1e-6)
    cos = torch.tensor([0.5, 0.7])
    assert float(L.identity_hinge(cos, torch.tensor([0.6, 0.6]))) == pytest.approx(0.05)
    assert float(L.identity_hinge(cos, torch.tensor([0.4, 0.6]))) == 0.0  # above the baseline: no reward
    p = [torch.ones(3), torch.zeros(2)]
    assert float(L.weight_l2(p, [torch.zeros(3), torch.zeros(2)])) == pytest.approx(0.6)


# ---------------------------------------------------------------------------------------------------------------
# tuning on a real clip


@pytest.fixture(scope="module")
def shot(media, tmp_path_factory):
    """single_face_clip frames 0-15 analysed, the astronaut as source, 128 px crops."""
    from vidswap.config import load_config
    from vidswap.faces.analyze import AnalysisModels
    from vidswap.faces.topology import load_topology
    from vidswap.io import probe
    from vidswap.analysis_cache import analyze_shot
    from vidswap.pipeline import StageTimer, load_source_faces
    from vidswap.shot import check_sources, plan_frame_numbers
    from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore
    from vidswap.train.tune.data import collect_tune_data, frame_reader

    clip, src = media("single_face_clip"), media("astronaut")
    work = tmp_path_factory.mktemp("tune")
    cfg = load_config(overrides={"input": str(clip), "sources": [str(src)], "frames": "0-15"})
    info = probe(clip)
    models = AnalysisModels.load(cfg.analysis, threads=2)
    analysis = analyze_shot(cfg, info, plan_frame_numbers(info, cfg.frames, cfg.every), models,
                            work / "tracks.npz", StageTimer())
    sources = load_source_faces(cfg.sources, check_sources(cfg.sources), models, [])
    core = GeometricSwapCore(GeometricSwapConfig(crop_size=128), load_topology())
    identity = core.prepare(sources)
    reads = []

    def reader(numbers):
        reads.append(list(numbers))
        return frame_reader(clip)(numbers)

    data = collect_tune_data(analysis, reader, core.crop, max_frames=16)
    return dict(analysis=analysis, core=core, identity=identity, reader=reader, reads=reads, data=data, work=work)


def test_collect_tune_data(shot):
    data = shot["data"]
    assert len(data) == 16 and data.numbers == list(range(16))
    assert data.crops.shape == (16, 3, 128, 128) and data.textures.shape[-1] == 160
    assert data.next_index[:-1].tolist() == list(range(1, 16)) and int(data.next_index[-1]) == -1
    # the landmarks sit on the face in the crop (the render's recipe: eyes level, face centred)
    centre = data.landmarks[:, :468, :2].mean(1)
    assert torch.allclose(centre, torch.full_like(centre, 63.5), atol=1.0)


@pytest.fixture(scope="module")
def tuned(shot):
    from vidswap.train.tune.cache import tune_for_shot
    from vidswap.train.tune.params import TuneParams

    params = TuneParams(cpu_steps=30, batch=6, channels=CHANNELS, val_every=5, patience=100, max_frames=16,
                        identity_every=5)
    start = time.perf_counter()
    gen, info = tune_for_shot(shot["analysis"], shot["reader"], shot["identity"], params, shot["work"] / "cache",
                              core=shot["core"], data=shot["data"], device="cpu", progress=False)
    return gen, info, params, time.perf_counter() - start


def test_tuning_reduces_the_self_reenactment_loss(tuned):
    gen, info, params, seconds = tuned
    assert info.steps_run == 30 and not info.cached
    v = info.val_history
    rec = [params.w_l1 * a + params.w_ssim * b for a, b in zip(v["l1"], v["ssim"])]
    kept = v["step"].index(info.best_step)
    assert info.best_step > 0 and info.best_val < info.initial_val
    assert rec[kept] < 0.97 * rec[0], rec
    assert not gen.is_identity
    # the identity of the swap did not get worse on the held-out frames (hinge at the render's similarity)
    assert v["identity"][kept] < 0.01
    # the loss curves were drawn and the weights cached
    from pathlib import Path

    assert Path(info.plot).stat().st_size > 10_000 and Path(info.weights).exists()


def test_cache_hit_skips_tuning(shot, tuned):
    from vidswap.train.tune.cache import tune_for_shot

    gen, info, params, _ = tuned

    def no_reading(numbers):
        raise AssertionError("a cache hit must not read frames")

    start = time.perf_counter()
    again, info2 = tune_for_shot(shot["analysis"], no_reading, shot["identity"], params, shot["work"] / "cache",
                                 core=shot["core"], device="cpu", progress=False)
    assert info2.cached and info2.key == info.key and time.perf_counter() - start < 5.0
    assert all(torch.equal(a, b) for a, b in zip(gen.state_dict().values(), again.state_dict().values()))
    # another source identity is another key
    from dataclasses import replace

    from vidswap.train.tune.cache import tune_key

    other = replace(shot["identity"], embedding=-shot["identity"].embedding)
    assert tune_key(shot["analysis"], other, params, shot["core"]) != info.key
    assert tune_key(shot["analysis"], shot["identity"], replace(params, lr=2e-3), shot["core"]) != info.key


def test_tuning_is_deterministic(shot):
    from vidswap.swap.generator import GeneratorConfig, SwapGenerator
    from vidswap.train.tune.loop import tune_generator
    from vidswap.train.tune.params import TuneParams

    params = TuneParams(cpu_steps=3, batch=4, channels=CHANNELS, max_frames=16, pairs_per_frame=1,
                        texture_frames=4, val_fraction=0.0, identity_every=1)  # no validation: keep the last step
    states = []
    for _ in range(2):
        torch.manual_seed(params.seed)
        gen = SwapGenerator(GeneratorConfig(channels=CHANNELS))
        tune_generator(gen, shot["data"], shot["identity"], shot["core"], params, device="cpu", progress=False)
        states.append(gen.state_dict())
    assert not torch.equal(states[0]["gain"], torch.zeros(4))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_refiner_plugs_into_the_render_stage(shot, tuned, media):
    """build_refiner on a cache hit (no frames read) -> RenderStage.refiner: the swapped frames change a little
    where the face is, and nothing else changes."""
    import dataclasses

    import cv2

    from vidswap.composite.compositor import CompositeParams
    from vidswap.config import CompositeConfig
    from vidswap.faces.topology import load_topology
    from vidswap.io import probe, read_frames
    from vidswap.composite.compositor import composite_params
    from vidswap.render import RenderStage
    from vidswap.train.tune.cache import build_refiner

    gen, info, params, _ = tuned
    targets = {shot["analysis"].tracks[0].id: shot["identity"]}

    def no_reading(numbers):
        raise AssertionError("a cache hit must not read frames")

    refiner, infos = build_refiner(shot["analysis"], no_reading, targets, params, shot["work"] / "cache",
                                   core=shot["core"], device="cpu", progress=False)
    assert [i.cached for i in infos] == [True]
    cp = composite_params(CompositeConfig(), 0)
    assert isinstance(cp, CompositeParams)
    with read_frames(probe(media("single_face_clip")), range(4, 6)) as it:
        frames = list(it)
    outs = []
    for ref in (None, refiner):
        proc = RenderStage(analysis=shot["analysis"], targets=targets, core=shot["core"],
                           regions=load_topology().regions, params=cp, refiner=ref)
        outs.append(proc([dataclasses.replace(f) for f in frames]))
    for plate, core_only, refined in zip(frames, *outs):
        a = core_only.image.astype(int)
        b = refined.image.astype(int)
        changed = np.abs(a - b).max(-1) > 0
        swapped = (np.abs(plate.image.astype(int) - a).max(-1) > 0).astype(np.uint8)
        near_face = cv2.dilate(swapped, np.ones((9, 9), np.uint8)) > 0
        assert changed.any() and not (changed & ~near_face).any()  # the refiner only touches the face
