/* The fake libcuda.so.1 itself: the device path's tests are only as good as the fake's model,
 * so its contexts, copies, stream order, events, stream memory operations, pools and failure
 * injection are checked here, through the same entry points kvik calls. */
#include "cuda_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static struct kvik__cuda_api cu;
static struct fake_cuda fc;
static CUcontext ctx0, ctx1;

static int setup(void **state) {
  (void)state;
  if (ct_driver(&cu, NULL) != 0 || fake_cuda_bind(&fc) != 0) {
    print_error("libcuda.so.1 is missing or is not kvik's fake\n");
    return -1;
  }
  if (cu.cuDevicePrimaryCtxRetain(&ctx0, 0) != CUDA_SUCCESS ||
      cu.cuDevicePrimaryCtxRetain(&ctx1, 1) != CUDA_SUCCESS)
    return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  cu.cuDevicePrimaryCtxRelease_v2(0);
  cu.cuDevicePrimaryCtxRelease_v2(1);
  return 0;
}

/* Each test starts with device 0's primary context current and no injected failures. */
static int each_setup(void **state) {
  (void)state;
  fc.fail_clear();
  fc.set("delay_us", 0);
  return cu.cuCtxSetCurrent(ctx0) == CUDA_SUCCESS ? 0 : -1;
}

static void *dp(CUdeviceptr d) { return (void *)(uintptr_t)d; }

static int cpu_readable(const void *p) {
  char c;
  struct iovec l = {&c, 1}, r = {(void *)(uintptr_t)p, 1};
  return process_vm_readv(getpid(), &l, 1, &r, 1, 0) == 1;
}

static void test_contexts(void **state) {
  (void)state;
  CUcontext c;
  CT_CU(cu.cuCtxSetCurrent(NULL)); /* pops: the stack is empty now */
  CT_CU(cu.cuCtxGetCurrent(&c));
  assert_null(c);
  CUdeviceptr d;
  assert_int_equal(cu.cuMemAlloc_v2(&d, 16), CUDA_ERROR_INVALID_CONTEXT);
  assert_int_equal(cu.cuCtxPopCurrent_v2(&c), CUDA_ERROR_INVALID_CONTEXT);
  CT_CU(cu.cuCtxPushCurrent_v2(ctx0));
  CT_CU(cu.cuCtxPushCurrent_v2(ctx1));
  CUdevice dev;
  CT_CU(cu.cuCtxGetDevice(&dev));
  assert_int_equal(dev, 1);
  assert_int_equal(fc.live("ctx_depth"), 2);
  CT_CU(cu.cuCtxPopCurrent_v2(&c));
  assert_ptr_equal(c, ctx1);
  CT_CU(cu.cuCtxGetCurrent(&c));
  assert_ptr_equal(c, ctx0);
  /* A primary context released to zero cannot be used. */
  CUcontext tmp;
  CT_CU(cu.cuDevicePrimaryCtxRetain(&tmp, 1));
  CT_CU(cu.cuDevicePrimaryCtxRelease_v2(1));
  long refs = fc.live("primary_refs");
  assert_true(refs >= 2);
}

