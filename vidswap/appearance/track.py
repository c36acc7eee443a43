"""A face track's own appearance in texture space, built in the analyze pass.

Frames of a track are unwrapped into texture space (linear light, with visibility); the track's appearance is
the per-texel weighted median over a bounded, evenly spread sample of them -- robust to blinks, speech and brief
occluders, which move while the skin stays. Its lighting is a nine-band SH fit against the track's mean mesh
normals in plate (camera) coordinates, and its *broad light* is what the plate shows at broad scales once that
SH shading is divided out: light fall-off, cast shadows, and the skin colour under this shot's light.

Everything a render needs is in :class:`TrackAppearance` (stored in the tracks file), so a frame's render depends
only on the analysis and that frame, and farm chunks stay bit-identical.

:class:`AppearanceSampler` collects the samples while the analyze pass streams: every ``stride``-th analysed frame,
the stride doubling whenever more than ``2 * max_frames`` are held, so memory is bounded and which frames are kept
depends only on the frame numbers, not on batch boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from vidswap.appearance.quantile import weighted_quantile_along
from vidswap.appearance.encoding import luminance, srgb_to_linear_within
from vidswap.composite.grain import TRACK_FIELDS
from vidswap.appearance.lighting import fit_sh, robust_lowpass, sh_shading
from vidswap.appearance.texture_space import TextureSpace, channel_length, unwrap
from vidswap.appearance.texture import texture_confidence

__all__ = ["TRACK_TEXTURE", "TrackAppearance", "FaceSample", "AppearanceSampler", "weighted_median", "unwrap_frames",
           "build_track_appearance"]

_EPS = 1e-6
#: the size of the texture the track model lives in (broad light and the temporal ratio are low-pass)
TRACK_TEXTURE = 128
#: side of the z-buffer of the plate's visibility test (a low-pass weight: coarse is enough)
VISIBILITY_RESOLUTION = 64


@dataclass
class TrackAppearance:
    """The appearance model of one track (numpy, as stored in the tracks file).

    mean: (3, U, U) float16 linear weighted median of the sampled frames.
    weight: (1, U, U) float16 mean visibility over those frames (0 = never seen).
    broad: (3, U, U) float16 broad light: ``robust_lowpass(mean / sh_shading(normals, lighting))`` over the skin
        (the skin's colour under this light, fall-off, cast shadows), scaled to the skin's mean.
    lighting: (1, 9) float32 SH coefficients of the luminance (plate coordinates: x right, y down, z away from
        the camera).
    edge_blur: (1,) float32 the camera's blur on the edges around the face, as a fraction of the face height
        (median over the sampled frames; NaN when too few edges: :mod:`vidswap.appearance.sharpness`).
    frames: number of frames sampled.
    shutter: (1,) float32 the camera's shutter as a share of the frame interval, from the motion blur of the
        sampled faces that move (:func:`~vidswap.appearance.sharpness.shutter_estimate`); NaN when too few move
        (and in tracks files written before it was measured).
    grain_std, grain_corr, grain_sigma, grain_share: the plate's noise or grain on the face, told from texture by
        its change from frame to frame (:func:`~vidswap.appearance.plate_noise.track_noise`): (3,) std per channel
        in units of full scale, (3,) the rg, rb, gb correlations, (1,) its blur sigma in pixels, (1,) the share of
        the face's fine detail that changes from frame to frame (what ``composite.grain: auto`` decides by); NaN
        when too few faces were read.
    """

    mean: np.ndarray
    weight: np.ndarray
    broad: np.ndarray
    lighting: np.ndarray
    edge_blur: np.ndarray
    frames: int
    shutter: np.ndarray = field(default_factory=lambda: np.full(1, np.nan, np.float32))
    grain_std: np.ndarray = field(default_factory=lambda: np.full(3, np.nan, np.float32))
    grain_corr: np.ndarray = field(default_factory=lambda: np.full(3, np.nan, np.float32))
    grain_sigma: np.ndarray = field(default_factory=lambda: np.full(1, np.nan, np.float32))
    grain_share: np.ndarray = field(default_factory=lambda: np.full(1, np.nan, np.float32))

    ARRAYS = ("mean", "weight", "broad", "lighting", "edge_blur")
    #: measured later than the model's first arrays: optional in a tracks file ((length): NaN when absent)
    OPTIONAL = {"shutter": 1, **TRACK_FIELDS}

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The model as named arrays (for the tracks file)."""
        out = {k: np.asarray(getattr(self, k)) for k in self.ARRAYS}
        out["frames"] = np.asarray([self.frames], np.int64)
        for k, n in self.OPTIONAL.items():
            out[k] = np.asarray(getattr(self, k), np.float32).reshape(n)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "TrackAppearance | None":
        """The model from the tracks file's arrays; None when the track has none."""
        if not arrays or any(k not in arrays for k in cls.ARRAYS):
            return None
        optional = {k: np.asarray(arrays.get(k, np.full(n, np.nan)), np.float32).reshape(n)
                    for k, n in cls.OPTIONAL.items()}
        return cls(**{k: np.asarray(arrays[k]) for k in cls.ARRAYS}, frames=int(np.asarray(arrays["frames"])[0]),
                   **optional)

    def tensors(self, device: torch.device | str = "cpu") -> dict[str, Tensor]:
        """The model as (1, C, U, U) float32 tensors (``lighting``: (1, 1, 9))."""
        return {k: torch.from_numpy(np.asarray(getattr(self, k), np.float32))[None].to(device) for k in self.ARRAYS}


def weighted_median(values: Tensor, weights: Tensor) -> Tensor:
    """Per-element weighted median over dim 0: (N, C, ...) values, (N, 1, ...) weights -> (C, ...).

    Where all weights are 0 the plain median is returned.
    """
    return weighted_quantile_along(values, weights.expand_as(values) + 1e-9, 0)  # all-zero columns: plain median


def unwrap_frames(space: TextureSpace, crops: Tensor, crop_landmarks: Tensor,
                  clear: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Unwrap aligned plate crops (sRGB-encoded [0, 1]) in linear light with their visibility (facing,
    self-occlusion, inside the crop): (B, 3, S, S), (B, V, 3) -> (B, 3, U, U), (B, 1, U, U). ``clear``
    (B, 1, S, S) in [0, 1], where nothing is in front of the face (1 - an occlusion matte), is unwrapped with the
    crops (bilinear, as it is) and multiplied into the visibility; None: all clear."""
    S = crops.shape[-1]
    vis = texture_confidence(crop_landmarks, space.triangles, image_size=(crops.shape[-2], S),
                             resolution=VISIBILITY_RESOLUTION)
    images = srgb_to_linear_within(crops.float(), *sampled_box(crop_landmarks, (crops.shape[-2], S)))
    if clear is None:
        return unwrap(space, images, crop_landmarks, vis)
    texture, weight = unwrap(space, torch.cat([images, clear.to(images)], 1), crop_landmarks, vis)
    return texture[:, :3], weight * texture[:, 3:].clamp(0.0, 1.0)


def sampled_box(landmarks: Tensor, size: tuple[int, int]) -> tuple[slice, slice]:
    """The rows and columns of an (H, W) image that :func:`~vidswap.appearance.texture_space.unwrap`'s bilinear
    samples at the meshes' (B, V, 2+) texels read, in any frame: texels lie inside their triangles, so within the
    vertices' bounding box; a sample reads the pixel at or before it and the next (positions clamped to the image,
    as its border padding does); a pixel more each side for the rounding of the normalised grid."""
    H, W = int(size[0]), int(size[1])
    xy = landmarks[..., :2].reshape(-1, 2).float()
    lo, hi = xy.amin(0).floor().tolist(), xy.amax(0).floor().tolist()
    cols = slice(min(max(int(lo[0]) - 1, 0), W - 1), max(min(int(hi[0]) + 3, W), 1))
    rows = slice(min(max(int(lo[1]) - 1, 0), H - 1), max(min(int(hi[1]) + 3, H), 1))
    return rows, cols


@dataclass
class FaceSample:
    """One face of one analysed frame: texture (3, U, U) linear, weight (1, U, U), plate-space texel normals
    (3, U, U), the edge blur around the face as a fraction of its height (NaN when unknown), and the blur
    covariance of the face's own edges (2, 2) in frame axes, relative to the face height squared
    (:func:`~vidswap.appearance.sharpness.face_blur_tensor`; NaN when unknown)."""

    texture: Tensor
    weight: Tensor
    normals: Tensor
    edge_blur: float = float("nan")
    blur_covariance: np.ndarray = field(default_factory=lambda: np.full((2, 2), np.nan, np.float32))

    def compact(self) -> "FaceSample":
        """The sample on the CPU in float16 (what the sampler keeps)."""
        half = lambda t: t.detach().to("cpu", torch.float16)  # noqa: E731
        return FaceSample(half(self.texture), half(self.weight), half(self.normals), float(self.edge_blur),
                          np.asarray(self.blur_covariance, np.float32).reshape(2, 2))


@dataclass
class AppearanceSampler:
    """Collects unwrapped faces of evenly spread frames while the analyze pass streams (see the module docstring).

    ``push(position, key, sample)`` with ``key`` identifying the face within the frame (the analyze pass uses its
    observation index); ``samples(owner)`` returns the kept samples a track owns.
    """

    max_frames: int = 48
    stride: int = 1
    _kept: dict[int, list[tuple[object, FaceSample]]] = field(default_factory=dict)

    def wants(self, position: int) -> bool:
        """Whether the frame at this analysis position (0, 1, 2, ... in order) is sampled."""
        return position % self.stride == 0

    def push(self, position: int, key: object, sample: FaceSample) -> None:
        if not self.wants(position):
            return
        self._kept.setdefault(position, []).append((key, sample.compact()))
        while len(self._kept) > 2 * self.max_frames:
            self.stride *= 2
            self._kept = {p: v for p, v in self._kept.items() if p % self.stride == 0}

    def samples(self, owner: dict[int, object]) -> list[FaceSample]:
        """The kept samples of one track: ``owner`` maps analysis position -> the track's face key there."""
        return [sample for _, sample in self.owned(owner)]

    def owned(self, owner: dict[int, object]) -> list[tuple[int, FaceSample]]:
        """:meth:`samples` with the analysis position of each."""
        out = []
        for position in sorted(self._kept):
            key = owner.get(position)
            if key is None:
                continue
            out += [(position, sample) for k, sample in self._kept[position] if k == key]
        if len(out) > self.max_frames:  # evenly spread down to the budget
            pick = np.linspace(0, len(out) - 1, self.max_frames).round().astype(int)
            out = [out[i] for i in pick]
        return out


def build_track_appearance(samples: list[FaceSample], masks: dict[str, Tensor],
                           broad_sigma: float = 0.094) -> TrackAppearance | None:
    """The track model from its samples; None without samples.

    Args:
        masks: region masks with ``skin`` and ``inner_skin`` (:func:`~vidswap.appearance.source.source_masks`).
        broad_sigma: sigma of the broad light as a fraction of the texture side (~24 texels at 256).
    """
    if not samples:
        return None
    tex = torch.stack([s.texture.float() for s in samples])
    w = torch.stack([s.weight.float() for s in samples])
    nrm = torch.stack([s.normals.float() for s in samples])
    blurs = np.array([s.edge_blur for s in samples], np.float32)
    U = tex.shape[-1]
    mean = weighted_median(tex, w)[None]
    weight = w.mean(0, keepdim=True)
    normals = (nrm * w).sum(0, keepdim=True)
    normals = normals / channel_length(normals).clamp(min=_EPS)
    seen = (weight > 0.3).float()
    lighting = fit_sh(luminance(mean), normals, seen * masks["inner_skin"])  # achromatic: see lighting.delight
    shade = sh_shading(normals, lighting).clamp(min=1e-3)
    ratio = mean / shade
    broad = robust_lowpass(ratio, weight * masks["skin"], broad_sigma * U)
    # the robust low-pass follows the skin's typical level; rescale it to the skin's mean, which is what the
    # source's detail layer is normalised to (so a swap keeps the plate's mean brightness)
    inner = weight * masks["inner_skin"]
    level = (ratio * inner).sum((2, 3), keepdim=True) / (broad * inner).sum((2, 3), keepdim=True).clamp(min=_EPS)
    broad = broad * level
    f16 = lambda t: t[0].numpy().astype(np.float16)  # noqa: E731
    edge = np.nanmedian(blurs) if np.isfinite(blurs).any() else np.nan
    return TrackAppearance(mean=f16(mean), weight=f16(weight), broad=f16(broad),
                           lighting=lighting[0].numpy().astype(np.float32),
                           edge_blur=np.asarray([edge], np.float32), frames=len(samples))

