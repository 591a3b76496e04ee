#!/usr/bin/env bash
# Starts a real Apache Kafka broker for tests: one combined broker+controller
# (KRaft) on 127.0.0.1, from jars that Maven fetches from Maven Central into
# its local repository (~/.m2: cached between runs), with a fresh data
# directory every start. Prints KAFKA_BROKERS=127.0.0.1:PORT when the broker
# answers. Stop it with stop.sh.
#
# Usage: deploy/kafka-local/start.sh [PORT]     (default 9092, or $KAFKA_PORT)
# Environment: KAFKA_LOCAL_DIR (state: data, log, pid; default deploy/kafka-local/.run),
#              KAFKA_HEAP (default 512m), KAFKA_CONTROLLER_PORT (default PORT+1),
#              KAFKA_KEEP_DATA=1 (restart on the existing data: for the broker-restart
#              fault test; pair it with stop.sh under the same variable).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
port=${1:-${KAFKA_PORT:-9092}}
controller_port=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
state=${KAFKA_LOCAL_DIR:-$here/.run}
heap=${KAFKA_HEAP:-512m}
started=$(date +%s)

say() { printf 'kafka-local: %s\n' "$*" >&2; }

if [ -f "$state/kafka.pid" ] && kill -0 "$(cat "$state/kafka.pid")" 2>/dev/null; then
  say "a broker is already running (pid $(cat "$state/kafka.pid")); run stop.sh first"
  exit 1
fi
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  say "port $port is already in use"
  exit 1
fi

mkdir -p "$state"
say "resolving the broker's jars with Maven (cached in ~/.m2 after the first run)"
mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$state/classpath.txt" >&2
classpath=$(cat "$state/classpath.txt")
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")

keep=${KAFKA_KEEP_DATA:-0}
if [ "$keep" = 1 ] && [ -f "$state/data/meta.properties" ]; then
  say "restarting on the existing data in $state/data"
else
  keep=0
  # A fresh data directory every start: tests must never see yesterday's topics.
  rm -rf "$state/data" "$state/kafka.log"
  mkdir -p "$state/data"
fi
cat > "$state/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$state/data
# One node: the internal topics cannot have more replicas than that.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
# Tests create their topics; a typo must not create one silently.
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.partitions=3
# No time-based retention. Tests (and replays) write events with historical
# timestamps: with Kafka's 7 days, the retention check deletes them the
# moment it runs, mid-test (it emptied a replay's range in CI).
log.retention.ms=-1
PROPS

java_opts=(-Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$here/log4j2.xml")
if [ "$keep" = 0 ]; then
  cluster_id=$(java -cp "$classpath" kafka.tools.StorageTool random-uuid)
  java "${java_opts[@]}" -cp "$classpath" kafka.tools.StorageTool format --standalone \
    -t "$cluster_id" -c "$state/server.properties" >"$state/format.log" 2>&1 \
    || { cat "$state/format.log" >&2; exit 1; }
fi

nohup java "${java_opts[@]}" -cp "$classpath" kafka.Kafka "$state/server.properties" \
  >>"$state/kafka.log" 2>&1 &
echo $! >"$state/kafka.pid"
say "started Apache Kafka $kafka_version (pid $(cat "$state/kafka.pid")), waiting for 127.0.0.1:$port"

for _ in $(seq 1 240); do
  if ! kill -0 "$(cat "$state/kafka.pid")" 2>/dev/null; then
    say "the broker exited; its log:"
    tail -50 "$state/kafka.log" >&2
    exit 1
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    say "ready in $(( $(date +%s) - started ))s"
    echo "KAFKA_BROKERS=127.0.0.1:$port"
    exit 0
  fi
  sleep 0.5
done
say "the broker did not open port $port in 120s; its log:"
tail -50 "$state/kafka.log" >&2
exit 1
