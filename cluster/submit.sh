#!/usr/bin/env bash
# Submit a recipe as a Ray job from the repository root (the working dir is uploaded to the cluster).
#   RAY_ADDRESS=http://<head>:8265 cluster/submit.sh recipes/llama3.1-8b-8gpu.yaml [section.key=value ...]
set -euo pipefail
: "${RAY_ADDRESS:?set RAY_ADDRESS to the Ray dashboard, e.g. http://<head>:8265}"
RAY=${RAY:-ray}
recipe=$1; shift
exec "$RAY" job submit --address "$RAY_ADDRESS" --working-dir . \
  --runtime-env-json '{"excludes": [".venv", "runs", ".git"]}' -- tao-ray run "$recipe" "$@"
