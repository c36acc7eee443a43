"""Imports made on a background thread (vidswap.lazy_exports.import_in_background), as the analysis does for
filterpy while its frames are analysed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_background_imports_are_done_when_joined_and_failures_left_to_the_real_import():
    code = ("import sys\n"
            "from vidswap.lazy_exports import import_in_background\n"
            "assert 'filterpy.kalman' not in sys.modules\n"
            "t = import_in_background(['filterpy.kalman', 'vidswap_no_such_module', 'json.tool'])\n"
            "t.join(60)\n"
            "assert not t.is_alive() and t.daemon\n"
            "print('filterpy.kalman' in sys.modules, 'json.tool' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         timeout=120)
    assert out.stdout.split() == ["True", "False"]  # stopped at the failing import, which raises nothing here
