"""The job config's stage sections, declared once here in a module that imports no torch, kornia, OpenCV or
ONNX Runtime, so that building a job's config (``vidswap.config``) stays cheap: ``analysis`` and ``smoothing``
(used by :mod:`vidswap.faces.analyze`), ``target`` (:mod:`vidswap.faces.targets`), ``composite``
(:mod:`vidswap.composite.compositor`), ``tune`` (:mod:`vidswap.train.tune.params`) and the pass-through core's
``swap.passthrough``. Those modules re-export their section under its old name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vidswap.errors import ConfigError

if TYPE_CHECKING:
    import torch

#: the face parts a swap may cover (:mod:`vidswap.composite.masks`)
SWAP_REGIONS = ("eyes", "brows", "nose", "mouth", "skin")
#: the names ``composite.regions`` accepts: the parts, or ``face`` for all of them
REGION_NAMES = (*SWAP_REGIONS, "face")


def check_regions(names: Iterable[str], key: str = "composite.regions") -> tuple[str, ...]:
    """The selection as a tuple, validated.

    Raises:
        ConfigError: (exit 2) an empty selection or an unknown name; the message lists the valid names.
    """
    sel = tuple(names)
    if not sel:
        raise ConfigError(f"{key} is empty; list at least one of {', '.join(REGION_NAMES)}")
    bad = [n for n in sel if n not in REGION_NAMES]
    if bad:
        raise ConfigError(f"{key}: unknown face region(s) {', '.join(map(repr, bad))}; choose from "
                          f"{', '.join(SWAP_REGIONS)} (or face: all of them)")
    return sel


@dataclass(frozen=True)
class AnalysisConfig:
    """Face detection, landmarks, identity and tracking parameters."""

    detector_size: int = 320  # longest side of the detector input (px)
    score_threshold: float = 0.6
    min_face: int = 24  # faces smaller than this (px, box width) are ignored
    angles: tuple[int, ...] = (0,)  # extra frame rotations tried when nothing is found, e.g. [0, 90, 270]
    identity_every: int = 10  # identity embedding for new tracks and every N frames
    max_gap: int = 8  # frames a track may be missing and still be bridged by interpolation
    cut_threshold: float = 6.0  # a shot cut is a frame difference this many times the local median
    hands: bool = True  # track hands (palm detection, pose near faces, hand landmarks) for the occlusion mask
    # the track's appearance model (relit swap: the plate's light, broad light, sharpness) unwraps the faces of every
    # N-th analysed frame (1: every frame, thinned evenly once more than 2 x 48 are held); previews use 4
    appearance_every: int = 1
    # the plate's skin colour statistics (the compositor's colour match) of every N-th analysed frame and of each
    # frame where a face appears; the frames between are interpolated before the track's smoothing (sigma 3 frames);
    # previews use 4
    colour_every: int = 1

    def __post_init__(self) -> None:
        for name in ("appearance_every", "colour_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
                raise ConfigError(f"analysis.{name} must be an integer in [1, 64], got {value!r}")


@dataclass(frozen=True)
class SmoothingConfig:
    """Temporal smoothing of landmarks and pose per track."""

    method: Literal["rts", "one_euro", "none"] = "rts"
    one_euro_min_cutoff: float = 1.0  # Hz: cut-off when the face is still
    one_euro_beta: float = 20.0  # speed coefficient (face-size units): higher = less lag on fast motion
    one_euro_d_cutoff: float = 1.0  # Hz: cut-off of the speed estimate
    rts_process_noise: float = 1.0  # expected motion (face-size units); larger follows faster moves
    rts_measurement_noise: float = 0.0  # landmark noise in face-size units; 0 = estimated from the track
    rts_gate: float = 4.0  # innovation (sigmas) above which a frame is treated as a sudden real move
    # follow the face's image motion between frames (optical flow) and smooth only what it does not explain
    follow_image_motion: bool = True
    # with follow_image_motion: the manoeuvre gate (in place of rts_gate) of the landmarks' departure from the
    # image motion (0: none; the fast moves are the image's, fast departures mostly landmark noise)
    motion_gate: float = 0.0
    # while a hand covers part of the face (the tracked hands' occlusion of the raw landmarks), the landmarks'
    # measurement noise (std) is taken as (1 + this x the fraction of the face's points behind the hand) x the
    # track's, so the face follows its image motion and neighbouring frames more than the per-frame reading
    # there (0: off; needs analysis.hands and the hand tracker's hold_face)
    occluded_noise: float = 20.0


@dataclass(frozen=True)
class TargetConfig:
    """Which face(s) to replace."""

    mode: Literal["largest", "all", "index", "reference"] = "largest"
    index: int | None = None  # with mode=index: the K-th track (by first appearance)
    reference: str | None = None  # with mode=reference: an image of the face to replace
    map: tuple[str, ...] = ()  # "track:source" pairs, e.g. ["0:0", "1:1"]
    # two tracks of a shot that are never on screen together and whose mean identity embeddings have at least this
    # cosine similarity are one person (a face lost while turned away or out of frame and found again): largest and
    # reference replace all of that person's tracks (vidswap.faces.targets.same_person_groups); 1: each track alone
    same_person: float = 0.5


@dataclass(frozen=True)
class CompositeConfig:
    """Masks, colour matching and blending back into the plate."""

    blend: Literal["feather", "laplacian", "poisson"] = "feather"
    colour: Literal["reinhard", "histogram", "none"] = "reinhard"
    # reinhard's contrast (L*a*b* std) gain per channel is limited to [1 / limit, limit]; 1 matches the means only
    # (the render keeps its own detail contrast). Lower limits keep more of the source's detail (ArcFace up) at a
    # cost in seam and flicker on the relit swap (benchmarks/RESULTS.md, skintone-s9)
    colour_std_limit: float = 3.0
    # the fraction of reinhard's L* gain undone on the face around its central features (forehead, temples, cheeks,
    # jaw; not the eyes, brows, nose, mouth, nor the paste boundary), in the fine band: the source's detail that the
    # ArcFace judge recognises; auto: RELIT_KEEP_CONTRAST for the geometric core's relit appearance, 0 for every other
    # core (RESULTS.md, relgrace-s10)
    colour_keep_contrast: Literal["auto"] | float = "auto"
    # reinhard's a* and b* std gains at most this (the chroma spread is never raised further; their floor stays
    # 1 / colour_std_limit); auto: RELIT_CHROMA_LIMIT for the geometric core's relit appearance, colour_std_limit for
    # every other core. The relit face takes its colour from the plate's own light on a neutral albedo: a gain of 2-3
    # on a graded plate turned the eye sockets green (RESULTS.md, lead s41)
    colour_chroma_limit: Literal["auto"] | float = "auto"
    feather: float = 0.06  # feather width as a fraction of the face width
    # mask erosion as a fraction of the face width; auto: 0 for the geometric core's relit appearance (its face
    # reaches the outline, where the plate's own edges are), 0.02 for every other core (RESULTS.md, seam-s12)
    erode: Literal["auto"] | float = "auto"
    regions: tuple[str, ...] = ("skin", "eyes", "brows", "nose", "mouth")
    occlusion: bool = True
    # the plate's noise or film grain re-applied to the swapped face (vidswap.composite.grain); auto: each track's grain
    # as the analysis measured it from the plate's frame-to-frame noise around the face, where it is strong enough to
    # see (AUTO_GRAIN_RANGE), none elsewhere; true: the measured grain at any level (each frame's own ring measure
    # where a track has none, e.g. a still); false: off
    grain: Literal["auto"] | bool = "auto"
    hands: bool = True  # keep tracked hands in front of the face (needs analysis.hands)
    matte: str | None = None  # the artist's occlusion matte sequence, e.g. roto/matte.####.png (1 = occluder)
    matte_output: str | None = None  # write the occlusion matte used per frame, e.g. debug/occlusion.####.png
    edge_match: bool = False  # the plate's colour and fine detail along the paste boundary (no tone step, no cut-off)
    # a smooth lightness offset over the face that meets the plate's along the boundary (no tone step, features
    # untouched); auto: on for the geometric core's relit appearance, true / false: on / off for every core.
    # tone_order: the offset's polynomial order over the crop (0 constant, 1 plane, 2 quadratic); auto: 0 for the
    # relit appearance (a constant per frame: the quadratic's changing shape raised the jitter and, on pexels x
    # grace, the flicker; RESULTS.md seamjit-s13), 2 for every other core
    tone_match: Literal["auto"] | bool = "auto"
    tone_order: Literal["auto"] | int = "auto"
    mask_size: int | None = 384  # feature masks + occlusion test on crops of at most this side (None: the crop's)

    region_feather: float = 0.03  # with regions a part of the face: the soft edge between swapped and kept parts
    # the face's low-frequency difference from the plate (its blur by band_sigma, fractions of the face size) crosses
    # the paste boundary over this wider ramp; the detail keeps `feather`'s (0: off; whole-face swaps only); auto:
    # RELIT_BAND_FEATHER for the geometric core's relit appearance, 0 for every other core (RESULTS.md, seam-s12)
    band_feather: Literal["auto"] | float = "auto"
    band_sigma: float = 0.03
    # the swapped face smeared along its own motion over this share of the frame interval, as the plate's camera
    # smears it (vidswap.composite.motion_blur): 0.5 = a 180-degree shutter, 1 = 360, 0: off (the render as drawn);
    # auto: the shutter the analysis measured from the plate's moving faces (AUTO_SHUTTER where too few move)
    motion_blur: Literal["auto"] | float = "auto"

    def __post_init__(self) -> None:
        mb = self.motion_blur
        if mb != "auto" and (isinstance(mb, (bool, str)) or not 0.0 <= float(mb) <= 1.0):
            raise ConfigError(f"composite.motion_blur must be 'auto' or a number in [0, 1] (the shutter's share of "
                              f"the frame interval: 0.5 = 180 degrees; 0 = off), got {mb!r}")
        if not 1.0 <= self.colour_std_limit <= 10.0:
            raise ConfigError(f"composite.colour_std_limit must be in [1, 10], got {self.colour_std_limit}")
        cl = self.colour_chroma_limit
        if cl != "auto" and (isinstance(cl, (bool, str)) or not 1.0 <= float(cl) <= 10.0):
            raise ConfigError(f"composite.colour_chroma_limit must be 'auto' or a number in [1, 10], got {cl!r}")
        kc = self.colour_keep_contrast
        if kc != "auto" and (isinstance(kc, (bool, str)) or not 0.0 <= float(kc) <= 1.0):
            raise ConfigError(f"composite.colour_keep_contrast must be 'auto' or a number in [0, 1], got {kc!r}")
        check_regions(self.regions)  # ConfigError (exit 2) naming the valid regions
        for name in ("erode", "band_feather"):
            v = getattr(self, name)
            if v != "auto" and (isinstance(v, (bool, str)) or not 0.0 <= float(v) <= 0.3):
                raise ConfigError(f"composite.{name} must be 'auto' or a number in [0, 0.3] (fraction of the face "
                                  f"size), got {v!r}")
        if self.tone_order != "auto" and (isinstance(self.tone_order, bool) or self.tone_order not in (0, 1, 2)):
            raise ConfigError(f"composite.tone_order must be 'auto', 0, 1 or 2, got {self.tone_order!r}")
        if isinstance(self.band_sigma, (bool, str)) or not 0.0 < float(self.band_sigma) <= 0.2:
            raise ConfigError(f"composite.band_sigma must be in (0, 0.2] (fraction of the face size), got "
                              f"{self.band_sigma!r}")
        if not 0.0 <= self.region_feather <= 0.15:
            raise ConfigError(f"composite.region_feather must be in [0, 0.15] (fraction of the face size), got "
                              f"{self.region_feather}")


@dataclass(frozen=True)
class TuneParams:
    """Settings of per-clip generator tuning.

    Attributes:
        enabled: run tuning at all (the pipeline's switch; ``--tune/--no-tune``).
        retune: tune again even when the job folder has weights for these inputs (``--retune``).
        steps: optimisation steps on CUDA.
        cpu_steps: optimisation steps on CPU (tuning is ~50x slower there).
        lr: Adam learning rate of the network weights.
        gain_lr: learning rate of the zero-initialised output gains γ.
        batch: samples per step (self-reenactment pairs + swap frames).
        swap_fraction: share of the batch given to the swap branch (rounded to whole consecutive pairs).
        max_frames: frames sampled from the clip (evenly, as consecutive pairs).
        pairs_per_frame: texture frames rendered onto each sampled frame (self-reenactment pool).
        texture_frames: frames (evenly spread) that texture the self-reenactment renders.
        val_fraction: share of the consecutive pairs held out for validation.
        val_every: steps between validations (early stopping).
        patience: validations without improvement before stopping.
        min_delta: relative improvement of the validation loss that counts.
        w_l1, w_ssim: self-reenactment reconstruction weights (L1, multi-scale 1 - SSIM).
        w_identity: identity hinge weight (swap branch): SFace cosine to the source below the render's.
        identity_every: apply the identity term every N steps (SFace forward + backward is ~40% of a CPU step).
        identity_margin: drops of the SFace cosine below the render's that the hinge tolerates (batch-size
            numerical noise of the identity network is ~1e-4; the acceptance budget is 0.02).
        w_temporal, w_mask_temporal: flow-warped output and mask consistency (swap branch).
        w_mask: blend mask kept near the render's alpha.
        w_locality: PTI weight regulariser (mean squared distance to the starting weights).
        channels: generator channels when no checkpoint is given.
        seed: seeds initialisation and sampling.
        checkpoint: safetensors file of a generic generator to start from (None: the zero-gain initialisation,
            which is exactly the swap core's render).
    """

    # switches
    enabled: bool = False
    retune: bool = False
    # budget and optimiser
    steps: int = 300
    cpu_steps: int = 40
    lr: float = 1e-3
    gain_lr: float = 1e-2
    batch: int = 8
    swap_fraction: float = 0.5
    # the training set
    max_frames: int = 48
    pairs_per_frame: int = 3
    texture_frames: int = 8
    # validation and early stopping
    val_fraction: float = 0.15
    val_every: int = 5
    patience: int = 4
    min_delta: float = 1e-3
    # loss weights
    w_l1: float = 1.0
    w_ssim: float = 0.5
    w_identity: float = 1.0
    identity_every: int = 2
    identity_margin: float = 0.005
    w_temporal: float = 1.0
    w_mask_temporal: float = 0.5
    w_mask: float = 1.0
    w_locality: float = 10.0
    # the generator
    channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    seed: int = 0
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if len(self.channels) != 4:
            raise ValueError(f"channels must list 4 widths (encoder levels), got {self.channels!r}")

    def steps_for(self, device: torch.device | str) -> int:
        """The step budget on ``device``: ``steps`` on CUDA, ``cpu_steps`` elsewhere."""
        import torch  # only tuning asks, and it runs torch anyway

        return self.steps if torch.device(device).type == "cuda" else self.cpu_steps


@dataclass(frozen=True)
class PassthroughConfig:
    """The pass-through core has no settings (``swap.passthrough: {}``)."""
