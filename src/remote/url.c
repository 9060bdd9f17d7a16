/* URL parsing, endpoint classification, S3 key encoding, redaction of secrets, and the small
 * parsers for HTTP answers (Content-Range, WebHDFS JSON). Plain C, no libcurl: builds without
 * KVIK_REMOTE too, so kvik_remote_infer_type and the tests of these parsers work everywhere. */
#include "remote/remote.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool ieq(const char *a, size_t alen, const char *b) {
  return alen == strlen(b) && strncasecmp(a, b, alen) == 0;
}

static bool is_unreserved(unsigned char c) {
  return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = (unsigned char)tolower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* ---- parsing ------------------------------------------------------------------------------ */

int kvik__url_parse(const char *url, struct kvik__url *u) {
  memset(u, 0, sizeof *u);
  if (!url)
    return kvik__err(KVIK_EINVAL, "URL is NULL");
  for (const char *p = url; *p; p++)
    if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
      return kvik__err(KVIK_EINVAL,
                       "URL has a space or control character at byte %zu "
                       "(percent-encode it)",
                       (size_t)(p - url));
  const char *sep = strstr(url, "://");
  if (!sep || sep == url)
    return kvik__err(KVIK_EINVAL, "URL has no scheme (expected http://, https:// or s3://)");
  if (!isalpha((unsigned char)url[0]))
    return kvik__err(KVIK_EINVAL, "URL scheme must start with a letter");
  for (const char *p = url; p < sep; p++)
    if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.')
      return kvik__err(KVIK_EINVAL, "URL scheme has an invalid character");
  u->scheme = url;
  u->scheme_len = (size_t)(sep - url);

  const char *auth = sep + 3;
  size_t auth_len = strcspn(auth, "/?#");
  const char *rest = auth + auth_len;
  const char *at = NULL;
  for (const char *p = auth; p < rest; p++)
    if (*p == '@')
      at = p;
  const char *host = auth;
  if (at) {
    u->has_user = true;
    u->user = auth;
    u->user_len = (size_t)(at - auth);
    host = at + 1;
  }
  const char *host_end = rest;
  if (*host == '[') {
    const char *close = memchr(host, ']', (size_t)(rest - host));
    if (!close)
      return kvik__err(KVIK_EINVAL, "URL has an unterminated IPv6 address");
    host_end = close + 1;
    if (host_end < rest && *host_end != ':')
      return kvik__err(KVIK_EINVAL, "URL has text after the IPv6 address");
  } else {
    const char *colon = memchr(host, ':', (size_t)(rest - host));
    if (colon)
      host_end = colon;
  }
  u->host = host;
  u->host_len = (size_t)(host_end - host);
  if (u->host_len == 0)
    return kvik__err(KVIK_EINVAL, "URL has no host");
  if (host_end < rest) { /* ":port" */
    u->port = host_end + 1;
    u->port_len = (size_t)(rest - u->port);
    if (u->port_len > 0) {
      unsigned long v = 0;
      for (size_t i = 0; i < u->port_len; i++) {
        if (!isdigit((unsigned char)u->port[i]) || u->port_len > 5)
          return kvik__err(KVIK_EINVAL, "URL has an invalid port");
        v = v * 10 + (unsigned long)(u->port[i] - '0');
      }
      if (v < 1 || v > 65535)
        return kvik__err(KVIK_EINVAL, "URL port %lu is out of range", v);
    }
  }
  if (*rest == '/') {
    u->path = rest;
    u->path_len = strcspn(rest, "?#");
    rest += u->path_len;
  }
  if (*rest == '?') {
    u->has_query = true;
    u->query = rest + 1;
    u->query_len = strcspn(u->query, "#");
  }
  return 0;
}

/* Whether the query has a parameter named name (case-insensitive). */
static bool query_has(const struct kvik__url *u, const char *name) {
  if (!u->has_query || !u->query)
    return false;
  const char *q = u->query, *end = u->query + u->query_len;
  size_t n = strlen(name);
  while (q && q < end) {
    const char *amp = memchr(q, '&', (size_t)(end - q));
    const char *pend = amp ? amp : end;
    size_t klen = strcspn(q, "=&#");
    if (q + klen > pend)
      klen = (size_t)(pend - q);
    if (klen == n && strncasecmp(q, name, n) == 0)
      return true;
    q = amp ? amp + 1 : end;
  }
  return false;
}

static bool scheme_is(const struct kvik__url *u, const char *s) {
  return ieq(u->scheme, u->scheme_len, s);
}

static bool is_http(const struct kvik__url *u) {
  return scheme_is(u, "http") || scheme_is(u, "https");
}

/* "s3://bucket/key": the key is everything after the bucket's slash, raw (it may hold '?',
 * '#' or spaces, as the AWS tools allow). */
static bool parse_s3_scheme(const char *url, struct kvik__s3_parts *p, char *why, size_t why_len) {
  memset(p, 0, sizeof *p);
  if (strncasecmp(url, "s3://", 5) != 0)
    return false;
  const char *b = url + 5;
  size_t blen = strcspn(b, "/");
  for (const char *c = url; *c; c++)
    if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f) {
      if (why)
        snprintf(why, why_len, "S3 URL has a control character");
      return false;
    }
  if (blen == 0) {
    if (why)
      snprintf(why, why_len, "S3 URL has no bucket (expected s3://bucket/key)");
    return false;
  }
  if (b[blen] != '/' || b[blen + 1] == '\0') {
    if (why)
      snprintf(why, why_len, "S3 URL has no object key (expected s3://bucket/key)");
    return false;
  }
  if (memchr(b, '@', blen) || memchr(b, ':', blen) || memchr(b, ' ', blen)) {
    if (why)
      snprintf(why, why_len, "S3 bucket name is invalid");
    return false;
  }
  p->bucket = b;
  p->bucket_len = blen;
  p->key = b + blen + 1;
  p->key_len = strlen(p->key);
  return true;
}

