"""Routing user-supplied ONNX files to their family from the graph signature, and the manifest's learned-model
entries: licence acknowledgement, the missing-file line, ``models add`` with hash and signature checks.

Every file is a stand-in built here (tests/onnx_standins.py) with the real file's exact signature.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from click.testing import CliRunner

import onnx_standins as standin
from vidswap.cli import main
from vidswap.errors import ConfigError, ModelError
from vidswap.models.registry import add_model, load_manifest, models_dir
from vidswap.models.router import FAMILIES, FAMILY_BY_NAME, known_signatures, last_initializer, read_signature, route
from vidswap.models.sources import sha256_of
from vidswap.swap.registry import CoreContext

RNG = np.random.default_rng(7)


def build(kind: str, path, batch=1):
    if kind == "inswapper_128":
        return standin.inswapper(path, RNG.standard_normal((512, 512)).astype(np.float32), batch=batch)
    if kind == "simswap_256":
        return standin.simswap(path, 256, batch=batch)
    if kind == "simswap_512":
        return standin.simswap(path, 512, batch=batch)
    if kind == "hyperswap_256":
        return standin.hyperswap(path, batch=batch)
    if kind == "ghost_256":
        return standin.ghost(path, batch=batch)
    if kind == "restorer_512":
        return standin.restorer(path, batch=batch)
    if kind == "codeformer_512":
        return standin.codeformer(path, batch=batch)
    if kind == "bisenet_19":
        return standin.bisenet(path, RNG.standard_normal((19, 3)), batch=batch)
    if kind in ("arcface_112", "ghost_arcface_112"):
        return standin.arcface(path, RNG.standard_normal((3, 512)), batch=batch)
    if kind == "embedding_converter":
        return standin.converter(path, np.eye(512))
    raise AssertionError(kind)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSWAP_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize("family", [f.name for f in FAMILIES])
def test_each_standin_routes_to_its_family(family, tmp_path):
    # named-only twins (GHOST: simswap_256's signature) route to their family only when it is named
    named = FAMILY_BY_NAME[family].named_only
    expect = family if named else None
    path = build(family, tmp_path / f"{family}.onnx")
    assert route(path, expect=expect).name == family
    if named:
        assert route(path).name != family
    if family != "embedding_converter":  # symbolic batch dimensions route alike
        assert route(build(family, tmp_path / f"{family}_n.onnx", batch="N"), expect=expect).name == family


def test_signature_reads_names_shapes_dtypes_and_the_emap(tmp_path):
    emap = RNG.standard_normal((512, 512)).astype(np.float32)
    path = standin.inswapper(tmp_path / "inswapper_128.onnx", emap)
    sig = read_signature(path)
    assert [(t.name, t.shape, t.dtype) for t in sig.inputs] == [("target", (1, 3, 128, 128), "float32"),
                                                                ("source", (1, 512), "float32")]
    assert [(t.name, t.shape) for t in sig.outputs] == [("output", (1, 3, 128, 128))]
    assert sig.last_initializer == (512, 512)
    np.testing.assert_array_equal(last_initializer(path), emap)


def test_a_128_swapper_without_emap_and_other_graphs_are_unknown_with_the_known_list(tmp_path):
    no_emap = standin._swapper(tmp_path / "no_emap.onnx", 128, 0.5, None, 1)
    for path in (no_emap, standin.unknown(tmp_path / "other.onnx")):
        with pytest.raises(ModelError) as err:
            route(path)
        assert err.value.exit_code == 4
        text = str(err.value)
        assert "signature vidswap does not know" in text and known_signatures() in text
        assert all(f.name in text for f in FAMILIES) and "\n" not in text


def test_expected_family_or_role_must_agree(tmp_path):
    path = standin.restorer(tmp_path / "gfpgan.onnx")
    assert route(path, expect="restorer").name == "restorer_512"
    with pytest.raises(ModelError, match="has the restorer_512 signature .restorer., not the swapper one expected"):
        route(path, expect="swapper")


def test_corrupt_or_missing_file_is_exit_4(tmp_path):
    bad = tmp_path / "inswapper_128.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 100)
    with pytest.raises(ModelError, match="not a readable ONNX model") as err:
        route(bad)
    assert err.value.exit_code == 4
    with pytest.raises(ModelError, match="does not exist"):
        route(tmp_path / "absent.onnx")


def test_manifest_has_learned_entries_with_role_family_licence_and_url():
    manifest = load_manifest()
    roles = {n: (s.role, s.family) for n, s in manifest.items() if s.family}
    assert roles["inswapper_128"] == ("swapper", "inswapper_128")
    assert roles["simswap_256"] == ("swapper", "simswap_256")
    assert roles["gfpgan_1.4"] == ("restorer", "restorer_512")
    assert roles["codeformer"] == ("restorer", "codeformer_512")
    assert roles["bisenet_resnet_34"] == ("parser", "bisenet_19")
    ins = manifest["inswapper_128"]
    assert not ins.commercial and ins.url.startswith("https://") and ins.sources == ()
    assert ins.sha256 == "e4a3f08c753cb72d04e10aa0f7dbe3deebbf39567d4ead6dce08e98aa49e16af"
    assert all(s.url for s in manifest.values() if s.family)


def test_add_checks_pinned_hash_then_signature(home, tmp_path):
    manifest = load_manifest()
    path = build("inswapper_128", tmp_path / "inswapper_128.onnx")
    with pytest.raises(ModelError, match="not the inswapper_128 model the manifest pins"):
        add_model(manifest, "inswapper_128", path)
    assert not (models_dir() / "inswapper_128.onnx").exists()
    # unpinned entry: any file of the right family goes in; another family is refused
    wrong = build("restorer_512", tmp_path / "simswap_256.onnx")
    with pytest.raises(ModelError, match="has the restorer_512 signature"):
        add_model(manifest, "simswap_256", wrong)
    right = build("simswap_256", tmp_path / "ok.onnx")
    cached = add_model(manifest, "simswap_256", right)
    assert cached == models_dir() / "simswap_256.onnx" and sha256_of(cached) == sha256_of(right)
    # a pinned entry whose pin matches the stand-in is accepted
    pinned = {"inswapper_128": dataclasses.replace(manifest["inswapper_128"], sha256=sha256_of(path))}
    assert add_model(pinned, "inswapper_128", path).is_file()


def test_every_pinned_learned_entry_refuses_other_bytes(home, tmp_path):
    """Entries pinned from a public source (inswapper READMEs, InsightFace, VisoMaster's models_data.py) refuse a
    file of the right family but other bytes, and the cache stays empty."""
    manifest = load_manifest()
    pinned = [n for n, s in manifest.items() if s.family and s.pinned]
    assert {"inswapper_128", "inswapper_128_fp16_visomaster", "arcface_w600k_r50", "gfpgan_1.4_visomaster",
            "gpen_bfr_512_visomaster", "bisenet_resnet_34_visomaster", "ghost_unet_2_block",
            "ghost_arcface_backbone"} <= set(pinned)
    # FaceFusion's copies of the same models stay addable (no public sha256 for them): the user vouches
    assert not any(manifest[n].pinned for n in ("inswapper_128_fp16", "gfpgan_1.4", "gpen_bfr_512",
                                                 "bisenet_resnet_34"))
    for name in pinned:
        path = build(manifest[name].family, tmp_path / f"{name}.onnx")
        with pytest.raises(ModelError, match=f"not the {name} model the manifest pins"):
            add_model(manifest, name, path)
    assert not models_dir().exists() or not any(models_dir().iterdir())


def test_user_model_checks_licence_then_presence_then_family(home, tmp_path):
    ctx = CoreContext()
    with pytest.raises(ConfigError) as err:
        ctx.user_model("simswap_256", "swapper")
    assert err.value.exit_code == 2
    assert "models.accept_noncommercial: [simswap_256]" in str(err.value) and "non-commercial" in str(err.value)
    ctx = CoreContext(accept_noncommercial=frozenset({"simswap_256"}))
    with pytest.raises(ModelError) as err:
        ctx.user_model("simswap_256", "swapper")
    assert err.value.exit_code == 4
    assert ("run: vidswap models add simswap_256 /path/to/simswap_256.onnx (download simswap_256.onnx from "
            "https://github.com/facefusion/facefusion-assets/releases/download/models-3.0.0/simswap_256.onnx)"
            ) in str(err.value)
    add_model(load_manifest(), "simswap_256", build("simswap_256", tmp_path / "s.onnx"))
    path, family = ctx.user_model("simswap_256", "swapper")
    assert family.name == "simswap_256" and family.size == 256 and path.parent == models_dir()
    with pytest.raises(ModelError, match="not the restorer one expected"):
        ctx.user_model("simswap_256", "restorer")


def test_cli_models_add_reports_hash_mismatch_with_exit_4(home, tmp_path):
    path = build("inswapper_128", tmp_path / "inswapper_128.onnx")
    result = CliRunner().invoke(main, ["models", "add", "inswapper_128", str(path)])
    assert result.exit_code == 4 and "sha256" in result.output
    result = CliRunner().invoke(main, ["models", "list"])
    assert result.exit_code == 0 and any(line.split()[:2] == ["inswapper_128", "swapper"]
                                         for line in result.output.splitlines())


def test_config_models_accept_noncommercial_reaches_the_core_context(tmp_path):
    from vidswap.config import load_config
    from vidswap.pipeline import job_core
    from vidswap.swap import register_core
    from vidswap.swap.base import PassthroughConfig, PassthroughCore
    from vidswap.swap.registry import unregister_core

    seen = []

    def build_probe(config, context):
        seen.append(context.accept_noncommercial)
        return PassthroughCore()

    register_core("probe_licence", build_probe, PassthroughConfig)
    try:
        shot = tmp_path / "shot.yaml"
        shot.write_text("input: clip.mp4\nsources: [a.jpg]\nswap: {core: probe_licence}\n"
                        "models: {accept_noncommercial: [inswapper_128, simswap_256]}\n")
        cfg = load_config(shot)
        assert cfg.models.accept_noncommercial == ("inswapper_128", "simswap_256")
        job_core(cfg, CoreContext())
        assert seen == [frozenset({"inswapper_128", "simswap_256"})]
    finally:
        unregister_core("probe_licence")
