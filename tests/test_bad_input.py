"""Hostile-input matrix (issue 14): every bad input, fault and hostile name gets its documented exit code and a
one-line message naming the file, leaves no output or temporary behind (beyond what resume needs), and never
changes the input (sha256). The matrix with results is in tests/README.md.

The commands run in-process through click's runner (the real CLI, its error reporting and exit codes) on a real
clip; pass-through jobs and short frame ranges keep the whole file fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from vidswap.cli import main
from vidswap.faces.tracksfile import ShotAnalysis
from vidswap.io import probe


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Job:
    """A folder with a private copy of the real clip and a source portrait; runs vidswap in it."""

    def __init__(self, folder: Path, clip: Path, source: Path):
        self.dir = folder
        self.clip = folder / "single_face.mp4"
        self.source = folder / "grace_hopper.jpg"
        shutil.copy(clip, self.clip)
        shutil.copy(source, self.source)
        self.hashes = {p.name: sha(p) for p in (self.clip, self.source)}

    def __call__(self, *args):
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            return CliRunner().invoke(main, [str(a) for a in args])
        finally:
            os.chdir(cwd)

    def run(self, *args, frames: str | None = "0-5", passthrough: bool = True):
        extra = (["--frames", frames] if frames is not None else []) + (["--passthrough"] if passthrough else [])
        return self("run", self.clip.name, "-s", self.source.name, "-q", *extra, *args)

    def inputs_unchanged(self) -> None:
        for name, digest in self.hashes.items():
            assert sha(self.dir / name) == digest, f"{name} was modified"

    def leftovers(self) -> list[str]:
        """Temporaries anywhere under the folder."""
        return sorted(str(p.relative_to(self.dir)) for p in self.dir.rglob("*")
                      if p.name.startswith(".vidswap-tmp-") or p.name.endswith(".part"))

    def outputs(self) -> list[str]:
        """Everything under the folder but the inputs."""
        return sorted(str(p.relative_to(self.dir)) for p in self.dir.rglob("*")
                      if p.is_file() and p.name not in self.hashes)


def assert_fails(result, code: int, *needles: str) -> None:
    """Exit ``code``, exactly one line on stderr, ``error: ...`` naming each of ``needles``, no traceback."""
    stderr = result.stderr
    assert result.exit_code == code, (result.exit_code, stderr, result.exception)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def originals(media) -> tuple[Path, Path]:
    return media("single_face_clip"), media("grace_hopper")


@pytest.fixture
def job(originals, tmp_path) -> Job:
    return Job(tmp_path, *originals)


def write_shot(job: Job, name: str = "shot.yaml", **settings) -> Path:
    """A shot file: the clip, its source, pass-through, frames 0-11 (the farm passes take frames from it)."""
    data = {"input": job.clip.name, "sources": [job.source.name], "frames": "0-11",
            "swap": {"core": "passthrough"}, **settings}
    path = job.dir / name
    path.write_text(yaml.safe_dump(data))
    return path


# ------------------------------------------------------------------------------------------- frame ranges


@pytest.mark.parametrize("text, needle", [
    ("", "empty frame range ''"),
    (" ", "empty frame range ' '"),
    ("0-2000000000", "'0-2000000000' has too many frames"),
    ("23-0", "'23-0' does not count upwards"),
    ("0-5x-1", "frame range '0-5x-1'"),
    ("abc", "bad frame range 'abc'"),
])
def test_bad_frame_ranges_are_usage_errors_with_the_users_text(job, text, needle):
    result = job.run("-o", "out.mp4", frames=text)
    assert_fails(result, 2, needle, "single_face.mp4")
    assert "range(" not in result.stderr
    assert job.outputs() == [] and job.leftovers() == []
    job.inputs_unchanged()


# ------------------------------------------------------------------------------------------ FFmpeg as URLs


def test_protocol_prefixed_names_are_the_files_themselves(job):
    """A file named ``file:single_face.mp4`` is that file (6 frames), not single_face.mp4 (72), and writing to
    the real plate's name from it is not writing over its input."""
    short = job.dir / "file:single_face.mp4"
    assert job.run("-o", short.name, frames="0-5").exit_code == 0
    job.hashes[short.name] = sha(short)
    assert probe(short).frame_count == 6
    result = job("probe", "--json", short.name)
    assert result.exit_code == 0 and '"frame_count": 6' in result.stdout
    result = job("run", short.name, "-s", job.source.name, "--passthrough", "-q", "-o", "copy.mp4")
    assert result.exit_code == 0, result.stderr
    assert probe(job.dir / "copy.mp4").frame_count == 6
    # output = input through a protocol prefix, a ./ path and a hard link: all refused, the plate untouched
    for out in (short.name, f"./{short.name}"):
        assert_fails(job("run", short.name, "-s", job.source.name, "--passthrough", "-q", "-o", out), 2,
                     "overwrite the input")
    os.link(job.clip, job.dir / "hardlink.mp4")
    job.hashes["hardlink.mp4"] = job.hashes[job.clip.name]
    assert_fails(job.run("-o", "hardlink.mp4"), 2, "hardlink.mp4", "overwrite the input")
    concat = job.dir / "concat:single_face.mp4|single_face.mp4"
    assert_fails(job("probe", concat.name), 2, "concat:single_face.mp4")  # missing: not FFmpeg's concat
    assert probe(job.clip).frame_count == 72
    job.inputs_unchanged()
    assert job.leftovers() == []


