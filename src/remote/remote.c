/* kvik_remote: a remote object (HTTP, S3, WebHDFS) read by byte ranges into host or device
 * memory. The handle is immutable after open and reference-counted, so reads in flight keep it
 * alive when the caller closes it early.
 *
 * Parallel reads do not use kvik__pool_submit_range: remote work is capped to a share of the
 * pool's workers (kvik_remote_opts.max_parallel) so that it cannot take every worker from file
 * I/O, and each item goes to the back of the queue after each range, so other work queued on
 * the same pool interleaves with it. */
#include "remote/remote.h"

#include "gpu/gpu.h"
#include "pool/bounce.h"
#include "pool/pool.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct kvik_remote {
  struct kvik__handle h; /* refs: the caller's (while in the handle set), one per call in
                            progress, one per parallel read in flight */
  struct kvik__endpoint ep;
  uint64_t size;
  unsigned max_parallel; /* 0: three quarters of the pool's workers */
};

const char *kvik_remote_type_name(int type) {
  switch (type) {
  case KVIK_REMOTE_AUTO: return "AUTO";
  case KVIK_REMOTE_S3: return "S3";
  case KVIK_REMOTE_S3_PUBLIC: return "S3_PUBLIC";
  case KVIK_REMOTE_S3_PRESIGNED: return "S3_PRESIGNED";
  case KVIK_REMOTE_WEBHDFS: return "WEBHDFS";
  case KVIK_REMOTE_HTTP: return "HTTP";
  default: return "?";
  }
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

int kvik_remote_infer_type(const char *url, unsigned allow) {
  bool creds = env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY");
  return kvik__remote_infer(url, allow, creds);
}

static void endpoint_free(struct kvik__endpoint *ep) {
  kvik__free(ep->url);
  kvik__free(ep->shown);
  kvik__free(ep->sigv4);
  kvik__free(ep->access_key);
  if (ep->secret_key) { /* do not leave the secret in freed memory */
    memset(ep->secret_key, 0, strlen(ep->secret_key));
    kvik__free(ep->secret_key);
  }
  if (ep->token_header) {
    memset(ep->token_header, 0, strlen(ep->token_header));
    kvik__free(ep->token_header);
  }
  kvik__free(ep->hdfs_user);
  kvik__free(ep->ca_file);
  kvik__free(ep->ca_dir);
  memset(ep, 0, sizeof *ep);
}

static void remote_unref(kvik_remote *r) {
  if (atomic_fetch_sub_explicit(&r->h.refs, 1, memory_order_acq_rel) != 1)
    return;
  endpoint_free(&r->ep);
  kvik__free(r);
}

/* Takes a reference on r for a call, if r is an open remote handle (nothing is read through a
 * pointer that is not one). */
static int remote_get(kvik_remote *r, const char *fn) {
  if (!r)
    return kvik__err(KVIK_EINVAL, "%s: remote handle is NULL", fn);
  if (!kvik__handle_get(r, KVIK_MAGIC_REMOTE))
    return kvik__err(KVIK_EMISUSE,
                     "%s: %p is not an open kvik remote handle (closed already, or never a "
                     "kvik_remote)",
                     fn, (void *)r);
  return 0;
}

/* A printf into a fresh kvik__malloc'd string. */
static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return NULL;
  char *s = kvik__malloc((size_t)n + 1);
  if (!s)
    return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* Options, read only as far as the caller's struct reaches (sz), so older callers work. */
#define OPT(o, field)                                                                              \
  ((o) && (o)->sz >= offsetof(struct kvik_remote_opts, field) + sizeof((o)->field) ? (o)->field : 0)

/* Builds the request URL and signing settings of an S3 endpoint. */
static int s3_endpoint(struct kvik__endpoint *ep, const char *url, const struct kvik_remote_opts *o,
                       bool sign) {
  struct kvik__s3_parts p;
  char region_buf[64] = "";
  const char *region = OPT(o, region);
  if (strncasecmp(url, "s3://", 5) == 0) {
    const char *b = url + 5;
    size_t blen = strcspn(b, "/");
    const char *key = b + blen + 1;
    char *enc = kvik__s3_encode_key(key, strlen(key));
    if (!enc)
      return kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
    const char *endpoint = OPT(o, endpoint);
    if (!endpoint)
      endpoint = env("AWS_ENDPOINT_URL");
    if (!region)
      region = env("AWS_DEFAULT_REGION");
    if (!region)
      region = env("AWS_REGION");
    if (!region)
      region = "us-east-1";
    if (endpoint) {
      size_t elen = strlen(endpoint);
      while (elen > 0 && endpoint[elen - 1] == '/')
        elen--;
      ep->url = strf("%.*s/%.*s/%s", (int)elen, endpoint, (int)blen, b, enc);
    } else if (memchr(b, '.', blen)) {
      /* A bucket with dots breaks the TLS wildcard of virtual hosts: use path style. */
      ep->url = strf("https://s3.%s.amazonaws.com/%.*s/%s", region, (int)blen, b, enc);
    } else {
      ep->url = strf("https://%.*s.s3.%s.amazonaws.com/%s", (int)blen, b, region, enc);
    }
    kvik__free(enc);
  } else {
    struct kvik__url u;
    int rc = kvik__url_parse(url, &u);
    if (rc)
      return rc;
    if (kvik__s3_aws_url(&u, &p) && p.region && !region && p.region_len < sizeof region_buf) {
      snprintf(region_buf, sizeof region_buf, "%.*s", (int)p.region_len, p.region);
      region = region_buf;
    }
    if (!region)
      region = env("AWS_DEFAULT_REGION");
    if (!region)
      region = env("AWS_REGION");
    if (!region)
      region = "us-east-1";
    char *path = kvik__s3_normalize_path(u.path, u.path_len);
    if (!path)
      return kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
    const char *after = u.path + u.path_len;
    size_t after_len = strcspn(after, "#");
    ep->url = strf("%.*s%s%.*s", (int)(u.path - url), url, path, (int)after_len, after);
    kvik__free(path);
  }
  if (!ep->url)
    return kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
  if (!sign)
    return 0;

  const char *ak = OPT(o, access_key_id), *sk = OPT(o, secret_access_key);
  const char *tok = OPT(o, session_token);
  if (!ak)
    ak = env("AWS_ACCESS_KEY_ID");
  if (!sk)
    sk = env("AWS_SECRET_ACCESS_KEY");
  if (!tok)
    tok = env("AWS_SESSION_TOKEN");
  if (!ak || !sk)
    return kvik__err(KVIK_EINVAL,
                     "kvik_remote_open %s: S3 needs credentials: set AWS_ACCESS_KEY_ID and "
                     "AWS_SECRET_ACCESS_KEY, or pass them in kvik_remote_opts",
                     ep->shown ? ep->shown : "");
  if (!kvik__http_has_sigv4())
    return kvik__err(KVIK_EUNSUPPORTED,
                     "kvik_remote_open: this libcurl cannot sign S3 requests (AWS SigV4 needs "
                     "libcurl 7.75 or later)");
  for (const char *c = region; *c; c++)
    if (*c == ':' || (unsigned char)*c <= 0x20)
      return kvik__err(KVIK_EINVAL, "kvik_remote_open: invalid S3 region \"%.40s\"", region);
  ep->sigv4 = strf("aws:amz:%s:s3", region);
  ep->access_key = kvik__strdup(ak);
  ep->secret_key = kvik__strdup(sk);
  if (tok)
    ep->token_header = strf("x-amz-security-token: %s", tok);
  if (!ep->sigv4 || !ep->access_key || !ep->secret_key || (tok && !ep->token_header))
    return kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
  return 0;
}

/* Percent-encodes a query value (WebHDFS user name). */
static char *query_encode(const char *s) { return kvik__s3_encode_key(s, strlen(s)); }

/* "base?op=..." or "base&op=..." when base already has a query (a delegation token). The
 * fragment, if any, is dropped. */
static char *webhdfs_url(const struct kvik__endpoint *ep, const char *op_params) {
  size_t blen = strcspn(ep->url, "#");
  bool has_q = memchr(ep->url, '?', blen) != NULL;
  char *user = ep->hdfs_user ? query_encode(ep->hdfs_user) : NULL;
  if (ep->hdfs_user && !user)
    return NULL;
  char *s = strf("%.*s%c%s%s%s", (int)blen, ep->url, has_q ? '&' : '?', op_params,
                 user ? "&user.name=" : "", user ? user : "");
  kvik__free(user);
  return s;
}

/* The error for an answer whose Content-Length libcurl could not use (rq->content_length < 0):
 * none sent, a number too large for 64 bits, or not a number. what names the request. */
static int bad_length(kvik_remote *r, const struct kvik__http_req *rq, const char *what) {
  const char *v = rq->cl_text;
  if (!v[0])
    return kvik__err(KVIK_EHTTP,
                     "kvik_remote_open %s: the %s answer has no Content-Length; pass opts.size",
                     r->ep.shown, what);
  if (strspn(v, "0123456789") == strlen(v))
    return kvik__err(KVIK_EOVERFLOW,
                     "kvik_remote_open %s: the %s answer's Content-Length %s is out of range "
                     "(more than 2^63-1 bytes); pass opts.size",
                     r->ep.shown, what, v);
  return kvik__err(KVIK_EHTTP,
                   "kvik_remote_open %s: the %s answer's Content-Length \"%s\" is not a number; "
                   "pass opts.size",
                   r->ep.shown, what, v);
}

/* Asks the server for the object's size. */
static int query_size(kvik_remote *r) {
  struct kvik__http_req *rq = kvik__calloc(1, sizeof *rq); /* 4 KiB of body: not on the stack */
  if (!rq)
    return kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
  rq->ep = &r->ep;
  int rc = 0;
  char *url = NULL;
  switch (r->ep.type) {
  case KVIK_REMOTE_S3_PRESIGNED:
    /* HEAD is not allowed with a URL presigned for GET: ask for one byte and read the total
     * from Content-Range (or Content-Length when the server sends the whole object). */
    rq->what = "size (GET bytes 0-0)";
    rq->ranged = true;
    rq->probe = true;
    rq->off = 0;
    rq->len = 1;
    rc = kvik__http_perform(rq);
    if (rc == KVIK_EHTTP && rq->status == 416 && (rq->cr_mask & 2) && rq->cr_total == 0) {
      rc = 0; /* an empty object cannot serve byte 0 */
      kvik__err_clear();
    } else if (rc == 0 && rq->status == 206) {
      if (!(rq->cr_mask > 0 && (rq->cr_mask & 2))) {
        rc = kvik__err(KVIK_EHTTP,
                       "kvik_remote_open %s: the answer to a ranged GET has no "
                       "object size in Content-Range; pass opts.size",
                       r->ep.shown);
        break;
      }
      r->size = rq->cr_total;
    } else if (rc == 0) {
      if (rq->content_length < 0) {
        rc = bad_length(r, rq, "ranged GET");
        break;
      }
      r->size = (uint64_t)rq->content_length;
    }
    break;
  case KVIK_REMOTE_WEBHDFS: {
    url = webhdfs_url(&r->ep, "op=GETFILESTATUS");
    if (!url) {
      rc = kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
      break;
    }
    rq->url = url;
    rq->what = "size (GETFILESTATUS)";
    rc = kvik__http_perform(rq);
    if (rc == 0 && kvik__json_u64(rq->body, rq->body_len, "length", &r->size) != 0)
      rc = kvik__err(KVIK_EHTTP, "kvik_remote_open %s: GETFILESTATUS answer has no \"length\"",
                     r->ep.shown);
    break;
  }
  default:
    rq->head = true;
    rq->what = "size (HEAD)";
    rc = kvik__http_perform(rq);
    if (rc == 0 && rq->content_length < 0)
      rc = bad_length(r, rq, "HEAD");
    else if (rc == 0)
      r->size = (uint64_t)rq->content_length;
    break;
  }
  kvik__free(url);
  kvik__free(rq);
  return rc;
}

int kvik_remote_open(kvik_remote **out, const char *url, const struct kvik_remote_opts *o) {
  if (!out || !url)
    return kvik__err(KVIK_EINVAL, "kvik_remote_open: %s is NULL", !out ? "out" : "url");
  if (o && o->sz < offsetof(struct kvik_remote_opts, type) + sizeof o->type)
    return kvik__err(KVIK_EINVAL,
                     "kvik_remote_opts: sz is %zu, set it to sizeof(struct kvik_remote_opts)",
                     o->sz);
  int rc = kvik__config_ready();
  if (rc)
    return rc;
  if ((rc = kvik__http_init()) != 0)
    return rc;
  char shown[600];
  kvik__redact_url(url, strlen(url), shown, sizeof shown);
  int type = OPT(o, type);
  unsigned allow = OPT(o, allow);
  if (allow == 0)
    allow = ~0u;
  if (type < KVIK_REMOTE_AUTO || type > KVIK_REMOTE_HTTP)
    return kvik__err(KVIK_EINVAL, "kvik_remote_open %s: unknown endpoint type %d", shown, type);
  const char *ak = OPT(o, access_key_id), *sk = OPT(o, secret_access_key);
  bool creds = (ak || env("AWS_ACCESS_KEY_ID")) && (sk || env("AWS_SECRET_ACCESS_KEY"));
  if (type == KVIK_REMOTE_AUTO) {
    type = kvik__remote_infer(url, allow, creds);
    if (type < 0)
      return type;
  } else {
    if (!(allow & KVIK_REMOTE_ALLOW(type)))
      return kvik__err(KVIK_EINVAL,
                       "kvik_remote_open %s: endpoint type %s is not in the allow "
                       "list",
                       shown, kvik_remote_type_name(type));
    char why[256];
    if (!kvik__remote_url_valid(type, url, true, why, sizeof why))
      return kvik__err(KVIK_EINVAL, "kvik_remote_open %s: not a valid %s URL: %s", shown,
                       kvik_remote_type_name(type), why);
  }

  kvik_remote *r = kvik__calloc(1, sizeof *r);
  if (!r)
    return kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
  atomic_store(&r->h.refs, 1);
  r->max_parallel = OPT(o, max_parallel);
  struct kvik__endpoint *ep = &r->ep;
  ep->type = type;
  ep->shown = kvik__strdup(shown);
  if (!ep->shown) {
    rc = kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
    goto fail;
  }
  switch (type) {
  case KVIK_REMOTE_S3:
  case KVIK_REMOTE_S3_PUBLIC:
    if ((rc = s3_endpoint(ep, url, o, type == KVIK_REMOTE_S3)) != 0)
      goto fail;
    /* The signature covers the host, so a signed request never follows a redirect. */
    ep->follow = type == KVIK_REMOTE_S3_PUBLIC;
    break;
  default:
    ep->url = kvik__strdup(url);
    ep->follow = true;
    if (!ep->url) {
      rc = kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
      goto fail;
    }
    break;
  }
  /* Show the URL requests really go to (for s3:// that is the endpoint's). */
  char shown2[600];
  kvik__redact_url(ep->url, strlen(ep->url), shown2, sizeof shown2);
  kvik__free(ep->shown);
  ep->shown = kvik__strdup(shown2);
  if (!ep->shown) {
    rc = kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
    goto fail;
  }
  if (type == KVIK_REMOTE_WEBHDFS) {
    char user[256];
    kvik__cfg_str(KVIK_CFG_WEBHDFS_USERNAME, user, sizeof user);
    if (user[0] && !(ep->hdfs_user = kvik__strdup(user))) {
      rc = kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
      goto fail;
    }
  }
  const char *ca = env("CURL_CA_BUNDLE");
  if (!ca)
    ca = env("SSL_CERT_FILE");
  const char *cadir = env("SSL_CERT_DIR");
  if ((ca && !(ep->ca_file = kvik__strdup(ca))) || (cadir && !(ep->ca_dir = kvik__strdup(cadir)))) {
    rc = kvik__err(-ENOMEM, "kvik_remote_open: out of memory");
    goto fail;
  }
  ep->verbose = kvik__cfg_u64(KVIK_CFG_REMOTE_VERBOSE) != 0;

  uint64_t size = OPT(o, size);
  if (size > 0)
    r->size = size;
  else if ((rc = query_size(r)) != 0)
    goto fail;
  if (r->size > (uint64_t)INT64_MAX) {
    rc = kvik__err(KVIK_EOVERFLOW, "kvik_remote_open %s: size %llu is too large", ep->shown,
                   (unsigned long long)r->size);
    goto fail;
  }
  kvik__handle_add(&r->h, KVIK_MAGIC_REMOTE);
  *out = r;
  kvik__err_clear();
  return 0;

fail:
  endpoint_free(&r->ep);
  kvik__free(r);
  return rc;
}

int kvik_remote_close(kvik_remote *r) {
  if (!r)
    return 0;
  if (!kvik__handle_take(r, KVIK_MAGIC_REMOTE))
    return kvik__err(KVIK_EMISUSE,
                     "kvik_remote_close: %p is not an open kvik remote handle (closed already, or "
                     "never a kvik_remote)",
                     (void *)r);
  remote_unref(r); /* reads in flight hold their own reference */
  return 0;
}

int64_t kvik_remote_size(kvik_remote *r) {
  int rc = remote_get(r, "kvik_remote_size");
  if (rc)
    return rc;
  int64_t size = (int64_t)r->size;
  remote_unref(r);
  return size;
}

int kvik_remote_type(kvik_remote *r) {
  int rc = remote_get(r, "kvik_remote_type");
  if (rc)
    return rc;
  int type = r->ep.type;
  remote_unref(r);
  return type;
}

const char *kvik_remote_url(kvik_remote *r) {
  if (remote_get(r, "kvik_remote_url"))
    return NULL;
  const char *url = r->ep.shown; /* the caller's reference keeps it */
  remote_unref(r);
  return url;
}

/* ---- sinks -------------------------------------------------------------------------------- */

/* Host memory: bytes land in place. */
static int host_write(void *ctx, const void *data, size_t len, uint64_t off) {
  memcpy((unsigned char *)ctx + off, data, len);
  return 0;
}

/* Device or managed memory: bytes gather in a (pinned, when CUDA is there) bounce buffer that
 * is copied to the device whenever it fills, with the owning context current on this thread
 * (pushed by read_range around the whole request). A retry starts over at the range's first
 * byte, so copies already made are simply overwritten. */
struct dev_sink {
  const struct kvik__cuda_api *cu;
  CUdeviceptr dst;
  struct kvik__bounce b;
  size_t fill;      /* bytes in b */
  uint64_t flushed; /* bytes already copied to dst */
};

static int dev_flush(struct dev_sink *d) {
  if (d->fill == 0)
    return 0;
  CUresult e = d->cu->cuMemcpyHtoD_v2(d->dst + d->flushed, d->b.ptr, d->fill);
  if (e != CUDA_SUCCESS)
    return kvik__cuda_fail(e, "remote read: cuMemcpyHtoD_v2 (%zu bytes to %#llx)", d->fill,
                           (unsigned long long)(d->dst + d->flushed));
  d->flushed += d->fill;
  d->fill = 0;
  return 0;
}

static int dev_write(void *ctx, const void *data, size_t len, uint64_t off) {
  struct dev_sink *d = ctx;
  (void)off; /* bytes come in order: off == flushed + fill */
  const unsigned char *p = data;
  while (len > 0) {
    size_t k = KVIK_MIN(len, d->b.size - d->fill);
    memcpy((unsigned char *)d->b.ptr + d->fill, p, k);
    d->fill += k;
    p += k;
    len -= k;
    if (d->fill == d->b.size) {
      int rc = dev_flush(d);
      if (rc)
        return rc;
    }
  }
  return 0;
}

static void dev_reset(void *ctx) {
  struct dev_sink *d = ctx;
  d->fill = 0;
  d->flushed = 0;
}

static int dev_finish(void *ctx, uint64_t len) {
  (void)len;
  return dev_flush(ctx);
}

/* ---- reads -------------------------------------------------------------------------------- */

/* Fetches [off, off+len) into buf with one request (and its retries). stop (may be NULL): see
 * kvik__http_req.stop. Returns len or a negative code with the detail set. */
static ssize_t read_range(kvik_remote *r, void *buf, size_t len, uint64_t off,
                          const _Atomic int *stop) {
  struct kvik__mem_info mi;
  int rc = kvik__mem_query(buf, len, &mi);
  if (rc)
    return rc;
  struct kvik__http_req *rq = kvik__calloc(1, sizeof *rq);
  if (!rq)
    return kvik__err(-ENOMEM, "remote read: out of memory");
  struct kvik__sink sink = {host_write, NULL, NULL, buf};
  struct dev_sink dev;
  bool device = kvik__mem_is_device(mi.kind);
  CUcontext ctx = NULL;
  char *url = NULL;
  if (device) {
    memset(&dev, 0, sizeof dev);
    if ((rc = kvik__cuda_get(&dev.cu)) != 0 || (rc = kvik__mem_ctx(&mi, &ctx)) != 0)
      goto out;
    if ((rc = kvik__bounce_get(&dev.b)) != 0)
      goto out;
    dev.dst = mi.dptr;
    sink = (struct kvik__sink){dev_write, dev_reset, dev_finish, &dev};
    CUresult e = dev.cu->cuCtxPushCurrent_v2(ctx);
    if (e != CUDA_SUCCESS) {
      kvik__bounce_put(&dev.b);
      rc = kvik__cuda_fail(e, "remote read: cuCtxPushCurrent_v2");
      goto out;
    }
  }
  char what[96];
  snprintf(what, sizeof what, "read %llu bytes at offset %llu", (unsigned long long)len,
           (unsigned long long)off);
  rq->ep = &r->ep;
  rq->what = what;
  rq->sink = &sink;
  rq->off = off;
  rq->len = len;
  rq->stop = stop;
  if (r->ep.type == KVIK_REMOTE_WEBHDFS) {
    char params[96];
    snprintf(params, sizeof params, "op=OPEN&offset=%llu&length=%llu", (unsigned long long)off,
             (unsigned long long)len);
    url = webhdfs_url(&r->ep, params);
    if (!url)
      rc = kvik__err(-ENOMEM, "remote read: out of memory");
    rq->url = url;
    rq->exact = true;
  } else {
    rq->ranged = true;
  }
  if (rc == 0)
    rc = kvik__http_perform(rq);
  if (device) {
    CUcontext popped;
    dev.cu->cuCtxPopCurrent_v2(&popped);
    kvik__bounce_put(&dev.b);
  }
out:
  kvik__free(url);
  kvik__free(rq);
  return rc ? rc : (ssize_t)len;
}

/* Checks a read request on a held handle. Returns 0 or a negative code with the detail set. */
static int check_read(kvik_remote *r, const void *buf, size_t size, int64_t offset,
                      const char *fn) {
  if (!buf && size)
    return kvik__err(KVIK_EINVAL, "%s %s: buffer is NULL", fn, r->ep.shown);
  if (offset < 0)
    return kvik__err(KVIK_EINVAL, "%s %s: negative offset %lld", fn, r->ep.shown,
                     (long long)offset);
  if (size > (size_t)SSIZE_MAX)
    return kvik__err(KVIK_EOVERFLOW, "%s %s: size %zu is larger than SSIZE_MAX", fn, r->ep.shown,
                     size);
  if ((uint64_t)offset > r->size || size > r->size - (uint64_t)offset)
    return kvik__err(KVIK_EOVERFLOW,
                     "%s %s: cannot read %zu bytes at offset %lld: the object has %llu bytes", fn,
                     r->ep.shown, size, (long long)offset, (unsigned long long)r->size);
  return kvik__config_ready();
}

ssize_t kvik_remote_read(kvik_remote *r, void *buf, size_t size, int64_t offset) {
  int rc = remote_get(r, "kvik_remote_read");
  if (rc)
    return rc;
  ssize_t n = 0; /* size 0: no request */
  if (size > 0 && (n = check_read(r, buf, size, offset, "kvik_remote_read")) == 0)
    n = read_range(r, buf, size, (uint64_t)offset, NULL);
  remote_unref(r);
  return n;
}

/* One parallel read. Each pool item claims ranges from next; the item that finishes the last
 * range completes the future; the last item to leave frees the operation. The first range to
 * fail sets failed: ranges claimed after that are skipped without a request (but still count
 * as finished), and the ranges in flight see the flag through kvik__http_req.stop and are
 * aborted, so the operation ends within about one request's time of its first failure instead
 * of fetching (and retrying) everything else first. */
struct pread_op {
  kvik_remote *r; /* holds a reference */
  unsigned char *buf;
  uint64_t off;
  size_t size, task, nranges;
  kvik_pool *pool;
  kvik_future *fut;
  _Atomic size_t next;  /* next range to claim */
  _Atomic size_t done;  /* ranges finished */
  _Atomic int items;    /* pool items alive: the operation's reference count */
  _Atomic int failed;   /* set once, by the first range that fails */
  pthread_mutex_t lock; /* guards err and errmsg */
  int err;              /* the first failure's code and message */
  char errmsg[KVIK_ERRMSG_MAX];
};

static void op_unref(struct pread_op *op) {
  if (atomic_fetch_sub_explicit(&op->items, 1, memory_order_acq_rel) != 1)
    return;
  remote_unref(op->r);
  pthread_mutex_destroy(&op->lock);
  kvik__free(op);
}

static void pread_item(void *arg) {
  struct pread_op *op = arg;
  for (;;) {
    size_t i = atomic_fetch_add_explicit(&op->next, 1, memory_order_relaxed);
    if (i >= op->nranges)
      break;
    size_t start = i * op->task;
    size_t len = KVIK_MIN(op->task, op->size - start);
    uint64_t off = op->off + start;
    ssize_t n = 0;
    if (!atomic_load_explicit(&op->failed, memory_order_acquire))
      n = read_range(op->r, op->buf + start, len, off, &op->failed);
    int first = 0;
    /* Only the first failure counts: the ranges it stops fail with KVIK_ECANCELED after it, and
     * a range that fails on its own meanwhile is a consequence or a coincidence. */
    if (n < 0 && atomic_compare_exchange_strong(&op->failed, &first, 1)) {
      pthread_mutex_lock(&op->lock);
      op->err = (int)n;
      snprintf(op->errmsg, sizeof op->errmsg, "%s", kvik_last_error());
      pthread_mutex_unlock(&op->lock);
    }
    if (atomic_fetch_add_explicit(&op->done, 1, memory_order_acq_rel) + 1 == op->nranges) {
      pthread_mutex_lock(&op->lock);
      ssize_t result = op->err ? op->err : (ssize_t)op->size;
      char msg[KVIK_ERRMSG_MAX];
      snprintf(msg, sizeof msg, "%s", op->errmsg);
      pthread_mutex_unlock(&op->lock);
      kvik__future_complete(op->fut, result, result < 0 ? msg : NULL);
      break;
    }
    /* Go to the back of the queue so that other work on this pool gets its turn; the new item
     * takes over this one's reference. After a failure, stay and skip what is left. */
    if (atomic_load_explicit(&op->next, memory_order_relaxed) < op->nranges &&
        !atomic_load_explicit(&op->failed, memory_order_relaxed) &&
        kvik__pool_submit(op->pool, pread_item, op) == 0)
      return;
  }
  op_unref(op);
}

/* kvik_remote_pread on a held handle. */
static int remote_pread(kvik_remote *r, void *buf, size_t size, int64_t offset,
                        const struct kvik_io_opts *opts, kvik_future **out) {
  int rc = size ? check_read(r, buf, size, offset, "kvik_remote_pread") : 0;
  if (rc)
    return rc;
  size_t task = (size_t)kvik__cfg_u64(KVIK_CFG_TASK_SIZE);
  kvik_pool *pool = NULL;
  if (opts) {
    if (opts->sz < offsetof(struct kvik_io_opts, pool) + sizeof opts->pool)
      return kvik__err(KVIK_EINVAL,
                       "kvik_io_opts: sz is %zu, set it to sizeof(struct kvik_io_opts)", opts->sz);
    if (opts->task_size)
      task = opts->task_size;
    pool = opts->pool;
  }
  if (pool ? (rc = kvik__pool_check(pool, "kvik_io_opts.pool")) != 0
           : (rc = kvik_pool_default(&pool)) != 0)
    return rc;
  kvik_future *fut;
  if ((rc = kvik__future_new(&fut)) != 0)
    return rc;
  if (size == 0) { /* no request */
    kvik__future_complete(fut, 0, NULL);
    *out = fut;
    return 0;
  }
  struct pread_op *op = kvik__calloc(1, sizeof *op);
  if (!op) {
    rc = kvik__err(-ENOMEM, "kvik_remote_pread %s: out of memory", r->ep.shown);
    kvik__future_complete(fut, rc, kvik_last_error());
    kvik_future_wait(fut);
    return kvik__err(-ENOMEM, "kvik_remote_pread %s: out of memory", r->ep.shown);
  }
  op->r = r;
  atomic_fetch_add(&r->h.refs, 1);
  op->buf = buf;
  op->off = (uint64_t)offset;
  op->size = size;
  op->task = task;
  op->nranges = (size - 1) / task + 1;
  op->pool = pool;
  op->fut = fut;
  pthread_mutex_init(&op->lock, NULL);
  int nthreads = kvik_pool_nthreads(pool);
  size_t cap = r->max_parallel;
  if (cap == 0)
    cap = nthreads > 0 ? KVIK_MAX((size_t)nthreads - (size_t)nthreads / 4, 1) : 1;
  size_t items = KVIK_MIN(cap, op->nranges);
  atomic_store(&op->items, (int)items);
  size_t queued = 0;
  for (; queued < items; queued++)
    if ((rc = kvik__pool_submit(pool, pread_item, op)) != 0)
      break;
  if (queued == 0) {
    /* Nothing runs: finish the operation here. */
    char msg[KVIK_ERRMSG_MAX];
    snprintf(msg, sizeof msg, "%s", kvik_last_error());
    kvik__future_complete(fut, rc, msg);
    kvik_future_wait(fut);
    atomic_store(&op->items, 1);
    op_unref(op);
    return kvik__err_set(rc, msg);
  }
  for (size_t i = queued; i < items; i++)
    op_unref(op); /* items that could not be queued give their reference back */
  *out = fut;
  return 0;
}

int kvik_remote_pread(kvik_remote *r, void *buf, size_t size, int64_t offset,
                      const struct kvik_io_opts *opts, kvik_future **out) {
  int rc = remote_get(r, "kvik_remote_pread");
  if (rc)
    return rc;
  if (!out)
    rc = kvik__err(KVIK_EINVAL,
                   "kvik_remote_pread %s: cannot read %zu bytes at offset %lld: out is NULL",
                   r->ep.shown, size, (long long)offset);
  else
    rc = remote_pread(r, buf, size, offset, opts, out);
  remote_unref(r);
  return rc;
}
