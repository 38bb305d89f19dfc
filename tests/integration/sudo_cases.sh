#!/bin/bash
# Integration tests with the real sudo binary, the real plugin and jitgated, each case in its
# own private mount namespace (ctest runs: unshare -m bash sudo_cases.sh CASE).
source "$(dirname "$0")/../support/ns.sh"

RULES_DEFAULT='rules:
  - name: read-only
    match: {kind: sudo, commands: ["/usr/bin/true", "/usr/bin/echo *", "/bin/sh -c exit *"]}
    action: allow
  - name: no-shells
    match: {kind: sudo, commands: ["/usr/bin/bash*", "/bin/bash*"]}
    action: deny
    message: interactive root shells are not allowed on finance hosts
  - name: two-person
    match: {kind: sudo, commands: ["/usr/bin/touch /tmp/ledger*"]}
    approvals: 2
    ttl: 15m
  - name: ticketed
    match: {kind: sudo, commands: ["/usr/bin/ls /root*"]}
    reason: required
    ticket_pattern: "^CHG[0-9]{7}$"
  - name: session-scope
    match: {kind: sudo, users: [erin]}
    scope: session
    ttl: 15m
  - name: quick
    match: {kind: sudo, commands: ["/usr/bin/id*"]}
    reason: required
    timeout: 2s
    ttl: 3s
  - name: default-approval
    match: {kind: sudo}
    reason: optional
    timeout: 30s
    ttl: 15m'

start() { ns_setup; printf '%s\n' "${1:-$RULES_DEFAULT}" | ns_config; ns_start_daemon; }

case_approve() {
    start
    sudo_bg alice JITGATE_REASON="restart after config change" -- /usr/bin/whoami
    local id; id="$(wait_pending 1)"
    local listing; listing="$(ctl bob pending)"
    expect_contains "$listing" "$id  alice@fin-db-01"
    expect_contains "$listing" "command: /usr/bin/whoami"
    expect_contains "$listing" "reason: restart after config change"
    expect_contains "$(ctl bob approve "$id")" "approved $id; grant G-"
    sudo_wait; expect_eq "$RC" 0 "sudo exit status"
    expect_eq "$(cat "$T/out")" root "command output"
    expect_contains "$(cat "$T/err")" "request $id sent; waiting"
    expect_contains "$(cat "$T/err")" "approved by bob"
    expect_journal access.requested "\"request_id\":\"$id\""
    expect_journal access.approved "\"approvers\":\\[\"bob\"\\]"
    expect_journal command.finished '"exit_status":0'
    # the same command again within the TTL passes at once, even with sudo -n
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 0 "re-run within TTL"
    expect_journal access.allowed_by_grant "\"request_id\":\"$id\""
    expect_eq "$(journal_count access.requested)" 1 "requests filed"
}

case_deny() {
    start
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(wait_pending 1)"
    ctl bob deny "$id" --reason "not during the close" >/dev/null
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
    expect_eq "$(cat "$T/out")" "" "no output: the command did not run"
    expect_contains "$(cat "$T/err")" "denied by bob: not during the close"
    expect_journal access.denied '"denied_by":"bob"'
    expect_no_journal command.finished
}

case_timeout() {
    start
    sudo_bg alice JITGATE_REASON="check identity" -- /usr/bin/id -un
    wait_pending 1 >/dev/null
    sudo_wait; expect_eq "$RC" 1 "sudo exit status"
    expect_contains "$(cat "$T/err")" "timed out after 2s without approval"
    expect_journal access.timeout
    expect_eq "$("$JITGATECTL" --socket "$SOCK" pending)" "no pending requests"
}

case_self_approval_refused() {
    start
    # alice is made an approver too: she still must not approve herself
    # (rewrite in place: /etc/group is a bind mount, which sed -i cannot rename over)
    sed 's/^jitgate-approvers:x:2100:bob,carol$/jitgate-approvers:x:2100:bob,carol,alice/' /etc/group >"$T/group.new"
    cat "$T/group.new" >/etc/group
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(wait_pending 1)"
    local rc=0 out; out="$(ctl alice approve "$id" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "jitgatectl exit status for self-approval"
    expect_contains "$out" "cannot approve your own request"
    expect_journal error "requester cannot approve"
    wait_pending 1 >/dev/null # still waiting
    ctl bob approve "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "approved by bob"
}

# Regression: refused approver operations were recorded without limit: any local user could
# send approve frames for a request they may not act on as fast as the socket allows, each an
# fsync'ed record, until the spool was full and everyone was denied.
case_refused_approval_flood_bounded() {
    start
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(wait_pending 1)"
    local before bytes_before; before="$(journal_count error '"approver_uid":2005')"
    bytes_before="$(journal | wc -c)"
    local out; out="$(as_user mallory "$TEST_CLIENT" "$SOCK" repeat 5000 "{\"type\":\"approve\",\"id\":\"$id\"}")"
    expect_contains "$out" "replies 5000"
    expect_contains "$out" "mallory is not in the approver group"
    local recorded=$(( $(journal_count error '"approver_uid":2005') - before ))
    local growth=$(( $(journal | wc -c) - bytes_before ))
    echo "5000 refused approve frames: $recorded records, spool +$growth bytes" >&2
    [ "$recorded" -le 10 ] || ns_die "$recorded refusals of one user recorded (bound: 10 a minute)"
    [ "$growth" -le 20480 ] || ns_die "the spool grew by $growth bytes under the flood"
    daemon_alive || ns_die "daemon died"
    wait_pending 1 >/dev/null # still waiting, and a real approver still gets through
    ctl bob approve "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "approved by bob after the flood"
    # when the daemon stops, the count of the rest is recorded in one summary
    ns_stop_daemon
    expect_journal error '"peer_uid":2005,.*"rate_limited":true,.*"suppressed":4990'
}

case_non_approver_refused() {
    start
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(wait_pending 1)"
    local rc=0 out; out="$(ctl mallory approve "$id" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "jitgatectl exit status"
    expect_contains "$out" "mallory is not in the approver group"
    rc=0; out="$(ctl mallory pending 2>&1)" || rc=$?
    expect_eq "$rc" 1 "non-approvers may not list requests"
    ctl bob deny "$id" --reason done >/dev/null
    sudo_wait
}

case_two_approvers() {
    start
    sudo_bg alice JITGATE_REASON="post ledger fix" -- /usr/bin/touch /tmp/ledger-fix
    local id; id="$(wait_pending 1)"
    expect_contains "$(ctl bob approve "$id")" "approval recorded for $id \\(1 of 2\\)"
    local rc=0 out; out="$(ctl bob approve "$id" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "second approval by the same person"
    expect_contains "$out" "already approved"
    sleep 0.3
    kill -0 "$SUDO_PID" || ns_die "sudo finished after one of two approvals"
    ctl carol approve "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "sudo after two approvals"
    expect_contains "$(cat "$T/err")" "bob approved \\(1 of 2\\)"
    expect_journal access.approval_recorded
    expect_journal access.approved '"approvers":\["bob","carol"\]'
    [ -e /tmp/ledger-fix ] && rm -f /tmp/ledger-fix
}

