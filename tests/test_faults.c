/* Faults through the system-call table (src/sys/sys.h) and the allocation wrappers:
 * EINTR and short counts (the result is still right), EIO (an error whose message names the
 * path and offset), ENOSPC (injected, and on a real 1 MiB tmpfs when running as root), O_DIRECT
 * refused at open or at I/O time (buffered, silently), failing open/close/fstat, and every
 * allocation failing in turn (a clean negative code or success, no leak, no broken state).
 *
 * Hooks run on pool workers in parallel, so their state is atomic. They only interfere with
 * descriptors of the file under test (matched by inode), so the library's other I/O (probing
 * /sys, filesystem checks) runs normally. kvik__sys_reset() after every test. */
#include "common.h"

#include "core/core.h"
#include "io/io.h"
#include "sys/sys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char *g_dir; /* on a direct-I/O filesystem when there is one */
static bool g_dio_fs;
static kvik_pool *g_pool;

enum fault {
  F_NONE,
  F_EINTR_ONCE,    /* the first call fails with EINTR */
  F_EINTR_ALT,     /* every other call fails with EINTR */
  F_SHORT,         /* at most 1000 bytes per buffered call; half (page multiple) for O_DIRECT */
  F_ERR_FROM,      /* calls touching bytes at or after g_limit fail with g_errno */
  F_PARTIAL_FROM,  /* like F_ERR_FROM, but a call straddling g_limit first transfers up to it */
  F_DIRECT_EINVAL, /* calls on an O_DIRECT descriptor fail with EINVAL */
  /* Reads starting before g_limit2 find end of file at g_limit (the file shrank to g_limit
   * under them, and had grown back for the reads from g_limit2 on). */
  F_HOLE
};

static _Atomic int g_read_fault, g_write_fault;
static _Atomic long g_calls;       /* hooked calls on the target */
static _Atomic long long g_limit;  /* byte offset for F_ERR_FROM / F_PARTIAL_FROM / F_HOLE */
static _Atomic long long g_limit2; /* end of the F_HOLE range */
static _Atomic int g_errno;
static _Atomic unsigned long long g_ino, g_dev; /* the target file */

static int setup_test(void **state) {
  (void)state;
  kvik__sys_reset();
  atomic_store(&g_read_fault, F_NONE);
  atomic_store(&g_write_fault, F_NONE);
  atomic_store(&g_calls, 0);
  atomic_store(&g_ino, 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, 0), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, 0), 0);
  return 0;
}

static int teardown_test(void **state) {
  (void)state;
  kvik__sys_reset();
  kvik__alloc_fail_after(-1);
  t_context[0] = 0;
  return 0;
}

static void target(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    fail_msg("stat %s: %s", path, strerror(errno));
  atomic_store(&g_dev, (unsigned long long)st.st_dev);
  atomic_store(&g_ino, (unsigned long long)st.st_ino);
}

static bool is_target(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return false;
  return (unsigned long long)st.st_ino == atomic_load(&g_ino) &&
         (unsigned long long)st.st_dev == atomic_load(&g_dev);
}

static bool is_direct(int fd) { return (fcntl(fd, F_GETFL) & O_DIRECT) != 0; }

/* Applies fault f to a call of n bytes at off. Returns -1 (errno set) to fail the call, else
 * the (possibly reduced) count to pass on to the real call. */
static long long apply(int f, int fd, size_t n, off_t off) {
  long k = atomic_fetch_add(&g_calls, 1);
  long long limit = atomic_load(&g_limit);
  switch (f) {
  case F_EINTR_ONCE:
    if (k == 0)
      return errno = EINTR, -1;
    break;
  case F_EINTR_ALT:
    if (k % 2 == 0)
      return errno = EINTR, -1;
    break;
  case F_SHORT:
    if (is_direct(fd))
      return n > 8192 ? (long long)((n / 2) & ~(size_t)4095) : (long long)n;
    return n > 1000 ? 1000 : (long long)n;
  case F_ERR_FROM:
    if ((long long)off + (long long)n > limit)
      return errno = atomic_load(&g_errno), -1;
    break;
  case F_PARTIAL_FROM:
    if ((long long)off >= limit)
      return errno = atomic_load(&g_errno), -1;
    if ((long long)off + (long long)n > limit)
      return limit - (long long)off;
    break;
  case F_DIRECT_EINVAL:
    if (is_direct(fd))
      return errno = EINVAL, -1;
    break;
  case F_HOLE:
    if ((long long)off >= limit && (long long)off < atomic_load(&g_limit2))
      return 0; /* end of file */
    if ((long long)off < limit && (long long)off + (long long)n > limit)
      return limit - (long long)off;
    break;
  default: break;
  }
  return (long long)n;
}

static ssize_t hook_pread(int fd, void *buf, size_t n, off_t off) {
  int f = atomic_load(&g_read_fault);
  if (f != F_NONE && is_target(fd)) {
    long long m = apply(f, fd, n, off);
    if (m < 0)
      return -1;
    n = (size_t)m;
  }
  return pread(fd, buf, n, off);
}

static ssize_t hook_pwrite(int fd, const void *buf, size_t n, off_t off) {
  int f = atomic_load(&g_write_fault);
  if (f != F_NONE && is_target(fd)) {
    long long m = apply(f, fd, n, off);
    if (m < 0)
      return -1;
    n = (size_t)m;
  }
  return pwrite(fd, buf, n, off);
}

static void inject(int read_fault, int write_fault) {
  atomic_store(&g_calls, 0);
  atomic_store(&g_read_fault, read_fault);
  atomic_store(&g_write_fault, write_fault);
  kvik__sys.pread = hook_pread;
  kvik__sys.pwrite = hook_pwrite;
}

