/* Stream-ordered reads and writes (kvik_file_read_async and friends).
 *
 * GDS files with device memory: cuFileReadAsync/cuFileWriteAsync, which order the operation on
 * the stream themselves, followed by a host function that turns a cuFile error in the result into
 * a kvik code and completes the future. (Not for cuFile's compatibility mode: there its stream API
 * synchronizes the caller's stream; measured on the GPU machine.)
 *
 * Everything else is ordered on the stream by kvik, without blocking the caller and without a
 * CUDA call from a host function:
 *
 *   caller's stream:  ... work before ... | host fn: hand op to a pool worker | wait flag >= gen |
 *                     ... work after ...
 *   pool worker:      read the arguments, do the I/O, write the result, then flag = gen
 *
 * The host function only claims the operation and queues it on the pool; it never waits. The
 * flag is a 32-bit slot in pinned, device-mapped host memory; the stream waits with
 * cuStreamWaitValue32 (GEQ). Each use of a slot waits for a value one higher than the last, so a
 * slot is reusable as soon as its worker has written it. Slots live in pinned slabs that are
 * never freed (no CUDA call at exit).
 *
 * While the caller's stream waits, the worker must not meet anything that waits for that stream.
 * A page-locked or device memory allocation is an implicit synchronization point of the device
 * (the first design allocated bounce buffers in the worker and hung on the GPU machine; the fake
 * libcuda now models this, "alloc_syncs"), and a blocking stream waits for the legacy stream. So
 * everything the worker needs from CUDA is made on the enqueuing thread: a lane (a non-blocking
 * stream of the greatest priority, so it does not share a hardware queue with the default-
 * priority streams it might wait behind, and a pinned staging buffer), reused by later
 * operations. The worker reads and writes the file buffered (opportunistic O_DIRECT may take a
 * bounce buffer, whose allocation it must not do), host memory directly, device and managed
 * memory through the lane.
 *
 * Where the GPU cannot wait on memory from a stream (a driver older than CUDA 12 without stream
 * memory operations), kvik's stream ordering is not available: KVIK_EUNSUPPORTED, saying why. */
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

/* ---- lanes: the worker's own stream and staging ------------------------------------------ */

#define STAGE_BYTES ((size_t)8 << 20)

/* A lane: a non-blocking stream of the greatest priority and a pinned staging buffer, in one
 * context, used by one operation at a time. Lanes are made by enqueuing threads, never by a
 * worker: a page-locked allocation is an implicit synchronization point of the device, and a
 * worker must meet none while a stream waits for it. They live for the rest of the process (no
 * CUDA call at exit). */
struct lane {
  CUcontext ctx;
  CUstream s;
  void *stage;
  struct lane *next;
};
static pthread_mutex_t lane_lock = PTHREAD_MUTEX_INITIALIZER; /* guards free_lanes */
static struct lane *free_lanes;

/* A free lane for ctx, made if there is none. Called on the enqueuing thread. */
static int lane_get(const struct kvik__cuda_api *cu, CUcontext ctx, struct lane **out) {
  pthread_mutex_lock(&lane_lock);
  struct lane **pp = &free_lanes;
  while (*pp && (*pp)->ctx != ctx)
    pp = &(*pp)->next;
  struct lane *l = *pp;
  if (l)
    *pp = l->next;
  pthread_mutex_unlock(&lane_lock);
  if (l) {
    *out = l;
    return 0;
  }
  if (!(l = kvik__calloc(1, sizeof *l)))
    return kvik__err(-ENOMEM, "stream-ordered I/O: out of memory");
  l->ctx = ctx;
  CUresult r = cu->cuCtxPushCurrent_v2(ctx);
  if (r != CUDA_SUCCESS) {
    kvik__free(l);
    return kvik__cuda_fail(r, "cuCtxPushCurrent_v2 (the buffer's context)");
  }
  int least = 0, greatest = 0;
  if (cu->cuStreamCreateWithPriority && cu->cuCtxGetStreamPriorityRange &&
      cu->cuCtxGetStreamPriorityRange(&least, &greatest) == CUDA_SUCCESS)
    r = cu->cuStreamCreateWithPriority(&l->s, CU_STREAM_NON_BLOCKING, greatest);
  else
    r = cu->cuStreamCreate(&l->s, CU_STREAM_NON_BLOCKING);
  int rc = 0;
  if (r != CUDA_SUCCESS) {
    rc = kvik__cuda_fail(r, "cuStreamCreateWithPriority (stream-ordered I/O lane)");
  } else if ((r = cu->cuMemHostAlloc(&l->stage, STAGE_BYTES, CU_MEMHOSTALLOC_PORTABLE)) !=
             CUDA_SUCCESS) {
    rc = kvik__cuda_fail(r, "cuMemHostAlloc (%zu bytes of staging for stream-ordered I/O)",
                         STAGE_BYTES);
    cu->cuStreamDestroy_v2(l->s);
  }
  CUcontext dummy;
  cu->cuCtxPopCurrent_v2(&dummy);
  if (rc) {
    kvik__free(l);
    return rc;
  }
  *out = l;
  return 0;
}

