"""Hand tracking through a shot: palm detection finds hands (then the pose landmarker near each face, then the hand
landmarker over the face itself: :func:`face_search_rois`), the landmarker follows each from its previous
landmarks (palm detection alone misses most hands over a face: the back of the hand to the camera, the wrist out of
frame), and a hand is dropped when the landmarker's presence falls. A dropped hand is remembered for a while with a
Kalman filter on its centroid (:mod:`vidswap.hands.motion`) and looked for again where the filter predicts it (and,
for a hand at the frame's edge, in a hand-sized region on that edge, fingers pointing into the picture); found
again, it keeps its id. ``finish`` smooths each hand over time (zero-phase), drops hands seen for too few frames,
and carries each hand across short gaps and a few frames past its end on its motion model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from vidswap.hands.landmarks import HandLandmarker, rois_from_hand_landmarks, rois_from_palms
from vidswap.faces.landmarks import Rois
from vidswap.hands.regions import bounds as _bounds, box_iou as _box_iou, edge_roi, face_search_rois
from vidswap.hands.regions import past_edge as _past_edge, read_over_face
from vidswap.hands.flow import departure, flow_moved, hold, moved_by
from vidswap.hands.motion import carry_hand, centroid, centroid_filter, smooth_series
from vidswap.hands.palm import PalmDetector
from vidswap.hands.params import HandParams
from vidswap.hands.pose import PoseHands
from vidswap.hands.types import HandTracks


def _inside(xy: np.ndarray, box: np.ndarray, scale: float) -> bool:
    c, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * scale
    return bool((np.abs(xy - c) <= half).all())


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
    _since_face: int = 0
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
    _late: dict = field(default_factory=dict)
    _searched: set = field(default_factory=set)
    _watch: int = 0
    _first_reading: float = 0.0
    _faces_at: dict = field(default_factory=dict)

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
        self._watch = 0
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
            self._since_face += 1
            if p.backfill > 0:
                self._recent = (self._recent + [(int(number), frame)])[-p.backfill:]
            self._pushed.append(int(number))
            self._keep_faces(number, faces)
            return list(self._pending[1])
        if self._active:
            rois = rois_from_hand_landmarks(np.stack([pts for _, pts in self._active]))
            lm = self._landmarks(frame, rois)
            found = [(hid, pts, float(pr)) for (hid, _), pts, pr in zip(self._active, lm.points, lm.presence)
                     if pr >= (p.keep_edge if _past_edge(pts, w, h) else p.keep)]
            if self._searched and len(faces):  # hands the search over the face found: read there again
                held = {hid for hid, _, _ in found}
                found += self._search_again(frame, faces, [(hid, pts) for hid, pts in self._active
                                                           if hid in self._searched and hid not in held])
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
        self._since_face += 1
        new: list[tuple[int, np.ndarray, float]] = []
        start = p.look_at_start and self._shot_start(len(self._pushed)) == len(self._pushed)  # a shot opens
        due = self._since_detect >= (p.idle_detect_every if not found else p.redetect_every)
        if len(found) < p.max_hands and (due or start):  # at a shot's start at once; the cadence kept
            self._since_detect = 0 if due else self._since_detect
            new = self._detect(frame, found)
            if not new and self._lost:
                new = self._relock(frame, found, faces)
        pose_due, search_due = self._since_pose >= p.pose_every, self._since_face >= p.face_search_every
        searching = False
        if self.pose is not None and len(faces) and not new and not found and (pose_due or start):
            self._since_pose = 0 if pose_due else self._since_pose  # the schedule kept
            for box in faces:
                if len(new) < p.max_hands:
                    new += self._confirm(frame, self.pose.hand_rois(frame, np.asarray(box, np.float64)), new)
            # a hand over the face neither detector sees (not while a dropped hand is looked for again: relocking
            # keeps its id and its own regions)
            searching = p.face_search and not new and not self._lost and (search_due or start)
        watching = self._watch > 0 and len(faces) and not new and not found and not self._lost
        if searching or watching:  # the search, or a search's weak reading looked at again on the next frames
            self._since_face = 0 if watching or search_due else self._since_face
            self._watch = max(self._watch - 1, 0)
            here, promising = self._search_faces(frame, faces, new)
            if searching:
                self._watch = p.search_follow_frames if promising and not here else 0
            if here:
                self._watch = 0
            new += here
        new = [self._adopt(hid, pts, pr) for hid, pts, pr in new]
        for hid, pts, _ in new:
            self._backfill(hid, pts, int(number))
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
        self._keep_faces(number, faces)
        return found

    def _keep_faces(self, number: int, faces: Sequence[np.ndarray]) -> None:
        """The frame's face boxes, for walking a hand the search found back over them (the frames a backward walk
        can reach: ``backfill`` + ``backtrack``)."""
        if not self.params.search_follow:
            return
        self._faces_at[int(number)] = [np.asarray(b, np.float64) for b in faces]
        reach = self.params.backfill + self.params.backtrack + 1
        if len(self._pushed) > reach:
            self._faces_at.pop(self._pushed[-reach - 1], None)

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
        its filter (updated with the new centroid), and, if the search over the face found it, that mark."""
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
        if hid in self._searched:
            self._searched.add(best)
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
        found = self._confirm(frame, Rois(np.asarray(centres), np.asarray(sizes), np.asarray(angles)), tracked,
                              p.relock_black or p.black_border)
        if not found and len(faces) and p.search_follow and self._searched & set(self._lost):
            found = self._search_faces(frame, faces, tracked)[0]  # a hand the search found: where it found it
        return found

    def _backfill(self, hid: int, points: np.ndarray, number: int) -> None:
        """Track a new hand backwards through the kept frames (newest first) while the landmarker holds it and the
        frame has no hand there already. A hand seen for the first time and still held at the oldest kept frame is
        remembered (:meth:`late_starts`): the frames before it may hold it too."""
        fresh = self.params.backtrack > 0 and not any(r[1] == hid for r in self.rows)
        first, pts = number, points  # the frame being pushed
        for before, frame in reversed(self._recent):
            if not self._walk_back(hid, before, frame, pts):
                return
            first, pts = before, self.rows[-1][2]
        if fresh:
            self._late[hid] = (first, pts)

    def _walk_back(self, hid: int, number: int, frame: np.ndarray, pts: np.ndarray) -> bool:
        """One step of a backward walk: hand ``hid`` read in frame ``number`` from its landmarks ``pts`` in the
        frame after it; False (nothing recorded) where a hand is there already or the landmarker lets go."""
        if any(i == hid or _box_iou(_bounds(pts), _bounds(q)) > 0.3 for n, i, q, _ in self.rows if n == number):
            return False
        lm = self._landmarks(frame, rois_from_hand_landmarks(pts[None]))
        reading = (lm.points[0], float(lm.presence[0])) if lm.presence[0] >= self.params.keep else None
        if reading is None and hid in self._searched:  # a hand the search found: where it found it
            reading = self._read_over_face(frame, self._faces_at.get(number, ()), pts)
        if reading is None:
            return False
        self.rows.append((number, hid, *reading))
        return True

    def _search_faces(self, frame: np.ndarray, faces: Sequence[np.ndarray], new: list
                      ) -> tuple[list[tuple[int, np.ndarray, float]], bool]:
        """The search over each face (:func:`face_search_rois`): at most one hand a face (the regions overlap), and
        whether any region's first reading reached ``face_search_first`` (a hand may be there, not yet firm)."""
        p = self.params
        out: list[tuple[int, np.ndarray, float]] = []
        promising = False
        for box in faces:
            if len(new) + len(out) < p.max_hands:
                rois = face_search_rois(np.asarray(box, np.float64), *p.face_search_rois)
                here = self._confirm(frame, rois, new + out, first=p.face_search_first, refine=2)
                promising = promising or self._first_reading >= p.face_search_first
                out += sorted(here, key=lambda h: -h[2])[:1]
        self._searched.update(hid for hid, _, _ in out)
        return out, promising

    def _search_again(self, frame: np.ndarray, faces: Sequence[np.ndarray], missing: list[tuple[int, np.ndarray]]
                      ) -> list[tuple[int, np.ndarray, float]]:
        """Hands the search over the face found (``search_follow``) that their own landmarks lost this frame, read
        again over the face nearest each (:func:`~vidswap.hands.regions.read_over_face`)."""
        out = []
        for hid, last in missing:
            again = self._read_over_face(frame, faces, last)
            if again is not None:
                out.append((hid, *again))
        return out

    def _read_over_face(self, frame: np.ndarray, faces: Sequence[np.ndarray], last: np.ndarray
                        ) -> tuple[np.ndarray, float] | None:
        p = self.params
        if not p.search_follow:
            return None

        def read(rois):
            lm = self._landmarks(frame, rois)
            return lm.points, lm.presence

        return read_over_face(read, frame.shape, faces, last, *p.face_search_rois, p.keep, p.keep_edge)

    def late_starts(self) -> list[tuple[int, list[int]]]:
        """The hands :meth:`backtrack` may follow further back: ``(id, frame numbers)``, the analysed frames before
        the hand's earliest reading back to its shot's start (the last cut before it), nearest first, at most
        ``params.backtrack`` of them. Hands with no such frame are left out."""
        out = []
        index = {n: k for k, n in enumerate(self._pushed)}
        for hid, (first, _) in sorted(self._late.items()):
            k = index.get(first)
            if k is None:
                continue
            start = self._shot_start(k)
            numbers = self._pushed[max(start, k - self.params.backtrack):k][::-1]
            if numbers:
                out.append((hid, numbers))
        return out

    def _shot_start(self, k: int) -> int:
        """The index (in the pushed frames) of the first frame of the shot that pushed frame ``k`` falls in."""
        return max([c for c in self._cuts if c <= k], default=0)

    def backtrack(self, hid: int, frames: Iterable[tuple[int, np.ndarray]]) -> bool:
        """Follow a late-starting hand (:meth:`late_starts`) back through ``frames`` ((number, HxWx3 RGB uint8),
        nearest first, continuing where the previous call stopped) while the landmarker holds it and no hand is
        there already; False once it stops (later calls do nothing)."""
        late = self._late.get(hid)
        if late is None:
            return False
        first, pts = late
        for number, frame in frames:
            if not self._walk_back(hid, int(number), frame, pts):
                del self._late[hid]
                return False
            first, pts = int(number), self.rows[-1][2]
            self._late[hid] = (first, pts)
        return True

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

    def _confirm(self, frame: np.ndarray, rois: Rois, tracked: list, black: bool | None = None,
                 first: float | None = None, refine: int = 1) -> list[tuple[int, np.ndarray, float]]:
        """New hands from candidate regions: the landmarker's presence must reach ``first`` (default ``accept``);
        ``refine`` more passes, each from the previous pass's landmarks (a reading below ``keep`` leaves the one
        before); with ``first`` given, the last reading (with ``search_follow``, the best) must reach ``accept``;
        not a hand already tracked."""
        p = self.params
        self._first_reading = 0.0
        boxes = [_bounds(pts) for _, pts, _ in tracked]
        keep = [i for i in range(len(rois)) if not any(_inside(rois.center[i], b, p.overlap) for b in boxes)]
        if not keep:
            return []
        rois = Rois(rois.center[keep], rois.size[keep], rois.angle[keep])
        lm = self._landmarks(frame, rois, black)
        self._first_reading = float(lm.presence.max(initial=0.0))
        good = [k for k in range(len(rois)) if lm.presence[k] >= (p.accept if first is None else first)]
        if not good:
            return []
        # more passes from the previous pass's landmarks: the tracking ROI fits the hand better than the palm's
        points, presence = lm.points[good], lm.presence[good]
        best_points, best = points.copy(), presence.copy()
        for _ in range(refine):
            lm2 = self._landmarks(frame, rois_from_hand_landmarks(points), black)
            better = lm2.presence >= p.keep
            points = np.where(better[:, None, None], lm2.points, points)
            presence = np.where(better, lm2.presence, presence)
            top = lm2.presence > best
            best_points, best = np.where(top[:, None, None], lm2.points, best_points), np.maximum(best, lm2.presence)
        if first is not None and p.search_follow:
            # a hand past the frame's edge may not firm up when read from its own landmarks as it did where the
            # search read it: a reading that reached accept is kept
            weak = (presence < p.accept) & (best >= p.accept)
            points, presence = np.where(weak[:, None, None], best_points, points), np.where(weak, best, presence)
        out = []
        for pts, pr in zip(points, presence):
            if first is not None and pr < p.accept:
                continue  # a region's weak first reading that did not firm up into a hand
            if any(_inside(pts[:, :2].mean(0), b, p.overlap) for b in boxes):
                continue  # a hand already tracked, seen again
            out.append((self._next_id, pts, float(pr)))
            self._next_id += 1
        new_ids = {hid for hid, _, _ in out}
        return [h for h in self._dedupe(tracked + out) if h[0] in new_ids]  # not a tracked hand again

    def finish(self) -> HandTracks:
        """Per hand: dropped if seen for fewer than ``min_frames`` frames (with ``look_at_start``, fewer than its
        shot's analysed frames where those are fewer), else smoothed over its run of frames and
        carried across short gaps and past its end (:func:`~vidswap.hands.motion.carry_hand`; counted in pushed
        frames, never past the shot's last frame)."""
        self._resolve([])
        if not self.rows:
            return HandTracks.empty()
        index = {n: k for k, n in enumerate(self._pushed)}
        bounds = sorted(set(self._cuts + [len(self._pushed)]))
        out, need = [], self.params.min_frames
        for hid in sorted({r[1] for r in self.rows}):
            mine = sorted((r for r in self.rows if r[1] == hid), key=lambda r: r[0])  # backfilled rows came later
            at = np.array([index[r[0]] for r in mine], np.int64)
            end = next(b for b in bounds if b > at[-1]) - 1  # the hand's shot ends here
            shot = end + 1 - self._shot_start(int(at[0]))  # the frames its shot has in the analysis
            if len(mine) < (min(shot, need) if self.params.look_at_start else need):
                continue
            sigma = self.params.skip_sigma if hid in self._skipped else self.params.smooth_sigma
            pts = smooth_series(np.stack([r[2] for r in mine]).astype(np.float32), sigma)
            k, q, pr, _ = carry_hand(at, pts, np.array([r[3] for r in mine], np.float32), self.params.motion, end)
            out += [(self._pushed[int(j)], hid, qq, float(pp)) for j, qq, pp in zip(k, q, pr)]
        if not out:
            return HandTracks.empty()
        out.sort(key=lambda r: (r[0], r[1]))
        return HandTracks(np.array([r[0] for r in out], np.int64), np.array([r[1] for r in out], np.int32),
                          np.stack([r[2] for r in out]).astype(np.float32), np.array([r[3] for r in out], np.float32))
