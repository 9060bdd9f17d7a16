/* kvik_file: opens a file, decides which path serves it, and dispatches reads and writes. */
#include "core/core.h"
#include "gpu/devio.h"
#include "gpu/gpu.h"
#include "io/fsinfo.h"
#include "io/io.h"
#include "pool/pool.h"
#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct kvik_file {
  unsigned magic;
  struct kvik__fds fds; /* fds.path points at path */
  char *path;
  bool readable, writable;
  int compat;           /* resolved: KVIK_COMPAT_ON/OFF/AUTO */
  int io_path;          /* enum kvik_io_path */
  char reason[256];
  kvik_pool *pool;      /* per block device, or NULL for the default pool */
};

/* What a chunk needs, copied into the future: the file, and for device or managed memory the
 * context that owns the buffer. */
struct chunk_ctx {
  kvik_file *f;
  bool device;
  CUcontext ctx;
};

static int file_check(kvik_file *f, const char *fn) {
  if (!f)
    return kvik__err(KVIK_EINVAL, "%s: file is NULL", fn);
  if (f->magic != KVIK_MAGIC_FILE)
    return kvik__err(KVIK_EMISUSE, "%s: not an open kvik file (bad magic)", fn);
  return 0;
}

/* Parses fopen-style flags. Returns 0 and the open(2) flags, or KVIK_EINVAL. */
static int parse_flags(const char *flags, int *oflags, bool *rd, bool *wr) {
  char mode = flags[0];
  bool plus = false;
  for (const char *p = flags + 1; *p; p++) {
    if (*p == '+' && !plus)
      plus = true;
    else if (*p != 'b')
      return kvik__err(KVIK_EINVAL, "kvik_file_open: unknown flags \"%s\" (use r, r+, w or w+)",
                       flags);
  }
  switch (mode) {
  case 'r':
    *oflags = plus ? O_RDWR : O_RDONLY;
    *rd = true;
    *wr = plus;
    return 0;
  case 'w':
    *oflags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC;
    *rd = plus;
    *wr = true;
    return 0;
  case 'a':
    return kvik__err(KVIK_EINVAL,
                     "kvik_file_open: append mode \"%s\" is not supported: positioned writes "
                     "cannot honour O_APPEND; open with \"r+\" and write at kvik_file_size()",
                     flags);
  default:
    return kvik__err(KVIK_EINVAL, "kvik_file_open: unknown flags \"%s\" (use r, r+, w or w+)",
                     flags);
  }
}

/* Decides the path that serves the file. Until the cuFile path exists, every file is served by
 * kvik's POSIX path; compat OFF (cuFile required) therefore fails. */
static int choose_path(kvik_file *f) {
  switch (f->compat) {
  case KVIK_COMPAT_ON:
    f->io_path = KVIK_PATH_POSIX;
    snprintf(f->reason, sizeof f->reason, "compat mode ON: POSIX I/O only");
    return 0;
  case KVIK_COMPAT_AUTO:
    f->io_path = KVIK_PATH_POSIX;
    snprintf(f->reason, sizeof f->reason,
             "compat mode AUTO: cuFile support is not built into this version of kvik");
    return 0;
  default:
    return kvik__err(KVIK_ENOCUFILE,
                     "kvik_file_open %s: compat mode OFF requires cuFile, which this version of "
                     "kvik does not support yet; use compat mode ON or AUTO",
                     f->path);
  }
}

/* Picks the pool for the file: its disk's pool when KVIKIO_THREAD_POOL_PER_BLOCK_DEVICE is on. */
static void choose_pool(kvik_file *f) {
  f->pool = NULL;
  if (!kvik__cfg_u64(KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE))
    return;
  struct stat st;
  if (kvik__sys.fstat(f->fds.fd, &st) != 0)
    return;
  char name[64];
  unsigned ma, mi;
  if (kvik__blockdev(major(st.st_dev), minor(st.st_dev), name, sizeof name, &ma, &mi) != 0)
    return; /* virtual filesystems use the default pool */
  kvik_pool *p;
  if (kvik__pool_for_device(ma, mi, &p) == 0)
    f->pool = p;
}

