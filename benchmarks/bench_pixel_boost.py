"""Pixel boost measured: does running a 128-px swapper on sub-pixel-shifted tiles beat swapping at 128 and upscaling?

    python benchmarks/bench_pixel_boost.py [--images single_face,grace_hopper,...] [--boost 2,4]

No real swapper weights exist here, so the 128-px "swapper" is a stand-in ONNX file with inswapper_128's signature
(``tests/onnx_standins.conv_swapper``) whose behaviour is a known function defined at 128 px:

* ``colour``: a per-pixel 3x3 colour matrix + offset (a tone change);
* ``edit``: the crop plus a smooth colour edit, ``x + G_3 * ((M - I) x + c)`` with a Gaussian of sigma 3 px at
  128 (the kind of low-frequency change a swapper makes while keeping the target's skin detail);
* ``sharpen``: unsharp mask, ``2 x - G_1 * x``;
* ``blur``: ``G_1 * x`` (a model that outputs no detail above its resolution).

The ideal full-resolution answer is the same function at the crop's resolution (Gaussians' sigma times k), in
torch, independent of the ONNX file. Crops are real faces from the registry media (YuNet keypoints, the ArcFace
template at 128 k, exactly the crop the inswapper core cuts under ``pixel_boost``). Methods:

* ``upscale``: the crop box-averaged to 128, one run, bicubic back up (what no pixel boost gives, at best);
* ``boost``: k x k strided tiles, each run, put back pixel for pixel (the inswapper core's ``pixel_boost``,
  :func:`~vidswap.swap.learned.swapper.implode` / :func:`~vidswap.swap.learned.swapper.explode`; FaceFusion's
  split). Tile (a, b) holds pixels (a + k i, b + k j): one sub-pixel phase of the crop.

Measured per method against the ideal, mean over the faces: PSNR (dB; 4k-px border excluded), detail error (RMS
of the detail above the 128 band -- ``x - band(x)`` -- minus the ideal's, relative to the ideal's detail RMS: 0 is
exact, 1 is as far off as having no detail) and detail ratio (result's detail RMS / ideal's: sharpness, 1 is right).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
sys.path.insert(0, str(ROOT / "tests"))

import fetch_media  # noqa: E402
import onnx_standins  # noqa: E402
from vidswap.faces.align import TemplateCrop, estimate_alignment, warp_crops  # noqa: E402
from vidswap.faces.detect import YuNetDetector, largest_face  # noqa: E402
from vidswap.io import read_image  # noqa: E402
from vidswap.models.registry import fetch_model, load_manifest  # noqa: E402
from vidswap.swap.learned.swapper import explode, implode  # noqa: E402

SIZE = 128
IMAGES = ("single_face_image", "grace_hopper", "astronaut", "portrait_f1", "portrait_m7", "multi_face_image")
TONE = np.array([[1.10, 0.06, -0.03], [0.02, 0.93, 0.05], [-0.05, 0.04, 1.08]])
EDIT = np.array([[0.85, 0.08, 0.0], [0.05, 1.10, -0.05], [0.0, 0.10, 0.80]])
#: name -> (A, B, sigma at 128, bias): output = A x + B (G_sigma * x) + bias, clipped to [0, 1]
STANDINS = {
    "colour": (TONE, np.zeros((3, 3)), 0.0, np.array([0.03, -0.02, 0.01])),
    "edit": (np.eye(3), EDIT - np.eye(3), 3.0, np.array([0.04, -0.03, 0.05])),
    "sharpen": (2 * np.eye(3), -np.eye(3), 1.0, np.zeros(3)),
    "blur": (np.zeros((3, 3)), np.eye(3), 1.0, np.zeros(3)),
}


def gauss1d(sigma: float) -> np.ndarray:
    """Sampled, normalised Gaussian of radius ceil(3 sigma) ([1.0] for sigma 0)."""
    if sigma <= 0:
        return np.ones(1)
    r = int(np.ceil(3 * sigma))
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return g / g.sum()


def onnx_weight(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    """(3, 3, K, K) conv weight of ``A delta + B G_sigma``."""
    g = gauss1d(sigma)
    g2 = np.outer(g, g)
    delta = np.zeros_like(g2)
    delta[len(g) // 2, len(g) // 2] = 1.0
    return a[:, :, None, None] * delta + b[:, :, None, None] * g2


def ideal(x: torch.Tensor, a, b, sigma: float, bias, k: int) -> torch.Tensor:
    """The stand-in's function at k times its resolution: (N, 3, kS, kS) -> same, float64 separable Gaussian."""
    x = x.double()
    out = torch.einsum("oc,nchw->nohw", torch.as_tensor(a), x)
    if sigma > 0:
        g = torch.as_tensor(gauss1d(sigma * k))
        r = len(g) // 2
        blurred = F.pad(x, (r, r, r, r), mode="reflect")
        blurred = F.conv2d(blurred.reshape(-1, 1, *blurred.shape[-2:]), g.view(1, 1, 1, -1))
        blurred = F.conv2d(blurred, g.view(1, 1, -1, 1)).reshape(x.shape)
        out = out + torch.einsum("oc,nchw->nohw", torch.as_tensor(b), blurred)
    return (out + torch.as_tensor(bias).view(1, 3, 1, 1)).clamp(0, 1).float()