case_grant_expires() {
    start
    sudo_bg alice JITGATE_REASON="check identity" -- /usr/bin/id -un
    local id; id="$(wait_pending 1)"
    ctl bob approve "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "approved"
    sudo_fg alice -- -n /usr/bin/id -un; expect_eq "$RC" 0 "within the 3s TTL"
    # a different argv is not covered by a command-scope grant
    sudo_fg alice JITGATE_REASON=x -- -n /usr/bin/id -u; expect_eq "$RC" 1 "other argv under command scope"
    expect_contains "$(cat "$T/err")" "filed"
    sleep 3.2
    sudo_fg alice JITGATE_REASON=again -- -n /usr/bin/id -un; expect_eq "$RC" 1 "after the TTL"
    expect_contains "$(cat "$T/err")" "filed; sudo -n does not wait"
}

case_session_scope() {
    start
    sudo_bg erin -- /usr/bin/whoami
    local id; id="$(wait_pending 1)"
    ctl carol approve "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "approved"
    # any command of erin's under the same rule now passes, without asking
    sudo_fg erin -- -n /usr/bin/id -un; expect_eq "$RC" 0 "other command under session scope"
    expect_eq "$(cat "$T/out")" root
    # ...but not alice's
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 1 "another user"
}

case_noninteractive_filed_then_approved() {
    start
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 1 "sudo -n files and denies at once"
    local err; err="$(cat "$T/err")"
    expect_contains "$err" "request R-[0-9A-Z]{10} filed"
    local id; id="$(wait_pending 1)"
    expect_contains "$(ctl bob pending)" "filed; the requester is not waiting"
    # running it again before approval points at the same request, files no other
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 1 "still pending"
    expect_contains "$(cat "$T/err")" "request $id is still waiting"
    ctl bob approve "$id" >/dev/null
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 0 "after approval"
    expect_eq "$(cat "$T/out")" root
    expect_eq "$(journal_count access.requested)" 1 "one request"
}

case_allow_rule() {
    start
    sudo_fg mallory -- -n /usr/bin/true; expect_eq "$RC" 0 "allow rule"
    expect_journal access.allowed_by_rule '"rule":"read-only"'
    expect_eq "$(journal_count access.requested)" 0 "no approval asked"
}

# An allow rule admits a program, not code its environment loads into it: with sudoers passing
# the caller's variables (a SETENV tag here), PYTHONPATH or LD_PRELOAD make the allowed program
# refused, with the variables named; without them the same program is allowed.
case_allow_rule_refuses_code_loading_env() {
    start
    binding_sudoers
    sudo_fg mallory PYTHONPATH=/tmp/evil -- -n /usr/bin/true; expect_eq "$RC" 0 "sudo without the variable on its command line"
    sudo_fg mallory -- -n PYTHONPATH=/tmp/evil LD_PRELOAD=/tmp/evil.so /usr/bin/true
    expect_eq "$RC" 1 "allow rule with code-loading variables set through SETENV"
    expect_contains "$(cat "$T/err")" "environment sets PYTHONPATH and LD_PRELOAD; rule 'read-only' allows the program, not code loaded into it"
    expect_journal access.denied '"env_code_loading":\["PYTHONPATH","LD_PRELOAD"\].*"rule":"read-only".*"why":"code_loading_env"'
    sudo_fg mallory -- -n LANG=C /usr/bin/true; expect_eq "$RC" 0 "a variable that loads no code"
}

case_deny_rule() {
    start
    sudo_fg alice -- -n /usr/bin/bash -c id; expect_eq "$RC" 1 "deny rule"
    expect_contains "$(cat "$T/err")" "denied by rule 'no-shells': interactive root shells are not allowed"
    expect_journal access.denied '"rule":"no-shells"'
}

# The daemon caches user and group lookups (daemon/policy/nss_cache.hpp): a removal from a
# group in /etc/group must still take effect on the very next decision.
case_group_removal_takes_effect_at_once() {
    ns_setup
    # nsswitch.conf naming `files` only: entries do not expire on their own (no TTL), so only
    # the check of /etc/group's stat can make the removal take effect.
    printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n' >"$T/nsswitch.conf"
    mount --bind "$T/nsswitch.conf" /etc/nsswitch.conf
    printf '%s\n' 'rules:
  - name: ops-may-true
    match: {kind: sudo, users: ["%ops"], commands: ["/usr/bin/true"]}
    action: allow
  - name: nobody-else
    match: {kind: sudo}
    action: deny
    message: not in ops' | ns_config
    ns_start_daemon
    # (rewrite in place: /etc/group is a bind mount, which sed -i cannot rename over)
    cp /etc/group "$T/group.without"
    { cat "$T/group.without"; echo 'ops:x:2200:mallory,alice'; } >"$T/group.with"
    cat "$T/group.with" >/etc/group
    # The cache keeps nothing from a file changed within the last second (a same-size rewrite
    # in the same timestamp tick would not show): wait that out so the next decisions are
    # served from the cache, as on a host whose /etc/group is old.
    sleep 1.2
    sudo_fg alice -- -n /usr/bin/true; expect_eq "$RC" 0 "alice in ops"
    sudo_fg alice -- -n /usr/bin/true; expect_eq "$RC" 0 "alice in ops, again (cached)"
    expect_eq "$(journal_count access.allowed_by_rule '"rule":"ops-may-true"')" 2 "two allowed"
    # alice leaves ops: the next decision sees it, with no wait.
    sed 's/^ops:x:2200:mallory,alice$/ops:x:2200:mallory/' "$T/group.with" >"$T/group.new"
    cat "$T/group.new" >/etc/group
    sudo_fg alice -- -n /usr/bin/true; expect_eq "$RC" 1 "alice no longer in ops"
    expect_contains "$(cat "$T/err")" "not in ops"
    expect_journal access.denied '"rule":"nobody-else"'
    sudo_fg mallory -- -n /usr/bin/true; expect_eq "$RC" 0 "mallory still in ops"
    # A rewrite of the same size (alice replaced by carol) is seen as well.
    { cat "$T/group.without"; echo 'ops:x:2200:alice'; } >"$T/group.alice"
    sed 's/^ops:x:2200:alice$/ops:x:2200:carol/' "$T/group.alice" >"$T/group.carol"
    expect_eq "$(stat -c %s "$T/group.alice")" "$(stat -c %s "$T/group.carol")" "same size"
    cat "$T/group.alice" >/etc/group
    sleep 1.2
    sudo_fg alice -- -n /usr/bin/true; expect_eq "$RC" 0 "alice in ops"
    sudo_fg alice -- -n /usr/bin/true; expect_eq "$RC" 0 "alice in ops, again (cached)"
    cat "$T/group.carol" >/etc/group
    sudo_fg alice -- -n /usr/bin/true; expect_eq "$RC" 1 "alice replaced by carol"
    expect_contains "$(cat "$T/err")" "not in ops"
    sudo_fg mallory -- -n /usr/bin/true; expect_eq "$RC" 1 "mallory no longer in ops"
    expect_contains "$(cat "$T/err")" "not in ops"
}

# The test's own sudoers: lets alice choose the run cwd (-D) and chroot (-R), and set or
# preserve variables (SETENV), so that sudo accepts the forms a grant must not cover.
binding_sudoers() {
    cat >"$T/sudoers" <<'SU'
Defaults !lecture, !use_pty, !mail_badpass, env_reset, runcwd=*, runchroot=*
Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
root ALL=(ALL:ALL) ALL
alice,dave,erin,mallory ALL=(ALL:ALL) NOPASSWD:SETENV: ALL
SU
}

