/* CUDA at run time: kvik's mirror of the driver API types it uses, the table of driver entry
 * points, and the loader that fills it from libcuda.so.1 on first need.
 *
 * kvik is built without cuda.h. The types below carry the names cuda.h gives them, so code in
 * src/gpu reads like ordinary driver API code; never include this header and the real cuda.h
 * in one translation unit. Every constant, size and signature is generated from the lists in
 * cuda_list.h, and tests/cuda/test_cuda_mirror.c checks those lists against the real cuda.h.
 *
 * Lifetime: libcuda.so.1 is opened once and never closed. When the process starts to exit
 * (an atexit handler registered after the driver is loaded, and this library's destructor),
 * kvik stops calling the driver: the driver may already be tearing itself down, and a call
 * into it then can crash. In a child process after fork() the driver is unusable too. */
#ifndef KVIK_GPU_CUDA_H
#define KVIK_GPU_CUDA_H

#include "gpu/cuda_list.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

_Static_assert(sizeof(void *) == 8, "kvik's CUDA mirror assumes a 64-bit (LP64) target");

/* ---- mirrored driver API types ----------------------------------------------------------- */

typedef uint32_t cuuint32_t;
typedef uint64_t cuuint64_t;
typedef unsigned long long CUdeviceptr_v2;
typedef CUdeviceptr_v2 CUdeviceptr;
typedef int CUdevice_v1;
typedef CUdevice_v1 CUdevice;
typedef struct CUctx_st *CUcontext;
typedef struct CUevent_st *CUevent;
typedef struct CUstream_st *CUstream;
typedef struct CUmemPoolHandle_st *CUmemoryPool;
/* Opaque here: kvik only ever passes NULL for it. */
typedef struct CUctxCreateParams_st CUctxCreateParams;
typedef struct CUuuid_st {
  char bytes[16];
} CUuuid;
typedef void (*CUhostFn)(void *userData);
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;

#define KVIK__CU_ENUM_ITEM(name, value) name = value,

typedef enum cudaError_enum { KVIK_CUDA_RESULTS(KVIK__CU_ENUM_ITEM) } CUresult;
typedef enum CUpointer_attribute_enum {
  KVIK_CUDA_POINTER_ATTRS(KVIK__CU_ENUM_ITEM)
} CUpointer_attribute;
typedef enum CUmemorytype_enum { KVIK_CUDA_MEMORYTYPES(KVIK__CU_ENUM_ITEM) } CUmemorytype;
typedef enum CUdevice_attribute_enum {
  KVIK_CUDA_DEVICE_ATTRS(KVIK__CU_ENUM_ITEM)
} CUdevice_attribute;
/* Flags, as plain integer constants (cuda.h has some as enumerators, some as macros). */
enum { KVIK_CUDA_FLAGS(KVIK__CU_ENUM_ITEM) };

/* Special stream handles (macros in cuda.h too). */
#define CU_STREAM_LEGACY ((CUstream)0x1)
#define CU_STREAM_PER_THREAD ((CUstream)0x2)

/* ---- the driver table -------------------------------------------------------------------- */

/* One function pointer per entry point, named by its exported symbol:
 * `cu->cuMemcpyHtoDAsync_v2(dst, src, n, stream)`. Optional entries may be NULL. */
struct kvik__cuda_api {
#define KVIK__CU_FIELD(required, name, params) CUresult(*name) params;
  KVIK_CUDA_FUNCS(KVIK__CU_FIELD)
#undef KVIK__CU_FIELD
  int driver_version; /* cuDriverGetVersion: 1000 * major + 10 * minor, e.g. 13000          */
  int device_count;   /* cuDeviceGetCount at load time (at least 1)                         */
};

/* Loads the driver on first call (thread-safe; later calls return at once): opens
 * libcuda.so.1 through kvik__sys.dlopen, resolves the table, calls cuInit(0). Returns 0 and
 * the table (static, valid for the life of the process), or KVIK_ENOCUDA with the reason in
 * the detail: the dlopen error, the missing symbol, the cuInit error name, or that the
 * process is exiting or is a child after fork(). A failed load is not retried. */
int kvik__cuda_get(const struct kvik__cuda_api **out);

/* Like kvik__cuda_get, but loads the driver only if libcuda.so.1 is already in the process
 * (someone else loaded it) or kvik loaded it before. Returns 1 and the table, 0 (no table,
 * detail untouched) if CUDA is not in use, or when kvik may no longer call it (exiting,
 * forked child) or it failed to load. Memory-kind queries use it: CUDA memory cannot exist
 * in a process that never loaded the driver, so host-only programs never pay for cuInit. */
int kvik__cuda_get_if_used(const struct kvik__cuda_api **out);

/* True once the driver must no longer be called (the process is exiting, or this is a child
 * after fork()). Code that frees CUDA resources (pinned bounce buffers, streams) checks it
 * and leaks them instead: the process is going away anyway. */
bool kvik__cuda_gone(void);

/* True if kvik loaded the driver successfully (and it is not gone). Never loads it. */
bool kvik__cuda_loaded(void);

/* The name of a CUresult ("CUDA_ERROR_OUT_OF_MEMORY"), from the driver when it is loaded,
 * else from kvik's own list. Never NULL; static storage. */
const char *kvik__cuda_errname(CUresult r);

/* Sets this thread's detail to "<what>: <error name> (<code>): <driver's description>" and
 * returns KVIK_ECUDA. what is printf-style and names the call, e.g.
 * `return kvik__cuda_fail(r, "cuMemcpyHtoDAsync_v2 (%zu bytes to %#llx)", n, dst);` */
int kvik__cuda_fail(CUresult r, const char *what, ...) __attribute__((format(printf, 2, 3)));

/* The primary context of device `ordinal`, retained on first use and kept for the life of the
 * process (never released: releasing at exit would call a driver that may be gone). Returns 0
 * and *out, KVIK_EINVAL for a bad ordinal, KVIK_ENOCUDA, or KVIK_ECUDA. */
int kvik__cuda_primary_ctx(int ordinal, CUcontext *out);

#endif
