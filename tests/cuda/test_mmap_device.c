/* kvik_mmap_* with device memory: reads from a mapping into device (cuMemAlloc), managed and
 * stream-ordered pool memory, blocking and parallel (pools of 1 and 4 threads, task sizes 4096,
 * 1 MiB and 4 MiB), over a grid of offsets and sizes inside mappings of the whole file, of a
 * range starting mid-page and of a range past the end of the file; each compared byte for byte
 * after a copy back, with the bytes around the destination unchanged and the caller's current
 * context (and, with the fake, its context-stack depth) as it was. Writes from device memory into
 * "w+" and "r+" mappings, checked on disk. A thread with no current context. Device buffers that
 * end before the range. Injected copy and synchronization failures (fake only): KVIK_ECUDA naming
 * the call, the path and the offset, the context restored, the next read correct.
 *
 * Runs against kvik's fake libcuda.so.1 (CI), or with KVIK_TEST_REAL_CUDA=1 against the
 * system's driver (tests/gpu/run.sh), where the fake-only parts skip saying why. */
#include "common.h"

#include "cuda_test.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FSIZE (5 * MiB + 321)
#define SEED 21
#define GUARD 256
#define POISON 0xA5
#define DBUF (FSIZE + 8192 + 2 * GUARD)

static struct kvik__cuda_api cu;
static struct fake_cuda fc;
static bool g_fake;
static CUcontext ctx0;
static long g_depth;
static char *g_dir, *g_path;
static uint8_t *g_host;
static CUdeviceptr g_dev; /* DBUF bytes of cuMemAlloc memory in ctx0 */
static kvik_pool *g_pools[2];
static const unsigned g_nthreads[2] = {1, 4};
static const size_t g_tasks[3] = {4096, 1 * MiB, 4 * MiB};

static void *dp(CUdeviceptr d) { return (void *)(uintptr_t)d; }

static void h2d(CUdeviceptr d, const void *src, size_t n) {
  if (n)
    CT_CU(cu.cuMemcpyHtoD_v2(d, src, n));
}

static void d2h(void *dst, CUdeviceptr d, size_t n) {
  if (n)
    CT_CU(cu.cuMemcpyDtoH_v2(dst, d, n));
}

static void dfill(CUdeviceptr d, uint8_t v, size_t n) {
  memset(g_host, v, n);
  h2d(d, g_host, n);
}

static void check_ctx(const char *after) {
  CUcontext cur = (CUcontext)1;
  CT_CU(cu.cuCtxGetCurrent(&cur));
  if (cur != ctx0)
    fail_msg("after %s: current context %p, the caller had %p (%s)", after, (void *)cur,
             (void *)ctx0, t_context);
  if (g_fake && fc.live("ctx_depth") != g_depth)
    fail_msg("after %s: context stack depth %ld, the caller had %ld (%s)", after,
             fc.live("ctx_depth"), g_depth, t_context);
}

/* Reads [off, off + size) of m into device memory at d + align (the allocation holds
 * align + size + GUARD bytes from d), blocking (p < 0) or on pool p with task size t, and checks
 * it. */
static void read_case(kvik_mmap *m, CUdeviceptr d, int64_t off, size_t size, size_t align, int p,
                      int t) {
  T_CONTEXT("device read off=%lld size=%zu align=%zu %s threads=%u task=%zu", (long long)off, size,
            align, p < 0 ? "read" : "pread", p < 0 ? 1 : g_nthreads[p], p < 0 ? 0 : g_tasks[t]);
  size_t span = align + size + GUARD;
  dfill(d, POISON, span);
  long long want = off >= (int64_t)FSIZE
                       ? 0
                       : (long long)(size < FSIZE - (size_t)off ? size : FSIZE - (size_t)off);
  if (p < 0) {
    ASSERT_CODE(kvik_mmap_read(m, dp(d + align), size, off), want);
  } else {
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = g_tasks[t], .pool = g_pools[p]};
    kvik_future *fut = NULL;
    ASSERT_CODE(kvik_mmap_pread(m, dp(d + align), size, off, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), want);
  }
  check_ctx("the read");
  d2h(g_host, d, span);
  ASSERT_FILLED(g_host, align, POISON, "device memory before the buffer");
  ASSERT_PATTERN(g_host + align, (size_t)want, (uint64_t)off, SEED, "device read");
  ASSERT_FILLED(g_host + align + want, size - (size_t)want + GUARD, POISON, "after the data");
}

