/* Bad input: NULL pointers, unknown flags, a missing file, the wrong mode, negative offsets,
 * offset + size overflow, a configuration error at open, and pointers that are not kvik
 * handles, buffers the kernel would refuse (read-only targets, buffers shorter than the size).
 * Each gets its documented code (and message), and the file on disk is unchanged afterwards.
 * Public API only. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
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
#define ASSERT_BAD_HANDLE(expr)                                                                    \
  do {                                                                                             \
    long long rc_ = (long long)(expr);                                                             \
    if (rc_ != KVIK_EINVAL && rc_ != KVIK_EMISUSE)                                                 \
      t_fail_code(#expr, rc_, KVIK_EINVAL, __FILE__, __LINE__);                                    \
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
  static const char *bad[] = {"x",  "rw", "a",  "a+",  "ab", "", "r++",
                              "wr", "+",  "rx", "w+x", "R",  "W"};
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
    ASSERT_CODE(kvik_file_pwrite(f, buf, over[i].size, over[i].off, NULL, &fut), KVIK_EOVERFLOW);
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

/* ---- buffers the kernel would refuse ------------------------------------------------------- */

/* A read into memory that is read-only, or any I/O with a buffer shorter than size, returns
 * -EFAULT on every path (buffered, O_DIRECT straight from the buffer, O_DIRECT through a bounce
 * buffer, overread of the unaligned head and tail), with the path and the file offset of the
 * first bad byte; it never kills the process, and a write changes nothing. Each case runs in a
 * child process, so a crash fails the case with its signal instead of ending the run. */

struct io_route {
  const char *name;
  int direct_read, overread, direct_write;
};

static const struct io_route routes[] = {
    {"buffered", 0, 0, 0},
    {"O_DIRECT read", 1, 0, 0},
    {"O_DIRECT read with overread", 1, 1, 0},
    {"O_DIRECT write", 0, 0, 1},
};

enum bad_kind {
  BAD_READ_ONLY,  /* the whole buffer is read-only (a read target)                    */
  BAD_SHORT,      /* the buffer ends (unmapped page) before size                      */
  BAD_HOLE,       /* an unmapped page inside the buffer                                */
  BAD_PROT_NONE,  /* a PROT_NONE page inside the buffer (both ends accessible)         */
  GOOD_READ_ONLY, /* a read-only source for a write: must work                         */
};

struct bad_case {
  const struct io_route *route;
  enum bad_kind kind;
  bool write;
  int mode;        /* 0: sync, 1: parallel, one task; 2: parallel, 4 KiB tasks      */
  size_t misalign; /* bytes from the page start of the mapping to the buffer          */
  int64_t off;     /* file offset                                                      */
  size_t size;
};

static const char *g_bad_dir; /* on a filesystem that takes O_DIRECT, when there is one */

#define BAD_PAGES 6
#define BAD_FILE_SIZE ((size_t)32768) /* past every case's range: no case reads the end of file */
#define CHILD_FAIL(...)                                                                            \
  do {                                                                                             \
    printf("  case failed: ");                                                                     \
    printf(__VA_ARGS__);                                                                           \
    printf("\n  kvik_last_error(): %s\n", kvik_last_error());                                      \
    fflush(stdout);                                                                                \
    return 1;                                                                                      \
  } while (0)

