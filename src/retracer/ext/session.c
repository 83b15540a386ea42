/*
 * session.c -- a tracing session: start() creates the engine and the
 * capture policy and installs the hook (3.9-3.11; on 3.12+ the caller
 * registers the sys.monitoring callbacks), pause() stops recording, stop()
 * closes the open calls, flushes the call stream into the spool file and
 * returns the profile as named results. The spool is read back by
 * tracefile/spool.py.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"
#include "rt_sigguard.h"

/* ------------------------------------------------------------ spool sink */

/* The engine's sink: the chunk goes to the spool writer (csrc/rt_spool.c),
 * which compresses and writes it in its own thread; tracefile/spool.py reads
 * the records back. */
static int spool_sink(void *ctx, uint32_t thread_idx, uint32_t seq, const uint8_t *data,
                      size_t len, uint64_t n_events)
{
    if (rt_spool_put((rt_spool *)ctx, thread_idx, seq, data, len, n_events) != RT_OK)
        return -1;
    if (G.stream_max) {
        /* the stream's size cap (--max-stream-bytes): what the writer has stored so
         * far, which trails the chunks put by the few it still compresses */
        uint64_t stored = 0;
        rt_spool_bytes((rt_spool *)ctx, &stored, NULL);
        if (stored >= G.stream_max) {
            G.stream_full_at = rt_clock_now(&G.clock);
            return RT_SINK_FULL;
        }
    }
    return 0;
}

/* zlib level of the spool's chunks (0: stored raw, written in the calling thread).
 * The writer's thread is stopped before each os.fork() of the program and started
 * again with the next chunk after it (spool_pause/spool_resume, called from
 * record/tracer.py's fork handlers): a process with a thread of retracer's at its fork would fork as a
 * multi-threaded process, and CPython 3.12+ then warns ("This process is
 * multi-threaded, use of fork() may lead to deadlocks"), a warning the program
 * would not print without retracer. */
#define SPOOL_ZLIB_LEVEL 1

/* spool_pause() -> bool: before a fork, write what the spool writer has queued and
 * stop its thread (the GIL is kept: no chunk can be put meanwhile). */
PyObject *rt_py_spool_pause(PyObject *m, PyObject *unused)
{
    int stopped = 0;
    if (G.spool && getpid() == G.pid)
        stopped = rt_spool_pause(G.spool);
    return PyBool_FromLong(stopped);
}

/* spool_resume(): after the fork, in the parent: the writer's thread again, from
 * the next chunk on (CPython 3.13 counts threads after the parent's fork handlers). */
PyObject *rt_py_spool_resume(PyObject *m, PyObject *unused)
{
    if (G.spool && getpid() == G.pid)
        rt_spool_resume(G.spool);
    Py_RETURN_NONE;
}

/* Close the spool writer (waits for what it still has to write). */
static void spool_close(void)
{
    if (G.spool && getpid() != G.pid) {
        /* a forked child: the writer's thread is the parent's and does not exist here */
        rt_spool_abandon(G.spool);
        G.spool = NULL;
    }
    if (G.spool) {
        if (rt_spool_close(G.spool) != RT_OK)
            G.spool_err = 1;
        G.spool = NULL;
    }
}

/* ------------------------------------------------------------- threads */

rt_thread *rt_py_thread_new(int64_t now)
{
    rt_thread *t = rt_engine_add_thread(G.engine, (uint64_t)PyThread_get_thread_ident(),
                                        (uint64_t)PyThread_get_thread_native_id(), now);
    rt_py_tls.thread = t;
    rt_py_tls.gen = G.gen;
    rt_py_tls.muted = 0;
    return t;
}

/* ------------------------------------------------------------- teardown */

/* Release everything a session holds; safe on a half-built session. */
static void session_teardown(void)
{
    rt_engine_free(G.engine);
    G.engine = NULL;
    rt_map_free(&G.code_fids);
    rt_free(rt_py_allocator(), G.fflags);
    G.fflags = NULL;
    G.fcap = G.nfuncs = 0;
    Py_CLEAR(G.funcs);
    Py_CLEAR(G.keep);
    Py_CLEAR(G.argnames);
    Py_CLEAR(G.cb_enter);
    Py_CLEAR(G.cb_exit);
    Py_CLEAR(G.cb_yield);
    rt_capture_free(&G.capture);
    G.capture_on = 0;
    rt_map_free(&G.cap_gens);
    rt_py_capstacks_free();
    Py_CLEAR(G.scope);
    Py_CLEAR(G.exclude);
    Py_CLEAR(G.ignore);
    Py_CLEAR(G.only);
    Py_CLEAR(G.cwd);
    spool_close();
    if (G.spool_fd >= 0)
        close(G.spool_fd);
    G.spool_fd = -1;
    if (G.journal_fd >= 0)
        close(G.journal_fd);
    G.journal_fd = -1;
}

