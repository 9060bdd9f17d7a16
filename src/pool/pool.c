/* Thread pools and futures.
 *
 * A pool is a FIFO of (fn, arg) items and a set of joinable workers started lazily up to the
 * target count. A parallel I/O operation is one future that holds the whole range; the pool
 * gets one queue item per worker that should join in, and each item claims chunks from the
 * future's atomic counter. After each chunk a worker moves its item to the back of the queue
 * when other work is waiting, so concurrent operations share the workers fairly. No task ever
 * waits for another task, so submitting from inside a task cannot deadlock, and waiting on a
 * future never occupies a worker.
 *
 * fork(): an atfork handler holds every pool's lock across fork(), so the child inherits a
 * consistent queue. The child has no workers (threads do not survive fork); they are started
 * again by the next submission. The child re-initializes each pool's condition variable and
 * resize lock: the parent's idle workers were waiting on the condition variable, and glibc keeps
 * their waiter state inside it, so in the child a signal could go to a waiter that no longer
 * exists and the new worker it was meant for sleeps on (the child's second parallel read hung).
 * Futures made before fork() belong to the parent: their chunks may be held by workers that do
 * not exist in the child and their locks by threads that do not either, so the child never
 * touches them: a fork generation, bumped in the child, marks them, waiting on one fails with
 * KVIK_ECANCELED, and queued chunk items of such a future are dropped. Other queued items (plain
 * kvik__pool_submit work) run in the child.
 */
#include "pool/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct item {
  void (*fn)(void *);
  void *arg;
};

struct kvik_pool {
  struct kvik__handle h;  /* the handle set's header (refs unused: a pool is freed by destroy) */
  pthread_mutex_t lock;   /* guards every field below except resize_lock */
  pthread_cond_t work_cv; /* signalled when an item is queued or workers must exit */
  struct item *q;         /* ring buffer of qcap items, qlen of them from qhead */
  size_t qcap, qhead, qlen;
  unsigned target;  /* workers wanted */
  unsigned started; /* workers started (threads[0..started-1] are joinable) */
  size_t threads_cap;
  pthread_t *threads;
  bool stopping; /* destroy in progress: workers drain the queue and exit */
  bool is_default;
  pthread_mutex_t resize_lock; /* serializes resize and destroy (which join workers) */
  struct kvik_pool *next;      /* in all_pools, guarded by all_lock */
};

/* Reference-counted through h.refs: the caller's (while the future is in the handle set, until
 * kvik_future_wait takes it out), one per queue item, and one for the completer of a future
 * completed by hand. */
struct kvik_future {
  struct kvik__handle h;
  /* The range: immutable after submission. */
  kvik__chunk_fn fn;
  kvik__flush_fn flush;     /* may be NULL */
  kvik__release_fn release; /* may be NULL */
  _Alignas(max_align_t) unsigned char ctx[KVIK_FUTURE_CTX_MAX];
  uintptr_t buf;
  int64_t off;
  size_t size, task_size, nchunks;
  kvik_pool *pool;
  _Atomic size_t next_chunk;  /* next chunk to claim */
  _Atomic size_t chunks_done; /* chunks finished */
  _Atomic int64_t bytes;      /* bytes done over all chunks */
  /* The lowest file offset at which a chunk came up short (its offset plus its count), or
   * INT64_MAX: the result is the contiguous prefix up to it, not the sum of the chunks' counts
   * (when the file shrank and grew back during the read, later chunks count bytes past a gap). */
  _Atomic int64_t short_end;
  pthread_mutex_t lock; /* guards done, err, err_off, errmsg; cv waits on done */
  pthread_cond_t cv;
  bool done;
  ssize_t result; /* for hand-completed futures */
  bool manual;
  unsigned gen; /* fork_gen when made: another value means it belongs to a parent process */
  int err;      /* first error by file offset, 0 if none */
  int64_t err_off;
  char errmsg[KVIK_ERRMSG_MAX];
};

/* Guards all_pools and default_pool; taken before any pool's lock. */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kvik_pool *all_pools;
static struct kvik_pool *default_pool;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Bumped in the child after each fork(); a future remembers the generation it was made in. */
static _Atomic unsigned fork_gen;

/* Guards dev_pools (below). Taken before all_lock. Pools in it live until the process exits. */
static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;

