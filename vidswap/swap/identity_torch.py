"""A differentiable PyTorch copy of the SFace identity network, built from its ONNX file (for identity losses).

``SFaceTorch.from_onnx(model_path("sface"))`` reads the graph and its initializers with ``onnx`` and executes the
nodes in order with torch operations. Everything that depends only on initializers -- the int8 weights and their
``DequantizeLinear`` (per-tensor, per-axis and *blocked* quantisation, opset 21: ``y = (q - zero_point[block]) *
scale[block]`` along ``axis`` in blocks of ``block_size``), the weight ``Reshape`` nodes, ``Constant`` nodes --
is evaluated once at load time (constant folding) and kept as float32 buffers. The rest (Conv, BatchNormalization
in inference mode, PRelu, Add / Sub / Mul / Div, Flatten, Reshape, Gemm, MatMul, Relu, Dropout = identity,
GlobalAveragePool) runs as torch ops, so gradients flow to the *input* image. The network is frozen: no
parameters, only buffers, always in eval mode.

Input convention is the one of :class:`vidswap.faces.identity.IdentityEncoder`: (B, 3, 112, 112) RGB in [0, 1],
ArcFace-aligned (the graph itself subtracts its mean and scales; the wrapper multiplies by 255 first). The output
matches onnxruntime on the same crops (cosine > 0.9999 measured on real faces; test in
``tests/test_swap_tune.py``). An operator outside the list raises :class:`UnsupportedOp` naming it.

:func:`align_for_identity` makes the ArcFace crops differentiably (kornia ``warp_affine``) from any image batch
and five keypoints, so a loss can be taken on generator outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidswap.faces.align import estimate_alignment, kps5_from_landmarks, warp_to_crop
from vidswap.models.registry import model_path

__all__ = ["SFaceTorch", "UnsupportedOp", "dequantize", "align_for_identity",
           "load_sface"]

CROP_SIZE = 112
SUPPORTED_OPS = ("Conv", "BatchNormalization", "PRelu", "Add", "Sub", "Mul", "Div", "Flatten", "Reshape", "Gemm",
                 "MatMul", "Relu", "Dropout", "Identity", "GlobalAveragePool", "Constant", "DequantizeLinear")


class UnsupportedOp(NotImplementedError):
    """The ONNX graph uses an operator this module does not translate (the message names it)."""


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None, axis: int = 1,
               block_size: int = 0) -> np.ndarray:
    """ONNX ``DequantizeLinear`` (opset 21) in numpy: per-tensor, per-axis or blocked.

    Args:
        q: quantised integers (any shape).
        scale: scalar (per tensor), (q.shape[axis],) (per axis), or q's shape with ``axis`` divided by
            ``block_size`` rounded up (blocked).
        zero_point: same shape as ``scale`` (default 0).
        axis: the quantisation axis (negative allowed).
        block_size: > 0 for blocked quantisation.

    Returns:
        float32 array of q's shape.
    """
    x = q.astype(np.float32)
    s = np.asarray(scale, dtype=np.float32)
    z = np.zeros_like(s) if zero_point is None else np.asarray(zero_point).astype(np.float32)
    if s.ndim == 0 or s.size == 1 and block_size == 0:
        return (x - z.reshape(())) * s.reshape(())
    axis = axis % q.ndim
    if block_size > 0:
        s = np.repeat(s, block_size, axis=axis)
        z = np.repeat(z, block_size, axis=axis)
        idx = [slice(None)] * q.ndim
        idx[axis] = slice(0, q.shape[axis])
        s, z = s[tuple(idx)], z[tuple(idx)]
        return (x - z) * s
    shape = [1] * q.ndim
    shape[axis] = q.shape[axis]
    return (x - z.reshape(shape)) * s.reshape(shape)


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _fold(node, values: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluate a node whose inputs are all constants (numpy)."""
    from onnx import numpy_helper

    a = _attrs(node)
    op = node.op_type
    ins = [values[n] if n else None for n in node.input]
    if op == "Constant":
        if "value" in a:
            return [numpy_helper.to_array(a["value"])]
        for key in ("value_float", "value_int"):
            if key in a:
                return [np.asarray(a[key])]
        for key in ("value_floats", "value_ints"):
            if key in a:
                return [np.asarray(list(a[key]))]
        raise UnsupportedOp(f"Constant node {node.name!r} with attributes {sorted(a)}")
    if op == "DequantizeLinear":
        return [dequantize(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a.get("axis", 1), a.get("block_size", 0))]
    if op == "Reshape":
        shape = [int(d) for d in ins[1]]
        shape = [ins[0].shape[i] if d == 0 and not a.get("allowzero", 0) else d for i, d in enumerate(shape)]
        return [ins[0].reshape(shape)]
    if op in ("Identity", "Dropout"):
        return [ins[0]]
    if op in ("Add", "Sub", "Mul", "Div"):
        f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
        return [f(ins[0], ins[1])]
    raise UnsupportedOp(f"cannot constant-fold ONNX op {op} (node {node.name!r})")


