/* kvik_mmap: a file, or a range of it, mapped into memory (kvikio's MmapHandle), with reads from
 * the mapping into host or device memory and writes into it from either, blocking or split into
 * task-size chunks on a pool.
 *
 * Host memory is a memcpy (which faults the mapping's pages in: the kernel reads ahead). Device
 * and managed memory: the owning context is pushed and the driver copies straight between the
 * mapping, as pageable host memory, and the device, on the calling thread's per-thread default
 * stream, which is then synchronized, so the bytes are on the device when the call (or the
 * chunk) returns. The per-thread stream exists in every context without being created and
 * orders after work on the legacy default stream, as the file path's streams do. The driver
 * stages pageable copies through its own pinned buffers; with the chunks on the pool, several
 * workers do that at once (kvikio copies a whole pread chunk, or a whole read, through one
 * bounce buffer on one thread).
 *
 * The mapping is MAP_SHARED: a read-write mapping's stores reach the file, and a read-only one
 * sees what other writers put in the file. */
#include "core/core.h"
#include "gpu/cuda.h"
#include "gpu/gpu.h"
#include "pool/pool.h"
#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define KVIK_MAGIC_MMAP 0x6b766d6dU /* "kvmm" */

struct kvik_mmap {
  struct kvik__handle h; /* in the live-handle set while open (refs unused: close frees it) */
  int fd;                /* kept open: the file's current size, growing it for writes, msync */
  char *path;
  bool readable, writable;
  int64_t offset; /* the mapped range as the caller gave it: [offset, offset + size) */
  size_t size;
  void *map;           /* page-aligned start of the mapping; NULL when size is 0 */
  size_t map_len;      /* bytes mapped from map (size plus offset's distance into its page) */
  unsigned char *data; /* the byte at file offset `offset` */
  /* lock guards inflight (chunks of parallel operations not yet run; close waits for 0) and
   * serializes growing the file for writes past its end. */
  pthread_mutex_t lock;
  pthread_cond_t idle;
  size_t inflight;
};

static int mmap_check(const kvik_mmap *m, const char *fn) {
  if (!m)
    return kvik__err(KVIK_EINVAL, "%s: mapping is NULL", fn);
  if (!kvik__handle_live(m, KVIK_MAGIC_MMAP))
    return kvik__err(KVIK_EMISUSE, "%s: %p is not an open kvik mapping (closed, or never one)", fn,
                     (const void *)m);
  return 0;
}

/* fopen-style flags, as kvik_file_open takes them. */
static int parse_flags(const char *path, const char *flags, bool *rd, bool *wr, bool *create) {
  bool plus = false;
  for (const char *p = flags + (flags[0] != '\0'); *p; p++) {
    if (*p == '+' && !plus)
      plus = true;
    else if (*p != 'b')
      goto bad;
  }
  switch (flags[0]) {
  case 'r':
    *rd = true;
    *wr = plus;
    *create = false;
    return 0;
  case 'w':
    *rd = plus;
    *wr = true;
    *create = true;
    return 0;
  default: break;
  }
bad:
  return kvik__err(KVIK_EINVAL, "kvik_mmap_open %s: unknown flags \"%s\" (use r, r+, w or w+)",
                   path, flags);
}

