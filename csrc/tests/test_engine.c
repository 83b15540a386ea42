/*
 * test_engine.c -- the tracing engine: call stream, profile, generators,
 * lost exits, chunking, stream filters, finish, allocation and sink failure.
 *
 * Time is a fake clock: every event gets an explicit `now` (ns). Chunks go
 * to a sink that keeps them in memory; they are decoded back with
 * rt_stream_reader and compared with the expected events.
 */
#include <stdlib.h>

#include "../rt_engine.h"
#include "../rt_stream.h"
#include "rt_test.h"
#include "rt_test_util.h"

/* ------------------------------------------------------------- fixtures */

typedef struct fx {
    test_sink sink;
    test_alloc ta;
    rt_engine *e;
} fx;

/* An engine with the test sink and the counting allocator. `cfg` may be
 * NULL (chunk 4096, no filters); its sink/alloc fields are replaced. */
static rt_engine *fx_init(fx *x, const rt_config *cfg)
{
    test_sink_init(&x->sink);
    test_alloc_init(&x->ta);
    rt_config c;
    memset(&c, 0, sizeof c);
    if (cfg)
        c = *cfg;
    else
        c.chunk_size = 4096;
    c.sink = test_sink_fn;
    c.sink_ctx = &x->sink;
    c.alloc = &x->ta.a;
    x->e = rt_engine_new(&c);
    return x->e;
}

/* Free the engine and check every block came back. */
static void fx_free(fx *x)
{
    rt_engine_free(x->e);
    x->e = NULL;
    CHECK_MSG(x->ta.live == 0, "%ld blocks leaked by the engine", x->ta.live);
    test_sink_free(&x->sink);
}

static void declare(rt_engine *e, uint32_t first, uint32_t n, uint32_t flags)
{
    for (uint32_t f = first; f < first + n; f++)
        CHECK_EQ_I(rt_engine_set_func(e, f, flags), RT_OK);
}

typedef struct prof {
    rt_fstat *fs;
    rt_edge *ed;
    size_t ne;
    uint32_t nf;
} prof;

static int prof_get(const rt_engine *e, prof *p)
{
    memset(p, 0, sizeof *p);
    p->nf = rt_engine_nfuncs(e);
    return rt_engine_profile(e, &p->fs, &p->ed, &p->ne);
}

static void prof_free(const rt_engine *e, prof *p)
{
    rt_engine_free_profile(e, p->fs, p->ed);
    memset(p, 0, sizeof *p);
}

static const rt_edge *prof_edge(const prof *p, uint32_t caller, uint32_t callee)
{
    for (size_t i = 0; i < p->ne; i++)
        if (p->ed[i].caller == caller && p->ed[i].callee == callee)
            return &p->ed[i];
    return NULL;
}

static void check_fs_at(const char *file, int line, const prof *p, uint32_t fid, uint64_t calls,
                        uint64_t prim, int64_t own, int64_t cum)
{
    if (!rt_test_check(fid < p->nf, file, line, "fid %" PRIu32 " not in the profile", fid))
        return;
    const rt_fstat *s = &p->fs[fid];
    rt_test_check(s->calls == calls && s->prim_calls == prim && s->own_ns == own && s->cum_ns == cum,
                  file, line,
                  "fstat[%" PRIu32 "]: calls %" PRIu64 " prim %" PRIu64 " own %" PRId64 " cum %" PRId64
                  ", want %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRId64,
                  fid, s->calls, s->prim_calls, s->own_ns, s->cum_ns, calls, prim, own, cum);
}

static void check_edge_at(const char *file, int line, const prof *p, uint32_t caller, uint32_t callee,
                          uint64_t calls, uint64_t prim, int64_t own, int64_t cum)
{
    const rt_edge *ed = prof_edge(p, caller, callee);
    if (!rt_test_check(ed != NULL, file, line, "edge %" PRIu32 "->%" PRIu32 " missing", caller, callee))
        return;
    rt_test_check(ed->calls == calls && ed->prim_calls == prim && ed->own_ns == own && ed->cum_ns == cum,
                  file, line,
                  "edge %" PRIu32 "->%" PRIu32 ": calls %" PRIu64 " prim %" PRIu64 " own %" PRId64
                  " cum %" PRId64 ", want %" PRIu64 " %" PRIu64 " %" PRId64 " %" PRId64,
                  caller, callee, ed->calls, ed->prim_calls, ed->own_ns, ed->cum_ns, calls, prim, own, cum);
}

#define CHECK_FS(p, fid, calls, prim, own, cum) check_fs_at(__FILE__, __LINE__, (p), (fid), (calls), (prim), (own), (cum))
#define CHECK_EDGE(p, caller, callee, calls, prim, own, cum) \
    check_edge_at(__FILE__, __LINE__, (p), (caller), (callee), (calls), (prim), (own), (cum))

/* Expected events. */
#define EV_TIME(t) {RT_EV_TIME, 0, 0, (t)}
#define EV_ENTER(f, t) {RT_EV_ENTER, (f), 0, (t)}
#define EV_EXIT(t) {RT_EV_EXIT, 0, 0, (t)}
#define EV_EXC(t) {RT_EV_EXIT_EXC, 0, 0, (t)}
#define EV_SUSP(t) {RT_EV_SUSPEND, 0, 0, (t)}
#define EV_RES(back, t) {RT_EV_RESUME, 0, (back), (t)}
#define EV_CONT(f, t) {RT_EV_ENTER_CONT, (f), 0, (t)}

static const char *tag_name(int tag)
{
    static const char *names[] = {"ENTER", "EXIT", "EXIT_EXC", "SUSPEND", "RESUME", "TIME", "ENTER_CONT"};
    return tag >= 0 && tag <= 6 ? names[tag] : "?";
}

static int same_event(const rt_event *a, const rt_event *b)
{
    return a->tag == b->tag && a->fid == b->fid && a->back == b->back && a->t == b->t;
}

/* Decode thread `tidx`'s chunks (TIME events included) and compare. */
static void check_stream_at(const char *file, int line, const fx *x, uint32_t tidx, const rt_event *want,
                            size_t n)
{
    test_events got = {0};
    unsigned bad = test_decode_thread(&x->sink, tidx, &got, NULL);
    rt_test_check(bad == 0, file, line, "thread %" PRIu32 ": malformed chunks (flags %u)", tidx, bad);
    rt_test_check(got.n == n, file, line, "thread %" PRIu32 ": %zu events, want %zu", tidx, got.n, n);
    for (size_t i = 0; i < got.n && i < n; i++) {
        const rt_event *g = &got.ev[i], *w = &want[i];
        if (!rt_test_check(same_event(g, w), file, line,
                           "thread %" PRIu32 " event %zu: got %s fid %" PRIu32 " back %" PRIu64 " t %" PRId64
                           ", want %s fid %" PRIu32 " back %" PRIu64 " t %" PRId64,
                           tidx, i, tag_name(g->tag), g->fid, g->back, g->t, tag_name(w->tag), w->fid,
                           w->back, w->t))
            break;
    }
    test_events_free(&got);
}

#define CHECK_STREAM(x, tidx, ...)                                                          \
    do {                                                                                    \
        const rt_event want_[] = {__VA_ARGS__};                                             \
        check_stream_at(__FILE__, __LINE__, (x), (tidx), want_, sizeof want_ / sizeof want_[0]); \
    } while (0)

static rt_thread_info thread_info(const rt_engine *e, uint32_t idx)
{
    rt_thread_info ti;
    memset(&ti, 0, sizeof ti);
    CHECK_EQ_I(rt_engine_thread_info(e, idx, &ti), RT_OK);
    return ti;
}

/* ------------------------------------------------------------ call tree */

static void test_engine_call_tree(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    enum { MAIN, A, B, C };
    declare(e, 0, 4, RT_F_SCOPE);
    CHECK_EQ_U(rt_engine_nfuncs(e), 4);
    rt_thread *t = rt_engine_add_thread(e, 111, 222, 100);
    REQUIRE(t != NULL);
    CHECK_EQ_U(rt_engine_nthreads(e), 1);
    CHECK_EQ_U(rt_thread_depth(t), 0);
    rt_enter(t, MAIN, 110);
    rt_enter(t, A, 120);
    rt_enter(t, B, 130);
    CHECK_EQ_U(rt_thread_depth(t), 3);
    CHECK_EQ_I(rt_exit(t, B, 150, 0), 1);
    CHECK_EQ_I(rt_exit(t, A, 160, 0), 1);
    rt_enter(t, C, 170);
    CHECK_EQ_I(rt_exit(t, C, 175, 1), 1);
    CHECK_EQ_I(rt_exit(t, MAIN, 200, 0), 1);
    CHECK_EQ_U(rt_thread_depth(t), 0);
    /* nothing reaches the sink before a chunk is full or finish */
    CHECK_EQ_U(x.sink.n, 0);
    CHECK_EQ_I(rt_engine_finish(e, 300), RT_OK);
    CHECK_EQ_I(rt_engine_error(e, NULL), RT_OK);
    const char *msg = NULL;
    CHECK_EQ_I(rt_engine_error(e, &msg), RT_OK);
    CHECK(msg != NULL && msg[0] == 0);

    CHECK_STREAM(&x, 0, EV_TIME(100), EV_ENTER(MAIN, 110), EV_ENTER(A, 120), EV_ENTER(B, 130),
                 EV_EXIT(150), EV_EXIT(160), EV_ENTER(C, 170), EV_EXC(175), EV_EXIT(200));
    REQUIRE(x.sink.n == 1);
    CHECK_EQ_U(x.sink.chunks[0].thread_idx, 0);
    CHECK_EQ_U(x.sink.chunks[0].seq, 0);
    CHECK_EQ_U(x.sink.chunks[0].n_events, 9);
    rt_thread_info ti = thread_info(e, 0);
    CHECK_EQ_U(ti.idx, 0);
    CHECK_EQ_U(ti.ident, 111);
    CHECK_EQ_U(ti.native_id, 222);
    CHECK_EQ_U(ti.n_events, 9);
    CHECK_EQ_U(ti.stream_calls, 4);
    CHECK_EQ_U(ti.chunks, 1);
    CHECK_EQ_I(rt_engine_thread_info(e, 1, &ti), RT_ERR_STATE);

    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, MAIN, 1, 1, 45, 90);
    CHECK_FS(&p, A, 1, 1, 20, 40);
    CHECK_FS(&p, B, 1, 1, 20, 20);
    CHECK_FS(&p, C, 1, 1, 5, 5);
    CHECK_EQ_U(p.ne, 4);
    CHECK_EDGE(&p, RT_ROOT, MAIN, 1, 1, 45, 90);
    CHECK_EDGE(&p, MAIN, A, 1, 1, 20, 40);
    CHECK_EDGE(&p, A, B, 1, 1, 20, 20);
    CHECK_EDGE(&p, MAIN, C, 1, 1, 5, 5);
    prof_free(e, &p);
    fx_free(&x);
}