static void test_device_memory_model(void **state) {
  (void)state;
  CUdeviceptr d;
  CT_CU(cu.cuMemAlloc_v2(&d, 10000));
  assert_false(cpu_readable(dp(d))); /* device addresses are not the CPU's */
  char in[10000], out[10000];
  for (int i = 0; i < 10000; i++)
    in[i] = (char)(i * 7);
  memset(out, 0, sizeof out);
  CT_CU(cu.cuMemcpyHtoD_v2(d, in, sizeof in));
  CT_CU(cu.cuMemcpyDtoH_v2(out, d, sizeof out));
  assert_memory_equal(in, out, sizeof in);
  assert_int_equal(cu.cuMemcpyHtoD_v2(d + 1, in, sizeof in), CUDA_ERROR_INVALID_VALUE);
  assert_int_equal(cu.cuMemcpyHtoD_v2((CUdeviceptr)(uintptr_t)out, in, 1),
                   CUDA_ERROR_INVALID_VALUE); /* not device memory */
  CT_CU(cu.cuMemsetD8_v2(d + 5, 0xab, 3));
  CT_CU(cu.cuMemcpyDtoH_v2(out, d + 4, 5));
  assert_int_equal((unsigned char)out[1], 0xab);
  assert_int_equal((unsigned char)out[4], (unsigned char)in[8]);
  long live = fc.live("device");
  CT_CU(cu.cuMemFree_v2(d));
  assert_int_equal(fc.live("device"), live - 1);
  assert_int_equal(cu.cuMemFree_v2(d), CUDA_ERROR_INVALID_VALUE);
  assert_int_equal(cu.cuMemcpyDtoH_v2(out, d, 1), CUDA_ERROR_INVALID_VALUE);
  assert_false(cpu_readable(dp(d)));

  unsigned int type = 99;
  CUpointer_attribute a = CU_POINTER_ATTRIBUTE_MEMORY_TYPE;
  void *data = &type;
  CT_CU(cu.cuPointerGetAttributes(1, &a, &data, d)); /* freed: unknown, like pageable memory */
  assert_int_equal(type, 0);
}

static void test_host_memory(void **state) {
  (void)state;
  void *p;
  CT_CU(cu.cuMemHostAlloc(&p, 5000, CU_MEMHOSTALLOC_PORTABLE));
  assert_true(cpu_readable(p));
  memset(p, 1, 5000);
  CT_CU(cu.cuMemFreeHost(p));
  assert_int_equal(cu.cuMemFreeHost(p), CUDA_ERROR_INVALID_VALUE);

  fc.set("pinned_limit", 8192);
  void *a, *b;
  CT_CU(cu.cuMemHostAlloc(&a, 8192, 0));
  assert_int_equal(cu.cuMemHostAlloc(&b, 1, 0), CUDA_ERROR_OUT_OF_MEMORY);
  CT_CU(cu.cuMemFreeHost(a));
  fc.set("pinned_limit", 0);

  char *buf = aligned_alloc(4096, 8192);
  CT_CU(cu.cuMemHostRegister_v2(buf, 8192, 0));
  assert_int_equal(cu.cuMemHostRegister_v2(buf + 4096, 10, 0),
                   CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED);
  CT_CU(cu.cuMemHostUnregister(buf));
  assert_int_equal(cu.cuMemHostUnregister(buf), CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED);
  free(buf);
}

/* ---- streams ----------------------------------------------------------------------------- */

struct order {
  pthread_mutex_t mu;
  int seq[8];
  int n;
  const char *host; /* checked by the host function */
  char want;
};

static struct order ord = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void note(int v) {
  pthread_mutex_lock(&ord.mu);
  ord.seq[ord.n++] = v;
  pthread_mutex_unlock(&ord.mu);
}

static void hostfn_check(void *arg) {
  /* The copies enqueued before this function have completed when it runs. */
  note(ord.host[0] == ord.want && ord.host[4095] == ord.want ? (int)(intptr_t)arg : -1);
}

