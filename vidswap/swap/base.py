"""The swap-backend contract: the records a swap core receives and returns, and the :class:`SwapCore` base class.

A swap core turns aligned target face crops plus a prepared source identity into swapped face crops with an
alpha. Every core declares

* its registry name (``name``, the ``swap.core`` value; :mod:`vidswap.swap.registry`);
* the crop it wants (``crop``: a :class:`~vidswap.faces.align.CropSpec` -- a mesh crop, a five-point template
  crop such as ArcFace 128, or its own alignment function); the render stage aligns the plate with it;
* what it reads of a source photo (``needs``, a subset of :data:`SOURCE_NEEDS`);

and implements ``prepare`` (once per source identity) and ``swap`` (per batch of crops). The render stage
(:mod:`vidswap.render`) owns the order: crops the core asks for -> ``core.swap`` -> refiner -> compositor.

Coordinates: crops are square, ``S = crop.size`` pixels, pixel centres at integer coordinates; landmarks are
(478, 3) MediaPipe-layout points in the crop's pixels with z in the same pixel scale (smaller z = closer). Pose
fields follow :mod:`vidswap.faces.pose`: ``x = s · R · (x_c + δ) + t`` maps the canonical frame to crop pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Sequence

from vidswap.sections import PassthroughConfig  # noqa: F401 - declared there (torch-free)

if TYPE_CHECKING:  # this module imports no torch: a pass-through job builds its core without it
    import torch
    from torch import Tensor

    from vidswap.faces.align import CropSpec
    from vidswap.faces.tracksfile import TrackAnalysis

#: What ``SwapCore.prepare`` may read of a :class:`SourceFace`: the photo, its landmarks, its head pose (``x_c_obs``,
#: yaw / pitch / roll), its identity embedding, its expression.
SOURCE_NEEDS = frozenset({"image", "landmarks", "pose", "embedding", "expression"})


@dataclass
class SourceFace:
    """One analysed source photo.

    Attributes:
        image: (3, H, W) float tensor in [0, 1] (any range; the geometric render copies values through).
        landmarks: (478, 3) in the image's pixels.
        x_c_obs: (478, 3) the observation in the canonical frame (``Pose.x_c_obs``).
        yaw, pitch, roll: head pose in degrees (:mod:`vidswap.faces.pose` convention).
        embedding: (D,) SFace identity embedding, or None.
        expression: (478, 3) expression offset δ of this photo if known (canonical units), else None.
        occlusion: (H, W) in [0, 1], what covers the face in the photo (1: a hand over it), or None (nothing
            found); the geometric core leaves it out of the identity's appearance.
    """

    image: Tensor
    landmarks: Tensor
    x_c_obs: Tensor
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    embedding: Tensor | None = None
    expression: Tensor | None = None
    occlusion: Tensor | None = None


@dataclass(kw_only=True)
class SourceIdentity:
    """The base of every core's prepared identity (output of :meth:`SwapCore.prepare`).

    Cores subclass it with their own fields (texture crops, an identity latent, a feature volume and keypoints
    ...). ``embedding`` is the common field: the (D,) mean SFace identity of the source photos, L2-normalised,
    or None; refiners and tuning condition on it.
    """

    embedding: Tensor | None = None

    def tensors(self) -> dict[str, Tensor]:
        """Every tensor the identity holds, by field name (cache keys hash these)."""
        from torch import Tensor

        return {f.name: v for f in fields(self) if isinstance(v := getattr(self, f.name), Tensor)}


@dataclass
class SwapBatch:
    """B aligned target crops (in the core's :class:`~vidswap.faces.align.CropSpec`) and their analysis.

    Attributes:
        target_crops: (B, 3, S, S) float RGB in [0, 1] (the display-referred plate).
        target_landmarks: (B, 478, 3) in crop pixels.
        s: (B,), R: (B, 3, 3), t: (B, 3): pose, canonical -> crop pixels.
        expression: (B, 478, 3) expression offsets δ (canonical units).
        confidence: (B,) landmark / track confidence in [0, 1].
        frame_to_crop: (B, 2, 3) the alignment each crop was cut with (frame pixels -> crop pixels).
        occluder: (B, 1, S, S) in [0, 1], what is in front of the face in crop space (tracked hands, the user's
            matte; 1 = occluder), or None (nothing). A core may keep it out of what it measures on the plate.
    """

    target_crops: Tensor
    target_landmarks: Tensor
    s: Tensor
    R: Tensor
    t: Tensor
    expression: Tensor
    confidence: Tensor
    frame_to_crop: Tensor
    occluder: Tensor | None = None

    def __len__(self) -> int:
        return int(self.target_crops.shape[0])

    def select(self, rows: Sequence[int] | Tensor) -> "SwapBatch":
        """The batch's ``rows`` (every field indexed alike)."""
        import torch

        index = torch.as_tensor(rows, dtype=torch.long, device=self.target_crops.device)
        return SwapBatch(**{f.name: None if (v := getattr(self, f.name)) is None else v[index] for f in fields(self)})

    def to(self, device: torch.device | str) -> "SwapBatch":
        """The batch on ``device``."""
        return SwapBatch(**{f.name: None if (v := getattr(self, f.name)) is None else v.to(device)
                            for f in fields(self)})

    @staticmethod
    def concat(batches: Sequence["SwapBatch"]) -> "SwapBatch":
        """Batches one after the other (same crop size; a batch without an occluder counts as unoccluded)."""
        import torch

        out = {f.name: torch.cat([getattr(b, f.name) for b in batches]) for f in fields(SwapBatch)
               if f.name != "occluder"}
        if any(b.occluder is not None for b in batches):
            out["occluder"] = torch.cat([b.occluder if b.occluder is not None else
                                         torch.zeros_like(b.target_crops[:, :1]) for b in batches])
        return SwapBatch(**out)


@dataclass
class SwapResult:
    """Swapped crops.

    Attributes:
        crops: (B, 3, S, S) swapped face crops (undefined where alpha is 0).
        alpha: (B, 1, S, S) in [0, 1]: where the crop replaces the plate (the core's own mask; the compositor
            multiplies its region, occlusion and confidence masks in).
        driven_landmarks: (B, 478, 3) the swapped face's landmarks in crop pixels, when the core moves geometry.
        confidence: (B, 1, S, S) per-pixel confidence of the result (e.g. texture visibility), or None.
    """

    crops: Tensor
    alpha: Tensor
    driven_landmarks: Tensor | None = None
    confidence: Tensor | None = None


class SwapCore(ABC):
    """What every swap core implements.

    Class attributes:
        name: the registry name (``swap.core``).
        needs: what :meth:`prepare` reads of a :class:`SourceFace` (a subset of :data:`SOURCE_NEEDS`); a core
            that needs nothing gets no source analysis.
        passes_through: True for a core that never changes a pixel (:class:`PassthroughCore`): the pipeline then
            runs no face analysis and copies the frames.

    Instance attributes:
        crop: the :class:`~vidswap.faces.align.CropSpec` the core wants its target crops in.
        config: the core's settings (its ``swap.<name>`` section, a frozen dataclass), part of cache keys.
    """

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    passes_through: ClassVar[bool] = False
    crop: CropSpec
    config: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        unknown = set(cls.needs) - SOURCE_NEEDS
        if unknown:
            raise TypeError(f"{cls.__name__}.needs has unknown entries {sorted(unknown)}; "
                            f"choose from {sorted(SOURCE_NEEDS)}")

    @abstractmethod
    def prepare(self, sources: list[SourceFace]) -> SourceIdentity:
        """Turn one or more source photos of one actor into a reusable identity (once per job and target)."""

    @abstractmethod
    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        """Swap a batch of aligned target crops, batched on the batch's torch device.

        With ``render_threads`` > 1 two batches (of the same or different tracks) may be swapped at once from two
        threads, in any order: a core keeps no per-call state on ``self`` (read-only models are fine)."""

    def runtime(self) -> str:
        """What actually runs the core, for the run report (e.g. the onnxruntime provider); "" when nothing to say."""
        return ""

    def crop_for(self, track: TrackAnalysis) -> CropSpec:
        """The crop for one target track (default: :attr:`crop`). A core may size it per track, e.g. to render
        the face at the plate's resolution; it must depend on the analysis only (farm chunks agree)."""
        return self.crop

    def for_target(self, identity: SourceIdentity, track: TrackAnalysis) -> SourceIdentity:
        """The prepared identity specialised for one target track, from that track's analysis (default: the
        identity itself). E.g. the geometric core's relit appearance adds the track's light."""
        return identity


class PassthroughCore(SwapCore):
    """Frames untouched (checks the I/O path): no face analysis runs and every frame is copied.

    If it is called anyway, it hands the target crops back with a zero alpha, so the plate stays as it is.
    """

    name = "passthrough"
    passes_through = True

    def __init__(self, config: PassthroughConfig | None = None, crop: CropSpec | None = None):
        self.config = config or PassthroughConfig()
        self._crop = crop

    @property
    def crop(self) -> CropSpec:
        """The given crop, or a 256-px mesh crop (made when first asked for: building the core imports no torch)."""
        if self._crop is None:
            from vidswap.faces.align import MeshCrop

            self._crop = MeshCrop(size=256)
        return self._crop

    @crop.setter
    def crop(self, value: CropSpec) -> None:
        self._crop = value

    def prepare(self, sources: list[SourceFace]) -> SourceIdentity:
        return SourceIdentity()

    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        import torch

        crops = batch.target_crops
        alpha = torch.zeros_like(crops[:, :1])
        return SwapResult(crops=crops, alpha=alpha, driven_landmarks=batch.target_landmarks)


class Refiner(Protocol):
    """A post-core generator (e.g. a per-clip tuned :class:`~vidswap.swap.generator.SwapGenerator`), keyed by
    the target's track id: returns the refined result (or ``result`` itself when it has nothing to add)."""

    def __call__(self, track_id: int, batch: SwapBatch, result: SwapResult,
                 identity: SourceIdentity) -> SwapResult: ...


@dataclass
class TrackRefiners:
    """A :class:`Refiner` that dispatches to the refiner of each track; tracks without one keep the core's result."""

    refiners: dict[int, Refiner]

    def __call__(self, track_id: int, batch: SwapBatch, result: SwapResult, identity: SourceIdentity) -> SwapResult:
        refiner = self.refiners.get(track_id)
        return result if refiner is None else refiner(track_id, batch, result, identity)


def build_passthrough(config: PassthroughConfig, context: Any) -> PassthroughCore:
    """The registry's builder of ``swap.core: passthrough`` (``context`` unused)."""
    return PassthroughCore(config)
