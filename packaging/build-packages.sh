#!/bin/bash
# Builds jitgate's Debian packages (dpkg-buildpackage, packaging/deb/debian) and RPMs
# (rpmbuild, packaging/rpm/jitgate.spec) from a clean copy of the source into packaging/out/:
#   out/deb/  jitgate, sudo-jitgate, libpam-jitgate .deb, the source package and .changes
#   out/rpm/  jitgate, jitgate-sudo, jitgate-pam .rpm and the .src.rpm
#
# usage: packaging/build-packages.sh [--worktree] [--out DIR] [--deb-only | --rpm-only]
#   default     a clean `git clone` of HEAD: exactly what is committed
#   --worktree  the working tree's tracked and untracked, not ignored files (what a clean
#               clone would hold once committed); the packaging test uses this
# Needs the tools from scripts/install-packaging-deps.sh. Runs as any user (no root needed).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/packaging/out"
source_from=clone
build_deb=1
build_rpm=1
while [ $# -gt 0 ]; do
    case "$1" in
        --worktree) source_from=worktree ;;
        --out) out="$2"; shift ;;
        --deb-only) build_rpm=0 ;;
        --rpm-only) build_deb=0 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "build-packages.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

work="$(mktemp -d /tmp/jitgate-packages.XXXXXX)"
trap 'rm -rf "$work"' EXIT
src="$work/source"

# A clean source tree: no build directories, no packaging/out, nothing ignored.
if [ "$source_from" = clone ]; then
    git clone --quiet --no-hardlinks "$root" "$src"
    rm -rf "$src/.git"
elif git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mkdir -p "$src"
    (cd "$root" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf -) | tar -xf - -C "$src"
else # a tree without git (an unpacked tarball): everything but build output
    mkdir -p "$src"
    tar -C "$root" --exclude=./.git --exclude='./build' --exclude='./build-*' --exclude=./packaging/out \
        -cf - . | tar -xf - -C "$src"
fi
rm -rf "$src/packaging/out"

# The recipes come from the same clean copy as the code.
version="$(sed -n 's/^project(jitgate VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")"
[ -n "$version" ] || { echo "build-packages.sh: no version in CMakeLists.txt" >&2; exit 1; }
deb_version="$(sed -n '1s/^jitgate (\([^)]*\)).*/\1/p' "$src/packaging/deb/debian/changelog")"
rpm_version="$(sed -n 's/^Version:[[:space:]]*//p' "$src/packaging/rpm/jitgate.spec")"
if [ "$deb_version" != "$version" ] || [ "$rpm_version" != "$version" ]; then
    echo "build-packages.sh: versions disagree: CMakeLists.txt $version, debian/changelog $deb_version, jitgate.spec $rpm_version" >&2
    exit 1
fi

mv "$src" "$work/jitgate-$version"
src="$work/jitgate-$version"

jobs="$(nproc)"
mkdir -p "$out"

# The two builds run side by side; each logs to its own file.
build_deb_packages() {
    mkdir -p "$work/debroot"
    cp -a "$src" "$work/debroot/jitgate-$version"
    cp -a "$src/packaging/deb/debian" "$work/debroot/jitgate-$version/debian"
    (cd "$work/debroot/jitgate-$version" && dpkg-buildpackage -us -uc -J"$jobs")
}

build_rpm_packages() {
    local top="$work/rpmbuild"
    mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
    tar -C "$work" -czf "$top/SOURCES/jitgate-$version.tar.gz" "jitgate-$version"
    cp "$src/packaging/rpm/jitgate.spec" "$top/SPECS/"
    local defines=(--define "_topdir $top" --define "_smp_mflags -j$jobs")
    # Debian's rpm ships brp-compress as a /bin/sh script that needs bash (read -d); without
    # this, man pages would stay uncompressed when building on Debian.
    if [ -f /etc/debian_version ]; then
        defines+=(--define "__brp_compress bash /usr/lib/rpm/brp-compress %{?_prefix}")
    fi
    # --nodeps: on a Debian builder the BuildRequires are Debian packages, not in rpm's
    # database (scripts/install-packaging-deps.sh installs them).
    rpmbuild -ba --nodeps "${defines[@]}" "$top/SPECS/jitgate.spec"
}

pids=()
if [ "$build_deb" = 1 ]; then
    echo "== building the .deb packages (dpkg-buildpackage; log: $out/deb/build.log)"
    build_deb_packages >"$work/deb-build.log" 2>&1 &
    pids+=("deb:$!")
fi
if [ "$build_rpm" = 1 ]; then
    echo "== building the .rpm packages (rpmbuild; log: $out/rpm/build.log)"
    build_rpm_packages >"$work/rpm-build.log" 2>&1 &
    pids+=("rpm:$!")
fi
failed=0
for entry in "${pids[@]}"; do
    kind="${entry%%:*}"
    rm -rf "${out:?}/$kind"
    mkdir -p "$out/$kind"
    if ! wait "${entry#*:}"; then
        tail -n 60 "$work/$kind-build.log" >&2
        echo "build-packages.sh: the $kind build failed (full log: $out/$kind/build.log)" >&2
        failed=1
    fi
    cp "$work/$kind-build.log" "$out/$kind/build.log"
done
[ "$failed" = 0 ] || exit 1
if [ "$build_deb" = 1 ]; then
    cp "$work/debroot"/*.deb "$work/debroot"/*.dsc "$work/debroot"/*.tar.* \
       "$work/debroot"/*.changes "$work/debroot"/*.buildinfo "$out/deb/"
fi
if [ "$build_rpm" = 1 ]; then
    find "$work/rpmbuild/RPMS" "$work/rpmbuild/SRPMS" -name '*.rpm' -exec cp {} "$out/rpm/" \;
fi

echo "== packages in $out"
(cd "$out" && find . -name '*.deb' -o -name '*.rpm' | sort)
