/* POSIX I/O on one file: whole-range loops over short transfers and EINTR, with opportunistic
 * O_DIRECT for the page-aligned middle of a range. Used by file.c for host memory and by the
 * device path (src/gpu) to fill and drain bounce buffers. */
#ifndef KVIK_IO_H
#define KVIK_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The descriptors of one open file, as the I/O layer needs them. */
struct kvik__fds {
  int fd;           /* buffered descriptor, always valid                                */
  int fd_direct;    /* O_DIRECT descriptor, or -1 where the filesystem refuses it       */
  bool direct_read; /* use fd_direct for aligned reads (KVIKIO_AUTO_DIRECT_IO_READ)      */
  bool overread;    /* KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD                               */
  bool direct_write;/* use fd_direct for aligned writes (KVIKIO_AUTO_DIRECT_IO_WRITE)    */
  const char *path; /* for messages                                                     */
};

/* Reads up to size bytes at off into buf (host memory). Returns bytes read (short only at
 * end of file) or a negative code with the detail set (path, offset, errno text). */
ssize_t kvik__posix_read(const struct kvik__fds *f, void *buf, size_t size, int64_t off);
/* Writes size bytes at off from buf (host memory). Returns size or a negative code. A buffer
 * the CPU cannot read over all of [buf, buf + size) gives -EFAULT before anything is written. */
ssize_t kvik__posix_write(const struct kvik__fds *f, const void *buf, size_t size, int64_t off);

/* Asks the kernel, without touching the memory, whether the CPU may load from (store true: and
 * store to) every byte of [p, p + n) (memcheck.c says how, and what is not seen). Returns 0 if
 * so, or when it cannot tell here; 1 if not, with *bad the index of the first byte found bad. */
int kvik__buf_check(const void *p, size_t n, bool store, size_t *bad);
/* Test hook: true makes kvik__buf_check use its fallback (the one for kernels before 6.11). */
void kvik__buf_check_force_fallback(bool on);

#endif
