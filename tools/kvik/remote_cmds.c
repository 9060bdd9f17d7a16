/* kvik cp URL FILE and kvik bench --url URL: remote reads with kvik_remote_pread, built only on
 * the public header like the rest of the tool. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "remote_cmds.h"

bool cli_is_url(const char *text) {
  const char *sep = text ? strstr(text, "://") : NULL;
  if (!sep || sep == text)
    return false;
  for (const char *p = text; p < sep; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '+' || *p == '-' || *p == '.'))
      return false;
  return true;
}

bool cli_has_url_option(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0)
      return false;
    if (strcmp(argv[i], "--url") == 0 || strncmp(argv[i], "--url=", 6) == 0)
      return true;
  }
  return false;
}

/* Options both commands share. */
struct remote_opts {
  struct cli_io_settings io;
  uint64_t chunk;    /* cp: bytes per step */
  uint64_t size;     /* bench: bytes to read (0: all) */
  unsigned repeat;   /* bench */
  unsigned parallel; /* max ranges in flight (0: default) */
  int type;          /* enum kvik_remote_type */
  bool verbose;
};

static int parse_type(const char *s) {
  static const char *const names[] = {"auto", "s3", "s3-public", "s3-presigned", "webhdfs", "http"};
  for (int i = 0; i < 6; i++)
    if (strcasecmp(s, names[i]) == 0)
      return i;
  return -1;
}

enum {
  OPT_THREADS = 300,
  OPT_TASK_SIZE,
  OPT_CHUNK,
  OPT_SIZE,
  OPT_REPEAT,
  OPT_PARALLEL,
  OPT_TYPE,
  OPT_URL
};

/* Opens url with the command's options. Prints why on failure. */
static int open_remote(const char *cmd, const char *url, const struct remote_opts *o,
                       kvik_remote **r) {
  struct kvik_remote_opts ro = {.sz = sizeof ro, .type = o->type, .max_parallel = o->parallel};
  int rc = kvik_remote_open(r, url, &ro);
  if (rc < 0) {
    /* The library's detail names the URL with its secrets hidden; url itself may hold some. */
    (void)url;
    cli_kvik_err(rc, "%s: open", cmd);
    return CLI_FAIL;
  }
  return CLI_OK;
}

/* ---- cp ----------------------------------------------------------------------------------- */

static void cp_usage(FILE *out) {
  fputs("usage: kvik cp [options] URL DST\n"
        "\n"
        "Downloads the remote object URL (http://, https://, s3://, presigned S3, WebHDFS) to\n"
        "the file DST (or into DST if it is a directory), fetching byte ranges in parallel.\n"
        "S3 credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN;\n"
        "the region from AWS_DEFAULT_REGION; the endpoint from AWS_ENDPOINT_URL.\n"
        "\n"
        "options:\n"
        "  --chunk BYTES        bytes fetched per step, written while the next step is\n"
        "                       fetched (default 64M)\n"
        "  --threads N          kvik's worker threads (default: KVIKIO_NTHREADS)\n"
        "  --task-size BYTES    bytes per ranged request (default: KVIKIO_TASK_SIZE)\n"
        "  --parallel N         ranged requests in flight (default: 3/4 of the threads)\n"
        "  --type TYPE          auto, s3, s3-public, s3-presigned, webhdfs or http (default auto)\n"
        "  -v, --verbose        print the bytes copied and the rate on stderr\n",
        out);
}

