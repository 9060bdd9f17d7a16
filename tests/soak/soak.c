/* kvik's soak: random reads and writes for a given time, each one checked against plain
 * pread(2), on a disk-backed directory and on tmpfs at once, while settings change under them.
 *
 * Each worker thread owns one file (workers alternate between the two directories) and loops
 * over random operations:
 *   - reads and writes, synchronous (kvik_file_read/write) or parallel (kvik_file_pread/pwrite
 *     on the file's pool, the default pool or the worker's own pool), of random sizes (0 to
 *     16 MiB, most small), at random offsets (aligned or not, past the end too), from random
 *     buffer offsets, with random task sizes. A read must return min(size, file size - offset)
 *     bytes equal to what plain pread returns; a write must leave exactly its bytes on disk (plain
 *     pread) and the size right; bytes around the buffer must stay untouched;
 *   - setting changes shared by all workers (kvik_config_set_u64): KVIKIO_AUTO_DIRECT_IO_READ,
 *     _WRITE, _READ_OVERREAD, KVIKIO_BOUNCE_BUFFER_SIZE, KVIKIO_TASK_SIZE, KVIKIO_NTHREADS (the
 *     default pool is resized), KVIKIO_THREAD_POOL_PER_BLOCK_DEVICE (for files opened later);
 *   - the worker's own pool created, resized or destroyed; the file closed and opened again
 *     with another compat mode; its page cache dropped; its size checked.
 * Any mismatch or failed call prints the operation (worker, file, offset, size, buffer offset,
 * task size, pool, settings), the seed, and ends the run with exit status 1.
 *
 * Usage: soak [--seconds S] [--seed N] [--threads T] [--disk DIR] [--tmpfs DIR]
 *   defaults: 30 s, seed 1, 4 workers, /var/tmp, /dev/shm. A worker's sequence of
 *   operations follows from the seed; how the workers interleave does not (--threads 1 runs one
 *   sequence alone). Progress every 10 s and a summary: operations and bytes verified. */
#define _GNU_SOURCE
#include "kvik.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MiB ((size_t)1024 * 1024)
#define MAX_IO (16 * MiB)   /* largest read or write */
#define MAX_FILE (48 * MiB) /* writes start below this */
#define GUARD 4096          /* checked bytes before and after each buffer */
#define CANARY 0x5C

static double seconds = 30;
static uint64_t seed = 1;
static int nthreads = 4;
static const char *dirs[2];  /* disk, tmpfs */
static char fs_name[2][32];  /* what kvik_path_info says they are */
static char workdir[2][600]; /* our kvik-soak-XXXXXX under each */

