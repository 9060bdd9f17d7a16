/* kvik bench: write then read one file with kvik's parallel I/O and, in the same run and into
 * the same buffer, with the plain baselines a user would otherwise write (a one-thread pwrite or
 * pread loop), page cache hot and cold. Prints a table, or with --json one line per result.
 *
 * Structure: a memory kind (host or device) provides the buffer; an engine is one way of doing
 * one operation (kvik, or a baseline); a case is an (op, cache) pair. Every engine of a case runs
 * once per repetition, in alternating order, so drift hits them alike.
 *
 * Device memory (--mem device): kvik reads into and writes from a cuMemAlloc buffer on GPU 0.
 * The baselines are the hardware's limits, measured alone in the same run, and what a user
 * writes first:
 *   pread-pinned-mt          kvik's thread count preading task-size pieces into pinned buffers
 *                            (the CPU copy limit: page cache to pinned memory); hot reads
 *   h2d-pinned, d2h-pinned   pinned host <-> device copies of 256 MiB pieces (the link limit)
 *   pread-direct-1t/-mt      O_DIRECT reads into pinned memory, one thread and kvik's thread
 *                            count (the disk's limit); cold reads
 *   pwrite-pinned            one thread writing from pinned memory, buffered (the limit of
 *                            buffered writes to one file)
 *   pwrite-direct-mt         kvik's thread count writing from pinned memory with O_DIRECT
 *   pread+copy, copy+pwrite  one thread: pread the file into pageable memory, then one
 *                            cuMemcpyHtoD (or the reverse for writes)
 * kvik's write is measured in both write modes (O_DIRECT and buffered; two handles), each
 * against the raw limit of its own mode. Each kvik figure is reported as a ratio to the limit
 * that bounds it: hot read min(CPU copy, link), cold read the best O_DIRECT read, write the
 * slower of the link (d2h) and the best raw write of its mode; and as a speed-up over the
 * pread+copy (copy+pwrite) a user writes first.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "cuda_tool.h"
#include "remote_cmds.h"

enum op { OP_WRITE, OP_READ, OP_COUNT };
enum cache { CACHE_HOT, CACHE_COLD, CACHE_COUNT };
enum mem { MEM_HOST, MEM_DEVICE };
enum summary { STAT_MEDIAN, STAT_BEST };
/* The O_DIRECT probe of the disk: by default the quick sweep wherever cold reads run. */
enum probe_mode { PROBE_AUTO, PROBE_OFF, PROBE_QUICK, PROBE_FULL };

static const char *const op_names[OP_COUNT] = {"write", "read"};
static const char *const cache_names[CACHE_COUNT] = {"hot", "cold"};

#define DEFAULT_SIZE ((uint64_t)1 << 30)
#define MAX_REPEAT 1000
/* The baselines hand the kernel at most this much per call (Linux moves at most 2 GiB - 4 KiB
 * per call anyway); a power of two keeps every call page-aligned. */
#define BASELINE_CHUNK ((size_t)1 << 30)
/* Staging buffer for warming the page cache before hot runs. */
#define WARM_CHUNK ((size_t)16 << 20)
/* Offset, size and address alignment for the O_DIRECT baselines (a page suits every Linux
 * filesystem). */
#define DIRECT_ALIGN ((size_t)4096)
/* Pinned staging for the device baselines' copies and one-thread pinned writes. */
#define PIN_CHUNK ((size_t)256 << 20)
/* Per-thread pinned buffers of the multi-threaded baselines: at most this much each. */
#define MT_CHUNK_MAX ((size_t)64 << 20)

/* The first kvik calls of a one-shot read, timed in the fresh process: kvik_file_open, the
 * kvik_file_pread call (until it returns its future), kvik_future_wait, kvik_file_close; and the
 * whole process as the parent sees it (start to exit: exec, loading, the tool's own CUDA
 * setup and buffer allocation included). */
enum part { PART_OPEN, PART_SUBMIT, PART_WAIT, PART_CLOSE, PART_PROCESS, PART_COUNT };
static const char *const part_names[PART_COUNT] = {"open", "submit", "wait", "close", "process"};

/* One configuration of the O_DIRECT probe and what it read. */
struct probe_result {
  unsigned threads;
  size_t block;
  size_t bytes;
  double seconds;
};
#define PROBE_MAX 64

struct bench_opts {
  const char *file;     /* --file, or NULL for a temporary file */
  const char *json_out; /* --json-out: JSON lines also appended to this file */
  uint64_t size;        /* --size; 0: default (or the file's size) */
  struct cli_io_settings io;
  unsigned repeat;
  int mem;
  int stat;
  bool json, no_write, verify, sync, force;
  bool cache[CACHE_COUNT]; /* which cache states to run */
  bool no_oneshot;         /* --no-oneshot: no fresh-process reads */
  int probe;               /* enum probe_mode */
  double probe_time;       /* --probe-time: seconds for the whole sweep; 0: the mode's default */
};

struct bench {
  struct bench_opts o;
  char path[4096]; /* the file being measured */
  bool temporary;  /* created here, removed at the end */
  struct kvik_path_info pinfo;
  kvik_file *f;    /* kvik's handle on path */
  int fd;          /* the baselines' descriptor on path */
  int dfd;         /* the O_DIRECT baselines' descriptor, -1 if O_DIRECT is refused */
  kvik_pool *pool; /* passed per call; NULL: the file's own pool */
  struct kvik_io_opts io;
  unsigned threads;   /* kvik's worker count */
  uint64_t task_size; /* kvik's task size */
  int compat;         /* the compat mode the file was opened with, resolved */
  int direct_read, direct_write;
  size_t size;
  unsigned char *buf;  /* the buffer every engine reads into / writes from */
  unsigned char *warm; /* WARM_CHUNK staging buffer */
  /* --mem device */
  kvik_file *f2;         /* kvik's handle in the other write mode (device mode, writes) */
  int direct_write2;     /* f2's write mode: 1 O_DIRECT, 0 buffered */
  uint64_t dbuf;         /* the device buffer kvik and the device baselines use */
  unsigned char *pinned; /* PIN_CHUNK (or size) pinned bytes */
  size_t pinned_size;
  unsigned char *tbuf; /* threads x tchunk pinned bytes for the multi-threaded baselines */
  size_t tchunk;
  struct kvik_gpu_info gpu;
  /* The one-shot engine: what the last fresh process reported, and per cache state and run the
   * first-call breakdown (enum part), kept for the report. */
  double reported; /* seconds an engine measured itself, < 0: timed around its run */
  double last_parts[PART_COUNT];
  double parts[CACHE_COUNT][MAX_REPEAT][PART_COUNT];
  enum cache cur_cache; /* the cache state of the case being measured */
  char exe[4096];       /* this program, run again for the one-shot reads */
  /* The O_DIRECT probe (one sweep per run). */
  struct probe_result probes[PROBE_MAX];
  size_t nprobes;
  int best_probe; /* index into probes, -1 when no sweep ran */
};

/* ---- engines ------------------------------------------------------------------------- */

/* What a device-mode baseline stands for, when kvik's figures are put against it. */
enum limit {
  LIM_NONE,
  LIM_LINK,  /* pinned host <-> device copy alone */
  LIM_IO,    /* the file side alone: page cache or disk to pinned memory, or the reverse */
  LIM_NAIVE, /* what a user writes first */
};

struct engine {
  const char *name;
  enum op op;
  bool baseline;
  bool direct;     /* a baseline through an O_DIRECT descriptor */
  unsigned mems;   /* memory kinds it supports, bit (1 << enum mem) */
  unsigned caches; /* cache states it runs in, bit (1 << enum cache) */
  int limit;       /* enum limit (device mode) */
  bool nofile;     /* does not touch the file: no cache preparation, no sync */
  bool other_mode; /* kvik through b->f2, the other write mode */
  /* Runs the whole transfer once. Returns 0 or CLI_FAIL after printing why. */
  int (*run)(struct bench *b);
  bool fresh; /* runs in a fresh process, which times itself and checks its own bytes */
};

static void *kvik_buf(const struct bench *b) {
  return b->o.mem == MEM_DEVICE ? (void *)(uintptr_t)b->dbuf : (void *)b->buf;
}

static int run_kvik_on(struct bench *b, kvik_file *f, enum op op) {
  kvik_future *fut = NULL;
  ssize_t n;
  int rc = op == OP_READ ? kvik_file_pread(f, kvik_buf(b), b->size, 0, &b->io, &fut)
                         : kvik_file_pwrite(f, kvik_buf(b), b->size, 0, &b->io, &fut);
  if (rc < 0) {
    cli_kvik_err(rc, "kvik_file_p%s %s", op_names[op], b->path);
    return CLI_FAIL;
  }
  n = kvik_future_wait(fut);
  if (n < 0) {
    cli_kvik_err((int)n, "kvik_file_p%s %s", op_names[op], b->path);
    return CLI_FAIL;
  }
  if ((size_t)n != b->size) {
    cli_err("kvik_file_p%s %s: %zd of %zu bytes", op_names[op], b->path, n, b->size);
    return CLI_FAIL;
  }
  return CLI_OK;
}

static int run_kvik(struct bench *b, enum op op) { return run_kvik_on(b, b->f, op); }

static int engine_kvik_read(struct bench *b) { return run_kvik(b, OP_READ); }
static int engine_kvik_write(struct bench *b) { return run_kvik(b, OP_WRITE); }
static int engine_kvik_write_other(struct bench *b) { return run_kvik_on(b, b->f2, OP_WRITE); }

/* What a user writes without kvik: one thread, one call per (large) chunk of [from, to), looping
 * over short transfers and EINTR. */
/* One pread or pwrite of want bytes at offset off, again on EINTR. Returns the bytes moved, or
 * 0 after reporting the failure (an error, end of file, nothing written). */
static size_t posix_once(struct bench *b, enum op op, int fd, unsigned char *buf, size_t want,
                         size_t off) {
  for (;;) {
    ssize_t n =
        op == OP_READ ? pread(fd, buf, want, (off_t)off) : pwrite(fd, buf, want, (off_t)off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n > 0)
      return (size_t)n;
    cli_err("bench: p%s %s: %zu bytes at offset %zu: %s", op_names[op], b->path, want, off,
            n < 0           ? strerror(errno)
            : op == OP_READ ? "end of file"
                            : "nothing written");
    return 0;
  }
}

static int posix_loop(struct bench *b, enum op op, int fd, size_t from, size_t to) {
  for (size_t done = from; done < to;) {
    size_t want = to - done < BASELINE_CHUNK ? to - done : BASELINE_CHUNK;
    size_t n = posix_once(b, op, fd, b->buf + done, want, done);
    if (n == 0)
      return CLI_FAIL;
    done += n;
  }
  return CLI_OK;
}

