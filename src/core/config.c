/* The one table of settings: name, environment variable, type, default, bounds. The
 * environment is read once, on first need; a bad value is an error naming the variable and
 * the value, returned by every call that needs the configuration until it is fixed. */
#include "core/core.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)

struct setting {
  const char *env;
  const char *alias; /* a second variable with the same meaning, or NULL */
  int type;          /* enum kvik_cfg_type */
  uint64_t def;      /* numeric default (0 for string settings) */
  uint64_t min, max; /* inclusive bounds of numeric settings */
  const char *def_str;
};

/* Index = enum kvik_cfg. NTHREADS' default is computed at load time (see default_nthreads). */
static const struct setting table[KVIK_CFG_COUNT] = {
    [KVIK_CFG_COMPAT_MODE] = {"KVIKIO_COMPAT_MODE", NULL, KVIK_CFG_TYPE_ENUM, KVIK_COMPAT_AUTO,
                              0, 2, NULL},
    [KVIK_CFG_NTHREADS] = {"KVIKIO_NTHREADS", "KVIKIO_NUM_THREADS", KVIK_CFG_TYPE_U64, 0, 1,
                           4096, NULL},
    [KVIK_CFG_TASK_SIZE] = {"KVIKIO_TASK_SIZE", NULL, KVIK_CFG_TYPE_SIZE, 4 * MIB, 1,
                            1024 * GIB, NULL},
    [KVIK_CFG_GDS_THRESHOLD] = {"KVIKIO_GDS_THRESHOLD", NULL, KVIK_CFG_TYPE_SIZE, 16 * KIB, 0,
                                1024 * GIB, NULL},
    /* Any positive size, as kvikio takes (its own tests use 1, 10, 100 and 1000 bytes). The
     * value is reported as set; the buffers are rounded up to whole pages (src/pool/bounce.c),
     * which O_DIRECT needs. */
    [KVIK_CFG_BOUNCE_BUFFER_SIZE] = {"KVIKIO_BOUNCE_BUFFER_SIZE", NULL, KVIK_CFG_TYPE_SIZE,
                                     16 * MIB, 1, 4 * GIB, NULL},
    [KVIK_CFG_AUTO_DIRECT_IO_READ] = {"KVIKIO_AUTO_DIRECT_IO_READ", NULL, KVIK_CFG_TYPE_BOOL, 0,
                                      0, 1, NULL},
    [KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD] = {"KVIKIO_AUTO_DIRECT_IO_READ_OVERREAD", NULL,
                                               KVIK_CFG_TYPE_BOOL, 0, 0, 1, NULL},
    [KVIK_CFG_AUTO_DIRECT_IO_WRITE] = {"KVIKIO_AUTO_DIRECT_IO_WRITE", NULL, KVIK_CFG_TYPE_BOOL,
                                       1, 0, 1, NULL},
    [KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE] = {"KVIKIO_THREAD_POOL_PER_BLOCK_DEVICE", NULL,
                                               KVIK_CFG_TYPE_BOOL, 0, 0, 1, NULL},
    [KVIK_CFG_HTTP_MAX_ATTEMPTS] = {"KVIKIO_HTTP_MAX_ATTEMPTS", NULL, KVIK_CFG_TYPE_U64, 3, 1,
                                    1000, NULL},
    [KVIK_CFG_HTTP_TIMEOUT] = {"KVIKIO_HTTP_TIMEOUT", NULL, KVIK_CFG_TYPE_U64, 60, 1, 604800,
                               NULL},
    [KVIK_CFG_HTTP_STATUS_CODES] = {"KVIKIO_HTTP_STATUS_CODES", NULL, KVIK_CFG_TYPE_STRING, 0, 0,
                                    0, "429,500,502,503,504"},
    [KVIK_CFG_REMOTE_VERBOSE] = {"KVIKIO_REMOTE_VERBOSE", NULL, KVIK_CFG_TYPE_BOOL, 0, 0, 1,
                                 NULL},
    [KVIK_CFG_WEBHDFS_USERNAME] = {"KVIKIO_WEBHDFS_USERNAME", NULL, KVIK_CFG_TYPE_STRING, 0, 0,
                                   0, ""},
    [KVIK_CFG_LOG_LEVEL] = {"KVIKIO_LOG_LEVEL", NULL, KVIK_CFG_TYPE_ENUM, KVIK_LOG_WARN, 0,
                            KVIK_LOG_OFF, NULL},
    [KVIK_CFG_LOG_FILE] = {"KVIKIO_LOG_FILE", NULL, KVIK_CFG_TYPE_STRING, 0, 0, 0, ""},
    [KVIK_CFG_PREFER_CUFILE_COMPAT] = {"KVIK_PREFER_CUFILE_COMPAT", NULL, KVIK_CFG_TYPE_BOOL, 0,
                                       0, 1, NULL},
    [KVIK_CFG_STREAM_FALLBACK] = {"KVIK_STREAM_FALLBACK", NULL, KVIK_CFG_TYPE_BOOL, 1, 0, 1,
                                  NULL},
};

