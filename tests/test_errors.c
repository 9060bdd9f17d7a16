/* Error codes, their text and names, and the per-thread detail message. Uses only the public
 * API (linked against the shared library, so it also checks what is exported). */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct code_row {
  int code;
  const char *name;
  const char *text;
};

static const struct code_row kvik_codes[] = {
#define ROW(name, value, text) {name, #name, text},
    KVIK_ERRORS(ROW)
#undef ROW
};
#define NCODES (sizeof kvik_codes / sizeof kvik_codes[0])

static void library_codes_have_text_and_names(void **state) {
  (void)state;
  for (size_t i = 0; i < NCODES; i++) {
    const struct code_row *r = &kvik_codes[i];
    if (r->code >= -5000)
      fail_msg("%s = %d is not below -5000", r->name, r->code);
    for (size_t j = 0; j < i; j++)
      if (kvik_codes[j].code == r->code)
        fail_msg("%s and %s share code %d", kvik_codes[j].name, r->name, r->code);
    const char *text = kvik_strerror(r->code);
    assert_non_null(text);
    if (strcmp(text, r->text) != 0)
      fail_msg("kvik_strerror(%s) = \"%s\", expected \"%s\"", r->name, text, r->text);
    const char *name = kvik_strerror_name(r->code);
    assert_non_null(name);
    if (strcmp(name, r->name) != 0)
      fail_msg("kvik_strerror_name(%d) = \"%s\", expected \"%s\"", r->code, name, r->name);
  }
  /* The values are part of the ABI: they must never change. */
  ASSERT_CODE(KVIK_EINVAL, -5001);
  ASSERT_CODE(KVIK_EMISUSE, -5002);
  ASSERT_CODE(KVIK_ECONFIG, -5003);
  ASSERT_CODE(KVIK_EBADMODE, -5004);
  ASSERT_CODE(KVIK_EOVERFLOW, -5005);
  ASSERT_CODE(KVIK_EINTERNAL, -5015);
}

static void errno_codes_have_text_and_names(void **state) {
  (void)state;
  static const struct {
    int err;
    const char *name;
  } rows[] = {{ENOENT, "ENOENT"}, {EIO, "EIO"},       {ENOSPC, "ENOSPC"}, {EINTR, "EINTR"},
              {EACCES, "EACCES"}, {EINVAL, "EINVAL"}, {EBADF, "EBADF"},   {EISDIR, "EISDIR"},
              {EFBIG, "EFBIG"},   {ENOMEM, "ENOMEM"}};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    int code = -rows[i].err;
    const char *text = kvik_strerror(code);
    const char *want = strerrordesc_np(rows[i].err); /* glibc's static, thread-safe text */
    assert_non_null(text);
    if (strcmp(text, want) != 0)
      fail_msg("kvik_strerror(-%s) = \"%s\", expected \"%s\"", rows[i].name, text, want);
    const char *name = kvik_strerror_name(code);
    assert_non_null(name);
    if (strcmp(name, rows[i].name) != 0)
      fail_msg("kvik_strerror_name(%d) = \"%s\", expected \"%s\"", code, name, rows[i].name);
  }
}

static void unknown_codes_are_safe(void **state) {
  (void)state;
  /* Neither library codes nor errno values: text is still a non-empty string, the name is
   * "UNKNOWN". INT_MIN checks that nobody negates the code without care (UBSan). */
  const int odd[] = {-4999, -5000, -5999, -6000, -100000, INT_MIN, -4096};
  for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
    const char *text = kvik_strerror(odd[i]);
    assert_non_null(text);
    if (!text[0])
      fail_msg("kvik_strerror(%d) is empty", odd[i]);
    const char *name = kvik_strerror_name(odd[i]);
    assert_non_null(name);
    if (strcmp(name, "UNKNOWN") != 0)
      fail_msg("kvik_strerror_name(%d) = \"%s\", expected \"UNKNOWN\"", odd[i], name);
  }
  /* Success and positive counts: any text, but never NULL. */
  assert_non_null(kvik_strerror(0));
  assert_non_null(kvik_strerror(4096));
  assert_non_null(kvik_strerror(INT_MAX));
  assert_non_null(kvik_strerror_name(0));
  assert_non_null(kvik_strerror_name(INT_MAX));
}

