#!/bin/bash
# The demo: installs what is needed, builds, then in a private mount namespace (nothing on
# this machine changes) creates the users alice and bob, starts jitgated on the embedded
# `local` backend, runs alice's `sudo systemctl restart payments`, approves it as bob, and
# prints the audit trail and its verification.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
export JITGATE_BUILD="${JITGATE_BUILD:-$PWD/build}"
exec unshare -m --propagation private bash scripts/demo-inside.sh
