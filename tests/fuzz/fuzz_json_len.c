/* Fuzzes the WebHDFS length reader (kvik__json_u64 on a GETFILESTATUS answer, whose "length" is
 * the object size). The input is passed in a buffer of exactly its size (no NUL), so a read
 * past it is an ASan report. Oracles: a value found means the input holds "length" in quotes
 * and the value's digits; the value printed back in a minimal object is read back unchanged. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *j = malloc(size ? size : 1);
  if (!j)
    return 0;
  memcpy(j, data, size);
  uint64_t v = 12345;
  int rc = kvik__json_u64(j, size, "length", &v);
  CHECK(rc == 0 || rc == -1);
  if (rc == 0) {
    CHECK(memmem(j, size, "\"length\"", 8) != NULL);
    char d[24];
    int k = snprintf(d, sizeof d, "%" PRIu64, v);
    CHECK(memmem(j, size, d, (size_t)k) != NULL);
    char back[64];
    k = snprintf(back, sizeof back, "{\"length\" :\t%" PRIu64 "}", v);
    uint64_t v2 = 0;
    CHECK(kvik__json_u64(back, (size_t)k, "length", &v2) == 0 && v2 == v);
  }
  free(j);
  return 0;
}