/* Splits "/bucket/key..." into bucket and key; false unless both are non-empty. */
static bool split_path_style(const struct kvik__url *u, struct kvik__s3_parts *p) {
  if (u->path_len < 4 || u->path[0] != '/')
    return false;
  const char *b = u->path + 1;
  const char *slash = memchr(b, '/', u->path_len - 1);
  if (!slash || slash == b)
    return false;
  size_t key_len = u->path_len - (size_t)(slash + 1 - u->path);
  if (key_len == 0)
    return false;
  p->bucket = b;
  p->bucket_len = (size_t)(slash - b);
  p->key = slash + 1;
  p->key_len = key_len;
  return true;
}

static bool has_dot(const char *s, size_t n) { return memchr(s, '.', n) != NULL; }

bool kvik__s3_aws_url(const struct kvik__url *u, struct kvik__s3_parts *p) {
  memset(p, 0, sizeof *p);
  static const char suffix[] = ".amazonaws.com";
  const size_t slen = sizeof suffix - 1;
  if (!is_http(u) || u->host_len <= slen || u->host_len >= 256)
    return false;
  char h[256];
  for (size_t i = 0; i < u->host_len; i++)
    h[i] = (char)tolower((unsigned char)u->host[i]);
  h[u->host_len] = '\0';
  size_t n = u->host_len - slen;
  if (strcmp(h + n, suffix) != 0)
    return false;
  h[n] = '\0';
  /* Path style: s3.amazonaws.com, s3.REGION.amazonaws.com, s3-REGION.amazonaws.com. */
  bool path_style = false;
  if (strcmp(h, "s3") == 0) {
    path_style = true;
  } else if ((strncmp(h, "s3.", 3) == 0 || strncmp(h, "s3-", 3) == 0) && n > 3 &&
             !has_dot(h + 3, n - 3)) {
    path_style = true;
    p->region = u->host + 3;
    p->region_len = n - 3;
  }
  if (path_style)
    return split_path_style(u, p);
  /* Virtual host: BUCKET.s3.amazonaws.com, BUCKET.s3.REGION.amazonaws.com,
   * BUCKET.s3-REGION.amazonaws.com. The bucket may hold dots. */
  size_t blen = 0;
  if (n > 3 && strcmp(h + n - 3, ".s3") == 0) {
    blen = n - 3;
  } else {
    for (size_t i = n; i-- > 0;) {
      if (h[i] == '.' && i + 4 <= n &&
          (strncmp(h + i, ".s3.", 4) == 0 || strncmp(h + i, ".s3-", 4) == 0)) {
        if (i > 0 && n > i + 4 && !has_dot(h + i + 4, n - i - 4)) {
          blen = i;
          p->region = u->host + i + 4;
          p->region_len = n - i - 4;
        }
        break;
      }
    }
  }
  if (blen == 0 || u->path_len < 2)
    return false;
  p->virtual_host = true;
  p->bucket = u->host;
  p->bucket_len = blen;
  p->key = u->path + 1;
  p->key_len = u->path_len - 1;
  return true;
}

