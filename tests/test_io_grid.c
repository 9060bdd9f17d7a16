/* Round trips over the grid of the issue, plus chunked writes in random order, concurrent
 * readers, end-of-file semantics, size tracking and a tmpfs run.
 *
 * Grid: sizes {0, 1, 4095, 4096, 4097, 1 MiB - 1, 4 MiB + 13, 64 MiB + 7}, file offsets
 * {0, 1, 4095, 4096, 8601*8}, thread counts {1, 3, 4, 16}, task sizes {199, 4096, 1 MiB,
 * 4 MiB}, direct I/O read/write on and off, user buffers page-aligned and +984 bytes, through
 * kvik_file_write/read (sync) and kvik_file_pwrite/pread (futures).
 *
 * Every case writes the pattern of its file offsets (seeded per case) through kvik, checks
 * kvik_file_size, reads it back through kvik into a poisoned buffer (checking the bytes, and
 * that nothing before or after the range was touched), reads a window across end of file
 * (short count) and past it (0), closes, and then checks what is on disk with plain pread:
 * zeros before the offset, the pattern after it, nothing more.
 *
 * misc_overread runs the same checks with KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD on.
 *
 * The full cross product is 10,240 cases and moves tens of GB; it runs with
 * KVIK_TEST_FULL_GRID=1. By default it is pruned so the suite stays fast under TSan on 2
 * cores, keeping every value of every dimension and every pair that matters:
 *  - sync: all sizes up to 4 MiB + 13 x all offsets x both alignments x all 4 direct-I/O
 *    combinations; 64 MiB + 7 once per direct-I/O combination, offset and alignment rotating.
 *    (Thread count and task size do not apply to the sync calls.)
 *  - futures, per thread count (one pool each, reused): all task sizes; sizes that split into
 *    at most ~6000 tasks (so task 199 runs sizes <= 1 MiB - 1, task 4096 sizes <= 4 MiB + 13);
 *    all offsets x both alignments, with the direct-I/O combination rotating so that each
 *    (offset, alignment) meets all four across the thread counts and each thread count meets
 *    all four; 64 MiB + 7 once per (thread count, task size >= 1 MiB), offset, alignment and
 *    direct I/O rotating over all their values.
 */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <linux/loop.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <unistd.h>

#define NSIZES 8
#define NOFFS 5
#define NTHREADS 4
#define NTASKS 4
static const size_t sizes[NSIZES] = {0,    1,           4095,           4096,
                                     4097, 1 * MiB - 1, 4 * MiB + 13,   64 * MiB + 7};
static const uint64_t offsets[NOFFS] = {0, 1, 4095, 4096, 8601 * 8};
static const unsigned thread_counts[NTHREADS] = {1, 3, 4, 16};
static const size_t task_sizes[NTASKS] = {199, 4096, 1 * MiB, 4 * MiB};
static const size_t aligns[2] = {0, 984};

#define GUARD 256               /* poisoned bytes checked after each read's range */
#define POISON 0xA5
#define EOF_WINDOW 8192         /* the end-of-file read covers this much data ... */
#define EOF_EXTRA (4096 + 123)  /* ... and asks for this much more */
#define MAX_SIZE (64 * MiB + 7)
#define BUF_SIZE (MAX_SIZE + 8601 * 8 + 4096 + EOF_WINDOW + EOF_EXTRA + GUARD) /* also holds the whole file */

static bool full_grid;
static char *g_dir;    /* on a filesystem with O_DIRECT when one exists */
static bool g_dio_fs;  /* O_DIRECT works there */
static uint8_t *g_src; /* page-aligned */
static uint8_t *g_dst; /* page-aligned */
static uint64_t g_seed;
static kvik_pool *g_pools[NTHREADS];

enum api { SYNC, FUTURE };

struct grid_case {
  enum api api;
  size_t size;
  uint64_t off;
  size_t align;
  int dio_r, dio_w;
  int overread; /* KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD */
  kvik_pool *pool;
  unsigned threads;
  size_t task;
  size_t bounce; /* KVIKIO_BOUNCE_BUFFER_SIZE; 0: the default, 16 MiB */
};

static int group_setup(void **state) {
  (void)state;
  t_clear_kvikio_env();
  if (kvik_config_reload() != 0)
    return -1;
  full_grid = getenv("KVIK_TEST_FULL_GRID") && atoi(getenv("KVIK_TEST_FULL_GRID")) > 0;
  char fs[32];
  const char *base = t_direct_io_base(fs);
  g_dio_fs = base != NULL;
  g_dir = t_mkdtemp(base);
  if (!g_dir)
    return -1;
  if (posix_memalign((void **)&g_src, 4096, BUF_SIZE) || posix_memalign((void **)&g_dst, 4096, BUF_SIZE))
    return -1;
  for (int i = 0; i < NTHREADS; i++)
    if (kvik_pool_create(&g_pools[i], thread_counts[i]) != 0)
      return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  for (int i = 0; i < NTHREADS; i++)
    kvik_pool_destroy(g_pools[i]);
  free(g_src);
  free(g_dst);
  t_rmtree(g_dir);
  kvik_config_reload();
  return 0;
}

