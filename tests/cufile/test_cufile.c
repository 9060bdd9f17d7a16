/* cuFile in kvik: the path each file takes (every compat mode against every point where cuFile
 * can fail), reads and writes through cuFile over a grid of sizes, offsets, threads, task sizes,
 * GDS thresholds and buffer alignments, driver properties, buffer registration, batch I/O (cuFile
 * batch, the pool, and both in one batch) and stream-ordered I/O (cuFile's and kvik's own, work
 * before and after on the same stream), plus bad input.
 *
 * Against the fakes (CI): libcuda.so.1 and libcufile.so.0 of tests/fake, through LD_LIBRARY_PATH.
 * With KVIK_TEST_REAL_CUDA=1 the same binary runs against the system's CUDA and cuFile (the GPU
 * machine, tests/gpu/cufile.sh): the parts that need the fakes (failure injection, claiming
 * real GDS) skip with a printed reason, and cuFile is expected in its compatibility mode.
 *
 * `test_cufile [pattern]` runs the cmocka group; `test_cufile --scenario NAME` runs one of the
 * process-level scenarios (a library that is missing, a driver that fails to open, no CUDA, the
 * minimal libcufile, the no-stream-memops fallback, a deferred decision, exit with everything
 * still registered), each registered as its own CTest entry with its environment. */
#include "common.h"

#include "cuda_test.h"
#include "fake_cufile.h"
#include "gpu/cufile.h"
#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static bool g_real;              /* KVIK_TEST_REAL_CUDA=1: the system's CUDA and cuFile */
static struct kvik__cuda_api cu; /* the test's own driver table */
static struct fake_cuda fc;
static struct fake_cufile ff;
static CUcontext ctx0;
static char *g_dir;     /* test files, on a filesystem that takes O_DIRECT */
static char *g_nvfs;    /* a stand-in for /proc/driver/nvidia-fs (has "version") */
static char *g_no_nvfs; /* a directory without "version" */
static int g_file_no;

#define FAKE_ONLY()                                                                                \
  do {                                                                                             \
    if (g_real)                                                                                    \
      SKIP_BECAUSE("needs the fake libcufile (failure injection / claiming real GDS)");            \
  } while (0)

static void *dp(CUdeviceptr d) { return (void *)(uintptr_t)d; }

static CUdeviceptr dalloc(size_t n) {
  CUdeviceptr d = 0;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx0));
  CT_CU(cu.cuMemAlloc_v2(&d, n ? n : 1));
  CUcontext c;
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
  return d;
}

static void dfree(CUdeviceptr d) {
  CUcontext c;
  cu.cuCtxPushCurrent_v2(ctx0);
  cu.cuMemFree_v2(d);
  cu.cuCtxPopCurrent_v2(&c);
}

static void h2d(CUdeviceptr d, const void *h, size_t n) {
  CUcontext c;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx0));
  if (n)
    CT_CU(cu.cuMemcpyHtoD_v2(d, h, n));
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
}

static void d2h(void *h, CUdeviceptr d, size_t n) {
  CUcontext c;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx0));
  if (n)
    CT_CU(cu.cuMemcpyDtoH_v2(h, d, n));
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
}

static char *new_path(void) {
  char name[64];
  snprintf(name, sizeof name, "f%d.bin", g_file_no++);
  return t_join(g_dir, name);
}

/* The fake's mode: real GDS through nvidia-fs, kernel P2PDMA, or compatibility mode only; the
 * filesystem check forced (1, 0) or decided from the file (-1). */
enum mode { M_COMPAT, M_NVFS, M_P2P };
static void set_mode(enum mode m, int fs_dma) {
  if (g_real) {
    kvik__cufile_test_hooks(NULL, -1);
    return;
  }
  ff.set("gds", m == M_NVFS);
  ff.set("p2p", m == M_P2P);
  kvik__cufile_test_hooks(m == M_NVFS ? g_nvfs : g_no_nvfs, fs_dma);
}

static kvik_file *open_mode(const char *path, const char *flags, kvik_compat c, int want_rc) {
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, flags, 0644, c), want_rc);
  return f;
}

static struct kvik_file_info info_of(kvik_file *f) {
  struct kvik_file_info fi = {.sz = sizeof fi};
  ASSERT_CODE(kvik_file_info(f, &fi), 0);
  return fi;
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* KVIK_TEST_DEBUG_LOG=1: kvik's debug log on stderr (the tests clear KVIKIO_LOG_* first). */
static void log_to_stderr(int level, const char *message, void *user) {
  (void)user;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  fprintf(stderr, "[%ld.%06ld %d] %s\n", (long)ts.tv_sec, ts.tv_nsec / 1000, level, message);
}

static int setup(void **state) {
  (void)state;
  t_reset_config();
  if (getenv("KVIK_TEST_DEBUG_LOG"))
    kvik_set_log(log_to_stderr, NULL, KVIK_LOG_DEBUG);
  if (ct_driver(&cu, NULL) != 0) {
    print_error("libcuda.so.1 cannot be used\n");
    return -1;
  }
  if (!g_real && (fake_cuda_bind(&fc) != 0 || fake_cufile_bind(&ff) != 0)) {
    print_error("libcuda.so.1 / libcufile.so.0 are not kvik's fakes (LD_LIBRARY_PATH=%s)\n",
                getenv("LD_LIBRARY_PATH") ? getenv("LD_LIBRARY_PATH") : "");
    return -1;
  }
  if (cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS)
    return -1;
  /* Allocations wait for every stream, as CUDA documents: a worker that allocated pinned memory
   * while a stream waits for it would hang here as it does on a GPU. */
  if (!g_real)
    fc.set("alloc_syncs", 1);
  char fs[64];
  const char *base = t_direct_io_base(fs);
  g_dir = t_mkdtemp(base);
  if (!g_dir)
    return -1;
  g_nvfs = t_join(g_dir, "nvfs");
  g_no_nvfs = t_join(g_dir, "no-nvfs");
  mkdir(g_nvfs, 0755);
  char *v = t_join(g_nvfs, "version");
  FILE *fp = fopen(v, "w");
  if (fp) {
    fputs("version: 2.20\n", fp);
    fclose(fp);
  }
  free(v);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  kvik__cufile_test_hooks(NULL, -1);
  t_rmtree(g_dir);
  free(g_nvfs);
  free(g_no_nvfs);
  cu.cuDevicePrimaryCtxRelease_v2(0);
  return 0;
}

/* ---- availability, version, properties ------------------------------------------------------ */

static void misc_available(void **state) {
  (void)state;
  assert_int_equal(kvik_cufile_available(), 1);
  int v = 0;
  ASSERT_CODE(kvik_cufile_version(NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_cufile_version(&v), 0);
  print_message("cuFile version %d\n", v);
  if (!g_real)
    assert_int_equal(v, 1150);
  struct kvik_cufile_props p = {.sz = sizeof p};
  set_mode(M_COMPAT, -1);
  ASSERT_CODE(kvik_cufile_props(&p), 0);
  print_message("props: nvfs %u.%u poll %d (%llu KiB) max direct %llu KiB status %#x control %#x "
                "features %#x batch %d streams %d nvfs_loaded %d p2pdma %d\n",
                p.nvfs_major, p.nvfs_minor, p.poll_mode, (unsigned long long)p.poll_thresh_size_kb,
                (unsigned long long)p.max_direct_io_size_kb, p.dstatusflags, p.dcontrolflags,
                p.fflags, p.batch, p.streams, p.nvfs_loaded, p.p2pdma);
  if (!g_real) {
    assert_int_equal(p.batch, 1);
    assert_int_equal(p.streams, 1);
    assert_int_equal(p.allow_compat_mode, 1);
    assert_int_equal(p.nvfs_loaded, 0);
    assert_int_equal(p.version, 1150);
    set_mode(M_NVFS, -1);
    ASSERT_CODE(kvik_cufile_props(&p), 0);
    assert_int_equal(p.nvfs_loaded, 1);
    assert_int_equal(p.nvfs_major, 2);
    set_mode(M_P2P, -1);
    ASSERT_CODE(kvik_cufile_props(&p), 0);
    assert_int_equal(p.p2pdma, 1);
    set_mode(M_COMPAT, -1);
  }
  p.sz = 8;
  ASSERT_CODE(kvik_cufile_props(&p), KVIK_EINVAL);
  ASSERT_CODE(kvik_cufile_props(NULL), KVIK_EINVAL);
}

static void misc_props_set(void **state) {
  (void)state;
  uint64_t v = 0, old = 0;
  ASSERT_CODE(kvik_cufile_prop_get(KVIK_CUFILE_POLL_THRESH_SIZE_KB, &old), 0);
  ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_POLL_MODE, 1), 0);
  ASSERT_CODE(kvik_cufile_prop_get(KVIK_CUFILE_POLL_MODE, &v), 0);
  /* The real cuFile in its compatibility mode accepts the setters but may not show the change in
   * its properties; the fake does. */
  print_message("poll mode after setting it to 1: %llu\n", (unsigned long long)v);
  if (!g_real)
    assert_int_equal(v, 1);
  ASSERT_CODE(kvik_cufile_prop_get(KVIK_CUFILE_POLL_THRESH_SIZE_KB, &v), 0);
  if (!g_real)
    assert_int_equal(v, old); /* the threshold is kept when the mode changes */
  ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_POLL_THRESH_SIZE_KB, 64), 0);
  ASSERT_CODE(kvik_cufile_prop_get(KVIK_CUFILE_POLL_THRESH_SIZE_KB, &v), 0);
  print_message("poll threshold after setting it to 64 KiB: %llu\n", (unsigned long long)v);
  if (!g_real)
    assert_int_equal(v, 64);
  ASSERT_CODE(kvik_cufile_prop_get(KVIK_CUFILE_POLL_MODE, &v), 0);
  if (!g_real)
    assert_int_equal(v, 1); /* and the mode when the threshold changes */
  ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_POLL_MODE, 0), 0);
  ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_POLL_THRESH_SIZE_KB, old), 0);
  if (!g_real) {
    ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_MAX_DIRECT_IO_SIZE_KB, 8192), 0);
    ASSERT_CODE(kvik_cufile_prop_get(KVIK_CUFILE_MAX_DIRECT_IO_SIZE_KB, &v), 0);
    assert_int_equal(v, 8192);
    ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_MAX_CACHE_SIZE_KB, 65536), 0);
    ASSERT_CODE(kvik_cufile_prop_get(KVIK_CUFILE_MAX_CACHE_SIZE_KB, &v), 0);
    assert_int_equal(v, 65536);
    ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_MAX_PINNED_MEM_SIZE_KB, 1 << 20), 0);
    ASSERT_CODE(kvik_cufile_prop_get(KVIK_CUFILE_MAX_PINNED_MEM_SIZE_KB, &v), 0);
    assert_int_equal(v, 1 << 20);
    /* cuFile's own refusal reaches the caller by name. */
    ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_MAX_DIRECT_IO_SIZE_KB, 0), KVIK_ECUFILE);
    ASSERT_CONTAINS(kvik_last_error(), "CU_FILE_INVALID_VALUE (5022)");
  }
  ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_PER_BUFFER_CACHE_SIZE_KB, 1), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "read-only");
  ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_MAX_BATCH_IO_SIZE, 1), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "max batch I/O size is read-only");
  ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_MAX_BATCH_IO_TIMEOUT_MS, 1), KVIK_EINVAL);
  ASSERT_CODE(kvik_cufile_prop_get(KVIK_CUFILE_MAX_BATCH_IO_SIZE, &v), 0);
  ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_POLL_MODE, 2), KVIK_EINVAL);
  ASSERT_CODE(kvik_cufile_prop_set(KVIK_CUFILE_MAX_CACHE_SIZE_KB, (uint64_t)1 << 40), KVIK_EINVAL);
  ASSERT_CODE(kvik_cufile_prop_set((enum kvik_cufile_prop)99, 1), KVIK_EINVAL);
  ASSERT_CODE(kvik_cufile_prop_get((enum kvik_cufile_prop)99, &v), KVIK_EINVAL);
  ASSERT_CODE(kvik_cufile_prop_get(KVIK_CUFILE_POLL_MODE, NULL), KVIK_EINVAL);
}

