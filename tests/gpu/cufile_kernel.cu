// Stream-ordered I/O next to real kernels (tests/gpu/cufile.sh builds this with nvcc and runs it
// on the GPU machine). For each path (compat OFF: cuFile; AUTO: kvik's own) and each file:
//
//   stream:  spin kernel (~0.3 s) | fill kernel writes pattern(seed) into A | write_async(A)
//            | read_async into B | check kernel counts bytes of B that differ from the pattern
//            | copy the count to the host
//
// The enqueue calls must return while the spin kernel still runs (the caller never blocks, the
// stream is never synchronized by kvik), the write must see the fill kernel's bytes (checked on
// disk with pread), and the check kernel must see the read's bytes (count 0).
//
// usage: cufile_kernel DIR [SIZE_MIB]        exit 0 when every check passed
#include <cuda_runtime.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvik.h"

#define CK(call)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess) {                                                                       \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));      \
      exit(2);                                                                                     \
    }                                                                                              \
  } while (0)

__host__ __device__ static unsigned char pat(size_t i, unsigned seed) {
  return (unsigned char)((i * 2654435761u + seed) >> 7);
}

__global__ void spin(long long cycles) {
  long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}

__global__ void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    p[i] = pat(i, seed);
}

__global__ void check(const unsigned char *p, size_t n, unsigned seed, unsigned long long *bad) {
  unsigned long long mine = 0;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x)
    mine += p[i] != pat(i, seed);
  if (mine)
    atomicAdd(bad, mine);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run(const char *dir, kvik_compat compat, const char *name, size_t n, unsigned seed,
               long long spin_cycles) {
  char path[4096];
  snprintf(path, sizeof path, "%s/cufile-kernel-%s.bin", dir, name);
  kvik_file *f = NULL;
  if (kvik_file_open(&f, path, "w+", 0644, compat) != 0) {
    printf("%s: open failed: %s\n", name, kvik_last_error());
    return 1;
  }
  struct kvik_file_info fi;
  memset(&fi, 0, sizeof fi);
  fi.sz = sizeof fi;
  kvik_file_info(f, &fi);
  printf("%s: path %s: %s\n", name,
         fi.path == KVIK_PATH_GDS             ? "gds"
         : fi.path == KVIK_PATH_CUFILE_COMPAT ? "cufile-compat"
                                              : "posix",
         fi.reason);
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  // kvik's kernels and staging made now, not in the first enqueue behind the spin kernel (where
  // they waited for it: 312 ms in the first run without this).
  if (fi.path != KVIK_PATH_GDS && kvik_stream_prepare((CUstream_st *)s) != 0) {
    printf("%s: kvik_stream_prepare failed: %s\n", name, kvik_last_error());
    return 1;
  }
  unsigned char *a, *b;
  unsigned long long *bad, hbad = ~0ull;
  CK(cudaMalloc(&a, n));
  CK(cudaMalloc(&b, n));
  CK(cudaMalloc(&bad, sizeof *bad));
  CK(cudaMemset(b, 0, n));
  CK(cudaMemset(bad, 0, sizeof *bad));
  CK(cudaDeviceSynchronize());

  size_t wsize = n, rsize = n;
  int64_t wfoff = 0, wboff = 0, rfoff = 0, rboff = 0;
  ssize_t wrote = -12345, got = -12345;
  double t0 = now();
  spin<<<1, 1, 0, s>>>(spin_cycles);
  fill<<<256, 256, 0, s>>>(a, n, seed);
  CK(cudaGetLastError());
  double t1 = now();
  int rc1 = kvik_file_write_async(f, a, &wsize, &wfoff, &wboff, &wrote, s);
  int rc2 = kvik_file_read_async(f, b, &rsize, &rfoff, &rboff, &got, s);
  double t2 = now();
  bool pending = cudaStreamQuery(s) == cudaErrorNotReady; // right after the enqueue calls
  check<<<256, 256, 0, s>>>(b, n, seed, bad);
  // (Into pageable memory: this copy returns only when the stream has run it.)
  CK(cudaMemcpyAsync(&hbad, bad, sizeof hbad, cudaMemcpyDeviceToHost, s));
  CK(cudaStreamSynchronize(s));
  double t3 = now();
  int fails = 0;
  if (rc1 || rc2) {
    printf("%s: enqueue failed: %d %d: %s\n", name, rc1, rc2, kvik_last_error());
    fails++;
  }
  printf("%s: enqueue of write_async + read_async took %.3f ms; the stream was %s then; the "
         "whole stream %.3f s (spin kernel first)\n",
         name, (t2 - t1) * 1e3, pending ? "still busy" : "ALREADY DONE", t3 - t0);
  if (!pending) {
    printf("%s: FAIL: the enqueue calls returned only after the stream finished\n", name);
    fails++;
  }
  printf("%s: bytes written %zd, read %zd (want %zu); bytes the check kernel found wrong: %llu\n",
         name, wrote, got, n, hbad);
  if (wrote != (ssize_t)n || got != (ssize_t)n || hbad != 0)
    fails++;
  // On disk: the fill kernel's bytes.
  unsigned char *h = (unsigned char *)malloc(n);
  int fd = open(path, O_RDONLY);
  size_t done = 0;
  while (fd >= 0 && done < n) {
    ssize_t k = pread(fd, h + done, n - done, (off_t)done);
    if (k <= 0)
      break;
    done += (size_t)k;
  }
  size_t wrong = 0;
  for (size_t i = 0; i < done; i++)
    wrong += h[i] != pat(i, seed);
  printf("%s: file on disk: %zu bytes, %zu differ from the fill kernel's\n", name, done, wrong);
  if (done != n || wrong)
    fails++;
  if (fd >= 0)
    close(fd);
  free(h);
  kvik_file_close(f);
  unlink(path);
  CK(cudaFree(a));
  CK(cudaFree(b));
  CK(cudaFree(bad));
  CK(cudaStreamDestroy(s));
  printf("%s: %s\n", name, fails ? "FAILED" : "ok");
  return fails;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR [SIZE_MIB]\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0); // a hang still shows how far it got
  size_t n = (size_t)(argc > 2 ? atol(argv[2]) : 256) << 20;
  n += 12345; // not a multiple of anything
  CK(cudaSetDevice(0));
  CK(cudaFree(0));
  int clock_khz = 0;
  CK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0));
  long long cycles = (long long)clock_khz * 300; // ~0.3 s
  int fails = 0;
  fails += run(argv[1], KVIK_COMPAT_OFF, "compat-OFF", n, 7, cycles);
  fails += run(argv[1], KVIK_COMPAT_AUTO, "compat-AUTO", n, 11, cycles);
  printf("cufile_kernel: %s\n", fails ? "FAILED" : "all checks passed");
  return fails ? 1 : 0;
}
