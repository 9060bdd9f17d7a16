/* kvik cp: copies a file through host memory with kvik's parallel I/O. Two buffers: while chunk
 * k is written from one, chunk k+1 is read into the other. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "remote_cmds.h"

#define DEFAULT_CHUNK ((uint64_t)64 << 20)

static void cp_usage(FILE *out) {
  fputs("usage: kvik cp [options] SRC DST\n"
        "\n"
        "Copies the file SRC to DST (or into DST if it is a directory), reading and writing\n"
        "with kvik's parallel I/O. DST is created or truncated; it gets SRC's permission bits.\n"
        "SRC may be a URL (http://, https://, s3://, WebHDFS): 'kvik cp URL --help' has the\n"
        "options of a download.\n"
        "\n"
        "options:\n"
        "  --chunk BYTES        bytes per read/write step; two such buffers are used\n"
        "                       (default 64M)\n"
        "  --threads N          kvik's worker threads (default: KVIKIO_NTHREADS)\n"
        "  --task-size BYTES    bytes per parallel task (default: KVIKIO_TASK_SIZE)\n"
        "  --direct-io on|off   opportunistic O_DIRECT for reads and writes\n"
        "  --compat on|off|auto compat mode both files are opened with\n"
        "  -v, --verbose        print the bytes copied and the rate on stderr\n",
        out);
}

enum { OPT_CHUNK = 256, OPT_THREADS, OPT_TASK_SIZE, OPT_DIRECT_IO, OPT_COMPAT };

struct copy {
  kvik_file *src, *dst;
  const char *src_path, *dst_path;
  struct kvik_io_opts io;
  unsigned char *buf[2];
  size_t chunk;
};

/* Waits for a future if there is one; returns its result (0 for none). */
static ssize_t wait_opt(kvik_future **fut) {
  ssize_t n = 0;
  if (*fut) {
    n = kvik_future_wait(*fut);
    *fut = NULL;
  }
  return n;
}

static int copy_data(struct copy *c, int64_t size, uint64_t *copied) {
  kvik_future *rf = NULL, *wf = NULL;
  int64_t off = 0;
  size_t len = 0;
  unsigned k = 0;
  int rc, ret = CLI_FAIL;

  *copied = 0;
  if (size == 0)
    return CLI_OK;
  len = (size_t)(size < (int64_t)c->chunk ? size : (int64_t)c->chunk);
  rc = kvik_file_pread(c->src, c->buf[0], len, 0, &c->io, &rf);
  if (rc < 0) {
    cli_kvik_err(rc, "cp: reading %s", c->src_path);
    return CLI_FAIL;
  }
  for (;;) {
    ssize_t n = wait_opt(&rf);
    if (n < 0) {
      cli_kvik_err((int)n, "cp: reading %s", c->src_path);
      goto out;
    }
    ssize_t w = wait_opt(&wf);
    if (w < 0) {
      cli_kvik_err((int)w, "cp: writing %s", c->dst_path);
      goto out;
    }
    if (n == 0) /* the file shrank while we copied: stop at its new end */
      break;
    rc = kvik_file_pwrite(c->dst, c->buf[k], (size_t)n, off, &c->io, &wf);
    if (rc < 0) {
      cli_kvik_err(rc, "cp: writing %s", c->dst_path);
      goto out;
    }
    off += n;
    *copied += (uint64_t)n;
    if ((size_t)n < len || off >= size)
      break;
    k ^= 1;
    len = (size_t)(size - off < (int64_t)c->chunk ? size - off : (int64_t)c->chunk);
    rc = kvik_file_pread(c->src, c->buf[k], len, off, &c->io, &rf);
    if (rc < 0) {
      cli_kvik_err(rc, "cp: reading %s", c->src_path);
      goto out;
    }
  }
  ssize_t w = wait_opt(&wf);
  if (w < 0) {
    cli_kvik_err((int)w, "cp: writing %s", c->dst_path);
    goto out;
  }
  ret = CLI_OK;
out:
  /* Every future is waited exactly once, and before its buffer is freed. */
  wait_opt(&rf);
  wait_opt(&wf);
  return ret;
}

