/* Device memory I/O without GDS: kvik_file_read/write and kvik_file_pread/pwrite with device,
 * stream-ordered pool and managed memory, through pinned bounce buffers.
 *
 * The same binary runs against kvik's fake libcuda.so.1 (tests/fake, CI: LD_LIBRARY_PATH puts it
 * first) and, with KVIK_TEST_REAL_CUDA=1, against whatever libcuda.so.1 the system has (the GPU
 * machine, tests/gpu/run.sh). Against the real driver the fake-only parts (failure injection,
 * the fake's object counters) skip with a printed reason, and so do the two-GPU cases on a
 * one-GPU machine. Without a usable driver in real mode the whole binary skips (exit 77).
 *
 * Grid: sizes {0, 1, 4095, 4096, 4097, 1 MiB - 1, 4 MiB + 13, 64 MiB + 7}, file offsets
 * {0, 1, 4095, 4096, 8601*8}, threads {1, 3, 4, 16}, task sizes {199, 4096, 1 MiB, 4 MiB},
 * direct I/O read/write on and off (4 combinations), bounce buffer sizes {1, 10, 100, 1000,
 * 4096, 1 MiB + 1 page, 16 MiB} (the first four are kvikio's own test sizes; kvik rounds each up
 * to a page), KVIKIO_GDS_THRESHOLD {0, 16 KiB, 1 MiB}, device buffer at its allocation's start and
 * +984 bytes. The full cross product (about 300,000 cases) is far too slow; it is pruned so that
 * every value of every dimension runs and the pairs that interact are covered:
 *  - sync (kvik_file_read/write; threads, task size and the GDS threshold do not apply): every
 *    size up to 4 MiB + 13 x every offset x the bounce sizes 4096, 1 MiB + 1 page and 16 MiB,
 *    plus one of kvikio's four rotating (140 cases), the direct-I/O combination and the
 *    alignment rotating with them; 64 MiB + 7 twice (bounce 16 MiB and 1 MiB + 1 page). A
 *    one-page bounce buffer is not run with 64 MiB: 16,384 one-page pieces test nothing that
 *    4 MiB + 13 (1,025 pieces) does not.
 *  - futures, one CTest entry per thread count (one pool each, reused): every task size x every
 *    size that splits into at most 1,100 tasks (task 199: sizes <= 4097, task 4096: <= 4 MiB + 13)
 *    x every offset. For each (threads, task, size), the five offsets rotate the bounce size,
 *    the GDS threshold and the direct-I/O combination, so each of those meets every size, task
 *    size and thread count. Plus, per thread count, 1 MiB - 1 with task 199 (5,270 tasks) once
 *    and 64 MiB + 7 once (task 1 MiB or 4 MiB, bounce 16 MiB or 1 MiB + 1 page, rotating).
 * KVIK_TEST_FULL_GRID=1 runs every offset and bounce size for every (size, task) instead of the
 * rotation (slow: minutes).
 *
 * Every case: writes the pattern of its file offsets from a device buffer, checks the file size,
 * reads it back into a poisoned device buffer and copies that to the host (the bytes, and that
 * nothing before or after the range changed), reads the same range into host memory through
 * kvik and compares the two, reads a window across end of file (short count, nothing written
 * past the data) and past it (0), closes, and checks the file on disk with plain pread. After
 * every kvik call the caller's current context is the one it had (and, with the fake, its
 * context stack has the same depth); after every case no bounce buffer is in use.
 */
#include "common.h"

#include "cuda_test.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NSIZES 8
#define NOFFS 5
#define NTHREADS 4
#define NTASKS 4
#define NBOUNCE 7
#define NBOUNCE_KVIKIO 4 /* bounce_sizes[0..3]: below a page, rounded up to one */
#define NGDS 3
static const size_t sizes[NSIZES] = {0,    1,           4095,         4096,
                                     4097, 1 * MiB - 1, 4 * MiB + 13, 64 * MiB + 7};
static const uint64_t offsets[NOFFS] = {0, 1, 4095, 4096, 8601 * 8};
static const unsigned thread_counts[NTHREADS] = {1, 3, 4, 16};
static const size_t task_sizes[NTASKS] = {199, 4096, 1 * MiB, 4 * MiB};
static const size_t bounce_sizes[NBOUNCE] = {1, 10, 100, 1000, 4096, 1 * MiB + 4096, 16 * MiB};
static const size_t gds_thresholds[NGDS] = {0, 16 * KiB, 1 * MiB};
static const size_t aligns[2] = {0, 984};

#define GUARD 256
#define POISON 0xA5
#define EOF_WINDOW 8192
#define EOF_EXTRA (4096 + 123)
#define MAX_SIZE (64 * MiB + 7)
#define MAX_TASKS 1100
/* Holds the largest case plus its alignment, end-of-file window and guard; the host buffers
 * also hold the whole file (offset + size) for the check on disk. */
#define BUF_SIZE (MAX_SIZE + 8601 * 8 + 4096 + EOF_WINDOW + EOF_EXTRA + GUARD)

/* ---- the driver, as the test uses it --------------------------------------------------- */

static struct kvik__cuda_api cu; /* the test's own table, from the same libcuda.so.1 */
static struct fake_cuda fc;
static bool g_fake; /* libcuda.so.1 is kvik's fake: injection and counters work */
static int g_ndev;
static CUcontext ctx0, ctx1; /* primary contexts (ctx1 NULL with one device) */
static long g_depth;         /* the main thread's context-stack depth (fake only) */
static CUcontext g_created;  /* a created (non-primary) context, kept to the end */

static bool full_grid;
static char *g_dir;
static uint8_t *g_src, *g_dst, *g_host; /* host, page-aligned, BUF_SIZE each */
static uint64_t g_seed;
static kvik_pool *g_pools[NTHREADS];

/* A device-side buffer: cuMemAlloc, pool (cuMemAllocAsync) or managed memory. */
struct dbuf {
  CUdeviceptr d;
  size_t size;
  CUcontext ctx; /* pushed around the test's own copies */
  CUstream s;    /* pool memory: the stream it was allocated on */
  const char *kind;
};
static struct dbuf g_dsrc, g_ddst; /* cuMemAlloc on device 0, BUF_SIZE each */

static void *dp(CUdeviceptr d) { return (void *)(uintptr_t)d; }

enum dkind { D_ALLOC, D_POOL, D_MANAGED };

/* Allocates a device-side buffer in ctx (pushed for the call). Fails the test on error. */
static void dbuf_alloc(struct dbuf *b, enum dkind kind, size_t size, CUcontext ctx) {
  memset(b, 0, sizeof *b);
  b->size = size;
  b->ctx = ctx;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx));
  switch (kind) {
  case D_ALLOC:
    b->kind = "cuMemAlloc";
    CT_CU(cu.cuMemAlloc_v2(&b->d, size));
    break;
  case D_POOL:
    b->kind = "cuMemAllocAsync";
    CT_CU(cu.cuStreamCreate(&b->s, CU_STREAM_NON_BLOCKING));
    CT_CU(cu.cuMemAllocAsync(&b->d, size, b->s));
    CT_CU(cu.cuStreamSynchronize(b->s));
    break;
  case D_MANAGED:
    b->kind = "cuMemAllocManaged";
    CT_CU(cu.cuMemAllocManaged(&b->d, size, CU_MEM_ATTACH_GLOBAL));
    break;
  }
  CUcontext popped;
  CT_CU(cu.cuCtxPopCurrent_v2(&popped));
}

static void dbuf_free(struct dbuf *b) {
  if (!b->d)
    return;
  CUcontext popped;
  cu.cuCtxPushCurrent_v2(b->ctx);
  if (b->s) {
    cu.cuMemFreeAsync(b->d, b->s);
    cu.cuStreamSynchronize(b->s);
    cu.cuStreamDestroy_v2(b->s);
  } else {
    cu.cuMemFree_v2(b->d);
  }
  cu.cuCtxPopCurrent_v2(&popped);
  b->d = 0;
}

/* Host <-> device copies and fills by the test itself, with the buffer's context pushed. */
static void h2d(const struct dbuf *b, size_t at, const void *src, size_t n) {
  if (!n)
    return;
  CUcontext popped;
  CT_CU(cu.cuCtxPushCurrent_v2(b->ctx));
  CT_CU(cu.cuMemcpyHtoD_v2(b->d + at, src, n));
  CT_CU(cu.cuCtxPopCurrent_v2(&popped));
}