#define STR_MAX 1024
#define MAX_CODES 64

/* Numeric values are atomics so readers on hot paths take no lock. */
static _Atomic uint64_t values[KVIK_CFG_COUNT];
static _Atomic int sources[KVIK_CFG_COUNT];

/* Guards strings[], codes[], ncodes, loaded, load_code and load_msg. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char strings[KVIK_CFG_COUNT][STR_MAX];
static int codes[MAX_CODES];
static size_t ncodes;
static _Atomic int loaded;  /* 1 once the environment was read without error */
static int failed;          /* 1 if the last read of the environment failed: sticky */
static int load_code;       /* error of the last load, 0 if none                 */
static char load_msg[KVIK_ERRMSG_MAX];

static uint64_t default_nthreads(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1)
    n = 1;
  return (uint64_t)(n > 64 ? 64 : n);
}

static int valid_key(int key) { return key >= 0 && key < KVIK_CFG_COUNT; }

/* Reads the decimal number that starts s (after spaces; no sign). 0 and *end just past it, or
 * -1 when there is no number or it overflows. */
static int leading_number(const char *s, unsigned long long *v, char **end) {
  while (isspace((unsigned char)*s))
    s++;
  if (!isdigit((unsigned char)*s))
    return -1;
  errno = 0;
  *v = strtoull(s, end, 10);
  return errno == ERANGE ? -1 : 0;
}

int kvik__parse_size(const char *s, uint64_t *out) {
  unsigned long long v;
  char *end;
  if (leading_number(s, &v, &end) != 0)
    return -1;
  uint64_t mult = 1;
  switch (toupper((unsigned char)*end)) {
  case 'K': mult = KIB; end++; break;
  case 'M': mult = MIB; end++; break;
  case 'G': mult = GIB; end++; break;
  case 'T': mult = 1024 * GIB; end++; break;
  default: break;
  }
  if (mult > 1 && (*end == 'i' || *end == 'I'))
    end++;
  if (*end == 'b' || *end == 'B')
    end++;
  while (isspace((unsigned char)*end))
    end++;
  if (*end != '\0')
    return -1;
  if (v > UINT64_MAX / mult)
    return -1;
  *out = (uint64_t)v * mult;
  return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
  unsigned long long v;
  char *end;
  if (leading_number(s, &v, &end) != 0)
    return -1;
  while (isspace((unsigned char)*end))
    end++;
  if (*end != '\0')
    return -1;
  *out = v;
  return 0;
}

static int word_in(const char *s, const char *const *words) {
  for (; *words; words++)
    if (strcasecmp(s, *words) == 0)
      return 1;
  return 0;
}

static int parse_bool(const char *s, uint64_t *out) {
  static const char *const yes[] = {"1", "true", "on", "yes", NULL};
  static const char *const no[] = {"0", "false", "off", "no", NULL};
  if (word_in(s, yes))
    *out = 1;
  else if (word_in(s, no))
    *out = 0;
  else
    return -1;
  return 0;
}

static int parse_compat(const char *s, uint64_t *out) {
  if (strcasecmp(s, "auto") == 0) {
    *out = KVIK_COMPAT_AUTO;
    return 0;
  }
  uint64_t b;
  if (parse_bool(s, &b) != 0)
    return -1;
  *out = b ? KVIK_COMPAT_ON : KVIK_COMPAT_OFF;
  return 0;
}

static const char *const level_names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "OFF"};

static int parse_level(const char *s, uint64_t *out) {
  for (int i = 0; i <= KVIK_LOG_OFF; i++)
    if (strcasecmp(s, level_names[i]) == 0) {
      *out = (uint64_t)i;
      return 0;
    }
  if (strcasecmp(s, "WARNING") == 0) {
    *out = KVIK_LOG_WARN;
    return 0;
  }
  if (strcasecmp(s, "NONE") == 0) {
    *out = KVIK_LOG_OFF;
    return 0;
  }
  return parse_u64(s, out) == 0 && *out <= KVIK_LOG_OFF ? 0 : -1;
}

