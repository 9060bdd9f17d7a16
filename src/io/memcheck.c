/* Whether the CPU may load from (or store to) every byte of a caller's buffer, asked of the
 * kernel without touching the buffer.
 *
 * kvik copies between a caller's buffer and a bounce buffer itself where O_DIRECT needs an
 * aligned buffer the caller's is not. The kernel's own copies (buffered I/O, O_DIRECT straight
 * from the buffer) report a bad buffer as EFAULT; a memcpy in the library would kill the
 * process instead. So the range is checked first:
 *
 * - PROCMAP_QUERY (Linux 6.11): an ioctl on /proc/self/maps that returns the mapping holding an
 *   address and its permissions. One ioctl per mapping the buffer spans (usually one), about
 *   half a microsecond, and exact: an unmapped page or a page without the access anywhere in
 *   the range is found.
 * - Before 6.11, or without /proc: mincore(2) says whether every page is mapped (exact, a page
 *   table walk: about 1 % of the time a memcpy of the range takes), and process_vm_readv /
 *   process_vm_writev on the first and the last byte say whether the ends have the access.
 *   A page in the middle whose permissions differ from both ends is not seen.
 *
 * Neither sees a file mapping past the end of its file (SIGBUS on access), and a buffer that
 * another thread unmaps during the call is the caller's race. Measured against the alternatives
 * (letting the kernel copy with process_vm_readv, or probing one byte per page through it): both
 * cost as much as the memcpy itself. */
#include "io/io.h"

#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

/* struct procmap_query of <linux/fs.h> (Linux 6.11), mirrored because the kernel headers kvik
 * is built with may predate it. The layout is ABI: it only grows at the end, behind `size`. */
struct procmap_query {
  uint64_t size;
  uint64_t query_flags;
  uint64_t query_addr;
  uint64_t vma_start;
  uint64_t vma_end;
  uint64_t vma_flags;
  uint64_t vma_page_size;
  uint64_t vma_offset;
  uint64_t inode;
  uint32_t dev_major;
  uint32_t dev_minor;
  uint32_t vma_name_size;
  uint32_t build_id_size;
  uint64_t vma_name_addr;
  uint64_t build_id_addr;
};
_Static_assert(sizeof(struct procmap_query) == 104, "struct procmap_query is 104 bytes");
#define KVIK_PROCMAP_QUERY _IOWR('f', 17, struct procmap_query)
#define KVIK_PROCMAP_QUERY_VMA_READABLE 0x01u
#define KVIK_PROCMAP_QUERY_VMA_WRITABLE 0x02u

/* The descriptor on /proc/self/maps and the process it was opened in, packed as pid << 32 |
 * (fd + 1); 0 when none is open. Opened on first use and kept (one descriptor, O_CLOEXEC). A
 * child after fork() must not use its parent's: that descriptor describes the parent's memory.
 * The atfork handler closes it in the child; the pid also tells a child made without the
 * handlers (a raw clone), which then opens its own and leaves the inherited one alone. */
static _Atomic uint64_t maps;
static atomic_bool no_query;   /* this kernel has no PROCMAP_QUERY: use the fallback     */
static atomic_bool no_probe;   /* process_vm_readv/writev refused (seccomp): ends unchecked */
static atomic_int forced_mode; /* test hook: 1 forces the fallback                          */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_child(void) {
  uint64_t m = atomic_exchange(&maps, 0);
  if (m)
    close((int)(uint32_t)m - 1);
}

static void install_atfork(void) { (void)pthread_atfork(NULL, NULL, atfork_child); }

/* The descriptor for PROCMAP_QUERY in this process, or -1 when /proc/self/maps cannot be opened
 * now (no /proc, out of descriptors): the fallback serves that call. */
static int maps_fd(void) {
  uint64_t pid = (uint64_t)(uint32_t)getpid();
  uint64_t cur = atomic_load_explicit(&maps, memory_order_acquire);
  while (!cur || cur >> 32 != pid) {
    pthread_once(&atfork_once, install_atfork);
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return -1;
    if (atomic_compare_exchange_strong(&maps, &cur, pid << 32 | (uint64_t)(fd + 1)))
      return fd;
    close(fd); /* another thread opened one first: cur holds it now */
  }
  return (int)(uint32_t)cur - 1;
}