static int engine_pread(struct bench *b) { return posix_loop(b, OP_READ, b->fd, 0, b->size); }
static int engine_pwrite(struct bench *b) { return posix_loop(b, OP_WRITE, b->fd, 0, b->size); }

/* The same through an O_DIRECT descriptor: the limit of what direct I/O from one thread gets,
 * to compare kvik with when its own reads or writes go direct. The page-aligned part goes
 * direct (the buffer is page-aligned), an unaligned tail buffered, as kvik does. */
static int direct_loop(struct bench *b, enum op op) {
  size_t aligned = b->size / DIRECT_ALIGN * DIRECT_ALIGN;
  if (posix_loop(b, op, b->dfd, 0, aligned) != CLI_OK)
    return CLI_FAIL;
  return posix_loop(b, op, b->fd, aligned, b->size);
}

static int engine_pread_direct(struct bench *b) { return direct_loop(b, OP_READ); }
static int engine_pwrite_direct(struct bench *b) { return direct_loop(b, OP_WRITE); }

/* ---- device baselines ---------------------------------------------------------------- */

/* One thread moves [0, size) between the file and one reused buffer of buflen bytes. */
static int reuse_loop(struct bench *b, enum op op, int fd, unsigned char *buf, size_t buflen) {
  for (size_t done = 0; done < b->size;) {
    size_t want = b->size - done < buflen ? b->size - done : buflen;
    int use = fd;
    if (fd == b->dfd && want % DIRECT_ALIGN)
      use = b->fd; /* an unaligned tail goes buffered, as kvik does */
    size_t n = posix_once(b, op, use, buf, want, done);
    if (n == 0)
      return CLI_FAIL;
    done += n;
  }
  return CLI_OK;
}

/* kvik's thread count of threads taking tchunk pieces in turn (as kvik's pool does), each into
 * or out of its own pinned buffer. */
struct mt_job {
  struct bench *b;
  enum op op;
  bool direct;
  atomic_size_t next;
  atomic_int err; /* first errno, 0 if none */
};
struct mt_arg {
  struct mt_job *job;
  unsigned idx;
};

static void *mt_main(void *p) {
  struct mt_arg *a = p;
  struct mt_job *j = a->job;
  struct bench *b = j->b;
  unsigned char *buf = b->tbuf + (size_t)a->idx * b->tchunk;
  for (;;) {
    size_t off = atomic_fetch_add(&j->next, 1) * b->tchunk;
    if (off >= b->size || atomic_load(&j->err))
      break;
    size_t len = b->size - off < b->tchunk ? b->size - off : b->tchunk;
    int fd = j->direct && len % DIRECT_ALIGN == 0 ? b->dfd : b->fd;
    for (size_t done = 0; done < len;) {
      ssize_t n = j->op == OP_READ ? pread(fd, buf + done, len - done, (off_t)(off + done))
                                   : pwrite(fd, buf + done, len - done, (off_t)(off + done));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        int zero = 0;
        atomic_compare_exchange_strong(&j->err, &zero, n < 0 ? errno : EIO);
        return NULL;
      }
      done += (size_t)n;
    }
  }
  return NULL;
}

static int mt_run(struct bench *b, enum op op, bool direct) {
  struct mt_job job = {.b = b, .op = op, .direct = direct};
  atomic_init(&job.next, 0);
  atomic_init(&job.err, 0);
  pthread_t th[4096];
  struct mt_arg args[4096];
  unsigned n = 0;
  for (; n < b->threads; n++) {
    args[n] = (struct mt_arg){&job, n};
    if (pthread_create(&th[n], NULL, mt_main, &args[n]) != 0) {
      int zero = 0;
      atomic_compare_exchange_strong(&job.err, &zero, EAGAIN);
      break;
    }
  }
  for (unsigned i = 0; i < n; i++)
    pthread_join(th[i], NULL);
  int e = atomic_load(&job.err);
  if (e) {
    cli_err("bench: %u-thread p%s%s of %s: %s", b->threads, op_names[op],
            direct ? " (O_DIRECT)" : "", b->path, strerror(e));
    return CLI_FAIL;
  }
  return CLI_OK;
}

/* Pinned host <-> device copies of PIN_CHUNK pieces, one after another: the link alone. */
static int link_loop(struct bench *b, enum op op) {
  for (size_t done = 0; done < b->size; done += b->pinned_size) {
    size_t len = b->size - done < b->pinned_size ? b->size - done : b->pinned_size;
    int rc = op == OP_READ ? cli_cuda_htod(b->dbuf + done, b->pinned, len)
                           : cli_cuda_dtoh(b->pinned, b->dbuf + done, len);
    if (rc)
      return CLI_FAIL;
  }
  return CLI_OK;
}

static int engine_h2d_pinned(struct bench *b) { return link_loop(b, OP_READ); }
static int engine_d2h_pinned(struct bench *b) { return link_loop(b, OP_WRITE); }
static int engine_pread_pinned_mt(struct bench *b) { return mt_run(b, OP_READ, false); }
static int engine_pread_direct_1t(struct bench *b) {
  return reuse_loop(b, OP_READ, b->dfd, b->tbuf, b->tchunk);
}
static int engine_pread_direct_mt(struct bench *b) { return mt_run(b, OP_READ, true); }
static int engine_pwrite_pinned(struct bench *b) {
  return reuse_loop(b, OP_WRITE, b->fd, b->pinned, b->pinned_size);
}
static int engine_pwrite_direct_mt(struct bench *b) { return mt_run(b, OP_WRITE, true); }

/* What a user writes first: the whole file into pageable memory, then one copy (or back). */
static int engine_pread_copy(struct bench *b) {
  if (posix_loop(b, OP_READ, b->fd, 0, b->size) != CLI_OK)
    return CLI_FAIL;
  return cli_cuda_htod(b->dbuf, b->buf, b->size) ? CLI_FAIL : CLI_OK;
}
static int engine_copy_pwrite(struct bench *b) {
  if (cli_cuda_dtoh(b->buf, b->dbuf, b->size))
    return CLI_FAIL;
  return posix_loop(b, OP_WRITE, b->fd, 0, b->size);
}

/* ---- the disk's limit: an O_DIRECT probe --------------------------------------------- */

/* The best a plain program gets from the disk, measured in the same run: O_DIRECT reads of the
 * file into page-aligned host memory over a sweep of thread counts and block sizes (each thread
 * one read in flight, so the queue depth is the thread count), each configuration reading the
 * file from its start until it ends or the configuration's share of --probe-time runs out. The
 * best configuration is the reference for kvik's cold reads. */
static const unsigned probe_threads_quick[] = {1, 4, 16, 64};
static const size_t probe_blocks_quick[] = {1u << 20, 4u << 20, 16u << 20};
static const unsigned probe_threads_full[] = {1, 2, 4, 8, 16, 32, 64};
static const size_t probe_blocks_full[] = {256u << 10, 512u << 10, 1u << 20, 2u << 20,
                                           4u << 20,   8u << 20,   16u << 20};
#define PROBE_TIME_QUICK 20.0
#define PROBE_TIME_FULL 120.0

struct probe_job {
  struct bench *b;
  unsigned char *bufs; /* block bytes per thread */
  size_t block, limit; /* read [0, limit) at most */
  double deadline;
  atomic_size_t next;  /* the next block to read */
  atomic_size_t bytes; /* read so far */
  atomic_int err;      /* first errno, 0 if none */
};
struct probe_arg {
  struct probe_job *job;
  unsigned idx;
};

static void *probe_main(void *p) {
  struct probe_arg *a = p;
  struct probe_job *j = a->job;
  unsigned char *buf = j->bufs + (size_t)a->idx * j->block;
  while (!atomic_load(&j->err) && cli_now() < j->deadline) {
    size_t off = atomic_fetch_add(&j->next, 1) * j->block;
    if (off >= j->limit)
      break;
    size_t len = j->limit - off < j->block ? j->limit - off : j->block;
    ssize_t n;
    do {
      n = pread(j->b->dfd, buf, len, (off_t)off);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      int zero = 0;
      atomic_compare_exchange_strong(&j->err, &zero, errno);
      break;
    }
    atomic_fetch_add(&j->bytes, (size_t)n);
  }
  return NULL;
}

/* One configuration: threads x block for at most budget seconds. */
static int probe_one(struct bench *b, unsigned threads, size_t block, double budget,
                     unsigned char *bufs, struct probe_result *out) {
  struct probe_job job = {.b = b, .bufs = bufs, .block = block};
  pthread_t th[64];
  struct probe_arg args[64];
  unsigned n = 0;
  job.limit = b->size / DIRECT_ALIGN * DIRECT_ALIGN;
  atomic_init(&job.next, 0);
  atomic_init(&job.bytes, 0);
  atomic_init(&job.err, 0);
  /* Untimed: nothing of the file in the page cache (O_DIRECT does not fill it, but the engines
   * before may have). */
  int rc = kvik_drop_file_cache(b->path);
  if (rc < 0) {
    cli_kvik_err(rc, "bench: cannot drop the page cache of %s", b->path);
    return CLI_FAIL;
  }
  double t0 = cli_now();
  job.deadline = t0 + budget;
  for (; n < threads; n++) {
    args[n] = (struct probe_arg){&job, n};
    if (pthread_create(&th[n], NULL, probe_main, &args[n]) != 0) {
      int zero = 0;
      atomic_compare_exchange_strong(&job.err, &zero, EAGAIN);
      break;
    }
  }
  for (unsigned i = 0; i < n; i++)
    pthread_join(th[i], NULL);
  double t1 = cli_now();
  int e = atomic_load(&job.err);
  if (e) {
    char bs[32];
    cli_err("bench: O_DIRECT probe (%u threads x %s) of %s: %s", threads,
            cli_fmt_size(block, bs, sizeof bs), b->path, strerror(e));
    return CLI_FAIL;
  }
  *out = (struct probe_result){threads, block, atomic_load(&job.bytes), t1 - t0};
  return CLI_OK;
}

static double probe_gbps(const struct probe_result *p) {
  return p->seconds > 0 ? (double)p->bytes / p->seconds / 1e9 : 0;
}

/* The sweep. Thread counts beyond the file's blocks are cut to them (a duplicate of another
 * configuration is then skipped). */