static void d2h(void *dst, const struct dbuf *b, size_t at, size_t n) {
  if (!n)
    return;
  CUcontext popped;
  CT_CU(cu.cuCtxPushCurrent_v2(b->ctx));
  CT_CU(cu.cuMemcpyDtoH_v2(dst, b->d + at, n));
  CT_CU(cu.cuCtxPopCurrent_v2(&popped));
}

static void dfill(const struct dbuf *b, size_t at, uint8_t v, size_t n) {
  if (!n)
    return;
  if (cu.cuMemsetD8_v2) {
    CUcontext popped;
    CT_CU(cu.cuCtxPushCurrent_v2(b->ctx));
    CT_CU(cu.cuMemsetD8_v2(b->d + at, v, n));
    CT_CU(cu.cuCtxPopCurrent_v2(&popped));
  } else {
    memset(g_host, v, n);
    h2d(b, at, g_host, n);
  }
}

/* The caller's context after a kvik call: what it was (and, with the fake, the same stack). */
static void check_ctx(CUcontext want, long depth, const char *after) {
  CUcontext cur = (CUcontext)1;
  CT_CU(cu.cuCtxGetCurrent(&cur));
  if (cur != want)
    fail_msg("after %s: the current context is %p, the caller had %p (case: %s)", after,
             (void *)cur, (void *)want, t_context);
  if (g_fake && depth >= 0 && fc.live("ctx_depth") != depth)
    fail_msg("after %s: context stack depth %ld, the caller had %ld (case: %s)", after,
             fc.live("ctx_depth"), depth, t_context);
}

static void check_bounce_idle(const char *after) {
  struct kvik_bounce_stats st = {.sz = sizeof st};
  ASSERT_CODE(kvik_bounce_stats(&st), 0);
  if (st.in_use != 0)
    fail_msg("after %s: %llu bounce buffers still in use (case: %s)", after,
             (unsigned long long)st.in_use, t_context);
}

/* ---- one case ------------------------------------------------------------------------ */

enum api { SYNC, FUTURE };

struct dcase {
  enum api api;
  size_t size;
  uint64_t off;
  size_t align; /* bytes into the device buffers */
  int dio_r, dio_w;
  int overread; /* KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD */
  size_t bounce;
  size_t gds;
  kvik_pool *pool;
  unsigned threads;
  size_t task;
  const struct dbuf *src, *dst; /* NULL: g_dsrc, g_ddst */
};

static void set_cfg(const struct dcase *c) {
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)c->dio_r), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)c->dio_w), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD, (uint64_t)c->overread), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_BOUNCE_BUFFER_SIZE, c->bounce ? c->bounce : 16 * MiB),
              0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_GDS_THRESHOLD, c->gds), 0);
}

static ssize_t do_write(const struct dcase *c, kvik_file *f, const void *buf, size_t n,
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

static ssize_t do_read(const struct dcase *c, kvik_file *f, void *buf, size_t n, uint64_t off) {
  if (c->api == SYNC)
    return kvik_file_read(f, buf, n, (int64_t)off);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = c->task, .pool = c->pool};
  kvik_future *fut = NULL;
  int rc = kvik_file_pread(f, buf, n, (int64_t)off, c->task || c->pool ? &o : NULL, &fut);
  if (rc != 0)
    return rc;
  return kvik_future_wait(fut);
}

static void run_case(const struct dcase *c, const char *path) {
  const struct dbuf *src = c->src ? c->src : &g_dsrc, *dst = c->dst ? c->dst : &g_ddst;
  uint64_t seed = ++g_seed;
  T_CONTEXT("%s %s size=%zu off=%llu align=%zu dio_read=%d dio_write=%d overread=%d bounce=%zu "
            "gds=%zu threads=%u task=%zu seed=%llu",
            src->kind, c->api == SYNC ? "sync" : "future", c->size, (unsigned long long)c->off,
            c->align, c->dio_r, c->dio_w, c->overread, c->bounce, c->gds, c->threads, c->task,
            (unsigned long long)seed);
  set_cfg(c);
  CUcontext cur;
  CT_CU(cu.cuCtxGetCurrent(&cur));
  long depth = g_fake ? fc.live("ctx_depth") : -1;

  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_ON), 0);
  uint64_t end = c->size ? c->off + c->size : 0; /* writing 0 bytes does not extend */
  uint8_t *dev_view = g_dst;                     /* the device buffer, copied to the host */

  t_pat_fill(g_src, c->size, c->off, seed);
  h2d(src, c->align, g_src, c->size);
  ASSERT_CODE(do_write(c, f, dp(src->d + c->align), c->size, c->off), c->size);
  check_ctx(cur, depth, "the write from device memory");
  ASSERT_CODE(kvik_file_size(f), end);

  /* Whole range back into a poisoned device buffer. */
  dfill(dst, 0, POISON, c->align + c->size + GUARD);
  ASSERT_CODE(do_read(c, f, dp(dst->d + c->align), c->size, c->off), c->size);
  check_ctx(cur, depth, "the read into device memory");
  d2h(dev_view, dst, 0, c->align + c->size + GUARD);
  ASSERT_PATTERN(dev_view + c->align, c->size, c->off, seed, "device read back");
  ASSERT_FILLED(dev_view, c->align, POISON, "device bytes before the read buffer");
  ASSERT_FILLED(dev_view + c->align + c->size, GUARD, POISON, "device bytes after the read range");

  /* The same range into host memory through the same call: the same bytes. */
  memset(g_host, 0, c->size);
  ASSERT_CODE(do_read(c, f, g_host, c->size, c->off), c->size);
  if (c->size && memcmp(g_host, dev_view + c->align, c->size) != 0)
    fail_msg("host-memory read differs from the device-memory read (case: %s)", t_context);

  /* A window across end of file: the short count, the bytes, nothing written after them. */
  size_t win = c->size < EOF_WINDOW ? c->size : EOF_WINDOW;
  uint64_t woff = c->off + c->size - win;
  dfill(dst, 0, POISON, c->align + win + EOF_EXTRA + GUARD);
  ASSERT_CODE(do_read(c, f, dp(dst->d + c->align), win + EOF_EXTRA, woff), c->size ? win : 0);
  check_ctx(cur, depth, "the read across end of file");
  d2h(dev_view, dst, 0, c->align + win + EOF_EXTRA + GUARD);
  ASSERT_PATTERN(dev_view + c->align, c->size ? win : 0, woff, seed, "read across end of file");
  ASSERT_FILLED(dev_view + c->align + win, EOF_EXTRA + GUARD, POISON,
                "device bytes after the end-of-file data");

  /* Starting at or past the end: 0. */
  ASSERT_CODE(do_read(c, f, dp(dst->d + c->align), 100, end), 0);
  ASSERT_CODE(do_read(c, f, dp(dst->d + c->align), 4096, end + 4096 + 1), 0);
  check_ctx(cur, depth, "the reads past end of file");
  ASSERT_CODE(kvik_file_close(f), 0);

  /* What is on disk, through plain system calls. */
  ASSERT_CODE(t_file_size(path), end);
  ASSERT_CODE(t_read_file(path, g_host, end, 0), end);
  if (c->size) {
    ASSERT_FILLED(g_host, c->off, 0, "on disk before the write offset");
    ASSERT_PATTERN(g_host + c->off, c->size, c->off, seed, "on disk");
  }
  check_bounce_idle("the case");
  t_context[0] = 0;
}

/* ---- setup --------------------------------------------------------------------------- */

