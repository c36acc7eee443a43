"""Face restorers (GFPGAN / GPEN-BFR / CodeFormer class) and the BiSeNet face parser, applied in a swapper's crop.

Both run in their own 512 x 512 frame, reached from the swapper's crop by a similarity between the two
five-point templates, so no extra alignment of the plate is needed:

* restorer: the crop warped to FaceFusion's ``ffhq_512`` template (``facefusion/face_helper.py``
  ``WARP_TEMPLATES``; the FFHQ alignment GFPGAN / GPEN were trained on), RGB ``(x - 0.5) / 0.5``, the output
  clipped to [-1, 1] and mapped back ``(y + 1) / 2`` (FaceFusion ``face_enhancer/core.py``); CodeFormer also
  gets its fidelity ``weight`` as a (1,) float64 input. The restored face is warped back into the swapper's
  crop and blended: ``out = swap + strength * coverage * (restored - swap)`` (FaceFusion's
  ``face_enhancer_blend``), ``coverage`` being where the 512 frame covers the crop.
* parser: the crop resized to 512 (FaceFusion ``face_masker.create_region_mask`` feeds the swap crop resized to
  512), ImageNet mean / std, argmax over 19 classes. The classes (face-parsing.PyTorch / CelebAMask-HQ order, as in
  FaceFusion's ``FACE_MASK_REGIONS``): 0 background, 1 skin, 2-3 brows, 4-5 eyes, 6 glasses, 7-8 ears,
  9 earring, 10 nose, 11 mouth, 12-13 lips, 14 neck, 15 necklace, 16 cloth, 17 hair, 18 hat. The kept classes
  become a (B, 1, S, S) mask the core multiplies into its alpha, so hair, hats, hands (parsed as background)
  and, unless kept, glasses stay the plate's in the compositor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.errors import ConfigError
from vidswap.faces.align import TemplateCrop, invert_affine, similarity_transform, warp_to_crop
from vidswap.models.router import IMAGENET_MEAN, IMAGENET_STD, Family
from vidswap.swap.learned.runtime import LearnedSession

#: FaceFusion's ``ffhq_512`` template, normalised to the crop side.
FFHQ_512 = ((0.37691676, 0.46864664), (0.62285697, 0.46912813), (0.50123859, 0.61331904),
            (0.39308822, 0.72541100), (0.61150205, 0.72490465))
RESTORE_SIZE = 512

#: parser class groups (face-parsing.PyTorch / CelebAMask-HQ indices)
PARSER_CLASSES: dict[str, tuple[int, ...]] = {
    "background": (0,), "skin": (1,), "brows": (2, 3), "eyes": (4, 5), "glasses": (6,), "ears": (7, 8),
    "earring": (9,), "nose": (10,), "mouth": (11,), "lips": (12, 13), "neck": (14,), "necklace": (15,),
    "cloth": (16,), "hair": (17,), "hat": (18,),
}


def crop_to_ffhq(crop: TemplateCrop, size: int = RESTORE_SIZE) -> Tensor:
    """(2, 3) float64: swapper-crop pixels -> the ``ffhq_512`` frame's pixels (similarity between the templates)."""
    src = torch.tensor(crop.template, dtype=torch.float64)
    dst = torch.tensor(FFHQ_512, dtype=torch.float64) * size
    return similarity_transform(src, dst)


@dataclass
class Restorer:
    """A GFPGAN / GPEN / CodeFormer-class session and its blend settings."""

    session: LearnedSession
    family: Family
    strength: float = 0.8
    fidelity: float = 0.5  # CodeFormer's ``weight`` (0: quality, 1: fidelity)

    def __post_init__(self) -> None:
        if self.family.role != "restorer":
            raise ConfigError(f"{self.family.name} is not a restorer")
        if not 0.0 <= self.strength <= 1.0 or not 0.0 <= self.fidelity <= 1.0:
            raise ConfigError(f"restorer strength and fidelity must be in [0, 1], got {self.strength}, "
                              f"{self.fidelity}")

    def run512(self, faces: Tensor) -> Tensor:
        """(B, 3, 512, 512) in [0, 1], FFHQ-aligned -> restored, same shape, in [0, 1]."""
        x = ((faces.detach().cpu().float() - 0.5) / 0.5).numpy()
        feeds: dict[str, np.ndarray] = {"input": x}
        if self.family.name == "codeformer_512":
            feeds["weight"] = np.array([self.fidelity], dtype=np.float64)
        y = self.session.run(feeds, per_item=frozenset({"input"}))
        return torch.from_numpy((np.clip(y, -1.0, 1.0) + 1.0) / 2.0).to(faces)

    def __call__(self, swapped: Tensor, crop: TemplateCrop) -> Tensor:
        """(B, 3, S, S) swapped crops in ``crop`` -> blended with their restoration, same shape."""
        if self.strength == 0.0:
            return swapped
        n, _, s, _ = swapped.shape
        m = crop_to_ffhq(crop).float().expand(n, 2, 3).to(swapped.device)
        faces = warp_to_crop(swapped, m, RESTORE_SIZE)
        restored = self.run512(faces)
        back = torch.as_tensor(invert_affine(m), dtype=torch.float32, device=swapped.device)
        ones = torch.ones(n, 1, RESTORE_SIZE, RESTORE_SIZE, device=swapped.device)
        # where the 512 frame covers the swapper's crop (zero padding outside: no restoration there)
        coverage = (warp_to_crop(ones, back, s, padding_mode="zeros") > 0.999).to(swapped.dtype)
        restored_crop = warp_to_crop(restored, back, s)
        return swapped + self.strength * coverage * (restored_crop - swapped)


@dataclass
class Parser:
    """A BiSeNet-class session: which classes the swap may replace."""

    session: LearnedSession
    keep: tuple[str, ...] = ("skin", "brows", "eyes", "nose", "mouth", "lips")

    def __post_init__(self) -> None:
        unknown = sorted(set(self.keep) - set(PARSER_CLASSES))
        if unknown:
            raise ConfigError(f"unknown parser classes {unknown}; choose from {', '.join(PARSER_CLASSES)}")

    def classes(self, crops: Tensor) -> Tensor:
        """(B, 3, S, S) crops in [0, 1] -> (B, 512, 512) int64 class map (argmax of the 19 logits)."""
        x = F.interpolate(crops.detach().cpu().float(), size=(RESTORE_SIZE, RESTORE_SIZE), mode="bilinear",
                          align_corners=False, antialias=crops.shape[-1] > RESTORE_SIZE)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        logits = self.session.run({"input": ((x - mean) / std).numpy()}, per_item=frozenset({"input"}))
        return torch.from_numpy(logits.argmax(1))

    def mask(self, crops: Tensor) -> Tensor:
        """(B, 3, S, S) target crops -> (B, 1, S, S) float: 1 where the parser finds a kept class."""
        labels = self.classes(crops)
        kept = torch.tensor([c for name in self.keep for c in PARSER_CLASSES[name]], dtype=labels.dtype)
        m = torch.isin(labels, kept).float()[:, None]
        size = crops.shape[-1]
        if size != RESTORE_SIZE:
            m = F.interpolate(m, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=size < RESTORE_SIZE)
        return m.to(device=crops.device, dtype=crops.dtype)
