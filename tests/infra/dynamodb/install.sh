#!/usr/bin/env bash
# Installs DynamoDB Local (AWS's own, with Streams) from Maven Central into tests/infra/dynamodb/lib
# with its sqlite4java native library, and builds the loopback bind shim. Quick no-op when done.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

stamp=lib/.esm-poller-installed
if [[ -f $stamp && $stamp -nt pom.xml && $stamp -nt loopback_bind.c ]]; then
  echo "test servers (maven): up to date"
  exit 0
fi
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "test servers (maven): installing java and maven with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      default-jre-headless maven >/dev/null
  else
    echo "java and mvn are required for DynamoDB Local (apt-get install default-jre-headless maven)" >&2
    exit 1
  fi
fi
echo "test servers (maven): fetching DynamoDB Local"
mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib -DincludeScope=runtime
cc=$(command -v gcc || command -v cc) || { echo "a C compiler is required (loopback shim)" >&2; exit 1; }
"$cc" -shared -fPIC -O2 -o lib/loopback_bind.so loopback_bind.c -ldl
for f in lib/DynamoDBLocal-*.jar lib/libsqlite4java-linux-amd64-*.so lib/loopback_bind.so; do
  compgen -G "$f" >/dev/null || { echo "DynamoDB Local install did not produce $f" >&2; exit 1; }
done
touch "$stamp"
