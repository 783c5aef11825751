#!/usr/bin/env bash
# A Ray cluster with token authentication: start a head, join more raylets (on this machine or on others), stop.
#
#   cluster/local.sh start [ray start options]                 the head; creates the cluster's token if missing
#   cluster/local.sh join HEAD_IP:PORT [ray start options]     another node; needs the head's token file
#   cluster/local.sh status [ray status options]
#   cluster/local.sh stop                                      this cluster's processes on this machine (see below)
#   cluster/local.sh stop --all [ray stop options]             `ray stop`: every Ray on this machine
#
# Then submit from the repository root: RAY_ADDRESS=http://127.0.0.1:8265 cluster/submit.sh recipes/demo-cpu.yaml
#
# Ray 2.60 heads require a token from every raylet, job client and driver. This script keeps it in one file,
# RAY_AUTH_TOKEN_PATH (default ~/.ray/tao-ray-token); on a real cluster copy that file to every node (or put it on
# the shared filesystem) and export the same two variables (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN_PATH) there.
# Several raylets on one machine make a real multi-node cluster: give each its own CPUs, e.g.
#   cluster/local.sh start --num-cpus 2 && cluster/local.sh join "$(hostname -I | cut -d' ' -f1):6379" --num-cpus 2
#
# Stopping one cluster among several. `ray stop` has no way to name a cluster: it ends every Ray process of the
# machine, other people's clusters and test clusters included. So `start` writes a state file next to the token,
# "$RAY_AUTH_TOKEN_PATH.cluster", with the head's GCS port and, when the cluster has its own temporary directory
# (`--temp-dir DIR` among the options, or TAO_RAY_TEMP_DIR), that directory. Every process of the cluster names
# its session directory under that temporary directory (or, for the Ray client server, the GCS port) on its command
# line: the head's and the joined raylets' (they share the head's session directory), with their workers, actors and engines as descendants.
# `stop` ends exactly those on this machine (SIGTERM, then SIGKILL after TAO_RAY_STOP_GRACE_S, default 10 s) and
# leaves every other Ray alone. Without a temporary directory of its own (Ray's shared default /tmp/ray) the
# cluster cannot be told apart, and `stop` falls back to `ray stop`, as does `stop --all`. Run `stop` on every
# machine that joined (the same token path, so the same state file, e.g. on shared storage).
set -euo pipefail
RAY=${RAY:-.venv/bin/ray}
PYTHON=${PYTHON:-python3}
export RAY_AUTH_MODE=token
export RAY_AUTH_TOKEN_PATH=${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/tao-ray-token}
state_file="$RAY_AUTH_TOKEN_PATH.cluster"
command=${1:-}
shift || true

state() {  # the value of KEY in the state file, empty when absent
  [ -f "$state_file" ] || return 0
  sed -n "s/^$1=//p" "$state_file" | tail -n 1
}

cluster_pids() {  # TEMP_DIR GCS_PORT: this cluster's processes on this machine and all their descendants
  # The directory and port travel through the environment: on awk's own command line they would match awk.
  ps -e -o pid=,ppid=,args= | TAO_DIR="$1/session_" TAO_PORT="$2" awk -v self="$$" '
    { kids[$2] = kids[$2] " " $1
      if ($1 == self) next
      if (index($0, ENVIRON["TAO_DIR"]) > 0 || (ENVIRON["TAO_PORT"] != "" && \
          $0 ~ ("address=[^ ]*:" ENVIRON["TAO_PORT"] "( |$)"))) queue[++n] = $1 }
    END {
      for (i = 1; i <= n; i++) {
        pid = queue[i]
        if (pid in seen) continue
        seen[pid] = 1
        printf "%s\n", pid
        m = split(kids[pid], c, " ")
        for (j = 1; j <= m; j++) queue[++n] = c[j]
      }
    }'
}

stop_cluster() {  # TEMP_DIR GCS_PORT
  local pids alive pid i round
  # Rounds: a process started while the first ones were stopping (a worker a raylet was just spawning) is found by
  # the next look.
  for round in 1 2 3; do
    pids=$(cluster_pids "$1" "$2" | tr '\n' ' ')
    if [ -z "${pids// /}" ]; then
      [ "$round" = 1 ] && echo "cluster/local.sh: no process of the cluster in $1 on this machine"
      return 0
    fi
    echo "cluster/local.sh: stopping the cluster in $1 (processes $pids)"
    # shellcheck disable=SC2086  # one word per pid
    kill -TERM $pids 2>/dev/null || true
    alive=$pids
    for ((i = 0; i < ${TAO_RAY_STOP_GRACE_S:-10} * 5; i++)); do
      alive=""
      for pid in $pids; do
        if kill -0 "$pid" 2>/dev/null; then alive="$alive $pid"; fi
      done
      [ -z "$alive" ] && break
      sleep 0.2
    done
    # shellcheck disable=SC2086
    [ -n "$alive" ] && { kill -KILL $alive 2>/dev/null || true; }
    sleep 1
  done
  return 0
}

case "$command" in
  start)
    if [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
      mkdir -p "$(dirname "$RAY_AUTH_TOKEN_PATH")"
      (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_hex(32), end="")' >"$RAY_AUTH_TOKEN_PATH")
      echo "cluster/local.sh: new cluster token in $RAY_AUTH_TOKEN_PATH (copy it to every node that joins)"
    fi
    temp_dir=""
    previous=""
    for arg in "$@"; do
      case "$arg" in
        --temp-dir=*) temp_dir=${arg#--temp-dir=} ;;
        *) [ "$previous" = --temp-dir ] && temp_dir=$arg ;;
      esac
      previous=$arg
    done
    if [ -z "$temp_dir" ] && [ -n "${TAO_RAY_TEMP_DIR:-}" ]; then
      temp_dir=$TAO_RAY_TEMP_DIR
      set -- "$@" --temp-dir "$temp_dir"
    fi
    port=${TAO_RAY_PORT:-6379}
    { echo "gcs_port=$port"; [ -n "$temp_dir" ] && echo "temp_dir=$(realpath -m "$temp_dir")"; } >"$state_file"
    exec "$RAY" start --head --port "$port" --dashboard-host "${TAO_RAY_DASHBOARD_HOST:-127.0.0.1}" \
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
  status)
    # An explicit address: without one, `ray status` takes RAY_ADDRESS (often the dashboard's http:// address,
    # which it cannot use) or the newest cluster of the machine, which need not be this one.
    port=$(state gcs_port)
    case " $* " in
      *" --address"*) exec "$RAY" status "$@" ;;
    esac
    exec "$RAY" status --address "127.0.0.1:${port:-${TAO_RAY_PORT:-6379}}" "$@"
    ;;
  stop)
    temp_dir=$(state temp_dir)
    # Ray's default temporary directory is every default cluster's: it tells this one from none of them.
    [ "$temp_dir" = /tmp/ray ] && temp_dir=""
    if [ "${1:-}" = --all ] || [ -z "$temp_dir" ]; then
      [ "${1:-}" = --all ] && shift
      rm -f "$state_file"
      exec "$RAY" stop "$@"
    fi
    stop_cluster "$temp_dir" "$(state gcs_port)"
    # The state file stays while raylets on other machines may still read it; `start` rewrites it.
    ;;
  *)
    echo "usage: cluster/local.sh start|join HEAD_IP:PORT|status|stop [--all] [ray options]" >&2
    exit 2
    ;;
esac