static int group_setup(void **state) {
  (void)state;
  t_clear_kvikio_env();
  if (kvik_config_reload() != 0)
    return -1;
  full_grid = getenv("KVIK_TEST_FULL_GRID") && atoi(getenv("KVIK_TEST_FULL_GRID")) > 0;
  if (cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS ||
      cu.cuCtxSetCurrent(ctx0) != CUDA_SUCCESS)
    return -1;
  if (g_ndev > 1 && cu.cuDevicePrimaryCtxRetain(&ctx1, 1) != CUDA_SUCCESS)
    return -1;
  g_depth = g_fake ? fc.live("ctx_depth") : -1;
  char fs[32];
  g_dir = t_mkdtemp(t_direct_io_base(fs));
  if (!g_dir)
    return -1;
  if (posix_memalign((void **)&g_src, 4096, BUF_SIZE) ||
      posix_memalign((void **)&g_dst, 4096, BUF_SIZE) ||
      posix_memalign((void **)&g_host, 4096, BUF_SIZE))
    return -1;
  if (cu.cuMemAlloc_v2(&g_dsrc.d, BUF_SIZE) != CUDA_SUCCESS ||
      cu.cuMemAlloc_v2(&g_ddst.d, BUF_SIZE) != CUDA_SUCCESS)
    return -1;
  g_dsrc.size = g_ddst.size = BUF_SIZE;
  g_dsrc.ctx = g_ddst.ctx = ctx0;
  g_dsrc.kind = g_ddst.kind = "cuMemAlloc";
  for (int i = 0; i < NTHREADS; i++)
    if (kvik_pool_create(&g_pools[i], thread_counts[i]) != 0)
      return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  for (int i = 0; i < NTHREADS; i++)
    kvik_pool_destroy(g_pools[i]);
  /* No driver call from an exiting thread in any test (the fake names each on stderr). */
  long exit_calls = g_fake ? fc.live("exit_calls") : 0;
  if (exit_calls != 0) {
    print_error("%ld driver calls were made by exiting threads (thread-exit destructors)\n",
                exit_calls);
    return -1;
  }
  dbuf_free(&g_dsrc);
  dbuf_free(&g_ddst);
  if (g_created && cu.cuCtxDestroy_v2)
    cu.cuCtxDestroy_v2(g_created);
  free(g_src);
  free(g_dst);
  free(g_host);
  t_rmtree(g_dir);
  kvik_config_reload();
  return 0;
}

/* ---- the grid ------------------------------------------------------------------------ */

static void sync_grid(void **state) {
  (void)state;
  char *path = t_join(g_dir, "sync-grid");
  int n = 0;
  for (int si = 0; si < NSIZES; si++)
    for (int oi = 0; oi < NOFFS; oi++)
      for (int bi = 0; bi < NBOUNCE; bi++) {
        int d = (si + oi + bi) % 4;
        if (sizes[si] == MAX_SIZE && (bounce_sizes[bi] <= 4096 || oi != (bi * 2 + 1) % NOFFS) &&
            !full_grid)
          continue;
        if (bi < NBOUNCE_KVIKIO && bi != (si + oi) % NBOUNCE_KVIKIO && !full_grid)
          continue;
        struct dcase c = {.api = SYNC,
                          .size = sizes[si],
                          .off = offsets[oi],
                          .align = aligns[(si + bi) % 2],
                          .dio_r = d & 1,
                          .dio_w = d >> 1,
                          .bounce = bounce_sizes[bi],
                          .gds = gds_thresholds[1]};
        run_case(&c, path);
        n++;
      }
  printf("# device sync grid: %d cases%s\n", n, full_grid ? " (full)" : "");
  free(path);
}

static void parallel_grid(int ti) {
  char name[64];
  snprintf(name, sizeof name, "parallel-grid-%u", thread_counts[ti]);
  char *path = t_join(g_dir, name);
  int n = 0;
  for (int k = 0; k < NTASKS; k++)
    for (int si = 0; si < NSIZES; si++) {
      size_t size = sizes[si], task = task_sizes[k];
      bool big = size == MAX_SIZE;
      bool many = size / task > MAX_TASKS;
      /* The extra cases: 64 MiB + 7 once per thread count, 1 MiB - 1 in 199-byte tasks once. */
      bool extra = (big && k == 2 + ti % 2) || (size == 1 * MiB - 1 && k == 0);
      if (!full_grid && (big || many) && !extra)
        continue;
      for (int oi = 0; oi < NOFFS; oi++)
        for (int bi = 0; bi < NBOUNCE; bi++)
          for (int gi = 0; gi < NGDS; gi++) {
            int d = (oi + si + k + ti) % 4;
            if (!full_grid) {
              if (extra) {
                if (oi != (ti + k) % NOFFS || gi != ti % NGDS ||
                    bi != (big ? NBOUNCE - 2 + ti % 2 : NBOUNCE_KVIKIO + ti % 3))
                  continue;
              } else if (bi != (oi + si) % NBOUNCE || gi != (oi + k + ti) % NGDS) {
                continue;
              }
            } else if (big && bounce_sizes[bi] <= 4096) {
              continue;
            }
            struct dcase c = {.api = FUTURE,
                              .size = size,
                              .off = offsets[oi],
                              .align = aligns[(oi + k) % 2],
                              .dio_r = d & 1,
                              .dio_w = d >> 1,
                              .bounce = bounce_sizes[bi],
                              .gds = gds_thresholds[gi],
                              .pool = g_pools[ti],
                              .threads = thread_counts[ti],
                              .task = task};
            run_case(&c, path);
            n++;
          }
    }
  printf("# device parallel grid, %u threads: %d cases%s\n", thread_counts[ti], n,
         full_grid ? " (full)" : "");
  free(path);
}

static void parallel_t1(void **state) {
  (void)state;
  parallel_grid(0);
}
static void parallel_t3(void **state) {
  (void)state;
  parallel_grid(1);
}
static void parallel_t4(void **state) {
  (void)state;
  parallel_grid(2);
}
static void parallel_t16(void **state) {
  (void)state;
  parallel_grid(3);
}

/* ---- memory kinds, contexts, threads -------------------------------------------------- */

#define KIND_BUF (4 * MiB + 13 + 984 + EOF_EXTRA + GUARD + 8192)

/* The cases every buffer kind runs: sync and futures, small and several tasks, inline (under
 * the GDS threshold) and on the pool. */
static void kind_cases(const struct dbuf *src, const struct dbuf *dst, const char *name) {
  char *path = t_join(g_dir, name);
  const struct dcase cs[] = {
      {.api = SYNC,
       .size = 4097,
       .off = 1,
       .align = 984,
       .dio_r = 1,
       .dio_w = 0,
       .bounce = 1 * MiB + 4096,
       .gds = 16 * KiB},
      {.api = SYNC,
       .size = 4 * MiB + 13,
       .off = 4096,
       .align = 0,
       .dio_r = 0,
       .dio_w = 1,
       .bounce = 1 * MiB + 4096,
       .gds = 0},
      {.api = FUTURE,
       .size = 4 * MiB + 13,
       .off = 4095,
       .align = 0,
       .dio_r = 1,
       .dio_w = 1,
       .bounce = 16 * MiB,
       .gds = 0,
       .pool = g_pools[2],
       .threads = 4,
       .task = 1 * MiB},
      {.api = FUTURE,
       .size = 1 * MiB - 1,
       .off = 8601 * 8,
       .align = 984,
       .dio_r = 0,
       .dio_w = 0,
       .bounce = 4096,
       .gds = 16 * KiB,
       .pool = g_pools[3],
       .threads = 16,
       .task = 4096},
      {.api = FUTURE,
       .size = 4097,
       .off = 0,
       .align = 984,
       .dio_r = 1,
       .dio_w = 1,
       .bounce = 16 * MiB,
       .gds = 1 * MiB,
       .pool = g_pools[1],
       .threads = 3,
       .task = 199},
  };
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    struct dcase c = cs[i];
    c.src = src;
    c.dst = dst;
    run_case(&c, path);
  }
  free(path);
}

static void misc_kinds(void **state) {
  (void)state;
  static const enum dkind kinds[] = {D_ALLOC, D_POOL, D_MANAGED};
  static const int want_kind[] = {KVIK_MEM_DEVICE, KVIK_MEM_DEVICE, KVIK_MEM_MANAGED};
  for (int k = 0; k < 3; k++) {
    struct dbuf s, d;
    dbuf_alloc(&s, kinds[k], KIND_BUF, ctx0);
    dbuf_alloc(&d, kinds[k], KIND_BUF, ctx0);
    ASSERT_CODE(kvik_mem_kind(dp(s.d)), want_kind[k]);
    struct kvik_mem_info mi = {.sz = sizeof mi};
    ASSERT_CODE(kvik_mem_info(dp(d.d), KIND_BUF, &mi), 0);
    ASSERT_CODE(mi.pool, kinds[k] == D_POOL);
    kind_cases(&s, &d, s.kind);
    /* Mixed: from one kind into another. */
    if (k > 0)
      kind_cases(&g_dsrc, &d, "mixed");
    dbuf_free(&s);
    dbuf_free(&d);
  }
}

