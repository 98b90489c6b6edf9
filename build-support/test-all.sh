#!/usr/bin/env bash
# The README's test command. On a fresh machine it installs what the tests need (the Debian
# packages of build-support/system-packages.txt, the Pants bootstrap), then checks BUILD files,
# lints (ruff), type-checks (mypy) and runs every test with Pants (slow ones included; the image
# test packages the PEXes the project images copy). Tests start and stop their own servers
# (PostgreSQL, MLflow, Prometheus, ...) on 127.0.0.1.
# It ends with the test time of each project, the figures tests recorded, the time of each step,
# and one line "tests: N passed, N failed, N skipped" read from the JUnit reports; it fails when a
# test failed or none ran. Extra arguments go to pytest (e.g. -- -m "not slow").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

steps=()
step() {  # step NAME COMMAND...: run it and remember how long it took
  local name="$1" started=$SECONDS
  shift
  "$@"
  steps+=("$name $((SECONDS - started))s")
}

step "system-packages" bash build-support/install-system-packages.sh

pants_opts=(--no-pantsd)
[[ -n "${CI:-}" ]] && export PANTS_CONFIG_FILES=pants.ci.toml

step "pants-bootstrap" ./pants "${pants_opts[@]}" --version
step "build-files+lint" ./pants "${pants_opts[@]}" tailor --check update-build-files --check lint ::
step "type-check" ./pants "${pants_opts[@]}" check ::

rm -rf dist/test/reports
test_status=0
test_started=$SECONDS
./pants "${pants_opts[@]}" test --report :: "$@" || test_status=$?
steps+=("test $((SECONDS - test_started))s")

status=$test_status
python3 build-support/junit_summary.py dist/test/reports || status=1
if ((test_status != 0)); then
  # A test file that timed out or crashed leaves no JUnit report, so the counts above miss it.
  echo "test-all: ./pants test exited with $test_status (see its ✕ lines above)" >&2
fi
echo "steps: ${steps[*]} (total ${SECONDS}s)"
exit "$status"
