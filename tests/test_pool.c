/* Thread pools and futures: create/destroy/resize, the default pool, waits with timeouts,
 * many futures in flight, several submitting threads, and the pool in a child after fork().
 *
 * A "gate" replaces kvik__sys.pread for one file descriptor: a read on it blocks until the test
 * opens the gate. That makes "not done yet" deterministic without any timing. */
#include "common.h"

#include "sys/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* fork() with live threads: TSan by default kills a child that starts threads. The pool's
 * promise is exactly that the child can, so let it. */
#if defined(__SANITIZE_THREAD__)
#define KVIK_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define KVIK_TEST_TSAN 1
#endif
#endif
#ifdef KVIK_TEST_TSAN
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0"; }
#endif

static char *g_dir;
static char *g_data; /* 4 MiB + 5 of pattern, seed 7 */
static const size_t g_data_size = 4 * MiB + 5;
static const uint64_t g_seed = 7;

static int group_setup(void **state) {
  (void)state;
  t_clear_kvikio_env();
  if (kvik_config_reload() != 0)
    return -1;
  g_dir = t_mkdtemp(NULL);
  if (!g_dir)
    return -1;
  g_data = t_join(g_dir, "data");
  t_write_pattern_file(g_data, g_data_size, g_seed);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  free(g_data);
  t_rmtree(g_dir);
  return 0;
}

static kvik_file *open_data(void) {
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, g_data, "r", 0, KVIK_COMPAT_ON), 0);
  assert_non_null(f);
  return f;
}

/* ---- gate ------------------------------------------------------------------------------ */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER; /* guards: gate_open, gate_waiting */
static int gate_open;
static int gate_waiting;
static atomic_int gate_fd = -1;

static _Atomic unsigned long long gate_ino; /* also gate every descriptor of this inode */

static bool gated_fd(int fd) {
  if (fd == atomic_load(&gate_fd))
    return true;
  unsigned long long ino = atomic_load(&gate_ino);
  struct stat st;
  return ino && fstat(fd, &st) == 0 && (unsigned long long)st.st_ino == ino;
}

static ssize_t gated_pread(int fd, void *buf, size_t n, off_t off) {
  if (gated_fd(fd)) {
    pthread_mutex_lock(&gate_mu);
    gate_waiting++;
    pthread_cond_broadcast(&gate_cv);
    while (!gate_open)
      pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
  }
  return pread(fd, buf, n, off);
}

static void gate_install(int fd) {
  pthread_mutex_lock(&gate_mu);
  gate_open = 0;
  gate_waiting = 0;
  pthread_mutex_unlock(&gate_mu);
  atomic_store(&gate_fd, fd);
  kvik__sys.pread = gated_pread;
}

/* Waits (up to a generous safety limit, so a wrong assumption fails instead of hanging) until
 * a pool worker is blocked in the gate. */
static void gate_wait_blocked(int count) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 60;
  pthread_mutex_lock(&gate_mu);
  int rc = 0;
  while (gate_waiting < count && rc == 0)
    rc = pthread_cond_timedwait(&gate_cv, &gate_mu, &until);
  int waiting = gate_waiting;
  pthread_mutex_unlock(&gate_mu);
  if (waiting < count)
    fail_msg("%d of %d reads reached kvik__sys.pread on kvik_file_fd() within 60 s", waiting,
             count);
}

static void gate_release(void) {
  pthread_mutex_lock(&gate_mu);
  gate_open = 1;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
}

static void gate_remove(void) {
  gate_release();
  atomic_store(&gate_fd, -1);
  atomic_store(&gate_ino, 0);
  kvik__sys_reset();
}

/* ---- helpers ----------------------------------------------------------------------------- */

