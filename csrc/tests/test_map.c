/* test_map.c -- rt_map: put/get/overwrite/delete, randomised against a
 * reference array, the reserved key, growth and allocation failure. */
#include <stdlib.h>

#include "../rt_map.h"
#include "rt_test.h"
#include "rt_test_util.h"

/* Every stored key can be found, and the slot count matches len. */
static int map_consistent(const rt_map *m)
{
    size_t used = 0;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key == RT_MAP_EMPTY)
            continue;
        used++;
        uint64_t *v = rt_map_get(m, m->slots[i].key);
        if (v != &m->slots[i].value)
            return 0;
    }
    return used == m->len;
}

static void test_map_basic(void)
{
    rt_map m;
    rt_map_init(&m, rt_default_allocator());
    CHECK_EQ_U(m.cap, 0);
    CHECK_EQ_U(m.len, 0);
    CHECK(rt_map_get(&m, 1) == NULL);
    CHECK_EQ_I(rt_map_del(&m, 1), 0);

    CHECK_EQ_I(rt_map_put(&m, 1, 10), RT_OK);
    CHECK_EQ_I(rt_map_put(&m, 2, 20), RT_OK);
    CHECK_EQ_I(rt_map_put(&m, 0, 30), RT_OK);
    CHECK_EQ_I(rt_map_put(&m, RT_MAP_EMPTY - 1, 40), RT_OK);
    CHECK_EQ_U(m.len, 4);
    uint64_t *v = rt_map_get(&m, 1);
    REQUIRE(v != NULL);
    CHECK_EQ_U(*v, 10);
    v = rt_map_get(&m, 2);
    REQUIRE(v != NULL);
    CHECK_EQ_U(*v, 20);
    v = rt_map_get(&m, 0);
    REQUIRE(v != NULL);
    CHECK_EQ_U(*v, 30);
    v = rt_map_get(&m, RT_MAP_EMPTY - 1);
    REQUIRE(v != NULL);
    CHECK_EQ_U(*v, 40);
    CHECK(rt_map_get(&m, 3) == NULL);

    /* overwrite: value replaced, len unchanged */
    CHECK_EQ_I(rt_map_put(&m, 1, 11), RT_OK);
    CHECK_EQ_U(m.len, 4);
    v = rt_map_get(&m, 1);
    REQUIRE(v != NULL);
    CHECK_EQ_U(*v, 11);
    /* the returned pointer writes through */
    *v = 12;
    CHECK_EQ_U(*rt_map_get(&m, 1), 12);

    /* delete */
    CHECK_EQ_I(rt_map_del(&m, 1), 1);
    CHECK(rt_map_get(&m, 1) == NULL);
    CHECK_EQ_I(rt_map_del(&m, 1), 0);
    CHECK_EQ_I(rt_map_del(&m, 99), 0);
    CHECK_EQ_U(m.len, 3);
    CHECK_EQ_U(*rt_map_get(&m, 2), 20);
    CHECK_EQ_U(*rt_map_get(&m, 0), 30);
    CHECK(map_consistent(&m));

    /* free empties the map; it is reusable */
    rt_map_free(&m);
    CHECK_EQ_U(m.len, 0);
    CHECK_EQ_U(m.cap, 0);
    CHECK(rt_map_get(&m, 2) == NULL);
    CHECK_EQ_I(rt_map_put(&m, 2, 21), RT_OK);
    CHECK_EQ_U(*rt_map_get(&m, 2), 21);
    rt_map_free(&m);
}

static void test_map_reserved_key(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    rt_map m;
    rt_map_init(&m, &ta.a);
    /* empty map: rejected without allocating */
    CHECK_EQ_I(rt_map_put(&m, RT_MAP_EMPTY, 1), RT_ERR_STATE);
    CHECK_EQ_U(m.len, 0);
    CHECK_EQ_U(ta.n_allocs, 0);
    CHECK(rt_map_get(&m, RT_MAP_EMPTY) == NULL);
    CHECK_EQ_I(rt_map_del(&m, RT_MAP_EMPTY), 0);

    /* non-empty map: rejected, nothing changes */
    for (uint64_t k = 0; k < 5; k++)
        CHECK_EQ_I(rt_map_put(&m, k, k + 100), RT_OK);
    CHECK_EQ_I(rt_map_put(&m, RT_MAP_EMPTY, 1), RT_ERR_STATE);
    CHECK_EQ_U(m.len, 5);
    /* the reserved key is never found, and deleting it is a no-op */
    CHECK(rt_map_get(&m, RT_MAP_EMPTY) == NULL);
    CHECK_EQ_I(rt_map_del(&m, RT_MAP_EMPTY), 0);
    CHECK_EQ_U(m.len, 5);
    for (uint64_t k = 0; k < 5; k++) {
        uint64_t *v = rt_map_get(&m, k);
        if (CHECK(v != NULL))
            CHECK_EQ_U(*v, k + 100);
    }
    CHECK(map_consistent(&m));
    rt_map_free(&m);
    CHECK_EQ_I(ta.live, 0);
}

