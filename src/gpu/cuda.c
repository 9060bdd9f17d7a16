/* The CUDA driver loader: libcuda.so.1 opened on first need into a function table, cuInit,
 * error names, the primary-context cache, and the rule that no driver call happens once the
 * process has started to exit or in a child after fork(). See cuda.h. */
#include "gpu/cuda.h"

#include "core/core.h"
#include "sys/sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIBCUDA "libcuda.so.1"

enum { ST_UNTRIED = 0, ST_LOADED = 1, ST_FAILED = 2 };

/* Written only inside load_once (pthread_once orders those writes before any caller returns
 * from pthread_once); read-only afterwards. `state` is also published with release ordering so
 * the fast paths that skip pthread_once see a complete table. */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static struct kvik__cuda_api api;
static char load_why[512];
static _Atomic int state = ST_UNTRIED;

/* Set when the process starts to exit (atexit handler, library destructor) or in a child
 * after fork(); once set, never cleared, and no driver call is made. */
static atomic_bool gone_exiting;
static atomic_bool gone_forked;

/* The primary-context cache: prim_ctx[ordinal], retained once, never released. prim_lock
 * guards the array pointer and its entries; no driver call is made while holding it. */
static pthread_mutex_t prim_lock = PTHREAD_MUTEX_INITIALIZER;
static CUcontext *prim_ctx;

/* Names of the results kvik knows, for when the driver cannot be asked. */
static const char *builtin_errname(CUresult r) {
  switch ((int)r) {
#define KVIK__CU_NAME_CASE(name, value)                                                            \
  case value: return #name;
    KVIK_CUDA_RESULTS(KVIK__CU_NAME_CASE)
#undef KVIK__CU_NAME_CASE
  default: return "CUDA_ERROR_UNRECOGNIZED";
  }
}

static void mark_exiting(void) { atomic_store(&gone_exiting, true); }

static void mark_forked(void) { atomic_store(&gone_forked, true); }

/* Runs when libkvik is unloaded or the process exits, whichever comes first. The atexit
 * handler registered at load time usually runs earlier (before the driver's own exit
 * handlers, which were registered before it); this is the backstop. */
__attribute__((destructor)) static void kvik_cuda_fini(void) { mark_exiting(); }

bool kvik__cuda_gone(void) {
  return atomic_load_explicit(&gone_exiting, memory_order_acquire) ||
         atomic_load_explicit(&gone_forked, memory_order_acquire);
}

bool kvik__cuda_loaded(void) {
  return atomic_load_explicit(&state, memory_order_acquire) == ST_LOADED && !kvik__cuda_gone();
}

/* dlsym returns an object pointer; copying it into the function pointer (same size and
 * representation on every platform kvik supports) avoids the conversion ISO C does not define. */
_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "function and object pointers differ");

