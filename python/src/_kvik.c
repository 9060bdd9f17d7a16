/* kvik._kvik: the C side of the Python package `kvik`, on include/kvik.h only.
 *
 * Written against CPython's stable ABI (Py_LIMITED_API 0x03090000: one abi3 module for Python
 * 3.9 and later). What is here is what Python cannot do by itself or should not do with the GIL
 * held: files and I/O (every blocking call releases the GIL), futures that several threads may
 * wait on and that Ctrl-C interrupts, views of buffer-protocol objects and DLPack capsules (their
 * address, size, contiguity, whether they are read-only), the settings, and the error raised for
 * a kvik code. Argument defaults, __cuda_array_interface__ and the kvikio names live in Python
 * (python/kvik/).
 *
 * Lifetimes. A file handle (struct fh) is reference-counted: the File object holds one reference
 * and every operation in flight another, so File.close() while a pread is in flight only marks
 * the object closed, and the last operation closes the kvik_file; a mapping (struct mh, Mmap)
 * likewise, the last reference closing the kvik_mmap. A Future holds the objects whose
 * memory the I/O uses (`keep`) until the I/O is done: waiting stops early on Ctrl-C, but the
 * memory stays referenced, and a Future dropped before its I/O is done waits for it in its
 * destructor (with the GIL released), so the I/O never touches freed memory. */
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x03090000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <kvik.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The buffer protocol joined the stable ABI in Python 3.11 with the layout and functions it had
 * since 3.3 (PEP 3118), and libpython 3.9 and 3.10 export the same functions. Limited-API
 * headers for 3.9 hide them, so they are declared here exactly as 3.11's pybuffer.h does. */
#if Py_LIMITED_API + 0 < 0x030B0000
typedef struct {
  void *buf;
  PyObject *obj;
  Py_ssize_t len;
  Py_ssize_t itemsize;
  int readonly;
  int ndim;
  char *format;
  Py_ssize_t *shape;
  Py_ssize_t *strides;
  Py_ssize_t *suboffsets;
  void *internal;
} Py_buffer;
PyAPI_FUNC(int) PyObject_GetBuffer(PyObject *obj, Py_buffer *view, int flags);
PyAPI_FUNC(void) PyBuffer_Release(Py_buffer *view);
PyAPI_FUNC(int) PyBuffer_IsContiguous(const Py_buffer *view, char fort);
#define PyBUF_FORMAT 0x0004
#define PyBUF_ND 0x0008
#define PyBUF_STRIDES (0x0010 | PyBUF_ND)
#endif

PyMODINIT_FUNC PyInit__kvik(void);

/* ------------------------------------------------------------------------------------------
 * Errors. kvik.errors.make(code, name, strerror, message, path) (registered at import) builds
 * the exception: a kvik.Error, also the matching OSError subclass for -errno codes.
 * ------------------------------------------------------------------------------------------ */
static PyObject *error_factory; /* owned; set once by _set_error_factory */

/* Sets the Python error for kvik code `code` with detail `msg` (NULL: this thread's
 * kvik_last_error()) and path (may be NULL). Returns NULL for the caller to return. */
static PyObject *raise_code(long code, const char *msg, const char *path) {
  if (!msg)
    msg = kvik_last_error();
  if (!msg || !*msg)
    msg = kvik_strerror((int)code);
  if (!error_factory) {
    PyErr_Format(PyExc_OSError, "%s (%s)", msg, kvik_strerror_name((int)code));
    return NULL;
  }
  PyObject *exc = PyObject_CallFunction(error_factory, "lsssz", code, kvik_strerror_name((int)code),
                                        kvik_strerror((int)code), msg, path);
  if (!exc)
    return NULL;
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
  return NULL;
}

/* The detail of the last failure of this thread, copied (kvik_last_error() is overwritten by the
 * next kvik call). Callable without the GIL (plain malloc: PyMem_RawMalloc is not in the 3.9
 * limited API). NULL if out of memory. */
static char *copy_last_error(void) {
  const char *m = kvik_last_error();
  size_t n = strlen(m ? m : "");
  char *c = malloc(n + 1);
  if (c)
    memcpy(c, m ? m : "", n + 1);
  return c;
}

static PyObject *py_set_error_factory(PyObject *mod, PyObject *fn) {
  Py_INCREF(fn);
  Py_XDECREF(error_factory);
  error_factory = fn;
  Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------
 * Argument helpers.
 * ------------------------------------------------------------------------------------------ */
static int to_ptr(PyObject *o, void *out) {
  unsigned long long v = PyLong_AsUnsignedLongLong(o);
  if (v == (unsigned long long)-1 && PyErr_Occurred())
    return 0;
  *(void **)out = (void *)(uintptr_t)v;
  return 1;
}

static int to_size(PyObject *o, void *out) {
  size_t v = PyLong_AsSize_t(o);
  if (v == (size_t)-1 && PyErr_Occurred())
    return 0;
  *(size_t *)out = v;
  return 1;
}

static int to_i64(PyObject *o, void *out) {
  long long v = PyLong_AsLongLong(o);
  if (v == -1 && PyErr_Occurred())
    return 0;
  *(int64_t *)out = (int64_t)v;
  return 1;
}

static void type_free(PyObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  freefunc f = (freefunc)PyType_GetSlot(tp, Py_tp_free);
  f(self);
  Py_DECREF(tp);
}

/* ------------------------------------------------------------------------------------------
 * File handles.
 * ------------------------------------------------------------------------------------------ */
struct fh {
  kvik_file *f;
  atomic_long refs; /* the File object's (until close) + one per operation in flight */
};

/* Drops one reference; the last closes the file. Callable without the GIL. Returns the close
 * result when this call closed the file, else 0. */
static int fh_unref(struct fh *h) {
  if (atomic_fetch_sub(&h->refs, 1) != 1)
    return 0;
  int rc = kvik_file_close(h->f);
  free(h);
  return rc;
}

typedef struct {
  PyObject_HEAD struct fh *h; /* NULL once closed */
} FileObject;

static PyTypeObject *File_Type;
static PyTypeObject *Future_Type;

static int File_init(PyObject *self_, PyObject *args, PyObject *kw) {
  FileObject *self = (FileObject *)self_;
  static char *kwlist[] = {"path", "flags", "mode", "compat", NULL};
  PyObject *path = NULL;
  const char *flags = "r";
  unsigned int mode = 0644;
  int compat = KVIK_COMPAT_DEFAULT;
  if (self->h) {
    PyErr_SetString(PyExc_RuntimeError, "kvik._kvik.File is already open");
    return -1;
  }
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|sIi", kwlist, PyUnicode_FSConverter, &path, &flags,
                                   &mode, &compat))
    return -1;
  const char *cpath = PyBytes_AsString(path);
  if (!cpath) {
    Py_DECREF(path);
    return -1;
  }
  struct fh *h = malloc(sizeof *h);
  if (!h) {
    Py_DECREF(path);
    PyErr_NoMemory();
    return -1;
  }
  kvik_file *f = NULL;
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_file_open(&f, cpath, flags, (mode_t)mode, (kvik_compat)compat);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    free(h);
    raise_code(rc, msg, cpath);
    free(msg);
    Py_DECREF(path);
    return -1;
  }
  Py_DECREF(path);
  h->f = f;
  atomic_init(&h->refs, 1);
  self->h = h;
  return 0;
}

static void File_dealloc(PyObject *self_) {
  FileObject *self = (FileObject *)self_;
  if (self->h) {
    struct fh *h = self->h;
    self->h = NULL;
    Py_BEGIN_ALLOW_THREADS
    fh_unref(h);
    Py_END_ALLOW_THREADS
  }
  type_free(self_);
}

static struct fh *File_get(FileObject *self) {
  if (!self->h)
    PyErr_SetString(PyExc_ValueError, "I/O operation on closed file");
  return self->h;
}

