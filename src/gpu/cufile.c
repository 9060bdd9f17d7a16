/* cuFile at run time: libcufile.so.0 opened on first need into a function table, the driver
 * opened once and closed at exit while CUDA is still alive, error names, driver properties,
 * whether cuFile does real DMA for a file, buffer and stream registration, and the cuFile data
 * path for one range. See cufile.h and docs/cufile.md. */
#include "gpu/cufile.h"

#include "core/core.h"
#include "gpu/gpu.h"
#include "io/fsinfo.h"
#include "sys/sys.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LIBCUFILE "libcufile.so.0"
#define NVFS_DIR "/proc/driver/nvidia-fs"

enum { ST_UNTRIED = 0, ST_LOADED = 1, ST_FAILED = 2 };

/* Written only inside load_once; read-only afterwards (state is published with release). */
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static struct kvik__cufile_api api;
static char load_why[640];
static _Atomic int state = ST_UNTRIED;

/* The exit gate: `closing` is set by the exit handler; `inflight` counts cuFile calls in
 * progress and `holds` long-lived uses (batches and stream operations with cuFile work
 * pending). Sequentially consistent, so either a thread entering sees `closing` and backs off,
 * or the exit handler sees the thread and leaves cuFile alone. */
static atomic_bool closing;
static _Atomic long inflight;
static _Atomic long holds;

/* Test hooks (set before files open; read at open). */
static char hook_nvfs_dir[256];
static _Atomic int hook_fs_dma = -1;
static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER; /* guards hook_nvfs_dir */

/* Registered file handles, for the exit handler. reg_lock guards handles, nhandles, caphandles
 * and the buffer list below; no cuFile call is made while holding it, except by the exit
 * handler (which runs alone: `closing` keeps every other caller out). */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static CUfileHandle_t *handles;
static size_t nhandles, caphandles;

/* Buffers registered through kvik_buffer_register. */
struct regbuf {
  uintptr_t ptr;
  size_t size;
  bool in_cufile; /* cuFileBufRegister succeeded for it */
  struct regbuf *next;
};
static struct regbuf *bufs;

/* ---- error names ------------------------------------------------------------------------- */

const char *kvik__cufile_errname(int err) {
  switch (err) {
#define KVIK__CF_NAME_CASE(name, value)                                                            \
  case value: return #name;
    KVIK_CUFILE_ERRORS(KVIK__CF_NAME_CASE)
    KVIK_CUFILE_ERRORS_NEWER(KVIK__CF_NAME_CASE)
#undef KVIK__CF_NAME_CASE
  default: return "CU_FILE_UNRECOGNIZED_ERROR";
  }
}

/* Words for the errors people meet, so a message says what to do. */
static const char *cufile_hint(int err) {
  switch (err) {
  case CU_FILE_HANDLE_NOT_REGISTERED:
    return " (cuFile could not identify the file's filesystem; on a machine without udev, run "
           "tests/gpu/enable-cufile.sh on the directory)";
  case CU_FILE_DRIVER_NOT_INITIALIZED: return " (the cuFile driver is not open)";
  case CU_FILE_IO_NOT_SUPPORTED: return " (this file system or device is not supported)";
  case CU_FILE_DIO_NOT_SET: return " (the descriptor lacks O_DIRECT)";
  case CU_FILE_PERMISSION_DENIED: return " (permission denied)";
  default: return "";
  }
}

int kvik__cufile_fail(CUfileError_t e, const char *what, ...) {
  char call[512];
  va_list ap;
  va_start(ap, what);
  vsnprintf(call, sizeof call, what, ap);
  va_end(ap);
  if (e.err == CU_FILE_CUDA_DRIVER_ERROR)
    return kvik__err(KVIK_ECUFILE, "%s: %s (%d): CUDA error %s (%d)", call,
                     kvik__cufile_errname(e.err), (int)e.err, kvik__cuda_errname(e.cu_err),
                     (int)e.cu_err);
  return kvik__err(KVIK_ECUFILE, "%s: %s (%d)%s", call, kvik__cufile_errname(e.err), (int)e.err,
                   cufile_hint(e.err));
}

/* ---- loading ----------------------------------------------------------------------------- */

static void mark_forked(void) { atomic_store(&closing, true); }

static bool cufile_gone(void) { return atomic_load(&closing) || kvik__cuda_gone(); }

/* Deregisters what kvik registered and closes the driver, unless a cuFile call or a cuFile
 * operation (batch, stream) is in flight: then nothing is touched, and the process's own exit
 * takes it all down. Runs before CUDA's exit handlers (registered earlier), so CUDA is alive. */
static void at_exit(void) {
  atomic_store(&closing, true);
  if (atomic_load(&inflight) != 0 || atomic_load(&holds) != 0 || kvik__cuda_gone())
    return;
  pthread_mutex_lock(&reg_lock);
  for (struct regbuf *b = bufs; b; b = b->next)
    if (b->in_cufile) {
      (void)api.cuFileBufDeregister((const void *)b->ptr);
      b->in_cufile = false;
    }
  for (size_t i = 0; i < nhandles; i++)
    api.cuFileHandleDeregister(handles[i]);
  nhandles = 0;
  pthread_mutex_unlock(&reg_lock);
  (void)api.close();
}

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "function and object pointers differ");

