/*
 * rt_engine.h -- the tracing engine: per-thread call stacks, the profile
 * (per function and per caller->callee edge, cProfile semantics) and the
 * encoded call stream, written in chunks to a sink.
 *
 * Threading: every function taking an rt_engine or rt_thread must be called
 * serialised (in the binding, the GIL does it). Each OS thread of the traced
 * program gets its own rt_thread; events for a thread are fed in order.
 *
 * Memory: the common path (enter/exit of a known function with a known
 * caller) does not allocate. Stacks, tables and the generator pool grow by
 * doubling. The call stream never accumulates: a thread's buffer is handed to
 * the sink each time it holds `chunk_size` bytes.
 *
 * Errors: carried in the engine (`err`, `errstr`). After an error the engine
 * stops recording the call stream but keeps the profile when it can.
 */
#ifndef RT_ENGINE_H
#define RT_ENGINE_H

#include "rt_common.h"
#include "rt_map.h"

/* Function flags (set by the binding, stored per function id). */
#define RT_F_SCOPE 1u     /* the function's file is inside the scope */
#define RT_F_IMPORT 2u    /* import machinery: hidden with its subtree by no_imports */
#define RT_F_MODULE 4u    /* a module body: hidden (children lifted) by no_imports */
#define RT_F_ONLY 8u      /* named by --only-functions */
#define RT_F_GEN 16u      /* generator, coroutine or async generator */
#define RT_F_C 32u        /* a C function */

/* Caller id used for calls without a traced caller. */
#define RT_ROOT UINT32_MAX

/*
 * The sink receives each full chunk of a thread's stream. `data` is borrowed
 * for the call only. Returns 0 on success; RT_SINK_FULL when it took the
 * chunk but wants no more (a size cap: the engine stops recording the stream
 * of every thread, without an error -- rt_engine_stream_full() says so -- and
 * the profile goes on); any other value on failure (the engine then records
 * RT_ERR_IO and stops recording the stream).
 */
#define RT_SINK_FULL 1
typedef int (*rt_sink_fn)(void *ctx, uint32_t thread_idx, uint32_t seq,
                          const uint8_t *data, size_t len, uint64_t n_events);

typedef struct rt_config {
    size_t chunk_size;          /* bytes per chunk buffer; at least 256 (default 256 KiB if 0) */
    rt_sink_fn sink;            /* may be NULL: the stream is then discarded */
    void *sink_ctx;             /* borrowed; passed to sink */
    const rt_allocator *alloc;  /* borrowed; NULL selects rt_default_allocator() */
    int no_external;            /* 1: calls leaving the scope are not in the stream */
    int no_imports;             /* 1: import machinery and module bodies are not in the stream */
    int only_functions;         /* 1: only RT_F_ONLY functions and their callees are in the stream */
    int64_t flush_ns;           /* > 0: a chunk begun longer ago than this (clock ns) goes to the sink
                                   at the thread's next event even when not full, so a process that
                                   dies loses at most that much of its stream; 0: only full chunks */
} rt_config;

/* Profile counters of one function (cProfile's meaning; times in ns). */
typedef struct rt_fstat {
    uint64_t calls;       /* completed calls (a generator counts once) */
    uint64_t prim_calls;  /* calls that were not recursive */
    int64_t own_ns;       /* time in the function itself, callees excluded */
    int64_t cum_ns;       /* time including callees, counted for outermost calls only */
    uint32_t level;       /* runtime: open activations of the function on this thread */
    uint32_t last_callee; /* runtime: the callee this function called last (RT_ROOT: none) */
    uint32_t last_edge;   /* runtime: the edge index of that call */
} rt_fstat;

/* Profile counters of one caller -> callee edge. */
typedef struct rt_edge {
    uint32_t caller;      /* caller fid or RT_ROOT */
    uint32_t callee;      /* callee fid */
    uint64_t calls;
    uint64_t prim_calls;
    int64_t own_ns;
    int64_t cum_ns;
    uint32_t level;       /* runtime: open activations of this edge on this thread */
} rt_edge;

typedef struct rt_engine rt_engine;
typedef struct rt_thread rt_thread;

/*
 * Create an engine from `cfg` (copied). Returns NULL when out of memory.
 * Threads are registered later, each with its own start time
 * (rt_engine_add_thread).
 */
rt_engine *rt_engine_new(const rt_config *cfg);

/* Free the engine, its threads and all tables. NULL is accepted. */
void rt_engine_free(rt_engine *e);

/* Error state: RT_OK or an RT_ERR_* code, and a message (static storage in e). */
int rt_engine_error(const rt_engine *e, const char **errstr);

/*
 * Declare function `fid` (dense ids from 0 chosen by the caller) with RT_F_*
 * flags. Must be called before the first event naming fid. RT_OK or RT_ERR_NOMEM.
 */
int rt_engine_set_func(rt_engine *e, uint32_t fid, uint32_t flags);

/* Number of functions declared (1 + highest fid). */
uint32_t rt_engine_nfuncs(const rt_engine *e);

/*
 * Register a new thread; `ident` and `native_id` are stored for reporting.
 * Returns the thread or NULL (out of memory). Owned by the engine.
 */
rt_thread *rt_engine_add_thread(rt_engine *e, uint64_t ident, uint64_t native_id, int64_t now);

/* --- events (the hot path) ------------------------------------------------
 * `now` is the clock value in ns, recorded on the thread's timeline (minus
 * the time paused, see rt_thread_pause below); a value earlier than the
 * thread's previous event is clamped. */

