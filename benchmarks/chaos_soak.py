"""A long run under random faults: the demo recipe on a real 2-node Ray cluster (two raylets on this machine, token
authentication) with 2 generators, 2 scorers and 2 learner ranks spread over the nodes, while a seeded schedule
injects about one fault per iteration:

- `kill`: SIGKILL of a random actor process (generator, scorer or learner rank), found by its process title;
- `node`: the worker node's raylet and every process under it at once, as a preemption; a replacement node joins
  right after, as an autoscaler would bring one;
- `stall`: one sample of the next scoring call sleeps past `resources.call_timeout_s` (benchmarks/chaos_reward.py).

The same recipe and seed then run once more without faults on a fresh cluster. Checked, and written to
results-chaos-soak-cpu.json with every fault and every recovery (seconds to detect, restart and refit):
- no iteration's samples were lost or counted twice: each row's prompt ids equal the fault-free run's, in order,
  and each row generated prompts x samples_per_prompt samples;
- every row's policy versions are consistent: samples from iteration i-1's weights, held-out answers from i's;
- the held-out curve next to the fault-free run's (equal seeds; the runs differ where a redone step resampled);
- every fault got its recovery in summary.json's restarts (a restart of the killed role, a `node_lost` naming the
  node, a restart for the stalled call);
- no process of the run outlives it: every process the cluster ever ran is recorded each second (raylets and all
  their descendants, so one orphaned by a killed node is still known); none of its actor processes may be left once
  the run has cleaned up, and none of them at all once the cluster is stopped.

    python -m benchmarks.chaos_soak [--iterations 12] [--seed 0]      (make chaos-soak)

Not part of `make test`: the two runs took 25 minutes on 2 cores (16 with faults, 5 without, and the clusters).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.chaos_reward import STALL_ENV

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_name("results-chaos-soak-cpu.json")
ACTOR_TITLES = {"generator": "ray::GeneratorActor", "scorer": "ray::ScorerActor", "learner": "ray::LearnerActor"}
KINDS = ("kill", "kill", "node", "stall")  # actor kills come in three roles: weigh them above the rarer faults
CALL_TIMEOUT_S = 60.0
STALL_S = CALL_TIMEOUT_S + 30.0


def recipe_overrides(iterations: int, seed: int, out: Path) -> list[str]:
    return [f"run.iterations={iterations}", f"run.output_dir={out}", "run.name=soak", "run.checkpoint_every=1",
            f"run.seed={seed}", f"generation.seed={seed}", f"training.seed={seed}", "run.max_restarts=20",
            "data.max_heldout_prompts=16", "generation.prompts_per_iteration=8", "generation.max_tokens=48",
            "generation.kv_cache_gb=0.25", "data.transfer_prompts=''", "data.general_prompts=''",
            "resources.generators=2", "resources.scorers=2", "resources.learners=2", "resources.learner_cpus=1",
            "resources.placement=spread", f"resources.call_timeout_s={CALL_TIMEOUT_S:g}",
            "resources.startup_timeout_s=300", "resources.max_actor_restarts=20",
            "scoring.reward=function", "scoring.function.target=benchmarks.chaos_reward:constraints_or_stall",
            "scoring.timeout_s=900", "eval.reward=constraints", "logging.wandb=false"]


def cluster_processes(cluster) -> list[tuple[object, str]]:
    """(process, command line) for every raylet of the cluster and everything under it, skipping any that ended
    while we looked."""
    found = []
    for raylet in cluster._raylets().values():
        try:
            descendants = raylet.children(recursive=True)
        except Exception:
            continue
        for process in [raylet, *descendants]:
            try:
                found.append((process, " ".join(process.cmdline())))
            except Exception:
                continue
    return found


def is_actor(line: str, role: str | None = None) -> bool:
    """Whether a command line is an actor process's title (of `role`, or of any role)."""
    titles = [ACTOR_TITLES[role]] if role else ACTOR_TITLES.values()
    return any(line.startswith(title) for title in titles)


