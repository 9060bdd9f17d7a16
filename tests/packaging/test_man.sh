#!/bin/sh
# The installed man pages: kvik(1) and kvik(3) are there after `cmake --install`, render with
# groff and `man -l` without a warning, and say what the installed tool and header say:
#  - kvik(1) has a section for every command that `kvik --help` lists and for every variant a
#    command's help points at ('kvik cp URL --help'), holding every option that help lists;
#    its ENVIRONMENT names every variable `kvik info` lists (the library's table);
#  - kvik(3) names every function kvik.h declares.
#
# usage: test_man.sh BUILD_DIR
set -eu

build_dir=$1
work=$(mktemp -d "${TMPDIR:-/tmp}/kvik-man-test-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

if ! command -v groff >/dev/null 2>&1; then
  echo "SKIP: groff is not installed (Debian: groff-base), so the man pages cannot be rendered"
  exit 77
fi

prefix=$work/prefix
cmake --install "$build_dir" --prefix "$prefix" >"$work/install.log" 2>&1 || {
  cat "$work/install.log"
  echo "FAIL: cmake --install failed"
  exit 1
}
kvik=$prefix/bin/kvik
man1=$(find "$prefix" -path '*/man1/kvik.1' | head -n 1)
man3=$(find "$prefix" -path '*/man3/kvik.3' | head -n 1)
[ -n "$man1" ] || { find "$prefix"; echo "FAIL: no man1/kvik.1 under $prefix"; exit 1; }
[ -n "$man3" ] || { find "$prefix"; echo "FAIL: no man3/kvik.3 under $prefix"; exit 1; }
[ -x "$kvik" ] || { echo "FAIL: no $kvik"; exit 1; }

# ---- rendering ---------------------------------------------------------------------------------
for page in "$man1" "$man3"; do
  name=$(basename "$page")
  # -ww: every warning groff has; -z: no output, only the diagnostics.
  groff -man -ww -z -Tutf8 "$page" >"$work/groff.err" 2>&1 || fail "groff failed on $name"
  if [ -s "$work/groff.err" ]; then
    fail "groff warns about $name:"
    sed 's/^/    /' "$work/groff.err"
  fi
  if command -v man >/dev/null 2>&1; then
    MANWIDTH=80 man --warnings -l "$page" >"$work/man.out" 2>"$work/man.err" || fail "man -l failed on $name"
    if [ -s "$work/man.err" ]; then
      fail "man -l warns about $name:"
      sed 's/^/    /' "$work/man.err"
    fi
    grep -q . "$work/man.out" || fail "man -l $name printed nothing"
  else
    echo "note: man is not installed; $name was checked with groff only"
  fi
  # Plain text, lines wide enough that no option is broken across lines.
  groff -man -Tascii -rLL=250n -P-cbou "$page" 2>/dev/null >"$work/$name.txt"
done
txt1=$work/kvik.1.txt
txt3=$work/kvik.3.txt

# section FILE HEADING: the lines under the heading (a line equal to HEADING after leading blanks
# are removed, indented as a heading is: .SH by 0, .SS by 3) up to the next heading at the same
# or a higher level (less or equal indentation).
section() {
  awk -v h="$2" '
    function indent(s) { match(s, /^ */); return RLENGTH }
    on && $0 ~ /[^ ]/ && indent($0) <= level { exit }
    on { print }
    !on && indent($0) <= 3 { t = $0; sub(/^ +/, "", t); if (t == h) { on = 1; level = indent($0) } }
  ' "$1"
}
# has_word TEXT_FILE WORD: WORD appears, not as part of a longer option or name.
has_word() { grep -qE -- "(^|[^A-Za-z0-9_-])$2([^A-Za-z0-9_-]|\$)" "$1"; }
# options HELP_FILE: the option names on the help's option lines ("  -v, --verbose   ..."), from
# the part before the description (which starts after two blanks).
options() {
  grep -E '^  -' "$1" | sed -E 's/^  (([^ ]| [^ ])*).*/\1/' |
    grep -oE -- '(^|[ ,])--?[A-Za-z][A-Za-z0-9-]*' | tr -d ' ,' | sort -u
}

# check_help NAME ARGS...: the help `kvik ARGS` prints has a section in kvik(1) holding each option.
check_help() {
  label=$1
  shift
  "$kvik" "$@" >"$work/help" 2>&1 || { fail "kvik $* failed"; return; }
  # Variants this help points at: 'kvik cp URL --help', 'kvik bench --url URL --help'.
  grep -oE "'kvik [^']*--help'" "$work/help" | tr -d "'" | sed 's|URL|http://localhost/object|' \
    >>"$work/variants" || true
  usage=$(sed -n '1s/^usage: //p' "$work/help")
  [ -n "$usage" ] || { fail "kvik $* does not start with 'usage:'"; return; }
  section "$txt1" "$usage" >"$work/section"
  # The option items: lines at the indentation of a .TP tag that start with an option.
  grep -E '^       -' "$work/section" >"$work/items" || true
  if ! [ -s "$work/section" ]; then
    fail "kvik(1) has no section '$usage' (for kvik $*)"
    return
  fi
  n=0
  for opt in $(options "$work/help"); do
    n=$((n + 1))
    has_word "$work/items" "$opt" || fail "kvik(1) section '$usage' has no item for $opt (kvik $* lists it)"
  done
  echo "ok: kvik(1) '$usage': $n options ($label)"
}

# The main help: its options as items of OPTIONS, its commands as sections.
"$kvik" --help >"$work/main"
section "$txt1" OPTIONS | grep -E '^       -' >"$work/items" || true
for opt in $(options "$work/main"); do
  has_word "$work/items" "$opt" || fail "kvik(1) OPTIONS has no item for $opt (kvik --help lists it)"
done
commands=$(awk '/^commands:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }' "$work/main")
[ -n "$commands" ] || fail "no commands found in kvik --help"
: >"$work/variants"
for c in $commands; do
  check_help "command $c" "$c" --help
done
sort -u "$work/variants" >"$work/variants.u"
while read -r line; do
  # shellcheck disable=SC2086
  set -- ${line#kvik }
  check_help "variant" "$@"
done <"$work/variants.u"
[ -s "$work/variants.u" ] || echo "note: no command help points at a variant"

for h in "NAME" "SYNOPSIS" "DESCRIPTION" "OPTIONS" "COMMANDS" "EXIT STATUS" "ENVIRONMENT" "SEE ALSO"; do
  grep -q "^$h\$" "$txt1" || fail "kvik(1) has no $h section"
done

# ENVIRONMENT: every variable of the library's table, as `kvik info` prints it.
section "$txt1" "ENVIRONMENT" >"$work/env"
env -i PATH="$PATH" "$kvik" info >"$work/info" 2>&1 || { cat "$work/info"; fail "kvik info failed"; }
vars=$(awk '/^configuration:/ { on = 1; next } on && /^  KVIK/ { print $1 } on && /^$/ { exit }' "$work/info")
[ -n "$vars" ] || fail "kvik info lists no variables"
n=0
for v in $vars; do
  n=$((n + 1))
  has_word "$work/env" "$v" || fail "kvik(1) ENVIRONMENT lacks $v (kvik info lists it)"
done
echo "ok: kvik(1) ENVIRONMENT: $n variables"

# kvik(3): every function kvik.h declares.
header=$(find "$prefix" -name kvik.h | head -n 1)
funcs=$(grep -v '^#' "$header" | tr '\n' ' ' | grep -oE 'KVIK_API [^;(]*\(' | sed -E 's/.*[^A-Za-z0-9_]([A-Za-z0-9_]+) *\($/\1/' | sort -u)
n=0
for f in $funcs; do
  n=$((n + 1))
  has_word "$txt3" "$f" || fail "kvik(3) lacks $f (kvik.h declares it)"
done
[ "$n" -gt 20 ] || fail "only $n functions found in $header"
grep -q 'kvik\.h' "$txt3" || fail "kvik(3) does not point at kvik.h"
echo "ok: kvik(3): $n functions"

if [ "$failures" -ne 0 ]; then
  echo "FAILED: $failures check(s)"
  exit 1
fi
echo "PASS"
