#!/bin/bash
# User-space instructions per fast-path decision (allow rule, live grant), for the daemon and
# for the client library (run_check), counted by callgrind: stable where timings on a shared
# machine are not (docs/PERFORMANCE.md, "What profiling changed").
# usage (as root): bench/callgrind_decisions.sh BUILD_DIR [N]   (BUILD_DIR built with
#   -DJITGATE_BUILD_BENCH=ON and the targets jitgated and decision_loop; N decisions, default 1000)
# The daemon runs under callgrind with the bench's config; its counters are zeroed after a
# warm-up and dumped after N decisions of each kind. The client is counted inside run_check
# only (--toggle-collect). Set KEEP=1 to keep the callgrind files (callgrind_annotate them),
# SYSLOG=1 to count with syslog on (the default outside the bench), sent to a socket read here.
set -euo pipefail
build="$(cd "${1:?usage: $0 BUILD_DIR [N]}" && pwd)"
n="${2:-1000}"
loop="$build/bench/decision_loop"
dir="$(mktemp -d /tmp/jitgate-cg-XXXXXX)"
sock="$dir/jitgated.sock"
mkdir -m 0750 "$dir/spool"
cat >"$dir/jitgate.yaml" <<YAML
host: {name: bench-host}
daemon: {socket: $sock}
approval: {backend: local, approver_groups: [root], allow_root: true}
audit: {spool_dir: $dir/spool, syslog: $([ "${SYSLOG:-0}" = 1 ] && echo true || echo false), syslog_socket: $dir/log}
rules:
  - name: fast
    match: {kind: sudo, commands: [/usr/bin/true]}
    action: allow
  - name: gated
    match: {kind: sudo}
    ttl: 1h
    timeout: 1h
YAML
receiver=""
if [ "${SYSLOG:-0}" = 1 ]; then
  python3 -c 'import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True: s.recv(65536)' "$dir/log" &
  receiver=$!
  for _ in $(seq 50); do [ -S "$dir/log" ] && break; sleep 0.1; done
fi
valgrind --tool=callgrind --callgrind-out-file="$dir/daemon.cg" "$build/daemon/jitgated" --config "$dir/jitgate.yaml" \
  2>"$dir/daemon.log" &
daemon=$!
cleanup() {
  kill "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  if [ -n "$receiver" ]; then
    kill "$receiver" 2>/dev/null || true
    wait "$receiver" 2>/dev/null || true
  fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept: $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
"$loop" "$sock" ping
"$loop" "$sock" approve
"$loop" "$sock" rule 20
"$loop" "$sock" grant 20
total() { awk '/^(summary|totals):/ {print $2; exit}' "$1"; }
for kind in rule grant; do
  callgrind_control -z "$daemon" >/dev/null 2>&1
  "$loop" "$sock" "$kind" "$n"
  callgrind_control -d "$kind" "$daemon" >/dev/null 2>&1
  dump="$(ls -t "$dir"/daemon.cg.* | head -1)"
  mv "$dump" "$dir/daemon.$kind.cg"
  valgrind --tool=callgrind --callgrind-out-file="$dir/client.$kind.cg" --toggle-collect='jitgate::client::run_check*' \
    "$loop" "$sock" "$kind" "$n" 2>/dev/null
  echo "$kind: daemon $(($(total "$dir/daemon.$kind.cg") / n)) instructions per decision," \
    "client (run_check) $(($(total "$dir/client.$kind.cg") / n))"
done
