/* Device memory I/O without GDS: a pipeline through pinned bounce buffers.
 *
 * One call moves one range (a task-size chunk of a parallel operation, or a whole blocking
 * read). The range is cut into pieces; a pinned, page-aligned bounce buffer from the pool is
 * split into two halves, and while one half's piece is copied to the device on this thread's
 * stream, the next piece is read from the file into the other half (writes run the same
 * pipeline backwards: the next piece is copied from the device while this one is written).
 * Reads into the halves go through kvik__posix_read, so they use O_DIRECT where the settings
 * and the file allow (the halves are page-aligned).
 *
 * Streams and events are per thread and per context, created on first use and reused by every
 * later call on that thread: never one per chunk. They are blocking streams, ordered after the
 * caller's work on the legacy default stream (see thread_stream). The owning context is pushed for
 * the call and popped after, so the caller's current context is left as it was.
 *
 * No driver call is ever made from a thread that is exiting: CUDA does not promise that calls
 * from a thread-exit destructor work (its own per-thread state is torn down at thread exit, by a
 * destructor that runs before kvik's), and on an H200 destroying streams from kvik's destructor
 * crashed in cuStreamDestroy_v2 when the pool shrank. So a pool worker gives its streams back
 * before it leaves its loop (a worker exit hook), and any other thread's streams are only put on
 * an orphan list by the thread-exit destructor; the next device I/O on any thread destroys them.
 * At process exit they are left to the driver, like every CUDA object kvik holds then
 * (kvik__cuda_gone).
 */
#include "gpu/devio.h"

#include "core/core.h"
#include "gpu/cuda.h"
#include "pool/bounce.h"
#include "pool/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* ---- pinned bounce buffers ---------------------------------------------------------------- */

static int pinned_alloc(size_t size, void **out, void *ctx) {
  (void)ctx;
  const struct kvik__cuda_api *cu;
  int rc = kvik__cuda_get(&cu);
  if (rc)
    return rc;
  /* cuMemHostAlloc needs a current context; PORTABLE makes the buffer pinned for all of them. */
  CUcontext cur = NULL;
  bool pushed = false;
  if (cu->cuCtxGetCurrent(&cur) != CUDA_SUCCESS || !cur) {
    CUcontext primary;
    if ((rc = kvik__cuda_primary_ctx(0, &primary)) != 0)
      return rc;
    CUresult r = cu->cuCtxPushCurrent_v2(primary);
    if (r != CUDA_SUCCESS)
      return kvik__cuda_fail(r, "cuCtxPushCurrent_v2 (for a pinned bounce buffer)");
    pushed = true;
  }
  void *p = NULL;
  CUresult r = cu->cuMemHostAlloc(&p, size, CU_MEMHOSTALLOC_PORTABLE);
  if (pushed) {
    CUcontext dummy;
    cu->cuCtxPopCurrent_v2(&dummy);
  }
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuMemHostAlloc (pinned bounce buffer of %zu bytes)", size);
  *out = p;
  return 0;
}

static void pinned_free(void *p, size_t size, void *ctx) {
  (void)size;
  (void)ctx;
  const struct kvik__cuda_api *cu;
  /* At exit the driver may be gone: leak rather than call it. */
  if (kvik__cuda_gone() || kvik__cuda_get(&cu) != 0)
    return;
  cu->cuMemFreeHost(p);
}

static pthread_once_t pinned_once = PTHREAD_ONCE_INIT;
static void install_pinned(void) {
  static const struct kvik__bounce_alloc a = {pinned_alloc, pinned_free, NULL};
  kvik__bounce_set_allocator(&a);
}