/* Exact check through PROCMAP_QUERY. 0: accessible; 1: not, *bad set; -1: cannot tell here. */
static int query_check(uintptr_t a, uintptr_t end, bool store, size_t *bad) {
  int fd = maps_fd();
  if (fd < 0)
    return -1;
  uint64_t need = KVIK_PROCMAP_QUERY_VMA_READABLE | (store ? KVIK_PROCMAP_QUERY_VMA_WRITABLE : 0);
  uintptr_t at = a;
  while (at < end) {
    struct procmap_query q = {.size = sizeof q, .query_addr = at};
    if (ioctl(fd, KVIK_PROCMAP_QUERY, &q) != 0) {
      if (errno == ENOENT) { /* no mapping holds `at` */
        *bad = at - a;
        return 1;
      }
      if (errno == EINTR)
        continue;
      if (errno == ENOTTY || errno == EINVAL) { /* a kernel before 6.11 */
        kvik__log(KVIK_LOG_DEBUG,
                  "PROCMAP_QUERY unavailable (%s): buffers kvik copies are "
                  "checked with mincore and their ends only",
                  kvik__errno_text(errno));
        atomic_store(&no_query, true);
      }
      return -1;
    }
    if ((q.vma_flags & need) != need) {
      *bad = at - a;
      return 1;
    }
    at = (uintptr_t)q.vma_end;
  }
  return 0;
}

/* 1 if the CPU may load (and with store, store) the byte at p, asked through process_vm_readv
 * and process_vm_writev on this process; a store probe writes back the byte it read. 0 if not;
 * -1 if those calls are refused here. */
static int probe_byte(uintptr_t p, bool store) {
  char byte;
  struct iovec local = {.iov_base = &byte, .iov_len = 1};
  struct iovec remote = {.iov_base = (void *)p, .iov_len = 1};
  ssize_t n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  if (n == 1 && store)
    n = process_vm_writev(getpid(), &local, 1, &remote, 1, 0);
  if (n == 1)
    return 1;
  if (n < 0 && errno != EFAULT) {
    kvik__log(KVIK_LOG_DEBUG,
              "process_vm_readv/writev refused (%s): the permissions of buffers "
              "kvik copies are not checked",
              kvik__errno_text(errno));
    atomic_store(&no_probe, true);
    return -1;
  }
  return 0;
}

/* The first page in [at, at + len) that mincore calls unmapped (one is known to be). */
static uintptr_t first_unmapped(uintptr_t at, size_t len, unsigned char *vec, size_t page) {
  uintptr_t lo = at, hi = at + len; /* [at, lo) is mapped; [lo, hi) holds an unmapped page */
  while (hi - lo > page) {
    uintptr_t mid = lo + (hi - lo) / page / 2 * page;
    if (mincore((void *)lo, mid - lo, vec) == 0)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

/* The fallback: every page mapped (mincore), and the ends accessible. 0, 1 (*bad set), -1. */
static int fallback_check(uintptr_t a, uintptr_t end, bool store, size_t *bad) {
  size_t page = kvik__page_size();
  unsigned char vec[4096];
  for (uintptr_t at = a / page * page; at < end;) {
    size_t len = KVIK_MIN((size_t)(end - at), sizeof vec * page);
    if (mincore((void *)at, len, vec) != 0) {
      if (errno != ENOMEM)
        return -1;
      uintptr_t u = first_unmapped(at, (len + page - 1) / page * page, vec, page);
      *bad = (u > a ? u : a) - a;
      return 1;
    }
    at += len;
  }
  if (atomic_load_explicit(&no_probe, memory_order_relaxed))
    return -1;
  int first = probe_byte(a, store);
  if (first <= 0) {
    *bad = 0;
    return first < 0 ? -1 : 1;
  }
  uintptr_t last = end - 1;
  int ok = probe_byte(last, store);
  if (ok != 0)
    return ok < 0 ? -1 : 0;
  /* The last byte is bad, the first good: narrow down to a page where the access starts
   * failing (the first such page when only one change of permission lies between). */
  uintptr_t lo = a / page * page, hi = last / page * page;
  while (hi - lo > page) {
    uintptr_t mid = lo + (hi - lo) / page / 2 * page;
    if (probe_byte(mid, store) > 0)
      lo = mid;
    else
      hi = mid;
  }
  *bad = (hi > a ? hi : a) - a;
  return 1;
}

int kvik__buf_check(const void *p, size_t n, bool store, size_t *bad) {
  if (n == 0)
    return 0;
  uintptr_t a = (uintptr_t)p;
  uintptr_t end = a + n;
  if (end < a) { /* wraps around the address space: nothing up there is mapped */
    *bad = 0;
    return 1;
  }
  int rc = -1;
  if (!atomic_load_explicit(&no_query, memory_order_relaxed) &&
      atomic_load_explicit(&forced_mode, memory_order_relaxed) != 1)
    rc = query_check(a, end, store, bad);
  if (rc < 0)
    rc = fallback_check(a, end, store, bad);
  return rc > 0; /* cannot tell: taken as accessible, as before these checks */
}

void kvik__buf_check_force_fallback(bool on) { atomic_store(&forced_mode, on ? 1 : 0); }