static bool is_presigned(const struct kvik__url *u) {
  return query_has(u, "X-Amz-Algorithm") && query_has(u, "X-Amz-Signature");
}

bool kvik__remote_url_valid(int type, const char *url, bool explicit_type, char *why,
                            size_t why_len) {
  char dummy[8];
  if (!why) {
    why = dummy;
    why_len = sizeof dummy;
  }
  why[0] = '\0';
  if (!url) {
    snprintf(why, why_len, "URL is NULL");
    return false;
  }
  struct kvik__s3_parts s3;
  if (strncasecmp(url, "s3://", 5) == 0) {
    if (type != KVIK_REMOTE_S3 && type != KVIK_REMOTE_S3_PUBLIC) {
      snprintf(why, why_len, "s3:// URLs are for the S3 and S3_PUBLIC types");
      return false;
    }
    return parse_s3_scheme(url, &s3, why, why_len);
  }
  struct kvik__url u;
  char saved[KVIK_ERRMSG_MAX];
  snprintf(saved, sizeof saved, "%s", kvik_last_error());
  if (kvik__url_parse(url, &u) != 0) {
    snprintf(why, why_len, "%s", kvik_last_error());
    kvik__err_set(0, saved);
    return false;
  }
  if (!is_http(&u)) {
    snprintf(why, why_len, "unsupported scheme \"%.*s\" (use http, https or s3)",
             (int)KVIK_MIN(u.scheme_len, 32), u.scheme);
    return false;
  }
  switch (type) {
  case KVIK_REMOTE_S3:
  case KVIK_REMOTE_S3_PUBLIC:
    if (is_presigned(&u)) {
      snprintf(why, why_len, "URL is presigned (use S3_PRESIGNED)");
      return false;
    }
    if (kvik__s3_aws_url(&u, &s3))
      return true;
    if (explicit_type && split_path_style(&u, &s3))
      return true;
    snprintf(why, why_len,
             explicit_type ? "S3 URL needs a bucket and a key "
                             "(http://host/bucket/key)"
                           : "not an AWS S3 URL");
    return false;
  case KVIK_REMOTE_S3_PRESIGNED:
    if (is_presigned(&u) && u.path_len > 1)
      return true;
    snprintf(why, why_len, "URL has no X-Amz-Algorithm and X-Amz-Signature query parameters");
    return false;
  case KVIK_REMOTE_WEBHDFS: {
    static const char prefix[] = "/webhdfs/v1/";
    if (u.path_len > sizeof prefix - 1 && strncmp(u.path, prefix, sizeof prefix - 1) == 0)
      return true;
    snprintf(why, why_len, "WebHDFS URL path must start with /webhdfs/v1/ and name a file");
    return false;
  }
  case KVIK_REMOTE_HTTP:
    if (u.path_len > 1)
      return true;
    snprintf(why, why_len, "URL has no path to a file");
    return false;
  default: snprintf(why, why_len, "unknown endpoint type %d", type); return false;
  }
}

int kvik__remote_infer(const char *url, unsigned allow, bool have_credentials) {
  static const int order[] = {KVIK_REMOTE_S3, KVIK_REMOTE_S3_PUBLIC, KVIK_REMOTE_S3_PRESIGNED,
                              KVIK_REMOTE_WEBHDFS, KVIK_REMOTE_HTTP};
  if (!url)
    return kvik__err(KVIK_EINVAL, "remote URL is NULL");
  if (allow == 0)
    allow = ~0u;
  char shown[512];
  kvik__redact_url(url, strlen(url), shown, sizeof shown);
  char why[256] = "", first_why[256] = "";
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
    int t = order[i];
    if (!(allow & KVIK_REMOTE_ALLOW(t)))
      continue;
    if (!kvik__remote_url_valid(t, url, false, why, sizeof why)) {
      /* The reason worth showing: for s3:// the S3 type's, else the most general type's. */
      if (!first_why[0] || strncasecmp(url, "s3://", 5) != 0)
        snprintf(first_why, sizeof first_why, "%s", why);
      continue;
    }
    if (t == KVIK_REMOTE_S3 && !have_credentials) {
      if (allow & KVIK_REMOTE_ALLOW(KVIK_REMOTE_S3_PUBLIC))
        return KVIK_REMOTE_S3_PUBLIC;
      return kvik__err(KVIK_EINVAL,
                       "remote %s: S3 needs credentials: set AWS_ACCESS_KEY_ID and "
                       "AWS_SECRET_ACCESS_KEY (or pass them in kvik_remote_opts), or allow "
                       "S3_PUBLIC",
                       shown);
    }
    return t;
  }
  return kvik__err(KVIK_EINVAL, "remote %s: no allowed endpoint type accepts this URL (%s)", shown,
                   first_why[0] ? first_why : "nothing allowed");
}

