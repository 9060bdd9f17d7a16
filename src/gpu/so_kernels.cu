// Copy kernels of kvik's stream-ordered I/O (src/stream.c). kvik is built without CUDA: this file
// is compiled to PTX by scripts/gen-ptx.sh, and the PTX is embedded in src/gpu/so_kernels_ptx.h,
// which the library loads with cuModuleLoadData on first use. The test so_ptx_current checks,
// wherever nvcc is found, that the embedded PTX is what this file compiles to.
//
// Why kernels: the operation's size and offsets are read when the stream reaches it (kvikio's
// semantics), so a copy cannot be enqueued with them. These kernels read them from the header of
// a staging slot in device memory (src/gpu/so_ctl.h) instead, and run on the caller's stream, so
// the pool worker doing the file I/O never touches the GPU.
#include "so_ctl.h"

// n bytes from src to dst, which have the same address modulo 16: head bytes, 16-byte words
// (four in flight per thread, for reads of host memory over PCIe), tail bytes.
__device__ static void copy(char *__restrict__ dst, const char *__restrict__ src, long long n) {
  long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  long long nthreads = (long long)gridDim.x * blockDim.x;
  long long head = (16 - ((unsigned long long)dst & 15)) & 15;
  if (head > n)
    head = n;
  if (tid < head)
    dst[tid] = src[tid];
  long long words = (n - head) / 16;
  uint4 *d = (uint4 *)(dst + head);
  const uint4 *s = (const uint4 *)(src + head);
  long long i = tid;
  for (; i + 3 * nthreads < words; i += 4 * nthreads) {
    uint4 a = s[i], b = s[i + nthreads], c = s[i + 2 * nthreads], e = s[i + 3 * nthreads];
    d[i] = a;
    d[i + nthreads] = b;
    d[i + 2 * nthreads] = c;
    d[i + 3 * nthreads] = e;
  }
  for (; i < words; i += nthreads)
    d[i] = s[i];
  long long tail = head + words * 16;
  if (tid < n - tail)
    dst[tail + tid] = src[tail + tid];
}

// Read: chunk `index` of operation `op`, from device slot `slot` of the staging at `stage` into
// the buffer. The worker put hdr.len bytes in the slot at the destination's offset modulo 16;
// chunks past the size (the operation was enqueued for a larger one) copy nothing.
extern "C" __global__ void kvik_so_read(const char *stage, char *base, unsigned slot,
                                        long long index, unsigned long long op) {
  __shared__ long long n;
  __shared__ char *dst;
  __shared__ const char *src;
  if (threadIdx.x == 0) {
    const char *s = stage + slot * KVIK_SO_STRIDE;
    const struct kvik_so_hdr *h = (const struct kvik_so_hdr *)s;
    long long at = index * KVIK_SO_CHUNK;
    n = h->op == op ? h->len : 0;
    if (n > h->size - at)
      n = h->size - at;
    dst = base + h->boff + at;
    src = s + KVIK_SO_HDR + ((unsigned long long)dst & 15);
  }
  __syncthreads();
  if (n > 0)
    copy(dst, src, n);
}

// Write: chunk `index` of operation `op`, from the buffer into device slot `slot`, at the source's
// offset modulo 16; the chunk's length follows from the size.
extern "C" __global__ void kvik_so_write(char *stage, const char *base, unsigned slot,
                                         long long index, unsigned long long op) {
  __shared__ long long n;
  __shared__ char *dst;
  __shared__ const char *src;
  if (threadIdx.x == 0) {
    char *s = stage + slot * KVIK_SO_STRIDE;
    const struct kvik_so_hdr *h = (const struct kvik_so_hdr *)s;
    long long at = index * KVIK_SO_CHUNK;
    n = h->op == op ? h->size - at : 0;
    if (n > KVIK_SO_CHUNK)
      n = KVIK_SO_CHUNK;
    src = base + h->boff + at;
    dst = s + KVIK_SO_HDR + ((unsigned long long)src & 15);
  }
  __syncthreads();
  if (n > 0)
    copy(dst, src, n);
}
