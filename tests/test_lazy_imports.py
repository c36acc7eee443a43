"""What a process imports, and when: imports made on a background thread
(vidswap.lazy_exports.import_in_background, as the analysis does for filterpy while its frames are analysed) and
the imports a one-face shot's tracking avoids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child_output(code: str) -> list[str]:
    """The words a fresh Python process running ``code`` prints (it must exit 0)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         timeout=120)
    return out.stdout.split()


def test_background_imports_are_done_when_joined_and_failures_left_to_the_real_import():
    assert child_output("import sys\n"
                        "from vidswap.lazy_exports import import_in_background\n"
                        "assert 'filterpy.kalman' not in sys.modules\n"
                        "t = import_in_background(['filterpy.kalman', 'vidswap_no_such_module', 'json.tool'])\n"
                        "t.join(60)\n"
                        "assert not t.is_alive() and t.daemon\n"
                        "print('filterpy.kalman' in sys.modules, 'json.tool' in sys.modules)\n"
                        ) == ["True", "False"]  # stopped at the failing import, which raises nothing here


def test_tracking_one_face_does_not_import_scipy_optimize():
    """faces.track.min_cost_pairs pairs a single track and face without the solver (scipy.optimize: ~0.5 s)."""
    assert child_output("import sys, numpy as np\n"
                        "from vidswap.faces.track import Observation, track_faces\n"
                        "obs = [[Observation(box=np.array([10. + f, 10, 60 + f, 60], np.float32))] for f in range(6)]\n"
                        "tracks = track_faces(obs)\n"
                        "assert len(tracks) == 1 and len(tracks[0].frames) == 6, tracks\n"
                        "print('scipy.optimize' in sys.modules)\n") == ["False"]