static int write_all(int fd, const unsigned char *p, size_t n, int64_t off) {
  while (n > 0) {
    ssize_t w = pwrite(fd, p, n, off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -errno;
    p += w;
    n -= (size_t)w;
    off += w;
  }
  return 0;
}

int cmd_cp_remote(int argc, char **argv) {
  static const struct option longopts[] = {{"chunk", required_argument, NULL, OPT_CHUNK},
                                           {"threads", required_argument, NULL, OPT_THREADS},
                                           {"task-size", required_argument, NULL, OPT_TASK_SIZE},
                                           {"parallel", required_argument, NULL, OPT_PARALLEL},
                                           {"type", required_argument, NULL, OPT_TYPE},
                                           {"verbose", no_argument, NULL, 'v'},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  struct remote_opts o = {.chunk = 64 << 20};
  cli_io_settings_init(&o.io);
  uint64_t v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_CHUNK:
      if (cli_parse_size(optarg, &o.chunk) || o.chunk == 0 || o.chunk > ((uint64_t)1 << 40)) {
        cli_err("cp: invalid --chunk '%s'", optarg);
        return CLI_USAGE;
      }
      break;
    case OPT_THREADS:
      if (cli_parse_u64(optarg, 1, 4096, &o.io.threads)) {
        cli_err("cp: invalid --threads '%s' (1..4096)", optarg);
        return CLI_USAGE;
      }
      break;
    case OPT_TASK_SIZE:
      if (cli_parse_size(optarg, &o.io.task_size) || o.io.task_size == 0) {
        cli_err("cp: invalid --task-size '%s'", optarg);
        return CLI_USAGE;
      }
      break;
    case OPT_PARALLEL:
      if (cli_parse_u64(optarg, 1, 4096, &v)) {
        cli_err("cp: invalid --parallel '%s' (1..4096)", optarg);
        return CLI_USAGE;
      }
      o.parallel = (unsigned)v;
      break;
    case OPT_TYPE:
      if ((o.type = parse_type(optarg)) < 0) {
        cli_err("cp: invalid --type '%s'", optarg);
        return CLI_USAGE;
      }
      break;
    case 'v': o.verbose = true; break;
    case 'h': cp_usage(stdout); return CLI_OK;
    default: cp_usage(stderr); return CLI_USAGE;
    }
  }
  if (argc - optind != 2) {
    cli_err("cp: expected a URL and a destination");
    cp_usage(stderr);
    return CLI_USAGE;
  }
  const char *url = argv[optind], *dst_arg = argv[optind + 1];
  kvik_pool *pool = NULL;
  if (cli_io_settings_apply(&o.io, &pool) != CLI_OK)
    return CLI_FAIL;
  kvik_remote *r;
  if (open_remote("cp", url, &o, &r) != CLI_OK)
    return CLI_FAIL;

  /* A directory destination gets the object's last path segment as the name. */
  char dst[PATH_MAX];
  struct stat st;
  if (stat(dst_arg, &st) == 0 && S_ISDIR(st.st_mode)) {
    const char *q = url + strcspn(url, "?#");
    const char *slash = q;
    while (slash > url && slash[-1] != '/')
      slash--;
    snprintf(dst, sizeof dst, "%s/%.*s", dst_arg, (int)(q - slash), slash);
  } else {
    snprintf(dst, sizeof dst, "%s", dst_arg);
  }
  int ret = CLI_FAIL;
  int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  unsigned char *buf[2] = {NULL, NULL};
  kvik_future *fut = NULL;
  if (fd < 0) {
    cli_err("cp: cannot create %s: %s", dst, strerror(errno));
    goto out;
  }
  int64_t size = kvik_remote_size(r);
  size_t chunk = (size_t)(size < (int64_t)o.chunk ? (size > 0 ? size : 1) : (int64_t)o.chunk);
  buf[0] = cli_alloc_host(chunk);
  buf[1] = cli_alloc_host(chunk);
  if (!buf[0] || !buf[1]) {
    cli_err("cp: out of memory for two %zu-byte buffers", chunk);
    goto out;
  }
  struct kvik_io_opts io = {.sz = sizeof io, .pool = pool};
  double t0 = cli_now();
  int64_t off = 0;
  unsigned k = 0;
  size_t len = (size_t)(size - off < (int64_t)chunk ? size - off : (int64_t)chunk);
  if (len > 0) {
    int rc = kvik_remote_pread(r, buf[0], len, 0, &io, &fut);
    if (rc < 0) {
      cli_kvik_err(rc, "cp: read");
      goto out;
    }
  }
  while (len > 0) {
    ssize_t n = kvik_future_wait(fut);
    fut = NULL;
    if (n < 0) {
      cli_kvik_err((int)n, "cp: read");
      goto out;
    }
    int64_t next = off + (int64_t)len;
    size_t next_len = (size_t)(size - next < (int64_t)chunk ? size - next : (int64_t)chunk);
    if (next_len > 0) { /* fetch the next step while this one is written */
      int rc = kvik_remote_pread(r, buf[(k + 1) & 1], next_len, next, &io, &fut);
      if (rc < 0) {
        cli_kvik_err(rc, "cp: read");
        goto out;
      }
    }
    int w = write_all(fd, buf[k & 1], len, off);
    if (w < 0) {
      cli_err("cp: writing %s: %s", dst, strerror(-w));
      goto out;
    }
    char done_s[32], total_s[32];
    double el = cli_now() - t0;
    cli_progress("cp: %s of %s (%.0f%%), %.2f GB/s", cli_fmt_size((uint64_t)next, done_s, 32),
                 cli_fmt_size((uint64_t)size, total_s, 32), 100.0 * (double)next / (double)size,
                 el > 0 ? (double)next / el / 1e9 : 0.0);
    off = next;
    len = next_len;
    k++;
  }
  cli_progress_done();
  if (fsync(fd) != 0 && errno != EINVAL) {
    cli_err("cp: fsync %s: %s", dst, strerror(errno));
    goto out;
  }
  if (o.verbose) {
    double el = cli_now() - t0;
    char s[32];
    fprintf(stderr, "kvik: cp: %s in %.3f s (%.2f GB/s)\n", cli_fmt_size((uint64_t)size, s, 32), el,
            el > 0 ? (double)size / el / 1e9 : 0.0);
  }
  ret = CLI_OK;
out:
  cli_progress_done();
  if (fut)
    kvik_future_wait(fut);
  if (fd >= 0 && close(fd) != 0 && ret == CLI_OK) {
    cli_err("cp: closing %s: %s", dst, strerror(errno));
    ret = CLI_FAIL;
  }
  cli_free_host(buf[0]);
  cli_free_host(buf[1]);
  kvik_remote_close(r);
  return ret;
}

