/* kvik_mmap_*: mappings of a whole file, of ranges starting anywhere in a page, of ranges that
 * reach past the end of the file; reads (blocking and parallel over pools of 1, 3 and 4 threads
 * and task sizes 199, 4096 and 1 MiB) over a grid of offsets and sizes inside each mapping,
 * compared byte for byte with guard bytes around; short counts at the end of the file, also
 * after the file shrank; writes through "w+", "r+" (growing the file) and "w" mappings checked on
 * disk with plain pread; ranges outside the mapping and other bad input (messages checked); an
 * mmap failure injected through the system-call table; close waiting for a parallel read. */
#include "common.h"

#include "core/core.h"
#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FSIZE (3 * MiB + 5001)
#define SEED 11
#define GUARD 64
#define POISON 0xA5

static char *g_dir;
static char *g_path; /* FSIZE bytes of pattern SEED */
static uint8_t *g_buf;
static size_t g_bufsize;
static kvik_pool *g_pools[3];
static const unsigned g_nthreads[3] = {1, 3, 4};
static const size_t g_tasks[3] = {199, 4096, 1 * MiB};

/* One read of [off, off + size) of m (mapped range [moff, moff + msize)) into g_buf + align:
 * blocking (mode 0) or parallel on pool p with task size t. Checks the count, the bytes, and
 * that nothing around them changed. */
static void read_case(kvik_mmap *m, int64_t off, size_t size, size_t align, int mode, int p,
                      int t) {
  T_CONTEXT("read off=%lld size=%zu align=%zu mode=%s threads=%u task=%zu", (long long)off, size,
            align, mode ? "pread" : "read", mode ? g_nthreads[p] : 1, mode ? g_tasks[t] : 0);
  memset(g_buf, POISON, size + align + GUARD);
  long long want = off >= (int64_t)FSIZE
                       ? 0
                       : (long long)(size < FSIZE - (size_t)off ? size : FSIZE - (size_t)off);
  if (mode == 0) {
    ASSERT_CODE(kvik_mmap_read(m, g_buf + align, size, off), want);
  } else {
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = g_tasks[t], .pool = g_pools[p]};
    kvik_future *fut = NULL;
    ASSERT_CODE(kvik_mmap_pread(m, g_buf + align, size, off, &o, &fut), 0);
    ASSERT_CODE(kvik_future_wait(fut), want);
  }
  ASSERT_FILLED(g_buf, align, POISON, "before the buffer");
  ASSERT_PATTERN(g_buf + align, (size_t)want, (uint64_t)off, SEED, "read through the mapping");
  ASSERT_FILLED(g_buf + align + want, size - (size_t)want + GUARD, POISON, "after the data");
}

struct mapping {
  size_t size;
  int64_t offset;
};

static void read_grid(void **state) {
  (void)state;
  const struct mapping maps[] = {
      {0, 0},                    /* the whole file */
      {0, 4095},                 /* from inside the first page to the end */
      {1 * MiB + 3, 4097},       /* a range inside the file */
      {FSIZE + 10000, 0},        /* past the end: reads stop there */
      {100, FSIZE - 50},         /* straddling the end */
      {2 * MiB, 2 * MiB + 4096}, /* page-aligned, past the end */
  };
  int n = 0;
  for (size_t mi = 0; mi < sizeof maps / sizeof maps[0]; mi++) {
    kvik_mmap *m = NULL;
    ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", maps[mi].size, maps[mi].offset, 0), 0);
    int64_t moff = -1;
    size_t msize = 0;
    void *addr = NULL;
    ASSERT_CODE(kvik_mmap_range(m, &moff, &msize, &addr), 0);
    assert_int_equal(moff, maps[mi].offset);
    assert_int_equal(msize, maps[mi].size ? maps[mi].size : FSIZE - (size_t)maps[mi].offset);
    assert_non_null(addr);
    assert_int_equal(*(uint8_t *)addr, t_pat_byte((uint64_t)moff, SEED));
    ASSERT_CODE(kvik_mmap_file_size(m), FSIZE);
    const size_t rels[] = {0, 1, 4095, msize / 2, msize - 1, msize};
    const size_t sizes[] = {0, 1, 4095, 4096, 4097, 1 * MiB + 7, SIZE_MAX};
    for (size_t ri = 0; ri < 6; ri++)
      for (size_t si = 0; si < 7; si++) {
        if (rels[ri] > msize)
          continue;
        size_t size = sizes[si] == SIZE_MAX ? msize - rels[ri] : sizes[si];
        if (size > msize - rels[ri])
          continue; /* outside the mapping: see outside_mapping */
        int64_t off = moff + (int64_t)rels[ri];
        size_t align = (ri + si) % 3 == 0 ? 0 : (ri + si) % 3 == 1 ? 1 : 4093;
        read_case(m, off, size, align, 0, 0, 0);
        /* The pool and the task size rotate; every pair meets every mapping. */
        int p = (int)((ri + si + mi) % 3), t = (int)((ri + 2 * si + mi) % 3);
        if (g_tasks[t] == 199 && size > 64 * KiB)
          t = 1; /* 5,000+ one-page tasks test nothing 4096-byte tasks do not */
        read_case(m, off, size, align, 1, p, t);
        n += 2;
      }
    ASSERT_CODE(kvik_mmap_close(m), 0);
  }
  printf("# %d read cases\n", n);
  t_context[0] = 0;
}

