/* Page-cache tools: kvik_page_cache_info (through cachestat, and through the mmap + mincore
 * fallback when cachestat is refused through the system-call table) against the test's own
 * mincore count, on a file half in the page cache; tmpfs, where every page counts as cached;
 * errors (missing file, directory, a FIFO that must not block, bad ranges, a failing mmap);
 * kvik_drop_system_cache refused without root, with a message that says so. */
#include "common.h"

#include "core/core.h"
#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *g_dir;   /* on a filesystem with a disk behind it, where DONTNEED drops pages */
static char *g_tmpfs; /* on tmpfs (/dev/shm), or NULL */
static size_t g_page;

/* ---- the test's own count, through plain mincore ------------------------------------------ */

/* Residency of every page of path (one byte per page, 1 = cached). Fails the test on error. */
static unsigned char *mincore_vec(const char *path, size_t *npages) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    fail_msg("open %s: %s", path, strerror(errno));
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  size_t n = ((size_t)st.st_size + g_page - 1) / g_page;
  unsigned char *vec = calloc(n ? n : 1, 1);
  assert_non_null(vec);
  if (n) {
    void *a = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(a != MAP_FAILED);
    assert_int_equal(mincore(a, (size_t)st.st_size, vec), 0);
    munmap(a, (size_t)st.st_size);
    for (size_t i = 0; i < n; i++)
      vec[i] &= 1;
  }
  close(fd);
  *npages = n;
  return vec;
}

/* What kvik should answer for [off, off + size) (size 0: to the end) of a file of fsize bytes
 * whose residency is vec. */
static void expect_count(const unsigned char *vec, long long fsize, long long off, long long size,
                         size_t *cached, size_t *total) {
  *cached = *total = 0;
  if (off >= fsize)
    return;
  long long end = size == 0 || size > fsize - off ? fsize : off + size;
  for (long long p = off / (long long)g_page; p <= (end - 1) / (long long)g_page; p++) {
    (*total)++;
    *cached += vec[p];
  }
}

/* ---- system-call hooks -------------------------------------------------------------------- */

static _Atomic long g_cachestat_calls, g_mincore_calls;
static _Atomic int g_cachestat_errno; /* 0: the real call */
static _Atomic int g_mmap_errno;      /* 0: the real call */
static int (*g_real_cachestat)(int, const struct kvik__cachestat_range *, struct kvik__cachestat *,
                               unsigned);

static int hook_cachestat(int fd, const struct kvik__cachestat_range *r, struct kvik__cachestat *cs,
                          unsigned flags) {
  atomic_fetch_add(&g_cachestat_calls, 1);
  int e = atomic_load(&g_cachestat_errno);
  if (e) {
    errno = e;
    return -1;
  }
  return g_real_cachestat(fd, r, cs, flags);
}

static int hook_mincore(void *addr, size_t len, unsigned char *vec) {
  atomic_fetch_add(&g_mincore_calls, 1);
  return mincore(addr, len, vec);
}

static void *hook_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  int e = atomic_load(&g_mmap_errno);
  if (e) {
    errno = e;
    return MAP_FAILED;
  }
  return mmap(addr, len, prot, flags, fd, off);
}

static void hooks(int cachestat_errno, int mmap_errno) {
  kvik__sys_reset();
  g_real_cachestat = kvik__sys.cachestat;
  atomic_store(&g_cachestat_calls, 0);
  atomic_store(&g_mincore_calls, 0);
  atomic_store(&g_cachestat_errno, cachestat_errno);
  atomic_store(&g_mmap_errno, mmap_errno);
  kvik__sys.cachestat = hook_cachestat;
  kvik__sys.mincore = hook_mincore;
  kvik__sys.mmap = hook_mmap;
}

static int teardown_test(void **state) {
  (void)state;
  kvik__alloc_fail_after(-1);
  kvik__sys_reset();
  t_context[0] = 0;
  return 0;
}

/* True if this kernel has cachestat (the real call, on a real descriptor). */
static bool have_cachestat(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct kvik__cachestat_range r = {0, 0};
  struct kvik__cachestat cs;
  kvik__sys_reset();
  bool ok = kvik__sys.cachestat(fd, &r, &cs, 0) == 0;
  close(fd);
  return ok;
}

/* ---- a file half in the page cache -------------------------------------------------------- */

#define HALF_FILE (8 * MiB + 1234) /* a partial last page */

