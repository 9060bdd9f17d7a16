/* Loading the CUDA driver, one scenario per process (the load happens once per process):
 *   nocuda            dlopen of libcuda.so.1 fails (injected through kvik__sys)
 *   nofake            no fake in the library path: no CUDA, unless a real driver is installed
 *                     (then the scenario is skipped, exit 77)
 *   missing_symbol    a required entry point is missing: the driver is unusable, named
 *   missing_optional  optional entry points are missing: the driver works, entries are NULL
 *   init_error        cuInit fails (the fake, told by FAKE_CUDA_INIT_ERROR)
 *   lazy              memory-kind queries do not load a driver nobody loaded
 *   exit              after exit() starts, kvik makes no driver call
 *   fork              in a child after fork(), kvik makes no driver call
 *   env_fail          the fake's FAKE_CUDA_FAIL environment variable injects failures
 * Exit status: 0 pass, 1 fail (each failed check printed), 77 skip. */
#include "fake_cuda.h"
#include "gpu/cuda.h"
#include "gpu/gpu.h"
#include "kvik.h"
#include "sys/sys.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

static int libcuda_loaded(void) { return dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD) != NULL; }

static int done(const char *scenario) {
  printf("%s: %s (%d failed checks)\n", scenario, failures ? "FAIL" : "PASS", failures);
  fflush(stdout); /* the exit and fork scenarios end with _exit */
  return failures ? 1 : 0;
}

/* Everything a program without CUDA sees. */
static void check_no_cuda(void) {
  CHECK(kvik_cuda_available() == 0);
  CHECK_ERR_HAS("libcuda.so.1");
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", kvik_last_error());
  int v = -1;
  CHECK_CODE(kvik_cuda_driver_version(&v), KVIK_ENOCUDA);
  CHECK(strcmp(kvik_last_error(), msg) == 0); /* the same reason every time */
  CHECK_CODE(kvik_gpu_count(), KVIK_ENOCUDA);
  struct kvik_gpu_info gi = {.sz = sizeof gi};
  CHECK_CODE(kvik_gpu_info(0, &gi), KVIK_ENOCUDA);
  CUcontext c;
  CHECK_CODE(kvik__cuda_primary_ctx(0, &c), KVIK_ENOCUDA);
  char *heap = malloc(4096);
  char stack_buf[16] = {0};
  CHECK_CODE(kvik_mem_kind(heap), KVIK_MEM_HOST);
  CHECK_CODE(kvik_mem_kind(stack_buf), KVIK_MEM_HOST);
  struct kvik_mem_info mi = {.sz = sizeof mi};
  CHECK_CODE(kvik_mem_info(heap, 4096, &mi), 0);
  CHECK(mi.kind == KVIK_MEM_HOST && mi.device == -1 && !mi.range_known);
  /* Without CUDA no address is checked for CPU access: whatever it is, it is host memory. */
  CHECK_CODE(kvik_mem_kind((void *)(uintptr_t)4096), KVIK_MEM_HOST);
  free(heap);
  CHECK(!kvik__cuda_loaded());
}

static void *no_dlopen(const char *file, int mode) {
  (void)file;
  (void)mode;
  return NULL;
}

static const char *missing[4];

static void *some_dlsym(void *h, const char *name) {
  for (int i = 0; i < 4 && missing[i]; i++)
    if (strcmp(name, missing[i]) == 0)
      return NULL;
  return dlsym(h, name);
}

static int scenario_nocuda(void) {
  kvik__sys.dlopen = no_dlopen;
  check_no_cuda();
  CHECK(!libcuda_loaded());
  return done("nocuda");
}

static int scenario_nofake(void) {
  if (kvik_cuda_available()) {
    printf("SKIP: a real CUDA driver is installed here (%s is not kvik's fake); the no-CUDA "
           "case is covered by the 'nocuda' scenario\n",
           "libcuda.so.1");
    return 77;
  }
  check_no_cuda();
  CHECK_ERR_HAS("dlopen(libcuda.so.1)");
  return done("nofake");
}