/* The body of one case, in the child. Returns 0 if every check held. */
static int bad_buffer_child(const struct bad_case *c, const char *path) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)c->route->direct_read) ||
      kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD, (uint64_t)c->route->overread) ||
      kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)c->route->direct_write))
    CHILD_FAIL("kvik_config_set_u64");
  /* The pool (a parallel case's) is made before the buffer's hole: its threads' stacks and a
   * sanitizer's bookkeeping are mapped then, and could otherwise land in the hole, so the
   * "bad" page would be mapped after all (seen under ASan and TSan). */
  kvik_pool *pool = NULL;
  if (c->mode != 0) {
    if (kvik_pool_create(&pool, 3) != 0)
      CHILD_FAIL("kvik_pool_create");
    /* Workers start at the first submission: a warm-up read starts them all now. */
    kvik_file *w = NULL;
    uint8_t *scratch = malloc(BAD_FILE_SIZE);
    struct kvik_io_opts wo = {.sz = sizeof wo, .task_size = 512, .pool = pool};
    kvik_future *wf = NULL;
    if (!scratch || kvik_file_open(&w, path, "r", 0, KVIK_COMPAT_ON) != 0 ||
        kvik_file_pread(w, scratch, BAD_FILE_SIZE, 0, &wo, &wf) != 0 ||
        kvik_future_wait(wf) != (ssize_t)BAD_FILE_SIZE)
      CHILD_FAIL("warming the pool up");
    kvik_file_close(w);
    free(scratch);
  }
  uint8_t *map =
      mmap(NULL, BAD_PAGES * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED)
    CHILD_FAIL("mmap: %s", strerror(errno));
  uint8_t *buf = map + c->misalign;
  /* Write sources carry another seed's pattern, so any byte written would change the file. */
  if (c->write)
    t_pat_fill(buf, BAD_PAGES * page - c->misalign, (uint64_t)c->off,
               c->kind == GOOD_READ_ONLY ? SEED : SEED + 1);
  else
    memset(buf, 0x5A, BAD_PAGES * page - c->misalign);
  size_t bad = c->size; /* buffer index of the first byte the kernel would refuse */
  switch (c->kind) {
  case BAD_READ_ONLY:
  case GOOD_READ_ONLY:
    if (mprotect(map, BAD_PAGES * page, PROT_READ) != 0)
      CHILD_FAIL("mprotect: %s", strerror(errno));
    bad = c->kind == BAD_READ_ONLY ? 0 : c->size;
    break;
  case BAD_SHORT:
    /* The mapping ends one page early; size runs into the unmapped page. */
    munmap(map + (BAD_PAGES - 1) * page, page);
    bad = (BAD_PAGES - 1) * page - c->misalign;
    break;
  case BAD_HOLE:
    munmap(map + 3 * page, page);
    bad = 3 * page - c->misalign;
    break;
  case BAD_PROT_NONE:
    mprotect(map + 3 * page, page, PROT_NONE);
    bad = 3 * page - c->misalign;
    break;
  }
  if (bad > c->size)
    bad = c->size;

  kvik_file *f = NULL;
  if (kvik_file_open(&f, path, c->write ? "r+" : "r", 0, KVIK_COMPAT_ON) != 0)
    CHILD_FAIL("kvik_file_open");
  struct kvik_file_info info = {.sz = sizeof info};
  if (kvik_file_info(f, &info) != 0)
    CHILD_FAIL("kvik_file_info");
  if (g_bad_dir && (info.direct_read != (c->route->direct_read && !c->write) ||
                    info.direct_write != (c->route->direct_write && c->write)))
    CHILD_FAIL("direct_read %d, direct_write %d: not the route asked for", info.direct_read,
               info.direct_write);
  long long rc;
  if (c->mode == 0) {
    rc = c->write ? kvik_file_write(f, buf, c->size, c->off)
                  : kvik_file_read(f, buf, c->size, c->off);
  } else {
    /* A pool made in this process (above): the child is not to depend on the parent's pool. */
    struct kvik_io_opts o = {
        .sz = sizeof o, .task_size = c->mode == 1 ? c->size : page, .pool = pool};
    kvik_future *fut = NULL;
    rc = c->write ? kvik_file_pwrite(f, buf, c->size, c->off, &o, &fut)
                  : kvik_file_pread(f, buf, c->size, c->off, &o, &fut);
    if (rc == 0)
      rc = kvik_future_wait(fut);
  }
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", kvik_last_error());
  /* An unmapped page can be mapped again by the process itself while the call runs (a
   * sanitizer's allocator does, for the workers' bookkeeping); then the kernel rightly fills it
   * and the case proves nothing: it is skipped, saying so. The same holds when the kernel
   * refused the page but it was mapped again before kvik looked for the first bad byte (the
   * message can then name no offset). mincore fails with ENOMEM on an unmapped page. */
  if (c->kind == BAD_SHORT || c->kind == BAD_HOLE) {
    uint8_t *hole = map + (c->kind == BAD_SHORT ? BAD_PAGES - 1 : 3) * page;
    unsigned char v;
    if (mincore(hole, page, &v) == 0) {
      printf("  SKIP case: its unmapped page was mapped again during the call (by this "
             "process's own allocator); nothing to judge\n");
      return 0;
    }
  }
  if (c->kind == GOOD_READ_ONLY) {
    if (rc != (long long)c->size)
      CHILD_FAIL("returned %lld (%s), expected %zu", rc, kvik_strerror_name((int)rc), c->size);
  } else {
    if (rc != -EFAULT)
      CHILD_FAIL("returned %lld (%s), expected -EFAULT", rc, kvik_strerror_name((int)rc));
    if (!strstr(msg, path))
      CHILD_FAIL("message \"%s\" does not name the file", msg);
    /* The offset reported is the first byte not transferred: the first bad byte, except for
     * parallel tasks, whose failing task reports its own first bad byte too. */
    char want[64];
    snprintf(want, sizeof want, "offset %lld", (long long)c->off + (long long)bad);
    if (!strstr(msg, want))
      CHILD_FAIL("message \"%s\" does not say \"%s\"", msg, want);
    if (!strstr(msg, "Bad address"))
      CHILD_FAIL("message \"%s\" does not say why (Bad address)", msg);
  }
  if (kvik_file_close(f) != 0)
    CHILD_FAIL("kvik_file_close");
  kvik_pool_destroy(pool);
  /* A write from a bad buffer writes nothing (a parallel write's other tasks may have written
   * their ranges; their source was readable). */
  if (!c->write || c->mode != 2) {
    uint8_t *disk = malloc(BAD_FILE_SIZE + 1);
    if (!disk || t_read_file(path, disk, BAD_FILE_SIZE + 1, 0) != (long long)BAD_FILE_SIZE)
      CHILD_FAIL("reading %s back: not %zu bytes", path, BAD_FILE_SIZE);
    long long at = t_pat_find_mismatch(disk, BAD_FILE_SIZE, 0, SEED);
    free(disk);
    if (at >= 0)
      CHILD_FAIL("the file changed at offset %lld", at);
  }
  /* A read-only target is left alone (the kernel would have refused any store). */
  if (!c->write && c->kind == BAD_READ_ONLY && t_find_not(buf, c->size, 0x5A) >= 0)
    CHILD_FAIL("the read-only buffer changed");
  return 0;
}

