/*
 * results.c -- the named structures that cross the binding (PyStructSequence
 * types: tuples whose fields also have names). Python reads them by name:
 *
 *   Results      what stop() returns
 *   FunctionInfo one per function id
 *   FuncStat     the profile of one function, EdgeStat of one caller -> callee edge
 *   ThreadInfo   one per traced thread
 *   CallStart    the argument of capture enter(), CallEnd of exit(), CallYield of yield_()
 *   Event        one decoded call-stream event (decode(), for tests and tools)
 */
#include "binding.h"

#define F(name, doc) {name, doc}

static PyStructSequence_Field results_fields[] = {
    F("functions", "list of FunctionInfo, indexed by fid"),
    F("func_stats", "list of FuncStat, one per function called at least once"),
    F("edge_stats", "list of EdgeStat, one per caller -> callee edge called at least once"),
    F("threads", "list of ThreadInfo, in the order the threads were first seen"),
    F("error", "the engine's error, '' when the recording is complete"),
    F("duration_ns", "from start() to stop(), in ns"),
    F("clock", "'tsc' or 'monotonic'"),
    F("capture_throttled", "calls the capture time budget skipped (csrc/rt_capture.h, time)"),
    F("capture_first_throttled_ns", "when the first of them was, ns since start (0 when none)"),
    F("stream_full_ns", "when the call stream reached its size cap, ns since start (-1: it did not)"),
    {NULL, NULL},
};

static PyStructSequence_Field function_fields[] = {
    F("fid", "function id (index in the call stream and the profile)"),
    F("kind", "'py' or 'c'"),
    F("code", "the code object ('py'), or None ('c')"),
    F("name", "co_name ('py'), or the name as cProfile writes it ('c')"),
    F("flags", "RT_F_* bits, the trace's functions.flags (tracefile/schema.py FLAG_*)"),
    F("argnames", "tuple of the argument names capture records, or None (not capturable)"),
    {NULL, NULL},
};

static PyStructSequence_Field funcstat_fields[] = {
    F("fid", "function id"),
    F("calls", "completed calls (a generator counts once)"),
    F("prim_calls", "calls that were not recursive"),
    F("own_ns", "time in the function itself, callees excluded"),
    F("cum_ns", "time including callees, counted for outermost calls only"),
    {NULL, NULL},
};

static PyStructSequence_Field edgestat_fields[] = {
    F("caller_fid", "caller function id, -1 for calls without a traced caller"),
    F("callee_fid", "callee function id"),
    F("calls", "completed calls along this edge"),
    F("prim_calls", "calls that were not recursive along this edge"),
    F("own_ns", "callee's own time in these calls"),
    F("cum_ns", "callee's cumulative time in these calls"),
    {NULL, NULL},
};

static PyStructSequence_Field thread_fields[] = {
    F("thread_idx", "index of the thread in the trace (order of first event)"),
    F("ident", "threading.get_ident() of the thread"),
    F("native_id", "the OS thread id"),
    F("n_events", "call-stream events written"),
    F("stream_calls", "calls written to the call stream"),
    F("chunks", "call-stream chunks written to the spool"),
    F("paused_ns", "time taken out of the thread's timeline while retracer worked on it (capture)"),
    {NULL, NULL},
};

static PyStructSequence_Field callstart_fields[] = {
    F("fid", "function id"),
    F("thread_idx", "index of the calling thread"),
    F("names", "tuple of the argument names"),
    F("values", "tuple of the argument values at entry"),
    F("t_ns", "time of the call on its thread's timeline (ns; capture time is paused, see rt_thread_pause)"),
    F("why", "why the policy kept it: 'first' (one of the first calls) or 'shape' (a new input shape)"),
    F("stream_call", "the call's number in its thread's call stream, -1 when not in the stream"),
    F("generator", "the generator object (3.12+, generator functions), else None"),
    {NULL, NULL},
};

static PyStructSequence_Field callend_fields[] = {
    F("id", "capture id returned by enter()"),
    F("raised", "True when the call raised"),
    F("value", "the return value, or the exception (None when the hook cannot see it)"),
    F("t_ns", "time of the end on the thread's timeline (ns), as CallStart.t_ns"),
    {NULL, NULL},
};

static PyStructSequence_Field callyield_fields[] = {
    F("id", "capture id returned by enter()"),
    F("value", "the value yielded"),
    {NULL, NULL},
};

static PyStructSequence_Field event_fields[] = {
    F("tag", "RT_EV_* tag (docs/call-stream.md)"),
    F("arg", "the function id (ENTER, ENTER_CONT) or calls back (RESUME), else 0"),
    F("t_ns", "absolute time of the event (ns since the trace origin)"),
    {NULL, NULL},
};

#undef F

PyTypeObject rt_py_ResultsType, rt_py_FunctionInfoType, rt_py_FuncStatType, rt_py_EdgeStatType,
    rt_py_ThreadInfoType, rt_py_CallStartType, rt_py_CallEndType, rt_py_CallYieldType, rt_py_EventType;

static struct {
    PyTypeObject *type;
    PyStructSequence_Desc desc;
} types[] = {
    {&rt_py_ResultsType, {"retracer._engine.Results", "What stop() returns.", results_fields, 10}},
    {&rt_py_FunctionInfoType, {"retracer._engine.FunctionInfo", "A traced function.", function_fields, 6}},
    {&rt_py_FuncStatType, {"retracer._engine.FuncStat", "The profile of one function.", funcstat_fields, 5}},
    {&rt_py_EdgeStatType, {"retracer._engine.EdgeStat", "The profile of one caller -> callee edge.", edgestat_fields, 6}},
    {&rt_py_ThreadInfoType, {"retracer._engine.ThreadInfo", "A traced thread.", thread_fields, 7}},
    {&rt_py_CallStartType, {"retracer._engine.CallStart", "A captured call begins (capture enter()).", callstart_fields, 8}},
    {&rt_py_CallEndType, {"retracer._engine.CallEnd", "A captured call ends (capture exit()).", callend_fields, 4}},
    {&rt_py_CallYieldType, {"retracer._engine.CallYield", "A captured generator yields (capture yield_()).", callyield_fields, 2}},
    {&rt_py_EventType, {"retracer._engine.Event", "A decoded call-stream event.", event_fields, 3}},
};

int rt_py_results_init(PyObject *m)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        PyTypeObject *tp = types[i].type;
        if (!tp->tp_name && PyStructSequence_InitType2(tp, &types[i].desc) < 0)
            goto error;
        const char *name = strrchr(types[i].desc.name, '.') + 1;
        Py_INCREF(tp);
        if (PyModule_AddObject(m, name, (PyObject *)tp) < 0) {
            Py_DECREF(tp);
            goto error;
        }
    }
    return 0;
error:
    return -1;
}

PyObject *rt_py_named(PyTypeObject *tp, PyObject **items, Py_ssize_t n)
{
    PyObject *o = NULL; /* Owned */
    for (Py_ssize_t i = 0; i < n; i++)
        if (!items[i])
            goto error;
    o = PyStructSequence_New(tp);
    if (!o)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++)
        PyStructSequence_SET_ITEM(o, i, items[i]);
    return o;
error:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(items[i]);
    return NULL;
}
