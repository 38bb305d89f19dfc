#!/bin/bash
# tests/packaging/packages.sh — the packaging test (ctest label "packaging"). As root, on Debian:
#   1. installs the build tools (scripts/install-packaging-deps.sh) and builds the .deb and .rpm
#      from this tree (packaging/build-packages.sh --worktree) into a scratch directory; with
#      JITGATE_BUILD (ctest sets it to its own build tree) it compiles nothing and packages that
#      tree (--built-tree), so the packages installed here hold the binaries the suite tested;
#   2. lintian (no errors) and rpmlint (no errors), then checks that every binary, plugin, unit,
#      tmpfiles entry, man page and config is where the distribution expects it, root-owned and
#      not group- or world-writable;
#   3. installs the .debs on this machine with dpkg -i, checks the user, state directory,
#      conffile and unit enablement;
#   4. in a private mount namespace (this script again, with --inside), starts the installed
#      jitgated as the jitgate user on the installed config (adjusted for the test), checks its
#      systemd readiness message, and runs one approved sudo through the installed plugin with
#      the shipped sudo.conf example;
#   5. the same for jitgate-server, in another private mount namespace (--inside-server): its
#      user and directories, a signing key made with the installed `jitgate-server keygen` as
#      that user into /etc/jitgate-server/keys, then the unit's own command lines (check-config,
#      migrate, serve) as the unit's user on a config for this machine's loopback with keys and
#      certificates made for the run; checks READY=1 and that /healthz answers over TLS;
#   6. purges the packages and checks that nothing is left: files, users, groups.
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

# notify_listen NAME OUT: systemd's side of NOTIFY_SOCKET=@NAME, in the background (pid in
# NOTIFY_PID): writes "bound" to OUT once it listens, then the first message it receives.
# Returns once it is bound, so that the service's READY=1 cannot come before (a race a
# loaded machine loses with a fixed sleep).
notify_listen() {
    python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1])
s.settimeout(60)
print("bound", flush=True)
print(s.recv(4096).decode(), flush=True)' "$1" >"$2" 2>&1 &
    NOTIFY_PID=$!
    local _
    for _ in $(seq 1 200); do
        grep -q '^bound$' "$2" 2>/dev/null && return 0
        kill -0 "$NOTIFY_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "FAIL: the NOTIFY_SOCKET listener did not start: $(cat "$2")" >&2
    return 1
}

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
    notify_listen "${notify#@}" "$T/notify.out" || ns_die "no NOTIFY_SOCKET listener"
    ns_pids+=("$NOTIFY_PID")
    su_daemon=(setpriv --reuid=jitgate --regid=jitgate --clear-groups --no-new-privs --inh-caps=-all)
    "${su_daemon[@]}" /usr/sbin/jitgated --check-config /etc/jitgate/jitgate.yaml >/dev/null ||
        ns_die "the installed jitgated rejects the installed config"
    NOTIFY_SOCKET="$notify" "${su_daemon[@]}" /usr/sbin/jitgated --config /etc/jitgate/jitgate.yaml \
        >>"$T/daemon.log" 2>&1 &
    DAEMON_PID=$!
    ns_pids+=("$DAEMON_PID")
    for _ in $(seq 1 400); do
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
# Part 5, inside `unshare -m`: jitgate-server as its unit runs it, on a config for this test
# mounted over the shipped one (/etc/jitgate-server/server.yaml stays as the package left it).
if [ "${1:-}" = --inside-server ]; then
    T="$2"
    UNIT=/lib/systemd/system/jitgate-server.service
    server_pid=""
    notify_pid=""
    trap 'for p in $server_pid $notify_pid; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
    inside_fail() {
        echo "FAIL: $*" >&2
        [ -f "$T/server.log" ] && { echo "--- jitgate-server's output:" >&2; cat "$T/server.log" >&2; }
        exit 1
    }
    unit_value() { sed -n "s/^$1=//p" "$UNIT"; }
    user="$(unit_value User)"
    [ "$user" = jitgate-server ] && [ "$(unit_value Group)" = jitgate-server ] ||
        inside_fail "the unit does not run as jitgate-server:jitgate-server"
    # What the unit gives the service: its user and group (no others), no new privileges, UMask.
    as_service=(setpriv --reuid=jitgate-server --regid=jitgate-server --clear-groups --no-new-privs --inh-caps=-all)
    umask 0077

    # The signing key, made as docs/server.md says: by the service user, in the shipped keys dir.
    "${as_service[@]}" /usr/sbin/jitgate-server keygen --dir /etc/jitgate-server/keys --kid k1 >"$T/keygen.out" 2>&1 ||
        inside_fail "jitgate-server keygen into /etc/jitgate-server/keys failed: $(cat "$T/keygen.out")"
    [ "$(stat -c '%a %U' /etc/jitgate-server/keys/k1.key)" = "600 jitgate-server" ] ||
        inside_fail "k1.key: $(stat -c '%a %U' /etc/jitgate-server/keys/k1.key), expected 600 jitgate-server"

    # TLS: the run's PKI (tests/support/make_pki.sh); the server's key is the service user's.
    bash "$root/tests/support/make_pki.sh" "$T/pki"
    mkdir -m 0755 "$T/tls"
    install -m 0644 -o root -g root "$T/pki/ca.pem" "$T/pki/server.pem" "$T/tls/"
    install -m 0600 -o jitgate-server -g jitgate-server "$T/pki/server.key" "$T/tls/"
    ports="$(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"
    read -r hosts_port web_port <<<"$ports"
    cat >"$T/server.yaml" <<YAML
