/* Handle lifetimes: closing a file while operations on it are in flight (parallel reads and
 * writes, batch operations, calls on other threads), and using a file, pool, future, batch or
 * remote handle after it was closed, destroyed or waited. Every operation in flight completes
 * with the right bytes; every later use gets KVIK_EMISUSE naming the call, without reading freed
 * memory (the ASan and TSan builds run this file too). Public API only. */
#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define BIG (32 * MiB)
#define SEED 7
#define WSEED 8

static char *g_dir;
static char *g_path;

static int group_setup(void **state) {
  (void)state;
  t_clear_kvikio_env();
  if (kvik_config_reload() != 0)
    return -1;
  g_dir = t_mkdtemp(NULL);
  if (!g_dir)
    return -1;
  g_path = t_join(g_dir, "data");
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  free(g_path);
  t_rmtree(g_dir);
  return 0;
}

static int fresh_file(void **state) {
  (void)state;
  t_write_pattern_file(g_path, BIG, SEED);
  return 0;
}

/* Every call on a closed file: KVIK_EMISUSE, naming the call. */
static void assert_file_closed(kvik_file *f) {
  uint8_t b[16];
  kvik_future *fut = (kvik_future *)(uintptr_t)0x1;
  struct kvik_file_info info = {.sz = sizeof info};
  ASSERT_CODE(kvik_file_read(f, b, sizeof b, 0), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_read");
  ASSERT_CONTAINS(kvik_last_error(), "not an open kvik file");
  ASSERT_CODE(kvik_file_write(f, b, sizeof b, 0), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_write");
  ASSERT_CODE(kvik_file_pread(f, b, sizeof b, 0, NULL, &fut), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_pread");
  ASSERT_CODE(kvik_file_pwrite(f, b, sizeof b, 0, NULL, &fut), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_pwrite");
  assert_ptr_equal(fut, (kvik_future *)(uintptr_t)0x1);
  ASSERT_CODE(kvik_file_size(f), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_size");
  ASSERT_CODE(kvik_file_fd(f), KVIK_EMISUSE);
  assert_null(kvik_file_path(f));
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_path");
  ASSERT_CODE(kvik_file_info(f, &info), KVIK_EMISUSE);
  ASSERT_CODE(kvik_file_read_async_future(f, b, sizeof b, 0, NULL, &fut), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_read_async_future");
  kvik_batch *batch;
  ASSERT_CODE(kvik_batch_create(&batch, 1), 0);
  struct kvik_batch_io op = {f, b, sizeof b, 0, 0, KVIK_BATCH_READ, NULL};
  ASSERT_CODE(kvik_batch_submit(batch, &op, 1), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "operation 0");
  ASSERT_CODE(kvik_batch_destroy(batch), 0);
  ASSERT_CODE(kvik_file_close(f), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_close");
}

/* Many parallel reads and writes in flight on a small-task pool, the file closed at once: each
 * completes with its full count and the right bytes, on disk too. Repeated, so the close meets
 * chunks queued, running and done. */
static void close_with_preads_and_pwrites_in_flight(void **state) {
  (void)state;
  enum { NOPS = 16, ROUNDS = 8 };
  const size_t n = BIG / 2 / NOPS;
  kvik_pool *pool;
  ASSERT_CODE(kvik_pool_create(&pool, 4), 0);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 64 * KiB, .pool = pool};
  uint8_t *rbuf = t_alloc_aligned(BIG / 2);
  uint8_t *wbuf = t_alloc_aligned(BIG / 2);
  for (int round = 0; round < ROUNDS; round++) {
    T_CONTEXT("round %d", round);
    memset(rbuf, 0, BIG / 2);
    t_pat_fill(wbuf, BIG / 2, BIG / 2, WSEED + (uint64_t)round);
    kvik_file *f;
    ASSERT_CODE(kvik_file_open(&f, g_path, "r+", 0, KVIK_COMPAT_ON), 0);
    kvik_future *r[NOPS], *w[NOPS];
    for (int i = 0; i < NOPS; i++) {
      ASSERT_CODE(kvik_file_pread(f, rbuf + i * n, n, (int64_t)(i * n), &o, &r[i]), 0);
      ASSERT_CODE(kvik_file_pwrite(f, wbuf + i * n, n, (int64_t)(BIG / 2 + i * n), &o, &w[i]), 0);
    }
    /* Returns at once: the operations keep the file open. */
    ASSERT_CODE(kvik_file_close(f), 0);
    if (round == 0)
      assert_file_closed(f); /* while the operations still hold it */
    for (int i = 0; i < NOPS; i++) {
      ASSERT_CODE(kvik_future_wait(r[i]), n);
      ASSERT_CODE(kvik_future_wait(w[i]), n);
    }
    if (round == 0)
      assert_file_closed(f); /* after the last one let go */
    ASSERT_PATTERN(rbuf, BIG / 2, 0, SEED, "reads in flight at close");
    uint8_t *disk = t_alloc_aligned(BIG / 2);
    ASSERT_CODE(t_read_file(g_path, disk, BIG / 2, BIG / 2), BIG / 2);
    ASSERT_PATTERN(disk, BIG / 2, BIG / 2, WSEED + (uint64_t)round, "writes in flight at close");
    free(disk);
  }
  T_CONTEXT("%s", "");
  ASSERT_CODE(kvik_pool_destroy(pool), 0);
  free(rbuf);
  free(wbuf);
}

/* The same on the default pool with the default task size, and a future waited only after the
 * close made its file unreachable from the caller's side. */
static void close_then_wait_on_default_pool(void **state) {
  (void)state;
  uint8_t *buf = t_alloc_aligned(BIG);
  kvik_file *f;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r", 0, KVIK_COMPAT_DEFAULT), 0);
  kvik_future *fut;
  ASSERT_CODE(kvik_file_pread(f, buf, BIG, 0, NULL, &fut), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_CODE(kvik_future_wait(fut), BIG);
  ASSERT_PATTERN(buf, BIG, 0, SEED, "read in flight at close");
  free(buf);
}

/* Batch operations submitted, then the file closed before any is reaped: all complete. */
static void close_with_batch_in_flight(void **state) {
  (void)state;
  enum { NOPS = 64 };
  const size_t n = 256 * KiB;
  uint8_t *rbuf = t_alloc_aligned(NOPS / 2 * n);
  uint8_t *wbuf = t_alloc_aligned(NOPS / 2 * n);
  t_pat_fill(wbuf, NOPS / 2 * n, BIG / 2, WSEED);
  kvik_file *f;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r+", 0, KVIK_COMPAT_ON), 0);
  kvik_batch *b;
  ASSERT_CODE(kvik_batch_create(&b, NOPS), 0);
  struct kvik_batch_io ops[NOPS];
  for (int i = 0; i < NOPS / 2; i++) {
    ops[2 * i] = (struct kvik_batch_io){f,
                                        rbuf,
                                        n,
                                        (int64_t)(i * n),
                                        (int64_t)(i * n),
                                        KVIK_BATCH_READ,
                                        (void *)(uintptr_t)(2 * i + 1)};
    ops[2 * i + 1] = (struct kvik_batch_io){f,
                                            wbuf,
                                            n,
                                            (int64_t)(BIG / 2 + i * n),
                                            (int64_t)(i * n),
                                            KVIK_BATCH_WRITE,
                                            (void *)(uintptr_t)(2 * i + 2)};
  }
  ASSERT_CODE(kvik_batch_submit(b, ops, NOPS), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  unsigned got = 0;
  while (got < NOPS) {
    struct kvik_batch_event ev[NOPS];
    unsigned nr = NOPS;
    ASSERT_CODE(kvik_batch_status(b, 1, &nr, ev, -1), 0);
    for (unsigned i = 0; i < nr; i++) {
      if (ev[i].status != KVIK_BATCH_COMPLETE)
        fail_msg("operation %zu: status %d, result %zd: %s", (size_t)(uintptr_t)ev[i].cookie,
                 ev[i].status, ev[i].result, ev[i].error);
      assert_int_equal(ev[i].result, n);
    }
    got += nr;
  }
  ASSERT_CODE(kvik_batch_destroy(b), 0);
  ASSERT_PATTERN(rbuf, NOPS / 2 * n, 0, SEED, "batch reads in flight at close");
  uint8_t *disk = t_alloc_aligned(NOPS / 2 * n);
  ASSERT_CODE(t_read_file(g_path, disk, NOPS / 2 * n, BIG / 2), NOPS / 2 * n);
  ASSERT_PATTERN(disk, NOPS / 2 * n, BIG / 2, WSEED, "batch writes in flight at close");
  free(disk);
  free(rbuf);
  free(wbuf);
}

/* A batch destroyed with operations unreaped after their file was closed: the operations
 * finish, and the batch lets go of the file (ASan's leak check sees the rest). */
static void close_then_destroy_batch_unreaped(void **state) {
  (void)state;
  enum { NOPS = 32 };
  const size_t n = 64 * KiB;
  uint8_t *buf = t_alloc_aligned(NOPS * n);
  kvik_file *f;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r", 0, KVIK_COMPAT_ON), 0);
  kvik_batch *b;
  ASSERT_CODE(kvik_batch_create(&b, NOPS), 0);
  struct kvik_batch_io ops[NOPS];
  for (int i = 0; i < NOPS; i++)
    ops[i] = (struct kvik_batch_io){
        f, buf, n, (int64_t)(i * n), (int64_t)(i * n), KVIK_BATCH_READ, NULL};
  ASSERT_CODE(kvik_batch_submit(b, ops, NOPS), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_CODE(kvik_batch_destroy(b), 0);
  free(buf);
}

/* Threads reading while another closes the file: each call either reads the right bytes or,
 * once the close is done, gets KVIK_EMISUSE; none reads freed memory. */
struct reader {
  kvik_file *f;
  _Atomic long ok;  /* calls that read the right bytes */
  _Atomic int last; /* the result that ended the loop; 0 while it runs */
  char msg[256];
};

static void *reader_main(void *arg) {
  struct reader *r = arg;
  uint8_t buf[4096];
  for (long i = 0;; i++) {
    int64_t off = (int64_t)((i * 7919 * 4096) % (BIG - sizeof buf));
    ssize_t got;
    if (i % 2) {
      got = kvik_file_read(r->f, buf, sizeof buf, off);
    } else {
      kvik_future *fut;
      got = kvik_file_pread(r->f, buf, sizeof buf, off, NULL, &fut);
      if (got == 0)
        got = kvik_future_wait(fut);
    }
    if (got != (ssize_t)sizeof buf ||
        t_pat_find_mismatch(buf, sizeof buf, (uint64_t)off, SEED) >= 0) {
      snprintf(r->msg, sizeof r->msg, "%s", kvik_last_error());
      atomic_store(&r->last, (int)got);
      return NULL;
    }
    atomic_fetch_add(&r->ok, 1);
  }
}

static void close_while_other_threads_read(void **state) {
  (void)state;
  enum { THREADS = 4 };
  for (int round = 0; round < 4; round++) {
    kvik_file *f;
    ASSERT_CODE(kvik_file_open(&f, g_path, "r", 0, KVIK_COMPAT_ON), 0);
    struct reader rd[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
      rd[i] = (struct reader){.f = f};
      assert_int_equal(pthread_create(&t[i], NULL, reader_main, &rd[i]), 0);
    }
    /* Close once every reader is busy (progress, not time). */
    for (int i = 0; i < THREADS; i++)
      while (atomic_load(&rd[i].ok) < 16 && atomic_load(&rd[i].last) == 0)
        sched_yield();
    ASSERT_CODE(kvik_file_close(f), 0);
    for (int i = 0; i < THREADS; i++) {
      pthread_join(t[i], NULL);
      int last = atomic_load(&rd[i].last);
      if (last != KVIK_EMISUSE)
        fail_msg("reader %d ended with %d (%s): %s, expected KVIK_EMISUSE", i, last,
                 kvik_strerror_name(last), rd[i].msg);
      assert_true(atomic_load(&rd[i].ok) >= 16);
    }
  }
}

/* ---- use after close, destroy or wait ------------------------------------------------------ */

static void file_after_close(void **state) {
  (void)state;
  kvik_file *f;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r+", 0, KVIK_COMPAT_ON), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  assert_file_closed(f);
}

static void future_after_wait(void **state) {
  (void)state;
  uint8_t buf[4096];
  kvik_file *f;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r", 0, KVIK_COMPAT_ON), 0);
  kvik_future *fut;
  ASSERT_CODE(kvik_file_pread(f, buf, sizeof buf, 0, NULL, &fut), 0);
  ASSERT_CODE(kvik_future_wait(fut), sizeof buf);
  ASSERT_CODE(kvik_future_wait(fut), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_future_wait:");
  ASSERT_CONTAINS(kvik_last_error(), "waited already");
  ASSERT_CODE(kvik_future_wait_for(fut, 0), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_future_wait_for");
  ASSERT_CODE(kvik_future_done(fut), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_future_done");
  /* A size-0 future (done at once) and a failed one too. */
  ASSERT_CODE(kvik_file_pread(f, buf, 0, 0, NULL, &fut), 0);
  ASSERT_CODE(kvik_future_wait(fut), 0);
  ASSERT_CODE(kvik_future_wait(fut), KVIK_EMISUSE);
  ASSERT_CODE(kvik_file_close(f), 0);
}

static void pool_after_destroy(void **state) {
  (void)state;
  kvik_pool *p;
  ASSERT_CODE(kvik_pool_create(&p, 2), 0);
  ASSERT_CODE(kvik_pool_nthreads(p), 2);
  ASSERT_CODE(kvik_pool_destroy(p), 0);
  ASSERT_CODE(kvik_pool_nthreads(p), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_pool_nthreads");
  ASSERT_CODE(kvik_pool_resize(p, 3), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_pool_resize");
  ASSERT_CODE(kvik_pool_destroy(p), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_pool_destroy");
  uint8_t buf[64];
  kvik_file *f;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r", 0, KVIK_COMPAT_ON), 0);
  struct kvik_io_opts o = {.sz = sizeof o, .pool = p};
  kvik_future *fut = (kvik_future *)(uintptr_t)0x1;
  ASSERT_CODE(kvik_file_pread(f, buf, sizeof buf, 0, &o, &fut), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_io_opts.pool");
  assert_ptr_equal(fut, (kvik_future *)(uintptr_t)0x1);
  ASSERT_CODE(kvik_file_close(f), 0);
}

static void batch_after_destroy(void **state) {
  (void)state;
  kvik_batch *b;
  ASSERT_CODE(kvik_batch_create(&b, 4), 0);
  ASSERT_CODE(kvik_batch_destroy(b), 0);
  unsigned nr = 1;
  struct kvik_batch_event ev[1];
  ASSERT_CODE(kvik_batch_submit(b, NULL, 0), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_batch_submit");
  ASSERT_CODE(kvik_batch_status(b, 0, &nr, ev, 0), KVIK_EMISUSE);
  ASSERT_CODE(kvik_batch_cancel(b), KVIK_EMISUSE);
  ASSERT_CODE(kvik_batch_destroy(b), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_batch_destroy");
}

static void remote_after_close(void **state) {
  (void)state;
  /* With the size given, opening makes no request: no server is needed. */
  struct kvik_remote_opts o = {.sz = sizeof o, .type = KVIK_REMOTE_HTTP, .size = 100};
  kvik_remote *r;
  int rc = kvik_remote_open(&r, "http://127.0.0.1:9/object", &o);
  if (rc == KVIK_EUNSUPPORTED)
    SKIP_BECAUSE("built without libcurl: %s", kvik_last_error());
  ASSERT_CODE(rc, 0);
  ASSERT_CODE(kvik_remote_size(r), 100);
  ASSERT_CODE(kvik_remote_close(r), 0);
  ASSERT_CODE(kvik_remote_size(r), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_remote_size");
  ASSERT_CODE(kvik_remote_type(r), KVIK_EMISUSE);
  assert_null(kvik_remote_url(r));
  uint8_t buf[16];
  ASSERT_CODE(kvik_remote_read(r, buf, sizeof buf, 0), KVIK_EMISUSE);
  ASSERT_CODE(kvik_remote_read(r, buf, 0, 0), KVIK_EMISUSE);
  kvik_future *fut = (kvik_future *)(uintptr_t)0x1;
  ASSERT_CODE(kvik_remote_pread(r, buf, sizeof buf, 0, NULL, &fut), KVIK_EMISUSE);
  assert_ptr_equal(fut, (kvik_future *)(uintptr_t)0x1);
  ASSERT_CODE(kvik_remote_close(r), KVIK_EMISUSE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_remote_close");
}

/* A handle of one kind is not a handle of another. */
static void handle_of_another_kind(void **state) {
  (void)state;
  kvik_pool *p;
  ASSERT_CODE(kvik_pool_create(&p, 1), 0);
  kvik_file *f;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r", 0, KVIK_COMPAT_ON), 0);
  ASSERT_CODE(kvik_file_size((kvik_file *)p), KVIK_EMISUSE);
  ASSERT_CODE(kvik_pool_nthreads((kvik_pool *)f), KVIK_EMISUSE);
  ASSERT_CODE(kvik_future_done((kvik_future *)f), KVIK_EMISUSE);
  ASSERT_CODE(kvik_batch_cancel((kvik_batch *)p), KVIK_EMISUSE);
  ASSERT_CODE(kvik_file_close((kvik_file *)p), KVIK_EMISUSE);
  ASSERT_CODE(kvik_pool_destroy((kvik_pool *)f), KVIK_EMISUSE);
  ASSERT_CODE(kvik_file_size(f), BIG);
  ASSERT_CODE(kvik_pool_nthreads(p), 1);
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_CODE(kvik_pool_destroy(p), 0);
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(close_with_preads_and_pwrites_in_flight, fresh_file),
      cmocka_unit_test_setup(close_then_wait_on_default_pool, fresh_file),
      cmocka_unit_test_setup(close_with_batch_in_flight, fresh_file),
      cmocka_unit_test_setup(close_then_destroy_batch_unreaped, fresh_file),
      cmocka_unit_test_setup(close_while_other_threads_read, fresh_file),
      cmocka_unit_test_setup(file_after_close, fresh_file),
      cmocka_unit_test_setup(future_after_wait, fresh_file),
      cmocka_unit_test_setup(pool_after_destroy, fresh_file),
      cmocka_unit_test_setup(batch_after_destroy, fresh_file),
      cmocka_unit_test_setup(remote_after_close, fresh_file),
      cmocka_unit_test_setup(handle_of_another_kind, fresh_file),
  };
  return cmocka_run_group_tests_name("handles", tests, group_setup, group_teardown);
}
