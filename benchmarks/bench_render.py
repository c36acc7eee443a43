"""Micro benchmark of the swap renderer: ms per face for rasterize and rasterize+render_texture.

    python benchmarks/bench_render.py [--size 256] [--batches 1 8 32] [--repeat 10] [--threads N]

The mesh is a synthetic face-like cap (an ellipsoid patch with ~900 triangles, finer in the middle, like the
MediaPipe mesh) covering about half of the crop, posed with a 25 degree yaw; the source texture is a 512x512
image. With the real face topology available, the full ``GeometricSwapCore.swap`` (driving, render with the
mirror fill, inner-region holes) is timed too, on the 852-triangle MediaPipe mesh. Times are the minimum and
median over ``--repeat`` runs after two warm-up runs (CUDA runs are synchronised), plus the minimum process
CPU time (all threads; on a busy shared machine the CPU time is the steadier number, with ``--threads 1`` it
equals the wall time of an idle core). Prints one line per device and batch size.

Recorded (2-core shared CPU VM, torch 2.13 CPU, ``--threads 1``, other jobs running; the process CPU time per
face is quoted because wall times there swing 2-3x with the neighbours' load):

    B=1   rasterize 2.8-3.7 ms   rasterize+render 4.0-4.5 ms   GeometricSwapCore.swap 6.9-7.5 ms
    B=8   rasterize 2.1-2.5 ms   rasterize+render 2.8-3.4 ms   GeometricSwapCore.swap 4.9-5.1 ms
    B=32  rasterize 2.1-2.6 ms   rasterize+render 2.7-3.7 ms   GeometricSwapCore.swap 5.1-7.6 ms

CUDA was not available when these were recorded.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vidswap.appearance.raster import rasterize
from vidswap.appearance.texture import render_texture
from vidswap.swap.geometric.synthetic import face_cap, rotation_y


def posed(verts: torch.Tensor, size: int, yaw_deg: float, batch: int) -> torch.Tensor:
    """Canonical cap -> (B, V, 3) crop pixels: yawed, scaled to ~70% of the crop height, centred."""
    out = 0.36 * size * verts @ rotation_y(yaw_deg).T + torch.tensor([size / 2, size / 2, 0.0])
    return out[None].expand(batch, -1, -1).contiguous()


def _time(fn, repeat: int, cuda: bool) -> tuple[float, float, float]:
    """(min wall, median wall, min process CPU time) in seconds over ``repeat`` runs after 2 warm-ups."""
    for _ in range(2):
        fn()
    ts, cs = [], []
    for _ in range(repeat):
        if cuda:
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        if cuda:
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return min(ts), statistics.median(ts), min(cs)


def _real_core(S: int):
    """A GeometricSwapCore on the real MediaPipe topology with a synthetic source photo, or (None, None)."""
    try:
        from vidswap.faces import pose
        from vidswap.faces.topology import load_topology
        from vidswap.swap.base import SourceFace
        from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore

        topo = load_topology()
        can = pose.canonical_face()
    except Exception:  # noqa: BLE001 - topology not fetched: skip this part of the benchmark
        return None, None
    core = GeometricSwapCore(GeometricSwapConfig(crop_size=S), topology=topo)
    R = pose.matrix_from_euler(torch.tensor([20.0]), torch.tensor([0.0]), torch.tensor([0.0]))
    lm = pose.compose(torch.tensor([120.0]), R, torch.tensor([[320.0, 320.0, 0.0]]), can)[0]
    src = SourceFace(image=torch.rand(3, 640, 640), landmarks=lm, x_c_obs=can, yaw=20.0)
    return core, {"identity_cpu": core.prepare([src]), "pose": pose, "canonical": can}


def _identity_to(identity, dev: str):
    from dataclasses import replace

    return replace(identity, images=identity.images.to(dev), landmarks=identity.landmarks.to(dev),
                   canonical=identity.canonical.to(dev), vertex_confidence=identity.vertex_confidence.to(dev))


def _swap_batch(core_args, B: int, S: int, dev: str):
    from vidswap.faces.align import crop_frame_from_landmarks, transform_landmarks
    from vidswap.swap.base import SwapBatch

    pose, can = core_args["pose"], core_args["canonical"]
    yaw = torch.linspace(-35.0, 35.0, B)
    R = pose.matrix_from_euler(yaw, torch.zeros(B), torch.zeros(B))
    lm = pose.compose(torch.full((B,), 150.0), R, torch.tensor([[500.0, 400.0, 0.0]]).expand(B, 3), can)
    m = crop_frame_from_landmarks(lm, S)
    lm = transform_landmarks(lm, m)
    p = pose.decompose(lm)
    return SwapBatch(target_crops=torch.zeros(B, 3, S, S, device=dev), target_landmarks=lm.to(dev), s=p.s.to(dev),
                     R=p.R.to(dev), t=p.t.to(dev), expression=(p.x_c_obs - can).to(dev),
                     confidence=torch.ones(B, device=dev), frame_to_crop=m.to(dev))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    verts, tri = face_cap()
    S = args.size
    print(f"mesh: V={verts.shape[0]} T={tri.shape[0]}, crop {S}x{S}, torch {torch.__version__}, "
          f"cpu threads {torch.get_num_threads()}")
    core, core_args = _real_core(S)
    if core is None:
        print("(real face topology unavailable: GeometricSwapCore.swap not timed)")
    for dev in devices:
        cuda = dev == "cuda"
        if core is not None:
            core_args["identity"] = _identity_to(core_args["identity_cpu"], dev)
        src = torch.rand(1, 3, 512, 512, device=dev)
        for B in args.batches:
            vd = posed(verts, S, 25.0, B).to(dev)
            vs = posed(verts, 512, -10.0, B).to(dev)
            t_r = _time(lambda: rasterize(vd, tri, (S, S)), args.repeat, cuda)
            t_t = _time(lambda: render_texture(src, vs[..., :2], vd, tri, (S, S)), args.repeat, cuda)
            line = ""
            if core is not None:
                batch = _swap_batch(core_args, B, S, dev)
                ident = core_args["identity"]
                t_s = _time(lambda: core.swap(batch, ident), args.repeat, cuda)
                line = f"   GeometricSwapCore.swap {1e3 * t_s[0] / B:6.2f} ms/face (cpu {1e3 * t_s[2] / B:6.2f})"
            print(f"{dev:4s} B={B:3d}  rasterize {1e3 * t_r[0] / B:6.2f} ms/face (median {1e3 * t_r[1] / B:6.2f}, "
                  f"cpu {1e3 * t_r[2] / B:6.2f})   rasterize+render {1e3 * t_t[0] / B:6.2f} ms/face "
                  f"(median {1e3 * t_t[1] / B:6.2f}, cpu {1e3 * t_t[2] / B:6.2f})" + line)


if __name__ == "__main__":
    main()
