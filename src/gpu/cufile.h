/* cuFile (GPUDirect Storage) at run time: kvik's mirror of the cufile.h types it uses, the table
 * of libcufile.so.0 entry points, the driver's lifetime, and the cuFile data path for one range.
 * docs/cufile.md explains the decisions.
 *
 * kvik is built without cufile.h. The types below carry the names cufile.h gives them and are
 * generated from the lists in cufile_list.h, which tests/cufile checks against the real header;
 * never include this header and the real cufile.h in one translation unit.
 *
 * Lifetime: libcufile.so.0 is opened on first need and never closed; the driver is opened once
 * (cuFileDriverOpen). An exit handler, registered right after the driver opened (so it runs
 * before the exit handlers CUDA and cuFile registered while they loaded, with CUDA still alive),
 * stops new cuFile calls, and when none is in flight deregisters the file handles and buffers
 * kvik registered and closes the driver. In a child after fork() no cuFile call is made. */
#ifndef KVIK_GPU_CUFILE_H
#define KVIK_GPU_CUFILE_H

#include "gpu/cuda.h"
#include "gpu/cufile_list.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

_Static_assert(sizeof(off_t) == 8, "kvik's cuFile mirror needs a 64-bit off_t");

/* ---- mirrored cufile.h types --------------------------------------------------------------- */

#define KVIK__CF_ENUM_ITEM(name, value) name = value,

typedef enum CUfileOpError { KVIK_CUFILE_ERRORS(KVIK__CF_ENUM_ITEM) } CUfileOpError;
typedef enum CUfileFileHandleType {
  CU_FILE_HANDLE_TYPE_OPAQUE_FD = 1,
  CU_FILE_HANDLE_TYPE_OPAQUE_WIN32 = 2,
  CU_FILE_HANDLE_TYPE_USERSPACE_FS = 3,
} CUfileFileHandleType;
typedef enum CUfileOpcode { CUFILE_READ = 0, CUFILE_WRITE = 1 } CUfileOpcode_t;
typedef enum CUFILEStatus_enum {
  CUFILE_WAITING = 1,
  CUFILE_PENDING = 2,
  CUFILE_INVALID = 4,
  CUFILE_CANCELED = 8,
  CUFILE_COMPLETE = 16,
  CUFILE_TIMEOUT = 32,
  CUFILE_FAILED = 64,
} CUfileStatus_t;
typedef enum cufileBatchMode { CUFILE_BATCH = 1 } CUfileBatchMode_t;
/* Bit numbers in CUfileDrvProps_t's flag words (enumerators in cufile.h). */
enum {
  CU_FILE_LUSTRE_SUPPORTED = 0,
  CU_FILE_WEKAFS_SUPPORTED = 1,
  CU_FILE_NFS_SUPPORTED = 2,
  CU_FILE_GPFS_SUPPORTED = 3,
  CU_FILE_NVME_SUPPORTED = 4,
  CU_FILE_NVMEOF_SUPPORTED = 5,
  CU_FILE_SCSI_SUPPORTED = 6,
  CU_FILE_SCALEFLUX_CSD_SUPPORTED = 7,
  CU_FILE_NVMESH_SUPPORTED = 8,
  CU_FILE_BEEGFS_SUPPORTED = 9,
  CU_FILE_NVME_P2P_SUPPORTED = 11,
  CU_FILE_USE_POLL_MODE = 0,
  CU_FILE_ALLOW_COMPAT_MODE = 1,
  CU_FILE_DYN_ROUTING_SUPPORTED = 0,
  CU_FILE_BATCH_IO_SUPPORTED = 1,
  CU_FILE_STREAMS_SUPPORTED = 2,
  CU_FILE_PARALLEL_IO_SUPPORTED = 3,
  CU_FILE_P2P_SUPPORTED = 4,
};
/* Newer error names, for messages only (cufile_list.h). */
enum { KVIK_CUFILE_ERRORS_NEWER(KVIK__CF_ENUM_ITEM) };

typedef struct CUfileError {
  CUfileOpError err;
  CUresult cu_err;
} CUfileError_t;

typedef void *CUfileHandle_t;
typedef void *CUfileBatchHandle_t;

typedef struct CUfileDescr_t {
  CUfileFileHandleType type;
  union {
    int fd;
    void *handle;
  } handle;
  const void *fs_ops; /* CUfileFSOps_t *: kvik passes NULL */
} CUfileDescr_t;

typedef struct CUfileDrvProps {
  struct {
    unsigned int major_version;
    unsigned int minor_version;
    size_t poll_thresh_size;   /* KiB */
    size_t max_direct_io_size; /* KiB */
    unsigned int dstatusflags;
    unsigned int dcontrolflags;
  } nvfs;
  unsigned int fflags;
  unsigned int max_device_cache_size;      /* KiB */
  unsigned int per_buffer_cache_size;      /* KiB */
  unsigned int max_device_pinned_mem_size; /* KiB */
  unsigned int max_batch_io_size;
  unsigned int max_batch_io_timeout_msecs;
} CUfileDrvProps_t;

