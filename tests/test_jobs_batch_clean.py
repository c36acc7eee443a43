"""`vidswap batch` (many shots, resumable, summary and exit code), `vidswap clean` (finished chunks) and where
job folders go.  Shots use the passthrough core on a few real frames, so they run in about a second."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from vidswap.cli import main
from vidswap.config import load_config
from vidswap.jobs import passes
from vidswap.jobs.batch import DONE_RECORD
from vidswap.shot import job_dir, plan_shot


def _shot(folder: Path, name: str, clip: Path, source: Path, **extra) -> Path:
    data = {"input": str(clip), "sources": [str(source)], "frames": "0-3", "swap": {"core": "passthrough"},
            "output": {"path": str(folder / "out" / f"{name}.mkv")}, **extra}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _table(stdout: str) -> dict[str, list[str]]:
    """The summary table's rows: shot -> [status, exit, frames, seconds, output / message...]."""
    rows = [line.split() for line in stdout.splitlines()]
    return {r[0]: r[1:] for r in rows if r and r[0].endswith(".yaml")}


def _cli(*args: str):
    return CliRunner().invoke(main, [*map(str, args)])


def test_job_folder_sits_beside_an_image_sequence_folder_not_in_it(tmp_path):
    assert job_dir(tmp_path / "comp" / "face.####.exr") == tmp_path / "comp.vidswap" / "face"
    assert job_dir(tmp_path / "renders" / "plate.%04d.png") == tmp_path / "renders.vidswap" / "plate"
    assert job_dir(tmp_path / "renders" / "plate.1001-1100#.exr") == tmp_path / "renders.vidswap" / "plate"
    assert job_dir(tmp_path / "out" / "shot.mov") == tmp_path / "out" / "shot.vidswap"  # videos: beside the file


def test_batch_runs_every_shot_reports_a_table_and_resumes(media, tmp_path):
    clip, src = media("single_face_clip"), media("astronaut")
    good_a, good_c = _shot(tmp_path, "sh010", clip, src), _shot(tmp_path, "sh030", clip, src)
    bad = _shot(tmp_path, "sh020", tmp_path / "missing.mp4", src)
    summary = tmp_path / "summary.json"
    first = _cli("batch", good_a, bad, good_c, "-q", "--summary", summary)
    assert first.exit_code == 2, first.output  # the failed shot's code: missing input
    lines = first.stdout.splitlines()
    assert lines[-1] == "2 of 3 shots done, 1 failed"
    table = {shot: row[:3] for shot, row in _table(first.stdout).items()}
    assert table == {str(good_a): ["done", "0", "4"], str(bad): ["failed", "2", "0"], str(good_c): ["done", "0", "4"]}
    assert _table(first.stdout)[str(good_a)][-1] == str(tmp_path / "out" / "sh010.mkv")
    assert (tmp_path / "out" / "sh010.mkv").is_file() and (tmp_path / "out" / "sh030.mkv").is_file()
    recorded = json.loads(summary.read_text())
    assert recorded["exit_code"] == 2 and [s["status"] for s in recorded["shots"]] == ["done", "failed", "done"]

    again = _cli("batch", good_a, bad, good_c, "-q")  # resumable: finished shots are skipped
    statuses = {shot: row[0] for shot, row in _table(again.stdout).items()}
    assert statuses == {str(good_a): "skipped", str(bad): "failed", str(good_c): "skipped"}
    assert again.exit_code == 2

    data = yaml.safe_load(good_a.read_text())
    data["output"]["crf"] = 20  # a changed shot is run again
    good_a.write_text(yaml.safe_dump(data))
    changed = _cli("batch", good_a, good_c, "-q")
    assert changed.exit_code == 0 and "2 of 2 shots done, 0 failed" in changed.stdout
    assert [row[0] for row in _table(changed.stdout).values()] == ["done", "skipped"]
    (tmp_path / "out" / "sh030.mkv").unlink()  # a deleted output is made again
    assert _table(_cli("batch", good_c, "-q").stdout)[str(good_c)][0] == "done"


def test_batch_fail_fast_and_force(media, tmp_path):
    clip, src = media("single_face_clip"), media("astronaut")
    bad, good = _shot(tmp_path, "bad", tmp_path / "nope.mov", src), _shot(tmp_path, "good", clip, src)
    stopped = _cli("batch", bad, good, "--fail-fast", "-q")
    assert stopped.exit_code == 2 and str(good) not in stopped.stdout and not (tmp_path / "out" / "good.mkv").exists()
    assert _cli("batch", good, "-q").exit_code == 0
    record = job_dir(tmp_path / "out" / "good.mkv") / DONE_RECORD
    before = record.stat().st_mtime_ns
    forced = _cli("batch", good, "--force", "-q")
    assert forced.exit_code == 0 and record.stat().st_mtime_ns > before


@pytest.fixture()
def farm_shot(media, tmp_path):
    """A shot rendered as the farm does (analyze, two render chunks), not yet assembled."""
    shot = _shot(tmp_path, "farm", media("single_face_clip"), media("astronaut"))
    cfg = load_config(shot=shot)
    passes.analyze(cfg)
    for chunk in ("0-1", "2-3"):
        passes.render_chunk(cfg, chunk)
    return shot, cfg


def test_clean_removes_finished_chunks_only_after_assemble(farm_shot):
    shot, cfg = farm_shot
    chunks = plan_shot(cfg).job_dir / "chunks"
    assert len(list(chunks.rglob("*.mkv"))) == 2
    early = _cli("clean", shot)
    assert early.exit_code == 0 and "kept: the output is not complete" in early.stdout and chunks.exists()
    passes.assemble(cfg)
    dry = _cli("clean", shot, "--dry-run")
    assert "would remove" in dry.stdout and chunks.exists()
    done = _cli("clean", shot)
    assert done.exit_code == 0 and f"removed {chunks}" in done.stdout and not chunks.exists()
    assert (plan_shot(cfg).job_dir / "tracks.npz").is_file()  # the analysis stays (re-renders reuse it)
    assert "nothing to clean" in _cli("clean", shot).stdout
    everything = _cli("clean", shot, "--all")
    assert everything.exit_code == 0 and not plan_shot(cfg).job_dir.exists()
    assert (Path(cfg.output.path)).is_file()  # the output is never touched


def test_clean_force_removes_chunks_of_an_unfinished_shot(farm_shot):
    shot, cfg = farm_shot
    forced = _cli("clean", shot, "--force")
    assert forced.exit_code == 0 and not (plan_shot(cfg).job_dir / "chunks").exists()
