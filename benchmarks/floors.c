/*
 * floors.c -- no-op hooks, the limits a tracer cannot go below (built and
 * loaded by hook_micro.py as the module `rt_floors`; not part of retracer):
 *
 *   profile_on() / profile_off()   a C profile function (PyEval_SetProfile) that returns at once
 *   eval_on() / eval_off()         a PEP 523 frame-evaluation function (3.11+) that calls the
 *                                  default evaluator and nothing else
 *   noop(*args)                    a METH_FASTCALL callable returning None, to register as a
 *                                  sys.monitoring callback (3.12+)
 *   cg_on() / cg_off()             start / stop callgrind's instrumentation (no-ops outside
 *                                  valgrind, or without valgrind's headers)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif

static PyObject *cg_on(PyObject *m, PyObject *unused)
{
#ifdef HAVE_CALLGRIND
    CALLGRIND_START_INSTRUMENTATION;
#endif
    Py_RETURN_NONE;
}

static PyObject *cg_off(PyObject *m, PyObject *unused)
{
#ifdef HAVE_CALLGRIND
    CALLGRIND_STOP_INSTRUMENTATION;
#endif
    Py_RETURN_NONE;
}

static int noop_profile(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) { return 0; }

static PyObject *profile_on(PyObject *m, PyObject *unused)
{
    PyEval_SetProfile(noop_profile, NULL);
    Py_RETURN_NONE;
}

static PyObject *profile_off(PyObject *m, PyObject *unused)
{
    PyEval_SetProfile(NULL, NULL);
    Py_RETURN_NONE;
}

#if PY_VERSION_HEX >= 0x030B0000
static _PyFrameEvalFunction prev_eval;

static PyObject *noop_eval(PyThreadState *ts, struct _PyInterpreterFrame *f, int throwflag)
{
    return _PyEval_EvalFrameDefault(ts, f, throwflag);
}

static PyObject *eval_on(PyObject *m, PyObject *unused)
{
    PyInterpreterState *interp = PyThreadState_GET()->interp;
    prev_eval = _PyInterpreterState_GetEvalFrameFunc(interp);
    _PyInterpreterState_SetEvalFrameFunc(interp, noop_eval);
    Py_RETURN_NONE;
}

static PyObject *eval_off(PyObject *m, PyObject *unused)
{
    _PyInterpreterState_SetEvalFrameFunc(PyThreadState_GET()->interp, prev_eval);
    Py_RETURN_NONE;
}
#endif

static PyObject *noop(PyObject *m, PyObject *const *args, Py_ssize_t nargs) { Py_RETURN_NONE; }

static PyMethodDef methods[] = {
    {"profile_on", profile_on, METH_NOARGS, NULL},
    {"profile_off", profile_off, METH_NOARGS, NULL},
#if PY_VERSION_HEX >= 0x030B0000
    {"eval_on", eval_on, METH_NOARGS, NULL},
    {"eval_off", eval_off, METH_NOARGS, NULL},
#endif
    {"cg_on", cg_on, METH_NOARGS, NULL},
    {"cg_off", cg_off, METH_NOARGS, NULL},
    {"noop", (PyCFunction)(void (*)(void))noop, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "rt_floors", NULL, -1, methods};

PyMODINIT_FUNC PyInit_rt_floors(void) { return PyModule_Create(&mod); }
