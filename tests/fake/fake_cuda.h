/* Control interface of the fake libcuda.so.1 (tests/fake/fake_cuda.c).
 *
 * The fake is loaded the way kvik loads the real driver (dlopen("libcuda.so.1") through the
 * library search path), so a test reaches these functions with dlsym on a handle to the same
 * library: fake_cuda_bind() below does that. Tests then also call the driver entry points
 * (cuMemAlloc_v2, ...) through the same handle to make the memory they hand to kvik.
 *
 * The model: device memory is host memory the fake tracks, at an address the CPU cannot
 * touch (a PROT_NONE reservation, like a real device address) with a separate read-write
 * backing that only the fake's copies use, so kvik code that touches device memory from the
 * CPU crashes in tests as it would on a GPU. Freed device addresses stay reserved and
 * inaccessible. Managed and pinned memory are ordinary host memory. Each stream is a queue
 * run in order by its own thread, so copies, host functions, events and stream memory
 * operations complete asynchronously and in stream order, except that cuMemcpyDtoHAsync into
 * pageable host memory returns only once the copy is done, as CUDA's does. Modules:
 * cuModuleLoadData takes any PTX text, and the only kernels it runs are kvik's copy kernels
 * (src/gpu/so_kernels.cu), done on the CPU from their control block. Contexts: one primary context
 * per device (retain/release counted), created contexts, a current-context stack per thread.
 *
 * Environment (read when the library loads):
 *   FAKE_CUDA_DEVICES=n       number of devices (default 2; 0 makes cuInit fail NO_DEVICE)
 *   FAKE_CUDA_INIT_ERROR=e    cuInit returns e (number or CUDA_ERROR_* name)
 *   FAKE_CUDA_VERSION=v       cuDriverGetVersion (default 13000)
 *   FAKE_CUDA_DELAY_US=us     every stream operation waits this long before it runs
 *   FAKE_CUDA_FAIL=fn:after:err[:times][,...]   as fake_cuda_fail()
 */
#ifndef KVIK_FAKE_CUDA_H
#define KVIK_FAKE_CUDA_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

/* Makes the `times` calls of fn (a driver symbol such as "cuMemcpyHtoDAsync_v2") that follow
 * the next `after` successful ones return err (times < 0: every later call). fn "exec:copy"
 * targets copies and memsets as the stream threads run them: the operation is skipped and the
 * error is reported by the next cuStreamSynchronize, cuStreamQuery or cuEventSynchronize on
 * that stream; "exec:kernel" does the same to kvik's copy kernels. Returns 0, or -1 when the rule
 * table (16 rules) is full. */
typedef int (*fake_cuda_fail_fn)(const char *fn, long after, int err, long times);
/* fake_cuda_fail(fn, n, err, 1). */
typedef int (*fake_cuda_fail_after_fn)(const char *fn, long n, int err);
/* Removes every injected failure. */
typedef void (*fake_cuda_fail_clear_fn)(void);
/* Calls of fn so far (failed ones included). */
typedef long (*fake_cuda_calls_fn)(const char *fn);
/* Live objects: "device", "pool", "managed", "pinned", "registered" (allocations), "stream",
 * "event", "ctx" (created, not destroyed), "primary_refs" (primary-context retains not
 * released), "ctx_depth" (the calling thread's context-stack depth); and "exit_calls": driver
 * calls made so far by threads that were already exiting (from a thread-specific-data
 * destructor, which the real driver does not support; each is also named on stderr). -1 if
 * unknown. */
typedef long (*fake_cuda_live_fn)(const char *what);
/* Options: "delay_us" (per stream operation), "range_attrs" (0: the RANGE_START_ADDR and
 * RANGE_SIZE pointer attributes are unsupported, CUDA_ERROR_INVALID_VALUE), "mempool_attr"
 * (0: MEMPOOL_HANDLE unsupported), "pool_address_range" (1: cuMemGetAddressRange works for
 * pool memory; default 0, it fails), "pinned_limit" (bytes of cuMemHostAlloc memory allowed,
 * 0: no limit; over it CUDA_ERROR_OUT_OF_MEMORY), "stream_mem_ops" (the value of
 * CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_MEM_OPS_V1, default 1), "alloc_syncs" (1: cuMemHostAlloc and
 * cuMemAlloc first wait until every stream is idle, the implicit synchronization CUDA documents
 * for allocations; default 0), "one_queue" (1: every stream feeds one hardware queue, and a
 * stream waiting on memory (cuStreamWaitValue32) holds it, so no other stream's work runs until
 * the wait passes: the worst case of CUDA's warning that an order made with stream memory
 * operations is invisible to its scheduler; default 0). Returns 0, or -1 for an unknown
 * option. */
typedef int (*fake_cuda_set_fn)(const char *option, long value);

/* For the fake libcufile.so.0 (and tests): where the bytes of [addr, addr + n) of device or pool
 * memory are. Returns 0 and *out, or -1 if the range is not inside one live device allocation
 * (host memory, freed memory, a range past the end). */
typedef int (*fake_cuda_backing_fn)(uintptr_t addr, size_t n, void **out);

struct fake_cuda {
  void *handle; /* dlopen handle of libcuda.so.1 (the fake), never closed */
  fake_cuda_fail_fn fail_times;
  fake_cuda_fail_after_fn fail_after;
  fake_cuda_fail_clear_fn fail_clear;
  fake_cuda_calls_fn calls;
  fake_cuda_live_fn live;
  fake_cuda_set_fn set;
};

/* Opens libcuda.so.1 and fills fc. Returns 0, or -1 if the library is not there or is not
 * the fake (it lacks the control functions): the real driver, say. */
static inline int fake_cuda_bind(struct fake_cuda *fc) {
  fc->handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!fc->handle)
    return -1;
  void *p[6] = {
      dlsym(fc->handle, "fake_cuda_fail"),       dlsym(fc->handle, "fake_cuda_fail_after"),
      dlsym(fc->handle, "fake_cuda_fail_clear"), dlsym(fc->handle, "fake_cuda_calls"),
      dlsym(fc->handle, "fake_cuda_live"),       dlsym(fc->handle, "fake_cuda_set")};
  for (int i = 0; i < 6; i++)
    if (!p[i])
      return -1;
  __builtin_memcpy(&fc->fail_times, &p[0], sizeof p[0]);
  __builtin_memcpy(&fc->fail_after, &p[1], sizeof p[1]);
  __builtin_memcpy(&fc->fail_clear, &p[2], sizeof p[2]);
  __builtin_memcpy(&fc->calls, &p[3], sizeof p[3]);
  __builtin_memcpy(&fc->live, &p[4], sizeof p[4]);
  __builtin_memcpy(&fc->set, &p[5], sizeof p[5]);
  return 0;
}

#endif
