"""The hand occlusion mask from 21 landmarks: the palm's convex hull plus a capsule along every finger bone, widths
from the hand's size, anti-aliased from an exact distance field; its edge refined against the plate with a guided
filter (so finger edges follow the picture, not the landmark model).

Masks are float32 in [0, 1], 1 = hand (the plate must be kept there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vidswap.hands.colour import ColourSplitParams, colour_split

#: The finger bones (MediaPipe's hand connections without the palm's).
FINGER_BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (5, 6), (6, 7), (7, 8), (9, 10), (10, 11), (11, 12),
                (13, 14), (14, 15), (15, 16), (17, 18), (18, 19), (19, 20))
#: Points of the palm's hull: wrist, thumb base, the finger MCPs.
PALM_POINTS = (0, 1, 2, 5, 9, 13, 17)
#: Finger index of each bone (0 thumb .. 4 pinky), for per-finger widths.
BONE_FINGER = (0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4)
#: Bones that end at a fingertip (their far end is pulled back by ``tip_pull`` x the radius: a round cap on the tip
#: landmark would reach past the finger).
TIP_BONES = frozenset({3, 6, 9, 12, 15})
#: The webs between neighbouring fingers up to their middle (PIP) joints: fingers held together cover them.
WEBS = ((5, 6, 10, 9), (9, 10, 14, 13), (13, 14, 18, 17))


@dataclass(frozen=True)
class HandMaskParams:
    """Hand mask shaping, as fractions of the hand's size (:func:`matte_size`: wrist -> middle-MCP units, measured
    from the fingers).

    Attributes:
        finger_radius: capsule radius per finger (thumb, index, middle, ring, pinky).
        grow: every shape grown by this much (covers the soft edge and the model's error).
        tip_pull: fingertip capsules end this many radii short of the tip landmark.
        webs: fill the webs between neighbouring fingers up to their PIP joints (:data:`WEBS`).
        refine_radius: guided-filter window radius (fraction of the hand size; at least 1 px).
        refine_eps: guided-filter regularisation (intensity variance units, [0, 1] images).
        refine: refine the edge against the plate. Off by default: on the sample clip's hand over the face
            (skin on skin, little contrast) it widened the soft edge both ways (hand pixels covered 95.2% -> 91.2%,
            face pixels touched 10.7% -> 17.4% at grow 0.08).
        colour: the edge decided by colour (:mod:`vidswap.hands.colour`) in a band around the landmark shape;
            None: the landmark shape as drawn (on the annotated frames: 97.4% of hand pixels kept, 4.9% of the
            visible face wrongly unswapped; with it 95.1% and 2.9%).
        time_reach: a frame's matte is the union of the hand shapes of the frames this far either side (each
            decided by colour against this frame's plate): a moving hand is held where it was and will be. Each
            frame's matte still depends on that frame and the stored tracks only (farm chunks agree). Off by
            default: on the sample clip (every frame analysed) 1 took the result's landmark jitter over frames
            56-231 from 1.18x the plate's to 1.13x (the spike where the hand sweeps across the nose and eye, frames
            84-102: 1.40x -> 1.05x) but the visible face wrongly left unswapped on the annotated frames from 3.3%
            to 4.2% (hand pixels kept 95.4% -> 96.5%).
        sweep: with ``time_reach`` 0, each hand's landmark shape is the union of its landmarks at the frame and
            interpolated ``sweep`` frames before and after (:meth:`~vidswap.hands.types.HandTracks.swept`): what a
            moving hand covers while the shutter is open (motion blur), nothing more for a hand at rest; decided by
            colour once, against this frame's plate; only the frame's own shape makes the colour split's core, so
            what the sweep adds is decided by colour. On the sample clip (frames 56-231, every frame analysed) 0.5
            took the result's landmark jitter from 1.17x the plate's to 1.09x (the spike where the hand sweeps up
            over the nose and eye, frames 94-95: 9.5 / 8.6 -> 6.4 / 4.4 px/frame^2), flicker 1.30x unchanged; on the
            annotated frames hand pixels kept 95.1% -> 95.3%, visible face wrongly unswapped 2.92% -> 2.97%
            (0.25: jitter 1.10x, 95.2% / 2.94%; 0, the former default: 1.17x).
        sweep_min_px: a swept shape that moves no landmark by this many px is left out (a hand at rest costs what
            it did without the sweep).
        work_size: a hand larger than this many px (its :func:`matte_size`) is matted on its box shrunk so that it
            is this size (area-averaged), and the matte brought back up (bilinear): every length of the mask and of
            the colour split is a fraction of the hand's size, so the decision is the same picture at fewer pixels,
            and the cost stops growing with the plate (the sample clip's stretch scaled up: 33.5 -> 14.4 ms a hand
            frame at 1920x1080, 165 -> 28 at 3840x2160, the mattes differing by more than 0.5 on 0.03-0.07 % of
            their pixels; benchmarks/RESULTS.md, lead s20). 160 leaves that clip's hands (81-109 px at 640x360)
            untouched; 0: always at the plate's resolution.

    Shape defaults fitted on the 16 hand-annotated frames of tests/data/hand_occluders.json (grid over radius scale,
    growth, tip pull-back, webs): 96.1% of the hand's pixels over the face covered, 5.3% of the visible face
    touched (outside a 3-px band around the drawn outline).
    """

    finger_radius: tuple[float, float, float, float, float] = (0.26, 0.21, 0.21, 0.19, 0.18)
    grow: float = 0.02
    tip_pull: float = 1.5
    webs: bool = True
    refine_radius: float = 0.05
    refine_eps: float = 1e-3
    refine: bool = False
    colour: ColourSplitParams | None = field(default_factory=ColourSplitParams)
    time_reach: int = 0
    sweep: float = 0.5
    sweep_min_px: float = 1.0
    work_size: float = 160.0


def hand_size(points: np.ndarray) -> float:
    """The hand's size (px): the wrist -> middle-finger-MCP distance of (21, 2+) points."""
    return float(np.linalg.norm(points[9, :2] - points[0, :2]))


