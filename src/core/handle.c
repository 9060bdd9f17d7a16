/* The set of live handles (see struct kvik__handle in core.h).
 *
 * Handles are found by address only: the chains link the handles' own headers (no allocation
 * per handle), and a lookup compares addresses, so a pointer that is not in the set is never
 * dereferenced. The set is split into shards by address so that calls on different handles
 * rarely meet on a lock; a lookup holds its shard's lock for a few pointer comparisons and one
 * atomic increment. Each shard's bucket array starts inline and doubles on the heap as the
 * shard fills; when that allocation fails the chains just grow longer.
 *
 * fork(): an atfork handler holds every shard's lock across fork(), so the child inherits a
 * consistent set. */
#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>

#define SHARDS 16
#define INLINE_BUCKETS 64

struct shard {
  pthread_mutex_t lock; /* guards everything below, and the next links of the handles in it */
  struct kvik__handle **buckets; /* nbuckets chains: inline, or from kvik__calloc */
  size_t nbuckets;               /* a power of two */
  size_t count;
  struct kvik__handle *inline_buckets[INLINE_BUCKETS];
};

static struct shard shards[SHARDS];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void atfork_prepare(void) {
  for (int i = 0; i < SHARDS; i++)
    pthread_mutex_lock(&shards[i].lock);
}

static void atfork_release(void) {
  for (int i = SHARDS - 1; i >= 0; i--)
    pthread_mutex_unlock(&shards[i].lock);
}

static void init(void) {
  for (int i = 0; i < SHARDS; i++) {
    pthread_mutex_init(&shards[i].lock, NULL);
    shards[i].buckets = shards[i].inline_buckets;
    shards[i].nbuckets = INLINE_BUCKETS;
  }
  pthread_atfork(atfork_prepare, atfork_release, atfork_release);
}

/* Fibonacci hashing of the address; the low bits are alignment and carry nothing. */
static uint64_t hash(const void *p) { return ((uint64_t)(uintptr_t)p >> 4) * 0x9e3779b97f4a7c15u; }

static struct shard *shard_of(uint64_t h) { return &shards[h >> 60]; }

static size_t bucket_of(const struct shard *s, uint64_t h) {
  return (size_t)(h >> 20) & (s->nbuckets - 1);
}

/* Doubles the bucket array (lock held). */
static void grow_locked(struct shard *s) {
  size_t n = s->nbuckets * 2;
  struct kvik__handle **b = kvik__calloc(n, sizeof *b);
  if (!b)
    return;
  for (size_t i = 0; i < s->nbuckets; i++) {
    struct kvik__handle *h = s->buckets[i];
    while (h) {
      struct kvik__handle *next = h->next;
      size_t j = (size_t)(hash(h) >> 20) & (n - 1);
      h->next = b[j];
      b[j] = h;
      h = next;
    }
  }
  if (s->buckets != s->inline_buckets)
    kvik__free(s->buckets);
  s->buckets = b;
  s->nbuckets = n;
}

void kvik__handle_add(struct kvik__handle *h, unsigned kind) {
  pthread_once(&init_once, init);
  h->kind = kind;
  uint64_t x = hash(h);
  struct shard *s = shard_of(x);
  pthread_mutex_lock(&s->lock);
  if (s->count >= 2 * s->nbuckets)
    grow_locked(s);
  size_t i = bucket_of(s, x);
  h->next = s->buckets[i];
  s->buckets[i] = h;
  s->count++;
  pthread_mutex_unlock(&s->lock);
}

/* The link that points at p's entry if p is a live handle of this kind, else NULL (lock
 * held). Compares addresses; reads only handles that are in the set. */
static struct kvik__handle **find_locked(struct shard *s, uint64_t x, const void *p,
                                         unsigned kind) {
  for (struct kvik__handle **l = &s->buckets[bucket_of(s, x)]; *l; l = &(*l)->next)
    if ((const void *)*l == p)
      return (*l)->kind == kind ? l : NULL;
  return NULL;
}

/* Runs the lookup; op 0: only look, 1: add a reference, 2: remove. */
static bool lookup(const void *p, unsigned kind, int op) {
  if (!p)
    return false;
  pthread_once(&init_once, init);
  uint64_t x = hash(p);
  struct shard *s = shard_of(x);
  pthread_mutex_lock(&s->lock);
  struct kvik__handle **l = find_locked(s, x, p, kind);
  if (l && op == 1) {
    atomic_fetch_add_explicit(&(*l)->refs, 1, memory_order_relaxed);
  } else if (l && op == 2) {
    *l = (*l)->next;
    s->count--;
  }
  pthread_mutex_unlock(&s->lock);
  return l != NULL;
}

bool kvik__handle_get(const void *p, unsigned kind) { return lookup(p, kind, 1); }

bool kvik__handle_take(const void *p, unsigned kind) { return lookup(p, kind, 2); }

bool kvik__handle_live(const void *p, unsigned kind) { return lookup(p, kind, 0); }
