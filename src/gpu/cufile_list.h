/* The cuFile API (libcufile.so.0, GPUDirect Storage) as kvik uses it, as X-macro lists: every
 * constant with its value, every type with its size, every struct field kvik touches with its
 * offset, and every entry point with its return type and parameter list.
 *
 * Like cuda_list.h this header includes nothing and declares nothing. src/gpu/cufile.h expands
 * the lists into kvik's mirror of cufile.h (kvik is built without it); tests/cufile expands the
 * same lists against the real cufile.h, where one is found, and checks every value, size, offset
 * and signature. A value listed here is a value tested.
 *
 * Lists marked "not checked" hold names that only newer cufile.h versions define; kvik uses them
 * for messages (error names) or as optional capability bits, never for layout. */
#ifndef KVIK_CUFILE_LIST_H
#define KVIK_CUFILE_LIST_H

/* CUfileOpError: X(name, value). Present in every cufile.h since CUDA 12.0. */
#define KVIK_CUFILE_ERRORS(X)                                                                      \
  X(CU_FILE_SUCCESS, 0)                                                                            \
  X(CU_FILE_DRIVER_NOT_INITIALIZED, 5001)                                                          \
  X(CU_FILE_DRIVER_INVALID_PROPS, 5002)                                                            \
  X(CU_FILE_DRIVER_UNSUPPORTED_LIMIT, 5003)                                                        \
  X(CU_FILE_DRIVER_VERSION_MISMATCH, 5004)                                                         \
  X(CU_FILE_DRIVER_VERSION_READ_ERROR, 5005)                                                       \
  X(CU_FILE_DRIVER_CLOSING, 5006)                                                                  \
  X(CU_FILE_PLATFORM_NOT_SUPPORTED, 5007)                                                          \
  X(CU_FILE_IO_NOT_SUPPORTED, 5008)                                                                \
  X(CU_FILE_DEVICE_NOT_SUPPORTED, 5009)                                                            \
  X(CU_FILE_NVFS_DRIVER_ERROR, 5010)                                                               \
  X(CU_FILE_CUDA_DRIVER_ERROR, 5011)                                                               \
  X(CU_FILE_CUDA_POINTER_INVALID, 5012)                                                            \
  X(CU_FILE_CUDA_MEMORY_TYPE_INVALID, 5013)                                                        \
  X(CU_FILE_CUDA_POINTER_RANGE_ERROR, 5014)                                                        \
  X(CU_FILE_CUDA_CONTEXT_MISMATCH, 5015)                                                           \
  X(CU_FILE_INVALID_MAPPING_SIZE, 5016)                                                            \
  X(CU_FILE_INVALID_MAPPING_RANGE, 5017)                                                           \
  X(CU_FILE_INVALID_FILE_TYPE, 5018)                                                               \
  X(CU_FILE_INVALID_FILE_OPEN_FLAG, 5019)                                                          \
  X(CU_FILE_DIO_NOT_SET, 5020)                                                                     \
  X(CU_FILE_INVALID_VALUE, 5022)                                                                   \
  X(CU_FILE_MEMORY_ALREADY_REGISTERED, 5023)                                                       \
  X(CU_FILE_MEMORY_NOT_REGISTERED, 5024)                                                           \
  X(CU_FILE_PERMISSION_DENIED, 5025)                                                               \
  X(CU_FILE_DRIVER_ALREADY_OPEN, 5026)                                                             \
  X(CU_FILE_HANDLE_NOT_REGISTERED, 5027)                                                           \
  X(CU_FILE_HANDLE_ALREADY_REGISTERED, 5028)                                                       \
  X(CU_FILE_DEVICE_NOT_FOUND, 5029)                                                                \
  X(CU_FILE_INTERNAL_ERROR, 5030)                                                                  \
  X(CU_FILE_GETNEWFD_FAILED, 5031)                                                                 \
  X(CU_FILE_NVFS_SETUP_ERROR, 5033)                                                                \
  X(CU_FILE_IO_DISABLED, 5034)                                                                     \
  X(CU_FILE_BATCH_SUBMIT_FAILED, 5035)                                                             \
  X(CU_FILE_GPU_MEMORY_PINNING_FAILED, 5036)                                                       \
  X(CU_FILE_BATCH_FULL, 5037)                                                                      \
  X(CU_FILE_ASYNC_NOT_SUPPORTED, 5038)

