"""Farm passes on a real clip: chunks agree with a single-pass render bit for bit, a killed chunk leaves nothing that
looks complete and re-running it succeeds, completed chunks are skipped, assemble refuses gaps."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from farm_diff import frame_hashes, render_differences
from safetensors import safe_open

from vidswap.io import probe
from vidswap.probe_record import recorded_probe

VIDSWAP = [sys.executable, "-m", "vidswap.cli"]


def vidswap(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*VIDSWAP, *map(str, args)], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def shot(media, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("farm")
    # astronaut smiles with its lips apart: the target set-up also changes the identity's shape (its mouth at the
    # track's rest, vidswap.swap.geometric.mouth_rest), so the recorded target carries it to the chunks too; from
    # frame ~18 the plate grins and its brows come down, so the relit render takes the plate's creases on some of
    # these frames and not on others (vidswap.swap.geometric.plate_creases); the render is smeared along the face's
    # motion over a 360-degree shutter (composite.motion_blur), which takes the frames before and after each one
    # from the analysis, across the chunks' boundaries
    (work / "shot.yaml").write_text(
        f"input: {media('single_face_clip')}\nsources: [{media('astronaut')}]\nframes: 12-27\n"
        f"output: {{path: chunked.mkv}}\ncomposite: {{motion_blur: 1.0}}\n")
    for name in ("whole.mkv", "chunked.mp4", "whole.mp4"):
        (work / name.replace(".", "_")).with_suffix(".yaml").write_text(
            f"input: {media('single_face_clip')}\nsources: [{media('astronaut')}]\nframes: 12-27\n"
            f"output: {{path: {name}}}\ncomposite: {{motion_blur: 1.0}}\n")
    return work


def test_chunks_equal_a_single_pass(shot, media):
    assert vidswap("analyze", "--config", shot / "shot.yaml", "-q").returncode == 0
    # the input's probe is recorded for the farm tasks (they do not read the whole plate again)
    assert recorded_probe(shot / "chunked.vidswap", media("single_face_clip")) == probe(media("single_face_clip"))
    # the core's prepared sources and the target's relit set-up are recorded by analyze; the chunks read them, the
    # single pass computes its own (so the record is checked bit for bit against the computed set-up)
    records = sorted(p.name for p in (shot / "chunked.vidswap" / "sources").glob("*.safetensors"))
    assert len(records) == 2 and sum(name.startswith("target_") for name in records) == 1
    target = next((shot / "chunked.vidswap" / "sources").glob("target_*.safetensors"))
    with safe_open(str(target), framework="pt") as f:
        assert "canonical" in json.loads(f.metadata()["fields"])  # the source's mouth put at the track's rest
    for chunk in ("12-18", "19-27"):  # odd sizes: batches of 8 fall differently than in one pass
        if chunk == "19-27":  # as from an older job folder without the target record: computed (and recorded) again
            for record in (shot / "chunked.vidswap" / "sources").glob("target_*.safetensors"):
                record.unlink()
        proc = vidswap("render", "--config", shot / "shot.yaml", "--frames", chunk, "-q")
        assert proc.returncode == 0, proc.stderr
    assert len(list((shot / "chunked.vidswap" / "sources").glob("target_*.safetensors"))) == 1
    proc = vidswap("render", "--config", shot / "shot.yaml", "--frames", "19-27", "-q")
    assert proc.returncode == 0 and "skipped" in proc.stdout  # idempotent retry
    proc = vidswap("assemble", "--config", shot / "shot.yaml", "-q")
    assert proc.returncode == 0, proc.stderr
    proc = vidswap("run", "--config", shot / "whole_mkv.yaml", "-q")
    assert proc.returncode == 0, proc.stderr
    chunked, whole = frame_hashes(shot / "chunked.mkv"), frame_hashes(shot / "whole.mkv")
    assert len(chunked) == len(whole) == 16
    assert chunked == whole, render_differences(shot / "chunked.mkv", shot / "whole.mkv", shot / "chunked.vidswap",
                                                shot / "whole.vidswap")
    assert len(probe(shot / "chunked.mkv").audio) == 1
    # H.264: a single pass hands the encoder the plate's decoded pictures with only what the render changed
    # converted back (vidswap.io.region_write); assemble does the same from the chunks, so the files are equal
    for name in ("chunked_mp4", "whole_mp4"):
        proc = vidswap("assemble" if name.startswith("chunked") else "run", "--config", shot / f"{name}.yaml", "-q")
        assert proc.returncode == 0, proc.stderr
    assert (shot / "chunked.mp4").read_bytes() == (shot / "whole.mp4").read_bytes()


def test_killed_chunk_leaves_nothing_complete_and_rerun_succeeds(shot):
    shot_file = shot / "shot.yaml"
    assert vidswap("analyze", "--config", shot_file, "-q").returncode == 0
    chunks = shot / "chunked.vidswap" / "chunks"
    proc = subprocess.Popen([*VIDSWAP, "render", "--config", str(shot_file), "--frames", "12-27", "--force", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and not any(p.name.startswith(".") for p in chunks.rglob("*")):
        time.sleep(0.05)  # wait until the chunk's temporary file exists, then kill the task hard
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    complete = [p for p in chunks.rglob("00000012-00000027.mkv")]
    assert complete == []  # only a temporary name can be left by a killed task
    proc = vidswap("render", "--config", shot_file, "--frames", "12-27", "-q")
    assert proc.returncode == 0, proc.stderr
    assert len(list(chunks.rglob("00000012-00000027.mkv"))) == 1


def test_assemble_refuses_missing_chunks(shot, media, tmp_path):
    shot_file = tmp_path / "gap.yaml"
    shot_file.write_text(f"input: {media('single_face_clip')}\nsources: [{media('grace_hopper')}]\nframes: 0-9\n"
                         f"output: {{path: gap.mkv}}\nswap: {{core: passthrough}}\n")
    assert vidswap("analyze", "--config", shot_file, "-q").returncode == 0
    assert vidswap("render", "--config", shot_file, "--frames", "0-4", "-q").returncode == 0
    proc = vidswap("assemble", "--config", shot_file, "-q")
    assert proc.returncode == 2 and "frames 5-9 have no rendered chunk" in proc.stderr
    assert not (tmp_path / "gap.mkv").exists()


RENDER_CHILD = """
import json, sys
from vidswap.cli import main
try:
    main(["render", "--config", sys.argv[1], "--frames", "12-15", "--force", "-q"], standalone_mode=False)
except SystemExit as exc:
    if exc.code:
        raise
print("MODULES " + json.dumps(sorted(m for m in sys.modules if m.startswith("vidswap."))))
"""


def test_render_task_imports_no_analyzer(shot):
    """A render task reads what the analyze pass recorded: the analyzer, its trackers and filters stay unimported
    (issue 19's fixed cost: ~50 ms of imports a task)."""
    shot_file = shot / "shot.yaml"
    assert vidswap("analyze", "--config", shot_file, "-q").returncode == 0
    proc = subprocess.run([sys.executable, "-c", RENDER_CHILD, str(shot_file)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    modules = json.loads([x for x in proc.stdout.splitlines() if x.startswith("MODULES ")][-1][len("MODULES "):])
    assert "vidswap.render" in modules and "vidswap.faces.analysis_key" in modules  # it did render, and check keys
    assert not {"vidswap.faces.analyze", "vidswap.hands.track", "vidswap.faces.detect", "vidswap.faces.smooth",
                "vidswap.faces.track"} & set(modules)
