#!/bin/bash
# tests/packaging/packages.sh — the packaging test (ctest label "packaging"). As root, on Debian:
#   1. installs the build tools (scripts/install-packaging-deps.sh) and builds the .deb and .rpm
#      from this tree (packaging/build-packages.sh --worktree) into a scratch directory;
#   2. lintian (no errors) and rpmlint (no errors), then checks that every binary, plugin, unit,
#      tmpfiles entry, man page and config is where the distribution expects it, root-owned and
#      not group- or world-writable;
#   3. installs the .debs on this machine with dpkg -i, checks the user, state directory,
#      conffile and unit enablement;
#   4. in a private mount namespace (this script again, with --inside), starts the installed
#      jitgated as the jitgate user on the installed config (adjusted for the test), checks its
#      systemd readiness message, and runs one approved sudo through the installed plugin with
#      the shipped sudo.conf example;
#   5. purges the packages and checks that nothing is left: files, user, group.
# JITGATE_PKGTEST_PREBUILT=DIR skips the build and tests the packages in DIR (an --out of
# packaging/build-packages.sh), for quicker runs while working on the test itself.
# The packages are purged on every exit path, also on failure.
set -euo pipefail
# grep for pipelines under pipefail: `cmd | grep -q` can fail on a match (SIGPIPE to cmd).
has() { grep "$@" >/dev/null; }

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { printf '== %s (%ss)\n' "$*" "$SECONDS"; }

# ---------------------------------------------------------------------------------------------
# Part 4, inside `unshare -m`: users alice (admin) and bob (approver) exist only here.
if [ "${1:-}" = --inside ]; then
    T="$2"
    export JITGATE_BUILD="${JITGATE_BUILD:-$T}" # ns.sh wants it; only the helpers below are used
    source "$root/tests/support/ns.sh"
    JITGATED=/usr/sbin/jitgated
    JITGATECTL=/usr/bin/jitgatectl
    SOCK=/run/jitgate/jitgated.sock
    SPOOL=/var/lib/jitgate/spool
    NS_SHOW_ON_FAIL="$T/daemon.log $T/sudo.err"
    trap ns_cleanup EXIT
    ns_users

    # What systemd's RuntimeDirectory= would give the daemon, private to this namespace.
    mount -t tmpfs -o mode=0755,uid="$(id -u jitgate)",gid="$(id -g jitgate)" tmpfs /run/jitgate

    # The installed config, adjusted: not a finance host (so one approval, no ticket) and no
    # syslog (this machine may have no /dev/log). Everything else is as shipped.
    sed -e 's/^  tags: \[finance\]$/  tags: []/' -e 's/^  syslog: true$/  syslog: false/' \
        /etc/jitgate/jitgate.yaml >"$T/jitgate.yaml"
    grep -q '^  tags: \[\]$' "$T/jitgate.yaml" && grep -q '^  syslog: false$' "$T/jitgate.yaml" ||
        ns_die "the shipped jitgate.yaml changed shape; adjust the sed lines in $0"
    chmod 0644 "$T/jitgate.yaml"
    mount --bind "$T/jitgate.yaml" /etc/jitgate/jitgate.yaml

    # sudo: the admins may run anything (the gate under test is jitgate), and sudo.conf is the
    # example the sudo-jitgate package ships, verbatim.
    cat >"$T/sudoers" <<'SU'
