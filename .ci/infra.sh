#!/usr/bin/env bash
# Offline validation of infra/ (no AWS credentials, no network but PyPI), for both
# templates: infra/template.yaml (the sessions stack) and infra/app/template.yaml (the
# example app's stack):
#   1. cfn-lint, and `sam validate --lint`;
#   2. the transforms to plain CloudFormation (AWS::LanguageExtensions with the SAM CLI's
#      own implementation, then aws-sam-translator), with the defaults and again with
#      OwnerIndex=enabled, then cfn-lint on the results;
#   2b. the backlog alarm, read from the transformed template, evaluated with CloudWatch's
#      rules against simulated sweeper runs on schedules from a minute to a day
#      (infra/tests/alarm_eval.py);
#   2c. the owner index in every variant: the table's index, attribute definitions and
#      capacity, the output and the app's environment (infra/tests/owner_index.py);
#   3. the IAM check on the transformed templates, both OwnerIndex variants of each
#      (infra/scripts/check_iam.py);
#   4. the same checks on infra/tests/broken-template.yaml, the app-stack IAM check on
#      infra/tests/broken-app-template.yaml, both IAM checks on
#      infra/tests/broken-empty-template.yaml, and the IAM check on
#      infra/tests/broken-owner-index-template.yaml, each of which must FAIL for every
#      reason the fixture was broken for (together, every rejecting branch of check_iam.py);
#   5. the sweeper's arm64 Lambda artifact built with cargo-lambda: bootstrap.zip <= 4 MiB.
# Run from the repository root: bash .ci/infra.sh
set -euo pipefail

cd "$(dirname "$0")/.."

# Pinned tools (PyPI): .ci/tools.sh.
source .ci/tools.sh
MAX_ZIP_BYTES=4194304 # 4 MiB

VENV=$INFRA_VENV
OUT=target/infra
mkdir -p "$OUT"

started=$SECONDS
step() { echo; echo "==> [infra ${1}] ${2}"; }
elapsed() { echo "    (${1}: $((SECONDS - ${2}))s)"; }

# Runs a check that must fail, and requires each expected text in its output, so the
# check is seen to reject the fixture for the intended reason (not, say, a typo).
expect_failure() {
    local name=$1
    shift
    local expected=()
    while [[ $1 != -- ]]; do expected+=("$1"); shift; done
    shift
    local log="$OUT/broken-${name}.log"
    if "$@" >"$log" 2>&1; then
        echo "FAIL: $name accepted the broken fixture; its output:" >&2
        cat "$log" >&2
        exit 1
    fi
    for text in "${expected[@]}"; do
        if ! grep -qF -- "$text" "$log"; then
            echo "FAIL: $name rejected the broken fixture, but not with: $text" >&2
            cat "$log" >&2
            exit 1
        fi
    done
    echo "    ok: $name rejects it ($(grep -cF -- "${expected[0]}" "$log") x \"${expected[0]}\" ...)"
}

step 0 "tools: venv $VENV with aws-sam-cli==$SAM_CLI_VERSION cfn-lint==$CFN_LINT_VERSION aws-sam-translator==$SAM_TRANSLATOR_VERSION cargo-lambda==$CARGO_LAMBDA_VERSION"
t=$SECONDS
install_infra_tools
PY="$VENV/bin/python"
echo "    $("$PY" --version), $(cfn-lint --version), aws-sam-translator $("$PY" -c 'import samtranslator; print(samtranslator.__version__)')"
echo "    $(cargo lambda --version), zig $("$PY" -m ziglang version), $(cargo --version)"
elapsed tools "$t"

step 1 "cfn-lint and sam validate --lint: infra/template.yaml, infra/app/template.yaml"
t=$SECONDS
cfn-lint infra/template.yaml infra/app/template.yaml
(cd infra && sam validate --lint)
(cd infra/app && sam validate --lint)
echo "    ok: no errors or warnings"
elapsed cfn-lint "$t"