/* -------------------------------------------------------------- start */

/* A fallible step of start(): 1 when the test hook makes this one fail. */
static int injected_failure(void)
{
    if (G.fail_start_at > 0 && --G.fail_start_at == 0) {
        PyErr_SetString(PyExc_MemoryError, "injected failure (_engine._fail_start_at)");
        return 1;
    }
    return 0;
}

/* A new reference to the callable attribute `name` of obj, or NULL. */
static PyObject *callback(PyObject *obj, const char *name)
{
    PyObject *cb = PyObject_GetAttrString(obj, name); /* Owned */
    if (cb && !PyCallable_Check(cb)) {
        PyErr_Format(PyExc_TypeError, "capture.%s must be callable", name);
        Py_CLEAR(cb);
    }
    return cb;
}

const char rt_py_start_doc[] =
    "start(spool, scope, exclude, ignore, only, cwd, no_external, no_imports, c_calls,\n"
    "      chunk_size, capture, max_count, shape_diverse, journal=None, flush_ms=0)\n"
    "Begin a session: events are recorded from now on. Every argument is required (by\n"
    "keyword or in this order):\n"
    "  spool          path of the file the call-stream chunks are appended to (created)\n"
    "  scope          tuple of absolute directory prefixes ('/'-terminated): your code\n"
    "  exclude        tuple of prefixes never in scope (the standard library, site-packages)\n"
    "  ignore         tuple of prefixes whose code is not traced at all (retracer's own)\n"
    "  only           iterable of function names (--only-functions), or None\n"
    "  cwd            the current directory, '/'-terminated, for relative file names\n"
    "  no_external    bool: calls leaving the scope are not in the call stream\n"
    "  no_imports     bool: import machinery and module bodies are not in the call stream\n"
    "  c_calls        bool: record calls of C functions (where the hook sees them)\n"
    "  chunk_size     bytes per call-stream chunk (0: 256 KiB)\n"
    "  capture        None, or an object with callables enter(CallStart) -> id or None,\n"
    "                 exit(CallEnd) and yield_(CallYield), called muted\n"
    "  max_count      calls captured per function (0: none)\n"
    "  shape_diverse  bool: keep the last quarter of max_count for calls whose input\n"
    "                 shape is new (False: the first max_count calls)\n"
    "  journal        optional: path of a file that gets a line per new function at once\n"
    "                 (a followed child's, for a root that must read a killed child's calls)\n"
    "  flush_ms       optional: a call-stream chunk older than this goes to the spool at the\n"
    "                 thread's next event, full or not (0: only full chunks)\n"
    "  capture_share  optional: while capture has taken more than this share of the run (and\n"
    "                 more than capture_grace_ms), calls are not captured (0 or 1: no limit)\n"
    "  capture_grace_ms  optional: capture time always allowed\n"
    "  stream_max_bytes  optional: the call stream stops being recorded once the spool holds\n"
    "                 this many bytes (0: no cap); the profile goes on\n"
    "On 3.12+ the caller registers the sys.monitoring callbacks itself.";