int kvik_file_open(kvik_file **out, const char *path, const char *flags, mode_t mode,
                   kvik_compat compat) {
  if (!out || !path || !flags)
    return kvik__err(KVIK_EINVAL, "kvik_file_open: %s is NULL",
                     !out ? "out" : !path ? "path" : "flags");
  if ((int)compat < KVIK_COMPAT_OFF || compat > KVIK_COMPAT_DEFAULT)
    return kvik__err(KVIK_EINVAL, "kvik_file_open %s: unknown compat mode %d", path, (int)compat);
  int oflags = 0;
  bool rd = false, wr = false;
  int rc = parse_flags(flags, &oflags, &rd, &wr);
  if (rc)
    return rc;
  if ((rc = kvik__config_ready()) != 0)
    return rc;

  kvik_file *f = kvik__calloc(1, sizeof *f);
  char *dup = kvik__strdup(path);
  if (!f || !dup) {
    kvik__free(f);
    kvik__free(dup);
    return kvik__err(-ENOMEM, "kvik_file_open %s: out of memory", path);
  }
  f->path = dup;
  f->readable = rd;
  f->writable = wr;
  f->compat = compat == KVIK_COMPAT_DEFAULT ? (int)kvik__cfg_u64(KVIK_CFG_COMPAT_MODE) : (int)compat;
  f->fds.path = f->path;
  f->fds.fd_direct = -1;
  f->fds.fd = kvik__sys.open(path, oflags | O_CLOEXEC, mode);
  if (f->fds.fd < 0) {
    rc = kvik__err(-errno, "kvik_file_open %s (\"%s\"): %s", path, flags, kvik__errno_text(errno));
    goto fail_free;
  }
  struct stat st;
  if (kvik__sys.fstat(f->fds.fd, &st) != 0) {
    rc = kvik__err(-errno, "kvik_file_open %s: fstat: %s", path, kvik__errno_text(errno));
    goto fail_close;
  }
  if (S_ISDIR(st.st_mode)) {
    rc = kvik__err(-EISDIR, "kvik_file_open %s: is a directory", path);
    goto fail_close;
  }
  if ((rc = choose_path(f)) != 0)
    goto fail_close;

  /* A second descriptor with O_DIRECT where direct I/O is wanted; a filesystem that refuses it
   * (tmpfs before Linux 6.6, some FUSE mounts) is used buffered, silently. */
  f->fds.direct_read = rd && kvik__cfg_u64(KVIK_CFG_AUTO_DIRECT_IO_READ);
  f->fds.overread = kvik__cfg_u64(KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD);
  f->fds.direct_write = wr && kvik__cfg_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE);
  if ((f->fds.direct_read || f->fds.direct_write) && S_ISREG(st.st_mode)) {
    int dflags = (oflags & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_DIRECT | O_CLOEXEC;
    f->fds.fd_direct = kvik__sys.open(path, dflags, 0);
    if (f->fds.fd_direct < 0)
      kvik__log(KVIK_LOG_DEBUG, "%s: O_DIRECT refused (%s), using buffered I/O", path,
                kvik__errno_text(errno));
  }
  choose_pool(f);
  f->magic = KVIK_MAGIC_FILE;
  *out = f;
  kvik__err_clear();
  return 0;

fail_close:
  kvik__sys.close(f->fds.fd);
fail_free:
  kvik__free(f->path);
  kvik__free(f);
  return rc;
}

int kvik_file_close(kvik_file *f) {
  if (!f)
    return 0;
  int rc = file_check(f, "kvik_file_close");
  if (rc)
    return rc;
  f->magic = KVIK_MAGIC_DEAD;
  if (f->fds.fd_direct >= 0 && kvik__sys.close(f->fds.fd_direct) != 0 && rc == 0)
    rc = kvik__err(-errno, "kvik_file_close %s: %s", f->path, kvik__errno_text(errno));
  if (kvik__sys.close(f->fds.fd) != 0 && rc == 0)
    rc = kvik__err(-errno, "kvik_file_close %s: %s", f->path, kvik__errno_text(errno));
  kvik__free(f->path);
  kvik__free(f);
  return rc;
}

int64_t kvik_file_size(kvik_file *f) {
  int rc = file_check(f, "kvik_file_size");
  if (rc)
    return rc;
  struct stat st;
  if (kvik__sys.fstat(f->fds.fd, &st) != 0)
    return kvik__err(-errno, "kvik_file_size %s: fstat: %s", f->path, kvik__errno_text(errno));
  return (int64_t)st.st_size;
}

