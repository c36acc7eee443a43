"""Carrying audio, timecode and stream tags from the input into the output container.

Audio is stream-copied with PyAV (FFmpeg's libavformat, in-process): every packet of every audio track that
overlaps the rendered time span is demuxed from the input and muxed into the output *unchanged* (same bytes,
same durations, flags kept), interleaved with the video as it is encoded -- one pass, no temp files, no
re-encode.  Timestamps move by the same shift as the video (none for a full render).  The start timecode is
written as the video stream's ``timecode`` tag, from which the mov/mp4 muxer makes a tmcd track and the
Matroska muxer a TIMECODE tag.

Trim rule (per track): a packet is copied when ``[pts, pts+duration)`` overlaps ``[start, end)`` of the
rendered frames; a decoder-priming packet (flagged discard) directly before the first one is copied too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from vidswap.errors import InputError, MediaError
from vidswap.io import avutil

STREAM_TAGS = ("language", "handler_name", "title")
_SEEK_MARGIN_S = 2  # seek this far before the span: muxers interleave audio loosely around video


def copy_stream_tags(source, target, keys: tuple[str, ...] = STREAM_TAGS) -> None:
    """Copy the identifying tags (language, handler, title) of one stream to another."""
    for key in keys:
        value = source.metadata.get(key)
        if value:
            target.metadata[key] = value


def check_container_codecs(supported: set[str], out_path: Path, codecs: dict[str, str]) -> None:
    """InputError when a container that holds the ``supported`` codecs cannot hold one of ``codecs``
    ({what: codec name})."""
    for what, codec in codecs.items():
        if codec not in supported:
            others = [ext for ext in (".mov", ".mkv", ".mp4") if ext != out_path.suffix.lower()
                      and codec in container_codecs(ext)]
            hint = f"write {' or '.join(others)} instead" if others else "pick another codec"
            raise InputError(f"{out_path.suffix} files cannot hold {what} ({codec}); {hint}")


def container_codecs(ext: str) -> set[str]:
    """Codecs a container format can hold (opening an output container writes nothing until a header)."""
    container = av.open(f"probe{ext}", "w")
    try:
        return set(container.supported_codecs)
    finally:
        container.close()


@dataclass
class _Track:
    source: av.stream.Stream
    target: av.stream.Stream
    shift: int = 0  # ticks of source.time_base subtracted from pts/dts
    started: bool = False
    held: av.Packet | None = None  # a priming packet waiting to see whether the next one is copied
    copied: int = 0


@dataclass
class AudioCopier:
    """Stream-copies the input's audio tracks into ``output`` for a time span of the input timeline.

    Use: ``open_copier`` (before the output header) -> ``begin(start, shift)`` -> ``copy_until(t)`` as video
    is written -> ``finish(end)``; ``close()`` always.
    """

    source: Path
    container: av.container.InputContainer
    tracks: list[_Track] = field(default_factory=list)
    _packets: object = None
    _pending: av.Packet | None = None
    _start: Fraction = Fraction(0)
    _end: Fraction | None = None

    @property
    def packets_copied(self) -> int:
        return sum(t.copied for t in self.tracks)

    def begin(self, start: Fraction, shift: Fraction) -> None:
        """Copy from ``start`` seconds; move timestamps earlier by ``shift`` seconds."""
        self._start = start
        for track in self.tracks:
            track.shift = round(shift / track.source.time_base)
        if not self.tracks:
            return
        if start > _SEEK_MARGIN_S:
            self.container.seek(int((start - _SEEK_MARGIN_S) * av.time_base), backward=True)
        self._packets = self.container.demux([t.source for t in self.tracks])

    def copy_until(self, until: Fraction) -> None:
        """Mux every wanted packet that starts before ``until`` seconds (input timeline)."""
        if self._packets is None:
            return
        while True:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                self._packets = None
                return
            if packet.size == 0:
                continue
            begin = _seconds(packet)
            if begin is not None and begin >= until:
                self._pending = packet
                return
            self._consider(packet, begin)

    def finish(self, end: Fraction) -> None:
        """Copy the rest of the span (up to ``end`` seconds) and stop reading."""
        self._end = end
        self.copy_until(end)
        self._packets = None

    def _consider(self, packet: av.Packet, begin: Fraction | None) -> None:
        track = next(t for t in self.tracks if t.source.index == packet.stream_index)
        if begin is None:  # no timestamps at all: keep order, copy while inside the span
            if self._end is None or track.started:
                self._mux(track, packet)
            return
        end = begin + Fraction(packet.duration or 0) * packet.time_base
        if end <= self._start and not (packet.duration == 0 and begin == self._start):
            track.held = packet if packet.is_discard else None
            return
        if self._end is not None and begin >= self._end:
            return
        if not track.started and track.held is not None:
            self._mux(track, track.held)
        track.held = None
        self._mux(track, packet)

    def _mux(self, track: _Track, packet: av.Packet) -> None:
        track.started = True
        if packet.pts is not None:
            packet.pts -= track.shift
        if packet.dts is not None:
            packet.dts -= track.shift
        packet.stream = track.target
        try:
            track.target.container.mux_one(packet)
        except av.FFmpegError as exc:
            raise MediaError(f"muxing audio from {self.source} failed ({exc}); check disk space and retry") from None
        track.copied += 1

    def close(self) -> None:
        self._packets = None
        self._pending = None
        self.container.close()


def _seconds(packet: av.Packet) -> Fraction | None:
    ts = packet.pts if packet.pts is not None else packet.dts
    return None if ts is None else Fraction(ts) * packet.time_base


def open_source(source: Path) -> av.container.InputContainer:
    """Reopen the input for its audio packets and stream tags."""
    try:
        return av.open(avutil.local_url(source), metadata_errors="replace")
    except av.FFmpegError as exc:
        raise InputError(f"cannot reopen {source} to copy its audio ({exc}); check the file") from None


def open_copier(source: Path, container: av.container.InputContainer,
                output: av.container.OutputContainer) -> AudioCopier:
    """Add one stream-copy output stream per audio track of ``container`` (tags and disposition kept).

    Only audio is demuxed from then on (other streams are discarded, so their payloads are skipped).
    Call before the output header is written; the copier owns ``container`` and closes it.
    """
    copier = AudioCopier(source, container)
    for stream in container.streams:
        if stream.type != "audio":
            stream.discard = av.stream.Discard.all  # mov/mkv then skip video payloads instead of reading them
            continue
        target = output.add_stream_from_template(stream)
        copy_stream_tags(stream, target)
        target.disposition = stream.disposition
        copier.tracks.append(_Track(stream, target))
    return copier

