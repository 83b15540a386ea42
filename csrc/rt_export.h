/*
 * rt_export.h -- write a trace's call stream in the formats other tools read.
 *
 * Formats (RT_EXPORT_*):
 *   CHROME      Trace Event JSON object: one "ph":"X" complete event per span
 *               (ts/dur in microseconds with three decimals, so nanoseconds
 *               survive), "ph":"M" process_name/thread_name metadata.
 *               Perfetto (ui.perfetto.dev) and chrome://tracing open it.
 *   SPEEDSCOPE  speedscope file format: one "evented" profile per thread with
 *               "O"/"C" events in nanoseconds, frames shared by all profiles.
 *   FOLDED      "root;...;leaf weight" lines, one per distinct stack, weight
 *               = self time in nanoseconds, threads merged (flamegraph.pl,
 *               inferno).
 *   PPROF       gzipped profile.proto: sample types calls/count and
 *               wall/nanoseconds, one sample per distinct stack (threads
 *               merged), one Function and one Location per function.
 *   JSON        retracer's own structure (docs/export-json.md): the functions
 *               and, per thread, the aggregated call tree as a flat node list.
 *
 * Every span reported by the walker (rt_walk.h) is one interval: a generator
 * resumed five times gives five spans (five X events, five O/C pairs); the
 * aggregated formats count it as one call (only spans that begin with its
 * ENTER count a call) and add up the time of its slices.
 *
 * Streaming: events go through a buffered writer to the caller's output
 * function as they are produced, so memory does not grow with the number of
 * events. The aggregated formats (FOLDED, PPROF, JSON) keep a call-tree trie
 * keyed by (parent node, function): memory grows with the number of distinct
 * stacks, not with the number of calls. Nothing recurses over the depth of a
 * stack (100,000 nested calls are fine).
 *
 * Usage:
 *   rt_export_new(&e, &opts, out_fn, out_ctx, alloc);
 *   rt_export_add_function(e, fid, &fn);             for every function
 *   for each thread:
 *       rt_export_thread_begin(e, idx, tid, name);
 *       rt_export_feed(e, chunk, len);               its chunks in seq order
 *       rt_export_thread_end(e);
 *   rt_export_finish(e);                             the rest, then flush
 *   rt_export_free(e);
 *
 * Errors: every fallible function returns RT_OK or an RT_ERR_* code. The
 * first error is sticky: later calls return it again without doing anything,
 * and rt_export_errstr() describes it. RT_ERR_IO means the output function
 * failed; RT_ERR_DATA a malformed chunk; RT_ERR_STATE a call out of order.
 */
#ifndef RT_EXPORT_H
#define RT_EXPORT_H

#include "rt_common.h"

enum {
    RT_EXPORT_CHROME = 1,
    RT_EXPORT_SPEEDSCOPE = 2,
    RT_EXPORT_FOLDED = 3,
    RT_EXPORT_PPROF = 4,
    RT_EXPORT_JSON = 5,
};

/* Function kinds. */
enum { RT_FUNC_PY = 0, RT_FUNC_C = 1 };

/*
 * Output function: write `len` bytes (borrowed); return 0 on success, any
 * other value on failure (the export then fails with RT_ERR_IO). Called with
 * blocks of up to 64 KiB, in order.
 */
typedef int (*rt_export_out_fn)(void *ctx, const uint8_t *data, size_t len);

/* Options; zero-initialise and set what is needed. Strings are borrowed
 * for the duration of rt_export_new (copied). */
typedef struct rt_export_opts {
    int format;                /* RT_EXPORT_* */
    int merge_threads;         /* JSON: one tree for all threads (thread -1) instead of one per thread */
    int64_t pid;               /* CHROME: the "pid" of every event */
    int64_t time_unix_ns;      /* PPROF time_nanos: when tracing started (Unix ns), 0 if unknown */
    int64_t duration_ns;       /* PPROF duration_nanos, JSON "duration_ns"; 0 if unknown */
    int gzip_level;            /* PPROF: zlib level 1..9, 0 for the default (6) */
    const char *name;          /* profile name (UTF-8; the trace file), may be NULL */
    const char *exporter;      /* e.g. "retracer 0.1.0", may be NULL */
} rt_export_opts;

