/*
 * binding.h -- the CPython binding of the engine (retracer._engine): its one
 * global state, and what its files share.
 *
 * The binding only connects CPython to the pure C engine in csrc/: it
 * installs the hook, turns code objects and C functions into dense function
 * ids, reads the clock, forwards events to the engine and hands the calls the
 * capture policy (csrc/rt_capture.h) keeps to Python (record/capture.py).
 * One file per job:
 *
 *   compat.h            every CPython version difference
 *   state.c             the definition of the state below (the only mutable globals)
 *   module.c            module init and the method table
 *   session.c           start / pause / stop, the spool sink, the results
 *   results.c           the named result types (PyStructSequence)
 *   registry.c          code object / C function -> function id, flags, names
 *   capture.c           capture glue: argument shapes, the policy, the Python callbacks
 *   objstate.c          instance attributes read without materialising __dict__
 *   hook_monitoring.c   3.12+: sys.monitoring callbacks for C functions
 *   hook_pep523.c       3.11+: the frame-evaluation hook (Python frames)
 *   hook_profile.c      3.9/3.10: the C profile hook
 *
 * (export.c and view.c, in the same directory, are the two other extension
 * modules, retracer._export and retracer._view: self-contained, no global
 * state, they include compat.h only.)
 *
 * State: everything mutable lives in the struct `G` (defined in state.c,
 * documented field by field below) plus one thread-local struct (rt_py_tls).
 * All of it is only touched with the GIL held. One tracing session at a time.
 *
 * Conventions: functions that can fail return NULL / -1 with a Python
 * exception set and have one error exit (`goto error`); PyObject fields and
 * variables say whether they own a reference (Owned) or not (Borrowed).
 * Every extern symbol but G starts with rt_py_, and all have hidden
 * visibility (the extension exports only PyInit__engine).
 */
#ifndef RT_PY_BINDING_H
#define RT_PY_BINDING_H

#include "compat.h"

#include "rt_capture.h"
#include "rt_clock.h"
#include "rt_engine.h"
#include "rt_map.h"
#include "rt_spool.h"

/* Function id of code that is not traced (retracer's own). */
#define RT_IGNORE UINT32_MAX
/* A bit of the binding's copy of a function's flags only (never given to the
 * engine nor written to the trace): a coroutine, whose yields go to the event
 * loop and are not kept. */
#define RT_FB_CORO (1u << 24)

/* Per engine thread: which open frames are being captured (capture.c). */
typedef struct rt_capstack {
    size_t *depth;   /* owned; call-stack depth of each captured open frame */
    long *id;        /* owned; its capture id */
    size_t n;        /* entries in use */
    size_t cap_depth, cap_id; /* capacities of depth and id */
} rt_capstack;

typedef struct rt_binding {
    /* --- session (session.c) */
    rt_engine *engine;      /* owned; NULL when no session */
    rt_clock clock;         /* the session's clock */
    int active;             /* 1 while events are recorded */
    uint64_t gen;           /* session generation; bumps at every start */
    int c_calls;            /* 1: record C functions (where the mechanism allows) */
    int spool_fd;           /* owned; the spool file receiving chunks, -1 if none */
    rt_spool *spool;        /* owned; writes (and compresses) the chunks into spool_fd in its thread */
    int spool_err;          /* the spool writer failed (found when it closed) */
    uint64_t stream_max;    /* stored bytes of call stream after which the sink is full (0: no cap) */
    int64_t stream_full_at; /* clock value when the sink said it was full (0: it did not) */
    int journal_fd;         /* owned; the function journal (registry.c), -1 if none */
    long pid;               /* the process that started the session (a forked child is another) */
    int64_t t_start;        /* clock value at start (ns) */
    int64_t t_stop;         /* clock value at stop (ns) */
    int fail_start_at;      /* test hook: the n-th fallible step of the next start() fails (0: none) */

    /* --- functions (registry.c) */
    rt_map code_fids;       /* code object / PyMethodDef pointer -> fid or RT_IGNORE */
    uint32_t *fflags;       /* owned; per fid: RT_F_* (as given to the engine) | RT_FB_CORO, fcap entries */
    size_t fcap;
    uint32_t nfuncs;        /* function ids given out */
    PyObject *funcs;        /* Owned list; per fid: the code object, or the C function's name (str) */
    PyObject *argnames;     /* Owned list; per fid: tuple of argument names (capturable), or None */
    PyObject *keep;         /* Owned list of ignored code objects, kept alive while their address is mapped */
    PyObject *scope;        /* Owned tuple of str: absolute directory prefixes, '/'-terminated */
    PyObject *exclude;      /* Owned tuple of str: prefixes never in scope (stdlib, site-packages) */
    PyObject *ignore;       /* Owned tuple of str: prefixes whose code is not traced at all */
    PyObject *only;         /* Owned frozenset of names, or NULL */
    PyObject *cwd;          /* Owned str with trailing '/', to absolutise relative filenames */

    /* --- capture (capture.c) */
    rt_capture capture;     /* the selection policy; capture.left == NULL: nothing to capture */
    int capture_on;         /* 1: capture is enabled for this session */
    PyObject *cb_enter;     /* Owned: enter(CallStart) -> capture id (int) or None */
    PyObject *cb_exit;      /* Owned: exit(CallEnd) */
    PyObject *cb_yield;     /* Owned: yield_(CallYield) */
    rt_map cap_gens;        /* frame key of a suspended captured generator -> capture id */
    rt_capstack **capstacks; /* owned; per engine thread index, ncapstacks entries (NULL: none yet) */
    size_t ncapstacks;

    /* --- module (module.c, hooks) */
    PyObject *self_module;  /* Borrowed: this module, whose functions are never traced */
    PyObject *disable_obj;  /* Owned: sys.monitoring.DISABLE (3.12+; set by set_disable), or NULL */
    PyObject *starting_gen; /* Borrowed: the generator whose first call is being captured (PEP 523 hook), or NULL */
#ifdef RT_MECH_PEP523
    _PyFrameEvalFunction prev_eval; /* the evaluator rt_py_eval_frame replaced */
#endif
} rt_binding;

