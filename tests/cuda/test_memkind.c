/* Memory kinds against the fake libcuda.so.1 (tests/fake): pageable, pinned and registered
 * host memory, device memory on either device whatever context is current, managed memory,
 * stream-ordered pool memory, ranges past the end of an allocation, freed allocations, bad
 * sizes, driver failures; plus the public driver and GPU facts. The test makes its memory
 * through the same driver kvik uses, as a user would. */
#include "cuda_test.h"

#include "gpu/gpu.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

static struct kvik__cuda_api cu; /* the test's own driver table */
static struct fake_cuda fc;
static CUcontext ctx0, ctx1; /* primary contexts, retained by the test */

static int setup(void **state) {
  (void)state;
  if (ct_driver(&cu, NULL) != 0 || fake_cuda_bind(&fc) != 0) {
    print_error("libcuda.so.1 is missing or is not kvik's fake (LD_LIBRARY_PATH=%s)\n",
                getenv("LD_LIBRARY_PATH") ? getenv("LD_LIBRARY_PATH") : "");
    return -1;
  }
  if (cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS ||
      cu.cuDevicePrimaryCtxRetain(&ctx1, 1) != CUDA_SUCCESS ||
      cu.cuCtxSetCurrent(ctx0) != CUDA_SUCCESS)
    return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  cu.cuCtxSetCurrent(NULL);
  cu.cuDevicePrimaryCtxRelease_v2(0);
  cu.cuDevicePrimaryCtxRelease_v2(1);
  return 0;
}

static void *dp(CUdeviceptr d) { return (void *)(uintptr_t)d; }

static struct kvik_mem_info mem_info(const void *p, size_t n, int want_rc) {
  struct kvik_mem_info mi = {.sz = sizeof mi};
  CT_ASSERT_CODE(kvik_mem_info(p, n, &mi), want_rc);
  return mi;
}

/* ---- the driver and the GPUs ------------------------------------------------------------- */

static void test_driver_facts(void **state) {
  (void)state;
  assert_int_equal(kvik_cuda_available(), 1);
  int v = 0;
  CT_ASSERT_CODE(kvik_cuda_driver_version(&v), 0);
  assert_int_equal(v, 13000);
  CT_ASSERT_CODE(kvik_cuda_driver_version(NULL), KVIK_EINVAL);
  CT_ASSERT_CODE(kvik_gpu_count(), 2);

  struct kvik_gpu_info gi = {.sz = sizeof gi};
  CT_ASSERT_CODE(kvik_gpu_info(1, &gi), 0);
  assert_int_equal(gi.ordinal, 1);
  assert_string_equal(gi.name, "Fake CUDA GPU 1 (kvik test double)");
  assert_int_equal(gi.total_mem, (uint64_t)8 << 30);
  assert_string_equal(gi.pci_bus_id, "0000:27:00.0");
  assert_memory_equal(gi.uuid, "kvik-fake-gpu-1", 16);
  assert_int_equal(gi.cc_major, 9);
  assert_int_equal(gi.cc_minor, 0);
  assert_int_equal(gi.managed_memory, 1);
  assert_int_equal(gi.pageable_memory_access, 0);
  assert_int_equal(gi.memory_pools, 1);
  assert_int_equal(gi.gpu_direct_rdma, -1); /* the fake does not report it */
  assert_int_equal(gi.sz, sizeof gi);

  CT_ASSERT_CODE(kvik_gpu_info(2, &gi), KVIK_EINVAL);
  CT_ASSERT_ERR_HAS("no CUDA device 2");
  CT_ASSERT_CODE(kvik_gpu_info(-1, &gi), KVIK_EINVAL);
  CT_ASSERT_CODE(kvik_gpu_info(0, NULL), KVIK_EINVAL);
  gi.sz = 8;
  CT_ASSERT_CODE(kvik_gpu_info(0, &gi), KVIK_EINVAL);
  CT_ASSERT_ERR_HAS("info->sz is 8");
}

