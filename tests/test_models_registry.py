"""Model registry: list, fetch, verify, add, corrupt/missing files, InsightFace pack folders.

Everything that writes runs in a temporary ``$VIDSWAP_HOME`` (monkeypatched), fed with copies of the real model
files from the user's cache, so no test touches the network or the real cache.
"""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from vidswap.errors import EXIT_MODEL, InputError, ModelError, UsageError
from vidswap.models import registry
from vidswap.models.registry import (ModelSpec, add_model, fetch_models, list_models, load_manifest, model_path,
                                     verify_models)


@pytest.fixture(scope="module")
def manifest():
    return load_manifest()


@pytest.fixture(scope="module")
def real(manifest):
    """name -> real cached file (the default models, verified) before any HOME is patched."""
    return {name: model_path(name, manifest) for name in ("yunet", "iris", "arcface_mbf")}


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSWAP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(registry.INSIGHTFACE_ENV, raising=False)
    return tmp_path / "home"


def test_manifest_defaults_are_license_clean(manifest):
    assert {"yunet", "face_mesh", "iris", "mesh_topology", "sface"} <= set(manifest)
    for spec in manifest.values():
        # every fetched file is pinned; user-supplied learned models are pinned where a public source states a hash
        assert (len(spec.sha256) == 64 and spec.size > 0) or (not spec.sources and spec.family and spec.url)
        assert len(spec.sha256) in (0, 64)
        if spec.default:
            assert spec.commercial and spec.license.split("-")[0] in {"MIT", "Apache", "BSD"}


def test_list_models_rows(manifest, home, real):
    rows = list_models(manifest)
    assert [r.name for r in rows] == list(manifest)
    assert not any(r.cached for r in rows)  # empty temporary cache
    (home / "models").mkdir(parents=True)
    shutil.copy(real["yunet"], home / "models" / manifest["yunet"].file)
    row = {r.name: r for r in list_models(manifest)}["yunet"]
    assert row.cached and row.default and row.commercial and row.role == "detection"
    assert row["license"] == "MIT" and row["cached"] is True  # mapping access for the CLI