static void set_dio_overread(int r, int w, int overread) {
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)r), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)w), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD, (uint64_t)overread), 0);
}

static void set_dio(int r, int w) { set_dio_overread(r, w, 0); }

static void check_info(kvik_file *f, int dio_r, int dio_w, bool dio_fs, int readable,
                       int writable) {
  struct kvik_file_info info;
  memset(&info, 0x7f, sizeof info);
  info.sz = sizeof info;
  ASSERT_CODE(kvik_file_info(f, &info), 0);
  ASSERT_CODE(info.path, KVIK_PATH_POSIX);
  ASSERT_CODE(info.readable, readable);
  ASSERT_CODE(info.writable, writable);
  if (readable)
    ASSERT_CODE(info.direct_read, dio_r && dio_fs);
  if (writable)
    ASSERT_CODE(info.direct_write, dio_w && dio_fs);
  if (!memchr(info.reason, 0, sizeof info.reason) || !info.reason[0])
    fail_msg("%s", "kvik_file_info: reason is empty or not terminated");
}

static ssize_t do_write(const struct grid_case *c, kvik_file *f, const void *buf, size_t n,
                        uint64_t off) {
  if (c->api == SYNC)
    return kvik_file_write(f, buf, n, (int64_t)off);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = c->task, .pool = c->pool};
  kvik_future *fut = NULL;
  int rc = kvik_file_pwrite(f, buf, n, (int64_t)off, c->task || c->pool ? &o : NULL, &fut);
  if (rc != 0)
    return rc;
  return kvik_future_wait(fut);
}

static ssize_t do_read(const struct grid_case *c, kvik_file *f, void *buf, size_t n,
                       uint64_t off) {
  if (c->api == SYNC)
    return kvik_file_read(f, buf, n, (int64_t)off);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = c->task, .pool = c->pool};
  kvik_future *fut = NULL;
  int rc = kvik_file_pread(f, buf, n, (int64_t)off, c->task || c->pool ? &o : NULL, &fut);
  if (rc != 0)
    return rc;
  return kvik_future_wait(fut);
}

static void run_case(const struct grid_case *c, const char *path) {
  uint64_t seed = ++g_seed;
  T_CONTEXT("%s size=%zu off=%llu align=%zu dio_read=%d dio_write=%d overread=%d threads=%u "
            "task=%zu bounce=%zu seed=%llu",
            c->api == SYNC ? "sync" : "future", c->size, (unsigned long long)c->off, c->align,
            c->dio_r, c->dio_w, c->overread, c->threads, c->task, c->bounce,
            (unsigned long long)seed);
  set_dio_overread(c->dio_r, c->dio_w, c->overread);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_BOUNCE_BUFFER_SIZE, c->bounce ? c->bounce : 16 * MiB),
              0);
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_DEFAULT), 0);
  check_info(f, c->dio_r, c->dio_w, g_dio_fs, 1, 1);
  uint64_t end = c->size ? c->off + c->size : 0; /* writing 0 bytes does not extend */

  uint8_t *src = g_src + c->align;
  t_pat_fill(src, c->size, c->off, seed);
  ASSERT_CODE(do_write(c, f, src, c->size, c->off), c->size);
  ASSERT_CODE(kvik_file_size(f), end);

  /* Whole range back, into a poisoned buffer. */
  uint8_t *dst = g_dst + c->align;
  memset(g_dst, POISON, c->align + c->size + GUARD);
  ASSERT_CODE(do_read(c, f, dst, c->size, c->off), c->size);
  ASSERT_PATTERN(dst, c->size, c->off, seed, "read back");
  ASSERT_FILLED(g_dst, c->align, POISON, "bytes before the read buffer");
  ASSERT_FILLED(dst + c->size, GUARD, POISON, "bytes after the read range");

  /* A window across end of file: the short count, the right bytes, nothing written past the
   * requested range. */
  size_t win = c->size < EOF_WINDOW ? c->size : EOF_WINDOW;
  uint64_t woff = c->off + c->size - win;
  memset(g_dst, POISON, c->align + win + EOF_EXTRA + GUARD);
  ASSERT_CODE(do_read(c, f, dst, win + EOF_EXTRA, woff), c->size ? win : 0);
  ASSERT_PATTERN(dst, c->size ? win : 0, woff, seed, "read across end of file");
  ASSERT_FILLED(dst + win + EOF_EXTRA, GUARD, POISON, "bytes after the end-of-file read");

  /* Starting at or past the end: 0. */
  ASSERT_CODE(do_read(c, f, dst, 100, end), 0);
  ASSERT_CODE(do_read(c, f, dst, 4096, end + 4096 + 1), 0);
  ASSERT_CODE(kvik_file_close(f), 0);

  /* What is on disk, through plain system calls. */
  ASSERT_CODE(t_file_size(path), end);
  ASSERT_CODE(t_read_file(path, g_dst, end, 0), end);
  if (c->size) {
    ASSERT_FILLED(g_dst, c->off, 0, "on disk before the write offset");
    ASSERT_PATTERN(g_dst + c->off, c->size, c->off, seed, "on disk");
  }
  t_context[0] = 0;
}

