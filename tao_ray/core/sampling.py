"""Sampling strategies: how a generator spends its draws so each prompt gets a group of *different* candidates.

In: P prompts (chat messages), a `SamplingPlan`, and callbacks the generator actor supplies: `draw` (vLLM),
`embed` (what the distance compares: sentence embeddings or the text itself), `distance`, `fits` (does a
conditioned prompt still fit the context window) and, for `adaptive` only, `score` (the scorer actors).
Out: one `Group` per prompt: the kept samples, draws spent, near-duplicates dropped, and the raw scores when the
strategy needed them. Every kept sample answers the ORIGINAL prompt: conditioning text is only ever sent to the
sampler, never stored, so it cannot leak into the training batch.

Strategies:
- iid: n independent draws (the baseline).
- dedup: draw, drop any sample closer than min_distance to one already kept, top up until n are kept or the
  prompt's draw budget (max_draws) is spent.
- conditioned: rounds of one draw per prompt; from round 2 on, the prompt shows the earlier kept answers and asks
  for a different one (the recipe's template). Near-duplicates are still dropped when min_distance > 0.
- adaptive: a per-prompt budget driven by scores. Each prompt first gets `settle_after` draws; a prompt whose scores
  are then all equal has settled and stops, and the draws it saved go to prompts whose scores still vary (up to
  max_draws each). Draws left once nothing varies go back to the settled prompts, so the total spend is P x n,
  the same as iid. Settling compares raw scores, and a group is scored in parts as it grows, so the groups keep
  each component's raw scores: group normalization is applied once a group is complete
  (`whole_group_scores`), never over a part of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tao_ray.core.composition import Composition, Scores

STRATEGIES = ("iid", "dedup", "conditioned", "adaptive")
PREVIOUS = "{previous}"
DEFAULT_TEMPLATE = ("Earlier answers to this request:\n{previous}\n\nWrite a new answer that differs from all of them "
                    "in approach, structure and wording, and still follows every instruction of the request. "
                    "Reply with the new answer only.")
MAX_CHARS_PER_PREVIOUS = 600
"""Earlier answers are shown up to this many characters each: enough to recognise them, short enough to fit."""


@dataclass(frozen=True)
class SamplingPlan:
    strategy: str = "iid"
    n: int = 4
    """Samples to keep per prompt (the group size)."""
    min_distance: float = 0.0
    """Near-duplicate threshold: a sample closer than this to a kept one is dropped (0: keep everything)."""
    max_draws: int = 4
    """Draw budget per prompt (dedup and conditioned stop there; adaptive caps one prompt there)."""
    template: str = DEFAULT_TEMPLATE
    settle_after: int = 2
    """adaptive: a prompt whose first `settle_after` scores are all equal stops drawing."""


@dataclass
class Sample:
    text: str
    token_ids: list[int]
    logprobs: list[float] | None = None
    """The engine's log-probability of each sampled token (None when it was not asked for them)."""


@dataclass
class Group:
    messages: list[dict[str, str]]
    """The original prompt: what every kept sample answers and what the learner conditions on."""
    kept: list[Sample] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)
    """What `distance` compares, one per kept sample (embeddings or texts)."""
    scores: list[float | None] = field(default_factory=list)
    """adaptive only: one raw score per kept sample (None where the scorer failed)."""
    components: dict[str, list[float | None]] = field(default_factory=dict)
    """adaptive only: each reward component's raw score per kept sample, to compose once the group is whole."""
    drawn: int = 0
    tokens_drawn: int = 0
    near_duplicates: int = 0

    @property
    def settled_flat(self) -> bool:
        values = [s for s in self.scores if s is not None]
        return len(values) >= 2 and max(values) == min(values)


Draw = Callable[[list[tuple[list[dict[str, str]], int]]], list[list[Sample]]]
"""[(messages, count)] -> `count` samples for each request, in order, in one engine call."""
Embed = Callable[[list[str]], list[Any]]
Distance = Callable[[Any, Any], float]
Score = Callable[[list[int], list[list[str]]], Scores]
"""(prompt indices, texts per prompt) -> their scores, grouped per prompt (ScorerActor.score)."""


def conditioned_messages(messages: Sequence[dict[str, str]], previous: Sequence[str], template: str
                         ) -> list[dict[str, str]]:
    """The original chat with the last user message extended by the template, whose {previous} lists the earlier
    answers. The original messages are not modified."""
    listed = "\n\n".join(f"Answer {i}:\n{_clip(text)}" for i, text in enumerate(previous, start=1))
    *head, last = [dict(m) for m in messages]
    last["content"] = f"{last['content']}\n\n{template.replace(PREVIOUS, listed)}"
    return [*head, last]


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_CHARS_PER_PREVIOUS else text[:MAX_CHARS_PER_PREVIOUS] + " ..."