# ---------------------------------------------------------------------------------------- job state


def test_stale_analysis_is_refused_by_render_and_assemble(job, originals):
    """analyze, then the plate is re-exported under the same name: render and assemble refuse (exit 2, naming
    what changed) instead of pasting at the old plate's positions; run re-analyses."""
    shot = write_shot(job, output={"path": "out.mkv"})
    assert job("analyze", "--config", shot.name, "-q").exit_code == 0
    assert job("render", "--config", shot.name, "--frames", "0-5", "-q").exit_code == 0
    reexport = job.dir / "reexport.mp4"
    assert job.run("-o", reexport.name, frames="30-71").exit_code == 0
    os.replace(reexport, job.clip)  # same name, other plate
    job.hashes[job.clip.name] = sha(job.clip)
    for args in (("render", "--frames", "6-11"), ("assemble",)):
        result = job(args[0], "--config", shot.name, "-q", *args[1:])
        assert_fails(result, 2, "stale", "single_face.mp4 changed since it was analysed", "vidswap analyze")
    assert not (job.dir / "out.mkv").exists()
    job.inputs_unchanged()
    assert job.leftovers() == []


def test_changed_analysis_settings_are_named(job):
    shot = write_shot(job, output={"path": "out.mkv"})
    assert job("analyze", "--config", shot.name, "-q").exit_code == 0
    changed = write_shot(job, "changed.yaml", output={"path": "out.mkv"}, analysis={"score_threshold": 0.7})
    assert_fails(job("render", "--config", changed.name, "--frames", "0-5", "-q"), 2,
                 "analysis or smoothing settings changed")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_tracks_file(job, damage):
    """render/assemble: 'corrupt', exit 2; run: analyses again and succeeds."""
    shot = write_shot(job, output={"path": "out.mkv"})
    assert job("analyze", "--config", shot.name, "-q").exit_code == 0
    tracks = job.dir / "out.vidswap" / "tracks.npz"
    data = tracks.read_bytes()
    tracks.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"PK\x03\x04" + os.urandom(300),
                        "empty": b""}[damage])
    for args in (("render", "--frames", "0-5"), ("assemble",)):
        assert_fails(job(args[0], "--config", shot.name, "-q", *args[1:]), 2, "tracks.npz", "corrupt")
    result = job("run", "--config", shot.name, "-q")
    assert result.exit_code == 0, result.stderr
    job.inputs_unchanged()
    assert job.leftovers() == []


