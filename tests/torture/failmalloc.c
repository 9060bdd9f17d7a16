/* failmalloc: fails the Nth heap allocation of the process (see failmalloc.h). Loaded with
 * LD_PRELOAD, so its definitions come before libc's for every library in the process; each one
 * counts, may fail, and otherwise hands the request to glibc's own allocator through the
 * __libc_* entry points that glibc exports for exactly this (no dlsym(RTLD_NEXT), which itself
 * allocates). free() is not replaced: every block still comes from glibc's allocator.
 *
 * strdup, strndup, fopen, getaddrinfo and the like need no entry here: glibc calls malloc
 * through the symbol table, so they reach the definitions below. Anonymous mmap is not counted:
 * glibc's allocator uses it for large blocks behind malloc (counted there) and pthread_create
 * for stacks (which fails with EAGAIN, a different failure from running out of heap). */
#include "failmalloc.h"

#include <errno.h>
#include <execinfo.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* glibc's allocator, under the names it exports for replacements like this one. */
void *__libc_malloc(size_t size);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t alignment, size_t size);

static _Atomic int armed;    /* 1 between failmalloc_start and failmalloc_stop */
static _Atomic long counted; /* allocations since failmalloc_start */
static long fail_at;         /* KVIK_TORTURE_FAIL_AT; 0: none. Written before arming. */
static _Atomic int injected; /* 1 once allocation fail_at failed */
static int want_trace;       /* record the stack of the injected failure */
static void *trace[48];      /* that stack, written by the one thread that failed */
static _Atomic int trace_len;

/* Counts one allocation; true if it is the one to fail. */
static int should_fail(void) {
  if (!atomic_load_explicit(&armed, memory_order_relaxed))
    return 0;
  long n = atomic_fetch_add(&counted, 1) + 1;
  if (fail_at <= 0 || n != fail_at)
    return 0;
  if (want_trace)
    atomic_store(&trace_len, backtrace(trace, (int)(sizeof trace / sizeof trace[0])));
  atomic_store(&injected, 1);
  return 1;
}

EXPORT void failmalloc_start(void) {
  const char *e = getenv("KVIK_TORTURE_FAIL_AT");
  fail_at = e ? strtol(e, NULL, 10) : 0;
  const char *t = getenv("KVIK_TORTURE_BACKTRACE");
  want_trace = !(t && strcmp(t, "0") == 0);
  /* backtrace() loads libgcc_s on its first call (which allocates): do that now, uncounted. */
  if (want_trace) {
    void *warm[2];
    backtrace(warm, 2);
  }
  atomic_store(&counted, 0);
  atomic_store(&injected, 0);
  atomic_store(&trace_len, 0);
  atomic_store(&armed, 1);
}

EXPORT long failmalloc_stop(int *was_injected) {
  atomic_store(&armed, 0);
  if (was_injected)
    *was_injected = atomic_load(&injected);
  return atomic_load(&counted);
}

EXPORT void failmalloc_report(int fd) {
  int n = atomic_load(&trace_len);
  if (n > 0)
    backtrace_symbols_fd(trace, n, fd);
}

EXPORT void *malloc(size_t size) {
  if (should_fail()) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_malloc(size);
}

EXPORT void *calloc(size_t n, size_t size) {
  if (should_fail()) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_calloc(n, size);
}

EXPORT void *realloc(void *p, size_t size) {
  /* realloc(p, 0) frees p: not an allocation, so neither counted nor failed. */
  if ((size > 0 || !p) && should_fail()) {
    errno = ENOMEM;
    return NULL; /* p stays valid, as after a real failure */
  }
  return __libc_realloc(p, size);
}

EXPORT void *reallocarray(void *p, size_t n, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(p, bytes);
}

static void *aligned(size_t alignment, size_t size) {
  if (should_fail()) {
    errno = ENOMEM;
    return NULL;
  }
  return __libc_memalign(alignment, size);
}

EXPORT int posix_memalign(void **out, size_t alignment, size_t size) {
  if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0 || alignment == 0)
    return EINVAL;
  int saved = errno; /* posix_memalign reports through its result, and leaves errno alone */
  void *p = aligned(alignment, size);
  if (!p) {
    errno = saved;
    return ENOMEM;
  }
  *out = p;
  errno = saved;
  return 0;
}

EXPORT void *aligned_alloc(size_t alignment, size_t size) { return aligned(alignment, size); }

EXPORT void *memalign(size_t alignment, size_t size) { return aligned(alignment, size); }

EXPORT void *valloc(size_t size) { return aligned((size_t)sysconf(_SC_PAGESIZE), size); }

EXPORT void *pvalloc(size_t size) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  return aligned(page, (size + page - 1) / page * page);
}
