"""One-shot learned swappers behind :class:`~vidswap.swap.base.SwapCore`: ``swap.core: inswapper`` and
``swap.core: simswap``, each running a user-supplied ONNX file (routed by :mod:`vidswap.models.router`).

Per batch of target crops (B, 3, S, S) in [0, 1], cut by the render stage in the family's crop:

* crop: inswapper -- the ArcFace template at 128 (InsightFace ``face_align.norm_crop2(img, kps, 128)``: the 112
  template shifted 8 px right, :func:`~vidswap.faces.align.arcface_template`); SimSwap class -- FaceFusion's
  ``arcface_112_v1`` template scaled to the crop size (``facefusion/face_helper.py`` ``WARP_TEMPLATES``; the
  model table in ``processors/modules/face_swapper/core.py``);
* input: ``(crop - mean) / std`` per RGB channel (inswapper: RGB / 255, i.e. the [0, 1] crop as is --
  InsightFace ``inswapper.py`` ``blobFromImage(aimg, 1/255, swapRB=True)``; simswap_256: ImageNet mean / std;
  simswap_512: none -- FaceFusion's model table);
* output: RGB in [0, 1], clipped (InsightFace ``np.clip(255 * img_fake, 0, 255)``; FaceFusion
  ``normalize_crop_frame`` for these two types);
* alpha: 1 inside the crop except a 2-pixel border (InsightFace zeroes 2 pixels at each edge of its paste mask);
  the compositor multiplies its region and occlusion masks in.

The source vector is computed once per job (:mod:`vidswap.swap.learned.identity`) and fed with every crop.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from vidswap.errors import ConfigError
from vidswap.faces.align import CropSpec, TemplateCrop
from vidswap.models.router import Family, last_initializer
from vidswap.swap.base import SourceFace, SourceIdentity, SwapBatch, SwapCore, SwapResult
from vidswap.swap.learned.identity import (
    arcface_crops,
    arcface_embeddings,
    converted_vector,
    inswapper_vector,
    l2_normalise,
    mean_identity,
)
from vidswap.swap.learned.runtime import LearnedSession
from vidswap.swap.registry import CoreContext

#: FaceFusion's ``arcface_112_v1`` template (``facefusion/face_helper.py`` ``WARP_TEMPLATES``), in 112-px crop
#: pixels; SimSwap-class crops scale it by ``size / 112``.
ARCFACE_112_V1 = ((39.7300, 51.1380), (72.2700, 51.1380), (56.0000, 68.4930), (42.4630, 87.0100),
                  (69.5370, 87.0100))
BORDER = 2  # pixels of zero alpha at each crop edge (InsightFace inswapper.py paste mask)

ProviderName = Literal["auto", "cpu", "cuda", "tensorrt", "coreml"]
PROVIDERS = typing.get_args(ProviderName)


def check_runtime_settings(provider: str, batch_size: int) -> None:
    """ValueError (a ConfigError naming the section, from the registry) for a bad provider or batch size."""
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


@dataclass(frozen=True)
class InswapperConfig:
    """``swap.inswapper``: the manifest entries of the swapper and its ArcFace, the onnxruntime provider, and
    how many crops go into one session run (graphs with a fixed batch of 1 run crop by crop)."""

    model: str = "inswapper_128"
    identity_model: str = "arcface_w600k_r50"
    provider: ProviderName = "auto"
    batch_size: int = 8

    def __post_init__(self) -> None:
        check_runtime_settings(self.provider, self.batch_size)


@dataclass(frozen=True)
class SimswapConfig:
    """``swap.simswap``: as :class:`InswapperConfig`, plus the optional embedding converter that maps the ArcFace
    embedding into the swapper's identity space (FaceFusion's ``crossface_simswap``; "" = none)."""

    model: str = "simswap_256"
    identity_model: str = "arcface_w600k_r50"
    converter: str = "crossface_simswap"
    provider: ProviderName = "auto"
    batch_size: int = 8

    def __post_init__(self) -> None:
        check_runtime_settings(self.provider, self.batch_size)


@dataclass(kw_only=True)
class LearnedIdentity(SourceIdentity):
    """A learned swapper's prepared source.

    Attributes:
        vector: (D,) the swapper's ``source`` input (already in its identity space, normalised).
        arcface: (512,) the L2-normalised mean ArcFace embedding of the source photos.
    """

    vector: Tensor
    arcface: Tensor


def family_crop(family: Family) -> CropSpec:
    """The crop a swapper family is trained on."""
    if family.template == "arcface_128":
        return TemplateCrop.arcface(family.size)
    if family.template == "arcface_112_v1":
        scale = family.size / 112.0
        return TemplateCrop(size=family.size, template=tuple((x * scale, y * scale) for x, y in ARCFACE_112_V1))
    raise ConfigError(f"family {family.name} has no swapper crop (template {family.template!r})")


def border_alpha(n: int, size: int, border: int = BORDER, device: torch.device | str = "cpu") -> Tensor:
    """(n, 1, size, size) ones with ``border`` pixels of zeros at each edge."""
    alpha = torch.zeros(n, 1, size, size, device=device)
    alpha[:, :, border:size - border, border:size - border] = 1.0
    return alpha


class LearnedSwapCore(SwapCore):
    """A one-shot swapper from an ONNX file: the family decides crop, normalisation and source vector.

    Subclasses name the core (``swap.core``); the sessions are opened when the core is built, so a missing file,
    an unacknowledged licence, a wrong signature or a provider that does not start fail before any analysis.
    """

    needs = frozenset({"image", "landmarks", "embedding"})
    expect_family: tuple[str, ...] = ()

    def __init__(self, config: InswapperConfig | SimswapConfig, swapper: tuple[Path, Family],
                 identity: tuple[Path, Family], converter: tuple[Path, Family] | None = None):
        self.config = config
        path, self.family = swapper
        if self.family.name not in self.expect_family:
            raise ConfigError(f"swap.{self.name}.model {config.model} is a {self.family.name} file; the {self.name} "
                              f"core runs {', '.join(self.expect_family)}")
        self.crop = family_crop(self.family)
        self.session = LearnedSession(path, config.provider, config.batch_size)
        self.identity_session = LearnedSession(identity[0], config.provider, config.batch_size)
        self.converter = LearnedSession(converter[0], config.provider) if converter is not None else None
        self.emap = last_initializer(path).astype(np.float32) if self.family.name == "inswapper_128" else None
        self._mean = torch.tensor(self.family.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(self.family.std, dtype=torch.float32).view(1, 3, 1, 1)

    @property
    def provider(self) -> str:
        """The onnxruntime execution provider the swapper runs on."""
        return self.session.provider

    def runtime(self) -> str:
        return f"onnxruntime {self.provider} ({self.family.name})"

    def source_vector(self, embeddings: np.ndarray) -> np.ndarray:
        """(N, 512) raw ArcFace embeddings of the photos -> the swapper's (D,) source input."""
        normed = mean_identity(embeddings)
        if self.emap is not None:
            return inswapper_vector(normed, self.emap)
        # FaceFusion feeds the (averaged) raw embedding to the converter: convert_source_embedding
        return converted_vector(embeddings.mean(0) if self.converter is not None else normed, self.converter)

    def prepare(self, sources: list[SourceFace]) -> LearnedIdentity:
        if not sources:
            raise ValueError("a learned swapper needs at least one source photo")
        embeddings = arcface_embeddings(self.identity_session, arcface_crops(sources))
        vector = self.source_vector(embeddings)
        sface = [s.embedding for s in sources if s.embedding is not None]
        common = torch.from_numpy(l2_normalise(torch.stack(sface).float().mean(0).numpy())) if sface else None
        return LearnedIdentity(embedding=common, vector=torch.from_numpy(vector),
                               arcface=torch.from_numpy(mean_identity(embeddings)))

    def model_input(self, crops: Tensor) -> np.ndarray:
        """(B, 3, S, S) crops in [0, 1] -> the swapper's ``target`` input, ``(crop - mean) / std`` float32."""
        x = (crops.detach().cpu().float() - self._mean) / self._std
        return x.numpy().astype(np.float32, copy=False)

    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        if not isinstance(identity, LearnedIdentity):
            raise TypeError(f"the {self.name} core needs the identity its prepare() made, "
                            f"got {type(identity).__name__}")
        crops = batch.target_crops
        n = crops.shape[0]
        source = np.broadcast_to(identity.vector.numpy().astype(np.float32), (n, identity.vector.numel()))
        out = self.session.run({"target": self.model_input(crops), "source": source},
                               per_item=frozenset({"target", "source"}))
        swapped = torch.from_numpy(np.clip(out, 0.0, 1.0)).to(device=crops.device, dtype=crops.dtype)
        alpha = border_alpha(n, self.crop.size, device=crops.device)
        return SwapResult(crops=swapped, alpha=alpha, driven_landmarks=batch.target_landmarks)


class InswapperCore(LearnedSwapCore):
    """``swap.core: inswapper`` -- inswapper_128 and files with its signature."""

    name = "inswapper"
    expect_family = ("inswapper_128",)


class SimswapCore(LearnedSwapCore):
    """``swap.core: simswap`` -- SimSwap 256 / 512 and files with their signature."""

    name = "simswap"
    expect_family = ("simswap_256", "simswap_512")


def build_inswapper(config: InswapperConfig, context: CoreContext) -> InswapperCore:
    return InswapperCore(config, context.user_model(config.model, "swapper"),
                         context.user_model(config.identity_model, "arcface_112"))


def build_simswap(config: SimswapConfig, context: CoreContext) -> SimswapCore:
    converter = context.user_model(config.converter, "embedding_converter") if config.converter else None
    return SimswapCore(config, context.user_model(config.model, "swapper"),
                       context.user_model(config.identity_model, "arcface_112"), converter)
