#include "sys/sys.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sys_open(const char *path, int flags, mode_t mode) { return open(path, flags, mode); }

/* cachestat has one number on every architecture but alpha (the unified table from 5.x on). */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
static int sys_cachestat(int fd, const struct kvik__cachestat_range *range,
                         struct kvik__cachestat *cs, unsigned flags) {
  return (int)syscall(__NR_cachestat, fd, range, cs, flags);
}

/* One initializer for both tables: clang wants a constant expression for a static object. */
#define REAL_TABLE                                                                               \
  {                                                                                              \
    .open = sys_open, .close = close, .pread = pread, .pwrite = pwrite, .fstat = fstat,          \
    .fstatfs = fstatfs, .ftruncate = ftruncate, .fdatasync = fdatasync,                          \
    .posix_fadvise = posix_fadvise, .preadv2 = preadv2, .dlopen = dlopen, .dlsym = dlsym, .dlclose = dlclose,        \
    .mmap = mmap, .munmap = munmap, .mincore = mincore, .cachestat = sys_cachestat,              \
  }

static const struct kvik__sys_table real_table = REAL_TABLE;

struct kvik__sys_table kvik__sys = REAL_TABLE;

void kvik__sys_reset(void) { kvik__sys = real_table; }