/* A function as the exports show it. Strings are UTF-8, borrowed for the
 * call (copied); invalid UTF-8 is replaced by U+FFFD in JSON output. */
typedef struct rt_export_func {
    const char *name;          /* display name (qualified name); NULL: "<fid N>" */
    const char *system_name;   /* e.g. module.qualname (PPROF system_name, left empty when equal
                                  to name: pprof would strip <...> from it); NULL: name */
    const char *file;          /* source file, NULL for C functions / unknown */
    int64_t line;              /* first line (1-based), 0 if unknown */
    const char *label;         /* FOLDED frame text, e.g. "f (app.py:3)"; NULL: name.
                                  ';' becomes ':' and line breaks become spaces */
    int kind;                  /* RT_FUNC_PY or RT_FUNC_C */
} rt_export_func;

/* Counters of an export (read after rt_export_finish). */
typedef struct rt_export_stats {
    uint64_t spans;            /* spans reported by the walker, all threads */
    uint64_t calls;            /* spans that begin a call (ENTER) */
    uint64_t events;           /* call-stream events decoded */
    uint64_t anomalies;        /* events the walker skipped (see rt_walk.h) */
    uint64_t nodes;            /* call-tree nodes (aggregated formats; largest per-thread tree for JSON) */
    uint64_t bytes;            /* bytes handed to the output function */
    size_t max_depth;          /* deepest stack seen (1 = a root call) */
} rt_export_stats;

typedef struct rt_export rt_export; /* opaque */

/*
 * Create an exporter writing to `out` (called with `out_ctx`). `alloc` is
 * borrowed and must outlive the exporter. Returns RT_OK, RT_ERR_NOMEM, or
 * RT_ERR_STATE for an unknown format; *ep is NULL on failure.
 */
int rt_export_new(rt_export **ep, const rt_export_opts *opts, rt_export_out_fn out, void *out_ctx,
                  const rt_allocator *alloc);

/* Describe function `fid` (any order; before the spans that use it, since
 * CHROME writes the name of a span when it closes). Adding a fid twice
 * replaces it. Functions never described are named "<fid N>"; a stream fid
 * more than 65,536 past the highest described one is malformed (RT_ERR_DATA). */
int rt_export_add_function(rt_export *e, uint32_t fid, const rt_export_func *f);

/* Start thread `thread_idx`; `tid` is the OS thread id shown by viewers
 * (CHROME tid), `name` its name (may be NULL). */
int rt_export_thread_begin(rt_export *e, uint32_t thread_idx, int64_t tid, const char *name);

/* The process of the threads begun from now on (CHROME "pid"; default opts.pid):
 * a multi-process trace calls it before each process's threads. */
void rt_export_set_pid(rt_export *e, int64_t pid);

/* The process of the threads begun from now on, for the formats that merge
 * threads into one call tree (PPROF, FOLDED). PPROF keeps each process's
 * samples apart and labels them with "pid". With `frame` (UTF-8, copied, ';'
 * and line breaks cleaned as for labels) both show the process as the root
 * frame of its stacks ("process 42: prog.py", as py-spy --subprocesses does);
 * NULL: no frame (FOLDED then merges the processes as it merges threads).
 * CHROME names the process's track with `frame` (else "pid N"); the other
 * formats ignore it. RT_OK, RT_ERR_NOMEM or RT_ERR_DATA (over 2^20). */
int rt_export_set_process(rt_export *e, int64_t pid, const char *frame);

/* Decode one chunk of the current thread's stream (borrowed bytes). */
int rt_export_feed(rt_export *e, const uint8_t *data, size_t len);

/* Close the spans still open and end the thread. */
int rt_export_thread_end(rt_export *e);

/* Write what remains (aggregated data, trailers), flush and end the gzip
 * stream. The exporter accepts nothing afterwards. */
int rt_export_finish(rt_export *e);

/* The first error, as a sentence ("" when there was none). */
const char *rt_export_errstr(const rt_export *e);

/* Counters so far. */
void rt_export_get_stats(const rt_export *e, rt_export_stats *st);

/* Release everything (NULL is fine). Does not write. */
void rt_export_free(rt_export *e);

/* Format name ("chrome", ...) to RT_EXPORT_*; 0 if unknown. */
int rt_export_format_by_name(const char *name);

#endif
