"""Media I/O: probing, streaming readers, random access, writers (video / image sequences), audio + timecode.

    info = probe("plate.mov")
    with read_frames(info) as frames, open_sink("out.mov", info, EncodeSettings("prores_hq")) as sink:
        for frame in frames:
            sink.write(frame)
"""

from vidswap.io.frames import Frame, resize_image, timecode_at
from vidswap.io.media import AudioTrack, MediaInfo, probe
from vidswap.io.readers import FrameStream, RandomAccess, read_frames, read_image, read_numbers
from vidswap.io.writers import EncodeSettings, FrameSink, open_sink, output_kind

__all__ = [
    "resize_image",
    "AudioTrack", "EncodeSettings", "Frame", "FrameSink", "FrameStream", "MediaInfo", "RandomAccess",
    "open_sink", "output_kind", "probe", "read_frames", "read_image", "read_numbers", "timecode_at",
]
