"""The farm passes' --help hides only options the pass does not depend on.

Each pass (analyze, tune, assemble) accepts every job option, but lists only those it uses. An option it hides must
not change what the pass reads or writes: the job folder, the analysis key, the tuning inputs, the chunk folder
(named by a hash of every render setting) and the output. Otherwise a hand-run pass, following its --help, leaves
the option out and finds another job's folder or no chunks (measured: ``render --passthrough`` then ``assemble``
without it is exit 2, "the analysis is stale")."""

from __future__ import annotations

import click
import pytest

from vidswap.analysis_cache import analysis_inputs
from vidswap.cli import main
from vidswap.cli_options import load_job
from vidswap.config import to_dict
from vidswap.jobs.passes import chunk_dir
from vidswap.shot import plan_shot


def pass_reads(name: str, cfg) -> tuple:
    """What pass ``name`` reads or writes for the job ``cfg``."""
    plan = plan_shot(cfg)
    hashes = {"passthrough": ""} if cfg.swap.core == "passthrough" else {"models": "fixed"}
    key, _ = analysis_inputs(cfg, plan.info, plan.numbers, hashes, plan.colour, plan.work_size)
    if name == "analyze":  # the tracks file, its key, whether models run, the target tracks it plots
        return plan.tracks_path, key, cfg.swap.core, cfg.target, len(cfg.sources)
    if name == "tune":  # the job folder and analysis, and every setting but the output's encoding
        return plan.job_dir, key, {k: v for k, v in to_dict(cfg).items() if k != "output"}
    if name == "assemble":  # the chunk folder and the output it writes
        return chunk_dir(plan, cfg, key), plan.out_path, cfg.output
    raise ValueError(name)


def hidden_options(command: click.Command) -> list[str]:
    return sorted(o for p in command.params if isinstance(p, click.Option) and p.hidden
                  for o in p.opts if o.startswith("--"))


@pytest.fixture(scope="module")
def variants(media):
    """option -> (base args, the same args with the option changed) for a job on a real clip."""
    clip, photo, other = (str(media(n)) for n in ("single_face_clip", "astronaut", "grace_hopper"))
    base = [clip, "-s", photo]
    core = base + ["--swap-core", "facedancer"]
    return {
        "--source": (base, base + ["-s", other]),
        "--output": (base, base + ["-o", "elsewhere.mp4"]),
        "--frames": (base, base + ["--frames", "0-9"]),
        "--preview": (base, base + ["--preview"]),
        "--scale": (base, base + ["--scale", "0.5"]),
        "--every": (base, base + ["--every", "2"]),
        "--preset": (base, base + ["--preset", "final"]),
        "--device": (base, base + ["--device", "cpu"]),
        "--batch-size": (base, base + ["--batch-size", "3"]),
        "--render-threads": (base, base + ["--render-threads", "1"]),
        "--codec": (base, base + ["--codec", "ffv1"]),
        "--crf": (base, base + ["--crf", "30"]),
        "--target": (base, base + ["--target", "all"]),
        "--target-index": (base, base + ["--target-index", "1"]),
        "--target-face": (base, base + ["--target-face", other]),
        "--map": (base, base + ["--map", "0:0"]),
        "--tune": (base, base + ["--tune"]),
        "--retune": (base + ["--tune"], base + ["--tune", "--retune"]),
        "--compare": (base, base + ["--compare"]),
        "--burn-in": (base, base + ["--burn-in"]),
        "--patches": (base, base + ["--patches"]),
        "--passthrough": (base, base + ["--passthrough"]),
        "--overwrite": (base, base + ["--no-overwrite"]),
        "--swap-core": (base, core),
        "--checkpoint": (core + ["--checkpoint", "a.safetensors"], core + ["--checkpoint", "b.safetensors"]),
        "--appearance": (base, base + ["--appearance", "texture"]),
        "--quiet": (base, base + ["-q"]),
    }


def job(command: click.Command, args: list[str]):
    with command.make_context(command.name, list(args)) as ctx:
        return load_job(**ctx.params)


@pytest.mark.parametrize("name", ["analyze", "tune", "assemble"])
def test_a_pass_hides_only_options_it_does_not_depend_on(name, variants):
    command = main.commands[name]
    hidden = hidden_options(command)
    assert hidden, f"{name} lists every option"
    assert set(hidden) <= set(variants), f"no variant for {set(hidden) - set(variants)}"
    depends = [o for o in hidden
               if pass_reads(name, job(command, variants[o][0])) != pass_reads(name, job(command, variants[o][1]))]
    assert not depends, f"vidswap {name} --help hides options that change what it reads or writes: {depends}"


def test_the_check_sees_a_dependency(variants):
    """The comparison is not blind: the options every pass lists do change what the pass reads."""
    for name, option in (("analyze", "--frames"), ("tune", "--tune"), ("assemble", "--codec"), ("analyze", "--compare"),
                         ("assemble", "--passthrough")):
        command = main.commands[name]
        before, after = variants[option]
        assert pass_reads(name, job(command, before)) != pass_reads(name, job(command, after)), (name, option)