static void version_matches_header(void **state) {
  (void)state;
  assert_non_null(kvik_version());
  assert_string_equal(kvik_version(), KVIK_VERSION_STRING);
}

static void failed_open_names_path_and_errno(void **state) {
  (void)state;
  char *dir = t_mkdtemp(NULL);
  assert_non_null(dir);
  char *missing = t_join(dir, "no-such-file.bin");
  kvik_file *f = (kvik_file *)(uintptr_t)0x1; /* must stay untouched on failure */
  ASSERT_CODE(kvik_file_open(&f, missing, "r", 0644, KVIK_COMPAT_ON), -ENOENT);
  assert_ptr_equal(f, (kvik_file *)(uintptr_t)0x1);
  ASSERT_CONTAINS(kvik_last_error(), missing);
  ASSERT_CONTAINS(kvik_last_error(), strerrordesc_np(ENOENT));

  /* A directory opened for writing: -EISDIR, the message names the directory. */
  f = NULL;
  ASSERT_CODE(kvik_file_open(&f, dir, "w", 0644, KVIK_COMPAT_ON), -EISDIR);
  assert_null(f);
  ASSERT_CONTAINS(kvik_last_error(), dir);
  ASSERT_CONTAINS(kvik_last_error(), strerrordesc_np(EISDIR));

  /* A path through a regular file: -ENOTDIR. */
  char *file = t_join(dir, "plain");
  t_write_pattern_file(file, 10, 1);
  char *through = t_join(file, "child");
  ASSERT_CODE(kvik_file_open(&f, through, "r", 0644, KVIK_COMPAT_ON), -ENOTDIR);
  ASSERT_CONTAINS(kvik_last_error(), through);

  free(through);
  free(file);
  free(missing);
  t_rmtree(dir);
}

static void overlong_path_message_is_bounded(void **state) {
  (void)state;
  /* A path longer than PATH_MAX: the open fails (-ENAMETOOLONG) and the detail message, which
   * cannot hold the whole path, is still a terminated string (ASan checks the copy). */
  size_t n = 3 * 4096;
  char *path = malloc(n + 1);
  assert_non_null(path);
  path[0] = '/';
  memset(path + 1, 'a', n - 1);
  path[n] = 0;
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_ON), -ENAMETOOLONG);
  assert_null(f);
  const char *msg = kvik_last_error();
  assert_non_null(msg);
  size_t len = strlen(msg);
  if (len == 0 || len > 64 * 1024)
    fail_msg("kvik_last_error() has length %zu", len);
  ASSERT_CONTAINS(msg, "aaaaaaaa");
  free(path);
}

struct thread_err {
  const char *path;
  char before[64];
  int rc;
  char after[4096];
};

static void *fail_in_thread(void *arg) {
  struct thread_err *t = arg;
  snprintf(t->before, sizeof t->before, "%s", kvik_last_error());
  kvik_file *f = NULL;
  t->rc = kvik_file_open(&f, t->path, "r", 0, KVIK_COMPAT_ON);
  snprintf(t->after, sizeof t->after, "%s", kvik_last_error());
  return NULL;
}

static void last_error_is_per_thread(void **state) {
  (void)state;
  char *dir = t_mkdtemp(NULL);
  assert_non_null(dir);
  char *main_path = t_join(dir, "main-thread-missing");
  char *other_path = t_join(dir, "other-thread-missing");
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, main_path, "r", 0, KVIK_COMPAT_ON), -ENOENT);
  ASSERT_CONTAINS(kvik_last_error(), main_path);

  struct thread_err t = {.path = other_path};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, fail_in_thread, &t), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  /* A fresh thread starts with an empty message, fails with its own path... */
  if (t.before[0])
    fail_msg("a new thread's kvik_last_error() is \"%s\", expected \"\"", t.before);
  ASSERT_CODE(t.rc, -ENOENT);
  ASSERT_CONTAINS(t.after, other_path);
  if (strstr(t.after, main_path))
    fail_msg("the other thread's message names the main thread's path: \"%s\"", t.after);
  /* ...and the main thread's message is its own still. */
  ASSERT_CONTAINS(kvik_last_error(), main_path);
  if (strstr(kvik_last_error(), other_path))
    fail_msg("main thread's message changed to \"%s\"", kvik_last_error());
  free(main_path);
  free(other_path);
  t_rmtree(dir);
}