static void read_check(kvik_file *f, kvik_pool *pool, size_t size, uint64_t off, size_t task) {
  uint8_t *buf = malloc(size ? size : 1);
  assert_non_null(buf);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = task, .pool = pool};
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_file_pread(f, buf, size, (int64_t)off, &o, &fut), 0);
  assert_non_null(fut);
  size_t want = off >= g_data_size ? 0 : (size < g_data_size - off ? size : g_data_size - off);
  ASSERT_CODE(kvik_future_wait(fut), want);
  ASSERT_PATTERN(buf, want, off, g_seed, "pool read");
  free(buf);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void create_and_destroy(void **state) {
  (void)state;
  kvik_pool *p = (kvik_pool *)(uintptr_t)0x1;
  ASSERT_CODE(kvik_pool_create(&p, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_pool_create(&p, 4097), KVIK_EINVAL);
  assert_ptr_equal(p, (kvik_pool *)(uintptr_t)0x1);
  ASSERT_CODE(kvik_pool_create(NULL, 2), KVIK_EINVAL);
  static const unsigned sizes[] = {1, 2, 3, 17, 4096};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    p = NULL;
    ASSERT_CODE(kvik_pool_create(&p, sizes[i]), 0);
    assert_non_null(p);
    ASSERT_CODE(kvik_pool_nthreads(p), (int)sizes[i]);
    ASSERT_CODE(kvik_pool_destroy(p), 0);
  }
  ASSERT_CODE(kvik_pool_destroy(NULL), 0);
}

static void resize_while_idle(void **state) {
  (void)state;
  kvik_file *f = open_data();
  kvik_pool *p = NULL;
  ASSERT_CODE(kvik_pool_create(&p, 2), 0);
  read_check(f, p, 1 * MiB + 3, 11, 64 * KiB);
  static const unsigned sizes[] = {5, 1, 16, 3};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    ASSERT_CODE(kvik_pool_resize(p, sizes[i]), 0);
    ASSERT_CODE(kvik_pool_nthreads(p), (int)sizes[i]);
    read_check(f, p, 2 * MiB + 1, 4095, 32 * KiB);
  }
  ASSERT_CODE(kvik_pool_resize(p, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_pool_nthreads(p), 3);
  ASSERT_CODE(kvik_pool_resize(p, 4097), KVIK_EINVAL);
  ASSERT_CODE(kvik_pool_nthreads(p), 3);
  read_check(f, p, 100, 0, 7);
  ASSERT_CODE(kvik_pool_destroy(p), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
}

static void default_pool(void **state) {
  (void)state;
  uint64_t nthreads = 0;
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_NTHREADS, &nthreads), 0);
  kvik_pool *d1 = NULL, *d2 = NULL;
  ASSERT_CODE(kvik_pool_default(&d1), 0);
  ASSERT_CODE(kvik_pool_default(&d2), 0);
  assert_non_null(d1);
  assert_ptr_equal(d1, d2);
  ASSERT_CODE(kvik_pool_nthreads(NULL), (int)nthreads);
  ASSERT_CODE(kvik_pool_nthreads(d1), (int)nthreads);
  ASSERT_CODE(kvik_pool_default(NULL), KVIK_EINVAL);
  /* The default pool is not the caller's to destroy, and still works after the attempt. */
  ASSERT_CODE(kvik_pool_destroy(d1), KVIK_EINVAL);
  kvik_file *f = open_data();
  read_check(f, NULL, g_data_size, 0, 0);
  read_check(f, d1, 3 * MiB, 1 * MiB + 1, 256 * KiB);
  ASSERT_CODE(kvik_file_close(f), 0);
}

static void wait_for_and_done(void **state) {
  (void)state;
  kvik_file *f = open_data();
  kvik_pool *p = NULL;
  ASSERT_CODE(kvik_pool_create(&p, 2), 0);
  gate_install(kvik_file_fd(f));
  size_t n = 300 * KiB;
  uint8_t *buf = malloc(n);
  assert_non_null(buf);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 64 * KiB, .pool = p};
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_file_pread(f, buf, n, 12345, &o, &fut), 0);
  gate_wait_blocked(1);
  /* A worker is stuck in the gate, so the operation cannot be done. */
  ASSERT_CODE(kvik_future_done(fut), 0);
  ASSERT_CODE(kvik_future_wait_for(fut, 0), KVIK_ETIMEDOUT);
  ASSERT_CODE(kvik_future_wait_for(fut, 20), KVIK_ETIMEDOUT);
  ASSERT_CODE(kvik_future_done(fut), 0);
  gate_release();
  ASSERT_CODE(kvik_future_wait_for(fut, -1), 0);
  ASSERT_CODE(kvik_future_done(fut), 1);
  ASSERT_CODE(kvik_future_wait_for(fut, 0), 0); /* still there, still done */
  ASSERT_CODE(kvik_future_wait(fut), n);
  gate_remove();
  ASSERT_PATTERN(buf, n, 12345, g_seed, "gated read");
  free(buf);
  ASSERT_CODE(kvik_pool_destroy(p), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
}

