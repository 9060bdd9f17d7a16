# Helpers shared by kvik1.awk and kvik3.awk (POSIX awk: no gawk extensions, no {m,n}).

# Text as roff source: backslashes and hyphens escaped (\- keeps options copyable), and a line
# that would start with a control character made plain text.
function esc(s) {
  gsub(/\\/, "\\e", s)
  gsub(/-/, "\\-", s)
  if (s ~ /^[.']/)
    s = "\\&" s
  return s
}

function trim(s) {
  sub(/^[ \t]+/, "", s)
  sub(/[ \t]+$/, "", s)
  return s
}

# Markdown inline text as roff: `code` in bold, [text](link) as text, ** dropped.
function md(s, out) {
  s = esc(trim(s))
  gsub(/\\\|/, "|", s)
  gsub(/\*\*/, "", s)
  while (match(s, /\[[^]]*\]\([^)]*\)/)) {
    out = substr(s, RSTART + 1)
    sub(/\]\(.*/, "", out)
    s = substr(s, 1, RSTART - 1) out substr(s, RSTART + RLENGTH)
  }
  while (match(s, /`[^`]*`/))
    s = substr(s, 1, RSTART - 1) "\\fB" substr(s, RSTART + 1, RLENGTH - 2) "\\fR" \
        substr(s, RSTART + RLENGTH)
  return s
}
