#!/usr/bin/env bash
# Submit a recipe as a Ray job from the repository root (the working dir is uploaded to the cluster).
#
#   RAY_ADDRESS=http://<head>:8265 cluster/submit.sh RECIPE [section.key=value ...] [--resume|--overwrite]
#
# The entrypoint is `python -m tao_ray run ...`, run with TAO_RAY_BIN (default: this checkout's .venv/bin, when it
# exists) first on the job's PATH: the job finds tao-ray's Python whatever PATH the raylets were started with.
# On a cluster whose image installs tao-ray into its default Python, set TAO_RAY_BIN= (empty) or leave it: a
# directory that does not exist on the nodes is skipped. Outputs: give run.output_dir an absolute path on storage
# every node mounts (a relative one is refused: it would land in Ray's temporary copy of the working dir).
# The cluster's token (see cluster/local.sh) is read from RAY_AUTH_TOKEN_PATH (default ~/.ray/tao-ray-token).
set -euo pipefail
: "${RAY_ADDRESS:?set RAY_ADDRESS to the Ray dashboard, e.g. http://<head>:8265}"
RAY=${RAY:-ray}
[ "$RAY" = ray ] && [ -x .venv/bin/ray ] && RAY=.venv/bin/ray
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
export RAY_AUTH_TOKEN_PATH=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/tao-ray-token}
default_bin=""
[ -d .venv/bin ] && default_bin="$(cd .venv/bin && pwd)"
bin=${TAO_RAY_BIN-$default_bin}
recipe=${1:?usage: cluster/submit.sh RECIPE [section.key=value ...]}
shift
path_env=""
[ -n "$bin" ] && path_env=", \"env_vars\": {\"PATH\": \"$bin:\${PATH}\"}"
exec "$RAY" job submit --address "$RAY_ADDRESS" --working-dir . \
  --runtime-env-json "{\"excludes\": [\".venv\", \"runs\", \".git\", \"wandb\", \"models\"]$path_env}" \
  -- python -m tao_ray run "$recipe" "$@"