/* Runs the case in a child. Returns false (with the case and why printed) if the child died of a
 * signal or a check failed. */
static bool run_bad_case(const struct bad_case *c, const char *path) {
  char what[256];
  snprintf(what, sizeof what, "%s %s, %s buffer, %s, misaligned by %zu, %zu bytes at %lld",
           c->route->name, c->write ? "write" : "read",
           (const char *[]){"read-only", "short", "holed", "PROT_NONE-holed",
                            "read-only (good)"}[c->kind],
           (const char *[]){"sync", "parallel (one task)", "parallel (page tasks)"}[c->mode],
           c->misalign, c->size, (long long)c->off);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    /* cmocka catches these to fail a test in-process; here they are to end the child. */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    signal(SIGILL, SIG_DFL);
    signal(SIGFPE, SIG_DFL);
    alarm(60); /* a hang fails the case too */
    _exit(bad_buffer_child(c, path));
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid)
    fail_msg("waitpid: %s", strerror(errno));
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (WIFSIGNALED(status))
    printf("FAIL %s: the process was killed by signal %d (%s)\n", what, WTERMSIG(status),
           strsignal(WTERMSIG(status)));
  else if (!ok)
    printf("FAIL %s (see above)\n", what);
  fflush(stdout);
  /* The next case starts from the pattern (a parallel write's good tasks changed the file). */
  t_write_pattern_file(path, BAD_FILE_SIZE, SEED);
  return ok;
}

