# tests/support/ns.sh — a private world for one test (or the demo), sourced by bash scripts
# that already run inside `unshare -m` (a private mount namespace). Nothing here touches the
# machine's own /etc, /dev or sudo: every change is a bind mount that dies with the namespace.
#
# Needs: JITGATE_BUILD (the CMake build directory). Sets: T (scratch dir), SOCK, JOURNAL,
# SYSLOG (what the test syslog receiver got), CONFIG.

set -euo pipefail

: "${JITGATE_BUILD:?JITGATE_BUILD must name the build directory}"
JITGATED="$JITGATE_BUILD/daemon/jitgated"
JITGATECTL="$JITGATE_BUILD/cli/jitgatectl"
PLUGIN="$JITGATE_BUILD/sudo_plugin/sudo_jitgate.so"
PAM_MODULE="$JITGATE_BUILD/pam_module/pam_jitgate.so"
TEST_SYSLOGD="$JITGATE_BUILD/tests/support/jitgate-test-syslogd"
TEST_CLIENT="$JITGATE_BUILD/tests/support/jitgate-test-client"

ns_pids=()
ns_cleanup_hooks=() # commands run at cleanup, after the pids are killed (e.g. stopping a peer's own daemon)

# ns_die MESSAGE: fails the test; files named in NS_SHOW_ON_FAIL are shown to help diagnose.
ns_die() {
    echo "FAIL: $*" >&2
    local f
    for f in ${NS_SHOW_ON_FAIL:-}; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }; done
    exit 1
}

ns_cleanup() {
    local p
    for p in "${ns_pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for p in "${ns_cleanup_hooks[@]:-}"; do [ -n "$p" ] && eval "$p" >/dev/null 2>&1 || true; done
}

# Users and groups that exist only inside this namespace.
#   alice, erin: admins who run sudo      bob, carol: approvers
#   dave: break-glass group member        mallory: a local user with no rights
ns_users() {
    mkdir -p "$T/etc"
    cp /etc/passwd /etc/group /etc/shadow "$T/etc/"
    cat >>"$T/etc/passwd" <<'PW'
alice:x:2001:2001:Alice Admin:/tmp:/bin/sh
bob:x:2002:2002:Bob Approver:/tmp:/bin/sh
carol:x:2003:2003:Carol Approver:/tmp:/bin/sh
dave:x:2004:2004:Dave Oncall:/tmp:/bin/sh
mallory:x:2005:2005:Mallory:/tmp:/bin/sh
erin:x:2006:2006:Erin Admin:/tmp:/bin/sh
PW
    cat >>"$T/etc/group" <<'GR'
alice:x:2001:
bob:x:2002:
carol:x:2003:
dave:x:2004:
mallory:x:2005:
erin:x:2006:
jitgate-approvers:x:2100:bob,carol
jitgate-breakglass:x:2101:dave
finance-approvers:x:2102:carol
GR
    for u in alice bob carol dave mallory erin; do echo "$u:*:19000:0:99999:7:::" >>"$T/etc/shadow"; done
    local f
    for f in passwd group shadow; do mount --bind "$T/etc/$f" "/etc/$f"; done
}

# A /dev of our own, so /dev/log can be the test's syslog receiver.
ns_dev() {
    mkdir -p "$T/realdev"
    mount --rbind /dev "$T/realdev"
    mount -t tmpfs -o mode=0755 tmpfs /dev
    local n
    for n in null zero full random urandom tty; do
        touch "/dev/$n"
        mount --bind "$T/realdev/$n" "/dev/$n"
    done
    mkdir -p /dev/pts /dev/shm
    mount --rbind "$T/realdev/pts" /dev/pts
    mount --bind "$T/realdev/shm" /dev/shm
    ln -s pts/ptmx /dev/ptmx # a bound ptmx node would not find its devpts instance
    ln -s /proc/self/fd /dev/fd
    ln -s /proc/self/fd/0 /dev/stdin
    ln -s /proc/self/fd/1 /dev/stdout
    ln -s /proc/self/fd/2 /dev/stderr
    SYSLOG="$T/syslog.txt"
    : >"$SYSLOG"
    "$TEST_SYSLOGD" /dev/log "$SYSLOG" >"$T/syslogd.out" &
    ns_pids+=($!)
    local i
    for i in $(seq 1 50); do grep -q ready "$T/syslogd.out" 2>/dev/null && return 0; sleep 0.1; done
    ns_die "test syslog receiver did not start"
}

