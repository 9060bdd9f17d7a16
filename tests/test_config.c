/* Configuration: every KVIKIO_* variable kvikio 26.10 reads, with kvikio's parsing; defaults;
 * invalid values (KVIK_ECONFIG naming the variable and the value); setters and bounds; sources.
 *
 * Each case sets the environment, calls kvik_config_reload() and unsets what it set. The
 * first-use behaviour (config read once, error sticky until reload) needs a process whose
 * configuration was never read, so those cases re-run this executable with a --child flag. */
#include "common.h"

#include "core/core.h"

#include <errno.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t get_u64(enum kvik_cfg key) {
  uint64_t v = UINT64_MAX - 1;
  ASSERT_CODE(kvik_config_get_u64(key, &v), 0);
  return v;
}

#define ASSERT_U64(key, want)                                                                    \
  do {                                                                                           \
    uint64_t got_ = get_u64(key), want_ = (want);                                                \
    if (got_ != want_)                                                                           \
      fail_msg("%s = %" PRIu64 ", expected %" PRIu64, kvik_config_name(key), got_, want_);        \
  } while (0)

#define ASSERT_SOURCE(key, want)                                                                 \
  do {                                                                                           \
    int got_ = kvik_config_source(key);                                                          \
    if (got_ != (want))                                                                          \
      fail_msg("kvik_config_source(%s) = %d, expected %d (0 default, 1 env, 2 set)",              \
               kvik_config_name(key), got_, (int)(want));                                        \
  } while (0)

static void get_str(enum kvik_cfg key, char *buf, size_t len) {
  int n = kvik_config_get_str(key, buf, len);
  if (n < 0)
    fail_msg("kvik_config_get_str(%s) = %d (%s): %s", kvik_config_name(key), n,
             kvik_strerror_name(n), kvik_last_error());
}

/* Sets var=value, reloads, and expects success. */
static void env_ok(const char *var, const char *value) {
  setenv(var, value, 1);
  int rc = kvik_config_reload();
  if (rc != 0)
    fail_msg("%s=\"%s\": kvik_config_reload() = %d (%s), expected 0: %s", var, value, rc,
             kvik_strerror_name(rc), kvik_last_error());
}

/* Sets var=value, reloads, expects KVIK_ECONFIG with a message naming var and value; then
 * unsets var and reloads (which must succeed again). */
static void env_bad(const char *var, const char *value) {
  setenv(var, value, 1);
  int rc = kvik_config_reload();
  char msg[KVIK_ERRMSG_MAX + 1];
  snprintf(msg, sizeof msg, "%s", kvik_last_error());
  unsetenv(var);
  if (rc != KVIK_ECONFIG)
    fail_msg("%s=\"%s\": kvik_config_reload() = %d (%s), expected KVIK_ECONFIG", var, value, rc,
             kvik_strerror_name(rc));
  if (!strstr(msg, var) || (value[0] && !strstr(msg, value)))
    fail_msg("%s=\"%s\": message \"%s\" should name the variable and the value", var, value,
             msg);
  rc = kvik_config_reload();
  if (rc != 0)
    fail_msg("after unsetting %s, kvik_config_reload() = %d: %s", var, rc, kvik_last_error());
}

static int setup(void **state) {
  (void)state;
  t_clear_kvikio_env();
  return kvik_config_reload() == 0 ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  t_clear_kvikio_env();
  return kvik_config_reload() == 0 ? 0 : -1;
}

/* ---- first use, in a fresh process -------------------------------------------------------- */

/* Runs this executable with `--child mode` and extra environment (NAME=VALUE strings, NULL
 * terminated); returns its exit status (0 = every check in the child passed). */
static int run_child(const char *mode, const char *const *env_add) {
  t_clear_kvikio_env();
  for (const char *const *e = env_add; e && *e; e++) {
    char name[128];
    const char *eq = strchr(*e, '=');
    snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
    setenv(name, eq + 1, 1);
  }
  char *argv[] = {(char *)t_self_exe(), "--child", (char *)mode, NULL};
  pid_t pid;
  int rc = posix_spawn(&pid, t_self_exe(), NULL, NULL, argv, environ);
  t_clear_kvikio_env();
  if (rc != 0)
    fail_msg("posix_spawn: %s", strerror(rc));
  int status = 0;
  if (waitpid(pid, &status, 0) != pid)
    fail_msg("waitpid: %s", strerror(errno));
  if (WIFSIGNALED(status))
    fail_msg("child %s killed by signal %d", mode, WTERMSIG(status));
  return WEXITSTATUS(status);
}

#define CHILD_CHECK(step, cond)                                                                  \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      printf("child step %d failed: %s (last error: \"%s\")\n", step, #cond, kvik_last_error()); \
      fflush(stdout);                                                                            \
      return step;                                                                               \
    }                                                                                            \
  } while (0)

