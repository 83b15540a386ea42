/*
 * rt_walk.h -- turn one thread's call stream into properly nested spans.
 *
 * The call stream (rt_stream.h, docs/call-stream.md) is a sequence of
 * ENTER/EXIT/SUSPEND/RESUME events. A generator or coroutine call can be
 * suspended and resumed many times, possibly by different callers, so a call
 * is not always one interval of time. The walker cuts the stream into *spans*:
 * a span is one uninterrupted slice of a call, from its ENTER or RESUME to its
 * EXIT, EXIT_EXC or SUSPEND. Spans of a thread nest like a call tree (a resumed
 * generator's slice lies inside the span of the call that resumed it), which is
 * what every consumer needs: exporters (chrome, speedscope, folded stacks,
 * pprof) and pattern folding.
 *
 * Usage: rt_walker_init(); feed the thread's chunks in order with
 * rt_walker_feed(); rt_walker_finish() closes the spans still open.
 * The visitor's callbacks may return non-zero to stop the walk; that value is
 * returned by feed/finish. Memory: the open-span stack plus one map entry per
 * suspended call -- it does not grow with the number of events.
 */
#ifndef RT_WALK_H
#define RT_WALK_H

#include "rt_common.h"
#include "rt_map.h"
#include "rt_stream.h"

/* How a span begins. */
enum { RT_SPAN_CALL = 0, RT_SPAN_RESUME = 1, RT_SPAN_CONT = 2 };
/* How a span ends. */
enum { RT_END_RETURN = 0, RT_END_RAISE = 1, RT_END_SUSPEND = 2, RT_END_OPEN = 3 };

typedef struct rt_span {
    uint32_t fid;      /* function id */
    int kind;          /* RT_SPAN_* */
    uint64_t call_no;  /* call number of the call this span belongs to */
    int64_t t0;        /* time the span began (ns since the trace origin) */
} rt_span;

typedef struct rt_walk_visitor {
    void *ud;
    /* A span begins; `depth` is the number of spans open around it (0 = root). */
    int (*open)(void *ud, const rt_span *s, size_t depth);
    /* The innermost span ends at time t; `how` is RT_END_*. */
    int (*close)(void *ud, const rt_span *s, size_t depth, int64_t t, int how);
} rt_walk_visitor;

typedef struct rt_walker {
    rt_walk_visitor v;
    const rt_allocator *alloc;
    rt_span *stack;        /* open spans, innermost last */
    size_t depth, cap;
    rt_map suspended;      /* call number -> fid of suspended calls */
    uint64_t calls;        /* ENTER + ENTER_CONT events so far */
    int64_t t;             /* time of the last event */
    uint64_t events;       /* events decoded */
    uint64_t anomalies;    /* events that did not fit (EXIT with no open span,
                              RESUME of an unknown call); skipped */
} rt_walker;

void rt_walker_init(rt_walker *w, const rt_walk_visitor *v, const rt_allocator *alloc);
void rt_walker_free(rt_walker *w);

/* Decode one chunk and report its spans. RT_OK, RT_ERR_DATA (malformed chunk),
 * RT_ERR_NOMEM, or a visitor's non-zero return value. */
int rt_walker_feed(rt_walker *w, const uint8_t *data, size_t len);

/* Close every span still open at the time of the last event (how RT_END_OPEN). */
int rt_walker_finish(rt_walker *w);

#endif