static PyObject *File_close(PyObject *self_, PyObject *unused) {
  FileObject *self = (FileObject *)self_;
  struct fh *h = self->h;
  if (!h)
    Py_RETURN_NONE;
  self->h = NULL;
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = fh_unref(h);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *File_closed(PyObject *self, void *unused) {
  return PyBool_FromLong(((FileObject *)self)->h == NULL);
}

static PyObject *File_fileno(PyObject *self, PyObject *unused) {
  struct fh *h = File_get((FileObject *)self);
  if (!h)
    return NULL;
  int fd = kvik_file_fd(h->f);
  if (fd < 0)
    return raise_code(fd, NULL, NULL);
  return PyLong_FromLong(fd);
}

static PyObject *File_size(PyObject *self, PyObject *unused) {
  struct fh *h = File_get((FileObject *)self);
  if (!h)
    return NULL;
  int64_t n = kvik_file_size(h->f);
  if (n < 0)
    return raise_code((long)n, NULL, NULL);
  return PyLong_FromLongLong(n);
}

static PyObject *File_path(PyObject *self, PyObject *unused) {
  struct fh *h = File_get((FileObject *)self);
  if (!h)
    return NULL;
  const char *p = kvik_file_path(h->f);
  return PyUnicode_DecodeFSDefault(p ? p : "");
}

static PyObject *File_info(PyObject *self, PyObject *unused) {
  struct fh *h = File_get((FileObject *)self);
  if (!h)
    return NULL;
  struct kvik_file_info info = {.sz = sizeof info};
  int rc = kvik_file_info(h->f, &info);
  if (rc < 0)
    return raise_code(rc, NULL, NULL);
  static const char *const paths[] = {"posix", "gds", "cufile_compat"};
  const char *path = info.path >= 0 && info.path <= 2 ? paths[info.path] : "?";
  return Py_BuildValue("{s:s,s:i,s:O,s:O,s:O,s:O,s:s}", "path", path, "compat", info.compat,
                       "direct_read", info.direct_read ? Py_True : Py_False, "direct_write",
                       info.direct_write ? Py_True : Py_False, "readable",
                       info.readable ? Py_True : Py_False, "writable",
                       info.writable ? Py_True : Py_False, "reason", info.reason);
}

/* File.read(ptr, size, offset) / File.write(ptr, size, offset): one blocking call on this thread
 * (kvik_file_read/kvik_file_write), the GIL released. The caller keeps the buffer alive. */
static PyObject *file_rw(PyObject *self, PyObject *args, bool write) {
  void *ptr;
  size_t size;
  int64_t off;
  if (!PyArg_ParseTuple(args, "O&O&O&", to_ptr, &ptr, to_size, &size, to_i64, &off))
    return NULL;
  struct fh *h = File_get((FileObject *)self);
  if (!h)
    return NULL;
  atomic_fetch_add(&h->refs, 1);
  ssize_t n;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  n = write ? kvik_file_write(h->f, ptr, size, off) : kvik_file_read(h->f, ptr, size, off);
  if (n < 0)
    msg = copy_last_error();
  (void)fh_unref(h);
  Py_END_ALLOW_THREADS
  if (n < 0) {
    raise_code((long)n, msg, NULL);
    free(msg);
    return NULL;
  }
  return PyLong_FromSsize_t(n);
}

static PyObject *File_read(PyObject *self, PyObject *args) { return file_rw(self, args, false); }
static PyObject *File_write(PyObject *self, PyObject *args) { return file_rw(self, args, true); }

/* ------------------------------------------------------------------------------------------
 * Futures.
 * ------------------------------------------------------------------------------------------ */
struct mh;
static void mh_unref(struct mh *h);

typedef struct {
  PyObject_HEAD kvik_future *fut; /* NULL once collected */
  struct fh *h;                   /* the file's reference, dropped when collected */
  struct mh *mh;                  /* or the mapping's (Mmap.pread/pwrite), likewise */
  PyObject *keep;                 /* what the I/O's memory belongs to, until collected */
  pthread_mutex_t mu;             /* guards collecting, collected, fut, result, errmsg */
  pthread_cond_t cv;              /* signalled when a collector gives up its turn or finishes */
  int collecting;                 /* a thread is in kvik_future_wait_for on fut */
  int collected;                  /* kvik_future_wait has run: result (and errmsg) are final */
  ssize_t result;
  char *errmsg; /* detail of a failure, owned */
} FutureObject;

static PyObject *future_new(kvik_future *fut, struct fh *h, PyObject *keep) {
  FutureObject *self = PyObject_New(FutureObject, Future_Type);
  if (!self)
    return NULL;
  self->fut = fut;
  self->h = h;
  self->mh = NULL;
  Py_XINCREF(keep);
  self->keep = keep;
  pthread_mutex_init(&self->mu, NULL);
  pthread_cond_init(&self->cv, NULL);
  self->collecting = 0;
  self->collected = 0;
  self->result = 0;
  self->errmsg = NULL;
  return (PyObject *)self;
}

/* Takes the result of a done future under mu: frees the kvik future and drops the file's
 * reference. Callable without the GIL. */
static void future_collect_locked(FutureObject *self) {
  ssize_t n = kvik_future_wait(self->fut);
  self->fut = NULL;
  self->result = n;
  if (n < 0)
    self->errmsg = copy_last_error();
  self->collected = 1;
  if (self->h) {
    (void)fh_unref(self->h);
    self->h = NULL;
  }
  if (self->mh) {
    mh_unref(self->mh);
    self->mh = NULL;
  }
}

static void Future_dealloc(PyObject *self_) {
  FutureObject *self = (FutureObject *)self_;
  /* Nobody else can be waiting (they would hold a reference): wait here for the I/O, so the
   * memory in `keep` outlives it. */
  if (!self->collected && self->fut) {
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->mu);
    future_collect_locked(self);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS
  }
  Py_CLEAR(self->keep);
  free(self->errmsg);
  pthread_mutex_destroy(&self->mu);
  pthread_cond_destroy(&self->cv);
  type_free(self_);
}

/* The slice a waiter waits before it looks for Ctrl-C (PyErr_CheckSignals). */
#define WAIT_SLICE_MS 50

static PyObject *Future_get(PyObject *self_, PyObject *unused) {
  FutureObject *self = (FutureObject *)self_;
  for (;;) {
    int collected;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->mu);
    if (!self->collected && !self->collecting) {
      /* This thread's turn to wait on the kvik future (one waiter at a time there). */
      self->collecting = 1;
      pthread_mutex_unlock(&self->mu);
      int rc = kvik_future_wait_for(self->fut, WAIT_SLICE_MS);
      pthread_mutex_lock(&self->mu);
      self->collecting = 0;
      if (rc == 0)
        future_collect_locked(self);
      pthread_cond_broadcast(&self->cv);
    } else if (!self->collected) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += WAIT_SLICE_MS * 1000000L;
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&self->cv, &self->mu, &ts);
    }
    collected = self->collected;
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS
    if (collected)
      break;
    if (PyErr_CheckSignals() < 0)
      return NULL; /* the I/O goes on; `keep` holds its memory until it is done */
  }
  /* Final: the memory may go now. */
  Py_CLEAR(self->keep);
  if (self->result < 0)
    return raise_code((long)self->result, self->errmsg, NULL);
  return PyLong_FromSsize_t(self->result);
}

static PyObject *Future_done(PyObject *self_, PyObject *unused) {
  FutureObject *self = (FutureObject *)self_;
  int done;
  pthread_mutex_lock(&self->mu);
  done = self->collected ? 1 : kvik_future_done(self->fut);
  pthread_mutex_unlock(&self->mu);
  if (done < 0)
    return raise_code(done, NULL, NULL);
  return PyBool_FromLong(done);
}

/* File.pread(ptr, size, offset, task_size, keep) and friends: the future holds `keep`. */
static PyObject *file_submit(PyObject *self, PyObject *args, int op) {
  void *ptr;
  size_t size, task_size = 0;
  int64_t off;
  PyObject *keep;
  if (!PyArg_ParseTuple(args, "O&O&O&O&O", to_ptr, &ptr, to_size, &size, to_i64, &off, to_size,
                        &task_size, &keep))
    return NULL;
  struct fh *h = File_get((FileObject *)self);
  if (!h)
    return NULL;
  atomic_fetch_add(&h->refs, 1);
  kvik_future *fut = NULL;
  int rc;
  char *msg = NULL;
  struct kvik_io_opts opts = {.sz = sizeof opts, .task_size = task_size};
  Py_BEGIN_ALLOW_THREADS
  switch (op) {
  case 0: rc = kvik_file_pread(h->f, ptr, size, off, &opts, &fut); break;
  case 1: rc = kvik_file_pwrite(h->f, ptr, size, off, &opts, &fut); break;
  case 2: /* task_size carries the stream */
    rc = kvik_file_read_async_future(h->f, ptr, size, off, (struct CUstream_st *)task_size, &fut);
    break;
  default:
    rc = kvik_file_write_async_future(h->f, ptr, size, off, (struct CUstream_st *)task_size, &fut);
    break;
  }
  if (rc < 0) {
    msg = copy_last_error();
    (void)fh_unref(h);
  }
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  PyObject *f = future_new(fut, h, keep);
  if (!f) {
    /* Without a Python object to hold the memory, wait here. */
    Py_BEGIN_ALLOW_THREADS
    kvik_future_wait(fut);
    (void)fh_unref(h);
    Py_END_ALLOW_THREADS
  }
  return f;
}