/* Parses "429,500" into out (max MAX_CODES). Every entry must be a status code 100..599; an
 * empty entry (a trailing comma) is an error. An empty string means "retry on none". */
static int parse_codes(const char *s, int *out, size_t *n) {
  *n = 0;
  const char *p = s;
  while (isspace((unsigned char)*p))
    p++;
  if (*p == '\0')
    return 0;
  for (;;) {
    while (isspace((unsigned char)*p))
      p++;
    if (!isdigit((unsigned char)*p))
      return -1;
    char *end;
    long v = strtol(p, &end, 10);
    if (v < 100 || v > 599 || *n == MAX_CODES)
      return -1;
    out[(*n)++] = (int)v;
    p = end;
    while (isspace((unsigned char)*p))
      p++;
    if (*p == '\0')
      return 0;
    if (*p != ',')
      return -1;
    p++;
  }
}

static const char *type_hint(int key) {
  switch (key) {
  case KVIK_CFG_COMPAT_MODE: return "expected ON, OFF or AUTO (or true/false/yes/no/1/0)";
  case KVIK_CFG_LOG_LEVEL: return "expected TRACE, DEBUG, INFO, WARN, ERROR or OFF";
  case KVIK_CFG_HTTP_STATUS_CODES:
    return "expected a comma-separated list of HTTP status codes (100-599)";
  default: break;
  }
  switch (table[key].type) {
  case KVIK_CFG_TYPE_BOOL: return "expected true/false, on/off, yes/no or 1/0";
  case KVIK_CFG_TYPE_SIZE: return "expected a byte count with an optional K, M, G or T suffix";
  default: return "expected a non-negative integer";
  }
}

/* Parses text for key. Numeric results in *num, string results validated in place. Returns 0 or
 * KVIK_ECONFIG/KVIK_EINVAL (code chosen by the caller) with the detail set. */
static int parse_value(int key, const char *text, uint64_t *num, int *codes_out, size_t *ncodes_out,
                       int code, const char *origin) {
  const struct setting *st = &table[key];
  int rc = 0;
  if (key == KVIK_CFG_COMPAT_MODE)
    rc = parse_compat(text, num);
  else if (key == KVIK_CFG_LOG_LEVEL)
    rc = parse_level(text, num);
  else if (key == KVIK_CFG_HTTP_STATUS_CODES)
    rc = parse_codes(text, codes_out, ncodes_out);
  else if (st->type == KVIK_CFG_TYPE_BOOL)
    rc = parse_bool(text, num);
  else if (st->type == KVIK_CFG_TYPE_SIZE)
    rc = kvik__parse_size(text, num);
  else if (st->type == KVIK_CFG_TYPE_U64)
    rc = parse_u64(text, num);
  /* origin is the environment variable that was read, or "value" for a setter: name both. */
  char who[128];
  if (strcmp(origin, st->env) == 0)
    snprintf(who, sizeof who, "%s", origin);
  else if (strncmp(origin, "KVIKIO_", 7) == 0)
    snprintf(who, sizeof who, "%s (alias of %s)", origin, st->env);
  else
    snprintf(who, sizeof who, "%s for %s", origin, st->env);
  if (rc != 0)
    return kvik__err(code, "%s=\"%s\": invalid value, %s", who, text, type_hint(key));
  if (st->type != KVIK_CFG_TYPE_STRING && (*num < st->min || *num > st->max))
    return kvik__err(code, "%s=\"%s\": out of range, must be between %llu and %llu", who, text,
                     (unsigned long long)st->min, (unsigned long long)st->max);
  if (st->type == KVIK_CFG_TYPE_STRING && strlen(text) >= STR_MAX)
    return kvik__err(code, "%s: value longer than %d bytes", who, STR_MAX - 1);
  return 0;
}

int kvik__config_parse(enum kvik_cfg key, const char *text, uint64_t *num) {
  if (!valid_key((int)key) || !text || !num)
    return kvik__err(KVIK_EINVAL, "kvik__config_parse: %s",
                     !valid_key((int)key) ? "unknown key" : "text or num is NULL");
  int tmp[MAX_CODES];
  size_t ntmp = 0;
  *num = 0;
  return parse_value((int)key, text, num, tmp, &ntmp, KVIK_ECONFIG, table[key].env);
}