static void load(void) {
  const struct kvik__cuda_api *cu;
  if (kvik__cuda_get(&cu) != 0) {
    snprintf(load_why, sizeof load_why, "cuFile not used: it needs CUDA, and %s",
             kvik_last_error());
    goto fail;
  }
  (void)dlerror();
  void *h = kvik__sys.dlopen(LIBCUFILE, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    snprintf(load_why, sizeof load_why, "cuFile library not loaded: dlopen(%s): %s", LIBCUFILE,
             why ? why : "failed (no reason given)");
    goto fail;
  }
  /* Never closed, even on failure (as with libcuda). */
#define KVIK__CF_RESOLVE(required, name, ret, params)                                              \
  {                                                                                                \
    void *p = kvik__sys.dlsym(h, #name);                                                           \
    if (!p && (required)) {                                                                        \
      snprintf(load_why, sizeof load_why, "cuFile library unusable: %s lacks %s", LIBCUFILE,       \
               #name);                                                                             \
      goto fail;                                                                                   \
    }                                                                                              \
    memcpy(&api.name, &p, sizeof p);                                                               \
  }
  KVIK_CUFILE_FUNCS(KVIK__CF_RESOLVE)
#undef KVIK__CF_RESOLVE
  api.close = api.cuFileDriverClose_v2 ? api.cuFileDriverClose_v2 : api.cuFileDriverClose;
  if (!api.close) {
    snprintf(load_why, sizeof load_why,
             "cuFile library unusable: %s lacks cuFileDriverClose_v2 and cuFileDriverClose",
             LIBCUFILE);
    goto fail;
  }
  /* Optional groups: a feature is on only when all its entry points are there. */
#define KVIK__CF_GROUP(flag, why, ...)                                                             \
  {                                                                                                \
    const char *names[] = {__VA_ARGS__};                                                           \
    api.flag = true;                                                                               \
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)                                    \
      if (!kvik__sys.dlsym(h, names[i]) && api.flag) {                                             \
        api.flag = false;                                                                          \
        snprintf(api.why, sizeof api.why, "%s lacks %s", LIBCUFILE, names[i]);                     \
      }                                                                                            \
  }
  KVIK__CF_GROUP(has_setters, no_setters, "cuFileDriverSetPollMode",
                 "cuFileDriverSetMaxDirectIOSize", "cuFileDriverSetMaxCacheSize",
                 "cuFileDriverSetMaxPinnedMemSize")
  KVIK__CF_GROUP(has_batch, no_batch, "cuFileBatchIOSetUp", "cuFileBatchIOSubmit",
                 "cuFileBatchIOGetStatus", "cuFileBatchIOCancel", "cuFileBatchIODestroy")
  KVIK__CF_GROUP(has_async, no_async, "cuFileReadAsync", "cuFileWriteAsync", "cuFileStreamRegister",
                 "cuFileStreamDeregister")
  KVIK__CF_GROUP(has_version, no_version, "cuFileGetVersion")
#undef KVIK__CF_GROUP

  CUfileError_t e = api.cuFileDriverOpen();
  if (e.err != CU_FILE_SUCCESS) {
    if (e.err == CU_FILE_CUDA_DRIVER_ERROR)
      snprintf(load_why, sizeof load_why,
               "cuFile driver did not open: cuFileDriverOpen: %s (%d): CUDA error %s (%d)",
               kvik__cufile_errname(e.err), (int)e.err, kvik__cuda_errname(e.cu_err),
               (int)e.cu_err);
    else
      snprintf(load_why, sizeof load_why, "cuFile driver did not open: cuFileDriverOpen: %s (%d)%s",
               kvik__cufile_errname(e.err), (int)e.err, cufile_hint(e.err));
    goto fail;
  }
  /* Registered now: runs before the exit handlers CUDA and cuFile registered while loading. */
  (void)atexit(at_exit);
  (void)pthread_atfork(NULL, NULL, mark_forked);
  atomic_store_explicit(&state, ST_LOADED, memory_order_release);
  return;

fail:
  atomic_store_explicit(&state, ST_FAILED, memory_order_release);
}

int kvik__cufile_get(const struct kvik__cufile_api **out) {
  *out = NULL;
  if (cufile_gone())
    return kvik__err(KVIK_ENOCUFILE, "cuFile is no longer used: the process is exiting, or "
                                     "this is a child process after fork()");
  if (atomic_load_explicit(&state, memory_order_acquire) != ST_LOADED) {
    static atomic_bool logged;
    pthread_once(&load_once, load);
    int s = atomic_load_explicit(&state, memory_order_acquire);
    if (!atomic_exchange(&logged, true))
      kvik__log(KVIK_LOG_INFO, "%s", s == ST_LOADED ? "cuFile driver opened" : load_why);
    if (s != ST_LOADED)
      return kvik__err_set(KVIK_ENOCUFILE, load_why);
  }
  *out = &api;
  return 0;
}

bool kvik__cufile_loaded(void) {
  return atomic_load_explicit(&state, memory_order_acquire) == ST_LOADED && !cufile_gone();
}

bool kvik__cufile_enter(void) {
  atomic_fetch_add(&inflight, 1);
  if (atomic_load(&closing) || kvik__cuda_gone()) {
    atomic_fetch_sub(&inflight, 1);
    return false;
  }
  return true;
}

void kvik__cufile_leave(void) { atomic_fetch_sub(&inflight, 1); }

bool kvik__cufile_hold(void) {
  atomic_fetch_add(&holds, 1);
  if (atomic_load(&closing) || kvik__cuda_gone()) {
    atomic_fetch_sub(&holds, 1);
    return false;
  }
  return true;
}

void kvik__cufile_release(void) { atomic_fetch_sub(&holds, 1); }

static int gone_err(const char *what) {
  return kvik__err(KVIK_ENOCUFILE,
                   "%s: cuFile is no longer used (the process is exiting, or this "
                   "is a child process after fork())",
                   what);
}

/* ---- public: availability, version, properties ------------------------------------------ */

int kvik_cufile_available(void) {
  const struct kvik__cufile_api *cf;
  return kvik__cufile_get(&cf) == 0;
}

int kvik_cufile_version(int *version) {
  if (!version)
    return kvik__err(KVIK_EINVAL, "kvik_cufile_version: version is NULL");
  *version = 0;
  const struct kvik__cufile_api *cf;
  int rc = kvik__cufile_get(&cf);
  if (rc)
    return rc;
  if (!cf->has_version)
    return kvik__err(KVIK_EUNSUPPORTED, "kvik_cufile_version: %s", cf->no_version);
  if (!kvik__cufile_enter())
    return gone_err("kvik_cufile_version");
  CUfileError_t e = cf->cuFileGetVersion(version);
  kvik__cufile_leave();
  if (e.err != CU_FILE_SUCCESS)
    return kvik__cufile_fail(e, "cuFileGetVersion");
  return 0;
}

static int get_props(const struct kvik__cufile_api *cf, CUfileDrvProps_t *p, const char *fn) {
  memset(p, 0, sizeof *p);
  if (!kvik__cufile_enter())
    return gone_err(fn);
  CUfileError_t e = cf->cuFileDriverGetProperties(p);
  kvik__cufile_leave();
  if (e.err != CU_FILE_SUCCESS)
    return kvik__cufile_fail(e, "%s: cuFileDriverGetProperties", fn);
  return 0;
}

static void nvfs_dir(char *out, size_t len) {
  pthread_mutex_lock(&hook_lock);
  snprintf(out, len, "%s", hook_nvfs_dir[0] ? hook_nvfs_dir : NVFS_DIR);
  pthread_mutex_unlock(&hook_lock);
}

/* 1 if the nvidia-fs kernel module is loaded (its proc directory has a version file). */
static int nvfs_loaded(char *dir, size_t len) {
  nvfs_dir(dir, len);
  char path[PATH_MAX + 16];
  snprintf(path, sizeof path, "%s/version", dir);
  return access(path, R_OK) == 0;
}

static bool bit(unsigned word, int n) { return (word >> n) & 1u; }

int kvik_cufile_props(struct kvik_cufile_props *props) {
  if (!props)
    return kvik__err(KVIK_EINVAL, "kvik_cufile_props: props is NULL");
  if (props->sz < sizeof *props)
    return kvik__err(KVIK_EINVAL, "kvik_cufile_props: props->sz is %zu, expected at least %zu",
                     props->sz, sizeof *props);
  const struct kvik__cufile_api *cf;
  int rc = kvik__cufile_get(&cf);
  if (rc)
    return rc;
  CUfileDrvProps_t p;
  if ((rc = get_props(cf, &p, "kvik_cufile_props")) != 0)
    return rc;
  size_t sz = props->sz;
  memset(props, 0, sz);
  props->sz = sz;
  props->nvfs_major = p.nvfs.major_version;
  props->nvfs_minor = p.nvfs.minor_version;
  props->poll_thresh_size_kb = p.nvfs.poll_thresh_size;
  props->max_direct_io_size_kb = p.nvfs.max_direct_io_size;
  props->dstatusflags = p.nvfs.dstatusflags;
  props->dcontrolflags = p.nvfs.dcontrolflags;
  props->fflags = p.fflags;
  props->max_device_cache_size_kb = p.max_device_cache_size;
  props->per_buffer_cache_size_kb = p.per_buffer_cache_size;
  props->max_device_pinned_mem_size_kb = p.max_device_pinned_mem_size;
  props->max_batch_io_size = p.max_batch_io_size;
  props->max_batch_io_timeout_ms = p.max_batch_io_timeout_msecs;
  props->poll_mode = bit(p.nvfs.dcontrolflags, CU_FILE_USE_POLL_MODE);
  props->allow_compat_mode = bit(p.nvfs.dcontrolflags, CU_FILE_ALLOW_COMPAT_MODE);
  char dir[PATH_MAX];
  props->nvfs_loaded = nvfs_loaded(dir, sizeof dir);
  props->p2pdma = bit(p.fflags, CU_FILE_P2P_SUPPORTED);
  props->batch = cf->has_batch;
  props->streams = cf->has_async;
  if (cf->has_version && kvik__cufile_enter()) {
    int v = 0;
    if (cf->cuFileGetVersion(&v).err == CU_FILE_SUCCESS)
      props->version = v;
    kvik__cufile_leave();
  }
  return 0;
}

static const char *prop_name(int prop) {
  switch (prop) {
  case KVIK_CUFILE_POLL_MODE: return "poll mode";
  case KVIK_CUFILE_POLL_THRESH_SIZE_KB: return "poll threshold size (KiB)";
  case KVIK_CUFILE_MAX_DIRECT_IO_SIZE_KB: return "max direct I/O size (KiB)";
  case KVIK_CUFILE_MAX_CACHE_SIZE_KB: return "max device cache size (KiB)";
  case KVIK_CUFILE_MAX_PINNED_MEM_SIZE_KB: return "max device pinned memory size (KiB)";
  case KVIK_CUFILE_PER_BUFFER_CACHE_SIZE_KB: return "per-buffer cache size (KiB)";
  case KVIK_CUFILE_MAX_BATCH_IO_SIZE: return "max batch I/O size";
  case KVIK_CUFILE_MAX_BATCH_IO_TIMEOUT_MS: return "max batch I/O timeout (ms)";
  default: return NULL;
  }
}

int kvik_cufile_prop_get(enum kvik_cufile_prop prop, uint64_t *value) {
  if (!value)
    return kvik__err(KVIK_EINVAL, "kvik_cufile_prop_get: value is NULL");
  if (!prop_name((int)prop))
    return kvik__err(KVIK_EINVAL, "kvik_cufile_prop_get: unknown property %d", (int)prop);
  const struct kvik__cufile_api *cf;
  int rc = kvik__cufile_get(&cf);
  CUfileDrvProps_t p;
  if (rc || (rc = get_props(cf, &p, "kvik_cufile_prop_get")) != 0)
    return rc;
  switch (prop) {
  case KVIK_CUFILE_POLL_MODE: *value = bit(p.nvfs.dcontrolflags, CU_FILE_USE_POLL_MODE); break;
  case KVIK_CUFILE_POLL_THRESH_SIZE_KB: *value = p.nvfs.poll_thresh_size; break;
  case KVIK_CUFILE_MAX_DIRECT_IO_SIZE_KB: *value = p.nvfs.max_direct_io_size; break;
  case KVIK_CUFILE_MAX_CACHE_SIZE_KB: *value = p.max_device_cache_size; break;
  case KVIK_CUFILE_MAX_PINNED_MEM_SIZE_KB: *value = p.max_device_pinned_mem_size; break;
  case KVIK_CUFILE_PER_BUFFER_CACHE_SIZE_KB: *value = p.per_buffer_cache_size; break;
  case KVIK_CUFILE_MAX_BATCH_IO_SIZE: *value = p.max_batch_io_size; break;
  case KVIK_CUFILE_MAX_BATCH_IO_TIMEOUT_MS: *value = p.max_batch_io_timeout_msecs; break;
  }
  return 0;
}

int kvik_cufile_prop_set(enum kvik_cufile_prop prop, uint64_t value) {
  const char *name = prop_name((int)prop);
  if (!name)
    return kvik__err(KVIK_EINVAL, "kvik_cufile_prop_set: unknown property %d", (int)prop);
  if (prop == KVIK_CUFILE_PER_BUFFER_CACHE_SIZE_KB || prop == KVIK_CUFILE_MAX_BATCH_IO_SIZE ||
      prop == KVIK_CUFILE_MAX_BATCH_IO_TIMEOUT_MS)
    return kvik__err(KVIK_EINVAL,
                     "kvik_cufile_prop_set: the cuFile %s is read-only: cuFile takes it from its "
                     "configuration file (cufile.json, or the file CUFILE_ENV_PATH_JSON names)",
                     name);
  if (prop == KVIK_CUFILE_POLL_MODE && value > 1)
    return kvik__err(KVIK_EINVAL, "kvik_cufile_prop_set: poll mode is 0 or 1, not %llu",
                     (unsigned long long)value);
  if (prop != KVIK_CUFILE_POLL_THRESH_SIZE_KB && prop != KVIK_CUFILE_MAX_DIRECT_IO_SIZE_KB &&
      value > UINT_MAX)
    return kvik__err(KVIK_EINVAL, "kvik_cufile_prop_set: %llu is too large for the cuFile %s",
                     (unsigned long long)value, name);
  const struct kvik__cufile_api *cf;
  int rc = kvik__cufile_get(&cf);
  if (rc)
    return rc;
  if (!cf->has_setters)
    return kvik__err(KVIK_EUNSUPPORTED, "kvik_cufile_prop_set %s: %s", name, cf->no_setters);
  CUfileDrvProps_t p;
  if ((rc = get_props(cf, &p, "kvik_cufile_prop_set")) != 0)
    return rc;
  if (!kvik__cufile_enter())
    return gone_err("kvik_cufile_prop_set");
  CUfileError_t e = {CU_FILE_SUCCESS, CUDA_SUCCESS};
  const char *call = "";
  switch (prop) {
  case KVIK_CUFILE_POLL_MODE:
    call = "cuFileDriverSetPollMode";
    e = cf->cuFileDriverSetPollMode(value != 0, p.nvfs.poll_thresh_size);
    break;
  case KVIK_CUFILE_POLL_THRESH_SIZE_KB:
    call = "cuFileDriverSetPollMode";
    e = cf->cuFileDriverSetPollMode(bit(p.nvfs.dcontrolflags, CU_FILE_USE_POLL_MODE),
                                    (size_t)value);
    break;
  case KVIK_CUFILE_MAX_DIRECT_IO_SIZE_KB:
    call = "cuFileDriverSetMaxDirectIOSize";
    e = cf->cuFileDriverSetMaxDirectIOSize((size_t)value);
    break;
  case KVIK_CUFILE_MAX_CACHE_SIZE_KB:
    call = "cuFileDriverSetMaxCacheSize";
    e = cf->cuFileDriverSetMaxCacheSize((size_t)value);
    break;
  case KVIK_CUFILE_MAX_PINNED_MEM_SIZE_KB:
    call = "cuFileDriverSetMaxPinnedMemSize";
    e = cf->cuFileDriverSetMaxPinnedMemSize((size_t)value);
    break;
  default: break;
  }
  kvik__cufile_leave();
  if (e.err != CU_FILE_SUCCESS)
    return kvik__cufile_fail(e, "kvik_cufile_prop_set %s = %llu: %s", name,
                             (unsigned long long)value, call);
  return 0;
}

/* ---- real DMA or compatibility mode ----------------------------------------------------- */

void kvik__cufile_test_hooks(const char *dir, int fs_dma) {
  pthread_mutex_lock(&hook_lock);
  snprintf(hook_nvfs_dir, sizeof hook_nvfs_dir, "%s", dir ? dir : "");
  pthread_mutex_unlock(&hook_lock);
  atomic_store(&hook_fs_dma, fs_dma < 0 ? -1 : fs_dma ? 1 : 0);
}

/* The driver-status bit that says cuFile does DMA for this filesystem and disk, or -1. */
static int fs_status_bit(const char *fs, const char *disk, bool p2p_only) {
  bool local = strcmp(fs, "ext4") == 0 || strcmp(fs, "xfs") == 0;
  if (local && strncmp(disk, "nvme", 4) == 0)
    return p2p_only ? CU_FILE_NVME_P2P_SUPPORTED : CU_FILE_NVME_SUPPORTED;
  if (p2p_only)
    return -1; /* kernel P2PDMA serves local NVMe only */
  if (local && (strncmp(disk, "sd", 2) == 0))
    return CU_FILE_SCSI_SUPPORTED;
  if (strncmp(fs, "nfs", 3) == 0)
    return CU_FILE_NFS_SUPPORTED;
  if (strcmp(fs, "lustre") == 0)
    return CU_FILE_LUSTRE_SUPPORTED;
  if (strcmp(fs, "wekafs") == 0)
    return CU_FILE_WEKAFS_SUPPORTED;
  if (strcmp(fs, "gpfs") == 0)
    return CU_FILE_GPFS_SUPPORTED;
  if (strcmp(fs, "beegfs") == 0)
    return CU_FILE_BEEGFS_SUPPORTED;
  return -1;
}

/* The filesystem type and disk under fd, for the DMA check. 0, or -1 with `why` filled. */
static int file_place(const char *path, int fd, char *fs, size_t fs_len, char *disk,
                      size_t disk_len, char *why, size_t len) {
  struct stat st;
  if (kvik__sys.fstat(fd, &st) != 0) {
    snprintf(why, len, "cuFile's DMA check: fstat %s failed: %s", path, kvik__errno_text(errno));
    return -1;
  }
  unsigned dma, dmi;
  kvik__fs_type((unsigned long)st.st_dev, fs, fs_len);
  if (kvik__blockdev(major(st.st_dev), minor(st.st_dev), disk, disk_len, &dma, &dmi) != 0)
    disk[0] = '\0';
  return 0;
}

int kvik__cufile_dma(const char *path, int fd, char *why, size_t len) {
  snprintf(why, len, "cuFile's properties are unknown");
  char dir[PATH_MAX], fs[64], disk[64];
  bool nvfs = nvfs_loaded(dir, sizeof dir);
  int forced = atomic_load(&hook_fs_dma);
  /* Without nvidia-fs only kernel P2PDMA does DMA, and only for ext4 or xfs on local NVMe. A
   * file anywhere else is answered from those facts alone, without loading cuFile: opening its
   * driver took 0.4 s on the H200 machine, which every file open in AUTO would otherwise pay
   * (and a one-shot load with it). */
  if (!nvfs && forced < 0) {
    if (file_place(path, fd, fs, sizeof fs, disk, sizeof disk, why, len) != 0)
      return 0;
    if (fs_status_bit(fs, disk, true) < 0) {
      snprintf(why, len,
               "cuFile would run its compat mode: nvidia-fs not loaded (no %s), and kernel "
               "P2PDMA serves only ext4 or xfs on local NVMe, not %s on %s",
               dir, fs, disk[0] ? disk : "no disk");
      return 0;
    }
  }
  const struct kvik__cufile_api *cf;
  if (kvik__cufile_get(&cf) != 0)
    return 0;
  CUfileDrvProps_t p;
  if (get_props(cf, &p, "cuFile DMA check") != 0) {
    snprintf(why, len, "%s", kvik_last_error());
    return 0;
  }
  bool p2p =
      bit(p.fflags, CU_FILE_P2P_SUPPORTED) && bit(p.nvfs.dstatusflags, CU_FILE_NVME_P2P_SUPPORTED);
  if (!nvfs && !p2p) {
    snprintf(why, len, "cuFile would run its compat mode: nvidia-fs not loaded (no %s), no P2PDMA",
             dir);
    return 0;
  }
  const char *mech = nvfs ? "nvidia-fs" : "kernel P2PDMA";
  if (forced >= 0) {
    snprintf(why, len, "%s%s is active; filesystem check forced to %s (test hook)",
             forced ? "real GDS: " : "cuFile would run its compat mode: ", mech,
             forced ? "DMA" : "no DMA");
    return forced;
  }
  if (file_place(path, fd, fs, sizeof fs, disk, sizeof disk, why, len) != 0)
    return 0;
  int b = fs_status_bit(fs, disk, !nvfs);
  if (b < 0 || !bit(p.nvfs.dstatusflags, b)) {
    snprintf(why, len,
             "cuFile would run its compat mode: %s is active, but no DMA for %s on %s "
             "(status flags %#x)",
             mech, fs, disk[0] ? disk : "no disk", p.nvfs.dstatusflags);
    return 0;
  }
  if (nvfs)
    snprintf(why, len, "real GDS: nvidia-fs %u.%u is loaded and serves %s on %s",
             p.nvfs.major_version, p.nvfs.minor_version, fs, disk[0] ? disk : "the network");
  else
    snprintf(why, len, "real GDS: kernel P2PDMA serves %s on %s", fs, disk);
  return 1;
}

/* ---- file handles ------------------------------------------------------------------------ */

int kvik__cufile_handle_register(int fd, const char *path, CUfileHandle_t *out) {
  *out = NULL;
  const struct kvik__cufile_api *cf;
  int rc = kvik__cufile_get(&cf);
  if (rc)
    return rc;
  if (!kvik__cufile_enter())
    return gone_err("cuFileHandleRegister");
  CUfileDescr_t d;
  memset(&d, 0, sizeof d);
  d.type = CU_FILE_HANDLE_TYPE_OPAQUE_FD;
  d.handle.fd = fd;
  CUfileHandle_t h = NULL;
  CUfileError_t e = cf->cuFileHandleRegister(&h, &d);
  if (e.err != CU_FILE_SUCCESS) {
    kvik__cufile_leave();
    return kvik__cufile_fail(e, "cuFileHandleRegister %s (descriptor %d)", path, fd);
  }
  /* Tracked for the exit handler. No cuFile call is made under the lock. */
  pthread_mutex_lock(&reg_lock);
  if (nhandles == caphandles) {
    size_t cap = caphandles ? caphandles * 2 : 16;
    CUfileHandle_t *n = kvik__malloc(cap * sizeof *n);
    if (n) {
      if (nhandles)
        memcpy(n, handles, nhandles * sizeof *n);
      kvik__free(handles);
      handles = n;
      caphandles = cap;
    }
  }
  bool tracked = nhandles < caphandles;
  if (tracked)
    handles[nhandles++] = h;
  pthread_mutex_unlock(&reg_lock);
  if (!tracked)
    cf->cuFileHandleDeregister(h);
  kvik__cufile_leave();
  if (!tracked)
    return kvik__err(-ENOMEM, "cuFileHandleRegister %s: out of memory", path);
  *out = h;
  return 0;
}

void kvik__cufile_handle_deregister(CUfileHandle_t h) {
  if (!h)
    return;
  const struct kvik__cufile_api *cf = &api;
  if (!kvik__cufile_loaded() || !kvik__cufile_enter())
    return; /* exiting or forked: leave it to the process teardown */
  bool found = false;
  pthread_mutex_lock(&reg_lock);
  for (size_t i = 0; i < nhandles; i++)
    if (handles[i] == h) {
      handles[i] = handles[--nhandles];
      found = true;
      break;
    }
  pthread_mutex_unlock(&reg_lock);
  if (found)
    cf->cuFileHandleDeregister(h);
  kvik__cufile_leave();
}

/* ---- buffer registration ----------------------------------------------------------------- */

uintptr_t kvik__cufile_base(uintptr_t ptr, size_t len, uintptr_t alloc_base) {
  uintptr_t base = alloc_base;
  pthread_mutex_lock(&reg_lock);
  for (struct regbuf *b = bufs; b; b = b->next)
    if (ptr >= b->ptr && ptr - b->ptr <= b->size && len <= b->size - (ptr - b->ptr)) {
      base = b->ptr;
      break;
    }
  pthread_mutex_unlock(&reg_lock);
  return base;
}

int kvik_buffer_register(const void *buf, size_t size, int flags) {
  if (!buf || size == 0)
    return kvik__err(KVIK_EINVAL, "kvik_buffer_register: %s",
                     !buf ? "buffer is NULL" : "size is 0");
  struct kvik__mem_info mi;
  int rc = kvik__mem_query(buf, size, &mi);
  if (rc)
    return rc;
  if (mi.kind != KVIK_MEM_DEVICE)
    return kvik__err(KVIK_EINVAL,
                     "kvik_buffer_register %p (%zu bytes): %s memory; only device memory is "
                     "registered with cuFile (kvik never passes other memory to cuFile)",
                     buf, size,
                     mi.kind == KVIK_MEM_MANAGED       ? "managed"
                     : mi.kind == KVIK_MEM_HOST_PINNED ? "pinned host"
                                                       : "host");
  struct regbuf *nb = kvik__calloc(1, sizeof *nb);
  if (!nb)
    return kvik__err(-ENOMEM, "kvik_buffer_register: out of memory");
  nb->ptr = (uintptr_t)buf;
  nb->size = size;
  /* Reserve the range first, so two threads cannot register overlapping buffers. */
  pthread_mutex_lock(&reg_lock);
  struct regbuf *clash = NULL;
  for (struct regbuf *b = bufs; b && !clash; b = b->next)
    if (nb->ptr < b->ptr + b->size && b->ptr < nb->ptr + size)
      clash = b;
  uintptr_t cptr = clash ? clash->ptr : 0;
  size_t csize = clash ? clash->size : 0;
  if (!clash) {
    nb->next = bufs;
    bufs = nb;
  }
  pthread_mutex_unlock(&reg_lock);
  if (clash) {
    kvik__free(nb);
    return kvik__err(KVIK_EINVAL,
                     "kvik_buffer_register %p (%zu bytes): overlaps the registered buffer %p "
                     "(%zu bytes)",
                     buf, size, (void *)cptr, csize);
  }

  /* cuFile is used unless compat mode is ON for the process or it cannot load. */
  const struct kvik__cufile_api *cf = NULL;
  bool use = kvik__config_ready() == 0 && kvik__cfg_u64(KVIK_CFG_COMPAT_MODE) != KVIK_COMPAT_ON &&
             kvik__cufile_get(&cf) == 0;
  if (!use) {
    kvik__log(KVIK_LOG_DEBUG, "kvik_buffer_register %p: recorded only (%s)", buf,
              kvik__cfg_u64(KVIK_CFG_COMPAT_MODE) == KVIK_COMPAT_ON ? "compat mode ON"
                                                                    : kvik_last_error());
    kvik__err_clear();
    return 0;
  }
  CUcontext ctx;
  rc = kvik__mem_ctx(&mi, &ctx);
  const struct kvik__cuda_api *cu = NULL;
  if (rc == 0)
    rc = kvik__cuda_get(&cu);
  CUresult r = rc ? CUDA_SUCCESS : cu->cuCtxPushCurrent_v2(ctx);
  if (rc == 0 && r != CUDA_SUCCESS)
    rc = kvik__cuda_fail(r, "kvik_buffer_register: cuCtxPushCurrent_v2");
  if (rc == 0) {
    if (kvik__cufile_enter()) {
      CUfileError_t e = cf->cuFileBufRegister(buf, size, flags);
      kvik__cufile_leave();
      if (e.err != CU_FILE_SUCCESS)
        rc = kvik__cufile_fail(e, "kvik_buffer_register %p (%zu bytes): cuFileBufRegister", buf,
                               size);
    } else {
      rc = gone_err("kvik_buffer_register");
    }
    CUcontext dummy;
    cu->cuCtxPopCurrent_v2(&dummy);
  }
  pthread_mutex_lock(&reg_lock);
  if (rc == 0) {
    nb->in_cufile = true;
  } else {
    for (struct regbuf **pp = &bufs; *pp; pp = &(*pp)->next)
      if (*pp == nb) {
        *pp = nb->next;
        break;
      }
  }
  pthread_mutex_unlock(&reg_lock);
  if (rc)
    kvik__free(nb);
  return rc;
}

int kvik_buffer_deregister(const void *buf) {
  if (!buf)
    return kvik__err(KVIK_EINVAL, "kvik_buffer_deregister: buffer is NULL");
  pthread_mutex_lock(&reg_lock);
  struct regbuf *found = NULL, *inside = NULL;
  for (struct regbuf **pp = &bufs; *pp; pp = &(*pp)->next) {
    struct regbuf *b = *pp;
    if (b->ptr == (uintptr_t)buf) {
      *pp = b->next;
      found = b;
      break;
    }
    if ((uintptr_t)buf > b->ptr && (uintptr_t)buf < b->ptr + b->size)
      inside = b;
  }
  uintptr_t iptr = inside ? inside->ptr : 0;
  pthread_mutex_unlock(&reg_lock);
  if (!found) {
    if (inside)
      return kvik__err(KVIK_EINVAL,
                       "kvik_buffer_deregister %p: not the start of a registered buffer (it lies "
                       "inside the one registered at %p)",
                       buf, (void *)iptr);
    return kvik__err(KVIK_EINVAL,
                     "kvik_buffer_deregister %p: not registered (never, or deregistered already)",
                     buf);
  }
  int rc = 0;
  if (found->in_cufile && kvik__cufile_loaded() && kvik__cufile_enter()) {
    CUfileError_t e = api.cuFileBufDeregister(buf);
    kvik__cufile_leave();
    if (e.err != CU_FILE_SUCCESS)
      rc = kvik__cufile_fail(e, "kvik_buffer_deregister %p: cuFileBufDeregister", buf);
  }
  kvik__free(found);
  return rc;
}

/* ---- stream registration ----------------------------------------------------------------- */

static int stream_reg(struct CUstream_st *stream, unsigned flags, bool reg) {
  const char *fn = reg ? "kvik_stream_register" : "kvik_stream_deregister";
  const struct kvik__cufile_api *cf;
  int rc = kvik__cufile_get(&cf);
  if (rc)
    return rc;
  if (!cf->has_async)
    return kvik__err(KVIK_EUNSUPPORTED, "%s: %s", fn, cf->no_async);
  if (!kvik__cufile_enter())
    return gone_err(fn);
  CUfileError_t e =
      reg ? cf->cuFileStreamRegister(stream, flags) : cf->cuFileStreamDeregister(stream);
  kvik__cufile_leave();
  if (e.err != CU_FILE_SUCCESS)
    return kvik__cufile_fail(e, "%s(%p): %s", fn, (void *)stream,
                             reg ? "cuFileStreamRegister" : "cuFileStreamDeregister");
  return 0;
}

int kvik_stream_register(struct CUstream_st *stream, unsigned flags) {
  return stream_reg(stream, flags, true);
}

int kvik_stream_deregister(struct CUstream_st *stream) { return stream_reg(stream, 0, false); }

/* ---- the data path ----------------------------------------------------------------------- */

/* A negative return of cuFileRead/cuFileWrite: -1 with errno set for file system errors, else
 * the negated CUfileOpError. */
static int ret_fail(ssize_t ret, int errnum, bool write, const char *path, size_t size, int64_t off,
                    uintptr_t buf) {
  const char *fn = write ? "cuFileWrite" : "cuFileRead";
  if (ret == -1 || -ret < CU_FILE_DRIVER_NOT_INITIALIZED) {
    int e = ret == -1 ? errnum : (int)-ret;
    if (e <= 0)
      e = EIO;
    return kvik__err(-e, "%s %s (%zu bytes at offset %lld, buffer %#llx): %s", fn, path, size,
                     (long long)off, (unsigned long long)buf, kvik__errno_text(e));
  }
  int err = (int)-ret;
  return kvik__err(KVIK_ECUFILE, "%s %s (%zu bytes at offset %lld, buffer %#llx): %s (%d)%s", fn,
                   path, size, (long long)off, (unsigned long long)buf, kvik__cufile_errname(err),
                   err, cufile_hint(err));
}

static ssize_t xfer(bool write, CUfileHandle_t h, const char *path, CUcontext ctx, uintptr_t base,
                    uintptr_t buf, size_t size, int64_t off) {
  const struct kvik__cufile_api *cf;
  const struct kvik__cuda_api *cu;
  int rc = kvik__cufile_get(&cf);
  if (rc || (rc = kvik__cuda_get(&cu)) != 0)
    return rc;
  if (!kvik__cufile_enter())
    return gone_err(write ? "cuFileWrite" : "cuFileRead");
  CUresult r = cu->cuCtxPushCurrent_v2(ctx);
  if (r != CUDA_SUCCESS) {
    kvik__cufile_leave();
    return kvik__cuda_fail(r, "cuCtxPushCurrent_v2 (the buffer's context, for cuFile)");
  }
  size_t done = 0;
  ssize_t result = 0;
  while (done < size) {
    size_t len = size - done;
    off_t foff = (off_t)(off + (int64_t)done);
    off_t boff = (off_t)(buf - base + done);
    errno = 0;
    ssize_t n = write ? cf->cuFileWrite(h, (const void *)base, len, foff, boff)
                      : cf->cuFileRead(h, (void *)base, len, foff, boff);
    int errnum = errno;
    if (n < 0) {
      result = ret_fail(n, errnum, write, path, len, (int64_t)foff, buf + done);
      break;
    }
    if (n == 0) {
      if (write)
        result = kvik__err(-EIO, "cuFileWrite %s (%zu bytes at offset %lld): no progress", path,
                           len, (long long)foff);
      break; /* a read at end of file */
    }
    done += (size_t)n;
  }
  CUcontext dummy;
  cu->cuCtxPopCurrent_v2(&dummy);
  kvik__cufile_leave();
  return result < 0 ? result : (ssize_t)done;
}

ssize_t kvik__cufile_read(CUfileHandle_t h, const char *path, CUcontext ctx, uintptr_t base,
                          uintptr_t buf, size_t size, int64_t off) {
  return xfer(false, h, path, ctx, base, buf, size, off);
}

ssize_t kvik__cufile_write(CUfileHandle_t h, const char *path, CUcontext ctx, uintptr_t base,
                           uintptr_t buf, size_t size, int64_t off) {
  return xfer(true, h, path, ctx, base, buf, size, off);
}