/* Functions every worker runs right before it exits (kvik__pool_on_worker_exit). Slots are
 * filled once and never cleared, so workers read them without a lock. */
#define WORKER_EXIT_HOOKS 4
static void (*_Atomic exit_hooks[WORKER_EXIT_HOOKS])(void);

/* The pool this thread works for (NULL outside workers). */
static _Thread_local struct kvik_pool *current_pool;

kvik_pool *kvik__pool_current(void) { return current_pool; }

/* ---- fork handling ---------------------------------------------------------------------- */

static void atfork_prepare(void) {
  pthread_mutex_lock(&dev_lock);
  pthread_mutex_lock(&all_lock);
  for (struct kvik_pool *p = all_pools; p; p = p->next)
    pthread_mutex_lock(&p->lock);
}

static void atfork_parent(void) {
  for (struct kvik_pool *p = all_pools; p; p = p->next)
    pthread_mutex_unlock(&p->lock);
  pthread_mutex_unlock(&all_lock);
  pthread_mutex_unlock(&dev_lock);
}

static void atfork_child(void) {
  atomic_fetch_add(&fork_gen, 1);
  for (struct kvik_pool *p = all_pools; p; p = p->next) {
    p->started = 0; /* the workers did not come along */
    /* Fresh objects: the old ones hold the state of parent threads that do not exist here (the
     * idle workers waiting on work_cv; a thread inside a resize holding resize_lock). */
    pthread_cond_init(&p->work_cv, NULL);
    pthread_mutex_init(&p->resize_lock, NULL);
    pthread_mutex_unlock(&p->lock);
  }
  pthread_mutex_unlock(&all_lock);
  pthread_mutex_unlock(&dev_lock);
}