static void misc_device1_while_device0_current(void **state) {
  (void)state;
  if (g_ndev < 2)
    SKIP_BECAUSE("this machine has %d GPU: a buffer on a second device while the first is "
                 "current cannot be tested here",
                 g_ndev);
  struct dbuf s, d, p;
  dbuf_alloc(&s, D_ALLOC, KIND_BUF, ctx1);
  dbuf_alloc(&d, D_ALLOC, KIND_BUF, ctx1);
  dbuf_alloc(&p, D_POOL, KIND_BUF, ctx1);
  struct kvik_mem_info mi = {.sz = sizeof mi};
  ASSERT_CODE(kvik_mem_info(dp(d.d), KIND_BUF, &mi), 0);
  ASSERT_CODE(mi.device, 1);
  ASSERT_CODE(kvik_mem_info(dp(p.d), KIND_BUF, &mi), 0);
  ASSERT_CODE(mi.device, 1);
  CUcontext cur;
  CT_CU(cu.cuCtxGetCurrent(&cur));
  assert_ptr_equal(cur, ctx0);
  kind_cases(&s, &d, "device1");
  kind_cases(&p, &d, "device1-pool");
  /* Between devices: from device 0 memory into device 1 memory and back. */
  kind_cases(&g_dsrc, &d, "device0-to-1");
  kind_cases(&s, &g_ddst, "device1-to-0");
  dbuf_free(&s);
  dbuf_free(&d);
  dbuf_free(&p);
}

/* Memory of a created context that is not current (the primary context of device 0 is). The
 * context lives to the end of the run: see the note on stream reuse in the report. */
static void misc_context_not_current(void **state) {
  (void)state;
  if (!cu.cuCtxCreate_v4)
    SKIP_BECAUSE("the driver has no cuCtxCreate_v4");
  CT_CU(cu.cuCtxCreate_v4(&g_created, NULL, 0, 0)); /* pushes it */
  CUcontext popped;
  CT_CU(cu.cuCtxPopCurrent_v2(&popped));
  assert_ptr_equal(popped, g_created);
  struct dbuf s, d;
  dbuf_alloc(&s, D_ALLOC, KIND_BUF, g_created);
  dbuf_alloc(&d, D_ALLOC, KIND_BUF, g_created);
  kind_cases(&s, &d, "created-context");
  dbuf_free(&s);
  dbuf_free(&d);
}

/* A thread with no current context at all writes and reads device memory through kvik; the
 * main thread prepares and checks the data. */
struct noctx_arg {
  kvik_file *f;
  CUdeviceptr src, dst;
  size_t size;
  int64_t off;
  char err[512];
};

static int noctx_check(struct noctx_arg *a, const char *after) {
  CUcontext cur = (CUcontext)1;
  if (cu.cuCtxGetCurrent(&cur) != CUDA_SUCCESS || cur != NULL) {
    snprintf(a->err, sizeof a->err, "after %s: the thread has current context %p", after,
             (void *)cur);
    return -1;
  }
  return 0;
}

static void *noctx_main(void *arg) {
  struct noctx_arg *a = arg;
  if (noctx_check(a, "thread start"))
    return NULL;
  ssize_t n = kvik_file_write(a->f, dp(a->src), a->size, a->off);
  if (n != (ssize_t)a->size) {
    snprintf(a->err, sizeof a->err, "kvik_file_write: %zd: %s", n, kvik_last_error());
    return NULL;
  }
  if (noctx_check(a, "kvik_file_write"))
    return NULL;
  kvik_future *fut = NULL;
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 256 * KiB, .pool = g_pools[2]};
  int rc = kvik_file_pread(a->f, dp(a->dst), a->size, a->off, &o, &fut);
  n = rc ? rc : kvik_future_wait(fut);
  if (n != (ssize_t)a->size) {
    snprintf(a->err, sizeof a->err, "kvik_file_pread: %zd: %s", n, kvik_last_error());
    return NULL;
  }
  if (noctx_check(a, "kvik_file_pread"))
    return NULL;
  /* Half of it again, through kvik_file_read on this thread (inline). */
  n = kvik_file_read(a->f, dp(a->dst), a->size / 2, a->off);
  if (n != (ssize_t)(a->size / 2)) {
    snprintf(a->err, sizeof a->err, "kvik_file_read: %zd: %s", n, kvik_last_error());
    return NULL;
  }
  noctx_check(a, "kvik_file_read");
  return NULL;
}

static void misc_no_current_context(void **state) {
  (void)state;
  struct dcase c = {.bounce = 1 * MiB + 4096, .gds = 16 * KiB, .dio_r = 1, .dio_w = 1};
  set_cfg(&c);
  for (int dev = 0; dev < (g_ndev > 1 ? 2 : 1); dev++) {
    struct dbuf s, d;
    dbuf_alloc(&s, dev ? D_POOL : D_ALLOC, KIND_BUF, dev ? ctx1 : ctx0);
    dbuf_alloc(&d, D_ALLOC, KIND_BUF, dev ? ctx1 : ctx0);
    char *path = t_join(g_dir, "no-context");
    size_t size = 3 * MiB + 77;
    int64_t off = 4095;
    uint64_t seed = ++g_seed;
    T_CONTEXT("no current context, device %d, size %zu", dev, size);
    t_pat_fill(g_src, size, (uint64_t)off, seed);
    h2d(&s, 0, g_src, size);
    dfill(&d, 0, POISON, size + GUARD);
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_ON), 0);
    struct noctx_arg a = {.f = f, .src = s.d, .dst = d.d, .size = size, .off = off};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, noctx_main, &a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (a.err[0])
      fail_msg("device %d: %s", dev, a.err);
    ASSERT_CODE(kvik_file_close(f), 0);
    d2h(g_dst, &d, 0, size + GUARD);
    ASSERT_PATTERN(g_dst, size, (uint64_t)off, seed, "read with no current context");
    ASSERT_FILLED(g_dst + size, GUARD, POISON, "after the read range");
    ASSERT_CODE(t_read_file(path, g_host, size, (uint64_t)off), size);
    ASSERT_PATTERN(g_host, size, (uint64_t)off, seed, "on disk");
    check_ctx(ctx0, g_depth, "the thread without a context");
    check_bounce_idle("no current context");
    dbuf_free(&s);
    dbuf_free(&d);
    free(path);
  }
  t_context[0] = 0;
}

/* Two threads, two files, each its own device buffers, at once. Each thread has the primary
 * context of device 0 current for its own copies. */
struct pair_arg {
  int id;
  char *path;
  struct dbuf s, d;
  uint8_t *host;
  uint64_t seed;
  char err[512];
};

