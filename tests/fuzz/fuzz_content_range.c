/* Fuzzes the Content-Range parser (kvik__parse_content_range), which decides whether a byte of
 * a 206 answer may reach the caller's buffer. The input is passed in a buffer of exactly its
 * size (no terminating NUL), so any read past it is an ASan report. Oracles: the mask is -1, 1,
 * 2 or 3; FIRST <= LAST, and LAST < TOTAL when both are given; every number parsed appears
 * in the input in decimal; the canonical form of what was parsed parses to the same. */
#include "remote/remote.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

static bool has_number(const char *v, size_t n, uint64_t x) {
  char d[24];
  int k = snprintf(d, sizeof d, "%" PRIu64, x);
  return memmem(v, n, d, (size_t)k) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *v = malloc(size ? size : 1);
  if (!v)
    return 0;
  memcpy(v, data, size);
  uint64_t f = 7, l = 7, t = 7;
  int m = kvik__parse_content_range(v, size, &f, &l, &t);
  CHECK(m == -1 || m == 1 || m == 2 || m == 3);
  if (m > 0) {
    if (m & 1)
      CHECK(f <= l && has_number(v, size, f) && has_number(v, size, l));
    if (m & 2)
      CHECK(has_number(v, size, t));
    if (m == 3)
      CHECK(l < t);
    char canon[80];
    int k;
    if (m == 3)
      k = snprintf(canon, sizeof canon, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, f, l, t);
    else if (m == 1)
      k = snprintf(canon, sizeof canon, "bytes %" PRIu64 "-%" PRIu64 "/*", f, l);
    else
      k = snprintf(canon, sizeof canon, "bytes */%" PRIu64, t);
    uint64_t f2 = 0, l2 = 0, t2 = 0;
    CHECK(kvik__parse_content_range(canon, (size_t)k, &f2, &l2, &t2) == m);
    CHECK(!(m & 1) || (f2 == f && l2 == l));
    CHECK(!(m & 2) || t2 == t);
  }
  free(v);
  return 0;
}
