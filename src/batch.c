/* Batch I/O (kvik_batch_*): many independent operations submitted at once, reaped as they
 * finish. An operation on a file GDS serves, with plain device memory of at least
 * KVIKIO_GDS_THRESHOLD bytes, goes to cuFile's batch API (one cuFile batch per kvik batch, set up
 * on first use); every other operation runs on the file's pool through the file's own path
 * (kvik_file_read/kvik_file_write on a worker). Both kinds complete into one set of events. Where
 * cuFile refuses a batch submission, the operation runs on the pool instead (logged). */
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
#include <time.h>

#define MAX_OPS 65536u

enum { S_FREE, S_QUEUED, S_RUNNING, S_CUFILE, S_DONE };

struct bop {
  struct kvik_batch *b;
  struct kvik_batch_io io; /* io.file: a reference is held from submission until reaped */
  unsigned index;          /* in ops[]                                                          */
  uint64_t gen;            /* submissions of this slot: cuFile's cookie carries it, so an event
                              of an earlier use of the slot (canceled by kvik) is recognized   */
  int state;
  int status; /* enum kvik_batch_status, once S_DONE */
  ssize_t result;
  char error[256];
};

struct kvik_batch {
  struct kvik__handle h; /* refs: the caller's (while in the handle set), one per call in
                            progress, one per pool task not yet run */
  unsigned max;
  /* Guards ops[], used, running, cf_outstanding, destroyed; cv signals an operation done and
   * running dropping. No cuFile or CUDA call is made under it. */
  pthread_mutex_t lock;
  pthread_cond_t cv;
  struct bop *ops;
  unsigned used;           /* slots not S_FREE (finished but unreaped ones included) */
  unsigned running;        /* pool operations in S_RUNNING                          */
  unsigned cf_outstanding; /* operations given to cuFile and not yet reported by it   */
  bool destroyed;
  /* Serializes the calls that talk to cuFile's batch (submit's cuFile part, status, cancel,
   * destroy), so cuFile's batch handle has one user at a time. Taken before lock. */
  pthread_mutex_t cf_lock;
  CUfileBatchHandle_t cf; /* NULL until the first cuFile operation (cf_lock) */
};

/* Takes a reference on b for a call, if b is a live batch. */
static int batch_get(kvik_batch *b, const char *fn) {
  if (!b)
    return kvik__err(KVIK_EINVAL, "%s: batch is NULL", fn);
  if (!kvik__handle_get(b, KVIK_MAGIC_BATCH))
    return kvik__err(KVIK_EMISUSE,
                     "%s: %p is not a live kvik batch (destroyed already, or never a kvik_batch)",
                     fn, (void *)b);
  return 0;
}

static void batch_unref(kvik_batch *b) {
  if (atomic_fetch_sub_explicit(&b->h.refs, 1, memory_order_acq_rel) != 1)
    return;
  /* Operations finished and never reaped still hold their files. */
  for (unsigned i = 0; i < b->max; i++)
    if (b->ops[i].state != S_FREE)
      kvik__file_put(b->ops[i].io.file);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->lock);
  pthread_mutex_destroy(&b->cf_lock);
  kvik__free(b->ops);
  kvik__free(b);
}

int kvik_batch_create(kvik_batch **out, unsigned max_ops) {
  if (!out)
    return kvik__err(KVIK_EINVAL, "kvik_batch_create: out is NULL");
  if (max_ops < 1 || max_ops > MAX_OPS)
    return kvik__err(KVIK_EINVAL, "kvik_batch_create: max_ops=%u, must be between 1 and %u",
                     max_ops, MAX_OPS);
  kvik_batch *b = kvik__calloc(1, sizeof *b);
  struct bop *ops = kvik__calloc(max_ops, sizeof *ops);
  if (!b || !ops) {
    kvik__free(b);
    kvik__free(ops);
    return kvik__err(-ENOMEM, "kvik_batch_create: out of memory for %u operations", max_ops);
  }
  b->max = max_ops;
  b->ops = ops;
  for (unsigned i = 0; i < max_ops; i++) {
    ops[i].b = b;
    ops[i].index = i;
  }
  atomic_store(&b->h.refs, 1);
  pthread_mutex_init(&b->lock, NULL);
  pthread_mutex_init(&b->cf_lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&b->cv, &ca);
  pthread_condattr_destroy(&ca);
  kvik__handle_add(&b->h, KVIK_MAGIC_BATCH);
  *out = b;
  return 0;
}

