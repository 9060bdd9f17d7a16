/* The real cuda.h's half of the mirror test: the values, sizes, offsets and signatures that
 * src/gpu/cuda_list.h names, as the CUDA toolkit's cuda.h defines them. Built only where
 * cuda.h is found; never links against libcuda (nothing here is called). */
#include <cuda.h>

#include "gpu/cuda_list.h"
#include "mirror.h"

#include <stdint.h>

#define MR_CONST(name, value) {#name, (long long)(value), (long long)(name)},
const struct mirror_const mirror_real_consts[] = {
    KVIK_CUDA_RESULTS(MR_CONST) KVIK_CUDA_POINTER_ATTRS(MR_CONST) KVIK_CUDA_MEMORYTYPES(MR_CONST)
        KVIK_CUDA_DEVICE_ATTRS(MR_CONST) KVIK_CUDA_FLAGS(MR_CONST)};
const size_t mirror_real_nconsts = sizeof mirror_real_consts / sizeof mirror_real_consts[0];

#define MR_INT(type, size, sgn)                                                                    \
  {#type, sizeof(type), _Alignof(type), MIRROR_SIGNED((type)0), size, sgn},
#define MR_OBJ(type, size) {#type, sizeof(type), _Alignof(type), -1, size, -1},
const struct mirror_type mirror_real_types[] = {KVIK_CUDA_INT_TYPES(MR_INT)
                                                    KVIK_CUDA_OBJ_TYPES(MR_OBJ)};
const size_t mirror_real_ntypes = sizeof mirror_real_types / sizeof mirror_real_types[0];

#define MR_FIELD(type, field, off)                                                                 \
  {#type "." #field, offsetof(type, field), sizeof(((type *)0)->field), off},
const struct mirror_field mirror_real_fields[] = {KVIK_CUDA_FIELDS(MR_FIELD)};
const size_t mirror_real_nfields = sizeof mirror_real_fields / sizeof mirror_real_fields[0];

/* __typeof__(&cuX) is the type cuda.h declares for the exported symbol cuX; the listed
 * parameter list is spelled out with cuda.h's own types here. */
#define MR_FN(required, name, params)                                                              \
  {#name, __builtin_types_compatible_p(__typeof__(&name), CUresult(*) params)},
const struct mirror_fn mirror_real_fns[] = {KVIK_CUDA_FUNCS(MR_FN)};
const size_t mirror_real_nfns = sizeof mirror_real_fns / sizeof mirror_real_fns[0];

const unsigned long long mirror_real_stream_legacy = (uintptr_t)CU_STREAM_LEGACY;
const unsigned long long mirror_real_stream_per_thread = (uintptr_t)CU_STREAM_PER_THREAD;
const int mirror_real_cuda_version = CUDA_VERSION;