/* ---- encoding ----------------------------------------------------------------------------- */

/* Percent-encodes s as AWS requires for object paths (unreserved characters and '/' stay);
 * with keep_escapes, a valid %XX already in s is kept (upper-cased) rather than encoded again. */
static char *s3_encode(const char *s, size_t len, bool keep_escapes) {
  static const char hex[] = "0123456789ABCDEF";
  char *out = kvik__malloc(len * 3 + 1);
  if (!out)
    return NULL;
  size_t j = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (keep_escapes && c == '%' && i + 2 < len && hexval((unsigned char)s[i + 1]) >= 0 &&
        hexval((unsigned char)s[i + 2]) >= 0) {
      out[j++] = '%';
      out[j++] = (char)toupper((unsigned char)s[i + 1]);
      out[j++] = (char)toupper((unsigned char)s[i + 2]);
      i += 2;
    } else if (is_unreserved(c) || c == '/') {
      out[j++] = (char)c;
    } else {
      out[j++] = '%';
      out[j++] = hex[c >> 4];
      out[j++] = hex[c & 15];
    }
  }
  out[j] = '\0';
  return out;
}

char *kvik__s3_encode_key(const char *key, size_t len) { return s3_encode(key, len, false); }

char *kvik__s3_normalize_path(const char *path, size_t len) { return s3_encode(path, len, true); }

/* ---- redaction ---------------------------------------------------------------------------- */

/* Query and fragment parameters whose values are secrets (compared without regard to case,
 * after percent-decoding the name). docs/remote.md lists them; keep the two in step. */
static const char *const secret_params[] = {"x-amz-signature",
                                            "x-amz-security-token",
                                            "x-amz-credential",
                                            "x-goog-signature",
                                            "x-goog-credential",
                                            "x-oss-signature",
                                            "awsaccesskeyid",
                                            "signature",
                                            "sig",
                                            "token",
                                            "access_token",
                                            "refresh_token",
                                            "id_token",
                                            "session_token",
                                            "security_token",
                                            "delegation",
                                            "password",
                                            "passwd",
                                            "pwd",
                                            "secret",
                                            "client_secret",
                                            "api_key",
                                            "apikey",
                                            "key",
                                            "auth",
                                            NULL};

/* Header lines whose values are secrets. */
static const char *const secret_headers[] = {"authorization",
                                             "proxy-authorization",
                                             "cookie",
                                             "set-cookie",
                                             "x-amz-security-token",
                                             "x-api-key",
                                             "x-auth-token",
                                             "x-amz-server-side-encryption-customer-key",
                                             NULL};

#define NAME_MAX_LEN 48 /* longer than every name above */

/* Whether s[0..n) is one of names, percent-decoded and compared without regard to case. */
static bool name_in(const char *s, size_t n, const char *const *names) {
  char name[NAME_MAX_LEN];
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '%' && i + 2 < n && hexval((unsigned char)s[i + 1]) >= 0 &&
        hexval((unsigned char)s[i + 2]) >= 0) {
      c = (unsigned char)(hexval((unsigned char)s[i + 1]) * 16 + hexval((unsigned char)s[i + 2]));
      i += 2;
    }
    if (k == sizeof name)
      return false;
    name[k++] = (char)tolower(c);
  }
  for (const char *const *p = names; *p; p++)
    if (strlen(*p) == k && memcmp(*p, name, k) == 0)
      return true;
  return false;
}

/* The parts of the input to hide, as sorted, disjoint, non-adjacent half-open intervals. Every
 * rule below adds an interval that starts after the position being scanned, so one pass that
 * adds intervals and drops the ones behind it sees every interval that covers a byte before
 * the byte is written. When the list is full, a new interval is merged with a neighbour: that
 * hides the bytes between them too, which is safe (more hidden, never less). */
