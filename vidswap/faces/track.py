"""Face tracks across frames: assignment and gap bridging.

Per frame the tracker receives the faces found in it (:class:`Observation`: box, optional dense landmarks,
optional identity embedding) and links them to the open tracks by a minimum-cost one-to-one assignment
(``scipy.optimize.linear_sum_assignment``). The cost of pairing a track with an observation is the weighted
mean of the terms both sides can provide:

* ``1 - IoU`` of the track's predicted box (constant velocity from its last two observations) and the box,
* the mean landmark distance (x, y) to the track's predicted landmarks, divided by the face size (square root
  of the box area) and by ``landmark_scale`` (so 1.0 = a distance of ``landmark_scale`` face sizes),
* the identity cosine distance ``(1 - cos) / 2`` between the track's mean embedding and the observation's.

Gating: a pair is impossible when a term passes its gate (IoU below ``min_iou`` without landmarks to vouch for
it, landmark distance above ``max_landmark``, identity distance above ``max_identity``) or when the cost is
above ``max_cost``. Unmatched observations start tracks. A track not seen for more than ``max_gap`` frames is
closed (a later face starts a new track); a track seen again within ``max_gap`` frames gets the missing frames
filled by linear interpolation (boxes and landmarks, flagged in ``interpolated``). A shot cut closes every
track. Cuts come from :func:`vidswap.faces.cuts.detect_cuts` on small thumbnails.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from vidswap.errors import UsageError

_IMPOSSIBLE = 1e6


@dataclass(frozen=True)
class Observation:
    """One face in one frame.

    Attributes:
        box: (4,) ``x0, y0, x1, y1`` frame pixels.
        landmarks: (478, 3) frame pixels, or None.
        embedding: (D,) identity embedding (any norm), or None.
        confidence: detection / landmark confidence in [0, 1].
    """

    box: np.ndarray
    landmarks: np.ndarray | None = None
    embedding: np.ndarray | None = None
    confidence: float = 1.0

    @classmethod
    def from_face_observation(cls, obs) -> "Observation":
        """From a ``vidswap.faces.types.FaceObservation`` (box from the landmarks when present, else the
        detection)."""
        lm = obs.landmarks
        det = obs.detection
        if lm is None and det is None:
            raise UsageError(f"frame {obs.frame}: an observation needs a detection or landmarks")
        box = lm.box if lm is not None else det.box
        conf = lm.confidence if lm is not None else det.score
        return cls(box=np.asarray(box, np.float32), landmarks=None if lm is None else lm.points,
                   embedding=obs.embedding, confidence=float(conf))


@dataclass(frozen=True)
class TrackerParams:
    """Tracker parameters (see the module docstring for the cost and the gates).

    Attributes:
        max_gap: frames a track may be unseen and still be continued (gap filled by interpolation).
        w_iou, w_landmarks, w_identity: weights of the cost terms (normalised over the available terms).
        min_iou: IoU gate, applied when the pair has no landmark term.
        landmark_scale: face sizes that make a landmark cost of 1.
        max_landmark: gate on the landmark distance in face sizes.
        max_identity: gate on the identity distance ``(1 - cos) / 2`` (0.35 ~ cosine similarity 0.3).
        max_cost: gate on the combined cost.
    """

    max_gap: int = 8
    w_iou: float = 1.0
    w_landmarks: float = 1.0
    w_identity: float = 1.0
    min_iou: float = 0.1
    landmark_scale: float = 0.5
    max_landmark: float = 0.6
    max_identity: float = 0.35
    max_cost: float = 0.8


@dataclass
class Track:
    """One face followed through one shot.

    Attributes:
        id: track id, unique within a run, in order of creation (first appearance).
        frames: (T,) int64 consecutive frame numbers.
        boxes: (T, 4) float32 ``x0, y0, x1, y1``.
        landmarks: (T, N, 3) float32 (NaN where unknown), or None when no observation had landmarks.
        confidences: (T,) float32 observation confidence; 0 on interpolated frames.
        interpolated: (T,) bool, True where the frame was filled in across a miss.
        embeddings: (T, D) float32 (NaN rows where none was computed), or None when there were none.
        shot: index of the shot (segment between cuts) the track lives in.
    """

    id: int
    frames: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray | None
    confidences: np.ndarray
    interpolated: np.ndarray
    embeddings: np.ndarray | None
    shot: int = 0

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def mean_area(self) -> float:
        wh = np.clip(self.boxes[:, 2:] - self.boxes[:, :2], 0, None)
        return float((wh[:, 0] * wh[:, 1]).mean())

    @property
    def embedding(self) -> np.ndarray | None:
        """(D,) unit mean of the L2-normalised embeddings, or None."""
        if self.embeddings is None:
            return None
        e = self.embeddings[np.isfinite(self.embeddings).all(1)]
        if len(e) == 0:
            return None
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        m = e.mean(0)
        return m / max(np.linalg.norm(m), 1e-12)


# ---------------------------------------------------------------------------------------------------------------
# pairwise terms (batched)
# ---------------------------------------------------------------------------------------------------------------

def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, 4), (B, 4) ``x0, y0, x1, y1`` -> (A, B) intersection over union."""
    a = np.asarray(a, np.float64)[:, None]
    b = np.asarray(b, np.float64)[None]
    lo = np.maximum(a[..., :2], b[..., :2])
    hi = np.minimum(a[..., 2:], b[..., 2:])
    inter = np.clip(hi - lo, 0, None).prod(-1)
    area = lambda x: np.clip(x[..., 2:] - x[..., :2], 0, None).prod(-1)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def landmark_distance(a: np.ndarray, b: np.ndarray, size: np.ndarray) -> np.ndarray:
    """(A, N, 3), (B, N, 3), (B,) face sizes -> (A, B) mean point distance in x, y divided by the size."""
    d = np.linalg.norm(a[:, None, :, :2].astype(np.float64) - b[None, :, :, :2], axis=-1).mean(-1)
    return d / np.maximum(size[None], 1e-6)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, D), (B, D) -> (A, B) ``(1 - cos) / 2`` in [0, 1]."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (1.0 - a @ b.T) / 2.0


