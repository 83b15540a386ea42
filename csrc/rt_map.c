/* rt_map.c -- open-addressing uint64 map. */
#include <string.h>

#include "rt_map.h"

void rt_map_init(rt_map *m, const rt_allocator *alloc)
{
    m->slots = NULL;
    m->cap = 0;
    m->len = 0;
    m->alloc = alloc;
}

void rt_map_free(rt_map *m)
{
    rt_free(m->alloc, m->slots);
    m->slots = NULL;
    m->cap = 0;
    m->len = 0;
}

static void rt__map_place(rt_map_slot *slots, size_t cap, uint64_t key, uint64_t value)
{
    size_t mask = cap - 1;
    size_t i = (size_t)rt_map_hash(key) & mask;
    while (slots[i].key != RT_MAP_EMPTY && slots[i].key != key)
        i = (i + 1) & mask;
    slots[i].key = key;
    slots[i].value = value;
}

static int rt__map_grow(rt_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    rt_map_slot *ns = rt_malloc(m->alloc, ncap * sizeof *ns);
    if (!ns)
        return RT_ERR_NOMEM;
    memset(ns, 0xff, ncap * sizeof *ns); /* all keys RT_MAP_EMPTY */
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key != RT_MAP_EMPTY)
            rt__map_place(ns, ncap, m->slots[i].key, m->slots[i].value);
    rt_free(m->alloc, m->slots);
    m->slots = ns;
    m->cap = ncap;
    return RT_OK;
}

int rt_map_put(rt_map *m, uint64_t key, uint64_t value)
{
    if (key == RT_MAP_EMPTY)
        return RT_ERR_STATE;
    uint64_t *v = rt_map_get(m, key);
    if (v) {
        *v = value;
        return RT_OK;
    }
    if ((m->len + 1) * 2 > m->cap) {
        int rc = rt__map_grow(m);
        if (rc != RT_OK)
            return rc;
    }
    rt__map_place(m->slots, m->cap, key, value);
    m->len++;
    return RT_OK;
}

int rt_map_del(rt_map *m, uint64_t key)
{
    if (m->cap == 0 || key == RT_MAP_EMPTY)
        return 0;
    size_t mask = m->cap - 1;
    size_t i = (size_t)rt_map_hash(key) & mask;
    while (m->slots[i].key != key) {
        if (m->slots[i].key == RT_MAP_EMPTY)
            return 0;
        i = (i + 1) & mask;
    }
    /* backward-shift deletion keeps every probe chain unbroken */
    size_t j = i;
    for (;;) {
        m->slots[i].key = RT_MAP_EMPTY;
        for (;;) {
            j = (j + 1) & mask;
            if (m->slots[j].key == RT_MAP_EMPTY) {
                m->len--;
                return 1;
            }
            size_t home = (size_t)rt_map_hash(m->slots[j].key) & mask;
            /* can slot j move to i? only if home is not cyclically in (i, j] */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
                break;
        }
        m->slots[i] = m->slots[j];
        i = j;
    }
}