static int cases_run;

static void sync_grid(void **state) {
  (void)state;
  char *path = t_join(g_dir, "sync-grid");
  cases_run = 0;
  for (int d = 0; d < 4; d++)
    for (int si = 0; si < NSIZES; si++)
      for (int oi = 0; oi < NOFFS; oi++)
        for (int ai = 0; ai < 2; ai++) {
          if (sizes[si] == MAX_SIZE && !full_grid && !(oi == (d * 2 + 1) % NOFFS && ai == d % 2))
            continue;
          struct grid_case c = {.api = SYNC, .size = sizes[si], .off = offsets[oi],
                                .align = aligns[ai], .dio_r = d & 1, .dio_w = d >> 1};
          run_case(&c, path);
          cases_run++;
        }
  printf("# sync grid: %d cases%s\n", cases_run, full_grid ? " (full)" : "");
  free(path);
}

static void parallel_grid(int ti) {
  char name[64];
  snprintf(name, sizeof name, "parallel-grid-%u", thread_counts[ti]);
  char *path = t_join(g_dir, name);
  ASSERT_CODE(kvik_pool_nthreads(g_pools[ti]), (int)thread_counts[ti]);
  cases_run = 0;
  for (int k = 0; k < NTASKS; k++)
    for (int si = 0; si < NSIZES; si++) {
      size_t size = sizes[si], task = task_sizes[k];
      if (!full_grid && size / task > 6000)
        continue;
      for (int oi = 0; oi < NOFFS; oi++)
        for (int ai = 0; ai < 2; ai++)
          for (int d = 0; d < 4; d++) {
            if (!full_grid) {
              if (size == MAX_SIZE) {
                if (oi != (ti * 2 + k) % NOFFS || ai != ti % 2 || d != (ti + k) % 4)
                  continue;
              } else if (d != (oi + ai + ti) % 4) {
                continue;
              }
            }
            struct grid_case c = {.api = FUTURE, .size = size, .off = offsets[oi],
                                  .align = aligns[ai], .dio_r = d & 1, .dio_w = d >> 1,
                                  .pool = g_pools[ti], .threads = thread_counts[ti],
                                  .task = task};
            run_case(&c, path);
            cases_run++;
          }
    }
  printf("# parallel grid, %u threads: %d cases%s\n", thread_counts[ti], cases_run,
         full_grid ? " (full)" : "");
  free(path);
}

/* Bounce buffers of kvikio's test sizes, 1, 10, 100 and 1000 bytes (kvik rounds each up to a
 * page), and one page plus one byte (two pages): direct reads and writes of unaligned buffers
 * go through them, and overread takes the unaligned head and tail through them. Sync and
 * futures (4 threads, tasks of 4096 and 1 MiB), sizes 4097 and 1 MiB - 1 at every offset and
 * alignment, 4 MiB + 13 (a thousand one-page pieces) once per bounce size and API. */
static void bounce_grid(void **state) {
  (void)state;
  static const size_t bounces[] = {1, 10, 100, 1000, 4097};
  static const size_t bsizes[] = {4097, 1 * MiB - 1, 4 * MiB + 13};
  char *path = t_join(g_dir, "bounce-grid");
  cases_run = 0;
  for (size_t b = 0; b < sizeof bounces / sizeof bounces[0]; b++)
    for (int api = 0; api < 2; api++)
      for (size_t si = 0; si < sizeof bsizes / sizeof bsizes[0]; si++)
        for (int oi = 0; oi < NOFFS; oi++)
          for (int ai = 0; ai < 2; ai++) {
            bool big = bsizes[si] > 1 * MiB;
            if (big && (oi != (int)(b + (size_t)api) % NOFFS || ai != api) && !full_grid)
              continue;
            /* (direct read, direct write, overread): (1,1,0), (1,0,1), (0,1,0), rotating. */
            int d = (oi + ai + (int)b) % 3;
            struct grid_case c = {.api = api ? FUTURE : SYNC,
                                  .size = bsizes[si],
                                  .off = offsets[oi],
                                  .align = aligns[ai],
                                  .dio_r = d != 2,
                                  .dio_w = d != 1,
                                  .overread = d == 1,
                                  .bounce = bounces[b]};
            if (api) {
              c.pool = g_pools[2];
              c.threads = thread_counts[2];
              c.task = si % 2 ? 4096 : 1 * MiB;
            }
            run_case(&c, path);
            cases_run++;
          }
  printf("# bounce grid: %d cases%s\n", cases_run, full_grid ? " (full)" : "");
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_BOUNCE_BUFFER_SIZE, 16 * MiB), 0);
  set_dio(0, 0);
  free(path);
}