static void *pair_main(void *arg) {
  struct pair_arg *a = arg;
  if (cu.cuCtxSetCurrent(ctx0) != CUDA_SUCCESS) {
    snprintf(a->err, sizeof a->err, "cuCtxSetCurrent failed");
    return NULL;
  }
  static const size_t psizes[] = {6 * MiB + 3, 4097, 1 * MiB - 1, 5 * MiB};
  for (int it = 0; it < 8; it++) {
    size_t size = psizes[it % 4];
    uint64_t off = offsets[(it + (unsigned)a->id) % NOFFS];
    kvik_file *f = NULL;
    int rc = kvik_file_open(&f, a->path, "w+", 0644, KVIK_COMPAT_ON);
    if (rc) {
      snprintf(a->err, sizeof a->err, "open: %s", kvik_last_error());
      return NULL;
    }
    t_pat_fill(a->host, size, off, a->seed + (uint64_t)it);
    cu.cuMemcpyHtoD_v2(a->s.d, a->host, size);
    if (cu.cuMemsetD8_v2)
      cu.cuMemsetD8_v2(a->d.d, 0, size);
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = it % 2 ? 1 * MiB : 64 * KiB};
    kvik_future *fut = NULL;
    ssize_t n = it % 2 ? kvik_file_write(f, dp(a->s.d), size, (int64_t)off)
                       : ((rc = kvik_file_pwrite(f, dp(a->s.d), size, (int64_t)off, &o, &fut))
                              ? rc
                              : kvik_future_wait(fut));
    if (n == (ssize_t)size) {
      n = it % 2 ? ((rc = kvik_file_pread(f, dp(a->d.d), size, (int64_t)off, &o, &fut))
                        ? rc
                        : kvik_future_wait(fut))
                 : kvik_file_read(f, dp(a->d.d), size, (int64_t)off);
    }
    kvik_file_close(f);
    if (n != (ssize_t)size) {
      snprintf(a->err, sizeof a->err, "thread %d, iteration %d: %zd of %zu: %s", a->id, it, n, size,
               kvik_last_error());
      return NULL;
    }
    memset(a->host, 0, size);
    cu.cuMemcpyDtoH_v2(a->host, a->d.d, size);
    long long bad = t_pat_find_mismatch(a->host, size, off, a->seed + (uint64_t)it);
    if (bad >= 0) {
      snprintf(a->err, sizeof a->err, "thread %d, iteration %d: wrong byte at %lld of %zu", a->id,
               it, bad, size);
      return NULL;
    }
    CUcontext cur = NULL;
    cu.cuCtxGetCurrent(&cur);
    if (cur != ctx0) {
      snprintf(a->err, sizeof a->err, "thread %d: current context changed", a->id);
      return NULL;
    }
  }
  return NULL;
}

static void misc_two_threads_two_files(void **state) {
  (void)state;
  struct dcase c = {.bounce = 1 * MiB + 4096, .gds = 16 * KiB, .dio_r = 1, .dio_w = 0};
  set_cfg(&c);
  struct pair_arg a[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    memset(&a[i], 0, sizeof a[i]);
    a[i].id = i;
    char name[32];
    snprintf(name, sizeof name, "pair-%d", i);
    a[i].path = t_join(g_dir, name);
    dbuf_alloc(&a[i].s, i ? D_POOL : D_ALLOC, 6 * MiB + 3, ctx0);
    dbuf_alloc(&a[i].d, D_ALLOC, 6 * MiB + 3, ctx0);
    a[i].host = g_src + (size_t)i * 8 * MiB;
    a[i].seed = ++g_seed * 100;
  }
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, pair_main, &a[i]), 0);
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  for (int i = 0; i < 2; i++) {
    dbuf_free(&a[i].s);
    dbuf_free(&a[i].d);
    free(a[i].path);
  }
  for (int i = 0; i < 2; i++)
    if (a[i].err[0])
      fail_msg("%s", a[i].err);
  check_bounce_idle("two threads on two files");
}

/* KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD on the device path: the partial pages at the ends of a
 * piece are read whole with O_DIRECT into the bounce buffer. Sizes up to 4 MiB + 13, every
 * offset, sync and futures, the bounce sizes rotating. */
static void misc_overread(void **state) {
  (void)state;
  char *path = t_join(g_dir, "overread");
  int n = 0;
  for (int api = 0; api < 2; api++)
    for (int si = 0; si < NSIZES - 1; si++)
      for (int oi = 0; oi < NOFFS; oi++) {
        struct dcase c = {.api = api ? FUTURE : SYNC,
                          .size = sizes[si],
                          .off = offsets[oi],
                          .align = aligns[oi % 2],
                          .dio_r = 1,
                          .dio_w = (si + oi) % 2,
                          .overread = 1,
                          .bounce = bounce_sizes[(si + oi + api) % NBOUNCE],
                          .gds = gds_thresholds[oi % NGDS],
                          .pool = g_pools[2],
                          .threads = 4,
                          .task = si % 2 ? 4096 : 1 * MiB};
        run_case(&c, path);
        n++;
      }
  printf("# device overread: %d cases\n", n);
  free(path);
}

/* More workers than the bounce pool allows buffers (KVIKIO_NTHREADS 1: 12 buffers; 16 workers),
 * O_DIRECT writes and reads at an unaligned file offset. A device chunk must never wait for a
 * second bounce buffer while it holds one: that deadlocks as soon as every buffer is held by a
 * worker waiting for another (it did, before pieces were aligned to file pages). */
static void misc_many_workers_few_buffers(void **state) {
  (void)state;
  uint64_t saved = 0;
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_NTHREADS, &saved), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_NTHREADS, 1), 0);
  char *path = t_join(g_dir, "few-buffers");
  for (int overread = 0; overread < 2; overread++) {
    struct dcase c = {.dio_r = 1, .dio_w = 1, .overread = overread, .bounce = 1 * MiB + 4096};
    set_cfg(&c);
    size_t size = 48 * MiB + 5;
    uint64_t seed = ++g_seed, off = 4095;
    T_CONTEXT("16 workers, 12 bounce buffers, overread %d", overread);
    t_pat_fill(g_src, size, off, seed);
    h2d(&g_dsrc, 0, g_src, size);
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_ON), 0);
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = 1 * MiB + 1, .pool = g_pools[3]};
    for (int op = 0; op < 2; op++) {
      kvik_future *fut = NULL;
      ASSERT_CODE(op ? kvik_file_pread(f, dp(g_ddst.d), size, (int64_t)off, &o, &fut)
                     : kvik_file_pwrite(f, dp(g_dsrc.d), size, (int64_t)off, &o, &fut),
                  0);
      if (kvik_future_wait_for(fut, 60000) != 0)
        fail_msg("%s did not finish in 60 s: deadlocked waiting for bounce buffers?",
                 op ? "pread" : "pwrite");
      ASSERT_CODE(kvik_future_wait(fut), size);
    }
    ASSERT_CODE(kvik_file_close(f), 0);
    d2h(g_dst, &g_ddst, 0, size);
    ASSERT_PATTERN(g_dst, size, off, seed, "read back");
  }
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_NTHREADS, saved), 0);
  check_bounce_idle("few buffers");
  t_context[0] = 0;
  free(path);
}

/* Streams, events and bounce buffers are made once and reused: repeated calls create none. */
static void misc_reuse(void **state) {
  (void)state;
  if (!g_fake)
    SKIP_BECAUSE("counting driver objects needs the fake driver");
  struct dcase c = {.bounce = 1 * MiB + 4096, .gds = 16 * KiB};
  set_cfg(&c);
  char *path = t_join(g_dir, "reuse");
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_ON), 0);
  size_t size = 8 * MiB + 5;
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 1 * MiB, .pool = g_pools[2]};
  for (int round = 0; round < 2; round++) {
    long streams = fc.calls("cuStreamCreate"), events = fc.calls("cuEventCreate");
    long pinned = fc.calls("cuMemHostAlloc");
    for (int i = 0; i < 6; i++) {
      kvik_future *fut = NULL;
      ASSERT_CODE(kvik_file_pwrite(f, dp(g_dsrc.d), size, 0, &o, &fut), 0);
      ASSERT_CODE(kvik_future_wait(fut), size);
      ASSERT_CODE(kvik_file_pread(f, dp(g_ddst.d), size, 0, &o, &fut), 0);
      ASSERT_CODE(kvik_future_wait(fut), size);
      ASSERT_CODE(kvik_file_read(f, dp(g_ddst.d), size, 0), size);
    }
    if (round == 1) { /* the first round may create this thread's and the workers' objects */
      ASSERT_CODE(fc.calls("cuStreamCreate"), streams);
      ASSERT_CODE(fc.calls("cuEventCreate"), events);
      ASSERT_CODE(fc.calls("cuMemHostAlloc"), pinned);
    }
  }
  struct kvik_bounce_stats st = {.sz = sizeof st};
  ASSERT_CODE(kvik_bounce_stats(&st), 0);
  assert_true(st.pinned);
  uint64_t nthreads = 0;
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_NTHREADS, &nthreads), 0);
  if (st.allocated > 4 * nthreads + 8) /* the pool's bound */
    fail_msg("%llu bounce buffers exist, more than the bound %llu",
             (unsigned long long)st.allocated, (unsigned long long)(4 * nthreads + 8));
  ASSERT_CODE(st.in_use, 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  free(path);
}

