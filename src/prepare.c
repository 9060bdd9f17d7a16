/* kvik_prepare: a process's first-call setup done ahead of time (docs/gpu.md, "The first call").
 *
 * Each step is something a first read does on demand anyway, so this file only triggers them:
 * the configuration, the pool's workers (kvik__pool_start) and, for a device, the driver, the
 * device's primary context and one pinned pipeline buffer per worker (kvik__dev_prepare), left
 * idle in the bounce-buffer pool. The workers' streams are not made here: a stream is per
 * worker thread, so making them would take one task per worker that holds its worker until
 * every other worker has one, i.e. tasks waiting for each other, which the pool never does; they
 * cost about 25 us each on their first device I/O. */
#include "core/core.h"
#include "gpu/devio.h"
#include "pool/pool.h"

#include <pthread.h>
#include <stdio.h>

/* One prepare at a time: two concurrent calls would each take n buffers and so pin 2n. */
static pthread_mutex_t prepare_lock = PTHREAD_MUTEX_INITIALIZER;

/* Puts "kvik_prepare: <what>: " in front of this thread's detail, keeping the code. */
static int prefixed(int rc, const char *what) {
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", kvik_last_error());
  return kvik__err(rc, "kvik_prepare: %s: %s", what, msg);
}

int kvik_prepare(const struct kvik_prepare_opts *opts) {
  struct kvik_prepare_opts o = {.sz = sizeof o, .device = -1};
  if (opts) {
    /* Fields up to flags exist in every version of the struct. */
    if (opts->sz < sizeof o)
      return kvik__err(KVIK_EINVAL, "kvik_prepare: opts->sz is %zu, expected at least %zu",
                       opts->sz, sizeof o);
    o = *opts;
  }
  if (o.flags != 0)
    return kvik__err(KVIK_EINVAL, "kvik_prepare: unknown flags 0x%x (none are defined)", o.flags);
  if (o.device < -1)
    return kvik__err(KVIK_EINVAL,
                     "kvik_prepare: device is %d: -1 (host only) or a CUDA "
                     "device ordinal",
                     o.device);
  int rc = kvik__config_ready();
  if (rc)
    return prefixed(rc, "the configuration");
  kvik_pool *pool = o.pool;
  if (pool) {
    if ((rc = kvik__pool_check(pool, "kvik_prepare")) != 0)
      return rc;
  } else if ((rc = kvik_pool_default(&pool)) != 0) {
    return prefixed(rc, "the default pool");
  }
  int n = kvik_pool_nthreads(pool);
  if (n < 0)
    return prefixed(n, "the pool");

  pthread_mutex_lock(&prepare_lock);
  if ((rc = kvik__pool_start(pool)) != 0) {
    rc = prefixed(rc, "starting the pool's workers");
  } else if (o.device >= 0 && (rc = kvik__dev_prepare(o.device, (size_t)n)) != 0) {
    char what[64];
    snprintf(what, sizeof what, "device %d", o.device);
    rc = prefixed(rc, what);
  }
  pthread_mutex_unlock(&prepare_lock);
  return rc;
}
