/* kvik_prepare: the first call's setup done ahead of time. One scenario per process (the pool,
 * the bounce-buffer pool and the driver are per process), named by argv[1]:
 *   device   with the fake libcuda: kvik_prepare({device 0}) starts the workers and leaves one
 *            pinned pipeline buffer per worker idle (kvik_bounce_stats and the fake's count of
 *            pinned allocations agree); a second call allocates nothing; a parallel device read
 *            afterwards pins nothing more (cuMemHostAlloc calls unchanged) and reads the right
 *            bytes; a device that does not exist is refused, naming the count
 *   nocuda   dlopen of libcuda.so.1 fails (injected through kvik__sys): a device asked for gives
 *            KVIK_ENOCUDA saying why; host only still works
 *   host     NULL opts: the default pool's workers run afterwards (threads of the process), CUDA
 *            is not loaded, no bounce buffer is made; bad options are refused with messages
 * Exit status: 0 pass, 1 fail (each failed check printed). */
#include "fake_cuda.h"
#include "gpu/cuda.h"
#include "kvik.h"
#include "sys/sys.h"

#include "cuda_test.h"

#include <dirent.h>
#include <stdbool.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s\n  last error: \"%s\"\n", __FILE__, __LINE__,       \
              #cond, kvik_last_error());                                                           \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