/* 1 if this kernel answers PROCMAP_QUERY (Linux 6.11): kvik then checks the permissions of every
 * mapping a buffer spans; before it, only its ends (and that every page is mapped). */
static bool kernel_has_procmap_query(void) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  uint64_t q[13] = {104, 0, (uint64_t)(uintptr_t)&fd}; /* struct procmap_query: size, flags, addr */
  bool ok = ioctl(fd, 0xC0686611UL, q) == 0;
  close(fd);
  return ok;
}

static void bad_buffers(void **state) {
  (void)state;
  if (getenv("KVIK_TEST_VALGRIND"))
    SKIP_BECAUSE("under valgrind (scripts/valgrind.sh), whose memcheck rightly counts each "
                 "deliberately bad buffer handed to a system call as an error; the gcc, ASan and "
                 "TSan runs judge these cases");
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  g_bad_dir = t_direct_io_base(NULL);
  char *dir = t_mkdtemp(g_bad_dir);
  assert_non_null(dir);
  char *path = t_join(dir, "bad-buffer");
  t_write_pattern_file(path, BAD_FILE_SIZE, SEED);
  if (!g_bad_dir)
    printf("# bad_buffers: no filesystem here takes O_DIRECT; the O_DIRECT routes run buffered\n");
  bool exact = kernel_has_procmap_query();
  if (!exact)
    printf("# bad_buffers: no PROCMAP_QUERY (Linux < 6.11): the PROT_NONE-hole cases are skipped; "
           "kvik checks the ends of a buffer and that its pages are mapped\n");
  static const size_t misaligns[] = {0, 1, 1000};
  static const int64_t offsets[] = {0, 100};
  int cases = 0, failed = 0;
  for (size_t r = 0; r < sizeof routes / sizeof routes[0]; r++) {
    for (int write = 0; write < 2; write++) {
      /* Reads take each read route and the plain buffered one; writes the write routes. */
      if (write ? routes[r].direct_read : routes[r].direct_write)
        continue;
      for (int kind = BAD_READ_ONLY; kind <= GOOD_READ_ONLY; kind++) {
        if ((kind == BAD_READ_ONLY && write) || (kind == GOOD_READ_ONLY && !write) ||
            (kind == BAD_PROT_NONE && !exact))
          continue;
        for (size_t m = 0; m < sizeof misaligns / sizeof misaligns[0]; m++) {
          for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++) {
            for (int mode = 0; mode < 3; mode++) {
              struct bad_case c = {.route = &routes[r],
                                   .kind = (enum bad_kind)kind,
                                   .write = write,
                                   .mode = mode,
                                   .misalign = misaligns[m],
                                   .off = offsets[o],
                                   .size = BAD_PAGES * page - misaligns[m] - 7};
              failed += !run_bad_case(&c, path);
              cases++;
            }
          }
        }
      }
    }
  }
  printf("# bad_buffers: %d cases, each in its own process; %d failed\n", cases, failed);
  ASSERT_FILE_PATTERN(path, BAD_FILE_SIZE, SEED);
  free(path);
  t_rmtree(dir);
  if (failed)
    fail_msg("%d of %d bad-buffer cases failed (listed above)", failed, cases);
}

/* ---- files kvik cannot serve ----------------------------------------------------------------- */

/* A FIFO, a socket and a character device: every call that takes a path refuses them with
 * KVIK_EUNSUPPORTED, naming the path and the type, at once (the open of a FIFO used to wait for
 * its other end forever). In a child with an alarm, so a hang fails the test. */
