"""The driver's state machine, run for real (loop/driver.py with its prompt feed and checkpointer) against
stand-in actors (stand_ins.py): the batch drawn ahead, the pending checkpoint, learner recovery and resume, in
seconds. The same loop against real actors runs in tests/e2e."""

from __future__ import annotations

import json

import pytest

from tao_ray.config import load_recipe
from tao_ray.data.inputs import RunInputs
from tao_ray.data.order import PromptOrder
from tao_ray.data.prompts import load_prompts
from tao_ray.errors import TaoError
from tao_ray.loop.driver import TaoDriver
from tao_ray.run import checkpoints

from .stand_ins import Actors

ITERATIONS = 4


def make_driver(tmp_path, actors: Actors, *overrides: str, resume: bool = False, unseen: bool = False) -> TaoDriver:
    recipe = load_recipe("recipes/demo-cpu.yaml", [f"run.output_dir={tmp_path}", f"run.iterations={ITERATIONS}",
                                                   "logging.wandb=false", "generation.prompts_per_iteration=6",
                                                   "run.checkpoint_every=2", *overrides])
    train = load_prompts(recipe.data.train_prompts, 40)
    heldout = load_prompts(recipe.data.heldout_prompts, 5)
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    extra = {"unseen": load_prompts("prompts/if-demo/unseen.jsonl", 4)} if unseen else {}
    driver = TaoDriver(recipe, RunInputs(str(model_dir), train, heldout, **extra), resume=resume)
    driver.begin()
    driver.attach(actors)
    return driver


def run(driver: TaoDriver) -> dict:
    try:
        return driver.run()
    finally:
        driver.cleanup()


def expected_prompt_ids(driver: TaoDriver, iterations: int) -> list[list[str]]:
    """The prompt ids each iteration must train on: the order's batches, one after another, none skipped or twice."""
    order = PromptOrder(len(driver.inputs.train), driver.recipe.run.seed)
    size = driver.recipe.generation.prompts_per_iteration
    return [[driver.inputs.train[i].id for i in order.next_batch(size)] for _ in range(iterations)]


def test_every_iteration_trains_on_the_next_batch_of_the_order_on_the_newest_weights(tmp_path):
    actors = Actors()
    driver = make_driver(tmp_path, actors)
    summary = run(driver)
    rows = summary["iterations"]
    assert [row["iteration"] for row in rows] == list(range(ITERATIONS + 1))
    assert [row["prompt_ids"] for row in rows[1:]] == expected_prompt_ids(driver, ITERATIONS)
    # On-policy: iteration k samples on the weights of update k - 1, and every update reaches every generator.
    assert [row["policy_version"]["samples"] for row in rows[1:]] == [[k - 1] for k in range(1, ITERATIONS + 1)]
    assert [row["served_weights"] for row in rows] == [[float(k)] * 2 for k in range(ITERATIONS + 1)]
    assert actors.syncs[0].updates == list(range(1, ITERATIONS + 1))
    # Every learner step started from the version the generators served.
    assert actors.learners.actors[0].train_calls == list(range(ITERATIONS))
    assert summary["stopped"] == "completed" and actors.stopped


def test_checkpoints_hold_the_full_state_every_checkpoint_every_iterations_and_the_last(tmp_path):
    summary = run(make_driver(tmp_path, Actors(), "run.keep_checkpoints=2"))
    run_dir = tmp_path / summary["run_name"]
    complete = [path.name for path in checkpoints.complete(run_dir)]
    assert complete == ["iter-0002", "iter-0004"]  # full state every 2 iterations; the last is full too
    state = json.loads((run_dir / "checkpoints" / "iter-0004" / checkpoints.DRIVER_STATE).read_text())
    assert state["iteration"] == 4 and state["best"] == summary["best_iteration"]


def test_a_batch_drawn_ahead_is_one_version_old_and_a_checkpoint_resumes_before_it(tmp_path):
    actors = Actors()
    driver = make_driver(tmp_path, actors, "run.max_staleness=1", "eval.every=2", "run.keep_checkpoints=2")
    summary = run(driver)
    rows = summary["iterations"]
    assert [row["prompt_ids"] for row in rows[1:]] == expected_prompt_ids(driver, ITERATIONS)
    # Iteration 1's batch comes with the base evaluation (version 0); from iteration 2 on, each batch is drawn in
    # the background while the learner takes the previous update: one version old.
    assert [row["policy_version"]["samples"] for row in rows[1:]] == [[0], [0], [1], [2]]
    state = json.loads((tmp_path / summary["run_name"] / "checkpoints" / "iter-0002" /
                        checkpoints.DRIVER_STATE).read_text())
    # Iteration 3's batch was already drawn when iteration 2's checkpoint was taken: the saved order is from
    # before it, so a resumed run draws it again.
    order = PromptOrder(len(driver.inputs.train), driver.recipe.run.seed, **state["prompt_order"])
    assert [driver.inputs.train[i].id for i in order.next_batch(6)] == rows[3]["prompt_ids"]