/* The default pool resized up and down (KVIKIO_NTHREADS through the setter, as kvikio users do
 * with kvikio.defaults.set) between parallel device writes and reads: the bytes are right every
 * time, and no driver call is made by a thread that is exiting. Workers leaving a smaller pool
 * give their streams back before they exit, and a thread that is not a worker (here: one that did
 * a blocking device read) leaves its stream to the next device I/O of any thread; either way the
 * streams and events balance. On an H200, destroying the workers' streams from their thread-exit
 * destructor crashed the process inside cuStreamDestroy_v2 (issue 9). */
static void *sync_read_main(void *arg) {
  struct noctx_arg *a = arg;
  ssize_t n = kvik_file_read(a->f, dp(a->dst), a->size, a->off);
  if (n != (ssize_t)a->size)
    snprintf(a->err, sizeof a->err, "kvik_file_read on a user thread: %zd: %s", n,
             kvik_last_error());
  return NULL;
}

static void misc_pool_resize(void **state) {
  (void)state;
  static const unsigned counts[] = {16, 1, 8, 2, 5, 1, 3, 16, 4, 1};
  const int rounds = 30;
  uint64_t saved = 0;
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_NTHREADS, &saved), 0);
  struct dcase c = {.bounce = 1 * MiB + 4096, .gds = 16 * KiB, .dio_r = 0, .dio_w = 1};
  set_cfg(&c);
  char *path = t_join(g_dir, "pool-resize");
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_ON), 0);
  size_t size = 6 * MiB + 5;
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 256 * KiB}; /* the default pool */
  long exit_calls = g_fake ? fc.live("exit_calls") : 0;
  long streams = -1, events = -1;
  for (int round = 0; round <= rounds; round++) {
    /* Round 0 sets one worker and measures: the streams that exist with one worker. */
    unsigned n = round == 0 ? 1 : counts[(round - 1) % (sizeof counts / sizeof counts[0])];
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_NTHREADS, n), 0);
    uint64_t seed = ++g_seed, off = (uint64_t)round * 4095;
    T_CONTEXT("pool resize round %d to %u workers, seed %llu", round, n, (unsigned long long)seed);
    t_pat_fill(g_src, size, off, seed);
    h2d(&g_dsrc, 0, g_src, size);
    dfill(&g_ddst, 0, POISON, size + GUARD);
    kvik_future *fut = NULL;
    ASSERT_CODE(kvik_file_pwrite(f, dp(g_dsrc.d), size, (int64_t)off, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), size);
    ASSERT_CODE(kvik_pool_nthreads(NULL), (int)n);
    ASSERT_CODE(kvik_file_pread(f, dp(g_ddst.d), size, (int64_t)off, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), size);
    d2h(g_dst, &g_ddst, 0, size + GUARD);
    ASSERT_PATTERN(g_dst, size, off, seed, "device read after a pool resize");
    ASSERT_FILLED(g_dst + size, GUARD, POISON, "after the read range");
    if (g_fake && n == 1) {
      /* Every worker past the first has left (resizing joins them), with its stream. */
      if (streams < 0) {
        streams = fc.live("stream");
        events = fc.live("event");
      }
      ASSERT_CODE(fc.live("stream"), streams);
      ASSERT_CODE(fc.live("event"), events);
    }
    if (g_fake)
      ASSERT_CODE(fc.live("exit_calls"), exit_calls);
  }
  /* A user thread's stream: left behind when it exits (no driver call then), destroyed by the
   * next device I/O of another thread. */
  uint64_t seed = ++g_seed;
  t_pat_fill(g_src, 4 * MiB, 0, seed);
  h2d(&g_dsrc, 0, g_src, 4 * MiB);
  ASSERT_CODE(kvik_file_write(f, dp(g_dsrc.d), 4 * MiB, 0), 4 * MiB); /* this thread's stream */
  streams = g_fake ? fc.live("stream") : 0;
  events = g_fake ? fc.live("event") : 0;
  for (int i = 0; i < 3; i++) {
    struct noctx_arg a = {.f = f, .dst = g_ddst.d, .size = 1 * MiB + 3, .off = 5};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sync_read_main, &a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    if (a.err[0])
      fail_msg("%s", a.err);
    d2h(g_dst, &g_ddst, 0, a.size);
    ASSERT_PATTERN(g_dst, a.size, 5, seed, "blocking device read on a user thread");
    if (g_fake) {
      ASSERT_CODE(fc.live("exit_calls"), exit_calls);
      ASSERT_CODE(fc.live("stream"), streams + 1);
    }
    ASSERT_CODE(kvik_file_read(f, dp(g_ddst.d), 4 * MiB, 0), 4 * MiB);
    if (g_fake) {
      ASSERT_CODE(fc.live("stream"), streams);
      ASSERT_CODE(fc.live("event"), events);
    }
  }
  d2h(g_dst, &g_ddst, 0, 4 * MiB);
  ASSERT_PATTERN(g_dst, 4 * MiB, 0, seed, "blocking device read after the user threads'");
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_NTHREADS, saved), 0);
  check_bounce_idle("pool resizes");
  t_context[0] = 0;
  free(path);
}

/* ---- bad input ------------------------------------------------------------------------- */

#define BAD_FILE (64 * KiB)

/* A file holding BAD_FILE bytes of pattern, opened "r+"; seed in *seed. */
static kvik_file *bad_open(const char *path, uint64_t *seed) {
  *seed = ++g_seed;
  t_write_pattern_file(path, BAD_FILE, *seed);
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "r+", 0644, KVIK_COMPAT_ON), 0);
  return f;
}

/* Every call on (ptr, size, off) fails with want and writes nothing. */
static void bad_all_calls(kvik_file *f, void *ptr, size_t size, int64_t off, int want,
                          const char *what) {
  T_CONTEXT("%s: ptr=%p size=%zu off=%lld", what, ptr, size, (long long)off);
  ASSERT_CODE(kvik_file_write(f, ptr, size, off), want);
  if (!kvik_last_error()[0])
    fail_msg("%s: no detail message", what);
  printf("# %s: write: %s\n", what, kvik_last_error());
  ASSERT_CODE(kvik_file_read(f, ptr, size, off), want);
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_file_pwrite(f, ptr, size, off, NULL, &fut), want);
  assert_null(fut);
  ASSERT_CODE(kvik_file_pread(f, ptr, size, off, NULL, &fut), want);
  assert_null(fut);
  check_ctx(ctx0, g_depth, what);
  t_context[0] = 0;
}

static void bad_freed_allocation(void **state) {
  (void)state;
  char *path = t_join(g_dir, "bad-freed");
  uint64_t seed;
  kvik_file *f = bad_open(path, &seed);
  struct dbuf b;
  dbuf_alloc(&b, D_ALLOC, BAD_FILE, ctx0);
  CUdeviceptr d = b.d;
  dbuf_free(&b);
  bad_all_calls(f, dp(d), 4096, 0, KVIK_EINVAL, "freed cuMemAlloc allocation");
  bad_all_calls(f, dp(d + 100), 1000, 4096, KVIK_EINVAL, "inside a freed allocation");
  dbuf_alloc(&b, D_MANAGED, BAD_FILE, ctx0);
  d = b.d;
  dbuf_free(&b);
  bad_all_calls(f, dp(d), 4096, 0, KVIK_EINVAL, "freed managed allocation");
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_FILE_PATTERN(path, BAD_FILE, seed);
  check_bounce_idle("freed allocations");
  free(path);
}

static void bad_range_past_end(void **state) {
  (void)state;
  char *path = t_join(g_dir, "bad-range");
  uint64_t seed;
  kvik_file *f = bad_open(path, &seed);
  static const enum dkind kinds[] = {D_ALLOC, D_POOL, D_MANAGED};
  for (int k = 0; k < 3; k++) {
    struct dbuf b;
    size_t n = 20000;
    dbuf_alloc(&b, kinds[k], n, ctx0);
    dfill(&b, 0, 0x5A, n);
    char what[64];
    snprintf(what, sizeof what, "%s: one byte past the end", b.kind);
    bad_all_calls(f, dp(b.d), n + 1, 0, KVIK_EINVAL, what);
    ASSERT_CONTAINS(kvik_last_error(), "past the end");
    snprintf(what, sizeof what, "%s: from inside, past the end", b.kind);
    bad_all_calls(f, dp(b.d + n - 10), 11, 100, KVIK_EINVAL, what);
    /* The buffer is untouched too. */
    d2h(g_dst, &b, 0, n);
    ASSERT_FILLED(g_dst, n, 0x5A, "device buffer after refused reads");
    /* Exactly to the end is fine. */
    ASSERT_CODE(kvik_file_read(f, dp(b.d + n - 10), 10, 50), 10);
    d2h(g_dst, &b, n - 10, 10);
    ASSERT_PATTERN(g_dst, 10, 50, seed, "read ending at the allocation's end");
    dbuf_free(&b);
  }
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_FILE_PATTERN(path, BAD_FILE, seed);
  check_bounce_idle("ranges past the end");
  free(path);
}

