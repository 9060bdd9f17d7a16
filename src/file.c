/* kvik_file: opens a file, decides which path serves it, and dispatches reads and writes. */
#include "file.h"

#include "core/core.h"
#include "gpu/cufile.h"
#include "gpu/devio.h"
#include "gpu/gpu.h"
#include "io/fsinfo.h"
#include "io/io.h"
#include "pool/pool.h"
#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Reference-counted: the caller's reference (while the file is in the handle set), one per
 * public call in progress, and one per operation in flight (a parallel read or write until its
 * last chunk is done, a batch operation until it is reaped, a stream-ordered operation until
 * the stream has passed it). kvik_file_close takes the file out of the set, so no new call or
 * operation can reach it, and drops the caller's reference; the last reference closes the
 * descriptors and frees the memory. Everything below is immutable after open, except the
 * deferred path decision (decide_lock). */
struct kvik_file {
  struct kvik__handle h; /* first: the handle set's header and the reference count */
  struct kvik__fds fds;  /* fds.path points at path */
  char *path;
  bool readable, writable;
  int oflags;      /* the open(2) flags, for the cuFile descriptor */
  int compat;      /* resolved: KVIK_COMPAT_ON/OFF/AUTO */
  kvik_pool *pool; /* per block device, or NULL for the default pool */
  /* The path decision. Made at open, except with compat mode AUTO in a process that does not
   * use CUDA yet: then it is deferred to the first I/O with device memory (or kvik_file_info),
   * so a host-only program never loads CUDA or cuFile. The fields below are written once,
   * under decide_lock, before `decided` is set (release); readers check `decided` (acquire). */
  pthread_mutex_t decide_lock;
  atomic_bool decided;
  int io_path;           /* enum kvik_io_path */
  char reason[512];      /* kvik_file_info copies what fits in its 256 bytes */
  int cufile_fd;         /* O_DIRECT descriptor registered with cuFile, or -1 */
  CUfileHandle_t cufile; /* cuFile's handle when cuFile serves the file, else NULL */
};

/* What a chunk needs, copied into the future: the file, and for device or managed memory the
 * context that owns the buffer; for the cuFile path, the base address cuFile is given (the
 * registered buffer or the allocation holding the range). */
struct chunk_ctx {
  kvik_file *f;
  bool device;
  bool cufile;
  CUcontext ctx;
  uintptr_t base;
};

/* Takes a reference on f for a call, if f is an open kvik file (see struct kvik__handle:
 * nothing is read through a pointer that is not one). */
static int file_get(kvik_file *f, const char *fn) {
  if (!f)
    return kvik__err(KVIK_EINVAL, "%s: file is NULL", fn);
  if (!kvik__handle_get(f, KVIK_MAGIC_FILE))
    return kvik__err(KVIK_EMISUSE,
                     "%s: %p is not an open kvik file (closed already, or never a kvik_file)", fn,
                     (void *)f);
  return 0;
}

/* Closes the descriptors and frees f, once nothing holds it. Returns 0 or the first close(2)
 * error, described in msg; this thread's own detail is left alone, since the last reference
 * may go in a worker, or in a waiter that is reporting another failure. */
static int file_free(kvik_file *f, char *msg, size_t len) {
  int rc = 0;
  /* Before the descriptors close: cuFile's handle refers to cufile_fd. */
  kvik__cufile_handle_deregister(f->cufile);
  if (f->cufile_fd >= 0)
    kvik__sys.close(f->cufile_fd);
  int fds[2] = {f->fds.fd_direct, f->fds.fd};
  for (int i = 0; i < 2; i++)
    if (fds[i] >= 0 && kvik__sys.close(fds[i]) != 0 && rc == 0) {
      int e = errno;
      rc = -e;
      snprintf(msg, len, "kvik_file_close %s: close(2) of its %sdescriptor: %s", f->path,
               i == 0 ? "O_DIRECT " : "", kvik__errno_text(e));
    }
  pthread_mutex_destroy(&f->decide_lock);
  kvik__free(f->path);
  kvik__free(f);
  return rc;
}