static void lane_put(struct lane *l) {
  if (!l)
    return;
  pthread_mutex_lock(&lane_lock);
  l->next = free_lanes;
  free_lanes = l;
  pthread_mutex_unlock(&lane_lock);
}

/* [ptr, ptr + size) of device or managed memory to or from the file, through the lane's staging
 * buffer and stream, with buffered I/O (no bounce buffer, so no allocation). Reads stop at end
 * of file (short count). */
static ssize_t staged_io(bool write, const struct kvik__fds *fds, struct lane *l, uintptr_t ptr,
                         size_t size, int64_t off) {
  const struct kvik__cuda_api *cu;
  int rc = kvik__cuda_get(&cu);
  if (rc)
    return rc;
  CUresult r = cu->cuCtxPushCurrent_v2(l->ctx);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuCtxPushCurrent_v2 (the buffer's context)");
  ssize_t result = 0;
  size_t done = 0;
  while (done < size) {
    size_t len = KVIK_MIN(STAGE_BYTES, size - done);
    int64_t at = off + (int64_t)done;
    if (write) {
      r = cu->cuMemcpyDtoHAsync_v2(l->stage, (CUdeviceptr)(ptr + done), len, l->s);
      if (r == CUDA_SUCCESS)
        r = cu->cuStreamSynchronize(l->s);
      if (r != CUDA_SUCCESS) {
        result = kvik__cuda_fail(r, "cuMemcpyDtoHAsync_v2 (%zu bytes from %#llx)", len,
                                 (unsigned long long)(ptr + done));
        break;
      }
      ssize_t n = kvik__posix_write(fds, l->stage, len, at);
      if (n < 0) {
        result = n;
        break;
      }
      done += len;
    } else {
      ssize_t n = kvik__posix_read(fds, l->stage, len, at);
      if (n < 0) {
        result = n;
        break;
      }
      if (n > 0) {
        r = cu->cuMemcpyHtoDAsync_v2((CUdeviceptr)(ptr + done), l->stage, (size_t)n, l->s);
        if (r == CUDA_SUCCESS)
          r = cu->cuStreamSynchronize(l->s);
        if (r != CUDA_SUCCESS) {
          result = kvik__cuda_fail(r, "cuMemcpyHtoDAsync_v2 (%zd bytes to %#llx)", n,
                                   (unsigned long long)(ptr + done));
          break;
        }
      }
      done += (size_t)n;
      if ((size_t)n < len)
        break; /* end of file */
    }
  }
  CUcontext dummy;
  cu->cuCtxPopCurrent_v2(&dummy);
  return result < 0 ? result : (ssize_t)done;
}

/* ---- operations --------------------------------------------------------------------------- */

/* Who takes an enqueued operation: the host function (to run it) or the enqueuing thread (to
 * cancel it, when the stream wait could not be enqueued). Exactly one wins. */
enum { OWN_NONE, OWN_RUN, OWN_CANCEL };

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
  struct lane *lane; /* for device and managed memory; NULL for host memory */
  _Atomic int owner;
};

static struct sop *sop_new(void) {
  struct sop *op = kvik__calloc(1, sizeof *op);
  if (!op)
    return NULL;
  atomic_store(&op->refs, 1);
  return op;
}

static void sop_unref(struct sop *op) {
  if (atomic_fetch_sub_explicit(&op->refs, 1, memory_order_acq_rel) != 1)
    return;
  lane_put(op->lane);
  kvik__free(op);
}

/* The result is known: hand it over, then let the stream go on. */
static void finish(struct sop *op, ssize_t n, const char *msg) {
  *op->bytes_p = n;
  if (op->fut)
    kvik__future_complete(op->fut, n, msg);
  __atomic_store_n(op->slot->host, op->gen, __ATOMIC_RELEASE);
  slot_put(op->slot);
}

/* The I/O of one operation on the worker: checked like kvik_file_read/write; buffered I/O
 * (opportunistic O_DIRECT may take a bounce buffer, whose allocation a worker must not do);
 * host memory directly, device and managed memory through the operation's lane. */
static ssize_t do_io(struct sop *op, uintptr_t ptr, size_t size, int64_t off) {
  const char *fn = op->write ? "kvik_file_write_async" : "kvik_file_read_async";
  int rc = kvik__file_check_io(op->f, (const void *)ptr, size, off, op->write, fn);
  if (rc || size == 0)
    return rc;
  struct kvik__mem_info mi;
  if ((rc = kvik__mem_query((const void *)ptr, size, &mi)) != 0)
    return rc;
  struct kvik__fds fds = *kvik__file_fds(op->f);
  fds.fd_direct = -1;
  fds.direct_read = fds.direct_write = false;
  if (!kvik__mem_is_device(mi.kind))
    return op->write ? kvik__posix_write(&fds, (const void *)ptr, size, off)
                     : kvik__posix_read(&fds, (void *)ptr, size, off);
  if (!op->lane)
    return kvik__err(KVIK_EINVAL,
                     "%s %s: buffer %p is device memory, but the buffer base %p "
                     "was host memory when the operation was enqueued",
                     fn, kvik_file_path(op->f), (void *)ptr, (void *)op->base);
  return staged_io(op->write, &fds, op->lane, ptr, size, off);
}

