#!/bin/bash
# Builds jitgate's Debian packages (dpkg-buildpackage, packaging/deb/debian) and RPMs
# (rpmbuild, packaging/rpm/jitgate.spec) from a clean copy of the source into packaging/out/:
#   out/deb/  jitgate, sudo-jitgate, libpam-jitgate, jitgate-server .deb, the source package
#             and .changes
#   out/rpm/  jitgate, jitgate-sudo, jitgate-pam, jitgate-server .rpm and the .src.rpm
# The product is compiled once (log: out/compile/build.log) and both recipes package that build.
#
# usage: packaging/build-packages.sh [--worktree] [--built-tree DIR] [--out DIR]
#                                    [--deb-only | --rpm-only]
#   default     a clean `git clone` of HEAD: exactly what is committed
#   --worktree  the working tree's tracked and untracked, not ignored files (what a clean
#               clone would hold once committed); the packaging test uses this
#   --built-tree DIR  compile nothing: package DIR, a CMake build directory of this source tree
#               (configured from it, JITGATE_BUILD_SERVER=ON, every packaged target up to date).
#               The packaging test hands over the test suite's own build, so that the packages
#               it installs hold the very binaries the suite tested. DIR's CMake cache is put
#               back as it was afterwards (the recipes set their install layout in it).
# Needs the tools from scripts/install-packaging-deps.sh. Runs as any user (no root needed).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/packaging/out"
source_from=clone
build_deb=1
build_rpm=1
built_tree=""
while [ $# -gt 0 ]; do
    case "$1" in
        --worktree) source_from=worktree ;;
        --built-tree) built_tree="${2:?--built-tree needs a directory}"; shift ;;
        --out) out="$2"; shift ;;
        --deb-only) build_rpm=0 ;;
        --rpm-only) build_deb=0 ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "build-packages.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

die() { echo "build-packages.sh: $*" >&2; exit 1; }

# The programs and plugins the packages ship, as CMake targets and as files in a build tree.
product_targets=(jitgated jitgatectl sudo_jitgate pam_jitgate jitgate-server)
product_files=(daemon/jitgated cli/jitgatectl sudo_plugin/sudo_jitgate.so pam_module/pam_jitgate.so
               server/jitgate-server)

# check_built_tree DIR: DIR is a build of this source tree with the server, and compiling its
# packaged targets would do nothing; otherwise says what is wrong and exits.
check_built_tree() {
    local tree="$1" cache="$1/CMakeCache.txt" home generator out
    [ -f "$cache" ] || die "--built-tree $tree: no CMakeCache.txt there; not a configured CMake build directory"
    home="$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$cache")"
    [ -n "$home" ] && [ "$(realpath "$home")" = "$(realpath "$root")" ] ||
        die "--built-tree $tree: configured from '$home', not from this source tree ($root)"
    case "$(sed -n 's/^JITGATE_BUILD_SERVER:BOOL=//p' "$cache")" in
        ON | On | on | TRUE | True | true | YES | Yes | yes | 1) ;;
        *) die "--built-tree $tree: JITGATE_BUILD_SERVER is not ON there, so it has no jitgate-server to package; configure it with -DJITGATE_BUILD_SERVER=ON and build it" ;;
    esac
    # A dry run of the packaged targets: anything it would compile or link means the tree is
    # not (or no longer) the build of this source.
    generator="$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "$cache")"
    case "$generator" in
        Ninja*)
            out="$(ninja -C "$tree" -n "${product_targets[@]}" 2>&1)" ||
                die "--built-tree $tree: ninja -n failed:"$'\n'"$out"
            has_work() { ! printf '%s\n' "$out" | grep -q '^ninja: no work to do'; } ;;
        "Unix Makefiles")
            out="$(make -C "$tree" -n "${product_targets[@]}" 2>&1)" ||
                die "--built-tree $tree: make -n failed:"$'\n'"$out"
            has_work() { printf '%s\n' "$out" | grep -Eq 'Building [A-Z]+ object|Linking [A-Z]+ '; } ;;
        *) die "--built-tree $tree: the generator '$generator' is not supported here (Unix Makefiles or Ninja)" ;;
    esac
    if has_work; then
        die "--built-tree $tree is not fully built (or sources changed since): build it first (cmake --build $tree), then package it"
    fi
}
if [ -n "$built_tree" ]; then
    [ -d "$built_tree" ] || die "--built-tree $built_tree: no such directory"
    built_tree="$(cd "$built_tree" && pwd)"
    check_built_tree "$built_tree"
    # The tree's install step reads the files it installs (config, units, docs) from this
    # source tree: in the default mode, that must be exactly the clean clone of HEAD.
    if [ "$source_from" = clone ] && [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ]; then
        die "--built-tree with uncommitted changes in $root: commit them, or add --worktree to package the working tree"
    fi
