"""The footguns a newcomer hit (issue 15), one test each: default output names of previews and compares, previews
analysed at their own scale and sharing the analysis between jobs, ``--debug`` after the subcommand, frame ranges
with gaps, and ``probe | head``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vidswap.cli import hoist_flag, main
from vidswap.config import load_config
from vidswap.io import probe, read_numbers
from vidswap.io.frames import frame_runs
from vidswap.shot import plan_shot


@pytest.fixture(scope="module")
def clip(media, tmp_path_factory) -> Path:
    """A private copy of a real 640x360 clip (72 frames), so default outputs land in a temporary folder."""
    dst = tmp_path_factory.mktemp("footguns") / "single_face.mp4"
    shutil.copy(media("single_face_clip"), dst)
    return dst


def plan_for(clip: Path, **overrides):
    return plan_shot(load_config(overrides={"input": str(clip), "sources": ["x.jpg"], **overrides}))


def test_preview_and_compare_get_their_own_default_names(clip):
    assert plan_for(clip).out_path.name == "single_face_swapped.mp4"
    assert plan_for(clip, preset="preview").out_path.name == "single_face_preview.mp4"
    assert plan_for(clip, output={"compare": True}).out_path.name == "single_face_compare.mp4"
    assert plan_for(clip, preset="preview", output={"compare": True}).out_path.name == \
        "single_face_preview_compare.mp4"
    assert plan_for(clip, output={"kind": "patch"}).out_path.name == "single_face_face.####.png"
    # an explicit -o is kept as given
    assert plan_for(clip, preset="preview", output={"path": str(clip.with_name("x.mov"))}).out_path.name == "x.mov"


def test_previews_work_at_their_own_scale_and_patches_at_the_plates(clip):
    assert plan_for(clip).work_size is None
    preview = plan_for(clip, preset="preview")
    assert preview.work_size == (320, 180) and preview.size == (320, 180)
    assert plan_for(clip, preset="preview", output={"compare": True}).work_size == (320, 180)
    assert plan_for(clip, scale=0.5, output={"kind": "patch"}).work_size is None


def test_debug_is_accepted_before_and_after_the_subcommand(tmp_path):
    missing = str(tmp_path / "missing.mp4")
    runner = CliRunner()
    for args in (["--debug", "probe", missing], ["probe", missing, "--debug"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "Traceback (most recent call last)" in result.output  # --debug prints the traceback
        assert result.output.rstrip().endswith(f"error: input {missing} does not exist; check the path")
    quiet = runner.invoke(main, ["probe", missing])
    assert quiet.exit_code == 2 and "Traceback" not in quiet.output


def test_hoist_flag_stops_at_the_end_of_options_marker():
    assert hoist_flag(["run", "a.mp4", "--debug"], "--debug") == ["--debug", "run", "a.mp4"]
    assert hoist_flag(["run", "--", "--debug"], "--debug") == ["run", "--", "--debug"]
    assert hoist_flag(["run", "a.mp4"], "--debug") == ["run", "a.mp4"]


def test_frame_runs_split_ranges_with_gaps():
    assert frame_runs([0, 1, 2, 3, 10, 11, 12]) == [range(0, 4), range(10, 13)]
    assert frame_runs([0, 2, 4, 7]) == [range(0, 5, 2), range(7, 8)]
    assert frame_runs([1001]) == [range(1001, 1002)]


def test_read_numbers_reads_only_the_frames_asked_for(clip):
    with read_numbers(probe(clip), [0, 1, 2, 3, 10, 11, 12], size=(64, 36)) as frames:
        got = [(f.number, f.image.shape) for f in frames]
    assert got == [(n, (36, 64, 3)) for n in (0, 1, 2, 3, 10, 11, 12)]


def test_run_accepts_a_frame_range_with_gaps(clip, media, tmp_path):
    out = tmp_path / "seq" / "plate.####.png"
    result = CliRunner().invoke(main, ["run", str(clip), "--passthrough", "-q", "--frames", "0-3,10-12",
                                       "-s", str(media("astronaut")), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.parent.iterdir()) == \
        [f"plate.{n:04d}.png" for n in (0, 1, 2, 3, 10, 11, 12)]


def test_probe_into_a_closed_pipe_ends_quietly(clip):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "vidswap.cli", "probe", str(clip)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # `| head` that has read enough
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141  # 128 + SIGPIPE, as the shell's own tools end
    assert err == ""


def test_the_demo_source_wears_no_glasses_and_make_demo_fetches_what_the_shot_reads():
    import yaml

    root = Path(__file__).resolve().parents[1]
    shot = yaml.safe_load((root / "samples" / "shot.yaml").read_text())
    media = yaml.safe_load((root / "samples" / "media.yaml").read_text())
    by_file = {entry["file"]: name for name, entry in media.items()}
    sources = [by_file[Path(s).name] for s in shot["sources"]]
    assert sources == ["astronaut"]
    assert all("glasses" not in media[name]["about"] for name in sources)
    demo = next(line for line in (root / "Makefile").read_text().splitlines() if "fetch_media.py --link" in line)
    assert demo.split()[-2:] == [by_file[Path(shot["input"]).name], "astronaut"]


def test_jobs_of_the_same_input_and_analysis_settings_share_the_analysis(clip, tmp_path, monkeypatch):
    from vidswap import analysis_cache
    from vidswap.analysis_cache import analyze_shot
    from vidswap.faces.analyze import AnalysisModels
    from vidswap.faces.tracksfile import shared_analysis_path
    from vidswap.timing import StageTimer

    real_home = os.environ.get("VIDSWAP_HOME")
    monkeypatch.setenv("VIDSWAP_HOME", str(tmp_path / "home"))
    assert shared_analysis_path("abc") == tmp_path / "home" / "shot_analyses" / "abc.npz"
    if real_home is None:  # the models come from the real cache; the shared analyses go to tmp_path
        monkeypatch.delenv("VIDSWAP_HOME")
    else:
        monkeypatch.setenv("VIDSWAP_HOME", real_home)
    monkeypatch.setattr(analysis_cache, "shared_analysis_path", lambda key: tmp_path / "home" / "shot_analyses" / f"{key}.npz")
    cfg = load_config(overrides={"input": str(clip), "frames": "0-3"})
    models = AnalysisModels.load(cfg.analysis)
    info, numbers = probe(clip), [0, 1, 2, 3]
    first = analyze_shot(cfg, info, numbers, models, tmp_path / "final.vidswap" / "tracks.npz", StageTimer())
    key = first.header["key"]
    assert (tmp_path / "home" / "shot_analyses" / f"{key}.npz").is_file()
    timer = StageTimer()  # another output name (a compare): no face analysed again
    second = analyze_shot(cfg, info, numbers, models, tmp_path / "compare.vidswap" / "tracks.npz", timer)
    assert second.header["key"] == key and "detect" not in timer.seconds
    assert (tmp_path / "compare.vidswap" / "tracks.npz").is_file()
    assert [t.frames.tolist() for t in second.tracks] == [t.frames.tolist() for t in first.tracks]
    timer = StageTimer()  # other analysis settings (the preview's smoothing, its scale): analysed for themselves
    preview = load_config(overrides={"input": str(clip), "frames": "0-3", "preset": "preview"})
    third = analyze_shot(preview, info, numbers, models, tmp_path / "preview.vidswap" / "tracks.npz", timer,
                         work_size=(320, 180))
    assert third.header["key"] != key and timer.seconds["detect"] > 0
    assert (third.header["width"], third.header["height"]) == (320, 180)


def test_each_pass_prints_its_100_percent_line_once_under_its_own_name(capsys):
    from vidswap.cli_support import ProgressBar as _progress_bar

    bar = _progress_bar()
    for stage, done, total in (("render", 0, 3), ("render", 2, 3), ("render", 3, 3), ("render", 3, 3),
                               ("overlay", 0, 2), ("overlay", 2, 2)):
        bar(stage, done, total)
    bar.close()
    lines = [line for line in re.split(r"[\r\n]", capsys.readouterr().err) if line.strip()]
    assert sum("| 3/3 " in line for line in lines) == 1
    assert sum("| 2/2 " in line for line in lines) == 1
    assert [line.split(":")[0] for line in lines if "100%" in line] == ["render", "overlay"]


def test_passes_report_progress_from_zero_under_their_names(clip, media, tmp_path):
    from vidswap import pipeline
    from vidswap.jobs import passes

    calls = []
    cfg = load_config(overrides={"input": str(clip), "sources": [str(media("astronaut"))], "frames": "0-3,10-12",
                                 "swap": {"core": "passthrough"}, "output": {"path": str(tmp_path / "o.mp4")}})
    pipeline.run(cfg, progress=lambda *call: calls.append(call))
    assert calls[0] == ("render", 0, 7) and calls[-1] == ("render", 7, 7)
    passes.analyze(cfg)
    calls.clear()
    passes.write_overlay(cfg, tmp_path / "overlay.mp4", progress=lambda *call: calls.append(call))
    assert {c[0] for c in calls} == {"overlay"} and calls[0] == ("overlay", 0, 7) and calls[-1] == ("overlay", 7, 7)


def test_tuning_shows_the_last_identity_loss_between_its_steps_and_warns_on_cpu():
    from vidswap.train.tune.loop import latest_losses
    from vidswap.train.tune.params import TuneParams, cpu_tuning_estimate, cpu_tuning_warning

    nan = float("nan")
    history = {"l1": [0.5, 0.25], "identity": [0.75, nan], "temporal": [nan, nan]}
    assert latest_losses(history, ("l1", "identity", "temporal", "total")) == {"l1": "0.2500", "identity": "0.7500"}
    params = TuneParams()
    assert cpu_tuning_estimate(params, 256) == (40, pytest.approx(40 * 5.1))
    assert cpu_tuning_estimate(params, 512)[1] == pytest.approx(4 * 40 * 5.1)
    assert cpu_tuning_warning(params, 256) == ("tuning on the CPU: 40 steps at 256 px, about 3 min (~5 s a step on "
                                               "2 cores); --no-tune skips it, a CUDA GPU is ~50x faster")


def test_stage_warnings_are_said_as_they_happen(capsys):
    import logging

    result = CliRunner().invoke(main, ["config", "--help"])  # any command: the root sets the handler up
    assert result.exit_code == 0
    capsys.readouterr()
    logging.getLogger("vidswap").warning("tuning on the CPU: 40 steps")
    assert capsys.readouterr().err == "warning: tuning on the CPU: 40 steps\n"