# sudo's own files: a sudoers that lets the admins run anything without a password (the
# gate under test is jitgate, not sudoers) and a sudo.conf that loads our plugin.
ns_sudo() {
    cat >"$T/sudoers" <<'SU'
Defaults !lecture, !use_pty, !mail_badpass, env_reset
Defaults secure_path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
root ALL=(ALL:ALL) ALL
alice,dave,erin,mallory ALL=(ALL:ALL) NOPASSWD: ALL
SU
    chmod 0440 "$T/sudoers"
    mount --bind "$T/sudoers" /etc/sudoers
    local opts="socket=$SOCK break_glass_group=jitgate-breakglass ${NS_PLUGIN_OPTS:-}"
    cat >"$T/sudo.conf" <<SC
Plugin sudoers_policy sudoers.so
Plugin jitgate_approval $PLUGIN $opts
Plugin jitgate_audit $PLUGIN $opts
SC
    mount --bind "$T/sudo.conf" /etc/sudo.conf
}

# ns_pam SERVICE: /etc/pam.d of our own (a copy, bind-mounted), with SERVICE's stack read
# from stdin. @PAM@ in the text becomes the built module's path, @SOCK@ the socket.
ns_pam() {
    local service="$1"
    if [ ! -d "$T/pam.d" ]; then
        cp -a /etc/pam.d "$T/pam.d"
        mount --bind "$T/pam.d" /etc/pam.d
    fi
    sed -e "s|@PAM@|$PAM_MODULE|g" -e "s|@SOCK@|$SOCK|g" >"/etc/pam.d/$service"
}

# ns_setup: build the world. The test writes its config with ns_config, then ns_start_daemon.
ns_setup() {
    [ "$(id -u)" = 0 ] || ns_die "integration tests run as root (inside a private mount namespace)"
    # Under ctest the directory comes from run_ns_case.sh, which removes it from outside the
    # namespace; the demo, bench and soak make their own (kept, for the evidence).
    T="${JITGATE_NS_DIR:-$(mktemp -d /tmp/jitgate-ns.XXXXXX)}"
    chmod 0755 "$T"
    mkdir -p "$T/run" "$T/state"
    SOCK="$T/run/jitgated.sock"
    SPOOL="$T/state/spool"
    mkdir -p "$SPOOL"
    CONFIG="$T/jitgate.yaml"
    trap ns_cleanup EXIT
    ns_loginuid
    ns_users
    ns_dev
    ns_sudo
}

# ns_config: writes $CONFIG from the rules given on stdin (a YAML list under `rules:`),
# with this namespace's socket, spool and syslog. NS_APPROVAL replaces the approval section
# (the local backend by default); NS_AUDIT_EXTRA is appended to the audit section (indented).
ns_config() {
    {
        cat <<YAML
host:
  name: fin-db-01
  environment: production
  tags: [finance]
daemon:
  socket: $SOCK
${NS_APPROVAL:-approval:
  backend: local
  approver_groups: [jitgate-approvers]}
break_glass:
  group: jitgate-breakglass
audit:
  spool_dir: $SPOOL
  syslog: true
  syslog_socket: /dev/log
${NS_AUDIT_EXTRA:-}
YAML
        cat
    } >"$CONFIG"
    chmod 0644 "$CONFIG"
}

ns_start_daemon() {
    "$JITGATED" --config "$CONFIG" >>"$T/daemon.log" 2>&1 &
    DAEMON_PID=$!
    ns_pids+=("$DAEMON_PID")
    local i
    for i in $(seq 1 100); do
        [ -S "$SOCK" ] && "$JITGATECTL" --socket "$SOCK" status >/dev/null 2>&1 && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$T/daemon.log" >&2; ns_die "jitgated exited at start"; }
        sleep 0.05
    done
    cat "$T/daemon.log" >&2
    ns_die "jitgated did not come up on $SOCK"
}

