#!/usr/bin/env bash
# Start or stop a single-node Ray head on this machine, for trying `ray job submit` locally.
#   cluster/local-head.sh start [NUM_CPUS]   then: RAY_ADDRESS=http://127.0.0.1:8265 cluster/submit.sh recipes/demo-cpu.yaml
#   cluster/local-head.sh stop
set -euo pipefail
RAY=${RAY:-.venv/bin/ray}
case "${1:-}" in
  start) "$RAY" start --head --num-cpus "${2:-4}" --dashboard-host 127.0.0.1 ;;
  stop)  "$RAY" stop ;;
  *) echo "usage: $0 start [NUM_CPUS] | stop" >&2; exit 2 ;;
esac