/* A future can be waited on by a thread other than the one that submitted it. */
struct waiter {
  kvik_future *fut;
  long long result;
};
static void *wait_in_thread(void *arg) {
  struct waiter *w = arg;
  w->result = kvik_future_wait(w->fut);
  return NULL;
}

static void wait_from_other_thread(void **state) {
  (void)state;
  kvik_file *f = open_data();
  size_t n = 1 * MiB;
  uint8_t *buf = malloc(n);
  assert_non_null(buf);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 100 * KiB};
  struct waiter w = {0};
  ASSERT_CODE(kvik_file_pread(f, buf, n, 3, &o, &w.fut), 0);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, wait_in_thread, &w), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  ASSERT_CODE(w.result, n);
  ASSERT_PATTERN(buf, n, 3, g_seed, "read waited elsewhere");
  free(buf);
  ASSERT_CODE(kvik_file_close(f), 0);
}

static void many_concurrent_futures(void **state) {
  (void)state;
  kvik_file *f = open_data();
  kvik_pool *p = NULL;
  ASSERT_CODE(kvik_pool_create(&p, 4), 0);
  enum { N = 256 };
  const size_t piece = 16 * KiB;
  uint8_t *buf = malloc(N * piece);
  assert_non_null(buf);
  memset(buf, 0xA5, N * piece);
  kvik_future *futs[N];
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 4096, .pool = p};
  for (int i = 0; i < N; i++) {
    /* Pieces are read to scattered file offsets so each future's data is distinct. */
    uint64_t off = (uint64_t)((i * 37) % N) * piece + 1;
    ASSERT_CODE(kvik_file_pread(f, buf + (size_t)i * piece, piece, (int64_t)off, &o, &futs[i]), 0);
  }
  for (int i = N - 1; i >= 0; i--)
    ASSERT_CODE(kvik_future_wait(futs[i]), piece);
  for (int i = 0; i < N; i++) {
    uint64_t off = (uint64_t)((i * 37) % N) * piece + 1;
    ASSERT_PATTERN(buf + (size_t)i * piece, piece, off, g_seed, "concurrent future");
  }

  /* Writes: many futures to distinct regions of a new file, waited in a scrambled order. */
  char *out = t_join(g_dir, "many-writes");
  kvik_file *w = NULL;
  ASSERT_CODE(kvik_file_open(&w, out, "w", 0644, KVIK_COMPAT_ON), 0);
  enum { NW = 128 };
  const size_t wpiece = 8 * KiB + 3;
  uint8_t *src = malloc(NW * wpiece);
  assert_non_null(src);
  t_pat_fill(src, NW * wpiece, 0, 99);
  kvik_future *wf[NW];
  struct kvik_io_opts wo = {.sz = sizeof wo, .task_size = 3000, .pool = p};
  for (int i = 0; i < NW; i++) {
    int j = (i * 53) % NW;
    ASSERT_CODE(kvik_file_pwrite(w, src + (size_t)j * wpiece, wpiece, (int64_t)((size_t)j * wpiece),
                                 &wo, &wf[i]),
                0);
  }
  for (int i = 0; i < NW; i++)
    ASSERT_CODE(kvik_future_wait(wf[(i * 29) % NW]), wpiece);
  ASSERT_CODE(kvik_file_size(w), NW * wpiece);
  ASSERT_CODE(kvik_file_close(w), 0);
  ASSERT_FILE_PATTERN(out, NW * wpiece, 99);
  free(src);
  free(out);
  free(buf);
  ASSERT_CODE(kvik_pool_destroy(p), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
}

/* Several threads submit to and wait on one pool at the same time. */
struct submitter {
  kvik_file *f;
  kvik_pool *pool;
  int id;
  int failures;
  char why[256];
};

static void *submit_loop(void *arg) {
  struct submitter *s = arg;
  const size_t n = 40 * KiB + (size_t)s->id;
  uint8_t *buf = malloc(n);
  if (!buf) {
    s->failures++;
    return NULL;
  }
  for (int i = 0; i < 40; i++) {
    uint64_t off = (uint64_t)(s->id * 40 + i) * 7919u % (g_data_size - n);
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = 4096 + (size_t)i, .pool = s->pool};
    kvik_future *fut = NULL;
    int rc = kvik_file_pread(s->f, buf, n, (int64_t)off, &o, &fut);
    long long got = rc == 0 ? kvik_future_wait(fut) : rc;
    if (got != (long long)n || t_pat_find_mismatch(buf, n, off, g_seed) >= 0) {
      if (!s->failures)
        snprintf(s->why, sizeof s->why, "thread %d, read %d at %llu: result %lld (%s)", s->id, i,
                 (unsigned long long)off, got, got < 0 ? kvik_last_error() : "bytes differ");
      s->failures++;
    }
  }
  free(buf);
  return NULL;
}

