"""Run by tests/test_train_e4s.py (under torchrun for the DDP check, or imported for the 1-process reference; not
a test itself).

    python tests/e4s_probe.py train.yaml OUT.safetensors

Builds the E4S trainer from train.yaml in this process (joining torchrun's process group when launched by it), runs
two steps and writes, on rank 0, the gradients of each step after DDP's all-reduce (``g1.*``, ``g2.*``: the encoder
and the fine-tuned generator layers) and the weights after step 2 (``w.*``).
"""

from __future__ import annotations

import sys

import torch
from safetensors.torch import save_file

from vidswap.train.e4s.config import load_e4s_config
from vidswap.train.e4s.trainer import E4STrainer
from vidswap.train.facedancer.distributed import init_distributed, leave_process, shutdown


def probe(config: str, out: str, identity=None) -> None:
    cfg = load_e4s_config(config)
    torch.set_num_threads(cfg.run.threads or 1)  # the same kernels in every process: threads change rounding
    info = init_distributed("cpu", 60)
    try:
        trainer = E4STrainer(cfg, info, log=lambda _m: None, identity=identity)
        named = [(f"E.{n}", p) for n, p in trainer.model.encoder.named_parameters()]
        named += [(f"S.{n}", p) for n, p in trainer.model.generator.named_parameters() if p.requires_grad]
        tensors = {}
        for step in (1, 2):
            trainer.run_steps(step)
            tensors.update({f"g{step}.{n}": p.grad.detach().clone() for n, p in named if p.grad is not None})
        tensors.update({f"w.{n}": p.detach().clone() for n, p in named})
        if info.rank == 0:
            save_file(tensors, out)
    finally:
        shutdown(info)


if __name__ == "__main__":
    probe(sys.argv[1], sys.argv[2])
    leave_process(0)  # not through the interpreter's finalization (gloo's threads; distributed.py)
