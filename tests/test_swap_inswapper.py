"""The inswapper-family backend (``swap.core: inswapper``) on stand-in files with inswapper_128's exact signature.

The stand-in swapper adds ``gain * source[:3]`` to its target input per channel and clips to [0, 1]; the stand-in
ArcFace is the per-channel mean of its normalised input times a fixed (3, 512) matrix. With those, every step is
checked against an independent re-computation from the documented conventions (InsightFace ``inswapper.py``,
``face_align.norm_crop2``, ``arcface_onnx.py``): the 5-point alignment (an SVD Umeyama here), the 112 ArcFace crop
(bilinear sampling here), the source vector ``normalize(normalize(arcface) @ emap)``, the pre-processing and the
paste-back; then batching (batch N == N runs of batch 1), provider selection, and a real clip end to end.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import onnx_standins as standin
from media_helpers import assert_first_frames_timing_and_audio
from vidswap.cli import main
from vidswap.errors import ConfigError
from vidswap.faces.align import ARCFACE_TEMPLATE_112
from vidswap.faces.types import LEFT_EYE_CONTOUR, MOUTH_CORNERS, NOSE_TIP, RIGHT_EYE_CONTOUR
from vidswap.config import load_config
from vidswap.faces.analyze import AnalysisModels
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.io import probe, read_frames, read_image
from vidswap.pipeline import load_source_faces
from vidswap.models.registry import add_model
from vidswap.models.router import read_signature, route
from vidswap.swap import SourceFace, SwapBatch, build_core, registry
from vidswap.swap.learned import InswapperCore, LearnedIdentity, ProviderError
from vidswap.swap.learned import runtime as learned_runtime
from vidswap.swap.registry import CoreContext

GAIN = 2.0
ACCEPT = frozenset({"inswapper_128", "arcface_w600k_r50"})


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Umeyama (1991) similarity by SVD, no reflection: (N, 2) -> (2, 3) with dst ≈ M[:, :2] src + M[:, 2]."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.diag([1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ e @ vt
    scale = np.trace(np.diag(sig) @ e) / (s ** 2).sum(1).mean()
    return np.hstack([scale * rot, (mu_d - scale * rot @ mu_s)[:, None]])


def bilinear_crop(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """(3, H, W) sampled at the inverse of frame->crop ``m`` for every crop pixel (centres at integers; edge
    pixels repeated) -> (3, size, size)."""
    a = np.vstack([m, [0, 0, 1]])
    inv = np.linalg.inv(a)
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    x = inv[0, 0] * u + inv[0, 1] * v + inv[0, 2]
    y = inv[1, 0] * u + inv[1, 1] * v + inv[1, 2]
    h, w = image.shape[1:]
    x, y = np.clip(x, 0, w - 1), np.clip(y, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    return (image[:, y0, x0] * (1 - fx) * (1 - fy) + image[:, y0, x1] * fx * (1 - fy)
            + image[:, y1, x0] * (1 - fx) * fy + image[:, y1, x1] * fx * fy)


def landmarks_with_kps(kps: np.ndarray) -> torch.Tensor:
    """(478, 3) landmarks whose five keypoints (eye-contour means, nose tip, mouth corners) are ``kps``."""
    pts = np.zeros((478, 3), np.float32)
    pts[:, :2] = kps.mean(0)
    pts[list(RIGHT_EYE_CONTOUR), :2] = kps[0]
    pts[list(LEFT_EYE_CONTOUR), :2] = kps[1]
    pts[NOSE_TIP, :2] = kps[2]
    pts[MOUTH_CORNERS[0], :2] = kps[3]
    pts[MOUTH_CORNERS[1], :2] = kps[4]
    return torch.from_numpy(pts)


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(16)
    q, _ = np.linalg.qr(rng.standard_normal((512, 512)))
    return {"emap": (q * 3.0).astype(np.float32), "arc": rng.standard_normal((3, 512)).astype(np.float32)}


@pytest.fixture
def cache(tmp_path, monkeypatch, weights):
    """A temporary model cache holding the stand-ins under the manifest's names; the manifest's pin of the real
    inswapper file is lifted (the stand-in has other bytes). The analysis models are linked from the real cache."""
    standin.home_with_real_models(tmp_path, monkeypatch)
    manifest = standin.unpinned_manifest(ACCEPT)
    monkeypatch.setattr("vidswap.swap.registry.load_manifest", lambda: manifest)

    def install(batch=1):
        add_model(manifest, "inswapper_128", standin.inswapper(tmp_path / "i.onnx", weights["emap"], GAIN, batch))
        add_model(manifest, "arcface_w600k_r50", standin.arcface(tmp_path / "a.onnx", weights["arc"], batch))
        return manifest

    return install


def make_core(manifest, **config) -> InswapperCore:
    return build_core("inswapper", config, CoreContext(models=manifest, accept_noncommercial=ACCEPT))


def synthetic_source(seed: int = 0) -> SourceFace:
    """A smooth random photo with a face of about 100 px (no down-scaling in the 112 crop)."""
    rng = np.random.default_rng(seed)
    img = torch.nn.functional.interpolate(torch.from_numpy(rng.random((1, 3, 12, 14), np.float32)), (180, 200),
                                          mode="bilinear", align_corners=False)[0]
    kps = ARCFACE_TEMPLATE_112.astype(np.float64) * 1.1 + np.array([40.0, 20.0]) + rng.normal(0, 2, (5, 2))
    lm = landmarks_with_kps(kps)
    return SourceFace(image=img, landmarks=lm, x_c_obs=torch.zeros(478, 3), embedding=torch.ones(128))


def test_source_vector_is_normalised_arcface_times_emap_renormalised(cache, weights):
    core = make_core(cache())
    sources = [synthetic_source(0), synthetic_source(1)]
    identity = core.prepare(sources)
    assert isinstance(identity, LearnedIdentity)
    embeddings = []
    for face in sources:  # independent: SVD Umeyama to the 112 template, bilinear crop, (x - 127.5) / 127.5
        kps = np.stack([face.landmarks[list(RIGHT_EYE_CONTOUR), :2].double().mean(0).numpy(),
                        face.landmarks[list(LEFT_EYE_CONTOUR), :2].double().mean(0).numpy(),
                        face.landmarks[NOSE_TIP, :2].double().numpy(),
                        face.landmarks[MOUTH_CORNERS[0], :2].double().numpy(),
                        face.landmarks[MOUTH_CORNERS[1], :2].double().numpy()])
        crop = bilinear_crop(face.image.double().numpy(), umeyama(kps, ARCFACE_TEMPLATE_112.astype(np.float64)), 112)
        blob = (crop * 255.0 - 127.5) / 127.5
        embeddings.append(blob.mean((1, 2)) @ weights["arc"].astype(np.float64))
    normed = [e / np.linalg.norm(e) for e in embeddings]
    mean = np.mean(normed, 0)
    mean /= np.linalg.norm(mean)
    latent = mean @ weights["emap"].astype(np.float64)
    latent /= np.linalg.norm(latent)
    np.testing.assert_allclose(identity.arcface.numpy(), mean, atol=2e-5)
    np.testing.assert_allclose(identity.vector.numpy(), latent, atol=2e-5)
    assert abs(float(np.linalg.norm(identity.vector.numpy())) - 1.0) < 1e-5


def test_crop_is_the_arcface_128_template_and_swap_feeds_the_crop_as_is(cache):
    core = make_core(cache())
    rng = np.random.default_rng(3)
    kps = rng.uniform(100, 300, (4, 5, 2))
    landmarks = torch.stack([landmarks_with_kps(k) for k in kps])
    template_128 = ARCFACE_TEMPLATE_112.astype(np.float64) + np.array([8.0, 0.0])  # norm_crop2 at 128
    got = core.crop.frame_to_crop(landmarks).double().numpy()
    for row, k in enumerate(kps):
        np.testing.assert_allclose(got[row], umeyama(k, template_128), atol=1e-3)
    assert core.crop.size == 128

    crops = torch.from_numpy(rng.random((4, 3, 128, 128), np.float32))
    vector = torch.from_numpy((rng.standard_normal(512) / 20).astype(np.float32))
    identity = LearnedIdentity(vector=vector, arcface=vector)
    result = core.swap(batch_of(crops), identity)
    expected = np.clip(crops.numpy() + GAIN * vector.numpy()[:3].reshape(1, 3, 1, 1), 0, 1)
    np.testing.assert_allclose(result.crops.numpy(), expected, atol=1e-6)
    assert result.alpha.shape == (4, 1, 128, 128)
    assert float(result.alpha[:, :, 2:126, 2:126].min()) == 1.0 and float(result.alpha[:, :, :2].max()) == 0.0


def batch_of(crops: torch.Tensor) -> SwapBatch:
    n = crops.shape[0]
    return SwapBatch(target_crops=crops, target_landmarks=torch.zeros(n, 478, 3), s=torch.ones(n),
                     R=torch.eye(3).expand(n, 3, 3), t=torch.zeros(n, 3), expression=torch.zeros(n, 478, 3),
                     confidence=torch.ones(n), frame_to_crop=torch.zeros(n, 2, 3))


def random_crops_and_identity(seed: int, n: int, size: int, scale: float = 5.0):
    """``n`` random (3, size, size) crops and a learned identity whose vector is 512 normals / ``scale``."""
    rng = np.random.default_rng(seed)
    crops = torch.from_numpy(rng.random((n, 3, size, size), np.float32))
    vector = torch.from_numpy((rng.standard_normal(512) / scale).astype(np.float32))
    return crops, LearnedIdentity(vector=vector, arcface=vector)


def assert_batch_equals_single_runs(core, crops: torch.Tensor, identity) -> None:
    """One ``swap`` of all crops == one ``swap`` per crop, crops and alpha bit for bit."""
    whole = core.swap(batch_of(crops), identity)
    ones = [core.swap(batch_of(crops[i:i + 1]), identity) for i in range(crops.shape[0])]
    assert torch.equal(whole.crops, torch.cat([r.crops for r in ones]))
    assert torch.equal(whole.alpha, torch.cat([r.alpha for r in ones]))


def assert_torch_engine_matches(ort_core, torch_core, family: str, size: int, seed: int = 9) -> None:
    """The converted torch module swaps 2 random crops as onnxruntime does (1e-5), and says it runs."""
    crops, identity = random_crops_and_identity(seed, 2, size)
    ort_out = ort_core.swap(batch_of(crops), identity).crops
    assert torch_core.runtime().startswith(f"torch cpu ({family}")
    assert torch.allclose(torch_core.swap(batch_of(crops), identity).crops, ort_out, atol=1e-5)


@pytest.mark.parametrize("graph_batch", [1, "N"])
def test_batch_of_n_equals_n_runs_of_one(cache, graph_batch):
    core = make_core(cache(graph_batch), batch_size=2)
    assert core.session.fixed_batch == (graph_batch == 1)
    assert_batch_equals_single_runs(core, *random_crops_and_identity(5, 5, 128, scale=10))


def test_provider_auto_reports_what_runs_and_cuda_never_falls_back_silently(cache, monkeypatch):
    manifest = cache()
    assert make_core(manifest).provider == "CPUExecutionProvider"
    assert make_core(manifest, provider="cpu").provider == "CPUExecutionProvider"
    with pytest.raises(ProviderError) as err:  # this onnxruntime has no CUDA provider at all
        make_core(manifest, provider="cuda")
    assert err.value.exit_code == 2 and "provider cuda asked for, but this onnxruntime has only" in str(err.value)
    # an onnxruntime that lists CUDA but cannot start it falls back to CPU: that is an error too
    monkeypatch.setattr(learned_runtime, "available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.warns(UserWarning):
        with pytest.raises(ProviderError, match="onnxruntime fell back to CPUExecutionProvider"):
            make_core(manifest, provider="cuda")


def test_bad_configuration_lines(cache, tmp_path):
    manifest = cache()
    with pytest.raises(ConfigError, match=r"models.accept_noncommercial: \[inswapper_128\]"):
        build_core("inswapper", {}, CoreContext(models=manifest))
    with pytest.raises(ConfigError, match="provider"):
        build_core("inswapper", {"provider": "opencl"}, CoreContext(models=manifest, accept_noncommercial=ACCEPT))
    simswap_file = standin.simswap(tmp_path / "s.onnx", 256)
    add_model(manifest, "simswap_256", simswap_file)
    with pytest.raises(ConfigError, match="is a simswap_256 file; the inswapper core runs inswapper_128"):
        build_core("inswapper", {"model": "simswap_256"},
                   CoreContext(models=manifest, accept_noncommercial=ACCEPT | {"simswap_256"}))


def decoded(path) -> dict[int, np.ndarray]:
    with read_frames(probe(path)) as frames:
        return {f.number: f.image for f in frames}


def untouched_outside_crop(plate: np.ndarray, swapped: np.ndarray, frame_to_crop: np.ndarray, lo: float, hi: float,
                           number: int) -> tuple[np.ndarray, np.ndarray]:
    """Assert that every plate pixel whose crop coordinate is below ``lo`` or above ``hi`` (beyond the alpha's
    border) is bit-identical in ``swapped``; returns the (H, W) crop coordinates (qx, qy) of the plate's pixels."""
    ys, xs = np.mgrid[0:plate.shape[0], 0:plate.shape[1]]
    m = frame_to_crop
    qx, qy = m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    outside = (qx < lo) | (qx > hi) | (qy < lo) | (qy > hi)
    assert np.array_equal(swapped[outside], plate[outside]), f"frame {number}: pixels outside the crop changed"
    return qx, qy