/* KVIKIO_NTHREADS=abc in the environment of a process that never read its configuration. */
static int child_bad_env_init(void) {
  CHILD_CHECK(1, kvik_config_init() == KVIK_ECONFIG);
  CHILD_CHECK(2, strstr(kvik_last_error(), "KVIKIO_NTHREADS") != NULL);
  CHILD_CHECK(3, strstr(kvik_last_error(), "abc") != NULL);
  /* Sticky: every call that needs the configuration returns the same error. */
  CHILD_CHECK(4, kvik_config_init() == KVIK_ECONFIG);
  kvik_file *f = NULL;
  CHILD_CHECK(5, kvik_file_open(&f, "/proc/self/exe", "r", 0, KVIK_COMPAT_DEFAULT) ==
                     KVIK_ECONFIG);
  CHILD_CHECK(6, f == NULL);
  CHILD_CHECK(7, strstr(kvik_last_error(), "KVIKIO_NTHREADS") != NULL);
  kvik_pool *p = NULL;
  CHILD_CHECK(8, kvik_pool_default(&p) == KVIK_ECONFIG);
  /* Fixing the environment is not enough: the configuration is read once ... */
  unsetenv("KVIKIO_NTHREADS");
  CHILD_CHECK(9, kvik_config_init() == KVIK_ECONFIG);
  /* ... until kvik_config_reload(). */
  CHILD_CHECK(10, kvik_config_reload() == 0);
  CHILD_CHECK(11, kvik_config_init() == 0);
  CHILD_CHECK(12, kvik_file_open(&f, "/proc/self/exe", "r", 0, KVIK_COMPAT_ON) == 0);
  CHILD_CHECK(13, kvik_file_close(f) == 0);
  return 0;
}

/* Same, but the first call is an open: configuration is read on first use. */
static int child_bad_env_first_use(void) {
  kvik_file *f = NULL;
  CHILD_CHECK(1, kvik_file_open(&f, "/proc/self/exe", "r", 0, KVIK_COMPAT_DEFAULT) ==
                     KVIK_ECONFIG);
  CHILD_CHECK(2, strstr(kvik_last_error(), "KVIKIO_TASK_SIZE") != NULL);
  CHILD_CHECK(3, strstr(kvik_last_error(), "12Q") != NULL);
  CHILD_CHECK(4, f == NULL);
  return 0;
}

/* The environment is read once: a change after first use has no effect without a reload. */
static int child_read_once(void) {
  uint64_t v = 0;
  CHILD_CHECK(1, kvik_config_init() == 0);
  CHILD_CHECK(2, kvik_config_get_u64(KVIK_CFG_TASK_SIZE, &v) == 0 && v == 65536);
  CHILD_CHECK(3, kvik_config_source(KVIK_CFG_TASK_SIZE) == KVIK_CFG_SRC_ENV);
  setenv("KVIKIO_TASK_SIZE", "131072", 1);
  CHILD_CHECK(4, kvik_config_init() == 0);
  CHILD_CHECK(5, kvik_config_get_u64(KVIK_CFG_TASK_SIZE, &v) == 0 && v == 65536);
  CHILD_CHECK(6, kvik_config_reload() == 0);
  CHILD_CHECK(7, kvik_config_get_u64(KVIK_CFG_TASK_SIZE, &v) == 0 && v == 131072);
  return 0;
}

static void first_use_with_bad_env(void **state) {
  (void)state;
  const char *env1[] = {"KVIKIO_NTHREADS=abc", NULL};
  ASSERT_CODE(run_child("bad_env_init", env1), 0);
  const char *env2[] = {"KVIKIO_TASK_SIZE=12Q", NULL};
  ASSERT_CODE(run_child("bad_env_first_use", env2), 0);
  const char *env3[] = {"KVIKIO_TASK_SIZE=64K", NULL};
  ASSERT_CODE(run_child("read_once", env3), 0);
}

/* ---- names, types, defaults --------------------------------------------------------------- */

static const struct {
  enum kvik_cfg key;
  const char *name;
  int type;
} table[] = {
    {KVIK_CFG_COMPAT_MODE, "KVIKIO_COMPAT_MODE", KVIK_CFG_TYPE_ENUM},
    {KVIK_CFG_NTHREADS, "KVIKIO_NTHREADS", KVIK_CFG_TYPE_U64},
    {KVIK_CFG_TASK_SIZE, "KVIKIO_TASK_SIZE", KVIK_CFG_TYPE_SIZE},
    {KVIK_CFG_GDS_THRESHOLD, "KVIKIO_GDS_THRESHOLD", KVIK_CFG_TYPE_SIZE},
    {KVIK_CFG_BOUNCE_BUFFER_SIZE, "KVIKIO_BOUNCE_BUFFER_SIZE", KVIK_CFG_TYPE_SIZE},
    {KVIK_CFG_AUTO_DIRECT_IO_READ, "KVIKIO_AUTO_DIRECT_IO_READ", KVIK_CFG_TYPE_BOOL},
    {KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD, "KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD",
     KVIK_CFG_TYPE_BOOL},
    {KVIK_CFG_AUTO_DIRECT_IO_WRITE, "KVIKIO_AUTO_DIRECT_IO_WRITE", KVIK_CFG_TYPE_BOOL},
    {KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE, "KVIKIO_THREAD_POOL_PER_BLOCK_DEVICE",
     KVIK_CFG_TYPE_BOOL},
    {KVIK_CFG_HTTP_MAX_ATTEMPTS, "KVIKIO_HTTP_MAX_ATTEMPTS", KVIK_CFG_TYPE_U64},
    {KVIK_CFG_HTTP_TIMEOUT, "KVIKIO_HTTP_TIMEOUT", KVIK_CFG_TYPE_U64},
    {KVIK_CFG_HTTP_STATUS_CODES, "KVIKIO_HTTP_STATUS_CODES", KVIK_CFG_TYPE_STRING},
    {KVIK_CFG_REMOTE_VERBOSE, "KVIKIO_REMOTE_VERBOSE", KVIK_CFG_TYPE_BOOL},
    {KVIK_CFG_WEBHDFS_USERNAME, "KVIKIO_WEBHDFS_USERNAME", KVIK_CFG_TYPE_STRING},
    {KVIK_CFG_LOG_LEVEL, "KVIKIO_LOG_LEVEL", KVIK_CFG_TYPE_ENUM},
    {KVIK_CFG_LOG_FILE, "KVIKIO_LOG_FILE", KVIK_CFG_TYPE_STRING},
    {KVIK_CFG_PREFER_CUFILE_COMPAT, "KVIK_PREFER_CUFILE_COMPAT", KVIK_CFG_TYPE_BOOL},
    {KVIK_CFG_STREAM_FALLBACK, "KVIK_STREAM_FALLBACK", KVIK_CFG_TYPE_BOOL},
};
#define NKEYS (sizeof table / sizeof table[0])

