"""`tao-ray run RECIPE [overrides]`: check the recipe and every file it names, then run the TAO loop (loop/driver.py).

A recipe or file mistake is one TaoError line before Ray starts; `--check` stops there. `--resume` continues the run
from its newest complete checkpoint; `--overwrite` deletes an earlier run of the same name first.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from tao_ray.config import load_recipe
from tao_ray.data.inputs import pin_store_version, prepare_inputs, resolve_output_dir
from tao_ray.errors import TaoError
from tao_ray.loop import driver
from tao_ray.run import resume
from tao_ray.run.checkpoints import resume_command, set_aside


def from_args(args: argparse.Namespace) -> int:
    if args.resume and args.overwrite:
        raise TaoError("run: --resume continues a run and --overwrite deletes it; pass one of them")
    recipe = pin_store_version(resolve_output_dir(load_recipe(args.recipe, args.overrides)))
    # A change the checkpoint cannot honour is refused first: before the prompt files are read and the model found.
    changes = resume.check(recipe) if args.resume else resume.Changes()
    inputs = prepare_inputs(recipe)  # every file check happens here, before Ray or any actor starts
    note = resume.applied_line(changes)
    if note:
        print(f"tao-ray: {note}", flush=True)
    if args.overwrite and not args.check and recipe.run_dir.exists():
        shutil.rmtree(recipe.run_dir)
    if args.check:
        print(f"ok: {recipe.source} ({len(inputs.train)} train / {len(inputs.heldout)} held-out prompts, "
              f"model {inputs.model_dir})")
        return 0
    moved = set_aside(recipe.run_dir, args.resume)
    if moved:
        print(f"tao-ray: {recipe.run_dir} held an earlier run; moved it to {moved} (--resume continues a run, "
              "--overwrite replaces it)", flush=True)
    try:
        driver.run(recipe, inputs, resume=args.resume, actor_logs=args.actor_logs)
    except KeyboardInterrupt:  # the driver has stopped every actor; the newest complete checkpoint is intact
        print(f"tao-ray: interrupted; completed iterations and checkpoints are in {recipe.run_dir}; continue with: "
              f"{resume_command(recipe)}", file=sys.stderr)
        return 130
    return 0
