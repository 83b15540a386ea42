/* rt_common.c -- the default allocator, growing arrays. */
#include <stdint.h>
#include <stdlib.h>

#include "rt_common.h"

static void *rt__libc_malloc(void *ctx, size_t n) { (void)ctx; return malloc(n); }
static void *rt__libc_realloc(void *ctx, void *p, size_t n) { (void)ctx; return realloc(p, n); }
static void rt__libc_free(void *ctx, void *p) { (void)ctx; free(p); }

static const rt_allocator rt__libc_allocator = {
    rt__libc_malloc, rt__libc_realloc, rt__libc_free, NULL,
};

const rt_allocator *rt_default_allocator(void) { return &rt__libc_allocator; }

int rt_grow(const rt_allocator *a, void **p, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return RT_OK;
    size_t ncap = *cap ? *cap : (first ? first : 1);
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return RT_ERR_NOMEM;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem)
        return RT_ERR_NOMEM;
    void *q = rt_realloc(a, *p, ncap * elem);
    if (!q)
        return RT_ERR_NOMEM;
    *p = q;
    *cap = ncap;
    return RT_OK;
}
