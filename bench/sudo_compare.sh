#!/bin/bash
# Section 3 of the benchmark: wall time of the real `sudo -n true`, plain sudoers against
# sudoers + jitgate with a live grant, in blocks run alternately in the same mount namespace
# (so both see the same cache and load). Runs inside `unshare -m` (bench/run.sh does that).
# JITGATE_PLUGIN_B=/path/to/other/sudo_jitgate.so adds a third block to each round, the same
# sudo.conf with that build of the plugin (root-owned, as sudo requires): an A/B of two plugins.
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
plugin_b="${JITGATE_PLUGIN_B:-}"
[ -z "$plugin_b" ] || sed "s|$PLUGIN|$plugin_b|g" "$T/jitgate.conf" >"$T/plugin_b.conf"
printf 'Plugin sudoers_policy sudoers.so\n' >"$T/plain.conf"
# the live grant: file with sudo -n, approve, and the same command now passes at once
as_user alice sudo -n /usr/bin/true 2>/dev/null || true
ctl bob approve "$(wait_pending 1)" >/dev/null
as_user alice sudo -n /usr/bin/true || ns_die "no live grant"

blocks=${JITGATE_COMPARE_BLOCKS:-10}; per=20 # more blocks for a small difference on a busy machine
[ "${1:-}" = --quick ] && { blocks=4; per=10; }
# Runs sudo -n true $per times as alice; prints ms per run: the wall time, and the CPU time
# (user + system) of sudo and everything it ran (from `times`: this subshell's children), which
# a busy machine disturbs far less than the wall time. The daemon's CPU is not in it.
block_ms() {
    local t0 t1 i
    t0=$(date +%s%N)
    for ((i = 0; i < per; i++)); do "${AS_USER[@]}" sudo -n /usr/bin/true; done
    t1=$(date +%s%N)
    echo "scale=3; ($t1 - $t0) / 1000000 / $per" | bc
    times >"$T/times" # into a file: in a pipeline, times would run in a subshell with no children
    awk -v per="$per" 'NR == 2 {
        split($1, u, /[ms]/); split($2, s, /[ms]/)
        printf "%.3f\n", ((u[1] + s[1]) * 60 + u[2] + s[2]) * 1000 / per }' "$T/times"
}
as_user_argv alice
plain=(); gated=(); gated_b=()
for ((b = 0; b < blocks; b++)); do
    mount --bind "$T/plain.conf" /etc/sudo.conf
    plain+=("$(block_ms | paste -sd' ')")
    umount /etc/sudo.conf
    gated+=("$(block_ms | paste -sd' ')")
    if [ -n "$plugin_b" ]; then
        mount --bind "$T/plugin_b.conf" /etc/sudo.conf
        gated_b+=("$(block_ms | paste -sd' ')")
        umount /etc/sudo.conf
    fi
done
# stats FIELD BLOCK...: median (min..max) of field 1 (wall) or 2 (CPU) of the blocks
stats() { local f=$1; shift; printf '%s\n' "$@" | cut -d' ' -f"$f" | sort -n | awk '{a[NR]=$1} END {printf "%.2f ms (%.2f..%.2f, n=%d blocks of '"$per"')", a[int((NR+1)/2)], a[1], a[NR], NR}'; }
median() { local f=$1; shift; printf '%s\n' "$@" | cut -d' ' -f"$f" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-58s %s\n' "3. sudo -n true, plain sudoers" "$(stats 1 "${plain[@]}")"
printf '%-58s %s\n' "3. sudo -n true, sudoers + jitgate (live grant)" "$(stats 1 "${gated[@]}")"
printf '%-58s %s\n' "3. ratio jitgate / plain (medians)" "$(echo "scale=3; $(median 1 "${gated[@]}") / $(median 1 "${plain[@]}")" | bc)"
printf '%-58s %s\n' "3. CPU of sudo and its children, plain" "$(stats 2 "${plain[@]}")"
printf '%-58s %s\n' "3. CPU of sudo and its children, + jitgate" "$(stats 2 "${gated[@]}")"
if [ -n "$plugin_b" ]; then
    printf '%-58s %s\n' "3. sudo -n true, sudoers + $(basename "$plugin_b") (B)" "$(stats 1 "${gated_b[@]}")"
    printf '%-58s %s\n' "3. ratio B / plain (medians)" "$(echo "scale=3; $(median 1 "${gated_b[@]}") / $(median 1 "${plain[@]}")" | bc)"
    printf '%-58s %s\n' "3. CPU of sudo and its children, + B" "$(stats 2 "${gated_b[@]}")"
fi