static void test_map_growth(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    rt_map m;
    rt_map_init(&m, &ta.a);
    const size_t n = 20000;
    int ok = 1;
    for (size_t k = 0; k < n; k++) {
        if (rt_map_put(&m, (uint64_t)k * 7919u, k) != RT_OK)
            ok = 0;
        /* capacity: the smallest power of two >= 16 holding len at 1/2 load */
        size_t want = 16;
        while (m.len * 2 > want)
            want *= 2;
        if (m.cap != want || m.len != k + 1)
            ok = 0;
    }
    CHECK(ok);
    CHECK_EQ_U(m.len, n);
    CHECK_EQ_U(m.cap, 65536);
    /* one slot array live at a time */
    CHECK_EQ_I(ta.live, 1);
    /* 16 -> 65536: 13 allocations */
    CHECK_EQ_I(ta.n_allocs, 13);
    size_t missing = 0;
    for (size_t k = 0; k < n; k++) {
        uint64_t *v = rt_map_get(&m, (uint64_t)k * 7919u);
        if (!v || *v != k)
            missing++;
    }
    CHECK_EQ_U(missing, 0);
    CHECK(map_consistent(&m));
    /* deleting everything keeps the capacity and leaves an empty table */
    for (size_t k = 0; k < n; k++)
        if (rt_map_del(&m, (uint64_t)k * 7919u) != 1)
            missing++;
    CHECK_EQ_U(missing, 0);
    CHECK_EQ_U(m.len, 0);
    CHECK_EQ_U(m.cap, 65536);
    CHECK(map_consistent(&m));
    rt_map_free(&m);
    CHECK_EQ_I(ta.live, 0);
}

#define NKEYS 3000

