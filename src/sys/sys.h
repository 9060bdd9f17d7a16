/* The one place that makes I/O system calls and dlopen/dlsym calls. Every call goes through
 * kvik__sys, a table of function pointers, so tests can replace entries to inject faults
 * (EINTR, short counts, EIO, ENOSPC). Tests restore the table with kvik__sys_reset(). */
#ifndef KVIK_SYS_H
#define KVIK_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The cachestat(2) structures (linux/mman.h from 6.5; mirrored so older headers build). */
struct kvik__cachestat_range {
  uint64_t off;
  uint64_t len; /* 0: to the end of the file */
};
struct kvik__cachestat {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

struct kvik__sys_table {
  int (*open)(const char *path, int flags, mode_t mode);
  int (*close)(int fd);
  ssize_t (*pread)(int fd, void *buf, size_t count, off_t offset);
  ssize_t (*pwrite)(int fd, const void *buf, size_t count, off_t offset);
  int (*fstat)(int fd, struct stat *st);
  int (*fstatfs)(int fd, struct statfs *st);
  int (*ftruncate)(int fd, off_t length);
  int (*fdatasync)(int fd);
  int (*posix_fadvise)(int fd, off_t offset, off_t len, int advice);
  ssize_t (*preadv2)(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags);
  void *(*dlopen)(const char *file, int mode);
  void *(*dlsym)(void *handle, const char *name);
  int (*dlclose)(void *handle);
  /* Page cache and mappings (src/pagecache.c, src/mmap.c). cachestat is the raw system call
   * (Linux 6.5+; -1 and ENOSYS where the kernel or a seccomp filter lacks it). */
  void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
  int (*munmap)(void *addr, size_t len);
  int (*mincore)(void *addr, size_t len, unsigned char *vec);
  int (*cachestat)(int fd, const struct kvik__cachestat_range *range, struct kvik__cachestat *cs,
                   unsigned flags);
};

/* The live table. Tests may overwrite entries; the library reads it on every call. */
extern struct kvik__sys_table kvik__sys;
/* Restores every entry to the real system call. */
void kvik__sys_reset(void);

#endif
