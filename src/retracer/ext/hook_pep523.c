/*
 * hook_pep523.c -- the hook on 3.11: a PEP 523 frame-evaluation function
 * (_PyInterpreterState_SetEvalFrameFunc, installed by session.c). It sees
 * every evaluation of a Python frame -- first entries and generator or
 * coroutine resumes alike -- with no per-bytecode cost, and turns off 3.11's
 * inlining of Python-to-Python calls while installed, so every call passes
 * through it. It does not see C functions.
 */
#define RT_PY_FRAME_INTERNALS 1
#include "binding.h"

#ifdef RT_MECH_PEP523

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
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    uint32_t fid = rt_py_code_fid(f->f_code);
    if (RT_UNLIKELY(fid == RT_IGNORE))
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    uint64_t gen = G.gen;
    int64_t now = rt_clock_now(&G.clock);
    rt_thread *t = rt_py_cur_thread(now);
    if (RT_UNLIKELY(!t))
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    if (RT_LIKELY(!(G.fflags[fid] & RT_F_GEN))) {
        rt_py_ev_enter(t, fid, now, args_of_iframe, f);
        PyObject *r = _PyEval_EvalFrameDefault(ts, f, throwflag);
        if (RT_LIKELY(G.active && G.gen == gen))
            rt_py_ev_exit(t, fid, rt_clock_now(&G.clock), r == NULL, r);
        return r;
    }
    if (f->owner != FRAME_OWNED_BY_GENERATOR) /* the call that creates the generator */
        return _PyEval_EvalFrameDefault(ts, f, throwflag);
    /* a generator or coroutine starts (its first instruction ran: RETURN_GENERATOR) or resumes */
    uint64_t key = (uint64_t)(uintptr_t)f;
    PyGenObject *g = (PyGenObject *)Py_NewRef(_PyFrame_GetGenerator(f)); /* Owned */
    int fresh = _Py_OPCODE(*f->prev_instr) == RETURN_GENERATOR;
    rt_py_ev_resume(t, fid, key, now);
    /* a generator closed or thrown into before it started is not a call to keep */
    if (fresh && !throwflag && RT_PY_CAPTURE_WANTED(fid))
        rt_py_capture_start(t, fid, now, args_of_iframe, f);
    PyObject *r = _PyEval_EvalFrameDefault(ts, f, throwflag);
    if (G.active && G.gen == gen) {
        now = rt_clock_now(&G.clock);
        if (r != NULL && g->gi_frame_state == FRAME_SUSPENDED)
            rt_py_ev_suspend(t, fid, key, now, r);
        else
            rt_py_ev_exit(t, fid, now, r == NULL, r);
    }
    Py_DECREF(g);
    return r;
}

#endif /* RT_MECH_PEP523 */