static int run_probe(struct bench *b) {
  bool full = b->o.probe == PROBE_FULL;
  const unsigned *ts = full ? probe_threads_full : probe_threads_quick;
  const size_t *bs = full ? probe_blocks_full : probe_blocks_quick;
  size_t nt =
      full ? sizeof probe_threads_full / sizeof *ts : sizeof probe_threads_quick / sizeof *ts;
  size_t nb = full ? sizeof probe_blocks_full / sizeof *bs : sizeof probe_blocks_quick / sizeof *bs;
  double budget = b->o.probe_time > 0 ? b->o.probe_time : full ? PROBE_TIME_FULL : PROBE_TIME_QUICK;
  size_t limit = b->size / DIRECT_ALIGN * DIRECT_ALIGN;
  struct {
    unsigned t;
    size_t block;
  } cfg[PROBE_MAX];
  size_t ncfg = 0, bufsize = 0;

  b->nprobes = 0;
  b->best_probe = -1;
  if (b->dfd < 0 || limit == 0)
    return CLI_OK;
  for (size_t bi = 0; bi < nb; bi++)
    for (size_t ti = 0; ti < nt; ti++) {
      size_t blocks = (limit + bs[bi] - 1) / bs[bi];
      unsigned t = ts[ti] < blocks ? ts[ti] : (unsigned)blocks;
      bool dup = false;
      for (size_t k = 0; k < ncfg && !dup; k++)
        dup = cfg[k].t == t && cfg[k].block == bs[bi];
      if (dup || ncfg == PROBE_MAX)
        continue;
      cfg[ncfg].t = t;
      cfg[ncfg++].block = bs[bi];
      if ((size_t)t * bs[bi] > bufsize)
        bufsize = (size_t)t * bs[bi];
    }
  unsigned char *bufs = cli_alloc_host(bufsize);
  if (!bufs) {
    char sz[32];
    cli_err("bench: cannot allocate %s for the O_DIRECT probe",
            cli_fmt_size(bufsize, sz, sizeof sz));
    return CLI_FAIL;
  }
  int rc = CLI_OK;
  for (size_t k = 0; k < ncfg && rc == CLI_OK; k++) {
    char bsz[32];
    cli_progress("O_DIRECT probe %zu/%zu: %u threads x %s", k + 1, ncfg, cfg[k].t,
                 cli_fmt_size(cfg[k].block, bsz, sizeof bsz));
    rc = probe_one(b, cfg[k].t, cfg[k].block, budget / (double)ncfg, bufs, &b->probes[k]);
    if (rc == CLI_OK) {
      b->nprobes = k + 1;
      if (b->best_probe < 0 || probe_gbps(&b->probes[k]) > probe_gbps(&b->probes[b->best_probe]))
        b->best_probe = (int)k;
    }
  }
  cli_free_host(bufs);
  return rc;
}

static size_t pattern_check(const unsigned char *p, size_t size);

/* ---- one-shot reads: a fresh process -------------------------------------------------- */

/* What users meet first: a fresh process that reads the file once into freshly allocated
 * memory. The engine runs this program again (the hidden command `kvik __oneshot`, in
 * cmd_bench_oneshot below), which allocates its buffer (untimed, untouched: the pages fault in
 * during the read, as a new array's do), then times its first kvik calls and reports them on a
 * pipe. The reported time is kvik_file_open to the end of kvik_future_wait. */

extern char **environ;

/* True if the environment entry e ("NAME=value") sets name. */
static bool env_is(const char *e, const char *name) {
  size_t n = strlen(name);
  return strncmp(e, name, n) == 0 && e[n] == '=';
}

/* The child's environment: this one, with every setting this run changed through the setters
 * (--threads, --task-size, --direct-io, ...) exported as its variable, and KVIKIO_NTHREADS as the
 * pool measured here, so the fresh process runs kvik's configuration of this run without one
 * kvik call before its timed region. NULL if out of memory. Free with free_env(). */
static char **child_env(const struct bench *b) {
  size_t n = 0;
  while (environ[n])
    n++;
  char **env = calloc(n + KVIK_CFG_COUNT + 2, sizeof *env);
  char *set[KVIK_CFG_COUNT + 1];
  size_t nset = 0;
  if (!env)
    return NULL;
  for (int k = 0; k < KVIK_CFG_COUNT; k++) {
    const char *name = kvik_config_name((enum kvik_cfg)k);
    char value[1024];
    if (!name)
      continue;
    if (k == KVIK_CFG_NTHREADS)
      snprintf(value, sizeof value, "%u", b->threads);
    else if (kvik_config_source((enum kvik_cfg)k) != KVIK_CFG_SRC_SET ||
             kvik_config_get_str((enum kvik_cfg)k, value, sizeof value) < 0)
      continue;
    size_t len = strlen(name) + strlen(value) + 2;
    if (!(set[nset] = malloc(len)))
      goto fail;
    snprintf(set[nset++], len, "%s=%s", name, value);
  }
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    bool replaced = env_is(environ[i], "KVIKIO_NUM_THREADS"); /* an alias of NTHREADS */
    for (size_t j = 0; j < nset && !replaced; j++) {
      size_t len = (size_t)(strchr(set[j], '=') - set[j]);
      replaced = strncmp(environ[i], set[j], len + 1) == 0;
    }
    if (!replaced)
      env[m++] = environ[i];
  }
  for (size_t j = 0; j < nset; j++)
    env[m++] = set[j];
  env[m] = NULL;
  return env;
fail:
  for (size_t j = 0; j < nset; j++)
    free(set[j]);
  free(env);
  return NULL;
}

/* Frees what child_env() allocated (the entries it made, not the inherited ones). */
static void free_env(char **env) {
  if (!env)
    return;
  for (size_t i = 0; env[i]; i++) {
    bool inherited = false;
    for (size_t j = 0; environ[j] && !inherited; j++)
      inherited = env[i] == environ[j];
    if (!inherited)
      free(env[i]);
  }
  free(env);
}

static int engine_kvik_oneshot(struct bench *b) {
  char size[32], compat[16];
  snprintf(size, sizeof size, "%zu", b->size);
  snprintf(compat, sizeof compat, "%d", b->o.io.compat);
  char *argv[16];
  int argc = 0;
  argv[argc++] = "kvik";
  argv[argc++] = "__oneshot";
  argv[argc++] = b->path;
  argv[argc++] = size;
  argv[argc++] = b->o.mem == MEM_DEVICE ? "device" : "host";
  argv[argc++] = compat;
  if (b->o.verify)
    argv[argc++] = "--verify";
  if (cli_hugepages)
    argv[argc++] = "--hugepages";
  argv[argc] = NULL;

  int fds[2] = {-1, -1};
  char **env = child_env(b);
  posix_spawn_file_actions_t fa;
  bool fa_ok = false;
  pid_t pid = -1;
  int rc = CLI_FAIL, err;
  if (!env) {
    cli_err("bench: out of memory for the one-shot process's environment");
    return CLI_FAIL;
  }
  if (pipe2(fds, O_CLOEXEC) != 0) {
    cli_err("bench: pipe: %s", strerror(errno));
    goto out;
  }
  fa_ok = posix_spawn_file_actions_init(&fa) == 0 &&
          posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO) == 0;
  if (!fa_ok) {
    cli_err("bench: posix_spawn_file_actions: out of memory");
    goto out;
  }
  fflush(stdout);
  fflush(stderr);
  double t0 = cli_now();
  if ((err = posix_spawn(&pid, b->exe, &fa, NULL, argv, env)) != 0) {
    cli_err("bench: cannot run %s for a one-shot read: %s", b->exe, strerror(err));
    pid = -1;
    goto out;
  }
  close(fds[1]);
  fds[1] = -1;
  char line[512];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(fds[0], line + got, sizeof line - 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
    if (got == sizeof line - 1)
      break;
  }
  line[got] = '\0';
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  pid = -1;
  double t1 = cli_now();
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    cli_err("bench: the one-shot read of %s (a fresh process) failed: %s %d", b->path,
            WIFEXITED(st) ? "exit status" : "signal",
            WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    goto out;
  }
  double *p = b->last_parts;
  if (sscanf(line, "oneshot open=%lf submit=%lf wait=%lf close=%lf", &p[PART_OPEN], &p[PART_SUBMIT],
             &p[PART_WAIT], &p[PART_CLOSE]) != 4) {
    cli_err("bench: the one-shot process reported \"%s\"", line);
    goto out;
  }
  p[PART_PROCESS] = t1 - t0;
  b->reported = p[PART_OPEN] + p[PART_SUBMIT] + p[PART_WAIT];
  rc = CLI_OK;
out:
  if (pid > 0)
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
  if (fa_ok)
    posix_spawn_file_actions_destroy(&fa);
  if (fds[0] >= 0)
    close(fds[0]);
  if (fds[1] >= 0)
    close(fds[1]);
  free_env(env);
  return rc;
}

/* The fresh process: `kvik __oneshot PATH SIZE host|device COMPAT [--verify] [--hugepages]`.
 * Not a user command (main.c does not list it). Prints one line on stdout:
 * "oneshot open=S submit=S wait=S close=S bytes=N". */
int cmd_bench_oneshot(int argc, char **argv) {
  uint64_t size = 0;
  bool verify = false, device = false;
  if (argc < 5 || cli_parse_u64(argv[2], 1, SSIZE_MAX, &size) < 0) {
    cli_err("__oneshot: usage: kvik __oneshot PATH SIZE host|device COMPAT [--verify] "
            "[--hugepages] (run by kvik bench)");
    return CLI_USAGE;
  }
  device = strcmp(argv[3], "device") == 0;
  int compat = atoi(argv[4]);
  for (int i = 5; i < argc; i++) {
    if (strcmp(argv[i], "--verify") == 0)
      verify = true;
    else if (strcmp(argv[i], "--hugepages") == 0)
      cli_hugepages = true;
  }
  const char *path = argv[1];
  /* The memory, as the user's program has it before loading: device memory from the driver
   * (CUDA initialized, the context current), or fresh host pages never touched. */
  uint64_t dbuf = 0;
  unsigned char *hbuf = NULL;
  if (device) {
    if (cli_cuda_open() != 0 || cli_cuda_alloc(&dbuf, (size_t)size) != 0)
      return CLI_FAIL;
  } else {
    void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      cli_err("__oneshot: cannot map %llu bytes: %s", (unsigned long long)size, strerror(errno));
      return CLI_FAIL;
    }
    if (cli_hugepages)
      madvise(p, (size_t)size, MADV_HUGEPAGE);
    hbuf = p;
  }
  void *buf = device ? (void *)(uintptr_t)dbuf : (void *)hbuf;

  kvik_file *f = NULL;
  kvik_future *fut = NULL;
  double t0 = cli_now();
  int rc = kvik_file_open(&f, path, "r", 0, (kvik_compat)compat);
  double t1 = cli_now();
  if (rc < 0) {
    cli_kvik_err(rc, "__oneshot: cannot open %s", path);
    return CLI_FAIL;
  }
  rc = kvik_file_pread(f, buf, (size_t)size, 0, NULL, &fut);
  double t2 = cli_now();
  if (rc < 0) {
    cli_kvik_err(rc, "__oneshot: kvik_file_pread %s", path);
    return CLI_FAIL;
  }
  ssize_t n = kvik_future_wait(fut);
  double t3 = cli_now();
  if (n < 0) {
    cli_kvik_err((int)n, "__oneshot: kvik_file_pread %s", path);
    return CLI_FAIL;
  }
  rc = kvik_file_close(f);
  double t4 = cli_now();
  if (rc < 0) {
    cli_kvik_err(rc, "__oneshot: closing %s", path);
    return CLI_FAIL;
  }
  if ((uint64_t)n != size) {
    cli_err("__oneshot: read %zd of %llu bytes of %s", n, (unsigned long long)size, path);
    return CLI_FAIL;
  }
  if (verify) {
    unsigned char *check = hbuf;
    if (device && (!(check = malloc((size_t)size)) || cli_cuda_dtoh(check, dbuf, (size_t)size)))
      return CLI_FAIL;
    size_t bad = pattern_check(check, (size_t)size);
    if (check != hbuf)
      free(check);
    if (bad != size) {
      cli_err("__oneshot: the one-shot read of %s returned wrong data at offset %zu", path, bad);
      return CLI_FAIL;
    }
  }
  printf("oneshot open=%.9f submit=%.9f wait=%.9f close=%.9f bytes=%zd\n", t1 - t0, t2 - t1,
         t3 - t2, t4 - t3, n);
  fflush(stdout);
  /* The process ends here: the buffers go with it. */
  return CLI_OK;
}

