#!/bin/bash
# Integration tests of pam_jitgate.so through real Linux-PAM (pamtester), each case in its own
# private mount namespace (ctest runs: unshare -m bash pam_cases.sh CASE).
source "$(dirname "$0")/../support/ns.sh"

RULES='rules:
  - name: console-open
    match: {kind: login, services: [jitgate-console]}
    action: allow
  - name: vpn-logins
    match: {kind: login, remote_hosts: ["10.99.0.0/16"]}
    action: deny
    message: logins from the guest VPN are not allowed
  - name: prod-logins
    match: {kind: login}
    reason: required
    ttl: 15m
    timeout: 20s'

start() {
    ns_setup
    printf '%s\n' "${1:-$RULES}" | ns_config
    ns_pam jitgate-test <<'PAM'
auth     required  @PAM@ socket=@SOCK@ break_glass_group=jitgate-breakglass
auth     required  pam_permit.so
account  required  @PAM@ socket=@SOCK@ break_glass_group=jitgate-breakglass
session  required  @PAM@ socket=@SOCK@
PAM
    # misplaced as `sufficient` before pam_deny: an ungated login must still hit pam_deny
    ns_pam jitgate-console <<'PAM'
auth     sufficient @PAM@ socket=@SOCK@
auth     required   pam_deny.so
account  required   @PAM@ socket=@SOCK@
account  required   pam_permit.so
PAM
    ns_start_daemon
}

# pam_bg INPUT USER OPS... : pamtester in the background typing INPUT; output in $T/out.
pam_bg() {
    local input="$1" user="$2"; shift 2
    (printf '%b' "$input" | exec pamtester -v -I rhost=192.0.2.10 jitgate-test "$user" "$@") >"$T/out" 2>&1 &
    PAM_PID=$!
}
pam_wait() { RC=0; wait "$PAM_PID" || RC=$?; }
pam_fg() { pam_bg "$@"; pam_wait; }

case_approve() {
    start
    pam_bg 'restore payments db\n\n' alice authenticate
    local id; id="$(wait_pending 1)"
    local listing; listing="$(ctl bob pending)"
    expect_contains "$listing" "$id  alice@fin-db-01  login"
    expect_contains "$listing" "service: jitgate-test   from: 192.0.2.10"
    expect_contains "$listing" "reason: restore payments db"
    ctl bob approve "$id" >/dev/null
    pam_wait; expect_eq "$RC" 0 "pamtester authenticate"
    expect_contains "$(cat "$T/out")" "request $id sent"
    expect_contains "$(cat "$T/out")" "Press Enter to wait"
    expect_contains "$(cat "$T/out")" "successfully authenticated"
    expect_journal access.approved '"kind":"login"'
    # the login grant now lets the account hook (public-key logins) pass at once
    pam_fg '' alice acct_mgmt; expect_eq "$RC" 0 "account check on the live grant"
    expect_journal access.allowed_by_grant '"kind":"login"'
    # ...but a login grant never covers sudo
    as_user_argv alice
    RC=0; ("${AS_USER[@]}" sudo -n /usr/bin/whoami) >"$T/sudo.out" 2>&1 || RC=$?
    expect_eq "$RC" 1 "sudo with a login grant"
}

case_deny() {
    start
    pam_bg 'look around\n\n\n' alice authenticate
    local id; id="$(wait_pending 1)"
    ctl bob deny "$id" --reason "use the bastion" >/dev/null
    pam_wait; expect_eq "$RC" 1 "denied login"
    expect_contains "$(cat "$T/out")" "denied by bob: use the bastion"
    expect_contains "$(cat "$T/out")" "Permission denied"
}

case_timeout() {
    start "${RULES/timeout: 20s/timeout: 1s}"
    pam_bg 'look around\n\n\n' alice authenticate
    wait_pending 1 >/dev/null
    pam_wait; expect_eq "$RC" 1 "timed-out login"
    expect_contains "$(cat "$T/out")" "timed out after 1s"
    expect_journal access.timeout '"kind":"login"'
}

