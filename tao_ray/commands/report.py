"""`tao-ray report RUN_DIR`: write RUN_DIR/report.html from the run's summary.json (run/report.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tao_ray.run.report import write_report


def from_args(args: argparse.Namespace) -> int:
    print(write_report(Path(args.run_dir)))
    return 0
