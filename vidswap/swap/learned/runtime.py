"""onnxruntime sessions for the learned models: an explicit execution provider, checked, and batched runs.

``provider`` (the ``swap.<core>.provider`` setting) is one of

* ``auto``      -- the best provider this onnxruntime has: CUDA, then CoreML, then CPU (TensorRT is opt-in: it
  builds an engine per input shape, minutes on first use);
* ``cuda`` / ``tensorrt`` / ``coreml`` / ``cpu`` -- that provider, and nothing else: when the installed
  onnxruntime lacks it, or the session falls back to CPU (a missing CUDA library makes onnxruntime warn and run
  on CPU -- the silent fallback users of per-frame tools complain about), :class:`ProviderError` (exit 2) says
  which providers this onnxruntime has and what to change.

:class:`LearnedSession` reports the provider that actually runs (``provider``) and runs a batch of B items:
in chunks of ``batch_size`` when the graph's batch dimension is symbolic, item by item when the file fixes it
at 1 (inswapper_128.onnx does). Both give the same numbers as B runs of one item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

import numpy as np

from vidswap.errors import ModelError, UsageError
from vidswap.models.runtime import default_threads

Provider = Literal["auto", "cpu", "cuda", "tensorrt", "coreml"]

PROVIDER_NAMES: dict[str, str] = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}
AUTO_ORDER = ("CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")


class ProviderError(UsageError):
    """The execution provider asked for is not the one that runs (exit 2, like ``--device cuda`` without CUDA)."""


def available_providers() -> list[str]:
    """The execution providers the installed onnxruntime offers."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def provider_chain(provider: str, available: list[str]) -> list[str]:
    """The provider list to open a session with (CPU last, for the nodes a provider cannot run).

    ProviderError when an explicit provider is missing from ``available``."""
    if provider == "auto":
        return [p for p in AUTO_ORDER if p in available] or ["CPUExecutionProvider"]
    if provider not in PROVIDER_NAMES:
        raise UsageError(f"unknown onnxruntime provider {provider!r}; choose auto, {', '.join(PROVIDER_NAMES)}")
    wanted = PROVIDER_NAMES[provider]
    if wanted not in available:
        raise ProviderError(f"provider {provider} asked for, but this onnxruntime has only {', '.join(available)}; "
                            f"install the onnxruntime build with {wanted} (e.g. onnxruntime-gpu for cuda) or set "
                            "the core's provider to auto or cpu")
    chain = [wanted] + (["CUDAExecutionProvider"] if provider == "tensorrt" and
                        "CUDAExecutionProvider" in available else [])
    return chain + ([] if wanted == "CPUExecutionProvider" else ["CPUExecutionProvider"])


@dataclass
class LearnedSession:
    """An onnxruntime session for one learned model file, with its provider checked.

    Attributes:
        path: the ONNX file.
        provider: the execution provider that runs (``session.get_providers()[0]``).
        fixed_batch: the graph fixes its batch dimension at 1 (items then run one by one).
    """

    path: Path
    requested: str = "auto"
    batch_size: int = 8
    threads: int | None = None
    session: object = field(init=False, repr=False)
    provider: str = field(init=False)
    fixed_batch: bool = field(init=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        chain = provider_chain(self.requested, available_providers())
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=chain)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own Fail / InvalidGraph / RuntimeException types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"cannot load ONNX model {self.path}: {first[:200]}") from None
        running = list(self.session.get_providers())
        self.provider = running[0] if running else "CPUExecutionProvider"
        if self.requested != "auto" and self.provider != chain[0]:
            raise ProviderError(f"provider {self.requested} asked for, but onnxruntime fell back to "
                                f"{self.provider} for {Path(self.path).name} (its {chain[0]} did not start: check "
                                "the CUDA / cuDNN libraries onnxruntime needs); set the provider to cpu to run "
                                "on the CPU")
        first = self.session.get_inputs()[0].shape
        self.fixed_batch = bool(first) and first[0] == 1

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    def run(self, feeds: Mapping[str, np.ndarray], per_item: frozenset[str] = frozenset()) -> np.ndarray:
        """The first output for a batch. ``feeds`` arrays named in ``per_item`` have the batch as their first
        axis and are cut into chunks; the others (e.g. CodeFormer's ``weight``) are passed whole to every run.

        Returns (B, ...) float32.
        """
        items = {k: np.ascontiguousarray(v) for k, v in feeds.items() if k in per_item}
        whole = {k: np.ascontiguousarray(v) for k, v in feeds.items() if k not in per_item}
        sizes = {v.shape[0] for v in items.values()}
        if len(sizes) != 1:
            raise ValueError(f"per-item inputs disagree on the batch size: {sorted(sizes)}")
        n = sizes.pop()
        step = 1 if self.fixed_batch else max(1, self.batch_size)
        outs = []
        for start in range(0, n, step):
            chunk = {k: v[start:start + step] for k, v in items.items()}
            outs.append(self.session.run(None, {**chunk, **whole})[0])
        return np.concatenate(outs, axis=0).astype(np.float32, copy=False) if outs else np.zeros((0,), np.float32)
