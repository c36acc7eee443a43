"""The hand tracker's settings (:class:`HandParams`), apart from the tracker (:mod:`vidswap.hands.track`) so that
the analysis's settings and cache key can be read without the tracker's models and filters."""

from __future__ import annotations

from dataclasses import dataclass, field

from vidswap.hands.motion import MotionParams

__all__ = ["HandParams"]


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
        look_at_start: on a shot's first analysed frame (the analysis's first, or after a cut) palm detection,
            the pose landmarker and the search over the face look for a hand whatever their cadence
            (``idle_detect_every``, ``pose_every``, ``face_search_every``; their schedule is kept), and a shot
            shorter than ``min_frames`` keeps a hand seen on all its frames. Before, a hand over the face that palm
            detection misses was first looked for on a shot's 8th (pose) and 24th (search) frame: a job over a few
            frames (``--frames 118`` or ``188-189`` on the sample clip) painted over the hand longer jobs keep.
        pose_every: with no hand tracked and the palm detector finding none, the pose landmarker (given a face)
            looks for hands near each face every this many frames, and at once when a tracked hand is lost (a hand entering from the frame
            edge, its wrist outside: palm detection misses it throughout; 8, was 4: the pose landmarker, 17-24 ms
            CPU a call, is the dearest model).
        backfill: a newly found hand is tracked backwards through up to this many earlier frames (kept in
            memory), so detection that runs only every few frames does not start the hand late (a hand only the
            pose landmarker finds may start up to ``pose_every - 1 - backfill`` frames late: 1 frame).
        face_search: where the pose landmarker, asked, finds no hand near a face, the hand landmarker itself looks
            over the face, in ``face_search_rois`` regions (:func:`vidswap.hands.track.face_search_rois`); a reading
            of presence ``face_search_first`` or more is read twice more from its own landmarks and kept if it then
            reaches ``accept``. A hand held over the mouth, its back to the camera and the arm below the frame, is
            found by neither detector: on the sample clip cut at frames 180-233 no hand at all was found. On it,
            the face regions' first readings were 0.29-0.69 and 0.96-0.99 once refined; on the clips' frames without
            a hand (pexels_clip 10-40 and 300-450, single_face_clip, face_noface_clip) at most 0.02.
        face_search_every: the search runs at most once in this many analysed frames (with the pose landmarker's
            call): a search is 26 ms of one core (its three regions at once; the pose landmarker's call 15 ms), so
            every 24th frame costs ~1.1 ms a frame on a face without a hand, and a hand it finds late is followed
            back (``backtrack``).
        face_search_first: see ``face_search``.
        face_search_rois: (down, size) of the regions over a face, as fractions of the face box's height: centred
            ``down`` below the box's centre, ``size`` wide, upright and turned +-0.5 rad.
        search_follow: a hand the search over the face found is, on a frame where its own landmarks lose it, read
            again in the search's regions over the nearest face (one landmarker call), also when it is looked for
            after being dropped and when it is followed back; and a search reading that reached ``accept`` but fell
            when read from its own landmarks is kept. A hand over a face cut by the frame's edge, its palm and
            wrist outside: the regions read it at 0.8-0.97, its landmarks' region at 0.03-0.3 (pexels_clip's face
            half out of frame: the hand painted over on frames 58-115, lead s31).
        search_follow_frames: after a search whose first reading reached ``face_search_first`` without firming up
            into a hand, the search runs again on each of this many following frames (or until a hand is found): a
            search every ``face_search_every`` frames that falls on a weak frame otherwise waits that long again
            (the half face's searches fell on frames reading 0.22 and 0.16 of a hand reading 0.82-0.97 on others).
            On faces without a hand the first readings stay below ``face_search_first`` (at most 0.18, on a face
            cut by the frame's edge), so it never runs there. 0: off.
        backtrack: a new hand still held after ``backfill`` kept frames is tracked further back, to its shot's start
            or at most this many more analysed frames, which the analysis reads again once its pass is done
            (:func:`vidswap.hands.backtrack.backtrack_hands`). A shot that opens on a hand over the face: on the
            sample clip cut at frame 120, where a hand lies over the eye and nose, palm detection and the pose
            landmarker first found it at frame 130-135 and frames 120-128 had the hand painted over; the
            landmarker follows it back from there to frame 120. 0: off.
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
            comes or the shot ends (0: every frame read). 0.12 (was 0: off, handcost-s11): on the sample clip's
            occluded stretch (56-231, every frame analysed) the hands' added CPU time 21.3 -> 17.2 ms a frame (wall
            12.8 -> 10.4, paired, ``bench_hands_speed.py``); the annotated accuracy on an every-frame analysis hand
            pixels kept 95.63% -> 95.76%, visible face unswapped 3.67% -> 3.49% (every other frame, the test's
            analysis, never skips); the stretch's flicker / jitter over the plate's 1.085 / 1.036 -> 1.082 / 1.066
            with the landmark smoother's ``occluded_noise`` (before it, skipping raised the jitter 1.147 -> 1.166;
            benchmarks/RESULTS.md, handcost-s11 and the lead's s11 section).
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
    look_at_start: bool = True
    smooth_sigma: float = 1.0
    overlap: float = 1.0
    pose_every: int = 8
    backfill: int = 6
    backtrack: int = 240
    face_search: bool = True
    face_search_every: int = 24
    face_search_first: float = 0.2
    face_search_rois: tuple[float, float] = (0.25, 1.6)
    search_follow: bool = True
    search_follow_frames: int = 8
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
    skip_still: float = 0.12
    skip_sigma: float = 1.5
