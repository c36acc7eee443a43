"""Command line: parse, call, report. No logic lives here.

Each command imports the modules it calls when it runs: ``--help``, ``probe`` and the ``models`` commands do not
import torch (``tests/test_cli_imports.py``); the shot commands import it with the job config.

Exit codes (README.md): 0 ok, 2 usage/bad input, 3 no usable face in a source, 4 model missing or corrupt,
5 media read/write failure, 75 out of memory (retryable), 130 interrupted.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning. OpenMP reads this when torch loads, so it is set before any
# vidswap module imports torch: with two tasks on a worker, or any other load, spinning threads starve each other
# (4x slower measured on 2 cores; ~10% faster alone). Export OMP_WAIT_POLICY=ACTIVE on a dedicated machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import click  # noqa: E402

from vidswap import __version__  # noqa: E402
from vidswap.cli_options import ANALYZE_HIDES, ASSEMBLE_HIDES, TUNE_HIDES, job_layers, job_options, load_job  # noqa: E402,F401
from vidswap.cli_support import DebugAnywhere, EchoHandler, progress, report_errors, terminate  # noqa: E402
from vidswap.cli_support import hoist_flag  # noqa: E402,F401 - part of the CLI's interface (tests)
from vidswap.train import commands as train_commands  # noqa: E402

if TYPE_CHECKING:
    from vidswap import pipeline
    from vidswap.config import JobConfig


@click.group(cls=DebugAnywhere, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vidswap")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors (before or after the subcommand).")
def main(debug: bool) -> None:
    """vidswap: replace the face in a shot with a source identity, keeping timing, audio, timecode and colour."""
    signal.signal(signal.SIGTERM, terminate)  # farm cancellation: clean up temporaries like Ctrl-C
    logger = logging.getLogger("vidswap")
    if not any(isinstance(h, EchoHandler) for h in logger.handlers):
        logger.addHandler(EchoHandler(logging.WARNING))


# --------------------------------------------------------------------------------------------------------------
# run




@main.command()
@job_options
@click.option("--debug-frames", type=click.Path(file_okay=False), help="Folder for per-frame strips "
              "(target crop | render | mask | final).")
@click.option("--contact-sheet", type=click.Path(dir_okay=False), help="PNG of sampled frames, plate | result.")
@report_errors
def run(debug_frames, contact_sheet, **opts):
    """Swap the face in INPUT (video or image sequence) with --source and write a finished clip."""
    from vidswap import pipeline

    cfg = load_job(**opts)
    with progress(opts["quiet"]) as bar:
        summary = pipeline.run(cfg, progress=bar, debug_frames=debug_frames, contact_sheet=contact_sheet)
    _report(summary)
    if contact_sheet:
        click.echo(f"contact sheet: {contact_sheet}")
    if debug_frames:
        click.echo(f"debug strips: {debug_frames}")


@main.command()
@job_options(hide=ANALYZE_HIDES)
@click.option("--overlay", type=click.Path(dir_okay=False), help="Write a video of the analysis drawn on the frames.")
@report_errors
def analyze(overlay, **opts):
    """Analyze pass: faces, dense landmarks, identity, tracks, smoothing -> the tracks file in the job folder."""
    from vidswap.jobs import passes

    cfg = load_job(**opts)
    with progress(opts["quiet"]) as bar:
        result = passes.analyze(cfg, progress=bar, overlay=overlay)
    click.echo(f"tracks: {result.tracks_path}")
    for line in result.lines():
        click.echo(line)
    for plot in result.plots:
        click.echo(f"plot: {plot}")
    if overlay:
        with progress(opts["quiet"]) as bar:
            path = passes.write_overlay(cfg, overlay, progress=bar)
        click.echo(f"overlay: {path}")


@main.command("tune")
@job_options(hide=TUNE_HIDES)
@report_errors
def tune_cmd(**opts):
    """Tune pass: fine-tune the generator on the analysed shot (when tune.enabled) and cache it (farm task)."""
    from vidswap.jobs import passes

    cfg = load_job(**opts)
    with progress(opts["quiet"]) as bar:
        folder = passes.tune(cfg, progress=bar)
    if folder is not None:
        click.echo(f"tuned generator: {folder}")
    else:
        click.echo("tuning is off for this shot (tune.enabled: false, or a pass-through core): renders use the "
                   "swap core alone")


@main.command()
@job_options
@click.option("--force", is_flag=True, help="Render the chunk even if its output exists.")
@report_errors
def render(force, **opts):
    """Render one frame chunk (--frames) of an analysed shot into the job folder (farm task)."""
    from vidswap.jobs import passes

    chunk = opts["frames"]
    if chunk is None:
        raise click.UsageError("render needs --frames A-B (the chunk to render)")
    cfg = load_job(**dict(opts, frames=None))  # the shot's frames come from the shot YAML
    with progress(opts["quiet"]) as bar:
        path, summary = passes.render_chunk(cfg, chunk, force=force, progress=bar)
    if summary is None:
        click.echo(f"chunk {path} is complete; skipped (use --force to render it again)")
    else:
        click.echo(f"wrote chunk {path}: {summary.frames_written} frames in {summary.seconds:.1f} s")


@main.command()
@job_options(hide=ASSEMBLE_HIDES)
@report_errors
def assemble(**opts):
    """Concatenate the rendered chunks into the output with the input's timing, audio and timecode."""
    from vidswap.jobs import passes

    cfg = load_job(**opts)
    with progress(opts["quiet"]) as bar:
        summary = passes.assemble(cfg, progress=bar)
    click.echo(f"wrote {summary.output}: {summary.frames_written} frames {summary.width}x{summary.height}")


