/* Stream-ordered reads and writes (kvik_file_read_async and friends).
 *
 * GDS files with device memory: cuFileReadAsync/cuFileWriteAsync, which order the operation on
 * the stream themselves, followed by a host function that turns a cuFile error in the result into
 * a kvik code and completes the future. (Not for cuFile's compatibility mode: there its stream API
 * synchronizes the caller's stream; measured on the GPU machine.)
 *
 * Everything else is ordered on the stream by kvik, without blocking the caller, without a CUDA
 * call from a host function, and without any GPU work by the pool workers. A device read of up
 * to n chunks (n from the size at the enqueue, the most the operation may read) is enqueued as
 *
 *   caller's stream:  ... work before ... | start | for each chunk c, slot s = c mod 8:
 *                     wait ready[s] | copy engine: host slot -> device slot | copy kernel:
 *                     device slot -> buffer | write freed[s] | ... | end | ... work after ...
 *   pool workers:     for each chunk: wait until the GPU freed the slot, pread the chunk into
 *                     the host slot, publish its length and ready[s]
 *
 * and a write mirrors it (kernel buffer -> device slot, copy engine -> host slot, the worker
 * pwrites it, and the stream waits for `done` before `end`). `start` is a host function: it reads
 * the arguments as the stream reaches the operation (kvikio's semantics), writes them into the
 * operation's control block (src/gpu/so_ctl.h, pinned and device-mapped) and queues the first
 * task on the pool; `end` writes the result, completes the future and recycles the memory. The
 * copy kernels (src/gpu/so_kernels.cu, loaded from PTX) read the size and offsets from the
 * control block, which is why a plain copy, whose arguments are fixed when it is enqueued, cannot
 * do their job; the copy engine moves whole slots, whose addresses are fixed. Host memory needs
 * no staging: the workers do the I/O and the stream only waits for `done`.
 *
 * Why no worker touches the GPU: CUDA documents that an order made with stream memory operations
 * is invisible to its scheduler, which may put other work behind a waiting stream in a shared
 * hardware queue; a worker copying on a stream of its own while the caller's stream waits for it
 * could then wait forever. So every wait here is for host work only, and a worker that must wait
 * for the GPU to empty a slot polls a little, then goes back to the pool's queue instead of
 * holding a worker. The fake libcuda models the shared queue ("one_queue"), and the tests run
 * with it. (The first design had the worker copy; it hung in a test on a real H200, but that hang
 * was the test's own copy into pageable memory, which waits for the held stream.)
 *
 * Everything CUDA is made on the enqueuing thread: control blocks and staging sets (pinned,
 * device-mapped), the module. They are reused and never freed (no CUDA call at exit). A
 * page-locked allocation may wait for work in flight on the device, so they are made rarely: 1024
 * control blocks at a time, and one staging set (8 slots of CHUNK bytes, 32 MiB pinned and 32 MiB
 * of device memory) per stream of a context that has device operations in flight at once with
 * the others (see stage_use).
 *
 * Where the GPU cannot wait on memory from a stream (a driver older than CUDA 12 without stream
 * memory operations), or the driver cannot load the kernels, kvik's stream ordering is not
 * available: KVIK_EUNSUPPORTED, saying why. */
#include "file.h"

#include "core/core.h"
#include "gpu/cuda.h"
#include "gpu/cufile.h"
#include "gpu/gpu.h"
#include "gpu/so_ctl.h"
#include "gpu/so_kernels_ptx.h"
#include "pool/pool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NSLOTS KVIK_SO_SLOTS
#define CHUNK ((size_t)KVIK_SO_CHUNK) /* bytes of data per staging slot */
#define STRIDE ((size_t)KVIK_SO_STRIDE)
#define STAGE_BYTES (NSLOTS * STRIDE)
#define CTL_BYTES 256
#define SLAB_BYTES (256 * 1024) /* 1024 control blocks */
#define BLOCK_THREADS 256
/* A flag value past every use count: a wait on the flag passes. */
#define FLAG_OPEN 0x40000000u
_Static_assert(sizeof(struct kvik_so_ctl) <= CTL_BYTES, "control block outgrew its slot");
_Static_assert(STRIDE % 16 == 0 && KVIK_SO_HDR % 16 == 0, "slots keep 16-byte alignment");
_Static_assert(sizeof(struct kvik_so_hdr) <= KVIK_SO_HDR, "slot header outgrew its room");

static void sleep_us(long us) {
  struct timespec ts = {0, us * 1000};
  nanosleep(&ts, NULL);
}

/* ---- pinned, device-mapped memory -------------------------------------------------------- */

/* bytes of pinned, device-mapped, portable host memory at *host, *dev as the GPU addresses it.
 * Pushes the primary context of device 0 where no context is current. */
static int mapped_alloc(const struct kvik__cuda_api *cu, size_t bytes, const char *what,
                        void **host, CUdeviceptr *dev) {
  CUcontext cur = NULL;
  bool pushed = false;
  int rc = 0;
  if (cu->cuCtxGetCurrent(&cur) != CUDA_SUCCESS || !cur) {
    CUcontext primary;
    if ((rc = kvik__cuda_primary_ctx(0, &primary)) != 0)
      return rc;
    CUresult r = cu->cuCtxPushCurrent_v2(primary);
    if (r != CUDA_SUCCESS)
      return kvik__cuda_fail(r, "cuCtxPushCurrent_v2 (for %s)", what);
    pushed = true;
  }
  void *p = NULL;
  CUresult r = cu->cuMemHostAlloc(&p, bytes, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP);
  CUdeviceptr d = (CUdeviceptr)(uintptr_t)p;
  if (r != CUDA_SUCCESS) {
    rc = kvik__cuda_fail(r, "cuMemHostAlloc (%zu bytes of %s)", bytes, what);
  } else if (cu->cuMemHostGetDevicePointer_v2 &&
             (r = cu->cuMemHostGetDevicePointer_v2(&d, p, 0)) != CUDA_SUCCESS) {
    cu->cuMemFreeHost(p);
    rc = kvik__cuda_fail(r, "cuMemHostGetDevicePointer_v2 (%s)", what);
  }
  if (pushed) {
    CUcontext dummy;
    cu->cuCtxPopCurrent_v2(&dummy);
  }
  if (rc)
    return rc;
  *host = p;
  *dev = d;
  return 0;
}

/* ---- control blocks ---------------------------------------------------------------------- */

struct ctlblk {
  struct kvik_so_ctl *host;
  CUdeviceptr dev;
  struct ctlblk *next; /* free list */
};
static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER; /* guards free_ctls */
static struct ctlblk *free_ctls;