/* Reads the environment into the table. Called with lock held. */
static int load_locked(void) {
  for (int k = 0; k < KVIK_CFG_COUNT; k++) {
    const struct setting *st = &table[k];
    uint64_t v = k == KVIK_CFG_NTHREADS ? default_nthreads() : st->def;
    atomic_store(&values[k], v);
    atomic_store(&sources[k], KVIK_CFG_SRC_DEFAULT);
    if (st->type == KVIK_CFG_TYPE_STRING)
      snprintf(strings[k], STR_MAX, "%s", st->def_str);
  }
  int tmp[MAX_CODES];
  size_t ntmp = 0;
  parse_codes(table[KVIK_CFG_HTTP_STATUS_CODES].def_str, codes, &ncodes);

  for (int k = 0; k < KVIK_CFG_COUNT; k++) {
    const struct setting *st = &table[k];
    const char *var = st->env;
    const char *text = getenv(st->env);
    if (st->alias) {
      const char *alt = getenv(st->alias);
      if (text && alt && strcmp(text, alt) != 0)
        return kvik__err(KVIK_ECONFIG, "%s=\"%s\" and %s=\"%s\" are both set and differ",
                         st->env, text, st->alias, alt);
      if (!text && alt) {
        text = alt;
        var = st->alias;
      }
    }
    if (!text)
      continue;
    uint64_t v = 0;
    int rc = parse_value(k, text, &v, tmp, &ntmp, KVIK_ECONFIG, var);
    if (rc != 0)
      return rc;
    if (k == KVIK_CFG_HTTP_STATUS_CODES) {
      memcpy(codes, tmp, ntmp * sizeof tmp[0]);
      ncodes = ntmp;
    }
    if (st->type == KVIK_CFG_TYPE_STRING)
      snprintf(strings[k], STR_MAX, "%s", text);
    else
      atomic_store(&values[k], v);
    atomic_store(&sources[k], KVIK_CFG_SRC_ENV);
  }
  return 0;
}

/* Reads the environment on first need (or when forced). A failure is kept: every later call
 * returns the same code and message until kvik_config_reload() succeeds. */
static int load(int force) {
  if (!force && atomic_load_explicit(&loaded, memory_order_acquire))
    return 0;
  char msg[KVIK_ERRMSG_MAX];
  pthread_mutex_lock(&lock);
  int rc = 0;
  if (force || (!atomic_load(&loaded) && !failed)) {
    rc = load_locked();
    load_code = rc;
    failed = rc != 0;
    if (rc != 0)
      snprintf(load_msg, sizeof load_msg, "%s", kvik_last_error());
    atomic_store_explicit(&loaded, rc == 0, memory_order_release);
  } else if (failed) {
    rc = load_code;
  }
  if (rc)
    snprintf(msg, sizeof msg, "%s", load_msg);
  pthread_mutex_unlock(&lock);
  return rc ? kvik__err_set(rc, msg) : 0;
}

int kvik_config_init(void) { return load(0); }
int kvik_config_reload(void) { return load(1); }
int kvik__config_ready(void) { return load(0); }

uint64_t kvik__cfg_u64(enum kvik_cfg key) {
  return atomic_load_explicit(&values[key], memory_order_relaxed);
}

size_t kvik__cfg_http_codes(int *out, size_t max) {
  pthread_mutex_lock(&lock);
  size_t n = ncodes;
  memcpy(out, codes, KVIK_MIN(n, max) * sizeof out[0]);
  pthread_mutex_unlock(&lock);
  return n;
}

void kvik__cfg_str(enum kvik_cfg key, char *buf, size_t len) {
  if (!len)
    return;
  pthread_mutex_lock(&lock);
  snprintf(buf, len, "%s", strings[key]);
  pthread_mutex_unlock(&lock);
}

int kvik_config_get_u64(enum kvik_cfg key, uint64_t *value) {
  if (!valid_key((int)key) || !value)
    return kvik__err(KVIK_EINVAL, "kvik_config_get_u64: %s", value ? "unknown key" : "value is NULL");
  if (table[key].type == KVIK_CFG_TYPE_STRING)
    return kvik__err(KVIK_EINVAL, "kvik_config_get_u64: %s is a string setting", table[key].env);
  int rc = load(0);
  if (rc)
    return rc;
  *value = kvik__cfg_u64(key);
  return 0;
}