/* ---- bench -------------------------------------------------------------------------------- */

static void bench_usage(FILE *out) {
  fputs("usage: kvik bench --url URL [options]\n"
        "\n"
        "Reads the remote object URL into host memory with parallel ranged requests\n"
        "(kvik_remote_pread) and, in the same run, with single-stream baselines: one request\n"
        "through kvik (kvik_remote_read) and, when curl is in PATH, the curl command writing\n"
        "to /dev/null. Prints one JSON line per measurement, then a table.\n"
        "\n"
        "options:\n"
        "  --url URL            the object to read (required)\n"
        "  --size BYTES         read only the first BYTES (default: the whole object)\n"
        "  --threads N          kvik's worker threads (default: KVIKIO_NTHREADS)\n"
        "  --task-size BYTES    bytes per ranged request (default: KVIKIO_TASK_SIZE)\n"
        "  --parallel N         ranged requests in flight (default: 3/4 of the threads)\n"
        "  --repeat N           runs per measurement; the best is reported (default 3)\n"
        "  --type TYPE          auto, s3, s3-public, s3-presigned, webhdfs or http\n",
        out);
}

/* Runs curl on url to /dev/null; returns seconds, or -1 when curl is missing or fails. */
static double curl_seconds(const char *url, uint64_t size, bool whole) {
  char range[64];
  snprintf(range, sizeof range, "0-%llu", (unsigned long long)(size - 1));
  int p[2];
  if (pipe(p) != 0)
    return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], 1);
    if (whole)
      execlp("curl", "curl", "-s", "-f", "-o", "/dev/null", "-w", "%{time_total}", url,
             (char *)NULL);
    else
      execlp("curl", "curl", "-s", "-f", "-r", range, "-o", "/dev/null", "-w", "%{time_total}", url,
             (char *)NULL);
    _exit(127);
  }
  close(p[1]);
  char out[64] = "";
  ssize_t n = pid > 0 ? read(p[0], out, sizeof out - 1) : -1;
  close(p[0]);
  int st = 0;
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || n <= 0)
    return -1;
  out[n] = '\0';
  return strtod(out, NULL);
}

