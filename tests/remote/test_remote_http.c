/* Remote reads against nginx on loopback: sizes, types, the read grid (sizes x offsets x
 * threads x task sizes, into host memory and, where a GPU is present, device memory), 404s,
 * connection reuse, closing while a read is in flight, and no secret in verbose logs. */
#include "common.h"

#include "rt.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct rt_server srv;
static char *www;

static const size_t SIZES[] = {0, 1, 10, 100, 1000, 4 * MiB + 3, 128 * MiB};
#define NSIZES (sizeof SIZES / sizeof SIZES[0])
#define SEED 5

static void url_of(char *out, size_t len, size_t size) {
  snprintf(out, len, "%s/f%zu.bin", srv.base, size);
}

/* ---- device memory through the real driver, when there is one ------------------------------ */

static struct {
  void *lib;
  int ok;
  int (*cuInit)(unsigned);
  int (*cuDeviceGet)(int *, int);
  int (*cuDevicePrimaryCtxRetain)(void **, int);
  int (*cuCtxPushCurrent)(void *);
  int (*cuCtxPopCurrent)(void **);
  int (*cuMemAlloc)(unsigned long long *, size_t);
  int (*cuMemFree)(unsigned long long);
  int (*cuMemcpyDtoH)(void *, unsigned long long, size_t);
  int (*cuMemsetD8)(unsigned long long, unsigned char, size_t);
  void *ctx;
  char why[256];
} cu;

static bool cuda_ready(void) {
  if (cu.ok)
    return cu.ok > 0;
  cu.ok = -1;
  cu.lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!cu.lib) {
    snprintf(cu.why, sizeof cu.why, "no libcuda.so.1 (%s)", dlerror());
    return false;
  }
#define LOAD(field, sym)                                                                           \
  if (!(*(void **)&cu.field = dlsym(cu.lib, sym))) {                                               \
    snprintf(cu.why, sizeof cu.why, "libcuda has no %s", sym);                                     \
    return false;                                                                                  \
  }
  LOAD(cuInit, "cuInit");
  LOAD(cuDeviceGet, "cuDeviceGet");
  LOAD(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  LOAD(cuCtxPushCurrent, "cuCtxPushCurrent_v2");
  LOAD(cuCtxPopCurrent, "cuCtxPopCurrent_v2");
  LOAD(cuMemAlloc, "cuMemAlloc_v2");
  LOAD(cuMemFree, "cuMemFree_v2");
  LOAD(cuMemcpyDtoH, "cuMemcpyDtoH_v2");
  LOAD(cuMemsetD8, "cuMemsetD8_v2");
#undef LOAD
  int dev;
  if (cu.cuInit(0) != 0 || cu.cuDeviceGet(&dev, 0) != 0 ||
      cu.cuDevicePrimaryCtxRetain(&cu.ctx, dev) != 0) {
    snprintf(cu.why, sizeof cu.why, "no usable CUDA device");
    return false;
  }
  cu.ok = 1;
  return true;
}

static void *dev_alloc(size_t n) {
  unsigned long long p = 0;
  cu.cuCtxPushCurrent(cu.ctx);
  if (cu.cuMemAlloc(&p, n ? n : 1) != 0)
    fail_msg("cuMemAlloc(%zu) failed", n);
  cu.cuMemsetD8(p, 0xEE, n ? n : 1);
  void *old;
  cu.cuCtxPopCurrent(&old);
  return (void *)(uintptr_t)p;
}

static void dev_to_host(void *dst, void *src, size_t n) {
  cu.cuCtxPushCurrent(cu.ctx);
  if (n && cu.cuMemcpyDtoH(dst, (unsigned long long)(uintptr_t)src, n) != 0)
    fail_msg("cuMemcpyDtoH failed");
  void *old;
  cu.cuCtxPopCurrent(&old);
}

