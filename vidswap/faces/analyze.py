"""The ``analyze`` pass: per frame detect -> dense landmarks -> identity; across frames cuts -> tracks -> smoothing
-> pose decomposition. Produces a ``ShotAnalysis`` saved as a tracks file (npz arrays + JSON header) that later
passes and farm tasks reuse while its inputs are unchanged.

Per-frame policy (speed with robustness): the detector runs on every frame (batched); each detection gets the
mesh (batched over the batch's frames). Where the detector misses a face that the previous frame had (a hand
over the mouth, motion blur), the previous frame's landmarks seed the mesh (MediaPipe's tracking mode); the
face is kept while the mesh's face-presence confidence stays above ``min_confidence``. Identity embeddings are
computed for faces that are new and every ``identity_every`` frames.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Hashable, Iterable, Literal, Mapping, Protocol, Sequence

import cv2
import numpy as np
import torch

from vidswap.faces.detect import YuNetDetector
from vidswap.faces.identity import IdentityEncoder
from vidswap.faces.landmarks import FaceMesh
from vidswap.faces.pose import decompose, neutral_shape
from vidswap.faces.motion import NAN_AFFINE, MotionParams, clear_of, face_motion, motion_path
from vidswap.faces.occluded import hold_occluded, occluded_noise_gain, occluded_points
from vidswap.faces.smooth import OneEuroParams, RtsParams, landmark_groups, smooth_landmarks
from vidswap.faces.cuts import THUMB_WIDTH, CutDetector
from vidswap.faces.track import Observation, TrackerParams, box_iou, track_faces
from vidswap.faces.types import Detection, FaceLandmarks
from vidswap.hands.backtrack import backtrack_hands
from vidswap.hands.landmarks import HandLandmarker
from vidswap.hands.palm import PalmDetector
from vidswap.hands.pose import PoseHands
from vidswap.hands.track import HandParams, HandTracker
from vidswap.hands.types import HandTracks
from vidswap.lazy_exports import import_in_background
from vidswap.faces.align import as_rgb8, face_height
from vidswap.composite.motion_blur import track_velocity
from vidswap.faces.tracksfile import TRACKS_VERSION, ShotAnalysis, TrackAnalysis, input_fingerprint  # noqa: F401
from vidswap.models.registry import load_manifest, model_bytes
from vidswap.sections import AnalysisConfig, SmoothingConfig  # noqa: F401 - declared there (torch-free)
from vidswap.faces.analysis_key import (ANALYSIS_MODELS, HAND_MODELS, SAMPLING_REVISION,  # noqa: F401 - re-exported
                                        analysis_key, analysis_model_hashes, analysis_model_names)

MIN_CONFIDENCE = 0.5


@dataclass
class AnalysisModels:
    """The analysis networks, created once per run."""

    detector: YuNetDetector
    mesh: FaceMesh
    identity: IdentityEncoder
    model_hashes: dict[str, str]
    hands: tuple[PalmDetector, HandLandmarker, PoseHands]

    @classmethod
    def load(cls, cfg: AnalysisConfig, threads: int | None = None, hand_threads: int | None = 1) -> "AnalysisModels":
        """Open the default models from the cache (ModelError, exit 4, names the fetch command if missing).

        ``threads``: the face models' intra-op threads (default ``default_threads()``). ``hand_threads``: the hand
        models' (palm detector, hand and pose landmarkers; None: as ``threads``). 1 by default: each runs once a frame
        at most on one small crop, where a second LiteRT thread mostly waits; one thread costs 10-16% less CPU time a
        call with outputs bit for bit the same (benchmarks/RESULTS.md, handcost-s12). The hand models are always
        loaded (30-50 ms): source photos are analysed with them (:mod:`vidswap.source_cache`); the plate's hands
        are tracked only with ``cfg.hands``."""
        manifest = load_manifest()
        names = analysis_model_names(True)
        paths = {n: model_bytes(n, manifest) for n in names}  # built from the bytes that were verified
        detector = YuNetDetector.from_path(paths["yunet"], threads=threads, input_size=cfg.detector_size,
                                           score_threshold=cfg.score_threshold, min_face=float(cfg.min_face),
                                           angles=tuple(cfg.angles))
        mesh = FaceMesh.from_paths(paths["face_mesh"], paths["iris"], num_threads=threads)
        identity = IdentityEncoder.from_path(paths["sface"], threads=threads)
        ht = threads if hand_threads is None else hand_threads
        hands = (PalmDetector.from_path(paths["palm_detection"], ht),
                 HandLandmarker.from_path(paths[HandParams().landmark_model], ht),
                 PoseHands.from_path(paths["pose_landmark"], ht))
        return cls(detector, mesh, identity, analysis_model_hashes(manifest, cfg.hands), hands)


@dataclass
class FaceRecord:
    """One face in one image (sources, references)."""

    landmarks: FaceLandmarks
    embedding: np.ndarray  # (D,) unit length
    detection: Detection


def analyze_image(image: np.ndarray, models: AnalysisModels) -> list[FaceRecord]:
    """All faces of a still image, largest first. ``image``: HxWx3 RGB."""
    dets = models.detector([image])[0]
    if not dets:
        return []
    lms = models.mesh([image], [dets])[0]
    emb = models.identity.embed([image], np.stack([lm.kps5 for lm in lms]), [0] * len(lms))
    faces = [FaceRecord(lm, e, d) for lm, e, d in zip(lms, emb, dets) if lm.confidence >= MIN_CONFIDENCE]
    return sorted(faces, key=lambda f: -f.detection.area)


# --------------------------------------------------------------------------------------------------------------
# per-frame streaming analysis


class FaceSampler(Protocol):
    """Collects per-face samples while the frames stream and builds a per-track model from them at the end (the
    track appearance models, :class:`vidswap.appearance.analysis.AppearanceCollector`)."""

    def push(self, images: Sequence[np.ndarray], points: Sequence[np.ndarray],
             keys: Sequence[Sequence[Hashable]]) -> None:
        """One batch of consecutive frames: images, per frame (N_i, 478, 3) face landmarks and N_i face keys."""

    def models(self, owners: Mapping[int, Mapping[int, Hashable]]) -> Mapping[int, Mapping[str, np.ndarray]]:
        """Track id -> arrays, from track id -> {analysis position -> the track's face key there}."""


@dataclass
class FrameAnalyzer:
    """Streaming per-frame analysis: ``push`` batches of frames in order, then ``finish``."""

    models: AnalysisModels
    cfg: AnalysisConfig
    # ([images], [(N_i, 478, 3)]) -> [(N_i, D)]: per-face statistics of a batch of frames (plate_skin_stats)
    stats_fn: Callable[[list, list], list] | None = None
    sampler: FaceSampler | None = None  # per-face samples -> per-track models (appearance)
    numbers: list[int] = field(default_factory=list)
    observations: list[list[Observation]] = field(default_factory=list)
    face_stats: list[np.ndarray] = field(default_factory=list)
    # per frame, per observation: the face's image motion from the previous analysed frame ((2, 3), NaN: unknown)
    motions: list[list[np.ndarray]] = field(default_factory=list)
    motion_params: MotionParams = field(default_factory=MotionParams)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    _cut: CutDetector | None = None
    _prev: list[FaceLandmarks] = field(default_factory=list)
    _since_identity: int = 0
    _hands: HandTracker | None = None
    _prev_rgb8: np.ndarray | None = None  # the previous analysed frame (its face regions go to luma for the motion)
    _hand_outlines: tuple[list, list] = ([], [])
    # a batch's colour statistics and appearance samples run on one worker thread while the next batch is tracked
    # (the same results, in the same order); False: in ``push`` itself
    background: bool = True
    _worker: ThreadPoolExecutor | None = None
    _pending: Future | None = None
    _imports: threading.Thread | None = None

    def __post_init__(self) -> None:
        # the smoother's (and the hand tracker's) Kalman filters: filterpy imports scipy.stats (~0.5 s), done while
        # the frames are analysed; joined before anything else is imported (finish) -- see close()
        self._imports = import_in_background(("filterpy.kalman", "filterpy.common"), "vidswap-analysis-imports")
        self._cut = CutDetector(threshold=self.cfg.cut_threshold)
        rigid = landmark_groups()[0]
        self._rigid = rigid[rigid < 468]  # the points that move with the head (no lips, eyes, brows, irises)
        if self.cfg.hands:
            palms, landmarker, pose = self.models.hands
            self._hands = HandTracker(palms, landmarker, HandParams(), pose)

    def backtrack_hands(self, read: Callable[[list[int]], Iterable[tuple[int, np.ndarray]]], run: int = 8) -> int:
        """After the last frame: hands found late followed back through the frames before them, which ``read``
        returns again (:func:`vidswap.hands.backtrack.backtrack_hands`); the frames read again (0 without hands).
        Timed as the ``hands`` stage."""
        if self._hands is None:
            return 0
        t0 = time.perf_counter()
        read_again = backtrack_hands(self._hands, read, run)
        self._time("hands", t0)
        return read_again

    @property
    def cuts(self) -> list[int]:
        """Frame numbers that start a new shot (camera flashes withdrawn)."""
        return list(self._cut.cuts)

    def _time(self, name: str, start: float) -> None:
        self.stage_seconds[name] = self.stage_seconds.get(name, 0.0) + time.perf_counter() - start

    def push(self, numbers: Sequence[int], images: Sequence[np.ndarray]) -> None:
        """Analyse a batch of consecutive frames (HxWx3 RGB uint8 / uint16 / float)."""

        t0 = time.perf_counter()
        # the detector's input (the frames reduced to its size), and the cut thumbnails taken from it: the two
        # reductions of the whole frame were a 4K analysis's largest plate-sized work
        small = [self.models.detector.network_frame(im) for im in images]
        thumbs = [_thumbnail(s if THUMB_WIDTH <= s.shape[1] < im.shape[1] else im) for s, im in zip(small, images)]
        cut_flags = [self._cut.push(th, n) for th, n in zip(thumbs, numbers)]
        self._time("cuts", t0)
        t0 = time.perf_counter()
        dets = self.models.detector(list(images), resized=small)
        self._time("detect", t0)
        t0 = time.perf_counter()
        lms = self.models.mesh(list(images), dets)
        self._time("landmarks", t0)
        colour_due = []  # per frame of the batch: its colour statistics are computed (``colour_every``)
        for i, (number, image) in enumerate(zip(numbers, images)):
            if cut_flags[i] and self.numbers:  # provisional (a flash is withdrawn a frame later): only resets
                self._prev = []
                self._prev_rgb8 = None
                self._hand_outlines = ([], [])
                if self._hands is not None:
                    self._hands.reset()
            t0 = time.perf_counter()
            faces = [lm for lm in lms[i] if lm.confidence >= MIN_CONFIDENCE]
            faces = _dedupe(faces)
            missed = [p for p in self._prev if not any(_overlap(p, f) > 0.3 for f in faces)]
            if missed:  # tracking mode for faces the detector lost
                found = self.models.mesh([image], [missed])[0]
                faces += [lm for lm in found if lm.confidence >= MIN_CONFIDENCE
                          and not any(_overlap(lm, f) > 0.3 for f in faces)]
            self._time("landmarks", t0)
            if self._hands is not None:
                t0 = time.perf_counter()
                boxes = [np.concatenate([f.points[:, :2].min(0), f.points[:, :2].max(0)]) for f in faces]
                found_hands = self._hands.push(int(number), as_rgb8(image), boxes)
                # the hands' outlines in the previous frame and this one (the face's motion is measured clear of them)
                self._hand_outlines = (self._hand_outlines[1], [p[:, :2] for _, p, _ in found_hands])
                self._time("hands", t0)
            t0 = time.perf_counter()
            new = [f for f in faces if not any(_overlap(f, p) > 0.3 for p in self._prev)]
            colour_due.append(len(self.numbers) % self.cfg.colour_every == 0 or bool(new))
            due = self._since_identity % max(1, self.cfg.identity_every) == 0
            embed = faces if due else new
            embeddings: dict[int, np.ndarray] = {}
            if embed:
                emb = self.models.identity.embed([image], np.stack([f.kps5 for f in embed]), [0] * len(embed))
                embeddings = {id(f): e for f, e in zip(embed, emb)}
            self._since_identity += 1
            self._time("identity", t0)
            self.observations.append([Observation(box=f.box, landmarks=f.points, embedding=embeddings.get(id(f)),
                                                  confidence=f.confidence) for f in faces])
            t0 = time.perf_counter()
            rgb8 = as_rgb8(image)
            self.motions.append([self._motion(rgb8, f) for f in faces])
            self._time("motion", t0)
            self.numbers.append(int(number))
            self._prev = faces
            self._prev_rgb8 = rgb8
        batch_obs = self.observations[-len(images):]
        points = [np.stack([o.landmarks for o in obs]) if obs else np.zeros((0, 478, 3), np.float32)
                  for obs in batch_obs]
        self._wait_faces()  # the previous batch's colour statistics and samples, in order
        work = partial(self._face_work, list(images), points, [list(range(len(obs))) for obs in batch_obs],
                       colour_due)
        if self.background and (self.stats_fn is not None or self.sampler is not None):
            if self._worker is None:
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="vidswap-analysis")
            self._pending = self._worker.submit(work)  # overlaps the next batch's detection, tracking and hands
        else:
            work()

    def _face_work(self, images: list, points: list, owners: list, colour_due: list[bool]) -> None:
        """A batch's per-face colour statistics and appearance samples: they depend only on the frames and the faces'
        landmarks, so they run while the next batch is tracked (:attr:`background`). ``colour_due``: per frame,
        whether its statistics are computed (``colour_every``); the others' faces get NaN rows (interpolated)."""
        if self.stats_fn is not None:  # one batched pass over every face of the batch's due frames
            t0 = time.perf_counter()
            due = [k for k, d in enumerate(colour_due) if d and len(points[k])]
            computed = dict(zip(due, self.stats_fn([images[k] for k in due], [points[k] for k in due]))) if due else {}
            d = next((v.shape[1] for v in computed.values()), 6)
            self.face_stats.extend(computed.get(k, np.full((len(p), d), np.nan, np.float32))
                                   for k, p in enumerate(points))
            self._time("colour", t0)
        if self.sampler is not None:
            t0 = time.perf_counter()
            self.sampler.push(images, points, owners)
            self._time("appearance", t0)

    def _wait_faces(self) -> None:
        """Wait for the batch handed to the worker (its error is raised here)."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            t0 = time.perf_counter()
            pending.result()
            self._time("face_wait", t0)

    def close(self) -> None:
        """Wait for the worker's batch and stop the worker (``finish`` does it; call it when analysis stops early)."""
        try:
            if self._imports is not None:
                self._imports.join()  # no two threads import at once after this point
            self._wait_faces()
        finally:
            if self._worker is not None:
                self._worker.shutdown(wait=True)
                self._worker = None

    def finish(self, fps: float, smoothing: SmoothingConfig, header: dict) -> "ShotAnalysis":
        """Link into tracks, smooth, decompose pose; the whole-shot result."""

        self.close()
        t0 = time.perf_counter()
        tracks = track_faces(self.observations, self.cuts, TrackerParams(max_gap=self.cfg.max_gap),
                             frames=self.numbers)
        self._time("track", t0)
        tracks = [t for t in tracks if t.landmarks is not None]
        models: Mapping[int, Mapping[str, np.ndarray]] = {}
        if self.sampler is not None:
            t0 = time.perf_counter()
            models = self.sampler.models({int(t.id): dict(self._observed(t)) for t in tracks},
                                         {int(t.id): self._track_velocities(t) for t in tracks})
            self._time("appearance", t0)
        hands = self._hands.finish() if self._hands is not None else None
        t0 = time.perf_counter()
        out = [_finish_track(t, fps, smoothing, self._track_stats(t), dict(models.get(int(t.id), {})),
                             self._track_motions(t) if smoothing.follow_image_motion else None,
                             self._track_occluded(t, hands),
                             self._hands is None or self._hands.params.hold_smoothed)
               for t in tracks]
        self._time("smooth", t0)
        header = dict(header, cuts=self.cuts, frames=self.numbers, faces_per_frame=[len(o) for o in self.observations])
        return ShotAnalysis(header=header, tracks=out) if hands is None else \
            ShotAnalysis(header=header, tracks=out, hands=hands)


    def _motion(self, rgb8: np.ndarray, face: FaceLandmarks) -> np.ndarray:
        """The face's image motion from the previous analysed frame (the face there it overlaps most), measured at
        its rigid points clear of the hands in either frame (too few of them: NaN), or NaN."""
        if self._prev_rgb8 is None or self._prev_rgb8.shape != rgb8.shape:
            return NAN_AFFINE.copy()
        prev = max(self._prev, key=lambda p: _overlap(p, face), default=None)
        if prev is None or _overlap(prev, face) <= 0.3:
            return NAN_AFFINE.copy()
        p0, p1 = prev.points[self._rigid, :2], face.points[self._rigid, :2]
        hands = self._hand_outlines[0] + self._hand_outlines[1]
        if hands:
            radius = float(np.sqrt(((p1 - p1.mean(0)) ** 2).sum(1).mean()))
            outlines = [cv2.convexHull(h.astype(np.float32)) for h in hands]
            margin = self.motion_params.hand_margin * radius
            keep = clear_of(p0, outlines, margin) & clear_of(p1, outlines, margin)
            if keep.sum() < self.motion_params.min_points:
                return NAN_AFFINE.copy()
            p0, p1 = p0[keep], p1[keep]
        return face_motion(self._prev_rgb8, rgb8, p0, p1, self.motion_params)

    def _track_occluded(self, track, hands: HandTracks | None) -> np.ndarray | None:
        """(T, N) which of the track's raw landmarks lie behind a tracked hand (``HandParams.hold_face``), or None
        (no hands, or the hold off)."""
        params = self._hands.params if self._hands is not None else None
        if hands is None or not len(hands) or params is None or not params.hold_face:
            return None
        return occluded_points(track.landmarks, [hands.at(int(n)) for n in track.frames], params.hold_margin)

    def _track_motions(self, track) -> np.ndarray:
        """(T, 2, 3) the track's image motion from each row's frame to the next: rows observed in consecutive
        analysed frames carry their face's measured motion, the others NaN."""
        observed = dict(self._observed(track))
        where = {n: i for i, n in enumerate(self.numbers)}
        out = np.full((len(track.frames), 2, 3), np.nan)
        for j in range(1, len(track.frames)):
            i, before = where.get(int(track.frames[j])), where.get(int(track.frames[j - 1]))
            if i is None or before != i - 1 or i not in observed or before not in observed:
                continue
            out[j] = self.motions[i][observed[i]]
        return out

    def _track_velocities(self, track) -> dict[int, np.ndarray]:
        """Analysis position -> the face's image velocity there in face heights a frame (the landmarks' central
        difference over adjacent frames, :func:`~vidswap.composite.motion_blur.track_velocity`) and its face height
        in pixels, (3,), for every frame of the track with known landmarks."""
        points = track.landmarks
        known = np.isfinite(points).all((1, 2))
        if not known.any():
            return {}
        rows = np.flatnonzero(known)
        velocity = track_velocity(track.frames[known], points[known][..., :2], np.arange(len(rows)))
        heights = face_height(torch.from_numpy(np.ascontiguousarray(points[known], np.float32))).numpy()
        where = {n: i for i, n in enumerate(self.numbers)}
        return {where[int(n)]: np.append(v.mean(0) / max(float(h), 1.0), h).astype(np.float32)
                for n, v, h in zip(track.frames[known], velocity, heights) if int(n) in where}

    def _observed(self, track) -> list[tuple[int, int]]:
        """``(analysis position, observation index)`` of every frame where the track was observed (not
        interpolated), found by its box among that frame's observations."""
        where = {n: i for i, n in enumerate(self.numbers)}
        out = []
        for n, box, interp in zip(track.frames, track.boxes, track.interpolated):
            i = where.get(int(n))
            if i is None or interp:
                continue
            for k, obs in enumerate(self.observations[i]):
                if np.array_equal(obs.box, box):
                    out.append((i, k))
        return out

    def _track_stats(self, track) -> np.ndarray:
        """(T, D) the per-face statistics along a track, interpolated over misses and smoothed (zero-phase)."""
        if self.stats_fn is None:
            return np.zeros((0, 6), np.float32)
        observed = dict(self._observed(track))
        where = {n: i for i, n in enumerate(self.numbers)}
        rows = []
        for n in track.frames:
            i = where.get(int(n))
            k = observed.get(i) if i is not None else None
            rows.append(None if k is None else self.face_stats[i][k])
        d = next((len(r) for r in rows if r is not None), 6)
        stats = np.stack([r if r is not None else np.full(d, np.nan, np.float32) for r in rows]).astype(np.float64)
        return smooth_track_stats(stats).astype(np.float32)


