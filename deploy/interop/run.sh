#!/usr/bin/env bash
# Runs twosell and checks it with kcat (kcat-contract.sh):
#   deploy/interop/run.sh dev                      on "twosell dev" (embedded broker)
#   deploy/interop/run.sh real BROKERS [DELIVERY]  "twosell run" + "twosell sim" on a real broker
# TWOSELLTEST_BIN names a built binary (default: built here from ./cmd/twosell).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

bin=${TWOSELLTEST_BIN:-}
if [ -z "$bin" ]; then
  bin="$work/twosell"
  (cd "$root" && go build -o "$bin" ./cmd/twosell)
fi

wait_port() { # host:port
  for _ in $(seq 1 120); do
    (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null && return 0
    sleep 0.5
  done
  echo "interop: nothing listens on $1" >&2
  return 1
}

# stop PID NAME: SIGTERM, and the process must exit 0 (a graceful stop).
stop() {
  kill -TERM "$1"
  local code=0
  wait "$1" || code=$?
  if [ "$code" != 0 ]; then
    echo "interop: $2 exited $code after SIGTERM; its log:" >&2
    tail -30 "$work/$2.log" >&2
    return 1
  fi
  echo "interop: $2 stopped cleanly"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case ${1:-} in
dev)
  kafka="127.0.0.1:$(free_port)" sim="127.0.0.1:$(free_port)"
  "$bin" dev --kafka-addr "$kafka" --sim-addr "$sim" --generate 0 --log-level info >"$work/dev.log" 2>&1 &
  pids+=($!)
  wait_port "$kafka"
  "$here/kcat-contract.sh" "$kafka" registrations registrations.enriched registrations.dlq 200
  stop "${pids[0]}" dev
  ;;
real)
  brokers=${2:?usage: run.sh real BROKERS [DELIVERY]} delivery=${3:-at-least-once}
  suffix="$(date +%s)-$delivery"
  input="interop-in-$suffix" output="interop-out-$suffix" dlq="interop-dlq-$suffix"
  "$root/deploy/kafka-local/topics.sh" "$brokers" create "$input" 3
  sim="127.0.0.1:$(free_port)"
  TWOSELL_JUHE_KEY=interop-key "$bin" sim --addr "$sim" --latency 1ms >"$work/sim.log" 2>&1 &
  pids+=($!)
  wait_port "$sim"
  TWOSELL_JUHE_KEY=interop-key "$bin" run --brokers "$brokers" --group "interop-$suffix" \
    --input-topic "$input" --output-topic "$output" --dlq-topic "$dlq" \
    --juhe-url "http://$sim" --delivery "$delivery" --log-format json >"$work/run.log" 2>&1 &
  pids+=($!)
  "$here/kcat-contract.sh" "$brokers" "$input" "$output" "$dlq" 200
  stop "${pids[1]}" run
  ;;
*)
  echo "usage: $0 dev | real BROKERS [at-least-once|exactly-once]" >&2
  exit 2
  ;;
esac
