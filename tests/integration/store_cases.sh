#!/bin/bash
# Integration tests of the audit pipeline's far end: the durable spool shipped over HTTPS to
# the real test audit store of tests/support (persists what it accepts, deduplicates by
# event_id, can be told to fail, hang or answer 500), with the real sudo and jitgated in a
# private mount namespace. ctest runs: unshare -m bash store_cases.sh CASE
source "$(dirname "$0")/../support/ns.sh"

STORE_BIN="$JITGATE_BUILD/tests/support/jitgate-test-audit-store"
MAKE_PKI="$(dirname "$0")/../support/make_pki.sh"

RULES='rules:
  - name: read-only
    match: {kind: sudo, commands: ["/usr/bin/true", "/usr/bin/echo *"]}
    action: allow
  - name: default-approval
    match: {kind: sudo}
    timeout: 30s'

# start_store [PORT]: the audit store on 127.0.0.1 (PORT, or an ephemeral one); sets STORE_PORT
# and STORE_ADMIN. Its data file survives restarts of the store.
start_store() {
    NS_SHOW_ON_FAIL="$T/daemon.log $T/store.log $T/store.out $T/err $T/syslog.txt"
    mkdir -p "$T/pki"
    [ -e "$T/pki/ca.pem" ] || bash "$MAKE_PKI" "$T/pki"
    ns_start_peer store "$STORE_BIN" --listen 127.0.0.1 --port "${1:-0}" --cert "$T/pki/server.pem" \
        --key "$T/pki/server.key" --client-ca "$T/pki/ca.pem" ${STORE_TOKEN:+--token "$STORE_TOKEN"} \
        --data "$T/store.data" --log "$T/store.log"
    STORE_PID="$PEER_PID" STORE_PORT="$PEER_PORT" STORE_ADMIN="$PEER_ADMIN"
}

stop_store() { kill "$STORE_PID" 2>/dev/null || true; wait "$STORE_PID" 2>/dev/null || true; }

