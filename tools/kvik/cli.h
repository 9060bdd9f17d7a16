/* The kvik command-line tool: shared declarations.
 *
 * The tool is built only on the public header (include/kvik.h), like zstd's programs/: what it
 * can do, a user of the library can do. Exit codes: 0 success, 1 a runtime failure (the
 * library's detail message is printed), 2 a usage error.
 */
#ifndef KVIK_CLI_H
#define KVIK_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kvik.h"

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Subcommands: each gets argv starting at its own name (argv[0] == "info", ...). */
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_cp(int argc, char **argv);
/* The fresh process of kvik bench's one-shot reads (`kvik __oneshot`, not listed). */
int cmd_bench_oneshot(int argc, char **argv);

/* ---- messages ------------------------------------------------------------------------- */

/* Prints "kvik: <fmt>" and a newline on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "kvik: <fmt>: <detail>" where detail is this thread's kvik_last_error(), or the
 * code's static text when the library left no detail; the code's name follows in brackets. */
void cli_kvik_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- sizes and numbers ---------------------------------------------------------------- */

/* Parses a byte count: digits with an optional binary suffix K, M, G, T (also KiB, KB, ...;
 * any case; 1K = 1024). Returns 0, or -1 for malformed text or overflow. */
int cli_parse_size(const char *text, uint64_t *out);
/* Parses a plain unsigned decimal number in [min, max]. Returns 0 or -1. */
int cli_parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out);
/* Parses on|off (also true/false, yes/no, 1/0). Returns 0 or 1, or -1. */
int cli_parse_onoff(const char *text);
/* Formats a byte count for people: "1 GiB", "4 MiB", "1.50 GiB", "999 B". Returns buf. */
const char *cli_fmt_size(uint64_t bytes, char *buf, size_t len);

/* ---- time and memory ------------------------------------------------------------------ */

/* Monotonic clock in seconds. */
double cli_now(void);
/* Page-aligned host allocation of size bytes (at least one page), every page touched so no
 * fault is left for a timed region. NULL on failure. Free with cli_free_host(). */
/* Back host buffers with transparent huge pages (bench --hugepages). */
extern bool cli_hugepages;
void *cli_alloc_host(size_t size);
void cli_free_host(void *p);

/* ---- progress ------------------------------------------------------------------------- */

/* A one-line progress display on stderr, shown only when stderr is a terminal. */
void cli_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Erases the progress line (if one was shown). */
void cli_progress_done(void);

/* ---- options shared by the I/O commands (bench, cp) ----------------------------------- */

/* Settings that go into kvik's configuration before any file is opened. Fields left at their
 * "unset" value keep kvik's configuration (environment or default). */
struct cli_io_settings {
  uint64_t threads;   /* 0: unset */
  uint64_t task_size; /* 0: unset */
  int direct_io;      /* -1: unset, 0 off, 1 on (both AUTO_DIRECT_IO_READ/WRITE) */
  int compat;         /* KVIK_COMPAT_DEFAULT unless --compat was given */
};
void cli_io_settings_init(struct cli_io_settings *s);
/* Applies the settings to kvik's configuration and prepares the pool to pass per call: when
 * --threads was given, the default pool is resized to it and returned in *pool; otherwise
 * *pool is NULL (each file's own pool). Returns 0, or CLI_FAIL after printing why. */
int cli_io_settings_apply(const struct cli_io_settings *s, kvik_pool **pool);
/* Parses the value of --compat. Returns a kvik_compat value or -1. */
int cli_parse_compat(const char *text);
const char *cli_compat_name(int compat);

#endif /* KVIK_CLI_H */
