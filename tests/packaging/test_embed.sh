#!/bin/sh
# kvik built from source inside other builds, without its tests:
#  1. kvik as the top-level project with cmocka hidden (CMAKE_DISABLE_FIND_PACKAGE_cmocka):
#     configuring works, says once that tests are off and why, and registers no test; with
#     -DBUILD_TESTING=ON given explicitly it fails and names cmocka; -DBUILD_TESTING=OFF says so.
#  2. add_subdirectory(kvik) and 3. FetchContent (from a tarball of this source tree through a
#     file:// URL: no network) in tests/packaging/embed: kvik::kvik and kvik::kvik_static exist,
#     none of kvik's tests or its tool are built, and a program linked with each runs; the one
#     linked with kvik::kvik_static does not need libkvik.so.
#
# usage: test_embed.sh SOURCE_DIR C_COMPILER GENERATOR
set -eu

src_dir=$1
cc=$2
generator=$3

work=$(mktemp -d "${TMPDIR:-/tmp}/kvik-embed-test-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
fail() {
  echo "FAIL: $*"
  exit 1
}
# show FILE: prints a log indented, for a failure's context.
show() { sed 's/^/    /' "$1"; }

# tests_registered BUILD_DIR: the number of tests CTest finds there.
tests_registered() {
  ctest --test-dir "$1" -N | sed -n 's/^Total Tests: *//p'
}

# ---- 1. top level, cmocka hidden --------------------------------------------------------------
top=$work/top
echo "== kvik top level, cmocka hidden, BUILD_TESTING not given"
cmake -S "$src_dir" -B "$top" -G "$generator" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON >"$work/top.log" 2>&1 || {
  show "$work/top.log"
  fail "configuring kvik without cmocka failed (the README's install must work without it)"
}
n=$(grep -c 'tests are off' "$work/top.log" || true)
[ "$n" = 1 ] || { show "$work/top.log"; fail "expected one 'tests are off' line, got $n"; }
grep 'tests are off' "$work/top.log" | grep -q cmocka ||
  fail "the 'tests are off' line does not say cmocka is missing: $(grep 'tests are off' "$work/top.log")"
[ "$(tests_registered "$top")" = 0 ] || fail "tests registered without cmocka: $(tests_registered "$top")"
# Configuring again (the cache now holds CTest's BUILD_TESTING=ON) must not turn into an error.
cmake "$top" >"$work/top2.log" 2>&1 || { show "$work/top2.log"; fail "reconfiguring failed"; }
grep -q 'tests are off' "$work/top2.log" || { show "$work/top2.log"; fail "no 'tests are off' on reconfigure"; }

echo "== kvik top level, cmocka hidden, -DBUILD_TESTING=ON"
if cmake -S "$src_dir" -B "$work/top-on" -G "$generator" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_DISABLE_FIND_PACKAGE_cmocka=ON -DBUILD_TESTING=ON >"$work/top-on.log" 2>&1; then
  show "$work/top-on.log"
  fail "BUILD_TESTING=ON without cmocka configured, so a test run would pass by running nothing"
fi
grep -q 'cmocka' "$work/top-on.log" || { show "$work/top-on.log"; fail "the error does not name cmocka"; }

echo "== kvik top level, -DBUILD_TESTING=OFF"
cmake -S "$src_dir" -B "$work/top-off" -G "$generator" -DCMAKE_C_COMPILER="$cc" \
  -DBUILD_TESTING=OFF >"$work/top-off.log" 2>&1 || { show "$work/top-off.log"; fail "configure failed"; }
grep 'tests are off' "$work/top-off.log" | grep -q BUILD_TESTING ||
  { show "$work/top-off.log"; fail "no 'tests are off: BUILD_TESTING' line"; }
[ "$(tests_registered "$work/top-off")" = 0 ] || fail "tests registered with BUILD_TESTING=OFF"

# ---- 2. and 3. embedded -----------------------------------------------------------------------
# A tarball of the source tree as it is now (committed or not), without build output.
tarball=$work/kvik-src.tar.gz
if git -C "$src_dir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$src_dir" && git ls-files -co --exclude-standard -z | tar --null -T - -czf "$tarball")
else
  tar -C "$src_dir" --exclude-vcs --exclude='./build*' -czf "$tarball" .
fi
sha=$(sha256sum "$tarball" | cut -d' ' -f1)

embed() { # embed MODE SOURCE
  b=$work/embed-$1
  echo "== embedding with $1"
  cmake -S "$src_dir/tests/packaging/embed" -B "$b" -G "$generator" -DCMAKE_C_COMPILER="$cc" \
    -DKVIK_EMBED="$1" -DKVIK_SOURCE="$2" -DKVIK_SOURCE_SHA256="$sha" >"$b.log" 2>&1 ||
    { show "$b.log"; fail "configuring the project that embeds kvik with $1 failed"; }
  grep 'tests are off' "$b.log" | grep -q 'top-level' ||
    { show "$b.log"; fail "$1: no 'tests are off' line naming the top-level project"; }
  cmake --build "$b" >>"$b.log" 2>&1 || { show "$b.log"; fail "building with $1 failed"; }
  # Only the embedding project's own two tests: none of kvik's.
  [ "$(tests_registered "$b")" = 2 ] || { ctest --test-dir "$b" -N; fail "$1: kvik's tests are registered"; }
  ctest --test-dir "$b" --output-on-failure >>"$b.log" 2>&1 ||
    { show "$b.log"; fail "$1: the programs linked with kvik::kvik / kvik::kvik_static failed"; }
  readelf -d "$b/smoke_shared" | grep NEEDED | grep -q 'libkvik\.so\.0' ||
    fail "$1: smoke_shared does not need libkvik.so.0 ($(readelf -d "$b/smoke_shared" | grep NEEDED))"
  if readelf -d "$b/smoke_static" | grep NEEDED | grep -q libkvik; then
    fail "$1: smoke_static (kvik::kvik_static) needs libkvik.so: $(readelf -d "$b/smoke_static" | grep NEEDED)"
  fi
  echo "ok: $1: kvik::kvik and kvik::kvik_static link and run; no kvik tests or tool built"
}
embed add_subdirectory "$src_dir"
embed FetchContent "file://$tarball"
echo "PASS"
