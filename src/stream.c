/* Stream-ordered reads and writes (kvik_file_read_async and friends).
 *
 * GDS files with device memory use cuFileReadAsync/cuFileWriteAsync, followed by a host function
 * that turns a cuFile error in the result into a kvik code and completes the future.
 *
 * Everything else is ordered on the stream without blocking the caller and without a CUDA call
 * from a host function:
 *
 *   caller's stream:  ... work before ... | host fn: hand op to a pool worker | wait flag >= gen |
 *                     ... work after ...
 *   pool worker:      read the arguments, do the I/O on its own stream (kvik's device path or the
 *                     file's cuFile path), write the result, then flag = gen
 *
 * The flag is a 32-bit slot in pinned, device-mapped host memory; the stream waits with
 * cuStreamWaitValue32 (GEQ). Each use of a slot waits for a value one higher than the last, so a
 * slot is reusable as soon as its worker has written it: a late reader of an old value still sees
 * one at least as high as it waits for. Slots live in pinned slabs that are never freed (no CUDA
 * call at exit).
 *
 * Where the GPU cannot wait on memory (a driver older than CUDA 12 without stream memory
 * operations), the host function itself waits for the worker: still nothing blocks the caller,
 * but CUDA's callback thread is held while the I/O runs. */
#include "file.h"

#include "core/core.h"
#include "gpu/cuda.h"
#include "gpu/cufile.h"
#include "gpu/gpu.h"
#include "pool/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* ---- flag slots --------------------------------------------------------------------------- */

#define SLAB_BYTES 4096
#define SLAB_SLOTS (SLAB_BYTES / sizeof(uint32_t))

struct slot {
  uint32_t *host;    /* where the worker writes                                    */
  CUdeviceptr dev;   /* the same word as the GPU addresses it                      */
  struct slot *next; /* free list                                                 */
};

/* Guards free_slots. Slabs are allocated outside it. */
static pthread_mutex_t slot_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot *free_slots;

/* Allocates a slab of slots (pinned, device-mapped, portable) and adds them to the free list. */
static int slab_new(const struct kvik__cuda_api *cu) {
  struct slot *s = kvik__calloc(SLAB_SLOTS, sizeof *s);
  if (!s)
    return kvik__err(-ENOMEM, "stream-ordered I/O: out of memory for flag slots");
  CUcontext cur = NULL;
  bool pushed = false;
  int rc = 0;
  if (cu->cuCtxGetCurrent(&cur) != CUDA_SUCCESS || !cur) {
    CUcontext primary;
    if ((rc = kvik__cuda_primary_ctx(0, &primary)) != 0)
      goto fail;
    CUresult r = cu->cuCtxPushCurrent_v2(primary);
    if (r != CUDA_SUCCESS) {
      rc = kvik__cuda_fail(r, "cuCtxPushCurrent_v2 (for the stream-ordered I/O flags)");
      goto fail;
    }
    pushed = true;
  }
  void *p = NULL;
  CUresult r =
      cu->cuMemHostAlloc(&p, SLAB_BYTES, CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP);
  CUdeviceptr d = (CUdeviceptr)(uintptr_t)p;
  if (r == CUDA_SUCCESS && cu->cuMemHostGetDevicePointer_v2) {
    r = cu->cuMemHostGetDevicePointer_v2(&d, p, 0);
    if (r != CUDA_SUCCESS) {
      cu->cuMemFreeHost(p);
      rc = kvik__cuda_fail(r, "cuMemHostGetDevicePointer_v2 (stream-ordered I/O flags)");
    }
  } else if (r != CUDA_SUCCESS) {
    rc = kvik__cuda_fail(r, "cuMemHostAlloc (%d bytes of stream-ordered I/O flags)", SLAB_BYTES);
  }
  if (pushed) {
    CUcontext dummy;
    cu->cuCtxPopCurrent_v2(&dummy);
  }
  if (rc)
    goto fail;
  memset(p, 0, SLAB_BYTES);
  pthread_mutex_lock(&slot_lock);
  for (size_t i = 0; i < SLAB_SLOTS; i++) {
    s[i].host = (uint32_t *)p + i;
    s[i].dev = d + i * sizeof(uint32_t);
    s[i].next = free_slots;
    free_slots = &s[i];
  }
  pthread_mutex_unlock(&slot_lock);
  return 0; /* the slab and its slot records live for the rest of the process */
fail:
  kvik__free(s);
  return rc;
}

