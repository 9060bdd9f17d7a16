/* Public CUDA facts: is the driver there, its version, the GPUs and what each supports. */
#include "gpu/cuda.h"

#include "core/core.h"

#include <string.h>

int kvik_cuda_available(void) {
  const struct kvik__cuda_api *cu;
  return kvik__cuda_get(&cu) == 0;
}

int kvik_cuda_driver_version(int *version) {
  if (!version)
    return kvik__err(KVIK_EINVAL, "kvik_cuda_driver_version: version is NULL");
  *version = 0;
  const struct kvik__cuda_api *cu;
  int rc = kvik__cuda_get(&cu);
  if (rc)
    return rc;
  *version = cu->driver_version;
  return 0;
}

int kvik_gpu_count(void) {
  const struct kvik__cuda_api *cu;
  int rc = kvik__cuda_get(&cu);
  return rc ? rc : cu->device_count;
}

/* A capability attribute: its value, or -1 where the driver does not report it (an attribute
 * newer than the driver gives CUDA_ERROR_INVALID_VALUE). */
static int attr(const struct kvik__cuda_api *cu, CUdevice dev, CUdevice_attribute a) {
  int v = 0;
  return cu->cuDeviceGetAttribute(&v, a, dev) == CUDA_SUCCESS ? v : -1;
}

int kvik_gpu_info(int ordinal, struct kvik_gpu_info *info) {
  if (!info)
    return kvik__err(KVIK_EINVAL, "kvik_gpu_info: info is NULL");
  if (info->sz < sizeof *info)
    return kvik__err(KVIK_EINVAL, "kvik_gpu_info: info->sz is %zu, expected at least %zu", info->sz,
                     sizeof *info);
  size_t sz = info->sz;
  memset(info, 0, sz);
  info->sz = sz;
  info->ordinal = ordinal;

  const struct kvik__cuda_api *cu;
  int rc = kvik__cuda_get(&cu);
  if (rc)
    return rc;
  if (ordinal < 0 || ordinal >= cu->device_count)
    return kvik__err(KVIK_EINVAL, "kvik_gpu_info: no CUDA device %d (%d device(s))", ordinal,
                     cu->device_count);
  CUdevice dev;
  CUresult r = cu->cuDeviceGet(&dev, ordinal);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuDeviceGet(%d)", ordinal);
  r = cu->cuDeviceGetName(info->name, (int)sizeof info->name, dev);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuDeviceGetName(device %d)", ordinal);
  info->name[sizeof info->name - 1] = '\0';
  size_t total = 0;
  r = cu->cuDeviceTotalMem_v2(&total, dev);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuDeviceTotalMem_v2(device %d)", ordinal);
  info->total_mem = total;
  r = cu->cuDeviceGetPCIBusId(info->pci_bus_id, (int)sizeof info->pci_bus_id, dev);
  if (r != CUDA_SUCCESS)
    return kvik__cuda_fail(r, "cuDeviceGetPCIBusId(device %d)", ordinal);
  info->pci_bus_id[sizeof info->pci_bus_id - 1] = '\0';
  CUuuid uuid;
  if (cu->cuDeviceGetUuid_v2 && cu->cuDeviceGetUuid_v2(&uuid, dev) == CUDA_SUCCESS)
    memcpy(info->uuid, uuid.bytes, sizeof info->uuid);

  info->cc_major = attr(cu, dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  info->cc_minor = attr(cu, dev, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  info->multiprocessors = attr(cu, dev, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  info->async_engines = attr(cu, dev, CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT);
  info->integrated = attr(cu, dev, CU_DEVICE_ATTRIBUTE_INTEGRATED);
  info->unified_addressing = attr(cu, dev, CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING);
  info->managed_memory = attr(cu, dev, CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY);
  info->concurrent_managed_access = attr(cu, dev, CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS);
  info->pageable_memory_access = attr(cu, dev, CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS);
  info->pageable_memory_access_uses_host_page_tables =
      attr(cu, dev, CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES);
  info->memory_pools = attr(cu, dev, CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED);
  info->host_register = attr(cu, dev, CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED);
  info->read_only_host_register =
      attr(cu, dev, CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED);
  info->gpu_direct_rdma = attr(cu, dev, CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED);
  return 0;
}
