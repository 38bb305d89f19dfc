#!/bin/bash
# tests/unit/check_plugin_abi.sh — a plugin's ABI contract (STYLE.md "Thin plugins").
# The plugin exports exactly the global: symbols of its exports.map (read from the map, so the
# two cannot drift), links none of the libraries a plugin must not, is linked with -z now and
# RELRO, has no static initialisers of ours, and loads with dlopen(RTLD_NOW) with every export
# resolving (dlopen_check: bash cannot dlopen).
# usage: check_plugin_abi.sh PLUGIN.so EXPORTS.MAP DLOPEN_CHECK [STRUCT=approval|audit]...
#   STRUCT=KIND names an exported sudo plugin struct and the type it must carry
#   (SUDO_APPROVAL_PLUGIN or SUDO_AUDIT_PLUGIN); every exported data object needs one.
set -euo pipefail
so="$1"; map="$2"; dlopen_check="$3"; shift 3
fail() { echo "FAIL: $*"; exit 1; }

# The names between "global:" and "local:" (or the closing brace), comments removed.
expected="$(perl -0777 -ne 's{/\*.*?\*/}{}gs; s{#[^\n]*}{}g;
                           print "$1" if /global:(.*?)(?:local:|\})/s' "$map" |
            tr ';' '\n' | tr -d ' \t\r' | sed '/^$/d' | sort)"
[ -n "$expected" ] || fail "$map lists no global: symbols"

exported="$(nm -D --defined-only "$so" | awk '$2 ~ /^[A-Za-z]$/ {print $3}' | sort)"
if [ "$exported" != "$expected" ]; then
  echo "FAIL: $so exports:"; echo "$exported"; echo "but $map says exactly:"; echo "$expected"
  echo "differences (< exported only, > in the map only):"
  diff <(echo "$exported") <(echo "$expected") | grep '^[<>]' || true
  exit 1
fi

declare -A kind_of=()
for arg in "$@"; do
  name="${arg%%=*}"
  grep -qxF "$name" <<<"$expected" || fail "$name=${arg#*=} is given, but $map does not export $name"
  kind_of["$name"]="${arg#*=}"
done
for name in $(nm -D --defined-only "$so" | awk '$2 ~ /^[BDRVbdrv]$/ {print $3}'); do
  [ -n "${kind_of[$name]:-}" ] || fail "$so exports the data object $name, but no STRUCT=KIND says which plugin struct it is"
done

needed="$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
# libstdc++ is linked in statically with its symbols kept local (sudo_plugin/CMakeLists.txt).
if echo "$needed" | grep -Eq 'curl|ssl|crypto|yaml|pthread|libstdc\+\+'; then
  echo "FAIL: $so links a library a plugin must not:"; echo "$needed"; exit 1
fi
readelf -d "$so" | grep -q 'BIND_NOW' || fail "$so is not linked with -z now"
readelf -lW "$so" | grep -q GNU_RELRO || fail "$so has no RELRO"
# every constructor in the plugin must be the runtime's own, not one of ours doing work. The
# static libstdc++ brings one: eh_alloc.cc's, which sets up the pool for exceptions thrown when
# malloc fails. (Read into a variable: `nm | grep -q` under pipefail fails with nm's SIGPIPE
# when grep finds a match early, which let any initialiser through.)
initialisers="$(nm "$so" | awk '$3 ~ /^_GLOBAL__sub_I_/ && $3 != "_GLOBAL__sub_I_eh_alloc.cc" {print $3}')"
[ -z "$initialisers" ] || fail "$so has static initialisers: $(echo $initialisers)"

args=()
for name in $expected; do args+=("$name${kind_of[$name]:+=${kind_of[$name]}}"); done
"$dlopen_check" "$so" "${args[@]}" || fail "$so does not load, or an export does not resolve (above)"
echo "OK: $so exports exactly: $(echo $expected); needs: $(echo $needed)"
