/* The real-GPU tests: an 8 GiB round trip through device memory checked by checksums
 * (round_trip), and pool resizes between device I/O (pool_resize, described at it).
 *
 * 1. A cuMemAlloc buffer is filled with the pattern (made on the host in 256 MiB pieces, copied
 *    up, hashed per 1 GiB segment as it goes).
 * 2. kvik_file_pwrite writes it to a file (default settings), then the file's pages are dropped
 *    from the page cache (kvik_drop_file_cache).
 * 3. kvik_file_pread reads it cold into stream-ordered pool memory (cuMemAllocAsync); the
 *    buffer is copied back to the host in pieces and hashed: every segment must match.
 * 4. The file, now hot, is read again into the (zeroed) cuMemAlloc buffer; hashed again.
 * 5. The first segment is read into managed memory (cuMemAllocManaged); hashed again.
 * The kernels-free check: every comparison is of hashes of data copied back to the host.
 *
 * Runs with KVIK_TEST_REAL_CUDA=1 on the system's driver; without it, against kvik's fake only
 * when KVIK_TEST_ROUNDTRIP_SIZE is set (a size small enough for the fake, e.g. 64M), so the
 * logic can be checked in CI. Skips (77, reason printed) without a GPU, device memory or disk
 * space. KVIK_TEST_ROUNDTRIP_SIZE (bytes, K/M/G suffixes) overrides the 8 GiB.
 */
#include "common.h"

#include "cuda_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define SEG ((size_t)1 << 30)     /* hash segment */
#define PIECE ((size_t)256 << 20) /* host staging piece */
#define MAX_SEGS 64

static struct kvik__cuda_api cu;
static bool g_fake;
static CUcontext ctx0;
static size_t g_size = (size_t)8 << 30;
static char *g_dir;
static uint8_t *g_pinned; /* PIECE bytes of pinned staging memory */
static uint64_t g_seed = 20250;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Four independent multiply-xor lanes over 64-bit words, folded at the end: fast (no serial
 * dependency across lanes) and order-sensitive. n must be a multiple of 32 except at the end of
 * a segment; the tail is hashed bytewise. State carries across calls within a segment. */
struct hash {
  uint64_t l[4];
  uint64_t n;
};

static void hash_init(struct hash *h) {
  h->l[0] = 0x243f6a8885a308d3ULL;
  h->l[1] = 0x13198a2e03707344ULL;
  h->l[2] = 0xa4093822299f31d0ULL;
  h->l[3] = 0x082efa98ec4e6c89ULL;
  h->n = 0;
}

static void hash_update(struct hash *h, const uint8_t *p, size_t n) {
  const uint64_t k = 0x9fb21c651e98df25ULL;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    memcpy(w, p + i, 32);
    for (int j = 0; j < 4; j++) {
      h->l[j] = (h->l[j] ^ w[j]) * k;
      h->l[j] ^= h->l[j] >> 29;
    }
  }
  for (; i < n; i++)
    h->l[i % 4] = (h->l[i % 4] ^ p[i]) * k;
  h->n += n;
}

static uint64_t hash_final(const struct hash *h) {
  uint64_t x = h->n;
  for (int j = 0; j < 4; j++)
    x = (x ^ h->l[j]) * 0xff51afd7ed558ccdULL, x ^= x >> 33;
  return x;
}

/* Copies [0, n) of device memory d back to the host in pieces and hashes each segment. */
static void hash_device(CUdeviceptr d, size_t n, uint64_t *segs) {
  struct hash h;
  for (size_t s = 0; s * SEG < n; s++) {
    hash_init(&h);
    size_t end = (s + 1) * SEG < n ? (s + 1) * SEG : n;
    for (size_t at = s * SEG; at < end; at += PIECE) {
      size_t len = end - at < PIECE ? end - at : PIECE;
      CT_CU(cu.cuMemcpyDtoH_v2(g_pinned, d + at, len));
      hash_update(&h, g_pinned, len);
    }
    segs[s] = hash_final(&h);
  }
}

static void compare(const uint64_t *want, const uint64_t *got, size_t n, const char *what) {
  for (size_t s = 0; s * SEG < n; s++)
    if (want[s] != got[s])
      fail_msg("%s: segment %zu (bytes %zu..) hash %016llx, written %016llx", what, s, s * SEG,
               (unsigned long long)got[s], (unsigned long long)want[s]);
  printf("# %s: %zu segment hashes match\n", what, (n + SEG - 1) / SEG);
}

