/* Internal core services: error detail, allocation wrappers, logging, configuration access.
 * Internal non-static functions are named kvik__*; none is exported from the shared library. */
#ifndef KVIK_CORE_H
#define KVIK_CORE_H

#include "kvik.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVIK_ERRMSG_MAX 1024

/* Sets this thread's detail message (printf-style) and returns code, so failures read
 * `return kvik__err(-errno, "open %s: %s", path, kvik__errno_text(errno));`. */
int kvik__err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same with a va_list. */
int kvik__verr(int code, const char *fmt, va_list ap);
/* Replaces this thread's detail message with msg verbatim and returns code. */
int kvik__err_set(int code, const char *msg);
/* Clears this thread's detail message. */
void kvik__err_clear(void);
/* Thread-safe text for an errno value (never NULL, static storage). */
const char *kvik__errno_text(int errnum);

/* Allocation wrappers: all library heap use goes through these, so tests can fail each
 * allocation in turn. kvik__free accepts NULL. Aligned memory is freed with kvik__free too. */
void *kvik__malloc(size_t size);
void *kvik__calloc(size_t n, size_t size);
void *kvik__aligned_alloc(size_t alignment, size_t size);
char *kvik__strdup(const char *s);
void kvik__free(void *p);
/* Test hook: the allocation after `n` more successful ones fails (n < 0: never). */
void kvik__alloc_fail_after(long n);

/* Logging: formatted message to the user's sink (or KVIKIO_LOG_FILE), if level passes. Never
 * called with a library lock held. */
void kvik__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Configuration: each returns the value, after kvik_config_init() succeeded. Callers that
 * need the configuration call kvik__config_ready() first and return its error. */
int kvik__config_ready(void);
uint64_t kvik__cfg_u64(enum kvik_cfg key);
/* Copies up to max HTTP status codes to retry into codes; returns how many there are. */
size_t kvik__cfg_http_codes(int *codes, size_t max);
/* Copies a string setting into buf (NUL-terminated, truncated); "" when unset. */
void kvik__cfg_str(enum kvik_cfg key, char *buf, size_t len);
/* Parses a size with K/M/G/T suffixes (binary). Returns 0 or -1. */
int kvik__parse_size(const char *s, uint64_t *out);
/* Parses text as the environment's value for key, exactly as the environment is read, without
 * touching the environment or the configuration: 0 with the value in *num (numeric settings;
 * 0 for string settings), or KVIK_ECONFIG with the detail naming the variable and the text. */
int kvik__config_parse(enum kvik_cfg key, const char *text, uint64_t *num);

/* Page size, cached. */
size_t kvik__page_size(void);

/* The kinds of opaque handles (the registry's tags). */
#define KVIK_MAGIC_FILE 0x6b76666cU   /* "kvfl" */
#define KVIK_MAGIC_POOL 0x6b76706cU   /* "kvpl" */
#define KVIK_MAGIC_FUTURE 0x6b766675U /* "kvfu" */
#define KVIK_MAGIC_REMOTE 0x6b767274U /* "kvrt" */
#define KVIK_MAGIC_BATCH 0x6b766274U  /* "kvbt" */

/* Live handles (handle.c). Every opaque handle the API hands out (file, pool, future, remote,
 * batch) begins with this header and is entered in a process-wide set while the caller owns
 * it. Entry points look the pointer up in the set, by address, before touching it: a pointer
 * that is not a live handle of the expected kind (never was one, closed, destroyed, waited) is
 * refused with KVIK_EMISUSE without reading the memory it points to. Being in the set stands
 * for the caller's reference; each type frees its handle when refs drops to 0. */
struct kvik__handle {
  struct kvik__handle *next; /* in the set's bucket chain; guarded by the set's lock */
  unsigned kind;             /* KVIK_MAGIC_*; written before the handle enters the set */
  _Atomic int refs;          /* the caller's (while in the set), plus the type's own */
};
/* Enters h, whose refs already count the caller's reference, into the set as kind. Never
 * fails (the set grows when it can, and chains longer when it cannot). */
void kvik__handle_add(struct kvik__handle *h, unsigned kind);
/* If p is a live handle of this kind: adds a reference to it and returns true (the caller
 * drops it with the type's own release). Else false; *p is never read then. */
bool kvik__handle_get(const void *p, unsigned kind);
/* If p is a live handle of this kind: removes it from the set and returns true; the caller
 * now holds the reference the set stood for. Exactly one of concurrent takes succeeds. */
bool kvik__handle_take(const void *p, unsigned kind);
/* Whether p is a live handle of this kind, without a reference (for handles whose memory
 * outlives every caller, or whose users do not race their destruction). */
bool kvik__handle_live(const void *p, unsigned kind);

#define KVIK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define KVIK_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