static void concurrent_submitters(void **state) {
  (void)state;
  kvik_file *f = open_data();
  kvik_pool *p = NULL;
  ASSERT_CODE(kvik_pool_create(&p, 3), 0);
  enum { T = 4 };
  pthread_t th[T];
  struct submitter s[T];
  for (int i = 0; i < T; i++) {
    s[i] = (struct submitter){.f = f, .pool = i % 2 ? p : NULL, .id = i};
    assert_int_equal(pthread_create(&th[i], NULL, submit_loop, &s[i]), 0);
  }
  for (int i = 0; i < T; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  for (int i = 0; i < T; i++)
    if (s[i].failures)
      fail_msg("%d failures; first: %s", s[i].failures, s[i].why);
  ASSERT_CODE(kvik_pool_destroy(p), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
}

/* One worker, many futures of many tasks, waited in an order unlike submission: waiting must
 * not need a worker (a "last task waits for the others" design would deadlock here). */
static void single_worker_many_futures(void **state) {
  (void)state;
  kvik_file *f = open_data();
  kvik_pool *p = NULL;
  ASSERT_CODE(kvik_pool_create(&p, 1), 0);
  enum { N = 6 };
  const size_t n = 512 * KiB;
  uint8_t *buf = malloc(N * n);
  assert_non_null(buf);
  kvik_future *futs[N];
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 8 * KiB, .pool = p};
  for (int i = 0; i < N; i++)
    ASSERT_CODE(kvik_file_pread(f, buf + (size_t)i * n, n, (int64_t)((size_t)i * n), &o, &futs[i]),
                0);
  static const int order[N] = {3, 5, 0, 4, 1, 2};
  for (int i = 0; i < N; i++)
    ASSERT_CODE(kvik_future_wait(futs[order[i]]), n);
  ASSERT_PATTERN(buf, N * n, 0, g_seed, "single worker");
  free(buf);
  ASSERT_CODE(kvik_pool_destroy(p), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
}

/* kvik_pool_destroy() waits for queued work: futures submitted before it complete, and their
 * results can be collected afterwards. */
static void destroy_finishes_queued_work(void **state) {
  (void)state;
  kvik_file *f = open_data();
  kvik_pool *p = NULL;
  ASSERT_CODE(kvik_pool_create(&p, 2), 0);
  enum { N = 8 };
  const size_t n = 256 * KiB;
  uint8_t *buf = malloc(N * n);
  assert_non_null(buf);
  kvik_future *futs[N];
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 4096, .pool = p};
  for (int i = 0; i < N; i++)
    ASSERT_CODE(kvik_file_pread(f, buf + (size_t)i * n, n, (int64_t)((size_t)i * n), &o, &futs[i]),
                0);
  ASSERT_CODE(kvik_pool_destroy(p), 0);
  for (int i = 0; i < N; i++) {
    ASSERT_CODE(kvik_future_done(futs[i]), 1);
    ASSERT_CODE(kvik_future_wait(futs[i]), n);
  }
  ASSERT_PATTERN(buf, N * n, 0, g_seed, "read finished by destroy");
  free(buf);
  ASSERT_CODE(kvik_file_close(f), 0);
}

/* ---- fork -------------------------------------------------------------------------------- */

/* In the child: read through the default pool and through a user pool; exit 0 if both are
 * right. Never uses cmocka (its jump buffers belong to the parent's test). */
static int child_reads(kvik_file *f, kvik_pool *user) {
  alarm(30); /* a deadlocked pool fails the test instead of hanging it */
  size_t n = 2 * MiB + 1;
  uint8_t *buf = malloc(n);
  if (!buf)
    return 10;
  kvik_future *fut = NULL;
  if (kvik_file_pread(f, buf, n, 5, NULL, &fut) != 0)
    return 11;
  ssize_t got = kvik_future_wait(fut);
  if (got != (ssize_t)n) {
    printf("child: default-pool read returned %zd: %s\n", got, kvik_last_error());
    return 12;
  }
  if (t_pat_find_mismatch(buf, n, 5, g_seed) >= 0)
    return 13;
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 64 * KiB, .pool = user};
  memset(buf, 0, n);
  if (kvik_file_pread(f, buf, n, 4096, &o, &fut) != 0)
    return 14;
  got = kvik_future_wait(fut);
  if (got != (ssize_t)n) {
    printf("child: user-pool read returned %zd: %s\n", got, kvik_last_error());
    return 15;
  }
  if (t_pat_find_mismatch(buf, n, 4096, g_seed) >= 0)
    return 16;
  if (kvik_file_read(f, buf, 100, 0) != 100)
    return 17;
  free(buf);
  return 0;
}

