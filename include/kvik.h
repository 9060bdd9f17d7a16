/* kvik: move bytes between files and host or GPU memory as fast as the hardware allows.
 *
 * This header is the whole public API and its reference. Conventions for every function:
 *
 *  - Returns are 0, a byte count, or a negative code: -errno for operating-system failures
 *    (e.g. -ENOENT), or a KVIK_E* code (all below -5000) for the library's own. kvik_strerror()
 *    gives static text for any code, kvik_strerror_name() its symbolic name.
 *  - Every failure leaves a detail message in the calling thread (kvik_last_error()): what
 *    failed, the path, the offset and size, and why (errno text, CUDA or cuFile error name).
 *    A future's failure is reported in the thread that waits on it.
 *  - The library never prints, aborts or exits. Output only goes to the log callback set with
 *    kvik_set_log(), or to KVIKIO_LOG_FILE when the user sets it.
 *  - Short reads at end of file are byte counts, not errors; a read starting at or past the end
 *    returns 0.
 *  - Options structs start with `size_t sz` (set it to sizeof the struct) and may be NULL for
 *    defaults. Fields are only ever appended.
 *  - Close/destroy functions accept NULL.
 *
 * Thread-safety: all functions may be called from any thread. A kvik_file may be used by many
 * threads at once for reads and writes (positioned I/O, no shared offset); closing it while
 * another thread uses it is the caller's bug. A kvik_future belongs to one waiter.
 */
#ifndef KVIK_H
#define KVIK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KVIK_BUILDING)
#define KVIK_API __attribute__((visibility("default")))
#else
#define KVIK_API
#endif

#define KVIK_VERSION_MAJOR 0
#define KVIK_VERSION_MINOR 1
#define KVIK_VERSION_PATCH 0
#define KVIK_VERSION_STRING "0.1.0"

/** The library's version string, e.g. "0.1.0". Static storage. */
KVIK_API const char *kvik_version(void);

/* ------------------------------------------------------------------------------------------
 * Errors. The table is append-only: codes never change meaning or value.
 * ------------------------------------------------------------------------------------------ */
#define KVIK_ERRORS(X)                                                                         \
  X(KVIK_EINVAL, -5001, "invalid argument")                                                    \
  X(KVIK_EMISUSE, -5002, "not a kvik handle, or a handle used after it was freed")             \
  X(KVIK_ECONFIG, -5003, "invalid configuration value")                                        \
  X(KVIK_EBADMODE, -5004, "operation not allowed by the mode the file was opened with")        \
  X(KVIK_EOVERFLOW, -5005, "offset or size out of range")                                      \
  X(KVIK_ENOCUDA, -5006, "CUDA driver not available")                                          \
  X(KVIK_ECUDA, -5007, "CUDA driver call failed")                                              \
  X(KVIK_ENOCUFILE, -5008, "cuFile not available")                                             \
  X(KVIK_ECUFILE, -5009, "cuFile call failed")                                                 \
  X(KVIK_ETIMEDOUT, -5010, "timed out")                                                        \
  X(KVIK_ECANCELED, -5011, "operation canceled")                                               \
  X(KVIK_EUNSUPPORTED, -5012, "not supported")                                                 \
  X(KVIK_EHTTP, -5013, "HTTP request failed")                                                  \
  X(KVIK_EBUSY, -5014, "resource busy")                                                        \
  X(KVIK_EINTERNAL, -5015, "internal error")

enum kvik_error {
#define KVIK_X_ENUM(name, value, text) name = value,
  KVIK_ERRORS(KVIK_X_ENUM)
#undef KVIK_X_ENUM
};

/** Static text for any return code (negative errno or KVIK_E*). Never NULL. */
KVIK_API const char *kvik_strerror(int code);
/** Symbolic name of a code ("KVIK_EINVAL", "ENOENT"), or "UNKNOWN". Static storage. */
KVIK_API const char *kvik_strerror_name(int code);
/** This thread's detail message for its most recent failure ("" if none). The pointer stays
 *  valid until this thread's next kvik call. */
KVIK_API const char *kvik_last_error(void);

/* ------------------------------------------------------------------------------------------
 * Logging: silent by default. The callback may be called from any thread, never under a
 * library lock; it must not call back into kvik.
 * ------------------------------------------------------------------------------------------ */
