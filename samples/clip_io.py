"""What the clip generators share (samples/noisy_plate.py, samples/split_light_plate.py): a video's first frames,
each changed by a function, written as an H.264 clip."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np


def map_clip(source: Path | str, out: Path | str, frames: int, change: Callable[[np.ndarray, int], np.ndarray],
             crf: int = 10) -> Path:
    """Write ``out``: the first ``frames`` frames of the video ``source`` (cropped to even sides), frame ``i`` as
    ``change(image, i)`` (HxWx3 uint8 RGB in and out), libx264 at ``crf`` (preset fast, yuv420p), at the source's
    frame rate (25 when it has none)."""
    import av

    out = Path(out)
    with av.open(str(source)) as ic, av.open(str(out), "w") as oc:
        vs = ic.streams.video[0]
        stream = oc.add_stream("libx264", rate=vs.average_rate or 25)
        stream.width, stream.height, stream.pix_fmt = vs.width - vs.width % 2, vs.height - vs.height % 2, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "fast"}
        for i, frame in enumerate(ic.decode(video=0)):
            if i >= frames:
                break
            image = change(frame.to_ndarray(format="rgb24")[:stream.height, :stream.width], i)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                oc.mux(packet)
        for packet in stream.encode():
            oc.mux(packet)
    return out
