/* POSIX I/O with opportunistic O_DIRECT.
 *
 * Reads and writes loop over short transfers and EINTR. Where direct I/O is wanted and the file
 * has an O_DIRECT descriptor, the page-aligned middle of a range goes through it: straight from
 * or into the user's buffer when that is page-aligned at the right place, through a pooled
 * page-aligned bounce buffer otherwise. The unaligned head and tail go through the buffered
 * descriptor, or (reads with KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD) through O_DIRECT reads of
 * the whole pages that hold them. If O_DIRECT is refused at I/O time (EINVAL), the same range
 * is done buffered, silently.
 *
 * A buffer the CPU cannot use (read-only for a read, shorter than the size, a hole) gives
 * -EFAULT on every path, naming the file offset of the first bad byte: the kernel reports it
 * for its own copies; before kvik copies into a caller's buffer from a bounce buffer, the
 * range is checked (kvik__buf_check); a write checks its whole source first, so nothing is
 * written from a bad buffer.
 */
#include "io/io.h"

#include "core/core.h"
#include "pool/bounce.h"
#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

static int io_fail(const struct kvik__fds *f, const char *op, int err, size_t size, int64_t off) {
  return kvik__err(-err, "%s %s: %zu bytes at offset %lld: %s", op, f->path ? f->path : "(file)",
                   size, (long long)off, kvik__errno_text(err));
}

/* -EFAULT for [buf, buf + size) at file offset off, whose byte bad the CPU cannot load (or, with
 * store, store): the message names the file offset of that byte. */
static int efault_at(const struct kvik__fds *f, const char *op, const void *buf, size_t size,
                     int64_t off, size_t bad, bool store) {
  return kvik__err(-EFAULT, "%s %s: %zu bytes at offset %lld: %s (the buffer cannot be %s at %p)",
                   op, f->path ? f->path : "(file)", size - bad, (long long)off + (long long)bad,
                   kvik__errno_text(EFAULT), store ? "written" : "read",
                   (const void *)((const char *)buf + bad));
}

/* The kernel said EFAULT for [buf, buf + size): finds the first bad byte for the message (an
 * O_DIRECT transfer fails as a whole, so the kernel's count does not say where). */
static int fault_fail(const struct kvik__fds *f, const char *op, const void *buf, size_t size,
                      int64_t off, bool store) {
  size_t bad = 0;
  if (!kvik__buf_check(buf, size, store, &bad))
    bad = 0;
  return efault_at(f, op, buf, size, off, bad, store);
}

/* Reads until size bytes, end of file or an error. Returns bytes read or -errno (detail set). */
static ssize_t read_loop(const struct kvik__fds *f, int fd, char *buf, size_t size, int64_t off,
                         int *direct_refused) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = kvik__sys.pread(fd, buf + done, size - done, (off_t)(off + (int64_t)done));
    if (n > 0) {
      done += (size_t)n;
      continue;
    }
    if (n == 0)
      break; /* end of file */
    int e = errno;
    if (e == EINTR)
      continue;
    if (direct_refused && e == EINVAL && done == 0) {
      *direct_refused = 1;
      return 0;
    }
    if (e == EFAULT)
      return fault_fail(f, "read", buf + done, size - done, off + (int64_t)done, true);
    return io_fail(f, "read", e, size - done, off + (int64_t)done);
  }
  return (ssize_t)done;
}

static ssize_t write_loop(const struct kvik__fds *f, int fd, const char *buf, size_t size,
                          int64_t off, int *direct_refused) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = kvik__sys.pwrite(fd, buf + done, size - done, (off_t)(off + (int64_t)done));
    if (n > 0) {
      done += (size_t)n;
      continue;
    }
    int e = n == 0 ? EIO : errno; /* a zero-byte write of a non-empty range would loop forever */
    if (e == EINTR && n < 0)
      continue;
    if (direct_refused && e == EINVAL && done == 0) {
      *direct_refused = 1;
      return 0;
    }
    if (e == EFAULT)
      return fault_fail(f, "write", buf + done, size - done, off + (int64_t)done, false);
    return io_fail(f, "write", e, size - done, off + (int64_t)done);
  }
  return (ssize_t)done;
}