PyObject *rt_py_start(PyObject *m, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"spool", "scope", "exclude", "ignore", "only", "cwd",
                             "no_external", "no_imports", "c_calls", "chunk_size",
                             "capture", "max_count", "shape_diverse", "journal", "flush_ms",
                             "capture_share", "capture_grace_ms", "stream_max_bytes", NULL};
    const char *journal = NULL;
    unsigned int flush_ms = 0;
    double capture_share = 0.0;
    unsigned int capture_grace_ms = 0;
    unsigned long long stream_max_bytes = 0;
    const char *spool;
    PyObject *scope, *exclude, *ignore, *only, *cwd, *capture; /* Borrowed */
    int no_external, no_imports, c_calls, shape_diverse;
    Py_ssize_t chunk_size;
    unsigned int max_count;
    int building = 0; /* 1 once G holds parts of this session: `error` undoes them all */
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sO!O!O!OUpppnOIp|zIdIK:start", kwlist, &spool, &PyTuple_Type,
                                     &scope, &PyTuple_Type, &exclude, &PyTuple_Type, &ignore,
                                     &only, &cwd, &no_external, &no_imports, &c_calls,
                                     &chunk_size, &capture, &max_count, &shape_diverse, &journal, &flush_ms,
                                     &capture_share, &capture_grace_ms, &stream_max_bytes))
        goto error;
    if (G.engine) {
        PyErr_SetString(PyExc_RuntimeError, "a retracer session is already running");
        goto error;
    }
    building = 1;
    rt_map_init(&G.code_fids, rt_py_allocator());
    rt_map_init(&G.cap_gens, rt_py_allocator());
    rt_capture_config ccfg;
    rt_capture_config_default(&ccfg, max_count);
    if (!shape_diverse)
        ccfg.shape_share = 0;
    rt_capture_init(&G.capture, &ccfg, rt_py_allocator());
    G.spool_fd = open(spool, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (G.spool_fd < 0) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, spool);
        goto error;
    }
    G.spool_err = 0;
    G.stream_max = stream_max_bytes;
    G.stream_full_at = 0;
    if (journal && (G.journal_fd = open(journal, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600)) < 0) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, journal);
        goto error;
    }
    G.pid = getpid();
    if (!(G.spool = rt_spool_open(G.spool_fd, SPOOL_ZLIB_LEVEL, rt_py_allocator()))) {
        PyErr_SetString(PyExc_MemoryError, "cannot start the spool writer (memory or threads)");
        goto error;
    }
    rt_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.chunk_size = (size_t)chunk_size;
    cfg.sink = spool_sink;
    cfg.sink_ctx = G.spool;
    cfg.alloc = rt_py_allocator();
    cfg.no_external = no_external;
    cfg.no_imports = no_imports;
    cfg.only_functions = only != Py_None;
    cfg.flush_ns = (int64_t)flush_ms * 1000000;
    if (injected_failure())
        goto error;
    if (!(G.engine = rt_engine_new(&cfg))) {
        PyErr_NoMemory();
        goto error;
    }
    if (injected_failure() || !(G.funcs = PyList_New(0)))
        goto error;
    if (injected_failure() || !(G.keep = PyList_New(0)))
        goto error;
    if (injected_failure() || !(G.argnames = PyList_New(0)))
        goto error;
    if (only != Py_None && (injected_failure() || !(G.only = PyFrozenSet_New(only))))
        goto error;
    G.capture_on = capture != Py_None && max_count > 0;
    if (G.capture_on && (injected_failure() || !(G.cb_enter = callback(capture, "enter")) ||
                         !(G.cb_exit = callback(capture, "exit")) || !(G.cb_yield = callback(capture, "yield_"))))
        goto error;
    G.scope = Py_NewRef(scope);
    G.exclude = Py_NewRef(exclude);
    G.ignore = Py_NewRef(ignore);
    G.cwd = Py_NewRef(cwd);
    G.nfuncs = 0;
    G.c_calls = c_calls;
    G.fail_start_at = 0;
    rt_clock_init(&G.clock, 2000000, 1);
    G.gen++;
    G.t_start = rt_clock_now(&G.clock);
    /* a share of 1 (or more) lets capture take all the time: no budget */
    rt_capture_set_time_budget(&G.capture,
                               capture_share > 0 && capture_share < 1 ? (uint32_t)(capture_share * 1e6) : 0,
                               (uint64_t)capture_grace_ms * 1000000u, G.t_start);
    G.active = 1;
#ifdef RT_MECH_PEP523
    PyInterpreterState *interp = PyThreadState_GET()->interp;
    G.prev_eval = _PyInterpreterState_GetEvalFrameFunc(interp);
    _PyInterpreterState_SetEvalFrameFunc(interp, rt_py_eval_frame);
#endif
#ifdef RT_MECH_PROFILE
    PyEval_SetProfile(rt_py_profile, NULL);
#endif
    Py_RETURN_NONE;
error:
    G.fail_start_at = 0;
    if (building)
        session_teardown();
    return NULL;
}

/* _fail_start_at(n): for tests -- the n-th fallible step of the next start()
 * fails with MemoryError (0: none). */
PyObject *rt_py_fail_start_at(PyObject *m, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    G.fail_start_at = n > 0 ? (int)n : 0;
    Py_RETURN_NONE;
}

/* _live_blocks(): for tests -- how many blocks of the binding's allocator are live. */
PyObject *rt_py_live_blocks_py(PyObject *m, PyObject *unused)
{
    (void)m;
    (void)unused;
    return PyLong_FromLongLong(rt_py_live_blocks());
}

/* sigterm_guard(on) -> bool: on (True), wrap the SIGTERM handler just installed
 * (the tracer's) so that a SIGTERM handled while the main thread was not yet in
 * its blocking call still reaches it (csrc/rt_sigguard.h); False if it cannot
 * be (not Linux, no timer). off (False): put the handler back, delete the timer.
 * Called from the main thread. */
