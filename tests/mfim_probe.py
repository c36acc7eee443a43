"""Run by tests/test_train_mfim.py (directly, or under torchrun for the DDP check; not a test itself).

    python tests/mfim_probe.py train.yaml OUT.safetensors

Builds the MFIM trainer from train.yaml in this process (joining torchrun's process group when launched by it),
runs two steps and writes, on rank 0, the gradients of step 1 after DDP's all-reduce (``g1.E.*`` encoder,
``g1.D.*`` discriminator) and the weights after step 2 (``w.E.*``, ``w.D.*``).
"""

from __future__ import annotations

import sys

import torch
from safetensors.torch import save_file

from vidswap.train.facedancer.distributed import init_distributed, leave_process, shutdown
from vidswap.train.mfim.config import load_mfim_config
from vidswap.train.mfim.trainer import MFIMTrainer


def main(config: str, out: str) -> None:
    cfg = load_mfim_config(config)
    torch.set_num_threads(cfg.run.threads or 1)  # the same kernels in every process: threads change rounding
    info = init_distributed("cpu", 60)
    try:
        trainer = MFIMTrainer(cfg, info, log=lambda _m: None)
        parts = {"E": trainer.model.encoder, "D": trainer.disc}
        trainer.run_steps(1)
        tensors = {f"g1.{tag}.{n}": p.grad.detach().clone() for tag, mod in parts.items()
                   for n, p in mod.named_parameters() if p.grad is not None}
        trainer.run_steps(2)
        tensors.update({f"w.{tag}.{n}": p.detach().clone() for tag, mod in parts.items()
                        for n, p in mod.named_parameters()})
        if info.rank == 0:
            save_file(tensors, out)
    finally:
        shutdown(info)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    leave_process(0)  # not through the interpreter's finalization (gloo's threads; distributed.py)