/* Newer CUfileOpError names (CUDA 12.9 and later), for messages only: not checked. */
#define KVIK_CUFILE_ERRORS_NEWER(X)                                                                \
  X(CU_FILE_INTERNAL_BATCH_SETUP_ERROR, 5039)                                                      \
  X(CU_FILE_INTERNAL_BATCH_SUBMIT_ERROR, 5040)                                                     \
  X(CU_FILE_INTERNAL_BATCH_GETSTATUS_ERROR, 5041)                                                  \
  X(CU_FILE_INTERNAL_BATCH_CANCEL_ERROR, 5042)                                                     \
  X(CU_FILE_NOMEM_ERROR, 5043)                                                                     \
  X(CU_FILE_IO_ERROR, 5044)                                                                        \
  X(CU_FILE_INTERNAL_BUF_REGISTER_ERROR, 5045)                                                     \
  X(CU_FILE_HASH_OPR_ERROR, 5046)                                                                  \
  X(CU_FILE_INVALID_CONTEXT_ERROR, 5047)                                                           \
  X(CU_FILE_NVFS_INTERNAL_DRIVER_ERROR, 5048)                                                      \
  X(CU_FILE_BATCH_NOCOMPAT_ERROR, 5049)

/* Other enumerators: X(name, value). CUfileStatus_t values are bits; the driver status,
 * control and feature flags are bit numbers within CUfileDrvProps_t's flag words. */
#define KVIK_CUFILE_CONSTS(X)                                                                      \
  X(CU_FILE_HANDLE_TYPE_OPAQUE_FD, 1)                                                              \
  X(CUFILE_READ, 0)                                                                                \
  X(CUFILE_WRITE, 1)                                                                               \
  X(CUFILE_BATCH, 1)                                                                               \
  X(CUFILE_WAITING, 1)                                                                             \
  X(CUFILE_PENDING, 2)                                                                             \
  X(CUFILE_INVALID, 4)                                                                             \
  X(CUFILE_CANCELED, 8)                                                                            \
  X(CUFILE_COMPLETE, 16)                                                                           \
  X(CUFILE_TIMEOUT, 32)                                                                            \
  X(CUFILE_FAILED, 64)                                                                             \
  X(CU_FILE_LUSTRE_SUPPORTED, 0)                                                                   \
  X(CU_FILE_WEKAFS_SUPPORTED, 1)                                                                   \
  X(CU_FILE_NFS_SUPPORTED, 2)                                                                      \
  X(CU_FILE_GPFS_SUPPORTED, 3)                                                                     \
  X(CU_FILE_NVME_SUPPORTED, 4)                                                                     \
  X(CU_FILE_NVMEOF_SUPPORTED, 5)                                                                   \
  X(CU_FILE_SCSI_SUPPORTED, 6)                                                                     \
  X(CU_FILE_SCALEFLUX_CSD_SUPPORTED, 7)                                                            \
  X(CU_FILE_NVMESH_SUPPORTED, 8)                                                                   \
  X(CU_FILE_BEEGFS_SUPPORTED, 9)                                                                   \
  X(CU_FILE_NVME_P2P_SUPPORTED, 11)                                                                \
  X(CU_FILE_USE_POLL_MODE, 0)                                                                      \
  X(CU_FILE_ALLOW_COMPAT_MODE, 1)                                                                  \
  X(CU_FILE_DYN_ROUTING_SUPPORTED, 0)                                                              \
  X(CU_FILE_BATCH_IO_SUPPORTED, 1)                                                                 \
  X(CU_FILE_STREAMS_SUPPORTED, 2)                                                                  \
  X(CU_FILE_PARALLEL_IO_SUPPORTED, 3)

