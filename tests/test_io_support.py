"""Helpers for the vidswap.io tests: build small derived clips from the real sample media with FFmpeg.

(No tests here; the other test_io_* modules import these.)  Clips are made once per session under pytest's
temporary directory with the imageio-ffmpeg binary.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np


def ffmpeg(*args: str | Path) -> None:
    """Run the bundled ffmpeg binary quietly; raise with its stderr on failure."""
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y"]
    done = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"ffmpeg failed: {done.stderr.strip()}")


def make_tone_clip(src: Path, out: Path, frames: int = 48) -> Path:
    """The first ``frames`` frames of a real clip (H.264, CFR, B-frames) with two generated AAC tracks
    (440 Hz English 48 kHz, 1 kHz French 44.1 kHz with a handler name) and timecode 01:00:00:00."""
    ffmpeg("-i", src, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
           "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=44100:duration=4",
           "-map", "0:v", "-map", "1:a", "-map", "2:a", "-frames:v", frames, "-shortest",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "16", "-g", "12",
           "-c:a", "aac", "-b:a", "96k", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
           "-metadata:s:a:1", "handler_name=Commentary", "-timecode", "01:00:00:00", out)
    return out


def make_prores10(src: Path, out: Path, frames: int = 12) -> Path:
    """A genuinely 10-bit ProRes 422 HQ clip: the real clip area-downscaled in 16-bit RGB, so its 10-bit
    code values use all low bits (an 8-bit source alone would only give multiples of 4)."""
    ffmpeg("-i", src, "-frames:v", frames, "-an", "-vf", "format=gbrp16le,scale=320:180:flags=area,format=yuv422p10le",
           "-c:v", "prores_ks", "-profile:v", "3", "-timecode", "01:00:00:00", out)
    return out


def make_rotated(src: Path, out: Path, degrees: int, frames: int = 5) -> Path:
    """A stream copy of the first frames with a display-matrix rotation of ``degrees`` (counter-clockwise)."""
    ffmpeg("-display_rotation", degrees, "-i", src, "-frames:v", frames, "-an", "-c", "copy", out)
    return out


def ffmpeg_rgb(path: Path, frames: int, width: int, height: int) -> np.ndarray:
    """The first ``frames`` frames as FFmpeg's own rgb24 conversion (autorotated): (N, H, W, 3) uint8."""
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", str(path), "-frames:v",
                          str(frames), "-pix_fmt", "rgb24", "-f", "rawvideo", "-"], capture_output=True, check=True)
    return np.frombuffer(raw.stdout, np.uint8).reshape(frames, height, width, 3)


def video_pts(path: Path) -> list[int]:
    """Presentation timestamps of every decoded frame, in order (PyAV, independent of vidswap)."""
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


def audio_packets(path: Path, track: int = 0) -> list[tuple[int, int, bytes]]:
    """(pts, duration, payload bytes) of every packet of audio track ``track``."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[track]
        return [(p.pts, p.duration, bytes(p)) for p in container.demux(stream) if p.size]


def yuv_planes(path: Path) -> list[list[np.ndarray]]:
    """Raw 16-bit planes (Y, U, V) of every frame of a >8-bit clip, no colour conversion."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            out.append([np.frombuffer(p, np.uint16).reshape(p.height, p.line_size // 2)[:, : p.width].astype(int)
                        for p in frame.planes[:3]])
    return out