def test_tracks_temporary_is_created_exclusively(job, tmp_path):
    """A symlink planted under the old predictable temporary name is not followed."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    folder = job.dir / "out.vidswap"
    folder.mkdir()
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        (folder / f".tracks.npz.{pid}.part").symlink_to(victim)
    shot = write_shot(job, output={"path": "out.mkv"})
    assert job("analyze", "--config", shot.name, "-q").exit_code == 0
    assert victim.read_text() == "keep me"
    ShotAnalysis.load(folder / "tracks.npz")


def test_killed_chunk_temporaries_are_cleaned_on_rerun(job):
    """A render task killed mid-chunk leaves its .vidswap-tmp- file; re-running the chunk removes it."""
    shot = write_shot(job, output={"path": "out.mkv"})
    assert job("analyze", "--config", shot.name, "-q").exit_code == 0
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "vidswap.cli", "render", "--config", shot.name,
                             "--frames", "0-11", "-q"], cwd=job.dir, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not job.leftovers() and proc.poll() is None:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    if not job.leftovers():  # the task ended before it could be killed: plant what a killed one leaves
        from vidswap.io.atomic import host_tag

        chunks = job.dir / "out.vidswap" / "chunks"
        if not chunks.is_dir():  # killed before its chunk folder existed: make it as the task would
            assert job("render", "--config", shot.name, "--frames", "0-11", "-q").exit_code == 0
        folder = next(chunks.iterdir())
        for done in folder.glob("0*.mkv"):
            done.unlink()
        (folder / f".vidswap-tmp-{host_tag()}-{proc.pid}-0badf00d-00000000-00000011.mkv").write_bytes(b"x")
    assert job.leftovers(), "the killed task left no temporary to clean"
    result = job("render", "--config", shot.name, "--frames", "0-11", "-q")
    assert result.exit_code == 0, result.stderr
    assert job.leftovers() == []


def test_overwrite_default_and_no_overwrite(job):
    out = job.dir / "out.mp4"
    assert job.run("-o", out.name, frames="0-5").exit_code == 0
    assert probe(out).frame_count == 6
    assert job.run("-o", out.name, frames="0-3").exit_code == 0  # default: replaced, as re-renders expect
    assert probe(out).frame_count == 4
    before = sha(out)
    assert_fails(job.run("-o", out.name, "--no-overwrite", frames="0-5"), 2, "out.mp4", "--no-overwrite")
    assert sha(out) == before
    seq = job.dir / "seq" / "f.####.png"
    assert job.run("-o", "seq/f.####.png", frames="0-2").exit_code == 0
    assert_fails(job.run("-o", "seq/f.####.png", "--no-overwrite", frames="2-4"), 2, "f.####.png",
                 "1 of its 3 frame files")
    assert job.run("-o", "seq/f.####.png", "--no-overwrite", frames="3-4").exit_code == 0
    assert len(list(seq.parent.glob("*.png"))) == 5
    job.inputs_unchanged()
    assert job.leftovers() == []


# ------------------------------------------------------------------------------------- exit codes, up front


@pytest.mark.parametrize("args, needles", [
    (["--codec", "png", "-o", "out.mov"], ["out.mov", "codec is png"]),
    (["-o", "seq/out.png"], ["seq/out.png", "placeholder"]),
    (["--codec", "exr", "-o", "out.mp4"], ["out.mp4", "codec is exr"]),
    (["-o", "out.avi"], ["out.avi", "output type"]),
    (["--contact-sheet", "single_face.mp4/sheet.png", "-o", "out.mp4"], ["single_face.mp4", "not a folder"]),
    (["--contact-sheet", "sheet.txt", "-o", "out.mp4"], ["sheet.txt", "image extension"]),
    (["--contact-sheet", "single_face.mp4", "-o", "out.mp4"], ["single_face.mp4", "image extension"]),
    (["--debug-frames", "single_face.mp4/dbg", "-o", "out.mp4"], ["single_face.mp4", "not a folder"]),
    (["-o", "single_face.mp4/out.mp4"], ["single_face.mp4", "not a folder"]),
])
def test_settings_and_paths_fail_before_any_work(job, args, needles):
    """A real swap job (no pass-through): bad settings and paths are refused before models load or the
    analysis runs (well under the ~5 s the analysis takes), and leave no job folder."""
    start = time.perf_counter()
    result = job.run(*args, frames="0-5", passthrough=False)
    assert_fails(result, 2, *needles)
    assert time.perf_counter() - start < 2.0
    assert job.outputs() == [] and not list(job.dir.glob("*.vidswap")) and job.leftovers() == []
    job.inputs_unchanged()


def test_bad_encoder_preset_and_sequence_output_equal_to_input(job):
    shot = write_shot(job, output={"path": "out.mp4", "encoder_preset": "turbo"}, swap={"core": "geometric"})
    assert_fails(job("run", "--config", shot.name, "-q"), 2, "turbo")
    assert job.run("-o", "plate/p.%04d.png", frames="0-2").exit_code == 0
    seq_hashes = {p.name: sha(p) for p in (job.dir / "plate").iterdir()}
    # the same sequence written as #### or %04d: the input itself
    for out in ("plate/p.####.png", "plate/p.%04d.png"):
        result = job("run", "plate/p.####.png", "-s", job.source.name, "-q", "-o", out)
        assert_fails(result, 2, "overwrite the input")
    assert {p.name: sha(p) for p in (job.dir / "plate").iterdir()} == seq_hashes


def test_output_that_is_a_folder_is_permanent(job):
    (job.dir / "diro.mp4").mkdir()
    assert_fails(job.run("-o", "diro.mp4"), 2, "diro.mp4", "is a folder")
    assert list((job.dir / "diro.mp4").iterdir()) == []


def test_unwritable_job_folder(job):
    (job.dir / "out.vidswap").write_text("a file where the job folder goes")
    assert_fails(job.run("-o", "out.mp4"), 2, "job folder", "out.vidswap")
    assert not (job.dir / "out.mp4").exists() and job.leftovers() == []


def test_disk_full_on_the_tracks_file_is_retryable(job, monkeypatch):
    import errno
    import vidswap.faces.tracksfile as tracksfile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tracksfile.np, "savez_compressed", full)
    shot = write_shot(job, output={"path": "out.mkv"})
    assert_fails(job("analyze", "--config", shot.name, "-q"), 5, "tracks.npz", "No space left")
    assert not (job.dir / "out.vidswap" / "tracks.npz").exists() and job.leftovers() == []


def test_model_path_that_is_a_folder_is_a_model_error(job, model, monkeypatch, tmp_path_factory):
    from vidswap.models.registry import load_manifest

    home = tmp_path_factory.mktemp("home")
    (home / "models").mkdir()
    manifest = load_manifest()
    cached = Path(model("yunet")).parent
    for entry in cached.iterdir():  # the real cache, but the detector's file is a folder
        link = home / "models" / entry.name
        if entry.name == manifest["yunet"].file:
            link.mkdir()
        else:
            link.symlink_to(entry)
    monkeypatch.setenv("VIDSWAP_HOME", str(home))
    result = job.run("-o", "out.mp4", passthrough=False)
    assert_fails(result, 4, manifest["yunet"].file, "not a file", "vidswap models fetch")


def test_corrupt_frame_inside_a_video_is_permanent(job):
    data = bytearray(job.clip.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 3000] = np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    bad = job.dir / "corrupt.mp4"
    bad.write_bytes(bytes(data))
    job.hashes[bad.name] = sha(bad)
    result = job("run", bad.name, "-s", job.source.name, "--passthrough", "-q", "-o", "out.mp4")
    assert_fails(result, 2, "corrupt.mp4", "corrupt")
    assert job.outputs() == [] and job.leftovers() == []
    job.inputs_unchanged()


def test_corrupt_frame_inside_a_sequence_is_permanent(job):
    assert job.run("-o", "plate/p.####.png", frames="0-5").exit_code == 0
    bad = job.dir / "plate" / "p.0003.png"
    bad.write_bytes(bad.read_bytes()[:200])
    result = job("run", "plate/p.####.png", "-s", job.source.name, "--passthrough", "-q", "-o", "out.mp4")
    assert_fails(result, 2, "p.0003.png", "corrupt")
    assert not (job.dir / "out.mp4").exists() and job.leftovers() == []


# ------------------------------------------------------------------------------- injection and resources


def test_yaml_alias_bomb_fails_fast(job):
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for k, name in enumerate("bcdefgh"):
        prev = "abcdefgh"[k]
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    shot = job.dir / "bomb.yaml"
    shot.write_text(f"input: {job.clip.name}\n" + "\n".join(levels) + "\nsources: [" + ", ".join(["*h"] * 9) + "]\n")
    assert shot.stat().st_size < 1200
    start = time.perf_counter()
    assert_fails(job("run", "--config", shot.name, "-q"), 2, "bomb.yaml", "expands to more than")
    assert time.perf_counter() - start < 2.0


def test_huge_yaml_values_are_not_formatted_whole(job):
    shot = job.dir / "huge.yaml"
    shot.write_text(f"input: {job.clip.name}\nscale: [" + ", ".join(["1"] * 50_000) + "]\n")
    result = job("run", "--config", shot.name, "-q")
    assert_fails(result, 2, "scale in", "huge.yaml")
    assert len(result.stderr) < 400
    shot.write_text(f"input: {job.clip.name}\nsources: ['" + "x" * 20_000 + "']\n")
    assert_fails(job("run", "--config", shot.name, "-q"), 2, "20000 characters")


HOSTILE = ['/comp/sh [python {open("/tmp/pwned","w")}] $HOME "q" {b} back\\slash/face.####.png',
           "/comp/[exec touch pwned]/face.####.exr"]


@pytest.mark.parametrize("path", HOSTILE)
def test_nuke_scripts_escape_hostile_paths(path):
    """Every path written into a Nuke script reads back, through a real Tcl interpreter's parse and then the
    knob's own evaluation (``subst``), as the path itself, and runs nothing."""
    tkinter = pytest.importorskip("tkinter")  # the stdlib's Tcl; present wherever CPython's Tk is
    from vidswap.composite.patch import NukePlate, nuke_script, nuke_string, patch_record
    from vidswap.io.sequences import SequencePattern

    tcl = tkinter.Tcl()
    tcl.eval('set ::ran 0; proc python args {set ::ran 1}; proc exec args {set ::ran 1}')
    record = patch_record(0, 0, np.eye(3)[:2], (64, 64), (640, 360), "face_t0.0000.png", "straight", 'cs "$x"')
    plate = NukePlate(path.replace("face.####", "plate.####"), 0, 5, "[python x]")
    script = nuke_script(SequencePattern.parse(path), 0, [record], plate)
    knobs = [line.split(" ", 2)[2] for line in script.splitlines() if line.startswith((" file ", " colorspace "))]
    assert len(knobs) == 4
    values = []
    for knob in knobs:
        parsed = tcl.eval(f"set v {knob}")
        values.append(tcl.eval("subst $v"))
    assert tcl.eval("set ::ran") == "0"
    assert values[1] == 'cs "$x"' and values[3] == "[python x]"
    assert values[0].endswith("face_t0.####.png" if path.endswith(".png") else "face_t0.####.exr")
    assert "[" in values[2] and values[2] == Path(plate.file).as_posix()
    assert parsed  # the last knob parsed to a value
    with pytest.raises(Exception, match="control character"):
        nuke_string("/comp/a\nb.exr")