/* ---- the path of each file ----------------------------------------------------------------- */

/* O_DIRECT refused by the filesystem: every O_DIRECT open fails with EINVAL. */
static int open_no_direct(const char *path, int flags, mode_t mode) {
  if (flags & O_DIRECT) {
    errno = EINVAL;
    return -1;
  }
  return open(path, flags, mode);
}

struct path_case {
  const char *name;
  enum mode mode;
  int fs_dma;   /* the filesystem hook */
  int prefer;   /* KVIK_PREFER_CUFILE_COMPAT */
  int fail;     /* 1: cuFileHandleRegister fails with 5027; 2: O_DIRECT refused */
  int off_rc;   /* compat OFF: the open's result ...                                    */
  int off_path; /* ... and the path                                                     */
  const char *off_why;
  int auto_path; /* compat AUTO: the path (the open always succeeds)                     */
  const char *auto_why;
};

static const struct path_case path_cases[] = {
    {"compat mode only", M_COMPAT, -1, 0, 0, 0, KVIK_PATH_CUFILE_COMPAT, "nvidia-fs not loaded",
     KVIK_PATH_POSIX, "faster than cuFile's compat mode"},
    {"compat mode, cuFile preferred", M_COMPAT, -1, 1, 0, 0, KVIK_PATH_CUFILE_COMPAT,
     "cuFile serves the file", KVIK_PATH_CUFILE_COMPAT, "KVIK_PREFER_CUFILE_COMPAT is set"},
    {"nvidia-fs, supported storage", M_NVFS, 1, 0, 0, 0, KVIK_PATH_GDS, "nvidia-fs is active",
     KVIK_PATH_GDS, "real GDS"},
    {"nvidia-fs, storage without DMA", M_NVFS, -1, 0, 0, 0, KVIK_PATH_CUFILE_COMPAT, "no DMA for",
     KVIK_PATH_POSIX, "no DMA for"},
    {"kernel P2PDMA", M_P2P, 1, 0, 0, 0, KVIK_PATH_GDS, "kernel P2PDMA", KVIK_PATH_GDS,
     "kernel P2PDMA"},
    {"registration fails (5027)", M_COMPAT, -1, 1, 1, KVIK_ECUFILE, 0,
     "registering the file with cuFile failed: cuFileHandleRegister", KVIK_PATH_POSIX,
     "CU_FILE_HANDLE_NOT_REGISTERED (5027)"},
    {"registration fails (5027), GDS", M_NVFS, 1, 0, 1, KVIK_ECUFILE, 0,
     "CU_FILE_HANDLE_NOT_REGISTERED (5027)", KVIK_PATH_POSIX, "registering the file"},
    {"O_DIRECT refused", M_NVFS, 1, 0, 2, -EINVAL, 0, "opening the file with O_DIRECT for cuFile",
     KVIK_PATH_POSIX, "O_DIRECT refused"},
};

static void path_choice(void **state) {
  (void)state;
  FAKE_ONLY();
  char *path = new_path();
  t_write_pattern_file(path, 4096, 1);
  for (size_t i = 0; i < sizeof path_cases / sizeof path_cases[0]; i++) {
    const struct path_case *pc = &path_cases[i];
    T_CONTEXT("path case \"%s\"", pc->name);
    print_message("# %s\n", pc->name);
    set_mode(pc->mode, pc->fs_dma);
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_PREFER_CUFILE_COMPAT, (uint64_t)pc->prefer), 0);
    for (int c = 0; c < 3; c++) {
      kvik_compat compat = c == 0 ? KVIK_COMPAT_OFF : c == 1 ? KVIK_COMPAT_AUTO : KVIK_COMPAT_ON;
      if (pc->fail == 1)
        ff.inject("cuFileHandleRegister", 0, CU_FILE_HANDLE_NOT_REGISTERED, 1);
      if (pc->fail == 2)
        kvik__sys.open = open_no_direct;
      int want_rc = compat == KVIK_COMPAT_OFF ? pc->off_rc : 0;
      long handles = ff.live("handles");
      kvik_file *f = open_mode(path, "r", compat, want_rc);
      kvik__sys_reset();
      ff.fail_clear();
      if (want_rc) {
        ASSERT_CONTAINS(kvik_last_error(), "compat mode OFF requires cuFile");
        ASSERT_CONTAINS(kvik_last_error(), pc->off_why);
        print_message("  OFF: %s\n", kvik_last_error());
        assert_int_equal(ff.live("handles"), handles); /* nothing left registered */
        continue;
      }
      struct kvik_file_info fi = info_of(f);
      print_message("  %s: path %d: %s\n",
                    compat == KVIK_COMPAT_OFF ? "OFF"
                    : c == 1                  ? "AUTO"
                                              : "ON",
                    fi.path, fi.reason);
      if (compat == KVIK_COMPAT_OFF) {
        assert_int_equal(fi.path, pc->off_path);
        ASSERT_CONTAINS(fi.reason, pc->off_why);
      } else if (compat == KVIK_COMPAT_AUTO) {
        assert_int_equal(fi.path, pc->auto_path);
        ASSERT_CONTAINS(fi.reason, pc->auto_why);
      } else {
        assert_int_equal(fi.path, KVIK_PATH_POSIX);
        ASSERT_CONTAINS(fi.reason, "compat mode ON");
      }
      assert_int_equal(fi.compat, (int)compat);
      /* A cuFile handle exactly when cuFile serves the file, and none after close. */
      assert_int_equal(ff.live("handles"), handles + (fi.path != KVIK_PATH_POSIX));
      ASSERT_CODE(kvik_file_close(f), 0);
      assert_int_equal(ff.live("handles"), handles);
    }
  }
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_PREFER_CUFILE_COMPAT, 0), 0);
  /* KVIKIO_COMPAT_MODE picks the mode for KVIK_COMPAT_DEFAULT. */
  set_mode(M_COMPAT, -1);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_COMPAT_MODE, KVIK_COMPAT_OFF), 0);
  kvik_file *f = open_mode(path, "r", KVIK_COMPAT_DEFAULT, 0);
  assert_int_equal(info_of(f).path, KVIK_PATH_CUFILE_COMPAT);
  kvik_file_close(f);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_COMPAT_MODE, KVIK_COMPAT_AUTO), 0);
  t_context[0] = '\0';
  free(path);
}

/* On the real machine: OFF is cuFile in its compatibility mode, AUTO is kvik's path, and says
 * why. */
static void path_real(void **state) {
  (void)state;
  if (!g_real)
    SKIP_BECAUSE("only against the real cuFile (path_choice covers the fake)");
  char *path = new_path();
  t_write_pattern_file(path, 4096, 1);
  kvik_file *f = NULL;
  int rc = kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_OFF);
  print_message("OFF: %s\n", rc ? kvik_last_error() : info_of(f).reason);
  ASSERT_CODE(rc, 0);
  struct kvik_file_info fi = info_of(f);
  print_message("OFF path: %s\n", fi.path == KVIK_PATH_GDS             ? "gds"
                                  : fi.path == KVIK_PATH_CUFILE_COMPAT ? "cufile-compat"
                                                                       : "posix");
  assert_int_not_equal(fi.path, KVIK_PATH_POSIX);
  kvik_file_close(f);
  f = open_mode(path, "r", KVIK_COMPAT_AUTO, 0);
  fi = info_of(f);
  print_message("AUTO: path %d: %s\n", fi.path, fi.reason);
  struct kvik_cufile_props p = {.sz = sizeof p};
  ASSERT_CODE(kvik_cufile_props(&p), 0);
  if (!p.nvfs_loaded && !p.p2pdma) {
    assert_int_equal(fi.path, KVIK_PATH_POSIX);
    ASSERT_CONTAINS(fi.reason, "faster than cuFile's compat mode");
  }
  kvik_file_close(f);
  free(path);
}

/* ---- reads and writes through cuFile: the grid ----------------------------------------------- */

#define NS 6
#define NO 4
static const size_t g_sizes[NS] = {1, 4095, 4096, 4097, 1024 * 1024 - 1, 4 * 1024 * 1024 + 13};
static const int64_t g_offs[NO] = {0, 1, 4096, 8601 * 8};
static const unsigned g_threads[2] = {1, 4};
static const size_t g_tasks[3] = {4096, 1024 * 1024, 4 * 1024 * 1024};
static const size_t g_gds[2] = {0, 16 * 1024};
static const size_t g_align[2] = {0, 984};
#define GRID_MAX (4 * 1024 * 1024 + 13 + 8601 * 8 + 2 * 4096)

struct grid_ctx {
  CUdeviceptr d;   /* GRID_MAX + 1024 bytes */
  uint8_t *h, *h2; /* GRID_MAX each */
  kvik_pool *pools[2];
};

/* One case: write the pattern at off from device memory, read it back into a poisoned device
 * buffer, check the bytes and the file, then a read across end of file and one past it. */
static void grid_case(struct grid_ctx *g, kvik_compat compat, bool parallel, size_t size,
                      int64_t off, unsigned ti, size_t task, size_t gds, size_t align,
                      uint64_t seed) {
  T_CONTEXT("%s %s size=%zu off=%lld threads=%u task=%zu gds_threshold=%zu align=%zu",
            compat == KVIK_COMPAT_OFF ? "OFF" : "AUTO(gds)", parallel ? "pread" : "read", size,
            (long long)off, g_threads[ti], task, gds, align);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_GDS_THRESHOLD, gds), 0);
  char *path = new_path();
  kvik_file *f = open_mode(path, "w+", compat, 0);
  struct kvik_file_info fi = info_of(f);
  assert_int_not_equal(fi.path, KVIK_PATH_POSIX);
  long rb = g_real ? 0 : ff.live("read_bytes"), wb = g_real ? 0 : ff.live("write_bytes");
  CUdeviceptr d = g->d + align;
  t_pat_fill(g->h, size, (uint64_t)off, seed);
  h2d(d, g->h, size);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = task, .pool = g->pools[ti]};
  kvik_future *fut;
  if (parallel) {
    ASSERT_CODE(kvik_file_pwrite(f, dp(d), size, off, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), (long long)size);
  } else {
    ASSERT_CODE(kvik_file_write(f, dp(d), size, off), (long long)size);
  }
  ASSERT_CODE(kvik_file_size(f), off + (int64_t)size);
  /* Read back into a poisoned buffer, with guards on both sides. */
  memset(g->h2, 0xA5, size + 2048);
  h2d(g->d, g->h2, size + 2048);
  if (parallel) {
    ASSERT_CODE(kvik_file_pread(f, dp(d), size, off, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), (long long)size);
  } else {
    ASSERT_CODE(kvik_file_read(f, dp(d), size, off), (long long)size);
  }
  d2h(g->h2, g->d, size + 2048);
  ASSERT_FILLED(g->h2, align, 0xA5, "guard before the buffer");
  ASSERT_PATTERN(g->h2 + align, size, (uint64_t)off, seed, "device buffer after the read");
  ASSERT_FILLED(g->h2 + align + size, 1024, 0xA5, "guard after the buffer");
  /* Across end of file: a short count; past it: 0. */
  size_t window = 8192;
  int64_t at = off + (int64_t)size - (int64_t)(size < 100 ? size : 100);
  size_t want = (size_t)(off + (int64_t)size - at);
  ASSERT_CODE(kvik_file_read(f, dp(d), window, at), (long long)want);
  d2h(g->h2, d, want);
  ASSERT_PATTERN(g->h2, want, (uint64_t)at, seed, "read across end of file");
  ASSERT_CODE(kvik_file_read(f, dp(d), window, off + (int64_t)size), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  /* On disk, through plain pread. */
  ASSERT_CODE(t_read_file(path, g->h2, size, (uint64_t)off), (long long)size);
  ASSERT_PATTERN(g->h2, size, (uint64_t)off, seed, "file on disk");
  if (!g_real) {
    /* cuFile moved the bytes exactly when the transfer reaches the threshold. */
    bool via = size >= gds;
    if (via)
      assert_true(ff.live("write_bytes") - wb >= (long)size);
    else
      assert_int_equal(ff.live("write_bytes"), wb);
    if (via)
      assert_true(ff.live("read_bytes") - rb >= (long)size);
  }
  unlink(path);
  free(path);
}

