#!/bin/bash
# Section 3 of the benchmark: wall time of the real `sudo -n true`, plain sudoers against
# sudoers + jitgate with a live grant, in blocks run alternately in the same mount namespace
# (so both see the same cache and load). Runs inside `unshare -m` (bench/run.sh does that).
source "$(dirname "$0")/../tests/support/ns.sh"
ns_setup
ns_config <<'YAML'
rules:
  - name: gated
    match: {kind: sudo}
    ttl: 1h
    timeout: 1m
YAML
ns_start_daemon
cp /etc/sudo.conf "$T/jitgate.conf"
printf 'Plugin sudoers_policy sudoers.so\n' >"$T/plain.conf"
# the live grant: file with sudo -n, approve, and the same command now passes at once
as_user alice sudo -n /usr/bin/true 2>/dev/null || true
ctl bob approve "$(wait_pending 1)" >/dev/null
as_user alice sudo -n /usr/bin/true || ns_die "no live grant"

blocks=10; per=20
[ "${1:-}" = --quick ] && { blocks=4; per=10; }
block_ms() { # runs sudo -n true $per times as alice; prints ms per run
    local t0 t1 i
    t0=$(date +%s%N)
    for ((i = 0; i < per; i++)); do "${AS_USER[@]}" sudo -n /usr/bin/true; done
    t1=$(date +%s%N)
    echo "scale=3; ($t1 - $t0) / 1000000 / $per" | bc
}
as_user_argv alice
plain=(); gated=()
for ((b = 0; b < blocks; b++)); do
    mount --bind "$T/plain.conf" /etc/sudo.conf
    plain+=("$(block_ms)")
    umount /etc/sudo.conf
    gated+=("$(block_ms)")
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.2f ms (%.2f..%.2f, n=%d blocks of '"$per"')", a[int((NR+1)/2)], a[1], a[NR], NR}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-58s %s\n' "3. sudo -n true, plain sudoers" "$(stats "${plain[@]}")"
printf '%-58s %s\n' "3. sudo -n true, sudoers + jitgate (live grant)" "$(stats "${gated[@]}")"
printf '%-58s %s\n' "3. ratio jitgate / plain (medians)" "$(echo "scale=3; $(median "${gated[@]}") / $(median "${plain[@]}")" | bc)"
