/* A fake cuFile library, built as libcufile.so.0 for CPU-only tests, over the fake libcuda.so.1.
 * fake_cufile.h describes the model and the control functions. Every entry point is declared
 * from kvik's list (src/gpu/cufile_list.h), so a definition with another signature does not
 * compile. Built twice: the full library, and with FAKE_CUFILE_MINIMAL the variant that has only
 * the required entry points (and the old cuFileDriverClose), to test optional features.
 *
 * Locking: g_lock guards every table and counter below; no call into the fake libcuda and no
 * I/O is made while holding it, except stream enqueues (which take only the stream's lock). */
#include "gpu/cufile.h"

#include "fake_cuda.h"
#include "fake_cufile.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

#define FAKE_PROTO(required, name, ret, params) EXPORT ret name params;
KVIK_CUFILE_FUNCS(FAKE_PROTO)
#undef FAKE_PROTO

EXPORT int fake_cufile_fail(const char *fn, long after, int err, long times);
EXPORT void fake_cufile_fail_clear(void);
EXPORT long fake_cufile_calls(const char *fn);
EXPORT long fake_cufile_live(const char *what);
EXPORT int fake_cufile_set(const char *option, long value);

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- options, counters, failure rules (g_lock) ------------------------------------------- */

static long opt_gds, opt_p2p, opt_open_error, opt_batch_delay_us;
static int version = 1150;
static long n_opens, n_closes, n_after_close;
static bool is_open;
static long poll_mode, poll_thresh_kb = 4, max_direct_kb = 16384, max_cache_kb = 131072,
                       max_pinned_kb = 33554432;
static _Atomic long read_bytes, write_bytes;

#define FAKE_FN_ID(required, name, ret, params) FN_##name,
enum fn_id { KVIK_CUFILE_FUNCS(FAKE_FN_ID) FN_COUNT };
#undef FAKE_FN_ID
#define FAKE_FN_NAME(required, name, ret, params) #name,
static const char *const fn_names[FN_COUNT] = {KVIK_CUFILE_FUNCS(FAKE_FN_NAME)};
#undef FAKE_FN_NAME
static _Atomic long fn_calls[FN_COUNT];

struct rule {
  char fn[64];
  long after, times;
  int err;
};
static struct rule rules[16];
static int n_rules;

/* The injected error for this call of fn, or 0. */
static int rule_check(const char *fn) {
  int r = 0;
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < n_rules; i++) {
    if (strcmp(rules[i].fn, fn) != 0 || rules[i].times == 0)
      continue;
    if (rules[i].after > 0) {
      rules[i].after--;
      break;
    }
    if (rules[i].times > 0)
      rules[i].times--;
    r = rules[i].err;
    break;
  }
  pthread_mutex_unlock(&g_lock);
  return r;
}

static CUfileError_t status(int err) {
  CUfileError_t e = {(CUfileOpError)err, CUDA_SUCCESS};
  return e;
}

/* Counts the call; 0 if it may proceed, else the CUfileOpError to return. Calls other than
 * cuFileDriverOpen need an open driver. */
static int enter(enum fn_id id) {
  atomic_fetch_add(&fn_calls[id], 1);
  if (id != FN_cuFileDriverOpen && id != FN_cuFileGetVersion && id != FN_cuFileUseCount) {
    pthread_mutex_lock(&g_lock);
    bool open = is_open;
    if (!open)
      n_after_close++;
    pthread_mutex_unlock(&g_lock);
    if (!open)
      return CU_FILE_DRIVER_NOT_INITIALIZED;
  }
  return rule_check(fn_names[id]);
}

/* ---- the fake libcuda -------------------------------------------------------------------- */

static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;
static fake_cuda_backing_fn cuda_backing;
static CUresult (*cuda_ctx_get)(CUcontext *);
static CUresult (*cuda_launch_host)(CUstream, CUhostFn, void *);

static void bind_cuda(void) {
  void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h)
    return;
  void *p = dlsym(h, "fake_cuda_backing");
  memcpy(&cuda_backing, &p, sizeof p);
  p = dlsym(h, "cuCtxGetCurrent");
  memcpy(&cuda_ctx_get, &p, sizeof p);
  p = dlsym(h, "cuLaunchHostFunc");
  memcpy(&cuda_launch_host, &p, sizeof p);
}

