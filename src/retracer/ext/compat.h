/*
 * compat.h -- every difference between CPython versions the binding depends
 * on, in one place. The other files of the binding include this header
 * instead of Python.h and never test PY_VERSION_HEX themselves.
 *
 * What it selects:
 *
 *   RT_MECH_PEP523      3.11+   a PEP 523 frame-evaluation hook for Python frames (hook_pep523.c)
 *   RT_MECH_MONITORING  3.12+   sys.monitoring CALL/C_RETURN/C_RAISE with C callbacks, for C
 *                               functions only (hook_monitoring.c)
 *   RT_MECH_PROFILE     <=3.10  the C profile hook, PyEval_SetProfile (hook_profile.c)
 *   RT_INLINE_VALUES    3.11, 3.12: plain instances keep their attributes inline
 *                       until their __dict__ is asked for (objstate.c)
 *
 * and small accessors whose spelling changed between versions (rt_py_*).
 * Internal CPython headers (pycore_*.h) are included here only, for the
 * versions that need them and only in the file that asks for them by
 * defining, before including this header:
 *
 *   RT_PY_FRAME_INTERNALS  _PyInterpreterFrame (hook_pep523.c, 3.11+)
 *   RT_PY_DICT_INTERNALS   the inline attribute values (objstate.c, 3.11/3.12)
 */
#ifndef RT_PY_COMPAT_H
#define RT_PY_COMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>

#if PY_VERSION_HEX < 0x03090000
#error "retracer needs CPython 3.9 or later"
#endif

#if PY_VERSION_HEX >= 0x030C0000
#define RT_MECH_PEP523 1
#define RT_MECH_MONITORING 1
#define RT_MECHANISM "pep523+sys.monitoring"
#elif PY_VERSION_HEX >= 0x030B0000
#define RT_MECH_PEP523 1
#define RT_MECHANISM "pep523"
#else
#define RT_MECH_PROFILE 1
#define RT_MECHANISM "setprofile"
#endif

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
#define RT_INLINE_VALUES 1
#endif

/* 3.13: once a call site of a class is no longer instrumented by
 * sys.monitoring, the interpreter may specialise it (CALL_ALLOC_AND_ENTER_INIT)
 * and run __init__ without going through the PEP 523 hook. retracer keeps the
 * CALL event on such sites (hook_monitoring.c), with C calls recorded or not. */
#if PY_VERSION_HEX >= 0x030D0000
#define RT_PY_CLASS_CALLS_NEED_CALL_EVENTS 1
#else
#define RT_PY_CLASS_CALLS_NEED_CALL_EVENTS 0
#endif

#if defined(RT_MECH_PEP523) && defined(RT_PY_FRAME_INTERNALS)
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#include "opcode.h"
#undef Py_BUILD_CORE

/* The code object of an interpreter frame (borrowed). */
static inline PyCodeObject *rt_py_iframe_code(struct _PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030D0000
    return (PyCodeObject *)f->f_executable;
#else
    return f->f_code;
#endif
}

/* Does a generator's frame start now (its last instruction was
 * RETURN_GENERATOR), rather than resume after a yield? */
static inline int rt_py_iframe_gen_fresh(struct _PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030D0000
    return _Py_OPCODE(f->instr_ptr[-1]) == RETURN_GENERATOR; /* instr_ptr: the next one */
#else
    return _Py_OPCODE(*f->prev_instr) == RETURN_GENERATOR;
#endif
}

/* Is a generator suspended (it yielded, rather than returned or raised)? */
static inline int rt_py_gen_suspended(PyGenObject *g)
{
#if PY_VERSION_HEX >= 0x030D0000
    return FRAME_STATE_SUSPENDED(g->gi_frame_state);
#else
    return g->gi_frame_state == FRAME_SUSPENDED;
#endif
}

