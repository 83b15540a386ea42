/*
 * rt_engine.c -- call stacks, profile aggregation and stream encoding.
 *
 * Profile accounting follows cProfile (Modules/_lsprof.c): each activation
 * ("slice") of a call adds its own time (slice minus callees) to own_ns; the
 * slice's total time is added to cum_ns only when no other activation of the
 * same function (resp. edge) is open on the thread, which makes cumulative
 * time correct under recursion. A generator or coroutine is one call made
 * of several slices: each slice is accounted when it ends (yield or return);
 * the call is counted once, when it finishes.
 */
#include <stdio.h>
#include <string.h>

#include "rt_engine.h"
#include "rt_stream.h"

/* Frame flags: how the call stream treats a frame and its callees. */
#define RT_FR_REC 1u    /* this call is written to the stream */
#define RT_FR_SCOPE 2u  /* calls made from here to outside the scope may be written */
#define RT_FR_ONLY 4u   /* inside a function named by --only-functions */
#define RT_FR_HIDE 8u   /* inside hidden import machinery */

/* How far rt_exit looks below the innermost frame for a lost exit. */
#define RT_EXIT_SEARCH 8

typedef struct rt_frame {
    uint32_t fid;          /* function */
    uint32_t flags;        /* RT_FR_* */
    uint32_t edge;         /* index of (caller -> fid) in the thread's edges */
    int64_t t0;            /* start of the current slice (ns) */
    int64_t child;         /* time spent in callees during the current slice (ns) */
    uint64_t call_no;      /* stream call number, when RT_FR_REC */
} rt_frame;

/* A suspended generator or coroutine call. */
typedef struct rt_genrec {
    uint32_t fid;         /* function */
    uint32_t caller;      /* caller fid of the original call (edge key) */
    uint32_t flags;       /* frame flags at suspension */
    uint32_t thread_idx;  /* thread whose stream holds the call */
    uint64_t call_no;     /* stream call number in that thread */
    uint32_t next_free;   /* free-list link when unused */
    uint8_t fn_rec;       /* the last slice ended inside another activation of fid */
    uint8_t edge_rec;     /* ... of the edge */
} rt_genrec;

struct rt_thread {
    rt_thread_head head;       /* depth (frames in use) and idx: first, readable inline */
    rt_engine *e;              /* borrowed: the owning engine */
    uint64_t ident, native_id; /* as given */
    rt_frame *stack;           /* owned; `cap` frames, `head.depth` in use */
    size_t cap;
    rt_fstat *fs;              /* owned; per-fid counters, `fcap` entries */
    size_t fcap;
    rt_edge *edges;            /* owned; `nedges` in use of `edgecap` */
    size_t edgecap;
    uint32_t nedges;
    rt_map edge_map;           /* (caller<<32|callee) -> edge index */
    uint32_t root_last_callee; /* edge cache for calls without caller */
    uint32_t root_last_edge;
    uint8_t *buf, *pos, *end;  /* owned chunk buffer; end = buf + chunk_size */
    int64_t last_t;            /* time of the last event written (ns) */
    uint64_t n_events;         /* events written, all chunks */
    uint64_t chunk_events;     /* events in the current chunk */
    int64_t flush_at;          /* the current chunk goes to the sink at an event after this
                                  time (its start + cfg.flush_ns; INT64_MAX: when full only) */
    uint64_t stream_calls;     /* ENTER/ENTER_CONT written: the next call number */
    uint64_t sunk_calls;       /* stream_calls when the last chunk reached the sink */
    uint32_t seq;              /* chunks handed to the sink */
};

