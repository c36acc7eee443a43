"""Launch an OpenCue job spec written by vidswap (``write_opencue(opencue_spec(export_opencue(...)), path)``).

    CUEBOT_HOSTS=cuebot.example.com python pipelines/opencue/launch_spec.py jobs/shot010/opencue.xml

Needs ``opencue-pycue`` (installed with ``opencue-pyoutline``) and a reachable Cuebot (``CUEBOT_HOSTS`` or the
opencue config file).  Prints the names of the launched jobs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", type=Path, help="OpenCue XML job spec")
    args = parser.parse_args(argv)
    import opencue

    for job in opencue.api.launchSpecAndWait(args.spec.read_text()):
        print(job.name())
    return 0


if __name__ == "__main__":
    sys.exit(main())
