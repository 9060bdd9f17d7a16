/* What the two halves of the mirror test exchange: the same facts about the CUDA driver API,
 * once as kvik's mirror (src/gpu/cuda.h) sees them and once as the real cuda.h does. The two
 * cannot share a translation unit (they define the same names), so each half fills arrays in
 * the order of the lists in src/gpu/cuda_list.h, and test_cuda_mirror.c compares them. */
#ifndef KVIK_TEST_MIRROR_H
#define KVIK_TEST_MIRROR_H

#include <stddef.h>

struct mirror_const {
  const char *name;
  long long listed; /* the value written in cuda_list.h               */
  long long actual; /* the value of the name in this translation unit */
};

struct mirror_type {
  const char *name;
  size_t size, align;
  int is_signed; /* -1 for pointer and struct types */
  size_t listed_size;
  int listed_signed;
};

struct mirror_field {
  const char *name;
  size_t offset, size, listed_offset;
};

struct mirror_fn {
  const char *name;
  int compatible; /* the listed signature, read with cuda.h's types, matches cuda.h's */
};

/* The real cuda.h's view (mirror_real.c). */
/* 1 if the integer (or enum) type of expr is signed. _Generic picks the type an enum is
 * compatible with, so this also tells how the compiler lays out an enum. */
#define MIRROR_SIGNED(expr)                                                                        \
  _Generic((expr), signed char : 1, short : 1, int : 1, long : 1, long long : 1, default : 0)

extern const struct mirror_const mirror_real_consts[];
extern const size_t mirror_real_nconsts;
extern const struct mirror_type mirror_real_types[];
extern const size_t mirror_real_ntypes;
extern const struct mirror_field mirror_real_fields[];
extern const size_t mirror_real_nfields;
extern const struct mirror_fn mirror_real_fns[];
extern const size_t mirror_real_nfns;
extern const unsigned long long mirror_real_stream_legacy, mirror_real_stream_per_thread;
extern const int mirror_real_cuda_version;

#endif
