#!/bin/bash
# Integration tests of jitgate-server, the central approval service, with the real things:
# the real sudo and plugin and jitgated (service backend) in a private mount namespace, the
# real jitgate-server on 127.0.0.1 (mutual TLS for the host, HTTPS for approvers), its real
# SQLite (or PostgreSQL) database, and a real OpenID Connect provider (Debian's glewlwyd)
# through which the approvers sign in, as their browser would. Keys are made for the run.
# ctest runs: unshare -m bash server_cases.sh CASE
source "$(dirname "$0")/../support/ns.sh"
source "$(dirname "$0")/../support/server.sh"

RULES='rules:
  - name: two-person
    match: {kind: sudo, commands: ["/usr/bin/touch /tmp/ledger*"]}
    approvals: 2
  - name: quick
    match: {kind: sudo, commands: ["/usr/bin/id*"]}
    timeout: 4s
  - name: default-approval
    match: {kind: sudo}
    timeout: 60s
    ttl: 15m'

# start [DB]: namespace, IdP, server, host daemon pointing at it.
start() {
    ns_setup
    start_in_namespace "$@"
}

# start_in_namespace [DB]: start's part after ns_setup (for cases that start a peer first).
start_in_namespace() {
    server_start srv "${1:-$T/srv.db}"
    server_configure_host
    printf '%s\n' "$RULES" | ns_config
    ns_start_daemon
}

all_settled() {
    daemon_alive || { cat "$T/daemon.log" >&2; ns_die "jitgated died"; }
    expect_eq "$("$JITGATECTL" --socket "$SOCK" status --json | sed -n 's/.*"pending":\([0-9]*\).*/\1/p')" 0 "requests left waiting"
    kill -0 "$SRV_PID" 2>/dev/null || ns_die "jitgate-server died"
}

case_approved() {
    start
    approver_sign_in bob
    sudo_bg alice JITGATE_REASON="restart after config change" -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    # the approver sees exactly what will run, who asks and why
    local page; page="$(web bob "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id")"
    expect_contains "$page" "/usr/bin/whoami"
    expect_contains "$page" "alice"
    expect_contains "$page" "restart after config change"
    # the waiting user was told where to approve
    local i; for i in $(seq 1 100); do grep -q "Approve at" "$T/err" && break; sleep 0.05; done
    expect_contains "$(cat "$T/err")" "Approve at https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id"
    approver_act bob approve fin-db-01 "$id" "looks right" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "sudo exit status"
    expect_eq "$(cat "$T/out")" root "command output"
    expect_contains "$(cat "$T/err")" "approved by bob"
    expect_journal access.approved "\"kid\":\"k1\".*\"request_id\":\"$id\""
    expect_journal command.finished '"exit_status":0'
    # local approvals are refused with the service backend: it is the only authority
    expect_contains "$(ctl bob approve R-0000000000 2>&1 || true)" "approval service"
    # the server's own audit: who filed, who approved from where, which key signed
    local events; events="$(sqlite3 "$T/srv.db" "select type, actor, source_address from events where request_id='$id'")"
    expect_contains "$events" "request.filed\|host:fin-db-01"
    expect_contains "$events" "request.approval_added\|bob\|127.0.0.1"
    expect_contains "$events" "grant.signed"
    all_settled
}

case_denied() {
    start
    approver_sign_in bob
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    approver_act bob deny fin-db-01 "$id" "not during the close" >/dev/null
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
    expect_eq "$(cat "$T/out")" "" "the command did not run"
    expect_contains "$(cat "$T/err")" "not during the close"
    expect_journal access.denied "\"request_id\":\"$id\""
    all_settled
}

case_self_approval_refused() {
    # dave is in the IdP group ops, which this policy lets approve: he still cannot approve
    # his own request, through the same identity he signs in with.
    SERVER_POLICY_EXTRA='  - name: ops-too
    hosts: ["fin-*"]
    approver_groups: [ops]'
    start
    approver_sign_in dave
    approver_sign_in bob
    sudo_bg dave -- /usr/bin/whoami
    local id; id="$(server_request_ids 1 bob)"
    expect_contains "$(approver_act dave approve fin-db-01 "$id")" "cannot decide your own request"
    # still waiting: nothing was approved
    sleep 0.5
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "sudo finished after a self-approval"
    expect_contains "$(web dave "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id")" "own request"
    approver_act bob deny fin-db-01 "$id" "no" >/dev/null
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
    all_settled
}

case_non_approver_refused() {
    start
    approver_sign_in dave # ops, not sox-approvers
    approver_sign_in bob
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(server_request_ids 1 bob)"
    # dave may not even see it: the page answers as for an unknown request
    expect_eq "$(web dave -o /dev/null -w '%{http_code}' "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id")" 404 \
        "a non-approver opening the request"
    expect_not_contains "$(web dave "https://127.0.0.1:$SRV_WEB_PORT/")" "$id"
    expect_contains "$(approver_act dave approve fin-db-01 "$id")" "none of your approver groups"
    approver_act bob deny fin-db-01 "$id" "no" >/dev/null
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
}

case_two_approvers() {
    start
    approver_sign_in bob
    approver_sign_in carol
    # the rule's path is under the machine's /tmp (the namespace shares it): a name of this
    # run's own, removed afterwards
    local ledger="/tmp/ledger-jitgate-test-$$"
    ns_cleanup_hooks+=("rm -f '$ledger'")
    sudo_bg alice -- /usr/bin/touch "$ledger"
    local id; id="$(server_request_ids 1)"
    approver_act bob approve fin-db-01 "$id" >/dev/null
    # bob a second time counts once
    expect_contains "$(approver_act bob approve fin-db-01 "$id")" "already approved"
    sleep 0.5
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "one person's two approvals passed a two-person rule"
    approver_act carol approve fin-db-01 "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "sudo exit status"
    expect_journal access.approved "\"request_id\":\"$id\""
    all_settled
}

case_csrf_refused() {
    start
    approver_sign_in bob
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    local code
    code="$(web bob -o /dev/null -w '%{http_code}' --data-urlencode "comment=x" \
        "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id/approve")"
    expect_eq "$code" 403 "an approval without a CSRF token"
    code="$(web bob -o /dev/null -w '%{http_code}' --data-urlencode "comment=x" --data-urlencode "csrf=forged" \
        "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id/approve")"
    expect_eq "$code" 403 "an approval with a wrong CSRF token"
    # no session at all: sent to sign in, nothing approved
    code="$(curl -sS --cacert "$T/pki/ca.pem" -o /dev/null -w '%{http_code}' --data-urlencode "comment=x" \
        "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id/approve")"
    case "$code" in 302 | 303 | 401 | 403) ;; *) ns_die "an approval without a session answered $code" ;; esac
    sleep 0.3
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "sudo finished after forged approvals"
    approver_act bob deny fin-db-01 "$id" "no" >/dev/null
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
}

case_timeout_expires() {
    start
    approver_sign_in bob
    sudo_bg alice -- /usr/bin/id
    local id; id="$(server_request_ids 1)"
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
    expect_journal access.timeout "\"request_id\":\"$id\""
    # the host gives up at 4 s, and the server expires it at 4 s too: either tells the user
    expect_contains "$(cat "$T/err")" "timed out after 4s|expired at the approval service"
    # the host cancelled it (timeout) or the server expired it: either way it is final there
    local page; page="$(web bob "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id")"
    expect_contains "$page" "cancelled|expired"
    expect_contains "$(approver_act bob approve fin-db-01 "$id")" "no longer pending|is cancelled|is expired"
    all_settled
}

case_ctrl_c_cancels() {
    start
    approver_sign_in bob
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    kill -INT "$SUDO_PID" 2>/dev/null || true
    sudo_wait
    local i page
    for i in $(seq 1 100); do
        page="$(web bob "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id")"
        printf '%s' "$page" | grep -q cancelled && break
        sleep 0.05
    done
    expect_contains "$page" "cancelled"
    # the host said why (docs/protocol.md §6)
    expect_contains "$(sqlite3 "$T/srv.db" "select detail from events where request_id='$id' and type='request.cancelled'")" \
        '"reason":"client_gone"'
    all_settled
}

case_other_host_cannot_see() {
    start
    approver_sign_in bob
    host_cert other-host
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    local code
    code="$(curl -sS -o "$T/other.json" -w '%{http_code}' --cacert "$T/pki/ca.pem" \
        --cert "$T/pki/host-other-host.pem" --key "$T/pki/host-other-host.key" \
        "https://127.0.0.1:$SRV_HOSTS_PORT/v1/requests/$id?wait=0")"
    expect_eq "$code" 404 "another host polling this host's request"
    code="$(curl -sS -o "$T/other.json" -w '%{http_code}' --cacert "$T/pki/ca.pem" \
        --cert "$T/pki/host-other-host.pem" --key "$T/pki/host-other-host.key" \
        -H 'Content-Type: application/json' -d '{"protocol":1,"reason":"client_gone"}' \
        "https://127.0.0.1:$SRV_HOSTS_PORT/v1/requests/$id/cancel")"
    expect_eq "$code" 404 "another host cancelling this host's request"
    # a request body naming fin-db-01, sent with other-host's certificate: 403
    code="$(curl -sS -o "$T/other.json" -w '%{http_code}' --cacert "$T/pki/ca.pem" \
        --cert "$T/pki/host-other-host.pem" --key "$T/pki/host-other-host.key" \
        -H 'Content-Type: application/json' --data-binary @- \
        "https://127.0.0.1:$SRV_HOSTS_PORT/v1/requests" <<'JSON'
{"protocol":1,"id":"R-ZZZZ99","nonce":"q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o","host":"fin-db-01",
 "host_environment":"production","host_tags":["finance"],
 "requester":{"user":"mallory","uid":2005},"account":{"user":"mallory","uid":2005},
 "kind":"sudo","scope":"session","action":{"command":"","argv":[],"display":"","runas":"root","runas_group":"root",
 "cwd":"/","chroot":"","program":"","env":[],"env_code_loading":[],"tty":"","service":"","remote_host":"","cmd_sha256":""},
 "reason":"","ticket":"","rule":"x","approvals_needed":1,"approver_groups":[],"ttl_s":60,"timeout_s":60}
JSON
)"
    expect_eq "$code" 403 "a certificate for other-host filing for fin-db-01"
    expect_contains "$(cat "$T/other.json")" "may not act for host"
    # no client certificate: the TLS handshake fails
    if curl -sS -o /dev/null --cacert "$T/pki/ca.pem" "https://127.0.0.1:$SRV_HOSTS_PORT/v1/requests/$id" 2>/dev/null; then
        ns_die "the host API answered a client without a certificate"
    fi
    kill -INT "$SUDO_PID" 2>/dev/null || true
    sudo_wait
}

