/* The HTTP engine: one request over libcurl, with retries that restart the byte range from its
 * first byte, checks that the server answered the range that was asked for, and secrets kept
 * out of every message and log line.
 *
 * Connections are reused: easy handles go back to a small process-wide list after each request
 * (curl_easy_reset keeps a handle's live connections), so a worker's next range usually goes
 * out on a connection that is already open. */
#include "remote/remote.h"

#ifdef KVIK_HAVE_CURL

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- global state ------------------------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc; /* written once under init_once */
static char init_msg[256];
static bool have_sigv4;
static char system_ca[256]; /* a system CA bundle when libcurl's default is missing, else "" */

static _Atomic unsigned backoff_ms = 500;
static _Atomic uint64_t request_count;

void kvik__remote_set_backoff_ms(unsigned ms) { atomic_store(&backoff_ms, ms); }
uint64_t kvik__remote_request_count(void) { return atomic_load(&request_count); }

static bool file_exists(const char *p) { return p && *p && access(p, R_OK) == 0; }

static void do_init(void) {
  CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (c != CURLE_OK) {
    init_rc = KVIK_EINTERNAL;
    snprintf(init_msg, sizeof init_msg, "curl_global_init failed: %s", curl_easy_strerror(c));
    return;
  }
  curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  have_sigv4 = v && v->version_num >= 0x074b00; /* CURLOPT_AWS_SIGV4 came in 7.75.0 */
  /* Where libcurl's built-in CA bundle is missing (a libcurl built for another distribution),
   * fall back to the usual system locations. */
  bool builtin_ok = false;
#if LIBCURL_VERSION_NUM >= 0x075400
  CURL *h = curl_easy_init();
  if (h) {
    char *cainfo = NULL, *capath = NULL;
    curl_easy_getinfo(h, CURLINFO_CAINFO, &cainfo);
    curl_easy_getinfo(h, CURLINFO_CAPATH, &capath);
    builtin_ok = file_exists(cainfo) || file_exists(capath);
    curl_easy_cleanup(h);
  }
#endif
  if (!builtin_ok) {
    static const char *const bundles[] = {
        "/etc/ssl/certs/ca-certificates.crt",                /* Debian, Ubuntu, Arch, Gentoo */
        "/etc/pki/tls/certs/ca-bundle.crt",                  /* Fedora, RHEL 6               */
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", /* RHEL 7+, CentOS              */
        "/etc/ssl/ca-bundle.pem",                            /* openSUSE                      */
        "/etc/ssl/cert.pem",                                 /* Alpine, macOS-like           */
        NULL};
    for (const char *const *b = bundles; *b; b++)
      if (file_exists(*b)) {
        snprintf(system_ca, sizeof system_ca, "%s", *b);
        break;
      }
  }
}

int kvik__http_init(void) {
  pthread_once(&init_once, do_init);
  return init_rc ? kvik__err_set(init_rc, init_msg) : 0;
}

bool kvik__http_has_sigv4(void) { return kvik__http_init() == 0 && have_sigv4; }

/* Idle easy handles, reused for their open connections. After fork() the child must not share
 * the parent's sockets, so a change of pid drops the list (the handles are leaked, not cleaned
 * up: cleanup could send TLS close-notify on the parent's connections). */
#define IDLE_MAX 128
static pthread_mutex_t idle_lock = PTHREAD_MUTEX_INITIALIZER; /* guards idle, nidle, idle_pid */
static CURL *idle[IDLE_MAX];
static size_t nidle;
static pid_t idle_pid;

static CURL *handle_get(void) {
  CURL *h = NULL;
  pid_t pid = getpid();
  pthread_mutex_lock(&idle_lock);
  if (idle_pid != pid) {
    nidle = 0;
    idle_pid = pid;
  }
  if (nidle > 0)
    h = idle[--nidle];
  pthread_mutex_unlock(&idle_lock);
  if (h)
    curl_easy_reset(h);
  else
    h = curl_easy_init();
  return h;
}