/* Open descriptors, less the one on /proc/self/maps that the library opens at its first buffer
 * check and keeps for the life of the process (src/io/memcheck.c): not a leak. */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    char link[300], target[256];
    snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
    ssize_t len = readlink(link, target, sizeof target - 1);
    if (len > 0) {
      target[len] = '\0';
      size_t tl = strlen(target);
      if (strncmp(target, "/proc/", 6) == 0 && tl > 5 && strcmp(target + tl - 5, "/maps") == 0)
        continue;
    }
    n++;
  }
  closedir(d);
  return n;
}

static int group_setup(void **state) {
  (void)state;
  t_clear_kvikio_env();
  if (kvik_config_reload() != 0)
    return -1;
  const char *base = t_direct_io_base(NULL);
  g_dio_fs = base != NULL;
  g_dir = t_mkdtemp(base);
  return g_dir && kvik_pool_create(&g_pool, 4) == 0 ? 0 : -1;
}

static int group_teardown(void **state) {
  (void)state;
  kvik_pool_destroy(g_pool);
  t_rmtree(g_dir);
  return 0;
}

/* ---- round trips under a fault ----------------------------------------------------------- */

/* Writes size bytes at off through kvik (sync or futures) into a new file, reads them back
 * through kvik, checks both and the file on disk, with read_fault/write_fault injected around
 * the kvik calls. Returns the number of hooked calls. */
static long round_trip(const char *name, int read_fault, int write_fault, int dio, bool futures,
                       size_t size, uint64_t off) {
  static uint64_t seed_counter = 1000;
  uint64_t seed = ++seed_counter;
  T_CONTEXT("%s: dio=%d %s size=%zu off=%llu", name, dio, futures ? "futures" : "sync", size,
            (unsigned long long)off);
  char *path = t_join(g_dir, name);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)dio), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)dio), 0);
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_ON), 0);
  target(path);
  uint8_t *src = t_alloc_aligned(size + 4096), *dst = t_alloc_aligned(size + 4096);
  /* Misaligned by 984 so both the bounce-buffer and the direct paths run. */
  t_pat_fill(src + 984, size, off, seed);
  memset(dst, 0xA5, size + 4096);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 64 * KiB, .pool = g_pool};
  inject(F_NONE, write_fault);
  if (futures) {
    kvik_future *fut = NULL;
    ASSERT_CODE(kvik_file_pwrite(f, src + 984, size, (int64_t)off, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), size);
  } else {
    ASSERT_CODE(kvik_file_write(f, src + 984, size, (int64_t)off), size);
  }
  long calls = atomic_load(&g_calls);
  inject(read_fault, F_NONE);
  if (futures) {
    kvik_future *fut = NULL;
    ASSERT_CODE(kvik_file_pread(f, dst + 984, size, (int64_t)off, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), size);
  } else {
    ASSERT_CODE(kvik_file_read(f, dst + 984, size, (int64_t)off), size);
  }
  calls += atomic_load(&g_calls);
  kvik__sys_reset();
  ASSERT_PATTERN(dst + 984, size, off, seed, "read back under fault");
  ASSERT_FILLED(dst + 984 + size, 4096 - 984, 0xA5, "after the read range");
  ASSERT_CODE(kvik_file_size(f), off + size);
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_CODE(t_read_file(path, dst, size, off), size);
  ASSERT_PATTERN(dst, size, off, seed, "on disk");
  free(src);
  free(dst);
  free(path);
  t_context[0] = 0;
  return calls;
}

static void eintr_once(void **state) {
  (void)state;
  for (int dio = 0; dio < 2; dio++) {
    /* sync: the first read and the first write are interrupted, and retried */
    long calls = round_trip("eintr-once", F_EINTR_ONCE, F_EINTR_ONCE, dio, false, 1 * MiB + 3, 5);
    if (calls < 4)
      fail_msg("only %ld hooked calls: the library does not go through kvik__sys", calls);
    round_trip("eintr-once-p", F_EINTR_ONCE, F_EINTR_ONCE, dio, true, 1 * MiB + 3, 4096);
  }
}

static void eintr_every_other_call(void **state) {
  (void)state;
  for (int dio = 0; dio < 2; dio++) {
    round_trip("eintr-alt", F_EINTR_ALT, F_EINTR_ALT, dio, false, 2 * MiB + 13, 4095);
    round_trip("eintr-alt-p", F_EINTR_ALT, F_EINTR_ALT, dio, true, 4 * MiB + 13, 4095);
  }
}

static void short_counts(void **state) {
  (void)state;
  size_t size = 1 * MiB + 3;
  long calls = round_trip("short", F_SHORT, F_SHORT, 0, false, size, 1);
  if (calls < (long)(2 * (size / 1000)))
    fail_msg("%ld hooked calls for 2 x %zu bytes at <= 1000 per call", calls, size);
  round_trip("short-p", F_SHORT, F_SHORT, 0, true, 2 * MiB + 5, 4096);
  round_trip("short-dio", F_SHORT, F_SHORT, 1, false, 2 * MiB + 5, 8601 * 8);
  round_trip("short-dio-p", F_SHORT, F_SHORT, 1, true, 2 * MiB + 5, 1);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static char *make_file(const char *name, size_t size, uint64_t seed) {
  char *path = t_join(g_dir, name);
  t_write_pattern_file(path, size, seed);
  return path;
}

/* A parallel read whose middle chunks come up short (the file shrank under them, and grew back
 * before the later chunks were read): the result is the length of the contiguous prefix actually
 * read, up to the lowest short chunk's end, never the sum of the chunks' counts (which counted
 * bytes past a gap that was never written). */
static void short_chunk_gives_prefix(void **state) {
  (void)state;
  const size_t size = 1 * MiB, task = 64 * KiB;
  char *path = make_file("short-chunk", size, 77);
  uint8_t *buf = t_alloc_aligned(size + 4096);
  struct {
    long long limit, limit2; /* the hole */
    int dio;
  } cases[] = {
      {5 * 64 * 1024 + 1000, 6 * 64 * 1024, 0},        /* chunk 5 short by 64 KiB - 1000 */
      {5 * 64 * 1024, 6 * 64 * 1024, 0},               /* chunk 5 reads nothing */
      {3 * 64 * 1024 + 17, 10 * 64 * 1024, 0},         /* chunks 3 to 9 short or empty */
      {9 * 64 * 1024 + 4096, 9 * 64 * 1024 + 8192, 1}, /* O_DIRECT, chunk 9 short */
      {0, 1, 0},                                       /* chunk 0 reads nothing */
      {15 * 64 * 1024 + 5, 16 * 64 * 1024, 0}, /* the last chunk short: a plain short read */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    T_CONTEXT("short chunk case %zu: hole [%lld, %lld) dio %d", i, cases[i].limit, cases[i].limit2,
              cases[i].dio);
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)cases[i].dio), 0);
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_ON), 0);
    target(path);
    atomic_store(&g_limit, cases[i].limit);
    atomic_store(&g_limit2, cases[i].limit2);
    inject(F_HOLE, F_NONE);
    memset(buf, 0xA5, size + 4096);
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = task, .pool = g_pool};
    kvik_future *fut = NULL;
    ASSERT_CODE(kvik_file_pread(f, buf, size, 0, &o, &fut), 0);
    ssize_t n = kvik_future_wait(fut);
    kvik__sys_reset();
    ASSERT_CODE(n, cases[i].limit);
    ASSERT_PATTERN(buf, (size_t)n, 0, 77, "the prefix");
    ASSERT_CODE(kvik_file_close(f), 0);
  }
  free(buf);
  free(path);
  t_context[0] = 0;
}

