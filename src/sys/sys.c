#include "sys/sys.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

static int sys_open(const char *path, int flags, mode_t mode) { return open(path, flags, mode); }

/* One initializer for both tables: clang wants a constant expression for a static object. */
#define REAL_TABLE                                                                               \
  {                                                                                              \
    .open = sys_open, .close = close, .pread = pread, .pwrite = pwrite, .fstat = fstat,          \
    .fstatfs = fstatfs, .ftruncate = ftruncate, .fdatasync = fdatasync,                          \
    .posix_fadvise = posix_fadvise, .preadv2 = preadv2, .dlopen = dlopen, .dlsym = dlsym, .dlclose = dlclose,        \
  }

static const struct kvik__sys_table real_table = REAL_TABLE;

struct kvik__sys_table kvik__sys = REAL_TABLE;

void kvik__sys_reset(void) { kvik__sys = real_table; }