static void handle_put(CURL *h) {
  pthread_mutex_lock(&idle_lock);
  if (idle_pid == getpid() && nidle < IDLE_MAX) {
    idle[nidle++] = h;
    h = NULL;
  }
  pthread_mutex_unlock(&idle_lock);
  if (h)
    curl_easy_cleanup(h);
}

/* ---- one transfer ------------------------------------------------------------------------- */

enum { FAIL_NONE = 0, FAIL_RANGE, FAIL_SINK };

struct xfer {
  struct kvik__http_req *rq;
  CURL *h;
  long status;     /* from the latest status line */
  char reason[64]; /* its reason phrase */
  char cr[128];    /* latest Content-Range value */
  size_t cr_len;
  bool cr_seen;
  char cl[40];  /* latest Content-Length value, blanks trimmed ("" if none) */
  bool checked; /* the first body bytes of the final response were checked */
  bool to_sink;
  bool probe_done; /* a size probe got its answer and ended the transfer */
  int fail;        /* FAIL_*: why a callback aborted the transfer */
  int sink_rc;
  char fail_msg[384];
  uint64_t got; /* body bytes of this attempt */
};

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud) {
  struct xfer *x = ud;
  size_t n = size * nmemb;
  if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
    /* A new response (after a redirect or a 100 Continue): forget the previous one. */
    x->cr_seen = false;
    x->cr_len = 0;
    x->cl[0] = '\0';
    x->reason[0] = '\0';
    const char *sp = memchr(data, ' ', n);
    if (sp) {
      x->status = 0;
      const char *p = sp + 1;
      while (p < data + n && *p >= '0' && *p <= '9')
        x->status = x->status * 10 + (*p++ - '0');
      while (p < data + n && *p == ' ')
        p++;
      size_t r = 0;
      while (p < data + n && *p != '\r' && *p != '\n' && r + 1 < sizeof x->reason)
        x->reason[r++] = *p++;
      x->reason[r] = '\0';
    }
  } else if (n > 15 && strncasecmp(data, "content-length:", 15) == 0) {
    const char *v = data + 15, *e = data + n;
    while (v < e && (*v == ' ' || *v == '\t'))
      v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
      e--;
    snprintf(x->cl, sizeof x->cl, "%.*s", (int)KVIK_MIN((size_t)(e - v), sizeof x->cl - 1), v);
  } else if (n > 14 && strncasecmp(data, "content-range:", 14) == 0) {
    size_t v = n - 14;
    if (v >= sizeof x->cr)
      v = sizeof x->cr - 1;
    memcpy(x->cr, data + 14, v);
    x->cr_len = v;
    x->cr[v] = '\0';
    x->cr_seen = true;
  }
  return n;
}

/* Checks the final response before its first body byte goes anywhere. Returns false (with
 * x->fail set) when the body must not be used. */