static int scenario_missing_symbol(void) {
  missing[0] = "cuMemcpyHtoDAsync_v2";
  kvik__sys.dlsym = some_dlsym;
  CHECK(kvik_cuda_available() == 0);
  CHECK_ERR_HAS("lacks cuMemcpyHtoDAsync_v2");
  CHECK_CODE(kvik_gpu_count(), KVIK_ENOCUDA);
  CHECK_ERR_HAS("lacks cuMemcpyHtoDAsync_v2");
  return done("missing_symbol");
}

static int scenario_missing_optional(void) {
  missing[0] = "cuMemAllocAsync";
  missing[1] = "cuStreamWaitValue32_v2";
  missing[2] = "cuDeviceGetUuid_v2";
  kvik__sys.dlsym = some_dlsym;
  CHECK(kvik_cuda_available() == 1);
  const struct kvik__cuda_api *cu = NULL;
  CHECK_CODE(kvik__cuda_get(&cu), 0);
  if (cu) {
    CHECK(cu->cuMemAllocAsync == NULL);
    CHECK(cu->cuStreamWaitValue32_v2 == NULL);
    CHECK(cu->cuMemFreeAsync != NULL);
    CHECK(cu->cuMemcpyHtoDAsync_v2 != NULL);
    CHECK(cu->device_count == 2);
  }
  struct kvik_gpu_info gi = {.sz = sizeof gi};
  CHECK_CODE(kvik_gpu_info(0, &gi), 0);
  static const unsigned char zero[16];
  CHECK(memcmp(gi.uuid, zero, 16) == 0); /* no cuDeviceGetUuid_v2: unknown */
  return done("missing_optional");
}

static int scenario_init_error(void) {
  CHECK(kvik_cuda_available() == 0);
  CHECK_ERR_HAS("cuInit(0) failed: CUDA_ERROR_NO_DEVICE (100)");
  CHECK_CODE(kvik_gpu_count(), KVIK_ENOCUDA);
  /* libcuda is in the process now, but unusable: memory is host memory, with no error. */
  char buf[8] = {0};
  CHECK_CODE(kvik_mem_kind(buf), KVIK_MEM_HOST);
  return done("init_error");
}

static int scenario_lazy(void) {
  char buf[64] = {0};
  CHECK_CODE(kvik_mem_kind(buf), KVIK_MEM_HOST);
  struct kvik_mem_info mi = {.sz = sizeof mi};
  CHECK_CODE(kvik_mem_info(buf, sizeof buf, &mi), 0);
  CHECK(!libcuda_loaded()); /* a host-only program never loads the driver */
  CHECK(!kvik__cuda_loaded());
  CHECK(kvik_cuda_available() == 1);
  CHECK(libcuda_loaded());
  CHECK_CODE(kvik_mem_kind(buf), KVIK_MEM_HOST);

  /* Device memory made after kvik loaded the driver is recognized. */
  const struct kvik__cuda_api *cu;
  CHECK_CODE(kvik__cuda_get(&cu), 0);
  CUcontext c;
  CHECK_CODE(kvik__cuda_primary_ctx(0, &c), 0);
  CHECK(cu->cuCtxPushCurrent_v2(c) == CUDA_SUCCESS);
  CUdeviceptr d = 0;
  CHECK(cu->cuMemAlloc_v2(&d, 4096) == CUDA_SUCCESS);
  CHECK_CODE(kvik_mem_kind((void *)(uintptr_t)d), KVIK_MEM_DEVICE);
  CHECK(cu->cuMemFree_v2(d) == CUDA_SUCCESS);
  CUcontext popped;
  CHECK(cu->cuCtxPopCurrent_v2(&popped) == CUDA_SUCCESS);
  return done("lazy");
}

/* ---- exit -------------------------------------------------------------------------------- */

static struct fake_cuda fc;
static CUdeviceptr exit_dptr;
static long exit_calls_before;

/* Registered before kvik loads the driver, so it runs after kvik's own exit handler. */
static void at_exit_check(void) {
  CHECK(kvik__cuda_gone());
  CHECK(kvik_cuda_available() == 0);
  CHECK_ERR_HAS("exiting");
  CHECK_CODE(kvik_gpu_count(), KVIK_ENOCUDA);
  /* No driver call: the buffer cannot be classified any more and is taken as host memory. */
  CHECK_CODE(kvik_mem_kind((void *)(uintptr_t)exit_dptr), KVIK_MEM_HOST);
  CHECK(fc.calls("cuPointerGetAttributes") == exit_calls_before);
  CHECK(fc.calls("cuInit") == 2); /* the test's own and kvik's */
  _exit(done("exit"));
}

