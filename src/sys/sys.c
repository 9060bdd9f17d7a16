#include "sys/sys.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

static int sys_open(const char *path, int flags, mode_t mode) { return open(path, flags, mode); }

static const struct kvik__sys_table real_table = {
    .open = sys_open,
    .close = close,
    .pread = pread,
    .pwrite = pwrite,
    .fstat = fstat,
    .fstatfs = fstatfs,
    .ftruncate = ftruncate,
    .fdatasync = fdatasync,
    .posix_fadvise = posix_fadvise,
    .dlopen = dlopen,
    .dlsym = dlsym,
    .dlclose = dlclose,
};

struct kvik__sys_table kvik__sys = real_table;

void kvik__sys_reset(void) { kvik__sys = real_table; }