/* Every (offset, size) of the grid against the mincore count, with the current hooks. */
static void check_grid(const char *path, const unsigned char *vec, long long fsize,
                       const char *how) {
  const long long half = (long long)(4 * MiB);
  const long long offs[] = {0,    1,        4095,      4096,  half - 1,
                            half, half + 1, fsize - 1, fsize, fsize + 10};
  const long long sizes[] = {
      0, 1, 4096, 4097, (long long)(2 * MiB) + 3, (long long)(8 * MiB), INT64_MAX / 2};
  for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++)
    for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++) {
      size_t want_c, want_t, got_c = 77, got_t = 77;
      T_CONTEXT("%s: offset %lld size %lld", how, offs[i], sizes[j]);
      expect_count(vec, fsize, offs[i], sizes[j], &want_c, &want_t);
      ASSERT_CODE(kvik_page_cache_info(path, offs[i], sizes[j], &got_c, &got_t), 0);
      if (got_c != want_c || got_t != want_t)
        fail_msg("%s: kvik counts %zu of %zu pages cached, mincore %zu of %zu", t_context, got_c,
                 got_t, want_c, want_t);
    }
}

static void half_cached(void **state) {
  (void)state;
  if (!g_dir)
    SKIP_BECAUSE("no directory on a disk-backed filesystem (TMPDIR, /var/tmp, /tmp)");
  char *path = t_join(g_dir, "half");
  t_write_pattern_file(path, HALF_FILE, 5);
  /* Everything in the cache (read it, clean it), then the second half dropped. */
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(fdatasync(fd), 0);
  char *buf = malloc(HALF_FILE);
  assert_non_null(buf);
  assert_int_equal(pread(fd, buf, HALF_FILE, 0), HALF_FILE);
  free(buf);
  assert_int_equal(posix_fadvise(fd, (off_t)(4 * MiB), 0, POSIX_FADV_DONTNEED), 0);
  close(fd);

  size_t n;
  unsigned char *vec = mincore_vec(path, &n);
  size_t first = 0, second = 0;
  for (size_t p = 0; p < n; p++)
    *(p < 4 * MiB / g_page ? &first : &second) += vec[p];
  if (first != 4 * MiB / g_page || second != 0) {
    free(vec);
    free(path);
    SKIP_BECAUSE("%s keeps no page cache the test can control: after reading the file and "
                 "dropping its second half, mincore finds %zu of %zu first-half and %zu "
                 "second-half pages cached",
                 g_dir, first, 4 * MiB / g_page, second);
  }

  /* The whole file: half of it. */
  size_t c = 0, t = 0;
  hooks(0, 0);
  ASSERT_CODE(kvik_page_cache_info(path, 0, 0, &c, &t), 0);
  assert_int_equal(t, n);
  assert_int_equal(c, 4 * MiB / g_page);

  /* Through cachestat where the kernel has it (it must then be the call that counted). */
  hooks(0, 0);
  check_grid(path, vec, HALF_FILE, "cachestat");
  if (have_cachestat(path)) {
    assert_true(atomic_load(&g_cachestat_calls) > 0);
    assert_int_equal(atomic_load(&g_mincore_calls), 0);
  } else {
    printf("# this kernel has no cachestat: both passes use mincore\n");
  }
  /* Through mincore: cachestat refused as an old kernel (ENOSYS), a seccomp filter (EPERM) and
   * hugetlbfs (EOPNOTSUPP) refuse it. */
  const int refusals[] = {ENOSYS, EPERM, EOPNOTSUPP};
  for (size_t i = 0; i < 3; i++) {
    hooks(refusals[i], 0);
    check_grid(path, vec, HALF_FILE, refusals[i] == ENOSYS ? "mincore (ENOSYS)" : "mincore");
    assert_true(atomic_load(&g_mincore_calls) > 0);
  }
  /* Counting changed nothing. */
  size_t n2;
  unsigned char *vec2 = mincore_vec(path, &n2);
  assert_int_equal(n2, n);
  assert_memory_equal(vec, vec2, n);
  free(vec2);

  /* The descriptor form agrees. */
  fd = open(path, O_RDONLY | O_CLOEXEC);
  hooks(0, 0);
  ASSERT_CODE(kvik_page_cache_info_fd(fd, (long long)(4 * MiB) - 1, 2, &c, &t), 0);
  assert_int_equal(c, 1);
  assert_int_equal(t, 2);
  close(fd);

  /* kvik_drop_file_cache drops the rest. */
  ASSERT_CODE(kvik_drop_file_cache(path), 0);
  ASSERT_CODE(kvik_page_cache_info(path, 0, 0, &c, NULL), 0);
  vec2 = mincore_vec(path, &n2);
  size_t left = 0;
  for (size_t p = 0; p < n2; p++)
    left += vec2[p];
  assert_int_equal(c, left);
  free(vec2);
  free(vec);
  free(path);
}