def test_passthrough_needs_no_source(job):
    result = job("run", job.clip.name, "--passthrough", "--frames", "0-3", "-o", "out.mp4", "-q")
    assert result.exit_code == 0, result.stderr
    assert probe(job.dir / "out.mp4").frame_count == 4
    assert_fails(job("run", job.clip.name, "--frames", "0-3", "-o", "out2.mp4", "-q"), 2, "no source")


def test_odd_plate_size_is_kept_or_padded_never_resampled(job):
    """A 639x359 plate (the real clip cropped): FFV1 keeps the size and every pixel; H.264 pads to 640x360 and
    says so in one warning line."""
    import av

    from vidswap.io import read_frames

    with read_frames(probe(job.clip), range(0, 4)) as frames:
        crops = [np.ascontiguousarray(f.image[:359, :639]) for f in frames]
    plate = job.dir / "odd.mkv"
    with av.open(str(plate), "w") as container:
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 639, 359, "bgr0"
        for image in crops:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    job.hashes[plate.name] = sha(plate)
    result = job("run", plate.name, "--passthrough", "-q", "-o", "kept.mkv")
    assert result.exit_code == 0 and "warning" not in result.stderr, result.stderr
    with read_frames(probe(job.dir / "kept.mkv")) as frames:
        assert all(np.array_equal(f.image, c) for f, c in zip(frames, crops, strict=True))
    result = job("run", plate.name, "--passthrough", "-q", "-o", "padded.mp4")
    assert result.exit_code == 0, result.stderr
    warnings = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 1 and "639x359" in warnings[0] and "padded to 640x360" in warnings[0]
    out = probe(job.dir / "padded.mp4")
    assert (out.width, out.height) == (640, 360)
    job.inputs_unchanged()


