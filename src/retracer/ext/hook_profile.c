/*
 * hook_profile.c -- the hook on 3.9 and 3.10: the C profile function
 * (PyEval_SetProfile), per thread. session.c installs it in the thread that
 * starts tracing; new threads get it through threading.setprofile with
 * thread_bootstrap (record/tracer.py). Threads already running are not
 * traced. Every call materialises a frame object here.
 */
#include "binding.h"

#ifdef RT_MECH_PROFILE

/* Argument values of a frame, new reference or NULL. */
static PyObject *args_of_pyframe(void *src, uint32_t fid)
{
    PyFrameObject *frame = src;
    PyObject *values = NULL; /* Owned */
    PyObject *names = PyList_GET_ITEM(G.argnames, fid); /* Borrowed */
    if (!PyTuple_Check(names) || PyFrame_FastToLocalsWithError(frame) < 0)
        goto error;
    PyObject *locals = frame->f_locals; /* Borrowed */
    if (!locals || !PyDict_Check(locals))
        goto error;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (!(values = PyTuple_New(n)))
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = PyDict_GetItemWithError(locals, PyTuple_GET_ITEM(names, i)); /* Borrowed */
        if (!v)
            goto error;
        PyTuple_SET_ITEM(values, i, Py_NewRef(v));
    }
    return values;
error:
    Py_XDECREF(values);
    return NULL;
}

int rt_py_profile(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
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
        fid = rt_py_code_fid(co);
        if (fid == RT_IGNORE)
            return 0;
        now = rt_clock_now(&G.clock);
        t = rt_py_cur_thread(now);
        if (!t)
            return 0;
        int is_gen = (G.fflags[fid] & RT_F_GEN) != 0;
        uint64_t key = (uint64_t)(uintptr_t)frame;
        if (what == PyTrace_CALL) {
            if (is_gen && frame->f_lasti >= 0)
                rt_py_ev_resume(t, fid, key, now);
            else
                rt_py_ev_enter(t, fid, now, args_of_pyframe, frame);
            return 0;
        }
        if (is_gen && rt_py_frame_suspended(frame))
            rt_py_ev_suspend(t, fid, key, now, arg);
        else /* a profile function cannot see the exception being raised */
            rt_py_ev_exit(t, fid, now, arg == NULL, arg);
        return 0;
    }
    case PyTrace_C_CALL:
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION: {
        if (!G.c_calls)
            return 0;
        PyMethodDef *ml = rt_py_c_method_def(arg);
        if (!ml)
            return 0;
        /* C calls made by retracer's own code (the runner's exec) are not the program's */
        if (RT_UNLIKELY(rt_py_code_fid(frame->f_code) == RT_IGNORE))
            return 0;
        fid = rt_py_cfunc_fid(arg, ml);
        if (fid == RT_IGNORE)
            return 0;
        now = rt_clock_now(&G.clock);
        t = rt_py_cur_thread(now);
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
PyObject *rt_py_thread_bootstrap(PyObject *m, PyObject *args)
{
    PyObject *frame, *arg; /* Borrowed */
    const char *event;
    if (!PyArg_ParseTuple(args, "OsO", &frame, &event, &arg))
        return NULL;
    if (G.active)
        PyEval_SetProfile(rt_py_profile, NULL);
    else
        PyEval_SetProfile(NULL, NULL);
    Py_RETURN_NONE;
}

#endif /* RT_MECH_PROFILE */
