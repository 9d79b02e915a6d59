# Sourced by .ci/infra.sh, .ci/e2e.sh and .ci/ministack.sh: every pinned Python tool, and
# the one pip command that installs the infra ones into .venv.
#
# cargo-lambda's wheel brings zig (the ziglang package) for the cross build; no Docker.
# MiniStack pins botocore, so it lives in .venv-ministack, installed in one pip command
# with aws-sam-translator (see .ci/ministack.sh).
SAM_CLI_VERSION=1.170.0
CFN_LINT_VERSION=1.58.0
SAM_TRANSLATOR_VERSION=1.115.0
CARGO_LAMBDA_VERSION=1.9.2
MINISTACK_VERSION=1.5.33

INFRA_VENV=.venv

# Installs (or keeps) the pinned infra tools in $INFRA_VENV, and puts them on PATH.
install_infra_tools() {
    [[ -x $INFRA_VENV/bin/python ]] || python3 -m venv "$INFRA_VENV"
    "$INFRA_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "aws-sam-cli==$SAM_CLI_VERSION" \
        "cfn-lint==$CFN_LINT_VERSION" \
        "aws-sam-translator==$SAM_TRANSLATOR_VERSION" \
        "cargo-lambda==$CARGO_LAMBDA_VERSION"
    export PATH="$PWD/$INFRA_VENV/bin:$PATH" SAM_CLI_TELEMETRY=0
}
