"""Which wrapper a user-supplied ONNX file needs, read from the file itself (the way InsightFace's ``model_zoo``
``ModelRouter`` picks SCRFD / ArcFace / Landmark / INSwapper from a session's inputs and outputs).

:func:`read_signature` reads the graph's real inputs (initializers listed as inputs are left out), its outputs --
name, shape (ints; symbolic dimensions as their name, unknown as None) and element type -- and the shape of the
last initializer. :func:`route` matches that against :data:`FAMILIES` and returns the :class:`Family`; a file
that matches none is a ``ModelError`` (exit 4) listing the signatures vidswap knows, a file that is not ONNX a
``ModelError`` naming it.

The signatures and conventions, with their public sources:

* ``inswapper_128`` -- inputs ``target`` (1, 3, 128, 128) float and ``source`` (1, 512) float, one output
  (1, 3, 128, 128); the last initializer is the (512, 512) ``emap``. InsightFace
  ``python-package/insightface/model_zoo/inswapper.py`` (``emap = numpy_helper.to_array(graph.initializer[-1])``;
  input RGB / 255, output RGB in [0, 1]); input names ``target`` / ``source`` as FaceFusion feeds them
  (``facefusion/processors/modules/face_swapper/core.py``, ``forward_swap_face``). Crop: ArcFace template at 128.
* ``simswap_256`` / ``simswap_512`` -- the same two inputs at 256 / 512 without an emap. FaceFusion's model table
  (same file): template ``arcface_112_v1``, ImageNet mean / std on the 256 input, none on the 512 one; output
  RGB in [0, 1].
* ``ghost_256`` -- GHOST (ai-forever/ghost, "sber-swap"; FaceFusion's ``ghost_1/2/3_256.onnx``, VisoMaster's
  ``ghost_unet_1/2/3_block.onnx``): exactly simswap_256's signature (``target`` (1, 3, 256, 256) + ``source``
  (1, 512) -> one (1, 3, 256, 256) output, no emap; VisoMaster ``app/processors/face_swappers.py``
  ``run_swapper_ghostface`` binds these names and shapes; its output is named ``781`` / ``1165`` / ``1549``), so
  the file cannot tell it from SimSwap: the family is *named* -- the registry entry's ``family: ghost_256`` --
  and routing then checks that the file's signature agrees (:func:`route` with ``expect``; a twin family is never
  matched by signature alone). Conventions: template ``arcface_112_v1`` at 256 (FaceFusion model table, type
  ``ghost``; it is the frontal one of the five pose templates GHOST's own crop chooses among --
  ``insightface`` ``face_align.estimate_norm(kps, 224, mode='None')`` in ``insightface_func/
  face_detect_crop_single.py``, the 224 crop then resized to 256; vidswap keeps the frontal one on every frame,
  as FaceFusion does, so the crop does not jump between templates along a shot); input RGB ``(x - 0.5) / 0.5``,
  i.e. [-1, 1] (FaceFusion mean = std = 0.5; GHOST ``utils/inference/core.py`` ``transform_target_to_torch``;
  VisoMaster ``x / 127.5 - 1``); output in [-1, 1]: ``x * 0.5 + 0.5`` clipped (FaceFusion ``normalize_crop_frame``
  for type ``ghost``; VisoMaster ``x * 127.5 + 127.5``).
* ``ghost_arcface_112`` -- GHOST's own identity network (InsightFace's iresnet100 ``backbone.pth`` that
  GHOST's ``download_models.sh`` fetches; VisoMaster ships it as ``ghost_arcface_backbone.onnx``): arcface_112's
  signature, so again named by the registry entry. GHOST feeds it its 224 source crop downscaled to 112
  (``F.interpolate(source, scale_factor=0.5)``, ``utils/inference/core.py``), RGB ``(x - 0.5) / 0.5``
  (``normalize_and_torch``): the ``arcface_112_v1`` template at 112, [-1, 1]. Its raw (un-normalised) output is
  the swapper's source input (GHOST passes ``source_embeds`` straight to ``G``; VisoMaster
  ``calc_swapper_latent_ghost`` only reshapes). VisoMaster aligns this network's crop to the standard ArcFace
  template instead; vidswap follows GHOST's authors.
* ``hyperswap_256`` -- inputs ``source`` (1, 512) and ``target`` (1, 3, 256, 256) float, two outputs: ``output``
  (1, 3, 256, 256) and ``mask`` (1, 1, 256, 256) (FaceFusion Labs' HyperSwap 1a / 1b / 1c, ONNX opset 15;
  I/O as listed by onnxruntime on ``hyperswap_1c_256.onnx``). Conventions from FaceFusion
  ``processors/modules/face_swapper/core.py`` (model table, type ``hyperswap``): template ``arcface_128`` at 256,
  input ``(x - 0.5) / 0.5`` (mean = std = 0.5), output ``x * 0.5 + 0.5`` clipped to [0, 1]
  (``normalize_crop_frame``), source the L2-normalised ArcFace embedding (``prepare_source_embedding``:
  ``embedding_norm``; no emap, no converter). FaceFusion reads only the first output; so does vidswap.
* ``restorer_512`` -- one input ``input`` (1, 3, 512, 512) -> (1, 3, 512, 512): GFPGAN / GPEN-BFR-class,
  RGB in [-1, 1] both ways (FaceFusion ``face_enhancer/core.py``: ``(x - 0.5) / 0.5``, output clipped to [-1, 1]).
* ``codeformer_512`` -- as ``restorer_512`` plus a ``weight`` input (1,) double: the fidelity weight
  (same file, ``forward``).
* ``bisenet_19`` -- (1, 3, 512, 512) -> (1, 19, 512, 512) class logits, ImageNet-normalised RGB input; the
  CelebAMask-HQ classes of face-parsing.PyTorch (FaceFusion ``face_masker.py`` ``FACE_MASK_REGIONS``).
* ``arcface_112`` -- (1, 3, 112, 112) -> (1, 512): an ArcFace identity network (InsightFace ``ModelRouter``:
  112 x 112 input; ``arcface_onnx.py``: RGB, (x - 127.5) / 127.5 for the w600k files).
* ``embedding_converter`` -- (1, 512) -> (1, 512): maps an ArcFace embedding into a swapper's identity space
  (FaceFusion ``crossface_simswap``, ``forward_convert_embedding``). FaceFusion runs GHOST on the w600k ArcFace
  embedding through ``crossface_ghost`` and feeds the converted vector *un-normalised* (``prepare_source_embedding``
  for type ``ghost`` keeps the first value ``convert_source_embedding`` returns; the SimSwap class gets the
  normalised second one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from vidswap.errors import ModelError

Dim = int | str | None

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output: name, shape (int, symbolic name, or None), ONNX element type name."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str

    def describe(self) -> str:
        dims = ", ".join("N" if d is None or isinstance(d, str) else str(d) for d in self.shape)
        return f"{self.name}({dims}) {self.dtype}"


@dataclass(frozen=True)
class OnnxSignature:
    """What routing reads of an ONNX file."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    last_initializer: tuple[int, ...] | None  # shape of the graph's last initializer (inswapper's emap)

    def describe(self) -> str:
        ins = ", ".join(t.describe() for t in self.inputs)
        outs = ", ".join(t.describe() for t in self.outputs)
        return f"inputs [{ins}] -> outputs [{outs}]"


