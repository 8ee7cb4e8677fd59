#!/usr/bin/env bash
# Installs the Amazon MQ stand-ins from Debian's packages: rabbitmq-server (RabbitMQ) and
# activemq (ActiveMQ Classic, the engine Amazon MQ for ActiveMQ runs). tests/infra/servers.py
# starts both as plain processes on free loopback ports; the packages' own services are kept
# from starting. Quick no-op when both are installed.
set -euo pipefail

installed() { [[ -x /usr/sbin/rabbitmq-server && -f /usr/share/activemq/bin/activemq.jar ]]; }

if installed; then
  echo "test servers (mq): up to date"
  exit 0
fi
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
  echo "rabbitmq-server and activemq are required for the Amazon MQ tests: as root, run" \
       "apt-get install --no-install-recommends rabbitmq-server activemq" >&2
  exit 1
fi
echo "test servers (mq): installing rabbitmq-server and activemq with apt-get"
policy=/usr/sbin/policy-rc.d
created=0
if [[ ! -e $policy ]]; then  # keep the packages from starting their services
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  created=1
fi
trap 'if [[ $created == 1 ]]; then rm -f "$policy"; fi' EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  rabbitmq-server activemq default-jre-headless >/dev/null
installed || { echo "apt-get did not install rabbitmq-server and activemq" >&2; exit 1; }
# the package's scripts may leave Erlang's port mapper listening on every interface; the test
# brokers start their own on loopback
if command -v epmd >/dev/null; then epmd -kill >/dev/null 2>&1 || true; fi