static void eio_names_path_and_offset(void **state) {
  (void)state;
  char *path = make_file("eio", 2 * MiB, 1);
  uint8_t *buf = t_alloc_aligned(2 * MiB);
  for (int dio = 0; dio < 2; dio++) {
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)dio), 0);
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)dio), 0);
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, path, "r+", 0, KVIK_COMPAT_ON), 0);
    target(path);
    T_CONTEXT("EIO, dio=%d", dio);
    atomic_store(&g_limit, 0);
    atomic_store(&g_errno, EIO);

    /* Every call fails: the message names the path, the offset and the errno text. */
    inject(F_ERR_FROM, F_ERR_FROM);
    ASSERT_CODE(kvik_file_read(f, buf, 8192, 12288), -EIO);
    ASSERT_CONTAINS(kvik_last_error(), path);
    ASSERT_CONTAINS(kvik_last_error(), "12288");
    ASSERT_CONTAINS(kvik_last_error(), strerrordesc_np(EIO));
    ASSERT_CODE(kvik_file_write(f, buf, 8192, 12288), -EIO);
    ASSERT_CONTAINS(kvik_last_error(), path);
    ASSERT_CONTAINS(kvik_last_error(), "12288");
    ASSERT_CONTAINS(kvik_last_error(), strerrordesc_np(EIO));

    /* A parallel read: the waiter gets the code and the message. A task size equal to the
     * request makes the failing offset the requested one. */
    struct kvik_io_opts one = {.sz = sizeof one, .task_size = 1 * MiB, .pool = g_pool};
    kvik_future *fut = NULL;
    ASSERT_CODE(kvik_file_pread(f, buf, 1 * MiB, 4096 * 3, &one, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), -EIO);
    ASSERT_CONTAINS(kvik_last_error(), path);
    ASSERT_CONTAINS(kvik_last_error(), "12288");
    ASSERT_CONTAINS(kvik_last_error(), strerrordesc_np(EIO));
    ASSERT_CODE(kvik_file_pwrite(f, buf, 1 * MiB, 4096 * 3, &one, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), -EIO);
    ASSERT_CONTAINS(kvik_last_error(), path);
    ASSERT_CONTAINS(kvik_last_error(), strerrordesc_np(EIO));

    /* Only the second half fails: an error, not a short count. */
    atomic_store(&g_limit, (long long)(1 * MiB));
    inject(F_ERR_FROM, F_NONE);
    ASSERT_CODE(kvik_file_read(f, buf, 2 * MiB, 0), -EIO);
    ASSERT_CONTAINS(kvik_last_error(), path);
    struct kvik_io_opts many = {.sz = sizeof many, .task_size = 128 * KiB, .pool = g_pool};
    ASSERT_CODE(kvik_file_pread(f, buf, 2 * MiB, 0, &many, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), -EIO);
    ASSERT_CONTAINS(kvik_last_error(), path);
    ASSERT_CONTAINS(kvik_last_error(), strerrordesc_np(EIO));

    /* Faults gone, the same handle works. */
    kvik__sys_reset();
    ASSERT_CODE(kvik_file_read(f, buf, 2 * MiB, 0), 2 * MiB);
    ASSERT_PATTERN(buf, 2 * MiB, 0, 1, "read after EIO");
    ASSERT_CODE(kvik_file_close(f), 0);
  }
  ASSERT_FILE_PATTERN(path, 2 * MiB, 1); /* the failed writes wrote nothing */
  free(buf);
  free(path);
}

static void enospc_injected(void **state) {
  (void)state;
  char *path = t_join(g_dir, "enospc");
  uint8_t *buf = t_alloc_aligned(2 * MiB);
  t_pat_fill(buf, 2 * MiB, 0, 3);
  for (int mode = 0; mode < 4; mode++) {
    int dio = mode & 1;
    bool futures = mode >> 1;
    T_CONTEXT("injected ENOSPC, dio=%d, %s", dio, futures ? "futures" : "sync");
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)dio), 0);
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, path, "w", 0644, KVIK_COMPAT_ON), 0);
    target(path);
    /* Space runs out at 1 MiB: the write straddling it is short, the next one fails. */
    atomic_store(&g_limit, (long long)(1 * MiB));
    atomic_store(&g_errno, ENOSPC);
    inject(F_NONE, F_PARTIAL_FROM);
    if (futures) {
      struct kvik_io_opts o = {.sz = sizeof o, .task_size = 256 * KiB, .pool = g_pool};
      kvik_future *fut = NULL;
      ASSERT_CODE(kvik_file_pwrite(f, buf, 2 * MiB, 0, &o, &fut), 0);
      ASSERT_CODE(kvik_future_wait(fut), -ENOSPC);
    } else {
      ASSERT_CODE(kvik_file_write(f, buf, 2 * MiB, 0), -ENOSPC);
    }
    ASSERT_CONTAINS(kvik_last_error(), path);
    ASSERT_CONTAINS(kvik_last_error(), strerrordesc_np(ENOSPC));
    kvik__sys_reset();
    ASSERT_CODE(kvik_file_close(f), 0);
  }
  free(buf);
  free(path);
}