/* A zeroed control block, from a new slab when none is free. Enqueuing thread only. */
static int ctl_get(const struct kvik__cuda_api *cu, struct ctlblk **out) {
  for (;;) {
    pthread_mutex_lock(&ctl_lock);
    struct ctlblk *b = free_ctls;
    if (b)
      free_ctls = b->next;
    pthread_mutex_unlock(&ctl_lock);
    if (b) {
      memset(b->host, 0, sizeof *b->host);
      *out = b;
      return 0;
    }
    enum { N = SLAB_BYTES / CTL_BYTES };
    struct ctlblk *recs = kvik__calloc(N, sizeof *recs);
    if (!recs)
      return kvik__err(-ENOMEM, "stream-ordered I/O: out of memory for control blocks");
    void *p = NULL;
    CUdeviceptr d = 0;
    int rc = mapped_alloc(cu, SLAB_BYTES, "stream-ordered I/O control blocks", &p, &d);
    if (rc) {
      kvik__free(recs);
      return rc;
    }
    pthread_mutex_lock(&ctl_lock);
    for (size_t i = 0; i < N; i++) {
      recs[i].host = (struct kvik_so_ctl *)(void *)((char *)p + i * CTL_BYTES);
      recs[i].dev = d + i * CTL_BYTES;
      recs[i].next = free_ctls;
      free_ctls = &recs[i];
    }
    pthread_mutex_unlock(&ctl_lock);
  }
}

static void ctl_put(struct ctlblk *b) {
  pthread_mutex_lock(&ctl_lock);
  b->next = free_ctls;
  free_ctls = b;
  pthread_mutex_unlock(&ctl_lock);
}

/* ---- staging sets ------------------------------------------------------------------------ */

/* A staging set: 8 slots of pinned host memory (the workers' side) and 8 of device memory (the
 * kernels' side), with the same layout; the copy engine moves a slot between the two on the
 * caller's stream, header included, so a kernel reads its arguments from device memory. (On the
 * GPU machine, kernels that read their arguments from pinned memory took 373 us per launch, one
 * that reads them from the device slot 4.4 us; bench/so_pipeline.cu.) */
struct stage {
  CUcontext ctx;       /* where the device slots are                     */
  char *host;          /* pinned                                         */
  CUdeviceptr dev;     /* device memory                                  */
  struct stage *next;  /* free list                                      */
};

/* A stream with device operations enqueued and not ended, and the staging set they share (an
 * operation runs only between its stream's earlier and later ones, so they never overlap). */
struct user {
  CUstream stream;
  CUcontext ctx; /* the stream's; the default stream is one per context */
  long ops;
  bool lost;     /* an enqueue failed halfway: the GPU may still touch the set */
  struct stage *stage;
  struct user *next;
};

static pthread_mutex_t stage_lock = PTHREAD_MUTEX_INITIALIZER; /* guards the three below */
static struct stage *free_stages;
static struct stage *lost_stages; /* kept, never reused */
static struct user *users;

/* A new staging set in ctx (current on the calling thread). */
static int stage_new(const struct kvik__cuda_api *cu, CUcontext ctx, struct stage **out) {
  struct stage *st = kvik__calloc(1, sizeof *st);
  if (!st)
    return kvik__err(-ENOMEM, "stream-ordered I/O: out of memory");
  void *p = NULL;
  CUresult r = cu->cuMemHostAlloc(&p, STAGE_BYTES, CU_MEMHOSTALLOC_PORTABLE);
  if (r != CUDA_SUCCESS) {
    kvik__free(st);
    return kvik__cuda_fail(r, "cuMemHostAlloc (%zu bytes of stream-ordered I/O staging)",
                           (size_t)STAGE_BYTES);
  }
  if ((r = cu->cuMemAlloc_v2(&st->dev, STAGE_BYTES)) != CUDA_SUCCESS) {
    cu->cuMemFreeHost(p);
    kvik__free(st);
    return kvik__cuda_fail(r, "cuMemAlloc_v2 (%zu bytes of stream-ordered I/O staging)",
                           (size_t)STAGE_BYTES);
  }
  st->ctx = ctx;
  st->host = p;
  *out = st;
  return 0;
}

/* Counts a device operation on (stream, ctx) and gives it the stream's staging set: the set the
 * stream holds while it has operations in flight, else a free one of ctx, else a new one. So a
 * stream never waits for another stream to give a set back (which the GPU might never let happen:
 * the other stream's work can sit behind this one's wait in a shared hardware queue). Sets are
 * never freed; a page-locked allocation may wait for work in flight on the device, so one is
 * made only when more streams of a context are in use at once than ever before. *out gets the
 * record to give to stage_unuse. Enqueuing thread only, with ctx current. */
static int stage_use(const struct kvik__cuda_api *cu, CUstream stream, CUcontext ctx,
                     struct user **out) {
  struct user *fresh = kvik__calloc(1, sizeof *fresh);
  if (!fresh)
    return kvik__err(-ENOMEM, "stream-ordered I/O: out of memory");
  pthread_mutex_lock(&stage_lock);
  struct user *u = users;
  while (u && (u->stream != stream || u->ctx != ctx))
    u = u->next;
  if (u) {
    u->ops++;
    pthread_mutex_unlock(&stage_lock);
    kvik__free(fresh);
    *out = u;
    return 0;
  }
  struct stage **pp = &free_stages;
  while (*pp && (*pp)->ctx != ctx)
    pp = &(*pp)->next;
  struct stage *st = *pp;
  if (st)
    *pp = st->next;
  pthread_mutex_unlock(&stage_lock);
  int rc = st ? 0 : stage_new(cu, ctx, &st);
  if (rc) {
    kvik__free(fresh);
    return rc;
  }
  fresh->stream = stream;
  fresh->ctx = ctx;
  fresh->ops = 1;
  fresh->stage = st;
  pthread_mutex_lock(&stage_lock);
  fresh->next = users;
  users = fresh;
  pthread_mutex_unlock(&stage_lock);
  *out = fresh;
  return 0;
}

/* Ends a device operation on its stream's record; the last one gives the set back (a lost one
 * is never reused). */
static void stage_unuse(struct user *u, bool lost) {
  pthread_mutex_lock(&stage_lock);
  u->lost = u->lost || lost;
  if (--u->ops == 0) {
    struct user **pp = &users;
    while (*pp != u)
      pp = &(*pp)->next;
    *pp = u->next;
    struct stage **to = u->lost ? &lost_stages : &free_stages;
    u->stage->next = *to;
    *to = u->stage;
  } else {
    u = NULL;
  }
  pthread_mutex_unlock(&stage_lock);
  kvik__free(u);
}

/* ---- the copy kernels -------------------------------------------------------------------- */

