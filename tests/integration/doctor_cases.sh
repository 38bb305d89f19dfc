#!/bin/bash
# Integration tests of `jitgatectl doctor` on the real host view of a private mount namespace:
# sudo.conf, sudoers, /etc/pam.d and sshd_config are bind-mounted crafted files, jitgated runs
# (or not), and the real sudo shows that the sudo.conf doctor calls fine does gate. Each case
# opens or closes a few doors and asserts the exact findings of the checks it controls; the
# checks that depend on the machine itself (clock, setuid programs, cron, polkit, the host's
# own groups) are left out of the exact comparison by their ids.
# ctest runs: unshare -m bash doctor_cases.sh CASE.
source "$(dirname "$0")/../support/ns.sh"

RULES='rules:
  - name: read-only
    match: {kind: sudo, commands: ["/usr/bin/true"]}
    action: allow'

# The plugin at a root-owned place: the build tree's directories may belong to anyone.
# Sets GATE_PLUGIN.
doctor_plugin() {
    mkdir -p "$T/lib"
    install -m 0644 "$PLUGIN" "$T/lib/sudo_jitgate.so"
    GATE_PLUGIN="$T/lib/sudo_jitgate.so"
}

# The PAM stacks of docs/pam.md, self-contained (no include of the host's common-* files).
doctor_pam_closed() {
    ns_pam sshd <<'PAM'
auth       requisite    pam_jitgate.so break_glass_group=jitgate-breakglass
auth       required     pam_permit.so
account    [success=1 default=ignore] pam_succeed_if.so quiet user ingroup jitgate-breakglass
account    required     pam_jitgate.so break_glass_group=jitgate-breakglass
account    required     pam_permit.so
session    required     pam_jitgate.so
PAM
    ns_pam login <<'PAM'
auth       required   pam_unix.so
auth       requisite  pam_jitgate.so break_glass_group=jitgate-breakglass
account    required   pam_unix.so
session    required   pam_jitgate.so
PAM
    ns_pam su <<'PAM'
auth       sufficient pam_rootok.so
auth       required   pam_unix.so
auth       requisite  pam_jitgate.so break_glass_group=jitgate-breakglass
session    required   pam_jitgate.so
PAM
}

# sshd_config as docs/pam.md sets it up; root's keys where AuthorizedKeysFile says.
doctor_sshd() { # TEXT
    [ -f /etc/ssh/sshd_config ] || ns_die "needs the machine's /etc/ssh/sshd_config (openssh-server) to bind-mount over"
    mkdir -p "$T/ssh" "$T/keys"
    printf '%s\n' "$1" >"$T/ssh/sshd_config"
    chmod 0644 "$T/ssh/sshd_config"
    mount --bind "$T/ssh/sshd_config" /etc/ssh/sshd_config
    echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHdoY3RvcnRlc3RrZXkAAAAAAAAAAAAAAAAAAAAAAAAA root@old" >"$T/keys/root"
}

# Runs doctor on the namespace's "/" with the test's config; sets DOCTOR (the JSON), DOCTOR_RC.
run_doctor() {
    DOCTOR_RC=0
    DOCTOR="$("$JITGATECTL" --config "$CONFIG" doctor --json)" || DOCTOR_RC=$?
    jq -e '.version == 1 and (.findings | type == "array")' <<<"$DOCTOR" >/dev/null || ns_die "not doctor JSON: $DOCTOR"
    # The exit status says whether anything but info was found, whatever the machine adds.
    local serious; serious="$(jq '.summary.critical + .summary.warning' <<<"$DOCTOR")"
    if [ "$serious" -gt 0 ]; then expect_eq "$DOCTOR_RC" 1 "exit status with $serious findings"
    else expect_eq "$DOCTOR_RC" 0 "exit status with nothing found"; fi
}

# The findings of the checks this test controls, one "severity check subject" per line, sorted.
controlled() {
    jq -r '.findings[] | select(.check | test("^(config|sudo_conf|sudoers|pam|sshd|daemon|spool|groups\\.break_glass)"))
           | "\(.severity) \(.check) \(.subject)"' <<<"$DOCTOR" | LC_ALL=C sort
}

expect_findings() { # EXPECTED (lines)
    local got; got="$(controlled)"
    [ "$got" = "$1" ] || ns_die "findings differ
--- expected
$1
--- got
$got
--- all
$DOCTOR"
}

