#!/bin/bash
# Installs every Debian 12 package jitgate needs to build, test and run its demo.
# Idempotent; needs root. Set JITGATE_SKIP_APT=1 to skip (e.g. on a prepared builder).
#   install-deps.sh            everything
#   install-deps.sh --build    what compiling every tree needs (scripts/test.sh starts building
#                              after this and installs the rest meanwhile)
#   install-deps.sh --test     what only running the tests and the demo needs
set -euo pipefail
source "$(dirname "$0")/apt-lib.sh"
build_packages=(
  build-essential cmake pkg-config               # toolchain
  clang                                          # clang 14: the second, warning-free build (test.sh)
  lld                                            # test.sh links the sanitizer and fuzz trees with it: ~5x faster than ld.bfd there
  libyaml-cpp-dev nlohmann-json3-dev libssl-dev  # daemon: config, JSON, SHA-256, Ed25519
  libcurl4-openssl-dev                           # daemon: approval service, audit store (HTTPS)
  libhowardhinnant-date-dev                      # daemon: time windows' zones and DST from the OS tzdb (g++ 12 has no std::chrono tzdb)
  libevent-dev                                   # jitgate-server: HTTP(S) event loop (long polls without threads)
  libsqlite3-dev libpq-dev                       # jitgate-server: SQLite (default) and PostgreSQL databases
  sudo                                           # sudo binary and sudo_plugin.h
  libpam0g-dev                                   # PAM module
  libgtest-dev googletest                        # unit tests
  libbenchmark-dev                               # bench/, built (not run) by test.sh
  libcpp-httplib-dev                             # test HTTPS peers
  clang libclang-rt-14-dev                       # fuzz targets (libFuzzer, ASan, UBSan)
  clang-format-14                                # scripts/check-format.sh (test.sh)
)
test_packages=(
  postgresql                                     # jitgate-server tests: a real PostgreSQL 15 in a scratch dir
  haproxy                                        # jitgate-server tests: the load balancer in front of two replicas
  pamtester openssh-server openssh-client        # PAM and SSH integration tests
  openssl curl                                   # test keys, the test peers' admin API
  glewlwyd sqlite3 jq                            # jitgate-server tests: a real OpenID Connect provider (tests/support/idp/)
  chromium chromium-driver libnss3-tools python3 # jitgate-server web UI tests (headless Chromium, tests/support/browser.py)
  weasyprint                                     # jitgate-server report --format pdf: the evidence report's PDF, made from its HTML
  poppler-utils                                  # jitgate-server report tests: pdftotext and pdftoppm read the PDF back
  util-linux procps coreutils bc                 # unshare, setpriv, kill, mktemp; bc for bench
  tzdata                                         # time windows' zones (the daemon's tests and the demo)
)
case "${1:-}" in
  --build) apt_install_missing install-deps.sh "${build_packages[@]}" ;;
  --test) apt_install_missing install-deps.sh "${test_packages[@]}" ;;
  "") apt_install_missing install-deps.sh "${build_packages[@]}" "${test_packages[@]}" ;;
  *) echo "usage: install-deps.sh [--build|--test]" >&2; exit 2 ;;
esac
