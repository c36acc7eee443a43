"""`vidswap train` acceptance at tiny scale on real faces: DDP == one process, bit-identical resume, SIGTERM
checkpoint, ONNX export, and clear errors with exit codes for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

from vidswap.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = {"size": 64, "channels": [8, 16, 16, 16], "skips": ["concat", "affa", "affa", "none"],
              "style_dim": 32, "bottleneck_blocks": 1, "disc_channels": [8, 32]}


def write_cfg(path: Path, face_set, out: Path, **run) -> Path:
    root, cache = face_set
    cfg = {"data": {"root": str(root), "cache": str(cache), "holdout": 0.0},
           "model": TINY_MODEL,
           "run": {"out": str(out), "steps": 2, "batch_size": 2, "log_every": 1, "image_every": 0,
                   "eval_every": 0, "eval_pairs": 0, "save_every_steps": 0, "save_every_minutes": 0,
                   "threads": 1, **run}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_failure(r: subprocess.CompletedProcess) -> str:
    """What a failed torchrun printed: the children's own errors come first in its stderr, the launcher's summary
    last; both ends, so an abort in a rank (no Python traceback) still shows its C++ message."""
    err = r.stderr or ""
    return err if len(err) <= 6000 else err[:3500] + "\n[...]\n" + err[-2500:]


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def test_ddp_two_processes_equal_one_process(face_set, tmp_path):
    cfg1 = write_cfg(tmp_path / "one.yaml", face_set, tmp_path / "one", batch_size=4)
    cfg2 = write_cfg(tmp_path / "two.yaml", face_set, tmp_path / "two", batch_size=2)  # 2 x 2 = same global batch
    probe = str(ROOT / "tests" / "facedancer_probe.py")
    subprocess.run([sys.executable, probe, str(cfg1), str(tmp_path / "one.st"), "2"], check=True, env=env(),
                   timeout=300)
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                        str(free_port()), probe, str(cfg2), str(tmp_path / "two.st"), "2"], env=env(), timeout=300,
                       capture_output=True, text=True)
    assert r.returncode == 0, child_failure(r)
    one, two = load_file(tmp_path / "one.st"), load_file(tmp_path / "two.st")
    assert one.keys() == two.keys() and any(k.startswith("g.G.") for k in one) and any(k.startswith("g.D.") for k in one)
    # step 1: DDP's averaged gradients of two half batches == the gradients of the whole batch in one process
    worst_g = 0.0
    for k in (k for k in one if k.startswith("g.")):
        scale = float(one[k].abs().max())
        if scale > 0:
            worst_g = max(worst_g, float((one[k] - two[k]).abs().max()) / scale)
    assert worst_g < 1e-4, worst_g
    # after 2 steps: the same weights up to rounding. Not bit for bit: with β1 = 0 Adam's first updates are
    # lr·g/(|g| + eps), about ±lr wherever |g| is near the rounding level, so a different summation order flips a
    # few such weights by up to 2·lr. Measured: mean |Δw| ~1e-7 and 0.1 % of weights beyond 1e-5 on one
    # machine, 1.2e-6 and 1.7 % on an AMD EPYC one (its kernels round differently); a run on another global
    # batch differs by ~5e-5 on average with ~40 % beyond 1e-5.
    w = [k for k in one if k.startswith("w.")]
    diff = torch.cat([(one[k] - two[k]).abs().flatten() for k in w])
    beyond = float((diff > 1e-5).float().mean())
    assert float(diff.mean()) < 5e-6 and beyond < 0.05, (float(diff.mean()), beyond)
    assert float(diff.max()) <= 2 * 2 * 1e-4 * 1.01
    print(f"DDP vs 1 process: step-1 gradients within {worst_g:.1e} (relative); weights after 2 steps: mean "
          f"|dw| {float(diff.mean()):.1e}, {float((diff > 1e-5).float().mean()):.2%} beyond 1e-5, max {float(diff.max()):.1e}")


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(path).items() if k.startswith(("G.", "D.", "optG.", "optD."))}


def test_resume_is_bit_identical(face_set, tmp_path):
    runner = CliRunner()
    full = write_cfg(tmp_path / "full.yaml", face_set, tmp_path / "full", steps=2)
    assert runner.invoke(main, ["train", "--config", str(full), "-q"]).exit_code == 0
    part = write_cfg(tmp_path / "part.yaml", face_set, tmp_path / "part", steps=1)
    assert runner.invoke(main, ["train", "--config", str(part), "-q"]).exit_code == 0
    res = runner.invoke(main, ["train", "--config", str(part), "--steps", "2", "-q"])
    assert res.exit_code == 0, res.output
    assert "resumed from" in res.output and "at step 1" in res.output
    a, b = _weights(tmp_path / "full/checkpoints/last.safetensors"), _weights(tmp_path / "part/checkpoints/last.safetensors")
    assert a.keys() == b.keys() and len(a) > 20
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = _weights(tmp_path / "part/checkpoints/step_00000001.safetensors")  # and the steps did change them
    assert not all(torch.equal(a[k], c[k]) for k in a if k.startswith("G."))


def test_sigterm_leaves_a_resumable_checkpoint(face_set, tmp_path):
    cfg = write_cfg(tmp_path / "t.yaml", face_set, tmp_path / "t", steps=10_000)
    proc = subprocess.Popen([sys.executable, "-m", "vidswap.cli", "train", "--config", str(cfg), "-q"], env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "t" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (metrics.is_file() and metrics.read_text().strip()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert "stopped by SIGTERM after step" in err and "run the same command again to resume" in err
    from safetensors import safe_open

    with safe_open(str(tmp_path / "t/checkpoints/last.safetensors"), "pt") as fh:
        k = int(fh.metadata()["step"])
    assert 1 <= k < 10_000
    res = CliRunner().invoke(main, ["train", "--config", str(cfg), "--steps", str(k + 1), "-q"])
    assert res.exit_code == 0, res.output
    assert f"at step {k}" in res.output and f"trained to step {k + 1}" in res.output


def test_export_onnx_matches_torch(face_set, tmp_path):
    runner = CliRunner()
    cfg = write_cfg(tmp_path / "e.yaml", face_set, tmp_path / "e", steps=1, image_every=1)
    assert runner.invoke(main, ["train", "--config", str(cfg), "-q"]).exit_code == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "e/tensorboard")).Reload()  # the TensorBoard log: scalars and grids
    assert {"loss/identity", "loss/reconstruction", "loss/d_total", "lr", "time/step_s"} <= set(events.Tags()["scalars"])
    grid = events.Images("source|target|swap")[0]
    assert (grid.width, grid.height) == (3 * 64, 2 * 64)  # per row source | target | swap, one row per sample
    assert (tmp_path / "e/losses.png").is_file() and (tmp_path / "e/summary.json").is_file()
    res = runner.invoke(main, ["train", "export", str(tmp_path / "e/checkpoints/last.safetensors"), "-o",
                               str(tmp_path / "fd")])
    assert res.exit_code == 0, res.output
    err = float(res.output.split("onnx_max_error: ")[1].split()[0])
    assert err < 1e-4
    from vidswap.train.facedancer.checkpoint import load_generator

    gen, meta = load_generator(tmp_path / "fd.safetensors")
    assert meta["format"] == "vidswap.facedancer" and gen.config.size == 64
    import onnxruntime as ort

    x, z = np.random.default_rng(1).random((2, 3, 64, 64), np.float32), np.ones((2, 128), np.float32)
    y = ort.InferenceSession(str(tmp_path / "fd.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"target": x, "identity": z})[0]
    with torch.no_grad():
        ref = gen(torch.from_numpy(x), torch.from_numpy(z)).numpy()
    assert np.abs(y - ref).max() < 1e-4


def test_bad_inputs_clear_errors(face_set, tmp_path, media, monkeypatch):
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    cfg = write_cfg(tmp_path / "a.yaml", face_set, tmp_path / "a")
    raw = yaml.safe_load(cfg.read_text())

    def run_with(**sections):
        data = {**raw, **{k: {**raw.get(k, {}), **v} for k, v in sections.items()}}
        p = tmp_path / "b.yaml"
        p.write_text(yaml.safe_dump(data))
        return runner.invoke(main, ["train", "--config", str(p), "-q"])

    res = run_with(data={"root": str(tmp_path / "empty"), "cache": str(tmp_path / "c0")})
    assert res.exit_code == 2 and "has no images" in res.output
    noface = tmp_path / "noface" / "x"
    noface.mkdir(parents=True)
    import cv2
    from media_helpers import read_frames

    for i, frame in enumerate(read_frames(media("no_face_clip"), step=20, limit=60)):
        cv2.imwrite(str(noface / f"{i}.png"), frame[..., ::-1])
    res = run_with(data={"root": str(tmp_path / "noface"), "cache": str(tmp_path / "c1")})
    assert res.exit_code == 3 and "no detectable face" in res.output
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    res = run_with(run={"resume": str(bad)})
    assert res.exit_code == 4 and "unreadable" in res.output
    res = runner.invoke(main, ["train", "export", str(bad), "-o", str(tmp_path / "x")])
    assert res.exit_code == 4 and "unreadable" in res.output
    assert run_with(run={"steps": 1, "out": str(tmp_path / "small")}).exit_code == 0
    other = {**TINY_MODEL, "channels": [8, 8, 8, 8]}
    res = run_with(model=other, run={"resume": str(tmp_path / "small/checkpoints/last.safetensors")})
    assert res.exit_code == 4 and "another architecture" in res.output
    from vidswap.swap.generator import GeneratorConfig, SwapGenerator, save_generator

    refiner = save_generator(SwapGenerator(GeneratorConfig(channels=(8, 8, 8, 8))), tmp_path / "refiner.safetensors")
    res = run_with(run={"resume": str(refiner)})
    assert res.exit_code == 4 and "not a FaceDancer checkpoint" in res.output
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    port = free_port()  # nothing listens there
    monkeypatch.setenv("MASTER_PORT", str(port))
    t0 = time.monotonic()
    res = run_with(run={"dist_timeout_s": 3})
    assert res.exit_code == 75, res.output
    assert f"cannot join the gloo process group at master 127.0.0.1:{port}" in res.output
    assert time.monotonic() - t0 < 60


def test_vgg16_perceptual_run(face_set, tmp_path):
    """``perceptual: {net: vgg16, weights: ...}`` trains with a VGG16 file in torchvision's layout (built here)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    from test_train_facedancer_perceptual import vgg16_state

    save_file(vgg16_state(), str(tmp_path / "vgg16.safetensors"))
    cfg_path = write_cfg(tmp_path / "v.yaml", face_set, tmp_path / "v", steps=1)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["perceptual"] = {"net": "vgg16", "weights": "vgg16.safetensors"}  # relative to the YAML
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(main, ["train", "--config", str(cfg_path), "-q"])
    assert res.exit_code == 0, res.output
    first = json.loads((tmp_path / "v/metrics.jsonl").read_text().splitlines()[0])
    assert 0.0 < first["perceptual"] < float("inf")  # pair 0 is always a same pair, and the swap differs from it
    with safe_open(str(tmp_path / "v/checkpoints/last.safetensors"), "pt") as fh:
        saved = json.loads(fh.metadata()["train_config"])["perceptual"]
    assert saved == {"net": "vgg16", "weights": str(tmp_path / "vgg16.safetensors")}
    cfg["perceptual"]["weights"] = "missing.safetensors"
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(main, ["train", "--config", str(cfg_path), "-q", "--resume", "never"])
    assert res.exit_code == 4 and "VGG16 weights" in res.output and "do not exist" in res.output