Defaults !lecture, !use_pty, !mail_badpass, env_reset
root ALL=(ALL:ALL) ALL
alice ALL=(ALL:ALL) NOPASSWD: ALL
SU
    chmod 0440 "$T/sudoers"
    mount --bind "$T/sudoers" /etc/sudoers
    grep -v '^#' /usr/share/doc/sudo-jitgate/examples/sudo.conf.example >"$T/sudo.conf"
    grep -q '^Plugin jitgate_approval /usr/libexec/jitgate/sudo_jitgate.so' "$T/sudo.conf" ||
        ns_die "the shipped sudo.conf example does not load the installed plugin"
    mount --bind "$T/sudo.conf" /etc/sudo.conf

    # The daemon as systemd would run it: the unit's user, command line and NOTIFY_SOCKET.
    notify="@jitgate-packaging-test-$$"
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1][1:])
s.settimeout(30)
print(s.recv(4096).decode(), flush=True)' "$notify" >"$T/notify.out" 2>&1 &
    ns_pids+=($!)
    sleep 0.2
    su_daemon=(setpriv --reuid=jitgate --regid=jitgate --clear-groups --no-new-privs --inh-caps=-all)
    "${su_daemon[@]}" /usr/sbin/jitgated --check-config /etc/jitgate/jitgate.yaml >/dev/null ||
        ns_die "the installed jitgated rejects the installed config"
    NOTIFY_SOCKET="$notify" "${su_daemon[@]}" /usr/sbin/jitgated --config /etc/jitgate/jitgate.yaml \
        >>"$T/daemon.log" 2>&1 &
    DAEMON_PID=$!
    ns_pids+=("$DAEMON_PID")
    for _ in $(seq 1 100); do
        grep -q READY=1 "$T/notify.out" 2>/dev/null && break
        kill -0 "$DAEMON_PID" 2>/dev/null || ns_die "the installed jitgated exited at start"
        sleep 0.05
    done
    grep -q READY=1 "$T/notify.out" || ns_die "no READY=1 on NOTIFY_SOCKET: $(cat "$T/notify.out")"
    [ -S "$SOCK" ] && [ "$(stat -c %U "$SOCK")" = jitgate ] || ns_die "no socket owned by jitgate at $SOCK"
    "$JITGATECTL" status >/dev/null || ns_die "jitgatectl status (default socket) failed"

    # One approved sudo through the installed plugin.
    as_user_argv alice
    ("${AS_USER[@]}" JITGATE_REASON="packaging test" sudo /usr/bin/whoami) >"$T/sudo.out" 2>"$T/sudo.err" &
    sudo_pid=$!
    id="$(wait_pending 1)"
    expect_contains "$(ctl bob approve "$id")" "approved $id; grant G-"
    rc=0; wait "$sudo_pid" || rc=$?
    expect_eq "$rc" 0 "sudo exit status"
    expect_eq "$(cat "$T/sudo.out")" root "command output"
    expect_contains "$(cat "$T/sudo.err")" "approved by bob"
    expect_journal access.approved "\"request_id\":\"$id\""
    expect_journal command.finished '"exit_status":0'
    "$JITGATECTL" audit verify "$SPOOL" >/dev/null || ns_die "audit verify failed on $SPOOL"
    for f in "$SPOOL" "$SPOOL"/seg-*.jsonl; do
        [ "$(stat -c %U "$f")" = jitgate ] || ns_die "$f is not owned by jitgate"
    done
    echo "approved sudo through the installed plugin: request $id"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || fail "the packaging test runs as root (it installs and purges packages)"
command -v dpkg >/dev/null && command -v apt-get >/dev/null || { echo "SKIP: not a Debian system"; exit 77; }

debs=(jitgate sudo-jitgate libpam-jitgate)
for p in "${debs[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | has 'ok installed\|config-files'; then
        fail "$p is already installed on this machine; this test would replace and purge it"
    fi
done
getent passwd jitgate >/dev/null && fail "a jitgate user exists already; this test would delete it on purge"