# Regression: a grant approved for `sudo whoami` covered the same argv with another
# environment (LD_PRELOAD, PYTHONPATH via -E), run-as group (-g), run cwd (-D) or chroot (-R).
case_grant_binds_env_group_cwd_chroot() {
    start; binding_sudoers
    sudo_bg alice JITGATE_REASON="who am i" -- /usr/bin/whoami
    local id; id="$(wait_pending 1)"
    expect_contains "$(ctl bob pending)" "run as:  root:root   cwd: "
    ctl bob approve "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "approved sudo whoami"
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 0 "the very same action is covered"
    # noise does not make a grant useless: another terminal type or locale is the same action
    sudo_fg alice TERM=vt100 LANG=C -- -n /usr/bin/whoami; expect_eq "$RC" 0 "another TERM and LANG"
    sudo_fg alice -- -n LD_PRELOAD=/nonexistent/x.so /usr/bin/whoami; expect_eq "$RC" 1 "sudo LD_PRELOAD=x"
    expect_contains "$(cat "$T/err")" "filed"
    sudo_fg alice -- -n PYTHONPATH=/tmp/evil /usr/bin/whoami; expect_eq "$RC" 1 "sudo PYTHONPATH=x"
    # sudo -E keeps alice's HOME (sudoers itself drops PYTHONPATH here): another environment
    sudo_fg alice PYTHONPATH=/tmp/evil -- -n -E /usr/bin/whoami; expect_eq "$RC" 1 "sudo -E"
    sudo_fg alice -- -n -u root -g daemon /usr/bin/whoami; expect_eq "$RC" 1 "sudo -g daemon"
    sudo_fg alice -- -n -D /var /usr/bin/whoami; expect_eq "$RC" 1 "sudo -D /var"
    sudo_fg alice -- -n -R / /usr/bin/whoami; expect_eq "$RC" 1 "sudo -R /"
    # what the approver sees for each of them
    local listing; listing="$(ctl bob pending)"
    expect_contains "$listing" "env:     LD_PRELOAD=/nonexistent/x.so"
    expect_contains "$listing" "WARNING: the environment sets loader/interpreter variables: LD_PRELOAD"
    expect_contains "$listing" "PYTHONPATH=/tmp/evil"
    expect_contains "$listing" "env:     HOME=/tmp"
    expect_contains "$listing" "run as:  root:daemon"
    expect_contains "$listing" "cwd: /var"
    expect_contains "$listing" "chroot: /"
    expect_eq "$(journal_count access.requested)" 7 "each new effect is a new request"
    expect_journal access.requested '"env":\["LD_PRELOAD=/nonexistent/x.so"'
    expect_journal access.requested '"env_code_loading":\["PYTHONPATH"\]'
    expect_journal access.requested '"runas_group":"daemon"'
    expect_journal access.requested '"run_cwd":"/var"'
    expect_journal access.requested '"chroot":"/"'
    expect_eq "$(journal_count access.allowed_by_grant)" 2 "only the same action used the grant"
}

# An environment jitgate cannot carry whole is denied, never bound in part.
case_environment_too_large_denied() {
    start; binding_sudoers
    local big; big="$(head -c 9000 /dev/zero | tr '\0' x)"
    sudo_fg alice -- -n "BIG=$big" /usr/bin/whoami; expect_eq "$RC" 1 "oversized environment"
    expect_contains "$(cat "$T/err")" "the command's environment is larger than 8192 bytes"
    expect_eq "$(cat "$T/out")" "" "the command did not run"
    expect_journal access.denied "larger than 8192 bytes"
}

# Regression: a deny rule for /usr/bin/bash did not hold for //usr/bin/bash,
# /usr/bin/../bin/bash, /usr/bin/./bash, or a symlink or hard link in the user's home.
case_deny_rule_every_spelling() {
    start
    local home="$T/alice-home"
    mkdir -p "$home"
    ln -s /usr/bin/bash "$home/innocent"
    ln /usr/bin/bash "$home/hardlink"
    chown -R alice: "$home"; chmod 0700 "$home"
    local typed
    for typed in //usr/bin/bash /usr/bin/../bin/bash /usr/bin/./bash /bin/bash "$home/innocent" "$home/hardlink"; do
        sudo_fg alice -- -n "$typed" -c id; expect_eq "$RC" 1 "deny rule for $typed"
        expect_contains "$(cat "$T/err")" "denied by rule 'no-shells'"
        expect_eq "$(cat "$T/out")" "" "$typed did not run"
    done
    expect_eq "$(journal_count access.denied '"rule":"no-shells"')" 6 "every spelling denied by the rule"
    # an allow rule for /bin/sh (a link to dash) still holds for what it names
    sudo_fg mallory -- -n /bin/sh -c "exit 0"; expect_eq "$RC" 0 "allow rule through the /bin/sh link"
}

case_reason_required_missing() {
    start
    sudo_fg alice JITGATE_TICKET=CHG1234567 -- /usr/bin/ls /root; expect_eq "$RC" 1 "no reason"
    expect_contains "$(cat "$T/err")" "requires a reason; give it at the prompt or set JITGATE_REASON"
    expect_journal access.denied '"rule":"ticketed"'
}

case_ticket_mismatch() {
    start
    sudo_fg alice JITGATE_REASON=audit JITGATE_TICKET=INC42 -- /usr/bin/ls /root; expect_eq "$RC" 1 "bad ticket"
    expect_contains "$(cat "$T/err")" "ticket 'INC42' does not match \\^CHG\\[0-9\\]\\{7\\}\\$"
    # a good ticket files the request
    sudo_bg alice JITGATE_REASON=audit JITGATE_TICKET=CHG1234567 -- /usr/bin/ls /root
    local id; id="$(wait_pending 1)"
    expect_contains "$(ctl bob pending)" "ticket: CHG1234567"
    ctl bob approve "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "good ticket, approved"
}

case_daemon_down() {
    start
    ns_stop_daemon
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 1 "daemon down"
    expect_contains "$(cat "$T/err")" "cannot reach jitgated at $SOCK"
    expect_contains "$(cat "$T/err")" "fail closed"
    expect_eq "$(cat "$T/out")" "" "nothing ran"
}

case_break_glass() {
    start
    sudo_fg dave JITGATE_BREAK_GLASS="payments down, INC-4711" -- -n /usr/bin/whoami; expect_eq "$RC" 0 "break-glass"
    expect_contains "$(cat "$T/err")" "BREAK-GLASS"
    expect_journal access.break_glass '"break_glass_reason":"payments down, INC-4711"'
    expect_syslog '^<81>.*access.break_glass' "no authpriv.alert syslog line"
    # too short a reason: refused
    sudo_fg dave JITGATE_BREAK_GLASS="x" -- -n /usr/bin/whoami; expect_eq "$RC" 1 "short reason"
    expect_contains "$(cat "$T/err")" "break-glass refused: a break-glass reason needs at least"
    # not in the group: refused
    sudo_fg alice JITGATE_BREAK_GLASS="I really want this now" -- -n /usr/bin/whoami; expect_eq "$RC" 1 "not in group"
    expect_contains "$(cat "$T/err")" "alice is not in the break-glass group"
    # without a break-glass reason dave goes through normal approval (sudo -n: filed)
    sudo_fg dave -- -n /usr/bin/whoami; expect_eq "$RC" 1 "no reason: normal path"
    expect_contains "$(cat "$T/err")" "filed"
}

