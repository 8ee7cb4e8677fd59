#!/usr/bin/env bash
# Installs DynamoDB Local (dynamodb/install.sh, Maven) and the npm-packaged test servers
# (kinesalite, kinesis-local) into tests/infra/node_modules from the committed package-lock.json. Quick no-op when they are already installed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

dynamodb/install.sh

stamp=node_modules/.esm-poller-installed
if [[ -f $stamp && $stamp -nt package.json && $stamp -nt package-lock.json ]]; then
  echo "test servers (npm): up to date"
  exit 0
fi

command -v node >/dev/null || { echo "node is required for the Kinesis test servers" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is required for the Kinesis test servers" >&2; exit 1; }

echo "test servers (npm): installing kinesalite and kinesis-local (node $(node --version))"
# Install scripts are not needed: leveldown (kinesalite) ships prebuilt binaries.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
for f in node_modules/kinesalite/cli.js node_modules/kinesis-local/main.js; do
  [[ -f $f ]] || { echo "npm install did not produce $f" >&2; exit 1; }
done
touch "$stamp"
