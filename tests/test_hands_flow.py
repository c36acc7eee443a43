"""The flow hold of the hand tracker: a new reading that departs from the previous landmarks moved by the plate's
optical flow (the landmarker flipping a partly seen hand) is replaced by the flow-moved shape for a few frames."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from test_hands import synthetic_hand
from vidswap.hands.flow import departure, flow_motion, flow_moved, hold
from vidswap.hands.mask import hand_size
from vidswap.hands.landmarks import HandLandmarks
from vidswap.hands.palm import Palms
from vidswap.hands.track import HandParams, HandTracker

H, W, STEP, CY = 160, 200, 2, 150.0


def texture(seed: int = 0) -> np.ndarray:
    """(H, W + 40) uint8 blurred noise: flow is well defined everywhere."""
    rng = np.random.default_rng(seed)
    return np.clip(cv2.GaussianBlur(rng.uniform(0, 255, (H, W + 40)).astype(np.float32), (0, 0), 2.0) * 2 - 128,
                   0, 255).astype(np.uint8)


def frame(tex: np.ndarray, n: int) -> np.ndarray:
    """(H, W, 3) frame ``n``: the texture moved STEP px right per frame; pixel (0, 0) holds ``n``."""
    f = tex[:, 40 - STEP * n:40 - STEP * n + W]
    f = np.repeat(f[..., None], 3, 2).copy()
    f[0, 0] = n
    return f


def flipped(cx: float, cy: float, s: float) -> np.ndarray:
    """The synthetic hand read upside down about its knuckle line (fingers pointing at the wrist's side)."""
    pts = synthetic_hand(cx, cy, s)
    pts[1:, 1] = 2 * cy - pts[1:, 1]
    return pts


def test_flow_moved_follows_a_translated_image():
    tex = texture()
    a, b = frame(tex, 0)[..., 0], frame(tex, 3)[..., 0]  # moved 6 px right
    pts = synthetic_hand(100, 80, 20)
    moved = flow_moved(a, b, pts)
    np.testing.assert_allclose(moved[:, :2], pts[:, :2] + [3 * STEP, 0], atol=0.3)
    np.testing.assert_array_equal(moved[:, 2], pts[:, 2])


def test_flow_moved_on_a_shrunk_region_stays_in_frame_pixels(monkeypatch):
    """With ``size`` the region is shrunk before the flow (its long side at most ``size`` px: what the flow costs
    no longer grows with the plate) and the flow is scaled back: a 3x larger plate, moved 3x as far, gives 3x the
    moved offset within a pixel; RGB frames give what their luma gives."""
    import vidswap.hands.flow as flow

    big = cv2.resize(texture(1), None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # (480, 720)
    a, b = big[:, 60:660], big[:, 60 - 18:660 - 18]  # moved 18 px right
    pts = synthetic_hand(300, 240, 60)
    seen = []
    real = cv2.DISOpticalFlow_create

    class Spy:
        def __init__(self, preset):
            self.dis = real(preset)

        def calc(self, x, y, f):
            seen.append(x.shape)
            return self.dis.calc(x, y, f)

    monkeypatch.setattr(flow.cv2, "DISOpticalFlow_create", Spy)
    small = flow_moved(a, b, pts, size=96)
    assert max(seen[-1]) <= 96
    np.testing.assert_allclose(small[:, :2], pts[:, :2] + [18, 0], atol=1.0)
    full = flow_moved(a, b, pts)
    assert seen[-1] == (193, 133)  # the whole region, (331 - 138, 367 - 234)
    np.testing.assert_allclose(full[:, :2], pts[:, :2] + [18, 0], atol=0.5)
    rgb = flow_moved(np.repeat(a[..., None], 3, 2), np.repeat(b[..., None], 3, 2), pts, size=96)
    np.testing.assert_array_equal(rgb, small)


def test_hold_decision():
    moved = synthetic_hand(100, 80, 20)
    assert hand_size(moved) == 20.0
    assert departure(moved + [7.0, -4.0, 0.0], moved) < 1e-12  # the hand moved more than the flow: not a flip
    tip = moved.copy()
    tip[8, :2] += [0.0, -10.0]  # the index tip half a hand size off: 0.5 * 20/21 after the mean offset
    np.testing.assert_allclose(departure(tip, moved), 0.5 * 20 / 21, rtol=1e-12)
    assert hold(tip, moved, 0.35, 0, 6)
    assert not hold(tip, moved, 0.5, 0, 6)  # under the threshold
    assert not hold(tip, moved, 0.35, 6, 6)  # held six frames already
    assert not hold(tip, moved, 0.0, 0, 6)  # off
    assert departure(flipped(100, 80, 20), moved) > 1.0
    previous = moved - [3.0, 4.0, 0.0]  # the flow moved every point 5 px: a quarter of the hand's size
    assert flow_motion(previous, moved) == 0.25
    assert hold(tip, moved, 0.35, 0, 6, previous, still=0.3)
    assert not hold(tip, moved, 0.35, 0, 6, previous, still=0.2)  # the plate's hand moves: the reading is taken
    assert hold(tip, moved, 0.35, 0, 6, previous, still=0.0)  # no gate


class MovingHand:
    """A palm detector and landmarker that see the synthetic hand moving with the texture, read flipped on the
    frames in ``flips`` (the frame number is pixel (0, 0)); knuckles at row ``cy`` (CY: the wrist past the
    frame's bottom edge)."""

    def __init__(self, flips, cy: float = CY):
        self.flips, self.cy = set(flips), cy

    def reading(self, n: int) -> np.ndarray:
        cx = 100.0 + STEP * n
        return (flipped(cx, self.cy, 20) if n in self.flips else synthetic_hand(cx, self.cy, 20)).astype(np.float32)

    def palms(self, image):
        pts = self.reading(int(image[0, 0, 0]))
        kps = np.zeros((1, 7, 2), np.float32)
        kps[0, 0], kps[0, 2] = pts[0, :2], pts[9, :2]
        box = np.array([[pts[:, 0].mean(), pts[:, 1].mean(), 30.0, 30.0]], np.float32)
        return Palms(box, kps, np.array([0.9], np.float32))

    def landmarker(self, frames, index, rois, black_border=False):
        pts = self.reading(int(frames[index[0]][0, 0, 0]))
        n = len(rois)
        return HandLandmarks(np.repeat(pts[None], n, 0), np.full(n, 0.95, np.float32), np.ones(n, np.float32))


def track(params: HandParams, flips, frames: int = 9, cy: float = CY):
    models, tex = MovingHand(flips, cy), texture()
    params = dataclasses.replace(params, look_at_start=False)  # the cadence alone: found on frame 1, backfilled
    tracker = HandTracker(models.palms, models.landmarker, params)
    return [tracker.push(n, frame(tex, n)) for n in range(frames)]


def test_tracker_holds_the_flow_moved_shape_over_a_flipped_reading():
    """The hand's wrist past the frame's bottom edge; frames 5 and 6 read flipped: both are held (the previous shape moved 2 px by the flow; presence 0.95 * 0.9,
    then * 0.9 again); frame 7's reading is taken again. Held at most one frame, frame 6's flipped reading is
    taken. Off, or edge-only with the hand inside the frame, both flipped readings are taken."""
    out = track(HandParams(skip_still=0.0), flips=(5, 6))
    assert [len(o) for o in out] == [0] + [1] * 8  # found on frame 1 (detection every 2nd frame), backfilled to 0
    for n in (5, 6):
        hid, pts, pr = out[n][0]
        np.testing.assert_allclose(pts[:, :2], synthetic_hand(100 + STEP * n, CY, 20)[:, :2], atol=0.6)
        np.testing.assert_allclose(pr, 0.95 * 0.9 ** (n - 4), rtol=1e-6)
    for n in (4, 7, 8):
        np.testing.assert_array_equal(out[n][0][1], MovingHand(()).reading(n))
        assert out[n][0][2] == np.float32(0.95)

    once = track(HandParams(skip_still=0.0, flow_hold_frames=1), flips=(5, 6))
    assert departure(once[5][0][1], synthetic_hand(110, CY, 20)) < 0.05
    np.testing.assert_array_equal(once[6][0][1], MovingHand((6,)).reading(6))

    off = track(HandParams(skip_still=0.0, flow_hold=0), flips=(5, 6))
    for n in (5, 6):
        np.testing.assert_array_equal(off[n][0][1], MovingHand((n,)).reading(n))
    inside = track(HandParams(skip_still=0.0, flow_hold_edge=True), flips=(5, 6), cy=80.0)
    for n in (5, 6):
        np.testing.assert_array_equal(inside[n][0][1], MovingHand((n,), 80.0).reading(n))
    everywhere = track(HandParams(skip_still=0.0, flow_hold_edge=False), flips=(5,), cy=80.0)
    assert departure(everywhere[5][0][1], synthetic_hand(110, 80, 20)) < 0.05


def test_flow_runs_only_for_a_reading_that_departs_from_the_previous_landmarks(monkeypatch):
    """A reading within ``flow_skip`` hand sizes of the previous landmarks is taken without the flow: the steadily
    moving hand (2 px a frame, a tenth of its size) needs none; a flipped reading (frame 5) still gets it and is held,
    and so does the next frame (measured against the held shape). ``flow_skip=0``: the flow on every tracked frame
    after the first."""
    import vidswap.hands.track as track_module

    calls = []
    real = track_module.flow_moved

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(track_module, "flow_moved", spy)
    track(HandParams(skip_still=0.0), flips=())
    assert len(calls) == 0
    out = track(HandParams(skip_still=0.0), flips=(5,))
    assert len(calls) == 2  # frame 5 (flipped: held) and frame 6 (against the held shape: taken)
    assert departure(out[5][0][1], synthetic_hand(110, CY, 20)) < 0.05
    calls.clear()
    track(HandParams(skip_still=0.0, flow_skip=0), flips=())
    assert len(calls) == 7  # frames 2-8: frame 0 is backfilled, frame 1 found (no previous frame to flow from)


def test_analysis_cache_key_covers_the_flow_hold(monkeypatch):
    import vidswap.faces.analysis_key as keyed  # where the key reads HandParams
    from vidswap.faces.analyze import AnalysisConfig, SmoothingConfig, analysis_key

    def key():
        return analysis_key("clip", [0, 1, 2], AnalysisConfig(), SmoothingConfig(), {"m": "0"})

    base = key()
    for changed in (HandParams(flow_hold=0.2), HandParams(flow_hold_frames=2), HandParams(flow_hold_decay=0.5),
                    HandParams(flow_hold_edge=True), HandParams(flow_size=0), HandParams(flow_preset="fast"),
                    HandParams(flow_hold_still=0), HandParams(flow_skip=0)):
        monkeypatch.setattr(keyed, "HandParams", lambda c=changed: c)
        assert key() != base
