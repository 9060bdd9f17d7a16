#!/bin/sh
# Installs the current build into a temporary prefix with `cmake --install`, then builds and
# runs a small program against it twice: through pkg-config (kvik.pc) and through a CMake
# project that uses find_package(kvik) and kvik::kvik.
#
# usage: test_install.sh BUILD_DIR SOURCE_DIR C_COMPILER GENERATOR "SANITIZE_FLAGS"
# Exit 77 (skip) only when pkg-config is missing.
set -eu

build_dir=$1
src_dir=$2
cc=$3
generator=$4
san_flags=${5:-}

if ! command -v pkg-config >/dev/null 2>&1; then
  echo "SKIP: pkg-config is not installed, so kvik.pc cannot be checked"
  exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kvik-install-test-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
prefix="$work/prefix"

echo "== cmake --install $build_dir --prefix $prefix"
cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log" 2>&1 || {
  cat "$work/install.log"
  echo "FAIL: cmake --install failed"
  exit 1
}

pc=$(find "$prefix" -name kvik.pc | head -n 1)
if [ -z "$pc" ]; then
  echo "FAIL: no kvik.pc under $prefix"
  find "$prefix"
  exit 1
fi
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")
for f in "$prefix/include/kvik.h" "$libdir/libkvik.so.0" "$libdir/libkvik.a" \
         "$libdir/cmake/kvik/kvikConfig.cmake"; do
  if [ ! -e "$f" ]; then
    echo "FAIL: $f was not installed"
    exit 1
  fi
done

echo "== pkg-config (PKG_CONFIG_PATH=$pcdir)"
cflags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags kvik)
libs=$(PKG_CONFIG_PATH="$pcdir" pkg-config --libs kvik)
echo "cflags: $cflags"
echo "libs:   $libs"
# The -I directory must be the prefix's include directory (compared after resolving "..").
incdir=$(printf '%s\n' $cflags | sed -n 's/^-I//p' | head -n 1)
case "$(cd "${incdir:-/nonexistent}" 2>/dev/null && pwd -P)" in
  "$(cd "$prefix/include" && pwd -P)") ;;
  *)
    if [ -n "$cflags" ]; then
      echo "FAIL: pkg-config --cflags does not point into the install prefix $prefix"
      echo "      (kvik.pc has: $(grep '^prefix=' "$pc")); a relocated install needs"
      echo "      prefix=\${pcfiledir}/../.. or the prefix computed at install time"
      exit 1
    fi
    ;;
esac
# shellcheck disable=SC2086
"$cc" -std=c17 -Wall -Werror $san_flags $cflags "$src_dir/tests/install/smoke.c" \
  -o "$work/smoke-pc" $libs
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$work/smoke-pc" "$work/data-pc"
# The program must have loaded the installed library, not one from elsewhere.
if command -v ldd >/dev/null 2>&1; then
  LD_LIBRARY_PATH="$libdir" ldd "$work/smoke-pc" | grep -q "$libdir/libkvik.so.0" || {
    echo "FAIL: smoke-pc does not resolve libkvik.so.0 from $libdir"
    LD_LIBRARY_PATH="$libdir" ldd "$work/smoke-pc"
    exit 1
  }
fi

echo "== find_package(kvik) with CMAKE_PREFIX_PATH=$prefix"
cmake -S "$src_dir/tests/install" -B "$work/consumer" -G "$generator" \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_FLAGS="$san_flags" -DCMAKE_EXE_LINKER_FLAGS="$san_flags" \
  >"$work/consumer.log" 2>&1 || {
  cat "$work/consumer.log"
  echo "FAIL: configuring the find_package(kvik) consumer failed"
  exit 1
}
cmake --build "$work/consumer" >>"$work/consumer.log" 2>&1 || {
  cat "$work/consumer.log"
  echo "FAIL: building the find_package(kvik) consumer failed"
  exit 1
}
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$work/consumer/smoke" "$work/data-cmake"
echo "PASS"
