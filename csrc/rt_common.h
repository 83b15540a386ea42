/*
 * rt_common.h -- shared definitions of the retracer engine (pure C, no Python.h).
 *
 * Every exported symbol of the engine starts with `rt_` (functions) or `RT_`
 * (macros). The engine never calls exit(), never prints, and holds no global
 * mutable state: every piece of state lives in an object the caller owns.
 * Memory is obtained through an rt_allocator so tests can inject failures.
 */
#ifndef RT_COMMON_H
#define RT_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Return codes used by every fallible engine function. */
#define RT_OK 0
#define RT_ERR_NOMEM (-1)   /* an allocation failed; the object is unchanged */
#define RT_ERR_IO (-2)      /* the sink reported a write error */
#define RT_ERR_STATE (-3)   /* the call does not fit the object's state */
#define RT_ERR_DATA (-4)    /* malformed input (decoder) */

#if defined(__GNUC__)
#define RT_LIKELY(x) __builtin_expect(!!(x), 1)
#define RT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define RT_INLINE static inline __attribute__((always_inline))
#else
#define RT_LIKELY(x) (x)
#define RT_UNLIKELY(x) (x)
#define RT_INLINE static inline
#endif

/*
 * Pluggable allocator. `ctx` is passed back to every function unchanged.
 * rt_alloc_malloc/realloc return NULL on failure; free accepts NULL.
 */
typedef struct rt_allocator {
    void *(*malloc_fn)(void *ctx, size_t size);             /* like malloc */
    void *(*realloc_fn)(void *ctx, void *ptr, size_t size); /* like realloc */
    void (*free_fn)(void *ctx, void *ptr);                  /* like free */
    void *ctx;                                              /* borrowed, opaque */
} rt_allocator;

/* The allocator backed by the C library (static, read-only). */
const rt_allocator *rt_default_allocator(void);

RT_INLINE void *rt_malloc(const rt_allocator *a, size_t n) { return a->malloc_fn(a->ctx, n); }
RT_INLINE void *rt_realloc(const rt_allocator *a, void *p, size_t n) { return a->realloc_fn(a->ctx, p, n); }
RT_INLINE void rt_free(const rt_allocator *a, void *p) { a->free_fn(a->ctx, p); }

/*
 * Make the array *p (elements of `elem` bytes, capacity *cap elements) hold at
 * least `need` elements: capacity doubles, starting at `first`. RT_OK, or
 * RT_ERR_NOMEM with *p and *cap unchanged.
 */
int rt_grow(const rt_allocator *a, void **p, size_t *cap, size_t need, size_t elem, size_t first);

#endif