/* C recursion units the default evaluator charges each frame it runs (3.12+:
 * PY_EVAL_C_STACK_UNITS). Without a frame-evaluation hook, Python-to-Python
 * calls are inlined and charge none; the hook gives them back while a frame
 * runs, so a traced program gets as deep as an untraced one (the C stack
 * itself is guarded separately, see hook_pep523.c). */
#if PY_VERSION_HEX >= 0x030C0000
#define RT_PY_EVAL_C_UNITS 2
#define rt_py_c_recursion(ts) ((ts)->c_recursion_remaining)
#else
#define RT_PY_EVAL_C_UNITS 0
#endif
#endif

#if defined(RT_INLINE_VALUES) && defined(RT_PY_DICT_INTERNALS)
#undef _PyGC_FINALIZED
#define Py_BUILD_CORE 1
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* 3.12's header reads ma_version_tag */
#endif
#include "internal/pycore_dict.h"
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#undef Py_BUILD_CORE
#endif

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o)
{
    Py_INCREF(o);
    return o;
}
#endif

/* The exception being raised, taken out of the thread state (new reference,
 * NULL when none) and put back: the binding runs capture callbacks between
 * the two, so an exception the interpreter is raising (a generator being
 * closed or thrown into) survives them unchanged. */
typedef struct rt_py_err_state {
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc;
#else
    PyObject *type, *value, *tb;
#endif
} rt_py_err_state;

static inline void rt_py_err_save(rt_py_err_state *st)
{
#if PY_VERSION_HEX >= 0x030C0000
    st->exc = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&st->type, &st->value, &st->tb);
#endif
}

/* The saved exception as an instance (borrowed; NULL when none), with its
 * traceback attached. */
static inline PyObject *rt_py_err_value(rt_py_err_state *st)
{
#if PY_VERSION_HEX >= 0x030C0000
    return st->exc;
#else
    if (!st->type)
        return NULL;
    PyErr_NormalizeException(&st->type, &st->value, &st->tb);
    if (st->value && st->tb)
        PyException_SetTraceback(st->value, st->tb);
    return st->value;
#endif
}

/* Clears whatever was raised since rt_py_err_save, then restores. */
static inline void rt_py_err_restore(rt_py_err_state *st)
{
    PyErr_Clear();
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(st->exc);
#else
    PyErr_Restore(st->type, st->value, st->tb);
#endif
}

/* The argument names table of a code object (new reference). */
static inline PyObject *rt_py_code_varnames(PyCodeObject *co)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyCode_GetVarnames(co);
#else
    return Py_NewRef(co->co_varnames);
#endif
}

/* The qualified name of a code object (borrowed), or NULL before 3.11
 * (code objects had no co_qualname then). */
static inline PyObject *rt_py_code_qualname(PyCodeObject *co)
{
#if PY_VERSION_HEX >= 0x030B0000
    return co->co_qualname;
#else
    (void)co;
    return NULL;
#endif
}

#ifdef RT_MECH_PROFILE
/* Is this generator frame suspended (the event is a yield, not a return)? */
static inline int rt_py_frame_suspended(PyFrameObject *frame)
{
#if PY_VERSION_HEX >= 0x030A0000
    return frame->f_state == FRAME_SUSPENDED;
#else
    return frame->f_stacktop != NULL;
#endif
}
#endif

#if defined(RT_INLINE_VALUES) && defined(RT_PY_DICT_INTERNALS)
/* Where a managed-dict instance keeps its attributes: *values when they are
 * still inline, else *dict (may be NULL: no attribute yet). */
static inline void rt_py_managed_dict(PyObject *obj, PyDictValues **values, PyObject **dict)
{
    *values = NULL;
    *dict = NULL;
#if PY_VERSION_HEX >= 0x030C0000
    char *dorv = ((char **)obj)[-3];
    if ((uintptr_t)dorv & 1)
        *values = (PyDictValues *)(dorv + 1);
    else
        *dict = (PyObject *)dorv;
#else
    *values = ((PyDictValues **)obj)[-4];
    if (!*values)
        *dict = ((PyObject **)obj)[-3];
#endif
}
#endif

#endif