static _Atomic int stop; /* set at the deadline or on the first failure */
static _Atomic int failed;
static _Atomic uint64_t n_reads, n_writes, n_settings, n_pools, n_reopens, n_other;
static _Atomic uint64_t bytes_verified;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* splitmix64: a worker's own generator, so its sequence follows from the seed alone. */
static uint64_t rnd(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint64_t below(uint64_t *s, uint64_t n) { return n ? rnd(s) % n : 0; }

/* A size: mostly small, sometimes page multiples, sometimes large. */
static size_t rnd_size(uint64_t *s) {
  switch (below(s, 10)) {
  case 0: return (size_t)below(s, 2); /* 0 or 1 byte */
  case 1:
  case 2:
  case 3: return (size_t)below(s, 70000); /* small, any length */
  case 4:
  case 5: return (size_t)(1 + below(s, 64)) * 4096; /* page multiples */
  case 6:
  case 7: return (size_t)below(s, 4 * MiB);     /* medium */
  default: return (size_t)below(s, MAX_IO + 1); /* large */
  }
}

static int64_t rnd_offset(uint64_t *s, int64_t file_size) {
  switch (below(s, 6)) {
  case 0: return 0;
  case 1: return (int64_t)below(s, MAX_FILE / 4096) * 4096; /* aligned */
  case 2: return file_size > 0 ? (int64_t)below(s, (uint64_t)file_size) : 0;
  case 3: { /* around the end: one byte before, at, one byte after */
    int64_t o = file_size + (int64_t)below(s, 3) - 1;
    return o < 0 ? 0 : o;
  }
  default: return (int64_t)below(s, MAX_FILE);
  }
}

static size_t rnd_task(uint64_t *s) {
  static const size_t sizes[] = {0 /* the setting */, 4096, 12345, 65536, 1 * MiB, 4 * MiB, 100001};
  return sizes[below(s, sizeof sizes / sizeof sizes[0])];
}

struct worker {
  int index;
  int fs; /* 0 disk, 1 tmpfs */
  char path[700];
  uint64_t rng;
  kvik_file *f;
  int compat;
  int fd;         /* plain descriptor for checks */
  int64_t size;   /* what the file's size must be */
  kvik_pool *own; /* the worker's own pool, or NULL */
  unsigned own_threads;
  uint8_t *mem; /* GUARD + MAX_IO + 4096 + GUARD bytes: the I/O buffer */
  uint8_t *chk; /* MAX_IO bytes: plain pread's view */
  uint64_t ops;
  char last[900]; /* the operation in progress, for the failure report */
};

static void settings_text(char *out, size_t len) {
  uint64_t r = 0, w = 0, o = 0, b = 0, t = 0, n = 0, pd = 0;
  kvik_config_get_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, &r);
  kvik_config_get_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, &w);
  kvik_config_get_u64(KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD, &o);
  kvik_config_get_u64(KVIK_CFG_BOUNCE_BUFFER_SIZE, &b);
  kvik_config_get_u64(KVIK_CFG_TASK_SIZE, &t);
  kvik_config_get_u64(KVIK_CFG_NTHREADS, &n);
  kvik_config_get_u64(KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE, &pd);
  snprintf(out, len,
           "direct read %" PRIu64 " write %" PRIu64 " overread %" PRIu64 ", bounce %" PRIu64
           ", task %" PRIu64 ", nthreads %" PRIu64 ", pool per device %" PRIu64,
           r, w, o, b, t, n, pd);
}

/* Reports a failure of worker w (formatted), the operation and the settings; stops the run. */
static void fail(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct worker *w, const char *fmt, ...) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  char msg[1024], st[300];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  settings_text(st, sizeof st);
  pthread_mutex_lock(&lock);
  printf("soak: FAILED in worker %d (file %s, %s), operation %" PRIu64 ": %s\n"
         "soak:   operation: %s\n"
         "soak:   settings now: %s\n"
         "soak:   seed %" PRIu64 " (rerun: scripts/soak.sh %g --seed %" PRIu64 " --threads %d)\n",
         w->index, w->path, fs_name[w->fs], w->ops, msg, w->last, st, seed, seconds, seed,
         nthreads);
  fflush(stdout);
  pthread_mutex_unlock(&lock);
  atomic_store(&failed, 1);
  atomic_store(&stop, 1);
}

/* Checks a kvik return value; false (after reporting) if it is not want (want < 0: any >= 0). */
static bool ok(struct worker *w, const char *what, long long rc, long long want) {
  if (rc < 0) {
    fail(w, "%s failed: %s (%lld): %s", what, kvik_strerror_name((int)rc), rc, kvik_last_error());
    return false;
  }
  if (want >= 0 && rc != want) {
    fail(w, "%s returned %lld, not %lld", what, rc, want);
    return false;
  }
  return true;
}

static bool guards_intact(struct worker *w, const uint8_t *buf, size_t size) {
  const uint8_t *lo = w->mem, *hi = buf + size, *end = w->mem + GUARD + MAX_IO + 4096 + GUARD;
  for (const uint8_t *p = lo; p < buf; p++)
    if (*p != CANARY) {
      fail(w, "byte %td before the buffer was changed (0x%02x)", p - buf, *p);
      return false;
    }
  for (const uint8_t *p = hi; p < end; p++)
    if (*p != CANARY) {
      fail(w, "byte %td after the end of the buffer was changed (0x%02x)", p - hi, *p);
      return false;
    }
  return true;
}

