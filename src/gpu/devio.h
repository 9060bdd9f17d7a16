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
/* Writes size bytes from device memory at src to the file at off. Returns size or a negative
 * code. */
ssize_t kvik__dev_write(const struct kvik__fds *f, CUcontext ctx, uint64_t src, size_t size,
                        int64_t off);

#endif