class SFaceTorch(nn.Module):
    """A frozen torch executor of an ONNX convolutional graph (made for SFace; see the module doc).

    Attributes:
        input_name, output_name: the graph's data input and output.
        steps: the non-constant nodes in order, as (op, input names, output names, attributes).
    """

    def __init__(self, steps: list[tuple[str, list[str], list[str], dict]], constants: dict[str, np.ndarray],
                 input_name: str, output_name: str, input_scale: float = 255.0):
        super().__init__()
        self.steps = steps
        self.input_name = input_name
        self.output_name = output_name
        self.input_scale = float(input_scale)
        self._const_names: dict[str, str] = {}
        used = {n for _, ins, _, _ in steps for n in ins}
        for i, (name, arr) in enumerate(sorted(constants.items())):
            if name not in used:
                continue
            buf = f"c{i}"
            t = torch.from_numpy(np.array(arr))  # a writable copy: the graph's arrays may be read-only views
            if t.is_floating_point():
                t = t.float()
            self.register_buffer(buf, t)
            self._const_names[name] = buf
        self.eval()
        self.requires_grad_(False)

    # -- construction ---------------------------------------------------------------------------------------
    @classmethod
    def from_onnx(cls, path: str | Path, input_scale: float = 255.0) -> "SFaceTorch":
        """Load the graph; fold everything computable from initializers; check every remaining op is known."""
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
        g = model.graph
        values: dict[str, np.ndarray] = {init.name: numpy_helper.to_array(init) for init in g.initializer}
        inputs = [i.name for i in g.input if i.name not in values]
        used = {n for node in g.node for n in node.input}
        inputs = [n for n in inputs if n in used]
        if len(inputs) != 1 or len(g.output) != 1:
            raise UnsupportedOp(f"{path}: expected one data input and one output, got {inputs} -> "
                                f"{[o.name for o in g.output]}")
        steps = []
        for node in g.node:
            if node.op_type not in SUPPORTED_OPS:
                raise UnsupportedOp(f"{Path(path).name}: ONNX op {node.op_type} (node {node.name!r}) is not "
                                    f"translated to torch; supported: {', '.join(SUPPORTED_OPS)}")
            if all((not n) or n in values for n in node.input):
                for name, val in zip(node.output, _fold(node, values)):
                    values[name] = np.asarray(val)
                continue
            steps.append((node.op_type, list(node.input), list(node.output), _attrs(node)))
        return cls(steps, values, inputs[0], g.output[0].name, input_scale)

    # -- execution ------------------------------------------------------------------------------------------
    def _value(self, env: dict[str, Tensor], name: str) -> Tensor | None:
        if not name:
            return None
        if name in env:
            return env[name]
        return getattr(self, self._const_names[name])

    def forward(self, crops: Tensor, normalize: bool = False, return_features: bool = False):
        """Embeddings of ArcFace-aligned crops.

        Args:
            crops: (B, 3, 112, 112) RGB in [0, 1].
            normalize: L2-normalise the embeddings.
            return_features: also return the outputs of every PRelu (the intermediate feature maps, in order).

        Returns:
            (B, 128) embeddings (raw as the ONNX graph gives them unless ``normalize``), and the feature list.
        """
        env: dict[str, Tensor] = {self.input_name: crops.float() * self.input_scale}
        feats: list[Tensor] = []
        for op, ins, outs, a in self.steps:
            x = [self._value(env, n) for n in ins]
            y = _run(op, x, a)
            env[outs[0]] = y
            if return_features and op == "PRelu":
                feats.append(y)
        out = env[self.output_name]
        if normalize:
            out = F.normalize(out, dim=-1, eps=1e-12)
        return (out, feats) if return_features else out

    def train(self, mode: bool = True) -> "SFaceTorch":  # always inference (BatchNorm statistics are fixed)
        return super().train(False)


