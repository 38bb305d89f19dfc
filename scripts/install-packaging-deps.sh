#!/bin/bash
# Installs the Debian 12 packages that building and checking jitgate's .deb and .rpm needs
# (packaging/build-packages.sh, tests/packaging/). Idempotent; needs root. Kept apart from
# install-deps.sh so that a plain build never pulls in rpm and lintian.
# Set JITGATE_SKIP_APT=1 to skip (e.g. on a prepared builder).
set -euo pipefail
[ "${JITGATE_SKIP_APT:-0}" = 1 ] && exit 0
if [ "$(id -u)" != 0 ]; then echo "install-packaging-deps.sh: run as root (it uses apt-get)" >&2; exit 1; fi
packages=(
  build-essential cmake pkg-config                # toolchain
  libyaml-cpp-dev nlohmann-json3-dev libssl-dev   # daemon build deps
  sudo libpam0g-dev                               # sudo_plugin.h, PAM headers
  debhelper dpkg-dev fakeroot lintian adduser     # the .deb
  rpm rpmlint file                                # the .rpm (Debian's rpm ships rpmbuild; brp-strip needs file)
  git util-linux procps                           # clean clone, unshare, setpriv
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