static void run_grid(kvik_compat compat) {
  struct grid_ctx g;
  g.d = dalloc(GRID_MAX + 4096);
  g.h = t_alloc_aligned(GRID_MAX + 4096);
  g.h2 = t_alloc_aligned(GRID_MAX + 4096);
  ASSERT_CODE(kvik_pool_create(&g.pools[0], 1), 0);
  ASSERT_CODE(kvik_pool_create(&g.pools[1], 4), 0);
  unsigned n = 0;
  for (size_t si = 0; si < NS; si++)
    for (size_t oi = 0; oi < NO; oi++) {
      unsigned r = (unsigned)(si * NO + oi);
      grid_case(&g, compat, false, g_sizes[si], g_offs[oi], 0, 0, g_gds[r % 2],
                g_align[(r / 2) % 2], r + 1);
      for (unsigned ti = 0; ti < 2; ti++) {
        size_t task = g_tasks[(r + ti) % 3];
        if (g_sizes[si] / task > 600)
          task = g_tasks[1];
        grid_case(&g, compat, true, g_sizes[si], g_offs[oi], ti, task, g_gds[(r + ti + 1) % 2],
                  g_align[(r + ti) % 2], r + 100);
      }
      n += 3;
    }
  print_message("%u cases\n", n);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_GDS_THRESHOLD, 16 * 1024), 0);
  kvik_pool_destroy(g.pools[0]);
  kvik_pool_destroy(g.pools[1]);
  dfree(g.d);
  free(g.h);
  free(g.h2);
  t_context[0] = '\0';
}

static void grid_compat_off(void **state) {
  (void)state;
  set_mode(M_COMPAT, -1);
  run_grid(KVIK_COMPAT_OFF);
}

static void grid_gds(void **state) {
  (void)state;
  FAKE_ONLY();
  set_mode(M_NVFS, 1);
  run_grid(KVIK_COMPAT_AUTO);
  set_mode(M_COMPAT, -1);
}

/* Host memory never goes through cuFile; managed memory neither. A cuFile error reaches the
 * caller by name. */
static void misc_memory_kinds_and_errors(void **state) {
  (void)state;
  set_mode(M_COMPAT, -1);
  char *path = new_path();
  t_write_pattern_file(path, 1 << 20, 7);
  kvik_file *f = open_mode(path, "r+", KVIK_COMPAT_OFF, 0);
  long calls = g_real ? 0 : ff.calls("cuFileRead");
  uint8_t *h = t_alloc_aligned(1 << 20);
  ASSERT_CODE(kvik_file_read(f, h, 1 << 20, 0), 1 << 20);
  ASSERT_PATTERN(h, 1 << 20, 0, 7, "host read on a cuFile file");
  kvik_future *fut;
  ASSERT_CODE(kvik_file_pread(f, h, 1 << 20, 0, NULL, &fut), 0);
  ASSERT_CODE(kvik_future_wait(fut), 1 << 20);
  CUdeviceptr m = 0;
  CUcontext c;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx0));
  CT_CU(cu.cuMemAllocManaged(&m, 1 << 20, CU_MEM_ATTACH_GLOBAL));
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
  ASSERT_CODE(kvik_file_read(f, dp(m), 1 << 20, 0), 1 << 20);
  if (!g_real)
    assert_int_equal(ff.calls("cuFileRead"), calls);
  if (!g_real) {
    CUdeviceptr d = dalloc(1 << 20);
    ff.inject("cuFileRead", 0, CU_FILE_CUDA_DRIVER_ERROR, 1);
    ASSERT_CODE(kvik_file_read(f, dp(d), 1 << 20, 0), KVIK_ECUFILE);
    ASSERT_CONTAINS(kvik_last_error(), "cuFileRead");
    ASSERT_CONTAINS(kvik_last_error(), "CU_FILE_CUDA_DRIVER_ERROR (5011)");
    ASSERT_CONTAINS(kvik_last_error(), path);
    ff.inject("cuFileWrite", 1, CU_FILE_IO_NOT_SUPPORTED, 1);
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = 256 * 1024};
    ASSERT_CODE(kvik_file_pwrite(f, dp(d), 1 << 20, 0, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), KVIK_ECUFILE);
    ASSERT_CONTAINS(kvik_last_error(), "CU_FILE_IO_NOT_SUPPORTED (5008)");
    ff.fail_clear();
    dfree(d);
  }
  CT_CU(cu.cuCtxPushCurrent_v2(ctx0));
  cu.cuMemFree_v2(m);
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
  kvik_file_close(f);
  free(h);
  free(path);
}

/* ---- buffer registration --------------------------------------------------------------------- */

static void misc_register(void **state) {
  (void)state;
  set_mode(M_COMPAT, -1);
  size_t n = 1 << 20;
  CUdeviceptr d = dalloc(2 * n);
  long bufs = g_real ? 0 : ff.live("buffers");
  ASSERT_CODE(kvik_buffer_register(NULL, n, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_buffer_register(dp(d), 0, 0), KVIK_EINVAL);
  uint8_t *h = t_alloc_aligned(n);
  ASSERT_CODE(kvik_buffer_register(h, n, 0), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "host memory");
  ASSERT_CODE(kvik_buffer_register(dp(d), 4 * n, 0), KVIK_EINVAL); /* past the allocation */
  ASSERT_CODE(kvik_buffer_register(dp(d), n, 0), 0);
  if (!g_real)
    assert_int_equal(ff.live("buffers"), bufs + 1);
  ASSERT_CODE(kvik_buffer_register(dp(d + n / 2), n, 0), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "overlaps the registered buffer");
  ASSERT_CODE(kvik_buffer_register(dp(d), n, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_buffer_register(dp(d + n), n, 0), 0); /* adjacent: fine */
  /* I/O inside a registered buffer. */
  char *path = new_path();
  t_write_pattern_file(path, n, 3);
  kvik_file *f = open_mode(path, "r", KVIK_COMPAT_OFF, 0);
  ASSERT_CODE(kvik_file_read(f, dp(d + 4096), n - 4096, 4096), (long long)(n - 4096));
  d2h(h, d + 4096, n - 4096);
  ASSERT_PATTERN(h, n - 4096, 4096, 3, "read into a registered buffer");
  kvik_file_close(f);
  ASSERT_CODE(kvik_buffer_deregister(dp(d + 100)), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "not the start of a registered buffer");
  ASSERT_CODE(kvik_buffer_deregister(dp(d)), 0);
  ASSERT_CODE(kvik_buffer_deregister(dp(d)), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "not registered");
  ASSERT_CODE(kvik_buffer_deregister(dp(d + n)), 0);
  ASSERT_CODE(kvik_buffer_deregister(h), KVIK_EINVAL);
  ASSERT_CODE(kvik_buffer_deregister(NULL), KVIK_EINVAL);
  if (!g_real) {
    assert_int_equal(ff.live("buffers"), bufs);
    /* cuFile refusing a registration. */
    ff.inject("cuFileBufRegister", 0, CU_FILE_GPU_MEMORY_PINNING_FAILED, 1);
    ASSERT_CODE(kvik_buffer_register(dp(d), n, 0), KVIK_ECUFILE);
    ASSERT_CONTAINS(kvik_last_error(), "CU_FILE_GPU_MEMORY_PINNING_FAILED (5036)");
    ASSERT_CODE(kvik_buffer_deregister(dp(d)), KVIK_EINVAL); /* it was not kept */
    /* With compat mode ON for the process, a registration is recorded but cuFile not called. */
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_COMPAT_MODE, KVIK_COMPAT_ON), 0);
    ASSERT_CODE(kvik_buffer_register(dp(d), n, 0), 0);
    assert_int_equal(ff.live("buffers"), bufs);
    ASSERT_CODE(kvik_buffer_deregister(dp(d)), 0);
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_COMPAT_MODE, KVIK_COMPAT_AUTO), 0);
  }
  dfree(d);
  free(h);
  free(path);
}

/* ---- batch ------------------------------------------------------------------------------------
 */