def test_missing_and_corrupt_model_is_model_error(manifest, home, real):
    with pytest.raises(ModelError, match="vidswap models fetch yunet") as err:
        model_path("yunet", manifest)
    assert err.value.exit_code == EXIT_MODEL
    (home / "models").mkdir(parents=True)
    data = bytearray(real["yunet"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    (home / "models" / manifest["yunet"].file).write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupt.*vidswap models fetch yunet"):
        model_path("yunet", manifest)
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match="unknown model"):
        model_path("nope", manifest)


def test_corrupt_model_fails_the_detector_builder(manifest, home, real):
    """What the analysis stage sees: building from model_path on a corrupt cache raises ModelError."""
    from vidswap.faces.detect import YuNetDetector

    (home / "models").mkdir(parents=True)
    (home / "models" / manifest["yunet"].file).write_bytes(real["yunet"].read_bytes()[:1000])
    with pytest.raises(ModelError):
        YuNetDetector.from_path(model_path("yunet", manifest))
    with pytest.raises(ModelError):  # even when verification is skipped, the runtime reports a ModelError
        YuNetDetector.from_path(model_path("yunet", manifest, verify=False))


def test_verify_models_statuses(manifest, home, real):
    models = home / "models"
    models.mkdir(parents=True)
    shutil.copy(real["yunet"], models / manifest["yunet"].file)
    (models / manifest["iris"].file).write_bytes(b"not a model")
    status = dict(verify_models(manifest))
    assert set(status) == set(manifest)
    assert status["yunet"] == "ok" and status["iris"] == "corrupt" and status["sface"] == "missing"


def test_add_model_checks_sha_and_copies_atomically(manifest, home, real, tmp_path):
    path = add_model(manifest, "iris", real["iris"])
    assert path == home / "models" / manifest["iris"].file
    assert path.read_bytes() == real["iris"].read_bytes()
    assert dict(verify_models(manifest))["iris"] == "ok"
    assert model_path("iris", manifest) == path
    wrong = tmp_path / "wrong.tflite"
    wrong.write_bytes(b"x" * 100)
    with pytest.raises(ModelError, match="sha256"):
        add_model(manifest, "yunet", wrong)
    assert not (home / "models" / manifest["yunet"].file).exists()
    assert not list((home / "models").glob(".*part"))  # no temporary left behind
    with pytest.raises(InputError):
        add_model(manifest, "yunet", tmp_path / "missing.onnx")
    with pytest.raises(UsageError):
        add_model(manifest, "no_such_model", real["iris"])


def test_add_unpinned_user_model(manifest, home, tmp_path):
    spec = dataclasses.replace(manifest["arcface_mbf"], name="my_pack", file="w600k_r50.onnx", sha256="",
                               sources=())
    custom = {"my_pack": spec}
    f = tmp_path / "w600k_r50.onnx"
    f.write_bytes(b"user weights")
    assert add_model(custom, "my_pack", f).read_bytes() == b"user weights"
    assert model_path("my_pack", custom).name == "w600k_r50.onnx"
    assert dict(verify_models(custom)) == {"my_pack": "ok"}


def test_fetch_models_from_a_local_source(manifest, home, real):
    """fetch_models with a file: source (no network): verified copy in the cache, reused on the second call."""
    spec = dataclasses.replace(manifest["yunet"], sources=(f"file:{real['yunet']}",))
    custom = {"yunet": spec, "arcface_mbf": manifest["arcface_mbf"]}  # the second: non-default, not fetched
    paths = fetch_models(custom, None, defaults=True)
    assert paths == [home / "models" / spec.file]
    assert dict(verify_models(custom)) == {"yunet": "ok", "arcface_mbf": "missing"}
    mtime = paths[0].stat().st_mtime_ns
    assert fetch_models(custom, ["yunet"], defaults=True) == paths  # named + default: once, reused
    assert paths[0].stat().st_mtime_ns == mtime


def test_fetch_models_arguments(manifest, home, real):
    spec = dataclasses.replace(manifest["yunet"], sources=(f"file:{real['yunet']}",))
    custom = {"yunet": spec}
    assert fetch_models(custom, ["yunet"], defaults=False) == [home / "models" / spec.file]
    with pytest.raises(UsageError):
        fetch_models(custom, None, defaults=False)
    with pytest.raises(UsageError, match="unknown"):
        fetch_models(custom, ["nope"], defaults=False)
    bad = {"yunet": dataclasses.replace(spec, sha256="0" * 64)}
    with pytest.raises(ModelError, match="could not fetch"):
        fetch_models(bad, ["yunet"], defaults=False)
    user = {"u": dataclasses.replace(spec, name="u", sources=())}
    with pytest.raises(ModelError, match="vidswap models add u"):
        fetch_models(user, ["u"], defaults=False)


def test_insightface_pack_folder(manifest, home, real, tmp_path, monkeypatch):
    """Non-default, non-commercial entries load from a user's InsightFace folder (arg or env var)."""
    pack = tmp_path / "insightface" / "models" / "buffalo_s"
    pack.mkdir(parents=True)
    shutil.copy(real["arcface_mbf"], pack / "w600k_mbf.onnx")
    root = tmp_path / "insightface" / "models"
    assert model_path("arcface_mbf", manifest, insightface_dir=root) == pack / "w600k_mbf.onnx"
    with pytest.raises(ModelError, match="InsightFace folder"):
        model_path("scrfd_500m", manifest, insightface_dir=root)
    monkeypatch.setenv(registry.INSIGHTFACE_ENV, str(root))
    assert model_path("arcface_mbf", manifest) == pack / "w600k_mbf.onnx"
    assert {r.name: r.cached for r in list_models(manifest)}["arcface_mbf"]
    assert dict(verify_models(manifest))["arcface_mbf"] == "ok"
    # default (license-clean) entries are never taken from a pack folder
    shutil.copy(real["yunet"], pack / manifest["yunet"].file)
    with pytest.raises(ModelError):
        model_path("yunet", manifest)
    # pack file names other than the manifest's: pack_files; a pinned sha256 is still checked
    (pack / "det_500m.onnx").write_bytes(b"not scrfd")
    aliased = {"scrfd_500m": dataclasses.replace(manifest["scrfd_500m"], pack_files=("det_500m.onnx",))}
    with pytest.raises(ModelError, match="sha256"):
        model_path("scrfd_500m", aliased)
    unpinned = {"scrfd_500m": dataclasses.replace(aliased["scrfd_500m"], sha256="")}
    assert model_path("scrfd_500m", unpinned) == pack / "det_500m.onnx"


def test_manifest_errors(tmp_path):
    bad = tmp_path / "models.yaml"
    bad.write_text("models:\n  x:\n    role: detection\n    colour: red\n")
    with pytest.raises(ModelError, match="unknown keys"):
        load_manifest(bad)
    bad.write_text("models: [\n")
    with pytest.raises(ModelError, match="manifest"):
        load_manifest(bad)
    ok = tmp_path / "ok.yaml"
    ok.write_text("models:\n  m:\n    role: identity\n    file: m.onnx\n    size: 1\n    license: MIT\n"
                  "    commercial: true\n    default: false\n    io: x\n    pack_files: [a.onnx]\n")
    spec = load_manifest(ok)["m"]
    assert isinstance(spec, ModelSpec) and spec.sha256 == "" and spec.pack_files == ("a.onnx",)
    assert spec.sources == () and not spec.pinned
