"""Run by tests/test_train_facedancer_run.py (directly, or under torchrun for the DDP check; not a test itself).

    python tests/facedancer_probe.py train.yaml OUT.safetensors STEPS

Builds the trainer from train.yaml in this process (joining torchrun's process group when launched by it),
runs STEPS steps and writes, on rank 0, the generator and discriminator gradients of the first step (``g.G.*``,
``g.D.*``: after DDP's all-reduce) and the weights after the last (``w.G.*``, ``w.D.*``).
"""

from __future__ import annotations

import sys

import torch
from safetensors.torch import save_file

from vidswap.train.facedancer.config import load_train_config
from vidswap.train.facedancer.distributed import init_distributed, leave_process, shutdown
from vidswap.train.facedancer.trainer import Trainer


def main(config: str, out: str, steps: int) -> None:
    cfg = load_train_config(config)
    torch.set_num_threads(cfg.run.threads or 1)  # the same kernels in every process: threads change rounding
    info = init_distributed("cpu", 60)
    try:
        trainer = Trainer(cfg, info, log=lambda _m: None)
        modules = (("G", trainer.generator), ("D", trainer.disc))
        trainer.run_steps(1)
        tensors = {f"g.{tag}.{name}": p.grad.detach().clone()
                   for tag, module in modules for name, p in module.named_parameters() if p.grad is not None}
        trainer.run_steps(steps)
        tensors.update({f"w.{tag}.{name}": p.detach().clone() for tag, module in modules
                        for name, p in module.named_parameters()})
        if info.rank == 0:
            save_file(tensors, out)
    finally:
        shutdown(info)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    leave_process(0)  # not through the interpreter's finalization (gloo's threads; distributed.py)