/* Times earlier than the thread's previous event are clamped. */
static void test_engine_time_clamped(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    declare(e, 0, 2, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 100);
    REQUIRE(t != NULL);
    rt_enter(t, 0, 50);  /* before the thread's start */
    rt_enter(t, 1, 200);
    rt_exit(t, 1, 150, 0);
    rt_exit(t, 0, 300, 0);
    CHECK_EQ_I(rt_engine_finish(e, 10), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(100), EV_ENTER(0, 100), EV_ENTER(1, 200), EV_EXIT(200), EV_EXIT(300));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, 0, 1, 1, 200, 200);
    CHECK_FS(&p, 1, 1, 1, 0, 0);
    prof_free(e, &p);
    fx_free(&x);
}

/* ---------------------------------------------------------- the pause */

/* The caller's own work (capture) is taken out of the running call and of
 * every caller: the clock pauses. The injected clock says when each event
 * happened; the work in between is declared with rt_thread_pause. */
static void test_engine_pause_profile_and_stream(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    enum { MAIN, A, B };
    declare(e, 0, 3, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 100);
    REQUIRE(t != NULL);
    CHECK_EQ_I(rt_thread_paused(t), 0);
    rt_enter(t, MAIN, 100);
    rt_enter(t, A, 110);
    rt_thread_pause(t, 1000);        /* capturing A's arguments: 110 .. 1110 */
    CHECK_EQ_I(rt_thread_time(t, 1110), 110);
    rt_enter(t, B, 1120);            /* timeline 120 */
    rt_exit(t, B, 1130, 0);          /* timeline 130 */
    rt_thread_pause(t, 500);         /* capturing B's outcome: 1130 .. 1630 */
    rt_exit(t, A, 1640, 0);          /* timeline 140 */
    rt_thread_pause(t, 300);
    rt_thread_pause(t, 0);           /* ignored */
    rt_thread_pause(t, -5);          /* ignored */
    CHECK_EQ_I(rt_thread_paused(t), 1800);
    rt_exit(t, MAIN, 1950, 0);       /* timeline 150 */
    CHECK_EQ_I(rt_engine_finish(e, 5000), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(100), EV_ENTER(MAIN, 100), EV_ENTER(A, 110), EV_ENTER(B, 120), EV_EXIT(130),
                 EV_EXIT(140), EV_EXIT(150));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, MAIN, 1, 1, 20, 50);
    CHECK_FS(&p, A, 1, 1, 20, 30);
    CHECK_FS(&p, B, 1, 1, 10, 10);
    CHECK_EDGE(&p, MAIN, A, 1, 1, 20, 30);
    prof_free(e, &p);
    CHECK_EQ_I(thread_info(e, 0).paused_ns, 1800);
    fx_free(&x);
}

/* A pause on one thread moves only that thread's later events; a pause
 * inside a generator's slice is out of the generator and of its consumer;
 * finish closes open calls on each thread's timeline. */
static void test_engine_pause_threads_generators_finish(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    enum { MAIN, GEN, W };
    declare(e, 0, 3, RT_F_SCOPE);
    rt_engine_set_func(e, GEN, RT_F_SCOPE | RT_F_GEN);
    rt_thread *t1 = rt_engine_add_thread(e, 1, 1, 0);
    rt_thread *t2 = rt_engine_add_thread(e, 2, 2, 0);
    REQUIRE(t1 && t2);
    rt_enter(t1, MAIN, 0);
    rt_enter(t2, W, 5);
    rt_enter(t1, GEN, 10);
    rt_thread_pause(t1, 100);               /* capture at the generator's start */
    CHECK_EQ_I(rt_suspend(t1, GEN, 0xAB, 120), 1); /* timeline 20 */
    rt_thread_pause(t1, 50);                /* capture of the yielded value */
    rt_resume(t1, GEN, 0xAB, 190);          /* timeline 40 */
    CHECK_EQ_I(rt_exit(t1, GEN, 200, 0), 1); /* timeline 50 */
    CHECK_EQ_I(rt_exit(t2, W, 300, 0), 1);  /* thread 2: not paused */
    /* a bogus pause longer than the gap: the next event is clamped, never earlier */
    rt_thread_pause(t1, 10000);
    rt_enter(t1, W, 260);                   /* timeline -9790: clamped to 50 */
    CHECK_EQ_I(rt_engine_finish(e, 10400), RT_OK); /* t1 timeline 10400 - 10150 = 250 */
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(MAIN, 0), EV_ENTER(GEN, 10), EV_SUSP(20), EV_RES(1, 40),
                 EV_EXIT(50), EV_ENTER(W, 50), EV_EXIT(250), EV_EXIT(250));
    CHECK_STREAM(&x, 1, EV_TIME(0), EV_ENTER(W, 5), EV_EXIT(300));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, GEN, 1, 1, 20, 20);
    CHECK_FS(&p, MAIN, 1, 1, 30, 250);
    CHECK_FS(&p, W, 2, 2, 295 + 200, 295 + 200);
    prof_free(e, &p);
    CHECK_EQ_I(thread_info(e, 0).paused_ns, 10150);
    CHECK_EQ_I(thread_info(e, 1).paused_ns, 0);
    fx_free(&x);
}

/* ------------------------------------------------------------- profile */

static void test_engine_profile_recursion(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    enum { F };
    declare(e, 0, 1, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    /* f(0..60) calls f(10..45) calls f(20..30) */
    rt_enter(t, F, 0);
    rt_enter(t, F, 10);
    rt_enter(t, F, 20);
    rt_exit(t, F, 30, 0);
    rt_exit(t, F, 45, 0);
    rt_exit(t, F, 60, 0);
    CHECK_EQ_I(rt_engine_finish(e, 100), RT_OK);
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    /* own: 10 + 25 + 25; cum only for the outermost call */
    CHECK_FS(&p, F, 3, 1, 60, 60);
    CHECK_EQ_U(p.ne, 2);
    CHECK_EDGE(&p, RT_ROOT, F, 1, 1, 25, 60);
    /* f->f: 2 calls, the inner one recursive on the edge too */
    CHECK_EDGE(&p, F, F, 2, 1, 35, 35);
    CHECK_EQ_U(p.fs[F].level, 0);
    prof_free(e, &p);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(F, 0), EV_ENTER(F, 10), EV_ENTER(F, 20), EV_EXIT(30),
                 EV_EXIT(45), EV_EXIT(60));
    fx_free(&x);
}

static void test_engine_profile_mutual_recursion(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    enum { A, B };
    declare(e, 0, 2, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, A, 0);
    rt_enter(t, B, 10);
    rt_enter(t, A, 20);
    rt_enter(t, B, 30);
    rt_exit(t, B, 40, 0);
    rt_exit(t, A, 50, 0);
    rt_exit(t, B, 60, 0);
    rt_exit(t, A, 100, 0);
    CHECK_EQ_I(rt_engine_finish(e, 100), RT_OK);
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, A, 2, 1, 70, 100);
    CHECK_FS(&p, B, 2, 1, 30, 50);
    CHECK_EQ_U(p.ne, 3);
    CHECK_EDGE(&p, RT_ROOT, A, 1, 1, 50, 100);
    CHECK_EDGE(&p, A, B, 2, 1, 30, 50);
    CHECK_EDGE(&p, B, A, 1, 1, 20, 30);
    prof_free(e, &p);
    fx_free(&x);
}

/* Two threads in f at the same time keep separate recursion levels; the
 * merged profile sums the threads. */
static void test_engine_profile_two_threads(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    enum { F, G };
    declare(e, 0, 2, RT_F_SCOPE);
    rt_thread *t1 = rt_engine_add_thread(e, 1, 11, 0);
    rt_thread *t2 = rt_engine_add_thread(e, 2, 22, 0);
    REQUIRE(t1 && t2);
    CHECK_EQ_U(rt_engine_nthreads(e), 2);
    rt_enter(t1, F, 0);
    rt_enter(t2, F, 5);   /* t2 enters f while t1 is in it: not recursive */
    rt_enter(t1, F, 10);  /* recursive on t1 */
    rt_exit(t2, F, 15, 0);
    rt_exit(t1, F, 20, 0);
    rt_enter(t2, G, 22);
    rt_enter(t1, G, 25);
    rt_exit(t2, G, 28, 0);
    rt_exit(t1, G, 29, 0);
    rt_exit(t1, F, 30, 0);
    CHECK_EQ_I(rt_engine_finish(e, 40), RT_OK);
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    /* t1: f 0..30 (own 30-10-4=16) > f 10..20 (own 10), g 25..29 (4);
     * t2: f 5..15 (own 10), g 22..28 (6) */
    CHECK_FS(&p, F, 3, 2, 36, 40);
    CHECK_FS(&p, G, 2, 2, 10, 10);
    CHECK_EDGE(&p, RT_ROOT, F, 2, 2, 26, 40);
    CHECK_EDGE(&p, F, F, 1, 1, 10, 10);
    CHECK_EDGE(&p, F, G, 1, 1, 4, 4);
    CHECK_EDGE(&p, RT_ROOT, G, 1, 1, 6, 6);
    CHECK_EQ_U(p.ne, 4);
    prof_free(e, &p);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(F, 0), EV_ENTER(F, 10), EV_EXIT(20), EV_ENTER(G, 25),
                 EV_EXIT(29), EV_EXIT(30));
    CHECK_STREAM(&x, 1, EV_TIME(0), EV_ENTER(F, 5), EV_EXIT(15), EV_ENTER(G, 22), EV_EXIT(28));
    CHECK_EQ_U(thread_info(e, 1).ident, 2);
    CHECK_EQ_U(thread_info(e, 1).native_id, 22);
    fx_free(&x);
}

/* ---------------------------------------------------------- generators */

enum { GMAIN, GEN, GEN2 };

static rt_engine *gen_engine(fx *x)
{
    rt_engine *e = fx_init(x, NULL);
    if (e) {
        declare(e, GMAIN, 1, RT_F_SCOPE);
        declare(e, GEN, 2, RT_F_SCOPE | RT_F_GEN);
    }
    return e;
}

