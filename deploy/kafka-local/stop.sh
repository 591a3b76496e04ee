#!/usr/bin/env bash
# Stops the broker start.sh started and removes its data directory (kept
# with KAFKA_KEEP_DATA=1, for a restart on the same data).
# Usage: deploy/kafka-local/stop.sh      (same KAFKA_LOCAL_DIR as start.sh)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${KAFKA_LOCAL_DIR:-$here/.run}
pidfile="$state/kafka.pid"

if [ ! -f "$pidfile" ]; then
  echo "kafka-local: no broker to stop" >&2
  exit 0
fi
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill "$pid"
  # A controlled shutdown takes a few seconds; do not leave it behind.
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka-local: pid $pid did not stop in 30s; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
  fi
fi
rm -f "$pidfile"
if [ "${KAFKA_KEEP_DATA:-0}" != 1 ]; then
  rm -rf "$state/data"
fi
echo "kafka-local: stopped" >&2