static void install_atfork(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

/* ---- workers ---------------------------------------------------------------------------- */

struct worker_start {
  struct kvik_pool *pool;
  unsigned index;
};

static void *worker_main(void *arg) {
  struct kvik_pool *p = ((struct worker_start *)arg)->pool;
  unsigned index = ((struct worker_start *)arg)->index;
  kvik__free(arg);
  current_pool = p;
  pthread_mutex_lock(&p->lock);
  for (;;) {
    while (p->qlen == 0 && index < p->target && !p->stopping)
      pthread_cond_wait(&p->work_cv, &p->lock);
    if (index >= p->target || (p->stopping && p->qlen == 0))
      break;
    struct item it = p->q[p->qhead];
    p->qhead = (p->qhead + 1) % p->qcap;
    p->qlen--;
    pthread_mutex_unlock(&p->lock);
    it.fn(it.arg);
    pthread_mutex_lock(&p->lock);
  }
  pthread_mutex_unlock(&p->lock);
  /* Per-thread resources that must not be released from a thread-exit destructor (CUDA streams)
   * go now, while this thread is still whole. */
  for (int i = 0; i < WORKER_EXIT_HOOKS; i++) {
    void (*hook)(void) = atomic_load_explicit(&exit_hooks[i], memory_order_acquire);
    if (hook)
      hook();
  }
  return NULL;
}

int kvik__pool_on_worker_exit(void (*fn)(void)) {
  for (int i = 0; i < WORKER_EXIT_HOOKS; i++) {
    void (*cur)(void) = NULL;
    if (atomic_compare_exchange_strong(&exit_hooks[i], &cur, fn) || cur == fn)
      return 0;
  }
  return kvik__err(KVIK_EINTERNAL, "thread pool: more than %d worker exit hooks",
                   WORKER_EXIT_HOOKS);
}

/* Starts workers up to target. Called with p->lock held. Returns 0 if at least one worker runs. */
static int start_workers_locked(struct kvik_pool *p) {
  while (p->started < p->target) {
    if (p->started == p->threads_cap) {
      size_t cap = p->threads_cap ? p->threads_cap * 2 : 8;
      while (cap < p->target)
        cap *= 2;
      pthread_t *t = kvik__malloc(cap * sizeof *t);
      if (!t)
        break;
      if (p->started)
        memcpy(t, p->threads, p->started * sizeof *t);
      kvik__free(p->threads);
      p->threads = t;
      p->threads_cap = cap;
    }
    struct worker_start *ws = kvik__malloc(sizeof *ws);
    if (!ws)
      break;
    ws->pool = p;
    ws->index = p->started;
    int rc = pthread_create(&p->threads[p->started], NULL, worker_main, ws);
    if (rc != 0) {
      kvik__free(ws);
      if (p->started == 0)
        return kvik__err(-rc, "thread pool: cannot start a worker thread: %s",
                         kvik__errno_text(rc));
      break;
    }
    p->started++;
  }
  if (p->started == 0)
    return kvik__err(-ENOMEM, "thread pool: cannot start a worker thread: out of memory");
  return 0;
}

/* Appends an item. Called with p->lock held. */
static int push_locked(struct kvik_pool *p, void (*fn)(void *), void *arg) {
  if (p->qlen == p->qcap) {
    size_t cap = p->qcap ? p->qcap * 2 : 64;
    struct item *q = kvik__malloc(cap * sizeof *q);
    if (!q)
      return kvik__err(-ENOMEM, "thread pool: out of memory growing the queue to %zu items", cap);
    for (size_t i = 0; i < p->qlen; i++)
      q[i] = p->q[(p->qhead + i) % p->qcap];
    kvik__free(p->q);
    p->q = q;
    p->qcap = cap;
    p->qhead = 0;
  }
  p->q[(p->qhead + p->qlen) % p->qcap] = (struct item){fn, arg};
  p->qlen++;
  return 0;
}

/* Queues n copies of (fn, arg); returns how many were queued (>= 1) or a negative code. */
static int submit_n(struct kvik_pool *p, void (*fn)(void *), void *arg, size_t n) {
  pthread_mutex_lock(&p->lock);
  int rc = start_workers_locked(p);
  size_t queued = 0;
  if (rc == 0) {
    for (; queued < n; queued++)
      if ((rc = push_locked(p, fn, arg)) != 0)
        break;
    if (queued > 0) {
      rc = (int)queued;
      if (queued == 1)
        pthread_cond_signal(&p->work_cv);
      else
        pthread_cond_broadcast(&p->work_cv);
    }
  }
  pthread_mutex_unlock(&p->lock);
  return rc;
}

int kvik__pool_submit(kvik_pool *pool, void (*fn)(void *), void *arg) {
  int rc = submit_n(pool, fn, arg, 1);
  return rc < 0 ? rc : 0;
}

int kvik__pool_start(kvik_pool *pool) {
  pthread_mutex_lock(&pool->lock);
  int rc = start_workers_locked(pool);
  pthread_mutex_unlock(&pool->lock);
  return rc;
}

/* ---- public pool API -------------------------------------------------------------------- */

int kvik__pool_check(kvik_pool *p, const char *fn) {
  if (!p)
    return kvik__err(KVIK_EINVAL, "%s: pool is NULL", fn);
  if (!kvik__handle_live(p, KVIK_MAGIC_POOL))
    return kvik__err(KVIK_EMISUSE,
                     "%s: %p is not a live kvik pool (destroyed already, or never a kvik_pool)", fn,
                     (void *)p);
  return 0;
}

static int pool_new(kvik_pool **out, unsigned nthreads, bool is_default) {
  pthread_once(&atfork_once, install_atfork);
  struct kvik_pool *p = kvik__calloc(1, sizeof *p);
  if (!p)
    return kvik__err(-ENOMEM, "kvik_pool_create: out of memory");
  p->target = nthreads;
  p->is_default = is_default;
  pthread_mutex_init(&p->lock, NULL);
  pthread_mutex_init(&p->resize_lock, NULL);
  pthread_cond_init(&p->work_cv, NULL);
  pthread_mutex_lock(&all_lock);
  p->next = all_pools;
  all_pools = p;
  pthread_mutex_unlock(&all_lock);
  atomic_store_explicit(&p->h.refs, 1, memory_order_relaxed);
  kvik__handle_add(&p->h, KVIK_MAGIC_POOL);
  *out = p;
  return 0;
}

int kvik_pool_create(kvik_pool **out, unsigned nthreads) {
  if (!out)
    return kvik__err(KVIK_EINVAL, "kvik_pool_create: out is NULL");
  if (nthreads < 1 || nthreads > 4096)
    return kvik__err(KVIK_EINVAL, "kvik_pool_create: nthreads=%u, must be between 1 and 4096",
                     nthreads);
  return pool_new(out, nthreads, false);
}

/* Joins workers [from, started). Called with resize_lock held and p->lock not held. */
static void join_from(struct kvik_pool *p, unsigned from) {
  pthread_mutex_lock(&p->lock);
  unsigned started = p->started;
  pthread_cond_broadcast(&p->work_cv);
  pthread_mutex_unlock(&p->lock);
  for (unsigned i = from; i < started; i++)
    pthread_join(p->threads[i], NULL);
  pthread_mutex_lock(&p->lock);
  if (p->started > from)
    p->started = from;
  pthread_mutex_unlock(&p->lock);
}

int kvik_pool_destroy(kvik_pool *pool) {
  if (!pool)
    return 0;
  int rc = kvik__pool_check(pool, "kvik_pool_destroy");
  if (rc)
    return rc;
  if (pool->is_default)
    return kvik__err(KVIK_EINVAL, "kvik_pool_destroy: the default pool cannot be destroyed");
  if (current_pool == pool)
    return kvik__err(KVIK_EBUSY, "kvik_pool_destroy: called from one of the pool's own workers");
  /* Out of the set first: from now on the pool is refused on entry. */
  if (!kvik__handle_take(pool, KVIK_MAGIC_POOL))
    return kvik__err(KVIK_EMISUSE, "kvik_pool_destroy: %p is being destroyed already",
                     (void *)pool);
  pthread_mutex_lock(&pool->resize_lock);
  pthread_mutex_lock(&pool->lock);
  pool->stopping = true;
  if (pool->qlen > 0 && pool->started == 0)
    start_workers_locked(pool); /* queued work must still run (e.g. after fork) */
  pthread_mutex_unlock(&pool->lock);
  join_from(pool, 0);
  pthread_mutex_unlock(&pool->resize_lock);

  pthread_mutex_lock(&all_lock);
  for (struct kvik_pool **pp = &all_pools; *pp; pp = &(*pp)->next)
    if (*pp == pool) {
      *pp = pool->next;
      break;
    }
  pthread_mutex_unlock(&all_lock);
  pthread_cond_destroy(&pool->work_cv);
  pthread_mutex_destroy(&pool->lock);
  pthread_mutex_destroy(&pool->resize_lock);
  kvik__free(pool->q);
  kvik__free(pool->threads);
  kvik__free(pool);
  return 0;
}

int kvik_pool_resize(kvik_pool *pool, unsigned nthreads) {
  int rc = kvik__pool_check(pool, "kvik_pool_resize");
  if (rc)
    return rc;
  if (nthreads < 1 || nthreads > 4096)
    return kvik__err(KVIK_EINVAL, "kvik_pool_resize: nthreads=%u, must be between 1 and 4096",
                     nthreads);
  if (current_pool == pool)
    return kvik__err(KVIK_EBUSY, "kvik_pool_resize: called from one of the pool's own workers");
  pthread_mutex_lock(&pool->resize_lock);
  pthread_mutex_lock(&pool->lock);
  unsigned old = pool->target;
  pool->target = nthreads;
  pthread_mutex_unlock(&pool->lock);
  if (nthreads < old)
    join_from(pool, nthreads); /* workers past the new count finish their item and exit */
  pthread_mutex_unlock(&pool->resize_lock);
  return 0;
}

static unsigned pool_target(kvik_pool *p) {
  pthread_mutex_lock(&p->lock);
  unsigned n = p->target;
  pthread_mutex_unlock(&p->lock);
  return n;
}

int kvik_pool_default(kvik_pool **out) {
  if (!out)
    return kvik__err(KVIK_EINVAL, "kvik_pool_default: out is NULL");
  int rc = kvik__config_ready();
  if (rc)
    return rc;
  unsigned want = (unsigned)kvik__cfg_u64(KVIK_CFG_NTHREADS);
  pthread_mutex_lock(&all_lock);
  if (!default_pool) {
    pthread_mutex_unlock(&all_lock);
    kvik_pool *p = NULL;
    if ((rc = pool_new(&p, want, true)) != 0)
      return rc;
    pthread_mutex_lock(&all_lock);
    if (!default_pool) {
      default_pool = p;
      p = NULL;
    }
    pthread_mutex_unlock(&all_lock);
    if (p) { /* another thread won the race */
      p->is_default = false;
      kvik_pool_destroy(p);
    }
  } else {
    pthread_mutex_unlock(&all_lock);
  }
  /* KVIKIO_NTHREADS changed through the setter: follow it, unless we are one of its workers. */
  if (pool_target(default_pool) != want && current_pool != default_pool)
    kvik_pool_resize(default_pool, want);
  *out = default_pool;
  return 0;
}

int kvik_pool_nthreads(kvik_pool *pool) {
  if (!pool) {
    int rc = kvik_pool_default(&pool);
    if (rc)
      return rc;
  }
  int rc = kvik__pool_check(pool, "kvik_pool_nthreads");
  return rc ? rc : (int)pool_target(pool);
}

/* ---- per-block-device pools ------------------------------------------------------------- */

struct dev_pool {
  unsigned major, minor;
  kvik_pool *pool;
  struct dev_pool *next;
};
static struct dev_pool *dev_pools; /* guarded by dev_lock */

int kvik__pool_for_device(unsigned dev_major, unsigned dev_minor, kvik_pool **out) {
  if (dev_major == 0 && dev_minor == 0)
    return kvik_pool_default(out);
  int rc = kvik__config_ready();
  if (rc)
    return rc;
  pthread_mutex_lock(&dev_lock);
  struct dev_pool *d = dev_pools;
  while (d && (d->major != dev_major || d->minor != dev_minor))
    d = d->next;
  if (!d) {
    d = kvik__calloc(1, sizeof *d);
    if (d && pool_new(&d->pool, (unsigned)kvik__cfg_u64(KVIK_CFG_NTHREADS), true) == 0) {
      d->major = dev_major;
      d->minor = dev_minor;
      d->next = dev_pools;
      dev_pools = d;
    } else {
      kvik__free(d);
      d = NULL;
    }
  }
  pthread_mutex_unlock(&dev_lock);
  if (!d)
    return kvik_pool_default(out); /* out of memory: the default pool still works */
  *out = d->pool;
  return 0;
}

/* ---- futures ---------------------------------------------------------------------------- */

static kvik_future *future_alloc(void) {
  pthread_once(&atfork_once, install_atfork); /* so fork_gen counts every fork from now on */
  kvik_future *f = kvik__calloc(1, sizeof *f);
  if (!f)
    return NULL;
  f->gen = atomic_load(&fork_gen);
  atomic_init(&f->short_end, INT64_MAX);
  pthread_mutex_init(&f->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->cv, &ca);
  pthread_condattr_destroy(&ca);
  return f;
}

/* True if f was made before a fork() and this is the child: hands off (see the top). */
static bool future_stale(const kvik_future *f) { return f->gen != atomic_load(&fork_gen); }

static int stale_error(const char *fn) {
  return kvik__err(KVIK_ECANCELED,
                   "%s: the future was made before fork() in the parent process; it never "
                   "completes in this child (and is not freed here)",
                   fn);
}

static void future_unref(kvik_future *f) {
  if (atomic_fetch_sub_explicit(&f->h.refs, 1, memory_order_acq_rel) != 1)
    return;
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->lock);
  kvik__free(f);
}