static ssize_t pio(kvik_file *f, bool write, CUdeviceptr d, size_t n) {
  kvik_future *fut = NULL;
  int rc = write ? kvik_file_pwrite(f, (void *)(uintptr_t)d, n, 0, NULL, &fut)
                 : kvik_file_pread(f, (void *)(uintptr_t)d, n, 0, NULL, &fut);
  return rc ? rc : kvik_future_wait(fut);
}

static void report(const char *what, size_t n, double t) {
  printf("# %-44s %6.2f s %7.2f GB/s\n", what, t, (double)n / t / 1e9);
  fflush(stdout);
}

static void round_trip(void **state) {
  (void)state;
  size_t n = g_size;
  size_t free_mem = 0, total_mem = 0;
  if (cu.cuMemGetInfo_v2 && cu.cuMemGetInfo_v2(&free_mem, &total_mem) == CUDA_SUCCESS &&
      free_mem < 2 * n + SEG)
    SKIP_BECAUSE("device 0 has %zu MiB free; the round trip needs %zu MiB", free_mem >> 20,
                 (2 * n + SEG) >> 20);
  struct statvfs vfs;
  if (statvfs(g_dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < n + SEG)
    SKIP_BECAUSE("%s has %llu MiB free; the round trip needs %zu MiB", g_dir,
                 (unsigned long long)((uint64_t)vfs.f_bavail * vfs.f_frsize >> 20),
                 (n + SEG) >> 20);
  size_t nsegs = (n + SEG - 1) / SEG;
  if (nsegs > MAX_SEGS)
    SKIP_BECAUSE("size %zu is over %d GiB", n, MAX_SEGS);
  uint64_t want[MAX_SEGS], got[MAX_SEGS];
  char *path = t_join(g_dir, "roundtrip");
  printf("# round trip of %zu MiB through device memory, file %s\n", n >> 20, path);

  /* 1. The source, in cuMemAlloc memory. */
  CUdeviceptr src = 0, pool = 0, managed = 0;
  CUstream s = NULL;
  CT_CU(cu.cuMemAlloc_v2(&src, n));
  double t0 = now();
  for (size_t seg = 0; seg < nsegs; seg++) {
    struct hash h;
    hash_init(&h);
    size_t end = (seg + 1) * SEG < n ? (seg + 1) * SEG : n;
    for (size_t at = seg * SEG; at < end; at += PIECE) {
      size_t len = end - at < PIECE ? end - at : PIECE;
      t_pat_fill(g_pinned, len, at, g_seed);
      hash_update(&h, g_pinned, len);
      CT_CU(cu.cuMemcpyHtoD_v2(src + at, g_pinned, len));
    }
    want[seg] = hash_final(&h);
  }
  report("fill the source (pattern, hash, copy up)", n, now() - t0);

  /* 2. Device to file, then drop the file's pages. */
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_DEFAULT), 0);
  struct kvik_file_info fi = {.sz = sizeof fi};
  ASSERT_CODE(kvik_file_info(f, &fi), 0);
  printf("# file path: %d (%s), O_DIRECT reads %d, writes %d\n", fi.path, fi.reason, fi.direct_read,
         fi.direct_write);
  t0 = now();
  ASSERT_CODE(pio(f, true, src, n), n);
  double tw = now() - t0;
  ASSERT_CODE(kvik_file_size(f), n);
  t0 = now();
  ASSERT_CODE(kvik_drop_file_cache(path), 0);
  report("write from cuMemAlloc memory (kvik_file_pwrite)", n, tw);
  report("  then fdatasync + drop the page cache", n, now() - t0);

  /* 3. Cold read into pool memory. */
  CT_CU(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CT_CU(cu.cuMemAllocAsync(&pool, n, s));
  CT_CU(cu.cuStreamSynchronize(s));
  ASSERT_CODE(kvik_mem_kind((void *)(uintptr_t)pool), KVIK_MEM_DEVICE);
  t0 = now();
  ASSERT_CODE(pio(f, false, pool, n), n);
  report("cold read into cuMemAllocAsync memory", n, now() - t0);
  hash_device(pool, n, got);
  compare(want, got, n, "cold read into pool memory");
  CT_CU(cu.cuMemFreeAsync(pool, s));
  CT_CU(cu.cuStreamSynchronize(s));

  /* 4. Hot read into the zeroed source buffer. */
  CT_CU(cu.cuMemsetD8_v2(src, 0, n));
  t0 = now();
  ASSERT_CODE(pio(f, false, src, n), n);
  report("hot read into cuMemAlloc memory", n, now() - t0);
  hash_device(src, n, got);
  compare(want, got, n, "hot read into cuMemAlloc memory");
  CT_CU(cu.cuMemFree_v2(src));

  /* 5. The first segment into managed memory (synchronous call). */
  size_t m = n < SEG ? n : SEG;
  CT_CU(cu.cuMemAllocManaged(&managed, m, CU_MEM_ATTACH_GLOBAL));
  ASSERT_CODE(kvik_mem_kind((void *)(uintptr_t)managed), KVIK_MEM_MANAGED);
  t0 = now();
  ASSERT_CODE(kvik_file_read(f, (void *)(uintptr_t)managed, m, 0), m);
  report("hot read into managed memory (kvik_file_read)", m, now() - t0);
  hash_device(managed, m, got);
  compare(want, got, m, "read into managed memory");
  CT_CU(cu.cuMemFree_v2(managed));
  CT_CU(cu.cuStreamDestroy_v2(s));

  ASSERT_CODE(kvik_file_close(f), 0);
  struct kvik_bounce_stats st = {.sz = sizeof st};
  ASSERT_CODE(kvik_bounce_stats(&st), 0);
  printf("# bounce buffers: %llu allocated, %llu in use, peak %llu, pinned %d\n",
         (unsigned long long)st.allocated, (unsigned long long)st.in_use,
         (unsigned long long)st.peak, st.pinned);
  ASSERT_CODE(st.in_use, 0);
  unlink(path);
  free(path);
}

