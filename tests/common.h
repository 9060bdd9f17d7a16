/* Shared helpers for kvik's tests: temporary directories, a deterministic data pattern that
 * depends on the file offset, byte comparisons that print both sides, and checks of what is
 * on disk through plain system calls (never through kvik).
 *
 * Every test file includes this header first; it pulls in cmocka in the order cmocka needs. */
#ifndef KVIK_TEST_COMMON_H
#define KVIK_TEST_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "kvik.h"

#define KiB ((size_t)1024)
#define MiB ((size_t)1024 * 1024)

/* ---- temporary directories --------------------------------------------------------------- */

/* Creates a fresh directory "kvik-test-XXXXXX" under base (NULL: $TMPDIR, else /tmp). Returns a
 * malloc'd path, or NULL (with a printed reason). */
char *t_mkdtemp(const char *base);
/* Removes dir and everything below it, then frees the string. NULL is fine. */
void t_rmtree(char *dir);
/* Returns a malloc'd "dir/name". */
char *t_join(const char *dir, const char *name);

/* ---- deterministic data ---------------------------------------------------------------- */

/* The byte that belongs at file offset off for seed. Neighbouring bytes and bytes 256 (or any
 * power of two) apart differ, so data that lands at the wrong offset is detected. */
uint8_t t_pat_byte(uint64_t off, uint64_t seed);
/* Fills buf[0..n) with the bytes that belong at file offsets off..off+n. */
void t_pat_fill(void *buf, size_t n, uint64_t off, uint64_t seed);
/* Index of the first byte of buf[0..n) that differs from the pattern, or -1 if none. */
long long t_pat_find_mismatch(const void *buf, size_t n, uint64_t off, uint64_t seed);
/* Index of the first byte of buf[0..n) that differs from value, or -1 if none. */
long long t_find_not(const void *buf, size_t n, uint8_t value);

/* Fails the current test (printing offsets and both sides around the first difference) unless
 * buf holds the pattern for file offsets off..off+n. what names the check in the message. */
#define ASSERT_PATTERN(buf, n, off, seed, what)                                                  \
  t_assert_pattern((buf), (n), (off), (seed), (what), __FILE__, __LINE__)
/* Fails the current test unless buf[0..n) are all value. */
#define ASSERT_FILLED(buf, n, value, what)                                                       \
  t_assert_filled((buf), (n), (value), (what), __FILE__, __LINE__)
void t_assert_pattern(const void *buf, size_t n, uint64_t off, uint64_t seed, const char *what,
                      const char *file, int line);
void t_assert_filled(const void *buf, size_t n, uint8_t value, const char *what,
                     const char *file, int line);

/* What the test is doing right now ("sync size=4097 off=1 ..."); printed with every failure
 * that the helpers below report, so a failing grid case names itself. Empty: nothing printed. */
extern char t_context[512];
#define T_CONTEXT(...) snprintf(t_context, sizeof t_context, __VA_ARGS__)

/* Fails the current test unless expr (a kvik return value) equals want; prints both as numbers
 * and names, and this thread's kvik_last_error(). */
#define ASSERT_CODE(expr, want)                                                                  \
  do {                                                                                           \
    long long t_got_ = (long long)(expr);                                                        \
    long long t_want_ = (long long)(want);                                                       \
    if (t_got_ != t_want_)                                                                       \
      t_fail_code(#expr, t_got_, t_want_, __FILE__, __LINE__);                                   \
  } while (0)
void t_fail_code(const char *expr, long long got, long long want, const char *file, int line);

/* Fails the current test unless haystack contains needle (both printed). */
#define ASSERT_CONTAINS(haystack, needle)                                                        \
  t_assert_contains((haystack), (needle), #haystack, __FILE__, __LINE__)
void t_assert_contains(const char *haystack, const char *needle, const char *what,
                       const char *file, int line);

/* Prints why, then marks the current test skipped (cmocka's skip() returns from the test). */
#define SKIP_BECAUSE(...)                                                                        \
  do {                                                                                           \
    printf("SKIP %s: ", __func__);                                                               \
    printf(__VA_ARGS__);                                                                         \
    printf("\n");                                                                                \
    fflush(stdout);                                                                              \
    skip();                                                                                      \
  } while (0)

/* ---- files, through plain system calls --------------------------------------------------- */

/* Creates path with n bytes of pattern (file offsets 0..n, seed). Fails the test on error. */
void t_write_pattern_file(const char *path, size_t n, uint64_t seed);
/* Size of path per stat(2), or -errno. */
long long t_file_size(const char *path);
/* Reads n bytes at off of path with plain pread into buf; returns the count or -errno. */
long long t_read_file(const char *path, void *buf, size_t n, uint64_t off);
/* Fails unless path holds exactly n bytes of pattern(seed) from offset 0. */
void t_assert_file_pattern(const char *path, size_t n, uint64_t seed, const char *file, int line);
#define ASSERT_FILE_PATTERN(path, n, seed) t_assert_file_pattern((path), (n), (seed), __FILE__, __LINE__)

/* Page-aligned allocation (freed with free()); fails the test on error. */
void *t_alloc_aligned(size_t n);

/* ---- environment and configuration ------------------------------------------------------- */

/* Unsets every KVIKIO_* variable, so tests start from the documented defaults whatever the
 * caller's environment holds. Does not reload the configuration. */
void t_clear_kvikio_env(void);
/* t_clear_kvikio_env() then kvik_config_reload(); fails the test if that fails. */
void t_reset_config(void);

/* ---- where direct I/O works -------------------------------------------------------------- */

/* A directory on a filesystem where kvik_path_info() says O_DIRECT works ($TMPDIR, /var/tmp,
 * /tmp, then the current directory), written to *fs (>= 32 bytes). NULL if none; the choice
 * or its absence is printed once. The returned string is static. */
const char *t_direct_io_base(char *fs);

/* This executable's path, for re-running it in a child process. Not "/proc/self/exe" itself:
 * under valgrind (scripts/valgrind.sh) that is valgrind's launcher, which refuses to run, while
 * readlink gives the test's own path there too. Static storage. */
const char *t_self_exe(void);

/* Test-selection: `prog [pattern]` runs the tests whose name matches pattern (cmocka's '*'
 * and '?'). Call first in main(). */
void t_select(int argc, char **argv);

#endif