static void batch_bad(void **state) {
  (void)state;
  kvik_batch *b = NULL;
  ASSERT_CODE(kvik_batch_create(&b, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_batch_create(&b, 65537), KVIK_EINVAL);
  ASSERT_CODE(kvik_batch_create(NULL, 4), KVIK_EINVAL);
  ASSERT_CODE(kvik_batch_destroy(NULL), 0);
  /* Not a batch handle. */
  unsigned char junk[256] = {0};
  kvik_batch *bad = (kvik_batch *)(void *)junk;
  unsigned nr = 1;
  struct kvik_batch_event ev[8];
  ASSERT_CODE(kvik_batch_submit(bad, NULL, 0), KVIK_EMISUSE);
  ASSERT_CODE(kvik_batch_status(bad, 0, &nr, ev, 0), KVIK_EMISUSE);
  ASSERT_CODE(kvik_batch_cancel(bad), KVIK_EMISUSE);
  ASSERT_CODE(kvik_batch_destroy(bad), KVIK_EMISUSE);

  ASSERT_CODE(kvik_batch_create(&b, 4), 0);
  char *path = new_path();
  t_write_pattern_file(path, 65536, 9);
  kvik_file *ro = open_mode(path, "r", KVIK_COMPAT_AUTO, 0);
  uint8_t *h = t_alloc_aligned(65536);
  struct kvik_batch_io ops[5];
  for (int i = 0; i < 5; i++)
    ops[i] = (struct kvik_batch_io){ro, h, 4096, 4096 * i, 4096 * i, KVIK_BATCH_READ, NULL};
  ASSERT_CODE(kvik_batch_submit(b, ops, 5), KVIK_EINVAL); /* over capacity */
  ASSERT_CONTAINS(kvik_last_error(), "more than the batch holds (max_ops 4)");
  ops[1].opcode = KVIK_BATCH_WRITE; /* a write to a read-only file: nothing is submitted */
  ASSERT_CODE(kvik_batch_submit(b, ops, 2), KVIK_EBADMODE);
  ASSERT_CONTAINS(kvik_last_error(), "operation 1");
  ops[1].opcode = 7;
  ASSERT_CODE(kvik_batch_submit(b, ops, 2), KVIK_EINVAL);
  ops[1].opcode = KVIK_BATCH_READ;
  ops[1].buf_offset = -1;
  ASSERT_CODE(kvik_batch_submit(b, ops, 2), KVIK_EINVAL);
  ops[1].buf_offset = 4096;
  ops[1].file = (kvik_file *)(void *)junk;
  ASSERT_CODE(kvik_batch_submit(b, ops, 2), KVIK_EMISUSE);
  ops[1].file = ro;
  ASSERT_CODE(kvik_batch_submit(b, NULL, 2), KVIK_EINVAL);
  nr = 8;
  ASSERT_CODE(kvik_batch_status(b, 1, &nr, ev, 0), KVIK_EINVAL); /* nothing outstanding */
  ASSERT_CONTAINS(kvik_last_error(), "only 0 operations are outstanding");
  ASSERT_CODE(kvik_batch_submit(b, ops, 3), 0);
  ASSERT_CODE(kvik_batch_submit(b, ops + 3, 2), KVIK_EBUSY); /* full until reaped */
  ASSERT_CONTAINS(kvik_last_error(), "the batch is full");
  nr = 2;
  ASSERT_CODE(kvik_batch_status(b, 3, &nr, ev, -1), KVIK_EINVAL); /* min_nr > room */
  ASSERT_CODE(kvik_batch_status(b, 0, NULL, ev, 0), KVIK_EINVAL);
  unsigned got = 0;
  while (got < 3) {
    nr = 8;
    ASSERT_CODE(kvik_batch_status(b, 1, &nr, ev, -1), 0);
    for (unsigned i = 0; i < nr; i++) {
      assert_int_equal(ev[i].status, KVIK_BATCH_COMPLETE);
      assert_int_equal(ev[i].result, 4096);
    }
    got += nr;
  }
  assert_int_equal(got, 3);
  ASSERT_PATTERN(h, 3 * 4096, 0, 9, "batch reads");
  ASSERT_CODE(kvik_batch_submit(b, ops + 3, 2), 0); /* room again */
  ASSERT_CODE(kvik_batch_destroy(b), 0);
  kvik_file_close(ro);
  free(h);
  free(path);
}

/* A batch with cuFile operations (GDS file, device memory), pool operations (a file on kvik's
 * path, host memory, a small transfer, a read past end of file) and failures, reaped together. */
static void batch_mixed(void **state) {
  (void)state;
  size_t n = 1 << 20;
  char *pa = new_path(), *pb = new_path();
  t_write_pattern_file(pa, 4 * n, 11);
  t_write_pattern_file(pb, 4 * n, 12);
  set_mode(g_real ? M_COMPAT : M_NVFS, 1);
  kvik_file *fa = open_mode(pa, "r+", KVIK_COMPAT_AUTO, 0);
  set_mode(M_COMPAT, -1);
  kvik_file *fb = open_mode(pb, "r+", KVIK_COMPAT_AUTO, 0);
  kvik_file *fc_off = open_mode(pb, "r", KVIK_COMPAT_OFF, 0);
  if (!g_real)
    assert_int_equal(info_of(fa).path, KVIK_PATH_GDS);
  assert_int_equal(info_of(fb).path, KVIK_PATH_POSIX);
  CUdeviceptr d = dalloc(8 * n);
  uint8_t *h = t_alloc_aligned(8 * n);
  t_pat_fill(h + 7 * n, n, 3 * n, 11);
  long submits = g_real ? 0 : ff.calls("cuFileBatchIOSubmit");
  kvik_batch *b;
  ASSERT_CODE(kvik_batch_create(&b, 16), 0);
  struct kvik_batch_io ops[] = {
      {fa, dp(d), n, 0, 0, KVIK_BATCH_READ, (void *)1},                /* cuFile batch */
      {fa, dp(d), n, n, n, KVIK_BATCH_READ, (void *)2},                /* cuFile batch */
      {fb, dp(d), n, 0, 2 * n, KVIK_BATCH_READ, (void *)3},            /* pool, device */
      {fb, h, n, n, 3 * n, KVIK_BATCH_READ, (void *)4},                /* pool, host */
      {fa, dp(d), 100, 5, 4 * n, KVIK_BATCH_READ, (void *)5},          /* under the threshold */
      {fa, dp(d), n, 4 * n - 4096, 5 * n, KVIK_BATCH_READ, (void *)6}, /* across end of file */
      {fc_off, dp(d), n, 2 * n, 6 * n, KVIK_BATCH_READ, (void *)7},    /* cuFile compat: pool */
      {fa, h, n, 3 * n, 7 * n, KVIK_BATCH_WRITE, (void *)8},           /* write, host memory */
      {fb, dp(d), 16, 0, 8 * n - 8, KVIK_BATCH_READ, (void *)9},       /* past the allocation */
  };
  unsigned nops = sizeof ops / sizeof ops[0];
  ASSERT_CODE(kvik_batch_submit(b, ops, nops), 0);
  struct kvik_batch_event ev[16];
  ssize_t result[10] = {0};
  int status[10] = {0};
  unsigned got = 0;
  while (got < nops) {
    unsigned nr = 16;
    ASSERT_CODE(kvik_batch_status(b, 1, &nr, ev, 10000), 0);
    assert_true(nr >= 1);
    for (unsigned i = 0; i < nr; i++) {
      uintptr_t k = (uintptr_t)ev[i].cookie;
      assert_true(k >= 1 && k <= nops);
      assert_int_equal(status[k], 0); /* each reported once */
      status[k] = ev[i].status;
      result[k] = ev[i].result;
      if (ev[i].status != KVIK_BATCH_COMPLETE)
        print_message("op %u: status %d result %zd: %s\n", (unsigned)k, ev[i].status, ev[i].result,
                      ev[i].error);
    }
    got += nr;
  }
  for (unsigned k = 1; k <= 8; k++)
    assert_int_equal(status[k], KVIK_BATCH_COMPLETE);
  assert_int_equal(result[1], n);
  assert_int_equal(result[5], 100);
  assert_int_equal(result[6], 4096);
  assert_int_equal(result[8], n);
  assert_int_equal(status[9], KVIK_BATCH_FAILED);
  assert_int_equal(result[9], KVIK_EINVAL);
  uint8_t *c = t_alloc_aligned(n);
  d2h(c, d, n);
  ASSERT_PATTERN(c, n, 0, 11, "op 1");
  d2h(c, d + n, n);
  ASSERT_PATTERN(c, n, n, 11, "op 2");
  d2h(c, d + 2 * n, n);
  ASSERT_PATTERN(c, n, 0, 12, "op 3");
  ASSERT_PATTERN(h + 3 * n, n, n, 12, "op 4");
  d2h(c, d + 4 * n, 100);
  ASSERT_PATTERN(c, 100, 5, 11, "op 5");
  d2h(c, d + 5 * n, 4096);
  ASSERT_PATTERN(c, 4096, 4 * n - 4096, 11, "op 6");
  d2h(c, d + 6 * n, n);
  ASSERT_PATTERN(c, n, 2 * n, 12, "op 7");
  ASSERT_CODE(t_read_file(pa, c, n, 3 * n), (long long)n);
  ASSERT_PATTERN(c, n, 3 * n, 11, "op 8 on disk");
  if (!g_real)
    assert_true(ff.calls("cuFileBatchIOSubmit") - submits >= 3); /* ops 1, 2, 6 */

  /* A cuFile operation that fails, and cancel and timeout with cuFile operations pending. */
  if (!g_real) {
    ff.inject("batch:op", 0, CU_FILE_NVFS_DRIVER_ERROR, 1);
    ASSERT_CODE(kvik_batch_submit(b, ops, 1), 0);
    unsigned nr = 16;
    ASSERT_CODE(kvik_batch_status(b, 1, &nr, ev, 10000), 0);
    assert_int_equal(nr, 1);
    assert_int_equal(ev[0].status, KVIK_BATCH_FAILED);
    assert_int_equal(ev[0].result, KVIK_ECUFILE);
    ASSERT_CONTAINS(ev[0].error, "CU_FILE_NVFS_DRIVER_ERROR");
    ff.fail_clear();
    ff.set("batch_delay_us", 300000);
    ASSERT_CODE(kvik_batch_submit(b, ops, 2), 0);
    nr = 16;
    ASSERT_CODE(kvik_batch_status(b, 1, &nr, ev, 20), 0); /* times out: nothing yet */
    assert_int_equal(nr, 0);
    ASSERT_CODE(kvik_batch_cancel(b), 0);
    unsigned canceled = 0, done = 0;
    while (done < 2) {
      nr = 16;
      ASSERT_CODE(kvik_batch_status(b, 1, &nr, ev, 10000), 0);
      for (unsigned i = 0; i < nr; i++)
        canceled += ev[i].status == KVIK_BATCH_CANCELED;
      done += nr;
    }
    assert_true(canceled >= 1);
    /* Destroy with cuFile operations in flight. */
    ASSERT_CODE(kvik_batch_submit(b, ops, 2), 0);
    ff.set("batch_delay_us", 0);
  }
  long batches = g_real ? 0 : ff.live("batches");
  ASSERT_CODE(kvik_batch_destroy(b), 0);
  if (!g_real)
    assert_int_equal(ff.live("batches"), batches - 1);
  kvik_file_close(fa);
  kvik_file_close(fb);
  kvik_file_close(fc_off);
  dfree(d);
  free(h);
  free(c);
  free(pa);
  free(pb);
}

/* Files closed while their batch operations are in flight, on cuFile (GDS file, device memory,
 * held back by the fake) and on the pool: every operation completes with the right bytes, and
 * the last one reaped closes each file. */
static void batch_close_in_flight(void **state) {
  (void)state;
  size_t n = 1 << 20;
  char *pa = new_path(), *pb = new_path();
  t_write_pattern_file(pa, 2 * n, 31);
  t_write_pattern_file(pb, 2 * n, 32);
  set_mode(g_real ? M_COMPAT : M_NVFS, 1);
  kvik_file *fa = open_mode(pa, "r", KVIK_COMPAT_AUTO, 0);
  set_mode(M_COMPAT, -1);
  kvik_file *fb = open_mode(pb, "r", KVIK_COMPAT_AUTO, 0);
  CUdeviceptr d = dalloc(4 * n);
  uint8_t *h = t_alloc_aligned(2 * n);
  kvik_batch *b;
  ASSERT_CODE(kvik_batch_create(&b, 8), 0);
  struct kvik_batch_io ops[] = {
      {fa, dp(d), n, 0, 0, KVIK_BATCH_READ, (void *)1}, /* cuFile batch (GDS) */
      {fa, dp(d), n, n, n, KVIK_BATCH_READ, (void *)2},
      {fb, dp(d), n, 0, 2 * n, KVIK_BATCH_READ, (void *)3}, /* pool, device memory */
      {fb, h, n, n, n, KVIK_BATCH_READ, (void *)4},         /* pool, host memory */
  };
  if (!g_real)
    ff.set("batch_delay_us", 100000);
  ASSERT_CODE(kvik_batch_submit(b, ops, 4), 0);
  ASSERT_CODE(kvik_file_close(fa), 0);
  ASSERT_CODE(kvik_file_close(fb), 0);
  ASSERT_CODE(kvik_file_size(fa), KVIK_EMISUSE);
  unsigned got = 0;
  while (got < 4) {
    struct kvik_batch_event ev[8];
    unsigned nr = 8;
    ASSERT_CODE(kvik_batch_status(b, 1, &nr, ev, 10000), 0);
    assert_true(nr >= 1);
    for (unsigned i = 0; i < nr; i++) {
      if (ev[i].status != KVIK_BATCH_COMPLETE)
        fail_msg("op %zu: status %d result %zd: %s", (size_t)(uintptr_t)ev[i].cookie, ev[i].status,
                 ev[i].result, ev[i].error);
      assert_int_equal(ev[i].result, n);
    }
    got += nr;
  }
  if (!g_real)
    ff.set("batch_delay_us", 0);
  uint8_t *c = t_alloc_aligned(3 * n);
  d2h(c, d, 3 * n);
  ASSERT_PATTERN(c, 2 * n, 0, 31, "cuFile batch reads in flight at close");
  ASSERT_PATTERN(c + 2 * n, n, 0, 32, "pool batch read (device) in flight at close");
  ASSERT_PATTERN(h + n, n, n, 32, "pool batch read (host) in flight at close");
  ASSERT_CODE(kvik_batch_destroy(b), 0);
  dfree(d);
  free(h);
  free(c);
  free(pa);
  free(pb);
}

/* Pool operations canceled before they start, and destroy while many are queued. */
static void batch_cancel_pool(void **state) {
  (void)state;
  char *path = new_path();
  t_write_pattern_file(path, 1 << 20, 5);
  kvik_file *f = open_mode(path, "r", KVIK_COMPAT_ON, 0);
  uint8_t *h = t_alloc_aligned(1 << 20);
  kvik_batch *b;
  ASSERT_CODE(kvik_batch_create(&b, 256), 0);
  struct kvik_batch_io ops[256];
  for (int i = 0; i < 256; i++)
    ops[i] = (struct kvik_batch_io){
        f, h, 4096, 4096 * (i % 256), 4096 * (i % 256), KVIK_BATCH_READ, (void *)(uintptr_t)i};
  ASSERT_CODE(kvik_batch_submit(b, ops, 256), 0);
  ASSERT_CODE(kvik_batch_cancel(b), 0);
  unsigned done = 0, canceled = 0, complete = 0;
  struct kvik_batch_event ev[64];
  while (done < 256) {
    unsigned nr = 64;
    ASSERT_CODE(kvik_batch_status(b, 1, &nr, ev, 10000), 0);
    for (unsigned i = 0; i < nr; i++) {
      if (ev[i].status == KVIK_BATCH_CANCELED) {
        canceled++;
        assert_int_equal(ev[i].result, KVIK_ECANCELED);
      } else {
        assert_int_equal(ev[i].status, KVIK_BATCH_COMPLETE);
        assert_int_equal(ev[i].result, 4096);
        complete++;
      }
    }
    done += nr;
  }
  print_message("256 operations: %u complete, %u canceled\n", complete, canceled);
  ASSERT_CODE(kvik_batch_submit(b, ops, 256), 0);
  ASSERT_CODE(kvik_batch_destroy(b), 0); /* with operations queued and running */
  kvik_file_close(f);
  free(h);
  free(path);
}

/* ---- stream-ordered I/O ------------------------------------------------------------------------
 */

/* A host function of the test's own: holds the stream until released. */
struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool open;
};

