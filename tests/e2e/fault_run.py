"""Run the demo recipe through the real driver while killing real actors at chosen moments, for test_faults.py.

    python -m tests.e2e.fault_run OUT_DIR KILLS [overrides ...]

KILLS: comma-separated role:iteration, e.g. generator:1,scorer:1,learner:2. Each kill happens once, shortly after
that stage's remote calls went out in that iteration: `ray.kill` of generator 0 during generate, of scorer 0 during
score, of learner rank 0 during train. `between:N` kills the last generator just after iteration N is logged, while
no call is out (the health watch must see it). Ray restarts generators and scorers; the driver must notice, restart
what is needed, redo the work and finish the run. Prints the run dir.
"""

from __future__ import annotations

import sys
import threading
import time

import ray


def kill_soon(get_actor, delay_s: float) -> None:
    def kill():
        time.sleep(delay_s)
        ray.kill(get_actor(), no_restart=False)

    threading.Thread(target=kill, daemon=True).start()


def main(argv: list[str]) -> int:
    from tao_ray.config import load_recipe
    from tao_ray.data.inputs import prepare_inputs, resolve_output_dir
    from tao_ray.loop import driver as driver_module

    out, kills, *overrides = argv
    pending = {tuple(k.split(":")) for k in kills.split(",") if k}
    recipe = resolve_output_dir(load_recipe("recipes/demo-cpu.yaml", [*overrides, f"run.output_dir={out}"]))
    driver = driver_module.TaoDriver(recipe, prepare_inputs(recipe))

    def due(role: str) -> bool:
        key = (role, str(driver.supervisor.iteration))
        if key in pending:
            pending.discard(key)
            return True
        return False

    def wrap_stages() -> None:
        """After setup: the stages whose calls a kill is timed against."""
        rollouts = driver.rollouts
        generate, score, learn = rollouts.generate, rollouts.score, driver.learn

        def generate_and_kill(prompts, sync, version, greedy=False, answer=None):
            # Sampling calls only (an iteration's batch may be drawn with the previous evaluation's answers).
            if not greedy and due("generator"):
                kill_soon(lambda: driver.actors.generators.handle(0), 0.3)
            return generate(prompts, sync, version, greedy, answer)

        def score_and_kill(prompts, generations, scorers=None):
            if scorers is None and due("scorer"):
                kill_soon(lambda: driver.actors.scorers.handle(0), 0.3)
            return score(prompts, generations, scorers)

        def learn_and_kill(batch):
            if due("learner"):
                kill_soon(lambda: driver.actors.learners.handle(0), 1.0)
            return learn(batch)

        log_iteration = driver.log_iteration

        def log_and_kill(iteration, *args, **kwargs):
            log_iteration(iteration, *args, **kwargs)
            if ("between", str(iteration)) in pending:
                pending.discard(("between", str(iteration)))
                ray.kill(driver.actors.generators.handle(len(driver.actors.generators) - 1), no_restart=False)

        rollouts.generate, rollouts.score, driver.learn = generate_and_kill, score_and_kill, learn_and_kill
        driver.log_iteration = log_and_kill

    try:
        driver.setup()
        wrap_stages()
        driver.run()
    finally:
        driver.cleanup()
    print(driver.run_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