class Chaos:
    """Injects one fault per iteration from iteration 1 on, at a seeded moment inside it, from a thread."""

    def __init__(self, cluster, driver, seed: int, stall_flag: Path, kinds: tuple[str, ...] = KINDS):
        self.cluster, self.driver, self.stall_flag, self.kinds = cluster, driver, stall_flag, kinds
        self.rng = random.Random(seed)
        self.injected: list[dict] = []
        self.errors: list[str] = []
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _loop(self) -> None:
        done = 0
        while not self.stop.is_set():
            iteration = self.driver.supervisor.iteration
            if iteration > done:
                done = iteration
                # Somewhere in the iteration's generate, score or train (each takes seconds here).
                if self.stop.wait(self.rng.uniform(0.5, 8.0)):
                    return
                try:
                    self.inject(iteration, self.rng.choice(self.kinds))
                except Exception as error:  # a fault that could not be injected is reported, not fatal
                    self.errors.append(f"iteration {iteration}: {type(error).__name__}: {error}")
            self.stop.wait(0.5)

    def inject(self, iteration: int, kind: str) -> None:
        at_s = round(time.monotonic() - self.started, 1)
        if kind == "kill":
            role = self.rng.choice(sorted(ACTOR_TITLES))
            processes = self.actor_processes(role)
            if not processes:
                raise RuntimeError(f"no live {role} process to kill")
            process = self.rng.choice(processes)
            os.kill(process.pid, signal.SIGKILL)
            self.injected.append({"iteration": iteration, "kind": kind, "role": role, "pid": process.pid,
                                  "at_s": at_s})
        elif kind == "node":
            head = self.cluster.head_node_id()
            node = next(n for n in self.cluster._raylets() if n != head)
            killed = self.cluster.kill_node(node)
            self.injected.append({"iteration": iteration, "kind": kind, "node_id": node, "processes": killed,
                                  "at_s": at_s})
            joined = time.monotonic()
            self.cluster.add_node()  # the replacement an autoscaler would start
            self.injected[-1]["replacement_joined_s"] = round(time.monotonic() - joined, 1)
        else:
            self.stall_flag.write_text(f"{STALL_S:g}")
            self.injected.append({"iteration": iteration, "kind": kind, "stall_s": STALL_S, "at_s": at_s})

    def actor_processes(self, role: str) -> list:
        """The live processes of `role`'s actors on this cluster (a learner rank's, a generator's, ...)."""
        return [process for process, line in cluster_processes(self.cluster) if is_actor(line, role)]

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=120)


