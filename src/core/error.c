/* Error codes, their names and texts, and the per-thread detail message. */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* This thread's detail for its most recent failure. Per thread, so no lock and no sharing. */
static _Thread_local char last_error[KVIK_ERRMSG_MAX];

const char *kvik_version(void) { return KVIK_VERSION_STRING; }

struct code_entry {
  int code;
  const char *name;
  const char *text;
};

static const struct code_entry kvik_codes[] = {
#define KVIK_X_ENTRY(name, value, text) {value, #name, text},
    KVIK_ERRORS(KVIK_X_ENTRY)
#undef KVIK_X_ENTRY
};

const char *kvik_strerror(int code) {
  if (code >= 0)
    return "success";
  for (size_t i = 0; i < sizeof kvik_codes / sizeof kvik_codes[0]; i++)
    if (kvik_codes[i].code == code)
      return kvik_codes[i].text;
  const char *t = code > -4096 ? strerrordesc_np(-code) : NULL;
  return t ? t : "unknown error";
}

const char *kvik_strerror_name(int code) {
  if (code >= 0)
    return "OK";
  for (size_t i = 0; i < sizeof kvik_codes / sizeof kvik_codes[0]; i++)
    if (kvik_codes[i].code == code)
      return kvik_codes[i].name;
  const char *n = code > -4096 ? strerrorname_np(-code) : NULL;
  return n ? n : "UNKNOWN";
}

const char *kvik_last_error(void) { return last_error; }

const char *kvik__errno_text(int errnum) {
  /* strerrordesc_np returns static, untranslated text: thread-safe, unlike strerror(). */
  const char *t = strerrordesc_np(errnum);
  return t ? t : "unknown error";
}

int kvik__verr(int code, const char *fmt, va_list ap) {
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  return code;
}

int kvik__err(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  kvik__verr(code, fmt, ap);
  va_end(ap);
  return code;
}

int kvik__err_set(int code, const char *msg) {
  if (msg != last_error)
    snprintf(last_error, sizeof last_error, "%s", msg ? msg : "");
  return code;
}

void kvik__err_clear(void) { last_error[0] = '\0'; }