static void bad_size_overflow(void **state) {
  (void)state;
  char *path = t_join(g_dir, "bad-overflow");
  uint64_t seed;
  kvik_file *f = bad_open(path, &seed);
  struct dbuf b;
  dbuf_alloc(&b, D_ALLOC, BAD_FILE, ctx0);
  bad_all_calls(f, dp(b.d), SIZE_MAX, 0, KVIK_EOVERFLOW, "size SIZE_MAX");
  bad_all_calls(f, dp(b.d), (size_t)(UINT64_MAX - b.d + 1), 0, KVIK_EOVERFLOW,
                "address + size wraps to 0");
  bad_all_calls(f, dp(b.d), 4096, INT64_MAX - 100, KVIK_EOVERFLOW, "offset + size overflows");
  bad_all_calls(f, dp(b.d), (size_t)INT64_MAX, 0, KVIK_EINVAL,
                "size INT64_MAX: past the end of the allocation");
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_FILE_PATTERN(path, BAD_FILE, seed);
  dbuf_free(&b);
  free(path);
}

/* ---- CUDA failures (fake only) ---------------------------------------------------------- */

#define FAULT_FILE (8 * MiB + 5)

static void fault_prologue(void) {
  if (!g_fake)
    SKIP_BECAUSE("failure injection needs kvik's fake libcuda.so.1; the real driver cannot be "
                 "made to fail on demand");
}

/* Runs one operation expecting KVIK_ECUDA naming err; then the bounce pool is idle. */
static void expect_cuda_failure(kvik_file *f, int op, CUdeviceptr d, const char *errname,
                                const char *what, kvik_pool *pool) {
  T_CONTEXT("%s, op %d", what, op);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 1 * MiB, .pool = pool};
  kvik_future *fut = NULL;
  ssize_t n;
  switch (op) {
  case 0: n = kvik_file_read(f, dp(d), FAULT_FILE, 0); break;
  case 1: n = kvik_file_write(f, dp(d), FAULT_FILE, 0); break;
  case 2: {
    int rc = kvik_file_pread(f, dp(d), FAULT_FILE, 0, &o, &fut);
    n = rc ? rc : kvik_future_wait(fut);
    break;
  }
  default: {
    int rc = kvik_file_pwrite(f, dp(d), FAULT_FILE, 0, &o, &fut);
    n = rc ? rc : kvik_future_wait(fut);
    break;
  }
  }
  ASSERT_CODE(n, KVIK_ECUDA);
  ASSERT_CONTAINS(kvik_last_error(), errname);
  printf("# %s: %s\n", what, kvik_last_error());
  check_ctx(ctx0, g_depth, what);
  check_bounce_idle(what);
  t_context[0] = 0;
}

/* After a failure the same handle and buffers work again, with the right bytes. */
static void expect_recovery(kvik_file *f, uint64_t seed) {
  ASSERT_CODE(kvik_file_read(f, dp(g_ddst.d), FAULT_FILE, 0), FAULT_FILE);
  d2h(g_dst, &g_ddst, 0, FAULT_FILE);
  ASSERT_PATTERN(g_dst, FAULT_FILE, 0, seed, "read after a failure");
}

static kvik_file *fault_open(const char *name, uint64_t *seed, char **path) {
  struct dcase c = {.bounce = 1 * MiB + 4096, .gds = 16 * KiB, .dio_r = 1, .dio_w = 1};
  set_cfg(&c);
  *path = t_join(g_dir, name);
  *seed = ++g_seed;
  t_write_pattern_file(*path, FAULT_FILE, *seed);
  t_pat_fill(g_src, FAULT_FILE, 0, *seed);
  h2d(&g_dsrc, 0, g_src, FAULT_FILE);
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, *path, "r+", 0644, KVIK_COMPAT_ON), 0);
  expect_recovery(f, *seed); /* warm: this thread's and the workers' streams exist */
  return f;
}

static void fault_copy_fails(void **state) {
  (void)state;
  fault_prologue();
  uint64_t seed;
  char *path;
  kvik_file *f = fault_open("fault-copy", &seed, &path);
  /* A pool of its own, destroyed at the end, so every stream and event its workers made is
   * given back by then: the counts must return to these. */
  long streams = fc.live("stream"), events = fc.live("event");
  kvik_pool *pool = NULL;
  ASSERT_CODE(kvik_pool_create(&pool, 4), 0);
  /* The enqueue fails (the call returns the error) ... */
  for (int op = 0; op < 4; op++) {
    const char *fn = op % 2 ? "cuMemcpyDtoHAsync_v2" : "cuMemcpyHtoDAsync_v2";
    assert_int_equal(fc.fail_after(fn, 3, CUDA_ERROR_ILLEGAL_ADDRESS), 0);
    expect_cuda_failure(f, op, op % 2 ? g_dsrc.d : g_ddst.d, "CUDA_ERROR_ILLEGAL_ADDRESS",
                        "a copy fails to enqueue mid-transfer", pool);
    ASSERT_CONTAINS(kvik_last_error(), fn);
    fc.fail_clear();
    expect_recovery(f, seed);
  }
  /* ... or the copy itself fails on the stream (reported by the next synchronization). */
  for (int op = 0; op < 4; op++) {
    assert_int_equal(fc.fail_after("exec:copy", 4, CUDA_ERROR_LAUNCH_FAILED), 0);
    expect_cuda_failure(f, op, op % 2 ? g_dsrc.d : g_ddst.d, "CUDA_ERROR_LAUNCH_FAILED",
                        "a copy fails on the stream mid-transfer", pool);
    fc.fail_clear();
    expect_recovery(f, seed);
  }
  /* Waiting for the stream fails. */
  assert_int_equal(fc.fail_after("cuEventSynchronize", 1, CUDA_ERROR_UNKNOWN), 0);
  expect_cuda_failure(f, 0, g_ddst.d, "CUDA_ERROR_UNKNOWN", "cuEventSynchronize fails", pool);
  fc.fail_clear();
  /* Pushing the buffer's context fails: nothing is left pushed. */
  assert_int_equal(fc.fail_after("cuCtxPushCurrent_v2", 0, CUDA_ERROR_INVALID_CONTEXT), 0);
  expect_cuda_failure(f, 0, g_ddst.d, "CUDA_ERROR_INVALID_CONTEXT", "cuCtxPushCurrent fails", pool);
  fc.fail_clear();
  expect_recovery(f, seed);
  /* Nothing leaked: the same streams and events as before. */
  ASSERT_CODE(kvik_pool_destroy(pool), 0);
  ASSERT_CODE(fc.live("stream"), streams);
  ASSERT_CODE(fc.live("event"), events);
  ASSERT_CODE(kvik_file_close(f), 0);
  free(path);
}

