/* The CUDA driver API as kvik uses it, as X-macro lists: every constant with its value, every
 * scalar type with its size, and every entry point with its parameter list.
 *
 * This header includes nothing and declares nothing. src/gpu/cuda.h expands the lists into
 * kvik's mirror of the few driver types (kvik is built without cuda.h); the test
 * tests/cuda/test_cuda_mirror.c expands the same lists against the real cuda.h and checks that
 * every value, size and signature matches. Because both sides come from these lists, a value
 * mirrored here is a value tested. To use a new constant or entry point, add it here.
 *
 * Entry points are named by the versioned symbol that libcuda.so.1 exports and that cuda.h
 * maps the plain name to (cuMemAlloc -> cuMemAlloc_v2); the lists never name the per-thread
 * default stream variants (_ptds, _ptsz). */
#ifndef KVIK_CUDA_LIST_H
#define KVIK_CUDA_LIST_H

/* CUresult values kvik names: X(name, value). */
#define KVIK_CUDA_RESULTS(X)                                                                       \
  X(CUDA_SUCCESS, 0)                                                                               \
  X(CUDA_ERROR_INVALID_VALUE, 1)                                                                   \
  X(CUDA_ERROR_OUT_OF_MEMORY, 2)                                                                   \
  X(CUDA_ERROR_NOT_INITIALIZED, 3)                                                                 \
  X(CUDA_ERROR_DEINITIALIZED, 4)                                                                   \
  X(CUDA_ERROR_STUB_LIBRARY, 34)                                                                   \
  X(CUDA_ERROR_CALL_REQUIRES_NEWER_DRIVER, 36)                                                     \
  X(CUDA_ERROR_DEVICE_UNAVAILABLE, 46)                                                             \
  X(CUDA_ERROR_NO_DEVICE, 100)                                                                     \
  X(CUDA_ERROR_INVALID_DEVICE, 101)                                                                \
  X(CUDA_ERROR_INVALID_CONTEXT, 201)                                                               \
  X(CUDA_ERROR_OPERATING_SYSTEM, 304)                                                              \
  X(CUDA_ERROR_INVALID_HANDLE, 400)                                                                \
  X(CUDA_ERROR_NOT_FOUND, 500)                                                                     \
  X(CUDA_ERROR_NOT_READY, 600)                                                                     \
  X(CUDA_ERROR_ILLEGAL_ADDRESS, 700)                                                               \
  X(CUDA_ERROR_CONTEXT_IS_DESTROYED, 709)                                                          \
  X(CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, 712)                                                \
  X(CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, 713)                                                    \
  X(CUDA_ERROR_LAUNCH_FAILED, 719)                                                                 \
  X(CUDA_ERROR_NOT_PERMITTED, 800)                                                                 \
  X(CUDA_ERROR_NOT_SUPPORTED, 801)                                                                 \
  X(CUDA_ERROR_SYSTEM_NOT_READY, 802)                                                              \
  X(CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, 803)                                                        \
  X(CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE, 804)                                                \
  X(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, 900)                                                    \
  X(CUDA_ERROR_TIMEOUT, 909)                                                                       \
  X(CUDA_ERROR_UNKNOWN, 999)

/* CUpointer_attribute values: X(name, value). */
#define KVIK_CUDA_POINTER_ATTRS(X)                                                                 \
  X(CU_POINTER_ATTRIBUTE_CONTEXT, 1)                                                               \
  X(CU_POINTER_ATTRIBUTE_MEMORY_TYPE, 2)                                                           \
  X(CU_POINTER_ATTRIBUTE_DEVICE_POINTER, 3)                                                        \
  X(CU_POINTER_ATTRIBUTE_HOST_POINTER, 4)                                                          \
  X(CU_POINTER_ATTRIBUTE_BUFFER_ID, 7)                                                             \
  X(CU_POINTER_ATTRIBUTE_IS_MANAGED, 8)                                                            \
  X(CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL, 9)                                                        \
  X(CU_POINTER_ATTRIBUTE_RANGE_START_ADDR, 11)                                                     \
  X(CU_POINTER_ATTRIBUTE_RANGE_SIZE, 12)                                                           \
  X(CU_POINTER_ATTRIBUTE_MAPPED, 13)                                                               \
  X(CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE, 17)

