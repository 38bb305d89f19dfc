#!/bin/bash
# scripts/check-format.sh — checks that the C++ sources follow .clang-format (STYLE.md).
# usage: check-format.sh [FILE...]
# Runs clang-format 14 (--dry-run --Werror: it changes nothing) over FILE..., or by default over
# every tracked *.cpp and *.hpp except fuzz seed corpora, and names each file it would change.
# Exit 0: all formatted; 1: some file is not (fix: clang-format-14 -i FILE); 2: no clang-format-14.
# clang-format 14 exactly: another version formats some constructs differently.
set -euo pipefail
args=()
for f in "$@"; do args+=("$(realpath -- "$f")"); done # FILE... is relative to the caller's directory
cd "$(dirname "$0")/.."
clang_format="${CLANG_FORMAT:-clang-format-14}"
command -v "$clang_format" >/dev/null || { echo "check-format.sh: $clang_format not found (scripts/install-deps.sh installs it)" >&2; exit 2; }

if [ "${#args[@]}" -gt 0 ]; then
  files=("${args[@]}")
else
  mapfile -t files < <(git ls-files -- '*.cpp' '*.hpp' ':!:tests/fuzz/corpus/**')
fi

unformatted=()
for f in "${files[@]}"; do
  "$clang_format" --style=file:"$PWD/.clang-format" --dry-run --Werror "$f" >/dev/null 2>&1 || unformatted+=("$f")
done

if [ "${#unformatted[@]}" -eq 0 ]; then
  echo "check-format.sh: all ${#files[@]} files follow .clang-format"
  exit 0
fi
echo "check-format.sh: ${#unformatted[@]} of ${#files[@]} files do not follow .clang-format:"
printf '  %s\n' "${unformatted[@]}"
echo "see the changes: $clang_format --dry-run FILE; apply them: $clang_format -i FILE"
exit 1
