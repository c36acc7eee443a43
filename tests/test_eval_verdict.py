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
