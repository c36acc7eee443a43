"""The hand mask's edge decided by colour: inside a band around the landmark-shaped mask, each pixel goes to the hand
or to the face behind it by which of two colour models (CIE LAB Gaussians) explains it better, the hand's fitted on
the mask's core and the face's on a ring just outside the mask, both in the same frame.

Skin on skin is a weak contrast for an edge filter (a guided filter widened the soft edge both ways on the sample
clip) but a hand is lit differently from the face it covers (nearer the light, no shadow of its own, pinker), and
the face next to a hand has shadows, lips, nostrils and eyes the hand does not: whole-region colour statistics
separate the two where edge gradients do not.

Each model is a small mixture (k-means clusters, one Gaussian each): lit and shadowed skin, the gaps between fingers,
hair, lips. Defaults fitted on the 16 hand-annotated frames of tests/data/hand_occluders.json (grid over the band's
inner / outer reach, the margin, 1-3 clusters, the landmark mask's growth): occluder pixels untouched 97.4% -> 95.1%,
visible face wrongly left unswapped 4.9% -> 2.9% against the landmark mask alone.

Masks are float32 in [0, 1], 1 = hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class ColourSplitParams:
    """Colour split of the band around the landmark mask (lengths are fractions of the hand size, the
    wrist -> middle-MCP distance).

    Attributes:
        inner: the band reaches this far inside the landmark mask; deeper pixels stay hand (the core).
        outer: the band reaches this far outside the landmark mask (pixels further out stay face).
        ring: the face model is fitted on a ring this wide just outside the band.
        margin: log-likelihood margin (nats) by which a band pixel must favour the face to be dropped: ties go to
            the hand (missing part of a hand is worse than not swapping a sliver of face).
        softness: log-likelihood ratio scale of the soft decision (nats from 0 to 1).
        blur: with ``guide_radius`` 0, the decision is smoothed with a Gaussian of this sigma before use (no
            speckle: a speckled matte made the result's landmarks jitter).
        guide_radius: the decision is smoothed with a guided filter of this window radius instead, guided by the
            plate's lightness (:func:`edge_aware_smooth`): speckle is removed as by the blur, but the soft edge
            follows the picture's edges (a finger's rim, the shadow line along it) rather than spreading both ways.
            On the 16 annotated frames (lead s14): every-frame analysis 95.29 % / 3.15 % -> 95.33 % / 3.06 %
            (occluder untouched / visible face wrongly unswapped), every other frame 95.08 / 2.79 -> 95.02 / 2.72;
            the occluded stretch's flicker / jitter 1.101 / 1.090 -> 1.099 / 1.076 x the plate's. 0: the blur.
        guide_eps: the guided filter's regularisation (lightness in [0, 1], squared): edges weaker than about
            sqrt(eps) are smoothed over.
        guide_step: the guided filter's coefficients are fitted on every ``guide_step``-th pixel (He and Sun's fast
            guided filter: a quarter of the work at 2, the same accuracy on the annotated frames).
        min_samples: fewer samples in either model and the landmark mask is returned unchanged.
        max_samples: each model is fitted on a regular subsample of at most this many pixels (every
            ``ceil(n / max_samples)``-th; before lead s17 every ``n // max_samples``-th, which kept up to twice as
            many: the mixture fits took 35-60 % longer for 95.22 % / 2.96 % on the annotated frames against
            95.26 % / 2.97 % now).
        min_std: floor on each LAB channel's std (L, a, b units).
        clusters: colour clusters per model (lit and shadowed skin, hair, lips, the gaps between fingers).
        lips_depth: where the face's lips are known (the track's mesh), the core's outer layer this deep over them
            is not forced to hand but decided by colour against the lips seen beside the hand (the landmarker can
            put a curled finger's joints on the lip line, 15-20 px above the finger: its core then lies on the
            lips). Only the lips' model, not the face's skin: a finger over the mouth is skin-coloured and stays
            hand. 0: the core is forced everywhere. On the 16 annotated frames (lead s15): every-frame analysis
            95.33 % / 3.06 % -> 95.22 % / 2.96 %, every other frame 95.02 / 2.72 -> 94.93 / 2.65.
        lips_margin: log-likelihood margin (nats) in the hand's favour in that decision.
    """

    inner: float = 0.06
    outer: float = 0.04
    ring: float = 0.12
    margin: float = 0.5
    softness: float = 1.0
    blur: float = 0.02
    guide_radius: float = 0.04
    guide_eps: float = 1e-3
    guide_step: int = 2
    min_samples: int = 50
    max_samples: int = 1000
    min_std: tuple[float, float, float] = (2.0, 1.0, 1.0)
    clusters: int = 3
    lips_depth: float = 0.03
    lips_margin: float = 1.0


@dataclass(frozen=True)
class Gaussian:
    """A colour model: ``mean (3,)``, ``inv (3, 3)`` inverse covariance, ``logdet`` of the covariance."""

    mean: np.ndarray
    inv: np.ndarray
    logdet: float

    @classmethod
    def fit(cls, samples: np.ndarray, min_std: tuple[float, float, float], max_samples: int) -> "Gaussian":
        """Fit to ``samples (N, 3)`` (a regular subsample of at most ``max_samples``), variances floored."""
        x = _subsample(samples, max_samples).astype(np.float64)
        mean = x.mean(0)
        cov = _cov(x) if len(x) > 1 else np.zeros((3, 3))
        inv, logdet = _floored_inverse(cov[None], min_std)
        return cls(mean, inv[0], float(logdet[0]))

    def loglik(self, x: np.ndarray) -> np.ndarray:
        """(...,) Gaussian log-likelihood (up to a constant) of ``x (..., 3)``: ``-0.5 * (d' inv d + logdet)``.

        In place on two temporaries, the three products summed in ``.sum(-1)``'s order (the same values bit for bit
        as the one-line form, at 2.6x less CPU time)."""
        d = x - self.mean
        q = d @ self.inv
        q *= d
        s = q[..., 0] + q[..., 1]
        s += q[..., 2]
        s += self.logdet
        s *= -0.5
        return s


@dataclass(frozen=True)
class Mixture:
    """A few :class:`Gaussian` colour clusters with weights: ``loglik`` is the mixture's."""

    parts: tuple[Gaussian, ...]
    logw: np.ndarray

    @classmethod
    def fit(cls, samples: np.ndarray, k: int, min_std: tuple[float, float, float], max_samples: int) -> "Mixture":
        """k-means (OpenCV's k-means++, seeded: the same samples give the same clusters) into ``k`` clusters, one
        Gaussian each (hard assignment; clusters of fewer than 4 samples dropped), all fitted at once. Fewer than
        40 samples: one :meth:`Gaussian.fit` of them all, however few."""
        x = np.ascontiguousarray(_subsample(samples, max_samples), np.float32)
        k = max(1, min(k, len(x) // 20))
        if k == 1:
            return cls((Gaussian.fit(x, min_std, max_samples),), np.zeros(1))
        cv2.setRNGSeed(0)
        _, labels, _ = cv2.kmeans(x, k, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 0.1), 1,
                                  cv2.KMEANS_PP_CENTERS)
        labels = labels.ravel()
        counts = np.bincount(labels, minlength=k)
        keep = counts >= 4
        member = keep[labels]
        lab = (np.cumsum(keep) - 1)[labels[member]]  # the kept clusters renumbered 0 ..
        xs, n = x[member].astype(np.float64), counts[keep].astype(np.float64)
        one_hot = (lab == np.arange(len(n))[:, None]).astype(np.float64)  # (k, N)
        means = one_hot @ xs
        means /= n[:, None]
        d = xs - means[lab]
        cov = np.swapaxes(one_hot[:, :, None] * d, 1, 2) @ d  # (k, 3, N) @ (N, 3)
        cov /= (n - 1)[:, None, None]
        invs, logdets = _floored_inverse(cov, min_std)
        return cls(tuple(Gaussian(m, i, float(ld)) for m, i, ld in zip(means, invs, logdets)), np.log(n / n.sum()))

    def loglik(self, x: np.ndarray) -> np.ndarray:
        """(...,) the mixture's log-likelihood (up to a constant) of ``x (..., 3)``: each cluster's
        :meth:`Gaussian.loglik` plus its log weight, summed in log space."""
        ll = np.stack([g.loglik(x) + w for g, w in zip(self.parts, self.logw)])
        top = ll.max(0)
        ll -= top
        np.exp(ll, out=ll)
        s = ll.sum(0)
        np.log(s, out=s)
        s += top
        return s


def _floored_inverse(cov: np.ndarray, min_std: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(k, 3, 3) inverses and (k,) log-determinants of the covariances ``cov (k, 3, 3)`` with each channel's
    variance floored at ``min_std ** 2`` (and 1e-6 added to the diagonal)."""
    floor = np.asarray(min_std, np.float64) ** 2
    diag = np.diagonal(cov, axis1=1, axis2=2)
    cov = cov + np.maximum(floor - diag, 0.0)[:, :, None] * np.eye(3) + 1e-6 * np.eye(3)
    return np.linalg.inv(cov), np.linalg.slogdet(cov)[1]


def colour_split(mask: np.ndarray, lab: np.ndarray, size: float, params: ColourSplitParams = ColourSplitParams(),
                 core_from: np.ndarray | None = None, lips: np.ndarray | None = None) -> np.ndarray:
    """The landmark mask with its band re-decided by colour.

    Args:
        mask: (h, w) float32 in [0, 1], one hand's landmark-shaped mask (a region of the frame around it).
        lab: (h, w, 3) float32 CIE LAB of the plate over the same region (L in [0, 100]).
        size: the hand's size in px.
        core_from: (h, w) the mask whose erosion is the core (default ``mask``): a hand's own landmark shape inside
            a wider ``mask`` (the shapes it sweeps over), so that the wider part is decided by colour, never forced.
        lips: (h, w) the face's lips over the same region (nonzero inside), or None (``lips_depth``).

    Returns:
        (h, w) float32 in [0, 1]: 1 in the core (``core_from`` or the mask, eroded by ``inner``), the soft colour
        decision in the band, 0 outside (the mask dilated by ``outer``).
    """
    binary = (mask >= 0.5).astype(np.uint8)
    own = binary if core_from is None else (core_from >= 0.5).astype(np.uint8)
    r_in = max(1.0, params.inner * size)
    r_out = max(0.0, params.outer * size)
    r_ring = max(1.0, params.ring * size)
    inside = cv2.distanceTransform(own, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # to the nearest non-hand pixel
    outside = cv2.distanceTransform(1 - binary, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)  # to the nearest hand pixel
    core = inside > r_in
    reach = outside <= r_out
    ring = (outside > r_out) & (outside <= r_out + r_ring)
    at_core, at_ring = np.flatnonzero(core), np.flatnonzero(ring)
    if len(at_core) < params.min_samples or len(at_ring) < params.min_samples:
        return mask
    flat = lab.reshape(-1, 3)
    hand = Mixture.fit(flat[_subsample(at_core, params.max_samples)], params.clusters, params.min_std,
                       params.max_samples)
    face = Mixture.fit(flat[_subsample(at_ring, params.max_samples)], params.clusters, params.min_std,
                       params.max_samples)
    band = np.flatnonzero(reach & ~core)
    x = flat[band]
    ratio = (hand.loglik(x) - face.loglik(x) + params.margin).astype(np.float32)
    p = core.astype(np.float32)  # the soft decision on the band's pixels only
    p.reshape(-1)[band] = _soft_decision(ratio, params.softness)
    decided = reach | core  # where the decision stands after smoothing (a core pixel released below keeps its own)
    if lips is not None and params.lips_depth > 0:
        core = _release_lips(p, core, lips.astype(bool), inside, outside, r_in, r_out, flat, hand, size, params)
    sigma = params.blur * size
    if params.guide_radius > 0:  # smoothed along the plate's edges: the decision's soft edge sits on the picture's
        p = edge_aware_smooth(p, lab[..., 0] * np.float32(0.01), max(1.0, params.guide_radius * size),
                              params.guide_eps, params.guide_step)
    elif sigma > 0.3:
        p = cv2.GaussianBlur(p, (0, 0), sigma)
    else:
        return p
    p[~decided] = 0.0  # the decision stands where it was made; the core is hand
    p[core] = 1.0
    return p


def _soft_decision(ratio: np.ndarray, softness: float) -> np.ndarray:
    """The soft hand decision of log-likelihood ratios (nats, the margin included): a logistic of ``ratio /
    softness``, clipped at +-30 so ``exp`` never overflows."""
    return 1.0 / (1.0 + np.exp(-np.clip(ratio / softness, -30, 30)))


def _release_lips(p: np.ndarray, core: np.ndarray, lips: np.ndarray, inside: np.ndarray, outside: np.ndarray,
                  r_in: float, r_out: float, flat: np.ndarray, hand: Mixture, size: float,
                  params: ColourSplitParams) -> np.ndarray:
    """The core's outer layer over the face's lips (``lips_depth`` deep) decided by colour: the hand model against
    a model of the lips seen beside the hand (not the face's skin, which a finger matches). Writes the soft decision
    into ``p`` and returns the core without the released pixels (the core unchanged when too few lips are seen)."""
    seen = np.flatnonzero(lips & (outside > r_out))
    doubt = lips & core & (inside <= r_in + params.lips_depth * size)
    doubted = np.flatnonzero(doubt)
    if len(seen) < params.min_samples or len(doubted) == 0:
        return core
    lip = Mixture.fit(flat[_subsample(seen, params.max_samples)], params.clusters, params.min_std, params.max_samples)
    released = core & ~doubt
    sure = np.flatnonzero(released)
    if len(sure) >= params.min_samples:  # the hand's colour from the core the lips do not reach
        hand = Mixture.fit(flat[_subsample(sure, params.max_samples)], params.clusters, params.min_std,
                           params.max_samples)
    x = flat[doubted]
    ratio = (hand.loglik(x) - lip.loglik(x) + params.lips_margin).astype(np.float32)
    p.reshape(-1)[doubted] = _soft_decision(ratio, params.softness)
    return released


def edge_aware_smooth(p: np.ndarray, guide: np.ndarray, radius: float, eps: float, step: int = 1) -> np.ndarray:
    """He and Sun's fast guided filter of ``p (h, w)`` by ``guide (h, w)``, both float32 in [0, 1]: the local linear
    model ``p ~ a * guide + b`` fitted in (2r+1)^2 windows on every ``step``-th pixel, its coefficients averaged and
    brought back to full size, then applied to the full-size guide; returns (h, w) float32 clipped to [0, 1]."""
    h, w = p.shape
    if step > 1:
        small = (max(1, w // step), max(1, h // step))
        gs = cv2.resize(guide, small, interpolation=cv2.INTER_AREA)
        ps = cv2.resize(p, small, interpolation=cv2.INTER_AREA)
        r = max(1, int(round(radius / step)))
    else:
        gs, ps, r = guide, p, max(1, int(round(radius)))
    k = (2 * r + 1, 2 * r + 1)

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, k, borderType=cv2.BORDER_REPLICATE)

    mg, mp = mean(gs), mean(ps)
    a = (mean(gs * ps) - mg * mp) / (mean(gs * gs) - mg * mg + np.float32(eps))
    b = mp - a * mg
    ma, mb = mean(a), mean(b)
    if step > 1:
        ma = cv2.resize(ma, (w, h), interpolation=cv2.INTER_LINEAR)
        mb = cv2.resize(mb, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(ma * guide + mb, 0.0, 1.0).astype(np.float32)


def _subsample(index: np.ndarray, max_samples: int) -> np.ndarray:
    """The regular subsample of ``index (N, ...)`` the fits take (every :func:`_step`-th entry): at most
    ``max_samples`` are left, so gathering only those before :meth:`Mixture.fit` gives the same fit (it keeps them
    whole)."""
    return index[::_step(len(index), max_samples)]


def _step(n: int, max_samples: int) -> int:
    """The subsampling step that leaves at most ``max_samples`` of ``n`` samples: ``ceil(n / max_samples)``."""
    return max(1, -(-n // max_samples))


def _cov(x: np.ndarray) -> np.ndarray:
    """(3, 3) ``np.cov(x, rowvar=False)`` of ``x (N, 3)`` float64, N > 1, computed as it does (the same values bit
    for bit) without its argument handling."""
    d = x - x.mean(0)
    c = np.dot(d.T, d)
    c *= np.true_divide(1, len(x) - 1)
    return c
