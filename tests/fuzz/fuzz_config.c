/* Fuzzes the configuration parser: the input is taken as the value of every setting in turn,
 * through the same parser the environment goes through (kvik__config_parse), without touching
 * the environment. Oracles:
 *  - accepted: a numeric value lies within the setting's bounds (kvik_config_bounds); the
 *    setter given the same text (kvik_config_set_str) accepts it and stores the same value;
 *    the text the getter prints back (kvik_config_get_str) parses to that value again;
 *  - rejected: KVIK_ECONFIG, and the message names the variable; the setter refuses the text
 *    too (KVIK_EINVAL), leaving the setting as it was. */
#include "core/core.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const char *name, const char *text) {
  fprintf(stderr, "fuzz_config: %s: %s=\"%s\"; last error: %s\n", what, name, text,
          kvik_last_error());
  __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096)
    return 0; /* longer values only repeat what shorter ones find, more slowly */
  char *text = malloc(size + 1);
  if (!text)
    return 0;
  memcpy(text, data, size);
  text[size] = '\0'; /* an embedded NUL ends the value, as in the environment */
  for (int k = 0; k < KVIK_CFG_COUNT; k++) {
    enum kvik_cfg key = (enum kvik_cfg)k;
    const char *name = kvik_config_name(key);
    int type = kvik_config_type(key);
    uint64_t before = 0, v = 0, lo = 0, hi = 0;
    if (type != KVIK_CFG_TYPE_STRING && kvik_config_get_u64(key, &before) != 0)
      fail("kvik_config_get_u64 failed", name, text);
    int rc = kvik__config_parse(key, text, &v);
    if (rc != 0) {
      if (rc != KVIK_ECONFIG)
        fail("rejected with a code other than KVIK_ECONFIG", name, text);
      if (!strstr(kvik_last_error(), name))
        fail("the message does not name the variable", name, text);
      if (kvik_config_set_str(key, text) != KVIK_EINVAL)
        fail("the parser rejects it, the setter does not", name, text);
      uint64_t after = 0;
      if (type != KVIK_CFG_TYPE_STRING &&
          (kvik_config_get_u64(key, &after) != 0 || after != before))
        fail("a refused set changed the setting", name, text);
      continue;
    }
    if (type != KVIK_CFG_TYPE_STRING) {
      if (kvik_config_bounds(key, &lo, &hi) != 0)
        fail("kvik_config_bounds failed", name, text);
      if (v < lo || v > hi)
        fail("accepted a value out of bounds", name, text);
    }
    if (kvik_config_set_str(key, text) != 0)
      fail("the parser accepts it, the setter does not", name, text);
    if (type != KVIK_CFG_TYPE_STRING) {
      uint64_t got = 0;
      if (kvik_config_get_u64(key, &got) != 0 || got != v)
        fail("the setter stored another value than the parser read", name, text);
    }
    /* What the getter prints parses back to the same value. */
    char back[1100];
    int n = kvik_config_get_str(key, back, sizeof back);
    if (n < 0 || (size_t)n >= sizeof back)
      fail("kvik_config_get_str failed or truncated", name, text);
    uint64_t again = 0;
    if (kvik__config_parse(key, back, &again) != 0 || again != v)
      fail("the printed value does not parse back to the same value", name, text);
  }
  /* The next input starts from the defaults (and no setter's value leaks into the next). */
  kvik_config_reload();
  free(text);
  return 0;
}