T="$(mktemp -d /tmp/jitgate-pkgtest.XXXXXX)"
chmod 0755 "$T"
installed=0
cleanup() {
    local rc=$?
    if [ "$installed" = 1 ]; then
        dpkg --purge "${debs[@]}" >"$T/purge-on-exit.log" 2>&1 || cat "$T/purge-on-exit.log" >&2
    fi
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

step "installing build tools"
"$root/scripts/install-packaging-deps.sh"

if [ -n "${JITGATE_PKGTEST_PREBUILT:-}" ]; then # developers: reuse packaging/out of an earlier build
    step "using the packages in $JITGATE_PKGTEST_PREBUILT"
    cp -a "$JITGATE_PKGTEST_PREBUILT" "$T/out"
else
    step "building the .deb and .rpm"
    "$root/packaging/build-packages.sh" --worktree --out "$T/out" >"$T/build.log" 2>&1 ||
        { cat "$T/build.log" >&2; fail "packaging/build-packages.sh failed"; }
fi
version="$(sed -n 's/^project(jitgate VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")"
arch="$(dpkg --print-architecture)"
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH)"
deb_file() { echo "$T/out/deb/$1_${version}_${arch}.deb"; }
rpm_file() { ls "$T/out/rpm/$1-${version}-"*.rpm 2>/dev/null | grep -v '\.src\.rpm$' | head -n 1; }
for p in "${debs[@]}"; do [ -f "$(deb_file "$p")" ] || fail "no $(deb_file "$p")"; done
for p in jitgate jitgate-sudo jitgate-pam; do [ -n "$(rpm_file "$p")" ] || fail "no $p RPM"; done

step "lintian"
lintian --fail-on error "$T/out/deb/"*.changes | tee "$T/lintian.txt" ||
    fail "lintian reported errors"
if command -v rpmlint >/dev/null; then
    step "rpmlint"
    rpmlint -r "$root/packaging/rpm/jitgate.rpmlintrc" "$T/out/rpm/"*.rpm | tee "$T/rpmlint.txt" ||
        fail "rpmlint reported errors"
else
    echo "rpmlint is not installed; skipped"
fi