static void future_mark_done(kvik_future *f) {
  pthread_mutex_lock(&f->lock);
  f->done = true;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->lock);
}

/* Records a chunk's failure; the error at the lowest file offset wins, so the result names the
 * first byte that could not be transferred. */
static void record_error(kvik_future *f, int code, int64_t off) {
  pthread_mutex_lock(&f->lock);
  if (f->err == 0 || off < f->err_off) {
    f->err = code;
    f->err_off = off;
    snprintf(f->errmsg, sizeof f->errmsg, "%s", kvik_last_error());
  }
  pthread_mutex_unlock(&f->lock);
}

/* Records that a chunk ended short at file offset end; the lowest such end wins. */
static void record_short(kvik_future *f, int64_t end) {
  int64_t cur = atomic_load_explicit(&f->short_end, memory_order_relaxed);
  while (end < cur && !atomic_compare_exchange_weak_explicit(
                          &f->short_end, &cur, end, memory_order_relaxed, memory_order_relaxed))
    ;
}

/* Counts `count` finished chunks (and their bytes); the last one marks the future done.
 * Returns true if that was the last. */
static bool count_chunks(kvik_future *f, size_t count, int64_t bytes) {
  if (count == 0)
    return false;
  atomic_fetch_add_explicit(&f->bytes, bytes, memory_order_relaxed);
  if (atomic_fetch_add_explicit(&f->chunks_done, count, memory_order_acq_rel) + count ==
      f->nchunks) {
    /* Every chunk and flush has returned: nothing touches ctx any more. Released before the
     * future is done, so a waiter finds what ctx held let go of. */
    if (f->release)
      f->release(f->ctx);
    future_mark_done(f);
    return true;
  }
  return false;
}

