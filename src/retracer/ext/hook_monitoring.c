/*
 * hook_monitoring.c -- the hook on 3.12+: sys.monitoring callbacks written
 * in C (METH_FASTCALL, so CPython vectorcalls them: no tuple, no frame
 * object). record/tracer.py registers them for PY_START, PY_RESUME,
 * PY_THROW, PY_RETURN, PY_YIELD, PY_UNWIND and, with C calls on, CALL,
 * C_RETURN and C_RAISE. Arguments: PY_START/PY_RESUME (code, offset);
 * PY_RETURN/PY_YIELD (code, offset, value); PY_UNWIND/PY_THROW (code,
 * offset, exception); CALL/C_RETURN/C_RAISE (code, offset, callable, arg0).
 */
#include "binding.h"

#ifdef RT_MECH_MONITORING

/* Argument values of the current frame, new reference or NULL. */
static PyObject *args_of_current_frame(void *src, uint32_t fid)
{
    (void)src;
    PyObject *values = NULL; /* Owned */
    PyObject *names = PyList_GET_ITEM(G.argnames, fid); /* Borrowed */
    PyFrameObject *frame = PyEval_GetFrame(); /* Borrowed */
    if (!PyTuple_Check(names) || !frame)
        goto error;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (!(values = PyTuple_New(n)))
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyFrame_GetVar(frame, PyTuple_GET_ITEM(names, i)); /* Owned */
        if (!v)
            goto error;
        PyTuple_SET_ITEM(values, i, v);
    }
    return values;
error:
    Py_XDECREF(values);
    return NULL;
}

/* Common start of the PY_* callbacks: a function id, the time and the
 * thread, or an early return. Retracer's own code gets DISABLE where the
 * event allows it (`ignored`), so it is not reported again. */
#define MON_PRELUDE(ignored)                                            \
    if (RT_UNLIKELY(!G.active))                                         \
        Py_RETURN_NONE;                                                 \
    uint32_t fid = rt_py_code_fid((PyCodeObject *)args[0]);             \
    if (RT_UNLIKELY(fid == RT_IGNORE))                                  \
        return Py_NewRef(ignored);                                      \
    int64_t now = rt_clock_now(&G.clock);                               \
    rt_thread *t = rt_py_cur_thread(now);                               \
    if (RT_UNLIKELY(!t))                                                \
        Py_RETURN_NONE;

#define MON_ARG2 (nargs > 2 ? args[2] : NULL)
#define MON_DISABLE (G.disable_obj ? G.disable_obj : Py_None)

static PyObject *mon_py_start(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(MON_DISABLE)
    rt_py_ev_enter(t, fid, now, args_of_current_frame, NULL);
    Py_RETURN_NONE;
}

static PyObject *mon_py_resume(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(MON_DISABLE)
    rt_py_ev_resume(t, fid, rt_py_current_frame_key(), now);
    Py_RETURN_NONE;
}

/* PY_THROW and PY_UNWIND cannot be disabled per location: never DISABLE */
static PyObject *mon_py_throw(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(Py_None)
    rt_py_ev_resume(t, fid, rt_py_current_frame_key(), now);
    Py_RETURN_NONE;
}

static PyObject *mon_py_return(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(MON_DISABLE)
    rt_py_ev_exit(t, fid, now, 0, MON_ARG2);
    Py_RETURN_NONE;
}

static PyObject *mon_py_yield(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(MON_DISABLE)
    rt_py_ev_suspend(t, fid, rt_py_current_frame_key(), now, MON_ARG2);
    Py_RETURN_NONE;
}

static PyObject *mon_py_unwind(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    MON_PRELUDE(Py_None)
    rt_py_ev_exit(t, fid, now, 1, MON_ARG2);
    Py_RETURN_NONE;
}

/* The function id of the C function a CALL/C_RETURN/C_RAISE event is about,
 * or RT_IGNORE (not a C function, or called from retracer's own code). */
static inline uint32_t mon_c_fid(PyObject *const *args, Py_ssize_t nargs)
{
    if (RT_UNLIKELY(!G.active) || nargs < 3)
        return RT_IGNORE;
    PyMethodDef *ml = rt_py_c_method_def(args[2]);
    if (!ml || RT_UNLIKELY(rt_py_code_fid((PyCodeObject *)args[0]) == RT_IGNORE))
        return RT_IGNORE;
    return rt_py_cfunc_fid(args[2], ml);
}

static PyObject *mon_call(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    uint32_t fid = mon_c_fid(args, nargs);
    if (fid == RT_IGNORE)
        Py_RETURN_NONE;
    int64_t now = rt_clock_now(&G.clock);
    rt_thread *t = rt_py_cur_thread(now);
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
    rt_thread *t = rt_py_cur_thread(now);
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

/* set_disable(obj): the sys.monitoring.DISABLE sentinel the callbacks return. */
static PyObject *set_disable(PyObject *m, PyObject *obj)
{
    Py_XSETREF(G.disable_obj, Py_NewRef(obj));
    Py_RETURN_NONE;
}

#define FASTCALL(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL

PyMethodDef rt_py_monitoring_methods[] = {
    {"mon_py_start", FASTCALL(mon_py_start), "sys.monitoring PY_START callback"},
    {"mon_py_resume", FASTCALL(mon_py_resume), "sys.monitoring PY_RESUME callback"},
    {"mon_py_throw", FASTCALL(mon_py_throw), "sys.monitoring PY_THROW callback"},
    {"mon_py_return", FASTCALL(mon_py_return), "sys.monitoring PY_RETURN callback"},
    {"mon_py_yield", FASTCALL(mon_py_yield), "sys.monitoring PY_YIELD callback"},
    {"mon_py_unwind", FASTCALL(mon_py_unwind), "sys.monitoring PY_UNWIND callback"},
    {"mon_call", FASTCALL(mon_call), "sys.monitoring CALL callback (C functions)"},
    {"mon_c_return", FASTCALL(mon_c_return), "sys.monitoring C_RETURN callback"},
    {"mon_c_raise", FASTCALL(mon_c_raise), "sys.monitoring C_RAISE callback"},
    {"set_disable", set_disable, METH_O, "set_disable(sys.monitoring.DISABLE)"},
    {NULL, NULL, 0, NULL},
};

#endif /* RT_MECH_MONITORING */