static bool is_numeric(enum kvik_cfg key) {
  return kvik_config_type(key) != KVIK_CFG_TYPE_STRING;
}

static void names_and_types(void **state) {
  (void)state;
  assert_int_equal(NKEYS, KVIK_CFG_COUNT);
  for (size_t i = 0; i < NKEYS; i++) {
    const char *name = kvik_config_name(table[i].key);
    if (!name || strcmp(name, table[i].name) != 0)
      fail_msg("kvik_config_name(%d) = \"%s\", expected \"%s\"", (int)table[i].key,
               name ? name : "(null)", table[i].name);
    if (kvik_config_type(table[i].key) != table[i].type)
      fail_msg("kvik_config_type(%s) = %d, expected %d", table[i].name,
               kvik_config_type(table[i].key), table[i].type);
  }
  assert_null(kvik_config_name(KVIK_CFG_COUNT));
  assert_null(kvik_config_name((enum kvik_cfg)-1));
  assert_true(kvik_config_type(KVIK_CFG_COUNT) < 0);
  assert_true(kvik_config_source(KVIK_CFG_COUNT) < 0);
  uint64_t v, lo, hi;
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_COUNT, &v), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_COUNT, 1), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_bounds(KVIK_CFG_COUNT, &lo, &hi), KVIK_EINVAL);
  char buf[16];
  assert_true(kvik_config_get_str(KVIK_CFG_COUNT, buf, sizeof buf) < 0);
  assert_true(kvik_config_set_str(KVIK_CFG_COUNT, "1") < 0);
}

static void defaults_match_the_issue(void **state) {
  (void)state;
  ASSERT_U64(KVIK_CFG_COMPAT_MODE, KVIK_COMPAT_AUTO);
  ASSERT_U64(KVIK_CFG_COMPAT_MODE, 2);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  assert_true(cpus >= 1);
  ASSERT_U64(KVIK_CFG_NTHREADS, (uint64_t)(cpus < 64 ? cpus : 64));
  ASSERT_U64(KVIK_CFG_TASK_SIZE, 4 * MiB);
  ASSERT_U64(KVIK_CFG_GDS_THRESHOLD, 16 * KiB);
  ASSERT_U64(KVIK_CFG_BOUNCE_BUFFER_SIZE, 16 * MiB);
  ASSERT_U64(KVIK_CFG_AUTO_DIRECT_IO_READ, 0);
  ASSERT_U64(KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD, 0);
  ASSERT_U64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, 1);
  ASSERT_U64(KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE, 0);
  ASSERT_U64(KVIK_CFG_HTTP_MAX_ATTEMPTS, 3);
  ASSERT_U64(KVIK_CFG_HTTP_TIMEOUT, 60);
  ASSERT_U64(KVIK_CFG_REMOTE_VERBOSE, 0);
  char buf[128];
  get_str(KVIK_CFG_HTTP_STATUS_CODES, buf, sizeof buf);
  assert_string_equal(buf, "429,500,502,503,504");
  get_str(KVIK_CFG_WEBHDFS_USERNAME, buf, sizeof buf);
  assert_string_equal(buf, "");
  get_str(KVIK_CFG_LOG_FILE, buf, sizeof buf);
  assert_string_equal(buf, "");
  for (size_t i = 0; i < NKEYS; i++)
    ASSERT_SOURCE(table[i].key, KVIK_CFG_SRC_DEFAULT);
  /* A string setting has no numeric value. */
  uint64_t v;
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_HTTP_STATUS_CODES, &v), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_WEBHDFS_USERNAME, &v), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_LOG_FILE, 1), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_TASK_SIZE, NULL), KVIK_EINVAL);
}

/* get_str formats every setting so that set_str parses it back to the same value. */
static void get_str_round_trips(void **state) {
  (void)state;
  for (size_t i = 0; i < NKEYS; i++) {
    enum kvik_cfg key = table[i].key;
    char text[512], again[512];
    get_str(key, text, sizeof text);
    uint64_t before = 0, after = 0;
    if (is_numeric(key))
      before = get_u64(key);
    int rc = kvik_config_set_str(key, text);
    if (rc != 0)
      fail_msg("kvik_config_set_str(%s, \"%s\") = %d (%s): %s", table[i].name, text, rc,
               kvik_strerror_name(rc), kvik_last_error());
    get_str(key, again, sizeof again);
    assert_string_equal(text, again);
    if (is_numeric(key)) {
      after = get_u64(key);
      if (before != after)
        fail_msg("%s: \"%s\" parsed back as %" PRIu64 ", was %" PRIu64, table[i].name, text,
                 after, before);
    }
    ASSERT_SOURCE(key, KVIK_CFG_SRC_SET);
  }
}