# file_as_fin_db_01 ID: POSTs a request for fin-db-01 with its certificate, as jitgated would;
# the body goes to $T/file.json, the HTTP status to stdout.
file_as_fin_db_01() {
    curl -sS -o "$T/file.json" -w '%{http_code}' --cacert "$T/pki/ca.pem" \
        --cert "$T/pki/host-fin-db-01.pem" --key "$T/pki/host-fin-db-01.key" \
        -H 'Content-Type: application/json' --data-binary @- \
        "https://127.0.0.1:$SRV_HOSTS_PORT/v1/requests" <<JSON
{"protocol":1,"id":"$1","nonce":"q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o","host":"fin-db-01",
 "host_environment":"production","host_tags":["finance"],
 "requester":{"user":"mallory","uid":2005},"account":{"user":"mallory","uid":2005},
 "kind":"sudo","scope":"session","action":{"command":"","argv":[],"display":"","runas":"root","runas_group":"root",
 "cwd":"/","chroot":"","program":"","env":[],"env_code_loading":[],"tty":"","service":"","remote_host":"","cmd_sha256":""},
 "reason":"","ticket":"","rule":"x","approvals_needed":1,"approver_groups":[],"ttl_s":60,"timeout_s":600}
JSON
}

# A host holds at most hosts.max_pending_per_host pending requests: one more is 429
# too_many_pending (audited by the server), a retry of a filed one is still 200, nothing filed
# is lost, and jitgated denies a request that meets the full queue at once, saying why.
case_pending_cap_per_host() {
    SERVER_HOSTS_EXTRA="  max_pending_per_host: 2"
    start
    approver_sign_in bob
    expect_eq "$(file_as_fin_db_01 R-CAP001)" 201 "the first filing"
    expect_eq "$(file_as_fin_db_01 R-CAP002)" 201 "the second filing"
    expect_eq "$(file_as_fin_db_01 R-CAP003)" 429 "a third filing beyond max_pending_per_host: 2"
    expect_contains "$(cat "$T/file.json")" '"code":"too_many_pending"'
    expect_contains "$(cat "$T/file.json")" 'already has 2 pending requests'
    expect_eq "$(file_as_fin_db_01 R-CAP002)" 200 "a retry of a filed request is not a new one"
    local refused
    refused="$(sqlite3 "$T/srv.db" "select actor from events where type='request.refused' and request_id='R-CAP003'")"
    expect_eq "$refused" "host:fin-db-01" "the refusal in the server's audit"
    # a host refiling in a loop: within the minute, refusals are counted, not each recorded
    expect_eq "$(file_as_fin_db_01 R-CAP004)" 429 "a fourth filing"
    expect_eq "$(file_as_fin_db_01 R-CAP005)" 429 "a fifth filing"
    expect_eq "$(sqlite3 "$T/srv.db" "select count(*) from events where type='request.refused'")" 1 \
        "refusal events recorded within one minute"
    # jitgated meets the full queue: denied at once (one try, not retried), with the reason
    sudo_bg alice -- /usr/bin/whoami
    sudo_wait; expect_eq "$RC" 1 "sudo exit status with the host's queue full"
    expect_contains "$(cat "$T/err")" "already has 2 pending requests"
    expect_not_contains "$(cat "$T/err")" "tries"
    expect_journal access.denied '"outcome":"error"'
    expect_journal access.denied 'already has 2 pending requests'
    # nothing already filed was lost, and a decision frees a place
    expect_eq "$(sqlite3 "$T/srv.db" "select count(*) from requests where host='fin-db-01' and status='pending'")" 2 \
        "pending requests after the refusals"
    approver_act bob deny fin-db-01 R-CAP001 "making room" >/dev/null
    expect_eq "$(file_as_fin_db_01 R-CAP003)" 201 "a filing once a place is free"
    all_settled
}

