#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test of the workspace, the AWS backend's
# against a real local AWS emulator (moto), which this script starts and always stops.
#
#   infra/test.sh                 everything
#   infra/test.sh -p tessera-e2e  extra arguments go to `cargo test`
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

endpoint="$(infra/moto.sh start)"
trap 'infra/moto.sh stop' EXIT
echo "AWS emulator (moto) at $endpoint"

export AWS_ENDPOINT_URL="$endpoint"
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked "$@"
