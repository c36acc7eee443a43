"""Pictures and the HTML page of an evaluation report (matplotlib's object API: no pyplot global state).

``write_figures`` writes the per-frame plots and the contact sheets as PNGs; ``html_report`` builds a
self-contained page (PNGs embedded as base64) from the metrics dict of :func:`vidswap.eval.report.evaluate`.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from vidswap.composite.debug import contact_sheet, label, to_uint8_rgb

PLOT_SIZE = (10, 3.2)
SHEET_HEIGHT = 200
FACE_HEIGHT = 160
DPI = 100


def _figure(rows: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(PLOT_SIZE[0], PLOT_SIZE[1] * rows), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    tmp = path.with_name(path.name + ".part.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def _series(metrics: dict, key: str) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in metrics["per_frame"][key]], dtype=np.float64)


def _plot(ax, x, y, label, **kw):
    ax.plot(x, y, label=label, linewidth=1.2, marker="." if len(x) < 60 else None, **kw)


def _plate_vs_result(ax, x, series, key: str) -> None:
    """``<key>_target`` dashed as "plate" and ``<key>_result`` as "result" on one axis."""
    _plot(ax, x, series(f"{key}_target"), "plate", linestyle="--")
    _plot(ax, x, series(f"{key}_result"), "result")


def _finish(ax, ylabel: str, title: str | None = None) -> None:
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 image as PNG (atomically)."""
    tmp = path.with_name(path.name + ".part.png")
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {path}")
    os.replace(tmp, path)
    return path