static void parallel_t1(void **state) { (void)state; parallel_grid(0); }
static void parallel_t3(void **state) { (void)state; parallel_grid(1); }
static void parallel_t4(void **state) { (void)state; parallel_grid(2); }
static void parallel_t16(void **state) { (void)state; parallel_grid(3); }

/* The default pool and default task size (opts NULL) as most callers use them. */
static void misc_parallel_defaults(void **state) {
  (void)state;
  char *path = t_join(g_dir, "defaults");
  for (int d = 0; d < 4; d++)
    for (int si = 0; si < NSIZES - 1; si++) {
      struct grid_case c = {.api = FUTURE, .size = sizes[si], .off = offsets[(si + d) % NOFFS],
                            .align = aligns[si % 2], .dio_r = d & 1, .dio_w = d >> 1};
      run_case(&c, path);
    }
  free(path);
}

/* KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD: the unaligned head and tail of a direct read are read
 * as whole pages through O_DIRECT. Sizes up to 4 MiB + 13, every offset and alignment, sync
 * and futures. */
static void misc_overread(void **state) {
  (void)state;
  char *path = t_join(g_dir, "overread");
  int n = 0;
  for (int api = 0; api < 2; api++)
    for (int si = 0; si < NSIZES - 1; si++)
      for (int oi = 0; oi < NOFFS; oi++)
        for (int ai = 0; ai < 2; ai++) {
          struct grid_case c = {.api = api ? FUTURE : SYNC, .size = sizes[si],
                                .off = offsets[oi], .align = aligns[ai], .dio_r = 1,
                                .dio_w = (oi + ai) % 2, .overread = 1,
                                .task = si % 2 ? 4096 : 1 * MiB, .pool = g_pools[2],
                                .threads = 4};
          run_case(&c, path);
          n++;
        }
  printf("# overread: %d cases\n", n);
  set_dio(0, 0);
  free(path);
}

/* ---- chunks written in random order ------------------------------------------------------ */

static uint64_t lcg(uint64_t *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return *s >> 33;
}

static void misc_random_order_writes(void **state) {
  (void)state;
  char *path = t_join(g_dir, "random-order");
  const size_t total = 8 * MiB + 333;
  enum { MAXCHUNKS = 256 };
  uint64_t starts[MAXCHUNKS];
  size_t lens[MAXCHUNKS];
  for (int mode = 0; mode < 4; mode++) {
    enum api api = mode & 1 ? FUTURE : SYNC;
    int dio = mode >> 1;
    uint64_t rng = 12345 + (uint64_t)mode, seed = ++g_seed;
    /* Cut [0, total) into chunks of 1 byte .. ~600 KiB, then shuffle them. */
    int n = 0;
    for (uint64_t at = 0; at < total; n++) {
      size_t len = 1 + (size_t)(lcg(&rng) % (600 * KiB));
      if (n == MAXCHUNKS - 1 || at + len > total)
        len = total - at;
      starts[n] = at;
      lens[n] = len;
      at += len;
    }
    for (int i = n - 1; i > 0; i--) {
      int j = (int)(lcg(&rng) % (uint64_t)(i + 1));
      uint64_t s = starts[i];
      size_t l = lens[i];
      starts[i] = starts[j], lens[i] = lens[j];
      starts[j] = s, lens[j] = l;
    }
    T_CONTEXT("random-order writes, %s, dio=%d, %d chunks", api == SYNC ? "sync" : "futures",
              dio, n);
    set_dio(dio, dio);
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_DEFAULT), 0);
    t_pat_fill(g_src, total, 0, seed);
    if (api == SYNC) {
      for (int i = 0; i < n; i++)
        ASSERT_CODE(kvik_file_write(f, g_src + starts[i], lens[i], (int64_t)starts[i]), lens[i]);
    } else {
      /* All in flight at once, waited in reverse order. */
      kvik_future *futs[MAXCHUNKS];
      struct kvik_io_opts o = {.sz = sizeof o, .task_size = 64 * KiB, .pool = g_pools[2]};
      for (int i = 0; i < n; i++)
        ASSERT_CODE(kvik_file_pwrite(f, g_src + starts[i], lens[i], (int64_t)starts[i], &o,
                                     &futs[i]),
                    0);
      for (int i = n - 1; i >= 0; i--)
        ASSERT_CODE(kvik_future_wait(futs[i]), lens[i]);
    }
    ASSERT_CODE(kvik_file_size(f), total);
    memset(g_dst, POISON, total);
    struct grid_case rc = {.api = FUTURE, .task = 1 * MiB, .pool = g_pools[1]};
    ASSERT_CODE(do_read(&rc, f, g_dst, total, 0), total);
    ASSERT_PATTERN(g_dst, total, 0, seed, "read after random-order writes");
    ASSERT_CODE(kvik_file_close(f), 0);
    ASSERT_FILE_PATTERN(path, total, seed);
  }
  t_context[0] = 0;
  free(path);
}

