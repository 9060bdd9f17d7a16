/* Bad input: NULL pointers, unknown flags, a missing file, the wrong mode, negative offsets,
 * offset + size overflow, a configuration error at open, and pointers that are not kvik
 * handles. Each gets its documented code (and message), and the file on disk is unchanged
 * afterwards. Public API only. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DATA_SIZE ((size_t)20000)
#define SEED 42

static char *g_dir;
static char *g_path;

static int group_setup(void **state) {
  (void)state;
  t_clear_kvikio_env();
  if (kvik_config_reload() != 0)
    return -1;
  g_dir = t_mkdtemp(NULL);
  if (!g_dir)
    return -1;
  g_path = t_join(g_dir, "data");
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  free(g_path);
  t_rmtree(g_dir);
  return 0;
}

/* Each test starts from a fresh file of known content. */
static int fresh_file(void **state) {
  (void)state;
  t_write_pattern_file(g_path, DATA_SIZE, SEED);
  return 0;
}

static void file_unchanged(void) { ASSERT_FILE_PATTERN(g_path, DATA_SIZE, SEED); }

/* Either code is a fair reading of the header for a NULL handle. */
#define ASSERT_BAD_HANDLE(expr)                                                                  \
  do {                                                                                           \
    long long rc_ = (long long)(expr);                                                           \
    if (rc_ != KVIK_EINVAL && rc_ != KVIK_EMISUSE)                                               \
      t_fail_code(#expr, rc_, KVIK_EINVAL, __FILE__, __LINE__);                                  \
  } while (0)

static void null_pointers(void **state) {
  (void)state;
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(NULL, g_path, "r", 0, KVIK_COMPAT_ON), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_open(&f, NULL, "r", 0, KVIK_COMPAT_ON), KVIK_EINVAL);
  assert_null(f);
  ASSERT_CODE(kvik_file_open(&f, g_path, NULL, 0, KVIK_COMPAT_ON), KVIK_EINVAL);
  assert_null(f);
  /* NULL with a write mode must not create or truncate anything. */
  ASSERT_CODE(kvik_file_open(NULL, g_path, "w", 0644, KVIK_COMPAT_ON), KVIK_EINVAL);
  file_unchanged();

  char buf[64];
  ASSERT_BAD_HANDLE(kvik_file_read(NULL, buf, sizeof buf, 0));
  ASSERT_BAD_HANDLE(kvik_file_write(NULL, buf, sizeof buf, 0));
  ASSERT_BAD_HANDLE(kvik_file_size(NULL));
  ASSERT_BAD_HANDLE(kvik_file_fd(NULL));
  assert_null(kvik_file_path(NULL));
  struct kvik_file_info info = {.sz = sizeof info};
  ASSERT_BAD_HANDLE(kvik_file_info(NULL, &info));
  kvik_future *fut = (kvik_future *)(uintptr_t)0x1;
  ASSERT_BAD_HANDLE(kvik_file_pread(NULL, buf, sizeof buf, 0, NULL, &fut));
  ASSERT_BAD_HANDLE(kvik_file_pwrite(NULL, buf, sizeof buf, 0, NULL, &fut));
  assert_ptr_equal(fut, (kvik_future *)(uintptr_t)0x1);
  ASSERT_CODE(kvik_file_close(NULL), 0);

  ASSERT_BAD_HANDLE(kvik_future_wait(NULL));
  ASSERT_BAD_HANDLE(kvik_future_wait_for(NULL, 0));
  ASSERT_BAD_HANDLE(kvik_future_done(NULL));
  ASSERT_CODE(kvik_pool_destroy(NULL), 0);
  ASSERT_CODE(kvik_pool_create(NULL, 1), KVIK_EINVAL);
  ASSERT_CODE(kvik_pool_default(NULL), KVIK_EINVAL);

  ASSERT_CODE(kvik_path_info(NULL, &(struct kvik_path_info){.sz = sizeof(struct kvik_path_info)}),
              KVIK_EINVAL);
  ASSERT_CODE(kvik_path_info(g_dir, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_drop_file_cache(NULL), KVIK_EINVAL);
  uint64_t v;
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_TASK_SIZE, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_get_str(KVIK_CFG_TASK_SIZE, NULL, 10), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_set_str(KVIK_CFG_TASK_SIZE, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_config_get_u64(KVIK_CFG_TASK_SIZE, &v), 0);

  /* With a real handle: NULL buffers, NULL info, NULL future slot. */
  ASSERT_CODE(kvik_file_open(&f, g_path, "r+", 0, KVIK_COMPAT_ON), 0);
  ASSERT_CODE(kvik_file_read(f, NULL, 10, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_write(f, NULL, 10, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_pread(f, NULL, 10, 0, NULL, &fut), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_pwrite(f, NULL, 10, 0, NULL, &fut), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_pread(f, buf, 10, 0, NULL, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_pwrite(f, buf, 10, 0, NULL, NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_info(f, NULL), KVIK_EINVAL);
  info.sz = 0;
  ASSERT_CODE(kvik_file_info(f, &info), KVIK_EINVAL);
  /* An options struct without its size is refused rather than read. */
  struct kvik_io_opts bad_opts = {.sz = 0, .task_size = 4096};
  ASSERT_CODE(kvik_file_pread(f, buf, 10, 0, &bad_opts, &fut), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_pwrite(f, buf, 10, 0, &bad_opts, &fut), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_close(f), 0);
  file_unchanged();
}

static void unknown_flags(void **state) {
  (void)state;
  static const char *bad[] = {"x", "rw", "a", "a+", "ab", "", "r++", "wr", "+", "rx", "w+x",
                              "R", "W"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    kvik_file *f = NULL;
    int rc = kvik_file_open(&f, g_path, bad[i], 0644, KVIK_COMPAT_ON);
    if (rc != KVIK_EINVAL)
      fail_msg("kvik_file_open(flags \"%s\") = %d (%s), expected KVIK_EINVAL", bad[i], rc,
               kvik_strerror_name(rc));
    assert_null(f);
    if (bad[i][0])
      ASSERT_CONTAINS(kvik_last_error(), bad[i]);
    ASSERT_CONTAINS(kvik_last_error(), g_path); /* the detail names the path */
    ASSERT_CONTAINS(kvik_last_error(), "kvik_file_open");
    file_unchanged();
  }
  /* Unknown compat values. */
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r", 0, (kvik_compat)7), KVIK_EINVAL);
  ASSERT_CODE(kvik_file_open(&f, g_path, "r", 0, (kvik_compat)-1), KVIK_EINVAL);
  assert_null(f);
  /* The accepted spellings, 'b' ignored. Read modes first; the write modes truncate. */
  static const char *good_read[] = {"r", "rb", "r+", "r+b"};
  for (size_t i = 0; i < sizeof good_read / sizeof good_read[0]; i++) {
    ASSERT_CODE(kvik_file_open(&f, g_path, good_read[i], 0, KVIK_COMPAT_ON), 0);
    struct kvik_file_info info = {.sz = sizeof info};
    ASSERT_CODE(kvik_file_info(f, &info), 0);
    ASSERT_CODE(info.readable, 1);
    ASSERT_CODE(info.writable, strchr(good_read[i], '+') != NULL);
    ASSERT_CODE(info.compat, KVIK_COMPAT_ON);
    ASSERT_CODE(kvik_file_size(f), DATA_SIZE);
    assert_string_equal(kvik_file_path(f), g_path);
    int fd = kvik_file_fd(f);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ASSERT_CODE(kvik_file_close(f), 0);
    file_unchanged();
  }
  static const char *good_write[] = {"w", "wb", "w+", "w+b"};
  for (size_t i = 0; i < sizeof good_write / sizeof good_write[0]; i++) {
    ASSERT_CODE(kvik_file_open(&f, g_path, good_write[i], 0644, KVIK_COMPAT_ON), 0);
    struct kvik_file_info info = {.sz = sizeof info};
    ASSERT_CODE(kvik_file_info(f, &info), 0);
    ASSERT_CODE(info.readable, strchr(good_write[i], '+') != NULL);
    ASSERT_CODE(info.writable, 1);
    ASSERT_CODE(kvik_file_size(f), 0);
    ASSERT_CODE(kvik_file_close(f), 0);
    ASSERT_CODE(t_file_size(g_path), 0);
  }
}

/* Every refusal's detail names the call, the path, the offset and size where there are any, and
 * why (kvik.h's promise for every failure). */
static void messages_name_call_path_offset_size(void **state) {
  (void)state;
  kvik_file *f = NULL;
  /* Refused flags, NULL flags: the path. */
  static const char *flags[] = {"a", "z", "", "+"};
  static const char *why[] = {"append mode", "unknown flags", "empty flags", "unknown flags"};
  for (size_t i = 0; i < 4; i++) {
    ASSERT_CODE(kvik_file_open(&f, g_path, flags[i], 0644, KVIK_COMPAT_ON), KVIK_EINVAL);
    ASSERT_CONTAINS(kvik_last_error(), "kvik_file_open");
    ASSERT_CONTAINS(kvik_last_error(), g_path);
    ASSERT_CONTAINS(kvik_last_error(), why[i]);
  }
  ASSERT_CODE(kvik_file_open(&f, g_path, NULL, 0644, KVIK_COMPAT_ON), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_open");
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  ASSERT_CONTAINS(kvik_last_error(), "flags is NULL");
  ASSERT_CODE(kvik_file_open(NULL, g_path, "r", 0644, KVIK_COMPAT_ON), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  ASSERT_CONTAINS(kvik_last_error(), "out is NULL");
  assert_null(f);

  /* The wrong mode: the offset and size. */
  uint8_t buf[4096];
  memset(buf, 0xEE, sizeof buf);
  kvik_future *fut = NULL;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r", 0, KVIK_COMPAT_ON), 0);
  ASSERT_CODE(kvik_file_write(f, buf, 4000, 123), KVIK_EBADMODE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_write");
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  ASSERT_CONTAINS(kvik_last_error(), "4000 bytes at offset 123");
  ASSERT_CONTAINS(kvik_last_error(), "read-only");
  ASSERT_CODE(kvik_file_pwrite(f, buf, 4001, 77, NULL, &fut), KVIK_EBADMODE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_pwrite");
  ASSERT_CONTAINS(kvik_last_error(), "4001 bytes at offset 77");
  ASSERT_CODE(kvik_file_write_async_future(f, buf, 4002, 55, NULL, &fut), KVIK_EBADMODE);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_write_async_future");
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  ASSERT_CONTAINS(kvik_last_error(), "4002 bytes at offset 55");
  /* Bad arguments with a handle: the path, and the request. */
  ASSERT_CODE(kvik_file_read(f, NULL, 10, 5), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  ASSERT_CONTAINS(kvik_last_error(), "10 bytes at offset 5");
  ASSERT_CODE(kvik_file_read(f, buf, 10, -5), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "10 bytes at offset -5");
  ASSERT_CODE(kvik_file_pread(f, buf, 10, 6, NULL, NULL), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_pread");
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  ASSERT_CONTAINS(kvik_last_error(), "10 bytes at offset 6");
  ASSERT_CODE(kvik_file_read_async_future(f, buf, 11, 7, NULL, NULL), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  ASSERT_CONTAINS(kvik_last_error(), "11 bytes at file offset 7");
  struct kvik_io_opts bad_opts = {.sz = 0};
  ASSERT_CODE(kvik_file_pread(f, buf, 10, 0, &bad_opts, &fut), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_pread");
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_io_opts.sz");
  ASSERT_CODE(kvik_file_info(f, NULL), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  /* A buffer that wraps around the address space (found by the memory-kind check). */
  void *wrap = (void *)(UINTPTR_MAX - 100);
  ASSERT_CODE(kvik_file_read(f, wrap, 4096, 8), KVIK_EOVERFLOW);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_read");
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  ASSERT_CONTAINS(kvik_last_error(), "4096 bytes at offset 8");
  ASSERT_CONTAINS(kvik_last_error(), "wraps");
  ASSERT_CODE(kvik_file_pread(f, wrap, 4096, 9, NULL, &fut), KVIK_EOVERFLOW);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_file_pread");
  ASSERT_CONTAINS(kvik_last_error(), "4096 bytes at offset 9");
  ASSERT_CODE(kvik_file_close(f), 0);

  /* Futures: the call that was made. */
  ASSERT_CODE(kvik_future_wait(NULL), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_future_wait:");
  ASSERT_CODE(kvik_future_wait_for(NULL, 0), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_future_wait_for:");
  ASSERT_CODE(kvik_future_done(NULL), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "kvik_future_done:");
  file_unchanged();
}

/* Every field of every batch operation is checked before any operation starts: a refused
 * submission names the operation's index and the field, and nothing of it runs. */
static void batch_operations_checked(void **state) {
  (void)state;
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r+", 0, KVIK_COMPAT_ON), 0);
  kvik_batch *b = NULL;
  ASSERT_CODE(kvik_batch_create(&b, 4), 0);
  uint8_t buf[8192];
  memset(buf, 0xEE, sizeof buf);
  static const struct {
    uintptr_t buf; /* 0: the real buffer */
    size_t size;
    int64_t file_offset, buf_offset;
    const char *field;
  } bad[] = {
      {UINTPTR_MAX - 100, 4096, 0, 0, "wraps around the address space"}, /* buf + size */
      {UINTPTR_MAX - 10, 1, 0, 100, "wraps around the address space"},   /* buf + buf_offset */
      {0, 4096, 0, INT64_MAX, "buf_offset"},
      {0, 1, 0, INT64_MAX, "buf_offset"},
      {0, 16, 0, -1, "buf_offset"},
      {0, 16, -1, 0, "file_offset"},
      {0, 16, INT64_MIN, 0, "file_offset"},
      {0, 100, INT64_MAX - 10, 0, "file_offset"},
      {0, SIZE_MAX, 0, 0, "size"},
      {1, 16, 0, 0, "buf is NULL"}, /* 1: NULL buffer */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    T_CONTEXT("bad operation %zu (%s)", i, bad[i].field);
    void *p = bad[i].buf == 0 ? buf : bad[i].buf == 1 ? NULL : (void *)bad[i].buf;
    struct kvik_batch_io ops[2] = {
        {f, buf, 4096, 0, 0, KVIK_BATCH_WRITE, NULL}, /* fine: would change the file */
        {f, p, bad[i].size, bad[i].file_offset, bad[i].buf_offset, KVIK_BATCH_READ, NULL},
    };
    ASSERT_CODE(kvik_batch_submit(b, ops, 2), KVIK_EINVAL);
    ASSERT_CONTAINS(kvik_last_error(), "kvik_batch_submit: operation 1");
    ASSERT_CONTAINS(kvik_last_error(), g_path);
    ASSERT_CONTAINS(kvik_last_error(), bad[i].field);
    unsigned nr = 1;
    struct kvik_batch_event ev[1];
    ASSERT_CODE(kvik_batch_status(b, 0, &nr, ev, 0), 0);
    ASSERT_CODE(nr, 0); /* nothing was submitted */
  }
  T_CONTEXT("%s", "");
  ASSERT_CODE(kvik_batch_destroy(b), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  file_unchanged();
}

static void missing_file(void **state) {
  (void)state;
  char *missing = t_join(g_dir, "does-not-exist");
  static const char *flags[] = {"r", "r+", "rb"};
  for (size_t i = 0; i < 3; i++) {
    kvik_file *f = NULL;
    ASSERT_CODE(kvik_file_open(&f, missing, flags[i], 0644, KVIK_COMPAT_ON), -ENOENT);
    assert_null(f);
    ASSERT_CONTAINS(kvik_last_error(), missing);
    ASSERT_CODE(t_file_size(missing), -ENOENT); /* not created */
  }
  /* "w" creates it, with the mode given (umask applied). */
  mode_t old = umask(022);
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, missing, "w", 0640, KVIK_COMPAT_ON), 0);
  ASSERT_CODE(kvik_file_close(f), 0);
  umask(old);
  struct stat st;
  assert_int_equal(stat(missing, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640);
  free(missing);
  file_unchanged();
}

static void wrong_mode(void **state) {
  (void)state;
  uint8_t buf[4096];
  memset(buf, 0xEE, sizeof buf);
  kvik_future *fut = (kvik_future *)(uintptr_t)0x1;
  /* Write on a read-only handle. */
  kvik_file *r = NULL;
  ASSERT_CODE(kvik_file_open(&r, g_path, "r", 0, KVIK_COMPAT_ON), 0);
  ASSERT_CODE(kvik_file_write(r, buf, sizeof buf, 0), KVIK_EBADMODE);
  ASSERT_CONTAINS(kvik_last_error(), g_path);
  ASSERT_CODE(kvik_file_pwrite(r, buf, sizeof buf, 100, NULL, &fut), KVIK_EBADMODE);
  assert_ptr_equal(fut, (kvik_future *)(uintptr_t)0x1);
  ASSERT_CODE(kvik_file_close(r), 0);
  file_unchanged();

  /* Read on a write-only handle ("r+" would be read/write; "w" truncates, so use a copy). */
  char *wpath = t_join(g_dir, "write-only");
  t_write_pattern_file(wpath, 5000, 5);
  kvik_file *w = NULL;
  ASSERT_CODE(kvik_file_open(&w, wpath, "w", 0644, KVIK_COMPAT_ON), 0);
  ASSERT_CODE(kvik_file_write(w, buf, 100, 0), 100);
  uint8_t in[100];
  memset(in, 0x33, sizeof in);
  ASSERT_CODE(kvik_file_read(w, in, sizeof in, 0), KVIK_EBADMODE);
  ASSERT_CONTAINS(kvik_last_error(), wpath);
  ASSERT_CODE(kvik_file_pread(w, in, sizeof in, 0, NULL, &fut), KVIK_EBADMODE);
  assert_ptr_equal(fut, (kvik_future *)(uintptr_t)0x1);
  ASSERT_FILLED(in, sizeof in, 0x33, "buffer of a refused read");
  ASSERT_CODE(kvik_file_close(w), 0);
  ASSERT_CODE(t_file_size(wpath), 100);
  free(wpath);
}

static void negative_and_overflowing_offsets(void **state) {
  (void)state;
  kvik_file *f = NULL;
  ASSERT_CODE(kvik_file_open(&f, g_path, "r+", 0, KVIK_COMPAT_ON), 0);
  uint8_t buf[4096];
  memset(buf, 0xEE, sizeof buf);
  kvik_future *fut = (kvik_future *)(uintptr_t)0x1;
  static const int64_t negative[] = {-1, -4096, INT64_MIN};
  for (size_t i = 0; i < sizeof negative / sizeof negative[0]; i++) {
    int64_t off = negative[i];
    ASSERT_CODE(kvik_file_read(f, buf, 10, off), KVIK_EINVAL);
    ASSERT_CODE(kvik_file_write(f, buf, 10, off), KVIK_EINVAL);
    ASSERT_CODE(kvik_file_pread(f, buf, 10, off, NULL, &fut), KVIK_EINVAL);
    ASSERT_CODE(kvik_file_pwrite(f, buf, 10, off, NULL, &fut), KVIK_EINVAL);
    ASSERT_CODE(kvik_file_read(f, buf, 0, off), KVIK_EINVAL);
  }
  /* offset + size beyond INT64_MAX; size beyond SSIZE_MAX. */
  static const struct {
    int64_t off;
    size_t size;
  } over[] = {{INT64_MAX, 1},
              {INT64_MAX - 10, 100},
              {1, (size_t)INT64_MAX},
              {0, SIZE_MAX},
              {0, (size_t)INT64_MAX + 1}};
  for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
    ASSERT_CODE(kvik_file_read(f, buf, over[i].size, over[i].off), KVIK_EOVERFLOW);
    ASSERT_CODE(kvik_file_write(f, buf, over[i].size, over[i].off), KVIK_EOVERFLOW);
    ASSERT_CODE(kvik_file_pread(f, buf, over[i].size, over[i].off, NULL, &fut), KVIK_EOVERFLOW);
    ASSERT_CODE(kvik_file_pwrite(f, buf, over[i].size, over[i].off, NULL, &fut),
                KVIK_EOVERFLOW);
  }
  assert_ptr_equal(fut, (kvik_future *)(uintptr_t)0x1);
  ASSERT_FILLED(buf, sizeof buf, 0xEE, "buffer of refused reads");
  /* Right at the limit is not an overflow: a read there is past the end and returns 0. */
  ASSERT_CODE(kvik_file_read(f, buf, 100, INT64_MAX - 100), 0);
  ASSERT_CODE(kvik_file_size(f), DATA_SIZE);
  ASSERT_CODE(kvik_file_close(f), 0);
  file_unchanged();
}

/* A bad configuration value makes the open fail before it can create or truncate the file. */
static void config_error_at_open(void **state) {
  (void)state;
  setenv("KVIKIO_TASK_SIZE", "huge", 1);
  int rc = kvik_config_reload();
  kvik_file *f = NULL;
  int rc_w = kvik_file_open(&f, g_path, "w", 0644, KVIK_COMPAT_DEFAULT);
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", kvik_last_error());
  unsetenv("KVIKIO_TASK_SIZE");
  ASSERT_CODE(kvik_config_reload(), 0);
  ASSERT_CODE(rc, KVIK_ECONFIG);
  ASSERT_CODE(rc_w, KVIK_ECONFIG);
  assert_null(f);
  ASSERT_CONTAINS(msg, "KVIKIO_TASK_SIZE");
  ASSERT_CONTAINS(msg, "huge");
  file_unchanged();
}

/* Pointers to zeroed memory are not handles: KVIK_EMISUSE, and the memory is left alone. */
static void not_a_handle(void **state) {
  (void)state;
  /* Big and aligned enough to be read as any of the library's structs. */
  static _Alignas(64) uint8_t zeros[1 << 16];
  memset(zeros, 0, sizeof zeros);
  kvik_file *f = (kvik_file *)zeros;
  kvik_pool *p = (kvik_pool *)zeros;
  kvik_future *fut = (kvik_future *)zeros;
  uint8_t buf[128];
  kvik_future *out = (kvik_future *)(uintptr_t)0x1;
  ASSERT_CODE(kvik_file_read(f, buf, sizeof buf, 0), KVIK_EMISUSE);
  ASSERT_CODE(kvik_file_write(f, buf, sizeof buf, 0), KVIK_EMISUSE);
  ASSERT_CODE(kvik_file_pread(f, buf, sizeof buf, 0, NULL, &out), KVIK_EMISUSE);
  ASSERT_CODE(kvik_file_pwrite(f, buf, sizeof buf, 0, NULL, &out), KVIK_EMISUSE);
  assert_ptr_equal(out, (kvik_future *)(uintptr_t)0x1);
  ASSERT_CODE(kvik_file_size(f), KVIK_EMISUSE);
  ASSERT_CODE(kvik_file_fd(f), KVIK_EMISUSE);
  assert_null(kvik_file_path(f));
  struct kvik_file_info info = {.sz = sizeof info};
  ASSERT_CODE(kvik_file_info(f, &info), KVIK_EMISUSE);
  ASSERT_CODE(kvik_file_close(f), KVIK_EMISUSE);
  ASSERT_CODE(kvik_pool_nthreads(p), KVIK_EMISUSE);
  ASSERT_CODE(kvik_pool_resize(p, 2), KVIK_EMISUSE);
  ASSERT_CODE(kvik_pool_destroy(p), KVIK_EMISUSE);
  struct kvik_io_opts o = {.sz = sizeof o, .pool = p};
  kvik_file *real = NULL;
  ASSERT_CODE(kvik_file_open(&real, g_path, "r", 0, KVIK_COMPAT_ON), 0);
  ASSERT_CODE(kvik_file_pread(real, buf, sizeof buf, 0, &o, &out), KVIK_EMISUSE);
  assert_ptr_equal(out, (kvik_future *)(uintptr_t)0x1);
  ASSERT_CODE(kvik_file_close(real), 0);
  ASSERT_CODE(kvik_future_wait_for(fut, 0), KVIK_EMISUSE);
  ASSERT_CODE(kvik_future_done(fut), KVIK_EMISUSE);
  ASSERT_CODE(kvik_future_wait(fut), KVIK_EMISUSE);
  ASSERT_FILLED(zeros, sizeof zeros, 0, "memory behind a non-handle");
  file_unchanged();
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(null_pointers, fresh_file),
      cmocka_unit_test_setup(unknown_flags, fresh_file),
      cmocka_unit_test_setup(messages_name_call_path_offset_size, fresh_file),
      cmocka_unit_test_setup(batch_operations_checked, fresh_file),
      cmocka_unit_test_setup(missing_file, fresh_file),
      cmocka_unit_test_setup(wrong_mode, fresh_file),
      cmocka_unit_test_setup(negative_and_overflowing_offsets, fresh_file),
      cmocka_unit_test_setup(config_error_at_open, fresh_file),
      cmocka_unit_test_setup(not_a_handle, fresh_file),
  };
  return cmocka_run_group_tests_name("bad_input", tests, group_setup, group_teardown);
}
