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
};

/* The live table. Tests may overwrite entries; the library reads it on every call. */
extern struct kvik__sys_table kvik__sys;
/* Restores every entry to the real system call. */
void kvik__sys_reset(void);

#endif