static void test_gpu_info_failure(void **state) {
  (void)state;
  struct kvik_gpu_info gi = {.sz = sizeof gi};
  fc.fail_after("cuDeviceGetName", 0, CUDA_ERROR_INVALID_DEVICE);
  CT_ASSERT_CODE(kvik_gpu_info(0, &gi), KVIK_ECUDA);
  CT_ASSERT_ERR_HAS("cuDeviceGetName(device 0)");
  CT_ASSERT_ERR_HAS("CUDA_ERROR_INVALID_DEVICE (101)");
  fc.fail_clear();
  CT_ASSERT_CODE(kvik_gpu_info(0, &gi), 0);
}

/* ---- host memory ------------------------------------------------------------------------- */

static void test_host_pageable(void **state) {
  (void)state;
  char stack_buf[64] = {0};
  char *heap = malloc(1 << 20);
  assert_non_null(heap);
  CT_ASSERT_CODE(kvik_mem_kind(heap), KVIK_MEM_HOST);
  CT_ASSERT_CODE(kvik_mem_kind(stack_buf), KVIK_MEM_HOST);
  struct kvik_mem_info mi = mem_info(heap + 100, (1 << 20) - 100, 0);
  assert_int_equal(mi.kind, KVIK_MEM_HOST);
  assert_int_equal(mi.device, -1);
  assert_int_equal(mi.range_known, 0);
  assert_int_equal(mi.pool, 0);
  free(heap);
}

static void test_pinned_and_registered(void **state) {
  (void)state;
  void *pinned = NULL;
  CT_CU(cu.cuMemHostAlloc(&pinned, 1 << 16, CU_MEMHOSTALLOC_PORTABLE));
  CT_ASSERT_CODE(kvik_mem_kind(pinned), KVIK_MEM_HOST_PINNED);
  struct kvik_mem_info mi = mem_info((char *)pinned + 10, 100, 0);
  assert_int_equal(mi.kind, KVIK_MEM_HOST_PINNED);
  assert_int_equal(mi.device, 0);

  struct kvik__mem_info q;
  CT_ASSERT_CODE(kvik__mem_query(pinned, 1 << 16, &q), 0);
  assert_ptr_equal(q.ctx, ctx0);
  assert_false(kvik__mem_is_device(q.kind));
  CT_CU(cu.cuMemFreeHost(pinned));

  /* Registered while device 1's context is current: pinned, owned by device 1. */
  size_t n = 3 * 4096;
  char *reg = aligned_alloc(4096, n);
  assert_non_null(reg);
  CT_CU(cu.cuCtxPushCurrent_v2(ctx1));
  CT_CU(cu.cuMemHostRegister_v2(reg, n, CU_MEMHOSTREGISTER_PORTABLE));
  CUcontext popped;
  CT_CU(cu.cuCtxPopCurrent_v2(&popped));
  mi = mem_info(reg + 4096, 4096, 0);
  assert_int_equal(mi.kind, KVIK_MEM_HOST_PINNED);
  assert_int_equal(mi.device, 1);
  CT_CU(cu.cuMemHostUnregister(reg));
  CT_ASSERT_CODE(kvik_mem_kind(reg), KVIK_MEM_HOST);
  free(reg);
}

/* ---- device memory ----------------------------------------------------------------------- */

static void test_device(void **state) {
  (void)state;
  CUdeviceptr d;
  size_t n = 1 << 20;
  CT_CU(cu.cuMemAlloc_v2(&d, n));
  CT_ASSERT_CODE(kvik_mem_kind(dp(d)), KVIK_MEM_DEVICE);
  struct kvik_mem_info mi = mem_info(dp(d + 4096), n - 4096, 0); /* exactly to the end */
  assert_int_equal(mi.kind, KVIK_MEM_DEVICE);
  assert_int_equal(mi.device, 0);
  assert_int_equal(mi.pool, 0);
  assert_int_equal(mi.range_known, 1);
  assert_int_equal(mi.base, d);
  assert_int_equal(mi.alloc_size, n);
  assert_int_equal(mi.offset, 4096);

  struct kvik__mem_info q;
  CT_ASSERT_CODE(kvik__mem_query(dp(d + 1), 10, &q), 0);
  assert_true(kvik__mem_is_device(q.kind));
  assert_ptr_equal(q.ctx, ctx0);
  CUcontext c;
  CT_ASSERT_CODE(kvik__mem_ctx(&q, &c), 0);
  assert_ptr_equal(c, ctx0);
  CT_CU(cu.cuMemFree_v2(d));
}