/* ---- concurrent readers ------------------------------------------------------------------ */

struct reader {
  kvik_file *f;
  int id;
  uint64_t seed;
  size_t file_size;
  int failures;
  char why[512];
};

static void *reader_main(void *arg) {
  struct reader *r = arg;
  size_t cap = 3 * MiB + 4096;
  uint8_t *buf = NULL;
  if (posix_memalign((void **)&buf, 4096, cap)) {
    r->failures++;
    return NULL;
  }
  uint64_t rng = 99 + (uint64_t)r->id;
  for (int i = 0; i < 24; i++) {
    size_t n = (size_t)(lcg(&rng) % (3 * MiB)) + 1;
    uint64_t off = lcg(&rng) % (r->file_size + 1000);
    size_t misalign = (size_t)(lcg(&rng) % 2) * 984;
    ssize_t got;
    if (i % 2) {
      got = kvik_file_read(r->f, buf + misalign, n, (int64_t)off);
    } else {
      struct kvik_io_opts o = {.sz = sizeof o, .task_size = 256 * KiB};
      kvik_future *fut = NULL;
      int rc = kvik_file_pread(r->f, buf + misalign, n, (int64_t)off, &o, &fut);
      got = rc ? rc : kvik_future_wait(fut);
    }
    size_t want = off >= r->file_size ? 0 : (n < r->file_size - off ? n : r->file_size - off);
    if (got != (ssize_t)want || t_pat_find_mismatch(buf + misalign, want, off, r->seed) >= 0) {
      if (!r->failures)
        snprintf(r->why, sizeof r->why,
                 "reader %d, %s of %zu at %llu (+%zu): returned %zd, expected %zu%s%s", r->id,
                 i % 2 ? "read" : "pread", n, (unsigned long long)off, misalign, got, want,
                 got < 0 ? ": " : "", got < 0 ? kvik_last_error() : "");
      r->failures++;
    }
  }
  free(buf);
  return NULL;
}

static void misc_concurrent_readers(void **state) {
  (void)state;
  char *path = t_join(g_dir, "concurrent");
  size_t n = 16 * MiB + 77;
  uint64_t seed = ++g_seed;
  t_write_pattern_file(path, n, seed);
  /* Two handles on the file, one with direct I/O and one buffered (the setting is read at
   * open), each read by its own thread; a third handle shared by two more threads. */
  kvik_file *h_direct = NULL, *h_buffered = NULL, *h_shared = NULL;
  set_dio(1, 1);
  ASSERT_CODE(kvik_file_open(&h_direct, path, "r", 0, KVIK_COMPAT_DEFAULT), 0);
  ASSERT_CODE(kvik_file_open(&h_shared, path, "r", 0, KVIK_COMPAT_DEFAULT), 0);
  set_dio(0, 0);
  ASSERT_CODE(kvik_file_open(&h_buffered, path, "r", 0, KVIK_COMPAT_DEFAULT), 0);
  enum { R = 4 };
  kvik_file *handles[R] = {h_direct, h_buffered, h_shared, h_shared};
  struct reader rd[R];
  pthread_t th[R];
  for (int i = 0; i < R; i++) {
    rd[i] = (struct reader){.f = handles[i], .id = i, .seed = seed, .file_size = n};
    assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
  }
  for (int i = 0; i < R; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  for (int i = 0; i < R; i++)
    if (rd[i].failures)
      fail_msg("%d failures; first: %s", rd[i].failures, rd[i].why);
  ASSERT_CODE(kvik_file_close(h_direct), 0);
  ASSERT_CODE(kvik_file_close(h_buffered), 0);
  ASSERT_CODE(kvik_file_close(h_shared), 0);
  ASSERT_FILE_PATTERN(path, n, seed);
  free(path);
}

/* ---- end of file, sizes ------------------------------------------------------------------ */

static void misc_eof_semantics(void **state) {
  (void)state;
  char *path = t_join(g_dir, "eof");
  const size_t n = 10000;
  uint64_t seed = ++g_seed;
  t_write_pattern_file(path, n, seed);
  static const struct {
    uint64_t off;
    size_t size, want;
  } rows[] = {{0, 20000, 10000}, {9000, 5000, 1000}, {9999, 1, 1},     {10000, 1, 0},
              {10000, 0, 0},     {20000, 100, 0},    {4096, 8192, 5904}, {0, 10000, 10000},
              {8192, 4096, 1808}, {8192, 1808, 1808}, {1ULL << 40, 4096, 0}, {0, 0, 0}};
  static const size_t tasks[] = {3, 4096, 1 * MiB};
  for (int mode = 0; mode < 6; mode++) {
    int dio = mode % 3 != 0, overread = mode % 3 == 2; /* off, direct, direct + overread */
    enum api api = mode >= 3 ? FUTURE : SYNC;
    set_dio_overread(dio, dio, overread);
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_DEFAULT), 0);
    check_info(f, dio, dio, g_dio_fs, 1, 0);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
      for (size_t t = 0; t < (api == SYNC ? 1 : sizeof tasks / sizeof tasks[0]); t++)
        for (int ai = 0; ai < 2; ai++) {
          T_CONTEXT("eof: %s dio=%d overread=%d off=%llu size=%zu task=%zu align=%zu",
                    api == SYNC ? "sync" : "future", dio, overread, (unsigned long long)rows[i].off,
                    rows[i].size, tasks[t], aligns[ai]);
          struct grid_case c = {.api = api, .task = tasks[t], .pool = g_pools[2]};
          memset(g_dst, POISON, aligns[ai] + rows[i].size + GUARD);
          ASSERT_CODE(do_read(&c, f, g_dst + aligns[ai], rows[i].size, rows[i].off),
                      rows[i].want);
          ASSERT_PATTERN(g_dst + aligns[ai], rows[i].want, rows[i].off, seed, "eof read");
          ASSERT_FILLED(g_dst + aligns[ai] + rows[i].size, GUARD, POISON, "after the request");
        }
    ASSERT_CODE(kvik_file_size(f), n);
    ASSERT_CODE(kvik_file_close(f), 0);
  }
  t_context[0] = 0;
  ASSERT_FILE_PATTERN(path, n, seed);
  free(path);
}

