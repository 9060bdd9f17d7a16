/* GPU memory as kvik's I/O sees it: what kind of memory a buffer is, which device and context
 * own it, and whether the requested range fits in its allocation. docs/gpu.md explains the
 * decisions (managed memory, stream-ordered pool memory, freed pointers). */
#ifndef KVIK_GPU_GPU_H
#define KVIK_GPU_GPU_H

#include "gpu/cuda.h"
#include "kvik.h"

#include <stdbool.h>
#include <stddef.h>

struct kvik__mem_info {
  enum kvik_mem_kind kind;
  int device;        /* owning device ordinal; -1 for pageable host memory, and for pinned
                        memory CUDA does not tie to a device                                 */
  CUcontext ctx;     /* the owning context as CUDA reports it; NULL for host memory and for
                        memory without one (pool memory): kvik__mem_ctx() resolves that    */
  CUdeviceptr dptr;  /* ptr as a device (unified) address                                  */
  CUdeviceptr base;  /* start of the allocation holding ptr (device and managed memory,
                        when range_known)                                                   */
  size_t alloc_size; /* its size                                                            */
  bool range_known;  /* base and alloc_size are valid, and [ptr, ptr+size) was checked     */
  bool pool;         /* no owning context: stream-ordered pool memory (cuMemAllocAsync),
                        or CUDA virtual memory management (cuMemCreate + cuMemMap)          */
};

/* Classifies [ptr, ptr + size) and validates it (see kvik_mem_info() in kvik.h for the
 * checks and codes). Never loads the driver into a process that has not loaded it: then the
 * answer is host memory. Sets the detail on failure. Thread-safe. */
int kvik__mem_query(const void *ptr, size_t size, struct kvik__mem_info *out);

/* The context to push for copies to or from device or managed memory described by mi: the
 * owning context, else the primary context of mi->device (retained once per process), else
 * the calling thread's current context. Returns 0 and *out, or a negative code. */
int kvik__mem_ctx(const struct kvik__mem_info *mi, CUcontext *out);

/* True if the kind is accessed through the device path (bounce buffers and copies): device
 * and managed memory. Host memory, pinned or not, is read and written directly. */
static inline bool kvik__mem_is_device(enum kvik_mem_kind k) {
  return k == KVIK_MEM_DEVICE || k == KVIK_MEM_MANAGED;
}

#endif
