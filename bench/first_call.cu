// Where the first device read of a process spends its time (issue #10). One fresh process per
// invocation; the caller (tests/gpu/run.sh) runs each mode in its own process.
//
// usage: first_call FILE raw    the pieces kvik's first call is made of, timed alone: pinning
//                               bounce buffers (serial and from 16 threads at once), creating
//                               streams, and host-to-device copies into fresh device memory
//                               against the same memory copied again
//        first_call FILE kvik   kvik's reads of the whole FILE in one process: into fresh
//                               memory A (library setup + fresh memory), into fresh memory B
//                               (fresh memory only), into A again (steady state)
//        first_call FILE kvik_prepared   the same, after kvik_prepare() for the current device
//                               (timed on its own line): what setup ahead of time leaves
// The CUDA context is made before any timing (cudaFree(0)), as a user's framework would.
// Prints one line per measurement: "first_call MODE WHAT SECONDS GB/s".
#include <cuda_runtime.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "kvik.h"

#define CK(call)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess) {                                                                       \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));      \
      exit(2);                                                                                     \
    }                                                                                              \
  } while (0)

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void line(const char *mode, const char *what, double s, size_t bytes) {
  printf("first_call %s %-34s %8.4f s", mode, what, s);
  if (bytes)
    printf(" %7.2f GB/s", bytes / s / 1e9);
  printf("\n");
  fflush(stdout);
}

enum { NT = 16, PIN = 16 << 20 };

static void *pin_one(void *p) {
  void **out = (void **)p;
  CK(cudaHostAlloc(out, PIN, cudaHostAllocPortable));
  return NULL;
}

static int raw(size_t size) {
  void *pins[NT];
  double t0 = now();
  for (int i = 0; i < NT; i++)
    CK(cudaHostAlloc(&pins[i], PIN, cudaHostAllocPortable));
  line("raw", "pin 16 x 16 MiB, one thread", now() - t0, 0);
  for (int i = 0; i < NT; i++)
    CK(cudaFreeHost(pins[i]));
  pthread_t th[NT];
  t0 = now();
  for (int i = 0; i < NT; i++)
    pthread_create(&th[i], NULL, pin_one, &pins[i]);
  for (int i = 0; i < NT; i++)
    pthread_join(th[i], NULL);
  line("raw", "pin 16 x 16 MiB, 16 threads", now() - t0, 0);

  cudaStream_t st[NT];
  t0 = now();
  for (int i = 0; i < NT; i++)
    CK(cudaStreamCreateWithFlags(&st[i], cudaStreamNonBlocking));
  line("raw", "create 16 streams", now() - t0, 0);

  char *d;
  t0 = now();
  CK(cudaMalloc(&d, size));
  line("raw", "cudaMalloc (the user's)", now() - t0, 0);
  for (int pass = 0; pass < 2; pass++) {
    t0 = now();
    size_t at = 0;
    for (int i = 0; at < size; i = (i + 1) % NT, at += PIN) {
      size_t n = size - at < PIN ? size - at : PIN;
      CK(cudaMemcpyAsync(d + at, pins[i], n, cudaMemcpyHostToDevice, st[i]));
    }
    CK(cudaDeviceSynchronize());
    line("raw", pass ? "pinned->device, same memory again" : "pinned->device, fresh memory",
         now() - t0, size);
  }
  return 0;
}

static double kvik_read(kvik_file *f, void *d, size_t size) {
  double t0 = now();
  kvik_future *fut;
  int rc = kvik_file_pread(f, d, size, 0, NULL, &fut);
  ssize_t n = rc < 0 ? rc : kvik_future_wait(fut);
  if (n != (ssize_t)size) {
    fprintf(stderr, "first_call: read returned %zd: %s\n", n, kvik_last_error());
    exit(1);
  }
  return now() - t0;
}

static int kvik(const char *path, size_t size, const char *mode) {
  char *a, *b;
  CK(cudaMalloc(&a, size));
  CK(cudaMalloc(&b, size));
  double t0;
  if (strcmp(mode, "kvik_prepared") == 0) {
    int dev;
    CK(cudaGetDevice(&dev));
    struct kvik_prepare_opts o = {};
    o.sz = sizeof o;
    o.device = dev;
    t0 = now();
    if (kvik_prepare(&o) != 0) {
      fprintf(stderr, "first_call: %s\n", kvik_last_error());
      return 1;
    }
    line(mode, "kvik_prepare (not counted)", now() - t0, 0);
  }
  t0 = now();
  kvik_file *f;
  if (kvik_file_open(&f, path, "r", 0, KVIK_COMPAT_DEFAULT) != 0) {
    fprintf(stderr, "first_call: %s\n", kvik_last_error());
    return 1;
  }
  line(mode, "kvik_file_open", now() - t0, 0);
  double first = kvik_read(f, a, size);
  line(mode, "read 1: setup + fresh memory A", first, size);
  double fresh = kvik_read(f, b, size);
  line(mode, "read 2: fresh memory B", fresh, size);
  double steady = kvik_read(f, a, size);
  line(mode, "read 3: A again (steady state)", steady, size);
  line(mode, "library setup (1 - 2)", first - fresh, 0);
  line(mode, "fresh memory (2 - 3)", fresh - steady, 0);
  kvik_file_close(f);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: first_call FILE raw|kvik|kvik_prepared\n");
    return 2;
  }
  struct stat st;
  if (stat(argv[1], &st) != 0 || st.st_size <= 0) {
    fprintf(stderr, "first_call: cannot stat %s\n", argv[1]);
    return 2;
  }
  size_t size = (size_t)st.st_size;
  double t0 = now();
  CK(cudaFree(0));
  line(argv[2], "CUDA context (not counted)", now() - t0, 0);
  if (strcmp(argv[2], "raw") == 0)
    return raw(size);
  if (strcmp(argv[2], "kvik") == 0 || strcmp(argv[2], "kvik_prepared") == 0)
    return kvik(argv[1], size, argv[2]);
  fprintf(stderr, "first_call: unknown mode %s\n", argv[2]);
  return 2;
}
