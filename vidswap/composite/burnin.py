"""Preview decorations: side-by-side compares (plate | result) and burned-in slate text.

Burn-in lines: the shot name and preset at the top, the frame number and timecode at the bottom, drawn in white
on a darkened box so they read on any plate. Works on uint8, uint16 and float pictures (white = the format's
full scale, 1.0 for float).
"""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np

from vidswap.composite.convert import INT_SCALE, from_float, to_float
from vidswap.io import Frame
from vidswap.io.frames import resize_image, timecode_at


def _white(dtype: np.dtype) -> float:
    return INT_SCALE.get(np.dtype(dtype), 1.0)


def draw_text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    """Draw ``text`` at ``origin`` (x, baseline y) in place: white on a darkened box (reads on any plate)."""
    white = _white(image.dtype)
    thick = max(1, round(scale * 1.5))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(2, round(th * 0.3))
    x0, y0 = max(0, origin[0] - pad), max(0, origin[1] - th - pad)
    x1, y1 = min(image.shape[1], origin[0] + tw + pad), min(image.shape[0], origin[1] + base + pad)
    box = image[y0:y1, x0:x1]
    box[...] = (box * 0.35).astype(image.dtype)
    # OpenCV draws text on 8-bit pictures only: draw a coverage mask, then lay white over at any depth
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.putText(mask, text, (origin[0] - x0, origin[1] - y0), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick,
                cv2.LINE_AA)
    cover = (mask.astype(np.float32) / 255.0)[..., None]
    box[...] = (box * (1.0 - cover) + white * cover).astype(image.dtype)


def burn_in(image: np.ndarray, top_left: str, top_right: str, bottom_left: str, bottom_right: str) -> np.ndarray:
    """A copy of HxWx3 ``image`` with the four corner texts drawn (scaled to the picture height)."""
    out = np.ascontiguousarray(image).copy()
    h, w = out.shape[:2]
    scale = max(0.35, h / 900.0)
    pad = max(6, round(h / 50))
    for text, right, bottom in ((top_left, False, False), (top_right, True, False),
                                (bottom_left, False, True), (bottom_right, True, True)):
        if not text:
            continue
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, max(1, round(scale * 1.5)))
        x = w - tw - pad if right else pad
        y = h - pad - base if bottom else pad + th
        draw_text(out, text, (x, y), scale)
    return out


def decorate_frame(plate: Frame, result: Frame, compare: bool, burnin: bool, shot: str, preset: str,
                   size: tuple[int, int], fps=None) -> np.ndarray:
    """The picture written for one frame of a preview: ``result`` (or plate | result when ``compare``) at
    ``size`` = (width, height) of the whole picture, with the burn-in when ``burnin``. A clip without timecode
    is burned in with the timecode of its frame number at ``fps`` from 00:00:00:00."""
    if compare:
        half = (size[0] // 2, size[1])
        left = resize_image(plate.image, half)
        if left.dtype != result.image.dtype:  # e.g. a linear plate beside its display-referred result
            left = from_float(to_float(left), result.image.dtype)
        left = burn_in(left, "", "", "", "plate")
        right = burn_in(resize_image(result.image, (size[0] - half[0], size[1])), "", "", "", "result")
        image = np.hstack([left, right])
    else:
        image = resize_image(result.image, size)
    if burnin:
        timecode = plate.timecode
        if timecode is None and fps:
            timecode = timecode_at("00:00:00:00", Fraction(fps), plate.number)
        label = f"frame {plate.number}  {timecode or ''}".strip()
        image = burn_in(image, shot, f"vidswap {preset}", label, "")
    return image
