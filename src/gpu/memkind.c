/* Memory kind detection: what a buffer is (pageable host, pinned host, device, managed), who
 * owns it, and whether [ptr, ptr + size) fits in its allocation. One cuPointerGetAttributes
 * call for host memory, two for device memory. See gpu.h and docs/gpu.md. */
#include "gpu/gpu.h"

#include "core/core.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Set once process_vm_readv turns out to be unavailable here (seccomp, an old kernel): the
 * CPU-accessibility probe is then skipped, and such buffers are taken as host memory. */
static atomic_bool probe_off;

/* Checks that the CPU can read the first and the last byte of [ptr, ptr + size), without
 * risking a fault: the kernel reads them on our behalf and reports EFAULT. Used only when
 * CUDA is in use and the driver does not know the address, to catch freed device memory
 * (device addresses are not mapped for the CPU) before the host path touches it. */
static int probe_host(const void *ptr, size_t size) {
  if (size == 0 || atomic_load_explicit(&probe_off, memory_order_relaxed))
    return 0;
  char sink[2];
  size_t n = size > 1 ? 2 : 1;
  struct iovec local = {.iov_base = sink, .iov_len = n};
  struct iovec remote[2] = {
      {.iov_base = (void *)(uintptr_t)ptr, .iov_len = 1},
      {.iov_base = (void *)((uintptr_t)ptr + size - 1), .iov_len = 1},
  };
  ssize_t got = process_vm_readv(getpid(), &local, 1, remote, n, 0);
  if (got == (ssize_t)n)
    return 0;
  if (got < 0 && errno != EFAULT) {
    kvik__log(KVIK_LOG_DEBUG,
              "process_vm_readv unusable (%s): buffers unknown to CUDA are "
              "no longer checked for CPU access",
              kvik__errno_text(errno));
    atomic_store(&probe_off, true);
    return 0;
  }
  return kvik__err(KVIK_EINVAL,
                   "buffer %p (%zu bytes) is neither memory CUDA knows nor readable by the CPU "
                   "(at byte %zu): a freed device allocation, or a bad pointer",
                   ptr, size, got <= 0 ? (size_t)0 : size - 1);
}

/* Fills the allocation range of device or managed memory. Tries the range attributes first
 * (no context needed; they also work for stream-ordered pool memory), then
 * cuMemGetAddressRange with the owning context pushed, for drivers without them. A range
 * that cannot be found leaves range_known false: the buffer is then not checked. */
