/* Device memory I/O without GDS: file <-> pinned bounce buffers <-> device, pipelined. */
#ifndef KVIK_GPU_DEVIO_H
#define KVIK_GPU_DEVIO_H

#include "gpu/cuda.h"
#include "io/io.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Reads up to size bytes at file offset off into device (or managed) memory at dst, owned by
 * ctx. Returns bytes read (short only at end of file) or a negative code with the detail set
 * (CUDA errors by name). The caller's current context is unchanged on return. */
ssize_t kvik__dev_read(const struct kvik__fds *f, CUcontext ctx, uint64_t dst, size_t size,
                       int64_t off);
/* Like kvik__dev_read, but returns with the last copies still in flight on this thread's stream
 * (and its bounce buffer and the context still held), so the next chunk on this thread overlaps
 * them. The caller must call kvik__dev_flush on this thread before it relies on the data, before
 * it does anything else with CUDA, and before the thread goes idle. */
ssize_t kvik__dev_read_chunk(const struct kvik__fds *f, CUcontext ctx, uint64_t dst, size_t size,
                             int64_t off);
/* Waits for this thread's open read pipeline, gives its bounce buffer back and pops its context.
 * 0 (also when nothing is open) or a negative code (a failed copy, by name). */
int kvik__dev_flush(void);

/* kvik_prepare's device part: retains device's primary context, switches the bounce-buffer
 * pool to pinned memory, and leaves nbuf pinned pipeline buffers idle in it. 0 or a negative
 * code with the detail set (KVIK_ENOCUDA, KVIK_EINVAL for a device that does not exist,
 * KVIK_ECUDA). */
int kvik__dev_prepare(int device, size_t nbuf);

/* Writes size bytes from device memory at src to the file at off. Returns size or a negative
 * code. */
ssize_t kvik__dev_write(const struct kvik__fds *f, CUcontext ctx, uint64_t src, size_t size,
                        int64_t off);

#endif