static void gate_fn(void *arg) {
  struct gate *g = arg;
  pthread_mutex_lock(&g->mu);
  while (!g->open)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g) {
  pthread_mutex_lock(&g->mu);
  g->open = true;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

/* Work before and after on the same stream: a "kernel" (a stream-ordered memset) fills the
 * buffer before the write; after the read, a copy to the host and another memset. With the
 * fake every stream operation is delayed, so a write that ran early would write zeros, and a
 * read that finished late would be overwritten or miss the copy. */
static void async_order(kvik_compat compat, enum mode mode, const char *what) {
  size_t n = 3 * 1024 * 1024 + 17;
  set_mode(mode, 1);
  char *path = new_path();
  kvik_file *f = open_mode(path, "w+", compat, 0);
  struct kvik_file_info fi = info_of(f);
  print_message("# %s: path %d (%s)\n", what, fi.path, fi.reason);
  CUdeviceptr d = dalloc(n + 4096);
  CUstream s;
  CUcontext c;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx0));
  CT_CU(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CT_CU(cu.cuMemsetD8_v2(d, 0, n + 4096));
  if (!g_real)
    fc.set("delay_us", 3000);
  /* kvik's path must not need another stream while the caller's waits (CUDA's scheduler does not
   * see what a stream memory operation waits for): the fake's streams share one queue that a
   * waiting stream holds. */
  if (!g_real && fi.path != KVIK_PATH_GDS)
    fc.set("one_queue", 1);
  long async_calls = g_real ? 0 : ff.calls("cuFileWriteAsync");
  /* write: memset 0x5a (before) -> write_async -> memset 0x11 (after) */
  CT_CU(cu.cuMemsetD8Async(d, 0x5a, n, s));
  size_t size = n;
  int64_t foff = 4096, boff = 0;
  ssize_t bytes = -12345;
  ASSERT_CODE(kvik_file_write_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
  print_message("# write_async enqueued\n");
  CT_CU(cu.cuMemsetD8Async(d, 0x11, n, s));
  CT_CU(cu.cuStreamSynchronize(s));
  print_message("# write_async done: %zd\n", bytes);
  assert_int_equal(bytes, (ssize_t)n);
  uint8_t *h = t_alloc_aligned(n + 4096);
  ASSERT_CODE(t_read_file(path, h, n, 4096), (long long)n);
  ASSERT_FILLED(h, n, 0x5a, "file after write_async (the memset before it)");
  /* GDS files use cuFile's stream API; the others kvik's own ordering, whose copy kernels run
   * on the caller's stream. */
  if (!g_real && fi.path == KVIK_PATH_GDS)
    assert_int_equal(ff.calls("cuFileWriteAsync"), async_calls + 1);
  if (!g_real && fi.path != KVIK_PATH_GDS) {
    assert_int_equal(ff.calls("cuFileWriteAsync"), async_calls);
    assert_true(fc.calls("cuLaunchKernel") > 0);
  }
  /* read: memset 0 -> read_async -> copy to host -> memset 0x22 */
  t_write_pattern_file(path, n + 8192, 21);
  CT_CU(cu.cuMemsetD8Async(d, 0, n + 4096, s));
  size = n;
  foff = 100;
  boff = 4096;
  bytes = -12345;
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
  CT_CU(cu.cuMemcpyDtoHAsync_v2(h, d + 4096, n, s));
  CT_CU(cu.cuMemsetD8Async(d + 4096, 0x22, n, s));
  CT_CU(cu.cuStreamSynchronize(s));
  print_message("# read_async done: %zd\n", bytes);
  assert_int_equal(bytes, (ssize_t)n);
  ASSERT_PATTERN(h, n, 100, 21, "host copy after read_async");
  /* Arguments are read when the stream reaches the operation: hold the stream, enqueue with
   * placeholders (the size: the most the operation may move, as cuFile asks), then set the real
   * values. */
  struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
  CT_CU(cu.cuLaunchHostFunc(s, gate_fn, &g));
  size = 3 * 65536;
  foff = 0;
  boff = 0;
  bytes = -12345;
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
  size = 65536;
  foff = 777;
  boff = 8;
  assert_int_equal(bytes, -12345); /* not run yet */
  gate_open(&g);
  /* (A copy into pageable memory waits for the stream: only once the gate is open.) */
  CT_CU(cu.cuMemcpyDtoHAsync_v2(h, d + 8, 65536, s));
  CT_CU(cu.cuStreamSynchronize(s));
  assert_int_equal(bytes, 65536);
  ASSERT_PATTERN(h, 65536, 777, 21, "read_async with arguments set after the enqueue");
  print_message("# arguments set after the enqueue: done\n");
  /* A size larger when the stream gets there than at the enqueue: an error in the result
   * (kvik's path: the operation was prepared for the smaller one; cuFile's: its own check). */
  if (fi.path != KVIK_PATH_GDS) {
    g.open = false;
    CT_CU(cu.cuLaunchHostFunc(s, gate_fn, &g));
    size = 4096;
    ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
    size = 2 * 4096 * 1024 + 1;
    gate_open(&g);
    CT_CU(cu.cuStreamSynchronize(s));
    assert_int_equal(bytes, KVIK_EINVAL);
  }
  print_message("# a size grown after the enqueue: done\n");
  /* Across end of file: short count; past it: 0. */
  size = 8192;
  foff = (int64_t)(n + 8192 - 100);
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
  CT_CU(cu.cuStreamSynchronize(s));
  assert_int_equal(bytes, 100);
  foff = (int64_t)(n + 8192);
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
  CT_CU(cu.cuStreamSynchronize(s));
  assert_int_equal(bytes, 0);
  /* Errors reach the result, and the stream goes on. */
  size = 2 * n;
  foff = 0;
  boff = 0;
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
  CT_CU(cu.cuMemsetD8Async(d, 0x33, 16, s));
  CT_CU(cu.cuStreamSynchronize(s));
  print_message("read past the allocation: result %zd\n", bytes);
  assert_true(bytes < 0);
  d2h(h, d, 16);
  ASSERT_FILLED(h, 16, 0x33, "work after a failed operation");
  /* Many operations in flight on one stream, each into its own part of the buffer. */
  enum { K = 24 };
  size_t sz[K];
  int64_t fo[K], bo[K];
  ssize_t by[K];
  for (int i = 0; i < K; i++) {
    sz[i] = 65536;
    fo[i] = 65536 * i + 3;
    bo[i] = 65536 * i;
    by[i] = -1;
    ASSERT_CODE(kvik_file_read_async(f, dp(d), &sz[i], &fo[i], &bo[i], &by[i], s), 0);
  }
  CT_CU(cu.cuMemcpyDtoHAsync_v2(h, d, 65536 * K, s));
  CT_CU(cu.cuStreamSynchronize(s));
  for (int i = 0; i < K; i++)
    assert_int_equal(by[i], 65536);
  ASSERT_PATTERN(h, 65536 * K, 3, 21, "24 reads in flight");
  print_message("# 24 reads in flight: done\n");
  /* Managed memory takes the same path (copy kernels write it on the GPU). */
  if (cu.cuMemAllocManaged) {
    CUdeviceptr mg;
    CT_CU(cu.cuMemAllocManaged(&mg, 2 * 65536, CU_MEM_ATTACH_GLOBAL));
    size = 65536;
    foff = 9;
    boff = 5;
    bytes = -1;
    ASSERT_CODE(kvik_file_read_async(f, dp(mg), &size, &foff, &boff, &bytes, s), 0);
    CT_CU(cu.cuStreamSynchronize(s));
    assert_int_equal(bytes, 65536);
    ASSERT_PATTERN((uint8_t *)dp(mg) + 5, 65536, 9, 21, "read_async into managed memory");
    CT_CU(cu.cuMemFree_v2(mg));
  }
  /* The future forms. */
  kvik_future *fut;
  ASSERT_CODE(kvik_file_read_async_future(f, dp(d), n, 5, s, &fut), 0);
  ASSERT_CODE(kvik_future_wait(fut), (long long)n);
  CT_CU(cu.cuStreamSynchronize(s));
  d2h(h, d, n);
  ASSERT_PATTERN(h, n, 5, 21, "read_async_future");
  CT_CU(cu.cuMemsetD8Async(d, 0x44, 4096, s));
  ASSERT_CODE(kvik_file_write_async_future(f, dp(d), 4096, 0, s, &fut), 0);
  ASSERT_CODE(kvik_future_wait(fut), 4096);
  CT_CU(cu.cuStreamSynchronize(s));
  ASSERT_CODE(t_read_file(path, h, 4096, 0), 4096);
  ASSERT_FILLED(h, 4096, 0x44, "write_async_future");
  ASSERT_CODE(kvik_file_read_async_future(f, dp(d), 2 * n, 0, s, &fut), 0);
  assert_true(kvik_future_wait(fut) < 0); /* past the allocation, reported */
  CT_CU(cu.cuStreamSynchronize(s));
  /* A file closed while its operations wait for the stream: they run when the stream gets
   * there, on the file's descriptors (and cuFile's handle), which the last of them closes. */
  kvik_file *f2 = open_mode(path, "r+", compat, 0);
  g.open = false;
  CT_CU(cu.cuLaunchHostFunc(s, gate_fn, &g));
  size = 65536;
  foff = 8192 + 11;
  boff = 0;
  bytes = -12345;
  ASSERT_CODE(kvik_file_read_async(f2, dp(d), &size, &foff, &boff, &bytes, s), 0);
  ASSERT_CODE(kvik_file_read_async_future(f2, dp(d + 65536), 65536, 8192 + 13, s, &fut), 0);
  ASSERT_CODE(kvik_file_close(f2), 0);
  ASSERT_CODE(kvik_file_read_async(f2, dp(d), &size, &foff, &boff, &bytes, s), KVIK_EMISUSE);
  gate_open(&g);
  ASSERT_CODE(kvik_future_wait(fut), 65536);
  CT_CU(cu.cuStreamSynchronize(s));
  assert_int_equal(bytes, 65536);
  d2h(h, d, 2 * 65536);
  ASSERT_PATTERN(h, 65536, 8192 + 11, 21, "read_async in flight at close");
  ASSERT_PATTERN(h + 65536, 65536, 8192 + 13, 21, "read_async_future in flight at close");
  print_message("# closed with operations in flight: done\n");
  if (!g_real) {
    fc.set("delay_us", 0);
    fc.set("one_queue", 0);
  }
  CT_CU(cu.cuStreamDestroy_v2(s));
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
  kvik_file_close(f);
  dfree(d);
  free(h);
  unlink(path);
  free(path);
}

static void async_kvik_path(void **state) {
  (void)state;
  async_order(KVIK_COMPAT_AUTO, M_COMPAT, "kvik's path (AUTO)");
}

static void async_cufile_compat(void **state) {
  (void)state;
  async_order(KVIK_COMPAT_OFF, M_COMPAT, "cuFile's compat mode (OFF): kvik's stream ordering");
}

static void async_gds(void **state) {
  (void)state;
  FAKE_ONLY();
  async_order(KVIK_COMPAT_AUTO, M_NVFS, "GDS: cuFileReadAsync/WriteAsync");
  set_mode(M_COMPAT, -1);
}

static void async_bad(void **state) {
  (void)state;
  set_mode(M_COMPAT, -1);
  char *path = new_path();
  t_write_pattern_file(path, 4096, 1);
  kvik_file *ro = open_mode(path, "r", KVIK_COMPAT_AUTO, 0);
  kvik_file *wo = open_mode(path, "r+", KVIK_COMPAT_AUTO, 0);
  CUdeviceptr d = dalloc(4096);
  size_t size = 4096;
  int64_t foff = 0, boff = 0;
  ssize_t bytes = 0;
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_file_write_async(ro, dp(d), &size, &foff, &boff, &bytes, NULL), KVIK_EBADMODE);
  ASSERT_CONTAINS(kvik_last_error(), "read-only");
  ASSERT_CODE(kvik_file_write_async_future(ro, dp(d), 4096, 0, NULL, &fut), KVIK_EBADMODE);
  assert_null(fut);
  ASSERT_CODE(kvik_file_read_async(wo, NULL, &size, &foff, &boff, &bytes, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_read_async(wo, dp(d), NULL, &foff, &boff, &bytes, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_read_async(wo, dp(d), &size, &foff, &boff, NULL, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_read_async_future(wo, dp(d), 4096, 0, NULL, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_read_async(NULL, dp(d), &size, &foff, &boff, &bytes, NULL), KVIK_EINVAL);
  /* The default stream of no context at all: CUDA's error, nothing enqueued. */
  if (!g_real) {
    ASSERT_CODE(kvik_file_read_async(wo, dp(d), &size, &foff, &boff, &bytes, NULL), KVIK_ECUDA);
    ASSERT_CONTAINS(kvik_last_error(), "cuStreamGetCtx");
  }
  CUcontext c;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx0));
  if (!g_real) {
    /* The stream refusing the host function: nothing enqueued, the code returned. */
    fc.fail_after("cuLaunchHostFunc", 0, CUDA_ERROR_INVALID_HANDLE);
    ASSERT_CODE(kvik_file_read_async(wo, dp(d), &size, &foff, &boff, &bytes, NULL), KVIK_ECUDA);
    ASSERT_CONTAINS(kvik_last_error(), "cuLaunchHostFunc");
    /* The wait refused after the host function was enqueued: the code, and the future has it. */
    fc.fail_after("cuStreamWaitValue32_v2", 0, CUDA_ERROR_NOT_SUPPORTED);
    ASSERT_CODE(kvik_file_read_async_future(wo, dp(d), 4096, 0, NULL, &fut), KVIK_ECUDA);
    ASSERT_CONTAINS(kvik_last_error(), "cuStreamWaitValue32_v2");
    assert_null(fut);
    CT_CU(cu.cuStreamSynchronize(NULL));
    fc.fail_clear();
  }
  /* The default stream works too. */
  bytes = 0;
  ASSERT_CODE(kvik_file_read_async(wo, dp(d), &size, &foff, &boff, &bytes, NULL), 0);
  CT_CU(cu.cuStreamSynchronize(NULL));
  assert_int_equal(bytes, 4096);
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
  kvik_file_close(ro);
  kvik_file_close(wo);
  dfree(d);
  free(path);
}

/* kvik's stream ordering when CUDA refuses part of an operation, when the stream and the buffer
 * do not match, when the kernels cannot load, and with operations in flight on many streams that
 * share one hardware queue. */
static void async_faults(void **state) {
  (void)state;
  FAKE_ONLY();
  set_mode(M_COMPAT, -1);
  size_t n = 9 * 1024 * 1024 + 5; /* three chunks */
  char *path = new_path();
  t_write_pattern_file(path, n + 4096, 31);
  kvik_file *f = open_mode(path, "r+", KVIK_COMPAT_ON, 0);
  CUdeviceptr d = dalloc(n);
  uint8_t *h = t_alloc_aligned(n);
  CUstream s;
  CUcontext c;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx0));
  CT_CU(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  fc.set("one_queue", 1);
  /* A stream used beside others, or after an operation whose enqueue failed (its staging set is
   * lost), gets a new staging set: a page-locked allocation, which in the fake waits for every
   * stream, and these streams are held by the test itself. CUDA 13's cuMemHostAlloc did not wait
   * for a held stream on the GPU machine. */
  fc.set("alloc_syncs", 0);
  struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
  size_t size = n;
  int64_t foff = 0, boff = 0;
  ssize_t bytes = 0;

  /* The first operation makes kvik's pinned memory, which may wait for the device: not while
   * the test holds a stream. */
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
  CT_CU(cu.cuStreamSynchronize(s));
  assert_int_equal(bytes, (ssize_t)n);
  /* The second kernel refused while the stream is held before the operation: the code, in the
   * result too; the stream passes what was enqueued; no byte moved, in memory or in the file. */
  CT_CU(cu.cuMemsetD8_v2(d, 0x77, n));
  CT_CU(cu.cuLaunchHostFunc(s, gate_fn, &g));
  fc.fail_after("cuLaunchKernel", 1, CUDA_ERROR_LAUNCH_FAILED);
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), KVIK_ECUDA);
  ASSERT_CONTAINS(kvik_last_error(), "cuLaunchKernel");
  assert_int_equal(bytes, KVIK_ECUDA);
  fc.fail_after("cuStreamWriteValue32_v2", 2, CUDA_ERROR_LAUNCH_FAILED);
  ASSERT_CODE(kvik_file_write_async(f, dp(d), &size, &foff, &boff, &bytes, s), KVIK_ECUDA);
  ASSERT_CONTAINS(kvik_last_error(), "cuStreamWriteValue32_v2");
  gate_open(&g);
  CT_CU(cu.cuStreamSynchronize(s));
  d2h(h, d, n);
  ASSERT_FILLED(h, n, 0x77, "buffer after a read whose enqueue failed");
  ASSERT_CODE(t_read_file(path, h, n, 0), (long long)n);
  ASSERT_PATTERN(h, n, 0, 31, "file after a write whose enqueue failed");

  /* The same with the operation already running: it stops early, and nothing hangs. */
  fc.fail_after("cuLaunchKernel", 2, CUDA_ERROR_LAUNCH_FAILED);
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), KVIK_ECUDA);
  fc.fail_after("cuLaunchHostFunc", 1, CUDA_ERROR_LAUNCH_FAILED); /* `end` */
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), KVIK_ECUDA);
  CT_CU(cu.cuStreamSynchronize(s));
  fc.fail_clear();

  /* A kernel that fails on the GPU: the stream's error, as for any kernel. */
  fc.fail_after("exec:kernel", 0, CUDA_ERROR_ILLEGAL_ADDRESS);
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
  assert_int_equal(cu.cuStreamSynchronize(s), CUDA_ERROR_ILLEGAL_ADDRESS);
  fc.fail_clear();

  /* Then it works, and a write of what was read gives the file back. */
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
  CT_CU(cu.cuStreamSynchronize(s));
  assert_int_equal(bytes, (ssize_t)n);
  d2h(h, d, n);
  ASSERT_PATTERN(h, n, 0, 31, "read after the failures");

  /* A stream of another device than the buffer's. */
  CUcontext ctx1;
  CUstream s1;
  CT_CU(cu.cuDevicePrimaryCtxRetain(&ctx1, 1));
  CT_CU(cu.cuCtxPushCurrent_v2(ctx1));
  CT_CU(cu.cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING));
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s1), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "memory of device 0");
  ASSERT_CONTAINS(kvik_last_error(), "context of device 1");
  CT_CU(cu.cuStreamDestroy_v2(s1));
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
  CT_CU(cu.cuDevicePrimaryCtxRelease_v2(1));

  /* A context whose kernels cannot load: the driver's error, naming the call; then they load. */
  CUcontext own;
  CUstream so;
  CUdeviceptr dd;
  CT_CU(cu.cuCtxCreate_v4(&own, NULL, 0, 0));
  CT_CU(cu.cuStreamCreate(&so, CU_STREAM_NON_BLOCKING));
  CT_CU(cu.cuMemAlloc_v2(&dd, 65536));
  size_t sz = 65536;
  fc.fail_after("cuModuleLoadData", 0, CUDA_ERROR_NOT_SUPPORTED);
  ASSERT_CODE(kvik_file_read_async(f, dp(dd), &sz, &foff, &boff, &bytes, so), KVIK_ECUDA);
  ASSERT_CONTAINS(kvik_last_error(), "cuModuleLoadData");
  ASSERT_CODE(kvik_file_read_async(f, dp(dd), &sz, &foff, &boff, &bytes, so), 0);
  CT_CU(cu.cuStreamSynchronize(so));
  assert_int_equal(bytes, 65536);
  CT_CU(cu.cuMemcpyDtoH_v2(h, dd, 65536));
  ASSERT_PATTERN(h, 65536, 0, 31, "read in a created context");
  CT_CU(cu.cuMemFree_v2(dd));
  CT_CU(cu.cuStreamDestroy_v2(so));
  CT_CU(cu.cuCtxDestroy_v2(own));

  /* Turned off: KVIK_EUNSUPPORTED, saying how to turn it on. */
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_STREAM_FALLBACK, 0), 0);
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), KVIK_EUNSUPPORTED);
  ASSERT_CONTAINS(kvik_last_error(), "KVIK_STREAM_FALLBACK=0");
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_STREAM_FALLBACK, 1), 0);

  /* Device operations in flight on six streams at once (a staging set each: none may wait for
   * another stream's, whose work can sit behind its wait in the one queue), and host memory
   * (pageable) beside them; every stream held until all are enqueued. */
  enum { NSTREAMS = 6 };
  CUstream ss[NSTREAMS];
  CUdeviceptr bufs[NSTREAMS];
  size_t szs[NSTREAMS];
  int64_t fos[NSTREAMS], bos[NSTREAMS];
  ssize_t bys[NSTREAMS];
  struct gate gs = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
  uint8_t *hh = t_alloc_aligned(n);
  for (int i = 0; i < NSTREAMS; i++) { /* allocations first: they wait for every stream */
    CT_CU(cu.cuStreamCreate(&ss[i], CU_STREAM_NON_BLOCKING));
    CT_CU(cu.cuMemAlloc_v2(&bufs[i], n));
  }
  for (int i = 0; i < NSTREAMS; i++) {
    CT_CU(cu.cuLaunchHostFunc(ss[i], gate_fn, &gs));
    szs[i] = n - (size_t)i * 1000;
    fos[i] = i * 7;
    bos[i] = i;
    bys[i] = -1;
    ASSERT_CODE(kvik_file_read_async(f, dp(bufs[i]), &szs[i], &fos[i], &bos[i], &bys[i], ss[i]), 0);
  }
  size_t hsize = n;
  int64_t hfoff = 11, hboff = 0;
  ssize_t hbytes = -1;
  ASSERT_CODE(kvik_file_read_async(f, hh, &hsize, &hfoff, &hboff, &hbytes, s), 0);
  gate_open(&gs);
  CT_CU(cu.cuStreamSynchronize(s));
  assert_int_equal(hbytes, (ssize_t)n);
  ASSERT_PATTERN(hh, n, 11, 31, "read_async into pageable host memory");
  for (int i = 0; i < NSTREAMS; i++) {
    CT_CU(cu.cuStreamSynchronize(ss[i]));
    assert_int_equal(bys[i], (ssize_t)szs[i]);
    memset(h, 0, n);
    CT_CU(cu.cuMemcpyDtoH_v2(h, bufs[i] + (CUdeviceptr)i, szs[i]));
    ASSERT_PATTERN(h, szs[i], (uint64_t)i * 7, 31, "one of six reads in flight");
    CT_CU(cu.cuMemFree_v2(bufs[i]));
    CT_CU(cu.cuStreamDestroy_v2(ss[i]));
  }
  fc.set("one_queue", 0);
  fc.set("alloc_syncs", 1);
  CT_CU(cu.cuStreamDestroy_v2(s));
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
  kvik_file_close(f);
  dfree(d);
  free(h);
  free(hh);
  unlink(path);
  free(path);
}