#define SPANS_MAX 16
struct spans {
  size_t a[SPANS_MAX], b[SPANS_MAX];
  int n;
};

static void span_add(struct spans *s, size_t a, size_t b) {
  if (a >= b)
    return;
  int i = 0;
  while (i < s->n && s->b[i] < a)
    i++;
  int j = i;
  while (j < s->n && s->a[j] <= b) {
    a = KVIK_MIN(a, s->a[j]);
    b = KVIK_MAX(b, s->b[j]);
    j++;
  }
  if (j == i && s->n == SPANS_MAX) { /* full: take the neighbour in, gap and all */
    if (i > 0) {
      i--;
      a = s->a[i];
    } else {
      b = s->b[0];
    }
    j = i + 1;
  }
  /* Intervals [i, j) become the one interval [a, b). */
  int keep = s->n - j, to = i + 1;
  memmove(s->a + to, s->a + j, (size_t)keep * sizeof s->a[0]);
  memmove(s->b + to, s->b + j, (size_t)keep * sizeof s->b[0]);
  s->n = to + keep;
  s->a[i] = a;
  s->b[i] = b;
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Authority rule, for a "://" ending at s: the authority runs to the first / ? # (a URL's
 * grammar, the same in kvik__url_parse and libcurl; in free text also to a blank, which no
 * URL holds), and an '@' in it ends the user-info: kvik__url_parse takes the last '@',
 * libcurl the first (and then refuses the host). The password, after the user-info's first
 * ':', is hidden up to the last '@'; text before an '@' that comes before any ':' is user-info
 * without a password, often a token, and is hidden whole. Taking every '@' (not just the last)
 * keeps the rule monotone: text appended after the authority can hide more, never less. */
static void rule_userinfo(const char *in, size_t n, size_t s, bool text, struct spans *sp) {
  size_t colon = n, at_before = n, at_after = n;
  for (size_t e = s; e < n && in[e] && in[e] != '/' && in[e] != '?' && in[e] != '#'; e++) {
    if (text && is_blank(in[e]))
      break;
    if (in[e] == ':' && colon == n)
      colon = e;
    else if (in[e] == '@')
      *(colon == n ? &at_before : &at_after) = e;
  }
  if (at_before != n)
    span_add(sp, s, at_before);
  if (at_after != n)
    span_add(sp, colon + 1, at_after);
}

/* Parameter rule, for a name starting at s (after ? & ; #, or a blank in text): a secret name
 * followed by '=' has its value hidden, up to the next & or # (or blank, in text). */
static void rule_param(const char *in, size_t n, size_t s, bool text, struct spans *sp) {
  size_t k = s;
  while (k < n && k - s < 3 * NAME_MAX_LEN && in[k] && in[k] != '=' && in[k] != '&' &&
         in[k] != '#' && !(text && is_blank(in[k])))
    k++;
  if (k >= n || in[k] != '=' || !name_in(in + s, k - s, secret_params))
    return;
  size_t e = ++k;
  while (e < n && in[e] && in[e] != '&' && in[e] != '#' && !(text && is_blank(in[e])))
    e++;
  span_add(sp, k, e);
}

/* Header rule, for a line starting at s: "Name: value" with a secret name hides the value. */
static void rule_header(const char *in, size_t n, size_t s, struct spans *sp) {
  size_t k = s;
  while (k < n && k - s < NAME_MAX_LEN && in[k] && in[k] != ':' && !is_blank(in[k]))
    k++;
  if (k >= n || in[k] != ':' || !name_in(in + s, k - s, secret_headers))
    return;
  k++;
  while (k < n && (in[k] == ' ' || in[k] == '\t'))
    k++;
  size_t e = k;
  while (e < n && in[e] && in[e] != '\r' && in[e] != '\n')
    e++;
  span_add(sp, k, e);
}

/* Appends n bytes to out at *j (bounded by len - 1). */
static void put(char *out, size_t len, size_t *j, const char *s, size_t n) {
  for (size_t i = 0; i < n && *j + 1 < len; i++)
    out[(*j)++] = s[i];
}

/* One pass over the input: at each byte, the rules that start there add what they hide; the
 * byte is written unless an interval covers it, and each run of hidden bytes becomes "***".
 * The rules only add: a rule that matches inside what another hides (a "://" in a query, an
 * "a:b@" after a signature) can never make the other show its part. */
