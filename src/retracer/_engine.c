/*
 * _engine.c -- the CPython binding of the retracer engine.
 *
 * This file only connects CPython to the pure C engine in csrc/: it installs
 * the hook, turns frames and callables into dense function ids, reads the
 * clock and forwards events. The mechanism depends on the Python version:
 *
 *   3.12+   sys.monitoring with C callbacks (METH_FASTCALL, vectorcalled);
 *           registered from Python (tracer.py) with the functions below.
 *   3.11    a PEP 523 frame-evaluation hook: sees every evaluation of a
 *           Python frame (calls and generator resumes) with no per-bytecode
 *           cost; it does not see C functions.
 *   <=3.10  the C profile hook (PyEval_SetProfile), per thread; new threads
 *           get it through threading.setprofile.
 *
 * State: everything mutable lives in the one struct `G` below (documented
 * field by field) plus three thread-locals. All of it is only touched with
 * the GIL held. One tracing session at a time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "rt_clock.h"
#include "rt_engine.h"
#include "rt_map.h"
#include "rt_stream.h"

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) { Py_INCREF(o); return o; }
#endif

#if PY_VERSION_HEX >= 0x030C0000
#define RT_MECH_MONITORING 1
#elif PY_VERSION_HEX >= 0x030B0000
#define RT_MECH_PEP523 1
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#include "opcode.h"
#undef Py_BUILD_CORE
#else
#define RT_MECH_PROFILE 1
#endif

/* 3.11 and 3.12 keep a plain instance's attributes inline ("values") until
 * something asks for its __dict__; from then on the object has a real dict and
 * the interpreter's specialised attribute access no longer applies to it.
 * Pickling an argument asks for its __dict__, so capture would leave every
 * captured object slower for the rest of the run. instance_state() below reads
 * the inline values without materialising the dict. */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
#define RT_INLINE_VALUES 1
#undef _PyGC_FINALIZED
#define Py_BUILD_CORE 1
#include "internal/pycore_dict.h"
#undef Py_BUILD_CORE
#endif

#define RT_IGNORE UINT32_MAX
/* A bit of the binding's copy of a function's flags only (never given to the
 * engine): a coroutine, whose yields go to the event loop and are not kept. */
#define RT_FB_CORO (1u << 24)
#define RT_GEN_FLAGS (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)

/* ------------------------------------------------------------------ state */

struct cap_fn {
    uint32_t first_left;  /* calls still kept unconditionally */
    uint32_t shape_left;  /* calls still kept for a new shape */
    uint32_t stride;      /* look at every stride-th call (1..64) */
    uint32_t quiet;       /* looks without a new shape since the last one */
    uint32_t nsig, capsig;
    uint64_t *sigs;       /* owned; shapes of the kept calls */
};

typedef struct rt_binding {
    rt_engine *engine;      /* owned; NULL when no session */
    rt_clock clock;         /* the session's clock */
    int active;             /* 1 while events are recorded */
    uint64_t gen;           /* session generation; bumps at every start */
    int c_calls;            /* 1: record C functions (where the mechanism allows) */
    int spool_fd;           /* owned; the spool file receiving chunks, -1 if none */
    rt_map code_fids;       /* code object / PyMethodDef pointer -> fid or RT_IGNORE */
    uint32_t *fflags;       /* owned; RT_F_* per fid (copy of the engine's), fcap entries */
    uint32_t nfuncs, fcap;
    PyObject *funcs;        /* owned list; per fid: ('py', code) or ('c', name) */
    PyObject *keep;         /* owned list of ignored code objects kept alive while mapped */
    PyObject *scope;        /* owned tuple of str: absolute directory prefixes, '/'-terminated */
    PyObject *exclude;      /* owned tuple of str: prefixes never in scope (stdlib, site-packages) */
    PyObject *ignore;       /* owned tuple of str: prefixes whose code is not traced at all */
    PyObject *only;         /* owned frozenset of names, or NULL */
    PyObject *cwd;          /* owned str with trailing '/', to absolutise relative filenames */
    /* capture of arguments, results and exceptions (see capture.py) */
    uint32_t *cap_left;     /* owned; per fid: calls until capture_start looks at a call
                               again (1: the next one; 0: never). NULL: capture off */
    struct cap_fn *capfn;   /* owned; per fid: the capture budget and shapes kept (fcap entries) */
    uint32_t max_count;     /* budget given to each capturable function */
    uint32_t shape_share;   /* of it, calls kept only for a new input shape (max_count / 4) */
    int capture_on;         /* 1: capture is enabled for this session */
    PyObject *argnames;     /* owned list per fid: tuple of argument names, or None */
    PyObject *cb_enter;     /* owned: cb_enter(fid, thread_idx, names, values, now) -> capture id or None */
    PyObject *cb_exit;      /* owned: cb_exit(id, raised, value, now) */
    PyObject *cb_yield;     /* owned: cb_yield(id, value) */
    rt_map cap_gens;        /* frame key of a suspended captured generator -> capture id */
    struct rt_capstack **capstacks; /* owned; per engine thread index */
    uint32_t ncapstacks;
    int64_t t_start;        /* clock value at start (ns) */
    int64_t t_stop;         /* clock value at stop (ns) */
#ifdef RT_MECH_PEP523
    _PyFrameEvalFunction prev_eval; /* the evaluator we replaced */
#endif
} rt_binding;

static rt_binding G = {.spool_fd = -1};

static _Thread_local rt_thread *tls_thread; /* this thread's engine state */
static _Thread_local uint64_t tls_gen;      /* session generation tls_thread belongs to */
static _Thread_local int tls_muted;         /* 1: this thread's events are dropped (retracer's own work) */
static PyObject *self_module;               /* borrowed: this module, whose functions are never traced */

/* ------------------------------------------------------------ spool sink */

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Each record: u32 thread_idx, u32 seq, u64 len, u64 n_events (little endian
 * as the machine), then len bytes. Read back by tracer.py. */
