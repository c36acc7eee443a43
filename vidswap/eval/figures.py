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
from vidswap.composite.debug import SHEET_BACKGROUND, contact_sheet, label, to_uint8_rgb

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
    _plot(a1, x, s("pose_error"), "head direction difference")
    _plot(a1, x, s("pose_motion_error"), "head motion difference (constant offset out; the verdict's)")
    _plot(a1, x, s("pose_l2"), "yaw / pitch / roll difference combined", linestyle="--")
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

    fig, (a1, a2, a3) = _figure(3)
    _plate_vs_result(a1, x, s, "flicker")
    _finish(a1, "8-bit levels", "Flicker: |frame - motion-compensated previous| in the face region")
    _plate_vs_result(a2, x, s, "jitter")
    _finish(a2, "px / frame²", "Landmark jitter: RMS second difference of the 106 points")
    _plate_vs_result(a3, x, s, "noise")
    _finish(a3, "8-bit levels", "Noise (grain): frame-to-frame high-pass residual on the face's flatter half")
    a3.set_xlabel("frame")
    files["temporal"] = _save(fig, out_dir / "temporal.png")

    fig, (a1, a2, a3) = _figure(3)
    sharp = s("sharp_result") / s("sharp_target")
    _plot(a1, x, sharp, "result / plate")
    smear = s("smear_result") / s("smear_target")
    if np.isfinite(smear).any():
        a1.plot(x, smear, "o", markersize=3, label="motion smear: along / across the motion, result / plate")
    a1.axhline(1.0, color="grey", linewidth=0.8)
    _finish(a1, "ratio", "Sharpness (Laplacian energy in the face region) and motion smear relative to the plate")
    _plot(a2, x, s("seam"), "result / plate")
    a2.axhline(1.0, color="grey", linewidth=0.8)
    _finish(a2, "seam ratio", "Seam: gradient along the swapped region's boundary relative to the plate")
    _plot(a3, x, s("boundary_step"), "point by point")
    _plot(a3, x, s("boundary_tone"), "whole border (the verdict's)")
    _finish(a3, "8-bit levels", "Tone step across the swapped region's boundary beyond the plate's own")
    a3.set_xlabel("frame")
    files["quality"] = _save(fig, out_dir / "quality.png")

    files["contact_sheet"] = write_png(out_dir / "contact_sheet.png",
                                       contact_sheet(_labelled(sheet_pairs, sheet_labels), cols=2,
                                                     cell_height=SHEET_HEIGHT, gap=16,
                                                     background=SHEET_BACKGROUND))
    files["faces_sheet"] = write_png(out_dir / "faces_sheet.png",
                                     contact_sheet(_labelled(face_pairs, face_labels), cols=4,
                                                   cell_height=FACE_HEIGHT, gap=16, background=SHEET_BACKGROUND))
    return files