def test_a_dead_learner_restarts_from_the_newest_checkpoint_and_no_batch_is_lost_or_repeated(tmp_path):
    # Rank 0 dies in the 4th step (iteration 4): the ranks restart from iteration 2's checkpoint, completed during
    # iteration 3. (A checkpoint still being written when its learners die is incomplete and never used.)
    actors = Actors(learner_deaths=[4])
    driver = make_driver(tmp_path, actors)
    summary = run(driver)
    rows = summary["iterations"]
    assert [row["iteration"] for row in rows] == list(range(ITERATIONS + 1))
    assert [row["prompt_ids"] for row in rows[1:]] == expected_prompt_ids(driver, ITERATIONS)
    (restart,) = summary["restarts"]["learner"]
    assert restart["rank"] == 0 and restart["iteration"] == 4 and "died" in restart["cause"]
    assert actors.learner_starts == 2
    fresh = actors.learners.actors[0]
    assert fresh.loaded == [str(tmp_path / summary["run_name"] / "checkpoints" / "iter-0002" / "learner")]
    assert fresh.train_calls == [2, 3]  # iterations 3 and 4, on the restored weights
    assert len(actors.syncs) == 2 and actors.syncs[1].updates[0] == 2  # the generators refitted to iteration 2


def test_a_learner_that_dies_before_any_checkpoint_restarts_from_the_base_model(tmp_path):
    actors = Actors(learner_deaths=[1])
    driver = make_driver(tmp_path, actors)
    summary = run(driver)
    assert [row["prompt_ids"] for row in summary["iterations"][1:]] == expected_prompt_ids(driver, ITERATIONS)
    assert actors.learners.actors[0].loaded == [] and actors.syncs[1].updates[0] == 0


def test_past_max_restarts_the_run_stops_with_the_resume_command(tmp_path):
    actors = Actors(learner_deaths=[4, 1])
    driver = make_driver(tmp_path, actors, "run.max_restarts=1")
    with pytest.raises(TaoError, match=r"after 1 restart\(s\) of the learners .* continue with: .*--resume"):
        run(driver)
    assert actors.stopped
    assert [path.name for path in checkpoints.complete(tmp_path / driver.recipe.run.name)] == ["iter-0002"]


def test_resume_continues_after_the_newest_checkpoint_with_the_same_order(tmp_path):
    first = make_driver(tmp_path, Actors(), "run.iterations=2")
    run(first)
    actors = Actors()
    resumed = make_driver(tmp_path, actors, resume=True)
    summary = run(resumed)
    rows = summary["iterations"]
    assert summary["resumed_from"] == [2]
    assert [row["iteration"] for row in rows] == list(range(ITERATIONS + 1))
    assert [row["prompt_ids"] for row in rows[1:]] == expected_prompt_ids(resumed, ITERATIONS)
    assert actors.learners.actors[0].train_calls == [2, 3]


def test_a_collective_sync_that_fails_restarts_every_generator_and_refits_them_all(tmp_path):
    """NCCL: a receiver that dies leaves the group unusable and the others half-received. The driver restarts every
    generator and refits all of them through a new group, then carries on; nothing samples on torn weights."""
    actors = Actors(sync_failures=(2,))
    driver = make_driver(tmp_path, actors)
    summary = run(driver)
    rows = summary["iterations"]
    assert [row["iteration"] for row in rows] == list(range(ITERATIONS + 1))
    assert actors.generators.restarts == ["weight sync failed (gave no answer in time (TimeoutError: a receiver gave "
                                          "no answer within the sync deadline))"]
    sync = actors.syncs[0]
    assert sync.refits == [2] and sync.updates == [1, 2, 2, 3, 4]
    # Iteration 3 samples on version 2 on every generator: none kept the torn weights.
    assert [row["policy_version"]["samples"] for row in rows[1:]] == [[0], [1], [2], [3]]
    assert [row["served_weights"] for row in rows] == [[float(k)] * 2 for k in range(ITERATIONS + 1)]
    assert sync.closed == 1  # the group's communicators are closed when the run ends


def test_a_generator_that_died_between_calls_is_refitted_before_it_samples_and_recorded(tmp_path):
    """Ray restarts a generator killed between two calls on the base weights; the health watch saw it, so the driver
    refits it to the current policy version before the next batch is drawn, and records the restart."""
    # take() is called three times per iteration (its start, before the sync, before the evaluation): the 4th call
    # is iteration 2's start.
    actors = Actors(deaths_between_calls={4: [("generator", 1)]})
    driver = make_driver(tmp_path, actors)
    summary = run(driver)
    rows = summary["iterations"]
    assert actors.generators.replaced == [(1, "died between calls (seen RESTARTING by the health watch)")]
    assert actors.syncs[0].refits == [1]  # refitted to iteration 1's weights before iteration 2 samples on them
    assert [row["policy_version"]["samples"] for row in rows[1:]] == [[0], [1], [2], [3]]


def test_a_learner_rank_that_died_between_calls_restarts_the_group(tmp_path):
    actors = Actors(deaths_between_calls={7: [("learner", 1)]})  # iteration 3's start
    driver = make_driver(tmp_path, actors)
    summary = run(driver)
    (restart,) = summary["restarts"]["learner"]
    assert restart["rank"] == 1 and restart["iteration"] == 3 and restart["cause"].startswith("died between calls")
    assert [row["prompt_ids"] for row in summary["iterations"][1:]] == expected_prompt_ids(driver, ITERATIONS)


def test_an_unseen_constraint_set_is_answered_scored_and_broken_down_beside_the_held_out_one(tmp_path):
    summary = run(make_driver(tmp_path, Actors(), "run.iterations=1", unseen=True))
    base, first = summary["iterations"]
    assert len(first["unseen_scores"]) == 4 and first["unseen_reward_mean"] is not None
    assert first["unseen_vs_base"] is not None and set(first["by_type"]) == {"heldout", "unseen"}
    assert base["by_type"]["unseen"]["max_words"]["n"] == 4
