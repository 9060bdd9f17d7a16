/* The tool's own CUDA driver calls (see cuda_tool.h). The few driver types are declared here
 * with cuda.h's layouts (a CUresult is an int, a device pointer 64 bits, handles pointers); the
 * tool, like the library, needs no CUDA at build time. */
#include "cuda_tool.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <string.h>

#include "cli.h"

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;

#define CU_MEMHOSTALLOC_PORTABLE 0x01

static struct {
  CUresult (*init)(unsigned);
  CUresult (*primary_retain)(CUcontext *, int);
  CUresult (*ctx_set)(CUcontext);
  CUresult (*alloc)(CUdeviceptr *, size_t);
  CUresult (*free_)(CUdeviceptr);
  CUresult (*host_alloc)(void **, size_t, unsigned);
  CUresult (*host_free)(void *);
  CUresult (*htod)(CUdeviceptr, const void *, size_t);
  CUresult (*dtoh)(void *, CUdeviceptr, size_t);
  CUresult (*memset8)(CUdeviceptr, unsigned char, size_t);
  CUresult (*err_name)(CUresult, const char **);
} cu;

static int state; /* 0: not tried, 1: open, -1: failed */

static const char *errname(CUresult r) {
  const char *s = NULL;
  if (cu.err_name && cu.err_name(r, &s) == 0 && s)
    return s;
  return "unknown CUDA error";
}

static int fail(CUresult r, const char *what, size_t size) {
  char buf[32];
  cli_err("bench: %s (%s): %s (%d)", what, cli_fmt_size(size, buf, sizeof buf), errname(r), r);
  return -1;
}

int cli_cuda_open(void) {
  if (state)
    return state > 0 ? 0 : -1;
  state = -1;
  void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    cli_err("bench: cannot load the CUDA driver: %s", dlerror());
    return -1;
  }
  static const char *const names[] = {"cuInit",          "cuDevicePrimaryCtxRetain",
                                      "cuCtxSetCurrent", "cuMemAlloc_v2",
                                      "cuMemFree_v2",    "cuMemHostAlloc",
                                      "cuMemFreeHost",   "cuMemcpyHtoD_v2",
                                      "cuMemcpyDtoH_v2", "cuMemsetD8_v2",
                                      "cuGetErrorName"};
  void *syms[sizeof names / sizeof names[0]];
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    syms[i] = dlsym(h, names[i]);
    if (!syms[i]) {
      cli_err("bench: the CUDA driver lacks %s", names[i]);
      return -1;
    }
  }
  /* Function pointers from dlsym's void *: copied byte for byte, as POSIX allows. */
  memcpy(&cu, syms, sizeof cu);
  _Static_assert(sizeof cu == sizeof syms, "one pointer per name");
  CUresult r = cu.init(0);
  if (r != 0)
    return fail(r, "cuInit", 0);
  CUcontext ctx;
  if ((r = cu.primary_retain(&ctx, 0)) != 0)
    return fail(r, "cuDevicePrimaryCtxRetain(0)", 0);
  if ((r = cu.ctx_set(ctx)) != 0)
    return fail(r, "cuCtxSetCurrent", 0);
  state = 1;
  return 0;
}

int cli_cuda_alloc(uint64_t *dptr, size_t size) {
  CUdeviceptr d = 0;
  CUresult r = cu.alloc(&d, size);
  if (r != 0)
    return fail(r, "cuMemAlloc of device memory", size);
  *dptr = d;
  return 0;
}

void cli_cuda_free(uint64_t dptr) {
  if (dptr && state > 0)
    cu.free_(dptr);
}

void *cli_cuda_host_alloc(size_t size) {
  void *p = NULL;
  CUresult r = cu.host_alloc(&p, size, CU_MEMHOSTALLOC_PORTABLE);
  if (r != 0) {
    fail(r, "cuMemHostAlloc of pinned memory", size);
    return NULL;
  }
  return p;
}

void cli_cuda_host_free(void *p) {
  if (p && state > 0)
    cu.host_free(p);
}

int cli_cuda_htod(uint64_t dst, const void *src, size_t size) {
  CUresult r = cu.htod(dst, src, size);
  return r ? fail(r, "cuMemcpyHtoD", size) : 0;
}

int cli_cuda_dtoh(void *dst, uint64_t src, size_t size) {
  CUresult r = cu.dtoh(dst, src, size);
  return r ? fail(r, "cuMemcpyDtoH", size) : 0;
}

int cli_cuda_memset(uint64_t dst, unsigned char value, size_t size) {
  CUresult r = cu.memset8(dst, value, size);
  return r ? fail(r, "cuMemsetD8", size) : 0;
}