static void test_engine_generator_slices(void)
{
    fx x;
    rt_engine *e = gen_engine(&x);
    REQUIRE(e != NULL);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    const uint64_t K = 0x7f00deadbee0ULL;
    rt_enter(t, GMAIN, 0);
    rt_enter(t, GEN, 10);
    CHECK_EQ_I(rt_suspend(t, GEN, K, 12), 1);
    CHECK_EQ_U(rt_thread_depth(t), 1);
    rt_resume(t, GEN, K, 20);
    CHECK_EQ_U(rt_thread_depth(t), 2);
    CHECK_EQ_I(rt_suspend(t, GEN, K, 25), 1);
    rt_resume(t, GEN, K, 30);
    CHECK_EQ_I(rt_suspend(t, GEN, K, 33), 1);
    rt_resume(t, GEN, K, 40);
    /* not finished yet: no call counted */
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_EQ_U(p.fs[GEN].calls, 0);
    prof_free(e, &p);
    CHECK_EQ_I(rt_exit(t, GEN, 44, 0), 1);
    CHECK_EQ_I(rt_exit(t, GMAIN, 50, 0), 1);
    CHECK_EQ_I(rt_engine_finish(e, 60), RT_OK);

    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(GMAIN, 0), EV_ENTER(GEN, 10), EV_SUSP(12), EV_RES(1, 20),
                 EV_SUSP(25), EV_RES(1, 30), EV_SUSP(33), EV_RES(1, 40), EV_EXIT(44), EV_EXIT(50));
    CHECK_EQ_U(thread_info(e, 0).stream_calls, 2);
    REQUIRE(prof_get(e, &p) == RT_OK);
    /* one call made of four slices: 2 + 5 + 3 + 4 */
    CHECK_FS(&p, GEN, 1, 1, 14, 14);
    CHECK_FS(&p, GMAIN, 1, 1, 36, 50);
    CHECK_EDGE(&p, GMAIN, GEN, 1, 1, 14, 14);
    CHECK(prof_edge(&p, RT_ROOT, GEN) == NULL);
    prof_free(e, &p);
    fx_free(&x);
}

/* RESUME's back counts the calls entered since the generator's call. */
static void test_engine_generator_resume_back(void)
{
    fx x;
    rt_engine *e = gen_engine(&x);
    REQUIRE(e != NULL);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, GEN, 1);           /* call 0 */
    rt_suspend(t, GEN, 7, 2);
    rt_enter(t, GMAIN, 3);         /* call 1 */
    rt_exit(t, GMAIN, 4, 0);
    rt_enter(t, GEN2, 5);          /* call 2 */
    rt_suspend(t, GEN2, 8, 6);
    rt_resume(t, GEN, 7, 7);       /* 3 - 0 */
    rt_suspend(t, GEN, 7, 8);
    rt_enter(t, GMAIN, 9);         /* call 3 */
    rt_resume(t, GEN2, 8, 10);     /* 4 - 2, resumed from inside main */
    rt_exit(t, GEN2, 11, 0);
    rt_exit(t, GMAIN, 12, 0);
    rt_resume(t, GEN, 7, 13);      /* 4 - 0 */
    rt_exit(t, GEN, 14, 0);
    CHECK_EQ_I(rt_engine_finish(e, 20), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(GEN, 1), EV_SUSP(2), EV_ENTER(GMAIN, 3), EV_EXIT(4),
                 EV_ENTER(GEN2, 5), EV_SUSP(6), EV_RES(3, 7), EV_SUSP(8), EV_ENTER(GMAIN, 9),
                 EV_RES(2, 10), EV_EXIT(11), EV_EXIT(12), EV_RES(4, 13), EV_EXIT(14));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, GEN, 1, 1, 3, 3);
    CHECK_FS(&p, GEN2, 1, 1, 2, 2);
    CHECK_FS(&p, GMAIN, 2, 2, 3, 4);
    /* the edge stays that of the original call (root), not the resumer */
    CHECK_EDGE(&p, RT_ROOT, GEN2, 1, 1, 2, 2);
    CHECK(prof_edge(&p, GMAIN, GEN2) == NULL);
    prof_free(e, &p);
    fx_free(&x);
}

static void test_engine_generator_unknown_key(void)
{
    fx x;
    rt_engine *e = gen_engine(&x);
    REQUIRE(e != NULL);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, GMAIN, 0);
    /* a generator created before tracing started resumes: a new call */
    rt_resume(t, GEN, 999, 10);
    CHECK_EQ_U(rt_thread_depth(t), 2);
    CHECK_EQ_I(rt_suspend(t, GEN, 999, 15), 1);
    rt_resume(t, GEN, 999, 20);
    CHECK_EQ_I(rt_exit(t, GEN, 22, 0), 1);
    /* a key suspended by GEN but resumed as GEN2 (a stale record): GEN's
     * call completes, GEN2 starts a new call */
    rt_enter(t, GEN, 30);
    rt_suspend(t, GEN, 1234, 31);
    rt_resume(t, GEN2, 1234, 40);
    rt_exit(t, GEN2, 41, 0);
    rt_exit(t, GMAIN, 50, 0);
    /* suspending a function that is not open is ignored */
    CHECK_EQ_I(rt_suspend(t, GEN, 5, 51), 0);
    CHECK_EQ_I(rt_engine_finish(e, 60), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(GMAIN, 0), EV_ENTER(GEN, 10), EV_SUSP(15), EV_RES(1, 20),
                 EV_EXIT(22), EV_ENTER(GEN, 30), EV_SUSP(31), EV_ENTER(GEN2, 40), EV_EXIT(41), EV_EXIT(50));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, GEN, 2, 2, 8, 8);
    CHECK_FS(&p, GEN2, 1, 1, 1, 1);
    CHECK_EDGE(&p, GMAIN, GEN, 2, 2, 8, 8);
    prof_free(e, &p);
    fx_free(&x);
}

/* Suspending under a key already in use completes the older record. */
static void test_engine_generator_key_reused(void)
{
    fx x;
    rt_engine *e = gen_engine(&x);
    REQUIRE(e != NULL);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    const uint64_t K = 42;
    rt_enter(t, GEN, 0);         /* call 0 */
    rt_suspend(t, GEN, K, 5);
    rt_enter(t, GEN, 10);        /* call 1: another generator object, same key */
    rt_suspend(t, GEN, K, 15);
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, GEN, 1, 1, 10, 10); /* the older one counted as a call */
    prof_free(e, &p);
    rt_resume(t, GEN, K, 20);    /* resumes the newer call */
    rt_exit(t, GEN, 25, 0);
    /* the older one is gone: this is a new call */
    rt_resume(t, GEN, K, 30);
    rt_exit(t, GEN, 31, 0);
    CHECK_EQ_I(rt_engine_finish(e, 40), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(GEN, 0), EV_SUSP(5), EV_ENTER(GEN, 10), EV_SUSP(15),
                 EV_RES(1, 20), EV_EXIT(25), EV_ENTER(GEN, 30), EV_EXIT(31));
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, GEN, 3, 3, 16, 16);
    CHECK_EDGE(&p, RT_ROOT, GEN, 3, 3, 16, 16);
    prof_free(e, &p);
    fx_free(&x);
}

/* A generator still suspended at finish is a completed call; rt_forget
 * completes one too. */
static void test_engine_generator_suspended_at_finish(void)
{
    fx x;
    rt_engine *e = gen_engine(&x);
    REQUIRE(e != NULL);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, GMAIN, 0);
    rt_enter(t, GEN, 10);
    rt_suspend(t, GEN, 1, 15);
    rt_enter(t, GEN2, 20);
    rt_suspend(t, GEN2, 2, 23);
    rt_forget(e, 2);             /* GEN2's generator destroyed */
    rt_forget(e, 3);             /* unknown key: nothing */
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, GEN2, 1, 1, 3, 3);
    CHECK_EQ_U(p.fs[GEN].calls, 0);
    prof_free(e, &p);
    rt_resume(t, GEN2, 2, 25);   /* forgotten: a new call */
    rt_exit(t, GEN2, 26, 0);
    rt_exit(t, GMAIN, 30, 0);
    CHECK_EQ_I(rt_engine_finish(e, 100), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(GMAIN, 0), EV_ENTER(GEN, 10), EV_SUSP(15), EV_ENTER(GEN2, 20),
                 EV_SUSP(23), EV_ENTER(GEN2, 25), EV_EXIT(26), EV_EXIT(30));
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, GEN, 1, 1, 5, 5);
    CHECK_FS(&p, GEN2, 2, 2, 4, 4);
    CHECK_EDGE(&p, GMAIN, GEN, 1, 1, 5, 5);
    CHECK_EDGE(&p, GMAIN, GEN2, 2, 2, 4, 4);
    CHECK_FS(&p, GMAIN, 1, 1, 21, 30);
    prof_free(e, &p);
    fx_free(&x);
}

/* A generator suspended on one thread and resumed on another: ENTER_CONT
 * there, the call is counted once, on the thread where it ends. */
static void test_engine_generator_other_thread(void)
{
    fx x;
    rt_engine *e = gen_engine(&x);
    REQUIRE(e != NULL);
    rt_thread *t1 = rt_engine_add_thread(e, 1, 1, 0);
    rt_thread *t2 = rt_engine_add_thread(e, 2, 2, 0);
    REQUIRE(t1 && t2);
    rt_enter(t1, GMAIN, 0);
    rt_enter(t1, GEN, 10);
    rt_suspend(t1, GEN, 77, 20);
    rt_exit(t1, GMAIN, 30, 0);
    rt_resume(t2, GEN, 77, 40);   /* t2 continues it */
    CHECK_EQ_U(rt_thread_depth(t2), 1);
    rt_suspend(t2, GEN, 77, 45);
    rt_resume(t1, GEN, 77, 50);   /* back to t1: suspended by t2, so ENTER_CONT again */
    rt_suspend(t1, GEN, 77, 52);
    rt_resume(t1, GEN, 77, 54);   /* same thread as the last suspension: RESUME */
    rt_exit(t1, GEN, 55, 0);
    CHECK_EQ_I(rt_engine_finish(e, 100), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(GMAIN, 0), EV_ENTER(GEN, 10), EV_SUSP(20), EV_EXIT(30),
                 EV_CONT(GEN, 50), EV_SUSP(52), EV_RES(1, 54), EV_EXIT(55));
    CHECK_STREAM(&x, 1, EV_TIME(0), EV_CONT(GEN, 40), EV_SUSP(45));
    CHECK_EQ_U(thread_info(e, 0).stream_calls, 3);
    CHECK_EQ_U(thread_info(e, 1).stream_calls, 1);
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    /* slices 10 + 5 + 2 + 1 */
    CHECK_FS(&p, GEN, 1, 1, 18, 18);
    CHECK_EDGE(&p, GMAIN, GEN, 1, 1, 18, 18);
    CHECK(prof_edge(&p, RT_ROOT, GEN) == NULL);
    prof_free(e, &p);
    fx_free(&x);
}

/* A completed-while-suspended call is recursive or not as its last slice
 * was, whatever is running when it is completed. */
static void test_engine_generator_completion_recursion(void)
{
    fx x;
    rt_engine *e = gen_engine(&x);
    REQUIRE(e != NULL);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, GEN, 0);          /* A */
    rt_enter(t, GEN, 1);          /* B, inside A: recursive */
    rt_suspend(t, GEN, 10, 3);
    rt_exit(t, GEN, 4, 0);        /* A returns */
    rt_enter(t, GEN, 5);          /* C, not recursive... */
    rt_suspend(t, GEN, 11, 6);
    rt_enter(t, GEN, 7);          /* D is running when C's record is completed */
    rt_forget(e, 11);
    rt_exit(t, GEN, 8, 0);
    CHECK_EQ_I(rt_engine_finish(e, 20), RT_OK); /* completes B */
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    /* A, C, D primitive; B recursive */
    CHECK_FS(&p, GEN, 4, 3, 2 + 2 + 1 + 1, 4 + 1 + 1);
    CHECK_EDGE(&p, RT_ROOT, GEN, 3, 3, 2 + 1 + 1, 4 + 1 + 1);
    CHECK_EDGE(&p, GEN, GEN, 1, 1, 2, 2);
    prof_free(e, &p);
    fx_free(&x);
}

