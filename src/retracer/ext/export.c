/*
 * export.c -- retracer._export, the CPython binding of the exporters (csrc/rt_export.h).
 *
 * One type, Exporter, that wraps an rt_export: Python reads the trace file
 * and feeds the call-stream chunks of each thread; the C exporter decodes
 * them and writes the chosen format to a file descriptor or to a Python
 * callable, in blocks of at most 64 KiB (memory does not grow with the
 * number of events).
 *
 *     ex = Exporter("chrome", fd_or_callable, name=..., exporter=..., pid=...,
 *                   time_unix_ns=..., duration_ns=..., merge_threads=False)
 *     ex.add_function(fid, name, system_name, file, line, label, kind)   # kind 'py' or 'c'
 *     ex.thread_begin(thread_idx, tid, name); ex.feed(chunk); ex.thread_end()
 *     stats = ex.finish()            # dict of counters (spans, calls, bytes, ...)
 *
 * Errors: MemoryError (allocation), OSError (writing the file descriptor),
 * the callable's own exception, ValueError (malformed chunk), RuntimeError
 * (calls out of order). After an error the exporter refuses further work.
 * No global state: everything lives in the Exporter object.
 */
#include "compat.h"

#include <errno.h>
#include <unistd.h>

#include "rt_export.h"

typedef struct {
    PyObject_HEAD
    rt_export *ex;       /* owned; NULL after a failed construction */
    int fd;              /* output file descriptor (borrowed: the caller closes it), or -1 */
    PyObject *write;     /* Owned: callable taking bytes, or NULL when fd >= 0 */
    int saved_errno;     /* errno of a failed write(2) */
    int py_error;        /* 1: the callable raised; the exception is pending */
    int busy;            /* 1 while a call runs without the GIL */
} ExporterObject;

static int exp_out(void *ctx, const uint8_t *data, size_t len)
{
    ExporterObject *self = ctx;
    if (self->fd >= 0) {
        while (len) {
            ssize_t n = write(self->fd, data, len);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                self->saved_errno = errno;
                return -1;
            }
            data += n;
            len -= (size_t)n;
        }
        return 0;
    }
    PyObject *r = PyObject_CallFunction(self->write, "y#", (const char *)data, (Py_ssize_t)len);
    if (!r) {
        self->py_error = 1;
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

/* Raise the Python exception for rc; returns NULL. */
static PyObject *exp_raise(ExporterObject *self, int rc)
{
    const char *msg = self->ex ? rt_export_errstr(self->ex) : "";
    if (rc == RT_ERR_IO) {
        if (self->py_error && PyErr_Occurred())
            return NULL;
        errno = self->saved_errno ? self->saved_errno : EIO;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (PyErr_Occurred())
        return NULL;
    if (rc == RT_ERR_NOMEM)
        return PyErr_NoMemory();
    if (rc == RT_ERR_DATA)
        PyErr_SetString(PyExc_ValueError, msg);
    else
        PyErr_Format(PyExc_RuntimeError, "export error %d: %s", rc, msg);
    return NULL;
}

static int exp_ready(ExporterObject *self)
{
    if (!self->ex) {
        PyErr_SetString(PyExc_RuntimeError, "Exporter is not initialised");
        return 0;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Exporter is in use by another thread");
        return 0;
    }
    return 1;
}

/* UTF-8 bytes of a str (lone surrogates kept, the exporter replaces them), or
 * NULL with *bytes = NULL for None. Returns -1 with an exception set. */
static int exp_utf8(PyObject *o, PyObject **bytes, const char **s)
{
    *bytes = NULL;
    *s = NULL;
    if (o == Py_None)
        return 0;
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "expected str or None, not %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    *bytes = PyUnicode_AsEncodedString(o, "utf-8", "surrogatepass");
    if (!*bytes)
        return -1;
    *s = PyBytes_AS_STRING(*bytes);
    return 0;
}

static int Exporter_init(ExporterObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"format", "out", "name", "exporter", "pid", "time_unix_ns", "duration_ns",
                             "merge_threads", "gzip_level", NULL};
    const char *fmt;
    PyObject *out, *name = Py_None, *exporter = Py_None; /* Borrowed */
    PyObject *name_b = NULL, *exporter_b = NULL;         /* Owned: their UTF-8 bytes */
    long long pid = 0, time_unix_ns = 0, duration_ns = 0;
    int merge = 0, level = 0, ret = -1;
    rt_export_opts opts;

    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO|$OOLLLpi", kwlist, &fmt, &out, &name, &exporter, &pid,
                                     &time_unix_ns, &duration_ns, &merge, &level))
        goto error;
    if (self->ex) {
        PyErr_SetString(PyExc_RuntimeError, "Exporter is already initialised");
        goto error;
    }
    memset(&opts, 0, sizeof opts);
    opts.format = rt_export_format_by_name(fmt);
    if (!opts.format) {
        PyErr_Format(PyExc_ValueError, "unknown export format '%s'", fmt);
        goto error;
    }
    if (PyLong_Check(out)) {
        int fd = PyObject_AsFileDescriptor(out);
        if (fd < 0)
            goto error;
        self->fd = fd;
    } else if (PyCallable_Check(out)) {
        self->fd = -1;
        Py_XSETREF(self->write, Py_NewRef(out));
    } else {
        PyErr_SetString(PyExc_TypeError, "out must be a file descriptor or a callable taking bytes");
        goto error;
    }
    if (exp_utf8(name, &name_b, &opts.name) < 0 || exp_utf8(exporter, &exporter_b, &opts.exporter) < 0)
        goto error;
    opts.pid = pid;
    opts.time_unix_ns = time_unix_ns;
    opts.duration_ns = duration_ns;
    opts.merge_threads = merge;
    opts.gzip_level = level;
    int rc = rt_export_new(&self->ex, &opts, exp_out, self, rt_default_allocator());
    if (rc != RT_OK) {
        exp_raise(self, rc);
        goto error;
    }
    ret = 0;
