#!/usr/bin/env bash
# The README's test command. On a fresh machine it installs what the tests need (Debian packages,
# the Pants bootstrap), then checks BUILD files, lints, packages every binary and runs every test
# with Pants (slow tests included). Tests start and stop their own servers (PostgreSQL, MLflow,
# ...) on 127.0.0.1.
# It ends with one line "tests: N passed, N failed" read from the JUnit reports, and fails when
# a test failed or none ran.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages the tests use (build-support/system-packages.txt): all of them.
bash build-support/install-system-packages.sh

pants_opts=(--no-pantsd)
[[ -n "${CI:-}" ]] && export PANTS_CONFIG_FILES=pants.ci.toml

./pants "${pants_opts[@]}" --version >/dev/null
./pants "${pants_opts[@]}" tailor --check lint ::
./pants "${pants_opts[@]}" package ::

rm -rf dist/test/reports
status=0
./pants "${pants_opts[@]}" test --report "$@" :: || status=$?

python3 build-support/junit_summary.py dist/test/reports || status=1
exit "$status"
