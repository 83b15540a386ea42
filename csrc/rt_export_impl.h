/*
 * rt_export_impl.h -- inside the exporters: the core that every format
 * shares, and the table of functions a format fills in. Not a public API:
 * only rt_export.c (the core) and rt_export_<format>.c include it.
 *
 * The core (rt_export.c) owns the life cycle and the error state, the
 * buffered writer (gzipped when the format asks for it), JSON text, the
 * function slots, the walker over each thread's stream, the time of every
 * open span and, for the aggregated formats, the call-tree trie (one node per
 * distinct stack). A format (rt_export_chrome.c, _speedscope.c, _folded.c,
 * _pprof.c, _json.c) only says what to write: it fills an rt_export_ops and
 * the core calls it at each step (header, thread begin, span open and close,
 * thread end, finish). Adding a format is one file and one line of the
 * table in rt_export.c.
 *
 * Error handling inside a format: write with the rt_ex_* functions (they do
 * nothing once e->err is set), report with rt_ex_fail / rt_ex_nomem, and
 * return e->err from the callbacks that return an int.
 */
#ifndef RT_EXPORT_IMPL_H
#define RT_EXPORT_IMPL_H

#include <string.h>
#include <zlib.h>

#include "rt_export.h"
#include "rt_map.h"
#include "rt_walk.h"

#define RT_EX_WBUF 65536u          /* writer buffer: the largest block given to out() */
#define RT_EX_ROOT UINT32_MAX      /* parent of a root node */

/* One function slot, indexed by fid. Every string is owned. */
typedef struct rt_ex_fn {
    char *name;          /* display name (UTF-8, as given) */
    char *sys;           /* system name, NULL: name */
    char *file;          /* NULL if none */
    char *label;         /* folded frame text, sanitised */
    char *jname;         /* name as a JSON string literal, quotes included */
    char *pre;           /* the format's own prefix for this function (chrome: the start
                            of its X events), built by ops->fn_ready; NULL if none */
    size_t label_len, jname_len, pre_len;
    int64_t line;
    int kind;            /* RT_FUNC_* */
    int defined;         /* described by rt_export_add_function */
    int ready;           /* derived strings (label, jname, pre) built */
    int used;            /* appears in a span */
    uint32_t frame;      /* SPEEDSCOPE: its frame index + 1; 0 before its first span */
} rt_ex_fn;

/* A process of the trace as the merged call trees keep it (rt_export_set_process). */
typedef struct rt_ex_proc {
    int64_t pid;
    char *frame;         /* owned: the root frame's text, NULL for none */
    size_t frame_len;
} rt_ex_proc;

/* A call-tree node's fid at the root of a process's stacks: RT_EX_PROC_FID | index
 * into e->procs (never a function's fid: those are below 2^31). */
#define RT_EX_PROC_FID 0x80000000u
#define RT_EX_IS_PROC(fid) (((fid) & RT_EX_PROC_FID) != 0)

/* A call-tree node: one distinct stack (aggregated formats). */
typedef struct rt_ex_node {
    uint32_t parent;     /* node index, RT_EX_ROOT for a root */
    uint32_t fid;
    uint64_t calls;      /* spans here that began a call */
    int64_t total_ns;    /* time of the spans here, children included */
    int64_t self_ns;     /* time of the spans here, children excluded */
} rt_ex_node;

/* What the core keeps for an open span at one depth. */
typedef struct rt_ex_depth {
    int64_t child;       /* time of the children closed so far (ns) */
    uint32_t node;       /* its call-tree node (aggregated formats) */
} rt_ex_depth;

/*
 * What a format does at each step. Every callback may be NULL (nothing to
 * write then). The core has already done its own part when it calls one:
 * span counters, times, the depth stack and, for aggregated formats, the trie.
 */
typedef struct rt_export_ops {
    const char *name;    /* the format's name ("chrome", ...) */
    int aggregated;      /* 1: the core builds the call-tree trie from the spans */
    int by_process;      /* the trie's stacks kept apart per process (rt_export_set_process):
                            1 for a process with a root frame, 2 for every process */
    int gzip;            /* 1: the writer gzips the output */
    size_t state_size;   /* bytes of the format's own state (e->state, zeroed at creation) */
    /* Release what the format's state owns (not the state itself). */
    void (*free_state)(rt_export *e);
    /* Build f->pre (and anything else per function) once its name is known. */
    int (*fn_ready)(rt_export *e, rt_ex_fn *f);
    /* The start of the output, before the first thread (or the end). */
    void (*header)(rt_export *e);
    /* A thread begins (e->thread_idx and e->tid are set); `name` may be NULL. */
    int (*thread_begin)(rt_export *e, const char *name);
    /* A span opens at `depth` (0 = root). */
    int (*open)(rt_export *e, const rt_span *s, size_t depth);
    /* The span at `depth` closes at time t after `dur` ns; `how` is RT_END_*. */
    int (*close)(rt_export *e, const rt_span *s, size_t depth, int64_t t, int64_t dur, int how);
    /* The current thread's stream ended (its spans are closed). */
    void (*thread_end)(rt_export *e);
    /* The end of the output. */
    void (*finish)(rt_export *e);
} rt_export_ops;