static int spool_sink(void *ctx, uint32_t thread_idx, uint32_t seq, const uint8_t *data,
                      size_t len, uint64_t n_events)
{
    int fd = *(int *)ctx;
    unsigned char hdr[24];
    uint64_t l = len;
    memcpy(hdr, &thread_idx, 4);
    memcpy(hdr + 4, &seq, 4);
    memcpy(hdr + 8, &l, 8);
    memcpy(hdr + 16, &n_events, 8);
    if (write_all(fd, hdr, sizeof hdr) != 0 || write_all(fd, data, len) != 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------ functions */

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

/* Argument names of a code object that capture can re-find and replay
 * (a function in scope, not a module/class body, lambda or comprehension),
 * as a new tuple; Py_None otherwise. */
static PyObject *capture_argnames(PyCodeObject *co, uint32_t flags)
{
    if (!(flags & RT_F_SCOPE) || !(co->co_flags & CO_OPTIMIZED) || !(co->co_flags & CO_NEWLOCALS))
        Py_RETURN_NONE;
    const char *name = PyUnicode_AsUTF8(co->co_name);
    if (!name || name[0] == '<') {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Py_ssize_t n = co->co_argcount + co->co_kwonlyargcount + ((co->co_flags & CO_VARARGS) ? 1 : 0) +
                   ((co->co_flags & CO_VARKEYWORDS) ? 1 : 0);
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *varnames = PyCode_GetVarnames(co);
#else
    PyObject *varnames = Py_NewRef(co->co_varnames);
#endif
    if (!varnames)
        return NULL;
    PyObject *names = PyTuple_GetSlice(varnames, 0, n);
    Py_DECREF(varnames);
    return names;
}

static uint32_t new_fid(PyObject *desc, uint32_t flags, PyCodeObject *co)
{
    uint32_t fid = G.nfuncs;
    if (fid >= G.fcap) {
        uint32_t ncap = G.fcap ? G.fcap * 2 : 1024;
        uint32_t *nf = PyMem_RawRealloc(G.fflags, (size_t)ncap * sizeof *nf);
        if (!nf)
            return RT_IGNORE;
        G.fflags = nf;
        if (G.capture_on) {
            uint32_t *nl = PyMem_RawRealloc(G.cap_left, (size_t)ncap * sizeof *nl);
            if (!nl)
                return RT_IGNORE;
            G.cap_left = nl;
            struct cap_fn *nc = PyMem_RawRealloc(G.capfn, (size_t)ncap * sizeof *nc);
            if (!nc)
                return RT_IGNORE;
            G.capfn = nc;
        }
        G.fcap = ncap;
    }
    PyObject *names = co ? capture_argnames(co, flags) : Py_NewRef(Py_None);
    if (!names || rt_engine_set_func(G.engine, fid, flags) != RT_OK ||
        PyList_Append(G.funcs, desc) < 0 || PyList_Append(G.argnames, names) < 0) {
        Py_XDECREF(names);
        PyErr_Clear();
        return RT_IGNORE;
    }
    if (G.capture_on) {
        struct cap_fn *c = &G.capfn[fid];
        memset(c, 0, sizeof *c);
        if (names != Py_None) {
            c->first_left = G.max_count - G.shape_share;
            c->shape_left = G.shape_share;
            c->stride = 1;
        }
        G.cap_left[fid] = names != Py_None ? 1 : 0;
    }
    Py_DECREF(names);
    G.fflags[fid] = flags | ((co && (co->co_flags & (CO_COROUTINE | CO_ITERABLE_COROUTINE))) ? RT_FB_CORO : 0);
    G.nfuncs++;
    return fid;
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
#if PY_VERSION_HEX >= 0x030B0000
        if (hit == 0)
            hit = PySet_Contains(G.only, co->co_qualname);
#endif
        if (hit > 0)
            flags |= RT_F_ONLY;
        PyErr_Clear();
    }
    PyErr_Clear();
    return flags;
}

/* Function id of a code object (registers it on first sight). */
static inline uint32_t code_fid(PyCodeObject *co)
{
    uint64_t *v = rt_map_get(&G.code_fids, (uint64_t)(uintptr_t)co);
    if (RT_LIKELY(v != NULL))
        return (uint32_t)*v;
    uint32_t flags = classify_code(co);
    uint32_t fid = RT_IGNORE;
    if (flags != RT_IGNORE) {
        PyObject *desc = Py_BuildValue("(sO)", "py", (PyObject *)co);
        if (desc) {
            fid = new_fid(desc, flags, co);
            Py_DECREF(desc);
        } else {
            PyErr_Clear();
        }
    } else if (PyList_Append(G.keep, (PyObject *)co) < 0) {
        /* keep ignored code alive too, so its address is not reused while mapped */
        PyErr_Clear();
        return RT_IGNORE;
    }
    if (rt_map_put(&G.code_fids, (uint64_t)(uintptr_t)co, fid) != RT_OK)
        return RT_IGNORE;
    return fid;
}

/* The C function behind a callable, or NULL if it is not one. */
static inline PyMethodDef *c_method_def(PyObject *callable)
{
    if (PyCFunction_Check(callable))
        return ((PyCFunctionObject *)callable)->m_ml;
    if (Py_IS_TYPE(callable, &PyMethodDescr_Type))
        return ((PyMethodDescrObject *)callable)->d_method;
    return NULL;
}

/* Name a C function the way cProfile does, e.g. "<built-in method builtins.len>"
 * or "<method 'append' of 'list' objects>". */
static PyObject *c_func_name(PyObject *callable, PyMethodDef *ml)
{
    if (Py_IS_TYPE(callable, &PyMethodDescr_Type)) {
        PyTypeObject *tp = ((PyMethodDescrObject *)callable)->d_common.d_type;
        return PyUnicode_FromFormat("<method '%s' of '%s' objects>", ml->ml_name, tp->tp_name);
    }
    PyObject *self = PyCFunction_GET_SELF(callable);
    if (self == NULL || PyModule_Check(self)) {
        PyObject *mod = ((PyCFunctionObject *)callable)->m_module;
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

static inline uint32_t cfunc_fid(PyObject *callable, PyMethodDef *ml)
{
    /* key by the method definition, tagged so it cannot collide with a code pointer */
    uint64_t key = (uint64_t)(uintptr_t)ml | 1u;
    uint64_t *v = rt_map_get(&G.code_fids, key);
    if (RT_LIKELY(v != NULL))
        return (uint32_t)*v;
    uint32_t fid = RT_IGNORE;
    int own = PyCFunction_Check(callable) && PyCFunction_GET_SELF(callable) == self_module;
    PyObject *name = own ? NULL : c_func_name(callable, ml);
    if (name) {
        PyObject *desc = Py_BuildValue("(sN)", "c", name);
        if (desc) {
            fid = new_fid(desc, RT_F_C, NULL);
            Py_DECREF(desc);
        }
    }
    PyErr_Clear();
    if (rt_map_put(&G.code_fids, key, fid) != RT_OK)
        return RT_IGNORE;
    return fid;
}

/* This thread's engine state, created on first use in a session. */
static inline rt_thread *cur_thread(int64_t now)
{
    if (RT_LIKELY(tls_gen == G.gen && tls_thread != NULL))
        return tls_muted ? NULL : tls_thread;
    rt_thread *t = rt_engine_add_thread(G.engine, (uint64_t)PyThread_get_thread_ident(),
#if PY_VERSION_HEX >= 0x03080000
                                        (uint64_t)PyThread_get_thread_native_id(),
#else
                                        0,
#endif
                                        now);
    tls_thread = t;
    tls_gen = G.gen;
    tls_muted = 0;
    return t;
}

/* ------------------------------------------------------------- capture
 *
 * The first calls of each function in scope are handed to Python (capture.py)
 * with their argument values at entry; at exit the result or the exception
 * (and, for generators, each yielded value) follows. A per-thread stack
 * remembers which open frames are being captured (by call-stack depth).
 * The Python callbacks run with the thread muted, so nothing they do is
 * traced, and errors they raise are swallowed: capture never changes the
 * program. Calls that are not captured pay one load and one branch.
 */

typedef struct rt_capstack {
    size_t *depth;   /* owned; call-stack depth of each captured open frame */
    long *id;        /* owned; its capture id */
    size_t n, cap;
} rt_capstack;

static rt_capstack *capstack_of(rt_thread *t)
{
    uint32_t idx = rt_thread_index(t);
    if (idx >= G.ncapstacks) {
        uint32_t n = idx + 8;
        rt_capstack **ns = PyMem_RawRealloc(G.capstacks, n * sizeof *ns);
        if (!ns)
            return NULL;
        memset(ns + G.ncapstacks, 0, (n - G.ncapstacks) * sizeof *ns);
        G.capstacks = ns;
        G.ncapstacks = n;
    }
    if (!G.capstacks[idx])
        G.capstacks[idx] = PyMem_RawCalloc(1, sizeof(rt_capstack));
    return G.capstacks[idx];
}

static void capstacks_free(void)
{
    for (uint32_t i = 0; i < G.ncapstacks; i++) {
        if (G.capstacks[i]) {
            PyMem_RawFree(G.capstacks[i]->depth);
            PyMem_RawFree(G.capstacks[i]->id);
            PyMem_RawFree(G.capstacks[i]);
        }
    }
    PyMem_RawFree(G.capstacks);
    G.capstacks = NULL;
    G.ncapstacks = 0;
}

static inline void capstack_push(rt_thread *t, long id)
{
    rt_capstack *cs = capstack_of(t);
    if (!cs)
        return;
    if (cs->n == cs->cap) {
        size_t nc = cs->cap ? cs->cap * 2 : 16;
        size_t *nd = PyMem_RawRealloc(cs->depth, nc * sizeof *nd);
        if (!nd)
            return;
        cs->depth = nd;
        long *ni = PyMem_RawRealloc(cs->id, nc * sizeof *ni);
        if (!ni)
            return;
        cs->id = ni;
        cs->cap = nc;
    }
    cs->depth[cs->n] = rt_thread_depth(t);
    cs->id[cs->n] = id;
    cs->n++;
}

/* The capture id of the innermost frame of t if it is being captured (and
 * pop it), else -1. Call before the engine pops the frame. */
static inline long capstack_take(rt_thread *t)
{
    uint32_t idx = rt_thread_index(t);
    rt_capstack *cs;
    if (RT_LIKELY(idx >= G.ncapstacks || !(cs = G.capstacks[idx]) || cs->n == 0))
        return -1;
    size_t depth = rt_thread_depth(t);
    if (RT_LIKELY(cs->depth[cs->n - 1] < depth))
        return -1; /* the innermost captured call is further out: the common case */
    while (cs->n && cs->depth[cs->n - 1] > depth)
        cs->n--; /* frames closed without our seeing it */
    if (cs->n && cs->depth[cs->n - 1] == depth)
        return cs->id[--cs->n];
    return -1;
}

/* Call a capture callback muted; never leaves an exception set. */
static PyObject *cap_call(PyObject *cb, PyObject *args)
{
    if (!args) {
        PyErr_Clear();
        return NULL;
    }
    int was = tls_muted;
    tls_muted = 1;
    PyObject *r = PyObject_CallObject(cb, args);
    tls_muted = was;
    Py_DECREF(args);
    if (!r) {
        /* Ctrl-C while capturing belongs to the program: it gets it back at
         * its next instruction, as if the key had been pressed a moment later */
        int interrupted = PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
        PyErr_Clear();
        if (interrupted)
            PyErr_SetInterrupt();
    }
    return r;
}

/* Begin capturing a call of fid whose argument values are `values` (a new
 * reference, stolen). Returns the capture id or -1. */
static long cap_begin(rt_thread *t, uint32_t fid, PyObject *values, int64_t now, int why)
{
    uint64_t gen = G.gen;
    PyObject *genobj = NULL;
#ifdef RT_MECH_MONITORING
    /* 3.13 closes a generator suspended outside try/with without running it
     * (no event): capture.py watches the generator object itself. */
    if (G.fflags[fid] & RT_F_GEN) {
        PyFrameObject *frame = PyEval_GetFrame();
        genobj = frame ? PyFrame_GetGenerator(frame) : NULL;
    }
#endif
    PyObject *r = cap_call(G.cb_enter, Py_BuildValue("(IIONLiLN)", fid, rt_thread_index(t),
                                                     PyList_GET_ITEM(G.argnames, fid), values,
                                                     (long long)now, why,
                                                     (long long)rt_thread_call_no(t),
                                                     genobj ? genobj : Py_NewRef(Py_None)));
    long id = -1;
    if (r && PyLong_Check(r))
        id = PyLong_AsLong(r);
    Py_XDECREF(r);
    PyErr_Clear();
    if (G.gen != gen || !G.active)
        return -1;
    return id;
}

static void cap_end(long id, int raised, PyObject *value, int64_t now)
{
    PyObject *r = cap_call(G.cb_exit, Py_BuildValue("(liOL)", id, raised, value ? value : Py_None, (long long)now));
    Py_XDECREF(r);
}

static void cap_yield(long id, PyObject *value)
{
    PyObject *r = cap_call(G.cb_yield, Py_BuildValue("(lO)", id, value ? value : Py_None));
    Py_XDECREF(r);
}

/* End the capture of an exception exit when the exception is the one set in
 * the thread state (PEP 523 and profile hook); keeps it set. */
static void cap_end_current_exc(long id, int64_t now)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value && tb)
        PyException_SetTraceback(value, tb);
    cap_end(id, 1, value, now);
    PyErr_Restore(type, value, tb);
}

/* A captured generator yields: hand over the value and remember it by key. */
static void cap_suspend(long id, uint64_t key, PyObject *value)
{
    cap_yield(id, value);
    rt_map_put(&G.cap_gens, key, (uint64_t)id);
}

/* A generator resumes: its capture id if it is being captured, else -1. */
static inline long cap_resume(uint64_t key)
{
    if (RT_LIKELY(G.cap_gens.len == 0))
        return -1;
    uint64_t *v = rt_map_get(&G.cap_gens, key);
    if (!v)
        return -1;
    long id = (long)*v;
    rt_map_del(&G.cap_gens, key);
    return id;
}

#if PY_VERSION_HEX >= 0x030C0000
/* Argument values of the current frame (3.12+), new reference or NULL. */
static PyObject *args_of_current_frame(uint32_t fid)
{
    PyObject *names = PyList_GET_ITEM(G.argnames, fid);
    if (!PyTuple_Check(names))
        return NULL;
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed */
    if (!frame)
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    PyObject *values = PyTuple_New(n);
    if (!values)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyFrame_GetVar(frame, PyTuple_GET_ITEM(names, i));
        if (!v) {
            Py_DECREF(values);
            return NULL;
        }
        PyTuple_SET_ITEM(values, i, v);
    }
    return values;
}
#endif

#define CAPTURE_WANTED(fid) (RT_UNLIKELY(G.cap_left != NULL) && G.cap_left[fid] != 0 && --G.cap_left[fid] == 0)

/* ------------------------------------------------------ which calls are kept
 *
 * Each capturable function has a budget of max_count calls. Its first
 * (max_count - shape_share) calls are kept whatever they are. After that, a
 * call is kept only if the *shape* of its arguments differs from the shapes of
 * every call already kept for that function, until shape_share more calls are
 * kept. A shape is, per argument in order: its type; for None/bool the value;
 * for int and float the sign (zero, NaN, infinity and ints beyond 64 bits
 * apart); for str, bytes, list, tuple, dict, set the length in buckets 0,
 * 1-7, 8-63, 64-511, ... ; for list and tuple also the type of the first item.
 * Looking at shapes costs a tuple of the arguments per call, so it backs off:
 * after every 1024 looks at a function without a new shape, it looks at every
 * 2nd, 4th, ... up to every 64th call; a new shape resets it to every call.
 * docs/trace-format.md and README describe the policy.
 */



#define RT_SHAPE_MAX_STRIDE 64
#define RT_SHAPE_QUIET 1024
#define RT_SHAPE_MAX_SIGS 4096

static inline uint64_t shape_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

static inline uint64_t len_bucket(Py_ssize_t n)
{
    uint64_t b = 0;
    while (n > 0) {
        n >>= 3;
        b++;
    }
    return b;
}

static uint64_t shape_of(PyObject *v)
{
    PyTypeObject *tp = Py_TYPE(v);
    uint64_t extra = 0;
    if (v == Py_None || PyBool_Check(v)) {
        extra = v == Py_True;
    } else if (PyLong_Check(v)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (x == -1 && PyErr_Occurred())
            PyErr_Clear();
        extra = overflow ? (overflow > 0 ? 4 : 5) : x < 0 ? 1 : x == 0 ? 2 : 3;
    } else if (PyFloat_Check(v)) {
        double d = PyFloat_AS_DOUBLE(v);
        extra = d != d ? 1 : (d == d * 2 && d != 0) ? 2 : d < 0 ? 3 : d == 0 ? 4 : 5;
    } else if (PyUnicode_Check(v)) {
        extra = len_bucket(PyUnicode_GetLength(v));
    } else if (PyBytes_Check(v)) {
        extra = len_bucket(PyBytes_GET_SIZE(v));
    } else if (PyList_Check(v)) {
        Py_ssize_t n = PyList_GET_SIZE(v);
        extra = len_bucket(n) ^ (n ? (uint64_t)(uintptr_t)Py_TYPE(PyList_GET_ITEM(v, 0)) << 8 : 0);
    } else if (PyTuple_Check(v)) {
        Py_ssize_t n = PyTuple_GET_SIZE(v);
        extra = len_bucket(n) ^ (n ? (uint64_t)(uintptr_t)Py_TYPE(PyTuple_GET_ITEM(v, 0)) << 8 : 0);
    } else if (PyDict_Check(v)) {
        extra = len_bucket(PyDict_GET_SIZE(v));
    } else if (PyAnySet_Check(v)) {
        extra = len_bucket(PySet_GET_SIZE(v));
    }
    return shape_mix((uint64_t)(uintptr_t)tp, extra);
}

static uint64_t shape_sig(PyObject *values)
{
    uint64_t h = 0x51ed270b3a8c1f27ULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(values); i++)
        h = shape_mix(h, shape_of(PyTuple_GET_ITEM(values, i)));
    return h;
}

