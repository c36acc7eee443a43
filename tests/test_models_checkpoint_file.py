"""The shared tagged-safetensors read (vidswap.models.checkpoint_file): tensors, metadata, the three errors."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from vidswap.errors import ModelError
from vidswap.models.checkpoint_file import load_prefixed_module, read_tagged_checkpoint


def read(path):
    return read_tagged_checkpoint(path, ("a.train", "a.infer"), "A checkpoint", "A", "`make a`")


def test_reads_tensors_and_metadata_of_an_accepted_format(tmp_path):
    save_file({"x": torch.arange(3.0)}, str(tmp_path / "ok.safetensors"), metadata={"format": "a.infer", "k": "v"})
    tensors, meta = read(tmp_path / "ok.safetensors")
    assert torch.equal(tensors["x"], torch.arange(3.0)) and meta == {"format": "a.infer", "k": "v"}


def test_missing_corrupt_and_foreign_files_are_model_errors_with_exact_messages(tmp_path):
    with pytest.raises(ModelError, match=r"^A checkpoint .*nope.safetensors does not exist$") as exc:
        read(tmp_path / "nope.safetensors")
    assert exc.value.exit_code == 4
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match=r"^A checkpoint .*bad.safetensors is unreadable \(corrupt, truncated or "
                                         r"not safetensors\): "):
        read(tmp_path / "bad.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"), metadata={"format": "b.train"})
    with pytest.raises(ModelError) as exc:
        read(tmp_path / "other.safetensors")
    assert str(exc.value) == (f"{tmp_path / 'other.safetensors'} is not a A checkpoint (format 'b.train'); give a "
                              f"file written by `make a`")


def test_load_prefixed_module_takes_only_its_prefix_and_names_a_mismatch():
    lin = nn.Linear(2, 1)
    tensors = {"G.weight": torch.tensor([[1.0, 2.0]]), "G.bias": torch.tensor([3.0]), "D.weight": torch.zeros(5)}
    load_prefixed_module(lin, tensors, "G", "unused")
    assert lin.weight.tolist() == [[1.0, 2.0]] and lin.bias.tolist() == [3.0]
    with pytest.raises(ModelError, match=r"^ckpt x does not fit \(Error\(s\) in loading state_dict"):
        load_prefixed_module(nn.Linear(3, 1), tensors, "G", "ckpt x does not fit")