error:
    Py_XDECREF(name_b);
    Py_XDECREF(exporter_b);
    return ret;
}

static void Exporter_dealloc(ExporterObject *self)
{
    rt_export_free(self->ex);
    self->ex = NULL;
    Py_CLEAR(self->write);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Exporter_add_function(ExporterObject *self, PyObject *args)
{
    unsigned long fid;
    long long line;
    PyObject *name, *sys, *file, *label;          /* Borrowed */
    PyObject *b[4] = {NULL, NULL, NULL, NULL};    /* Owned: their UTF-8 bytes */
    const char *kind;
    rt_export_func f;
    PyObject *ret = NULL;

    memset(&f, 0, sizeof f);
    if (!exp_ready(self) || !PyArg_ParseTuple(args, "kOOOLOs", &fid, &name, &sys, &file, &line, &label, &kind))
        goto error;
    if (fid > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "fid out of range");
        goto error;
    }
    if (exp_utf8(name, &b[0], &f.name) < 0 || exp_utf8(sys, &b[1], &f.system_name) < 0 ||
        exp_utf8(file, &b[2], &f.file) < 0 || exp_utf8(label, &b[3], &f.label) < 0)
        goto error;
    f.line = line;
    f.kind = strcmp(kind, "c") == 0 ? RT_FUNC_C : RT_FUNC_PY;
    int rc = rt_export_add_function(self->ex, (uint32_t)fid, &f);
    if (rc != RT_OK) {
        exp_raise(self, rc);
        goto error;
    }
    ret = Py_NewRef(Py_None);
error:
    for (int i = 0; i < 4; i++)
        Py_XDECREF(b[i]);
    return ret;
}

static PyObject *Exporter_thread_begin(ExporterObject *self, PyObject *args)
{
    unsigned long idx;
    long long tid;
    PyObject *name;     /* Borrowed */
    PyObject *pid = Py_None; /* Borrowed: the thread's process, or None for the exporter's pid */
    PyObject *frame = Py_None; /* Borrowed: its process's root frame (pprof, folded), or None */
    PyObject *nb = NULL; /* Owned: its UTF-8 bytes */
    PyObject *fb = NULL; /* Owned: the frame's UTF-8 bytes */
    PyObject *ret = NULL;
    const char *s, *fs = NULL;
    int rc;
    if (!exp_ready(self) || !PyArg_ParseTuple(args, "kLO|OO", &idx, &tid, &name, &pid, &frame) ||
        exp_utf8(name, &nb, &s) < 0 || exp_utf8(frame, &fb, &fs) < 0)
        goto error;
    if (pid != Py_None) {
        long long p = PyLong_AsLongLong(pid);
        if (p == -1 && PyErr_Occurred())
            goto error;
        rt_export_set_pid(self->ex, p);
        if ((rc = rt_export_set_process(self->ex, p, fs)) != RT_OK) {
            exp_raise(self, rc);
            goto error;
        }
    }
    rc = rt_export_thread_begin(self->ex, (uint32_t)idx, tid, s);
    if (rc != RT_OK) {
        exp_raise(self, rc);
        goto error;
    }
    ret = Py_NewRef(Py_None);
error:
    Py_XDECREF(nb);
    Py_XDECREF(fb);
    return ret;
}

