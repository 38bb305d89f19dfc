#!/bin/bash
# tests/support/run_ns_case.sh SCRIPT CASE — runs one integration case in a private mount
# namespace (`unshare -m bash SCRIPT CASE`) and owns its scratch directory: made here, handed
# in as JITGATE_NS_DIR (tests/support/ns.sh uses it as $T), removed here once the namespace is
# gone. Removing it from outside is what makes it safe: inside, the case bind-mounts the real
# /dev under $T (ns_dev); out here nothing is mounted there. A failed case keeps its directory
# (its logs are the evidence), as does JITGATE_KEEP_TEST_DIR=1.
set -uo pipefail
dir="$(mktemp -d /tmp/jitgate-ns.XXXXXX)" || exit 1
JITGATE_NS_DIR="$dir" unshare -m --propagation private bash "$1" "$2"
rc=$?
if [ "$rc" = 0 ] || [ "$rc" = 77 ]; then
    if [ "${JITGATE_KEEP_TEST_DIR:-0}" != 1 ] && ! findmnt -rn -o TARGET | grep -q "^$dir"; then rm -rf "$dir"; fi
else
    echo "run_ns_case: kept $dir" >&2
fi
exit "$rc"