static void test_device_range_past_end(void **state) {
  (void)state;
  CUdeviceptr d;
  size_t n = 1 << 20;
  CT_CU(cu.cuMemAlloc_v2(&d, n));
  struct kvik_mem_info mi = mem_info(dp(d + 4096), n - 4095, KVIK_EINVAL);
  CT_ASSERT_ERR_HAS("runs 1 bytes past the end of its allocation");
  CT_ASSERT_ERR_HAS("on device 0");
  /* The description is filled anyway, so the caller sees what was overrun. */
  assert_int_equal(mi.kind, KVIK_MEM_DEVICE);
  assert_int_equal(mi.base, d);
  assert_int_equal(mi.alloc_size, n);
  mem_info(dp(d), n + 1, KVIK_EINVAL);
  mem_info(dp(d + n - 1), 2, KVIK_EINVAL);
  mem_info(dp(d + n - 1), 1, 0);
  mem_info(dp(d), 0, 0);
  CT_CU(cu.cuMemFree_v2(d));
}

static void test_device1_while_device0_current(void **state) {
  (void)state;
  CUdeviceptr d;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx1));
  CT_CU(cu.cuMemAlloc_v2(&d, 8192));
  CUcontext popped;
  CT_CU(cu.cuCtxPopCurrent_v2(&popped));
  assert_ptr_equal(popped, ctx1);

  long depth = fc.live("ctx_depth");
  struct kvik__mem_info q;
  CT_ASSERT_CODE(kvik__mem_query(dp(d), 8192, &q), 0);
  assert_int_equal(q.kind, KVIK_MEM_DEVICE);
  assert_int_equal(q.device, 1);
  assert_ptr_equal(q.ctx, ctx1);
  /* The query leaves the caller's context alone. */
  CUcontext cur;
  CT_CU(cu.cuCtxGetCurrent(&cur));
  assert_ptr_equal(cur, ctx0);
  assert_int_equal(fc.live("ctx_depth"), depth);
  mem_info(dp(d), 8193, KVIK_EINVAL);
  CT_ASSERT_ERR_HAS("on device 1");
  CT_CU(cu.cuMemFree_v2(d));
}

/* Device memory made in a context created (not primary) on device 1. */
static void test_created_context(void **state) {
  (void)state;
  if (!cu.cuCtxCreate_v4) {
    skip();
  }
  CUcontext mine;
  CT_CU(cu.cuCtxCreate_v4(&mine, NULL, 0, 1)); /* pushes it */
  CUdeviceptr d;
  CT_CU(cu.cuMemAlloc_v2(&d, 4096));
  CUcontext popped;
  CT_CU(cu.cuCtxPopCurrent_v2(&popped));
  struct kvik__mem_info q;
  CT_ASSERT_CODE(kvik__mem_query(dp(d), 4096, &q), 0);
  assert_ptr_equal(q.ctx, mine);
  assert_int_equal(q.device, 1);
  CT_CU(cu.cuMemFree_v2(d));
  CT_CU(cu.cuCtxDestroy_v2(mine));
}

static void test_managed(void **state) {
  (void)state;
  CUdeviceptr m;
  CT_CU(cu.cuMemAllocManaged(&m, 10000, CU_MEM_ATTACH_GLOBAL));
  CT_ASSERT_CODE(kvik_mem_kind(dp(m)), KVIK_MEM_MANAGED);
  struct kvik_mem_info mi = mem_info(dp(m + 5000), 5000, 0);
  assert_int_equal(mi.kind, KVIK_MEM_MANAGED);
  assert_int_equal(mi.device, 0);
  assert_int_equal(mi.range_known, 1);
  assert_int_equal(mi.alloc_size, 10000);
  mem_info(dp(m + 5000), 5001, KVIK_EINVAL);
  CT_ASSERT_ERR_HAS("managed buffer");
  struct kvik__mem_info q;
  CT_ASSERT_CODE(kvik__mem_query(dp(m), 1, &q), 0);
  assert_true(kvik__mem_is_device(q.kind)); /* managed memory takes the device path */
  assert_ptr_equal(q.ctx, ctx0);
  CT_CU(cu.cuMemFree_v2(m));
}

