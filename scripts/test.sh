#!/bin/bash
# The test command: installs what is needed, builds, and runs every test (unit and
# integration; integration tests need root and run in private mount namespaces).
#
# Three build trees, each with its own purpose (docs/RELIABILITY.md):
#   ./build       g++ 12, what the packages ship; the bench is built too (not run)
#   ./build-asan  clang 14 with AddressSanitizer + UBSan for jitgated, jitgatectl, the unit
#                 tests and the test peers (the plugins stay as sudo and libpam load them:
#                 uninstrumented). It is also the clang build of the product, the tests and
#                 jitgate-server under -Werror: a warning either compiler raises fails the
#                 command. The bench is left out here (g++ builds it in ./build) to keep the
#                 run near its 20 minutes once jitgate-server joined both trees.
#   ./build-fuzz  clang 14, the libFuzzer targets of tests/fuzz only
# The suite runs under the sanitizers first (the packaging test is not repeated there), while
# ./build-fuzz is built at nice 19 in the idle time the suite leaves; then each fuzz target
# briefly (its seeds, then 5 s; two at once), then in ./build last, so that ctest's closing
# line counts the whole suite. Before any build, scripts/check-format.sh checks the sources
# against .clang-format. JITGATE_SKIP_FORMAT=1 / JITGATE_SKIP_SANITIZE=1 / JITGATE_SKIP_FUZZ=1
# skip a part.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
if [ "${JITGATE_SKIP_FORMAT:-0}" != 1 ]; then
    ./scripts/check-format.sh
fi
build="${JITGATE_BUILD:-$PWD/build}"
# The two clang trees: -O1 with line tables only (stack traces keep file:line) compiles in
# about two thirds of the time of -O2 -g.
quick_flags="-O1 -gline-tables-only -DNDEBUG"
# The g++ tree is optimised as shipped (-O2) but without debug info, which the tests do not need
# and which is a fifth of its compile time; ./build-asan keeps file:line for stack traces.
./scripts/build.sh -DJITGATE_BUILD_BENCH=ON -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG"

if [ "${JITGATE_SKIP_SANITIZE:-0}" != 1 ]; then
    JITGATE_BUILD="$PWD/build-asan" CXX=clang++ ./scripts/build.sh -DJITGATE_SANITIZE=ON -DJITGATE_BUILD_BENCH=OFF \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$quick_flags"
fi
# The fuzz tree is built while the sanitizer suite runs, at the lowest priority: the suite
# leaves much of the two cores idle (its cases mostly wait on sudo, sshd and the daemons), and
# the build takes only that idle time, not the suite's. Its log is shown if it fails.
fuzz_build() {
    cmake -S . -B "$PWD/build-fuzz" -DCMAKE_CXX_COMPILER=clang++ -DJITGATE_FUZZ=ON -DJITGATE_BUILD_TESTS=OFF \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$quick_flags" >/dev/null
    cmake --build "$PWD/build-fuzz" --target fuzzers -j"$(nproc)"
}
fuzz_pid=""
if [ "${JITGATE_SKIP_FUZZ:-0}" != 1 ]; then
    if [ "${JITGATE_SKIP_SANITIZE:-0}" != 1 ]; then
        fuzz_log="$(mktemp /tmp/jitgate-fuzz-build.XXXXXX)"
        echo "== building ./build-fuzz in the background (nice 19) while the sanitizer suite runs"
        export -f fuzz_build
        export quick_flags
        # A session of its own, so that an early exit stops the whole build (its process group).
        setsid nice -n 19 bash -c fuzz_build >"$fuzz_log" 2>&1 </dev/null &
        fuzz_pid=$!
        trap 'kill -- "-$fuzz_pid" 2>/dev/null || true' EXIT
    else
        fuzz_build
    fi
fi

if [ "${JITGATE_SKIP_SANITIZE:-0}" != 1 ]; then
    ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}" \
        UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
        ctest --test-dir "$PWD/build-asan" --output-on-failure -j"$(nproc)" -LE packaging "$@"
fi
if [ "${JITGATE_SKIP_FUZZ:-0}" != 1 ]; then
    if [ -n "$fuzz_pid" ]; then
        if ! wait "$fuzz_pid"; then
            cat "$fuzz_log" >&2
            echo "test.sh: building ./build-fuzz failed" >&2
            exit 1
        fi
        trap - EXIT
        rm -f "$fuzz_log"
    fi
    # Each target fuzzes for a fixed wall time on one core: two at once, one per core.
    ctest --test-dir "$PWD/build-fuzz" --output-on-failure -j"$(nproc)" -L fuzz
fi
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" "$@"