static void outside_mapping(void **state) {
  (void)state;
  kvik_mmap *m = NULL;
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", 10000, 5000, 0), 0);
  kvik_future *fut = NULL;
  /* Before the start, past the end, overlapping either end. */
  const int64_t offs[] = {4999, 15000, 4000, 14999, 0};
  const size_t sizes[] = {1, 1, 2000, 2, 100000};
  for (int i = 0; i < 5; i++) {
    T_CONTEXT("offset %lld size %zu", (long long)offs[i], sizes[i]);
    ASSERT_CODE(kvik_mmap_read(m, g_buf, sizes[i], offs[i]), KVIK_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "%zu bytes at offset %lld are outside the mapping", sizes[i],
             (long long)offs[i]);
    ASSERT_CONTAINS(kvik_last_error(), want);
    ASSERT_CONTAINS(kvik_last_error(), "[5000, 15000)");
    ASSERT_CONTAINS(kvik_last_error(), g_path);
    ASSERT_CODE(kvik_mmap_pread(m, g_buf, sizes[i], offs[i], NULL, &fut), KVIK_EINVAL);
    ASSERT_CONTAINS(kvik_last_error(), "outside the mapping");
  }
  /* The last byte and zero bytes at the end are inside. */
  ASSERT_CODE(kvik_mmap_read(m, g_buf, 1, 14999), 1);
  ASSERT_CODE(kvik_mmap_read(m, g_buf, 0, 15000), 0);
  ASSERT_CODE(kvik_mmap_read(m, g_buf, 0, 15001), KVIK_EINVAL);
  /* Read-only. */
  ASSERT_CODE(kvik_mmap_write(m, g_buf, 1, 5000), KVIK_EBADMODE);
  ASSERT_CONTAINS(kvik_last_error(), "read-only");
  ASSERT_CODE(kvik_mmap_pwrite(m, g_buf, 1, 5000, NULL, &fut), KVIK_EBADMODE);
  ASSERT_CODE(kvik_mmap_sync(m), 0);
  /* Other bad arguments. */
  ASSERT_CODE(kvik_mmap_read(m, NULL, 1, 5000), KVIK_EINVAL);
  ASSERT_CODE(kvik_mmap_read(m, g_buf, 1, -1), KVIK_EINVAL);
  ASSERT_CODE(kvik_mmap_read(m, g_buf, SIZE_MAX, 5000), KVIK_EOVERFLOW);
  ASSERT_CODE(kvik_mmap_pread(m, g_buf, 1, 5000, NULL, NULL), KVIK_EINVAL);
  struct kvik_io_opts bad = {.sz = 1};
  ASSERT_CODE(kvik_mmap_pread(m, g_buf, 1, 5000, &bad, &fut), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "sz");
  ASSERT_CODE(kvik_mmap_read(NULL, g_buf, 1, 5000), KVIK_EINVAL);
  uint64_t not_a_handle[64] = {0};
  ASSERT_CODE(kvik_mmap_read((kvik_mmap *)not_a_handle, g_buf, 1, 5000), KVIK_EMISUSE);
  ASSERT_CODE(kvik_mmap_close((kvik_mmap *)not_a_handle), KVIK_EMISUSE);
  ASSERT_CODE(kvik_mmap_range(NULL, NULL, NULL, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_mmap_close(m), 0);
  ASSERT_CODE(kvik_mmap_close(NULL), 0);
  t_context[0] = 0;
}

static void *mmap_enomem(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  (void)addr, (void)len, (void)prot, (void)flags, (void)fd, (void)off;
  errno = ENOMEM;
  return MAP_FAILED;
}

static void bad_open(void **state) {
  (void)state;
  kvik_mmap *m = (kvik_mmap *)0x1;
  char *missing = t_join(g_dir, "missing");
  char *fifo = t_join(g_dir, "fifo");
  ASSERT_CODE(kvik_mmap_open(&m, missing, "r", 0, 0, 0), -ENOENT);
  ASSERT_CONTAINS(kvik_last_error(), missing);
  assert_ptr_equal(m, (kvik_mmap *)0x1); /* untouched on failure */
  ASSERT_CODE(kvik_mmap_open(&m, g_dir, "r", 0, 0, 0), -EISDIR);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  ASSERT_CODE(kvik_mmap_open(&m, fifo, "r", 0, 0, 0), KVIK_EINVAL); /* and does not block */
  ASSERT_CONTAINS(kvik_last_error(), "not a regular file");
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "a", 0, 0, 0), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "unknown flags");
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "rx", 0, 0, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "", 0, 0, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", 0, -1, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", SIZE_MAX, 0, 0), KVIK_EOVERFLOW);
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", 0, FSIZE + 1, 0), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "past the end");
  ASSERT_CODE(kvik_mmap_open(&m, missing, "w+", 0, 0, 0644), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "needs a size");
  ASSERT_CODE(t_file_size(missing), -ENOENT); /* refused before creating it */
  ASSERT_CODE(kvik_mmap_open(NULL, g_path, "r", 0, 0, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_mmap_open(&m, NULL, "r", 0, 0, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_mmap_open(&m, g_path, NULL, 0, 0, 0), KVIK_EINVAL);
  /* An mmap the kernel refuses: the error, the path, and no descriptor left open. */
  int before = open("/dev/null", O_RDONLY);
  close(before);
  kvik__sys.mmap = mmap_enomem;
  ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", 0, 0, 0), -ENOMEM);
  ASSERT_CONTAINS(kvik_last_error(), "mmap");
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  kvik__sys_reset();
  int after = open("/dev/null", O_RDONLY);
  close(after);
  assert_int_equal(after, before);
  unlink(fifo);
  free(fifo);
  free(missing);
}

static void empty_file(void **state) {
  (void)state;
  char *path = t_join(g_dir, "empty");
  t_write_pattern_file(path, 0, 1);
  kvik_mmap *m = NULL;
  ASSERT_CODE(kvik_mmap_open(&m, path, "r", 0, 0, 0), 0);
  size_t size = 7;
  void *addr = (void *)1;
  ASSERT_CODE(kvik_mmap_range(m, NULL, &size, &addr), 0);
  assert_int_equal(size, 0);
  assert_null(addr);
  ASSERT_CODE(kvik_mmap_read(m, g_buf, 0, 0), 0);
  ASSERT_CODE(kvik_mmap_read(m, g_buf, 1, 0), KVIK_EINVAL);
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_mmap_pread(m, g_buf, 0, 0, NULL, &fut), 0);
  ASSERT_CODE(kvik_future_wait(fut), 0);
  ASSERT_CODE(kvik_mmap_close(m), 0);
  unlink(path);
  free(path);
}

