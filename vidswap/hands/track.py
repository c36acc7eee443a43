"""Hand tracking through a shot: palm detection finds hands, the landmarker follows each from its previous
landmarks (palm detection alone misses most hands over a face: the back of the hand to the camera, the wrist out of
frame), and a hand is dropped when the landmarker's presence falls. A dropped hand is remembered for a while with a
Kalman filter on its centroid (:mod:`vidswap.hands.motion`) and looked for again where the filter predicts it (and,
for a hand at the frame's edge, in a hand-sized region on that edge, fingers pointing into the picture); found
again, it keeps its id. ``finish`` smooths each hand over time (zero-phase), drops hands seen for too few frames,
and carries each hand across short gaps and a few frames past its end on its motion model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from vidswap.hands.landmarks import HandLandmarker, fingers_up_angle, rois_from_hand_landmarks, rois_from_palms
from vidswap.faces.landmarks import Rois
from vidswap.hands.flow import departure, flow_moved, hold, moved_by
from vidswap.hands.motion import MotionParams, carry_hand, centroid, centroid_filter
from vidswap.hands.palm import PalmDetector
from vidswap.hands.pose import PoseHands
from vidswap.hands.types import HandTracks


@dataclass(frozen=True)
class HandParams:
    """Hand tracking parameters.

    Attributes:
        max_hands: hands followed at once.
        accept: landmarker presence a new hand (from a palm) must reach.
        keep: presence under which a tracked hand is dropped (and re-detected).
        keep_edge: the same for a hand that reaches past the frame's edge (the wrist outside the picture): the
            landmarker is less sure of a hand it sees only in part, and nothing else would find it again.
        redetect_every: with a hand tracked, palm detection runs only every N frames (looking for a second hand;
            12, was 6: 1.2 ms CPU a frame less on the sample clip's hand stretch, benchmarks/RESULTS.md hands-s10).
        idle_detect_every: with none tracked, every N frames (the frames between are covered by ``backfill``).
            4 halves the palm detector's cost on frames without a hand, but the hand found later and backfilled
            started its track differently: on the 16 annotated frames 3.31% of the visible face unswapped (2: 2.88%;
            goal <= 3%; benchmarks/RESULTS.md, hands-s10).
        min_frames: hands seen for fewer frames are dropped (a spurious detection does not last).
        smooth_sigma: zero-phase Gaussian smoothing of each hand's landmarks over time (frames).
        overlap: a palm whose centre falls inside a tracked hand's bounds (scaled by this) is that hand.
        pose_every: with no hand tracked and the palm detector finding none, the pose landmarker (given a face)
            looks for hands near each face every this many frames, and at once when a tracked hand is lost (a hand entering from the frame
            edge, its wrist outside: palm detection misses it throughout; 8, was 4: the pose landmarker, 17-24 ms
            CPU a call, is the dearest model).
        backfill: a newly found hand is tracked backwards through up to this many earlier frames (kept in
            memory), so detection that runs only every few frames does not start the hand late (a hand only the
            pose landmarker finds may start up to ``pose_every - 1 - backfill`` frames late: 1 frame).
        black_border: the landmarker's crop is black beyond the frame's edge (MediaPipe's own padding), not the
            edge replicated. Off by default: on the sample clip's stretch with the bottom 60 rows cut off it gave
            landmarks closer to those of the uncut frame (visible-landmark error 5-14 px, replicated 42-56 px, on
            frames 168-220), but on the uncut clip the annotated hand pixels kept fell from 95.3% to 91.7%
            (tests/test_occlusion_hands.py). Reading a hand whose region leaves the frame with both borders and
            keeping the reading of higher presence: on the cut clip's frames 79-153 the face under the mask away
            from the uncut frame's hand 0.1% (worst frame 1.7%) instead of 1.9% (worst 21%, frames 83-91), but
            94.6% of the uncut clip's annotated hand pixels kept; not done.
        relock_black: a dropped hand is looked for again with the black border.
        relock_frames: a dropped hand is looked for again (every ``idle_detect_every`` frames, from its predicted
            place) for up to this many frames; found, it keeps its id (so ``motion`` bridges the gap).
        edge_scale: a dropped hand that reached the frame's edge is also looked for in a region this many face
            heights wide centred on that edge (fingers pointing into the picture; the hand's region when there is
            no face): a hand raised from below the picture has its palm and wrist outside it, and its last
            landmarks (of the few fingers then visible) size it too small.
        near_edge: a hand "reached the edge" when its landmark bounds, grown by this many hand sizes, leave the
            frame.
        motion: how far ``finish`` carries a hand across gaps and past its end (:class:`MotionParams`).
        hold_face: the analyze pass smooths the face landmarks behind a tracked hand on the face's image motion
            path, their departure from it interpolated between the frames where they are visible, instead of the
            landmark model's guess (:func:`vidswap.faces.occluded.hold_occluded`).
        hold_margin: a face landmark counts as behind a hand up to this fraction of the face's size (RMS radius)
            outside the hand's outline.
        hold_smoothed: the hidden landmarks are placed after the smoothing, on the smoothed track (the visible
            ones are smoothed as without the hold); False: before it, on the raw track (the smoother's noise
            estimate, taken over all points, then falls and the visible points are smoothed less).
        flow_hold: a tracked hand whose new reading departs from its previous landmarks moved by the plate's
            optical flow by more than this many hand sizes (:func:`vidswap.hands.flow.departure`) keeps the
            flow-moved shape that frame (the landmarker flipping a partly seen hand); 0: off. 0.35 took the uncut
            sample clip's annotated hand pixels kept to 93.9% (tests/test_occlusion_hands.py); 0.7 misses the flip.
        flow_hold_frames: at most this many frames in a row are held; then the reading is taken again.
        flow_hold_edge: only a hand whose previous landmarks reach past the frame's edge is held. Off by default:
            on the cut sample clip the flipped readings (83-91) lie inside the frame, and it left the worst frame
            at 21.6% (benchmarks/RESULTS.md, hands2-s8).
        flow_hold_decay: a held frame's presence is the previous frame's times this.
        flow_size: the flow hold's optical flow runs on the hand's region shrunk so its long side is at most this
            many px (0: at the plate's resolution, hands2-s8's behaviour, whose cost grew with the plate: 27 ms/frame
            for the hands stage at 1080p). 224, the landmarker's crop size, leaves the sample clip at 640x360 as it
            was (on the cut clip's frames 79-153 the same masks as 0); 128 / 96 let the held shapes lag there (frames
            with half the reference hand covered 71 -> 68 / 52; benchmarks/RESULTS.md, hands-s9).
        flow_preset: the DIS optical flow's preset (:data:`vidswap.hands.flow.PRESETS`).
        flow_hold_still: a hand is held only while the flow moves its previous landmarks by at most this many hand
            sizes (:func:`vidswap.hands.flow.flow_motion`; 0: always). A flipped reading comes over a hand the plate
            shows nearly at rest (the cut clip's held frames: 0.01-0.09, 0.18 once); the uncut sample clip analysed
            every other frame was held wrongly while the hand rose into the picture and left it (62-68, 226-230:
            0.15-0.69), where the flow lags the blurred hand.
        flow_skip: with no frame held, a reading that departs from the previous landmarks themselves by at most this
            many hand sizes (:func:`vidswap.hands.flow.departure`) is taken without measuring the flow (0: the flow
            always runs): a hand at rest read as before is no flip; a flip turns the reading by more at once.
        landmark_model: the registry name of the hand landmarker the analysis loads. ``hand_landmark_lite`` costs
            about half the full build's CPU time (4.6-5.7 vs 9.5-10.6 ms a call) but on the 16 annotated frames left
            3.17% of the visible face unswapped (full: 2.88%; goal <= 3%) and no matte setting brought both measures
            back (benchmarks/RESULTS.md, hands-s10).
        skip_still: the landmarker skips a frame (at most every other one) while every tracked hand moved by at most
            this many hand sizes (:func:`vidswap.hands.flow.departure`, the mean offset removed, plus the centroid's
            shift) between its last two readings, neither of them held by the flow, and the frame follows the
            previous one directly (frame numbers one apart); the skipped frame's landmarks are the mean of the
            readings either side, or the previous reading where the hand is lost on the next frame, a shot cut
            comes or the shot ends (0: every frame read). Off by default: 0.12 cut the hands' added CPU time on the
            sample clip's occluded stretch (56-231, every frame analysed) by ~4 ms a frame, to under the 15 ms goal,
            and kept the annotated accuracy (every frame analysed: hand pixels kept 95.57% -> 95.55%, visible face
            unswapped 3.56% -> 3.47%; every other frame, the test's analysis, never skips), but raised the stretch's
            landmark jitter over the plate's from 1.147 to 1.214 (``skip_sigma`` 1.0), 1.166 (1.5), 1.180 (2.0);
            flicker 1.158 -> 1.156-1.159 (benchmarks/RESULTS.md, handcost-s11).
        skip_sigma: ``smooth_sigma`` for a hand any of whose frames the landmarker skipped (half as many readings
            in the window; 1.5 the least jitter of 1.0 / 1.5 / 2.0).
    """

    max_hands: int = 2
    accept: float = 0.8
    keep: float = 0.5
    keep_edge: float = 0.2
    redetect_every: int = 12
    idle_detect_every: int = 2
    min_frames: int = 3
    smooth_sigma: float = 1.0
    overlap: float = 1.0
    pose_every: int = 8
    backfill: int = 6
    black_border: bool = False
    relock_black: bool = True
    relock_frames: int = 60
    edge_scale: float = 1.5
    near_edge: float = 0.5
    motion: MotionParams = field(default_factory=MotionParams)
    hold_face: bool = True
    hold_margin: float = 0.05
    hold_smoothed: bool = True
    flow_hold: float = 0.5
    flow_hold_frames: int = 6
    flow_hold_edge: bool = False
    flow_hold_decay: float = 0.9
    flow_size: int = 224
    flow_preset: str = "medium"
    flow_hold_still: float = 0.2
    flow_skip: float = 0.25
    landmark_model: str = "hand_landmark"
    skip_still: float = 0.0
    skip_sigma: float = 1.5


def _bounds(points: np.ndarray) -> np.ndarray:
    """(4,) x0, y0, x1, y1 of (21, 2+) points."""
    return np.concatenate([points[:, :2].min(0), points[:, :2].max(0)])


def _inside(xy: np.ndarray, box: np.ndarray, scale: float) -> bool:
    c, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * scale
    return bool((np.abs(xy - c) <= half).all())


def _past_edge(points: np.ndarray, width: int, height: int) -> bool:
    """Whether (21, 2+) landmarks reach outside the ``width`` x ``height`` frame."""
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    return bool(lo[0] < 0 or lo[1] < 0 or hi[0] > width - 1 or hi[1] > height - 1)


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def smooth_series(points: np.ndarray, sigma: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing of (T, ...) along T with edge renormalisation (the ends are not pulled in)."""
    if sigma <= 0 or len(points) < 2:
        return points.copy()
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    t = len(points)
    flat = points.reshape(t, -1).astype(np.float64)
    out = np.zeros_like(flat)
    norm = np.zeros(t)
    for j, w in zip(range(-r, r + 1), k):
        lo, hi = max(0, -j), min(t, t - j)
        out[lo:hi] += w * flat[lo + j:hi + j]
        norm[lo:hi] += w
    return (out / norm[:, None]).reshape(points.shape).astype(points.dtype)


def edge_roi(points: np.ndarray, width: int, height: int, side: float, grow: float) -> Rois | None:
    """The region where a hand that reached the frame's edge is looked for again: ``side`` px square, centred on
    the edge it crossed (the side its grown bounds leave the frame by most; ``grow`` hand sizes) at its landmark
    centroid, rotated so the fingers point into the picture; None when the grown bounds stay inside.

    Args:
        points: (21, 2+) the hand's landmarks (frame px), where it is predicted to be.
    """
    size = float(np.linalg.norm(points[9, :2] - points[0, :2]))
    lo, hi = points[:, :2].min(0) - grow * size, points[:, :2].max(0) + grow * size
    past = {"left": -lo[0], "top": -lo[1], "right": hi[0] - (width - 1), "bottom": hi[1] - (height - 1)}
    edge = max(past, key=past.get)
    if past[edge] <= 0:
        return None
    c = np.clip(centroid(points), 0, [width - 1, height - 1])
    inward = {"left": (1.0, 0.0), "top": (0.0, 1.0), "right": (-1.0, 0.0), "bottom": (0.0, -1.0)}[edge]
    c = {"left": (0.0, c[1]), "top": (c[0], 0.0), "right": (width - 1.0, c[1]), "bottom": (c[0], height - 1.0)}[edge]
    c = np.asarray(c, np.float64)
    return Rois(c[None], np.array([float(side)]), fingers_up_angle(c[None] - inward, c[None] + inward))


@dataclass
class _Lost:
    """A dropped hand still looked for: its last landmarks, its centroid filter (predicted every frame since),
    frames since it was dropped."""

    points: np.ndarray
    kf: object
    since: int = 0

    def predicted(self) -> np.ndarray:
        """(21, 3) the last landmarks moved to the filter's predicted centroid."""
        out = self.points.astype(np.float64).copy()
        out[:, :2] += np.asarray(self.kf.x[:2]) - centroid(self.points)
        return out


@dataclass
class HandTracker:
    """Streaming hand tracking: ``push`` frames in order, then ``finish``."""

    palms: PalmDetector
    landmarker: HandLandmarker
    params: HandParams = field(default_factory=HandParams)
    pose: PoseHands | None = None
    rows: list[tuple[int, int, np.ndarray, float]] = field(default_factory=list)
    _active: list[tuple[int, np.ndarray]] = field(default_factory=list)
    _next_id: int = 0
    _since_detect: int = 0
    _since_pose: int = 0
    _recent: list[tuple[int, np.ndarray]] = field(default_factory=list)
    _filters: dict = field(default_factory=dict)
    _lost: dict = field(default_factory=dict)
    _pushed: list[int] = field(default_factory=list)
    _cuts: list[int] = field(default_factory=list)
    _prev: np.ndarray | None = None
    _held: dict = field(default_factory=dict)
    _presence: dict = field(default_factory=dict)
    _moved: dict = field(default_factory=dict)
    _pending: tuple[int, list] | None = None
    _skipped: set = field(default_factory=set)

    def reset(self) -> None:
        """Forget the tracked and the dropped hands and the frames kept for backfilling (a shot cut)."""
        self._resolve([])
        self._active = []
        self._moved = {}
        self._recent = []
        self._filters = {}
        self._lost = {}
        self._prev = None
        self._held = {}
        if self._pushed:
            self._cuts.append(len(self._pushed))

    def _landmarks(self, frame: np.ndarray, rois: Rois, black: bool | None = None):
        """The landmarker on ``rois`` of ``frame``, the crop's border black or replicated (default: ``black_border``)."""
        black = self.params.black_border if black is None else black
        return self.landmarker([frame], [0] * len(rois), rois, black)

    def push(self, number: int, frame: np.ndarray, faces: Sequence[np.ndarray] = ()
             ) -> list[tuple[int, np.ndarray, float]]:
        """Track the hands into frame ``number`` (HxWx3 RGB uint8); returns its ``(id, (21, 3) points, presence)``.

        ``faces``: (4,) x0, y0, x1, y1 boxes of the faces in the frame, where the pose landmarker looks for hands.
        """
        p = self.params
        h, w = frame.shape[:2]
        found: list[tuple[int, np.ndarray, float]] = []
        for lost in self._lost.values():
            lost.kf.predict()
            lost.since += 1
        self._lost = {hid: lost for hid, lost in self._lost.items() if lost.since <= p.relock_frames}
        if self._may_skip(number):
            self._pending = (int(number), [(hid, pts, self._presence.get(hid, 1.0)) for hid, pts in self._active])
            self._since_detect += 1
            self._since_pose += 1
            if p.backfill > 0:
                self._recent = (self._recent + [(int(number), frame)])[-p.backfill:]
            self._pushed.append(int(number))
            return list(self._pending[1])
        if self._active:
            rois = rois_from_hand_landmarks(np.stack([pts for _, pts in self._active]))
            lm = self._landmarks(frame, rois)
            found = [(hid, pts, float(pr)) for (hid, _), pts, pr in zip(self._active, lm.points, lm.presence)
                     if pr >= (p.keep_edge if _past_edge(pts, w, h) else p.keep)]
            found = self._flow_hold(frame, found)
            self._resolve(found)
            if len(found) < len(self._active):  # a hand lost: the pose landmarker looks for it at once
                self._since_pose = p.pose_every
            found = self._dedupe(found)
            kept = {hid for hid, _, _ in found}
            for hid, pts in self._active:
                if hid not in kept and hid in self._filters and p.relock_frames > 0:
                    self._lost[hid] = _Lost(pts, self._filters.pop(hid))
        self._since_detect += 1
        self._since_pose += 1
        new: list[tuple[int, np.ndarray, float]] = []
        due = self._since_detect >= (p.idle_detect_every if not found else p.redetect_every)
        if len(found) < p.max_hands and due:
            self._since_detect = 0
            new = self._detect(frame, found)
            if not new and self._lost:
                new = self._relock(frame, found, faces)
        if self.pose is not None and len(faces) and not new and not found and self._since_pose >= p.pose_every:
            self._since_pose = 0
            for box in faces:
                if len(new) < p.max_hands:
                    new += self._confirm(frame, self.pose.hand_rois(frame, np.asarray(box, np.float64)), new)
        new = [self._adopt(hid, pts, pr) for hid, pts, pr in new]
        for hid, pts, _ in new:
            self._backfill(hid, pts)
        found += new
        before = dict(self._active)
        self._moved = {hid: moved_by(before[hid], pts) if hid in before and self._held.get(hid, 0) == 0 else np.inf
                       for hid, pts, _ in found}
        self._active = [(hid, pts) for hid, pts, _ in found]
        for hid, pts, pr in found:
            self.rows.append((int(number), hid, pts, pr))
            if hid in self._filters:
                self._filters[hid].predict()
                self._filters[hid].update(centroid(pts))
            else:
                self._filters[hid] = centroid_filter(centroid(pts), p.motion)
        self._presence = {hid: pr for hid, _, pr in found}
        self._held = {hid: n for hid, n in self._held.items() if hid in self._presence}
        self._prev = frame if p.flow_hold > 0 else None
        if p.backfill > 0:
            self._recent = (self._recent + [(int(number), frame)])[-p.backfill:]
        self._pushed.append(int(number))
        return found

    def _may_skip(self, number: int) -> bool:
        """Whether the landmarker may skip frame ``number`` (``skip_still``): hands tracked, all of them nearly
        still between their last two readings (none held), the previous frame read and directly before this one."""
        p = self.params
        return (p.skip_still > 0 and bool(self._active) and self._pending is None and bool(self._pushed)
                and int(number) == self._pushed[-1] + 1
                and all(self._moved.get(hid, np.inf) <= p.skip_still for hid, _ in self._active))

    def _resolve(self, found: list[tuple[int, np.ndarray, float]]) -> None:
        """The skipped frame's rows from the readings either side (``found``: the next frame's; a hand not in it
        keeps its previous reading); each hand's filter steps through it."""
        if self._pending is None:
            return
        number, before = self._pending
        self._pending = None
        after = {hid: (pts, pr) for hid, pts, pr in found}
        for hid, pts, pr in before:
            if hid in after:
                pts = (0.5 * (pts.astype(np.float64) + after[hid][0].astype(np.float64))).astype(pts.dtype)
                pr = min(pr, after[hid][1])
            self.rows.append((number, hid, pts, float(pr)))
            self._skipped.add(hid)
            if hid in self._filters:
                self._filters[hid].predict()
                self._filters[hid].update(centroid(pts))

    def _flow_hold(self, frame: np.ndarray, found: list[tuple[int, np.ndarray, float]]
                   ) -> list[tuple[int, np.ndarray, float]]:
        """Each tracked hand's reading, or its previous landmarks moved by the plate's flow where the reading departs
        from them (:func:`vidswap.hands.flow.hold`; presence decays by ``flow_hold_decay`` a held frame)."""
        p = self.params
        if p.flow_hold <= 0 or self._prev is None or not found:
            return found
        h, w = frame.shape[:2]
        before = dict(self._active)
        if p.flow_hold_edge and not any(_past_edge(before[hid], w, h) for hid, _, _ in found):
            return found
        out = []
        for hid, pts, pr in found:
            if p.flow_hold_edge and not _past_edge(before[hid], w, h):
                self._held[hid] = 0
                out.append((hid, pts, pr))
                continue
            held = self._held.get(hid, 0)
            if held == 0 and p.flow_skip > 0 and departure(pts, before[hid]) <= p.flow_skip:
                self._held[hid] = 0  # the reading agrees with the previous landmarks: no flow needed
                out.append((hid, pts, pr))
                continue
            moved = flow_moved(self._prev, frame, before[hid], size=p.flow_size, preset=p.flow_preset)
            if hold(pts, moved, p.flow_hold, held, p.flow_hold_frames, before[hid], p.flow_hold_still):
                self._held[hid] = held + 1
                out.append((hid, moved.astype(pts.dtype), p.flow_hold_decay * self._presence.get(hid, pr)))
            else:
                self._held[hid] = 0
                out.append((hid, pts, pr))
        return out

    def _adopt(self, hid: int, pts: np.ndarray, pr: float) -> tuple[int, np.ndarray, float]:
        """A new hand near where a dropped one is predicted (within two hand sizes) is that hand again: its id and
        its filter (updated with the new centroid)."""
        best, gap = None, np.inf
        size = float(np.linalg.norm(pts[9, :2] - pts[0, :2]))
        for lid, lost in self._lost.items():
            d = float(np.linalg.norm(centroid(pts) - np.asarray(lost.kf.x[:2])))
            reach = 2 * max(size, float(np.linalg.norm(lost.points[9, :2] - lost.points[0, :2])))
            if d <= reach and d < gap:
                best, gap = lid, d
        if best is None:
            return hid, pts, pr
        self._filters[best] = self._lost.pop(best).kf
        return best, pts, pr

    def _relock(self, frame: np.ndarray, tracked: list, faces: Sequence[np.ndarray]
                ) -> list[tuple[int, np.ndarray, float]]:
        """Dropped hands looked for again: where each is predicted (its last tracking region moved there), and for
        one at the frame's edge also in a region on that edge (:func:`edge_roi`), sized from the nearest face."""
        p = self.params
        h, w = frame.shape[:2]
        centres, sizes, angles = [], [], []
        for lost in self._lost.values():
            pts = lost.predicted()
            roi = rois_from_hand_landmarks(pts[None])
            rois = [roi]
            side = float(roi.size[0])
            if len(faces):
                boxes = np.asarray(faces, np.float64).reshape(-1, 4)
                mid = (boxes[:, :2] + boxes[:, 2:]) / 2
                near = boxes[int(np.argmin(np.linalg.norm(mid - centroid(pts), axis=1)))]
                side = p.edge_scale * float(near[3] - near[1])
            edge = edge_roi(pts, w, h, side, p.near_edge)
            if edge is not None:
                rois.append(edge)
            for r in rois:
                centres.append(r.center[0])
                sizes.append(r.size[0])
                angles.append(r.angle[0])
        return self._confirm(frame, Rois(np.asarray(centres), np.asarray(sizes), np.asarray(angles)), tracked,
                             p.relock_black or p.black_border)

    def _backfill(self, hid: int, points: np.ndarray) -> None:
        """Track a new hand backwards through the kept frames (newest first) while the landmarker holds it and the
        frame has no hand there already."""
        pts = points
        for number, frame in reversed(self._recent):
            if any(i == hid or _box_iou(_bounds(pts), _bounds(q)) > 0.3 for n, i, q, _ in self.rows if n == number):
                break
            lm = self._landmarks(frame, rois_from_hand_landmarks(pts[None]))
            if lm.presence[0] < self.params.keep:
                break
            pts = lm.points[0]
            self.rows.append((number, hid, pts, float(lm.presence[0])))

    def _dedupe(self, hands: list[tuple[int, np.ndarray, float]]) -> list[tuple[int, np.ndarray, float]]:
        """Two tracks that converged on one hand: keep the more confident."""
        keep: list[tuple[int, np.ndarray, float]] = []
        for h in sorted(hands, key=lambda h: -h[2]):
            if all(_box_iou(_bounds(h[1]), _bounds(k[1])) < 0.5 for k in keep):
                keep.append(h)
        return keep

    def _detect(self, frame: np.ndarray, tracked: list) -> list[tuple[int, np.ndarray, float]]:
        p = self.params
        palms = self.palms(frame)
        if not len(palms):
            return []
        boxes = [_bounds(pts) for _, pts, _ in tracked]
        new = [i for i in range(len(palms)) if not any(_inside(palms.boxes[i, :2], b, p.overlap) for b in boxes)]
        new = new[:p.max_hands - len(tracked)]
        if not new:
            return []
        return self._confirm(frame, rois_from_palms(palms.boxes[new], palms.keypoints[new]), tracked)

    def _confirm(self, frame: np.ndarray, rois: Rois, tracked: list, black: bool | None = None
                 ) -> list[tuple[int, np.ndarray, float]]:
        """New hands from candidate regions: the landmarker's presence must reach ``accept``; a second pass from
        the first pass's landmarks; not a hand already tracked."""
        p = self.params
        boxes = [_bounds(pts) for _, pts, _ in tracked]
        keep = [i for i in range(len(rois)) if not any(_inside(rois.center[i], b, p.overlap) for b in boxes)]
        if not keep:
            return []
        rois = Rois(rois.center[keep], rois.size[keep], rois.angle[keep])
        lm = self._landmarks(frame, rois, black)
        good = [k for k in range(len(rois)) if lm.presence[k] >= p.accept]
        if not good:
            return []
        # a second pass from the first pass's landmarks: the tracking ROI fits the hand better than the palm's
        lm2 = self._landmarks(frame, rois_from_hand_landmarks(lm.points[good]), black)
        out = []
        for j, k in enumerate(good):
            pts, pr = (lm2.points[j], lm2.presence[j]) if lm2.presence[j] >= p.keep else (lm.points[k], lm.presence[k])
            if any(_inside(pts[:, :2].mean(0), b, p.overlap) for b in boxes):
                continue  # a hand already tracked, seen again
            out.append((self._next_id, pts, float(pr)))
            self._next_id += 1
        new_ids = {hid for hid, _, _ in out}
        return [h for h in self._dedupe(tracked + out) if h[0] in new_ids]  # not a tracked hand again

    def finish(self) -> HandTracks:
        """Per hand: dropped if seen for fewer than ``min_frames`` frames, else smoothed over its run of frames and
        carried across short gaps and past its end (:func:`~vidswap.hands.motion.carry_hand`; counted in pushed
        frames, never past the shot's last frame)."""
        self._resolve([])
        if not self.rows:
            return HandTracks.empty()
        index = {n: k for k, n in enumerate(self._pushed)}
        bounds = sorted(set(self._cuts + [len(self._pushed)]))
        out = []
        for hid in sorted({r[1] for r in self.rows}):
            mine = sorted((r for r in self.rows if r[1] == hid), key=lambda r: r[0])  # backfilled rows came later
            if len(mine) < self.params.min_frames:
                continue
            sigma = self.params.skip_sigma if hid in self._skipped else self.params.smooth_sigma
            pts = smooth_series(np.stack([r[2] for r in mine]).astype(np.float32), sigma)
            at = np.array([index[r[0]] for r in mine], np.int64)
            end = next(b for b in bounds if b > at[-1]) - 1  # the hand's shot ends here
            k, q, pr, _ = carry_hand(at, pts, np.array([r[3] for r in mine], np.float32), self.params.motion, end)
            out += [(self._pushed[int(j)], hid, qq, float(pp)) for j, qq, pp in zip(k, q, pr)]
        if not out:
            return HandTracks.empty()
        out.sort(key=lambda r: (r[0], r[1]))
        return HandTracks(np.array([r[0] for r in out], np.int64), np.array([r[1] for r in out], np.int32),
                          np.stack([r[2] for r in out]).astype(np.float32), np.array([r[3] for r in out], np.float32))