step "package contents"
# listing: "mode owner/group path" per file, from either format
deb_listing() { dpkg-deb -c "$1" | awk '{ p = $6; sub(/^\./, "", p); print $1, $2, p }'; }
rpm_listing() { rpm -qp --qf '[%{FILEMODES:perms} %{FILEUSERNAME}/%{FILEGROUPNAME} %{FILENAMES}\n]' "$1"; }
# expect_file LISTING PATH MODE OWNER: PATH is in LISTING with exactly that mode and owner.
expect_file() {
    local line
    line="$(printf '%s\n' "$1" | awk -v p="$2" '$3 == p' | head -n 1)"
    [ -n "$line" ] || fail "$2 is not in the package"
    [ "$line" = "$3 $4 $2" ] || fail "$2: expected '$3 $4', got '${line% *}'"
}
# no_writable LISTING NAME: every file and directory is root-owned and not group- or
# world-writable (symbolic links aside), except the daemon's own state and runtime directories.
no_writable() {
    local bad
    bad="$(printf '%s\n' "$1" | awk '$3 != "/var/lib/jitgate" && $3 != "/run/jitgate" && substr($1,1,1) != "l" &&
                                   ($2 != "root/root" || substr($1,6,1) == "w" || substr($1,9,1) == "w")')"
    [ -z "$bad" ] || fail "$2: files not root-owned or writable by others:"$'\n'"$bad"
}
man_pages() { # SECTION-PAGES of the man pages in man/ that belong to package $1
    local page
    for page in "$root"/man/*.[58]; do
        [ -f "$page" ] || continue
        page="$(basename "$page")"
        case "$1:$page" in
            jitgate:jitgated.8|jitgate:jitgatectl.8|jitgate:jitgate.yaml.5|sudo:sudo_jitgate.8|pam:pam_jitgate.8)
                echo "man${page##*.}/$page" ;;
        esac
    done
}

L="$(deb_listing "$(deb_file jitgate)")"
expect_file "$L" /usr/sbin/jitgated -rwxr-xr-x root/root
expect_file "$L" /usr/bin/jitgatectl -rwxr-xr-x root/root
expect_file "$L" /etc/jitgate/jitgate.yaml -rw-r--r-- root/root
expect_file "$L" /lib/systemd/system/jitgated.service -rw-r--r-- root/root
expect_file "$L" /usr/lib/tmpfiles.d/jitgate.conf -rw-r--r-- root/root
for m in $(man_pages jitgate); do expect_file "$L" "/usr/share/man/$m.gz" -rw-r--r-- root/root; done
no_writable "$L" jitgate.deb
dpkg-deb -f "$(deb_file jitgate)" Depends | has adduser || fail "jitgate.deb does not depend on adduser"
dpkg-deb --ctrl-tarfile "$(deb_file jitgate)" | tar -xOf - ./conffiles | has -x /etc/jitgate/jitgate.yaml ||
    fail "jitgate.yaml is not a conffile"
L="$(deb_listing "$(deb_file sudo-jitgate)")"
expect_file "$L" /usr/libexec/jitgate/sudo_jitgate.so -rw-r--r-- root/root
expect_file "$L" /usr/share/doc/sudo-jitgate/examples/sudo.conf.example -rw-r--r-- root/root
for m in $(man_pages sudo); do expect_file "$L" "/usr/share/man/$m.gz" -rw-r--r-- root/root; done
no_writable "$L" sudo-jitgate.deb
L="$(deb_listing "$(deb_file libpam-jitgate)")"
expect_file "$L" "/lib/$multiarch/security/pam_jitgate.so" -rw-r--r-- root/root
for m in $(man_pages pam); do expect_file "$L" "/usr/share/man/$m.gz" -rw-r--r-- root/root; done
no_writable "$L" libpam-jitgate.deb
for p in "${debs[@]}"; do
    if dpkg-deb -c "$(deb_file "$p")" | grep -Eq ' \./etc/(sudo\.conf|sudoers|pam\.d)'; then fail "$p ships a sudo or PAM config"; fi
done

R="$(rpm_listing "$(rpm_file jitgate)")"
expect_file "$R" /usr/sbin/jitgated -rwxr-xr-x root/root
expect_file "$R" /usr/bin/jitgatectl -rwxr-xr-x root/root
expect_file "$R" /etc/jitgate/jitgate.yaml -rw-r--r-- root/root
expect_file "$R" /usr/lib/systemd/system/jitgated.service -rw-r--r-- root/root
expect_file "$R" /usr/lib/tmpfiles.d/jitgate.conf -rw-r--r-- root/root
expect_file "$R" /var/lib/jitgate drwxr-x--- jitgate/jitgate
for m in $(man_pages jitgate); do expect_file "$R" "/usr/share/man/$m.gz" -rw-r--r-- root/root; done
no_writable "$R" jitgate.rpm
rpm -qp --configfiles "$(rpm_file jitgate)" | has -x /etc/jitgate/jitgate.yaml || fail "jitgate.yaml is not %config in the RPM"
rpm -qp --scripts "$(rpm_file jitgate)" | has 'systemctl --no-reload preset jitgated.service\|systemd-update-helper install-system-units jitgated.service' ||
    fail "the RPM's %post does not preset jitgated.service"
R="$(rpm_listing "$(rpm_file jitgate-sudo)")"
expect_file "$R" /usr/libexec/jitgate/sudo_jitgate.so -rw-r--r-- root/root
for m in $(man_pages sudo); do expect_file "$R" "/usr/share/man/$m.gz" -rw-r--r-- root/root; done
no_writable "$R" jitgate-sudo.rpm
R="$(rpm_listing "$(rpm_file jitgate-pam)")"
expect_file "$R" /usr/lib64/security/pam_jitgate.so -rw-r--r-- root/root
for m in $(man_pages pam); do expect_file "$R" "/usr/share/man/$m.gz" -rw-r--r-- root/root; done
no_writable "$R" jitgate-pam.rpm

step "installing the .debs (dpkg -i)"
# What exists before, to compare after the purge (apt/dpkg's own bookkeeping and logs aside).
snapshot() {
    find /etc /usr /lib /var/lib /run /opt -xdev \
        \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /run/sudo -o -path /var/lib/sudo \
           -o -path '/run/user' -o -path '*/__pycache__' \) -prune -o -print 2>/dev/null | sort
}
snapshot >"$T/before.txt"
installed=1
dpkg -i "$(deb_file jitgate)" "$(deb_file sudo-jitgate)" "$(deb_file libpam-jitgate)" >"$T/install.log" 2>&1 ||
    { cat "$T/install.log" >&2; fail "dpkg -i failed"; }