case_self_approval_refused() {
    start
    sed 's/^jitgate-approvers:x:2100:bob,carol$/jitgate-approvers:x:2100:bob,carol,alice/' /etc/group >"$T/g"; cat "$T/g" >/etc/group
    pam_bg 'work\n\n' alice authenticate
    local id; id="$(wait_pending 1)"
    local rc=0 out; out="$(ctl alice approve "$id" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "self-approval"
    expect_contains "$out" "cannot approve your own request"
    ctl carol approve "$id" >/dev/null
    pam_wait; expect_eq "$RC" 0 "approved by carol"
}

case_noninteractive_needs_grant() {
    start
    # the account hook alone (a public-key login, scp): no grant, refused at once, never hangs
    local t0; t0=$(date +%s)
    pam_fg '' alice acct_mgmt; expect_eq "$RC" 1 "account check without a grant"
    [ $(( $(date +%s) - t0 )) -lt 5 ] || ns_die "the refusal took too long"
    expect_contains "$(cat "$T/out")" "jitgate: denied: rule 'prod-logins' requires a reason"
    expect_contains "$(cat "$T/out")" "Permission denied"
    # an interactive login gets the grant; from then on the account hook passes alone
    pam_bg 'nightly batch check\n\n' alice authenticate
    local id; id="$(wait_pending 1)"
    ctl bob approve "$id" >/dev/null
    pam_wait; expect_eq "$RC" 0 "interactive login"
    pam_fg '' alice acct_mgmt; expect_eq "$RC" 0 "account check after approval"
}

case_allow_rule_ignores() {
    start
    # an allow rule returns PAM_IGNORE: misplaced as `sufficient` it still cannot skip pam_deny
    RC=0; (printf '' | pamtester -v jitgate-console alice authenticate) >"$T/out" 2>&1 || RC=$?
    expect_eq "$RC" 1 "ungated login through a sufficient line"
    expect_journal access.allowed_by_rule '"rule":"console-open"'
    # ...while in a required line it lets the rest of the stack decide
    RC=0; (printf '' | pamtester -v jitgate-console alice acct_mgmt) >"$T/out" 2>&1 || RC=$?
    expect_eq "$RC" 0 "account: PAM_IGNORE, then pam_permit decides"
}

case_deny_rule_remote_host() {
    start
    RC=0; (printf 'x\n\n' | pamtester -v -I rhost=10.99.3.4 jitgate-test alice authenticate) >"$T/out" 2>&1 || RC=$?
    expect_eq "$RC" 1 "login from the guest VPN"
    expect_contains "$(cat "$T/out")" "logins from the guest VPN are not allowed"
    expect_journal access.denied '"remote_host":"10.99.3.4"'
}

case_daemon_down() {
    start
    ns_stop_daemon
    pam_fg 'x\n\n' alice authenticate; expect_eq "$RC" 1 "daemon down"
    expect_contains "$(cat "$T/out")" "cannot reach jitgated at $SOCK"
    expect_contains "$(cat "$T/out")" "Authentication service cannot retrieve authentication info" # PAM_AUTHINFO_UNAVAIL
}

case_break_glass() {
    start
    pam_fg 'payments outage, INC-4711\n' dave authenticate; expect_eq "$RC" 0 "break-glass login"
    expect_journal access.break_glass '"kind":"login"'
    expect_syslog '^<81>.*access.break_glass' "no alert in syslog"
    # with jitgated down, only the break-glass group passes
    ns_stop_daemon
    pam_fg 'jitgated down, INC-4712\n' dave authenticate; expect_eq "$RC" 0 "offline break-glass"
    expect_syslog 'BREAK-GLASS login by dave' "no offline alert"
    pam_fg 'x\n\n' alice authenticate; expect_eq "$RC" 1 "alice is not break-glass"
    # auth then account in one login: the account hook honours the break-glass pass
    pam_fg 'jitgated down, INC-4713\n' dave authenticate acct_mgmt; expect_eq "$RC" 0 "break-glass through auth and account"
}