int kvik_file_fd(kvik_file *f) {
  int rc = file_check(f, "kvik_file_fd");
  return rc ? rc : f->fds.fd;
}

const char *kvik_file_path(kvik_file *f) {
  return file_check(f, "kvik_file_path") ? NULL : f->path;
}

int kvik_file_info(kvik_file *f, struct kvik_file_info *info) {
  int rc = file_check(f, "kvik_file_info");
  if (rc)
    return rc;
  if (!info)
    return kvik__err(KVIK_EINVAL, "kvik_file_info: info is NULL");
  if (info->sz < sizeof *info)
    return kvik__err(KVIK_EINVAL, "kvik_file_info: info->sz is %zu, expected at least %zu",
                     info->sz, sizeof *info);
  size_t sz = info->sz;
  memset(info, 0, sz);
  info->sz = sz;
  info->path = f->io_path;
  info->compat = f->compat;
  info->direct_read = f->fds.direct_read && f->fds.fd_direct >= 0;
  info->direct_write = f->fds.direct_write && f->fds.fd_direct >= 0;
  info->readable = f->readable;
  info->writable = f->writable;
  snprintf(info->reason, sizeof info->reason, "%s", f->reason);
  return 0;
}

/* Checks a read or write request. Returns 0 or a negative code with the detail set. */
static int check_io(kvik_file *f, const void *buf, size_t size, int64_t offset, bool write,
                    const char *fn) {
  int rc = file_check(f, fn);
  if (rc)
    return rc;
  if (!buf && size)
    return kvik__err(KVIK_EINVAL, "%s %s: buffer is NULL", fn, f->path);
  if (offset < 0)
    return kvik__err(KVIK_EINVAL, "%s %s: negative offset %lld", fn, f->path, (long long)offset);
  if (size > (size_t)INT64_MAX || offset > INT64_MAX - (int64_t)size)
    return kvik__err(KVIK_EOVERFLOW, "%s %s: offset %lld + size %zu overflows", fn, f->path,
                     (long long)offset, size);
  if (size > (size_t)SSIZE_MAX)
    return kvik__err(KVIK_EOVERFLOW, "%s %s: size %zu is larger than SSIZE_MAX", fn, f->path, size);
  if (write && !f->writable)
    return kvik__err(KVIK_EBADMODE, "%s %s: file was opened read-only", fn, f->path);
  if (!write && !f->readable)
    return kvik__err(KVIK_EBADMODE, "%s %s: file was opened write-only", fn, f->path);
  return kvik__config_ready();
}

/* Finds out what memory buf is (the kind is detected, never declared) and fills c. */
static int target(kvik_file *f, const void *buf, size_t size, struct chunk_ctx *c) {
  memset(c, 0, sizeof *c);
  c->f = f;
  if (size == 0)
    return 0;
  struct kvik__mem_info mi;
  int rc = kvik__mem_query(buf, size, &mi);
  if (rc)
    return rc;
  if (!kvik__mem_is_device(mi.kind))
    return 0;
  c->device = true;
  return kvik__mem_ctx(&mi, &c->ctx);
}

static ssize_t read_chunk(void *ctx, uintptr_t buf, size_t len, int64_t off) {
  struct chunk_ctx *c = ctx;
  if (c->device)
    return kvik__dev_read(&c->f->fds, c->ctx, (uint64_t)buf, len, off);
  return kvik__posix_read(&c->f->fds, (void *)buf, len, off);
}

static ssize_t write_chunk(void *ctx, uintptr_t buf, size_t len, int64_t off) {
  struct chunk_ctx *c = ctx;
  if (c->device)
    return kvik__dev_write(&c->f->fds, c->ctx, (uint64_t)buf, len, off);
  return kvik__posix_write(&c->f->fds, (const void *)buf, len, off);
}

ssize_t kvik_file_read(kvik_file *f, void *buf, size_t size, int64_t offset) {
  int rc = check_io(f, buf, size, offset, false, "kvik_file_read");
  if (rc)
    return rc;
  struct chunk_ctx c;
  if (size == 0 || (rc = target(f, buf, size, &c)) != 0)
    return rc;
  return read_chunk(&c, (uintptr_t)buf, size, offset);
}