static int slot_get(const struct kvik__cuda_api *cu, struct slot **out) {
  for (;;) {
    pthread_mutex_lock(&slot_lock);
    struct slot *s = free_slots;
    if (s)
      free_slots = s->next;
    pthread_mutex_unlock(&slot_lock);
    if (s) {
      *out = s;
      return 0;
    }
    int rc = slab_new(cu);
    if (rc)
      return rc;
  }
}

static void slot_put(struct slot *s) {
  pthread_mutex_lock(&slot_lock);
  s->next = free_slots;
  free_slots = s;
  pthread_mutex_unlock(&slot_lock);
}

/* ---- can the GPU wait on memory? ---------------------------------------------------------- */

static pthread_once_t memops_once = PTHREAD_ONCE_INIT;
static bool memops_ok;
static char memops_why[160];

static void memops_probe(void) {
  const struct kvik__cuda_api *cu;
  if (kvik__cuda_get(&cu) != 0)
    return;
  if (!cu->cuStreamWaitValue32_v2) {
    snprintf(memops_why, sizeof memops_why, "libcuda.so.1 lacks cuStreamWaitValue32_v2");
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
               "device %d does not support stream memory operations (driver %d)", d,
               cu->driver_version);
      return;
    }
  }
  memops_ok = true;
}

/* ---- operations --------------------------------------------------------------------------- */

enum { OP_PENDING, OP_ARMED, OP_CANCELED };

struct sop {
  _Atomic int refs;
  kvik_file *f;
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
  kvik_pool *pool;
  struct slot *slot;
  uint32_t gen;
  bool blocking;      /* no stream wait: the host function waits for the worker */
  bool held;          /* a cuFile hold is taken (GDS path) */
  pthread_mutex_t mu; /* guards state and done; cv signals changes */
  pthread_cond_t cv;
  int state;
  bool done;
};

static struct sop *sop_new(void) {
  struct sop *op = kvik__calloc(1, sizeof *op);
  if (!op)
    return NULL;
  atomic_store(&op->refs, 1);
  pthread_mutex_init(&op->mu, NULL);
  pthread_cond_init(&op->cv, NULL);
  return op;
}

static void sop_unref(struct sop *op) {
  if (atomic_fetch_sub_explicit(&op->refs, 1, memory_order_acq_rel) != 1)
    return;
  pthread_cond_destroy(&op->cv);
  pthread_mutex_destroy(&op->mu);
  kvik__free(op);
}

/* The result is known: hand it over, then let the stream go on. */
static void finish(struct sop *op, ssize_t n, const char *msg) {
  *op->bytes_p = n;
  if (op->fut)
    kvik__future_complete(op->fut, n, msg);
  if (op->blocking) {
    pthread_mutex_lock(&op->mu);
    op->done = true;
    pthread_cond_broadcast(&op->cv);
    pthread_mutex_unlock(&op->mu);
  } else {
    __atomic_store_n(op->slot->host, op->gen, __ATOMIC_RELEASE);
    slot_put(op->slot);
  }
}

/* On a pool worker: the I/O itself, through the file's own path for this memory. */
static void work(void *arg) {
  struct sop *op = arg;
  size_t size = *op->size_p;
  int64_t foff = *op->foff_p, boff = *op->boff_p;
  const char *fn = op->write ? "kvik_file_write_async" : "kvik_file_read_async";
  ssize_t n;
  if (boff < 0 || (uint64_t)boff > UINTPTR_MAX - op->base)
    n = kvik__err(KVIK_EINVAL, "%s %s: buffer offset %lld is out of range", fn,
                  kvik_file_path(op->f), (long long)boff);
  else if (op->write)
    n = kvik_file_write(op->f, (const void *)(op->base + (uintptr_t)boff), size, foff);
  else
    n = kvik_file_read(op->f, (void *)(op->base + (uintptr_t)boff), size, foff);
  finish(op, n, n < 0 ? kvik_last_error() : NULL);
  sop_unref(op);
}

