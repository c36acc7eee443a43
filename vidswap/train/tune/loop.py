"""The optimisation loop of per-clip tuning: Adam on the generator (network weights and output gains), the
objective's loss terms on sampled batches, validation on held-out pairs, early stopping on a plateau; the best
validation state is kept -- which is the starting point itself when tuning never beat it.

Deterministic: seeded initialisation and ``torch.Generator`` sampling, deterministic algorithms during the
optimisation; the same inputs on the same machine give bit-identical weights. Mixed precision (bf16, or fp16
with loss scaling) on CUDA only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from vidswap.faces.topology import load_topology
from vidswap.swap.base import SourceIdentity, SwapCore
from vidswap.swap.generator import SwapGenerator
from vidswap.swap.identity_torch import SFaceTorch, load_sface
from vidswap.train.tune.data import TuneData
from vidswap.train.tune.objective import Pool, build_pool, loss_terms
from vidswap.train.tune.params import TuneParams


@dataclass
class TuneInfo:
    """What a tuning run did (also written as JSON next to the weights)."""

    key: str
    cached: bool
    steps_run: int = 0
    best_step: int = 0
    initial_val: float = float("nan")
    best_val: float = float("nan")
    stopped_early: bool = False
    seconds: float = 0.0
    seconds_per_step: float = 0.0
    device: str = "cpu"
    frames: list[int] = field(default_factory=list)
    weights: str | None = None
    plot: str | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    val_history: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> str:
        def clean(x):
            if isinstance(x, float) and not math.isfinite(x):
                return None
            if isinstance(x, dict):
                return {k: clean(v) for k, v in x.items()}
            if isinstance(x, list):
                return [clean(v) for v in x]
            return x

        return json.dumps(clean(asdict(self)), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "TuneInfo":
        raw = json.loads(text)
        for k in ("initial_val", "best_val"):
            if raw.get(k) is None:
                raw[k] = float("nan")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


@contextmanager
def _deterministic(device: torch.device):
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def validate(gen: SwapGenerator, pool: Pool, params: TuneParams, sface: SFaceTorch, anchors: list[Tensor],
             amp: tuple[bool, torch.dtype]) -> dict[str, float]:
    """The mean loss terms over the held-out pairs (empty when nothing is held out)."""
    pairs = torch.nonzero(pool.pair_val).flatten()
    cons = torch.nonzero(pool.cons_val).flatten()
    if pairs.numel() == 0 and cons.numel() == 0:
        return {}
    sums: dict[str, float] = {}
    n = 0
    with torch.no_grad():
        chunk = max(1, params.batch // 2)
        p_chunks = list(pairs.split(chunk)) or [pairs]
        c_chunks = list(cons.split(max(1, chunk // 2))) or [cons]
        for k in range(max(len(p_chunks), len(c_chunks))):
            p = p_chunks[k] if k < len(p_chunks) else pairs[:0]
            c = c_chunks[k] if k < len(c_chunks) else cons[:0]
            t = loss_terms(gen, pool, p, c, params, sface, anchors, amp, with_locality=False)
            for key, v in t.items():
                sums[key] = sums.get(key, 0.0) + float(v)
            n += 1
    return {k: v / n for k, v in sums.items()}


def optimiser(generator: SwapGenerator, params: TuneParams, dev: torch.device):
    """Adam (network weights at ``lr``, the gains γ at ``gain_lr``), the loss scaler and the autocast setting."""
    use_amp = dev.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    net_params = [p for n, p in generator.named_parameters() if n != "gain"]
    opt = torch.optim.Adam([{"params": net_params, "lr": params.lr},
                            {"params": [generator.gain], "lr": params.gain_lr}], betas=(0.9, 0.99))
    return opt, scaler, (use_amp, amp_dtype)


def train_step(generator: SwapGenerator, opt, scaler, pool: Pool, pairs: Tensor, cons: Tensor, params: TuneParams, sface,
                anchors: list[Tensor], amp, with_identity: bool) -> dict[str, Tensor]:
    """One optimisation step on self-reenactment pairs ``pairs`` and consecutive swap pairs ``cons``."""
    terms = loss_terms(generator, pool, pairs, cons, params, sface, anchors, amp, with_identity=with_identity)
    opt.zero_grad(set_to_none=True)
    scaler.scale(terms["total"]).backward()
    scaler.step(opt)
    scaler.update()
    return terms


def batch_split(params: TuneParams, n_train_pairs: int, n_train_cons: int) -> tuple[int, int]:
    """(self-reenactment samples, consecutive swap pairs) per step for ``params.batch``."""
    n_cons = min(n_train_cons, max(0, int(round(params.batch * params.swap_fraction / 2))))
    if params.w_identity <= 0 and params.w_temporal <= 0 and params.w_mask_temporal <= 0:
        n_cons = 0
    n_rec = max(1, params.batch - 2 * n_cons) if n_train_pairs else 0
    return n_rec, n_cons


def latest_losses(history: dict[str, list[float]], names: Sequence[str]) -> dict[str, str]:
    """The progress display of the loss terms: each term's latest measured value (terms measured every N-th step,
    like identity, keep their last value in between instead of showing nan); terms never measured are left out."""
    shown = {}
    for name in names:
        measured = [v for v in history.get(name, []) if v == v]  # v == v: not nan
        if measured:
            shown[name] = f"{measured[-1]:.4f}"
    return shown


def tune_generator(generator: SwapGenerator, data: TuneData, identity: SourceIdentity, core: SwapCore,
                   params: TuneParams, *, device: torch.device | str | None = None, sface: SFaceTorch | None = None,
                   face_loop: Sequence[int] | None = None, progress: bool = True,
                   steps: int | None = None) -> TuneInfo:
    """Tune ``generator`` in place on a clip's training data; keeps the best validation state.

    Args:
        generator: the starting point (a generic checkpoint or the zero-gain initialisation).
        data: :func:`collect_tune_data`.
        identity: the source identity (prepared by ``core``; its ``embedding`` conditions the generator).
        core: the swap core that renders (same settings as the render pass).
        params: :class:`TuneParams`.
        device: tuning device (default: the generator's).
        sface: a :class:`~vidswap.swap.identity_torch.SFaceTorch` (default: loaded from the model cache).
        face_loop: face-oval loop (default: the mesh topology's).
        progress: show a tqdm bar with the losses.
        steps: override of the step count (default ``params.steps_for(device)``).

    Returns:
        :class:`TuneInfo` (history of every loss term; key and paths are filled in by
        :func:`vidswap.train.tune.cache.tune_for_shot`).
    """
    dev = torch.device(device) if device is not None else next(generator.parameters()).device
    generator.to(dev).train()
    if sface is None:
        sface = load_sface(device=dev)
    sface = sface.to(dev)
    if face_loop is None:
        face_loop = load_topology().regions["face_oval"]
    loop = torch.as_tensor(face_loop, dtype=torch.long, device=dev)
    n_steps = params.steps_for(dev) if steps is None else int(steps)
    t_start = time.perf_counter()
    data = data.to(dev)
    pool = build_pool(data, identity, core, sface, params, loop, generator.config, dev)

    opt, scaler, amp = optimiser(generator, params, dev)
    anchors = [p.detach().clone() for p in generator.parameters()]
    g = torch.Generator().manual_seed(params.seed + 2)
    train_pairs = torch.nonzero(~pool.pair_val).flatten().cpu()
    train_cons = torch.nonzero(~pool.cons_val).flatten().cpu()
    n_rec, n_cons = batch_split(params, len(train_pairs), len(train_cons))

    history: dict[str, list[float]] = {}
    val_history: dict[str, list[float]] = {"step": []}
    info = TuneInfo(key="", cached=False, device=str(dev), frames=list(data.numbers))

    def record_val(step: int) -> float | None:
        v = validate(generator, pool, params, sface, anchors, amp)
        if not v:
            return None
        val_history["step"].append(step)
        for k, x in v.items():
            val_history.setdefault(k, []).append(x)
        return v["total"]

    with _deterministic(dev):
        best = record_val(0)
        info.initial_val = float("nan") if best is None else best
        best_state = {k: v.detach().clone() for k, v in generator.state_dict().items()}
        best_step, bad = 0, 0
        bar = tqdm(range(1, n_steps + 1), desc="tune", unit="step", disable=not progress, dynamic_ncols=True)
        step = 0
        for step in bar:
            pairs = train_pairs[torch.randperm(len(train_pairs), generator=g)[:n_rec]] if n_rec else train_pairs[:0]
            cons = train_cons[torch.randperm(len(train_cons), generator=g)[:n_cons]] if n_cons else train_cons[:0]
            with_id = step % max(1, params.identity_every) == 0
            terms = train_step(generator, opt, scaler, pool, pairs.to(dev), cons.to(dev), params, sface, anchors,
                                amp, with_id)
            history.setdefault("step", []).append(step)
            for k, v in terms.items():
                history.setdefault(k, []).append(float(v.detach()) if with_id or k != "identity" else float("nan"))
            bar.set_postfix(latest_losses(history, ("l1", "ssim", "identity", "temporal", "total")))
            if best is not None and (step % max(1, params.val_every) == 0 or step == n_steps):
                v = record_val(step)
                bar.set_postfix({"val": f"{v:.4f}", "best": f"{best:.4f}"})
                if v < best * (1.0 - params.min_delta):
                    best, best_step, bad = v, step, 0
                    best_state = {k: x.detach().clone() for k, x in generator.state_dict().items()}
                else:
                    bad += 1
                    if bad >= params.patience:
                        info.stopped_early = True
                        break
        bar.close()
    if best is not None:
        generator.load_state_dict(best_state)
    else:
        best_step = step
    generator.eval()
    info.steps_run = step
    info.best_step = best_step
    info.best_val = float("nan") if best is None else float(best)
    info.seconds = time.perf_counter() - t_start
    info.seconds_per_step = info.seconds / max(step, 1)
    info.history = history
    info.val_history = val_history
    return info