static void misc_size_tracks_writes(void **state) {
  (void)state;
  char *path = t_join(g_dir, "sizes");
  uint8_t buf[8192];
  memset(buf, 0x11, sizeof buf);
  for (int dio = 0; dio < 2; dio++) {
    set_dio(dio, dio);
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_DEFAULT), 0);
    ASSERT_CODE(kvik_file_size(f), 0);
    ASSERT_CODE(kvik_file_write(f, buf, 100, 0), 100);
    ASSERT_CODE(kvik_file_size(f), 100);
    ASSERT_CODE(kvik_file_write(f, buf, 10, 5000), 10);
    ASSERT_CODE(kvik_file_size(f), 5010);
    ASSERT_CODE(kvik_file_write(f, buf, 50, 20), 50); /* inside: no change */
    ASSERT_CODE(kvik_file_size(f), 5010);
    ASSERT_CODE(kvik_file_write(f, buf, 0, 100000), 0); /* empty: no change */
    ASSERT_CODE(kvik_file_size(f), 5010);
    kvik_future *fut = NULL;
    ASSERT_CODE(kvik_file_pwrite(f, buf, 8192, 1 * MiB, NULL, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), 8192);
    ASSERT_CODE(kvik_file_size(f), 1 * MiB + 8192);
    ASSERT_CODE(kvik_file_pwrite(f, buf, 1, 4 * MiB - 1, NULL, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), 1);
    ASSERT_CODE(kvik_file_size(f), 4 * MiB);
    ASSERT_CODE(kvik_file_close(f), 0);
    ASSERT_CODE(t_file_size(path), 4 * MiB);
    /* "r+" keeps the content and size; "w" truncates. */
    ASSERT_CODE(kvik_file_open(&f, path, "r+", 0644, KVIK_COMPAT_DEFAULT), 0);
    ASSERT_CODE(kvik_file_size(f), 4 * MiB);
    ASSERT_CODE(kvik_file_write(f, buf, 3, 4 * MiB), 3);
    ASSERT_CODE(kvik_file_size(f), 4 * MiB + 3);
    ASSERT_CODE(kvik_file_close(f), 0);
    ASSERT_CODE(t_file_size(path), 4 * MiB + 3);
    ASSERT_CODE(kvik_file_open(&f, path, "w", 0644, KVIK_COMPAT_DEFAULT), 0);
    ASSERT_CODE(kvik_file_size(f), 0);
    ASSERT_CODE(kvik_file_close(f), 0);
    ASSERT_CODE(t_file_size(path), 0);
  }
  free(path);
}

/* ---- pools per block device, page cache, path facts -------------------------------------- */

/* KVIKIO_THREAD_POOL_PER_BLOCK_DEVICE on: files on a disk use that disk's pool, files on a
 * virtual filesystem the default pool. Which pool serves is not visible through the API; the
 * data and the codes are. */