/* A forked child's exit status. Under valgrind (scripts/valgrind.sh) a child that leaves with
 * the parent's in-flight work leaked by design (fork() keeps no threads) exits with memcheck's
 * error code 99; that is not a failure of the child's checks, which use other codes. */
static int child_status(int status) {
  int code = WEXITSTATUS(status);
  return code == 99 && getenv("KVIK_TEST_VALGRIND") ? 0 : code;
}

static void expect_child_ok(pid_t pid, const char *what) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid)
    fail_msg("waitpid: %s", strerror(errno));
  if (WIFSIGNALED(status))
    fail_msg("%s: child killed by signal %d (%s)", what, WTERMSIG(status),
             WTERMSIG(status) == SIGALRM ? "hung for 30 s" : strsignal(WTERMSIG(status)));
  if (child_status(status) != 0)
    fail_msg("%s: child exited with %d (see child_reads for the step)", what, WEXITSTATUS(status));
}

static void pool_works_after_fork(void **state) {
  (void)state;
  kvik_file *f = open_data();
  kvik_pool *user = NULL, *lazy = NULL;
  ASSERT_CODE(kvik_pool_create(&user, 3), 0);
  ASSERT_CODE(kvik_pool_create(&lazy, 2), 0); /* never used before the fork */
  /* Use both the default pool and the user pool in the parent first. */
  read_check(f, NULL, 1 * MiB, 0, 0);
  read_check(f, user, 1 * MiB, 7, 32 * KiB);

  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    exit(child_reads(f, user));
  expect_child_ok(pid, "fork after use");

  pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    exit(child_reads(f, lazy));
  expect_child_ok(pid, "fork, lazy pool");

  /* The parent's pools are unaffected. */
  read_check(f, NULL, 1 * MiB, 3, 0);
  read_check(f, user, 1 * MiB, 3, 4096);
  ASSERT_CODE(kvik_pool_destroy(lazy), 0);
  ASSERT_CODE(kvik_pool_destroy(user), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
}

/* In the child: `reads` parallel reads through pool (NULL: the default pool), each checked. */
static int child_many_reads(kvik_file *f, kvik_pool *pool, int reads) {
  alarm(30); /* a pool that hangs fails the test instead of hanging it */
  size_t n = 1 * MiB + 3;
  uint8_t *buf = malloc(n);
  if (!buf)
    return 10;
  for (int i = 0; i < reads; i++) {
    uint64_t off = (uint64_t)i * 4093;
    memset(buf, 0, n);
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = 64 * KiB, .pool = pool};
    kvik_future *fut = NULL;
    if (kvik_file_pread(f, buf, n, (int64_t)off, &o, &fut) != 0)
      return 20 + i;
    ssize_t got = kvik_future_wait(fut);
    if (got != (ssize_t)n) {
      printf("child: read %d returned %zd: %s\n", i, got, kvik_last_error());
      return 40 + i;
    }
    if (t_pat_find_mismatch(buf, n, off, g_seed) >= 0)
      return 60 + i;
  }
  free(buf);
  return 0;
}

/* The parent's pools did parallel I/O and went idle (their workers wait for work), then the
 * process forks: in every child, several parallel reads in a row work, through the default pool
 * and a user pool. The condition variable the parent's workers waited on keeps their waiter
 * state in the child; the child's second read used to hang on it. */