server:
  name: approvals.test
  public_url: https://127.0.0.1:$web_port
hosts:
  listen: 127.0.0.1:$hosts_port
  cert: $T/tls/server.pem
  key: $T/tls/server.key
  client_ca: $T/tls/ca.pem
web:
  listen: 127.0.0.1:$web_port
database:
  sqlite: /var/lib/jitgate-server/jitgate-server.db
signing:
  keys:
    - kid: k1
      private_key: /etc/jitgate-server/keys/k1.key
policy:
  - name: everything
    hosts: ["*"]
    approver_groups: [ops]
YAML
    # As the shipped file is: root's, readable by the service's group.
    chown root:jitgate-server "$T/server.yaml"
    chmod 0640 "$T/server.yaml"
    mount --bind "$T/server.yaml" /etc/jitgate-server/server.yaml

    # The unit's command lines, verbatim, as its user: ExecStartPre (check-config, migrate),
    # then ExecStart with systemd's NOTIFY_SOCKET (Type=notify).
    mapfile -t pre < <(unit_value ExecStartPre)
    [ "${#pre[@]}" = 2 ] || inside_fail "expected two ExecStartPre lines (check-config, migrate) in $UNIT"
    for line in "${pre[@]}"; do
        read -r -a argv <<<"$line"
        "${as_service[@]}" "${argv[@]}" >>"$T/server.log" 2>&1 || inside_fail "ExecStartPre failed: $line"
    done
    grep -q '^config OK$' "$T/server.log" || inside_fail "check-config did not say 'config OK'"
    [ "$(stat -c '%U' /var/lib/jitgate-server/jitgate-server.db)" = jitgate-server ] ||
        inside_fail "migrate made no database owned by jitgate-server in /var/lib/jitgate-server"
    notify="@jitgate-server-packaging-test-$$"
    notify_listen "${notify#@}" "$T/server-notify.out" || inside_fail "no NOTIFY_SOCKET listener"
    notify_pid=$NOTIFY_PID
    read -r -a argv <<<"$(unit_value ExecStart)"
    NOTIFY_SOCKET="$notify" "${as_service[@]}" "${argv[@]}" >>"$T/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 400); do
        grep -q READY=1 "$T/server-notify.out" 2>/dev/null && break
        kill -0 "$server_pid" 2>/dev/null || inside_fail "the installed jitgate-server exited at start"
        sleep 0.05
    done
    grep -q READY=1 "$T/server-notify.out" || inside_fail "no READY=1 from jitgate-server: $(cat "$T/server-notify.out")"
    [ "$(ps -o uid= -p "$server_pid" | tr -d ' ')" = "$(id -u jitgate-server)" ] ||
        inside_fail "jitgate-server does not run as its user"
    health="$(curl -sS --max-time 10 --cacert "$T/tls/ca.pem" "https://127.0.0.1:$web_port/healthz" 2>&1)" ||
        inside_fail "GET /healthz on the web port failed: $health"
    [ "$health" = ok ] || inside_fail "GET /healthz answered '$health', expected 'ok'"
    # The hosts' port is mutual TLS: without a client certificate there is no protocol answer.
    if curl -sS --max-time 10 --cacert "$T/tls/ca.pem" "https://127.0.0.1:$hosts_port/v1/requests" >/dev/null 2>&1; then
        inside_fail "the hosts' port answered a client without a certificate"
    fi
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    echo "jitgate-server answered /healthz on 127.0.0.1:$web_port as jitgate-server"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || fail "the packaging test runs as root (it installs and purges packages)"
command -v dpkg >/dev/null && command -v apt-get >/dev/null || { echo "SKIP: not a Debian system"; exit 77; }