static void misc_per_block_device_pools(void **state) {
  (void)state;
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE, 1), 0);
  char *path = t_join(g_dir, "per-device");
  for (int d = 0; d < 2; d++)
    for (int si = 4; si < NSIZES - 1; si++) {
      struct grid_case c = {.api = FUTURE, .size = sizes[si], .off = offsets[si % NOFFS],
                            .align = aligns[d], .dio_r = d, .dio_w = d};
      run_case(&c, path);
    }
  char *shm = t_mkdtemp("/dev/shm");
  if (shm) {
    char *p2 = t_join(shm, "per-device");
    struct grid_case c = {.api = FUTURE, .size = 4 * MiB + 13, .off = 1, .align = 984};
    bool saved = g_dio_fs;
    g_dio_fs = false;
    run_case(&c, p2);
    g_dio_fs = saved;
    free(p2);
    t_rmtree(shm);
  }
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE, 0), 0);
  free(path);
}

static void misc_drop_file_cache(void **state) {
  (void)state;
  char *path = t_join(g_dir, "drop-cache");
  uint64_t seed = ++g_seed;
  t_write_pattern_file(path, 3 * MiB + 1, seed);
  ASSERT_CODE(kvik_drop_file_cache(path), 0);
  ASSERT_FILE_PATTERN(path, 3 * MiB + 1, seed);
  char *missing = t_join(g_dir, "drop-cache-missing");
  ASSERT_CODE(kvik_drop_file_cache(missing), -ENOENT);
  ASSERT_CONTAINS(kvik_last_error(), missing);
  free(missing);
  free(path);
}

/* A block device is served like a regular file: its size, reads and writes at offsets, the
 * page cache dropped, the path described. A loop device over a file here; needs root. */
static void misc_block_device(void **state) {
  (void)state;
  if (geteuid() != 0)
    SKIP_BECAUSE("not root: cannot attach a loop device");
  int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0)
    SKIP_BECAUSE("/dev/loop-control: %s", strerror(errno));
  char *backing = t_join(g_dir, "loop-backing");
  size_t n = 2 * MiB;
  uint64_t seed = ++g_seed;
  t_write_pattern_file(backing, n, seed);
  int bfd = open(backing, O_RDWR | O_CLOEXEC);
  assert_true(bfd >= 0);
  int num = -1, lfd = -1;
  char dev[64] = "";
  /* A free device can be taken by someone else before LOOP_SET_FD: try a few. */
  for (int tries = 0; tries < 5 && lfd < 0; tries++) {
    num = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (num < 0)
      break;
    snprintf(dev, sizeof dev, "/dev/loop%d", num);
    lfd = open(dev, O_RDWR | O_CLOEXEC);
    if (lfd >= 0 && ioctl(lfd, LOOP_SET_FD, bfd) != 0) {
      close(lfd);
      lfd = -1;
    }
  }
  close(ctl);
  close(bfd);
  if (lfd < 0) {
    free(backing);
    SKIP_BECAUSE("cannot attach a loop device: %s", strerror(errno));
  }
  /* Detached when its last descriptor closes, so a failing assertion leaves nothing behind. */
  struct loop_info64 li = {.lo_flags = LO_FLAGS_AUTOCLEAR};
  ioctl(lfd, LOOP_SET_STATUS64, &li);
  printf("# misc_block_device: %s over %s\n", dev, backing);
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, dev, "r+", 0, KVIK_COMPAT_ON), 0);
  ASSERT_CODE(kvik_file_size(f), n);
  uint8_t *buf = t_alloc_aligned(n + 4096);
  ASSERT_CODE(kvik_file_read(f, buf + 1, n - 100, 100), n - 100);
  ASSERT_PATTERN(buf + 1, n - 100, 100, seed, "read from the block device");
  t_pat_fill(buf, 8192, 4096, seed + 1);
  ASSERT_CODE(kvik_file_write(f, buf, 8192, 4096), 8192);
  ASSERT_CODE(kvik_file_read(f, buf + 8192, 8192, 4096), 8192);
  ASSERT_PATTERN(buf + 8192, 8192, 4096, seed + 1, "written to the block device, read back");
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_CODE(kvik_drop_file_cache(dev), 0);
  struct kvik_path_info pi = {.sz = sizeof pi};
  ASSERT_CODE(kvik_path_info(dev, &pi), 0);
  ioctl(lfd, LOOP_CLR_FD, 0);
  close(lfd);
  free(buf);
  free(backing);
}

