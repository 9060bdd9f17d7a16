/* The kvik tool's own, minimal use of the CUDA driver: device and pinned buffers and plain
 * copies for `kvik bench --mem device` and its baselines. The library is used only through
 * kvik.h; this opens libcuda.so.1 itself (dlopen), as a user program would link it. Device 0's
 * primary context is made current on the thread that calls cli_cuda_open(); every other call
 * here must come from that thread. */
#ifndef KVIK_CLI_CUDA_TOOL_H
#define KVIK_CLI_CUDA_TOOL_H

#include <stddef.h>
#include <stdint.h>

/* Opens the driver, initializes it and makes device 0's primary context current. Returns 0,
 * or -1 after printing why. Later calls return the first answer. */
int cli_cuda_open(void);
/* Device memory (cuMemAlloc). Returns 0 or -1 after printing why. */
int cli_cuda_alloc(uint64_t *dptr, size_t size);
void cli_cuda_free(uint64_t dptr);
/* Pinned, portable host memory (cuMemHostAlloc). NULL after printing why. */
void *cli_cuda_host_alloc(size_t size);
void cli_cuda_host_free(void *p);
/* Synchronous copies and fill. Return 0 or -1 after printing why. */
int cli_cuda_htod(uint64_t dst, const void *src, size_t size);
int cli_cuda_dtoh(void *dst, uint64_t src, size_t size);
int cli_cuda_memset(uint64_t dst, unsigned char value, size_t size);

#endif
