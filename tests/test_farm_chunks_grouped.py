"""Farm chunks agree with a single pass bit for bit where the render swaps a track's faces in groups.

At 1080p the default core's crops are large (``crop_size: auto``, 1024 px for this clip's face), so the render
stage cuts, swaps and composites a batch's rows in groups bounded by ``RenderStage.crop_pixels`` (2 faces at
1024 px). The chunks' groups are composed differently from the single pass's (chunks (0) and (1, 2) against the
single pass's (0, 1), (2)): any batched computation whose result depends on the batch's composition shows up here.
The 360p farm test (`test_farm_chunks.py`) never groups (all 8 crops of 256 px fit at once).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import pytest
from farm_diff import frame_hashes, render_differences

VIDSWAP = [sys.executable, "-m", "vidswap.cli"]
FRAMES = 3


def vidswap(*args, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*VIDSWAP, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def upscaled_plate(src: Path, dest: Path, size: tuple[int, int], frames: int) -> Path:
    """The first ``frames`` frames of ``src`` scaled to ``size`` (lanczos), lossless (ffv1)."""
    with av.open(str(src)) as inp, av.open(str(dest), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("ffv1", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = size[0], size[1], "yuv420p"
        for k, frame in enumerate(inp.decode(vin)):
            if k >= frames:
                break
            big = frame.reformat(width=size[0], height=size[1], format="yuv420p", interpolation="LANCZOS")
            big.pts, big.time_base = k, 1 / vin.average_rate
            for packet in vout.encode(big):
                out.mux(packet)
        for packet in vout.encode(None):
            out.mux(packet)
    return dest


@pytest.fixture(scope="module")
def shot(media, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("farm_1080")
    plate = upscaled_plate(media("pexels_clip"), work / "plate_1080.mkv", (1920, 1080), FRAMES)
    for name in ("chunked", "whole"):
        (work / f"{name}.yaml").write_text(
            f"input: {plate}\nsources: [{media('grace_hopper')}]\nframes: 0-{FRAMES - 1}\n"
            f"output: {{path: {name}.mkv}}\n")
    return work


def test_grouped_render_chunks_equal_a_single_pass(shot):
    assert vidswap("analyze", "--config", shot / "chunked.yaml", "-q").returncode == 0
    for chunk in ("0-0", "1-2"):
        proc = vidswap("render", "--config", shot / "chunked.yaml", "--frames", chunk, "-q")
        assert proc.returncode == 0, proc.stderr
    proc = vidswap("assemble", "--config", shot / "chunked.yaml", "-q")
    assert proc.returncode == 0, proc.stderr
    proc = vidswap("run", "--config", shot / "whole.yaml", "-q")
    assert proc.returncode == 0, proc.stderr
    chunked, whole = frame_hashes(shot / "chunked.mkv"), frame_hashes(shot / "whole.mkv")
    assert len(chunked) == len(whole) == FRAMES
    if chunked != whole:  # which of the two is the odd one: a second single pass, from a job folder of its own
        (shot / "again.yaml").write_text((shot / "whole.yaml").read_text().replace("whole.mkv", "again.mkv"))
        again = frame_hashes(shot / "again.mkv") if vidswap("run", "--config", shot / "again.yaml", "-q"
                                                            ).returncode == 0 else None
        same = "the chunks" if again == chunked else "the single pass" if again == whole else "neither"
        pytest.fail(render_differences(shot / "chunked.mkv", shot / "whole.mkv", shot / "chunked.vidswap",
                                       shot / "whole.vidswap") + f"\na second single pass equals {same}")
