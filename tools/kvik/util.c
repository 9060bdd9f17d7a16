/* Helpers shared by the kvik tool's commands: messages, number parsing and formatting, timing,
 * host buffers, the progress line and the options that map onto kvik's configuration. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

void cli_err(const char *fmt, ...) {
  va_list ap;
  cli_progress_done();
  fputs("kvik: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void cli_kvik_err(int code, const char *fmt, ...) {
  /* Copy the detail first: the pointer is only valid until this thread's next kvik call. */
  char detail[1024];
  const char *last = kvik_last_error();
  va_list ap;

  snprintf(detail, sizeof detail, "%s", last && *last ? last : kvik_strerror(code));
  cli_progress_done();
  fputs("kvik: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, ": %s [%s]\n", detail, kvik_strerror_name(code));
}

int cli_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out) {
  char *end = NULL;
  unsigned long long v;

  if (!text || !isdigit((unsigned char)text[0]))
    return -1;
  errno = 0;
  v = strtoull(text, &end, 10);
  if (errno || *end != '\0' || v < min || v > max)
    return -1;
  *out = v;
  return 0;
}

int cli_parse_size(const char *text, uint64_t *out) {
  static const char suffixes[] = "KMGTPE";
  char *end = NULL;
  unsigned long long v;
  uint64_t mult = 1;

  if (!text || !isdigit((unsigned char)text[0]))
    return -1;
  errno = 0;
  v = strtoull(text, &end, 10);
  if (errno)
    return -1;
  if (*end != '\0') {
    const char *p = strchr(suffixes, toupper((unsigned char)*end));
    if (!p)
      return -1;
    for (ptrdiff_t i = 0; i <= p - suffixes; i++)
      mult *= 1024;
    end++;
    /* Accept "K", "KB", "KiB" (any case) as the same binary multiple. */
    if (*end == 'i' || *end == 'I')
      end++;
    if (*end == 'b' || *end == 'B')
      end++;
    if (*end != '\0')
      return -1;
  }
  if (v > UINT64_MAX / mult)
    return -1;
  *out = (uint64_t)v * mult;
  return 0;
}

int cli_parse_onoff(const char *text) {
  static const char *const on[] = {"on", "true", "yes", "1"};
  static const char *const off[] = {"off", "false", "no", "0"};
  if (!text)
    return -1;
  for (size_t i = 0; i < sizeof on / sizeof on[0]; i++) {
    if (strcasecmp(text, on[i]) == 0)
      return 1;
    if (strcasecmp(text, off[i]) == 0)
      return 0;
  }
  return -1;
}

int cli_parse_compat(const char *text) {
  if (!text)
    return -1;
  if (strcasecmp(text, "auto") == 0)
    return KVIK_COMPAT_AUTO;
  switch (cli_parse_onoff(text)) {
  case 1: return KVIK_COMPAT_ON;
  case 0: return KVIK_COMPAT_OFF;
  default: return -1;
  }
}

const char *cli_compat_name(int compat) {
  switch (compat) {
  case KVIK_COMPAT_OFF: return "off";
  case KVIK_COMPAT_ON: return "on";
  case KVIK_COMPAT_AUTO: return "auto";
  case KVIK_COMPAT_DEFAULT: return "default";
  default: return "?";
  }
}

const char *cli_fmt_size(uint64_t bytes, char *buf, size_t len) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  unsigned u = 0;
  uint64_t whole = bytes;

  /* Exact multiples print as integers ("4 MiB"); others with two decimals ("1.50 GiB"). */
  while (u + 1 < sizeof units / sizeof units[0] && whole >= 1024 && whole % 1024 == 0) {
    whole /= 1024;
    u++;
  }
  if (whole < 1024 || u + 1 == sizeof units / sizeof units[0]) {
    snprintf(buf, len, "%llu %s", (unsigned long long)whole, units[u]);
    return buf;
  }
  double v = (double)bytes;
  u = 0;
  while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
    v /= 1024.0;
    u++;
  }
  snprintf(buf, len, "%.2f %s", v, units[u]);
  return buf;
}

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

bool cli_hugepages;

void *cli_alloc_host(size_t size) {
  long page = sysconf(_SC_PAGESIZE);
  void *p = NULL;

  if (page <= 0)
    page = 4096;
  if (size == 0)
    size = (size_t)page;
  size_t align = cli_hugepages ? (size_t)2 << 20 : (size_t)page;
  if (posix_memalign(&p, align, size) != 0)
    return NULL;
  if (cli_hugepages)
    madvise(p, size, MADV_HUGEPAGE); /* advice only: ignored where THP is off */
  /* Touch every byte now, so page faults never land inside a timed region. */
  memset(p, 0, size);
  return p;
}

void cli_free_host(void *p) { free(p); }

/* Whether a progress line is on screen now; only the main thread draws it. */
static bool progress_shown;

void cli_progress(const char *fmt, ...) {
  static int tty = -1;
  va_list ap;

  if (tty < 0)
    tty = isatty(STDERR_FILENO);
  if (!tty)
    return;
  fputs("\r\033[K", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fflush(stderr);
  progress_shown = true;
}

void cli_progress_done(void) {
  if (!progress_shown)
    return;
  fputs("\r\033[K", stderr);
  fflush(stderr);
  progress_shown = false;
}

void cli_io_settings_init(struct cli_io_settings *s) {
  memset(s, 0, sizeof *s);
  s->direct_io = -1;
  s->compat = KVIK_COMPAT_DEFAULT;
}

static int set_u64(enum kvik_cfg key, uint64_t value) {
  int rc = kvik_config_set_u64(key, value);
  if (rc < 0)
    cli_kvik_err(rc, "cannot set %s to %llu", kvik_config_name(key), (unsigned long long)value);
  return rc;
}

int cli_io_settings_apply(const struct cli_io_settings *s, kvik_pool **pool) {
  int rc;

  *pool = NULL;
  rc = kvik_config_init();
  if (rc < 0) {
    cli_kvik_err(rc, "configuration");
    return CLI_FAIL;
  }
  if (s->task_size && set_u64(KVIK_CFG_TASK_SIZE, s->task_size) < 0)
    return CLI_FAIL;
  if (s->direct_io >= 0 && (set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)s->direct_io) < 0 ||
                            set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)s->direct_io) < 0))
    return CLI_FAIL;
  if (s->threads) {
    kvik_pool *def = NULL;
    /* The setting validates the count against kvik's bounds (with its own message); the
     * resize applies it to the default pool, which may already exist. The pool is then passed
     * per call, so per-block-device pools do not override --threads. */
    if (set_u64(KVIK_CFG_NTHREADS, s->threads) < 0)
      return CLI_FAIL;
    rc = kvik_pool_default(&def);
    if (rc < 0) {
      cli_kvik_err(rc, "default thread pool");
      return CLI_FAIL;
    }
    rc = kvik_pool_resize(def, (unsigned)s->threads);
    if (rc < 0) {
      cli_kvik_err(rc, "cannot resize the thread pool to %llu threads",
                   (unsigned long long)s->threads);
      return CLI_FAIL;
    }
    *pool = def;
  }
  return CLI_OK;
}