static int special_path_child(const char *path, const char *type) {
  static const char *flags[] = {"r", "r+", "w", "w+"};
  static const kvik_compat compats[] = {KVIK_COMPAT_ON, KVIK_COMPAT_DEFAULT};
  for (int dio = 0; dio < 2; dio++) {
    if (kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_READ, (uint64_t)dio) ||
        kvik_config_set_u64(KVIK_CFG_AUTO_DIRECT_IO_WRITE, (uint64_t)dio))
      CHILD_FAIL("kvik_config_set_u64");
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
      for (size_t c = 0; c < 2; c++) {
        kvik_file *f = NULL;
        int rc = kvik_file_open(&f, path, flags[i], 0644, compats[c]);
        if (rc != KVIK_EUNSUPPORTED || f)
          CHILD_FAIL("kvik_file_open(%s, \"%s\") = %d (%s), expected KVIK_EUNSUPPORTED", path,
                     flags[i], rc, kvik_strerror_name(rc));
        if (!strstr(kvik_last_error(), path) || !strstr(kvik_last_error(), type))
          CHILD_FAIL("kvik_file_open message does not name %s and \"%s\"", path, type);
      }
    }
  }
  int rc = kvik_drop_file_cache(path);
  if (rc != KVIK_EUNSUPPORTED || !strstr(kvik_last_error(), path) ||
      !strstr(kvik_last_error(), type))
    CHILD_FAIL("kvik_drop_file_cache(%s) = %d (%s), expected KVIK_EUNSUPPORTED naming \"%s\"", path,
               rc, kvik_strerror_name(rc), type);
  struct kvik_path_info pi = {.sz = sizeof pi};
  rc = kvik_path_info(path, &pi);
  if (rc != KVIK_EUNSUPPORTED || !strstr(kvik_last_error(), path) ||
      !strstr(kvik_last_error(), type))
    CHILD_FAIL("kvik_path_info(%s) = %d (%s), expected KVIK_EUNSUPPORTED naming \"%s\"", path, rc,
               kvik_strerror_name(rc), type);
  return 0;
}

static void run_special(const char *path, const char *type) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    alarm(30); /* a call that blocks ends the child with SIGALRM */
    _exit(special_path_child(path, type));
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid)
    fail_msg("waitpid: %s", strerror(errno));
  if (WIFSIGNALED(status))
    fail_msg("%s (%s): the child was killed by signal %d (%s)%s", path, type, WTERMSIG(status),
             strsignal(WTERMSIG(status)),
             WTERMSIG(status) == SIGALRM ? ": a call blocked for 30 s" : "");
  if (WEXITSTATUS(status) != 0)
    fail_msg("%s (%s): failed (see above)", path, type);
}

static void special_files(void **state) {
  (void)state;
  char *fifo = t_join(g_dir, "fifo");
  unlink(fifo);
  assert_int_equal(mkfifo(fifo, 0644), 0);
  run_special(fifo, "FIFO");
  /* Nothing was written into it, and it is still a FIFO. */
  struct stat st;
  assert_int_equal(stat(fifo, &st), 0);
  assert_true(S_ISFIFO(st.st_mode));
  unlink(fifo);
  free(fifo);

  char *sock = t_join(g_dir, "sock");
  unlink(sock);
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(s >= 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(sock) >= sizeof addr.sun_path) {
    printf("# special_files: %s is too long for a socket address; the socket case is skipped\n",
           sock);
  } else {
    memcpy(addr.sun_path, sock, strlen(sock) + 1);
    assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_int_equal(listen(s, 1), 0);
    run_special(sock, "socket");
  }
  close(s);
  unlink(sock);
  free(sock);

  run_special("/dev/null", "character device");
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
      cmocka_unit_test(bad_buffers),
      cmocka_unit_test_setup(special_files, fresh_file),
  };
  return cmocka_run_group_tests_name("bad_input", tests, group_setup, group_teardown);
}
