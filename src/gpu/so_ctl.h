/* The memory one stream-ordered operation on kvik's own path (src/stream.c) shares between the
 * CPU (host functions, pool workers) and the GPU (stream memory operations, the copy kernels of
 * src/gpu/so_kernels.cu). Both the library (C) and the kernels (CUDA C) include this header, so
 * the layout is written once.
 *
 * The control block: flags in pinned, device-mapped host memory. The GPU waits on flags with
 * cuStreamWaitValue32 and sets flags with cuStreamWriteValue32; workers set and poll the others.
 * Flags count uses of a staging slot, so they only grow while an operation runs; the block is
 * zeroed before each operation.
 *
 * A staging slot: a header, then the data at the buffer address's offset modulo 16 (so the
 * kernels copy aligned 16-byte words). Slots exist twice, in pinned host memory (the workers' side)
 * and in device memory (the kernels' side); the copy engine moves them between the two. The
 * kernels read the header from the device slot, not from host memory: on the GPU machine a
 * kernel whose first thread of each block read its arguments from pinned memory took 373 us per
 * launch, against 4.4 us (bench/so_pipeline.cu). */
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

#define KVIK_SO_SLOTS 8
#define KVIK_SO_CHUNK (4ll << 20) /* bytes of data per slot                               */
#define KVIK_SO_HDR 64 /* bytes of header at the start of a slot                      */
#define KVIK_SO_TAIL 64 /* bytes after the chunk: room for the offset modulo 16, rounded */

struct kvik_so_ctl {
  /* read: a worker filled the slot (GPU waits); write: the GPU filled it (worker polls). */
  kvik_so_u32 ready[KVIK_SO_SLOTS];
  /* read: the GPU emptied the slot (worker polls); write: a worker emptied it (GPU waits). */
  kvik_so_u32 freed[KVIK_SO_SLOTS];
  kvik_so_u32 done; /* write: every chunk is in the file or failed (GPU waits)              */
};

/* The header of a slot. A kernel copies only when `op` is its own operation's number: a header
 * left by another operation (a slot the operation never filled) moves nothing. */
struct kvik_so_hdr {
  kvik_so_u64 op;    /* the operation's number                                         */
  kvik_so_i64 len;   /* read: bytes the worker put in the slot                          */
  kvik_so_i64 size;  /* the operation's size, as the stream reached it                  */
  kvik_so_i64 boff;  /* its buffer offset                                               */
};
/* Bytes from one slot to the next. */
#define KVIK_SO_STRIDE (KVIK_SO_HDR + KVIK_SO_CHUNK + KVIK_SO_TAIL)

#endif
