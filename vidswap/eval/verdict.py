"""The verdict of an evaluation: pass / warn / fail per measure against thresholds stated in plain words, the eye
closing check, and the summary table printed to the terminal.

    checks = verdicts(metrics)          # metrics: the dict of vidswap.eval.report.evaluate
    print(verdict_table(checks))

Thresholds are judgement calls for dailies review, written next to each check (``Rule``) so that the report
states them; they are not quality guarantees. Identity thresholds are for the ArcFace judge's cosine: photos of
one person score ~0.4-0.8 against each other, different people ~0-0.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: A frame where the plate's eyes are this much less open than its open level (the 90th percentile of its eye
#: aspect over the clip) counts as the plate's eyes closing.
EYES_CLOSING_DROP = 0.4
#: On such a frame the result's eyes follow when they close at least this share of the plate's drop.
EYES_FOLLOW_SHARE = 0.5
#: The grain check judges plates whose face shows at least this much frame-to-frame noise (8-bit levels,
#: quality.noise's plate mean); on cleaner plates there is no grain to match.
NOISY_PLATE = 1.5


@dataclass(frozen=True)
class Rule:
    """How one measure is judged: pass when the value is inside ``good``, warn inside ``fair``, else fail.

    good, fair: (low, high) bounds, None for open ends. digits: decimals shown. unit: shown after the value.
    """

    key: str
    name: str
    meaning: str
    good: tuple[float | None, float | None]
    fair: tuple[float | None, float | None]
    digits: int = 2
    unit: str = ""

    def status(self, value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return "n/a"
        if _inside(value, self.good):
            return "pass"
        return "warn" if _inside(value, self.fair) else "fail"

    def threshold_text(self) -> str:
        """The thresholds in words: ``pass >= 0.40, warn >= 0.25``."""
        return f"pass {_bounds(self.good, self.digits, self.unit)}, warn {_bounds(self.fair, self.digits, self.unit)}"


@dataclass(frozen=True)
class Check:
    """One judged measure: its rule, the measured value (None when not measurable), the verdict and a note."""

    rule: Rule
    value: float | None
    status: str
    note: str = ""

    @property
    def shown(self) -> str:
        if self.value is None or not math.isfinite(self.value):
            return "n/a"
        return f"{self.value:.{self.rule.digits}f}{self.rule.unit}"


def _inside(value: float, bounds: tuple[float | None, float | None]) -> bool:
    low, high = bounds
    return (low is None or value >= low) and (high is None or value <= high)


def _bounds(bounds: tuple[float | None, float | None], digits: int, unit: str) -> str:
    low, high = bounds
    if low is not None and high is not None:
        return f"{low:.{digits}f}-{high:.{digits}f}{unit}"
    if low is not None:
        return f">= {low:.{digits}f}{unit}"
    return f"<= {high:.{digits}f}{unit}"


RULES: tuple[Rule, ...] = (
    Rule("identity", "looks like the source", "how much the swapped face looks like the source photos "
         "(face-recognition similarity, 0-1)", (0.40, None), (0.25, None)),
    Rule("closer_to_source", "more source than actor", "share of frames where the face looks more like the source "
         "than like the original actor", (0.90, None), (0.60, None)),
    Rule("face_kept", "face found in every frame", "share of frames where the swapped face is still detected",
         (0.99, None), (0.95, None)),
    Rule("pose", "head turns like the plate", "average difference in head motion, result vs plate (the clip's "
         "constant offset taken out)",
         (None, 5.0), (None, 10.0), 1, " deg"),
    Rule("mouth", "mouth opens like the plate", "average difference in mouth opening (gap / width)",
         (None, 0.05), (None, 0.10), 3),
    Rule("eyes_closing", "eyes close with the plate's", "share of the frames where the plate's eyes close or "
         "blink that the result's eyes miss", (None, 0.05), (None, 0.25)),
    Rule("flicker", "no extra flicker", "frame-to-frame shimmer in the face after following the motion, "
         "result / plate (1 = as steady as the plate)", (None, 1.2), (None, 1.5)),
    Rule("jitter", "no extra jitter", "frame-to-frame shake of the facial features, result / plate", (None, 1.2),
         (None, 1.5)),
    Rule("sharpness", "as sharp as the plate", "fine detail in the face, result / plate (below 1 softer, above 1 "
         "sharper or noisier)", (0.8, 1.25), (0.6, 1.6)),
    Rule("seam", "no visible seam", "edge strength along the border of the swapped area, result / plate",
         (None, 1.3), (None, 1.8)),
    Rule("tone_step", "no colour step at the border", "how much the swapped area as a whole is lighter or another "
         "colour than the plate around its border (8-bit levels)", (None, 3.0), (None, 6.0), 1),
    Rule("grain", "grainy like the plate", "frame-to-frame noise in the face, result / plate, on a noisy plate (below "
         "1 a clean patch on a grainy picture)", (0.75, 1.33), (0.5, 2.0)),
    Rule("lighting", "lit like the plate", "how well the light and shade on the face follow the plate's (0-1)",
         (0.8, None), (0.6, None)),
)


def _mean(d: dict | None) -> float | None:
    return None if not d else d.get("mean")


def eyes_closing(eyes_plate: Sequence[float | None], eyes_result: Sequence[float | None],
                 numbers: Sequence[int]) -> dict:
    """Frames where the plate's eyes close (aspect below (1 - EYES_CLOSING_DROP) x its open level) and those where
    the result's eyes do not follow (close less than EYES_FOLLOW_SHARE of the plate's drop, relative to the
    result's own open level).

    Returns {"closing": [frame numbers], "missed": [frame numbers], "missed_share": float or None (no closing),
    "plate_open", "result_open": the open levels (90th percentiles), "plate_min", "result_at_plate_min"}.
    """
    p = np.asarray([np.nan if v is None else v for v in eyes_plate], np.float64)
    r = np.asarray([np.nan if v is None else v for v in eyes_result], np.float64)
    both = np.isfinite(p) & np.isfinite(r)
    empty = {"closing": [], "missed": [], "missed_share": None, "plate_open": None, "result_open": None,
             "plate_min": None, "result_at_plate_min": None}
    if both.sum() < 3:
        return empty
    p_open, r_open = float(np.percentile(p[both], 90)), float(np.percentile(r[both], 90))
    if p_open <= 0 or r_open <= 0:
        return empty
    p_drop = np.where(both, 1.0 - p / p_open, np.nan)
    r_drop = np.where(both, 1.0 - r / r_open, np.nan)
    closing = both & (p_drop >= EYES_CLOSING_DROP)
    missed = closing & (r_drop < EYES_FOLLOW_SHARE * p_drop)
    lowest = int(np.nanargmin(np.where(both, p, np.nan)))
    nums = np.asarray(numbers)
    return {"closing": nums[closing].tolist(), "missed": nums[missed].tolist(),
            "missed_share": float(missed.sum() / closing.sum()) if closing.any() else None,
            "plate_open": p_open, "result_open": r_open, "plate_min": float(p[lowest]),
            "result_at_plate_min": float(r[lowest])}


def verdicts(metrics: dict) -> list[Check]:
    """Every :data:`RULES` measure of ``metrics`` (:func:`vidswap.eval.report.evaluate`) judged."""
    idn, pose, expr, tmp, q, fr = (metrics["identity"], metrics["pose"], metrics["expression"],
                                   metrics["temporal"], metrics["quality"], metrics["frames"])
    evaluated = max(1, fr["evaluated"] - fr["target_face_missing"])
    closing = expr.get("eyes_closing") or {}
    values = {
        "identity": _mean(idn["to_source"]),
        "closer_to_source": idn.get("closer_to_source_rate"),
        "face_kept": 1.0 - fr["result_face_missing"] / evaluated,
        "pose": _mean(pose.get("motion_error_deg")),
        "mouth": _mean(expr["mouth_open_error"]),
        "eyes_closing": closing.get("missed_share"),
        "flicker": tmp["flicker"].get("ratio"),
        "jitter": tmp["jitter"].get("ratio"),
        "sharpness": q.get("sharpness_ratio"),
        "seam": _mean(q["seam_ratio"]),
        "tone_step": _mean(q.get("boundary_tone")),
        "lighting": _mean(q.get("lighting_correlation")),
        "grain": (q.get("noise") or {}).get("ratio"),
    }
    plate_noise = (q.get("noise") or {}).get("target")
    notes = {"identity": f"the plate's own actor scores {_num(_mean(idn['target_to_source']))} against the source",
             "face_kept": f"lost in {fr['result_face_missing']} of {evaluated} frames",
             "pose": _pose_note(pose),
             "eyes_closing": _closing_note(closing)}
    checks = []
    for rule in RULES:
        value = values[rule.key]
        value = None if value is None or not math.isfinite(float(value)) else float(value)
        status = rule.status(value)
        note = notes.get(rule.key, "")
        if rule.key == "eyes_closing" and value is None and closing.get("plate_open") is not None:
            status, note = "pass", "the plate's eyes do not close in these frames"
        if rule.key == "grain" and plate_noise is not None and math.isfinite(plate_noise):
            if plate_noise < NOISY_PLATE:
                value, status = None, "pass"
            note = f"the plate's face shows {plate_noise:.1f} levels of noise" + (
                " (clean: nothing to match)" if plate_noise < NOISY_PLATE else "")
        checks.append(Check(rule, value, status, note))
    return checks


def _pose_note(pose: dict) -> str:
    """The absolute direction error and the constant part of it, which the check leaves out."""
    absolute, offset = _mean(pose.get("error_deg")), pose.get("offset_deg")
    if absolute is None or offset is None or not math.isfinite(absolute):
        return ""
    return (f"direction {absolute:.1f} deg apart on average, {offset:.1f} deg of it constant over the clip: a "
            "template fit reads each face's proportions as a tilt")


def _num(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2f}"


def _closing_note(closing: dict) -> str:
    if not closing.get("closing"):
        return ""
    from vidswap.io.frames import format_frames

    text = f"plate's eyes close in {len(closing['closing'])} frames"
    if closing["missed"]:
        text += (f"; the result's stay open in {format_frames(closing['missed'])} (plate eye opening "
                 f"{closing['plate_open']:.2f} -> {closing['plate_min']:.2f}, result "
                 f"{closing['result_at_plate_min']:.2f} there)")
    return text


def overall(checks: Sequence[Check]) -> str:
    """fail if any check fails, else warn if any warns, else pass."""
    statuses = {c.status for c in checks}
    return "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"


def verdict_table(checks: Sequence[Check], colour: bool = False) -> str:
    """The checks as a fixed-width table for the terminal (ANSI colours when ``colour``), the overall verdict last."""
    paint = {"pass": "\033[32m", "warn": "\033[33m", "fail": "\033[31m"} if colour else {}
    name_w = max(len(c.rule.name) for c in checks)
    value_w = max(len(c.shown) for c in checks)
    lines = [f"{'check':<{name_w}}  {'value':>{value_w}}  verdict  thresholds"]
    for c in checks:
        status = f"{c.status:<7}"
        if c.status in paint:
            status = f"{paint[c.status]}{status}\033[0m"
        line = f"{c.rule.name:<{name_w}}  {c.shown:>{value_w}}  {status}  {c.rule.threshold_text()}"
        lines.append(line + (f"  ({c.note})" if c.note else ""))
    lines.append(f"overall: {overall(checks)}")
    return "\n".join(lines)
