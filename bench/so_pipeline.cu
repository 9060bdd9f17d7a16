// The GPU side of kvik's stream-ordered reads, piece by piece, on one stream with every flag
// already set (no pool worker involved): what each step costs per chunk. Also a kernel
// reading pinned host memory directly, the design the copy engine replaced. Numbers quoted in
// docs/cufile.md came from this program on the GPU machine.
//
// build: nvcc -std=c++17 -O2 -o so_pipeline bench/so_pipeline.cu -lcuda     run: ./so_pipeline
#include <cuda.h>
#include <cuda_runtime.h>

#include <stdio.h>
#include <string.h>

#include "../src/gpu/so_kernels.cu"

// A kernel that copies straight from pinned host memory (zero-copy), as a first design did.
__global__ void zero_copy(char *dst, const char *src, long long n) { copy(dst, src, n); }

int main() {
  const size_t chunk = KVIK_SO_CHUNK, stride = KVIK_SO_STRIDE, slots = KVIK_SO_SLOTS;
  const int n = 256;
  char *h, *ds, *d;
  struct kvik_so_ctl *c;
  cudaHostAlloc(&h, slots * stride, cudaHostAllocPortable);
  cudaHostAlloc(&c, 4096, cudaHostAllocPortable | cudaHostAllocMapped);
  cudaMalloc(&ds, slots * stride);
  cudaMalloc(&d, (size_t)n * chunk);
  memset(c, 0, sizeof *c);
  for (size_t i = 0; i < slots; i++) {
    c->ready[i] = 1u << 30;
    struct kvik_so_hdr hd = {1, (long long)chunk, (long long)(n * chunk), 0};
    memcpy(h + i * stride, &hd, sizeof hd);
  }
  CUdeviceptr dc;
  cuMemHostGetDevicePointer(&dc, c, 0);
  int sms;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  const char *names[] = {"copy engine only",       "wait + copy engine + write",
                         "all (kvik's per chunk)", "kernel only (device slot)",
                         "wait + write",           "zero-copy kernel from pinned"};
  for (int v = 0; v < 6; v++) {
    float ms = 0;
    for (int rep = 0; rep < 2; rep++) { // the first pass warms up
      cudaEventRecord(e0, s);
      for (int i = 0; i < n; i++) {
        unsigned sl = (unsigned)(i % slots);
        bool memops = v == 1 || v == 2 || v == 4;
        if (memops)
          cuStreamWaitValue32((CUstream)s, dc + 4 * sl, 1, CU_STREAM_WAIT_VALUE_GEQ);
        if (v <= 2)
          cudaMemcpyAsync(ds + sl * stride, h + sl * stride, KVIK_SO_HDR + chunk + 16,
                          cudaMemcpyHostToDevice, s);
        if (v == 2 || v == 3)
          kvik_so_read<<<sms, 256, 0, s>>>(ds, d, sl, i, 1);
        if (v == 5)
          zero_copy<<<2 * sms, 256, 0, s>>>(d + (size_t)i * chunk, h + sl * stride, chunk);
        if (memops)
          cuStreamWriteValue32((CUstream)s, dc + 32 + 4 * sl, i, 0);
      }
      cudaEventRecord(e1, s);
      cudaEventSynchronize(e1);
      cudaEventElapsedTime(&ms, e0, e1);
    }
    printf("%-30s %8.2f GB/s %8.1f us per %zu MiB chunk\n", names[v],
           (double)n * chunk / ms / 1e6, ms * 1000 / n, chunk >> 20);
  }
  printf("errors: %s\n", cudaGetErrorString(cudaGetLastError()));
  return 0;
}