static void get_str_truncates_like_snprintf(void **state) {
  (void)state;
  char small[4] = "xxx";
  int n = kvik_config_get_str(KVIK_CFG_HTTP_STATUS_CODES, small, sizeof small);
  ASSERT_CODE(n, (int)strlen("429,500,502,503,504"));
  assert_string_equal(small, "429");
  char one[1] = {'x'};
  n = kvik_config_get_str(KVIK_CFG_HTTP_STATUS_CODES, one, sizeof one);
  ASSERT_CODE(n, (int)strlen("429,500,502,503,504"));
  assert_int_equal(one[0], 0);
}

/* ---- parsing ---------------------------------------------------------------------------- */

static void compat_mode_values(void **state) {
  (void)state;
  static const struct {
    const char *text;
    uint64_t want;
  } ok[] = {{"ON", KVIK_COMPAT_ON},     {"on", KVIK_COMPAT_ON},      {"On", KVIK_COMPAT_ON},
            {"true", KVIK_COMPAT_ON},   {"TRUE", KVIK_COMPAT_ON},    {"yes", KVIK_COMPAT_ON},
            {"YeS", KVIK_COMPAT_ON},    {"1", KVIK_COMPAT_ON},       {"OFF", KVIK_COMPAT_OFF},
            {"off", KVIK_COMPAT_OFF},   {"false", KVIK_COMPAT_OFF},  {"False", KVIK_COMPAT_OFF},
            {"no", KVIK_COMPAT_OFF},    {"NO", KVIK_COMPAT_OFF},     {"0", KVIK_COMPAT_OFF},
            {"AUTO", KVIK_COMPAT_AUTO}, {"auto", KVIK_COMPAT_AUTO},  {"Auto", KVIK_COMPAT_AUTO}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    env_ok("KVIKIO_COMPAT_MODE", ok[i].text);
    uint64_t got = get_u64(KVIK_CFG_COMPAT_MODE);
    if (got != ok[i].want)
      fail_msg("KVIKIO_COMPAT_MODE=%s gives %" PRIu64 ", expected %" PRIu64, ok[i].text, got,
               ok[i].want);
    ASSERT_SOURCE(KVIK_CFG_COMPAT_MODE, KVIK_CFG_SRC_ENV);
  }
  unsetenv("KVIKIO_COMPAT_MODE");
  const char *bad[] = {"maybe", "2", "onn", "enabled", "autox"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    env_bad("KVIKIO_COMPAT_MODE", bad[i]);
  ASSERT_U64(KVIK_CFG_COMPAT_MODE, KVIK_COMPAT_AUTO);
  ASSERT_SOURCE(KVIK_CFG_COMPAT_MODE, KVIK_CFG_SRC_DEFAULT);
}

static void bool_values(void **state) {
  (void)state;
  static const struct {
    const char *text;
    uint64_t want;
  } ok[] = {{"on", 1},  {"ON", 1},    {"true", 1},  {"True", 1}, {"yes", 1}, {"YES", 1},
            {"1", 1},   {"off", 0},   {"OFF", 0},   {"false", 0}, {"FALSE", 0}, {"no", 0},
            {"No", 0},  {"0", 0}};
  static const enum kvik_cfg bools[] = {
      KVIK_CFG_AUTO_DIRECT_IO_READ, KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD,
      KVIK_CFG_AUTO_DIRECT_IO_WRITE, KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE,
      KVIK_CFG_REMOTE_VERBOSE};
  for (size_t b = 0; b < sizeof bools / sizeof bools[0]; b++) {
    const char *var = kvik_config_name(bools[b]);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
      env_ok(var, ok[i].text);
      uint64_t got = get_u64(bools[b]);
      if (got != ok[i].want)
        fail_msg("%s=%s gives %" PRIu64 ", expected %" PRIu64, var, ok[i].text, got,
                 ok[i].want);
      ASSERT_SOURCE(bools[b], KVIK_CFG_SRC_ENV);
    }
    unsetenv(var);
    env_bad(var, "maybe");
    env_bad(var, "enable");
  }
}

