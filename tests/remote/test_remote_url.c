/* Remote URLs without a server: endpoint inference (kvikio's order and cases), validation and
 * allow lists, S3 key encoding, redaction of secrets, the Content-Range and WebHDFS parsers
 * (with a short fuzz run), and argument checks that must not make a request. */
#include "common.h"

#include "remote/remote.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const S3_OK[] = {
    "s3://bucket-name/object-key-name",
    "s3://bucket-name/folder/object key+name?.bin",
    "https://bucket-name.s3.region-code.amazonaws.com/object-key-name",
    "https://s3.region-code.amazonaws.com/bucket-name/object-key-name",
    "https://bucket-name.s3.amazonaws.com/object-key-name",
    "https://s3.amazonaws.com/bucket-name/object-key-name",
    "https://bucket-name.s3-region-code.amazonaws.com/object-key-name",
    "https://s3-region-code.amazonaws.com/bucket-name/object-key-name",
    "http://my.dotted.bucket.s3.us-west-2.amazonaws.com/a/b/c",
    NULL};

static void set_creds(bool on) {
  if (on) {
    setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", 1);
  } else {
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
  }
  unsetenv("AWS_SESSION_TOKEN");
  unsetenv("AWS_ENDPOINT_URL");
  unsetenv("AWS_DEFAULT_REGION");
  unsetenv("AWS_REGION");
}

static void infer_follows_kvikio_order(void **state) {
  (void)state;
  set_creds(true);
  for (const char *const *u = S3_OK; *u; u++)
    if (kvik_remote_infer_type(*u, 0) != KVIK_REMOTE_S3)
      fail_msg("%s: inferred %s, expected S3 (%s)", *u,
               kvik_remote_type_name(kvik_remote_infer_type(*u, 0)), kvik_last_error());
  /* Without credentials, S3 falls back to S3_PUBLIC (kvikio's fallback). */
  set_creds(false);
  for (const char *const *u = S3_OK; *u; u++)
    ASSERT_CODE(kvik_remote_infer_type(*u, 0), KVIK_REMOTE_S3_PUBLIC);
  /* ...unless S3_PUBLIC is not allowed. */
  ASSERT_CODE(kvik_remote_infer_type("s3://b/k", KVIK_REMOTE_ALLOW(KVIK_REMOTE_S3)), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "AWS_ACCESS_KEY_ID");
  set_creds(true);

  ASSERT_CODE(kvik_remote_infer_type("http://example.com/data.bin", 0), KVIK_REMOTE_HTTP);
  ASSERT_CODE(kvik_remote_infer_type("https://example.com/bucket/key", 0), KVIK_REMOTE_HTTP);
  ASSERT_CODE(kvik_remote_infer_type("http://namenode:9870/webhdfs/v1/home/data.bin", 0),
              KVIK_REMOTE_WEBHDFS);
  ASSERT_CODE(kvik_remote_infer_type("http://namenode/webhdfs/v1/x?user.name=a", 0),
              KVIK_REMOTE_WEBHDFS);
  const char *presigned =
      "https://bucket.s3.us-east-1.amazonaws.com/key.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256"
      "&X-Amz-Credential=AKID%2F20250101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20250101T"
      "000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=abcdef0123";
  ASSERT_CODE(kvik_remote_infer_type(presigned, 0), KVIK_REMOTE_S3_PRESIGNED);
  /* Unlike kvikio, a presigned URL is recognised on any host (S3-compatible stores). */
  ASSERT_CODE(kvik_remote_infer_type("http://127.0.0.1:9000/b/k?X-Amz-Algorithm=A&"
                                     "X-Amz-Signature=s",
                                     0),
              KVIK_REMOTE_S3_PRESIGNED);
  /* A signature alone is not a presigned URL. */
  ASSERT_CODE(kvik_remote_infer_type("http://h/b/k?X-Amz-Signature=s", 0), KVIK_REMOTE_HTTP);
  /* Allow lists. */
  ASSERT_CODE(
      kvik_remote_infer_type("http://namenode/webhdfs/v1/x", KVIK_REMOTE_ALLOW(KVIK_REMOTE_HTTP)),
      KVIK_REMOTE_HTTP);
  ASSERT_CODE(kvik_remote_infer_type("s3://b/k", KVIK_REMOTE_ALLOW(KVIK_REMOTE_HTTP)), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "no allowed endpoint type");
  ASSERT_CODE(kvik_remote_infer_type(presigned, KVIK_REMOTE_ALLOW(KVIK_REMOTE_S3) |
                                                    KVIK_REMOTE_ALLOW(KVIK_REMOTE_HTTP)),
              KVIK_REMOTE_HTTP);
  set_creds(false);
}