/* Marks op finished (lock held). */
static void done_locked(struct bop *op, int status, ssize_t result, const char *msg) {
  op->state = S_DONE;
  op->status = status;
  op->result = result;
  snprintf(op->error, sizeof op->error, "%s", msg ? msg : "");
  pthread_cond_broadcast(&op->b->cv);
}

/* On a pool worker. */
static void run_op(void *arg) {
  struct bop *op = arg;
  kvik_batch *b = op->b;
  pthread_mutex_lock(&b->lock);
  bool go = op->state == S_QUEUED; /* else canceled meanwhile */
  if (go) {
    op->state = S_RUNNING;
    b->running++;
  }
  struct kvik_batch_io io = op->io;
  pthread_mutex_unlock(&b->lock);
  if (go) {
    void *p = (void *)((uintptr_t)io.buf + (uintptr_t)io.buf_offset);
    /* The operation holds its file, which may be closed by now: it runs all the same. */
    ssize_t n = kvik__file_rw(io.file, io.opcode == KVIK_BATCH_WRITE, p, io.size, io.file_offset,
                              "kvik_batch operation");
    pthread_mutex_lock(&b->lock);
    done_locked(op, n < 0 ? KVIK_BATCH_FAILED : KVIK_BATCH_COMPLETE, n,
                n < 0 ? kvik_last_error() : NULL);
    b->running--;
    pthread_mutex_unlock(&b->lock);
  }
  batch_unref(b);
}

/* Queues op on its file's pool; on failure it is finished with the error. */
static void to_pool(struct bop *op) {
  kvik_batch *b = op->b;
  kvik_pool *pool;
  int rc = kvik__file_pool(op->io.file, &pool);
  atomic_fetch_add(&b->h.refs, 1);
  if (rc == 0)
    rc = kvik__pool_submit(pool, run_op, op);
  if (rc) {
    atomic_fetch_sub(&b->h.refs, 1);
    pthread_mutex_lock(&b->lock);
    done_locked(op, KVIK_BATCH_FAILED, rc, kvik_last_error());
    pthread_mutex_unlock(&b->lock);
  }
}

/* Whether cuFile's batch API takes this operation: the file is served by real GDS, the buffer
 * is plain device memory, the size reaches KVIKIO_GDS_THRESHOLD, libcufile has the batch API.
 * Fills the parameters (cookie: the operation). Never loads CUDA into a process without it. */
static bool cufile_params(struct bop *op, CUfileIOParams_t *p, CUcontext *ctx) {
  const struct kvik__cuda_api *cu;
  const struct kvik__cufile_api *cf;
  if (!kvik__cuda_get_if_used(&cu) || op->io.size < kvik__cfg_u64(KVIK_CFG_GDS_THRESHOLD))
    return false;
  CUfileHandle_t h = kvik__file_gds(op->io.file);
  if (!h || kvik__cufile_get(&cf) != 0 || !cf->has_batch) {
    kvik__err_clear();
    return false;
  }
  const void *ptr = (const void *)((uintptr_t)op->io.buf + (uintptr_t)op->io.buf_offset);
  struct kvik__mem_info mi;
  if (kvik__mem_query(ptr, op->io.size, &mi) != 0 || mi.kind != KVIK_MEM_DEVICE || mi.pool ||
      !mi.range_known || kvik__mem_ctx(&mi, ctx) != 0) {
    kvik__err_clear();
    return false;
  }
  uintptr_t base = kvik__cufile_base((uintptr_t)ptr, op->io.size, (uintptr_t)mi.base);
  memset(p, 0, sizeof *p);
  p->mode = CUFILE_BATCH;
  p->u.batch.devPtr_base = (void *)base;
  p->u.batch.file_offset = (off_t)op->io.file_offset;
  p->u.batch.devPtr_offset = (off_t)((uintptr_t)ptr - base);
  p->u.batch.size = op->io.size;
  p->fh = h;
  p->opcode = op->io.opcode == KVIK_BATCH_WRITE ? CUFILE_WRITE : CUFILE_READ;
  p->cookie = (void *)(uintptr_t)((op->gen << 17) | op->index);
  return true;
}

