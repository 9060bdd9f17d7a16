/* Fuzzes redaction (kvik__redact, kvik__redact_url) with an oracle built on the URL parser.
 *
 * Input: one byte for the output buffer's size, one each for the lengths of a text prefix and
 * suffix, then the prefix, the suffix and a URL template. Every byte 0x01 in the template
 * becomes the secret "QZZQZQQZZQZQ"; 'Q' and 'Z' anywhere else become 'q' and 'z', so the
 * only capital Q and Z in the input are the secret's. When the template parses
 * (kvik__url_parse) and every copy of the secret lies where the grammar puts a secret - the
 * password (after the user-info's first ':'), user-info without ':', or the value of a query
 * parameter named X-Amz-Signature, X-Amz-Security-Token, X-Amz-Credential, Signature, sig or
 * token - then neither the URL's redaction nor the redaction of prefix + URL + suffix as free
 * text may hold a single capital Q or Z. Every input, marked or not, is also redacted in
 * buffers of exactly their size (input without a NUL; output of the size the first byte
 * gives), so a read or write past either is an ASan report, and the output must be
 * NUL-terminated inside its buffer. */
#include "remote/remote.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      __builtin_trap();                                                                            \
  } while (0)

static const char SECRET[] = "QZZQZQQZZQZQ";
#define SECRET_LEN (sizeof SECRET - 1)

/* Copies n bytes, taking Q and Z to lower case and NUL to '0'. */
static void copy_plain(char *dst, const uint8_t *src, size_t n) {
  for (size_t i = 0; i < n; i++) {
    char c = (char)src[i];
    dst[i] = c == 'Q' ? 'q' : c == 'Z' ? 'z' : c == '\0' ? '0' : c;
  }
}

/* Redacts in[0..n) into a buffer of exactly outlen bytes; returns it (caller frees). */
static char *redact_exact(const char *in, size_t n, size_t outlen, bool url) {
  char *copy = malloc(n ? n : 1), *out = malloc(outlen);
  CHECK(copy && out);
  memcpy(copy, in, n);
  memset(out, 'x', outlen);
  if (url)
    kvik__redact_url(copy, n, out, outlen);
  else
    kvik__redact(copy, n, out, outlen);
  CHECK(memchr(out, '\0', outlen) != NULL);
  free(copy);
  return out;
}

static bool has_capital_qz(const char *s) { return strchr(s, 'Q') || strchr(s, 'Z'); }

/* Intervals [a, b) of s that the grammar calls secret, written to a/b (at most max). */
static size_t secret_spans(const char *s, const struct kvik__url *u, size_t *a, size_t *b,
                           size_t max) {
  static const char *const names[] = {"x-amz-signature",
                                      "x-amz-security-token",
                                      "x-amz-credential",
                                      "signature",
                                      "sig",
                                      "token",
                                      NULL};
  size_t k = 0;
  if (u->has_user && k < max) {
    const char *colon = memchr(u->user, ':', u->user_len);
    a[k] = (size_t)((colon ? colon + 1 : u->user) - s);
    b[k++] = (size_t)(u->user + u->user_len - s);
  }
  if (u->has_query) {
    const char *q = u->query, *end = u->query + u->query_len;
    while (q <= end && k < max) {
      const char *amp = memchr(q, '&', (size_t)(end - q));
      const char *pend = amp ? amp : end;
      const char *eq = memchr(q, '=', (size_t)(pend - q));
      if (eq)
        for (const char *const *nm = names; *nm; nm++)
          if ((size_t)(eq - q) == strlen(*nm) && strncasecmp(q, *nm, strlen(*nm)) == 0) {
            a[k] = (size_t)(eq + 1 - s);
            b[k++] = (size_t)(pend - s);
            break;
          }
      if (!amp)
        break;
      q = amp + 1;
    }
  }
  return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3)
    return 0;
  size_t outlen = 1 + (size_t)data[0] * 4;
  size_t plen = data[1] % 32, slen = data[2] % 32;
  data += 3;
  size -= 3;
  if (plen + slen > size)
    return 0;
  const uint8_t *pre = data, *suf = data + plen, *tpl = data + plen + slen;
  size_t tlen = size - plen - slen;

  /* The URL: the template with each marker replaced by the secret. */
  size_t markers = 0;
  for (size_t i = 0; i < tlen; i++)
    markers += tpl[i] == 0x01;
  size_t ulen = tlen + markers * (SECRET_LEN - 1);
  char *url = malloc(ulen + 1);
  size_t *where = malloc((markers ? markers : 1) * sizeof *where);
  CHECK(url && where);
  size_t j = 0, m = 0;
  for (size_t i = 0; i < tlen; i++) {
    if (tpl[i] == 0x01) {
      where[m++] = j;
      memcpy(url + j, SECRET, SECRET_LEN);
      j += SECRET_LEN;
    } else {
      copy_plain(url + j, tpl + i, 1);
      j++;
    }
  }
  url[ulen] = '\0';

  /* The text: prefix, URL, suffix. */
  size_t xlen = plen + ulen + slen;
  char *text = malloc(xlen + 1);
  CHECK(text);
  copy_plain(text, pre, plen);
  memcpy(text + plen, url, ulen);
  copy_plain(text + plen + ulen, suf, slen);
  text[xlen] = '\0';

  /* Whether every copy of the secret sits in a secret place of a URL the parser accepts. */
  bool oracle = false;
  struct kvik__url u;
  if (markers > 0 && kvik__url_parse(url, &u) == 0) {
    size_t a[64], b[64];
    size_t k = secret_spans(url, &u, a, b, 64);
    oracle = true;
    for (size_t i = 0; i < markers && oracle; i++) {
      bool in_one = false;
      for (size_t s = 0; s < k && !in_one; s++)
        in_one = a[s] <= where[i] && where[i] + SECRET_LEN <= b[s];
      oracle = in_one;
    }
  }

  char *r1 = redact_exact(url, ulen, outlen, true);
  char *r2 = redact_exact(text, xlen, outlen, false);
  if (oracle) {
    CHECK(!has_capital_qz(r1));
    CHECK(!has_capital_qz(r2));
    /* And with room for everything, not only a truncated prefix. */
    char *r3 = redact_exact(url, ulen, ulen * 3 + 8, true);
    char *r4 = redact_exact(text, xlen, xlen * 3 + 8, false);
    CHECK(!has_capital_qz(r3));
    CHECK(!has_capital_qz(r4));
    free(r3);
    free(r4);
  }
  free(r1);
  free(r2);
  /* The raw input as free text too: any bytes, NULs included. */
  char *r5 = redact_exact((const char *)data, size, outlen, false);
  free(r5);
  free(text);
  free(where);
  free(url);
  return 0;
}