/* The map's reserved key as a generator key: never remembered, never
 * found, no crash, no error. */
static void test_engine_generator_reserved_key(void)
{
    fx x;
    rt_engine *e = gen_engine(&x);
    REQUIRE(e != NULL);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, GEN2, 0);
    rt_suspend(t, GEN2, 5, 1);        /* the generator table is not empty */
    rt_enter(t, GEN, 2);
    CHECK_EQ_I(rt_suspend(t, GEN, UINT64_MAX, 5), 1); /* cannot be remembered: ends */
    CHECK_EQ_U(rt_thread_depth(t), 0);
    rt_resume(t, GEN, UINT64_MAX, 10); /* unknown: a new call */
    CHECK_EQ_U(rt_thread_depth(t), 1);
    rt_exit(t, GEN, 12, 0);
    rt_forget(e, UINT64_MAX);
    rt_resume(t, GEN2, 5, 20);
    rt_exit(t, GEN2, 21, 0);
    CHECK_EQ_I(rt_engine_error(e, NULL), RT_OK);
    CHECK_EQ_I(rt_engine_finish(e, 30), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(GEN2, 0), EV_SUSP(1), EV_ENTER(GEN, 2), EV_EXIT(5),
                 EV_ENTER(GEN, 10), EV_EXIT(12), EV_RES(3, 20), EV_EXIT(21));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, GEN, 2, 2, 5, 5);
    CHECK_FS(&p, GEN2, 1, 1, 2, 2);
    prof_free(e, &p);
    fx_free(&x);
}

/* ---------------------------------------------------------------- exits */

static void test_engine_exit_not_open(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    declare(e, 0, 3, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    /* empty stack */
    CHECK_EQ_I(rt_exit(t, 0, 5, 0), 0);
    CHECK_EQ_I(rt_exit(t, 0, 5, 1), 0);
    rt_enter(t, 0, 10);
    rt_enter(t, 1, 20);
    uint64_t before = thread_info(e, 0).n_events;
    CHECK_EQ_I(rt_exit(t, 2, 30, 0), 0);   /* never entered */
    CHECK_EQ_I(rt_exit(t, 2, 30, 1), 0);
    CHECK_EQ_U(rt_thread_depth(t), 2);
    CHECK_EQ_U(thread_info(e, 0).n_events, before);
    CHECK_EQ_I(rt_exit(t, 1, 40, 0), 1);
    CHECK_EQ_I(rt_exit(t, 0, 50, 0), 1);
    CHECK_EQ_I(rt_exit(t, 0, 60, 0), 0);   /* empty again */
    CHECK_EQ_I(rt_engine_finish(e, 70), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(0, 10), EV_ENTER(1, 20), EV_EXIT(40), EV_EXIT(50));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, 0, 1, 1, 20, 40);
    CHECK_FS(&p, 1, 1, 1, 20, 20);
    CHECK_FS(&p, 2, 0, 0, 0, 0);
    CHECK_EQ_U(p.ne, 2);
    prof_free(e, &p);
    fx_free(&x);
}

/* The exit of a frame two levels down: the frames above lost their exits. */
static void test_engine_exit_lost(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    declare(e, 0, 3, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, 0, 0);
    rt_enter(t, 1, 10);
    rt_enter(t, 2, 20);
    CHECK_EQ_I(rt_exit(t, 0, 50, 0), 1);
    CHECK_EQ_U(rt_thread_depth(t), 0);
    /* and a lost exit in the middle of the stack */
    rt_enter(t, 0, 60);
    rt_enter(t, 1, 61);
    rt_enter(t, 2, 62);
    rt_enter(t, 0, 63);
    CHECK_EQ_I(rt_exit(t, 1, 70, 0), 1);
    CHECK_EQ_U(rt_thread_depth(t), 1);
    CHECK_EQ_I(rt_exit(t, 0, 80, 0), 1);
    CHECK_EQ_I(rt_engine_finish(e, 90), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(0, 0), EV_ENTER(1, 10), EV_ENTER(2, 20), EV_EXIT(50),
                 EV_EXIT(50), EV_EXIT(50), EV_ENTER(0, 60), EV_ENTER(1, 61), EV_ENTER(2, 62),
                 EV_ENTER(0, 63), EV_EXIT(70), EV_EXIT(70), EV_EXIT(70), EV_EXIT(80));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    /* first tree: 2 own 30, 1 own 10, 0 own 10; second: 0(63..70) 7, 2 own 1,
     * 1 own 1, 0(60..80) own 11 */
    CHECK_FS(&p, 0, 3, 2, 28, 70);
    CHECK_FS(&p, 1, 2, 2, 11, 49);
    CHECK_FS(&p, 2, 2, 2, 31, 38);
    prof_free(e, &p);
    fx_free(&x);
}

static void test_engine_exit_exception(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    declare(e, 0, 2, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, 0, 1);
    rt_enter(t, 1, 2);
    CHECK_EQ_I(rt_exit(t, 1, 3, 1), 1);
    CHECK_EQ_I(rt_exit(t, 0, 4, 0), 1);
    rt_enter(t, 0, 5);
    CHECK_EQ_I(rt_exit(t, 0, 9, 1), 1);
    CHECK_EQ_I(rt_engine_finish(e, 10), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(0, 1), EV_ENTER(1, 2), EV_EXC(3), EV_EXIT(4), EV_ENTER(0, 5),
                 EV_EXC(9));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, 0, 2, 2, 6, 7);
    CHECK_FS(&p, 1, 1, 1, 1, 1);
    prof_free(e, &p);
    fx_free(&x);
}

/* --------------------------------------------------------------- finish */

static void test_engine_finish_closes_frames(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    declare(e, 0, 3, RT_F_SCOPE);
    rt_thread *t1 = rt_engine_add_thread(e, 1, 1, 0);
    rt_thread *t2 = rt_engine_add_thread(e, 2, 2, 0);
    rt_thread *t3 = rt_engine_add_thread(e, 3, 3, 0); /* idle */
    REQUIRE(t1 && t2 && t3);
    rt_enter(t1, 0, 0);
    rt_enter(t1, 1, 10);
    rt_enter(t1, 2, 15);
    rt_enter(t2, 1, 20);
    CHECK_EQ_I(rt_engine_finish(e, 50), RT_OK);
    CHECK_EQ_U(rt_thread_depth(t1), 0);
    CHECK_EQ_U(rt_thread_depth(t2), 0);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(0, 0), EV_ENTER(1, 10), EV_ENTER(2, 15), EV_EXIT(50),
                 EV_EXIT(50), EV_EXIT(50));
    CHECK_STREAM(&x, 1, EV_TIME(0), EV_ENTER(1, 20), EV_EXIT(50));
    size_t nchunks = x.sink.n;
    CHECK_EQ_U(nchunks, 2); /* nothing for the idle thread */
    rt_thread_info idle = thread_info(e, 2);
    CHECK_EQ_U(idle.chunks, 0);
    CHECK_EQ_U(idle.stream_calls, 0);
    CHECK_EQ_U(idle.n_events, 0); /* no event of it reached the sink */
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, 0, 1, 1, 10, 50);
    CHECK_FS(&p, 1, 2, 2, 5 + 30, 40 + 30);
    CHECK_FS(&p, 2, 1, 1, 35, 35);
    prof_free(e, &p);

    /* after finish events are ignored and finishing again changes nothing */
    uint64_t n0 = thread_info(e, 0).n_events;
    rt_enter(t1, 0, 60);
    CHECK_EQ_U(rt_thread_depth(t1), 0);
    CHECK_EQ_I(rt_exit(t1, 0, 61, 0), 0);
    rt_resume(t1, 0, 5, 62);
    CHECK_EQ_I(rt_suspend(t1, 0, 5, 63), 0);
    CHECK_EQ_U(rt_thread_depth(t1), 0);
    CHECK_EQ_I(rt_engine_finish(e, 70), RT_OK);
    CHECK_EQ_U(x.sink.n, nchunks);
    CHECK_EQ_U(thread_info(e, 0).n_events, n0);
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, 0, 1, 1, 10, 50);
    prof_free(e, &p);
    fx_free(&x);
}

/* Without a sink the stream is discarded; the profile is still kept. */
static void test_engine_no_sink(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    rt_config c;
    memset(&c, 0, sizeof c);
    c.alloc = &ta.a; /* chunk_size 0: the default */
    rt_engine *e = rt_engine_new(&c);
    REQUIRE(e != NULL);
    declare(e, 0, 2, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    for (int i = 0; i < 1000; i++) {
        rt_enter(t, 0, 10 * i);
        rt_enter(t, 1, 10 * i + 1);
        rt_exit(t, 1, 10 * i + 4, 0);
        rt_exit(t, 0, 10 * i + 5, 0);
    }
    CHECK_EQ_I(rt_engine_finish(e, 100000), RT_OK);
    rt_thread_info ti = thread_info(e, 0);
    CHECK_EQ_U(ti.chunks, 0);
    CHECK_EQ_U(ti.stream_calls, 0);
    CHECK_EQ_U(ti.n_events, 0);
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, 0, 1000, 1000, 2000, 5000);
    CHECK_FS(&p, 1, 1000, 1000, 3000, 3000);
    prof_free(e, &p);
    rt_engine_free(e);
    CHECK_EQ_I(ta.live, 0);
    rt_engine_free(NULL);
}

/* --------------------------------------------------------------- filters */

