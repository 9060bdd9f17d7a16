/* Page-cache tools: how much of a file is cached (kvikio's get_page_cache_info), and dropping the
 * whole system's page cache. Dropping one file's cache is kvik_drop_file_cache (src/file.c).
 *
 * Counting uses cachestat(2) (Linux 6.5+): one system call for any range, without touching the
 * file's pages or mapping it. Where the kernel lacks it (ENOSYS), a seccomp filter refuses it
 * (EPERM, as container runtimes answer unknown system calls) or the filesystem does not support
 * it (EOPNOTSUPP: hugetlbfs), the range is mapped read-only in windows of 1 GiB and mincore(2)
 * tells which of its pages are resident; mapping a file does not read it, so the count does not
 * change what it counts. Both are asked on every call: a refused system call costs less than a
 * microsecond, and no state is kept that a test or a later seccomp change could leave stale. */
#include "pagecache.h"

#include "core/core.h"
#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes mapped at once by the mincore fallback: bounds the vector (one byte per page, 256 KiB
 * for 4 KiB pages) and the address space taken. */
#define MINCORE_WINDOW ((uint64_t)1 << 30)

static int count_mincore(int fd, uint64_t first, uint64_t npages, size_t *cached,
                         const char *what) {
  uint64_t page = kvik__page_size();
  uint64_t win = MINCORE_WINDOW / page;
  size_t veclen = (size_t)KVIK_MIN(npages, win);
  unsigned char *vec = kvik__malloc(veclen);
  if (!vec)
    return kvik__err(-ENOMEM, "%s: out of memory for a mincore vector of %zu bytes", what, veclen);
  size_t n = 0;
  int rc = 0;
  for (uint64_t p = first; p < first + npages;) {
    uint64_t k = KVIK_MIN(win, first + npages - p);
    size_t len = (size_t)(k * page);
    off_t moff = (off_t)(p * page);
    void *a = kvik__sys.mmap(NULL, len, PROT_READ, MAP_SHARED, fd, moff);
    if (a == MAP_FAILED) {
      int e = errno;
      rc = kvik__err(-e, "%s: mmap of %zu bytes at offset %lld (to count cached pages): %s", what,
                     len, (long long)moff, kvik__errno_text(e));
      break;
    }
    if (kvik__sys.mincore(a, len, vec) != 0) {
      int e = errno;
      rc = kvik__err(-e, "%s: mincore of %zu bytes at offset %lld: %s", what, len, (long long)moff,
                     kvik__errno_text(e));
      kvik__sys.munmap(a, len);
      break;
    }
    kvik__sys.munmap(a, len);
    for (uint64_t i = 0; i < k; i++)
      n += vec[i] & 1u;
    p += k;
  }
  kvik__free(vec);
  if (rc == 0)
    *cached = n;
  return rc;
}

int kvik__page_cache_count(int fd, int64_t st_size, int64_t off, int64_t len, size_t *cached,
                           size_t *total, int *method, const char *what) {
  *cached = *total = 0;
  if (method)
    *method = KVIK__PC_NONE;
  if (off >= st_size)
    return 0;
  int64_t end = len == 0 || len > st_size - off ? st_size : off + len;
  uint64_t page = kvik__page_size();
  uint64_t first = (uint64_t)off / page, last = (uint64_t)(end - 1) / page;
  uint64_t npages = last - first + 1;
  *total = (size_t)npages;

  struct kvik__cachestat_range r = {(uint64_t)off, (uint64_t)(end - off)};
  struct kvik__cachestat cs = {0};
  if (kvik__sys.cachestat(fd, &r, &cs, 0) == 0) {
    /* cachestat counts the pages of [off, end) as mincore would: the same first and last page. */
    *cached = (size_t)KVIK_MIN(cs.nr_cache, npages);
    if (method)
      *method = KVIK__PC_CACHESTAT;
    return 0;
  }
  int e = errno;
  if (e != ENOSYS && e != EPERM && e != EOPNOTSUPP)
    return kvik__err(-e, "%s: cachestat of %lld bytes at offset %lld: %s", what,
                     (long long)(end - off), (long long)off, kvik__errno_text(e));
  if (method)
    *method = KVIK__PC_MINCORE;
  return count_mincore(fd, first, npages, cached, what);
}