# The server's approver policy in time (docs/server.md, "Time windows"): during a freeze window
# a `deny` entry refuses the host's filing at once, with the entry and the window in the reason
# the user and the host's audit see; nothing is filed for approvers.
case_policy_freeze_refuses() {
    local from to
    from="$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M)"; to="$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M)"
    SERVER_CONFIG_EXTRA="windows:
  q4-freeze:
    timezone: Etc/UTC
    dates: [{from: \"$from\", to: \"$to\", label: quarter-end close}]"
    SERVER_POLICY_EXTRA="  - name: freeze
    hosts: [\"fin-*\"]
    when: {window: [q4-freeze]}
    deny: true"
    start
    sudo_bg alice -- /usr/bin/whoami
    sudo_wait; expect_eq "$RC" 1 "sudo exit status during the freeze"
    expect_contains "$(cat "$T/err")" \
        "HTTP 403 .* refused now by policy 'freeze' \\(window q4-freeze \\($from to $to Etc/UTC, quarter-end close\\)\\)"
    expect_journal access.denied "refused now by policy 'freeze'"
    expect_eq "$(sqlite3 "$T/srv.db" "select count(*) from requests")" 0 "requests filed during the freeze"
    all_settled
}

# Automatic approval with the service backend (docs/server.md, "Automatic approval"): the host's
# rule opts in, the server's policy entry allows it and alice is on call per the server's
# on-call file: the real jitgate-server approves at filing, with no approver, the grant says
# "auto", and the real jitgated accepts it for that rule and records access.auto_approved. A
# rule that did not opt in waits for people (and times out here), on call or not.
case_auto_approved_on_call() {
    local from to
    from="$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)"; to="$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)"
    local RULES='rules:
  - name: on-call
    match: {kind: sudo, commands: ["/usr/bin/whoami"]}
    auto_approve: {on_call: true}
  - name: quick
    match: {kind: sudo, commands: ["/usr/bin/id*"]}
    timeout: 4s'
    ns_setup
    printf 'on_call:\n  - {user: alice, from: "%s", to: "%s"}\n' "$from" "$to" >"$T/oncall.yaml"
    chmod 0644 "$T/oncall.yaml"
    SERVER_FINANCE_EXTRA="    auto_approve: {on_call: true}"
    SERVER_CONFIG_EXTRA="on_call_file: $T/oncall.yaml"
    start_in_namespace
    sudo_fg alice -- /usr/bin/whoami
    expect_eq "$RC" 0 "sudo exit status (approved automatically)"
    expect_eq "$(cat "$T/out")" root "command output"
    expect_contains "$(cat "$T/err")" "approved by the approval service automatically \\(on_call\\)"
    expect_journal access.auto_approved '"condition":"on_call"'
    expect_journal access.auto_approved '"auto_approved":true'
    local id; id="$(sqlite3 "$T/srv.db" "select id from requests where status='approved'")"
    expect_eq "$(sqlite3 "$T/srv.db" "select decided_by from requests where id='$id'")" "jitgate (auto: on_call)" \
        "who decided at the server"
    expect_eq "$(sqlite3 "$T/srv.db" "select count(*) from approvals where id='$id'")" 0 "approvals by people"
    expect_contains "$(sqlite3 "$T/srv.db" "select type from events where request_id='$id'")" "request.auto_approved"
    # The rule without auto_approve: the request waits for people even though alice is on call.
    sudo_fg alice -- /usr/bin/id
    expect_eq "$RC" 1 "sudo exit status (no opt-in: timed out)"
    expect_eq "$(sqlite3 "$T/srv.db" "select count(*) from requests where status='approved'")" 1 \
        "requests approved at the server"
    all_settled
}

# hosts.client_crl: the CA's CRL (openssl ca, make_pki.sh) revokes a host certificate; its TLS
# handshake is refused and logged, fin-db-01's is served, and sudo through jitgated still works.
# A missing or expired CRL stops check-config and serve (fail closed).
# The server as the fleet's audit store (docs/audit.md §5): the real jitgated ships its spool
# to POST /v1/audit/events on the hosts listener with its own certificate; the server stores
# each line as sent, with the host's chain unbroken, and the host sees every event acknowledged.
case_audit_ingest() {
    ns_setup
    srv_sql() { sqlite3 "$T/srv.db" "$1"; }
    audit_ingest_with "$T/srv.db"
}

# The same on PostgreSQL.
case_audit_ingest_postgres() {
    ns_setup
    bash "$(dirname "$0")/../support/pg_scratch.sh" start "$T/pg" >/dev/null || ns_die "PostgreSQL did not start"
    ns_cleanup_hooks+=("bash '$(dirname "$0")/../support/pg_scratch.sh' stop '$T/pg'")
    SRV_PG="$(cat "$T/pg/conninfo")"
    srv_sql() { psql -X -At -q "$SRV_PG" -c "$1"; }
    audit_ingest_with "$(cat "$T/pg/conninfo.tcp")"
}

# audit_ingest_with DB: the audit_ingest cases on DB (a SQLite file or a conninfo); srv_sql
# SQL runs a query on it, rows as "a|b".
audit_ingest_with() {
    server_start srv "$1"
    server_configure_host
    NS_AUDIT_EXTRA="  store:
    url: https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/events
    format: jsonl
    ca_file: $T/pki/ca.pem
    client_cert: $T/pki/host-fin-db-01.pem
    client_key: $T/pki/host-fin-db-01.key
    connect_timeout: 2s
    timeout: 5s
    retry_min: 1s
    retry_max: 2s"
    printf '%s\n' "$RULES" | ns_config
    ns_start_daemon
    approver_sign_in bob
    sudo_bg alice JITGATE_REASON="ledger check" -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    approver_act bob approve fin-db-01 "$id" "ok" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "sudo exit status"
    local status i
    for i in $(seq 1 100); do
        status="$("$JITGATECTL" --socket "$SOCK" audit status)"
        grep -qE "unsent: +none" <<<"$status" && break; sleep 0.1
    done
    expect_contains "$status" "store: +https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/events \(jsonl\)"
    expect_contains "$status" "unsent: +none"
    expect_contains "$status" "shipped: +up to seq [0-9]+"
    local shipped; shipped="$(sed -nE 's/.*shipped: +up to seq ([0-9]+).*/\1/p' <<<"$status" | head -n 1)"
    [ "${shipped:-0}" -ge 4 ] || ns_die "too few events shipped: '$shipped'"
    # the server holds every event of the host, each line as sent, in one unbroken chain
    expect_eq "$(srv_sql "select status, last_seq, problem from audit_chains where host='fin-db-01'")" \
        "ok|$shipped|" "the host's chain at the server"
    srv_sql "select line from audit_events where host='fin-db-01' order by seq" >"$T/exported.jsonl"
    expect_eq "$(wc -l <"$T/exported.jsonl")" "$shipped" "events at the server"
    expect_eq "$(srv_sql "select count(distinct seq), min(seq), max(seq) from audit_events where host='fin-db-01'")" \
        "$shipped|1|$shipped" "seq 1..$shipped, once each"
    "$JITGATECTL" audit verify "$T/exported.jsonl" >"$T/verify.out" 2>&1 ||
        { cat "$T/verify.out" >&2; ns_die "the server's copy of the events does not verify"; }
    expect_eq "$(srv_sql "select count(*) from audit_events where host='fin-db-01' and request_id='$id' and type='access.approved'")" \
        1 "the approval, with its request id"
    grep -q '"type":"command.finished"' "$T/exported.jsonl" || ns_die "the command's outcome is not at the server"
    expect_eq "$(srv_sql "select type from events where type like 'audit.%'")" \
        "audit.chain_started" "the server's own audit of the chain"
    # the last acknowledged (seq, hash), for the host's own certificate
    local hosts=(curl -sS --max-time 10 --cacert "$T/pki/ca.pem" --cert "$T/pki/host-fin-db-01.pem"
        --key "$T/pki/host-fin-db-01.key")
    local state last_hash
    state="$("${hosts[@]}" "https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/state")"
    last_hash="$(srv_sql "select hash from audit_events where host='fin-db-01' and seq=$shipped")"
    expect_eq "$(jq -r '"\(.host) \(.last_seq) \(.last_hash) \(.chain)"' <<<"$state")" \
        "fin-db-01 $shipped $last_hash ok" "GET /v1/audit/state"
    expect_eq "$("${hosts[@]}" -o /dev/null -w '%{http_code}' "https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/state?host=web-02")" \
        403 "another host's state"
    expect_eq "$(jq -c '[.restarts, .restart_at]' <<<"$state")" '[0,""]' "no restart in the state"
    # each batch said how far the spool went (Jitgate-Spool-Seq): everything is shipped, so the
    # host's last report is the last seq stored and nothing is owed
    expect_eq "$(jq -c '[.reported_seq, .backlog, (.reported_at | length > 0)]' <<<"$state")" "[$shipped,0,true]" \
        "the shipping backlog in the state"
    # the host's spool against the server's state, with the host's config and certificate
    "$JITGATECTL" --config "$CONFIG" audit verify --against-store >"$T/against.out" 2>&1 ||
        { cat "$T/against.out" >&2; ns_die "the spool does not match the server's state"; }
    expect_contains "$(cat "$T/against.out")" "OK: store holds up to seq $shipped hash $last_hash; spool matches"
    # an event_id with a NUL escape (correctly hashed) is refused for good (422), never 503
    canon="$(head -n 1 "$T/exported.jsonl" | jq -cS 'del(.hash) | .event_id = "nul\u0000id"')"
    forged="$(jq -cS --arg h "$(printf '%s' "$canon" | sha256sum | cut -d' ' -f1)" '. + {hash: $h}' <<<"$canon")"
    expect_eq "$("${hosts[@]}" -o "$T/nul.out" -w '%{http_code}' -H 'Content-Type: application/x-ndjson' \
        --data-binary "$forged"$'\n' "https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/events")" 422 "a NUL in event_id"
    expect_contains "$(cat "$T/nul.out")" "event_id holds a NUL"
    # a batch with another host's event, correctly hashed, is refused whole (nothing stored)
    local canon forged
    canon="$(head -n 1 "$T/exported.jsonl" | jq -cS 'del(.hash) | .host = "web-02" | .event_id = "forged-1"')"
    forged="$(jq -cS --arg h "$(printf '%s' "$canon" | sha256sum | cut -d' ' -f1)" '. + {hash: $h}' <<<"$canon")"
    expect_eq "$("${hosts[@]}" -o "$T/forged.out" -w '%{http_code}' -H 'Content-Type: application/x-ndjson' \
        --data-binary "$forged"$'\n' "https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/events")" 403 "another host's event"
    expect_contains "$(cat "$T/forged.out")" "web-02"
    expect_eq "$(srv_sql "select count(*) from audit_events where host='web-02' or event_id='forged-1'")" 0 \
        "nothing of a refused batch"
    # an edited line (its hash no longer matches) is refused, naming it
    local edited; edited="$(head -n 2 "$T/exported.jsonl" | tail -n 1 | sed 's/"time":"20/"time":"19/')"
    expect_eq "$("${hosts[@]}" -o "$T/edited.out" -w '%{http_code}' -H 'Content-Type: application/x-ndjson' \
        --data-binary "$edited"$'\n' "https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/events")" 422 "an edited event"
    expect_contains "$(cat "$T/edited.out")" "seq 2"
    # a stored event_id with other content (correctly hashed): a conflict, nothing stored
    canon="$(head -n 1 "$T/exported.jsonl" | jq -cS 'del(.hash) | .time = "2026-01-01T00:00:00.000Z"')"
    forged="$(jq -cS --arg h "$(printf '%s' "$canon" | sha256sum | cut -d' ' -f1)" '. + {hash: $h}' <<<"$canon")"
    expect_eq "$("${hosts[@]}" -o "$T/conflict.out" -w '%{http_code}' -H 'Content-Type: application/x-ndjson' \
        --data-binary "$forged"$'\n' "https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/events")" 409 "a conflicting duplicate"
    expect_eq "$(srv_sql "select count(*) from audit_events where host='fin-db-01'")" "$shipped" \
        "nothing of a conflicting batch"
    # the same line again, byte for byte, is a harmless duplicate
    expect_eq "$("${hosts[@]}" -H 'Content-Type: application/x-ndjson' --data-binary "$(head -n 1 "$T/exported.jsonl")"$'\n' \
        "https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/events" | jq -c '[.stored, .last_event_id, .duplicates]')" \
        "$(head -n 1 "$T/exported.jsonl" | jq -c '[1, .event_id, 1]')" "a resent event is acknowledged"
    # ... and the edited event marks the chain broken (in its own transaction), recorded as such
    expect_eq "$(srv_sql "select status from audit_chains where host='fin-db-01'")" broken "an edit breaks the chain"
    expect_contains "$(srv_sql "select problem from audit_chains where host='fin-db-01'")" \
        "\\(seq 1\\) came again with other content \\(edited\\)"
    expect_eq "$(srv_sql "select count(*) from events where type='audit.chain_edited' and host='fin-db-01'")" 1 \
        "the edit in the server's audit"
    expect_eq "$(srv_sql "select count(*) from events where type='audit.batch_refused' and host='fin-db-01'")" \
        3 "refused batches in the server's audit (403, the first 422 of the minute, 409)"
    # the same refusal in a loop: within the minute, counted, not each recorded (nor each an alert)
    local n
    for n in 1 2 3; do
        expect_eq "$("${hosts[@]}" -o /dev/null -w '%{http_code}' -H 'Content-Type: application/x-ndjson' \
            --data-binary "$edited"$'\n' "https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/events")" 422 "an edited event again"
    done
    expect_eq "$(srv_sql "select count(*) from events where type='audit.batch_refused' and host='fin-db-01'")" \
        3 "refused batches recorded within one minute"
    # the spool's last segment edited on the host: the comparison with the server fails
    local last_seg; last_seg="$(ls "$SPOOL"/seg-*.jsonl | tail -n 1)"
    sed -i '$ s/"user":"/"user":"x/' "$last_seg"
    if "$JITGATECTL" --config "$CONFIG" audit verify --against-store >"$T/against.out" 2>&1; then
        cat "$T/against.out" >&2; ns_die "an edited spool matched the server's state"
    fi
    expect_contains "$(cat "$T/against.out")" "FAILED"
    all_settled
}

# audit_host_start: the server on SQLite and the host daemon shipping its spool to it.
audit_host_start() {
    srv_sql() { sqlite3 "$T/srv.db" "$1"; }
    server_start srv "$T/srv.db"
    server_configure_host
    NS_AUDIT_EXTRA="  store:
    url: https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/events
    ca_file: $T/pki/ca.pem
    client_cert: $T/pki/host-fin-db-01.pem
    client_key: $T/pki/host-fin-db-01.key
    connect_timeout: 2s
    timeout: 5s
    batch_events: ${AUDIT_BATCH_EVENTS:-500}
    retry_min: 1s
    retry_max: 2s"
    printf '%s\n' "${AUDIT_RULES:-$RULES}" | ns_config
    ns_start_daemon
}

# audit_wait_unsent_none: until the host's audit status shows every event acknowledged.
audit_wait_unsent_none() {
    local i
    for i in $(seq 1 100); do
        "$JITGATECTL" --socket "$SOCK" audit status | has -E "unsent: +none" && return 0; sleep 0.1
    done
    "$JITGATECTL" --socket "$SOCK" audit status >&2
    ns_die "the host's events were not all acknowledged"
}

# A host whose spool is rolled back whole (segments, shipped.json and sent.json, as a VM
# snapshot would) cannot see it; the server does: a seq it acknowledged arrives again under a
# new event_id. Both events are kept, the host's chain is marked broken, and an alert goes out.
case_audit_rollback_flagged() {
    ns_setup
    webhook_peer_start
    hook_secret
    SERVER_CONFIG_EXTRA="webhooks:
  - name: siem
    url: https://127.0.0.1:$HOOK_PORT/hook
    format: json
    secret_file: $T/hook.secret
    ca_file: $T/pki/ca.pem
    events: [audit.chain_gap, audit.chain_fork]"
    audit_host_start
    audit_wait_unsent_none
    ns_stop_daemon
    mkdir "$T/snapshot"; cp -a "$SPOOL"/. "$T/snapshot/"
    ns_start_daemon
    audit_wait_unsent_none
    ns_stop_daemon
    local before; before="$(srv_sql "select last_seq from audit_chains where host='fin-db-01'")"
    expect_eq "$(srv_sql "select status from audit_chains where host='fin-db-01'")" ok "the chain before the rollback"
    rm -rf "${SPOOL:?}"/*; cp -a "$T/snapshot"/. "$SPOOL/"
    ns_start_daemon
    audit_wait_unsent_none
    local state; state="$(srv_sql "select status, problem from audit_chains where host='fin-db-01'")"
    expect_contains "$state" "^broken\|fork: seq [0-9]+ arrives again with a new event_id after seq $before"
    expect_eq "$(srv_sql "select count(*) > count(distinct seq) from audit_events where host='fin-db-01'")" 1 \
        "both versions of the reused seqs are kept"
    expect_eq "$(srv_sql "select count(*) from events where type='audit.chain_fork' and host='fin-db-01'")" 1 \
        "the fork in the server's audit"
    expect_syslog '^<81>.*audit.chain_fork host="fin-db-01"' "no alert on syslog"
    # the host's own view: its spool verifies (it cannot see the rollback) and every event is acknowledged
    "$JITGATECTL" audit verify "$SPOOL" >/dev/null || ns_die "the rolled-back spool should verify on the host"
    expect_contains "$(curl -sS --max-time 10 --cacert "$T/pki/ca.pem" --cert "$T/pki/host-fin-db-01.pem" \
        --key "$T/pki/host-fin-db-01.key" "https://127.0.0.1:$SRV_HOSTS_PORT/v1/audit/state")" '"chain":"broken"'
    # and a webhook notice to the receiver that asked for chain problems
    local i got=""
    for i in $(seq 1 200); do
        got="$(jq -r '.body | fromjson | select(.type == "audit.chain_fork") | "\(.chain.host) \(.chain.problem)"' \
            "$T/hooks.jsonl" 2>/dev/null || true)"
        [ -n "$got" ] && break; sleep 0.05
    done
    expect_contains "$got" "^fin-db-01 fork: seq [0-9]+ arrives again with a new event_id"
}

# kill -9 of the server while a host ships: nothing is lost and nothing is stored twice; the
# chain at the server is whole and the host ends with every event acknowledged.
case_audit_kill9_during_ingest() {
    ns_setup
    AUDIT_BATCH_EVENTS=4
    AUDIT_RULES='rules:
  - name: read-only
    match: {kind: sudo, commands: ["/usr/bin/echo *"]}
    action: allow'
    audit_host_start
    local i
    (for i in $(seq 1 30); do as_user alice sudo /usr/bin/echo "run $i" >/dev/null || exit 1; done) &
    local runs=$!
    for i in $(seq 1 200); do
        [ "$(srv_sql "select count(*) from audit_events" 2>/dev/null || echo 0)" -ge 12 ] && break; sleep 0.05
    done
    kill -KILL "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true
    local killed_at; killed_at="$(srv_sql "select count(*) from audit_events")"
    sleep 1
    sed -i "s/^  listen: 127.0.0.1:0$/  listen: 127.0.0.1:$SRV_HOSTS_PORT/" "$T/srv.yaml"
    "$SERVER_BIN" --config "$T/srv.yaml" serve --ports-file "$T/srv.ports2" >>"$T/srv.log" 2>&1 &
    SRV_PID=$!; ns_pids+=("$SRV_PID")
    for i in $(seq 1 100); do [ -s "$T/srv.ports2" ] && break; sleep 0.05; done
    [ -s "$T/srv.ports2" ] || ns_die "jitgate-server did not come back"
    wait "$runs" || ns_die "a sudo run failed"
    audit_wait_unsent_none
    local shipped
    shipped="$("$JITGATECTL" --socket "$SOCK" audit status | sed -nE 's/.*shipped: +up to seq ([0-9]+).*/\1/p' | head -n 1)"
    [ "$killed_at" -lt "$shipped" ] || ns_die "the server was killed too late ($killed_at of $shipped events stored)"
    expect_eq "$(srv_sql "select count(*), count(distinct event_id), count(distinct seq), min(seq), max(seq) from audit_events where host='fin-db-01'")" \
        "$shipped|$shipped|$shipped|1|$shipped" "every event once"
    expect_eq "$(srv_sql "select status, last_seq from audit_chains where host='fin-db-01'")" "ok|$shipped" "the chain"
    srv_sql "select line from audit_events where host='fin-db-01' order by seq" >"$T/exported.jsonl"
    "$JITGATECTL" audit verify "$T/exported.jsonl" >/dev/null || ns_die "the server's copy does not verify"
    expect_eq "$(grep -c '"type":"command.finished"' "$T/exported.jsonl")" 30 "every run's outcome"
}

# host_revocations HOST [AFTER]: GET /v1/revocations with HOST's certificate, at once (wait=0).
host_revocations() {
    curl -sS --max-time 10 --cacert "$T/pki/ca.pem" --cert "$T/pki/host-$1.pem" --key "$T/pki/host-$1.key" \
        "https://127.0.0.1:$SRV_HOSTS_PORT/v1/revocations?after=${2:-0}&wait=0"
}

# A grant revoked at the server (web UI, and the CLI for another host's grant) ends on the host
# within seconds: its live session is ended and recorded as session.ended_by_revoke, the next
# sudo finds no grant, and the host's audit spool says who revoked it at the service. Another
# host's revocation is never served to this host, and does not touch its grant.
case_grant_revoked_at_server() {
    local RULES='sessions:
  warn_before: 2s
  grace: 1s
rules:
  - name: revocable
    match: {kind: sudo}
    scope: session
    ttl: 15m'
    # Polls longer than the case: a revocation that reaches the host within the deadlines below
    # can only have come through a wake-up, never through a poll running out.
    local SRV_POLL_WAIT=55s
    start
    approver_sign_in bob
    host_cert fin-db-02
    sudo_bg alice -- /usr/bin/sleep 300
    local id; id="$(server_request_ids 1)"
    approver_act bob approve fin-db-01 "$id" "ok" >/dev/null
    local i
    for i in $(seq 1 200); do [ "$(journal_count access.approved "\"request_id\":\"$id\"")" -ge 1 ] && break; sleep 0.05; done
    expect_journal access.approved "\"request_id\":\"$id\""
    # the live grant answers the next sudo without a new request
    local rc=0; as_user alice sudo -n /usr/bin/whoami >"$T/out2" 2>"$T/err2" || rc=$?
    expect_eq "$rc" 0 "sudo -n under the live session grant"
    expect_eq "$(cat "$T/out2")" root "command output"
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "the approved session did not run"

    # Another host's grant, revoked with the CLI: fin-db-02 files and bob approves.
    local other="R-OTHER02"
    local code
    code="$(curl -sS -o "$T/file.json" -w '%{http_code}' --cacert "$T/pki/ca.pem" \
        --cert "$T/pki/host-fin-db-02.pem" --key "$T/pki/host-fin-db-02.key" \
        -H 'Content-Type: application/json' --data-binary @- \
        "https://127.0.0.1:$SRV_HOSTS_PORT/v1/requests" <<JSON
{"protocol":1,"id":"$other","nonce":"q1xJr0b3c8Rk6fYgZ0HkK5P4n2mW9sVtLqE1dA7uC3o","host":"fin-db-02",
 "host_environment":"production","host_tags":["finance"],
 "requester":{"user":"mallory","uid":2005},"account":{"user":"mallory","uid":2005},
 "kind":"sudo","scope":"session","action":{"command":"","argv":[],"display":"","runas":"root","runas_group":"root",
 "cwd":"/","chroot":"","program":"","env":[],"env_code_loading":[],"tty":"","service":"","remote_host":"","cmd_sha256":""},
 "reason":"","ticket":"","rule":"x","approvals_needed":1,"approver_groups":[],"ttl_s":600,"timeout_s":600}
JSON
)"
    expect_eq "$code" 201 "fin-db-02 files a request"
    local cli=("$SERVER_BIN" --config "$T/srv.yaml" grants revoke)
    # not approved yet: refused, nothing stored
    rc=0; "${cli[@]}" --request "$other" >"$T/cli.out" 2>&1 || rc=$?
    expect_eq "$rc" 1 "revoking a pending request"
    expect_contains "$(cat "$T/cli.out")" "has no grant to revoke: it is pending"
    rc=0; "${cli[@]}" --request R-NOSUCH1 >"$T/cli.out" 2>&1 || rc=$?
    expect_eq "$rc" 1 "revoking an unknown request"
    expect_contains "$(cat "$T/cli.out")" "no request R-NOSUCH1"
    approver_act bob approve fin-db-02 "$other" "ok" >/dev/null
    # a reason with control characters: refused, nothing stored
    rc=0; "${cli[@]}" --request "$other" --reason $'host\e[2J retired' >"$T/cli.out" 2>&1 || rc=$?
    expect_eq "$rc" 2 "a reason with control characters"
    expect_contains "$(cat "$T/cli.out")" "no control characters"
    expect_not_contains "$(host_revocations fin-db-02)" "$other"
    expect_contains "$("${cli[@]}" --request "$other" --reason "host retired" 2>&1)" \
        "revoked grant G-[0-9a-f]+ of request $other"
    # fin-db-02 had not fetched the grant: its status is now final without it
    local st; st="$(curl -sS --max-time 10 --cacert "$T/pki/ca.pem" --cert "$T/pki/host-fin-db-02.pem" \
        --key "$T/pki/host-fin-db-02.key" "https://127.0.0.1:$SRV_HOSTS_PORT/v1/requests/$other?wait=0")"
    expect_contains "$st" '"status":"cancelled"'
    expect_contains "$st" '"revoked":true'
    expect_not_contains "$st" '"grant"'
    expect_contains "$("${cli[@]}" --request "$other" 2>&1)" "was revoked already, by admin:root; nothing changed"
    # served to fin-db-02 only
    expect_contains "$(host_revocations fin-db-02)" "\"request_id\":\"$other\""
    expect_contains "$(host_revocations fin-db-02)" '"revoked_by":"admin:root"'
    expect_not_contains "$(host_revocations fin-db-01)" "$other"
    expect_eq "$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$T/pki/ca.pem" \
        --cert "$T/pki/host-fin-db-01.pem" --key "$T/pki/host-fin-db-01.key" \
        "https://127.0.0.1:$SRV_HOSTS_PORT/v1/revocations?after=x&wait=0")" 400 "a cursor that is not digits"
    # this host's grant still answers
    rc=0; as_user alice sudo -n /usr/bin/whoami >"$T/out2" 2>"$T/err2" || rc=$?
    expect_eq "$rc" 0 "sudo -n after another host's revocation"
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "another host's revocation ended this host's session"

    # The request page offers the revoke form; bob revokes there (CSRF-protected like approve).
    expect_contains "$(web bob "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id")" "/r/fin-db-01/$id/revoke"
    expect_eq "$(web bob -o /dev/null -w '%{http_code}' --data-urlencode "comment=x" \
        -H "Origin: https://127.0.0.1:$SRV_WEB_PORT" "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id/revoke")" 403 \
        "a revocation without a CSRF token"
    expect_contains "$(approver_act bob revoke fin-db-01 "$id" "incident closed")" "revoked grant G-[0-9a-f]+ of request $id"
    # within seconds: the session ends, and the host says who revoked it at the service
    local deadline=$((SECONDS + 15))
    while [ $SECONDS -lt $deadline ]; do kill -0 "$SUDO_PID" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$SUDO_PID" 2>/dev/null && ns_die "the session under the revoked grant still runs: $(cat "$T/daemon.log")"
    sudo_wait
    expect_journal grant.revoked "\"reason\":\"incident closed\".*\"request_id\":\"$id\".*\"revoked_at_service\":true.*\"revoked_by\":\"bob\""
    expect_journal grant.revoked '"via":"approval_service"'
    expect_journal session.ended_by_revoke "\"request_id\":\"$id\".*\"revoked_by\":\"bob\""
    # the grant no longer answers: sudo -n files a new request and is denied
    rc=0; as_user alice sudo -n /usr/bin/whoami >"$T/out2" 2>"$T/err2" || rc=$?
    expect_eq "$rc" 1 "sudo -n after the revocation"
    expect_eq "$(cat "$T/out2")" "" "the command did not run"
    # revoking again changes nothing; the page shows the revocation
    expect_contains "$(approver_act bob revoke fin-db-01 "$id")" "was revoked already, by bob"
    expect_contains "$(web bob "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id")" "revoked"
    # the server's audit: who, when, why
    expect_contains "$(sqlite3 "$T/srv.db" "select revoked_by, via, reason from revocations where request_id='$id'")" \
        "bob\|web\|incident closed"
    expect_contains "$(sqlite3 "$T/srv.db" "select actor from events where request_id='$other' and type='grant.revoked'")" \
        "admin:root"
    expect_eq "$(sqlite3 "$T/srv.db" "select count(*) from events where request_id='$id' and type='grant.revoked'")" 1 \
        "one grant.revoked at the server"

    # The request that sudo -n filed is approved, and the host caches its grant; the CLI (another
    # process, no wake-up through the database on SQLite) revokes it, and the host learns of it
    # within seconds all the same (each replica looks at the newest revocation every second).
    local again; again="$(server_request_ids 1)"
    approver_act bob approve fin-db-01 "$again" "ok" >/dev/null
    for i in $(seq 1 200); do
        rc=0; as_user alice sudo -n /usr/bin/whoami >"$T/out2" 2>"$T/err2" || rc=$?
        [ "$rc" = 0 ] && break
        sleep 0.05
    done
    expect_eq "$rc" 0 "sudo -n under the grant of the request it filed"
    expect_contains "$("${cli[@]}" --request "$again" --reason "second thoughts" 2>&1)" "revoked grant G-[0-9a-f]+ of request $again"
    deadline=$((SECONDS + 15))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(journal_count grant.revoked "\"request_id\":\"$again\"")" -ge 1 ] && break
        sleep 0.05
    done
    expect_journal grant.revoked "\"request_id\":\"$again\".*\"revoked_by\":\"admin:root\""
    rc=0; as_user alice sudo -n /usr/bin/whoami >"$T/out2" 2>"$T/err2" || rc=$?
    expect_eq "$rc" 1 "sudo -n after the CLI's revocation"
    daemon_alive || { cat "$T/daemon.log" >&2; ns_die "jitgated died"; }
    kill -0 "$SRV_PID" 2>/dev/null || ns_die "jitgate-server died"
}

case_revoked_host_refused() {
    ns_setup
    SERVER_HOSTS_EXTRA="  client_crl: $T/pki/ca.crl"
    start_in_namespace
    approver_sign_in bob
    if curl -sS -o /dev/null --cacert "$T/pki/ca.pem" --cert "$T/pki/revoked-client.pem" \
        --key "$T/pki/revoked-client.key" "https://127.0.0.1:$SRV_HOSTS_PORT/v1/requests/R-AAAA01?wait=0" 2>/dev/null; then
        ns_die "a revoked host certificate was served"
    fi
    expect_contains "$(cat "$T/srv.log")" "client certificate refused from 127.0.0.1: CN=revokedhost serial [0-9A-F]+ at chain depth 0: certificate revoked"
    expect_eq "$(curl -sS -o /dev/null -w '%{http_code}' --cacert "$T/pki/ca.pem" --cert "$T/pki/host-fin-db-01.pem" \
        --key "$T/pki/host-fin-db-01.key" "https://127.0.0.1:$SRV_HOSTS_PORT/v1/requests/R-AAAA01?wait=0")" 404 \
        "a good host certificate with the CRL on (an unknown request)"
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    approver_act bob approve fin-db-01 "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "sudo through a server that checks the CRL"
    # fail closed: a missing CRL, then an expired one
    sed "s|client_crl: .*|client_crl: $T/pki/missing.crl|" "$T/srv.yaml" >"$T/bad.yaml"
    local out
    if out="$("$SERVER_BIN" --config "$T/bad.yaml" check-config 2>&1)"; then ns_die "check-config took a missing CRL"; fi
    expect_contains "$out" "hosts.client_crl: $T/pki/missing.crl: cannot read it"
    (cd "$T/pki" && printf '[ca]\ndefault_ca=c\n[c]\ndatabase=ca.db/index.txt\ncrlnumber=ca.db/crlnumber\ncertificate=ca.pem\nprivate_key=ca.key\ndefault_md=sha256\n' >crl.cnf &&
        openssl ca -config crl.cnf -gencrl -crlsec 1 -out expired.crl 2>/dev/null && chmod 0644 expired.crl) ||
        ns_die "cannot make an expired CRL"
    sleep 2
    sed "s|client_crl: .*|client_crl: $T/pki/expired.crl|" "$T/srv.yaml" >"$T/bad.yaml"
    if out="$("$SERVER_BIN" --config "$T/bad.yaml" check-config 2>&1)"; then ns_die "check-config took an expired CRL"; fi
    expect_contains "$out" "expired.crl.*has expired"
    sed -i "s|^  listen: 127.0.0.1:[0-9]*$|  listen: 127.0.0.1:0|" "$T/bad.yaml"
    if out="$(timeout 20 "$SERVER_BIN" --config "$T/bad.yaml" serve 2>&1)"; then ns_die "serve started with an expired CRL"; fi
    expect_contains "$out" "expired.crl.*has expired"
    all_settled
}

case_server_restart_keeps_requests() {
    start
    approver_sign_in bob
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    # the server dies mid-poll and comes back on the same database and ports
    kill -KILL "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true
    local port="$SRV_HOSTS_PORT"
    sed -i "s/^  listen: 127.0.0.1:0$/  listen: 127.0.0.1:$port/" "$T/srv.yaml"
    "$SERVER_BIN" --config "$T/srv.yaml" serve --ports-file "$T/srv.ports2" >>"$T/srv.log" 2>&1 &
    SRV_PID=$!; ns_pids+=("$SRV_PID")
    local i; for i in $(seq 1 100); do [ -s "$T/srv.ports2" ] && break; sleep 0.05; done
    [ -s "$T/srv.ports2" ] || ns_die "jitgate-server did not come back"
    approver_act bob approve fin-db-01 "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "sudo exit status after the server restarted"
    all_settled
}

# Two replicas on one real PostgreSQL 15 behind a real load balancer (haproxy, TCP: TLS stays
# end to end). The host's poll sits on replica 1; the approval is made on replica 2, whose
# commit wakes replica 1 (LISTEN/NOTIFY). Then replica 1 is killed mid-poll: the host's poll
# fails over to replica 2 and the next approval goes through there. Nothing is lost.
case_postgres_ha() {
    ns_setup
    bash "$(dirname "$0")/../support/pg_scratch.sh" start "$T/pg" >/dev/null || ns_die "PostgreSQL did not start"
    ns_cleanup_hooks+=("bash '$(dirname "$0")/../support/pg_scratch.sh' stop '$T/pg'")
    local conninfo; conninfo="$(cat "$T/pg/conninfo.tcp")"
    server_start srv1 "$conninfo"
    local hosts1="$SRV_HOSTS_PORT" pid1="$SRV_PID"
    local web2; web2="$(free_port)"
    server_start srv2 "$conninfo" "$web2"
    local hosts2="$SRV_HOSTS_PORT"
    # replica 2 is the balancer's backup: every host connection goes to replica 1 while it is up
    local lb; lb="$(free_port)"
    cat >"$T/haproxy.cfg" <<CFG
defaults
  mode tcp
  timeout connect 2s
  timeout client 90s
  timeout server 90s
frontend hosts
  bind 127.0.0.1:$lb
  default_backend replicas
backend replicas
  default-server inter 200ms fall 1 rise 1 check
  server r1 127.0.0.1:$hosts1
  server r2 127.0.0.1:$hosts2 backup
CFG
    haproxy -f "$T/haproxy.cfg" -db >>"$T/haproxy.log" 2>&1 &
    ns_pids+=("$!")
    local i; for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$lb) 2>/dev/null && break; sleep 0.05; done
    SRV_HOSTS_PORT="$lb"
    # Polls longer than the case: an answer before the poll's end can only come from a wake-up.
    SRV_POLL_WAIT=55s server_configure_host
    printf '%s\n' "$RULES" | ns_config
    ns_start_daemon
    NS_SHOW_ON_FAIL="$T/srv1.log $T/srv2.log $T/daemon.log $T/err $T/haproxy.log"

    approver_sign_in bob # through replica 1's web UI; the session is a database row
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    # approve on replica 2 (same public URL, another listener)
    local csrf; csrf="$(csrf_of bob "/r/fin-db-01/$id")"
    local approved_at=$SECONDS
    web bob -o /dev/null --data-urlencode "comment=ok" --data-urlencode "csrf=$csrf" \
        -H "Origin: https://127.0.0.1:$SRV_WEB_PORT" "https://127.0.0.1:$web2/r/fin-db-01/$id/approve"
    sudo_wait; expect_eq "$RC" 0 "sudo exit status (approved on the other replica)"
    # not a speed test: without the wake-up the poll parked on replica 1 would run its 55 s
    [ $((SECONDS - approved_at)) -lt 30 ] || ns_die "replica 1 did not wake up on replica 2's approval"
    expect_contains "$(cat "$T/srv1.log" "$T/srv2.log")" "hosts on"

    # a revocation made on replica 2 reaches the host, whose revocation poll is parked on replica 1
    csrf="$(csrf_of bob "/r/fin-db-01/$id")"
    web bob -o /dev/null --data-urlencode "comment=ha" --data-urlencode "csrf=$csrf" \
        -H "Origin: https://127.0.0.1:$SRV_WEB_PORT" "https://127.0.0.1:$web2/r/fin-db-01/$id/revoke"
    for i in $(seq 1 300); do [ "$(journal_count grant.revoked "\"request_id\":\"$id\"")" -ge 1 ] && break; sleep 0.05; done
    expect_journal grant.revoked "\"reason\":\"ha\".*\"request_id\":\"$id\".*\"revoked_at_service\":true"
    expect_eq "$(psql "$(cat "$T/pg/conninfo")" -Atc "select revoked_by from revocations where request_id='$id'")" bob \
        "the revocation, stored once"

    # replica 1 dies while the next poll is parked on it
    sudo_bg alice -- /usr/bin/id -u
    id=""
    for i in $(seq 1 100); do
        id="$(web bob "https://127.0.0.1:$web2/" | grep -oE 'R-[0-9A-Z]{4,32}' | sort -u | head -n1 || true)"
        [ -n "$id" ] && break
        sleep 0.05
    done
    [ -n "$id" ] || ns_die "the second request did not reach the server"
    kill -KILL "$pid1"
    csrf="$(web bob "https://127.0.0.1:$web2/r/fin-db-01/$id" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n1)"
    web bob -o /dev/null --data-urlencode "comment=ok" --data-urlencode "csrf=$csrf" \
        -H "Origin: https://127.0.0.1:$SRV_WEB_PORT" "https://127.0.0.1:$web2/r/fin-db-01/$id/approve"
    sudo_wait; expect_eq "$RC" 0 "sudo exit status (replica 1 died mid-poll)"
    expect_eq "$(cat "$T/out")" 0 "command output"
    # each request was approved exactly once, by one grant
    local grants
    grants="$(psql "$(cat "$T/pg/conninfo")" -Atc "select count(*) from events where type='grant.signed'")" ||
        ns_die "cannot read the server's events"
    expect_eq "$grants" 2 "grants signed"
    expect_eq "$(psql "$(cat "$T/pg/conninfo")" -Atc "select count(*) from requests where status='approved'")" 2 \
        "requests approved"
}

