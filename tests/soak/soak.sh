#!/bin/bash
# tests/soak/soak.sh — the audit pipeline under abuse, with the real sudo, jitgated and the test
# audit store (tests/support) in a private mount namespace (tests/support/ns.sh). Not a ctest:
# it runs for minutes. Root only. docs/RELIABILITY.md records its figures.
#
#   tests/soak/soak.sh [--quick] [--rounds N] [--burst N] [--outage SECONDS]
#
# Phase 1, kill -9: ROUNDS times (100), BURST (8) workers run `sudo echo` back to back, and
# jitgated is killed with SIGKILL 50-300 ms into the burst, then restarted. Afterwards: every run that
# ran (exit 0, its output printed) has its access.allowed_by_rule event in the store, seqs
# 1..N are in the store exactly once (no gap, no duplicate), and the store's copy and the
# local spool verify with `jitgatectl audit verify`.
# Phase 2, store outage: sudo runs go on from two workers while the store is stopped for
# OUTAGE seconds (300) and then restarted on the same port; afterwards every event is in the
# store exactly once and the chain verifies. 0 lost, 0 duplicated.
# --quick: 5 rounds and a 20 s outage. JITGATE_BUILD names the build (default ./build; an
# AddressSanitizer build such as ./build-asan works too).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export JITGATE_BUILD="${JITGATE_BUILD:-$here/../../build}"
if [ -z "${JITGATE_SOAK_IN_NS:-}" ]; then
  [ "$(id -u)" = 0 ] || { echo "soak.sh runs as root (inside a private mount namespace)" >&2; exit 2; }
  exec env JITGATE_SOAK_IN_NS=1 unshare -m --propagation private bash "$0" "$@"
fi

rounds=100 burst=8 outage=300
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) rounds=5 outage=20; shift ;;
    --rounds) rounds="$2"; shift 2 ;;
    --burst) burst="$2"; shift 2 ;;
    --outage) outage="$2"; shift 2 ;;
    *) echo "usage: $0 [--quick] [--rounds N] [--burst N] [--outage SECONDS]" >&2; exit 2 ;;
  esac
done

source "$here/../support/ns.sh"
STORE_BIN="$JITGATE_BUILD/tests/support/jitgate-test-audit-store"

start_store() {
  mkdir -p "$T/pki"
  [ -e "$T/pki/ca.pem" ] || bash "$here/../support/make_pki.sh" "$T/pki" >/dev/null
  ns_start_peer store "$STORE_BIN" --listen 127.0.0.1 --port "${1:-0}" --cert "$T/pki/server.pem" \
    --key "$T/pki/server.key" --client-ca "$T/pki/ca.pem" --data "$T/store.data" --log "$T/store.log"
  STORE_PID="$PEER_PID" STORE_PORT="$PEER_PORT" STORE_ADMIN="$PEER_ADMIN"
}
stop_store() { kill "$STORE_PID" 2>/dev/null || true; wait "$STORE_PID" 2>/dev/null || true; }
store_stat() { curl -sS --max-time 5 "$STORE_ADMIN/admin/stats" | grep -oE "\"$1\":[0-9]+" | cut -d: -f2; }
store_seqs() { grep -oE '"seq":[0-9]+' "$T/store.data" 2>/dev/null | cut -d: -f2 || true; }
durable_seq() { "$JITGATECTL" --socket "$SOCK" status --json | grep -oE '"durable_seq":[0-9]+' | head -1 | cut -d: -f2; }

# all_shipped: waits (up to 120 s) for the store to hold seqs 1..durable, then checks that each
# is there exactly once and that the store's copy is a valid chain.
all_shipped() {
  local want i
  for i in $(seq 1 1200); do
    want="$(durable_seq)"
    [ -n "$want" ] && [ "$(store_seqs | sort -nu | wc -l)" -ge "$want" ] && break
    sleep 0.1
  done
  expect_eq "$(store_seqs | sort -n | uniq -d | head -1)" "" "an event stored twice"
  [ "$(store_seqs | sort -n | tr '\n' ' ')" = "$(seq 1 "$want" | tr '\n' ' ')" ] ||
    ns_die "the store does not hold seqs 1..$want exactly once (missing: $(comm -13 <(store_seqs | sort -u) <(seq 1 "$want" | sort) | head -5 | tr '\n' ' '))"
  awk '{ match($0, /"seq":[0-9]+/); print substr($0, RSTART + 6, RLENGTH - 6) "\t" $0 }' "$T/store.data" |
    sort -n -k1,1 | cut -f2- >"$T/store-sorted.jsonl"
  "$JITGATECTL" audit verify "$T/store-sorted.jsonl" >"$T/verify.out" 2>&1 ||
    { cat "$T/verify.out" >&2; ns_die "the store's chain does not verify"; }
  "$JITGATECTL" audit verify "$SPOOL" >"$T/verify-spool.out" 2>&1 ||
    { cat "$T/verify-spool.out" >&2; ns_die "the local spool does not verify"; }
  SHIPPED="$want"
}

