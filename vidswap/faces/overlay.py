"""Pictures of an analysis: per-frame overlays (boxes, track ids, landmarks, pose axes) and trajectory plots."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidswap.faces.pose import euler_from_matrix
from vidswap.faces.tracksfile import ShotAnalysis, TrackAnalysis

_COLOURS = [(255, 80, 80), (80, 200, 255), (120, 255, 120), (255, 200, 60), (220, 120, 255), (255, 255, 255)]


def track_colour(track_id: int) -> tuple[int, int, int]:
    return _COLOURS[track_id % len(_COLOURS)]


def draw_face(image: np.ndarray, track: TrackAnalysis, i: int, label: str | None = None) -> None:
    """Draw one track's face at its row ``i`` onto an HxWx3 uint8 RGB image (in place).

    Box and id, every 4th landmark (smoothed), the iris centres, and the head's canonical axes (x red, y green,
    z blue) from the pose: ``axis_k = s * R[:, k]`` drawn from the face centre ``t``.
    """
    colour = track_colour(track.id)
    scale = max(1, round(image.shape[0] / 540))
    x0, y0, x1, y1 = (int(round(v)) for v in track.boxes[i])
    style = cv2.LINE_AA
    cv2.rectangle(image, (x0, y0), (x1, y1), colour, scale, style)
    text = label or f"track {track.id}" + (" (interp)" if track.interpolated[i] else "")
    text_box(image, text, (x0, y0 - 4), colour, 0.5 * scale, scale)
    pts = track.smoothed[i]
    for x, y, _ in pts[:468:4]:
        cv2.circle(image, (int(round(x)), int(round(y))), scale, colour, -1, style)
    for k in (468, 473):
        cv2.circle(image, (int(round(pts[k, 0])), int(round(pts[k, 1]))), 2 * scale, (255, 255, 0), -1, style)
    if np.isfinite(track.s[i]):
        origin = track.t[i][:2]
        length = 0.8 * float(track.s[i])
        for k, axis_colour in enumerate(((255, 0, 0), (0, 255, 0), (0, 128, 255))):
            tip = origin + length * track.R[i][:2, k]
            cv2.arrowedLine(image, tuple(int(round(v)) for v in origin), tuple(int(round(v)) for v in tip),
                            axis_colour, 2 * scale, style, tipLength=0.15)


def draw_overlay(image: np.ndarray, number: int, analysis: ShotAnalysis, targets: set[int] = frozenset()) -> np.ndarray:
    """The frame ``number`` with every track present drawn on it (uint8 RGB copy)."""
    out = _to_uint8(image).copy()
    for track in analysis.tracks:
        i = track.index_of(number)
        if i is not None:
            tag = f"track {track.id}" + (" TARGET" if track.id in targets else "")
            draw_face(out, track, i, tag)
    scale = max(1, round(out.shape[0] / 540))
    text_box(out, f"frame {number}", (8, out.shape[0] - 8), (255, 255, 255), 0.5 * scale, scale)
    return out


def text_box(image: np.ndarray, text: str, bottom_left: tuple[int, int], colour: tuple[int, int, int],
             font_scale: float, thickness: int) -> None:
    """Write ``text`` in ``colour`` on a near-black box (legible on dark and bright plates alike), its bottom-left
    corner at ``bottom_left`` moved inside the image (in place, HxWx3 uint8 RGB)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, font_scale, thickness)
    pad = max(2, thickness * 2)
    h, w = image.shape[:2]
    x = int(min(max(0, bottom_left[0]), max(0, w - tw - 2 * pad)))
    y = int(min(max(th + base + 2 * pad, bottom_left[1]), h))
    top = max(0, y - th - base - 2 * pad)
    box = image[top:y, x:x + tw + 2 * pad]
    box[:] = (box.astype(np.uint16) // 5).astype(np.uint8)  # darkened to a fifth: the plate still shows through
    cv2.putText(image, text, (x + pad, y - base - pad), font, font_scale, colour, thickness, cv2.LINE_AA)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def plot_track(track: TrackAnalysis, fps: float, path: Path, points: tuple[int, ...] = (1, 152, 33, 263, 13)) -> Path:
    """PNG of raw vs smoothed trajectories (x and y) of a few landmarks of one track, plus head yaw/pitch/roll."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = track.frames  # frame numbers: what VFX people count in
    names = {1: "nose tip", 152: "chin", 33: "right eye corner", 263: "left eye corner", 13: "upper lip"}
    fig, axes = plt.subplots(len(points) + 1, 2, figsize=(12, 2.2 * (len(points) + 1)), sharex=True)
    for row, p in enumerate(points):
        for col, axis in enumerate("xy"):
            ax = axes[row, col]
            ax.plot(t, track.smoothed[:, p, col], lw=1.6, color="C0", label="smoothed", zorder=1)
            ax.plot(t, track.raw[:, p, col], lw=0.8, color="C1", marker=".", markersize=3, label="raw (measured)",
                    zorder=2)  # drawn over the smoothed line: where they differ is what smoothing removed
            ax.set_ylabel(f"{names.get(p, p)} {axis} (px)", fontsize=8)
            if row == 0 and col == 0:
                ax.legend(fontsize=8)
    import torch

    yaw, pitch, roll = (a.numpy() for a in euler_from_matrix(torch.from_numpy(track.R)))
    ax = axes[-1, 0]
    for series, name in ((yaw, "yaw"), (pitch, "pitch"), (roll, "roll")):
        ax.plot(t, series, lw=1.0, label=name)
    ax.set_ylabel("head pose (deg)", fontsize=8)
    ax.legend(fontsize=8)
    ax = axes[-1, 1]
    ax.plot(t, track.confidences, lw=1.0, color="C3")
    ax.set_ylabel("landmark confidence", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("frame")
    fig.suptitle(f"track {track.id}: frames {track.frames[0]}-{track.frames[-1]} ({len(track.frames)} frames, "
                 f"{fps:g} fps), raw vs smoothed landmarks", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