/* Smallest buffered read that gets a readahead hint. */
#define READAHEAD_HINT_MIN ((size_t)1 << 20)
/* Bytes read by the RWF_NOWAIT probe. */
#define READAHEAD_PROBE ((size_t)64 << 10)

static uint64_t align_down(uint64_t v, uint64_t a) { return v / a * a; }
static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }
static int is_aligned(const void *p, size_t a) { return ((uintptr_t)p % a) == 0; }

/* Direct-reads the whole pages holding [off, off+size) through bounce buffers and copies the
 * requested bytes into dst. Returns bytes copied (short at end of file), -errno, or sets
 * *refused and returns 0 when O_DIRECT is refused before anything was read. */
static ssize_t read_direct_bounced(const struct kvik__fds *f, char *dst, size_t size, int64_t off,
                                   int *refused) {
  size_t page = kvik__page_size();
  struct kvik__bounce b = {0};
  int rc = kvik__bounce_get(&b);
  if (rc)
    return rc;
  size_t done = 0;
  ssize_t result = 0;
  while (done < size) {
    uint64_t pos = (uint64_t)off + done;
    uint64_t start = align_down(pos, page);
    size_t skip = (size_t)(pos - start);
    size_t want = KVIK_MIN(b.size - skip, size - done);
    size_t span = (size_t)align_up(skip + want, page);
    ssize_t n = read_loop(f, f->fd_direct, b.ptr, span, (int64_t)start, done == 0 ? refused : NULL);
    if (n < 0) {
      result = n;
      break;
    }
    if (*refused)
      break;
    size_t avail = (size_t)n > skip ? (size_t)n - skip : 0;
    size_t copy = KVIK_MIN(avail, want);
    size_t bad;
    if (kvik__buf_check(dst + done, copy, true, &bad)) {
      result = efault_at(f, "read", dst + done, copy, off + (int64_t)done, bad, true);
      break;
    }
    memcpy(dst + done, (char *)b.ptr + skip, copy);
    done += copy;
    if (copy < want)
      break; /* end of file */
  }
  kvik__bounce_put(&b);
  return result < 0 ? result : (ssize_t)done;
}

/* Direct-reads the page-aligned range [off, off+size) into dst (any alignment). */
static ssize_t read_direct_middle(const struct kvik__fds *f, char *dst, size_t size, int64_t off,
                                  int *refused) {
  if (is_aligned(dst, kvik__page_size()))
    return read_loop(f, f->fd_direct, dst, size, off, refused);
  return read_direct_bounced(f, dst, size, off, refused);
}

/* Buffered read of a whole range. Parallel tasks read interleaved ranges of one file, which
 * the kernel's per-file readahead takes for random access, so a cold read falls to small
 * synchronous I/Os. For a large range, kvik first reads its first piece with RWF_NOWAIT: it
 * succeeds when the data is cached (the common, hot case, which then pays nothing more); when
 * it would block, the whole range goes to readahead in one piece (POSIX_FADV_WILLNEED) before
 * the ordinary read loop. */
static ssize_t read_buffered(const struct kvik__fds *f, char *buf, size_t size, int64_t off) {
  size_t done = 0;
#ifdef KVIK_READAHEAD_HINT /* experiment, off by default: see docs/io.md */
  if (size >= READAHEAD_HINT_MIN) {
    struct iovec iov = {buf, READAHEAD_PROBE};
    ssize_t n = kvik__sys.preadv2(f->fd, &iov, 1, (off_t)off, RWF_NOWAIT);
    if (n > 0)
      done = (size_t)n;
    else if (n < 0 && errno == EAGAIN)
      kvik__sys.posix_fadvise(f->fd, (off_t)off, (off_t)size, POSIX_FADV_WILLNEED);
    else if (n == 0)
      return 0; /* end of file */
  }
#endif
  ssize_t n = read_loop(f, f->fd, buf + done, size - done, off + (int64_t)done, NULL);
  return n < 0 ? n : (ssize_t)(done + (size_t)n);
}