static PyObject *File_pread(PyObject *self, PyObject *args) { return file_submit(self, args, 0); }
static PyObject *File_pwrite(PyObject *self, PyObject *args) { return file_submit(self, args, 1); }
static PyObject *File_read_async(PyObject *self, PyObject *args) {
  return file_submit(self, args, 2);
}
static PyObject *File_write_async(PyObject *self, PyObject *args) {
  return file_submit(self, args, 3);
}

static PyMethodDef File_methods[] = {
    {"close", File_close, METH_NOARGS, "Closes the file (once the operations in flight end)."},
    {"fileno", File_fileno, METH_NOARGS, "The buffered file descriptor."},
    {"size", File_size, METH_NOARGS, "The file's size in bytes."},
    {"path", File_path, METH_NOARGS, "The path the file was opened with."},
    {"info", File_info, METH_NOARGS, "Which path serves the file, and why (a dict)."},
    {"read", File_read, METH_VARARGS, "read(ptr, size, offset) -> bytes read (blocking)."},
    {"write", File_write, METH_VARARGS, "write(ptr, size, offset) -> bytes written (blocking)."},
    {"pread", File_pread, METH_VARARGS, "pread(ptr, size, offset, task_size, keep) -> Future."},
    {"pwrite", File_pwrite, METH_VARARGS, "pwrite(ptr, size, offset, task_size, keep) -> Future."},
    {"read_async", File_read_async, METH_VARARGS,
     "read_async(ptr, size, offset, stream, keep) -> Future (stream-ordered)."},
    {"write_async", File_write_async, METH_VARARGS,
     "write_async(ptr, size, offset, stream, keep) -> Future (stream-ordered)."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef File_getset[] = {
    {"closed", File_closed, NULL, "True once close() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot File_slots[] = {
    {Py_tp_init, (void *)File_init},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)File_dealloc},
    {Py_tp_methods, File_methods},
    {Py_tp_getset, File_getset},
    {Py_tp_doc, (void *)"File(path, flags='r', mode=0o644, compat=3)"},
    {0, NULL}};
static PyType_Spec File_spec = {"kvik._kvik.File", sizeof(FileObject), 0, Py_TPFLAGS_DEFAULT,
                                File_slots};

static PyMethodDef Future_methods[] = {
    {"get", Future_get, METH_NOARGS, "Waits (GIL released, Ctrl-C stops the wait) -> bytes."},
    {"done", Future_done, METH_NOARGS, "True if the operation has finished."},
    {NULL, NULL, 0, NULL}};

static PyType_Slot Future_slots[] = {{Py_tp_dealloc, (void *)Future_dealloc},
                                     {Py_tp_methods, Future_methods},
                                     {Py_tp_doc, (void *)"A kvik future."},
                                     {0, NULL}};
static PyType_Spec Future_spec = {"kvik._kvik.Future", sizeof(FutureObject), 0, Py_TPFLAGS_DEFAULT,
                                  Future_slots};

/* ------------------------------------------------------------------------------------------
 * Memory-mapped files (kvik_mmap_*). Reference-counted as files are: the Mmap object holds one
 * reference and every call or future in flight another, so close() from one thread never
 * unmaps under another thread's copy; the last reference closes the kvik_mmap.
 * ------------------------------------------------------------------------------------------ */
struct mh {
  kvik_mmap *m;
  atomic_long refs;
};

/* Drops one reference; the last closes the mapping. Callable without the GIL. Returns the
 * close result when this call closed it, else 0. */
static int mh_unref_rc(struct mh *h) {
  if (atomic_fetch_sub(&h->refs, 1) != 1)
    return 0;
  int rc = kvik_mmap_close(h->m);
  free(h);
  return rc;
}

static void mh_unref(struct mh *h) { (void)mh_unref_rc(h); }

typedef struct {
  PyObject_HEAD struct mh *h; /* NULL once closed */
  int64_t offset;             /* the mapped range, as resolved at open (kept after close) */
  size_t size;
} MmapObject;

static PyTypeObject *Mmap_Type;

/* Mmap(path, flags='r', size=0, offset=0, mode=0o644): size 0 maps to the end of the file. */
static int Mmap_init(PyObject *self_, PyObject *args, PyObject *kw) {
  MmapObject *self = (MmapObject *)self_;
  static char *kwlist[] = {"path", "flags", "size", "offset", "mode", NULL};
  PyObject *path = NULL;
  const char *flags = "r";
  size_t size = 0;
  int64_t offset = 0;
  unsigned int mode = 0644;
  if (self->h) {
    PyErr_SetString(PyExc_RuntimeError, "kvik._kvik.Mmap is already open");
    return -1;
  }
  if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|sO&O&I", kwlist, PyUnicode_FSConverter, &path,
                                   &flags, to_size, &size, to_i64, &offset, &mode))
    return -1;
  const char *cpath = PyBytes_AsString(path);
  if (!cpath) {
    Py_DECREF(path);
    return -1;
  }
  struct mh *h = malloc(sizeof *h);
  if (!h) {
    Py_DECREF(path);
    PyErr_NoMemory();
    return -1;
  }
  kvik_mmap *m = NULL;
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_mmap_open(&m, cpath, flags, size, offset, (mode_t)mode);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    free(h);
    raise_code(rc, msg, cpath);
    free(msg);
    Py_DECREF(path);
    return -1;
  }
  Py_DECREF(path);
  (void)kvik_mmap_range(m, &self->offset, &self->size, NULL);
  h->m = m;
  atomic_init(&h->refs, 1);
  self->h = h;
  return 0;
}

static void Mmap_dealloc(PyObject *self_) {
  MmapObject *self = (MmapObject *)self_;
  if (self->h) {
    struct mh *h = self->h;
    self->h = NULL;
    Py_BEGIN_ALLOW_THREADS
    mh_unref(h);
    Py_END_ALLOW_THREADS
  }
  type_free(self_);
}

static struct mh *Mmap_get(MmapObject *self) {
  if (!self->h)
    PyErr_SetString(PyExc_ValueError, "I/O operation on a closed Mmap");
  return self->h;
}