static int shape_known(const struct cap_fn *c, uint64_t sig)
{
    for (uint32_t i = 0; i < c->nsig; i++)
        if (c->sigs[i] == sig)
            return 1;
    return 0;
}

static void shape_add(struct cap_fn *c, uint64_t sig)
{
    if (c->nsig == c->capsig) {
        uint32_t ncap = c->capsig ? c->capsig * 2 : 16;
        if (ncap > RT_SHAPE_MAX_SIGS)
            return;
        uint64_t *ns = PyMem_RawRealloc(c->sigs, ncap * sizeof *ns);
        if (!ns)
            return;
        c->sigs = ns;
        c->capsig = ncap;
    }
    c->sigs[c->nsig++] = sig;
}

/* -------------------------------------------------------------- events
 *
 * What every mechanism does when a call starts, resumes, yields or ends: the
 * engine event plus the capture bookkeeping. `args_of(src, fid)` produces the
 * argument values (a new tuple) and is only called for calls being captured.
 */

typedef PyObject *(*args_fn)(void *src, uint32_t fid);

/* A call of fid that capture looks at (CAPTURE_WANTED said so): keep it or
 * not (see "which calls are kept"), and set when to look again. */
static void capture_start(rt_thread *t, uint32_t fid, int64_t now, args_fn args_of, void *src)
{
    struct cap_fn *c = &G.capfn[fid];
    PyObject *values = args_of(src, fid);
    if (!values) {
        PyErr_Clear();
        G.cap_left[fid] = (c->first_left || c->shape_left) ? c->stride : 0;
        return;
    }
    int why = 0;
    uint64_t sig = G.shape_share ? shape_sig(values) : 0;
    if (c->first_left) {
        c->first_left--;
        if (G.shape_share && !shape_known(c, sig))
            shape_add(c, sig);
    } else if (shape_known(c, sig)) {
        Py_DECREF(values);
        if (++c->quiet % RT_SHAPE_QUIET == 0 && c->stride < RT_SHAPE_MAX_STRIDE)
            c->stride *= 2;
        G.cap_left[fid] = c->stride;
        return;
    } else {
        why = 1;
        c->shape_left--;
        c->quiet = 0;
        c->stride = 1;
        shape_add(c, sig);
    }
    G.cap_left[fid] = (c->first_left || c->shape_left) ? c->stride : 0;
    long id = cap_begin(t, fid, values, now, why);
    if (id >= 0)
        capstack_push(t, id);
}

