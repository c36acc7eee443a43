"""The BiSeNet-class face parser (``bisenet_19``) feeding a learned swapper's alpha, on a stand-in whose 1x1
convolution makes the class a function of colour: red -> skin (1), green -> glasses (6), blue -> hair (17).
The swap keeps only the configured classes; hair (and, by default, glasses) stay the plate's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import onnx_standins as standin
from test_swap_inswapper import batch_of
from vidswap.errors import ConfigError
from vidswap.models.registry import add_model
from vidswap.swap import build_core
from vidswap.swap.learned import LearnedIdentity
from vidswap.swap.registry import CoreContext

NAMES = ("inswapper_128", "arcface_w600k_r50", "bisenet_resnet_34")


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSWAP_HOME", str(tmp_path / "home"))
    man = standin.inswapper_manifest(tmp_path, NAMES)
    weight = np.zeros((19, 3))
    weight[1], weight[6], weight[17] = (1, 0, 0), (0, 1, 0), (0, 0, 1)
    add_model(man, "bisenet_resnet_34", standin.bisenet(tmp_path / "b.onnx", weight))
    return man


def core_with(manifest, **config):
    return build_core("inswapper", config, CoreContext(models=manifest, accept_noncommercial=frozenset(NAMES)))


def three_bands() -> torch.Tensor:
    """(1, 3, 128, 128): red rows 0-41 (skin), green rows 42-83 (glasses), blue rows 84-127 (hair)."""
    crop = torch.zeros(1, 3, 128, 128)
    crop[:, 0, :42], crop[:, 1, 42:84], crop[:, 2, 84:] = 1.0, 1.0, 1.0
    return crop


@pytest.mark.parametrize("keep, kept_bands", [(None, (True, False, False)),
                                              (("skin", "glasses"), (True, True, False))])
def test_parser_classes_decide_where_the_swap_may_go(manifest, keep, kept_bands):
    config = {"parser": "bisenet_resnet_34"} | ({"parser_keep": keep} if keep else {})
    core = core_with(manifest, **config)
    ident = LearnedIdentity(vector=torch.zeros(512), arcface=torch.zeros(512))
    alpha = core.swap(batch_of(three_bands()), ident).alpha[0, 0]
    labels = core.parser.classes(three_bands())[0]
    assert labels[:160].unique().tolist() == [1] and labels[176:328].unique().tolist() == [6]
    assert labels[344:].unique().tolist() == [17]
    bands = [(2, 38), (46, 80), (88, 126)]  # rows away from the band edges and the 2-px alpha border
    for (r0, r1), kept in zip(bands, kept_bands):
        values = alpha[r0:r1, 2:126]
        assert bool((values == (1.0 if kept else 0.0)).all()), (r0, r1, kept, values.min(), values.max())


def test_unknown_parser_class_is_a_config_error(manifest):
    with pytest.raises(ConfigError, match="unknown parser classes \\['beard'\\]"):
        core_with(manifest, parser="bisenet_resnet_34", parser_keep=("skin", "beard"))
