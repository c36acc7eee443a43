"""One-shot learned swappers behind :class:`~vidswap.swap.base.SwapCore`: ``swap.core: inswapper``,
``swap.core: simswap``, ``swap.core: hyperswap`` and ``swap.core: ghost``, each running a user-supplied ONNX file
(routed by :mod:`vidswap.models.router`).

Per batch of target crops (B, 3, S, S) in [0, 1], cut by the render stage in the family's crop:

* crop: inswapper (and HyperSwap, at 256: FaceFusion's model table, template ``arcface_128``) -- the ArcFace
  template at 128 (InsightFace ``face_align.norm_crop2(img, kps, 128)``: the 112
  template shifted 8 px right, :func:`~vidswap.faces.align.arcface_template`); SimSwap class and GHOST -- FaceFusion's
  ``arcface_112_v1`` template scaled to the crop size (``facefusion/face_helper.py`` ``WARP_TEMPLATES``; the
  model table in ``processors/modules/face_swapper/core.py``);
* input: ``(crop - mean) / std`` per RGB channel (inswapper: RGB / 255, i.e. the [0, 1] crop as is --
  InsightFace ``inswapper.py`` ``blobFromImage(aimg, 1/255, swapRB=True)``; simswap_256: ImageNet mean / std;
  simswap_512: none -- FaceFusion's model table; HyperSwap and GHOST: mean = std = 0.5, i.e. [-1, 1], same table);
* output: RGB in [0, 1], clipped (InsightFace ``np.clip(255 * img_fake, 0, 255)``; FaceFusion
  ``normalize_crop_frame`` for these two types); HyperSwap's first output and GHOST's are in [-1, 1]:
  ``x * std + mean``, then clipped (``normalize_crop_frame`` for types ``hyperswap``, ``ghost``);
* alpha: 1 inside the crop except a 2-pixel border (InsightFace zeroes 2 pixels at each edge of its paste mask);
  the compositor multiplies its region and occlusion masks in.

The source vector is computed once per job (:mod:`vidswap.swap.learned.identity`) and fed with every crop.

Options (:class:`LearnedOptions`): ``pixel_boost`` cuts the crop at k times the model size and swaps its k x k
sub-pixel-shifted tiles; ``restorer`` blends a GFPGAN / GPEN / CodeFormer-class restoration into the swapped crop;
``parser`` multiplies a BiSeNet class mask of the target crop into the alpha (:mod:`vidswap.swap.learned.restore`).
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
from vidswap.faces.align import TemplateCrop
from vidswap.models.onnx_torch import OnnxModule, load_onnx_module
from vidswap.models.router import Family, last_initializer
from vidswap.swap.base import SourceFace, SourceIdentity, SwapBatch, SwapCore, SwapResult
from vidswap.swap.learned.identity import (
    arcface_crops,
    arcface_embeddings,
    converted_vector,
    ghost_vector,
    inswapper_vector,
    l2_normalise,
    mean_identity,
)
from vidswap.swap.learned.restore import Parser, Restorer
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
class LearnedOptions:
    """Settings every learned swapper shares (the ``swap.inswapper`` / ``swap.simswap`` keys besides the models).

    provider: onnxruntime execution provider (:mod:`vidswap.swap.learned.runtime`).
    batch_size: crops per session run (graphs with a fixed batch of 1 run crop by crop).
    engine: what runs the swapper: ``onnxruntime``, or ``torch`` -- the graph converted to a torch module
        (:mod:`vidswap.models.onnx_torch`), on the job's torch device; per-clip tuning always runs it in torch.
    pixel_boost: the crop side to render at, a multiple of the model's (0: the model's own): the crop is cut at
        this size and split into ``k x k`` sub-pixel-shifted model-size tiles (tile ``(a, b)`` takes pixels
        ``(a + k i, b + k j)``, FaceFusion ``processors/pixel_boost.py``), each swapped, then interleaved back.
    restorer: manifest entry of a restorer run on the swapped crop ("" = none); ``restorer_strength`` blends it,
        ``restorer_fidelity`` is CodeFormer's weight.
    parser: manifest entry of a BiSeNet-class parser run on the target crop ("" = none); the swap keeps only
        the ``parser_keep`` classes (hair, hats, hands, glasses stay the plate's).
    """

    provider: ProviderName = "auto"
    batch_size: int = 8
    engine: Literal["onnxruntime", "torch"] = "onnxruntime"
    pixel_boost: int = 0
    restorer: str = ""
    restorer_strength: float = 0.8
    restorer_fidelity: float = 0.5
    parser: str = ""
    parser_keep: tuple[str, ...] = ("skin", "brows", "eyes", "nose", "mouth", "lips")

    def __post_init__(self) -> None:
        check_runtime_settings(self.provider, self.batch_size)
        if self.engine not in ("onnxruntime", "torch"):
            raise ValueError(f"engine must be onnxruntime or torch, got {self.engine!r}")
        if self.pixel_boost < 0:
            raise ValueError(f"pixel_boost must be 0 or a multiple of the model size, got {self.pixel_boost}")


@dataclass(frozen=True)
class InswapperConfig(LearnedOptions):
    """``swap.inswapper``: the manifest entries of the swapper and of its ArcFace, plus :class:`LearnedOptions`."""

    model: str = "inswapper_128"
    identity_model: str = "arcface_w600k_r50"


@dataclass(frozen=True)
class SimswapConfig(LearnedOptions):
    """``swap.simswap``: as :class:`InswapperConfig`, plus the optional embedding converter that maps the ArcFace
    embedding into the swapper's identity space (FaceFusion's ``crossface_simswap``; "" = none)."""

    model: str = "simswap_256"
    identity_model: str = "arcface_w600k_r50"
    converter: str = "crossface_simswap"


@dataclass(frozen=True)
class HyperswapConfig(LearnedOptions):
    """``swap.hyperswap``: the manifest entries of the swapper (hyperswap_1a_256 / 1b / 1c) and of its ArcFace,
    plus :class:`LearnedOptions`."""

    model: str = "hyperswap_1a_256"
    identity_model: str = "arcface_w600k_r50"


@dataclass(frozen=True)
class GhostConfig(LearnedOptions):
    """``swap.ghost``: a GHOST file (a registry entry of family ``ghost_256``: ghost_unet_1/2/3_block from
    VisoMaster, ghost_1/2/3_256 from FaceFusion) and its identity network: GHOST's own ArcFace backbone
    (``ghost_arcface_backbone``, ``converter: ""``), or the w600k ArcFace with FaceFusion's ``crossface_ghost``
    converter (``identity_model: arcface_w600k_r50, converter: crossface_ghost``); plus :class:`LearnedOptions`."""

    model: str = "ghost_unet_2_block"  # GHOST's main model (2 AAD blocks; its download_models.sh)
    identity_model: str = "ghost_arcface_backbone"
    converter: str = ""


@dataclass(kw_only=True)
class LearnedIdentity(SourceIdentity):
    """A learned swapper's prepared source.

    Attributes:
        vector: (D,) the swapper's ``source`` input (already in its identity space, normalised).
        arcface: (512,) the L2-normalised mean ArcFace embedding of the source photos.
    """

    vector: Tensor
    arcface: Tensor


def family_crop(family: Family, size: int = 0) -> TemplateCrop:
    """The crop a swapper family is trained on, at ``size`` pixels (0: the model's size)."""
    size = size or family.size
    if family.template == "arcface_128":
        return TemplateCrop.arcface(size)  # the 128 template scaled: what FaceFusion's normalised arcface_128 gives
    if family.template == "arcface_112_v1":
        scale = size / 112.0
        return TemplateCrop(size=size, template=tuple((x * scale, y * scale) for x, y in ARCFACE_112_V1))
    raise ConfigError(f"family {family.name} has no swapper crop (template {family.template!r})")


def implode(crops: Tensor, k: int) -> Tensor:
    """(B, C, kS, kS) -> (B k k, C, S, S): tile ``(a, b)`` of item ``i`` (row ``i k k + a k + b``) holds pixels
    ``(a + k y, b + k x)``."""
    b, c, h, w = crops.shape
    s = h // k
    return crops.reshape(b, c, s, k, s, k).permute(0, 3, 5, 1, 2, 4).reshape(b * k * k, c, s, s)


def explode(tiles: Tensor, k: int) -> Tensor:
    """The inverse of :func:`implode`: (B k k, C, S, S) -> (B, C, kS, kS)."""
    n, c, s, _ = tiles.shape
    b = n // (k * k)
    return tiles.reshape(b, k, k, c, s, s).permute(0, 3, 4, 1, 5, 2).reshape(b, c, s * k, s * k)


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

    def __init__(self, config: InswapperConfig | SimswapConfig | HyperswapConfig | GhostConfig,
                 swapper: tuple[Path, Family],
                 identity: tuple[Path, Family], converter: tuple[Path, Family] | None = None,
                 restorer: tuple[Path, Family] | None = None, parser: tuple[Path, Family] | None = None,
                 device: torch.device | str = "cpu"):
        self.config = config
        self.device = torch.device(device)
        path, self.family = swapper
        if self.family.name not in self.expect_family:
            raise ConfigError(f"swap.{self.name}.model {config.model} is a {self.family.name} file; the {self.name} "
                              f"core runs {', '.join(self.expect_family)}")
        boost = config.pixel_boost or self.family.size
        if boost % self.family.size:
            raise ConfigError(f"swap.{self.name}.pixel_boost {boost} is not a multiple of the model size "
                              f"{self.family.size}")
        self.boost = boost // self.family.size
        self.crop = family_crop(self.family, boost)
        self.restorer = None if restorer is None else Restorer(
            LearnedSession(restorer[0], config.provider, config.batch_size), restorer[1],
            config.restorer_strength, config.restorer_fidelity)
        self.parser = None if parser is None else Parser(
            LearnedSession(parser[0], config.provider, config.batch_size), tuple(config.parser_keep))
        self.session = LearnedSession(path, config.provider, config.batch_size)
        self.identity_session = LearnedSession(identity[0], config.provider, config.batch_size)
        # the identity network's own crop (GHOST's reads arcface_112_v1; the others the standard ArcFace template)
        self.identity_template = ARCFACE_112_V1 if identity[1].template == "arcface_112_v1" else None
        self.converter = LearnedSession(converter[0], config.provider) if converter is not None else None
        self.emap = last_initializer(path).astype(np.float32) if self.family.name == "inswapper_128" else None
        self.path = path
        self.module: OnnxModule | None = None  # the torch engine (converted graph, possibly tuned per clip)
        if config.engine == "torch":
            self.use_module(load_onnx_module(path))
        self._mean = torch.tensor(self.family.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(self.family.std, dtype=torch.float32).view(1, 3, 1, 1)

    @property
    def provider(self) -> str:
        """The onnxruntime execution provider the swapper runs on."""
        return self.session.provider

    def runtime(self) -> str:
        if self.module is not None:
            return f"torch {self.device} ({self.family.name}, converted from ONNX)"
        return f"onnxruntime {self.provider} ({self.family.name})"

    def use_module(self, module: OnnxModule) -> None:
        """Run the swapper with a torch module (the converted graph, or one tuned on the clip) from now on."""
        self.module = module.eval().to(self.device)

    def normalise(self, crops: Tensor) -> Tensor:
        """(B, 3, S, S) crops in [0, 1] -> ``(crop - mean) / std`` (differentiable; the model's ``target`` input)."""
        return (crops - self._mean.to(crops)) / self._std.to(crops)

    def to_unit(self, out: Tensor) -> Tensor:
        """The model's first output -> RGB in [0, 1]: ``signed`` families ``x * std + mean``; then clipped."""
        if self.family.output == "signed":
            out = out * self._std.to(out) + self._mean.to(out)
        return out.clamp(0.0, 1.0)

    def forward_torch(self, module: OnnxModule, tiles: Tensor, vector: Tensor) -> Tensor:
        """The swapper in torch: (B, 3, s, s) model-size crops and a (D,) source vector -> (B, 3, s, s) in [0, 1]
        (differentiable; what per-clip tuning trains)."""
        feeds = {"target": self.normalise(tiles), "source": vector.to(tiles).expand(tiles.shape[0], -1)}
        # in the graph's input order (HyperSwap's lists the source first)
        return self.to_unit(module(*(feeds[name] for name in module.input_names)))

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
        embeddings = arcface_embeddings(self.identity_session, arcface_crops(sources, self.identity_template))
        vector = self.source_vector(embeddings)
        sface = [s.embedding for s in sources if s.embedding is not None]
        common = torch.from_numpy(l2_normalise(torch.stack(sface).float().mean(0).numpy())) if sface else None
        return LearnedIdentity(embedding=common, vector=torch.from_numpy(vector),
                               arcface=torch.from_numpy(mean_identity(embeddings)))

    def model_input(self, crops: Tensor) -> np.ndarray:
        """(B, 3, S, S) crops in [0, 1] -> the swapper's ``target`` input, ``(crop - mean) / std`` float32."""
        return self.normalise(crops.detach().cpu().float()).numpy().astype(np.float32, copy=False)

    def swap(self, batch: SwapBatch, identity: SourceIdentity) -> SwapResult:
        if not isinstance(identity, LearnedIdentity):
            raise TypeError(f"the {self.name} core needs the identity its prepare() made, "
                            f"got {type(identity).__name__}")
        crops = batch.target_crops
        n = crops.shape[0]
        tiles = implode(crops, self.boost) if self.boost > 1 else crops
        if self.module is not None:  # graphs with a fixed batch of 1 may reshape with it: crop by crop there too
            step = 1 if self.session.fixed_batch else self.config.batch_size
            with torch.no_grad():
                swapped = torch.cat([self.forward_torch(self.module, tiles[i:i + step].to(self.device), identity.vector)
                                     for i in range(0, tiles.shape[0], step)])
            swapped = swapped.to(device=crops.device, dtype=crops.dtype)
        else:
            source = np.broadcast_to(identity.vector.numpy().astype(np.float32),
                                     (tiles.shape[0], identity.vector.numel()))
            out = self.session.run({"target": self.model_input(tiles), "source": source},
                                   per_item=frozenset({"target", "source"}))
            swapped = self.to_unit(torch.from_numpy(out)).to(device=crops.device, dtype=crops.dtype)
        if self.boost > 1:
            swapped = explode(swapped, self.boost)
        if self.restorer is not None:
            swapped = self.restorer(swapped, self.crop)
        alpha = border_alpha(n, self.crop.size, BORDER * self.boost, device=crops.device)
        if self.parser is not None:
            alpha = alpha * self.parser.mask(crops)
        return SwapResult(crops=swapped, alpha=alpha, driven_landmarks=batch.target_landmarks)


class InswapperCore(LearnedSwapCore):
    """``swap.core: inswapper`` -- inswapper_128 and files with its signature."""

    name = "inswapper"
    expect_family = ("inswapper_128",)


class HyperswapCore(LearnedSwapCore):
    """``swap.core: hyperswap`` -- FaceFusion Labs' HyperSwap 1a / 1b / 1c (256 px) and files with their signature.
    The source input is the normalised ArcFace embedding itself (FaceFusion ``prepare_source_embedding``, type
    ``hyperswap``: ``embedding_norm``)."""

    name = "hyperswap"
    expect_family = ("hyperswap_256",)

    def source_vector(self, embeddings: np.ndarray) -> np.ndarray:
        return mean_identity(embeddings)


class SimswapCore(LearnedSwapCore):
    """``swap.core: simswap`` -- SimSwap 256 / 512 and files with their signature."""

    name = "simswap"
    expect_family = ("simswap_256", "simswap_512")


class GhostCore(LearnedSwapCore):
    """``swap.core: ghost`` -- GHOST (ai-forever/ghost) 256-px files, named by their registry entry (family
    ``ghost_256``: the file has simswap_256's signature). Crop, [-1, 1] I/O: :mod:`vidswap.models.router`; source
    vector: :func:`~vidswap.swap.learned.identity.ghost_vector`."""

    name = "ghost"
    expect_family = ("ghost_256",)

    def __init__(self, config: GhostConfig, swapper: tuple[Path, Family], identity: tuple[Path, Family],
                 converter: tuple[Path, Family] | None = None, **kwargs):
        own = identity[1].name == "ghost_arcface_112"
        if own == (converter is not None):
            raise ConfigError(f"swap.ghost: identity_model {config.identity_model} is a {identity[1].name} file; "
                              + ("GHOST's own ArcFace backbone takes no converter (set converter: \"\")" if own else
                                 "a w600k ArcFace needs FaceFusion's converter (converter: crossface_ghost)"))
        super().__init__(config, swapper, identity, converter, **kwargs)

    def source_vector(self, embeddings: np.ndarray) -> np.ndarray:
        return ghost_vector(embeddings, self.converter)


def _extras(config: LearnedOptions, context: CoreContext) -> dict:
    """The optional restorer and parser files of a learned core's config."""
    return {"restorer": context.user_model(config.restorer, "restorer") if config.restorer else None,
            "parser": context.user_model(config.parser, "parser") if config.parser else None}


def build_inswapper(config: InswapperConfig, context: CoreContext) -> InswapperCore:
    return InswapperCore(config, context.user_model(config.model, "swapper"),
                         context.user_model(config.identity_model, "arcface_112"), **_extras(config, context),
                         device=context.device)


def build_simswap(config: SimswapConfig, context: CoreContext) -> SimswapCore:
    converter = context.user_model(config.converter, "embedding_converter") if config.converter else None
    return SimswapCore(config, context.user_model(config.model, "swapper"),
                       context.user_model(config.identity_model, "arcface_112"), converter, **_extras(config, context),
                       device=context.device)


def build_hyperswap(config: HyperswapConfig, context: CoreContext) -> HyperswapCore:
    return HyperswapCore(config, context.user_model(config.model, "swapper"),
                         context.user_model(config.identity_model, "arcface_112"), **_extras(config, context),
                         device=context.device)


def build_ghost(config: GhostConfig, context: CoreContext) -> GhostCore:
    converter = context.user_model(config.converter, "embedding_converter") if config.converter else None
    return GhostCore(config, context.user_model(config.model, "ghost_256"),
                     context.user_model(config.identity_model, "identity"), converter, **_extras(config, context),
                     device=context.device)
