/* Helpers for the CUDA tests: cmocka in the order it needs, assertions that print both sides
 * and kvik's detail message, and a driver table for the test itself, filled from the same
 * libcuda.so.1 kvik loads (the fake in CI), so tests make device memory the way users do. */
#ifndef KVIK_TEST_CUDA_TEST_H
#define KVIK_TEST_CUDA_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "fake_cuda.h"
#include "gpu/cuda.h"
#include "kvik.h"

/* Fails unless expr (a kvik return value) equals want; prints both with their names and this
 * thread's kvik_last_error(). */
#define CT_ASSERT_CODE(expr, want)                                                                 \
  do {                                                                                             \
    long long got_ = (long long)(expr);                                                            \
    long long want_ = (long long)(want);                                                           \
    if (got_ != want_) {                                                                           \
      print_error("%s:%d: %s\n  got  %lld (%s)\n  want %lld (%s)\n  last error: \"%s\"\n",         \
                  __FILE__, __LINE__, #expr, got_, kvik_strerror_name((int)got_), want_,           \
                  kvik_strerror_name((int)want_), kvik_last_error());                              \
      fail();                                                                                      \
    }                                                                                              \
  } while (0)

/* Fails unless this thread's kvik_last_error() contains sub. */
#define CT_ASSERT_ERR_HAS(sub)                                                                     \
  do {                                                                                             \
    if (!strstr(kvik_last_error(), (sub))) {                                                       \
      print_error("%s:%d: last error \"%s\" does not mention \"%s\"\n", __FILE__, __LINE__,        \
                  kvik_last_error(), (sub));                                                       \
      fail();                                                                                      \
    }                                                                                              \
  } while (0)

/* Fails unless a CUDA call made by the test itself succeeded. */
#define CT_CU(call)                                                                                \
  do {                                                                                             \
    CUresult r_ = (call);                                                                          \
    if (r_ != CUDA_SUCCESS) {                                                                      \
      print_error("%s:%d: %s returned %d\n", __FILE__, __LINE__, #call, (int)r_);                  \
      fail();                                                                                      \
    }                                                                                              \
  } while (0)

/* The test's own driver table. Returns 0, or -1 if libcuda.so.1 cannot be opened or lacks a
 * required entry point. Calls cuInit. */
static inline int ct_driver(struct kvik__cuda_api *t, void **handle) {
  memset(t, 0, sizeof *t);
  void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!h)
    return -1;
#define CT_RESOLVE(required, name, params)                                                         \
  {                                                                                                \
    void *p_ = dlsym(h, #name);                                                                    \
    if (!p_ && (required))                                                                         \
      return -1;                                                                                   \
    memcpy(&t->name, &p_, sizeof p_);                                                              \
  }
  KVIK_CUDA_FUNCS(CT_RESOLVE)
#undef CT_RESOLVE
  if (handle)
    *handle = h;
  return t->cuInit(0) == CUDA_SUCCESS ? 0 : -1;
}

/* True if libcuda.so.1 is mapped into this process (by anyone), without loading it. */
static inline int ct_libcuda_loaded(void) {
  void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_NOLOAD);
  return h != NULL;
}

#endif