uid="$(id -u jitgate)" || fail "postinst did not create the jitgate user"
[ "$uid" -lt 1000 ] || fail "jitgate is not a system user (uid $uid)"
getent passwd jitgate | has ':/usr/sbin/nologin$' || fail "jitgate has a login shell"
[ "$(stat -c '%a %U:%G' /var/lib/jitgate)" = "750 jitgate:jitgate" ] ||
    fail "/var/lib/jitgate: $(stat -c '%a %U:%G' /var/lib/jitgate), expected 750 jitgate:jitgate"
for f in /usr/libexec/jitgate/sudo_jitgate.so "/lib/$multiarch/security/pam_jitgate.so" /etc/jitgate/jitgate.yaml; do
    [ "$(stat -c '%a %U:%G' "$f")" = "644 root:root" ] || fail "$f: $(stat -c '%a %U:%G' "$f"), expected 644 root:root"
done
[ -L /etc/systemd/system/multi-user.target.wants/jitgated.service ] || fail "jitgated.service is not enabled"
if grep -q jitgate /etc/sudo.conf 2>/dev/null; then fail "installing changed /etc/sudo.conf"; fi
if grep -rq jitgate /etc/pam.d 2>/dev/null; then fail "installing changed /etc/pam.d"; fi
if command -v systemd-analyze >/dev/null; then
    # The installed unit parses, and its hardening does not regress (docs/systemd.md: 1.4).
    # systemd-analyze itself writes files (/run/systemd/systemd-units-load); what appears while
    # it runs is the test's own tools', not the packages', so the purge check leaves it out.
    snapshot >"$T/tools-before.txt"
    systemd-analyze verify --man=no /lib/systemd/system/jitgated.service >"$T/verify.txt" 2>&1 ||
        { cat "$T/verify.txt" >&2; fail "systemd-analyze verify rejects the installed unit"; }
    systemd-analyze security --offline=true --threshold=20 /lib/systemd/system/jitgated.service >"$T/security.txt" 2>&1 ||
        { tail -n 3 "$T/security.txt" >&2; fail "jitgated.service's exposure is above 2.0"; }
    snapshot | comm -13 "$T/tools-before.txt" - >"$T/tools-made.txt"
fi
mkdir -p /run/jitgate # normally systemd-tmpfiles' (postinst) or systemd's; removed on purge

step "one approved sudo through the installed plugin (private mount namespace)"
unshare -m --propagation private bash "$0" --inside "$T" || fail "the approved sudo through the installed packages failed"
ls /var/lib/jitgate/spool/seg-*.jsonl >/dev/null 2>&1 || fail "the daemon wrote no spool segment in /var/lib/jitgate/spool"

step "purging"
dpkg --purge "${debs[@]}" >"$T/purge.log" 2>&1 || { cat "$T/purge.log" >&2; fail "dpkg --purge failed"; }
installed=0
if getent passwd jitgate >/dev/null; then fail "the jitgate user is left after the purge"; fi
if getent group jitgate >/dev/null; then fail "the jitgate group is left after the purge"; fi
snapshot >"$T/after.txt"
touch "$T/tools-made.txt"
left="$(comm -13 "$T/before.txt" "$T/after.txt" | comm -23 - "$T/tools-made.txt")"
[ -z "$left" ] || fail "left behind after the purge:"$'\n'"$left"
step "packaging test passed"
