"""Run many shot files on this machine, resumably, with a summary (``vidswap batch SHOTS...``).

Each shot runs as ``vidswap run --config SHOT`` would (one process, every pass, streaming).  When a shot
finishes, ``<job folder>/batch_done.json`` records the digest of its settings and input; a later batch skips
the shot while the record matches and the output is still there, so an interrupted or partly failed batch is
rerun with the same command.  A failing shot is recorded with its exit code and the batch goes on (unless
``fail_fast``); the batch's exit code is 0 when every shot is done, else the first failure's code.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vidswap.config import JobConfig, load_config, to_dict
from vidswap.errors import EXIT_RESOURCE, VidswapError
from vidswap.faces.tracksfile import input_fingerprint
from vidswap.io.atomic import atomic_file
from vidswap.jobs.clean import output_missing
from vidswap.pipeline import RunSummary
from vidswap.shot import ShotPlan, plan_shot

DONE_RECORD = "batch_done.json"


@dataclass(frozen=True)
class ShotResult:
    """One shot of a batch: ``status`` is ``done``, ``skipped`` (done by an earlier batch) or ``failed``."""

    shot: str
    status: str
    exit_code: int = 0
    frames: int = 0
    seconds: float = 0.0
    output: str = ""
    message: str = ""

    def line(self) -> str:
        """``sh010.yaml: failed (exit 2): error text`` / ``sh020.yaml: done: out.mov``."""
        text = self.message if self.status == "failed" else self.output
        code = f" (exit {self.exit_code})" if self.exit_code else ""
        return f"{self.shot}: {self.status}{code}" + (f": {text}" if text else "")


def shot_digest(cfg: JobConfig, plan: ShotPlan) -> str:
    """What a finished shot's result depends on: every setting and the input's content fingerprint."""
    info = plan.info
    source = Path(info.pattern) if info.kind == "sequence" and info.pattern else Path(info.path)
    blob = json.dumps({"config": to_dict(cfg), "input": input_fingerprint(source)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def finished_before(cfg: JobConfig, plan: ShotPlan, digest: str) -> dict | None:
    """The done record of an earlier batch when it matches ``digest`` and the output is still complete."""
    try:
        record = json.loads((plan.job_dir / DONE_RECORD).read_text())
    except (OSError, ValueError):
        return None
    if record.get("digest") != digest or output_missing(cfg, plan) is not None:
        return None
    return record


def _record(plan: ShotPlan, digest: str, summary: RunSummary) -> None:
    plan.job_dir.mkdir(parents=True, exist_ok=True)
    record = {"digest": digest, "output": str(plan.out_path), "reported": summary.output,
              "frames": summary.frames_written, "seconds": round(summary.seconds, 3)}
    with atomic_file(plan.job_dir / DONE_RECORD) as temp:
        temp.write_text(json.dumps(record, indent=1))


def run_batch(shots: Sequence[str | Path], run: Callable[[JobConfig], RunSummary], force: bool = False,
              fail_fast: bool = False, on_result: Callable[[ShotResult], None] | None = None) -> list[ShotResult]:
    """Run every shot file in order with ``run(cfg)`` (the pipeline's run, with the caller's progress display).

    ``force`` reruns shots an earlier batch finished; ``fail_fast`` stops after the first failure.
    ``on_result`` sees each result as it comes.  Ctrl-C propagates after the shots finished so far are recorded.
    """
    results: list[ShotResult] = []

    def report(result: ShotResult) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    for shot in shots:
        start = time.perf_counter()
        try:
            cfg = load_config(shot=shot)
            plan = plan_shot(cfg)
            digest = shot_digest(cfg, plan)
            earlier = None if force else finished_before(cfg, plan, digest)
            if earlier is not None:
                report(ShotResult(str(shot), "skipped", 0, int(earlier.get("frames", 0)), 0.0,
                                  str(earlier.get("reported", earlier["output"])), "done by an earlier batch"))
                continue
            summary = run(cfg)
            _record(plan, digest, summary)
            report(ShotResult(str(shot), "done", 0, summary.frames_written, summary.seconds, summary.output,
                              "; ".join(summary.warnings)))
        except VidswapError as exc:
            report(ShotResult(str(shot), "failed", exc.exit_code, seconds=time.perf_counter() - start,
                              message=str(exc)))
        except MemoryError:
            report(ShotResult(str(shot), "failed", EXIT_RESOURCE, seconds=time.perf_counter() - start,
                              message="out of memory; lower batch_size or scale and retry"))
        except Exception as exc:  # noqa: BLE001 - a bug in one shot must not lose the rest of the batch
            report(ShotResult(str(shot), "failed", 1, seconds=time.perf_counter() - start,
                              message=f"internal error: {type(exc).__name__}: {exc} (rerun the shot with --debug)"))
        if fail_fast and results[-1].status == "failed":
            break
    return results


def batch_exit_code(results: Sequence[ShotResult]) -> int:
    """0 when no shot failed, else the first failed shot's exit code (so one shot gives what ``run`` gives)."""
    return next((r.exit_code for r in results if r.status == "failed"), 0)


def summary_table(results: Sequence[ShotResult]) -> str:
    """A plain-text table: shot, status, exit code, frames, seconds, output or message."""
    rows = [("shot", "status", "exit", "frames", "seconds", "output / message")]
    for r in results:
        rows.append((r.shot, r.status, str(r.exit_code), str(r.frames), f"{r.seconds:.1f}",
                     r.message if r.status == "failed" else r.output))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + "  " + row[5] for row in rows]
    done = sum(r.status != "failed" for r in results)
    return "\n".join(lines + [f"{done} of {len(results)} shots done, {len(results) - done} failed"])


def summary_json(results: Sequence[ShotResult]) -> str:
    return json.dumps({"exit_code": batch_exit_code(results), "shots": [r.__dict__ for r in results]}, indent=2)