static void fork_after_idle_many_reads(void **state) {
  (void)state;
  kvik_file *f = open_data();
  kvik_pool *user = NULL;
  ASSERT_CODE(kvik_pool_create(&user, 4), 0);
  for (int child = 0; child < 6; child++) {
    read_check(f, NULL, 2 * MiB, (uint64_t)child, 64 * KiB);
    read_check(f, user, 2 * MiB, (uint64_t)child * 3, 32 * KiB);
    /* Gives the workers time to go back to waiting for work, the state that breaks the child
     * (the test is valid without it, but then may catch them before they wait). */
    usleep(20000);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      int rc = child_many_reads(f, child % 2 ? user : NULL, 6);
      exit(rc ? rc : child_many_reads(f, child % 2 ? NULL : user, 6));
    }
    expect_child_ok(pid, child % 2 ? "fork after idle, user pool first"
                                   : "fork after idle, default pool first");
  }
  read_check(f, NULL, 1 * MiB, 3, 0);
  read_check(f, user, 1 * MiB, 3, 4096);
  ASSERT_CODE(kvik_pool_destroy(user), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
}

/* In the child: the parent's future, in flight at fork(), is refused at once (it can never
 * complete here) instead of hanging. 0 if so. */
static int child_stale_future(kvik_future *fut) {
  alarm(30);
  static const char *const calls[] = {"kvik_future_done", "kvik_future_wait_for",
                                      "kvik_future_wait"};
  for (int i = 0; i < 3; i++) {
    int rc = i == 0   ? kvik_future_done(fut)
             : i == 1 ? kvik_future_wait_for(fut, -1)
                      : (int)kvik_future_wait(fut);
    if (rc != KVIK_ECANCELED || !strstr(kvik_last_error(), "fork") ||
        !strstr(kvik_last_error(), calls[i])) {
      printf("child: %s on the parent's future returned %d: %s\n", calls[i], rc, kvik_last_error());
      return 1;
    }
  }
  return 0;
}

/* fork() while a worker of the default pool is busy in the parent: the child must still get a
 * working default pool (the busy worker does not exist there). */
static void fork_while_busy(void **state) {
  (void)state;
  kvik_file *busy = open_data();
  kvik_file *f = open_data();
  uint64_t nthreads = 0;
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_NTHREADS, &nthreads), 0);
  gate_install(kvik_file_fd(busy));
  /* As many tasks as the default pool has workers, so every worker is (or will be) blocked. */
  size_t task = 64 * KiB, n = task * (size_t)nthreads;
  uint8_t *buf = malloc(n);
  assert_non_null(buf);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = task};
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_file_pread(busy, buf, n, 0, &o, &fut), 0);
  gate_wait_blocked((int)nthreads); /* every worker blocked, nothing left in the queue */
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    exit(child_stale_future(fut) ? 30 : child_reads(f, NULL));
  int status = 0;
  pid_t got = waitpid(pid, &status, 0);
  gate_release();
  ASSERT_CODE(kvik_future_wait(fut), n);
  gate_remove();
  assert_int_equal(got, pid);
  if (WIFSIGNALED(status))
    fail_msg("child killed by signal %d (%s)", WTERMSIG(status),
             WTERMSIG(status) == SIGALRM ? "hung for 30 s" : strsignal(WTERMSIG(status)));
  if (child_status(status) != 0)
    fail_msg("child exited with %d", WEXITSTATUS(status));
  ASSERT_PATTERN(buf, n, 0, g_seed, "read across fork");
  free(buf);
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_CODE(kvik_file_close(busy), 0);
}

/* fork() while every bounce buffer the pool allows is held by a parent worker (an unaligned
 * O_DIRECT read, blocked in the gate) and more workers wait for one: the child has none of those
 * workers, so their buffers never come back there, and its own O_DIRECT reads must still get
 * bounce buffers instead of waiting forever. */