/* kvik_stream_prepare: afterwards the first operation on the stream loads nothing and allocates
 * nothing, so it can be enqueued while the stream is busy (here: held), even where allocations
 * wait for every stream (the fake's "alloc_syncs", on in these tests). */
static void async_prepare(void **state) {
  (void)state;
  FAKE_ONLY();
  set_mode(M_COMPAT, -1);
  char *path = new_path();
  t_write_pattern_file(path, 1 << 20, 41);
  kvik_file *f = open_mode(path, "r", KVIK_COMPAT_ON, 0);
  CUcontext own;
  CUstream s;
  CUdeviceptr d;
  CT_CU(cu.cuCtxCreate_v4(&own, NULL, 0, 0)); /* a context kvik has not seen */
  CT_CU(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CT_CU(cu.cuMemAlloc_v2(&d, 1 << 20));
  long loads = fc.calls("cuModuleLoadData");
  ASSERT_CODE(kvik_stream_prepare(s), 0);
  assert_int_equal(fc.calls("cuModuleLoadData"), loads + 1);
  ASSERT_CODE(kvik_stream_prepare(s), 0); /* again: nothing more to make */
  assert_int_equal(fc.calls("cuModuleLoadData"), loads + 1);
  long host_allocs = fc.calls("cuMemHostAlloc"), dev_allocs = fc.calls("cuMemAlloc_v2");
  struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
  CT_CU(cu.cuLaunchHostFunc(s, gate_fn, &g));
  size_t size = 1 << 20;
  int64_t foff = 0, boff = 0;
  ssize_t bytes = -1;
  ASSERT_CODE(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, s), 0);
  assert_int_equal(fc.calls("cuMemHostAlloc"), host_allocs);
  assert_int_equal(fc.calls("cuMemAlloc_v2"), dev_allocs);
  assert_int_equal(fc.calls("cuModuleLoadData"), loads + 1);
  gate_open(&g);
  CT_CU(cu.cuStreamSynchronize(s));
  assert_int_equal(bytes, 1 << 20);
  uint8_t *h = t_alloc_aligned(1 << 20);
  CT_CU(cu.cuMemcpyDtoH_v2(h, d, 1 << 20));
  ASSERT_PATTERN(h, 1 << 20, 0, 41, "read after kvik_stream_prepare");
  CT_CU(cu.cuMemFree_v2(d));
  CT_CU(cu.cuStreamDestroy_v2(s));
  CT_CU(cu.cuCtxDestroy_v2(own));
  /* The default stream with no usable context: CUDA's error, named. */
  ASSERT_CODE(kvik_stream_prepare(NULL), KVIK_ECUDA);
  ASSERT_CONTAINS(kvik_last_error(), "cuStreamGetCtx");
  kvik_file_close(f);
  free(h);
  unlink(path);
  free(path);
}

