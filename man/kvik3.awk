# kvik(3) from include/kvik.h. Writes the fragments that kvik.3.in includes into the directory
# `dir`: NAME (from the header's first line), DESCRIPTION (the rest of its opening comment: the
# conventions every function follows), ERRORS (the KVIK_ERRORS table) and FUNCTIONS (each
# banner comment's section with its functions: the declaration and its /** */ comment).

function emit(name, s) { print s > (dir "/" name) }

# A comment line without its comment markers.
function uncomment(s) {
  sub(/^\/\*\*? ?/, "", s)
  sub(/^ \*\/$/, "", s)
  sub(/ *\*\/$/, "", s)
  sub(/^ \* ?/, "", s)
  return s
}

# ---- the opening comment --------------------------------------------------------------------
NR == 1 {
  if ($0 !~ /^\/\* kvik: /) {
    print "kvik3.awk: kvik.h does not start with '/* kvik: ...'" > "/dev/stderr"
    exit 1
  }
  s = uncomment($0)
  sub(/^kvik: /, "", s)
  sub(/\.$/, "", s)
  emit("NAME", "kvik \\- " esc(s))
  intro = 1; newpara = 1
  next
}
intro && /^ \*\/$/ { intro = 0; next }
intro {
  s = uncomment($0)
  if (s ~ /^ *$/) { newpara = 1; next }
  if (s ~ /^ *- /) {
    sub(/^ *- /, "", s)
    emit("DESCRIPTION", ".IP \\(bu 2")
  } else if (newpara) {
    emit("DESCRIPTION", ".PP")
  }
  newpara = 0
  emit("DESCRIPTION", md(s))
  next
}

# ---- the error table --------------------------------------------------------------------------
/^ *X\(KVIK_E[A-Z]*, *-[0-9]+, *"/ {
  s = $0
  sub(/^ *X\(/, "", s)
  name = s; sub(/,.*/, "", name)
  code = s; sub(/^[^,]*, */, "", code); sub(/,.*/, "", code)
  text = s; sub(/^[^"]*"/, "", text); sub(/".*/, "", text)
  emit("ERRORS", ".TP\n\\fB" esc(name) "\\fR (" esc(code) ")\n" esc(text))
  next
}

# ---- banners: /* ---- / * Title. Text / * ---- */ ----------------------------------------------
/^\/\* ----------+$/ { banner = 1; btext = ""; doc = ""; next }
banner && /^ \* ----------+ \*\/$/ {
  banner = 0
  if (match(btext, /[.:]( |$)/)) {
    title = substr(btext, 1, RSTART - 1)
    rest = substr(btext, RSTART + RLENGTH)
  } else {
    title = btext; rest = ""
  }
  emit("FUNCTIONS", ".SS " esc(title))
  if (rest != "")
    emit("FUNCTIONS", md(toupper(substr(rest, 1, 1)) substr(rest, 2)))
  next
}
banner { btext = btext (btext == "" ? "" : " ") trim(uncomment($0)); next }

# ---- /** doc */ comments and the declarations they describe -----------------------------------
/^\/\*\*/ { doc = ""; indoc = 1 }
indoc {
  s = trim(uncomment($0))
  if (s != "") doc = doc (doc == "" ? "" : "\n") md(s)
  if ($0 ~ /\*\/ *$/) indoc = 0
  next
}
/^KVIK_API / { decl = ""; indecl = 1 }
indecl {
  decl = decl " " $0
  if ($0 !~ /;/) next
  indecl = 0
  sub(/;.*/, ";", decl)
  gsub(/[ \t]+/, " ", decl)
  sub(/^ KVIK_API /, "", decl)
  gsub(/\( /, "(", decl)
  emit("FUNCTIONS", ".PP\n\\fB" esc(decl) "\\fR")
  if (doc != "")
    emit("FUNCTIONS", ".RS 4\n" doc "\n.RE")
  nfunc++
  doc = ""
  next
}
/[^ \t]/ { doc = "" }

END {
  if (!nfunc && !intro) {
    print "kvik3.awk: no KVIK_API declaration found" > "/dev/stderr"
    exit 1
  }
}
