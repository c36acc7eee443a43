"""What the end-to-end media tests share: running the CLI in-process, reading a video's frames back, the one track
of a job folder."""

from __future__ import annotations

from pathlib import Path


def video_frames(path: Path) -> list:
    """Every frame of a video as an HxWx3 uint8 RGB array."""
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def run_cli(args: list) -> object:
    """``vidswap ARGS`` in-process (click's runner); asserts it exits 0 and returns the result."""
    from click.testing import CliRunner

    from vidswap.cli import main

    run = CliRunner().invoke(main, [str(a) for a in args])
    assert run.exit_code == 0, run.output
    return run


def only_track(job: Path):
    """The single track of the job folder's tracks file (asserts there is exactly one)."""
    from vidswap.faces.tracksfile import ShotAnalysis

    analysis = ShotAnalysis.load(Path(job) / "tracks.npz")
    assert len(analysis.tracks) == 1
    return analysis.tracks[0]
