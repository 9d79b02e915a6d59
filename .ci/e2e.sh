#!/usr/bin/env bash
# The deploy path, end to end, with no AWS account and no Docker:
#   1. pinned tools (aws-sam-cli, cfn-lint, aws-sam-translator, cargo-lambda in .venv;
#      qemu-user-static and the arm64 C library from Debian, to run arm64 on x86_64);
#   2. `sam build` of both templates (the sweeper reuses the arm64 build .ci/infra.sh did:
#      same target/, same bytes, checked);
#   3. the one deviation from what ships, on an x86_64 host only: each arm64 `bootstrap`
#      is renamed bootstrap.arm64 and a 3-line `bootstrap` runs it under qemu;
#   4. MiniStack (.ci/ministack.sh: pinned, its own venv, 127.0.0.1, its own process
#      group, stopped by PID);
#   5. infra/tests/e2e.py: sam deploy (both stacks with OwnerIndex=enabled: the table's
#      owner index, the app policy's Query on it and the app's environment are checked),
#      the app's cycle, seeds (some owned, listed through the index), direct invokes, the
#      bad event and its alarm, the schedule, sam delete (see its docstring).
# The last line is the result. Run from anywhere: bash .ci/e2e.sh
set -euo pipefail
cd "$(dirname "$0")/.."

source .ci/tools.sh
VENV=$INFRA_VENV

started=$SECONDS
step() { echo; echo "==> [e2e ${1}] ${2}"; }
elapsed() { echo "    (${1}: $((SECONDS - ${2}))s)"; }

state=$(mktemp -d)
cleanup() {
    bash .ci/ministack.sh stop "$state/ministack"
    rm -rf "$state"
}
trap cleanup EXIT

step 0 "tools: $VENV with aws-sam-cli==$SAM_CLI_VERSION and the rest of .ci/tools.sh's pins; qemu-aarch64-static"
t=$SECONDS
install_infra_tools
if ! command -v qemu-aarch64-static >/dev/null || [[ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]]; then
    sudo=""
    [[ $(id -u) == 0 ]] || sudo="sudo"
    $sudo apt-get install -y -qq qemu-user-static libc6-arm64-cross >/dev/null \
        || { $sudo apt-get update -qq && $sudo apt-get install -y -qq qemu-user-static libc6-arm64-cross >/dev/null; }
fi
echo "    $(sam --version), $(cargo lambda --version), $(qemu-aarch64-static --version | head -1)"
elapsed tools "$t"

step 1 "sam build: infra/ (the sweeper, one build for its slice functions) and infra/app/ (the app)"
t=$SECONDS
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1 || true
sessions_build=$state/build-sessions
app_build=$state/build-app
# Each from its own folder, so its samconfig.toml applies as it does for a user.
(cd infra && sam build --build-dir "$sessions_build" >"$state/build-sessions.log" 2>&1) \
    || { cat "$state/build-sessions.log"; exit 1; }
elapsed "sam build infra" "$t"
t2=$SECONDS
(cd infra/app && sam build --build-dir "$app_build" >"$state/build-app.log" 2>&1) \
    || { cat "$state/build-app.log"; exit 1; }
elapsed "sam build infra/app" "$t2"
sweeper_dir=$(dirname "$(ls "$sessions_build"/SweeperFunction*/bootstrap)")
app_dir=$app_build/AppFunction
"$VENV/bin/python" - "$sweeper_dir/bootstrap" "$app_dir/bootstrap" "${CARGO_TARGET_DIR:-target}/lambda/sweeper/bootstrap.zip" <<'PY'
import io, os, sys, zipfile
sweeper, app, ci_zip = sys.argv[1:4]
for name, path in (("sweeper", sweeper), ("session-app", app)):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(path, "bootstrap")
    print(f"    {name}: bootstrap {os.path.getsize(path)} bytes, zipped {len(buf.getvalue())} bytes")
if os.path.exists(ci_zip):
    with zipfile.ZipFile(ci_zip) as z:
        same = z.read("bootstrap") == open(sweeper, "rb").read()
    print(f"    the sweeper's bootstrap is {'byte-identical to' if same else 'DIFFERENT from'} {ci_zip} (.ci/infra.sh)")
    sys.exit(0 if same else 1)
print(f"    ({ci_zip} absent: .ci/infra.sh has not run here; nothing to compare)")
PY
for dir in "$sweeper_dir" "$app_dir"; do
    mv "$dir/bootstrap" "$dir/bootstrap.arm64"
    cat >"$dir/bootstrap" <<'SH'
#!/bin/sh
# e2e on an x86_64 host only: run the arm64 bootstrap, unchanged, under qemu.
exec qemu-aarch64-static -L /usr/aarch64-linux-gnu "$(dirname "$0")/bootstrap.arm64" "$@"
SH
    chmod +x "$dir/bootstrap"
done
echo "    wrapped for qemu: $sweeper_dir, $app_dir"
elapsed build "$t"

step 2 "MiniStack on 127.0.0.1"
t=$SECONDS
endpoint=$(bash .ci/ministack.sh start "$state/ministack")
echo "    $endpoint (pid $(cat "$state/ministack/pid"))"
elapsed ministack "$t"

step 3 "deploy, drive and delete (infra/tests/e2e.py)"
status=0
AWS_ENDPOINT_URL=$endpoint AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
    AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    "$VENV/bin/python" infra/tests/e2e.py --sessions-build "$sessions_build" \
    --app-build "$app_build" --state "$state" | tee "$state/e2e.log" || status=$?
if ((status != 0)); then
    echo "    MiniStack's log ends with:"
    tail -20 "$state/ministack/ministack.log" | sed 's/^/    /'
fi
bash .ci/ministack.sh stop "$state/ministack"
echo
echo "$(tail -1 "$state/e2e.log") [.ci/e2e.sh, build and tools included: $((SECONDS - started))s]"
exit "$status"
