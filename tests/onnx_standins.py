"""Stand-in ONNX files with exactly the graph signatures of the real learned models (input and output names,
shapes, dtypes, the emap initializer last) and a behaviour simple enough to check every step exactly.

No real weights exist here (the files are user-supplied and mostly non-commercial), so tests build these:

* ``inswapper(path, emap, gain)``: ``target`` (B, 3, 128, 128) + ``source`` (B, 512) -> ``output`` =
  clip(target + gain * source[:, :3] (per channel), 0, 1); the last initializer is ``emap`` (512, 512).
* ``simswap(path, size, gain)``: the same at 256 / 512 with no emap.
* ``restorer(path, scale)``: ``input`` (1, 3, 512, 512) -> ``output`` = scale * input; ``codeformer``: x * weight.
* ``bisenet(path, weight)``: (1, 3, 512, 512) -> (1, 19, 512, 512): a 1x1 convolution with ``weight`` (19, 3).
* ``arcface(path, weight)``: (1, 3, 112, 112) -> (1, 512): the per-channel mean of the input times ``weight`` (3, 512).
* ``converter(path, matrix)``: (1, 512) -> (1, 512): x @ matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


def _value(name: str, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, list(shape))


def _save(path: Path, nodes, inputs, outputs, initializers) -> Path:
    graph = helper.make_graph(nodes, "standin", inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def _init(name: str, array) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(array), name)


def _swapper(path: Path, size: int, gain: float, emap: np.ndarray | None, batch: int | str) -> Path:
    nodes = [
        helper.make_node("Slice", ["source", "starts", "ends", "axes"], ["rgb"]),
        helper.make_node("Reshape", ["rgb", "shape4"], ["rgb4"]),
        helper.make_node("Mul", ["rgb4", "gain"], ["shift"]),
        helper.make_node("Add", ["target", "shift"], ["moved"]),
        helper.make_node("Clip", ["moved", "lo", "hi"], ["output"]),
    ]
    inits = [_init("starts", np.array([0], np.int64)), _init("ends", np.array([3], np.int64)),
             _init("axes", np.array([1], np.int64)), _init("shape4", np.array([-1, 3, 1, 1], np.int64)),
             _init("gain", np.float32(gain)), _init("lo", np.float32(0.0)), _init("hi", np.float32(1.0))]
    if emap is not None:
        inits.append(_init("emap", emap.astype(np.float32)))  # last, as in inswapper_128.onnx
    return _save(path, nodes, [_value("target", (batch, 3, size, size)), _value("source", (batch, 512))],
                 [_value("output", (batch, 3, size, size))], inits)


def inswapper(path: Path, emap: np.ndarray, gain: float = 0.5, batch: int | str = 1) -> Path:
    return _swapper(path, 128, gain, emap, batch)


def simswap(path: Path, size: int = 256, gain: float = 0.5, batch: int | str = 1) -> Path:
    return _swapper(path, size, gain, None, batch)


def restorer(path: Path, scale: float = 0.5, batch: int | str = 1) -> Path:
    nodes = [helper.make_node("Mul", ["input", "scale"], ["output"])]
    return _save(path, nodes, [_value("input", (batch, 3, 512, 512))], [_value("output", (batch, 3, 512, 512))],
                 [_init("scale", np.float32(scale))])


def codeformer(path: Path, batch: int | str = 1) -> Path:
    nodes = [helper.make_node("Cast", ["weight"], ["w32"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["input", "w32"], ["output"])]
    return _save(path, nodes, [_value("input", (batch, 3, 512, 512)), _value("weight", (1,), TensorProto.DOUBLE)],
                 [_value("output", (batch, 3, 512, 512))], [])


def bisenet(path: Path, weight: np.ndarray, batch: int | str = 1) -> Path:
    nodes = [helper.make_node("Conv", ["input", "w"], ["output"])]
    w = weight.astype(np.float32).reshape(19, 3, 1, 1)
    return _save(path, nodes, [_value("input", (batch, 3, 512, 512))], [_value("output", (batch, 19, 512, 512))],
                 [_init("w", w)])


def arcface(path: Path, weight: np.ndarray, batch: int | str = 1) -> Path:
    nodes = [helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["683"])]
    return _save(path, nodes, [_value("input.1", (batch, 3, 112, 112))], [_value("683", (batch, 512))],
                 [_init("w", weight.astype(np.float32))])


def converter(path: Path, matrix: np.ndarray) -> Path:
    nodes = [helper.make_node("MatMul", ["input", "m"], ["output"])]
    return _save(path, nodes, [_value("input", (1, 512))], [_value("output", (1, 512))],
                 [_init("m", matrix.astype(np.float32))])


def unknown(path: Path) -> Path:
    """A graph no family has: (1, 3, 64, 64) -> (1, 10)."""
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("MatMul", ["f", "w"], ["y"])]
    return _save(path, nodes, [_value("x", (1, 3, 64, 64))], [_value("y", (1, 10))],
                 [_init("w", np.ones((3, 10), np.float32))])