/* The formats (one file each), indexed by RT_EXPORT_* in rt_export.c. */
extern const rt_export_ops rt_export_chrome_ops;
extern const rt_export_ops rt_export_speedscope_ops;
extern const rt_export_ops rt_export_folded_ops;
extern const rt_export_ops rt_export_pprof_ops;
extern const rt_export_ops rt_export_json_ops;

struct rt_export {
    rt_export_opts o;                  /* copied; o.name/o.exporter cleared (see below) */
    const rt_export_ops *ops;          /* borrowed: the format */
    void *state;                       /* owned: the format's state, ops->state_size bytes */
    char *name, *exporter;             /* owned copies of opts->name / opts->exporter, or NULL */
    const rt_allocator *a;             /* borrowed */
    int stage;                         /* RT_EX_NEW, RT_EX_READY, RT_EX_THREAD, RT_EX_DONE */
    int err;                           /* first error (RT_OK while none) */
    char errstr[200];

    /* buffered writer */
    rt_export_out_fn out;
    void *out_ctx;
    uint8_t *buf;                      /* RT_EX_WBUF bytes, owned */
    size_t blen;
    z_stream *zs;                      /* gzip: owned, deflate state; NULL when not gzipping */
    uint8_t *zbuf;                     /* gzip: RT_EX_WBUF bytes of compressed output, owned */

    /* functions */
    rt_ex_fn *fns;                     /* owned, nfns slots */
    size_t nfns;
    uint32_t max_defined;              /* highest described fid + 1 */

    /* current thread */
    rt_walker w;
    int walker_live;
    int64_t tid;
    int64_t pid;                       /* the current thread's process (CHROME pid) */
    uint32_t thread_idx;
    int64_t t_first, t_last;           /* first span start and last event of the thread (ns) */
    int have_t;
    uint64_t thread_calls;             /* spans of the thread that began a call */
    int nthreads;                      /* threads begun */
    int first_item;                    /* no separator needed before the next array item */

    rt_ex_depth *depth;                /* owned; per open span depth, `dcap` entries */
    size_t dcap;

    /* processes (rt_export_set_process; formats with ops->by_process) */
    rt_ex_proc *procs;                 /* owned, nprocs of pcap */
    size_t nprocs, pcap;
    int cur_proc;                      /* index of the current process, -1 for none */
    uint32_t thread_root;              /* trie parent of the thread's root spans */

    /* call-tree trie (aggregated formats) */
    rt_ex_node *nodes;                 /* owned, `nnodes` of `ncap` */
    size_t nnodes, ncap;
    rt_map index;                      /* (parent+1)<<32 | fid -> node index */

    uint32_t *path;                    /* owned scratch: fids of a stack, leaf first */
    size_t path_cap;

    rt_export_stats st;
};

enum { RT_EX_NEW = 0, RT_EX_READY = 1, RT_EX_THREAD = 2, RT_EX_DONE = 3 };

/* ------------------------------------------------------------ errors */

/* Record the first error (printf-style message); returns e->err. */
int rt_ex_fail(rt_export *e, int rc, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* rt_ex_fail(e, RT_ERR_NOMEM, "out of memory"). */
int rt_ex_nomem(rt_export *e);

/* ------------------------------------------------------------ writer */

/* Hand the buffer to the output (through gzip when on). */
void rt_ex_flush(rt_export *e);

/* Room for n bytes (n <= RT_EX_WBUF) at the end of the buffer, or NULL after
 * an error. Write there, then rt_ex_commit with the new end. */
RT_INLINE uint8_t *rt_ex_reserve(rt_export *e, size_t n)
{
    if (RT_UNLIKELY(e->err))
        return NULL;
    if (RT_UNLIKELY(RT_EX_WBUF - e->blen < n)) {
        rt_ex_flush(e);
        if (e->err)
            return NULL;
    }
    return e->buf + e->blen;
}

RT_INLINE void rt_ex_commit(rt_export *e, const uint8_t *end) { e->blen = (size_t)(end - e->buf); }

/* Write n bytes / a NUL-terminated string / a decimal integer. */
void rt_ex_bytes(rt_export *e, const void *data, size_t n);
void rt_ex_str(rt_export *e, const char *s);
void rt_ex_i64(rt_export *e, int64_t v);

/* Write s as a JSON string literal (quotes included); NULL writes null. */
void rt_ex_jstr(rt_export *e, const char *s);

/* ",\n" before every array item but the first (e->first_item). */
void rt_ex_sep(rt_export *e);

/* Decimal digits of v at p (room: 20 bytes, 21 signed); returns the new end. */
RT_INLINE uint8_t *rt_ex_put_u64(uint8_t *p, uint64_t v)
{
    uint8_t tmp[20];
    int n = 0;
    do {
        tmp[n++] = (uint8_t)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

RT_INLINE uint8_t *rt_ex_put_i64(uint8_t *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return rt_ex_put_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return rt_ex_put_u64(p, (uint64_t)v);
}

/* ------------------------------------------------------------ helpers */

/* A copy of s from the exporter's allocator, or NULL. */
char *rt_ex_strdup(const rt_allocator *a, const char *s);

/* Fill e->path with the fids from node i up to its root (leaf first);
 * returns the depth (0 after an allocation failure, e->err set). */
size_t rt_ex_node_path(rt_export *e, uint32_t i);

/* Forget the trie (the JSON format's per-thread trees). */
void rt_ex_trie_reset(rt_export *e);

#endif
