/*
 * registry.c -- function ids: the first time a hook sees a code object or a
 * C function, it gets a dense id, its RT_F_* flags (scope, import machinery,
 * module body, --only-functions, generator, C function) and, when capture can
 * replay it, its argument names. The fast path (a map lookup) is inline in
 * binding.h; this file is the slow path.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"

#define RT_GEN_FLAGS (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)

/* Length of the longest of `prefixes` that `s` starts with, or 0. */
static size_t starts_with_any(const char *s, PyObject *prefixes)
{
    if (!prefixes)
        return 0;
    size_t best = 0;
    Py_ssize_t n = PyTuple_GET_SIZE(prefixes);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t plen;
        const char *p = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(prefixes, i), &plen);
        if (p && plen > 0 && (size_t)plen > best && strncmp(s, p, (size_t)plen) == 0)
            best = (size_t)plen;
    }
    return best;
}

/* Argument names of a code object that capture can re-find and replay (a
 * function in scope, not a module/class body, lambda or comprehension), as a
 * new tuple; a new reference to None otherwise; NULL with an exception set. */
static PyObject *capture_argnames(PyCodeObject *co, uint32_t flags)
{
    PyObject *varnames = NULL, *names = NULL;
    if (!(flags & RT_F_SCOPE) || !(co->co_flags & CO_OPTIMIZED) || !(co->co_flags & CO_NEWLOCALS))
        Py_RETURN_NONE;
    const char *name = PyUnicode_AsUTF8(co->co_name);
    if (!name || name[0] == '<') {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Py_ssize_t n = co->co_argcount + co->co_kwonlyargcount + ((co->co_flags & CO_VARARGS) ? 1 : 0) +
                   ((co->co_flags & CO_VARKEYWORDS) ? 1 : 0);
    varnames = rt_py_code_varnames(co); /* Owned */
    if (!varnames)
        goto error;
    names = PyTuple_GetSlice(varnames, 0, n);
error:
    Py_XDECREF(varnames);
    return names;
}

/* Append `s` to buf (at *n, capacity cap) with tab, newline and backslash escaped
 * as \t, \n, \\; 0 when it does not fit. */
static int journal_put(char *buf, size_t *n, size_t cap, const char *s)
{
    for (; s && *s; s++) {
        char c = *s, esc = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\\' ? '\\' : c == '\r' ? 'r' : 0;
        if (*n + 2 >= cap)
            return 0;
        if (esc) {
            buf[(*n)++] = '\\';
            buf[(*n)++] = esc;
        } else {
            buf[(*n)++] = c;
        }
    }
    return 1;
}

/* The function journal (a followed child's, record/follow.py): one line per new
 * function, written at once, so that the root can still name the calls of a child
 * killed before it wrote its part (tracefile/recover.py reads it):
 *   fid \t flags \t py|c \t name \t qualname \t filename \t firstlineno \n
 * A line that does not fit is left out (its calls are then "<fid N>"). A write
 * error closes the journal. */
static void journal_function(uint32_t fid, uint32_t flags, PyObject *desc, PyCodeObject *co)
{
    if (G.journal_fd < 0 || getpid() != G.pid)  /* a forked child never writes its parent's */
        return;
    char buf[8192];
    size_t n = (size_t)snprintf(buf, sizeof buf, "%u\t%u\t%s\t", fid, flags, co ? "py" : "c");
    int ok = 1;
    if (co) {
        const char *name = PyUnicode_AsUTF8(co->co_name);
        PyObject *q = rt_py_code_qualname(co); /* Borrowed */
        const char *qual = q ? PyUnicode_AsUTF8(q) : name;
        const char *file = PyUnicode_AsUTF8(co->co_filename);
        char abs[4096];
        if (file && file[0] != '/' && file[0] != '<' && G.cwd) {  /* as classify_code sees it */
            const char *cwd = PyUnicode_AsUTF8(G.cwd);
            if (cwd && snprintf(abs, sizeof abs, "%s%s", cwd, file) < (int)sizeof abs)
                file = abs;
        }
        ok = name && qual && file && journal_put(buf, &n, sizeof buf, name);
        if (ok) {
            buf[n++] = '\t';
            ok = journal_put(buf, &n, sizeof buf, qual);
        }
        if (ok) {
            buf[n++] = '\t';
            ok = journal_put(buf, &n, sizeof buf, file);
        }
        if (ok)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "\t%d\n", co->co_firstlineno);
    } else {
        const char *name = PyUnicode_Check(desc) ? PyUnicode_AsUTF8(desc) : NULL;
        ok = name && journal_put(buf, &n, sizeof buf, name);
        if (ok) {
            buf[n++] = '\t';
            ok = journal_put(buf, &n, sizeof buf, name);
        }
        if (ok)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "\t~\t0\n");
    }
    PyErr_Clear();
    if (!ok || n >= sizeof buf)
        return;
    const char *p = buf;
    while (n) {
        ssize_t w = write(G.journal_fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(G.journal_fd);
            G.journal_fd = -1;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Give the next function id to `desc` (Borrowed: the code object or the C
 * function's name) with `flags`; RT_IGNORE when it cannot be registered
 * (no exception is left set: the hook goes on without this function). */
static uint32_t new_fid(PyObject *desc, uint32_t flags, PyCodeObject *co)
{
    uint32_t fid = G.nfuncs;
    PyObject *names = NULL; /* Owned */
    if (fid == RT_IGNORE)
        goto error;
    if (rt_grow(rt_py_allocator(), (void **)&G.fflags, &G.fcap, (size_t)fid + 1, sizeof *G.fflags, 1024) != RT_OK)
        goto error;
    names = co ? capture_argnames(co, flags) : Py_NewRef(Py_None);
    if (!names)
        goto error;
    if (G.capture_on && rt_capture_set_func(&G.capture, fid, names != Py_None) != RT_OK)
        goto error;
    if (rt_engine_set_func(G.engine, fid, flags) != RT_OK)
        goto error;
    if (PyList_Append(G.funcs, desc) < 0)
        goto error;
    if (PyList_Append(G.argnames, names) < 0) {
        PyList_SetSlice(G.funcs, fid, fid + 1, NULL); /* keep the two lists aligned */
        goto error;
    }
    Py_DECREF(names);
    G.fflags[fid] = flags | ((co && (co->co_flags & (CO_COROUTINE | CO_ITERABLE_COROUTINE))) ? RT_FB_CORO : 0);
    G.nfuncs++;
    journal_function(fid, flags, desc, co);
    return fid;
error:
    Py_XDECREF(names);
    PyErr_Clear();
    return RT_IGNORE;
}

/* Decide the flags of a code object; RT_IGNORE for retracer's own code. */
static uint32_t classify_code(PyCodeObject *co)
{
    const char *fn = PyUnicode_AsUTF8(co->co_filename);
    if (!fn) {
        PyErr_Clear();
        return 0;
    }
    char buf[4096];
    if (fn[0] != '/' && fn[0] != '<' && G.cwd) {
        const char *cwd = PyUnicode_AsUTF8(G.cwd);
        if (cwd && snprintf(buf, sizeof buf, "%s%s", cwd, fn) < (int)sizeof buf)
            fn = buf;
    }
    if (starts_with_any(fn, G.ignore))
        return RT_IGNORE;
    uint32_t flags = 0;
    if (co->co_flags & RT_GEN_FLAGS)
        flags |= RT_F_GEN;
    if (strncmp(fn, "<frozen importlib", 17) == 0 || strstr(fn, "/importlib/_bootstrap") != NULL)
        flags |= RT_F_IMPORT;
    const char *name = PyUnicode_AsUTF8(co->co_name);
    if (name && strcmp(name, "<module>") == 0)
        flags |= RT_F_MODULE;
    /* in scope: under a scope directory, not excluded, and not in an installed
     * package below it (a virtual environment inside the project); a scope
     * that is itself inside site-packages is honoured */
    size_t in_scope = starts_with_any(fn, G.scope);
    if (in_scope && !starts_with_any(fn, G.exclude) &&
        strstr(fn + in_scope, "/site-packages/") == NULL && strstr(fn + in_scope, "/dist-packages/") == NULL)
        flags |= RT_F_SCOPE;
    if (G.only) {
        int hit = PySet_Contains(G.only, co->co_name);
        PyObject *qualname = rt_py_code_qualname(co); /* Borrowed */
        if (hit == 0 && qualname)
            hit = PySet_Contains(G.only, qualname);
        if (hit > 0)
            flags |= RT_F_ONLY;
    }
    PyErr_Clear();
    return flags;
}

uint32_t rt_py_code_fid_new(PyCodeObject *co)
{
    uint32_t flags = classify_code(co);
    uint32_t fid = RT_IGNORE;
    if (flags != RT_IGNORE) {
        fid = new_fid((PyObject *)co, flags, co);
    } else if (PyList_Append(G.keep, (PyObject *)co) < 0) {
        /* keep ignored code alive too, so its address is not reused while mapped */
        PyErr_Clear();
        return RT_IGNORE;
    }
    if (rt_map_put(&G.code_fids, (uint64_t)(uintptr_t)co, fid) != RT_OK)
        return RT_IGNORE;
    return fid;
}

/* Name a C function the way cProfile does, e.g. "<built-in method builtins.len>"
 * or "<method 'append' of 'list' objects>". New reference, or NULL. */
static PyObject *c_func_name(PyObject *callable, PyMethodDef *ml)
{
    if (Py_IS_TYPE(callable, &PyMethodDescr_Type)) {
        PyTypeObject *tp = ((PyMethodDescrObject *)callable)->d_common.d_type;
        return PyUnicode_FromFormat("<method '%s' of '%s' objects>", ml->ml_name, tp->tp_name);
    }
    PyObject *self = PyCFunction_GET_SELF(callable); /* Borrowed */
    if (self == NULL || PyModule_Check(self)) {
        PyObject *mod = ((PyCFunctionObject *)callable)->m_module; /* Borrowed */
        const char *modname = NULL;
        if (mod && PyUnicode_Check(mod))
            modname = PyUnicode_AsUTF8(mod);
        else if (self && PyModule_Check(self))
            modname = PyModule_GetName(self);
        PyErr_Clear();
        if (modname)
            return PyUnicode_FromFormat("<built-in method %s.%s>", modname, ml->ml_name);
        return PyUnicode_FromFormat("<built-in method %s>", ml->ml_name);
    }
    return PyUnicode_FromFormat("<method '%s' of '%s' objects>", ml->ml_name, Py_TYPE(self)->tp_name);
}

uint32_t rt_py_cfunc_fid_new(PyObject *callable, PyMethodDef *ml, uint64_t key)
{
    uint32_t fid = RT_IGNORE;
    int own = PyCFunction_Check(callable) && PyCFunction_GET_SELF(callable) == G.self_module;
    PyObject *name = own ? NULL : c_func_name(callable, ml); /* Owned */
    if (name) {
        fid = new_fid(name, RT_F_C, NULL);
        Py_DECREF(name);
    }
    PyErr_Clear();
    if (rt_map_put(&G.code_fids, key, fid) != RT_OK)
        return RT_IGNORE;
    return fid;
}
