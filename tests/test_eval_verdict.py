"""The eval verdict (pass / warn / fail against stated thresholds), the eyes-closing check and the refusal of a
result of another picture shape: synthetic series with exact answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidswap.errors import InputError
from vidswap.eval.pairing import check_result_shape, pair_frames
from vidswap.eval.verdict import RULES, eyes_closing, overall


def test_rules_judge_against_their_stated_thresholds():
    rule = {r.key: r for r in RULES}
    assert [rule["identity"].status(v) for v in (0.45, 0.30, 0.10, None)] == ["pass", "warn", "fail", "n/a"]
    assert [rule["sharpness"].status(v) for v in (1.0, 0.7, 2.0)] == ["pass", "warn", "fail"]
    assert rule["identity"].threshold_text() == "pass >= 0.40, warn >= 0.25"
    assert rule["pose"].threshold_text() == "pass <= 5.0 deg, warn <= 10.0 deg"


def test_eyes_that_stay_open_while_the_plates_close_are_flagged():
    plate = [0.25] * 6 + [0.08] * 4
    result = [0.25] * 6 + [0.24, 0.24, 0.10, 0.10]
    found = eyes_closing(plate, result, list(range(10)))
    assert found["closing"] == [6, 7, 8, 9] and found["missed"] == [6, 7]
    assert found["missed_share"] == 0.5
    assert eyes_closing([0.25] * 10, [0.25] * 10, list(range(10)))["missed_share"] is None


class _Info:
    def __init__(self, w, h):
        self.width, self.height, self.path = w, h, Path("r.mp4")


def test_a_compare_video_is_refused_and_a_preview_is_noted():
    with pytest.raises(InputError, match="side-by-side --compare"):
        check_result_shape(_Info(1280, 360), _Info(640, 360))
    assert "scaled" in check_result_shape(_Info(320, 180), _Info(640, 360))
    assert check_result_shape(_Info(640, 360), _Info(640, 360)) is None


def test_a_short_result_gets_the_frames_to_pass():
    with pytest.raises(InputError, match="e.g. --frames 0-47 when"):
        pair_frames(range(0, 48), range(0, 472), None)
    with pytest.raises(InputError, match="--frames 1011-1020 \\(the result's own"):
        pair_frames(range(1011, 1021), range(1001, 1201), None)


def _stat(v: float) -> dict:
    return {"mean": v}


def _metrics() -> dict:
    """What `vidswap eval` measured on single_face_clip x portrait_m7 (relit), as far as the checks read it."""
    return {"identity": {"to_source": _stat(0.431), "to_target": _stat(0.419), "target_to_source": _stat(0.113),
                         "closer_to_source_rate": 0.4},
            "pose": {"error_deg": _stat(6.68), "motion_error_deg": _stat(1.28), "offset_deg": 6.61},
            "expression": {"mouth_open_error": _stat(0.007), "eye_open_error": _stat(0.021), "eyes_closing": {}},
            "temporal": {"flicker": {"ratio": 0.91}, "jitter": {"ratio": 0.89}},
            "quality": {"sharpness_ratio": 0.87, "seam_ratio": _stat(0.89), "boundary_step": _stat(9.58),
                        "boundary_tone": _stat(1.53), "lighting_correlation": _stat(0.95),
                        "noise": {"ratio": 0.98, "target": 4.2}},
            "frames": {"evaluated": 72, "target_face_missing": 0, "result_face_missing": 0}}


def test_suite_table_shows_the_judged_head_motion_and_tone():
    from vidswap.eval.suite import summary_markdown

    table = summary_markdown({"config": "c.yaml", "judges": "j", "retrieval": {}, "swaps": [
        {"target": "t.mp4", "sources": ["s.jpg"], "frames": None, "run": {"fps": 9.5, "frames_swapped": 72},
         "metrics": _metrics(), "report": "r.html"}]})
    row = next(line for line in table.splitlines() if line.startswith("| 1 |"))
    assert row == ("| 1 | t.mp4 | s.jpg | all | 9.5 | 72 | 0.431 | 0.419 | 0.113 | 1.28 | 0.007 | 0.021 | 0.91 "
                   "| 0.89 | 0.87 | 0.98 | 0.89 | 1.5 | [report](r.html) |")


def test_grain_check_judges_noisy_plates_only():
    """On a plate whose face shows 4.2 levels of noise the result's 0.98 x passes and 0.4 x (a clean patch) fails;
    on a clean plate (0.6 levels) there is nothing to match: the check passes without a value."""
    from vidswap.eval.verdict import verdicts

    def grain(ratio, plate):
        m = _metrics()
        m["quality"]["noise"] = {"ratio": ratio, "target": plate}
        return {c.rule.key: c for c in verdicts(m)}["grain"]

    assert (grain(0.98, 4.2).value, grain(0.98, 4.2).status) == (0.98, "pass")
    assert grain(0.4, 4.2).status == "fail" and grain(0.6, 4.2).status == "warn"
    clean = grain(0.4, 0.6)
    assert clean.value is None and clean.status == "pass"
    assert clean.note == "the plate's face shows 0.6 levels of noise (clean: nothing to match)"


def test_head_check_judges_the_motion_and_states_the_constant_offset():
    from vidswap.eval.verdict import verdicts

    checks = {c.rule.key: c for c in verdicts(_metrics())}
    assert checks["pose"].value == 1.28 and checks["pose"].status == "pass"  # 6.68 absolute would warn
    assert checks["pose"].note == ("direction 6.7 deg apart on average, 6.6 deg of it constant over the clip: a "
                                   "template fit reads each face's proportions as a tilt")
    assert checks["tone_step"].value == 1.53 and checks["tone_step"].status == "pass"  # 9.58 point by point fails
