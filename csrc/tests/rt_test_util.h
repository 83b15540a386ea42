/*
 * rt_test_util.h -- helpers shared by the engine's unit tests: an allocator
 * that counts blocks and fails on demand, a sink that keeps every chunk in
 * memory, and decoding of a thread's chunks back into events.
 */
#ifndef RT_TEST_UTIL_H
#define RT_TEST_UTIL_H

#include "../rt_common.h"
#include "../rt_stream.h"

/* ------------------------------------------------------------- allocator */

typedef struct test_alloc {
    rt_allocator a;     /* pass &ta.a to the code under test */
    long n_allocs;      /* malloc/realloc requests seen (failed ones included) */
    long fail_at;       /* 1-based request number that fails; 0: none */
    int fail_rest;      /* 1: every request from fail_at on fails too */
    size_t max_size;    /* requests above this size fail; 0: no limit */
    long n_failed;      /* requests refused */
    long live;          /* blocks currently allocated */
    long frees;         /* free calls with a non-NULL pointer */
} test_alloc;

void test_alloc_init(test_alloc *ta);

/* --------------------------------------------------------------- sink */

typedef struct test_chunk {
    uint32_t thread_idx, seq;
    uint8_t *data;
    size_t len;
    uint64_t n_events;  /* as reported by the engine */
} test_chunk;

typedef struct test_sink {
    test_chunk *chunks;
    size_t n, cap;
    long calls;         /* sink invocations */
    long fail_at;       /* 1-based call number that returns an error; 0: none */
    int fail_rest;      /* 1: every call from fail_at on fails */
    long full_at;       /* 1-based call number that keeps the chunk and returns RT_SINK_FULL */
} test_sink;

void test_sink_init(test_sink *s);
void test_sink_free(test_sink *s);
/* The rt_sink_fn; `ctx` is a test_sink. Failed calls keep nothing. */
int test_sink_fn(void *ctx, uint32_t thread_idx, uint32_t seq, const uint8_t *data, size_t len,
                 uint64_t n_events);

/* ---------------------------------------------------------- decoding */

typedef struct test_events {
    rt_event *ev;
    size_t n, cap;
} test_events;

/* Problems found while decoding a thread's chunks (bit flags). */
#define TEST_DEC_DATA 1u       /* rt_stream_next returned RT_ERR_DATA */
#define TEST_DEC_SEQ 2u        /* seq numbers are not 0, 1, 2, ... in arrival order */
#define TEST_DEC_NO_TIME 4u    /* a chunk does not start with a TIME event */
#define TEST_DEC_COUNT 8u      /* a chunk's n_events differs from its decoded events */
#define TEST_DEC_TIME_JUMP 16u /* a chunk's TIME differs from the previous event's time */

/*
 * Decode every chunk of thread `thread_idx`, in arrival order, appending
 * all events (TIME included) to `out`. Returns a mask of TEST_DEC_* flags
 * (0 when the chunks are well-formed). `*n_chunks` gets the chunk count.
 */
unsigned test_decode_thread(const test_sink *s, uint32_t thread_idx, test_events *out,
                            size_t *n_chunks);

/* The same without TIME events. */
unsigned test_decode_calls(const test_sink *s, uint32_t thread_idx, test_events *out);

void test_events_push(test_events *v, rt_event ev);
void test_events_free(test_events *v);

/* Deterministic PRNG (xorshift64*). */
uint64_t test_rand(uint64_t *state);

#endif