def face_crops(names, size: int) -> torch.Tensor:
    """(N, 3, size, size) float crops in [0, 1]: the largest face of each image in the ArcFace template at size."""
    detector = YuNetDetector.from_path(fetch_model(load_manifest()["yunet"]), threads=2)
    template = np.array(TemplateCrop.arcface(size).template, np.float32)
    crops = []
    for name in names:
        image = read_image(fetch_media.fetch(name))
        face = largest_face(detector([image])[0])
        m = estimate_alignment(face.kps[None], size, template)
        t = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
        crops.append(warp_crops(t, m, size, padding_mode="border"))
    return torch.cat(crops)


def band(x: torch.Tensor, k: int) -> torch.Tensor:
    """(N, C, kS, kS) -> its low band: the k x k box mean (the mean over the tile phases) upscaled bicubically;
    ``x - band(x, k)`` is the detail above the 128-px model's resolution."""
    return F.interpolate(F.avg_pool2d(x, k), scale_factor=k, mode="bicubic", align_corners=False)


def run_model(session: ort.InferenceSession, tiles: torch.Tensor) -> torch.Tensor:
    """(N, 3, 128, 128) -> the stand-in's output, one tile per run (the stand-in has a fixed batch of 1)."""
    source = np.zeros((1, 512), np.float32)
    return torch.cat([torch.from_numpy(session.run(None, {"target": t[None].numpy(), "source": source})[0])
                      for t in tiles])


def methods(session, crops: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    small = F.avg_pool2d(crops, k)
    up = F.interpolate(run_model(session, small), scale_factor=k, mode="bicubic", align_corners=False).clamp(0, 1)
    return {"upscale": up, "boost": explode(run_model(session, implode(crops, k)), k)}


def scores(result: torch.Tensor, truth: torch.Tensor, k: int) -> tuple[float, float, float]:
    """(PSNR dB, detail error, detail ratio), means over the batch, a 4k border excluded."""
    m = 4 * k
    res, tru = result[..., m:-m, m:-m].double(), truth[..., m:-m, m:-m].double()
    mse = ((res - tru) ** 2).mean((1, 2, 3))
    psnr = float((10 * torch.log10(1.0 / mse.clamp_min(1e-12))).mean())
    dr = (result - band(result, k)).double()[..., m:-m, m:-m]
    dt = (truth - band(truth, k)).double()[..., m:-m, m:-m]
    rms_t = dt.pow(2).mean((1, 2, 3)).sqrt()
    err = float(((dr - dt).pow(2).mean((1, 2, 3)).sqrt() / rms_t).mean())
    ratio = float((dr.pow(2).mean((1, 2, 3)).sqrt() / rms_t).mean())
    return psnr, err, ratio


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", default=",".join(IMAGES))
    ap.add_argument("--boost", default="2,4", help="k values: crops of 128 k px")
    args = ap.parse_args(argv)
    names = args.images.split(",")
    print(f"faces: {', '.join(names)}; stand-ins at {SIZE} px; mean over faces")
    print(f"| k (crop) | stand-in | method | PSNR dB | detail error | detail ratio |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for k in (int(v) for v in args.boost.split(",")):
            crops = face_crops(names, SIZE * k)
            for name, (a, b, sigma, bias) in STANDINS.items():
                path = onnx_standins.conv_swapper(Path(tmp) / f"{name}.onnx", onnx_weight(a, b, sigma), bias)
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                truth = ideal(crops, a, b, sigma, bias, k)
                for method, result in methods(session, crops, k).items():
                    psnr, err, ratio = scores(result, truth, k)
                    print(f"| {k} ({SIZE * k}) | {name} | {method} | {psnr:.2f} | {err:.3f} | {ratio:.3f} |",
                          flush=True)


if __name__ == "__main__":
    main()
