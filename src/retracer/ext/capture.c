/*
 * capture.c -- the capture glue: between the hooks, the selection policy
 * (csrc/rt_capture.h) and the Python side (record/capture.py).
 *
 * For a call the policy looks at, the hook's args_of() reads the argument
 * values; this file computes their shape signature, asks the policy, and
 * hands a kept call to Python as a CallStart (argument values at entry). At
 * its end a CallEnd follows (result or exception), and for a generator a
 * CallYield per yielded value. A per-thread stack remembers which open
 * frames are being captured (by call-stack depth). The Python callbacks run
 * with the thread muted, so nothing they do is traced, and errors they raise
 * are swallowed: capture never changes the program.
 *
 * The shape of a call is, argument by argument in order: its type; for
 * None/bool the value; for int and float the sign (zero, NaN, infinity and
 * ints beyond 64 bits apart); for str, bytes, list, tuple, dict, set the
 * length in buckets 0, 1-7, 8-63, 64-511, ...; for list and tuple also the
 * type of the first item. README "Which calls are kept" describes it.
 */
#include <string.h>

#include "binding.h"

/* ------------------------------------------------------------ capture stacks */

static rt_capstack *capstack_of(rt_thread *t)
{
    uint32_t idx = rt_thread_index(t);
    if (idx >= G.ncapstacks) {
        size_t old = G.ncapstacks;
        if (rt_grow(rt_py_allocator(), (void **)&G.capstacks, &G.ncapstacks, (size_t)idx + 1,
                    sizeof *G.capstacks, 8) != RT_OK)
            return NULL;
        memset(G.capstacks + old, 0, (G.ncapstacks - old) * sizeof *G.capstacks);
    }
    if (!G.capstacks[idx]) {
        G.capstacks[idx] = rt_malloc(rt_py_allocator(), sizeof(rt_capstack));
        if (G.capstacks[idx])
            memset(G.capstacks[idx], 0, sizeof(rt_capstack));
    }
    return G.capstacks[idx];
}

void rt_py_capstacks_free(void)
{
    const rt_allocator *a = rt_py_allocator();
    for (size_t i = 0; i < G.ncapstacks; i++) {
        if (G.capstacks[i]) {
            rt_free(a, G.capstacks[i]->depth);
            rt_free(a, G.capstacks[i]->id);
            rt_free(a, G.capstacks[i]);
        }
    }
    rt_free(a, G.capstacks);
    G.capstacks = NULL;
    G.ncapstacks = 0;
}

void rt_py_capstack_push(rt_thread *t, long id)
{
    const rt_allocator *a = rt_py_allocator();
    rt_capstack *cs = capstack_of(t);
    if (!cs || rt_grow(a, (void **)&cs->depth, &cs->cap_depth, cs->n + 1, sizeof *cs->depth, 16) != RT_OK ||
        rt_grow(a, (void **)&cs->id, &cs->cap_id, cs->n + 1, sizeof *cs->id, 16) != RT_OK)
        return;
    cs->depth[cs->n] = rt_thread_depth(t);
    cs->id[cs->n] = id;
    cs->n++;
}

long rt_py_capstack_take_slow(rt_capstack *cs, size_t depth)
{
    while (cs->n && cs->depth[cs->n - 1] > depth)
        cs->n--; /* frames closed without our seeing it */
    if (cs->n && cs->depth[cs->n - 1] == depth)
        return cs->id[--cs->n];
    return -1;
}

/* ---------------------------------------------------------------- callbacks */

/* An exception the program's signal handler raised while retracer was
 * capturing, waiting to be raised in the program's own code (main thread:
 * signal handlers and pending calls both run there). Owned. */
static rt_py_err_state cap_handed_back;
static int cap_handed_back_set = 0;   /* an exception is waiting */
static int cap_handed_back_queued = 0; /* and a pending call will raise it */

static int cap_raise_handed_back(void *unused)
{
    (void)unused;
    cap_handed_back_queued = 0;
    if (!cap_handed_back_set || rt_py_tls.muted)
        return 0; /* still inside retracer: cap_call queues it again when it is done */
    cap_handed_back_set = 0;
    rt_py_err_restore(&cap_handed_back);
    return -1;
}

static void cap_queue_handed_back(void)
{
    if (cap_handed_back_set && !cap_handed_back_queued && Py_AddPendingCall(cap_raise_handed_back, NULL) == 0)
        cap_handed_back_queued = 1;
}

/* Takes the set exception and schedules it for the program. */
static void cap_hand_back(void)
{
    if (cap_handed_back_set) { /* one is waiting already: the first wins */
        PyErr_Clear();
        return;
    }
    rt_py_err_save(&cap_handed_back);
    cap_handed_back_set = 1;
}

/* Call a capture callback with one argument (`arg`: a new reference, stolen;
 * NULL when building it failed), muted. Returns its result (new reference) or
 * NULL; never leaves an exception set. */