struct module {
  CUcontext ctx;
  CUfunction read, write;
  unsigned grid;
  struct module *next;
};
static pthread_mutex_t module_lock = PTHREAD_MUTEX_INITIALIZER; /* guards modules, and loads */
static struct module *modules;

/* The kernels loaded in ctx (the current context). Enqueuing thread only. */
static int module_get(const struct kvik__cuda_api *cu, CUcontext ctx, const struct module **out) {
  pthread_mutex_lock(&module_lock);
  struct module *m = modules;
  while (m && m->ctx != ctx)
    m = m->next;
  int rc = 0;
  if (!m) {
    CUmodule mod;
    CUdevice dev;
    int sms = 0;
    CUresult r;
    if (!(m = kvik__calloc(1, sizeof *m)))
      rc = kvik__err(-ENOMEM, "stream-ordered I/O: out of memory");
    else if ((r = cu->cuModuleLoadData(&mod, kvik__so_ptx)) != CUDA_SUCCESS)
      rc = kvik__cuda_fail(r, "cuModuleLoadData (kvik's copy kernels, PTX ISA 7.0 for sm_75)");
    else if ((r = cu->cuModuleGetFunction(&m->read, mod, "kvik_so_read")) != CUDA_SUCCESS ||
             (r = cu->cuModuleGetFunction(&m->write, mod, "kvik_so_write")) != CUDA_SUCCESS)
      rc = kvik__cuda_fail(r, "cuModuleGetFunction (kvik's copy kernels)");
    if (rc == 0) {
      if (cu->cuCtxGetDevice(&dev) != CUDA_SUCCESS ||
          cu->cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev) !=
              CUDA_SUCCESS ||
          sms <= 0)
        sms = 64;
      m->ctx = ctx;
      m->grid = (unsigned)sms; /* device-to-device copies of a slot: one block per SM */
      m->next = modules;
      modules = m; /* the module stays loaded for the life of the process */
    } else {
      kvik__free(m);
      m = NULL;
    }
  }
  pthread_mutex_unlock(&module_lock);
  *out = m;
  return rc;
}

/* ---- can the GPU wait on memory? ---------------------------------------------------------- */

static pthread_once_t memops_once = PTHREAD_ONCE_INIT;
static bool memops_ok;
static char memops_why[224];

static void memops_probe(void) {
  const struct kvik__cuda_api *cu;
  if (kvik__cuda_get(&cu) != 0)
    return;
  const char *missing = !cu->cuStreamWaitValue32_v2    ? "cuStreamWaitValue32_v2"
                        : !cu->cuStreamWriteValue32_v2 ? "cuStreamWriteValue32_v2"
                        : !cu->cuStreamGetCtx          ? "cuStreamGetCtx"
                        : !cu->cuModuleLoadData        ? "cuModuleLoadData"
                        : !cu->cuModuleGetFunction     ? "cuModuleGetFunction"
                        : !cu->cuLaunchKernel          ? "cuLaunchKernel"
                                                       : NULL;
  if (missing) {
    snprintf(memops_why, sizeof memops_why,
             "kvik's stream ordering needs %s, which this libcuda.so.1 lacks", missing);
    return;
  }
  if (cu->driver_version >= 12000) { /* 32-bit stream memory operations are always on */
    memops_ok = true;
    return;
  }
  for (int d = 0; d < cu->device_count; d++) {
    CUdevice dev;
    int v = 0;
    if (cu->cuDeviceGet(&dev, d) != CUDA_SUCCESS ||
        cu->cuDeviceGetAttribute(&v, CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_MEM_OPS_V1, dev) !=
            CUDA_SUCCESS ||
        v != 1) {
      snprintf(memops_why, sizeof memops_why,
               "kvik's stream ordering needs the GPU to wait on memory from a stream, and device "
               "%d does not support stream memory operations (driver %d)",
               d, cu->driver_version);
      return;
    }
  }
  memops_ok = true;
}

/* Why kvik's stream ordering is unavailable (after memops_probe found it so). */
static const char *memops_msg(void) {
  return memops_why[0] ? memops_why
                       : "kvik's stream ordering needs the CUDA driver, which could not be used";
}

/* ---- operations --------------------------------------------------------------------------- */

/* Who takes an enqueued operation: `start` (to run it) or the enqueuing thread (to cancel it,
 * when the rest could not be enqueued). Exactly one wins. */
enum { OWN_NONE, OWN_RUN, OWN_CANCEL };

struct sop {
  _Atomic int refs;
  kvik_file *f; /* holds a reference (kvik__file_get), dropped when op is freed */
  bool write;
  uintptr_t base;
  /* The arguments, read when the stream reaches the operation. */
  size_t *size_p;
  int64_t *foff_p, *boff_p;
  ssize_t *bytes_p;
  /* Owned copies for the future forms (the pointers above then point here). */
  size_t size;
  int64_t foff, boff;
  ssize_t bytes;
  kvik_future *fut; /* NULL for the pointer forms */
  const char *fn;
  kvik_pool *pool;
  /* kvik's path, set at the enqueue */
  struct ctlblk *ctl;
  bool device;        /* through staging and the copy kernels; else host memory, directly */
  CUcontext sctx;     /* device operations: the stream's context */
  uintptr_t alloc_end; /* device and managed memory: end of the allocation (0: unknown) */
  size_t max;         /* *size_p at the enqueue: what a device operation is prepared for */
  uint64_t nmax;      /* chunks on the stream (device) */
  size_t chunk;       /* CHUNK (device) or the task size (host memory) */
  /* set by start, before any task runs */
  size_t run_size;
  int64_t run_foff, run_boff;
  uintptr_t run_ptr;
  uint64_t nact; /* chunks with bytes to move */
  int ntasks;
  struct kvik__fds fds;
  struct stage *stage; /* device operations: the stream's staging set */
  struct user *user;   /* device operations: the stream's record (stage_use) */
  _Atomic uint64_t next, finished;
  _Atomic int64_t total;
  _Atomic int err; /* first error; errmsg is written once, by whoever set it */
  char errmsg[KVIK_ERRMSG_MAX];
  _Atomic int live; /* tasks queued or running */
  atomic_bool started, abandoned;
  _Atomic int owner;
  unsigned long id; /* for the debug log */
};

static _Atomic unsigned long op_ids;

static struct sop *sop_new(void) {
  struct sop *op = kvik__calloc(1, sizeof *op);
  if (!op)
    return NULL;
  atomic_store(&op->refs, 1);
  op->id = atomic_fetch_add(&op_ids, 1) + 1;
  return op;
}

