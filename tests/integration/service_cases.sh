#!/bin/bash
# Integration tests of the `service` approval backend where the point is a lying, broken or
# controlled service: the real sudo, the real plugin and jitgated in a private mount namespace,
# against the scriptable HTTPS approval service of tests/support (protocol v1, mTLS, Ed25519
# grants) on 127.0.0.1 with keys made for the run, whose admin API forges grants, injects faults
# and holds answers. The ordinary flows (approve, deny, timeout, cancel) run against the real
# jitgate-server in server_cases.sh.
# ctest runs: unshare -m bash service_cases.sh CASE
source "$(dirname "$0")/../support/ns.sh"

SERVICE_BIN="$JITGATE_BUILD/tests/support/jitgate-test-approval-service"
MAKE_PKI="$(dirname "$0")/../support/make_pki.sh"

RULES='rules:
  - name: two-person
    match: {kind: sudo, commands: ["/usr/bin/touch /tmp/ledger*"]}
    approvals: 2
  - name: quick
    match: {kind: sudo, commands: ["/usr/bin/id*"]}
    timeout: 3s
  - name: session-scope
    match: {kind: sudo, users: [erin]}
    scope: session
  - name: on-call
    match: {kind: sudo, commands: ["/usr/bin/uname*"]}
    auto_approve: {on_call: true}
  - name: default-approval
    match: {kind: sudo}
    timeout: 60s
    ttl: 15m'

# start_service [EXTRA-ARGS...]: the approval service on an ephemeral port; sets SVC_PORT, ADMIN.
start_service() {
    NS_SHOW_ON_FAIL="$T/daemon.log $T/svc.log $T/svc.out $T/err"
    mkdir -p "$T/pki"
    [ -e "$T/pki/ca.pem" ] || bash "$MAKE_PKI" "$T/pki"
    ns_start_peer svc "$SERVICE_BIN" --listen 127.0.0.1 --port 0 --cert "$T/pki/server.pem" \
        --key "$T/pki/server.key" --client-ca "$T/pki/ca.pem" --signing-key "$T/pki/signing.key" --kid k1 \
        --other-key "$T/pki/signing2.key" --log "$T/svc.log" "$@"
    SVC_PID="$PEER_PID" SVC_PORT="$PEER_PORT" ADMIN="$PEER_ADMIN"
}

# configure [URL] [CA] [CERT] [KEY]: the service backend section (defaults: the test service).
configure() {
    local url="${1:-https://127.0.0.1:$SVC_PORT}"
    NS_APPROVAL="approval:
  backend: service
  approver_groups: [jitgate-approvers]
  service:
    url: $url
    ca_file: ${2:-$T/pki/ca.pem}
    client_cert: ${3:-$T/pki/client.pem}
    client_key: ${4:-$T/pki/client.key}
    connect_timeout: 2s
    request_timeout: 2s
    poll_wait: 2s
    retries: 2
    public_keys:
      k1: $T/pki/signing.pub"
    printf '%s\n' "$RULES" | ns_config
}

start() { ns_setup; start_service; configure "$@"; ns_start_daemon; }

admin() { curl -sS --max-time 5 -X "$1" "$ADMIN$2" ${3:+-H 'Content-Type: application/json' -d "$3"}; }

# svc_request_ids N: waits until the service holds N requests; prints their ids.
svc_request_ids() {
    local want="$1" i out
    for i in $(seq 1 100); do
        out="$(admin GET /admin/requests 2>/dev/null | grep -oE '"id":"R-[0-9A-Z]+"' | cut -d'"' -f4 | sort -u || true)"
        if [ "$(printf '%s' "$out" | grep -c . || true)" -ge "$want" ]; then printf '%s\n' "$out"; return 0; fi
        sleep 0.05
    done
    ns_die "expected $want request(s) at the service, have: ${out:-none}"
}

# svc_field ID JQ-LIKE-KEY: a top-level string/number field of the service's view of ID.
svc_field() { admin GET "/admin/requests/$1" | sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }

# wait_svc_status ID STATUS: the service's view of request ID reaches STATUS.
wait_svc_status() {
    local i
    for i in $(seq 1 100); do
        [ "$(svc_field "$1" status)" = "$2" ] && return 0
        sleep 0.05
    done
    ns_die "request $1 at the service: expected status $2, have $(admin GET "/admin/requests/$1")"
}

