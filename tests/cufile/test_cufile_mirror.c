/* kvik's mirror of cufile.h (src/gpu/cufile.h) against the real cufile.h: every listed constant,
 * every type's size and alignment, every field offset and every entry point's signature. This
 * half sees only kvik's mirror; cufile_mirror_real.c sees only cufile.h. Every mismatch is
 * printed with both sides before the test fails. */
#include "common.h"

#include "cufile_mirror.h"
#include "gpu/cufile.h"

#define M_CONST(name, value) {#name, (long long)(value), (long long)(name)},
static const struct cfm_const consts[] = {KVIK_CUFILE_ERRORS(M_CONST) KVIK_CUFILE_CONSTS(M_CONST)};
#define M_TYPE(type, size) {#type, sizeof(type), _Alignof(type), size},
static const struct cfm_type types[] = {KVIK_CUFILE_TYPES(M_TYPE)};
#define M_FIELD(type, field, off)                                                                  \
  {#type "." #field, offsetof(type, field), sizeof(((type *)0)->field), off},
static const struct cfm_field fields[] = {KVIK_CUFILE_FIELDS(M_FIELD)};
#define M_FN(required, name, ret, params)                                                          \
  {#name,                                                                                          \
   __builtin_types_compatible_p(__typeof__(((struct kvik__cufile_api *)0)->name), ret(*) params)},
static const struct cfm_fn fns[] = {KVIK_CUFILE_FUNCS(M_FN)};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void test_constants(void **state) {
  (void)state;
  assert_int_equal(N(consts), cfm_real_nconsts);
  int bad = 0;
  for (size_t i = 0; i < N(consts); i++) {
    const struct cfm_const *m = &consts[i], *r = &cfm_real_consts[i];
    assert_string_equal(m->name, r->name);
    if (m->actual != r->actual || r->actual != r->listed) {
      print_error("%s: kvik %lld, cufile.h %lld (listed %lld)\n", m->name, m->actual, r->actual,
                  r->listed);
      bad++;
    }
  }
  print_message("checked %zu constants against cufile.h\n", N(consts));
  assert_int_equal(bad, 0);
}

static void test_layout(void **state) {
  (void)state;
  int bad = 0;
  assert_int_equal(N(types), cfm_real_ntypes);
  for (size_t i = 0; i < N(types); i++) {
    const struct cfm_type *m = &types[i], *r = &cfm_real_types[i];
    assert_string_equal(m->name, r->name);
    if (m->size != r->size || m->align != r->align || r->size != r->listed_size) {
      print_error("%s: kvik size %zu align %zu; cufile.h size %zu align %zu; listed %zu\n", m->name,
                  m->size, m->align, r->size, r->align, r->listed_size);
      bad++;
    }
  }
  assert_int_equal(N(fields), cfm_real_nfields);
  for (size_t i = 0; i < N(fields); i++) {
    const struct cfm_field *m = &fields[i], *r = &cfm_real_fields[i];
    assert_string_equal(m->name, r->name);
    if (m->offset != r->offset || m->size != r->size || r->offset != r->listed_offset) {
      print_error("%s: kvik offset %zu size %zu; cufile.h offset %zu size %zu (listed %zu)\n",
                  m->name, m->offset, m->size, r->offset, r->size, r->listed_offset);
      bad++;
    }
  }
  print_message("checked %zu types and %zu fields\n", N(types), N(fields));
  assert_int_equal(bad, 0);
}

static void test_signatures(void **state) {
  (void)state;
  int bad = 0;
  assert_int_equal(N(fns), cfm_real_nfns);
  for (size_t i = 0; i < N(fns); i++) {
    assert_string_equal(fns[i].name, cfm_real_fns[i].name);
    if (!fns[i].compatible || !cfm_real_fns[i].compatible) {
      print_error("%s: listed signature %s kvik's table, %s cufile.h's declaration\n", fns[i].name,
                  fns[i].compatible ? "matches" : "DIFFERS from",
                  cfm_real_fns[i].compatible ? "matches" : "DIFFERS from");
      bad++;
    }
  }
  print_message("checked %zu entry point signatures\n", N(fns));
  assert_int_equal(bad, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_constants),
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_signatures),
  };
  return cmocka_run_group_tests_name("cufile_mirror", tests, NULL, NULL);
}