/* CUmemorytype values: X(name, value). */
#define KVIK_CUDA_MEMORYTYPES(X)                                                                   \
  X(CU_MEMORYTYPE_HOST, 1)                                                                         \
  X(CU_MEMORYTYPE_DEVICE, 2)                                                                       \
  X(CU_MEMORYTYPE_ARRAY, 3)                                                                        \
  X(CU_MEMORYTYPE_UNIFIED, 4)

/* CUdevice_attribute values: X(name, value). */
#define KVIK_CUDA_DEVICE_ATTRS(X)                                                                  \
  X(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 16)                                                  \
  X(CU_DEVICE_ATTRIBUTE_INTEGRATED, 18)                                                            \
  X(CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY, 19)                                                   \
  X(CU_DEVICE_ATTRIBUTE_PCI_BUS_ID, 33)                                                            \
  X(CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID, 34)                                                         \
  X(CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT, 40)                                                    \
  X(CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING, 41)                                                    \
  X(CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID, 50)                                                         \
  X(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, 75)                                              \
  X(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, 76)                                              \
  X(CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY, 83)                                                        \
  X(CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS, 88)                                                \
  X(CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS, 89)                                             \
  X(CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM, 91)                               \
  X(CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_MEM_OPS_V1, 92)                                             \
  X(CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED, 99)                                               \
  X(CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES, 100)                         \
  X(CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED, 113)                                    \
  X(CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED, 115)                                               \
  X(CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED, 116)

/* Flags and other integer constants (enumerators or macros in cuda.h): X(name, value). */
#define KVIK_CUDA_FLAGS(X)                                                                         \
  X(CU_MEMHOSTALLOC_PORTABLE, 0x01)                                                                \
  X(CU_MEMHOSTALLOC_DEVICEMAP, 0x02)                                                               \
  X(CU_MEMHOSTALLOC_WRITECOMBINED, 0x04)                                                           \
  X(CU_MEMHOSTREGISTER_PORTABLE, 0x01)                                                             \
  X(CU_MEMHOSTREGISTER_DEVICEMAP, 0x02)                                                            \
  X(CU_MEMHOSTREGISTER_IOMEMORY, 0x04)                                                             \
  X(CU_MEMHOSTREGISTER_READ_ONLY, 0x08)                                                            \
  X(CU_MEM_ATTACH_GLOBAL, 0x1)                                                                     \
  X(CU_MEM_ATTACH_HOST, 0x2)                                                                       \
  X(CU_MEM_ATTACH_SINGLE, 0x4)                                                                     \
  X(CU_STREAM_DEFAULT, 0x0)                                                                        \
  X(CU_STREAM_NON_BLOCKING, 0x1)                                                                   \
  X(CU_EVENT_DEFAULT, 0x0)                                                                         \
  X(CU_EVENT_BLOCKING_SYNC, 0x1)                                                                   \
  X(CU_EVENT_DISABLE_TIMING, 0x2)                                                                  \
  X(CU_STREAM_WAIT_VALUE_GEQ, 0x0)                                                                 \
  X(CU_STREAM_WAIT_VALUE_EQ, 0x1)                                                                  \
  X(CU_STREAM_WAIT_VALUE_AND, 0x2)                                                                 \
  X(CU_STREAM_WAIT_VALUE_NOR, 0x3)                                                                 \
  X(CU_STREAM_WAIT_VALUE_FLUSH, 0x40000000)                                                        \
  X(CU_STREAM_WRITE_VALUE_DEFAULT, 0x0)                                                            \
  X(CU_DEVICE_CPU, -1)                                                                             \
  X(CU_DEVICE_INVALID, -2)

/* Integer (and enum) types: X(type, size in bytes, 1 if signed). LP64 only: kvik refuses to
 * build where a pointer is not 8 bytes (see src/gpu/cuda.h). */