#define HOST (1u << MEM_HOST)
#define DEV (1u << MEM_DEVICE)
#define HOT (1u << CACHE_HOT)
#define COLD (1u << CACHE_COLD)
#define BOTH (HOT | COLD)
/* Host memory: per case, kvik is compared with the baseline of its own mode (buffered, or
 * O_DIRECT when kvik's reads or writes use it); the O_DIRECT baselines run only then. Device
 * memory: see the comment at the top. */
static const struct engine engines[] = {
    {"kvik", OP_WRITE, false, false, HOST | DEV, BOTH, LIM_NONE, false, false, engine_kvik_write,
     false},
    {"kvik", OP_WRITE, false, false, DEV, BOTH, LIM_NONE, false, true, engine_kvik_write_other,
     false},
    {"pwrite", OP_WRITE, true, false, HOST, BOTH, LIM_NONE, false, false, engine_pwrite, false},
    {"pwrite-direct", OP_WRITE, true, true, HOST, BOTH, LIM_NONE, false, false,
     engine_pwrite_direct, false},
    {"d2h-pinned", OP_WRITE, true, false, DEV, BOTH, LIM_LINK, true, false, engine_d2h_pinned,
     false},
    {"pwrite-pinned", OP_WRITE, true, false, DEV, BOTH, LIM_IO, false, false, engine_pwrite_pinned,
     false},
    {"pwrite-direct-mt", OP_WRITE, true, true, DEV, BOTH, LIM_IO, false, false,
     engine_pwrite_direct_mt, false},
    {"copy+pwrite", OP_WRITE, true, false, DEV, BOTH, LIM_NAIVE, false, false, engine_copy_pwrite,
     false},
    {"kvik", OP_READ, false, false, HOST | DEV, BOTH, LIM_NONE, false, false, engine_kvik_read,
     false},
    {"kvik-oneshot", OP_READ, false, false, HOST | DEV, BOTH, LIM_NONE, false, false,
     engine_kvik_oneshot, true},
    {"pread", OP_READ, true, false, HOST, BOTH, LIM_NONE, false, false, engine_pread, false},
    {"pread-direct", OP_READ, true, true, HOST, BOTH, LIM_NONE, false, false, engine_pread_direct,
     false},
    {"pread-pinned-mt", OP_READ, true, false, DEV, HOT, LIM_IO, false, false,
     engine_pread_pinned_mt, false},
    {"h2d-pinned", OP_READ, true, false, DEV, HOT, LIM_LINK, true, false, engine_h2d_pinned, false},
    {"pread-direct-1t", OP_READ, true, true, DEV, COLD, LIM_IO, false, false,
     engine_pread_direct_1t, false},
    {"pread-direct-mt", OP_READ, true, true, DEV, COLD, LIM_IO, false, false,
     engine_pread_direct_mt, false},
    {"pread+copy", OP_READ, true, false, DEV, BOTH, LIM_NAIVE, false, false, engine_pread_copy,
     false},
};
#define NENGINES (sizeof engines / sizeof engines[0])

/* ---- data pattern -------------------------------------------------------------------- */

static uint64_t pattern_word(uint64_t i) { return (i + 1) * UINT64_C(0x9E3779B97F4A7C15); }

static void pattern_fill(unsigned char *p, size_t size) {
  size_t words = size / 8;
  for (size_t i = 0; i < words; i++) {
    uint64_t w = pattern_word(i);
    memcpy(p + i * 8, &w, 8);
  }
  uint64_t w = pattern_word(words);
  memcpy(p + words * 8, &w, size % 8);
}

/* Returns the first offset that differs from the pattern, or size if none does. */
static size_t pattern_check(const unsigned char *p, size_t size) {
  size_t words = size / 8;
  for (size_t i = 0; i < words; i++) {
    uint64_t w = pattern_word(i);
    if (memcmp(p + i * 8, &w, 8) != 0) {
      for (size_t j = 0; j < 8; j++)
        if (p[i * 8 + j] != ((const unsigned char *)&w)[j])
          return i * 8 + j;
    }
  }
  uint64_t w = pattern_word(words);
  for (size_t j = 0; j < size % 8; j++)
    if (p[words * 8 + j] != ((const unsigned char *)&w)[j])
      return words * 8 + j;
  return size;
}

/* ---- the temporary file and signals -------------------------------------------------- */

/* The temporary file to remove if a signal ends the run; only the main thread writes it, before
 * the handlers are installed. */
static char signal_unlink_path[4096];

static void on_signal(int sig) {
  /* unlink and raise are async-signal-safe; SA_RESETHAND restored the default action. */
  if (signal_unlink_path[0])
    unlink(signal_unlink_path);
  raise(sig);
}

static void remove_on_signal(const char *path) {
  struct sigaction sa;
  snprintf(signal_unlink_path, sizeof signal_unlink_path, "%s", path);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = (int)SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sigaction(SIGPIPE, &sa, NULL);
}

/* ---- setup --------------------------------------------------------------------------- */

static void bench_usage(FILE *out) {
  fputs("usage: kvik bench [options]\n"
        "\n"
        "Writes then reads one file with kvik's parallel I/O (kvik_file_pwrite/pread), and with\n"
        "one-thread pwrite/pread loops into the same buffer as the baselines, page cache hot and\n"
        "cold. Each measurement runs --repeat times; the table shows the median (or --best).\n"
        "\n"
        "options:\n"
        "  --file PATH          file to use (kept afterwards); default: a temporary file in\n"
        "                       $TMPDIR or /tmp, removed afterwards. An existing non-empty file\n"
        "                       is only overwritten with --force.\n"
        "  --size BYTES         bytes to write and read (K, M, G, T suffixes: 1K = 1024);\n"
        "                       default 1G, or the file's size with --no-write\n"
        "  --threads N          kvik's worker threads (default: KVIKIO_NTHREADS)\n"
        "  --task-size BYTES    bytes per parallel task (default: KVIKIO_TASK_SIZE)\n"
        "  --direct-io on|off   opportunistic O_DIRECT for reads and writes (default:\n"
        "                       KVIKIO_AUTO_DIRECT_IO_READ / _WRITE)\n"
        "  --compat on|off|auto compat mode the file is opened with (default: KVIKIO_COMPAT_MODE)\n"
        "  --mem host|device    memory to read into and write from (default host); device:\n"
        "                       a cuMemAlloc buffer on GPU 0, with the device baselines (the\n"
        "                       CPU copy, link and disk limits, and pread then one copy)\n"
        "  --cache hot|cold|both  page-cache states to measure (default: both)\n"
        "  --repeat N           runs per measurement (default 3)\n"
        "  --best               report the fastest run instead of the median\n"
        "  --hugepages          back the host buffer with transparent huge pages\n"
        "                       (madvise MADV_HUGEPAGE, as numpy does for large arrays)\n"
        "  --no-write           only read an existing --file\n"
        "  --sync               count the fdatasync after each write in its time\n"
        "  --verify             check the bytes of every read (untimed)\n"
        "  --force              overwrite an existing non-empty --file\n"
        "  --json               one JSON object per measurement on stdout instead of the table\n"
        "  --json-out PATH      also append the JSON objects to PATH (with the table on stdout)\n"
        "  --no-oneshot         skip the one-shot reads (kvik-oneshot, see below)\n"
        "  --probe quick|full|off  the O_DIRECT probe of the disk (default: quick, where cold\n"
        "                       reads run); quick: 1, 4, 16, 64 threads x 1, 4, 16 MiB blocks;\n"
        "                       full: 1..64 threads x 256 KiB..16 MiB\n"
        "  --probe-time SECONDS time for the whole probe sweep (default 20 quick, 120 full);\n"
        "                       each configuration reads the file at most once\n"
        "  --url URL            read a remote object instead ('kvik bench --url URL --help')\n"
        "\n"
        "Writes end with an untimed fdatasync (timed with --sync), so no dirty pages carry over.\n"
        "Hot: the file's pages are read into the page cache first. Cold: they are dropped first\n"
        "(kvik_drop_file_cache); on tmpfs, which has no backing store, cold runs are skipped.\n"
        "kvik-oneshot: what a user meets first: a fresh process (this program run again) reads\n"
        "the file once into freshly allocated memory, timing kvik_file_open to the end of\n"
        "kvik_future_wait; reported beside kvik's steady state, with its first calls broken\n"
        "down. Cold reads are also put against the best configuration of the O_DIRECT probe.\n",
        out);
}

enum {
  OPT_FILE = 256,
  OPT_SIZE,
  OPT_THREADS,
  OPT_TASK_SIZE,
  OPT_DIRECT_IO,
  OPT_COMPAT,
  OPT_MEM,
  OPT_CACHE,
  OPT_REPEAT,
  OPT_BEST,
  OPT_HUGEPAGES,
  OPT_NO_WRITE,
  OPT_SYNC,
  OPT_VERIFY,
  OPT_FORCE,
  OPT_JSON,
  OPT_JSON_OUT,
  OPT_PROBE,
  OPT_PROBE_TIME,
  OPT_NO_ONESHOT,
};

