/* Remote reads, internal side: URL parsing and classification (url.c, no libcurl needed), the
 * endpoint a handle talks to, and the HTTP engine over libcurl (http.c). */
#ifndef KVIK_REMOTE_H
#define KVIK_REMOTE_H

#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- URLs (url.c) ------------------------------------------------------------------------- */

/* The pieces of a URL "scheme://[userinfo@]host[:port][/path][?query][#fragment]", as
 * pointers into the parsed string with lengths (not NUL-terminated). Absent pieces have
 * length 0; has_query tells "?" with an empty query from no query. */
struct kvik__url {
  const char *scheme, *user, *host, *port, *path, *query;
  size_t scheme_len, user_len, host_len, port_len, path_len, query_len;
  bool has_user, has_query;
};

/* Parses url. Returns 0, or KVIK_EINVAL with the reason in the detail message. Rejects control
 * characters and spaces, an empty host, and a port that is not 1..65535. */
int kvik__url_parse(const char *url, struct kvik__url *u);

/* Where an S3 URL points: bucket and key as written in the URL (for s3:// the key is raw text,
 * for http(s) it is percent-encoded), and the region named by an AWS host, if any. */
struct kvik__s3_parts {
  const char *bucket, *key, *region;
  size_t bucket_len, key_len, region_len;
  bool virtual_host; /* bucket.s3...amazonaws.com */
};
/* Recognises the AWS S3 http(s) URL forms kvikio accepts (virtual host, path style, legacy
 * global and s3-region hosts). Returns true and fills p when url is one of them. */
bool kvik__s3_aws_url(const struct kvik__url *u, struct kvik__s3_parts *p);

/* Whether url is acceptable for an endpoint type: kvikio's rules, plus the extensions written in
 * kvik.h (explicit_type: the caller named the type, so S3 also takes path-style URLs on any
 * host). When not, and why is non-NULL, a short reason is written to why. */
bool kvik__remote_url_valid(int type, const char *url, bool explicit_type, char *why,
                            size_t why_len);
/* Infers the type for AUTO as kvik_remote_infer_type does, given whether S3 credentials are
 * available. Returns the type or KVIK_EINVAL with the detail set. */
int kvik__remote_infer(const char *url, unsigned allow, bool have_credentials);

/* Percent-encodes raw text as an S3 key for the path of a URL and SigV4: every byte except
 * A-Z a-z 0-9 - _ . ~ and '/' becomes %XX (upper-case hex). Returns a kvik__malloc'd string. */
char *kvik__s3_encode_key(const char *key, size_t len);
/* Normalises a URL path that is already percent-encoded: valid %XX escapes are kept (hex made
 * upper-case), every other byte outside the unreserved set and '/' is encoded. kvik__malloc'd. */
char *kvik__s3_normalize_path(const char *path, size_t len);

/* Copies in[0..in_len) to out (always NUL-terminated, truncated to len) with secrets replaced by
 * "***". Three rules, each of which only adds to what is hidden:
 *  - user-info: after every "://", the authority runs to the first / ? # (in free text also to
 *    a blank); an '@' in it ends the user-info (kvik__url_parse takes the last, libcurl the
 *    first). The password (after the first ':', up to the last '@') is hidden, and so is
 *    text before an '@' that precedes every ':' (user-info without a password: a token).
 *  - parameters: a name from the list in url.c (X-Amz-Signature, X-Amz-Security-Token,
 *    X-Amz-Credential, Signature, sig, token, access_token, delegation, ...; compared without
 *    case after percent-decoding) that follows ? & ; # (or, in free text, a blank or the
 *    start) and is followed by '=' has its value hidden up to the next & or # (or blank).
 *  - headers (free text only): a line "Authorization: ...", "Proxy-Authorization",
 *    "Cookie", "Set-Cookie", "X-Amz-Security-Token", "X-Api-Key", ... has its value hidden.
 * kvik__redact takes free text (libcurl's trace and error text, server messages);
 * kvik__redact_url takes one URL, whose authority is not cut at blanks (so a URL that the
 * parser refuses for a blank in its password is still shown without the password). */
void kvik__redact(const char *in, size_t in_len, char *out, size_t len);
void kvik__redact_url(const char *in, size_t in_len, char *out, size_t len);

/* Parses a Content-Range value: "bytes FIRST-LAST/TOTAL", "bytes FIRST-LAST/ *" or
 * "bytes * /TOTAL" (no spaces around '/'), with optional surrounding blanks. Returns a mask:
 * 1 when FIRST-LAST was given, 2 when TOTAL was given (0 is never returned), or -1 when the
 * text is malformed, overflows, or has FIRST > LAST or LAST >= TOTAL. */