#: Proximal phalanges (MCP -> PIP) of the index .. pinky fingers.
PHALANGES = ((5, 6), (9, 10), (13, 14), (17, 18))
#: Wrist -> middle-MCP distance over the median proximal phalanx: the median over every hand reading of the sample
#: clip's tracked stretch (pexels_clip 56-230: 1.313 every frame, 1.329 every other frame analysed).
PHALANX_RATIO = 1.32


def matte_size(points: np.ndarray) -> float:
    """The size (px) the matte's widths scale with: :func:`hand_size` capped by ``PHALANX_RATIO`` x the median
    proximal-phalanx (MCP -> PIP) length of the index .. pinky fingers of (21, 2+) points. The wrist is often out of
    frame while the hand covers the face, its position only guessed by the landmarker (the sample clip, frames
    58-90: 108-125 px against 97-105 once settled, for the same fingers, 75-81 px phalanges throughout); the cap
    keeps that guess from widening the fingers. The wrist distance where it is the smaller (fingers foreshortened
    toward the camera read short) or where the phalanges are under a pixel (fingers collapsed)."""
    xy = np.asarray(points, np.float64)[:, :2]
    phalanx = float(np.median([np.linalg.norm(xy[b] - xy[a]) for a, b in PHALANGES]))
    return min(PHALANX_RATIO * phalanx, hand_size(points)) if phalanx >= 1.0 else hand_size(points)


