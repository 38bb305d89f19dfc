#!/bin/bash
# Installs every Debian 12 package jitgate needs to build, test and run its demo.
# Idempotent; needs root. Set JITGATE_SKIP_APT=1 to skip (e.g. on a prepared builder).
set -euo pipefail
[ "${JITGATE_SKIP_APT:-0}" = 1 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "install-deps.sh: run as root (it uses apt-get)" >&2; exit 1; fi
packages=(
  build-essential cmake pkg-config               # toolchain
  libyaml-cpp-dev nlohmann-json3-dev libssl-dev  # daemon: config, JSON, SHA-256
  sudo                                           # sudo binary and sudo_plugin.h
  libpam0g-dev                                   # PAM module
  libgtest-dev googletest                        # unit tests
  pamtester openssh-server openssh-client        # PAM and SSH integration tests
  util-linux procps coreutils bc                 # unshare, setpriv, kill, mktemp; bc for bench
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
fi
