"""What `tao-ray run R.yaml ... --resume` may change: the recipe a run was started with against the one it resumes with.

In: the config stored in the run's summary.json (`dataclasses.asdict` of its Recipe) and the new Recipe, overrides
applied and run.output_dir absolute. Out: `Changes`, every changed dotted key in exactly one class:

- refused: the checkpoint cannot honour it. Either the saved state has its shape (weights, every rank's ZeRO
  partition of the optimizer, the LoRA adapter, the RNG state, the prompt order), or the summary rows before the
  checkpoint would stop being comparable with the rows after it (what an iteration trains on, the held-out prompts
  the best checkpoint and the win rate compare one by one). `refusal` words them as one line; the CLI raises it
  before Ray or any actor starts, and the run stays as it was.
- optimizer: training.lr, training.weight_decay, training.max_grad_norm. DeepSpeed's load_checkpoint restores the
  optimizer's param groups (lr, weight_decay) and ZeRO's clipping value from the checkpoint, which would silently
  undo the change; the driver sets them on the restored optimizer (`LearnerActor.apply_optimizer_settings`).
- applied: everything else, i.e. what each iteration reads afresh from the recipe (sampling, scoring, loss
  coefficients, memory knobs such as micro-batch sizes, evaluation, logging, iterations, time budget, retention,
  actor counts and resources other than the learner ranks). Printed as one line and recorded in summary.json.
  Changing a reward or eval setting is allowed, but the rows before the resume keep the rewards they measured.

Not compared: run.name and run.output_dir (they locate the run dir, so the summary found there is this run's even
when the directory was moved), `source` (the recipe file may move) and `overrides` (their effect is compared).
A key the stored config lacks (a run from an older tao-ray) compares with its default; a stored key the Recipe no
longer has is ignored. A key in no list below counts as applied; tests/run/test_resume.py makes every key choose.
Paths are compared as written.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tao_ray.config import Recipe
from tao_ray.errors import TaoError
from tao_ray.run import checkpoints

# Why each key is refused (the checkpoint, or the summary rows, are tied to its value):
REFUSED = (
    "model.path",                 # the saved weights and optimizer state belong to this model
    "model.dtype",                # ... and to this dtype (bf16 runs keep fp32 master weights in the optimizer)
    "resources.learners",         # DeepSpeed saves one optimizer partition per rank: the world size is fixed
    "resources.device",           # the state was written by this accelerator's engine (cpu or cuda)
    "training.zero_stage",        # the partitioning of the saved optimizer (and, at stage 3, of the weights)
    "training.lora.r",            # the adapter's shape
    "training.lora.target_modules",  # which modules carry an adapter
    "training.lora.alpha",        # scales the learned update B·A by alpha/r: a new alpha rescales what was learned
    "training.algorithm",         # the optimizer's moments and every row before the checkpoint follow one objective
    "training.seed",              # the checkpoint restores the learners' RNG state, so a new seed would not apply
    "data.train_prompts",         # the saved prompt order is a position in a shuffle of exactly these prompts
    "data.max_train_prompts",     # ... of exactly this many
    "run.seed",                   # ... with exactly this seed
    "data.heldout_prompts",       # held-out answers are compared prompt by prompt with iteration 0 (win rate) and
    "data.max_heldout_prompts",   # across iterations (best checkpoint, early stop): the set must stay the same
    "data.transfer_prompts",      # compared with iteration 0's answers too
    "data.unseen_prompts",        # ... as is this set
    "data.general_prompts",       # ... and so is this set (the general-skill guard)
    "generation.prompts_per_iteration",  # what one iteration (one row, one optimizer step) trains on: B prompts
    "generation.samples_per_prompt",     # of G samples each, G also being the group the advantages normalize over
    "data.mix",                   # the saved prompt order is a position among exactly these prompts ...
    "data.recent_versions",       # ... (recent keeps the newest versions' prompts only)
    "data.half_life_versions",    # ... drawn with exactly these weights
)
OPTIMIZER = ("training.lr", "training.weight_decay", "training.max_grad_norm")
NOT_COMPARED = ("run.name", "run.output_dir", "source", "overrides")
APPLIED = (
    "model.max_model_len",
    "data.max_prompt_tokens",     # a check only: a prompt over the limit stops the run; it never drops prompts
    "generation.temperature", "generation.top_p", "generation.max_tokens", "generation.kv_cache_gb",
    "generation.gpu_memory_utilization", "generation.enforce_eager", "generation.seed", "generation.strategy",
    "generation.distance", "generation.min_distance", "generation.draw_budget", "generation.condition_template",
    "generation.settle_after",
    # Precision and overlap knobs: the same objective and weights, computed faster or a step staler.
    "generation.dtype", "training.compute_dtype", "training.logprob_chunk_tokens", "training.shared_prefix",
    "training.max_importance_ratio",
    "run.max_staleness", "run.checkpoint_every",
    "scoring.*",
    "training.kl_coef", "training.clip_eps", "training.clip_eps_high", "training.loss_norm_tokens",
    "training.epochs", "training.dpo_beta", "training.min_margin",
    "training.min_score", "training.normalize_std", "training.loss_aggregation", "training.skip_flat_groups",
    # Memory knobs: gradients accumulate over a rank's whole share, so the step is the same however it is split.
    # Lowering them is the usual fix after a run died of out-of-memory.
    "training.micro_batch_size", "training.micro_batch_tokens", "training.gradient_checkpointing",
    "training.lora.dropout", "training.lora.sync",
    "resources.generators", "resources.scorers", "resources.generator_cpus", "resources.generator_gpus",
    "resources.scorer_cpus", "resources.scorer_gpus", "resources.learner_cpus", "resources.learner_gpus",
    "resources.tensor_parallel_size", "resources.placement", "resources.startup_timeout_s",
    "resources.max_actor_restarts", "resources.call_timeout_s",  # how faults are handled from now on
    "eval.*", "logging.*",
    "run.iterations", "run.max_wall_minutes", "run.keep_checkpoints", "run.max_restarts",
)


@dataclass(frozen=True)
class Change:
    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        return f"{self.key} {json.dumps(self.old)} -> {json.dumps(self.new)}"


@dataclass(frozen=True)
class Changes:
    refused: tuple[Change, ...] = ()
    optimizer: tuple[Change, ...] = ()
    applied: tuple[Change, ...] = ()

    def record(self) -> dict[str, dict[str, list[Any]]]:
        """For summary.json: {"applied": {key: [old, new]}, "optimizer": {...}}."""
        return {name: {c.key: [c.old, c.new] for c in getattr(self, name)} for name in ("applied", "optimizer")}


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"training": {"lora": {"r": 8}}} -> {"training.lora.r": 8}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(key == p or (p.endswith(".*") and key.startswith(p[:-1])) for p in patterns)


def classify(key: str) -> str:
    """'refused', 'optimizer', 'not compared' or 'applied' (the default for a key no list names)."""
    if _matches(key, REFUSED):
        return "refused"
    if _matches(key, OPTIMIZER):
        return "optimizer"
    if _matches(key, NOT_COMPARED):
        return "not compared"
    return "applied"


def compare(stored: dict[str, Any], recipe: Recipe) -> Changes:
    """Every key whose value differs between the stored config and `recipe`, classified (see the module doc)."""
    new = flatten(dataclasses.asdict(recipe))
    old = {**flatten(dataclasses.asdict(Recipe())), **flatten(stored)}
    found: dict[str, list[Change]] = {"refused": [], "optimizer": [], "applied": []}
    for key, value in new.items():
        kind = classify(key)
        if kind != "not compared" and old.get(key) != value:
            found[kind].append(Change(key, old.get(key), value))
    return Changes(**{kind: tuple(changes) for kind, changes in found.items()})


def refusal(changes: Changes, run_dir: Path | str) -> str | None:
    """The one-line error for refused changes (None when there are none)."""
    if not changes.refused:
        return None
    listed = ", ".join(map(str, changes.refused))
    return (f"{run_dir}: --resume cannot change {listed}: the checkpoint and the iterations in summary.json were "
            "made with the old values; resume with those, or start a new run (another run.name; "
            "model.path=<a checkpoint's model/ dir> starts from its weights)")


def applied_line(changes: Changes) -> str | None:
    if not changes.applied and not changes.optimizer:
        return None
    parts = []
    if changes.applied:
        parts.append("changed settings applied: " + ", ".join(map(str, changes.applied)))
    if changes.optimizer:
        parts.append("set on the restored optimizer: " + ", ".join(map(str, changes.optimizer)))
    return "resuming with " + "; ".join(parts)


def stored_config(run_dir: Path) -> dict[str, Any] | None:
    """The config of the run in `run_dir` when --resume would continue it from a checkpoint; None when there is
    nothing to honour (no summary, or no complete checkpoint yet: the run then starts again from iteration 0)."""
    summary = run_dir / "summary.json"
    if not summary.is_file() or not checkpoints.complete(run_dir):
        return None
    try:
        config = json.loads(summary.read_text()).get("config")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise TaoError(f"{summary}: not a tao-ray summary (unreadable JSON); --resume needs the run's own "
                       "summary.json") from None
    return config if isinstance(config, dict) else None


def check(recipe: Recipe) -> Changes:
    """Compare `recipe` with the run it resumes; raise the refusal as a TaoError. No Ray, no actor."""
    stored = stored_config(recipe.run_dir)
    if stored is None:
        return Changes()
    changes = compare(stored, recipe)
    message = refusal(changes, recipe.run_dir)
    if message:
        raise TaoError(message)
    return changes