static void sop_unref(struct sop *op) {
  if (atomic_fetch_sub_explicit(&op->refs, 1, memory_order_acq_rel) != 1)
    return;
  /* The last reference may go on CUDA's callback thread (start, end, gds_done). */
  kvik__file_put_later(op->f);
  kvik__free(op);
}

static void fail_op(struct sop *op, int code, const char *msg) {
  int expected = 0;
  if (atomic_compare_exchange_strong(&op->err, &expected, code))
    snprintf(op->errmsg, sizeof op->errmsg, "%s", msg);
}

static void flag_set(kvik_so_u32 *flag, uint32_t v) {
  __atomic_store_n(flag, v, __ATOMIC_RELEASE);
}

/* Waits a little for *flag >= v (a flag the GPU sets). False if it is not there yet: the task
 * then goes back to the pool's queue rather than hold a worker while the GPU is busy. */
static bool flag_reached(struct sop *op, const kvik_so_u32 *flag, uint32_t v) {
  for (int i = 0; i < 200; i++) {
    if ((int32_t)(__atomic_load_n(flag, __ATOMIC_ACQUIRE) - v) >= 0 ||
        atomic_load(&op->abandoned))
      return true;
    if (i < 50)
      sched_yield();
    else
      sleep_us(5);
  }
  return false;
}

/* The last use of slot s among the nmax chunks of a device operation. */
static uint32_t final_use(const struct sop *op, unsigned s) {
  return (uint32_t)((op->nmax - 1 - s) / NSLOTS);
}

/* Every chunk has moved (or failed): lets the stream pass `done`. */
static void io_done(struct sop *op) {
  kvik__log(KVIK_LOG_DEBUG, "stream-ordered op %lu: file I/O done", op->id);
  if (op->write || !op->device)
    flag_set(&op->ctl->host->done, 1);
}

/* Opens the flags no chunk with bytes will set: slots whose every chunk lies past the size (and,
 * for writes, the first use of the others), then `done` if nothing is to move. */
static void open_flags(struct sop *op) {
  struct kvik_so_ctl *c = op->ctl->host;
  /* A write's kernels take the size and offset from the slots' headers (a read's workers write
   * them with each chunk). */
  if (op->device && op->write && op->nact)
    for (unsigned s = 0; s < NSLOTS && s < op->nmax; s++)
      *(struct kvik_so_hdr *)(void *)(op->stage->host + s * STRIDE) =
          (struct kvik_so_hdr){.op = op->id, .size = (int64_t)op->run_size, .boff = op->run_boff};
  if (op->device)
    for (unsigned s = 0; s < NSLOTS && s < op->nmax; s++) {
      if (s < op->nact) {
        if (op->write)
          flag_set(&c->freed[s], 1);
      } else {
        flag_set(op->write ? &c->freed[s] : &c->ready[s], final_use(op, s) + 1);
      }
    }
  if (op->nact == 0)
    io_done(op);
}

/* Moves chunk c. False if the task must wait for the GPU (the chunk is still the task's). */
static bool run_chunk(struct sop *op, uint64_t c) {
  size_t at = (size_t)c * op->chunk;
  size_t len = KVIK_MIN(op->chunk, op->run_size - at);
  int64_t foff = op->run_foff + (int64_t)at;
  bool skip = atomic_load(&op->err) != 0 || atomic_load(&op->abandoned);
  ssize_t n = 0;
  if (!op->device) {
    if (!skip)
      n = op->write ? kvik__posix_write(&op->fds, (const void *)(op->run_ptr + at), len, foff)
                    : kvik__posix_read(&op->fds, (void *)(op->run_ptr + at), len, foff);
  } else {
    struct kvik_so_ctl *ctl = op->ctl->host;
    unsigned s = (unsigned)(c % NSLOTS);
    uint32_t u = (uint32_t)(c / NSLOTS);
    bool last = c + NSLOTS >= op->nact;
    /* The data sits in the slot at the buffer address's offset modulo 16, as the kernels expect. */
    char *hslot = op->stage->host + s * STRIDE;
    char *slot = hslot + KVIK_SO_HDR + ((op->run_ptr + at) & 15);
    if (!op->write) {
      if (u > 0 && !flag_reached(op, &ctl->freed[s], u))
        return false;
      if (!skip)
        n = kvik__posix_read(&op->fds, slot, len, foff);
      struct kvik_so_hdr *h = (struct kvik_so_hdr *)(void *)hslot;
      *h = (struct kvik_so_hdr){.op = op->id,
                                .len = n > 0 ? n : 0,
                                .size = (int64_t)op->run_size,
                                .boff = op->run_boff};
      if (n > 0)
        atomic_fetch_add(&op->total, n);
      else if (n < 0)
        fail_op(op, (int)n, kvik_last_error());
      flag_set(&ctl->ready[s], last ? final_use(op, s) + 1 : u + 1);
      return true;
    }
    if (!flag_reached(op, &ctl->ready[s], u + 1))
      return false;
    if (!skip)
      n = kvik__posix_write(&op->fds, slot, len, foff);
    uint32_t next = u + 2;
    if (last && final_use(op, s) + 1 > next)
      next = final_use(op, s) + 1;
    if (n > 0)
      atomic_fetch_add(&op->total, n);
    else if (n < 0)
      fail_op(op, (int)n, kvik_last_error());
    flag_set(&ctl->freed[s], next);
    return true;
  }
  if (n > 0)
    atomic_fetch_add(&op->total, n);
  else if (n < 0)
    fail_op(op, (int)n, kvik_last_error());
  return true;
}

struct task {
  struct sop *op;
  uint64_t c;
  bool have; /* c is claimed and not yet moved */
  bool lead; /* the first task: opens flags, starts the others */
  bool waited; /* logged that it waits */
};

static void task_main(void *arg);

/* Starts one more task; false if the pool refused it. */
static bool task_spawn(struct sop *op, bool lead) {
  struct task *t = kvik__calloc(1, sizeof *t);
  if (!t)
    return false;
  t->op = op;
  t->lead = lead;
  atomic_fetch_add(&op->refs, 1);
  atomic_fetch_add(&op->live, 1);
  if (kvik__pool_submit(op->pool, task_main, t) == 0)
    return true;
  atomic_fetch_sub(&op->live, 1);
  sop_unref(op);
  kvik__free(t);
  return false;
}