case_break_glass_daemon_down() {
    start
    ns_stop_daemon
    sudo_fg dave JITGATE_BREAK_GLASS="jitgated down, INC-4712" -- -n /usr/bin/whoami; expect_eq "$RC" 0 "offline break-glass"
    expect_eq "$(cat "$T/out")" root
    expect_syslog '^<81>.*BREAK-GLASS by dave while jitgated is unreachable' "no alert"
    sudo_fg alice JITGATE_BREAK_GLASS="jitgated down, INC-4712" -- -n /usr/bin/whoami; expect_eq "$RC" 1 "alice is not break-glass"
    # A break-glass shell under intercept: one alert for the run, then one warning line per
    # sub-command (each is recorded; the on-call person is paged once).
    sudoers_intercept
    local alerts; alerts="$(grep -cE '^<81>.*BREAK-GLASS by dave' "$SYSLOG")"
    sudo_fg dave JITGATE_BREAK_GLASS="jitgated down, INC-4713" -- -n /bin/sh -c '/usr/bin/id -un; /usr/bin/true'
    expect_eq "$RC" 0 "offline break-glass shell"
    expect_syslog '^<84>.*BREAK-GLASS by dave .*command /usr/bin/true .*\(sub-command 2 of the break-glass run alerted above\)' \
        "no warning line for the second sub-command"
    expect_eq "$(($(grep -cE '^<81>.*BREAK-GLASS by dave' "$SYSLOG") - alerts))" 1 "alerts for one break-glass run"
    expect_eq "$(grep -cE '^<84>.*BREAK-GLASS by dave' "$SYSLOG")" 2 "warning lines, one per sub-command"
}

case_forged_check_refused() {
    start
    local check='{"type":"check","v":1,"kind":"sudo","user":"alice","uid":2001,"run_argv":["/usr/bin/true"],"command":"/usr/bin/true"}'
    local out; out="$(as_user mallory "$TEST_CLIENT" "$SOCK" json "$check")"
    expect_contains "$out" '"code":"denied"'
    expect_contains "$out" "only root \\(sudo, sshd\\) may ask for decisions; peer uid is 2005"
    # root, but claiming to be alice: its real uid is not alice's
    out="$("$TEST_CLIENT" "$SOCK" json "$check")"
    expect_contains "$out" "is not the real uid of the sudo process"
    expect_journal error "check refused"
    expect_eq "$(journal_count access.allowed_by_rule)" 0 "nothing allowed"
}

case_malformed_frames() {
    start
    expect_contains "$(as_user mallory "$TEST_CLIENT" "$SOCK" length 70000 x)" "exceeds the limit of 65536"
    expect_contains "$(as_user mallory "$TEST_CLIENT" "$SOCK" length 9 'not json!')" "not valid JSON"
    expect_contains "$(as_user mallory "$TEST_CLIENT" "$SOCK" json '[1,2]')" "not a JSON object"
    expect_contains "$(as_user mallory "$TEST_CLIENT" "$SOCK" json '{"type":"check","kind":7}')" "only root"
    expect_contains "$("$TEST_CLIENT" "$SOCK" json '{"type":"check","kind":7}')" "kind: must be a string"
    expect_contains "$(as_user mallory "$TEST_CLIENT" "$SOCK" json '{"type":"launch"}')" "unknown message type"
    expect_contains "$("$TEST_CLIENT" "$SOCK" raw '\x00\x00\x00\x10{"ty')" "closed|timeout"
    daemon_alive || ns_die "daemon died"
    expect_journal error "protocol error: frame: frame of 70000 bytes"
    expect_journal error "truncated frame"
    # a burst of 40 bad frames from one user is counted, not recorded 40 times, and a flood of
    # connections from one user cannot take the slots sudo needs
    local before i; before="$(journal_count error '"peer_uid":2005')"
    local burst=()
    for i in $(seq 1 40); do as_user mallory "$TEST_CLIENT" "$SOCK" json '{"type":"check"}' >/dev/null & burst+=($!); done
    wait "${burst[@]}"
    [ $(( $(journal_count error '"peer_uid":2005') - before )) -le 10 ] || ns_die "a user's refusals flooded the journal"
    daemon_alive || ns_die "daemon died"
    sudo_fg alice -- -n /usr/bin/true; expect_eq "$RC" 0 "sudo after a connection flood"
}

case_hostile_argv() {
    start
    local esc=$'\e[31mRED\e[0m' nl=$'line1\nline2' bad=$'\xff\xfe\xc3'
    sudo_fg alice -- -n /usr/bin/echo "$esc" "$nl" "$bad"; expect_eq "$RC" 0 "echo with hostile args"
    # the journal holds escaped text: no raw ESC, every line valid JSON
    if journal | has $'\e'; then ns_die "raw ESC in the journal"; fi
    expect_journal access.allowed_by_rule '\\\\x1b\[31mRED'
    expect_journal access.allowed_by_rule 'line1\\\\nline2'
    expect_journal access.allowed_by_rule '\\\\xff\\\\xfe\\\\xc3'
    expect_syslog 'x1b\[31mRED' "escaped argv not in syslog"
    if grep -q $'\e' "$SYSLOG"; then ns_die "raw ESC in syslog"; fi
    [ "$(grep -c . "$SYSLOG")" -eq "$(grep -c '^<' "$SYSLOG")" ] || ns_die "a syslog message spans lines"
    "$JITGATECTL" audit verify "$SPOOL" >/dev/null || ns_die "journal does not verify"
    # 1 MiB of arguments: denied knowingly, recorded, nothing crashes
    local big=() i; for i in $(seq 1 16); do big+=("$(head -c 65536 /dev/zero | tr '\0' 'A')"); done
    sudo_fg alice -- -n /usr/bin/echo "${big[@]}"; expect_eq "$RC" 1 "1 MiB argv"
    expect_contains "$(cat "$T/err")" "the command line is [0-9]+ bytes; jitgate judges at most 49152 bytes"
    expect_journal access.denied '"argv_truncated":true'
    daemon_alive || ns_die "daemon died"
    # a hostile reason and request shown to the approver stay escaped
    sudo_bg alice JITGATE_REASON=$'fix\e]0;pwned\a now' -- /usr/bin/whoami
    local id; id="$(wait_pending 1)"
    local listing; listing="$(ctl bob pending)"
    if printf '%s' "$listing" | has $'\e'; then ns_die "raw ESC shown to the approver"; fi
    expect_contains "$listing" 'reason: fix\\x1b\]0;pwned\\x07 now'
    ctl bob deny "$id" --reason no >/dev/null; sudo_wait
}

case_exit_status_recorded() {
    start
    sudo_fg alice -- -n /bin/sh -c 'exit 3'; expect_eq "$RC" 3 "sudo passes the exit status"
    expect_journal command.finished '"exit_status":3'
    expect_journal command.finished '"status_type":"exit"'
    sudo_fg alice -- -n /bin/sh -c 'exit 0'; expect_eq "$RC" 0
    expect_journal command.finished '"exit_status":0'
}

case_ctrl_c_cancels() {
    start
    sudo_bg alice -- /usr/bin/whoami
    local id; id="$(wait_pending 1)"
    kill -INT "$SUDO_PID"
    sudo_wait
    [ "$RC" -ne 0 ] || ns_die "sudo succeeded after Ctrl-C"
    expect_contains "$(cat "$T/err")" "cancelled; the request was withdrawn"
    local i; for i in $(seq 1 50); do [ "$(journal_count access.cancelled)" -ge 1 ] && break; sleep 0.05; done
    expect_journal access.cancelled "\"request_id\":\"$id\""
    expect_eq "$("$JITGATECTL" --socket "$SOCK" pending)" "no pending requests"
    local out rc2=0; out="$(ctl bob approve "$id" 2>&1)" || rc2=$?
    expect_contains "$out" "no pending request"
}

