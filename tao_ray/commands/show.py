"""`tao-ray show RECIPE [overrides]`: the recipe with every default filled in, as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json

from tao_ray.config import load_recipe


def from_args(args: argparse.Namespace) -> int:
    print(json.dumps(dataclasses.asdict(load_recipe(args.recipe, args.overrides)), indent=2))
    return 0
