"""Run by tests/test_train_megafs.py (directly, or under torchrun for the DDP check; not a test itself).

    python tests/megafs_probe.py train.yaml OUT.safetensors

Builds the MegaFS trainer from train.yaml in this process (joining torchrun's process group when launched by it),
runs step 1 (the encoder stage, encoder_steps: 1) and step 2 (the FTM stage) and writes, on rank 0, the gradients of
each step after DDP's all-reduce (``g1.E.*``, ``g2.F.*``) and the weights after step 2 (``w.E.*``, ``w.F.*``).
"""

from __future__ import annotations

import sys

import torch
from safetensors.torch import save_file

from vidswap.train.facedancer.distributed import init_distributed, leave_process, shutdown
from vidswap.train.megafs.config import load_megafs_config
from vidswap.train.megafs.trainer import MegaFSTrainer


def main(config: str, out: str) -> None:
    cfg = load_megafs_config(config)
    torch.set_num_threads(cfg.run.threads or 1)  # the same kernels in every process: threads change rounding
    info = init_distributed("cpu", 60)
    try:
        trainer = MegaFSTrainer(cfg, info, log=lambda _m: None)
        enc, ftm = trainer.model.encoder, trainer.model.ftm
        trainer.run_steps(1)
        tensors = {f"g1.E.{n}": p.grad.detach().clone() for n, p in enc.named_parameters() if p.grad is not None}
        trainer.run_steps(2)
        tensors.update({f"g2.F.{n}": p.grad.detach().clone() for n, p in ftm.named_parameters()
                        if p.grad is not None})
        tensors.update({f"w.E.{n}": p.detach().clone() for n, p in enc.named_parameters()})
        tensors.update({f"w.F.{n}": p.detach().clone() for n, p in ftm.named_parameters()})
        if info.rank == 0:
            save_file(tensors, out)
    finally:
        shutdown(info)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
    leave_process(0)  # not through the interpreter's finalization (gloo's threads; distributed.py)
