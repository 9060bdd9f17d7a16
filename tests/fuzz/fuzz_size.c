/* Fuzzes the size parser behind every size setting (KVIKIO_TASK_SIZE=4M and the like).
 * Oracle: a value it accepts is a plain decimal number times the suffix's power of 1024, and
 * printing that number back parses to the same value. */
#include "core/core.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  uint64_t v;
  if (kvik__parse_size(s, &v) == 0) {
    char back[32];
    snprintf(back, sizeof back, "%" PRIu64, v);
    uint64_t again;
    if (kvik__parse_size(back, &again) != 0 || again != v)
      __builtin_trap();
  }
  free(s);
  return 0;
}