struct rt_engine {
    rt_config cfg;             /* copied at creation */
    const rt_allocator *alloc; /* borrowed */
    uint32_t *fflags;          /* owned; RT_F_* per fid, `fcap` entries */
    size_t fcap;
    uint32_t nfuncs;
    rt_thread **threads;       /* owned array of owned threads, `tcap` slots */
    size_t tcap;
    uint32_t nthreads;
    rt_map gens;               /* key -> genpool index of suspended calls */
    rt_genrec *genpool;        /* owned; `gencap` records */
    size_t gencap;
    uint32_t gen_free;         /* free list head (UINT32_MAX: none) */
    int finished;              /* 1 after rt_engine_finish or a fatal error */
    int stream_on;             /* 0 after a sink error, once the sink is full, or without sink */
    int stream_full;           /* 1 once the sink returned RT_SINK_FULL */
    int err;                   /* RT_OK or RT_ERR_* */
    char errstr[160];          /* message for err */
};

/* ------------------------------------------------------------------ errors */

static void rt__fail(rt_engine *e, int code, const char *msg, int fatal)
{
    if (e->err == RT_OK) {
        e->err = code;
        snprintf(e->errstr, sizeof e->errstr, "%s", msg);
    }
    if (fatal)
        e->finished = 1;
}

int rt_engine_error(const rt_engine *e, const char **errstr)
{
    if (errstr)
        *errstr = e->err == RT_OK ? "" : e->errstr;
    return e->err;
}

/* --------------------------------------------------------------- lifecycle */

rt_engine *rt_engine_new(const rt_config *cfg)
{
    const rt_allocator *a = cfg->alloc ? cfg->alloc : rt_default_allocator();
    rt_engine *e = rt_malloc(a, sizeof *e);
    if (!e)
        return NULL;
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    e->alloc = a;
    if (e->cfg.chunk_size == 0)
        e->cfg.chunk_size = 256 * 1024;
    if (e->cfg.chunk_size < 256)
        e->cfg.chunk_size = 256;
    if (e->cfg.chunk_size > SIZE_MAX / 2)
        e->cfg.chunk_size = SIZE_MAX / 2; /* the buffer size below must not wrap */
    e->stream_on = cfg->sink != NULL;
    e->gen_free = UINT32_MAX;
    rt_map_init(&e->gens, a);
    return e;
}

static void rt__thread_free(rt_engine *e, rt_thread *t)
{
    rt_free(e->alloc, t->stack);
    rt_free(e->alloc, t->fs);
    rt_free(e->alloc, t->edges);
    rt_map_free(&t->edge_map);
    rt_free(e->alloc, t->buf);
    rt_free(e->alloc, t);
}

void rt_engine_free(rt_engine *e)
{
    if (!e)
        return;
    for (uint32_t i = 0; i < e->nthreads; i++)
        rt__thread_free(e, e->threads[i]);
    rt_free(e->alloc, e->threads);
    rt_free(e->alloc, e->fflags);
    rt_free(e->alloc, e->genpool);
    rt_map_free(&e->gens);
    rt_free(e->alloc, e);
}

int rt_engine_set_func(rt_engine *e, uint32_t fid, uint32_t flags)
{
    if (fid == RT_ROOT)
        return RT_ERR_STATE;
    if (fid >= e->fcap) {
        size_t old = e->fcap;
        if (rt_grow(e->alloc, (void **)&e->fflags, &e->fcap, (size_t)fid + 1, sizeof *e->fflags, 256) != RT_OK)
            return RT_ERR_NOMEM;
        memset(e->fflags + old, 0, (e->fcap - old) * sizeof *e->fflags);
    }
    e->fflags[fid] = flags;
    if (fid >= e->nfuncs)
        e->nfuncs = fid + 1;
    return RT_OK;
}

uint32_t rt_engine_nfuncs(const rt_engine *e) { return e->nfuncs; }

/* ------------------------------------------------------------------ stream */

RT_INLINE void rt__put_time(rt_thread *t)
{
    int64_t f = t->e->cfg.flush_ns;
    t->flush_at = f > 0 && t->last_t <= INT64_MAX - f ? t->last_t + f : INT64_MAX;
    t->pos = rt_varint_put(t->pos, ((uint64_t)t->last_t << 3) | RT_EV_TIME);
    t->chunk_events++;
    t->n_events++;
}