static void enospc_real_tmpfs(void **state) {
  (void)state;
  if (geteuid() != 0)
    SKIP_BECAUSE("needs root to mount a 1 MiB tmpfs (running as uid %d)", (int)geteuid());
  char *mnt = t_mkdtemp(NULL);
  assert_non_null(mnt);
  if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m") != 0) {
    int e = errno;
    t_rmtree(mnt);
    SKIP_BECAUSE("mount -t tmpfs -o size=1m failed: %s", strerror(e));
  }
  char *path = t_join(mnt, "full");
  uint8_t *buf = t_alloc_aligned(2 * MiB);
  t_pat_fill(buf, 2 * MiB, 0, 4);
  int rc_sync = 0, rc_fut = 0, rc_dio = 0;
  char msg_sync[1024] = "", msg_fut[1024] = "";
  kvik_file *f = NULL;
  int rc = kvik_file_open(&f, path, "w", 0644, KVIK_COMPAT_ON);
  if (rc == 0) {
    rc_sync = (int)kvik_file_write(f, buf, 2 * MiB, 0);
    snprintf(msg_sync, sizeof msg_sync, "%s", kvik_last_error());
    kvik_file_close(f);
  }
  int rc2 = kvik_file_open(&f, path, "w", 0644, KVIK_COMPAT_ON);
  if (rc2 == 0) {
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = 256 * KiB, .pool = g_pool};
    kvik_future *fut = NULL;
    rc_fut = kvik_file_pwrite(f, buf, 2 * MiB, 0, &o, &fut);
    if (rc_fut == 0)
      rc_fut = (int)kvik_future_wait(fut);
    snprintf(msg_fut, sizeof msg_fut, "%s", kvik_last_error());
    kvik_file_close(f);
  }
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, 1), 0);
  int rc3 = kvik_file_open(&f, path, "w", 0644, KVIK_COMPAT_ON);
  if (rc3 == 0) {
    rc_dio = (int)kvik_file_write(f, buf, 2 * MiB, 0);
    kvik_file_close(f);
  }
  umount2(mnt, MNT_DETACH);
  t_rmtree(mnt);
  free(buf);
  ASSERT_CODE(rc, 0);
  ASSERT_CODE(rc2, 0);
  ASSERT_CODE(rc3, 0);
  ASSERT_CODE(rc_sync, -ENOSPC);
  ASSERT_CONTAINS(msg_sync, path);
  ASSERT_CONTAINS(msg_sync, strerrordesc_np(ENOSPC));
  ASSERT_CODE(rc_fut, -ENOSPC);
  ASSERT_CONTAINS(msg_fut, path);
  ASSERT_CONTAINS(msg_fut, strerrordesc_np(ENOSPC));
  ASSERT_CODE(rc_dio, -ENOSPC);
  free(path);
}

/* ---- O_DIRECT refused ------------------------------------------------------------------------ */

static int hook_open_no_direct(const char *path, int flags, mode_t mode) {
  if (flags & O_DIRECT)
    return errno = EINVAL, -1;
  return open(path, flags, mode);
}

static void direct_refused_at_open(void **state) {
  (void)state;
  kvik__sys.open = hook_open_no_direct;
  struct kvik_path_info pi = {.sz = sizeof pi};
  ASSERT_CODE(kvik_path_info(g_dir, &pi), 0);
  ASSERT_CODE(pi.direct_io, 0);
  char *path = t_join(g_dir, "no-direct");
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, 1), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, 1), 0);
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_ON), 0);
  struct kvik_file_info info = {.sz = sizeof info};
  ASSERT_CODE(kvik_file_info(f, &info), 0);
  ASSERT_CODE(info.direct_read, 0);
  ASSERT_CODE(info.direct_write, 0);
  size_t n = 3 * MiB + 1;
  uint8_t *buf = t_alloc_aligned(n);
  t_pat_fill(buf, n, 4096, 8);
  ASSERT_CODE(kvik_file_write(f, buf, n, 4096), n);
  memset(buf, 0, n);
  ASSERT_CODE(kvik_file_read(f, buf, n, 4096), n);
  ASSERT_PATTERN(buf, n, 4096, 8, "read with O_DIRECT refused at open");
  ASSERT_CODE(kvik_file_close(f), 0);
  free(buf);
  free(path);
}

static void direct_refused_at_io(void **state) {
  (void)state;
  if (!g_dio_fs)
    SKIP_BECAUSE("no filesystem here opens O_DIRECT, so there is no O_DIRECT call to refuse");
  for (int futures = 0; futures < 2; futures++) {
    long calls = round_trip("einval-direct", F_DIRECT_EINVAL, F_DIRECT_EINVAL, 1, futures,
                            4 * MiB + 13, 4096);
    if (calls == 0)
      fail_msg("%s", "no I/O call reached the hooks");
  }
}

/* ---- buffers the CPU cannot use ------------------------------------------------------------- */

/* kvik__buf_check, exact (PROCMAP_QUERY, Linux 6.11) and in its fallback (mincore, and the ends
 * through process_vm_readv/writev): the first bad byte of a range, for loads and stores. */