/* Gives op to cuFile (cf_lock held). Returns 0, or a negative code (the caller runs it on the
 * pool instead). */
static int to_cufile(kvik_batch *b, struct bop *op, CUfileIOParams_t *p, CUcontext ctx) {
  const struct kvik__cufile_api *cf;
  const struct kvik__cuda_api *cu;
  int rc = kvik__cufile_get(&cf);
  if (rc || (rc = kvik__cuda_get(&cu)) != 0)
    return rc;
  if (!b->cf) {
    if (!kvik__cufile_hold())
      return kvik__err(KVIK_ENOCUFILE, "cuFile is no longer used (exiting)");
    CUfileBatchHandle_t h = NULL;
    CUfileError_t e = {CU_FILE_DRIVER_CLOSING, CUDA_SUCCESS};
    if (kvik__cufile_enter()) {
      e = cf->cuFileBatchIOSetUp(&h, b->max);
      kvik__cufile_leave();
    }
    if (e.err != CU_FILE_SUCCESS) {
      kvik__cufile_release();
      return kvik__cufile_fail(e, "cuFileBatchIOSetUp(%u)", b->max);
    }
    b->cf = h;
  }
  CUresult r = cu->cuCtxPushCurrent_v2(ctx);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuCtxPushCurrent_v2 (for cuFileBatchIOSubmit)");
  pthread_mutex_lock(&b->lock);
  op->state = S_CUFILE;
  b->cf_outstanding++;
  pthread_mutex_unlock(&b->lock);
  CUfileError_t e = {CU_FILE_DRIVER_CLOSING, CUDA_SUCCESS};
  if (kvik__cufile_enter()) {
    e = cf->cuFileBatchIOSubmit(b->cf, 1, p, 0);
    kvik__cufile_leave();
  }
  CUcontext dummy;
  cu->cuCtxPopCurrent_v2(&dummy);
  if (e.err != CU_FILE_SUCCESS) {
    pthread_mutex_lock(&b->lock);
    op->state = S_QUEUED;
    b->cf_outstanding--;
    pthread_mutex_unlock(&b->lock);
    return kvik__cufile_fail(e, "cuFileBatchIOSubmit");
  }
  return 0;
}

/* Checks operation i of a submission and takes a reference on its file (0), or returns the
 * code with the detail naming the operation, the field and why. Every field is checked before
 * anything is used: the buffer range [buf + buf_offset, + size) must not wrap around the address
 * space, and buf_offset + size and file_offset + size must fit in an int64_t. */
