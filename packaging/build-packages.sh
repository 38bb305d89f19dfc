#!/bin/bash
# Builds jitgate's Debian packages (dpkg-buildpackage, packaging/deb/debian) and RPMs
# (rpmbuild, packaging/rpm/jitgate.spec) from a clean copy of the source into packaging/out/:
#   out/deb/  jitgate, sudo-jitgate, libpam-jitgate .deb, the source package and .changes
#   out/rpm/  jitgate, jitgate-sudo, jitgate-pam .rpm and the .src.rpm
# The product is compiled once (log: out/compile/build.log) and both recipes package that build.
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

# The product is compiled once, here, and both recipes package that one build: each configures
# its distribution's install layout into it (install paths only, nothing is recompiled) and
# runs `cmake --install` (debian/rules and jitgate.spec, JITGATE_BUILT_TREE / jitgate_built_tree).
# Without that hand-over each recipe compiles the source itself, as a buildd or mock would; the
# two are the same configure options (tests off, warnings not errors) and the same install step.
# The flags are the distribution's: dpkg-buildflags with hardening=+all on a Debian builder,
# rpm's %{build_cxxflags} elsewhere. jitgate-server has no package of its own yet (issue 13
# stays open for it), so the packages are built with -DJITGATE_BUILD_SERVER=OFF here and in
# both recipes; its package will turn that on and take the install component "server".
built="$work/build"
compile_product() {
    (
        cd "$src"
        local build_type=RelWithDebInfo
        if command -v dpkg-buildflags >/dev/null; then
            eval "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --export=sh)"
            # CMake does not read CPPFLAGS (_FORTIFY_SOURCE); dh_auto_configure adds them too.
            export CXXFLAGS="$CXXFLAGS $CPPFLAGS"
            build_type=None
        elif command -v rpm >/dev/null && [ "$(rpm --eval '%{?build_cxxflags:1}')" = 1 ]; then
            CXXFLAGS="$(rpm --eval '%{build_cxxflags}')" LDFLAGS="$(rpm --eval '%{build_ldflags}')"
            export CXXFLAGS LDFLAGS
            build_type=None
        fi
        cmake -S "$src" -B "$built" -DCMAKE_BUILD_TYPE="$build_type" \
            -DJITGATE_BUILD_TESTS=OFF -DJITGATE_WERROR=OFF -DJITGATE_BUILD_SERVER=OFF
        cmake --build "$built" -j"$jobs"
    )
}

build_deb_packages() {
    mkdir -p "$work/debroot"
    cp -a "$src" "$work/debroot/jitgate-$version"
    cp -a "$src/packaging/deb/debian" "$work/debroot/jitgate-$version/debian"
    (cd "$work/debroot/jitgate-$version" && JITGATE_BUILT_TREE="$built" dpkg-buildpackage -us -uc -J"$jobs")
}

build_rpm_packages() {
    local top="$work/rpmbuild"
    mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
    tar -C "$work" -czf "$top/SOURCES/jitgate-$version.tar.gz" "jitgate-$version"
    cp "$src/packaging/rpm/jitgate.spec" "$top/SPECS/"
    local defines=(--define "_topdir $top" --define "_smp_mflags -j$jobs" --define "jitgate_built_tree $built")
    # Debian's rpm ships brp-compress as a /bin/sh script that needs bash (read -d); without
    # this, man pages would stay uncompressed when building on Debian.
    if [ -f /etc/debian_version ]; then
        defines+=(--define "__brp_compress bash /usr/lib/rpm/brp-compress %{?_prefix}")
    fi
    # --nodeps: on a Debian builder the BuildRequires are Debian packages, not in rpm's
    # database (scripts/install-packaging-deps.sh installs them).
    rpmbuild -ba --nodeps "${defines[@]}" "$top/SPECS/jitgate.spec"
}

# One after the other: both recipes configure their layout into the same build directory.
run_step() { # KIND FUNCTION: logs to $out/KIND/build.log; on failure shows its tail and exits
    local kind="$1"
    rm -rf "${out:?}/$kind"
    mkdir -p "$out/$kind"
    echo "== $2 (log: $out/$kind/build.log)"
    if ! "$2" >"$out/$kind/build.log" 2>&1; then
        tail -n 60 "$out/$kind/build.log" >&2
        echo "build-packages.sh: $2 failed (full log: $out/$kind/build.log)" >&2
        exit 1
    fi
}
run_step compile compile_product
if [ "$build_deb" = 1 ]; then
    run_step deb build_deb_packages
    cp "$work/debroot"/*.deb "$work/debroot"/*.dsc "$work/debroot"/*.tar.* \
       "$work/debroot"/*.changes "$work/debroot"/*.buildinfo "$out/deb/"
fi
if [ "$build_rpm" = 1 ]; then
    run_step rpm build_rpm_packages
    find "$work/rpmbuild/RPMS" "$work/rpmbuild/SRPMS" -name '*.rpm' -exec cp {} "$out/rpm/" \;
fi

echo "== packages in $out"
(cd "$out" && find . -name '*.deb' -o -name '*.rpm' | sort)