static void fork_while_bounce_buffers_held(void **state) {
  (void)state;
  if (getenv("KVIK_TEST_VALGRIND"))
    SKIP_BECAUSE("under valgrind: the child leaks, by design, the bounce buffers the parent's "
                 "workers held at fork() (src/pool/bounce.c), which memcheck counts as lost");
  char fs[32];
  const char *base = t_direct_io_base(fs);
  if (!base)
    SKIP_BECAUSE("no filesystem here takes O_DIRECT");
  uint64_t nthreads = 0;
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_NTHREADS, &nthreads), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_NTHREADS, 1), 0); /* at most 4 * 1 + 8 = 12 buffers */
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, 1), 0);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_BOUNCE_BUFFER_SIZE, 64 * KiB), 0);
  char *dir = t_mkdtemp(base);
  assert_non_null(dir);
  char *busy_path = t_join(dir, "busy"), *path = t_join(dir, "data");
  t_write_pattern_file(busy_path, 2 * MiB, g_seed);
  t_write_pattern_file(path, 2 * MiB, g_seed);
  kvik_file *busy = NULL, *f = NULL;
  ASSERT_CODE(kvik_file_open(&busy, busy_path, "r", 0, KVIK_COMPAT_ON), 0);
  ASSERT_CODE(kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_ON), 0);
  kvik_pool *p = NULL;
  ASSERT_CODE(kvik_pool_create(&p, 16), 0);
  struct stat st;
  assert_int_equal(stat(busy_path, &st), 0);
  atomic_store(&gate_ino, (unsigned long long)st.st_ino);
  gate_install(-1);
  uint8_t *buf = t_alloc_aligned(2 * MiB + 4096);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = 64 * KiB, .pool = p};
  kvik_future *fut = NULL;
  /* 32 page-aligned chunks into a buffer 984 bytes off a page: each goes through a bounce
   * buffer, held while its direct read waits in the gate. */
  ASSERT_CODE(kvik_file_pread(busy, buf + 984, 2 * MiB, 0, &o, &fut), 0);
  gate_wait_blocked(12);
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    alarm(30);
    uint8_t *b = t_alloc_aligned(2 * MiB + 4096);
    for (int i = 0; i < 3; i++) {
      struct kvik_io_opts co = {.sz = sizeof co, .task_size = 256 * KiB};
      kvik_future *cf = NULL;
      memset(b, 0, 2 * MiB + 4096);
      if (kvik_file_pread(f, b + 984, 2 * MiB, 0, &co, &cf) != 0 ||
          kvik_future_wait(cf) != (ssize_t)(2 * MiB) ||
          t_pat_find_mismatch(b + 984, 2 * MiB, 0, g_seed) >= 0)
        _exit(20 + i);
      if (kvik_file_read(f, b + 984, 1 * MiB, 4096) != (ssize_t)MiB ||
          t_pat_find_mismatch(b + 984, 1 * MiB, 4096, g_seed) >= 0)
        _exit(30 + i);
    }
    /* _exit: the parent's in-use bounce buffers are leaked here by design, and a leak checker
     * run at exit() would count them. The test's own allocations are freed, as valgrind's
     * leak check runs at _exit too. */
    free(b);
    free(buf);
    free(dir);
    free(busy_path);
    free(path);
    _exit(0);
  }
  int status = 0;
  pid_t got = waitpid(pid, &status, 0);
  gate_release();
  ASSERT_CODE(kvik_future_wait(fut), 2 * MiB);
  gate_remove(); /* once no worker reads through the hooked table any more */
  ASSERT_PATTERN(buf + 984, 2 * MiB, 0, g_seed, "parent's read across fork");
  assert_int_equal(got, pid);
  if (WIFSIGNALED(status))
    fail_msg("child killed by signal %d (%s)", WTERMSIG(status),
             WTERMSIG(status) == SIGALRM ? "hung for 30 s" : strsignal(WTERMSIG(status)));
  if (child_status(status) != 0)
    fail_msg("child exited with %d", WEXITSTATUS(status));
  ASSERT_CODE(kvik_pool_destroy(p), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  ASSERT_CODE(kvik_file_close(busy), 0);
  free(buf);
  free(busy_path);
  free(path);
  t_rmtree(dir);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_NTHREADS, nthreads), 0);
  ASSERT_CODE(kvik_config_reload(), 0);
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(create_and_destroy),
      cmocka_unit_test(resize_while_idle),
      cmocka_unit_test(default_pool),
      cmocka_unit_test(wait_for_and_done),
      cmocka_unit_test(wait_from_other_thread),
      cmocka_unit_test(many_concurrent_futures),
      cmocka_unit_test(concurrent_submitters),
      cmocka_unit_test(single_worker_many_futures),
      cmocka_unit_test(destroy_finishes_queued_work),
      cmocka_unit_test(pool_works_after_fork),
      cmocka_unit_test(fork_while_busy),
      cmocka_unit_test(fork_after_idle_many_reads),
      cmocka_unit_test(fork_while_bounce_buffers_held),
  };
  return cmocka_run_group_tests_name("pool", tests, group_setup, group_teardown);
}