ns_stop_daemon() {
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
}

# as_user USER CMD...: run CMD as USER (real and effective ids, groups) with a clean environment,
# in a login session of USER's own (its audit login uid is USER's, as pam_loginuid would set it
# at login): jitgated tells people apart by it. Extra environment: VAR=value words before CMD.
as_user() { as_user_argv "$1"; shift; "${AS_USER[@]}" "$@"; }
# as_user_argv USER: sets AS_USER to the command prefix, for callers that must `exec` it
# (so that $! of a background job is the command itself, e.g. to send it SIGINT).
as_user_argv() { in_session_argv "$1" "$1"; }
# in_session_argv USER SESSION-USER: like as_user_argv, but the login session is SESSION-USER's
# (a shared account used by a person, or root in someone's session). Sets AS_USER. The shell
# writes its own loginuid (a builtin echo: the kernel lets only the process itself write it).
in_session_argv() {
    AS_USER=(sh -c 'if [ "$NS_LOGINUID" = 1 ]; then u=$(id -u "$0") && echo "$u" >/proc/self/loginuid || exit 125; fi; exec "$@"' "$2"
             setpriv --reuid="$1" --regid="$1" --init-groups --
             env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp USER="$1" LOGNAME="$1")
}

# ns_loginuid: can this kernel give each test user a login session (/proc/self/loginuid,
# written as root with CAP_AUDIT_CONTROL)? Sets NS_LOGINUID=1 if so. If not, every process
# must share one unset login uid, or the tests' different people would all be one person.
ns_loginuid() {
    export NS_LOGINUID=0
    if bash -c 'echo 65534 >/proc/self/loginuid' 2>/dev/null; then
        NS_LOGINUID=1
    elif [ -e /proc/self/loginuid ] && [ "$(cat /proc/self/loginuid)" != 4294967295 ]; then
        ns_die "cannot set /proc/self/loginuid (immutable, or no CAP_AUDIT_CONTROL) and it is set: every test user would be the same person to jitgated"
    fi
}

# need_loginuid: a case that needs login sessions of its own skips (exit 77) where the kernel
# has none (no audit support), saying so.
need_loginuid() {
    [ "${NS_LOGINUID:-0}" = 1 ] && return 0
    echo "SKIP: this kernel has no settable audit login uid (/proc/self/loginuid); case needs it" >&2
    exit 77
}

# on_tty INPUT CMD...: runs CMD (already as the right user) on a fresh pseudo-terminal, as a
# person at a terminal would, typing INPUT. script(1) allocates the pty (as root).
on_tty() {
    local input="$1"; shift
    printf '%b' "$input" | script -qec "$(printf '%q ' "$@")" /dev/null
}

ctl() { local user="$1"; shift; as_user "$user" "$JITGATECTL" --socket "$SOCK" "$@"; }

# sudo_bg USER [VAR=value...] -- ARGS: runs sudo in the background; output in $T/out, $T/err.
sudo_bg() {
    local user="$1"; shift
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
    as_user_argv "$user"
    (exec "${AS_USER[@]}" "${envs[@]}" sudo "$@") >"$T/out" 2>"$T/err" &
    SUDO_PID=$!
}
sudo_wait() { RC=0; wait "$SUDO_PID" || RC=$?; } # sets RC (wait must not run in a subshell)
sudo_fg() { sudo_bg "$@"; sudo_wait; }           # same as sudo_bg, then waits; sets RC

