#!/usr/bin/env bash
# Runs Kafka's own topic tool (what kafka-topics.sh runs) against the local
# broker, with the jars start.sh resolved.
# Usage: deploy/kafka-local/topics.sh BOOTSTRAP create TOPIC [PARTITIONS]
#        deploy/kafka-local/topics.sh BOOTSTRAP describe [TOPIC]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${KAFKA_LOCAL_DIR:-$here/.run}
if [ $# -lt 2 ]; then
  echo "usage: $0 BOOTSTRAP create TOPIC [PARTITIONS] | describe [TOPIC]" >&2
  exit 2
fi
bootstrap=$1 action=$2
shift 2
if [ ! -f "$state/classpath.txt" ]; then
  mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$state/classpath.txt" >&2
fi
run() {
  java -Dlog4j2.configurationFile="$here/log4j2-tools.xml" -cp "$(cat "$state/classpath.txt")" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" "$@"
}
case $action in
  create) run --create --if-not-exists --topic "$1" --partitions "${2:-3}" --replication-factor 1 ;;
  describe) run --describe ${1:+--topic "$1"} ;;
  *) echo "unknown action $action" >&2; exit 2 ;;
esac
