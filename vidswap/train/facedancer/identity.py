"""The frozen ArcFace-class identity encoder of FaceDancer training: embeddings z_id and intermediate features.

Training images are aligned to the ArcFace five-point template at side S (:func:`vidswap.faces.align.
arcface_template`: for S not a multiple of 112 the 112 template is scaled by S/128 and shifted right by 8·S/128;
multiples of 112 scale it). The identity network wants the 112 template, which is the window ``x in [8S/128,
120S/128)``, ``y in [0, 112S/128)`` of the S crop (the whole crop for multiples of 112), resized to 112: :func:`arcface_window` cuts it differentiably (area resampling).

:class:`IdentityNet` runs any ONNX ArcFace-class graph through the project's ONNX -> torch executor
(:class:`vidswap.swap.identity_torch.SFaceTorch`): by default the Apache-2.0 SFace from the model cache; a
user-supplied ArcFace ONNX (``identity.onnx`` in train.yaml) replaces it when every operator is one the executor
translates (it names the first one that is not). Its intermediate feature maps (every PReLU output, in order) feed
IFSR. Frozen: buffers only, inference mode.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidswap.errors import ModelError
from vidswap.swap.identity_torch import SFaceTorch, UnsupportedOp

__all__ = ["IdentityNet", "arcface_window"]

ID_SIZE = 112


def arcface_window(images: Tensor) -> Tensor:
    """(B, 3, S, S) ArcFace-template crops at side S -> (B, 3, 112, 112) crops in the 112 template."""
    s = images.shape[-1]
    if s % ID_SIZE == 0:  # arcface_template scales the 112 template for multiples of 112: the whole crop
        window = images
    else:
        x0, x1, y1 = round(8 * s / 128), round(120 * s / 128), round(112 * s / 128)
        window = images[:, :, :y1, x0:x1]
    if window.shape[-1] == ID_SIZE:
        return window
    mode = "area" if window.shape[-1] > ID_SIZE else "bilinear"
    kw = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(window, size=(ID_SIZE, ID_SIZE), mode=mode, **kw)


class IdentityNet(nn.Module):
    """``forward(images, features=False)``: (B, 3, S, S) ArcFace-aligned images in [0, 1] -> (B, D) L2-normalised
    identity vectors, and with ``features`` the list of intermediate feature maps."""

    def __init__(self, net: SFaceTorch, input_mean: float = 0.0, input_std: float = 1.0):
        super().__init__()
        self.net = net
        self.input_mean, self.input_std = float(input_mean), float(input_std)
        self.requires_grad_(False)
        with torch.no_grad():
            emb, feats = net(torch.zeros(1, 3, ID_SIZE, ID_SIZE), return_features=True)
        self.dim = int(emb.shape[-1])
        self.num_features = len(feats)

    @classmethod
    def load(cls, onnx_path: str | Path | None = None, input_mean: float = 0.0, input_std: float = 1.0
             ) -> "IdentityNet":
        """From an ONNX file (default: the cached SFace, ``model_path('sface')``). The graph sees
        ``(255·x - input_mean) / input_std`` (SFace normalises inside its graph: 0, 1; InsightFace ArcFace
        graphs want 127.5, 127.5)."""
        if onnx_path is None:
            from vidswap.models.registry import model_path

            onnx_path = model_path("sface")
        path = Path(onnx_path)
        if not path.is_file():
            raise ModelError(f"identity encoder {path} does not exist (identity.onnx in train.yaml)")
        try:
            return cls(SFaceTorch.from_onnx(path), input_mean, input_std)
        except UnsupportedOp as exc:
            raise ModelError(f"identity encoder {path}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - onnx parse errors come in many types
            raise ModelError(f"identity encoder {path} is not a readable ONNX graph: {type(exc).__name__}: {exc}") \
                from None

    def train(self, mode: bool = True) -> "IdentityNet":  # frozen: always inference
        return super().train(False)

    def forward(self, images: Tensor, features: bool = False):
        crops = arcface_window(images.float())
        if self.input_mean != 0.0 or self.input_std != 1.0:  # the executor multiplies by 255 itself
            crops = (crops * 255.0 - self.input_mean) / (self.input_std * 255.0)
        if not features:
            return self.net(crops, normalize=True)
        return self.net(crops, normalize=True, return_features=True)