static inline void ev_enter(rt_thread *t, uint32_t fid, int64_t now, args_fn args_of, void *src)
{
    rt_enter(t, fid, now);
    if (CAPTURE_WANTED(fid))
        capture_start(t, fid, now, args_of, src);
}

static inline void ev_resume(rt_thread *t, uint32_t fid, uint64_t key, int64_t now)
{
    rt_resume(t, fid, key, now);
    long id = cap_resume(key);
    if (id >= 0)
        capstack_push(t, id);
}

static inline void ev_suspend(rt_thread *t, uint32_t fid, uint64_t key, int64_t now, PyObject *value)
{
    if (RT_UNLIKELY(G.cap_left != NULL)) {
        long id = capstack_take(t);
        if (id >= 0) {
            uint64_t gen = G.gen;
            if (G.fflags[fid] & RT_FB_CORO)
                rt_map_put(&G.cap_gens, key, (uint64_t)id); /* what it awaits is not its outcome */
            else
                cap_suspend(id, key, value);
            if (G.gen != gen || !G.active)
                return; /* the session ended during the callback */
        }
    }
    rt_suspend(t, fid, key, now);
}

/* The innermost call returns `value` or raises (exc=1). For a raise, `value`
 * is the exception, or NULL when it is the one set in the thread state (PEP
 * 523) or not visible at all (profile hook: recorded as unknown). */