static PyObject *Mmap_close(PyObject *self_, PyObject *unused) {
  MmapObject *self = (MmapObject *)self_;
  struct mh *h = self->h;
  if (!h)
    Py_RETURN_NONE;
  self->h = NULL;
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = mh_unref_rc(h);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *Mmap_closed(PyObject *self, void *unused) {
  return PyBool_FromLong(((MmapObject *)self)->h == NULL);
}

static PyObject *Mmap_range(PyObject *self_, PyObject *unused) {
  MmapObject *self = (MmapObject *)self_;
  return Py_BuildValue("(LK)", (long long)self->offset, (unsigned long long)self->size);
}

static PyObject *Mmap_file_size(PyObject *self, PyObject *unused) {
  struct mh *h = Mmap_get((MmapObject *)self);
  if (!h)
    return NULL;
  int64_t n = kvik_mmap_file_size(h->m);
  if (n < 0)
    return raise_code((long)n, NULL, NULL);
  return PyLong_FromLongLong(n);
}

/* op: 0 read, 1 write (blocking, this thread), 2 sync. */
static PyObject *mmap_call(PyObject *self, PyObject *args, int op) {
  void *ptr = NULL;
  size_t size = 0;
  int64_t off = 0;
  if (op != 2 && !PyArg_ParseTuple(args, "O&O&O&", to_ptr, &ptr, to_size, &size, to_i64, &off))
    return NULL;
  struct mh *h = Mmap_get((MmapObject *)self);
  if (!h)
    return NULL;
  atomic_fetch_add(&h->refs, 1);
  ssize_t n;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  switch (op) {
  case 0: n = kvik_mmap_read(h->m, ptr, size, off); break;
  case 1: n = kvik_mmap_write(h->m, ptr, size, off); break;
  default: n = kvik_mmap_sync(h->m); break;
  }
  if (n < 0)
    msg = copy_last_error();
  mh_unref(h);
  Py_END_ALLOW_THREADS
  if (n < 0) {
    raise_code((long)n, msg, NULL);
    free(msg);
    return NULL;
  }
  if (op == 2)
    Py_RETURN_NONE;
  return PyLong_FromSsize_t(n);
}

static PyObject *Mmap_read(PyObject *self, PyObject *args) { return mmap_call(self, args, 0); }
static PyObject *Mmap_write(PyObject *self, PyObject *args) { return mmap_call(self, args, 1); }
static PyObject *Mmap_sync(PyObject *self, PyObject *unused) { return mmap_call(self, NULL, 2); }

/* Mmap.pread(ptr, size, offset, task_size, keep) / pwrite: the future holds `keep` and a
 * reference to the mapping. */
static PyObject *mmap_submit(PyObject *self, PyObject *args, bool write) {
  void *ptr;
  size_t size, task_size = 0;
  int64_t off;
  PyObject *keep;
  if (!PyArg_ParseTuple(args, "O&O&O&O&O", to_ptr, &ptr, to_size, &size, to_i64, &off, to_size,
                        &task_size, &keep))
    return NULL;
  struct mh *h = Mmap_get((MmapObject *)self);
  if (!h)
    return NULL;
  atomic_fetch_add(&h->refs, 1);
  kvik_future *fut = NULL;
  int rc;
  char *msg = NULL;
  struct kvik_io_opts opts = {.sz = sizeof opts, .task_size = task_size};
  Py_BEGIN_ALLOW_THREADS
  rc = write ? kvik_mmap_pwrite(h->m, ptr, size, off, &opts, &fut)
             : kvik_mmap_pread(h->m, ptr, size, off, &opts, &fut);
  if (rc < 0) {
    msg = copy_last_error();
    mh_unref(h);
  }
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  PyObject *f = future_new(fut, NULL, keep);
  if (!f) {
    /* Without a Python object to hold the memory, wait here. */
    Py_BEGIN_ALLOW_THREADS
    kvik_future_wait(fut);
    mh_unref(h);
    Py_END_ALLOW_THREADS
    return NULL;
  }
  ((FutureObject *)f)->mh = h;
  return f;
}

static PyObject *Mmap_pread(PyObject *self, PyObject *args) { return mmap_submit(self, args, 0); }
static PyObject *Mmap_pwrite(PyObject *self, PyObject *args) { return mmap_submit(self, args, 1); }

static PyMethodDef Mmap_methods[] = {
    {"close", Mmap_close, METH_NOARGS, "Unmaps and closes (once the operations in flight end)."},
    {"range", Mmap_range, METH_NOARGS, "The mapped range as (offset, size)."},
    {"file_size", Mmap_file_size, METH_NOARGS, "The file's current size in bytes."},
    {"read", Mmap_read, METH_VARARGS, "read(ptr, size, offset) -> bytes read (blocking)."},
    {"write", Mmap_write, METH_VARARGS, "write(ptr, size, offset) -> bytes written (blocking)."},
    {"sync", Mmap_sync, METH_NOARGS, "msync(MS_SYNC) of the mapping."},
    {"pread", Mmap_pread, METH_VARARGS, "pread(ptr, size, offset, task_size, keep) -> Future."},
    {"pwrite", Mmap_pwrite, METH_VARARGS, "pwrite(ptr, size, offset, task_size, keep) -> Future."},
    {NULL, NULL, 0, NULL}};

static PyGetSetDef Mmap_getset[] = {
    {"closed", Mmap_closed, NULL, "True once close() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyType_Slot Mmap_slots[] = {
    {Py_tp_init, (void *)Mmap_init},
    {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)Mmap_dealloc},
    {Py_tp_methods, Mmap_methods},
    {Py_tp_getset, Mmap_getset},
    {Py_tp_doc, (void *)"Mmap(path, flags='r', size=0, offset=0, mode=0o644)"},
    {0, NULL}};
static PyType_Spec Mmap_spec = {"kvik._kvik.Mmap", sizeof(MmapObject), 0, Py_TPFLAGS_DEFAULT,
                                Mmap_slots};

/* ------------------------------------------------------------------------------------------
 * Remote files (kvik_remote_*). Reads in flight keep what they need alive inside kvik, so a
 * Future of a remote pread needs no handle reference; the handle is still reference-counted so
 * that close() from one thread cannot free it under another thread's blocking call.
 * ------------------------------------------------------------------------------------------ */
struct rh {
  kvik_remote *r;
  atomic_long refs; /* the Remote object's (until close) + one per call in progress */
};

static void rh_unref(struct rh *h) {
  if (atomic_fetch_sub(&h->refs, 1) != 1)
    return;
  kvik_remote_close(h->r);
  free(h);
}

typedef struct {
  PyObject_HEAD struct rh *h; /* NULL once closed */
} RemoteObject;

static PyTypeObject *Remote_Type;

/* Remote(url, type=0, allow=0, size=0, region=None, endpoint=None, access_key_id=None,
 *        secret_access_key=None, session_token=None) */
static int Remote_init(PyObject *self_, PyObject *args, PyObject *kw) {
  RemoteObject *self = (RemoteObject *)self_;
  static char *kwlist[] = {"url",           "type",     "allow",         "size",
                           "region",        "endpoint", "access_key_id", "secret_access_key",
                           "session_token", NULL};
  const char *url;
  int type = 0;
  unsigned int allow = 0;
  unsigned long long size = 0;
  const char *region = NULL, *endpoint = NULL, *akid = NULL, *secret = NULL, *token = NULL;
  if (self->h) {
    PyErr_SetString(PyExc_RuntimeError, "kvik._kvik.Remote is already open");
    return -1;
  }
  if (!PyArg_ParseTupleAndKeywords(args, kw, "s|iIKzzzzz", kwlist, &url, &type, &allow, &size,
                                   &region, &endpoint, &akid, &secret, &token))
    return -1;
  struct rh *h = malloc(sizeof *h);
  if (!h) {
    PyErr_NoMemory();
    return -1;
  }
  struct kvik_remote_opts o = {.sz = sizeof o,
                               .type = type,
                               .allow = allow,
                               .size = size,
                               .region = region,
                               .endpoint = endpoint,
                               .access_key_id = akid,
                               .secret_access_key = secret,
                               .session_token = token};
  kvik_remote *r = NULL;
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_remote_open(&r, url, &o);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    free(h);
    raise_code(rc, msg, NULL);
    free(msg);
    return -1;
  }
  h->r = r;
  atomic_init(&h->refs, 1);
  self->h = h;
  return 0;
}

static void Remote_dealloc(PyObject *self_) {
  RemoteObject *self = (RemoteObject *)self_;
  if (self->h) {
    struct rh *h = self->h;
    self->h = NULL;
    rh_unref(h);
  }
  type_free(self_);
}

static struct rh *Remote_get(RemoteObject *self) {
  if (!self->h)
    PyErr_SetString(PyExc_ValueError, "I/O operation on closed remote file");
  return self->h;
}

static PyObject *Remote_close(PyObject *self_, PyObject *unused) {
  RemoteObject *self = (RemoteObject *)self_;
  struct rh *h = self->h;
  self->h = NULL;
  if (h)
    rh_unref(h);
  Py_RETURN_NONE;
}

static PyObject *Remote_closed(PyObject *self, void *unused) {
  return PyBool_FromLong(((RemoteObject *)self)->h == NULL);
}

static PyObject *Remote_size(PyObject *self, PyObject *unused) {
  struct rh *h = Remote_get((RemoteObject *)self);
  if (!h)
    return NULL;
  int64_t n = kvik_remote_size(h->r);
  if (n < 0)
    return raise_code((long)n, NULL, NULL);
  return PyLong_FromLongLong(n);
}

static PyObject *Remote_type(PyObject *self, PyObject *unused) {
  struct rh *h = Remote_get((RemoteObject *)self);
  if (!h)
    return NULL;
  int t = kvik_remote_type(h->r);
  if (t < 0)
    return raise_code(t, NULL, NULL);
  return PyLong_FromLong(t);
}

static PyObject *Remote_url(PyObject *self, PyObject *unused) {
  struct rh *h = Remote_get((RemoteObject *)self);
  if (!h)
    return NULL;
  const char *u = kvik_remote_url(h->r);
  return PyUnicode_FromString(u ? u : "");
}

/* read(ptr, size, offset): one request on this thread. */
static PyObject *Remote_read(PyObject *self, PyObject *args) {
  void *ptr;
  size_t size;
  int64_t off;
  if (!PyArg_ParseTuple(args, "O&O&O&", to_ptr, &ptr, to_size, &size, to_i64, &off))
    return NULL;
  struct rh *h = Remote_get((RemoteObject *)self);
  if (!h)
    return NULL;
  atomic_fetch_add(&h->refs, 1);
  ssize_t n;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  n = kvik_remote_read(h->r, ptr, size, off);
  if (n < 0)
    msg = copy_last_error();
  rh_unref(h);
  Py_END_ALLOW_THREADS
  if (n < 0) {
    raise_code((long)n, msg, NULL);
    free(msg);
    return NULL;
  }
  return PyLong_FromSsize_t(n);
}