static void test_stream_order(void **state) {
  (void)state;
  CUstream s;
  CT_CU(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  CUdeviceptr d;
  CT_CU(cu.cuMemAlloc_v2(&d, 4096));
  char *src, *dst;
  CT_CU(cu.cuMemHostAlloc((void **)&src, 4096, 0));
  CT_CU(cu.cuMemHostAlloc((void **)&dst, 4096, 0));
  memset(src, 'x', 4096);
  memset(dst, 0, 4096);
  ord.n = 0;
  ord.host = dst;
  ord.want = 'x';
  fc.set("delay_us", 50000);
  CT_CU(cu.cuMemcpyHtoDAsync_v2(d, src, 4096, s));
  CT_CU(cu.cuMemcpyDtoHAsync_v2(dst, d, 4096, s));
  CT_CU(cu.cuLaunchHostFunc(s, hostfn_check, (void *)1));
  assert_int_equal(cu.cuStreamQuery(s), CUDA_ERROR_NOT_READY); /* it really is asynchronous */
  assert_int_equal(dst[0], 0);
  CT_CU(cu.cuStreamSynchronize(s));
  CT_CU(cu.cuStreamQuery(s));
  assert_int_equal(ord.n, 1);
  assert_int_equal(ord.seq[0], 1);
  assert_int_equal(dst[4095], 'x');

  /* The default stream works too. */
  memset(src, 'y', 4096);
  ord.want = 'y';
  CT_CU(cu.cuMemcpyHtoDAsync_v2(d, src, 4096, NULL));
  CT_CU(cu.cuMemcpyDtoHAsync_v2(dst, d, 4096, CU_STREAM_LEGACY));
  CT_CU(cu.cuLaunchHostFunc(NULL, hostfn_check, (void *)2));
  CT_CU(cu.cuStreamSynchronize(NULL));
  assert_int_equal(ord.n, 2);
  assert_int_equal(ord.seq[1], 2);

  fc.set("delay_us", 0);
  CT_CU(cu.cuMemFree_v2(d));
  CT_CU(cu.cuMemFreeHost(src));
  CT_CU(cu.cuMemFreeHost(dst));
  CT_CU(cu.cuStreamDestroy_v2(s));
  assert_int_equal(cu.cuStreamSynchronize((CUstream)(void *)&ord), CUDA_ERROR_INVALID_HANDLE);
}

static void test_events(void **state) {
  (void)state;
  long streams = fc.live("stream"), events = fc.live("event");
  CUstream s1, s2;
  CT_CU(cu.cuStreamCreate(&s1, 0));
  CT_CU(cu.cuStreamCreate(&s2, 0));
  CUevent ev;
  CT_CU(cu.cuEventCreate(&ev, CU_EVENT_DISABLE_TIMING));
  CT_CU(cu.cuEventQuery(ev)); /* never recorded: complete */
  CUdeviceptr d;
  CT_CU(cu.cuMemAlloc_v2(&d, 4096));
  char src[4096], dst[4096];
  memset(src, 'e', sizeof src);
  memset(dst, 0, sizeof dst);
  fc.set("delay_us", 50000);
  CT_CU(cu.cuMemcpyHtoDAsync_v2(d, src, sizeof src, s1));
  CT_CU(cu.cuEventRecord(ev, s1));
  assert_int_equal(cu.cuEventQuery(ev), CUDA_ERROR_NOT_READY);
  /* s2 copies back only after s1 reached the event. */
  CT_CU(cu.cuStreamWaitEvent(s2, ev, 0));
  CT_CU(cu.cuMemcpyDtoHAsync_v2(dst, d, sizeof dst, s2));
  CT_CU(cu.cuEventDestroy_v2(ev)); /* pending operations keep it alive */
  CT_CU(cu.cuStreamSynchronize(s2));
  assert_memory_equal(src, dst, sizeof src);
  fc.set("delay_us", 0);
  CT_CU(cu.cuStreamSynchronize(s1));
  CT_CU(cu.cuMemFree_v2(d));
  CT_CU(cu.cuStreamDestroy_v2(s1));
  CT_CU(cu.cuStreamDestroy_v2(s2));
  assert_int_equal(fc.live("stream"), streams);
  assert_int_equal(fc.live("event"), events);
}

struct setter {
  cuuint32_t *flag;
  CUstream s;
  int saw_not_ready;
};

static void *set_flag_later(void *arg) {
  struct setter *st = arg;
  struct timespec ts = {0, 30 * 1000 * 1000};
  nanosleep(&ts, NULL);
  st->saw_not_ready = cu.cuStreamQuery(st->s) == CUDA_ERROR_NOT_READY;
  __atomic_store_n(st->flag, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void test_stream_memops(void **state) {
  (void)state;
  if (!cu.cuStreamWaitValue32_v2 || !cu.cuStreamWriteValue32_v2)
    skip();
  CUstream s;
  CT_CU(cu.cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
  cuuint32_t *flags;
  CT_CU(cu.cuMemHostAlloc((void **)&flags, 4096, CU_MEMHOSTALLOC_PORTABLE));
  flags[0] = 0;
  flags[1] = 0;
  CUdeviceptr f0 = (CUdeviceptr)(uintptr_t)&flags[0], f1 = (CUdeviceptr)(uintptr_t)&flags[1];
  /* The stream waits for a flag a host thread sets, then raises another one. */
  CT_CU(cu.cuStreamWaitValue32_v2(s, f0, 1, CU_STREAM_WAIT_VALUE_GEQ));
  CT_CU(cu.cuStreamWriteValue32_v2(s, f1, 7, CU_STREAM_WRITE_VALUE_DEFAULT));
  struct setter st = {&flags[0], s, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, set_flag_later, &st), 0);
  CT_CU(cu.cuStreamSynchronize(s));
  pthread_join(t, NULL);
  assert_true(st.saw_not_ready);
  assert_int_equal(__atomic_load_n(&flags[1], __ATOMIC_ACQUIRE), 7);
  char not_pinned[8];
  assert_int_equal(cu.cuStreamWaitValue32_v2(s, (CUdeviceptr)(uintptr_t)not_pinned, 1, 0),
                   CUDA_ERROR_INVALID_VALUE);
  CT_CU(cu.cuStreamDestroy_v2(s));
  CT_CU(cu.cuMemFreeHost(flags));
}

static void test_pool(void **state) {
  (void)state;
  CUstream s;
  CT_CU(cu.cuCtxPushCurrent_v2(ctx1));
  CT_CU(cu.cuStreamCreate(&s, 0));
  CT_CU(cu.cuCtxPopCurrent_v2(NULL));
  long live = fc.live("pool");
  CUdeviceptr d;
  CT_CU(cu.cuMemAllocAsync(&d, 1000, s)); /* device 1's pool, through its stream */
  assert_int_equal(fc.live("pool"), live + 1);
  CUcontext c = (CUcontext)1;
  int dev = -1;
  CUmemoryPool pool = NULL;
  CUpointer_attribute a[3] = {CU_POINTER_ATTRIBUTE_CONTEXT, CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL,
                              CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE};
  void *data[3] = {&c, &dev, &pool};
  CT_CU(cu.cuPointerGetAttributes(3, a, data, d));
  assert_null(c);
  assert_int_equal(dev, 1);
  assert_non_null(pool);
  CUdeviceptr base;
  size_t size;
  assert_int_equal(cu.cuMemGetAddressRange_v2(&base, &size, d), CUDA_ERROR_NOT_FOUND);
  CT_CU(cu.cuMemFreeAsync(d, s));
  CT_CU(cu.cuStreamSynchronize(s));
  assert_int_equal(fc.live("pool"), live);
  assert_int_equal(cu.cuMemFreeAsync(d, s), CUDA_ERROR_INVALID_VALUE);
  CT_CU(cu.cuStreamDestroy_v2(s));
}

static void test_injection(void **state) {
  (void)state;
  CUdeviceptr d;
  CT_CU(cu.cuMemAlloc_v2(&d, 4096));
  char buf[4096];
  memset(buf, 'i', sizeof buf);
  long calls = fc.calls("cuMemcpyHtoDAsync_v2");
  assert_int_equal(fc.fail_after("cuMemcpyHtoDAsync_v2", 2, CUDA_ERROR_OUT_OF_MEMORY), 0);
  CT_CU(cu.cuMemcpyHtoDAsync_v2(d, buf, 10, NULL));
  CT_CU(cu.cuMemcpyHtoDAsync_v2(d, buf, 10, NULL));
  assert_int_equal(cu.cuMemcpyHtoDAsync_v2(d, buf, 10, NULL), CUDA_ERROR_OUT_OF_MEMORY);
  CT_CU(cu.cuMemcpyHtoDAsync_v2(d, buf, 10, NULL));
  assert_int_equal(fc.calls("cuMemcpyHtoDAsync_v2"), calls + 4);
  CT_CU(cu.cuStreamSynchronize(NULL));

  /* A copy that fails as the stream runs it: skipped, reported once by the next sync. */
  CT_CU(cu.cuMemsetD8_v2(d, 0, 4096));
  fc.fail_times("exec:copy", 1, CUDA_ERROR_ILLEGAL_ADDRESS, 1);
  CT_CU(cu.cuMemcpyHtoDAsync_v2(d, buf, 100, NULL));
  CT_CU(cu.cuMemcpyHtoDAsync_v2(d + 100, buf, 100, NULL));
  CT_CU(cu.cuMemcpyHtoDAsync_v2(d + 200, buf, 100, NULL));
  assert_int_equal(cu.cuStreamSynchronize(NULL), CUDA_ERROR_ILLEGAL_ADDRESS);
  CT_CU(cu.cuStreamSynchronize(NULL));
  char out[300];
  CT_CU(cu.cuMemcpyDtoH_v2(out, d, sizeof out));
  assert_int_equal(out[0], 'i');
  assert_int_equal(out[100], 0); /* the failed one */
  assert_int_equal(out[200], 'i');

  /* Every later call (times < 0), until cleared. */
  fc.fail_times("cuMemHostAlloc", 0, CUDA_ERROR_OUT_OF_MEMORY, -1);
  void *p;
  assert_int_equal(cu.cuMemHostAlloc(&p, 10, 0), CUDA_ERROR_OUT_OF_MEMORY);
  assert_int_equal(cu.cuMemHostAlloc(&p, 10, 0), CUDA_ERROR_OUT_OF_MEMORY);
  fc.fail_clear();
  CT_CU(cu.cuMemHostAlloc(&p, 10, 0));
  CT_CU(cu.cuMemFreeHost(p));
  CT_CU(cu.cuMemFree_v2(d));
  assert_int_equal(fc.calls("no_such_function"), -1);
  assert_int_equal(fc.set("no_such_option", 1), -1);
}

static void test_errors_and_devices(void **state) {
  (void)state;
  const char *s = NULL;
  CT_CU(cu.cuGetErrorName(CUDA_ERROR_NO_DEVICE, &s));
  assert_string_equal(s, "CUDA_ERROR_NO_DEVICE");
  assert_int_equal(cu.cuGetErrorName((CUresult)4242, &s), CUDA_ERROR_INVALID_VALUE);
  assert_null(s);
  int n = 0;
  CT_CU(cu.cuDeviceGetCount(&n));
  assert_int_equal(n, 2);
  CUdevice dev;
  assert_int_equal(cu.cuDeviceGet(&dev, 2), CUDA_ERROR_INVALID_DEVICE);
  char bus[8];
  assert_int_equal(cu.cuDeviceGetPCIBusId(bus, sizeof bus, 0), CUDA_ERROR_INVALID_VALUE);
}

/* The fake counts driver calls made by a thread that is already exiting (from a
 * thread-specific-data destructor of a key created after the driver loaded), as the real driver
 * does not support them; calls while the thread runs are not counted. */
static pthread_key_t late_key;

static void late_destructor(void *p) {
  CUcontext c;
  (void)p;
  cu.cuCtxGetCurrent(&c);
}

static void *exit_thread(void *arg) {
  CUcontext c;
  cu.cuCtxGetCurrent(&c);
  if (arg)
    pthread_setspecific(late_key, arg);
  return NULL;
}

static void test_thread_exit_calls(void **state) {
  (void)state;
  assert_int_equal(pthread_key_create(&late_key, late_destructor), 0);
  long before = fc.live("exit_calls");
  for (int with_destructor = 0; with_destructor < 2; with_destructor++) {
    pthread_t t;
    assert_int_equal(
        pthread_create(&t, NULL, exit_thread, with_destructor ? (void *)&late_key : NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(fc.live("exit_calls"), before + with_destructor);
  }
  pthread_key_delete(late_key);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_contexts, each_setup),
      cmocka_unit_test_setup(test_device_memory_model, each_setup),
      cmocka_unit_test_setup(test_host_memory, each_setup),
      cmocka_unit_test_setup(test_stream_order, each_setup),
      cmocka_unit_test_setup(test_events, each_setup),
      cmocka_unit_test_setup(test_stream_memops, each_setup),
      cmocka_unit_test_setup(test_pool, each_setup),
      cmocka_unit_test_setup(test_injection, each_setup),
      cmocka_unit_test_setup(test_errors_and_devices, each_setup),
      cmocka_unit_test_setup(test_thread_exit_calls, each_setup),
  };
  return cmocka_run_group_tests_name("fake_cuda", tests, setup, teardown);
}