/* The bytes of [addr, addr + n) of fake device memory, or NULL. */
static char *backing(uintptr_t addr, size_t n) {
  pthread_once(&cuda_once, bind_cuda);
  void *out = NULL;
  if (!cuda_backing || cuda_backing(addr, n ? n : 1, &out) != 0)
    return NULL;
  return out;
}

/* ---- file handles ------------------------------------------------------------------------ */

#define FH_MAGIC 0x46484644u
struct fh {
  unsigned magic;
  int fd;
  struct fh *next;
};
static struct fh *handles; /* g_lock */

static bool fh_valid(CUfileHandle_t h) {
  pthread_mutex_lock(&g_lock);
  bool ok = false;
  for (struct fh *f = handles; f; f = f->next)
    ok = ok || f == h;
  pthread_mutex_unlock(&g_lock);
  return ok;
}

/* ---- buffers ----------------------------------------------------------------------------- */

struct buf {
  uintptr_t base;
  size_t size;
  struct buf *next;
};
static struct buf *bufs; /* g_lock */

/* ---- streams registered ------------------------------------------------------------------ */

struct sreg {
  CUstream s;
  struct sreg *next;
};
static struct sreg *sregs; /* g_lock */

/* ---- driver ------------------------------------------------------------------------------ */

CUfileError_t cuFileDriverOpen(void) {
  int e = enter(FN_cuFileDriverOpen);
  if (e)
    return status(e);
  pthread_mutex_lock(&g_lock);
  int err = (int)opt_open_error;
  if (!err) {
    n_opens++;
    is_open = true;
  }
  pthread_mutex_unlock(&g_lock);
  return status(err);
}

static CUfileError_t driver_close(enum fn_id id) {
  int e = enter(id);
  if (e)
    return status(e);
  pthread_mutex_lock(&g_lock);
  n_closes++;
  is_open = false;
  pthread_mutex_unlock(&g_lock);
  return status(0);
}

CUfileError_t cuFileDriverClose(void) { return driver_close(FN_cuFileDriverClose); }

long cuFileUseCount(void) {
  atomic_fetch_add(&fn_calls[FN_cuFileUseCount], 1);
  pthread_mutex_lock(&g_lock);
  long n = is_open ? 1 : 0;
  pthread_mutex_unlock(&g_lock);
  return n;
}

CUfileError_t cuFileDriverGetProperties(CUfileDrvProps_t *props) {
  int e = enter(FN_cuFileDriverGetProperties);
  if (e)
    return status(e);
  if (!props)
    return status(CU_FILE_INVALID_VALUE);
  memset(props, 0, sizeof *props);
  pthread_mutex_lock(&g_lock);
  props->nvfs.major_version = opt_gds ? 2 : 0;
  props->nvfs.minor_version = opt_gds ? 20 : 0;
  props->nvfs.poll_thresh_size = (size_t)poll_thresh_kb;
  props->nvfs.max_direct_io_size = (size_t)max_direct_kb;
  if (opt_gds)
    props->nvfs.dstatusflags |=
        1u << CU_FILE_NVME_SUPPORTED | 1u << CU_FILE_NVMEOF_SUPPORTED | 1u << CU_FILE_NFS_SUPPORTED;
  if (opt_p2p)
    props->nvfs.dstatusflags |= 1u << CU_FILE_NVME_P2P_SUPPORTED;
  props->nvfs.dcontrolflags =
      (unsigned)(poll_mode ? 1u << CU_FILE_USE_POLL_MODE : 0) | 1u << CU_FILE_ALLOW_COMPAT_MODE;
  props->fflags = 1u << CU_FILE_BATCH_IO_SUPPORTED | 1u << CU_FILE_STREAMS_SUPPORTED |
                  (opt_p2p ? 1u << CU_FILE_P2P_SUPPORTED : 0);
  props->max_device_cache_size = (unsigned)max_cache_kb;
  props->per_buffer_cache_size = 1024;
  props->max_device_pinned_mem_size = (unsigned)max_pinned_kb;
  props->max_batch_io_size = 128;
  props->max_batch_io_timeout_msecs = 5;
  pthread_mutex_unlock(&g_lock);
  return status(0);
}