/* The current chunk never reaches the sink: its events and calls are not counted. */
static void rt__drop_chunk(rt_thread *t)
{
    t->n_events -= t->chunk_events;
    t->stream_calls = t->sunk_calls;
}

/* Hand the current chunk (`len` bytes) to the sink. */
static void rt__sink(rt_thread *t, size_t len)
{
    rt_engine *e = t->e;
    int rc = e->cfg.sink(e->cfg.sink_ctx, t->head.idx, t->seq, t->buf, len, t->chunk_events);
    if (rc == 0 || rc == RT_SINK_FULL) {
        t->sunk_calls = t->stream_calls;
        if (rc == RT_SINK_FULL) {
            e->stream_on = 0;
            e->stream_full = 1;
        }
    } else {
        e->stream_on = 0;
        rt__fail(e, RT_ERR_IO, "writing the call stream failed", 0);
        rt__drop_chunk(t);
    }
    t->seq++;
}

/* Hand the current chunk to the sink and start a new one. */
static void rt__flush(rt_thread *t)
{
    rt_engine *e = t->e;
    size_t len = (size_t)(t->pos - t->buf);
    if (len && e->stream_on)
        rt__sink(t, len);
    t->pos = t->buf;
    t->chunk_events = 0;
    rt__put_time(t);
}

/* Room for one more event (at time now): a full chunk, or one older than
 * cfg.flush_ns, goes to the sink first. */
RT_INLINE void rt__room(rt_thread *t, int64_t now)
{
    if (RT_UNLIKELY(t->end - t->pos < RT_EV_MAX_BYTES) || RT_UNLIKELY(now > t->flush_at))
        rt__flush(t);
}

RT_INLINE void rt__emit_fid(rt_thread *t, int tag, uint64_t payload, int64_t now)
{
    rt__room(t, now);
    t->pos = rt_varint_put(t->pos, (payload << 3) | (uint64_t)tag);
    t->pos = rt_varint_put(t->pos, (uint64_t)(now - t->last_t));
    t->last_t = now;
    t->chunk_events++;
    t->n_events++;
}

RT_INLINE void rt__emit_dt(rt_thread *t, int tag, int64_t now)
{
    rt__room(t, now);
    t->pos = rt_varint_put(t->pos, ((uint64_t)(now - t->last_t) << 3) | (uint64_t)tag);
    t->last_t = now;
    t->chunk_events++;
    t->n_events++;
}

/* ----------------------------------------------------------------- threads */