/* On CUDA's callback thread, when the stream reaches the operation: only hands it to a pool
 * worker (no CUDA call here). */
static void trigger(void *arg) {
  struct sop *op = arg;
  /* The enqueuing thread decides right after its enqueue calls; wait for that (short). */
  pthread_mutex_lock(&op->mu);
  while (op->state == OP_PENDING)
    pthread_cond_wait(&op->cv, &op->mu);
  int state = op->state;
  pthread_mutex_unlock(&op->mu);
  if (state == OP_CANCELED) {
    if (!op->blocking)
      slot_put(op->slot);
    sop_unref(op);
    return;
  }
  atomic_fetch_add(&op->refs, 1); /* the worker's */
  int rc = kvik__pool_submit(op->pool, work, op);
  if (rc) {
    finish(op, rc, kvik_last_error());
    sop_unref(op);
  }
  if (op->blocking) {
    pthread_mutex_lock(&op->mu);
    while (!op->done)
      pthread_cond_wait(&op->cv, &op->mu);
    pthread_mutex_unlock(&op->mu);
  }
  sop_unref(op);
}

static void decide(struct sop *op, int state) {
  pthread_mutex_lock(&op->mu);
  op->state = state;
  pthread_cond_broadcast(&op->cv);
  pthread_mutex_unlock(&op->mu);
}