static bool compare(struct worker *w, const char *what, const uint8_t *got, const uint8_t *want,
                    size_t n, int64_t off) {
  if (memcmp(got, want, n) == 0) {
    atomic_fetch_add(&bytes_verified, n);
    return true;
  }
  size_t i = 0;
  while (got[i] == want[i])
    i++;
  size_t same = 0;
  while (i + same < n && got[i + same] != want[i + same])
    same++;
  fail(w,
       "%s: wrong bytes from buffer index %zu (file offset %lld): 0x%02x, plain pread 0x%02x; "
       "%zu bytes differ from there",
       what, i, (long long)off + (long long)i, got[i], want[i], same);
  return false;
}

static int plain_pread(struct worker *w, uint8_t *buf, size_t n, int64_t off, size_t *got) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(w->fd, buf + done, n - done, off + (off_t)done);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      break;
    done += (size_t)r;
  }
  *got = done;
  return 0;
}

static kvik_pool *pick_pool(struct worker *w, const char **name) {
  switch (below(&w->rng, 3)) {
  case 0: *name = "the file's pool"; return NULL;
  case 1: {
    kvik_pool *p = NULL;
    *name = "the default pool";
    return kvik_pool_default(&p) == 0 ? p : NULL;
  }
  default: *name = w->own ? "own pool" : "the file's pool"; return w->own;
  }
}

static void op_read(struct worker *w) {
  size_t size = rnd_size(&w->rng);
  int64_t off = rnd_offset(&w->rng, w->size);
  size_t boff = below(&w->rng, 2) ? 0 : (size_t)below(&w->rng, 4096);
  uint8_t *buf = w->mem + GUARD + boff;
  bool parallel = below(&w->rng, 10) < 7;
  size_t task = rnd_task(&w->rng);
  const char *pname = "-";
  kvik_pool *pool = parallel ? pick_pool(w, &pname) : NULL;
  snprintf(w->last, sizeof w->last,
           "%s read of %zu bytes at offset %lld into buffer offset %zu, task size %zu, %s; file "
           "size %lld",
           parallel ? "parallel" : "sync", size, (long long)off, boff, task, pname,
           (long long)w->size);
  memset(w->mem, CANARY, GUARD + MAX_IO + 4096 + GUARD);
  long long n;
  if (parallel) {
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = task, .pool = pool};
    kvik_future *fut = NULL;
    if (!ok(w, "kvik_file_pread", kvik_file_pread(w->f, buf, size, off, &o, &fut), 0))
      return;
    n = kvik_future_wait(fut);
  } else {
    n = kvik_file_read(w->f, buf, size, off);
  }
  int64_t avail = w->size > off ? w->size - off : 0;
  long long want = (long long)((int64_t)size < avail ? (int64_t)size : avail);
  if (!ok(w, parallel ? "kvik_future_wait(pread)" : "kvik_file_read", n, want))
    return;
  if (!guards_intact(w, buf, size))
    return;
  size_t got = 0;
  int rc = plain_pread(w, w->chk, (size_t)n, off, &got);
  if (rc < 0 || got != (size_t)n) {
    fail(w, "plain pread gave %zu of %lld bytes (%d)", got, n, rc);
    return;
  }
  if (compare(w, "read", buf, w->chk, (size_t)n, off))
    atomic_fetch_add(&n_reads, 1);
}

static void fill(uint64_t *s, uint8_t *buf, size_t n) {
  uint64_t x = rnd(s);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy(buf + i, &x, 8);
  }
  for (; i < n; i++)
    buf[i] = (uint8_t)(x >> (8 * (i & 7)));
}

