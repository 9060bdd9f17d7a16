/* The real cufile.h's half of the cuFile mirror test: the values, sizes, offsets and signatures
 * that src/gpu/cufile_list.h names, as the installed cufile.h defines them. Built only where
 * cufile.h is found; nothing here is called. */
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include <cuda.h>
#include <cufile.h>

#include "cufile_mirror.h"
#include "gpu/cufile_list.h"

#define R_CONST(name, value) {#name, (long long)(value), (long long)(name)},
const struct cfm_const cfm_real_consts[] = {KVIK_CUFILE_ERRORS(R_CONST)
                                                KVIK_CUFILE_CONSTS(R_CONST)};
const size_t cfm_real_nconsts = sizeof cfm_real_consts / sizeof cfm_real_consts[0];

#define R_TYPE(type, size) {#type, sizeof(type), _Alignof(type), size},
const struct cfm_type cfm_real_types[] = {KVIK_CUFILE_TYPES(R_TYPE)};
const size_t cfm_real_ntypes = sizeof cfm_real_types / sizeof cfm_real_types[0];

#define R_FIELD(type, field, off)                                                                  \
  {#type "." #field, offsetof(type, field), sizeof(((type *)0)->field), off},
const struct cfm_field cfm_real_fields[] = {KVIK_CUFILE_FIELDS(R_FIELD)};
const size_t cfm_real_nfields = sizeof cfm_real_fields / sizeof cfm_real_fields[0];

#define R_FN(required, name, ret, params)                                                          \
  {#name, __builtin_types_compatible_p(__typeof__(&name), ret(*) params)},
const struct cfm_fn cfm_real_fns[] = {KVIK_CUFILE_FUNCS(R_FN)};
const size_t cfm_real_nfns = sizeof cfm_real_fns / sizeof cfm_real_fns[0];