static void nthreads_and_alias(void **state) {
  (void)state;
  env_ok("KVIKIO_NTHREADS", "4");
  ASSERT_U64(KVIK_CFG_NTHREADS, 4);
  ASSERT_SOURCE(KVIK_CFG_NTHREADS, KVIK_CFG_SRC_ENV);
  unsetenv("KVIKIO_NTHREADS");

  env_ok("KVIKIO_NUM_THREADS", "6");
  ASSERT_U64(KVIK_CFG_NTHREADS, 6);
  ASSERT_SOURCE(KVIK_CFG_NTHREADS, KVIK_CFG_SRC_ENV);

  /* Both set to the same value: fine. */
  env_ok("KVIKIO_NTHREADS", "6");
  ASSERT_U64(KVIK_CFG_NTHREADS, 6);

  /* Both set, different: an error naming both variables. */
  setenv("KVIKIO_NTHREADS", "5", 1);
  int rc = kvik_config_reload();
  char msg[KVIK_ERRMSG_MAX + 1];
  snprintf(msg, sizeof msg, "%s", kvik_last_error());
  unsetenv("KVIKIO_NTHREADS");
  unsetenv("KVIKIO_NUM_THREADS");
  ASSERT_CODE(rc, KVIK_ECONFIG);
  ASSERT_CONTAINS(msg, "KVIKIO_NTHREADS");
  ASSERT_CONTAINS(msg, "KVIKIO_NUM_THREADS");
  ASSERT_CODE(kvik_config_reload(), 0);

  const char *bad[] = {"0", "abc", "-1", "4x", "1.5", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    env_bad("KVIKIO_NTHREADS", bad[i]);
    env_bad("KVIKIO_NUM_THREADS", bad[i]);
  }
  uint64_t lo, hi;
  ASSERT_CODE(kvik_config_bounds(KVIK_CFG_NTHREADS, &lo, &hi), 0);
  assert_int_equal(lo, 1);
  char text[32];
  snprintf(text, sizeof text, "%" PRIu64, hi);
  env_ok("KVIKIO_NTHREADS", text);
  ASSERT_U64(KVIK_CFG_NTHREADS, hi);
  unsetenv("KVIKIO_NTHREADS");
  if (hi < UINT64_MAX) {
    snprintf(text, sizeof text, "%" PRIu64, hi + 1);
    env_bad("KVIKIO_NTHREADS", text);
  }
}

static void size_values(void **state) {
  (void)state;
  static const enum kvik_cfg sizes[] = {KVIK_CFG_TASK_SIZE, KVIK_CFG_GDS_THRESHOLD,
                                        KVIK_CFG_BOUNCE_BUFFER_SIZE};
  static const struct {
    const char *text;
    uint64_t want;
  } ok[] = {{"4096", 4096},         {"12345", 12345},     {"8K", 8 * KiB},
            {"64K", 64 * KiB},      {"3M", 3 * MiB},      {"1G", 1024 * MiB},
            {"1048576", 1 * MiB}};
  static const char *bad[] = {"abc",  "12Q", "-1", "4KK", "K", "1 G x", "0x10",
                              "99999999999999999999G", "99999999999999999999",
                              "17179869184G", "18446744073709551616"};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    const char *var = kvik_config_name(sizes[s]);
    uint64_t lo, hi;
    ASSERT_CODE(kvik_config_bounds(sizes[s], &lo, &hi), 0);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
      if (ok[i].want < lo || ok[i].want > hi) {
        env_bad(var, ok[i].text); /* parsed, but out of bounds */
        continue;
      }
      env_ok(var, ok[i].text);
      uint64_t got = get_u64(sizes[s]);
      if (got != ok[i].want)
        fail_msg("%s=%s gives %" PRIu64 ", expected %" PRIu64, var, ok[i].text, got,
                 ok[i].want);
      ASSERT_SOURCE(sizes[s], KVIK_CFG_SRC_ENV);
    }
    unsetenv(var);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
      env_bad(var, bad[i]);
    if (hi < UINT64_MAX) {
      char text[32];
      snprintf(text, sizeof text, "%" PRIu64, hi + 1);
      env_bad(var, text);
    }
    if (lo > 0) {
      char text[32];
      snprintf(text, sizeof text, "%" PRIu64, lo - 1);
      env_bad(var, text);
    }
  }
  /* Task size and bounce buffer size 0 make no sense (kvikio refuses them too). */
  env_bad("KVIKIO_TASK_SIZE", "0");
  env_bad("KVIKIO_BOUNCE_BUFFER_SIZE", "0");
}

/* KVIKIO_BOUNCE_BUFFER_SIZE takes every positive size kvikio takes (its tests use 1, 10, 100
 * and 1000 bytes), from the environment and the setters alike, and reports it as set; the
 * buffers themselves are rounded up to pages (test_io_grid bounce_grid runs I/O with them). */
static void bounce_sizes_like_kvikio(void **state) {
  (void)state;
  static const char *const texts[] = {"1", "10", "100", "1000", "4095", "1K"};
  static const uint64_t values[] = {1, 10, 100, 1000, 4095, 1024};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    env_ok("KVIKIO_BOUNCE_BUFFER_SIZE", texts[i]);
    ASSERT_U64(KVIK_CFG_BOUNCE_BUFFER_SIZE, values[i]);
    char got[32];
    ASSERT_CODE(kvik_config_get_str(KVIK_CFG_BOUNCE_BUFFER_SIZE, got, sizeof got) > 0, 1);
    char want[32];
    snprintf(want, sizeof want, "%" PRIu64, values[i]);
    assert_string_equal(got, want);
    ASSERT_SOURCE(KVIK_CFG_BOUNCE_BUFFER_SIZE, KVIK_CFG_SRC_ENV);
  }
  unsetenv("KVIKIO_BOUNCE_BUFFER_SIZE");
  ASSERT_CODE(kvik_config_reload(), 0);
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_BOUNCE_BUFFER_SIZE, values[i]), 0);
    ASSERT_U64(KVIK_CFG_BOUNCE_BUFFER_SIZE, values[i]);
    ASSERT_CODE(kvik_config_set_str(KVIK_CFG_BOUNCE_BUFFER_SIZE, texts[i]), 0);
    ASSERT_U64(KVIK_CFG_BOUNCE_BUFFER_SIZE, values[i]);
  }
  uint64_t lo, hi;
  ASSERT_CODE(kvik_config_bounds(KVIK_CFG_BOUNCE_BUFFER_SIZE, &lo, &hi), 0);
  ASSERT_CODE(lo, 1);
  /* 0 stays refused, as in kvikio. */
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_BOUNCE_BUFFER_SIZE, 0), KVIK_EINVAL);
  env_bad("KVIKIO_BOUNCE_BUFFER_SIZE", "0");
  ASSERT_CODE(kvik_config_reload(), 0);
}