static void want_check(const void *p, size_t n, bool store, int want, size_t want_bad,
                       const char *what, bool fallback) {
  size_t bad = (size_t)-1;
  int rc = kvik__buf_check(p, n, store, &bad);
  if (rc != want || (want && bad != want_bad))
    fail_msg("%s (%s, %s): kvik__buf_check = %d, bad = %zu; expected %d, bad = %zu", what,
             store ? "store" : "load", fallback ? "fallback" : "PROCMAP_QUERY where there", rc, bad,
             want, want_bad);
}

static void buffer_checks(void **state) {
  (void)state;
  size_t page = kvik__page_size();
  for (int fallback = 0; fallback < 2; fallback++) {
    kvik__buf_check_force_fallback(fallback);
    uint8_t *m = mmap(NULL, 8 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    memset(m, 0x11, 8 * page);
    /* Good memory, any alignment and size. */
    want_check(m + 3, 8 * page - 3, true, 0, 0, "read-write mapping", fallback);
    want_check(m, 1, false, 0, 0, "one byte", fallback);
    want_check(m, 0, true, 0, 0, "empty range", fallback);
    want_check(NULL, 0, true, 0, 0, "empty range at NULL", fallback);
    /* Read-only pages 6 and 7: loads fine, stores bad from page 6. */
    assert_int_equal(mprotect(m + 6 * page, 2 * page, PROT_READ), 0);
    want_check(m + 100, 8 * page - 100, false, 0, 0, "read-only tail", fallback);
    want_check(m + 100, 8 * page - 100, true, 1, 6 * page - 100, "read-only tail", fallback);
    want_check(m + 6 * page + 5, 100, true, 1, 0, "read-only range", fallback);
    /* Page 5 PROT_NONE: bad for both from page 5 when the range ends there. */
    assert_int_equal(mprotect(m + 5 * page, page, PROT_NONE), 0);
    want_check(m + 7, 6 * page - 7, false, 1, 5 * page - 7, "PROT_NONE tail", fallback);
    /* ... and inside a range whose ends are readable: seen only with PROCMAP_QUERY. */
    if (!fallback) {
      size_t bad;
      int rc = kvik__buf_check(m, 7 * page, false, &bad);
      if (rc == 1)
        assert_int_equal(bad, 5 * page);
      else
        printf("# buffer_checks: no PROCMAP_QUERY here; a PROT_NONE page inside a buffer is not "
               "seen\n");
    }
    /* Page 2 unmapped: seen anywhere in the range, in both. */
    assert_int_equal(munmap(m + 2 * page, page), 0);
    want_check(m + 1, 5 * page - 1, false, 1, 2 * page - 1, "hole", fallback);
    want_check(m + 1, 2 * page - 1, true, 0, 0, "up to the hole", fallback);
    want_check(m + 2 * page + 9, 10, true, 1, 0, "inside the hole", fallback);
    /* A range that wraps around the address space. */
    want_check((void *)(UINTPTR_MAX - 10), 100, false, 1, 0, "wrapping range", fallback);
    munmap(m, 2 * page);
    munmap(m + 3 * page, 5 * page);
  }
  kvik__buf_check_force_fallback(false);
}

/* Through the I/O paths with the fallback check: a read-only target and a short source give
 * -EFAULT with the offset, and nothing is written (test_bad_input covers the exact check). */
static void bad_buffers_fallback(void **state) {
  (void)state;
  size_t page = kvik__page_size();
  char *path = make_file("bad-fallback", 8 * page, 31);
  kvik__buf_check_force_fallback(true);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, 1), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, 1), 0);
  uint8_t *m = mmap(NULL, 6 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(m != MAP_FAILED);
  t_pat_fill(m, 6 * page, 0, 32);
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "r+", 0, KVIK_COMPAT_ON), 0);
  /* A short source, misaligned (the bounce path): -EFAULT at the first unmapped byte. */
  assert_int_equal(munmap(m + 5 * page, page), 0);
  ASSERT_CODE(kvik_file_write(f, m + 1, 6 * page - 8, 0), -EFAULT);
  char want[64];
  snprintf(want, sizeof want, "at offset %zu", 5 * page - 1);
  ASSERT_CONTAINS(kvik_last_error(), want);
  ASSERT_CONTAINS(kvik_last_error(), path);
  /* A read-only target, misaligned, O_DIRECT: -EFAULT at its start. */
  assert_int_equal(mprotect(m, 5 * page, PROT_READ), 0);
  ASSERT_CODE(kvik_file_read(f, m + 1, 4 * page, 0), -EFAULT);
  ASSERT_CONTAINS(kvik_last_error(), "at offset 0");
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_FILE_PATTERN(path, 8 * page, 31);
  munmap(m, 5 * page);
  kvik__buf_check_force_fallback(false);
  free(path);
}

/* Out of descriptors (or memory) for the O_DIRECT descriptor: the open fails with that code and
 * says so, rather than serving the file buffered without a word; nothing leaks. A filesystem
 * that refuses O_DIRECT (EINVAL) is still used buffered (direct_refused_at_open). */
static _Atomic int g_direct_open_errno;
static int hook_open_direct_fails(const char *path, int flags, mode_t mode) {
  int e = atomic_load(&g_direct_open_errno);
  if (e && (flags & O_DIRECT) && strstr(path, "kvik-test-"))
    return errno = e, -1;
  return open(path, flags, mode);
}

