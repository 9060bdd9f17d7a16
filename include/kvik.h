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
 *  - Handles (kvik_file, kvik_pool, kvik_future, kvik_remote, kvik_batch) are checked on entry
 *    against the library's set of live handles, by address, before anything is read through
 *    them: a handle used after its close or destroy, a future after its kvik_future_wait, a
 *    handle of another kind, or a pointer that never was a handle gives KVIK_EMISUSE (the
 *    detail names the call), and the memory it points to is never read. As with file
 *    descriptors, the address of a closed handle may be given to a handle of the same kind
 *    opened later; a stale pointer then refers to that new handle.
 *
 * Thread-safety: all functions may be called from any thread. A kvik_file may be used by many
 * threads at once for reads and writes (positioned I/O, no shared offset), and closed while
 * other threads use it: a call that has started finishes normally, later calls get
 * KVIK_EMISUSE (see kvik_file_close). The same holds for kvik_remote and kvik_batch handles.
 * A kvik_future belongs to one waiter. A pool must not be destroyed while other threads may
 * still pass it to calls.
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
  KVIK_CFG_BOUNCE_BUFFER_SIZE,       /* KVIKIO_BOUNCE_BUFFER_SIZE, bytes >= 1, page-rounded */
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
  KVIK_CFG_PREFER_CUFILE_COMPAT,     /* KVIK_PREFER_CUFILE_COMPAT, 0/1: compat mode AUTO uses
                                        cuFile even where cuFile would only run its own
                                        compatibility mode (default 0: kvik's faster path)  */
  KVIK_CFG_STREAM_FALLBACK,          /* KVIK_STREAM_FALLBACK, 0/1: kvik's own stream ordering for
                                        kvik_file_read_async/write_async where GDS does not
                                        serve (default 1; 0: those calls return
                                        KVIK_EUNSUPPORTED there)                           */
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
 *  Workers start lazily. A pool keeps working in a child process after fork(): the child starts
 *  fresh workers on its first submission. An operation in flight at fork() belongs to the
 *  parent: it never completes in the child, and kvik_future_wait, kvik_future_wait_for and
 *  kvik_future_done on a future made before fork() return KVIK_ECANCELED at once in the child
 *  (the future is not freed there; its memory is the parent's copy). */
KVIK_API int kvik_pool_create(kvik_pool **out, unsigned nthreads);
/** Waits for queued work to finish, stops the workers and frees the pool. NULL is fine. The
 *  default pool cannot be destroyed (KVIK_EINVAL). Calls with the pool after this one started
 *  get KVIK_EMISUSE; destroying a pool while another thread may still be inside a call with it
 *  is the caller's bug. */
KVIK_API int kvik_pool_destroy(kvik_pool *pool);
/** Changes the number of workers; work in flight finishes first. */
KVIK_API int kvik_pool_resize(kvik_pool *pool, unsigned nthreads);
/** Number of workers; pool NULL means the default pool. Negative code on error. */
KVIK_API int kvik_pool_nthreads(kvik_pool *pool);
/** The process's default pool (sized by KVIKIO_NTHREADS), created on first use. Not owned by
 *  the caller. */
KVIK_API int kvik_pool_default(kvik_pool **out);

/** Waits for the operation and frees the future. Returns the byte count, or a negative code
 *  whose detail is then in this thread's kvik_last_error(). Call it exactly once per future;
 *  the I/O buffer must stay valid until then. A second call, or any call with the future
 *  afterwards, returns KVIK_EMISUSE. In a child process, on a future made before fork():
 *  KVIK_ECANCELED at once (see kvik_pool_create). */
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
 *  caller owns it and frees it with kvik_file_close().
 *
 *  kvik serves regular files and block devices. A directory gives -EISDIR; a FIFO, a socket
 *  or a character device gives KVIK_EUNSUPPORTED at once, without being opened (the open of a
 *  FIFO would wait for its other end), with the path and the type in the message.
 *
 *  Where direct I/O is wanted (KVIKIO_AUTO_DIRECT_IO_READ/_WRITE) the handle opens a second,
 *  O_DIRECT descriptor. A filesystem that refuses O_DIRECT (EINVAL) is used buffered, silently
 *  (kvik_file_info says direct_read/direct_write 0); any other failure of that open, such as
 *  running out of descriptors (-EMFILE, -ENFILE) or memory, fails kvik_file_open with its code
 *  and a message saying the O_DIRECT descriptor could not be opened. */
KVIK_API int kvik_file_open(kvik_file **out, const char *path, const char *flags, mode_t mode,
                            kvik_compat compat);
/** Closes the handle. NULL is fine. From the moment this is called, every call with f returns
 *  KVIK_EMISUSE (a call already running on another thread finishes normally). Operations in
 *  flight keep the file open and finish normally, with the same bytes and results as without
 *  the close: a parallel read or write (kvik_file_pread/pwrite) until its last chunk is done, a
 *  batch operation until its event is reaped or its batch destroyed, a stream-ordered operation
 *  until the stream has passed it. close never waits for them.
 *  When nothing is in flight, the descriptors are closed and the handle freed before this
 *  returns, and the result is 0 or the first close(2) error (the handle is freed regardless).
 *  Otherwise it returns 0 at once, and the last operation to finish closes the descriptors and
 *  frees the handle; a close(2) error then can no longer be returned and goes to the log
 *  (KVIK_LOG_WARN). Returns KVIK_EMISUSE for a handle closed already. */
KVIK_API int kvik_file_close(kvik_file *f);
/** Current size in bytes (kept correct after writes through the handle), or a negative code.
 *  For a block device, the device's size. */
KVIK_API int64_t kvik_file_size(kvik_file *f);
/** Fills info (info->sz must be set). */
KVIK_API int kvik_file_info(kvik_file *f, struct kvik_file_info *info);
/** The buffered file descriptor (owned by the handle), or a negative code. */
KVIK_API int kvik_file_fd(kvik_file *f);
/** The path the file was opened with (owned by the handle, valid until kvik_file_close). NULL
 *  for a bad handle. */
KVIK_API const char *kvik_file_path(kvik_file *f);

/** Per-call options for parallel I/O. */
struct kvik_io_opts {
  size_t sz;         /* sizeof(struct kvik_io_opts)                                   */
  size_t task_size;  /* 0: KVIKIO_TASK_SIZE                                           */
  kvik_pool *pool;   /* NULL: the file's pool (default, or per block device)          */
};

/** Reads size bytes at offset into buf, blocking, on the calling thread. Loops over short
 *  transfers and EINTR. Returns the bytes read (short only at end of file), or a negative code.
 *  buf may be host or (with CUDA) device memory.
 *
 *  A host buffer the CPU cannot use over [buf, buf + size) (read-only for a read, shorter than
 *  size, a hole) gives -EFAULT on every path (buffered, O_DIRECT, bounce buffer), never a
 *  crash; the message names the file offset of the first bad byte. A write checks its whole
 *  source first and writes nothing from a bad one (a parallel write: per task, so other tasks
 *  may have written their ranges). Not detected: a file mapping past the end of its file
 *  (SIGBUS on access); before Linux 6.11, a page inside the buffer whose permissions differ
 *  from both ends (unmapped pages are seen everywhere). */
KVIK_API ssize_t kvik_file_read(kvik_file *f, void *buf, size_t size, int64_t offset);
/** Writes size bytes from buf at offset, blocking. Returns size or a negative code. */
KVIK_API ssize_t kvik_file_write(kvik_file *f, const void *buf, size_t size, int64_t offset);
/** Parallel read: split into task-size chunks on the pool. *out receives a future to wait on.
 *  On an immediate error (bad arguments) no future is made and the code is returned. The
 *  future's count is the length of the contiguous prefix of buf that was read: when a chunk
 *  comes up short (end of file, or a file that shrank during the read), bytes that later chunks
 *  read past it are not counted. */
KVIK_API int kvik_file_pread(kvik_file *f, void *buf, size_t size, int64_t offset,
                             const struct kvik_io_opts *opts, kvik_future **out);
/** Parallel write; see kvik_file_pread. */
KVIK_API int kvik_file_pwrite(kvik_file *f, const void *buf, size_t size, int64_t offset,
                              const struct kvik_io_opts *opts, kvik_future **out);

/** Counters of the bounce-buffer pool (page-aligned, pinned when CUDA is in use, each
 *  KVIKIO_BOUNCE_BUFFER_SIZE bytes): buffers that exist now, buffers in use now, and the
 *  highest number in use at once since the process started. */
struct kvik_bounce_stats {
  size_t sz;          /* sizeof(struct kvik_bounce_stats)                                      */
  size_t allocated;
  size_t in_use;
  size_t peak;
  int pinned;         /* 1 if buffers are pinned with cuMemHostAlloc, 0 if plain host memory */
};
KVIK_API int kvik_bounce_stats(struct kvik_bounce_stats *stats);
/** Frees the bounce buffers not in use (they are made again on demand). */
KVIK_API void kvik_bounce_trim(void);

/** Options for kvik_prepare(). */
struct kvik_prepare_opts {
  size_t sz;        /* sizeof(struct kvik_prepare_opts)                                      */
  int device;       /* -1: host only (CUDA is not loaded); >= 0: a CUDA device ordinal        */
  kvik_pool *pool;  /* NULL: the default pool (KVIKIO_NTHREADS workers)                       */
  unsigned flags;   /* none defined yet: 0                                                    */
};
/** Does now the setup a process's first read would otherwise pay for, so the first read runs at
 *  the steady-state speed: reads the configuration (an invalid KVIKIO_* value is reported here),
 *  starts the pool's workers (pools start them on first use), and with a device: loads CUDA,
 *  retains that device's primary context and pins one device-pipeline bounce buffer (2 MiB, or
 *  KVIKIO_BOUNCE_BUFFER_SIZE if smaller) per pool worker, left idle in the bounce-buffer pool
 *  for the first device read to take (kvik_bounce_stats counts them). Pinning is most of a first
 *  device read's setup: the driver pins about 2 GB/s, one thread at a time (docs/gpu.md, "The
 *  first call"). Not done ahead: each worker's stream, created on its first device I/O (about
 *  25 us each). Optional: everything it does happens on demand without it.
 *
 *  opts NULL: host only, default pool. Idempotent: a second call with the same options finds
 *  the work done and allocates nothing (buffers freed since, e.g. by kvik_bounce_trim, are made
 *  again). Thread-safe. Returns 0, KVIK_EINVAL (opts->sz too small, unknown flags, device < -1
 *  or not a device of this machine, with the count in the detail), KVIK_EMISUSE (pool not a
 *  live pool), KVIK_ENOCUDA (a device asked for and no CUDA driver, saying why), KVIK_ECUDA
 *  (pinning or the context failed, by name), -ENOMEM, or a configuration error. */
KVIK_API int kvik_prepare(const struct kvik_prepare_opts *opts);

/* ------------------------------------------------------------------------------------------
 * Page cache helpers.
 * ------------------------------------------------------------------------------------------ */
/** Drops the page cache of a whole file (posix_fadvise DONTNEED after fdatasync): a regular
 *  file or a block device; others are refused as kvik_file_open refuses them, without waiting. */
KVIK_API int kvik_drop_file_cache(const char *path);

/** How much of a file is in the page cache (kvikio's get_page_cache_info): sets *cached_pages
 *  to the number of pages of [offset, offset + size) that are cached and *total_pages to the
 *  number of pages the range covers, both in pages of the system's page size (sysconf
 *  _SC_PAGESIZE). size 0 means to the end of the file, as for posix_fadvise, so (0, 0) asks
 *  about the whole file. The range is clipped to the file's size; one that starts at or past
 *  the end counts 0 of 0. A partial page at either end counts as a page. Either output pointer
 *  may be NULL.
 *
 *  Counted with cachestat(2) on Linux 6.5 and later; where the kernel lacks it or a seccomp
 *  filter refuses it, by mapping the range read-only (never reading it) and asking mincore(2).
 *  Neither reads the file or changes what is cached. The answer is a snapshot: pages may be
 *  read in or evicted right after. On tmpfs every page of a file is in memory, so every page
 *  counts as cached.
 *
 *  The file is opened read-only and non-blocking (a FIFO never blocks the call) and closed
 *  again. Returns 0, or a negative code: KVIK_EINVAL (path NULL, negative offset or size, not a
 *  regular file: a FIFO, socket or device is named), KVIK_EOVERFLOW (offset + size overflows),
 *  -EISDIR for a directory, -ENOENT, -EACCES and other -errno from open, mmap or mincore, the
 *  path named in kvik_last_error(). Thread-safe. */
KVIK_API int kvik_page_cache_info(const char *path, int64_t offset, int64_t size,
                                  size_t *cached_pages, size_t *total_pages);
/** The same for an open file descriptor (not closed, its offset unchanged). The mincore
 *  fallback maps the file, so there the descriptor must be open for reading (else -EACCES).
 *  -EBADF for a negative descriptor. */
KVIK_API int kvik_page_cache_info_fd(int fd, int64_t offset, int64_t size, size_t *cached_pages,
                                     size_t *total_pages);

/** Drops the whole system's clean page cache, dentries and inodes, as `sync; echo 3 >
 *  /proc/sys/vm/drop_caches` does: every file's next read comes from its disk. Affects every
 *  process on the machine. Needs root (CAP_SYS_ADMIN): otherwise returns -EACCES (or -EPERM)
 *  with a message saying so, before anything is written back; -EROFS where /proc/sys is
 *  mounted read-only (containers). kvik_drop_file_cache() needs no privileges. Returns 0 or a
 *  negative code. Thread-safe; blocks while sync(2) writes back dirty data. */
KVIK_API int kvik_drop_system_cache(void);

/* ------------------------------------------------------------------------------------------
 * Memory-mapped files (kvikio's MmapHandle). A file, or a range of it, is mapped (MAP_SHARED)
 * and read from or written to with memory copies: into and out of host memory with memcpy, and
 * for device or managed memory (the kind is detected) by the CUDA driver copying between the
 * mapping and the device, with the buffer's context pushed, synchronized before the call (or
 * the chunk) returns. The parallel forms split the range into task-size chunks on a pool, host
 * and device alike (kvikio copies a device read through one bounce buffer on one thread).
 *
 * Where kvikio differs: kvikio maps read-only ("r") only; it refuses a range that reaches past
 * the end of the file at construction, and a read outside the file; and it maps MAP_PRIVATE. In
 * kvik the range may reach past the end (reads stop at the file's current end and return the
 * short count, as kvik_file_read does; writes grow the file), and "r+", "w" and "w+" map the
 * file read-write so writes reach it. The parallel forms take KVIKIO_TASK_SIZE (or
 * opts->task_size), not kvikio's KVIKIO_MMAP_TASK_SIZE.
 *
 * As with any mapping, touching a page past the end of the file, or one the disk fails to
 * read, raises SIGBUS: kvik stops reads at the end of the file as it is when the call starts,
 * so only a file truncated by someone else during a call, or an I/O error, can do that. Use
 * kvik_file_* where errors must come back as codes.
 * ------------------------------------------------------------------------------------------ */
typedef struct kvik_mmap kvik_mmap; /* opaque */

/** Maps [offset, offset + size) of the file at path. flags as for kvik_file_open: "r" maps it
 *  read-only; "r+" read-write (the file must exist); "w" and "w+" create or truncate the file,
 *  size it to offset + size (sparse) and map it read-write ("w" refuses reads through the
 *  handle). size 0 maps from offset to the current end of the file (kvikio's initial_size of
 *  nullopt); with "r"/"r+" a larger range than the file is allowed (see above); "w"/"w+" need
 *  size > 0. offset need not be page-aligned. mode is used when the file is created. An empty
 *  file (or offset at its end, size 0) gives an empty mapping: reads and writes of 0 bytes at
 *  offset only. *out is set only on success; the caller owns it and frees it with
 *  kvik_mmap_close(). Returns 0, or KVIK_EINVAL (NULL arguments, unknown or append flags,
 *  negative offset, offset past the end with size 0, size 0 for a new file, not a regular file:
 *  a FIFO never blocks the call), KVIK_EOVERFLOW (offset + size), -EISDIR, -ENOENT, -EACCES and
 *  other -errno from open, ftruncate or mmap, the path named in kvik_last_error(). */
KVIK_API int kvik_mmap_open(kvik_mmap **out, const char *path, const char *flags, size_t size,
                            int64_t offset, mode_t mode);
/** Waits for the parallel operations still running on the mapping (kvik_mmap_pread/pwrite
 *  whose futures are not yet done), unmaps it, closes the file and frees the handle. Writes
 *  reach the page cache as they are made; call kvik_mmap_sync() first to have them on disk.
 *  NULL is fine. Returns 0 or the first munmap/close error (the handle is freed regardless). */
KVIK_API int kvik_mmap_close(kvik_mmap *m);
/** The mapped range: its file offset, its size (as given, or as resolved from size 0 at open)
 *  and the address of the byte at that offset (NULL for an empty mapping; valid until
 *  kvik_mmap_close, and subject to the SIGBUS rule above). Any pointer may be NULL. */
KVIK_API int kvik_mmap_range(kvik_mmap *m, int64_t *offset, size_t *size, void **addr);
/** The file's current size in bytes (fstat), or a negative code. */
KVIK_API int64_t kvik_mmap_file_size(kvik_mmap *m);

/** Copies size bytes at file offset offset from the mapping into buf (host, pinned, device or
 *  managed memory), on the calling thread. The range must lie inside the mapped range, else
 *  KVIK_EINVAL naming the offset, the size and the mapped range. Returns the bytes copied:
 *  fewer only where the file ends before offset + size, 0 when offset is at or past the end
 *  (or size is 0); or a negative code: KVIK_EBADMODE ("w" mapping), KVIK_EOVERFLOW, KVIK_ECUDA
 *  (the failing driver call by name, with path and offset). Thread-safe. */
KVIK_API ssize_t kvik_mmap_read(kvik_mmap *m, void *buf, size_t size, int64_t offset);
/** Parallel kvik_mmap_read: the bytes up to the file's end (checked now) are copied in
 *  task-size chunks (opts->task_size, else KVIKIO_TASK_SIZE) on opts->pool (else the default
 *  pool). *out receives a future (kvik_future_wait gives the byte count or the first error);
 *  buf must stay valid until then. Immediate errors (those of kvik_mmap_read) return the code
 *  and make no future. */
KVIK_API int kvik_mmap_pread(kvik_mmap *m, void *buf, size_t size, int64_t offset,
                             const struct kvik_io_opts *opts, kvik_future **out);
/** Copies size bytes from buf (host or device memory) into the mapping at file offset offset,
 *  on the calling thread; the range must lie inside the mapped range (else KVIK_EINVAL). A
 *  range past the file's end first grows the file (ftruncate; never shrinks it). Returns size,
 *  or a negative code (KVIK_EBADMODE for a read-only mapping). The bytes reach the page cache at
 *  once and the disk when the kernel writes them back, or at kvik_mmap_sync(). */
KVIK_API ssize_t kvik_mmap_write(kvik_mmap *m, const void *buf, size_t size, int64_t offset);
/** Parallel kvik_mmap_write, in chunks on the pool as kvik_mmap_pread. */
KVIK_API int kvik_mmap_pwrite(kvik_mmap *m, const void *buf, size_t size, int64_t offset,
                              const struct kvik_io_opts *opts, kvik_future **out);
/** Writes the mapping's dirty pages to the file and waits (msync MS_SYNC). 0 for a read-only or
 *  empty mapping; else 0 or a negative code. */
KVIK_API int kvik_mmap_sync(kvik_mmap *m);

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
/** Describes the filesystem and device holding path (a regular file, block device or
 *  directory; a FIFO, socket or character device gives KVIK_EUNSUPPORTED, at once). */
KVIK_API int kvik_path_info(const char *path, struct kvik_path_info *info);

/* ------------------------------------------------------------------------------------------
 * Remote files: HTTP(S), S3 and WebHDFS, read into memory in parallel byte ranges over libcurl.
 *
 * Built when libcurl is found (CMake option KVIK_REMOTE, on by default then). Without it every
 * function below returns KVIK_EUNSUPPORTED and says so in kvik_last_error().
 *
 * TLS certificates are always verified; the CA bundle comes from CURL_CA_BUNDLE, SSL_CERT_FILE
 * or SSL_CERT_DIR when set, else from libcurl's default or the usual system bundle paths.
 * Requests that fail with a status listed in KVIKIO_HTTP_STATUS_CODES, time out
 * (KVIKIO_HTTP_TIMEOUT seconds per request) or lose their connection are tried again, up to
 * KVIKIO_HTTP_MAX_ATTEMPTS in all, with exponential backoff; a retry restarts its byte range
 * from its first byte. Retries are reported to the log callback (KVIK_LOG_WARN).
 * KVIKIO_REMOTE_VERBOSE=1 sends libcurl's verbose trace to the log callback (KVIK_LOG_DEBUG).
 * Secrets (secret key, session token, signatures in presigned URLs, passwords in URLs) never
 * appear in an error message or a log line: URLs are shown with those parts replaced by "***".
 * ------------------------------------------------------------------------------------------ */
typedef struct kvik_remote kvik_remote; /* opaque */

/** Kind of endpoint. Values are stable. */
enum kvik_remote_type {
  KVIK_REMOTE_AUTO = 0,         /* infer from the URL (kvikio's order, see kvik_remote_open)  */
  KVIK_REMOTE_S3 = 1,           /* S3 with credentials: requests signed with AWS SigV4       */
  KVIK_REMOTE_S3_PUBLIC = 2,    /* S3 object readable without credentials: unsigned          */
  KVIK_REMOTE_S3_PRESIGNED = 3, /* presigned S3 URL: used verbatim, never signed again       */
  KVIK_REMOTE_WEBHDFS = 4,      /* http(s)://host:port/webhdfs/v1/path                       */
  KVIK_REMOTE_HTTP = 5,         /* any http(s) server that honours Range                     */
};
/** Bit of a type in kvik_remote_opts.allow. */
#define KVIK_REMOTE_ALLOW(type) (1u << (unsigned)(type))

struct kvik_remote_opts {
  size_t sz;                     /* sizeof(struct kvik_remote_opts)                            */
  int type;                      /* enum kvik_remote_type; 0 (AUTO): inferred from the URL     */
  unsigned allow;                /* types AUTO may choose, and an explicit type must be in:
                                    KVIK_REMOTE_ALLOW() bits; 0: all                           */
  uint64_t size;                 /* object size in bytes when known (no request is made for
                                    it); 0: ask the server                                     */
  const char *region;            /* S3 region; NULL: from the URL's host, else
                                    AWS_DEFAULT_REGION, AWS_REGION, else "us-east-1"           */
  const char *endpoint;          /* S3 endpoint for s3:// URLs, e.g. "http://127.0.0.1:9000";
                                    NULL: AWS_ENDPOINT_URL, else AWS's virtual-host URL        */
  const char *access_key_id;     /* NULL: AWS_ACCESS_KEY_ID                                    */
  const char *secret_access_key; /* NULL: AWS_SECRET_ACCESS_KEY                                */
  const char *session_token;     /* NULL: AWS_SESSION_TOKEN (sent when set)                    */
  unsigned max_parallel;         /* ranges in flight per kvik_remote_pread; 0: three quarters
                                    of the pool's workers (at least 1), so remote reads
                                    cannot take every worker from file I/O                     */
};

/** Opens a remote object for reading. The strings in url and opts are copied.
 *
 *  url: "http://..." or "https://...", "s3://bucket/key", an S3 virtual-host URL
 *  ("https://bucket.s3.region.amazonaws.com/key") or path-style URL
 *  ("https://s3.region.amazonaws.com/bucket/key"), a presigned S3 URL (its query holds
 *  X-Amz-Algorithm and X-Amz-Signature), or a WebHDFS URL ("http://host:port/webhdfs/v1/path").
 *
 *  With opts->type AUTO the allowed types are tried in kvikio's order: S3 (s3:// or an AWS S3
 *  URL that is not presigned), S3_PUBLIC, S3_PRESIGNED, WEBHDFS, HTTP; the first that accepts
 *  the URL wins, except that S3 without credentials falls back to S3_PUBLIC when allowed.
 *  Unlike kvikio, a presigned URL is recognised on any host (S3-compatible stores), and an
 *  explicit KVIK_REMOTE_S3 accepts a path-style URL on any host ("http://host:port/bucket/key").
 *  S3 object keys are percent-encoded as AWS requires ("a b+c" is sent as "a%20b%2Bc"); in
 *  http(s) S3 URLs, existing %XX escapes are kept.
 *
 *  The size comes from opts->size, else a HEAD request (HTTP, S3), a one-byte ranged GET and its
 *  Content-Range (presigned URLs, where HEAD is not allowed) or GETFILESTATUS (WebHDFS).
 *  *out is set only on success; the caller owns it and frees it with kvik_remote_close().
 *  Returns 0, KVIK_EINVAL (bad URL, type not allowed, missing credentials), KVIK_EHTTP (the
 *  server answered with an error: the status is named; or an answer kvik cannot use, such as
 *  a response header too large for libcurl or no size), KVIK_EOVERFLOW (the size the server
 *  gives does not fit 63 bits; the value is quoted), KVIK_ETIMEDOUT, -ENOMEM, or
 *  KVIK_EUNSUPPORTED (built without libcurl). */
KVIK_API int kvik_remote_open(kvik_remote **out, const char *url,
                              const struct kvik_remote_opts *opts);
/** Frees the handle. NULL is fine. Reads still in flight (kvik_remote_pread) keep what they
 *  need alive until they finish. */
KVIK_API int kvik_remote_close(kvik_remote *r);
/** Size of the object in bytes, or a negative code. */
KVIK_API int64_t kvik_remote_size(kvik_remote *r);
/** The endpoint type the handle uses (never AUTO), or a negative code. */
KVIK_API int kvik_remote_type(kvik_remote *r);
/** The URL requests go to, with secrets replaced by "***" (owned by the handle). NULL for a
 *  bad handle. */
KVIK_API const char *kvik_remote_url(kvik_remote *r);
/** Static name of a type: "AUTO", "S3", "S3_PUBLIC", "S3_PRESIGNED", "WEBHDFS", "HTTP", or "?". */
KVIK_API const char *kvik_remote_type_name(int type);
/** The type kvik_remote_open would choose for url with AUTO and this allow mask (0: all),
 *  without any request. Returns a kvik_remote_type (> 0) or a negative code (KVIK_EINVAL
 *  with the reason). Works without libcurl too. */
KVIK_API int kvik_remote_infer_type(const char *url, unsigned allow);

/** Reads size bytes at offset into buf with one request on the calling thread (retried as
 *  described above). Returns size, 0 for size 0 (no request is made), or a negative code: a
 *  range past the end of the object is KVIK_EOVERFLOW (URL, offset, size and object size
 *  named); a server that ignores Range or sends a different range or length is KVIK_EHTTP,
 *  and nothing is written past buf+size. On failure buf's contents are unspecified. */
KVIK_API ssize_t kvik_remote_read(kvik_remote *r, void *buf, size_t size, int64_t offset);
/** Parallel read: the range is split into opts->task_size pieces (0: KVIKIO_TASK_SIZE) fetched
 *  as separate ranged requests on opts->pool (NULL: the default pool), at most max_parallel
 *  at once, over reused connections. *out receives a future (kvik_future_wait gives size or
 *  the error of the first range to fail). The first failure (after that range's retries) stops
 *  the read: ranges not yet started are not requested and requests in flight are aborted, so
 *  the error comes back within about one request's time rather than after every other range
 *  has been fetched and retried. Immediate errors (bad arguments, range past the end) return
 *  the code and make no future. */
KVIK_API int kvik_remote_pread(kvik_remote *r, void *buf, size_t size, int64_t offset,
                               const struct kvik_io_opts *opts, kvik_future **out);

/* ------------------------------------------------------------------------------------------
 * CUDA (device memory). Everything here works without CUDA: functions report KVIK_ENOCUDA.
 * ------------------------------------------------------------------------------------------ */
/* The driver (libcuda.so.1) is opened with dlopen on first need and never closed; kvik needs no
 * CUDA at build time. After the process starts to exit, or in a child after fork() (when the
 * parent had loaded the driver), kvik makes no driver call and these functions report
 * KVIK_ENOCUDA. */

/** 1 if the CUDA driver loads and initializes (cuInit) and has at least one device, else 0.
 *  The first call loads the driver; later calls return the cached answer (a failed load is
 *  not retried). When it returns 0, kvik_last_error() says why (dlopen error, missing symbol,
 *  cuInit error name). Never negative. */
KVIK_API int kvik_cuda_available(void);
/** Sets *version to the driver's CUDA version, 1000 * major + 10 * minor (13000 for 13.0).
 *  Returns 0, KVIK_EINVAL (version is NULL) or KVIK_ENOCUDA. */
KVIK_API int kvik_cuda_driver_version(int *version);
/** Number of CUDA devices (at least 1), or KVIK_ENOCUDA. */
KVIK_API int kvik_gpu_count(void);

/** One GPU, as kvik_gpu_info() describes it. Capability fields are 1 (yes), 0 (no) or -1 (the
 *  driver does not report it). */
struct kvik_gpu_info {
  size_t sz;                  /* set to sizeof(struct kvik_gpu_info) by the caller           */
  int ordinal;                /* device ordinal, 0 .. kvik_gpu_count() - 1                   */
  char name[256];             /* e.g. "NVIDIA H100 80GB HBM3"                                */
  uint64_t total_mem;         /* device memory, bytes                                        */
  char pci_bus_id[32];        /* "domain:bus:device.function", e.g. "0000:3b:00.0"           */
  unsigned char uuid[16];     /* the GPU's UUID (as nvidia-smi shows it); zero if unknown    */
  int cc_major, cc_minor;     /* compute capability                                          */
  int multiprocessors;        /* streaming multiprocessors                                   */
  int async_engines;          /* copy engines that run concurrently with compute             */
  int integrated;             /* shares memory with the host (e.g. Jetson)                   */
  int unified_addressing;     /* device and host share one virtual address space             */
  int managed_memory;         /* managed memory (cuMemAllocManaged) supported                */
  int concurrent_managed_access; /* CPU and GPU may touch managed memory concurrently       */
  int pageable_memory_access; /* GPU reads pageable host memory directly (HMM, ATS)          */
  int pageable_memory_access_uses_host_page_tables; /* ... through the host's page tables  */
  int memory_pools;           /* stream-ordered allocation (cuMemAllocAsync) supported       */
  int host_register;          /* cuMemHostRegister supported                                 */
  int read_only_host_register; /* cuMemHostRegister with the read-only flag supported        */
  int gpu_direct_rdma;        /* GPUDirect RDMA supported                                    */
};
/** Fills info (info->sz must be at least sizeof(struct kvik_gpu_info)) for device ordinal.
 *  Creates no CUDA context. Returns 0, KVIK_EINVAL (NULL, small sz, no such ordinal),
 *  KVIK_ENOCUDA or KVIK_ECUDA (the failing call and its error name in the detail). */
KVIK_API int kvik_gpu_info(int ordinal, struct kvik_gpu_info *info);

/** What kind of memory a pointer refers to, as the CUDA driver reports it. */
enum kvik_mem_kind {
  KVIK_MEM_HOST = 0,        /* pageable host memory: malloc, mmap, the stack; also any address
                               when CUDA is absent or unused, and an address CUDA does not know */
  KVIK_MEM_HOST_PINNED = 1, /* page-locked host memory: cuMemHostAlloc, cuMemAllocHost,
                               cuMemHostRegister, cudaMallocHost, cudaHostRegister          */
  KVIK_MEM_DEVICE = 2,      /* device memory: cuMemAlloc, cudaMalloc, stream-ordered pools
                               (cuMemAllocAsync, cudaMallocAsync), cuMemCreate + cuMemMap   */
  KVIK_MEM_MANAGED = 3,     /* managed memory: cuMemAllocManaged, cudaMallocManaged          */
};

/** The kind of memory at ptr (an enum kvik_mem_kind value), or a negative code.
 *  Without CUDA, or in a process that never loaded the driver, every address is KVIK_MEM_HOST
 *  and no driver is loaded by this call. When CUDA is in use, an address that is neither
 *  known to CUDA nor readable by the CPU (typically a freed device allocation, which CUDA
 *  cannot tell from pageable host memory) gives KVIK_EINVAL. KVIK_ECUDA if the driver query
 *  fails. ptr NULL gives KVIK_MEM_HOST. Thread-safe. */
KVIK_API int kvik_mem_kind(const void *ptr);

/** Where a buffer lives, as kvik_mem_info() describes it. */
struct kvik_mem_info {
  size_t sz;            /* set to sizeof(struct kvik_mem_info) by the caller                   */
  int kind;             /* enum kvik_mem_kind                                                  */
  int device;           /* owning device ordinal (device, managed, and pinned memory that CUDA
                           ties to a device); -1 for pageable host memory                      */
  int pool;             /* 1: from a stream-ordered pool (cuMemAllocAsync) or other memory that
                           has no owning context; I/O uses the device's primary context        */
  int range_known;      /* 1 if base and alloc_size below are known                            */
  uint64_t base;        /* device (unified) address of the allocation that holds ptr           */
  uint64_t alloc_size;  /* its size in bytes                                                   */
  uint64_t offset;      /* ptr - base                                                          */
};
/** Describes the buffer [ptr, ptr + size) (info->sz must be at least sizeof(struct
 *  kvik_mem_info)) and checks it the way kvik's I/O does before using it:
 *  - KVIK_EOVERFLOW if ptr + size wraps around the address space; KVIK_EINVAL if ptr is NULL
 *    and size is not 0.
 *  - Device and managed memory: KVIK_EINVAL if the range runs past the end of the allocation
 *    that holds ptr (the message gives the allocation and by how much).
 *  - When CUDA is in use, KVIK_EINVAL if the buffer is neither known to CUDA nor readable by
 *    the CPU at its first and last byte (a freed device allocation, say).
 *  Pageable and pinned host memory is otherwise not checked (base, alloc_size and offset are
 *  0 for it). Without CUDA it is always KVIK_MEM_HOST. Returns 0 or a negative code. */
KVIK_API int kvik_mem_info(const void *ptr, size_t size, struct kvik_mem_info *info);

/* ------------------------------------------------------------------------------------------
 * cuFile (GPUDirect Storage). libcufile.so.0 is opened with dlopen on first need; kvik needs no
 * cuFile at build time. Without it these functions report KVIK_ENOCUFILE and files are served by
 * kvik's own path. Which path serves a file: see kvik_compat and kvik_file_info(); the rules are
 * in docs/cufile.md. Host memory never goes through cuFile; device memory from cuMemAlloc does
 * (managed and stream-ordered pool memory use kvik's path). Transfers smaller than
 * KVIKIO_GDS_THRESHOLD use kvik's path too.
 * ------------------------------------------------------------------------------------------ */

/* kvik.h needs no CUDA header: CUDA streams are passed as struct CUstream_st *, the type cuda.h
 * calls CUstream. */
struct CUstream_st;

/** 1 if libcufile.so.0 loads and its driver opens (cuFileDriverOpen), else 0 with the reason
 *  (the step that failed and why) in kvik_last_error(). The first call loads CUDA and cuFile;
 *  later calls return the cached answer. Never negative. */
KVIK_API int kvik_cufile_available(void);
/** Sets *version to cuFile's library version as cuFileGetVersion reports it (e.g. 1150 for
 *  1.15). Returns 0, KVIK_EINVAL (NULL), KVIK_ENOCUFILE, or KVIK_EUNSUPPORTED when this
 *  libcufile lacks cuFileGetVersion (the detail says so). */
KVIK_API int kvik_cufile_version(int *version);

/** The cuFile driver's properties (cuFileDriverGetProperties), plus what kvik concludes. Sizes
 *  are in KiB, as cuFile keeps them. */
struct kvik_cufile_props {
  size_t sz;                       /* sizeof(struct kvik_cufile_props)                        */
  unsigned nvfs_major, nvfs_minor; /* nvidia-fs driver version as cuFile reports it          */
  uint64_t poll_thresh_size_kb;    /* reads and writes up to this size poll for completion   */
  uint64_t max_direct_io_size_kb;  /* largest single direct transfer                          */
  unsigned dstatusflags;           /* storage cuFile supports: bit CU_FILE_*_SUPPORTED        */
  unsigned dcontrolflags;          /* bit 0 poll mode, bit 1 compatibility mode allowed       */
  unsigned fflags;                 /* features: bit 1 batch, bit 2 streams, bit 4 P2PDMA      */
  unsigned max_device_cache_size_kb;
  unsigned per_buffer_cache_size_kb;
  unsigned max_device_pinned_mem_size_kb;
  unsigned max_batch_io_size;
  unsigned max_batch_io_timeout_ms;
  int poll_mode;                   /* 1 if poll mode is on                                    */
  int allow_compat_mode;           /* 1 if cuFile may fall back to its compatibility mode     */
  int nvfs_loaded;                 /* 1 if the nvidia-fs kernel module is loaded              */
  int p2pdma;                      /* 1 if cuFile reports kernel P2PDMA support               */
  int batch;                       /* 1 if kvik uses cuFile's batch API (entry points there)  */
  int streams;                     /* 1 if kvik uses cuFile's stream API (entry points there) */
  int version;                     /* cuFileGetVersion, 0 where not available                 */
};
/** Fills props (props->sz must be set). Returns 0 or KVIK_ENOCUFILE / KVIK_ECUFILE. */
KVIK_API int kvik_cufile_props(struct kvik_cufile_props *props);

/** Driver properties that kvik_cufile_prop_get() reads and kvik_cufile_prop_set() changes. */
enum kvik_cufile_prop {
  KVIK_CUFILE_POLL_MODE = 0,            /* 0/1, settable                                  */
  KVIK_CUFILE_POLL_THRESH_SIZE_KB = 1,  /* KiB, settable                                  */
  KVIK_CUFILE_MAX_DIRECT_IO_SIZE_KB = 2, /* KiB, settable                                 */
  KVIK_CUFILE_MAX_CACHE_SIZE_KB = 3,    /* KiB, settable                                  */
  KVIK_CUFILE_MAX_PINNED_MEM_SIZE_KB = 4, /* KiB, settable                                */
  KVIK_CUFILE_PER_BUFFER_CACHE_SIZE_KB = 5, /* KiB, read-only                             */
  KVIK_CUFILE_MAX_BATCH_IO_SIZE = 6,    /* operations, read-only                          */
  KVIK_CUFILE_MAX_BATCH_IO_TIMEOUT_MS = 7, /* read-only                                   */
};
/** Reads one driver property. Returns 0, KVIK_EINVAL (unknown property, NULL), KVIK_ENOCUFILE
 *  or KVIK_ECUFILE. */
KVIK_API int kvik_cufile_prop_get(enum kvik_cufile_prop prop, uint64_t *value);
/** Sets one driver property through cuFileDriverSet*. Read-only properties give KVIK_EINVAL
 *  naming the property and where it is set instead (cufile.json); a libcufile without the setter
 *  gives KVIK_EUNSUPPORTED. Returns 0, or KVIK_ENOCUFILE / KVIK_ECUFILE. */
KVIK_API int kvik_cufile_prop_set(enum kvik_cufile_prop prop, uint64_t value);

/** Registers [buf, buf + size) of device memory with cuFile (cuFileBufRegister), so cuFile
 *  reads and writes that fall inside it skip its own staging. flags are passed to cuFile (0).
 *  Refused with KVIK_EINVAL: NULL or size 0, host memory (kvik never passes host memory to
 *  cuFile), a range past the end of its allocation, and a range that overlaps a buffer already
 *  registered (both named). Where cuFile is not used (unavailable, or KVIKIO_COMPAT_MODE=ON) the
 *  registration is only recorded, so kvik_buffer_deregister() behaves the same everywhere.
 *  Returns 0, or KVIK_ECUFILE with cuFile's error name. Thread-safe. */
KVIK_API int kvik_buffer_register(const void *buf, size_t size, int flags);
/** Deregisters a buffer registered with kvik_buffer_register (by the same pointer). An unknown
 *  pointer, or one deregistered already, gives KVIK_EINVAL. */
KVIK_API int kvik_buffer_deregister(const void *buf);

/** Registers a CUDA stream with cuFile (cuFileStreamRegister; flags as cuFile defines them),
 *  which speeds up kvik_file_read_async/write_async on GDS files. Optional: kvik's own
 *  stream-ordered path needs no registration. Returns 0, KVIK_ENOCUFILE, KVIK_EUNSUPPORTED (this
 *  libcufile has no stream API) or KVIK_ECUFILE. */
KVIK_API int kvik_stream_register(struct CUstream_st *stream, unsigned flags);
KVIK_API int kvik_stream_deregister(struct CUstream_st *stream);
/** Makes now what kvik's own stream ordering (kvik_file_read_async/write_async on files GDS does
 *  not serve, below) needs for device memory on this stream: its copy kernels loaded in the
 *  stream's context and a free staging set there (32 MiB pinned + 32 MiB device, kept). Loading
 *  and page-locked allocation may wait for work in flight on the device; calling this first keeps
 *  that wait out of the first enqueue. Optional. NULL is the current context's default stream.
 *  Returns 0, KVIK_EUNSUPPORTED (kvik's stream ordering unavailable, saying why) or a CUDA
 *  error. */
KVIK_API int kvik_stream_prepare(struct CUstream_st *stream);

/* ------------------------------------------------------------------------------------------
 * Batch I/O: many independent reads and writes submitted at once and reaped as they finish.
 * Operations on files that GDS serves (KVIK_PATH_GDS) with device memory go through cuFile's
 * batch API; every other operation runs on the thread pool through the file's own path, with
 * the same semantics. One batch may mix both.
 * ------------------------------------------------------------------------------------------ */
typedef struct kvik_batch kvik_batch; /* opaque */

enum kvik_batch_opcode { KVIK_BATCH_READ = 0, KVIK_BATCH_WRITE = 1 };

/** One operation: size bytes between file at file_offset and buf + buf_offset. */
struct kvik_batch_io {
  kvik_file *file;
  void *buf;           /* base of the buffer (any memory kind)                            */
  size_t size;
  int64_t file_offset;
  int64_t buf_offset;  /* the operation uses buf + buf_offset                             */
  int opcode;          /* enum kvik_batch_opcode                                          */
  void *cookie;        /* the caller's, given back in the operation's event               */
};

enum kvik_batch_status { KVIK_BATCH_COMPLETE = 1, KVIK_BATCH_FAILED = 2, KVIK_BATCH_CANCELED = 3 };

/** A finished operation. */
struct kvik_batch_event {
  void *cookie;        /* kvik_batch_io.cookie                                            */
  int status;          /* enum kvik_batch_status                                          */
  ssize_t result;      /* bytes transferred (short only at end of file), or a negative code */
  char error[256];     /* the failure in words ("" on success)                            */
};

/** Creates a batch that holds at most max_ops operations at a time (1..65536): submitted and
 *  not yet reaped by kvik_batch_status(). *out is set only on success; free with
 *  kvik_batch_destroy(). */
KVIK_API int kvik_batch_create(kvik_batch **out, unsigned max_ops);
/** Submits n operations. All are checked before any starts; on an error none is submitted, and
 *  the detail names the operation's index, the field and why. KVIK_EINVAL: an unknown opcode;
 *  buf NULL with a size; buf_offset negative; buf_offset + size past INT64_MAX; the range
 *  [buf + buf_offset, + size) wrapping around the address space; file_offset negative, or
 *  file_offset + size past INT64_MAX. KVIK_EMISUSE: file is not an open kvik file;
 *  KVIK_EBADMODE: the file's mode does not allow the operation. KVIK_EINVAL also if n exceeds
 *  the batch's max_ops, KVIK_EBUSY if the batch has no room for n more until finished
 *  operations are reaped. Each operation holds its file until its event is reaped (or the batch
 *  is destroyed), so a file may be closed with operations in flight. Buffers must stay valid
 *  until the operation's event is reaped. */
KVIK_API int kvik_batch_submit(kvik_batch *batch, const struct kvik_batch_io *ops, unsigned n);
/** Reaps finished operations: waits until at least min_nr have finished or timeout_ms passes
 *  (negative: no limit; 0: do not wait), then copies up to *nr events (in: capacity of
 *  events; out: how many were copied). Each operation is reported once. Returns 0 (also when
 *  the time ran out with fewer than min_nr), or KVIK_EINVAL (min_nr larger than *nr or than
 *  the operations outstanding). */
KVIK_API int kvik_batch_status(kvik_batch *batch, unsigned min_nr, unsigned *nr,
                               struct kvik_batch_event *events, int64_t timeout_ms);
/** Cancels the operations not yet started: pool operations still queued finish as
 *  KVIK_BATCH_CANCELED at once; operations given to cuFile are canceled through cuFile and
 *  report what cuFile reports (canceled, or complete where they had finished). Operations
 *  already running finish; every operation is still reported by kvik_batch_status(). */
KVIK_API int kvik_batch_cancel(kvik_batch *batch);
/** Cancels what has not started, waits for what is running, and frees the batch. NULL is
 *  fine. */
KVIK_API int kvik_batch_destroy(kvik_batch *batch);

/* ------------------------------------------------------------------------------------------
 * Stream-ordered I/O (kvikio's read_async/write_async). The operation is enqueued on a CUDA
 * stream and runs when the stream reaches it: work enqueued before it on the stream is done
 * first (a kernel that fills the buffer before a write), work enqueued after it waits for it (a
 * kernel that reads the buffer after a read). The caller never blocks, and the stream is never
 * synchronized by kvik. stream is a CUstream (struct CUstream_st *, as cuda.h declares it);
 * NULL is the default stream.
 *
 * On GDS files with device memory: cuFileReadAsync / cuFileWriteAsync. Otherwise (cuFile's
 * compatibility mode included: its stream API synchronizes the caller's stream there) kvik
 * orders the operation itself: a host function reads the arguments and hands the file I/O to
 * pool workers, which read or write through pinned staging slots and never call CUDA; the stream
 * waits (cuStreamWaitValue32) on flags the workers set, the copy engine moves each slot between
 * host and device, and kvik's own copy kernels, enqueued on the stream, move the data between the
 * device slots and the buffer at the offsets read when the stream got there. Each stream in use
 * at once gets 32 MiB of pinned and 32 MiB of device staging, made on its first use and kept;
 * the first operation in a context also loads the kernels. For device and managed memory the
 * stream's context must be on the buffer's device (device memory: the buffer's context). That
 * needs a GPU that can wait on memory from a stream (every driver from CUDA 12 on) and run PTX;
 * without them these calls return KVIK_EUNSUPPORTED saying why. Do not make device-wide
 * synchronizing calls from inside a host function or callback of your own on that stream.
 * docs/cufile.md has the details.
 * ------------------------------------------------------------------------------------------ */

/** Reads *size bytes of the file at *file_offset into buf_base + *buf_offset, when the stream
 *  reaches the operation. size, file_offset and buf_offset are read then, not now, and
 *  *bytes_read is set then: the byte count (short only at end of file) or a negative code. As
 *  with cuFile, *size must hold the largest size the operation may have when this is called
 *  (a larger size when the stream gets there is an error in *bytes_read). All four pointers
 *  must stay valid until the stream has passed the operation. Returns 0 once enqueued, or a
 *  negative code (bad arguments, a file not open for reading: KVIK_EBADMODE, KVIK_EUNSUPPORTED,
 *  CUDA errors) with nothing enqueued. Should CUDA refuse part of the operation's stream work
 *  after the first part was enqueued, the code is returned and put in *bytes_read, what is on
 *  the stream passes without moving data, and I/O that had begun stops early. */
KVIK_API int kvik_file_read_async(kvik_file *f, void *buf_base, size_t *size,
                                  int64_t *file_offset, int64_t *buf_offset, ssize_t *bytes_read,
                                  struct CUstream_st *stream);
/** Writes *size bytes from buf_base + *buf_offset to the file at *file_offset when the stream
 *  reaches the operation; *bytes_written as for reads. */
KVIK_API int kvik_file_write_async(kvik_file *f, const void *buf_base, size_t *size,
                                   int64_t *file_offset, int64_t *buf_offset,
                                   ssize_t *bytes_written, struct CUstream_st *stream);
/** Convenience forms: the arguments are taken by value now, and *out receives a future that
 *  completes when the operation has run (kvik_future_wait gives the bytes or the error). The
 *  future never waits for the stream to reach the operation on its own: wait on it only once
 *  everything before the operation on the stream can finish. */
KVIK_API int kvik_file_read_async_future(kvik_file *f, void *buf, size_t size, int64_t file_offset,
                                         struct CUstream_st *stream, kvik_future **out);
KVIK_API int kvik_file_write_async_future(kvik_file *f, const void *buf, size_t size,
                                          int64_t file_offset, struct CUstream_st *stream,
                                          kvik_future **out);

#ifdef __cplusplus
}
#endif
#endif /* KVIK_H */