static void http_values(void **state) {
  (void)state;
  char buf[128];
  env_ok("KVIKIO_HTTP_STATUS_CODES", "429,500");
  get_str(KVIK_CFG_HTTP_STATUS_CODES, buf, sizeof buf);
  assert_string_equal(buf, "429,500");
  ASSERT_SOURCE(KVIK_CFG_HTTP_STATUS_CODES, KVIK_CFG_SRC_ENV);
  env_ok("KVIKIO_HTTP_STATUS_CODES", "503");
  get_str(KVIK_CFG_HTTP_STATUS_CODES, buf, sizeof buf);
  assert_string_equal(buf, "503");
  /* kvikio allows spaces around the codes. */
  env_ok("KVIKIO_HTTP_STATUS_CODES", " 429 , 503 ");
  unsetenv("KVIKIO_HTTP_STATUS_CODES");
  const char *bad[] = {"429,", ",429", "429,,500", "abc", "42", "4290", "429;500", "429 500",
                       "-429"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    env_bad("KVIKIO_HTTP_STATUS_CODES", bad[i]);

  env_ok("KVIKIO_HTTP_MAX_ATTEMPTS", "5");
  ASSERT_U64(KVIK_CFG_HTTP_MAX_ATTEMPTS, 5);
  unsetenv("KVIKIO_HTTP_MAX_ATTEMPTS");
  env_bad("KVIKIO_HTTP_MAX_ATTEMPTS", "0");
  env_bad("KVIKIO_HTTP_MAX_ATTEMPTS", "three");
  env_ok("KVIKIO_HTTP_TIMEOUT", "30");
  ASSERT_U64(KVIK_CFG_HTTP_TIMEOUT, 30);
  unsetenv("KVIKIO_HTTP_TIMEOUT");
  env_bad("KVIKIO_HTTP_TIMEOUT", "abc");
  env_bad("KVIKIO_HTTP_TIMEOUT", "-5");

  env_ok("KVIKIO_WEBHDFS_USERNAME", "alice");
  get_str(KVIK_CFG_WEBHDFS_USERNAME, buf, sizeof buf);
  assert_string_equal(buf, "alice");
  ASSERT_SOURCE(KVIK_CFG_WEBHDFS_USERNAME, KVIK_CFG_SRC_ENV);
  unsetenv("KVIKIO_WEBHDFS_USERNAME");
  ASSERT_CODE(kvik_config_reload(), 0);
}

static void log_values(void **state) {
  (void)state;
  char *dir = t_mkdtemp(NULL);
  assert_non_null(dir);
  char *log = t_join(dir, "kvik.log");
  char buf[4096];
  env_ok("KVIKIO_LOG_FILE", log);
  get_str(KVIK_CFG_LOG_FILE, buf, sizeof buf);
  assert_string_equal(buf, log);
  ASSERT_SOURCE(KVIK_CFG_LOG_FILE, KVIK_CFG_SRC_ENV);
  unsetenv("KVIKIO_LOG_FILE");
  env_bad("KVIKIO_LOG_LEVEL", "bogus");
  uint64_t lo, hi;
  ASSERT_CODE(kvik_config_bounds(KVIK_CFG_LOG_LEVEL, &lo, &hi), 0);
  assert_true(lo <= KVIK_LOG_TRACE && hi >= KVIK_LOG_OFF);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_LOG_LEVEL, KVIK_LOG_ERROR), 0);
  ASSERT_U64(KVIK_CFG_LOG_LEVEL, KVIK_LOG_ERROR);
  ASSERT_CODE(kvik_config_reload(), 0);
  free(log);
  t_rmtree(dir);
}

/* The log sink: nothing by default; the callback gets messages at or above its level; the
 * KVIKIO_LOG_FILE gets messages at or above KVIKIO_LOG_LEVEL. Messages are made with the
 * internal kvik__log(), since which library events log is the library's choice. */
struct log_capture {
  int count;
  int level;
  char last[256];
};

static void capture(int level, const char *message, void *user) {
  struct log_capture *c = user;
  c->count++;
  c->level = level;
  snprintf(c->last, sizeof c->last, "%s", message ? message : "(null)");
}