/* A cachestat failure other than a refusal is an error that names the path. */
static void cachestat_error(void **state) {
  (void)state;
  char *path = t_join(g_tmpfs ? g_tmpfs : g_dir, "cs-error");
  t_write_pattern_file(path, 10000, 1);
  hooks(EFAULT, 0);
  size_t c = 5;
  ASSERT_CODE(kvik_page_cache_info(path, 0, 0, &c, NULL), -EFAULT);
  ASSERT_CONTAINS(kvik_last_error(), path);
  ASSERT_CONTAINS(kvik_last_error(), "cachestat");
  assert_int_equal(c, 5); /* untouched on failure */
  /* The fallback's vector cannot be allocated. */
  hooks(ENOSYS, 0);
  kvik__alloc_fail_after(0);
  int rc = kvik_page_cache_info(path, 0, 0, &c, NULL);
  kvik__alloc_fail_after(-1);
  ASSERT_CODE(rc, -ENOMEM);
  ASSERT_CONTAINS(kvik_last_error(), "mincore vector");
  /* The fallback's mmap failing: the path, the offset and the reason. */
  hooks(ENOSYS, ENOMEM);
  ASSERT_CODE(kvik_page_cache_info(path, 0, 0, &c, NULL), -ENOMEM);
  ASSERT_CONTAINS(kvik_last_error(), path);
  ASSERT_CONTAINS(kvik_last_error(), "mmap");
  unlink(path);
  free(path);
}

/* tmpfs: a file's pages live in memory, DONTNEED or not. */
static void tmpfs_all_cached(void **state) {
  (void)state;
  if (!g_tmpfs)
    SKIP_BECAUSE("/dev/shm is not a tmpfs here");
  char *path = t_join(g_tmpfs, "shm");
  t_write_pattern_file(path, 3 * MiB + 5, 2);
  ASSERT_CODE(kvik_drop_file_cache(path), 0);
  for (int pass = 0; pass < 2; pass++) {
    hooks(pass ? ENOSYS : 0, 0);
    size_t c = 0, t = 0;
    ASSERT_CODE(kvik_page_cache_info(path, 0, 0, &c, &t), 0);
    assert_int_equal(t, (3 * MiB + 5 + g_page - 1) / g_page);
    assert_int_equal(c, t);
  }
  unlink(path);
  free(path);
}

static void empty_and_past_end(void **state) {
  (void)state;
  char *path = t_join(g_tmpfs ? g_tmpfs : g_dir, "empty");
  t_write_pattern_file(path, 0, 1);
  size_t c = 9, t = 9;
  ASSERT_CODE(kvik_page_cache_info(path, 0, 0, &c, &t), 0);
  assert_int_equal(c, 0);
  assert_int_equal(t, 0);
  t_write_pattern_file(path, 100, 1);
  ASSERT_CODE(kvik_page_cache_info(path, 100, 0, &c, &t), 0);
  assert_int_equal(t, 0);
  ASSERT_CODE(kvik_page_cache_info(path, 99, 0, &c, &t), 0);
  assert_int_equal(t, 1);
  ASSERT_CODE(kvik_page_cache_info(path, 1000000, 5, &c, &t), 0);
  assert_int_equal(c, 0);
  assert_int_equal(t, 0);
  unlink(path);
  free(path);
}

static void bad_input(void **state) {
  (void)state;
  const char *base = g_tmpfs ? g_tmpfs : g_dir;
  char *missing = t_join(base, "no-such-file");
  char *file = t_join(base, "f");
  char *fifo = t_join(base, "fifo");
  t_write_pattern_file(file, 5000, 3);
  size_t c, t;

  ASSERT_CODE(kvik_page_cache_info(NULL, 0, 0, &c, &t), KVIK_EINVAL);
  ASSERT_CODE(kvik_page_cache_info(missing, 0, 0, &c, &t), -ENOENT);
  ASSERT_CONTAINS(kvik_last_error(), missing);
  ASSERT_CODE(kvik_page_cache_info(base, 0, 0, &c, &t), -EISDIR);
  ASSERT_CONTAINS(kvik_last_error(), "directory");
  /* A FIFO with no writer: opened non-blocking, refused, and the call returns. */
  assert_int_equal(mkfifo(fifo, 0600), 0);
  ASSERT_CODE(kvik_page_cache_info(fifo, 0, 0, &c, &t), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "FIFO");
  ASSERT_CONTAINS(kvik_last_error(), fifo);
  ASSERT_CODE(kvik_page_cache_info(file, -1, 0, &c, &t), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "negative offset");
  ASSERT_CODE(kvik_page_cache_info(file, 0, -5, &c, &t), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "negative size");
  ASSERT_CODE(kvik_page_cache_info(file, INT64_MAX, 2, &c, &t), KVIK_EOVERFLOW);
  ASSERT_CODE(kvik_page_cache_info_fd(-1, 0, 0, &c, &t), -EBADF);
  ASSERT_CODE(kvik_page_cache_info_fd(1000000, 0, 0, &c, &t), -EBADF);
  /* NULL outputs are fine. */
  ASSERT_CODE(kvik_page_cache_info(file, 0, 0, NULL, NULL), 0);
  unlink(fifo);
  unlink(file);
  free(fifo);
  free(file);
  free(missing);
}