@dataclass(frozen=True)
class Family:
    """A model family vidswap has a wrapper for.

    Attributes:
        name: the family name (``inswapper_128``, ``simswap_256``, ...).
        role: ``swapper``, ``restorer``, ``parser``, ``identity`` or ``identity-converter``.
        size: the square crop / input side in pixels (0 for vector models).
        template: ``arcface_128`` (InsightFace's 128 template), ``arcface_112_v1`` (SimSwap's), ``ffhq_512``,
            or "" (no crop).
        mean, std: per-channel RGB normalisation of the [0, 1] input: ``(x - mean) / std``.
        output: ``unit`` (RGB in [0, 1]), ``signed`` ([-1, 1]), ``logits`` (class scores) or ``vector``.
        signature: the signature in words (the unknown-signature error lists these).
        matches: the test on an :class:`OnnxSignature`.
        named_only: the signature is another family's twin (GHOST's is simswap_256's): the family is chosen only
            when the registry entry names it (``route(path, expect=name)``), never by the signature alone.
    """

    name: str
    role: str
    size: int
    template: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    output: str
    signature: str
    matches: Callable[[OnnxSignature], bool] = field(repr=False, compare=False)
    named_only: bool = False


_DTYPE_NAMES = {1: "float32", 10: "float16", 11: "float64", 7: "int64", 6: "int32", 9: "bool"}


