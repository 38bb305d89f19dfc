#!/bin/bash
# The test command: installs what is needed, builds, and runs every test (unit and
# integration; integration tests need root and run in private mount namespaces).
#
# Three build trees, each with its own purpose (docs/RELIABILITY.md):
#   ./build       g++ 12, what the packages ship: the product, the test peers and the bench
#                 (built, not run). Its suite is the integration cases (the real sudo,
#                 pamtester, sshd, jitgate-server, PostgreSQL, Chromium) and the packaging test,
#                 i.e. every test of the binaries that ship. The unit tests are not built here:
#                 they are two thirds of a tree's compile time and run in ./build-asan.
#   ./build-asan  clang 14 with AddressSanitizer + UBSan for jitgated, jitgatectl,
#                 jitgate-server, the unit tests and the test peers (the plugins stay as sudo
#                 and libpam load them: uninstrumented). It is also the clang build of the
#                 product, the tests and jitgate-server under -Werror: a warning either
#                 compiler raises fails the command. Its suite is every test but packaging,
#                 and it runs last: ctest's closing line counts the unit and integration tests.
#   ./build-fuzz  clang 14, the libFuzzer targets of tests/fuzz only
# Order: the packages the builds need, then the others in the background while building;
# the format check; both builds; the g++ suite while ./build's bench programs and ./build-fuzz
# are built at nice 19 in the idle time it leaves (its cases mostly wait on sudo, sshd and the daemons); each fuzz target
# briefly (its seeds, then 5 s; two at once); the sanitizer suite last.
# JITGATE_SKIP_FORMAT=1 / JITGATE_SKIP_SANITIZE=1 / JITGATE_SKIP_FUZZ=1 skip a part; without
# the sanitizer tree, ./build builds and runs the unit tests itself (last).
set -euo pipefail
cd "$(dirname "$0")/.."
# Where the time goes, for CI's budget: each stage's start, in seconds since this began.
stage() { echo "== [${SECONDS}s] $*"; }
stage "installing the build packages"
./scripts/install-deps.sh --build
deps_log="$(mktemp /tmp/jitgate-test-deps.XXXXXX)"
# A session of its own, so that an early exit stops it (its process group); apt-get and dpkg
# get nice 10: the builds come first. The packaging test's tools too (it would install them
# itself, while no other test may run).
setsid nice -n 10 bash -c './scripts/install-deps.sh --test && ./scripts/install-packaging-deps.sh' \
    >"$deps_log" 2>&1 </dev/null &
deps_pid=$!
fuzz_pid=""
cleanup() {
    [ -z "$deps_pid" ] || kill -- "-$deps_pid" 2>/dev/null || true
    [ -z "$fuzz_pid" ] || kill -- "-$fuzz_pid" 2>/dev/null || true
}
trap cleanup EXIT
if [ "${JITGATE_SKIP_FORMAT:-0}" != 1 ]; then
    ./scripts/check-format.sh
fi
build="${JITGATE_BUILD:-$PWD/build}"
sanitize=1
[ "${JITGATE_SKIP_SANITIZE:-0}" = 1 ] && sanitize=0
unit_in_build=OFF
[ "$sanitize" = 1 ] || unit_in_build=ON
# The fuzz tree: -O1 with line tables only (stack traces keep file:line; a fuzzer wants speed).
quick_flags="-O1 -gline-tables-only -DNDEBUG"
# The sanitizer tree: -O0. Optimising ASan-instrumented code is most of its compile time (a
# GoogleTest file: 8.5 CPU-s at -O0, 35 at -O1), its tests mostly wait on sudo, sshd and the
# daemons, and -O0 keeps every check the optimiser could have removed.
asan_flags="-O0 -gline-tables-only -DNDEBUG"
# The g++ tree is optimised as shipped (-O2) but without debug info, which the tests do not need
# and which is a fifth of its compile time; ./build-asan keeps file:line for stack traces.
stage "building ./build (g++)"
./scripts/build.sh -DJITGATE_BUILD_BENCH=ON -DJITGATE_BUILD_UNIT_TESTS="$unit_in_build" \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG"
if [ "${JITGATE_SKIP_FUZZ:-0}" = 1 ]; then
    cmake --build "$build" --target bench -j"$(nproc)" # else built beside the fuzz tree, below
