"""Submit the Deadline 10 jobs written by ``vidswap.jobs.deadline.write_deadline`` (one folder per shot).

    python pipelines/deadline/submit_deadline.py jobs/shot010/deadline
    python pipelines/deadline/submit_deadline.py DIR --deadlinecommand /opt/Thinkbox/Deadline10/bin/deadlinecommand

Submits NN_<pass>.job_info.job + NN_<pass>.plugin_info.job in order (analyze, tune, render, assemble); each job
gets ``JobDependencies=<id of the previous job>`` so it starts only when that one completes.  Prints the job ids.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidswap.errors import VidswapError
from vidswap.jobs.deadline import submit_deadline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder holding the NN_<pass>.*.job files")
    parser.add_argument("--deadlinecommand", default="deadlinecommand", help="deadlinecommand executable")
    args = parser.parse_args(argv)
    try:
        ids = submit_deadline(args.folder, args.deadlinecommand)
    except VidswapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for job_file, job_id in zip(sorted(args.folder.glob("[0-9][0-9]_*.job_info.job")), ids):
        print(f"{job_id}  {job_file.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