step 2 "transforms (AWS::LanguageExtensions, then SAM; offline) -> $OUT/*.json, defaults and OwnerIndex=enabled, then cfn-lint on them"
t=$SECONDS
"$PY" infra/scripts/transform.py infra/template.yaml "$OUT/template.json"
"$PY" infra/scripts/transform.py infra/app/template.yaml "$OUT/app-template.json"
# The owner index's variant (OwnerIndex defaults to disabled).
"$PY" infra/scripts/transform.py --parameter OwnerIndex=enabled infra/template.yaml "$OUT/template-owner-index.json"
"$PY" infra/scripts/transform.py --parameter OwnerIndex=enabled infra/app/template.yaml "$OUT/app-template-owner-index.json"
# Ignored on the generated templates only (the authored ones are linted with every rule):
# W1020, an Fn::Sub with no variable left, which is what Fn::ForEach leaves of
# `!Sub "Slice${Slice}"`, as CloudFormation's own transform does.
cfn-lint --ignore-checks W1020 -- "$OUT/template.json" "$OUT/app-template.json" \
    "$OUT/template-owner-index.json" "$OUT/app-template-owner-index.json"
echo "    ok: the transformed templates lint clean"
elapsed transform "$t"

step 2b "backlog alarm: CloudWatch's evaluation rules over simulated runs, rate(1 minute) to rate(1 day)"
t=$SECONDS
"$PY" infra/tests/alarm_eval.py "$OUT/template.json"
elapsed alarm-eval "$t"

step 2c "owner index: every variant of OwnerIndex, BillingMode and ExistingTableName"
t=$SECONDS
# cfn-lint cannot see these when the names are parameters (its E3039 compares literal
# names), nor MiniStack, which creates the table anyway; DynamoDB refuses them at deploy.
"$PY" infra/tests/owner_index.py "$OUT/template.json" "$OUT/app-template.json"
elapsed owner-index "$t"

step 3 "IAM: no wildcard action/resource; every slice's sweeper and the app policy limited to the sessions table, the app policy to its own keys and (OwnerIndex=enabled only) Query on the owner index"
t=$SECONDS
# Each run checks both OwnerIndex variants (the parameter's AllowedValues), whatever its
# default; the -owner-index files are those transformed with it enabled.
"$PY" infra/scripts/check_iam.py "$OUT/template.json"
"$PY" infra/scripts/check_iam.py --app-stack "$OUT/app-template.json"
"$PY" infra/scripts/check_iam.py "$OUT/template-owner-index.json" | tail -1
"$PY" infra/scripts/check_iam.py --app-stack "$OUT/app-template-owner-index.json" | tail -1
elapsed iam "$t"

step 4 "the broken fixtures infra/tests/broken-*.yaml must be rejected by every check"
t=$SECONDS
expect_failure cfn-lint "'ScheduleV3' is not one of ['ScheduleV2']" -- \
    cfn-lint infra/tests/broken-template.yaml
expect_failure sam-transform "Event Type is: ScheduleV3" -- \
    "$PY" infra/scripts/transform.py infra/tests/broken-template.yaml "$OUT/broken.json"
expect_failure check-iam \
    "wildcard in Action 'dynamodb:*'" \
    "wildcard in Resource '*'" \
    "table/*" \
    "NotAction grants everything except a list" \
    "NotResource grants everything except a list" \
    "SweeperInvokePermission: wildcard in Action 'lambda:*'" \
    "dynamodb:GetItem on the table is not restricted to the checkpoint item" \
    "sweeper statement has a condition other than the checkpoint LeadingKeys one" \
    "which is neither the sessions table nor its own log group" \
    "sweeper is granted dynamodb:* on table (any key), beyond its contract" \
    "sweeper lacks dynamodb:PartiQLDelete on table (any key)" \
    "sweeper lacks dynamodb:DescribeTable on table (any key)" \
    "SweeperFunction1: Role must be a role of this template" \
    "AWSLambdaBasicExecutionRole" \
    "app policy reaches '*', which is not the sessions table" \
    "app policy allows under the condition null, expected exactly ForAllValues:StringLike dynamodb:LeadingKeys <KeyPrefix>*" \
    "AppTablePolicy: grants ['dynamodb:DeleteItem', 'dynamodb:Describe*', 'dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Scan', 'dynamodb:UpdateItem'], expected exactly" \
    "wildcard in Action 'dynamodb:Describe*'" \
    "app policy's startup-check statement has the condition" \
    "AppTablePolicy: allows [] for the startup check, expected exactly ['dynamodb:DescribeTable', 'dynamodb:DescribeTimeToLive']" \
    "AppTablePolicy: denies [] on the reserved keys" \
    "accepts 'app', an invalid key prefix" -- \
    "$PY" infra/scripts/check_iam.py infra/tests/broken-template.yaml
