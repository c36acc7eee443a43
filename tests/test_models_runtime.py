"""onnxruntime / LiteRT session helpers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from vidswap.errors import ModelError
from vidswap.models.registry import model_path
from vidswap.models.runtime import (TFLiteRunner, available_providers, default_threads, onnx_session,
                                    prepare_onnx, tflite_interpreter)


def test_prepare_onnx_strips_unused_inputs_and_batches():
    raw = onnx.load(str(model_path("sface")))
    prepared = onnx.load_from_string(prepare_onnx(model_path("sface"), dynamic_batch=True))
    assert len(raw.graph.input) > 100  # the int8 file lists its weights as inputs
    used = {i for n in prepared.graph.node for i in n.input}
    assert all(inp.name in used for inp in prepared.graph.input)
    sess = onnx_session(prepare_onnx(model_path("sface"), dynamic_batch=True), threads=1)
    x = np.random.default_rng(0).uniform(0, 255, (3, 3, 112, 112)).astype(np.float32)
    out = sess.run(None, {"data": x})[0]
    assert out.shape == (3, 128)
    one = sess.run(None, {"data": x[1:2]})[0]
    np.testing.assert_allclose(out[1], one[0], atol=1e-4)


def test_yunet_batch_reshapes():
    sess = onnx_session(prepare_onnx(model_path("yunet"), dynamic_batch=True, dynamic_spatial=True,
                                     batch_reshapes=True), threads=1)
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 96, 160)).astype(np.float32)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
    assert outs["cls_8"].shape == (2, 12 * 20, 1) and outs["kps_32"].shape == (2, 3 * 5, 10)
    single = sess.run(["bbox_16"], {"input": x[1:]})[0]
    np.testing.assert_allclose(outs["bbox_16"][1], single[0], atol=1e-4)


def test_providers_and_threads(monkeypatch):
    assert available_providers()[-1] == "CPUExecutionProvider"
    sess = onnx_session(model_path("yunet"), providers=["NoSuchProvider"], threads=1)
    assert sess.get_providers() == ["CPUExecutionProvider"]
    monkeypatch.setenv("VIDSWAP_THREADS", "3")
    assert default_threads() == 3


def test_bad_files_are_model_errors(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ModelError, match="junk.onnx"):
        onnx_session(junk)
    with pytest.raises(ModelError):
        prepare_onnx(junk)
    tfl = tmp_path / "junk.tflite"
    tfl.write_bytes(b"garbage" * 50)
    with pytest.raises(ModelError, match="junk.tflite"):
        tflite_interpreter(tfl)


def test_tflite_runner_batches_or_loops():
    rng = np.random.default_rng(0)
    mesh = TFLiteRunner.from_path(model_path("face_mesh"), num_threads=1)
    x = rng.uniform(0, 1, (3, 192, 192, 3)).astype(np.float32)
    pts, score = mesh(x)
    assert pts.shape == (3, 1, 1, 1404) and score.shape == (3, 1, 1, 1)
    np.testing.assert_allclose(mesh(x[2:3])[0][0], pts[2], atol=1e-4)
    iris = TFLiteRunner.from_path(model_path("iris"), num_threads=1)  # fixed batch 1: loops
    eyes = rng.uniform(0, 1, (2, 64, 64, 3)).astype(np.float32)
    contour, ring = iris(eyes)
    assert contour.shape == (2, 213) and ring.shape == (2, 15)
    np.testing.assert_allclose(iris(eyes[1:])[1][0], ring[1], atol=1e-4)
    assert [o.shape[0] for o in iris(np.zeros((0, 64, 64, 3), np.float32))] == [0, 0]