def faces_strip(source: np.ndarray, plate: np.ndarray, result: np.ndarray, frame: int,
                height: int = FACE_HEIGHT) -> np.ndarray:
    """The report's first picture: source | plate | result faces side by side, labelled (uint8 RGB)."""
    cells = [label(cv2.resize(to_uint8_rgb(img), (height, height), interpolation=cv2.INTER_AREA), text)
             for img, text in ((source, "source"), (plate, f"plate #{frame}"), (result, f"result #{frame}"))]
    gap = np.full((height, 8, 3), SHEET_BACKGROUND, np.uint8)
    return np.concatenate([cells[0], gap, cells[1], gap, cells[2]], axis=1)


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
    """(measure, value, how to read it) rows of the headline numbers, in plain words."""
    idn, pose, expr, tmp, q = m["identity"], m["pose"], m["expression"], m["temporal"], m["quality"]
    return [
        ("looks like the source (0-1)", _fmt(_stat(idn["to_source"])),
         f"face-recognition similarity to the source photos, higher is better; the plate's own actor scores "
         f"{_fmt(_stat(idn['target_to_source']))}"),
        ("still looks like the actor (0-1)", _fmt(_stat(idn["to_target"])),
         "similarity to the original face in the same frame; lower = less of the actor left (1 = unchanged)"),
        ("frames that look more like the source", _fmt(idn["closer_to_source_rate"]), "share of frames, 1 best"),
        ("head motion difference (deg, mean / worst 5%)",
         f"{_fmt(_stat(pose['motion_error_deg']), 2)} / {_fmt(_stat(pose['motion_error_deg'], 'p95'), 2)}",
         "how far the result's head turns differently from the plate's, the clip's constant offset taken out; "
         "0 best"),
        ("head direction difference (deg, mean / worst 5%)",
         f"{_fmt(_stat(pose['error_deg']), 2)} / {_fmt(_stat(pose['error_deg'], 'p95'), 2)}",
         f"how far the result's head points away from the plate's; {_fmt(pose['offset_deg'], 1)} deg of it is "
         "constant over the clip (a template fit reads each face's proportions as a tilt); 0 best"),
        ("yaw / pitch / roll difference (deg, mean)", _fmt(_stat(pose["l2_deg"]), 2),
         "the same difference as three turn angles combined; 0 best"),
        ("mouth opening difference (mean)", _fmt(_stat(expr["mouth_open_error"])),
         "difference in mouth gap / mouth width; 0 best"),
        ("eye opening difference (mean)", _fmt(_stat(expr["eye_open_error"])),
         "difference in lid gap / eye width; 0 best"),
        ("flicker vs plate (ratio / extra levels)", f"{_fmt(tmp['flicker']['ratio'])} / {_fmt(tmp['flicker']['excess'])}",
         "frame-to-frame shimmer in the face after following the motion; 1 / 0 = as steady as the plate"),
        ("feature shake vs plate", _fmt(tmp["jitter"]["ratio"]), "1 = as steady as the plate"),
        ("sharpness vs plate", _fmt(q["sharpness_ratio"]), "below 1 softer, above 1 sharper or noisier"),
        ("noise vs plate (ratio / plate's levels)",
         f"{_fmt((q.get('noise') or {}).get('ratio'))} / {_fmt((q.get('noise') or {}).get('target'))}",
         "frame-to-frame noise (grain) in the face; below 1 a cleaner face than the plate's picture, 1 best"),
        ("seam vs plate (mean)", _fmt(_stat(q["seam_ratio"])), "edge strength on the swap's border; 1 best"),
        ("colour step at the border (mean, 8-bit levels)", _fmt(_stat(q.get("boundary_tone")), 2),
         "the swapped area as a whole lighter or another colour than the plate around it; 0 best"),
        ("tone step point by point along the border (mean)", _fmt(_stat(q.get("boundary_step")), 2),
         "also counts local differences (one cheek lighter, a brow at the edge); 0 best"),
    ]


COLOURS = {"pass": "#1a7f37", "warn": "#b35900", "fail": "#c62828", "n/a": "#777"}


def verdict_html(verdict: dict) -> str:
    """The verdict table: each check, its value, pass / warn / fail in colour, the thresholds it was judged by."""
    rows = []
    for c in verdict["checks"]:
        value = _fmt(c["value"], 2 if c["key"] not in ("mouth",) else 3)
        colour = COLOURS.get(c["status"], "#777")
        note = f"<br><span class='note'>{html.escape(c['note'])}</span>" if c["note"] else ""
        rows.append(f"<tr><td><b>{html.escape(c['check'])}</b><br><span class='note'>{html.escape(c['meaning'])}"
                    f"</span>{note}</td><td class='v'>{value}</td><td class='s' style='background:{colour}'>"
                    f"{c['status']}</td><td class='note'>{html.escape(c['thresholds'])}</td></tr>")
    colour = COLOURS.get(verdict["overall"], "#777")
    return (f"<p class='overall' style='background:{colour}'>overall: {verdict['overall']}</p>\n"
            "<table><tr><th>check</th><th>value</th><th>verdict</th><th>thresholds</th></tr>\n"
            + "\n".join(rows) + "\n</table>")


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
    strip = ""
    if "strip" in images:
        data = base64.b64encode(Path(images["strip"]).read_bytes()).decode("ascii")
        strip = (f"<figure><img class='strip' src='data:image/png;base64,{data}' alt='strip'>"
                 "<figcaption>source | plate | result, the middle evaluated frame</figcaption></figure>")
    for name in order + [n for n in images if n not in order and n != "strip"]:
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
td.s {{ color: white; font-weight: bold; text-align: center; }}
p.overall {{ color: white; font-weight: bold; font-size: 20px; padding: 6px 12px; display: inline-block; }}
img.strip {{ max-width: 520px; }}
</style></head><body>
<h1>Evaluation: {html.escape(Path(m['result']).name)}</h1>
{strip}
<h2>Verdict</h2>
{verdict_html(m['verdict']) if 'verdict' in m else ''}
{f"<p class='note'>{html.escape(fr['size_note'])}</p>" if fr.get('size_note') else ''}
<p>result <code>{html.escape(m['result'])}</code><br>plate <code>{html.escape(m['target'])}</code><br>
sources: {sources}</p>
<p>{fr['evaluated']} frames evaluated ({fr['first']}-{fr['last']}, every {fr['every']}); plate face missing in
{fr['target_face_missing']}, result face lost in {fr['result_face_missing']}.
Evaluation took {m['timing']['seconds']:.1f} s ({m['timing']['ms_per_frame']:.0f} ms per frame).</p>
<h2>Numbers</h2>
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
