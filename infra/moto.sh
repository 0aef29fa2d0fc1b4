#!/usr/bin/env bash
# Starts moto's AWS emulator (DynamoDB, SQS, S3 on one endpoint) on a free loopback port, through
# infra/moto_server.py, which serves DynamoDB requests one at a time (moto's transactions are not
# isolated otherwise; DynamoDB's are).
#
#   infra/moto.sh            start it in the background; print the endpoint URL on stdout
#   infra/moto.sh stop       stop the one this script started
#
# moto is installed on first use into infra/.moto-venv (ignored by git), which takes ~30 s.
# The server's pid and endpoint are kept in infra/.moto-state so `stop` can find it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.moto-venv"
state="$here/.moto-state"
log="$here/.moto-server.log"
moto_version="5.1.22"

stop() {
  if [[ -f "$state" ]]; then
    read -r pid _ < "$state" || true
    if [[ -n "${pid:-}" ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$state"
  fi
}

install() {
  if [[ ! -x "$venv/bin/moto_server" ]]; then
    echo "installing moto[server]==$moto_version into $venv ..." >&2
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version" >&2
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  install
  stop
  local port endpoint
  port="$(free_port)"
  endpoint="http://127.0.0.1:$port"
  nohup "$venv/bin/python" "$here/moto_server.py" 127.0.0.1 "$port" > "$log" 2>&1 &
  local pid=$!
  echo "$pid $endpoint" > "$state"
  for _ in $(seq 300); do
    if curl -fsS -o /dev/null "$endpoint/moto-api/" 2>/dev/null; then
      echo "$endpoint"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "moto_server exited; its log:" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "moto_server did not answer on $endpoint within 30 s; its log:" >&2
  cat "$log" >&2
  stop
  return 1
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