static inline void ev_exit(rt_thread *t, uint32_t fid, int64_t now, int exc, PyObject *value)
{
    if (RT_UNLIKELY(G.cap_left != NULL)) {
        long id = capstack_take(t);
        if (id >= 0) {
            uint64_t gen = G.gen;
            if (exc && !value && PyErr_Occurred())
                cap_end_current_exc(id, now);
            else
                cap_end(id, exc, value, now);
            if (G.gen != gen || !G.active)
                return;
        }
    }
    rt_exit(t, fid, now, exc);
}

/* ------------------------------------------------------ sys.monitoring */

#ifdef RT_MECH_MONITORING

static inline uint64_t current_frame_key(void)
{
    PyThreadState *ts = PyThreadState_GET();
#if PY_VERSION_HEX >= 0x030D0000
    return (uint64_t)(uintptr_t)ts->current_frame;
#else
    return (uint64_t)(uintptr_t)ts->cframe->current_frame;
#endif
}

static PyObject *disable_obj; /* sys.monitoring.DISABLE (owned), set by set_disable */

/* Common start of the PY_* callbacks: a function id, the time and the
 * thread, or an early return. Retracer's own code gets DISABLE where the
 * event allows it (`ignored`), so it is not reported again. */
#define MON_PRELUDE(ignored)                                            \
    if (RT_UNLIKELY(!G.active))                                         \
        Py_RETURN_NONE;                                                 \
    uint32_t fid = code_fid((PyCodeObject *)args[0]);                   \
    if (RT_UNLIKELY(fid == RT_IGNORE))                                  \
        return Py_NewRef(ignored);                                      \
    int64_t now = rt_clock_now(&G.clock);                               \
    rt_thread *t = cur_thread(now);                                     \
    if (RT_UNLIKELY(!t))                                                \
        Py_RETURN_NONE;

#define MON_ARG2 (nargs > 2 ? args[2] : NULL)

static PyObject *mon_args(void *src, uint32_t fid) { return args_of_current_frame(fid); }

static PyObject *mon_py_start(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(disable_obj)
    ev_enter(t, fid, now, mon_args, NULL);
    Py_RETURN_NONE;
}

static PyObject *mon_py_resume(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(disable_obj)
    ev_resume(t, fid, current_frame_key(), now);
    Py_RETURN_NONE;
}

/* PY_THROW and PY_UNWIND cannot be disabled per location: never DISABLE */
static PyObject *mon_py_throw(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(Py_None)
    ev_resume(t, fid, current_frame_key(), now);
    Py_RETURN_NONE;
}

static PyObject *mon_py_return(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(disable_obj)
    ev_exit(t, fid, now, 0, MON_ARG2);
    Py_RETURN_NONE;
}

static PyObject *mon_py_yield(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(disable_obj)
    ev_suspend(t, fid, current_frame_key(), now, MON_ARG2);
    Py_RETURN_NONE;
}

static PyObject *mon_py_unwind(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(Py_None)
    ev_exit(t, fid, now, 1, MON_ARG2);
    Py_RETURN_NONE;
}

/* The function id of the C function a CALL/C_RETURN/C_RAISE event is about,
 * or RT_IGNORE (not a C function, or called from retracer's own code). */
static inline uint32_t mon_c_fid(PyObject *const *args, Py_ssize_t nargs)
{
    if (RT_UNLIKELY(!G.active) || nargs < 3)
        return RT_IGNORE;
    PyMethodDef *ml = c_method_def(args[2]);
    if (!ml || RT_UNLIKELY(code_fid((PyCodeObject *)args[0]) == RT_IGNORE))
        return RT_IGNORE;
    return cfunc_fid(args[2], ml);
}

static PyObject *mon_call(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t fid = mon_c_fid(args, nargs);
    if (fid == RT_IGNORE)
        Py_RETURN_NONE;
    int64_t now = rt_clock_now(&G.clock);
    rt_thread *t = cur_thread(now);
    if (t)
        rt_enter(t, fid, now);
    Py_RETURN_NONE;
}

static PyObject *mon_c_exit(PyObject *const *args, Py_ssize_t nargs, int exc)
{
    uint32_t fid = mon_c_fid(args, nargs);
    if (fid == RT_IGNORE)
        Py_RETURN_NONE;
    int64_t now = rt_clock_now(&G.clock);
    rt_thread *t = cur_thread(now);
    if (t)
        rt_exit(t, fid, now, exc);
    Py_RETURN_NONE;
}

static PyObject *mon_c_return(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    return mon_c_exit(args, nargs, 0);
}

static PyObject *mon_c_raise(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    return mon_c_exit(args, nargs, 1);
}

static PyObject *set_disable(PyObject *m, PyObject *obj)
{
    Py_XSETREF(disable_obj, Py_NewRef(obj));
    Py_RETURN_NONE;
}

#endif /* RT_MECH_MONITORING */

/* ------------------------------------------------------------- PEP 523 */

#ifdef RT_MECH_PEP523

/* Argument values of a frame about to run (3.11), new reference or NULL. */
static PyObject *args_of_iframe(_PyInterpreterFrame *f, uint32_t fid)
{
    PyObject *names = PyList_GET_ITEM(G.argnames, fid);
    if (!PyTuple_Check(names))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    PyObject *values = PyTuple_New(n);
    if (!values)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = f->localsplus[i];
        if (v && PyCell_Check(v)) /* a generator's cell arguments are already cells */
            v = PyCell_GET(v);
        if (!v) {
            Py_DECREF(values);
            return NULL;
        }
        PyTuple_SET_ITEM(values, i, Py_NewRef(v));
    }
    return values;
}

static PyObject *iframe_args(void *f, uint32_t fid) { return args_of_iframe(f, fid); }

static PyObject *rt_eval_frame(PyThreadState *ts, _PyInterpreterFrame *f, int throwflag)
{
    if (RT_UNLIKELY(!G.active))
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    uint32_t fid = code_fid(f->f_code);
    if (RT_UNLIKELY(fid == RT_IGNORE))
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    uint64_t gen = G.gen;
    int64_t now = rt_clock_now(&G.clock);
    rt_thread *t = cur_thread(now);
    if (RT_UNLIKELY(!t))
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    if (RT_LIKELY(!(G.fflags[fid] & RT_F_GEN))) {
        ev_enter(t, fid, now, iframe_args, f);
        PyObject *r = _PyEval_EvalFrameDefault(ts, f, throwflag);
        if (RT_LIKELY(G.active && G.gen == gen))
            ev_exit(t, fid, rt_clock_now(&G.clock), r == NULL, r);
        return r;
    }
    if (f->owner != FRAME_OWNED_BY_GENERATOR) /* the call that creates the generator */
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    /* a generator or coroutine starts (its first instruction ran: RETURN_GENERATOR) or resumes */
    uint64_t key = (uint64_t)(uintptr_t)f;
    PyGenObject *g = (PyGenObject *)Py_NewRef(_PyFrame_GetGenerator(f));
    int fresh = _Py_OPCODE(*f->prev_instr) == RETURN_GENERATOR;
    ev_resume(t, fid, key, now);
    if (fresh && CAPTURE_WANTED(fid))
        capture_start(t, fid, now, iframe_args, f);
    PyObject *r = _PyEval_EvalFrameDefault(ts, f, throwflag);
    if (G.active && G.gen == gen) {
        now = rt_clock_now(&G.clock);
        if (r != NULL && g->gi_frame_state == FRAME_SUSPENDED)
            ev_suspend(t, fid, key, now, r);
        else
            ev_exit(t, fid, now, r == NULL, r);
    }
    Py_DECREF(g);
    return r;
}