# held_request_id: the id of the request the held sudo was told to have approved ("Approve at
# https://…/r/fin-db-01/ID" on its stderr), as the user would pass it on to an approver.
held_request_id() {
    local i url=""
    for i in $(seq 1 200); do
        url="$(grep -oE "Approve at https://127\.0\.0\.1:$SRV_WEB_PORT/r/fin-db-01/R-[0-9A-Z]{4,32}" "$T/err" 2>/dev/null | head -n1 || true)"
        [ -n "$url" ] && break
        kill -0 "$SUDO_PID" 2>/dev/null || { cat "$T/err" >&2; ns_die "sudo ended before it was held"; }
        sleep 0.05
    done
    [ -n "$url" ] || { cat "$T/err" >&2; ns_die "sudo did not say where to approve"; }
    printf '%s\n' "${url##*/}"
}

# The web UI in a real headless Chromium (tests/support/browser.py): bob signs in through the
# IdP's login page by typing, sees the exact command and approves; the held sudo proceeds.
case_browser_approve() {
    start
    browser_start
    sudo_bg alice JITGATE_REASON="month-end close" -- /usr/bin/whoami
    local id out; id="$(held_request_id)"
    out="$(browser_act approve bob fin-db-01 "$id" "/usr/bin/whoami" "checked in the browser")" ||
        ns_die "bob could not approve $id in Chromium"
    expect_contains "$out" "Done"
    expect_contains "$out" "approved"
    sudo_wait; expect_eq "$RC" 0 "sudo exit status"
    expect_eq "$(cat "$T/out")" root "command output"
    expect_contains "$(cat "$T/err")" "approved by bob"
    expect_journal access.approved "\"request_id\":\"$id\""
    all_settled
}

