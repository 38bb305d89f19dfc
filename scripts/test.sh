#!/bin/bash
# The test command: installs what is needed, builds, and runs every test (unit and
# integration; integration tests need root and run in private mount namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
ctest --test-dir "${JITGATE_BUILD:-$PWD/build}" --output-on-failure -j"$(nproc)" "$@"