static uint64_t key_of(size_t i)
{
    switch (i % 5) {
    case 0: return (uint64_t)i;                              /* small, dense */
    case 1: return (uint64_t)i << 32;                        /* packed ids */
    case 2: return RT_MAP_EMPTY - 1 - (uint64_t)i;           /* next to the reserved key */
    case 3: return (uint64_t)i * 0x9E3779B97F4A7C15ULL;      /* scattered */
    default: return 0x7f0000000000ULL + (uint64_t)i * 64;    /* aligned pointers */
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_map_random_vs_reference(void)
{
    /* the key universe is made of distinct, non-reserved keys */
    uint64_t *sorted = malloc(NKEYS * sizeof *sorted);
    REQUIRE(sorted != NULL);
    for (size_t i = 0; i < NKEYS; i++)
        sorted[i] = key_of(i);
    qsort(sorted, NKEYS, sizeof *sorted, cmp_u64);
    int distinct = 1;
    for (size_t i = 1; i < NKEYS; i++)
        if (sorted[i] == sorted[i - 1] || sorted[i] == RT_MAP_EMPTY)
            distinct = 0;
    free(sorted);
    REQUIRE(distinct);

    static uint64_t ref_val[NKEYS];
    static unsigned char ref_has[NKEYS];
    memset(ref_has, 0, sizeof ref_has);
    size_t ref_len = 0;

    rt_map m;
    rt_map_init(&m, rt_default_allocator());
    uint64_t seed = 0x5eed1234abcdULL;
    long bad_get = 0, bad_put = 0, bad_del = 0, bad_scan = 0;
    const long nops = 400000;
    for (long op = 0; op < nops; op++) {
        /* phases: mostly inserts, then mostly deletes, so the table fills and drains */
        int phase = (int)((op / 50000) % 2);
        uint64_t r = test_rand(&seed);
        size_t i = (size_t)(r >> 20) % NKEYS;
        unsigned kind = (unsigned)(r % 100);
        unsigned put_pct = phase == 0 ? 60 : 25;
        if (kind < put_pct) {
            uint64_t val = test_rand(&seed);
            if (rt_map_put(&m, key_of(i), val) != RT_OK)
                bad_put++;
            if (!ref_has[i])
                ref_len++;
            ref_has[i] = 1;
            ref_val[i] = val;
        } else if (kind < 85) {
            int rc = rt_map_del(&m, key_of(i));
            if (rc != (int)ref_has[i])
                bad_del++;
            if (ref_has[i])
                ref_len--;
            ref_has[i] = 0;
        } else {
            uint64_t *v = rt_map_get(&m, key_of(i));
            if (ref_has[i] ? (!v || *v != ref_val[i]) : v != NULL)
                bad_get++;
        }
        if (m.len != ref_len)
            bad_scan++;
        if (op % 5000 == 4999 || op == nops - 1) {
            for (size_t k = 0; k < NKEYS; k++) {
                uint64_t *v = rt_map_get(&m, key_of(k));
                if (ref_has[k] ? (!v || *v != ref_val[k]) : v != NULL)
                    bad_scan++;
            }
            if (!map_consistent(&m))
                bad_scan++;
        }
    }
    CHECK_EQ_I(bad_put, 0);
    CHECK_EQ_I(bad_del, 0);
    CHECK_EQ_I(bad_get, 0);
    CHECK_EQ_I(bad_scan, 0);
    CHECK_EQ_U(m.len, ref_len);
    rt_map_free(&m);
}

/* Keys that all hash to the same home slot in a 16-slot table: long probe
 * chains that wrap around the end of the table, then deletions from the
 * middle of the chain (backward shift). */
static void test_map_collisions_wraparound(void)
{
    rt_map m;
    rt_map_init(&m, rt_default_allocator());
    uint64_t keys[7];
    size_t nk = 0;
    for (uint64_t k = 0; nk < 7 && k < 1000000; k++)
        if ((rt_map_hash(k) & 15) == 14)
            keys[nk++] = k;
    REQUIRE(nk == 7);
    for (size_t i = 0; i < nk; i++)
        CHECK_EQ_I(rt_map_put(&m, keys[i], i), RT_OK);
    CHECK_EQ_U(m.cap, 16);
    for (size_t d = 0; d < nk; d++) {
        /* delete from the middle outward */
        size_t victim = (3 + d * 5) % nk;
        CHECK_EQ_I(rt_map_del(&m, keys[victim]), 1);
        keys[victim] = RT_MAP_EMPTY; /* mark deleted in our list */
        for (size_t i = 0; i < nk; i++) {
            if (keys[i] == RT_MAP_EMPTY)
                continue;
            uint64_t *v = rt_map_get(&m, keys[i]);
            if (CHECK(v != NULL))
                CHECK_EQ_U(*v, i);
        }
        CHECK(map_consistent(&m));
    }
    CHECK_EQ_U(m.len, 0);
    rt_map_free(&m);
}

static void test_map_nomem(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    rt_map m;
    rt_map_init(&m, &ta.a);
    /* first insertion cannot allocate: map unchanged */
    ta.fail_at = 1;
    CHECK_EQ_I(rt_map_put(&m, 5, 50), RT_ERR_NOMEM);
    CHECK_EQ_U(m.len, 0);
    CHECK_EQ_U(m.cap, 0);
    CHECK(rt_map_get(&m, 5) == NULL);
    /* fill to the growth threshold */
    ta.fail_at = 0;
    for (uint64_t k = 0; k < 8; k++)
        CHECK_EQ_I(rt_map_put(&m, k, k * 10), RT_OK);
    CHECK_EQ_U(m.cap, 16);
    /* growth fails: map unchanged, existing keys intact */
    ta.fail_at = ta.n_allocs + 1;
    ta.fail_rest = 1;
    CHECK_EQ_I(rt_map_put(&m, 100, 1), RT_ERR_NOMEM);
    CHECK_EQ_U(m.len, 8);
    CHECK_EQ_U(m.cap, 16);
    CHECK(rt_map_get(&m, 100) == NULL);
    for (uint64_t k = 0; k < 8; k++) {
        uint64_t *v = rt_map_get(&m, k);
        if (CHECK(v != NULL))
            CHECK_EQ_U(*v, k * 10);
    }
    /* overwriting and deleting never allocate */
    CHECK_EQ_I(rt_map_put(&m, 3, 33), RT_OK);
    CHECK_EQ_U(*rt_map_get(&m, 3), 33);
    CHECK_EQ_I(rt_map_del(&m, 4), 1);
    CHECK_EQ_I(rt_map_put(&m, 100, 1), RT_OK); /* room again after the delete */
    CHECK(map_consistent(&m));
    rt_map_free(&m);
    CHECK_EQ_I(ta.live, 0);
}

void suite_map(void)
{
    RT_RUN(test_map_basic);
    RT_RUN(test_map_reserved_key);
    RT_RUN(test_map_growth);
    RT_RUN(test_map_random_vs_reference);
    RT_RUN(test_map_collisions_wraparound);
    RT_RUN(test_map_nomem);
}