def min_cost_pairs(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows and columns of ``cost (T, N)`` paired at the least total cost, as
    ``scipy.optimize.linear_sum_assignment`` gives them.

    A single row or column (one open track or one observation: every frame of a one-face shot) pairs with its
    cheapest partner, the first of equal ones, which is the solver's answer for that shape, without importing
    ``scipy.optimize`` (~0.6 s a process). Anything else, and costs that are not finite (the solver's errors), go
    to the solver.
    """
    if 1 in cost.shape and np.isfinite(cost).all():
        best = np.array([int(np.argmin(cost.reshape(-1)))])
        zero = np.zeros(1, dtype=best.dtype)
        return (zero, best) if cost.shape[0] == 1 else (best, zero)
    from scipy.optimize import linear_sum_assignment  # here: importing scipy.optimize costs ~0.6 s

    return linear_sum_assignment(cost)


# ---------------------------------------------------------------------------------------------------------------
# tracker
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class _Open:
    """A track being built: its frames (None = missed, to be interpolated) and a little motion/identity state."""

    id: int
    shot: int
    frames: list[int] = field(default_factory=list)
    obs: list[Observation | None] = field(default_factory=list)
    seen: list[tuple[int, Observation]] = field(default_factory=list)  # the last two real observations
    embeddings: deque = field(default_factory=lambda: deque(maxlen=10))  # recent unit embeddings

    def add(self, frame: int, o: Observation) -> None:
        if self.frames:
            for f in range(self.frames[-1] + 1, frame):
                self.frames.append(f)
                self.obs.append(None)
        self.frames.append(frame)
        self.obs.append(o)
        self.seen = (self.seen + [(frame, o)])[-2:]
        if o.embedding is not None:
            e = np.asarray(o.embedding, np.float64)
            self.embeddings.append(e / max(np.linalg.norm(e), 1e-12))

    @property
    def last_frame(self) -> int:
        return self.seen[-1][0]

    def predict(self, frame: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Box (4,) and landmarks (N, 3) or None extrapolated to ``frame`` at constant velocity (the velocity
        of the last two observations; landmarks without their own velocity move with the box centre)."""
        f1, o1 = self.seen[-1]
        dt = frame - f1
        box = np.asarray(o1.box, np.float64)
        lm = None if o1.landmarks is None else np.asarray(o1.landmarks, np.float64)
        if len(self.seen) < 2:
            return box, lm
        f0, o0 = self.seen[0]
        step = dt / max(f1 - f0, 1)
        vb = box - np.asarray(o0.box, np.float64)
        box = box + vb * step
        if lm is not None:
            if o0.landmarks is not None and np.shape(o0.landmarks) == lm.shape:
                lm = lm + (lm - np.asarray(o0.landmarks, np.float64)) * step
            else:
                lm = lm + np.concatenate([(vb[:2] + vb[2:]) / 2 * step, [0.0]])
        return box, lm

    def mean_embedding(self) -> np.ndarray | None:
        return np.mean(self.embeddings, axis=0) if self.embeddings else None


class Tracker:
    """Online multi-face tracker. Feed frames in order with :meth:`update`; mark cuts with :meth:`cut` (or pass
    ``cut=True``); collect finished tracks with :meth:`pop_finished` (streaming) or all with :meth:`finish`.
    """

    def __init__(self, params: TrackerParams | None = None):
        self.params = params or TrackerParams()
        self._open: list[_Open] = []
        self._done: list[Track] = []
        self._next_id = 0
        self._shot = 0
        self._frame: int | None = None

    # -- assignment --------------------------------------------------------------------------------------------
    def cost_matrix(self, frame: int, observations: Sequence[Observation]) -> np.ndarray:
        """(open tracks, observations) combined cost; gated pairs are ``1e6``."""
        p = self.params
        n_t, n_o = len(self._open), len(observations)
        if n_t == 0 or n_o == 0:
            return np.zeros((n_t, n_o))
        preds = [t.predict(frame) for t in self._open]
        boxes_t = np.stack([b for b, _ in preds])
        boxes_o = np.stack([np.asarray(o.box, np.float64) for o in observations])
        size_o = np.sqrt(np.clip(boxes_o[:, 2:] - boxes_o[:, :2], 1e-6, None).prod(-1))
        iou = box_iou(boxes_t, boxes_o)
        num = p.w_iou * (1.0 - iou)
        den = np.full((n_t, n_o), p.w_iou)
        gate = np.zeros((n_t, n_o), dtype=bool)
        has_lm = np.zeros((n_t, n_o), dtype=bool)
        for i, (_, lm_t) in enumerate(preds):
            if lm_t is None:
                continue
            for j, o in enumerate(observations):
                if o.landmarks is None or len(o.landmarks) != len(lm_t):
                    continue
                d = float(landmark_distance(lm_t[None], np.asarray(o.landmarks)[None], size_o[j:j + 1])[0, 0])
                has_lm[i, j] = True
                gate[i, j] |= d > p.max_landmark
                num[i, j] += p.w_landmarks * min(d / p.landmark_scale, 1.0)
                den[i, j] += p.w_landmarks
        gate |= ~has_lm & (iou < p.min_iou)
        for i, t in enumerate(self._open):
            e_t = t.mean_embedding()
            if e_t is None:
                continue
            for j, o in enumerate(observations):
                if o.embedding is None:
                    continue
                d = float(cosine_distance(e_t[None], np.asarray(o.embedding)[None])[0, 0])
                gate[i, j] |= d > p.max_identity
                num[i, j] += p.w_identity * d
                den[i, j] += p.w_identity
        cost = num / den
        gate |= cost > p.max_cost
        return np.where(gate, _IMPOSSIBLE, cost)

    def update(self, frame: int, observations: Sequence[Observation], cut: bool = False) -> list[int]:
        """Link one frame's observations; returns the track id given to each observation."""
        if self._frame is not None and frame <= self._frame:
            raise UsageError(f"tracker: frames must increase, got {frame} after {self._frame}")
        if cut:
            self.cut()
        self._expire(frame)
        self._frame = frame
        cost = self.cost_matrix(frame, observations)
        ids = [-1] * len(observations)
        if cost.size:
            rows, cols = min_cost_pairs(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] < _IMPOSSIBLE:
                    self._open[r].add(frame, observations[c])
                    ids[c] = self._open[r].id
        for j, o in enumerate(observations):
            if ids[j] < 0:
                t = _Open(id=self._next_id, shot=self._shot)
                self._next_id += 1
                t.add(frame, o)
                self._open.append(t)
                ids[j] = t.id
        return ids

    def cut(self) -> None:
        """A shot cut before the next frame: close every open track."""
        for t in self._open:
            self._done.append(_finalise(t))
        self._open = []
        self._shot += 1

    def _expire(self, frame: int) -> None:
        keep = []
        for t in self._open:
            if frame - t.last_frame - 1 > self.params.max_gap:
                self._done.append(_finalise(t))
            else:
                keep.append(t)
        self._open = keep

    def pop_finished(self) -> list[Track]:
        """Tracks closed so far (by a cut or a miss longer than ``max_gap``), removed from the tracker."""
        done, self._done = self._done, []
        return done

    def finish(self) -> list[Track]:
        """Close every track; all tracks not yet popped, ordered by id."""
        for t in self._open:
            self._done.append(_finalise(t))
        self._open = []
        return sorted(self.pop_finished(), key=lambda tr: tr.id)


def _interp_fill(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(T, ...) with rows known[t] -> unknown rows between known ones filled by exact linear interpolation."""
    out = values.copy()
    idx = np.flatnonzero(known)
    for a, b in zip(idx[:-1], idx[1:]):
        if b - a > 1:
            w = (np.arange(a + 1, b) - a) / (b - a)
            w = w.reshape((-1,) + (1,) * (values.ndim - 1))
            out[a + 1:b] = (1 - w) * values[a] + w * values[b]
    return out


def _finalise(t: _Open) -> Track:
    real = np.array([o is not None for o in t.obs])
    obs = [o for o in t.obs if o is not None]
    n = len(t.frames)
    boxes = np.zeros((n, 4), np.float64)
    boxes[real] = np.stack([np.asarray(o.box, np.float64) for o in obs])
    boxes = _interp_fill(boxes, real)
    lm_shape = next((np.shape(o.landmarks) for o in obs if o.landmarks is not None), None)
    landmarks = None
    if lm_shape is not None:
        landmarks = np.full((n,) + tuple(lm_shape), np.nan)
        has = np.zeros(n, dtype=bool)
        for k, o in enumerate(t.obs):
            if o is not None and o.landmarks is not None:
                landmarks[k] = o.landmarks
                has[k] = True
        # bridge only across misses: between two observations that both had landmarks
        fill = _interp_fill(landmarks, has)
        landmarks = np.where(~real[:, None, None], fill, landmarks).astype(np.float32)
    emb_dim = next((len(o.embedding) for o in obs if o.embedding is not None), None)
    embeddings = None
    if emb_dim is not None:
        embeddings = np.full((n, emb_dim), np.nan, np.float32)
        for k, o in enumerate(t.obs):
            if o is not None and o.embedding is not None:
                embeddings[k] = o.embedding
    conf = np.array([0.0 if o is None else o.confidence for o in t.obs], np.float32)
    return Track(id=t.id, frames=np.asarray(t.frames, np.int64), boxes=boxes.astype(np.float32),
                 landmarks=landmarks, confidences=conf, interpolated=~real, embeddings=embeddings, shot=t.shot)


def track_faces(observations: Sequence[Sequence[Observation]], cuts: Iterable[int] = (),
                params: TrackerParams | None = None, frames: Sequence[int] | None = None) -> list[Track]:
    """Track a whole shot offline.

    Args:
        observations: per frame, the faces found in it.
        cuts: frame numbers that start a new shot (from :func:`detect_cuts`).
        params: tracker parameters.
        frames: the frame numbers of ``observations`` (default 0, 1, 2, ...).

    Returns:
        Tracks ordered by id.
    """
    frames = list(range(len(observations))) if frames is None else list(frames)
    cut_set = set(int(c) for c in cuts)
    tr = Tracker(params)
    for f, obs in zip(frames, observations):
        tr.update(f, obs, cut=f in cut_set and f != frames[0])
    return tr.finish()
