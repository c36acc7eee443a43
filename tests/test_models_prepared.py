"""models.prepared: a prepared ONNX graph is written once and read back by later runs (checked by its sha256),
without importing the onnx package; damaged entries are prepared again; an unwritable cache only costs time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from vidswap.errors import ModelError
from vidswap.models import prepared
from vidswap.models.prepared import prepared_key, prepared_onnx
from vidswap.models.runtime import onnx_session, prepare_onnx

ROOT = Path(__file__).resolve().parents[1]


def tiny_model() -> bytes:
    """y = x + 1 over (1, 3) float, with an input no node reads (as the int8 SFace file has 29)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    unused = helper.make_tensor_value_info("unused", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "tiny", [x, unused], [y], [one])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_the_first_run_writes_the_prepared_graph_and_later_runs_read_it(tmp_path, monkeypatch):
    model = tiny_model()
    first = prepared_onnx(model, tmp_path, dynamic_batch=True)
    assert first == prepare_onnx(model, dynamic_batch=True)
    key = prepared_key(model, dynamic_batch=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{key}.onnx", f"{key}.sha256"]

    def refuse(*args, **kwargs):
        raise AssertionError("prepared again")

    monkeypatch.setattr(prepared, "prepare_onnx", refuse)
    assert prepared_onnx(model, tmp_path, dynamic_batch=True) == first
    session = onnx_session(first, threads=1)  # the batch is symbolic and the unused input gone
    assert [i.name for i in session.get_inputs()] == ["x"]
    out = session.run(None, {"x": np.zeros((4, 3), np.float32)})[0]
    assert out.shape == (4, 3) and np.all(out == 1.0)


def test_keys_follow_the_model_the_options_and_the_revision(monkeypatch):
    model = tiny_model()
    key = prepared_key(model, dynamic_batch=True)
    assert key == prepared_key(model, dynamic_batch=1)
    assert key != prepared_key(model, dynamic_batch=True, dynamic_spatial=True)
    assert key != prepared_key(model + b" ", dynamic_batch=True)
    monkeypatch.setattr(prepared, "PREPARE_REVISION", prepared.PREPARE_REVISION + 1)
    assert key != prepared_key(model, dynamic_batch=True)


def test_a_damaged_or_half_written_entry_is_prepared_again(tmp_path):
    model = tiny_model()
    good = prepared_onnx(model, tmp_path, dynamic_batch=True)
    key = prepared_key(model, dynamic_batch=True)
    graph, record = tmp_path / f"{key}.onnx", tmp_path / f"{key}.sha256"
    graph.write_bytes(good[:-7] + b"garbage")  # changed bytes: the recorded sha256 no longer matches
    assert prepared_onnx(model, tmp_path, dynamic_batch=True) == good
    assert graph.read_bytes() == good
    record.unlink()  # a graph without its record (the write stopped between the two) is not read
    graph.write_bytes(b"not a graph")
    assert prepared_onnx(model, tmp_path, dynamic_batch=True) == good and record.exists()
    record.write_bytes(b"\xff\xfe")  # an unreadable record
    assert prepared_onnx(model, tmp_path, dynamic_batch=True) == good


def test_an_unwritable_cache_still_gives_the_prepared_graph(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    model = tiny_model()
    assert prepared_onnx(model, blocker / "prepared", dynamic_batch=True) == prepare_onnx(model, dynamic_batch=True)
    assert blocker.is_file()


def test_a_bad_model_is_a_model_error_and_nothing_is_written(tmp_path):
    with pytest.raises(ModelError):
        prepared_onnx(b"\x00garbage" * 50, tmp_path / "cache", dynamic_batch=True)
    assert not (tmp_path / "cache").exists()


def test_a_later_process_does_not_import_onnx(tmp_path):
    model = tmp_path / "tiny.onnx"
    model.write_bytes(tiny_model())
    cache = tmp_path / "cache"
    code = ("import sys; from pathlib import Path; from vidswap.models.prepared import prepared_onnx; "
            f"prepared_onnx(Path({str(model)!r}), Path({str(cache)!r}), dynamic_batch=True); "
            "print('onnx' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
            for _ in range(2)]
    assert [r.stdout.strip() for r in runs] == ["True", "False"]
    assert onnx.load_from_string((cache / f"{prepared_key(model.read_bytes(), dynamic_batch=True)}.onnx")
                                 .read_bytes()).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