int kvik__parse_content_range(const char *v, size_t len, uint64_t *first, uint64_t *last,
                              uint64_t *total);

/* Finds the first "key": <unsigned number> in a JSON text (WebHDFS FileStatus "length").
 * Returns 0 and *out, or -1. */
int kvik__json_u64(const char *json, size_t len, const char *key, uint64_t *out);

/* ---- endpoints and the HTTP engine (http.c, with libcurl) --------------------------------- */

/* Where a read's body bytes go, in order. Host memory is written in place; a device buffer
 * will fill through a bounce buffer (see remote.c). */
struct kvik__sink {
  /* Takes len bytes that belong at byte off of the range. 0, or a negative code with the
   * detail set (the transfer is then aborted). */
  int (*write)(void *ctx, const void *data, size_t len, uint64_t off);
  /* A retry restarts the range: forget everything written so far. May be NULL. */
  void (*reset)(void *ctx);
  /* The whole range arrived (len bytes). 0 or a negative code. May be NULL. */
  int (*finish)(void *ctx, uint64_t len);
  void *ctx;
};

/* What a handle talks to. Immutable after kvik_remote_open, so any thread may read it. */
struct kvik__endpoint {
  int type;           /* enum kvik_remote_type, never AUTO */
  char *url;          /* the http(s) URL requests go to (may hold a presigned signature) */
  char *shown;        /* url with secrets replaced, for messages and logs */
  char *sigv4;        /* "aws:amz:REGION:s3" for signed S3, else NULL */
  char *access_key;   /* signed S3 only */
  char *secret_key;   /* signed S3 only; never printed */
  char *token_header; /* "x-amz-security-token: ..." or NULL; never printed */
  char *hdfs_user;    /* WebHDFS user.name, or NULL */
  char *ca_file;      /* CA bundle from CURL_CA_BUNDLE / SSL_CERT_FILE, or NULL */
  char *ca_dir;       /* CA directory from SSL_CERT_DIR, or NULL */
  bool verbose;       /* KVIKIO_REMOTE_VERBOSE at open */
  bool follow;        /* follow redirects (never for signed S3: the signature names the host) */
};

/* One request. The caller fills the inputs; kvik__http_perform fills the outputs. */
struct kvik__http_req {
  const struct kvik__endpoint *ep;
  const char *url;  /* NULL: ep->url */
  const char *what; /* names the request in messages, e.g. "read 0+4096" */
  bool head;        /* HEAD instead of GET */
  bool ranged;      /* send "Range: bytes=off-(off+len-1)" and expect exactly that back */
  bool exact;       /* with sink: the body must be exactly len bytes (WebHDFS OPEN) */
  bool probe;       /* size probe: a 200 answer to a ranged GET ends the transfer early */
  uint64_t off, len;
  const struct kvik__sink *sink; /* 2xx body goes here (NULL: kept in body[], truncated) */
  /* May be NULL. Once *stop is non-zero the request is given up: the transfer in progress is
   * aborted (libcurl's progress callback, called at least about once a second), no retry is
   * started and a backoff wait ends early; the result is then KVIK_ECANCELED. A parallel read
   * points every range at one flag that its first failure sets. */
  const _Atomic int *stop;
  /* Outputs. */
  long status;
  int64_t content_length; /* -1 if not sent or out of range */
  char cl_text[40];       /* the Content-Length value as sent, blanks trimmed ("" if none) */
  int cr_mask;            /* kvik__parse_content_range() of the final response, 0 if absent */
  uint64_t cr_first, cr_last, cr_total;
  uint64_t received; /* body bytes of the final attempt */
  char body[4096];   /* start of a body that did not go to the sink */
  size_t body_len;
};

/* Performs the request with retries. Returns 0 (a 2xx answer, body complete and in range), or a
 * negative code with the detail set: KVIK_EHTTP (status named, S3 or WebHDFS error code when
 * the body has one; or a range or length the server got wrong), KVIK_ETIMEDOUT, -ENOMEM,
 * KVIK_ECANCELED (*rq->stop was set). */
int kvik__http_perform(struct kvik__http_req *rq);

/* Initialises libcurl once. 0 or KVIK_EUNSUPPORTED/KVIK_EINTERNAL with the detail set. */
int kvik__http_init(void);
/* Whether the libcurl in use signs requests with SigV4 (7.75 and later). */
bool kvik__http_has_sigv4(void);

/* Test hooks: the first backoff delay in milliseconds (default 500; it doubles per retry, up to
 * 16 times the first), and the number of requests performed so far (every attempt counts). */
void kvik__remote_set_backoff_ms(unsigned ms);
uint64_t kvik__remote_request_count(void);

#endif