/* The file shrinks under a mapping: reads stop at its new end (no SIGBUS), and "r+" writes past
 * it grow it again. */
static void file_shrinks_and_grows(void **state) {
  (void)state;
  char *path = t_join(g_dir, "shrink");
  t_write_pattern_file(path, 1 * MiB, SEED);
  kvik_mmap *m = NULL;
  ASSERT_CODE(kvik_mmap_open(&m, path, "r+", 0, 0, 0), 0);
  assert_int_equal(truncate(path, 300000), 0);
  ASSERT_CODE(kvik_mmap_file_size(m), 300000);
  memset(g_buf, POISON, 1 * MiB);
  ASSERT_CODE(kvik_mmap_read(m, g_buf, 1 * MiB, 0), 300000);
  ASSERT_PATTERN(g_buf, 300000, 0, SEED, "after the shrink");
  ASSERT_FILLED(g_buf + 300000, 1 * MiB - 300000, POISON, "past the new end");
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_mmap_pread(m, g_buf, 4096, 400000, NULL, &fut), 0);
  ASSERT_CODE(kvik_future_wait(fut), 0);
  /* A write at the end of the mapping grows the file to cover it. */
  t_pat_fill(g_buf, 5000, 1 * MiB - 5000, SEED);
  ASSERT_CODE(kvik_mmap_write(m, g_buf, 5000, 1 * MiB - 5000), 5000);
  ASSERT_CODE(t_file_size(path), 1 * MiB);
  ASSERT_CODE(t_read_file(path, g_buf, 5000, 1 * MiB - 5000), 5000);
  ASSERT_PATTERN(g_buf, 5000, 1 * MiB - 5000, SEED, "on disk after the growing write");
  ASSERT_CODE(t_read_file(path, g_buf, 1000, 300000), 1000);
  ASSERT_FILLED(g_buf, 1000, 0, "the hole the growth left");
  ASSERT_CODE(kvik_mmap_close(m), 0);
  unlink(path);
  free(path);
}