static void misc_path_info(void **state) {
  (void)state;
  struct kvik_path_info pi;
  memset(&pi, 0x7f, sizeof pi);
  pi.sz = sizeof pi;
  ASSERT_CODE(kvik_path_info(g_dir, &pi), 0);
  assert_non_null(memchr(pi.fs_type, 0, sizeof pi.fs_type));
  assert_non_null(memchr(pi.block_device, 0, sizeof pi.block_device));
  struct stat st;
  assert_int_equal(stat(g_dir, &st), 0);
  ASSERT_CODE(pi.dev_major, major(st.st_dev));
  ASSERT_CODE(pi.dev_minor, minor(st.st_dev));
  struct statfs sfs;
  assert_int_equal(statfs(g_dir, &sfs), 0);
  if (sfs.f_type == 0xEF53)
    assert_string_equal(pi.fs_type, "ext4");
  else if (sfs.f_type == 0x58465342)
    assert_string_equal(pi.fs_type, "xfs");
  else if (sfs.f_type == 0x01021994)
    assert_string_equal(pi.fs_type, "tmpfs");
  if (pi.block_device[0]) {
    /* A real disk: it is listed under /sys/class/block. */
    char sys[128];
    snprintf(sys, sizeof sys, "/sys/class/block/%s", pi.block_device);
    if (access(sys, F_OK) != 0)
      fail_msg("kvik_path_info(%s).block_device = \"%s\", but %s does not exist", g_dir,
               pi.block_device, sys);
  }
  printf("# %s: fs %s, device %u:%u \"%s\", O_DIRECT %d\n", g_dir, pi.fs_type, pi.dev_major,
         pi.dev_minor, pi.block_device, pi.direct_io);
  /* A file gives the same answer as its directory. */
  char *path = t_join(g_dir, "path-info");
  t_write_pattern_file(path, 10, 1);
  struct kvik_path_info pf = {.sz = sizeof pf};
  ASSERT_CODE(kvik_path_info(path, &pf), 0);
  assert_string_equal(pf.fs_type, pi.fs_type);
  assert_string_equal(pf.block_device, pi.block_device);
  ASSERT_CODE(pf.direct_io, pi.direct_io);
  char *missing = t_join(g_dir, "no-such-dir/x");
  ASSERT_CODE(kvik_path_info(missing, &pf), -ENOENT);
  ASSERT_CONTAINS(kvik_last_error(), missing);
  pf.sz = 0;
  ASSERT_CODE(kvik_path_info(path, &pf), KVIK_EINVAL);
  free(missing);
  free(path);
}

/* ---- tmpfs -------------------------------------------------------------------------------- */

static void misc_tmpfs_round_trip(void **state) {
  (void)state;
  struct statfs sfs;
  if (statfs("/dev/shm", &sfs) != 0)
    SKIP_BECAUSE("/dev/shm: %s", strerror(errno));
  if (sfs.f_type != 0x01021994 /* TMPFS_MAGIC */)
    SKIP_BECAUSE("/dev/shm is not a tmpfs here");
  struct kvik_path_info pi;
  memset(&pi, 0, sizeof pi);
  pi.sz = sizeof pi;
  ASSERT_CODE(kvik_path_info("/dev/shm", &pi), 0);
  assert_string_equal(pi.fs_type, "tmpfs");
  assert_string_equal(pi.block_device, "");
  printf("# /dev/shm is tmpfs; O_DIRECT %s there (kernels >= 6.6 allow it)\n",
         pi.direct_io ? "works" : "is refused");
  char *dir = t_mkdtemp("/dev/shm");
  assert_non_null(dir);
  char *path = t_join(dir, "tmpfs-file");
  static const size_t tsizes[] = {4097, 1 * MiB + 5};
  for (int dio = 0; dio < 2; dio++)
    for (size_t s = 0; s < 2; s++)
      for (int oi = 1; oi < 4; oi += 2)
        for (int api = 0; api < 2; api++) {
          set_dio(dio, dio);
          kvik_file *f = NULL;
          ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_DEFAULT), 0);
          check_info(f, dio, dio, pi.direct_io != 0, 1, 1);
          ASSERT_CODE(kvik_file_close(f), 0);
          struct grid_case c = {.api = api ? FUTURE : SYNC, .size = tsizes[s],
                                .off = offsets[oi], .align = 984, .dio_r = dio, .dio_w = dio,
                                .task = 64 * KiB, .pool = g_pools[2]};
          bool saved = g_dio_fs;
          g_dio_fs = pi.direct_io != 0;
          run_case(&c, path);
          g_dio_fs = saved;
        }
  free(path);
  t_rmtree(dir);
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sync_grid),
      cmocka_unit_test(parallel_t1),
      cmocka_unit_test(parallel_t3),
      cmocka_unit_test(parallel_t4),
      cmocka_unit_test(parallel_t16),
      cmocka_unit_test(bounce_grid),
      cmocka_unit_test(misc_parallel_defaults),
      cmocka_unit_test(misc_overread),
      cmocka_unit_test(misc_random_order_writes),
      cmocka_unit_test(misc_concurrent_readers),
      cmocka_unit_test(misc_eof_semantics),
      cmocka_unit_test(misc_size_tracks_writes),
      cmocka_unit_test(misc_tmpfs_round_trip),
      cmocka_unit_test(misc_per_block_device_pools),
      cmocka_unit_test(misc_drop_file_cache),
      cmocka_unit_test(misc_path_info),
      cmocka_unit_test(misc_block_device),
  };
  return cmocka_run_group_tests_name("io_grid", tests, group_setup, group_teardown);
}
