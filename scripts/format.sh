#!/usr/bin/env bash
# Formats kvik's C sources with clang-format and the checked-in .clang-format.
# Usage: scripts/format.sh          rewrite the files in place
#        scripts/format.sh --check  list the files that are not formatted; exit 1 if any
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mapfile -t files < <(find include src tools tests bench python -name '*.[ch]' 2>/dev/null | sort)
if [[ ${1:-} == --check ]]; then
  bad=0
  for f in "${files[@]}"; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
      echo "not formatted: $f"
      bad=1
    fi
  done
  exit $bad
fi
clang-format -i "${files[@]}"
