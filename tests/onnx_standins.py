"""Stand-in ONNX files with exactly the graph signatures of the real learned models (input and output names,
shapes, dtypes, the emap initializer last) and a behaviour simple enough to check every step exactly.

No real weights exist here (the files are user-supplied and mostly non-commercial), so tests build these:

* ``inswapper(path, emap, gain)``: ``target`` (B, 3, 128, 128) + ``source`` (B, 512) -> ``output`` =
  clip(target + gain * source[:, :3] (per channel), 0, 1); the last initializer is ``emap`` (512, 512).
* ``conv_swapper(path, weight, bias)``: inswapper's signature, output = clip(conv(target), 0, 1) (a known spatial
  function at 128 px: colour transforms, blurs, smooth edits; pixel boost's measurements).
* ``simswap(path, size, gain)``: the same at 256 / 512 with no emap.
* ``hyperswap(path, gain)``: HyperSwap's signature (``source``, ``target`` -> ``output``, ``mask``) at 256, in
  [-1, 1]: output = clip(target + gain * source[:, :3], -1, 1).
* ``ghost(path, gain)``: simswap_256's signature with GHOST's output name ``781``, in [-1, 1]:
  output = clip(target + gain * source[:, :3], -1, 1).
* ``restorer(path, scale)``: ``input`` (1, 3, 512, 512) -> ``output`` = scale * input; ``codeformer``: x * weight.
* ``bisenet(path, weight)``: (1, 3, 512, 512) -> (1, 19, 512, 512): a 1x1 convolution with ``weight`` (19, 3).
* ``arcface(path, weight)``: (1, 3, 112, 112) -> (1, 512): the per-channel mean of the input times ``weight`` (3, 512).
* ``converter(path, matrix)``: (1, 512) -> (1, 512): x @ matrix.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vidswap.models.registry import add_model, load_manifest, models_dir

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


def _shift_by_source(gain: float, lo: float, hi: float, ftype=np.float32, out: str = "output") -> tuple[list, list]:
    """Nodes and initializers of ``out = clip(target + gain * source[:, :3] (per channel), lo, hi)``."""
    nodes = [
        helper.make_node("Slice", ["source", "starts", "ends", "axes"], ["rgb"]),
        helper.make_node("Reshape", ["rgb", "shape4"], ["rgb4"]),
        helper.make_node("Mul", ["rgb4", "gain"], ["shift"]),
        helper.make_node("Add", ["target", "shift"], ["moved"]),
        helper.make_node("Clip", ["moved", "lo", "hi"], [out]),
    ]
    inits = [_init("starts", np.array([0], np.int64)), _init("ends", np.array([3], np.int64)),
             _init("axes", np.array([1], np.int64)), _init("shape4", np.array([-1, 3, 1, 1], np.int64)),
             _init("gain", ftype(gain)), _init("lo", ftype(lo)), _init("hi", ftype(hi))]
    return nodes, inits


def _swapper(path: Path, size: int, gain: float, emap: np.ndarray | None, batch: int | str,
             fp16: bool = False) -> Path:
    elem, ftype = (TensorProto.FLOAT16, np.float16) if fp16 else (TensorProto.FLOAT, np.float32)
    nodes, inits = _shift_by_source(gain, 0.0, 1.0, ftype)
    if emap is not None:
        inits.append(_init("emap", emap.astype(ftype)))  # last, as in inswapper_128.onnx
    return _save(path, nodes, [_value("target", (batch, 3, size, size), elem), _value("source", (batch, 512), elem)],
                 [_value("output", (batch, 3, size, size), elem)], inits)


def inswapper(path: Path, emap: np.ndarray, gain: float = 0.5, batch: int | str = 1, fp16: bool = False) -> Path:
    """inswapper_128's signature; ``fp16``: half-precision inputs, outputs and weights (inswapper_128_fp16)."""
    return _swapper(path, 128, gain, emap, batch, fp16)