static void test_engine_filter_external(void)
{
    enum { S1, X1, X2, S2, CF };
    for (int no_external = 0; no_external <= 1; no_external++) {
        rt_config c;
        memset(&c, 0, sizeof c);
        c.chunk_size = 4096;
        c.no_external = no_external;
        fx x;
        rt_engine *e = fx_init(&x, &c);
        REQUIRE(e != NULL);
        declare(e, S1, 1, RT_F_SCOPE);
        declare(e, X1, 2, 0);
        declare(e, S2, 1, RT_F_SCOPE);
        declare(e, CF, 1, RT_F_C);
        rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
        REQUIRE(t != NULL);
        rt_enter(t, S1, 10);
        rt_enter(t, X1, 20);  /* leaves the scope */
        rt_enter(t, X2, 30);  /* external called from external */
        rt_enter(t, S2, 40);  /* back in the scope */
        rt_exit(t, S2, 50, 0);
        rt_exit(t, X2, 60, 0);
        rt_exit(t, X1, 70, 0);
        rt_enter(t, CF, 80);  /* a C function called from the scope */
        rt_exit(t, CF, 90, 0);
        rt_exit(t, S1, 100, 0);
        CHECK_EQ_I(rt_engine_finish(e, 200), RT_OK);
        if (!no_external) {
            /* the external function called from the scope is recorded, its
             * external callee is not, the scope function under it is */
            CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(S1, 10), EV_ENTER(X1, 20), EV_ENTER(S2, 40), EV_EXIT(50),
                         EV_EXIT(70), EV_ENTER(CF, 80), EV_EXIT(90), EV_EXIT(100));
            CHECK_EQ_U(thread_info(e, 0).stream_calls, 4);
        } else {
            /* no call leaving the scope is recorded */
            CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(S1, 10), EV_ENTER(S2, 40), EV_EXIT(50), EV_EXIT(100));
            CHECK_EQ_U(thread_info(e, 0).stream_calls, 2);
        }
        prof p;
        REQUIRE(prof_get(e, &p) == RT_OK);
        CHECK_FS(&p, S1, 1, 1, 30, 90);
        CHECK_FS(&p, X1, 1, 1, 20, 50);
        CHECK_FS(&p, X2, 1, 1, 20, 30);
        CHECK_FS(&p, S2, 1, 1, 10, 10);
        CHECK_FS(&p, CF, 1, 1, 10, 10);
        CHECK_EDGE(&p, X1, X2, 1, 1, 20, 30);
        CHECK_EDGE(&p, X2, S2, 1, 1, 10, 10);
        CHECK_EQ_U(p.ne, 5);
        prof_free(e, &p);
        fx_free(&x);
    }
}

static void test_engine_filter_imports(void)
{
    enum { MAIN, IMP, INNER, MOD, MCHILD, EXT };
    for (int no_imports = 0; no_imports <= 1; no_imports++) {
        rt_config c;
        memset(&c, 0, sizeof c);
        c.chunk_size = 4096;
        c.no_imports = no_imports;
        fx x;
        rt_engine *e = fx_init(&x, &c);
        REQUIRE(e != NULL);
        declare(e, MAIN, 1, RT_F_SCOPE);
        declare(e, IMP, 1, RT_F_IMPORT);
        declare(e, INNER, 1, RT_F_SCOPE);
        declare(e, MOD, 1, RT_F_MODULE | RT_F_SCOPE);
        declare(e, MCHILD, 1, RT_F_SCOPE);
        declare(e, EXT, 1, 0);
        rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
        REQUIRE(t != NULL);
        rt_enter(t, MAIN, 0);
        rt_enter(t, IMP, 10);     /* import machinery ... */
        rt_enter(t, MOD, 11);     /* ... running a module body ... */
        rt_enter(t, INNER, 12);   /* ... calling a scope function */
        rt_exit(t, INNER, 13, 0);
        rt_exit(t, MOD, 14, 0);
        rt_exit(t, IMP, 20, 0);
        rt_enter(t, MOD, 30);     /* a module body outside the import machinery */
        rt_enter(t, MCHILD, 31);
        rt_exit(t, MCHILD, 32, 0);
        rt_enter(t, EXT, 33);     /* called from the (scope) module body */
        rt_exit(t, EXT, 34, 0);
        rt_exit(t, MOD, 40, 0);
        rt_exit(t, MAIN, 50, 0);
        CHECK_EQ_I(rt_engine_finish(e, 60), RT_OK);
        if (no_imports) {
            CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(MAIN, 0), EV_ENTER(MCHILD, 31), EV_EXIT(32),
                         EV_ENTER(EXT, 33), EV_EXIT(34), EV_EXIT(50));
        } else {
            CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(MAIN, 0), EV_ENTER(IMP, 10), EV_ENTER(MOD, 11),
                         EV_ENTER(INNER, 12), EV_EXIT(13), EV_EXIT(14), EV_EXIT(20), EV_ENTER(MOD, 30),
                         EV_ENTER(MCHILD, 31), EV_EXIT(32), EV_ENTER(EXT, 33), EV_EXIT(34), EV_EXIT(40),
                         EV_EXIT(50));
        }
        prof p;
        REQUIRE(prof_get(e, &p) == RT_OK);
        CHECK_FS(&p, MAIN, 1, 1, 30, 50);
        CHECK_FS(&p, IMP, 1, 1, 7, 10);
        CHECK_FS(&p, MOD, 2, 2, 2 + 8, 3 + 10);
        CHECK_FS(&p, INNER, 1, 1, 1, 1);
        CHECK_FS(&p, MCHILD, 1, 1, 1, 1);
        CHECK_FS(&p, EXT, 1, 1, 1, 1);
        CHECK_EDGE(&p, IMP, MOD, 1, 1, 2, 3);
        CHECK_EDGE(&p, MAIN, MOD, 1, 1, 8, 10);
        prof_free(e, &p);
        fx_free(&x);
    }
}

static void test_engine_filter_only_functions(void)
{
    enum { MAIN, ONLY, OCHILD, OTHER, EXT };
    rt_config c;
    memset(&c, 0, sizeof c);
    c.chunk_size = 4096;
    c.only_functions = 1;
    fx x;
    rt_engine *e = fx_init(&x, &c);
    REQUIRE(e != NULL);
    declare(e, MAIN, 1, RT_F_SCOPE);
    declare(e, ONLY, 1, RT_F_SCOPE | RT_F_ONLY);
    declare(e, OCHILD, 2, RT_F_SCOPE);
    declare(e, EXT, 1, 0);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, MAIN, 0);
    rt_enter(t, OTHER, 5);
    rt_exit(t, OTHER, 6, 0);
    rt_enter(t, ONLY, 10);
    rt_enter(t, OCHILD, 11);
    rt_enter(t, MAIN, 12);     /* anything under ONLY is in */
    rt_exit(t, MAIN, 13, 0);
    rt_exit(t, OCHILD, 14, 0);
    rt_enter(t, EXT, 15);
    rt_exit(t, EXT, 16, 0);
    rt_exit(t, ONLY, 20, 0);
    rt_enter(t, OCHILD, 21);   /* not under ONLY any more */
    rt_exit(t, OCHILD, 22, 0);
    rt_exit(t, MAIN, 30, 0);
    CHECK_EQ_I(rt_engine_finish(e, 40), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(ONLY, 10), EV_ENTER(OCHILD, 11), EV_ENTER(MAIN, 12), EV_EXIT(13),
                 EV_EXIT(14), EV_ENTER(EXT, 15), EV_EXIT(16), EV_EXIT(20));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, MAIN, 2, 1, 19, 30);
    CHECK_FS(&p, ONLY, 1, 1, 6, 10);
    CHECK_FS(&p, OCHILD, 2, 2, 2 + 1, 3 + 1);
    CHECK_FS(&p, OTHER, 1, 1, 1, 1);
    CHECK_FS(&p, EXT, 1, 1, 1, 1);
    CHECK_EDGE(&p, OCHILD, MAIN, 1, 1, 1, 1);
    prof_free(e, &p);
    fx_free(&x);
}

/* Filters with generators: a suspended call keeps its stream decision. */
static void test_engine_filter_generator(void)
{
    enum { S, XG };
    rt_config c;
    memset(&c, 0, sizeof c);
    c.chunk_size = 4096;
    c.no_external = 1;
    fx x;
    rt_engine *e = fx_init(&x, &c);
    REQUIRE(e != NULL);
    declare(e, S, 1, RT_F_SCOPE);
    declare(e, XG, 1, RT_F_GEN);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, S, 0);
    rt_enter(t, XG, 1);
    rt_suspend(t, XG, 9, 2);
    rt_resume(t, XG, 9, 3);
    rt_exit(t, XG, 4, 0);
    rt_exit(t, S, 5, 0);
    CHECK_EQ_I(rt_engine_finish(e, 6), RT_OK);
    CHECK_STREAM(&x, 0, EV_TIME(0), EV_ENTER(S, 0), EV_EXIT(5));
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    CHECK_FS(&p, XG, 1, 1, 2, 2);
    prof_free(e, &p);
    fx_free(&x);
}

/* ------------------------------------------------------------- chunking */

/* A model of one thread's stream, to compute the expected events. */
typedef struct model_frame {
    uint32_t fid;
    uint64_t call_no;
} model_frame;

typedef struct model_thread {
    rt_thread *t;
    model_frame stack[64];
    size_t depth;
    uint64_t calls;      /* stream call numbers handed out */
    test_events want;    /* expected events, TIME excluded */
} model_thread;

typedef struct model_gen {
    uint64_t key;
    uint32_t fid;
    uint32_t thread;
    uint64_t call_no;
} model_gen;

#define CH_NF 64        /* fids 0..CH_NF-1 plain, CH_NF..CH_NF+7 generators */
#define CH_NG 8

static void expect(model_thread *m, int tag, uint32_t fid, uint64_t back, int64_t t)
{
    rt_event ev = {tag, fid, back, t};
    test_events_push(&m->want, ev);
}

/* Replay decoded events (TIME included) and sum each function's own time
 * per slice; checks the stream's structure. Returns 0 when consistent. */
static int replay(const test_events *ev, int64_t *own, uint32_t nf)
{
    typedef struct { uint32_t fid; uint64_t cn; int64_t t0, child; } fr;
    size_t cap = 1024, depth = 0;
    fr *st = malloc(cap * sizeof *st);
    size_t ncalls_cap = 1024;
    int32_t *susp = malloc(ncalls_cap * sizeof *susp); /* call number -> suspended fid or -1 */
    uint64_t calls = 0;
    int bad = 0;
    int64_t last = INT64_MIN;
    if (!st || !susp)
        abort();
    for (size_t i = 0; i < ev->n && !bad; i++) {
        const rt_event *e = &ev->ev[i];
        if (e->t < last)
            bad = 1;
        last = e->t;
        switch (e->tag) {
        case RT_EV_TIME:
            break;
        case RT_EV_ENTER:
        case RT_EV_ENTER_CONT:
        case RT_EV_RESUME: {
            uint32_t fid = e->fid;
            uint64_t cn;
            if (e->tag == RT_EV_RESUME) {
                if (e->back == 0 || e->back > calls) {
                    bad = 2;
                    break;
                }
                cn = calls - e->back;
                if (susp[cn] < 0) {
                    bad = 3;
                    break;
                }
                fid = (uint32_t)susp[cn];
                susp[cn] = -1;
            } else {
                cn = calls++;
                if (cn >= ncalls_cap) {
                    ncalls_cap *= 2;
                    susp = realloc(susp, ncalls_cap * sizeof *susp);
                    if (!susp)
                        abort();
                }
                susp[cn] = -1;
            }
            if (depth == cap) {
                cap *= 2;
                st = realloc(st, cap * sizeof *st);
                if (!st)
                    abort();
            }
            st[depth].fid = fid;
            st[depth].cn = cn;
            st[depth].t0 = e->t;
            st[depth].child = 0;
            depth++;
            break;
        }
        case RT_EV_EXIT:
        case RT_EV_EXIT_EXC:
        case RT_EV_SUSPEND: {
            if (depth == 0) {
                bad = 4;
                break;
            }
            fr *f = &st[--depth];
            int64_t tt = e->t - f->t0;
            if (f->fid < nf)
                own[f->fid] += tt - f->child;
            if (depth)
                st[depth - 1].child += tt;
            if (e->tag == RT_EV_SUSPEND)
                susp[f->cn] = (int32_t)f->fid;
            break;
        }
        default:
            bad = 5;
        }
    }
    if (depth != 0 && !bad)
        bad = 6;
    free(st);
    free(susp);
    return bad;
}