case_browser_deny() {
    start
    browser_start
    sudo_bg alice -- /usr/bin/ls -ld /root
    local id out; id="$(held_request_id)"
    out="$(browser_act deny bob fin-db-01 "$id" "/usr/bin/ls -ld /root" "not during the close")" ||
        ns_die "bob could not deny $id in Chromium"
    expect_contains "$out" "Done"
    expect_contains "$out" "denied"
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
    expect_eq "$(cat "$T/out")" "" "the command did not run"
    expect_contains "$(cat "$T/err")" "not during the close"
    expect_journal access.denied "\"request_id\":\"$id\""
    all_settled
}

case_browser_self_approval_refused() {
    # dave may approve for fin-* through ops (as in self_approval_refused), but not his own request:
    # the page in Chromium says so and offers no form, and an approval posted anyway is refused.
    SERVER_POLICY_EXTRA='  - name: ops-too
    hosts: ["fin-*"]
    approver_groups: [ops]'
    start
    browser_start
    sudo_bg dave -- /usr/bin/whoami
    local id out; id="$(held_request_id)"
    out="$(browser_act self-approve dave fin-db-01 "$id" "/usr/bin/whoami")" ||
        ns_die "Chromium did not show dave's self-approval refused"
    expect_contains "$out" "cannot decide your own request"
    sleep 0.5
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "sudo finished after a self-approval"
    expect_no_journal access.approved
    approver_sign_in bob
    approver_act bob deny fin-db-01 "$id" "no" >/dev/null
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
    all_settled
}

