/*
 * hook_pep523.c -- the hook of Python frames on 3.11+: a PEP 523
 * frame-evaluation function (_PyInterpreterState_SetEvalFrameFunc, installed
 * by session.c). It sees every evaluation of a Python frame -- first entries
 * and generator or coroutine resumes alike -- with no per-bytecode cost, and
 * turns off the interpreter's inlining of Python-to-Python calls (and, on
 * 3.12+, of generator resumes in for loops and `yield from`/`await`) while
 * installed, so every call passes through it. It is interpreter-wide (threads
 * already running are covered) and leaves sys.monitoring to other tools
 * (coverage, debuggers). It does not see C functions (hook_monitoring.c does,
 * on 3.12+).
 *
 * Depth: each frame now runs in a C call of its own. On 3.12+ the default
 * evaluator charges every frame it runs to the C recursion budget, which
 * inlined calls do not use (3.12 allows only ~750 such frames); the hook
 * gives the charge back while the C stack has room, and stops giving it back
 * (CPython then raises RecursionError as it would for deep C recursion) when
 * less than RT_PY_STACK_MARGIN of the thread's stack is left.
 */
#define RT_PY_FRAME_INTERNALS 1
#include <pthread.h>

#include "binding.h"

#ifdef RT_MECH_PEP523

#if RT_PY_EVAL_C_UNITS
/* Stack the hook keeps free below the deepest frame it gives the C
 * recursion charge back to: enough for the frames CPython still allows
 * afterwards (its C recursion limit) and what they call. */
#define RT_PY_STACK_MARGIN ((size_t)1 << 20)

/* Per OS thread: the lowest stack address at which the charge is given back
 * (1: unknown, never give it back). */
static _Thread_local uintptr_t stack_guard RT_PY_TLS_MODEL;

static __attribute__((noinline)) void stack_guard_init(void)
{
    pthread_attr_t attr;
    void *lo;
    size_t size;
    stack_guard = 1;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return;
    if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
        size_t margin = RT_PY_STACK_MARGIN < size / 2 ? RT_PY_STACK_MARGIN : size / 2;
        stack_guard = (uintptr_t)lo + margin;
    }
    pthread_attr_destroy(&attr);
}
#endif

/* The default evaluator, with the C recursion charge given back (see above). */
static inline PyObject *eval_default(PyThreadState *ts, _PyInterpreterFrame *f, int throwflag)
{
#if RT_PY_EVAL_C_UNITS
    if (RT_UNLIKELY(stack_guard == 0))
        stack_guard_init();
    if (RT_LIKELY((uintptr_t)__builtin_frame_address(0) > stack_guard)) {
        rt_py_c_recursion(ts) += RT_PY_EVAL_C_UNITS;
        PyObject *r = _PyEval_EvalFrameDefault(ts, f, throwflag);
        rt_py_c_recursion(ts) -= RT_PY_EVAL_C_UNITS;
        return r;
    }
#endif
    return _PyEval_EvalFrameDefault(ts, f, throwflag);
}

/* Argument values of a frame about to run, new reference or NULL. */
static PyObject *args_of_iframe(void *src, uint32_t fid)
{
    _PyInterpreterFrame *f = src;
    PyObject *values = NULL; /* Owned */
    PyObject *names = PyList_GET_ITEM(G.argnames, fid); /* Borrowed */
    if (!PyTuple_Check(names))
        goto error;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (!(values = PyTuple_New(n)))
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = f->localsplus[i]; /* Borrowed */
        if (v && PyCell_Check(v)) /* a generator's cell arguments are already cells */
            v = PyCell_GET(v);
        if (!v)
            goto error;
        PyTuple_SET_ITEM(values, i, Py_NewRef(v));
    }
    return values;
error:
    Py_XDECREF(values);
    return NULL;
}

PyObject *rt_py_eval_frame(PyThreadState *ts, _PyInterpreterFrame *f, int throwflag)
{
    if (RT_UNLIKELY(!G.active))
        return eval_default(ts, f, throwflag);
    uint32_t fid = rt_py_code_fid(rt_py_iframe_code(f));
    if (RT_UNLIKELY(fid == RT_IGNORE))
        return eval_default(ts, f, throwflag);
    uint64_t gen = G.gen;
    int64_t now = rt_clock_now(&G.clock);
    rt_thread *t = rt_py_cur_thread(now);
    if (RT_UNLIKELY(!t))
        return eval_default(ts, f, throwflag);
    if (RT_LIKELY(!(G.fflags[fid] & RT_F_GEN))) {
        rt_py_ev_enter(t, fid, now, args_of_iframe, f);
        PyObject *r = eval_default(ts, f, throwflag);
        if (RT_LIKELY(G.active && G.gen == gen))
            rt_py_ev_exit(t, fid, rt_clock_now(&G.clock), r == NULL, r);
        return r;
    }
    if (f->owner != FRAME_OWNED_BY_GENERATOR) /* the call that creates the generator */
        return eval_default(ts, f, throwflag);
    /* a generator or coroutine starts (its first instruction ran: RETURN_GENERATOR) or resumes */
    uint64_t key = (uint64_t)(uintptr_t)f;
    PyGenObject *g = (PyGenObject *)Py_NewRef(_PyFrame_GetGenerator(f)); /* Owned */
    int fresh = rt_py_iframe_gen_fresh(f);
    rt_py_ev_resume(t, fid, key, now);
    /* a generator closed or thrown into before it started is not a call to keep */
    if (fresh && !throwflag && RT_PY_CAPTURE_WANTED(fid)) {
        G.starting_gen = (PyObject *)g;
        rt_py_capture_start(t, fid, now, args_of_iframe, f);
        G.starting_gen = NULL;
    }
    PyObject *r = eval_default(ts, f, throwflag);
    if (G.active && G.gen == gen) {
        now = rt_clock_now(&G.clock);
        if (r != NULL && rt_py_gen_suspended(g))
            rt_py_ev_suspend(t, fid, key, now, r);
        else
            rt_py_ev_exit(t, fid, now, r == NULL, r);
    }
    Py_DECREF(g);
    return r;
}

#endif /* RT_MECH_PEP523 */