# Regression: with its descriptors used up (EMFILE), accept() failed and left the connection
# in the backlog, so the level-triggered listening socket woke the event loop at once, forever:
# a core at 100% and a log line per turn. The daemon must turn the surplus away (best-effort
# error frame), record it at a bounded rate, stay idle, and serve again once descriptors free.
case_emfile_does_not_spin() {
    start
    local base; base="$(ls "/proc/$DAEMON_PID/fd" | wc -l)"
    local limit=$((base + 12))
    prlimit --pid "$DAEMON_PID" --nofile="$limit:$limit"
    "$TEST_CLIENT" "$SOCK" hold 100 >"$T/hold.out" 2>&1 &
    local holder=$!; ns_pids+=("$holder")
    local i; for i in $(seq 1 100); do grep -q '^held' "$T/hold.out" && break; sleep 0.05; done
    expect_contains "$(cat "$T/hold.out")" "^held 100$"
    local fds; for i in $(seq 1 100); do fds="$(ls "/proc/$DAEMON_PID/fd" | wc -l)"; [ "$fds" -ge "$limit" ] && break; sleep 0.05; done
    [ "$fds" -ge "$limit" ] || ns_die "the daemon holds only $fds descriptors of $limit: EMFILE was not reached"
    sleep 0.2
    # CPU time (user + system, in clock ticks) over one second: an idle daemon uses ~0.
    local hz t0 t1; hz="$(getconf CLK_TCK)"
    t0="$(awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat")"
    sleep 1
    t1="$(awk '{print $14 + $15}' "/proc/$DAEMON_PID/stat")"
    [ $((t1 - t0)) -le $((hz / 10)) ] || ns_die "jitgated used $((t1 - t0)) of $hz ticks in one second out of descriptors: it spins"
    expect_contains "$(cat "$T/daemon.log")" "jitgated: accept: Too many open files; turned away [0-9]+ connection"
    expect_journal error "out of file descriptors \\(Too many open files\\)"
    [ "$(grep -c "Too many open files" "$T/daemon.log")" -le 2 ] || ns_die "EMFILE is logged without a bound"
    kill "$holder"; wait "$holder" 2>/dev/null || true
    local ok=0; for i in $(seq 1 100); do "$JITGATECTL" --socket "$SOCK" status >/dev/null 2>&1 && { ok=1; break; }; sleep 0.05; done
    expect_eq "$ok" 1 "jitgated answers again once descriptors are free"
    sudo_fg alice -- /usr/bin/true; expect_eq "$RC" 0 "sudo through the allow rule after EMFILE"
}

case_reload() {
    start
    kill -HUP "$DAEMON_PID"
    for i in $(seq 1 50); do grep -q reloaded "$T/daemon.log" && break; sleep 0.05; done
    expect_journal config.loaded '"reload":true'
    # a broken config is refused and the old one keeps working
    echo "  - name: [broken" >>"$CONFIG"
    kill -HUP "$DAEMON_PID"
    for i in $(seq 1 50); do grep -q "reload of" "$T/daemon.log" && break; sleep 0.05; done
    expect_contains "$(cat "$T/daemon.log")" "reload of .* failed, keeping the running config"
    expect_journal error "config reload failed"
    sudo_fg mallory -- -n /usr/bin/true; expect_eq "$RC" 0 "old rules still apply"
}

case_audit_verify() {
    start
    sudo_fg mallory -- -n /usr/bin/true
    sudo_fg alice -- -n /usr/bin/bash
    expect_contains "$("$JITGATECTL" audit verify "$SPOOL")" "OK: [0-9]+ events"
    journal >"$T/edited"
    sed -i '3s/"user":"mallory"/"user":"mallorx"/' "$T/edited"
    local rc=0; "$JITGATECTL" audit verify "$T/edited" >"$T/v" || rc=$?
    expect_eq "$rc" 1 "verify of an edited journal"
    expect_contains "$(cat "$T/v")" "FAILED"
}

case_interactive_prompts() {
    start
    # at a terminal, with nothing in the environment: sudo asks for the reason and the ticket
    as_user_argv alice
    on_tty 'emergency config fix\nCHG7654321\n' "${AS_USER[@]}" sudo /usr/bin/ls /root >"$T/out" 2>&1 &
    SUDO_PID=$!
    local id; id="$(wait_pending 1)"
    local listing; listing="$(ctl bob pending)"
    expect_contains "$listing" "reason: emergency config fix   ticket: CHG7654321"
    expect_contains "$listing" "tty:     /dev/pts/"
    ctl bob approve "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "sudo at a terminal"
    expect_contains "$(cat "$T/out")" "jitgate: reason for this command:"
    expect_contains "$(cat "$T/out")" "jitgate: change ticket \\(\\^CHG"
    expect_journal access.approved '"ticket":"CHG7654321"'
}

# An RFC 3339 UTC time OFFSET seconds from now.
utc_in() { date -u -d "@$(( $(date -u +%s) + $1 ))" +%Y-%m-%dT%H:%M:%SZ; }

# auto_approve: {on_call: true}: alice is on call now (the on-call file an on-call sync would
# write), so her sudo is approved at once, still asked for its reason, and recorded as
# access.auto_approved; dave's shift ended a minute ago, so his waits for a person.
case_on_call_auto_approved() {
    ns_setup
    printf 'on_call:\n  - {user: alice, from: "%s", to: "%s"}\n  - {user: dave, from: "%s", to: "%s"}\n' \
        "$(utc_in -3600)" "$(utc_in 3600)" "$(utc_in -7200)" "$(utc_in -60)" >"$T/oncall.yaml"
    chmod 0644 "$T/oncall.yaml"
    NS_APPROVAL="approval:
  backend: local
  approver_groups: [jitgate-approvers]
  on_call_file: $T/oncall.yaml" ns_config <<'YAML'
rules:
  - name: on-call-ops
    match: {kind: sudo}
    reason: required
    ttl: 10m
    auto_approve: {on_call: true}
YAML
    ns_start_daemon
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 1 "a reason is still required"
    expect_contains "$(cat "$T/err")" "requires a reason"
    sudo_fg alice JITGATE_REASON="paged: disk full" -- -n /usr/bin/whoami; expect_eq "$RC" 0 "auto-approved"
    expect_eq "$(cat "$T/out")" root "command output"
    expect_contains "$(cat "$T/err")" "approved by jitgate automatically \\(on_call\\)"
    expect_journal access.auto_approved '"condition":"on_call"'
    expect_journal access.auto_approved '"reason":"paged: disk full"'
    expect_no_journal access.approved
    expect_contains "$(ctl bob grants)" "approved by jitgate automatically \\(on_call\\)"
    sudo_fg dave JITGATE_REASON="paged too" -- -n /usr/bin/whoami; expect_eq "$RC" 1 "dave is off call"
    expect_contains "$(cat "$T/err")" "filed"
    expect_journal access.requested '"requester":"dave"'
    expect_eq "$(journal_count access.auto_approved)" 1 "auto-approvals"
}

