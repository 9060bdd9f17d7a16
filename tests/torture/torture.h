/* The shared part of the allocation-torture drivers (torture_file.c, torture_remote.c), which use
 * only include/kvik.h. A driver's workload runs twice in one process:
 *
 *   phase 1  counted by the failmalloc shim (failmalloc.h), whose KVIK_TORTURE_FAIL_AT-th
 *            allocation fails. Every kvik call must return 0 or its count, or a negative code
 *            with a non-empty kvik_last_error(); every byte a call says it read must be right.
 *   phase 2  the same workload with nothing failing: every call must succeed with the right
 *            bytes, which shows the library works again after the failure.
 *
 * Nothing in a workload may allocate except through the calls under test (a failure injected
 * into the driver itself would only test the driver): messages are formatted on the stack and
 * written with write(2), buffers are made before phase 1.
 *
 * Output: one line per problem ("BAD ..."), then a summary that tests/torture/run.sh parses:
 *   torture NAME: fail_at=N allocations=C injected=yes|no calls=K errors=E bad=B
 * Exit status 0 when nothing was bad, 1 otherwise. The stack of the injected failure is printed
 * when something was bad, or always with KVIK_TORTURE_SHOW=1. */
#ifndef KVIK_TORTURE_H
#define KVIK_TORTURE_H

#include "kvik.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tt {
  int phase;             /* 1: failure injected somewhere; 2: nothing fails */
  long calls;            /* kvik calls checked in this phase */
  long errors;           /* of which returned a (clean) error */
  long bad;              /* broken promises: unclean errors, wrong counts, wrong bytes */
  char first_error[300]; /* phase 1's first clean error, for the log */
};

/* Prints (stdout, no allocation) a formatted line. */
void tt_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Checks a kvik return value rc of the call named what: returns true if it succeeded (rc >= 0;
 * then want, when >= 0, must equal rc), false if it failed. A failure must carry a non-empty
 * kvik_last_error() and a known code, and is itself bad in phase 2. */
bool tt_ok(struct tt *t, const char *what, long long rc, long long want);

/* Notes a broken promise (formatted); counted in t->bad. */
void tt_bad(struct tt *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The byte at offset off of the test data for seed. Neighbouring bytes and bytes 256 apart
 * differ, so bytes at the wrong offset do not pass. */
static inline uint8_t tt_byte(uint64_t off, uint64_t seed) {
  uint64_t x = (off + 1) * 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);
  x ^= x >> 29;
  return (uint8_t)(x ^ (x >> 8) ^ off);
}
void tt_fill(void *buf, size_t n, uint64_t off, uint64_t seed);
/* Checks buf[0..n) against the data at offsets off.. for seed; a mismatch is bad (named). */
void tt_verify(struct tt *t, const char *what, const void *buf, size_t n, uint64_t off,
               uint64_t seed);

/* Runs setup-free workload work() in both phases around the shim (found with dlsym; without
 * it, phase 1 injects nothing and says so), prints the summary, returns the exit status. */
int tt_main(const char *name, void (*work)(struct tt *t, void *arg), void *arg);

#endif