int cmd_cp(int argc, char **argv) {
  static const struct option longopts[] = {
      {"help", no_argument, NULL, 'h'},
      {"verbose", no_argument, NULL, 'v'},
      {"chunk", required_argument, NULL, OPT_CHUNK},
      {"threads", required_argument, NULL, OPT_THREADS},
      {"task-size", required_argument, NULL, OPT_TASK_SIZE},
      {"direct-io", required_argument, NULL, OPT_DIRECT_IO},
      {"compat", required_argument, NULL, OPT_COMPAT},
      {NULL, 0, NULL, 0},
  };
  struct cli_io_settings io;
  struct copy c;
  struct stat sst, dst;
  char dst_path[4096];
  uint64_t chunk = DEFAULT_CHUNK, v, copied = 0;
  bool verbose = false;
  kvik_pool *pool = NULL;
  int opt, rc, ret = CLI_FAIL;

  /* A URL anywhere among the arguments: the remote copy (remote_cmds.c) takes the command. */
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
    if (cli_is_url(argv[i]))
      return cmd_cp_remote(argc, argv);

  memset(&c, 0, sizeof c);
  cli_io_settings_init(&io);
  optind = 0; /* glibc: full reset, so each command parses its own argv from the start */
  while ((opt = getopt_long(argc, argv, "+hv", longopts, NULL)) != -1) {
    switch (opt) {
    case 'h': cp_usage(stdout); return CLI_OK;
    case 'v': verbose = true; break;
    case OPT_CHUNK:
      if (cli_parse_size(optarg, &chunk) < 0 || chunk == 0 || chunk > (uint64_t)SSIZE_MAX) {
        cli_err("cp: invalid --chunk '%s' (expected a byte count > 0, e.g. 64M)", optarg);
        return CLI_USAGE;
      }
      break;
    case OPT_THREADS:
      if (cli_parse_u64(optarg, 1, 4096, &v) < 0) {
        cli_err("cp: invalid --threads '%s' (expected a number from 1 to 4096)", optarg);
        return CLI_USAGE;
      }
      io.threads = v;
      break;
    case OPT_TASK_SIZE:
      if (cli_parse_size(optarg, &v) < 0 || v == 0) {
        cli_err("cp: invalid --task-size '%s' (expected a byte count > 0, e.g. 4M)", optarg);
        return CLI_USAGE;
      }
      io.task_size = v;
      break;
    case OPT_DIRECT_IO:
      if ((io.direct_io = cli_parse_onoff(optarg)) < 0) {
        cli_err("cp: invalid --direct-io '%s' (expected on or off)", optarg);
        return CLI_USAGE;
      }
      break;
    case OPT_COMPAT:
      if ((io.compat = cli_parse_compat(optarg)) < 0) {
        cli_err("cp: invalid --compat '%s' (expected on, off or auto)", optarg);
        return CLI_USAGE;
      }
      break;
    default: cp_usage(stderr); return CLI_USAGE;
    }
  }
  if (argc - optind != 2) {
    cp_usage(stderr);
    return CLI_USAGE;
  }
  c.src_path = argv[optind];
  snprintf(dst_path, sizeof dst_path, "%s", argv[optind + 1]);

  if (stat(c.src_path, &sst) != 0) {
    cli_err("cp: %s: %s", c.src_path, strerror(errno));
    return CLI_FAIL;
  }
  if (!S_ISREG(sst.st_mode)) {
    cli_err("cp: %s is not a regular file", c.src_path);
    return CLI_FAIL;
  }
  if (stat(dst_path, &dst) == 0 && S_ISDIR(dst.st_mode)) {
    char base[4096];
    snprintf(base, sizeof base, "%s", c.src_path);
    if ((size_t)snprintf(dst_path, sizeof dst_path, "%s/%s", argv[optind + 1], basename(base)) >=
        sizeof dst_path) {
      cli_err("cp: destination path too long");
      return CLI_FAIL;
    }
  }
  /* Opening DST truncates it: refuse when it is SRC under another name. */
  if (stat(dst_path, &dst) == 0 && dst.st_dev == sst.st_dev && dst.st_ino == sst.st_ino) {
    cli_err("cp: %s and %s are the same file", c.src_path, dst_path);
    return CLI_FAIL;
  }
  c.dst_path = dst_path;

  if (cli_io_settings_apply(&io, &pool) != CLI_OK)
    return CLI_FAIL;
  c.io = (struct kvik_io_opts){.sz = sizeof c.io, .task_size = io.task_size, .pool = pool};

  rc = kvik_file_open(&c.src, c.src_path, "r", 0, (kvik_compat)io.compat);
  if (rc < 0) {
    cli_kvik_err(rc, "cp: cannot open %s", c.src_path);
    goto out;
  }
  int64_t size = kvik_file_size(c.src);
  if (size < 0) {
    cli_kvik_err((int)size, "cp: %s", c.src_path);
    goto out;
  }
  rc = kvik_file_open(&c.dst, c.dst_path, "w", sst.st_mode & 07777, (kvik_compat)io.compat);
  if (rc < 0) {
    cli_kvik_err(rc, "cp: cannot open %s", c.dst_path);
    goto out;
  }
  c.chunk = (size_t)((uint64_t)size < chunk ? (uint64_t)size : chunk);
  for (int i = 0; i < 2 && size > 0; i++) {
    c.buf[i] = cli_alloc_host(c.chunk);
    if (!c.buf[i]) {
      char s[32];
      cli_err("cp: cannot allocate 2 x %s of host memory (try a smaller --chunk)",
              cli_fmt_size(c.chunk, s, sizeof s));
      goto out;
    }
  }

  double t0 = cli_now();
  if (copy_data(&c, size, &copied) != CLI_OK)
    goto out;
  double t = cli_now() - t0;
  if (verbose) {
    char s[32];
    fprintf(stderr, "kvik: copied %s (%llu bytes) in %.3f s, %.2f GB/s\n",
            cli_fmt_size(copied, s, sizeof s), (unsigned long long)copied, t,
            t > 0 ? (double)copied / t / 1e9 : 0.0);
  }
  ret = CLI_OK;
out:
  cli_free_host(c.buf[0]);
  cli_free_host(c.buf[1]);
  kvik_file_close(c.src);
  rc = kvik_file_close(c.dst);
  if (rc < 0 && ret == CLI_OK) {
    cli_kvik_err(rc, "cp: closing %s", c.dst_path);
    ret = CLI_FAIL;
  }
  return ret;
}