# Break-glass review in Chromium: dave breaks the glass on fin-db-01; the host ships the event
# and the server opens a review item. dave, a reviewer too (ops), sees no close form on his own
# use and a close posted anyway is refused; erin (sox-auditors) reads what was run and closes it.
case_browser_break_glass_review() {
    SERVER_CONFIG_EXTRA="audit:
  auditor_groups: [sox-auditors]
  break_glass_reviewer_groups: [sox-auditors, ops]
  break_glass_review_within: 1h"
    ns_setup
    audit_host_start
    browser_start
    sudo_fg dave JITGATE_BREAK_GLASS="payments down, INC-4711" -- -n /usr/bin/whoami; expect_eq "$RC" 0 "break-glass"
    audit_wait_unsent_none
    local id; id="$(srv_sql "select event_id from break_glass_reviews where host='fin-db-01' and user_name='dave'")"
    [ -n "$id" ] || ns_die "no review item for dave's break-glass use"
    expect_eq "$(srv_sql "select count(*) from break_glass_reviews")" 1 "one review item"
    expect_eq "$(srv_sql "select status from break_glass_reviews where event_id='$id'")" open "the item before review"
    expect_eq "$(srv_sql "select due_at - opened_at from break_glass_reviews where event_id='$id'")" 3600 \
        "due after audit.break_glass_review_within"
    local out
    out="$(browser_act self-review dave fin-db-01 "$id" "/usr/bin/whoami")" ||
        ns_die "Chromium did not show dave's self-review refused"
    expect_contains "$out" "your own break-glass use"
    expect_eq "$(srv_sql "select status from break_glass_reviews where event_id='$id'")" open "after the self-review"
    out="$(browser_act review erin fin-db-01 "$id" "/usr/bin/whoami" "checked INC-4711: whoami only")" ||
        ns_die "erin could not close the review in Chromium"
    expect_contains "$out" "The review is closed"
    expect_eq "$(srv_sql "select status, reviewer, note from break_glass_reviews where event_id='$id'")" \
        "closed|erin|checked INC-4711: whoami only" "the closed item"
    expect_eq "$(srv_sql "select count(*) from events where type='break_glass.reviewed' and actor='erin'")" 1 \
        "the review in the server's audit"
    all_settled
}