class Census:
    """Every process the cluster ever ran (raylets and all their descendants: workers, actors, engines, reward
    processes), sampled every second from a thread, so that one orphaned by a killed node is still known later."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.seen: dict[tuple[int, float], str] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        for process, line in cluster_processes(self.cluster):
            try:
                self.seen.setdefault((process.pid, process.create_time()), line[:100])
            except Exception:  # ended since it was listed
                continue

    def alive(self, actors_only: bool = False) -> list[str]:
        """The processes seen that still run (the same pid and start time), optionally only actor processes."""
        import psutil

        left = []
        for (pid, created), line in list(self.seen.items()):
            if actors_only and not is_actor(line):
                continue
            try:
                if abs(psutil.Process(pid).create_time() - created) < 1e-3:
                    left.append(f"{pid} {line}")
            except psutil.Error:
                continue
        return left

    def finish(self) -> None:
        self.sample()
        self.stop.set()
        self.thread.join(timeout=10)


def wait_until_gone(census: Census, actors_only: bool, timeout_s: float = 60.0) -> list[str]:
    """What of the census still runs after up to `timeout_s` (processes take a moment to exit after a kill)."""
    deadline = time.monotonic() + timeout_s
    while (left := census.alive(actors_only)) and time.monotonic() < deadline:
        time.sleep(2)
    return left


def one_run(iterations: int, seed: int, chaos: bool, workdir: Path, kinds: tuple[str, ...] = KINDS) -> dict:
    """The recipe on a fresh 2-node cluster; with `chaos`, under the fault schedule. The driver runs in this process
    (as the driver of `ray job submit` would run on the head), so the schedule can follow its iterations."""
    from tests.e2e.cluster import LocalCluster

    stall_flag = workdir / "stall"
    # The raylets, hence every worker and the scorers' reward processes, inherit these.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    os.environ[STALL_ENV] = str(stall_flag)
    cluster = LocalCluster(nodes=2, cpus_per_node=4)
    started = time.monotonic()
    report: dict = {"chaos": chaos}
    census = None
    try:
        cluster.start()
        census = Census(cluster)
        report["cluster_start_s"] = round(time.monotonic() - started, 1)
        os.environ.update({"RAY_ADDRESS": f"127.0.0.1:{cluster.port}", "RAY_AUTH_MODE": "token",
                           "RAY_AUTH_TOKEN_PATH": str(cluster.token_path)})
        report.update(drive(cluster, census, iterations, seed, chaos, workdir, stall_flag, kinds))
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for key in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH"):
            os.environ.pop(key, None)
        if census is not None:
            census.finish()
        cluster.stop()
    report["processes_seen"] = len(census.seen) if census else 0
    report["cluster_processes_after_stop"] = wait_until_gone(census, actors_only=False) if census else []
    report["wall_s"] = round(time.monotonic() - started, 1)
    return report


def drive(cluster, census: Census, iterations: int, seed: int, chaos: bool, workdir: Path, stall_flag: Path,
          kinds: tuple[str, ...] = KINDS) -> dict:
    from tao_ray.config import load_recipe
    from tao_ray.data.inputs import prepare_inputs, resolve_output_dir
    from tao_ray.errors import TaoError
    from tao_ray.loop.driver import TaoDriver

    out = workdir / ("chaos" if chaos else "clean")
    recipe = resolve_output_dir(load_recipe(str(REPO / "recipes/demo-cpu.yaml"),
                                            recipe_overrides(iterations, seed, out)))
    driver = TaoDriver(recipe, prepare_inputs(recipe))
    schedule = None
    started = time.monotonic()
    stopped_by = None
    try:
        driver.setup()
        if chaos:
            schedule = Chaos(cluster, driver, seed, stall_flag, kinds)
            schedule.start()
        driver.run()
    except TaoError as error:  # the run's own one-line stop: reported (the checks then fail), not a traceback
        stopped_by = str(error)
    finally:
        if schedule is not None:
            schedule.finish()
        driver.cleanup()
    run_s = time.monotonic() - started
    summary = json.loads((out / "soak" / "summary.json").read_text())
    if stopped_by is not None:
        summary["stopped"] = f"error: {stopped_by}"
    return {"run_s": round(run_s, 1), "summary": summary,
            "faults": schedule.injected if schedule else [], "fault_errors": schedule.errors if schedule else [],
            "actor_processes_after_cleanup": wait_until_gone(census, actors_only=True)}


def checks(chaos: dict, clean: dict, iterations: int, per_iteration: int) -> dict:
    rows, reference = chaos["summary"]["iterations"], clean["summary"]["iterations"]
    ids = {r["iteration"]: r.get("prompt_ids") for r in rows}
    ref_ids = {r["iteration"]: r.get("prompt_ids") for r in reference}
    return {
        "every_iteration_logged_once": [r["iteration"] for r in rows] == list(range(iterations + 1)),
        "prompt_ids_match_the_fault_free_run": ids == ref_ids,
        "no_prompt_twice_in_an_iteration": all(len(set(v)) == len(v) for v in ids.values() if v),
        "samples_per_row": all(r["samples_generated"] == per_iteration for r in rows[1:]),
        "policy_versions_consistent": all(r["policy_version"] == {"samples": [r["iteration"] - 1],
                                                                   "heldout": [r["iteration"]]} for r in rows[1:]),
        "completed": chaos["summary"]["stopped"] == "completed",
        "every_fault_recovered": not unrecovered(chaos["faults"], chaos["summary"]) and not chaos["fault_errors"],
        "no_actor_process_after_cleanup": not chaos["actor_processes_after_cleanup"],
        "no_cluster_process_after_stop": not chaos["cluster_processes_after_stop"],
    }


def unrecovered(faults: list[dict], summary: dict) -> list[dict]:
    """Faults with no recovery recorded for them: an actor kill needs a restart of its role (the evaluation scorer
    counts as a scorer) from its iteration on, a lost node a `node_lost` restart naming it, a stall a restart for a
    call that gave no answer. Each recovery answers one fault."""
    left = recoveries(summary)
    missing = []
    for fault in faults:
        if fault["kind"] == "kill":
            match = [r for r in left if r["role"].removeprefix("eval_") == fault["role"]
                     and r["iteration"] >= fault["iteration"] and r["cause"] != "node_lost"]
        elif fault["kind"] == "node":
            match = [r for r in left if r.get("node_id") == fault["node_id"]]
        else:
            match = [r for r in left if r["cause"].startswith("gave no answer")]
        if match:
            left.remove(min(match, key=lambda r: r["iteration"]))
        else:
            missing.append(fault)
    return missing


def recoveries(summary: dict) -> list[dict]:
    return [dict(r, role=role) for role, entries in summary["restarts"].items() for r in entries]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="the faults drawn from, comma-separated (repeat one to weigh it); `node` alone takes "
                             "a node in every iteration")
    parser.add_argument("--one", choices=("chaos", "clean"), help=argparse.SUPPRESS)  # one run, in a child process
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    kinds = tuple(args.kinds.split(","))
    if not set(kinds) <= set(KINDS):
        parser.error(f"--kinds: {args.kinds!r}; each one of {sorted(set(KINDS))}")
    if args.one:
        report = one_run(args.iterations, args.seed, args.one == "chaos", args.workdir, kinds)
        (args.workdir / f"{args.one}.json").write_text(json.dumps(report))
        return 0
    from tao_ray.run.tracking import hardware

    runs = {}
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    for kind in ("chaos", "clean"):
        # Each run in a process of its own: a Ray driver keeps the first cluster's token for its lifetime.
        subprocess.run([sys.executable, "-m", "benchmarks.chaos_soak", "--one", kind, "--workdir", str(tmp),
                        "--iterations", str(args.iterations), "--seed", str(args.seed), "--kinds", args.kinds],
                       cwd=REPO, check=True)
        runs[kind] = json.loads((tmp / f"{kind}.json").read_text())
    shutil.rmtree(tmp, ignore_errors=True)  # kept when a run failed, for its logs
    chaos, clean = runs["chaos"], runs["clean"]
    generation = chaos["summary"]["config"]["generation"]
    per_iteration = generation["prompts_per_iteration"] * generation["samples_per_prompt"]
    result = {
        "what": "the demo recipe for N iterations on a 2-node Ray cluster (2 generators, 2 scorers, 2 learner "
                "ranks, spread) under about one random fault per iteration, against a fault-free run of the "
                "same seed",
        "hardware": hardware(), "iterations": args.iterations, "seed": args.seed, "kinds": list(kinds),
        "call_timeout_s": CALL_TIMEOUT_S,
        "faults": chaos["faults"], "fault_errors": chaos["fault_errors"],
        "faults_by_kind": {k: sum(f["kind"] == k for f in chaos["faults"]) for k in sorted(set(KINDS))},
        "recoveries": recoveries(chaos["summary"]),
        "heldout_curve": {"chaos": [r["heldout_reward_mean"] for r in chaos["summary"]["iterations"]],
                          "fault_free": [r["heldout_reward_mean"] for r in clean["summary"]["iterations"]]},
        "wall_s": {"chaos": chaos["run_s"], "fault_free": clean["run_s"]},
        "checks": checks(chaos, clean, args.iterations, per_iteration),
        "leftovers": {"actor_processes_after_cleanup": chaos["actor_processes_after_cleanup"],
                      "cluster_processes_after_stop": chaos["cluster_processes_after_stop"]
                      + clean["cluster_processes_after_stop"]},
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("faults_by_kind", "wall_s", "checks", "heldout_curve")}, indent=1))
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
