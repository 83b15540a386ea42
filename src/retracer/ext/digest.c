/*
 * digest.c -- encode_rows(): the byte sequence a trace's content digest
 * hashes for a batch of rows (tracefile/digest.py; docs/trace-format.md,
 * "Content digest"). Each row is b"R" then each value: NULL b"N"; integer
 * b"I" + i64; float b"F" + f64; text b"S" + u64 length + UTF-8 bytes; blob
 * b"B" + u64 length + bytes; all big-endian. Written in C because digesting
 * a trace in Python took longer than writing it.
 */
#include <string.h>

#include "binding.h"

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} obuf;

static int ob_room(obuf *b, Py_ssize_t need)
{
    if (b->len + need <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + need) {
        if (cap > PY_SSIZE_T_MAX / 2) {
            PyErr_NoMemory();
            return -1;
        }
        cap *= 2;
    }
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void put_be64(char *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

static int put_tagged(obuf *b, char tag, const char *data, Py_ssize_t n)
{
    if (ob_room(b, 9 + n) < 0)
        return -1;
    b->p[b->len] = tag;
    put_be64(b->p + b->len + 1, (uint64_t)n);
    if (n)
        memcpy(b->p + b->len + 9, data, (size_t)n);
    b->len += 9 + n;
    return 0;
}

static int put_value(obuf *b, PyObject *v)
{
    if (v == Py_None) {
        if (ob_room(b, 1) < 0)
            return -1;
        b->p[b->len++] = 'N';
        return 0;
    }
    if (PyLong_Check(v)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_OverflowError, "an integer outside 64 bits in a trace row");
            return -1;
        }
        if (x == -1 && PyErr_Occurred())
            return -1;
        if (ob_room(b, 9) < 0)
            return -1;
        b->p[b->len] = 'I';
        put_be64(b->p + b->len + 1, (uint64_t)x);
        b->len += 9;
        return 0;
    }
    if (PyFloat_Check(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        uint64_t u;
        memcpy(&u, &d, 8);
        if (ob_room(b, 9) < 0)
            return -1;
        b->p[b->len] = 'F';
        put_be64(b->p + b->len + 1, u);
        b->len += 9;
        return 0;
    }
    if (PyUnicode_Check(v)) {
        PyObject *enc = PyUnicode_AsEncodedString(v, "utf-8", "surrogatepass"); /* Owned */
        if (!enc)
            return -1;
        int rc = put_tagged(b, 'S', PyBytes_AS_STRING(enc), PyBytes_GET_SIZE(enc));
        Py_DECREF(enc);
        return rc;
    }
    if (PyBytes_Check(v))
        return put_tagged(b, 'B', PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v));
    if (PyObject_CheckBuffer(v)) {
        Py_buffer view;
        if (PyObject_GetBuffer(v, &view, PyBUF_SIMPLE) < 0)
            return -1;
        int rc = put_tagged(b, 'B', view.buf, view.len);
        PyBuffer_Release(&view);
        return rc;
    }
    PyErr_Format(PyExc_TypeError, "unexpected SQLite value type %.100s", Py_TYPE(v)->tp_name);
    return -1;
}

PyObject *rt_py_encode_rows(PyObject *m, PyObject *rows)
{
    PyObject *seq = PySequence_Fast(rows, "encode_rows() takes a sequence of rows"); /* Owned */
    if (!seq)
        return NULL;
    obuf b = {NULL, 0, 0};
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PySequence_Fast(PySequence_Fast_GET_ITEM(seq, i), "a row is a sequence"); /* Owned */
        if (!row)
            goto error;
        if (ob_room(&b, 1) < 0) {
            Py_DECREF(row);
            goto error;
        }
        b.p[b.len++] = 'R';
        Py_ssize_t k = PySequence_Fast_GET_SIZE(row);
        for (Py_ssize_t j = 0; j < k; j++) {
            if (put_value(&b, PySequence_Fast_GET_ITEM(row, j)) < 0) {
                Py_DECREF(row);
                goto error;
            }
        }
        Py_DECREF(row);
    }
    Py_DECREF(seq);
    PyObject *out = PyBytes_FromStringAndSize(b.p ? b.p : "", b.len);
    PyMem_Free(b.p);
    return out;
error:
    Py_DECREF(seq);
    PyMem_Free(b.p);
    return NULL;
}