static const char *file_kind(mode_t m) {
  return S_ISFIFO(m)   ? "a FIFO"
         : S_ISSOCK(m) ? "a socket"
         : S_ISCHR(m)  ? "a character device"
         : S_ISBLK(m)  ? "a block device"
                       : "not a regular file";
}

/* The checks both public forms share, then the count. */
static int page_cache_info(int fd, int64_t offset, int64_t size, size_t *cached_pages,
                           size_t *total_pages, const char *what) {
  if (offset < 0 || size < 0)
    return kvik__err(KVIK_EINVAL, "%s: negative %s %lld", what, offset < 0 ? "offset" : "size",
                     (long long)(offset < 0 ? offset : size));
  if (offset > INT64_MAX - size)
    return kvik__err(KVIK_EOVERFLOW, "%s: offset %lld + size %lld overflows", what,
                     (long long)offset, (long long)size);
  struct stat st;
  if (kvik__sys.fstat(fd, &st) != 0)
    return kvik__err(-errno, "%s: fstat: %s", what, kvik__errno_text(errno));
  if (S_ISDIR(st.st_mode))
    return kvik__err(-EISDIR, "%s: is a directory", what);
  if (!S_ISREG(st.st_mode))
    return kvik__err(KVIK_EINVAL, "%s: is %s; only regular files have pages to count", what,
                     file_kind(st.st_mode));
  size_t cached, total;
  int rc =
      kvik__page_cache_count(fd, (int64_t)st.st_size, offset, size, &cached, &total, NULL, what);
  if (rc)
    return rc;
  if (cached_pages)
    *cached_pages = cached;
  if (total_pages)
    *total_pages = total;
  kvik__err_clear();
  return 0;
}

int kvik_page_cache_info(const char *path, int64_t offset, int64_t size, size_t *cached_pages,
                         size_t *total_pages) {
  if (!path)
    return kvik__err(KVIK_EINVAL, "kvik_page_cache_info: path is NULL");
  char what[KVIK_ERRMSG_MAX / 2];
  snprintf(what, sizeof what, "kvik_page_cache_info %s", path);
  /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer. */
  int fd = kvik__sys.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0)
    return kvik__err(-errno, "%s: %s", what, kvik__errno_text(errno));
  int rc = page_cache_info(fd, offset, size, cached_pages, total_pages, what);
  kvik__sys.close(fd);
  return rc;
}

int kvik_page_cache_info_fd(int fd, int64_t offset, int64_t size, size_t *cached_pages,
                            size_t *total_pages) {
  char what[64];
  snprintf(what, sizeof what, "kvik_page_cache_info_fd (fd %d)", fd);
  if (fd < 0)
    return kvik__err(-EBADF, "%s: not a file descriptor", what);
  return page_cache_info(fd, offset, size, cached_pages, total_pages, what);
}

#define DROP_CACHES "/proc/sys/vm/drop_caches"

/* Why writing DROP_CACHES failed, in words the caller can act on. */
static int drop_fail(int e, const char *step) {
  const char *hint = e == EACCES || e == EPERM
                         ? ": dropping the whole page cache needs root (CAP_SYS_ADMIN); "
                           "kvik_drop_file_cache() drops one file's pages without privileges"
                     : e == EROFS ? ": /proc/sys is mounted read-only here (a container?); "
                                    "kvik_drop_file_cache() drops one file's pages"
                                  : "";
  return kvik__err(-e, "kvik_drop_system_cache: %s " DROP_CACHES ": %s%s", step,
                   kvik__errno_text(e), hint);
}

int kvik_drop_system_cache(void) {
  /* Opened first, so a caller without the privilege gets its answer before a sync(). */
  int fd = kvik__sys.open(DROP_CACHES, O_WRONLY | O_CLOEXEC, 0);
  if (fd < 0)
    return drop_fail(errno, "opening");
  /* Dirty pages cannot be dropped: write everything back first, as `sync; echo 3 > ...`. */
  sync();
  int rc = 0;
  ssize_t n;
  do {
    n = kvik__sys.pwrite(fd, "3", 1, 0);
  } while (n < 0 && errno == EINTR);
  if (n != 1)
    rc = drop_fail(n < 0 ? errno : EIO, "writing 3 to");
  kvik__sys.close(fd);
  if (rc == 0)
    kvik__err_clear();
  return rc;
}