def _labelled(pairs: Sequence[tuple[np.ndarray, np.ndarray]], labels: Sequence[str]
              ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(plate, result) pairs with "<label> plate" / "result" written on them."""
    return [(label(to_uint8_rgb(a), f"{text} plate"), label(to_uint8_rgb(b), "result"))
            for (a, b), text in zip(pairs, labels)]


def write_figures(out_dir: Path, metrics: dict, sheet_pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                  sheet_labels: Sequence[str], face_pairs: Sequence[tuple[np.ndarray, np.ndarray]],
                  face_labels: Sequence[str]) -> dict[str, Path]:
    """Write the plots and sheets into ``out_dir``; returns name -> path (in the order of the report)."""
    out_dir = Path(out_dir)
    x = np.asarray(metrics["per_frame"]["number"])
    s = lambda key: _series(metrics, key)  # noqa: E731
    files: dict[str, Path] = {}

    fig, (ax,) = _figure(1)
    _plot(ax, x, s("id_to_source"), "result vs source")
    _plot(ax, x, s("id_to_target"), "result vs plate (same frame)")
    _plot(ax, x, s("target_to_source"), "plate vs source (baseline)", linestyle="--")
    ax.set_ylim(-0.2, 1.05)
    _finish(ax, "ArcFace cosine", "Identity (ArcFace MobileFaceNet judge; higher vs source = better swap)")
    ax.set_xlabel("frame")
    files["identity"] = _save(fig, out_dir / "identity.png")

    fig, (a1, a2) = _figure(2)
    _plot(a1, x, s("pose_error"), "geodesic error")
    _plot(a1, x, s("pose_l2"), "L2 of (yaw, pitch, roll) error", linestyle="--")
    _finish(a1, "degrees", "Head pose error, result vs plate (2d106 landmarks + 3D template fit)")
    for key, colour in (("yaw", "C0"), ("pitch", "C1"), ("roll", "C2")):
        _plot(a2, x, s(f"{key}_target"), f"{key} plate", color=colour, linestyle="--")
        _plot(a2, x, s(f"{key}_result"), f"{key} result", color=colour)
    _finish(a2, "degrees")
    a2.set_xlabel("frame")
    files["pose"] = _save(fig, out_dir / "pose.png")

    fig, (a1, a2) = _figure(2)
    _plate_vs_result(a1, x, s, "mouth")
    _finish(a1, "mouth opening ratio", "Expression: mouth opening (inner-lip gap / width) and eye aspect ratio")
    _plate_vs_result(a2, x, s, "eyes")
    _finish(a2, "eye aspect ratio")
    a2.set_xlabel("frame")
    files["expression"] = _save(fig, out_dir / "expression.png")

    fig, (a1, a2) = _figure(2)
    _plate_vs_result(a1, x, s, "flicker")
    _finish(a1, "8-bit levels", "Flicker: |frame - motion-compensated previous| in the face region")
    _plate_vs_result(a2, x, s, "jitter")
    _finish(a2, "px / frame²", "Landmark jitter: RMS second difference of the 106 points")
    a2.set_xlabel("frame")
    files["temporal"] = _save(fig, out_dir / "temporal.png")

    fig, (a1, a2, a3) = _figure(3)
    sharp = s("sharp_result") / s("sharp_target")
    _plot(a1, x, sharp, "result / plate")
    a1.axhline(1.0, color="grey", linewidth=0.8)
    _finish(a1, "sharpness ratio", "Sharpness (Laplacian energy in the face region) relative to the plate")
    _plot(a2, x, s("seam"), "result / plate")
    a2.axhline(1.0, color="grey", linewidth=0.8)
    _finish(a2, "seam ratio", "Seam: gradient along the swapped region's boundary relative to the plate")
    _plot(a3, x, s("boundary_step"), "result vs plate")
    _finish(a3, "8-bit levels", "Tone step across the swapped region's boundary beyond the plate's own")
    a3.set_xlabel("frame")
    files["quality"] = _save(fig, out_dir / "quality.png")

    files["contact_sheet"] = write_png(out_dir / "contact_sheet.png",
                                       contact_sheet(_labelled(sheet_pairs, sheet_labels), cols=2,
                                                     cell_height=SHEET_HEIGHT, gap=12))
    files["faces_sheet"] = write_png(out_dir / "faces_sheet.png",
                                     contact_sheet(_labelled(face_pairs, face_labels), cols=4,
                                                   cell_height=FACE_HEIGHT, gap=12))
    return files


# --------------------------------------------------------------------------------------------------------------
# HTML


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        if not np.isfinite(v):
            return "n/a"
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _stat(d: dict | None, key: str = "mean") -> float | None:
    return None if d is None else d.get(key)


def summary_rows(m: dict) -> list[tuple[str, str, str]]:
    """(measure, value, how to read it) rows of the headline numbers."""
    idn, pose, expr, tmp, q = m["identity"], m["pose"], m["expression"], m["temporal"], m["quality"]
    return [
        ("identity to source (mean cos)", _fmt(_stat(idn["to_source"])),
         f"higher is better; plate's own similarity to the source: {_fmt(_stat(idn['target_to_source']))}"),
        ("identity to plate (mean cos)", _fmt(_stat(idn["to_target"])),
         "lower = less of the original actor left (1.0 = unchanged)"),
        ("frames closer to source than plate", _fmt(idn["closer_to_source_rate"]), "share of frames, 1.0 best"),
        ("pose error (deg, mean / p95)",
         f"{_fmt(_stat(pose['error_deg']), 2)} / {_fmt(_stat(pose['error_deg'], 'p95'), 2)}",
         "geodesic angle result vs plate; 0 best"),
        ("pose L2 (deg, mean)", _fmt(_stat(pose["l2_deg"]), 2), "yaw/pitch/roll L2 as in the papers"),
        ("mouth opening error (mean)", _fmt(_stat(expr["mouth_open_error"])), "|Δ inner-lip gap / width|; 0 best"),
        ("eye opening error (mean)", _fmt(_stat(expr["eye_open_error"])), "|Δ eye aspect ratio|; 0 best"),
        ("flicker ratio / excess", f"{_fmt(tmp['flicker']['ratio'])} / {_fmt(tmp['flicker']['excess'])}",
         "result / plate after motion compensation; 1 / 0 = as steady as the plate"),
        ("landmark jitter ratio", _fmt(tmp["jitter"]["ratio"]), "result / plate; 1 = as steady as the plate"),
        ("sharpness ratio", _fmt(q["sharpness_ratio"]), "result / plate; < 1 softer, > 1 sharper or noisier"),
        ("seam ratio (mean)", _fmt(_stat(q["seam_ratio"])), "edge energy on the swap boundary vs plate; 1 best"),
        ("boundary tone step (mean, levels)", _fmt(_stat(q.get("boundary_step")), 2),
         "colour step across the swap boundary beyond the plate's; 0 best"),
    ]


def html_report(metrics: dict, images: dict[str, Path]) -> str:
    """A self-contained HTML page: summary table, judges and licenses, all pictures inline."""
    m = metrics
    rows = "\n".join(f"<tr><td>{html.escape(a)}</td><td class='v'>{b}</td><td>{html.escape(c)}</td></tr>"
                     for a, b, c in summary_rows(m))
    fr = m["frames"]
    judges = "\n".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>"
                       for k, v in m["judges"].items())
    pics = []
    captions = {
        "contact_sheet": "Contact sheet: plate | result, evenly sampled frames",
        "faces_sheet": "Face close-ups: plate | result (same frames)",
        "identity": "Identity over time", "pose": "Head pose over time", "expression": "Expression over time",
        "temporal": "Temporal stability", "quality": "Image quality in the face region",
    }
    order = ["contact_sheet", "faces_sheet", "identity", "pose", "expression", "temporal", "quality"]
    for name in order + [n for n in images if n not in order]:
        if name not in images:
            continue
        data = base64.b64encode(Path(images[name]).read_bytes()).decode("ascii")
        pics.append(f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(name)}'>"
                    f"<figcaption>{html.escape(captions.get(name, name))}</figcaption></figure>")
    sources = ", ".join(html.escape(Path(s).name) for s in m["sources"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vidswap eval: {html.escape(Path(m['result']).name)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 4px 8px; font-size: 14px; }}
td.v {{ font-family: monospace; text-align: right; white-space: nowrap; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; font-size: 13px; }}
.note {{ color: #555; font-size: 13px; }}
</style></head><body>
<h1>Evaluation: {html.escape(Path(m['result']).name)}</h1>
<p>result <code>{html.escape(m['result'])}</code><br>plate <code>{html.escape(m['target'])}</code><br>
sources: {sources}</p>
<p>{fr['evaluated']} frames evaluated ({fr['first']}-{fr['last']}, every {fr['every']}); plate face missing in
{fr['target_face_missing']}, result face lost in {fr['result_face_missing']}.
Evaluation took {m['timing']['seconds']:.1f} s ({m['timing']['ms_per_frame']:.0f} ms per frame).</p>
<h2>Summary</h2>
<table><tr><th>measure</th><th>value</th><th>how to read</th></tr>
{rows}
</table>
<h2>Pictures</h2>
{''.join(pics)}
<h2>Judges</h2>
<ul>{judges}</ul>
<p class="note">All numbers and per-frame series are in metrics.json next to this page.</p>
</body></html>
"""