def _tensor_info(value) -> TensorInfo:
    tt = value.type.tensor_type
    dims: list[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorInfo(value.name, tuple(dims), _DTYPE_NAMES.get(int(tt.elem_type), f"type{tt.elem_type}"))


def read_signature(path: Path) -> OnnxSignature:
    """The signature of an ONNX file (ModelError, exit 4, when it is missing or not a readable ONNX model)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf DecodeError and friends: the file is not ONNX
        raise ModelError(f"{path} is not a readable ONNX model ({type(exc).__name__}); the file is corrupt or "
                         "of another format") from None
    graph = model.graph
    if not graph.output:
        raise ModelError(f"{path} is not a readable ONNX model (no graph outputs); the file is corrupt")
    initializers = {init.name for init in graph.initializer}
    inputs = tuple(_tensor_info(v) for v in graph.input if v.name not in initializers)
    outputs = tuple(_tensor_info(v) for v in graph.output)
    last = tuple(int(d) for d in graph.initializer[-1].dims) if len(graph.initializer) else None
    return OnnxSignature(inputs, outputs, last)


def _batch_ok(d: Dim) -> bool:
    return d is None or isinstance(d, str) or d >= 1


FLOATS = ("float32", "float16")  # fp16 exports (e.g. inswapper_128_fp16.onnx) route like their fp32 originals


def _is(t: TensorInfo, shape: tuple[int, ...], dtypes: tuple[str, ...] = FLOATS) -> bool:
    """``t`` has ``shape`` after its batch dimension (any batch: 1 or symbolic) and an element type in ``dtypes``."""
    return (len(t.shape) == len(shape) + 1 and _batch_ok(t.shape[0]) and tuple(t.shape[1:]) == shape
            and t.dtype in dtypes)


def _named(sig: OnnxSignature, name: str) -> TensorInfo | None:
    return next((t for t in sig.inputs if t.name == name), None)


def _swapper(size: int, emap: bool) -> Callable[[OnnxSignature], bool]:
    def test(sig: OnnxSignature) -> bool:
        target, source = _named(sig, "target"), _named(sig, "source")
        if len(sig.inputs) != 2 or target is None or source is None or len(sig.outputs) != 1:
            return False
        if not (_is(target, (3, size, size)) and _is(source, (512,)) and _is(sig.outputs[0], (3, size, size))):
            return False
        has_emap = sig.last_initializer == (512, 512)
        return has_emap == emap

    return test


def _hyperswap(sig: OnnxSignature) -> bool:
    """HyperSwap: ``source`` (N, 512) + ``target`` (N, 3, 256, 256) -> (N, 3, 256, 256) image + (N, 1, 256, 256)
    mask."""
    target, source = _named(sig, "target"), _named(sig, "source")
    return (len(sig.inputs) == 2 and target is not None and source is not None and len(sig.outputs) == 2
            and _is(target, (3, 256, 256)) and _is(source, (512,)) and _is(sig.outputs[0], (3, 256, 256))
            and _is(sig.outputs[1], (1, 256, 256)))


def _single(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Callable[[OnnxSignature], bool]:
    def test(sig: OnnxSignature) -> bool:
        return (len(sig.inputs) == 1 and len(sig.outputs) == 1 and _is(sig.inputs[0], in_shape)
                and _is(sig.outputs[0], out_shape))

    return test


def _codeformer(sig: OnnxSignature) -> bool:
    image, weight = _named(sig, "input"), _named(sig, "weight")
    return (len(sig.inputs) == 2 and image is not None and weight is not None and len(sig.outputs) >= 1
            and _is(image, (3, 512, 512)) and weight.dtype == "float64" and len(weight.shape) == 1
            and _is(sig.outputs[0], (3, 512, 512)))


_UNIT = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
_SIGNED = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
_ARC = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)  # (255 x - 127.5) / 127.5 == (x - 0.5) / 0.5 on [0, 1] input

#: The families vidswap routes, in matching order.
FAMILIES: tuple[Family, ...] = (
    Family("inswapper_128", "swapper", 128, "arcface_128", *_UNIT, "unit",
           "target(1,3,128,128) + source(1,512) -> (1,3,128,128), last initializer emap (512,512)",
           _swapper(128, emap=True)),
    Family("simswap_256", "swapper", 256, "arcface_112_v1", IMAGENET_MEAN, IMAGENET_STD, "unit",
           "target(1,3,256,256) + source(1,512) -> (1,3,256,256), no emap", _swapper(256, emap=False)),
    Family("simswap_512", "swapper", 512, "arcface_112_v1", *_UNIT, "unit",
           "target(1,3,512,512) + source(1,512) -> (1,3,512,512), no emap", _swapper(512, emap=False)),
    Family("hyperswap_256", "swapper", 256, "arcface_128", *_SIGNED, "signed",
           "source(1,512) + target(1,3,256,256) -> output(1,3,256,256) + mask(1,1,256,256)", _hyperswap),
    Family("ghost_256", "swapper", 256, "arcface_112_v1", *_SIGNED, "signed",
           "target(1,3,256,256) + source(1,512) -> (1,3,256,256), no emap (simswap_256's signature: named by the "
           "registry entry)", _swapper(256, emap=False), named_only=True),
    Family("codeformer_512", "restorer", 512, "ffhq_512", *_SIGNED, "signed",
           "input(1,3,512,512) + weight(1) float64 -> (1,3,512,512)", _codeformer),
    Family("restorer_512", "restorer", 512, "ffhq_512", *_SIGNED, "signed",
           "input(1,3,512,512) -> (1,3,512,512) (GFPGAN / GPEN-BFR)", _single((3, 512, 512), (3, 512, 512))),
    Family("bisenet_19", "parser", 512, "", IMAGENET_MEAN, IMAGENET_STD, "logits",
           "input(1,3,512,512) -> (1,19,512,512)", _single((3, 512, 512), (19, 512, 512))),
    Family("arcface_112", "identity", 112, "arcface_112_v2", *_ARC, "vector",
           "input(1,3,112,112) -> (1,512)", _single((3, 112, 112), (512,))),
    Family("ghost_arcface_112", "identity", 112, "arcface_112_v1", *_ARC, "vector",
           "input(1,3,112,112) -> (1,512) (arcface_112's signature: named by the registry entry)",
           _single((3, 112, 112), (512,)), named_only=True),
    Family("embedding_converter", "identity-converter", 0, "", *_UNIT, "vector",
           "input(1,512) -> (1,512)", _single((512,), (512,))),
)

FAMILY_BY_NAME = {f.name: f for f in FAMILIES}


def known_signatures() -> str:
    """Every family's signature, one phrase each (for error messages)."""
    return "; ".join(f"{f.name}: {f.signature}" for f in FAMILIES)


def match_family(sig: OnnxSignature) -> Family | None:
    """The first family (not a named-only twin) whose test ``sig`` passes, or None."""
    return next((f for f in FAMILIES if not f.named_only and f.matches(sig)), None)


def route(path: Path, expect: str | None = None) -> Family:
    """The family of an ONNX file. ``expect`` (a family name or role) must agree when given; a family *name* is
    taken when the file has that family's signature, which is how named-only twins (``ghost_256``) are chosen.

    Raises ModelError (exit 4): unreadable file; a signature no family has (the message lists the known ones);
    a family other than ``expect``.
    """
    sig = read_signature(path)
    named = FAMILY_BY_NAME.get(expect or "")
    if named is not None and named.matches(sig):
        return named
    family = match_family(sig)
    if family is None:
        raise ModelError(f"{Path(path).name} has a signature vidswap does not know ({sig.describe()}); known: "
                         f"{known_signatures()}")
    if expect is not None and expect not in (family.name, family.role):
        raise ModelError(f"{Path(path).name} has the {family.name} signature ({family.role}), not the {expect} one "
                         f"expected here: {sig.describe()}")
    return family


def last_initializer(path: Path) -> np.ndarray:
    """The graph's last initializer as an array (inswapper's ``emap``; InsightFace ``inswapper.py``)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    if not len(model.graph.initializer):
        raise ModelError(f"{Path(path).name} has no initializers; it is not an inswapper-class file")
    return numpy_helper.to_array(model.graph.initializer[-1])
