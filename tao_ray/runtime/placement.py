"""Where actors run: every role's resources reserved at once in one Ray placement group, before any actor starts.

In: the recipe (and how many judges and separate eval scorers the run needs). Out: a `Reservation` that hands each
actor its scheduling strategy and tells where each one ran, or a TaoError naming each role, what it asked for and
what the cluster has free. Reserving all at once is what keeps a run from half-starting: without it, Ray may put
the generator on one node and the scorer on another so that no node has the CPUs the learner asks for, and the
learner waits forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tao_ray.config import Recipe
from tao_ray.errors import TaoError

ROLES = ("learner", "generator", "judge", "scorer", "eval_scorer", "general_scorer")


@dataclass(frozen=True)
class Request:
    role: str
    count: int
    resources: dict[str, float]
    """What one actor of the role asks for, e.g. {"CPU": 2.0, "GPU": 1.0}; only positive amounts."""


def requests(recipe: Recipe, judges: int, eval_scorers: int, general_scorers: int = 0) -> list[Request]:
    """Each role's actor count and per-actor resources, as the recipe sets them (pure)."""
    res, judge = recipe.resources, recipe.scoring.judge

    def amounts(cpus: float, gpus: float) -> dict[str, float]:
        return {name: float(value) for name, value in (("CPU", cpus), ("GPU", gpus)) if value > 0}

    table = {"learner": (res.learners, amounts(res.learner_cpus, res.learner_gpus)),
             "generator": (res.generators, amounts(res.generator_cpus, res.generator_gpus)),
             "judge": (judges, amounts(judge.judge_cpus, judge.judge_gpus)),
             "scorer": (res.scorers, amounts(res.scorer_cpus, res.scorer_gpus)),
             "eval_scorer": (eval_scorers, amounts(res.scorer_cpus, res.scorer_gpus)),
             "general_scorer": (general_scorers, amounts(res.scorer_cpus, res.scorer_gpus))}
    return [Request(role, *table[role]) for role in ROLES if table[role][0] > 0]


def shortfall_message(wanted: list[Request], free: dict[str, float], node_sizes: list[dict[str, float]],
                      strategy: str, timeout_s: float) -> str:
    """One line: each role's request, what the cluster has free, and each node's size (a bundle must fit on one
    node) (pure)."""

    def show(amounts: dict[str, float]) -> str:
        shown = {name: value for name, value in sorted(amounts.items()) if name in ("CPU", "GPU") and value > 0}
        return ", ".join(f"{value:g} {name}" for name, value in shown.items()) or "nothing"

    asked = "; ".join(f"{r.role} x{r.count} asks {show(r.resources)} each" for r in wanted)
    sizes = "; ".join(show(size) for size in node_sizes)
    advice = "add nodes, or lower the resources.* counts or their CPUs/GPUs"
    if strategy == "spread":
        advice += ", or use resources.placement=pack"
    return (f"could not reserve the run's resources within resources.startup_timeout_s ({timeout_s:g}s, placement "
            f"{strategy}): {asked}; the cluster has {show(free)} free, on {len(node_sizes)} node(s) of: {sizes}; "
            f"{advice}")


@dataclass
class Reservation:
    """The placement group and which bundle each (role, rank) actor uses."""

    group: object | None
    bundles: dict[tuple[str, int], int] = field(default_factory=dict)

    def strategy(self, role: str, rank: int):
        """Ray scheduling strategy for this actor (None: it asks for no resources and may run anywhere)."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        index = self.bundles.get((role, rank))
        if index is None:
            return None
        return PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=index)

    def locations(self) -> list[dict]:
        """[{role, rank, node_id, node_ip}] for every reserved actor: where everything ran."""
        import ray
        from ray.util import placement_group_table

        if self.group is None:
            return []
        node_of = placement_group_table(self.group)["bundles_to_node_id"]
        ip_of = {node["NodeID"]: node["NodeManagerAddress"] for node in ray.nodes()}
        return [{"role": role, "rank": rank, "node_id": node_of[index], "node_ip": ip_of.get(node_of[index])}
                for (role, rank), index in sorted(self.bundles.items(), key=lambda item: item[1])]

    def nodes(self, roles: tuple[str, ...]) -> dict[str, str]:
        """{node_id: "role rank"} of the first actor of `roles` on each node."""
        found: dict[str, str] = {}
        for where in self.locations():
            if where["role"] in roles:
                found.setdefault(where["node_id"], f"{where['role']} {where['rank']} on {where['node_ip']}")
        return found

    def release(self) -> None:
        if self.group is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.group)
            self.group = None


def reserve(recipe: Recipe, judges: int, eval_scorers: int, general_scorers: int = 0) -> Reservation:
    """Reserve every actor's resources at once, or raise a TaoError after resources.startup_timeout_s."""
    import ray
    from ray.util.placement_group import placement_group

    wanted = requests(recipe, judges, eval_scorers, general_scorers)
    actors = [(request, rank) for request in wanted for rank in range(request.count) if request.resources]
    # Largest bundles first: Ray places bundles greedily in order, so an 8-GPU generator placed after 24 spread
    # learner ranks would find no node with 8 GPUs left.
    actors.sort(key=lambda actor: (-actor[0].resources.get("GPU", 0.0), -actor[0].resources.get("CPU", 0.0)))
    bundles = [dict(request.resources) for request, _ in actors]
    index_of = {(request.role, rank): index for index, (request, rank) in enumerate(actors)}
    if not bundles:
        return Reservation(None)
    res = recipe.resources
    strategy = res.placement.upper()
    group = placement_group(bundles, strategy=strategy, name=f"tao-ray-{recipe.run.name}")
    ready, _ = ray.wait([group.ready()], timeout=res.startup_timeout_s)
    if not ready:
        from ray.util.placement_group import remove_placement_group

        remove_placement_group(group)
        sizes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        raise TaoError(shortfall_message(wanted, ray.available_resources(), sizes, res.placement,
                                         res.startup_timeout_s))
    return Reservation(group, index_of)