static int check_op(const struct kvik_batch_io *io, unsigned i) {
  char who[64];
  snprintf(who, sizeof who, "kvik_batch_submit: operation %u", i);
  if (io->opcode != KVIK_BATCH_READ && io->opcode != KVIK_BATCH_WRITE)
    return kvik__err(KVIK_EINVAL,
                     "%s: unknown opcode %d (KVIK_BATCH_READ is %d, KVIK_BATCH_WRITE is %d)", who,
                     io->opcode, KVIK_BATCH_READ, KVIK_BATCH_WRITE);
  int rc = kvik__file_get(io->file, who);
  if (rc)
    return rc;
  const char *path = kvik__file_path(io->file);
  uintptr_t buf = (uintptr_t)io->buf;
  long long boff = (long long)io->buf_offset, foff = (long long)io->file_offset;
  size_t size = io->size;
  if (!io->buf && size)
    rc = kvik__err(KVIK_EINVAL, "%s (%s): buf is NULL and size is %zu", who, path, size);
  else if (io->buf_offset < 0)
    rc = kvik__err(KVIK_EINVAL, "%s (%s): buf_offset %lld is negative", who, path, boff);
  else if (size > (size_t)INT64_MAX || io->buf_offset > INT64_MAX - (int64_t)size)
    rc = kvik__err(KVIK_EINVAL, "%s (%s): buf_offset %lld + size %zu overflows int64_t", who, path,
                   boff, size);
  else if ((uint64_t)io->buf_offset > UINTPTR_MAX - buf ||
           size > UINTPTR_MAX - (buf + (uintptr_t)io->buf_offset))
    rc = kvik__err(KVIK_EINVAL,
                   "%s (%s): buf %p + buf_offset %lld + size %zu wraps around the address space",
                   who, path, io->buf, boff, size);
  else if (io->file_offset < 0)
    rc = kvik__err(KVIK_EINVAL, "%s (%s): file_offset %lld is negative", who, path, foff);
  else if (io->file_offset > INT64_MAX - (int64_t)size)
    rc = kvik__err(KVIK_EINVAL, "%s (%s): file_offset %lld + size %zu overflows int64_t", who, path,
                   foff, size);
  else
    rc = kvik__file_check_io(io->file, (const void *)(buf + (uintptr_t)io->buf_offset), size,
                             io->file_offset, io->opcode == KVIK_BATCH_WRITE, who);
  if (rc)
    kvik__file_put(io->file);
  return rc;
}

/* Drops the file references check_op took for ops[0..n). */
static void put_files(const struct kvik_batch_io *ops, unsigned n) {
  for (unsigned i = 0; i < n; i++)
    kvik__file_put(ops[i].file);
}

static int batch_submit(kvik_batch *b, const struct kvik_batch_io *ops, unsigned n) {
  if (n == 0)
    return 0;
  if (!ops)
    return kvik__err(KVIK_EINVAL, "kvik_batch_submit: ops is NULL (n is %u)", n);
  if (n > b->max)
    return kvik__err(KVIK_EINVAL,
                     "kvik_batch_submit: %u operations, more than the batch holds (max_ops %u)", n,
                     b->max);
  for (unsigned i = 0; i < n; i++) {
    int rc = check_op(&ops[i], i);
    if (rc) {
      put_files(ops, i);
      return rc;
    }
  }

  /* Reserve n slots. */
  struct bop *mine[64], **list = n <= 64 ? mine : kvik__malloc(n * sizeof *list);
  if (!list) {
    put_files(ops, n);
    return kvik__err(-ENOMEM, "kvik_batch_submit: out of memory for %u operations", n);
  }
  pthread_mutex_lock(&b->lock);
  if (b->used + n > b->max) {
    unsigned used = b->used;
    pthread_mutex_unlock(&b->lock);
    if (list != mine)
      kvik__free(list);
    put_files(ops, n);
    return kvik__err(KVIK_EBUSY,
                     "kvik_batch_submit: the batch is full: %u of %u operations are submitted or "
                     "finished but not reaped; reap with kvik_batch_status() first",
                     used, b->max);
  }
  for (unsigned i = 0, j = 0; i < n; i++) {
    while (b->ops[j].state != S_FREE)
      j++;
    struct bop *op = &b->ops[j];
    op->io = ops[i];
    op->gen++;
    op->state = S_QUEUED;
    op->status = 0;
    op->result = 0;
    op->error[0] = '\0';
    list[i] = op;
  }
  b->used += n;
  pthread_mutex_unlock(&b->lock);

  /* cuFile first (one user of its batch handle at a time), then the pool. */
  pthread_mutex_lock(&b->cf_lock);
  for (unsigned i = 0; i < n; i++) {
    CUfileIOParams_t p;
    CUcontext ctx;
    if (!cufile_params(list[i], &p, &ctx))
      continue;
    if (to_cufile(b, list[i], &p, ctx) == 0)
      list[i] = NULL;
    else
      kvik__log(KVIK_LOG_DEBUG, "kvik_batch_submit: operation %u runs on the pool: %s", i,
                kvik_last_error());
  }
  pthread_mutex_unlock(&b->cf_lock);
  for (unsigned i = 0; i < n; i++)
    if (list[i])
      to_pool(list[i]);
  if (list != mine)
    kvik__free(list);
  kvik__err_clear();
  return 0;
}