#endif /* RT_MECH_PEP523 */

/* ---------------------------------------------------------- profile hook */

#ifdef RT_MECH_PROFILE

/* Argument values of a frame (<= 3.10), new reference or NULL. */
static PyObject *args_of_pyframe(PyFrameObject *frame, uint32_t fid)
{
    PyObject *names = PyList_GET_ITEM(G.argnames, fid);
    if (!PyTuple_Check(names) || PyFrame_FastToLocalsWithError(frame) < 0)
        return NULL;
    PyObject *locals = frame->f_locals;
    if (!locals || !PyDict_Check(locals))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    PyObject *values = PyTuple_New(n);
    if (!values)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyDict_GetItemWithError(locals, PyTuple_GET_ITEM(names, i));
        if (!v) {
            Py_DECREF(values);
            return NULL;
        }
        PyTuple_SET_ITEM(values, i, Py_NewRef(v));
    }
    return values;
}

static PyObject *pyframe_args(void *frame, uint32_t fid) { return args_of_pyframe(frame, fid); }

static int rt_profile(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    if (RT_UNLIKELY(!G.active))
        return 0;
    int64_t now;
    rt_thread *t;
    uint32_t fid;
    switch (what) {
    case PyTrace_CALL:
    case PyTrace_RETURN: {
        PyCodeObject *co = frame->f_code;
        fid = code_fid(co);
        if (fid == RT_IGNORE)
            return 0;
        now = rt_clock_now(&G.clock);
        t = cur_thread(now);
        if (!t)
            return 0;
        int is_gen = (G.fflags[fid] & RT_F_GEN) != 0;
        uint64_t key = (uint64_t)(uintptr_t)frame;
        if (what == PyTrace_CALL) {
            if (is_gen && frame->f_lasti >= 0)
                ev_resume(t, fid, key, now);
            else
                ev_enter(t, fid, now, pyframe_args, frame);
            return 0;
        }
#if PY_VERSION_HEX >= 0x030A0000
        int suspended = is_gen && frame->f_state == FRAME_SUSPENDED;
#else
        int suspended = is_gen && frame->f_stacktop != NULL;
#endif
        if (suspended)
            ev_suspend(t, fid, key, now, arg);
        else /* a profile function cannot see the exception being raised */
            ev_exit(t, fid, now, arg == NULL, arg);
        return 0;
    }
    case PyTrace_C_CALL:
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION: {
        if (!G.c_calls)
            return 0;
        PyMethodDef *ml = c_method_def(arg);
        if (!ml)
            return 0;
        /* C calls made by retracer's own code (the runner's exec) are not the program's */
        if (RT_UNLIKELY(code_fid(frame->f_code) == RT_IGNORE))
            return 0;
        fid = cfunc_fid(arg, ml);
        if (fid == RT_IGNORE)
            return 0;
        now = rt_clock_now(&G.clock);
        t = cur_thread(now);
        if (!t)
            return 0;
        if (what == PyTrace_C_CALL)
            rt_enter(t, fid, now);
        else
            rt_exit(t, fid, now, what == PyTrace_C_EXCEPTION);
        return 0;
    }
    default:
        return 0;
    }
}

/* Given to threading.setprofile: the first event of a new thread installs
 * the C hook for that thread and is then handled by it. */
static PyObject *thread_bootstrap(PyObject *m, PyObject *args)
{
    PyFrameObject *frame;
    const char *event;
    PyObject *arg;
    if (!PyArg_ParseTuple(args, "OsO", &frame, &event, &arg))
        return NULL;
    if (G.active)
        PyEval_SetProfile(rt_profile, NULL);
    else
        PyEval_SetProfile(NULL, NULL);
    Py_RETURN_NONE;
}

#endif /* RT_MECH_PROFILE */

/* ------------------------------------------------------------- session */

static void clear_config(void)
{
    Py_CLEAR(G.scope);
    Py_CLEAR(G.exclude);
    Py_CLEAR(G.ignore);
    Py_CLEAR(G.only);
    Py_CLEAR(G.cwd);
}

static const char *mechanism(void)
{
#if defined(RT_MECH_MONITORING)
    return "sys.monitoring";
#elif defined(RT_MECH_PEP523)
    return "pep523";
#else
    return "setprofile";
#endif
}

PyDoc_STRVAR(start_doc,
"start(spool, scope, exclude, ignore, only, cwd, no_external, no_imports, c_calls, chunk_size)\n"
"Begin a session: events are recorded from now on. `spool` is a file path the\n"
"call-stream chunks are appended to. On 3.12+ the caller registers the\n"
"sys.monitoring callbacks itself.");

static PyObject *session_start(PyObject *m, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"spool", "scope", "exclude", "ignore", "only", "cwd",
                             "no_external", "no_imports", "c_calls", "chunk_size",
                             "capture", "max_count", "shape_diverse", NULL};
    const char *spool;
    PyObject *scope, *exclude, *ignore, *only, *cwd, *capture = Py_None;
    int no_external = 0, no_imports = 0, c_calls = 1;
    Py_ssize_t chunk_size = 0;
    unsigned int max_count = 100;
    int shape_diverse = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO!O!O!OU|pppnOIp", kwlist, &spool, &PyTuple_Type,
                                     &scope, &PyTuple_Type, &exclude, &PyTuple_Type, &ignore,
                                     &only, &cwd, &no_external, &no_imports, &c_calls,
                                     &chunk_size, &capture, &max_count, &shape_diverse))
        return NULL;
    PyObject *cb_enter = NULL, *cb_exit = NULL, *cb_yield = NULL;
    if (capture != Py_None &&
        !PyArg_ParseTuple(capture, "OOO;capture must be (enter, exit, yield) callables",
                          &cb_enter, &cb_exit, &cb_yield))
        return NULL;
    if (G.engine) {
        PyErr_SetString(PyExc_RuntimeError, "a retracer session is already running");
        return NULL;
    }
    int fd = open(spool, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, spool);
    G.spool_fd = fd;
    rt_config cfg = {0};
    cfg.chunk_size = (size_t)chunk_size;
    cfg.sink = spool_sink;
    cfg.sink_ctx = &G.spool_fd;
    cfg.no_external = no_external;
    cfg.no_imports = no_imports;
    cfg.only_functions = only != Py_None;
    G.engine = rt_engine_new(&cfg);
    G.funcs = PyList_New(0);
    G.keep = PyList_New(0);
    G.argnames = PyList_New(0);
    if (!G.engine || !G.funcs || !G.keep || !G.argnames) {
        rt_engine_free(G.engine);
        G.engine = NULL;
        Py_CLEAR(G.funcs);
        Py_CLEAR(G.keep);
        Py_CLEAR(G.argnames);
        close(fd);
        G.spool_fd = -1;
        return PyErr_NoMemory();
    }
    G.scope = Py_NewRef(scope);
    G.exclude = Py_NewRef(exclude);
    G.ignore = Py_NewRef(ignore);
    G.only = only == Py_None ? NULL : PyFrozenSet_New(only);
    G.cwd = Py_NewRef(cwd);
    if (only != Py_None && !G.only) {
        clear_config();
        return NULL;
    }
    rt_map_init(&G.code_fids, rt_default_allocator());
    rt_map_init(&G.cap_gens, rt_default_allocator());
    G.nfuncs = 0;
    G.capture_on = cb_enter != NULL && max_count > 0;
    G.max_count = max_count;
    G.shape_share = shape_diverse ? max_count / 4 : 0;
    if (G.capture_on) {
        G.cb_enter = Py_NewRef(cb_enter);
        G.cb_exit = Py_NewRef(cb_exit);
        G.cb_yield = Py_NewRef(cb_yield);
    }
    G.c_calls = c_calls;
    rt_clock_init(&G.clock, 2000000, 1);
    G.gen++;
    G.t_start = rt_clock_now(&G.clock);
    G.active = 1;
