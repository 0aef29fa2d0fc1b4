#!/usr/bin/env bash
# The whole test suite: formatting, lints, the SAM template's lint, and every test of the
# workspace, the AWS backend's against a real local AWS emulator (moto), which this script starts
# and always stops. cargo-lambda and the SAM CLI are installed (pinned) by infra/tools.sh on first
# use; the Lambda tests run `cargo lambda watch` through TESSERA_CARGO_LAMBDA.
#
#   infra/test.sh                 everything
#   infra/test.sh -p tessera-e2e  extra arguments go to `cargo test`
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

TESSERA_CARGO_LAMBDA="$(infra/tools.sh cargo-lambda)"
export TESSERA_CARGO_LAMBDA
sam="$(infra/tools.sh sam)"

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
echo "== sam validate --lint (template.yaml)"
SAM_CLI_TELEMETRY=0 "$sam" validate --lint --region us-east-1 --template template.yaml
echo "== cargo test"
cargo test --workspace --locked "$@"
echo "== schemathesis over the whole API (infra/api-check.sh)"
infra/api-check.sh