static void op_write(struct worker *w) {
  size_t size = rnd_size(&w->rng);
  int64_t off = rnd_offset(&w->rng, w->size);
  if (off > (int64_t)MAX_FILE) /* appends stop growing the file here */
    off = (int64_t)below(&w->rng, MAX_FILE);
  size_t boff = below(&w->rng, 2) ? 0 : (size_t)below(&w->rng, 4096);
  uint8_t *buf = w->mem + GUARD + boff;
  bool parallel = below(&w->rng, 10) < 7;
  size_t task = rnd_task(&w->rng);
  const char *pname = "-";
  kvik_pool *pool = parallel ? pick_pool(w, &pname) : NULL;
  snprintf(w->last, sizeof w->last,
           "%s write of %zu bytes at offset %lld from buffer offset %zu, task size %zu, %s; "
           "file size before %lld",
           parallel ? "parallel" : "sync", size, (long long)off, boff, task, pname,
           (long long)w->size);
  fill(&w->rng, buf, size);
  long long n;
  if (parallel) {
    struct kvik_io_opts o = {.sz = sizeof o, .task_size = task, .pool = pool};
    kvik_future *fut = NULL;
    if (!ok(w, "kvik_file_pwrite", kvik_file_pwrite(w->f, buf, size, off, &o, &fut), 0))
      return;
    n = kvik_future_wait(fut);
  } else {
    n = kvik_file_write(w->f, buf, size, off);
  }
  if (!ok(w, parallel ? "kvik_future_wait(pwrite)" : "kvik_file_write", n, (long long)size))
    return;
  if (size > 0 && off + (int64_t)size > w->size)
    w->size = off + (int64_t)size;
  struct stat st;
  if (fstat(w->fd, &st) != 0 || st.st_size != w->size) {
    fail(w, "after the write the file has %lld bytes (fstat), not %lld", (long long)st.st_size,
         (long long)w->size);
    return;
  }
  if (!ok(w, "kvik_file_size", kvik_file_size(w->f), w->size))
    return;
  size_t got = 0;
  int rc = plain_pread(w, w->chk, size, off, &got);
  if (rc < 0 || got != size) {
    fail(w, "plain pread of what was written gave %zu of %zu bytes (%d)", got, size, rc);
    return;
  }
  if (compare(w, "write (plain pread of the file)", w->chk, buf, size, off))
    atomic_fetch_add(&n_writes, 1);
}

static void op_setting(struct worker *w) {
  static const uint64_t bounce[] = {4096, 8192, 65536, 1 * MiB, 4 * MiB + 4096, 16 * MiB, 20000};
  static const uint64_t task[] = {4096, 65536, 1 * MiB, 4 * MiB, 123457};
  enum kvik_cfg k;
  uint64_t v;
  switch (below(&w->rng, 7)) {
  case 0: k = KVIK_CFG_AUTO_DIRECT_IO_READ, v = below(&w->rng, 2); break;
  case 1: k = KVIK_CFG_AUTO_DIRECT_IO_WRITE, v = below(&w->rng, 2); break;
  case 2: k = KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD, v = below(&w->rng, 2); break;
  case 3: k = KVIK_CFG_BOUNCE_BUFFER_SIZE, v = bounce[below(&w->rng, 7)]; break;
  case 4: k = KVIK_CFG_TASK_SIZE, v = task[below(&w->rng, 5)]; break;
  case 5: k = KVIK_CFG_NTHREADS, v = 1 + below(&w->rng, 8); break;
  default: k = KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE, v = below(&w->rng, 2); break;
  }
  snprintf(w->last, sizeof w->last, "kvik_config_set_u64(%s, %" PRIu64 ")", kvik_config_name(k), v);
  if (ok(w, w->last, kvik_config_set_u64(k, v), 0))
    atomic_fetch_add(&n_settings, 1);
}