debs=(jitgate sudo-jitgate libpam-jitgate jitgate-server)
for p in "${debs[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | has 'ok installed\|config-files'; then
        fail "$p is already installed on this machine; this test would replace and purge it"
    fi
done
for u in jitgate jitgate-server; do
    if getent passwd "$u" >/dev/null; then fail "a $u user exists already; this test would delete it on purge"; fi
done

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
    # ctest's own build tree (tests/packaging/CMakeLists.txt), already compiled for the suite:
    # packaged as it is, nothing compiled again. Run by hand without JITGATE_BUILD, the product
    # is compiled as packaging/build-packages.sh does on its own.
    built_tree=()
    if [ -n "${JITGATE_BUILD:-}" ]; then
        built_tree=(--built-tree "$JITGATE_BUILD")
        # A tree that cannot be packaged is refused before anything is done, with the reason.
        mkdir "$T/fake-build"
        printf 'CMAKE_HOME_DIRECTORY:INTERNAL=%s\nCMAKE_GENERATOR:INTERNAL=Unix Makefiles\nJITGATE_BUILD_SERVER:BOOL=OFF\n' \
            "$root" >"$T/fake-build/CMakeCache.txt"
        refusal() { "$root/packaging/build-packages.sh" --worktree --built-tree "$T/fake-build" --out "$T/fake-out" 2>&1 && echo "ACCEPTED"; }
        has 'JITGATE_BUILD_SERVER is not ON there' <<<"$(refusal)" || fail "a built tree without jitgate-server was not refused: $(refusal)"
        sed -i 's/^JITGATE_BUILD_SERVER:BOOL=OFF$/JITGATE_BUILD_SERVER:BOOL=ON/' "$T/fake-build/CMakeCache.txt"
        has "fake-build: make -n failed" <<<"$(refusal)" || fail "a tree that was never built was not refused: $(refusal)"
        # What the recipes change in the tree's cache (install layout) must be put back.
        cache_layout() {
            grep -E '^(CMAKE_INSTALL_[A-Z]+|JITGATE_[A-Z]+DIR):' "$JITGATE_BUILD/CMakeCache.txt" | sort
            grep '^ *set(CMAKE_INSTALL_PREFIX ' "$JITGATE_BUILD/cmake_install.cmake"
        }
        cache_layout >"$T/layout-before.txt"
    fi
    step "building the .deb and .rpm ${built_tree[*]}"
    "$root/packaging/build-packages.sh" --worktree "${built_tree[@]}" --out "$T/out" >"$T/build.log" 2>&1 ||
        { cat "$T/build.log" >&2; fail "packaging/build-packages.sh failed"; }
    if [ -n "${JITGATE_BUILD:-}" ]; then
        cache_layout | diff -u "$T/layout-before.txt" - >&2 ||
            fail "build-packages.sh left the install layout of $JITGATE_BUILD changed (above)"
    fi
fi
version="$(sed -n 's/^project(jitgate VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")"
arch="$(dpkg --print-architecture)"
multiarch="$(dpkg-architecture -qDEB_HOST_MULTIARCH)"
deb_file() { echo "$T/out/deb/$1_${version}_${arch}.deb"; }
rpm_file() { ls "$T/out/rpm/$1-${version}-"*.rpm 2>/dev/null | grep -v '\.src\.rpm$' | head -n 1; }
for p in "${debs[@]}"; do [ -f "$(deb_file "$p")" ] || fail "no $(deb_file "$p")"; done
for p in jitgate jitgate-sudo jitgate-pam jitgate-server; do [ -n "$(rpm_file "$p")" ] || fail "no $p RPM"; done