enum kvik_log_level {
  KVIK_LOG_TRACE = 0,
  KVIK_LOG_DEBUG = 1,
  KVIK_LOG_INFO = 2,
  KVIK_LOG_WARN = 3,
  KVIK_LOG_ERROR = 4,
  KVIK_LOG_OFF = 5,
};
typedef void (*kvik_log_fn)(int level, const char *message, void *user);
/** Sets the log sink (NULL: none, the default) and the lowest level passed to it. */
KVIK_API void kvik_set_log(kvik_log_fn fn, void *user, int min_level);

/* ------------------------------------------------------------------------------------------
 * Configuration: one table of settings, read from the environment once, on first use.
 * ------------------------------------------------------------------------------------------ */
enum kvik_cfg {
  KVIK_CFG_COMPAT_MODE = 0,          /* KVIKIO_COMPAT_MODE: kvik_compat value               */
  KVIK_CFG_NTHREADS,                 /* KVIKIO_NTHREADS (alias KVIKIO_NUM_THREADS)          */
  KVIK_CFG_TASK_SIZE,                /* KVIKIO_TASK_SIZE, bytes                             */
  KVIK_CFG_GDS_THRESHOLD,            /* KVIKIO_GDS_THRESHOLD, bytes                         */
  KVIK_CFG_BOUNCE_BUFFER_SIZE,       /* KVIKIO_BOUNCE_BUFFER_SIZE, bytes                    */
  KVIK_CFG_AUTO_DIRECT_IO_READ,      /* KVIKIO_AUTO_DIRECT_IO_READ, 0/1                     */
  KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD, /* KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD, 0/1       */
  KVIK_CFG_AUTO_DIRECT_IO_WRITE,     /* KVIKIO_AUTO_DIRECT_IO_WRITE, 0/1                    */
  KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE, /* KVIKIO_THREAD_POOL_PER_BLOCK_DEVICE, 0/1       */
  KVIK_CFG_HTTP_MAX_ATTEMPTS,        /* KVIKIO_HTTP_MAX_ATTEMPTS                            */
  KVIK_CFG_HTTP_TIMEOUT,             /* KVIKIO_HTTP_TIMEOUT, seconds                        */
  KVIK_CFG_HTTP_STATUS_CODES,        /* KVIKIO_HTTP_STATUS_CODES, string "429,500,..."      */
  KVIK_CFG_REMOTE_VERBOSE,           /* KVIKIO_REMOTE_VERBOSE, 0/1                          */
  KVIK_CFG_WEBHDFS_USERNAME,         /* KVIKIO_WEBHDFS_USERNAME, string                     */
  KVIK_CFG_LOG_LEVEL,                /* KVIKIO_LOG_LEVEL, kvik_log_level                    */
  KVIK_CFG_LOG_FILE,                 /* KVIKIO_LOG_FILE, string (path)                      */
  KVIK_CFG_COUNT
};
enum kvik_cfg_type { KVIK_CFG_TYPE_BOOL, KVIK_CFG_TYPE_U64, KVIK_CFG_TYPE_SIZE,
                     KVIK_CFG_TYPE_ENUM, KVIK_CFG_TYPE_STRING };
enum kvik_cfg_source { KVIK_CFG_SRC_DEFAULT, KVIK_CFG_SRC_ENV, KVIK_CFG_SRC_SET };

/** Reads the environment if not done yet. Returns 0, or KVIK_ECONFIG with a message naming
 *  the variable and its value. The same error is returned by every call that needs the
 *  configuration until the environment is fixed and kvik_config_reload() is called. */
KVIK_API int kvik_config_init(void);
/** Reads the environment again, dropping values set through the setters. */
KVIK_API int kvik_config_reload(void);
/** Numeric value of a setting (bool, u64, size, enum). KVIK_EINVAL for a string setting. */
KVIK_API int kvik_config_get_u64(enum kvik_cfg key, uint64_t *value);
/** Sets a numeric setting; KVIK_EINVAL (value named) if outside kvik_config_bounds(). Takes
 *  effect for operations started after it returns. */