int kvik_config_set_u64(enum kvik_cfg key, uint64_t value) {
  if (!valid_key((int)key))
    return kvik__err(KVIK_EINVAL, "kvik_config_set_u64: unknown key %d", (int)key);
  const struct setting *st = &table[key];
  if (st->type == KVIK_CFG_TYPE_STRING)
    return kvik__err(KVIK_EINVAL, "kvik_config_set_u64: %s is a string setting", st->env);
  if (value < st->min || value > st->max)
    return kvik__err(KVIK_EINVAL, "%s: %llu is out of range, must be between %llu and %llu",
                     st->env, (unsigned long long)value, (unsigned long long)st->min,
                     (unsigned long long)st->max);
  int rc = load(0);
  if (rc)
    return rc;
  atomic_store(&values[key], value);
  atomic_store(&sources[key], KVIK_CFG_SRC_SET);
  return 0;
}

int kvik_config_set_str(enum kvik_cfg key, const char *text) {
  if (!valid_key((int)key) || !text)
    return kvik__err(KVIK_EINVAL, "kvik_config_set_str: %s", text ? "unknown key" : "value is NULL");
  int rc = load(0);
  if (rc)
    return rc;
  uint64_t v = 0;
  int tmp[MAX_CODES];
  size_t ntmp = 0;
  rc = parse_value((int)key, text, &v, tmp, &ntmp, KVIK_EINVAL, "value");
  if (rc)
    return rc;
  pthread_mutex_lock(&lock);
  if (key == KVIK_CFG_HTTP_STATUS_CODES) {
    memcpy(codes, tmp, ntmp * sizeof tmp[0]);
    ncodes = ntmp;
  }
  if (table[key].type == KVIK_CFG_TYPE_STRING)
    snprintf(strings[key], STR_MAX, "%s", text);
  else
    atomic_store(&values[key], v);
  atomic_store(&sources[key], KVIK_CFG_SRC_SET);
  pthread_mutex_unlock(&lock);
  return 0;
}

int kvik_config_get_str(enum kvik_cfg key, char *buf, size_t len) {
  if (!valid_key((int)key) || (!buf && len))
    return kvik__err(KVIK_EINVAL, "kvik_config_get_str: %s", buf ? "unknown key" : "buf is NULL");
  int rc = load(0);
  if (rc)
    return rc;
  uint64_t v = kvik__cfg_u64(key);
  char tmp[STR_MAX];
  if (table[key].type == KVIK_CFG_TYPE_STRING)
    kvik__cfg_str(key, tmp, sizeof tmp);
  else if (key == KVIK_CFG_COMPAT_MODE)
    snprintf(tmp, sizeof tmp, "%s", v == KVIK_COMPAT_ON ? "ON" : v == KVIK_COMPAT_OFF ? "OFF" : "AUTO");
  else if (key == KVIK_CFG_LOG_LEVEL)
    snprintf(tmp, sizeof tmp, "%s", level_names[v <= KVIK_LOG_OFF ? v : KVIK_LOG_OFF]);
  else if (table[key].type == KVIK_CFG_TYPE_BOOL)
    snprintf(tmp, sizeof tmp, "%s", v ? "true" : "false");
  else
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
  return snprintf(buf, len, "%s", tmp);
}

const char *kvik_config_name(enum kvik_cfg key) {
  return valid_key((int)key) ? table[key].env : NULL;
}

int kvik_config_type(enum kvik_cfg key) {
  return valid_key((int)key) ? table[key].type : kvik__err(KVIK_EINVAL, "unknown key %d", (int)key);
}

int kvik_config_source(enum kvik_cfg key) {
  if (!valid_key((int)key))
    return kvik__err(KVIK_EINVAL, "unknown key %d", (int)key);
  int rc = load(0);
  if (rc)
    return rc;
  return atomic_load(&sources[key]);
}

int kvik_config_bounds(enum kvik_cfg key, uint64_t *min, uint64_t *max) {
  if (!valid_key((int)key) || table[key].type == KVIK_CFG_TYPE_STRING)
    return kvik__err(KVIK_EINVAL, "kvik_config_bounds: not a numeric setting");
  if (min)
    *min = table[key].min;
  if (max)
    *max = table[key].max;
  return 0;
}
