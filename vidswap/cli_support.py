"""The command line's runtime plumbing: errors to one line and their exit codes, ``--debug`` anywhere, warnings as
they happen, SIGTERM as Ctrl-C, a closed stdout pipe, and the per-pass progress bars."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from contextlib import contextmanager
from functools import wraps

import click
from tqdm import tqdm

from vidswap.errors import EXIT_INTERRUPTED, EXIT_RESOURCE, VidswapError

__all__ = ["report_errors", "DebugAnywhere", "hoist_flag", "EchoHandler", "EXIT_BROKEN_PIPE", "terminate", "progress",
           "ProgressBar"]


def report_errors(fn):
    """Turn errors into one line on stderr and the documented exit code (tracebacks only with --debug)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        debug = bool(click.get_current_context().find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except VidswapError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: no output was left under the final name", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except MemoryError:
            click.echo("error: out of memory; lower --batch-size or --scale and retry", err=True)
            sys.exit(EXIT_RESOURCE)
        except BrokenPipeError:  # `vidswap probe clip.mp4 | head`: the reader stopped reading; no traceback
            quiet_stdout()
            sys.exit(EXIT_BROKEN_PIPE)
        except (click.exceptions.Exit, click.ClickException):
            raise  # click reports usage errors itself (exit 2)
        except Exception as exc:  # noqa: BLE001 - last resort: still one line
            if debug:
                traceback.print_exc()
            else:
                click.echo(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                           err=True)
            sys.exit(1)

    return wrapper


class DebugAnywhere(click.Group):
    """The root group: ``--debug`` is accepted after the subcommand too (``vidswap run ... --debug``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_flag(args, "--debug"))


def hoist_flag(args: list[str], flag: str) -> list[str]:
    """``args`` with every ``flag`` before a ``--`` end-of-options marker moved to the front (once)."""
    end = args.index("--") if "--" in args else len(args)
    if flag not in args[:end]:
        return list(args)
    return [flag] + [a for a in args[:end] if a != flag] + list(args[end:])



class EchoHandler(logging.Handler):
    """The stages' warnings said as they happen (``warning: ...`` on stderr), e.g. before a long CPU tuning."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)


#: Exit code when stdout's reader went away (``probe | head``): 128 + SIGPIPE, as the shell's own tools end.
EXIT_BROKEN_PIPE = 141


def quiet_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not fail again on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (tests capture it)
        pass
    finally:
        os.close(devnull)


def terminate(signum, frame):
    """SIGTERM (farm cancellation) handled like Ctrl-C: the same clean-up of temporaries, exit 130."""
    raise KeyboardInterrupt



@contextmanager
def progress(quiet: bool):
    bar = None if quiet else ProgressBar()
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


class ProgressBar:
    """tqdm progress with frames/s, one bar per pass (analyze, render), created when its total is known."""

    def __init__(self):
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None or stage != self.stage:
            self.close()
            self.bar = tqdm(total=total, unit="frame", desc=stage, dynamic_ncols=True, file=sys.stderr)
            self.stage = stage
        if self.bar.disable:  # closed at 100%: a later call of the same pass changes nothing
            return
        if done >= total:  # the pass is done: one 100% line (closing draws it), its rate final; the work after it
            self.bar.n = done  # (smoothing, tuning) is not the pass's
            self.close()
        else:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --------------------------------------------------------------------------------------------------------------
