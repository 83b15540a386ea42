/*
 * hook_monitoring.c -- C functions on 3.12+: sys.monitoring callbacks written
 * in C (METH_FASTCALL, so CPython vectorcalls them: no tuple, no frame
 * object) for CALL, C_RETURN and C_RAISE, registered by record/tracer.py
 * when C calls are recorded. Python frames are seen by the PEP 523 hook
 * (hook_pep523.c). Arguments: (code, offset, callable, arg0).
 *
 * CALL fires at every call site, Python calls included. A site whose callee
 * is a Python function (which the PEP 523 hook sees) gets DISABLE: its CALL,
 * C_RETURN and C_RAISE events stop, so Python calls pay the event once per
 * call site rather than once per call; so does a site in retracer's own
 * code. A site that calls a Python function first and a C function later (a
 * callable passed in) then misses that C function, whose time stays in its
 * caller's own time. Sites calling classes keep their events (see mon_call);
 * on 3.13 the CALL event is registered for them even when C calls are not
 * recorded (compat.h: RT_PY_CLASS_CALLS_NEED_CALL_EVENTS).
 */
#include "binding.h"

#ifdef RT_MECH_MONITORING

#define MON_DISABLE (G.disable_obj ? Py_NewRef(G.disable_obj) : Py_NewRef(Py_None))

static PyObject *mon_call(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
    if (RT_UNLIKELY(!G.active) || nargs < 3)
        Py_RETURN_NONE;
    PyMethodDef *ml = rt_py_c_method_def(args[2]);
    if (!ml) {
        if (RT_PY_CLASS_CALLS_NEED_CALL_EVENTS && PyType_Check(args[2]))
            Py_RETURN_NONE; /* keep the site instrumented (compat.h) */
        /* a Python function: the PEP 523 hook sees it. Sites of classes keep
         * their events otherwise too: a de-instrumented site may be specialised */
        if (PyFunction_Check(args[2]) || !G.c_calls)
            return MON_DISABLE;
        Py_RETURN_NONE;
    }
    if (!G.c_calls)
        return MON_DISABLE; /* registered only for the class sites (3.13) */
    if (RT_UNLIKELY(rt_py_code_fid((PyCodeObject *)args[0]) == RT_IGNORE))
        return MON_DISABLE; /* retracer's own code */
    uint32_t fid = rt_py_cfunc_fid(args[2], ml);
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
    if (RT_UNLIKELY(!G.active) || nargs < 3)
        Py_RETURN_NONE;
    PyMethodDef *ml = rt_py_c_method_def(args[2]);
    if (!ml || RT_UNLIKELY(rt_py_code_fid((PyCodeObject *)args[0]) == RT_IGNORE))
        Py_RETURN_NONE;
    uint32_t fid = rt_py_cfunc_fid(args[2], ml);
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
    {"mon_call", FASTCALL(mon_call), "sys.monitoring CALL callback (C functions)"},
    {"mon_c_return", FASTCALL(mon_c_return), "sys.monitoring C_RETURN callback"},
    {"mon_c_raise", FASTCALL(mon_c_raise), "sys.monitoring C_RAISE callback"},
    {"set_disable", set_disable, METH_O, "set_disable(sys.monitoring.DISABLE)"},
    {NULL, NULL, 0, NULL},
};

#endif /* RT_MECH_MONITORING */