int kvik_batch_submit(kvik_batch *b, const struct kvik_batch_io *ops, unsigned n) {
  int rc = batch_get(b, "kvik_batch_submit");
  if (rc)
    return rc;
  rc = batch_submit(b, ops, n);
  batch_unref(b);
  return rc;
}

/* The result of a cuFile batch event as kvik reports it. */
static void cufile_event(kvik_batch *b, const CUfileIOEvents_t *ev) {
  uintptr_t cookie = (uintptr_t)ev->cookie;
  unsigned index = (unsigned)(cookie & ((1u << 17) - 1));
  if (index >= b->max)
    return;
  struct bop *op = &b->ops[index];
  pthread_mutex_lock(&b->lock);
  if (op->state != S_CUFILE || (op->gen & (UINTPTR_MAX >> 17)) != cookie >> 17) {
    pthread_mutex_unlock(&b->lock); /* an earlier use of the slot, canceled by kvik */
    return;
  }
  ssize_t ret = (ssize_t)ev->ret;
  char msg[256] = "";
  int status = KVIK_BATCH_COMPLETE;
  const char *what = op->io.opcode == KVIK_BATCH_WRITE ? "write" : "read";
  if (ev->status == CUFILE_CANCELED) {
    status = KVIK_BATCH_CANCELED;
    ret = KVIK_ECANCELED;
    snprintf(msg, sizeof msg, "canceled");
  } else if (ev->status != CUFILE_COMPLETE || ret < 0) {
    status = KVIK_BATCH_FAILED;
    int code = ret == -1                                ? -EIO
               : ret <= -CU_FILE_DRIVER_NOT_INITIALIZED ? KVIK_ECUFILE
               : ret < 0                                ? (int)ret
                                                        : KVIK_ECUFILE;
    if (code == KVIK_ECUFILE)
      snprintf(msg, sizeof msg,
               "cuFile batch %s %s: %zu bytes at offset %lld: %s (status %d, ret %zd)", what,
               kvik__file_path(op->io.file), op->io.size, (long long)op->io.file_offset,
               ret < 0 ? kvik__cufile_errname((int)-ret) : "failed", (int)ev->status, ret);
    else
      snprintf(msg, sizeof msg, "cuFile batch %s %s: %zu bytes at offset %lld: %s", what,
               kvik__file_path(op->io.file), op->io.size, (long long)op->io.file_offset,
               kvik__errno_text(-code));
    ret = code;
  }
  b->cf_outstanding--;
  done_locked(op, status, ret, msg);
  pthread_mutex_unlock(&b->lock);
}