ns_setup
NS_SHOW_ON_FAIL="$T/daemon.log $T/store.log $T/store.out"
start_store
NS_AUDIT_EXTRA="  segment_size: 4KiB
  store:
    url: https://127.0.0.1:$STORE_PORT/v1/events
    ca_file: $T/pki/ca.pem
    client_cert: $T/pki/client.pem
    client_key: $T/pki/client.key
    connect_timeout: 2s
    timeout: 3s
    batch_events: 50
    retry_min: 1s
    retry_max: 2s"
ns_config <<'YAML'
rules:
  - name: soak-echo
    match: {kind: sudo, commands: ["/usr/bin/echo *"]}
    action: allow
YAML
ns_start_daemon
began=$SECONDS

# --- Phase 1: kill -9 during bursts ---
: >"$T/results"
burst_worker() { # ROUND WORKER: sudo runs, one after another, until $T/stop-ROUND exists
  local n=0 rc out
  as_user_argv alice
  while [ ! -e "$T/stop-$1" ]; do
    n=$((n + 1)); rc=0
    out="$("${AS_USER[@]}" sudo /usr/bin/echo "soak $1.$2.$n" 2>/dev/null)" || rc=$?
    [ "$out" = "soak $1.$2.$n" ] || [ "$rc" != 0 ] || rc=99
    echo "$1.$2.$n $rc" >>"$T/results"
  done
}
for r in $(seq 1 "$rounds"); do
  pids=()
  for i in $(seq 1 "$burst"); do burst_worker "$r" "$i" & pids+=($!); done
  sleep "0.$(printf '%03d' $((50 + RANDOM % 250)))"
  kill -KILL "$DAEMON_PID" 2>/dev/null || true
  touch "$T/stop-$r"
  for p in "${pids[@]}"; do wait "$p" || true; done
  wait "$DAEMON_PID" 2>/dev/null || true
  ns_start_daemon
done
ran=$(awk '$2 == 0' "$T/results" | wc -l)
refused=$(awk '$2 != 0' "$T/results" | wc -l)
[ "$ran" -ge 1 ] || ns_die "no sudo run got through before a kill; phase 1 proves nothing"
all_shipped
missing=0
while read -r id rc; do
  [ "$rc" = 0 ] || continue
  grep -F "\"argv\":[\"/usr/bin/echo\",\"soak $id\"]" "$T/store.data" | has -F '"type":"access.allowed_by_rule"' ||
    { echo "run 'soak $id' ran but has no access.allowed_by_rule event" >&2; missing=$((missing + 1)); }
done <"$T/results"
finished=$(grep -F '"type":"command.finished"' "$T/store.data" | grep -cF '"soak ' || true)
torn=$(find "$SPOOL" -name "*.torn-*" | wc -l)
[ "$missing" = 0 ] || ns_die "$missing run(s) ran without their event"
# A command that ends while jitgated is dead cannot report command.finished; the plugin then
# writes the outcome to syslog (authpriv) instead. Between the two, no outcome may be missing.
fallback=$(grep -c 'could not report command.finished' "$SYSLOG" || true)
[ $((finished + fallback)) -ge "$ran" ] ||
  ns_die "only $finished command.finished events and $fallback syslog fallbacks for $ran runs"
phase1="kill -9: $rounds rounds x $burst sudo runs in $((SECONDS - began)) s: $ran ran, $refused refused (daemon killed), 0 ran without their event; command.finished for $finished of $ran, $fallback outcomes in syslog instead (jitgated was dead when the command ended); $SHIPPED events, seqs 1..$SHIPPED once each, chain verifies; torn tails quarantined: $torn"
echo "$phase1"

# --- Phase 2: store outage under load ---
began=$SECONDS
: >"$T/load"
load() { # WORKER: sudo runs until $T/stop exists
  local n=0 rc
  while [ ! -e "$T/stop" ]; do
    n=$((n + 1)); rc=0
    as_user alice sudo /usr/bin/echo "outage $1.$n" >/dev/null 2>&1 || rc=$?
    echo "$1.$n $rc" >>"$T/load"
  done
}
load a & load_a=$!
load b & load_b=$!
sleep 5
port="$STORE_PORT"
stop_store
sleep "$outage"
during="$(( $(durable_seq) - $(store_seqs | sort -nu | wc -l) ))"
start_store "$port"
sleep 10
touch "$T/stop"
wait "$load_a" "$load_b"
all_shipped
runs=$(wc -l <"$T/load")
failed=$(awk '$2 != 0' "$T/load" | wc -l)
[ "$failed" = 0 ] || ns_die "$failed sudo run(s) failed during the store outage (decisions must not wait for the store)"
lost=0
while read -r id rc; do
  grep -qF "\"argv\":[\"/usr/bin/echo\",\"outage $id\"]" "$T/store.data" || lost=$((lost + 1))
done <"$T/load"
[ "$lost" = 0 ] || ns_die "$lost run(s) of the outage phase have no event in the store"
resent="$(store_stat duplicates)" # since the store restarted
phase2="store outage: ${outage} s down under load, $runs sudo runs (all allowed), $during events waited in the spool; after the restart $SHIPPED events in the store, 0 lost, 0 stored twice ($resent resent and dropped by event_id), chain verifies; phase took $((SECONDS - began)) s"
echo "$phase2"
echo "SOAK PASSED"