#define KVIK_CUDA_INT_TYPES(X)                                                                     \
  X(CUresult, 4, 0)                                                                                \
  X(CUdevice, 4, 1)                                                                                \
  X(CUdeviceptr, 8, 0)                                                                             \
  X(CUpointer_attribute, 4, 0)                                                                     \
  X(CUmemorytype, 4, 0)                                                                            \
  X(CUdevice_attribute, 4, 0)                                                                      \
  X(cuuint32_t, 4, 0)                                                                              \
  X(cuuint64_t, 8, 0)

/* Pointer and struct types: X(type, size in bytes). */
#define KVIK_CUDA_OBJ_TYPES(X)                                                                     \
  X(CUcontext, 8)                                                                                  \
  X(CUstream, 8)                                                                                   \
  X(CUevent, 8)                                                                                    \
  X(CUmemoryPool, 8)                                                                               \
  X(CUhostFn, 8)                                                                                   \
  X(CUmodule, 8)                                                                                   \
  X(CUfunction, 8)                                                                                 \
  X(CUuuid, 16)

/* Struct fields kvik reads: X(type, field, offset). */
#define KVIK_CUDA_FIELDS(X) X(CUuuid, bytes, 0)

/* Driver entry points: X(required, symbol, parameter list). All return CUresult. A required
 * symbol missing from libcuda.so.1 makes the driver unusable to kvik (KVIK_ENOCUDA, naming the
 * symbol); an optional one missing leaves its table entry NULL and the feature off. Required
 * means present in every driver kvik supports (CUDA 11.0 and later) and needed by kvik itself;
 * entry points only tests and benchmarks use are optional. */
