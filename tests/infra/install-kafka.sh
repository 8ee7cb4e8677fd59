#!/usr/bin/env bash
# Fetches Apache Kafka's broker jars (tests/infra/kafka/pom.xml) into tests/infra/kafka/lib with
# Maven. Quick no-op when they are already there.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/kafka"

stamp=lib/.esm-poller-installed
if [[ -f $stamp && $stamp -nt pom.xml ]]; then
  echo "test servers (kafka): up to date"
  exit 0
fi

if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "test servers (kafka): installing Java and Maven with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      default-jdk-headless maven >/dev/null
  fi
fi
command -v java >/dev/null || { echo "java (17+) is required for the Kafka test broker" >&2; exit 1; }
command -v mvn >/dev/null || { echo "mvn (Maven) is required to fetch the Kafka test broker" >&2; exit 1; }

echo "test servers (kafka): fetching the Apache Kafka broker jars with Maven"
rm -rf lib
mvn --batch-mode --quiet dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=lib
ls lib/kafka_2.13-*.jar >/dev/null 2>&1 || { echo "Maven did not produce the kafka_2.13 jar" >&2; exit 1; }
touch "$stamp"