# A freeze window from the change calendar's file, around now: the deny rule for the freeze
# comes first and wins over the allow rule after it; the window is named to the user and in
# the record.
case_freeze_window_denies() {
    ns_setup
    local from to
    from="$(TZ=Europe/Berlin date -d "@$(( $(date +%s) - 3600 ))" +%Y-%m-%dT%H:%M)"
    to="$(TZ=Europe/Berlin date -d "@$(( $(date +%s) + 3600 ))" +%Y-%m-%dT%H:%M)"
    printf 'periods:\n  - {from: "%s", to: "%s", label: CHG0000042}\n' "$from" "$to" >"$T/freeze.yaml"
    chmod 0644 "$T/freeze.yaml"
    ns_config <<YAML
windows:
  freeze:
    timezone: Europe/Berlin
    file: $T/freeze.yaml
rules:
  - name: change-freeze
    match: {kind: sudo, when: {window: freeze}}
    action: deny
    message: change freeze in effect
  - name: read-only
    match: {kind: sudo, commands: ["/usr/bin/true"]}
    action: allow
YAML
    ns_start_daemon
    sudo_fg alice -- -n /usr/bin/true; expect_eq "$RC" 1 "denied during the freeze"
    expect_contains "$(cat "$T/err")" "denied by rule 'change-freeze' \\(window freeze \\($from to $to Europe/Berlin, CHG0000042\\)\\)"
    expect_journal access.denied '"window":"freeze \('"$from"
    expect_no_journal access.allowed_by_rule
}

# The change calendar's file is read again at a reload: a freeze it adds takes effect, and a
# file it breaks is refused naming file and line, the running config (and its freeze) staying.
case_freeze_file_reloaded() {
    ns_setup
    printf 'periods: []\n' >"$T/freeze.yaml"
    chmod 0644 "$T/freeze.yaml"
    ns_config <<YAML
windows:
  freeze:
    timezone: UTC
    file: $T/freeze.yaml
rules:
  - name: change-freeze
    match: {kind: sudo, when: {window: freeze}}
    action: deny
  - name: read-only
    match: {kind: sudo, commands: ["/usr/bin/true"]}
    action: allow
YAML
    ns_start_daemon
    sudo_fg mallory -- -n /usr/bin/true; expect_eq "$RC" 0 "no freeze yet"
    printf 'periods:\n  - {from: "%s", to: "%s"}\n' "$(date -u -d @$(( $(date +%s) - 60 )) +%Y-%m-%dT%H:%M)" \
        "$(date -u -d @$(( $(date +%s) + 3600 )) +%Y-%m-%dT%H:%M)" >"$T/freeze.yaml"
    kill -HUP "$DAEMON_PID"
    for i in $(seq 1 50); do [ "$(journal_count config.loaded '"reload":true')" -ge 1 ] && break; sleep 0.05; done
    sudo_fg mallory -- -n /usr/bin/true; expect_eq "$RC" 1 "the freeze added by the calendar applies"
    expect_journal access.denied '"rule":"change-freeze"'
    printf 'periods:\n  - {from: "%s", to: "tomorrow"}\n' "$(date -u +%Y-%m-%dT%H:%M)" >"$T/freeze.yaml"
    kill -HUP "$DAEMON_PID"
    for i in $(seq 1 50); do grep -q "reload of" "$T/daemon.log" && break; sleep 0.05; done
    expect_contains "$(cat "$T/daemon.log")" "$T/freeze.yaml:2:.*bad time 'tomorrow'"
    expect_journal error "config reload failed"
    sudo_fg mallory -- -n /usr/bin/true; expect_eq "$RC" 1 "the freeze in force stays"
}

case_status() {
    start
    local s; s="$("$JITGATECTL" --socket "$SOCK" status --json)"
    expect_contains "$s" '"pending":0'
    expect_contains "$s" '"host":"fin-db-01"'
}

# --- sudo's intercept mode (docs/intercept.md): every program a command runs inside sudo is
# checked by jitgate too, as a sub-command of the approved command.

RULES_INTERCEPT='rules:
  - name: read-only
    match: {kind: sudo, commands: ["/usr/bin/true"]}
    action: allow
  - name: no-shells
    match: {kind: sudo, commands: ["/usr/bin/bash*", "/bin/bash*"]}
    action: deny
    message: interactive root shells are not allowed on finance hosts
  - name: needs-intercept
    match: {kind: sudo, users: [alice], commands: ["/usr/bin/env *", "/usr/bin/id *"]}
    intercept: true
    scope: session
    ttl: 15m
  - name: session-scope
    match: {kind: sudo, users: [erin]}
    scope: session
    ttl: 15m
  - name: default-approval
    match: {kind: sudo}
    timeout: 30s
    ttl: 15m'

# sudoers_intercept: turns on sudo's intercept mode for every command (rewritten in place:
# /etc/sudoers is a bind mount of $T/sudoers).
sudoers_intercept() { echo 'Defaults intercept' >>"$T/sudoers"; }

# approve_and_get_grant ID: approves request ID as carol; sets GRANT to the grant's id.
approve_and_get_grant() {
    local out; out="$(ctl carol approve "$1")"
    GRANT="$(sed -n 's/.*grant \(G-[0-9A-Z]*\).*/\1/p' <<<"$out")"
    [ -n "$GRANT" ] || ns_die "no grant id in: $out"
}

case_intercept_subcommand_audited() {
    start "$RULES_INTERCEPT"
    sudoers_intercept
    sudo_bg erin -- /bin/sh -c '/usr/bin/id -un; /usr/bin/whoami'
    local id; id="$(wait_pending 1)"
    approve_and_get_grant "$id"
    sudo_wait; expect_eq "$RC" 0 "sudo sh under intercept"
    expect_eq "$(cat "$T/out")" "$(printf 'root\nroot')" "both sub-commands ran"
    # each program the shell ran was checked and recorded, linked to the shell's request
    expect_journal command.intercepted "\"argv\":\\[\"/usr/bin/id\",\"-un\"\\].*\"decision\":\"allowed\".*\"grant_id\":\"$GRANT\".*\"outcome\":\"grant\".*\"parent_grant_id\":\"$GRANT\".*\"parent_request_id\":\"$id\".*\"request_id\":\"$id\""
    expect_journal command.intercepted "\"command\":\"/usr/bin/whoami\".*\"request_id\":\"$id\""
    expect_eq "$(journal_count command.intercepted)" 2 "sub-commands recorded"
    expect_eq "$(journal_count access.requested)" 1 "a sub-command files no request"
    # the shell's own outcome is still reported under its request
    expect_journal command.finished "\"exit_status\":0.*\"request_id\":\"$id\""
    expect_syslog "sub-command .*/usr/bin/id.* allowed" "syslog line for the sub-command"
}

case_intercept_deny_rule_shell_goes_on() {
    start "$RULES_INTERCEPT"
    sudoers_intercept
    sudo_bg erin -- /bin/sh -c '/usr/bin/bash -c "echo inner-ran"; echo "bash-rc=$?"; /usr/bin/echo next-ran'
    local id; id="$(wait_pending 1)"
    approve_and_get_grant "$id"
    sudo_wait; expect_eq "$RC" 0 "the shell went on to the end"
    local out; out="$(cat "$T/out")"
    expect_not_contains "$out" "inner-ran"
    expect_contains "$out" "bash-rc=126"
    expect_contains "$out" "next-ran"
    expect_contains "$(cat "$T/err")" "jitgate: denied: /usr/bin/bash \\(run inside sudo\\): denied by rule 'no-shells': interactive root shells"
    expect_journal command.intercepted "\"command\":\"/usr/bin/bash\".*\"decision\":\"denied\".*\"outcome\":\"denied\".*\"request_id\":\"$id\".*\"rule\":\"no-shells\""
    expect_journal command.intercepted "\"command\":\"/usr/bin/echo\".*\"decision\":\"allowed\""
}

