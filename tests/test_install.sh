#!/bin/sh
# Installs the current build into a temporary prefix with `cmake --install`, then builds and
# runs a small program against it: through pkg-config (kvik.pc; kvik.pc --static and
# kvik-static.pc, checking that the static links do not need libkvik.so) and through a CMake
# project that uses find_package(kvik) with kvik::kvik and kvik::kvik_static.
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

# needs_libkvik_so PROGRAM: true if the program's dynamic section names libkvik.so.
needs_libkvik_so() { readelf -d "$1" | grep NEEDED | grep -q 'libkvik\.so'; }

echo "== static linking through pkg-config"
# kvik.pc with --static: Libs plus Libs.private, which must name only libraries that are there
# (libcurl's own private dependencies are not, on Debian 12 with libcurl4-openssl-dev). The
# linker still takes libkvik.so over libkvik.a for -lkvik: that is what kvik-static.pc is for.
libs=$(PKG_CONFIG_PATH="$pcdir" pkg-config --static --libs kvik)
echo "pkg-config --static --libs kvik: $libs"
# shellcheck disable=SC2086
"$cc" -std=c17 -Wall -Werror $san_flags $cflags "$src_dir/tests/install/smoke.c" \
  -o "$work/smoke-pc-static" $libs || {
  echo "FAIL: linking with pkg-config --static --libs kvik failed"
  exit 1
}
LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$work/smoke-pc-static" "$work/data-pcs"
# kvik-static.pc: libkvik.a itself, with or without --static; libcurl stays shared.
for static in "" --static; do
  libs=$(PKG_CONFIG_PATH="$pcdir" pkg-config $static --libs kvik-static) || {
    echo "FAIL: pkg-config $static --libs kvik-static failed (no kvik-static.pc in $pcdir?)"
    exit 1
  }
  echo "pkg-config $static --libs kvik-static: $libs"
  # shellcheck disable=SC2086
  "$cc" -std=c17 -Wall -Werror $san_flags $cflags "$src_dir/tests/install/smoke.c" \
    -o "$work/smoke-static" $libs || {
    echo "FAIL: linking with pkg-config $static --libs kvik-static failed"
    exit 1
  }
  if needs_libkvik_so "$work/smoke-static"; then
    echo "FAIL: linked through kvik-static.pc, the program still needs libkvik.so:"
    readelf -d "$work/smoke-static" | grep NEEDED
    exit 1
  fi
  # No LD_LIBRARY_PATH: nothing of kvik is loaded at run time.
  "$work/smoke-static" "$work/data-static"
done

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
"$work/consumer/smoke_static" "$work/data-cmake-static"
if needs_libkvik_so "$work/consumer/smoke_static"; then
  echo "FAIL: linked with kvik::kvik_static, the program still needs libkvik.so"
  exit 1
fi
echo "PASS"