#ifdef RT_MECH_PEP523
    PyInterpreterState *interp = PyThreadState_GET()->interp;
    G.prev_eval = _PyInterpreterState_GetEvalFrameFunc(interp);
    _PyInterpreterState_SetEvalFrameFunc(interp, rt_eval_frame);
#endif
#ifdef RT_MECH_PROFILE
    PyEval_SetProfile(rt_profile, NULL);
#endif
    Py_RETURN_NONE;
}

static PyObject *build_results(const char *errmsg)
{
    rt_fstat *fs = NULL;
    rt_edge *edges = NULL;
    size_t n_edges = 0;
    PyObject *res = NULL, *fl = NULL, *el = NULL, *tl = NULL;
    if (rt_engine_profile(G.engine, &fs, &edges, &n_edges) != RT_OK)
        return PyErr_NoMemory();
    uint32_t nf = rt_engine_nfuncs(G.engine);
    fl = PyList_New(0);
    el = PyList_New(0);
    tl = PyList_New(0);
    if (!fl || !el || !tl)
        goto done;
    for (uint32_t i = 0; i < nf; i++) {
        if (fs[i].calls == 0)
            continue;
        PyObject *row = Py_BuildValue("(IKKLL)", i, (unsigned long long)fs[i].calls,
                                      (unsigned long long)fs[i].prim_calls,
                                      (long long)fs[i].own_ns, (long long)fs[i].cum_ns);
        if (!row || PyList_Append(fl, row) < 0) {
            Py_XDECREF(row);
            goto done;
        }
        Py_DECREF(row);
    }
    for (size_t i = 0; i < n_edges; i++) {
        if (edges[i].calls == 0)
            continue;
        long long caller = edges[i].caller == RT_ROOT ? -1 : (long long)edges[i].caller;
        PyObject *row = Py_BuildValue("(LIKKLL)", caller, edges[i].callee,
                                      (unsigned long long)edges[i].calls,
                                      (unsigned long long)edges[i].prim_calls,
                                      (long long)edges[i].own_ns, (long long)edges[i].cum_ns);
        if (!row || PyList_Append(el, row) < 0) {
            Py_XDECREF(row);
            goto done;
        }
        Py_DECREF(row);
    }
    uint32_t nt = rt_engine_nthreads(G.engine);
    for (uint32_t i = 0; i < nt; i++) {
        rt_thread_info ti;
        rt_engine_thread_info(G.engine, i, &ti);
        PyObject *row = Py_BuildValue("(IKKKKI)", ti.idx, (unsigned long long)ti.ident,
                                      (unsigned long long)ti.native_id,
                                      (unsigned long long)ti.n_events,
                                      (unsigned long long)ti.stream_calls, ti.chunks);
        if (!row || PyList_Append(tl, row) < 0) {
            Py_XDECREF(row);
            goto done;
        }
        Py_DECREF(row);
    }
    PyObject *flags = PyList_New(G.nfuncs);
    if (!flags)
        goto done;
    for (uint32_t i = 0; i < G.nfuncs; i++)
        PyList_SET_ITEM(flags, i, PyLong_FromUnsignedLong(G.fflags[i] & ~RT_FB_CORO));
    res = Py_BuildValue("{sOsOsNsOsOsOsssLss}", "functions", G.funcs, "argnames", G.argnames, "flags", flags, "func_stats", fl,
                        "edge_stats", el, "threads", tl, "error", errmsg, "duration_ns",
                        (long long)(G.t_stop - G.t_start), "clock", rt_clock_name(&G.clock));
done:
    Py_XDECREF(fl);
    Py_XDECREF(el);
    Py_XDECREF(tl);
    rt_engine_free_profile(G.engine, fs, edges);
    return res;
}

static void session_teardown(void)
{
    rt_engine_free(G.engine);
    G.engine = NULL;
    rt_map_free(&G.code_fids);
    if (G.capfn)
        for (uint32_t i = 0; i < G.nfuncs; i++)
            PyMem_RawFree(G.capfn[i].sigs);
    PyMem_RawFree(G.fflags);
    G.fflags = NULL;
    G.fcap = G.nfuncs = 0;
    Py_CLEAR(G.funcs);
    Py_CLEAR(G.keep);
    Py_CLEAR(G.argnames);
    Py_CLEAR(G.cb_enter);
    Py_CLEAR(G.cb_exit);
    Py_CLEAR(G.cb_yield);
    PyMem_RawFree(G.cap_left);
    G.cap_left = NULL;
    PyMem_RawFree(G.capfn);
    G.capfn = NULL;
    G.capture_on = 0;
    rt_map_free(&G.cap_gens);
    capstacks_free();
    clear_config();
    if (G.spool_fd >= 0)
        close(G.spool_fd);
    G.spool_fd = -1;
}