int kvik__dev_prepare(int device, size_t nbuf) {
  const struct kvik__cuda_api *cu;
  int rc = kvik__cuda_get(&cu);
  if (rc)
    return rc;
  CUcontext ctx;
  if ((rc = kvik__cuda_primary_ctx(device, &ctx)) != 0)
    return rc;
  pthread_once(&pinned_once, install_pinned);
  /* With the device's context current, pinned_alloc pins there rather than on device 0's. */
  CUresult r = cu->cuCtxPushCurrent_v2(ctx);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuCtxPushCurrent_v2 (device %d's primary context)", device);
  rc = kvik__bounce_fill(KVIK__BOUNCE_PIPE, nbuf);
  CUcontext dummy;
  cu->cuCtxPopCurrent_v2(&dummy);
  return rc;
}

/* ---- per-thread streams ------------------------------------------------------------------- */

#define STREAMS_PER_THREAD 8

struct tstream {
  CUcontext ctx;
  CUstream stream;
  CUevent ev[2];
};

/* This thread's streams, one per context it has done device I/O on. Only this thread uses
 * them while it runs. A pool worker releases them itself before it exits (streams_release_mine);
 * for any other thread the key's destructor hands them to the orphan list. */
struct tstreams {
  struct tstream s[STREAMS_PER_THREAD];
  int n;
  struct tstreams *next_orphan;
};
static _Thread_local struct tstreams *my_streams;
static pthread_key_t streams_key;
static pthread_once_t streams_once = PTHREAD_ONCE_INIT;

/* Streams of threads that exited, waiting for a live thread to destroy them. A lock-free stack:
 * destructors push, orphans_release takes the whole list at once (so no ABA problem), and no
 * lock is ever taken in a thread-exit destructor. */
static struct tstreams *_Atomic orphans;

static void release_stream(const struct kvik__cuda_api *cu, struct tstream *t) {
  if (kvik__cuda_gone())
    return;
  if (cu->cuCtxPushCurrent_v2(t->ctx) != CUDA_SUCCESS)
    return;
  cu->cuStreamDestroy_v2(t->stream);
  cu->cuEventDestroy_v2(t->ev[0]);
  cu->cuEventDestroy_v2(t->ev[1]);
  CUcontext dummy;
  cu->cuCtxPopCurrent_v2(&dummy);
}

/* Destroys ts's streams and events (on a live thread) and frees it. */
static void streams_release(struct tstreams *ts) {
  const struct kvik__cuda_api *cu;
  if (!kvik__cuda_gone() && kvik__cuda_get(&cu) == 0)
    for (int i = 0; i < ts->n; i++)
      release_stream(cu, &ts->s[i]);
  kvik__free(ts);
}

/* The key's destructor, at the exit of a thread that is not a pool worker: no driver call here
 * (the driver may already have torn down its state for this thread), only a push. */
static void streams_orphan(void *p) {
  struct tstreams *ts = p;
  ts->next_orphan = atomic_load_explicit(&orphans, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(&orphans, &ts->next_orphan, ts,
                                                memory_order_release, memory_order_relaxed))
    ;
}

/* Destroys the streams of threads that have exited. Called by device I/O on a live thread. */
static void orphans_release(void) {
  if (!atomic_load_explicit(&orphans, memory_order_relaxed))
    return;
  struct tstreams *ts = atomic_exchange_explicit(&orphans, NULL, memory_order_acquire);
  while (ts) {
    struct tstreams *next = ts->next_orphan;
    streams_release(ts);
    ts = next;
  }
}

/* A pool worker's exit hook: this thread's streams go while it is still fully alive. */
static void streams_release_mine(void) {
  struct tstreams *ts = my_streams;
  if (!ts)
    return;
  kvik__dev_flush(); /* nothing is open after a worker's last item; this only makes sure */
  my_streams = NULL;
  pthread_setspecific(streams_key, NULL); /* so the destructor does not see them */
  streams_release(ts);
}

static void streams_key_init(void) {
  pthread_key_create(&streams_key, streams_orphan);
  /* Cannot fail: devio is the only user of the hook table's few slots. */
  (void)kvik__pool_on_worker_exit(streams_release_mine);
}

/* The stream and events of this thread for ctx (which is current). */
static int thread_stream(const struct kvik__cuda_api *cu, CUcontext ctx, struct tstream **out) {
  pthread_once(&streams_once, streams_key_init);
  struct tstreams *ts = my_streams;
  if (!ts) {
    ts = kvik__calloc(1, sizeof *ts);
    if (!ts)
      return kvik__err(-ENOMEM, "device I/O: out of memory for the thread's streams");
    my_streams = ts;
    pthread_setspecific(streams_key, ts);
  }
  for (int i = 0; i < ts->n; i++)
    if (ts->s[i].ctx == ctx) {
      *out = &ts->s[i];
      return 0;
    }
  /* A thread that has used many contexts gives back its oldest stream. */
  if (ts->n == STREAMS_PER_THREAD) {
    release_stream(cu, &ts->s[0]);
    memmove(&ts->s[0], &ts->s[1], (STREAMS_PER_THREAD - 1) * sizeof ts->s[0]);
    ts->n--;
  }
  struct tstream t = {.ctx = ctx};
  /* A blocking stream (not CU_STREAM_NON_BLOCKING): its copies wait for work the caller queued
   * on the context's legacy default stream, as a plain cuMemcpy would. A caller that fills a
   * buffer with cuMemsetD8 or a pageable cuMemcpyHtoD (both may return before the device is
   * done) and then hands it to kvik gets the bytes it wrote; on the GPU, a non-blocking stream
   * let kvik's copies overtake them. */
  CUresult r = cu->cuStreamCreate(&t.stream, CU_STREAM_DEFAULT);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuStreamCreate (device I/O stream)");
  if ((r = cu->cuEventCreate(&t.ev[0], CU_EVENT_DISABLE_TIMING)) != CUDA_SUCCESS) {
    cu->cuStreamDestroy_v2(t.stream);
    return kvik__cuda_fail(r, "cuEventCreate");
  }
  if ((r = cu->cuEventCreate(&t.ev[1], CU_EVENT_DISABLE_TIMING)) != CUDA_SUCCESS) {
    cu->cuEventDestroy_v2(t.ev[0]);
    cu->cuStreamDestroy_v2(t.stream);
    return kvik__cuda_fail(r, "cuEventCreate");
  }
  ts->s[ts->n] = t;
  *out = &ts->s[ts->n++];
  return 0;
}

/* ---- the pipeline ------------------------------------------------------------------------- */

/* Piece size: KVIK_DEVIO_PIECE, 1 MiB (or the half, if smaller; the pipeline takes buffers of two
 * pieces, KVIK__BOUNCE_PIPE). Measured on an H200 host (bench/exp_piece.sh,
 * 8 GiB hot read, 16 threads): 128 KiB pieces gave 14 GB/s, 256 KiB 18, 512 KiB 26, 1 MiB 39
 * (before reads were pipelined across chunks); a piece that grows with the task (4 MiB pieces
 * for 16 MiB tasks) waits longer for its last copy. */
static size_t piece_size(size_t size, size_t half) {
  (void)size;
  size_t page = kvik__page_size();
  size_t p = (KVIK_DEVIO_PIECE + page - 1) / page * page;
  return KVIK_MIN(p, half);
}

struct pipe {
  const struct kvik__cuda_api *cu;
  struct tstream *ts;
  struct kvik__bounce b;
  char *half[2];
  size_t piece;
};

/* Pushes ctx, gets the thread's stream and a bounce buffer. On failure nothing is held. */
static int pipe_begin(struct pipe *p, CUcontext ctx, size_t size) {
  memset(p, 0, sizeof *p);
  int rc = kvik__cuda_get(&p->cu);
  if (rc)
    return rc;
  orphans_release();
  pthread_once(&pinned_once, install_pinned);
  CUresult r = p->cu->cuCtxPushCurrent_v2(ctx);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuCtxPushCurrent_v2 (the buffer's context)");
  if ((rc = thread_stream(p->cu, ctx, &p->ts)) != 0 ||
      (rc = kvik__bounce_get_class(&p->b, KVIK__BOUNCE_PIPE)) != 0) {
    CUcontext dummy;
    p->cu->cuCtxPopCurrent_v2(&dummy);
    return rc;
  }
  size_t page = kvik__page_size();
  size_t half = p->b.size / 2 / page * page;
  if (half == 0) { /* a one-page bounce buffer: no double buffering, one piece at a time */
    half = p->b.size;
    p->half[0] = p->half[1] = p->b.ptr;
  } else {
    p->half[0] = p->b.ptr;
    p->half[1] = (char *)p->b.ptr + half;
  }
  p->piece = piece_size(size, half);
  return 0;
}

/* Waits for the stream (copies may still read or write the bounce buffer), gives the buffer
 * back and pops the context. Returns rc, or the stream's error if rc was 0. */
static ssize_t pipe_end(struct pipe *p, ssize_t rc) {
  CUresult r = p->cu->cuStreamSynchronize(p->ts->stream);
  if (r != CUDA_SUCCESS && rc >= 0)
    rc = kvik__cuda_fail(r, "cuStreamSynchronize (device I/O stream)");
  kvik__bounce_put(&p->b);
  CUcontext dummy;
  p->cu->cuCtxPopCurrent_v2(&dummy);
  return rc;
}

/* Pieces end on file-page boundaries: piece 0 is [off, align_down(off) + piece), every later
 * piece starts page-aligned in the file and at the start of its half, and piece 0 starts in its
 * half at off's offset within its page. So a bounce-buffer address and the file offset it
 * belongs to are congruent modulo the page size, and kvik__posix_read/write can move the
 * aligned middle with O_DIRECT straight from the half: they never need a second bounce buffer.
 * (A second one, taken while this one is held, deadlocks once every buffer the pool allows is
 * held by a worker waiting for another.) */
static size_t piece_first(const struct pipe *p, int64_t off) {
  return p->piece - (size_t)((uint64_t)off % kvik__page_size());
}

/* Start (relative to the range) and length of piece i; length 0 past the end. */
static void piece_at(const struct pipe *p, int64_t off, size_t size, size_t i, size_t *pos,
                     size_t *len) {
  size_t first = piece_first(p, off);
  size_t start = i == 0 ? 0 : first + (i - 1) * p->piece;
  *pos = start;
  *len = start >= size ? 0 : KVIK_MIN(i == 0 ? first : p->piece, size - start);
}

/* Where piece i starts in its half. */
static size_t piece_shift(size_t i, int64_t off) {
  return i == 0 ? (size_t)((uint64_t)off % kvik__page_size()) : 0;
}

/* Reads piece [o, o + len) into half + at (at == o % page). With
 * KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD, the whole pages around the piece are read with O_DIRECT
 * into the half (the pieces leave room for them) rather than letting kvik__posix_read take a
 * second bounce buffer for the partial pages. Returns the bytes of the piece read. */
static ssize_t read_piece(const struct kvik__fds *f, char *half, size_t at, size_t len, int64_t o) {
  if (!(f->overread && f->direct_read && f->fd_direct >= 0))
    return kvik__posix_read(f, half + at, len, o);
  size_t page = kvik__page_size();
  struct kvik__fds whole = *f;
  whole.overread = false;
  size_t rlen = (at + len + page - 1) / page * page;
  ssize_t n = kvik__posix_read(&whole, half, rlen, o - (int64_t)at);
  if (n < 0)
    return n;
  size_t avail = (size_t)n > at ? (size_t)n - at : 0;
  return (ssize_t)KVIK_MIN(avail, len);
}

/* This thread's open read pipeline: kept between the chunks of one parallel read, so the copy
 * of a chunk's last piece overlaps the reading of the next chunk instead of being waited for.
 * Opened by the first chunk, closed by kvik__dev_flush (the pool calls it once per run of
 * chunks). Only this thread touches it. */
struct rpipe {
  bool open;
  CUcontext ctx;
  struct pipe p;
  bool pending[2]; /* an async copy out of half h may still run (event ev[h] recorded) */
  unsigned next;   /* the half the next piece goes to */
};
static _Thread_local struct rpipe my_rpipe;

int kvik__dev_flush(void) {
  struct rpipe *rp = &my_rpipe;
  if (!rp->open)
    return 0;
  rp->open = false;
  return (int)pipe_end(&rp->p, 0);
}

ssize_t kvik__dev_read_chunk(const struct kvik__fds *f, CUcontext ctx, uint64_t dst, size_t size,
                             int64_t off) {
  struct rpipe *rp = &my_rpipe;
  if (rp->open && rp->ctx != ctx) {
    int rc = kvik__dev_flush();
    if (rc)
      return rc;
  }
  if (!rp->open) {
    int rc = pipe_begin(&rp->p, ctx, size);
    if (rc)
      return rc;
    rp->open = true;
    rp->ctx = ctx;
    rp->pending[0] = rp->pending[1] = false;
    rp->next = 0;
  }
  struct pipe *p = &rp->p;
  p->piece =
      piece_size(size, p->half[1] == p->half[0] ? p->b.size : (size_t)(p->half[1] - p->half[0]));
  /* With a one-page bounce buffer both halves are the same memory: every piece must wait for
   * the previous piece's copy, so all pieces use slot 0 (its event and pending flag). */
  bool single = p->half[0] == p->half[1];
  size_t done = 0;
  for (size_t i = 0; done < size; i++) {
    unsigned h = single ? 0 : rp->next;
    rp->next ^= 1u;
    size_t pos, len, at = piece_shift(i, off);
    piece_at(p, off, size, i, &pos, &len);
    if (rp->pending[h]) {
      CUresult r = p->cu->cuEventSynchronize(p->ts->ev[h]);
      if (r != CUDA_SUCCESS)
        return kvik__cuda_fail(r, "cuEventSynchronize (copy to device at %#llx)",
                               (unsigned long long)(dst + done));
      rp->pending[h] = false;
    }
    ssize_t n = read_piece(f, p->half[h], at, len, off + (int64_t)pos);
    if (n < 0)
      return n;
    if (n > 0) {
      CUresult r =
          p->cu->cuMemcpyHtoDAsync_v2(dst + done, p->half[h] + at, (size_t)n, p->ts->stream);
      if (r == CUDA_SUCCESS)
        r = p->cu->cuEventRecord(p->ts->ev[h], p->ts->stream);
      if (r != CUDA_SUCCESS)
        return kvik__cuda_fail(r, "cuMemcpyHtoDAsync_v2 (%zd bytes of %s at offset %lld to %#llx)",
                               n, f->path, (long long)(off + (int64_t)done),
                               (unsigned long long)(dst + done));
      rp->pending[h] = true;
    }
    done += (size_t)n;
    if ((size_t)n < len)
      break; /* end of file */
  }
  return (ssize_t)done;
}

ssize_t kvik__dev_read(const struct kvik__fds *f, CUcontext ctx, uint64_t dst, size_t size,
                       int64_t off) {
  ssize_t n = kvik__dev_read_chunk(f, ctx, dst, size, off);
  int rc = kvik__dev_flush();
  return n < 0 ? n : rc < 0 ? rc : n;
}

ssize_t kvik__dev_write(const struct kvik__fds *f, CUcontext ctx, uint64_t src, size_t size,
                        int64_t off) {
  struct pipe p;
  int rc = pipe_begin(&p, ctx, size);
  if (rc)
    return rc;
  size_t first = piece_first(&p, off);
  size_t npieces = size <= first ? 1 : 1 + (size - first + p.piece - 1) / p.piece;
  bool single = p.half[0] == p.half[1];
  ssize_t result = 0;
  /* Copy piece i+1 from the device while piece i is written. With a one-page bounce buffer
   * both halves are one buffer, so the next copy waits for the write. */
  for (size_t i = 0; i < npieces; i++) {
    size_t pos, len, at = piece_shift(i, off);
    piece_at(&p, off, size, i, &pos, &len);
    unsigned h = (unsigned)(i % 2);
    CUresult r = CUDA_SUCCESS;
    if (i == 0 || single)
      r = p.cu->cuMemcpyDtoHAsync_v2(p.half[h] + at, src + pos, len, p.ts->stream);
    if (r == CUDA_SUCCESS && i == 0 && !single)
      r = p.cu->cuEventRecord(p.ts->ev[h], p.ts->stream);
    if (r == CUDA_SUCCESS && !single && i + 1 < npieces) {
      size_t npos, nlen;
      piece_at(&p, off, size, i + 1, &npos, &nlen);
      r = p.cu->cuMemcpyDtoHAsync_v2(p.half[1 - h], src + npos, nlen, p.ts->stream);
      if (r == CUDA_SUCCESS)
        r = p.cu->cuEventRecord(p.ts->ev[1 - h], p.ts->stream);
    }
    if (r != CUDA_SUCCESS) {
      result = kvik__cuda_fail(r, "cuMemcpyDtoHAsync_v2 (%zu bytes from %#llx for %s)", len,
                               (unsigned long long)(src + pos), f->path);
      break;
    }
    r = single ? p.cu->cuStreamSynchronize(p.ts->stream) : p.cu->cuEventSynchronize(p.ts->ev[h]);
    if (r != CUDA_SUCCESS) {
      result = kvik__cuda_fail(r, "waiting for the copy from device at %#llx",
                               (unsigned long long)(src + pos));
      break;
    }
    ssize_t n = kvik__posix_write(f, p.half[h] + at, len, off + (int64_t)pos);
    if (n < 0) {
      result = n;
      break;
    }
  }
  return pipe_end(&p, result < 0 ? result : (ssize_t)size);
}