rt_thread *rt_engine_add_thread(rt_engine *e, uint64_t ident, uint64_t native_id, int64_t now)
{
    const rt_allocator *a = e->alloc;
    if (e->nthreads == UINT32_MAX ||
        rt_grow(a, (void **)&e->threads, &e->tcap, (size_t)e->nthreads + 1, sizeof *e->threads, 8) != RT_OK)
        return NULL;
    rt_thread *t = rt_malloc(a, sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->e = e;
    t->head.idx = e->nthreads;
    t->ident = ident;
    t->native_id = native_id;
    t->root_last_callee = RT_ROOT;
    rt_map_init(&t->edge_map, a);
    t->cap = 64;
    t->stack = rt_malloc(a, t->cap * sizeof *t->stack);
    t->buf = rt_malloc(a, e->cfg.chunk_size + RT_EV_MAX_BYTES);
    if (!t->stack || !t->buf) {
        rt__thread_free(e, t);
        return NULL;
    }
    t->pos = t->buf;
    t->end = t->buf + e->cfg.chunk_size;
    t->last_t = now < 0 ? 0 : now;
    rt__put_time(t);
    e->threads[e->nthreads++] = t;
    return t;
}



static int rt__grow_stack(rt_thread *t)
{
    return rt_grow(t->e->alloc, (void **)&t->stack, &t->cap, t->head.depth + 1, sizeof *t->stack, 64);
}

static int rt__grow_fs(rt_thread *t, uint32_t fid)
{
    size_t old = t->fcap;
    if (rt_grow(t->e->alloc, (void **)&t->fs, &t->fcap, (size_t)fid + 1, sizeof *t->fs, 256) != RT_OK)
        return RT_ERR_NOMEM;
    memset(t->fs + old, 0, (t->fcap - old) * sizeof *t->fs);
    for (size_t i = old; i < t->fcap; i++)
        t->fs[i].last_callee = RT_ROOT; /* no callee cached yet */
    return RT_OK;
}

static uint32_t rt__new_edge(rt_thread *t, uint32_t caller, uint32_t callee)
{
    /* edge indices are uint32 and UINT32_MAX means "none" */
    if (t->nedges >= UINT32_MAX - 1 ||
        rt_grow(t->e->alloc, (void **)&t->edges, &t->edgecap, (size_t)t->nedges + 1, sizeof *t->edges, 256) != RT_OK)
        return UINT32_MAX;
    uint32_t idx = t->nedges;
    if (rt_map_put(&t->edge_map, ((uint64_t)caller << 32) | callee, idx) != RT_OK)
        return UINT32_MAX;
    rt_edge *ed = &t->edges[idx];
    memset(ed, 0, sizeof *ed);
    ed->caller = caller;
    ed->callee = callee;
    t->nedges++;
    return idx;
}

static uint32_t rt__edge_lookup(rt_thread *t, uint32_t caller, uint32_t callee)
{
    uint64_t *v = rt_map_get(&t->edge_map, ((uint64_t)caller << 32) | callee);
    return v ? (uint32_t)*v : rt__new_edge(t, caller, callee);
}

/* ------------------------------------------------------------ the hot path */

/* Decide how the stream treats a new frame, from its caller's flags. */
RT_INLINE uint32_t rt__decide(const rt_engine *e, uint32_t pflags, uint32_t ff)
{
    uint32_t fl = pflags & (RT_FR_ONLY | RT_FR_HIDE);
    if (ff & RT_F_ONLY)
        fl |= RT_FR_ONLY;
    if (e->cfg.no_imports) {
        if (ff & RT_F_IMPORT)
            return fl | RT_FR_HIDE;
        if (ff & RT_F_MODULE)
            return fl | (pflags & RT_FR_SCOPE) | ((ff & RT_F_SCOPE) ? RT_FR_SCOPE : 0);
    }
    if (fl & RT_FR_HIDE)
        return fl;
    int rec;
    if (ff & RT_F_SCOPE) {
        fl |= RT_FR_SCOPE;
        rec = 1;
    } else {
        rec = !e->cfg.no_external && (pflags & RT_FR_SCOPE);
    }
    if (e->cfg.only_functions && !(fl & RT_FR_ONLY))
        rec = 0;
    return rec ? fl | RT_FR_REC : fl;
}

/* Push a frame for fid; returns it or NULL on a fatal error. */
RT_INLINE rt_frame *rt__push(rt_thread *t, uint32_t fid, uint32_t caller_override, int64_t now)
{
    rt_engine *e = t->e;
    if (RT_UNLIKELY(t->head.depth == t->cap) && rt__grow_stack(t) != RT_OK) {
        rt__fail(e, RT_ERR_NOMEM, "out of memory for a call stack", 1);
        return NULL;
    }
    if (RT_UNLIKELY(fid >= t->fcap) && rt__grow_fs(t, fid) != RT_OK) {
        rt__fail(e, RT_ERR_NOMEM, "out of memory for the profile", 1);
        return NULL;
    }
    rt_frame *parent = t->head.depth ? &t->stack[t->head.depth - 1] : NULL;
    uint32_t edge;
    if (caller_override != UINT32_MAX - 1) {
        edge = rt__edge_lookup(t, caller_override, fid);
    } else {
        /* the edge cache is per calling function: a recursive function's
         * activations share it */
        rt_fstat *pf = parent ? &t->fs[parent->fid] : NULL;
        uint32_t *cc = pf ? &pf->last_callee : &t->root_last_callee;
        uint32_t *ce = pf ? &pf->last_edge : &t->root_last_edge;
        if (*cc == fid) {
            edge = *ce;
        } else {
            edge = rt__edge_lookup(t, parent ? parent->fid : RT_ROOT, fid);
            *cc = fid;
            *ce = edge;
        }
    }
    if (RT_UNLIKELY(edge == UINT32_MAX)) {
        rt__fail(e, RT_ERR_NOMEM, "out of memory for the call graph", 1);
        return NULL;
    }
    rt_frame *f = &t->stack[t->head.depth++];
    f->fid = fid;
    f->edge = edge;
    f->t0 = now;
    f->child = 0;
    f->call_no = 0;
    t->fs[fid].level++;
    t->edges[edge].level++;
    (void)parent;
    return f;
}

/* rt_enter with `now` already on the thread's timeline. */
static void rt__enter(rt_thread *t, uint32_t fid, int64_t now)
{
    rt_engine *e = t->e;
    if (RT_UNLIKELY(e->finished))
        return;
    if (RT_UNLIKELY(now < t->last_t))
        now = t->last_t;
    uint32_t pflags = t->head.depth ? t->stack[t->head.depth - 1].flags : RT_FR_SCOPE;
    rt_frame *f = rt__push(t, fid, UINT32_MAX - 1, now);
    if (RT_UNLIKELY(!f))
        return;
    f->flags = rt__decide(e, pflags, fid < e->nfuncs ? e->fflags[fid] : 0);
    if ((f->flags & RT_FR_REC) && e->stream_on) {
        f->call_no = t->stream_calls;
        rt__emit_fid(t, RT_EV_ENTER, fid, now); /* may hand the chunk before it to the sink */
        t->stream_calls++;
    }
}

void rt_enter(rt_thread *t, uint32_t fid, int64_t now) { rt__enter(t, fid, now - t->head.paused); }

/* Account the slice of the innermost frame and pop it. Returns 1 if the
 * function (and the edge) had no other open activation (not recursive). */
RT_INLINE void rt__pop_slice(rt_thread *t, int64_t now, int *fn_rec, int *edge_rec)
{
    rt_frame *f = &t->stack[t->head.depth - 1];
    int64_t tt = now - f->t0;
    if (tt < 0)
        tt = 0;
    int64_t it = tt - f->child;
    rt_fstat *fs = &t->fs[f->fid];
    rt_edge *ed = &t->edges[f->edge];
    fs->own_ns += it;
    ed->own_ns += it;
    if (--fs->level == 0)
        fs->cum_ns += tt;
    if (--ed->level == 0)
        ed->cum_ns += tt;
    *fn_rec = fs->level != 0;
    *edge_rec = ed->level != 0;
    t->head.depth--;
    if (t->head.depth)
        t->stack[t->head.depth - 1].child += tt;
}

/* Close the innermost frame as a completed call. */
static void rt__close_top(rt_thread *t, int64_t now, int exc)
{
    rt_frame *f = &t->stack[t->head.depth - 1];
    uint32_t fid = f->fid, edge = f->edge;
    if ((f->flags & RT_FR_REC) && t->e->stream_on)
        rt__emit_dt(t, exc ? RT_EV_EXIT_EXC : RT_EV_EXIT, now);
    int fn_rec, edge_rec;
    rt__pop_slice(t, now, &fn_rec, &edge_rec);
    t->fs[fid].calls++;
    t->edges[edge].calls++;
    if (!fn_rec)
        t->fs[fid].prim_calls++;
    if (!edge_rec)
        t->edges[edge].prim_calls++;
}

/* Find fid among the innermost frames; returns its depth index or -1. */
RT_INLINE long rt__find(const rt_thread *t, uint32_t fid)
{
    if (RT_UNLIKELY(t->head.depth == 0))
        return -1;
    long top = (long)t->head.depth - 1;
    if (RT_LIKELY(t->stack[top].fid == fid))
        return top;
    for (long i = top - 1; i >= 0 && top - i <= RT_EXIT_SEARCH; i--)
        if (t->stack[i].fid == fid)
            return i;
    return -1;
}

/* Make fid's frame the innermost one: frames above it lost their exits and
 * are closed at *now (clamped to the thread's last event). Returns 0 if fid
 * is not open near the top (or the engine is finished): ignore the event. */
RT_INLINE int rt__unwind_to(rt_thread *t, uint32_t fid, int64_t *now, int exc)
{
    if (RT_UNLIKELY(t->e->finished))
        return 0;
    long i = rt__find(t, fid);
    if (RT_UNLIKELY(i < 0))
        return 0;
    if (RT_UNLIKELY(*now < t->last_t))
        *now = t->last_t;
    while ((long)t->head.depth - 1 > i)
        rt__close_top(t, *now, exc);
    return 1;
}

int rt_exit(rt_thread *t, uint32_t fid, int64_t now, int exc)
{
    now -= t->head.paused;
    if (!rt__unwind_to(t, fid, &now, exc))
        return 0;
    rt__close_top(t, now, exc);
    return 1;
}

/* ---------------------------------------------------------------- generators */

static uint32_t rt__gen_alloc(rt_engine *e)
{
    if (e->gen_free == UINT32_MAX) {
        size_t old = e->gencap;
        /* record indices are uint32 and UINT32_MAX ends the free list */
        if (old >= UINT32_MAX / 2 ||
            rt_grow(e->alloc, (void **)&e->genpool, &e->gencap, old + 1, sizeof *e->genpool, 64) != RT_OK)
            return UINT32_MAX;
        for (size_t i = old; i < e->gencap; i++)
            e->genpool[i].next_free = i + 1 < e->gencap ? (uint32_t)(i + 1) : UINT32_MAX;
        e->gen_free = (uint32_t)old;
    }
    uint32_t idx = e->gen_free;
    e->gen_free = e->genpool[idx].next_free;
    return idx;
}

static void rt__gen_release(rt_engine *e, uint32_t idx)
{
    e->genpool[idx].next_free = e->gen_free;
    e->gen_free = idx;
}

/* Remove the record suspended under key and return its index, or UINT32_MAX. */
static uint32_t rt__gen_take(rt_engine *e, uint64_t key)
{
    uint64_t *v = rt_map_get(&e->gens, key);
    if (!v)
        return UINT32_MAX;
    uint32_t idx = (uint32_t)*v;
    rt_map_del(&e->gens, key);
    return idx;
}

/* A suspended call ends without resuming: count it as a completed call. */
static void rt__gen_complete(rt_engine *e, uint32_t idx)
{
    rt_genrec *g = &e->genpool[idx];
    rt_thread *t = e->threads[g->thread_idx];
    /* recursive or not as when its last slice ended, like a call that returns
     * (the activations open now have nothing to do with it) */
    if (g->fid < t->fcap) {
        t->fs[g->fid].calls++;
        if (!g->fn_rec)
            t->fs[g->fid].prim_calls++;
    }
    uint32_t edge = rt__edge_lookup(t, g->caller, g->fid);
    if (edge != UINT32_MAX) {
        t->edges[edge].calls++;
        if (!g->edge_rec)
            t->edges[edge].prim_calls++;
    }
    rt__gen_release(e, idx);
}

int rt_suspend(rt_thread *t, uint32_t fid, uint64_t key, int64_t now)
{
    rt_engine *e = t->e;
    now -= t->head.paused;
    if (!rt__unwind_to(t, fid, &now, 0))
        return 0;
    uint32_t old = rt__gen_take(e, key);
    if (old != UINT32_MAX)
        rt__gen_complete(e, old);
    uint32_t idx = rt__gen_alloc(e);
    int rc = idx == UINT32_MAX ? RT_ERR_NOMEM : rt_map_put(&e->gens, key, idx);
    if (rc != RT_OK) {
        /* cannot be remembered: the call ends here (RT_ERR_STATE: the
         * reserved key RT_MAP_EMPTY, which no resume can name either) */
        if (idx != UINT32_MAX)
            rt__gen_release(e, idx);
        rt__close_top(t, now, 0);
        if (rc == RT_ERR_NOMEM)
            rt__fail(e, RT_ERR_NOMEM, "out of memory for suspended generators", 0);
        return 1;
    }
    rt_frame *f = &t->stack[t->head.depth - 1];
    rt_genrec *g = &e->genpool[idx];
    g->fid = f->fid;
    g->caller = t->edges[f->edge].caller;
    g->flags = f->flags;
    g->thread_idx = t->head.idx;
    g->call_no = f->call_no;
    if ((f->flags & RT_FR_REC) && e->stream_on)
        rt__emit_dt(t, RT_EV_SUSPEND, now);
    int fn_rec, edge_rec;
    rt__pop_slice(t, now, &fn_rec, &edge_rec);
    g->fn_rec = (uint8_t)fn_rec;
    g->edge_rec = (uint8_t)edge_rec;
    return 1;
}

void rt_resume(rt_thread *t, uint32_t fid, uint64_t key, int64_t now)
{
    rt_engine *e = t->e;
    if (RT_UNLIKELY(e->finished))
        return;
    now -= t->head.paused;
    uint32_t idx = rt__gen_take(e, key);
    if (idx == UINT32_MAX) {
        rt__enter(t, fid, now);
        return;
    }
    rt_genrec g = e->genpool[idx];
    if (g.fid != fid) { /* a stale record under a reused key */
        rt__gen_complete(e, idx);
        rt__enter(t, fid, now);
        return;
    }
    rt__gen_release(e, idx);
    if (RT_UNLIKELY(now < t->last_t))
        now = t->last_t;
    rt_frame *f = rt__push(t, fid, g.caller, now);
    if (RT_UNLIKELY(!f))
        return;
    f->flags = g.flags;
    if ((g.flags & RT_FR_REC) && e->stream_on) {
        if (g.thread_idx == t->head.idx) {
            f->call_no = g.call_no;
            rt__emit_fid(t, RT_EV_RESUME, t->stream_calls - g.call_no, now);
        } else {
            f->call_no = t->stream_calls;
            rt__emit_fid(t, RT_EV_ENTER_CONT, fid, now);
            t->stream_calls++;
        }
    }
}

int64_t rt_thread_call_no(const rt_thread *t)
{
    if (t->head.depth == 0 || !t->e->stream_on)
        return -1;
    const rt_frame *f = &t->stack[t->head.depth - 1];
    return (f->flags & RT_FR_REC) ? (int64_t)f->call_no : -1;
}

void rt_forget(rt_engine *e, uint64_t key)
{
    uint32_t idx = rt__gen_take(e, key);
    if (idx != UINT32_MAX)
        rt__gen_complete(e, idx);
}

/* ---------------------------------------------------------------- finishing */

int rt_engine_finish(rt_engine *e, int64_t now)
{
    if (e->finished && e->err == RT_OK)
        return RT_OK;
    int was_fatal = e->finished;
    e->finished = 0; /* allow closing frames */
    for (uint32_t i = 0; i < e->nthreads; i++) {
        rt_thread *t = e->threads[i];
        int64_t tnow = now - t->head.paused;
        if (tnow < t->last_t)
            tnow = t->last_t;
        while (t->head.depth && !was_fatal)
            rt__close_top(t, tnow, 0);
    }
    for (size_t s = 0; s < e->gens.cap; s++) {
        if (e->gens.slots[s].key != RT_MAP_EMPTY)
            rt__gen_complete(e, (uint32_t)e->gens.slots[s].value);
    }
    rt_map_free(&e->gens);
    for (uint32_t i = 0; i < e->nthreads; i++) {
        rt_thread *t = e->threads[i];
        if (e->stream_on && t->pos > t->buf && t->chunk_events > 1) {
            rt__sink(t, (size_t)(t->pos - t->buf));
        } else {
            rt__drop_chunk(t);
        }
        t->pos = t->buf;
        t->chunk_events = 0;
    }
    e->finished = 1;
    return e->err;
}

uint32_t rt_engine_nthreads(const rt_engine *e) { return e->nthreads; }

int rt_engine_stream_full(const rt_engine *e) { return e->stream_full; }

int rt_engine_thread_info(const rt_engine *e, uint32_t idx, rt_thread_info *out)
{
    if (idx >= e->nthreads)
        return RT_ERR_STATE;
    const rt_thread *t = e->threads[idx];
    out->idx = idx;
    out->ident = t->ident;
    out->native_id = t->native_id;
    out->n_events = t->n_events;
    out->stream_calls = t->stream_calls;
    out->chunks = t->seq;
    out->paused_ns = t->head.paused;
    return RT_OK;
}

int rt_engine_profile(const rt_engine *e, rt_fstat **fstats, rt_edge **edges, size_t *n_edges)
{
    const rt_allocator *a = e->alloc;
    size_t nf = e->nfuncs ? e->nfuncs : 1;
    rt_fstat *fs = rt_malloc(a, nf * sizeof *fs);
    if (!fs)
        return RT_ERR_NOMEM;
    memset(fs, 0, nf * sizeof *fs);
    rt_map idx;
    rt_map_init(&idx, a);
    size_t cap = 256, n = 0;
    rt_edge *out = rt_malloc(a, cap * sizeof *out);
    if (!out) {
        rt_free(a, fs);
        return RT_ERR_NOMEM;
    }
    for (uint32_t ti = 0; ti < e->nthreads; ti++) {
        const rt_thread *t = e->threads[ti];
        for (uint32_t f = 0; f < t->fcap && f < e->nfuncs; f++) {
            fs[f].calls += t->fs[f].calls;
            fs[f].prim_calls += t->fs[f].prim_calls;
            fs[f].own_ns += t->fs[f].own_ns;
            fs[f].cum_ns += t->fs[f].cum_ns;
        }
        for (uint32_t k = 0; k < t->nedges; k++) {
            const rt_edge *src = &t->edges[k];
            uint64_t key = ((uint64_t)src->caller << 32) | src->callee;
            uint64_t *v = rt_map_get(&idx, key);
            rt_edge *dst;
            if (v) {
                dst = &out[*v];
            } else {
                if (rt_grow(a, (void **)&out, &cap, n + 1, sizeof *out, 256) != RT_OK)
                    goto nomem;
                if (rt_map_put(&idx, key, n) != RT_OK)
                    goto nomem;
                dst = &out[n++];
                memset(dst, 0, sizeof *dst);
                dst->caller = src->caller;
                dst->callee = src->callee;
            }
            dst->calls += src->calls;
            dst->prim_calls += src->prim_calls;
            dst->own_ns += src->own_ns;
            dst->cum_ns += src->cum_ns;
        }
    }
    rt_map_free(&idx);
    *fstats = fs;
    *edges = out;
    *n_edges = n;
    return RT_OK;
nomem:
    rt_map_free(&idx);
    rt_free(a, fs);
    rt_free(a, out);
    return RT_ERR_NOMEM;
}

void rt_engine_free_profile(const rt_engine *e, rt_fstat *fstats, rt_edge *edges)
{
    rt_free(e->alloc, fstats);
    rt_free(e->alloc, edges);
}
