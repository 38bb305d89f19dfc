#!/bin/bash
# The plugins' ABI contract: exported symbols and linked libraries (STYLE.md "Thin plugins").
# usage: check_plugin_abi.sh PLUGIN.so EXPECTED_SYMBOL...
set -euo pipefail
so="$1"; shift
exported="$(nm -D --defined-only "$so" | awk '$2 ~ /^[A-Za-z]$/ {print $3}' | sort)"
expected="$(printf '%s\n' "$@" | sort)"
if [ "$exported" != "$expected" ]; then
  echo "FAIL: $so exports:"; echo "$exported"; echo "expected exactly:"; echo "$expected"; exit 1
fi
needed="$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
if echo "$needed" | grep -Eq 'curl|ssl|crypto|yaml|pthread'; then
  echo "FAIL: $so links a library a plugin must not:"; echo "$needed"; exit 1
fi
readelf -d "$so" | grep -q 'BIND_NOW' || { echo "FAIL: $so is not linked with -z now"; exit 1; }
readelf -lW "$so" | grep -q GNU_RELRO || { echo "FAIL: $so has no RELRO"; exit 1; }
# every constructor in the plugin must be the runtime's own, not one of ours doing work
if nm -C "$so" | grep -q '_GLOBAL__sub_I_'; then echo "FAIL: $so has static initialisers"; nm -C "$so" | grep '_GLOBAL__sub_I_'; exit 1; fi
echo "OK: $so exports exactly: $(echo $exported); needs: $(echo $needed)"
