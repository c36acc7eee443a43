"""The process group of a ``torchrun`` launch: NCCL on GPUs, gloo on CPU; no process management of our own.

``torchrun`` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT for every worker; a plain ``vidswap
train`` (no such variables) is one process without a process group. A master that cannot be reached within
``run.dist_timeout_s`` is a :class:`DistributedError` (exit 75, retryable) naming the address.

A torchrun worker ends with :func:`leave_process` (``os._exit`` after flushing), not through the interpreter's
finalization: gloo's worker threads outlive ``destroy_process_group`` (DDP's C++ reducer keeps the group), and one
that releases a finished collective's tensors while the interpreter finalizes needs the GIL, is ended by the
interpreter mid-destructor and aborts the whole process ("terminate called without an active exception", exit -6
after the run's work was done and saved). ``benchmarks/bench_ddp_exit.py`` (2 processes, two DDP steps and an
``all_reduce``, beside a loaded 2-core machine's other work): 15 of 30 runs aborted at exit, none of 30 with
:func:`leave_process` (a barrier before the teardown: 2 of 40 still did; RESULTS.md, s18).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist

from vidswap.errors import EXIT_RESOURCE, VidswapError

__all__ = ["DistributedError", "DistInfo", "init_distributed", "shutdown", "all_reduce_mean", "any_flag", "wrap_ddp",
           "torchrun_worker", "leave_process"]


class DistributedError(VidswapError):
    """The process group could not be formed or broke (unreachable master, a peer died): exit 75, retryable."""

    exit_code = EXIT_RESOURCE


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world > 1


def _device(choice: str, local_rank: int) -> torch.device:
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DistributedError("run.device is cuda but no CUDA device is available")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def init_distributed(device: str = "auto", timeout_s: float = 300.0) -> DistInfo:
    """Join the process group torchrun describes in the environment (or none for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _device(device, local)
    if world <= 1:
        return DistInfo(device=dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    try:
        dist.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s))
    except Exception as exc:  # noqa: BLE001 - c10d raises DistNetworkError, DistStoreError, RuntimeError, ValueError
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DistributedError(f"rank {rank}/{world}: cannot join the {backend} process group at master {where} "
                               f"within {timeout_s:g} s ({type(exc).__name__}: {msg[:200]}); check MASTER_ADDR/"
                               f"MASTER_PORT, that rank 0 is running and the port is open") from None
    return DistInfo(rank, local, world, dev)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def torchrun_worker() -> bool:
    """Whether this process is one of several that torchrun's agent started (``WORLD_SIZE`` > 1 and the agent's
    ``TORCHELASTIC_RUN_ID``): a process that only has the rendezvous variables (a test calling the CLI in-process)
    is not one, and ends as usual."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "TORCHELASTIC_RUN_ID" in os.environ
    except ValueError:
        return False


def leave_process(code: int) -> NoReturn:
    """End this process with exit status ``code`` now: logging and the standard streams flushed, then ``os._exit``,
    skipping the interpreter's finalization (where gloo's leftover worker threads can abort it; module doc). Call
    it when everything the process writes is closed."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more can reach it
            pass
    os._exit(code)


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean of a tensor over the processes (itself for one)."""
    if not info.enabled:
        return values
    out = values.detach().clone().to(info.device)
    dist.all_reduce(out)
    return out / info.world


def any_flag(flags: list[bool], info: DistInfo) -> list[bool]:
    """Each flag OR-ed over the processes (so every process takes the same branch)."""
    if not info.enabled:
        return flags
    t = torch.tensor([float(f) for f in flags], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v > 0) for v in t.tolist()]


def wrap_ddp(module: torch.nn.Module, info: DistInfo) -> torch.nn.Module:
    """``module`` under DistributedDataParallel when the run has a process group (on its GPU for CUDA); else
    ``module`` itself."""
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    dev = info.device
    return DistributedDataParallel(module, device_ids=[dev.index] if dev.type == "cuda" else None)
