"""The training prompt order: a fresh seeded shuffle each epoch, addressed by (epoch, position).

The order is a pure function of (seed, epoch) (and the weights, which come from the recipe), so the state to save
for an exact resume is two integers. With weights (data.mix=upweight_recent), an epoch is instead `num_prompts`
seeded draws with replacement, each prompt drawn with probability proportional to its weight.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class PromptOrder:
    num_prompts: int
    seed: int
    epoch: int = 0
    position: int = 0
    weights: Sequence[float] | None = None

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(self.num_prompts))
        rng = random.Random(f"{self.seed}:{epoch}")
        if self.weights is not None:
            # With replacement: a shuffle would still show every prompt once per epoch, whatever its weight.
            return rng.choices(order, weights=self.weights, k=self.num_prompts)
        rng.shuffle(order)
        return order

    def next_batch(self, size: int) -> list[int]:
        """Indices of the next `size` prompts, crossing into the next epoch's shuffle when one runs out."""
        batch: list[int] = []
        while len(batch) < size:
            permutation = self._permutation(self.epoch)
            take = min(size - len(batch), self.num_prompts - self.position)
            batch.extend(permutation[self.position:self.position + take])
            self.position += take
            if self.position == self.num_prompts:
                self.epoch, self.position = self.epoch + 1, 0
        return batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}
