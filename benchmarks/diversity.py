"""Sampling strategies at equal draw budget: the demo model answers the same held-out prompts under every
strategy, the demo reward scores every candidate, and the JSON reports how many groups carry a learning signal.

Every strategy may draw at most DRAWS samples per prompt (so, with similar response lengths, the same tokens):
iid draws DRAWS; dedup keeps up to KEEP distinct ones out of at most DRAWS; conditioned draws DRAWS in rounds that
see the earlier answers; adaptive spends DRAWS x prompts in total, more where scores still vary. `iid-keep` (KEEP
independent draws) is the cheaper reference dedup should be read against. Tokens spent are reported per strategy.

    python -m benchmarks.diversity [--quick] [--prompts 60] [--strategies iid,dedup,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

DRAWS, KEEP = 6, 4


def plans(min_distance: float, template: str) -> dict:
    from tao_ray.core.sampling import SamplingPlan

    return {
        "iid": SamplingPlan("iid", n=DRAWS, max_draws=DRAWS),
        "iid-keep": SamplingPlan("iid", n=KEEP, max_draws=KEEP),
        "dedup": SamplingPlan("dedup", n=KEEP, min_distance=min_distance, max_draws=DRAWS),
        "conditioned": SamplingPlan("conditioned", n=DRAWS, min_distance=min_distance, max_draws=DRAWS,
                                    template=template),
        "adaptive": SamplingPlan("adaptive", n=DRAWS, min_distance=0.0, max_draws=2 * DRAWS, settle_after=3),
    }


def measure(generator, scorer, prompts, records, plan, temperature: float, max_tokens: int) -> dict:
    import ray

    from tao_ray.core import diversity

    indexed = [(i, list(p.messages)) for i, p in enumerate(prompts)]
    started = time.perf_counter()
    adaptive = plan.strategy == "adaptive"
    generations = ray.get(generator.generate.remote(indexed, plan.n, temperature, 1.0, max_tokens, plan,
                                                    scorer if adaptive else None, records if adaptive else None))
    if adaptive:
        rewards = [g.rewards for g in generations]
    else:
        rewards = ray.get(scorer.score.remote(records, [g.response_texts for g in generations])).raw
    wall = time.perf_counter() - started
    metrics = diversity.batch_metrics([g.response_texts for g in generations], rewards,
                                      [g.tokens_drawn for g in generations], [g.mean_distance for g in generations],
                                      [g.samples_drawn for g in generations])
    scored = [[r for r in group if r is not None] for group in rewards]
    return {"plan": {"n": plan.n, "max_draws": plan.max_draws, "min_distance": plan.min_distance},
            **metrics, "mean_group_reward": sum(sum(g) / len(g) for g in scored if g) / len(scored),
            "mean_group_max_reward": sum(max(g) for g in scored if g) / len(scored),
            "near_duplicates": sum(g.near_duplicates for g in generations), "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="16 held-out prompts, 64-token answers (< 10 min)")
    parser.add_argument("--prompts", type=int, default=60)
    parser.add_argument("--strategies", default="iid,iid-keep,dedup,conditioned,adaptive")
    parser.add_argument("--min-distance", type=float, default=0.1)
    parser.add_argument("--temperature", type=float, default=None, help="default: the demo recipe's")
    args = parser.parse_args()
    import ray

    from tao_ray.actors.generator import GeneratorActor, GeneratorSpec
    from tao_ray.actors.scorer import ScorerActor
    from tao_ray.config import load_recipe
    from tao_ray.data.demo_model import materialize
    from tao_ray.data.prompts import load_prompts
    from tao_ray.run.tracking import hardware

    recipe = load_recipe("recipes/demo-cpu.yaml")
    count = 16 if args.quick else args.prompts
    max_tokens = 64 if args.quick else recipe.generation.max_tokens
    temperature = recipe.generation.temperature if args.temperature is None else args.temperature
    prompts = load_prompts(recipe.data.heldout_prompts, limit=count)
    records = [p.as_dict() for p in prompts]
    # log_to_driver=False: the engine logs would interleave with the JSON on stdout.
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    try:
        generator = ray.remote(num_cpus=1)(GeneratorActor).remote(GeneratorSpec(
            str(materialize()), "float32", recipe.model.max_model_len, recipe.generation.kv_cache_gb, 0.5,
            recipe.generation.seed))
        scorer = ray.remote(num_cpus=0)(ScorerActor).remote(recipe.scoring.reward)
        ray.get(generator.ready.remote())
        results = {}
        for name in args.strategies.split(","):
            plan = plans(args.min_distance, recipe.generation.condition_template)[name]
            results[name] = measure(generator, scorer, prompts, records, plan, temperature, max_tokens)
            print(json.dumps({name: results[name]}), file=sys.stderr, flush=True)
    finally:
        ray.shutdown()
    base = results.get("iid", {}).get("signal_fraction")
    for result in results.values():
        result["signal_vs_iid"] = result["signal_fraction"] / base if base else None
    print(json.dumps({"benchmark": "diversity", "prompts": count, "max_tokens": max_tokens, "draws_per_prompt": DRAWS,
                      "temperature": temperature, "distance": recipe.generation.distance,
                      "results": results, "hardware": hardware()}, indent=2))


if __name__ == "__main__":
    main()
