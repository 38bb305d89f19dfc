#!/bin/bash
# Runs inside the demo's private mount namespace (see demo.sh).
source "$(dirname "$0")/../tests/support/ns.sh"
ns_setup
# systemctl is a stand-in inside the namespace: the demo restarts nothing real.
cat >"$T/systemctl" <<'SH'
#!/bin/sh
echo "[demo stand-in for systemctl] $*: payments.service restarted (running as $(id -un))"
SH
chmod 0755 "$T/systemctl"
mount --bind "$T/systemctl" /usr/bin/systemctl 2>/dev/null || { touch /usr/bin/systemctl 2>/dev/null; mount --bind "$T/systemctl" /usr/bin/systemctl; }
ns_config <<'YAML'
rules:
  - name: service-restarts
    match: {kind: sudo, commands: ["/usr/bin/systemctl restart *"]}
    action: require_approval
    approvals: 1
    ttl: 15m
    scope: command
    reason: required
    timeout: 5m
YAML
# alice is an approver too, so the demo shows that she still cannot approve herself
sed 's/^jitgate-approvers:x:2100:bob,carol$/jitgate-approvers:x:2100:bob,carol,alice/' /etc/group >"$T/group.new"
cat "$T/group.new" >/etc/group
ns_start_daemon
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "alice runs: sudo systemctl restart payments   (reason from JITGATE_REASON)"
as_user alice JITGATE_REASON="deploy payments 4.2.1 config fix" sudo systemctl restart payments >"$T/out" 2>&1 &
sudo_pid=$!
id="$(wait_pending 1)"
sleep 0.2
sed 's/^/   alice> /' "$T/out"

say "bob runs: jitgatectl pending"
ctl bob pending | sed 's/^/   bob> /'
say "alice (also an approver) tries to approve her own request"
ctl alice approve "$id" 2>&1 | sed 's/^/   alice> /' || true
say "bob runs: jitgatectl approve $id"
ctl bob approve "$id" | sed 's/^/   bob> /'
wait "$sudo_pid"
say "alice's terminal"
sed 's/^/   alice> /' "$T/out"

say "alice runs it again within the grant's TTL: no question asked"
as_user alice sudo -n systemctl restart payments 2>&1 | sed 's/^/   alice> /'

say "audit trail (the spool $SPOOL)"
"$JITGATECTL" audit tail -n 50 "$SPOOL"
say "jitgatectl audit verify"
"$JITGATECTL" audit verify "$SPOOL"
journal >"$T/tampered.jsonl"
sed -i '3s/alice/alicf/' "$T/tampered.jsonl"
say "the same journal with one byte changed"
"$JITGATECTL" audit verify "$T/tampered.jsonl" || true
say "syslog lines (authpriv, ident jitgate)"
head -n 4 "$SYSLOG"
printf '\nDemo done. Nothing on this machine was changed (private mount namespace).\n'