setup_closed() {
    ns_setup
    printf '%s\n' "$RULES" | ns_config
    chmod 0750 "$SPOOL"
    doctor_plugin
    cat >"$T/sudo.conf" <<SC
Plugin sudoers_policy sudoers.so
Plugin jitgate_approval $GATE_PLUGIN socket=$SOCK break_glass_group=jitgate-breakglass
Plugin jitgate_audit $GATE_PLUGIN socket=$SOCK break_glass_group=jitgate-breakglass
SC
    doctor_pam_closed
    doctor_sshd "UsePAM yes
PermitRootLogin no
AuthorizedKeysFile $T/keys/%u
AuthenticationMethods publickey,keyboard-interactive"
}

case_doors_closed() {
    setup_closed
    ns_start_daemon
    run_doctor
    # What remains by design: ns.sh's sudoers lets the admins run ALL (approvable, but keys to
    # the gate), dave is on break-glass, and break-glass members skip sshd's account hook.
    expect_findings "info groups.break_glass_member dave
info pam.break_glass_skip /etc/pam.d/sshd:3
warning sudoers.all /etc/sudoers:4"
    expect_contains "$(jq -r '.findings[] | select(.check == "sudoers.all") | .what' <<<"$DOCTOR")" \
        "^alice,dave,erin,mallory may run ALL commands as root"
    # The sudo.conf doctor found in order does gate: the real sudo asks jitgated.
    sudo_fg alice -- -n /usr/bin/true
    expect_eq "$RC" 0 "sudo through jitgate"
    expect_journal access.allowed_by_rule '"rule":"read-only"'
    # And the text form says the same for people.
    local text rc=0
    text="$("$JITGATECTL" --config "$CONFIG" doctor)" || rc=$?
    expect_eq "$rc" "$DOCTOR_RC" "text and JSON exit status"
    expect_contains "$text" "\[sudoers.all\] /etc/sudoers:4"
    expect_contains "$text" "why:  jitgate still holds this command for approval"
}

case_doors_open() {
    setup_closed
    # sudo.conf without the approval line; the audit line's plugin writable by a group.
    cat >"$T/sudo.conf" <<SC
Plugin sudoers_policy sudoers.so
Plugin jitgate_audit $GATE_PLUGIN socket=$SOCK
SC
    chmod 0664 "$GATE_PLUGIN"
    # An editor rule in a sudoers drop-in of its own.
    mkdir -p "$T/sudoers.d"
    echo "mallory ALL=(root) /usr/bin/vim /etc/motd" >"$T/sudoers.d/mallory"
    chmod 0440 "$T/sudoers.d/mallory"
    echo "@includedir $T/sudoers.d" >>"$T/sudoers"
    # sshd: jitgate gone from the account stack; su: a sufficient module before jitgate.
    ns_pam sshd <<'PAM'
auth       requisite    pam_jitgate.so
auth       required     pam_permit.so
account    required     pam_permit.so
session    required     pam_jitgate.so
PAM
    ns_pam su <<'PAM'
auth       sufficient pam_unix.so
auth       requisite  pam_jitgate.so
session    required   pam_jitgate.so
PAM
    doctor_sshd "UsePAM no
PermitRootLogin yes
AuthorizedKeysFile $T/keys/%u"
    chmod 0755 "$SPOOL"
    # jitgated is not started.
    run_doctor
    expect_eq "$DOCTOR_RC" 1 "exit status"
    expect_findings "critical daemon.down $SOCK
critical pam.bypass /etc/pam.d/su:1
critical pam.missing /etc/pam.d/sshd (account)
critical sshd.use_pam /etc/ssh/sshd_config:1
critical sudo_conf.approval_missing /etc/sudo.conf
critical sudo_conf.plugin_writable $GATE_PLUGIN
info groups.break_glass_member dave
warning spool.readable $SPOOL
warning sshd.permit_root_login /etc/ssh/sshd_config:2
warning sshd.root_authorized_keys $T/keys/root
warning sudoers.all /etc/sudoers:4
warning sudoers.editor $T/sudoers.d/mallory:1"
    # Closing two doors takes their findings away, and only theirs.
    chmod 0644 "$GATE_PLUGIN"
    ns_start_daemon
    run_doctor
    expect_not_contains "$(controlled)" "plugin_writable|daemon.down"
    expect_contains "$(controlled)" "critical sudo_conf.approval_missing /etc/sudo.conf"
}

case_unreadable_is_a_finding() {
    setup_closed
    ns_start_daemon
    # A sudoers include doctor cannot read: the host is not reported clean.
    mkdir -p "$T/sudoers.d/oops"
    echo "@include $T/sudoers.d/oops" >>"$T/sudoers"
    run_doctor
    expect_eq "$DOCTOR_RC" 1 "exit status"
    expect_contains "$(controlled)" "^critical sudoers.unreadable $T/sudoers.d/oops$"
}

"case_$1"
echo "PASS: $1"