case_session_duration() {
    start
    pam_bg 'maintenance\n\n' alice authenticate open_session close_session
    local id; id="$(wait_pending 1)"
    ctl bob approve "$id" >/dev/null
    pam_wait; expect_eq "$RC" 0 "login with a session"
    expect_journal session.opened '"user":"alice"'
    expect_journal session.closed '"duration_ms":[0-9]+'
}

# PAM_RUSER is only a claim: a root PAM application (here pamtester) naming bob as the remote
# user does not make bob the requester of alice's login; the kernel says who asks.
case_ruser_is_only_a_claim() {
    start
    RC=0
    (printf 'restore payments db\n\n' | exec pamtester -v -I rhost=192.0.2.10 -I ruser=bob jitgate-test alice authenticate) >"$T/out" 2>&1 &
    PAM_PID=$!
    local id; id="$(wait_pending 1)"
    expect_contains "$(ctl carol pending)" "$id  alice@fin-db-01  login  "
    ctl bob approve "$id" >/dev/null # were the claim trusted, bob would be refused as the requester
    pam_wait; expect_eq "$RC" 0 "alice's login approved by bob"
    expect_journal access.requested '"requester":"alice","requester_claim":"bob","requester_uid":2001'
}

# --- Who asks: su files the request as its caller, not as the account it switches to ---------

# su_start [RULES]: start, plus an /etc/pam.d/su (util-linux su's service) gated by pam_jitgate.
su_start() {
    start "$@"
    NS_SHOW_ON_FAIL="$T/su.out $T/daemon.log"
    ns_pam su <<'PAM'
auth     required  @PAM@ socket=@SOCK@
auth     required  pam_permit.so
account  required  @PAM@ socket=@SOCK@
account  required  pam_permit.so
session  required  pam_permit.so
password required  pam_deny.so
PAM
}

# su_bg USER INPUT: USER runs the real `su root -c 'id -un'` in their own login session, typing
# INPUT at su's prompts; output in $T/su.out. su_wait sets RC.
su_bg() {
    local user="$1" input="$2"
    as_user_argv "$user"
    (printf '%b' "$input" | exec "${AS_USER[@]}" su root -c 'id -un') >"$T/su.out" 2>&1 &
    SU_PID=$!
}
su_wait() { RC=0; wait "$SU_PID" || RC=$?; }

# Regression: su filed the request as root (PAM_USER), so bob, an approver, approved his own
# `su root`. The requester is bob (su's real uid), and the approver view and audit say both.
case_su_self_approval_refused() {
    su_start
    need_loginuid
    su_bg bob 'rotate the payments keys\n\n'
    local id; id="$(wait_pending 1)"
    local rc=0 out; out="$(ctl bob approve "$id" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "bob approving his own su root"
    expect_contains "$out" "cannot approve your own request $id"
    local listing; listing="$(ctl carol pending)"
    expect_contains "$listing" "$id  bob@fin-db-01  login  as root"
    expect_contains "$listing" "service: su "
    expect_journal error '"refused":"self_approval".*"requester":"bob","requester_uid":2002'
    ctl carol approve "$id" >/dev/null
    su_wait; expect_eq "$RC" 0 "su root approved by carol"
    expect_contains "$(cat "$T/su.out")" "^root$"
    expect_journal access.approved '"approvers":\["carol"\].*"login_uid":2002.*"requester":"bob","requester_uid":2002.*"user":"root"'
}