/* Collects what cuFile has finished, without waiting (cf_lock held). */
static void cufile_poll(kvik_batch *b) {
  pthread_mutex_lock(&b->lock);
  unsigned out = b->cf_outstanding;
  pthread_mutex_unlock(&b->lock);
  const struct kvik__cufile_api *cf;
  if (!b->cf || out == 0 || kvik__cufile_get(&cf) != 0)
    return;
  CUfileIOEvents_t evs[64];
  for (;;) {
    unsigned k = out < 64 ? out : 64;
    struct timespec zero = {0, 0};
    CUfileError_t e = {CU_FILE_DRIVER_CLOSING, CUDA_SUCCESS};
    if (kvik__cufile_enter()) {
      e = cf->cuFileBatchIOGetStatus(b->cf, 0, &k, evs, &zero);
      kvik__cufile_leave();
    }
    if (e.err != CU_FILE_SUCCESS) {
      kvik__log(KVIK_LOG_WARN, "cuFileBatchIOGetStatus: %s (%d)", kvik__cufile_errname(e.err),
                (int)e.err);
      return;
    }
    for (unsigned i = 0; i < k; i++)
      cufile_event(b, &evs[i]);
    if (k < 64)
      return;
  }
}

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Copies up to *nr finished operations' events and frees their slots; their file references
 * are dropped outside the lock (the last one closes a file, which may log). */
static void reap(kvik_batch *b, unsigned *nr, struct kvik_batch_event *events) {
  unsigned got = 0, i = 0;
  for (;;) {
    kvik_file *files[64];
    unsigned nfiles = 0;
    pthread_mutex_lock(&b->lock);
    for (; i < b->max && got < *nr && nfiles < 64; i++) {
      struct bop *op = &b->ops[i];
      if (op->state != S_DONE)
        continue;
      struct kvik_batch_event *ev = &events[got++];
      ev->cookie = op->io.cookie;
      ev->status = op->status;
      ev->result = op->result;
      memcpy(ev->error, op->error, sizeof ev->error);
      op->state = S_FREE;
      b->used--;
      files[nfiles++] = op->io.file;
    }
    pthread_mutex_unlock(&b->lock);
    for (unsigned k = 0; k < nfiles; k++)
      kvik__file_put(files[k]);
    if (nfiles < 64)
      break;
  }
  *nr = got;
}

static int batch_status(kvik_batch *b, unsigned min_nr, unsigned *nr,
                        struct kvik_batch_event *events, int64_t timeout_ms) {
  if (!nr)
    return kvik__err(KVIK_EINVAL, "kvik_batch_status: nr is NULL");
  if (*nr && !events)
    return kvik__err(KVIK_EINVAL, "kvik_batch_status: events is NULL");
  if (min_nr > *nr)
    return kvik__err(KVIK_EINVAL,
                     "kvik_batch_status: min_nr %u is larger than *nr %u (the room "
                     "in events)",
                     min_nr, *nr);
  pthread_mutex_lock(&b->lock);
  unsigned used = b->used;
  pthread_mutex_unlock(&b->lock);
  if (min_nr > used)
    return kvik__err(KVIK_EINVAL,
                     "kvik_batch_status: min_nr %u, but only %u operations are "
                     "outstanding",
                     min_nr, used);
  int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ns() + timeout_ms * 1000000;
  int64_t nap = 20000; /* polling interval while cuFile has operations: 20 us, growing */
  pthread_mutex_lock(&b->cf_lock);
  for (;;) {
    cufile_poll(b);
    pthread_mutex_lock(&b->lock);
    unsigned ready = 0;
    for (unsigned i = 0; i < b->max; i++)
      ready += b->ops[i].state == S_DONE;
    int64_t now = now_ns();
    if (ready >= min_nr || now >= deadline) {
      pthread_mutex_unlock(&b->lock);
      break;
    }
    /* Pool operations signal cv; cuFile's are polled, so wait at most a short nap for them. */
    int64_t until = deadline;
    if (b->cf_outstanding > 0 && now + nap < until)
      until = now + nap;
    nap = nap < 1000000 ? nap * 2 : nap;
    if (until == INT64_MAX) {
      pthread_cond_wait(&b->cv, &b->lock);
    } else {
      struct timespec abs = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
      pthread_cond_timedwait(&b->cv, &b->lock, &abs);
    }
    pthread_mutex_unlock(&b->lock);
  }
  pthread_mutex_unlock(&b->cf_lock);
  reap(b, nr, events);
  return 0;
}