/* One run of a task. False to be queued again (it waits for the GPU to empty or fill a slot). */
static bool task_step(struct task *t) {
  struct sop *op = t->op;
  if (t->lead) {
    t->lead = false;
    open_flags(op);
    for (int i = 1; i < op->ntasks; i++)
      if (!task_spawn(op, false))
        break; /* fewer tasks; this one does the rest */
  }
  for (;;) {
    if (!t->have) {
      t->c = atomic_fetch_add(&op->next, 1);
      if (t->c >= op->nact)
        return true;
      t->have = true;
    }
    if (!run_chunk(op, t->c)) {
      if (!t->waited)
        kvik__log(KVIK_LOG_DEBUG, "stream-ordered op %lu: chunk %llu waits for the GPU", op->id,
                  (unsigned long long)t->c);
      t->waited = true;
      return false;
    }
    t->waited = false;
    t->have = false;
    if (atomic_fetch_add(&op->finished, 1) + 1 == op->nact)
      io_done(op);
  }
}

static void task_main(void *arg) {
  struct task *t = arg;
  struct sop *op = t->op;
  while (!task_step(t)) {
    if (kvik__pool_submit(op->pool, task_main, t) == 0)
      return;
    sleep_us(50); /* the pool cannot take it back: keep the worker */
  }
  kvik__free(t);
  atomic_fetch_sub(&op->live, 1);
  sop_unref(op);
}

/* On CUDA's callback thread, when the stream reaches the operation: reads and checks the
 * arguments, fills the control block, queues the lead task. Never waits; no CUDA call. */
static void start(void *arg) {
  struct sop *op = arg;
  int expected = OWN_NONE;
  if (!atomic_compare_exchange_strong(&op->owner, &expected, OWN_RUN)) {
    sop_unref(op); /* canceled */
    return;
  }
  size_t size = *op->size_p;
  int64_t foff = *op->foff_p, boff = *op->boff_p;
  const char *path = kvik__file_path(op->f);
  int rc = 0;
  uintptr_t ptr = op->base + (uintptr_t)boff;
  if (boff < 0 || (uint64_t)boff > UINTPTR_MAX - op->base)
    rc = kvik__err(KVIK_EINVAL, "%s %s: buffer offset %lld is out of range", op->fn, path,
                   (long long)boff);
  else if ((rc = kvik__file_check_io(op->f, (const void *)ptr, size, foff, op->write, op->fn)) !=
           0)
    ;
  else if (op->device && size > op->max)
    rc = kvik__err(KVIK_EINVAL,
                   "%s %s: size %zu is larger than the %zu it was when the operation was enqueued "
                   "(the most it can move)",
                   op->fn, path, size, op->max);
  else if (op->device && op->alloc_end && size &&
           (ptr > op->alloc_end || size > op->alloc_end - ptr))
    rc = kvik__err(KVIK_EINVAL,
                   "%s %s: [%#lx, +%zu) at buffer offset %lld leaves the allocation, which ends "
                   "at %#lx",
                   op->fn, path, (unsigned long)ptr, size, (long long)boff,
                   (unsigned long)op->alloc_end);
  if (rc) {
    fail_op(op, rc, kvik_last_error());
    size = 0;
    boff = 0;
  }
  op->run_size = size;
  op->run_foff = foff;
  op->run_boff = boff;
  op->run_ptr = op->base + (uintptr_t)boff;
  op->nact = size ? (size - 1) / op->chunk + 1 : 0;
  kvik__log(KVIK_LOG_DEBUG,
            "stream-ordered op %lu starts: %s %zu bytes at file offset %lld, buffer offset %lld%s",
            op->id, op->write ? "write" : "read", size, (long long)foff, (long long)boff,
            rc ? " (failed its checks)" : "");
  int threads = kvik_pool_nthreads(op->pool);
  uint64_t cap = op->device ? NSLOTS : 64;
  op->ntasks = (int)KVIK_MIN(KVIK_MIN((uint64_t)(threads > 0 ? threads : 1), cap),
                             op->nact ? op->nact : 1);
  if (op->nact == 0) {
    open_flags(op);
  } else if (!task_spawn(op, true)) {
    fail_op(op, -ENOMEM, "kvik's stream-ordered I/O: the pool could not take the operation");
    op->nact = 0;
    open_flags(op);
  }
  atomic_store(&op->started, true);
  sop_unref(op);
}

/* On CUDA's callback thread after the operation's last stream work: the result, the future, and
 * the memory back for reuse. */
static void end(void *arg) {
  struct sop *op = arg;
  int err = atomic_load(&op->err);
  ssize_t n = err ? err : (ssize_t)atomic_load(&op->total);
  kvik__log(KVIK_LOG_DEBUG, "stream-ordered op %lu ends: %zd", op->id, n);
  *op->bytes_p = n;
  if (op->fut)
    kvik__future_complete(op->fut, n, err ? op->errmsg : NULL);
  if (op->user)
    stage_unuse(op->user, false);
  ctl_put(op->ctl);
  sop_unref(op);
}

/* The rest of an operation could not be enqueued after `start` was: what is on the stream must
 * still pass, and nothing may reuse memory the GPU may still read. */
static void abandon(struct sop *op, bool *runs) {
  struct kvik_so_ctl *c = op->ctl->host;
  atomic_store(&op->abandoned, true);
  int expected = OWN_NONE;
  bool canceled = atomic_compare_exchange_strong(&op->owner, &expected, OWN_CANCEL);
  if (!canceled) { /* start ran or is running: its tasks stop early; wait for them */
    while (!atomic_load(&op->started) || atomic_load(&op->live) > 0)
      sleep_us(100);
  }
  /* Kernels still to run copy what the workers put in the slots, or nothing. */
  for (unsigned s = 0; s < NSLOTS; s++) {
    flag_set(&c->ready[s], FLAG_OPEN);
    flag_set(&c->freed[s], FLAG_OPEN);
  }
  flag_set(&c->done, FLAG_OPEN);
  if (op->user)
    stage_unuse(op->user, true); /* the control block is lost too: never put back */
  *runs = false;
}

/* Makes the stream's context current (pushed only if it is not already; *pushed says so, for
 * pop_ctx). who names the call in errors. */
static int push_stream_ctx(const struct kvik__cuda_api *cu, CUstream stream, const char *who,
                           CUcontext *sctx, bool *pushed) {
  CUcontext cur = NULL;
  *pushed = false;
  CUresult r = cu->cuStreamGetCtx(stream, sctx);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "%s: cuStreamGetCtx (the stream's context)", who);
  if (cu->cuCtxGetCurrent(&cur) == CUDA_SUCCESS && cur == *sctx)
    return 0;
  if ((r = cu->cuCtxPushCurrent_v2(*sctx)) != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "%s: cuCtxPushCurrent_v2 (the stream's context)", who);
  *pushed = true;
  return 0;
}

static void pop_ctx(const struct kvik__cuda_api *cu, bool pushed) {
  CUcontext dummy;
  if (pushed)
    cu->cuCtxPopCurrent_v2(&dummy);
}

