#!/bin/bash
# The benchmark: builds jitgate in Release and prints one table (docs/PERFORMANCE.md).
# Needs root (the daemon answers only root peers; the sudo comparison uses a mount
# namespace). Usage: bench/run.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
quick="${1:-}"
./scripts/install-deps.sh
if ! dpkg-query -W -f='${Status}' libbenchmark-dev 2>/dev/null | grep -q "install ok installed"; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libbenchmark-dev </dev/null
fi
build="${JITGATE_BENCH_BUILD:-$PWD/build-bench}"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DJITGATE_BUILD_BENCH=ON -DJITGATE_BUILD_TESTS=ON >/dev/null
# Only what the bench runs: the daemon, jitgatectl, the sudo plugin and the test syslog
# receiver (section 3), the test approval service (section 6, service backend), the bench.
cmake --build "$build" -j"$(nproc)" --target jitgated jitgatectl sudo_jitgate jitgate-test-syslogd \
  jitgate-test-approval-service jitgate_bench fsync_floor fsync_count tcp_nodelay >/dev/null
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r), $(df -T /tmp | awk 'NR==2 {print $2}') on /tmp"
echo "== floor: durable audit append (write + fdatasync of one spool line) on this disk"
"$build/bench/fsync_floor" /tmp
echo "== 1, 2, 4, 5, 6 (local and service backend), D (durable events, group commit): jitgate_bench"
"$build/bench/jitgate_bench" "$build/daemon/jitgated" $quick --fsync-count="$build/bench/fsync_count.so" \
  --approval-service="$build/tests/support/jitgate-test-approval-service" --make-pki="$PWD/tests/support/make_pki.sh" \
  --tcp-nodelay="$build/bench/tcp_nodelay.so" 2>&1 \
  | sed 's/\x1b\[[0-9;]*m//g'
echo "== 3: real sudo -n true, plain sudoers vs sudoers + jitgate (live grant), alternating"
JITGATE_BUILD="$build" unshare -m --propagation private bash bench/sudo_compare.sh $quick
