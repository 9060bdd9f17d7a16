/* Allocation torture, remote workload (see torture.h and run.sh): kvik_remote_open over http://
 * to a local nginx (HEAD for the size, libcurl's and OpenSSL's initialization on the first
 * call), the size and the shown URL, a synchronous ranged read, parallel reads in many ranges on
 * the default pool and on a pool of the driver's own, an open with the size given (no HEAD), and
 * a 404; every byte read checked.
 *
 * Usage:
 *   torture_remote              uses the server at $KVIK_TORTURE_URL (a base URL serving
 *                               torture.bin, as --serve makes it), else starts nginx itself
 *   torture_remote --serve      makes torture.bin in a temporary directory, starts nginx on it,
 *                               prints the base URL on one line and serves until stdin closes
 *                               (run.sh starts one server for all its runs this way) */
#include "torture.h"

#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZE ((size_t)1024 * 1024 + 777) /* 17 ranges of 64 KiB, the last one short */
#define TASK ((size_t)64 * 1024)
#define SEED 3

struct job {
  char url[300], missing[300];
  uint8_t *dst; /* SIZE + 64 bytes, read into at dst + 3 */
};

static void pread_check(struct tt *t, const char *what, kvik_remote *r, struct job *j, size_t size,
                        int64_t off, kvik_pool *pool) {
  memset(j->dst, 0xA5, SIZE + 64);
  struct kvik_io_opts o = {.sz = sizeof o, .task_size = TASK, .pool = pool};
  kvik_future *fut = NULL;
  if (!tt_ok(t, what, kvik_remote_pread(r, j->dst + 3, size, off, &o, &fut), 0))
    return;
  if (tt_ok(t, what, kvik_future_wait(fut), (long long)size))
    tt_verify(t, what, j->dst + 3, size, (uint64_t)off, SEED);
}

static void work(struct tt *t, void *arg) {
  struct job *j = arg;
  kvik_remote *r = NULL;
  if (tt_ok(t, "kvik_remote_open", kvik_remote_open(&r, j->url, NULL), 0)) {
    tt_ok(t, "kvik_remote_size", kvik_remote_size(r), (long long)SIZE);
    tt_ok(t, "kvik_remote_type", kvik_remote_type(r), KVIK_REMOTE_HTTP);
    const char *shown = kvik_remote_url(r);
    if (!shown || strcmp(shown, j->url) != 0)
      tt_bad(t, "kvik_remote_url: \"%s\", not \"%s\"", shown ? shown : "(null)", j->url);
    memset(j->dst, 0xA5, SIZE + 64);
    if (tt_ok(t, "kvik_remote_read", kvik_remote_read(r, j->dst + 3, 100000, 12345), 100000))
      tt_verify(t, "kvik_remote_read", j->dst + 3, 100000, 12345, SEED);
    pread_check(t, "kvik_remote_pread", r, j, SIZE, 0, NULL);
    tt_ok(t, "kvik_remote_close", kvik_remote_close(r), 0);
  }

  struct kvik_remote_opts ro = {.sz = sizeof ro, .type = KVIK_REMOTE_HTTP, .size = SIZE};
  r = NULL;
  if (tt_ok(t, "kvik_remote_open(size given)", kvik_remote_open(&r, j->url, &ro), 0)) {
    kvik_pool *pool = NULL;
    if (tt_ok(t, "kvik_pool_create(2)", kvik_pool_create(&pool, 2), 0)) {
      pread_check(t, "kvik_remote_pread(own pool)", r, j, 500000, 1000, pool);
      tt_ok(t, "kvik_pool_destroy", kvik_pool_destroy(pool), 0);
    }
    tt_ok(t, "kvik_remote_close", kvik_remote_close(r), 0);
  }

  /* A clean error on purpose: a 404 must be KVIK_EHTTP with a message, failure or not. */
  r = NULL;
  int rc = kvik_remote_open(&r, j->missing, NULL);
  if (rc >= 0) {
    tt_bad(t, "kvik_remote_open(404) succeeded");
    kvik_remote_close(r);
  } else if (rc == KVIK_EHTTP) {
    t->calls++;
    if (!kvik_last_error()[0])
      tt_bad(t, "kvik_remote_open(404): KVIK_EHTTP without a message");
  } else {
    tt_ok(t, "kvik_remote_open(404)", rc, 0); /* another clean error, or bad */
  }
}

static int make_data(char **dir) {
  const char *base = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof tmpl, "%s/kvik-torture-www-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmpl))
    return -1;
  *dir = strdup(tmpl);
  char path[600];
  snprintf(path, sizeof path, "%s/torture.bin", tmpl);
  uint8_t *data = malloc(SIZE);
  if (!*dir || !data)
    return -1;
  tt_fill(data, SIZE, 0, SEED);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ssize_t w = fd >= 0 ? write(fd, data, SIZE) : -1;
  free(data);
  if (fd < 0 || close(fd) != 0 || w != (ssize_t)SIZE)
    return -1;
  return 0;
}

static void remove_data(char *dir) {
  char path[600];
  snprintf(path, sizeof path, "%s/torture.bin", dir);
  unlink(path);
  rmdir(dir);
  free(dir);
}

/* Starts nginx on a fresh copy of the data. Returns 0, or 77 (skip) with the reason printed. */
static int start_server(struct rt_server *srv, char **dir) {
  /* The server must not inherit the shim: nothing of it is counted, but it need not load. */
  unsetenv("LD_PRELOAD");
  if (make_data(dir) != 0) {
    fprintf(stderr, "torture_remote: cannot make the data file\n");
    return 2;
  }
  char why[512];
  if (rt_nginx_start(srv, *dir, why, sizeof why) != 0) {
    printf("SKIP torture_remote: %s\n", why);
    remove_data(*dir);
    return 77;
  }
  return 0;
}

int main(int argc, char **argv) {
  struct rt_server srv = {0};
  char *dir = NULL;
  if (argc > 1 && strcmp(argv[1], "--serve") == 0) {
    int rc = start_server(&srv, &dir);
    if (rc != 0) {
      fflush(stdout);
      return rc;
    }
    printf("%s\n", srv.base);
    fflush(stdout);
    char c;
    while (read(0, &c, 1) > 0) {
    }
    rt_stop(&srv);
    remove_data(dir);
    return 0;
  }

  static struct job j;
  const char *base = getenv("KVIK_TORTURE_URL");
  if (!base || !*base) {
    int rc = start_server(&srv, &dir);
    if (rc != 0)
      return rc;
    base = srv.base;
  }
  snprintf(j.url, sizeof j.url, "%s/torture.bin", base);
  snprintf(j.missing, sizeof j.missing, "%s/missing.bin", base);
  j.dst = malloc(SIZE + 64);
  if (!j.dst)
    return 2;
  if (!getenv("KVIKIO_NTHREADS"))
    setenv("KVIKIO_NTHREADS", "4", 1);
  fflush(stdout);

  int rc = tt_main("remote", work, &j);

  free(j.dst);
  if (dir) {
    rt_stop(&srv);
    remove_data(dir);
  }
  return rc;
}
