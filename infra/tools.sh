#!/usr/bin/env bash
# Installs a pinned, Python-distributed tool on first use and prints the path of its executable:
#
#   infra/tools.sh cargo-lambda    cargo-lambda (PyPI `cargo-lambda`, with zig for cross builds);
#                                  call it as `"$(infra/tools.sh cargo-lambda)" lambda watch ...`,
#                                  or put its folder on PATH and run `cargo lambda ...`
#   infra/tools.sh sam             the AWS SAM CLI (PyPI `aws-sam-cli`)
#   infra/tools.sh schemathesis    Schemathesis, the OpenAPI fuzzer (PyPI `schemathesis`)
#
# Each tool gets a virtual environment of its own, infra/.tool-<name>-venv (ignored by git), so
# their dependencies never clash; installing one takes from a few seconds to a minute. A venv
# whose pin changed is rebuilt. Messages go to stderr; stdout is only the path, so
# `export TESSERA_CARGO_LAMBDA=$(infra/tools.sh cargo-lambda)` works.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

cargo_lambda_version="1.9.2"
sam_version="1.170.0"
schemathesis_version="4.32.5"

usage() {
  echo "usage: $0 cargo-lambda|sam|schemathesis" >&2
  exit 2
}

# install <tool> <pip requirement> <executable>: prints the executable's path.
install() {
  local tool="$1" requirement="$2" executable="$3"
  local venv="$here/.tool-$tool-venv"
  local stamp="$venv/.tessera-pin"
  if [[ ! -x "$venv/bin/$executable" || "$(cat "$stamp" 2>/dev/null || true)" != "$requirement" ]]; then
    echo "installing $requirement into $venv ..." >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement" >&2
    if [[ ! -x "$venv/bin/$executable" ]]; then
      echo "$requirement installed no $executable in $venv/bin" >&2
      exit 1
    fi
    echo "$requirement" > "$stamp"
  fi
  echo "$venv/bin/$executable"
}

case "${1:-}" in
  cargo-lambda) install cargo-lambda "cargo-lambda==$cargo_lambda_version" cargo-lambda ;;
  sam) install sam "aws-sam-cli==$sam_version" sam ;;
  schemathesis) install schemathesis "schemathesis==$schemathesis_version" schemathesis ;;
  *) usage ;;
esac
