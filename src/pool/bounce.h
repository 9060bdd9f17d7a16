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

/* The device pipeline's piece (src/gpu/devio.c): 1 MiB, measured there. */
#ifndef KVIK_DEVIO_PIECE
#define KVIK_DEVIO_PIECE ((size_t)1 << 20)
#endif

/* What a buffer is for, which sets its size. KVIK__BOUNCE_IO: host I/O (O_DIRECT through a
 * bounce buffer, remote reads), KVIKIO_BOUNCE_BUFFER_SIZE bytes. KVIK__BOUNCE_PIPE: the device
 * pipeline, which uses two pieces at a time and so needs no more than 2 * KVIK_DEVIO_PIECE (or
 * the setting, if smaller): pinning is what a process's first device read waits for (the
 * driver pins about 2 GB/s, one thread at a time, on the H200 machine), so pinning 16 MiB per
 * worker to use 2 MiB of it cost the first 8 GiB read 0.13 s of its 0.32. */
enum kvik__bounce_class { KVIK__BOUNCE_IO, KVIK__BOUNCE_PIPE };

/* Takes a buffer of the class's size (blocks while the pool is at its bound and all are in
 * use). 0 or negative. */
int kvik__bounce_get_class(struct kvik__bounce *out, enum kvik__bounce_class c);
/* kvik__bounce_get_class(out, KVIK__BOUNCE_IO). */
int kvik__bounce_get(struct kvik__bounce *out);
/* Gives a buffer back. */
void kvik__bounce_put(struct kvik__bounce *b);
/* Makes sure n buffers of class c exist and are idle, for a first call to find (kvik_prepare):
 * takes n (idle ones first, allocating the rest) and gives them all back. n is capped at the
 * pool's bound. 0, or the first allocation's negative code with the detail set (the buffers
 * made before it stay idle in the pool). */
int kvik__bounce_fill(enum kvik__bounce_class c, size_t n);
/* Replaces the allocator; frees idle buffers made by the old one. */
void kvik__bounce_set_allocator(const struct kvik__bounce_alloc *a);
/* Frees every idle buffer (at exit, or before the allocator goes away). */
void kvik__bounce_trim(void);

struct kvik__bounce_stats {
  size_t allocated, in_use, peak;
};
void kvik__bounce_stats(struct kvik__bounce_stats *out);

#endif