static void op_pool(struct worker *w) {
  unsigned n = 1 + (unsigned)below(&w->rng, 6);
  if (!w->own) {
    snprintf(w->last, sizeof w->last, "kvik_pool_create(%u)", n);
    if (ok(w, w->last, kvik_pool_create(&w->own, n), 0))
      w->own_threads = n;
  } else if (below(&w->rng, 4) == 0) {
    snprintf(w->last, sizeof w->last, "kvik_pool_destroy (own pool of %u)", w->own_threads);
    ok(w, w->last, kvik_pool_destroy(w->own), 0);
    w->own = NULL;
  } else {
    snprintf(w->last, sizeof w->last, "kvik_pool_resize(own pool of %u, %u)", w->own_threads, n);
    if (ok(w, w->last, kvik_pool_resize(w->own, n), 0)) {
      w->own_threads = n;
      ok(w, "kvik_pool_nthreads", kvik_pool_nthreads(w->own), n);
    }
  }
  if (!atomic_load(&failed))
    atomic_fetch_add(&n_pools, 1);
}

static bool reopen(struct worker *w) {
  static const int modes[] = {KVIK_COMPAT_ON, KVIK_COMPAT_AUTO, KVIK_COMPAT_DEFAULT};
  if (w->f && !ok(w, "kvik_file_close", kvik_file_close(w->f), 0))
    return false;
  w->f = NULL;
  w->compat = modes[below(&w->rng, 3)];
  snprintf(w->last, sizeof w->last, "kvik_file_open(%s, r+, compat %d)", w->path, w->compat);
  if (!ok(w, w->last, kvik_file_open(&w->f, w->path, "r+", 0, w->compat), 0))
    return false;
  atomic_fetch_add(&n_reopens, 1);
  return true;
}

static void op_other(struct worker *w) {
  if (below(&w->rng, 2)) {
    snprintf(w->last, sizeof w->last, "kvik_drop_file_cache(%s)", w->path);
    ok(w, w->last, kvik_drop_file_cache(w->path), 0);
  } else {
    snprintf(w->last, sizeof w->last, "kvik_file_size");
    ok(w, w->last, kvik_file_size(w->f), w->size);
  }
  atomic_fetch_add(&n_other, 1);
}

static void *worker_main(void *arg) {
  struct worker *w = arg;
  while (!atomic_load(&stop)) {
    w->ops++;
    uint64_t r = below(&w->rng, 100);
    if (r < 42)
      op_read(w);
    else if (r < 80)
      op_write(w);
    else if (r < 88)
      op_setting(w);
    else if (r < 92)
      op_pool(w);
    else if (r < 96) {
      if (!reopen(w))
        break;
    } else
      op_other(w);
  }
  return NULL;
}

static int usage(void) {
  fprintf(stderr, "usage: soak [--seconds S] [--seed N] [--threads T] [--disk DIR] "
                  "[--tmpfs DIR]\n");
  return 2;
}

