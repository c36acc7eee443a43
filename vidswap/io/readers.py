"""Reading frames: streaming (PyAV / image files, decoded ahead in a background thread through a bounded
queue), random access to single frames (decord), and still images.

Memory is bounded by ``prefetch``: the producer blocks when the queue is full, so a 2-hour plate uses the
same memory as a 2-second one.  Leaving the ``read_frames`` context (normally, by ``break`` or by an
exception) stops and joins the thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidswap.errors import TRANSIENT_ERRNOS, InputError, MediaError
from vidswap.io import avutil
from vidswap.io.frames import Frame, frame_runs, resize_image, timecode_at
from vidswap.io.media import MediaInfo, probe
from vidswap.io.sequences import IMAGE_EXTS, SequencePattern, read_image_file

Emit = Callable[[Frame], bool]  # hands one frame to the consumer; False once the consumer has gone
_POLL_S = 0.05


@dataclass(frozen=True)
class _End:
    """Queue marker: the producer finished (error set when it failed)."""

    error: BaseException | None = None


class FrameStream(Iterator[Frame]):
    """Iterator over frames decoded by a background thread into a queue of at most ``prefetch`` frames.

    high_water: the largest number of frames ever waiting in the queue (never above ``prefetch``).
    """

    def __init__(self, produce: Callable[[Emit], None], prefetch: int, name: str):
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        self.prefetch = prefetch
        self.high_water = 0
        self._queue: queue.Queue = queue.Queue(maxsize=prefetch)
        self._stop = threading.Event()
        self._done = False
        self.thread = threading.Thread(target=self._run, args=(produce,), name=name, daemon=True)
        self.thread.start()

    @property
    def queued(self) -> int:
        """Frames decoded and waiting (at most ``prefetch``)."""
        return self._queue.qsize()

    def _emit(self, frame: Frame) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(frame, timeout=_POLL_S)
            except queue.Full:
                continue
            self.high_water = max(self.high_water, self._queue.qsize())
            return True
        return False

    def _run(self, produce: Callable[[Emit], None]) -> None:
        end = _End()
        try:
            produce(self._emit)
        except BaseException as exc:  # handed to the consumer thread, re-raised there
            end = _End(exc)
        while not self._stop.is_set():
            try:
                self._queue.put(end, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def __next__(self) -> Frame:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, _End):
            self._done = True
            self.thread.join()
            if item.error is not None:
                raise item.error
            raise StopIteration
        return item

    def close(self, timeout: float = 10.0) -> None:
        """Stop the producer, drop queued frames and join the thread."""
        self._stop.set()
        self._done = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join(timeout)


@contextmanager
def read_frames(info: MediaInfo, numbers: range | None = None, prefetch: int = 8,
                rgb: bool = True, shrink_to: tuple[int, int] | None = None,
                keep_picture: bool = False) -> Iterator[Iterator[Frame]]:
    """Stream the frames ``numbers`` (default: all; any positive step) of a probed input, in order.

    Yields a :class:`FrameStream`; each item is a :class:`Frame` with an HxWx3 RGB image (uint8, uint16 for
    >8-bit sources, float32 for EXR).  Video seeks to the first wanted frame; pts are the stream's own.
    ``rgb=False`` (video only): no RGB conversion; each frame carries its decoded ``picture`` instead.
    ``shrink_to`` (video only): (width, height) the RGB conversion shrinks the pictures to when they are larger
    (:class:`~vidswap.io.avutil.RgbConverter`); other inputs keep their size.
    ``keep_picture`` (video, RGB at the picture's own size): each frame also carries its decoded ``picture``, with
    ``changed`` (0, 0, 0, 0), so the writer can re-encode the picture with only what the render changed converted
    back (:mod:`vidswap.io.region_write`).
    """
    numbers = _check_numbers(info, numbers)
    if info.kind == "video":
        produce = _video_producer(info, numbers, rgb, shrink_to, keep_picture and rgb and shrink_to is None)
    else:
        produce = _file_producer(info, numbers)
    stream = FrameStream(produce, prefetch, name=f"vidswap-read-{Path(info.path).name}")
    try:
        yield stream
    finally:
        stream.close()


@contextmanager
def read_numbers(info: MediaInfo, numbers: list[int], prefetch: int = 8,
                 size: tuple[int, int] | None = None, rgb: bool = True,
                 keep_picture: bool = False) -> Iterator[Iterator[Frame]]:
    """Stream the frames ``numbers`` (ascending, gaps allowed: ``0-3,10-12``) of a probed input, in order: one
    :func:`read_frames` stream per evenly spaced run, so the frames in a gap are never read. ``size``: (width,
    height) to resize every frame to (dtype kept; video shrunk in its RGB conversion, ``read_frames``'
    ``shrink_to``), or None for the input's own size; ``rgb``, ``keep_picture``: see :func:`read_frames` (no
    picture is kept when ``size`` is given)."""
    runs = frame_runs(list(numbers))

    def chained() -> Iterator[Frame]:
        for run in runs:
            with read_frames(info, run, prefetch, rgb, shrink_to=size, keep_picture=keep_picture) as frames:
                for frame in frames:
                    yield frame if size is None else replace(frame, image=resize_image(frame.image, size))

    stream = chained()
    try:
        yield stream
    finally:
        stream.close()


def _check_numbers(info: MediaInfo, numbers: range | None) -> range:
    available = info.frame_numbers
    if numbers is None:
        return available
    if numbers.step <= 0:
        raise InputError(f"frame range {numbers} must count upwards; give first-last with a positive step")
    if len(numbers) == 0:
        raise InputError(f"frame range {numbers.start}-{numbers.stop - 1} of {info.path} is empty; "
                         f"the input has frames {available.start}-{available.stop - 1}")
    if numbers[0] < available.start or numbers[-1] >= available.stop:
        raise InputError(f"frames {numbers[0]}-{numbers[-1]} are outside {info.path} "
                         f"(frames {available.start}-{available.stop - 1}); pick a range inside it")
    return numbers


# ---------------------------------------------------------------------------------------------- producers


def _file_producer(info: MediaInfo, numbers: range) -> Callable[[Emit], None]:
    """Image sequence / still: read each wanted file."""
    if info.kind == "image":
        paths = {0: Path(info.path)}
    else:
        pattern = SequencePattern.parse(info.path)
        paths = {n: pattern.path(n) for n in numbers}

    def produce(emit: Emit) -> None:
        for n in numbers:
            try:
                image = read_image_file(paths[n])
            except InputError as exc:
                if paths[n].is_file():  # there but undecodable: a corrupt frame, permanent
                    raise InputError(f"frame {n} is corrupt: {exc}") from None
                raise MediaError(f"reading frame {n} failed: {exc}") from None  # vanished: a share, retry
            if not emit(Frame(n, None, timecode_at(info.timecode, info.fps, n - info.first_frame), image)):
                return

    return produce


@dataclass(frozen=True)
class _Numbering:
    """Maps a decoded frame's pts to its frame number.

    CFR uses arithmetic on the pts; VFR uses the sorted pts of every packet (read once, no decoding).
    """

    start_pts: int
    ticks_per_frame: Fraction | None  # CFR
    index: np.ndarray | None  # VFR: sorted pts

    def number(self, pts: int) -> int | None:
        if self.index is not None:
            i = int(np.searchsorted(self.index, pts))
            return i if i < len(self.index) and self.index[i] == pts else None
        return round((pts - self.start_pts) / self.ticks_per_frame)

    def pts_of(self, number: int) -> int:
        if self.index is not None:
            return int(self.index[number])
        return self.start_pts + round(number * self.ticks_per_frame)


def _numbering(info: MediaInfo, container, stream) -> _Numbering:
    """Frame numbering for seeking: read every packet pts (VFR) or derive from the rate (CFR)."""
    if info.vfr:
        pts = [p.pts for p in container.demux(stream) if p.size and not p.is_discard and p.pts is not None]
        container.seek(0, backward=True)
        return _Numbering(0, None, np.sort(np.asarray(pts, dtype=np.int64)))
    ticks = Fraction(1) / (info.fps * info.time_base)
    start = stream.start_time if stream.start_time is not None else 0
    return _Numbering(int(start), ticks, None)


def _video_producer(info: MediaInfo, numbers: range, rgb: bool = True,
                    shrink_to: tuple[int, int] | None = None, keep: bool = False) -> Callable[[Emit], None]:
    def produce(emit: Emit) -> None:
        opts = {"rgb": rgb, "shrink_to": shrink_to, "keep_picture": keep}
        try:
            _decode_video(info, numbers, emit, seek=numbers.start > info.first_frame, **opts)
        except _SeekMissed:
            _decode_video(info, numbers, emit, seek=False, **opts)
        except (av.FFmpegError, OSError) as exc:
            if getattr(exc, "errno", None) in TRANSIENT_ERRNOS:  # the disk or the share, not the file
                raise MediaError(f"reading {info.path} failed ({exc}); check the disk or share and retry") from None
            raise InputError(f"{info.path} is corrupt: decoding failed ({exc}); re-export or re-copy it") from None

    return produce


class _SeekMissed(Exception):
    """Seeking landed after the wanted frame (bad index); decode from the start instead."""


def _decode_video(info: MediaInfo, numbers: range, emit: Emit, seek: bool, rgb: bool = True,
                  shrink_to: tuple[int, int] | None = None, keep_picture: bool = False) -> None:
    to_rgb = avutil.RgbConverter(info.bit_depth > 8, info.colorspace)
    last = numbers[-1]
    with av.open(avutil.local_url(info.path), metadata_errors="replace") as container:
        stream = avutil.video_stream(container)
        stream.thread_type = "AUTO"
        numbering = None
        if seek:
            numbering = _numbering(info, container, stream)
            container.seek(numbering.pts_of(numbers.start), stream=stream, backward=True)
        counter = 0
        checked = not seek
        for frame in container.decode(stream):
            n = numbering.number(frame.pts) if (numbering and frame.pts is not None) else None
            n = counter if n is None else n
            counter = n + 1
            if not checked:
                if n > numbers.start:
                    raise _SeekMissed
                checked = True
            if n > last:
                return
            if n < numbers.start or (n - numbers.start) % numbers.step:
                continue
            tc = timecode_at(info.timecode, info.fps, n)
            if rgb and keep_picture:
                record = Frame(n, frame.pts, tc, to_rgb(frame), frame.duration or None, picture=frame,
                               changed=(0, 0, 0, 0))
            elif rgb:
                record = Frame(n, frame.pts, tc, to_rgb(frame, shrink_to), frame.duration or None)
            else:
                record = Frame(n, frame.pts, tc, None, frame.duration or None, picture=frame)
            if not emit(record):
                return


# ------------------------------------------------------------------------------------------- random access


class RandomAccess:
    """Fetch single frames by number: decord for video (uint8 RGB, upright), direct reads for images.

    ``RandomAccess(path).get(number) -> HxWx3`` and ``len()``.  Frame numbers are those of ``probe``.
    """

    def __init__(self, path: str | Path):
        self.info = probe(path)
        self._reader = None
        if self.info.kind == "video":
            import decord

            try:
                self._reader = decord.VideoReader(avutil.local_url(self.info.path), ctx=decord.cpu(0))
            except Exception as exc:  # decord raises its own DECORDError / RuntimeError
                raise InputError(f"{self.info.path} cannot be opened for random access ({exc}); "
                                 "check the file or re-export it") from None
            self._count = min(len(self._reader), self.info.frame_count)
        else:
            self._count = self.info.frame_count
            self._pattern = SequencePattern.parse(self.info.path) if self.info.kind == "sequence" else None

    def __len__(self) -> int:
        return self._count

    def get(self, number: int) -> np.ndarray:
        """HxWx3 RGB of frame ``number`` (InputError when outside the input)."""
        first = self.info.first_frame
        if not first <= number < first + self._count:
            raise InputError(f"frame {number} is outside {self.info.path} (frames {first}-{first + self._count - 1})")
        if self._reader is None:
            path = Path(self.info.path) if self._pattern is None else self._pattern.path(number)
            return read_image_file(path)
        try:
            image = self._reader[number - first].asnumpy()
        except Exception as exc:
            raise MediaError(f"reading frame {number} of {self.info.path} failed ({exc}); retry") from None
        if image.shape[:2] != (self.info.height, self.info.width):  # a decord that ignores rotation
            image = np.ascontiguousarray(np.rot90(image, self.info.rotation // 90))
        return image


#: Still photos a source portrait may be: the image-sequence formats and the web's WebP and BMP (read, never written).
PHOTO_EXTS = IMAGE_EXTS + (".webp", ".bmp")


def read_image(path: str | Path) -> np.ndarray:
    """A still image (e.g. a source portrait) as HxWx3 RGB uint8/uint16 (float32 for EXR).

    InputError when the file is missing, not an image, or unreadable.
    """
    path = Path(path)
    if path.suffix.lower() not in PHOTO_EXTS:
        raise InputError(f"{path} is not a still image ({', '.join(PHOTO_EXTS)}); give a photo of the face")
    return read_image_file(path)