# The evidence report of real activity: alice's sudo approved by bob and another denied by bob,
# shipped by the real jitgated to the real server. `jitgate-server report --format json` shows
# both, field by field; erin (sox-auditors) opens the same period's report in Chromium from the
# web UI (/audit/report), and her reading is in the server's audit.
case_report_approved_and_denied() {
    SERVER_CONFIG_EXTRA="audit:
  auditor_groups: [sox-auditors]"
    ns_setup
    audit_host_start
    browser_start
    approver_sign_in bob
    sudo_bg alice JITGATE_REASON="ledger check" -- /usr/bin/whoami
    local approved; approved="$(held_request_id)"
    approver_act bob approve fin-db-01 "$approved" "fine" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "the approved sudo"
    sudo_bg alice JITGATE_REASON="peek at root" -- /usr/bin/ls -ld /root
    local denied; denied="$(held_request_id)"
    [ "$denied" != "$approved" ] || ns_die "the second sudo was not held"
    approver_act bob deny fin-db-01 "$denied" "not during the close" >/dev/null
    sudo_wait; expect_eq "$RC" 1 "the denied sudo"
    audit_wait_unsent_none
    local from to
    from="$(date -u -d yesterday +%F)"; to="$(date -u -d tomorrow +%F)"
    "$SERVER_BIN" --config "$T/srv.yaml" report --from "$from" --to "$to" --format json >"$T/report.json" 2>"$T/report.err" ||
        { cat "$T/report.err" >&2; ns_die "jitgate-server report failed"; }
    # host, decision, the host's outcome, requester, user, command, reason, approvals (approver/via/comment),
    # decided by, why, the server's status, what ran and its exit status
    local fields='[.host, .decision, .outcome, .requester, .user, .command, .reason, ([.approvals[] | "\(.approver)/\(.via)/\(.comment)"] | join(",")), .decided_by, .decision_reason, .server_status, .result_type, .status_type, (.exit_status | tostring)] | join("|")'
    expect_eq "$(jq -r --arg id "$approved" ".actions[] | select(.request_id == \$id) | $fields" "$T/report.json")" \
        "fin-db-01|approved||alice|alice|/usr/bin/whoami|ledger check|bob/web/fine|||approved|command|exit|0" \
        "the approved action"
    expect_eq "$(jq -r --arg id "$denied" ".actions[] | select(.request_id == \$id) | $fields" "$T/report.json")" \
        "fin-db-01|denied|denied|alice|alice|/usr/bin/ls|peek at root||bob|not during the close|denied|||null" \
        "the denied action"
    expect_eq "$(jq -r '[.summary.actions, .summary.approved, .summary.denials] | join(" ")' "$T/report.json")" "2 1 1" \
        "the summary"
    # the approval came from the approval service, and the service's record of it matches the
    # host's, field by field (the real request body against the real events)
    expect_eq "$(jq -r --arg id "$approved" '.actions[] | select(.request_id == $id) | [.approval_source, .service_check, (.service_mismatch | join(","))] | join("|")' "$T/report.json")" \
        "service|ok|" "the approval's cross-check with the service"
    expect_eq "$(jq -r '[.exceptions[].kind] | join(",")' "$T/report.json")" "" "no exception"
    # The same period in the web UI, in Chromium, by an auditor.
    local out
    out="$(python3 "$BROWSER_PY" report --driver "$BROWSER_DRIVER" --dir "$T" --web "https://127.0.0.1:$SRV_WEB_PORT" \
        --user erin --idp-json "$IDP_DIR/idp.json" --host fin-db-01 --id "from=$from&to=$to&hosts=fin-*&format=html" \
        --expect-command /usr/bin/whoami --expect-text "$approved" --expect-text "$denied" \
        --expect-text "/usr/bin/ls" --expect-text "ledger check" --expect-text "not during the close")" ||
        ns_die "erin could not read the report in Chromium"
    expect_contains "$out" "alice"
    expect_eq "$(srv_sql "select actor, json_extract(detail, '\$.format'), json_extract(detail, '\$.hosts') from events where type='report.viewed'")" \
        "erin|html|fin-*" "the auditor's reading in the server's audit"
    # Not for an approver: bob gets 403.
    expect_eq "$(web bob -o /dev/null -w '%{http_code}' "https://127.0.0.1:$SRV_WEB_PORT/audit/report?from=$from&to=$to")" \
        403 "the report for an approver"
    all_settled
}

# A break-glass use nobody reviews within audit.break_glass_review_within: the server raises
# break_glass.review_overdue once, on syslog at alert, in its own audit and as a signed webhook
# notice to the receiver that lists it. (Due after 1 minute, the least allowed; the server looks
# every 30 s, so this case takes up to 1.5 minutes.)
case_break_glass_review_overdue_alerts() {
    ns_setup
    webhook_peer_start
    hook_secret
    SERVER_CONFIG_EXTRA="audit:
  auditor_groups: [sox-auditors]
  break_glass_review_within: 1m
webhooks:
  - name: siem
    url: https://127.0.0.1:$HOOK_PORT/hook
    format: json
    secret_file: $T/hook.secret
    ca_file: $T/pki/ca.pem
    events: [break_glass.review_overdue]"
    audit_host_start
    sudo_fg dave JITGATE_BREAK_GLASS="payments down, INC-4711" -- -n /usr/bin/whoami; expect_eq "$RC" 0 "break-glass"
    audit_wait_unsent_none
    local id; id="$(srv_sql "select event_id from break_glass_reviews where host='fin-db-01' and user_name='dave'")"
    [ -n "$id" ] || ns_die "no review item for dave's break-glass use"
    expect_eq "$(srv_sql "select count(*) from events where type='break_glass.review_overdue'")" 0 "not overdue yet"
    local i got=""
    for i in $(seq 1 1000); do
        got="$(jq -r '.body | fromjson | select(.type == "break_glass.review_overdue") |
            "\(.review.host) \(.review.user) \(.review.event_id) \(.review.link)"' "$T/hooks.jsonl" 2>/dev/null || true)"
        [ -n "$got" ] && break; sleep 0.1
    done
    expect_eq "$got" "fin-db-01 dave $id https://127.0.0.1:$SRV_WEB_PORT/audit/reviews/fin-db-01/$id" "the overdue notice"
    expect_syslog '^<81>.*break_glass.review_overdue host="fin-db-01"' "no alert on syslog"
    expect_eq "$(srv_sql "select count(*) from events where type='break_glass.review_overdue'")" 1 "recorded once"
    expect_eq "$(srv_sql "select status, overdue_alerted_at > 0 from break_glass_reviews where event_id='$id'")" \
        "open|1" "still open, marked alerted"
    all_settled
}

# A session older than web.session_ttl is refused: its approval is sent to sign in and changes
# nothing. The old cookie is sent by hand (a browser, like curl's jar, drops it at its Max-Age;
# the server must refuse it anyway).
case_expired_session() {
    local ttl=4
    SERVER_WEB_EXTRA="  session_ttl: ${ttl}s"
    start
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(held_request_id)"
    approver_sign_in bob
    local cookie csrf url="https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id" page code
    cookie="$(awk -F '\t' '$6 == "__Host-jitgate_session" { print $7 }' "$T/jar.bob")"
    [ -n "$cookie" ] || ns_die "no session cookie in bob's jar"
    csrf="$(csrf_of bob "/r/fin-db-01/$id")"
    [ -n "$csrf" ] || ns_die "no CSRF token on the request page while the session is live"
    # the same cookie, by hand, works while the session lives
    page="$(curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -H "Cookie: __Host-jitgate_session=$cookie" "$url")"
    expect_contains "$page" "/usr/bin/whoami"
    sleep $((ttl + 1))
    code="$(curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -o "$T/expired.html" -w '%{http_code}' \
        -H "Cookie: __Host-jitgate_session=$cookie" -H "Origin: https://127.0.0.1:$SRV_WEB_PORT" \
        --data-urlencode "comment=late" --data-urlencode "csrf=$csrf" "$url/approve")"
    expect_eq "$code" 403 "an approval with an expired session"
    expect_contains "$(cat "$T/expired.html")" "Your session has ended; nothing was changed"
    expect_contains "$(cat "$T/expired.html")" "/login\?return_to="
    # the request page itself now sends the old session to sign in
    code="$(curl -sS --max-time 10 --cacert "$T/pki/ca.pem" -o /dev/null -w '%{http_code} %{redirect_url}' \
        -H "Cookie: __Host-jitgate_session=$cookie" "$url")"
    expect_contains "$code" "^30[23] https://127\.0\.0\.1:$SRV_WEB_PORT/login\?return_to="
    sleep 0.3
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "sudo finished after an approval with an expired session"
    expect_no_journal access.approved
    expect_contains "$(web bob "https://127.0.0.1:$SRV_WEB_PORT/" -o /dev/null -w '%{http_code}')" "^30[23]$"
    approver_sign_in bob
    expect_contains "$(web bob "$url")" "Approvals</th><td>0 of 1"
    approver_act bob deny fin-db-01 "$id" "too late" >/dev/null
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
    all_settled
}

WEBHOOK_PEER_BIN="$JITGATE_BUILD/tests/support/jitgate-test-webhook-peer"

