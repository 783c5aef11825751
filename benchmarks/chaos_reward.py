"""The chaos soak's reward (benchmarks/chaos_soak.py): the demo's constraint reward, except that the one call which
claims the stall flag first sleeps past the stage's deadline, as a verifier stuck on a slow service would.

The flag is a file named by TAO_RAY_CHAOS_STALL holding the seconds to sleep; it is claimed by renaming it, so only
one sample of one call stalls however many scorers see it.
"""

from __future__ import annotations

import os
import time

STALL_ENV = "TAO_RAY_CHAOS_STALL"


def constraints_or_stall(record: dict, response: str) -> float:
    from tao_ray.rewards.constraints import constraint_reward

    flag = os.environ.get(STALL_ENV)
    if flag:
        claimed = f"{flag}.{os.getpid()}"
        try:
            os.rename(flag, claimed)
        except FileNotFoundError:
            pass
        else:
            with open(claimed) as file:
                stall_s = float(file.read())
            time.sleep(stall_s)
    return constraint_reward(record, response)
