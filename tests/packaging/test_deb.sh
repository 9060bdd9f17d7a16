#!/bin/sh
# The README's install and Debian packages, from a fresh build of the source tree:
#  1. configure (-DCMAKE_INSTALL_PREFIX=/usr, cmocka hidden: the README's commands must work
#     without it), build, `cmake --install` into a temporary prefix;
#  2. `cpack -G DEB`: libkvik0, libkvik-dev, kvik-tools, each checked with dpkg-deb: fields,
#     dependencies, the ldconfig trigger and shlibs file of libkvik0, and contents (each file of
#     the `cmake --install` tree in exactly one package);
#  3. the dependencies resolve on this system (apt-get --simulate, where apt-get is);
#  4. dpkg installs the three into a temporary root (dpkg --root), where the tool runs, programs
#     build and run through pkg-config (kvik and kvik-static), and dpkg purges them again;
#  5. with KVIK_TEST_DPKG_INSTALL=1, as root (CI, a disposable machine), a real `dpkg -i` into
#     the system: ldconfig (through the trigger) knows libkvik.so.0, `kvik` and `man kvik` work,
#     a program builds with the system's pkg-config and runs without LD_LIBRARY_PATH; then
#     `dpkg --purge` removes it all. Never when one of the packages is already installed.
#
# usage: test_deb.sh SOURCE_DIR C_COMPILER GENERATOR
set -eu

src_dir=$1
cc=$2
generator=$3