def test_inswapper_runs_a_real_clip_end_to_end(cache, media, tmp_path):
    cache()
    clip, source = media("single_face_clip"), media("astronaut")
    out = tmp_path / "inswapper.mkv"
    shot = tmp_path / "shot.yaml"
    shot.write_text(f"input: {clip}\nsources: [{source}]\nframes: 0-11\noutput: {{path: {out}}}\n"
                    "swap: {core: inswapper, inswapper: {provider: cpu}}\n"
                    "models: {accept_noncommercial: [inswapper_128, arcface_w600k_r50]}\n"
                    + standin.PLAIN_PASTE)
    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q"])
    assert result.exit_code == 0, result.output
    assert "swapped 12 frames" in result.output
    assert "swap core ran on onnxruntime CPUExecutionProvider (inswapper_128)" in result.output
    assert_first_frames_timing_and_audio(clip, out, 12)

    (track,) = ShotAnalysis.load(out.parent / "inswapper.vidswap" / "tracks.npz").tracks
    core = make_core(registry.load_manifest())
    m_all = core.crop.frame_to_crop(torch.from_numpy(track.smoothed).float()).double().numpy()
    plates, results = decoded(clip), decoded(out)
    shifts = []
    for row, number in enumerate(track.frames.tolist()):
        plate, swapped = plates[number].astype(int), results[number].astype(int)
        qx, qy = untouched_outside_crop(plate, swapped, m_all[row], 1, 126, number)
        changed = np.any(swapped != plate, -1)
        assert changed.sum() > 500
        inner = changed & (qx > 30) & (qx < 98) & (qy > 40) & (qy < 100)  # cheeks, nose, mouth: inside the face
        shifts.append((swapped[inner] - plate[inner]).mean(0))
    # the stand-in adds GAIN * source[:3] in the crop; warped there and back, the face moves by that on average
    models = AnalysisModels.load(load_config().analysis)
    faces = load_source_faces((str(source),), [read_image(source)], models, [])
    expected = GAIN * core.prepare(faces).vector.numpy()[:3] * 255.0
    shift = np.mean(shifts, 0)
    assert np.abs(expected).max() > 10.0, expected  # a visible move
    np.testing.assert_allclose(shift, expected, rtol=0.1, atol=1.5)

    # temporal stability: the crops the model sees come from the tracked, smoothed landmarks; per-frame tools
    # align each frame on its own measurement (here: the track's raw landmarks). Jitter = mean size of the
    # second difference over time of the crop's corners on the plate (px).
    def jitter(landmarks: np.ndarray) -> float:
        m = core.crop.frame_to_crop(torch.from_numpy(landmarks).float()).double()
        inv = torch.linalg.inv(torch.cat([m, torch.tensor([[[0.0, 0.0, 1.0]]]).double().expand(len(m), 1, 3)], 1))
        corners = torch.tensor([[0.0, 0.0, 1.0], [127.0, 0.0, 1.0], [0.0, 127.0, 1.0], [127.0, 127.0, 1.0]]).double()
        plate = (inv[:, None, :2, :] @ corners[None, :, :, None])[..., 0]  # (T, 4, 2)
        return float((plate[2:] - 2 * plate[1:-1] + plate[:-2]).norm(dim=-1).mean())

    ours, per_frame = jitter(track.smoothed), jitter(track.raw)
    # measured on frames 0-11: ours 0.30 px, per-frame 0.68 px (57% less; 0.45 vs 0.80 on frames 0-17)
    assert ours < 0.75 * per_frame, (ours, per_frame)


