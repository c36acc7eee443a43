"""StyleGAN2 checkpoints: NVIDIA's pickles read without running their code, and our safetensors form.

NVIDIA's stylegan2-ada-pytorch snapshots (``network-snapshot-*.pkl``, the public FFHQ files) are plain pickles of
``{'G', 'D', 'G_ema', 'augment_pipe', 'training_set_kwargs'}``. Every network object is saved through
``torch_utils.persistence``: it reduces to ``_reconstruct_persistent_obj(meta)`` where ``meta`` holds the class's
*source code* (``module_src``), ``class_name`` and the object's ``__dict__`` (``state``); unpickling normally
executes that source. Tensors reduce to ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` over storages
saved as ``torch.storage._load_from_bytes(torch.save bytes)``.

:class:`RestrictedUnpickler` resolves only a short whitelist of globals, each mapped to a data-only function of
ours: persistent objects become :class:`PersistentRecord` (class name + state; the source is never compiled),
storages are read with ``torch.load(weights_only=True)``. Any other global (``os.system``, ``builtins.eval``, an
unknown class) stops the import with :class:`UnsafeCheckpointError` before anything runs. ``pickle.load`` and
``torch.load(weights_only=False)`` are never called on a user file.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vidswap.errors import ModelError
from vidswap.swap.stylegan.generator import StyleGAN2Generator, StyleGANConfig

FORMAT = "vidswap-stylegan2"


class UnsafeCheckpointError(ModelError):
    """A pickle asks for code vidswap will not run (exit 4)."""


@dataclass
class PersistentRecord:
    """What a ``torch_utils.persistence`` object holds, without its code: class name and ``__dict__``."""

    class_name: str
    state: dict = field(default_factory=dict)


class PlainDict(dict):
    """Stands in for ``dnnlib.util.EasyDict`` (a dict subclass); attributes set by BUILD are kept as attributes."""


def _reconstruct_persistent(meta) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
        raise UnsafeCheckpointError("checkpoint holds a persistent object of an unknown kind; not a StyleGAN pickle")
    state = meta.get("state")
    return PersistentRecord(meta["class_name"], dict(state) if isinstance(state, dict) else {})


def _storage_from_bytes(data: bytes):
    """A storage saved by ``torch.save`` inside the pickle, read with the weights-only loader."""
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes; only latin-1 is accepted."""
    if encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"checkpoint asks for text encoding {encoding!r}")
    return text.encode("latin1")


def _numpy_allowed() -> dict:
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(core, "_reconstruct")] = multiarray._reconstruct
        allowed[(core, "scalar")] = multiarray.scalar
    return allowed


def _allowed_globals() -> dict:
    allowed = {
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _storage_from_bytes,
        ("collections", "OrderedDict"): OrderedDict,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("__builtin__", "set"): set,  # protocol-2 pickles name builtins the Python 2 way
        ("__builtin__", "frozenset"): frozenset,
        ("_codecs", "encode"): _latin1_bytes,
        ("dnnlib.util", "EasyDict"): PlainDict,
        ("dnnlib.easydict", "EasyDict"): PlainDict,
        ("torch", "float32"): torch.float32,
        ("torch", "float16"): torch.float16,
    }
    allowed.update(_numpy_allowed())
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only :func:`_allowed_globals`; everything else raises before it can run."""

    def __init__(self, fh, source: str):
        super().__init__(fh)
        self._allowed = _allowed_globals()
        self._source = source

    def find_class(self, module: str, name: str):
        target = self._allowed.get((module, name))
        if target is None:
            raise UnsafeCheckpointError(
                f"{self._source}: refused: the pickle asks for {module}.{name}, which vidswap will not load "
                "(only StyleGAN2 network data is read; no code from checkpoints is run)")
        return target

    def persistent_load(self, pid):
        raise UnsafeCheckpointError(f"{self._source}: refused: unexpected persistent id in the pickle")


def read_nvidia_pickle(path: str | Path) -> dict:
    """Unpickle an NVIDIA snapshot with the restricted unpickler. -> the top-level dict (records, not modules)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = RestrictedUnpickler(fh, path.name).load()
    except (UnsafeCheckpointError, ModelError):
        raise
    except OSError as exc:
        raise ModelError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except Exception as exc:  # truncated or corrupt bytes raise all kinds of unpickling errors
        raise ModelError(f"{path}: not a readable StyleGAN pickle (corrupt or truncated: {exc})") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a StyleGAN snapshot (expected a dict with 'G_ema', got {type(data).__name__})")
    return data


