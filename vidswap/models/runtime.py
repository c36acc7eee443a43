"""Inference sessions for the model files in the cache: onnxruntime for ONNX, LiteRT for TFLite.

Sessions are created once per run by the caller and passed down; nothing here is cached at module level.

- ``onnx_session(model, providers=None, threads=None)``: an ``onnxruntime.InferenceSession`` on CUDA when the
  installed onnxruntime has it (else CPU). ``model`` may be a path or serialized bytes (see ``prepare_onnx``).
- ``prepare_onnx(path, ...)``: load an ONNX file, drop graph inputs no node reads (SFace int8 has 29),
  optionally make the batch (and spatial) dimensions symbolic, and return the bytes for ``onnx_session``.
- ``tflite_interpreter(path, num_threads)``: a LiteRT interpreter; ``TFLiteRunner`` runs it on a batch,
  resizing the input tensor to the batch size when the model allows it, looping otherwise.

A model file that cannot be parsed is a ``ModelError`` (exit 4) naming the file.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from vidswap.errors import ModelError


def default_threads() -> int:
    """Intra-op threads when the caller gives none: ``$VIDSWAP_THREADS`` or the number of usable cores."""
    env = os.environ.get("VIDSWAP_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            pass
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def available_providers() -> list[str]:
    """onnxruntime execution providers usable here, best first (CUDA before CPU)."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    order = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in order if p in have] or ["CPUExecutionProvider"]


def prepare_onnx(path: Path | bytes, *, dynamic_batch: bool = False, dynamic_spatial: bool = False,
                 batch_reshapes: bool = False) -> bytes:
    """Load an ONNX file (or its verified bytes, :func:`vidswap.models.registry.model_bytes`) and return
    serialized bytes ready for ``onnx_session``.

    Always drops graph inputs that no node consumes (left-overs of int8 conversion; onnxruntime and OpenCV 5
    otherwise ask for them). With ``dynamic_batch`` the first dimension of the real inputs becomes symbolic;
    with ``dynamic_spatial`` the last two too (NCHW). ``batch_reshapes`` rewrites constant Reshape shapes that
    hard-code a leading 1 to 0 ("copy the input's batch dimension"), for graphs exported with batch 1
    baked into their heads (YuNet). The model's arithmetic is unchanged.
    """
    import onnx
    from onnx import numpy_helper

    what = "(bytes)" if isinstance(path, bytes) else path
    try:
        model = onnx.load_from_string(path) if isinstance(path, bytes) else onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError / various
        raise ModelError(f"cannot parse ONNX model {what}: {type(exc).__name__}; re-fetch it") from None
    graph = model.graph
    used = {name for node in graph.node for name in node.input}
    initializers = {init.name for init in graph.initializer}
    keep = [inp for inp in graph.input if inp.name in used]
    if len(keep) != len(graph.input):
        del graph.input[:]
        graph.input.extend(keep)
    for inp in graph.input:
        if inp.name in initializers:
            continue
        dims = inp.type.tensor_type.shape.dim
        if dynamic_batch and len(dims) >= 1:
            dims[0].dim_param = "batch"
        if dynamic_spatial and len(dims) == 4:
            dims[2].dim_param = "height"
            dims[3].dim_param = "width"
    if dynamic_batch or dynamic_spatial:
        for out in graph.output:
            for i, dim in enumerate(out.type.tensor_type.shape.dim):
                if i == 0 and dynamic_batch:
                    dim.dim_param = "batch"
                elif i > 0 and dynamic_spatial:
                    dim.dim_param = f"{out.name}_d{i}"
        del graph.value_info[:]  # stale static shapes would contradict the new symbolic ones
    if batch_reshapes:
        shape_names = {node.input[1] for node in graph.node if node.op_type == "Reshape" and len(node.input) > 1}
        for init in graph.initializer:
            if init.name in shape_names:
                arr = numpy_helper.to_array(init)
                if arr.ndim == 1 and arr.size >= 2 and arr[0] == 1:
                    init.CopyFrom(numpy_helper.from_array(np.concatenate([[0], arr[1:]]).astype(arr.dtype), init.name))
        for node in graph.node:
            if node.op_type == "Constant" and node.output[0] in shape_names:
                arr = numpy_helper.to_array(node.attribute[0].t)
                if arr.ndim == 1 and arr.size >= 2 and arr[0] == 1:
                    node.attribute[0].t.CopyFrom(
                        numpy_helper.from_array(np.concatenate([[0], arr[1:]]).astype(arr.dtype)))
    return model.SerializeToString()