int kvik_batch_status(kvik_batch *b, unsigned min_nr, unsigned *nr, struct kvik_batch_event *events,
                      int64_t timeout_ms) {
  int rc = batch_get(b, "kvik_batch_status");
  if (rc)
    return rc;
  rc = batch_status(b, min_nr, nr, events, timeout_ms);
  batch_unref(b);
  return rc;
}

/* Cancels what has not started (cf_lock held): pool operations still queued are finished as
 * canceled now; cuFile is asked to cancel its operations, which then report what cuFile says
 * (canceled, or complete where they had finished), so a buffer is never reported free while
 * cuFile may still write it. */
static void cancel_locked(kvik_batch *b) {
  pthread_mutex_lock(&b->lock);
  for (unsigned i = 0; i < b->max; i++)
    if (b->ops[i].state == S_QUEUED)
      done_locked(&b->ops[i], KVIK_BATCH_CANCELED, KVIK_ECANCELED, "canceled");
  unsigned out = b->cf_outstanding;
  pthread_mutex_unlock(&b->lock);
  const struct kvik__cufile_api *cf;
  if (!b->cf || out == 0 || kvik__cufile_get(&cf) != 0)
    return;
  if (kvik__cufile_enter()) {
    CUfileError_t e = cf->cuFileBatchIOCancel(b->cf);
    kvik__cufile_leave();
    if (e.err != CU_FILE_SUCCESS)
      kvik__log(KVIK_LOG_WARN, "cuFileBatchIOCancel: %s (%d)", kvik__cufile_errname(e.err),
                (int)e.err);
  }
  cufile_poll(b);
}

int kvik_batch_cancel(kvik_batch *b) {
  int rc = batch_get(b, "kvik_batch_cancel");
  if (rc)
    return rc;
  pthread_mutex_lock(&b->cf_lock);
  cancel_locked(b);
  pthread_mutex_unlock(&b->cf_lock);
  batch_unref(b);
  return 0;
}

int kvik_batch_destroy(kvik_batch *b) {
  if (!b)
    return 0;
  /* Out of the set first: from now on the batch is refused on entry. */
  if (!kvik__handle_take(b, KVIK_MAGIC_BATCH))
    return kvik__err(KVIK_EMISUSE,
                     "kvik_batch_destroy: %p is not a live kvik batch (destroyed already, or "
                     "never a kvik_batch)",
                     (void *)b);
  pthread_mutex_lock(&b->cf_lock);
  cancel_locked(b);
  if (b->cf) {
    /* cuFileBatchIODestroy ends cuFile's part: nothing of it runs afterwards. */
    const struct kvik__cufile_api *cf;
    if (kvik__cufile_get(&cf) == 0 && kvik__cufile_enter()) {
      cf->cuFileBatchIODestroy(b->cf);
      kvik__cufile_leave();
    }
    b->cf = NULL;
    kvik__cufile_release();
    pthread_mutex_lock(&b->lock);
    for (unsigned i = 0; i < b->max; i++)
      if (b->ops[i].state == S_CUFILE)
        done_locked(&b->ops[i], KVIK_BATCH_CANCELED, KVIK_ECANCELED, "canceled");
    b->cf_outstanding = 0;
    pthread_mutex_unlock(&b->lock);
  }
  pthread_mutex_unlock(&b->cf_lock);
  /* Operations already running on the pool use the caller's buffers: wait for them. Queued
   * ones were canceled and only drop their reference when they run. */
  pthread_mutex_lock(&b->lock);
  b->destroyed = true;
  while (b->running > 0)
    pthread_cond_wait(&b->cv, &b->lock);
  pthread_mutex_unlock(&b->lock);
  batch_unref(b);
  kvik__err_clear();
  return 0;
}
