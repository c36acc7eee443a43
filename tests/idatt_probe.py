"""Run by tests/test_train_idatt.py (directly, or under torchrun for the DDP check; not a test itself).

    python tests/idatt_probe.py train.yaml OUT.safetensors [train2.yaml OUT2.safetensors ...]

Builds the IDATT trainer from train.yaml in this process (joining torchrun's process group when launched by it),
runs one step of each stage (encoder_steps: 1, idatt_steps: 1, then the blending stage) and writes, on rank 0,
each step's gradients after DDP's all-reduce (``g1.*``, ``g2.*``, ``g3.*``) and the weights after step 3 (``w.*``).
Several (config, output) pairs run one after the other in this process (one interpreter start; not under torchrun).
"""

from __future__ import annotations

import sys

import torch
from safetensors.torch import save_file

from vidswap.train.facedancer.distributed import init_distributed, leave_process, shutdown
from vidswap.train.idatt.config import load_idatt_config
from vidswap.train.idatt.trainer import IDATTTrainer


def main(config: str, out: str) -> None:
    cfg = load_idatt_config(config)
    torch.set_num_threads(cfg.run.threads or 1)  # the same kernels in every process: threads change rounding
    info = init_distributed("cpu", 60)
    try:
        trainer = IDATTTrainer(cfg, info, log=lambda _m: None)
        tensors = {}
        for step in (1, 2, 3):
            trainer.run_steps(step)
            tensors.update({f"g{step}.{n}": p.grad.detach().clone() for n, p in trainer.model.named_parameters()
                            if p.grad is not None and p.requires_grad})
        tensors.update({f"w.{n}": p.detach().clone() for n, p in trainer.model.named_parameters()
                        if not n.startswith("generator.")})
        if info.rank == 0:
            save_file(tensors, out)
    finally:
        shutdown(info)


if __name__ == "__main__":
    for i in range(1, len(sys.argv), 2):
        main(sys.argv[i], sys.argv[i + 1])
    leave_process(0)  # not through the interpreter's finalization (gloo's threads; distributed.py)