static void read_grid(void **state) {
  (void)state;
  const struct {
    size_t size;
    int64_t offset;
  } maps[] = {{0, 0}, {2 * MiB + 5, 4097}, {FSIZE + 5000, 0}};
  int n = 0;
  for (size_t mi = 0; mi < 3; mi++) {
    kvik_mmap *m = NULL;
    ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", maps[mi].size, maps[mi].offset, 0), 0);
    size_t msize = 0;
    int64_t moff = 0;
    ASSERT_CODE(kvik_mmap_range(m, &moff, &msize, NULL), 0);
    const size_t rels[] = {0, 1, 4095, msize / 2, msize - 1};
    const size_t sizes[] = {1, 4096, 4097, 1 * MiB + 7, SIZE_MAX};
    for (size_t ri = 0; ri < 5; ri++)
      for (size_t si = 0; si < 5; si++) {
        size_t size = sizes[si] == SIZE_MAX ? msize - rels[ri] : sizes[si];
        if (size > msize - rels[ri])
          continue;
        size_t align = (ri + si) % 2 ? 984 : 0;
        int64_t off = moff + (int64_t)rels[ri];
        read_case(m, g_dev, off, size, align, -1, 0);
        read_case(m, g_dev, off, size, align, (int)((ri + si + mi) % 2),
                  (int)((ri + 2 * si + mi) % 3));
        n += 2;
      }
    ASSERT_CODE(kvik_mmap_close(m), 0);
  }
  printf("# %d device read cases\n", n);
  t_context[0] = 0;
}

/* Managed and stream-ordered pool memory take the same path. */
static void kinds(void **state) {
  (void)state;
  kvik_mmap *m = NULL;
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", 0, 0, 0), 0);
  CUdeviceptr managed = 0, pooled = 0;
  CUstream s = NULL;
  size_t n = 3 * MiB + 1;
  CT_CU(cu.cuMemAllocManaged(&managed, n + 2 * GUARD, CU_MEM_ATTACH_GLOBAL));
  read_case(m, managed, 12345, n, 7, -1, 0);
  read_case(m, managed, 12345, n, 7, 1, 1);
  if (cu.cuMemAllocAsync) {
    CT_CU(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
    CT_CU(cu.cuMemAllocAsync(&pooled, n + 2 * GUARD, s));
    CT_CU(cu.cuStreamSynchronize(s));
    read_case(m, pooled, 4096, n, 0, -1, 0);
    read_case(m, pooled, 4096, n, 0, 1, 0);
    CT_CU(cu.cuMemFreeAsync(pooled, s));
    CT_CU(cu.cuStreamSynchronize(s));
    CT_CU(cu.cuStreamDestroy_v2(s));
  } else {
    printf("# the driver has no cuMemAllocAsync: pool memory not tested\n");
  }
  CT_CU(cu.cuMemFree_v2(managed));
  ASSERT_CODE(kvik_mmap_close(m), 0);
  t_context[0] = 0;
}

/* A range that runs past the end of its device allocation is refused before anything moves. */
static void past_allocation(void **state) {
  (void)state;
  kvik_mmap *m = NULL;
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", 0, 0, 0), 0);
  CUdeviceptr small = 0;
  CT_CU(cu.cuMemAlloc_v2(&small, 4096));
  ASSERT_CODE(kvik_mmap_read(m, dp(small), 4097, 0), KVIK_EINVAL);
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_mmap_pread(m, dp(small + 1), 4096, 0, NULL, &fut), KVIK_EINVAL);
  check_ctx("the refused reads");
  CT_CU(cu.cuMemFree_v2(small));
  ASSERT_CODE(kvik_mmap_close(m), 0);
}

