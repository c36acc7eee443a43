"""The SimSwap-class backend (``swap.core: simswap``) on stand-ins with simswap_256 / simswap_unofficial_512's
signature: FaceFusion's ``arcface_112_v1`` crop scaled to the model size, ImageNet-normalised input at 256 (none at
512), and the source vector through the embedding converter (``crossface_simswap``), L2-normalised.

The stand-in swapper adds ``gain * source[:3]`` per channel to its (normalised) target input and clips to [0, 1];
the converter is a fixed matrix, the ArcFace stand-in the per-channel mean of its input times a fixed matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import onnx_standins as standin
from media_helpers import assert_first_frames_timing_and_audio
from test_swap_inswapper import (batch_of, decoded, landmarks_with_kps, synthetic_source, umeyama,
                                 untouched_outside_crop)
from vidswap.cli import main
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.models.registry import add_model
from vidswap.models.router import IMAGENET_MEAN, IMAGENET_STD
from vidswap.swap import build_core
from vidswap.swap.learned import LearnedIdentity, SimswapCore
from vidswap.swap.learned.identity import arcface_crops
from vidswap.swap.registry import CoreContext

GAIN = 0.5
NAMES = ("simswap_256", "simswap_512", "arcface_w600k_r50", "crossface_simswap")
V1 = np.array([[39.7300, 51.1380], [72.2700, 51.1380], [56.0000, 68.4930], [42.4630, 87.0100], [69.5370, 87.0100]])


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSWAP_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(11)
    man = standin.unpinned_manifest(NAMES)
    add_model(man, "simswap_256", standin.simswap(tmp_path / "s256.onnx", 256, GAIN))
    add_model(man, "simswap_512", standin.simswap(tmp_path / "s512.onnx", 512, GAIN, batch="N"))
    arc, conv = rng.standard_normal((3, 512)), rng.standard_normal((512, 512)) / 20
    add_model(man, "arcface_w600k_r50", standin.arcface(tmp_path / "a.onnx", arc))
    add_model(man, "crossface_simswap", standin.converter(tmp_path / "c.onnx", conv))
    return {"manifest": man, "arc": arc.astype(np.float32), "conv": conv.astype(np.float32)}


def make(manifest, **config) -> SimswapCore:
    return build_core("simswap", config, CoreContext(models=manifest, accept_noncommercial=frozenset(NAMES)))


@pytest.mark.parametrize("size", [256, 512])
def test_crop_is_arcface_112_v1_scaled_and_input_is_normalised_per_family(manifest, size):
    core = make(manifest["manifest"], model=f"simswap_{size}")
    assert core.family.name == f"simswap_{size}" and core.crop.size == size
    rng = np.random.default_rng(size)
    kps = rng.uniform(100, 400, (3, 5, 2))
    got = core.crop.frame_to_crop(torch.stack([landmarks_with_kps(k) for k in kps])).double().numpy()
    for row, k in enumerate(kps):
        np.testing.assert_allclose(got[row], umeyama(k, V1 * size / 112.0), atol=1e-3)

    crops = torch.from_numpy(rng.random((2, 3, size, size), np.float32))
    vector = torch.from_numpy((rng.standard_normal(512) / 20).astype(np.float32))
    result = core.swap(batch_of(crops), LearnedIdentity(vector=vector, arcface=vector))
    mean, std = (np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)) if size == 256 else (np.zeros(3), np.ones(3))
    x = (crops.numpy() - mean.reshape(1, 3, 1, 1)) / std.reshape(1, 3, 1, 1)
    expected = np.clip(x + GAIN * vector.numpy()[:3].reshape(1, 3, 1, 1), 0, 1)
    np.testing.assert_allclose(result.crops.numpy(), expected, atol=1e-5)


def test_source_vector_goes_through_the_converter_then_is_normalised(manifest):
    core = make(manifest["manifest"])
    sources = [synthetic_source(0), synthetic_source(2)]
    identity = core.prepare(sources)
    crops = arcface_crops(sources).double().numpy()  # the 112 crop itself is checked in test_swap_inswapper
    raw = ((crops - 0.5) / 0.5).mean((2, 3)) @ manifest["arc"].astype(np.float64)
    converted = raw.mean(0) @ manifest["conv"].astype(np.float64)  # FaceFusion: the averaged raw embedding
    np.testing.assert_allclose(identity.vector.numpy(), converted / np.linalg.norm(converted), atol=2e-5)
    # without a converter: the normalised mean of the normalised ArcFace embeddings
    plain = make(manifest["manifest"], converter="").prepare(sources)
    normed = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    mean = normed.mean(0)
    np.testing.assert_allclose(plain.vector.numpy(), mean / np.linalg.norm(mean), atol=2e-5)


def test_symbolic_batch_runs_in_chunks_equal_to_single_runs(manifest):
    core = make(manifest["manifest"], model="simswap_512", batch_size=2)
    assert not core.session.fixed_batch
    rng = np.random.default_rng(1)
    crops = torch.from_numpy(rng.random((3, 3, 512, 512), np.float32))
    vector = torch.from_numpy((rng.standard_normal(512) / 20).astype(np.float32))
    ident = LearnedIdentity(vector=vector, arcface=vector)
    whole = core.swap(batch_of(crops), ident).crops
    assert torch.equal(whole, torch.cat([core.swap(batch_of(crops[i:i + 1]), ident).crops for i in range(3)]))


def test_simswap_with_pixel_boost_restorer_and_parser_runs_a_real_clip_end_to_end(tmp_path, monkeypatch, media):
    """simswap_256 (2 x 2 boosted tiles at 512), the GFPGAN-class restorer and the BiSeNet parser, stand-ins all,
    through ``vidswap run``: frame count, timing and audio as the input's, pixels beyond the crop bit-identical."""
    standin.home_with_real_models(tmp_path, monkeypatch)
    rng = np.random.default_rng(4)
    names = NAMES + ("gfpgan_1.4", "bisenet_resnet_34")
    man = standin.unpinned_manifest(names)
    monkeypatch.setattr("vidswap.swap.registry.load_manifest", lambda: man)
    add_model(man, "simswap_256", standin.simswap(tmp_path / "s.onnx", 256, GAIN))
    add_model(man, "arcface_w600k_r50", standin.arcface(tmp_path / "a.onnx", rng.standard_normal((3, 512))))
    add_model(man, "crossface_simswap", standin.converter(tmp_path / "c.onnx", np.eye(512)))
    add_model(man, "gfpgan_1.4", standin.restorer(tmp_path / "g.onnx", 0.9))
    parser_w = np.zeros((19, 3))
    parser_w[1], parser_w[17] = (1, 0, 0), (0, 0, 1)
    add_model(man, "bisenet_resnet_34", standin.bisenet(tmp_path / "b.onnx", parser_w))

    clip, source = media("single_face_clip"), media("astronaut")
    out = tmp_path / "simswap.mkv"
    shot = tmp_path / "shot.yaml"
    shot.write_text(f"input: {clip}\nsources: [{source}]\nframes: 0-3\noutput: {{path: {out}}}\n"
                    "swap: {core: simswap, simswap: {provider: cpu, pixel_boost: 512, restorer: gfpgan_1.4, "
                    "restorer_strength: 0.5, parser: bisenet_resnet_34}}\n"
                    f"models: {{accept_noncommercial: [{', '.join(names)}]}}\n"
                    + standin.PLAIN_PASTE)
    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q"])
    assert result.exit_code == 0, result.output
    assert "swapped 4 frames" in result.output and "onnxruntime CPUExecutionProvider (simswap_256)" in result.output
    assert_first_frames_timing_and_audio(clip, out, 4)

    (track,) = ShotAnalysis.load(out.parent / "simswap.vidswap" / "tracks.npz").tracks
    core = make(man, model="simswap_256", pixel_boost=512)
    m_all = core.crop.frame_to_crop(torch.from_numpy(track.smoothed).float()).double().numpy()
    plates, results = decoded(clip), decoded(out)
    for row, number in enumerate(track.frames.tolist()):
        plate, swapped = plates[number], results[number]
        untouched_outside_crop(plate, swapped, m_all[row], 3, 508, number)
        assert np.any(swapped != plate, -1).sum() > 500
