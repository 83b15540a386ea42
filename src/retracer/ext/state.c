/*
 * state.c -- the binding's only mutable globals (documented in binding.h):
 * the session state G and the per-thread pointers, plus the allocator the
 * binding gives the engine and the capture policy.
 */
#include "binding.h"

rt_binding G = {.spool_fd = -1, .journal_fd = -1};

_Thread_local rt_py_tls_state rt_py_tls RT_PY_TLS_MODEL;

/* The engine's C library allocator (rt_default_allocator), not PyMem_Raw*:
 * tracemalloc traces PyMem_Raw*, so a program that measures its own memory with it
 * (a test suite's bounded-memory check) would count the engine's buffers as its
 * own. This wrapper only counts the blocks still live, for the tests
 * (_engine._live_blocks()). */
static long long rt__live_blocks;

static void *rt__counted_malloc(void *ctx, size_t n)
{
    (void)ctx;
    void *p = rt_malloc(rt_default_allocator(), n);
    if (p)
        __atomic_add_fetch(&rt__live_blocks, 1, __ATOMIC_RELAXED);
    return p;
}

static void *rt__counted_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    void *q = rt_realloc(rt_default_allocator(), p, n);
    if (q && !p)
        __atomic_add_fetch(&rt__live_blocks, 1, __ATOMIC_RELAXED);
    return q;
}

static void rt__counted_free(void *ctx, void *p)
{
    (void)ctx;
    if (p)
        __atomic_sub_fetch(&rt__live_blocks, 1, __ATOMIC_RELAXED);
    rt_free(rt_default_allocator(), p);
}

static const rt_allocator rt__counted_allocator = {rt__counted_malloc, rt__counted_realloc, rt__counted_free, NULL};

const rt_allocator *rt_py_allocator(void) { return &rt__counted_allocator; }
long long rt_py_live_blocks(void) { return __atomic_load_n(&rt__live_blocks, __ATOMIC_RELAXED); }
