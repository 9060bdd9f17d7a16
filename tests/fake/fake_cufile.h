/* Control interface of the fake libcufile.so.0 (tests/fake/fake_cufile.c).
 *
 * The fake is loaded the way kvik loads the real library (dlopen("libcufile.so.0") through the
 * library search path), from its own directory (tests/fake/cufile, or tests/fake/cufile-min for
 * the variant that lacks every optional entry point), so tests that do not put it on
 * LD_LIBRARY_PATH see no cuFile at all. It works over the fake libcuda.so.1: device memory is
 * the fake's tracked memory (reached through fake_cuda_backing), reads and writes are pread and
 * pwrite on the registered descriptor, batch operations run on a thread of their own, and
 * cuFileReadAsync/WriteAsync run as host functions in stream order on the fake's streams.
 *
 * GDS or compatibility mode: the fake claims real GDS hardware through its driver properties
 * ("gds": NVMe support in the status flags; "p2p": the P2PDMA feature bit and NVMe P2P status
 * bit). kvik's other input, whether nvidia-fs is loaded, comes from /proc, which tests redirect
 * with kvik__cufile_test_hooks(). In "gds" mode cuFileHandleRegister insists on O_DIRECT.
 *
 * Strictness: cuFileRead/Write fail with -CU_FILE_CUDA_CONTEXT_MISMATCH when no CUDA context is
 * current and -CU_FILE_CUDA_MEMORY_TYPE_INVALID for host memory, and every call after the
 * driver was closed fails with CU_FILE_DRIVER_NOT_INITIALIZED and is counted.
 *
 * Environment (read when the library loads):
 *   FAKE_CUFILE_OPEN_ERROR=e   cuFileDriverOpen fails with CUfileOpError e
 *   FAKE_CUFILE_GDS=1, FAKE_CUFILE_P2P=1   as the options below
 *   FAKE_CUFILE_VERSION=v      cuFileGetVersion (default 1150)
 *   FAKE_CUFILE_FAIL=fn:after:err[:times][,...]   as fake_cufile_fail()
 *   FAKE_CUFILE_REPORT=path    at unload (process exit) write one line to path:
 *                              "opens=N closes=N handles=N buffers=N batches=N after_close=N"
 *                              (handles and buffers still registered at that point)
 */
#ifndef KVIK_FAKE_CUFILE_H
#define KVIK_FAKE_CUFILE_H

#include <dlfcn.h>

/* The `times` calls of fn (a cuFile symbol, e.g. "cuFileRead") that follow the next `after`
 * successful ones fail with CUfileOpError err (times < 0: every later call). For cuFileRead and
 * cuFileWrite the call returns -err; for batch operations ("batch:op") the operation's event
 * says CUFILE_FAILED. Returns 0, or -1 when the table (16 rules) is full. */
typedef int (*fake_cufile_fail_fn)(const char *fn, long after, int err, long times);
typedef void (*fake_cufile_fail_clear_fn)(void);
/* Calls of fn so far (failed ones included); -1 for an unknown name. */
typedef long (*fake_cufile_calls_fn)(const char *fn);
/* "handles", "buffers", "batches", "streams" (registered now), "opens", "closes" (driver
 * opens and closes so far), "after_close" (calls made after the driver closed), "read_bytes",
 * "write_bytes". -1 if unknown. */
typedef long (*fake_cufile_live_fn)(const char *what);
/* Options: "gds" (0/1), "p2p" (0/1), "open_error" (CUfileOpError for the next opens, 0: none),
 * "batch_delay_us" (each batch operation waits this long first). 0, or -1 if unknown. */
typedef int (*fake_cufile_set_fn)(const char *option, long value);

struct fake_cufile {
  void *handle;
  fake_cufile_fail_fn inject;
  fake_cufile_fail_clear_fn fail_clear;
  fake_cufile_calls_fn calls;
  fake_cufile_live_fn live;
  fake_cufile_set_fn set;
};

/* Opens libcufile.so.0 and fills fc. Returns 0, or -1 if it is missing or not the fake. */
static inline int fake_cufile_bind(struct fake_cufile *fc) {
  fc->handle = dlopen("libcufile.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!fc->handle)
    return -1;
  void *p[5] = {dlsym(fc->handle, "fake_cufile_fail"), dlsym(fc->handle, "fake_cufile_fail_clear"),
                dlsym(fc->handle, "fake_cufile_calls"), dlsym(fc->handle, "fake_cufile_live"),
                dlsym(fc->handle, "fake_cufile_set")};
  for (int i = 0; i < 5; i++)
    if (!p[i])
      return -1;
  __builtin_memcpy(&fc->inject, &p[0], sizeof p[0]);
  __builtin_memcpy(&fc->fail_clear, &p[1], sizeof p[1]);
  __builtin_memcpy(&fc->calls, &p[2], sizeof p[2]);
  __builtin_memcpy(&fc->live, &p[3], sizeof p[3]);
  __builtin_memcpy(&fc->set, &p[4], sizeof p[4]);
  return 0;
}

#endif