static PyObject *Exporter_feed(ExporterObject *self, PyObject *arg)
{
    Py_buffer view = {0}; /* released at the end (a no-op while not acquired) */
    PyObject *ret = NULL;
    int rc;
    if (!exp_ready(self) || PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        goto error;
    if (self->fd >= 0) {
        /* no Python is called while writing to a descriptor: let other threads run */
        self->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        rc = rt_export_feed(self->ex, view.buf, (size_t)view.len);
        Py_END_ALLOW_THREADS
        self->busy = 0;
    } else {
        rc = rt_export_feed(self->ex, view.buf, (size_t)view.len);
    }
    if (rc != RT_OK) {
        exp_raise(self, rc);
        goto error;
    }
    ret = Py_NewRef(Py_None);
error:
    PyBuffer_Release(&view);
    return ret;
}

static PyObject *Exporter_thread_end(ExporterObject *self, PyObject *unused)
{
    int rc;
    if (!exp_ready(self))
        goto error;
    if ((rc = rt_export_thread_end(self->ex)) != RT_OK) {
        exp_raise(self, rc);
        goto error;
    }
    Py_RETURN_NONE;
error:
    return NULL;
}

static PyObject *Exporter_stats(ExporterObject *self, PyObject *unused)
{
    rt_export_stats st;
    if (!exp_ready(self))
        return NULL;
    rt_export_get_stats(self->ex, &st);
    return Py_BuildValue("{sKsKsKsKsKsKsn}", "spans", (unsigned long long)st.spans, "calls",
                         (unsigned long long)st.calls, "events", (unsigned long long)st.events, "anomalies",
                         (unsigned long long)st.anomalies, "nodes", (unsigned long long)st.nodes, "bytes",
                         (unsigned long long)st.bytes, "max_depth", (Py_ssize_t)st.max_depth);
}

static PyObject *Exporter_finish(ExporterObject *self, PyObject *unused)
{
    int rc;
    if (!exp_ready(self))
        goto error;
    if ((rc = rt_export_finish(self->ex)) != RT_OK) {
        exp_raise(self, rc);
        goto error;
    }
    return Exporter_stats(self, NULL);
error:
    return NULL;
}

static PyMethodDef Exporter_methods[] = {
    {"add_function", (PyCFunction)Exporter_add_function, METH_VARARGS,
     "add_function(fid, name, system_name, file, line, label, kind): describe a function ('py' or 'c')"},
    {"thread_begin", (PyCFunction)Exporter_thread_begin, METH_VARARGS,
     "thread_begin(thread_idx, tid, name, pid=None, frame=None): start a thread's stream (pid: its process; "
     "frame: that process's root frame in pprof and folded)"},
    {"feed", (PyCFunction)Exporter_feed, METH_O, "feed(chunk): decode one chunk of the current thread"},
    {"thread_end", (PyCFunction)Exporter_thread_end, METH_NOARGS, "end the current thread"},
    {"finish", (PyCFunction)Exporter_finish, METH_NOARGS, "write the rest and flush; returns the counters"},
    {"stats", (PyCFunction)Exporter_stats, METH_NOARGS, "the counters so far"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ExporterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "retracer._export.Exporter",
    .tp_basicsize = sizeof(ExporterObject),
    .tp_dealloc = (destructor)Exporter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Exporter(format, out, *, name=None, exporter=None, pid=0, time_unix_ns=0, duration_ns=0, "
              "merge_threads=False, gzip_level=0): write a trace's call stream in another tool's format",
    .tp_methods = Exporter_methods,
    .tp_init = (initproc)Exporter_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef export_module = {
    PyModuleDef_HEAD_INIT, "retracer._export",
    "The C exporters of retracer (chrome, speedscope, folded, pprof, json).", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__export(void)
{
    PyObject *m = NULL; /* Owned */
    if (PyType_Ready(&ExporterType) < 0 || !(m = PyModule_Create(&export_module)))
        goto error;
    Py_INCREF(&ExporterType);
    if (PyModule_AddObject(m, "Exporter", (PyObject *)&ExporterType) < 0) {
        Py_DECREF(&ExporterType);
        goto error;
    }
    return m;
error:
    Py_XDECREF(m);
    return NULL;
}