def flatten_record(record: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """The record tree's parameters and buffers as one state dict, ``mapping.fc0.weight`` style names."""
    out: dict[str, torch.Tensor] = {}
    for key in ("_parameters", "_buffers"):
        for name, tensor in (record.state.get(key) or {}).items():
            if tensor is not None:
                if not isinstance(tensor, torch.Tensor):
                    raise ModelError(f"checkpoint entry {prefix}{name} is not a tensor")
                out[prefix + name] = tensor.detach()
    for name, child in (record.state.get("_modules") or {}).items():
        if isinstance(child, PersistentRecord):
            out.update(flatten_record(child, f"{prefix}{name}."))
    return out


def _find_record(record: PersistentRecord, dotted: str) -> PersistentRecord | None:
    node = record
    for part in dotted.split("."):
        node = (node.state.get("_modules") or {}).get(part)
        if not isinstance(node, PersistentRecord):
            return None
    return node


def infer_config(tensors: dict[str, torch.Tensor], generator: PersistentRecord | None = None) -> StyleGANConfig:
    """The :class:`StyleGANConfig` that fits a StyleGAN2 state dict (shapes), plus gains/clamps the records carry."""
    if any(k.startswith(("synthesis.L0_", "synthesis.input.")) for k in tensors):
        raise ModelError("this is a StyleGAN3 generator; vidswap's StyleGAN cores need StyleGAN2")
    if any(k.startswith("mapping.embed.") for k in tensors):
        raise ModelError("this is a class-conditional generator; vidswap needs an unconditional face generator")
    fcs = sorted(int(m.group(1)) for k in tensors if (m := re.fullmatch(r"mapping\.fc(\d+)\.weight", k)))
    blocks = sorted(int(m.group(1)) for k in tensors if (m := re.fullmatch(r"synthesis\.b(\d+)\.conv1\.weight", k)))
    if not fcs or not blocks or "synthesis.b4.const" not in tensors:
        raise ModelError("not a StyleGAN2 generator: mapping.fc*/synthesis.b*.conv1/synthesis.b4.const missing")
    channels = {res: int(tensors[f"synthesis.b{res}.conv1.weight"].shape[0]) for res in blocks}
    channel_max = max(channels.values())
    below = [c * r for r, c in channels.items() if c < channel_max]
    resolution = max(blocks)
    channel_base = below[0] if below else channel_max * resolution
    mapping_lr, conv_clamp = 0.01, None
    if generator is not None:
        fc0 = _find_record(generator, "mapping.fc0")
        if fc0 is not None and isinstance(fc0.state.get("bias_gain"), (int, float)):
            mapping_lr = float(fc0.state["bias_gain"])
        conv = _find_record(generator, "synthesis.b4.conv1")
        if conv is not None and isinstance(conv.state.get("conv_clamp"), (int, float)):
            conv_clamp = float(conv.state["conv_clamp"])
    try:
        return StyleGANConfig(
            resolution=resolution,
            z_dim=int(tensors["mapping.fc0.weight"].shape[1]),
            w_dim=int(tensors[f"mapping.fc{fcs[-1]}.weight"].shape[0]),
            mapping_layers=len(fcs), mapping_lr=mapping_lr, channel_base=channel_base, channel_max=channel_max,
            img_channels=int(tensors[f"synthesis.b{resolution}.torgb.weight"].shape[0]), conv_clamp=conv_clamp)
    except (KeyError, ValueError) as exc:
        raise ModelError(f"not a StyleGAN2 generator this importer knows: {exc}") from exc


def build_generator(cfg: StyleGANConfig, tensors: dict[str, torch.Tensor], source: str) -> StyleGAN2Generator:
    """A generator with exactly these tensors: missing, unexpected or mis-shaped entries are a ModelError."""
    with torch.device("meta"):
        skeleton = StyleGAN2Generator(cfg)
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}")
        raise ModelError(f"{source}: not the StyleGAN2 'skip' generator vidswap builds ({'; '.join(parts)})")
    wrong = [k for k, shape in expected.items() if tuple(tensors[k].shape) != shape]
    if wrong:
        raise ModelError(f"{source}: tensor shapes do not fit a StyleGAN2 generator: {', '.join(wrong[:4])}")
    gen = StyleGAN2Generator(cfg)
    gen.load_state_dict({k: v.float() for k, v in tensors.items()})
    return gen.eval().requires_grad_(False)


def import_nvidia_pickle(path: str | Path, network: str = "G_ema") -> StyleGAN2Generator:
    """NVIDIA snapshot -> our generator (``G_ema`` by default, the one used for inference)."""
    data = read_nvidia_pickle(path)
    record = data.get(network)
    if not isinstance(record, PersistentRecord):
        known = ", ".join(sorted(k for k, v in data.items() if isinstance(v, PersistentRecord))) or "none"
        raise ModelError(f"{Path(path).name}: no network {network!r} in the snapshot (networks: {known})")
    tensors = flatten_record(record)
    return build_generator(infer_config(tensors, record), tensors, Path(path).name)


def save_generator(gen: StyleGAN2Generator, path: str | Path) -> Path:
    """Write the generator as safetensors with its config in the metadata (written to a temp name, then renamed)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    tensors = {k: v.detach().cpu().contiguous() for k, v in gen.state_dict().items()}
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "config": json.dumps(gen.cfg.to_dict())})
    tmp.replace(path)
    return path


def load_generator(path: str | Path, resolution: int | None = None) -> StyleGAN2Generator:
    """A converted safetensors generator; ``resolution`` (when given) must match the file's."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: StyleGAN checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{path.name}: not a readable safetensors file ({exc})") from exc
    if meta.get("format") != FORMAT:
        raise ModelError(f"{path.name}: not a vidswap StyleGAN2 checkpoint (convert it with "
                         "`vidswap models convert-stylegan`)")
    try:
        cfg = StyleGANConfig.from_dict(json.loads(meta["config"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{path.name}: StyleGAN config in the file is unreadable ({exc})") from exc
    if resolution is not None and cfg.resolution != resolution:
        raise ModelError(f"{path.name}: generator is {cfg.resolution}x{cfg.resolution}, this core needs "
                         f"{resolution}x{resolution}")
    return build_generator(cfg, tensors, path.name)


def convert_checkpoint(src: str | Path, dst: str | Path, network: str = "G_ema") -> tuple[Path, StyleGANConfig]:
    """NVIDIA pickle -> safetensors. Returns the written path and the generator's config."""
    gen = import_nvidia_pickle(src, network)
    return save_generator(gen, dst), gen.cfg
