/* A fake CUDA driver, built as libcuda.so.1 for CPU-only tests. fake_cuda.h describes the
 * model and the control functions. Every entry point kvik's table names (src/gpu/cuda_list.h)
 * is defined here with the signature the list gives, so the fake cannot drift from what kvik
 * calls, and kvik's mirror is checked against the real cuda.h by tests/cuda.
 *
 * Locking: g_lock guards the allocation table, contexts, events, the stream list, the
 * injection rules and the options; g_cv (with g_lock) signals event completion. Each stream
 * has its own mu/cv for its queue. No code holds g_lock and a stream lock at once, and no
 * user callback (host function) runs under either. */
#include "gpu/cuda.h"
#include "gpu/so_ctl.h"

#include "fake_cuda.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* Every driver entry point, declared from kvik's list: a definition below with another
 * signature fails to compile. */
#define FAKE_PROTO(required, name, params) EXPORT CUresult name params;
KVIK_CUDA_FUNCS(FAKE_PROTO)
#undef FAKE_PROTO

EXPORT int fake_cuda_fail(const char *fn, long after, int err, long times);
EXPORT int fake_cuda_fail_after(const char *fn, long n, int err);
EXPORT void fake_cuda_fail_clear(void);
EXPORT long fake_cuda_calls(const char *fn);
EXPORT long fake_cuda_live(const char *what);
EXPORT int fake_cuda_set(const char *option, long value);
EXPORT int fake_cuda_backing(uintptr_t addr, size_t n, void **out);

#define MAX_DEVICES 8
#define CTX_MAGIC 0x63747866u    /* "fxtc" */
#define STREAM_MAGIC 0x73747266u /* "frts" */
#define EVENT_MAGIC 0x76657466u  /* "ftev" */

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t hw_queue = PTHREAD_MUTEX_INITIALIZER; /* option "one_queue" */
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

/* ---- options and environment ------------------------------------------------------------- */

static int n_devices = 2;
static int init_error = 0;
static int driver_version = 13000;
static atomic_bool initialized;
static _Atomic long opt_delay_us;
static long opt_range_attrs = 1, opt_mempool_attr = 1, opt_pool_address_range = 0;
static long opt_pinned_limit = 0;
static long opt_stream_mem_ops = 1;
static atomic_long opt_alloc_syncs;
static atomic_long opt_one_queue;

/* ---- call counting and failure injection ------------------------------------------------- */

/* Calls per entry point, indexed like kvik's list. */
#define FAKE_FN_ID(required, name, params) FN_##name,
enum fn_id { KVIK_CUDA_FUNCS(FAKE_FN_ID) FN_COUNT };
#undef FAKE_FN_ID
#define FAKE_FN_NAME(required, name, params) #name,
static const char *const fn_names[FN_COUNT] = {KVIK_CUDA_FUNCS(FAKE_FN_NAME)};
#undef FAKE_FN_NAME
static _Atomic long fn_calls[FN_COUNT];

struct rule {
  char fn[64];
  long after, times;
  CUresult err;
};
static struct rule rules[16]; /* g_lock */
static int n_rules;           /* g_lock */
static atomic_int rules_active;

static CUresult rule_check(const char *fn) {
  if (!atomic_load(&rules_active))
    return CUDA_SUCCESS;
  CUresult r = CUDA_SUCCESS;
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < n_rules; i++) {
    if (strcmp(rules[i].fn, fn) != 0 || rules[i].times == 0)
      continue;
    if (rules[i].after > 0) {
      rules[i].after--;
      break;
    }
    if (rules[i].times > 0)
      rules[i].times--;
    r = rules[i].err;
    break;
  }
  pthread_mutex_unlock(&g_lock);
  return r;
}

/* Driver calls from a thread that is exiting (live "exit_calls"). The real driver keeps
 * per-thread state that it tears down when a thread exits, and does not promise that calls from
 * a thread-exit destructor work (kvik's streams destroyed from one crashed cuStreamDestroy_v2 on
 * an H200). The fake enforces the rule: its key is created when it loads, before any user of it
 * can create one (glibc runs destructors in key order), so its destructor runs first and marks
 * the thread as exiting; every later call on that thread is counted, and named on stderr. */
static pthread_key_t exit_key;
static bool exit_key_ok;
static _Thread_local bool tls_registered, tls_exiting;
static atomic_long exit_calls;

static void thread_exiting(void *p) {
  (void)p;
  tls_exiting = true;
}

static void note_thread(enum fn_id id) {
  if (!tls_registered) {
    tls_registered = true;
    if (exit_key_ok)
      pthread_setspecific(exit_key, (void *)1);
  }
  if (tls_exiting) {
    atomic_fetch_add(&exit_calls, 1);
    fprintf(stderr,
            "fake libcuda: %s called while its thread exits (from a thread-exit "
            "destructor)\n",
            fn_names[id]);
  }
}

/* Every entry point starts here: counts the call, refuses it before cuInit (unless
 * needs_init is false), and applies injected failures. */
static CUresult enter(enum fn_id id, bool needs_init) {
  atomic_fetch_add(&fn_calls[id], 1);
  note_thread(id);
  if (needs_init && !atomic_load(&initialized))
    return CUDA_ERROR_NOT_INITIALIZED;
  return rule_check(fn_names[id]);
}

/* ---- contexts ---------------------------------------------------------------------------- */

struct CUctx_st {
  unsigned magic;
  int device;
  bool primary;
  long refs;      /* primary: retains not released (g_lock)                              */
  bool destroyed; /* created: cuCtxDestroy called (g_lock)                               */
  struct CUctx_st *next_created; /* list of created contexts, kept for the process life */
};
static struct CUctx_st primary[MAX_DEVICES];
static struct CUctx_st *created; /* g_lock */

static _Thread_local CUcontext tls_stack[32];
static _Thread_local int tls_depth;

static bool ctx_usable_locked(CUcontext c) {
  if (!c || c->magic != CTX_MAGIC)
    return false;
  return c->primary ? c->refs > 0 : !c->destroyed;
}

static bool ctx_usable(CUcontext c) {
  pthread_mutex_lock(&g_lock);
  bool ok = ctx_usable_locked(c);
  pthread_mutex_unlock(&g_lock);
  return ok;
}

/* The calling thread's current context, if usable. */
static CUcontext current(void) {
  CUcontext c = tls_depth ? tls_stack[tls_depth - 1] : NULL;
  return c && ctx_usable(c) ? c : NULL;
}

/* ---- allocations ------------------------------------------------------------------------- */

enum kind { K_DEVICE, K_POOL, K_MANAGED, K_PINNED, K_REGISTERED };
static const char *const kind_names[] = {"device", "pool", "managed", "pinned", "registered"};

struct alloc {
  uintptr_t base;  /* the address the user sees                                     */
  char *backing;   /* where the bytes are (== base except device and pool memory)   */
  size_t size;     /* as requested                                                  */
  size_t map_size; /* page-rounded                                                  */
  enum kind kind;
  int device;
  CUcontext ctx; /* NULL for pool memory                                          */
  bool freed;    /* device and pool: the address stays reserved, PROT_NONE        */
  unsigned long long id;
};
static struct alloc *allocs; /* g_lock */
static size_t n_allocs, cap_allocs;
static unsigned long long next_id = 1;
static long pinned_bytes;       /* g_lock */
static char pools[MAX_DEVICES]; /* addresses serve as CUmemoryPool handles */

static size_t page_round(size_t n) {
  size_t pg = (size_t)sysconf(_SC_PAGESIZE);
  return (n + pg - 1) / pg * pg;
}

static struct alloc *find_locked(uintptr_t addr, bool include_freed) {
  for (size_t i = 0; i < n_allocs; i++) {
    struct alloc *a = &allocs[i];
    if ((a->freed && !include_freed) || addr < a->base || addr - a->base >= a->size)
      continue;
    return a;
  }
  return NULL;
}

static CUresult add_locked(struct alloc a) {
  if (n_allocs == cap_allocs) {
    size_t cap = cap_allocs ? cap_allocs * 2 : 64;
    struct alloc *n = realloc(allocs, cap * sizeof *n);
    if (!n)
      return CUDA_ERROR_OUT_OF_MEMORY;
    allocs = n;
    cap_allocs = cap;
  }
  a.id = next_id++;
  allocs[n_allocs++] = a;
  return CUDA_SUCCESS;
}

static void remove_locked(struct alloc *a) { *a = allocs[--n_allocs]; }