@pytest.mark.parametrize("graph_batch", [1, "N"])
def test_torch_engine_equals_onnxruntime(cache, graph_batch):
    manifest = cache(graph_batch)
    ort_core, torch_core = make_core(manifest, batch_size=2), make_core(manifest, engine="torch", batch_size=2)
    assert torch_core.runtime() == "torch cpu (inswapper_128, converted from ONNX)"
    rng = np.random.default_rng(9)
    crops = torch.from_numpy(rng.random((3, 3, 128, 128), np.float32))
    vector = torch.from_numpy((rng.standard_normal(512) / 10).astype(np.float32))
    identity = LearnedIdentity(vector=vector, arcface=vector)
    a, b = ort_core.swap(batch_of(crops), identity), torch_core.swap(batch_of(crops), identity)
    assert float((a.crops - b.crops).abs().max()) < 1e-5 and torch.equal(a.alpha, b.alpha)


def test_half_precision_file_routes_as_inswapper_and_swaps_like_the_float_one(cache, weights, tmp_path):
    manifest = cache()
    manifest["inswapper_128_fp16"] = dataclasses.replace(manifest["inswapper_128_fp16"], sha256="")
    fp16 = standin.inswapper(tmp_path / "h.onnx", weights["emap"], GAIN, fp16=True)
    assert route(fp16).name == "inswapper_128" and read_signature(fp16).inputs[0].dtype == "float16"
    add_model(manifest, "inswapper_128_fp16", fp16)
    half = build_core("inswapper", {"model": "inswapper_128_fp16"},
                      CoreContext(models=manifest, accept_noncommercial=ACCEPT | {"inswapper_128_fp16"}))
    full = make_core(manifest)
    rng = np.random.default_rng(12)
    crops = torch.from_numpy(rng.random((2, 3, 128, 128), np.float32))
    source = [synthetic_source(0)]
    ident_half, ident_full = half.prepare(source), full.prepare(source)
    assert float((ident_half.vector - ident_full.vector).abs().max()) < 1e-3  # the emap read in half precision
    a, b = half.swap(batch_of(crops), ident_half).crops, full.swap(batch_of(crops), ident_full).crops
    assert a.dtype == torch.float32 and float((a - b).abs().max()) < 2e-3  # fp16 rounding: half an 8-bit level
