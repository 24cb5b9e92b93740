# The aws CLI, AWS's own client, to check the fake ECS with
# (adapters/aws/tests/ecs_aws_cli.rs): it builds and signs the requests from the
# service model and parses the fake's answers and error bodies with botocore.
# The machine's own `aws` if it runs, else awscli in a virtual environment in the
# cache (pinned; reused while the version stays). Exports VSYNC_TEST_AWS_CLI.
AWSCLI_VERSION=1.45.11

ci_start_aws_cli() {
  local aws=""
  if command -v aws >/dev/null && aws --version >/dev/null 2>&1; then
    aws=$(command -v aws)
    # A pyenv shim re-resolves the interpreter on every call; the test makes a
    # dozen calls, so use what it points at.
    if command -v pyenv >/dev/null && pyenv which aws >/dev/null 2>&1; then
      aws=$(pyenv which aws)
    fi
  else
    local venv="${CI_CACHE_DIR:-$CI_STATE_DIR}/awscli-venv"
    if [ ! -x "$venv/bin/aws" ] || ! "$venv/bin/pip" show awscli 2>/dev/null | grep -q "^Version: $AWSCLI_VERSION\$"; then
      python3 -m venv "$venv"
      "$venv/bin/pip" install -q "awscli==$AWSCLI_VERSION"
    fi
    aws="$venv/bin/aws"
  fi
  "$aws" --version >/dev/null 2>&1
  export VSYNC_TEST_AWS_CLI="$aws"
}