PyObject *rt_py_sigterm_guard(PyObject *m, PyObject *on)
{
    (void)m;
    int flag = PyObject_IsTrue(on);
    if (flag < 0)
        return NULL;
    if (!flag) {
        rt_sigguard_remove();
        Py_RETURN_FALSE;
    }
    if (rt_sigguard_install(SIGTERM, 20 * 1000 * 1000L) != 0)
        Py_RETURN_FALSE;
    Py_RETURN_TRUE;
}

/* sigterm_ack(): the tracer's SIGTERM handler has started: the guard stops re-sending. */
PyObject *rt_py_sigterm_ack(PyObject *m, PyObject *unused)
{
    (void)m;
    (void)unused;
    rt_sigguard_ack();
    Py_RETURN_NONE;
}

/* capture_refund(ns): of the capture time so far, ns was a one-time cost (an
 * import on first need) that the time budget does not count. */
PyObject *rt_py_capture_refund(PyObject *m, PyObject *arg)
{
    (void)m;
    long long ns = PyLong_AsLongLong(arg);
    if (ns == -1 && PyErr_Occurred())
        return NULL;
    if (ns > 0 && G.engine)
        rt_capture_refund(&G.capture, (uint64_t)ns);
    Py_RETURN_NONE;
}

/* -------------------------------------------------------------- results */

static PyObject *function_info(uint32_t fid)
{
    PyObject *desc = PyList_GET_ITEM(G.funcs, fid); /* Borrowed */
    int is_c = (G.fflags[fid] & RT_F_C) != 0;
    PyObject *items[] = {
        PyLong_FromUnsignedLong(fid),
        PyUnicode_FromString(is_c ? "c" : "py"),
        Py_NewRef(is_c ? Py_None : desc),
        Py_NewRef(is_c ? desc : ((PyCodeObject *)desc)->co_name),
        PyLong_FromUnsignedLong(G.fflags[fid] & ~RT_FB_CORO),
        Py_NewRef(PyList_GET_ITEM(G.argnames, fid)),
    };
    return rt_py_named(&rt_py_FunctionInfoType, items, 6);
}

/* Append `item` (a new reference, stolen; NULL: fail) to list l. 0 or -1. */
static int append_new(PyObject *l, PyObject *item)
{
    if (!item)
        return -1;
    int rc = PyList_Append(l, item);
    Py_DECREF(item);
    return rc;
}

static PyObject *build_results(const char *errmsg)
{
    rt_fstat *fs = NULL;
    rt_edge *edges = NULL;
    size_t n_edges = 0;
    PyObject *res = NULL, *fl = NULL, *el = NULL, *tl = NULL, *funcs = NULL; /* Owned */
    if (rt_engine_profile(G.engine, &fs, &edges, &n_edges) != RT_OK) {
        PyErr_NoMemory();
        goto error;
    }
    if (!(funcs = PyList_New(0)) || !(fl = PyList_New(0)) || !(el = PyList_New(0)) || !(tl = PyList_New(0)))
        goto error;
    for (uint32_t i = 0; i < G.nfuncs; i++)
        if (append_new(funcs, function_info(i)) < 0)
            goto error;
    uint32_t nf = rt_engine_nfuncs(G.engine);
    for (uint32_t i = 0; i < nf; i++) {
        if (fs[i].calls == 0)
            continue;
        PyObject *items[] = {
            PyLong_FromUnsignedLong(i),
            PyLong_FromUnsignedLongLong(fs[i].calls),
            PyLong_FromUnsignedLongLong(fs[i].prim_calls),
            PyLong_FromLongLong(fs[i].own_ns),
            PyLong_FromLongLong(fs[i].cum_ns),
        };
        if (append_new(fl, rt_py_named(&rt_py_FuncStatType, items, 5)) < 0)
            goto error;
    }
    for (size_t i = 0; i < n_edges; i++) {
        if (edges[i].calls == 0)
            continue;
        PyObject *items[] = {
            PyLong_FromLongLong(edges[i].caller == RT_ROOT ? -1 : (long long)edges[i].caller),
            PyLong_FromUnsignedLong(edges[i].callee),
            PyLong_FromUnsignedLongLong(edges[i].calls),
            PyLong_FromUnsignedLongLong(edges[i].prim_calls),
            PyLong_FromLongLong(edges[i].own_ns),
            PyLong_FromLongLong(edges[i].cum_ns),
        };
        if (append_new(el, rt_py_named(&rt_py_EdgeStatType, items, 6)) < 0)
            goto error;
    }
    uint32_t nt = rt_engine_nthreads(G.engine);
    for (uint32_t i = 0; i < nt; i++) {
        rt_thread_info ti;
        rt_engine_thread_info(G.engine, i, &ti);
        PyObject *items[] = {
            PyLong_FromUnsignedLong(ti.idx),
            PyLong_FromUnsignedLongLong(ti.ident),
            PyLong_FromUnsignedLongLong(ti.native_id),
            PyLong_FromUnsignedLongLong(ti.n_events),
            PyLong_FromUnsignedLongLong(ti.stream_calls),
            PyLong_FromUnsignedLong(ti.chunks),
            PyLong_FromLongLong((long long)ti.paused_ns),
        };
        if (append_new(tl, rt_py_named(&rt_py_ThreadInfoType, items, 7)) < 0)
            goto error;
    }
    PyObject *items[] = {
        Py_NewRef(funcs), Py_NewRef(fl), Py_NewRef(el), Py_NewRef(tl),
        PyUnicode_FromString(errmsg),
        PyLong_FromLongLong((long long)(G.t_stop - G.t_start)),
        PyUnicode_FromString(rt_clock_name(&G.clock)),
        PyLong_FromUnsignedLongLong(G.capture.throttled),
        PyLong_FromLongLong(G.capture.throttled ? (long long)(G.capture.first_throttled - G.capture.t_start) : 0),
        PyLong_FromLongLong(G.stream_full_at ? (long long)(G.stream_full_at - G.t_start) : -1),
    };
    res = rt_py_named(&rt_py_ResultsType, items, 10);
error:
    Py_XDECREF(funcs);
    Py_XDECREF(fl);
    Py_XDECREF(el);
    Py_XDECREF(tl);
    if (fs || edges)
        rt_engine_free_profile(G.engine, fs, edges);
    return res;
}