static void redact(const char *in, size_t n, char *out, size_t len, bool text) {
  if (!out || len == 0)
    return;
  size_t j = 0;
  struct spans sp = {.n = 0};
  bool hiding = false;
  for (size_t i = 0; in && i < n; i++) {
    char prev = i > 0 ? in[i - 1] : '\0';
    if (text && (i == 0 || prev == '\n'))
      rule_header(in, n, i, &sp);
    if (i == 0 || prev == '?' || prev == '&' || prev == ';' || prev == '#' ||
        (text && is_blank(prev)))
      rule_param(in, n, i, text, &sp);
    if (in[i] == ':' && i + 2 < n && in[i + 1] == '/' && in[i + 2] == '/')
      rule_userinfo(in, n, i + 3, text, &sp);
    int drop = 0;
    while (drop < sp.n && sp.b[drop] <= i)
      drop++;
    if (drop) {
      memmove(sp.a, sp.a + drop, (size_t)(sp.n - drop) * sizeof sp.a[0]);
      memmove(sp.b, sp.b + drop, (size_t)(sp.n - drop) * sizeof sp.b[0]);
      sp.n -= drop;
    }
    if (sp.n > 0 && sp.a[0] <= i) {
      if (!hiding)
        put(out, len, &j, "***", 3);
      hiding = true;
    } else {
      hiding = false;
      put(out, len, &j, in + i, 1);
    }
  }
  out[j] = '\0';
}

void kvik__redact(const char *in, size_t in_len, char *out, size_t len) {
  redact(in, in_len, out, len, true);
}

void kvik__redact_url(const char *in, size_t in_len, char *out, size_t len) {
  redact(in, in_len, out, len, false);
}

/* ---- answers ------------------------------------------------------------------------------ */

/* Parses digits at s[*i..n) into *v. False on no digit or overflow. */
static bool parse_digits(const char *s, size_t n, size_t *i, uint64_t *v) {
  size_t start = *i;
  uint64_t x = 0;
  while (*i < n && isdigit((unsigned char)s[*i])) {
    unsigned d = (unsigned)(s[*i] - '0');
    if (x > (UINT64_MAX - d) / 10)
      return false;
    x = x * 10 + d;
    (*i)++;
  }
  *v = x;
  return *i > start;
}

int kvik__parse_content_range(const char *v, size_t n, uint64_t *first, uint64_t *last,
                              uint64_t *total) {
  size_t i = 0;
  int mask = 0;
  if (!v)
    return -1;
  while (i < n && (v[i] == ' ' || v[i] == '\t'))
    i++;
  if (n - i < 6 || strncasecmp(v + i, "bytes", 5) != 0 || (v[i + 5] != ' ' && v[i + 5] != '\t'))
    return -1;
  i += 6;
  while (i < n && (v[i] == ' ' || v[i] == '\t'))
    i++;
  if (i < n && v[i] == '*') {
    i++;
  } else {
    if (!parse_digits(v, n, &i, first) || i >= n || v[i] != '-')
      return -1;
    i++;
    if (!parse_digits(v, n, &i, last) || *first > *last)
      return -1;
    mask |= 1;
  }
  if (i >= n || v[i] != '/')
    return -1;
  i++;
  if (i < n && v[i] == '*') {
    i++;
  } else {
    if (!parse_digits(v, n, &i, total))
      return -1;
    mask |= 2;
  }
  while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == '\r' || v[i] == '\n'))
    i++;
  if (i != n || mask == 0)
    return -1;
  if (mask == 3 && *last >= *total)
    return -1;
  return mask;
}

int kvik__json_u64(const char *json, size_t len, const char *key, uint64_t *out) {
  size_t klen = strlen(key);
  for (size_t i = 0; i + klen + 2 <= len; i++) {
    if (json[i] != '"' || strncmp(json + i + 1, key, klen) != 0 || json[i + 1 + klen] != '"')
      continue;
    size_t k = i + klen + 2;
    while (k < len && isspace((unsigned char)json[k]))
      k++;
    if (k >= len || json[k] != ':')
      continue;
    k++;
    while (k < len && isspace((unsigned char)json[k]))
      k++;
    if (parse_digits(json, len, &k, out))
      return 0;
    return -1;
  }
  return -1;
}