int cmd_bench_remote(int argc, char **argv) {
  static const struct option longopts[] = {{"url", required_argument, NULL, OPT_URL},
                                           {"size", required_argument, NULL, OPT_SIZE},
                                           {"threads", required_argument, NULL, OPT_THREADS},
                                           {"task-size", required_argument, NULL, OPT_TASK_SIZE},
                                           {"parallel", required_argument, NULL, OPT_PARALLEL},
                                           {"repeat", required_argument, NULL, OPT_REPEAT},
                                           {"type", required_argument, NULL, OPT_TYPE},
                                           {"help", no_argument, NULL, 'h'},
                                           {NULL, 0, NULL, 0}};
  struct remote_opts o = {.repeat = 3};
  cli_io_settings_init(&o.io);
  const char *url = NULL;
  uint64_t v;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (c) {
    case OPT_URL: url = optarg; break;
    case OPT_SIZE:
      if (cli_parse_size(optarg, &o.size)) {
        cli_err("bench: invalid --size '%s'", optarg);
        return CLI_USAGE;
      }
      break;
    case OPT_THREADS:
      if (cli_parse_u64(optarg, 1, 4096, &o.io.threads)) {
        cli_err("bench: invalid --threads '%s' (1..4096)", optarg);
        return CLI_USAGE;
      }
      break;
    case OPT_TASK_SIZE:
      if (cli_parse_size(optarg, &o.io.task_size) || o.io.task_size == 0) {
        cli_err("bench: invalid --task-size '%s'", optarg);
        return CLI_USAGE;
      }
      break;
    case OPT_PARALLEL:
      if (cli_parse_u64(optarg, 1, 4096, &v)) {
        cli_err("bench: invalid --parallel '%s' (1..4096)", optarg);
        return CLI_USAGE;
      }
      o.parallel = (unsigned)v;
      break;
    case OPT_REPEAT:
      if (cli_parse_u64(optarg, 1, 1000, &v)) {
        cli_err("bench: invalid --repeat '%s' (1..1000)", optarg);
        return CLI_USAGE;
      }
      o.repeat = (unsigned)v;
      break;
    case OPT_TYPE:
      if ((o.type = parse_type(optarg)) < 0) {
        cli_err("bench: invalid --type '%s'", optarg);
        return CLI_USAGE;
      }
      break;
    case 'h': bench_usage(stdout); return CLI_OK;
    default: bench_usage(stderr); return CLI_USAGE;
    }
  }
  if (!url || optind != argc) {
    cli_err("bench: --url URL is required (and takes no other arguments)");
    bench_usage(stderr);
    return CLI_USAGE;
  }
  kvik_pool *pool = NULL;
  if (cli_io_settings_apply(&o.io, &pool) != CLI_OK)
    return CLI_FAIL;
  kvik_remote *r;
  if (open_remote("bench", url, &o, &r) != CLI_OK)
    return CLI_FAIL;
  int64_t total = kvik_remote_size(r);
  uint64_t size = o.size && o.size < (uint64_t)total ? o.size : (uint64_t)total;
  int ret = CLI_FAIL;
  unsigned char *buf = size ? cli_alloc_host(size) : NULL;
  if (size == 0) {
    cli_err("bench: %s is empty", kvik_remote_url(r));
    goto out;
  }
  if (!buf) {
    cli_err("bench: out of memory for %llu bytes", (unsigned long long)size);
    goto out;
  }
  int nthreads = kvik_pool_nthreads(pool);
  uint64_t task = o.io.task_size;
  if (!task)
    kvik_config_get_u64(KVIK_CFG_TASK_SIZE, &task);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  const char *names[3] = {"parallel ranges (kvik_remote_pread)", "one request (kvik_remote_read)",
                          "curl command, one stream"};
  double best[3] = {-1, -1, -1};
  struct kvik_io_opts io = {.sz = sizeof io, .pool = pool};
  for (unsigned rep = 0; rep < o.repeat; rep++) {
    for (int e = 0; e < 3; e++) {
      double s = -1;
      if (e == 0) {
        double t0 = cli_now();
        kvik_future *f;
        int rc = kvik_remote_pread(r, buf, size, 0, &io, &f);
        ssize_t n = rc < 0 ? rc : kvik_future_wait(f);
        if (n < 0) {
          cli_kvik_err((int)n, "bench: read");
          goto out;
        }
        s = cli_now() - t0;
      } else if (e == 1) {
        double t0 = cli_now();
        ssize_t n = kvik_remote_read(r, buf, size, 0);
        if (n < 0) {
          cli_kvik_err((int)n, "bench: read");
          goto out;
        }
        s = cli_now() - t0;
      } else if (kvik_remote_type(r) == KVIK_REMOTE_HTTP ||
                 kvik_remote_type(r) == KVIK_REMOTE_S3_PUBLIC ||
                 kvik_remote_type(r) == KVIK_REMOTE_S3_PRESIGNED) {
        s = curl_seconds(kvik_remote_type(r) == KVIK_REMOTE_S3_PUBLIC ? kvik_remote_url(r) : url,
                         size, size == (uint64_t)total);
      }
      if (s > 0 && (best[e] < 0 || s < best[e]))
        best[e] = s;
    }
  }
  for (int e = 0; e < 3; e++) {
    if (best[e] < 0)
      continue;
    printf("{\"op\":\"remote-read\",\"engine\":\"%s\",\"baseline\":%s,\"mem\":\"host\","
           "\"bytes\":%llu,\"seconds\":%.6f,\"gbps\":%.3f,\"threads\":%d,\"task_size\":%llu,"
           "\"cpus\":%ld,\"repeat\":%u,\"stat\":\"best\"}\n",
           e == 0   ? "kvik_remote_pread"
           : e == 1 ? "kvik_remote_read"
                    : "curl",
           e ? "true" : "false", (unsigned long long)size, best[e], (double)size / best[e] / 1e9,
           e == 0 ? nthreads : 1, (unsigned long long)(e == 0 ? task : size), ncpu, o.repeat);
  }
  char sz[32];
  printf("\n%s of %s, %ld CPUs, %d threads, task size %llu, best of %u\n",
         cli_fmt_size(size, sz, sizeof sz), kvik_remote_url(r), ncpu, nthreads,
         (unsigned long long)task, o.repeat);
  printf("%-40s %10s %10s %12s\n", "engine", "seconds", "GB/s", "time/pread");
  for (int e = 0; e < 3; e++) {
    if (best[e] < 0)
      continue;
    printf("%-40s %10.3f %10.3f %12.2f\n", names[e], best[e], (double)size / best[e] / 1e9,
           best[0] > 0 ? best[e] / best[0] : 0.0);
  }
  if (best[2] < 0)
    printf("(curl baseline not run: curl not in PATH, or not an unsigned URL)\n");
  ret = CLI_OK;
out:
  cli_free_host(buf);
  kvik_remote_close(r);
  return ret;
}