expect_failure check-iam-app-stack \
    "does not attach the sessions stack's app policy" \
    "AWSLambdaBasicExecutionRole\", which is not a managed policy of this template" \
    "SomethingElseArn" \
    "beyond its own log streams" \
    "wildcard in Resource" \
    "other-stack-TableArn\"} (cannot verify it is wildcard-free)" \
    "refuses 'app#', a valid key prefix" -- \
    "$PY" infra/scripts/check_iam.py --app-stack infra/tests/broken-app-template.yaml
expect_failure check-iam-empty \
    "no Lambda function matches" \
    "AppTablePolicy: no such AWS::IAM::ManagedPolicy" -- \
    "$PY" infra/scripts/check_iam.py infra/tests/broken-empty-template.yaml
expect_failure check-iam-app-stack-empty \
    "no Lambda role in the app stack" -- \
    "$PY" infra/scripts/check_iam.py --app-stack infra/tests/broken-empty-template.yaml
expect_failure check-iam-owner-index \
    "[OwnerIndex=enabled] Resources.AppTablePolicy: has 2 statement(s) allowing dynamodb:Query, 0 of them as expected" \
    "[OwnerIndex=disabled] Resources.AppTablePolicy: allows dynamodb:Query" \
    "dynamodb:Query shares a statement with ['dynamodb:GetItem']" \
    "the owner index's dynamodb:Query has the condition" \
    "app policy allows dynamodb:Query on '{arn:SessionsTable}', the sessions table itself" \
    "wildcard in Resource '{arn:SessionsTable}/index/{param:OwnerIndexName:*}'" \
    "/index/{param:OwnerIndexName:*}', not the owner index" \
    "dynamodb:Query names no resource it can be checked on" \
    "Statement[4].Fn::If[!OwnerIndexEnabled]: wildcard in Action 'dynamodb:*'" \
    "a statement under Fn::If 'CreateTable', a condition this check cannot decide" \
    "malformed Fn::If" \
    "statement \"dynamodb:Query\" is not an object" -- \
    "$PY" infra/scripts/check_iam.py infra/tests/broken-owner-index-template.yaml
expect_failure check-iam-owner-index-values \
    "Parameters.OwnerIndex: AllowedValues ['enabled', 'disabled'] lack 'on'" -- \
    "$PY" infra/scripts/check_iam.py --owner-index-enabled-value on infra/tests/broken-owner-index-template.yaml
elapsed broken-fixture "$t"

step 5 "arm64 Lambda artifact: cargo lambda build --release --arm64 -p sweeper-lambda --bin sweeper --output-format zip"
if [[ ${INFRA_SKIP_LAMBDA_BUILD:-} == 1 ]]; then
    # For quick local runs of the template checks only; CI never sets it.
    echo "    SKIPPED (INFRA_SKIP_LAMBDA_BUILD=1)"
    echo
    echo "infra: template checks passed in $((SECONDS - started))s; Lambda build skipped"
    exit 0
fi
t=$SECONDS
rustup target add aarch64-unknown-linux-gnu
cargo lambda build --release --locked --arm64 -p sweeper-lambda --bin sweeper --output-format zip
zip="${CARGO_TARGET_DIR:-target}/lambda/sweeper/bootstrap.zip"
bytes=$(stat -c %s "$zip")
"$PY" - "$zip" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for i in z.infolist():
        print(f"    {i.filename}: {i.file_size} bytes unpacked, {i.compress_size} packed")
EOF
echo "    $zip: $bytes bytes ($((bytes / 1024)) KiB); limit $MAX_ZIP_BYTES bytes"
if ((bytes > MAX_ZIP_BYTES)); then
    echo "FAIL: bootstrap.zip is $bytes bytes, over the $MAX_ZIP_BYTES-byte target" >&2
    exit 1
fi
elapsed lambda-build "$t"

echo
echo "infra: all checks passed in $((SECONDS - started))s"
