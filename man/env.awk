# kvik(1)'s ENVIRONMENT from the README's configuration table: the rows of the table under
# "## Configuration" whose first cell names a variable (| `VAR` | kvik default | kvikio's default
# where it differs | what it sets |). Writes the fragment ENVIRONMENT into the directory `dir`.
/^## / { inconf = ($0 == "## Configuration") }
inconf && /^\| *`KVIK/ {
  s = $0
  gsub(/\\\|/, "\001", s)
  n = split(s, c, /\|/)
  if (n < 6) {
    print "env.awk: a README row with fewer than 4 cells: " $0 > "/dev/stderr"
    exit 1
  }
  for (i = 2; i <= 5; i++) gsub(/\001/, "\\|", c[i])
  what = md(c[5])
  if (what !~ /\.$/) what = what "."
  text = what " Default: " md(c[3]) "."
  kvikio = trim(c[4])
  if (kvikio ~ /^\(.*\)$/) text = text " " md(kvikio)
  else if (kvikio != "") text = text " kvikio: " md(kvikio) "."
  print ".TP\n" md(c[2]) "\n" text > (dir "/ENVIRONMENT")
  nvar++
}
END {
  if (!nvar) {
    print "env.awk: no variables in the README's \"## Configuration\" table" > "/dev/stderr"
    exit 1
  }
}
