/* Shared helpers for kvik's tests; see common.h. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

char t_context[512];

static void print_context(void) {
  if (t_context[0])
    print_error("  in case: %s\n", t_context);
}

char *t_mkdtemp(const char *base) {
  if (!base) {
    base = getenv("TMPDIR");
    if (!base || !*base)
      base = "/tmp";
  }
  size_t n = strlen(base) + 32;
  char *dir = malloc(n);
  if (!dir)
    return NULL;
  snprintf(dir, n, "%s/kvik-test-XXXXXX", base);
  if (!mkdtemp(dir)) {
    printf("mkdtemp under %s: %s\n", base, strerror(errno));
    free(dir);
    return NULL;
  }
  return dir;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (type == FTW_DP)
    return rmdir(path) == 0 ? 0 : (printf("rmdir %s: %s\n", path, strerror(errno)), 0);
  if (unlink(path) != 0)
    printf("unlink %s: %s\n", path, strerror(errno));
  return 0;
}

void t_rmtree(char *dir) {
  if (!dir)
    return;
  nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
  free(dir);
}

char *t_join(const char *dir, const char *name) {
  size_t n = strlen(dir) + strlen(name) + 2;
  char *p = malloc(n);
  assert_non_null(p);
  snprintf(p, n, "%s/%s", dir, name);
  return p;
}

/* splitmix64 finaliser: every input bit affects every output bit. */
static inline uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

/* The pattern is a stream of 64-bit words, word i = mix(i ^ seed'), laid out little-endian, so
 * whole words can be filled and compared at once (8x fewer instrumented accesses under the
 * sanitizers) while any byte can still be computed alone. */
static inline uint64_t pat_word(uint64_t word_index, uint64_t seed) {
  return mix(word_index ^ (seed * 0xd6e8feb86659fd93ULL));
}

uint8_t t_pat_byte(uint64_t off, uint64_t seed) {
  return (uint8_t)(pat_word(off >> 3, seed) >> (8 * (off & 7)));
}

static inline uint64_t to_le(uint64_t w) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return __builtin_bswap64(w);
#else
  return w;
#endif
}

void t_pat_fill(void *buf, size_t n, uint64_t off, uint64_t seed) {
  uint8_t *p = buf;
  size_t i = 0;
  while (i < n && ((off + i) & 7))
    p[i] = t_pat_byte(off + i, seed), i++;
  for (; i + 8 <= n; i += 8) {
    uint64_t w = to_le(pat_word((off + i) >> 3, seed));
    memcpy(p + i, &w, 8);
  }
  for (; i < n; i++)
    p[i] = t_pat_byte(off + i, seed);
}

long long t_pat_find_mismatch(const void *buf, size_t n, uint64_t off, uint64_t seed) {
  const uint8_t *p = buf;
  size_t i = 0;
  while (i < n && ((off + i) & 7)) {
    if (p[i] != t_pat_byte(off + i, seed))
      return (long long)i;
    i++;
  }
  for (; i + 8 <= n; i += 8) {
    uint64_t w = to_le(pat_word((off + i) >> 3, seed)), g;
    memcpy(&g, p + i, 8);
    if (g != w)
      break; /* the byte loop below finds the exact byte */
  }
  for (; i < n; i++)
    if (p[i] != t_pat_byte(off + i, seed))
      return (long long)i;
  return -1;
}

long long t_find_not(const void *buf, size_t n, uint8_t value) {
  const uint8_t *p = buf;
  for (size_t i = 0; i < n; i++)
    if (p[i] != value)
      return (long long)i;
  return -1;
}

static void hexdump_line(char *out, size_t outlen, const uint8_t *p, size_t count) {
  size_t used = 0;
  out[0] = 0;
  for (size_t i = 0; i < count && used + 4 < outlen; i++)
    used += (size_t)snprintf(out + used, outlen - used, "%02x ", p[i]);
}

void t_assert_pattern(const void *buf, size_t n, uint64_t off, uint64_t seed, const char *what,
                      const char *file, int line) {
  long long bad = t_pat_find_mismatch(buf, n, off, seed);
  if (bad < 0)
    return;
  size_t b = (size_t)bad, from = b >= 8 ? b - 8 : 0, to = b + 8 < n ? b + 8 : n;
  uint8_t want[16];
  for (size_t i = from; i < to; i++)
    want[i - from] = t_pat_byte(off + i, seed);
  char got_s[64], want_s[64];
  hexdump_line(got_s, sizeof got_s, (const uint8_t *)buf + from, to - from);
  hexdump_line(want_s, sizeof want_s, want, to - from);
  print_error("%s:%d: %s: %zu bytes at file offset %llu (seed %llu): first difference at byte "
              "%zu (file offset %llu)\n  got      [%zu..%zu): %s\n  expected [%zu..%zu): %s\n",
              file, line, what, n, (unsigned long long)off, (unsigned long long)seed, b,
              (unsigned long long)(off + b), from, to, got_s, from, to, want_s);
  print_context();
  fail_msg("%s", "data differs");
}

void t_assert_filled(const void *buf, size_t n, uint8_t value, const char *what,
                     const char *file, int line) {
  long long bad = t_find_not(buf, n, value);
  if (bad < 0)
    return;
  print_error("%s:%d: %s: byte %lld of %zu is 0x%02x, expected 0x%02x\n", file, line, what, bad,
              n, ((const uint8_t *)buf)[bad], value);
  print_context();
  fail_msg("%s", "data differs");
}

static const char *code_name(long long v) {
  if (v < 0 && v >= -100000)
    return kvik_strerror_name((int)v);
  return "count";
}