for tool in dpkg dpkg-deb; do
  if ! command -v $tool >/dev/null 2>&1; then
    echo "SKIP: $tool is not installed (not a Debian-based system), so no .deb can be checked"
    exit 77
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/kvik-deb-test-XXXXXX")
real_installed=0
cleanup() {
  if [ "$real_installed" = 1 ]; then
    dpkg --purge kvik-tools libkvik-dev libkvik0 >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
fail() {
  echo "FAIL: $*"
  exit 1
}
show() { sed 's/^/    /' "$1"; }

# ---- 1. the README's install, without cmocka ----------------------------------------------------
build=$work/build
echo "== configure, build and install (prefix /usr, cmocka hidden)"
cmake -S "$src_dir" -B "$build" -G "$generator" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON \
  >"$work/build.log" 2>&1 || { show "$work/build.log"; fail "configure failed"; }
cmake --build "$build" >>"$work/build.log" 2>&1 || { show "$work/build.log"; fail "build failed"; }
cmake --install "$build" --prefix "$work/tree" >>"$work/build.log" 2>&1 ||
  { show "$work/build.log"; fail "cmake --install failed"; }
(cd "$work/tree" && find . ! -type d | sed 's|^\./||' | sort) >"$work/tree.list"
for f in include/kvik.h bin/kvik share/man/man1/kvik.1 share/man/man3/kvik.3; do
  grep -qx "$f" "$work/tree.list" || fail "cmake --install did not install $f"
done
libdir=$(sed -n 's|/libkvik\.so\.0$||p' "$work/tree.list")
[ -n "$libdir" ] || fail "cmake --install did not install libkvik.so.0"
echo "ok: $(wc -l <"$work/tree.list") files installed; libraries in $libdir"
remote=0
readelf -d "$work/tree/$libdir/libkvik.so.0" | grep NEEDED | grep -q libcurl && remote=1

# ---- 2. the packages ----------------------------------------------------------------------------
echo "== cpack -G DEB"
(cd "$build" && cpack -G DEB) >"$work/cpack.log" 2>&1 || { show "$work/cpack.log"; fail "cpack -G DEB failed"; }
version=$(dpkg-deb -f "$build"/libkvik0_*.deb Version 2>/dev/null) || fail "no libkvik0_*.deb in $build"
arch=$(dpkg --print-architecture)
debs=""
for p in libkvik0 libkvik-dev kvik-tools; do
  deb=$build/${p}_${version}_$arch.deb
  [ -f "$deb" ] || { ls "$build"/*.deb; fail "no $deb"; }
  debs="$debs $deb"
  [ "$(dpkg-deb -f "$deb" Package)" = "$p" ] || fail "$deb: Package is not $p"
  [ "$(dpkg-deb -f "$deb" Architecture)" = "$arch" ] || fail "$deb: Architecture is not $arch"
  dpkg-deb -f "$deb" Description | head -n 1 | grep -q . || fail "$deb: no description"
  dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./usr/||' | sort >"$work/$p.list"
  echo "$p $version: Depends: $(dpkg-deb -f "$deb" Depends)"
done
depends() { dpkg-deb -f "$build/${1}_${version}_$arch.deb" Depends; }
# has_dep PACKAGE REGEX: an entry of the package's Depends matches (entries split at ", ").
has_dep() { depends "$1" | sed 's/, /\n/g' | grep -qE "^($2)\$"; }

has_dep libkvik0 'libc6( \(>= [0-9.]+\))?' || fail "libkvik0 does not depend on libc6: $(depends libkvik0)"
if [ "$remote" = 1 ]; then
  has_dep libkvik0 'libcurl4( \(>= [0-9.]+\))?( \| libcurl4t64)?' ||
    fail "libkvik0 links libcurl but does not depend on libcurl4: $(depends libkvik0)"
  has_dep libkvik-dev 'libcurl4-openssl-dev \| libcurl-dev' ||
    fail "libkvik-dev (libkvik.a links -lcurl) does not depend on libcurl's development files"
fi
has_dep libkvik-dev "libkvik0 \\(= $version\\)" || fail "libkvik-dev does not depend on libkvik0 (= $version)"
has_dep kvik-tools "libkvik0 \\(= $version\\)" || fail "kvik-tools does not depend on libkvik0 (= $version)"
[ "$(dpkg-deb -f "$build/libkvik0_${version}_$arch.deb" Section)" = libs ] || fail "libkvik0 is not in section libs"

dpkg-deb -e "$build/libkvik0_${version}_$arch.deb" "$work/control"
[ "$(cat "$work/control/triggers" 2>/dev/null)" = "activate-noawait ldconfig" ] ||
  fail "libkvik0 has no 'activate-noawait ldconfig' trigger: $(cat "$work/control/triggers" 2>&1)"
grep -qE "^libkvik 0 libkvik0 \\(>= " "$work/control/shlibs" 2>/dev/null ||
  fail "libkvik0's shlibs file does not map libkvik.so.0 to libkvik0: $(cat "$work/control/shlibs" 2>&1)"
for s in postinst postrm; do
  if [ -f "$work/control/$s" ] && grep -v '^#' "$work/control/$s" | grep -q ldconfig; then
    fail "libkvik0's $s calls ldconfig (the trigger does that)"
  fi
done
echo "ok: libkvik0 has the ldconfig trigger and a shlibs file"

# Contents: libkvik0 only the shared library; each file of the install in exactly one package.
grep -qvE "^$libdir/libkvik\\.so\\.0(\\.[0-9.]+)?\$" "$work/libkvik0.list" &&
  fail "libkvik0 holds more than the shared library: $(cat "$work/libkvik0.list")"
grep -qx "$libdir/libkvik.so" "$work/libkvik-dev.list" || fail "libkvik-dev lacks the libkvik.so link"
grep -qx "bin/kvik" "$work/kvik-tools.list" || fail "kvik-tools lacks bin/kvik"
sort "$work/libkvik0.list" "$work/libkvik-dev.list" "$work/kvik-tools.list" >"$work/packaged.list"
if ! cmp -s "$work/packaged.list" "$work/tree.list"; then
  echo "packaged files (<) against cmake --install (>):"
  diff "$work/packaged.list" "$work/tree.list" || true
  fail "the packages do not hold each installed file exactly once"
fi
echo "ok: the three packages hold the $(wc -l <"$work/tree.list") installed files, each once"

# ---- 3. dependencies resolve on this system ------------------------------------------------------
if command -v apt-get >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  apt-get --simulate -o Debug::NoLocking=1 install $debs >"$work/apt.log" 2>&1 ||
    { show "$work/apt.log"; fail "apt-get --simulate install of the packages failed"; }
  echo "ok: apt-get --simulate installs the three packages here"
else
  echo "note: no apt-get; dependencies were not resolved against this system"
fi

# ---- 4. dpkg into a temporary root ---------------------------------------------------------------
# Only kvik's packages are in that root's database, hence --force-depends (3. checked them);
# the maintainer scripts of libkvik0 do nothing and the root has no shell, hence chrootless.
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
: >"$root/var/lib/dpkg/status"
force="--force-depends --force-script-chrootless"
[ "$(id -u)" = 0 ] || force="$force --force-not-root"
echo "== dpkg --root=$root -i"
# shellcheck disable=SC2086
dpkg --root="$root" $force --log=/dev/null -i $debs >"$work/dpkg.log" 2>&1 ||
  { show "$work/dpkg.log"; fail "dpkg -i into a temporary root failed"; }
for p in libkvik0 libkvik-dev kvik-tools; do
  dpkg --root="$root" -s "$p" 2>/dev/null | grep -qx 'Status: install ok installed' ||
    fail "$p is not 'install ok installed' in the temporary root"
done
rlib=$root/usr/$libdir
out=$(LD_LIBRARY_PATH="$rlib" "$root/usr/bin/kvik" --version) || fail "the packaged kvik --version failed"
case $out in "kvik ${version%-*} (libkvik ${version%-*})") ;; *) fail "kvik --version says: $out" ;; esac
for pc in kvik kvik-static; do
  flags=$(PKG_CONFIG_PATH="$rlib/pkgconfig" pkg-config --cflags --libs $pc) || fail "pkg-config $pc failed"
  # shellcheck disable=SC2086
  "$cc" -std=c17 -Wall -Werror "$src_dir/tests/install/smoke.c" -o "$work/smoke-$pc" $flags ||
    fail "building against the packages with pkg-config $pc failed"
  LD_LIBRARY_PATH="$rlib" "$work/smoke-$pc" "$work/data-$pc" >/dev/null || fail "the program built with $pc failed"
done
echo "ok: installed into a temporary root; kvik runs; programs build with kvik.pc and kvik-static.pc"
# shellcheck disable=SC2086
dpkg --root="$root" $force --log=/dev/null --purge kvik-tools libkvik-dev libkvik0 >"$work/purge.log" 2>&1 ||
  { show "$work/purge.log"; fail "dpkg --purge in the temporary root failed"; }
left=$(find "$root/usr" ! -type d 2>/dev/null | head -n 5)
[ -z "$left" ] || fail "files left after dpkg --purge: $left"
echo "ok: dpkg --purge removes every file"

# ---- 5. the real system ---------------------------------------------------------------------------
if [ "${KVIK_TEST_DPKG_INSTALL:-0}" != 1 ]; then
  echo "note: no dpkg -i into this system (set KVIK_TEST_DPKG_INSTALL=1 on a disposable machine, as CI does)"
elif [ "$(id -u)" != 0 ]; then
  echo "note: no dpkg -i into this system: not root"
elif dpkg-query -W libkvik0 libkvik-dev kvik-tools >/dev/null 2>&1; then
  echo "note: no dpkg -i into this system: a kvik package is installed already ($(dpkg-query -W libkvik0 libkvik-dev kvik-tools 2>&1 | tr '\n' ' '))"
else
  echo "== dpkg -i into this system"
  real_installed=1
  # shellcheck disable=SC2086
  dpkg -i $debs >"$work/real.log" 2>&1 || { show "$work/real.log"; fail "dpkg -i failed"; }
  ldconfig -p | grep -q 'libkvik\.so\.0 ' || fail "after dpkg -i, ldconfig's cache has no libkvik.so.0 (trigger not run?)"
  out=$(env -u LD_LIBRARY_PATH kvik --version) || fail "kvik --version failed after dpkg -i"
  echo "kvik --version: $out"
  if command -v man >/dev/null 2>&1 && [ -e /usr/share/man/man1/kvik.1 ]; then
    man -w kvik | grep -q man1/kvik.1 || fail "man -w kvik does not find kvik(1)"
    man -w 3 kvik | grep -q man3/kvik.3 || fail "man -w 3 kvik does not find kvik(3)"
  else
    echo "note: man pages not checked after dpkg -i (no man, or dpkg excludes /usr/share/man here)"
  fi
  for pc in kvik kvik-static; do
    # shellcheck disable=SC2046
    "$cc" -std=c17 -Wall -Werror "$src_dir/tests/install/smoke.c" -o "$work/sys-$pc" \
      $(pkg-config --cflags --libs $pc) || fail "building with the system's pkg-config $pc failed"
    env -u LD_LIBRARY_PATH "$work/sys-$pc" "$work/sys-data-$pc" >/dev/null || fail "program ($pc) failed"
  done
  dpkg --purge kvik-tools libkvik-dev libkvik0 >"$work/real-purge.log" 2>&1 ||
    { show "$work/real-purge.log"; fail "dpkg --purge failed"; }
  real_installed=0
  ! ldconfig -p | grep -q 'libkvik\.so\.0 ' || fail "after dpkg --purge, ldconfig's cache still has libkvik.so.0"
  [ ! -e /usr/bin/kvik ] || fail "/usr/bin/kvik is left after dpkg --purge"
  echo "ok: dpkg -i, ldconfig, kvik, man, pkg-config builds, dpkg --purge on this system"
fi
echo "PASS"