/* Claims and runs chunks until none is left, or until other queued work is waiting (then the
 * item goes to the back of the queue). Chunks may leave work in flight (device copies): the
 * operation's flush runs before this worker's chunks are counted as done, so consecutive
 * chunks on one worker overlap and only the worker's last one is waited for. */
static void range_worker(void *arg) {
  kvik_future *f = arg;
  if (future_stale(f))
    return; /* queued in the parent before fork(); the future is the parent's (leaked here) */
  for (;;) {
    size_t ran = 0;
    int64_t bytes = 0, first_off = INT64_MAX;
    bool more = false;
    for (;;) {
      size_t i = atomic_fetch_add_explicit(&f->next_chunk, 1, memory_order_relaxed);
      if (i >= f->nchunks)
        break;
      size_t start = i * f->task_size;
      size_t len = KVIK_MIN(f->task_size, f->size - start);
      int64_t off = f->off + (int64_t)start;
      ssize_t n = f->fn(f->ctx, f->buf + start, len, off);
      if (n < 0)
        record_error(f, (int)n, off);
      else
        bytes += n;
      if (n >= 0 && (size_t)n < len)
        record_short(f, off + n);
      ran++;
      first_off = KVIK_MIN(first_off, off);
      if (atomic_load_explicit(&f->next_chunk, memory_order_relaxed) >= f->nchunks)
        break;
      /* Let other queued work have this worker if anything waits. */
      kvik_pool *p = f->pool;
      pthread_mutex_lock(&p->lock);
      more = p->qlen > 0;
      pthread_mutex_unlock(&p->lock);
      if (more)
        break;
    }
    if (ran && f->flush) {
      int rc = f->flush(f->ctx);
      if (rc < 0)
        record_error(f, rc, first_off);
    }
    if (count_chunks(f, ran, bytes) || !more)
      break;
    kvik_pool *p = f->pool;
    pthread_mutex_lock(&p->lock);
    bool requeued = push_locked(p, range_worker, f) == 0;
    pthread_mutex_unlock(&p->lock);
    if (requeued)
      return; /* the queued item keeps our reference */
  }
  future_unref(f);
}