int kvik_mmap_open(kvik_mmap **out, const char *path, const char *flags, size_t size,
                   int64_t offset, mode_t mode) {
  if (!out || !path || !flags)
    return kvik__err(KVIK_EINVAL, "kvik_mmap_open: %s is NULL",
                     !out    ? "out"
                     : !path ? "path"
                             : "flags");
  bool rd = false, wr = false, create = false;
  int rc = parse_flags(path, flags, &rd, &wr, &create);
  if (rc)
    return rc;
  if (offset < 0)
    return kvik__err(KVIK_EINVAL, "kvik_mmap_open %s: negative offset %lld", path,
                     (long long)offset);
  if (size > (size_t)INT64_MAX || offset > INT64_MAX - (int64_t)size)
    return kvik__err(KVIK_EOVERFLOW, "kvik_mmap_open %s: offset %lld + size %zu overflows", path,
                     (long long)offset, size);
  if (create && size == 0)
    return kvik__err(KVIK_EINVAL,
                     "kvik_mmap_open %s (\"%s\"): a mapping of a new file needs a size > 0", path,
                     flags);

  kvik_mmap *m = kvik__calloc(1, sizeof *m);
  char *dup = kvik__strdup(path);
  if (!m || !dup) {
    kvik__free(m);
    kvik__free(dup);
    return kvik__err(-ENOMEM, "kvik_mmap_open %s: out of memory", path);
  }
  m->path = dup;
  m->readable = rd;
  m->writable = wr;
  /* A shared writable mapping needs a descriptor open for reading too, so "w" opens O_RDWR
   * (reads through the handle are still refused). O_NONBLOCK: a FIFO must not block the open;
   * it is refused below, and the flag means nothing for the regular files that are mapped. */
  int oflags = (wr ? O_RDWR : O_RDONLY) | (create ? O_CREAT | O_TRUNC : 0) | O_NONBLOCK | O_CLOEXEC;
  m->fd = kvik__sys.open(path, oflags, mode);
  if (m->fd < 0) {
    rc = kvik__err(-errno, "kvik_mmap_open %s (\"%s\"): %s", path, flags, kvik__errno_text(errno));
    goto fail_free;
  }
  struct stat st;
  if (kvik__sys.fstat(m->fd, &st) != 0) {
    rc = kvik__err(-errno, "kvik_mmap_open %s: fstat: %s", path, kvik__errno_text(errno));
    goto fail_close;
  }
  if (S_ISDIR(st.st_mode)) {
    rc = kvik__err(-EISDIR, "kvik_mmap_open %s: is a directory", path);
    goto fail_close;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = kvik__err(KVIK_EINVAL, "kvik_mmap_open %s: not a regular file (only those are mapped)",
                   path);
    goto fail_close;
  }
  if (size == 0) {
    if (offset > (int64_t)st.st_size) {
      rc = kvik__err(KVIK_EINVAL,
                     "kvik_mmap_open %s: offset %lld is past the end of the file (%lld bytes)",
                     path, (long long)offset, (long long)st.st_size);
      goto fail_close;
    }
    size = (size_t)((int64_t)st.st_size - offset);
  }
  if (create && kvik__sys.ftruncate(m->fd, offset + (int64_t)size) != 0) {
    rc = kvik__err(-errno, "kvik_mmap_open %s: sizing the new file to %lld bytes: %s", path,
                   (long long)(offset + (int64_t)size), kvik__errno_text(errno));
    goto fail_close;
  }
  m->offset = offset;
  m->size = size;
  if (size > 0) {
    size_t page = kvik__page_size();
    int64_t moff = offset / (int64_t)page * (int64_t)page;
    m->map_len = size + (size_t)(offset - moff);
    m->map = kvik__sys.mmap(NULL, m->map_len, PROT_READ | (wr ? PROT_WRITE : 0), MAP_SHARED, m->fd,
                            (off_t)moff);
    if (m->map == MAP_FAILED) {
      int e = errno;
      m->map = NULL;
      rc = kvik__err(-e, "kvik_mmap_open %s: mmap of %zu bytes at offset %lld: %s", path,
                     m->map_len, (long long)moff, kvik__errno_text(e));
      goto fail_close;
    }
    m->data = (unsigned char *)m->map + (offset - moff);
  }
  pthread_mutex_init(&m->lock, NULL);
  pthread_cond_init(&m->idle, NULL);
  atomic_init(&m->h.refs, 1);
  kvik__handle_add(&m->h, KVIK_MAGIC_MMAP);
  *out = m;
  kvik__err_clear();
  return 0;

fail_close:
  kvik__sys.close(m->fd);
fail_free:
  kvik__free(m->path);
  kvik__free(m);
  return rc;
}

