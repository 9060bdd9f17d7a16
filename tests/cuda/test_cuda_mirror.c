/* kvik's mirror of the CUDA driver API (src/gpu/cuda.h) against the real cuda.h: every listed
 * constant's value, every type's size, alignment and signedness, every field offset, and every
 * entry point's signature. This half sees only kvik's mirror; mirror_real.c sees only cuda.h.
 * Each check prints both sides and the test reports every mismatch before it fails. */
#include "cuda_test.h"
#include "mirror.h"

#define MM_CONST(name, value) {#name, (long long)(value), (long long)(name)},
static const struct mirror_const mirror_consts[] = {
    KVIK_CUDA_RESULTS(MM_CONST) KVIK_CUDA_POINTER_ATTRS(MM_CONST) KVIK_CUDA_MEMORYTYPES(MM_CONST)
        KVIK_CUDA_DEVICE_ATTRS(MM_CONST) KVIK_CUDA_FLAGS(MM_CONST)};

#define MM_INT(type, size, sgn)                                                                    \
  {#type, sizeof(type), _Alignof(type), MIRROR_SIGNED((type)0), size, sgn},
#define MM_OBJ(type, size) {#type, sizeof(type), _Alignof(type), -1, size, -1},
static const struct mirror_type mirror_types[] = {KVIK_CUDA_INT_TYPES(MM_INT)
                                                      KVIK_CUDA_OBJ_TYPES(MM_OBJ)};

#define MM_FIELD(type, field, off)                                                                 \
  {#type "." #field, offsetof(type, field), sizeof(((type *)0)->field), off},
static const struct mirror_field mirror_fields[] = {KVIK_CUDA_FIELDS(MM_FIELD)};

/* The mirror's table fields have exactly the listed signatures (they are generated from the
 * list; this guards the generator). */
#define MM_FN(required, name, params)                                                              \
  {#name, __builtin_types_compatible_p(__typeof__(((struct kvik__cuda_api *)0)->name),             \
                                       CUresult(*) params)},
static const struct mirror_fn mirror_fns[] = {KVIK_CUDA_FUNCS(MM_FN)};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_constants(void **state) {
  (void)state;
  assert_int_equal(N(mirror_consts), mirror_real_nconsts);
  int bad = 0;
  for (size_t i = 0; i < N(mirror_consts); i++) {
    const struct mirror_const *m = &mirror_consts[i], *r = &mirror_real_consts[i];
    assert_string_equal(m->name, r->name);
    if (m->actual != r->actual || r->actual != r->listed) {
      print_error("%s: kvik mirror %lld, cuda.h %lld (listed %lld)\n", m->name, m->actual,
                  r->actual, r->listed);
      bad++;
    }
  }
  if ((unsigned long long)(uintptr_t)CU_STREAM_LEGACY != mirror_real_stream_legacy ||
      (unsigned long long)(uintptr_t)CU_STREAM_PER_THREAD != mirror_real_stream_per_thread) {
    print_error("CU_STREAM_LEGACY/PER_THREAD: kvik %#llx/%#llx, cuda.h %#llx/%#llx\n",
                (unsigned long long)(uintptr_t)CU_STREAM_LEGACY,
                (unsigned long long)(uintptr_t)CU_STREAM_PER_THREAD, mirror_real_stream_legacy,
                mirror_real_stream_per_thread);
    bad++;
  }
  print_message("checked %zu constants against cuda.h (CUDA_VERSION %d)\n", N(mirror_consts),
                mirror_real_cuda_version);
  assert_int_equal(bad, 0);
}

static void test_types(void **state) {
  (void)state;
  assert_int_equal(N(mirror_types), mirror_real_ntypes);
  int bad = 0;
  for (size_t i = 0; i < N(mirror_types); i++) {
    const struct mirror_type *m = &mirror_types[i], *r = &mirror_real_types[i];
    assert_string_equal(m->name, r->name);
    if (m->size != r->size || m->align != r->align || m->is_signed != r->is_signed ||
        r->size != r->listed_size || r->is_signed != r->listed_signed) {
      print_error("%s: kvik size %zu align %zu signed %d; cuda.h size %zu align %zu signed %d; "
                  "listed size %zu signed %d\n",
                  m->name, m->size, m->align, m->is_signed, r->size, r->align, r->is_signed,
                  r->listed_size, r->listed_signed);
      bad++;
    }
  }
  assert_int_equal(N(mirror_fields), mirror_real_nfields);
  for (size_t i = 0; i < N(mirror_fields); i++) {
    const struct mirror_field *m = &mirror_fields[i], *r = &mirror_real_fields[i];
    assert_string_equal(m->name, r->name);
    if (m->offset != r->offset || m->size != r->size || r->offset != r->listed_offset) {
      print_error("%s: kvik offset %zu size %zu; cuda.h offset %zu size %zu (listed %zu)\n",
                  m->name, m->offset, m->size, r->offset, r->size, r->listed_offset);
      bad++;
    }
  }
  print_message("checked %zu types and %zu fields\n", N(mirror_types), N(mirror_fields));
  assert_int_equal(bad, 0);
}

static void test_signatures(void **state) {
  (void)state;
  assert_int_equal(N(mirror_fns), mirror_real_nfns);
  int bad = 0;
  for (size_t i = 0; i < N(mirror_fns); i++) {
    assert_string_equal(mirror_fns[i].name, mirror_real_fns[i].name);
    if (!mirror_fns[i].compatible || !mirror_real_fns[i].compatible) {
      print_error("%s: listed signature %s kvik's table, %s cuda.h's declaration\n",
                  mirror_fns[i].name, mirror_fns[i].compatible ? "matches" : "DIFFERS from",
                  mirror_real_fns[i].compatible ? "matches" : "DIFFERS from");
      bad++;
    }
  }
  print_message("checked %zu entry point signatures\n", N(mirror_fns));
  assert_int_equal(bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_constants),
      cmocka_unit_test(test_types),
      cmocka_unit_test(test_signatures),
  };
  return cmocka_run_group_tests_name("cuda_mirror", tests, NULL, NULL);
}
