#!/usr/bin/env bash
# Builds and deploys template.yaml with the AWS SAM CLI: every function is compiled by
# cargo-lambda (`BuildMethod: rust-cargolambda`: `cargo lambda build --release --arm64 --bin
# <Binary>`), then packaged and deployed as one CloudFormation stack.
#
#   infra/deploy.sh --guided      first deploy: sam asks for every parameter and saves the answers
#                                 in samconfig.toml (later runs: `sam deploy` alone)
#   infra/deploy.sh               non-interactive: parameters from the environment (below)
#   infra/deploy.sh --no-execute  the same, but only creates the change set, to review it
#
# Environment of the non-interactive form:
#   STAGE                    prod, staging, dev...                       (default: dev)
#   TESSERA_RESOURCE_PREFIX  prefix of every table, queue, bucket name   (default: tessera-$STAGE)
#   TESSERA_SECRET_NAME      Secrets Manager secret with the keys        (required)
#   TESSERA_CORS_ORIGINS     browser origins, comma-separated            (default: none)
#   TESSERA_TELEGRAM_BOT     enabled | disabled                          (default: disabled)
#   TESSERA_DISCORD_BOT      enabled | disabled                          (default: disabled)
#   DISCORD_APPLICATION_ID, DISCORD_PUBLIC_KEY   with the Discord bot
#   STACK_NAME               (default: tessera-$STAGE)
#   AWS_REGION / AWS_PROFILE the account and region to deploy to        (the SDK's usual chain)
#   SAM_EXTRA_ARGS           more arguments for `sam deploy`, e.g. "--tags team=ml"
#
# Tools: `sam` and `cargo-lambda` are taken from PATH when there, else installed (pinned) by
# infra/tools.sh. Cross-compiling to arm64 needs zig, which the PyPI cargo-lambda brings along.
#
# One function alone, without SAM (after a first stack deploy, which made its role):
#   cargo lambda build --release --arm64 --bin jobs
#   cargo lambda deploy jobs --binary-name jobs \
#     --iam-role arn:aws:iam::<account>:role/<the JobsFunction role> \
#     --env-var TESSERA_RESOURCE_PREFIX=<prefix> --env-var TESSERA_JWT_KEYS=<kid:secret> \
#     --env-var TESSERA_WEBHOOK_KEY=<32+ characters> --timeout 15 --memory 512
# (the variables the function reads, as template.yaml gives them; `--env-file` takes a file).
# `cargo lambda deploy` creates or updates a Lambda function named like the binary (`jobs`, not
# the stack's <stack>-JobsFunction-...; pass the stack's function name as the first argument to
# update that one instead) with the zip of target/lambda/jobs/bootstrap. It sets the code and the
# settings given on its command line only: the HTTP API routes, the SQS and schedule triggers and
# the IAM policies stay the template's business.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# template.yaml's parameter names, in one place: change them here when the template changes.
param_stage="Stage"
param_prefix="ResourcePrefix"
param_secret="SecretName"
param_cors="AllowedOrigins"
param_telegram="TelegramBot"
param_discord="DiscordBot"
param_discord_app="DiscordApplicationId"
param_discord_key="DiscordPublicKey"

mode="deploy"
case "${1:-}" in
  "") ;;
  --guided) mode="guided" ;;
  --no-execute) mode="changeset" ;;
  -h | --help) sed -n '2,40p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--guided | --no-execute]" >&2; exit 2 ;;
esac

# sam runs `cargo lambda build`, so cargo-lambda (and zig, next to it in its venv) must be on PATH.
if ! command -v cargo-lambda > /dev/null; then
  cargo_lambda="$(infra/tools.sh cargo-lambda)"
  PATH="$(dirname "$cargo_lambda"):$PATH"
  export PATH
fi
if command -v sam > /dev/null; then
  sam="sam"
else
  sam="$(infra/tools.sh sam)"
fi

echo "== sam validate --lint" >&2
"$sam" validate --lint --template template.yaml

echo "== sam build (cargo lambda build --release --arm64, one binary per function)" >&2
"$sam" build --template template.yaml

if [[ "$mode" == "guided" ]]; then
  echo "== sam deploy --guided" >&2
  exec "$sam" deploy --guided --capabilities CAPABILITY_IAM
fi

stage="${STAGE:-dev}"
prefix="${TESSERA_RESOURCE_PREFIX:-tessera-$stage}"
secret="${TESSERA_SECRET_NAME:?set TESSERA_SECRET_NAME to the Secrets Manager secret holding the keys (see template.yaml)}"
stack="${STACK_NAME:-tessera-$stage}"

overrides=(
  "$param_stage=$stage"
  "$param_prefix=$prefix"
  "$param_secret=$secret"
  "$param_telegram=${TESSERA_TELEGRAM_BOT:-disabled}"
  "$param_discord=${TESSERA_DISCORD_BOT:-disabled}"
)
# sam takes no empty value in --parameter-overrides: an unset one keeps the template's default.
if [[ -n "${TESSERA_CORS_ORIGINS:-}" ]]; then
  overrides+=("$param_cors=$TESSERA_CORS_ORIGINS")
fi
if [[ -n "${DISCORD_APPLICATION_ID:-}" ]]; then
  overrides+=("$param_discord_app=$DISCORD_APPLICATION_ID")
fi
if [[ -n "${DISCORD_PUBLIC_KEY:-}" ]]; then
  overrides+=("$param_discord_key=$DISCORD_PUBLIC_KEY")
fi

deploy=(
  "$sam" deploy
  --stack-name "$stack"
  --resolve-s3
  --capabilities CAPABILITY_IAM
  --no-fail-on-empty-changeset
  --parameter-overrides "${overrides[@]}"
)
if [[ "$mode" == "changeset" ]]; then
  deploy+=(--no-execute-changeset)
else
  deploy+=(--no-confirm-changeset)
fi
# Word splitting is wanted here: SAM_EXTRA_ARGS holds several arguments.
# shellcheck disable=SC2206
extra=(${SAM_EXTRA_ARGS:-})

echo "== sam deploy: stack $stack, prefix $prefix, stage $stage" >&2
"${deploy[@]}" "${extra[@]}"