/* On a pool worker. */
static void work(void *arg) {
  struct sop *op = arg;
  size_t size = *op->size_p;
  int64_t foff = *op->foff_p, boff = *op->boff_p;
  ssize_t n;
  if (boff < 0 || (uint64_t)boff > UINTPTR_MAX - op->base)
    n = kvik__err(KVIK_EINVAL, "%s %s: buffer offset %lld is out of range",
                  op->write ? "kvik_file_write_async" : "kvik_file_read_async",
                  kvik_file_path(op->f), (long long)boff);
  else
    n = do_io(op, op->base + (uintptr_t)boff, size, foff);
  finish(op, n, n < 0 ? kvik_last_error() : NULL);
  sop_unref(op);
}

/* On CUDA's callback thread, when the stream reaches the operation: claims it and queues it on
 * the pool. Never waits, and makes no CUDA call. */
static void trigger(void *arg) {
  struct sop *op = arg;
  int expected = OWN_NONE;
  if (!atomic_compare_exchange_strong(&op->owner, &expected, OWN_RUN)) {
    slot_put(op->slot); /* canceled: nothing waits on the slot, which was never written */
    sop_unref(op);
    return;
  }
  atomic_fetch_add(&op->refs, 1); /* the worker's */
  int rc = kvik__pool_submit(op->pool, work, op);
  if (rc) {
    finish(op, rc, kvik_last_error());
    sop_unref(op);
  }
  sop_unref(op);
}

/* kvik's own stream ordering (see the top of this file). Takes over op. *runs is set when the
 * call fails but the operation will still run (and complete its future). */
static int enqueue_kvik(const struct kvik__cuda_api *cu, struct sop *op, CUstream stream,
                        const char *fn, bool *runs) {
  const char *path = kvik_file_path(op->f);
  if (kvik__config_ready() == 0 && !kvik__cfg_u64(KVIK_CFG_STREAM_FALLBACK)) {
    sop_unref(op);
    return kvik__err(KVIK_EUNSUPPORTED,
                     "%s %s: GDS does not serve this file, and kvik's own stream ordering is off: "
                     "it hung on a real GPU in testing (docs/cufile.md); KVIK_STREAM_FALLBACK=1 "
                     "turns it on",
                     fn, path);
  }
  pthread_once(&memops_once, memops_probe);
  if (!memops_ok) {
    sop_unref(op);
    return kvik__err(KVIK_EUNSUPPORTED,
                     "%s %s: kvik's stream ordering needs the GPU to wait on memory from a "
                     "stream, and %s",
                     fn, path, memops_why);
  }
  int rc = kvik__file_pool(op->f, &op->pool);
  /* Everything the worker will need from CUDA is made here, on the enqueuing thread. */
  struct kvik__mem_info mi;
  CUcontext ctx;
  if (rc == 0 && (rc = kvik__mem_query((const void *)op->base, 1, &mi)) == 0 &&
      kvik__mem_is_device(mi.kind) && (rc = kvik__mem_ctx(&mi, &ctx)) == 0)
    rc = lane_get(cu, ctx, &op->lane);
  if (rc == 0 && (rc = slot_get(cu, &op->slot)) == 0)
    op->gen = __atomic_load_n(op->slot->host, __ATOMIC_ACQUIRE) + 1;
  if (rc) {
    sop_unref(op);
    return rc;
  }
  atomic_fetch_add(&op->refs, 1); /* the host function's */
  CUresult r = cu->cuLaunchHostFunc(stream, trigger, op);
  if (r != CUDA_SUCCESS) {
    atomic_fetch_sub(&op->refs, 1);
    slot_put(op->slot);
    sop_unref(op);
    return kvik__cuda_fail(r, "%s %s: cuLaunchHostFunc", fn, path);
  }
  r = cu->cuStreamWaitValue32_v2(stream, op->slot->dev, op->gen, CU_STREAM_WAIT_VALUE_GEQ);
  if (r != CUDA_SUCCESS) {
    /* The host function is enqueued: cancel the operation unless it has started already. */
    rc = kvik__cuda_fail(r, "%s %s: cuStreamWaitValue32_v2", fn, path);
    int expected = OWN_NONE;
    *runs = !atomic_compare_exchange_strong(&op->owner, &expected, OWN_CANCEL);
    sop_unref(op);
    return rc;
  }
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
  bool runs = false;
  rc = enqueue_cufile(cu, op, stream, fn);
  if (rc == 0)
    rc = enqueue_kvik(cu, op, stream, fn, &runs);
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
