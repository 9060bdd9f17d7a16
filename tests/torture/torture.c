/* The shared part of the allocation-torture drivers; see torture.h. */
#include "torture.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void write_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w <= 0)
      return;
    s += w;
    n -= (size_t)w;
  }
}

static void vsay(const char *prefix, const char *fmt, va_list ap) {
  char line[1024];
  int n = snprintf(line, sizeof line, "%s", prefix);
  n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  if (n > (int)sizeof line - 2)
    n = (int)sizeof line - 2;
  line[n++] = '\n';
  write_all(1, line, (size_t)n);
}

void tt_say(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsay("", fmt, ap);
  va_end(ap);
}

void tt_bad(struct tt *t, const char *fmt, ...) {
  char prefix[32];
  snprintf(prefix, sizeof prefix, "BAD (phase %d): ", t->phase);
  va_list ap;
  va_start(ap, fmt);
  vsay(prefix, fmt, ap);
  va_end(ap);
  t->bad++;
}

bool tt_ok(struct tt *t, const char *what, long long rc, long long want) {
  t->calls++;
  if (rc >= 0) {
    if (want >= 0 && rc != want) {
      tt_bad(t, "%s returned %lld, not %lld (and no error)", what, rc, want);
      return false;
    }
    return true;
  }
  t->errors++;
  const char *msg = kvik_last_error();
  const char *name = kvik_strerror_name((int)rc);
  if (!msg || !msg[0])
    tt_bad(t, "%s failed with %lld (%s) and an empty kvik_last_error()", what, rc, name);
  else if (strcmp(name, "UNKNOWN") == 0)
    tt_bad(t, "%s failed with an unknown code %lld: %s", what, rc, msg);
  else if (t->phase == 2)
    tt_bad(t, "%s failed with nothing injected: %s: %s", what, name, msg);
  else if (!t->first_error[0])
    snprintf(t->first_error, sizeof t->first_error, "%s: %s: %s", what, name, msg);
  return false;
}

void tt_fill(void *buf, size_t n, uint64_t off, uint64_t seed) {
  uint8_t *b = buf;
  for (size_t i = 0; i < n; i++)
    b[i] = tt_byte(off + i, seed);
}

void tt_verify(struct tt *t, const char *what, const void *buf, size_t n, uint64_t off,
               uint64_t seed) {
  const uint8_t *b = buf;
  for (size_t i = 0; i < n; i++)
    if (b[i] != tt_byte(off + i, seed)) {
      tt_bad(t, "%s: wrong byte at buffer index %zu (file offset %llu) of %zu: 0x%02x, not 0x%02x",
             what, i, (unsigned long long)(off + i), n, b[i], tt_byte(off + i, seed));
      return;
    }
}

int tt_main(const char *name, void (*work)(struct tt *t, void *arg), void *arg) {
  void (*start)(void) = NULL;
  long (*stop)(int *) = NULL;
  void (*report)(int) = NULL;
  *(void **)&start = dlsym(RTLD_DEFAULT, "failmalloc_start");
  *(void **)&stop = dlsym(RTLD_DEFAULT, "failmalloc_stop");
  *(void **)&report = dlsym(RTLD_DEFAULT, "failmalloc_report");
  const char *at = getenv("KVIK_TORTURE_FAIL_AT");
  if (!start || !stop || !report)
    tt_say("torture %s: no failmalloc shim loaded (LD_PRELOAD): nothing is injected", name);

  struct tt t1 = {.phase = 1}, t2 = {.phase = 2};
  if (start)
    start();
  work(&t1, arg);
  int injected = 0;
  long count = stop ? stop(&injected) : 0;
  work(&t2, arg);

  if (t1.first_error[0])
    tt_say("torture %s: first error: %s", name, t1.first_error);
  if ((t1.bad || t2.bad || getenv("KVIK_TORTURE_SHOW")) && injected && report) {
    tt_say("torture %s: the injected failure happened here:", name);
    report(1);
  }
  tt_say("torture %s: fail_at=%s allocations=%ld injected=%s calls=%ld errors=%ld bad=%ld", name,
         at && *at ? at : "0", count, injected ? "yes" : "no", t1.calls, t1.errors,
         t1.bad + t2.bad);
  return t1.bad || t2.bad ? 1 : 0;
}