# webhook_peer_start: jitgate-test-webhook-peer on 127.0.0.1 with the run's server certificate;
# webhook bodies go to $T/hooks.jsonl, ticket answers come from $T/tickets/NUMBER.json. Sets
# HOOK_PORT.
webhook_peer_start() {
    server_pki
    mkdir -p "$T/tickets"
    : >"$T/hooks.jsonl"
    rm -f "$T/hook.port"
    "$WEBHOOK_PEER_BIN" --cert "$T/pki/server.pem" --key "$T/pki/server.key" --port-file "$T/hook.port" \
        --hooks "$T/hooks.jsonl" --tickets "$T/tickets" >>"$T/hook.out" 2>&1 &
    local pid=$! i
    ns_pids+=("$pid")
    for i in $(seq 1 100); do
        [ -s "$T/hook.port" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$T/hook.out" >&2; ns_die "the webhook peer exited at start"; }
        sleep 0.05
    done
    [ -s "$T/hook.port" ] || ns_die "the webhook peer did not start listening"
    HOOK_PORT="$(cat "$T/hook.port")"
}

# hook_secret: a webhook secret file as an admin makes it (root-owned, mode 0600).
hook_secret() {
    (umask 077 && openssl rand -hex 32 >"$T/hook.secret") || ns_die "cannot make the webhook secret"
}

# wait_hook TYPE ID: waits until the peer received a notice of TYPE about request ID.
wait_hook() {
    local type="$1" id="$2" i
    for i in $(seq 1 200); do
        [ "$(jq -r --arg t "$type" --arg id "$id" \
            '.body | fromjson | select(.type == $t and .request.id == $id) | .type' "$T/hooks.jsonl" | grep -c . || true)" -ge 1 ] &&
            return 0
        sleep 0.05
    done
    cat "$T/hooks.jsonl" >&2
    ns_die "the webhook receiver got no $type notice for $id"
}

# db_query SQL: one query on the server's SQLite database.
db_query() { sqlite3 -batch -noheader "$T/srv.db" "$1"; }

case_webhooks_signed() {
    ns_setup
    webhook_peer_start
    hook_secret
    SERVER_CONFIG_EXTRA="webhooks:
  - name: siem
    url: https://127.0.0.1:$HOOK_PORT/hook
    format: json
    secret_file: $T/hook.secret
    ca_file: $T/pki/ca.pem
    events: [request.filed, request.approved]"
    start_in_namespace
    approver_sign_in bob
    sudo_bg alice JITGATE_REASON="rotate the logs" -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    wait_hook request.filed "$id"
    approver_act bob approve fin-db-01 "$id" "fine" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "sudo exit status"
    expect_eq "$(cat "$T/out")" root "command output"
    wait_hook request.approved "$id"

    # Every delivery verifies with the shared secret, as docs/webhooks.md §3 tells a receiver to
    # check it: HMAC-SHA256(secret, "<t>.<raw body>"), t within 5 minutes, the delivery header
    # naming the body's delivery_id.
    local secret n i line sig t v1 want delivery now
    secret="$(head -n1 "$T/hook.secret")"
    now="$(date +%s)"
    n="$(grep -c . "$T/hooks.jsonl")"
    [ "$n" -ge 2 ] || ns_die "expected at least 2 deliveries, got $n"
    for i in $(seq 1 "$n"); do
        line="$(sed -n "${i}p" "$T/hooks.jsonl")"
        jq -j .body <<<"$line" >"$T/hook-body"
        sig="$(jq -r .signature <<<"$line")"
        expect_contains "$sig" '^t=[0-9]+,v1=[0-9a-f]{64}$'
        t="${sig#t=}"; t="${t%%,*}"
        v1="${sig#*,v1=}"
        want="$({ printf '%s.' "$t"; cat "$T/hook-body"; } | openssl dgst -sha256 -hmac "$secret" | awk '{print $NF}')"
        expect_eq "$v1" "$want" "the signature of delivery $i"
        [ $((now - t)) -le 300 ] && [ $((t - now)) -le 300 ] || ns_die "delivery $i was signed at $t, now is $now"
        delivery="$(jq -r .delivery <<<"$line")"
        expect_eq "$(jq -r .delivery_id "$T/hook-body")" "$delivery" "the delivery header of delivery $i"
        expect_eq "$(jq -r .request.host "$T/hook-body")" fin-db-01 "the host in delivery $i"
    done
    # A signature made with another secret does not verify (the check above can fail).
    line="$(sed -n 1p "$T/hooks.jsonl")"
    jq -j .body <<<"$line" >"$T/hook-body"
    sig="$(jq -r .signature <<<"$line")"; t="${sig#t=}"; t="${t%%,*}"
    want="$({ printf '%s.' "$t"; cat "$T/hook-body"; } | openssl dgst -sha256 -hmac "not-$secret" | awk '{print $NF}')"
    [ "${sig#*,v1=}" != "$want" ] || ns_die "a wrong secret verified a delivery"
    # what the receiver learnt about the request
    local filed
    filed="$(jq -c --arg id "$id" '.body | fromjson | select(.type == "request.filed" and .request.id == $id)' \
        "$T/hooks.jsonl" | head -n1)"
    expect_eq "$(jq -r .request.requester <<<"$filed")" alice "the requester in request.filed"
    expect_eq "$(jq -r .request.reason <<<"$filed")" "rotate the logs" "the reason in request.filed"
    expect_eq "$(jq -r .server <<<"$filed")" approvals.test "the server in request.filed"
    expect_eq "$(jq -r .request.link <<<"$filed")" "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id" "the link"
    local approved
    approved="$(jq -c --arg id "$id" '.body | fromjson | select(.type == "request.approved" and .request.id == $id)' \
        "$T/hooks.jsonl" | head -n1)"
    expect_eq "$(jq -r '.request.approvers | join(",")' <<<"$approved")" bob "the approvers in request.approved"
    expect_contains "$(jq -r .request.grant_id <<<"$approved")" '^G-'
    # both notices left the outbox as delivered
    expect_eq "$(db_query "SELECT count(*) FROM notices WHERE state <> 'delivered'")" 0 "notices not delivered"
    all_settled
}

case_webhook_receiver_down_does_not_block() {
    ns_setup
    server_pki
    hook_secret
    # siem: nobody listens. stuck: a listener that never accepts, so the TLS handshake hangs
    # until the notifier's own timeout (the notifier is busy with it while the approval comes).
    local closed; closed="$(free_port)"
    rm -f "$T/stuck.port"
    python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(64)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(3600)' "$T/stuck.port" &
    ns_pids+=("$!")
    local i
    for i in $(seq 1 100); do [ -s "$T/stuck.port" ] && break; sleep 0.05; done
    [ -s "$T/stuck.port" ] || ns_die "the stuck listener did not start"
    SERVER_CONFIG_EXTRA="webhooks:
  - name: siem
    url: https://127.0.0.1:$closed/hook
    format: json
    secret_file: $T/hook.secret
    ca_file: $T/pki/ca.pem
  - name: stuck
    url: https://127.0.0.1:$(cat "$T/stuck.port")/hook
    format: json
    secret_file: $T/hook.secret
    ca_file: $T/pki/ca.pem"
    start_in_namespace
    approver_sign_in bob
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(server_request_ids 1)"
    # the decision answers at once, whatever the receiver does
    expect_contains "$(approver_act bob approve fin-db-01 "$id" "fine")" "approved: the grant is on its way"
    sudo_wait; expect_eq "$RC" 0 "sudo exit status"
    expect_eq "$(cat "$T/out")" root "command output"
    # the notices wait in the outbox for their receivers: tried, failed, kept for a retry (the
    # stuck receiver's after the notifier's timeout)
    local q="SELECT count(*) FROM notices WHERE state = 'pending' AND attempts >= 1 AND last_error <> ''"
    for i in $(seq 1 1200); do
        [ "$(db_query "$q AND target = 'siem'")" -ge 2 ] && [ "$(db_query "$q AND target = 'stuck'")" -ge 1 ] && break
        sleep 0.05
    done
    expect_eq "$(db_query "$q AND target = 'siem'")" 2 "siem's notices (filed, approved) waiting for a retry"
    [ "$(db_query "$q AND target = 'stuck'")" -ge 1 ] || ns_die "no failed delivery to the stuck receiver recorded"
    expect_eq "$(db_query "SELECT count(*) FROM notices WHERE state <> 'pending'")" 0 "notices given up or delivered"
    all_settled
}

case_ticket_check_gates_approval() {
    ns_setup
    webhook_peer_start
    local start end
    start="$(date -u -d '-1 hour' '+%Y-%m-%d %H:%M:%S')"
    end="$(date -u -d '+1 hour' '+%Y-%m-%d %H:%M:%S')"
    printf '{"result":[{"number":"CHG1","approval":"requested","start_date":"%s","end_date":"%s"}]}\n' \
        "$start" "$end" >"$T/tickets/CHG1.json"
    printf '{"result":[{"number":"CHG2","approval":"approved","start_date":"%s","end_date":"%s"}]}\n' \
        "$start" "$end" >"$T/tickets/CHG2.json"
    SERVER_POLICY_EXTRA='  - name: change-controlled
    hosts: ["fin-*"]
    approver_groups: [sox-approvers]
    ticket_check: true'
    SERVER_CONFIG_EXTRA="ticket_check:
  url: \"https://127.0.0.1:$HOOK_PORT/api/now/table/change_request?number={ticket}\"
  ca_file: $T/pki/ca.pem"
    start_in_namespace
    approver_sign_in bob

    # CHG1 is not approved: the page says why, and the approve action is refused
    sudo_bg alice JITGATE_REASON="patch" JITGATE_TICKET=CHG1 -- /usr/bin/whoami
    local id1; id1="$(server_request_ids 1)"
    local i page
    for i in $(seq 1 200); do
        page="$(web bob "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id1")"
        has -F 'the ticket is not approved' <<<"$page" && break
        sleep 0.05
    done
    expect_contains "$page" "CHG1"
    expect_contains "$page" "You cannot approve this request: the ticket check has not passed: the ticket is not approved"
    expect_not_contains "$page" 'action="/r/fin-db-01/'"$id1"'/approve"'
    # ...but the page offers Deny, which the service accepts (it used to hide both forms)
    expect_contains "$page" 'action="/r/fin-db-01/'"$id1"'/deny"'
    local result; result="$(approver_act bob approve fin-db-01 "$id1" "ok")"
    expect_contains "$result" "Not done"
    expect_contains "$result" "the ticket check has not passed"
    sleep 0.3
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "sudo finished although the ticket check failed"
    expect_eq "$(db_query "SELECT status FROM requests WHERE id = '$id1'")" pending "CHG1's request after the refusal"
    expect_eq "$(db_query "SELECT count(*) FROM events WHERE request_id = '$id1' AND type = 'approval.refused'")" 1 \
        "approval.refused events for CHG1"
    expect_eq "$(db_query "SELECT count(*) FROM events WHERE request_id = '$id1' AND type = 'ticket.failed'")" 1 \
        "ticket.failed events for CHG1"
    # a failed ticket check blocks approval only: the approver can still deny it
    expect_contains "$(approver_act bob deny fin-db-01 "$id1" "no approved change")" "<h1>Done</h1>"
    sudo_wait; expect_eq "$RC" 1 "sudo exit status after the denial"
    expect_contains "$(cat "$T/err")" "no approved change"
    expect_eq "$(db_query "SELECT status FROM requests WHERE id = '$id1'")" denied "CHG1's request after the denial"

    # CHG2 is approved and its window is open: it can be approved and sudo passes
    sudo_bg alice JITGATE_REASON="patch" JITGATE_TICKET=CHG2 -- /usr/bin/whoami
    local id2; id2="$(server_request_ids 1)"
    [ "$id2" != "$id1" ] || ns_die "the pending request is still CHG1's"
    for i in $(seq 1 200); do
        [ "$(db_query "SELECT count(*) FROM events WHERE request_id = '$id2' AND type = 'ticket.passed'")" -ge 1 ] && break
        sleep 0.05
    done
    page="$(web bob "https://127.0.0.1:$SRV_WEB_PORT/r/fin-db-01/$id2")"
    expect_contains "$page" "the ticket is approved and its change window"
    expect_contains "$page" 'action="/r/fin-db-01/'"$id2"'/approve"'
    expect_contains "$(approver_act bob approve fin-db-01 "$id2" "ok")" "approved: the grant is on its way"
    sudo_wait; expect_eq "$RC" 0 "sudo exit status"
    expect_eq "$(cat "$T/out")" root "command output"
    expect_journal access.approved "\"request_id\":\"$id2\""
    all_settled
}

"case_$1"