/* Stream ops of a device operation, chunk by chunk (see the top of this file). */
static CUresult enqueue_chunks(const struct kvik__cuda_api *cu, struct sop *op,
                               const struct module *m, CUstream stream, const char **what) {
  CUdeviceptr ctl = op->ctl->dev;
  CUfunction fnk = op->write ? m->write : m->read;
  for (uint64_t c = 0; c < op->nmax; c++) {
    unsigned s = (unsigned)(c % NSLOTS);
    uint32_t u = (uint32_t)(c / NSLOTS);
    CUdeviceptr ready = ctl + offsetof(struct kvik_so_ctl, ready) + s * sizeof(kvik_so_u32);
    CUdeviceptr freed = ctl + offsetof(struct kvik_so_ctl, freed) + s * sizeof(kvik_so_u32);
    CUdeviceptr wait_at = op->write ? freed : ready, set_at = op->write ? ready : freed;
    CUdeviceptr stage = op->stage->dev, base = (CUdeviceptr)op->base;
    long long index = (long long)c;
    unsigned long long id = op->id;
    void *params[] = {&stage, &base, &s, &index, &id};
    /* The slot: its header, then the chunk (at most what is left of the size at the enqueue) at
     * an offset below 16. */
    size_t at = s * STRIDE;
    size_t data = (size_t)KVIK_MIN((uint64_t)CHUNK, op->max - c * CHUNK) + 16;
    CUresult r;
    if ((r = cu->cuStreamWaitValue32_v2(stream, wait_at, u + 1, CU_STREAM_WAIT_VALUE_GEQ)) !=
        CUDA_SUCCESS) {
      *what = "cuStreamWaitValue32_v2";
      return r;
    }
    size_t in = op->write ? KVIK_SO_HDR : KVIK_SO_HDR + data;
    if ((r = cu->cuMemcpyHtoDAsync_v2(stage + at, op->stage->host + at, in, stream)) !=
        CUDA_SUCCESS) {
      *what = "cuMemcpyHtoDAsync_v2 (a staging slot)";
      return r;
    }
    if ((r = cu->cuLaunchKernel(fnk, m->grid, 1, 1, BLOCK_THREADS, 1, 1, 0, stream, params,
                                NULL)) != CUDA_SUCCESS) {
      *what = "cuLaunchKernel (kvik's copy kernel)";
      return r;
    }
    if (op->write && (r = cu->cuMemcpyDtoHAsync_v2(op->stage->host + at + KVIK_SO_HDR,
                                                   stage + at + KVIK_SO_HDR, data, stream)) !=
                         CUDA_SUCCESS) {
      *what = "cuMemcpyDtoHAsync_v2 (a staging slot)";
      return r;
    }
    if ((r = cu->cuStreamWriteValue32_v2(stream, set_at, u + 1, CU_STREAM_WRITE_VALUE_DEFAULT)) !=
        CUDA_SUCCESS) {
      *what = "cuStreamWriteValue32_v2";
      return r;
    }
  }
  return CUDA_SUCCESS;
}

/* Device and managed memory: the stream's context must be able to run the kernels on the
 * buffer. Sets op->device, op->alloc_end, *m. On success the stream's context is current
 * (*pushed: pushed, for pop_ctx), for the stream work to come. */
static int prepare_device(const struct kvik__cuda_api *cu, struct sop *op, CUstream stream,
                          const struct kvik__mem_info *mi, const struct module **m,
                          bool *pushed) {
  const char *path = kvik__file_path(op->f);
  char who[256];
  snprintf(who, sizeof who, "%s %s", op->fn, path);
  CUcontext sctx = NULL, bctx = NULL;
  int rc = kvik__mem_ctx(mi, &bctx);
  if (rc || (rc = push_stream_ctx(cu, stream, who, &sctx, pushed)) != 0)
    return rc;
  CUdevice sdev = -1;
  CUresult r;
  if ((r = cu->cuCtxGetDevice(&sdev)) != CUDA_SUCCESS)
    rc = kvik__cuda_fail(r, "%s: cuCtxGetDevice (the stream's context)", who);
  else if ((mi->device >= 0 && sdev != mi->device) ||
           (mi->kind == KVIK_MEM_DEVICE && !mi->pool && mi->ctx && mi->ctx != sctx))
    rc = kvik__err(KVIK_EINVAL,
                   "%s: the buffer %p is memory of device %d%s, the stream belongs to a "
                   "context of device %d: the copy kernels run on the stream",
                   who, (void *)op->base, mi->device,
                   sdev == mi->device ? " in another context" : "", (int)sdev);
  else if ((rc = module_get(cu, sctx, m)) == 0)
    rc = stage_use(cu, stream, sctx, &op->user);
  if (rc) {
    pop_ctx(cu, *pushed);
    *pushed = false;
    return rc;
  }
  op->device = true;
  op->sctx = sctx;
  op->stage = op->user->stage;
  if (mi->range_known)
    op->alloc_end = (uintptr_t)(mi->base + mi->alloc_size);
  return 0;
}

/* Undoes an enqueue that put nothing on the stream. Returns rc. */
static int enqueue_undo(const struct kvik__cuda_api *cu, struct sop *op, bool pushed, int rc) {
  pop_ctx(cu, pushed);
  if (op->user)
    stage_unuse(op->user, false);
  if (op->ctl)
    ctl_put(op->ctl);
  sop_unref(op);
  return rc;
}

/* kvik's own stream ordering (see the top of this file). Takes over op. *runs is set when the
 * call fails but the operation will still run (and complete its future). */
