#!/usr/bin/env bash
# Schemathesis over the whole API: starts the dev server on a fresh store, then runs every
# operation of its OpenAPI document with generated requests, checking that no answer is a server
# error, that every status code is documented, and that every body matches its schema.
#
#   infra/api-check.sh            build the dev server, run both passes, print the counts
#
# One pass per credential: the generation API (and /health) with the demo API key, the account
# families with the demo user's access token, the internal family with a service key; the job
# event stream gets a short pass of its own. The store's catalog is the seed's with the plans' rate limits and daily
# tokens raised, so that the generated requests reach the handlers instead of stopping at 429.
# Any failure fails the script.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

schemathesis="${TESSERA_SCHEMATHESIS:-$(infra/tools.sh schemathesis)}"
examples="${TESSERA_API_CHECK_EXAMPLES:-50}"

echo "== building the dev server (the tessera binary)" >&2
cargo build --locked -p tessera-dev --quiet
server="$root/target/debug/tessera"

work="$(mktemp -d)"
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

python3 - "$root/functions/core/seed/catalog.json" "$work/catalog.json" <<'PY'
import json, sys
catalog = json.load(open(sys.argv[1]))
for plan in catalog["plans"]:
    plan["requests_per_minute"] = 1_000_000
    plan["daily_token_limit"] = 1_000_000
    plan["concurrent_jobs"] = 1_000_000
json.dump(catalog, open(sys.argv[2], "w"))
PY

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
base="http://127.0.0.1:$port"
export TESSERA_ADDR="127.0.0.1:$port" TESSERA_DATA_DIR="$work/data" TESSERA_CATALOG="$work/catalog.json"
export TESSERA_WORKER=off TESSERA_WEBHOOK_KEY="api-check-webhook-key-0123456789abcdef" RUST_LOG=warn

"$server" > "$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fsS "$base/health" > /dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
demo_key="$(sed -n 's/^ *API key: *//p' "$work/server.log" | head -1)"
demo_email="$(sed -n 's/^ *email: *//p' "$work/server.log" | head -1)"
demo_password="$(sed -n 's/^ *password: *//p' "$work/server.log" | head -1)"
[[ -n "$demo_key" ]] || { echo "the server printed no demo API key" >&2; cat "$work/server.log" >&2; exit 1; }
access_token="$(curl -fsS -XPOST "$base/api/auth/login" -H 'content-type: application/json' \
  -d "{\"email\":\"$demo_email\",\"password\":\"$demo_password\"}" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')"
service_key="$("$server" admin create-service-key --name api-check | tail -1)"

run() {
  local name="$1" credential="$2"
  shift 2
  echo "== schemathesis: $name" >&2
  (cd "$work" && "$schemathesis" run "$base/api/openapi.json" \
    --header "Authorization: Bearer $credential" \
    --checks not_a_server_error,status_code_conformance,response_schema_conformance,content_type_conformance \
    --max-examples "$examples" \
    --request-timeout 10 \
    --seed 1 \
    --no-color \
    "$@")
}

failed=0
run "generation API (demo API key)" "$demo_key" --include-path-regex '^/(api/v1/|health)' \
  --exclude-operation-id job_events || failed=1
# A job's event stream stays open until the job is final (no worker runs here), so each case that
# finds a real job waits out the request timeout: fewer cases, a shorter wait.
run "the job event stream (demo API key)" "$demo_key" --include-operation-id job_events \
  --max-examples 10 --request-timeout 3 || failed=1
run "accounts (the demo user's access token)" "$access_token" --include-path-regex '^/api/(auth|api-keys)' || failed=1
run "internal API (service key)" "$service_key" --include-path-regex '^/api/internal/' || failed=1
exit "$failed"