# Regression: a login grant covered the account, so once alice's `su root` was approved, bob's
# `su root` passed on it for the grant's whole TTL.
case_su_grant_bound_to_requester() {
    su_start
    need_loginuid
    su_bg alice 'rotate the payments keys\n\n'
    local id; id="$(wait_pending 1)"
    ctl carol approve "$id" >/dev/null
    su_wait; expect_eq "$RC" 0 "alice's su root"
    # alice again, on her grant: no question asked
    su_bg alice ''
    su_wait; expect_eq "$RC" 0 "alice's su root on her grant"
    expect_journal access.allowed_by_grant '"requester":"alice"'
    expect_contains "$(ctl carol grants)" "  root \\(for alice only\\)  login scope"
    expect_contains "$("$JITGATECTL" audit tail "$SPOOL")" "access.approved +root +requester=alice"
    # bob's su root does not pass on alice's grant: it waits for its own approval, and is denied
    su_bg bob 'rotate the payments keys\n\n'
    local bid; bid="$(wait_pending 1)"
    [ "$bid" != "$id" ] || ns_die "bob's su root reused alice's request"
    expect_contains "$(ctl carol pending)" "$bid  bob@fin-db-01  login  as root"
    ctl carol deny "$bid" --reason "not on the rota" >/dev/null
    su_wait; [ "$RC" -ne 0 ] || ns_die "bob's su root passed on alice's grant"
    expect_not_contains "$(cat "$T/su.out")" "^root$"
    expect_no_journal access.allowed_by_grant '"requester":"bob"'
}

# An approver in a shared account (ops) working in the requester's login session is the
# requester: refused and audited. ops used from carol's own session is carol, and may approve.
case_shared_account_refused() {
    su_start
    need_loginuid
    echo 'ops:x:2010:2010:Shared operations:/tmp:/bin/sh' >>/etc/passwd
    echo 'ops:*:19000:0:99999:7:::' >>/etc/shadow
    sed 's/^jitgate-approvers:x:2100:bob,carol$/jitgate-approvers:x:2100:bob,carol,ops/' /etc/group >"$T/g"
    { cat "$T/g"; echo 'ops:x:2010:'; } >/etc/group
    su_bg bob 'rotate the payments keys\n\n'
    local id; id="$(wait_pending 1)"
    in_session_argv ops bob
    local rc=0 out; out="$("${AS_USER[@]}" "$JITGATECTL" --socket "$SOCK" approve "$id" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "ops approving from bob's session"
    expect_contains "$out" "cannot approve your own request $id: this session belongs to bob \\(login uid 2002\\)"
    expect_journal error '"approver":"ops","approver_login_uid":2002,"approver_login_user":"bob".*"refused":"self_approval"'
    in_session_argv ops carol
    "${AS_USER[@]}" "$JITGATECTL" --socket "$SOCK" approve "$id" >/dev/null
    su_wait; expect_eq "$RC" 0 "approved by ops from carol's session"
    expect_journal access.approved '"approvers":\["ops \(login carol\)"\]'
}

# Root is an account, not a person: it cannot approve unless approval.allow_root is true.
case_root_approval_switch() {
    su_start
    need_loginuid
    # an approver-group member working as root: root is in the group
    sed 's/^jitgate-approvers:x:2100:bob,carol$/jitgate-approvers:x:2100:bob,carol,root/' /etc/group >"$T/g"; cat "$T/g" >/etc/group
    su_bg alice 'rotate the payments keys\n\n'
    local id; id="$(wait_pending 1)"
    in_session_argv root carol
    local rc=0 out; out="$("${AS_USER[@]}" "$JITGATECTL" --socket "$SOCK" approve "$id" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "root approving by default"
    expect_contains "$out" "root may not approve requests on this host \\(approval.allow_root is false\\)"
    expect_journal error '"approver":"root".*"refused":"root"'
    # the switch on (a reload keeps the waiting request): root in carol's session may approve
    sed -i 's/^  approver_groups: \[jitgate-approvers\]$/  approver_groups: [jitgate-approvers]\n  allow_root: true/' "$CONFIG"
    grep -q 'allow_root: true' "$CONFIG" || ns_die "config not switched"
    kill -HUP "$DAEMON_PID"
    local i; for i in $(seq 1 100); do [ "$(journal_count config.loaded '"reload":true')" -ge 1 ] && break; sleep 0.05; done
    expect_journal config.loaded '"reload":true'
    "${AS_USER[@]}" "$JITGATECTL" --socket "$SOCK" approve "$id" >/dev/null
    su_wait; expect_eq "$RC" 0 "approved by root with allow_root"
    expect_journal access.approved '"approvers":\["root \(login carol\)"\]'
}

"case_$1"
echo "PASS: $1"