/* pread(ptr, size, offset, task_size, keep) -> Future */
static PyObject *Remote_pread(PyObject *self, PyObject *args) {
  void *ptr;
  size_t size, task_size;
  int64_t off;
  PyObject *keep;
  if (!PyArg_ParseTuple(args, "O&O&O&O&O", to_ptr, &ptr, to_size, &size, to_i64, &off, to_size,
                        &task_size, &keep))
    return NULL;
  struct rh *h = Remote_get((RemoteObject *)self);
  if (!h)
    return NULL;
  atomic_fetch_add(&h->refs, 1);
  kvik_future *fut = NULL;
  int rc;
  char *msg = NULL;
  struct kvik_io_opts opts = {.sz = sizeof opts, .task_size = task_size};
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_remote_pread(h->r, ptr, size, off, &opts, &fut);
  if (rc < 0)
    msg = copy_last_error();
  rh_unref(h);
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  PyObject *f = future_new(fut, NULL, keep);
  if (!f) {
    Py_BEGIN_ALLOW_THREADS
    kvik_future_wait(fut);
    Py_END_ALLOW_THREADS
  }
  return f;
}

static PyMethodDef Remote_methods[] = {
    {"close", Remote_close, METH_NOARGS, "Frees the handle (reads in flight finish)."},
    {"size", Remote_size, METH_NOARGS, "The object's size in bytes."},
    {"type", Remote_type, METH_NOARGS, "The endpoint type (enum kvik_remote_type)."},
    {"url", Remote_url, METH_NOARGS, "The URL, secrets replaced by ***."},
    {"read", Remote_read, METH_VARARGS, "read(ptr, size, offset) -> bytes (one request)."},
    {"pread", Remote_pread, METH_VARARGS, "pread(ptr, size, offset, task_size, keep) -> Future."},
    {NULL, NULL, 0, NULL}};
static PyGetSetDef Remote_getset[] = {
    {"closed", Remote_closed, NULL, "True once close() was called.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};
static PyType_Slot Remote_slots[] = {
    {Py_tp_init, (void *)Remote_init},       {Py_tp_new, (void *)PyType_GenericNew},
    {Py_tp_dealloc, (void *)Remote_dealloc}, {Py_tp_methods, Remote_methods},
    {Py_tp_getset, Remote_getset},           {0, NULL}};
static PyType_Spec Remote_spec = {"kvik._kvik.Remote", sizeof(RemoteObject), 0, Py_TPFLAGS_DEFAULT,
                                  Remote_slots};

static PyObject *py_remote_infer_type(PyObject *mod, PyObject *args) {
  const char *url;
  unsigned int allow = 0;
  if (!PyArg_ParseTuple(args, "s|I", &url, &allow))
    return NULL;
  int t = kvik_remote_infer_type(url, allow);
  if (t < 0)
    return raise_code(t, NULL, NULL);
  return PyLong_FromLong(t);
}

static PyObject *py_remote_available(PyObject *mod, PyObject *unused) {
  /* With the size given no request is made: the open succeeds exactly when libcurl is in. */
  struct kvik_remote_opts o = {.sz = sizeof o, .type = KVIK_REMOTE_HTTP, .size = 1};
  kvik_remote *r = NULL;
  int rc = kvik_remote_open(&r, "http://127.0.0.1:9/probe", &o);
  kvik_remote_close(r);
  return PyBool_FromLong(rc == 0);
}

/* ------------------------------------------------------------------------------------------
 * Buffer-protocol views: the address and facts of an object's memory, held until released.
 * ------------------------------------------------------------------------------------------ */
typedef struct {
  PyObject_HEAD Py_buffer view;
  int held;
} BufViewObject;

static PyTypeObject *BufView_Type;

static PyObject *py_buffer_view(PyObject *mod, PyObject *obj) {
  BufViewObject *self = PyObject_New(BufViewObject, BufView_Type);
  if (!self)
    return NULL;
  self->held = 0;
  if (PyObject_GetBuffer(obj, &self->view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
    Py_DECREF(self);
    return NULL;
  }
  self->held = 1;
  return (PyObject *)self;
}

static void BufView_dealloc(PyObject *self_) {
  BufViewObject *self = (BufViewObject *)self_;
  if (self->held)
    PyBuffer_Release(&self->view);
  type_free(self_);
}

static PyObject *BufView_release(PyObject *self_, PyObject *unused) {
  BufViewObject *self = (BufViewObject *)self_;
  if (self->held) {
    self->held = 0;
    PyBuffer_Release(&self->view);
  }
  Py_RETURN_NONE;
}

static PyObject *BufView_get(PyObject *self_, void *which) {
  BufViewObject *self = (BufViewObject *)self_;
  if (!self->held) {
    PyErr_SetString(PyExc_ValueError, "buffer view released");
    return NULL;
  }
  switch ((intptr_t)which) {
  case 0: return PyLong_FromUnsignedLongLong((uintptr_t)self->view.buf);
  case 1: return PyLong_FromSsize_t(self->view.len);
  case 2: return PyBool_FromLong(self->view.readonly);
  case 3: return PyBool_FromLong(PyBuffer_IsContiguous(&self->view, 'A'));
  default: return PyLong_FromSsize_t(self->view.itemsize);
  }
}

static PyMethodDef BufView_methods[] = {
    {"release", BufView_release, METH_NOARGS, "Releases the buffer."}, {NULL, NULL, 0, NULL}};
static PyGetSetDef BufView_getset[] = {
    {"ptr", BufView_get, NULL, "address", (void *)0},
    {"nbytes", BufView_get, NULL, "size in bytes", (void *)1},
    {"readonly", BufView_get, NULL, "read-only", (void *)2},
    {"contiguous", BufView_get, NULL, "C or Fortran contiguous", (void *)3},
    {"itemsize", BufView_get, NULL, "item size", (void *)4},
    {NULL, NULL, NULL, NULL, NULL}};
static PyType_Slot BufView_slots[] = {{Py_tp_dealloc, (void *)BufView_dealloc},
                                      {Py_tp_methods, BufView_methods},
                                      {Py_tp_getset, BufView_getset},
                                      {0, NULL}};
static PyType_Spec BufView_spec = {"kvik._kvik.BufferView", sizeof(BufViewObject), 0,
                                   Py_TPFLAGS_DEFAULT, BufView_slots};

/* ------------------------------------------------------------------------------------------
 * DLPack (https://dmlc.github.io/dlpack/latest/python_spec.html): the consumer renames the
 * capsule to "used_dltensor[_versioned]", owns the managed tensor and calls its deleter when
 * done with the memory.
 * ------------------------------------------------------------------------------------------ */
typedef struct {
  int32_t device_type;
  int32_t device_id;
} DLDevice;
typedef struct {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
} DLDataType;
typedef struct {
  void *data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t *shape;
  int64_t *strides;
  uint64_t byte_offset;
} DLTensor;
typedef struct DLManagedTensor {
  DLTensor dl_tensor;
  void *manager_ctx;
  void (*deleter)(struct DLManagedTensor *self);
} DLManagedTensor;
typedef struct {
  uint32_t major;
  uint32_t minor;
} DLPackVersion;
typedef struct DLManagedTensorVersioned {
  DLPackVersion version;
  void *manager_ctx;
  void (*deleter)(struct DLManagedTensorVersioned *self);
  uint64_t flags;
  DLTensor dl_tensor;
} DLManagedTensorVersioned;
#define DLPACK_FLAG_BITMASK_READ_ONLY (1ULL << 0)

typedef struct {
  PyObject_HEAD void *mt; /* DLManagedTensor or DLManagedTensorVersioned, owned */
  int versioned;
} DLViewObject;

static PyTypeObject *DLView_Type;

static DLTensor *dl_tensor(DLViewObject *self) {
  return self->versioned ? &((DLManagedTensorVersioned *)self->mt)->dl_tensor
                         : &((DLManagedTensor *)self->mt)->dl_tensor;
}

static PyObject *py_dlpack_view(PyObject *mod, PyObject *capsule) {
  int versioned;
  void *mt;
  if (PyCapsule_IsValid(capsule, "dltensor_versioned")) {
    versioned = 1;
    mt = PyCapsule_GetPointer(capsule, "dltensor_versioned");
  } else if (PyCapsule_IsValid(capsule, "dltensor")) {
    versioned = 0;
    mt = PyCapsule_GetPointer(capsule, "dltensor");
  } else {
    PyErr_SetString(PyExc_ValueError,
                    "__dlpack__ returned something that is not an unused DLPack capsule");
    return NULL;
  }
  if (!mt)
    return NULL;
  if (versioned && ((DLManagedTensorVersioned *)mt)->version.major != 1) {
    PyErr_Format(PyExc_BufferError, "DLPack version %u.%u is not supported (1.x is)",
                 ((DLManagedTensorVersioned *)mt)->version.major,
                 ((DLManagedTensorVersioned *)mt)->version.minor);
    return NULL;
  }
  DLViewObject *self = PyObject_New(DLViewObject, DLView_Type);
  if (!self)
    return NULL;
  self->mt = NULL;
  if (PyCapsule_SetName(capsule, versioned ? "used_dltensor_versioned" : "used_dltensor") < 0) {
    Py_DECREF(self);
    return NULL;
  }
  self->mt = mt;
  self->versioned = versioned;
  return (PyObject *)self;
}

static void DLView_release_mt(DLViewObject *self) {
  void *mt = self->mt;
  self->mt = NULL;
  if (!mt)
    return;
  if (self->versioned) {
    DLManagedTensorVersioned *m = mt;
    if (m->deleter)
      m->deleter(m);
  } else {
    DLManagedTensor *m = mt;
    if (m->deleter)
      m->deleter(m);
  }
}

static void DLView_dealloc(PyObject *self_) {
  DLView_release_mt((DLViewObject *)self_);
  type_free(self_);
}

static PyObject *DLView_release(PyObject *self_, PyObject *unused) {
  DLView_release_mt((DLViewObject *)self_);
  Py_RETURN_NONE;
}

/* Contiguous in C or Fortran order (dimensions of extent 1 may have any stride; strides NULL
 * is C order). */
static int dl_contiguous(const DLTensor *t) {
  if (!t->strides)
    return 1;
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] == 0)
      return 1;
  int64_t want = 1;
  int c = 1, f = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->strides[i] != want)
      c = 0;
    want *= t->shape[i];
  }
  want = 1;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] != 1 && t->strides[i] != want)
      f = 0;
    want *= t->shape[i];
  }
  return c || f;
}