/* Frees f once its last reference is gone; a close(2) error goes to the log, since the call
 * that could have returned it (kvik_file_close) is over. */
static void file_last_put(kvik_file *f) {
  char msg[KVIK_ERRMSG_MAX];
  if (file_free(f, msg, sizeof msg) != 0)
    kvik__log(KVIK_LOG_WARN,
              "%s (the file was closed while operations were in flight; the descriptors were "
              "closed when the last of them finished)",
              msg);
}

void kvik__file_put(kvik_file *f) {
  if (atomic_fetch_sub_explicit(&f->h.refs, 1, memory_order_acq_rel) == 1)
    file_last_put(f);
}

static void *file_free_thread(void *arg) {
  file_last_put(arg);
  return NULL;
}

void kvik__file_put_later(kvik_file *f) {
  if (atomic_fetch_sub_explicit(&f->h.refs, 1, memory_order_acq_rel) != 1)
    return;
  /* Only cuFile's handle needs a thread that may call cuFile; descriptors close anywhere. A
   * thread of its own rather than a pool worker: getting the default pool may resize it, which
   * waits for workers, and a CUDA host function must never wait for the stream's own work. */
  if (f->cufile) {
    pthread_attr_t a;
    pthread_t t;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &a, file_free_thread, f);
    pthread_attr_destroy(&a);
    if (rc == 0)
      return;
    kvik__log(KVIK_LOG_WARN, "%s: no thread to close the file on (%s); closing it here", f->path,
              kvik__errno_text(rc));
  }
  file_last_put(f);
}

/* Parses fopen-style flags. Returns 0 and the open(2) flags, or KVIK_EINVAL naming the path. */
static int parse_flags(const char *path, const char *flags, int *oflags, bool *rd, bool *wr) {
  char mode = flags[0];
  if (mode == '\0')
    return kvik__err(KVIK_EINVAL, "kvik_file_open %s: empty flags \"\" (use r, r+, w or w+)", path);
  bool plus = false;
  for (const char *p = flags + 1; *p; p++) {
    if (*p == '+' && !plus)
      plus = true;
    else if (*p != 'b')
      return kvik__err(KVIK_EINVAL, "kvik_file_open %s: unknown flags \"%s\" (use r, r+, w or w+)",
                       path, flags);
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
                     "kvik_file_open %s: append mode \"%s\" is not supported: positioned writes "
                     "cannot honour O_APPEND; open with \"r+\" and write at kvik_file_size()",
                     path, flags);
  default:
    return kvik__err(KVIK_EINVAL, "kvik_file_open %s: unknown flags \"%s\" (use r, r+, w or w+)",
                     path, flags);
  }
}

static void set_reason(kvik_file *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_reason(kvik_file *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->reason, sizeof f->reason, fmt, ap);
  va_end(ap);
}

/* The cuFile part of the path decision. Sets the path and reason and returns 0, or, when cuFile
 * is required (compat mode OFF) and cannot serve the file, returns the error naming the step.
 * Called with decide_lock held (or before the handle is published). */