static void writes(void **state) {
  (void)state;
  char *path = t_join(g_dir, "written");
  const int64_t off = 4097;
  const size_t size = 2 * MiB + 3;
  for (int mode = 0; mode < 2; mode++) {
    /* "w+": created, sized to offset + size, written in parallel from an unaligned buffer. */
    kvik_mmap *m = NULL;
    ASSERT_CODE(kvik_mmap_open(&m, path, mode ? "w" : "w+", size, off, 0600), 0);
    ASSERT_CODE(t_file_size(path), off + (long long)size);
    t_pat_fill(g_buf + 1, size, (uint64_t)off, SEED + 1);
    if (mode == 0) {
      struct kvik_io_opts o = {.sz = sizeof o, .task_size = 100000, .pool = g_pools[2]};
      kvik_future *fut = NULL;
      ASSERT_CODE(kvik_mmap_pwrite(m, g_buf + 1, size, off, &o, &fut), 0);
      ASSERT_CODE(kvik_future_wait(fut), size);
      /* Read back through the mapping. */
      memset(g_buf, 0, size);
      ASSERT_CODE(kvik_mmap_read(m, g_buf, size, off), size);
      ASSERT_PATTERN(g_buf, size, (uint64_t)off, SEED + 1, "read back through the mapping");
    } else {
      ASSERT_CODE(kvik_mmap_write(m, g_buf + 1, size, off), size);
      ASSERT_CODE(kvik_mmap_read(m, g_buf, 1, off), KVIK_EBADMODE);
      ASSERT_CONTAINS(kvik_last_error(), "write-only");
    }
    ASSERT_CODE(kvik_mmap_sync(m), 0);
    ASSERT_CODE(kvik_mmap_close(m), 0);
    ASSERT_CODE(t_file_size(path), off + (long long)size);
    ASSERT_CODE(t_read_file(path, g_buf, off + (long long)size, 0), off + (long long)size);
    ASSERT_FILLED(g_buf, (size_t)off, 0, "on disk before the mapping");
    ASSERT_PATTERN(g_buf + off, size, (uint64_t)off, SEED + 1, "on disk");
  }
  /* "r+" on the existing file: a small write in the middle, the rest unchanged. */
  kvik_mmap *m = NULL;
  ASSERT_CODE(kvik_mmap_open(&m, path, "r+", 0, 0, 0), 0);
  memset(g_buf, 0x3c, 777);
  ASSERT_CODE(kvik_mmap_write(m, g_buf, 777, 1000000), 777);
  ASSERT_CODE(kvik_mmap_close(m), 0);
  ASSERT_CODE(t_read_file(path, g_buf, 779, 999999), 779);
  ASSERT_FILLED(g_buf + 1, 777, 0x3c, "the r+ write");
  assert_int_equal(g_buf[0], t_pat_byte(999999, SEED + 1));
  assert_int_equal(g_buf[778], t_pat_byte(1000777, SEED + 1));
  unlink(path);
  free(path);
}