void t_fail_code(const char *expr, long long got, long long want, const char *file, int line) {
  print_error("%s:%d: %s returned %lld (%s), expected %lld (%s)\n  kvik_last_error: \"%s\"\n",
              file, line, expr, got, code_name(got), want, code_name(want), kvik_last_error());
  print_context();
  fail_msg("%s", "unexpected return value");
}

void t_assert_contains(const char *haystack, const char *needle, const char *what,
                       const char *file, int line) {
  if (haystack && strstr(haystack, needle))
    return;
  print_error("%s:%d: %s = \"%s\" does not contain \"%s\"\n", file, line, what,
              haystack ? haystack : "(null)", needle);
  print_context();
  fail_msg("%s", "message lacks an expected part");
}

void t_write_pattern_file(const char *path, size_t n, uint64_t seed) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    fail_msg("open %s: %s", path, strerror(errno));
  size_t chunk = 4 * MiB;
  uint8_t *buf = malloc(chunk);
  assert_non_null(buf);
  for (size_t done = 0; done < n;) {
    size_t k = n - done < chunk ? n - done : chunk;
    t_pat_fill(buf, k, done, seed);
    ssize_t w = pwrite(fd, buf, k, (off_t)done);
    if (w <= 0)
      fail_msg("pwrite %s: %s", path, strerror(errno));
    done += (size_t)w;
  }
  free(buf);
  close(fd);
}

long long t_file_size(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0)
    return -errno;
  return (long long)st.st_size;
}

long long t_read_file(const char *path, void *buf, size_t n, uint64_t off) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, (char *)buf + done, n - done, (off_t)(off + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    if (r == 0)
      break;
    done += (size_t)r;
  }
  close(fd);
  return (long long)done;
}

void t_assert_file_pattern(const char *path, size_t n, uint64_t seed, const char *file,
                           int line) {
  long long size = t_file_size(path);
  if (size != (long long)n) {
    print_error("%s:%d: %s is %lld bytes on disk, expected %zu\n", file, line, path, size, n);
    print_context();
    fail_msg("%s", "file size differs");
  }
  uint8_t *buf = malloc(n ? n : 1);
  assert_non_null(buf);
  long long r = t_read_file(path, buf, n, 0);
  if (r != (long long)n) {
    free(buf);
    fail_msg("plain read of %s returned %lld, expected %zu", path, r, n);
  }
  long long bad = t_pat_find_mismatch(buf, n, 0, seed);
  if (bad >= 0) {
    uint8_t got = buf[bad];
    free(buf);
    print_error("%s:%d: %s on disk: byte %lld is 0x%02x, expected 0x%02x\n", file, line, path,
                bad, got, t_pat_byte((uint64_t)bad, seed));
    print_context();
    fail_msg("%s", "file content differs");
  }
  free(buf);
}

void *t_alloc_aligned(size_t n) {
  void *p = NULL;
  int rc = posix_memalign(&p, 4096, n ? n : 1);
  if (rc != 0)
    fail_msg("posix_memalign(%zu): %s", n, strerror(rc));
  return p;
}

void t_clear_kvikio_env(void) {
  for (;;) {
    char name[256] = "";
    for (char **e = environ; *e; e++) {
      if (strncmp(*e, "KVIKIO_", 7) == 0) {
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        if (len < sizeof name) {
          memcpy(name, *e, len);
          name[len] = 0;
          break;
        }
      }
    }
    if (!name[0])
      return;
    unsetenv(name);
  }
}

void t_reset_config(void) {
  t_clear_kvikio_env();
  ASSERT_CODE(kvik_config_reload(), 0);
}

const char *t_direct_io_base(char *fs) {
  static char chosen[4096];
  static char chosen_fs[32];
  static int state; /* 0: not looked, 1: found, 2: none */
  if (state == 0) {
    const char *cands[5] = {getenv("TMPDIR"), "/var/tmp", "/tmp", NULL, NULL};
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd))
      cands[3] = cwd;
    state = 2;
    for (int i = 0; i < 4; i++) {
      if (!cands[i] || !*cands[i])
        continue;
      struct kvik_path_info pi;
      memset(&pi, 0, sizeof pi);
      pi.sz = sizeof pi;
      int rc = kvik_path_info(cands[i], &pi);
      if (rc != 0) {
        printf("# kvik_path_info(%s) = %d (%s): %s\n", cands[i], rc, kvik_strerror_name(rc),
               kvik_last_error());
        continue;
      }
      if (pi.direct_io) {
        snprintf(chosen, sizeof chosen, "%s", cands[i]);
        snprintf(chosen_fs, sizeof chosen_fs, "%s", pi.fs_type);
        state = 1;
        printf("# direct I/O tests use %s (%s, block device \"%s\")\n", chosen, pi.fs_type,
               pi.block_device);
        break;
      }
      printf("# %s (%s) refuses O_DIRECT per kvik_path_info\n", cands[i], pi.fs_type);
    }
    if (state == 2)
      printf("# no candidate directory supports O_DIRECT: direct-I/O settings run buffered\n");
    fflush(stdout);
  }
  if (fs)
    snprintf(fs, 32, "%s", state == 1 ? chosen_fs : "");
  return state == 1 ? chosen : NULL;
}

void t_select(int argc, char **argv) {
  if (argc > 1 && argv[1][0])
    cmocka_set_test_filter(argv[1]);
  setvbuf(stdout, NULL, _IOLBF, 0);
}

const char *t_self_exe(void) {
  static char path[4096];
  if (!path[0]) {
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0 || (size_t)n >= sizeof path - 1)
      snprintf(path, sizeof path, "/proc/self/exe");
    else
      path[n] = '\0';
  }
  return path;
}