# configure [EXTRA-STORE-YAML] [EXTRA-AUDIT-YAML]: the store section pointing at the test store.
configure() {
    NS_AUDIT_EXTRA="  segment_size: 4KiB
${2:-}  store:
    url: ${STORE_URL:-https://127.0.0.1:$STORE_PORT/v1/events}
    ca_file: $T/pki/ca.pem
    client_cert: $T/pki/client.pem
    client_key: $T/pki/client.key
    connect_timeout: 2s
    timeout: 3s
    batch_events: 20
    retry_min: 1s
    retry_max: 2s
${1:-}"
    printf '%s\n' "$RULES" | ns_config
}

start() { ns_setup; start_store; configure "$@"; ns_start_daemon; }

store_admin() { curl -sS --max-time 5 -X "$1" "$STORE_ADMIN$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }
store_stat() { store_admin GET /admin/stats | grep -oE "\"$1\":[0-9]+" | cut -d: -f2; }
last_seq() { journal | tail -n 1 | grep -oE '"seq":[0-9]+' | cut -d: -f2; }

# store_seqs: the seqs the store holds, one per line, in arrival order.
store_seqs() { grep -oE '"seq":[0-9]+' "$T/store.data" 2>/dev/null | cut -d: -f2 || true; }

# wait_shipped [SEQ]: waits until the store holds every event up to SEQ (default: the daemon's
# last), i.e. seqs 1..SEQ each exactly once.
wait_shipped() {
    local want="${1:-}" i
    for i in $(seq 1 200); do
        [ -n "$want" ] || want="$("$JITGATECTL" --socket "$SOCK" status --json | grep -oE '"durable_seq":[0-9]+' | head -1 | cut -d: -f2)"
        if [ -n "$want" ] && [ "$(store_seqs | sort -nu | wc -l)" -ge "$want" ]; then break; fi
        want="${1:-}"
        sleep 0.1
    done
    want="${want:-$(last_seq)}"
    expect_eq "$(store_seqs | sort -n | uniq -d | head -1)" "" "an event stored twice"
    expect_eq "$(store_seqs | sort -n | tr '\n' ' ')" "$(seq 1 "$want" | tr '\n' ' ')" "seqs in the store"
}

# The store's copy, in seq order, is itself a valid hash chain from genesis.
store_chain_verifies() {
    local f="$T/store-sorted.jsonl"
    awk '{ match($0, /"seq":[0-9]+/); print substr($0, RSTART + 6, RLENGTH - 6) "\t" $0 }' "$T/store.data" |
        sort -n -k1,1 | cut -f2- >"$f"
    "$JITGATECTL" audit verify "$f" >"$T/verify.out" 2>&1 || { cat "$T/verify.out" >&2; ns_die "the store's chain does not verify"; }
}

case_normal_shipping() {
    start
    local i
    for i in 1 2 3 4 5; do as_user alice sudo /usr/bin/echo "run $i" >/dev/null; done
    wait_shipped
    store_chain_verifies
    grep -q '"argv":\["/usr/bin/echo","run 5"\]' "$T/store.data" || ns_die "the last run is not in the store"
    local status
    for i in $(seq 1 50); do
        status="$("$JITGATECTL" --socket "$SOCK" audit status)"
        grep -qE "unsent: +none" <<<"$status" && break; sleep 0.1
    done
    expect_contains "$status" "store: +https://127.0.0.1:$STORE_PORT/v1/events \(jsonl\)"
    expect_contains "$status" "unsent: +none"
    expect_contains "$status" "shipped: +up to seq [0-9]+"
    "$JITGATECTL" audit verify "$SPOOL" >/dev/null || ns_die "the local spool does not verify"
}

case_store_down_then_back() {
    ns_setup; start_store; local port="$STORE_PORT"; configure; stop_store
    ns_start_daemon
    local i
    for i in 1 2 3 4 5 6; do as_user alice sudo /usr/bin/echo "offline $i" >/dev/null; done
    # decisions do not wait for the store; the events wait in the spool
    for i in $(seq 1 50); do
        "$JITGATECTL" --socket "$SOCK" audit status | has -iE "last error: .*(connect|refused)" && break; sleep 0.1
    done
    expect_contains "$("$JITGATECTL" --socket "$SOCK" audit status)" "last error: .*(connect|refused)"
    start_store "$port"
    wait_shipped
    store_chain_verifies
}

case_kill9_mid_burst() {
    start
    local i pids=()
    for i in $(seq 1 40); do
        as_user_argv alice
        (rc=0; "${AS_USER[@]}" sudo /usr/bin/echo "burst $i" >/dev/null 2>&1 || rc=$?; echo "$i $rc" >>"$T/results") &
        pids+=($!)
        if [ "$i" = 20 ]; then # mid-burst: some runs done, others in flight
            local j; for j in $(seq 1 100); do [ -s "$T/results" ] && break; sleep 0.01; done
            kill -KILL "$DAEMON_PID"
        fi
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
    wait "$DAEMON_PID" 2>/dev/null || true
    ns_start_daemon
    as_user alice sudo /usr/bin/echo "after restart" >/dev/null
    wait_shipped
    store_chain_verifies
    local allowed=0
    while read -r n rc; do
        [ "$rc" = 0 ] || continue
        allowed=$((allowed + 1))
        grep -F "\"argv\":[\"/usr/bin/echo\",\"burst $n\"]" "$T/store.data" | has -F '"type":"access.allowed_by_rule"' ||
            ns_die "sudo run 'burst $n' was allowed but its record is not in the store"
    done <"$T/results"
    [ "$allowed" -ge 1 ] || ns_die "no run was allowed before the kill; the case proves nothing"
    "$JITGATECTL" audit verify "$SPOOL" >/dev/null || ns_die "the spool does not verify after kill -9"
}

case_torn_record() {
    start
    as_user alice sudo /usr/bin/true
    kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true
    local newest; newest="$(ls "$SPOOL"/seg-*.jsonl | sort | tail -n 1)"
    local before; before="$(last_seq)"
    printf '{"event_id":"half-written","seq":%s,"type":"access.allowed_by' "$((before + 1))" >>"$newest"
    ns_start_daemon
    ls "$SPOOL"/*.torn-* >/dev/null 2>&1 || ns_die "the torn tail was not quarantined"
    expect_journal error 'torn'
    as_user alice sudo /usr/bin/true
    wait_shipped
    store_chain_verifies
    if grep -q half-written "$T/store.data"; then ns_die "the torn record reached the store"; fi
    "$JITGATECTL" audit verify "$SPOOL" >/dev/null || ns_die "the spool does not verify after a torn tail"
}

case_spool_full() {
    ns_setup; start_store; configure "" "  spool_max_size: 16KiB
  when_spool_full: break_glass_only
"; stop_store
    ns_start_daemon
    local i denied=""
    for i in $(seq 1 200); do
        if ! as_user alice sudo /usr/bin/echo "fill $i" >/dev/null 2>"$T/err"; then denied=1; break; fi
    done
    [ -n "$denied" ] || ns_die "the spool never filled"
    expect_contains "$(cat "$T/err")" "audit spool .*full"
    expect_journal access.denied 'spool'
    expect_syslog "[Aa]udit spool full" "no syslog alert about the full spool"
    # break-glass still works when configured so, and is loud
    as_user dave JITGATE_BREAK_GLASS="database is down, paging did not work" sudo /usr/bin/true ||
        ns_die "break-glass refused with when_spool_full: break_glass_only"
    # once the store is back the spool drains and sudo works again
    start_store "$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' <<<"$(grep -m1 'url:' "$CONFIG")")"
    for i in $(seq 1 100); do as_user alice sudo /usr/bin/true 2>/dev/null && break; sleep 0.2; done
    as_user alice sudo /usr/bin/true || ns_die "sudo still denied after the spool drained"
}

case_resend_not_duplicated() {
    # the first batch is stored, but its acknowledgement is lost (500): it is resent. The fault
    # is armed before the daemon starts, so that it always meets the first batch: armed later,
    # it could meet the batch of the sudo run below, which wait_shipped would then find stored
    # before its resend arrives.
    ns_setup; start_store
    store_admin POST /admin/fault '{"mode":"status_after_store","status":500,"count":1}' >/dev/null
    configure; ns_start_daemon
    as_user alice sudo /usr/bin/echo "once" >/dev/null
    wait_shipped
    [ "$(store_stat duplicates)" -ge 1 ] || ns_die "the resent batch was not seen as a duplicate (stats: $(store_admin GET /admin/stats))"
    expect_eq "$(grep '"argv":\["/usr/bin/echo","once"\]' "$T/store.data" | grep -c '"type":"access.allowed_by_rule"')" 1 \
        "copies of the event in the store"
    store_chain_verifies
}

case_hostile_text() {
    start
    as_user alice sudo /usr/bin/echo $'esc\e[31mred' $'line\nbreak' $'bad\xff\xfeutf8' >/dev/null
    wait_shipped
    # the store accepts only valid UTF-8 JSON; control characters arrive escaped
    if grep -q $'\e' "$T/store.data"; then ns_die "a raw ESC reached the store"; fi
    grep -qF 'esc\\x1b[31mred' "$T/store.data" || ns_die "ESC not escaped in the store"
    grep -qF 'line\\nbreak' "$T/store.data" || ns_die "newline not escaped in the store"
    grep -qF 'bad\\xff\\xfeutf8' "$T/store.data" || ns_die "invalid UTF-8 not escaped in the store"
    [ "$(store_stat rejected)" = 0 ] || ns_die "the store rejected a batch"
}

case_splunk_hec() {
    STORE_TOKEN=test-hec-token
    ns_setup; start_store
    printf '%s\n' "$STORE_TOKEN" >"$T/token"; chmod 0600 "$T/token"
    STORE_URL="https://127.0.0.1:$STORE_PORT/services/collector/event" \
        configure "    format: splunk_hec
    token_file: $T/token
"
    ns_start_daemon
    as_user alice sudo /usr/bin/echo hec >/dev/null
    wait_shipped
    store_chain_verifies
    if grep -q test-hec-token "$T/daemon.log" "$SYSLOG" "$T/store.data"; then ns_die "the token leaked into a log"; fi
}

# Regression: any 2xx counted as stored, so a misrouted "200 OK" page drained the spool.
case_bogus_200_keeps_events() {
    ns_setup; start_store
    store_admin POST /admin/fault '{"mode":"bogus_ok","count":-1}' >/dev/null
    configure; ns_start_daemon
    local i
    for i in 1 2 3; do as_user alice sudo /usr/bin/echo "unacknowledged $i" >/dev/null; done
    for i in $(seq 1 60); do
        "$JITGATECTL" --socket "$SOCK" audit status | has "without an acknowledgement" && break; sleep 0.1
    done
    expect_contains "$("$JITGATECTL" --socket "$SOCK" audit status)" "HTTP 200 from .* without an acknowledgement of the batch"
    for i in $(seq 1 50); do [ "$(store_stat faults_served)" -ge 2 ] && break; sleep 0.1; done
    [ "$(store_stat faults_served)" -ge 2 ] || ns_die "the bogus 200 was not retried (stats: $(store_admin GET /admin/stats))"
    [ ! -s "$T/store.data" ] || ns_die "the store holds events although it acknowledged none"
    [ ! -e "$SPOOL/shipped.json" ] || ns_die "shipped.json written for an unacknowledged batch: $(cat "$SPOOL/shipped.json")"
    expect_eq "$(journal | grep -F '"type":"access.allowed_by_rule"' | grep -c '"argv":\["/usr/bin/echo","unacknowledged [123]"\]')" 3 \
        "events kept in the spool"
    expect_syslog "rejects events: HTTP 200 .*without an acknowledgement" "no syslog error about the bogus 200"
    # the store answers properly again: everything arrives, once
    store_admin POST /admin/reset >/dev/null
    wait_shipped
    store_chain_verifies
}

# Regression: a spool cut below what the store acknowledged went unnoticed (audit verify said
# OK) and jitgated issued the lost seq numbers again: two different events per (host, seq).
case_spool_cut_detected() {
    start
    local i
    as_user alice sudo /usr/bin/echo "before the copy" >/dev/null
    wait_shipped
    ns_stop_daemon
    mkdir "$T/old-spool"; cp -a "$SPOOL"/. "$T/old-spool/"
    ns_start_daemon
    for i in 1 2 3 4; do as_user alice sudo /usr/bin/echo "after the copy $i" >/dev/null; done
    wait_shipped
    ns_stop_daemon
    local shipped; shipped="$(grep -oE '"seq":[0-9]+' "$SPOOL/shipped.json" | cut -d: -f2)"
    local sent; sent="$(grep -oE '"seq":[0-9]+' "$SPOOL/sent.json" | cut -d: -f2)"
    [ "$sent" -ge "$shipped" ] || ns_die "sent.json ($sent) is below shipped.json ($shipped)"
    # What the store holds before the cut; an event that was sent at the stop but not stored,
    # and is then cut from the spool, is lost (that is what the cut did) and stays missing.
    local stored_before; stored_before="$(store_seqs | sort -n)"
    # the spool's segments and anchor restored from the older copy; shipped.json stays
    rm -f "$SPOOL"/seg-*.jsonl "$SPOOL/anchor.json"
    cp -a "$T/old-spool"/seg-*.jsonl "$SPOOL/"
    [ ! -e "$T/old-spool/anchor.json" ] || cp -a "$T/old-spool/anchor.json" "$SPOOL/"
    local cut_at; cut_at="$(last_seq)"
    [ -n "$cut_at" ] || cut_at="$(grep -oE '"seq":[0-9]+' "$SPOOL/anchor.json" | cut -d: -f2)"
    [ "$cut_at" -lt "$shipped" ] || ns_die "the restored copy ends at $cut_at, not below the acknowledged $shipped"
    if "$JITGATECTL" audit verify "$SPOOL" >"$T/verify.out" 2>&1; then cat "$T/verify.out" >&2; ns_die "audit verify passed a cut spool"; fi
    expect_contains "$(cat "$T/verify.out")" "acknowledged events up to seq $shipped, but the spool ends at seq $cut_at: .* were cut"
    ns_start_daemon
    expect_journal error "\"acknowledged_seq\":$shipped.*\"spool_cut\":true"
    expect_contains "$(cat "$T/daemon.log")" "audit spool cut: it ends at seq $cut_at"
    expect_syslog "audit spool cut" "no syslog alert about the cut"
    for i in 1 2; do as_user alice sudo /usr/bin/echo "after the cut $i" >/dev/null; done
    # no seq is issued twice: the store holds 1..last exactly once each. The cut's record takes
    # the seq after the highest one that ever left the host (sent.json), which can be above
    # shipped.json when the last acknowledgement was not yet written at the stop (read above,
    # before the restarted daemon sends more).
    local last; last="$(last_seq)"
    for i in $(seq 1 200); do
        store_seqs | has -x "$last" && break
        sleep 0.1
    done
    expect_eq "$(store_seqs | sort -n | uniq -d | head -1)" "" "an event stored twice"
    expect_eq "$(store_seqs | sort -n | tr '\n' ' ')" "$({ echo "$stored_before"; seq $((sent + 1)) "$last"; } | sort -n | tr '\n' ' ')" \
        "seqs in the store (those stored before the cut, then $((sent + 1))..$last)"
    expect_eq "$(grep -c '"seq":'"$((sent + 1))"',' "$T/store.data")" 1 "events with seq $((sent + 1)) in the store"
    grep '"seq":'"$((sent + 1))"',' "$T/store.data" | has '"spool_cut":true' || ns_die "seq $((sent + 1)) is not the cut's record"
}

"case_$1"
