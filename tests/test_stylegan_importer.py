"""StyleGAN checkpoint import: a test-built pickle with NVIDIA's persistent-object structure round-trips; pickles
that would run code are refused before anything runs; corrupt and foreign files get clear errors (exit 4)."""

import os
import pickle
import sys
import types
from collections import OrderedDict

import pytest
import torch
from click.testing import CliRunner

from vidswap.errors import EXIT_MODEL, ModelError
from vidswap.swap.stylegan import StyleGAN2Generator, StyleGANConfig
from vidswap.swap.stylegan.importer import (
    UnsafeCheckpointError,
    import_nvidia_pickle,
    load_generator,
    save_generator,
)

CFG = StyleGANConfig(resolution=32, z_dim=8, w_dim=8, mapping_layers=2, channel_base=256, channel_max=16)


@pytest.fixture
def nvidia_modules(monkeypatch):
    """Fake ``torch_utils.persistence`` and ``dnnlib.util`` so pickle writes NVIDIA's global names."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # what NVIDIA's hook is called; never called by the importer
        raise AssertionError("the importer must not call the checkpoint's own reconstruct hook")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    util.EasyDict = EasyDict
    for name, mod in {"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                      "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return persistence, util


class Persistent:
    """Pickles like an object of a ``@persistence.persistent_class``: the hook, class source, name and __dict__."""

    def __init__(self, hook, class_name, state, module_src):
        self.hook, self.meta = hook, dict(type="class", version=6, module_src=module_src, class_name=class_name,
                                          state=state)

    def __reduce__(self):
        return self.hook, (self.meta,)


def as_nvidia(module, name, hook, util, module_src):
    """Mirror a torch module as NVIDIA's pickled form (state = the module's __dict__ essentials)."""
    state = {
        "training": False,
        "_parameters": OrderedDict((k, torch.nn.Parameter(v.detach().clone())) for k, v in module._parameters.items()),
        "_buffers": OrderedDict((k, v.clone()) for k, v in module._buffers.items()),
        "_non_persistent_buffers_set": set(),
        "_forward_hooks": OrderedDict(),
        "_modules": OrderedDict((k, as_nvidia(v, type(v).__name__, hook, util, module_src))
                                for k, v in module._modules.items()),
        "init_kwargs": util.EasyDict(channels=3),
    }
    for attr in ("bias_gain", "conv_clamp", "resolution"):
        if hasattr(module, attr):
            state[attr] = getattr(module, attr)
    return Persistent(hook, name, state, module_src)


def reference_generator(seed=3):
    torch.manual_seed(seed)
    gen = StyleGAN2Generator(CFG).eval()
    with torch.no_grad():
        for name, p in gen.named_parameters():
            if name.endswith(("noise_strength", "bias")):
                p.uniform_(-0.3, 0.3)
        gen.mapping.w_avg.normal_()
    return gen


def write_snapshot(path, gen, nvidia_modules, protocol, marker, drop=()):
    persistence, util = nvidia_modules
    src = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('class source ran')\n"
    g = as_nvidia(gen, "Generator", persistence._reconstruct_persistent_obj, util, src)
    for dotted in drop:
        parent, leaf = dotted.rsplit(".", 1)
        node = g
        for part in parent.split("."):
            node = node.meta["state"]["_modules"][part]
        node.meta["state"]["_parameters"].pop(leaf)
    snapshot = {"G": g, "D": None, "G_ema": g, "augment_pipe": None,
                "training_set_kwargs": util.EasyDict(resolution=CFG.resolution)}
    path.write_bytes(pickle.dumps(snapshot, protocol=protocol))
    return path


def outputs(gen):
    torch.manual_seed(11)
    z = torch.randn(2, CFG.z_dim)
    with torch.no_grad():
        return gen(z, psi=0.7, noise_mode="const")


@pytest.mark.parametrize("protocol", [2, 4])
def test_nvidia_structured_pickle_round_trips(tmp_path, nvidia_modules, protocol):
    marker = tmp_path / "ran.txt"
    gen = reference_generator()
    pkl = write_snapshot(tmp_path / "snap.pkl", gen, nvidia_modules, protocol, marker)
    imported = import_nvidia_pickle(pkl)
    assert not marker.exists(), "the pickled class source was executed"
    assert imported.cfg == CFG
    assert torch.equal(outputs(imported), outputs(gen))
    st = save_generator(imported, tmp_path / "g.safetensors")
    again = load_generator(st, resolution=32)
    assert again.cfg == CFG and torch.equal(outputs(again), outputs(gen))
    assert not (tmp_path / "g.safetensors.partial").exists()


class RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class EvalsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').write('x')",)


@pytest.mark.parametrize("payload", [RunsCommand, EvalsCode])
def test_malicious_pickle_is_refused_and_not_run(tmp_path, payload):
    marker = tmp_path / "pwned"
    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"G_ema": payload(marker)}))
    with pytest.raises(UnsafeCheckpointError, match=r"refused: the pickle asks for (posix\.system|builtins\.eval)"):
        import_nvidia_pickle(pkl)
    assert not marker.exists()
    assert UnsafeCheckpointError.exit_code == EXIT_MODEL


def test_corrupt_and_foreign_files(tmp_path, nvidia_modules):
    good = write_snapshot(tmp_path / "snap.pkl", reference_generator(), nvidia_modules, 4, tmp_path / "m")
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        import_nvidia_pickle(cut)
    listing = tmp_path / "list.pkl"
    listing.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ModelError, match="expected a dict with 'G_ema'"):
        import_nvidia_pickle(listing)
    with pytest.raises(ModelError, match=r"no network 'G_ema' in the snapshot"):
        listing.write_bytes(pickle.dumps({"G": None}))
        import_nvidia_pickle(listing)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_generator(junk)


def test_wrong_architecture_and_resolution(tmp_path, nvidia_modules):
    gen = reference_generator()
    pkl = write_snapshot(tmp_path / "snap.pkl", gen, nvidia_modules, 4, tmp_path / "m",
                         drop=["synthesis.b16.conv0.weight"])
    with pytest.raises(ModelError, match=r"not the StyleGAN2 'skip' generator .*missing synthesis\.b16\.conv0\.weight"):
        import_nvidia_pickle(pkl)
    st = save_generator(gen, tmp_path / "g.safetensors")
    with pytest.raises(ModelError, match="generator is 32x32, this core needs 256x256"):
        load_generator(st, resolution=256)
    from safetensors.torch import save_file
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(ModelError, match="not a vidswap StyleGAN2 checkpoint"):
        load_generator(other)


def test_convert_command(tmp_path, nvidia_modules):
    from vidswap.cli import main
    gen = reference_generator()
    pkl = write_snapshot(tmp_path / "snap.pkl", gen, nvidia_modules, 4, tmp_path / "m")
    out = tmp_path / "ffhq.safetensors"
    result = CliRunner().invoke(main, ["models", "convert-stylegan", str(pkl), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "32x32" in result.output and "8 W+ codes" in result.output
    assert torch.equal(outputs(load_generator(out)), outputs(gen))
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": RunsCommand(tmp_path / "pwned")}))
    bad_out = tmp_path / "evil.safetensors"
    result = CliRunner().invoke(main, ["models", "convert-stylegan", str(evil), "-o", str(bad_out)])
    assert result.exit_code == EXIT_MODEL
    assert "refused" in result.output and not bad_out.exists() and not (tmp_path / "pwned").exists()