/* Newer feature bits (CUDA 12.8 and later): not checked. */
#define KVIK_CUFILE_CONSTS_NEWER(X) X(CU_FILE_P2P_SUPPORTED, 4)

/* Types: X(type, size in bytes). LP64 only. */
#define KVIK_CUFILE_TYPES(X)                                                                       \
  X(CUfileOpError, 4)                                                                              \
  X(CUfileError_t, 8)                                                                              \
  X(CUfileHandle_t, 8)                                                                             \
  X(CUfileBatchHandle_t, 8)                                                                        \
  X(CUfileDescr_t, 24)                                                                             \
  X(CUfileDrvProps_t, 56)                                                                          \
  X(CUfileIOParams_t, 64)                                                                          \
  X(CUfileIOEvents_t, 24)                                                                          \
  X(CUfileStatus_t, 4)                                                                             \
  X(CUfileOpcode_t, 4)                                                                             \
  X(CUfileBatchMode_t, 4)                                                                          \
  X(enum CUfileFileHandleType, 4)

/* Struct fields: X(type, field, offset). Nested fields are written as member designators. */
#define KVIK_CUFILE_FIELDS(X)                                                                      \
  X(CUfileError_t, err, 0)                                                                         \
  X(CUfileError_t, cu_err, 4)                                                                      \
  X(CUfileDescr_t, type, 0)                                                                        \
  X(CUfileDescr_t, handle.fd, 8)                                                                   \
  X(CUfileDescr_t, fs_ops, 16)                                                                     \
  X(CUfileDrvProps_t, nvfs.major_version, 0)                                                       \
  X(CUfileDrvProps_t, nvfs.minor_version, 4)                                                       \
  X(CUfileDrvProps_t, nvfs.poll_thresh_size, 8)                                                    \
  X(CUfileDrvProps_t, nvfs.max_direct_io_size, 16)                                                 \
  X(CUfileDrvProps_t, nvfs.dstatusflags, 24)                                                       \
  X(CUfileDrvProps_t, nvfs.dcontrolflags, 28)                                                      \
  X(CUfileDrvProps_t, fflags, 32)                                                                  \
  X(CUfileDrvProps_t, max_device_cache_size, 36)                                                   \
  X(CUfileDrvProps_t, per_buffer_cache_size, 40)                                                   \
  X(CUfileDrvProps_t, max_device_pinned_mem_size, 44)                                              \
  X(CUfileDrvProps_t, max_batch_io_size, 48)                                                       \
  X(CUfileDrvProps_t, max_batch_io_timeout_msecs, 52)                                              \
  X(CUfileIOParams_t, mode, 0)                                                                     \
  X(CUfileIOParams_t, u.batch.devPtr_base, 8)                                                      \
  X(CUfileIOParams_t, u.batch.file_offset, 16)                                                     \
  X(CUfileIOParams_t, u.batch.devPtr_offset, 24)                                                   \
  X(CUfileIOParams_t, u.batch.size, 32)                                                            \
  X(CUfileIOParams_t, fh, 40)                                                                      \
  X(CUfileIOParams_t, opcode, 48)                                                                  \
  X(CUfileIOParams_t, cookie, 56)                                                                  \
  X(CUfileIOEvents_t, cookie, 0)                                                                   \
  X(CUfileIOEvents_t, status, 8)                                                                   \
  X(CUfileIOEvents_t, ret, 16)