static void test_engine_chunking(void)
{
    rt_config c;
    memset(&c, 0, sizeof c);
    c.chunk_size = 256;
    fx x;
    rt_engine *e = fx_init(&x, &c);
    REQUIRE(e != NULL);
    declare(e, 0, CH_NF, RT_F_SCOPE);
    declare(e, CH_NF, CH_NG, RT_F_SCOPE | RT_F_GEN);
    const uint32_t nf = CH_NF + CH_NG;

    model_thread mt[2];
    memset(mt, 0, sizeof mt);
    mt[0].t = rt_engine_add_thread(e, 100, 1000, 0);
    mt[1].t = rt_engine_add_thread(e, 200, 2000, 0);
    REQUIRE(mt[0].t && mt[1].t);
    model_gen gens[64];
    size_t ngens = 0;
    uint64_t next_key = 1;
    uint64_t exp_calls[CH_NF + CH_NG] = {0};

    uint64_t seed = 20240601;
    int64_t now = 0;
    uint64_t total_enters = 0;
    while (total_enters < 100000) {
        uint64_t r = test_rand(&seed);
        /* mostly small steps, sometimes long gaps (multi-byte varints) */
        uint64_t step = (r & 0xff) < 3 ? (r >> 8) % 5000000000ULL : (r >> 8) % 300;
        now += (int64_t)step;
        model_thread *m = &mt[(r >> 40) & 1];
        unsigned op = (unsigned)((r >> 44) % 100);
        model_frame *top = m->depth ? &m->stack[m->depth - 1] : NULL;
        if (top && top->fid >= CH_NF && op < 15 && ngens < 64) {
            /* the generator on top yields */
            gens[ngens].key = next_key++ * 16;
            gens[ngens].fid = top->fid;
            gens[ngens].thread = (uint32_t)(m - mt);
            gens[ngens].call_no = top->call_no;
            CHECK_EQ_I(rt_suspend(m->t, top->fid, gens[ngens].key, now), 1);
            ngens++;
            expect(m, RT_EV_SUSPEND, 0, 0, now);
            m->depth--;
        } else if (ngens && op < 25 && m->depth < 60) {
            /* a suspended generator resumes on this thread */
            size_t gi = (size_t)((r >> 20) % ngens);
            model_gen g = gens[gi];
            gens[gi] = gens[--ngens];
            rt_resume(m->t, g.fid, g.key, now);
            model_frame *f = &m->stack[m->depth++];
            f->fid = g.fid;
            if (g.thread == (uint32_t)(m - mt)) {
                f->call_no = g.call_no;
                expect(m, RT_EV_RESUME, 0, m->calls - g.call_no, now);
            } else {
                f->call_no = m->calls++;
                expect(m, RT_EV_ENTER_CONT, g.fid, 0, now);
            }
        } else if (m->depth < 60 && (m->depth < 2 || op < 62)) {
            uint32_t fid = (uint32_t)((r >> 24) % (op < 55 ? CH_NF : nf));
            rt_enter(m->t, fid, now);
            model_frame *f = &m->stack[m->depth++];
            f->fid = fid;
            f->call_no = m->calls++;
            expect(m, RT_EV_ENTER, fid, 0, now);
            total_enters++;
        } else if (m->depth) {
            int exc = op % 7 == 0;
            CHECK_EQ_I(rt_exit(m->t, top->fid, now, exc), 1);
            exp_calls[top->fid]++;
            expect(m, exc ? RT_EV_EXIT_EXC : RT_EV_EXIT, 0, 0, now);
            m->depth--;
        }
    }
    now += 10;
    for (int i = 0; i < 2; i++) {
        CHECK_EQ_U(rt_thread_depth(mt[i].t), mt[i].depth);
        while (mt[i].depth) {
            exp_calls[mt[i].stack[mt[i].depth - 1].fid]++;
            expect(&mt[i], RT_EV_EXIT, 0, 0, now);
            mt[i].depth--;
        }
    }
    for (size_t g = 0; g < ngens; g++)
        exp_calls[gens[g].fid]++;
    CHECK_EQ_I(rt_engine_finish(e, now), RT_OK);

    int64_t own_stream[CH_NF + CH_NG] = {0};
    uint64_t enters_seen = 0;
    for (uint32_t i = 0; i < 2; i++) {
        size_t nch = 0, too_big = 0;
        uint64_t sum_n = 0;
        for (size_t k = 0; k < x.sink.n; k++) {
            const test_chunk *ch = &x.sink.chunks[k];
            if (ch->thread_idx != i)
                continue;
            if (ch->len > c.chunk_size + RT_EV_MAX_BYTES)
                too_big++;
            sum_n += ch->n_events;
        }
        CHECK_EQ_U(too_big, 0);
        test_events all = {0};
        unsigned bad = test_decode_thread(&x.sink, i, &all, &nch);
        /* seq consecutive, TIME first, per-chunk counts right, no time jumps */
        CHECK_MSG(bad == 0, "thread %" PRIu32 ": chunk problems, flags %u", i, bad);
        CHECK_MSG(nch > 500, "thread %" PRIu32 ": only %zu chunks", i, nch);
        rt_thread_info ti = thread_info(e, i);
        CHECK_EQ_U(ti.chunks, nch);
        CHECK_EQ_U(ti.n_events, all.n);
        CHECK_EQ_U(sum_n, all.n);
        CHECK_EQ_U(ti.stream_calls, mt[i].calls);
        /* decoding every chunk in order reproduces every event */
        size_t j = 0, mismatch = 0;
        for (size_t k = 0; k < all.n; k++) {
            if (all.ev[k].tag == RT_EV_TIME)
                continue;
            if (all.ev[k].tag == RT_EV_ENTER)
                enters_seen++;
            if (j >= mt[i].want.n || !same_event(&all.ev[k], &mt[i].want.ev[j])) {
                if (!mismatch)
                    CHECK_MSG(0, "thread %" PRIu32 ": event %zu differs (%s t=%" PRId64 ")", i, j,
                              tag_name(all.ev[k].tag), all.ev[k].t);
                mismatch++;
            }
            j++;
        }
        CHECK_EQ_U(mismatch, 0);
        CHECK_EQ_U(j, mt[i].want.n);
        CHECK_EQ_I(replay(&all, own_stream, nf), 0);
        test_events_free(&all);
        test_events_free(&mt[i].want);
    }
    CHECK_EQ_U(enters_seen, total_enters);

    /* the profile agrees with the stream */
    prof p;
    REQUIRE(prof_get(e, &p) == RT_OK);
    size_t own_bad = 0, calls_bad = 0;
    for (uint32_t f = 0; f < nf; f++) {
        if (p.fs[f].own_ns != own_stream[f])
            own_bad++;
        if (p.fs[f].calls != exp_calls[f])
            calls_bad++;
        if (p.fs[f].prim_calls > p.fs[f].calls || p.fs[f].cum_ns < 0)
            calls_bad++;
    }
    CHECK_EQ_U(own_bad, 0);
    CHECK_EQ_U(calls_bad, 0);
    prof_free(e, &p);
    fx_free(&x);
}

/* ------------------------------------------------------ sink failures */