static int scenario_exit(void) {
  atexit(at_exit_check);
  if (fake_cuda_bind(&fc) != 0) {
    fprintf(stderr, "exit: the fake libcuda.so.1 is not in the library path\n");
    return 1;
  }
  CUresult (*init)(unsigned);
  void *p = dlsym(fc.handle, "cuInit");
  memcpy(&init, &p, sizeof p);
  CHECK(init(0) == CUDA_SUCCESS);
  CHECK(kvik_cuda_available() == 1);
  const struct kvik__cuda_api *cu;
  CHECK_CODE(kvik__cuda_get(&cu), 0);
  CUcontext c;
  CHECK_CODE(kvik__cuda_primary_ctx(0, &c), 0);
  CHECK(cu->cuCtxPushCurrent_v2(c) == CUDA_SUCCESS);
  CHECK(cu->cuMemAlloc_v2(&exit_dptr, 4096) == CUDA_SUCCESS);
  CHECK_CODE(kvik_mem_kind((void *)(uintptr_t)exit_dptr), KVIK_MEM_DEVICE);
  exit_calls_before = fc.calls("cuPointerGetAttributes");
  exit(0); /* at_exit_check reports */
}

/* ---- fork -------------------------------------------------------------------------------- */

static int scenario_fork(void) {
  CHECK(kvik_cuda_available() == 1);
  pid_t pid = fork();
  if (pid == 0) {
    CHECK(kvik__cuda_gone());
    CHECK(kvik_cuda_available() == 0);
    CHECK_ERR_HAS("after fork()");
    char buf[8] = {0};
    CHECK_CODE(kvik_mem_kind(buf), KVIK_MEM_HOST);
    _exit(failures ? 1 : 0);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(kvik_cuda_available() == 1); /* the parent keeps its driver */
  return done("fork");
}

/* ---- the fake's environment ------------------------------------------------------------ */

/* Run with FAKE_CUDA_FAIL=cuMemHostAlloc:1:CUDA_ERROR_OUT_OF_MEMORY:2 (set by CTest). */
static int scenario_env_fail(void) {
  CHECK(kvik_cuda_available() == 1);
  const struct kvik__cuda_api *cu;
  CHECK_CODE(kvik__cuda_get(&cu), 0);
  CUcontext c;
  CHECK_CODE(kvik__cuda_primary_ctx(0, &c), 0);
  CHECK(cu->cuCtxPushCurrent_v2(c) == CUDA_SUCCESS);
  void *p[4] = {NULL, NULL, NULL, NULL};
  CUresult r[4];
  for (int i = 0; i < 4; i++)
    r[i] = cu->cuMemHostAlloc(&p[i], 4096, 0);
  CHECK(r[0] == CUDA_SUCCESS && r[1] == CUDA_ERROR_OUT_OF_MEMORY &&
        r[2] == CUDA_ERROR_OUT_OF_MEMORY && r[3] == CUDA_SUCCESS);
  for (int i = 0; i < 4; i++)
    if (r[i] == CUDA_SUCCESS)
      CHECK(cu->cuMemFreeHost(p[i]) == CUDA_SUCCESS);
  CUcontext popped;
  CHECK(cu->cuCtxPopCurrent_v2(&popped) == CUDA_SUCCESS);
  return done("env_fail");
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    int (*fn)(void);
  } scenarios[] = {
      {"nocuda", scenario_nocuda},
      {"nofake", scenario_nofake},
      {"missing_symbol", scenario_missing_symbol},
      {"missing_optional", scenario_missing_optional},
      {"init_error", scenario_init_error},
      {"lazy", scenario_lazy},
      {"exit", scenario_exit},
      {"fork", scenario_fork},
      {"env_fail", scenario_env_fail},
  };
  for (size_t i = 0; argc == 2 && i < sizeof scenarios / sizeof scenarios[0]; i++)
    if (strcmp(argv[1], scenarios[i].name) == 0)
      return scenarios[i].fn();
  fprintf(stderr, "usage: %s SCENARIO (see the comment at the top of test_cuda_load.c)\n", argv[0]);
  return 2;
}
