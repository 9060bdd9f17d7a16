/* kvik_file internals for the code that sits beside file.c (batch.c, stream.c). */
#ifndef KVIK_FILE_H
#define KVIK_FILE_H

#include "core/core.h"
#include "gpu/cufile.h"
#include "io/io.h"

#include <stdbool.h>

/* 0 if f is an open kvik file, else KVIK_EINVAL / KVIK_EMISUSE naming fn. */
int kvik__file_check(kvik_file *f, const char *fn);
/* Checks a read (write false) or write request exactly as kvik_file_read/kvik_file_write do:
 * the handle, the buffer, offset and size ranges, the open mode, the configuration. */
int kvik__file_check_io(kvik_file *f, const void *buf, size_t size, int64_t offset, bool write,
                        const char *fn);
/* cuFile's handle when GDS (real DMA) serves the file, else NULL. Makes a deferred AUTO
 * decision first; call only where device memory is involved (it may load CUDA and cuFile). */
CUfileHandle_t kvik__file_gds(kvik_file *f);
/* The descriptors kvik's POSIX path uses (owned by the file). */
const struct kvik__fds *kvik__file_fds(kvik_file *f);
/* The pool the file's parallel I/O runs on (its disk's, or the default pool). */
int kvik__file_pool(kvik_file *f, kvik_pool **out);

#endif
