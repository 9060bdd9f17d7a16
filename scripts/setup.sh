#!/usr/bin/env bash
# Installs what building and testing kvik needs, with apt-get, only when something is missing.
# Runs as root, or through sudo otherwise. 'setup.sh --packages' prints the package list. Safe to run again: it does nothing when all is there.
# On a system without apt-get it checks for the tools and says what is missing.
set -euo pipefail

# Build: compiler, CMake, Ninja, pkg-config; libcurl for remote files. Tests: cmocka; clang and
# its sanitizer runtimes (libclang-rt-dev is only recommended by clang, and recommends are not
# installed here); nginx and python3 for the servers the remote tests start, openssl for the
# throwaway CA of the TLS tests (S3 tests also want python's moto, which Debian 12 does not
# package: .ci/run installs it with pip, and without it those tests are skipped with the reason);
# groff-base and man-db render the man pages in the 'man' test; python3-dev and python3-venv for
# the Python package (its extension module and its test venv); valgrind for scripts/valgrind.sh
# and the leak checks of the allocation torture.
packages=(build-essential cmake ninja-build pkg-config clang libclang-rt-dev libcmocka-dev
  libcurl4-openssl-dev nginx openssl python3 groff-base man-db python3-dev python3-venv valgrind)

# --packages: print the list (for .ci/run) and stop.
if [[ ${1:-} == --packages ]]; then
  echo "${packages[*]}"
  exit 0
fi

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    # Not Debian or Ubuntu: check for the tools themselves.
    for tool in cc cmake ninja pkg-config clang python3; do
      command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    pkg-config --exists cmocka 2>/dev/null || missing+=("cmocka (development files)")
    if [[ ${#missing[@]} -ne 0 ]]; then
      echo "setup: missing: ${missing[*]}; install them with your package manager" >&2
      exit 1
    fi
  fi
  exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
  sudo=(sudo)
fi
echo "setup: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
