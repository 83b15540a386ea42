/*
 * module.c -- retracer._engine: module init and the method table. The
 * functions themselves live in the file of their job (binding.h lists them).
 */
#include "binding.h"
#include "rt_stream.h"

/* mute(flag) -> previous flag: drop (True) or record again (False) the events
 * of the calling thread. The time between mute(True) and mute(False) is
 * retracer's own: it is paused (rt_thread_pause). */
static PyObject *set_muted(PyObject *m, PyObject *arg)
{
    int flag = PyObject_IsTrue(arg);
    if (flag < 0)
        goto error;
    if (G.engine && rt_py_tls.gen != G.gen && !rt_py_thread_new(rt_clock_now(&G.clock))) {
        /* the thread state must exist so the flag belongs to this session */
        PyErr_NoMemory();
        goto error;
    }
    int was = rt_py_tls.muted;
    rt_py_tls.muted = flag;
    if (G.engine && G.active && rt_py_tls.gen == G.gen && rt_py_tls.thread && flag != was) {
        /* retracer's own work while muted is out of the thread's time, as capture is */
        int64_t now = rt_clock_now(&G.clock);
        if (flag)
            rt_py_tls.muted_at = now;
        else
            rt_thread_pause(rt_py_tls.thread, now - rt_py_tls.muted_at);
    }
    return PyBool_FromLong(was);
error:
    return NULL;
}

static PyObject *is_active(PyObject *m, PyObject *unused) { return PyBool_FromLong(G.active); }

static PyObject *get_mechanism(PyObject *m, PyObject *unused) { return PyUnicode_FromString(RT_MECHANISM); }

/* decode(chunk: bytes, t0: int = 0) -> list of Event(tag, arg, t_ns); for tests and tools. */
static PyObject *decode_chunk(PyObject *m, PyObject *args)
{
    Py_buffer buf = {0}; /* released at the end (a no-op while not acquired) */
    long long t0 = 0;
    PyObject *out = NULL; /* Owned */
    rt_stream_reader r;
    rt_event ev;
    int rc;
    if (!PyArg_ParseTuple(args, "y*|L:decode", &buf, &t0))
        goto error;
    if (!(out = PyList_New(0)))
        goto error;
    rt_stream_reader_init(&r, buf.buf, (size_t)buf.len, t0);
    while ((rc = rt_stream_next(&r, &ev)) == 1) {
        unsigned long long x = ev.tag == RT_EV_RESUME ? ev.back : ev.fid;
        PyObject *items[] = {PyLong_FromLong(ev.tag), PyLong_FromUnsignedLongLong(x),
                             PyLong_FromLongLong((long long)ev.t)};
        PyObject *row = rt_py_named(&rt_py_EventType, items, 3); /* Owned */
        int failed = !row || PyList_Append(out, row) < 0;
        Py_XDECREF(row);
        if (failed)
            goto error;
    }
    if (rc < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed call-stream chunk");
        goto error;
    }
    PyBuffer_Release(&buf);
    return out;
error:
    PyBuffer_Release(&buf);
    Py_XDECREF(out);
    return NULL;
}

/* remap(chunk: bytes, fidmap: bytes of native uint32, shift_ns: int) -> bytes:
 * the chunk with function ids mapped and times shifted (merging processes' traces). */
static PyObject *remap_chunk(PyObject *m, PyObject *args)
{
    Py_buffer buf = {0}, map = {0}; /* released at the end (no-ops while not acquired) */
    unsigned long long shift = 0;
    PyObject *out = NULL; /* Owned */
    size_t need = 0, got = 0;
    if (!PyArg_ParseTuple(args, "y*y*K:remap", &buf, &map, &shift))
        goto error;
    if (map.len % 4) {
        PyErr_SetString(PyExc_ValueError, "fidmap must hold uint32 values");
        goto error;
    }
    uint32_t nmap = (uint32_t)(map.len / 4);
    if (rt_stream_remap(buf.buf, (size_t)buf.len, map.buf, nmap, shift, NULL, 0, &need) != RT_OK) {
        PyErr_SetString(PyExc_ValueError, "malformed call-stream chunk");
        goto error;
    }
    if (!(out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)need)))
        goto error;
    if (rt_stream_remap(buf.buf, (size_t)buf.len, map.buf, nmap, shift, (uint8_t *)PyBytes_AS_STRING(out), need,
                        &got) != RT_OK || got != need) {
        PyErr_SetString(PyExc_ValueError, "malformed call-stream chunk");
        goto error;
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&map);
    return out;
error:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&map);
    Py_XDECREF(out);
    return NULL;
}

static PyMethodDef engine_methods[] = {
    {"start", (PyCFunction)(void (*)(void))rt_py_start, METH_VARARGS | METH_KEYWORDS, rt_py_start_doc},
    {"stop", rt_py_stop, METH_NOARGS, rt_py_stop_doc},
    {"pause", rt_py_pause, METH_NOARGS, "Stop recording events; stop() still collects."},
    {"mute", set_muted, METH_O, "mute(flag) -> previous flag: drop (True) or record (False) the calling thread's events."},
    {"active", is_active, METH_NOARGS, "True while a session records events."},
    {"mechanism", get_mechanism, METH_NOARGS, "The hook this build uses."},
    {"instance_state", rt_py_instance_state, METH_O,
     "A copy of an object's instance attributes, read without materialising its __dict__ (3.11/3.12); None if not applicable."},
    {"has_inline_values", rt_py_has_inline_values, METH_O, "For tests: are obj's attributes still inline?"},
    {"encode_rows", rt_py_encode_rows, METH_O,
     "encode_rows(rows) -> bytes: what a trace's content digest hashes for these rows (tracefile/digest.py)."},
    {"decode", decode_chunk, METH_VARARGS, "decode(chunk, t0=0) -> list of Event: one call-stream chunk (for tests and tools)."},
    {"remap", remap_chunk, METH_VARARGS,
     "remap(chunk, fidmap, shift_ns) -> bytes: the chunk with function ids mapped (fidmap: native uint32 array) "
     "and times moved shift_ns later."},
    {"discard", rt_py_discard, METH_NOARGS, rt_py_discard_doc},
    {"spool_pause", rt_py_spool_pause, METH_NOARGS,
     "Before a fork: the spool writer writes what it has queued and stops its thread; True if it had one."},
    {"spool_resume", rt_py_spool_resume, METH_NOARGS, "After a fork, in the parent: the spool writer's thread again."},
    {"_fail_start_at", rt_py_fail_start_at, METH_O,
     "For tests: _fail_start_at(n) makes the n-th fallible step of the next start() fail with MemoryError (0: none)."},
    {"_live_blocks", rt_py_live_blocks_py, METH_NOARGS,
     "For tests: how many blocks of the engine's allocator (the C library's) are live."},
    {"sigterm_guard", rt_py_sigterm_guard, METH_O,
     "sigterm_guard(on) -> bool: on, a SIGTERM the main thread missed (it was about to block) is sent to it again "
     "until sigterm_ack(); off, the plain handler again."},
    {"capture_refund", rt_py_capture_refund, METH_O,
     "capture_refund(ns): ns of the capture time so far was a one-time cost the time budget does not count."},
    {"sigterm_ack", rt_py_sigterm_ack, METH_NOARGS, "The SIGTERM handler runs: the guard stops re-sending."},
#ifdef RT_MECH_PROFILE
    {"thread_bootstrap", rt_py_thread_bootstrap, METH_VARARGS, "Given to threading.setprofile: installs the C hook in a new thread."},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef engine_module = {
    PyModuleDef_HEAD_INIT, "retracer._engine",
    "The CPython binding of retracer's C tracing engine.", -1, engine_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__engine(void)
{
    PyObject *m = PyModule_Create(&engine_module); /* Owned */
    if (!m)
        goto error;
#ifdef RT_MECH_MONITORING
    if (PyModule_AddFunctions(m, rt_py_monitoring_methods) < 0)
        goto error;
#endif
    if (PyModule_AddStringConstant(m, "MECHANISM", RT_MECHANISM) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_IN_SCOPE", RT_F_SCOPE) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_IMPORT_MACHINERY", RT_F_IMPORT) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_MODULE_BODY", RT_F_MODULE) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_ONLY_FUNCTIONS", RT_F_ONLY) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_GENERATOR", RT_F_GEN) < 0 ||
        PyModule_AddIntConstant(m, "FLAG_C_FUNCTION", RT_F_C) < 0 ||
        PyModule_AddIntConstant(m, "CLASS_CALLS_NEED_CALL_EVENTS", RT_PY_CLASS_CALLS_NEED_CALL_EVENTS) < 0 ||
        rt_py_results_init(m) < 0)
        goto error;
    G.self_module = m;
    return m;
error:
    Py_XDECREF(m);
    return NULL;
}