static void invalid_urls_are_refused_with_a_reason(void **state) {
  (void)state;
  set_creds(true);
  static const struct {
    const char *url, *why;
  } bad[] = {
      {"ftp://example.com/file", "unsupported scheme"},
      {"file:///etc/passwd", "no host"},
      {"example.com/file", "no scheme"},
      {"://example.com/file", "no scheme"},
      {"http://example.com", "no path"},
      {"http://example.com/", "no path"},
      {"http:///file", "no host"},
      {"http://example.com:99999/file", "port"},
      {"http://example.com:12ab/file", "port"},
      {"http://exa mple.com/file", "space"},
      {"http://[::1/file", "IPv6"},
      {"s3://bucket-only", "no object key"},
      {"s3://bucket-only/", "no object key"},
      {"s3:///key", "no bucket"},
      {"", "no scheme"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int t = kvik_remote_infer_type(bad[i].url, 0);
    if (t != KVIK_EINVAL)
      fail_msg("\"%s\": got %d (%s), expected KVIK_EINVAL", bad[i].url, t,
               kvik_remote_type_name(t));
    ASSERT_CONTAINS(kvik_last_error(), bad[i].why);
  }
  ASSERT_CODE(kvik_remote_infer_type(NULL, 0), KVIK_EINVAL);
  /* kvikio's invalid S3 URLs are not S3 (they may still be plain HTTP). */
  static const char *const not_s3[] = {
      "https://bucket.s3.region.amazonaws.com/",  "https://s3.region.amazonaws.com/bucket-only",
      "https://s3.region.amazonaws.com/bucket/",  "https://bucket.s3.region.example.com/key",
      "https://s3.dualstack.x.amazonaws.com/b/k", "https://.s3.amazonaws.com/key",
  };
  for (size_t i = 0; i < sizeof not_s3 / sizeof not_s3[0]; i++) {
    if (kvik__remote_url_valid(KVIK_REMOTE_S3, not_s3[i], false, NULL, 0))
      fail_msg("\"%s\" was taken for an S3 URL", not_s3[i]);
  }
  /* WebHDFS needs /webhdfs/v1/ and a file. */
  assert_false(
      kvik__remote_url_valid(KVIK_REMOTE_WEBHDFS, "http://h:9870/webhdfs/v1/", false, NULL, 0));
  assert_false(
      kvik__remote_url_valid(KVIK_REMOTE_WEBHDFS, "http://h:9870/webhdfs/v2/x", false, NULL, 0));
  /* An explicit S3 type takes path-style URLs on any host; AUTO does not. */
  assert_true(kvik__remote_url_valid(KVIK_REMOTE_S3, "http://127.0.0.1:9000/b/k", true, NULL, 0));
  assert_false(kvik__remote_url_valid(KVIK_REMOTE_S3, "http://127.0.0.1:9000/b/k", false, NULL, 0));
  assert_false(kvik__remote_url_valid(KVIK_REMOTE_S3, "http://127.0.0.1:9000/b", true, NULL, 0));
  set_creds(false);
}

static void url_parse_pieces(void **state) {
  (void)state;
  struct kvik__url u;
  ASSERT_CODE(kvik__url_parse("https://user:pw@[::1]:8443/a/b%20c?x=1&y#frag", &u), 0);
  assert_int_equal(u.scheme_len, 5);
  assert_memory_equal(u.user, "user:pw", 7);
  assert_memory_equal(u.host, "[::1]", 5);
  assert_memory_equal(u.port, "8443", 4);
  assert_int_equal(u.path_len, strlen("/a/b%20c"));
  assert_memory_equal(u.path, "/a/b%20c", u.path_len);
  assert_true(u.has_query);
  assert_int_equal(u.query_len, strlen("x=1&y"));
  ASSERT_CODE(kvik__url_parse("http://h?q", &u), 0);
  assert_int_equal(u.path_len, 0);
  assert_true(u.has_query);
}

static void s3_keys_are_encoded_as_aws_requires(void **state) {
  (void)state;
  char *e = kvik__s3_encode_key("dir/a b+c!*'()&$@=;:,?#%~-_.", 28);
  assert_string_equal(e, "dir/a%20b%2Bc%21%2A%27%28%29%26%24%40%3D%3B%3A%2C%3F%23%25~-_.");
  kvik__free(e);
  e = kvik__s3_encode_key("\xc3\xa9t\xc3\xa9", 5);
  assert_string_equal(e, "%C3%A9t%C3%A9");
  kvik__free(e);
  /* Already-encoded paths keep their escapes (hex made upper-case); the rest is encoded. */
  e = kvik__s3_normalize_path("/b/a%2fb c+d%zz%4", 17);
  assert_string_equal(e, "/b/a%2Fb%20c%2Bd%25zz%254");
  kvik__free(e);
}

static void open_builds_the_request_url(void **state) {
  (void)state;
  set_creds(true);
  kvik_remote *r = NULL;
  struct kvik_remote_opts o = {.sz = sizeof o, .size = 1000, .endpoint = "http://127.0.0.1:9/"};
  int rc = kvik_remote_open(&r, "s3://bkt/dir/a b+c?d", &o);
  if (rc == KVIK_EUNSUPPORTED) {
    ASSERT_CONTAINS(kvik_last_error(), "libcurl");
    SKIP_BECAUSE("built without libcurl: %s", kvik_last_error());
  }
  ASSERT_CODE(rc, 0);
  ASSERT_CODE(kvik_remote_type(r), KVIK_REMOTE_S3);
  assert_string_equal(kvik_remote_url(r), "http://127.0.0.1:9/bkt/dir/a%20b%2Bc%3Fd");
  ASSERT_CODE(kvik_remote_size(r), 1000);
  ASSERT_CODE(kvik_remote_close(r), 0);

  /* Without an endpoint: AWS's virtual host, region from the environment. */
  setenv("AWS_DEFAULT_REGION", "eu-west-3", 1);
  o.endpoint = NULL;
  ASSERT_CODE(kvik_remote_open(&r, "s3://bkt/k", &o), 0);
  assert_string_equal(kvik_remote_url(r), "https://bkt.s3.eu-west-3.amazonaws.com/k");
  kvik_remote_close(r);
  /* A dotted bucket goes path-style (TLS wildcards do not cover dots). */
  ASSERT_CODE(kvik_remote_open(&r, "s3://my.bkt/k", &o), 0);
  assert_string_equal(kvik_remote_url(r), "https://s3.eu-west-3.amazonaws.com/my.bkt/k");
  kvik_remote_close(r);
  /* An http(s) S3 URL keeps its escapes and gets the rest encoded. */
  ASSERT_CODE(kvik_remote_open(&r, "https://bkt.s3.us-west-2.amazonaws.com/a%20b/c+d", &o), 0);
  assert_string_equal(kvik_remote_url(r), "https://bkt.s3.us-west-2.amazonaws.com/a%20b/c%2Bd");
  kvik_remote_close(r);

  /* Explicit types: checked against the allow list and the URL. */
  o.type = KVIK_REMOTE_WEBHDFS;
  ASSERT_CODE(kvik_remote_open(&r, "http://h/file", &o), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "not a valid WEBHDFS URL");
  o.type = KVIK_REMOTE_HTTP;
  o.allow = KVIK_REMOTE_ALLOW(KVIK_REMOTE_S3);
  ASSERT_CODE(kvik_remote_open(&r, "http://h/file", &o), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "not in the allow list");
  o.allow = 0;
  o.type = 42;
  ASSERT_CODE(kvik_remote_open(&r, "http://h/file", &o), KVIK_EINVAL);
  o.type = KVIK_REMOTE_S3;
  set_creds(false);
  ASSERT_CODE(kvik_remote_open(&r, "http://127.0.0.1:9/b/k", &o), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "credentials");
  /* Credentials in the options are enough. */
  o.access_key_id = "AKIDOPT";
  o.secret_access_key = "secret-in-opts";
  ASSERT_CODE(kvik_remote_open(&r, "http://127.0.0.1:9/b/k", &o), 0);
  ASSERT_CODE(kvik_remote_type(r), KVIK_REMOTE_S3);
  kvik_remote_close(r);
  struct kvik_remote_opts tiny = {.sz = 1};
  ASSERT_CODE(kvik_remote_open(&r, "http://h/f", &tiny), KVIK_EINVAL);
  ASSERT_CODE(kvik_remote_open(NULL, "http://h/f", NULL), KVIK_EINVAL);
  ASSERT_CODE(kvik_remote_open(&r, NULL, NULL), KVIK_EINVAL);
}

static void secrets_are_redacted(void **state) {
  (void)state;
  char out[512];
  const char *u = "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
                  "AKID%2F2025&X-Amz-Security-Token=TOKENSECRET&X-Amz-Signature=SIGSECRET#f";
  kvik__redact(u, strlen(u), out, sizeof out);
  assert_null(strstr(out, "SIGSECRET"));
  assert_null(strstr(out, "TOKENSECRET"));
  ASSERT_CONTAINS(out, "X-Amz-Signature=***");
  ASSERT_CONTAINS(out, "X-Amz-Algorithm=AWS4-HMAC-SHA256");
  const char *v = "http://alice:PASSWORD@h:80/f?sig=S1G&token=T0K&ok=1";
  kvik__redact(v, strlen(v), out, sizeof out);
  assert_string_equal(out, "http://alice:***@h:80/f?sig=***&token=***&ok=1");
  const char *h = "Authorization: AWS4-HMAC-SHA256 Credential=AKID/x, Signature=SIGSECRET";
  kvik__redact(h, strlen(h), out, sizeof out);
  assert_string_equal(out, "Authorization: ***");
  const char *t = "x-amz-security-token: TOKENSECRET";
  kvik__redact(t, strlen(t), out, sizeof out);
  assert_string_equal(out, "x-amz-security-token: ***");
  const char *g = "GET /k?X-Amz-Signature=SIGSECRET HTTP/1.1";
  kvik__redact(g, strlen(g), out, sizeof out);
  assert_string_equal(out, "GET /k?X-Amz-Signature=*** HTTP/1.1");
  /* Truncation stays terminated. */
  kvik__redact(u, strlen(u), out, 10);
  assert_int_equal(strlen(out), 9);

  /* The handle shows the URL without its signature. */
  kvik_remote *r;
  struct kvik_remote_opts o = {.sz = sizeof o, .size = 10};
  int rc = kvik_remote_open(&r, u, &o);
  if (rc == KVIK_EUNSUPPORTED)
    return;
  ASSERT_CODE(rc, 0);
  ASSERT_CODE(kvik_remote_type(r), KVIK_REMOTE_S3_PRESIGNED);
  assert_null(strstr(kvik_remote_url(r), "SIGSECRET"));
  /* And so does an error that names it. */
  char buf[16];
  ASSERT_CODE(kvik_remote_read(r, buf, 11, 0), KVIK_EOVERFLOW);
  assert_null(strstr(kvik_last_error(), "SIGSECRET"));
  kvik_remote_close(r);
}

/* Asserts that redacting text (as free text, and as a URL when is_url) hides every listed secret
 * and still shows each listed visible part. */
static void check_redacted(const char *text, bool is_url, const char *const *secrets,
                           const char *const *visible) {
  char out[1024];
  for (int mode = 0; mode < (is_url ? 2 : 1); mode++) {
    if (mode == 0)
      kvik__redact(text, strlen(text), out, sizeof out);
    else
      kvik__redact_url(text, strlen(text), out, sizeof out);
    for (const char *const *s = secrets; *s; s++)
      if (strstr(out, *s))
        fail_msg("%s redaction of \"%s\" shows \"%s\": \"%s\"", mode ? "URL" : "text", text, *s,
                 out);
    for (const char *const *v = visible; v && *v; v++)
      if (!strstr(out, *v))
        fail_msg("%s redaction of \"%s\" lost \"%s\": \"%s\"", mode ? "URL" : "text", text, *v,
                 out);
  }
}

/* The user-info of a URL is what the URL parser and libcurl take for it: everything between
 * "scheme://" and the last '@' before the first / ? # (RFC 3986 allows ' unencoded there, and
 * both parsers accept " < > too); and a secret query parameter is hidden wherever it is, even
 * after a "://" and before an "a:b@" in the same query. */
static void redaction_follows_the_url_grammar(void **state) {
  (void)state;
  static const char *const passwords[] = {
      "pa'SECRETPW",  "pa\"SECRETPW", "pa<SECRETPW", "pa>SECRETPW",       "'SECRETPW'",
      "a:b:SECRETPW", "SECRET@PW",    "<SECRETPW>",  "pa'ss\"<SECRETPW>",
  };
  for (size_t i = 0; i < sizeof passwords / sizeof passwords[0]; i++) {
    char url[256];
    snprintf(url, sizeof url, "http://alice:%s@127.0.0.1:9/dir/f.bin?x=1", passwords[i]);
    const char *const secrets[] = {"SECRET", "PW", NULL};
    const char *const visible[] = {"http://alice:***@127.0.0.1:9/dir/f.bin?x=1", NULL};
    check_redacted(url, true, secrets, visible);
    /* Inside a longer text, quoted as libcurl and kvik's messages quote URLs. */
    char text[512];
    snprintf(text, sizeof text, "Issue another request to this URL: '%s'", url);
    check_redacted(text, false, secrets, NULL);
    snprintf(text, sizeof text, "Location: %s", url);
    check_redacted(text, false, secrets, NULL);
  }
  /* A user name alone may be a token (https://TOKEN@host/): hidden too. */
  const char *const tok[] = {"SECRETTOKEN", NULL};
  const char *const tok_vis[] = {"https://***@h/f", NULL};
  check_redacted("https://SECRETTOKEN@h/f", true, tok, tok_vis);
  /* Found by fuzz_redact: text after a URL that adds a ':' and a later '@' to the authority
   * must not turn the token into a user name ("TOKEN@h:x@y" read as user-info up to the last
   * '@' has its first ':' after the token). */
  check_redacted("remote https://SECRETTOKEN@h:x@y", false, tok, NULL);
  check_redacted("https://SECRETTOKEN@h:x@y/f", true, tok, NULL);
  /* A password holding a space is refused by the parser, but the URL is still shown in the
   * refusal: as a URL, the user-info runs to the last '@' whatever it holds. */
  char out[512];
  const char *spaced = "http://alice:pa ss'SECRET@h/f";
  kvik__redact_url(spaced, strlen(spaced), out, sizeof out);
  assert_string_equal(out, "http://alice:***@h/f");

  /* Presigned: a "://" earlier in the query and an "a:b@" later do not expose the signature. */
  const char *const sig[] = {"SIGSECRET", "TOKSECRET", NULL};
  const char *const sig_vis[] = {"X-Amz-Signature=***", "X-Amz-Algorithm=AWS4-HMAC-SHA256", NULL};
  check_redacted("https://b.s3.amazonaws.com/k?next=http://x&X-Amz-Algorithm=AWS4-HMAC-SHA256&"
                 "X-Amz-Signature=SIGSECRET&u=a:b@c",
                 true, sig, sig_vis);
  check_redacted("https://h/k?r=https://u:p@x/&X-Amz-Signature=SIGSECRET&X-Amz-Security-Token="
                 "TOKSECRET#f",
                 true, sig, NULL);
  check_redacted("GET /k?next=http://x&X-Amz-Signature=SIGSECRET&u=a:b@c HTTP/1.1", false, sig,
                 NULL);
  check_redacted("> GET /k?X-Amz-Security-Token=TOKSECRET&X-Amz-Signature=SIGSECRET HTTP/1.1",
                 false, sig, NULL);
  /* Names are compared after percent-decoding and without regard to case; fragments too. */
  check_redacted("http://h/k?x-amz-signature=SIGSECRET&X%2DAmz%2DSecurity%2DToken=TOKSECRET", true,
                 sig, NULL);
  check_redacted("http://h/k#access_token=SIGSECRET&sig=TOKSECRET", true, sig, NULL);
  /* Secret headers, also on a later line of a multi-line text. */
  const char *const hdr[] = {"SIGSECRET", "TOKSECRET", "QWxhZGRpbjpvcGVuIHNlc2FtZQ", NULL};
  check_redacted("HTTP/1.1 200 OK\nx-amz-security-token: TOKSECRET\nX-Api-Key: SIGSECRET", false,
                 hdr, NULL);
  check_redacted("Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", false, hdr, NULL);
}

/* The same URLs through the handle: kvik_remote_url() and the messages that name the URL. */
static void handle_and_errors_hide_the_grammar_secrets(void **state) {
  (void)state;
  static const char *const urls[] = {
      "http://alice:pa'SECRETPW@127.0.0.1:9/f.bin",
      "http://alice:pa\"SECRETPW@127.0.0.1:9/f.bin",
      "http://alice:<SECRETPW>@127.0.0.1:9/f.bin",
      "http://127.0.0.1:9/k?next=http://x&X-Amz-Algorithm=A&X-Amz-Signature=SECRETPW&u=a:b@c",
  };
  for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
    kvik_remote *r;
    struct kvik_remote_opts o = {.sz = sizeof o, .size = 10};
    int rc = kvik_remote_open(&r, urls[i], &o);
    if (rc == KVIK_EUNSUPPORTED)
      SKIP_BECAUSE("built without libcurl: %s", kvik_last_error());
    ASSERT_CODE(rc, 0);
    if (strstr(kvik_remote_url(r), "SECRETPW"))
      fail_msg("kvik_remote_url shows the secret: %s", kvik_remote_url(r));
    ASSERT_CONTAINS(kvik_remote_url(r), "127.0.0.1:9");
    char buf[16];
    ASSERT_CODE(kvik_remote_read(r, buf, 11, 0), KVIK_EOVERFLOW);
    ASSERT_CONTAINS(kvik_last_error(), "127.0.0.1:9");
    if (strstr(kvik_last_error(), "SECRETPW"))
      fail_msg("the error shows the secret: %s", kvik_last_error());
    /* A request that fails (nothing listens on port 9) names the URL too. */
    ASSERT_CODE(kvik_remote_read(r, buf, 10, 0), KVIK_EHTTP);
    if (strstr(kvik_last_error(), "SECRETPW"))
      fail_msg("the error shows the secret: %s", kvik_last_error());
    kvik_remote_close(r);
  }
  /* A URL the parser refuses is still shown without its password. */
  ASSERT_CODE(kvik_remote_infer_type("http://alice:pa ss'SECRETPW@h/f", 0), KVIK_EINVAL);
  ASSERT_CONTAINS(kvik_last_error(), "alice:***@h/f");
  if (strstr(kvik_last_error(), "SECRETPW"))
    fail_msg("the error shows the secret: %s", kvik_last_error());
}