static PyObject *DLView_get(PyObject *self_, void *which) {
  DLViewObject *self = (DLViewObject *)self_;
  if (!self->mt) {
    PyErr_SetString(PyExc_ValueError, "DLPack view released");
    return NULL;
  }
  const DLTensor *t = dl_tensor(self);
  switch ((intptr_t)which) {
  case 0: return PyLong_FromUnsignedLongLong((uintptr_t)t->data + t->byte_offset);
  case 1: {
    uint64_t n = ((uint64_t)t->dtype.bits * t->dtype.lanes + 7) / 8;
    for (int i = 0; i < t->ndim; i++)
      n *= (uint64_t)t->shape[i];
    return PyLong_FromUnsignedLongLong(n);
  }
  case 2:
    return PyBool_FromLong(self->versioned && (((DLManagedTensorVersioned *)self->mt)->flags &
                                               DLPACK_FLAG_BITMASK_READ_ONLY));
  case 3: return PyBool_FromLong(dl_contiguous(t));
  case 4: return PyLong_FromLong(t->device.device_type);
  default: return PyLong_FromLong(t->device.device_id);
  }
}

static PyMethodDef DLView_methods[] = {
    {"release", DLView_release, METH_NOARGS, "Calls the tensor's deleter."}, {NULL, NULL, 0, NULL}};
static PyGetSetDef DLView_getset[] = {
    {"ptr", DLView_get, NULL, "address (data + byte_offset)", (void *)0},
    {"nbytes", DLView_get, NULL, "size in bytes", (void *)1},
    {"readonly", DLView_get, NULL, "read-only (DLPack 1.x flag)", (void *)2},
    {"contiguous", DLView_get, NULL, "C or Fortran contiguous", (void *)3},
    {"device_type", DLView_get, NULL, "DLDeviceType", (void *)4},
    {"device_id", DLView_get, NULL, "device ordinal", (void *)5},
    {NULL, NULL, NULL, NULL, NULL}};
static PyType_Slot DLView_slots[] = {{Py_tp_dealloc, (void *)DLView_dealloc},
                                     {Py_tp_methods, DLView_methods},
                                     {Py_tp_getset, DLView_getset},
                                     {0, NULL}};
static PyType_Spec DLView_spec = {"kvik._kvik.DLPackView", sizeof(DLViewObject), 0,
                                  Py_TPFLAGS_DEFAULT, DLView_slots};

/* ------------------------------------------------------------------------------------------
 * Settings and the rest of the C API.
 * ------------------------------------------------------------------------------------------ */
static PyObject *py_config_get(PyObject *mod, PyObject *args) {
  int key;
  if (!PyArg_ParseTuple(args, "i", &key))
    return NULL;
  int type = kvik_config_type((enum kvik_cfg)key);
  if (type < 0)
    return raise_code(type, NULL, NULL);
  if (type == KVIK_CFG_TYPE_STRING) {
    char buf[512];
    int n = kvik_config_get_str((enum kvik_cfg)key, buf, sizeof buf);
    if (n < 0)
      return raise_code(n, NULL, NULL);
    if ((size_t)n < sizeof buf)
      return PyUnicode_FromString(buf);
    char *big = PyMem_Malloc((size_t)n + 1);
    if (!big)
      return PyErr_NoMemory();
    n = kvik_config_get_str((enum kvik_cfg)key, big, (size_t)n + 1);
    PyObject *r = n < 0 ? raise_code(n, NULL, NULL) : PyUnicode_FromString(big);
    PyMem_Free(big);
    return r;
  }
  uint64_t v;
  int rc = kvik_config_get_u64((enum kvik_cfg)key, &v);
  if (rc < 0)
    return raise_code(rc, NULL, NULL);
  return PyLong_FromUnsignedLongLong(v);
}

static PyObject *py_config_set(PyObject *mod, PyObject *args) {
  int key;
  PyObject *value;
  if (!PyArg_ParseTuple(args, "iO", &key, &value))
    return NULL;
  int rc;
  if (PyUnicode_Check(value)) {
    PyObject *b = PyUnicode_AsUTF8String(value);
    if (!b)
      return NULL;
    rc = kvik_config_set_str((enum kvik_cfg)key, PyBytes_AsString(b));
    Py_DECREF(b);
  } else {
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred())
      return NULL;
    rc = kvik_config_set_u64((enum kvik_cfg)key, v);
  }
  if (rc < 0)
    return raise_code(rc, NULL, NULL);
  Py_RETURN_NONE;
}

static PyObject *py_config_info(PyObject *mod, PyObject *args) {
  int key;
  if (!PyArg_ParseTuple(args, "i", &key))
    return NULL;
  const char *name = kvik_config_name((enum kvik_cfg)key);
  if (!name) {
    PyErr_Format(PyExc_ValueError, "unknown setting %d", key);
    return NULL;
  }
  uint64_t lo = 0, hi = 0;
  int type = kvik_config_type((enum kvik_cfg)key);
  if (type != KVIK_CFG_TYPE_STRING)
    (void)kvik_config_bounds((enum kvik_cfg)key, &lo, &hi);
  return Py_BuildValue("{s:s,s:i,s:i,s:K,s:K}", "env", name, "type", type, "source",
                       kvik_config_source((enum kvik_cfg)key), "min", (unsigned long long)lo, "max",
                       (unsigned long long)hi);
}

static PyObject *py_config_reload(PyObject *mod, PyObject *unused) {
  int rc = kvik_config_reload();
  if (rc < 0)
    return raise_code(rc, NULL, NULL);
  Py_RETURN_NONE;
}

static PyObject *py_strerror(PyObject *mod, PyObject *args) {
  int code;
  if (!PyArg_ParseTuple(args, "i", &code))
    return NULL;
  return Py_BuildValue("(ss)", kvik_strerror_name(code), kvik_strerror(code));
}

static PyObject *py_version(PyObject *mod, PyObject *unused) {
  return PyUnicode_FromString(kvik_version());
}

static PyObject *py_cuda_available(PyObject *mod, PyObject *unused) {
  int r;
  Py_BEGIN_ALLOW_THREADS
  r = kvik_cuda_available();
  Py_END_ALLOW_THREADS
  return PyBool_FromLong(r);
}

static PyObject *py_cufile_available(PyObject *mod, PyObject *unused) {
  int r;
  Py_BEGIN_ALLOW_THREADS
  r = kvik_cufile_available();
  Py_END_ALLOW_THREADS
  return PyBool_FromLong(r);
}

