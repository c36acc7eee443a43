"""The GHOST backend (``swap.core: ghost``) on stand-ins with GHOST's exact signature -- which is simswap_256's
(``target`` (1, 3, 256, 256) + ``source`` (1, 512) -> one (1, 3, 256, 256) output, here named ``781`` as in
VisoMaster's ghost_unet_1_block.onnx): the family is named by the registry entry and routing checks the file agrees.

Conventions checked against an independent re-computation: the ``arcface_112_v1`` crop at 256, ``(x - 0.5) / 0.5``
in and ``x * 0.5 + 0.5`` out (FaceFusion, type ``ghost``); the source vector the *raw* mean embedding of GHOST's own
ArcFace on ``arcface_112_v1`` 112 crops in [-1, 1] (ai-forever/ghost ``utils/inference/core.py``), or the w600k
embedding through ``crossface_ghost``, un-normalised (FaceFusion ``prepare_source_embedding``).

The stand-in swapper adds ``gain * source[:3]`` per channel to its [-1, 1] target and clips to [-1, 1], so the
core's result must be ``clip(crop + gain / 2 * source[:3], 0, 1)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import onnx_standins as standin
from media_helpers import assert_first_frames_timing_and_audio
from test_swap_inswapper import (assert_batch_equals_single_runs, assert_torch_engine_matches, batch_of, bilinear_crop,
                                 decoded, landmarks_with_kps, random_crops_and_identity, synthetic_source, umeyama,
                                 untouched_outside_crop)
from vidswap.cli import main
from vidswap.errors import ConfigError, ModelError
from vidswap.faces.align import ARCFACE_TEMPLATE_112, kps5_from_landmarks
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.models.registry import add_model
from vidswap.models.router import read_signature, route
from vidswap.swap import build_core
from vidswap.swap.learned import GhostCore, LearnedIdentity
from vidswap.swap.registry import CoreContext

GAIN = 0.5
NAMES = ("ghost_unet_1_block", "ghost_unet_2_block", "ghost_2_256", "ghost_arcface_backbone", "arcface_w600k_r50",
         "crossface_ghost", "simswap_256")
#: FaceFusion's arcface_112_v1 (= the frontal template of GHOST's insightface face_align set), 112-px crop pixels
V1 = np.array([[39.7300, 51.1380], [72.2700, 51.1380], [56.0000, 68.4930], [42.4630, 87.0100], [69.5370, 87.0100]])


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSWAP_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(31)
    man = standin.unpinned_manifest(NAMES)
    add_model(man, "ghost_unet_1_block", standin.ghost(tmp_path / "g1.onnx", GAIN))
    add_model(man, "ghost_unet_2_block", standin.ghost(tmp_path / "gN.onnx", GAIN, batch="N"))
    add_model(man, "ghost_2_256", standin.ghost(tmp_path / "g2.onnx", GAIN))
    arc, w600k, conv = rng.standard_normal((3, 512)), rng.standard_normal((3, 512)), rng.standard_normal((512, 512))
    add_model(man, "ghost_arcface_backbone", standin.arcface(tmp_path / "ga.onnx", arc))
    add_model(man, "arcface_w600k_r50", standin.arcface(tmp_path / "a.onnx", w600k))
    add_model(man, "crossface_ghost", standin.converter(tmp_path / "c.onnx", conv / 20))
    add_model(man, "simswap_256", standin.simswap(tmp_path / "s.onnx", 256, GAIN))
    return {"manifest": man, "arc": arc, "w600k": w600k, "conv": conv / 20, "dir": tmp_path}


def make(manifest, **config) -> GhostCore:
    return build_core("ghost", config, CoreContext(models=manifest, accept_noncommercial=frozenset(NAMES)))


def test_ghost_is_named_by_its_registry_entry_and_the_file_must_agree(manifest):
    path = manifest["dir"] / "g1.onnx"
    sig = read_signature(path)
    assert [(t.name, t.shape, t.dtype) for t in sig.inputs] == [("target", (1, 3, 256, 256), "float32"),
                                                               ("source", (1, 512), "float32")]
    assert [(t.name, t.shape) for t in sig.outputs] == [("781", (1, 3, 256, 256))]
    assert sig.last_initializer != (512, 512)
    # the file alone reads as SimSwap; named, it is GHOST
    assert route(path).name == "simswap_256" and route(path, expect="ghost_256").name == "ghost_256"
    assert make(manifest["manifest"]).family.name == "ghost_256"
    wrong = standin.restorer(manifest["dir"] / "r.onnx")
    with pytest.raises(ModelError, match="has the restorer_512 signature .restorer., not the ghost_256 one"):
        add_model(manifest["manifest"], "ghost_1_256", wrong)
    with pytest.raises(ModelError, match="not the ghost_unet_3_block model the manifest pins .sha256"):
        add_model(manifest["manifest"], "ghost_unet_3_block", manifest["dir"] / "g1.onnx")  # VisoMaster's pin
    with pytest.raises(ModelError, match="simswap_256 has the simswap_256 signature .swapper., not the ghost_256"):
        make(manifest["manifest"], model="simswap_256")
    accept = CoreContext(models=manifest["manifest"], accept_noncommercial=frozenset(NAMES))
    with pytest.raises(ConfigError, match="swap.simswap.model ghost_unet_1_block is a ghost_256 file"):
        build_core("simswap", {"model": "ghost_unet_1_block", "converter": ""}, accept)
    with pytest.raises(ConfigError, match="needs FaceFusion's converter"):
        make(manifest["manifest"], identity_model="arcface_w600k_r50")
    with pytest.raises(ConfigError, match="takes no converter"):
        make(manifest["manifest"], converter="crossface_ghost")
    with pytest.raises(ConfigError, match=r"models.accept_noncommercial: \[ghost_unet_2_block\]"):
        build_core("ghost", None, CoreContext(models=manifest["manifest"]))
    with pytest.raises(ModelError, match="not in the cache .*; run: vidswap models add ghost_unet_3_block "
                                         "/path/to/ghost_unet_3_block.onnx .download ghost_unet_3_block.onnx from "
                                         "https://github.com/visomaster/visomaster-assets/releases/download/v1.0.0/"):
        accept = frozenset(NAMES) | {"ghost_unet_3_block"}
        build_core("ghost", {"model": "ghost_unet_3_block"},
                   CoreContext(models=manifest["manifest"], accept_noncommercial=accept))


def test_crop_is_arcface_112_v1_at_256_and_io_is_signed(manifest):
    core = make(manifest["manifest"])
    assert core.crop.size == 256
    rng = np.random.default_rng(5)
    kps = rng.uniform(100, 400, (3, 5, 2))
    got = core.crop.frame_to_crop(torch.stack([landmarks_with_kps(k) for k in kps])).double().numpy()
    for row, k in enumerate(kps):
        np.testing.assert_allclose(got[row], umeyama(k, V1 * 256 / 112), atol=1e-3)

    crops = torch.from_numpy(rng.random((2, 3, 256, 256), np.float32))
    vector = torch.from_numpy((rng.standard_normal(512) / 5).astype(np.float32))
    result = core.swap(batch_of(crops), LearnedIdentity(vector=vector, arcface=vector))
    signed = np.clip((crops.numpy() - 0.5) / 0.5 + GAIN * vector.numpy()[:3].reshape(1, 3, 1, 1), -1, 1)
    np.testing.assert_allclose(result.crops.numpy(), np.clip(signed * 0.5 + 0.5, 0, 1), atol=1e-6)
    assert float(np.abs(result.crops.numpy() - crops.numpy()).max()) > 0.05
    # paste-back alpha: 1 inside, the 2-pixel border 0
    alpha = result.alpha.numpy()
    assert alpha.shape == (2, 1, 256, 256) and alpha[:, :, 2:254, 2:254].min() == 1.0
    assert alpha[:, :, :2].max() == 0.0 and alpha[:, :, :, 254:].max() == 0.0


def _v1_embeddings(sources, weight) -> np.ndarray:
    """Independent: SVD Umeyama of each photo's 5 keypoints to arcface_112_v1 at 112, bilinear crop, [-1, 1], then
    the stand-in ArcFace (per-channel mean times ``weight``): (N, 512) raw embeddings."""
    out = []
    for face in sources:
        kps = kps5_from_landmarks(face.landmarks[None].double())[0].numpy()
        crop = bilinear_crop(face.image.double().numpy(), umeyama(kps, V1), 112)
        out.append(((crop - 0.5) / 0.5).mean((1, 2)) @ weight)
    return np.stack(out)


def test_source_vector_is_the_raw_mean_embedding_or_the_crossface_output(manifest):
    sources = [synthetic_source(0), synthetic_source(3)]
    own = make(manifest["manifest"]).prepare(sources)  # GHOST's own ArcFace backbone, no converter
    expected = _v1_embeddings(sources, manifest["arc"]).mean(0)
    np.testing.assert_allclose(own.vector.numpy(), expected, rtol=1e-4, atol=2e-5)
    assert abs(float(np.linalg.norm(own.vector.numpy())) - 1.0) > 0.1  # raw: not normalised

    ff = make(manifest["manifest"], model="ghost_2_256", identity_model="arcface_w600k_r50",
              converter="crossface_ghost").prepare(sources)  # FaceFusion's route: w600k on its own 112 template
    crops = [bilinear_crop(f.image.double().numpy(), umeyama(kps5_from_landmarks(f.landmarks[None].double())[0]
                                                             .numpy(), ARCFACE_TEMPLATE_112.astype(np.float64)), 112)
             for f in sources]
    raw = np.stack([((c - 0.5) / 0.5).mean((1, 2)) @ manifest["w600k"] for c in crops])
    np.testing.assert_allclose(ff.vector.numpy(), raw.mean(0) @ manifest["conv"], rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("model", ["ghost_unet_1_block", "ghost_unet_2_block"])  # graph batch 1, and symbolic
def test_batch_of_n_equals_n_runs_of_one(manifest, model):
    core = make(manifest["manifest"], model=model, batch_size=2)
    assert core.session.fixed_batch == (model == "ghost_unet_1_block")
    assert_batch_equals_single_runs(core, *random_crops_and_identity(6, 3, 256))


def test_torch_engine_equals_onnxruntime(manifest):
    man = manifest["manifest"]
    assert_torch_engine_matches(make(man), make(man, engine="torch"), "ghost_256", 256)


def test_ghost_runs_a_real_clip_end_to_end(tmp_path, monkeypatch, media):
    """The stand-ins through ``vidswap run`` on 4 real frames: frame count, timing and audio as the input's, pixels
    beyond the 256 crop bit-identical, the face changed."""
    standin.home_with_real_models(tmp_path, monkeypatch)
    rng = np.random.default_rng(8)
    names = ("ghost_unet_2_block", "ghost_arcface_backbone")
    man = standin.unpinned_manifest(names)
    monkeypatch.setattr("vidswap.swap.registry.load_manifest", lambda: man)
    add_model(man, "ghost_unet_2_block", standin.ghost(tmp_path / "g.onnx", GAIN))
    add_model(man, "ghost_arcface_backbone", standin.arcface(tmp_path / "a.onnx", rng.standard_normal((3, 512)) / 50))

    clip, source = media("single_face_clip"), media("astronaut")
    out = tmp_path / "ghost.mkv"
    shot = tmp_path / "shot.yaml"
    shot.write_text(f"input: {clip}\nsources: [{source}]\nframes: 0-3\noutput: {{path: {out}}}\n"
                    "swap: {core: ghost, ghost: {provider: cpu}}\n"
                    f"models: {{accept_noncommercial: [{', '.join(names)}]}}\n" + standin.PLAIN_PASTE)
    result = CliRunner().invoke(main, ["run", "--config", str(shot), "-q"])
    assert result.exit_code == 0, result.output
    assert "swapped 4 frames" in result.output and "onnxruntime CPUExecutionProvider (ghost_256)" in result.output
    assert_first_frames_timing_and_audio(clip, out, 4)

    (track,) = ShotAnalysis.load(out.parent / "ghost.vidswap" / "tracks.npz").tracks
    core = make(man)
    m_all = core.crop.frame_to_crop(torch.from_numpy(track.smoothed).float()).double().numpy()
    plates, results = decoded(clip), decoded(out)
    for row, number in enumerate(track.frames.tolist()):
        plate, swapped = plates[number], results[number]
        untouched_outside_crop(plate, swapped, m_all[row], 2, 253, number)
        assert np.any(swapped != plate, -1).sum() > 500