static int bad_value(const char *opt, const char *value, const char *expected) {
  cli_err("bench: invalid %s '%s' (expected %s)", opt, value, expected);
  return CLI_USAGE;
}

static int parse_args(int argc, char **argv, struct bench_opts *o) {
  static const struct option longopts[] = {
      {"help", no_argument, NULL, 'h'},
      {"file", required_argument, NULL, OPT_FILE},
      {"size", required_argument, NULL, OPT_SIZE},
      {"threads", required_argument, NULL, OPT_THREADS},
      {"task-size", required_argument, NULL, OPT_TASK_SIZE},
      {"direct-io", required_argument, NULL, OPT_DIRECT_IO},
      {"compat", required_argument, NULL, OPT_COMPAT},
      {"mem", required_argument, NULL, OPT_MEM},
      {"cache", required_argument, NULL, OPT_CACHE},
      {"repeat", required_argument, NULL, OPT_REPEAT},
      {"best", no_argument, NULL, OPT_BEST},
      {"hugepages", no_argument, NULL, OPT_HUGEPAGES},
      {"no-write", no_argument, NULL, OPT_NO_WRITE},
      {"sync", no_argument, NULL, OPT_SYNC},
      {"verify", no_argument, NULL, OPT_VERIFY},
      {"force", no_argument, NULL, OPT_FORCE},
      {"json", no_argument, NULL, OPT_JSON},
      {"json-out", required_argument, NULL, OPT_JSON_OUT},
      {"probe", required_argument, NULL, OPT_PROBE},
      {"probe-time", required_argument, NULL, OPT_PROBE_TIME},
      {"no-oneshot", no_argument, NULL, OPT_NO_ONESHOT},
      {NULL, 0, NULL, 0},
  };
  uint64_t v;
  int c;

  memset(o, 0, sizeof *o);
  cli_io_settings_init(&o->io);
  o->repeat = 3;
  o->mem = MEM_HOST;
  o->stat = STAT_MEDIAN;
  o->cache[CACHE_HOT] = o->cache[CACHE_COLD] = true;

  optind = 0; /* glibc: full reset, so each command parses its own argv from the start */
  while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
    switch (c) {
    case 'h': bench_usage(stdout); return -1;
    case OPT_FILE: o->file = optarg; break;
    case OPT_SIZE:
      if (cli_parse_size(optarg, &v) < 0 || v == 0 || v > (uint64_t)SSIZE_MAX)
        return bad_value("--size", optarg, "a byte count > 0, e.g. 4096, 256M, 1G");
      o->size = v;
      break;
    case OPT_THREADS:
      if (cli_parse_u64(optarg, 1, 4096, &v) < 0)
        return bad_value("--threads", optarg, "a number from 1 to 4096");
      o->io.threads = v;
      break;
    case OPT_TASK_SIZE:
      if (cli_parse_size(optarg, &v) < 0 || v == 0)
        return bad_value("--task-size", optarg, "a byte count > 0, e.g. 4M");
      o->io.task_size = v;
      break;
    case OPT_DIRECT_IO:
      if ((o->io.direct_io = cli_parse_onoff(optarg)) < 0)
        return bad_value("--direct-io", optarg, "on or off");
      break;
    case OPT_COMPAT:
      if ((o->io.compat = cli_parse_compat(optarg)) < 0)
        return bad_value("--compat", optarg, "on, off or auto");
      break;
    case OPT_MEM:
      if (strcmp(optarg, "host") == 0) {
        o->mem = MEM_HOST;
      } else if (strcmp(optarg, "device") == 0) {
        o->mem = MEM_DEVICE;
      } else {
        return bad_value("--mem", optarg, "host or device");
      }
      break;
    case OPT_CACHE:
      o->cache[CACHE_HOT] = strcmp(optarg, "hot") == 0 || strcmp(optarg, "both") == 0;
      o->cache[CACHE_COLD] = strcmp(optarg, "cold") == 0 || strcmp(optarg, "both") == 0;
      if (!o->cache[CACHE_HOT] && !o->cache[CACHE_COLD])
        return bad_value("--cache", optarg, "hot, cold or both");
      break;
    case OPT_REPEAT:
      if (cli_parse_u64(optarg, 1, MAX_REPEAT, &v) < 0)
        return bad_value("--repeat", optarg, "a number from 1 to 1000");
      o->repeat = (unsigned)v;
      break;
    case OPT_BEST: o->stat = STAT_BEST; break;
    case OPT_HUGEPAGES: cli_hugepages = true; break;
    case OPT_NO_WRITE: o->no_write = true; break;
    case OPT_SYNC: o->sync = true; break;
    case OPT_VERIFY: o->verify = true; break;
    case OPT_FORCE: o->force = true; break;
    case OPT_JSON: o->json = true; break;
    case OPT_JSON_OUT: o->json_out = optarg; break;
    case OPT_PROBE:
      if (strcmp(optarg, "quick") == 0)
        o->probe = PROBE_QUICK;
      else if (strcmp(optarg, "full") == 0)
        o->probe = PROBE_FULL;
      else if (strcmp(optarg, "off") == 0)
        o->probe = PROBE_OFF;
      else
        return bad_value("--probe", optarg, "quick, full or off");
      break;
    case OPT_PROBE_TIME:
      if (cli_parse_u64(optarg, 1, 3600, &v) < 0)
        return bad_value("--probe-time", optarg, "seconds, from 1 to 3600");
      o->probe_time = (double)v;
      break;
    case OPT_NO_ONESHOT: o->no_oneshot = true; break;
    default: bench_usage(stderr); return CLI_USAGE;
    }
  }
  if (optind < argc) {
    cli_err("bench: unexpected argument '%s' (try 'kvik bench --help')", argv[optind]);
    return CLI_USAGE;
  }
  if (o->no_write && !o->file) {
    cli_err("bench: --no-write reads an existing file: give it with --file");
    return CLI_USAGE;
  }
  if (o->no_write && o->verify) {
    cli_err("bench: --verify checks the pattern kvik bench writes; it cannot with --no-write");
    return CLI_USAGE;
  }
  return CLI_OK;
}

static const char *temp_dir(void) {
  const char *d = getenv("TMPDIR");
  return d && *d ? d : "/tmp";
}

/* Chooses the file, checks it is safe and possible to use, and fills b->path and b->size. */
static int choose_file(struct bench *b) {
  struct stat st;
  char dir[4096];

  if (b->o.file) {
    snprintf(b->path, sizeof b->path, "%s", b->o.file);
    if (stat(b->path, &st) == 0) {
      if (!S_ISREG(st.st_mode)) {
        cli_err("bench: %s is not a regular file", b->path);
        return CLI_FAIL;
      }
      if (!b->o.no_write && st.st_size > 0 && !b->o.force) {
        cli_err("bench: %s exists and kvik bench would overwrite it; use --no-write to only "
                "read it, or --force to overwrite it",
                b->path);
        return CLI_FAIL;
      }
      if (b->o.no_write) {
        if (st.st_size == 0) {
          cli_err("bench: %s is empty: nothing to read", b->path);
          return CLI_FAIL;
        }
        if (b->o.size > (uint64_t)st.st_size) {
          char want[32], have[32];
          cli_err("bench: --size %s is larger than %s (%s)",
                  cli_fmt_size(b->o.size, want, sizeof want), b->path,
                  cli_fmt_size((uint64_t)st.st_size, have, sizeof have));
          return CLI_FAIL;
        }
        if (!b->o.size)
          b->o.size = (uint64_t)st.st_size;
      }
    } else if (b->o.no_write) {
      cli_err("bench: %s: %s", b->path, strerror(errno));
      return CLI_FAIL;
    }
    /* The directory holding the file, for the free-space check and kvik_path_info. */
    snprintf(dir, sizeof dir, "%s", b->path);
    char *slash = strrchr(dir, '/');
    if (!slash)
      snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
      dir[1] = '\0';
    else
      *slash = '\0';
  } else {
    snprintf(dir, sizeof dir, "%s", temp_dir());
    if ((size_t)snprintf(b->path, sizeof b->path, "%s/kvik-bench-XXXXXX", dir) >= sizeof b->path) {
      cli_err("bench: temporary directory path too long: %s", dir);
      return CLI_FAIL;
    }
    int fd = mkstemp(b->path);
    if (fd < 0) {
      cli_err("bench: cannot create a file in %s: %s (set TMPDIR or use --file)", dir,
              strerror(errno));
      return CLI_FAIL;
    }
    close(fd);
    b->temporary = true;
    remove_on_signal(b->path);
  }
  if (!b->o.size)
    b->o.size = DEFAULT_SIZE;
  if (b->o.size > SIZE_MAX) {
    cli_err("bench: --size too large for this machine");
    return CLI_FAIL;
  }
  b->size = (size_t)b->o.size;

  b->pinfo.sz = sizeof b->pinfo;
  int rc = kvik_path_info(dir, &b->pinfo);
  if (rc < 0) {
    cli_kvik_err(rc, "bench: %s", dir);
    return CLI_FAIL;
  }
  if (!b->o.no_write) {
    struct statvfs vfs;
    uint64_t have = 0;
    if (stat(b->path, &st) == 0)
      have = (uint64_t)st.st_size; /* space the file already holds is reused */
    if (statvfs(dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize + have < b->o.size) {
      char need[32], free_[32];
      cli_err("bench: not enough space in %s: %s free, %s needed (use --size or --file)", dir,
              cli_fmt_size((uint64_t)vfs.f_bavail * vfs.f_frsize, free_, sizeof free_),
              cli_fmt_size(b->o.size, need, sizeof need));
      return CLI_FAIL;
    }
  }
  return CLI_OK;
}

static int open_file(struct bench *b) {
  struct kvik_file_info fi = {.sz = sizeof fi};
  const char *flags = b->o.no_write ? "r" : "w+";
  int rc;

  rc = kvik_file_open(&b->f, b->path, flags, 0644, (kvik_compat)b->o.io.compat);
  if (rc < 0) {
    cli_kvik_err(rc, "bench: cannot open %s", b->path);
    return CLI_FAIL;
  }
  rc = kvik_file_info(b->f, &fi);
  if (rc < 0) {
    cli_kvik_err(rc, "bench: %s", b->path);
    return CLI_FAIL;
  }
  b->compat = fi.compat;
  b->direct_read = fi.direct_read;
  b->direct_write = fi.direct_write;
  b->fd = open(b->path, (b->o.no_write ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (b->fd < 0) {
    cli_err("bench: %s: %s", b->path, strerror(errno));
    return CLI_FAIL;
  }
  /* For the O_DIRECT baselines (where kvik goes direct, or in device mode) and the disk probe;
   * a filesystem that refuses O_DIRECT gets neither (and kvik there runs buffered). */
  b->dfd = open(b->path, (b->o.no_write ? O_RDONLY : O_RDWR) | O_DIRECT | O_CLOEXEC);
  /* Device memory: a second kvik handle in the other write mode, so both are measured. */
  if (b->o.mem == MEM_DEVICE && !b->o.no_write) {
    uint64_t dw = 0;
    if ((rc = kvik_config_get_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, &dw)) < 0 ||
        (rc = kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, !dw)) < 0) {
      cli_kvik_err(rc, "bench: %s", kvik_config_name(KVIK_CFG_AUTO_DIRECT_IO_WRITE));
      return CLI_FAIL;
    }
    rc = kvik_file_open(&b->f2, b->path, "r+", 0644, (kvik_compat)b->o.io.compat);
    int rc2 = kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, dw);
    if (rc < 0 || rc2 < 0) {
      cli_kvik_err(rc < 0 ? rc : rc2, "bench: cannot open %s a second time", b->path);
      return CLI_FAIL;
    }
    struct kvik_file_info fi2 = {.sz = sizeof fi2};
    if ((rc = kvik_file_info(b->f2, &fi2)) < 0) {
      cli_kvik_err(rc, "bench: %s", b->path);
      return CLI_FAIL;
    }
    b->direct_write2 = fi2.direct_write;
    if (b->direct_write2 == b->direct_write) { /* O_DIRECT refused: one mode only */
      kvik_file_close(b->f2);
      b->f2 = NULL;
    }
  }
  return CLI_OK;
}