#if defined(__GNUC__)
#define RT_PY_HIDDEN __attribute__((visibility("hidden")))
#else
#define RT_PY_HIDDEN
#endif

/* The per-thread state: one thread-local struct, so a hook reaches all of it
 * with one TLS address lookup. */
typedef struct rt_py_tls_state {
    rt_thread *thread;      /* this thread's engine state (owned by the engine), or NULL */
    uint64_t gen;           /* session generation `thread` belongs to */
    int muted;              /* 1: this thread's events are dropped (retracer's own work) */
    int64_t muted_at;       /* clock value when mute(True) muted it: the time until mute(False) is paused */
} rt_py_tls_state;

extern RT_PY_HIDDEN rt_binding G;
/* initial-exec: a hook reaches it with one %fs-relative load, not a call to
 * __tls_get_addr (the extension is loaded with dlopen; its few bytes fit in
 * the static TLS glibc keeps for that) */
#if defined(__GNUC__)
#define RT_PY_TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define RT_PY_TLS_MODEL
#endif

extern RT_PY_HIDDEN _Thread_local rt_py_tls_state rt_py_tls RT_PY_TLS_MODEL;

/* The allocator of the binding, the engine and the policy: the C library's (never
 * seen by tracemalloc, so never counted as the traced program's memory); every
 * block of it is freed with it. rt_py_live_blocks: how many of its blocks are live. */
RT_PY_HIDDEN const rt_allocator *rt_py_allocator(void);
RT_PY_HIDDEN long long rt_py_live_blocks(void);

/* ------------------------------------------------------------ session.c */

RT_PY_HIDDEN PyObject *rt_py_start(PyObject *m, PyObject *args, PyObject *kw);
RT_PY_HIDDEN PyObject *rt_py_pause(PyObject *m, PyObject *unused);
RT_PY_HIDDEN PyObject *rt_py_spool_pause(PyObject *m, PyObject *unused);
RT_PY_HIDDEN PyObject *rt_py_spool_resume(PyObject *m, PyObject *unused);
RT_PY_HIDDEN PyObject *rt_py_stop(PyObject *m, PyObject *unused);
RT_PY_HIDDEN PyObject *rt_py_discard(PyObject *m, PyObject *unused);
RT_PY_HIDDEN extern const char rt_py_discard_doc[];
RT_PY_HIDDEN PyObject *rt_py_fail_start_at(PyObject *m, PyObject *arg);
RT_PY_HIDDEN PyObject *rt_py_live_blocks_py(PyObject *m, PyObject *unused);
RT_PY_HIDDEN PyObject *rt_py_sigterm_guard(PyObject *m, PyObject *on);
RT_PY_HIDDEN PyObject *rt_py_capture_refund(PyObject *m, PyObject *arg);
RT_PY_HIDDEN PyObject *rt_py_sigterm_ack(PyObject *m, PyObject *unused);
RT_PY_HIDDEN extern const char rt_py_start_doc[];
RT_PY_HIDDEN extern const char rt_py_stop_doc[];

/* ------------------------------------------------------------ results.c */

RT_PY_HIDDEN extern PyTypeObject rt_py_ResultsType, rt_py_FunctionInfoType, rt_py_FuncStatType,
    rt_py_EdgeStatType, rt_py_ThreadInfoType, rt_py_CallStartType, rt_py_CallEndType,
    rt_py_CallYieldType, rt_py_EventType;
