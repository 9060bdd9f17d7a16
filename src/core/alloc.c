/* Allocation wrappers. Every heap allocation of the library goes through these so tests can
 * make the n-th allocation fail and check that each failure is handled cleanly. */
#include "core/core.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Allocations left before the injected failure; negative: no injection. */
static _Atomic long fail_countdown = -1;

void kvik__alloc_fail_after(long n) { atomic_store(&fail_countdown, n); }

static int should_fail(void) {
  long v = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
  while (v >= 0) {
    if (atomic_compare_exchange_weak(&fail_countdown, &v, v - 1))
      return v == 0;
  }
  return 0;
}

void *kvik__malloc(size_t size) { return should_fail() ? NULL : malloc(size ? size : 1); }

void *kvik__calloc(size_t n, size_t size) {
  return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1);
}

void *kvik__aligned_alloc(size_t alignment, size_t size) {
  if (should_fail())
    return NULL;
  void *p = NULL;
  if (posix_memalign(&p, alignment, size ? size : alignment) != 0)
    return NULL;
  return p;
}

char *kvik__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = kvik__malloc(n);
  if (d)
    memcpy(d, s, n);
  return d;
}

void kvik__free(void *p) { free(p); }

size_t kvik__page_size(void) {
  static _Atomic size_t cached;
  size_t v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (!v) {
    long p = sysconf(_SC_PAGESIZE);
    v = p > 0 ? (size_t)p : 4096;
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v;
}