/* The library never prints: run failing calls of every kind with stdout and stderr pointed at
 * a file, then check the file is empty. */
static void library_is_silent(void **state) {
  (void)state;
  char *dir = t_mkdtemp(NULL);
  assert_non_null(dir);
  char *sink = t_join(dir, "output");
  char *missing = t_join(dir, "missing");
  char *data = t_join(dir, "data");
  t_write_pattern_file(data, 5000, 3);
  fflush(stdout);
  fflush(stderr);
  int out_fd = open(sink, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true(out_fd >= 0);
  int saved_out = dup(1), saved_err = dup(2);
  assert_true(saved_out >= 0 && saved_err >= 0);
  dup2(out_fd, 1);
  dup2(out_fd, 2);

  kvik_file *f = NULL;
  int r1 = kvik_file_open(&f, missing, "r", 0, KVIK_COMPAT_ON);
  int r2 = kvik_file_open(&f, data, "bogus", 0, KVIK_COMPAT_ON);
  int r3 = kvik_file_open(NULL, data, "r", 0, KVIK_COMPAT_ON);
  setenv("KVIKIO_NTHREADS", "not-a-number", 1);
  int r4 = kvik_config_reload();
  unsetenv("KVIKIO_NTHREADS");
  int r5 = kvik_config_reload();
  int r6 = kvik_file_open(&f, data, "r", 0, KVIK_COMPAT_ON);
  char buf[100];
  long long r7 = r6 == 0 ? kvik_file_read(f, buf, sizeof buf, -5) : 0;
  long long r8 = r6 == 0 ? kvik_file_write(f, buf, sizeof buf, 0) : 0;
  long long r9 = r6 == 0 ? kvik_file_read(f, buf, sizeof buf, 1 << 20) : 0;
  kvik_file_close(f);
  int r10 = kvik_config_set_u64(KVIK_CFG_NTHREADS, 0);

  fflush(stdout);
  fflush(stderr);
  dup2(saved_out, 1);
  dup2(saved_err, 2);
  close(saved_out);
  close(saved_err);
  close(out_fd);

  ASSERT_CODE(r1, -ENOENT);
  ASSERT_CODE(r2, KVIK_EINVAL);
  ASSERT_CODE(r3, KVIK_EINVAL);
  ASSERT_CODE(r4, KVIK_ECONFIG);
  ASSERT_CODE(r5, 0);
  ASSERT_CODE(r6, 0);
  ASSERT_CODE(r7, KVIK_EINVAL);
  ASSERT_CODE(r8, KVIK_EBADMODE);
  ASSERT_CODE(r9, 0);
  ASSERT_CODE(r10, KVIK_EINVAL);
  long long printed = t_file_size(sink);
  if (printed != 0) {
    char text[512] = "";
    long long n = t_read_file(sink, text, sizeof text - 1, 0);
    text[n > 0 ? n : 0] = 0;
    fail_msg("the library wrote %lld bytes to stdout/stderr: \"%s\"", printed, text);
  }
  free(sink);
  free(missing);
  free(data);
  t_rmtree(dir);
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  t_clear_kvikio_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(library_codes_have_text_and_names),
      cmocka_unit_test(errno_codes_have_text_and_names),
      cmocka_unit_test(unknown_codes_are_safe),
      cmocka_unit_test(version_matches_header),
      cmocka_unit_test(failed_open_names_path_and_errno),
      cmocka_unit_test(overlong_path_message_is_bounded),
      cmocka_unit_test(last_error_is_per_thread),
      cmocka_unit_test(library_is_silent),
  };
  return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