static void writes(void **state) {
  (void)state;
  char *path = t_join(g_dir, "written");
  const int64_t off = 8191;
  const size_t size = 3 * MiB + 17;
  t_pat_fill(g_host, size, (uint64_t)off, SEED + 1);
  h2d(g_dev, g_host, size);
  for (int par = 0; par < 2; par++) {
    kvik_mmap *m = NULL;
    ASSERT_CODE(kvik_mmap_open(&m, path, "w+", size, off, 0600), 0);
    if (par) {
      struct kvik_io_opts o = {.sz = sizeof o, .task_size = 1 * MiB, .pool = g_pools[1]};
      kvik_future *fut = NULL;
      ASSERT_CODE(kvik_mmap_pwrite(m, dp(g_dev), size, off, &o, &fut), 0);
      ASSERT_CODE(kvik_future_wait(fut), size);
    } else {
      ASSERT_CODE(kvik_mmap_write(m, dp(g_dev), size, off), size);
    }
    check_ctx("the write");
    ASSERT_CODE(kvik_mmap_close(m), 0);
    memset(g_host, 0, size);
    ASSERT_CODE(t_read_file(path, g_host, size, (uint64_t)off), size);
    ASSERT_PATTERN(g_host, size, (uint64_t)off, SEED + 1, "on disk after a device write");
    t_pat_fill(g_host, size, (uint64_t)off, SEED + 1);
  }
  unlink(path);
  free(path);
}

/* A thread with no current context reads into device memory: kvik pushes the buffer's context
 * and leaves the thread as it found it. */
struct noctx {
  kvik_mmap *m;
  ssize_t n;
  CUcontext after;
};

static void *noctx_main(void *arg) {
  struct noctx *a = arg;
  a->n = kvik_mmap_read(a->m, dp(g_dev), 1 * MiB, 100);
  a->after = (CUcontext)1;
  cu.cuCtxGetCurrent(&a->after);
  return NULL;
}

static void no_current_context(void **state) {
  (void)state;
  kvik_mmap *m = NULL;
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", 0, 0, 0), 0);
  dfill(g_dev, 0, 1 * MiB);
  struct noctx a = {.m = m};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, noctx_main, &a), 0);
  pthread_join(th, NULL);
  ASSERT_CODE(a.n, 1 * MiB);
  assert_null(a.after);
  d2h(g_host, g_dev, 1 * MiB);
  ASSERT_PATTERN(g_host, 1 * MiB, 100, SEED, "read by a thread without a context");
  ASSERT_CODE(kvik_mmap_close(m), 0);
}

static void faults(void **state) {
  (void)state;
  if (!g_fake)
    SKIP_BECAUSE("failure injection needs kvik's fake libcuda.so.1");
  kvik_mmap *m = NULL;
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", 0, 0, 0), 0);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 1 * MiB, .pool = g_pools[1]};
  kvik_future *fut = NULL;
  const char *calls[] = {"cuMemcpyHtoDAsync_v2", "cuStreamSynchronize", "exec:copy"};
  for (int i = 0; i < 3; i++) {
    for (int par = 0; par < 2; par++) {
      T_CONTEXT("%s fails, %s", calls[i], par ? "pread" : "read");
      assert_int_equal(fc.fail_after(calls[i], 1, CUDA_ERROR_ILLEGAL_ADDRESS), 0);
      ssize_t rc;
      if (par) {
        ASSERT_CODE(kvik_mmap_pread(m, dp(g_dev), 4 * MiB, 4096, &o, &fut), 0);
        rc = kvik_future_wait(fut);
      } else {
        /* Blocking reads make one copy: the first call fails. */
        fc.fail_clear();
        assert_int_equal(fc.fail_after(calls[i], 0, CUDA_ERROR_ILLEGAL_ADDRESS), 0);
        rc = kvik_mmap_read(m, dp(g_dev), 4 * MiB, 4096);
      }
      fc.fail_clear();
      /* An injected cuStreamSynchronize failure returns without waiting, unlike CUDA's, so the
       * copy it was to wait for may still run: wait for it before the buffer is reused. */
      cu.cuStreamSynchronize(NULL);
      ASSERT_CODE(rc, KVIK_ECUDA);
      ASSERT_CONTAINS(kvik_last_error(), "CUDA_ERROR_ILLEGAL_ADDRESS");
      ASSERT_CONTAINS(kvik_last_error(), g_path);
      ASSERT_CONTAINS(kvik_last_error(), i == 0 ? "cuMemcpyHtoDAsync_v2" : "cuStreamSynchronize");
      ASSERT_CONTAINS(kvik_last_error(), par ? "kvik_mmap_pread" : "kvik_mmap_read");
      check_ctx("a failed read");
      /* The next read is whole. */
      read_case(m, g_dev, 4096, 4 * MiB, 0, par ? 1 : -1, 1);
    }
  }
  /* A write whose copy from the device fails. */
  char *path = t_join(g_dir, "fault-write");
  kvik_mmap *w = NULL;
  ASSERT_CODE(kvik_mmap_open(&w, path, "w+", 1 * MiB, 0, 0600), 0);
  assert_int_equal(fc.fail_after("cuMemcpyDtoHAsync_v2", 0, CUDA_ERROR_ILLEGAL_ADDRESS), 0);
  ASSERT_CODE(kvik_mmap_write(w, dp(g_dev), 1 * MiB, 0), KVIK_ECUDA);
  fc.fail_clear();
  ASSERT_CONTAINS(kvik_last_error(), "cuMemcpyDtoHAsync_v2");
  ASSERT_CONTAINS(kvik_last_error(), "from device memory");
  check_ctx("a failed write");
  ASSERT_CODE(kvik_mmap_close(w), 0);
  unlink(path);
  free(path);
  ASSERT_CODE(kvik_mmap_close(m), 0);
  t_context[0] = 0;
}