static void fault_out_of_pinned_memory(void **state) {
  (void)state;
  fault_prologue();
  uint64_t seed;
  char *path;
  kvik_file *f = fault_open("fault-pinned", &seed, &path);
  /* No idle buffer left to reuse: every bounce buffer must be allocated. */
  kvik_bounce_trim();
  ASSERT_CODE(fc.live("pinned"), 0);
  assert_int_equal(fc.fail_times("cuMemHostAlloc", 0, CUDA_ERROR_OUT_OF_MEMORY, -1), 0);
  for (int op = 0; op < 4; op++)
    expect_cuda_failure(f, op, op % 2 ? g_dsrc.d : g_ddst.d, "CUDA_ERROR_OUT_OF_MEMORY",
                        "cuMemHostAlloc fails", g_pools[2]);
  ASSERT_CONTAINS(kvik_last_error(), "cuMemHostAlloc");
  fc.fail_clear();
  /* Some buffers fit, the rest do not: the parallel call fails, the ones it got go back. */
  kvik_bounce_trim();
  assert_int_equal(fc.set("pinned_limit", (long)(2 * (1 * MiB + 4096) + 4096)), 0);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 256 * KiB, .pool = g_pools[3]};
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_file_pread(f, dp(g_ddst.d), FAULT_FILE, 0, &o, &fut), 0);
  ssize_t n = kvik_future_wait(fut);
  /* With 16 workers at least one finds the limit reached, unless the 32 tasks happen to run
   * on at most two workers at a time; either way the pool is idle afterwards. */
  if (n < 0) {
    ASSERT_CODE(n, KVIK_ECUDA);
    ASSERT_CONTAINS(kvik_last_error(), "CUDA_ERROR_OUT_OF_MEMORY");
  } else {
    ASSERT_CODE(n, FAULT_FILE);
  }
  check_bounce_idle("a partial pinned-memory shortage");
  assert_int_equal(fc.set("pinned_limit", 0), 0);
  expect_recovery(f, seed);
  /* Nothing leaked: trimmed, no pinned memory is left. */
  kvik_bounce_trim();
  struct kvik_bounce_stats st = {.sz = sizeof st};
  ASSERT_CODE(kvik_bounce_stats(&st), 0);
  ASSERT_CODE(st.allocated, 0);
  ASSERT_CODE(fc.live("pinned"), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  free(path);
}

/* The device pipeline pins two 1 MiB pieces (KVIK__BOUNCE_PIPE), not KVIKIO_BOUNCE_BUFFER_SIZE:
 * pinning is what a process's first device read waits for (issue #10). With 16 MiB bounce
 * buffers set and 4 MiB of pinned memory allowed, blocking device reads and writes still work. */
static void pipeline_pins_two_pieces(void **state) {
  (void)state;
  fault_prologue();
  uint64_t seed;
  char *path;
  kvik_file *f = fault_open("pipe-pinned", &seed, &path);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_BOUNCE_BUFFER_SIZE, 16 * MiB), 0);
  kvik_bounce_trim();
  assert_int_equal(fc.set("pinned_limit", (long)(4 * MiB)), 0);
  ASSERT_CODE(kvik_file_write(f, dp(g_dsrc.d), FAULT_FILE, 0), FAULT_FILE);
  expect_recovery(f, seed);
  assert_int_equal(fc.set("pinned_limit", 0), 0);
  kvik_bounce_trim();
  ASSERT_CODE(fc.live("pinned"), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  free(path);
}

/* A worker that has never done device I/O cannot create its stream. */
static void fault_stream_create_fails(void **state) {
  (void)state;
  fault_prologue();
  uint64_t seed;
  char *path;
  kvik_file *f = fault_open("fault-stream", &seed, &path);
  kvik_pool *fresh = NULL;
  ASSERT_CODE(kvik_pool_create(&fresh, 2), 0);
  long streams = fc.live("stream"), events = fc.live("event");
  assert_int_equal(fc.fail_times("cuStreamCreate", 0, CUDA_ERROR_OUT_OF_MEMORY, -1), 0);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 1 * MiB, .pool = fresh};
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_file_pread(f, dp(g_ddst.d), FAULT_FILE, 0, &o, &fut), 0);
  ASSERT_CODE(kvik_future_wait(fut), KVIK_ECUDA);
  ASSERT_CONTAINS(kvik_last_error(), "cuStreamCreate");
  ASSERT_CONTAINS(kvik_last_error(), "CUDA_ERROR_OUT_OF_MEMORY");
  check_bounce_idle("cuStreamCreate fails");
  fc.fail_clear();
  /* The second event fails: the stream and the first event are given back. */
  assert_int_equal(fc.fail_after("cuEventCreate", 1, CUDA_ERROR_OUT_OF_MEMORY), 0);
  ASSERT_CODE(kvik_file_pread(
                  f, dp(g_ddst.d), FAULT_FILE, 0,
                  &(struct kvik_io_opts){.sz = sizeof o, .task_size = FAULT_FILE, .pool = fresh},
                  &fut),
              0);
  ASSERT_CODE(kvik_future_wait(fut), KVIK_ECUDA);
  ASSERT_CONTAINS(kvik_last_error(), "cuEventCreate");
  fc.fail_clear();
  ASSERT_CODE(fc.live("stream"), streams);
  ASSERT_CODE(fc.live("event"), events);
  ASSERT_CODE(kvik_file_pread(f, dp(g_ddst.d), FAULT_FILE, 0, &o, &fut), 0);
  ASSERT_CODE(kvik_future_wait(fut), FAULT_FILE);
  d2h(g_dst, &g_ddst, 0, FAULT_FILE);
  ASSERT_PATTERN(g_dst, FAULT_FILE, 0, seed, "read after the streams could be made");
  ASSERT_CODE(kvik_pool_destroy(fresh), 0); /* the workers' streams go with them */
  ASSERT_CODE(fc.live("stream"), streams);
  ASSERT_CODE(kvik_file_close(f), 0);
  free(path);
}

/* ---- main -------------------------------------------------------------------------------- */

/* Decides fake or real driver; returns 0 to run, 77 to skip (reason printed), 1 on error. */
static int choose_driver(void) {
  const char *real = getenv("KVIK_TEST_REAL_CUDA");
  bool want_real = real && strcmp(real, "1") == 0;
  if (ct_driver(&cu, NULL) != 0) {
    printf("SKIP test_devio: libcuda.so.1 %s (LD_LIBRARY_PATH=%s)\n",
           ct_libcuda_loaded() ? "has no usable device (cuInit failed)" : "cannot be loaded",
           getenv("LD_LIBRARY_PATH") ? getenv("LD_LIBRARY_PATH") : "");
    return 77;
  }
  g_fake = fake_cuda_bind(&fc) == 0;
  if (want_real && g_fake) {
    printf("SKIP test_devio: KVIK_TEST_REAL_CUDA=1 but libcuda.so.1 is kvik's fake\n");
    return 77;
  }
  if (!want_real && !g_fake) {
    printf("test_devio: libcuda.so.1 is not kvik's fake; set KVIK_TEST_REAL_CUDA=1 to run on "
           "the real driver\n");
    return 1;
  }
  if (cu.cuDeviceGetCount(&g_ndev) != CUDA_SUCCESS || g_ndev < 1) {
    printf("SKIP test_devio: no CUDA device\n");
    return 77;
  }
  if (!kvik_cuda_available()) {
    printf("test_devio: kvik cannot use the driver: %s\n", kvik_last_error());
    return 1;
  }
  struct kvik_gpu_info gi = {.sz = sizeof gi};
  if (kvik_gpu_info(0, &gi) == 0)
    printf("# %s driver, %d device(s); device 0: %s (%s)\n", g_fake ? "fake" : "real", g_ndev,
           gi.name, gi.pci_bus_id);
  return 0;
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  int rc = choose_driver();
  if (rc)
    return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(sync_grid),
      cmocka_unit_test(parallel_t1),
      cmocka_unit_test(parallel_t3),
      cmocka_unit_test(parallel_t4),
      cmocka_unit_test(parallel_t16),
      cmocka_unit_test(misc_kinds),
      cmocka_unit_test(misc_device1_while_device0_current),
      cmocka_unit_test(misc_context_not_current),
      cmocka_unit_test(misc_no_current_context),
      cmocka_unit_test(misc_two_threads_two_files),
      cmocka_unit_test(misc_reuse),
      cmocka_unit_test(misc_overread),
      cmocka_unit_test(misc_many_workers_few_buffers),
      cmocka_unit_test(misc_pool_resize),
      cmocka_unit_test(bad_freed_allocation),
      cmocka_unit_test(bad_range_past_end),
      cmocka_unit_test(bad_size_overflow),
      cmocka_unit_test(fault_copy_fails),
      cmocka_unit_test(fault_out_of_pinned_memory),
      cmocka_unit_test(pipeline_pins_two_pieces),
      cmocka_unit_test(fault_stream_create_fails),
  };
  return cmocka_run_group_tests_name("devio", tests, group_setup, group_teardown);
}