int kvik_mmap_close(kvik_mmap *m) {
  if (!m)
    return 0;
  /* Out of the set first: a second close, or any later call, is refused without a read. */
  if (!kvik__handle_take(m, KVIK_MAGIC_MMAP))
    return kvik__err(KVIK_EMISUSE, "kvik_mmap_close: %p is not an open kvik mapping", (void *)m);
  int rc = 0;
  /* Parallel operations still running keep using the mapping: let them finish. */
  pthread_mutex_lock(&m->lock);
  while (m->inflight > 0)
    pthread_cond_wait(&m->idle, &m->lock);
  pthread_mutex_unlock(&m->lock);
  if (m->map && kvik__sys.munmap(m->map, m->map_len) != 0)
    rc = kvik__err(-errno, "kvik_mmap_close %s: munmap: %s", m->path, kvik__errno_text(errno));
  if (kvik__sys.close(m->fd) != 0 && rc == 0)
    rc = kvik__err(-errno, "kvik_mmap_close %s: %s", m->path, kvik__errno_text(errno));
  pthread_cond_destroy(&m->idle);
  pthread_mutex_destroy(&m->lock);
  kvik__free(m->path);
  kvik__free(m);
  return rc;
}

int kvik_mmap_range(kvik_mmap *m, int64_t *offset, size_t *size, void **addr) {
  int rc = mmap_check(m, "kvik_mmap_range");
  if (rc)
    return rc;
  if (offset)
    *offset = m->offset;
  if (size)
    *size = m->size;
  if (addr)
    *addr = m->data;
  return 0;
}

static int64_t current_size(kvik_mmap *m, const char *fn) {
  struct stat st;
  if (kvik__sys.fstat(m->fd, &st) != 0)
    return kvik__err(-errno, "%s %s: fstat: %s", fn, m->path, kvik__errno_text(errno));
  return (int64_t)st.st_size;
}

int64_t kvik_mmap_file_size(kvik_mmap *m) {
  int rc = mmap_check(m, "kvik_mmap_file_size");
  return rc ? rc : current_size(m, "kvik_mmap_file_size");
}

/* Checks a transfer of size bytes at file offset offset against the handle and its mapped
 * range. */
static int check_io(kvik_mmap *m, const void *buf, size_t size, int64_t offset, bool write,
                    const char *fn) {
  int rc = mmap_check(m, fn);
  if (rc)
    return rc;
  if (!buf && size)
    return kvik__err(KVIK_EINVAL, "%s %s: buffer is NULL", fn, m->path);
  if (offset < 0)
    return kvik__err(KVIK_EINVAL, "%s %s: negative offset %lld", fn, m->path, (long long)offset);
  if (size > (size_t)SSIZE_MAX || offset > INT64_MAX - (int64_t)size)
    return kvik__err(KVIK_EOVERFLOW, "%s %s: offset %lld + size %zu overflows", fn, m->path,
                     (long long)offset, size);
  if (write && !m->writable)
    return kvik__err(KVIK_EBADMODE, "%s %s: the mapping is read-only", fn, m->path);
  if (!write && !m->readable)
    return kvik__err(KVIK_EBADMODE, "%s %s: the mapping was opened write-only (\"w\")", fn,
                     m->path);
  if (offset < m->offset || (uint64_t)(offset - m->offset) > m->size ||
      size > m->size - (size_t)(offset - m->offset))
    return kvik__err(KVIK_EINVAL,
                     "%s %s: %zu bytes at offset %lld are outside the mapping, which holds "
                     "offsets [%lld, %lld) of the file",
                     fn, m->path, size, (long long)offset, (long long)m->offset,
                     (long long)(m->offset + (int64_t)m->size));
  return 0;
}

/* Reads stop at the file's current end (the mapping may reach past it: mapped at open past the
 * end, or the file shrank since); a page past the end would raise SIGBUS. Returns the bytes
 * that exist, or a negative code. */
static ssize_t clamp_read(kvik_mmap *m, size_t size, int64_t offset, const char *fn) {
  if (size == 0)
    return 0;
  int64_t fsize = current_size(m, fn);
  if (fsize < 0)
    return fsize;
  if (offset >= fsize)
    return 0;
  return (ssize_t)KVIK_MIN(size, (uint64_t)(fsize - offset));
}

