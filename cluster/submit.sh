#!/usr/bin/env bash
# Submit a recipe as a Ray job from the repository root (the working dir is uploaded to the cluster).
#
#   RAY_ADDRESS=http://<head>:8265 cluster/submit.sh RECIPE [section.key=value ...] [--resume|--overwrite|--check]
#   RAY_ADDRESS=... cluster/submit.sh --no-wait RECIPE [...]    submit, print the job id on stdout, return
#   RAY_ADDRESS=... cluster/submit.sh --follow JOB_ID           follow a job's logs to its end; exit 0 if it succeeded
#
# Without --no-wait the script follows the job's logs and exits non-zero when the job fails. Each job gets the id
# tao-ray-<recipe>-<UTC time>-<random>, printed first (on stderr), for `--follow`, `ray job status ID` and `ray job stop ID`.
# The entrypoint is `python -m tao_ray run ...`, run with TAO_RAY_BIN (default: this checkout's .venv/bin, when it
# exists) first on the job's PATH: the job finds tao-ray's Python whatever PATH the raylets were started with.
# On a cluster whose image installs tao-ray into its default Python, set TAO_RAY_BIN= (empty) or leave it: a
# directory that does not exist on the nodes is skipped. Outputs: give run.output_dir an absolute path on storage
# every node mounts (a relative one is refused: it would land in Ray's temporary copy of the working dir).
# The cluster's token (see cluster/local.sh) is read from RAY_AUTH_TOKEN_PATH (default ~/.ray/tao-ray-token).
set -euo pipefail
usage="usage: cluster/submit.sh [--no-wait] RECIPE [section.key=value ...] | cluster/submit.sh --follow JOB_ID"
: "${RAY_ADDRESS:?set RAY_ADDRESS to the Ray dashboard, e.g. http://<head>:8265}"
RAY=${RAY:-ray}
[ "$RAY" = ray ] && [ -x .venv/bin/ray ] && RAY=.venv/bin/ray
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}
export RAY_AUTH_TOKEN_PATH=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/tao-ray-token}

if [ "${1:-}" = --follow ]; then
  job=${2:?$usage}
  "$RAY" job logs --address "$RAY_ADDRESS" --follow "$job"
  # `ray job logs` exits 0 whatever the job's outcome: ask for it.
  status=$("$RAY" job status --address "$RAY_ADDRESS" "$job" 2>&1)
  if grep -q "Job '$job' succeeded" <<<"$status"; then
    exit 0
  fi
  echo "cluster/submit.sh: job $job did not succeed: $(grep -o "Job '$job' [a-z ]*" <<<"$status" | head -n 1)" >&2
  exit 1
fi

wait_flag=()
if [ "${1:-}" = --no-wait ]; then
  wait_flag=(--no-wait)
  shift
fi
default_bin=""
[ -d .venv/bin ] && default_bin="$(cd .venv/bin && pwd)"
bin=${TAO_RAY_BIN-$default_bin}
recipe=${1:?$usage}
shift
stem=$(basename "$recipe" .yaml | tr -c 'A-Za-z0-9_\n-' '-')
job="tao-ray-$stem-$(date -u +%Y%m%d-%H%M%S)-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
echo "cluster/submit.sh: job $job" >&2
path_env=""
[ -n "$bin" ] && path_env=", \"env_vars\": {\"PATH\": \"$bin:\${PATH}\"}"
submit=("$RAY" job submit --address "$RAY_ADDRESS" --submission-id "$job" "${wait_flag[@]}" --working-dir .
  --runtime-env-json "{\"excludes\": [\".venv\", \"runs\", \".git\", \"wandb\", \"models\"]$path_env}"
  -- python -m tao_ray run "$recipe" "$@")
if [ ${#wait_flag[@]} -eq 0 ]; then
  exec "${submit[@]}"
fi
# Ray's messages go to stderr too, so that `job=$(cluster/submit.sh --no-wait ...)` holds just the id.
"${submit[@]}" >&2
echo "$job"