static void dev_free(void *p) {
  cu.cuCtxPushCurrent(cu.ctx);
  cu.cuMemFree((unsigned long long)(uintptr_t)p);
  void *old;
  cu.cuCtxPopCurrent(&old);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void size_and_type_from_head(void **state) {
  (void)state;
  for (size_t i = 0; i < NSIZES; i++) {
    char url[256];
    url_of(url, sizeof url, SIZES[i]);
    kvik_remote *r;
    ASSERT_CODE(kvik_remote_open(&r, url, NULL), 0);
    ASSERT_CODE(kvik_remote_type(r), KVIK_REMOTE_HTTP);
    ASSERT_CODE(kvik_remote_size(r), (long long)SIZES[i]);
    assert_string_equal(kvik_remote_url(r), url);
    ASSERT_CODE(kvik_remote_close(r), 0);
  }
}

static void missing_object_is_a_named_404(void **state) {
  (void)state;
  char url[256];
  snprintf(url, sizeof url, "%s/no-such-file.bin", srv.base);
  kvik_remote *r = NULL;
  ASSERT_CODE(kvik_remote_open(&r, url, NULL), KVIK_EHTTP);
  ASSERT_CONTAINS(kvik_last_error(), "HTTP 404");
  ASSERT_CONTAINS(kvik_last_error(), url);
  assert_null(r);
  /* With the size given, the 404 comes from the read, and no error page reaches the buffer. */
  struct kvik_remote_opts o = {.sz = sizeof o, .size = 1000};
  ASSERT_CODE(kvik_remote_open(&r, url, &o), 0);
  unsigned char buf[1000];
  memset(buf, 0xEE, sizeof buf);
  ASSERT_CODE(kvik_remote_read(r, buf, sizeof buf, 0), KVIK_EHTTP);
  ASSERT_CONTAINS(kvik_last_error(), "HTTP 404");
  ASSERT_FILLED(buf, sizeof buf, 0xEE, "buffer after a 404");
  kvik_remote_close(r);
}

/* Reads [off, off+len) of the object of `size` bytes with pread on a pool of nthreads and
 * task size task; host or device; checks every byte and the guard after the buffer. */
static void check_pread(kvik_remote *r, size_t size, size_t off, size_t len, kvik_pool *pool,
                        size_t task, bool device, unsigned char *host) {
  const size_t guard = 64;
  void *buf = device ? dev_alloc(len + guard) : host;
  if (!device)
    memset(buf, 0xEE, len + guard);
  struct kvik_io_opts io = {.sz = sizeof io, .task_size = task, .pool = pool};
  kvik_future *f;
  int rc = kvik_remote_pread(r, buf, len, (int64_t)off, &io, &f);
  if (rc)
    fail_msg("pread size %zu off %zu len %zu task %zu: %d %s", size, off, len, task, rc,
             kvik_last_error());
  ssize_t n = kvik_future_wait(f);
  if (n != (ssize_t)len)
    fail_msg("pread size %zu off %zu len %zu task %zu %s: got %zd (%s)", size, off, len, task,
             device ? "device" : "host", n, kvik_last_error());
  if (device) {
    dev_to_host(host, buf, len + guard);
    dev_free(buf);
  }
  char what[160];
  snprintf(what, sizeof what, "object %zu offset %zu len %zu task %zu %s", size, off, len, task,
           device ? "device" : "host");
  ASSERT_PATTERN(host, len, off, SEED, what);
  ASSERT_FILLED(host + len, guard, 0xEE, what);
}

static void run_grid(bool device) {
  static const unsigned THREADS[] = {1, 3, 16};
  static const size_t TASKS[] = {99, 999, 1 * MiB};
  const size_t max_ranges = 2048; /* a 128 MiB read in 99-byte ranges would be 1.4M requests */
  unsigned char *host = t_alloc_aligned(128 * MiB + 4096);
  long reads = 0;
  for (size_t t = 0; t < 3; t++) {
    kvik_pool *pool;
    ASSERT_CODE(kvik_pool_create(&pool, THREADS[t]), 0);
    for (size_t i = 0; i < NSIZES; i++) {
      size_t size = SIZES[i];
      char url[256];
      url_of(url, sizeof url, size);
      kvik_remote *r;
      ASSERT_CODE(kvik_remote_open(&r, url, NULL), 0);
      const size_t offs[] = {0, 1, 8601 * 8, size ? size - 1 : 0};
      for (size_t o = 0; o < 4; o++) {
        size_t off = offs[o];
        if (off > size || (o > 0 && off == offs[o - 1]) || (off == size && size > 0))
          continue;
        for (size_t k = 0; k < 3; k++) {
          size_t task = TASKS[k];
          size_t len = size - off;
          if (len / task > max_ranges) {
            /* Capped: read the first and the last max_ranges ranges of the remainder. */
            size_t cap = max_ranges * task;
            check_pread(r, size, off, cap, pool, task, device, host);
            check_pread(r, size, size - cap, cap, pool, task, device, host);
            reads += 2;
          } else {
            check_pread(r, size, off, len, pool, task, device, host);
            reads++;
          }
        }
        if (t == 0) {
          /* The blocking read: one request on this thread. */
          size_t len = size - off;
          void *buf = device ? dev_alloc(len) : host;
          ASSERT_CODE(kvik_remote_read(r, buf, len, (int64_t)off), (long long)len);
          if (device) {
            dev_to_host(host, buf, len);
            dev_free(buf);
          }
          ASSERT_PATTERN(host, len, off, SEED, "kvik_remote_read");
          reads++;
        }
      }
      ASSERT_CODE(kvik_remote_close(r), 0);
    }
    ASSERT_CODE(kvik_pool_destroy(pool), 0);
  }
  free(host);
  printf("read grid (%s memory): %ld reads compared\n", device ? "device" : "host", reads);
}

static void read_grid_host(void **state) {
  (void)state;
  run_grid(false);
}

static void read_grid_device(void **state) {
  (void)state;
  if (!cuda_ready())
    SKIP_BECAUSE("device memory: %s", cu.why);
  run_grid(true);
}

static void connections_are_reused(void **state) {
  (void)state;
  char body[512];
  long a0, h0, r0, a1, h1, r1;
  ASSERT_CODE(rt_http_get(srv.port, "/nginx_status", body, sizeof body), 200);
  assert_int_equal(sscanf(strstr(body, "requests") + 9, "%ld %ld %ld", &a0, &h0, &r0), 3);
  char url[256];
  url_of(url, sizeof url, 4 * MiB + 3);
  kvik_remote *r;
  ASSERT_CODE(kvik_remote_open(&r, url, NULL), 0);
  unsigned char *buf = t_alloc_aligned(4 * MiB + 3);
  kvik_pool *pool;
  ASSERT_CODE(kvik_pool_create(&pool, 4), 0);
  struct kvik_io_opts io = {.sz = sizeof io, .task_size = 16 * KiB, .pool = pool};
  for (int i = 0; i < 3; i++) {
    kvik_future *f;
    ASSERT_CODE(kvik_remote_pread(r, buf, 4 * MiB + 3, 0, &io, &f), 0);
    ASSERT_CODE(kvik_future_wait(f), 4 * MiB + 3);
  }
  ASSERT_PATTERN(buf, 4 * MiB + 3, 0, SEED, "reused connections");
  ASSERT_CODE(rt_http_get(srv.port, "/nginx_status", body, sizeof body), 200);
  assert_int_equal(sscanf(strstr(body, "requests") + 9, "%ld %ld %ld", &a1, &h1, &r1), 3);
  long conns = a1 - a0 - 1, reqs = r1 - r0 - 1; /* less the status request itself */
  printf("%ld requests over %ld new connections\n", reqs, conns);
  if (reqs < 3 * 257 || conns > 16)
    fail_msg("%ld requests opened %ld connections: connections are not reused", reqs, conns);
  kvik_pool_destroy(pool);
  kvik_remote_close(r);
  free(buf);
}

static void close_while_reading_is_safe(void **state) {
  (void)state;
  char url[256];
  url_of(url, sizeof url, 4 * MiB + 3);
  kvik_remote *r;
  ASSERT_CODE(kvik_remote_open(&r, url, NULL), 0);
  unsigned char *buf = t_alloc_aligned(4 * MiB + 3);
  struct kvik_io_opts io = {.sz = sizeof io, .task_size = 64 * KiB};
  kvik_future *f;
  ASSERT_CODE(kvik_remote_pread(r, buf, 4 * MiB + 3, 0, &io, &f), 0);
  ASSERT_CODE(kvik_remote_close(r), 0); /* the read keeps what it needs */
  ASSERT_CODE(kvik_future_wait(f), 4 * MiB + 3);
  ASSERT_PATTERN(buf, 4 * MiB + 3, 0, SEED, "read after close");
  free(buf);
}

static void verbose_log_has_no_secret(void **state) {
  (void)state;
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_REMOTE_VERBOSE, 1), 0);
  rt_log_capture(KVIK_LOG_TRACE);
  char url[512];
  /* A password in the URL (sent as Basic auth) and a signature-like query parameter. */
  snprintf(url, sizeof url, "http://kvikuser:PASSWORD1234@127.0.0.1:%d/f1000.bin?sig=SIGSECRET99",
           srv.port);
  kvik_remote *r;
  ASSERT_CODE(kvik_remote_open(&r, url, NULL), 0);
  char buf[1000];
  ASSERT_CODE(kvik_remote_read(r, buf, 1000, 0), 1000);
  ASSERT_PATTERN(buf, 1000, 0, SEED, "read with a password in the URL");
  ASSERT_CONTAINS(kvik_remote_url(r), "kvikuser:***@");
  kvik_remote_close(r);
  snprintf(url, sizeof url, "http://kvikuser:PASSWORD1234@127.0.0.1:%d/missing?sig=SIGSECRET99",
           srv.port);
  ASSERT_CODE(kvik_remote_open(&r, url, NULL), KVIK_EHTTP);
  const char *err = kvik_last_error();
  kvik_set_log(NULL, NULL, KVIK_LOG_OFF);
  kvik_config_set_u64(KVIK_CFG_REMOTE_VERBOSE, 0);
  ASSERT_CONTAINS(rt_log_text, "curl > GET /f1000.bin");
  ASSERT_CONTAINS(rt_log_text, "Authorization: ***");
  /* base64("kvikuser:PASSWORD1234") */
  static const char *const secrets[] = {"PASSWORD1234", "SIGSECRET99",
                                        "a3Zpa3VzZXI6UEFTU1dPUkQxMjM0"};
  for (size_t i = 0; i < 3; i++) {
    if (strstr(rt_log_text, secrets[i]))
      fail_msg("log holds %s:\n%s", secrets[i], rt_log_text);
    if (strstr(err, secrets[i]))
      fail_msg("error holds %s: %s", secrets[i], err);
  }
}

