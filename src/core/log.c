/* The library's only output: the user's log callback, or KVIKIO_LOG_FILE when the user set it.
 * Silent by default. */
#include "core/core.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>

/* Guards sink_fn, sink_user, sink_level. The callback itself is called after unlocking. */
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;
static kvik_log_fn sink_fn;
static void *sink_user;
static int sink_level = KVIK_LOG_WARN;

/* Guards log_file and log_file_failed: the KVIKIO_LOG_FILE stream, opened on first message. */
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;
static int log_file_failed;

void kvik_set_log(kvik_log_fn fn, void *user, int min_level) {
  pthread_mutex_lock(&sink_lock);
  sink_fn = fn;
  sink_user = user;
  sink_level = min_level;
  pthread_mutex_unlock(&sink_lock);
}

static const char *level_name(int level) {
  static const char *const names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"};
  return level >= 0 && level < KVIK_LOG_OFF ? names[level] : "?";
}

static void to_file(int level, const char *msg) {
  if (kvik__config_ready() != 0 || level < (int)kvik__cfg_u64(KVIK_CFG_LOG_LEVEL))
    return;
  char path[1024];
  kvik__cfg_str(KVIK_CFG_LOG_FILE, path, sizeof path);
  if (!path[0])
    return;
  pthread_mutex_lock(&file_lock);
  if (!log_file && !log_file_failed) {
    log_file = fopen(path, "ae");
    log_file_failed = log_file == NULL;
  }
  if (log_file) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(log_file, "[kvik %lld.%03ld %s] %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
            level_name(level), msg);
    fflush(log_file);
  }
  pthread_mutex_unlock(&file_lock);
}

void kvik__log(int level, const char *fmt, ...) {
  pthread_mutex_lock(&sink_lock);
  kvik_log_fn fn = sink_fn;
  void *user = sink_user;
  int min = sink_level;
  pthread_mutex_unlock(&sink_lock);
  char msg[KVIK_ERRMSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (fn && level >= min)
    fn(level, msg, user);
  to_file(level, msg);
}