/* Writes past the file's end first grow the file (never shrink it: writers of different ranges
 * race here), so the mapping's pages there exist. */
static int grow_for(kvik_mmap *m, size_t size, int64_t offset, const char *fn) {
  if (size == 0)
    return 0;
  int64_t end = offset + (int64_t)size;
  int rc = 0;
  pthread_mutex_lock(&m->lock);
  int64_t fsize = current_size(m, fn);
  if (fsize < 0)
    rc = (int)fsize;
  else if (fsize < end && kvik__sys.ftruncate(m->fd, end) != 0)
    rc = kvik__err(-errno, "%s %s: growing the file to %lld bytes: %s", fn, m->path, (long long)end,
                   kvik__errno_text(errno));
  pthread_mutex_unlock(&m->lock);
  return rc;
}

/* The bytes a transfer moves: a read up to the file's end, a write all of them (after growing
 * the file). A negative code on failure. */
static ssize_t avail(kvik_mmap *m, size_t size, int64_t offset, bool write, const char *fn) {
  if (!write)
    return clamp_read(m, size, offset, fn);
  int rc = grow_for(m, size, offset, fn);
  return rc ? rc : (ssize_t)size;
}

/* What a chunk needs: the handle, the direction, and for device or managed memory its
 * context. */
struct mctx {
  kvik_mmap *m;
  bool write;
  bool device;
  CUcontext ctx;
  const char *fn;
};

/* Fills c for buf (the kind is detected, never declared). */
static int target(kvik_mmap *m, const void *buf, size_t size, bool write, const char *fn,
                  struct mctx *c) {
  memset(c, 0, sizeof *c);
  c->m = m;
  c->write = write;
  c->fn = fn;
  struct kvik__mem_info mi;
  int rc = kvik__mem_query(buf, size, &mi);
  if (rc)
    return rc;
  if (!kvik__mem_is_device(mi.kind))
    return 0;
  c->device = true;
  return kvik__mem_ctx(&mi, &c->ctx);
}

/* Moves len bytes between the mapping at file offset off and buf. */
static ssize_t copy_range(const struct mctx *c, uintptr_t buf, size_t len, int64_t off) {
  kvik_mmap *m = c->m;
  unsigned char *at = m->data + (off - m->offset);
  if (!c->device) {
    if (c->write)
      memcpy(at, (const void *)buf, len);
    else
      memcpy((void *)buf, at, len);
    return (ssize_t)len;
  }
  const struct kvik__cuda_api *cu;
  int rc = kvik__cuda_get(&cu);
  if (rc)
    return rc;
  CUresult r = cu->cuCtxPushCurrent_v2(c->ctx);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "%s %s: cuCtxPushCurrent_v2 (the buffer's context)", c->fn, m->path);
  const char *what = c->write ? "cuMemcpyDtoHAsync_v2" : "cuMemcpyHtoDAsync_v2";
  r = c->write ? cu->cuMemcpyDtoHAsync_v2(at, (CUdeviceptr)buf, len, CU_STREAM_PER_THREAD)
               : cu->cuMemcpyHtoDAsync_v2((CUdeviceptr)buf, at, len, CU_STREAM_PER_THREAD);
  if (r == CUDA_SUCCESS) {
    what = "cuStreamSynchronize";
    r = cu->cuStreamSynchronize(CU_STREAM_PER_THREAD);
  }
  CUcontext dummy;
  cu->cuCtxPopCurrent_v2(&dummy);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "%s %s: %s (%zu bytes at offset %lld %s device memory at %#llx)",
                           c->fn, m->path, what, len, (long long)off, c->write ? "from" : "to",
                           (unsigned long long)buf);
  return (ssize_t)len;
}

static ssize_t chunk(void *ctx, uintptr_t buf, size_t len, int64_t off) {
  struct mctx *c = ctx;
  ssize_t n = copy_range(c, buf, len, off);
  kvik_mmap *m = c->m;
  pthread_mutex_lock(&m->lock);
  if (--m->inflight == 0)
    pthread_cond_broadcast(&m->idle);
  pthread_mutex_unlock(&m->lock);
  return n;
}

