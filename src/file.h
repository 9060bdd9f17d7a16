/* kvik_file internals for the code that sits beside file.c (batch.c, stream.c). */
#ifndef KVIK_FILE_H
#define KVIK_FILE_H

#include "core/core.h"
#include "gpu/cufile.h"
#include "io/io.h"

#include <stdbool.h>

/* Files are reference-counted (see struct kvik_file). The functions below other than
 * kvik__file_get take a file the caller holds a reference to, and never check that it is still
 * open: an operation accepted before kvik_file_close runs to the end. */

/* Takes a reference if f is an open kvik file (0), else KVIK_EINVAL / KVIK_EMISUSE naming fn.
 * An operation that outlives the call keeps the reference until it is finished. */
int kvik__file_get(kvik_file *f, const char *fn);
/* Drops a reference; the last one closes the descriptors and frees the file (a close(2) error
 * then goes to the log). Never changes this thread's error detail. */
void kvik__file_put(kvik_file *f);
/* The same, from a thread that must not call cuFile or CUDA (a CUDA host function): when the
 * last reference on a file cuFile serves goes, the file is closed on a thread of its own. */
void kvik__file_put_later(kvik_file *f);
/* Checks a read (write false) or write request exactly as kvik_file_read/kvik_file_write do:
 * the buffer, offset and size ranges, the open mode, the configuration. */
int kvik__file_check_io(kvik_file *f, const void *buf, size_t size, int64_t offset, bool write,
                        const char *fn);
/* The open-mode part of those checks (and the configuration), for a request of size bytes at
 * offset (named in the message). */
int kvik__file_check_mode(kvik_file *f, bool write, size_t size, int64_t offset, const char *fn);
/* kvik_file_read (write false) or kvik_file_write on a held file; fn names the call in errors. */
ssize_t kvik__file_rw(kvik_file *f, bool write, void *buf, size_t size, int64_t offset,
                      const char *fn);
/* The path the file was opened with (owned by the file). */
const char *kvik__file_path(kvik_file *f);
/* cuFile's handle when GDS (real DMA) serves the file, else NULL. Makes a deferred AUTO
 * decision first; call only where device memory is involved (it may load CUDA and cuFile). */
CUfileHandle_t kvik__file_gds(kvik_file *f);
/* The descriptors kvik's POSIX path uses (owned by the file). */
const struct kvik__fds *kvik__file_fds(kvik_file *f);
/* The pool the file's parallel I/O runs on (its disk's, or the default pool). */
int kvik__file_pool(kvik_file *f, kvik_pool **out);

#endif