def segment_distance(px: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of points ``px (..., 2)`` to the segment ``a``-``b`` (each (2,))."""
    ab = b - a
    denom = float(ab @ ab)
    t = np.zeros(px.shape[:-1]) if denom == 0 else np.clip(((px - a) @ ab) / denom, 0.0, 1.0)
    return np.linalg.norm(px - (a + t[..., None] * ab), axis=-1)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """(K, 2) vertices of the convex hull of ``points (N, 2)``, counter-clockwise in a y-up sense (Andrew's monotone
    chain); collinear points dropped."""
    pts = sorted(map(tuple, np.asarray(points, np.float64).tolist()))  # Python floats: the same doubles, faster
    if len(pts) <= 2:
        return np.asarray(pts)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1])


def polygon_distance(px: np.ndarray, hull: np.ndarray) -> np.ndarray:
    """Distance of ``px (..., 2)`` to a convex polygon ``hull (K, 2)`` from :func:`convex_hull`: 0 inside."""
    k = len(hull)
    d = np.full(px.shape[:-1], np.inf)
    inside = np.ones(px.shape[:-1], bool)
    for i in range(k):
        a, b = hull[i], hull[(i + 1) % k]
        d = np.minimum(d, segment_distance(px, a, b))
        e = b - a
        inside &= (e[0] * (px[..., 1] - a[1]) - e[1] * (px[..., 0] - a[0])) >= 0
    return np.where(inside if k >= 3 else False, 0.0, d)


def _shapes(points: np.ndarray, params: HandMaskParams, size: float
            ) -> tuple[list[np.ndarray], list[tuple[np.ndarray, np.ndarray, float]]]:
    """The hand's parts: convex polygons (the palm hull, the webs) each to be grown by ``grow * size``, and per bone
    (a, b, radius) in px (radius includes the growth). ``size``: the points' :func:`matte_size`."""
    xy = points[:, :2].astype(np.float64)
    bones = []
    for k, ((i, j), f) in enumerate(zip(FINGER_BONES, BONE_FINGER)):
        a, b, r = xy[i], xy[j], (params.finger_radius[f] + params.grow) * size
        if k in TIP_BONES and params.tip_pull > 0:
            d = b - a
            n = float(np.linalg.norm(d))
            if n > 0:
                b = b - d / n * min(params.tip_pull * params.finger_radius[f] * size, 0.5 * n)
        bones.append((a, b, r))
    polys = [convex_hull(xy[list(PALM_POINTS)])]
    if params.webs:
        polys += [convex_hull(xy[list(w)]) for w in WEBS]
    return polys, bones


def hand_distance(px: np.ndarray, points: np.ndarray, params: HandMaskParams = HandMaskParams()) -> np.ndarray:
    """Signed-ish distance (px) of ``px (..., 2)`` to the grown hand shape: <= 0 inside, > 0 outside.

    The shape is the union of the palm hull grown by ``grow * size`` and one capsule per finger bone with radius
    ``(finger_radius[finger] + grow) * size``.
    """
    size = matte_size(points)
    polys, bones = _shapes(points, params, size)
    g = params.grow * size
    d = np.min([polygon_distance(px, poly) - g for poly in polys], axis=0)
    for a, b, r in bones:
        d = np.minimum(d, segment_distance(px, a, b) - r)
    return d


def rasterize_hands(hands: np.ndarray, height: int, width: int,
                    params: HandMaskParams = HandMaskParams()) -> np.ndarray:
    """(H, W) float32 coverage of the hands ``(K, 21, 2+)`` (frame px, integer pixel centres), 1 inside: the shape of
    :func:`hand_distance` drawn with OpenCV's anti-aliased primitives at 1/16 px precision (a thick line is a
    capsule; the grown hull is the hull filled plus its outline drawn ``2 * grow`` thick). Agrees with the exact
    distance field except within about a pixel of the edge."""
    canvas = np.zeros((height, width), np.uint8)
    for pts in hands:
        _draw_hand(canvas, pts, params, matte_size(pts))
    return canvas.astype(np.float32) / 255.0


def rasterize_first_and_all(hands: np.ndarray, height: int, width: int, params: HandMaskParams = HandMaskParams(),
                            sizes: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rasterize_hands(hands[:1]), rasterize_hands(hands))``, bit for bit, drawing each shape once: the first
    shape's canvas is kept before the others are drawn over it. Each (H, W) float32. ``sizes``: each shape's
    :func:`matte_size`, if known."""
    sizes = [matte_size(pts) for pts in hands] if sizes is None else sizes
    canvas = np.zeros((height, width), np.uint8)
    _draw_hand(canvas, hands[0], params, sizes[0])
    first = canvas.astype(np.float32) / 255.0
    for pts, size in zip(hands[1:], sizes[1:]):
        _draw_hand(canvas, pts, params, size)
    return first, canvas.astype(np.float32) / 255.0


def _draw_hand(canvas: np.ndarray, pts: np.ndarray, params: HandMaskParams, size: float) -> None:
    """Draw one hand's grown shape (21, 2+) onto ``canvas`` (H, W) uint8 at 255 (:func:`rasterize_hands`);
    ``size``: its :func:`matte_size`."""
    shift = 4
    one = 1 << shift

    def fix(p: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(p, np.float64) * one).astype(np.int32)

    if size <= 0:
        return
    polys, bones = _shapes(pts, params, size)
    g = params.grow * size
    for hull in polys:
        poly = fix(hull)
        cv2.fillConvexPoly(canvas, poly, 255, cv2.LINE_AA, shift)
        if g > 0:
            cv2.polylines(canvas, [poly], True, 255, max(1, int(round(2 * g))), cv2.LINE_AA, shift)
    ends = fix(np.array([[a, b] for a, b, _ in bones])).tolist()  # all bones at once: (16, 2, 2)
    for (a, b), (_, _, r) in zip(ends, bones):
        cv2.line(canvas, a, b, 255, max(1, int(round(2 * r))), cv2.LINE_AA, shift)


def box_filter(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window of (H, W) ``x``, the window clipped at the borders."""
    x = x.astype(np.float64)
    k = (2 * r + 1, 2 * r + 1)
    s = cv2.boxFilter(x, -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    n = cv2.boxFilter(np.ones_like(x), -1, k, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return s / n


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide: ``src`` (H, W) filtered so its edges follow ``guide`` (H, W) in
    [0, 1]. Returns (H, W) float64."""
    mi, mp = box_filter(guide, r), box_filter(src, r)
    cov = box_filter(guide * src, r) - mi * mp
    var = box_filter(guide * guide, r) - mi * mi
    a = cov / (var + eps)
    b = mp - a * mi
    return box_filter(a, r) * guide + box_filter(b, r)


def refine_mask(mask: np.ndarray, plate: np.ndarray, size: float, params: HandMaskParams = HandMaskParams()
                ) -> np.ndarray:
    """The mask's edge snapped to the plate with a guided filter, inside the mask's bounding box (grown by the
    window). The geometric mask's core is kept: the result is at least the mask eroded by the window.

    Args:
        mask: (H, W) float32 in [0, 1]; plate: (H, W, 3) uint8 RGB or float in [0, 1]; size: hand size px.
    """
    ys, xs = np.nonzero(mask > 0)
    if len(ys) == 0:
        return mask
    r = max(1, int(round(params.refine_radius * size)))
    h, w = mask.shape
    y0, y1 = max(ys.min() - 2 * r, 0), min(ys.max() + 2 * r + 1, h)
    x0, x1 = max(xs.min() - 2 * r, 0), min(xs.max() + 2 * r + 1, w)
    sub = plate[y0:y1, x0:x1].astype(np.float64)
    if plate.dtype == np.uint8:
        sub = sub / 255.0
    grey = sub @ np.array([0.299, 0.587, 0.114])
    m = mask[y0:y1, x0:x1].astype(np.float64)
    g = guided_filter(grey, m, r, params.refine_eps)
    # keep the core: the ramp may move by the window, not open holes in the hand
    core = _erode(m >= 1.0, r)
    out = mask.copy()
    out[y0:y1, x0:x1] = np.clip(np.maximum(g, core), 0.0, 1.0)
    return out


def _erode(binary: np.ndarray, r: int) -> np.ndarray:
    """(H, W) float64: 1 where the whole (2r+1)^2 window of ``binary`` is set."""
    return (box_filter(binary.astype(np.float64), r) > 1.0 - 1e-9).astype(np.float64)


def hand_box(points: np.ndarray, params: HandMaskParams, height: int, width: int, margin: float,
             size: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) the frame region (clipped) that holds the hand's grown shape plus ``margin`` x its size
    (``size``: the points' :func:`matte_size`)."""
    pad = (max(params.finger_radius) + max(params.grow, 0.0) + margin) * size + 2
    lo = np.floor(points[:, :2].min(0) - pad).astype(int)
    hi = np.ceil(points[:, :2].max(0) + pad).astype(int) + 1
    return max(lo[0], 0), max(lo[1], 0), min(hi[0], width), min(hi[1], height)


def hand_matte(hands: np.ndarray, plate: np.ndarray, params: HandMaskParams = HandMaskParams(),
               lips: list[np.ndarray] | None = None) -> np.ndarray:
    """(H, W) float32 occlusion matte of the hands over ``plate (H, W, 3)`` uint8 RGB: each hand rasterised in its
    own box only, its edge decided by colour (:mod:`vidswap.hands.colour`) or refined with the guided filter, as
    ``params`` say.

    Args:
        hands: (K, 21, 2+) landmarks, or (K, S, 21, 2+) per hand S shapes whose union is that hand's landmark
            mask (:meth:`~vidswap.hands.types.HandTracks.swept`; sized by the middle one, ``S // 2``, whose shape
            alone makes the colour split's core: what the other shapes add is decided by colour).
        lips: the faces' outer lip outlines in frame pixels ((L, 2+) each), for the colour split's
            ``lips_depth``; None: the core is forced everywhere.
    """
    h, w = plate.shape[:2]
    out = np.zeros((h, w), np.float32)
    hands = np.asarray(hands)
    if hands.ndim == 3:
        hands = hands[:, None]
    for shapes in hands:
        pts = shapes[len(shapes) // 2]
        # the frame's own shape first, then those the hand sweeps over that move a landmark by a pixel or more
        # in float64, so each size measured here equals the size of the shape moved into its box (an integer shift)
        shapes = np.stack([pts] + [q for i, q in enumerate(shapes) if i != len(shapes) // 2
                                   and np.abs(q[:, :2] - pts[:, :2]).max() >= params.sweep_min_px]).astype(np.float64)
        sizes = [matte_size(q) for q in shapes]  # the first is the frame's own shape's
        size = sizes[0]
        if size <= 0:
            continue
        c = params.colour
        margin = (c.outer + c.ring) if c is not None else (2 * params.refine_radius if params.refine else 0.0)
        boxes = np.array([hand_box(q, params, h, w, margin, s) for q, s in zip(shapes, sizes)])
        x0, y0 = boxes[:, :2].min(0)
        x1, y1 = boxes[:, 2:].max(0)
        if x1 <= x0 or y1 <= y0:
            continue
        local = shapes.copy()
        local[..., 0] -= x0
        local[..., 1] -= y0
        box_lips = [np.asarray(q, np.float64)[:, :2] - [x0, y0] for q in lips] if lips else None
        sub = plate[y0:y1, x0:x1]
        if params.work_size > 0 and size > params.work_size:
            m = _shrunk_box_matte(local, sub, params, box_lips, params.work_size / size)
        else:
            m = _box_matte(local, sizes, sub, params, box_lips)
        out[y0:y1, x0:x1] = np.maximum(out[y0:y1, x0:x1], m.astype(np.float32))
    return out


def _box_matte(local: np.ndarray, sizes: list[float], sub: np.ndarray, params: HandMaskParams,
               lips: list[np.ndarray] | None) -> np.ndarray:
    """One hand's matte over its box ``sub (h, w, 3)`` of the plate: ``local (S, 21, 2+)`` its shapes in the box's
    pixels (the frame's own first), ``sizes`` their :func:`matte_size`, ``lips`` the faces' lip outlines in the
    box's pixels. Returns (h, w) float."""
    size = sizes[0]
    c = params.colour
    own, m = rasterize_first_and_all(local, sub.shape[0], sub.shape[1], params, sizes)
    if c is not None:
        lab = cv2.cvtColor(sub.astype(np.float32) / 255.0 if sub.dtype == np.uint8 else sub.astype(np.float32),
                           cv2.COLOR_RGB2LAB)
        lipmask = None
        if lips and c.lips_depth > 0:
            lipmask = np.zeros(m.shape, np.uint8)
            cv2.fillPoly(lipmask, [np.round(q).astype(np.int32) for q in lips], 1)
        m = colour_split(m, lab, size, c, None if len(local) == 1 else own, lipmask)
    elif params.refine:
        m = refine_mask(m, sub, size, params)
    return m


def _shrunk_box_matte(local: np.ndarray, sub: np.ndarray, params: HandMaskParams, lips: list[np.ndarray] | None,
                      scale: float) -> np.ndarray:
    """:func:`_box_matte` on the box shrunk by ``scale`` (< 1; area-averaged; the shapes and lips moved with it,
    pixel centres kept) and brought back to the box's size (bilinear) (``HandMaskParams.work_size``)."""
    h, w = sub.shape[:2]
    hs, ws = max(1, round(h * scale)), max(1, round(w * scale))
    fx, fy = ws / w, hs / h
    small = cv2.resize(sub, (ws, hs), interpolation=cv2.INTER_AREA)
    shrunk = local.astype(np.float64)
    shrunk[..., 0] = (shrunk[..., 0] + 0.5) * fx - 0.5
    shrunk[..., 1] = (shrunk[..., 1] + 0.5) * fy - 0.5
    small_lips = [(q + 0.5) * [fx, fy] - 0.5 for q in lips] if lips else None
    m = _box_matte(shrunk, [matte_size(q) for q in shrunk], small, params, small_lips)
    return cv2.resize(np.asarray(m, np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
