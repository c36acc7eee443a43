"""How often a two-process gloo DDP run aborts at exit, ending through the interpreter's finalization or through
`leave_process` (os._exit after flushing; `vidswap.train.facedancer.distributed`).

Each run is `torchrun --nproc-per-node 2` of this file in worker mode: two DDP steps of a small conv net, one
`all_reduce` of a Python tensor (as the trainers' loss means and flags are), `destroy_process_group`, then the exit.
gloo's worker threads outlive the group (DDP's C++ reducer keeps it); one that releases a finished collective's
tensors while the interpreter finalizes aborts the process ("terminate called without an active exception", exit
-6). Optional CPU burners load the machine as a busy CI runner does (the abort is a race: rarer on an idle machine).

    python benchmarks/bench_ddp_exit.py --runs 40 --burners 2
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(mode: str) -> None:
    from datetime import timedelta

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from vidswap.train.facedancer.distributed import leave_process

    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU(), torch.nn.Conv2d(16, 16, 1))
    ddp = DistributedDataParallel(net)
    opt = torch.optim.Adam(ddp.parameters())
    for _ in range(2):
        opt.zero_grad()
        ddp(torch.randn(2, 3, 32, 32)).mean().backward()
        opt.step()
    flag = torch.ones(3)
    dist.all_reduce(flag)
    dist.destroy_process_group()
    if mode == "leave":
        leave_process(0)


def burner(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def one_run(mode: str) -> tuple[int, bool]:
    """(torchrun's exit status, whether a worker printed the abort)."""
    port = random.randint(20000, 40000)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                        str(port), __file__, "--worker", mode], env=env, capture_output=True, text=True,
                       timeout=300)
    return r.returncode, "terminate called" in r.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=40, help="runs per mode")
    ap.add_argument("--modes", default="finalize,leave", help="finalize (plain exit), leave (leave_process)")
    ap.add_argument("--burners", type=int, default=2, help="busy-loop processes alongside (load)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--burn", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.burn:
        burner(3600)
        return
    if args.worker:
        worker(args.worker)
        return
    modes = args.modes.split(",")
    burners = [subprocess.Popen([sys.executable, __file__, "--burn"]) for _ in range(args.burners)]
    counts = {m: [0, 0] for m in modes}  # failed runs, runs that printed the abort
    try:
        for _ in range(args.runs):  # modes interleaved: both see the same load
            for m in modes:
                code, aborted = one_run(m)
                counts[m][0] += code != 0
                counts[m][1] += aborted
    finally:
        for b in burners:
            b.kill()
    print(f"{args.runs} two-process runs per mode, {args.burners} CPU burners, load {os.getloadavg()[0]:.1f}")
    print("| exit | failed runs | aborted at exit |\n|---|---|---|")
    for m in modes:
        print(f"| {m} | {counts[m][0]} / {args.runs} | {counts[m][1]} |")


if __name__ == "__main__":
    main()