def conv_swapper(path: Path, weight: np.ndarray, bias: np.ndarray, size: int = 128,
                 emap: np.ndarray | None = None) -> Path:
    """A swapper with inswapper's signature at ``size`` (the emap last when given) whose output is a known spatial
    function of the target: clip(conv(reflect-padded target, ``weight`` (3, 3, K, K), ``bias`` (3,)), 0, 1), K odd;
    the source is read (times 0) so the graph keeps both inputs."""
    pad = weight.shape[-1] // 2
    nodes = [
        helper.make_node("Pad", ["target", "pads"], ["padded"], mode="reflect"),
        helper.make_node("Conv", ["padded", "w", "bias"], ["filtered"]),
        helper.make_node("ReduceSum", ["source", "axes"], ["total"], keepdims=1),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Reshape", ["nothing", "shape4"], ["nothing4"]),
        helper.make_node("Add", ["filtered", "nothing4"], ["moved"]),
        helper.make_node("Clip", ["moved", "lo", "hi"], ["output"]),
    ]
    inits = [_init("pads", np.array([0, 0, pad, pad, 0, 0, pad, pad], np.int64)),
             _init("w", weight.astype(np.float32)), _init("bias", bias.astype(np.float32)),
             _init("axes", np.array([1], np.int64)), _init("zero", np.float32(0.0)),
             _init("shape4", np.array([-1, 1, 1, 1], np.int64)), _init("lo", np.float32(0.0)),
             _init("hi", np.float32(1.0))]
    if emap is not None:
        inits.append(_init("emap", emap.astype(np.float32)))
    return _save(path, nodes, [_value("target", (1, 3, size, size)), _value("source", (1, 512))],
                 [_value("output", (1, 3, size, size))], inits)


def simswap(path: Path, size: int = 256, gain: float = 0.5, batch: int | str = 1) -> Path:
    return _swapper(path, size, gain, None, batch)


def hyperswap(path: Path, gain: float = 0.5, batch: int | str = 1) -> Path:
    """HyperSwap 1a/1b/1c's signature: ``source`` (B, 512) and ``target`` (B, 3, 256, 256) in, ``output``
    (B, 3, 256, 256) and ``mask`` (B, 1, 256, 256) out, all float32. ``output`` = clip(target + gain *
    source[:, :3] (per channel), -1, 1) (the model works in [-1, 1]); ``mask`` = clip(channel mean of target, 0, 1)."""
    nodes, inits = _shift_by_source(gain, -1.0, 1.0)
    nodes += [helper.make_node("ReduceMean", ["target"], ["grey"], axes=[1], keepdims=1),
              helper.make_node("Clip", ["grey", "zero", "hi"], ["mask"])]
    inits.append(_init("zero", np.float32(0.0)))
    return _save(path, nodes, [_value("source", (batch, 512)), _value("target", (batch, 3, 256, 256))],
                 [_value("output", (batch, 3, 256, 256)), _value("mask", (batch, 1, 256, 256))], inits)


def ghost(path: Path, gain: float = 0.5, batch: int | str = 1) -> Path:
    """GHOST's signature (VisoMaster's ghost_unet_1_block.onnx): ``target`` (B, 3, 256, 256) + ``source`` (B, 512)
    -> one (B, 3, 256, 256) output named ``781``, float32, no emap -- simswap_256's signature. The model works in
    [-1, 1]: ``781`` = clip(target + gain * source[:, :3] (per channel), -1, 1)."""
    nodes, inits = _shift_by_source(gain, -1.0, 1.0, out="781")
    return _save(path, nodes, [_value("target", (batch, 3, 256, 256)), _value("source", (batch, 512))],
                 [_value("781", (batch, 3, 256, 256))], inits)


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


#: the compositor settings under which a swap's pixels land in the frame as the core made them (end-to-end tests)
PLAIN_PASTE = ("composite: {colour: none, blend: feather, feather: 0.0, erode: 0.0, regions: [face], "
               "occlusion: false, grain: false}\n")


def unpinned_manifest(names) -> dict:
    """The model manifest with the sha256 of ``names`` cleared, so stand-in files can be added under them."""
    full = load_manifest()
    return {**full, **{n: dataclasses.replace(full[n], sha256="") for n in names}}


def inswapper_manifest(tmp_path: Path, names) -> dict:
    """:func:`unpinned_manifest` with an ``inswapper_128`` stand-in (identity emap, gain 1) and an
    ``arcface_w600k_r50`` stand-in (all-ones weight) added."""
    man = unpinned_manifest(names)
    add_model(man, "inswapper_128", inswapper(tmp_path / "i.onnx", np.eye(512, dtype=np.float32), 1.0))
    add_model(man, "arcface_w600k_r50", arcface(tmp_path / "a.onnx", np.ones((3, 512))))
    return man


def home_with_real_models(tmp_path: Path, monkeypatch) -> None:
    """``VIDSWAP_HOME`` at ``tmp_path / "home"``, its model cache holding links to the real cache's model files (the
    analysis models); stand-ins are then added beside them."""
    real = models_dir()
    (tmp_path / "home" / "models").mkdir(parents=True)
    for f in real.iterdir():
        if f.is_file() and f.suffix in (".onnx", ".tflite", ".py"):
            (tmp_path / "home" / "models" / f.name).symlink_to(f)
    monkeypatch.setenv("VIDSWAP_HOME", str(tmp_path / "home"))
