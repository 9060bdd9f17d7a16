/* The control block of one stream-ordered operation on kvik's own path (src/stream.c), shared
 * by the library (C) and the copy kernels (src/gpu/so_kernels.cu, CUDA C): both include this
 * header, so the layout is written once.
 *
 * It lives in pinned, device-mapped host memory. The CPU side (host functions and pool workers)
 * writes the arguments and the flags it owns; the GPU waits on flags with cuStreamWaitValue32,
 * sets flags with cuStreamWriteValue32, and the kernels read the arguments. Flags count uses of
 * a staging slot, so they only grow while an operation runs; the block is zeroed before each
 * operation. */
#ifndef KVIK_GPU_SO_CTL_H
#define KVIK_GPU_SO_CTL_H

#ifdef __CUDACC__
typedef unsigned int kvik_so_u32;
typedef long long kvik_so_i64;
typedef unsigned long long kvik_so_u64;
#else
#include <stdint.h>
typedef uint32_t kvik_so_u32;
typedef int64_t kvik_so_i64;
typedef uint64_t kvik_so_u64;
#endif

/* Staging slots per operation, and the bytes between two slots beyond the chunk: the data sits
 * in its slot at the buffer address's offset modulo 16, so kernels copy aligned 16-byte words. */
#define KVIK_SO_SLOTS 8
#define KVIK_SO_SLOT_PAD 64

struct kvik_so_ctl {
  /* read: a worker filled the slot (GPU waits); write: the GPU filled it (worker polls). */
  kvik_so_u32 ready[KVIK_SO_SLOTS];
  /* read: the GPU emptied the slot (worker polls); write: a worker emptied it (GPU waits). */
  kvik_so_u32 freed[KVIK_SO_SLOTS];
  kvik_so_u32 done; /* write: every chunk is in the file or failed (GPU waits)              */
  kvik_so_u32 pad_;
  /* Arguments, as the stream reached the operation; size 0 after an argument error. */
  kvik_so_i64 size, foff, boff;
  kvik_so_u64 stage; /* device address of the staging slots (worker sets it)               */
  kvik_so_u64 chunk; /* bytes per slot; slot i starts at stage + i * (chunk + SLOT_PAD)     */
  kvik_so_i64 len[KVIK_SO_SLOTS]; /* read: bytes the worker put in the slot                 */
};

#endif