/* Device-style memory: an inaccessible address plus a separate read-write backing. */
static CUresult alloc_device(CUdeviceptr *dptr, size_t size, enum kind k, int dev, CUcontext c) {
  if (!dptr || size == 0)
    return CUDA_ERROR_INVALID_VALUE;
  size_t ms = page_round(size);
  void *addr = mmap(NULL, ms, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (addr == MAP_FAILED)
    return CUDA_ERROR_OUT_OF_MEMORY;
  void *back =
      mmap(NULL, ms, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (back == MAP_FAILED) {
    munmap(addr, ms);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  struct alloc a = {.base = (uintptr_t)addr,
                    .backing = back,
                    .size = size,
                    .map_size = ms,
                    .kind = k,
                    .device = dev,
                    .ctx = c};
  pthread_mutex_lock(&g_lock);
  CUresult r = add_locked(a);
  pthread_mutex_unlock(&g_lock);
  if (r != CUDA_SUCCESS) {
    munmap(addr, ms);
    munmap(back, ms);
    return r;
  }
  *dptr = (CUdeviceptr)(uintptr_t)addr;
  return CUDA_SUCCESS;
}

/* Frees device, pool or managed memory whose base is dptr. */
static CUresult free_device(CUdeviceptr dptr) {
  pthread_mutex_lock(&g_lock);
  struct alloc *a = find_locked((uintptr_t)dptr, false);
  if (!a || a->base != (uintptr_t)dptr ||
      (a->kind != K_DEVICE && a->kind != K_POOL && a->kind != K_MANAGED)) {
    pthread_mutex_unlock(&g_lock);
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (a->kind == K_MANAGED) {
    /* Keep the address reserved and inaccessible, as the unified address space does. */
    mmap((void *)a->base, a->map_size, PROT_NONE,
         MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  } else {
    munmap(a->backing, a->map_size);
  }
  a->backing = NULL;
  a->freed = true;
  pthread_mutex_unlock(&g_lock);
  return CUDA_SUCCESS;
}

/* Where the bytes of [addr, addr + n) are. CUDA memory maps to its backing (an error if the
 * range leaves the allocation); an address in a freed allocation is an error; anything else
 * is host memory and used as is, unless must_track. */
static CUresult translate(uintptr_t addr, size_t n, bool must_track, char **out) {
  pthread_mutex_lock(&g_lock);
  struct alloc *a = find_locked(addr, true);
  CUresult r = CUDA_SUCCESS;
  if (!a) {
    if (must_track)
      r = CUDA_ERROR_INVALID_VALUE;
    else
      *out = (char *)addr;
  } else if (a->freed) {
    r = CUDA_ERROR_INVALID_VALUE;
  } else if (n > a->size - (addr - a->base)) {
    r = CUDA_ERROR_INVALID_VALUE;
  } else {
    *out = a->backing + (addr - a->base);
  }
  pthread_mutex_unlock(&g_lock);
  return r;
}

/* ---- streams and events ------------------------------------------------------------------ */

enum op_kind {
  OP_COPY,
  OP_SET,
  OP_HOSTFN,
  OP_RECORD,
  OP_WAIT_EVENT,
  OP_WAIT_VALUE,
  OP_WRITE_VALUE,
  OP_FREE,
  OP_KERNEL
};

struct op {
  enum op_kind kind;
  struct op *next;
  uintptr_t dst, src;
  size_t n;
  unsigned char byte;
  CUhostFn fn;
  void *data;
  CUevent ev;
  unsigned long long gen;
  cuuint32_t value;
  unsigned flags;
  int kernel;              /* OP_KERNEL: which of kvik's copy kernels (KERNEL_*)  */
  uintptr_t kstage, kbase; /* its parameters, as captured at the launch          */
  unsigned kslot;
  long long kindex;
  unsigned long long kop;
};

struct CUevent_st {
  unsigned magic;
  unsigned long long recorded; /* generation of the last record (g_lock)     */
  unsigned long long done;     /* highest generation completed (g_lock)      */
  long refs;                   /* the handle + pending operations (g_lock)   */
  CUresult err;                /* error of the stream when it completed       */
};
static long live_events; /* g_lock */

struct CUstream_st {
  unsigned magic;
  CUcontext ctx;
  pthread_mutex_t mu; /* guards the fields below */
  pthread_cond_t cv;
  struct op *head, *tail;
  unsigned long long enq, done;
  CUresult err; /* first error of an operation, reported once by a synchronizing call */
  bool stop;
  pthread_t thread;
  struct CUstream_st *next; /* list of live streams (g_lock) */
};
static struct CUstream_st *streams; /* g_lock */
static long live_streams;           /* g_lock */
static struct CUstream_st null_stream;
static pthread_once_t null_once = PTHREAD_ONCE_INIT;

static void sleep_us(long us) {
  struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static void event_put_locked(CUevent ev) {
  if (--ev->refs == 0) {
    ev->magic = 0;
    free(ev);
    live_events--;
  }
}

static bool wait_value_met(cuuint32_t v, cuuint32_t value, unsigned flags) {
  switch (flags & 0x3) {
  case CU_STREAM_WAIT_VALUE_GEQ: return (int32_t)(v - value) >= 0;
  case CU_STREAM_WAIT_VALUE_EQ: return v == value;
  case CU_STREAM_WAIT_VALUE_AND: return (v & value) != 0;
  default: /* NOR */ return ~(v | value) != 0;
  }
}

/* kvik's copy kernels (src/gpu/so_kernels.cu), done on the CPU from the same control block. */
enum { KERNEL_SO_READ = 1, KERNEL_SO_WRITE = 2 };

static CUresult run_kernel(const struct op *o) {
  CUresult r = rule_check("exec:kernel");
  char *sp = NULL;
  uintptr_t slot = o->kstage + o->kslot * (uintptr_t)KVIK_SO_STRIDE;
  if (r == CUDA_SUCCESS)
    r = translate(slot, KVIK_SO_STRIDE, true, &sp); /* device memory, as the kernels' is */
  if (r != CUDA_SUCCESS)
    return r == CUDA_ERROR_INVALID_VALUE ? CUDA_ERROR_ILLEGAL_ADDRESS : r;
  const struct kvik_so_hdr *h = (const struct kvik_so_hdr *)(void *)sp;
  long long at = o->kindex * KVIK_SO_CHUNK;
  long long n;
  if (o->kernel == KERNEL_SO_READ) {
    n = h->op == o->kop ? h->len : 0;
    if (n > h->size - at)
      n = h->size - at;
  } else {
    n = h->op == o->kop ? h->size - at : 0;
    if (n > KVIK_SO_CHUNK)
      n = KVIK_SO_CHUNK;
  }
  if (n <= 0)
    return CUDA_SUCCESS;
  uintptr_t buf = o->kbase + (uintptr_t)h->boff + (uintptr_t)at;
  char *data = sp + KVIK_SO_HDR + (buf & 15);
  char *b = NULL;
  if (translate(buf, (size_t)n, false, &b) != CUDA_SUCCESS)
    return CUDA_ERROR_ILLEGAL_ADDRESS;
  if (o->kernel == KERNEL_SO_READ)
    memcpy(b, data, (size_t)n);
  else
    memcpy(data, b, (size_t)n);
  return CUDA_SUCCESS;
}

static CUresult run_op(struct CUstream_st *s, struct op *o) {
  long delay = atomic_load(&opt_delay_us);
  if (delay > 0)
    sleep_us(delay);
  CUresult r = CUDA_SUCCESS;
  char *d = NULL, *src = NULL;
  switch (o->kind) {
  case OP_COPY:
    r = rule_check("exec:copy");
    if (r == CUDA_SUCCESS)
      r = translate(o->dst, o->n, false, &d);
    if (r == CUDA_SUCCESS)
      r = translate(o->src, o->n, false, &src);
    if (r == CUDA_SUCCESS)
      memcpy(d, src, o->n);
    else if (r == CUDA_ERROR_INVALID_VALUE)
      r = CUDA_ERROR_ILLEGAL_ADDRESS; /* the memory went away after the enqueue */
    break;
  case OP_SET:
    r = rule_check("exec:copy");
    if (r == CUDA_SUCCESS)
      r = translate(o->dst, o->n, true, &d);
    if (r == CUDA_SUCCESS)
      memset(d, o->byte, o->n);
    else if (r == CUDA_ERROR_INVALID_VALUE)
      r = CUDA_ERROR_ILLEGAL_ADDRESS;
    break;
  case OP_HOSTFN: o->fn(o->data); break;
  case OP_RECORD:
    pthread_mutex_lock(&s->mu);
    CUresult serr = s->err;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_lock(&g_lock);
    if (o->gen > o->ev->done) {
      o->ev->done = o->gen;
      o->ev->err = serr;
    }
    event_put_locked(o->ev);
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_lock);
    break;
  case OP_WAIT_EVENT:
    pthread_mutex_lock(&g_lock);
    while (o->ev->done < o->gen)
      pthread_cond_wait(&g_cv, &g_lock);
    event_put_locked(o->ev);
    pthread_mutex_unlock(&g_lock);
    break;
  case OP_WAIT_VALUE:
    r = translate(o->dst, 4, true, &d);
    if (r != CUDA_SUCCESS)
      break;
    while (!wait_value_met(__atomic_load_n((cuuint32_t *)(void *)d, __ATOMIC_ACQUIRE), o->value,
                           o->flags))
      sleep_us(20);
    break;
  case OP_WRITE_VALUE:
    r = translate(o->dst, 4, true, &d);
    if (r == CUDA_SUCCESS)
      __atomic_store_n((cuuint32_t *)(void *)d, o->value, __ATOMIC_RELEASE);
    break;
  case OP_FREE: r = free_device(o->dst); break;
  case OP_KERNEL: r = run_kernel(o); break;
  }
  return r;
}

static void *stream_main(void *arg) {
  struct CUstream_st *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->head && !s->stop)
      pthread_cond_wait(&s->cv, &s->mu);
    if (!s->head)
      break;
    struct op *o = s->head;
    pthread_mutex_unlock(&s->mu);
    /* "one_queue": every stream feeds one hardware queue, and a wait on memory holds it (CUDA's
     * scheduler cannot see what a stream memory operation waits for). Host functions run on the
     * driver's own thread, and event waits are known to the scheduler: neither holds it. */
    bool hold = atomic_load(&opt_one_queue) && o->kind != OP_HOSTFN && o->kind != OP_WAIT_EVENT;
    if (hold)
      pthread_mutex_lock(&hw_queue);
    CUresult r = run_op(s, o);
    if (hold)
      pthread_mutex_unlock(&hw_queue);
    pthread_mutex_lock(&s->mu);
    s->head = o->next;
    if (!s->head)
      s->tail = NULL;
    if (r != CUDA_SUCCESS && s->err == CUDA_SUCCESS)
      s->err = r;
    s->done++;
    pthread_cond_broadcast(&s->cv);
    free(o);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static int stream_start(struct CUstream_st *s, CUcontext c) {
  memset(s, 0, sizeof *s);
  s->magic = STREAM_MAGIC;
  s->ctx = c;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  return pthread_create(&s->thread, NULL, stream_main, s);
}

static void null_stream_init(void) {
  if (stream_start(&null_stream, NULL) == 0)
    pthread_detach(null_stream.thread);
  else
    null_stream.magic = 0;
}

/* The stream a handle names; NULL if invalid. 0, CU_STREAM_LEGACY and CU_STREAM_PER_THREAD all
 * map to one default stream. */
static struct CUstream_st *stream_of(CUstream h) {
  if (h == NULL || h == CU_STREAM_LEGACY || h == CU_STREAM_PER_THREAD) {
    pthread_once(&null_once, null_stream_init);
    return null_stream.magic == STREAM_MAGIC ? &null_stream : NULL;
  }
  return h->magic == STREAM_MAGIC ? h : NULL;
}

static CUresult enqueue_at(CUstream h, struct op tmpl, unsigned long long *pos);

static CUresult enqueue(CUstream h, struct op tmpl) { return enqueue_at(h, tmpl, NULL); }

/* Enqueues, then waits until the stream has run the operation: what CUDA does for an "async"
 * copy from device memory to pageable host memory (it returns once the copy is done). */
static CUresult enqueue_wait(CUstream h, struct op tmpl) {
  unsigned long long pos;
  CUresult r = enqueue_at(h, tmpl, &pos);
  if (r != CUDA_SUCCESS)
    return r;
  struct CUstream_st *s = stream_of(h);
  pthread_mutex_lock(&s->mu);
  while (s->done < pos)
    pthread_cond_wait(&s->cv, &s->mu);
  pthread_mutex_unlock(&s->mu);
  return CUDA_SUCCESS;
}

/* True if [p, p + n) is page-locked (pinned or registered) or managed memory. */
static bool host_tracked(uintptr_t p) {
  pthread_mutex_lock(&g_lock);
  struct alloc *a = find_locked(p, false);
  bool tracked = a && a->kind != K_DEVICE && a->kind != K_POOL;
  pthread_mutex_unlock(&g_lock);
  return tracked;
}

static CUresult enqueue_at(CUstream h, struct op tmpl, unsigned long long *pos) {
  struct CUstream_st *s = stream_of(h);
  if (!s)
    return CUDA_ERROR_INVALID_HANDLE;
  struct op *o = malloc(sizeof *o);
  if (!o)
    return CUDA_ERROR_OUT_OF_MEMORY;
  *o = tmpl;
  o->next = NULL;
  pthread_mutex_lock(&s->mu);
  if (s->tail)
    s->tail->next = o;
  else
    s->head = o;
  s->tail = o;
  s->enq++;
  if (pos)
    *pos = s->enq;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return CUDA_SUCCESS;
}

static CUresult stream_sync(struct CUstream_st *s) {
  pthread_mutex_lock(&s->mu);
  while (s->done < s->enq)
    pthread_cond_wait(&s->cv, &s->mu);
  CUresult r = s->err;
  s->err = CUDA_SUCCESS;
  pthread_mutex_unlock(&s->mu);
  return r;
}

/* Waits until every stream has run everything enqueued so far (errors stay for the stream's
 * own synchronizing calls). The implicit synchronization CUDA documents for page-locked and
 * device memory allocations; on with the option "alloc_syncs". */
static void all_streams_idle(void) {
  struct CUstream_st *list[256];
  int n = 0;
  pthread_mutex_lock(&g_lock);
  for (struct CUstream_st *x = streams; x && n < 255; x = x->next)
    list[n++] = x;
  pthread_mutex_unlock(&g_lock);
  struct CUstream_st *ns = stream_of(NULL);
  if (ns)
    list[n++] = ns;
  for (int i = 0; i < n; i++) {
    struct CUstream_st *x = list[i];
    pthread_mutex_lock(&x->mu);
    unsigned long long target = x->enq;
    while (x->done < target)
      pthread_cond_wait(&x->cv, &x->mu);
    pthread_mutex_unlock(&x->mu);
  }
}

/* ---- library load: environment ----------------------------------------------------------- */

static int parse_result(const char *s) {
#define FAKE_NAME_CMP(name, value)                                                                 \
  if (strcmp(s, #name) == 0)                                                                       \
    return value;
  KVIK_CUDA_RESULTS(FAKE_NAME_CMP)
#undef FAKE_NAME_CMP
  return atoi(s);
}

__attribute__((constructor)) static void fake_load(void) {
  exit_key_ok = pthread_key_create(&exit_key, thread_exiting) == 0;
  const char *e;
  if ((e = getenv("FAKE_CUDA_DEVICES")) != NULL) {
    n_devices = atoi(e);
    if (n_devices < 0)
      n_devices = 0;
    if (n_devices > MAX_DEVICES)
      n_devices = MAX_DEVICES;
  }
  if ((e = getenv("FAKE_CUDA_INIT_ERROR")) != NULL)
    init_error = parse_result(e);
  if ((e = getenv("FAKE_CUDA_VERSION")) != NULL)
    driver_version = atoi(e);
  if ((e = getenv("FAKE_CUDA_DELAY_US")) != NULL)
    atomic_store(&opt_delay_us, atol(e));
  if ((e = getenv("FAKE_CUDA_FAIL")) != NULL) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", e);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
      char *f[4] = {NULL, NULL, NULL, NULL};
      char *s2 = NULL;
      int n = 0;
      for (char *p = strtok_r(item, ":", &s2); p && n < 4; p = strtok_r(NULL, ":", &s2))
        f[n++] = p;
      if (n >= 3)
        fake_cuda_fail(f[0], atol(f[1]), parse_result(f[2]), n == 4 ? atol(f[3]) : 1);
    }
  }
  for (int i = 0; i < MAX_DEVICES; i++) {
    primary[i].magic = CTX_MAGIC;
    primary[i].device = i;
    primary[i].primary = true;
  }
}

/* ---- control functions ------------------------------------------------------------------- */

int fake_cuda_fail(const char *fn, long after, int err, long times) {
  pthread_mutex_lock(&g_lock);
  int rc = -1;
  if (n_rules < (int)(sizeof rules / sizeof rules[0])) {
    struct rule *r = &rules[n_rules++];
    snprintf(r->fn, sizeof r->fn, "%s", fn);
    r->after = after;
    r->times = times;
    r->err = (CUresult)err;
    atomic_store(&rules_active, 1);
    rc = 0;
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

int fake_cuda_fail_after(const char *fn, long n, int err) { return fake_cuda_fail(fn, n, err, 1); }

void fake_cuda_fail_clear(void) {
  pthread_mutex_lock(&g_lock);
  n_rules = 0;
  atomic_store(&rules_active, 0);
  pthread_mutex_unlock(&g_lock);
}

long fake_cuda_calls(const char *fn) {
  for (int i = 0; i < FN_COUNT; i++)
    if (strcmp(fn_names[i], fn) == 0)
      return atomic_load(&fn_calls[i]);
  return -1;
}

long fake_cuda_live(const char *what) {
  if (strcmp(what, "ctx_depth") == 0)
    return tls_depth;
  if (strcmp(what, "exit_calls") == 0)
    return atomic_load(&exit_calls);
  long n = -1;
  pthread_mutex_lock(&g_lock);
  for (int k = 0; k <= K_REGISTERED; k++) {
    if (strcmp(what, kind_names[k]) != 0)
      continue;
    n = 0;
    for (size_t i = 0; i < n_allocs; i++)
      n += allocs[i].kind == (enum kind)k && !allocs[i].freed;
  }
  if (strcmp(what, "stream") == 0)
    n = live_streams;
  else if (strcmp(what, "event") == 0)
    n = live_events;
  else if (strcmp(what, "primary_refs") == 0) {
    n = 0;
    for (int i = 0; i < MAX_DEVICES; i++)
      n += primary[i].refs;
  } else if (strcmp(what, "ctx") == 0) {
    n = 0;
    for (struct CUctx_st *c = created; c; c = c->next_created)
      n += !c->destroyed;
  }
  pthread_mutex_unlock(&g_lock);
  return n;
}

int fake_cuda_set(const char *option, long value) {
  int rc = 0;
  pthread_mutex_lock(&g_lock);
  if (strcmp(option, "delay_us") == 0)
    atomic_store(&opt_delay_us, value);
  else if (strcmp(option, "range_attrs") == 0)
    opt_range_attrs = value;
  else if (strcmp(option, "mempool_attr") == 0)
    opt_mempool_attr = value;
  else if (strcmp(option, "pool_address_range") == 0)
    opt_pool_address_range = value;
  else if (strcmp(option, "pinned_limit") == 0)
    opt_pinned_limit = value;
  else if (strcmp(option, "stream_mem_ops") == 0)
    opt_stream_mem_ops = value;
  else if (strcmp(option, "alloc_syncs") == 0)
    atomic_store(&opt_alloc_syncs, value);
  else if (strcmp(option, "one_queue") == 0)
    atomic_store(&opt_one_queue, value);
  else
    rc = -1;
  pthread_mutex_unlock(&g_lock);
  return rc;
}

int fake_cuda_backing(uintptr_t addr, size_t n, void **out) {
  pthread_mutex_lock(&g_lock);
  const struct alloc *a = find_locked(addr, false);
  int rc = -1;
  if (a && (a->kind == K_DEVICE || a->kind == K_POOL) && n <= a->size - (addr - a->base)) {
    *out = a->backing + (addr - a->base);
    rc = 0;
  }
  pthread_mutex_unlock(&g_lock);
  return rc;
}

/* ---- initialization, errors, devices ----------------------------------------------------- */

CUresult cuInit(unsigned int Flags) {
  CUresult e = enter(FN_cuInit, false);
  if (e != CUDA_SUCCESS)
    return e;
  if (Flags != 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (init_error)
    return (CUresult)init_error;
  if (n_devices == 0)
    return CUDA_ERROR_NO_DEVICE;
  atomic_store(&initialized, true);
  return CUDA_SUCCESS;
}

CUresult cuDriverGetVersion(int *driverVersion) {
  CUresult e = enter(FN_cuDriverGetVersion, false);
  if (e != CUDA_SUCCESS)
    return e;
  if (!driverVersion)
    return CUDA_ERROR_INVALID_VALUE;
  *driverVersion = driver_version;
  return CUDA_SUCCESS;
}

CUresult cuGetErrorName(CUresult error, const char **pStr) {
  CUresult e = enter(FN_cuGetErrorName, false);
  if (e != CUDA_SUCCESS)
    return e;
  if (!pStr)
    return CUDA_ERROR_INVALID_VALUE;
  switch ((int)error) {
#define FAKE_NAME_CASE(name, value)                                                                \
  case value: *pStr = #name; return CUDA_SUCCESS;
    KVIK_CUDA_RESULTS(FAKE_NAME_CASE)
#undef FAKE_NAME_CASE
  default: *pStr = NULL; return CUDA_ERROR_INVALID_VALUE;
  }
}

CUresult cuGetErrorString(CUresult error, const char **pStr) {
  CUresult e = enter(FN_cuGetErrorString, false);
  if (e != CUDA_SUCCESS)
    return e;
  if (!pStr)
    return CUDA_ERROR_INVALID_VALUE;
  switch ((int)error) {
#define FAKE_TEXT_CASE(name, value)                                                                \
  case value: *pStr = "fake driver: " #name; return CUDA_SUCCESS;
    KVIK_CUDA_RESULTS(FAKE_TEXT_CASE)
#undef FAKE_TEXT_CASE
  default: *pStr = NULL; return CUDA_ERROR_INVALID_VALUE;
  }
}

static bool dev_ok(CUdevice d) { return d >= 0 && d < n_devices; }

CUresult cuDeviceGet(CUdevice *device, int ordinal) {
  CUresult e = enter(FN_cuDeviceGet, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!device)
    return CUDA_ERROR_INVALID_VALUE;
  if (!dev_ok(ordinal))
    return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetCount(int *count) {
  CUresult e = enter(FN_cuDeviceGetCount, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!count)
    return CUDA_ERROR_INVALID_VALUE;
  *count = n_devices;
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev) {
  CUresult e = enter(FN_cuDeviceGetName, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!name || len <= 0)
    return CUDA_ERROR_INVALID_VALUE;
  if (!dev_ok(dev))
    return CUDA_ERROR_INVALID_DEVICE;
  snprintf(name, (size_t)len, "Fake CUDA GPU %d (kvik test double)", dev);
  return CUDA_SUCCESS;
}

static size_t dev_total(CUdevice dev) { return ((size_t)16 << 30) >> dev; }

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev) {
  CUresult e = enter(FN_cuDeviceTotalMem_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!bytes)
    return CUDA_ERROR_INVALID_VALUE;
  if (!dev_ok(dev))
    return CUDA_ERROR_INVALID_DEVICE;
  *bytes = dev_total(dev);
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetAttribute(int *pi, CUdevice_attribute attrib, CUdevice dev) {
  CUresult e = enter(FN_cuDeviceGetAttribute, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!pi)
    return CUDA_ERROR_INVALID_VALUE;
  if (!dev_ok(dev))
    return CUDA_ERROR_INVALID_DEVICE;
  switch ((int)attrib) {
  case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *pi = 132; break;
  case CU_DEVICE_ATTRIBUTE_INTEGRATED: *pi = 0; break;
  case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY: *pi = 1; break;
  case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: *pi = 0x17 + 0x10 * dev; break;
  case CU_DEVICE_ATTRIBUTE_PCI_DEVICE_ID: *pi = 0; break;
  case CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT: *pi = 2; break;
  case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: *pi = 1; break;
  case CU_DEVICE_ATTRIBUTE_PCI_DOMAIN_ID: *pi = 0; break;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *pi = 9; break;
  case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *pi = 0; break;
  case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY: *pi = 1; break;
  case CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS: *pi = 0; break;
  case CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS: *pi = 1; break;
  case CU_DEVICE_ATTRIBUTE_CAN_USE_HOST_POINTER_FOR_REGISTERED_MEM: *pi = 1; break;
  case CU_DEVICE_ATTRIBUTE_CAN_USE_STREAM_MEM_OPS_V1: *pi = (int)opt_stream_mem_ops; break;
  case CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED: *pi = 1; break;
  case CU_DEVICE_ATTRIBUTE_PAGEABLE_MEMORY_ACCESS_USES_HOST_PAGE_TABLES: *pi = 0; break;
  case CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED: *pi = 1; break;
  case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: *pi = 1; break;
  /* Left unknown on purpose, so kvik's "not reported" path (-1) runs. */
  case CU_DEVICE_ATTRIBUTE_GPU_DIRECT_RDMA_SUPPORTED: return CUDA_ERROR_INVALID_VALUE;
  default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetPCIBusId(char *pciBusId, int len, CUdevice dev) {
  CUresult e = enter(FN_cuDeviceGetPCIBusId, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!pciBusId || len < 13)
    return CUDA_ERROR_INVALID_VALUE;
  if (!dev_ok(dev))
    return CUDA_ERROR_INVALID_DEVICE;
  snprintf(pciBusId, (size_t)len, "0000:%02x:00.0", 0x17 + 0x10 * dev);
  return CUDA_SUCCESS;
}

CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev) {
  CUresult e = enter(FN_cuDeviceGetUuid_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!uuid)
    return CUDA_ERROR_INVALID_VALUE;
  if (!dev_ok(dev))
    return CUDA_ERROR_INVALID_DEVICE;
  /* "kvik-fake-gpu-<ordinal>", NUL-padded to 16 bytes. */
  memset(uuid->bytes, 0, sizeof uuid->bytes);
  memcpy(uuid->bytes, "kvik-fake-gpu-", 14);
  uuid->bytes[14] = (char)('0' + dev);
  return CUDA_SUCCESS;
}

/* ---- contexts ---------------------------------------------------------------------------- */

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev) {
  CUresult e = enter(FN_cuDevicePrimaryCtxRetain, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!pctx)
    return CUDA_ERROR_INVALID_VALUE;
  if (!dev_ok(dev))
    return CUDA_ERROR_INVALID_DEVICE;
  pthread_mutex_lock(&g_lock);
  primary[dev].refs++;
  pthread_mutex_unlock(&g_lock);
  *pctx = &primary[dev];
  return CUDA_SUCCESS;
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev) {
  CUresult e = enter(FN_cuDevicePrimaryCtxRelease_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!dev_ok(dev))
    return CUDA_ERROR_INVALID_DEVICE;
  CUresult r = CUDA_SUCCESS;
  pthread_mutex_lock(&g_lock);
  if (primary[dev].refs > 0)
    primary[dev].refs--;
  else
    r = CUDA_ERROR_INVALID_CONTEXT;
  pthread_mutex_unlock(&g_lock);
  return r;
}

CUresult cuCtxCreate_v4(CUcontext *pctx, CUctxCreateParams *ctxCreateParams, unsigned int flags,
                        CUdevice dev) {
  CUresult e = enter(FN_cuCtxCreate_v4, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!pctx || ctxCreateParams)
    return CUDA_ERROR_INVALID_VALUE;
  if (!dev_ok(dev))
    return CUDA_ERROR_INVALID_DEVICE;
  if (tls_depth == (int)(sizeof tls_stack / sizeof tls_stack[0]))
    return CUDA_ERROR_OUT_OF_MEMORY;
  struct CUctx_st *c = calloc(1, sizeof *c);
  if (!c)
    return CUDA_ERROR_OUT_OF_MEMORY;
  c->magic = CTX_MAGIC;
  c->device = dev;
  pthread_mutex_lock(&g_lock);
  c->next_created = created;
  created = c;
  pthread_mutex_unlock(&g_lock);
  tls_stack[tls_depth++] = c;
  *pctx = c;
  return CUDA_SUCCESS;
}

CUresult cuCtxDestroy_v2(CUcontext ctx) {
  CUresult e = enter(FN_cuCtxDestroy_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!ctx || ctx->magic != CTX_MAGIC || ctx->primary)
    return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  bool was = ctx->destroyed;
  ctx->destroyed = true;
  pthread_mutex_unlock(&g_lock);
  if (was)
    return CUDA_ERROR_INVALID_CONTEXT;
  if (tls_depth && tls_stack[tls_depth - 1] == ctx)
    tls_depth--;
  return CUDA_SUCCESS;
}

CUresult cuCtxGetCurrent(CUcontext *pctx) {
  CUresult e = enter(FN_cuCtxGetCurrent, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!pctx)
    return CUDA_ERROR_INVALID_VALUE;
  *pctx = tls_depth ? tls_stack[tls_depth - 1] : NULL;
  return CUDA_SUCCESS;
}

CUresult cuCtxSetCurrent(CUcontext ctx) {
  CUresult e = enter(FN_cuCtxSetCurrent, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!ctx) {
    if (tls_depth)
      tls_depth--;
    return CUDA_SUCCESS;
  }
  if (!ctx_usable(ctx))
    return CUDA_ERROR_INVALID_CONTEXT;
  if (tls_depth)
    tls_stack[tls_depth - 1] = ctx;
  else
    tls_stack[tls_depth++] = ctx;
  return CUDA_SUCCESS;
}

CUresult cuCtxPushCurrent_v2(CUcontext ctx) {
  CUresult e = enter(FN_cuCtxPushCurrent_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!ctx_usable(ctx))
    return CUDA_ERROR_INVALID_CONTEXT;
  if (tls_depth == (int)(sizeof tls_stack / sizeof tls_stack[0]))
    return CUDA_ERROR_OUT_OF_MEMORY;
  tls_stack[tls_depth++] = ctx;
  return CUDA_SUCCESS;
}

CUresult cuCtxPopCurrent_v2(CUcontext *pctx) {
  CUresult e = enter(FN_cuCtxPopCurrent_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!tls_depth)
    return CUDA_ERROR_INVALID_CONTEXT;
  CUcontext c = tls_stack[--tls_depth];
  if (pctx)
    *pctx = c;
  return CUDA_SUCCESS;
}

CUresult cuCtxGetDevice(CUdevice *device) {
  CUresult e = enter(FN_cuCtxGetDevice, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!device)
    return CUDA_ERROR_INVALID_VALUE;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  *device = c->device;
  return CUDA_SUCCESS;
}

CUresult cuCtxSynchronize(void) {
  CUresult e = enter(FN_cuCtxSynchronize, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  /* Synchronizes the default stream and every stream of the current context. Streams are not
   * destroyed while this runs in the tests that use it. */
  CUresult r = stream_sync(stream_of(NULL));
  struct CUstream_st *list[64];
  int n = 0;
  pthread_mutex_lock(&g_lock);
  for (struct CUstream_st *s = streams; s && n < 64; s = s->next)
    if (s->ctx == c)
      list[n++] = s;
  pthread_mutex_unlock(&g_lock);
  for (int i = 0; i < n; i++) {
    CUresult r2 = stream_sync(list[i]);
    if (r == CUDA_SUCCESS)
      r = r2;
  }
  return r;
}

/* ---- pointer attributes ------------------------------------------------------------------ */

static CUresult attr_locked(const struct alloc *a, CUpointer_attribute at, void *data) {
  bool dev_like = a && (a->kind == K_DEVICE || a->kind == K_POOL);
  switch ((int)at) {
  case CU_POINTER_ATTRIBUTE_CONTEXT: *(CUcontext *)data = a ? a->ctx : NULL; return CUDA_SUCCESS;
  case CU_POINTER_ATTRIBUTE_MEMORY_TYPE:
    *(unsigned int *)data = !a                                 ? 0u
                            : dev_like || a->kind == K_MANAGED ? CU_MEMORYTYPE_DEVICE
                                                               : CU_MEMORYTYPE_HOST;
    return CUDA_SUCCESS;
  case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
    *(CUdeviceptr *)data = a ? a->base : 0;
    return CUDA_SUCCESS;
  case CU_POINTER_ATTRIBUTE_HOST_POINTER:
    *(void **)data = a && !dev_like ? (void *)a->base : NULL;
    return CUDA_SUCCESS;
  case CU_POINTER_ATTRIBUTE_BUFFER_ID:
    *(unsigned long long *)data = a ? a->id : 0;
    return CUDA_SUCCESS;
  case CU_POINTER_ATTRIBUTE_IS_MANAGED:
    *(unsigned int *)data = a && a->kind == K_MANAGED;
    return CUDA_SUCCESS;
  case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL:
    *(int *)data = a ? a->device : CU_DEVICE_INVALID;
    return CUDA_SUCCESS;
  case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR:
    if (!opt_range_attrs)
      return CUDA_ERROR_INVALID_VALUE;
    *(CUdeviceptr *)data = a ? a->base : 0;
    return CUDA_SUCCESS;
  case CU_POINTER_ATTRIBUTE_RANGE_SIZE:
    if (!opt_range_attrs)
      return CUDA_ERROR_INVALID_VALUE;
    *(size_t *)data = a ? a->size : 0;
    return CUDA_SUCCESS;
  case CU_POINTER_ATTRIBUTE_MAPPED: *(unsigned int *)data = a != NULL; return CUDA_SUCCESS;
  case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE:
    if (!opt_mempool_attr)
      return CUDA_ERROR_INVALID_VALUE;
    *(CUmemoryPool *)data = a && a->kind == K_POOL ? (CUmemoryPool)(void *)&pools[a->device] : NULL;
    return CUDA_SUCCESS;
  default: return CUDA_ERROR_INVALID_VALUE;
  }
}

CUresult cuPointerGetAttributes(unsigned int numAttributes, CUpointer_attribute *attributes,
                                void **data, CUdeviceptr ptr) {
  CUresult e = enter(FN_cuPointerGetAttributes, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!attributes || !data || numAttributes == 0)
    return CUDA_ERROR_INVALID_VALUE;
  CUresult r = CUDA_SUCCESS;
  pthread_mutex_lock(&g_lock);
  const struct alloc *a = find_locked((uintptr_t)ptr, false);
  for (unsigned i = 0; i < numAttributes && r == CUDA_SUCCESS; i++)
    r = data[i] ? attr_locked(a, attributes[i], data[i]) : CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_unlock(&g_lock);
  return r;
}

CUresult cuPointerGetAttribute(void *data, CUpointer_attribute attribute, CUdeviceptr ptr) {
  CUresult e = enter(FN_cuPointerGetAttribute, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!data)
    return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  const struct alloc *a = find_locked((uintptr_t)ptr, false);
  CUresult r = a ? attr_locked(a, attribute, data) : CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_unlock(&g_lock);
  return r;
}

CUresult cuMemGetAddressRange_v2(CUdeviceptr *pbase, size_t *psize, CUdeviceptr dptr) {
  CUresult e = enter(FN_cuMemGetAddressRange_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  (void)c;
  pthread_mutex_lock(&g_lock);
  const struct alloc *a = find_locked((uintptr_t)dptr, false);
  CUresult r = CUDA_SUCCESS;
  if (!a || (a->kind != K_DEVICE && a->kind != K_MANAGED &&
             !(a->kind == K_POOL && opt_pool_address_range))) {
    r = CUDA_ERROR_NOT_FOUND;
  } else {
    if (pbase)
      *pbase = a->base;
    if (psize)
      *psize = a->size;
  }
  pthread_mutex_unlock(&g_lock);
  return r;
}

CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
  CUresult e = enter(FN_cuMemGetInfo_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  size_t used = 0;
  pthread_mutex_lock(&g_lock);
  for (size_t i = 0; i < n_allocs; i++)
    if (!allocs[i].freed && allocs[i].device == c->device &&
        (allocs[i].kind == K_DEVICE || allocs[i].kind == K_POOL))
      used += allocs[i].size;
  pthread_mutex_unlock(&g_lock);
  if (free_bytes)
    *free_bytes = used < dev_total(c->device) ? dev_total(c->device) - used : 0;
  if (total)
    *total = dev_total(c->device);
  return CUDA_SUCCESS;
}

/* ---- host memory ------------------------------------------------------------------------- */

CUresult cuMemHostAlloc(void **pp, size_t bytesize, unsigned int Flags) {
  CUresult e = enter(FN_cuMemHostAlloc, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (atomic_load(&opt_alloc_syncs))
    all_streams_idle();
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  if (!pp || bytesize == 0 || (Flags & ~0x7u))
    return CUDA_ERROR_INVALID_VALUE;
  size_t ms = page_round(bytesize);
  pthread_mutex_lock(&g_lock);
  bool over = opt_pinned_limit > 0 && pinned_bytes + (long)ms > opt_pinned_limit;
  pthread_mutex_unlock(&g_lock);
  if (over)
    return CUDA_ERROR_OUT_OF_MEMORY;
  void *p = mmap(NULL, ms, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return CUDA_ERROR_OUT_OF_MEMORY;
  struct alloc a = {.base = (uintptr_t)p,
                    .backing = p,
                    .size = bytesize,
                    .map_size = ms,
                    .kind = K_PINNED,
                    .device = c->device,
                    .ctx = c};
  pthread_mutex_lock(&g_lock);
  CUresult r = add_locked(a);
  if (r == CUDA_SUCCESS)
    pinned_bytes += (long)ms;
  pthread_mutex_unlock(&g_lock);
  if (r != CUDA_SUCCESS) {
    munmap(p, ms);
    return r;
  }
  *pp = p;
  return CUDA_SUCCESS;
}

CUresult cuMemFreeHost(void *p) {
  CUresult e = enter(FN_cuMemFreeHost, true);
  if (e != CUDA_SUCCESS)
    return e;
  pthread_mutex_lock(&g_lock);
  struct alloc *a = find_locked((uintptr_t)p, false);
  if (!a || a->kind != K_PINNED || a->base != (uintptr_t)p) {
    pthread_mutex_unlock(&g_lock);
    return CUDA_ERROR_INVALID_VALUE;
  }
  size_t ms = a->map_size;
  pinned_bytes -= (long)ms;
  remove_locked(a);
  pthread_mutex_unlock(&g_lock);
  munmap(p, ms);
  return CUDA_SUCCESS;
}

CUresult cuMemHostRegister_v2(void *p, size_t bytesize, unsigned int Flags) {
  CUresult e = enter(FN_cuMemHostRegister_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  if (!p || bytesize == 0 || (Flags & ~0xfu))
    return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  CUresult r = CUDA_SUCCESS;
  for (size_t i = 0; i < n_allocs; i++) {
    const struct alloc *o = &allocs[i];
    if (!o->freed && (uintptr_t)p < o->base + o->size && o->base < (uintptr_t)p + bytesize)
      r = CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
  }
  if (r == CUDA_SUCCESS) {
    struct alloc a = {.base = (uintptr_t)p,
                      .backing = p,
                      .size = bytesize,
                      .map_size = bytesize,
                      .kind = K_REGISTERED,
                      .device = c->device,
                      .ctx = c};
    r = add_locked(a);
  }
  pthread_mutex_unlock(&g_lock);
  return r;
}

CUresult cuMemHostUnregister(void *p) {
  CUresult e = enter(FN_cuMemHostUnregister, true);
  if (e != CUDA_SUCCESS)
    return e;
  pthread_mutex_lock(&g_lock);
  struct alloc *a = find_locked((uintptr_t)p, false);
  CUresult r = CUDA_SUCCESS;
  if (!a || a->kind != K_REGISTERED || a->base != (uintptr_t)p)
    r = CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
  else
    remove_locked(a);
  pthread_mutex_unlock(&g_lock);
  return r;
}

/* ---- device memory ----------------------------------------------------------------------- */

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytesize) {
  CUresult e = enter(FN_cuMemAlloc_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (atomic_load(&opt_alloc_syncs))
    all_streams_idle();
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  return alloc_device(dptr, bytesize, K_DEVICE, c->device, c);
}

CUresult cuMemFree_v2(CUdeviceptr dptr) {
  CUresult e = enter(FN_cuMemFree_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  return free_device(dptr);
}

CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytesize, unsigned int flags) {
  CUresult e = enter(FN_cuMemAllocManaged, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  if (!dptr || bytesize == 0 || (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST))
    return CUDA_ERROR_INVALID_VALUE;
  size_t ms = page_round(bytesize);
  void *p =
      mmap(NULL, ms, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    return CUDA_ERROR_OUT_OF_MEMORY;
  struct alloc a = {.base = (uintptr_t)p,
                    .backing = p,
                    .size = bytesize,
                    .map_size = ms,
                    .kind = K_MANAGED,
                    .device = c->device,
                    .ctx = c};
  pthread_mutex_lock(&g_lock);
  CUresult r = add_locked(a);
  pthread_mutex_unlock(&g_lock);
  if (r != CUDA_SUCCESS) {
    munmap(p, ms);
    return r;
  }
  *dptr = (CUdeviceptr)(uintptr_t)p;
  return CUDA_SUCCESS;
}

CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytesize, CUstream hStream) {
  CUresult e = enter(FN_cuMemAllocAsync, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  struct CUstream_st *s = stream_of(hStream);
  if (!s)
    return CUDA_ERROR_INVALID_HANDLE;
  /* The memory of a stream-ordered pool belongs to no context, only to a device. */
  int dev = s->ctx ? s->ctx->device : c->device;
  return alloc_device(dptr, bytesize, K_POOL, dev, NULL);
}

CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) {
  CUresult e = enter(FN_cuMemFreeAsync, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  (void)c;
  pthread_mutex_lock(&g_lock);
  const struct alloc *a = find_locked((uintptr_t)dptr, false);
  bool ok = a && a->base == (uintptr_t)dptr && (a->kind == K_POOL || a->kind == K_DEVICE);
  pthread_mutex_unlock(&g_lock);
  if (!ok)
    return CUDA_ERROR_INVALID_VALUE;
  return enqueue(hStream, (struct op){.kind = OP_FREE, .dst = (uintptr_t)dptr});
}

/* ---- copies ------------------------------------------------------------------------------ */

CUresult cuMemcpyHtoD_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount) {
  CUresult e = enter(FN_cuMemcpyHtoD_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  (void)c;
  char *d, *s;
  CUresult r = translate((uintptr_t)dstDevice, ByteCount, true, &d);
  if (r == CUDA_SUCCESS)
    r = translate((uintptr_t)srcHost, ByteCount, false, &s);
  if (r == CUDA_SUCCESS && ByteCount)
    memcpy(d, s, ByteCount);
  return r;
}

CUresult cuMemcpyDtoH_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount) {
  CUresult e = enter(FN_cuMemcpyDtoH_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  (void)c;
  char *d, *s;
  CUresult r = translate((uintptr_t)srcDevice, ByteCount, true, &s);
  if (r == CUDA_SUCCESS)
    r = translate((uintptr_t)dstHost, ByteCount, false, &d);
  if (r == CUDA_SUCCESS && ByteCount)
    memcpy(d, s, ByteCount);
  return r;
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dstDevice, const void *srcHost, size_t ByteCount,
                              CUstream hStream) {
  CUresult e = enter(FN_cuMemcpyHtoDAsync_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  (void)c;
  char *d, *s;
  CUresult r = translate((uintptr_t)dstDevice, ByteCount, true, &d);
  if (r == CUDA_SUCCESS)
    r = translate((uintptr_t)srcHost, ByteCount, false, &s);
  if (r != CUDA_SUCCESS)
    return r;
  return enqueue(hStream, (struct op){.kind = OP_COPY,
                                      .dst = (uintptr_t)dstDevice,
                                      .src = (uintptr_t)srcHost,
                                      .n = ByteCount});
}

CUresult cuMemcpyDtoHAsync_v2(void *dstHost, CUdeviceptr srcDevice, size_t ByteCount,
                              CUstream hStream) {
  CUresult e = enter(FN_cuMemcpyDtoHAsync_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  (void)c;
  char *d, *s;
  CUresult r = translate((uintptr_t)srcDevice, ByteCount, true, &s);
  if (r == CUDA_SUCCESS)
    r = translate((uintptr_t)dstHost, ByteCount, false, &d);
  if (r != CUDA_SUCCESS)
    return r;
  struct op o = {
      .kind = OP_COPY, .dst = (uintptr_t)dstHost, .src = (uintptr_t)srcDevice, .n = ByteCount};
  return host_tracked((uintptr_t)dstHost) ? enqueue(hStream, o) : enqueue_wait(hStream, o);
}

CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream) {
  CUresult e = enter(FN_cuMemsetD8Async, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  (void)c;
  char *d;
  CUresult r = translate((uintptr_t)dstDevice, N, true, &d);
  if (r != CUDA_SUCCESS)
    return r;
  return enqueue(hStream,
                 (struct op){.kind = OP_SET, .dst = (uintptr_t)dstDevice, .n = N, .byte = uc});
}

CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *pdptr, void *p, unsigned int Flags) {
  CUresult e = enter(FN_cuMemHostGetDevicePointer_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!pdptr || Flags != 0)
    return CUDA_ERROR_INVALID_VALUE;
  pthread_mutex_lock(&g_lock);
  const struct alloc *a = find_locked((uintptr_t)p, false);
  bool ok = a && (a->kind == K_PINNED || a->kind == K_REGISTERED);
  pthread_mutex_unlock(&g_lock);
  if (!ok)
    return CUDA_ERROR_INVALID_VALUE;
  *pdptr = (CUdeviceptr)(uintptr_t)p; /* unified addressing: the same address */
  return CUDA_SUCCESS;
}

CUresult cuMemsetD8_v2(CUdeviceptr dstDevice, unsigned char uc, size_t N) {
  CUresult e = enter(FN_cuMemsetD8_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  (void)c;
  char *d;
  CUresult r = translate((uintptr_t)dstDevice, N, true, &d);
  if (r == CUDA_SUCCESS && N)
    memset(d, uc, N);
  return r;
}

/* ---- streams ----------------------------------------------------------------------------- */

CUresult cuStreamCreate(CUstream *phStream, unsigned int Flags) {
  CUresult e = enter(FN_cuStreamCreate, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  if (!phStream || Flags > CU_STREAM_NON_BLOCKING)
    return CUDA_ERROR_INVALID_VALUE;
  struct CUstream_st *s = malloc(sizeof *s);
  if (!s)
    return CUDA_ERROR_OUT_OF_MEMORY;
  if (stream_start(s, c) != 0) {
    free(s);
    return CUDA_ERROR_OUT_OF_MEMORY;
  }
  pthread_mutex_lock(&g_lock);
  s->next = streams;
  streams = s;
  live_streams++;
  pthread_mutex_unlock(&g_lock);
  *phStream = s;
  return CUDA_SUCCESS;
}

CUresult cuStreamCreateWithPriority(CUstream *phStream, unsigned int flags, int priority) {
  CUresult e = enter(FN_cuStreamCreateWithPriority, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (priority < -5 || priority > 0)
    return CUDA_ERROR_INVALID_VALUE;
  atomic_fetch_sub(&fn_calls[FN_cuStreamCreate], 1); /* counted here, not as cuStreamCreate */
  return cuStreamCreate(phStream, flags);
}

CUresult cuCtxGetStreamPriorityRange(int *leastPriority, int *greatestPriority) {
  CUresult e = enter(FN_cuCtxGetStreamPriorityRange, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (leastPriority)
    *leastPriority = 0;
  if (greatestPriority)
    *greatestPriority = -5;
  return CUDA_SUCCESS;
}

CUresult cuStreamDestroy_v2(CUstream hStream) {
  CUresult e = enter(FN_cuStreamDestroy_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!hStream || hStream == CU_STREAM_LEGACY || hStream == CU_STREAM_PER_THREAD ||
      hStream->magic != STREAM_MAGIC)
    return CUDA_ERROR_INVALID_HANDLE;
  struct CUstream_st *s = hStream;
  pthread_mutex_lock(&g_lock);
  for (struct CUstream_st **p = &streams; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  live_streams--;
  pthread_mutex_unlock(&g_lock);
  /* Pending work completes first, as with the real driver; then the thread ends. */
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  s->magic = 0;
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
  return CUDA_SUCCESS;
}

CUresult cuStreamSynchronize(CUstream hStream) {
  CUresult e = enter(FN_cuStreamSynchronize, true);
  if (e != CUDA_SUCCESS)
    return e;
  struct CUstream_st *s = stream_of(hStream);
  if (!s)
    return CUDA_ERROR_INVALID_HANDLE;
  return stream_sync(s);
}

CUresult cuStreamQuery(CUstream hStream) {
  CUresult e = enter(FN_cuStreamQuery, true);
  if (e != CUDA_SUCCESS)
    return e;
  struct CUstream_st *s = stream_of(hStream);
  if (!s)
    return CUDA_ERROR_INVALID_HANDLE;
  pthread_mutex_lock(&s->mu);
  CUresult r = s->done < s->enq ? CUDA_ERROR_NOT_READY : s->err;
  if (r != CUDA_ERROR_NOT_READY)
    s->err = CUDA_SUCCESS;
  pthread_mutex_unlock(&s->mu);
  return r;
}

CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags) {
  CUresult e = enter(FN_cuStreamWaitEvent, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!hEvent || hEvent->magic != EVENT_MAGIC || Flags != 0)
    return CUDA_ERROR_INVALID_HANDLE;
  pthread_mutex_lock(&g_lock);
  unsigned long long gen = hEvent->recorded;
  hEvent->refs++;
  pthread_mutex_unlock(&g_lock);
  CUresult r = enqueue(hStream, (struct op){.kind = OP_WAIT_EVENT, .ev = hEvent, .gen = gen});
  if (r != CUDA_SUCCESS) {
    pthread_mutex_lock(&g_lock);
    event_put_locked(hEvent);
    pthread_mutex_unlock(&g_lock);
  }
  return r;
}

static CUresult stream_value_op(CUstream stream, CUdeviceptr addr, cuuint32_t value, unsigned flags,
                                enum op_kind k) {
  char *d;
  CUresult r = translate((uintptr_t)addr, 4, true, &d);
  if (r != CUDA_SUCCESS)
    return r;
  return enqueue(stream,
                 (struct op){.kind = k, .dst = (uintptr_t)addr, .value = value, .flags = flags});
}

CUresult cuStreamWaitValue32_v2(CUstream stream, CUdeviceptr addr, cuuint32_t value,
                                unsigned int flags) {
  CUresult e = enter(FN_cuStreamWaitValue32_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if ((flags & ~(0x3u | CU_STREAM_WAIT_VALUE_FLUSH)) != 0)
    return CUDA_ERROR_INVALID_VALUE;
  return stream_value_op(stream, addr, value, flags, OP_WAIT_VALUE);
}

CUresult cuStreamWriteValue32_v2(CUstream stream, CUdeviceptr addr, cuuint32_t value,
                                 unsigned int flags) {
  CUresult e = enter(FN_cuStreamWriteValue32_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (flags != CU_STREAM_WRITE_VALUE_DEFAULT)
    return CUDA_ERROR_INVALID_VALUE;
  return stream_value_op(stream, addr, value, flags, OP_WRITE_VALUE);
}

CUresult cuLaunchHostFunc(CUstream hStream, CUhostFn fn, void *userData) {
  CUresult e = enter(FN_cuLaunchHostFunc, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!fn)
    return CUDA_ERROR_INVALID_VALUE;
  return enqueue(hStream, (struct op){.kind = OP_HOSTFN, .fn = fn, .data = userData});
}

CUresult cuStreamGetCtx(CUstream hStream, CUcontext *pctx) {
  CUresult e = enter(FN_cuStreamGetCtx, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!pctx)
    return CUDA_ERROR_INVALID_VALUE;
  struct CUstream_st *s = stream_of(hStream);
  if (!s)
    return CUDA_ERROR_INVALID_HANDLE;
  CUcontext c = s == &null_stream ? current() : s->ctx;
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  *pctx = c;
  return CUDA_SUCCESS;
}

/* ---- modules: kvik's copy kernels only --------------------------------------------------- */

#define MODULE_MAGIC 0x646f6d66u /* "fmod" */
struct CUmod_st {
  unsigned magic;
  CUcontext ctx;
};
struct CUfunc_st {
  int kernel;
  struct CUmod_st *mod;
  struct CUfunc_st *next;
};
static struct CUfunc_st *functions; /* g_lock; kept for the process life, like modules */

/* Takes PTX text that declares at least one entry; the kernels it can run are kvik's. */
CUresult cuModuleLoadData(CUmodule *module, const void *image) {
  CUresult e = enter(FN_cuModuleLoadData, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!module || !image)
    return CUDA_ERROR_INVALID_VALUE;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  const char *ptx = image;
  if (!strstr(ptx, ".version ") || !strstr(ptx, ".entry "))
    return CUDA_ERROR_INVALID_VALUE; /* the real driver says INVALID_IMAGE */
  struct CUmod_st *m = calloc(1, sizeof *m);
  if (!m)
    return CUDA_ERROR_OUT_OF_MEMORY;
  m->magic = MODULE_MAGIC;
  m->ctx = c;
  *module = m;
  return CUDA_SUCCESS;
}

CUresult cuModuleGetFunction(CUfunction *hfunc, CUmodule hmod, const char *name) {
  CUresult e = enter(FN_cuModuleGetFunction, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!hfunc || !name || !hmod || hmod->magic != MODULE_MAGIC)
    return CUDA_ERROR_INVALID_VALUE;
  int k = strcmp(name, "kvik_so_read") == 0    ? KERNEL_SO_READ
          : strcmp(name, "kvik_so_write") == 0 ? KERNEL_SO_WRITE
                                               : 0;
  if (!k)
    return CUDA_ERROR_NOT_FOUND;
  struct CUfunc_st *f = calloc(1, sizeof *f);
  if (!f)
    return CUDA_ERROR_OUT_OF_MEMORY;
  f->kernel = k;
  f->mod = hmod;
  pthread_mutex_lock(&g_lock);
  f->next = functions;
  functions = f;
  pthread_mutex_unlock(&g_lock);
  *hfunc = f;
  return CUDA_SUCCESS;
}

/* kvik's kernels take (staging, buffer base, slot, chunk index, operation): 8, 8, 4, 8 and 8
 * bytes. */
CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                        unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                        unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                        void **kernelParams, void **extra) {
  CUresult e = enter(FN_cuLaunchKernel, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!f || !f->kernel || !kernelParams || extra || !gridDimX || !gridDimY || !gridDimZ ||
      !blockDimX || !blockDimY || !blockDimZ || blockDimX * blockDimY * blockDimZ > 1024 ||
      sharedMemBytes > 48 * 1024)
    return CUDA_ERROR_INVALID_VALUE;
  struct CUstream_st *s = stream_of(hStream);
  if (!s)
    return CUDA_ERROR_INVALID_HANDLE;
  CUcontext c = s == &null_stream ? current() : s->ctx;
  if (c != f->mod->ctx)
    return CUDA_ERROR_INVALID_CONTEXT; /* the stream and the function in different contexts */
  struct op o = {.kind = OP_KERNEL, .kernel = f->kernel};
  memcpy(&o.kstage, kernelParams[0], 8);
  memcpy(&o.kbase, kernelParams[1], 8);
  memcpy(&o.kslot, kernelParams[2], 4);
  memcpy(&o.kindex, kernelParams[3], 8);
  memcpy(&o.kop, kernelParams[4], 8);
  if (o.kslot >= KVIK_SO_SLOTS || o.kindex < 0)
    return CUDA_ERROR_INVALID_VALUE;
  return enqueue(hStream, o);
}

/* ---- events ------------------------------------------------------------------------------ */

CUresult cuEventCreate(CUevent *phEvent, unsigned int Flags) {
  CUresult e = enter(FN_cuEventCreate, true);
  if (e != CUDA_SUCCESS)
    return e;
  CUcontext c = current();
  if (!c)
    return CUDA_ERROR_INVALID_CONTEXT;
  (void)c;
  if (!phEvent || (Flags & ~0x7u))
    return CUDA_ERROR_INVALID_VALUE;
  struct CUevent_st *ev = calloc(1, sizeof *ev);
  if (!ev)
    return CUDA_ERROR_OUT_OF_MEMORY;
  ev->magic = EVENT_MAGIC;
  ev->refs = 1;
  pthread_mutex_lock(&g_lock);
  live_events++;
  pthread_mutex_unlock(&g_lock);
  *phEvent = ev;
  return CUDA_SUCCESS;
}

CUresult cuEventDestroy_v2(CUevent hEvent) {
  CUresult e = enter(FN_cuEventDestroy_v2, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!hEvent || hEvent->magic != EVENT_MAGIC)
    return CUDA_ERROR_INVALID_HANDLE;
  pthread_mutex_lock(&g_lock);
  event_put_locked(hEvent);
  pthread_mutex_unlock(&g_lock);
  return CUDA_SUCCESS;
}

CUresult cuEventRecord(CUevent hEvent, CUstream hStream) {
  CUresult e = enter(FN_cuEventRecord, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!hEvent || hEvent->magic != EVENT_MAGIC)
    return CUDA_ERROR_INVALID_HANDLE;
  pthread_mutex_lock(&g_lock);
  unsigned long long gen = ++hEvent->recorded;
  hEvent->refs++;
  pthread_mutex_unlock(&g_lock);
  CUresult r = enqueue(hStream, (struct op){.kind = OP_RECORD, .ev = hEvent, .gen = gen});
  if (r != CUDA_SUCCESS) {
    pthread_mutex_lock(&g_lock);
    hEvent->done = gen > hEvent->done ? gen : hEvent->done;
    event_put_locked(hEvent);
    pthread_mutex_unlock(&g_lock);
  }
  return r;
}

CUresult cuEventSynchronize(CUevent hEvent) {
  CUresult e = enter(FN_cuEventSynchronize, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!hEvent || hEvent->magic != EVENT_MAGIC)
    return CUDA_ERROR_INVALID_HANDLE;
  pthread_mutex_lock(&g_lock);
  unsigned long long gen = hEvent->recorded;
  while (hEvent->done < gen)
    pthread_cond_wait(&g_cv, &g_lock);
  CUresult r = hEvent->err;
  pthread_mutex_unlock(&g_lock);
  return r;
}

CUresult cuEventQuery(CUevent hEvent) {
  CUresult e = enter(FN_cuEventQuery, true);
  if (e != CUDA_SUCCESS)
    return e;
  if (!hEvent || hEvent->magic != EVENT_MAGIC)
    return CUDA_ERROR_INVALID_HANDLE;
  pthread_mutex_lock(&g_lock);
  CUresult r = hEvent->done < hEvent->recorded ? CUDA_ERROR_NOT_READY : hEvent->err;
  pthread_mutex_unlock(&g_lock);
  return r;
}