fi
if [ "$sanitize" = 1 ]; then
    stage "building ./build-asan (clang, sanitizers)"
    # lld for the executables: ~70 ASan-instrumented programs are linked here, each ~0.9 CPU-s with
    # ld.bfd and ~0.2 with lld (docs/RELIABILITY.md). The shipped ./build keeps the system linker.
    JITGATE_BUILD="$PWD/build-asan" CXX=clang++ ./scripts/build.sh -DJITGATE_SANITIZE=ON -DJITGATE_BUILD_BENCH=OFF \
        -DJITGATE_BUILD_UNIT_TESTS=ON -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$asan_flags" -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld
fi
if ! wait "$deps_pid"; then
    cat "$deps_log" >&2
    echo "test.sh: installing the test packages failed" >&2
    exit 1
fi
deps_pid=""
rm -f "$deps_log"

# The fuzz tree, built while the g++ suite runs, at the lowest priority: the suite leaves much
# of the two cores idle, and the build takes only that idle time, not the suite's. Its log is
# shown if it fails.
fuzz_build() {
    # The bench programs of ./build first (they must keep compiling warning-free; nothing runs them).
    cmake --build "$build" --target bench -j"$(nproc)"
    cmake -S . -B "$PWD/build-fuzz" -DCMAKE_CXX_COMPILER=clang++ -DJITGATE_FUZZ=ON -DJITGATE_BUILD_TESTS=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$quick_flags" \
        -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld >/dev/null
    cmake --build "$PWD/build-fuzz" --target fuzzers -j"$(nproc)"
}
if [ "${JITGATE_SKIP_FUZZ:-0}" != 1 ]; then
    fuzz_log="$(mktemp /tmp/jitgate-fuzz-build.XXXXXX)"
    echo "== building ./build-fuzz in the background (nice 19) while the g++ suite runs"
    export -f fuzz_build
    export quick_flags build
    setsid nice -n 19 bash -c fuzz_build >"$fuzz_log" 2>&1 </dev/null &
    fuzz_pid=$!
fi

# The suites run more tests at once than there are cores: their cases mostly wait on sudo, sshd,
# the daemons and the databases (the g++ suite used 0.6 of 2 cores at -j2). The g++ suite runs
# twice as many as cores; the sanitizer suite, whose daemons take more CPU and whose timed cases
# then have less room, one more than cores (docs/RELIABILITY.md, "The suites four at once").
# The fuzz ctests are CPU-bound and stay one per core.
suite_jobs=$(($(nproc) * 2))
asan_jobs=$(($(nproc) + 1))
asan_suite() {
    ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}" \
        UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
        ctest --test-dir "$PWD/build-asan" --output-on-failure -j"$asan_jobs" -LE packaging "$@"
}
if [ "$sanitize" = 1 ]; then
    stage "the g++ suite"
    ctest --test-dir "$build" --output-on-failure -j"$suite_jobs" "$@"
fi
if [ -n "$fuzz_pid" ]; then
    if ! wait "$fuzz_pid"; then
        cat "$fuzz_log" >&2
        echo "test.sh: building ./build-fuzz failed" >&2
        exit 1
    fi
    fuzz_pid=""
    rm -f "$fuzz_log"
    # Each target fuzzes for a fixed wall time on one core: two at once, one per core.
    stage "fuzzing"
    ctest --test-dir "$PWD/build-fuzz" --output-on-failure -j"$(nproc)" -L fuzz
fi
stage "the last suite"
if [ "$sanitize" = 1 ]; then
    asan_suite "$@"
else
    ctest --test-dir "$build" --output-on-failure -j"$suite_jobs" "$@"
fi