static void test_pool(void **state) {
  (void)state;
  CUstream s;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx1));
  CT_CU(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr d;
  CT_CU(cu.cuMemAllocAsync(&d, 65536, s));
  CT_CU(cu.cuStreamSynchronize(s));
  CUcontext popped;
  CT_CU(cu.cuCtxPopCurrent_v2(&popped));

  CT_ASSERT_CODE(kvik_mem_kind(dp(d)), KVIK_MEM_DEVICE);
  struct kvik_mem_info mi = mem_info(dp(d + 1024), 65536 - 1024, 0);
  assert_int_equal(mi.pool, 1);
  assert_int_equal(mi.device, 1);
  assert_int_equal(mi.range_known, 1);
  assert_int_equal(mi.base, d);
  mem_info(dp(d + 1024), 65536, KVIK_EINVAL);

  /* Pool memory has no context: I/O uses the device's primary context, retained once. */
  struct kvik__mem_info q;
  CT_ASSERT_CODE(kvik__mem_query(dp(d), 1, &q), 0);
  assert_null(q.ctx);
  assert_true(q.pool);
  long refs = fc.live("primary_refs");
  CUcontext c;
  CT_ASSERT_CODE(kvik__mem_ctx(&q, &c), 0);
  assert_ptr_equal(c, ctx1);
  long refs2 = fc.live("primary_refs");
  CT_ASSERT_CODE(kvik__mem_ctx(&q, &c), 0); /* cached: no second retain */
  assert_int_equal(fc.live("primary_refs"), refs2);
  assert_true(refs2 <= refs + 1);

  /* A driver without the mempool attribute: pool memory is still known by its missing context. */
  fc.set("mempool_attr", 0);
  mi = mem_info(dp(d), 65536, 0);
  assert_int_equal(mi.pool, 1);
  assert_int_equal(mi.range_known, 1);
  fc.set("mempool_attr", 1);

  /* A driver without the range attributes: cuMemGetAddressRange does not know pool memory,
   * so the range stays unknown and the buffer is taken as is (documented in docs/gpu.md). */
  fc.set("range_attrs", 0);
  mi = mem_info(dp(d + 1024), 65536, 0);
  assert_int_equal(mi.range_known, 0);
  assert_int_equal(mi.kind, KVIK_MEM_DEVICE);
  fc.set("range_attrs", 1);

  CT_CU(cu.cuMemFreeAsync(d, s));
  CT_CU(cu.cuStreamSynchronize(s));
  CT_CU(cu.cuStreamDestroy_v2(s));
  CT_ASSERT_CODE(kvik_mem_kind(dp(d)), KVIK_EINVAL); /* freed */
}

/* Without the range attributes, device memory is checked through cuMemGetAddressRange with
 * the owning context pushed, and the caller's context stack is left as it was. */
static void test_range_fallback(void **state) {
  (void)state;
  CUdeviceptr d;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx1));
  CT_CU(cu.cuMemAlloc_v2(&d, 20000));
  CUcontext popped;
  CT_CU(cu.cuCtxPopCurrent_v2(&popped));
  fc.set("range_attrs", 0);
  long calls = fc.calls("cuMemGetAddressRange_v2");
  long depth = fc.live("ctx_depth");
  struct kvik_mem_info mi = mem_info(dp(d + 100), 19900, 0);
  assert_int_equal(mi.range_known, 1);
  assert_int_equal(mi.base, d);
  assert_int_equal(mi.alloc_size, 20000);
  mem_info(dp(d + 100), 19901, KVIK_EINVAL);
  assert_true(fc.calls("cuMemGetAddressRange_v2") >= calls + 2);
  assert_int_equal(fc.live("ctx_depth"), depth);
  CUcontext cur;
  CT_CU(cu.cuCtxGetCurrent(&cur));
  assert_ptr_equal(cur, ctx0);
  fc.set("range_attrs", 1);
  CT_CU(cu.cuMemFree_v2(d));
}