/* Reads the whole file through the page cache, so a hot run finds every page there. */
static int warm_cache(struct bench *b) {
  size_t done = 0;
  while (done < b->size) {
    size_t want = b->size - done < WARM_CHUNK ? b->size - done : WARM_CHUNK;
    ssize_t n = pread(b->fd, b->warm, want, (off_t)done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      cli_err("bench: reading %s at %zu: %s", b->path, done,
              n < 0 ? strerror(errno) : "end of file");
      return CLI_FAIL;
    }
    done += (size_t)n;
  }
  return CLI_OK;
}

static int set_cache(struct bench *b, enum cache cache) {
  if (cache == CACHE_HOT)
    return warm_cache(b);
  int rc = kvik_drop_file_cache(b->path);
  if (rc < 0) {
    cli_kvik_err(rc, "bench: cannot drop the page cache of %s", b->path);
    return CLI_FAIL;
  }
  return CLI_OK;
}

static int sync_file(struct bench *b) {
  if (fdatasync(b->fd) != 0) {
    cli_err("bench: fdatasync %s: %s", b->path, strerror(errno));
    return CLI_FAIL;
  }
  return CLI_OK;
}

/* ---- measuring and reporting --------------------------------------------------------- */

struct result {
  const struct engine *e;
  enum cache cache;
  double *runs; /* seconds per repetition */
  double seconds;
  int baseline; /* index of the result this one is compared with, or -1 */
  int naive;    /* device mode, kvik rows: index of what a user writes first, or -1 */
};

/* Name shown for an engine: in device mode kvik's writes are named by their mode. */
static const char *engine_name(const struct bench *b, const struct engine *e) {
  if (b->o.mem != MEM_DEVICE || e->baseline || e->op != OP_WRITE)
    return e->name;
  int direct = e->other_mode ? b->direct_write2 : b->direct_write;
  return direct ? "kvik-direct" : "kvik-buffered";
}

/* The O_DIRECT mode of a result (kvik: its handle's mode; a baseline: its own). */
static int result_direct(const struct bench *b, const struct result *r) {
  if (r->e->baseline)
    return r->e->direct;
  if (r->e->op == OP_READ)
    return b->direct_read;
  return r->e->other_mode ? b->direct_write2 : b->direct_write;
}

/* Device mode, after the timings are in: each kvik result's bound is the slower of the link
 * limit (when the case has one) and the fastest file-side limit (for writes: of kvik's own
 * write mode). */
static void device_refs(const struct bench *b, struct result *res, size_t first, size_t end) {
  for (size_t i = first; i < end; i++) {
    res[i].naive = -1;
    if (res[i].e->baseline)
      continue;
    int link = -1, io = -1;
    for (size_t j = first; j < end; j++) {
      const struct engine *e = res[j].e;
      if (e->limit == LIM_LINK)
        link = (int)j;
      else if (e->limit == LIM_IO && (e->op == OP_READ || e->direct == result_direct(b, &res[i])) &&
               (io < 0 || res[j].seconds < res[io].seconds))
        io = (int)j;
      else if (e->limit == LIM_NAIVE)
        res[i].naive = (int)j;
    }
    res[i].baseline = io;
    if (link >= 0 && (io < 0 || res[link].seconds > res[io].seconds))
      res[i].baseline = link;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double summarize(const double *runs, unsigned n, int stat) {
  double s[MAX_REPEAT];
  memcpy(s, runs, n * sizeof *s);
  qsort(s, n, sizeof *s, cmp_double);
  if (stat == STAT_BEST)
    return s[0];
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static int measure_once(struct bench *b, struct result *r, unsigned rep) {
  const struct engine *e = r->e;
  double t0, t1;

  bool dev_kvik = b->o.mem == MEM_DEVICE && !e->baseline && !e->fresh;
  if (!e->nofile && set_cache(b, r->cache) != CLI_OK)
    return CLI_FAIL;
  if (e->op == OP_READ && b->o.verify && !e->nofile && !e->fresh) {
    if (dev_kvik ? cli_cuda_memset(b->dbuf, 0, b->size) != 0 : (memset(b->buf, 0, b->size), 0))
      return CLI_FAIL;
  }
  b->reported = -1;
  t0 = cli_now();
  if (e->run(b) != CLI_OK)
    return CLI_FAIL;
  if (e->op == OP_WRITE && b->o.sync && !e->nofile && sync_file(b) != CLI_OK)
    return CLI_FAIL;
  t1 = cli_now();
  if (e->op == OP_WRITE && !b->o.sync && !e->nofile && sync_file(b) != CLI_OK)
    return CLI_FAIL;
  /* Checked: kvik's reads, and the baselines that read the file into b->buf. */
  bool check = e->op == OP_READ && b->o.verify && !e->nofile && !e->fresh &&
               (dev_kvik || b->o.mem == MEM_HOST || e->run == engine_pread_copy);
  if (check && dev_kvik && cli_cuda_dtoh(b->buf, b->dbuf, b->size) != 0)
    return CLI_FAIL;
  if (check) {
    size_t bad = pattern_check(b->buf, b->size);
    if (bad != b->size) {
      cli_err("bench: %s read of %s returned wrong data at offset %zu", e->name, b->path, bad);
      return CLI_FAIL;
    }
  }
  r->runs[rep] = b->reported >= 0 ? b->reported : t1 - t0;
  if (e->fresh)
    memcpy(b->parts[r->cache][rep], b->last_parts, sizeof b->last_parts);
  return CLI_OK;
}

static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(out, "\\%c", ch);
    else if (ch < 0x20)
      fprintf(out, "\\u%04x", ch);
    else
      fputc(ch, out);
  }
  fputc('"', out);
}

static double gbps(size_t bytes, double seconds) {
  return seconds > 0 ? (double)bytes / seconds / 1e9 : 0;
}

/* The steady-state kvik read of the same cache state as the fresh-process result i, or -1. */
static int steady_of(const struct result *res, size_t n, size_t i) {
  for (size_t j = 0; j < n; j++)
    if (res[j].e->run == engine_kvik_read && res[j].cache == res[i].cache)
      return (int)j;
  return -1;
}

/* A part of the one-shot reads' first calls, summarized over the runs like the totals. */
static double part_stat(const struct bench *b, enum cache c, int part) {
  double v[MAX_REPEAT];
  for (unsigned k = 0; k < b->o.repeat; k++)
    v[k] = b->parts[c][k][part];
  return summarize(v, b->o.repeat, b->o.stat);
}

/* The probe's best configuration, for kvik's cold reads (NULL for other results). */
static const struct probe_result *probe_ref(const struct bench *b, const struct result *r) {
  if (r->e->baseline || r->e->op != OP_READ || r->cache != CACHE_COLD || b->best_probe < 0)
    return NULL;
  return &b->probes[b->best_probe];
}

/* One line per configuration of the O_DIRECT probe; the best one has "best":true. */
static void print_probe_json(FILE *out, const struct bench *b) {
  for (size_t i = 0; i < b->nprobes; i++) {
    const struct probe_result *p = &b->probes[i];
    fprintf(out,
            "{\"op\":\"read\",\"cache\":\"cold\",\"engine\":\"probe-direct\",\"baseline\":true,"
            "\"mem\":\"host\",\"bytes\":%zu,\"seconds\":%.6f,\"gbps\":%.3f,\"stat\":\"single\","
            "\"repeat\":1,\"runs\":[%.6f],\"threads\":%u,\"task_size\":%zu,\"direct_io\":1,"
            "\"sync\":false,\"block_size\":%zu,\"queue_depth\":%u,\"best\":%s,\"probe\":\"%s\"",
            p->bytes, p->seconds, probe_gbps(p), p->seconds, p->threads, p->block, p->block,
            p->threads, (int)i == b->best_probe ? "true" : "false",
            b->o.probe == PROBE_FULL ? "full" : "quick");
    if (b->o.mem == MEM_DEVICE) {
      fprintf(out, ",\"gpu\":");
      json_string(out, b->gpu.name);
    }
    fprintf(out, ",\"fs\":");
    json_string(out, b->pinfo.fs_type);
    fprintf(out, ",\"file\":");
    json_string(out, b->path);
    fprintf(out, ",\"version\":\"%s\"}\n", kvik_version());
  }
}

static void print_json(FILE *out, const struct bench *b, const struct result *res, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const struct result *r = &res[i];
    const struct engine *e = r->e;
    fprintf(out,
            "{\"op\":\"%s\",\"cache\":\"%s\",\"engine\":\"%s\",\"baseline\":%s,\"mem\":\"%s\","
            "\"bytes\":%zu,\"seconds\":%.6f,\"gbps\":%.3f,\"stat\":\"%s\",\"repeat\":%u,"
            "\"runs\":[",
            op_names[e->op], cache_names[r->cache], engine_name(b, e),
            e->baseline ? "true" : "false", b->o.mem == MEM_DEVICE ? "device" : "host", b->size,
            r->seconds, gbps(b->size, r->seconds), b->o.stat == STAT_BEST ? "best" : "median",
            b->o.repeat);
    for (unsigned k = 0; k < b->o.repeat; k++)
      fprintf(out, "%s%.6f", k ? "," : "", r->runs[k]);
    fprintf(out, "],\"threads\":%u,\"task_size\":%llu,\"direct_io\":%d,\"sync\":%s",
            e->baseline ? 1u : b->threads,
            (unsigned long long)(e->baseline ? (b->size < BASELINE_CHUNK ? b->size : BASELINE_CHUNK)
                                             : b->task_size),
            result_direct(b, r), b->o.sync ? "true" : "false");
    if (r->baseline >= 0)
      fprintf(out, ",\"vs\":\"%s\",\"ratio\":%.3f", engine_name(b, res[r->baseline].e),
              r->seconds > 0 ? res[r->baseline].seconds / r->seconds : 0);
    if (b->o.mem == MEM_DEVICE && r->naive >= 0)
      fprintf(out, ",\"vs_naive\":\"%s\",\"ratio_naive\":%.3f", res[r->naive].e->name,
              r->seconds > 0 ? res[r->naive].seconds / r->seconds : 0);
    int steady = e->fresh ? steady_of(res, n, i) : -1;
    if (steady >= 0)
      fprintf(out, ",\"vs_steady\":\"%s\",\"ratio_steady\":%.3f", res[steady].e->name,
              r->seconds > 0 ? res[steady].seconds / r->seconds : 0);
    if (e->fresh)
      for (int k = 0; k < PART_COUNT; k++)
        fprintf(out, ",\"%s_seconds\":%.6f", part_names[k], part_stat(b, r->cache, k));
    const struct probe_result *best = probe_ref(b, r);
    if (best)
      fprintf(out,
              ",\"vs_probe\":\"probe-direct\",\"ratio_probe\":%.3f,\"probe_threads\":%u,"
              "\"probe_block_size\":%zu",
              probe_gbps(best) > 0 ? gbps(b->size, r->seconds) / probe_gbps(best) : 0,
              best->threads, best->block);
    if (b->o.mem == MEM_DEVICE) {
      fprintf(out, ",\"gpu\":");
      json_string(out, b->gpu.name);
    }
    fprintf(out, ",\"fs\":");
    json_string(out, b->pinfo.fs_type);
    fprintf(out, ",\"file\":");
    json_string(out, b->path);
    fprintf(out, ",\"version\":\"%s\"}\n", kvik_version());
  }
  print_probe_json(out, b);
}