static void content_range_parser(void **state) {
  (void)state;
  uint64_t f = 0, l = 0, t = 0;
  ASSERT_CODE(kvik__parse_content_range("bytes 0-0/1", 11, &f, &l, &t), 3);
  assert_true(f == 0 && l == 0 && t == 1);
  const char *s = " bytes 100-199/1000\r\n";
  ASSERT_CODE(kvik__parse_content_range(s, strlen(s), &f, &l, &t), 3);
  assert_true(f == 100 && l == 199 && t == 1000);
  s = "bytes 5-9/*";
  ASSERT_CODE(kvik__parse_content_range(s, strlen(s), &f, &l, &t), 1);
  s = "bytes */0";
  ASSERT_CODE(kvik__parse_content_range(s, strlen(s), &f, &l, &t), 2);
  assert_true(t == 0);
  s = "BYTES 1-2/3";
  ASSERT_CODE(kvik__parse_content_range(s, strlen(s), &f, &l, &t), 3);
  s = "bytes 18446744073709551614-18446744073709551614/18446744073709551615";
  ASSERT_CODE(kvik__parse_content_range(s, strlen(s), &f, &l, &t), 3);
  static const char *const bad[] = {
      "",
      "bytes",
      "bytes ",
      "bytes */*",
      "bytes 1-0/5",
      "bytes 0-5/5",
      "bytes 0-4/",
      "bytes -4/5",
      "bytes 0-/5",
      "items 0-4/5",
      "bytes 0-4/5x",
      "bytes 0-4 /5",
      "bytes 18446744073709551616-1/2",
      "bytes0-4/5",
      "bytes 0-4/18446744073709551616",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (kvik__parse_content_range(bad[i], strlen(bad[i]), &f, &l, &t) != -1)
      fail_msg("\"%s\" was accepted", bad[i]);
  uint64_t v;
  s = "{\"FileStatus\":{\"blockSize\":134217728,\"length\" : 4194307,\"owner\":\"x\"}}";
  ASSERT_CODE(kvik__json_u64(s, strlen(s), "length", &v), 0);
  assert_true(v == 4194307);
  s = "{\"lengthy\":1,\"length\":\"x\"}";
  ASSERT_CODE(kvik__json_u64(s, strlen(s), "length", &v), -1);
}

/* A short fuzz run: random and mutated inputs to every parser; they must never crash (the
 * sanitizer builds watch memory), and what they accept must be consistent. */
static void fuzz_parsers(void **state) {
  (void)state;
  static const char *const seeds[] = {
      "bytes 0-0/1",
      "bytes */123",
      "s3://bucket/key",
      "http://u:p@h:80/p?a=b&X-Amz-Signature=s",
      "https://b.s3.us-east-1.amazonaws.com/k?X-Amz-Algorithm=x&X-Amz-Signature=y",
      "http://h/webhdfs/v1/f?op=OPEN",
      "{\"length\": 12}",
      "Authorization: secret",
  };
  static const char alphabet[] = "bytes */-0123456789:/?&=@#%[]. sS3hHtTpP\r\n\"{}";
  unsigned seed = (unsigned)time(NULL);
  const char *env_seed = getenv("KVIK_FUZZ_SEED");
  if (env_seed)
    seed = (unsigned)strtoul(env_seed, NULL, 10);
  printf("fuzz seed %u (set KVIK_FUZZ_SEED to repeat)\n", seed);
  srand(seed);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  char in[256], out[300];
  long iters = 0;
  do {
    for (int k = 0; k < 1000; k++, iters++) {
      size_t n;
      if (rand() % 2) {
        const char *s = seeds[(size_t)rand() % (sizeof seeds / sizeof seeds[0])];
        n = strlen(s);
        memcpy(in, s, n);
        for (int m = rand() % 4; m >= 0; m--) {
          size_t at = (size_t)rand() % (n + 1);
          int op = rand() % 3;
          char c =
              rand() % 4 ? alphabet[(size_t)rand() % (sizeof alphabet - 1)] : (char)(rand() % 256);
          if (op == 0 && n < sizeof in - 1) {
            memmove(in + at + 1, in + at, n - at);
            in[at] = c;
            n++;
          } else if (op == 1 && at < n) {
            in[at] = c;
          } else if (at < n) {
            memmove(in + at, in + at + 1, n - at - 1);
            n--;
          }
        }
      } else {
        n = (size_t)rand() % 64;
        for (size_t i = 0; i < n; i++)
          in[i] = alphabet[(size_t)rand() % (sizeof alphabet - 1)];
      }
      in[n] = '\0';
      uint64_t f = 7, l = 7, t = 7;
      int m = kvik__parse_content_range(in, n, &f, &l, &t);
      if (m == 3 && !(f <= l && l < t))
        fail_msg("accepted inconsistent \"%s\"", in);
      if (m == 0 || m > 3)
        fail_msg("bad mask %d for \"%s\"", m, in);
      struct kvik__url u;
      if (kvik__url_parse(in, &u) == 0) {
        assert_true(u.host_len > 0);
        assert_true(u.host >= in && u.host + u.host_len <= in + n);
        assert_true(!u.path_len || (u.path >= in && u.path + u.path_len <= in + n));
        assert_true(!u.has_query || (u.query >= in && u.query + u.query_len <= in + n));
      }
      int ty = kvik__remote_infer(in, (unsigned)rand(), rand() % 2);
      assert_true(ty == KVIK_EINVAL || (ty >= KVIK_REMOTE_S3 && ty <= KVIK_REMOTE_HTTP));
      kvik__redact(in, n, out, sizeof out);
      assert_true(strlen(out) < sizeof out);
      uint64_t v;
      kvik__json_u64(in, n, "length", &v);
      char *e = kvik__s3_normalize_path(in, n);
      assert_non_null(e);
      for (char *p = e; *p; p++)
        assert_true((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
      kvik__free(e);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
  } while ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9 < 2.0);
  printf("fuzz: %ld inputs\n", iters);
}

static void zero_size_and_bounds_make_no_request(void **state) {
  (void)state;
  kvik_remote *r;
  /* Port 9 (discard) on loopback: nothing is listening, so any request would fail. */
  struct kvik_remote_opts o = {.sz = sizeof o, .size = 100};
  int rc = kvik_remote_open(&r, "http://127.0.0.1:9/nothing.bin", &o);
  if (rc == KVIK_EUNSUPPORTED)
    SKIP_BECAUSE("built without libcurl");
  ASSERT_CODE(rc, 0);
  uint64_t before = kvik__remote_request_count();
  char buf[200];
  ASSERT_CODE(kvik_remote_read(r, buf, 0, 0), 0);
  ASSERT_CODE(kvik_remote_read(r, buf, 0, 100), 0);
  kvik_future *f;
  ASSERT_CODE(kvik_remote_pread(r, buf, 0, 50, NULL, &f), 0);
  ASSERT_CODE(kvik_future_wait(f), 0);
  ASSERT_CODE(kvik_remote_read(r, buf, 101, 0), KVIK_EOVERFLOW);
  ASSERT_CONTAINS(kvik_last_error(), "http://127.0.0.1:9/nothing.bin");
  ASSERT_CONTAINS(kvik_last_error(), "101 bytes at offset 0");
  ASSERT_CONTAINS(kvik_last_error(), "100 bytes");
  ASSERT_CODE(kvik_remote_read(r, buf, 1, 100), KVIK_EOVERFLOW);
  ASSERT_CODE(kvik_remote_pread(r, buf, 2, 99, NULL, &f), KVIK_EOVERFLOW);
  ASSERT_CODE(kvik_remote_read(r, buf, 1, -1), KVIK_EINVAL);
  ASSERT_CODE(kvik_remote_read(r, NULL, 1, 0), KVIK_EINVAL);
  ASSERT_CODE(kvik_remote_pread(r, buf, 1, 0, NULL, NULL), KVIK_EINVAL);
  struct kvik_io_opts bad = {.sz = 1};
  ASSERT_CODE(kvik_remote_pread(r, buf, 1, 0, &bad, &f), KVIK_EINVAL);
  assert_true(kvik__remote_request_count() == before);
  /* A request to a closed port fails with a message, not a crash. */
  ASSERT_CODE(kvik_remote_read(r, buf, 10, 0), KVIK_EHTTP);
  ASSERT_CONTAINS(kvik_last_error(), "127.0.0.1:9");
  ASSERT_CODE(kvik_remote_close(r), 0);
  ASSERT_CODE(kvik_remote_close(NULL), 0);
  ASSERT_CODE(kvik_remote_size(NULL), KVIK_EINVAL);
  int not_a_handle[16] = {0};
  ASSERT_CODE(kvik_remote_size((kvik_remote *)not_a_handle), KVIK_EMISUSE);
  assert_null(kvik_remote_url(NULL));
  assert_string_equal(kvik_remote_type_name(KVIK_REMOTE_WEBHDFS), "WEBHDFS");
  assert_string_equal(kvik_remote_type_name(99), "?");
}

int main(int argc, char **argv) {
  t_select(argc, argv);
  t_clear_kvikio_env();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(infer_follows_kvikio_order),
      cmocka_unit_test(invalid_urls_are_refused_with_a_reason),
      cmocka_unit_test(url_parse_pieces),
      cmocka_unit_test(s3_keys_are_encoded_as_aws_requires),
      cmocka_unit_test(open_builds_the_request_url),
      cmocka_unit_test(secrets_are_redacted),
      cmocka_unit_test(redaction_follows_the_url_grammar),
      cmocka_unit_test(handle_and_errors_hide_the_grammar_secrets),
      cmocka_unit_test(content_range_parser),
      cmocka_unit_test(fuzz_parsers),
      cmocka_unit_test(zero_size_and_bounds_make_no_request),
  };
  return cmocka_run_group_tests_name("remote_url", tests, NULL, NULL);
}