/* A freed device allocation is unknown to CUDA, like pageable memory; kvik tells them apart
 * because the CPU cannot read a device address. */
static void test_freed(void **state) {
  (void)state;
  CUdeviceptr d, m;
  CT_CU(cu.cuMemAlloc_v2(&d, 1 << 16));
  CT_CU(cu.cuMemAllocManaged(&m, 1 << 16, CU_MEM_ATTACH_GLOBAL));
  CT_CU(cu.cuMemFree_v2(d));
  CT_CU(cu.cuMemFree_v2(m));
  CT_ASSERT_CODE(kvik_mem_kind(dp(d)), KVIK_EINVAL);
  CT_ASSERT_ERR_HAS("freed device allocation");
  mem_info(dp(d + 100), 1000, KVIK_EINVAL);
  mem_info(dp(m), 1 << 16, KVIK_EINVAL);
  /* Size 0 touches nothing, so nothing is checked. */
  mem_info(dp(d), 0, 0);
}

static void test_bad_sizes(void **state) {
  (void)state;
  mem_info((void *)(UINTPTR_MAX - 10), 100, KVIK_EOVERFLOW);
  CT_ASSERT_ERR_HAS("wraps around");
  CUdeviceptr d;
  CT_CU(cu.cuMemAlloc_v2(&d, 4096));
  mem_info(dp(d), SIZE_MAX, KVIK_EOVERFLOW);
  mem_info(dp(d), SIZE_MAX / 2, KVIK_EINVAL);
  CT_CU(cu.cuMemFree_v2(d));
  mem_info(NULL, 1, KVIK_EINVAL);
  struct kvik_mem_info mi = mem_info(NULL, 0, 0);
  assert_int_equal(mi.kind, KVIK_MEM_HOST);
  CT_ASSERT_CODE(kvik_mem_kind(NULL), KVIK_MEM_HOST);
  char host[8] = {0};
  CT_ASSERT_CODE(kvik_mem_info(host, 1, NULL), KVIK_EINVAL);
  mi.sz = sizeof mi - 1;
  CT_ASSERT_CODE(kvik_mem_info(host, 1, &mi), KVIK_EINVAL);
  CT_ASSERT_ERR_HAS("info->sz");
}

static void test_query_failure(void **state) {
  (void)state;
  char buf[16] = {0};
  fc.fail_after("cuPointerGetAttributes", 0, CUDA_ERROR_DEINITIALIZED);
  CT_ASSERT_CODE(kvik_mem_kind(buf), KVIK_ECUDA);
  CT_ASSERT_ERR_HAS("cuPointerGetAttributes");
  CT_ASSERT_ERR_HAS("CUDA_ERROR_DEINITIALIZED (4)");
  CT_ASSERT_CODE(kvik_mem_kind(buf), KVIK_MEM_HOST); /* one failure only */
  fc.fail_clear();
}

/* A thread with no current context queries device memory on device 1. */
static void *no_ctx_thread(void *arg) {
  CUdeviceptr d = *(CUdeviceptr *)arg;
  CUcontext cur = (CUcontext)1;
  if (cu.cuCtxGetCurrent(&cur) != CUDA_SUCCESS || cur != NULL)
    return (void *)"thread unexpectedly has a current context";
  struct kvik__mem_info q;
  if (kvik__mem_query(dp(d), 4096, &q) != 0)
    return (void *)"query failed";
  if (q.kind != KVIK_MEM_DEVICE || q.device != 1 || q.ctx != ctx1)
    return (void *)"wrong kind, device or context";
  if (kvik__mem_query(dp(d), 4097, &q) != KVIK_EINVAL)
    return (void *)"range past the end not caught";
  return NULL;
}

