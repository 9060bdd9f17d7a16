/* Allocation torture, file workload (see torture.h and run.sh): on a filesystem that takes
 * O_DIRECT, a parallel write from an unaligned buffer (direct I/O through bounce buffers), the
 * size, a small synchronous write, the path facts, parallel and synchronous reads (direct and
 * buffered) on the default pool and on a pool of the driver's own, each read checked byte for
 * byte, and what kvik wrote checked with plain pread.
 *
 * Usage: torture_file [DIR]   (default $TMPDIR, else /var/tmp: a disk, where O_DIRECT works;
 * a kvik-torture-XXXXXX directory is made there and removed) */
#include "torture.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZE ((size_t)1024 * 1024 + 12345) /* 17 tasks of 64 KiB, the last one short */
#define TASK ((size_t)64 * 1024)
#define SEED_A 1 /* the file made before the workload, read by it */
#define SEED_B 2 /* the file the workload writes */

struct job {
  char dir[512], a[600], b[600];
  uint8_t *src; /* SIZE + 64 bytes: the data of B, from src + 1 (unaligned) */
  uint8_t *dst; /* SIZE + 64 bytes, read into at dst + 3 (unaligned) */
  uint8_t *chk; /* SIZE bytes, for plain preads of B */
};

/* Checks with plain pread that B holds n bytes of SEED_B at off. */
static void verify_disk(struct tt *t, struct job *j, const char *what, size_t n, uint64_t off) {
  int fd = open(j->b, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    tt_bad(t, "%s: cannot open %s to check it: errno %d", what, j->b, errno);
    return;
  }
  ssize_t r = pread(fd, j->chk, n, (off_t)off);
  close(fd);
  if (r != (ssize_t)n) {
    tt_bad(t, "%s: pread of %s gave %zd of %zu bytes", what, j->b, r, n);
    return;
  }
  tt_verify(t, what, j->chk, n, off, SEED_B);
}

/* A parallel read of size bytes at off into dst + 3, checked if it says it succeeded. */
static void pread_check(struct tt *t, const char *what, kvik_file *f, uint64_t seed, struct job *j,
                        size_t size, int64_t off, kvik_pool *pool) {
  memset(j->dst, 0xA5, SIZE + 64);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = TASK, .pool = pool};
  kvik_future *fut = NULL;
  if (!tt_ok(t, what, kvik_file_pread(f, j->dst + 3, size, off, &o, &fut), 0))
    return;
  if (tt_ok(t, what, kvik_future_wait(fut), (long long)size))
    tt_verify(t, what, j->dst + 3, size, (uint64_t)off, seed);
}