static void misc_stream_register(void **state) {
  (void)state;
  CUstream s;
  CUcontext c;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx0));
  CT_CU(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  ASSERT_CODE(kvik_stream_register(s, 0), 0);
  if (!g_real)
    assert_int_equal(ff.live("streams"), 1);
  ASSERT_CODE(kvik_stream_deregister(s), 0);
  if (!g_real) {
    ASSERT_CODE(kvik_stream_deregister(s), KVIK_ECUFILE);
    ASSERT_CONTAINS(kvik_last_error(), "cuFileStreamDeregister");
  }
  CT_CU(cu.cuStreamDestroy_v2(s));
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
}

/* ---- exit with everything still registered --------------------------------------------------- */

/* Runs in a child process started by misc_exit: opens cuFile files, registers buffers, leaves
 * them all, and exits from a second thread while the main thread is blocked. */
static void *exit_thread(void *arg) {
  (void)arg;
  exit(0);
}

static int exit_child(void) {
  if (ct_driver(&cu, NULL) != 0 || cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS)
    return 2;
  const char *dir = getenv("KVIK_TEST_EXIT_DIR");
  char path[4096];
  kvik_file *f[3];
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof path, "%s/exit%d.bin", dir, i);
    if (kvik_file_open(&f[i], path, "w+", 0644, KVIK_COMPAT_OFF) != 0) {
      fprintf(stderr, "exit child: %s\n", kvik_last_error());
      return 3;
    }
  }
  CUdeviceptr d;
  CUcontext c;
  cu.cuCtxPushCurrent_v2(ctx0);
  cu.cuMemAlloc_v2(&d, 3 << 20);
  cu.cuCtxPopCurrent_v2(&c);
  for (int i = 0; i < 3; i++)
    if (kvik_buffer_register(dp(d + ((CUdeviceptr)i << 20)), 1 << 20, 0) != 0) {
      fprintf(stderr, "exit child: %s\n", kvik_last_error());
      return 4;
    }
  if (kvik_file_write(f[0], dp(d), 1 << 20, 0) != 1 << 20)
    return 5;
  pthread_t t;
  pthread_create(&t, NULL, exit_thread, NULL);
  pause();
  return 6;
}

static void misc_exit(void **state) {
  (void)state;
  char report[4096];
  snprintf(report, sizeof report, "%s/exit-report.txt", g_dir);
  const char *self = t_self_exe();
  pid_t pid = fork();
  if (pid == 0) {
    setenv("KVIK_TEST_EXIT_DIR", g_dir, 1);
    setenv("FAKE_CUFILE_REPORT", report, 1);
    execl(self, "test_cufile", "--scenario", "exit_child", (char *)NULL);
    _exit(127);
  }
  assert_true(pid > 0);
  int st = 0;
  assert_int_equal(waitpid(pid, &st, 0), pid);
  print_message("child: %s %d\n", WIFEXITED(st) ? "exit" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
  if (g_real)
    return;
  char line[256] = "";
  FILE *fp = fopen(report, "r");
  assert_non_null(fp);
  assert_non_null(fgets(line, sizeof line, fp));
  fclose(fp);
  print_message("fake libcufile at unload: %s", line);
  /* kvik deregistered its handles and buffers and closed the driver, and made no call after. */
  ASSERT_CONTAINS(line, "closes=1 handles=0 buffers=0 batches=0 after_close=0");
}

/* ---- process-level scenarios -------------------------------------------------------------------
 */

static int fails = 0;
#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                       \
      printf(__VA_ARGS__);                                                                         \
      printf("\n");                                                                                \
      fails++;                                                                                     \
    }                                                                                              \
  } while (0)

/* Opens path with each compat mode and prints what happens; OFF must fail with want_off and a
 * message containing off_why; AUTO must be kvik's path with auto_why in the reason. */
static void scenario_paths(const char *path, int want_off, const char *off_why,
                           const char *auto_why) {
  kvik_file *f = NULL;
  int rc = kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_OFF);
  printf("OFF: %d %s\n", rc, rc ? kvik_last_error() : "");
  CHECK(rc == want_off, "OFF gave %d (%s), want %d", rc, kvik_strerror_name(rc), want_off);
  CHECK(strstr(kvik_last_error(), off_why), "\"%s\" lacks \"%s\"", kvik_last_error(), off_why);
  if (rc == 0)
    kvik_file_close(f);
  rc = kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_AUTO);
  CHECK(rc == 0, "AUTO open: %s", kvik_last_error());
  if (rc == 0) {
    struct kvik_file_info fi = {.sz = sizeof fi};
    kvik_file_info(f, &fi);
    printf("AUTO: path %d: %s\n", fi.path, fi.reason);
    CHECK(fi.path == KVIK_PATH_POSIX, "AUTO path %d", fi.path);
    /* Where the file is not on NVMe and nvidia-fs is absent, AUTO knows without loading cuFile
     * that it could do no DMA, and says that instead. */
    CHECK(strstr(fi.reason, auto_why) || strstr(fi.reason, "P2PDMA serves only ext4 or xfs"),
          "\"%s\" lacks \"%s\"", fi.reason, auto_why);
    kvik_file_close(f);
  }
}

