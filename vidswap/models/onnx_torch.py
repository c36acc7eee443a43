"""ONNX graph -> an equivalent torch module, for fine-tuning a learned swapper per clip.

:class:`OnnxModule` interprets the graph node by node with torch operations (in topological order, as ONNX
stores it). Floating-point initializers become trainable ``nn.Parameter`` s (integer ones -- shapes, indices --
buffers), so gradients flow to every weight. Outputs equal onnxruntime's within float32 rounding (the tests check
1e-5 on random graphs of each family's operator set).

Supported operators (the ones swapper, restorer, parser and ArcFace graphs use): Conv, ConvTranspose, Gemm,
MatMul, Add, Sub, Mul, Div, Pow, Sqrt, Exp, Neg, Abs, Erf, Relu, LeakyRelu, PRelu, Sigmoid, Tanh, Softmax, Clip,
Reshape, Flatten, Transpose, Concat, Slice, Split, Squeeze, Unsqueeze, Pad (constant / reflect / edge), Resize and
Upsample (nearest with asymmetric floor, linear with half_pixel / pytorch_half_pixel / align_corners),
InstanceNormalization, BatchNormalization (inference), GlobalAveragePool, AveragePool, MaxPool, ReduceMean,
ReduceSum, Shape, Gather, Cast, Constant, ConstantOfShape, Identity. Any other operator, or an unsupported
attribute combination, is a ``ModelError`` naming it when the module is built.

Semantics follow the ONNX operator specification (onnx/docs/Operators.md); written here without onnx2torch
(which cannot be imported without torchvision).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidswap.errors import ModelError

_TORCH_DTYPES = {1: torch.float32, 10: torch.float16, 11: torch.float64, 7: torch.int64, 6: torch.int32,
                 9: torch.bool, 2: torch.uint8, 3: torch.int8}


def _key(name: str) -> str:
    """An initializer name as a module attribute key."""
    return "t_" + re.sub(r"\W", "_", name)


def _ints(t: Tensor | None) -> list[int]:
    return [] if t is None else [int(v) for v in t.reshape(-1).tolist()]


def _pool_pads(pads: list[int], rank: int) -> tuple[list[int], bool]:
    """ONNX pads (begins then ends) -> (symmetric padding per spatial axis, whether they were symmetric)."""
    pads = pads or [0] * (2 * rank)
    begin, end = pads[:rank], pads[rank:]
    return begin, begin == end


def _f_pad(pads: list[int]) -> list[int]:
    """ONNX pads for the spatial axes (begins then ends) -> torch F.pad order (last axis first)."""
    rank = len(pads) // 2
    out: list[int] = []
    for axis in reversed(range(rank)):
        out += [pads[axis], pads[axis + rank]]
    return out


def _conv(a: dict, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ModelError("Conv auto_pad is not supported by the torch converter")
    rank = w.dim() - 2
    begin, symmetric = _pool_pads(list(a.get("pads", [])), rank)
    if not symmetric:
        x = F.pad(x, _f_pad(list(a["pads"])))
        begin = [0] * rank
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    return conv(x, w, b, stride=a.get("strides", [1] * rank), padding=begin,
                dilation=a.get("dilations", [1] * rank), groups=a.get("group", 1))


def _conv_transpose(a: dict, x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    rank = w.dim() - 2
    begin, symmetric = _pool_pads(list(a.get("pads", [])), rank)
    if not symmetric or "output_shape" in a:
        raise ModelError("ConvTranspose with asymmetric pads or output_shape is not supported by the torch converter")
    conv = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[rank]
    return conv(x, w, b, stride=a.get("strides", [1] * rank), padding=begin,
                output_padding=a.get("output_padding", [0] * rank), groups=a.get("group", 1),
                dilation=a.get("dilations", [1] * rank))


def _gemm(a: dict, x: Tensor, w: Tensor, c: Tensor | None = None) -> Tensor:
    x = x.t() if a.get("transA", 0) else x
    w = w.t() if a.get("transB", 0) else w
    y = a.get("alpha", 1.0) * (x @ w)
    return y if c is None else y + a.get("beta", 1.0) * c


def _clip(a: dict, x: Tensor, lo: Tensor | None = None, hi: Tensor | None = None) -> Tensor:
    lo_v = lo if lo is not None else a.get("min")
    hi_v = hi if hi is not None else a.get("max")
    as_t = (lambda v: None if v is None else torch.as_tensor(v, dtype=x.dtype, device=x.device))
    return torch.clamp(x, min=as_t(lo_v), max=as_t(hi_v)) if (lo_v is not None or hi_v is not None) else x


def _reshape(a: dict, x: Tensor, shape: Tensor) -> Tensor:
    dims = _ints(shape)
    if not a.get("allowzero", 0):
        dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _slice(a: dict, x: Tensor, starts: Tensor, ends: Tensor, axes: Tensor | None = None,
           steps: Tensor | None = None) -> Tensor:
    st, en = _ints(starts), _ints(ends)
    ax = _ints(axes) or list(range(len(st)))
    sp = _ints(steps) or [1] * len(st)
    index: list[Any] = [slice(None)] * x.dim()
    for s, e, axis, step in zip(st, en, ax, sp):
        axis = axis % x.dim()
        n = x.shape[axis]
        if step < 0:
            raise ModelError("Slice with negative steps is not supported by the torch converter")
        s = max(0, min(n, s + n if s < 0 else s))
        e = max(0, min(n, e + n if e < 0 else e))
        index[axis] = slice(s, e, step)
    return x[tuple(index)]


def _pad(a: dict, x: Tensor, pads: Tensor | None = None, value: Tensor | None = None,
         axes: Tensor | None = None) -> Tensor:
    if axes is not None:
        raise ModelError("Pad with axes is not supported by the torch converter")
    p = _ints(pads) if pads is not None else list(a.get("pads", []))
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    rank = x.dim()
    lead = [k for k in range(rank) if p[k] or p[k + rank]]
    if mode != "constant" and lead and min(lead) < rank - 2:
        raise ModelError(f"Pad mode {mode} on the batch or channel axis is not supported by the torch converter")
    torch_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode)
    if torch_mode is None:
        raise ModelError(f"Pad mode {mode} is not supported by the torch converter")
    if torch_mode == "constant":
        fill = float(value.reshape(-1)[0]) if value is not None and value.numel() else float(a.get("value", 0.0))
        return F.pad(x, _f_pad(p), mode="constant", value=fill)
    return F.pad(x, _f_pad(p[2:rank] + p[rank + 2:]), mode=torch_mode)


def _resize_to(a: dict, x: Tensor, size: list[int]) -> Tensor:
    mode = a.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    ctm = a.get("coordinate_transformation_mode", b"half_pixel")
    ctm = ctm.decode() if isinstance(ctm, bytes) else ctm
    spatial = size[2:]
    if mode == "nearest":
        nearest = a.get("nearest_mode", b"round_prefer_floor")
        nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
        if ctm == "asymmetric" and nearest == "floor":
            return F.interpolate(x, size=spatial, mode="nearest")
        raise ModelError(f"Resize nearest with {ctm} / {nearest} is not supported by the torch converter")
    if mode == "linear" and x.dim() == 4:
        if ctm in ("half_pixel", "pytorch_half_pixel"):
            return F.interpolate(x, size=spatial, mode="bilinear", align_corners=False)
        if ctm == "align_corners":
            return F.interpolate(x, size=spatial, mode="bilinear", align_corners=True)
    raise ModelError(f"Resize {mode} with {ctm} is not supported by the torch converter")


def _resize(a: dict, x: Tensor, roi: Tensor | None = None, scales: Tensor | None = None,
            sizes: Tensor | None = None) -> Tensor:
    if sizes is not None and sizes.numel():
        size = _ints(sizes)
    else:
        factors = scales.reshape(-1).tolist()
        size = [int(np.floor(n * f)) for n, f in zip(x.shape, factors)]
    return _resize_to(a, x, size)


def _upsample(a: dict, x: Tensor, scales: Tensor | None = None) -> Tensor:
    factors = scales.reshape(-1).tolist() if scales is not None else a["scales"]
    size = [int(np.floor(n * f)) for n, f in zip(x.shape, factors)]
    attrs = dict(a)
    if attrs.get("mode", b"nearest") in (b"nearest", "nearest"):
        attrs.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        attrs.update(coordinate_transformation_mode="asymmetric")
    return _resize_to(attrs, x, size)


def _reduce(fn: Callable) -> Callable:
    def op(a: dict, x: Tensor, axes: Tensor | None = None) -> Tensor:
        dims = _ints(axes) if axes is not None else list(a.get("axes", []))
        keep = bool(a.get("keepdims", 1))
        if not dims:
            if a.get("noop_with_empty_axes", 0):
                return x
            dims = list(range(x.dim()))
        return fn(x, dim=dims, keepdim=keep)

    return op


def _pool(kind: str) -> Callable:
    def op(a: dict, x: Tensor) -> Tensor:
        k = list(a["kernel_shape"])
        rank = len(k)
        begin, symmetric = _pool_pads(list(a.get("pads", [])), rank)
        if not symmetric or rank != 2:
            raise ModelError(f"{kind} with asymmetric pads or non-2D kernels is not supported by the torch converter")
        stride = a.get("strides", [1] * rank)
        ceil = bool(a.get("ceil_mode", 0))
        if kind == "MaxPool":
            return F.max_pool2d(x, k, stride, begin, dilation=a.get("dilations", [1, 1]), ceil_mode=ceil)
        return F.avg_pool2d(x, k, stride, begin, ceil_mode=ceil, count_include_pad=bool(a.get("count_include_pad", 0)))

    return op


def _split(a: dict, x: Tensor, split: Tensor | None = None, *, outputs: int) -> tuple[Tensor, ...]:
    axis = a.get("axis", 0)
    sizes = _ints(split) if split is not None else list(a.get("split", []))
    if not sizes:
        n = x.shape[axis]
        sizes = [n // outputs] * outputs
    return tuple(torch.split(x, sizes, dim=axis))


def _unsqueeze(a: dict, x: Tensor, axes: Tensor | None = None) -> Tensor:
    given = _ints(axes) if axes is not None else list(a["axes"])
    rank = x.dim() + len(given)
    for d in sorted(d % rank for d in given):
        x = x.unsqueeze(d)
    return x


def _flatten(a: dict, x: Tensor) -> Tensor:
    axis = a.get("axis", 1)
    axis = axis + x.dim() if axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:axis])) if axis else 1, -1)


def _gather(a: dict, x: Tensor, index: Tensor) -> Tensor:
    axis = a.get("axis", 0) % x.dim()
    idx = index.long()
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    out = torch.index_select(x, axis, idx.reshape(-1))
    return out.reshape(tuple(x.shape[:axis]) + tuple(index.shape) + tuple(x.shape[axis + 1:]))


def _div(a: dict, x: Tensor, y: Tensor) -> Tensor:
    if not x.is_floating_point() and not y.is_floating_point():  # integer Div truncates (shape arithmetic)
        return torch.div(x, y, rounding_mode="trunc")
    return torch.div(x, y)


def _squeeze(a: dict, x: Tensor, axes: Tensor | None = None) -> Tensor:
    dims = _ints(axes) or list(a.get("axes", []))
    if not dims:
        return x.squeeze()
    for d in sorted((d % x.dim() for d in dims), reverse=True):
        x = x.squeeze(d)
    return x


def _constant(a: dict) -> Tensor:
    from onnx import numpy_helper

    if "value" in a:
        return torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
    for key, dtype in (("value_float", torch.float32), ("value_int", torch.int64)):
        if key in a:
            return torch.tensor(a[key], dtype=dtype)
    for key, dtype in (("value_floats", torch.float32), ("value_ints", torch.int64)):
        if key in a:
            return torch.tensor(list(a[key]), dtype=dtype)
    raise ModelError("Constant without a supported value attribute")


def _constant_of_shape(a: dict, shape: Tensor) -> Tensor:
    from onnx import numpy_helper

    fill = torch.from_numpy(numpy_helper.to_array(a["value"]).copy()) if "value" in a else torch.zeros(1)
    return fill.reshape(-1)[0].expand(_ints(shape)).clone()


def _binary(fn: Callable) -> Callable:
    return lambda a, x, y: fn(x, y)


def _unary(fn: Callable) -> Callable:
    return lambda a, x: fn(x)


OPS: dict[str, Callable] = {
    "Conv": _conv, "ConvTranspose": _conv_transpose, "Gemm": _gemm, "MatMul": _binary(torch.matmul),
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul), "Div": _div,
    "Pow": _binary(torch.pow), "Sqrt": _unary(torch.sqrt), "Exp": _unary(torch.exp), "Neg": _unary(torch.neg),
    "Abs": _unary(torch.abs), "Erf": _unary(torch.erf), "Relu": _unary(F.relu), "Sigmoid": _unary(torch.sigmoid),
    "Tanh": _unary(torch.tanh), "Identity": _unary(lambda x: x),
    "LeakyRelu": lambda a, x: F.leaky_relu(x, a.get("alpha", 0.01)),
    "PRelu": lambda a, x, s: torch.where(x >= 0, x, x * s),
    "Softmax": lambda a, x: torch.softmax(x, dim=a.get("axis", -1)),
    "Clip": _clip, "Reshape": _reshape,
    "Flatten": _flatten,
    "Transpose": lambda a, x: x.permute(*(a.get("perm") or list(reversed(range(x.dim()))))),
    "Concat": lambda a, *xs: torch.cat(xs, dim=a["axis"]), "Slice": _slice, "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze, "Pad": _pad, "Resize": _resize, "Upsample": _upsample,
    "InstanceNormalization": lambda a, x, s, b: F.instance_norm(x, weight=s, bias=b, eps=a.get("epsilon", 1e-5)),
    "BatchNormalization": lambda a, x, s, b, m, v: F.batch_norm(x, m, v, s, b, training=False,
                                                                eps=a.get("epsilon", 1e-5)),
    "GlobalAveragePool": lambda a, x: x.mean(dim=tuple(range(2, x.dim())), keepdim=True),
    "AveragePool": _pool("AveragePool"), "MaxPool": _pool("MaxPool"),
    "ReduceMean": _reduce(torch.mean), "ReduceSum": _reduce(torch.sum),
    "Shape": lambda a, x: torch.tensor(list(x.shape), dtype=torch.int64),
    "Gather": _gather,
    "Cast": lambda a, x: x.to(_TORCH_DTYPES[a["to"]]), "Constant": _constant, "ConstantOfShape": _constant_of_shape,
}


class OnnxModule(nn.Module):
    """A torch module computing an ONNX graph. ``forward`` takes the graph's real inputs in order and returns
    its first output (``outputs='all'`` at construction: a tuple of every output)."""

    def __init__(self, model, all_outputs: bool = False):
        super().__init__()
        from onnx import helper, numpy_helper

        graph = model.graph
        self.all_outputs = all_outputs
        self.keys: dict[str, str] = {}
        for init in graph.initializer:
            array = numpy_helper.to_array(init).copy()
            key = _key(init.name)
            tensor = torch.from_numpy(array)
            if tensor.is_floating_point():
                self.register_parameter(key, nn.Parameter(tensor.float()))
            else:
                self.register_buffer(key, tensor)
            self.keys[init.name] = key
        self.input_names = [i.name for i in graph.input if i.name not in self.keys]
        self.output_names = [o.name for o in graph.output]
        self.nodes: list[tuple[str, list[str], list[str], dict]] = []
        unknown = sorted({n.op_type for n in graph.node if n.op_type not in OPS})
        if unknown:
            raise ModelError(f"the torch converter does not support the operators {', '.join(unknown)}")
        for node in graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            self.nodes.append((node.op_type, list(node.input), list(node.output), attrs))

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, ...]:
        env: dict[str, Tensor | None] = {"": None}
        for name, key in self.keys.items():
            env[name] = getattr(self, key)
        env.update(zip(self.input_names, inputs))
        for op, ins, outs, attrs in self.nodes:
            args = [env[i] for i in ins]
            while args and args[-1] is None:
                args.pop()
            result = _split(attrs, *args, outputs=len(outs)) if op == "Split" else OPS[op](attrs, *args)
            if isinstance(result, tuple):
                env.update(zip(outs, result))
            else:
                env[outs[0]] = result
        outputs = tuple(env[n] for n in self.output_names)
        return outputs if self.all_outputs else outputs[0]


OPS["Split"] = _split  # dispatched with the node's output count in forward


def load_onnx_module(path: Path, all_outputs: bool = False) -> OnnxModule:
    """An :class:`OnnxModule` from an ONNX file (ModelError, exit 4, if it cannot be read or converted)."""
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf errors: not an ONNX file
        raise ModelError(f"{path} is not a readable ONNX model ({type(exc).__name__})") from None
    return OnnxModule(model, all_outputs)
