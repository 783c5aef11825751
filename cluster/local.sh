#!/usr/bin/env bash
# A Ray cluster with token authentication: start a head, join more raylets (on this machine or on others), stop.
#
#   cluster/local.sh start [ray start options]                 the head; creates the cluster's token if missing
#   cluster/local.sh join HEAD_IP:PORT [ray start options]     another node; needs the head's token file
#   cluster/local.sh status | stop
#
# Then submit from the repository root: RAY_ADDRESS=http://127.0.0.1:8265 cluster/submit.sh recipes/demo-cpu.yaml
#
# Ray 2.60 heads require a token from every raylet, job client and driver. This script keeps it in one file,
# RAY_AUTH_TOKEN_PATH (default ~/.ray/tao-ray-token); on a real cluster copy that file to every node (or put it on
# the shared filesystem) and export the same two variables (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH) there.
# Several raylets on one machine make a real multi-node cluster: give each its own CPUs, e.g.
#   cluster/local.sh start --num-cpus 2 && cluster/local.sh join "$(hostname -I | cut -d' ' -f1):6379" --num-cpus 2
set -euo pipefail
RAY=${RAY:-.venv/bin/ray}
PYTHON=${PYTHON:-python3}
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/tao-ray-token}
command=${1:-}
shift || true
case "$command" in
  start)
    if [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
      mkdir -p "$(dirname "$RAY_AUTH_TOKEN_PATH")"
      (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_hex(32), end="")' >"$RAY_AUTH_TOKEN_PATH")
      echo "cluster/local.sh: new cluster token in $RAY_AUTH_TOKEN_PATH (copy it to every node that joins)"
    fi
    exec "$RAY" start --head --port "${TAO_RAY_PORT:-6379}" --dashboard-host "${TAO_RAY_DASHBOARD_HOST:-127.0.0.1}" \
      --dashboard-port "${TAO_RAY_DASHBOARD_PORT:-8265}" --disable-usage-stats "$@"
    ;;
  join)
    address=${1:?usage: cluster/local.sh join HEAD_IP:PORT [ray start options]}
    shift
    if [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
      echo "cluster/local.sh: no token at $RAY_AUTH_TOKEN_PATH; copy the head's token file there first" >&2
      exit 2
    fi
    exec "$RAY" start --address "$address" --disable-usage-stats "$@"
    ;;
  status) exec "$RAY" status "$@" ;;
  stop) exec "$RAY" stop "$@" ;;
  *)
    echo "usage: cluster/local.sh start|join HEAD_IP:PORT|status|stop [ray start options]" >&2
    exit 2
    ;;
esac