static int group_setup(void **state) {
  (void)state;
  t_clear_kvikio_env();
  if (kvik_config_reload() != 0)
    return -1;
  if (cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS ||
      cu.cuCtxSetCurrent(ctx0) != CUDA_SUCCESS)
    return -1;
  g_depth = g_fake ? fc.live("ctx_depth") : -1;
  g_dir = t_mkdtemp(NULL);
  if (!g_dir)
    return -1;
  g_path = t_join(g_dir, "data");
  t_write_pattern_file(g_path, FSIZE, SEED);
  if (posix_memalign((void **)&g_host, 4096, DBUF) != 0)
    return -1;
  if (cu.cuMemAlloc_v2(&g_dev, DBUF) != CUDA_SUCCESS)
    return -1;
  for (int i = 0; i < 2; i++)
    if (kvik_pool_create(&g_pools[i], g_nthreads[i]) != 0)
      return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  for (int i = 0; i < 2; i++)
    kvik_pool_destroy(g_pools[i]);
  cu.cuMemFree_v2(g_dev);
  free(g_host);
  free(g_path);
  t_rmtree(g_dir);
  return 0;
}

/* Fake or real driver: 0 to run, 77 to skip (reason printed), 1 on error. */
static int choose_driver(void) {
  const char *real = getenv("KVIK_TEST_REAL_CUDA");
  bool want_real = real && strcmp(real, "1") == 0;
  if (ct_driver(&cu, NULL) != 0) {
    printf("SKIP test_mmap_device: libcuda.so.1 %s\n",
           ct_libcuda_loaded() ? "has no usable device (cuInit failed)" : "cannot be loaded");
    return 77;
  }
  g_fake = fake_cuda_bind(&fc) == 0;
  if (want_real && g_fake) {
    printf("SKIP test_mmap_device: KVIK_TEST_REAL_CUDA=1 but libcuda.so.1 is kvik's fake\n");
    return 77;
  }
  if (!want_real && !g_fake) {
    printf("test_mmap_device: libcuda.so.1 is not kvik's fake; set KVIK_TEST_REAL_CUDA=1 to run "
           "on the real driver\n");
    return 1;
  }
  if (!kvik_cuda_available()) {
    printf("test_mmap_device: kvik cannot use the driver: %s\n", kvik_last_error());
    return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  int rc = choose_driver();
  if (rc)
    return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(read_grid),          cmocka_unit_test(kinds),
      cmocka_unit_test(past_allocation),    cmocka_unit_test(writes),
      cmocka_unit_test(no_current_context), cmocka_unit_test(faults),
  };
  return cmocka_run_group_tests_name("mmap_device", tests, group_setup, group_teardown);
}
