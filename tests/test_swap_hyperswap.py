"""The HyperSwap backend (``swap.core: hyperswap``) on a stand-in with hyperswap_1a/1b/1c_256's exact signature
(``source`` (1, 512) + ``target`` (1, 3, 256, 256) -> ``output`` (1, 3, 256, 256) + ``mask`` (1, 1, 256, 256),
float32): routed from the file, the ArcFace-128 template at 256, ``(x - 0.5) / 0.5`` in, ``x * 0.5 + 0.5`` out, and
the normalised ArcFace embedding as the source (FaceFusion ``processors/modules/face_swapper/core.py``).

The stand-in adds ``gain * source[:3]`` per channel to its [-1, 1] target and clips to [-1, 1], so the core's
result must be ``clip(crop + gain / 2 * source[:3], 0, 1)``, computed here independently.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import onnx_standins as standin
from media_helpers import assert_first_frames_timing_and_audio
from test_swap_inswapper import (assert_batch_equals_single_runs, assert_torch_engine_matches, batch_of, decoded,
                                 landmarks_with_kps, random_crops_and_identity, synthetic_source, umeyama,
                                 untouched_outside_crop)
from vidswap.cli import main
from vidswap.errors import ConfigError
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.models.registry import add_model
from vidswap.models.router import read_signature, route
from vidswap.swap import build_core
from vidswap.swap.learned import HyperswapCore, LearnedIdentity
from vidswap.swap.learned.identity import arcface_crops
from vidswap.swap.registry import CoreContext

GAIN = 0.5
NAMES = ("hyperswap_1a_256", "hyperswap_1c_256", "simswap_256", "arcface_w600k_r50")
#: InsightFace's ArcFace 112 template (face_align.arcface_dst); at 128 it moves 8 px right (norm_crop2's 128 mode)
ARC112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
                   [70.7299, 92.2041]])


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSWAP_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(21)
    man = standin.unpinned_manifest(NAMES)
    add_model(man, "hyperswap_1a_256", standin.hyperswap(tmp_path / "h1.onnx", GAIN))
    add_model(man, "hyperswap_1c_256", standin.hyperswap(tmp_path / "hN.onnx", GAIN, batch="N"))
    add_model(man, "simswap_256", standin.simswap(tmp_path / "s.onnx", 256, GAIN))
    arc = rng.standard_normal((3, 512))
    add_model(man, "arcface_w600k_r50", standin.arcface(tmp_path / "a.onnx", arc))
    return {"manifest": man, "arc": arc, "dir": tmp_path}


def make(manifest, **config) -> HyperswapCore:
    return build_core("hyperswap", config, CoreContext(models=manifest, accept_noncommercial=frozenset(NAMES)))


def test_the_file_signature_routes_to_hyperswap_not_simswap(manifest):
    path = manifest["dir"] / "h1.onnx"
    sig = read_signature(path)
    assert [(t.name, t.shape, t.dtype) for t in sig.inputs] == [("source", (1, 512), "float32"),
                                                               ("target", (1, 3, 256, 256), "float32")]
    assert [(t.name, t.shape, t.dtype) for t in sig.outputs] == [("output", (1, 3, 256, 256), "float32"),
                                                                ("mask", (1, 1, 256, 256), "float32")]
    assert route(path).name == "hyperswap_256" and route(manifest["dir"] / "s.onnx").name == "simswap_256"
    with pytest.raises(ConfigError, match="swap.hyperswap.model simswap_256 is a simswap_256 file; the hyperswap "
                                          "core runs hyperswap_256"):
        make(manifest["manifest"], model="simswap_256")


def test_crop_is_the_arcface_128_template_at_256_and_io_is_signed(manifest):
    core = make(manifest["manifest"])
    assert core.family.name == "hyperswap_256" and core.crop.size == 256
    rng = np.random.default_rng(3)
    kps = rng.uniform(100, 400, (3, 5, 2))
    got = core.crop.frame_to_crop(torch.stack([landmarks_with_kps(k) for k in kps])).double().numpy()
    template = (ARC112 + [8.0, 0.0]) * 2.0
    for row, k in enumerate(kps):
        np.testing.assert_allclose(got[row], umeyama(k, template), atol=1e-3)

    crops = torch.from_numpy(rng.random((2, 3, 256, 256), np.float32))
    vector = torch.from_numpy((rng.standard_normal(512) / 5).astype(np.float32))
    result = core.swap(batch_of(crops), LearnedIdentity(vector=vector, arcface=vector))
    signed = np.clip((crops.numpy() - 0.5) / 0.5 + GAIN * vector.numpy()[:3].reshape(1, 3, 1, 1), -1, 1)
    np.testing.assert_allclose(result.crops.numpy(), np.clip(signed * 0.5 + 0.5, 0, 1), atol=1e-6)
    assert float(np.abs(result.crops.numpy() - crops.numpy()).max()) > 0.05  # the source moved the colour


def test_source_vector_is_the_normalised_arcface_embedding(manifest):
    core = make(manifest["manifest"])
    sources = [synthetic_source(0), synthetic_source(2)]
    identity = core.prepare(sources)
    crops = arcface_crops(sources).double().numpy()  # the 112 crop itself is checked in test_swap_inswapper
    raw = ((crops - 0.5) / 0.5).mean((2, 3)) @ manifest["arc"]
    normed = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    mean = normed.mean(0)
    np.testing.assert_allclose(identity.vector.numpy(), mean / np.linalg.norm(mean), atol=2e-5)
    assert core.emap is None and core.converter is None


@pytest.mark.parametrize("model", ["hyperswap_1a_256", "hyperswap_1c_256"])  # graph batch 1, and symbolic
def test_batch_of_n_equals_n_runs_of_one(manifest, model):
    core = make(manifest["manifest"], model=model, batch_size=2)
    assert core.session.fixed_batch == (model == "hyperswap_1a_256")
    assert_batch_equals_single_runs(core, *random_crops_and_identity(8, 3, 256))


def test_torch_engine_equals_onnxruntime(manifest):
    man = manifest["manifest"]
    assert_torch_engine_matches(make(man), make(man, engine="torch"), "hyperswap_256", 256)


def test_hyperswap_runs_a_real_clip_end_to_end(tmp_path, monkeypatch, media):
    """The stand-in through ``vidswap run`` on 4 real frames: frame count, timing and audio as the input's, pixels
    beyond the 256 crop bit-identical, the face changed."""
    standin.home_with_real_models(tmp_path, monkeypatch)
    rng = np.random.default_rng(4)
    man = standin.unpinned_manifest(NAMES)
    monkeypatch.setattr("vidswap.swap.registry.load_manifest", lambda: man)
    add_model(man, "hyperswap_1a_256", standin.hyperswap(tmp_path / "h.onnx", GAIN))
    add_model(man, "arcface_w600k_r50", standin.arcface(tmp_path / "a.onnx", rng.standard_normal((3, 512))))

    clip, source = media("single_face_clip"), media("astronaut")
    out = tmp_path / "hyperswap.mkv"
    shot = tmp_path / "shot.yaml"
    shot.write_text(f"input: {clip}\nsources: [{source}]\nframes: 0-3\noutput: {{path: {out}}}\n"
                    "swap: {core: hyperswap, hyperswap: {provider: cpu}}\n"
                    f"models: {{accept_noncommercial: [{', '.join(NAMES)}]}}\n" + standin.PLAIN_PASTE)
    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q"])
    assert result.exit_code == 0, result.output
    assert "swapped 4 frames" in result.output and "onnxruntime CPUExecutionProvider (hyperswap_256)" in result.output
    assert_first_frames_timing_and_audio(clip, out, 4)

    (track,) = ShotAnalysis.load(out.parent / "hyperswap.vidswap" / "tracks.npz").tracks
    core = make(man)
    m_all = core.crop.frame_to_crop(torch.from_numpy(track.smoothed).float()).double().numpy()
    plates, results = decoded(clip), decoded(out)
    for row, number in enumerate(track.frames.tolist()):
        plate, swapped = plates[number], results[number]
        untouched_outside_crop(plate, swapped, m_all[row], 2, 253, number)
        assert np.any(swapped != plate, -1).sum() > 500