static int decide_cufile(kvik_file *f, bool required) {
  const char *mode = required ? "compat mode OFF" : "compat mode AUTO";
  const char *step = NULL;
  char why[512];
  int rc = 0;
  const struct kvik__cufile_api *cf;
  /* AUTO asks first whether cuFile could do DMA for this file at all: where the answer needs
   * no cuFile (no nvidia-fs and not on NVMe), its driver is never opened. */
  bool prefer = kvik__cfg_u64(KVIK_CFG_PREFER_CUFILE_COMPAT);
  int dma = required || prefer ? -1 : kvik__cufile_dma(f->path, f->fds.fd, why, sizeof why);
  if (dma != 0 && (rc = kvik__cufile_get(&cf)) != 0) {
    step = "loading cuFile";
    goto no_cufile;
  }
  if (dma < 0)
    dma = kvik__cufile_dma(f->path, f->fds.fd, why, sizeof why);
  if (!required && !dma && !prefer) {
    f->io_path = KVIK_PATH_POSIX;
    set_reason(f,
               "%s: kvik's device path, faster than cuFile's compat mode: %s "
               "(KVIK_PREFER_CUFILE_COMPAT=1 uses cuFile anyway)",
               mode, why);
    return 0;
  }
  /* cuFile wants an O_DIRECT descriptor for DMA; one of its own, so the handle's lifetime is
   * independent of the descriptors kvik's path uses. */
  int fd = kvik__sys.open(f->path,
                          (f->oflags & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_DIRECT | O_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    rc = kvik__err(-e, "open with O_DIRECT refused: %s", kvik__errno_text(e));
    step = "opening the file with O_DIRECT for cuFile";
    goto no_cufile;
  }
  CUfileHandle_t h;
  if ((rc = kvik__cufile_handle_register(fd, f->path, &h)) != 0) {
    kvik__sys.close(fd);
    step = "registering the file with cuFile";
    goto no_cufile;
  }
  f->cufile_fd = fd;
  f->cufile = h;
  f->io_path = dma ? KVIK_PATH_GDS : KVIK_PATH_CUFILE_COMPAT;
  set_reason(f, "%s: cuFile serves the file: %s%s", mode, why,
             !dma && !required ? " (KVIK_PREFER_CUFILE_COMPAT is set)" : "");
  return 0;

no_cufile:;
  char detail[KVIK_ERRMSG_MAX];
  snprintf(detail, sizeof detail, "%s", kvik_last_error());
  if (required)
    return kvik__err(rc, "kvik_file_open %s: compat mode OFF requires cuFile, and %s failed: %s",
                     f->path, step, detail);
  f->io_path = KVIK_PATH_POSIX;
  set_reason(f, "%s: kvik's device path: %s failed: %s", mode, step, detail);
  kvik__err_clear();
  return 0;
}

/* Decides the path that serves the file at open: ON is kvik's POSIX path; OFF requires cuFile
 * (the open fails otherwise); AUTO uses cuFile only where it does real DMA (see decide_cufile),
 * decided now if the process uses CUDA, else deferred (see struct kvik_file). */
static int choose_path(kvik_file *f) {
  f->io_path = KVIK_PATH_POSIX;
  switch (f->compat) {
  case KVIK_COMPAT_ON:
    snprintf(f->reason, sizeof f->reason, "compat mode ON: POSIX I/O only");
    atomic_store(&f->decided, true);
    return 0;
  case KVIK_COMPAT_OFF: {
    int rc = decide_cufile(f, true);
    atomic_store(&f->decided, rc == 0);
    return rc;
  }
  default: {
    const struct kvik__cuda_api *cu;
    if (!kvik__cuda_get_if_used(&cu)) {
      snprintf(f->reason, sizeof f->reason,
               "compat mode AUTO: kvik's POSIX path; whether cuFile serves device memory is "
               "decided at the first I/O with device memory (CUDA is not in use yet)");
      return 0;
    }
    decide_cufile(f, false);
    atomic_store(&f->decided, true);
    return 0;
  }
  }
}

/* Makes a deferred AUTO decision (once; concurrent callers wait for the first). */
static void ensure_decided(kvik_file *f) {
  if (atomic_load_explicit(&f->decided, memory_order_acquire))
    return;
  pthread_mutex_lock(&f->decide_lock);
  if (!atomic_load_explicit(&f->decided, memory_order_relaxed)) {
    decide_cufile(f, false);
    atomic_store_explicit(&f->decided, true, memory_order_release);
  }
  pthread_mutex_unlock(&f->decide_lock);
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
  if (!path)
    return kvik__err(KVIK_EINVAL, "kvik_file_open: path is NULL");
  if (!out || !flags)
    return kvik__err(KVIK_EINVAL, "kvik_file_open %s: %s is NULL", path, !out ? "out" : "flags");
  if ((int)compat < KVIK_COMPAT_OFF || compat > KVIK_COMPAT_DEFAULT)
    return kvik__err(KVIK_EINVAL, "kvik_file_open %s: unknown compat mode %d", path, (int)compat);
  int oflags = 0;
  bool rd = false, wr = false;
  int rc = parse_flags(path, flags, &oflags, &rd, &wr);
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
  f->oflags = oflags;
  f->cufile_fd = -1;
  pthread_mutex_init(&f->decide_lock, NULL);
  f->compat =
      compat == KVIK_COMPAT_DEFAULT ? (int)kvik__cfg_u64(KVIK_CFG_COMPAT_MODE) : (int)compat;
  f->fds.path = f->path;
  f->fds.fd_direct = -1;
  /* What kvik cannot serve is refused before it is opened: the open of a FIFO waits for its
   * other end, and opening a device can have effects of its own. O_NONBLOCK keeps the open from
   * blocking should the path change between the stat and the open; the type is checked again
   * on the descriptor, and O_NONBLOCK cleared (it means nothing for the files kvik serves, but
   * the descriptor is the caller's to use too, through kvik_file_fd). */
  struct stat st;
  if (stat(path, &st) == 0 && (rc = kvik__servable("kvik_file_open", path, st.st_mode)) != 0)
    goto fail_free;
  f->fds.fd = kvik__sys.open(path, oflags | O_NONBLOCK | O_CLOEXEC, mode);
  if (f->fds.fd < 0) {
    rc = kvik__err(-errno, "kvik_file_open %s (\"%s\"): %s", path, flags, kvik__errno_text(errno));
    goto fail_free;
  }
  if (kvik__sys.fstat(f->fds.fd, &st) != 0) {
    rc = kvik__err(-errno, "kvik_file_open %s: fstat: %s", path, kvik__errno_text(errno));
    goto fail_close;
  }
  if ((rc = kvik__servable("kvik_file_open", path, st.st_mode)) != 0)
    goto fail_close;
  int fl = fcntl(f->fds.fd, F_GETFL);
  if (fl < 0 || fcntl(f->fds.fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    rc = kvik__err(-errno, "kvik_file_open %s: fcntl: %s", path, kvik__errno_text(errno));
    goto fail_close;
  }
  /* A second descriptor with O_DIRECT where direct I/O is wanted. A filesystem that refuses
   * it (EINVAL: tmpfs before Linux 6.6, some FUSE mounts) is used buffered, silently, as kvikio
   * does; kvik_file_info then says direct I/O is off. Any other failure (out of descriptors or
   * memory, the file gone) fails the open: it says nothing about the filesystem, and turning
   * direct I/O off for it would change the file's I/O path without a word. O_NONBLOCK as
   * above (no effect on a regular file). */
  f->fds.direct_read = rd && kvik__cfg_u64(KVIK_CFG_AUTO_DIRECT_IO_READ);
  f->fds.overread = kvik__cfg_u64(KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD);
  f->fds.direct_write = wr && kvik__cfg_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE);
  if ((f->fds.direct_read || f->fds.direct_write) && S_ISREG(st.st_mode)) {
    int dflags = (oflags & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_DIRECT | O_NONBLOCK | O_CLOEXEC;
    f->fds.fd_direct = kvik__sys.open(path, dflags, 0);
    if (f->fds.fd_direct < 0) {
      int e = errno;
      if (e != EINVAL && e != EOPNOTSUPP) {
        rc = kvik__err(-e, "kvik_file_open %s: the O_DIRECT descriptor could not be opened: %s",
                       path, kvik__errno_text(e));
        goto fail_close;
      }
      kvik__log(KVIK_LOG_DEBUG, "%s: O_DIRECT refused (%s), using buffered I/O", path,
                kvik__errno_text(e));
    }
  }
  if ((rc = choose_path(f)) != 0)
    goto fail_close;
  choose_pool(f);
  atomic_store_explicit(&f->h.refs, 1, memory_order_relaxed);
  kvik__handle_add(&f->h, KVIK_MAGIC_FILE);
  *out = f;
  kvik__err_clear();
  return 0;

fail_close:
  if (f->fds.fd_direct >= 0)
    kvik__sys.close(f->fds.fd_direct);
  kvik__sys.close(f->fds.fd);
fail_free:
  pthread_mutex_destroy(&f->decide_lock);
  kvik__free(f->path);
  kvik__free(f);
  return rc;
}

int kvik_file_close(kvik_file *f) {
  if (!f)
    return 0;
  if (!kvik__handle_take(f, KVIK_MAGIC_FILE))
    return kvik__err(KVIK_EMISUSE,
                     "kvik_file_close: %p is not an open kvik file (closed already, or never a "
                     "kvik_file)",
                     (void *)f);
  /* Operations in flight hold the file: the last of them closes it (kvik__file_put). */
  if (atomic_fetch_sub_explicit(&f->h.refs, 1, memory_order_acq_rel) != 1)
    return 0;
  char msg[KVIK_ERRMSG_MAX];
  int rc = file_free(f, msg, sizeof msg);
  return rc ? kvik__err_set(rc, msg) : 0;
}

int64_t kvik_file_size(kvik_file *f) {
  int rc = file_get(f, "kvik_file_size");
  if (rc)
    return rc;
  struct stat st;
  int64_t size;
  if (kvik__sys.fstat(f->fds.fd, &st) != 0)
    size = kvik__err(-errno, "kvik_file_size %s: fstat: %s", f->path, kvik__errno_text(errno));
  else if (S_ISBLK(st.st_mode)) { /* st_size is 0 for a block device: ask the device */
    uint64_t bytes = 0;
    if (ioctl(f->fds.fd, BLKGETSIZE64, &bytes) != 0)
      size = kvik__err(-errno, "kvik_file_size %s: BLKGETSIZE64: %s", f->path,
                       kvik__errno_text(errno));
    else
      size = (int64_t)bytes;
  } else {
    size = (int64_t)st.st_size;
  }
  kvik__file_put(f);
  return size;
}

int kvik_file_fd(kvik_file *f) {
  int rc = file_get(f, "kvik_file_fd");
  if (rc)
    return rc;
  int fd = f->fds.fd;
  kvik__file_put(f);
  return fd;
}

const char *kvik_file_path(kvik_file *f) {
  if (file_get(f, "kvik_file_path"))
    return NULL;
  const char *path = f->path; /* the caller's reference keeps it */
  kvik__file_put(f);
  return path;
}

static int file_info(kvik_file *f, struct kvik_file_info *info) {
  if (!info)
    return kvik__err(KVIK_EINVAL, "kvik_file_info %s: info is NULL", f->path);
  if (info->sz < sizeof *info)
    return kvik__err(KVIK_EINVAL, "kvik_file_info %s: info->sz is %zu, expected at least %zu",
                     f->path, info->sz, sizeof *info);
  /* A deferred AUTO decision is made here when the process uses CUDA (never loading it). */
  const struct kvik__cuda_api *cu;
  if (!atomic_load_explicit(&f->decided, memory_order_acquire) && kvik__cuda_get_if_used(&cu))
    ensure_decided(f);
  size_t sz = info->sz;
  memset(info, 0, sz);
  info->sz = sz;
  pthread_mutex_lock(&f->decide_lock); /* the fields may be written by a decision right now */
  info->path = f->io_path;
  info->compat = f->compat;
  info->direct_read = f->fds.direct_read && f->fds.fd_direct >= 0;
  info->direct_write = f->fds.direct_write && f->fds.fd_direct >= 0;
  info->readable = f->readable;
  info->writable = f->writable;
  size_t n = KVIK_MIN(strlen(f->reason), sizeof info->reason - 1);
  memcpy(info->reason, f->reason, n);
  info->reason[n] = '\0';
  pthread_mutex_unlock(&f->decide_lock);
  return 0;
}

int kvik_file_info(kvik_file *f, struct kvik_file_info *info) {
  int rc = file_get(f, "kvik_file_info");
  if (rc)
    return rc;
  rc = file_info(f, info);
  kvik__file_put(f);
  return rc;
}

/* Checks a read or write request on a file the caller holds. Returns 0 or a negative code
 * with the detail set: the call, the path, the offset and size, and why. */
static int check_io(kvik_file *f, const void *buf, size_t size, int64_t offset, bool write,
                    const char *fn) {
  const char *what = write ? "write" : "read";
  if (!buf && size)
    return kvik__err(KVIK_EINVAL, "%s %s: cannot %s %zu bytes at offset %lld: buffer is NULL", fn,
                     f->path, what, size, (long long)offset);
  if (offset < 0)
    return kvik__err(KVIK_EINVAL, "%s %s: cannot %s %zu bytes at offset %lld: negative offset", fn,
                     f->path, what, size, (long long)offset);
  if (size > (size_t)INT64_MAX || offset > INT64_MAX - (int64_t)size)
    return kvik__err(KVIK_EOVERFLOW,
                     "%s %s: cannot %s %zu bytes at offset %lld: offset + size "
                     "overflows",
                     fn, f->path, what, size, (long long)offset);
  if (size > (size_t)SSIZE_MAX)
    return kvik__err(KVIK_EOVERFLOW,
                     "%s %s: cannot %s %zu bytes at offset %lld: size is larger than SSIZE_MAX", fn,
                     f->path, what, size, (long long)offset);
  return kvik__file_check_mode(f, write, size, offset, fn);
}

int kvik__file_check_mode(kvik_file *f, bool write, size_t size, int64_t offset, const char *fn) {
  if (write && !f->writable)
    return kvik__err(KVIK_EBADMODE,
                     "%s %s: cannot write %zu bytes at offset %lld: the file was opened "
                     "read-only",
                     fn, f->path, size, (long long)offset);
  if (!write && !f->readable)
    return kvik__err(KVIK_EBADMODE,
                     "%s %s: cannot read %zu bytes at offset %lld: the file was opened "
                     "write-only",
                     fn, f->path, size, (long long)offset);
  return kvik__config_ready();
}

/* Puts the call, the path and the request in front of the detail a lower layer set (memory
 * kind detection, the pool), which does not know them. Returns rc. */
static int request_err(int rc, kvik_file *f, bool write, size_t size, int64_t offset,
                       const char *fn) {
  char inner[KVIK_ERRMSG_MAX];
  snprintf(inner, sizeof inner, "%s", kvik_last_error());
  return kvik__err(rc, "%s %s: cannot %s %zu bytes at offset %lld: %s", fn, f->path,
                   write ? "write" : "read", size, (long long)offset, inner);
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
  if ((rc = kvik__mem_ctx(&mi, &c->ctx)) != 0)
    return rc;
  /* cuFile takes plain device memory whose allocation is known, from KVIKIO_GDS_THRESHOLD up;
   * managed and stream-ordered pool memory, and small transfers, use kvik's device path. */
  if (mi.kind == KVIK_MEM_DEVICE && !mi.pool && mi.range_known &&
      size >= kvik__cfg_u64(KVIK_CFG_GDS_THRESHOLD)) {
    ensure_decided(f);
    if (f->cufile) {
      c->cufile = true;
      c->base = kvik__cufile_base((uintptr_t)buf, size, (uintptr_t)mi.base);
    }
  }
  return 0;
}

static ssize_t read_chunk(void *ctx, uintptr_t buf, size_t len, int64_t off) {
  struct chunk_ctx *c = ctx;
  if (c->cufile)
    return kvik__cufile_read(c->f->cufile, c->f->path, c->ctx, c->base, buf, len, off);
  if (c->device)
    return kvik__dev_read(&c->f->fds, c->ctx, (uint64_t)buf, len, off);
  return kvik__posix_read(&c->f->fds, (void *)buf, len, off);
}

/* A chunk of a parallel device read on kvik's path: the last copies stay in flight until the
 * worker's flush (flush_chunks), so consecutive chunks on one worker overlap. */
static ssize_t read_chunk_pipelined(void *ctx, uintptr_t buf, size_t len, int64_t off) {
  struct chunk_ctx *c = ctx;
  return kvik__dev_read_chunk(&c->f->fds, c->ctx, (uint64_t)buf, len, off);
}

static int flush_chunks(void *ctx) {
  (void)ctx;
  return kvik__dev_flush();
}

static ssize_t write_chunk(void *ctx, uintptr_t buf, size_t len, int64_t off) {
  struct chunk_ctx *c = ctx;
  if (c->cufile)
    return kvik__cufile_write(c->f->cufile, c->f->path, c->ctx, c->base, buf, len, off);
  if (c->device)
    return kvik__dev_write(&c->f->fds, c->ctx, (uint64_t)buf, len, off);
  return kvik__posix_write(&c->f->fds, (const void *)buf, len, off);
}

ssize_t kvik__file_rw(kvik_file *f, bool write, void *buf, size_t size, int64_t offset,
                      const char *fn) {
  int rc = check_io(f, buf, size, offset, write, fn);
  if (rc)
    return rc;
  struct chunk_ctx c;
  if (size == 0)
    return 0;
  if ((rc = target(f, buf, size, &c)) != 0)
    return request_err(rc, f, write, size, offset, fn);
  return write ? write_chunk(&c, (uintptr_t)buf, size, offset)
               : read_chunk(&c, (uintptr_t)buf, size, offset);
}

ssize_t kvik_file_read(kvik_file *f, void *buf, size_t size, int64_t offset) {
  int rc = file_get(f, "kvik_file_read");
  if (rc)
    return rc;
  ssize_t n = kvik__file_rw(f, false, buf, size, offset, "kvik_file_read");
  kvik__file_put(f);
  return n;
}

ssize_t kvik_file_write(kvik_file *f, const void *buf, size_t size, int64_t offset) {
  int rc = file_get(f, "kvik_file_write");
  if (rc)
    return rc;
  ssize_t n = kvik__file_rw(f, true, (void *)buf, size, offset, "kvik_file_write");
  kvik__file_put(f);
  return n;
}

/* Resolves task size and pool from the options. */
static int io_opts(kvik_file *f, const struct kvik_io_opts *opts, size_t *task_size,
                   kvik_pool **pool, const char *fn) {
  *task_size = (size_t)kvik__cfg_u64(KVIK_CFG_TASK_SIZE);
  *pool = f->pool;
  if (opts) {
    if (opts->sz < offsetof(struct kvik_io_opts, pool) + sizeof opts->pool)
      return kvik__err(KVIK_EINVAL,
                       "%s %s: kvik_io_opts.sz is %zu, set it to sizeof(struct kvik_io_opts)", fn,
                       f->path, opts->sz);
    if (opts->task_size)
      *task_size = opts->task_size;
    if (opts->pool)
      *pool = opts->pool;
  }
  if (!*pool)
    return kvik_pool_default(pool);
  char who[KVIK_ERRMSG_MAX / 2];
  snprintf(who, sizeof who, "%s %s: kvik_io_opts.pool", fn, f->path);
  return kvik__pool_check(*pool, who);
}

/* A parallel operation holds its file until its last chunk is done. */
static void chunk_ctx_release(void *ctx) { kvik__file_put(((struct chunk_ctx *)ctx)->f); }

static int submit(kvik_file *f, bool write, uintptr_t buf, size_t size, int64_t offset,
                  const struct kvik_io_opts *opts, kvik_future **out, const char *fn_name) {
  size_t task_size;
  kvik_pool *pool;
  struct chunk_ctx c;
  kvik__chunk_fn fn = write ? write_chunk : read_chunk;
  int rc = io_opts(f, opts, &task_size, &pool, fn_name);
  if (rc)
    return rc;
  if ((rc = target(f, (const void *)buf, size, &c)) != 0)
    return request_err(rc, f, write, size, offset, fn_name);
  /* Device transfers under KVIKIO_GDS_THRESHOLD run inline: a pool round trip would cost more
   * than the transfer. */
  if (c.device && size < kvik__cfg_u64(KVIK_CFG_GDS_THRESHOLD)) {
    kvik_future *fut;
    if ((rc = kvik__future_new(&fut)) != 0)
      return request_err(rc, f, write, size, offset, fn_name);
    ssize_t n = fn(&c, buf, size, offset);
    kvik__future_complete(fut, n, n < 0 ? kvik_last_error() : NULL);
    *out = fut;
    return 0;
  }
  kvik__flush_fn flush = NULL;
  if (fn == read_chunk && c.device && !c.cufile) {
    fn = read_chunk_pipelined;
    flush = flush_chunks;
  }
  atomic_fetch_add_explicit(&f->h.refs, 1, memory_order_relaxed); /* the operation's */
  rc = kvik__pool_submit_range(pool, fn, flush, chunk_ctx_release, &c, sizeof c, buf, size, offset,
                               task_size, out);
  if (rc) {
    kvik__file_put(f);
    return request_err(rc, f, write, size, offset, fn_name);
  }
  return 0;
}

/* kvik_file_pread and kvik_file_pwrite. */
static int parallel(kvik_file *f, bool write, const void *buf, size_t size, int64_t offset,
                    const struct kvik_io_opts *opts, kvik_future **out, const char *fn) {
  int rc = file_get(f, fn);
  if (rc)
    return rc;
  if (!out)
    rc = kvik__err(KVIK_EINVAL, "%s %s: cannot %s %zu bytes at offset %lld: out is NULL", fn,
                   f->path, write ? "write" : "read", size, (long long)offset);
  else if ((rc = check_io(f, buf, size, offset, write, fn)) == 0)
    rc = submit(f, write, (uintptr_t)buf, size, offset, opts, out, fn);
  kvik__file_put(f);
  return rc;
}

int kvik_file_pread(kvik_file *f, void *buf, size_t size, int64_t offset,
                    const struct kvik_io_opts *opts, kvik_future **out) {
  return parallel(f, false, buf, size, offset, opts, out, "kvik_file_pread");
}

int kvik_file_pwrite(kvik_file *f, const void *buf, size_t size, int64_t offset,
                     const struct kvik_io_opts *opts, kvik_future **out) {
  return parallel(f, true, buf, size, offset, opts, out, "kvik_file_pwrite");
}

int kvik_drop_file_cache(const char *path) {
  if (!path)
    return kvik__err(KVIK_EINVAL, "kvik_drop_file_cache: path is NULL");
  /* Special files are refused before they are opened (a FIFO's open waits for a writer), and
   * once more on the descriptor, opened with O_NONBLOCK, should the path change in between. */
  struct stat st;
  int rc = 0;
  if (stat(path, &st) == 0 && (rc = kvik__servable("kvik_drop_file_cache", path, st.st_mode)))
    return rc;
  int fd = kvik__sys.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0)
    return kvik__err(-errno, "kvik_drop_file_cache %s: %s", path, kvik__errno_text(errno));
  if (kvik__sys.fstat(fd, &st) != 0)
    rc = kvik__err(-errno, "kvik_drop_file_cache %s: fstat: %s", path, kvik__errno_text(errno));
  else
    rc = kvik__servable("kvik_drop_file_cache", path, st.st_mode);
  if (rc) {
    kvik__sys.close(fd);
    return rc;
  }
  /* Dirty pages cannot be dropped: write them back first. */
  if (kvik__sys.fdatasync(fd) != 0 && errno != EINVAL)
    rc = kvik__err(-errno, "kvik_drop_file_cache %s: fdatasync: %s", path, kvik__errno_text(errno));
  int e = rc ? 0 : kvik__sys.posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  if (e != 0)
    rc = kvik__err(-e, "kvik_drop_file_cache %s: posix_fadvise: %s", path, kvik__errno_text(e));
  kvik__sys.close(fd);
  return rc;
}

/* ---- internal accessors (file.h) ---------------------------------------------------------- */

int kvik__file_get(kvik_file *f, const char *fn) { return file_get(f, fn); }

const char *kvik__file_path(kvik_file *f) { return f->path; }

int kvik__file_check_io(kvik_file *f, const void *buf, size_t size, int64_t offset, bool write,
                        const char *fn) {
  return check_io(f, buf, size, offset, write, fn);
}

CUfileHandle_t kvik__file_gds(kvik_file *f) {
  ensure_decided(f);
  return f->io_path == KVIK_PATH_GDS ? f->cufile : NULL;
}

const struct kvik__fds *kvik__file_fds(kvik_file *f) { return &f->fds; }

int kvik__file_pool(kvik_file *f, kvik_pool **out) {
  *out = f->pool;
  return f->pool ? 0 : kvik_pool_default(out);
}
