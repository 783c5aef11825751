"""Placement planning and its one-line report, without Ray."""

import dataclasses

from tao_ray.config import Recipe, ResourcesSection
from tao_ray.runtime.placement import Request, requests, shortfall_message


def recipe(**resources) -> Recipe:
    return Recipe(resources=dataclasses.replace(ResourcesSection(), **resources))


def test_every_role_gets_its_count_and_only_positive_amounts():
    wanted = requests(recipe(generators=2, learners=3, learner_cpus=2.0, scorer_cpus=0.0), judges=1,
                      eval_scorers=0)
    assert wanted == [Request("learner", 3, {"CPU": 2.0}), Request("generator", 2, {"CPU": 1.0}),
                      Request("judge", 1, {"CPU": 1.0}), Request("scorer", 1, {})]


def test_gpu_roles_ask_for_gpus():
    wanted = requests(recipe(device="cuda", learner_gpus=1.0, generator_gpus=8.0, tensor_parallel_size=8,
                             scorer_gpus=0.5), judges=0, eval_scorers=1)
    by_role = {r.role: r.resources for r in wanted}
    assert by_role["generator"] == {"CPU": 1.0, "GPU": 8.0} and by_role["learner"] == {"CPU": 1.0, "GPU": 1.0}
    assert by_role["scorer"] == by_role["eval_scorer"] == {"CPU": 0.5, "GPU": 0.5}


def test_the_shortfall_line_names_roles_free_resources_and_node_sizes():
    wanted = [Request("learner", 1, {"CPU": 3.0}), Request("generator", 2, {"CPU": 1.0, "GPU": 1.0})]
    line = shortfall_message(wanted, {"CPU": 4.0, "memory": 1e9}, [{"CPU": 2.0, "node:x": 1.0}, {"CPU": 2.0}],
                             "spread", 30.0)
    assert "\n" not in line
    assert ("learner x1 asks 3 CPU each; generator x2 asks 1 CPU, 1 GPU each; the cluster has 4 CPU free, on 2 "
            "node(s) of: 2 CPU; 2 CPU") in line
    assert "(30s, placement spread)" in line and line.endswith("or use resources.placement=pack")
