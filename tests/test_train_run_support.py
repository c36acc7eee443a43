"""The checkpoint schedule and step records every `vidswap train` method uses (exact answers, fake clock)."""

import io
import json

from vidswap.train.run_support import record_step, save_schedule


def test_save_schedule_by_steps_and_by_minutes():
    now = [0.0]
    due = save_schedule(3, None, clock=lambda: now[0])
    assert [due(s) for s in range(1, 8)] == [False, False, True, False, False, True, False]
    due = save_schedule(0, 2.0, clock=lambda: now[0])
    got = []
    for t in (60.0, 120.0, 121.0, 200.0, 241.5):
        now[0] = t
        got.append(due(1))
    assert got == [False, False, True, False, True]  # > 2 minutes since the schedule was made / the last save
    assert not any(save_schedule(None, None)(s) for s in range(1, 10))


class _Writer:
    def __init__(self):
        self.rows = []

    def add_scalar(self, tag, value, step):
        self.rows.append((tag, value, step))


def test_record_step_writes_scalars_and_one_json_line():
    w, m = _Writer(), io.StringIO()
    record_step(w, m, 7, {"total": 1.5, "id": 0.25}, 0.01, 2.0, prefix="loss/encoder", extra={"stage": "encoder"})
    assert w.rows == [("loss/encoder/total", 1.5, 7), ("loss/encoder/id", 0.25, 7), ("lr", 0.01, 7),
                      ("time/step_s", 2.0, 7)]
    assert json.loads(m.getvalue()) == {"step": 7, "stage": "encoder", "step_s": 2.0, "total": 1.5, "id": 0.25}
    assert list(json.loads(m.getvalue())) == ["step", "stage", "step_s", "total", "id"]