case_intercept_expired_grant_refuses() {
    # on_expiry keep: the shell outlives its grant (docs/sessions.md), and then nothing it runs passes
    start "rules:
  - name: keep-short
    match: {kind: sudo, users: [erin]}
    scope: session
    ttl: 3s
    on_expiry: keep
${RULES_INTERCEPT#rules:
}"
    sudoers_intercept
    mkfifo -m 0666 "$T/go"
    # `read` is a shell built-in: the shell waits for the test without running anything
    sudo_bg erin -- /bin/sh -c "/usr/bin/echo before; read x <$T/go; /usr/bin/echo after; echo \"after-rc=\$?\""
    local id; id="$(wait_pending 1)"
    approve_and_get_grant "$id"
    local i; for i in $(seq 1 100); do grep -q before "$T/out" && break; sleep 0.05; done
    expect_contains "$(cat "$T/out")" "before"
    for i in $(seq 1 100); do ctl erin grants | grep -q "$GRANT" || break; sleep 0.1; done
    expect_not_contains "$(ctl erin grants)" "$GRANT"
    echo go >"$T/go"
    sudo_wait; expect_eq "$RC" 0 "the shell itself ends normally"
    expect_not_contains "$(cat "$T/out")" "^after$"
    expect_contains "$(cat "$T/out")" "after-rc=126"
    expect_contains "$(cat "$T/err")" "jitgate: denied: /usr/bin/echo \\(run inside sudo\\): grant $GRANT that admitted this sudo has expired or was revoked"
    expect_journal command.intercepted "\"decision\":\"denied\".*\"why\":\"grant_gone\""
    expect_journal session.kept_after_expiry "\"grant_id\":\"$GRANT\""
    expect_eq "$(journal_count access.requested)" 1 "a refused sub-command files no request"
}

case_intercept_daemon_down_refuses() {
    start "$RULES_INTERCEPT"
    sudoers_intercept
    mkfifo -m 0666 "$T/go"
    sudo_bg erin -- /bin/sh -c "/usr/bin/echo before; read x <$T/go; /usr/bin/echo after; echo \"after-rc=\$?\""
    local id; id="$(wait_pending 1)"
    ctl carol approve "$id" >/dev/null
    local i; for i in $(seq 1 100); do grep -q before "$T/out" && break; sleep 0.05; done
    expect_contains "$(cat "$T/out")" "before"
    ns_stop_daemon
    echo go >"$T/go"
    sudo_wait; expect_eq "$RC" 0 "the shell itself ends normally"
    expect_contains "$(cat "$T/out")" "after-rc=126"
    expect_contains "$(cat "$T/err")" "jitgate: denied: .*\(fail closed\)"
}

case_intercept_required_without_intercept() {
    start "$RULES_INTERCEPT"
    # without Defaults intercept: denied at once, before anyone is asked to approve
    sudo_fg alice -- /usr/bin/env true; expect_eq "$RC" 1 "rule requires intercept"
    expect_contains "$(cat "$T/err")" "jitgate: denied: rule 'needs-intercept' requires sudo's intercept mode.*enable 'Defaults intercept'"
    expect_journal access.denied '"intercept_required":true'
    expect_eq "$(journal_count access.requested)" 0 "nothing filed"
    # with it, the same command goes for approval as usual, and its sub-command is checked
    sudoers_intercept
    sudo_bg alice -- /usr/bin/env /usr/bin/id -un
    local id; id="$(wait_pending 1)"
    ctl carol approve "$id" >/dev/null
    sudo_wait; expect_eq "$RC" 0 "with Defaults intercept"
    expect_eq "$(cat "$T/out")" root
    expect_journal command.intercepted "\"command\":\"/usr/bin/id\".*\"decision\":\"allowed\".*\"request_id\":\"$id\""
}

case_intercept_weak_modes_refused() {
    start "$RULES_INTERCEPT"
    # intercept through a preloaded library misses static programs: not the intercept a rule asks for
    printf 'Defaults intercept\nDefaults intercept_type=dso\n' >>"$T/sudoers"
    sudo_fg alice -- /usr/bin/env true; expect_eq "$RC" 1 "intercept_type=dso"
    expect_contains "$(cat "$T/err")" "requires sudo's intercept mode.*Defaults intercept_type=trace"
    # nor one that does not verify that what runs is what was checked
    # rewritten in place: /etc/sudoers is a bind mount of this very file (sed -i would replace it)
    grep -v 'intercept_type=dso' "$T/sudoers" >"$T/sudoers.new"; cat "$T/sudoers.new" >"$T/sudoers"
    echo 'Defaults !intercept_verify' >>"$T/sudoers"
    sudo_fg alice -- /usr/bin/env true; expect_eq "$RC" 1 "!intercept_verify"
    expect_contains "$(cat "$T/err")" "remove '!intercept_verify'"
    expect_eq "$(journal_count access.requested)" 0 "nothing filed"
}

case_intercept_loader_env_refused() {
    start "$RULES_INTERCEPT"
    sudoers_intercept
    # /usr/bin/true is allowed by a rule; with LD_PRELOAD set by the shell it is not the same thing
    sudo_bg erin -- /bin/sh -c 'LD_PRELOAD=/nonexistent/x.so /usr/bin/true; echo "preload-rc=$?"; /usr/bin/true; echo "plain-rc=$?"'
    local id; id="$(wait_pending 1)"
    approve_and_get_grant "$id"
    sudo_wait; expect_eq "$RC" 0 "the shell went on"
    expect_contains "$(cat "$T/out")" "preload-rc=126"
    expect_contains "$(cat "$T/out")" "plain-rc=0"
    expect_contains "$(cat "$T/err")" "jitgate: denied: /usr/bin/true \\(run inside sudo\\): its environment sets LD_PRELOAD"
    expect_journal command.intercepted '"decision":"denied".*"env_code_loading":\["LD_PRELOAD"\].*"why":"code_loading_env"'
}

# --- Sessions end when the grant ends (docs/sessions.md) ---------------------------------------
# The smallest times the config allows keep each case to a few seconds: a 2s warning, a 1s grace.
RULES_SESSIONS='sessions:
  warn_before: 2s
  grace: 1s
rules:
  - name: kept
    match: {kind: sudo, commands: ["/usr/bin/sleep 3"]}
    scope: command
    ttl: 1s
    on_expiry: keep
  - name: extendable
    match: {kind: sudo, commands: ["/usr/bin/sleep 299"]}
    scope: session
    ttl: 12s
  - name: short
    match: {kind: sudo, commands: ["/usr/bin/sleep *"]}
    scope: session
    ttl: 4s
  - name: long
    match: {kind: sudo}
    scope: session
    ttl: 15m'

# sudo_on_tty USER ARGS...: sudo at a fresh terminal in the background (all the terminal shows,
# the daemon's lines included, goes to $T/tty.out); sets SUDO_PID (script's).
sudo_on_tty() {
    local user="$1"; shift
    as_user_argv "$user"
    on_tty "" "${AS_USER[@]}" sudo "$@" >"$T/tty.out" 2>&1 &
    SUDO_PID=$!
}