typedef struct CUfileIOParams {
  CUfileBatchMode_t mode;
  union {
    struct {
      void *devPtr_base;
      off_t file_offset;
      off_t devPtr_offset;
      size_t size;
    } batch;
  } u;
  CUfileHandle_t fh;
  CUfileOpcode_t opcode;
  void *cookie;
} CUfileIOParams_t;

typedef struct CUfileIOEvents {
  void *cookie;
  CUfileStatus_t status;
  size_t ret;
} CUfileIOEvents_t;

/* ---- the library table --------------------------------------------------------------------- */

struct kvik__cufile_api {
#define KVIK__CF_FIELD(required, name, ret, params) ret(*name) params;
  KVIK_CUFILE_FUNCS(KVIK__CF_FIELD)
#undef KVIK__CF_FIELD
  CUfileError_t (*close)(void); /* cuFileDriverClose_v2, else cuFileDriverClose */
  bool has_setters;             /* every cuFileDriverSet* entry point is there          */
  bool has_batch;               /* every cuFileBatchIO* entry point is there            */
  bool has_async;               /* cuFileReadAsync, cuFileWriteAsync, stream register   */
  bool has_version;             /* cuFileGetVersion                                     */
  char no_setters[160], no_batch[160], no_async[160], no_version[160]; /* why not    */
};

/* Loads libcufile.so.0 and opens the driver on first call (thread-safe; later calls return at
 * once). Loads CUDA first (cuFile needs it). Returns 0 and the table (static, valid for the life
 * of the process), or KVIK_ENOCUFILE with the failing step and why in the detail: CUDA missing,
 * the dlopen error, a missing required symbol, the cuFileDriverOpen error, or that the process
 * is exiting or is a child after fork(). A failed load is not retried. */
int kvik__cufile_get(const struct kvik__cufile_api **out);

/* True if kvik__cufile_get succeeded before (never loads anything). */
bool kvik__cufile_loaded(void);

/* Every cuFile call is bracketed by these, so the exit handler knows whether a call is in
 * flight. enter returns false (no call may be made) once the process is exiting or forked. */
bool kvik__cufile_enter(void);
void kvik__cufile_leave(void);
/* A long-lived use of cuFile (a batch with cuFile operations, a stream operation enqueued with
 * cuFile): while any is held, the exit handler leaves cuFile alone. hold returns false (do not
 * use cuFile) once the process is exiting or forked. */
bool kvik__cufile_hold(void);
void kvik__cufile_release(void);

/* "CU_FILE_DRIVER_NOT_INITIALIZED" for a CUfileOpError value; never NULL, static storage. */
const char *kvik__cufile_errname(int err);
/* Sets the detail to "<what>: <error name> (<code>)" (with the CUDA error name when cuFile
 * reports one) and returns KVIK_ECUFILE. */
int kvik__cufile_fail(CUfileError_t e, const char *what, ...) __attribute__((format(printf, 2, 3)));

/* Whether cuFile does real DMA (nvidia-fs, or kernel P2PDMA) for the file at path (descriptor
 * fd), as opposed to its own host-staged compatibility mode. Returns 1 (DMA) or 0 (compat), and
 * in why (always NUL-terminated) the facts that decided it. The driver must be open. */
int kvik__cufile_dma(const char *path, int fd, char *why, size_t len);

/* Registers fd with cuFile (cuFileHandleRegister) and adds the handle to the set the exit
 * handler cleans up. Returns 0 and *out, or KVIK_ECUFILE / KVIK_ENOCUFILE with the detail. */
int kvik__cufile_handle_register(int fd, const char *path, CUfileHandle_t *out);
/* Deregisters a handle (NULL is fine); a no-op once the process is exiting or forked. */
void kvik__cufile_handle_deregister(CUfileHandle_t h);

/* The base to pass to cuFile for [ptr, ptr + len): the start of a buffer registered with
 * kvik_buffer_register that holds the whole range, else alloc_base (the allocation's start). */
uintptr_t kvik__cufile_base(uintptr_t ptr, size_t len, uintptr_t alloc_base);

/* One range through cuFile, on the calling thread: [buf, buf + size) of device memory owned by
 * ctx (pushed for the call), passed to cuFile as base + offset. Loops over short transfers;
 * reads stop at end of file (short count). Returns bytes or a negative code with the detail
 * (path, offset, the cuFile error name or errno). */
ssize_t kvik__cufile_read(CUfileHandle_t h, const char *path, CUcontext ctx, uintptr_t base,
                          uintptr_t buf, size_t size, int64_t off);
ssize_t kvik__cufile_write(CUfileHandle_t h, const char *path, CUcontext ctx, uintptr_t base,
                           uintptr_t buf, size_t size, int64_t off);

/* Test hooks. nvfs_dir: where nvidia-fs's proc files are read from (NULL: the default,
 * "/proc/driver/nvidia-fs"); fs_dma: -1 decide from the filesystem and disk (the default), 0 or
 * 1 force the answer of the filesystem check. Call before the files they should affect open. */
void kvik__cufile_test_hooks(const char *nvfs_dir, int fs_dma);

#endif
