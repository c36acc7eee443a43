"""Reading a tagged safetensors checkpoint (a ``format`` metadata entry names what wrote it): the one read and the
one set of error messages every trained model's file shares (FaceDancer's training and inference files, MegaFS's),
for the swap cores and the trainers alike (the swap layer does not import the trainers)."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError, safe_open
from torch import Tensor, nn

from vidswap.errors import ModelError

__all__ = ["read_tagged_checkpoint", "load_prefixed_module"]


def read_tagged_checkpoint(path: str | Path, formats: tuple[str, ...], noun: str, kind: str,
                           hint: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """(tensors on the CPU, metadata) of the safetensors file ``path`` whose ``format`` metadata is one of
    ``formats``. ModelError (exit 4): ``"<noun> <path> does not exist"``, ``"<noun> <path> is unreadable (corrupt,
    truncated or not safetensors): ..."``, ``"<path> is not a <kind> checkpoint (format ...); give a file written
    by <hint>"``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{noun} {path} does not exist")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{noun} {path} is unreadable (corrupt, truncated or not safetensors): {exc}") from None
    if meta.get("format") not in formats:
        raise ModelError(f"{path} is not a {kind} checkpoint (format {meta.get('format')!r}); give a file written "
                         f"by {hint}")
    return tensors, meta


def load_prefixed_module(module: nn.Module, tensors: dict[str, Tensor], prefix: str, mismatch: str) -> None:
    """Load the ``prefix.*`` tensors of a checkpoint into ``module`` (strict). ModelError (exit 4)
    ``"<mismatch> (<the first line of torch's message>)"`` when they do not fit it."""
    sub = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(sub, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelError(f"{mismatch} ({first})") from None