static void log_sink(void **state) {
  (void)state;
  struct log_capture cap = {0};
  kvik__log(KVIK_LOG_ERROR, "before any sink %d", 1); /* goes nowhere, prints nothing */
  kvik_set_log(capture, &cap, KVIK_LOG_INFO);
  kvik__log(KVIK_LOG_DEBUG, "too low %d", 2);
  assert_int_equal(cap.count, 0);
  kvik__log(KVIK_LOG_WARN, "warned %d", 3);
  assert_int_equal(cap.count, 1);
  assert_int_equal(cap.level, KVIK_LOG_WARN);
  assert_string_equal(cap.last, "warned 3");
  kvik__log(KVIK_LOG_INFO, "info %s", "x");
  assert_int_equal(cap.count, 2);
  kvik_set_log(NULL, NULL, KVIK_LOG_TRACE);
  kvik__log(KVIK_LOG_ERROR, "after removal %d", 4);
  assert_int_equal(cap.count, 2);

  char *dir = t_mkdtemp(NULL);
  assert_non_null(dir);
  char *log = t_join(dir, "kvik.log");
  setenv("KVIKIO_LOG_FILE", log, 1);
  ASSERT_CODE(kvik_config_reload(), 0);
  unsetenv("KVIKIO_LOG_FILE");
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_LOG_LEVEL, KVIK_LOG_WARN), 0);
  kvik__log(KVIK_LOG_INFO, "below the file level %d", 5);
  kvik__log(KVIK_LOG_ERROR, "into the file %d", 6);
  char text[4096] = "";
  long long n = t_read_file(log, text, sizeof text - 1, 0);
  text[n > 0 ? n : 0] = 0;
  ASSERT_CONTAINS(text, "into the file 6");
  if (strstr(text, "below the file level"))
    fail_msg("KVIKIO_LOG_FILE got a message below KVIKIO_LOG_LEVEL: \"%s\"", text);
  ASSERT_CODE(kvik_config_reload(), 0);
  free(log);
  t_rmtree(dir);
}

/* ---- setters and bounds ------------------------------------------------------------------ */

static void setters_respect_bounds(void **state) {
  (void)state;
  for (size_t i = 0; i < NKEYS; i++) {
    enum kvik_cfg key = table[i].key;
    uint64_t lo = 7, hi = 7;
    if (!is_numeric(key)) {
      assert_true(kvik_config_bounds(key, &lo, &hi) < 0);
      continue;
    }
    ASSERT_CODE(kvik_config_bounds(key, &lo, &hi), 0);
    uint64_t def = get_u64(key);
    if (!(lo <= def && def <= hi))
      fail_msg("%s: default %" PRIu64 " outside bounds [%" PRIu64 ", %" PRIu64 "]",
               table[i].name, def, lo, hi);
    if (table[i].type == KVIK_CFG_TYPE_BOOL && (lo != 0 || hi != 1))
      fail_msg("%s: bool bounds [%" PRIu64 ", %" PRIu64 "]", table[i].name, lo, hi);
    ASSERT_CODE(kvik_config_set_u64(key, lo), 0);
    ASSERT_U64(key, lo);
    ASSERT_SOURCE(key, KVIK_CFG_SRC_SET);
    ASSERT_CODE(kvik_config_set_u64(key, hi), 0);
    ASSERT_U64(key, hi);
    if (hi < UINT64_MAX) {
      ASSERT_CODE(kvik_config_set_u64(key, hi + 1), KVIK_EINVAL);
      ASSERT_U64(key, hi);
      char num[32];
      snprintf(num, sizeof num, "%" PRIu64, hi + 1);
      ASSERT_CONTAINS(kvik_last_error(), num);
    }
    if (lo > 0) {
      ASSERT_CODE(kvik_config_set_u64(key, lo - 1), KVIK_EINVAL);
      ASSERT_U64(key, hi);
    }
    ASSERT_CODE(kvik_config_set_u64(key, def), 0);
  }
  /* Some settings have natural bounds. */
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_NTHREADS, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_TASK_SIZE, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_COMPAT_MODE, 3), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, 2), KVIK_EINVAL);
  /* Reload drops what the setters did. */
  ASSERT_CODE(kvik_config_reload(), 0);
  for (size_t i = 0; i < NKEYS; i++)
    ASSERT_SOURCE(table[i].key, KVIK_CFG_SRC_DEFAULT);
}

