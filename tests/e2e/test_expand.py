"""`tao-ray expand` as users run it: the demo model writes 12 prompts from 4 demo seeds (Ray, vLLM on CPU, the real
embedder), and a broken seed file is one line naming its file and line."""

import subprocess
import sys
from pathlib import Path

import torch

from tao_ray.data.check_text import constraint_sentence
from tao_ray.data.decontamination import CONTAMINATION_DISTANCE, NEAR_DUPLICATE_DISTANCE, distances, prompt_text
from tao_ray.data.embeddings import Embedder
from tao_ray.data.expansion import ALL_METHODS
from tao_ray.data.prompts import load_prompts

SEEDS = Path("prompts/seeds/demo-seeds.jsonl")
HELDOUT = Path("prompts/demo/heldout.jsonl")


def tao_ray(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tao_ray", *args], capture_output=True, text=True, timeout=timeout)


def test_four_seeds_become_twelve_new_distinct_clean_prompts(tmp_path):
    seeds_file, out = tmp_path / "seeds.jsonl", tmp_path / "expanded.jsonl"
    seeds_file.write_text("".join(SEEDS.read_text().splitlines(keepends=True)[:4]))
    result = tao_ray("expand", str(seeds_file), "--out", str(out), "--n", "12", "--decontaminate", str(HELDOUT))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "expanded: 12 accepted" in result.stdout
    prompts, seeds = load_prompts(out), {s.id: s for s in load_prompts(seeds_file)}
    assert len(prompts) == 12 and len({p.id for p in prompts}) == 12
    for prompt in prompts:
        source = prompt.metadata["source"]
        assert source["seed"] in seeds and source["method"] in ALL_METHODS
        assert source["model"] == "SmolLM2-135M-Instruct"
        assert prompt.messages[-1]["content"].endswith(" ".join(map(constraint_sentence, prompt.constraints)))
    embed = Embedder("cpu")
    new = embed([prompt_text(p.messages) for p in prompts])
    among = distances(new, new) + 2.0 * torch.eye(len(new))  # a prompt's distance to itself aside
    assert float(among.min()) >= NEAR_DUPLICATE_DISTANCE
    assert float(distances(new, embed([prompt_text(s.messages) for s in seeds.values()])).min()) \
        >= NEAR_DUPLICATE_DISTANCE
    heldout = embed([prompt_text(p.messages) for p in load_prompts(HELDOUT)])
    assert float(distances(new, heldout).min()) >= CONTAMINATION_DISTANCE


def test_a_broken_seed_line_is_one_line_with_file_and_line(tmp_path):
    seeds_file = tmp_path / "seeds.jsonl"
    seeds_file.write_text('{"prompt": "Describe owls."}\n{"prompt": "Describe bats.",\n')
    result = tao_ray("expand", str(seeds_file), "--out", str(tmp_path / "out.jsonl"), "--n", "3")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{seeds_file}: line 2: malformed JSON" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out.jsonl").exists()
