/*
 * rt_map.h -- an open-addressing hash map from uint64 keys to uint64 values.
 *
 * Linear probing, power-of-two capacity, grows at 1/2 load, deletion by
 * backward shift (no tombstones). The key RT_MAP_EMPTY (all ones) is reserved.
 * Not thread-safe: callers serialise access (the GIL does in the binding).
 */
#ifndef RT_MAP_H
#define RT_MAP_H

#include "rt_common.h"

#define RT_MAP_EMPTY UINT64_MAX

typedef struct rt_map_slot {
    uint64_t key;   /* RT_MAP_EMPTY when the slot is free */
    uint64_t value; /* caller-defined */
} rt_map_slot;

typedef struct rt_map {
    rt_map_slot *slots;          /* owned; `cap` entries */
    size_t cap;                  /* a power of two, or 0 before the first insert */
    size_t len;                  /* number of keys stored */
    const rt_allocator *alloc;   /* borrowed; must outlive the map */
} rt_map;

/* Initialise an empty map (no allocation). */
void rt_map_init(rt_map *m, const rt_allocator *alloc);

/* Release the slots; the map is empty and reusable afterwards. */
void rt_map_free(rt_map *m);

RT_INLINE uint64_t rt_map_hash(uint64_t k)
{
    /* splitmix64 finaliser: good spread for pointers and packed ids */
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebULL;
    k ^= k >> 31;
    return k;
}

/* Look `key` up; returns a pointer to its value or NULL. The pointer is valid
 * until the next insertion or removal. RT_MAP_EMPTY is never found. */
RT_INLINE uint64_t *rt_map_get(const rt_map *m, uint64_t key)
{
    if (RT_UNLIKELY(m->cap == 0 || key == RT_MAP_EMPTY))
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = (size_t)rt_map_hash(key) & mask;
    for (;;) {
        rt_map_slot *s = &m->slots[i];
        if (s->key == key)
            return &s->value;
        if (s->key == RT_MAP_EMPTY)
            return NULL;
        i = (i + 1) & mask;
    }
}

/* Insert or overwrite `key` -> `value`. Returns RT_OK or RT_ERR_NOMEM (map
 * unchanged). `key` must not be RT_MAP_EMPTY (RT_ERR_STATE). */
int rt_map_put(rt_map *m, uint64_t key, uint64_t value);

/* Remove `key`; returns 1 if it was present, 0 otherwise (always 0 for
 * RT_MAP_EMPTY). */
int rt_map_del(rt_map *m, uint64_t key);

#endif