step "lintian"
# TMPDIR: lintian leaves its MLDBM caches (mldbm-elf-*) in the temporary directory.
mkdir -p "$T/lintian-tmp"
TMPDIR="$T/lintian-tmp" lintian --fail-on error "$T/out/deb/"*.changes | tee "$T/lintian.txt" ||
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
# world-writable (symbolic links aside), except the daemons' own state, runtime and key
# directories and jitgate-server's config (root's, group jitgate-server), checked one by one.
no_writable() {
    local bad
    bad="$(printf '%s\n' "$1" | awk '$3 != "/var/lib/jitgate" && $3 != "/run/jitgate" && $3 != "/var/lib/jitgate-server" &&
                                   $3 != "/etc/jitgate-server/keys" && $3 != "/etc/jitgate-server/server.yaml" && substr($1,1,1) != "l" &&
                                   ($2 != "root/root" || substr($1,6,1) == "w" || substr($1,9,1) == "w")')"
    [ -z "$bad" ] || fail "$2: files not root-owned or writable by others:"$'\n'"$bad"
}
man_pages() { # SECTION-PAGES of the man pages in man/ that belong to package $1
    local page
    for page in "$root"/man/*.[58]; do
        [ -f "$page" ] || continue
        page="$(basename "$page")"
        case "$1:$page" in
            jitgate:jitgated.8|jitgate:jitgatectl.8|jitgate:jitgate.yaml.5|sudo:sudo_jitgate.8|pam:pam_jitgate.8|server:jitgate-server.8)
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
L="$(deb_listing "$(deb_file jitgate-server)")"
expect_file "$L" /usr/sbin/jitgate-server -rwxr-xr-x root/root
expect_file "$L" /etc/jitgate-server/server.yaml -rw-r----- root/root
expect_file "$L" /lib/systemd/system/jitgate-server.service -rw-r--r-- root/root
expect_file "$L" /usr/share/doc/jitgate-server/server.md -rw-r--r-- root/root
for m in $(man_pages server); do expect_file "$L" "/usr/share/man/$m.gz" -rw-r--r-- root/root; done
[ -n "$(man_pages server)" ] || fail "man/jitgate-server.8 is missing"
no_writable "$L" jitgate-server.deb
dpkg-deb -f "$(deb_file jitgate-server)" Depends | has adduser || fail "jitgate-server.deb does not depend on adduser"
dpkg-deb --ctrl-tarfile "$(deb_file jitgate-server)" | tar -xOf - ./conffiles | has -x /etc/jitgate-server/server.yaml ||
    fail "server.yaml is not a conffile"
for p in "${debs[@]}"; do
    if dpkg-deb -c "$(deb_file "$p")" | grep -Eq ' \./etc/(sudo\.conf|sudoers|pam\.d)'; then fail "$p ships a sudo or PAM config"; fi
    # jitgate-server's files are in its package only (the docs of every package aside).
    if [ "$p" != jitgate-server ] && deb_listing "$(deb_file "$p")" | awk '{print $3}' | grep -v '^/usr/share/doc/' | has 'jitgate-server'; then
        fail "$p ships files of jitgate-server"
    fi
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
R="$(rpm_listing "$(rpm_file jitgate-server)")"
expect_file "$R" /usr/sbin/jitgate-server -rwxr-xr-x root/root
expect_file "$R" /etc/jitgate-server/server.yaml -rw-r----- root/jitgate-server
expect_file "$R" /etc/jitgate-server/keys drwx------ jitgate-server/jitgate-server
expect_file "$R" /var/lib/jitgate-server drwxr-x--- jitgate-server/jitgate-server
expect_file "$R" /usr/lib/systemd/system/jitgate-server.service -rw-r--r-- root/root
for m in $(man_pages server); do expect_file "$R" "/usr/share/man/$m.gz" -rw-r--r-- root/root; done
no_writable "$R" jitgate-server.rpm
rpm -qp --configfiles "$(rpm_file jitgate-server)" | has -x /etc/jitgate-server/server.yaml ||
    fail "server.yaml is not %config in the RPM"
if rpm -qp --scripts "$(rpm_file jitgate-server)" | has 'preset jitgate-server\|enable jitgate-server\|install-system-units jitgate-server'; then
    fail "the jitgate-server RPM enables its unit on installation"
fi
for p in jitgate jitgate-sudo jitgate-pam; do
    if rpm_listing "$(rpm_file "$p")" | awk '{print $3}' | grep -v '^/usr/share/doc/' | has 'jitgate-server'; then
        fail "the $p RPM ships files of jitgate-server"
    fi
done

step "installing the .debs (dpkg -i)"
# What exists before, to compare after the purge (apt/dpkg's own bookkeeping and logs aside).
snapshot() {
    find /etc /usr /lib /var/lib /run /opt -xdev \
        \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /run/sudo -o -path /var/lib/sudo \
           -o -path '/run/user' -o -path '*/__pycache__' \) -prune -o -print 2>/dev/null | sort
}
snapshot >"$T/before.txt"
installed=1
dpkg -i "$(deb_file jitgate)" "$(deb_file sudo-jitgate)" "$(deb_file libpam-jitgate)" "$(deb_file jitgate-server)" >"$T/install.log" 2>&1 ||
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
step "jitgate-server: user, directories, unit"
uid="$(id -u jitgate-server)" || fail "postinst did not create the jitgate-server user"
[ "$uid" -lt 1000 ] || fail "jitgate-server is not a system user (uid $uid)"
getent passwd jitgate-server | has ':/usr/sbin/nologin$' || fail "jitgate-server has a login shell"
[ "$(id -gn jitgate-server)" = jitgate-server ] || fail "jitgate-server's group is not jitgate-server"
for entry in "/var/lib/jitgate-server 750 jitgate-server:jitgate-server" \
             "/etc/jitgate-server/keys 700 jitgate-server:jitgate-server" \
             "/etc/jitgate-server/server.yaml 640 root:jitgate-server" \
             "/usr/sbin/jitgate-server 755 root:root"; do
    read -r f want_mode want_owner <<<"$entry"
    [ "$(stat -c '%a %U:%G' "$f")" = "$want_mode $want_owner" ] ||
        fail "$f: $(stat -c '%a %U:%G' "$f"), expected $want_mode $want_owner"