ssize_t kvik_file_write(kvik_file *f, const void *buf, size_t size, int64_t offset) {
  int rc = check_io(f, buf, size, offset, true, "kvik_file_write");
  if (rc)
    return rc;
  struct chunk_ctx c;
  if (size == 0 || (rc = target(f, buf, size, &c)) != 0)
    return rc;
  return write_chunk(&c, (uintptr_t)buf, size, offset);
}

/* Resolves task size and pool from the options. */
static int io_opts(kvik_file *f, const struct kvik_io_opts *opts, size_t *task_size,
                   kvik_pool **pool) {
  *task_size = (size_t)kvik__cfg_u64(KVIK_CFG_TASK_SIZE);
  *pool = f->pool;
  if (opts) {
    if (opts->sz < offsetof(struct kvik_io_opts, pool) + sizeof opts->pool)
      return kvik__err(KVIK_EINVAL, "kvik_io_opts: sz is %zu, set it to sizeof(struct kvik_io_opts)",
                       opts->sz);
    if (opts->task_size)
      *task_size = opts->task_size;
    if (opts->pool)
      *pool = opts->pool;
  }
  if (!*pool)
    return kvik_pool_default(pool);
  return kvik__pool_check(*pool, "kvik_io_opts.pool");
}

static int submit(kvik_file *f, kvik__chunk_fn fn, uintptr_t buf, size_t size, int64_t offset,
                  const struct kvik_io_opts *opts, kvik_future **out) {
  size_t task_size;
  kvik_pool *pool;
  struct chunk_ctx c;
  int rc = io_opts(f, opts, &task_size, &pool);
  if (rc || (rc = target(f, (const void *)buf, size, &c)) != 0)
    return rc;
  /* Device transfers under KVIKIO_GDS_THRESHOLD run inline: a pool round trip would cost more
   * than the transfer. */
  if (c.device && size < kvik__cfg_u64(KVIK_CFG_GDS_THRESHOLD)) {
    kvik_future *fut;
    if ((rc = kvik__future_new(&fut)) != 0)
      return rc;
    ssize_t n = fn(&c, buf, size, offset);
    kvik__future_complete(fut, n, n < 0 ? kvik_last_error() : NULL);
    *out = fut;
    return 0;
  }
  return kvik__pool_submit_range(pool, fn, &c, sizeof c, buf, size, offset, task_size, out);
}

int kvik_file_pread(kvik_file *f, void *buf, size_t size, int64_t offset,
                    const struct kvik_io_opts *opts, kvik_future **out) {
  if (!out)
    return kvik__err(KVIK_EINVAL, "kvik_file_pread: out is NULL");
  int rc = check_io(f, buf, size, offset, false, "kvik_file_pread");
  if (rc)
    return rc;
  return submit(f, read_chunk, (uintptr_t)buf, size, offset, opts, out);
}

int kvik_file_pwrite(kvik_file *f, const void *buf, size_t size, int64_t offset,
                     const struct kvik_io_opts *opts, kvik_future **out) {
  if (!out)
    return kvik__err(KVIK_EINVAL, "kvik_file_pwrite: out is NULL");
  int rc = check_io(f, buf, size, offset, true, "kvik_file_pwrite");
  if (rc)
    return rc;
  return submit(f, write_chunk, (uintptr_t)buf, size, offset, opts, out);
}

int kvik_drop_file_cache(const char *path) {
  if (!path)
    return kvik__err(KVIK_EINVAL, "kvik_drop_file_cache: path is NULL");
  int fd = kvik__sys.open(path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    return kvik__err(-errno, "kvik_drop_file_cache %s: %s", path, kvik__errno_text(errno));
  int rc = 0;
  /* Dirty pages cannot be dropped: write them back first. */
  if (kvik__sys.fdatasync(fd) != 0 && errno != EINVAL)
    rc = kvik__err(-errno, "kvik_drop_file_cache %s: fdatasync: %s", path, kvik__errno_text(errno));
  int e = rc ? 0 : kvik__sys.posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  if (e != 0)
    rc = kvik__err(-e, "kvik_drop_file_cache %s: posix_fadvise: %s", path, kvik__errno_text(e));
  kvik__sys.close(fd);
  return rc;
}