static void work(struct tt *t, void *arg) {
  struct job *j = arg;
  kvik_file *f = NULL;
  kvik_future *fut = NULL;
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = TASK};

  /* Both directions through O_DIRECT (opportunistic: aligned middles direct, the rest
   * buffered), so bounce buffers are allocated as well. */
  tt_ok(t, "kvik_config_set_u64(AUTO_DIRECT_IO_READ, 1)",
        kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, 1), 0);
  tt_ok(t, "kvik_config_set_u64(AUTO_DIRECT_IO_WRITE, 1)",
        kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, 1), 0);

  /* B: write it, then check what is on disk. b_ok: B holds SEED_B in full, so it may be read. */
  bool b_ok = false;
  if (tt_ok(t, "kvik_file_open(B, w+)", kvik_file_open(&f, j->b, "w+", 0644, KVIK_COMPAT_ON), 0)) {
    if (tt_ok(t, "kvik_file_pwrite", kvik_file_pwrite(f, j->src + 1, SIZE, 0, &o, &fut), 0) &&
        tt_ok(t, "kvik_future_wait(pwrite)", kvik_future_wait(fut), (long long)SIZE)) {
      verify_disk(t, j, "kvik_file_pwrite", SIZE, 0);
      b_ok = true;
      tt_ok(t, "kvik_file_size", kvik_file_size(f), (long long)SIZE);
    }
    /* A small unaligned write of the same bytes over the middle: B's content stays SEED_B
     * whether or not it succeeds, provided the parallel write did. */
    if (b_ok &&
        tt_ok(t, "kvik_file_write", kvik_file_write(f, j->src + 1 + 5000, 70000, 5000), 70000))
      verify_disk(t, j, "kvik_file_write", 70000, 5000);
    struct kvik_file_info info = {.sz = sizeof info};
    if (tt_ok(t, "kvik_file_info", kvik_file_info(f, &info), 0) &&
        (!info.readable || !info.writable || info.path != KVIK_PATH_POSIX))
      tt_bad(t, "kvik_file_info: readable %d writable %d path %d for a w+ file in compat ON",
             info.readable, info.writable, info.path);
    if (b_ok) {
      pread_check(t, "kvik_file_pread(B)", f, SEED_B, j, SIZE, 0, NULL);
      memset(j->dst, 0xA5, SIZE + 64);
      if (tt_ok(t, "kvik_file_read(B)", kvik_file_read(f, j->dst + 3, 200000, 777), 200000))
        tt_verify(t, "kvik_file_read(B)", j->dst + 3, 200000, 777, SEED_B);
    }
    tt_ok(t, "kvik_file_close(B)", kvik_file_close(f), 0);
    f = NULL;
  }

  /* A: buffered reads, on the default pool and on a pool of our own. */
  tt_ok(t, "kvik_config_set_u64(AUTO_DIRECT_IO_READ, 0)",
        kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, 0), 0);
  if (tt_ok(t, "kvik_file_open(A, r)", kvik_file_open(&f, j->a, "r", 0, KVIK_COMPAT_DEFAULT), 0)) {
    tt_ok(t, "kvik_file_size(A)", kvik_file_size(f), (long long)SIZE);
    pread_check(t, "kvik_file_pread(A, tail)", f, SEED_A, j, SIZE - 4097, 4097, NULL);
    kvik_pool *pool = NULL;
    if (tt_ok(t, "kvik_pool_create(3)", kvik_pool_create(&pool, 3), 0)) {
      pread_check(t, "kvik_file_pread(A, own pool)", f, SEED_A, j, SIZE, 0, pool);
      tt_ok(t, "kvik_pool_resize(2)", kvik_pool_resize(pool, 2), 0);
      pread_check(t, "kvik_file_pread(A, own pool resized)", f, SEED_A, j, 300000, 10, pool);
      tt_ok(t, "kvik_pool_destroy", kvik_pool_destroy(pool), 0);
    }
    memset(j->dst, 0xA5, SIZE + 64);
    /* Past the end: a short count at end of file. */
    if (tt_ok(t, "kvik_file_read(A, end)", kvik_file_read(f, j->dst + 3, 8192, SIZE - 100), 100))
      tt_verify(t, "kvik_file_read(A, end)", j->dst + 3, 100, SIZE - 100, SEED_A);
    tt_ok(t, "kvik_file_close(A)", kvik_file_close(f), 0);
  }

  struct kvik_path_info pi = {.sz = sizeof pi};
  tt_ok(t, "kvik_path_info", kvik_path_info(j->dir, &pi), 0);
  tt_ok(t, "kvik_drop_file_cache(A)", kvik_drop_file_cache(j->a), 0);
  /* A clean error on purpose: the message must be there with or without the failure. */
  kvik_file *none = NULL;
  char missing[700];
  snprintf(missing, sizeof missing, "%s/missing", j->dir);
  int rc = kvik_file_open(&none, missing, "r", 0, KVIK_COMPAT_ON);
  if (rc >= 0) {
    tt_bad(t, "kvik_file_open(missing) succeeded");
    kvik_file_close(none);
  } else if (rc == -ENOENT) {
    t->calls++;
    if (!kvik_last_error()[0])
      tt_bad(t, "kvik_file_open(missing): -ENOENT without a message");
  } else {
    tt_ok(t, "kvik_file_open(missing)", rc, 0); /* another clean error, or bad */
  }
}

static int write_file(const char *path, const uint8_t *data, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return -1;
  ssize_t w = write(fd, data, n);
  return close(fd) == 0 && w == (ssize_t)n ? 0 : -1;
}

int main(int argc, char **argv) {
  static struct job j;
  const char *base = argc > 1 ? argv[1] : getenv("TMPDIR");
  if (!base || !*base)
    base = "/var/tmp";
  snprintf(j.dir, sizeof j.dir, "%s/kvik-torture-XXXXXX", base);
  if (!mkdtemp(j.dir)) {
    fprintf(stderr, "torture_file: mkdtemp under %s failed\n", base);
    return 2;
  }
  snprintf(j.a, sizeof j.a, "%s/a", j.dir);
  snprintf(j.b, sizeof j.b, "%s/b", j.dir);
  j.src = malloc(SIZE + 64);
  j.dst = malloc(SIZE + 64);
  j.chk = malloc(SIZE);
  if (!j.src || !j.dst || !j.chk)
    return 2;
  /* A's data, written through src, which then gets B's data. */
  tt_fill(j.src, SIZE, 0, SEED_A);
  if (write_file(j.a, j.src, SIZE) != 0) {
    fprintf(stderr, "torture_file: cannot write %s\n", j.a);
    return 2;
  }
  tt_fill(j.src + 1, SIZE, 0, SEED_B);
  if (!getenv("KVIKIO_NTHREADS"))
    setenv("KVIKIO_NTHREADS", "4", 1);
  fflush(stdout);

  int rc = tt_main("file", work, &j);

  unlink(j.a);
  unlink(j.b);
  rmdir(j.dir);
  free(j.src);
  free(j.dst);
  free(j.chk);
  return rc;
}