/* Without root: -EACCES, saying that root is needed, before any sync. As root the test runs the
 * refusal in a child that gave up root; it never drops the machine's cache itself. */
static void drop_system_cache_refused(void **state) {
  (void)state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
      _exit(3);
    int rc = kvik_drop_system_cache();
    printf("# unprivileged kvik_drop_system_cache: %d (%s): %s\n", rc, kvik_strerror_name(rc),
           kvik_last_error());
    fflush(stdout);
    if (rc != -EACCES && rc != -EPERM && rc != -EROFS)
      _exit(1);
    if (!strstr(kvik_last_error(), "/proc/sys/vm/drop_caches") ||
        (rc != -EROFS && !strstr(kvik_last_error(), "needs root")))
      _exit(2);
    _exit(0);
  }
  int st;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
    SKIP_BECAUSE("cannot give up root (setuid 65534 refused)");
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static int refuse_open_erofs(const char *path, int flags, mode_t mode) {
  if (strcmp(path, "/proc/sys/vm/drop_caches") == 0) {
    errno = EROFS;
    return -1;
  }
  return open(path, flags, mode);
}

static int refuse_open_eperm(const char *path, int flags, mode_t mode) {
  if (strcmp(path, "/proc/sys/vm/drop_caches") == 0) {
    errno = EPERM;
    return -1;
  }
  return open(path, flags, mode);
}

static void drop_system_cache_injected(void **state) {
  (void)state;
  kvik__sys.open = refuse_open_erofs;
  ASSERT_CODE(kvik_drop_system_cache(), -EROFS);
  ASSERT_CONTAINS(kvik_last_error(), "read-only");
  kvik__sys.open = refuse_open_eperm;
  ASSERT_CODE(kvik_drop_system_cache(), -EPERM);
  ASSERT_CONTAINS(kvik_last_error(), "needs root");
  ASSERT_CONTAINS(kvik_last_error(), "kvik_drop_file_cache");
}

static int group_setup(void **state) {
  (void)state;
  g_page = (size_t)sysconf(_SC_PAGESIZE);
  const char *cands[] = {getenv("TMPDIR"), "/var/tmp", "/tmp"};
  for (size_t i = 0; i < 3 && !g_dir; i++) {
    struct kvik_path_info pi = {.sz = sizeof pi};
    if (!cands[i] || !*cands[i] || kvik_path_info(cands[i], &pi) != 0)
      continue;
    if (strcmp(pi.fs_type, "tmpfs") == 0 || strcmp(pi.fs_type, "ramfs") == 0)
      continue;
    g_dir = t_mkdtemp(cands[i]);
    if (g_dir)
      printf("# disk-backed tests use %s (%s)\n", g_dir, pi.fs_type);
  }
  struct kvik_path_info pi = {.sz = sizeof pi};
  if (kvik_path_info("/dev/shm", &pi) == 0 && strcmp(pi.fs_type, "tmpfs") == 0)
    g_tmpfs = t_mkdtemp("/dev/shm");
  if (!g_dir && !g_tmpfs)
    return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  t_rmtree(g_dir);
  t_rmtree(g_tmpfs);
  return 0;
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  t_clear_kvikio_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(half_cached, teardown_test),
      cmocka_unit_test_teardown(cachestat_error, teardown_test),
      cmocka_unit_test_teardown(tmpfs_all_cached, teardown_test),
      cmocka_unit_test_teardown(empty_and_past_end, teardown_test),
      cmocka_unit_test_teardown(bad_input, teardown_test),
      cmocka_unit_test_teardown(drop_system_cache_refused, teardown_test),
      cmocka_unit_test_teardown(drop_system_cache_injected, teardown_test),
  };
  return cmocka_run_group_tests_name("pagecache", tests, group_setup, group_teardown);
}
