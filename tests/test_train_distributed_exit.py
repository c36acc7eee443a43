"""A torchrun worker's `vidswap train` ends through `leave_process` (os._exit after flushing, not the interpreter's
finalization, where gloo's leftover threads can abort it), with the exit status and messages it would have had; a
single process and the `train` subcommands end as usual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from stylegan_method_setup import env as checkout_env

#: A `vidswap train ...` command line run in a fresh interpreter with an atexit mark: "finalized" is printed only
#: when the interpreter finalizes (a plain exit), never after os._exit.
MARKED_CLI = ("import atexit, sys; atexit.register(lambda: print('finalized', flush=True)); "
              "from vidswap.cli import main; main(sys.argv[1:])")


def run(args: list[str], world: str, tmp_path: Path, agent: bool = True) -> subprocess.CompletedProcess:
    """The command in a fresh interpreter with ``WORLD_SIZE`` ``world`` and (``agent``) torchrun's run id."""
    env = checkout_env()
    env["WORLD_SIZE"] = world
    env.pop("TORCHELASTIC_RUN_ID", None)
    if agent:
        env["TORCHELASTIC_RUN_ID"] = "test"
    return subprocess.run([sys.executable, "-c", MARKED_CLI, *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_leave_process_flushes_its_output_and_keeps_the_status(tmp_path):
    code = ("import logging, sys; from vidswap.train.facedancer.distributed import leave_process; "
            "h = logging.StreamHandler(open(sys.argv[1], 'w')); logging.getLogger('t').addHandler(h); "
            "logging.getLogger('t').warning('logged'); print('printed'); sys.stderr.write('written'); "
            "leave_process(3)")
    log = tmp_path / "log.txt"
    proc = subprocess.run([sys.executable, "-c", code, str(log)], capture_output=True, text=True, timeout=60,
                          env=checkout_env())
    assert proc.returncode == 3
    assert proc.stdout == "printed\n" and proc.stderr == "written"  # block-buffered pipes, flushed before the exit
    assert log.read_text() == "logged\n"  # a logging handler's file, flushed and closed


@pytest.mark.parametrize("args, status, message", [
    (["train"], 2, "give --config train.yaml"),  # click's usage error
    (["train", "--config", "nope.yaml"], 2, "cannot read training config nope.yaml"),  # a VidswapError
])
def test_torchrun_worker_leaves_with_the_documented_status(tmp_path, args, status, message):
    single, worker = run(args, "1", tmp_path), run(args, "2", tmp_path)
    assert single.returncode == worker.returncode == status
    assert message in single.stderr and message in worker.stderr
    assert "finalized" in single.stdout  # one process: the interpreter finalizes as usual
    assert "finalized" not in worker.stdout  # a torchrun worker: os._exit, past the finalization
    # the rendezvous variables without torchrun's agent (e.g. a test calling the CLI in-process): a usual exit,
    # which CliRunner and pytest can catch
    assert "finalized" in run(args, "2", tmp_path, agent=False).stdout


def test_train_subcommands_end_as_usual_under_torchrun(tmp_path):
    proc = run(["train", "export", "nope.safetensors", "-o", "out"], "2", tmp_path)
    assert proc.returncode == 4 and "checkpoint nope.safetensors does not exist" in proc.stderr
    assert "finalized" in proc.stdout  # the group's callback returned: the subcommand ran and exited normally
