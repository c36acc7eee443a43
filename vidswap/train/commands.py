"""`vidswap train` and `vidswap train export`: parse, call, report (the trainer is imported when a command runs,
so the rest of the command line stays light)."""

from __future__ import annotations

import os
from functools import wraps

import click

from vidswap.cli_support import report_errors

__all__ = ["train"]


def _torchrun_worker_exits(fn):
    """Under torchrun, the training command's process ends through
    :func:`~vidswap.train.facedancer.distributed.leave_process` with the exit status it would have had (its
    output flushed): past the interpreter's finalization, which gloo's leftover threads can abort after the run
    was saved. Subcommands (``export``, ``prepare``) and single processes end as usual."""

    @wraps(fn)
    def wrapper(ctx: click.Context, *args, **kwargs):
        from vidswap.train.facedancer.distributed import leave_process, torchrun_worker

        if ctx.invoked_subcommand is not None or not torchrun_worker():
            return fn(ctx, *args, **kwargs)
        code = 0
        try:
            fn(ctx, *args, **kwargs)
        except SystemExit as exc:  # report_errors' documented exit codes
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except click.ClickException as exc:  # a usage error: click's own message and exit 2
            exc.show()
            code = exc.exit_code
        leave_process(code)

    return wrapper


@click.group("train", invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=str),
              help="train.yaml (see vidswap/configs/train_facedancer.yaml, train_megafs.yaml, train_e4s.yaml, "
                   "train_mfim.yaml, train_idatt.yaml).")
@click.option("--steps", type=int, help="Override run.steps.")
@click.option("--out", help="Override run.out (the run folder).")
@click.option("--resume", help="auto, never, or a training checkpoint (overrides run.resume).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
@_torchrun_worker_exits
@report_errors
def train(ctx, config_path, steps, out, resume, quiet):
    """Train a swap model (method: in train.yaml, default facedancer; one process, or under torchrun: DDP)."""
    if ctx.invoked_subcommand is not None:
        return
    if not config_path:
        raise click.UsageError("give --config train.yaml")
    from vidswap.train.methods import resolve_method

    method = resolve_method(config_path)  # method: in train.yaml (absent: facedancer); unknown: exit 2
    cfg = method.load_config(config_path, {"run": {"steps": steps, "out": out, "resume": resume}})
    run_training = method.runner()
    result = run_training(cfg, log=lambda m: click.echo(m, err=True), progress=not quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        s = result["summary"]
        click.echo(f"trained to step {result['step']}: {result['checkpoint']} "
                   f"(median step {s['step_s_median']:.3f} s, {s['processes']} process(es), {s['device']})")


@train.command("export")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", required=True, help="Output stem: writes STEM.safetensors and STEM.onnx.")
@click.option("--no-onnx", is_flag=True, help="Only the inference checkpoint.")
@report_errors
def train_export(checkpoint, output, no_onnx):
    """Write the inference checkpoint and the ONNX file of a training CHECKPOINT."""
    from vidswap.train.facedancer.export import export_checkpoint

    for key, value in export_checkpoint(checkpoint, output, onnx=not no_onnx).items():
        click.echo(f"{key}: {value:.3g}" if isinstance(value, float) else f"{key}: {value}")


@train.command("prepare")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="train.yaml (its data section and model.size).")
@click.option("--part", help="R/W: prepare shards j with j % W == R (default: torchrun's RANK/WORLD_SIZE, else 0/1).")
@report_errors
def train_prepare(config_path, part):
    """Detect, align and filter the dataset into the face cache (resumable; split over processes with --part)."""
    from vidswap.train.facedancer.config import load_train_config
    from vidswap.train.facedancer.facecache import prepare_shards

    if part:
        try:
            r, w = (int(x) for x in part.split("/"))
        except ValueError:
            raise click.BadParameter("give R/W, e.g. 0/4", param_hint="--part") from None
    else:
        r, w = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    cfg = load_train_config(config_path)
    d = cfg.data
    cache = d.cache or os.path.join(cfg.run.out, "data_cache")
    rep = prepare_shards(d.root, cfg.model.size, cache, d.min_face, max_images=d.max_images,
                         shard_images=d.shard_images, part=r, parts=w, log=lambda m: click.echo(m, err=True))
    state = "complete (index written)" if rep.complete else "other parts still pending"
    click.echo(f"{rep.folder}: part {r}/{w} prepared {rep.done} shard(s), {rep.reused} already there, "
               f"{rep.shards} in all: {state}")