def test_models_load_from_the_verified_bytes(model, monkeypatch, tmp_path):
    """The analysis models are read once, hashed in memory and built from those bytes: a file that fails its
    sha256 is exit 4, and a good one is never reopened by path after the check."""
    from vidswap.errors import ModelError
    from vidswap.faces.detect import YuNetDetector
    from vidswap.models.registry import load_manifest, model_bytes

    manifest = load_manifest()
    real = Path(model("yunet"))
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    copy = home / "models" / manifest["yunet"].file
    copy.write_bytes(real.read_bytes())
    monkeypatch.setenv("VIDSWAP_HOME", str(home))
    data = model_bytes("yunet", manifest)
    assert data == real.read_bytes()
    copy.write_bytes(b"swapped after the check")  # what a check-then-reopen loader would now load
    detector = YuNetDetector.from_path(data, threads=1)
    image = np.zeros((64, 64, 3), np.uint8)
    assert detector([image]) == [[]]
    with pytest.raises(ModelError, match="corrupt"):
        model_bytes("yunet", manifest)


# ------------------------------------------------------------------------------------ the wider sweep


def _prepare(job: Job) -> None:
    """Hostile inputs beside the clip: an empty clip, a folder named like a clip or an image, a truncated
    portrait, shot files that are a list, a Python tag, an unknown key."""
    (job.dir / "empty.mp4").write_bytes(b"")
    (job.dir / "adir.mp4").mkdir()
    (job.dir / "srcdir.jpg").mkdir()
    (job.dir / "trunc.jpg").write_bytes(job.source.read_bytes()[:5000])
    (job.dir / "list.yaml").write_text("- a\n- b\n")
    (job.dir / "py.yaml").write_text("input: !!python/object/apply:os.system ['touch pwned']\n")
    (job.dir / "fut.yaml").write_text(f"input: {job.clip.name}\nversion: 3\n")
    for name in ("empty.mp4", "trunc.jpg", "list.yaml", "py.yaml", "fut.yaml"):
        job.hashes[name] = sha(job.dir / name)


