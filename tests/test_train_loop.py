"""The shared run driver (vidswap.train.loop) with a toy two-stage method, and the method registry."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from vidswap.cli import main
from vidswap.train.sections import RunConfig
from vidswap.train.loop import Preempted, RunState, TrainerPlugin, run_method
from vidswap.train.methods import METHODS, method_of, resolve_method


@dataclass(frozen=True)
class ToyConfig:
    run: RunConfig
    stage_a_steps: int = 3
    kill_at: int = 0  # SIGTERM to this process after this step (0: never)


class ToyState(RunState):
    """Two stages fitting y = 2x: stage "a" trains w (loss key "fit"), stage "b" trains b (keys "fit", "bias"),
    each with its own SGD-with-momentum optimiser (so an inexact resume would show)."""

    def __init__(self, cfg: ToyConfig, info, log):
        self.cfg, self.info, self.log = cfg, info, log
        self.out = Path(cfg.run.out)
        self.ckpt_dir = self.out / "checkpoints"
        self.w = torch.zeros(1, requires_grad=True)
        self.b = torch.ones(1, requires_grad=True)
        self.opt_a = torch.optim.SGD([self.w], lr=0.05, momentum=0.9)
        self.opt_b = torch.optim.SGD([self.b], lr=0.05, momentum=0.9)
        self.step = 0
        self.stop_requested = False
        last = self.ckpt_dir / "last.safetensors"
        if cfg.run.resume == "auto" and last.is_file():
            t = load_file(str(last))
            with torch.no_grad():
                self.w.copy_(t["w"])
                self.b.copy_(t["b"])
            self.opt_a.state[self.w]["momentum_buffer"] = t["mom_a"].clone()
            self.opt_b.state[self.b]["momentum_buffer"] = t["mom_b"].clone()
            self.step = int(t["step"])

    def write_checkpoint(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        mom = [o.state[p].get("momentum_buffer", torch.zeros(1)) if p in o.state else torch.zeros(1)
               for o, p in ((self.opt_a, self.w), (self.opt_b, self.b))]
        save_file({"w": self.w.detach().clone(), "b": self.b.detach().clone(), "mom_a": mom[0].clone(),
                   "mom_b": mom[1].clone(), "step": torch.tensor(self.step)}, str(path))
        return path

    def lr_at(self, step: int) -> float:
        return 0.05

    def summary_extras(self) -> dict:
        return {"stage_a_steps": self.cfg.stage_a_steps}

    def run_steps(self, until, on_step=None, images=None, save_due=lambda step: False) -> bool:
        x = torch.arange(4.0)
        while self.step < until:
            stage = "a" if self.step < self.cfg.stage_a_steps else "b"
            opt = self.opt_a if stage == "a" else self.opt_b
            opt.zero_grad()
            fit = ((self.w * x + self.b - 2 * x) ** 2).mean()
            losses = {"fit": fit} if stage == "a" else {"fit": fit, "bias": self.b.abs().sum()}
            sum(losses.values()).backward()
            opt.step()
            self.step += 1
            if self.step == self.cfg.kill_at:
                os.kill(os.getpid(), signal.SIGTERM)
            stop, save, log_now = self.after_step(until, save_due)
            if on_step is not None and log_now:
                on_step(self.step, stage, {k: float(v.detach()) for k, v in losses.items()}, 0.001)
            if save or stop:
                self.save()
            if stop:
                return False
        return True


def toy_plugin(plots: list) -> TrainerPlugin:
    return TrainerPlugin(label="train toy", build=ToyState, plot=plots.append,
                         postfix=lambda stage, losses: {"stage": stage})


def toy_cfg(out: Path, **kw) -> ToyConfig:
    run = RunConfig(out=str(out), steps=8, batch_size=1, save_every_steps=2, save_every_minutes=0, keep=2,
                    log_every=1, image_every=0, device="cpu")
    return ToyConfig(run=run, **kw)


def test_driver_logs_stages_keeps_n_checkpoints_and_writes_the_summary(tmp_path):
    plots: list = []
    res = run_method(toy_plugin(plots), toy_cfg(tmp_path / "run"), log=lambda _m: None, progress=False)
    run = tmp_path / "run"
    assert res["step"] == 8 and res["checkpoint"] == str(run / "checkpoints/last.safetensors")
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 9))
    assert [x["stage"] for x in lines] == ["a"] * 3 + ["b"] * 5
    assert list(lines[0]) == ["step", "stage", "step_s", "fit"] and list(lines[5]) == ["step", "stage", "step_s",
                                                                                          "fit", "bias"]
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == ["step_00000006.safetensors",
                                                                             "step_00000008.safetensors"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == 8 and summary["stage_a_steps"] == 3 and set(summary["last_losses"]) == {"fit", "bias"}
    assert plots == [run]


def test_sigterm_preempts_with_exit_75_and_resume_across_the_stage_switch_is_exact(tmp_path):
    plots: list = []
    run_method(toy_plugin(plots), toy_cfg(tmp_path / "straight"), log=lambda _m: None, progress=False)
    with pytest.raises(Preempted) as exc:
        run_method(toy_plugin(plots), toy_cfg(tmp_path / "cut", kill_at=2), log=lambda _m: None, progress=False)
    assert exc.value.exit_code == 75 and "after step 2" in str(exc.value)
    assert int(load_file(str(tmp_path / "cut/checkpoints/last.safetensors"))["step"]) == 2
    res = run_method(toy_plugin(plots), toy_cfg(tmp_path / "cut"), log=lambda _m: None, progress=False)
    assert res["step"] == 8
    a = load_file(str(tmp_path / "straight/checkpoints/last.safetensors"))
    b = load_file(str(tmp_path / "cut/checkpoints/last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_method_registry_and_unknown_method(tmp_path):
    assert {"facedancer", "megafs"} <= set(METHODS)
    root = Path(__file__).resolve().parents[1] / "vidswap/configs"
    assert method_of(root / "train_facedancer.yaml") == "facedancer"
    assert resolve_method(root / "train_megafs.yaml").name == "megafs"
    explicit = tmp_path / "fd.yaml"
    explicit.write_text("method: facedancer\ndata: {root: faces}\n")
    assert resolve_method(explicit).load_config(explicit).data.root == str(tmp_path / "faces")
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: nosuch\ndata: {root: faces}\n")
    r = CliRunner().invoke(main, ["train", "--config", str(bad)])
    assert r.exit_code == 2 and "unknown training method 'nosuch'" in r.output and "megafs" in r.output