static void set_str_parses_like_env(void **state) {
  (void)state;
  ASSERT_CODE(kvik_config_set_str(KVIK_CFG_COMPAT_MODE, "yes"), 0);
  ASSERT_U64(KVIK_CFG_COMPAT_MODE, KVIK_COMPAT_ON);
  ASSERT_SOURCE(KVIK_CFG_COMPAT_MODE, KVIK_CFG_SRC_SET);
  ASSERT_CODE(kvik_config_set_str(KVIK_CFG_COMPAT_MODE, "Off"), 0);
  ASSERT_U64(KVIK_CFG_COMPAT_MODE, KVIK_COMPAT_OFF);
  ASSERT_CODE(kvik_config_set_str(KVIK_CFG_TASK_SIZE, "2M"), 0);
  ASSERT_U64(KVIK_CFG_TASK_SIZE, 2 * MiB);
  ASSERT_CODE(kvik_config_set_str(KVIK_CFG_NTHREADS, "8"), 0);
  ASSERT_U64(KVIK_CFG_NTHREADS, 8);
  ASSERT_CODE(kvik_config_set_str(KVIK_CFG_AUTO_DIRECT_IO_READ, "on"), 0);
  ASSERT_U64(KVIK_CFG_AUTO_DIRECT_IO_READ, 1);
  ASSERT_CODE(kvik_config_set_str(KVIK_CFG_HTTP_STATUS_CODES, "500,503"), 0);
  char buf[64];
  get_str(KVIK_CFG_HTTP_STATUS_CODES, buf, sizeof buf);
  assert_string_equal(buf, "500,503");
  /* Invalid text is refused (either code is a fair reading of the header) and the value stays. */
  static const struct {
    enum kvik_cfg key;
    const char *text;
  } bad[] = {{KVIK_CFG_TASK_SIZE, "abc"},          {KVIK_CFG_TASK_SIZE, "99999999999999999999G"},
             {KVIK_CFG_NTHREADS, "0"},             {KVIK_CFG_COMPAT_MODE, "maybe"},
             {KVIK_CFG_HTTP_STATUS_CODES, "429,"}, {KVIK_CFG_AUTO_DIRECT_IO_READ, "sure"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    char before[64], after[64];
    get_str(bad[i].key, before, sizeof before);
    int rc = kvik_config_set_str(bad[i].key, bad[i].text);
    if (rc != KVIK_EINVAL && rc != KVIK_ECONFIG)
      fail_msg("kvik_config_set_str(%s, \"%s\") = %d (%s), expected KVIK_EINVAL/ECONFIG",
               kvik_config_name(bad[i].key), bad[i].text, rc, kvik_strerror_name(rc));
    ASSERT_CONTAINS(kvik_last_error(), bad[i].text);
    get_str(bad[i].key, after, sizeof after);
    assert_string_equal(before, after);
  }
  ASSERT_CODE(kvik_config_set_str(KVIK_CFG_TASK_SIZE, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_reload(), 0);
  ASSERT_U64(KVIK_CFG_TASK_SIZE, 4 * MiB);
}

/* A bad value stays an error for calls that need the configuration, until a reload. */
static void bad_value_is_sticky(void **state) {
  (void)state;
  setenv("KVIKIO_GDS_THRESHOLD", "lots", 1);
  ASSERT_CODE(kvik_config_reload(), KVIK_ECONFIG);
  ASSERT_CODE(kvik_config_init(), KVIK_ECONFIG);
  ASSERT_CONTAINS(kvik_last_error(), "KVIKIO_GDS_THRESHOLD");
  ASSERT_CONTAINS(kvik_last_error(), "lots");
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, "/proc/self/exe", "r", 0, KVIK_COMPAT_DEFAULT), KVIK_ECONFIG);
  assert_null(f);
  unsetenv("KVIKIO_GDS_THRESHOLD");
  ASSERT_CODE(kvik_config_init(), KVIK_ECONFIG);
  ASSERT_CODE(kvik_config_reload(), 0);
  ASSERT_CODE(kvik_config_init(), 0);
  ASSERT_CODE(kvik_file_open(&f, "/proc/self/exe", "r", 0, KVIK_COMPAT_DEFAULT), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
}

/* ---- the internal size parser ----------------------------------------------------------- */

static void parse_size_unit(void **state) {
  (void)state;
  static const struct {
    const char *text;
    uint64_t want;
  } ok[] = {{"0", 0},
            {"1", 1},
            {"4096", 4096},
            {"1K", 1024},
            {"4K", 4096},
            {"16M", 16 * MiB},
            {"2G", 2048 * MiB},
            {"1T", 1024ULL * 1024 * MiB},
            {"18446744073709551615", UINT64_MAX},
            {"16777215T", 16777215ULL << 40}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint64_t v = 12345;
    int rc = kvik__parse_size(ok[i].text, &v);
    if (rc != 0 || v != ok[i].want)
      fail_msg("kvik__parse_size(\"%s\") = %d, %" PRIu64 "; expected 0, %" PRIu64, ok[i].text,
               rc, v, ok[i].want);
  }
  static const char *bad[] = {"",   "K",   "-1", "-0",   "1KK", "12Q", "abc", "0x10",
                              " 1a", "18446744073709551616", "16777216T",
                              "17179869184G", "99999999999999999999G"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t v = 12345;
    int rc = kvik__parse_size(bad[i], &v);
    if (rc != -1)
      fail_msg("kvik__parse_size(\"%s\") = %d (value %" PRIu64 "), expected -1", bad[i], rc, v);
  }
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--child") == 0) {
    if (strcmp(argv[2], "bad_env_init") == 0)
      return child_bad_env_init();
    if (strcmp(argv[2], "bad_env_first_use") == 0)
      return child_bad_env_first_use();
    if (strcmp(argv[2], "read_once") == 0)
      return child_read_once();
    return 99;
  }
  t_select(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(first_use_with_bad_env),
      cmocka_unit_test_setup_teardown(names_and_types, setup, teardown),
      cmocka_unit_test_setup_teardown(defaults_match_the_issue, setup, teardown),
      cmocka_unit_test_setup_teardown(get_str_round_trips, setup, teardown),
      cmocka_unit_test_setup_teardown(get_str_truncates_like_snprintf, setup, teardown),
      cmocka_unit_test_setup_teardown(compat_mode_values, setup, teardown),
      cmocka_unit_test_setup_teardown(bool_values, setup, teardown),
      cmocka_unit_test_setup_teardown(nthreads_and_alias, setup, teardown),
      cmocka_unit_test_setup_teardown(size_values, setup, teardown),
      cmocka_unit_test_setup_teardown(bounce_sizes_like_kvikio, setup, teardown),
      cmocka_unit_test_setup_teardown(http_values, setup, teardown),
      cmocka_unit_test_setup_teardown(log_values, setup, teardown),
      cmocka_unit_test_setup_teardown(log_sink, setup, teardown),
      cmocka_unit_test_setup_teardown(setters_respect_bounds, setup, teardown),
      cmocka_unit_test_setup_teardown(set_str_parses_like_env, setup, teardown),
      cmocka_unit_test_setup_teardown(bad_value_is_sticky, setup, teardown),
      cmocka_unit_test(parse_size_unit),
  };
  return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
