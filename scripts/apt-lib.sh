# scripts/apt-lib.sh — sourced by the install-*deps.sh scripts.
# apt_install_missing NAME PACKAGE...: installs the packages not yet installed (noninteractive,
# no recommends; `apt-get update` only when something is missing). Needs root unless
# JITGATE_SKIP_APT=1, which skips everything (a prepared builder).
apt_install_missing() {
    local name="$1"; shift
    [ "${JITGATE_SKIP_APT:-0}" = 1 ] && return 0
    if [ "$(id -u)" != 0 ]; then echo "$name: run as root (it uses apt-get)" >&2; return 1; fi
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}