static bool check_response(struct xfer *x) {
  struct kvik__http_req *rq = x->rq;
  long st = 0;
  curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &st);
  x->status = st;
  bool ok = st >= 200 && st < 300;
  x->to_sink = ok && rq->sink;
  if (!ok || !rq->ranged)
    return true;
  unsigned long long want_first = rq->off, want_last = rq->off + rq->len - 1;
  if (st == 206) {
    uint64_t f = 0, l = 0, t = 0;
    int m = x->cr_seen ? kvik__parse_content_range(x->cr, x->cr_len, &f, &l, &t) : -1;
    if (m < 0 || !(m & 1)) {
      x->fail = FAIL_RANGE;
      snprintf(x->fail_msg, sizeof x->fail_msg,
               "HTTP 206 without a valid Content-Range (\"%.60s\")", x->cr_seen ? x->cr : "");
      return false;
    }
    if (!rq->probe && (f != want_first || l != want_last)) {
      x->fail = FAIL_RANGE;
      snprintf(x->fail_msg, sizeof x->fail_msg,
               "server sent bytes %llu-%llu, not the range %llu-%llu that was asked for",
               (unsigned long long)f, (unsigned long long)l, want_first, want_last);
      return false;
    }
  } else if (rq->probe) {
    x->probe_done = true; /* 200: the whole object is coming; its Content-Length is the size */
    return false;
  } else if (rq->off != 0) {
    x->fail = FAIL_RANGE;
    snprintf(x->fail_msg, sizeof x->fail_msg,
             "server ignored the Range header (HTTP %ld instead of 206 for bytes %llu-%llu)", st,
             want_first, want_last);
    return false;
  }
  return true;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud) {
  struct xfer *x = ud;
  struct kvik__http_req *rq = x->rq;
  size_t n = size * nmemb;
  if (!x->checked) {
    x->checked = true;
    if (!check_response(x))
      return 0; /* aborts the transfer: not one byte of this body is used */
  }
  if (x->to_sink) {
    if (x->got + n > rq->len) {
      x->fail = FAIL_RANGE;
      snprintf(x->fail_msg, sizeof x->fail_msg,
               "server sent more than the %llu bytes asked for (HTTP %ld%s); nothing was "
               "written past the buffer",
               (unsigned long long)rq->len, x->status,
               x->status == 200 && rq->ranged ? ": it ignores the Range header" : "");
      return 0;
    }
    int rc = rq->sink->write(rq->sink->ctx, data, n, x->got);
    if (rc) {
      x->fail = FAIL_SINK;
      x->sink_rc = rc;
      snprintf(x->fail_msg, sizeof x->fail_msg, "%s", kvik_last_error());
      return 0;
    }
  } else if (rq->body_len + 1 < sizeof rq->body) {
    size_t k = KVIK_MIN(n, sizeof rq->body - 1 - rq->body_len);
    memcpy(rq->body + rq->body_len, data, k);
    rq->body_len += k;
    rq->body[rq->body_len] = '\0';
  }
  x->got += n;
  return n;
}

/* libcurl calls this often during a transfer and about once a second while it waits; a
 * non-zero return aborts the transfer (CURLE_ABORTED_BY_CALLBACK). */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  (void)dltotal;
  (void)dlnow;
  (void)ultotal;
  (void)ulnow;
  const struct xfer *x = ud;
  return atomic_load_explicit(x->rq->stop, memory_order_relaxed) != 0;
}

static bool stopped(const struct kvik__http_req *rq) {
  return rq->stop && atomic_load_explicit(rq->stop, memory_order_relaxed) != 0;
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud) {
  (void)h;
  (void)ud;
  const char *tag = type == CURLINFO_TEXT         ? "*"
                    : type == CURLINFO_HEADER_IN  ? "<"
                    : type == CURLINFO_HEADER_OUT ? ">"
                                                  : NULL;
  if (!tag)
    return 0; /* bodies and TLS data are never logged */
  size_t i = 0;
  while (i < size) {
    size_t e = i;
    while (e < size && data[e] != '\n')
      e++;
    size_t len = e - i;
    if (len > 0 && data[i + len - 1] == '\r')
      len--;
    if (len > 0) {
      char line[1024];
      kvik__redact(data + i, len, line, sizeof line);
      kvik__log(KVIK_LOG_DEBUG, "curl %s %s", tag, line);
    }
    i = e + 1;
  }
  return 0;
}

/* Copies the text between <tag> and </tag> of an S3 error body. */
static bool xml_field(const char *body, const char *tag, char *out, size_t len) {
  char open[40], close[40];
  snprintf(open, sizeof open, "<%s>", tag);
  snprintf(close, sizeof close, "</%s>", tag);
  const char *a = strstr(body, open);
  if (!a)
    return false;
  a += strlen(open);
  const char *b = strstr(a, close);
  if (!b)
    return false;
  snprintf(out, len, "%.*s", (int)KVIK_MIN((size_t)(b - a), len - 1), a);
  return true;
}