int main(int argc, char **argv) {
  dirs[0] = "/var/tmp"; /* a disk on most systems, unlike /tmp on some */
  dirs[1] = "/dev/shm";
  for (int i = 1; i < argc; i += 2) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v)
      return usage();
    if (strcmp(a, "--seconds") == 0)
      seconds = atof(v);
    else if (strcmp(a, "--seed") == 0)
      seed = strtoull(v, NULL, 0);
    else if (strcmp(a, "--threads") == 0)
      nthreads = atoi(v);
    else if (strcmp(a, "--disk") == 0)
      dirs[0] = v;
    else if (strcmp(a, "--tmpfs") == 0)
      dirs[1] = v;
    else
      return usage();
  }
  if (nthreads < 1 || nthreads > 64 || !(seconds > 0))
    return usage();
  setvbuf(stdout, NULL, _IOLBF, 0);

  for (int d = 0; d < 2; d++) {
    struct kvik_path_info pi = {.sz = sizeof pi};
    snprintf(workdir[d], sizeof workdir[d], "%s/kvik-soak-XXXXXX", dirs[d]);
    if (!mkdtemp(workdir[d])) {
      fprintf(stderr, "soak: cannot make a directory under %s: %s\n", dirs[d], strerror(errno));
      return 2;
    }
    if (kvik_path_info(workdir[d], &pi) != 0) {
      fprintf(stderr, "soak: kvik_path_info(%s): %s\n", workdir[d], kvik_last_error());
      return 2;
    }
    snprintf(fs_name[d], sizeof fs_name[d], "%s%s", pi.fs_type, pi.direct_io ? ", O_DIRECT" : "");
  }
  printf("soak: seed %" PRIu64 ", %g s, %d workers; files in %s (%s) and %s (%s)\n", seed, seconds,
         nthreads, workdir[0], fs_name[0], workdir[1], fs_name[1]);

  struct worker *ws = calloc((size_t)nthreads, sizeof *ws);
  pthread_t *th = calloc((size_t)nthreads, sizeof *th);
  if (!ws || !th)
    return 2;
  int rc = 0;
  for (int i = 0; i < nthreads; i++) {
    struct worker *w = &ws[i];
    w->index = i;
    w->fs = i % 2;
    w->rng = seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(i + 1));
    snprintf(w->path, sizeof w->path, "%s/w%d", workdir[w->fs], i);
    w->mem = aligned_alloc(4096, GUARD + MAX_IO + 4096 + GUARD);
    w->chk = malloc(MAX_IO);
    /* The plain descriptor checks what kvik did; it also makes the file. */
    w->fd = open(w->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (!w->mem || !w->chk || w->fd < 0) {
      fprintf(stderr, "soak: setting up worker %d (%s) failed\n", i, w->path);
      return 2;
    }
    if (!reopen(w))
      return 1;
  }
  double start = now(), next = start + 10;
  for (int i = 0; i < nthreads; i++)
    if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
      fprintf(stderr, "soak: pthread_create failed\n");
      return 2;
    }
  while (!atomic_load(&stop)) {
    struct timespec nap = {0, 100 * 1000 * 1000};
    nanosleep(&nap, NULL);
    double tnow = now();
    if (tnow - start >= seconds)
      atomic_store(&stop, 1);
    else if (tnow >= next) {
      printf("soak: %.0f s: %" PRIu64 " reads, %" PRIu64 " writes, %.2f GiB verified\n",
             tnow - start, atomic_load(&n_reads), atomic_load(&n_writes),
             (double)atomic_load(&bytes_verified) / (1024.0 * 1024 * 1024));
      next += 10;
    }
  }
  for (int i = 0; i < nthreads; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < nthreads; i++) {
    struct worker *w = &ws[i];
    if (w->f && kvik_file_close(w->f) != 0 && !atomic_load(&failed))
      fail(w, "kvik_file_close: %s", kvik_last_error());
    if (w->own)
      kvik_pool_destroy(w->own);
    close(w->fd);
    unlink(w->path);
    free(w->mem);
    free(w->chk);
  }
  rmdir(workdir[0]);
  rmdir(workdir[1]);
  uint64_t ops = 0;
  for (int i = 0; i < nthreads; i++)
    ops += ws[i].ops;
  rc = atomic_load(&failed) ? 1 : 0;
  printf("soak: %s after %.1f s: %" PRIu64 " operations (%" PRIu64 " reads, %" PRIu64
         " writes verified, %" PRIu64 " setting changes, %" PRIu64 " pool changes, %" PRIu64
         " reopens, %" PRIu64 " other), %" PRIu64 " bytes (%.2f GiB) verified, seed %" PRIu64 "\n",
         rc ? "FAILED" : "passed", now() - start, ops, atomic_load(&n_reads),
         atomic_load(&n_writes), atomic_load(&n_settings), atomic_load(&n_pools),
         atomic_load(&n_reopens), atomic_load(&n_other), atomic_load(&bytes_verified),
         (double)atomic_load(&bytes_verified) / (1024.0 * 1024 * 1024), seed);
  free(ws);
  free(th);
  return rc;
}