/* ---- handles, buffers -------------------------------------------------------------------- */

CUfileError_t cuFileHandleRegister(CUfileHandle_t *fh, CUfileDescr_t *descr) {
  int e = enter(FN_cuFileHandleRegister);
  if (e)
    return status(e);
  if (!fh || !descr || descr->type != CU_FILE_HANDLE_TYPE_OPAQUE_FD)
    return status(CU_FILE_INVALID_VALUE);
  int fl = fcntl(descr->handle.fd, F_GETFL);
  if (fl < 0)
    return status(CU_FILE_INVALID_FILE_TYPE);
  pthread_mutex_lock(&g_lock);
  bool gds = opt_gds != 0;
  pthread_mutex_unlock(&g_lock);
  if (gds && !(fl & O_DIRECT))
    return status(CU_FILE_DIO_NOT_SET);
  struct fh *f = calloc(1, sizeof *f);
  if (!f)
    return status(CU_FILE_INTERNAL_ERROR);
  f->magic = FH_MAGIC;
  f->fd = descr->handle.fd;
  pthread_mutex_lock(&g_lock);
  f->next = handles;
  handles = f;
  pthread_mutex_unlock(&g_lock);
  *fh = f;
  return status(0);
}

void cuFileHandleDeregister(CUfileHandle_t h) {
  if (enter(FN_cuFileHandleDeregister))
    return;
  pthread_mutex_lock(&g_lock);
  for (struct fh **pp = &handles; *pp; pp = &(*pp)->next)
    if (*pp == h) {
      struct fh *f = *pp;
      *pp = f->next;
      f->magic = 0;
      free(f);
      break;
    }
  pthread_mutex_unlock(&g_lock);
}

CUfileError_t cuFileBufRegister(const void *bufPtr_base, size_t length, int flags) {
  int e = enter(FN_cuFileBufRegister);
  if (e)
    return status(e);
  if (!bufPtr_base || length == 0 || flags != 0)
    return status(CU_FILE_INVALID_VALUE);
  if (!backing((uintptr_t)bufPtr_base, length))
    return status(CU_FILE_CUDA_MEMORY_TYPE_INVALID);
  uintptr_t b = (uintptr_t)bufPtr_base;
  pthread_mutex_lock(&g_lock);
  int err = 0;
  for (struct buf *x = bufs; x; x = x->next)
    if (b < x->base + x->size && x->base < b + length)
      err = CU_FILE_MEMORY_ALREADY_REGISTERED;
  struct buf *n = err ? NULL : calloc(1, sizeof *n);
  if (n) {
    n->base = b;
    n->size = length;
    n->next = bufs;
    bufs = n;
  } else if (!err) {
    err = CU_FILE_INTERNAL_ERROR;
  }
  pthread_mutex_unlock(&g_lock);
  return status(err);
}

CUfileError_t cuFileBufDeregister(const void *bufPtr_base) {
  int e = enter(FN_cuFileBufDeregister);
  if (e)
    return status(e);
  int err = CU_FILE_MEMORY_NOT_REGISTERED;
  pthread_mutex_lock(&g_lock);
  for (struct buf **pp = &bufs; *pp; pp = &(*pp)->next)
    if ((*pp)->base == (uintptr_t)bufPtr_base) {
      struct buf *x = *pp;
      *pp = x->next;
      free(x);
      err = 0;
      break;
    }
  pthread_mutex_unlock(&g_lock);
  return status(err);
}

/* ---- reads and writes -------------------------------------------------------------------- */