# all_settled: the daemon is alive and no sudo is left waiting.
all_settled() {
    daemon_alive || { cat "$T/daemon.log" >&2; ns_die "jitgated died"; }
    expect_eq "$("$JITGATECTL" --socket "$SOCK" status --json | sed -n 's/.*"pending":\([0-9]*\).*/\1/p')" 0 "requests left waiting"
}

# Regression: a request still waiting when jitgated stopped stayed open at the service, where an
# approver could still approve it for nobody.
case_shutdown_cancels_pending() {
    start
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(svc_request_ids 1)"
    wait_pending 1 >/dev/null
    ns_stop_daemon
    sudo_wait; expect_eq "$RC" 1 "sudo is denied when the daemon stops"
    wait_svc_status "$id" cancelled
    expect_eq "$(svc_field "$id" cancel_reason)" shutdown "cancel reason sent"
    expect_journal daemon.stopped '"cancelled_at_service":1,"cancels_unsent":0'
}

# ... and the stop stays bounded when the service never answers the cancel.
case_shutdown_cancel_bounded() {
    start
    admin POST /admin/fault '{"mode":"hang","count":-1,"endpoints":"cancel"}' >/dev/null
    sudo_bg alice -- /usr/bin/whoami
    svc_request_ids 1 >/dev/null
    wait_pending 1 >/dev/null
    local t0 t1; t0="$(date +%s%N)"
    ns_stop_daemon
    t1="$(date +%s%N)"
    sudo_wait
    local ms=$(( (t1 - t0) / 1000000 ))
    [ "$ms" -lt 6000 ] || ns_die "stopping took ${ms} ms with a hanging service (bound: about 3 s)"
    expect_journal daemon.stopped '"cancelled_at_service":1,"cancels_unsent":1'
    expect_contains "$(admin GET /admin/stats)" '"cancel":[1-9]'
}

case_cached_grant() {
    start
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(svc_request_ids 1)"
    admin POST "/admin/requests/$id/approve" '{"approvers":["bob"]}' >/dev/null
    sudo_wait; expect_eq "$RC" 0 "first run"
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 0 "re-run within the TTL, without asking"
    expect_journal access.allowed_by_grant "\"request_id\":\"$id\""
    expect_eq "$(admin GET /admin/stats | grep -oE '"create":[0-9]+' | cut -d: -f2)" 1 "requests sent to the service"
    # another command is not covered by that grant: sudo -n files a new request and denies
    sudo_fg alice -- -n /usr/bin/hostname; expect_eq "$RC" 1 "other command"
    expect_contains "$(cat "$T/err")" "filed"
    svc_request_ids 2 >/dev/null
    # this service predates GET /v1/revocations (protocol.md §12): the host, watching since its
    # first grant, says so once and goes on
    local i
    for i in $(seq 1 100); do grep -q "does not serve GET /v1/revocations" "$T/daemon.log" && break; sleep 0.05; done
    expect_eq "$(grep -c 'does not serve GET /v1/revocations' "$T/daemon.log")" 1 "the old service's 404, said once"
    expect_contains "$("$JITGATECTL" --socket "$SOCK" status --json)" '"unsupported":true'
    daemon_alive || ns_die "jitgated died"
}