static PyObject *cap_call(PyObject *cb, PyObject *arg)
{
    PyObject *r = NULL; /* Owned */
    if (arg) {
        int was = rt_py_tls.muted;
        rt_py_tls.muted = 1;
        r = PyObject_CallOneArg(cb, arg);
        rt_py_tls.muted = was;
        Py_DECREF(arg);
    }
    if (!r) {
        if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
            /* Ctrl-C while capturing belongs to the program: it gets it back at
             * its next instruction, as if the key had been pressed a moment later */
            PyErr_Clear();
            PyErr_SetInterrupt();
        } else if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            /* Any other BaseException reaching here (capture.py lets only
             * those through) was raised by the program's own signal handler
             * that ran while capturing, e.g. sys.exit() in a SIGTERM handler:
             * the program gets it back at its next instruction. */
            cap_hand_back();
        } else {
            PyErr_Clear();
        }
    }
    if (RT_UNLIKELY(cap_handed_back_set) && !rt_py_tls.muted)
        cap_queue_handed_back();
    return r;
}

/* Begin capturing a call of fid whose argument values are `values` (a new
 * reference, stolen). Returns the capture id, or -1. */
static long cap_begin(rt_thread *t, uint32_t fid, PyObject *values, int64_t tl, int why)
{
    uint64_t gen = G.gen;
    PyObject *genobj = NULL; /* Owned */
#ifdef RT_MECH_MONITORING
    /* 3.13 closes a generator suspended outside try/with without running it
     * (no event): capture.py watches the generator object itself. */
    if (G.fflags[fid] & RT_F_GEN)
        genobj = G.starting_gen ? Py_NewRef(G.starting_gen) : NULL;
#endif
    PyObject *items[] = {
        PyLong_FromUnsignedLong(fid),
        PyLong_FromUnsignedLong(rt_thread_index(t)),
        Py_NewRef(PyList_GET_ITEM(G.argnames, fid)),
        values,
        PyLong_FromLongLong((long long)tl),
        PyUnicode_FromString(rt_capture_reason(why)),
        PyLong_FromLongLong((long long)rt_thread_call_no(t)),
        genobj ? genobj : Py_NewRef(Py_None),
    };
    PyObject *r = cap_call(G.cb_enter, rt_py_named(&rt_py_CallStartType, items, 8)); /* Owned */
    long id = -1;
    if (r && PyLong_Check(r))
        id = PyLong_AsLong(r);
    Py_XDECREF(r);
    PyErr_Clear();
    if (G.gen != gen || !G.active)
        return -1;
    return id;
}

static void cap_end(long id, int raised, PyObject *value, int64_t tl)
{
    PyObject *items[] = {
        PyLong_FromLong(id),
        PyBool_FromLong(raised),
        Py_NewRef(value ? value : Py_None),
        PyLong_FromLongLong((long long)tl),
    };
    Py_XDECREF(cap_call(G.cb_exit, rt_py_named(&rt_py_CallEndType, items, 4)));
}

void rt_py_capture_end(long id, int raised, PyObject *value, int64_t tl)
{
    /* an exception being raised (set in the thread state: PEP 523, the
     * profile hook) stays set, and is the call's outcome when value is NULL */
    rt_py_err_state st;
    rt_py_err_save(&st);
    if (raised && !value)
        value = rt_py_err_value(&st);
    cap_end(id, raised, value, tl);
    rt_py_err_restore(&st);
}

void rt_py_capture_suspend(long id, uint64_t key, PyObject *value)
{
    rt_py_err_state st;
    rt_py_err_save(&st);
    PyObject *items[] = {PyLong_FromLong(id), Py_NewRef(value ? value : Py_None)};
    Py_XDECREF(cap_call(G.cb_yield, rt_py_named(&rt_py_CallYieldType, items, 2)));
    rt_map_put(&G.cap_gens, key, (uint64_t)id);
    rt_py_err_restore(&st);
}

long rt_py_capture_resume_slow(uint64_t key)
{
    uint64_t *v = rt_map_get(&G.cap_gens, key);
    if (!v)
        return -1;
    long id = (long)*v;
    rt_map_del(&G.cap_gens, key);
    return id;
}

/* ----------------------------------------------------------------- shapes */

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

/* The shape signature of a tuple of argument values, for the policy. */
static uint64_t shape_sig(PyObject *values)
{
    uint64_t h = 0x51ed270b3a8c1f27ULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(values); i++)
        h = shape_mix(h, shape_of(PyTuple_GET_ITEM(values, i)));
    return h;
}

/* ------------------------------------------------------------------ start */

void rt_py_capture_start(rt_thread *t, uint32_t fid, int64_t now, rt_py_args_fn args_of, void *src)
{
    /* nothing here may clear or replace an exception being raised */
    rt_py_err_state st;
    rt_py_err_save(&st);
    uint64_t gen = G.gen;
    if (rt_capture_throttle(&G.capture, fid, now)) {
        /* over the time budget: not even the arguments are read */
        rt_py_err_restore(&st);
        return;
    }
    PyObject *values = args_of(src, fid); /* Owned */
    if (!values) {
        rt_capture_unseen(&G.capture, fid);
        goto done;
    }
    rt_capture_call call;
    memset(&call, 0, sizeof call);
    call.now = now;
    if (rt_capture_uses_shapes(&G.capture))
        call.sig = shape_sig(values);
    int why = rt_capture_decide(&G.capture, fid, &call);
    if (why == RT_CAPTURE_SKIP) {
        Py_DECREF(values);
        goto done;
    }
    long id = cap_begin(t, fid, values, rt_thread_time(t, now), why);
    if (id >= 0)
        rt_py_capstack_push(t, id);
done:
    rt_py_err_restore(&st);
    if (G.gen == gen && G.active) /* else t is gone with its session */
        rt_py_capture_paused(t, rt_clock_now(&G.clock) - now);
}