static PyObject *py_mem_info(PyObject *mod, PyObject *args) {
  void *ptr;
  size_t size;
  if (!PyArg_ParseTuple(args, "O&O&", to_ptr, &ptr, to_size, &size))
    return NULL;
  struct kvik_mem_info mi = {.sz = sizeof mi};
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_mem_info(ptr, size, &mi);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  static const char *const kinds[] = {"host", "pinned", "device", "managed"};
  return Py_BuildValue("{s:s,s:i,s:O,s:K,s:K,s:K}", "kind",
                       mi.kind >= 0 && mi.kind <= 3 ? kinds[mi.kind] : "?", "device", mi.device,
                       "range_known", mi.range_known ? Py_True : Py_False, "base",
                       (unsigned long long)mi.base, "alloc_size", (unsigned long long)mi.alloc_size,
                       "offset", (unsigned long long)mi.offset);
}

static PyObject *py_buffer_register(PyObject *mod, PyObject *args) {
  void *ptr;
  size_t size;
  int flags = 0;
  if (!PyArg_ParseTuple(args, "O&O&|i", to_ptr, &ptr, to_size, &size, &flags))
    return NULL;
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_buffer_register(ptr, size, flags);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *py_buffer_deregister(PyObject *mod, PyObject *args) {
  void *ptr;
  if (!PyArg_ParseTuple(args, "O&", to_ptr, &ptr))
    return NULL;
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_buffer_deregister(ptr);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  Py_RETURN_NONE;
}

/* stream_register(stream, flags) / stream_deregister(stream) / stream_prepare(stream) */
static PyObject *stream_call(PyObject *args, int op) {
  void *s;
  unsigned int flags = 0;
  if (!PyArg_ParseTuple(args, "O&|I", to_ptr, &s, &flags))
    return NULL;
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = op == 0   ? kvik_stream_register(s, flags)
       : op == 1 ? kvik_stream_deregister(s)
                 : kvik_stream_prepare(s);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  Py_RETURN_NONE;
}
static PyObject *py_stream_register(PyObject *m, PyObject *a) { return stream_call(a, 0); }
static PyObject *py_stream_deregister(PyObject *m, PyObject *a) { return stream_call(a, 1); }
static PyObject *py_stream_prepare(PyObject *m, PyObject *a) { return stream_call(a, 2); }

static PyObject *py_bounce_stats(PyObject *mod, PyObject *unused) {
  struct kvik_bounce_stats st = {.sz = sizeof st};
  int rc = kvik_bounce_stats(&st);
  if (rc < 0)
    return raise_code(rc, NULL, NULL);
  return Py_BuildValue("{s:n,s:n,s:n,s:O}", "allocated", (Py_ssize_t)st.allocated, "in_use",
                       (Py_ssize_t)st.in_use, "peak", (Py_ssize_t)st.peak, "pinned",
                       st.pinned ? Py_True : Py_False);
}

/* prepare(device=-1): kvik_prepare on the default pool. */
static PyObject *py_prepare(PyObject *mod, PyObject *args) {
  int device = -1;
  if (!PyArg_ParseTuple(args, "|i", &device))
    return NULL;
  struct kvik_prepare_opts o = {.sz = sizeof o, .device = device};
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_prepare(&o);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *py_bounce_trim(PyObject *mod, PyObject *unused) {
  Py_BEGIN_ALLOW_THREADS
  kvik_bounce_trim();
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

static PyObject *py_drop_file_cache(PyObject *mod, PyObject *args) {
  PyObject *path;
  if (!PyArg_ParseTuple(args, "O&", PyUnicode_FSConverter, &path))
    return NULL;
  const char *p = PyBytes_AsString(path);
  int rc = -1;
  char *msg = NULL;
  if (p) {
    Py_BEGIN_ALLOW_THREADS
    rc = kvik_drop_file_cache(p);
    if (rc < 0)
      msg = copy_last_error();
    Py_END_ALLOW_THREADS
  }
  PyObject *r = NULL;
  if (p && rc < 0)
    raise_code(rc, msg, p);
  else if (p) {
    Py_INCREF(Py_None);
    r = Py_None;
  }
  free(msg);
  Py_DECREF(path);
  return r;
}

/* page_cache_info(path_or_fd, offset, size) -> (cached_pages, total_pages). An int is a file
 * descriptor (kvik_page_cache_info_fd), anything else a path. */
static PyObject *py_page_cache_info(PyObject *mod, PyObject *args) {
  PyObject *file;
  int64_t off = 0, size = 0;
  if (!PyArg_ParseTuple(args, "O|O&O&", &file, to_i64, &off, to_i64, &size))
    return NULL;
  size_t cached = 0, total = 0;
  int rc;
  char *msg = NULL;
  if (PyLong_Check(file)) {
    int fd = (int)PyLong_AsLong(file);
    if (fd == -1 && PyErr_Occurred())
      return NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = kvik_page_cache_info_fd(fd, off, size, &cached, &total);
    if (rc < 0)
      msg = copy_last_error();
    Py_END_ALLOW_THREADS
    if (rc < 0) {
      raise_code(rc, msg, NULL);
      free(msg);
      return NULL;
    }
    return Py_BuildValue("(nn)", (Py_ssize_t)cached, (Py_ssize_t)total);
  }
  PyObject *path;
  if (!PyUnicode_FSConverter(file, &path))
    return NULL;
  const char *p = PyBytes_AsString(path);
  if (!p) {
    Py_DECREF(path);
    return NULL;
  }
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_page_cache_info(p, off, size, &cached, &total);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  PyObject *r = NULL;
  if (rc < 0)
    raise_code(rc, msg, p);
  else
    r = Py_BuildValue("(nn)", (Py_ssize_t)cached, (Py_ssize_t)total);
  free(msg);
  Py_DECREF(path);
  return r;
}

static PyObject *py_drop_system_cache(PyObject *mod, PyObject *unused) {
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_drop_system_cache();
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *py_path_info(PyObject *mod, PyObject *args) {
  PyObject *path;
  if (!PyArg_ParseTuple(args, "O&", PyUnicode_FSConverter, &path))
    return NULL;
  const char *p = PyBytes_AsString(path);
  PyObject *r = NULL;
  if (p) {
    struct kvik_path_info pi = {.sz = sizeof pi};
    int rc;
    char *msg = NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = kvik_path_info(p, &pi);
    if (rc < 0)
      msg = copy_last_error();
    Py_END_ALLOW_THREADS
    if (rc < 0)
      raise_code(rc, msg, p);
    else
      r = Py_BuildValue("{s:s,s:s,s:I,s:I,s:O}", "fs_type", pi.fs_type, "block_device",
                        pi.block_device, "dev_major", pi.dev_major, "dev_minor", pi.dev_minor,
                        "direct_io", pi.direct_io ? Py_True : Py_False);
    free(msg);
  }
  Py_DECREF(path);
  return r;
}

static PyObject *py_cufile_prop(PyObject *mod, PyObject *args) {
  int prop;
  PyObject *value = Py_None;
  if (!PyArg_ParseTuple(args, "i|O", &prop, &value))
    return NULL;
  int rc;
  uint64_t v = 0;
  char *msg = NULL;
  if (value != Py_None) {
    v = PyLong_AsUnsignedLongLong(value);
    if (v == (uint64_t)-1 && PyErr_Occurred())
      return NULL;
  }
  int set = value != Py_None;
  Py_BEGIN_ALLOW_THREADS
  rc = set ? kvik_cufile_prop_set((enum kvik_cufile_prop)prop, v)
           : kvik_cufile_prop_get((enum kvik_cufile_prop)prop, &v);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  if (set)
    Py_RETURN_NONE;
  return PyLong_FromUnsignedLongLong(v);
}

static PyObject *py_gpu_info(PyObject *mod, PyObject *args) {
  int ordinal;
  if (!PyArg_ParseTuple(args, "i", &ordinal))
    return NULL;
  struct kvik_gpu_info gi = {.sz = sizeof gi};
  int rc;
  char *msg = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = kvik_gpu_info(ordinal, &gi);
  if (rc < 0)
    msg = copy_last_error();
  Py_END_ALLOW_THREADS
  if (rc < 0) {
    raise_code(rc, msg, NULL);
    free(msg);
    return NULL;
  }
  return Py_BuildValue("{s:i,s:s,s:K,s:s,s:i,s:i}", "ordinal", gi.ordinal, "name", gi.name,
                       "total_mem", (unsigned long long)gi.total_mem, "pci_bus_id", gi.pci_bus_id,
                       "cc_major", gi.cc_major, "cc_minor", gi.cc_minor);
}

static PyObject *py_gpu_count(PyObject *mod, PyObject *unused) {
  int n;
  Py_BEGIN_ALLOW_THREADS
  n = kvik_gpu_count();
  Py_END_ALLOW_THREADS
  if (n < 0)
    return PyLong_FromLong(0);
  return PyLong_FromLong(n);
}

static PyMethodDef module_methods[] = {
    {"_set_error_factory", py_set_error_factory, METH_O, NULL},
    {"buffer_view", py_buffer_view, METH_O, "A view of a buffer-protocol object's memory."},
    {"dlpack_view", py_dlpack_view, METH_O, "Takes a DLPack capsule (renames it 'used_...')."},
    {"config_get", py_config_get, METH_VARARGS, NULL},
    {"config_set", py_config_set, METH_VARARGS, NULL},
    {"config_info", py_config_info, METH_VARARGS, NULL},
    {"config_reload", py_config_reload, METH_NOARGS, NULL},
    {"strerror", py_strerror, METH_VARARGS, NULL},
    {"version", py_version, METH_NOARGS, NULL},
    {"cuda_available", py_cuda_available, METH_NOARGS, NULL},
    {"cufile_available", py_cufile_available, METH_NOARGS, NULL},
    {"gpu_count", py_gpu_count, METH_NOARGS, NULL},
    {"gpu_info", py_gpu_info, METH_VARARGS, NULL},
    {"mem_info", py_mem_info, METH_VARARGS, NULL},
    {"buffer_register", py_buffer_register, METH_VARARGS, NULL},
    {"buffer_deregister", py_buffer_deregister, METH_VARARGS, NULL},
    {"stream_register", py_stream_register, METH_VARARGS, NULL},
    {"stream_deregister", py_stream_deregister, METH_VARARGS, NULL},
    {"stream_prepare", py_stream_prepare, METH_VARARGS, NULL},
    {"bounce_stats", py_bounce_stats, METH_NOARGS, NULL},
    {"bounce_trim", py_bounce_trim, METH_NOARGS, NULL},
    {"prepare", py_prepare, METH_VARARGS, NULL},
    {"drop_file_cache", py_drop_file_cache, METH_VARARGS, NULL},
    {"page_cache_info", py_page_cache_info, METH_VARARGS, NULL},
    {"drop_system_cache", py_drop_system_cache, METH_NOARGS, NULL},
    {"path_info", py_path_info, METH_VARARGS, NULL},
    {"cufile_prop", py_cufile_prop, METH_VARARGS, NULL},
    {"remote_infer_type", py_remote_infer_type, METH_VARARGS, NULL},
    {"remote_available", py_remote_available, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT,
                                        "kvik._kvik",
                                        "kvik's C extension (include/kvik.h).",
                                        -1,
                                        module_methods,
                                        NULL,
                                        NULL,
                                        NULL,
                                        NULL};

static int add_type(PyObject *m, PyTypeObject **slot, PyType_Spec *spec, const char *name) {
  *slot = (PyTypeObject *)PyType_FromSpec(spec);
  if (!*slot)
    return -1;
  Py_INCREF(*slot);
  if (PyModule_AddObject(m, name, (PyObject *)*slot) < 0) {
    Py_DECREF(*slot);
    return -1;
  }
  return 0;
}

PyMODINIT_FUNC PyInit__kvik(void) {
  PyObject *m = PyModule_Create(&module_def);
  if (!m)
    return NULL;
  if (add_type(m, &File_Type, &File_spec, "File") < 0 ||
      add_type(m, &Future_Type, &Future_spec, "Future") < 0 ||
      add_type(m, &BufView_Type, &BufView_spec, "BufferView") < 0 ||
      add_type(m, &DLView_Type, &DLView_spec, "DLPackView") < 0 ||
      add_type(m, &Remote_Type, &Remote_spec, "Remote") < 0 ||
      add_type(m, &Mmap_Type, &Mmap_spec, "Mmap") < 0) {
    Py_DECREF(m);
    return NULL;
  }
  /* Codes and setting keys, so the Python side uses kvik.h's values rather than copies. */
#define KVIK_X_ADD(name, value, text) PyModule_AddIntConstant(m, #name, value);
  KVIK_ERRORS(KVIK_X_ADD)
#undef KVIK_X_ADD
  static const struct {
    const char *name;
    int value;
  } consts[] = {
      {"CFG_COMPAT_MODE", KVIK_CFG_COMPAT_MODE},
      {"CFG_NTHREADS", KVIK_CFG_NTHREADS},
      {"CFG_TASK_SIZE", KVIK_CFG_TASK_SIZE},
      {"CFG_GDS_THRESHOLD", KVIK_CFG_GDS_THRESHOLD},
      {"CFG_BOUNCE_BUFFER_SIZE", KVIK_CFG_BOUNCE_BUFFER_SIZE},
      {"CFG_AUTO_DIRECT_IO_READ", KVIK_CFG_AUTO_DIRECT_IO_READ},
      {"CFG_AUTO_DIRECT_IO_READ_OVERREAD", KVIK_CFG_AUTO_DIRECT_IO_READ_OVERREAD},
      {"CFG_AUTO_DIRECT_IO_WRITE", KVIK_CFG_AUTO_DIRECT_IO_WRITE},
      {"CFG_THREAD_POOL_PER_BLOCK_DEVICE", KVIK_CFG_THREAD_POOL_PER_BLOCK_DEVICE},
      {"CFG_HTTP_MAX_ATTEMPTS", KVIK_CFG_HTTP_MAX_ATTEMPTS},
      {"CFG_HTTP_TIMEOUT", KVIK_CFG_HTTP_TIMEOUT},
      {"CFG_HTTP_STATUS_CODES", KVIK_CFG_HTTP_STATUS_CODES},
      {"CFG_REMOTE_VERBOSE", KVIK_CFG_REMOTE_VERBOSE},
      {"CFG_WEBHDFS_USERNAME", KVIK_CFG_WEBHDFS_USERNAME},
      {"CFG_LOG_LEVEL", KVIK_CFG_LOG_LEVEL},
      {"CFG_LOG_FILE", KVIK_CFG_LOG_FILE},
      {"CFG_PREFER_CUFILE_COMPAT", KVIK_CFG_PREFER_CUFILE_COMPAT},
      {"CFG_STREAM_FALLBACK", KVIK_CFG_STREAM_FALLBACK},
      {"CFG_COUNT", KVIK_CFG_COUNT},
      {"CFG_TYPE_BOOL", KVIK_CFG_TYPE_BOOL},
      {"CFG_TYPE_U64", KVIK_CFG_TYPE_U64},
      {"CFG_TYPE_SIZE", KVIK_CFG_TYPE_SIZE},
      {"CFG_TYPE_ENUM", KVIK_CFG_TYPE_ENUM},
      {"CFG_TYPE_STRING", KVIK_CFG_TYPE_STRING},
      {"COMPAT_OFF", KVIK_COMPAT_OFF},
      {"COMPAT_ON", KVIK_COMPAT_ON},
      {"COMPAT_AUTO", KVIK_COMPAT_AUTO},
      {"COMPAT_DEFAULT", KVIK_COMPAT_DEFAULT},
      {"MEM_HOST", KVIK_MEM_HOST},
      {"MEM_HOST_PINNED", KVIK_MEM_HOST_PINNED},
      {"MEM_DEVICE", KVIK_MEM_DEVICE},
      {"MEM_MANAGED", KVIK_MEM_MANAGED},
      {"CUFILE_POLL_MODE", KVIK_CUFILE_POLL_MODE},
      {"CUFILE_POLL_THRESH_SIZE_KB", KVIK_CUFILE_POLL_THRESH_SIZE_KB},
      {"CUFILE_MAX_DIRECT_IO_SIZE_KB", KVIK_CUFILE_MAX_DIRECT_IO_SIZE_KB},
      {"CUFILE_MAX_CACHE_SIZE_KB", KVIK_CUFILE_MAX_CACHE_SIZE_KB},
      {"CUFILE_MAX_PINNED_MEM_SIZE_KB", KVIK_CUFILE_MAX_PINNED_MEM_SIZE_KB},
      {"CUFILE_PER_BUFFER_CACHE_SIZE_KB", KVIK_CUFILE_PER_BUFFER_CACHE_SIZE_KB},
      {"CUFILE_MAX_BATCH_IO_SIZE", KVIK_CUFILE_MAX_BATCH_IO_SIZE},
      {"CUFILE_MAX_BATCH_IO_TIMEOUT_MS", KVIK_CUFILE_MAX_BATCH_IO_TIMEOUT_MS},
  };
  for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
    if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0) {
      Py_DECREF(m);
      return NULL;
    }
  return m;
}