# The revocation feed (protocol.md §12) is hostile input: answers that are malformed, or name
# another host, another request or another grant id, end nothing; only the revocation of this
# host's request with its grant's jti ends the grant.
case_revocations_hostile() {
    start
    # the feed is served from now on; its first answer is an empty page
    admin POST /admin/revocations '{"protocol":1,"cursor":0,"revocations":[]}' >/dev/null
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(svc_request_ids 1)"
    admin POST "/admin/requests/$id/approve" '{"approvers":["bob"]}' >/dev/null
    sudo_wait; expect_eq "$RC" 0 "first run"
    local jti
    jti="$(journal | grep -F '"type":"access.approved"' | sed -n 's/.*"service_grant_id":"\(G-[0-9a-f]*\)".*/\1/p' | head -n1)"
    [ -n "$jti" ] || ns_die "no service grant id in access.approved"
    local at='"revoked_at":"2026-11-24T03:12:09Z"' by='"revoked_by":"mallory","reason":"hostile"'
    local bodies=(
        "{\"protocol\":1,\"cursor\":1,\"revocations\":[{\"seq\":1,\"host\":\"fin-db-02\",\"request_id\":\"$id\",\"grant_id\":\"$jti\",$by,$at}]}"
        "{\"protocol\":1,\"cursor\":2,\"revocations\":[{\"seq\":2,\"host\":\"fin-db-01\",\"request_id\":\"$id\",\"grant_id\":\"G-0000000000000000\",$by,$at}]}"
        "{\"protocol\":1,\"cursor\":3,\"revocations\":[{\"seq\":3,\"host\":\"fin-db-01\",\"request_id\":\"R-OTHER1\",\"grant_id\":\"$jti\",$by,$at}]}"
        "{\"protocol\":1,\"cursor\":4,\"revocations\":[{\"seq\":9,\"host\":\"fin-db-01\",\"request_id\":\"$id\",\"grant_id\":\"$jti\",$by,$at}]}"
        "{\"protocol\":1,\"cursor\":5,\"revocations\":[{\"seq\":5,\"host\":\"fin-db-01\",\"request_id\":\"$id\",\"grant_id\":7,$by,$at}]}"
    )
    local body; for body in "${bodies[@]}"; do admin POST /admin/revocations "$body" >/dev/null; done
    local i
    for i in $(seq 1 400); do
        [ "$(admin GET /admin/stats | grep -oE '"revocations_served":[0-9]+' | cut -d: -f2)" = $((${#bodies[@]} + 1)) ] &&
            break
        sleep 0.05
    done
    expect_eq "$(admin GET /admin/stats | grep -oE '"revocations_served":[0-9]+' | cut -d: -f2)" $((${#bodies[@]} + 1)) \
        "hostile answers served"
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 0 "the grant still answers"
    expect_no_journal grant.revoked
    expect_contains "$(cat "$T/daemon.log")" "invalid answer to GET /v1/revocations"
    expect_contains "$(cat "$T/daemon.log")" "ignored [0-9]+ revocation\(s\) from the approval service"
    # the right one
    admin POST /admin/revocations \
        "{\"protocol\":1,\"cursor\":6,\"revocations\":[{\"seq\":6,\"host\":\"fin-db-01\",\"request_id\":\"$id\",\"grant_id\":\"$jti\",\"revoked_by\":\"carol\",\"reason\":\"done\",$at}]}" >/dev/null
    for i in $(seq 1 200); do [ "$(journal_count grant.revoked)" -ge 1 ] && break; sleep 0.05; done
    expect_journal grant.revoked "\"request_id\":\"$id\".*\"revoked_at_service\":true.*\"revoked_by\":\"carol\".*\"service_grant_id\":\"$jti\""
    expect_eq "$(journal_count grant.revoked)" 1 "one grant revoked"
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 1 "no grant after the revocation"
    # Revocations naming a request still waiting here: remembered with it, and its grant is
    # refused when it arrives (more than 8 for one request: any grant of it).
    sudo_bg alice -- /usr/bin/hostname
    # (the sudo -n above filed one too, still waiting: the new one is hostname's)
    local second='' r
    for r in $(svc_request_ids 3 | grep -v "$id"); do
        admin GET "/admin/requests/$r" | grep -q '/usr/bin/hostname' && second="$r"
    done
    [ -n "$second" ] || ns_die "no request for /usr/bin/hostname at the service"
    local served page='' n
    served="$(admin GET /admin/stats | grep -oE '"revocations_served":[0-9]+' | cut -d: -f2)"
    for n in $(seq 7 15); do
        page+="${page:+,}{\"seq\":$n,\"host\":\"fin-db-01\",\"request_id\":\"$second\",\"grant_id\":\"G-$n\",\"revoked_by\":\"carol\",\"reason\":\"early\",$at}"
    done
    admin POST /admin/revocations "{\"protocol\":1,\"cursor\":15,\"revocations\":[$page]}" >/dev/null
    for i in $(seq 1 200); do
        [ "$(admin GET /admin/stats | grep -oE '"revocations_served":[0-9]+' | cut -d: -f2)" -gt "$served" ] && break
        sleep 0.05
    done
    for i in $(seq 1 200); do
        "$JITGATECTL" --socket "$SOCK" status --json | grep -q '"before_grant":9' && break
        sleep 0.05
    done
    expect_contains "$("$JITGATECTL" --socket "$SOCK" status --json)" '"before_grant":9'
    admin POST "/admin/requests/$second/approve" '{"approvers":["bob"]}' >/dev/null
    sudo_wait; expect_eq "$RC" 1 "a grant revoked before it arrived is refused"
    expect_contains "$(cat "$T/err")" "revoked at the approval service"
    expect_journal access.denied "\"request_id\":\"$second\".*\"revoked_at_service\":true"
    expect_eq "$(journal_count grant.revoked)" 1 "still one grant revoked"
    # A 404 once the feed has answered 200 is a failure with back-off, not "unsupported".
    curl -sS --max-time 5 -X POST -d '' "$ADMIN/admin/revocations?off=1" >/dev/null
    for i in $(seq 1 200); do
        grep -q "revocation feed failed .*HTTP 404 to GET /v1/revocations" "$T/daemon.log" && break
        sleep 0.05
    done
    expect_contains "$(cat "$T/daemon.log")" "revocation feed failed .*HTTP 404 to GET /v1/revocations"
    expect_not_contains "$(cat "$T/daemon.log")" "does not serve GET /v1/revocations"
    expect_contains "$("$JITGATECTL" --socket "$SOCK" status --json)" '"unsupported":false'
    daemon_alive || ns_die "jitgated died"
}

# refused TAMPER PATTERN [APPROVERS-JSON] [USER] [CMD...]: the service approves with a grant
# the host must refuse; sudo is denied with PATTERN and the journal says why.
refused() {
    local tamper="$1" pattern="$2" approvers="${3:-[\"bob\"]}" user="${4:-alice}"
    shift 4 2>/dev/null || shift $#
    start
    sudo_bg "$user" -- "${@:-/usr/bin/whoami}"
    local id; id="$(svc_request_ids 1)"
    admin POST "/admin/requests/$id/approve" "{\"approvers\":$approvers,\"tamper\":\"$tamper\"}" >/dev/null
    sudo_wait; expect_eq "$RC" 1 "sudo exit status ($tamper)"
    expect_eq "$(cat "$T/out")" "" "the command did not run"
    expect_contains "$(cat "$T/err")" "grant: .*$pattern"
    expect_journal access.denied "\"grant_rejected\":\"grant: .*$pattern"
    expect_no_journal access.approved
    all_settled
}

case_forged_signature() { refused forge_signature "signature does not verify"; }
case_unknown_kid() { refused unknown_kid "unknown kid"; }
case_alg_none() { refused alg_none "alg .*none.* is not EdDSA"; }
case_alg_hs256() { refused alg_hs256 "alg .*HS256.* is not EdDSA"; }
case_wrong_nonce() { refused wrong_nonce "nonce does not match"; }
case_other_host() { refused other_host "host .* is not this host"; }
case_other_user() { refused other_user "mallory"; }
case_other_command() { refused other_cmd "cmd_sha256 does not match"; }
case_expired() { refused expired "expired"; }
case_not_yet_valid() { refused not_yet_valid "not valid for another"; }
case_too_few_approvers() { refused none "1 approver.*2 needed" '["bob"]' alice /usr/bin/touch /tmp/ledger-1; }
case_approver_is_requester() { refused none "approver .*alice.* is the requester" '["alice"]'; }
# The service's automatic approval (`auto`, no approvers) is refused for a rule that did not opt
# in, and for one that did when it names approvers too; accepted for the opted-in rule and
# recorded as access.auto_approved.
case_auto_grant_without_opt_in() {
    refused auto_on_call "automatic approval .*on_call.* is not allowed by this host's rule" '[]'
}
case_auto_grant_with_approvers() {
    refused auto_on_call "an automatic approval names approvers" '["bob"]' alice /usr/bin/uname
}
# A rule that needs two approvals (and, as validate() requires without auto_approve_sod, did
# not opt in): the service's automatic grant stands for no approver and is refused.
case_auto_grant_two_approvals() {
    refused auto_on_call "automatic approval .*on_call.* is not allowed by this host's rule" '[]' alice \
        /usr/bin/touch /tmp/ledger-auto
}
case_auto_grant_accepted_for_opted_in_rule() {
    start
    sudo_bg alice -- /usr/bin/uname
    local id; id="$(svc_request_ids 1)"
    admin POST "/admin/requests/$id/approve" '{"approvers":[],"tamper":"auto_on_call"}' >/dev/null
    sudo_wait; expect_eq "$RC" 0 "sudo exit status"
    expect_contains "$(cat "$T/err")" "approved by the approval service automatically \\(on_call\\)"
    expect_journal access.auto_approved '"condition":"on_call"'
    expect_journal access.auto_approved "\"request_id\":\"$id\""
    expect_no_journal access.approved
    all_settled
}

case_replayed_grant() {
    start
    sudo_bg alice -- /usr/bin/whoami
    local first; first="$(svc_request_ids 1)"
    admin POST "/admin/requests/$first/approve" '{"approvers":["bob"]}' >/dev/null
    sudo_wait; expect_eq "$RC" 0 "first, honest approval"
    sudo_bg alice -- /usr/bin/hostname
    local second; second="$(svc_request_ids 2 | grep -v "$first")"
    admin POST "/admin/requests/$second/approve" "{\"approvers\":[\"bob\"],\"replay_of\":\"$first\"}" >/dev/null
    sudo_wait; expect_eq "$RC" 1 "a replayed grant is refused"
    expect_contains "$(cat "$T/err")" "grant: "
    expect_journal access.denied "\"request_id\":\"$second\".*|\"grant_rejected\":\"grant: "
    all_settled
}

# Transport: each failure denies with a message naming what failed; nothing hangs.
transport_denied() { # PATTERN [CMD]: sudo is denied within its timeout and says PATTERN
    sudo_bg alice -- "${2:-/usr/bin/whoami}"
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
    expect_contains "$(cat "$T/err")" "$1"
    expect_journal access.denied '"outcome":"error"'
    all_settled
}

case_wrong_ca() {
    ns_setup; start_service; configure "" "$T/pki/other-ca.pem"; ns_start_daemon
    transport_denied "approval service https://127.0.0.1:$SVC_PORT unreachable: .*(certificate|SSL)"
}

case_no_client_cert() {
    ns_setup; start_service
    # the service refuses a TLS client without a certificate...
    if curl -sS --max-time 5 --cacert "$T/pki/ca.pem" -X POST "https://127.0.0.1:$SVC_PORT/v1/requests" -d '{}' \
        >/dev/null 2>"$T/curl.err"; then
        ns_die "the service answered a client without a certificate"
    fi
    # ...and a host whose certificate it does not trust is denied, naming the service
    configure "" "" "$T/pki/other-server.pem" "$T/pki/other-server.key"; ns_start_daemon
    transport_denied "approval service https://127.0.0.1:$SVC_PORT unreachable"
}

case_service_down() {
    ns_setup; start_service
    local port="$SVC_PORT"
    kill "$SVC_PID"; wait "$SVC_PID" 2>/dev/null || true
    configure "https://127.0.0.1:$port"; ns_start_daemon
    transport_denied "approval service https://127.0.0.1:$port unreachable: .*(refused|connect)"
}

case_service_hanging() {
    start
    admin POST /admin/fault '{"mode":"hang","count":-1,"endpoints":"create"}' >/dev/null
    transport_denied "did not answer POST /v1/requests in time"
}

case_garbage_json() {
    start
    admin POST /admin/fault '{"mode":"garbage","count":-1,"endpoints":"poll"}' >/dev/null
    transport_denied "invalid answer to GET .*not a JSON object"
}

case_truncated_json() {
    start
    admin POST /admin/fault '{"mode":"truncated","count":-1,"endpoints":"create"}' >/dev/null
    transport_denied "invalid answer to POST /v1/requests"
}

case_http_500_retried() {
    start
    # two 500s, then the service works: the create is retried and the request goes through once
    admin POST /admin/fault '{"mode":"status","status":500,"count":2,"endpoints":"create"}' >/dev/null
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(svc_request_ids 1)"
    admin POST "/admin/requests/$id/approve" '{"approvers":["bob"]}' >/dev/null
    sudo_wait; expect_eq "$RC" 0 "approved after retries"
    expect_eq "$(admin GET /admin/stats | grep -oE '"create":[0-9]+' | cut -d: -f2)" 3 "create calls (2 failed + 1)"
    # always 500: denied after the retries, naming the status
    admin POST /admin/fault '{"mode":"status","status":500,"count":-1,"endpoints":"create"}' >/dev/null
    transport_denied "answered HTTP 500 to POST /v1/requests.*after 3 tries" /usr/bin/hostname
}

"case_$1"