#define CHECK_CODE(expr, want)                                                                     \
  do {                                                                                             \
    long long got_ = (long long)(expr), want_ = (long long)(want);                                 \
    if (got_ != want_) {                                                                           \
      fprintf(stderr, "%s:%d: %s\n  got  %lld (%s)\n  want %lld (%s)\n  last error: \"%s\"\n",     \
              __FILE__, __LINE__, #expr, got_, kvik_strerror_name((int)got_), want_,               \
              kvik_strerror_name((int)want_), kvik_last_error());                                  \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

#define CHECK_ERR_HAS(sub) CHECK(strstr(kvik_last_error(), (sub)) != NULL)

#define NTHREADS 4
#define MiB ((size_t)1 << 20)
#define FILE_SIZE (16 * MiB + 4096 + 13) /* more tasks than workers, a short last one */

static int done(const char *scenario) {
  printf("%s: %s (%d failed checks)\n", scenario, failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}

/* Threads of this process, from /proc/self/task. */
static void *noop(void *arg) { return arg; }

/* The threads of this process. The first thread ever created makes sanitizer runtimes start
 * their own background thread (ThreadSanitizer's), so one is made and joined first: counts
 * taken after it differ by kvik's workers alone. */
static int thread_count(void) {
  static bool settled;
  if (!settled) {
    pthread_t t;
    if (pthread_create(&t, NULL, noop, NULL) == 0)
      pthread_join(t, NULL);
    settled = true;
  }
  DIR *d = opendir("/proc/self/task");
  if (!d)
    return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

static struct kvik_bounce_stats bounce(void) {
  struct kvik_bounce_stats st = {.sz = sizeof st};
  CHECK_CODE(kvik_bounce_stats(&st), 0);
  return st;
}

static int scenario_device(void) {
  struct fake_cuda fc;
  struct kvik__cuda_api cu;
  if (fake_cuda_bind(&fc) != 0 || ct_driver(&cu, NULL) != 0) {
    fprintf(stderr, "device: the fake libcuda.so.1 is not on the library path\n");
    return 1;
  }
  int threads0 = thread_count();
  long pins0 = fc.calls("cuMemHostAlloc");
  struct kvik_prepare_opts o = {.sz = sizeof o, .device = 0};
  CHECK_CODE(kvik_prepare(&o), 0);
  CHECK(thread_count() == threads0 + NTHREADS); /* the workers run */
  struct kvik_bounce_stats st = bounce();
  CHECK(st.pinned == 1);
  CHECK(st.allocated == NTHREADS);
  CHECK(st.in_use == 0);
  CHECK(fc.live("pinned") == NTHREADS);
  CHECK(fc.calls("cuMemHostAlloc") == pins0 + NTHREADS);

  /* Again: nothing more. */
  CHECK_CODE(kvik_prepare(&o), 0);
  CHECK(thread_count() == threads0 + NTHREADS);
  CHECK(bounce().allocated == NTHREADS);
  CHECK(fc.calls("cuMemHostAlloc") == pins0 + NTHREADS);

  /* A device that does not exist. */
  struct kvik_prepare_opts bad = {.sz = sizeof bad, .device = 99};
  CHECK_CODE(kvik_prepare(&bad), KVIK_EINVAL);
  CHECK_ERR_HAS("kvik_prepare: device 99");
  CHECK_ERR_HAS("does not exist");

  /* The first device read finds its buffers ready. */
  char path[] = "/tmp/kvik_prepare_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unsigned char *src = malloc(FILE_SIZE), *back = malloc(FILE_SIZE);
  CHECK(src && back);
  if (fd < 0 || !src || !back)
    return done("device");
  for (size_t i = 0; i < FILE_SIZE; i++)
    src[i] = (unsigned char)(i * 7 + i / 4093);
  CHECK(pwrite(fd, src, FILE_SIZE, 0) == (ssize_t)FILE_SIZE);
  close(fd);
  CUcontext ctx;
  CUdeviceptr d = 0;
  CT_CU(cu.cuDevicePrimaryCtxRetain(&ctx, 0));
  CT_CU(cu.cuCtxSetCurrent(ctx));
  CT_CU(cu.cuMemAlloc_v2(&d, FILE_SIZE));
  kvik_file *f = NULL;
  CHECK_CODE(kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_ON), 0);
  kvik_future *fut = NULL;
  struct kvik_io_opts io = {.sz = sizeof io, .task_size = MiB};
  CHECK_CODE(kvik_file_pread(f, (void *)(uintptr_t)d, FILE_SIZE, 0, &io, &fut), 0);
  CHECK_CODE(kvik_future_wait(fut), FILE_SIZE);
  CHECK_CODE(kvik_file_close(f), 0);
  CT_CU(cu.cuMemcpyDtoH_v2(back, d, FILE_SIZE));
  CHECK(memcmp(src, back, FILE_SIZE) == 0);
  CHECK(fc.calls("cuMemHostAlloc") == pins0 + NTHREADS); /* nothing pinned on the critical path */
  st = bounce();
  CHECK(st.allocated == NTHREADS);
  CHECK(st.in_use == 0);
  CHECK(st.peak >= 1 && st.peak <= NTHREADS);
  CT_CU(cu.cuMemFree_v2(d));
  unlink(path);
  free(src);
  free(back);
  return done("device");
}

static void *no_dlopen(const char *file, int mode) {
  (void)file;
  (void)mode;
  return NULL;
}

static int scenario_nocuda(void) {
  kvik__sys.dlopen = no_dlopen;
  struct kvik_prepare_opts o = {.sz = sizeof o, .device = 0};
  CHECK_CODE(kvik_prepare(&o), KVIK_ENOCUDA);
  CHECK_ERR_HAS("kvik_prepare: device 0: ");
  CHECK_ERR_HAS("libcuda.so.1"); /* why: the dlopen failure */
  CHECK(bounce().allocated == 0);
  o.device = -1;
  CHECK_CODE(kvik_prepare(&o), 0);
  CHECK_CODE(kvik_prepare(NULL), 0);
  return done("nocuda");
}

static int scenario_host(void) {
  int threads0 = thread_count();
  CHECK_CODE(kvik_prepare(NULL), 0);
  CHECK(thread_count() == threads0 + NTHREADS);
  CHECK(!kvik__cuda_loaded());
  CHECK(bounce().allocated == 0);
  CHECK_CODE(kvik_prepare(NULL), 0); /* again: nothing more */
  CHECK(thread_count() == threads0 + NTHREADS);

  /* A pool of the caller's, of another size. */
  kvik_pool *p = NULL;
  CHECK_CODE(kvik_pool_create(&p, 3), 0);
  struct kvik_prepare_opts o = {.sz = sizeof o, .device = -1, .pool = p};
  CHECK_CODE(kvik_prepare(&o), 0);
  CHECK(thread_count() == threads0 + NTHREADS + 3);
  CHECK_CODE(kvik_pool_destroy(p), 0);
  CHECK(thread_count() == threads0 + NTHREADS);
  CHECK_CODE(kvik_prepare(&o), KVIK_EMISUSE); /* a destroyed pool */
  CHECK_ERR_HAS("kvik_prepare");

  /* Bad options. */
  struct kvik_prepare_opts small = {.sz = sizeof small - 1, .device = -1};
  CHECK_CODE(kvik_prepare(&small), KVIK_EINVAL);
  CHECK_ERR_HAS("opts->sz");
  struct kvik_prepare_opts flags = {.sz = sizeof flags, .device = -1, .flags = 4};
  CHECK_CODE(kvik_prepare(&flags), KVIK_EINVAL);
  CHECK_ERR_HAS("flags");
  struct kvik_prepare_opts neg = {.sz = sizeof neg, .device = -2};
  CHECK_CODE(kvik_prepare(&neg), KVIK_EINVAL);
  CHECK_ERR_HAS("device is -2");
  CHECK(!kvik__cuda_loaded());
  return done("host");
}

int main(int argc, char **argv) {
  setenv("KVIKIO_NTHREADS", "4", 1); /* NTHREADS */
  if (argc == 2 && strcmp(argv[1], "device") == 0)
    return scenario_device();
  if (argc == 2 && strcmp(argv[1], "nocuda") == 0)
    return scenario_nocuda();
  if (argc == 2 && strcmp(argv[1], "host") == 0)
    return scenario_host();
  fprintf(stderr, "usage: %s device|nocuda|host\n", argv[0]);
  return 2;
}
