"""Debug pictures: a labelled strip per face (target | render | mask | final) and contact sheets of results, and
the render-pass collectors that write them (:class:`DebugStrips`, :class:`ContactSheet`).

Inputs may be torch tensors ``(3, H, W)`` / ``(1, 3, H, W)`` / masks ``(1, H, W)`` / ``(H, W)`` in [0, 1], or numpy
``(H, W, 3)`` / ``(H, W)`` arrays (uint8, uint16 or float in [0, 1]). Output is an RGB ``uint8`` array ready to
save (convert to BGR for ``cv2.imwrite``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from vidswap.composite.compositor import FaceLayer
from vidswap.composite.linear import display_plate
from vidswap.errors import MediaError
from vidswap.io.colour import ColourPipeline
from vidswap.io.frames import Frame

ImageLike = torch.Tensor | np.ndarray


def to_uint8_rgb(image: ImageLike) -> np.ndarray:
    """Any supported image or mask -> ``(H, W, 3)`` uint8 RGB (masks become grey)."""
    if isinstance(image, torch.Tensor):
        t = image.detach().to("cpu", torch.float32)
        while t.ndim > 3:
            t = t[0]
        if t.ndim == 3:
            t = t.permute(1, 2, 0)
        arr = (t.clamp(0.0, 1.0).numpy() * 255.0 + 0.5).astype(np.uint8)
    else:
        arr = np.asarray(image)
        while arr.ndim > 3:
            arr = arr[0]
        if arr.dtype == np.uint8:
            pass
        elif arr.dtype == np.uint16:
            arr = (arr.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
        else:
            arr = (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def _fit_height(img: np.ndarray, height: int) -> np.ndarray:
    h, w = img.shape[:2]
    if h == height:
        return img
    width = max(1, round(w * height / h))
    interp = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return cv2.resize(img, (width, height), interpolation=interp)


def label(img: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner (white on a darkened box), scaled to the image height."""
    out = img.copy()
    h = out.shape[0]
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(0.35, h / 400.0)
    thick = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    pad = max(2, round(3 * scale))
    x1, y1 = min(out.shape[1], tw + 2 * pad), min(h, th + base + 2 * pad)
    out[:y1, :x1] = (out[:y1, :x1].astype(np.uint16) * 2 // 5).astype(np.uint8)
    cv2.putText(out, text, (pad, pad + th), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def strip(
    target_crop: ImageLike,
    render: ImageLike,
    mask: ImageLike,
    final: ImageLike,
    labels: Sequence[str] = ("target", "render", "mask", "final"),
    height: int | None = None,
    gap: int = 4,
) -> np.ndarray:
    """Side-by-side ``target | render | mask | final`` with labels.

    Args:
        target_crop, render, final: images (see module doc).
        mask: ``(1, H, W)`` / ``(H, W)`` mask (shown grey).
        labels: one caption per panel.
        height: panel height (default: the target's).
        gap: pixels of black between panels.

    Returns:
        ``(height, W_total, 3)`` uint8 RGB.
    """
    panels = [to_uint8_rgb(x) for x in (target_crop, render, mask, final)]
    hh = height or panels[0].shape[0]
    panels = [label(_fit_height(p, hh), t) for p, t in zip(panels, labels)]
    sep = np.zeros((hh, gap, 3), np.uint8)
    parts: list[np.ndarray] = []
    for i, p in enumerate(panels):
        if i:
            parts.append(sep)
        parts.append(p)
    return np.concatenate(parts, axis=1)


def contact_sheet(
    pairs: Sequence[tuple[ImageLike, ImageLike]],
    cols: int = 4,
    cell_height: int = 256,
    labels: Sequence[str] | None = None,
    gap: int = 4,
    background: int = 0,
) -> np.ndarray:
    """Grid of ``target | result`` pairs, ``cols`` pairs per row.

    Args:
        pairs: (target, result) images.
        cols: pairs per row.
        cell_height: height of each image.
        labels: optional caption per pair (drawn on the target).
        gap: pixels between pairs (the two images of a pair are ``gap // 2`` apart, in black).
        background: grey level (0-255) between the pairs: a lighter one separates the pairs visibly.

    Returns:
        uint8 RGB sheet (a 1x1 black image for no pairs).
    """
    if not pairs:
        return np.zeros((1, 1, 3), np.uint8)
    cells = []
    for i, (tgt, res) in enumerate(pairs):
        a = _fit_height(to_uint8_rgb(tgt), cell_height)
        b = _fit_height(to_uint8_rgb(res), cell_height)
        if labels is not None and i < len(labels):
            a = label(a, str(labels[i]))
        cells.append(np.concatenate([a, np.zeros((cell_height, gap // 2 or 1, 3), np.uint8), b], axis=1))
    cw = max(c.shape[1] for c in cells)
    cols = max(1, min(cols, len(cells)))
    rows = (len(cells) + cols - 1) // cols
    sheet = np.full((rows * cell_height + (rows - 1) * gap, cols * cw + (cols - 1) * gap, 3), background, np.uint8)
    for i, cell in enumerate(cells):
        r, c = divmod(i, cols)
        y, x = r * (cell_height + gap), c * (cw + gap)
        sheet[y : y + cell_height, x : x + cell.shape[1]] = cell
    return sheet


@dataclass
class DebugStrips:
    """A face sink of the render stage: writes ``<folder>/strip_<frame>_t<track>.png``, target crop | render |
    mask | final, for each swapped face."""

    folder: Path

    def __call__(self, item: FaceLayer) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = item.target_crop * (1 - item.alpha) + item.crop * item.alpha
        image = strip(item.target_crop, item.crop, item.alpha, final)
        write_picture(self.folder / f"strip_{item.number:06d}_t{item.track}.png", image, "debug strip")


#: Contact sheets: pixels between the (plate, result) pairs and their grey, so that pairs read as pairs.
SHEET_GAP = 16
SHEET_BACKGROUND = 128


@dataclass
class ContactSheet:
    """Collects (plate, result) pairs of sampled frames during the render pass and writes them as one PNG.

    plate_colour: a linear plate's OCIO pipeline (thumbnails show its display picture); result_colour: the same
    for linear results (EXR outputs).
    """

    wanted: set[int]
    pairs: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    plate_colour: ColourPipeline | None = None
    result_colour: ColourPipeline | None = None
    height: int = 240

    @classmethod
    def sampling(cls, numbers: list[int], count: int, plate_colour: ColourPipeline | None = None,
                 result_colour: ColourPipeline | None = None) -> "ContactSheet":
        """A sheet of ``count`` frames evenly sampled from ``numbers``."""
        picks = np.linspace(0, len(numbers) - 1, min(count, len(numbers))).round().astype(int)
        return cls({numbers[i] for i in picks}, plate_colour=plate_colour, result_colour=result_colour)

    def __call__(self, before: list[Frame], after: list[Frame]) -> None:
        for a, b in zip(before, after):
            if a.number in self.wanted:
                plate = a.image if self.plate_colour is None else display_plate(self.plate_colour, a.image)
                result = b.image if self.result_colour is None else display_plate(self.result_colour, b.image)
                self.pairs.append((a.number, _fit_height(to_uint8_rgb(plate), self.height),
                                   _fit_height(to_uint8_rgb(result), self.height)))

    def save(self, path: Path) -> Path:
        pairs = [(label(a, f"frame {n} plate"), label(b, f"frame {n} result")) for n, a, b in self.pairs]
        sheet = contact_sheet(pairs, cols=2, cell_height=self.height, gap=SHEET_GAP, background=SHEET_BACKGROUND)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_picture(path, sheet, "contact sheet")
        return path


def write_picture(path: Path, rgb: np.ndarray, what: str) -> None:
    """Write an RGB uint8 picture with cv2 (encoder by extension); MediaError (exit 5) when cv2 reports a
    failure, which it does by its return value only (the paths were checked before the render)."""
    try:
        ok = cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1]))
    except cv2.error as exc:
        raise MediaError(f"could not write the {what} {path} ({exc}); check the folder and retry") from None
    if not ok:
        raise MediaError(f"could not write the {what} {path}; check the folder's space and permissions and retry")