static int enqueue_kvik(const struct kvik__cuda_api *cu, struct sop *op, CUstream stream,
                        bool *runs) {
  const char *path = kvik__file_path(op->f);
  const char *fn = op->fn;
  /* The messages are made before sop_unref, which may drop the last reference on the file. */
  if (kvik__config_ready() == 0 && !kvik__cfg_u64(KVIK_CFG_STREAM_FALLBACK)) {
    int rc = kvik__err(KVIK_EUNSUPPORTED,
                       "%s %s: GDS does not serve this file, and kvik's own stream ordering is "
                       "turned off (KVIK_STREAM_FALLBACK=0)",
                       fn, path);
    sop_unref(op);
    return rc;
  }
  pthread_once(&memops_once, memops_probe);
  if (!memops_ok) {
    int rc = kvik__err(KVIK_EUNSUPPORTED, "%s %s: %s", fn, path, memops_msg());
    sop_unref(op);
    return rc;
  }
  int rc = kvik__file_pool(op->f, &op->pool);
  struct kvik__mem_info mi;
  const struct module *m = NULL;
  bool pushed = false; /* the stream's context, for the copies and launches (device memory) */
  if (rc == 0 && (rc = kvik__mem_query((const void *)op->base, 1, &mi)) == 0 &&
      kvik__mem_is_device(mi.kind))
    rc = prepare_device(cu, op, stream, &mi, &m, &pushed);
  if (rc == 0)
    rc = ctl_get(cu, &op->ctl);
  if (rc)
    return enqueue_undo(cu, op, pushed, rc);
  op->fds = *kvik__file_fds(op->f);
  /* Buffered I/O: opportunistic O_DIRECT may take a bounce buffer, and a page-locked allocation
   * is an implicit synchronization point of the device, which a worker must never meet while a
   * stream waits for it. */
  op->fds.fd_direct = -1;
  op->fds.direct_read = op->fds.direct_write = false;
  op->max = *op->size_p;
  op->chunk = op->device ? CHUNK : (size_t)KVIK_MAX(kvik__cfg_u64(KVIK_CFG_TASK_SIZE), 1);
  op->nmax = op->device && op->max ? (op->max - 1) / CHUNK + 1 : 0;
  kvik__log(KVIK_LOG_DEBUG,
            "stream-ordered op %lu enqueued on stream %p: %s of up to %zu bytes, %s, %llu chunks",
            op->id, (void *)stream, op->write ? "write" : "read", op->max,
            op->device ? "device memory" : "host memory", (unsigned long long)op->nmax);
  atomic_fetch_add(&op->refs, 2); /* start's and end's */
  CUresult r = cu->cuLaunchHostFunc(stream, start, op);
  if (r != CUDA_SUCCESS) {
    atomic_fetch_sub(&op->refs, 2);
    return enqueue_undo(cu, op, pushed,
                        kvik__cuda_fail(r, "%s %s: cuLaunchHostFunc", fn, path));
  }
  const char *what = NULL;
  if (op->device)
    r = enqueue_chunks(cu, op, m, stream, &what);
  if (r == CUDA_SUCCESS && (op->write || !op->device)) {
    what = "cuStreamWaitValue32_v2";
    r = cu->cuStreamWaitValue32_v2(stream, op->ctl->dev + offsetof(struct kvik_so_ctl, done), 1,
                                   CU_STREAM_WAIT_VALUE_GEQ);
  }
  if (r == CUDA_SUCCESS) {
    what = "cuLaunchHostFunc";
    r = cu->cuLaunchHostFunc(stream, end, op);
  }
  pop_ctx(cu, pushed);
  if (r != CUDA_SUCCESS) {
    rc = kvik__cuda_fail(r, "%s %s: %s", fn, path, what);
    char msg[KVIK_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", kvik_last_error());
    abandon(op, runs);
    *op->bytes_p = rc;
    sop_unref(op); /* end's: it was never enqueued */
    sop_unref(op);
    return kvik__err_set(rc, msg);
  }
  sop_unref(op);
  return 0;
}

/* ---- preparing a stream ------------------------------------------------------------------ */

int kvik_stream_prepare(struct CUstream_st *stream) {
  const struct kvik__cuda_api *cu;
  int rc = kvik__config_ready();
  if (rc == 0)
    rc = kvik__cuda_get(&cu);
  if (rc)
    return rc;
  pthread_once(&memops_once, memops_probe);
  if (!memops_ok)
    return kvik__err(KVIK_EUNSUPPORTED, "kvik_stream_prepare: %s", memops_msg());
  CUcontext sctx = NULL;
  bool push;
  if ((rc = push_stream_ctx(cu, stream, "kvik_stream_prepare", &sctx, &push)) != 0)
    return rc;
  const struct module *m;
  struct ctlblk *b = NULL;
  if ((rc = module_get(cu, sctx, &m)) == 0 && (rc = ctl_get(cu, &b)) == 0)
    ctl_put(b);
  /* A free staging set in the context, unless the stream holds one already. */
  pthread_mutex_lock(&stage_lock);
  bool have = false;
  for (struct user *u = users; u && !have; u = u->next)
    have = u->stream == stream && u->ctx == sctx;
  for (struct stage *st = free_stages; st && !have; st = st->next)
    have = st->ctx == sctx;
  pthread_mutex_unlock(&stage_lock);
  struct stage *st = NULL;
  if (rc == 0 && !have && (rc = stage_new(cu, sctx, &st)) == 0) {
    pthread_mutex_lock(&stage_lock);
    st->next = free_stages;
    free_stages = st;
    pthread_mutex_unlock(&stage_lock);
  }
  pop_ctx(cu, push);
  return rc;
}

/* ---- the cuFile path ---------------------------------------------------------------------- */

/* After cuFile's operation on the stream: its result as a kvik code, and the future. */
static void gds_done(void *arg) {
  struct sop *op = arg;
  ssize_t n = *op->bytes_p;
  const char *fn = op->write ? "cuFileWriteAsync" : "cuFileReadAsync";
  char msg[256] = "";
  if (n < 0) {
    int code = n == -1 ? -EIO : -n >= CU_FILE_DRIVER_NOT_INITIALIZED ? KVIK_ECUFILE : (int)n;
    if (code == KVIK_ECUFILE)
      snprintf(msg, sizeof msg, "%s %s: %s (%d)", fn, kvik__file_path(op->f),
               kvik__cufile_errname((int)-n), (int)-n);
    else
      snprintf(msg, sizeof msg, "%s %s: %s", fn, kvik__file_path(op->f), kvik__errno_text(-code));
    n = code;
    *op->bytes_p = n;
  }
  if (op->fut)
    kvik__future_complete(op->fut, n, msg);
  kvik__cufile_release();
  sop_unref(op);
}

/* Returns 1 if cuFile took the operation, 0 to use kvik's path, or a negative code. Takes over
 * op only when it returns 1 or a negative code. */
static int enqueue_cufile(const struct kvik__cuda_api *cu, struct sop *op, CUstream stream,
                          const char *fn) {
  /* GDS only: cuFile's stream API in its compatibility mode synchronizes the caller's stream
   * (measured on the GPU machine: the enqueue returned only after 0.3 s of earlier work). */
  CUfileHandle_t h = kvik__file_gds(op->f);
  const struct kvik__cufile_api *cf;
  if (!h || kvik__cufile_get(&cf) != 0 || !cf->has_async) {
    kvik__err_clear();
    return 0;
  }
  struct kvik__mem_info mi;
  CUcontext ctx;
  if (kvik__mem_query((const void *)op->base, 1, &mi) != 0 || mi.kind != KVIK_MEM_DEVICE ||
      mi.pool || kvik__mem_ctx(&mi, &ctx) != 0) {
    kvik__err_clear();
    return 0;
  }
  if (!kvik__cufile_hold())
    return 0;
  CUresult r = cu->cuCtxPushCurrent_v2(ctx);
  if (r != CUDA_SUCCESS) {
    kvik__cufile_release();
    sop_unref(op);
    return kvik__cuda_fail(r, "%s: cuCtxPushCurrent_v2 (the buffer's context)", fn);
  }
  CUfileError_t e = {CU_FILE_SUCCESS, CUDA_SUCCESS};
  if (kvik__cufile_enter()) {
    e = op->write ? cf->cuFileWriteAsync(h, (void *)op->base, op->size_p, (off_t *)op->foff_p,
                                         (off_t *)op->boff_p, op->bytes_p, stream)
                  : cf->cuFileReadAsync(h, (void *)op->base, op->size_p, (off_t *)op->foff_p,
                                        (off_t *)op->boff_p, op->bytes_p, stream);
    kvik__cufile_leave();
  } else {
    e.err = CU_FILE_DRIVER_CLOSING;
  }
  int rc = 0;
  if (e.err != CU_FILE_SUCCESS) {
    rc = kvik__cufile_fail(e, "%s %s: %s", fn, kvik__file_path(op->f),
                           op->write ? "cuFileWriteAsync" : "cuFileReadAsync");
  } else if ((r = cu->cuLaunchHostFunc(stream, gds_done, op)) != CUDA_SUCCESS) {
    /* cuFile's operation is enqueued and reads the arguments later: op must outlive it, so it
     * is leaked, and the hold kept (exit then leaves cuFile alone). */
    rc = kvik__cuda_fail(r,
                         "%s %s: cuLaunchHostFunc after the cuFile operation (which is "
                         "enqueued and will run; its result is cuFile's own)",
                         fn, kvik__file_path(op->f));
    op = NULL;
  }
  CUcontext dummy;
  cu->cuCtxPopCurrent_v2(&dummy);
  if (rc && op) {
    kvik__cufile_release();
    sop_unref(op);
  }
  return rc ? rc : 1;
}

/* ---- public ------------------------------------------------------------------------------- */

/* out is NULL for the pointer forms; fut_form says which the caller is. */
static int enqueue(kvik_file *f, bool write, const void *base, size_t *size_p, int64_t *foff_p,
                   int64_t *boff_p, ssize_t *bytes_p, struct CUstream_st *stream, kvik_future **out,
                   bool fut_form, const char *fn) {
  int rc = kvik__file_get(f, fn);
  if (rc)
    return rc;
  const char *path = kvik__file_path(f);
  const struct kvik__cuda_api *cu = NULL;
  struct sop *op = NULL;
  if (fut_form && !out)
    rc = kvik__err(KVIK_EINVAL, "%s %s: cannot %s %zu bytes at file offset %lld: out is NULL", fn,
                   path, write ? "write" : "read", *size_p, (long long)*foff_p);
  else if (!out && (!size_p || !foff_p || !boff_p || !bytes_p))
    rc = kvik__err(KVIK_EINVAL, "%s %s: %s is NULL", fn, path,
                   !size_p   ? "size"
                   : !foff_p ? "file_offset"
                   : !boff_p ? "buf_offset"
                             : "the result pointer");
  else if (!base)
    rc = kvik__err(KVIK_EINVAL, "%s %s: cannot %s %zu bytes at file offset %lld: buffer is NULL",
                   fn, path, write ? "write" : "read", *size_p, (long long)*foff_p);
  /* The size and offsets are checked when the stream reaches the operation. */
  else if ((rc = kvik__file_check_mode(f, write, *size_p, *foff_p, fn)) == 0 &&
           (rc = kvik__cuda_get(&cu)) != 0) {
    char inner[KVIK_ERRMSG_MAX];
    snprintf(inner, sizeof inner, "%s", kvik_last_error());
    rc = kvik__err(rc, "%s %s: %s", fn, path, inner);
  } else if (rc == 0 && !(op = sop_new())) {
    rc = kvik__err(-ENOMEM, "%s %s: out of memory", fn, path);
  }
  if (rc) {
    kvik__file_put(f);
    return rc;
  }
  op->f = f; /* the reference taken above */
  op->fn = fn;
  op->write = write;
  op->base = (uintptr_t)base;
  if (out) {
    op->size_p = &op->size;
    op->foff_p = &op->foff;
    op->boff_p = &op->boff;
    op->bytes_p = &op->bytes;
    op->size = *size_p;
    op->foff = *foff_p;
    if ((rc = kvik__future_new(&op->fut)) != 0) {
      sop_unref(op);
      return rc;
    }
  } else {
    op->size_p = size_p;
    op->foff_p = foff_p;
    op->boff_p = boff_p;
    op->bytes_p = bytes_p;
  }
  kvik_future *fut = op->fut;
  bool runs = false;
  rc = enqueue_cufile(cu, op, stream, fn);
  if (rc == 0)
    rc = enqueue_kvik(cu, op, stream, &runs);
  else if (rc > 0)
    rc = 0;
  if (out) {
    if (rc == 0) {
      *out = fut;
    } else {
      /* Never handed out. Unless the operation still runs (and completes it), complete it for
       * its creator's reference; then drop the caller's. */
      char msg[KVIK_ERRMSG_MAX];
      snprintf(msg, sizeof msg, "%s", kvik_last_error());
      if (!runs)
        kvik__future_complete(fut, rc, msg);
      (void)kvik_future_wait(fut);
      kvik__err_set(rc, msg);
    }
  }
  return rc;
}

int kvik_file_read_async(kvik_file *f, void *buf_base, size_t *size, int64_t *file_offset,
                         int64_t *buf_offset, ssize_t *bytes_read, struct CUstream_st *stream) {
  return enqueue(f, false, buf_base, size, file_offset, buf_offset, bytes_read, stream, NULL, false,
                 "kvik_file_read_async");
}

int kvik_file_write_async(kvik_file *f, const void *buf_base, size_t *size, int64_t *file_offset,
                          int64_t *buf_offset, ssize_t *bytes_written, struct CUstream_st *stream) {
  return enqueue(f, true, buf_base, size, file_offset, buf_offset, bytes_written, stream, NULL,
                 false, "kvik_file_write_async");
}

int kvik_file_read_async_future(kvik_file *f, void *buf, size_t size, int64_t file_offset,
                                struct CUstream_st *stream, kvik_future **out) {
  return enqueue(f, false, buf, &size, &file_offset, NULL, NULL, stream, out, true,
                 "kvik_file_read_async_future");
}

int kvik_file_write_async_future(kvik_file *f, const void *buf, size_t size, int64_t file_offset,
                                 struct CUstream_st *stream, kvik_future **out) {
  return enqueue(f, true, buf, &size, &file_offset, NULL, NULL, stream, out, true,
                 "kvik_file_write_async_future");
}