fi

work="$(mktemp -d /tmp/jitgate-packages.XXXXXX)"
# restore_cache: the built tree's CMake cache as it was handed over (see below).
restore_cache() {
    [ -n "$built_tree" ] && [ -f "$work/CMakeCache.txt.saved" ] || return 0
    cp "$work/CMakeCache.txt.saved" "$built_tree/CMakeCache.txt"
    if ! cmake "$built_tree" >"$work/restore.log" 2>&1; then
        cat "$work/restore.log" >&2
        echo "build-packages.sh: could not reconfigure $built_tree with its own cache" >&2
        return 1
    fi
    rm -f "$work/CMakeCache.txt.saved"
}
trap 'restore_cache; rm -rf "$work"' EXIT
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
# rpm's %{build_cxxflags} elsewhere. jitgate-server is one more package of the same build
# (install component "server").
#
# With --built-tree that build is the one handed over (already checked above): nothing is
# compiled, and the tree is packaged as it is. The recipes' layout step rewrites install paths
# in its CMakeCache.txt; the cache is saved here and put back (and the tree reconfigured with
# it) on every exit, so that the tree's own `cmake --install` keeps the layout it had.
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
            -DJITGATE_BUILD_TESTS=OFF -DJITGATE_WERROR=OFF -DJITGATE_BUILD_SERVER=ON
        cmake --build "$built" -j"$jobs"
    )
}

# has_debug_info: some packaged binary of $built carries DWARF debug information.
has_debug_info() {
    local f
    for f in "${product_files[@]}"; do
        if readelf -S --wide "$built/$f" 2>/dev/null | grep -q ' \.debug_info '; then return 0; fi
    done
    return 1
}

build_deb_packages() {
    mkdir -p "$work/debroot"
    cp -a "$src" "$work/debroot/jitgate-$version"
    cp -a "$src/packaging/deb/debian" "$work/debroot/jitgate-$version/debian"
    # The same for dh_strip: from a build without debug information its -dbgsym packages would
    # hold bare symbol tables (lintian: debug-file-with-no-debug-symbols), so none is made.
    local options="${DEB_BUILD_OPTIONS:-}"
    if ! has_debug_info; then options="${options:+$options }noautodbgsym"; fi
    (cd "$work/debroot/jitgate-$version" &&
        DEB_BUILD_OPTIONS="$options" JITGATE_BUILT_TREE="$built" dpkg-buildpackage -us -uc -J"$jobs")
}

build_rpm_packages() {
    local top="$work/rpmbuild"
    mkdir -p "$top"/{SOURCES,SPECS,BUILD,RPMS,SRPMS}
    tar -C "$work" -czf "$top/SOURCES/jitgate-$version.tar.gz" "jitgate-$version"
    cp "$src/packaging/rpm/jitgate.spec" "$top/SPECS/"
    local defines=(--define "_topdir $top" --define "_smp_mflags -j$jobs" --define "jitgate_built_tree $built")
    # A build without debug information (the test suite's: -O2 -DNDEBUG) has nothing for
    # find-debuginfo to split, which would fail the build on rpm's that make -debuginfo
    # packages; the spec then makes none (jitgate_no_debuginfo, see there).
    if ! has_debug_info; then
        defines+=(--define "jitgate_no_debuginfo 1")
    fi
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
if [ -n "$built_tree" ]; then
    built="$built_tree"
    cp "$built/CMakeCache.txt" "$work/CMakeCache.txt.saved"
    rm -rf "${out:?}/compile"
    echo "== packaging the build in $built (nothing is compiled)"
else
    run_step compile compile_product
fi
if [ "$build_deb" = 1 ]; then
    run_step deb build_deb_packages
    cp "$work/debroot"/*.deb "$work/debroot"/*.dsc "$work/debroot"/*.tar.* \
       "$work/debroot"/*.changes "$work/debroot"/*.buildinfo "$out/deb/"
fi
if [ "$build_rpm" = 1 ]; then
    run_step rpm build_rpm_packages
    find "$work/rpmbuild/RPMS" "$work/rpmbuild/SRPMS" -name '*.rpm' -exec cp {} "$out/rpm/" \;
fi

restore_cache || exit 1
echo "== packages in $out"
(cd "$out" && find . -name '*.deb' -o -name '*.rpm' | sort)