static void sink_scenario(rt_engine *e, int n)
{
    declare(e, 0, 2, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    if (!CHECK(t != NULL))
        return;
    for (int i = 0; i < n; i++) {
        rt_enter(t, 0, 10 * i);
        rt_enter(t, 1, 10 * i + 2);
        rt_exit(t, 1, 10 * i + 5, 0);
        rt_exit(t, 0, 10 * i + 9, 0);
    }
    rt_enter(t, 0, 10 * n);  /* left open for finish */
}

static void test_engine_sink_failure(void)
{
    const int n = 5000;
    /* a clean run, to know how many chunks there are */
    rt_config c;
    memset(&c, 0, sizeof c);
    c.chunk_size = 256;
    fx x;
    rt_engine *e = fx_init(&x, &c);
    REQUIRE(e != NULL);
    sink_scenario(e, n);
    CHECK_EQ_I(rt_engine_finish(e, 10 * n + 10), RT_OK);
    long clean_chunks = x.sink.calls;
    CHECK(clean_chunks > 10);
    fx_free(&x);

    const long fail_points[] = {1, 2, clean_chunks / 2, clean_chunks};
    for (size_t k = 0; k < sizeof fail_points / sizeof fail_points[0]; k++) {
        long fail_at = fail_points[k];
        e = fx_init(&x, &c);
        REQUIRE(e != NULL);
        x.sink.fail_at = fail_at;
        sink_scenario(e, n);
        int rc = rt_engine_finish(e, 10 * n + 10);
        CHECK_MSG(rc == RT_ERR_IO, "sink failing at call %ld: finish returned %d", fail_at, rc);
        const char *msg = NULL;
        CHECK_EQ_I(rt_engine_error(e, &msg), RT_ERR_IO);
        CHECK(msg != NULL && msg[0] != 0);
        /* the stream stops at the failure: the sink is not called again */
        CHECK_EQ_I(x.sink.calls, fail_at);
        /* the chunks before the failure are intact */
        test_events all = {0};
        size_t nch = 0;
        CHECK_EQ_U(test_decode_thread(&x.sink, 0, &all, &nch), 0);
        CHECK_EQ_U(nch, (size_t)(fail_at - 1));
        test_events_free(&all);
        /* the profile is complete */
        prof p;
        if (CHECK(prof_get(e, &p) == RT_OK)) {
            CHECK_FS(&p, 0, (uint64_t)n + 1, (uint64_t)n + 1, 6 * n + 10, 9 * n + 10);
            CHECK_FS(&p, 1, (uint64_t)n, (uint64_t)n, 3 * n, 3 * n);
            prof_free(e, &p);
        }
        /* events after the error and a second finish do not crash */
        rt_thread *t = rt_engine_add_thread(e, 2, 2, 0);
        if (t) {
            rt_enter(t, 0, 1);
            rt_exit(t, 0, 2, 0);
        }
        CHECK_EQ_I(rt_engine_finish(e, 10 * n + 20), RT_ERR_IO);
        fx_free(&x);
    }
}

/* A sink that is full (a size cap) stops the stream of every thread, without an
 * error; the profile goes on; the threads' counts say what reached the sink. */
static void sink_full_at(long full_at)
{
    const int n = 3000;
    rt_config c;
    memset(&c, 0, sizeof c);
    c.chunk_size = 256;
    fx x;
    rt_engine *e = fx_init(&x, &c);
    REQUIRE(e != NULL);
    x.sink.full_at = full_at;
    declare(e, 0, 2, RT_F_SCOPE);
    rt_thread *t1 = rt_engine_add_thread(e, 1, 1, 0);
    rt_thread *t2 = rt_engine_add_thread(e, 2, 2, 0);
    REQUIRE(t1 != NULL && t2 != NULL);
    CHECK_EQ_I(rt_engine_stream_full(e), 0);
    for (int i = 0; i < n; i++) {
        rt_thread *t = i % 3 ? t1 : t2;  /* the second thread's buffer fills more slowly */
        rt_enter(t, 0, 10 * i);
        rt_enter(t, 1, 10 * i + 2);
        if (i == 10)
            CHECK_EQ_I((int)rt_thread_call_no(t), 13);  /* in the stream: the 14th call of t1 */
        rt_exit(t, 1, 10 * i + 5, 0);
        rt_exit(t, 0, 10 * i + 9, 0);
    }
    rt_enter(t1, 0, 10 * n);
    CHECK_EQ_I(rt_engine_stream_full(e), 1);
    CHECK_EQ_I((int)rt_thread_call_no(t1), -1);  /* no more calls in the stream */
    CHECK_EQ_I(rt_engine_finish(e, 10 * n + 10), RT_OK);
    CHECK_EQ_I(rt_engine_error(e, NULL), RT_OK);
    /* the sink is not called after it said it is full */
    CHECK_EQ_I(x.sink.calls, full_at);
    for (uint32_t ti = 0; ti < 2; ti++) {
        test_events ev = {0};
        size_t nch = 0;
        CHECK_EQ_U(test_decode_thread(&x.sink, ti, &ev, &nch), 0);
        uint64_t enters = 0;
        for (size_t i = 0; i < ev.n; i++)
            enters += ev.ev[i].tag == RT_EV_ENTER;
        rt_thread_info info;
        REQUIRE(rt_engine_thread_info(e, ti, &info) == RT_OK);
        /* the counts are those of the chunks the sink kept */
        CHECK_EQ_U(info.n_events, ev.n);
        CHECK_EQ_U(info.stream_calls, enters);
        CHECK_EQ_U(info.chunks, nch);
        if (ti == 0)
            CHECK(nch >= 1 && enters > 0 && enters < 2 * (uint64_t)n);
        test_events_free(&ev);
    }
    /* the profile counts every call */
    prof p;
    if (CHECK(prof_get(e, &p) == RT_OK)) {
        CHECK_EQ_U(p.fs[0].calls, (uint64_t)n + 1);
        CHECK_EQ_U(p.fs[1].calls, (uint64_t)n);
        prof_free(e, &p);
    }
    fx_free(&x);
}

static void test_engine_sink_full(void)
{
    /* chunks end at an ENTER, an EXIT, in either thread */
    for (long k = 5; k <= 12; k++)
        sink_full_at(k);
}

/* ------------------------------------------------- allocation failures */

typedef struct run_result {
    int created;        /* rt_engine_new succeeded */
    int saw_error;      /* some call reported a failure it did not recover from */
    int retried;        /* set_func / add_thread failed, then succeeded when retried */
    int completed;      /* the scenario ran to its end */
    int finish_rc;
    int engine_err;
    int prof_ok;
    prof p;             /* valid when prof_ok */
    unsigned dec_bad;   /* chunk decoding problems */
} run_result;

/* A scenario touching every allocation of the engine: function table and
 * per-thread profile growth (> 256 fids), stack growth (> 64 deep), edge
 * table and edge map growth (> 256 edges), generator pool and map growth
 * (> 64 suspended), resume on another thread, thread table growth (> 8),
 * finish, profile. Every result is checked for NULL / error codes. */
static void alloc_scenario(test_alloc *ta, run_result *out)
{
    memset(out, 0, sizeof *out);
    test_sink sink;
    test_sink_init(&sink);
    rt_config c;
    memset(&c, 0, sizeof c);
    c.chunk_size = 256;
    c.sink = test_sink_fn;
    c.sink_ctx = &sink;
    c.alloc = &ta->a;
    rt_engine *e = rt_engine_new(&c);
    if (!e) {
        out->saw_error = 1;
        test_sink_free(&sink);
        return;
    }
    out->created = 1;
    const uint32_t NF = 300, G0 = 200;
    rt_thread *th[10];
    int64_t now = 0;
    /* a failed declaration or registration leaves the engine usable: retry */
    for (uint32_t f = 0; f < NF; f++) {
        uint32_t flags = f >= G0 ? RT_F_SCOPE | RT_F_GEN : RT_F_SCOPE;
        int rc = rt_engine_set_func(e, f, flags);
        if (rc != RT_OK) {
            if (rc != RT_ERR_NOMEM || rt_engine_nfuncs(e) != f)
                out->dec_bad |= 0x100; /* wrong code or state changed */
            if (rt_engine_set_func(e, f, flags) != RT_OK) {
                out->saw_error = 1;
                goto done;
            }
            out->retried = 1;
        }
    }
    for (int i = 0; i < 10; i++) {
        th[i] = rt_engine_add_thread(e, (uint64_t)i, (uint64_t)i, now);
        if (!th[i]) {
            if (rt_engine_nthreads(e) != (uint32_t)i)
                out->dec_bad |= 0x200;
            th[i] = rt_engine_add_thread(e, (uint64_t)i, (uint64_t)i, now);
            if (!th[i]) {
                out->saw_error = 1;
                goto done;
            }
            out->retried = 1;
        }
    }
    /* deep recursion */
    for (int d = 0; d < 150; d++)
        rt_enter(th[0], (uint32_t)(d % 3), ++now);
    for (int d = 149; d >= 0; d--)
        rt_exit(th[0], (uint32_t)(d % 3), ++now, 0);
    /* many distinct edges, high fids */
    for (uint32_t f = 0; f < G0; f++) {
        rt_enter(th[1], (f * 7) % G0, ++now);
        rt_enter(th[1], f, ++now);
        rt_enter(th[1], (f * 13 + 5) % G0, ++now);
        rt_exit(th[1], (f * 13 + 5) % G0, ++now, 0);
        rt_exit(th[1], f, ++now, 0);
        rt_exit(th[1], (f * 7) % G0, ++now, 0);
    }
    /* 100 suspended generators */
    for (uint32_t g = 0; g < 100; g++) {
        rt_enter(th[2], 1, ++now);
        rt_enter(th[2], G0 + g % 100, ++now);
        rt_suspend(th[2], G0 + g % 100, 0x1000 + g * 8, ++now);
        rt_exit(th[2], 1, ++now, 0);
    }
    /* half resume on other threads, some on the original one */
    for (uint32_t g = 0; g < 100; g++) {
        rt_thread *t = g % 4 == 0 ? th[2] : th[3 + g % 7];
        if (g % 10 == 9) {
            rt_forget(e, 0x1000 + g * 8);
            continue;
        }
        if (g % 5 == 3)
            continue; /* left suspended until finish */
        rt_resume(t, G0 + g % 100, 0x1000 + g * 8, ++now);
        rt_enter(t, g % 50, ++now);
        rt_exit(t, g % 50, ++now, 0);
        if (g % 3 == 0)
            rt_suspend(t, G0 + g % 100, 0x1000 + g * 8, ++now);
        else
            rt_exit(t, G0 + g % 100, ++now, g % 2);
    }
    /* frames left open for finish */
    rt_enter(th[4], 299, ++now);
    rt_enter(th[4], 5, ++now);
    out->finish_rc = rt_engine_finish(e, ++now);
    out->engine_err = rt_engine_error(e, NULL);
    if (out->finish_rc != RT_OK || out->engine_err != RT_OK)
        out->saw_error = 1;
    int prc = prof_get(e, &out->p);
    if (prc == RT_OK) {
        out->prof_ok = 1;
        /* a copy with malloc, so the engine can be freed */
        rt_fstat *fs = malloc(out->p.nf * sizeof *fs);
        rt_edge *ed = malloc((out->p.ne ? out->p.ne : 1) * sizeof *ed);
        if (!fs || !ed)
            abort();
        memcpy(fs, out->p.fs, out->p.nf * sizeof *fs);
        memcpy(ed, out->p.ed, out->p.ne * sizeof *ed);
        rt_engine_free_profile(e, out->p.fs, out->p.ed);
        out->p.fs = fs;
        out->p.ed = ed;
    } else {
        out->saw_error = 1;
    }
    out->completed = 1;
done:
    for (uint32_t i = 0; i < 10; i++) {
        test_events ev = {0};
        out->dec_bad |= test_decode_thread(&sink, i, &ev, NULL);
        test_events_free(&ev);
    }
    rt_engine_free(e);
    test_sink_free(&sink);
}

static void run_result_free(run_result *r)
{
    if (r->prof_ok) {
        free(r->p.fs);
        free(r->p.ed);
    }
    r->prof_ok = 0;
}

static int same_profile(const prof *a, const prof *b)
{
    if (a->nf != b->nf || a->ne != b->ne)
        return 0;
    for (uint32_t f = 0; f < a->nf; f++)
        if (a->fs[f].calls != b->fs[f].calls || a->fs[f].prim_calls != b->fs[f].prim_calls ||
            a->fs[f].own_ns != b->fs[f].own_ns || a->fs[f].cum_ns != b->fs[f].cum_ns)
            return 0;
    for (size_t i = 0; i < a->ne; i++) {
        const rt_edge *x = &a->ed[i];
        const rt_edge *y = prof_edge(b, x->caller, x->callee);
        if (!y || x->calls != y->calls || x->prim_calls != y->prim_calls || x->own_ns != y->own_ns ||
            x->cum_ns != y->cum_ns)
            return 0;
    }
    return 1;
}

/* Counters in a profile are sane (no corruption). */
static int sane_profile(const prof *p)
{
    for (uint32_t f = 0; f < p->nf; f++)
        if (p->fs[f].prim_calls > p->fs[f].calls || p->fs[f].own_ns < 0 || p->fs[f].cum_ns < 0 ||
            p->fs[f].calls > 100000)
            return 0;
    for (size_t i = 0; i < p->ne; i++)
        if (p->ed[i].prim_calls > p->ed[i].calls || p->ed[i].own_ns < 0 || p->ed[i].cum_ns < 0 ||
            p->ed[i].calls > 100000 || (p->ed[i].callee >= p->nf) ||
            (p->ed[i].caller != RT_ROOT && p->ed[i].caller >= p->nf))
            return 0;
    return 1;
}

static void test_engine_alloc_failures(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    run_result ref;
    alloc_scenario(&ta, &ref);
    REQUIRE(ref.completed && !ref.saw_error && ref.prof_ok);
    CHECK_EQ_I(ta.live, 0);
    CHECK_EQ_U(ref.dec_bad, 0);
    CHECK(sane_profile(&ref.p));
    const long K = ta.n_allocs;
    CHECK_MSG(K > 40, "the scenario makes only %ld allocations", K);

    long leaks = 0, silent = 0, corrupt = 0, bad_stream = 0, wrong_code = 0, runs = 0, retried = 0;
    long event_errors = 0;
    for (int rest = 0; rest <= 1; rest++) {
        for (long n = 1; n <= K + 2; n++) {
            test_alloc_init(&ta);
            ta.fail_at = n;
            ta.fail_rest = rest;
            run_result r;
            alloc_scenario(&ta, &r);
            runs++;
            if (ta.live != 0) {
                leaks++;
                CHECK_MSG(0, "fail_at %ld rest %d: %ld blocks leaked", n, rest, ta.live);
            }
            if (ta.n_failed > 0 && !r.saw_error) {
                /* a failure nobody reported, or recovered by retrying: the
                 * result must be exact */
                if (!r.prof_ok || !same_profile(&r.p, &ref.p)) {
                    silent++;
                    CHECK_MSG(0, "fail_at %ld rest %d (retried %d): failure changed the profile", n, rest,
                              r.retried);
                }
            }
            if (ta.n_failed == 0 && (r.saw_error || !r.prof_ok || !same_profile(&r.p, &ref.p)))
                silent++;
            if (r.completed && (r.finish_rc != r.engine_err ||
                                (r.engine_err != RT_OK && r.engine_err != RT_ERR_NOMEM))) {
                wrong_code++;
                CHECK_MSG(0, "fail_at %ld rest %d: finish %d, error %d", n, rest, r.finish_rc, r.engine_err);
            }
            retried += r.retried;
            if (r.engine_err == RT_ERR_NOMEM)
                event_errors++;
            if (r.prof_ok && !sane_profile(&r.p)) {
                corrupt++;
                CHECK_MSG(0, "fail_at %ld rest %d: insane profile", n, rest);
            }
            if (r.dec_bad) {
                bad_stream++;
                CHECK_MSG(0, "fail_at %ld rest %d: malformed chunks (flags %u)", n, rest, r.dec_bad);
            }
            run_result_free(&r);
        }
    }
    CHECK_EQ_I(leaks, 0);
    CHECK_EQ_I(silent, 0);
    CHECK_EQ_I(wrong_code, 0);
    CHECK_EQ_I(corrupt, 0);
    CHECK_EQ_I(bad_stream, 0);
    CHECK(runs == 2 * (K + 2));
    /* both kinds of failure were exercised */
    CHECK(retried > 0);
    CHECK(event_errors > 0);
    run_result_free(&ref);
}

/* A fatal allocation failure inside an event: rt_engine_error reports
 * RT_ERR_NOMEM, later events are ignored, finish and free are clean. */
static void test_engine_alloc_failure_in_event(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    declare(e, 0, 1, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, 0, 1);
    rt_exit(t, 0, 2, 0);
    /* the stack must grow past 64 frames: refuse it */
    for (int d = 0; d < 63; d++)
        rt_enter(t, 0, 3 + d);
    CHECK_EQ_U(rt_thread_depth(t), 63);
    x.ta.fail_at = x.ta.n_allocs + 1;
    x.ta.fail_rest = 1;
    rt_enter(t, 0, 100);
    rt_enter(t, 0, 101);
    CHECK_EQ_U(rt_thread_depth(t), 64);
    const char *msg = NULL;
    CHECK_EQ_I(rt_engine_error(e, &msg), RT_ERR_NOMEM);
    CHECK(msg != NULL && msg[0] != 0);
    rt_enter(t, 0, 102);
    CHECK_EQ_I(rt_exit(t, 0, 103, 0), 0);
    CHECK_EQ_I(rt_engine_finish(e, 200), RT_ERR_NOMEM);
    prof p;
    x.ta.fail_at = 0;
    if (CHECK(prof_get(e, &p) == RT_OK)) {
        CHECK(p.fs[0].calls >= 1);
        prof_free(e, &p);
    }
    /* the profile itself can fail */
    x.ta.fail_at = x.ta.n_allocs + 1;
    x.ta.fail_rest = 0;
    CHECK_EQ_I(prof_get(e, &p), RT_ERR_NOMEM);
    x.ta.fail_at = x.ta.n_allocs + 2;
    CHECK_EQ_I(prof_get(e, &p), RT_ERR_NOMEM);
    fx_free(&x);
}

/* Function ids too large for any table fail cleanly (no endless doubling). */
static void test_engine_huge_fid(void)
{
    fx x;
    rt_engine *e = fx_init(&x, NULL);
    REQUIRE(e != NULL);
    x.ta.max_size = (size_t)1 << 30;
    CHECK_EQ_I(rt_engine_set_func(e, RT_ROOT, 0), RT_ERR_STATE);
    CHECK_EQ_I(rt_engine_set_func(e, 0x80000000u, 0), RT_ERR_NOMEM);
    CHECK_EQ_I(rt_engine_set_func(e, RT_ROOT - 1, 0), RT_ERR_NOMEM);
    CHECK_EQ_I(rt_engine_set_func(e, 0x40000000u, 0), RT_ERR_NOMEM); /* 4 GiB table refused */
    CHECK_EQ_U(rt_engine_nfuncs(e), 0);
    CHECK_EQ_I(rt_engine_set_func(e, 3, RT_F_SCOPE), RT_OK);
    CHECK_EQ_U(rt_engine_nfuncs(e), 4);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, 3, 1);
    /* an undeclared huge fid in an event: the per-thread table cannot grow */
    rt_enter(t, 0x80000001u, 2);
    CHECK_EQ_I(rt_engine_error(e, NULL), RT_ERR_NOMEM);
    CHECK_EQ_I(rt_engine_finish(e, 3), RT_ERR_NOMEM);
    fx_free(&x);
}

