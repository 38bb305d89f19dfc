#!/bin/bash
# What sudo's intercept mode costs per command, with and without jitgate (docs/intercept.md):
# a shell script of N commands (/usr/bin/true) run as `sudo -n /bin/sh script`, as alice,
# with a live session-scope grant, in four set-ups run alternately in one mount namespace:
#   plain              sudoers only, intercept off
#   plain+intercept    sudoers only, Defaults intercept (sudo's own cost: ptrace, policy per exec)
#   jitgate            sudoers + jitgate, intercept off (one jitgate check, for the shell)
#   jitgate+intercept  sudoers + jitgate, Defaults intercept (a jitgate check and an fsync'ed
#                      command.intercepted record per command)
# Runs as root inside `unshare -m` (tests/support/ns.sh); JITGATE_BUILD names the build.
#   unshare -m --propagation private bash bench/intercept.sh [--quick] [N] [ROUNDS]
set -euo pipefail
quick=0
[ "${1:-}" = --quick ] && { quick=1; shift; }
N="${1:-$([ "$quick" = 1 ] && echo 200 || echo 1000)}"
ROUNDS="${2:-$([ "$quick" = 1 ] && echo 2 || echo 3)}"
source "$(dirname "$0")/../tests/support/ns.sh"
ns_setup
ns_config <<'YAML'
rules:
  - name: oncall-root
    match: {kind: sudo, users: [alice]}
    scope: session
    ttl: 1h
    timeout: 1m
YAML
ns_start_daemon
cp /etc/sudo.conf "$T/jitgate.conf"
printf 'Plugin sudoers_policy sudoers.so\n' >"$T/plain.conf"
cp "$T/sudoers" "$T/sudoers.off"
{ cat "$T/sudoers.off"; echo 'Defaults intercept'; } >"$T/sudoers.on"
# the live session grant: file with sudo -n, approve; the shell and all it runs now pass at once
as_user alice sudo -n /usr/bin/true 2>/dev/null || true
ctl bob approve "$(wait_pending 1)" >/dev/null
as_user alice sudo -n /usr/bin/true || ns_die "no live grant"

script="$T/commands.sh"
{ echo '#!/bin/sh'; for ((i = 0; i < N; i++)); do echo /usr/bin/true; done; } >"$script"
chmod 0644 "$script"
as_user_argv alice

# run SETUP: one timed `sudo -n /bin/sh script`; prints milliseconds.
run() {
    local conf sudoers
    case "$1" in
    plain) conf=plain sudoers=off ;;
    plain+intercept) conf=plain sudoers=on ;;
    jitgate) conf=jitgate sudoers=off ;;
    jitgate+intercept) conf=jitgate sudoers=on ;;
    esac
    # in place: /etc/sudo.conf and /etc/sudoers are bind mounts of these files (ns_sudo)
    cat "$T/$conf.conf" >"$T/sudo.conf"
    cat "$T/sudoers.$sudoers" >"$T/sudoers"
    local t0 t1
    t0=$(date +%s%N)
    "${AS_USER[@]}" sudo -n /bin/sh "$script" || ns_die "$1: the script failed"
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
setups=(plain plain+intercept jitgate jitgate+intercept)
declare -A ms
for ((r = 0; r < ROUNDS; r++)); do
    for s in "${setups[@]}"; do ms[$s]+="$(run "$s") "; done
done
median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "intercept bench: $N commands per script, $ROUNDS rounds, median wall time of sudo -n /bin/sh script"
echo "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg), cpus: $(nproc)"
for s in "${setups[@]}"; do
    m=$(median "${ms[$s]}")
    printf '%-20s %7d ms  %8.3f ms/command   (runs: %s)\n' "$s" "$m" "$(echo "scale=3; $m / $N" | bc)" "${ms[$s]% }"
done
p=$(median "${ms[plain]}") pi=$(median "${ms[plain+intercept]}") ji=$(median "${ms[jitgate+intercept]}")
printf 'added per command by sudo intercept alone:      %.3f ms\n' "$(echo "scale=3; ($pi - $p) / $N" | bc)"
printf 'added per command by jitgate under intercept:   %.3f ms\n' "$(echo "scale=3; ($ji - $pi) / $N" | bc)"
printf 'command.intercepted events recorded: %s\n' "$(journal_count command.intercepted)"
