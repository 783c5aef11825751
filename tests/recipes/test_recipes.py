"""Every recipe in recipes/ loads and validates; the GPU ones are checked here but run only on GPU clusters."""

import re
from pathlib import Path

import pytest

from tao_ray.config import load_recipe
from tao_ray.core import algorithms, memory

RECIPES = sorted(Path("recipes").glob("*.yaml"))


def test_there_is_a_cpu_demo_and_a_gpu_recipe():
    devices = {load_recipe(p).resources.device for p in RECIPES}
    assert devices == {"cpu", "cuda"}


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_loads(path):
    recipe = load_recipe(path)
    assert recipe.run.name == path.stem
    assert recipe.data.train_prompts and recipe.data.heldout_prompts
    header = path.read_text().splitlines()[0:8]
    assert header[0].startswith("#") and any("Launch" in line for line in header)
    assert any("Hardware" in line for line in header)


# ---- per-GPU memory estimates in recipe headers ----
# A GPU recipe may state its model's shape and its per-GPU memory in the header; the numbers must be what
# tao_ray.core.memory computes from the recipe's own values, and each must fit the GPU.

MODEL_LINE = re.compile(r"# Model: ([\d.e]+) parameters, hidden (\d+), intermediate (\d+), (\d+) layers, "
                        r"vocab (\d+), (\d+) KV heads of dim (\d+)")
ESTIMATED = [p for p in RECIPES if MODEL_LINE.search(p.read_text())]


def stated_memory(text: str, title: str) -> tuple[float, float, dict[str, float]]:
    """(total GB, GPU GB, {part: GB}) from a header block such as
    `# Learner GPU: 69.8 of 80 GB = weights 5.88 + ...`, continued on lines starting `#   +`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"# {title}: "))
    block = lines[start].split(": ", 1)[1]
    for line in lines[start + 1:]:
        if not line.startswith("#   +"):
            break
        block += " " + line[len("#   "):]
    total, gpu, parts = re.fullmatch(r"([\d.]+) of ([\d.]+) GB = (.*)", block.strip()).groups()
    return float(total), float(gpu), {name: float(value) for name, value in re.findall(r"(\w+) ([\d.]+)", parts)}


def model_shape(text: str) -> memory.ModelShape:
    parameters, *dims = MODEL_LINE.search(text).groups()
    return memory.ModelShape(float(parameters), *map(int, dims))


def test_the_70b_recipe_states_its_memory():
    assert Path("recipes/llama3.3-70b-4x8gpu.yaml") in ESTIMATED


@pytest.mark.parametrize("path", ESTIMATED, ids=[p.stem for p in ESTIMATED])
def test_learner_memory_in_the_header_matches_the_recipe_and_fits(path):
    recipe, text = load_recipe(path), path.read_text()
    training = recipe.training
    assert training.lora.r == 0, "state the adapter's parameter count in the header and pass it on"
    expected = memory.learner_memory(
        model_shape(text), dtype=recipe.model.dtype, zero_stage=training.zero_stage, ranks=recipe.resources.learners,
        micro_batch_size=training.micro_batch_size, sequence_length=recipe.model.max_model_len,
        response_length=recipe.generation.max_tokens, gradient_checkpointing=training.gradient_checkpointing,
        reference=algorithms.uses_reference(training))
    total, gpu, parts = stated_memory(text, "Learner GPU")
    assert parts == pytest.approx(expected, abs=0.005)  # the header rounds to 2 decimals
    assert total == pytest.approx(sum(expected.values()), abs=0.05)
    assert total <= gpu


@pytest.mark.parametrize("path", ESTIMATED, ids=[p.stem for p in ESTIMATED])
def test_generator_memory_in_the_header_matches_the_recipe_and_fits(path):
    recipe, text = load_recipe(path), path.read_text()
    assert recipe.generation.kv_cache_gb is None  # else vLLM sizes the KV cache from it, not from the utilization
    total, gpu, parts = stated_memory(text, "Generator GPU")
    model = model_shape(text)
    expected = memory.generator_memory(model, dtype=recipe.model.dtype,
                                       tensor_parallel_size=recipe.resources.tensor_parallel_size, gpu_gb=gpu,
                                       gpu_memory_utilization=recipe.generation.gpu_memory_utilization,
                                       embedder=recipe.generation.distance == "embedding")
    assert parts == pytest.approx(expected, abs=0.005)
    assert total == pytest.approx(sum(expected.values()), abs=0.05)
    assert total <= gpu
    kv_tokens = expected["kv_cache"] * memory.GB / memory.kv_bytes_per_token(
        model, recipe.model.dtype, recipe.resources.tensor_parallel_size)
    # vLLM refuses to start unless one sequence of max_model_len tokens fits in the KV cache.
    assert kv_tokens >= recipe.model.max_model_len


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipes_launched_as_ray_jobs_write_to_an_absolute_output_dir(path):
    """Under `ray job submit --working-dir .` a relative run.output_dir is refused (it would vanish with the job)."""
    if "ray job submit" in path.read_text():
        assert Path(load_recipe(path).run.output_dir).is_absolute()
        assert "python -m tao_ray run" in path.read_text()  # the entrypoint needs no console script on PATH


# ---- prompt files against the scorers that read them ----
# A verifier scorer needs fields in every prompt (instructions, reference answers): a shipped recipe whose prompts lack
# them would fail only at launch, so its files are loaded and checked here as `tao-ray run` checks them.

VERIFIED = [p for p in RECIPES if load_recipe(p).scoring.reward in ("constraints", "instructions", "math")]


@pytest.mark.parametrize("path", VERIFIED, ids=[p.stem for p in VERIFIED])
def test_recipe_prompts_carry_what_its_scorer_needs(path):
    from tao_ray.data.inputs import check_scoring, resolve_path
    from tao_ray.data.prompts import load_prompts

    recipe = load_recipe(path)
    files = [resolve_path(raw, recipe) for raw in (recipe.data.train_prompts, recipe.data.heldout_prompts)]
    check_scoring(recipe, [(file, load_prompts(file)) for file in files])


def test_the_instructions_recipe_uses_the_instructions_scorer():
    assert Path("recipes/instructions-cpu.yaml") in VERIFIED
    assert load_recipe("recipes/instructions-cpu.yaml").scoring.reward == "instructions"
