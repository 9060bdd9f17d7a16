/* A bounded pool of page-aligned bounce buffers, reused across calls. With CUDA present the
 * buffers are pinned (the allocator is switched by kvik__bounce_set_allocator before first
 * use). Buffers are KVIKIO_BOUNCE_BUFFER_SIZE bytes; a size change takes effect for buffers
 * taken after it (older ones are freed when returned). */
#ifndef KVIK_BOUNCE_H
#define KVIK_BOUNCE_H

#include <stddef.h>

struct kvik__bounce_alloc {
  /* Returns 0 and *out, or a negative code with the detail set. */
  int (*alloc)(size_t size, void **out, void *ctx);
  void (*free)(void *p, size_t size, void *ctx);
  void *ctx;
};

struct kvik__bounce {
  void *ptr;
  size_t size;
  unsigned gen;                    /* allocator generation it came from */
  struct kvik__bounce_alloc alloc; /* the allocator that frees it       */
};

/* Takes a buffer (blocks while the pool is at its bound and all are in use). 0 or negative. */
int kvik__bounce_get(struct kvik__bounce *out);
/* Gives a buffer back. */
void kvik__bounce_put(struct kvik__bounce *b);
/* Replaces the allocator; frees idle buffers made by the old one. */
void kvik__bounce_set_allocator(const struct kvik__bounce_alloc *a);
/* Frees every idle buffer (at exit, or before the allocator goes away). */
void kvik__bounce_trim(void);

struct kvik__bounce_stats { size_t allocated, in_use, peak; };
void kvik__bounce_stats(struct kvik__bounce_stats *out);

#endif
