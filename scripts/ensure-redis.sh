#!/usr/bin/env bash
# Make sure a Redis answers at $BTQ_REDIS_HOST:$BTQ_REDIS_PORT (default 127.0.0.1:6379):
# start a loopback, memory-only redis-server when none does. Installs it from Debian's packages if missing.
set -euo pipefail
host=${BTQ_REDIS_HOST:-127.0.0.1}
port=${BTQ_REDIS_PORT:-6379}

answers() { (exec 3<>"/dev/tcp/$host/$port" && printf 'PING\r\n' >&3 && head -c 5 <&3 | grep -q PONG) 2>/dev/null; }

if [ -n "${BTQ_REDIS_INSTALL_ONLY:-}" ]; then
  # The test suite starts its own server: only make sure the program exists.
  command -v redis-server >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
  echo "redis: redis-server installed"
  exit 0
fi
if answers; then
  echo "redis: answering at $host:$port"
  exit 0
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "redis: not installed, installing redis-server"
  (apt-get update -qq && apt-get install -y -qq redis-server) >/dev/null
fi
redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --logfile "${TMPDIR:-/tmp}/btq-redis-$port.log"
for _ in $(seq 1 50); do
  answers && { echo "redis: started on $host:$port"; exit 0; }
  sleep 0.2
done
echo "redis: could not start a server on $host:$port" >&2
exit 1