/* A call of `fid` begins on thread t. */
void rt_enter(rt_thread *t, uint32_t fid, int64_t now);

/*
 * The innermost call returns (exc=0) or raises (exc=1). `fid` must match the
 * innermost call; if it does not, the engine looks a few frames down for it
 * (events lost by the hook) and closes the frames above; if fid is not open,
 * the event is ignored and 0 is returned. Returns 1 when a call was closed.
 */
int rt_exit(rt_thread *t, uint32_t fid, int64_t now, int exc);

/*
 * The innermost call (a generator or coroutine, function fid) yields. It is
 * remembered under `key` (an identity of the suspended frame) until
 * rt_resume. Returns 1 when a call was suspended, 0 when ignored.
 */
int rt_suspend(rt_thread *t, uint32_t fid, uint64_t key, int64_t now);

/*
 * The call suspended under `key` resumes on thread t. If no call is
 * suspended under key (it started before tracing), a new call of fid begins.
 */
void rt_resume(rt_thread *t, uint32_t fid, uint64_t key, int64_t now);

/* The frame suspended under `key` is gone (its generator was destroyed). */
void rt_forget(rt_engine *e, uint64_t key);

/* The first member of every rt_thread, public so that a caller's hot path
 * can read a thread's depth and index without a function call. Read-only. */
typedef struct rt_thread_head {
    size_t depth;    /* open calls on the thread's stack */
    uint32_t idx;    /* registration index (0 for the first thread registered) */
    int64_t paused;  /* ns of the caller's own work taken out of the thread's time (rt_thread_pause) */
} rt_thread_head;

/* Depth of the call stack of t. */
RT_INLINE size_t rt_thread_depth(const rt_thread *t) { return ((const rt_thread_head *)(const void *)t)->depth; }

/* Registration index of t (0 for the first thread registered). */
RT_INLINE uint32_t rt_thread_index(const rt_thread *t) { return ((const rt_thread_head *)(const void *)t)->idx; }

/* --- the clock pauses while the caller works ------------------------------
 *
 * Every event time given for thread t is the caller's clock; the engine
 * records it on the thread's *timeline*: the clock minus the time the thread
 * spent doing the caller's own work (a binding capturing argument values).
 * rt_thread_pause(t, ns) says that since its last event the thread spent ns
 * on such work: every later event of t is moved back by ns, so that work is
 * in no call's own or cumulative time -- not in the call that was running,
 * not in its callers -- and not in the call stream's durations. Call it
 * after the event that preceded the work (the work began at or after that
 * event's time). ns <= 0 is ignored.
 *
 * Timelines of different threads start aligned (at rt_engine_add_thread) and
 * drift apart by the difference of their paused totals: an event of thread A
 * and one of thread B that happened at the same moment are recorded
 * paused(A) and paused(B) ns earlier than the clock said. */
RT_INLINE void rt_thread_pause(rt_thread *t, int64_t ns)
{
    if (ns > 0)
        ((rt_thread_head *)(void *)t)->paused += ns;
}

/* Total ns paused on thread t so far. */
RT_INLINE int64_t rt_thread_paused(const rt_thread *t) { return ((const rt_thread_head *)(const void *)t)->paused; }

/* The timeline time of clock value `now` on thread t (now minus the paused total). */
RT_INLINE int64_t rt_thread_time(const rt_thread *t, int64_t now) { return now - rt_thread_paused(t); }

/* Stream call number of the innermost call of t (docs/call-stream.md), or -1
 * when it is not recorded in the call stream. */
int64_t rt_thread_call_no(const rt_thread *t);

/* --- end of tracing ------------------------------------------------------ */

/*
 * Close every open call at clock value `now` (on each thread's timeline;
 * their EXIT events are written), count every
 * still-suspended generator as a completed call, and hand every buffer to the
 * sink. After finish, events are ignored. Returns RT_OK or the error code.
 */
int rt_engine_finish(rt_engine *e, int64_t now);

/* Thread information for the trace file. */
typedef struct rt_thread_info {
    uint32_t idx;          /* index, in order of registration */
    uint64_t ident;        /* as given to rt_engine_add_thread */
    uint64_t native_id;
    uint64_t n_events;     /* events written to the stream (after finish: that reached the sink) */
    uint64_t stream_calls; /* calls written to the stream (ENTER + ENTER_CONT; after finish:
                              in the chunks that reached the sink) */
    uint32_t chunks;       /* chunks handed to the sink */
    int64_t paused_ns;     /* time taken out of the thread's timeline (rt_thread_pause) */
} rt_thread_info;

uint32_t rt_engine_nthreads(const rt_engine *e);

/* 1 when the sink returned RT_SINK_FULL: the stream holds the calls until then
 * (what threads had not handed to the sink yet is dropped at finish). */
int rt_engine_stream_full(const rt_engine *e);
int rt_engine_thread_info(const rt_engine *e, uint32_t idx, rt_thread_info *out);

/*
 * The profile merged over all threads. `fstats` gets rt_engine_nfuncs()
 * entries (indexed by fid); `edges` gets `n_edges` entries. Both are
 * allocated with the engine's allocator and owned by the caller
 * (free with rt_engine_free_profile). RT_OK or RT_ERR_NOMEM.
 */
int rt_engine_profile(const rt_engine *e, rt_fstat **fstats, rt_edge **edges, size_t *n_edges);
void rt_engine_free_profile(const rt_engine *e, rt_fstat *fstats, rt_edge *edges);

#endif
