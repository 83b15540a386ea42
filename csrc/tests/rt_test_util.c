/* rt_test_util.c -- shared helpers of the engine's unit tests. */
#include <stdlib.h>
#include <string.h>

#include "rt_test_util.h"
#include "rt_engine.h"

/* ------------------------------------------------------------- allocator */

static int test__refuse(test_alloc *ta, size_t n)
{
    ta->n_allocs++;
    int refuse = 0;
    if (ta->fail_at > 0 && (ta->n_allocs == ta->fail_at || (ta->fail_rest && ta->n_allocs > ta->fail_at)))
        refuse = 1;
    if (ta->max_size && n > ta->max_size)
        refuse = 1;
    if (refuse)
        ta->n_failed++;
    return refuse;
}

static void *test__malloc(void *ctx, size_t n)
{
    test_alloc *ta = ctx;
    if (test__refuse(ta, n))
        return NULL;
    void *p = malloc(n ? n : 1);
    if (p)
        ta->live++;
    return p;
}

static void *test__realloc(void *ctx, void *p, size_t n)
{
    test_alloc *ta = ctx;
    if (test__refuse(ta, n))
        return NULL;
    void *q = realloc(p, n ? n : 1);
    if (q && !p)
        ta->live++;
    return q;
}

static void test__free(void *ctx, void *p)
{
    test_alloc *ta = ctx;
    if (p) {
        ta->live--;
        ta->frees++;
    }
    free(p);
}

void test_alloc_init(test_alloc *ta)
{
    memset(ta, 0, sizeof *ta);
    ta->a.malloc_fn = test__malloc;
    ta->a.realloc_fn = test__realloc;
    ta->a.free_fn = test__free;
    ta->a.ctx = ta;
}

/* --------------------------------------------------------------- sink */

void test_sink_init(test_sink *s) { memset(s, 0, sizeof *s); }

void test_sink_free(test_sink *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->chunks[i].data);
    free(s->chunks);
    memset(s, 0, sizeof *s);
}

int test_sink_fn(void *ctx, uint32_t thread_idx, uint32_t seq, const uint8_t *data, size_t len,
                 uint64_t n_events)
{
    test_sink *s = ctx;
    s->calls++;
    if (s->fail_at > 0 && (s->calls == s->fail_at || (s->fail_rest && s->calls > s->fail_at)))
        return -1;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 64;
        test_chunk *nc = realloc(s->chunks, ncap * sizeof *nc);
        if (!nc)
            abort();
        s->chunks = nc;
        s->cap = ncap;
    }
    test_chunk *c = &s->chunks[s->n++];
    c->thread_idx = thread_idx;
    c->seq = seq;
    c->len = len;
    c->n_events = n_events;
    c->data = malloc(len ? len : 1);
    if (!c->data)
        abort();
    memcpy(c->data, data, len);
    return s->full_at > 0 && s->calls >= s->full_at ? RT_SINK_FULL : 0;
}

/* ---------------------------------------------------------- decoding */

void test_events_push(test_events *v, rt_event ev)
{
    if (v->n == v->cap) {
        size_t ncap = v->cap ? v->cap * 2 : 64;
        rt_event *ne = realloc(v->ev, ncap * sizeof *ne);
        if (!ne)
            abort();
        v->ev = ne;
        v->cap = ncap;
    }
    v->ev[v->n++] = ev;
}

void test_events_free(test_events *v)
{
    free(v->ev);
    memset(v, 0, sizeof *v);
}

unsigned test_decode_thread(const test_sink *s, uint32_t thread_idx, test_events *out,
                            size_t *n_chunks)
{
    unsigned bad = 0;
    uint32_t want_seq = 0;
    int64_t t = 0;
    size_t nch = 0;
    for (size_t i = 0; i < s->n; i++) {
        const test_chunk *c = &s->chunks[i];
        if (c->thread_idx != thread_idx)
            continue;
        nch++;
        if (c->seq != want_seq)
            bad |= TEST_DEC_SEQ;
        want_seq = c->seq + 1;
        rt_stream_reader r;
        rt_stream_reader_init(&r, c->data, c->len, 0);
        rt_event ev;
        uint64_t k = 0;
        int rc;
        while ((rc = rt_stream_next(&r, &ev)) == 1) {
            if (k == 0) {
                if (ev.tag != RT_EV_TIME)
                    bad |= TEST_DEC_NO_TIME;
                else if (nch > 1 && ev.t != t)
                    bad |= TEST_DEC_TIME_JUMP;
            }
            t = ev.t;
            test_events_push(out, ev);
            k++;
        }
        if (rc != 0)
            bad |= TEST_DEC_DATA;
        if (k != c->n_events)
            bad |= TEST_DEC_COUNT;
    }
    if (n_chunks)
        *n_chunks = nch;
    return bad;
}

unsigned test_decode_calls(const test_sink *s, uint32_t thread_idx, test_events *out)
{
    test_events all = {0};
    unsigned bad = test_decode_thread(s, thread_idx, &all, NULL);
    for (size_t i = 0; i < all.n; i++)
        if (all.ev[i].tag != RT_EV_TIME)
            test_events_push(out, all.ev[i]);
    test_events_free(&all);
    return bad;
}

uint64_t test_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}