static void print_header(const struct bench *b) {
  char size[32], task[32];
  printf("kvik bench %s: %s, %s (%s%s%s%s), %s memory\n", kvik_version(),
         cli_fmt_size(b->size, size, sizeof size), b->path,
         b->pinfo.fs_type[0] ? b->pinfo.fs_type : "unknown filesystem",
         b->pinfo.block_device[0] ? " on " : "", b->pinfo.block_device,
         b->temporary ? ", temporary" : "", b->o.mem == MEM_DEVICE ? "device" : "host");
  if (b->o.mem == MEM_DEVICE) {
    char mem[32];
    int version = 0;
    kvik_cuda_driver_version(&version);
    printf("GPU 0: %s, %s, PCI %s, CUDA driver %d.%d\n", b->gpu.name,
           cli_fmt_size(b->gpu.total_mem, mem, sizeof mem), b->gpu.pci_bus_id, version / 1000,
           version % 1000 / 10);
  }
  printf("kvik: %u threads, task size %s, O_DIRECT reads %s, writes %s, compat %s\n", b->threads,
         cli_fmt_size(b->task_size, task, sizeof task), b->direct_read ? "on" : "off",
         b->direct_write ? "on" : "off", cli_compat_name(b->compat));
  if (b->o.mem == MEM_DEVICE)
    printf("baselines: -mt: %u threads (kvik's count) on %s pieces into their own pinned\n"
           "buffers; -1t, pwrite-pinned: one thread; h2d/d2h: 256 MiB pinned copies;\n"
           "pread+copy, copy+pwrite: one thread through pageable memory and one cuMemcpy\n",
           b->threads, cli_fmt_size(b->tchunk, task, sizeof task));
  else
    printf("baselines: one thread, pread/pwrite calls of up to 1 GiB into the same buffer%s\n",
           b->dfd >= 0 ? "; -direct: through O_DIRECT" : "");
  fflush(stdout);
}

/* After the table: the one-shot reads' first calls, and the O_DIRECT probe with kvik's cold
 * reads against its best configuration. */
static void print_extras(const struct bench *b, const struct result *res, size_t n) {
  char bs[32];
  bool first = true;
  for (size_t i = 0; i < n; i++) {
    const struct result *r = &res[i];
    if (!r->e->fresh)
      continue;
    if (first)
      printf("\none-shot reads (a fresh process reading into fresh memory; %s of %u):\n",
             b->o.stat == STAT_BEST ? "best" : "median", b->o.repeat);
    first = false;
    int steady = steady_of(res, n, i);
    printf("  %-4s %.2f GB/s", cache_names[r->cache], gbps(b->size, r->seconds));
    if (steady >= 0)
      printf(", %.2f of kvik's steady %.2f GB/s",
             r->seconds > 0 ? res[steady].seconds / r->seconds : 0,
             gbps(b->size, res[steady].seconds));
    printf("\n       first calls (ms): open %.3f, pread call %.3f, wait %.3f, close %.3f; "
           "the process %.3f s\n",
           part_stat(b, r->cache, PART_OPEN) * 1e3, part_stat(b, r->cache, PART_SUBMIT) * 1e3,
           part_stat(b, r->cache, PART_WAIT) * 1e3, part_stat(b, r->cache, PART_CLOSE) * 1e3,
           part_stat(b, r->cache, PART_PROCESS));
  }
  if (b->best_probe < 0)
    return;
  const struct probe_result *best = &b->probes[b->best_probe];
  printf("\nthe disk (O_DIRECT probe, %s sweep, page-aligned host memory, GB/s):\n",
         b->o.probe == PROBE_FULL ? "full" : "quick");
  for (size_t i = 0; i < b->nprobes; i++) {
    const struct probe_result *p = &b->probes[i];
    if (i == 0 || p->block != b->probes[i - 1].block)
      printf("%s  %8s:", i ? "\n" : "", cli_fmt_size(p->block, bs, sizeof bs));
    bool more = i + 1 < b->nprobes && b->probes[i + 1].block == p->block;
    printf(" %u thr %.2f%s%s", p->threads, probe_gbps(p), (int)i == b->best_probe ? "*" : "",
           more ? "," : "");
  }
  printf("\n  best: %.2f GB/s with %u threads x %s\n", probe_gbps(best), best->threads,
         cli_fmt_size(best->block, bs, sizeof bs));
  for (size_t i = 0; i < n; i++)
    if (probe_ref(b, &res[i]))
      printf("  %-13s cold read: %.2f of the best\n", engine_name(b, res[i].e),
             probe_gbps(best) > 0 ? gbps(b->size, res[i].seconds) / probe_gbps(best) : 0);
}

static void print_table(const struct bench *b, const struct result *res, size_t n) {
  if (b->o.mem == MEM_DEVICE) {
    printf("\n%-6s %-5s %-17s %9s %8s  %s\n", "op", "cache", "engine", "seconds", "GB/s",
           "kvik vs the limit that bounds it; vs what a user writes first");
    for (size_t i = 0; i < n; i++) {
      const struct result *r = &res[i];
      printf("%-6s %-5s %-17s %9.4f %8.2f", op_names[r->e->op], cache_names[r->cache],
             engine_name(b, r->e), r->seconds, gbps(b->size, r->seconds));
      if (r->baseline >= 0)
        printf("  %5.2f of %s", r->seconds > 0 ? res[r->baseline].seconds / r->seconds : 0,
               res[r->baseline].e->name);
      if (r->naive >= 0)
        printf("; %.1fx %s", r->seconds > 0 ? res[r->naive].seconds / r->seconds : 0,
               res[r->naive].e->name);
      printf("\n");
    }
    printf("\n%s of %u runs; GB/s = 10^9 bytes/s. Bounds: hot read min(pread-pinned-mt, "
           "h2d-pinned); cold read\nthe best pread-direct; write the slower of d2h-pinned and the "
           "best raw write of the same mode.\n",
           b->o.stat == STAT_BEST ? "best" : "median", b->o.repeat);
    print_extras(b, res, n);
    return;
  }
  printf("\n%-6s %-5s %-13s %9s %8s %7s\n", "op", "cache", "engine", "seconds", "GB/s", "ratio");
  for (size_t i = 0; i < n; i++) {
    const struct result *r = &res[i];
    printf("%-6s %-5s %-13s %9.4f %8.2f", op_names[r->e->op], cache_names[r->cache], r->e->name,
           r->seconds, gbps(b->size, r->seconds));
    if (r->baseline >= 0)
      printf(" %6.2fx%s", r->seconds > 0 ? res[r->baseline].seconds / r->seconds : 0,
             r->baseline == (int)i ? " *" : "");
    printf("\n");
  }
  printf("\n%s of %u runs; GB/s = 10^9 bytes/s; ratio = speed over the baseline marked *, the\n"
         "one in kvik's own mode (buffered, or O_DIRECT when kvik's reads or writes use it)%s.\n",
         b->o.stat == STAT_BEST ? "best" : "median", b->o.repeat,
         b->o.sync ? "; write times include fdatasync" : "");
  print_extras(b, res, n);
}