static void load(void) {
  (void)dlerror(); /* clear a stale message, so the one read below is about this dlopen */
  void *h = kvik__sys.dlopen(LIBCUDA, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    snprintf(load_why, sizeof load_why, "CUDA driver not loaded: dlopen(%s): %s", LIBCUDA,
             why ? why : "failed (no reason given)");
    goto fail;
  }
  /* From here on the handle is never closed, even on failure: closing a library whose
   * initializers ran (or that another component also uses) is the unsafe part. */
#define KVIK__CU_RESOLVE(required, name, params)                                                   \
  {                                                                                                \
    void *p = kvik__sys.dlsym(h, #name);                                                           \
    if (!p && (required)) {                                                                        \
      snprintf(load_why, sizeof load_why,                                                          \
               "CUDA driver unusable: %s lacks %s (driver older than CUDA 11?)", LIBCUDA, #name);  \
      goto fail;                                                                                   \
    }                                                                                              \
    memcpy(&api.name, &p, sizeof p);                                                               \
  }
  KVIK_CUDA_FUNCS(KVIK__CU_RESOLVE)
#undef KVIK__CU_RESOLVE

  CUresult r = api.cuInit(0);
  if (r != CUDA_SUCCESS) {
    const char *name = NULL, *text = NULL;
    if (api.cuGetErrorName(r, &name) != CUDA_SUCCESS || !name)
      name = builtin_errname(r);
    if (api.cuGetErrorString(r, &text) != CUDA_SUCCESS || !text)
      text = "no description";
    snprintf(load_why, sizeof load_why, "CUDA driver unusable: cuInit(0) failed: %s (%d): %s", name,
             (int)r, text);
    goto fail;
  }
  int version = 0, count = 0;
  if (api.cuDriverGetVersion(&version) != CUDA_SUCCESS)
    version = 0;
  r = api.cuDeviceGetCount(&count);
  if (r != CUDA_SUCCESS || count < 1) {
    snprintf(load_why, sizeof load_why,
             "CUDA driver unusable: cuDeviceGetCount returned %s (%d) and %d devices",
             builtin_errname(r), (int)r, count);
    goto fail;
  }
  api.driver_version = version;
  api.device_count = count;

  /* Registered after cuInit, so this handler runs before any exit handler the driver
   * registered while loading and initializing. Failure to register leaves the destructor. */
  (void)atexit(mark_exiting);
  (void)pthread_atfork(NULL, NULL, mark_forked);
  atomic_store_explicit(&state, ST_LOADED, memory_order_release);
  return;

fail:
  atomic_store_explicit(&state, ST_FAILED, memory_order_release);
}

/* Loads the driver once and logs the outcome once, outside pthread_once: the log callback is
 * user code and must not run where another thread waits for it. Returns the final state. */
static int load_and_log(void) {
  static atomic_bool logged;
  pthread_once(&load_once, load);
  int s = atomic_load_explicit(&state, memory_order_acquire);
  if (!atomic_exchange(&logged, true)) {
    if (s == ST_LOADED)
      kvik__log(KVIK_LOG_INFO, "CUDA driver %d.%d loaded, %d device(s)", api.driver_version / 1000,
                (api.driver_version % 1000) / 10, api.device_count);
    else
      kvik__log(KVIK_LOG_INFO, "%s", load_why);
  }
  return s;
}

static int gone_error(void) {
  if (atomic_load(&gone_forked))
    return kvik__err(KVIK_ENOCUDA, "CUDA cannot be used in a child process after fork(): "
                                   "the parent initialized the driver");
  return kvik__err(KVIK_ENOCUDA, "CUDA is no longer used: the process is exiting");
}

int kvik__cuda_get(const struct kvik__cuda_api **out) {
  *out = NULL;
  if (kvik__cuda_gone())
    return gone_error();
  if (atomic_load_explicit(&state, memory_order_acquire) != ST_LOADED &&
      load_and_log() != ST_LOADED)
    return kvik__err_set(KVIK_ENOCUDA, load_why);
  *out = &api;
  return 0;
}

/* State of the libcuda scan for kvik__cuda_get_if_used: the loader's count of objects ever
 * loaded (dlpi_adds) when a full scan last found no libcuda. While that count is unchanged,
 * no library was loaded since, so libcuda still is not there and the scan stops at the first
 * object. Races only cost an extra full scan. */
static _Atomic unsigned long long scan_adds_clean = (unsigned long long)-1;

struct scan {
  unsigned long long adds;
  bool have_adds;
  bool found;
};

static int scan_cb(struct dl_phdr_info *info, size_t size, void *data) {
  struct scan *s = data;
  if (!s->have_adds && size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds) {
    s->adds = info->dlpi_adds;
    s->have_adds = true;
    if (s->adds == atomic_load_explicit(&scan_adds_clean, memory_order_relaxed))
      return 1; /* nothing loaded since the last clean scan */
  }
  const char *name = info->dlpi_name ? info->dlpi_name : "";
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  if (strncmp(base, "libcuda.so", 10) == 0) {
    s->found = true;
    return 2;
  }
  return 0;
}

static bool libcuda_in_process(void) {
  struct scan s = {0};
  int rc = dl_iterate_phdr(scan_cb, &s);
  if (rc == 0 && s.have_adds)
    atomic_store_explicit(&scan_adds_clean, s.adds, memory_order_relaxed);
  return s.found;
}

int kvik__cuda_get_if_used(const struct kvik__cuda_api **out) {
  *out = NULL;
  if (kvik__cuda_gone())
    return 0;
  int s = atomic_load_explicit(&state, memory_order_acquire);
  if (s == ST_UNTRIED) {
    if (!libcuda_in_process())
      return 0;
    s = load_and_log();
  }
  if (s != ST_LOADED)
    return 0;
  *out = &api;
  return 1;
}

const char *kvik__cuda_errname(CUresult r) {
  const char *name = NULL;
  if (kvik__cuda_loaded() && api.cuGetErrorName(r, &name) == CUDA_SUCCESS && name)
    return name;
  return builtin_errname(r);
}

int kvik__cuda_fail(CUresult r, const char *what, ...) {
  char call[512];
  va_list ap;
  va_start(ap, what);
  vsnprintf(call, sizeof call, what, ap);
  va_end(ap);
  const char *text = NULL;
  if (!kvik__cuda_loaded() || api.cuGetErrorString(r, &text) != CUDA_SUCCESS || !text)
    text = "no description";
  return kvik__err(KVIK_ECUDA, "%s: %s (%d): %s", call, kvik__cuda_errname(r), (int)r, text);
}

int kvik__cuda_primary_ctx(int ordinal, CUcontext *out) {
  const struct kvik__cuda_api *cu;
  *out = NULL;
  int rc = kvik__cuda_get(&cu);
  if (rc)
    return rc;
  if (ordinal < 0 || ordinal >= cu->device_count)
    return kvik__err(KVIK_EINVAL, "CUDA device %d does not exist (%d device(s))", ordinal,
                     cu->device_count);

  pthread_mutex_lock(&prim_lock);
  if (!prim_ctx)
    prim_ctx = kvik__calloc((size_t)cu->device_count, sizeof *prim_ctx);
  CUcontext c = prim_ctx ? prim_ctx[ordinal] : NULL;
  bool nomem = !prim_ctx;
  pthread_mutex_unlock(&prim_lock);
  if (nomem)
    return kvik__err(-ENOMEM, "CUDA primary context cache: out of memory");
  if (c) {
    *out = c;
    return 0;
  }

  /* Retained outside the lock; a thread that loses the race gives its reference back. */
  CUdevice dev;
  CUresult r = cu->cuDeviceGet(&dev, ordinal);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuDeviceGet(%d)", ordinal);
  r = cu->cuDevicePrimaryCtxRetain(&c, dev);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuDevicePrimaryCtxRetain(device %d)", ordinal);
  pthread_mutex_lock(&prim_lock);
  CUcontext winner = prim_ctx[ordinal];
  if (!winner)
    prim_ctx[ordinal] = c;
  pthread_mutex_unlock(&prim_lock);
  if (winner) {
    (void)cu->cuDevicePrimaryCtxRelease_v2(dev);
    c = winner;
  }
  *out = c;
  return 0;
}