def smooth_track_stats(stats: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """(T, D) per-frame statistics with NaN rows -> NaNs interpolated (nearest at the ends), then a zero-phase
    Gaussian over time (sigma in frames). All-NaN input comes back empty (0, D)."""
    from scipy.ndimage import gaussian_filter1d

    good = np.isfinite(stats).all(1)
    if not good.any():
        return np.zeros((0, stats.shape[1]))
    t = np.arange(len(stats))
    filled = np.stack([np.interp(t, t[good], stats[good, k]) for k in range(stats.shape[1])], 1)
    return gaussian_filter1d(filled, sigma, axis=0, mode="nearest") if len(stats) > 1 else filled


def _thumbnail(image: np.ndarray) -> np.ndarray:
    import cv2

    small = cv2.resize(image, (64, max(1, round(64 * image.shape[0] / image.shape[1]))), interpolation=cv2.INTER_AREA)
    if small.dtype != np.uint8:
        small = (small / (65535.0 if small.dtype == np.uint16 else 1.0) * 255).clip(0, 255).astype(np.uint8)
    return small


def _overlap(a: FaceLandmarks, b: FaceLandmarks) -> float:
    return float(box_iou(a.box[None], b.box[None])[0, 0])


def _dedupe(faces: list[FaceLandmarks]) -> list[FaceLandmarks]:
    kept: list[FaceLandmarks] = []
    for f in sorted(faces, key=lambda f: -f.confidence):
        if not any(_overlap(f, k) > 0.5 for k in kept):
            kept.append(f)
    return kept


# --------------------------------------------------------------------------------------------------------------
# tracks


def smoothing_params(cfg: SmoothingConfig) -> OneEuroParams | RtsParams | None:
    if cfg.method == "one_euro":
        return OneEuroParams(cfg.one_euro_min_cutoff, cfg.one_euro_beta, cfg.one_euro_d_cutoff)
    if cfg.method == "rts":
        return RtsParams(process_noise=cfg.rts_process_noise,
                         measurement_noise=cfg.rts_measurement_noise or None, gate=cfg.rts_gate)
    return None


def _finish_track(track, fps: float, cfg: SmoothingConfig, colour: np.ndarray,
                  appearance: dict[str, np.ndarray] | None = None, motion: np.ndarray | None = None,
                  occluded: np.ndarray | None = None, hold_smoothed: bool = True) -> TrackAnalysis:
    """``occluded``: (T, N) the raw landmarks behind a hand; after smoothing they are placed on the face's image
    motion path, their smoothed departure from it interpolated from the frames where they are visible
    (:func:`vidswap.faces.occluded.hold_occluded`), instead of following the landmark model's guess. The visible
    points are smoothed as before (``hold_smoothed`` False: held before the smoothing, on the raw track). On
    those frames the whole face's measurement noise is raised by ``cfg.occluded_noise`` x the hidden fraction
    (:func:`vidswap.faces.occluded.occluded_noise_gain`): the visible points' reading shakes with the hand too.
    ``raw`` keeps the measurements."""
    raw = track.landmarks.astype(np.float32)
    if cfg.method == "none" or len(raw) < 3:
        smoothed = raw.copy()
    else:
        hold = occluded is not None and occluded.any()
        measured = hold_occluded(raw, _path_of(raw, motion), occluded) if hold and not hold_smoothed else raw
        gain = occluded_noise_gain(occluded, cfg.occluded_noise) if hold else None
        smoothed = smooth_landmarks(measured, fps, method=cfg.method, params=smoothing_params(cfg), motion=motion,
                                    motion_gate=cfg.motion_gate, noise_gain=gain)
        if hold and hold_smoothed:
            smoothed = hold_occluded(smoothed, _path_of(raw, motion), occluded)
        smoothed = smoothed.astype(np.float32)
    pose = decompose(torch.from_numpy(smoothed))
    neutral = neutral_shape(pose.x_c_obs).numpy().astype(np.float32)
    emb = track.embedding
    return TrackAnalysis(id=int(track.id), shot=int(track.shot), frames=track.frames.astype(np.int64),
                         boxes=track.boxes.astype(np.float32), confidences=track.confidences.astype(np.float32),
                         interpolated=track.interpolated.astype(bool), raw=raw, smoothed=smoothed,
                         s=pose.s.numpy().astype(np.float32), R=pose.R.numpy().astype(np.float32),
                         t=pose.t.numpy().astype(np.float32), neutral=neutral,
                         embedding=np.zeros(0, np.float32) if emb is None else emb.astype(np.float32),
                         colour=colour.astype(np.float32), appearance=appearance or {})


def _path_of(raw: np.ndarray, motion: np.ndarray | None) -> np.ndarray:
    """(T, N, 2) the path the track's points take from its first measured frame following ``motion`` (T, 2, 3);
    without a motion, points at rest (zeros: a hidden point's position itself is interpolated)."""
    path = np.zeros(raw.shape[:2] + (2,))
    finite = np.flatnonzero(np.isfinite(raw).all(axis=(1, 2)))
    if motion is None or not len(finite):
        return path
    path[finite[0]:] = motion_path(raw[finite[0], :, :2], motion[finite[0]:])
    return path
