// Stream-ordered reads on kvik's own path (files GDS does not serve) against kvik's parallel
// device read (kvik_file_pread, waited for) and its one-thread read (kvik_file_read), on a hot
// file: what the stream ordering costs. Built with nvcc and run by
// tests/gpu/cufile.sh on the GPU machine; prints one line per engine and a summary line.
//
// usage: async_read FILE [REPEAT]      (FILE is read whole; use a file in the page cache)
#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
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

// The whole file in `ops` stream-ordered reads (or writes) enqueued back to back on one stream;
// seconds from the first enqueue to the end of the stream, or -1.
static double async_pass(kvik_file *f, char *d, size_t n, int ops, cudaStream_t s, bool write) {
  size_t part = (n + ops - 1) / ops;
  size_t *sz = (size_t *)calloc(ops, sizeof *sz);
  int64_t *fo = (int64_t *)calloc(ops, sizeof *fo), *bo = (int64_t *)calloc(ops, sizeof *bo);
  ssize_t *by = (ssize_t *)calloc(ops, sizeof *by);
  double t0 = now();
  for (int i = 0; i < ops; i++) {
    size_t at = (size_t)i * part;
    sz[i] = at < n ? (n - at < part ? n - at : part) : 0;
    fo[i] = bo[i] = (int64_t)at;
    int rc = write ? kvik_file_write_async(f, d, &sz[i], &fo[i], &bo[i], &by[i], (CUstream_st *)s)
                   : kvik_file_read_async(f, d, &sz[i], &fo[i], &bo[i], &by[i], (CUstream_st *)s);
    if (rc != 0) {
      fprintf(stderr, "%s_async: %s\n", write ? "write" : "read", kvik_last_error());
      return -1;
    }
  }
  CK(cudaStreamSynchronize(s));
  double t = now() - t0;
  size_t total = 0;
  for (int i = 0; i < ops; i++) {
    if (by[i] < 0) {
      fprintf(stderr, "%s_async %d: %zd\n", write ? "write" : "read", i, by[i]);
      return -1;
    }
    total += (size_t)by[i];
  }
  free(sz);
  free(fo);
  free(bo);
  free(by);
  return total == n ? t : -1;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE [REPEAT]\n", argv[0]);
    return 2;
  }
  int repeat = argc > 2 ? atoi(argv[2]) : 3;
  struct stat st;
  if (stat(argv[1], &st) != 0) {
    perror(argv[1]);
    return 2;
  }
  size_t n = (size_t)st.st_size;
  kvik_file *f = NULL;
  if (kvik_file_open(&f, argv[1], "r+", 0, KVIK_COMPAT_AUTO) != 0) {
    fprintf(stderr, "open: %s\n", kvik_last_error());
    return 2;
  }
  char *d;
  CK(cudaMalloc(&d, n));
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  double gb = n / 1e9, best_sync = 1e30, best_par = 1e30, best1 = 1e30, best16 = 1e30;
  double best_pw = 1e30, best_w1 = 1e30;
  for (int r = 0; r < repeat + 1; r++) { // the first pass warms the cache and kvik's memory
    double t0 = now();
    ssize_t got = kvik_file_read(f, d, n, 0);
    double t = now() - t0;
    if (got != (ssize_t)n) {
      fprintf(stderr, "kvik_file_read: %zd: %s\n", got, kvik_last_error());
      return 1;
    }
    kvik_future *fut = NULL;
    t0 = now();
    got = kvik_file_pread(f, d, n, 0, NULL, &fut) == 0 ? kvik_future_wait(fut) : -1;
    double tp = now() - t0;
    if (got != (ssize_t)n) {
      fprintf(stderr, "kvik_file_pread: %zd: %s\n", got, kvik_last_error());
      return 1;
    }
    if (r > 0)
      best_par = tp < best_par ? tp : best_par;
    double t1 = async_pass(f, d, n, 1, s, false), t16 = async_pass(f, d, n, 16, s, false);
    t0 = now();
    got = kvik_file_pwrite(f, d, n, 0, NULL, &fut) == 0 ? kvik_future_wait(fut) : -1;
    double tpw = now() - t0;
    double tw1 = async_pass(f, d, n, 1, s, true);
    if (t1 < 0 || t16 < 0 || tw1 < 0 || got != (ssize_t)n)
      return 1;
    if (r > 0) {
      best_pw = tpw < best_pw ? tpw : best_pw;
      best_w1 = tw1 < best_w1 ? tw1 : best_w1;
      best_sync = t < best_sync ? t : best_sync;
      best1 = t1 < best1 ? t1 : best1;
      best16 = t16 < best16 ? t16 : best16;
    }
  }
  printf("stream_io: read  kvik_file_read (one thread)           %7.2f GB/s\n", gb / best_sync);
  printf("stream_io: read  kvik_file_pread (parallel), waited    %7.2f GB/s\n", gb / best_par);
  printf("stream_io: read  kvik_file_read_async, 1 operation     %7.2f GB/s\n", gb / best1);
  printf("stream_io: read  kvik_file_read_async, 16 operations   %7.2f GB/s\n", gb / best16);
  printf("stream_io: write kvik_file_pwrite (parallel), waited   %7.2f GB/s\n", gb / best_pw);
  printf("stream_io: write kvik_file_write_async, 1 operation    %7.2f GB/s\n", gb / best_w1);
  printf("stream_io: %.0f MiB hot, best of %d: read_async %.2f GB/s = %.2f of kvik_file_pread "
         "(%.2f); write_async %.2f GB/s = %.2f of kvik_file_pwrite (%.2f)\n",
         n / 1048576.0, repeat, gb / best1, best_par / best1, gb / best_par, gb / best_w1,
         best_pw / best_w1, gb / best_pw);
  CK(cudaFree(d));
  kvik_file_close(f);
  return 0;
}
