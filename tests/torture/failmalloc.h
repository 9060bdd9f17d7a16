/* failmalloc: an LD_PRELOAD shim that makes the Nth heap allocation of the whole process fail
 * (kvik, libcurl, OpenSSL, glibc's own helpers such as strdup and fopen, everything that calls
 * malloc, calloc, realloc, reallocarray, posix_memalign, aligned_alloc, memalign, valloc or
 * pvalloc), as curl's own torture tests do.
 *
 * Counting is off until the program calls failmalloc_start(), so what the loader, libc's start-up
 * and the driver's own setup allocate does not move the count: N means "the Nth allocation of the
 * workload". KVIK_TORTURE_FAIL_AT=N (read by failmalloc_start) makes allocation N fail, once,
 * with ENOMEM; unset or 0 only counts. failmalloc_stop() ends counting and says whether the
 * failure was injected: a workload that made fewer than N allocations passed with nothing
 * injected, which ends the runner's loop.
 *
 * A driver finds these with dlsym(RTLD_DEFAULT, ...) so it also runs without the shim. */
#ifndef KVIK_FAILMALLOC_H
#define KVIK_FAILMALLOC_H

/* Starts counting from 0 and reads KVIK_TORTURE_FAIL_AT. */
void failmalloc_start(void);
/* Stops counting. Returns the allocations counted since failmalloc_start(); *injected is set to
 * 1 if allocation N failed, else 0. */
long failmalloc_stop(int *injected);
/* Writes the call stack of the injected failure (raw addresses with their symbols, taken when it
 * happened) to fd; nothing if none was injected. Makes no allocation. */
void failmalloc_report(int fd);

#endif