/* The default pool resized up and down between device writes and reads (issue 9, item 0: on an
 * H200, shrinking the pool after device I/O crashed in cuStreamDestroy_v2, called from an exiting
 * worker's thread-exit destructor). Every round sets KVIKIO_NTHREADS through the setter (the next
 * call resizes the default pool, joining the workers past the new count), writes a fresh pattern
 * from device memory, reads it back into zeroed device memory and compares the bytes on the host.
 * Every fifth round a new thread does a blocking device read and exits (its stream is left to the
 * next device I/O of another thread). */
#define RESIZE_ROUNDS 50
#define RESIZE_SIZE ((size_t)32 * 1024 * 1024 + 4097)

struct user_read {
  kvik_file *f;
  CUdeviceptr dst;
  int64_t off;
  ssize_t got;
  char err[512];
};

static void *user_read_main(void *arg) {
  struct user_read *u = arg;
  u->got = kvik_file_read(u->f, (void *)(uintptr_t)u->dst, RESIZE_SIZE, u->off);
  if (u->got != (ssize_t)RESIZE_SIZE)
    snprintf(u->err, sizeof u->err, "%s", kvik_last_error());
  return NULL;
}

static void check_device(CUdeviceptr d, size_t n, uint64_t off, uint64_t seed, const char *what,
                         int round) {
  CT_CU(cu.cuMemcpyDtoH_v2(g_pinned, d, n));
  long long bad = t_pat_find_mismatch(g_pinned, n, off, seed);
  if (bad >= 0)
    fail_msg("round %d, %s: byte %lld of %zu is %#x, want %#x", round, what, bad, n, g_pinned[bad],
             t_pat_byte(off + (uint64_t)bad, seed));
}