int kvik__pool_submit_range(kvik_pool *pool, kvik__chunk_fn fn, kvik__flush_fn flush,
                            kvik__release_fn release, const void *ctx, size_t ctx_size,
                            uintptr_t buf, size_t size, int64_t off, size_t task_size,
                            kvik_future **out) {
  if (ctx_size > sizeof((kvik_future *)0)->ctx)
    return kvik__err(KVIK_EINTERNAL, "parallel I/O: context of %zu bytes too large", ctx_size);
  kvik_future *f = future_alloc();
  if (!f)
    return kvik__err(-ENOMEM, "parallel I/O: out of memory allocating a future");
  f->fn = fn;
  f->flush = flush;
  f->release = release;
  memcpy(f->ctx, ctx, ctx_size);
  f->buf = buf;
  f->off = off;
  f->size = size;
  f->task_size = task_size ? task_size : size;
  f->nchunks = size ? (size - 1) / f->task_size + 1 : 0;
  f->pool = pool;
  if (f->nchunks == 0) {
    if (release)
      release(f->ctx);
    f->done = true;
    atomic_store(&f->h.refs, 1);
    kvik__handle_add(&f->h, KVIK_MAGIC_FUTURE);
    *out = f;
    return 0;
  }
  size_t workers = KVIK_MIN(f->nchunks, (size_t)pool_target(pool));
  /* One reference per queue item, plus the caller's. Items not queued give theirs back. */
  atomic_store(&f->h.refs, (int)workers + 1);
  int queued = submit_n(pool, range_worker, f, workers);
  if (queued < 0) {
    char msg[KVIK_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", kvik_last_error());
    atomic_store(&f->h.refs, 1);
    future_unref(f);
    return kvik__err_set(queued, msg);
  }
  for (size_t i = (size_t)queued; i < workers; i++)
    future_unref(f);
  /* The caller's reference stands in the set from here; the workers' keep f alive meanwhile. */
  kvik__handle_add(&f->h, KVIK_MAGIC_FUTURE);
  *out = f;
  return 0;
}

int kvik__future_new(kvik_future **out) {
  kvik_future *f = future_alloc();
  if (!f)
    return kvik__err(-ENOMEM, "out of memory allocating a future");
  f->manual = true;
  atomic_store(&f->h.refs, 2);
  kvik__handle_add(&f->h, KVIK_MAGIC_FUTURE);
  *out = f;
  return 0;
}

void kvik__future_complete(kvik_future *f, ssize_t result, const char *errmsg) {
  if (future_stale(f))
    return; /* made in the parent before fork(): its lock may be held by a thread gone here */
  pthread_mutex_lock(&f->lock);
  f->result = result;
  if (result < 0) {
    f->err = (int)result;
    snprintf(f->errmsg, sizeof f->errmsg, "%s", errmsg ? errmsg : "");
  }
  f->done = true;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->lock);
  future_unref(f);
}

