/* The bounce-buffer pool: page-aligned buffers of KVIKIO_BOUNCE_BUFFER_SIZE, reused across
 * calls, at most `bound` in use at once (callers past it wait for a buffer to come back).
 *
 * fork(): the lock is held across fork() (atfork handlers), so the child gets consistent
 * counts. Buffers in use by parent threads never come back in the child (those threads do not
 * exist there), and the condition variable holds the waiter state of parent threads waiting for
 * a buffer: the child forgets the in-use buffers and starts a fresh condition variable, or its
 * first caller would wait forever once the parent had all `bound` buffers out. Pinned buffers
 * (CUDA) are forgotten too, idle ones included, and the child goes back to host memory: CUDA
 * cannot be used in the child, and the driver may not even have mapped its pinned memory there. */
#include "pool/bounce.h"

#include "core/core.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

struct idle {
  void *ptr;
  size_t size;
  struct idle *next; /* stored inside the idle buffer itself: no extra allocation */
};

/* Guards every variable below. The allocator's functions are called without it held. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t returned = PTHREAD_COND_INITIALIZER;
static struct idle *idle_list;
static size_t n_idle, n_in_use, n_allocated, n_peak;
static unsigned alloc_gen; /* bumped when the allocator changes: older buffers are not reused */

static int host_alloc(size_t size, void **out, void *ctx) {
  (void)ctx;
  void *p = kvik__aligned_alloc(kvik__page_size(), size);
  if (!p)
    return kvik__err(-ENOMEM, "bounce buffer: out of memory allocating %zu bytes", size);
  *out = p;
  return 0;
}

static void host_free(void *p, size_t size, void *ctx) {
  (void)size;
  (void)ctx;
  kvik__free(p);
}

static struct kvik__bounce_alloc allocator = {host_alloc, host_free, NULL};

static void atfork_prepare(void) { pthread_mutex_lock(&lock); }

static void atfork_parent(void) { pthread_mutex_unlock(&lock); }

