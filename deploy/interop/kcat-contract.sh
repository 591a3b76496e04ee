#!/usr/bin/env bash
# Produces registration events into a running twosell with kcat (librdkafka,
# a third-party client) and checks what twosell wrote, with kcat again, from
# the outside: every event exactly once in the enriched or dead-letter topic,
# keys, headers (origin, traceparent, twosell-status, twosell-error*),
# statuses by the simulator's rule, input bytes kept.
#
# Usage: deploy/interop/kcat-contract.sh BROKERS INPUT OUTPUT DLQ [N]
# twosell must be consuming INPUT, backed by the juhe simulator.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
brokers=$1 input=$2 output=$3 dlq=$4 n=${5:-200}
run_id="kcat$(date +%s%N)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 "$here/contract.py" gen "$run_id" "$n" "$work/events"
traceparent=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import contract; print(contract.TRACEPARENT)' "$here")
kcat -b "$brokers" -P -t "$input" -K '|' -H origin=kcat-interop -H "traceparent=$traceparent" <"$work/events"
echo "kcat-contract: produced $n events (run $run_id) to $input with kcat $(kcat -V 2>&1 | awk '/^Version/ {print $2, $6, $7; exit}')"

consume() {
  kcat -b "$brokers" -C -t "$1" -o beginning -e -q -J -X isolation.level=read_committed >"$2" 2>/dev/null || true
}
for _ in $(seq 1 120); do
  consume "$output" "$work/out.jsonl"
  consume "$dlq" "$work/dlq.jsonl"
  if python3 "$here/contract.py" check "$run_id" "$n" "$input" "$work/out.jsonl" "$work/dlq.jsonl" --partial >/dev/null; then
    break
  fi
  sleep 1
done
python3 "$here/contract.py" check "$run_id" "$n" "$input" "$work/out.jsonl" "$work/dlq.jsonl"