S = ("-s", "grace_hopper.jpg")
P = ("--passthrough", "-q")
SWEEP = [  # (case, argv, exit code, words of the one-line message)
    ("empty input", ["run", "empty.mp4", *S, *P, "-o", "o.mp4"], 2, ["empty.mp4", "empty"]),
    ("input is a folder", ["probe", "adir.mp4"], 2, ["adir.mp4", "not a file"]),
    ("source is a folder", ["run", "single_face.mp4", "-s", "srcdir.jpg", "-q", "--frames", "0-3", "-o", "o.mp4"],
     2, ["srcdir.jpg", "folder"]),
    ("truncated source", ["run", "single_face.mp4", "-s", "trunc.jpg", "-q", "--frames", "0-3", "-o", "o.mp4"], 2,
     ["trunc.jpg", "not a readable image"]),
    ("source is a video", ["run", "single_face.mp4", "-s", "single_face.mp4", "-q", "-o", "o.mp4"], 2,
     ["single_face.mp4", "not a still image"]),
    ("scale 0", ["run", "single_face.mp4", *S, *P, "--scale", "0", "-o", "o.mp4"], 2, ["scale"]),
    ("every 0", ["run", "single_face.mp4", *S, *P, "--every", "0", "-o", "o.mp4"], 2, ["every"]),
    ("batch size 0", ["run", "single_face.mp4", *S, *P, "--batch-size", "0", "-o", "o.mp4"], 2, ["batch_size"]),
    ("crf 99", ["run", "single_face.mp4", *S, *P, "--crf", "99", "-o", "o.mp4"], 2, ["crf"]),
    ("shot file is a list", ["run", "--config", "list.yaml"], 2, ["list.yaml", "mapping"]),
    ("python tag in YAML", ["run", "--config", "py.yaml"], 2, ["py.yaml", "bad YAML"]),
    ("unknown key", ["run", "--config", "fut.yaml"], 2, ["fut.yaml", "unknown key 'version'"]),
    ("missing shot file", ["run", "--config", "nothere.yaml"], 2, ["nothere.yaml", "not found"]),
    ("output is a bare folder", ["run", "single_face.mp4", *S, *P, "--frames", "0-3", "-o", "out/"], 2,
     ["out", "output type"]),
    ("newline in output name", ["run", "single_face.mp4", *S, *P, "--frames", "0-3", "-o", "new\nline.mp4"], 2,
     ["control character"]),
    ("JPEG sequence output", ["run", "single_face.mp4", *S, *P, "--frames", "0-3", "-o", "o.####.jpg"], 2,
     ["o.####.jpg", "output type"]),
    ("patches into a movie", ["run", "single_face.mp4", *S, *P, "--frames", "0-3", "--patches", "-o", "p.mp4"], 2,
     ["p.mp4", "image sequences"]),
    ("chunk outside the clip", ["render", "single_face.mp4", *S, *P, "--frames", "100-110", "-o", "r.mkv"], 2,
     ["single_face.mp4", "100-110"]),
    ("assemble before analyze", ["assemble", "single_face.mp4", *S, *P, "-o", "r.mkv"], 2,
     ["r.vidswap", "vidswap analyze"]),
]


