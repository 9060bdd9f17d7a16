/* Thread pools and futures (internal side). A parallel operation is a range of task-size
 * chunks; workers claim chunks with an atomic counter, so the queue holds at most one entry
 * per worker per operation, and no worker ever waits on another task. */
#ifndef KVIK_POOL_H
#define KVIK_POOL_H

#include "core/core.h"

#include <stdint.h>
#include <sys/types.h>

/* Does one chunk: len bytes at file offset off, buffer address buf. Returns bytes done (short
 * only at end of file) or a negative code with this thread's detail set. */
typedef ssize_t (*kvik__chunk_fn)(void *ctx, uintptr_t buf, size_t len, int64_t off);

/* Splits [off, off+size) into task_size chunks run by fn on pool; *out gets the future.
 * ctx_size bytes at ctx (at most KVIK_FUTURE_CTX_MAX) are copied into the future, and fn gets
 * a pointer to that copy. size 0 gives a future that is already done with result 0. */
#define KVIK_FUTURE_CTX_MAX 256
/* Finishes the work a worker's chunks left in flight (device copies); called by each worker
 * once after its run of consecutive chunks, before they count as done. 0 or a negative code
 * with the detail set (the error is given to the first chunk of the run). */
typedef int (*kvik__flush_fn)(void *ctx);
/* Lets go of what ctx holds (a reference on the file): called once when the operation is over,
 * by the worker that finished its last chunk, before the future is marked done (so a waiter
 * finds it released), or before kvik__pool_submit_range returns for size 0. Never called when
 * kvik__pool_submit_range fails: the caller still owns what ctx holds then. */
typedef void (*kvik__release_fn)(void *ctx);
int kvik__pool_submit_range(kvik_pool *pool, kvik__chunk_fn fn, kvik__flush_fn flush,
                            kvik__release_fn release, const void *ctx, size_t ctx_size,
                            uintptr_t buf, size_t size, int64_t off, size_t task_size,
                            kvik_future **out);

/* A future completed by hand (batch, stream-ordered work): created pending; complete it once
 * with kvik__future_complete. The creator holds one reference for the completer and the
 * caller gets the other. */
int kvik__future_new(kvik_future **out);
void kvik__future_complete(kvik_future *fut, ssize_t result, const char *errmsg);

/* Runs fn(arg) on the pool. 0 or a negative code (out of memory, no worker could start). */
int kvik__pool_submit(kvik_pool *pool, void (*fn)(void *), void *arg);
/* Starts the pool's workers now, up to its size (they otherwise start on the first submission):
 * kvik_prepare. 0, or a negative code with the detail set when not one worker could start
 * (workers that did start stay, the rest start on the next submission). */
int kvik__pool_start(kvik_pool *pool);

/* The pool serving a block device (KVIKIO_THREAD_POOL_PER_BLOCK_DEVICE): one per disk,
 * created on first use; NULL dev (0) or any failure gives the default pool. */
int kvik__pool_for_device(unsigned dev_major, unsigned dev_minor, kvik_pool **out);

/* 0 if p is a live pool, else KVIK_EINVAL/KVIK_EMISUSE with the detail naming fn. */
int kvik__pool_check(kvik_pool *p, const char *fn);

/* Registers fn to run on every pool worker right before it exits (pool resized down or
 * destroyed), after its last item, while the thread is still fully alive: for per-thread
 * resources that must not be released from a thread-exit destructor (CUDA streams: the driver
 * may already have torn down its own state for the thread). Hooks run on every worker that exits
 * after registration, in registration order; registering fn again is a no-op. At most 4 hooks.
 * 0, or KVIK_EINTERNAL with the detail set when the table is full. */
int kvik__pool_on_worker_exit(void (*fn)(void));

/* The pool the calling thread is a worker of, or NULL. */
kvik_pool *kvik__pool_current(void);

#endif