static void direct_descriptor_exhausted(void **state) {
  (void)state;
  char *path = make_file("no-fd-for-direct", 3 * 4096, 12);
  int fds = count_fds();
  static const int errs[] = {EMFILE, ENFILE, ENOMEM};
  static const char *const flags[] = {"r", "r+"};
  for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
    for (size_t k = 0; k < 2; k++) {
      for (int dio_read = 0; dio_read < 2; dio_read++) {
        ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)dio_read), 0);
        ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, 1), 0);
        /* "r" without direct reads wants no O_DIRECT descriptor: the open works. */
        bool wants_direct = dio_read || flags[k][1] == '+';
        T_CONTEXT("%s on the O_DIRECT open, \"%s\", direct reads %d", strerrordesc_np(errs[i]),
                  flags[k], dio_read);
        atomic_store(&g_direct_open_errno, errs[i]);
        kvik__sys.open = hook_open_direct_fails;
        kvik_file *f = NULL;
        int rc = kvik_file_open(&f, path, flags[k], 0, KVIK_COMPAT_ON);
        kvik__sys_reset();
        if (!wants_direct) {
          ASSERT_CODE(rc, 0);
          ASSERT_CODE(kvik_file_close(f), 0);
          continue;
        }
        ASSERT_CODE(rc, -errs[i]);
        assert_null(f);
        ASSERT_CONTAINS(kvik_last_error(), path);
        ASSERT_CONTAINS(kvik_last_error(), "O_DIRECT descriptor");
        ASSERT_CONTAINS(kvik_last_error(), strerrordesc_np(errs[i]));
        ASSERT_CODE(count_fds(), fds);
      }
    }
  }
  atomic_store(&g_direct_open_errno, 0);
  t_context[0] = 0;
  ASSERT_FILE_PATTERN(path, 3 * 4096, 12);
  free(path);
}

/* ---- which descriptor serves which part ------------------------------------------------- */

static _Atomic long g_direct_calls, g_buffered_calls;

static ssize_t count_pread(int fd, void *buf, size_t n, off_t off) {
  if (is_target(fd))
    atomic_fetch_add(is_direct(fd) ? &g_direct_calls : &g_buffered_calls, 1);
  return pread(fd, buf, n, off);
}

static ssize_t count_pwrite(int fd, const void *buf, size_t n, off_t off) {
  if (is_target(fd))
    atomic_fetch_add(is_direct(fd) ? &g_direct_calls : &g_buffered_calls, 1);
  return pwrite(fd, buf, n, off);
}

struct split_row {
  int dio, overread, write;
  size_t size;
  uint64_t off;
  size_t misalign;
  int want_direct, want_buffered; /* 1: at least one call, 0: none */
};

/* Opportunistic O_DIRECT really is used, for the aligned middle only (unless overread), and
 * not at all when off or when the range holds no whole page. */
static void direct_io_split(void **state) {
  (void)state;
  if (!g_dio_fs)
    SKIP_BECAUSE("no filesystem here opens O_DIRECT");
  char *path = make_file("split", 4 * MiB, 12);
  uint8_t *buf = t_alloc_aligned(2 * MiB + 4096);
  static const struct split_row rows[] = {
      /* dio ovr  wr  size           off   mis  direct buffered */
      {1, 0, 0, 1 * MiB, 0, 0, 1, 0},     /* aligned everything: O_DIRECT only       */
      {1, 0, 0, 1 * MiB, 0, 984, 1, 0},   /* misaligned buffer: bounced, still direct */
      {1, 0, 0, 1 * MiB + 1, 1, 0, 1, 1}, /* head and tail buffered                   */
      {1, 0, 0, 100, 1, 0, 0, 1},         /* no whole page: buffered                  */
      {1, 0, 0, 4096, 1, 0, 0, 1},        /* a page, but not a page-aligned one       */
      {0, 0, 0, 1 * MiB, 0, 0, 0, 1},     /* off: buffered only                       */
      {1, 1, 0, 1 * MiB + 1, 1, 0, 1, 0}, /* overread: head and tail direct too       */
      {1, 0, 1, 1 * MiB, 0, 0, 1, 0},     /* writes likewise                          */
      {1, 0, 1, 1 * MiB, 0, 984, 1, 0},   {1, 0, 1, 1 * MiB + 1, 1, 0, 1, 1},
      {1, 0, 1, 100, 1, 0, 0, 1},         {0, 0, 1, 1 * MiB, 0, 0, 0, 1},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const struct split_row *r = &rows[i];
    T_CONTEXT("split row %zu: dio=%d overread=%d %s size=%zu off=%llu misalign=%zu", i, r->dio,
              r->overread, r->write ? "write" : "read", r->size, (unsigned long long)r->off,
              r->misalign);
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)r->dio), 0);
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)r->dio), 0);
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD, (uint64_t)r->overread),
                0);
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, path, "r+", 0, KVIK_COMPAT_ON), 0);
    target(path);
    atomic_store(&g_direct_calls, 0);
    atomic_store(&g_buffered_calls, 0);
    kvik__sys.pread = count_pread;
    kvik__sys.pwrite = count_pwrite;
    uint8_t *p = buf + r->misalign;
    if (r->write) {
      t_pat_fill(p, r->size, r->off, 12);
      ASSERT_CODE(kvik_file_write(f, p, r->size, (int64_t)r->off), r->size);
    } else {
      ASSERT_CODE(kvik_file_read(f, p, r->size, (int64_t)r->off), r->size);
      ASSERT_PATTERN(p, r->size, r->off, 12, "split read");
    }
    kvik__sys_reset();
    long direct = atomic_load(&g_direct_calls), buffered = atomic_load(&g_buffered_calls);
    if ((direct > 0) != r->want_direct || (buffered > 0) != r->want_buffered)
      fail_msg("%s: %ld O_DIRECT calls and %ld buffered calls; expected %s and %s", t_context,
               direct, buffered, r->want_direct ? "some" : "none",
               r->want_buffered ? "some" : "none");
    ASSERT_CODE(kvik_file_close(f), 0);
  }
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD, 0), 0);
  ASSERT_FILE_PATTERN(path, 4 * MiB, 12);
  free(buf);
  free(path);
}

/* A setter takes effect for the next operation: the default task size decides how many chunks
 * (here: buffered pread calls) a parallel read makes; opts.task_size overrides it. */
