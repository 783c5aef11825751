"""`tao-ray expand`: the Ray and vLLM shell around data/expansion.py. One GeneratorActor samples new tasks at
temperature 1 (the same actor the loop and `compare` use); the embedder runs here, in the driver, as in `ingest`.

In: a seed prompt file, a model directory, held-out files. Out: a prompt file written atomically, and an
`Expansion` (accepted rows, rejection counts) for the summary line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import ray

from tao_ray.actors.generator import GeneratorSpec
from tao_ray.config import load_recipe
from tao_ray.data import expansion
from tao_ray.data.decontamination import CONTAMINATION_DISTANCE, NEAR_DUPLICATE_DISTANCE, NGRAM, References
from tao_ray.data.embeddings import Embedder
from tao_ray.data.inputs import resolve_model_path
from tao_ray.data.prompts import load_prompts
from tao_ray.data.store_layout import write_atomic
from tao_ray.errors import TaoError
from tao_ray.runtime import launch, session

MAX_TOKENS = 48
"""A task is one or two sentences (at most expansion.MAX_WORDS words); longer samples are cut and rejected."""


def expand_file(seeds_path: str | Path, out: str | Path, wanted: int, model_dir: str, model_name: str,
                decontaminate: Sequence[str | Path] = (), samples_per_request: int = 4, max_rounds: int = 8,
                near_duplicate_distance: float = NEAR_DUPLICATE_DISTANCE,
                contamination_distance: float = CONTAMINATION_DISTANCE, seed: int = 0,
                gpus: float = 0.0) -> expansion.Expansion:
    seeds = load_prompts(seeds_path, key="seed file")
    out = Path(out)
    if out.is_dir():
        raise TaoError(f"{out}: --out names a directory; give a .jsonl file path")
    from tqdm import tqdm

    embed = Embedder("cuda" if gpus else "cpu")
    references = References(decontaminate, embed, NGRAM, contamination_distance,
                            gram_text=lambda record: expansion.split_seed(record).task)
    started_ray = session.connect(actor_logs=True)
    bar = tqdm(total=wanted, desc="expand", unit="prompt")
    try:
        # The actor needs no embedder (jaccard): distances are judged here, over whole prompts.
        generator = launch.start_generator(GeneratorSpec(
            model_dir, dtype="bfloat16" if gpus else "float32", kv_cache_gb=None if gpus else 0.5, seed=seed,
            enforce_eager=not gpus, distance="jaccard", device="cuda" if gpus else "cpu"), gpus)

        def draw(chats: list[list[dict[str, str]]], n: int) -> list[list[str]]:
            bar.set_description(f"expand (sampling {len(chats) * n})")
            generations = ray.get(generator.generate.remote(list(enumerate(chats)), n, 1.0, 0.95, MAX_TOKENS))
            bar.set_description("expand")
            return [g.response_texts for g in generations]

        def progress(accepted: int, rejected: Counter) -> None:
            bar.update(accepted - bar.n)
            bar.set_postfix(rejected=sum(rejected.values()))

        try:
            result = expansion.expand(seeds, draw, embed, references, wanted, model_name, samples_per_request,
                                      max_rounds, near_duplicate_distance=near_duplicate_distance, seed=seed,
                                      progress=progress)
        finally:
            ray.kill(generator)
    finally:
        bar.close()
        if started_ray:
            ray.shutdown()
    if result.rows:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in result.rows))
    return result


def from_args(args: argparse.Namespace) -> int:
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
        model, where = load_recipe(args.recipe).model.path, f"{args.recipe}: model.path"
    model_dir = resolve_model_path(model, where)
    result = expand_file(args.seeds, args.out, args.n, model_dir, Path(model_dir).name, args.decontaminate or [],
                         args.samples, args.max_rounds, args.near_duplicate_distance, args.contamination_distance,
                         args.seed, gpus=1.0 if args.device == "cuda" else 0.0)
    print(result.summary(args.n) + (f"; wrote {args.out}" if result.rows else "; wrote nothing"), flush=True)
    if len(result.rows) < args.n:
        print(f"tao-ray: expand fell short: {len(result.rows)} of {args.n} prompts after {result.rounds} rounds "
              "(those are written); add seeds or raise --max-rounds", file=sys.stderr)
        return 1
    return 0