/* Entry points: X(required, symbol, return type, parameter list). A required symbol missing from
 * libcufile.so.0 makes cuFile unusable to kvik (KVIK_ENOCUFILE naming it). Optional groups turn
 * their feature off when any member is missing, and kvik reports which: properties (the
 * setters), batch (cuFileBatchIO*), async (cuFileReadAsync, cuFileWriteAsync, stream
 * registration), version (cuFileGetVersion). The driver is closed with cuFileDriverClose_v2 where
 * it exists (CUDA 12.?+), else cuFileDriverClose; one of the two must be there. */
#define KVIK_CUFILE_FUNCS(X)                                                                       \
  X(1, cuFileDriverOpen, CUfileError_t, (void))                                                    \
  X(0, cuFileDriverClose, CUfileError_t, (void))                                                   \
  X(0, cuFileDriverClose_v2, CUfileError_t, (void))                                                \
  X(0, cuFileUseCount, long, (void))                                                               \
  X(1, cuFileDriverGetProperties, CUfileError_t, (CUfileDrvProps_t * props))                       \
  X(0, cuFileDriverSetPollMode, CUfileError_t, (bool poll, size_t poll_threshold_size))            \
  X(0, cuFileDriverSetMaxDirectIOSize, CUfileError_t, (size_t max_direct_io_size))                 \
  X(0, cuFileDriverSetMaxCacheSize, CUfileError_t, (size_t max_cache_size))                        \
  X(0, cuFileDriverSetMaxPinnedMemSize, CUfileError_t, (size_t max_pinned_size))                   \
  X(1, cuFileHandleRegister, CUfileError_t, (CUfileHandle_t * fh, CUfileDescr_t * descr))          \
  X(1, cuFileHandleDeregister, void, (CUfileHandle_t fh))                                          \
  X(1, cuFileBufRegister, CUfileError_t, (const void *bufPtr_base, size_t length, int flags))      \
  X(1, cuFileBufDeregister, CUfileError_t, (const void *bufPtr_base))                              \
  X(1, cuFileRead, ssize_t,                                                                        \
    (CUfileHandle_t fh, void *bufPtr_base, size_t size, off_t file_offset, off_t bufPtr_offset))   \
  X(1, cuFileWrite, ssize_t,                                                                       \
    (CUfileHandle_t fh, const void *bufPtr_base, size_t size, off_t file_offset,                   \
     off_t bufPtr_offset))                                                                         \
  X(0, cuFileBatchIOSetUp, CUfileError_t, (CUfileBatchHandle_t * batch_idp, unsigned nr))          \
  X(0, cuFileBatchIOSubmit, CUfileError_t,                                                         \
    (CUfileBatchHandle_t batch_idp, unsigned nr, CUfileIOParams_t *iocbp, unsigned int flags))     \
  X(0, cuFileBatchIOGetStatus, CUfileError_t,                                                      \
    (CUfileBatchHandle_t batch_idp, unsigned min_nr, unsigned *nr, CUfileIOEvents_t *iocbp,        \
     struct timespec *timeout))                                                                    \
  X(0, cuFileBatchIOCancel, CUfileError_t, (CUfileBatchHandle_t batch_idp))                        \
  X(0, cuFileBatchIODestroy, void, (CUfileBatchHandle_t batch_idp))                                \
  X(0, cuFileReadAsync, CUfileError_t,                                                             \
    (CUfileHandle_t fh, void *bufPtr_base, size_t *size_p, off_t *file_offset_p,                   \
     off_t *bufPtr_offset_p, ssize_t *bytes_read_p, CUstream stream))                              \
  X(0, cuFileWriteAsync, CUfileError_t,                                                            \
    (CUfileHandle_t fh, void *bufPtr_base, size_t *size_p, off_t *file_offset_p,                   \
     off_t *bufPtr_offset_p, ssize_t *bytes_written_p, CUstream stream))                           \
  X(0, cuFileStreamRegister, CUfileError_t, (CUstream stream, unsigned flags))                     \
  X(0, cuFileStreamDeregister, CUfileError_t, (CUstream stream))                                   \
  X(0, cuFileGetVersion, CUfileError_t, (int *version))

#endif