# wait_session USER: waits until USER has a live session under a grant; prints its grant id.
wait_session() {
    local i out
    for i in $(seq 1 100); do
        out="$(ctl "$1" sessions --json | sed -n 's/.*"grant_id":"\(G-[0-9A-Z]*\)".*/\1/p' | head -n 1)"
        [ -n "$out" ] && { printf '%s\n' "$out"; return 0; }
        sleep 0.05
    done
    ns_die "no live session of $1 under a grant: $(ctl root sessions 2>&1)"
}

# ended_within SECONDS: sudo (SUDO_PID) ends within SECONDS; sets RC.
ended_within() {
    local i
    for i in $(seq 1 $(($1 * 20))); do kill -0 "$SUDO_PID" 2>/dev/null || { sudo_wait; return 0; }; sleep 0.05; done
    ns_die "sudo still runs $1 s later: $(cat "$T/tty.out" 2>/dev/null)"
}

case_session_warned_then_ended_at_expiry() {
    start "$RULES_SESSIONS"
    sudo_on_tty alice /usr/bin/sleep 300
    local id; id="$(wait_pending 1)"
    ctl bob approve "$id" >/dev/null
    local grant; grant="$(wait_session alice)"
    local listing; listing="$(ctl alice sessions)"
    expect_contains "$listing" "^$grant  alice  sudo  pid [0-9]+  tty /dev/pts/[0-9]+  started .* time left [0-9]s"
    expect_contains "$listing" "/usr/bin/sleep 300"
    expect_eq "$(ctl mallory sessions)" "no live sessions under grants" "mallory sees nobody else's session"
    ended_within 8
    local tty; tty="$(cat "$T/tty.out")"
    expect_contains "$tty" "jitgate: grant $grant ends in [0-9]s \\(at [0-9:]+ UTC\\); this session will then be ended"
    expect_contains "$tty" "jitgate: grant $grant has expired; ending this session now"
    expect_journal session.ended_by_expiry "\"grant_id\":\"$grant\".*\"reason\":\"expiry\".*\"signalled\":true.*\"tty\":\"/dev/pts/[0-9]+\""
    expect_journal session.ended_by_expiry "\"request_id\":\"$id\""
    expect_journal command.finished "\"ended_by\":\"expiry\""
    # the warning came before the end: at least ~2 s between approval and the end
    expect_eq "$(ctl alice sessions)" "no live sessions under grants" "nothing left"
}

case_session_ended_by_revoke() {
    start "$RULES_SESSIONS"
    sudo_on_tty erin /usr/bin/sh -c 'trap "" HUP; exec /usr/bin/tail -f /dev/null'
    local id; id="$(wait_pending 1)"
    ctl carol approve "$id" >/dev/null
    local grant; grant="$(wait_session erin)"
    expect_contains "$(ctl bob revoke "$grant" --reason "incident closed")" "revoked $grant; ended 1 session"
    ended_within 3
    expect_contains "$(cat "$T/tty.out")" "jitgate: grant $grant was revoked by bob \\(incident closed\\); ending this session now"
    expect_journal grant.revoked "\"grant_id\":\"$grant\""
    expect_journal session.ended_by_revoke "\"grant_id\":\"$grant\".*\"reason\":\"revoke\".*\"revoked_by\":\"bob\""
}

case_session_kept_on_expiry_keep() {
    start "$RULES_SESSIONS"
    sudo_bg alice -- /usr/bin/sleep 3
    local id; id="$(wait_pending 1)"
    ctl bob approve "$id" >/dev/null
    wait_session alice >/dev/null
    sleep 2 # the 1s grant is over; the command goes on
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "the session under on_expiry: keep was ended"
    expect_journal session.kept_after_expiry "\"request_id\":\"$id\""
    sudo_wait; expect_eq "$RC" 0 "the command ran to its end"
    expect_no_journal session.ended_by_expiry
    expect_journal command.finished '"exit_status":0.*"kept_after_expiry":true'
}

case_done_ends_own_session() {
    start "$RULES_SESSIONS"
    sudo_bg erin -- /usr/bin/sleep 300
    local id; id="$(wait_pending 1)"
    ctl carol approve "$id" >/dev/null
    local grant; grant="$(wait_session erin)"
    local rc=0 out; out="$(ctl mallory done "$grant" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "mallory cannot end erin's grant"
    expect_contains "$out" "grant $grant is not yours"
    rc=0; out="$(ctl bob done "$grant" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "nor can an approver, with done"
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "the session ended on a refused done"
    expect_contains "$(ctl erin done)" "released $grant; ended 1 session"
    ended_within 3
    expect_journal grant.released "\"grant_id\":\"$grant\".*\"released_by\":\"erin\""
    expect_journal session.ended_by_revoke "\"reason\":\"released\""
    expect_eq "$(ctl erin grants)" "no live grants" "the grant is gone"
}

case_extend_needs_a_new_approval() {
    start "$RULES_SESSIONS"
    # The 12 s rule: the steps up to the extension's approval (a dozen jitgatectl calls) must
    # fit in the first grant's life even on a loaded machine.
    sudo_bg alice -- /usr/bin/sleep 299
    local id; id="$(wait_pending 1)"
    ctl bob approve "$id" >/dev/null
    local grant; grant="$(wait_session alice)"
    local old_end; old_end="$(ctl alice grants --json | sed -n 's/.*"expires":\([0-9]*\).*/\1/p')"
    [ -n "$old_end" ] || ns_die "no expiry for $grant"
    local rc=0 out; out="$(ctl mallory extend "$grant" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "mallory cannot extend alice's grant"
    expect_contains "$(ctl alice extend "$grant" --reason "reindex runs long")" "request R-[0-9A-Z]{10} filed to extend $grant"
    local ext; ext="$(wait_pending 1)"
    expect_contains "$(ctl bob pending)" "extends: grant $grant"
    expect_contains "$(ctl alice requests)" "^$ext  pending"
    rc=0; out="$(ctl alice approve "$ext" 2>&1)" || rc=$?
    expect_eq "$rc" 1 "no self-approval of an extension"
    # approved at least 1.5 s after the first: the new 12 s grant ends that much after the old one
    sleep 1.5
    ctl bob approve "$ext" >/dev/null
    # past the old grant's end (whole seconds): the session goes on under the new grant
    local i; for i in $(seq 1 400); do [ "$(date +%s)" -gt "$old_end" ] && break; sleep 0.05; done
    sleep 0.2
    kill -0 "$SUDO_PID" 2>/dev/null || ns_die "the extended session ended at the old grant's expiry"
    expect_no_journal session.ended_by_expiry
    local now; now="$(wait_session alice)"
    [ "$now" != "$grant" ] || ns_die "the session still runs under the old grant $grant"
    expect_journal access.approved "\"extends\":\"$grant\""
    ctl bob revoke "$now" >/dev/null
    ended_within 3
}

case_requests_show_own_decisions() {
    start "$RULES_SESSIONS"
    sudo_fg alice -- -n /usr/bin/whoami; expect_eq "$RC" 1 "filed"
    local id; id="$(wait_pending 1)"
    expect_contains "$(ctl alice requests)" "^$id  pending  sudo  approvals 0/1"
    expect_eq "$(ctl mallory requests)" "no requests of yours" "only the caller's own"
    ctl bob deny "$id" --reason "use the runbook" >/dev/null
    local mine; mine="$(ctl alice requests)"
    expect_contains "$mine" "^$id  denied  sudo"
    expect_contains "$mine" "denied by bob: use the runbook"
    expect_contains "$(ctl alice requests --json)" "\"outcome\":\"denied\""
}

"case_$1"
echo "PASS: $1"