/* Ready the types and add them to module m. 0, or -1 with an exception. */
RT_PY_HIDDEN int rt_py_results_init(PyObject *m);
/* A new instance of a named type, its fields from `items` (each a new
 * reference, stolen, also on failure; NULL items make the call fail). */
RT_PY_HIDDEN PyObject *rt_py_named(PyTypeObject *tp, PyObject **items, Py_ssize_t n);

/* ----------------------------------------------------------- registry.c */

RT_PY_HIDDEN uint32_t rt_py_code_fid_new(PyCodeObject *co);
RT_PY_HIDDEN uint32_t rt_py_cfunc_fid_new(PyObject *callable, PyMethodDef *ml, uint64_t key);

/* Function id of a code object (registers it on first sight), RT_IGNORE for
 * retracer's own code or when it cannot be registered. */
static inline uint32_t rt_py_code_fid(PyCodeObject *co)
{
    uint64_t *v = rt_map_get(&G.code_fids, (uint64_t)(uintptr_t)co);
    if (RT_LIKELY(v != NULL))
        return (uint32_t)*v;
    return rt_py_code_fid_new(co);
}

/* The C function behind a callable, or NULL if it is not one. */
static inline PyMethodDef *rt_py_c_method_def(PyObject *callable)
{
    if (PyCFunction_Check(callable))
        return ((PyCFunctionObject *)callable)->m_ml;
    if (Py_IS_TYPE(callable, &PyMethodDescr_Type))
        return ((PyMethodDescrObject *)callable)->d_method;
    return NULL;
}

/* Function id of a C function (ml from rt_py_c_method_def), RT_IGNORE for
 * this module's own functions. */
static inline uint32_t rt_py_cfunc_fid(PyObject *callable, PyMethodDef *ml)
{
    /* keyed by the method definition, tagged so it cannot collide with a code pointer */
    uint64_t key = (uint64_t)(uintptr_t)ml | 1u;
    uint64_t *v = rt_map_get(&G.code_fids, key);
    if (RT_LIKELY(v != NULL))
        return (uint32_t)*v;
    return rt_py_cfunc_fid_new(callable, ml, key);
}

/* ------------------------------------------------------------- threads */

RT_PY_HIDDEN rt_thread *rt_py_thread_new(int64_t now);

/* This thread's engine state, created on first use in a session; NULL when
 * the thread is muted (or out of memory). */
static inline rt_thread *rt_py_cur_thread(int64_t now)
{
    if (RT_LIKELY(rt_py_tls.gen == G.gen && rt_py_tls.thread != NULL))
        return rt_py_tls.muted ? NULL : rt_py_tls.thread;
    return rt_py_thread_new(now);
}

/* ------------------------------------------------------------ capture.c */

/* Argument values of the call being started (a new tuple, or NULL). Each
 * hook passes its own; `src` is what it needs (a frame). */
typedef PyObject *(*rt_py_args_fn)(void *src, uint32_t fid);

/* A call of fid the policy wants to look at: decide, and hand it to Python.
 * `now` is the clock value of the call's start event; the time from then to
 * the end of this function (reading the arguments, their signature, the
 * Python callback) is paused on thread t (rt_thread_pause). */
RT_PY_HIDDEN void rt_py_capture_start(rt_thread *t, uint32_t fid, int64_t now, rt_py_args_fn args_of, void *src);
RT_PY_HIDDEN void rt_py_capstack_push(rt_thread *t, long id);
RT_PY_HIDDEN long rt_py_capstack_take_slow(rt_capstack *cs, size_t depth);
RT_PY_HIDDEN void rt_py_capstacks_free(void);
/* A captured call ends: `value` is the result or exception (borrowed; NULL:
 * the exception set in the thread state, which is kept, or unknown); `tl` is
 * the end's time on the thread's timeline (rt_thread_time). */
RT_PY_HIDDEN void rt_py_capture_end(long id, int raised, PyObject *value, int64_t tl);
/* A captured generator yields `value` (borrowed) and is remembered under `key`. */
RT_PY_HIDDEN void rt_py_capture_suspend(long id, uint64_t key, PyObject *value);
RT_PY_HIDDEN long rt_py_capture_resume_slow(uint64_t key);

/* The capture id of the innermost frame of t if it is being captured (and
 * pop it), else -1. Call before the engine pops the frame. */
static inline long rt_py_capstack_take(rt_thread *t)
{
    uint32_t idx = rt_thread_index(t);
    rt_capstack *cs;
    if (RT_LIKELY(idx >= G.ncapstacks || !(cs = G.capstacks[idx]) || cs->n == 0))
        return -1;
    size_t depth = rt_thread_depth(t);
    if (RT_LIKELY(cs->depth[cs->n - 1] < depth))
        return -1; /* the innermost captured call is further out: the common case */
    return rt_py_capstack_take_slow(cs, depth);
}