static void test_no_current_context(void **state) {
  (void)state;
  CUdeviceptr d;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx1));
  CT_CU(cu.cuMemAlloc_v2(&d, 4096));
  CUcontext popped;
  CT_CU(cu.cuCtxPopCurrent_v2(&popped));
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, no_ctx_thread, &d), 0);
  void *res;
  assert_int_equal(pthread_join(t, &res), 0);
  if (res)
    fail_msg("%s", (const char *)res);
  CT_CU(cu.cuMemFree_v2(d));
}

static void test_errname_and_fail(void **state) {
  (void)state;
  assert_string_equal(kvik__cuda_errname(CUDA_ERROR_OUT_OF_MEMORY), "CUDA_ERROR_OUT_OF_MEMORY");
  assert_string_equal(kvik__cuda_errname((CUresult)12345), "CUDA_ERROR_UNRECOGNIZED");
  CT_ASSERT_CODE(kvik__cuda_fail(CUDA_ERROR_ILLEGAL_ADDRESS, "cuMemcpyHtoDAsync_v2 (%d bytes)", 42),
                 KVIK_ECUDA);
  assert_string_equal(kvik_last_error(),
                      "cuMemcpyHtoDAsync_v2 (42 bytes): CUDA_ERROR_ILLEGAL_ADDRESS (700): "
                      "fake driver: CUDA_ERROR_ILLEGAL_ADDRESS");
  assert_true(kvik__cuda_loaded());
  assert_false(kvik__cuda_gone());
}

/* Many threads query many kinds at once (for TSan). */
struct mt_arg {
  void *ptrs[4];
  int kinds[4];
  const char *err;
};

static void *mt_thread(void *arg) {
  struct mt_arg *a = arg;
  for (int i = 0; i < 2000; i++) {
    int k = kvik_mem_kind(a->ptrs[i % 4]);
    if (k != a->kinds[i % 4]) {
      a->err = "wrong kind";
      break;
    }
  }
  return NULL;
}

static void test_threads(void **state) {
  (void)state;
  CUdeviceptr d, m;
  void *pinned;
  char host[64] = {0};
  CT_CU(cu.cuMemAlloc_v2(&d, 4096));
  CT_CU(cu.cuMemAllocManaged(&m, 4096, CU_MEM_ATTACH_GLOBAL));
  CT_CU(cu.cuMemHostAlloc(&pinned, 4096, 0));
  struct mt_arg args[8];
  pthread_t th[8];
  for (int t = 0; t < 8; t++) {
    args[t] =
        (struct mt_arg){{host, dp(d), dp(m), pinned},
                        {KVIK_MEM_HOST, KVIK_MEM_DEVICE, KVIK_MEM_MANAGED, KVIK_MEM_HOST_PINNED},
                        NULL};
    assert_int_equal(pthread_create(&th[t], NULL, mt_thread, &args[t]), 0);
  }
  for (int t = 0; t < 8; t++) {
    pthread_join(th[t], NULL);
    if (args[t].err)
      fail_msg("thread %d: %s", t, args[t].err);
  }
  CT_CU(cu.cuMemFree_v2(d));
  CT_CU(cu.cuMemFree_v2(m));
  CT_CU(cu.cuMemFreeHost(pinned));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_driver_facts),
      cmocka_unit_test(test_gpu_info_failure),
      cmocka_unit_test(test_host_pageable),
      cmocka_unit_test(test_pinned_and_registered),
      cmocka_unit_test(test_device),
      cmocka_unit_test(test_device_range_past_end),
      cmocka_unit_test(test_device1_while_device0_current),
      cmocka_unit_test(test_created_context),
      cmocka_unit_test(test_managed),
      cmocka_unit_test(test_pool),
      cmocka_unit_test(test_range_fallback),
      cmocka_unit_test(test_freed),
      cmocka_unit_test(test_bad_sizes),
      cmocka_unit_test(test_query_failure),
      cmocka_unit_test(test_no_current_context),
      cmocka_unit_test(test_errname_and_fail),
      cmocka_unit_test(test_threads),
  };
  return cmocka_run_group_tests_name("memkind", tests, setup, teardown);
}