/* kvik's own stream ordering (see the top of this file). Takes over op (frees it on failure). */
static int enqueue_kvik(const struct kvik__cuda_api *cu, struct sop *op, CUstream stream,
                        const char *fn) {
  pthread_once(&memops_once, memops_probe);
  op->blocking = !memops_ok;
  int rc = kvik__file_pool(op->f, &op->pool);
  if (rc == 0 && !op->blocking && (rc = slot_get(cu, &op->slot)) == 0)
    op->gen = __atomic_load_n(op->slot->host, __ATOMIC_ACQUIRE) + 1;
  if (rc) {
    sop_unref(op);
    return rc;
  }
  const char *path = kvik_file_path(op->f);
  atomic_fetch_add(&op->refs, 1); /* the host function's */
  CUresult r = cu->cuLaunchHostFunc(stream, trigger, op);
  if (r != CUDA_SUCCESS) {
    atomic_fetch_sub(&op->refs, 1);
    if (!op->blocking)
      slot_put(op->slot);
    sop_unref(op);
    return kvik__cuda_fail(r, "%s %s: cuLaunchHostFunc", fn, path);
  }
  if (!op->blocking) {
    r = cu->cuStreamWaitValue32_v2(stream, op->slot->dev, op->gen, CU_STREAM_WAIT_VALUE_GEQ);
    if (r != CUDA_SUCCESS) {
      /* The host function is enqueued and will run: it sees the cancellation, does no I/O and
       * gives the slot back. */
      rc = kvik__cuda_fail(r, "%s %s: cuStreamWaitValue32_v2", fn, path);
      decide(op, OP_CANCELED);
      sop_unref(op);
      return rc;
    }
  }
  decide(op, OP_ARMED);
  sop_unref(op);
  return 0;
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
      snprintf(msg, sizeof msg, "%s %s: %s (%d)", fn, kvik_file_path(op->f),
               kvik__cufile_errname((int)-n), (int)-n);
    else
      snprintf(msg, sizeof msg, "%s %s: %s", fn, kvik_file_path(op->f), kvik__errno_text(-code));
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
static int enqueue_gds(const struct kvik__cuda_api *cu, struct sop *op, CUstream stream,
                       const char *fn) {
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
    rc = kvik__cufile_fail(e, "%s %s: %s", fn, kvik_file_path(op->f),
                           op->write ? "cuFileWriteAsync" : "cuFileReadAsync");
  } else if ((r = cu->cuLaunchHostFunc(stream, gds_done, op)) != CUDA_SUCCESS) {
    /* cuFile's operation is enqueued and reads the arguments later: op must outlive it, so it
     * is leaked, and the hold kept (exit then leaves cuFile alone). */
    rc = kvik__cuda_fail(r,
                         "%s %s: cuLaunchHostFunc after the cuFile operation (which is "
                         "enqueued and will run; its result is cuFile's own)",
                         fn, kvik_file_path(op->f));
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

static int enqueue(kvik_file *f, bool write, const void *base, size_t *size_p, int64_t *foff_p,
                   int64_t *boff_p, ssize_t *bytes_p, struct CUstream_st *stream, kvik_future **out,
                   const char *fn) {
  int rc = kvik__file_check_io(f, base, 0, 0, write, fn);
  if (rc)
    return rc;
  if (!base)
    return kvik__err(KVIK_EINVAL, "%s %s: buffer is NULL", fn, kvik_file_path(f));
  if (!out && (!size_p || !foff_p || !boff_p || !bytes_p))
    return kvik__err(KVIK_EINVAL, "%s %s: %s is NULL", fn, kvik_file_path(f),
                     !size_p   ? "size"
                     : !foff_p ? "file_offset"
                     : !boff_p ? "buf_offset"
                               : "the result pointer");
  const struct kvik__cuda_api *cu;
  if ((rc = kvik__cuda_get(&cu)) != 0)
    return rc;
  struct sop *op = sop_new();
  if (!op)
    return kvik__err(-ENOMEM, "%s: out of memory", fn);
  op->f = f;
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
  rc = enqueue_gds(cu, op, stream, fn);
  if (rc == 0)
    rc = enqueue_kvik(cu, op, stream, fn);
  else if (rc > 0)
    rc = 0;
  if (out) {
    if (rc == 0) {
      *out = fut;
    } else {
      /* Never handed out: complete it for its creator reference and drop the caller's. */
      kvik__future_complete(fut, rc, kvik_last_error());
      char msg[KVIK_ERRMSG_MAX];
      snprintf(msg, sizeof msg, "%s", kvik_last_error());
      (void)kvik_future_wait(fut);
      kvik__err_set(rc, msg);
    }
  }
  return rc;
}

int kvik_file_read_async(kvik_file *f, void *buf_base, size_t *size, int64_t *file_offset,
                         int64_t *buf_offset, ssize_t *bytes_read, struct CUstream_st *stream) {
  return enqueue(f, false, buf_base, size, file_offset, buf_offset, bytes_read, stream, NULL,
                 "kvik_file_read_async");
}

int kvik_file_write_async(kvik_file *f, const void *buf_base, size_t *size, int64_t *file_offset,
                          int64_t *buf_offset, ssize_t *bytes_written, struct CUstream_st *stream) {
  return enqueue(f, true, buf_base, size, file_offset, buf_offset, bytes_written, stream, NULL,
                 "kvik_file_write_async");
}

int kvik_file_read_async_future(kvik_file *f, void *buf, size_t size, int64_t file_offset,
                                struct CUstream_st *stream, kvik_future **out) {
  if (!out)
    return kvik__err(KVIK_EINVAL, "kvik_file_read_async_future: out is NULL");
  return enqueue(f, false, buf, &size, &file_offset, NULL, NULL, stream, out,
                 "kvik_file_read_async_future");
}

int kvik_file_write_async_future(kvik_file *f, const void *buf, size_t size, int64_t file_offset,
                                 struct CUstream_st *stream, kvik_future **out) {
  if (!out)
    return kvik__err(KVIK_EINVAL, "kvik_file_write_async_future: out is NULL");
  return enqueue(f, true, buf, &size, &file_offset, NULL, NULL, stream, out,
                 "kvik_file_write_async_future");
}