/* Copies the string value of "key" in a JSON body. */
static bool json_str(const char *body, const char *key, char *out, size_t len) {
  char pat[40];
  snprintf(pat, sizeof pat, "\"%s\"", key);
  const char *a = strstr(body, pat);
  if (!a)
    return false;
  a += strlen(pat);
  while (*a == ' ' || *a == ':')
    a++;
  if (*a != '"')
    return false;
  a++;
  size_t j = 0;
  while (*a && *a != '"' && j + 1 < len) {
    if (*a == '\\' && a[1])
      a++;
    out[j++] = *a++;
  }
  out[j] = '\0';
  return true;
}

/* Describes an error answer: "HTTP 404 Not Found (S3 NoSuchKey: The specified key does not
 * exist.)". The body's text is passed through redaction too. */
static void describe_status(const struct kvik__http_req *rq, const struct xfer *x, char *out,
                            size_t len) {
  char code[96] = "", msg[256] = "", detail[400] = "";
  if (xml_field(rq->body, "Code", code, sizeof code)) {
    xml_field(rq->body, "Message", msg, sizeof msg);
    snprintf(detail, sizeof detail, " (S3 %s%s%s)", code, msg[0] ? ": " : "", msg);
  } else if (json_str(rq->body, "exception", code, sizeof code)) {
    json_str(rq->body, "message", msg, sizeof msg);
    snprintf(detail, sizeof detail, " (WebHDFS %s%s%s)", code, msg[0] ? ": " : "", msg);
  }
  char raw[800];
  snprintf(raw, sizeof raw, "HTTP %ld%s%s%s", x->status, x->reason[0] ? " " : "", x->reason,
           detail);
  kvik__redact(raw, strlen(raw), out, len);
}

/* Whether a failed transfer failed on a response header larger than libcurl takes: 1 when
 * libcurl says so (CURLE_TOO_LARGE, libcurl 8.6 and later), 2 when it may have (earlier
 * versions report CURLE_OUT_OF_MEMORY, as for a failed allocation, with no detail: the status
 * line arrived and no body did), 0 otherwise. */
static int header_fault(CURLcode c, const struct xfer *x) {
#if LIBCURL_VERSION_NUM >= 0x080600
  if (c == CURLE_TOO_LARGE)
    return 1;
#endif
  return c == CURLE_OUT_OF_MEMORY && x->status != 0 && !x->checked ? 2 : 0;
}

/* Whether an allocation of the size libcurl needs for a header over its limit succeeds. */
static bool memory_left(void) {
  void *p = kvik__malloc(2 * CURL_MAX_HTTP_HEADER);
  kvik__free(p);
  return p != NULL;
}

static bool retry_status(long st) {
  int codes[64];
  size_t n = kvik__cfg_http_codes(codes, 64);
  for (size_t i = 0; i < n && i < 64; i++)
    if (codes[i] == st)
      return true;
  return false;
}

static bool retry_curl(CURLcode c) {
  switch (c) {
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_PARTIAL_FILE:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM: return true;
  default: return false;
  }
}