/* Capture took `ns` on thread t: paused on its timeline (the profile does not
 * see it) and spent from the capture time budget (rt_capture.h, time). */
static inline void rt_py_capture_paused(rt_thread *t, int64_t ns)
{
    rt_thread_pause(t, ns);
    if (ns > 0)
        rt_capture_spend(&G.capture, (uint64_t)ns);
}

/* 1 when the policy wants to look at this call of fid. */
#define RT_PY_CAPTURE_WANTED(fid) (RT_UNLIKELY(G.capture.left != NULL) && rt_capture_look(&G.capture, (fid)))

/* ------------------------------------------------------------ objstate.c */

RT_PY_HIDDEN PyObject *rt_py_instance_state(PyObject *m, PyObject *obj);
RT_PY_HIDDEN PyObject *rt_py_has_inline_values(PyObject *m, PyObject *obj);

/* digest.c */
RT_PY_HIDDEN PyObject *rt_py_encode_rows(PyObject *m, PyObject *rows);

/* ---------------------------------------------------------------- hooks */

#ifdef RT_MECH_MONITORING
RT_PY_HIDDEN extern PyMethodDef rt_py_monitoring_methods[]; /* mon_* callbacks (C calls) and set_disable */
#endif
#ifdef RT_MECH_PEP523
RT_PY_HIDDEN PyObject *rt_py_eval_frame(PyThreadState *ts, struct _PyInterpreterFrame *f, int throwflag);
#endif
#ifdef RT_MECH_PROFILE
RT_PY_HIDDEN int rt_py_profile(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);
RT_PY_HIDDEN PyObject *rt_py_thread_bootstrap(PyObject *m, PyObject *args);
#endif

/* --------------------------------------------------------------- events
 *
 * What every hook does when a call starts, resumes, yields or ends: the
 * engine event plus the capture bookkeeping. Calls that are not captured
 * pay one load and one branch for capture. `args_of(src, fid)` produces the
 * argument values and is only called for the calls the policy looks at.
 */

static inline void rt_py_ev_enter(rt_thread *t, uint32_t fid, int64_t now, rt_py_args_fn args_of, void *src)
{
    rt_enter(t, fid, now);
    /* over the capture time budget, a call costs the policy's check only */
    if (RT_PY_CAPTURE_WANTED(fid) && !rt_capture_throttle(&G.capture, fid, now))
        rt_py_capture_start(t, fid, now, args_of, src);
}

/* A generator resumes: its capture id if it is being captured, else -1. */
static inline long rt_py_capture_resume(uint64_t key)
{
    if (RT_LIKELY(G.cap_gens.len == 0))
        return -1;
    return rt_py_capture_resume_slow(key);
}

static inline void rt_py_ev_resume(rt_thread *t, uint32_t fid, uint64_t key, int64_t now)
{
    rt_resume(t, fid, key, now);
    long id = rt_py_capture_resume(key);
    if (id >= 0)
        rt_py_capstack_push(t, id);
}

static inline void rt_py_ev_suspend(rt_thread *t, uint32_t fid, uint64_t key, int64_t now, PyObject *value)
{
    if (RT_UNLIKELY(G.capture.left != NULL)) {
        long id = rt_py_capstack_take(t);
        if (id >= 0) {
            if (G.fflags[fid] & RT_FB_CORO) {
                rt_map_put(&G.cap_gens, key, (uint64_t)id); /* what it awaits is not its outcome */
            } else {
                uint64_t gen = G.gen;
                rt_py_capture_suspend(id, key, value);
                if (G.gen != gen || !G.active)
                    return; /* the session ended during the callback */
                int64_t done = rt_clock_now(&G.clock);
                rt_suspend(t, fid, key, now);
                rt_py_capture_paused(t, done - now); /* the clock paused while capturing */
                return;
            }
        }
    }
    rt_suspend(t, fid, key, now);
}

/* The innermost call returns `value` or raises (exc=1). For a raise, `value`
 * is the exception, or NULL when it is the one set in the thread state (PEP
 * 523) or not visible at all (profile hook: recorded as unknown). */
static inline void rt_py_ev_exit(rt_thread *t, uint32_t fid, int64_t now, int exc, PyObject *value)
{
    if (RT_UNLIKELY(G.capture.left != NULL)) {
        long id = rt_py_capstack_take(t);
        if (id >= 0) {
            uint64_t gen = G.gen;
            rt_py_capture_end(id, exc, value, rt_thread_time(t, now));
            if (G.gen != gen || !G.active)
                return;
            int64_t done = rt_clock_now(&G.clock);
            rt_exit(t, fid, now, exc);
            rt_py_capture_paused(t, done - now); /* the clock paused while capturing */
            return;
        }
    }
    rt_exit(t, fid, now, exc);
}

#endif