static int setup(void **state) {
  (void)state;
  www = t_mkdtemp(NULL);
  if (!www)
    return -1;
  chmod(www, 0755);
  for (size_t i = 0; i < NSIZES; i++) {
    char name[64];
    snprintf(name, sizeof name, "f%zu.bin", SIZES[i]);
    char *p = t_join(www, name);
    t_write_pattern_file(p, SIZES[i], SEED);
    chmod(p, 0644);
    free(p);
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  rt_stop(&srv);
  t_rmtree(www);
  return 0;
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  t_clear_kvikio_env();
  kvik_remote *probe;
  struct kvik_remote_opts o = {.sz = sizeof o, .size = 1};
  if (kvik_remote_open(&probe, "http://127.0.0.1:9/x", &o) == KVIK_EUNSUPPORTED) {
    printf("SKIP remote_http: %s\n", kvik_last_error());
    return 77;
  }
  kvik_remote_close(probe);
  if (setup(NULL) != 0)
    return 1;
  char why[4096];
  if (rt_nginx_start(&srv, www, why, sizeof why) != 0) {
    printf("SKIP remote_http: %s\n", why);
    t_rmtree(www);
    return 77;
  }
  printf("nginx on %s serving %s\n", srv.base, www);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(size_and_type_from_head),
      cmocka_unit_test(missing_object_is_a_named_404),
      cmocka_unit_test(read_grid_host),
      cmocka_unit_test(read_grid_device),
      cmocka_unit_test(connections_are_reused),
      cmocka_unit_test(close_while_reading_is_safe),
      cmocka_unit_test(verbose_log_has_no_secret),
  };
  int rc = cmocka_run_group_tests_name("remote_http", tests, NULL, teardown);
  return rc;
}
