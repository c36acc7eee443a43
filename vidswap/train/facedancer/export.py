"""``vidswap train export``: a training checkpoint -> the inference checkpoint (safetensors) and an ONNX file.

ONNX graph: inputs ``target`` (B, 3, S, S) float32 RGB in [0, 1] (ArcFace-template aligned) and ``identity``
(B, D) the source's identity vector (the training encoder's, e.g. SFace 128-d); output ``swap`` (B, 3, S, S) in
[0, 1]; the batch axis is dynamic. Written with torch's TorchScript-based exporter (opset 17; no onnxscript
needed) and checked against the torch model with onnxruntime on random inputs (:func:`onnx_max_error`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from vidswap.errors import ModelError
from vidswap.train.facedancer.checkpoint import identity_meta, identity_of, load_generator, save_inference
from vidswap.train.facedancer.model import FaceDancerGenerator

__all__ = ["export_onnx", "onnx_max_error", "export_checkpoint"]

OPSET = 17


def export_onnx(generator: FaceDancerGenerator, path: str | Path, batch: int = 2) -> Path:
    """Write the generator as ONNX (see the module doc)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = generator.config
    gen = generator.float().cpu().eval()
    x = torch.rand(batch, 3, cfg.size, cfg.size)
    z = torch.randn(batch, cfg.id_dim)
    tmp = path.with_name(f".{path.name}.part")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(gen, (x, z), str(tmp), input_names=["target", "identity"], output_names=["swap"],
                          dynamic_axes={"target": {0: "batch"}, "identity": {0: "batch"}, "swap": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    tmp.replace(path)
    return path


def onnx_max_error(generator: FaceDancerGenerator, onnx_path: str | Path, batch: int = 3, seed: int = 0) -> float:
    """Largest absolute difference between onnxruntime and torch on random inputs (a batch size other than the
    export's, to exercise the dynamic axis)."""
    import onnxruntime as ort

    cfg = generator.config
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, cfg.size, cfg.size, generator=g)
    z = torch.randn(batch, cfg.id_dim, generator=g)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    y = sess.run(None, {"target": x.numpy(), "identity": z.numpy()})[0]
    with torch.no_grad():
        ref = generator.float().cpu().eval()(x, z).numpy()
    return float(np.abs(y - ref).max())


def export_checkpoint(checkpoint: str | Path, out: str | Path, onnx: bool = True) -> dict[str, str | float]:
    """``out``.safetensors (inference) and ``out``.onnx from a training (or inference) checkpoint."""
    gen, meta = load_generator(checkpoint)
    out = Path(out)
    stem = out.with_suffix("") if out.suffix in (".safetensors", ".onnx") else out
    result: dict[str, str | float] = {}
    result["checkpoint"] = str(save_inference(stem.with_suffix(".safetensors"), gen,
                                              identity_meta(*identity_of(meta)), int(meta.get("step", 0))))
    if onnx:
        try:
            path = export_onnx(gen, stem.with_suffix(".onnx"))
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types
            raise ModelError(f"ONNX export of {checkpoint} failed: {type(exc).__name__}: {exc}") from None
        result["onnx"] = str(path)
        result["onnx_max_error"] = onnx_max_error(gen, path)
    return result
