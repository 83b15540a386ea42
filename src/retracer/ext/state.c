/*
 * state.c -- the binding's only mutable globals (documented in binding.h):
 * the session state G and the per-thread pointers, plus the allocator the
 * binding gives the engine and the capture policy.
 */
#include "binding.h"

rt_binding G = {.spool_fd = -1, .journal_fd = -1};

_Thread_local rt_py_tls_state rt_py_tls RT_PY_TLS_MODEL;

static void *rt__raw_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return PyMem_RawMalloc(n);
}

static void *rt__raw_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return PyMem_RawRealloc(p, n);
}

static void rt__raw_free(void *ctx, void *p)
{
    (void)ctx;
    PyMem_RawFree(p);
}

static const rt_allocator rt__raw_allocator = {rt__raw_malloc, rt__raw_realloc, rt__raw_free, NULL};

const rt_allocator *rt_py_allocator(void) { return &rt__raw_allocator; }