KVIK_API int kvik_config_set_u64(enum kvik_cfg key, uint64_t value);
/** Copies a setting's value, formatted as text, into buf (always NUL-terminated). Returns the
 *  length of the full text (like snprintf), or a negative code. Works for every type. */
KVIK_API int kvik_config_get_str(enum kvik_cfg key, char *buf, size_t len);
/** Sets a setting from text, parsed exactly like its environment variable. */
KVIK_API int kvik_config_set_str(enum kvik_cfg key, const char *value);
/** Environment variable name of a setting ("KVIKIO_NTHREADS"), NULL for an unknown key. */
KVIK_API const char *kvik_config_name(enum kvik_cfg key);
KVIK_API int kvik_config_type(enum kvik_cfg key);
KVIK_API int kvik_config_source(enum kvik_cfg key);
/** Inclusive bounds of a numeric setting. */
KVIK_API int kvik_config_bounds(enum kvik_cfg key, uint64_t *min, uint64_t *max);

/* ------------------------------------------------------------------------------------------
 * Thread pools and futures.
 * ------------------------------------------------------------------------------------------ */
typedef struct kvik_pool kvik_pool;     /* opaque */
typedef struct kvik_future kvik_future; /* opaque */

/** Creates a pool of nthreads workers (1..4096). Caller owns it; free with kvik_pool_destroy.
 *  Workers start lazily. A pool keeps working in a child process after fork(). */
KVIK_API int kvik_pool_create(kvik_pool **out, unsigned nthreads);
/** Waits for queued work to finish, stops the workers and frees the pool. NULL is fine. The
 *  default pool cannot be destroyed (KVIK_EINVAL). */
KVIK_API int kvik_pool_destroy(kvik_pool *pool);
/** Changes the number of workers; work in flight finishes first. */
KVIK_API int kvik_pool_resize(kvik_pool *pool, unsigned nthreads);
/** Number of workers; pool NULL means the default pool. Negative code on error. */
KVIK_API int kvik_pool_nthreads(kvik_pool *pool);
/** The process's default pool (sized by KVIKIO_NTHREADS), created on first use. Not owned by
 *  the caller. */
KVIK_API int kvik_pool_default(kvik_pool **out);

/** Waits for the operation and frees the future. Returns the byte count, or a negative code
 *  whose detail is then in this thread's kvik_last_error(). Must be called exactly once per
 *  future; the I/O buffer must stay valid until then. */
KVIK_API ssize_t kvik_future_wait(kvik_future *fut);
/** Waits up to timeout_ms (negative: forever) without freeing. Returns 0 when the operation
 *  is done, KVIK_ETIMEDOUT if not yet, KVIK_EMISUSE for a bad handle. */
KVIK_API int kvik_future_wait_for(kvik_future *fut, int64_t timeout_ms);
/** 1 if done, 0 if not, negative code for a bad handle. Never blocks. */
KVIK_API int kvik_future_done(const kvik_future *fut);

/* ------------------------------------------------------------------------------------------
 * Files.
 * ------------------------------------------------------------------------------------------ */
typedef enum { KVIK_COMPAT_OFF = 0, KVIK_COMPAT_ON = 1, KVIK_COMPAT_AUTO = 2,
               KVIK_COMPAT_DEFAULT = 3 /* use KVIKIO_COMPAT_MODE */ } kvik_compat;

typedef struct kvik_file kvik_file; /* opaque */

/** Which path serves a file. */
enum kvik_io_path {
  KVIK_PATH_POSIX = 0,          /* kvik's own POSIX path (host and device memory)          */
  KVIK_PATH_GDS = 1,            /* cuFile doing real DMA (nvidia-fs or P2PDMA)             */
  KVIK_PATH_CUFILE_COMPAT = 2,  /* cuFile running its own host-staged compatibility mode   */
};

struct kvik_file_info {
  size_t sz;            /* set to sizeof(struct kvik_file_info) by the caller          */
  int path;             /* enum kvik_io_path                                           */
  int compat;           /* the compat mode the file was opened with (resolved)         */
  int direct_read;      /* 1 if opportunistic O_DIRECT reads are in use                */
  int direct_write;     /* 1 if opportunistic O_DIRECT writes are in use               */
  int readable;         /* opened for reading                                          */
  int writable;         /* opened for writing                                          */
  char reason[256];     /* why this path, in words                                     */
};