/* Sleeps ms milliseconds, in steps of at most 20 ms so that a stop request ends the wait. */
static void sleep_ms(uint64_t ms, const struct kvik__http_req *rq) {
  while (ms > 0 && !stopped(rq)) {
    uint64_t step = KVIK_MIN(ms, 20);
    struct timespec ts = {0, (long)step * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    ms -= step;
  }
}

/* Appends line to *l; false (and *l freed) when memory runs out. */
static bool add_header(struct curl_slist **l, const char *line) {
  struct curl_slist *n = curl_slist_append(*l, line);
  if (!n)
    curl_slist_free_all(*l);
  *l = n;
  return n != NULL;
}

static int setup(CURL *h, struct kvik__http_req *rq, struct xfer *x, struct curl_slist **hdrs,
                 const char *shown, const char *what, char *errbuf) {
  const struct kvik__endpoint *ep = rq->ep;
  CURLcode c = CURLE_OK;
  const char *failed_opt = NULL; /* the option that failed, for the message */
#define SET(opt, val)                                                                              \
  do {                                                                                             \
    if (c == CURLE_OK && (c = curl_easy_setopt(h, opt, val)) != CURLE_OK)                          \
      failed_opt = #opt;                                                                           \
  } while (0)
  SET(CURLOPT_URL, rq->url ? rq->url : ep->url);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_ERRORBUFFER, errbuf);
  SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  SET(CURLOPT_TIMEOUT_MS, (long)(kvik__cfg_u64(KVIK_CFG_HTTP_TIMEOUT) * 1000));
  SET(CURLOPT_USERAGENT, "kvik/" KVIK_VERSION_STRING);
  SET(CURLOPT_SSL_VERIFYPEER, 1L);
  SET(CURLOPT_SSL_VERIFYHOST, 2L);
  if (ep->ca_file)
    SET(CURLOPT_CAINFO, ep->ca_file);
  else if (system_ca[0])
    SET(CURLOPT_CAINFO, system_ca);
  if (ep->ca_dir)
    SET(CURLOPT_CAPATH, ep->ca_dir);
#if LIBCURL_VERSION_NUM >= 0x075500
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  SET(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (ep->follow) {
    SET(CURLOPT_FOLLOWLOCATION, 1L);
    SET(CURLOPT_MAXREDIRS, 10L);
  }
  SET(CURLOPT_BUFFERSIZE, 512L * 1024);
  SET(CURLOPT_HEADERFUNCTION, on_header);
  SET(CURLOPT_HEADERDATA, x);
  SET(CURLOPT_WRITEFUNCTION, on_body);
  SET(CURLOPT_WRITEDATA, x);
  if (rq->stop) {
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_XFERINFODATA, x);
    SET(CURLOPT_NOPROGRESS, 0L);
  }
  if (rq->head)
    SET(CURLOPT_NOBODY, 1L);
  /* The Range line is a header of our own rather than CURLOPT_RANGE: libcurl 7.88 sends the
   * request without its Range line when building that line runs out of memory (the answer
   * then looks like a server that ignores Range), while a custom header that cannot be added
   * fails the request with CURLE_OUT_OF_MEMORY. */
  struct curl_slist *l = NULL;
  bool mem = true;
  if (rq->ranged) {
    char range[80];
    snprintf(range, sizeof range, "Range: bytes=%llu-%llu", (unsigned long long)rq->off,
             (unsigned long long)(rq->off + rq->len - 1));
    mem = add_header(&l, range);
  }
  if (ep->sigv4) {
    SET(CURLOPT_AWS_SIGV4, ep->sigv4);
    SET(CURLOPT_USERNAME, ep->access_key);
    SET(CURLOPT_PASSWORD, ep->secret_key);
    /* S3 wants the payload hash in a header; libcurl signs it as given. GET and HEAD have an
     * empty payload, whose SHA-256 this is. */
    mem = mem && add_header(&l, "x-amz-content-sha256: "
                                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    if (ep->token_header)
      mem = mem && add_header(&l, ep->token_header);
  }
  *hdrs = l;
  if (!mem)
    return kvik__err(-ENOMEM, "remote %s: %s: out of memory building the request headers", shown,
                     what);
  if (l)
    SET(CURLOPT_HTTPHEADER, l);
  if (ep->verbose) {
    SET(CURLOPT_VERBOSE, 1L);
    SET(CURLOPT_DEBUGFUNCTION, on_debug);
  }
#undef SET
  if (c == CURLE_OUT_OF_MEMORY)
    return kvik__err(-ENOMEM, "remote %s: %s: out of memory in curl_easy_setopt(%s)", shown, what,
                     failed_opt);
  if (c != CURLE_OK)
    return kvik__err(KVIK_EINTERNAL, "remote %s: %s: curl_easy_setopt(%s) failed: %s", shown, what,
                     failed_opt, curl_easy_strerror(c));
  return 0;
}

int kvik__http_perform(struct kvik__http_req *rq) {
  int rc = kvik__http_init();
  if (rc)
    return rc;
  const struct kvik__endpoint *ep = rq->ep;
  unsigned max_attempts = (unsigned)kvik__cfg_u64(KVIK_CFG_HTTP_MAX_ATTEMPTS);
  if (max_attempts < 1)
    max_attempts = 1;
  char shown[600];
  if (rq->url)
    kvik__redact_url(rq->url, strlen(rq->url), shown, sizeof shown);
  else
    snprintf(shown, sizeof shown, "%s", ep->shown);
  const char *what = rq->what ? rq->what : (rq->head ? "HEAD" : "GET");

  CURL *h = handle_get();
  if (!h)
    return kvik__err(-ENOMEM, "remote %s: %s: cannot create a curl handle", shown, what);
  uint64_t delay = atomic_load(&backoff_ms);
  uint64_t max_delay = delay * 16;
  bool header_oom_before = false; /* an attempt ran out of memory reading the header */
  for (unsigned attempt = 1;; attempt++) {
    bool again_now = false; /* repeat this attempt without waiting and without counting it */
    struct xfer x;
    memset(&x, 0, sizeof x);
    x.rq = rq;
    x.h = h;
    rq->status = 0;
    rq->content_length = -1;
    rq->cr_mask = 0;
    rq->received = 0;
    rq->body_len = 0;
    rq->body[0] = '\0';
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    if (attempt > 1)
      curl_easy_reset(h);
    rc = setup(h, rq, &x, &hdrs, shown, what, errbuf);
    if (rc) {
      curl_slist_free_all(hdrs);
      handle_put(h);
      return rc;
    }
    if (stopped(rq)) {
      curl_slist_free_all(hdrs);
      handle_put(h);
      return kvik__err(KVIK_ECANCELED, "remote %s: %s: not started: the operation has failed",
                       shown, what);
    }
    atomic_fetch_add(&request_count, 1);
    CURLcode c = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    if (!x.checked)
      x.status = st;
    curl_off_t cl = -1;
    curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    rq->status = st;
    rq->content_length = cl;
    snprintf(rq->cl_text, sizeof rq->cl_text, "%s", x.cl);
    rq->received = x.got;
    if (x.cr_seen)
      rq->cr_mask =
          kvik__parse_content_range(x.cr, x.cr_len, &rq->cr_first, &rq->cr_last, &rq->cr_total);
    if (x.probe_done && c == CURLE_WRITE_ERROR)
      c = CURLE_OK;

    /* Decide: success, a failure that another attempt may fix, or a final failure. */
    char why[700] = "";
    int code = 0;
    bool retry = false;
    if (c == CURLE_ABORTED_BY_CALLBACK && stopped(rq)) {
      curl_easy_cleanup(h);
      return kvik__err(KVIK_ECANCELED, "remote %s: %s: aborted: the operation has failed", shown,
                       what);
    } else if (x.fail == FAIL_SINK) {
      handle_put(h);
      return kvik__err_set(x.sink_rc, x.fail_msg);
    } else if (x.fail == FAIL_RANGE) {
      code = KVIK_EHTTP;
      snprintf(why, sizeof why, "%s", x.fail_msg);
    } else if (c != CURLE_OK) {
      char eb[CURL_ERROR_SIZE + 8];
      kvik__redact(errbuf, strlen(errbuf), eb, sizeof eb);
      snprintf(why, sizeof why, "%s%s%s%s", curl_easy_strerror(c), eb[0] ? " (" : "", eb,
               eb[0] ? ")" : "");
      code = c == CURLE_OPERATION_TIMEDOUT ? KVIK_ETIMEDOUT
             : c == CURLE_OUT_OF_MEMORY    ? -ENOMEM
                                           : KVIK_EHTTP;
      retry = retry_curl(c);
      int hf = header_fault(c, &x);
      if (hf == 2 && !header_oom_before) {
        /* Once more, at once: a header over libcurl's limit fails the same way again, a
         * passing shortage of memory most likely does not. */
        header_oom_before = true;
        again_now = true;
      } else if (hf == 1 || (hf == 2 && memory_left())) {
        snprintf(why, sizeof why,
                 "the response header is too large for libcurl (CURL_MAX_HTTP_HEADER, "
                 "%d KiB; libcurl says: %s%s%s)",
                 CURL_MAX_HTTP_HEADER / 1024, curl_easy_strerror(c), eb[0] ? ": " : "", eb);
        code = KVIK_EHTTP;
        retry = false;
      }
    } else if (st < 200 || st >= 300) {
      describe_status(rq, &x, why, sizeof why);
      code = KVIK_EHTTP;
      retry = retry_status(st);
    } else if ((rq->sink && !rq->head && !x.probe_done) && x.got != rq->len) {
      snprintf(why, sizeof why,
               "the body ended after %llu of the %llu bytes asked for (HTTP %ld, Content-Length "
               "%lld)",
               (unsigned long long)x.got, (unsigned long long)rq->len, st, (long long)cl);
      code = KVIK_EHTTP;
      retry = true;
    } else {
      if (rq->sink && rq->sink->finish && !rq->head) {
        int frc = rq->sink->finish(rq->sink->ctx, x.got);
        if (frc) {
          handle_put(h);
          return frc;
        }
      }
      handle_put(h);
      return 0;
    }
    if (again_now) {
      kvik__log(KVIK_LOG_DEBUG,
                "remote %s: %s: %s while reading the response header; trying once more to tell "
                "a header too large for libcurl from a shortage of memory",
                shown, what, why);
      attempt--;
    } else if (!retry || attempt >= max_attempts) {
      if (retry)
        rc = kvik__err(code,
                       "remote %s: %s: %s; gave up after %u attempts "
                       "(KVIKIO_HTTP_MAX_ATTEMPTS=%u)",
                       shown, what, why, attempt, max_attempts);
      else
        rc = kvik__err(code, "remote %s: %s: %s", shown, what, why);
      /* A failed transfer may leave its connection in any state: do not reuse it. */
      curl_easy_cleanup(h);
      return rc;
    }
    if (!again_now)
      kvik__log(KVIK_LOG_WARN, "remote %s: %s: %s; attempt %u of %u, retrying in %llu ms", shown,
                what, why, attempt, max_attempts, (unsigned long long)delay);
    if (rq->sink && rq->sink->reset)
      rq->sink->reset(rq->sink->ctx);
    /* A connection that failed mid-transfer is not trusted again. */
    curl_easy_cleanup(h);
    h = curl_easy_init();
    if (!h)
      return kvik__err(-ENOMEM, "remote %s: %s: cannot create a curl handle", shown, what);
    if (!again_now) {
      sleep_ms(delay, rq);
      delay = KVIK_MIN(delay * 2, max_delay);
    }
  }
}

#else /* !KVIK_HAVE_CURL */

int kvik__http_init(void) {
  return kvik__err(KVIK_EUNSUPPORTED,
                   "remote I/O is not built into this kvik (configure with libcurl installed, "
                   "e.g. libcurl4-openssl-dev, and -DKVIK_REMOTE=ON)");
}
bool kvik__http_has_sigv4(void) { return false; }
int kvik__http_perform(struct kvik__http_req *rq) {
  (void)rq;
  return kvik__http_init();
}
void kvik__remote_set_backoff_ms(unsigned ms) { (void)ms; }
uint64_t kvik__remote_request_count(void) { return 0; }

#endif