/* Stop recording (hooks stay installed but inert until stop()). */
static PyObject *session_pause(PyObject *m, PyObject *unused)
{
    G.active = 0;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(stop_doc,
"stop() -> dict\n"
"End the session: close open calls, flush the call stream to the spool and\n"
"return {'functions', 'func_stats', 'edge_stats', 'threads', 'error',\n"
"'duration_ns', 'clock'}. Returns None if no session is running.");

static PyObject *session_stop(PyObject *m, PyObject *unused)
{
    if (!G.engine)
        Py_RETURN_NONE;
    G.active = 0;
    G.t_stop = rt_clock_now(&G.clock);
#ifdef RT_MECH_PEP523
    PyInterpreterState *interp = PyThreadState_GET()->interp;
    if (_PyInterpreterState_GetEvalFrameFunc(interp) == rt_eval_frame)
        _PyInterpreterState_SetEvalFrameFunc(interp, G.prev_eval);
#endif
#ifdef RT_MECH_PROFILE
    PyEval_SetProfile(NULL, NULL);
#endif
    rt_engine_finish(G.engine, G.t_stop);
    const char *errstr = "";
    rt_engine_error(G.engine, &errstr);
    PyObject *res = build_results(errstr);
    session_teardown();
    return res;
}

/* mute(flag) -> previous flag: drop (1) or record again (0) the events of the calling thread. */
static PyObject *set_muted(PyObject *m, PyObject *arg)
{
    int flag = PyObject_IsTrue(arg);
    if (flag < 0)
        return NULL;
    if (G.engine && tls_gen != G.gen) {
        /* make sure the thread state exists so the flag belongs to this session */
        rt_thread *t = rt_engine_add_thread(G.engine, (uint64_t)PyThread_get_thread_ident(),
                                            (uint64_t)PyThread_get_thread_native_id(),
                                            rt_clock_now(&G.clock));
        if (!t)
            return PyErr_NoMemory();
        tls_thread = t;
        tls_gen = G.gen;
    }
    int was = tls_muted;
    tls_muted = flag;
    return PyBool_FromLong(was);
}

static PyObject *is_active(PyObject *m, PyObject *unused) { return PyBool_FromLong(G.active); }

static PyObject *get_mechanism(PyObject *m, PyObject *unused)
{
    return PyUnicode_FromString(mechanism());
}

/* instance_state(obj) -> a new dict of obj's instance attributes, read
 * without materialising its __dict__ (3.11/3.12), or None when obj has no
 * managed dict (then use the usual __dict__/__getstate__ path). */
static PyObject *instance_state(PyObject *m, PyObject *obj)
{
#ifdef RT_INLINE_VALUES
    PyTypeObject *tp = Py_TYPE(obj);
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) || !(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        Py_RETURN_NONE;
    PyDictValues *values = NULL;
    PyObject *dict = NULL;
#if PY_VERSION_HEX >= 0x030C0000
    char *dorv = ((char **)obj)[-3];
    if ((uintptr_t)dorv & 1)
        values = (PyDictValues *)(dorv + 1);
    else
        dict = (PyObject *)dorv;
#else
    values = ((PyDictValues **)obj)[-4];
    if (!values)
        dict = ((PyObject **)obj)[-3];
#endif
    if (!values)
        return dict ? PyDict_Copy(dict) : PyDict_New();
    PyDictKeysObject *keys = ((PyHeapTypeObject *)tp)->ht_cached_keys;
    if (!keys || !DK_IS_UNICODE(keys))
        Py_RETURN_NONE;
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    PyDictUnicodeEntry *ents = DK_UNICODE_ENTRIES(keys);
    for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
        PyObject *v = values->values[i];
        if (!v || !ents[i].me_key)
            continue;
        if (PyDict_SetItem(d, ents[i].me_key, v) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
#else
    Py_RETURN_NONE;
#endif
}

/* has_inline_values(obj) -> True when obj's attributes are still stored
 * inline (3.11/3.12: its __dict__ was never materialised); for tests. */
static PyObject *has_inline_values(PyObject *m, PyObject *obj)
{
#ifdef RT_INLINE_VALUES
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
#if PY_VERSION_HEX >= 0x030C0000
        if ((uintptr_t)((char **)obj)[-3] & 1)
            Py_RETURN_TRUE;
#else
        if (((PyDictValues **)obj)[-4])
            Py_RETURN_TRUE;
#endif
    }
#endif
    Py_RETURN_FALSE;
}

/* decode(chunk: bytes, t0: int = 0) -> list of (tag, fid_or_back, t_ns); for tests and tools. */
static PyObject *decode_chunk(PyObject *m, PyObject *args)
{
    Py_buffer buf;
    long long t0 = 0;
    if (!PyArg_ParseTuple(args, "y*|L", &buf, &t0))
        return NULL;
    PyObject *out = PyList_New(0);
    rt_stream_reader r;
    rt_event ev;
    int rc;
    rt_stream_reader_init(&r, buf.buf, (size_t)buf.len, t0);
    while (out && (rc = rt_stream_next(&r, &ev)) == 1) {
        unsigned long long x = ev.tag == RT_EV_RESUME ? ev.back : ev.fid;
        PyObject *row = Py_BuildValue("(iKL)", ev.tag, x, (long long)ev.t);
        if (!row || PyList_Append(out, row) < 0) {
            Py_XDECREF(row);
            Py_CLEAR(out);
            break;
        }
        Py_DECREF(row);
    }
    PyBuffer_Release(&buf);
    if (out && rc < 0) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_ValueError, "malformed call-stream chunk");
        return NULL;
    }
    return out;
}

static PyMethodDef engine_methods[] = {
    {"start", (PyCFunction)(void (*)(void))session_start, METH_VARARGS | METH_KEYWORDS, start_doc},
    {"stop", session_stop, METH_NOARGS, stop_doc},
    {"pause", session_pause, METH_NOARGS, "Stop recording events; stop() still collects."},
    {"mute", set_muted, METH_O, "mute(flag): drop (True) or record (False) the calling thread's events."},
    {"active", is_active, METH_NOARGS, "True while a session records events."},
    {"mechanism", get_mechanism, METH_NOARGS, "The hook this build uses."},
    {"instance_state", instance_state, METH_O,
     "A copy of an object's instance attributes, read without materialising its __dict__ (3.11/3.12); None if not applicable."},
    {"has_inline_values", has_inline_values, METH_O, "For tests: are obj's attributes still inline?"},
    {"decode", decode_chunk, METH_VARARGS, "Decode one call-stream chunk (for tests and tools)."},
#ifdef RT_MECH_MONITORING
    {"mon_py_start", (PyCFunction)(void (*)(void))mon_py_start, METH_FASTCALL, NULL},
    {"mon_py_resume", (PyCFunction)(void (*)(void))mon_py_resume, METH_FASTCALL, NULL},
    {"mon_py_throw", (PyCFunction)(void (*)(void))mon_py_throw, METH_FASTCALL, NULL},
    {"mon_py_return", (PyCFunction)(void (*)(void))mon_py_return, METH_FASTCALL, NULL},
    {"mon_py_yield", (PyCFunction)(void (*)(void))mon_py_yield, METH_FASTCALL, NULL},
    {"mon_py_unwind", (PyCFunction)(void (*)(void))mon_py_unwind, METH_FASTCALL, NULL},
    {"mon_call", (PyCFunction)(void (*)(void))mon_call, METH_FASTCALL, NULL},
    {"mon_c_return", (PyCFunction)(void (*)(void))mon_c_return, METH_FASTCALL, NULL},
    {"mon_c_raise", (PyCFunction)(void (*)(void))mon_c_raise, METH_FASTCALL, NULL},
    {"set_disable", set_disable, METH_O, NULL},
#endif
#ifdef RT_MECH_PROFILE
    {"thread_bootstrap", thread_bootstrap, METH_VARARGS, NULL},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef engine_module = {
    PyModuleDef_HEAD_INIT, "retracer._engine",
    "The CPython binding of retracer's C tracing engine.", -1, engine_methods,
};

PyMODINIT_FUNC PyInit__engine(void)
{
    PyObject *m = PyModule_Create(&engine_module);
    if (!m)
        return NULL;
    self_module = m;
    if (PyModule_AddStringConstant(m, "MECHANISM", mechanism()) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