static void task_size_setting_takes_effect(void **state) {
  (void)state;
  char *path = make_file("task-size", 256 * KiB, 13);
  uint8_t *buf = t_alloc_aligned(256 * KiB);
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_ON), 0);
  target(path);
  static const struct {
    uint64_t setting;
    size_t opt;
    long want_calls;
  } rows[] = {
      {4096, 0, 64}, {64 * KiB, 0, 4}, {1 * MiB, 0, 1}, {1 * MiB, 8192, 32}, {4096, 128 * KiB, 2}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_TASK_SIZE, rows[i].setting), 0);
    atomic_store(&g_direct_calls, 0);
    atomic_store(&g_buffered_calls, 0);
    kvik__sys.pread = count_pread;
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = rows[i].opt, .pool = g_pool};
    kvik_future *fut = NULL;
    ASSERT_CODE(kvik_file_pread(f, buf, 256 * KiB, 0, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), 256 * KiB);
    kvik__sys_reset();
    ASSERT_PATTERN(buf, 256 * KiB, 0, 13, "read");
    long calls = atomic_load(&g_buffered_calls);
    if (calls != rows[i].want_calls)
      fail_msg("KVIKIO_TASK_SIZE set to %llu, opts.task_size %zu: %ld pread calls for 256 KiB, "
               "expected %ld",
               (unsigned long long)rows[i].setting, rows[i].opt, calls, rows[i].want_calls);
  }
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_TASK_SIZE, 4 * MiB), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  free(buf);
  free(path);
}

/* ---- failing open, fstat, close ----------------------------------------------------------- */

static _Atomic int g_fail_open_errno;
static int hook_open_fail(const char *path, int flags, mode_t mode) {
  int e = atomic_load(&g_fail_open_errno);
  if (e && strstr(path, "kvik-test-"))
    return errno = e, -1;
  return open(path, flags, mode);
}

static _Atomic int g_fstat_calls_left;
static int hook_fstat_fail(int fd, struct stat *st) {
  if (atomic_fetch_sub(&g_fstat_calls_left, 1) <= 0)
    return errno = EIO, -1;
  return fstat(fd, st);
}

static int hook_close_eio(int fd) {
  close(fd);
  return errno = EIO, -1;
}

static void open_close_fstat_failures(void **state) {
  (void)state;
  char *path = make_file("open-fail", 10000, 9);
  int fds = count_fds();
  for (int dio = 0; dio < 2; dio++) {
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)dio), 0);
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)dio), 0);
    /* open(2) fails: the code and the path. */
    kvik__sys.open = hook_open_fail;
    atomic_store(&g_fail_open_errno, EMFILE);
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_ON), -EMFILE);
    assert_null(f);
    ASSERT_CONTAINS(kvik_last_error(), path);
    atomic_store(&g_fail_open_errno, 0);
    kvik__sys_reset();
    ASSERT_CODE(count_fds(), fds);

    /* fstat fails at the first, then at the second call: no descriptor leaks. */
    for (int ok_calls = 0; ok_calls < 3; ok_calls++) {
      atomic_store(&g_fstat_calls_left, ok_calls);
      kvik__sys.fstat = hook_fstat_fail;
      f = NULL;
      int rc = kvik_file_open(&f, path, "r+", 0, KVIK_COMPAT_ON);
      if (rc == 0) {
        int64_t sz = kvik_file_size(f);
        if (sz != 10000 && sz != -EIO)
          fail_msg("kvik_file_size with failing fstat = %lld", (long long)sz);
        kvik__sys_reset();
        ASSERT_CODE(kvik_file_close(f), 0);
      } else {
        kvik__sys_reset();
        assert_true(rc < 0);
        assert_null(f);
        ASSERT_CONTAINS(kvik_last_error(), path);
      }
      ASSERT_CODE(count_fds(), fds);
    }

    /* close(2) fails: reported, and the handle is freed anyway (ASan checks). */
    ASSERT_CODE(kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_ON), 0);
    kvik__sys.close = hook_close_eio;
    ASSERT_CODE(kvik_file_close(f), -EIO);
    kvik__sys_reset();
    ASSERT_CODE(count_fds(), fds);
  }
  ASSERT_FILE_PATTERN(path, 10000, 9);
  free(path);
}

/* ---- allocation failures --------------------------------------------------------------------- */

/* True if the injected failure already happened (the countdown ran out), so the sequence that
 * ran under kvik__alloc_fail_after(k) made more than k allocations. */
static bool alloc_failure_fired(long k) {
  bool fired = true;
  for (long i = 0; i <= k + 1; i++) {
    void *p = kvik__malloc(1);
    if (!p) {
      fired = false;
      break;
    }
    kvik__free(p);
  }
  kvik__alloc_fail_after(-1);
  return fired;
}

/* open, parallel write, parallel read, sync read, close. Returns 0 or the first negative code;
 * on success the data must be right. */
static int alloc_sequence(const char *path, kvik_pool *pool, uint8_t *src, uint8_t *dst, size_t n) {
  kvik_file *f = NULL;
  int rc = kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_DEFAULT);
  if (rc)
    return rc;
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 64 * KiB, .pool = pool};
  kvik_future *fut = NULL;
  long long r = kvik_file_pwrite(f, src + 984, n, 1, &o, &fut);
  if (r == 0)
    r = kvik_future_wait(fut);
  if (r >= 0 && r != (long long)n)
    fail_msg("pwrite returned %lld, expected %zu", r, n);
  if (r >= 0) {
    memset(dst, 0, n + 984);
    r = kvik_file_pread(f, dst + 984, n, 1, &o, &fut);
    if (r == 0)
      r = kvik_future_wait(fut);
    if (r >= 0 && r != (long long)n)
      fail_msg("pread returned %lld, expected %zu", r, n);
    if (r >= 0 && t_pat_find_mismatch(dst + 984, n, 1, 77) >= 0)
      fail_msg("%s", "pread data wrong under allocation failure");
  }
  if (r >= 0) {
    r = kvik_file_read(f, dst, 5000, 4095);
    if (r >= 0 && r != 5000)
      fail_msg("read returned %lld, expected 5000", r);
  }
  int rc_close = kvik_file_close(f);
  if (r < 0)
    return (int)r;
  return rc_close;
}