/** Opens path. flags: "r" (read), "r+" (read/write, must exist), "w" (write, create,
 *  truncate), "w+" (read/write, create, truncate); a trailing 'b' is ignored. Append modes
 *  ("a", "a+") are refused with KVIK_EINVAL: positioned writes cannot honour O_APPEND; open
 *  with "r+" and write at kvik_file_size() instead. The descriptors are O_CLOEXEC. mode is
 *  used when the file is created. compat: see kvik_compat. *out is set only on success; the
 *  caller owns it and frees it with kvik_file_close(). */
KVIK_API int kvik_file_open(kvik_file **out, const char *path, const char *flags, mode_t mode,
                            kvik_compat compat);
/** Closes the descriptors and frees the handle. NULL is fine. Returns 0 or the first close
 *  error (the handle is freed regardless). */
KVIK_API int kvik_file_close(kvik_file *f);
/** Current size in bytes (kept correct after writes through the handle), or a negative code. */
KVIK_API int64_t kvik_file_size(kvik_file *f);
/** Fills info (info->sz must be set). */
KVIK_API int kvik_file_info(kvik_file *f, struct kvik_file_info *info);
/** The buffered file descriptor (owned by the handle), or a negative code. */
KVIK_API int kvik_file_fd(kvik_file *f);
/** The path the file was opened with (owned by the handle). NULL for a bad handle. */
KVIK_API const char *kvik_file_path(kvik_file *f);

/** Per-call options for parallel I/O. */
struct kvik_io_opts {
  size_t sz;         /* sizeof(struct kvik_io_opts)                                   */
  size_t task_size;  /* 0: KVIKIO_TASK_SIZE                                           */
  kvik_pool *pool;   /* NULL: the file's pool (default, or per block device)          */
};

/** Reads size bytes at offset into buf, blocking, on the calling thread. Loops over short
 *  transfers and EINTR. Returns the bytes read (short only at end of file), or a negative code.
 *  buf may be host or (with CUDA) device memory. */
KVIK_API ssize_t kvik_file_read(kvik_file *f, void *buf, size_t size, int64_t offset);
/** Writes size bytes from buf at offset, blocking. Returns size or a negative code. */
KVIK_API ssize_t kvik_file_write(kvik_file *f, const void *buf, size_t size, int64_t offset);
/** Parallel read: split into task-size chunks on the pool. *out receives a future to wait on.
 *  On an immediate error (bad arguments) no future is made and the code is returned. */
KVIK_API int kvik_file_pread(kvik_file *f, void *buf, size_t size, int64_t offset,
                             const struct kvik_io_opts *opts, kvik_future **out);
/** Parallel write; see kvik_file_pread. */
KVIK_API int kvik_file_pwrite(kvik_file *f, const void *buf, size_t size, int64_t offset,
                              const struct kvik_io_opts *opts, kvik_future **out);

/* ------------------------------------------------------------------------------------------
 * Page cache helpers.
 * ------------------------------------------------------------------------------------------ */
/** Drops the page cache of a whole file (posix_fadvise DONTNEED after fdatasync). */
KVIK_API int kvik_drop_file_cache(const char *path);

/* ------------------------------------------------------------------------------------------
 * System facts, as kvik sees them.
 * ------------------------------------------------------------------------------------------ */
struct kvik_path_info {
  size_t sz;                 /* sizeof(struct kvik_path_info)                              */
  char fs_type[32];          /* e.g. "ext4", "tmpfs", "xfs"                                */
  char block_device[64];     /* e.g. "nvme0n1", "" for a virtual filesystem                */
  unsigned dev_major, dev_minor;
  int direct_io;             /* 1 if O_DIRECT opens and reads here, 0 if refused            */
};
/** Describes the filesystem and device holding path (a file or directory). */
KVIK_API int kvik_path_info(const char *path, struct kvik_path_info *info);

/* ------------------------------------------------------------------------------------------
 * CUDA (device memory). Everything here works without CUDA: functions report KVIK_ENOCUDA.
 * ------------------------------------------------------------------------------------------ */
/* (CUDA section: declarations are added here.) */

#ifdef __cplusplus
}
#endif
#endif /* KVIK_H */
