/* What the two halves of the cuFile mirror test exchange (see tests/cuda/mirror.h for the same
 * scheme over cuda.h): kvik's mirror (src/gpu/cufile.h) and the real cufile.h cannot share a
 * translation unit, so each half fills arrays in the order of src/gpu/cufile_list.h. */
#ifndef KVIK_TEST_CUFILE_MIRROR_H
#define KVIK_TEST_CUFILE_MIRROR_H

#include <stddef.h>

struct cfm_const {
  const char *name;
  long long listed, actual;
};
struct cfm_type {
  const char *name;
  size_t size, align, listed_size;
};
struct cfm_field {
  const char *name;
  size_t offset, size, listed_offset;
};
struct cfm_fn {
  const char *name;
  int compatible;
};

extern const struct cfm_const cfm_real_consts[];
extern const size_t cfm_real_nconsts;
extern const struct cfm_type cfm_real_types[];
extern const size_t cfm_real_ntypes;
extern const struct cfm_field cfm_real_fields[];
extern const size_t cfm_real_nfields;
extern const struct cfm_fn cfm_real_fns[];
extern const size_t cfm_real_nfns;

#endif