static void allocation_failures(void **state) {
  (void)state;
  char *path = t_join(g_dir, "alloc");
  size_t n = 1 * MiB + 17;
  uint8_t *src = t_alloc_aligned(n + 4096), *dst = t_alloc_aligned(n + 4096);
  t_pat_fill(src + 984, n, 1, 77);
  int fds = count_fds();
  for (int dio = 0; dio < 2; dio++) {
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)dio), 0);
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)dio), 0);
    for (kvik_pool *pool = g_pool;; pool = NULL) {
      long k;
      int failures = 0;
      for (k = 0; k < 10000; k++) {
        T_CONTEXT("allocation %ld fails, dio=%d, %s pool", k, dio, pool ? "user" : "default");
        kvik__alloc_fail_after(k);
        int rc = alloc_sequence(path, pool, src, dst, n);
        bool fired = alloc_failure_fired(k);
        if (rc > 0)
          fail_msg("positive return %d", rc);
        if (rc < 0)
          failures++;
        if (rc < 0 && !fired)
          fail_msg("failed with %d (%s: %s) without an injected allocation failure", rc,
                   kvik_strerror_name(rc), kvik_last_error());
        /* Whatever happened, the library works afterwards and no descriptor leaked. */
        ASSERT_CODE(alloc_sequence(path, pool, src, dst, n), 0);
        ASSERT_CODE(count_fds(), fds);
        if (!fired)
          break;
      }
      printf("# allocation failures, dio=%d, %s pool: the sequence allocates %ld times; %d of "
             "the failures surfaced as errors\n",
             dio, pool ? "user" : "default", k, failures);
      if (k == 0)
        fail_msg("%s", "the sequence made no allocation through kvik__malloc at all");
      if (!pool)
        break;
    }
  }
  t_context[0] = 0;
  free(src);
  free(dst);
  free(path);
}

/* First use in a fresh process (configuration, default pool, bounce buffers all created then):
 * each allocation fails in turn in a forked child, which must then recover. */
static int first_use_child(long k, const char *path) {
  size_t n = 300 * KiB;
  uint8_t *src = malloc(n + 4096), *dst = malloc(n + 4096);
  if (!src || !dst)
    return 10;
  t_pat_fill(src + 984, n, 1, 77);
  kvik__alloc_fail_after(k);
  kvik_file *f = NULL;
  int rc = kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_DEFAULT);
  if (rc == 0) {
    kvik_future *fut = NULL;
    long long r = kvik_file_pwrite(f, src + 984, n, 1, NULL, &fut);
    if (r == 0)
      r = kvik_future_wait(fut);
    if (r >= 0 && r != (long long)n)
      return 11;
    kvik_file_close(f);
    rc = r < 0 ? (int)r : 0;
  }
  bool fired = true;
  for (long i = 0; i <= k + 1; i++) {
    void *p = kvik__malloc(1);
    if (!p) {
      fired = false;
      break;
    }
    kvik__free(p);
  }
  kvik__alloc_fail_after(-1);
  if (rc < 0 && !fired)
    return 12;
  /* Recovery: everything works now. */
  if (kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_DEFAULT) != 0)
    return 13;
  kvik_future *fut = NULL;
  if (kvik_file_pwrite(f, src + 984, n, 1, NULL, &fut) != 0 || kvik_future_wait(fut) != (ssize_t)n)
    return 14;
  if (kvik_file_pread(f, dst, n, 1, NULL, &fut) != 0 || kvik_future_wait(fut) != (ssize_t)n)
    return 15;
  if (t_pat_find_mismatch(dst, n, 1, 77) >= 0)
    return 16;
  if (kvik_file_close(f) != 0)
    return 17;
  free(src);
  free(dst);
  return fired ? 0 : 1; /* 1: the sequence finished before allocation k */
}

static void allocation_failures_first_use(void **state) {
  (void)state;
  /* No kvik call before the forks: each child starts with nothing initialised. */
  char *dir = t_mkdtemp(NULL);
  assert_non_null(dir);
  char *path = t_join(dir, "first-use");
  long k;
  for (k = 0; k < 2000; k++) {
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      alarm(60);
      int code = first_use_child(k, path);
      /* The parent's strings, freed here too: under valgrind a leak at the child's exit would
       * change its status, which this loop reads. */
      free(path);
      free(dir);
      exit(code);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
      fail_msg("first use with allocation %ld failing: child killed by signal %d (%s)", k,
               WTERMSIG(status), strsignal(WTERMSIG(status)));
    int code = WEXITSTATUS(status);
    if (code == 1)
      break;
    if (code != 0)
      fail_msg("first use with allocation %ld failing: child exited with %d (step in "
               "first_use_child; 23 is a sanitizer report)",
               k, code);
  }
  printf("# first use allocates %ld times through kvik__malloc\n", k);
  free(path);
  t_rmtree(dir);
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  t_clear_kvikio_env();
  /* First use forks children before this process makes any kvik call (so before any thread
   * or configuration exists): its own group, run first, without the group setup. */
  const struct CMUnitTest first[] = {
      cmocka_unit_test(allocation_failures_first_use),
  };
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(eintr_once, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(eintr_every_other_call, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(short_counts, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(short_chunk_gives_prefix, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(eio_names_path_and_offset, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(enospc_injected, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(enospc_real_tmpfs, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(direct_refused_at_open, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(direct_refused_at_io, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(direct_descriptor_exhausted, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(direct_io_split, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(task_size_setting_takes_effect, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(open_close_fstat_failures, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(allocation_failures, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(buffer_checks, setup_test, teardown_test),
      cmocka_unit_test_setup_teardown(bad_buffers_fallback, setup_test, teardown_test),
  };
  int failed = cmocka_run_group_tests_name("faults_first_use", first, NULL, NULL);
  failed += cmocka_run_group_tests_name("faults", tests, group_setup, group_teardown);
  return failed;
}
