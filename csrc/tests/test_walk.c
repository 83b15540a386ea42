/* test_walk.c -- the call stream to nested spans walker. */
#include <stdlib.h>

#include "../rt_walk.h"
#include "rt_test.h"
#include "rt_test_util.h"

/* A tiny encoder for hand-written streams. */
typedef struct enc {
    uint8_t buf[4096];
    uint8_t *p;
} enc;

static void enc_init(enc *e, int64_t t) { e->p = rt_varint_put(e->buf, ((uint64_t)t << 3) | RT_EV_TIME); }
static void enc_enter(enc *e, uint32_t fid, uint64_t dt)
{
    e->p = rt_varint_put(e->p, ((uint64_t)fid << 3) | RT_EV_ENTER);
    e->p = rt_varint_put(e->p, dt);
}
static void enc_cont(enc *e, uint32_t fid, uint64_t dt)
{
    e->p = rt_varint_put(e->p, ((uint64_t)fid << 3) | RT_EV_ENTER_CONT);
    e->p = rt_varint_put(e->p, dt);
}
static void enc_end(enc *e, int tag, uint64_t dt) { e->p = rt_varint_put(e->p, (dt << 3) | (uint64_t)tag); }
static void enc_resume(enc *e, uint64_t back, uint64_t dt)
{
    e->p = rt_varint_put(e->p, (back << 3) | RT_EV_RESUME);
    e->p = rt_varint_put(e->p, dt);
}
static size_t enc_len(const enc *e) { return (size_t)(e->p - e->buf); }

/* A visitor that records what it saw as text: "(f@t" opens, ")how@t" closes. */
typedef struct rec {
    char s[4096];
    size_t n;
    int stop_after; /* return 99 from the callback numbered stop_after (1-based); 0: never */
    int calls;
    size_t max_depth;
} rec;

static int rec_open(void *ud, const rt_span *s, size_t depth)
{
    rec *r = ud;
    r->n += (size_t)snprintf(r->s + r->n, sizeof r->s - r->n, "%s%u%s@%lld",
                             s->kind == RT_SPAN_RESUME ? "[" : s->kind == RT_SPAN_CONT ? "{" : "(",
                             s->fid, "", (long long)s->t0);
    if (depth > r->max_depth)
        r->max_depth = depth;
    return ++r->calls == r->stop_after ? 99 : RT_OK;
}

static int rec_close(void *ud, const rt_span *s, size_t depth, int64_t t, int how)
{
    rec *r = ud;
    static const char *hows[] = {")", "!", "z", "~"};
    (void)depth;
    r->n += (size_t)snprintf(r->s + r->n, sizeof r->s - r->n, "%s%u@%lld", hows[how], s->fid,
                             (long long)t);
    return ++r->calls == r->stop_after ? 99 : RT_OK;
}

static int walk(const enc *chunks, size_t n, rec *r, rt_walker *w, const rt_allocator *a)
{
    rt_walk_visitor v = {r, rec_open, rec_close};
    rt_walker_init(w, &v, a);
    for (size_t i = 0; i < n; i++) {
        int rc = rt_walker_feed(w, chunks[i].buf, enc_len(&chunks[i]));
        if (rc != RT_OK)
            return rc;
    }
    return rt_walker_finish(w);
}

static void test_walk_nested_calls(void)
{
    enc e;
    rec r = {0};
    rt_walker w;
    enc_init(&e, 100);
    enc_enter(&e, 1, 0);          /* (1@100 */
    enc_enter(&e, 2, 5);          /* (2@105 */
    enc_end(&e, RT_EV_EXIT, 10);  /* )2@115 */
    enc_enter(&e, 3, 1);          /* (3@116 */
    enc_end(&e, RT_EV_EXIT_EXC, 4); /* !3@120 */
    enc_end(&e, RT_EV_EXIT, 2);   /* )1@122 */
    CHECK_EQ_I(walk(&e, 1, &r, &w, rt_default_allocator()), RT_OK);
    CHECK_MSG(strcmp(r.s, "(1@100(2@105)2@115(3@116!3@120)1@122") == 0, "got %s", r.s);
    CHECK_EQ_U(w.events, 7);
    CHECK_EQ_U(w.anomalies, 0);
    CHECK_EQ_U(w.calls, 3);
    rt_walker_free(&w);
}

static void test_walk_generator_slices(void)
{
    /* main(0) enters gen(1), gen yields, main calls f(2), main resumes gen
     * (call number 1: back = calls(3) - 1 = 2), gen returns, main returns. */
    enc e;
    rec r = {0};
    rt_walker w;
    enc_init(&e, 0);
    enc_enter(&e, 0, 0);
    enc_enter(&e, 1, 1);
    enc_end(&e, RT_EV_SUSPEND, 1);
    enc_enter(&e, 2, 1);
    enc_end(&e, RT_EV_EXIT, 1);
    enc_resume(&e, 2, 1);
    enc_end(&e, RT_EV_EXIT, 1);
    enc_end(&e, RT_EV_EXIT, 1);
    CHECK_EQ_I(walk(&e, 1, &r, &w, rt_default_allocator()), RT_OK);
    CHECK_MSG(strcmp(r.s, "(0@0(1@1z1@2(2@3)2@4[1@5)1@6)0@7") == 0, "got %s", r.s);
    CHECK_EQ_U(w.anomalies, 0);
    CHECK_EQ_U(w.suspended.len, 0);
    rt_walker_free(&w);
}