ssize_t kvik__posix_read(const struct kvik__fds *f, void *vbuf, size_t size, int64_t off) {
  char *buf = vbuf;
  size_t page = kvik__page_size();
  if (!f->direct_read || f->fd_direct < 0 || size < page)
    return read_buffered(f, buf, size, off);

  uint64_t end = (uint64_t)off + size;
  uint64_t mid_start = align_up((uint64_t)off, page);
  uint64_t mid_end = align_down(end, page);
  if (mid_start >= mid_end)
    return read_loop(f, f->fd, buf, size, off, NULL);

  size_t head = (size_t)(mid_start - (uint64_t)off);
  size_t done = 0;
  int refused = 0;
  ssize_t n;
  if (head) {
    n = f->overread ? read_direct_bounced(f, buf, head, off, &refused) : 0;
    if (!f->overread || refused)
      n = read_loop(f, f->fd, buf, head, off, NULL);
    if (n < 0 || (size_t)n < head)
      return n;
    done = head;
  }
  size_t mid = (size_t)(mid_end - mid_start);
  refused = 0;
  n = read_direct_middle(f, buf + done, mid, (int64_t)mid_start, &refused);
  if (refused)
    n = read_loop(f, f->fd, buf + done, mid, (int64_t)mid_start, NULL);
  if (n < 0)
    return n;
  done += (size_t)n;
  if ((size_t)n < mid)
    return (ssize_t)done;
  size_t tail = (size_t)(end - mid_end);
  if (tail) {
    refused = 0;
    n = f->overread ? read_direct_bounced(f, buf + done, tail, (int64_t)mid_end, &refused) : 0;
    if (!f->overread || refused)
      n = read_loop(f, f->fd, buf + done, tail, (int64_t)mid_end, NULL);
    if (n < 0)
      return n;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

/* Direct-writes the page-aligned range from src (any alignment). */
static ssize_t write_direct_middle(const struct kvik__fds *f, const char *src, size_t size,
                                   int64_t off, int *refused) {
  if (is_aligned(src, kvik__page_size()))
    return write_loop(f, f->fd_direct, src, size, off, refused);
  struct kvik__bounce b = {0};
  int rc = kvik__bounce_get(&b);
  if (rc)
    return rc;
  size_t done = 0;
  ssize_t result = 0;
  while (done < size) {
    size_t n = KVIK_MIN(b.size, size - done);
    memcpy(b.ptr, src + done, n);
    ssize_t w = write_loop(f, f->fd_direct, b.ptr, n, off + (int64_t)done,
                           done == 0 ? refused : NULL);
    if (w < 0) {
      result = w;
      break;
    }
    if (*refused)
      break;
    done += n;
  }
  kvik__bounce_put(&b);
  return result < 0 ? result : (ssize_t)done;
}

ssize_t kvik__posix_write(const struct kvik__fds *f, const void *vbuf, size_t size, int64_t off) {
  const char *buf = vbuf;
  size_t page = kvik__page_size();
  /* The whole source first: the bounce path's memcpy must not fault, and the buffered path
   * would otherwise write the part before a bad page and then fail. */
  size_t bad;
  if (kvik__buf_check(buf, size, false, &bad))
    return efault_at(f, "write", buf, size, off, bad, false);
  if (!f->direct_write || f->fd_direct < 0 || size < page)
    return write_loop(f, f->fd, buf, size, off, NULL);
  uint64_t end = (uint64_t)off + size;
  uint64_t mid_start = align_up((uint64_t)off, page);
  uint64_t mid_end = align_down(end, page);
  if (mid_start >= mid_end)
    return write_loop(f, f->fd, buf, size, off, NULL);
  size_t head = (size_t)(mid_start - (uint64_t)off);
  ssize_t n;
  if (head && (n = write_loop(f, f->fd, buf, head, off, NULL)) < 0)
    return n;
  size_t mid = (size_t)(mid_end - mid_start);
  int refused = 0;
  n = write_direct_middle(f, buf + head, mid, (int64_t)mid_start, &refused);
  if (refused)
    n = write_loop(f, f->fd, buf + head, mid, (int64_t)mid_start, NULL);
  if (n < 0)
    return n;
  size_t tail = (size_t)(end - mid_end);
  if (tail && (n = write_loop(f, f->fd, buf + head + mid, tail, (int64_t)mid_end, NULL)) < 0)
    return n;
  return (ssize_t)size;
}