/* ---------------------------------------------------------- pause, stop */

/* Stop recording (hooks stay installed but inert until stop()). */
PyObject *rt_py_pause(PyObject *m, PyObject *unused)
{
    G.active = 0;
    Py_RETURN_NONE;
}

/* Take the hook out of the interpreter (3.12+: the caller unregisters sys.monitoring). */
static void remove_hooks(void)
{
#ifdef RT_MECH_PEP523
    PyInterpreterState *interp = PyThreadState_GET()->interp;
    if (_PyInterpreterState_GetEvalFrameFunc(interp) == rt_py_eval_frame)
        _PyInterpreterState_SetEvalFrameFunc(interp, G.prev_eval);
#endif
#ifdef RT_MECH_PROFILE
    PyEval_SetProfile(NULL, NULL);
#endif
}

const char rt_py_stop_doc[] =
    "stop() -> Results or None\n"
    "End the session: close open calls, flush the call stream to the spool and return\n"
    "Results(functions, func_stats, edge_stats, threads, error, duration_ns, clock,\n"
    "capture_throttled, capture_first_throttled_ns, stream_full_ns)\n"
    "(see the FunctionInfo, FuncStat, EdgeStat and ThreadInfo types). Returns None if no\n"
    "session is running.";

PyObject *rt_py_stop(PyObject *m, PyObject *unused)
{
    if (!G.engine)
        Py_RETURN_NONE;
    G.active = 0;
    G.t_stop = rt_clock_now(&G.clock);
    remove_hooks();
    rt_engine_finish(G.engine, G.t_stop);
    spool_close();  /* every chunk is in the file before the results say so */
    const char *errstr = "";
    rt_engine_error(G.engine, &errstr);
    if (G.spool_err && !*errstr)
        errstr = "writing the call stream failed";
    PyObject *res = build_results(errstr); /* Owned */
    session_teardown();
    return res;
}

const char rt_py_discard_doc[] =
    "discard()\n"
    "In a forked child: drop the session inherited from the parent without writing any\n"
    "of it (its buffers and open calls belong to the parent's trace); the hooks are\n"
    "removed, so a new session can start. No-op when no session runs.";

PyObject *rt_py_discard(PyObject *m, PyObject *unused)
{
    if (!G.engine)
        Py_RETURN_NONE;
    G.active = 0;
    remove_hooks();
    /* the parent's spool writer is abandoned by session_teardown's spool_close (another pid) */
    if (G.spool_fd >= 0)
        close(G.spool_fd); /* the parent's spool: never written from here */
    G.spool_fd = -1;
    session_teardown();
    G.gen++; /* this thread's state of the old session is stale */
    Py_RETURN_NONE;
}
