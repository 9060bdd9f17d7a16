/* Fuzzes the URL parser and endpoint inference (src/remote/url.c). Oracles: a URL the parser
 * accepts is exactly the concatenation of the pieces it reports (scheme "://" [user "@"] host
 * [":" port] [path] ["?" query] ["#" fragment]), with a valid scheme, a port of 1..65535 and no
 * blank or control character; inference returns an allowed type whose own check accepts the
 * URL, never S3 without credentials; S3 pieces lie inside the URL; path normalisation gives
 * printable ASCII only. */
#include "remote/remote.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

static bool inside(const char *s, size_t n, const char *p, size_t len) {
  return p >= s && p + len <= s + n;
}

static void check_parse(const char *s, size_t n) {
  struct kvik__url u;
  int rc = kvik__url_parse(s, &u);
  if (rc != 0) {
    CHECK(rc == KVIK_EINVAL);
    return;
  }
  for (size_t i = 0; i < n; i++)
    CHECK((unsigned char)s[i] > 0x20 && (unsigned char)s[i] != 0x7f);
  CHECK(u.scheme == s && u.scheme_len > 0 && isalpha((unsigned char)s[0]));
  for (size_t i = 0; i < u.scheme_len; i++)
    CHECK(isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.');
  CHECK(memcmp(s + u.scheme_len, "://", 3) == 0);
  const char *p = s + u.scheme_len + 3;
  if (u.has_user) {
    CHECK(u.user == p && inside(s, n, u.user, u.user_len + 1));
    CHECK(strcspn(u.user, "/?#") >= u.user_len && u.user[u.user_len] == '@');
    p = u.user + u.user_len + 1;
  }
  CHECK(u.host == p && u.host_len > 0 && inside(s, n, u.host, u.host_len));
  CHECK(!memchr(u.host, '@', u.host_len) && strcspn(u.host, "/?#") >= u.host_len);
  p += u.host_len;
  if (u.port) {
    CHECK(*p == ':' && u.port == p + 1 && inside(s, n, u.port, u.port_len));
    unsigned long v = 0;
    for (size_t i = 0; i < u.port_len; i++) {
      CHECK(isdigit((unsigned char)u.port[i]));
      v = v * 10 + (unsigned long)(u.port[i] - '0');
    }
    CHECK(u.port_len == 0 || (u.port_len <= 5 && v >= 1 && v <= 65535));
    p = u.port + u.port_len;
  }
  if (u.path_len) {
    CHECK(u.path == p && *p == '/' && inside(s, n, u.path, u.path_len));
    CHECK(strcspn(u.path, "?#") == u.path_len);
    p += u.path_len;
  }
  if (u.has_query) {
    CHECK(*p == '?' && u.query == p + 1 && inside(s, n, u.query, u.query_len));
    CHECK(strcspn(u.query, "#") == u.query_len);
    p = u.query + u.query_len;
  }
  CHECK(*p == '\0' || *p == '#');

  struct kvik__s3_parts s3;
  if (kvik__s3_aws_url(&u, &s3)) {
    CHECK(s3.bucket_len > 0 && inside(s, n, s3.bucket, s3.bucket_len));
    CHECK(s3.key_len > 0 && inside(s, n, s3.key, s3.key_len));
    CHECK(!s3.region || inside(s, n, s3.region, s3.region_len));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  /* The first byte picks the allow mask and whether credentials exist; the rest is the URL. */
  unsigned allow = data[0] & 0x3f;
  bool creds = data[0] & 0x40;
  char *s = malloc(size);
  if (!s)
    return 0;
  memcpy(s, data + 1, size - 1);
  s[size - 1] = '\0';
  size_t n = strlen(s);
  check_parse(s, n);

  int t = kvik__remote_infer(s, allow, creds);
  if (t < 0) {
    CHECK(t == KVIK_EINVAL);
  } else {
    CHECK(t >= KVIK_REMOTE_S3 && t <= KVIK_REMOTE_HTTP);
    CHECK(allow == 0 || (allow & KVIK_REMOTE_ALLOW(t)));
    CHECK(creds || t != KVIK_REMOTE_S3);
    CHECK(kvik__remote_url_valid(t, s, false, NULL, 0));
  }
  for (int type = KVIK_REMOTE_AUTO; type <= KVIK_REMOTE_HTTP + 1; type++) {
    char why[64];
    if (!kvik__remote_url_valid(type, s, true, why, sizeof why))
      CHECK(why[0] != '\0' && strlen(why) < sizeof why);
  }
  char *e = kvik__s3_normalize_path(s, n);
  if (e) {
    for (const char *q = e; *q; q++)
      CHECK((unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f);
    kvik__free(e);
  }
  free(s);
  return 0;
}