/* One transfer, as cuFileRead/cuFileWrite return it: bytes, -1 with errno, or -CUfileOpError. */
static ssize_t do_io(bool write, CUfileHandle_t h, uintptr_t base, size_t size, off_t foff,
                     off_t boff, bool check_ctx) {
  if (!fh_valid(h))
    return -CU_FILE_HANDLE_NOT_REGISTERED;
  if (foff < 0 || boff < 0)
    return -CU_FILE_INVALID_VALUE;
  if (check_ctx) {
    pthread_once(&cuda_once, bind_cuda);
    CUcontext c = NULL;
    if (!cuda_ctx_get || cuda_ctx_get(&c) != CUDA_SUCCESS || !c)
      return -CU_FILE_CUDA_CONTEXT_MISMATCH;
  }
  char *p = backing(base + (uintptr_t)boff, size);
  if (!p)
    return -CU_FILE_CUDA_MEMORY_TYPE_INVALID;
  int fd = ((struct fh *)h)->fd;
  size_t done = 0;
  while (done < size) {
    ssize_t n = write ? pwrite(fd, p + done, size - done, foff + (off_t)done)
                      : pread(fd, p + done, size - done, foff + (off_t)done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      if (errno == EINVAL && done == 0) {
        /* O_DIRECT refuses unaligned transfers: cuFile's compat path would bounce them; do it
         * through a buffered descriptor on the same file. */
        char link[64], path[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t l = readlink(link, path, sizeof path - 1);
        if (l > 0) {
          path[l] = '\0';
          int bfd = open(path, write ? O_WRONLY : O_RDONLY);
          if (bfd >= 0) {
            ssize_t r = 0;
            while (done < size) {
              r = write ? pwrite(bfd, p + done, size - done, foff + (off_t)done)
                        : pread(bfd, p + done, size - done, foff + (off_t)done);
              if (r <= 0)
                break;
              done += (size_t)r;
            }
            int e = errno;
            close(bfd);
            if (r < 0 && done == 0) {
              errno = e;
              return -1;
            }
            break;
          }
        }
      }
      if (done)
        break;
      return -1;
    }
    if (n == 0)
      break;
    done += (size_t)n;
  }
  atomic_fetch_add(write ? &write_bytes : &read_bytes, (long)done);
  return (ssize_t)done;
}

ssize_t cuFileRead(CUfileHandle_t fh, void *bufPtr_base, size_t size, off_t file_offset,
                   off_t bufPtr_offset) {
  int e = enter(FN_cuFileRead);
  if (e)
    return -e;
  return do_io(false, fh, (uintptr_t)bufPtr_base, size, file_offset, bufPtr_offset, true);
}

ssize_t cuFileWrite(CUfileHandle_t fh, const void *bufPtr_base, size_t size, off_t file_offset,
                    off_t bufPtr_offset) {
  int e = enter(FN_cuFileWrite);
  if (e)
    return -e;
  return do_io(true, fh, (uintptr_t)bufPtr_base, size, file_offset, bufPtr_offset, true);
}

#ifndef FAKE_CUFILE_MINIMAL

CUfileError_t cuFileDriverClose_v2(void) { return driver_close(FN_cuFileDriverClose_v2); }

CUfileError_t cuFileDriverSetPollMode(bool poll, size_t poll_threshold_size) {
  int e = enter(FN_cuFileDriverSetPollMode);
  if (e)
    return status(e);
  pthread_mutex_lock(&g_lock);
  poll_mode = poll;
  poll_thresh_kb = (long)poll_threshold_size;
  pthread_mutex_unlock(&g_lock);
  return status(0);
}

CUfileError_t cuFileDriverSetMaxDirectIOSize(size_t max_direct_io_size) {
  int e = enter(FN_cuFileDriverSetMaxDirectIOSize);
  if (e)
    return status(e);
  if (max_direct_io_size == 0)
    return status(CU_FILE_INVALID_VALUE);
  pthread_mutex_lock(&g_lock);
  max_direct_kb = (long)max_direct_io_size;
  pthread_mutex_unlock(&g_lock);
  return status(0);
}

CUfileError_t cuFileDriverSetMaxCacheSize(size_t max_cache_size) {
  int e = enter(FN_cuFileDriverSetMaxCacheSize);
  if (e)
    return status(e);
  pthread_mutex_lock(&g_lock);
  max_cache_kb = (long)max_cache_size;
  pthread_mutex_unlock(&g_lock);
  return status(0);
}

CUfileError_t cuFileDriverSetMaxPinnedMemSize(size_t max_pinned_size) {
  int e = enter(FN_cuFileDriverSetMaxPinnedMemSize);
  if (e)
    return status(e);
  pthread_mutex_lock(&g_lock);
  max_pinned_kb = (long)max_pinned_size;
  pthread_mutex_unlock(&g_lock);
  return status(0);
}

CUfileError_t cuFileGetVersion(int *v) {
  int e = enter(FN_cuFileGetVersion);
  if (e)
    return status(e);
  if (!v)
    return status(CU_FILE_INVALID_VALUE);
  *v = version;
  return status(0);
}

/* ---- batch ------------------------------------------------------------------------------- */

#define BATCH_MAGIC 0x42415443u
enum { B_FREE, B_PENDING, B_RUNNING, B_DONE };

struct bop {
  int state;
  CUfileIOParams_t p;
  CUfileStatus_t st;
  size_t ret;
  bool reported;
};

struct fbatch {
  unsigned magic;
  unsigned max;
  pthread_mutex_t mu; /* guards ops, workers; cv signals completions and worker exits */
  pthread_cond_t cv;
  struct bop *ops;
  int workers; /* 0 or 1: the thread that runs the operations in order */
  struct fbatch *next;
};
static struct fbatch *batches; /* g_lock */

static void sleep_us(long us) {
  struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void *batch_worker(void *arg) {
  struct fbatch *b = arg;
  pthread_mutex_lock(&g_lock);
  long delay = opt_batch_delay_us;
  pthread_mutex_unlock(&g_lock);
  for (;;) {
    pthread_mutex_lock(&b->mu);
    struct bop *o = NULL;
    for (unsigned i = 0; i < b->max && !o; i++)
      if (b->ops[i].state == B_PENDING)
        o = &b->ops[i];
    if (!o) {
      /* In the same critical section as the search, so a submission either sees this worker
       * still counted (and leaves its operations to it) or starts a new one. */
      b->workers--;
      pthread_cond_broadcast(&b->cv);
      pthread_mutex_unlock(&b->mu);
      return NULL;
    }
    o->state = B_RUNNING;
    pthread_mutex_unlock(&b->mu);
    if (delay > 0)
      sleep_us(delay);
    int inj = rule_check("batch:op");
    ssize_t n =
        inj ? -inj
            : do_io(o->p.opcode == CUFILE_WRITE, o->p.fh, (uintptr_t)o->p.u.batch.devPtr_base,
                    o->p.u.batch.size, o->p.u.batch.file_offset, o->p.u.batch.devPtr_offset, false);
    pthread_mutex_lock(&b->mu);
    if (o->st != CUFILE_CANCELED) {
      o->st = n < 0 ? CUFILE_FAILED : CUFILE_COMPLETE;
      o->ret = (size_t)n;
    }
    o->state = B_DONE;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
  }
}

static struct fbatch *batch_of(CUfileBatchHandle_t h) {
  pthread_mutex_lock(&g_lock);
  struct fbatch *b = batches;
  while (b && b != h)
    b = b->next;
  pthread_mutex_unlock(&g_lock);
  return b;
}

CUfileError_t cuFileBatchIOSetUp(CUfileBatchHandle_t *batch_idp, unsigned nr) {
  int e = enter(FN_cuFileBatchIOSetUp);
  if (e)
    return status(e);
  if (!batch_idp || nr == 0 || nr > 128)
    return status(CU_FILE_INVALID_VALUE);
  struct fbatch *b = calloc(1, sizeof *b);
  if (!b || !(b->ops = calloc(nr, sizeof *b->ops))) {
    free(b);
    return status(CU_FILE_INTERNAL_ERROR);
  }
  b->magic = BATCH_MAGIC;
  b->max = nr;
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, NULL);
  pthread_mutex_lock(&g_lock);
  b->next = batches;
  batches = b;
  pthread_mutex_unlock(&g_lock);
  *batch_idp = b;
  return status(0);
}

CUfileError_t cuFileBatchIOSubmit(CUfileBatchHandle_t batch_idp, unsigned nr,
                                  CUfileIOParams_t *iocbp, unsigned int flags) {
  int e = enter(FN_cuFileBatchIOSubmit);
  if (e)
    return status(e);
  struct fbatch *b = batch_of(batch_idp);
  if (!b || !iocbp || flags != 0)
    return status(CU_FILE_INVALID_VALUE);
  pthread_mutex_lock(&b->mu);
  unsigned free_slots = 0;
  for (unsigned i = 0; i < b->max; i++)
    free_slots += b->ops[i].state == B_FREE;
  int err = nr > b->max ? CU_FILE_INVALID_VALUE : nr > free_slots ? CU_FILE_BATCH_FULL : 0;
  for (unsigned i = 0; i < nr && !err; i++)
    if (iocbp[i].mode != CUFILE_BATCH || !fh_valid(iocbp[i].fh))
      err = CU_FILE_INVALID_VALUE;
  for (unsigned i = 0, j = 0; i < nr && !err; i++) {
    while (b->ops[j].state != B_FREE)
      j++;
    b->ops[j] = (struct bop){.state = B_PENDING, .p = iocbp[i], .st = CUFILE_PENDING};
  }
  bool start = !err && nr > 0 && b->workers == 0; /* one worker per batch, in order */
  if (start)
    b->workers++;
  pthread_mutex_unlock(&b->mu);
  if (start) {
    pthread_t t;
    if (pthread_create(&t, NULL, batch_worker, b) != 0) {
      batch_worker(b); /* run inline rather than lose the operations */
    } else {
      pthread_detach(t);
    }
  }
  return status(err);
}

CUfileError_t cuFileBatchIOGetStatus(CUfileBatchHandle_t batch_idp, unsigned min_nr, unsigned *nr,
                                     CUfileIOEvents_t *iocbp, struct timespec *timeout) {
  int e = enter(FN_cuFileBatchIOGetStatus);
  if (e)
    return status(e);
  struct fbatch *b = batch_of(batch_idp);
  if (!b || !nr || !iocbp || min_nr > *nr)
    return status(CU_FILE_INVALID_VALUE);
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  if (timeout) {
    dl.tv_sec += timeout->tv_sec;
    dl.tv_nsec += timeout->tv_nsec;
    if (dl.tv_nsec >= 1000000000) {
      dl.tv_sec++;
      dl.tv_nsec -= 1000000000;
    }
  }
  pthread_mutex_lock(&b->mu);
  for (;;) {
    unsigned ready = 0;
    for (unsigned i = 0; i < b->max; i++)
      ready += b->ops[i].state == B_DONE && !b->ops[i].reported;
    if (ready >= min_nr)
      break;
    if (timeout && pthread_cond_timedwait(&b->cv, &b->mu, &dl) == ETIMEDOUT)
      break;
    if (!timeout)
      pthread_cond_wait(&b->cv, &b->mu);
  }
  unsigned n = 0;
  for (unsigned i = 0; i < b->max && n < *nr; i++) {
    struct bop *o = &b->ops[i];
    if (o->state != B_DONE || o->reported)
      continue;
    iocbp[n].cookie = o->p.cookie;
    iocbp[n].status = o->st;
    iocbp[n].ret = o->ret;
    n++;
    *o = (struct bop){.state = B_FREE};
  }
  pthread_mutex_unlock(&b->mu);
  *nr = n;
  return status(0);
}

CUfileError_t cuFileBatchIOCancel(CUfileBatchHandle_t batch_idp) {
  int e = enter(FN_cuFileBatchIOCancel);
  if (e)
    return status(e);
  struct fbatch *b = batch_of(batch_idp);
  if (!b)
    return status(CU_FILE_INVALID_VALUE);
  pthread_mutex_lock(&b->mu);
  for (unsigned i = 0; i < b->max; i++)
    if (b->ops[i].state == B_PENDING) {
      b->ops[i].state = B_DONE;
      b->ops[i].st = CUFILE_CANCELED;
      b->ops[i].ret = 0;
    }
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
  return status(0);
}

void cuFileBatchIODestroy(CUfileBatchHandle_t batch_idp) {
  if (enter(FN_cuFileBatchIODestroy))
    return;
  pthread_mutex_lock(&g_lock);
  struct fbatch **pp = &batches;
  while (*pp && *pp != batch_idp)
    pp = &(*pp)->next;
  struct fbatch *b = *pp;
  if (b)
    *pp = b->next;
  pthread_mutex_unlock(&g_lock);
  if (!b)
    return;
  pthread_mutex_lock(&b->mu);
  for (unsigned i = 0; i < b->max; i++)
    if (b->ops[i].state == B_PENDING)
      b->ops[i].state = B_DONE;
  while (b->workers > 0)
    pthread_cond_wait(&b->cv, &b->mu);
  pthread_mutex_unlock(&b->mu);
  pthread_mutex_destroy(&b->mu);
  pthread_cond_destroy(&b->cv);
  free(b->ops);
  b->magic = 0;
  free(b);
}

/* ---- stream-ordered I/O ------------------------------------------------------------------ */

struct async_job {
  bool write;
  CUfileHandle_t fh;
  uintptr_t base;
  size_t *size_p;
  off_t *foff_p, *boff_p;
  ssize_t *bytes_p;
};

static void async_run(void *arg) {
  struct async_job *j = arg;
  ssize_t n = do_io(j->write, j->fh, j->base, *j->size_p, *j->foff_p, *j->boff_p, false);
  *j->bytes_p = n;
  free(j);
}

static CUfileError_t async_io(enum fn_id id, bool write, CUfileHandle_t fh, void *base,
                              size_t *size_p, off_t *foff_p, off_t *boff_p, ssize_t *bytes_p,
                              CUstream stream) {
  int e = enter(id);
  if (e)
    return status(e);
  if (!size_p || !foff_p || !boff_p || !bytes_p || !fh_valid(fh))
    return status(CU_FILE_INVALID_VALUE);
  pthread_once(&cuda_once, bind_cuda);
  struct async_job *j = malloc(sizeof *j);
  if (!j || !cuda_launch_host) {
    free(j);
    return status(CU_FILE_INTERNAL_ERROR);
  }
  *j = (struct async_job){write, fh, (uintptr_t)base, size_p, foff_p, boff_p, bytes_p};
  CUresult r = cuda_launch_host(stream, async_run, j);
  if (r != CUDA_SUCCESS) {
    free(j);
    CUfileError_t s = {CU_FILE_CUDA_DRIVER_ERROR, r};
    return s;
  }
  return status(0);
}

CUfileError_t cuFileReadAsync(CUfileHandle_t fh, void *bufPtr_base, size_t *size_p,
                              off_t *file_offset_p, off_t *bufPtr_offset_p, ssize_t *bytes_read_p,
                              CUstream stream) {
  return async_io(FN_cuFileReadAsync, false, fh, bufPtr_base, size_p, file_offset_p,
                  bufPtr_offset_p, bytes_read_p, stream);
}

CUfileError_t cuFileWriteAsync(CUfileHandle_t fh, void *bufPtr_base, size_t *size_p,
                               off_t *file_offset_p, off_t *bufPtr_offset_p,
                               ssize_t *bytes_written_p, CUstream stream) {
  return async_io(FN_cuFileWriteAsync, true, fh, bufPtr_base, size_p, file_offset_p,
                  bufPtr_offset_p, bytes_written_p, stream);
}

CUfileError_t cuFileStreamRegister(CUstream stream, unsigned flags) {
  int e = enter(FN_cuFileStreamRegister);
  if (e)
    return status(e);
  if (flags > 0xf)
    return status(CU_FILE_INVALID_VALUE);
  struct sreg *r = calloc(1, sizeof *r);
  if (!r)
    return status(CU_FILE_INTERNAL_ERROR);
  r->s = stream;
  pthread_mutex_lock(&g_lock);
  r->next = sregs;
  sregs = r;
  pthread_mutex_unlock(&g_lock);
  return status(0);
}

CUfileError_t cuFileStreamDeregister(CUstream stream) {
  int e = enter(FN_cuFileStreamDeregister);
  if (e)
    return status(e);
  int err = CU_FILE_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  for (struct sreg **pp = &sregs; *pp; pp = &(*pp)->next)
    if ((*pp)->s == stream) {
      struct sreg *r = *pp;
      *pp = r->next;
      free(r);
      err = 0;
      break;
    }
  pthread_mutex_unlock(&g_lock);
  return status(err);
}

#endif /* FAKE_CUFILE_MINIMAL */

/* ---- control ----------------------------------------------------------------------------- */

int fake_cufile_fail(const char *fn, long after, int err, long times) {
  pthread_mutex_lock(&g_lock);
  int rc = -1;
  if (n_rules < (int)(sizeof rules / sizeof rules[0])) {
    struct rule *r = &rules[n_rules++];
    snprintf(r->fn, sizeof r->fn, "%s", fn);
    r->after = after;
    r->times = times;
    r->err = err;
    rc = 0;
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

void fake_cufile_fail_clear(void) {
  pthread_mutex_lock(&g_lock);
  n_rules = 0;
  pthread_mutex_unlock(&g_lock);
}

long fake_cufile_calls(const char *fn) {
  for (int i = 0; i < FN_COUNT; i++)
    if (strcmp(fn_names[i], fn) == 0)
      return atomic_load(&fn_calls[i]);
  return -1;
}

long fake_cufile_live(const char *what) {
  long n = -1;
  pthread_mutex_lock(&g_lock);
  if (strcmp(what, "handles") == 0) {
    n = 0;
    for (struct fh *f = handles; f; f = f->next)
      n++;
  } else if (strcmp(what, "buffers") == 0) {
    n = 0;
    for (struct buf *b = bufs; b; b = b->next)
      n++;
  } else if (strcmp(what, "streams") == 0) {
    n = 0;
    for (struct sreg *r = sregs; r; r = r->next)
      n++;
  } else if (strcmp(what, "batches") == 0) {
    n = 0;
#ifndef FAKE_CUFILE_MINIMAL
    for (struct fbatch *b = batches; b; b = b->next)
      n++;
#endif
  } else if (strcmp(what, "opens") == 0) {
    n = n_opens;
  } else if (strcmp(what, "closes") == 0) {
    n = n_closes;
  } else if (strcmp(what, "after_close") == 0) {
    n = n_after_close;
  } else if (strcmp(what, "read_bytes") == 0) {
    n = atomic_load(&read_bytes);
  } else if (strcmp(what, "write_bytes") == 0) {
    n = atomic_load(&write_bytes);
  }
  pthread_mutex_unlock(&g_lock);
  return n;
}

int fake_cufile_set(const char *option, long value) {
  int rc = 0;
  pthread_mutex_lock(&g_lock);
  if (strcmp(option, "gds") == 0)
    opt_gds = value;
  else if (strcmp(option, "p2p") == 0)
    opt_p2p = value;
  else if (strcmp(option, "open_error") == 0)
    opt_open_error = value;
  else if (strcmp(option, "batch_delay_us") == 0)
    opt_batch_delay_us = value;
  else
    rc = -1;
  pthread_mutex_unlock(&g_lock);
  return rc;
}

/* ---- load and unload --------------------------------------------------------------------- */

__attribute__((constructor)) static void fake_load(void) {
  const char *e;
  if ((e = getenv("FAKE_CUFILE_OPEN_ERROR")) != NULL)
    opt_open_error = atol(e);
  if ((e = getenv("FAKE_CUFILE_GDS")) != NULL)
    opt_gds = atol(e);
  if ((e = getenv("FAKE_CUFILE_P2P")) != NULL)
    opt_p2p = atol(e);
  if ((e = getenv("FAKE_CUFILE_VERSION")) != NULL)
    version = atoi(e);
  if ((e = getenv("FAKE_CUFILE_FAIL")) != NULL) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", e);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
      char *f[4] = {NULL, NULL, NULL, NULL};
      char *s2 = NULL;
      int n = 0;
      for (char *p = strtok_r(item, ":", &s2); p && n < 4; p = strtok_r(NULL, ":", &s2))
        f[n++] = p;
      if (n >= 3)
        fake_cufile_fail(f[0], atol(f[1]), atoi(f[2]), n == 4 ? atol(f[3]) : 1);
    }
  }
}

__attribute__((destructor)) static void fake_unload(void) {
  const char *path = getenv("FAKE_CUFILE_REPORT");
  if (!path)
    return;
  FILE *fp = fopen(path, "w");
  if (!fp)
    return;
  fprintf(fp, "opens=%ld closes=%ld handles=%ld buffers=%ld batches=%ld after_close=%ld\n",
          fake_cufile_live("opens"), fake_cufile_live("closes"), fake_cufile_live("handles"),
          fake_cufile_live("buffers"), fake_cufile_live("batches"),
          fake_cufile_live("after_close"));
  fclose(fp);
}