static void pool_resize(void **state) {
  (void)state;
  static const unsigned counts[] = {16, 1, 8, 2, 32, 1, 4, 3, 16, 1};
  uint64_t saved = 0;
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_NTHREADS, &saved), 0);
  char *path = t_join(g_dir, "pool-resize");
  CUdeviceptr src = 0, dst = 0;
  CT_CU(cu.cuMemAlloc_v2(&src, RESIZE_SIZE));
  CT_CU(cu.cuMemAlloc_v2(&dst, RESIZE_SIZE));
  kvik_file *f = NULL; /* kvik's own device path, whose workers own CUDA streams: not cuFile */
  ASSERT_CODE(kvik_file_open(&f, path, "w+", 0644, KVIK_COMPAT_ON), 0);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 1 << 20}; /* the default pool */
  double t0 = now();
  for (int round = 0; round < RESIZE_ROUNDS; round++) {
    unsigned n = counts[round % (int)(sizeof counts / sizeof counts[0])];
    uint64_t seed = g_seed + 1000 + (uint64_t)round, off = (uint64_t)round * 4095;
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_NTHREADS, n), 0);
    t_pat_fill(g_pinned, RESIZE_SIZE, off, seed);
    CT_CU(cu.cuMemcpyHtoD_v2(src, g_pinned, RESIZE_SIZE));
    CT_CU(cu.cuMemsetD8_v2(dst, 0, RESIZE_SIZE));
    kvik_future *fut = NULL;
    ASSERT_CODE(kvik_file_pwrite(f, (void *)(uintptr_t)src, RESIZE_SIZE, (int64_t)off, &o, &fut),
                0);
    ASSERT_CODE(kvik_future_wait(fut), RESIZE_SIZE);
    ASSERT_CODE(kvik_pool_nthreads(NULL), (int)n);
    ASSERT_CODE(kvik_file_pread(f, (void *)(uintptr_t)dst, RESIZE_SIZE, (int64_t)off, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), RESIZE_SIZE);
    check_device(dst, RESIZE_SIZE, off, seed, "parallel read", round);
    if (round % 5 == 4) {
      CT_CU(cu.cuMemsetD8_v2(dst, 0, RESIZE_SIZE));
      struct user_read u = {.f = f, .dst = dst, .off = (int64_t)off};
      pthread_t t;
      assert_int_equal(pthread_create(&t, NULL, user_read_main, &u), 0);
      assert_int_equal(pthread_join(t, NULL), 0);
      if (u.err[0])
        fail_msg("round %d: kvik_file_read on a user thread returned %zd: %s", round, u.got, u.err);
      check_device(dst, RESIZE_SIZE, off, seed, "blocking read on a user thread", round);
    }
  }
  printf("# %d pool resizes between device writes and reads of %zu bytes: all bytes match "
         "(%.1f s)\n",
         RESIZE_ROUNDS, RESIZE_SIZE, now() - t0);
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_NTHREADS, saved), 0);
  CT_CU(cu.cuMemFree_v2(src));
  CT_CU(cu.cuMemFree_v2(dst));
  unlink(path);
  free(path);
}

static int setup(void **state) {
  (void)state;
  if (cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS ||
      cu.cuCtxSetCurrent(ctx0) != CUDA_SUCCESS)
    return -1;
  if (cu.cuMemHostAlloc((void **)&g_pinned, PIECE, CU_MEMHOSTALLOC_PORTABLE) != CUDA_SUCCESS)
    return -1;
  const char *base = getenv("KVIK_TEST_DIR");
  g_dir = t_mkdtemp(base && *base ? base : NULL);
  return g_dir ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  cu.cuMemFreeHost(g_pinned);
  t_rmtree(g_dir);
  return 0;
}

static uint64_t parse_size(const char *s) {
  char *end;
  uint64_t v = strtoull(s, &end, 10);
  switch (*end) {
  case 'G':
  case 'g': v <<= 30; break;
  case 'M':
  case 'm': v <<= 20; break;
  case 'K':
  case 'k': v <<= 10; break;
  default: break;
  }
  return v;
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  const char *real = getenv("KVIK_TEST_REAL_CUDA");
  const char *size = getenv("KVIK_TEST_ROUNDTRIP_SIZE");
  if (size && *size)
    g_size = (size_t)parse_size(size);
  if (ct_driver(&cu, NULL) != 0) {
    printf("SKIP gpu_extra: libcuda.so.1 cannot be loaded or has no usable device\n");
    return 77;
  }
  struct fake_cuda fc;
  g_fake = fake_cuda_bind(&fc) == 0;
  if (g_fake && !(size && *size)) {
    printf("SKIP gpu_extra: libcuda.so.1 is kvik's fake; this test is for a real GPU (set "
           "KVIK_TEST_ROUNDTRIP_SIZE to run it small on the fake)\n");
    return 77;
  }
  if (!g_fake && !(real && strcmp(real, "1") == 0)) {
    printf("SKIP gpu_extra: set KVIK_TEST_REAL_CUDA=1 to run on the real driver\n");
    return 77;
  }
  if (g_size == 0 || g_size % 4096) {
    printf("gpu_extra: KVIK_TEST_ROUNDTRIP_SIZE must be a positive multiple of 4096\n");
    return 1;
  }
  struct kvik_gpu_info gi = {.sz = sizeof gi};
  if (kvik_gpu_info(0, &gi) == 0)
    printf("# device 0: %s, %llu MiB, PCI %s, %d GPU(s)\n", gi.name,
           (unsigned long long)(gi.total_mem >> 20), gi.pci_bus_id, kvik_gpu_count());
  const struct CMUnitTest tests[] = {cmocka_unit_test(round_trip), cmocka_unit_test(pool_resize)};
  return cmocka_run_group_tests_name("gpu_extra", tests, setup, teardown);
}