static ssize_t transfer(kvik_mmap *m, void *buf, size_t size, int64_t offset, bool write,
                        const char *fn) {
  int rc = check_io(m, buf, size, offset, write, fn);
  if (rc)
    return rc;
  ssize_t n = avail(m, size, offset, write, fn);
  if (n <= 0)
    return n;
  struct mctx c;
  if ((rc = target(m, buf, (size_t)n, write, fn, &c)) != 0)
    return rc;
  return copy_range(&c, (uintptr_t)buf, (size_t)n, offset);
}

static int ptransfer(kvik_mmap *m, void *buf, size_t size, int64_t offset,
                     const struct kvik_io_opts *opts, kvik_future **out, bool write,
                     const char *fn) {
  if (!out)
    return kvik__err(KVIK_EINVAL, "%s: out is NULL", fn);
  int rc = check_io(m, buf, size, offset, write, fn);
  if (rc || (rc = kvik__config_ready()) != 0)
    return rc;
  size_t task = (size_t)kvik__cfg_u64(KVIK_CFG_TASK_SIZE);
  kvik_pool *pool = NULL;
  if (opts) {
    if (opts->sz < offsetof(struct kvik_io_opts, pool) + sizeof opts->pool)
      return kvik__err(KVIK_EINVAL,
                       "kvik_io_opts: sz is %zu, set it to sizeof(struct kvik_io_opts)", opts->sz);
    if (opts->task_size)
      task = opts->task_size;
    pool = opts->pool;
  }
  if (pool ? (rc = kvik__pool_check(pool, "kvik_io_opts.pool")) != 0
           : (rc = kvik_pool_default(&pool)) != 0)
    return rc;
  ssize_t n = avail(m, size, offset, write, fn);
  if (n < 0)
    return (int)n;
  struct mctx c;
  if (n > 0 && (rc = target(m, buf, (size_t)n, write, fn, &c)) != 0)
    return rc;
  if (n == 0)
    memset(&c, 0, sizeof c);
  size_t nchunks = n ? ((size_t)n - 1) / task + 1 : 0;
  pthread_mutex_lock(&m->lock);
  m->inflight += nchunks;
  pthread_mutex_unlock(&m->lock);
  rc = kvik__pool_submit_range(pool, chunk, NULL, NULL, &c, sizeof c, (uintptr_t)buf, (size_t)n,
                               offset, task, out);
  if (rc) { /* nothing was queued: no chunk will run */
    pthread_mutex_lock(&m->lock);
    m->inflight -= nchunks;
    if (m->inflight == 0)
      pthread_cond_broadcast(&m->idle);
    pthread_mutex_unlock(&m->lock);
  }
  return rc;
}

ssize_t kvik_mmap_read(kvik_mmap *m, void *buf, size_t size, int64_t offset) {
  return transfer(m, buf, size, offset, false, "kvik_mmap_read");
}

ssize_t kvik_mmap_write(kvik_mmap *m, const void *buf, size_t size, int64_t offset) {
  return transfer(m, (void *)(uintptr_t)buf, size, offset, true, "kvik_mmap_write");
}

int kvik_mmap_pread(kvik_mmap *m, void *buf, size_t size, int64_t offset,
                    const struct kvik_io_opts *opts, kvik_future **out) {
  return ptransfer(m, buf, size, offset, opts, out, false, "kvik_mmap_pread");
}

int kvik_mmap_pwrite(kvik_mmap *m, const void *buf, size_t size, int64_t offset,
                     const struct kvik_io_opts *opts, kvik_future **out) {
  return ptransfer(m, (void *)(uintptr_t)buf, size, offset, opts, out, true, "kvik_mmap_pwrite");
}

int kvik_mmap_sync(kvik_mmap *m) {
  int rc = mmap_check(m, "kvik_mmap_sync");
  if (rc || !m->map || !m->writable)
    return rc;
  if (msync(m->map, m->map_len, MS_SYNC) != 0)
    return kvik__err(-errno, "kvik_mmap_sync %s: msync of %zu bytes: %s", m->path, m->map_len,
                     kvik__errno_text(errno));
  return 0;
}