/* An absurd chunk size: the buffer cannot be allocated (and its size must
 * not wrap around to a small allocation). */
static void test_engine_huge_chunk_size(void)
{
    rt_config c;
    memset(&c, 0, sizeof c);
    c.chunk_size = SIZE_MAX - 3;
    fx x;
    rt_engine *e = fx_init(&x, &c);
    REQUIRE(e != NULL);
    x.ta.max_size = (size_t)1 << 30;
    declare(e, 0, 1, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    CHECK(t == NULL);
    CHECK_EQ_U(rt_engine_nthreads(e), 0);
    if (t) {
        for (int i = 0; i < 100; i++) {
            rt_enter(t, 0, i);
            rt_exit(t, 0, i, 0);
        }
    }
    fx_free(&x);
}

/* flush_ns: a chunk older than that goes to the sink at the next event, not full;
 * the stream still decodes to every event, in order, across the chunks. */
static void test_engine_flush_by_age(void)
{
    rt_config c;
    memset(&c, 0, sizeof c);
    c.chunk_size = 4096;
    c.flush_ns = 1000;
    fx x;
    rt_engine *e = fx_init(&x, &c);
    REQUIRE(e != NULL);
    declare(e, 0, 2, RT_F_SCOPE);
    rt_thread *t = rt_engine_add_thread(e, 1, 1, 0);
    REQUIRE(t != NULL);
    rt_enter(t, 0, 10);
    rt_enter(t, 1, 500);
    CHECK_EQ_I(rt_exit(t, 1, 900, 0), 1);
    CHECK_EQ_U(x.sink.n, 0);        /* under 1000 ns old: kept */
    rt_enter(t, 1, 1500);           /* the chunk began at 0: handed over first */
    CHECK_EQ_U(x.sink.n, 1);
    CHECK_EQ_I(rt_exit(t, 1, 1600, 0), 1);
    CHECK_EQ_U(x.sink.n, 1);        /* the new chunk began at 900 */
    CHECK_EQ_I(rt_exit(t, 0, 5000, 0), 1);
    CHECK_EQ_U(x.sink.n, 2);
    rt_engine_finish(e, 5000);
    struct { int tag; int64_t t; } got[16];
    size_t n = 0;
    for (size_t i = 0; i < x.sink.n; i++) {
        rt_stream_reader rd;
        rt_stream_reader_init(&rd, x.sink.chunks[i].data, x.sink.chunks[i].len, 0);
        rt_event ev;
        int rc;
        while ((rc = rt_stream_next(&rd, &ev)) == 1 && n < 16) {
            if (ev.tag == RT_EV_TIME)
                continue;
            got[n].tag = ev.tag;
            got[n].t = ev.t;
            n++;
        }
        CHECK_EQ_I(rc, 0);
    }
    CHECK_EQ_U(n, 6);
    const int64_t want_t[6] = {10, 500, 900, 1500, 1600, 5000};
    const int want_tag[6] = {RT_EV_ENTER, RT_EV_ENTER, RT_EV_EXIT, RT_EV_ENTER, RT_EV_EXIT, RT_EV_EXIT};
    for (size_t i = 0; i < 6 && i < n; i++) {
        CHECK_EQ_I(got[i].tag, want_tag[i]);
        CHECK_EQ_I(got[i].t, want_t[i]);
    }
    fx_free(&x);
}

void suite_engine(void)
{
    RT_RUN(test_engine_flush_by_age);
    RT_RUN(test_engine_call_tree);
    RT_RUN(test_engine_time_clamped);
    RT_RUN(test_engine_pause_profile_and_stream);
    RT_RUN(test_engine_pause_threads_generators_finish);
    RT_RUN(test_engine_profile_recursion);
    RT_RUN(test_engine_profile_mutual_recursion);
    RT_RUN(test_engine_profile_two_threads);
    RT_RUN(test_engine_generator_slices);
    RT_RUN(test_engine_generator_resume_back);
    RT_RUN(test_engine_generator_unknown_key);
    RT_RUN(test_engine_generator_key_reused);
    RT_RUN(test_engine_generator_suspended_at_finish);
    RT_RUN(test_engine_generator_other_thread);
    RT_RUN(test_engine_generator_completion_recursion);
    RT_RUN(test_engine_generator_reserved_key);
    RT_RUN(test_engine_exit_not_open);
    RT_RUN(test_engine_exit_lost);
    RT_RUN(test_engine_exit_exception);
    RT_RUN(test_engine_finish_closes_frames);
    RT_RUN(test_engine_no_sink);
    RT_RUN(test_engine_filter_external);
    RT_RUN(test_engine_filter_imports);
    RT_RUN(test_engine_filter_only_functions);
    RT_RUN(test_engine_filter_generator);
    RT_RUN(test_engine_chunking);
    RT_RUN(test_engine_sink_failure);
    RT_RUN(test_engine_sink_full);
    RT_RUN(test_engine_alloc_failures);
    RT_RUN(test_engine_alloc_failure_in_event);
    RT_RUN(test_engine_huge_fid);
    RT_RUN(test_engine_huge_chunk_size);
}