def _run(op: str, x: list[Tensor | None], a: dict) -> Tensor:
    if op == "Conv":
        pads = list(a.get("pads", [0, 0, 0, 0]))
        n = len(pads) // 2
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise UnsupportedOp(f"Conv auto_pad={a['auto_pad']}")
        inp = x[0]
        if pads[:n] != pads[n:]:
            inp = F.pad(inp, [p for i in reversed(range(n)) for p in (pads[i], pads[i + n])])
            padding = 0
        else:
            padding = tuple(pads[:n])
        return F.conv2d(inp, x[1], x[2] if len(x) > 2 else None, stride=tuple(a.get("strides", [1, 1])),
                        padding=padding, dilation=tuple(a.get("dilations", [1, 1])), groups=int(a.get("group", 1)))
    if op == "BatchNormalization":
        return F.batch_norm(x[0], x[3], x[4], x[1], x[2], training=False, eps=float(a.get("epsilon", 1e-5)))
    if op == "PRelu":
        slope = x[1]
        if x[0].dim() >= 2 and slope.numel() == x[0].shape[1] and slope.numel() > 1:
            return F.prelu(x[0], slope.reshape(-1))
        if slope.numel() == 1:
            return F.prelu(x[0], slope.reshape(1))
        return torch.where(x[0] >= 0, x[0], x[0] * slope)
    if op == "Add":
        return x[0] + x[1]
    if op == "Sub":
        return x[0] - x[1]
    if op == "Mul":
        return x[0] * x[1]
    if op == "Div":
        return x[0] / x[1]
    if op == "Relu":
        return F.relu(x[0])
    if op in ("Dropout", "Identity"):
        return x[0]
    if op == "Flatten":
        axis = int(a.get("axis", 1))
        return x[0].reshape(int(np.prod(x[0].shape[:axis])) if axis else 1, -1)
    if op == "Reshape":
        shape = [int(d) for d in x[1].tolist()]
        shape = [x[0].shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return x[0].reshape(shape)
    if op == "GlobalAveragePool":
        return x[0].mean(dim=tuple(range(2, x[0].dim())), keepdim=True)
    if op == "MatMul":
        return x[0] @ x[1]
    if op == "Gemm":
        A, B = x[0], x[1]
        if a.get("transA", 0):
            A = A.transpose(0, 1)
        if a.get("transB", 0):
            B = B.transpose(0, 1)
        y = float(a.get("alpha", 1.0)) * (A @ B)
        if len(x) > 2 and x[2] is not None:
            y = y + float(a.get("beta", 1.0)) * x[2]
        return y
    raise UnsupportedOp(f"ONNX op {op}")


def load_sface(path: str | Path | None = None, device: str | torch.device = "cpu") -> SFaceTorch:
    """The SFace torch module from the model cache (``model_path('sface')``) or ``path``, on ``device``."""
    if path is None:
        path = model_path("sface")
    return SFaceTorch.from_onnx(path).to(device)


def align_for_identity(images: Tensor, landmarks: Tensor, size: int = CROP_SIZE) -> Tensor:
    """Differentiable ArcFace-aligned crops for the identity network.

    Args:
        images: (B, 3, H, W) float images (e.g. generator outputs in crop space).
        landmarks: (B, 478, 2+) landmarks in those images' pixels (the alignment itself is not differentiated).

    Returns:
        (B, 3, size, size) crops (:func:`vidswap.faces.align.warp_to_crop`: kornia ``warp_affine`` with 2x box
        pre-filtering of large images, border padding).
    """
    kps = kps5_from_landmarks(landmarks.detach()).cpu().numpy()
    m = torch.as_tensor(estimate_alignment(kps, size), dtype=torch.float32, device=images.device)
    return warp_to_crop(images.float(), m.reshape(-1, 2, 3), size)
