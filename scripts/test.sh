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

# --- Sanitizers and fuzzers (docs/RELIABILITY.md) ------------------------------------------
# 1. Unit and integration tests again, with jitgated, jitgatectl, the unit tests and the test
#    peers built with AddressSanitizer + UBSan in ./build-asan (the plugins stay as sudo and
#    libpam load them: uninstrumented). The packaging test is not repeated there.
# 2. Each fuzz target of tests/fuzz (clang, ./build-fuzz): its corpus, then 5 s of fuzzing.
# JITGATE_SKIP_SANITIZE=1 / JITGATE_SKIP_FUZZ=1 skip a part.
if [ -z "${JITGATE_SKIP_SANITIZE:-}" ]; then
  JITGATE_BUILD="$PWD/build-asan" ./scripts/build.sh -DJITGATE_SANITIZE=ON
  ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
    ctest --test-dir "$PWD/build-asan" --output-on-failure -j"$(nproc)" -LE packaging "$@"
fi
if [ -z "${JITGATE_SKIP_FUZZ:-}" ]; then
  cmake -S . -B "$PWD/build-fuzz" -DCMAKE_CXX_COMPILER=clang++ -DJITGATE_FUZZ=ON -DJITGATE_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$PWD/build-fuzz" --target fuzzers -j"$(nproc)"
  ctest --test-dir "$PWD/build-fuzz" --output-on-failure -L fuzz
fi
