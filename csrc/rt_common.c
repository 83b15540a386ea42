/* rt_common.c -- the default allocator. */
#include <stdlib.h>

#include "rt_common.h"

static void *rt__libc_malloc(void *ctx, size_t n) { (void)ctx; return malloc(n); }
static void *rt__libc_realloc(void *ctx, void *p, size_t n) { (void)ctx; return realloc(p, n); }
static void rt__libc_free(void *ctx, void *p) { (void)ctx; free(p); }

static const rt_allocator rt__libc_allocator = {
    rt__libc_malloc, rt__libc_realloc, rt__libc_free, NULL,
};

const rt_allocator *rt_default_allocator(void) { return &rt__libc_allocator; }