#define KVIK_CUDA_FUNCS(X)                                                                         \
  X(1, cuInit, (unsigned int Flags))                                                               \
  X(1, cuDriverGetVersion, (int *driverVersion))                                                   \
  X(1, cuGetErrorName, (CUresult error, const char **pStr))                                        \
  X(1, cuGetErrorString, (CUresult error, const char **pStr))                                      \
  X(1, cuDeviceGet, (CUdevice * device, int ordinal))                                              \
  X(1, cuDeviceGetCount, (int *count))                                                             \
  X(1, cuDeviceGetName, (char *name, int len, CUdevice dev))                                       \
  X(1, cuDeviceTotalMem_v2, (size_t * bytes, CUdevice dev))                                        \
  X(1, cuDeviceGetAttribute, (int *pi, CUdevice_attribute attrib, CUdevice dev))                   \
  X(1, cuDeviceGetPCIBusId, (char *pciBusId, int len, CUdevice dev))                               \
  X(0, cuDeviceGetUuid_v2, (CUuuid * uuid, CUdevice dev))                                          \
  X(1, cuDevicePrimaryCtxRetain, (CUcontext * pctx, CUdevice dev))                                 \
  X(1, cuDevicePrimaryCtxRelease_v2, (CUdevice dev))                                               \
  X(0, cuCtxCreate_v4,                                                                             \
    (CUcontext * pctx, CUctxCreateParams * ctxCreateParams, unsigned int flags, CUdevice dev))     \
  X(0, cuCtxDestroy_v2, (CUcontext ctx))                                                           \
  X(1, cuCtxGetCurrent, (CUcontext * pctx))                                                        \
  X(1, cuCtxSetCurrent, (CUcontext ctx))                                                           \
  X(1, cuCtxPushCurrent_v2, (CUcontext ctx))                                                       \
  X(1, cuCtxPopCurrent_v2, (CUcontext * pctx))                                                     \
  X(1, cuCtxGetDevice, (CUdevice * device))                                                        \
  X(0, cuCtxSynchronize, (void))                                                                   \
  X(1, cuPointerGetAttribute, (void *data, CUpointer_attribute attribute, CUdeviceptr ptr))        \
  X(1, cuPointerGetAttributes,                                                                     \
    (unsigned int numAttributes, CUpointer_attribute *attributes, void **data, CUdeviceptr ptr))   \
  X(1, cuMemGetAddressRange_v2, (CUdeviceptr * pbase, size_t * psize, CUdeviceptr dptr))           \
  X(0, cuMemGetInfo_v2, (size_t * free, size_t * total))                                           \
  X(1, cuMemHostAlloc, (void **pp, size_t bytesize, unsigned int Flags))                           \
  X(1, cuMemFreeHost, (void *p))                                                                   \
  X(0, cuMemHostRegister_v2, (void *p, size_t bytesize, unsigned int Flags))                       \
  X(0, cuMemHostUnregister, (void *p))                                                             \
  X(1, cuMemAlloc_v2, (CUdeviceptr * dptr, size_t bytesize))                                       \
  X(1, cuMemFree_v2, (CUdeviceptr dptr))                                                           \
  X(0, cuMemAllocManaged, (CUdeviceptr * dptr, size_t bytesize, unsigned int flags))               \
  X(0, cuMemAllocAsync, (CUdeviceptr * dptr, size_t bytesize, CUstream hStream))                   \
  X(0, cuMemFreeAsync, (CUdeviceptr dptr, CUstream hStream))                                       \
  X(1, cuMemcpyHtoD_v2, (CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount))            \
  X(1, cuMemcpyDtoH_v2, (void *dstHost, CUdeviceptr srcDevice, size_t ByteCount))                  \
  X(1, cuMemcpyHtoDAsync_v2,                                                                       \
    (CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount, CUstream hStream))              \
  X(1, cuMemcpyDtoHAsync_v2,                                                                       \
    (void *dstHost, CUdeviceptr srcDevice, size_t ByteCount, CUstream hStream))                    \
  X(0, cuMemsetD8_v2, (CUdeviceptr dstDevice, unsigned char uc, size_t N))                         \
  X(0, cuMemsetD8Async, (CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream))     \
  X(0, cuMemHostGetDevicePointer_v2, (CUdeviceptr * pdptr, void *p, unsigned int Flags))           \
  X(1, cuStreamCreate, (CUstream * phStream, unsigned int Flags))                                  \
  X(0, cuStreamCreateWithPriority, (CUstream * phStream, unsigned int flags, int priority))        \
  X(0, cuCtxGetStreamPriorityRange, (int *leastPriority, int *greatestPriority))                   \
  X(1, cuStreamDestroy_v2, (CUstream hStream))                                                     \
  X(1, cuStreamSynchronize, (CUstream hStream))                                                    \
  X(1, cuStreamQuery, (CUstream hStream))                                                          \
  X(1, cuStreamWaitEvent, (CUstream hStream, CUevent hEvent, unsigned int Flags))                  \
  X(0, cuStreamWaitValue32_v2,                                                                     \
    (CUstream stream, CUdeviceptr addr, cuuint32_t value, unsigned int flags))                     \
  X(0, cuStreamWriteValue32_v2,                                                                    \
    (CUstream stream, CUdeviceptr addr, cuuint32_t value, unsigned int flags))                     \
  X(1, cuEventCreate, (CUevent * phEvent, unsigned int Flags))                                     \
  X(1, cuEventDestroy_v2, (CUevent hEvent))                                                        \
  X(1, cuEventRecord, (CUevent hEvent, CUstream hStream))                                          \
  X(1, cuEventSynchronize, (CUevent hEvent))                                                       \
  X(1, cuEventQuery, (CUevent hEvent))                                                             \
  X(1, cuLaunchHostFunc, (CUstream hStream, CUhostFn fn, void *userData))                         \
  X(0, cuStreamGetCtx, (CUstream hStream, CUcontext * pctx))                                       \
  X(0, cuModuleLoadData, (CUmodule * module, const void *image))                                   \
  X(0, cuModuleGetFunction, (CUfunction * hfunc, CUmodule hmod, const char *name))                 \
  X(0, cuLaunchKernel,                                                                             \
    (CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,            \
     unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,                       \
     unsigned int sharedMemBytes, CUstream hStream, void **kernelParams, void **extra))

#endif