/* Closing while a parallel read runs waits for it: the read completes with every byte. */
static void close_waits_for_pread(void **state) {
  (void)state;
  for (int i = 0; i < 20; i++) {
    kvik_mmap *m = NULL;
    ASSERT_CODE(kvik_mmap_open(&m, g_path, "r", 0, 0, 0), 0);
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = 4096, .pool = g_pools[0]};
    kvik_future *fut = NULL;
    memset(g_buf, 0, FSIZE);
    ASSERT_CODE(kvik_mmap_pread(m, g_buf, FSIZE, 0, &o, &fut), 0);
    ASSERT_CODE(kvik_mmap_close(m), 0);
    ASSERT_CODE(kvik_future_wait(fut), FSIZE);
    ASSERT_PATTERN(g_buf, FSIZE, 0, SEED, "read while closing");
  }
}

/* Every allocation of kvik_mmap_open failing in turn: -ENOMEM and nothing left behind (the
 * sanitizer builds check for leaks), then success. */
static void allocation_failures(void **state) {
  (void)state;
  int rc = -ENOMEM;
  long k;
  for (k = 0; k < 10 && rc == -ENOMEM; k++) {
    kvik_mmap *m = NULL;
    kvik__alloc_fail_after(k);
    rc = kvik_mmap_open(&m, g_path, "r", 0, 0, 0);
    kvik__alloc_fail_after(-1);
    if (rc == -ENOMEM) {
      ASSERT_CONTAINS(kvik_last_error(), "out of memory");
      assert_null(m);
    } else {
      ASSERT_CODE(rc, 0);
      ASSERT_CODE(kvik_mmap_read(m, g_buf, 100, 5), 100);
      ASSERT_PATTERN(g_buf, 100, 5, SEED, "after the allocations succeeded");
      ASSERT_CODE(kvik_mmap_close(m), 0);
    }
  }
  assert_true(k > 1); /* at least one allocation failed first */
}

static int teardown_test(void **state) {
  (void)state;
  kvik__alloc_fail_after(-1);
  kvik__sys_reset();
  t_context[0] = 0;
  return 0;
}

static int group_setup(void **state) {
  (void)state;
  t_clear_kvikio_env();
  if (kvik_config_reload() != 0)
    return -1;
  g_dir = t_mkdtemp(NULL);
  if (!g_dir)
    return -1;
  g_path = t_join(g_dir, "data");
  t_write_pattern_file(g_path, FSIZE, SEED);
  g_bufsize = FSIZE + 2 * 4096 + 2 * GUARD + 100000;
  if (posix_memalign((void **)&g_buf, 4096, g_bufsize))
    return -1;
  for (int i = 0; i < 3; i++)
    if (kvik_pool_create(&g_pools[i], g_nthreads[i]) != 0)
      return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  for (int i = 0; i < 3; i++)
    kvik_pool_destroy(g_pools[i]);
  free(g_buf);
  free(g_path);
  t_rmtree(g_dir);
  return 0;
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(read_grid, teardown_test),
      cmocka_unit_test_teardown(outside_mapping, teardown_test),
      cmocka_unit_test_teardown(bad_open, teardown_test),
      cmocka_unit_test_teardown(empty_file, teardown_test),
      cmocka_unit_test_teardown(file_shrinks_and_grows, teardown_test),
      cmocka_unit_test_teardown(writes, teardown_test),
      cmocka_unit_test_teardown(close_waits_for_pread, teardown_test),
      cmocka_unit_test_teardown(allocation_failures, teardown_test),
  };
  return cmocka_run_group_tests_name("mmap", tests, group_setup, group_teardown);
}