@pytest.mark.parametrize("case, argv, code, needles", SWEEP, ids=[c[0] for c in SWEEP])
def test_sweep(job, case, argv, code, needles):
    _prepare(job)
    before = job.outputs()
    assert_fails(job(*argv), code, *needles)
    assert job.outputs() == before and job.leftovers() == []
    assert not (job.dir / "pwned").exists()
    job.inputs_unchanged()


def test_shell_metacharacters_and_unicode_names_are_inert(job):
    for name in ("$(touch pwned).mp4", "a;touch pwned;.mov", "ünï code.mov"):
        result = job.run("-o", name, frames="0-3")
        assert result.exit_code == 0, result.stderr
        assert probe(job.dir / name).frame_count == 4
    assert not (job.dir / "pwned").exists()
    job.inputs_unchanged()


def _cli(job: Job, *args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.Popen([sys.executable, "-m", "vidswap.cli", *map(str, args)], cwd=job.dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_runs_to_one_output_and_sigterm(job):
    """Two runs writing the same output at once: both finish, the output is one whole clip. SIGTERM mid-run
    (a farm cancelling): exit 130, nothing under the final name, no temporary."""
    proc = _cli(job, "run", job.clip.name, "--passthrough", "-q", "--codec", "prores_hq", "-o", "term.mov")
    runs = [_cli(job, "run", job.clip.name, "--passthrough", "-q", "--frames", "0-11", "-o", "same.mkv")
            for _ in range(2)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(job.dir.glob(".vidswap-tmp-*term.mov")) and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be cancelled"
    proc.terminate()
    assert proc.wait(timeout=60) == 130, proc.stderr.read()
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()
    assert probe(job.dir / "same.mkv").frame_count == 12
    assert not (job.dir / "term.mov").exists() and job.leftovers() == []
    job.inputs_unchanged()
