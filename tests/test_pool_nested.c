/* Submitting from inside a pool task cannot deadlock: a task on a one-worker pool starts a
 * parallel read on that same pool and returns; the read then runs on the freed worker. Uses the
 * internal kvik__pool_submit (tasks are not public API). */
#include "common.h"

#include "pool/pool.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct nested {
  kvik_file *f;
  kvik_pool *pool;
  char *buf;
  size_t size;
  kvik_future *inner; /* set by the task */
  int rc;             /* kvik_file_pread's return inside the task */
  atomic_int posted;  /* 1 once inner and rc are set */
};

static void outer_task(void *arg) {
  struct nested *n = arg;
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 64 * KiB, .pool = n->pool};
  n->rc = kvik_file_pread(n->f, n->buf, n->size, 0, &o, &n->inner);
  atomic_store(&n->posted, 1);
}

static void nested_submit(void **state) {
  (void)state;
  char *dir = t_mkdtemp(NULL);
  assert_non_null(dir);
  char *path = t_join(dir, "nested");
  size_t size = 1 * MiB + 7;
  char *src = malloc(size), *dst = malloc(size);
  assert_non_null(src);
  assert_non_null(dst);
  t_pat_fill(src, size, 0, 5);
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, src, size, 0), (ssize_t)size);
  close(fd);

  struct nested n = {.buf = dst, .size = size};
  assert_int_equal(kvik_file_open(&n.f, path, "r", 0, KVIK_COMPAT_ON), 0);
  assert_int_equal(kvik_pool_create(&n.pool, 1), 0);
  assert_int_equal(kvik__pool_submit(n.pool, outer_task, &n), 0);
  /* The task itself never waits, so this finishes; a deadlock shows as a timeout here. */
  for (int i = 0; i < 10000 && !atomic_load(&n.posted); i++)
    usleep(1000);
  assert_int_equal(atomic_load(&n.posted), 1);
  assert_int_equal(n.rc, 0);
  assert_int_equal(kvik_future_wait_for(n.inner, 20000), 0);
  assert_int_equal(kvik_future_wait(n.inner), (ssize_t)size);
  ASSERT_PATTERN(dst, size, 0, 5, "read submitted from inside a task");
  assert_int_equal(kvik_pool_destroy(n.pool), 0);
  assert_int_equal(kvik_file_close(n.f), 0);
  free(src);
  free(dst);
  free(path);
  t_rmtree(dir);
}

/* A worker may not resize or destroy its own pool (it would wait for itself): refused. */
static void self_destroy_task(void *arg) {
  struct nested *n = arg;
  n->rc = kvik_pool_destroy(n->pool);
  int rc2 = kvik_pool_resize(n->pool, 2);
  n->rc = n->rc == KVIK_EBUSY && rc2 == KVIK_EBUSY ? 0 : -1;
  atomic_store(&n->posted, 1);
}

static void worker_cannot_destroy_own_pool(void **state) {
  (void)state;
  struct nested n = {0};
  assert_int_equal(kvik_pool_create(&n.pool, 1), 0);
  assert_int_equal(kvik__pool_submit(n.pool, self_destroy_task, &n), 0);
  for (int i = 0; i < 10000 && !atomic_load(&n.posted); i++)
    usleep(1000);
  assert_int_equal(atomic_load(&n.posted), 1);
  assert_int_equal(n.rc, 0);
  assert_int_equal(kvik_pool_destroy(n.pool), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nested_submit),
      cmocka_unit_test(worker_cannot_destroy_own_pool),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
