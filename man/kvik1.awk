# kvik(1) from the tool's help texts. Input: blocks, each a line "@main" or "@command" followed by
# the output of `kvik --help` or of one command's `kvik ... --help`. Writes the fragments that
# kvik.1.in includes into the directory `dir`: SYNOPSIS, DESCRIPTION, OPTIONS, COMMANDS and
# EXIT_STATUS.
#
# A help text is: "usage: ..." on its first line; paragraphs separated by blank lines; lists
# after a line "name:" ("options:", "commands:"), each item "  TERM  description" with the
# description continued on lines indented deeper. A paragraph of the main help that starts with
# "Exit status:" goes to EXIT STATUS; the main help's options to OPTIONS; the rest of it to
# DESCRIPTION; each command's help becomes a subsection of COMMANDS.

# A synopsis or option term: the first word and options in bold, the other words in italics.
function term(s, n, w, i, out, pre, post, core) {
  n = split(trim(s), w, / +/)
  out = ""
  for (i = 1; i <= n; i++) {
    pre = ""; post = ""; core = w[i]
    while (core ~ /^[[<]/) { pre = pre substr(core, 1, 1); core = substr(core, 2) }
    while (core ~ /[],>]$/) { post = substr(core, length(core)) post; core = substr(core, 1, length(core) - 1) }
    sub(/^</, "", pre); sub(/>/, "", post)
    if (core == "")
      out = out (i > 1 ? " " : "") esc(pre post)
    else
      out = out (i > 1 ? " " : "") esc(pre) (bold(core, i, w[1]) ? "\\fB" : "\\fI") \
            esc(core) "\\fR" esc(post)
  }
  return out
}

# Bold: the first word, options, and a command's name after "kvik"; the rest are arguments.
function bold(core, i, first) {
  return i == 1 || core ~ /^-/ || (i == 2 && first == "kvik" && core ~ /^[a-z]+$/)
}

function emit(s) { print s > (dir "/" section) }

function start_block(kind) {
  block = kind; lineno = 0; inlist = 0; newpara = 1; col = 0
}

/^@/ { start_block(substr($0, 2)); next }

{
  lineno++
  line = $0
  if (lineno == 1) {
    if (line !~ /^usage: /) {
      print "kvik1.awk: a help text does not start with 'usage:': " line > "/dev/stderr"
      exit 1
    }
    usage = substr(line, 8)
    section = "SYNOPSIS"
    emit((nsyn++ ? ".br\n" : "") term(usage))
    section = block == "main" ? "DESCRIPTION" : "COMMANDS"
    if (block != "main")
      emit(".SS " esc(usage))
    next
  }
  if (line ~ /^[ \t]*$/) { inlist = 0; newpara = 1; if (section == "EXIT_STATUS" || section == "OPTIONS") section = "DESCRIPTION"; next }
  if (!inlist && line ~ /^[a-z][a-z ]*:$/) {
    inlist = 1; col = 0
    if (block == "main" && line == "options:")
      section = "OPTIONS"
    next
  }
  if (inlist && line ~ /^  [^ ]/) {
    rest = substr(line, 3)
    if (match(rest, /   */)) {
      t = substr(rest, 1, RSTART - 1); d = substr(rest, RSTART + RLENGTH)
      if (!col) col = RSTART + RLENGTH + 2
    } else if (col && length(line) >= col && substr(line, col - 1, 1) == " ") {
      t = substr(line, 3, col - 4); d = substr(line, col)
    } else {
      t = rest; d = ""
    }
    emit(".TP\n" term(t))
    if (d != "") emit(esc(trim(d)))
    next
  }
  if (inlist && line ~ /^    /) { emit(esc(trim(line))); next }
  # Paragraph text.
  if (newpara && block == "main" && line ~ /^Exit status:/) {
    section = "EXIT_STATUS"
    sub(/^Exit status: */, "", line)
    line = toupper(substr(line, 1, 1)) substr(line, 2)
  }
  if (newpara) emit(".PP")
  newpara = 0
  emit(esc(trim(line)))
}
