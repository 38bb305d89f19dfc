#!/bin/bash
# Configures and builds jitgate into ./build (or $JITGATE_BUILD). Extra args go to cmake.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${JITGATE_BUILD:-$PWD/build}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="${JITGATE_BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
