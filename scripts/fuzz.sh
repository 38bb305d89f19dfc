#!/bin/bash
# Builds the libFuzzer targets of tests/fuzz with clang into ./build-fuzz (or $JITGATE_FUZZ_BUILD)
# and runs each one in turn, one at a time, for --seconds N (default 60). The corpus grows in
# build-fuzz/tests/fuzz/corpus/<target> (the committed seeds in tests/fuzz/corpus are only
# read); a crash is saved as build-fuzz/tests/fuzz/artifacts/<target>-crash-<sha1> and makes
# the script fail. --only NAME runs one target. Per-target figures (execs, coverage, corpus)
# are printed at the end, as docs/RELIABILITY.md records them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--seconds N] [--only TARGET]" >&2; exit 2 ;;
  esac
done
build="${JITGATE_FUZZ_BUILD:-$PWD/build-fuzz}"
cmake -S . -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DJITGATE_FUZZ=ON -DJITGATE_BUILD_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" --target fuzzers -j"$(nproc)"

dir="$build/tests/fuzz"
targets=(wire text plugin_options config grant service_status store_answer)
failed=0
summary=""
for t in "${targets[@]}"; do
  [ -n "$only" ] && [ "$t" != "$only" ] && continue
  mkdir -p "$dir/corpus/$t" "$dir/artifacts"
  log="$dir/fuzz_$t.log"
  echo "== fuzz_$t: $seconds s"
  rc=0
  "$dir/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/$t-" "$dir/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  corpus=$(find "$dir/corpus/$t" -type f | wc -l)
  crashes=$(find "$dir/artifacts" -name "$t-*" -type f | wc -l)
  line="fuzz_$t: ${seconds}s, ${execs:-0} execs, ${cov:-cov: ?}, corpus $corpus, artifacts $crashes, exit $rc"
  echo "$line"
  summary+="$line"$'\n'
  if [ "$rc" -ne 0 ]; then
    failed=1
    grep -E 'ERROR|property violated|SUMMARY|Test unit written' "$log" | head -20 || true
  fi
done
echo
echo "$summary"
exit "$failed"
