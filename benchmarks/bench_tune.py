"""Benchmark of per-clip generator tuning: seconds per optimisation step, and the time to tune a clip.

    python benchmarks/bench_tune.py [--size 256] [--batch 8] [--steps 5] [--channels 32,64,128,256] [--threads N]

Times the real training step of :mod:`vidswap.train.tune` (generator forward and backward, multi-scale SSIM,
flow-warped temporal terms, the differentiable SFace identity hinge on every ``identity_every``-th step, Adam) on
a synthetic training pool of the requested crop size (random crops: the cost does not depend on the content),
on the CPU and, when available, CUDA (autocast bf16). Per device it prints the minimum and median wall time per
step, the minimum process CPU time per step (steadier on a shared machine), and the estimated tuning time of a
10 s 1080p clip with the default step counts. Tuning samples ``max_frames`` (48) frames whatever the clip's
length, so the estimate is ``steps x s/step`` plus a fixed preparation (reading and cropping the 48 frames,
rendering the self-reenactment pool, SFace and DIS flow), quoted from a measured run.

Recorded (2-core shared CPU VM, torch 2.13 CPU, 2 threads, load average 1.5 from other jobs; CUDA not
available in this session), minimum wall seconds per step / process CPU seconds per step:

    crop  batch  channels            params   s/step  cpu s/step  10 s 1080p clip (40 CPU steps)
    128   8      (16, 32, 64, 128)   1.65M    0.35    0.70        ~0.6 min
    128   8      (32, 64, 128, 256)  5.30M    0.96    1.90        ~1.0 min
    256   8      (16, 32, 64, 128)   1.65M    1.82    3.59        ~1.8 min
    256   8      (32, 64, 128, 256)  5.30M    5.14   10.13        ~4.3 min   <- the defaults
    512   4      (32, 64, 128, 256)  5.30M   15.2    27.4        ~12 min

The fixed preparation of 48 frames at 256 px (``collect_tune_data`` 0.4 s + training pool 9.1 s: 144
self-reenactment renders, SFace of 48 crops, 47 DIS flow pairs) measured 9.5 s on single_face_clip; decoding a
10 s 1080p clip adds a few seconds. Validation (every 5 steps, held-out pairs, forward only) adds ~15%. On a
loaded machine (load average 4-6) the same default tuning took 11-22 s per step end to end (457 s and 771 s for
the two sample clips). The FLOP count of the default generator is 17.8 GFLOP per 256 px crop forward (4.5 at
128 px); with CUDA the default 300 steps are expected to take well under a minute (not measured here).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch


def synthetic_pool(S: int, n: int, device: torch.device):
    """A training pool with the shapes of a real one (n frames, 3 textures per frame, n-1 consecutive pairs)."""
    from vidswap.train.tune.objective import Pool

    g = torch.Generator().manual_seed(0)

    def rnd(*shape):
        return torch.rand(*shape, generator=g).to(device)

    alpha = torch.zeros(n, 1, S, S, device=device)
    alpha[..., S // 5:-S // 6, S // 4:-S // 4] = 1.0
    P = 3 * n
    scale = 112.0 / (0.7 * S)
    align = torch.tensor([[scale, 0.0, 56.0 - scale * S / 2], [0.0, scale, 56.0 - scale * S / 2]], device=device)
    C = n - 1
    emb = torch.nn.functional.normalize(torch.randn(n, 128, generator=g), dim=1).to(device)
    return Pool(crops=rnd(n, 3, S, S), landmarks=rnd(n, 478, 3) * S, embeddings=emb, source=emb[0],
                 pair_j=torch.arange(P, device=device) % n, pair_i=(torch.arange(P, device=device) + 1) % n,
                 pair_render=rnd(P, 3, S, S), pair_alpha=alpha[torch.arange(P) % n], pair_region=alpha[torch.arange(P) % n],
                 pair_val=torch.zeros(P, dtype=torch.bool, device=device), swap_render=rnd(n, 3, S, S),
                 swap_alpha=alpha, swap_region=alpha, swap_align=align.expand(n, 2, 3).contiguous(),
                 swap_id_base=torch.full((n,), 0.5, device=device), cons_a=torch.arange(C, device=device),
                 cons_b=torch.arange(1, n, device=device), cons_flow=torch.zeros(C, 2, S, S, device=device),
                 cons_weight=alpha[1:], cons_val=torch.zeros(C, dtype=torch.bool, device=device))


def time_steps(device: torch.device, S: int, batch: int, steps: int, channels: tuple[int, ...]):
    from vidswap.swap.generator import GeneratorConfig, SwapGenerator
    from vidswap.swap.identity_torch import load_sface
    from vidswap.train.tune.loop import batch_split, optimiser, train_step
    from vidswap.train.tune.params import TuneParams

    params = TuneParams(batch=batch, channels=tuple(channels))
    torch.manual_seed(0)
    gen = SwapGenerator(GeneratorConfig(channels=tuple(channels))).to(device).train()
    with torch.no_grad():
        gen.gain.fill_(0.05)
    sface = load_sface(device=device)
    pool = synthetic_pool(S, 16, device)
    opt, scaler, amp = optimiser(gen, params, device)
    anchors = [p.detach().clone() for p in gen.parameters()]
    n_rec, n_cons = batch_split(params, len(pool.pair_j), len(pool.cons_a))
    walls, cpus = [], []
    for k in range(steps + 2):  # two warm-up steps
        pairs = torch.arange(k, k + n_rec, device=device) % len(pool.pair_j)
        cons = torch.arange(k, k + n_cons, device=device) % len(pool.cons_a)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        train_step(gen, opt, scaler, pool, pairs, cons, params, sface, anchors, amp,
                    with_identity=k % params.identity_every == 0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if k >= 2:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return params, gen.num_parameters(), walls, cpus, (n_rec, n_cons)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per device (after 2 warm-up steps)")
    ap.add_argument("--channels", default="32,64,128,256")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--prep-seconds", type=float, default=None,
                    help="measured fixed preparation time of a 48-frame 1080p clip (default: the recorded one)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    channels = tuple(int(c) for c in args.channels.split(","))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    prep = args.prep_seconds if args.prep_seconds is not None else PREP_SECONDS_CPU
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"tuning step: {args.size} px crops, batch {args.batch}, generator channels {channels}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.1f}")
    header = (f"{'device':<8}{'params':>9}{'split':>8}{'min s/step':>12}{'median':>9}{'cpu s/step':>12}"
              f"{'steps':>7}{'10s 1080p clip':>17}")
    print(header)
    print("-" * len(header))
    for dev in devices:
        params, n_params, walls, cpus, split = time_steps(dev, args.size, args.batch, args.steps, channels)
        steps = params.steps_for(dev)
        per = min(walls)
        total = 1.15 * steps * statistics.median(walls) + (prep if dev.type == "cpu" else prep / 4)
        print(f"{dev.type:<8}{n_params / 1e6:>8.2f}M{f'{split[0]}+2x{split[1]}':>8}{per:>12.2f}"
              f"{statistics.median(walls):>9.2f}{min(cpus):>12.2f}{steps:>7}{total / 60:>13.1f} min")
    print(f"(clip estimate = default steps x median s/step x 1.15 (validation) + {prep:.0f} s preparation of the 48 "
          "sampled frames; the tuning sample does not grow with the clip length)")


#: fixed preparation per clip on the CPU (read + crop 48 frames, self-reenactment pool, SFace, DIS), seconds:
#: 9.5 s measured on single_face_clip at 256 px crops, plus decoding 10 s of 1080p
PREP_SECONDS_CPU = 15.0

if __name__ == "__main__":
    main()
