#!/bin/bash
# The test command: installs what is needed, builds, and runs every test (unit and
# integration; integration tests need root and run in private mount namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
# The bench is built too (not run), so both compilers see the whole tree.
./scripts/build.sh -DJITGATE_BUILD_BENCH=ON
# The whole tree (tests and bench included) must also build with clang 14, the fuzzers'
# compiler, under the same -Wall -Wextra -Werror: a second build, compile only (its tests are
# not run). -O1 without -g keeps it cheap; JITGATE_SKIP_CLANG=1 skips it.
if [ "${JITGATE_SKIP_CLANG:-0}" != 1 ]; then
    JITGATE_BUILD="${JITGATE_CLANG_BUILD:-$PWD/build-clang}" JITGATE_BUILD_TYPE=Release CXX=clang++ \
        ./scripts/build.sh -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" -DJITGATE_BUILD_BENCH=ON
fi
ctest --test-dir "${JITGATE_BUILD:-$PWD/build}" --output-on-failure -j"$(nproc)" "$@"