def onnx_session(model: Path | bytes, providers: Sequence[str] | None = None, threads: int | None = None,
                 spin: bool = False):
    """An onnxruntime ``InferenceSession`` for a model file or serialized model bytes.

    Args:
        model: path of an ``.onnx`` file, or bytes from ``prepare_onnx``.
        providers: execution providers in order of preference; default CUDA when available, else CPU.
            Unknown providers are dropped; CPU is always appended as the fallback.
        threads: intra-op threads (CPU provider); default ``default_threads()``.
        spin: let idle worker threads busy-wait for the next run (onnxruntime's default). Off here: analysis
            alternates onnxruntime and LiteRT calls on the same few cores, and spinning threads would steal
            them from the next model.
    """
    import onnxruntime as ort

    have = set(ort.get_available_providers())
    wanted = list(providers) if providers else available_providers()
    chosen = [p for p in wanted if p in have]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or default_threads()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=opts, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        where = "model bytes" if isinstance(model, bytes) else str(model)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load ONNX model {where}: {first[:200]}; re-fetch it") from None


@contextmanager
def native_stderr_silenced():
    """Silence writes to file descriptor 2 by native code (LiteRT prints an INFO line when it creates its CPU
    delegate), so the CLI's stderr keeps to its one-line messages. Python-level ``sys.stderr`` is untouched."""
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded use): nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def tflite_interpreter(path: Path | bytes, num_threads: int | None = None):
    """A LiteRT (TFLite) interpreter for a model file or its verified bytes, with tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    source = {"model_content": path} if isinstance(path, bytes) else {"model_path": str(path)}
    if isinstance(path, bytes):
        path = "(bytes)"
    try:
        with native_stderr_silenced():
            interp = Interpreter(**source, num_threads=num_threads or default_threads())
            interp.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load TFLite model {path}: {first[:200]}; re-fetch it") from None
    return interp


@dataclass
class TFLiteRunner:
    """Runs a single-input TFLite model over a batch.

    The interpreter is resized to the batch size when the model supports it (checked once, on the first
    batch > 1); otherwise items run one by one. Output arrays are returned as ``(B, *out_shape[1:])`` in the
    interpreter's output order. Holds per-run state (the current batch size): one runner per interpreter.
    """

    interpreter: object
    max_batch: int = 16
    _batch: int = field(default=1, init=False)
    _batchable: bool | None = field(default=None, init=False)

    @classmethod
    def from_path(cls, path: Path | bytes, num_threads: int | None = None, max_batch: int = 16) -> "TFLiteRunner":
        return cls(tflite_interpreter(path, num_threads), max_batch=max_batch)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-item input shape (without the batch dimension)."""
        return tuple(int(v) for v in self.interpreter.get_input_details()[0]["shape"][1:])

    def _resize(self, batch: int) -> bool:
        if batch == self._batch:
            return True
        interp = self.interpreter
        detail = interp.get_input_details()[0]
        try:
            with native_stderr_silenced():
                interp.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]], strict=False)
                interp.allocate_tensors()
        except (ValueError, RuntimeError):
            with native_stderr_silenced():
                interp.resize_tensor_input(detail["index"], [1, *detail["shape"][1:]], strict=False)
                interp.allocate_tensors()
            self._batch = 1
            return False
        self._batch = batch
        out_b = [int(d["shape"][0]) for d in interp.get_output_details()]
        return all(b == batch for b in out_b)

    def _invoke(self, x: np.ndarray) -> list[np.ndarray]:
        interp = self.interpreter
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        """Run on ``x`` of shape ``(B, *input_shape)`` float32; returns one array per output, ``(B, ...)``."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        n = x.shape[0]
        if n == 0:
            return [np.zeros((0, *d["shape"][1:]), np.float32) for d in self.interpreter.get_output_details()]
        chunks: list[list[np.ndarray]] = []
        start = 0
        while start < n:
            size = min(self.max_batch, n - start) if self._batchable is not False else 1
            if size > 1:
                ok = self._resize(size)
                if self._batchable is None:
                    self._batchable = ok
                if not ok:
                    size = 1
            if size == 1:
                self._resize(1)
            chunks.append(self._invoke(x[start:start + size]))
            start += size
        return [np.concatenate([c[i] for c in chunks], axis=0) for i in range(len(chunks[0]))]
