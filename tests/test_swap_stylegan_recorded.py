"""The shared reader of StyleGAN-family checkpoints' recorded models (vidswap/swap/stylegan/recorded.py): exact
tensors land in the named part, and every failure is a ModelError naming the method and the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vidswap.errors import ConfigError, ModelError
from vidswap.swap.stylegan.generator import StyleGANConfig
from vidswap.swap.stylegan.recorded import build_recorded, load_prefixed, recorded_configs, recorded_generator

PATH = Path("run/last.safetensors")


def test_load_prefixed_takes_only_its_prefix_and_names_the_method_on_a_mismatch():
    part = torch.nn.Linear(2, 3)
    w, b = torch.arange(6.0).reshape(3, 2), torch.tensor([1.0, 2.0, 3.0])
    load_prefixed(part, {"E.weight": w, "E.bias": b, "F.weight": torch.zeros(1)}, "E", PATH, "E4S")
    assert torch.equal(part.weight, w) and torch.equal(part.bias, b)
    with pytest.raises(ModelError, match=r"^MFIM checkpoint run/last.safetensors does not fit its recorded "):
        load_prefixed(part, {"E.weight": torch.zeros(4, 2), "E.bias": b}, "E", PATH, "MFIM")
    with pytest.raises(ModelError, match="MegaFS checkpoint"):
        load_prefixed(part, {"E.weight": w}, "E", PATH, "MegaFS")  # a missing tensor


def test_recorded_configs_generator_and_model():
    class Cfg:
        @staticmethod
        def from_json(text):
            if text != "{}":
                raise ConfigError("bad")
            return "cfg"

    gcfg = StyleGANConfig(resolution=32, z_dim=8, w_dim=8, mapping_layers=1, channel_base=64, channel_max=8)
    meta = {"config": "{}", "stylegan_config": json.dumps(gcfg.to_dict())}
    assert recorded_configs(meta, PATH, "IDATT", Cfg) == ("cfg", gcfg)
    with pytest.raises(ModelError, match="IDATT checkpoint run/last.safetensors has no readable model config"):
        recorded_configs({**meta, "config": "[]"}, PATH, "IDATT", Cfg)
    with pytest.raises(ModelError, match="has no readable model config"):
        recorded_configs({"config": "{}"}, PATH, "IDATT", Cfg)
    assert recorded_generator(gcfg, PATH, None).cfg == gcfg
    with pytest.raises(ModelError, match="last.safetensors: generator is 32x32, this core needs 64x64"):
        recorded_generator(gcfg, PATH, 64)

    def refuse():
        raise ConfigError("id_from 128 is past the generator")

    assert build_recorded("MFIM", PATH, lambda: 7) == 7
    with pytest.raises(ModelError, match="MFIM checkpoint run/last.safetensors: id_from 128 is past"):
        build_recorded("MFIM", PATH, refuse)