static void test_walk_across_chunks_and_open_at_end(void)
{
    enc c[2];
    rec r = {0};
    rt_walker w;
    enc_init(&c[0], 10);
    enc_enter(&c[0], 7, 0);
    enc_enter(&c[0], 8, 2);
    enc_init(&c[1], 20);          /* next chunk: absolute time again */
    enc_end(&c[1], RT_EV_EXIT, 1); /* )8@21 */
    enc_cont(&c[1], 9, 1);        /* {9@22, left open */
    CHECK_EQ_I(walk(c, 2, &r, &w, rt_default_allocator()), RT_OK);
    CHECK_MSG(strcmp(r.s, "(7@10(8@12)8@21{9@22~9@22~7@22") == 0, "got %s", r.s);
    CHECK_EQ_U(r.max_depth, 1);
    rt_walker_free(&w);
}

static void test_walk_anomalies_are_skipped(void)
{
    enc e;
    rec r = {0};
    rt_walker w;
    enc_init(&e, 0);
    enc_end(&e, RT_EV_EXIT, 1);   /* nothing open */
    enc_resume(&e, 5, 1);         /* back beyond the calls so far */
    enc_enter(&e, 4, 1);
    enc_resume(&e, 1, 1);         /* call 0 is open, not suspended */
    enc_end(&e, RT_EV_EXIT, 1);
    CHECK_EQ_I(walk(&e, 1, &r, &w, rt_default_allocator()), RT_OK);
    CHECK_MSG(strcmp(r.s, "(4@3)4@5") == 0, "got %s", r.s);
    CHECK_EQ_U(w.anomalies, 3);
    rt_walker_free(&w);
}

static void test_walk_malformed_and_stop(void)
{
    enc e;
    rec r = {0};
    rt_walker w;
    enc_init(&e, 0);
    enc_enter(&e, 1, 1);
    *e.p++ = 0x80; /* truncated varint */
    CHECK_EQ_I(walk(&e, 1, &r, &w, rt_default_allocator()), RT_ERR_DATA);
    rt_walker_free(&w);

    rec r2 = {0};
    r2.stop_after = 2;
    enc_init(&e, 0);
    enc_enter(&e, 1, 1);
    enc_enter(&e, 2, 1);
    enc_enter(&e, 3, 1);
    CHECK_EQ_I(walk(&e, 1, &r2, &w, rt_default_allocator()), 99);
    CHECK_EQ_I(r2.calls, 2);
    rt_walker_free(&w);
}

static int count_open(void *ud, const rt_span *s, size_t depth)
{
    (void)s;
    size_t *max = ud;
    if (depth > *max)
        *max = depth;
    return RT_OK;
}

static void test_walk_deep_recursion_and_nomem(void)
{
    /* 100,000 nested calls, chunk by chunk; then the same with the stack's
     * growth refused by the allocator. */
    size_t n = 100000, max = 0;
    size_t cap = n * 4 + 16;
    uint8_t *buf = malloc(cap), *p = buf;
    REQUIRE(buf);
    p = rt_varint_put(p, RT_EV_TIME);
    for (size_t i = 0; i < n; i++) {
        p = rt_varint_put(p, (3u << 3) | RT_EV_ENTER);
        p = rt_varint_put(p, 1);
    }
    for (size_t i = 0; i < n; i++)
        p = rt_varint_put(p, (1u << 3) | RT_EV_EXIT);
    rt_walk_visitor v = {&max, count_open, NULL};
    rt_walker w;
    rt_walker_init(&w, &v, rt_default_allocator());
    CHECK_EQ_I(rt_walker_feed(&w, buf, (size_t)(p - buf)), RT_OK);
    CHECK_EQ_I(rt_walker_finish(&w), RT_OK);
    CHECK_EQ_U(max, n - 1);
    CHECK_EQ_U(w.depth, 0);
    CHECK_EQ_I(w.t, (int64_t)(2 * n));
    rt_walker_free(&w);

    test_alloc ta;
    test_alloc_init(&ta);
    ta.fail_at = 3;
    ta.fail_rest = 1;
    rt_walker_init(&w, &v, &ta.a);
    CHECK_EQ_I(rt_walker_feed(&w, buf, (size_t)(p - buf)), RT_ERR_NOMEM);
    rt_walker_free(&w);
    CHECK_EQ_I(ta.live, 0);
    free(buf);
}

void suite_walk(void)
{
    RT_RUN(test_walk_nested_calls);
    RT_RUN(test_walk_generator_slices);
    RT_RUN(test_walk_across_chunks_and_open_at_end);
    RT_RUN(test_walk_anomalies_are_skipped);
    RT_RUN(test_walk_malformed_and_stop);
    RT_RUN(test_walk_deep_recursion_and_nomem);
}