static int run_all(struct bench *b) {
  struct result res[OP_COUNT * CACHE_COUNT * NENGINES];
  double runs[OP_COUNT * CACHE_COUNT * NENGINES][MAX_REPEAT];
  size_t n = 0, total_runs, done_runs = 0;

  for (int op = 0; op < OP_COUNT; op++) {
    if (op == OP_WRITE && b->o.no_write)
      continue;
    for (int cache = 0; cache < CACHE_COUNT; cache++) {
      if (!b->o.cache[cache])
        continue;
      size_t first = n;
      bool kvik_direct = op == OP_READ ? b->direct_read : b->direct_write;
      bool dev = b->o.mem == MEM_DEVICE;
      for (size_t k = 0; k < NENGINES; k++) {
        const struct engine *e = &engines[k];
        if ((int)e->op != op || !(e->mems & (1u << b->o.mem)) || !(e->caches & (1u << cache)))
          continue;
        if (e->direct && ((!dev && !kvik_direct) || b->dfd < 0))
          continue;
        if ((e->other_mode && !b->f2) || (e->fresh && b->o.no_oneshot))
          continue;
        res[n] =
            (struct result){.e = e, .cache = cache, .runs = runs[n], .baseline = -1, .naive = -1};
        n++;
      }
      /* The reference of a case is the baseline in kvik's own mode (buffered or O_DIRECT),
       * else its first baseline; every result of the case is compared with it. */
      int ref = -1;
      for (size_t j = first; j < n; j++)
        if (res[j].e->baseline && (ref < 0 || res[j].e->direct == kvik_direct))
          ref = (int)j;
      for (size_t i = first; i < n; i++)
        res[i].baseline = ref;
    }
  }
  total_runs = n * b->o.repeat;

  bool probed = b->o.probe == PROBE_OFF;
  for (size_t i = 0; i < n;) {
    /* The disk's limit, measured right before kvik's cold reads that it bounds. */
    if (!probed && res[i].e->op == OP_READ && res[i].cache == CACHE_COLD) {
      if (run_probe(b) != CLI_OK)
        return CLI_FAIL;
      probed = true;
    }
    /* The device write baselines write whatever their pinned buffers hold: with --verify, the
     * pattern goes back into the file (untimed) before reads are checked. */
    if (b->o.mem == MEM_DEVICE && b->o.verify && res[i].e->op == OP_READ && i > 0 &&
        res[i - 1].e->op == OP_WRITE && (run_kvik(b, OP_WRITE) != CLI_OK || sync_file(b) != CLI_OK))
      return CLI_FAIL;
    /* A case is the run of results with the same op and cache. */
    size_t end = i;
    while (end < n && res[end].e->op == res[i].e->op && res[end].cache == res[i].cache)
      end++;
    for (unsigned rep = 0; rep < b->o.repeat; rep++) {
      for (size_t k = 0; k < end - i; k++) {
        /* Alternate the order each repetition so neither engine always goes first. */
        size_t j = rep % 2 ? end - 1 - k : i + k;
        cli_progress("[%zu/%zu] %s %s %s, run %u of %u", ++done_runs, total_runs,
                     op_names[res[j].e->op], cache_names[res[j].cache], engine_name(b, res[j].e),
                     rep + 1, b->o.repeat);
        if (measure_once(b, &res[j], rep) != CLI_OK)
          return CLI_FAIL;
      }
    }
    i = end;
  }
  /* Asked for by name, the probe runs even where no cold read does. */
  if (!probed && b->o.probe != PROBE_AUTO && run_probe(b) != CLI_OK)
    return CLI_FAIL;
  cli_progress_done();

  for (size_t i = 0; i < n; i++)
    res[i].seconds = summarize(res[i].runs, b->o.repeat, b->o.stat);
  if (b->o.mem == MEM_DEVICE) {
    for (size_t i = 0; i < n;) {
      size_t end = i;
      while (end < n && res[end].e->op == res[i].e->op && res[end].cache == res[i].cache)
        end++;
      for (size_t j = i; j < end; j++)
        res[j].baseline = -1;
      device_refs(b, res, i, end);
      i = end;
    }
  }
  if (b->o.json)
    print_json(stdout, b, res, n);
  else
    print_table(b, res, n);
  if (b->o.json_out) {
    FILE *jf = fopen(b->o.json_out, "a");
    if (!jf) {
      cli_err("bench: --json-out %s: %s", b->o.json_out, strerror(errno));
      return CLI_FAIL;
    }
    print_json(jf, b, res, n);
    fclose(jf);
  }
  return CLI_OK;
}

/* Device memory: CUDA must be there, for kvik and for the tool's own buffers. */
static int device_setup(struct bench *b) {
  if (!kvik_cuda_available()) {
    cli_err("bench: --mem device needs the CUDA driver and a GPU: %s", kvik_last_error());
    return CLI_FAIL;
  }
  b->gpu.sz = sizeof b->gpu;
  int rc = kvik_gpu_info(0, &b->gpu);
  if (rc < 0) {
    cli_kvik_err(rc, "bench: GPU 0");
    return CLI_FAIL;
  }
  return cli_cuda_open() == 0 ? CLI_OK : CLI_FAIL;
}

static int bench_setup(struct bench *b) {
  int rc;

  if (cli_io_settings_apply(&b->o.io, &b->pool) != CLI_OK)
    return CLI_FAIL;
  /* The one-shot reads run this very program again. */
  ssize_t len = readlink("/proc/self/exe", b->exe, sizeof b->exe - 1);
  if (len <= 0 || (size_t)len >= sizeof b->exe - 1) {
    if (!b->o.no_oneshot) {
      cli_err("bench: cannot find this program (/proc/self/exe) to run its one-shot reads: %s "
              "(use --no-oneshot)",
              len < 0 ? strerror(errno) : "path too long");
      return CLI_FAIL;
    }
    len = 0;
  }
  b->exe[len] = '\0';
  if (b->o.mem == MEM_DEVICE && device_setup(b) != CLI_OK)
    return CLI_FAIL;
  if (choose_file(b) != CLI_OK)
    return CLI_FAIL;

  /* tmpfs and ramfs keep files only in memory: there is nothing to drop, so "cold" is hot. */
  if (b->o.cache[CACHE_COLD] &&
      (strcmp(b->pinfo.fs_type, "tmpfs") == 0 || strcmp(b->pinfo.fs_type, "ramfs") == 0)) {
    if (!b->o.cache[CACHE_HOT]) {
      cli_err("bench: %s is on %s, which keeps files in memory: cold runs are not possible "
              "there (use --file on a disk)",
              b->path, b->pinfo.fs_type);
      return CLI_FAIL;
    }
    fprintf(stderr, "kvik: note: %s is on %s, which keeps files in memory: cold runs skipped\n",
            b->path, b->pinfo.fs_type);
    b->o.cache[CACHE_COLD] = false;
  }

  rc = kvik_pool_nthreads(b->pool);
  if (rc < 0) {
    cli_kvik_err(rc, "bench: thread pool");
    return CLI_FAIL;
  }
  b->threads = (unsigned)rc;
  if (b->o.io.task_size) {
    b->task_size = b->o.io.task_size;
  } else if ((rc = kvik_config_get_u64(KVIK_CFG_TASK_SIZE, &b->task_size)) < 0) {
    cli_kvik_err(rc, "bench: %s", kvik_config_name(KVIK_CFG_TASK_SIZE));
    return CLI_FAIL;
  }
  b->io =
      (struct kvik_io_opts){.sz = sizeof b->io, .task_size = b->o.io.task_size, .pool = b->pool};

  if (open_file(b) != CLI_OK)
    return CLI_FAIL;

  /* The buffer is touched in full, so a size near the machine's memory would end in the OOM
   * killer rather than a message; hot runs also need the file to fit in the page cache. */
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) {
    uint64_t phys = (uint64_t)pages * (uint64_t)page;
    char need[32], have[32];
    if (b->size > phys / 10 * 8) {
      cli_err("bench: --size %s needs that much memory for the buffer; this machine has %s",
              cli_fmt_size(b->size, need, sizeof need), cli_fmt_size(phys, have, sizeof have));
      return CLI_FAIL;
    }
    if (b->o.cache[CACHE_HOT] && b->size > phys / 2)
      fprintf(stderr,
              "kvik: note: the buffer and the file (%s each) do not both fit in memory (%s): "
              "hot runs may read from the disk\n",
              cli_fmt_size(b->size, need, sizeof need), cli_fmt_size(phys, have, sizeof have));
  }
  b->buf = cli_alloc_host(b->size);
  b->warm = cli_alloc_host(WARM_CHUNK);
  if (!b->buf || !b->warm) {
    char s[32];
    cli_err("bench: cannot allocate %s of host memory", cli_fmt_size(b->size, s, sizeof s));
    return CLI_FAIL;
  }
  if (b->o.mem == MEM_DEVICE) {
    b->pinned_size = b->size < PIN_CHUNK ? b->size : PIN_CHUNK;
    b->tchunk = b->task_size < MT_CHUNK_MAX ? (size_t)b->task_size : MT_CHUNK_MAX;
    b->tchunk = (b->tchunk + DIRECT_ALIGN - 1) / DIRECT_ALIGN * DIRECT_ALIGN;
    if (cli_cuda_alloc(&b->dbuf, b->size) != 0 ||
        !(b->pinned = cli_cuda_host_alloc(b->pinned_size)) ||
        !(b->tbuf = cli_cuda_host_alloc((size_t)b->threads * b->tchunk)))
      return CLI_FAIL;
    memset(b->pinned, 0x5a, b->pinned_size);
    memset(b->tbuf, 0x5a, (size_t)b->threads * b->tchunk);
  }
  return CLI_OK;
}

/* Lays the file out once, untimed, so every measured write overwrites allocated blocks. */
static int bench_prepare(struct bench *b) {
  if (b->o.no_write)
    return CLI_OK;
  pattern_fill(b->buf, b->size);
  if (b->o.mem == MEM_DEVICE && cli_cuda_htod(b->dbuf, b->buf, b->size) != 0)
    return CLI_FAIL;
  cli_progress("writing %s", b->path);
  if (run_kvik(b, OP_WRITE) != CLI_OK || sync_file(b) != CLI_OK)
    return CLI_FAIL;
  return CLI_OK;
}

int cmd_bench(int argc, char **argv) {
  struct bench b;
  int rc;

  /* --url: reading a remote object is a different benchmark (remote_cmds.c). */
  if (cli_has_url_option(argc, argv))
    return cmd_bench_remote(argc, argv);

  memset(&b, 0, sizeof b);
  b.fd = b.dfd = -1;
  b.best_probe = -1;
  rc = parse_args(argc, argv, &b.o);
  if (rc != CLI_OK)
    return rc < 0 ? CLI_OK : rc; /* -1: --help was printed */

  rc = bench_setup(&b);
  if (rc == CLI_OK && !b.o.json)
    print_header(&b);
  if (rc == CLI_OK)
    rc = bench_prepare(&b);
  if (rc == CLI_OK)
    rc = run_all(&b);
  cli_progress_done();

  cli_free_host(b.buf);
  cli_free_host(b.warm);
  cli_cuda_host_free(b.pinned);
  cli_cuda_host_free(b.tbuf);
  cli_cuda_free(b.dbuf);
  kvik_file_close(b.f2);
  if (b.fd >= 0)
    close(b.fd);
  if (b.dfd >= 0)
    close(b.dfd);
  int crc = kvik_file_close(b.f);
  if (crc < 0 && rc == CLI_OK) {
    cli_kvik_err(crc, "bench: closing %s", b.path);
    rc = CLI_FAIL;
  }
  if (b.temporary) {
    unlink(b.path);
    signal_unlink_path[0] = '\0';
  }
  return rc;
}