# ns_start_peer NAME BIN ARGS...: starts a loopback test peer (tests/support) that writes its
# HTTPS port to $T/NAME.port and its admin port to $T/NAME.admin once listening. Sets
# PEER_PID, PEER_PORT and PEER_ADMIN (http://127.0.0.1:port). Output in $T/NAME.out.
ns_start_peer() {
    local name="$1" bin="$2"; shift 2
    rm -f "$T/$name.port" "$T/$name.admin"
    "$bin" --port-file "$T/$name.port" --admin-port-file "$T/$name.admin" "$@" >>"$T/$name.out" 2>&1 &
    PEER_PID=$!
    ns_pids+=("$PEER_PID")
    local i
    for i in $(seq 1 100); do
        [ -s "$T/$name.port" ] && [ -s "$T/$name.admin" ] && break
        kill -0 "$PEER_PID" 2>/dev/null || { cat "$T/$name.out" >&2; ns_die "$name exited at start"; }
        sleep 0.05
    done
    [ -s "$T/$name.port" ] || ns_die "$name did not start listening"
    PEER_PORT="$(cat "$T/$name.port")"
    PEER_ADMIN="http://127.0.0.1:$(cat "$T/$name.admin")"
}

# wait_pending N: waits until N requests are pending; prints their ids, oldest first.
wait_pending() {
    local want="$1" i out
    for i in $(seq 1 100); do
        out="$("$JITGATECTL" --socket "$SOCK" pending --json 2>/dev/null | sed -n 's/.*"id":"\(R-[0-9A-Z]*\)".*/\1/p')"
        if [ "$(printf '%s' "$out" | grep -c . || true)" -ge "$want" ]; then printf '%s\n' "$out"; return 0; fi
        sleep 0.05
    done
    ns_die "expected $want pending request(s), have: ${out:-none}"
}

# journal: every event still in the spool, oldest first (segments are named by first seq).
journal() { cat "$SPOOL"/seg-*.jsonl 2>/dev/null || true; }

# journal_count TYPE [EXTENDED-REGEX]: number of journal events of TYPE (matching the regex).
journal_count() {
    local n
    n="$(journal | grep -F "\"type\":\"$1\"" | grep -cE "${2:-.}" || true)"
    echo "$n"
}

expect_journal() {
    local n; n="$(journal_count "$@")"
    [ "$n" -ge 1 ] || { echo "--- journal:" >&2; journal >&2; ns_die "no '$1' event matching '${2:-.}' in the journal"; }
}

expect_no_journal() {
    local n; n="$(journal_count "$@")"
    [ "$n" -eq 0 ] || ns_die "unexpected '$1' event matching '${2:-.}' in the journal"
}

# expect_syslog PATTERN(grep -E) MESSAGE: the test syslog receiver is another process reading
# datagrams, so a line a client sent just before it exited may land a moment later. Waits up to
# 10 s for the line; never passes on its absence.
expect_syslog() {
    local pattern="$1" message="${2:-no matching syslog line}" i
    for i in $(seq 1 100); do
        grep -qE -- "$pattern" "$SYSLOG" && return 0
        sleep 0.1
    done
    cat "$SYSLOG" >&2
    ns_die "$message: no /$pattern/ in syslog"
}

expect_eq() { [ "$1" = "$2" ] || ns_die "${3:-values differ}: expected '$2', got '$1'"; }

# has GREP-ARGS...: grep for pipelines under `set -o pipefail`. `cmd | grep -q` can fail on a
# match: grep -q exits at the first match, the writer then dies of SIGPIPE, and pipefail
# reports that. `has` reads all its input, so only grep's own verdict counts.
has() { grep "$@" >/dev/null; }

# expect_contains TEXT PATTERN: here-strings, not pipes, for the same reason as has().
expect_contains() { # FILE-OR-TEXT... PATTERN(grep -E)
    local text="$1" pattern="$2"
    grep -E -- "$pattern" <<<"$text" >/dev/null || ns_die "expected /$pattern/ in: $text"
}

expect_not_contains() {
    local text="$1" pattern="$2"
    if grep -E -- "$pattern" <<<"$text" >/dev/null; then ns_die "did not expect /$pattern/ in: $text"; fi
}

daemon_alive() { kill -0 "$DAEMON_PID" 2>/dev/null && "$JITGATECTL" --socket "$SOCK" status >/dev/null; }