/* Takes a reference on f for a call, if f is a future not yet waited. */
static int future_get(const kvik_future *f, const char *fn) {
  if (!f)
    return kvik__err(KVIK_EINVAL, "%s: future is NULL", fn);
  if (!kvik__handle_get(f, KVIK_MAGIC_FUTURE))
    return kvik__err(KVIK_EMISUSE,
                     "%s: %p is not a live kvik future (waited already, or never a kvik_future)",
                     fn, (const void *)f);
  if (future_stale(f)) {
    future_unref((kvik_future *)f);
    return stale_error(fn);
  }
  return 0;
}

/* Waits up to timeout_ms (negative: forever) for f, which the caller holds. */
static int future_wait_for(kvik_future *f, int64_t timeout_ms, const char *fn) {
  struct timespec deadline;
  if (timeout_ms >= 0) {
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000;
    }
  }
  pthread_mutex_lock(&f->lock);
  while (!f->done) {
    if (timeout_ms < 0)
      pthread_cond_wait(&f->cv, &f->lock);
    else if (pthread_cond_timedwait(&f->cv, &f->lock, &deadline) == ETIMEDOUT)
      break;
  }
  bool done = f->done;
  pthread_mutex_unlock(&f->lock);
  return done ? 0
              : kvik__err(KVIK_ETIMEDOUT, "%s: not done after %lld ms", fn, (long long)timeout_ms);
}

int kvik_future_wait_for(kvik_future *f, int64_t timeout_ms) {
  int rc = future_get(f, "kvik_future_wait_for");
  if (rc)
    return rc;
  rc = future_wait_for(f, timeout_ms, "kvik_future_wait_for");
  future_unref(f);
  return rc;
}

ssize_t kvik_future_wait(kvik_future *f) {
  if (!f)
    return kvik__err(KVIK_EINVAL, "kvik_future_wait: future is NULL");
  /* A future made before fork() never completes in the child: refused, left in the set. */
  if (kvik__handle_get(f, KVIK_MAGIC_FUTURE)) {
    bool stale = future_stale(f);
    future_unref(f);
    if (stale)
      return stale_error("kvik_future_wait");
  }
  /* Out of the set first, so a second wait is refused; the caller's reference is now ours. */
  if (!kvik__handle_take(f, KVIK_MAGIC_FUTURE))
    return kvik__err(KVIK_EMISUSE,
                     "kvik_future_wait: %p is not a live kvik future (waited already, or never a "
                     "kvik_future)",
                     (void *)f);
  future_wait_for(f, -1, "kvik_future_wait");
  pthread_mutex_lock(&f->lock);
  ssize_t result = f->manual ? f->result : (ssize_t)atomic_load(&f->bytes);
  int64_t short_end = atomic_load(&f->short_end);
  if (!f->manual && short_end != INT64_MAX)
    result = KVIK_MIN(result, (ssize_t)(short_end - f->off)); /* the contiguous prefix */
  if (f->err) {
    result = f->err;
    kvik__err_set(f->err, f->errmsg);
  }
  pthread_mutex_unlock(&f->lock);
  future_unref(f);
  return result;
}

int kvik_future_done(const kvik_future *f) {
  int rc = future_get(f, "kvik_future_done");
  if (rc)
    return rc;
  kvik_future *m = (kvik_future *)f;
  pthread_mutex_lock(&m->lock);
  int done = m->done;
  pthread_mutex_unlock(&m->lock);
  future_unref(m);
  return done;
}