static int scenario(const char *name) {
  t_clear_kvikio_env();
  if (strcmp(name, "exit_child") == 0)
    return exit_child();
  if (strcmp(name, "nocuda") == 0 && dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    printf("SKIP: a libcuda.so.1 is installed on this machine\n");
    return 77;
  }
  char fs[64];
  char *dir = t_mkdtemp(t_direct_io_base(fs));
  if (!dir)
    return 1;
  char *path = t_join(dir, "s.bin");
  FILE *fp = fopen(path, "w");
  if (fp) {
    fputs("kvik scenario file\n", fp);
    fclose(fp);
  }
  if (strcmp(name, "nocuda") == 0) {
    /* No libcuda: host-only, and cuFile (which needs CUDA) says so. */
    scenario_paths(path, KVIK_ENOCUFILE, "cuFile not used: it needs CUDA", "CUDA is not in use");
    CHECK(kvik_cufile_available() == 0, "available");
    CHECK(strstr(kvik_last_error(), "needs CUDA"), "%s", kvik_last_error());
  } else if (strcmp(name, "nolib") == 0 || strcmp(name, "open_fails") == 0) {
    bool nolib = strcmp(name, "nolib") == 0;
    if (nolib && dlopen("libcufile.so.0", RTLD_NOW | RTLD_NOLOAD | RTLD_LOCAL) == NULL &&
        dlopen("libcufile.so.0", RTLD_NOW | RTLD_LOCAL) != NULL) {
      printf("SKIP: a libcufile.so.0 is installed on this machine\n");
      return 77;
    }
    if (ct_driver(&cu, NULL) != 0 || cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS)
      return 2;
    const char *why =
        nolib ? "dlopen(libcufile.so.0)" : "cuFileDriverOpen: CU_FILE_DEVICE_NOT_SUPPORTED (5009)";
    scenario_paths(path, KVIK_ENOCUFILE, why, why);
    CHECK(kvik_cufile_available() == 0, "available");
    int v;
    CHECK(kvik_cufile_version(&v) == KVIK_ENOCUFILE, "version");
    struct kvik_cufile_props p = {.sz = sizeof p};
    CHECK(kvik_cufile_props(&p) == KVIK_ENOCUFILE, "props");
    CHECK(kvik_stream_register(NULL, 0) == KVIK_ENOCUFILE, "stream register");
    /* Registration is recorded; batch and async work on kvik's path. */
    CUdeviceptr d;
    CUcontext c;
    cu.cuCtxPushCurrent_v2(ctx0);
    cu.cuMemAlloc_v2(&d, 1 << 20);
    CHECK(kvik_buffer_register(dp(d), 1 << 20, 0) == 0, "register: %s", kvik_last_error());
    CHECK(kvik_buffer_deregister(dp(d)) == 0, "deregister");
    CHECK(kvik_buffer_deregister(dp(d)) == KVIK_EINVAL, "deregister twice");
    kvik_file *f;
    CHECK(kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_AUTO) == 0, "open");
    kvik_batch *b;
    kvik_batch_create(&b, 2);
    struct kvik_batch_io io = {f, dp(d), 19, 0, 0, KVIK_BATCH_READ, NULL};
    CHECK(kvik_batch_submit(b, &io, 1) == 0, "batch submit: %s", kvik_last_error());
    struct kvik_batch_event ev;
    unsigned nr = 1;
    CHECK(kvik_batch_status(b, 1, &nr, &ev, -1) == 0 && nr == 1 && ev.result == 19,
          "batch result %zd", ev.result);
    kvik_batch_destroy(b);
    size_t size = 19;
    int64_t foff = 0, boff = 0;
    ssize_t bytes = 0;
    CHECK(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, NULL) == 0, "async: %s",
          kvik_last_error());
    cu.cuStreamSynchronize(NULL);
    CHECK(bytes == 19, "async result %zd", bytes);
    kvik_file_close(f);
    cu.cuCtxPopCurrent_v2(&c);
  } else if (strcmp(name, "minimal") == 0) {
    /* A libcufile with only the required entry points: optional features off, with reasons. */
    if (ct_driver(&cu, NULL) != 0 || cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS ||
        fake_cufile_bind(&ff) != 0)
      return 2;
    ff.set("gds", 1);
    char *nvfs = t_join(dir, "nvfs");
    mkdir(nvfs, 0755);
    char *v = t_join(nvfs, "version");
    fp = fopen(v, "w");
    if (fp)
      fclose(fp);
    kvik__cufile_test_hooks(nvfs, 1);
    free(nvfs);
    free(v);
    int ver;
    CHECK(kvik_cufile_version(&ver) == KVIK_EUNSUPPORTED, "version");
    CHECK(strstr(kvik_last_error(), "lacks cuFileGetVersion"), "%s", kvik_last_error());
    CHECK(kvik_cufile_prop_set(KVIK_CUFILE_POLL_MODE, 1) == KVIK_EUNSUPPORTED, "setter");
    CHECK(strstr(kvik_last_error(), "lacks cuFileDriverSetPollMode"), "%s", kvik_last_error());
    CHECK(kvik_stream_register(NULL, 0) == KVIK_EUNSUPPORTED, "stream register");
    struct kvik_cufile_props p = {.sz = sizeof p};
    CHECK(kvik_cufile_props(&p) == 0 && p.batch == 0 && p.streams == 0 && p.version == 0, "props");
    kvik_file *f;
    CHECK(kvik_file_open(&f, path, "r+", 0, KVIK_COMPAT_AUTO) == 0, "open");
    struct kvik_file_info fi = {.sz = sizeof fi};
    kvik_file_info(f, &fi);
    CHECK(fi.path == KVIK_PATH_GDS, "path %d: %s", fi.path, fi.reason);
    CUdeviceptr d;
    CUcontext c;
    cu.cuCtxPushCurrent_v2(ctx0);
    cu.cuMemAlloc_v2(&d, 1 << 20);
    kvik_batch *b;
    kvik_batch_create(&b, 2);
    struct kvik_batch_io io = {f, dp(d), 19, 0, 0, KVIK_BATCH_READ, NULL};
    kvik_config_set_u64(KVIK_CFG_GDS_THRESHOLD, 0);
    CHECK(kvik_batch_submit(b, &io, 1) == 0, "batch submit: %s", kvik_last_error());
    struct kvik_batch_event ev;
    unsigned nr = 1;
    CHECK(kvik_batch_status(b, 1, &nr, &ev, -1) == 0 && nr == 1 && ev.result == 19,
          "batch on the pool: %zd %s", ev.result, ev.error);
    kvik_batch_destroy(b);
    size_t size = 19;
    int64_t foff = 0, boff = 0;
    ssize_t bytes = 0;
    CHECK(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, NULL) == 0, "async: %s",
          kvik_last_error());
    cu.cuStreamSynchronize(NULL);
    CHECK(bytes == 19, "async on kvik's path: %zd", bytes);
    CHECK(kvik_file_read(f, dp(d), 19, 0) == 19, "read: %s", kvik_last_error());
    CHECK(ff.calls("cuFileRead") > 0, "cuFileRead used");
    kvik_file_close(f);
    cu.cuCtxPopCurrent_v2(&c);
  } else if (strcmp(name, "nomemops") == 0) {
    /* A driver without stream memory operations: kvik's stream ordering is unavailable, and
     * says why; cuFile's own stream API still serves GDS files. */
    if (ct_driver(&cu, NULL) != 0 || cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS ||
        fake_cuda_bind(&fc) != 0)
      return 2;
    fc.set("stream_mem_ops", 0);
    if (fake_cufile_bind(&ff) != 0)
      return 2;
    kvik_file *f, *g;
    CHECK(kvik_file_open(&f, path, "r+", 0, KVIK_COMPAT_AUTO) == 0, "open");
    ff.set("gds", 1);
    char *nvfs = t_join(dir, "nvfs");
    mkdir(nvfs, 0755);
    char *v = t_join(nvfs, "version");
    fp = fopen(v, "w");
    if (fp)
      fclose(fp);
    kvik__cufile_test_hooks(nvfs, 1);
    free(nvfs);
    free(v);
    CHECK(kvik_file_open(&g, path, "r+", 0, KVIK_COMPAT_AUTO) == 0, "open GDS: %s",
          kvik_last_error());
    CUdeviceptr d;
    CUcontext c;
    cu.cuCtxPushCurrent_v2(ctx0);
    cu.cuMemAlloc_v2(&d, 4096);
    size_t size = 19;
    int64_t foff = 0, boff = 0;
    ssize_t bytes = 0;
    CHECK(kvik_file_read_async(f, dp(d), &size, &foff, &boff, &bytes, NULL) == KVIK_EUNSUPPORTED,
          "async on kvik's path: %s", kvik_last_error());
    CHECK(strstr(kvik_last_error(), "does not support stream memory operations"), "%s",
          kvik_last_error());
    kvik_future *fut = NULL;
    CHECK(kvik_file_read_async_future(f, dp(d), 19, 0, NULL, &fut) == KVIK_EUNSUPPORTED &&
              fut == NULL,
          "future form");
    kvik_config_set_u64(KVIK_CFG_GDS_THRESHOLD, 0);
    CHECK(kvik_file_read_async(g, dp(d), &size, &foff, &boff, &bytes, NULL) == 0,
          "async through cuFile (GDS): %s", kvik_last_error());
    cu.cuStreamSynchronize(NULL);
    CHECK(bytes == 19, "result %zd", bytes);
    cu.cuCtxPopCurrent_v2(&c);
    kvik_file_close(f);
    kvik_file_close(g);
  } else if (strcmp(name, "noload") == 0) {
    /* AUTO with CUDA in use, no nvidia-fs, a file on tmpfs: kernel P2PDMA serves only ext4 or
     * xfs on NVMe, so the answer needs no cuFile: its driver is never opened (it took 0.4 s of
     * every open on the H200 machine), even though the driver would report P2PDMA. */
    if (fake_cufile_bind(&ff) != 0)
      return 2;
    ff.set("p2p", 1);
    char *none = t_join(dir, "no-nvfs");
    kvik__cufile_test_hooks(none, -1);
    free(none);
    if (ct_driver(&cu, NULL) != 0 || cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS)
      return 2;
    char *shm = t_mkdtemp("/dev/shm");
    char *p = shm ? t_join(shm, "s.bin") : NULL;
    FILE *sf = p ? fopen(p, "w") : NULL;
    if (!sf)
      return 2;
    fputs("kvik scenario file\n", sf);
    fclose(sf);
    CUdeviceptr d;
    CUcontext c;
    cu.cuCtxPushCurrent_v2(ctx0);
    cu.cuMemAlloc_v2(&d, 1 << 20);
    kvik_file *f;
    CHECK(kvik_file_open(&f, p, "r", 0, KVIK_COMPAT_AUTO) == 0, "open: %s", kvik_last_error());
    CHECK(kvik_file_read(f, dp(d), 19, 0) == 19, "read: %s", kvik_last_error());
    struct kvik_file_info fi = {.sz = sizeof fi};
    kvik_file_info(f, &fi);
    printf("path %d: %s\n", fi.path, fi.reason);
    CHECK(fi.path == KVIK_PATH_POSIX && strstr(fi.reason, "P2PDMA serves only ext4 or xfs"), "%s",
          fi.reason);
    CHECK(ff.live("opens") == 0, "cuFile driver opened %ld times", ff.live("opens"));
    kvik_file_close(f);
    cu.cuMemFree_v2(d);
    cu.cuCtxPopCurrent_v2(&c);
    t_rmtree(shm); /* frees shm */
    free(p);
  } else if (strcmp(name, "deferred") == 0) {
    /* AUTO in a process that does not use CUDA yet: decided at the first device-memory I/O. */
    if (fake_cufile_bind(&ff) != 0)
      return 2;
    ff.set("gds", 1);
    char *nvfs = t_join(dir, "nvfs");
    mkdir(nvfs, 0755);
    char *v = t_join(nvfs, "version");
    fp = fopen(v, "w");
    if (fp)
      fclose(fp);
    kvik__cufile_test_hooks(nvfs, 1);
    free(nvfs);
    free(v);
    /* fake_cufile_bind loaded libcufile, which loads nothing of CUDA by itself. */
    kvik_file *f;
    CHECK(kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_AUTO) == 0, "open");
    struct kvik_file_info fi = {.sz = sizeof fi};
    kvik_file_info(f, &fi);
    printf("before CUDA: path %d: %s\n", fi.path, fi.reason);
    CHECK(fi.path == KVIK_PATH_POSIX && strstr(fi.reason, "decided at the first I/O"), "%s",
          fi.reason);
    CHECK(!ct_libcuda_loaded(), "libcuda loaded before the test did");
    if (ct_driver(&cu, NULL) != 0 || cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS)
      return 2;
    CUdeviceptr d;
    CUcontext c;
    cu.cuCtxPushCurrent_v2(ctx0);
    cu.cuMemAlloc_v2(&d, 1 << 20);
    kvik_config_set_u64(KVIK_CFG_GDS_THRESHOLD, 0);
    CHECK(kvik_file_read(f, dp(d), 19, 0) == 19, "read: %s", kvik_last_error());
    kvik_file_info(f, &fi);
    printf("after a device read: path %d: %s\n", fi.path, fi.reason);
    CHECK(fi.path == KVIK_PATH_GDS, "path %d", fi.path);
    CHECK(ff.calls("cuFileRead") == 1, "cuFileRead calls %ld", ff.calls("cuFileRead"));
    kvik_file_close(f);
    cu.cuCtxPopCurrent_v2(&c);
  } else {
    printf("unknown scenario %s\n", name);
    return 2;
  }
  t_rmtree(dir);
  free(path);
  printf("%s: %s\n", name, fails ? "FAILED" : "ok");
  return fails ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "--scenario") == 0)
    return scenario(argv[2]);
  t_select(argc, argv);
  g_real = getenv("KVIK_TEST_REAL_CUDA") && strcmp(getenv("KVIK_TEST_REAL_CUDA"), "1") == 0;
  if (g_real) {
    struct kvik__cuda_api t;
    if (ct_driver(&t, NULL) != 0) {
      printf("SKIP: KVIK_TEST_REAL_CUDA=1 but libcuda.so.1 is not usable\n");
      return 77;
    }
    if (!kvik_cufile_available()) {
      printf("SKIP: KVIK_TEST_REAL_CUDA=1 but cuFile is not usable: %s\n", kvik_last_error());
      return 77;
    }
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(misc_available),
      cmocka_unit_test(misc_props_set),
      cmocka_unit_test(path_choice),
      cmocka_unit_test(path_real),
      cmocka_unit_test(grid_compat_off),
      cmocka_unit_test(grid_gds),
      cmocka_unit_test(misc_memory_kinds_and_errors),
      cmocka_unit_test(misc_register),
      cmocka_unit_test(batch_bad),
      cmocka_unit_test(batch_mixed),
      cmocka_unit_test(batch_cancel_pool),
      cmocka_unit_test(batch_close_in_flight),
      cmocka_unit_test(async_kvik_path),
      cmocka_unit_test(async_cufile_compat),
      cmocka_unit_test(async_gds),
      cmocka_unit_test(async_bad),
      cmocka_unit_test(async_faults),
      cmocka_unit_test(async_prepare),
      cmocka_unit_test(misc_stream_register),
      cmocka_unit_test(misc_exit),
  };
  return cmocka_run_group_tests_name("cufile", tests, setup, teardown);
}