static int query_range(const struct kvik__cuda_api *cu, struct kvik__mem_info *mi) {
  CUdeviceptr start = 0;
  size_t rsize = 0;
  CUmemoryPool mpool = NULL;
  CUpointer_attribute attrs[3] = {CU_POINTER_ATTRIBUTE_RANGE_START_ADDR,
                                  CU_POINTER_ATTRIBUTE_RANGE_SIZE,
                                  CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE};
  void *data[3] = {&start, &rsize, &mpool};
  CUresult r = cu->cuPointerGetAttributes(3, attrs, data, mi->dptr);
  if (r == CUDA_ERROR_INVALID_VALUE) /* a driver older than the mempool attribute */
    r = cu->cuPointerGetAttributes(2, attrs, data, mi->dptr);
  if (mpool)
    mi->pool = true;
  if (r == CUDA_SUCCESS && rsize > 0 && start <= mi->dptr && mi->dptr - start < rsize) {
    mi->base = start;
    mi->alloc_size = rsize;
    mi->range_known = true;
    return 0;
  }

  CUcontext ctx;
  int rc = kvik__mem_ctx(mi, &ctx);
  if (rc)
    return rc;
  r = cu->cuCtxPushCurrent_v2(ctx);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuCtxPushCurrent_v2 (to find the allocation of %#llx)", mi->dptr);
  r = cu->cuMemGetAddressRange_v2(&start, &rsize, mi->dptr);
  CUcontext popped;
  CUresult rp = cu->cuCtxPopCurrent_v2(&popped);
  if (rp != CUDA_SUCCESS)
    return kvik__cuda_fail(rp, "cuCtxPopCurrent_v2");
  if (r == CUDA_SUCCESS && rsize > 0 && start <= mi->dptr && mi->dptr - start < rsize) {
    mi->base = start;
    mi->alloc_size = rsize;
    mi->range_known = true;
  } else {
    kvik__log(KVIK_LOG_DEBUG, "allocation range of %#llx unknown (%s): not checked", mi->dptr,
              kvik__cuda_errname(r));
  }
  return 0;
}

int kvik__mem_query(const void *ptr, size_t size, struct kvik__mem_info *out) {
  memset(out, 0, sizeof *out);
  out->kind = KVIK_MEM_HOST;
  out->device = -1;
  out->dptr = (CUdeviceptr)(uintptr_t)ptr;
  if (size > UINTPTR_MAX - (uintptr_t)ptr)
    return kvik__err(KVIK_EOVERFLOW, "buffer %p + %zu bytes wraps around the address space", ptr,
                     size);
  if (!ptr)
    return size ? kvik__err(KVIK_EINVAL, "buffer is NULL (size %zu)", size) : 0;

  const struct kvik__cuda_api *cu;
  if (!kvik__cuda_get_if_used(&cu))
    return 0; /* CUDA absent or unused: no CUDA memory can exist in this process */

  unsigned int memtype = 0, managed = 0;
  CUcontext ctx = NULL;
  int ordinal = CU_DEVICE_INVALID;
  CUpointer_attribute attrs[4] = {CU_POINTER_ATTRIBUTE_MEMORY_TYPE, CU_POINTER_ATTRIBUTE_CONTEXT,
                                  CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                                  CU_POINTER_ATTRIBUTE_IS_MANAGED};
  void *data[4] = {&memtype, &ctx, &ordinal, &managed};
  CUresult r = cu->cuPointerGetAttributes(4, attrs, data, out->dptr);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuPointerGetAttributes(%p)", ptr);

  if (managed) {
    out->kind = KVIK_MEM_MANAGED;
  } else if (memtype == CU_MEMORYTYPE_DEVICE || memtype == CU_MEMORYTYPE_UNIFIED) {
    out->kind = KVIK_MEM_DEVICE;
  } else if (memtype == CU_MEMORYTYPE_HOST) {
    out->kind = KVIK_MEM_HOST_PINNED;
    out->ctx = ctx;
    out->device = ordinal >= 0 ? ordinal : -1;
    return 0;
  } else if (memtype == 0) {
    /* Unknown to CUDA: pageable host memory, or a freed (or never valid) device address. */
    return probe_host(ptr, size);
  } else {
    return kvik__err(KVIK_EINVAL,
                     "buffer %p: CUDA reports memory type %u, which kvik cannot "
                     "read or write",
                     ptr, memtype);
  }

  /* Device or managed memory. */
  out->ctx = ctx;
  out->device = ordinal >= 0 ? ordinal : -1;
  out->pool = ctx == NULL;
  int rc = query_range(cu, out);
  if (rc)
    return rc;
  if (out->range_known) {
    size_t off = (size_t)(out->dptr - out->base);
    if (size > out->alloc_size - off)
      return kvik__err(KVIK_EINVAL,
                       "%s buffer %p + %zu bytes runs %zu bytes past the end of its allocation "
                       "(%#llx, %zu bytes, on device %d)",
                       out->kind == KVIK_MEM_MANAGED ? "managed" : "device", ptr, size,
                       size - (out->alloc_size - off), out->base, out->alloc_size, out->device);
  }
  return 0;
}

int kvik__mem_ctx(const struct kvik__mem_info *mi, CUcontext *out) {
  *out = NULL;
  if (mi->ctx) {
    *out = mi->ctx;
    return 0;
  }
  if (mi->device >= 0)
    return kvik__cuda_primary_ctx(mi->device, out);
  const struct kvik__cuda_api *cu;
  int rc = kvik__cuda_get(&cu);
  if (rc)
    return rc;
  CUresult r = cu->cuCtxGetCurrent(out);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuCtxGetCurrent");
  if (!*out)
    return kvik__err(KVIK_EINVAL,
                     "buffer %#llx: CUDA names neither its context nor its device, "
                     "and this thread has no current context",
                     mi->dptr);
  return 0;
}

/* ---- public API ---------------------------------------------------------------------------- */

int kvik_mem_kind(const void *ptr) {
  struct kvik__mem_info mi;
  int rc = kvik__mem_query(ptr, ptr ? 1 : 0, &mi);
  return rc ? rc : (int)mi.kind;
}

int kvik_mem_info(const void *ptr, size_t size, struct kvik_mem_info *info) {
  if (!info)
    return kvik__err(KVIK_EINVAL, "kvik_mem_info: info is NULL");
  if (info->sz < sizeof *info)
    return kvik__err(KVIK_EINVAL, "kvik_mem_info: info->sz is %zu, expected at least %zu", info->sz,
                     sizeof *info);
  size_t sz = info->sz;
  memset(info, 0, sz);
  info->sz = sz;
  info->device = -1;

  struct kvik__mem_info mi;
  int rc = kvik__mem_query(ptr, size, &mi);
  /* Filled even on a range error, so the caller sees the allocation it overran. */
  info->kind = (int)mi.kind;
  info->device = mi.device;
  info->pool = mi.pool;
  info->range_known = mi.range_known;
  if (mi.range_known) {
    info->base = mi.base;
    info->alloc_size = mi.alloc_size;
    info->offset = mi.dptr - mi.base;
  }
  return rc;
}
