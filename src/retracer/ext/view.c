/*
 * view.c -- retracer._view, the CPython binding of pattern folding (csrc/rt_fold.h).
 *
 * One function, fold(), runs the pure C folder over one thread's call-stream
 * chunks and returns the folded tree and the call-path profile as compact
 * byte buffers (docs/folding.md, "Encoding"), which retracer.view decodes
 * (Python, for the text form) and the HTML page decodes (JavaScript). No
 * state outside the call: every rt_fold lives on the C stack of fold().
 */
#include "compat.h"

#include "rt_fold.h"

/* Raise the Python exception for an engine return code; returns NULL. */
static PyObject *fold_error(int rc, const char *what)
{
    if (rc == RT_ERR_NOMEM)
        return PyErr_NoMemory();
    if (rc == RT_ERR_DATA)
        PyErr_Format(PyExc_ValueError, "malformed call stream (%s)", what);
    else
        PyErr_Format(PyExc_ValueError, "call stream does not fit the folder (%s, code %d)", what, rc);
    return NULL;
}

PyDoc_STRVAR(fold_doc,
"fold(chunks, max_period=64, patterns=True, captures=None) -> (tree, paths, info)\n\n"
"Fold one thread's call stream. `chunks` is an iterable of bytes-like chunks\n"
"in seq order. Returns the encoded folded tree (bytes), the encoded call-path\n"
"profile (bytes) and a dict: calls, spans, groups, max_depth, anomalies and,\n"
"when `captures` (a sequence of (fid, t_start_ns)) is given, 'captures': the\n"
"node's call number for each, or None when no span matches.\n"
"ValueError for a malformed stream, MemoryError when memory runs out.");

static PyObject *view_fold(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"chunks", "max_period", "patterns", "captures", NULL};
    PyObject *chunks, *captures = Py_None;
    unsigned int max_period = RT_FOLD_DEFAULT_PERIOD;
    int patterns = 1, rc;
    PyObject *it = NULL, *item = NULL, *tree = NULL, *paths = NULL, *info = NULL, *caps = NULL; /* Owned */
    PyObject *result = NULL; /* Owned */
    uint8_t *buf = NULL;
    size_t len = 0;
    rt_fold f;
    (void)self;

    rt_fold_init(&f, NULL, rt_default_allocator()); /* nothing allocated yet: `error` can free it */
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|IpO:fold", kwlist, &chunks, &max_period,
                                     &patterns, &captures))
        goto error;
    if (max_period < 1 || max_period > RT_FOLD_PERIOD_LIMIT) {
        PyErr_Format(PyExc_ValueError, "max_period must be 1..%d", RT_FOLD_PERIOD_LIMIT);
        goto error;
    }
    rt_fold_opts opts = {max_period, patterns};
    rt_fold_init(&f, &opts, rt_default_allocator());

    it = PyObject_GetIter(chunks);
    if (!it)
        goto error;
    while ((item = PyIter_Next(it)) != NULL) {
        Py_buffer view;
        if (PyObject_GetBuffer(item, &view, PyBUF_SIMPLE) < 0)
            goto error;
        rc = rt_fold_feed(&f, (const uint8_t *)view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
        Py_CLEAR(item);
        if (rc != RT_OK) {
            fold_error(rc, "decoding a chunk");
            goto error;
        }
    }
    if (PyErr_Occurred())
        goto error;
    if ((rc = rt_fold_finish(&f)) != RT_OK) {
        fold_error(rc, "closing the call tree");
        goto error;
    }
    /* encoded straight into the bytes object: no copy of a buffer that can be 100 MB */
    Py_BEGIN_ALLOW_THREADS
    rc = rt_fold_encode_size(&f, &len);
    Py_END_ALLOW_THREADS
    if (rc != RT_OK) {
        fold_error(rc, "encoding the folded tree");
        goto error;
    }
    tree = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
    if (!tree)
        goto error;
    Py_BEGIN_ALLOW_THREADS
    rc = rt_fold_encode_into(&f, (uint8_t *)PyBytes_AS_STRING(tree), len);
    Py_END_ALLOW_THREADS
    if (rc != RT_OK) {
        fold_error(rc, "encoding the folded tree");
        goto error;
    }
    Py_BEGIN_ALLOW_THREADS
    rc = rt_fold_paths(&f, &buf, &len);
    Py_END_ALLOW_THREADS
    if (rc != RT_OK) {
        fold_error(rc, "merging call paths");
        goto error;
    }
    paths = PyBytes_FromStringAndSize((const char *)buf, (Py_ssize_t)len);
    rt_free(f.alloc, buf);
    buf = NULL;
    if (!paths)
        goto error;

    info = Py_BuildValue("{s:I,s:I,s:I,s:I,s:K}", "calls", f.calls, "spans", f.n_nodes - 1,
                         "groups", f.n_groups, "max_depth", f.max_depth, "anomalies",
                         (unsigned long long)f.walker.anomalies);
    if (!info)
        goto error;
    if (captures != Py_None) {
        PyObject *seq = PySequence_Fast(captures, "captures must be a sequence of (fid, t_ns)");
        if (!seq)
            goto error;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        caps = PyList_New(n);
        for (Py_ssize_t i = 0; caps && i < n; i++) {
            unsigned long fid;
            long long t;
            uint32_t node;
            PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
            if (!PyArg_ParseTuple(pair, "kL:captures", &fid, &t)) {
                Py_CLEAR(caps);
                break;
            }
            PyObject *v;
            rc = fid <= RT_FOLD_MAX_FID ? rt_fold_find_call(&f, (uint32_t)fid, t, &node)
                                         : RT_ERR_STATE;
            if (rc == RT_ERR_NOMEM) {
                PyErr_NoMemory();
                Py_CLEAR(caps);
                break;
            }
            if (rc == RT_OK)
                v = PyLong_FromUnsignedLong(f.nodes[node].calls_before);
            else
                v = Py_NewRef(Py_None);
            if (!v) {
                Py_CLEAR(caps);
                break;
            }
            PyList_SET_ITEM(caps, i, v);
        }
        Py_DECREF(seq);
        if (!caps || PyDict_SetItemString(info, "captures", caps) < 0)
            goto error;
    }
    result = PyTuple_Pack(3, tree, paths, info);
error:
    Py_XDECREF(item);
    Py_XDECREF(it);
    Py_XDECREF(tree);
    Py_XDECREF(paths);
    Py_XDECREF(info);
    Py_XDECREF(caps);
    if (buf)
        rt_free(f.alloc, buf);
    rt_fold_free(&f);
    return result;
}

static PyMethodDef view_methods[] = {
    {"fold", (PyCFunction)(void (*)(void))view_fold, METH_VARARGS | METH_KEYWORDS, fold_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef view_module = {
    PyModuleDef_HEAD_INIT, "retracer._view",
    "Pattern folding of call trees (the C engine's rt_fold), for retracer view.", -1,
    view_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__view(void)
{
    PyObject *m = PyModule_Create(&view_module); /* Owned */
    if (!m || PyModule_AddIntConstant(m, "ENCODING_VERSION", RT_FOLD_ENCODING_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "DEFAULT_PERIOD", RT_FOLD_DEFAULT_PERIOD) < 0 ||
        PyModule_AddIntConstant(m, "PERIOD_LIMIT", RT_FOLD_PERIOD_LIMIT) < 0)
        goto error;
    return m;
error:
    Py_XDECREF(m);
    return NULL;
}
