#!/bin/sh
# Builds kvik's man pages; man/CMakeLists.txt runs it at build time, so they cannot drift from
# what they describe.
#
#   gen-man.sh 1 KVIK README VERSION OUT
#     kvik(1): man/kvik.1.in around the tool's own help texts (`kvik --help`, `kvik CMD --help`
#     for each command it lists, and each variant a command's help points at, such as
#     'kvik cp URL --help') and the README's table of environment variables.
#   gen-man.sh 3 KVIK_H VERSION INCLUDEDIR OUT
#     kvik(3): man/kvik.3.in around include/kvik.h's opening comment, error table, and each
#     section's functions with their comments.
#
# Needs only sh and a POSIX awk.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
section=$1
shift
work=$(mktemp -d "${TMPDIR:-/tmp}/kvik-man-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/frag"

# fill TEMPLATE VERSION EXTRA_NAME EXTRA_VALUE: the template with each line "@NAME@" replaced by
# the fragment NAME and "@VERSION@" (and "@EXTRA_NAME@") replaced within lines.
fill() {
  # The values through the environment: awk -v would read backslashes as escapes.
  KVIK_MAN_VERSION=$2 KVIK_MAN_XNAME="@$3@" KVIK_MAN_XVALUE=$4 awk -v dir="$work/frag" '
    /^@[A-Z_]+@$/ {
      f = dir "/" substr($0, 2, length($0) - 2)
      n = 0
      while ((getline l < f) > 0) { print l; n++ }
      close(f)
      if (!n) { print "gen-man.sh: nothing for " $0 > "/dev/stderr"; exit 1 }
      next
    }
    BEGIN { version = ENVIRON["KVIK_MAN_VERSION"]; xname = ENVIRON["KVIK_MAN_XNAME"]; xvalue = ENVIRON["KVIK_MAN_XVALUE"] }
    {
      while (i = index($0, "@VERSION@")) $0 = substr($0, 1, i - 1) version substr($0, i + 9)
      while (xname != "@@" && (i = index($0, xname))) $0 = substr($0, 1, i - 1) xvalue substr($0, i + length(xname))
      print
    }
  ' "$1"
}

case $section in
1)
  kvik=$1 readme=$2 version=$3 out=$4
  # A ThreadSanitizer build may need address-space randomization off to start (scripts/test.sh).
  run=""
  if ! "$kvik" --help >/dev/null 2>&1 && command -v setarch >/dev/null 2>&1; then
    run="setarch $(uname -m) -R"
  fi
  # help ARGS...: the help text of `kvik ARGS`, as a block for kvik1.awk.
  help() {
    $run "$kvik" "$@" >"$work/one" || {
      echo "gen-man.sh: kvik $* failed" >&2
      exit 1
    }
    cat "$work/one"
  }
  {
    echo "@main"
    help --help
  } >"$work/help"
  commands=$(awk '/^commands:/ { on = 1; next } on && /^$/ { exit } on && /^  [a-z]/ { print $1 }' "$work/help")
  [ -n "$commands" ] || { echo "gen-man.sh: no commands in kvik --help" >&2; exit 1; }
  for c in $commands; do
    echo "@command" >>"$work/help"
    help "$c" --help >>"$work/help"
    # Variants the help points at ('kvik cp URL --help'), with a URL the tool takes for one.
    grep -oE "'kvik $c [^']*--help'" "$work/one" | tr -d "'" | sed 's|URL|http://localhost/object|' \
      >"$work/variants" || true
    while read -r line; do
      echo "@command" >>"$work/help"
      # shellcheck disable=SC2086
      help ${line#kvik } >>"$work/help"
    done <"$work/variants"
  done
  awk -v dir="$work/frag" -f "$here/roff.awk" -f "$here/kvik1.awk" "$work/help"
  awk -v dir="$work/frag" -f "$here/roff.awk" -f "$here/env.awk" "$readme"
  fill "$here/kvik.1.in" "$version" "" "" >"$out.tmp"
  ;;
3)
  header=$1 version=$2 includedir=$3 out=$4
  awk -v dir="$work/frag" -f "$here/roff.awk" -f "$here/kvik3.awk" "$header"
  fill "$here/kvik.3.in" "$version" INCLUDEDIR "$(printf '%s' "$includedir" | sed 's/-/\\-/g')" >"$out.tmp"
  ;;
*)
  echo "usage: gen-man.sh 1 KVIK README VERSION OUT | gen-man.sh 3 KVIK_H VERSION INCLUDEDIR OUT" >&2
  exit 2
  ;;
esac
mv "$out.tmp" "$out"