class Sampler:
    def __init__(self, plan: SamplingPlan, draw: Draw, embed: Embed | None = None, distance: Distance | None = None,
                 fits: Callable[[list[dict[str, str]]], bool] | None = None, score: Score | None = None):
        if plan.strategy not in STRATEGIES:
            raise ValueError(f"unknown sampling strategy {plan.strategy!r}; use one of {', '.join(STRATEGIES)}")
        if plan.strategy == "adaptive" and score is None:
            raise ValueError("the adaptive strategy needs a score callback")
        self.plan, self.draw, self.score = plan, draw, score
        self.embed = embed or (lambda texts: list(texts))
        self.distance = distance
        self.fits = fits or (lambda messages: True)

    def run(self, prompts: list[list[dict[str, str]]]) -> list[Group]:
        groups = [Group(messages=list(m)) for m in prompts]
        strategy = self.plan.strategy
        if strategy == "iid":
            self._round(groups, [(i, self.plan.n) for i in range(len(groups))])
        elif strategy == "dedup":
            self._fill(groups, per_round=lambda g: self.plan.n - len(g.kept))
        elif strategy == "conditioned":
            self._fill(groups, per_round=lambda g: 1, conditioned=True)
        else:
            self._adaptive(groups)
        return groups

    # ---- strategies ------------------------------------------------------------------------------------------

    def _fill(self, groups: list[Group], per_round: Callable[[Group], int], conditioned: bool = False) -> None:
        """Rounds until every group holds n samples or has spent its draw budget."""
        while True:
            requests = [(i, min(per_round(g), self.plan.max_draws - g.drawn)) for i, g in enumerate(groups)
                        if len(g.kept) < self.plan.n and g.drawn < self.plan.max_draws]
            if not requests:
                return
            self._round(groups, requests, conditioned)

    def _adaptive(self, groups: list[Group]) -> None:
        plan = self.plan
        budget = plan.n * len(groups)
        first = min(plan.settle_after, plan.n)
        scored = self._round(groups, [(i, first) for i in range(len(groups))])
        self._score(groups, scored)
        budget -= first * len(groups)
        while budget > 0:
            varying = [i for i, g in enumerate(groups) if not g.settled_flat and g.drawn < plan.max_draws]
            # Nothing varies any more: give the rest back to settled groups (more draws may still split them).
            candidates = varying or [i for i, g in enumerate(groups) if g.drawn < plan.max_draws]
            if not candidates:
                return
            # A group that varies keeps varying, so its whole share can be drawn in one engine call.
            share = max(1, budget // len(candidates))
            requests = []
            for i in candidates:
                count = min(share, plan.max_draws - groups[i].drawn, budget)
                if count > 0:
                    requests.append((i, count))
                    budget -= count
            self._score(groups, self._round(groups, requests))

    # ---- shared steps ----------------------------------------------------------------------------------------

    def _round(self, groups: list[Group], requests: list[tuple[int, int]], conditioned: bool = False
               ) -> dict[int, list[int]]:
        """One engine call for every request; returns, per group, the positions of the samples it kept."""
        sent = [(self._prompt_for(groups[i], conditioned), count) for i, count in requests]
        results = self.draw(sent)
        added: dict[int, list[int]] = {}
        for (i, _), samples in zip(requests, results, strict=True):
            group = groups[i]
            group.drawn += len(samples)
            group.tokens_drawn += sum(len(s.token_ids) for s in samples)
            keys = self.embed([s.text for s in samples]) if samples else []
            for sample, key in zip(samples, keys, strict=True):
                if len(group.kept) >= self.plan.n and self.plan.strategy != "adaptive":
                    break
                if self._is_near_duplicate(key, group.keys):
                    group.near_duplicates += 1
                    continue
                group.kept.append(sample)
                group.keys.append(key)
                added.setdefault(i, []).append(len(group.kept) - 1)
        return added

    def _prompt_for(self, group: Group, conditioned: bool) -> list[dict[str, str]]:
        if not conditioned or not group.kept:
            return group.messages
        previous = [s.text for s in group.kept]
        while previous:  # drop the oldest answers until the prompt fits the context window
            messages = conditioned_messages(group.messages, previous, self.plan.template)
            if self.fits(messages):
                return messages
            previous = previous[1:]
        return group.messages

    def _is_near_duplicate(self, key: Any, kept_keys: list[Any]) -> bool:
        if self.plan.strategy == "iid" or self.plan.min_distance <= 0 or self.distance is None:
            return False
        return any(self.distance(key, other) < self.plan.min_distance for other in kept_keys)

    def _score(self, groups: list[Group], added: dict[int, list[int]]) -> None:
        if not added:
            return
        indices = sorted(added)
        texts = [[groups[i].kept[p].text for p in added[i]] for i in indices]
        scores = self.score(indices, texts)
        for position, i in enumerate(indices):
            groups[i].scores.extend(scores.raw[position])
            for name, values in scores.components.items():
                groups[i].components.setdefault(name, []).extend(values[position])


def whole_group_scores(groups: list[Group], composition: Composition) -> Scores:
    """Compose the groups' raw component scores once every group is complete: group normalization then sees each
    whole group, not the parts the adaptive strategy scored as it went."""
    return composition.apply({name: [g.components.get(name, []) for g in groups] for name in composition.weights})
