"""Cross-field checks of a Recipe: every impossible value or combination, with the fix, before anything starts.

Each failure is one TaoError line naming where the key was set (`recipe.yaml: line 12`, `command line (...)`) and
the fix. Fixed choices come from the sections' Literal types; algorithms, sampling strategies and scorers from their
registries.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any

from tao_ray.config.sections import GenerationSection, Recipe
from tao_ray.core import algorithms
from tao_ray.core.sampling import PREVIOUS, STRATEGIES
from tao_ray.errors import TaoError
from tao_ray.rewards import registry

REQUIRED = ("data.train_prompts", "data.heldout_prompts")


def _literal_choices(cls: type, prefix: str) -> dict[str, tuple]:
    """{dotted key: allowed values} for every Literal-typed field of a section, nested sections included."""
    found: dict[str, tuple] = {}
    for name, hint in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(hint):
            found.update(_literal_choices(hint, f"{prefix}{name}."))
        elif typing.get_origin(hint) is typing.Literal:
            found[f"{prefix}{name}"] = typing.get_args(hint)
    return found


CHOICES: dict[str, tuple] = {
    **{key: values for key, values in _literal_choices(Recipe, "").items()},
    "generation.strategy": STRATEGIES,
    "training.algorithm": tuple(algorithms.ALGORITHMS),
}


class Located:
    """Where each dotted key came from, for error messages: `recipe.yaml: line 12` or `command line`."""

    def __init__(self, source: str):
        self.source = source
        self.lines: dict[str, str] = {}

    def where(self, key: str) -> str:
        return self.lines.get(key, self.source)


def get(recipe: Recipe, dotted: str) -> Any:
    value: Any = recipe
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def validate(recipe: Recipe, located: Located | None = None) -> None:
    """Cross-field checks: every impossible value or combination, with the fix, before anything starts."""
    located = located or Located(recipe.source or "recipe")

    def fail(key: str, problem: str) -> typing.NoReturn:
        raise TaoError(f"{located.where(key)}: key '{key}' {problem}")

    _validate_values(recipe, fail)
    _validate_lora(recipe, fail)
    _validate_guards(recipe, fail)
    _validate_generation(recipe.generation, fail)
    _validate_limits(recipe, fail)
    _validate_gpus(recipe, fail)
    _validate_devices(recipe, fail)


def _validate_values(recipe: Recipe, fail: Callable[[str, str], typing.NoReturn]) -> None:
    """Required keys, choices, and numbers that must be positive or not negative; reward expressions."""
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
    non_negative += [key for key in ("training.clip_eps_high",) if get(recipe, key) is not None]
    for key in non_negative:
        if get(recipe, key) < 0:
            fail(key, f"is {get(recipe, key)}; it must not be negative")
    for key in ("scoring.reward", "eval.reward", "eval.general_reward"):
        if get(recipe, key) is not None:
            try:
                registry.parse(get(recipe, key))
            except ValueError as exc:
                fail(key, str(exc))


def _validate_lora(recipe: Recipe, fail: Callable[[str, str], typing.NoReturn]) -> None:
    """LoRA: ranks vLLM can serve, and adapter sync only where adapters are whole."""
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


def _validate_guards(recipe: Recipe, fail: Callable[[str, str], typing.NoReturn]) -> None:
    """The evaluation's guards and the prompt store's mix."""
    if recipe.eval.max_drop is not None and recipe.eval.max_drop < 0:
        fail("eval.max_drop", "must not be negative, or null to turn the guard off")
    if recipe.eval.max_general_drop is not None and recipe.eval.max_general_drop < 0:
        fail("eval.max_general_drop", "must not be negative, or null to turn the guard off")
    if recipe.eval.max_length_ratio is not None and recipe.eval.max_length_ratio <= 0:
        fail("eval.max_length_ratio", "must be positive, or null to turn the guard off")
    low, high = recipe.eval.min_length_ratio, recipe.eval.max_length_ratio
    if low is not None and (low <= 0 or (high is not None and low >= high)):
        fail("eval.min_length_ratio", f"is {low:g}; it must be positive and below eval.max_length_ratio, or null to "
             "turn the guard off")
    if recipe.data.recent_versions < 1 or recipe.data.half_life_versions <= 0:
        fail("data.recent_versions" if recipe.data.recent_versions < 1 else "data.half_life_versions",
             "must be positive")


def _validate_limits(recipe: Recipe, fail: Callable[[str, str], typing.NoReturn]) -> None:
    """Timeouts, counts and sizes that bound the engines and the run."""
    for key in ("scoring.timeout_s", "scoring.sql.timeout_s", "scoring.http.timeout_s"):
        if get(recipe, key) <= 0:
            fail(key, f"is {get(recipe, key)}; it must be positive (seconds)")
    for key in ("scoring.sql.max_rows", "scoring.reward_model.batch_size", "scoring.reward_model.max_length",
                "scoring.judge.max_tokens", "scoring.judge.judges", "scoring.http.batch_size"):
        if get(recipe, key) < 1:
            fail(key, f"is {get(recipe, key)}; it must be at least 1")
    if recipe.run.max_wall_minutes is not None and recipe.run.max_wall_minutes <= 0:
        fail("run.max_wall_minutes", "must be positive, or null for no limit")
    for key in ("data.max_train_prompts", "data.max_heldout_prompts", "eval.patience", "training.micro_batch_tokens",
                "training.loss_norm_tokens"):
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


def _validate_devices(recipe: Recipe, fail: Callable[[str, str], typing.NoReturn]) -> None:
    """What each device needs: GPUs and tensor parallelism on cuda, a fixed KV cache on cpu."""
    res = recipe.resources
    if res.device == "cuda":
        if res.learner_gpus <= 0:
            fail("resources.learner_gpus", "must be positive on cuda (each learner rank needs a GPU)")
        if res.learner_gpus != int(res.learner_gpus):
            fail("resources.learner_gpus", f"is {res.learner_gpus:g}; NCCL refuses two ranks on one GPU, so each "
                 "learner rank takes whole GPUs (resources.learner_gpus=1)")
        if res.generator_gpus != res.tensor_parallel_size:
            fail("resources.generator_gpus", f"must equal resources.tensor_parallel_size ({res.tensor_parallel_size})")
        _validate_cuda_defaults(recipe, fail)
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
    # Every reward the run scores with: the training reward, the held-out one and the general set's.
    for name in sorted(registry.names(recipe.scoring.reward, recipe.eval.reward, recipe.eval.general_reward)):
        check = registry.SCORERS[name].cuda_check
        if check is not None:
            check(recipe, fail)


def _validate_cuda_defaults(recipe: Recipe, fail: Callable[[str, str], typing.NoReturn]) -> None:
    """Settings whose defaults suit a CPU and would be used on GPUs without a word: a KV cache of a fixed half GiB
    (instead of what gpu_memory_utilization leaves), and a judge computing in float32 (twice the memory and far
    slower than bf16)."""
    if recipe.generation.kv_cache_gb is not None:
        fail("generation.kv_cache_gb", f"is {recipe.generation.kv_cache_gb:g} GiB on cuda; set it to null so vLLM "
             "sizes the KV cache from generation.gpu_memory_utilization")
    if registry.needs_judge(recipe.scoring.reward, recipe.eval.reward, recipe.eval.general_reward):
        judge = recipe.scoring.judge
        if judge.kv_cache_gb is not None:
            fail("scoring.judge.kv_cache_gb", f"is {judge.kv_cache_gb:g} GiB on cuda; set it to null so the judge's "
                 "vLLM sizes its KV cache from generation.gpu_memory_utilization")
        if judge.dtype == "float32":
            fail("scoring.judge.dtype", "is float32 on cuda (the CPU default); use bfloat16")