done
if [ -e /etc/systemd/system/multi-user.target.wants/jitgate-server.service ]; then
    fail "jitgate-server.service was enabled on installation (its config is an example to edit first)"
fi
[ "$(/usr/sbin/jitgate-server --version)" = "jitgate-server $version" ] ||
    fail "jitgate-server --version: '$(/usr/sbin/jitgate-server --version)', expected 'jitgate-server $version'"
if command -v systemd-analyze >/dev/null; then
    snapshot >"$T/tools-before.txt"
    systemd-analyze verify --man=no /lib/systemd/system/jitgate-server.service >"$T/verify-server.txt" 2>&1 ||
        { cat "$T/verify-server.txt" >&2; fail "systemd-analyze verify rejects the installed jitgate-server unit"; }
    snapshot | comm -13 "$T/tools-before.txt" - >>"$T/tools-made.txt"
fi

mkdir -p /run/jitgate # normally systemd-tmpfiles' (postinst) or systemd's; removed on purge

step "one approved sudo through the installed plugin (private mount namespace)"
unshare -m --propagation private bash "$0" --inside "$T" || fail "the approved sudo through the installed packages failed"
ls /var/lib/jitgate/spool/seg-*.jsonl >/dev/null 2>&1 || fail "the daemon wrote no spool segment in /var/lib/jitgate/spool"

step "jitgate-server as its unit runs it (private mount namespace)"
unshare -m --propagation private bash "$0" --inside-server "$T" || fail "the installed jitgate-server did not serve"
[ -f /etc/jitgate-server/keys/k1.key ] || fail "keygen left no key in /etc/jitgate-server/keys"

step "purging"
dpkg --purge "${debs[@]}" >"$T/purge.log" 2>&1 || { cat "$T/purge.log" >&2; fail "dpkg --purge failed"; }
installed=0
has 'deleting /var/lib/jitgate-server, the database of approvals (audit evidence)' "$T/purge.log" ||
    { cat "$T/purge.log" >&2; fail "the purge did not say that it deletes jitgate-server's database"; }
for u in jitgate jitgate-server; do
    if getent passwd "$u" >/dev/null; then fail "the $u user is left after the purge"; fi
    if getent group "$u" >/dev/null; then fail "the $u group is left after the purge"; fi
done
snapshot >"$T/after.txt"
touch "$T/tools-made.txt"
left="$(comm -13 "$T/before.txt" "$T/after.txt" | comm -23 - "$T/tools-made.txt")"
[ -z "$left" ] || fail "left behind after the purge:"$'\n'"$left"
step "packaging test passed"
