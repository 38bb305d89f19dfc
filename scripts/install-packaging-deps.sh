#!/bin/bash
# Installs the Debian 12 packages that building and checking jitgate's .deb and .rpm needs
# (packaging/build-packages.sh, tests/packaging/). Idempotent; needs root. Kept apart from
# install-deps.sh so that a plain build never pulls in rpm and lintian.
# Set JITGATE_SKIP_APT=1 to skip (e.g. on a prepared builder).
set -euo pipefail
source "$(dirname "$0")/apt-lib.sh"
packages=(
  build-essential cmake pkg-config                # toolchain
  libyaml-cpp-dev nlohmann-json3-dev libssl-dev   # daemon build deps
  libcurl4-openssl-dev                            #   (approval service, audit store: HTTPS)
  libhowardhinnant-date-dev                       #   (time windows: libdate-tz over the system tzdb)
  libevent-dev libsqlite3-dev libpq-dev           # jitgate-server build deps
  sudo libpam0g-dev                               # sudo_plugin.h, PAM headers
  debhelper dpkg-dev fakeroot lintian adduser     # the .deb
  rpm rpmlint file                                # the .rpm (Debian's rpm ships rpmbuild; brp-strip needs file)
  git util-linux procps                           # clean clone, unshare, setpriv
  openssl curl python3                            # the test's PKI, /healthz, NOTIFY_SOCKET listener
)
apt_install_missing install-packaging-deps.sh "${packages[@]}"