def _report(summary: pipeline.RunSummary) -> None:
    from vidswap.io.frames import format_frames

    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {summary.output}: {summary.frames_written} frames {summary.width}x{summary.height} "
               f"in {summary.seconds:.1f} s ({summary.fps:.1f} frames/s)")
    if summary.swapping:
        click.echo(f"swapped {summary.frames_swapped} frames; passed through untouched: "
                   f"{format_frames(summary.passed_through) or 'none'}")
    if summary.runtime:
        click.echo(f"swap core ran on {summary.runtime}")


# probe


@main.command()
@click.argument("input", type=click.Path(path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@report_errors
def probe(input, as_json):
    """Describe INPUT: codec, size, fps (VFR?), frames, duration, bit depth, colour tags, timecode, audio."""
    from vidswap.io import probe as probe_media
    from vidswap.io.sequences import sequence_label

    info = probe_media(input)
    data = info.to_dict()
    if info.pattern:  # one # per digit and the range, not fileseq's lone # (which means 4 digits)
        data["pattern"], data["frame_range"] = sequence_label(info.pattern)
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if info.pattern:  # one line, as Nuke and RV show a sequence: plate.####.exr 1001-1100
        data["pattern"] = f"{data['pattern']} {data.pop('frame_range')}".strip()
    for key, value in data.items():
        if key == "audio":
            value = "; ".join(f"#{a['index']} {a['codec']} {a['sample_rate']} Hz {a['channels']} ch"
                              + (f" [{a['language']}]" if a.get("language") else "") for a in value) or "none"
        click.echo(f"{key:>16}: {value}")


# --------------------------------------------------------------------------------------------------------------
# evaluation


@main.command("eval")
@click.argument("result", type=click.Path(path_type=str))
@click.option("--target", required=True, type=click.Path(path_type=str), help="The original plate.")
@click.option("-s", "--source", "sources", multiple=True, required=True, help="Source portrait (repeatable).")
@click.option("-o", "--output", "out_dir", help="Report folder (default: <result stem>_eval/).")
@click.option("--frames", help="Target frame numbers the result covers, e.g. 0-47.")
@click.option("--every", type=int, default=1, show_default=True, help="Evaluate every N-th frame.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@report_errors
def eval_cmd(result, target, sources, out_dir, frames, every, quiet):
    """Measure a swap: identity (independent judge), pose/expression, flicker, jitter, sharpness, seams.

    Prints each check with pass / warn / fail against its thresholds; writes metrics.json, a self-contained
    report.html, plots over time and a contact sheet. A result of another picture shape than the plate (a
    --compare video) is refused (exit 2).
    """
    from vidswap.eval.report import evaluate, frame_range  # lazy: the eval stack is not every command's cost
    from vidswap.eval.verdict import verdict_table, verdicts

    out = Path(out_dir) if out_dir else Path(result).with_name(Path(result).stem + "_eval")
    with progress(quiet) as bar:
        metrics = evaluate(Path(result), Path(target), [Path(s) for s in sources], out, frames=frame_range(frames),
                           every=every, progress=bar)
    click.echo(verdict_table(verdicts(metrics), colour=sys.stdout.isatty()))
    if metrics["frames"].get("size_note"):
        click.echo(f"note: {metrics['frames']['size_note']}")
    click.echo(f"report: {out / 'report.html'}")
    note = metrics.get("judges", {}).get("license_note")
    if note:
        click.echo(f"note: {note}")


@main.command("eval-suite")
@click.argument("config", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", "out_dir", help="Summary folder (default: the suite's output).")
@click.option("--reuse", is_flag=True, help="Re-evaluate existing results without re-running the swaps.")
@report_errors
def eval_suite(config, out_dir, reuse):
    """Run a suite of swaps (e.g. vidswap/configs/eval_suite.yaml) plus eval; write summary.md and summary.json."""
    from vidswap.eval.suite import run_suite  # lazy, like eval

    run_suite(config, out_dir, reuse=reuse)
    folder = Path(out_dir) if out_dir else None
    click.echo(f"summary: {(folder / 'summary.md') if folder else 'summary.md in the suite output folder'}")


# --------------------------------------------------------------------------------------------------------------
# batches and clean-up


@main.command()
@click.argument("shots", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--force", is_flag=True, help="Run shots an earlier batch finished, too.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failed shot (default: run them all).")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False), help="Also write the summary as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@report_errors
def batch(shots, force, fail_fast, summary_path, quiet):
    """Run the shot files SHOTS one after another on this machine; shots an earlier batch finished (same
    settings and input, output still there) are skipped. Prints a summary table; exits with the first failed
    shot's code (0 when all are done)."""
    from vidswap import pipeline
    from vidswap.jobs import batch as batch_jobs

    def run_shot(cfg: JobConfig) -> pipeline.RunSummary:
        with progress(quiet) as bar:
            return pipeline.run(cfg, progress=bar)

    def said(result: batch_jobs.ShotResult) -> None:
        click.echo(result.line(), err=result.status == "failed")

    results = batch_jobs.run_batch(shots, run_shot, force=force, fail_fast=fail_fast, on_result=said)
    click.echo(batch_jobs.summary_table(results))
    if summary_path:
        Path(summary_path).write_text(batch_jobs.summary_json(results))
    sys.exit(batch_jobs.batch_exit_code(results))


@main.command()
@click.argument("shots", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str))
@click.option("--all", "everything", is_flag=True, help="Remove the whole job folder (analysis, tuned weights, "
              "plots, chunks), not only the render chunks.")
@click.option("--force", is_flag=True, help="Clean shots whose output is not complete, too.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@report_errors
def clean(shots, everything, force, dry_run):
    """Remove the finished render chunks from the job folders of the shot files SHOTS (farm renders leave
    them there; an FFV1 chunk set is as large as the shot). Shots whose output is not complete are kept."""
    from vidswap.config import load_config
    from vidswap.jobs import clean as clean_jobs

    for shot in shots:
        result = clean_jobs.clean_shot(load_config(shot=shot), everything, force, dry_run)
        if result.kept:
            click.echo(f"{shot}: {result.kept}")
        for path in result.removed:
            verb = "would remove" if dry_run else "removed"
            click.echo(f"{shot}: {verb} {path} ({result.bytes / 2**20:.1f} MiB)")


# --------------------------------------------------------------------------------------------------------------
# config


@main.group("config")
def config_group():
    """Job configs: show the effective settings of a job and where each came from."""


@config_group.command("show")
@job_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {key: {value, from, written}}.")
@report_errors
def config_show(as_json, **opts):
    """Print the effective config of a job (the same INPUT / --config / flags as run), each value with where it
    came from: default, preset, shot file or command line."""
    from vidswap.config_report import config_provenance, format_provenance, provenance_json

    rows = config_provenance(job_layers(**opts))
    click.echo(provenance_json(rows) if as_json else format_provenance(rows))


# --------------------------------------------------------------------------------------------------------------
# farm


@main.group()
def farm():
    """Render-farm jobs: export a shot as an OpenJD (Deadline Cloud), Deadline 10 or OpenCue job."""


@farm.command("export")
@click.argument("shot", type=click.Path(dir_okay=False, path_type=str))
@click.option("--format", "fmt", type=click.Choice(["openjd", "deadline", "opencue"]), default="openjd",
              show_default=True)
@click.option("-o", "--output", required=True, help="Job template file (openjd, opencue) or folder (deadline).")
@click.option("--chunk-size", type=int, help="Frames per render task (default farm.chunk_size).")
@click.option("--executable", help="The vidswap executable on the workers, a name on PATH or an absolute path "
              "(default farm.executable).")
@report_errors
def farm_export(shot, fmt, output, chunk_size, executable):
    """Export the shot job SHOT (YAML) as a farm job: analyze -> tune (when on) -> render chunks -> assemble."""
    from vidswap.config import load_config
    from vidswap.jobs import deadline, opencue, openjd
    from vidswap.shot import plan_shot

    cfg = load_config(shot=shot, overrides={"farm": {"executable": executable}})
    numbers = plan_shot(cfg).numbers  # the shot's frames, from the shot file: the one place they come from
    shot_path = Path(shot).resolve()
    if fmt == "openjd":
        template = openjd.export_openjd(shot_path, cfg, numbers, chunk_size, template_dir=Path(output).parent)
        path = openjd.write_openjd(template, Path(output))
        given = "" if openjd.shot_file_default(str(shot_path), path.parent) else f" -p ShotFile={shot_path}"
        click.echo(f"wrote {path} (check: openjd check {path}; run here: openjd run {path} --step Assemble "
                   f"--run-dependencies{given})")
    elif fmt == "deadline":
        paths = deadline.write_deadline(deadline.export_deadline(shot_path, cfg, numbers, chunk_size), Path(output))
        click.echo("wrote " + ", ".join(str(p) for p in paths))
    else:
        spec = opencue.opencue_spec(opencue.export_opencue(shot_path, cfg, numbers, chunk_size))
        click.echo(f"wrote {opencue.write_opencue(spec, Path(output))}")


# --------------------------------------------------------------------------------------------------------------
# models


@main.group()
def models():
    """Model cache: list, fetch, verify, add."""


@models.command("list")
@report_errors
def models_list():
    """Name, role, license and whether each model is cached."""
    from vidswap.models.registry import list_models, load_manifest

    rows = list_models(load_manifest())
    click.echo(f"{'name':<18} {'role':<18} {'default':<8} {'cached':<7} license")
    for row in rows:
        click.echo(f"{row['name']:<18} {row['role']:<18} {'yes' if row['default'] else 'no':<8} "
                   f"{'yes' if row['cached'] else 'no':<7} {row['license']}")


@models.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--defaults", is_flag=True, help="Fetch every default model.")
@report_errors
def models_fetch(names, defaults):
    """Fetch models into the cache (sha256-verified)."""
    from vidswap.models.registry import fetch_models, load_manifest

    if not names and not defaults:
        raise click.UsageError("name models to fetch, or use --defaults")
    for path in fetch_models(load_manifest(), list(names) or None, defaults):
        click.echo(f"ok {path}")


@models.command("verify")
@report_errors
def models_verify():
    """Check the sha256 of every cached model; exit 4 if a default is missing or corrupt."""
    from vidswap.errors import ModelError
    from vidswap.models.registry import load_manifest, verify_models

    manifest = load_manifest()
    bad = []
    for name, status in verify_models(manifest):
        click.echo(f"{name:<16} {status}")
        if status != "ok" and manifest[name].default:
            bad.append(name)
    if bad:
        raise ModelError(f"default models missing or corrupt: {', '.join(bad)}; run: vidswap models fetch --defaults")


@models.command("add")
@click.argument("name")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@report_errors
def models_add(name, file):
    """Copy a user-supplied model FILE into the cache as NAME."""
    from vidswap.models.registry import add_model, load_manifest

    click.echo(f"ok {add_model(load_manifest(), name, Path(file))}")


@models.command("convert-stylegan")
@click.argument("pickle_file", metavar="IN.pkl", type=click.Path(dir_okay=False, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="The .safetensors file to write.")
@click.option("--network", default="G_ema", show_default=True, help="Which network of the snapshot to convert.")
@report_errors
def models_convert_stylegan(pickle_file, output, network):
    """Convert NVIDIA's StyleGAN2 pickle IN.pkl to safetensors (its code is never run)."""
    from vidswap.swap.stylegan.importer import convert_checkpoint

    path, cfg = convert_checkpoint(pickle_file, output, network)
    click.echo(f"ok {path}: StyleGAN2 {cfg.resolution}x{cfg.resolution}, {cfg.num_ws} W+ codes of {cfg.w_dim}")



# --------------------------------------------------------------------------------------------------------------
# train (FaceDancer)


main.add_command(train_commands.train)


if __name__ == "__main__":
    main()