static void atfork_child(void) {
  pthread_cond_init(&returned, NULL); /* no stale waiters */
  n_allocated -= n_in_use;            /* held by parent threads that do not exist here: leaked */
  n_in_use = 0;
  if (allocator.alloc != host_alloc) {
    idle_list = NULL; /* pinned: not usable (maybe not even mapped) in the child; leaked */
    n_allocated -= n_idle;
    n_idle = 0;
    allocator = (struct kvik__bounce_alloc){host_alloc, host_free, NULL};
    alloc_gen++;
  }
  pthread_mutex_unlock(&lock);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void install_atfork(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

static size_t bound(void) { return 4 * (size_t)kvik__cfg_u64(KVIK_CFG_NTHREADS) + 8; }

static size_t wanted_size(enum kvik__bounce_class c) {
  size_t page = kvik__page_size();
  size_t s = (size_t)kvik__cfg_u64(KVIK_CFG_BOUNCE_BUFFER_SIZE);
  if (c == KVIK__BOUNCE_PIPE)
    s = KVIK_MIN(s, 2 * KVIK_DEVIO_PIECE);
  return (s + page - 1) / page * page;
}

/* A buffer of this size is of a class the settings still ask for. */
static bool current_size(size_t size) {
  return size == wanted_size(KVIK__BOUNCE_IO) || size == wanted_size(KVIK__BOUNCE_PIPE);
}

int kvik__bounce_get(struct kvik__bounce *out) {
  return kvik__bounce_get_class(out, KVIK__BOUNCE_IO);
}

int kvik__bounce_get_class(struct kvik__bounce *out, enum kvik__bounce_class c) {
  int rc = kvik__config_ready();
  if (rc)
    return rc;
  pthread_once(&atfork_once, install_atfork);
  size_t size = wanted_size(c);
  struct idle *stale = NULL, *got = NULL;
  pthread_mutex_lock(&lock);
  while (n_in_use >= bound())
    pthread_cond_wait(&returned, &lock);
  /* The first idle buffer of this size is taken; idle buffers of a size no class asks for any
   * more (the setting changed) are freed rather than reused. */
  for (struct idle **pi = &idle_list; *pi;) {
    struct idle *i = *pi;
    if (!got && i->size == size) {
      *pi = i->next;
      got = i;
      n_idle--;
    } else if (!current_size(i->size)) {
      *pi = i->next;
      n_idle--;
      n_allocated--;
      i->next = stale;
      stale = i;
    } else {
      pi = &i->next;
    }
  }
  n_in_use++;
  if (n_in_use > n_peak)
    n_peak = n_in_use;
  struct kvik__bounce_alloc a = allocator;
  unsigned gen = alloc_gen;
  pthread_mutex_unlock(&lock);

  while (stale) {
    struct idle *next = stale->next;
    a.free(stale->ptr, stale->size, a.ctx);
    stale = next;
  }
  out->gen = gen;
  out->alloc = a;
  if (got) {
    out->ptr = got->ptr;
    out->size = size;
    return 0;
  }
  void *p = NULL;
  rc = a.alloc(size, &p, a.ctx);
  pthread_mutex_lock(&lock);
  if (rc) {
    n_in_use--;
    pthread_cond_signal(&returned);
  } else {
    n_allocated++;
  }
  pthread_mutex_unlock(&lock);
  if (rc)
    return rc;
  out->ptr = p;
  out->size = size;
  return 0;
}

void kvik__bounce_put(struct kvik__bounce *b) {
  if (!b->ptr)
    return;
  pthread_mutex_lock(&lock);
  n_in_use--;
  bool keep = b->gen == alloc_gen && current_size(b->size) && n_idle < bound();
  if (keep) {
    struct idle *i = b->ptr;
    i->ptr = b->ptr;
    i->size = b->size;
    i->next = idle_list;
    idle_list = i;
    n_idle++;
  } else {
    n_allocated--;
  }
  pthread_cond_signal(&returned);
  pthread_mutex_unlock(&lock);
  if (!keep)
    b->alloc.free(b->ptr, b->size, b->alloc.ctx);
  b->ptr = NULL;
}

int kvik__bounce_fill(enum kvik__bounce_class c, size_t n) {
  int rc = kvik__config_ready();
  if (rc)
    return rc;
  /* More than the bound would wait forever for a buffer this call holds itself. */
  n = KVIK_MIN(n, bound());
  if (n == 0)
    return 0;
  struct kvik__bounce *b = kvik__calloc(n, sizeof *b);
  if (!b)
    return kvik__err(-ENOMEM, "bounce buffer: out of memory preparing %zu buffers", n);
  size_t got = 0;
  while (got < n && (rc = kvik__bounce_get_class(&b[got], c)) == 0)
    got++;
  for (size_t i = 0; i < got; i++)
    kvik__bounce_put(&b[i]);
  kvik__free(b);
  return rc;
}

void kvik__bounce_trim(void) {
  pthread_mutex_lock(&lock);
  struct idle *list = idle_list;
  idle_list = NULL;
  n_allocated -= n_idle;
  n_idle = 0;
  struct kvik__bounce_alloc a = allocator;
  pthread_mutex_unlock(&lock);
  while (list) {
    struct idle *next = list->next;
    a.free(list->ptr, list->size, a.ctx);
    list = next;
  }
}

void kvik__bounce_set_allocator(const struct kvik__bounce_alloc *a) {
  pthread_once(&atfork_once, install_atfork);
  kvik__bounce_trim();
  pthread_mutex_lock(&lock);
  allocator = a ? *a : (struct kvik__bounce_alloc){host_alloc, host_free, NULL};
  alloc_gen++;
  pthread_mutex_unlock(&lock);
}

void kvik__bounce_stats(struct kvik__bounce_stats *out) {
  pthread_mutex_lock(&lock);
  out->allocated = n_allocated;
  out->in_use = n_in_use;
  out->peak = n_peak;
  pthread_mutex_unlock(&lock);
}

int kvik_bounce_stats(struct kvik_bounce_stats *stats) {
  if (!stats)
    return kvik__err(KVIK_EINVAL, "kvik_bounce_stats: stats is NULL");
  if (stats->sz < sizeof *stats)
    return kvik__err(KVIK_EINVAL, "kvik_bounce_stats: stats->sz is %zu, expected at least %zu",
                     stats->sz, sizeof *stats);
  pthread_mutex_lock(&lock);
  stats->allocated = n_allocated;
  stats->in_use = n_in_use;
  stats->peak = n_peak;
  stats->pinned = allocator.alloc != host_alloc;
  pthread_mutex_unlock(&lock);
  return 0;
}

void kvik_bounce_trim(void) { kvik__bounce_trim(); }
