/* rt_fold.c -- pattern folding of a thread's call tree (see rt_fold.h, docs/folding.md). */
#include <string.h>

#include "rt_fold.h"

#define RT__HBASE 0x9E3779B97F4A7C15ULL /* odd base of the polynomial hash */
#define RT__GKEY(t, c) ((1ULL << 63) | ((uint64_t)(t) << 32) | (uint64_t)(c))
#define RT__UNSET 0xFFFFFFFFu
#define RT__U32_LIMIT 0xFFFFFFF0u

static int rt__err(rt_fold *f, int rc)
{
    if (f->err == RT_OK)
        f->err = rc;
    return rc;
}

/* Grow `*p` (elements of `size` bytes, capacity `*cap`) to hold at least
 * `need` (rt_grow, starting at 64), within the folder's uint32 indices. */
static int rt__grow(const rt_allocator *a, void **p, uint32_t *cap, uint64_t need, size_t size)
{
    if (need <= *cap)
        return RT_OK;
    if (need > RT__U32_LIMIT)
        return RT_ERR_NOMEM;
    size_t c = *cap;
    if (rt_grow(a, p, &c, (size_t)need, size, 64) != RT_OK)
        return RT_ERR_NOMEM;
    *cap = c > RT__U32_LIMIT ? RT__U32_LIMIT : (uint32_t)c; /* indices stay below the limit */
    return RT_OK;
}

#define RT__GROW(f, arr, cap, need) rt__grow((f)->alloc, (void **)&(arr), &(cap), (need), sizeof *(arr))

/* ------------------------------------------------------------ building */

static int rt__walk_open(void *ud, const rt_span *s, size_t depth)
{
    (void)depth;
    int kind = s->kind == RT_SPAN_RESUME ? RT_FNODE_RESUME
             : s->kind == RT_SPAN_CONT ? RT_FNODE_CONT : RT_FNODE_CALL;
    return rt_fold_open((rt_fold *)ud, s->fid, kind, s->t0);
}

static int rt__walk_close(void *ud, const rt_span *s, size_t depth, int64_t t, int how)
{
    (void)s;
    (void)depth;
    return rt_fold_close((rt_fold *)ud, t, how);
}

void rt_fold_init(rt_fold *f, const rt_fold_opts *opts, const rt_allocator *alloc)
{
    memset(f, 0, sizeof *f);
    f->alloc = alloc;
    if (opts)
        f->opts = *opts;
    else
        f->opts.patterns = 1;
    if (f->opts.max_period == 0)
        f->opts.max_period = RT_FOLD_DEFAULT_PERIOD;
    if (f->opts.max_period > RT_FOLD_PERIOD_LIMIT)
        f->opts.max_period = RT_FOLD_PERIOD_LIMIT;
    rt_walk_visitor v = {f, rt__walk_open, rt__walk_close};
    rt_walker_init(&f->walker, &v, alloc);
    rt_map_init(&f->tmap, alloc);
}

void rt_fold_free(rt_fold *f)
{
    const rt_allocator *a = f->alloc;
    rt_walker_free(&f->walker);
    rt_map_free(&f->tmap);
    void *blocks[] = {f->nodes, f->groups, f->items, f->flist, f->lists, f->open, f->active,
                      f->wkey, f->wref, f->wper, f->wh, f->pw, f->tkeys, f->thash, f->toff,
                      f->tlen, f->aggs, f->cb, f->gcb, f->gaggs, f->parent};
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++)
        rt_free(a, blocks[i]);
    memset(f, 0, sizeof *f);
    f->alloc = a;
}

static int rt__add_root(rt_fold *f, int64_t t0)
{
    int rc = RT__GROW(f, f->nodes, f->cap_nodes, 1);
    if (rc == RT_OK)
        rc = RT__GROW(f, f->open, f->cap_open, 1);
    if (rc != RT_OK)
        return rt__err(f, rc);
    rt_fnode *r = &f->nodes[0];
    r->t0 = r->t1 = t0;
    r->fid = RT_FOLD_ROOT_FID;
    r->end = RT_FOLD_NONE;
    r->calls_before = 0;
    r->info = RT_FNODE_ROOT | (1u << 4);
    f->n_nodes = 1;
    f->open[0] = 0;
    f->n_open = 1;
    return RT_OK;
}

int rt_fold_open(rt_fold *f, uint32_t fid, int kind, int64_t t0)
{
    int rc;
    if (f->err)
        return f->err;
    if (f->finished)
        return rt__err(f, RT_ERR_STATE);
    if (fid > RT_FOLD_MAX_FID)
        return rt__err(f, RT_ERR_DATA);
    if (kind != RT_FNODE_CALL && kind != RT_FNODE_RESUME && kind != RT_FNODE_CONT)
        return rt__err(f, RT_ERR_STATE);
    if (f->n_nodes == 0 && (rc = rt__add_root(f, t0)) != RT_OK)
        return rc;
    if (f->n_nodes >= RT_FOLD_MAX_NODES || (kind != RT_FNODE_RESUME && f->calls >= RT__U32_LIMIT))
        return rt__err(f, RT_ERR_STATE);
    if ((rc = RT__GROW(f, f->nodes, f->cap_nodes, (uint64_t)f->n_nodes + 1)) != RT_OK ||
        (rc = RT__GROW(f, f->open, f->cap_open, (uint64_t)f->n_open + 1)) != RT_OK)
        return rt__err(f, rc);
    if (fid >= f->n_active) {
        uint32_t cap = f->n_active;
        if ((rc = RT__GROW(f, f->active, cap, (uint64_t)fid + 1)) != RT_OK)
            return rt__err(f, rc);
        for (uint32_t i = f->n_active; i < cap; i++)
            f->active[i] = RT_FOLD_NONE;
        f->n_active = cap;
    }
    int64_t tp = f->nodes[f->open[f->n_open - 1]].t0;
    if (t0 < tp) /* never before the enclosing span */
        t0 = tp;
    uint32_t idx = f->n_nodes++;
    rt_fnode *n = &f->nodes[idx];
    n->t0 = n->t1 = t0;
    n->fid = fid;
    n->end = f->active[fid]; /* while open: the enclosing open span of the same fid */
    n->calls_before = f->calls;
    n->info = (uint32_t)kind | (1u << 4);
    if (kind != RT_FNODE_RESUME)
        f->calls++;
    f->active[fid] = idx;
    f->open[f->n_open++] = idx;
    if (f->n_open - 1 > f->max_depth)
        f->max_depth = f->n_open - 1;
    return RT_OK;
}

int rt_fold_close(rt_fold *f, int64_t t, int how)
{
    if (f->err)
        return f->err;
    if (f->finished || f->n_open <= 1)
        return rt__err(f, RT_ERR_STATE);
    uint32_t idx = f->open[--f->n_open];
    rt_fnode *n = &f->nodes[idx];
    if (t < n->t0)
        t = n->t0;
    n->t1 = t;
    n->info |= ((uint32_t)how & 3u) << 2;
    uint32_t prev = n->end;
    f->active[n->fid] = prev;
    if (prev != RT_FOLD_NONE) {
        uint32_t d = rt_fnode_depth(n) + 1;
        rt_fnode *p = &f->nodes[prev];
        if (d > rt_fnode_depth(p))
            p->info = (p->info & 15u) | (d << 4);
    }
    n->end = f->n_nodes;
    return RT_OK;
}

int rt_fold_feed(rt_fold *f, const uint8_t *data, size_t len)
{
    if (f->err)
        return f->err;
    if (f->finished)
        return rt__err(f, RT_ERR_STATE);
    int rc = rt_walker_feed(&f->walker, data, len);
    if (rc != RT_OK)
        return rt__err(f, rc);
    return RT_OK;
}

/* ------------------------------------------------------------- folding */

/* First and last top-level nodes of an item. */
RT_INLINE uint32_t rt__it_n0(const rt_fold *f, uint32_t r)
{
    return (r & RT_FOLD_GROUP) ? f->groups[r & ~RT_FOLD_GROUP].n0 : r;
}


RT_INLINE int64_t rt__it_t0(const rt_fold *f, uint32_t r) { return f->nodes[rt__it_n0(f, r)].t0; }

RT_INLINE int64_t rt__it_t1(const rt_fold *f, uint32_t r)
{
    return (r & RT_FOLD_GROUP) ? f->groups[r & ~RT_FOLD_GROUP].t1 : f->nodes[r].t1;
}

RT_INLINE uint64_t rt__it_dur(const rt_fold *f, uint32_t r)
{
    if (r & RT_FOLD_GROUP)
        return f->groups[r & ~RT_FOLD_GROUP].dur_sum;
    return (uint64_t)(f->nodes[r].t1 - f->nodes[r].t0);
}

RT_INLINE uint64_t rt__it_calls(const rt_fold *f, uint32_t r)
{
    if (r & RT_FOLD_GROUP)
        return rt_fold_group_calls(f, r & ~RT_FOLD_GROUP);
    return rt_fold_node_calls(f, r);
}

/* Equal key sequences? (short: an inline loop beats a library call) */
RT_INLINE int rt__keys_eq(const uint64_t *a, const uint64_t *b, uint32_t p)
{
    for (uint32_t k = 0; k < p; k++)
        if (a[k] != b[k])
            return 0;
    return 1;
}

RT_INLINE uint64_t rt__seghash(const rt_fold *f, uint32_t a, uint32_t p)
{
    return f->wh[a + p] - f->wh[a] * f->pw[p];
}

static int rt__wpush(rt_fold *f, uint64_t key, uint32_t ref, uint32_t per)
{
    if (f->wlen + 1 >= f->wcap) {
        uint32_t cap = f->wcap;
        int rc = RT__GROW(f, f->wkey, cap, (uint64_t)f->wlen + 2);
        cap = f->wcap;
        if (rc == RT_OK)
            rc = RT__GROW(f, f->wref, cap, (uint64_t)f->wlen + 2);
        cap = f->wcap;
        if (rc == RT_OK)
            rc = RT__GROW(f, f->wper, cap, (uint64_t)f->wlen + 2);
        cap = f->wcap;
        if (rc == RT_OK)
            rc = RT__GROW(f, f->wh, cap, (uint64_t)f->wlen + 2);
        if (rc != RT_OK)
            return rc;
        f->wcap = cap;
    }
    uint32_t i = f->wlen++;
    f->wkey[i] = key;
    f->wref[i] = ref;
    f->wper[i] = per;
    f->wh[i + 1] = f->wh[i] * RT__HBASE + rt_map_hash(key);
    return RT_OK;
}

/* The id of the template with these keys (created if new). */
static int rt__intern(rt_fold *f, const uint64_t *keys, uint32_t p, uint64_t h, uint32_t *id)
{
    uint32_t last = f->tlast; /* loops make the same template again and again */
    if (last < f->n_tmpl && f->thash[last] == h && f->tlen[last] == p &&
        rt__keys_eq(f->tkeys + f->toff[last], keys, p)) {
        *id = last;
        return RT_OK;
    }
    uint64_t probe = h;
    for (;;) {
        uint64_t k = probe == RT_MAP_EMPTY ? 0 : probe;
        uint64_t *v = rt_map_get(&f->tmap, k);
        if (!v)
            break;
        uint32_t t = (uint32_t)*v;
        if (f->tlen[t] == p && rt__keys_eq(f->tkeys + f->toff[t], keys, p)) {
            *id = f->tlast = t;
            return RT_OK;
        }
        probe += RT__HBASE;
    }
    if (f->n_tmpl >= 0x7FFFFFFFu)
        return RT_ERR_STATE;
    int rc;
    uint32_t cap = f->cap_tmpl;
    if ((rc = RT__GROW(f, f->thash, cap, (uint64_t)f->n_tmpl + 1)) != RT_OK)
        return rc;
    cap = f->cap_tmpl;
    if ((rc = RT__GROW(f, f->toff, cap, (uint64_t)f->n_tmpl + 1)) != RT_OK)
        return rc;
    cap = f->cap_tmpl;
    if ((rc = RT__GROW(f, f->tlen, cap, (uint64_t)f->n_tmpl + 1)) != RT_OK)
        return rc;
    if ((rc = RT__GROW(f, f->tkeys, f->cap_tkeys, (uint64_t)f->n_tkeys + p)) != RT_OK)
        return rc;
    uint64_t k = probe == RT_MAP_EMPTY ? 0 : probe;
    if ((rc = rt_map_put(&f->tmap, k, f->n_tmpl)) != RT_OK)
        return rc;
    f->cap_tmpl = cap;
    uint32_t t = f->n_tmpl++;
    memcpy(f->tkeys + f->n_tkeys, keys, p * sizeof *keys);
    f->thash[t] = h;
    f->toff[t] = f->n_tkeys;
    f->tlen[t] = p;
    f->n_tkeys += p;
    *id = f->tlast = t;
    return RT_OK;
}

/* Reserve n item slots at the end of the arena; their offset in *off. */
static int rt__items_alloc(rt_fold *f, uint64_t n, uint32_t *off)
{
    int rc = RT__GROW(f, f->items, f->cap_items, (uint64_t)f->n_items + n);
    if (rc != RT_OK)
        return rc;
    *off = f->n_items;
    f->n_items += (uint32_t)n;
    return RT_OK;
}

/* Append n references to group g's items (relocating its region when full). */
static int rt__group_append(rt_fold *f, uint32_t g, const uint32_t *refs, uint32_t n)
{
    rt_fgroup *G = &f->groups[g];
    uint64_t len = (uint64_t)G->period * G->count;
    uint64_t need = len + n; /* n == period: one more repetition */
    uint64_t cap = G->period;
    while (cap < len) /* the room: period * (count rounded up to a power of two) */
        cap *= 2;
    if (need > cap) {
        uint64_t ncap = cap * 2;
        if (ncap < need)
            ncap = need;
        if (ncap > RT__U32_LIMIT)
            return RT_ERR_NOMEM;
        if ((uint64_t)G->first + cap == f->n_items) { /* last region: grow in place */
            int rc = RT__GROW(f, f->items, f->cap_items, (uint64_t)G->first + ncap);
            if (rc != RT_OK)
                return rc;
            f->n_items = G->first + (uint32_t)ncap;
        } else {
            uint32_t off;
            int rc = rt__items_alloc(f, ncap, &off);
            if (rc != RT_OK)
                return rc;
            G = &f->groups[g];
            memcpy(f->items + off, f->items + G->first, (size_t)len * sizeof *f->items);
            G->first = off;
        }
    }
    memcpy(f->items + G->first + len, refs, n * sizeof *refs);
    return RT_OK;
}

/* Case A: the last p items repeat the group at position j once more. */
static int rt__extend(rt_fold *f, uint32_t j, uint32_t p)
{
    uint32_t g = f->wref[j] & ~RT_FOLD_GROUP;
    int rc = rt__group_append(f, g, f->wref + j + 1, p);
    if (rc != RT_OK)
        return rc;
    rt_fgroup *G = &f->groups[g];
    for (uint32_t k = j + 1; k <= j + p; k++) {
        G->dur_sum += rt__it_dur(f, f->wref[k]);
        G->calls += (uint32_t)rt__it_calls(f, f->wref[k]);
    }
    G->t1 = rt__it_t1(f, f->wref[j + p]);
    G->count++;
    f->wlen = j + 1;
    f->wkey[j] = RT__GKEY(G->tmpl, G->count);
    f->wh[j + 1] = f->wh[j] * RT__HBASE + rt_map_hash(f->wkey[j]);
    return RT_OK;
}

/* Case B: the last 2p items are two equal halves: make them a group. */
static int rt__create(rt_fold *f, uint32_t p)
{
    uint32_t s = f->wlen - 2 * p, tmpl, off;
    int rc = rt__intern(f, f->wkey + s + p, p, rt__seghash(f, s + p, p), &tmpl);
    if (rc != RT_OK)
        return rc;
    if ((rc = RT__GROW(f, f->groups, f->cap_groups, (uint64_t)f->n_groups + 1)) != RT_OK)
        return rc;
    if (f->n_groups >= 0x7FFFFFFFu)
        return RT_ERR_STATE;
    if ((rc = rt__items_alloc(f, 2 * (uint64_t)p, &off)) != RT_OK)
        return rc;
    uint32_t g = f->n_groups++;
    rt_fgroup *G = &f->groups[g];
    memcpy(f->items + off, f->wref + s, 2 * p * sizeof *f->wref);
    G->first = off;
    G->period = p;
    G->count = 2;
    G->tmpl = tmpl;
    G->n0 = rt__it_n0(f, f->wref[s]);
    G->t1 = rt__it_t1(f, f->wref[s + 2 * p - 1]);
    G->dur_sum = 0;
    G->calls = 0;
    for (uint32_t k = s; k < s + 2 * p; k++) {
        G->dur_sum += rt__it_dur(f, f->wref[k]);
        G->calls += (uint32_t)rt__it_calls(f, f->wref[k]);
    }
    f->wlen = s;
    return rt__wpush(f, RT__GKEY(tmpl, 2), g | RT_FOLD_GROUP, p);
}

/* After a push: fold while the top of the work stack ends with a repetition,
 * smallest period first. */
static int rt__reduce(rt_fold *f)
{
    const uint32_t P = f->opts.max_period;
    for (;;) {
        uint32_t len = f->wlen;
        uint32_t pmax = len - 1 < P ? len - 1 : P;
        uint64_t last = f->wkey[len - 1];
        int rc = 1; /* 1: nothing folded */
        for (uint32_t p = 1; p <= pmax; p++) {
            uint32_t j = len - 1 - p;
            if (f->wper[j] == p) {
                const rt_fgroup *G = &f->groups[f->wref[j] & ~RT_FOLD_GROUP];
                uint32_t t = G->tmpl;
                if (G->count < RT__U32_LIMIT && f->tkeys[f->toff[t] + p - 1] == last &&
                    f->thash[t] == rt__seghash(f, j + 1, p) &&
                    rt__keys_eq(f->tkeys + f->toff[t], f->wkey + j + 1, p)) {
                    rc = rt__extend(f, j, p);
                    break;
                }
            }
            if (2 * p <= len && f->wkey[j] == last &&
                rt__seghash(f, len - 2 * p, p) == rt__seghash(f, len - p, p) &&
                rt__keys_eq(f->wkey + len - 2 * p, f->wkey + len - p, p)) {
                rc = rt__create(f, p);
                break;
            }
        }
        if (rc != RT_OK)
            return rc == 1 ? RT_OK : rc;
    }
}

static int rt__fold_all(rt_fold *f)
{
    int rc;
    uint32_t P = f->opts.max_period;
    f->pw = rt_malloc(f->alloc, (P + 1) * sizeof *f->pw);
    if (!f->pw)
        return RT_ERR_NOMEM;
    f->pw[0] = 1;
    for (uint32_t p = 1; p <= P; p++)
        f->pw[p] = f->pw[p - 1] * RT__HBASE;
    for (uint32_t i = 0; i < f->n_nodes; i++) {
        uint32_t end = f->nodes[i].end, c = i + 1;
        if (c >= end || f->nodes[c].end >= end)
            continue; /* fewer than two children */
        f->wlen = 0;
        if (f->wcap == 0 && (rc = rt__wpush(f, 0, 0, 0)) != RT_OK)
            return rc;
        f->wlen = 0;
        f->wh[0] = 0;
        for (; c < end; c = f->nodes[c].end) {
            if ((rc = rt__wpush(f, f->nodes[c].fid, c, 0)) != RT_OK)
                return rc;
            if ((rc = rt__reduce(f)) != RT_OK)
                return rc;
        }
        if (f->wlen == 1) { /* the children are one group: no list needed */
            f->flist[i] = f->wref[0];
            continue;
        }
        int grouped = 0;
        for (uint32_t k = 0; k < f->wlen && !grouped; k++)
            grouped = f->wper[k] != 0;
        if (!grouped)
            continue;
        uint32_t off;
        if ((rc = rt__items_alloc(f, f->wlen, &off)) != RT_OK ||
            (rc = RT__GROW(f, f->lists, f->cap_lists, (uint64_t)f->n_lists + 1)) != RT_OK)
            return rc;
        memcpy(f->items + off, f->wref, f->wlen * sizeof *f->wref);
        f->lists[f->n_lists].first = off;
        f->lists[f->n_lists].len = f->wlen;
        f->flist[i] = ++f->n_lists;
    }
    return RT_OK;
}

int rt_fold_finish(rt_fold *f)
{
    int rc;
    if (f->err)
        return f->err;
    if (f->finished)
        return rt__err(f, RT_ERR_STATE);
    if ((rc = rt_walker_finish(&f->walker)) != RT_OK)
        return rt__err(f, rc);
    if (f->n_nodes == 0 && (rc = rt__add_root(f, f->walker.t)) != RT_OK)
        return rc;
    int64_t t_last = f->walker.t;
    for (uint32_t i = 0; i < f->n_nodes; i++) /* spans given directly: the latest time seen */
        if (f->nodes[i].t1 > t_last)
            t_last = f->nodes[i].t1;
    while (f->n_open > 1)
        if ((rc = rt_fold_close(f, t_last, RT_END_OPEN)) != RT_OK)
            return rc;
    rt_fnode *root = &f->nodes[0];
    root->end = f->n_nodes;
    root->t1 = root->t0;
    for (uint32_t c = 1; c < f->n_nodes; c = f->nodes[c].end) {
        if (f->nodes[c].t1 > root->t1)
            root->t1 = f->nodes[c].t1;
        if (c == 1 && f->nodes[c].t0 < root->t0)
            root->t0 = f->nodes[c].t0;
    }
    f->finished = 1;
    f->flist = rt_malloc(f->alloc, (size_t)f->n_nodes * sizeof *f->flist);
    if (!f->flist)
        return rt__err(f, RT_ERR_NOMEM);
    memset(f->flist, 0, (size_t)f->n_nodes * sizeof *f->flist);
    if (f->opts.patterns && (rc = rt__fold_all(f)) != RT_OK)
        return rt__err(f, rc);
    /* the work stack is not needed any more */
    rt_free(f->alloc, f->wkey);
    rt_free(f->alloc, f->wref);
    rt_free(f->alloc, f->wper);
    rt_free(f->alloc, f->wh);
    f->wkey = f->wh = NULL;
    f->wref = f->wper = NULL;
    f->wlen = f->wcap = 0;
    return RT_OK;
}

/* ------------------------------------------------------------ iteration */

RT_INLINE int rt__next(rt_fold_iter *it, uint32_t *ref);

void rt_fold_iter_children(const rt_fold *f, uint32_t node, rt_fold_iter *it)
{
    it->f = f;
    it->one = RT_FOLD_NONE;
    uint32_t l = f->flist ? f->flist[node] : 0;
    if (l & RT_FOLD_GROUP) {
        it->refs = NULL;
        it->one = l;
        it->pos = 0;
        it->end = 1;
    } else if (l) {
        it->refs = f->items + f->lists[l - 1].first;
        it->pos = 0;
        it->end = f->lists[l - 1].len;
    } else {
        it->refs = NULL;
        it->pos = node + 1;
        it->end = f->nodes[node].end;
    }
}

void rt_fold_iter_group(const rt_fold *f, uint32_t group, rt_fold_iter *it)
{
    const rt_fgroup *G = &f->groups[group];
    it->f = f;
    it->one = RT_FOLD_NONE;
    it->refs = f->items + G->first;
    it->pos = 0;
    it->end = G->period * G->count;
}

int rt_fold_next(rt_fold_iter *it, uint32_t *ref) { return rt__next(it, ref); }

RT_INLINE int rt__next(rt_fold_iter *it, uint32_t *ref)
{
    if (it->pos >= it->end)
        return 0;
    if (it->refs) {
        *ref = it->refs[it->pos++];
    } else if (it->one != RT_FOLD_NONE) {
        *ref = it->one;
        it->pos++;
    } else {
        *ref = it->pos;
        it->pos = it->f->nodes[it->pos].end;
    }
    return 1;
}

/* -------------------------------------------------------- capture lookup */

int rt_fold_find_call(rt_fold *f, uint32_t fid, int64_t t, uint32_t *node)
{
    if (!f->finished || f->err || f->n_nodes < 2)
        return RT_ERR_STATE;
    uint32_t lo = 1, hi = f->n_nodes; /* last node with t0 <= t */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (f->nodes[mid].t0 <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 1)
        return RT_ERR_STATE;
    uint32_t i = lo - 1;
    for (uint32_t j = i; j >= 1 && f->nodes[j].t0 == t; j--)
        if (f->nodes[j].fid == fid && rt_fnode_kind(&f->nodes[j]) != RT_FNODE_RESUME) {
            *node = j;
            return RT_OK;
        }
    if (!f->parent) {
        uint32_t *stk = rt_malloc(f->alloc, ((size_t)f->max_depth + 2) * sizeof *stk);
        f->parent = rt_malloc(f->alloc, (size_t)f->n_nodes * sizeof *f->parent);
        if (!stk || !f->parent) {
            rt_free(f->alloc, stk);
            rt_free(f->alloc, f->parent);
            f->parent = NULL;
            return RT_ERR_NOMEM;
        }
        uint32_t sp = 0;
        f->parent[0] = RT_FOLD_NONE;
        stk[sp++] = 0;
        for (uint32_t k = 1; k < f->n_nodes; k++) {
            while (f->nodes[stk[sp - 1]].end <= k)
                sp--;
            f->parent[k] = stk[sp - 1];
            stk[sp++] = k;
        }
        rt_free(f->alloc, stk);
    }
    for (uint32_t j = i; j != 0 && j != RT_FOLD_NONE; j = f->parent[j])
        if (f->nodes[j].fid == fid && f->nodes[j].t1 >= t) {
            *node = j;
            return RT_OK;
        }
    return RT_ERR_STATE;
}

/* ------------------------------------------------------------- encoding */


RT_INLINE uint64_t rt__gap(int64_t t0, int64_t cursor) { return t0 > cursor ? (uint64_t)(t0 - cursor) : 0; }

/* kind (bits 0-1), how (2-3), has children (4), recursion depth - 1 (5-31) */
RT_INLINE uint64_t rt__flags(const rt_fold *f, uint32_t i)
{
    const rt_fnode *n = &f->nodes[i];
    return (n->info & 15u) | ((uint64_t)(n->end > i + 1) << 4) | ((uint64_t)(rt_fnode_depth(n) - 1) << 5);
}

static uint32_t rt__nitems(const rt_fold *f, uint32_t node)
{
    uint32_t l = f->flist[node], n = 0;
    if (l & RT_FOLD_GROUP)
        return 1;
    if (l)
        return f->lists[l - 1].len;
    for (uint32_t c = node + 1; c < f->nodes[node].end; c = f->nodes[c].end)
        n++;
    return n;
}

static size_t rt__node_hdr(const rt_fold *f, uint32_t c, uint64_t gap)
{
    const rt_fnode *n = &f->nodes[c];
    size_t s = rt_varint_len(((uint64_t)n->fid << 2) | 0) + rt_varint_len(gap) + rt_varint_len((uint64_t)(n->t1 - n->t0)) +
               rt_varint_len(rt__flags(f, c));
    if (n->end > c + 1) /* only a span with children says how many calls, items and bytes follow */
        s += rt_varint_len(rt_fold_node_calls(f, c)) + rt_varint_len(rt__nitems(f, c)) + rt_varint_len(f->cb[c]);
    return s;
}

static size_t rt__group_hdr(const rt_fold *f, uint32_t g, uint64_t gap)
{
    const rt_fgroup *G = &f->groups[g];
    size_t s = rt_varint_len(((uint64_t)G->period << 2) | 1) + rt_varint_len(gap) +
               rt_varint_len((uint64_t)(rt_fold_group_t1(f, g) - rt_fold_group_t0(f, g))) +
               rt_varint_len(G->dur_sum) + rt_varint_len(G->count) + rt_varint_len(rt_fold_group_calls(f, g)) +
               rt_varint_len(f->gcb[g]);
    if (G->period > 1) /* per template item sums; for period 1 they are dur_sum and calls */
        for (uint32_t k = 0; k < 2 * G->period; k++)
            s += rt_varint_len(f->aggs[f->gaggs[g] + k]);
    return s;
}

typedef struct rt__frame {
    uint32_t owner;        /* node or group index */
    uint32_t pos, end;     /* iteration state (see rt_fold_iter) */
    uint32_t one;
    const uint32_t *refs;  /* NULL: `one`, or raw children of a node */
    int64_t cursor;        /* end of the previous item */
    uint64_t acc;          /* sizing: bytes so far */
} rt__frame;

typedef struct rt__stack {
    rt__frame *fr;
    uint32_t n, cap;
} rt__stack;

static int rt__push_frame(rt_fold *f, rt__stack *s, uint32_t owner, const rt_fold_iter *it,
                          int64_t cursor)
{
    int rc = rt__grow(f->alloc, (void **)&s->fr, &s->cap, (uint64_t)s->n + 1, sizeof *s->fr);
    if (rc != RT_OK)
        return rc;
    rt__frame *fr = &s->fr[s->n++];
    fr->owner = owner;
    fr->pos = it->pos;
    fr->end = it->end;
    fr->refs = it->refs;
    fr->one = it->one;
    fr->cursor = cursor;
    fr->acc = 0;
    return RT_OK;
}

RT_INLINE int rt__frame_next(const rt_fold *f, rt__frame *fr, uint32_t *ref)
{
    if (fr->pos >= fr->end)
        return 0;
    if (fr->refs) {
        *ref = fr->refs[fr->pos++];
    } else if (fr->one != RT_FOLD_NONE) {
        *ref = fr->one;
        fr->pos++;
    } else {
        *ref = fr->pos;
        fr->pos = f->nodes[fr->pos].end;
    }
    return 1;
}

/* Encoded size of group g's items (nested groups sized on the way), and the
 * per-template-item sums. Explicit stack: groups may nest deeply. */
static int rt__size_group(rt_fold *f, rt__stack *s, uint32_t g)
{
    rt_fold_iter it;
    int rc;
    uint32_t base = s->n;
    rt_fold_iter_group(f, g, &it);
    if ((rc = rt__push_frame(f, s, g, &it, rt_fold_group_t0(f, g))) != RT_OK)
        return rc;
    while (s->n > base) {
        rt__frame *fr = &s->fr[s->n - 1];
        uint32_t gi = fr->owner;
        const rt_fgroup *G = &f->groups[gi];
        if (fr->pos == 0 && fr->acc == 0) { /* first visit: room for the sums */
            size_t need = f->n_aggs + 2 * (size_t)G->period;
            if (rt_grow(f->alloc, (void **)&f->aggs, &f->cap_aggs, need, sizeof *f->aggs, 256) != RT_OK)
                return RT_ERR_NOMEM;
            f->gaggs[gi] = (uint32_t)f->n_aggs;
            memset(f->aggs + f->n_aggs, 0, 2 * (size_t)G->period * sizeof *f->aggs);
            f->n_aggs = need;
            fr->acc = 1; /* marks "started"; the real size is acc - 1 */
        }
        uint32_t ref;
        uint32_t k = fr->pos % G->period;
        if (!rt__frame_next(f, fr, &ref)) {
            uint64_t size = fr->acc - 1;
            if (size > RT__U32_LIMIT)
                return RT_ERR_STATE;
            f->gcb[gi] = (uint32_t)size;
            s->n--;
            continue;
        }
        if ((ref & RT_FOLD_GROUP) && f->gcb[ref & ~RT_FOLD_GROUP] == RT__UNSET) {
            fr->pos--; /* visit this item again once its group is sized */
            uint32_t inner = ref & ~RT_FOLD_GROUP;
            rt_fold_iter_group(f, inner, &it);
            if ((rc = rt__push_frame(f, s, inner, &it, rt_fold_group_t0(f, inner))) != RT_OK)
                return rc;
            continue;
        }
        uint64_t gap = rt__gap(rt__it_t0(f, ref), fr->cursor);
        fr->cursor = rt__it_t1(f, ref);
        if (ref & RT_FOLD_GROUP) {
            uint32_t inner = ref & ~RT_FOLD_GROUP;
            fr->acc += rt__group_hdr(f, inner, gap) + f->gcb[inner];
        } else {
            fr->acc += rt__node_hdr(f, ref, gap) + f->cb[ref];
        }
        f->aggs[f->gaggs[gi] + 2 * k] += rt__it_dur(f, ref);
        f->aggs[f->gaggs[gi] + 2 * k + 1] += rt__it_calls(f, ref);
    }
    return RT_OK;
}

static int rt__size_all(rt_fold *f, rt__stack *s)
{
    int rc;
    f->cb = rt_malloc(f->alloc, (size_t)f->n_nodes * sizeof *f->cb);
    f->gcb = rt_malloc(f->alloc, (size_t)(f->n_groups ? f->n_groups : 1) * sizeof *f->gcb);
    f->gaggs = rt_malloc(f->alloc, (size_t)(f->n_groups ? f->n_groups : 1) * sizeof *f->gaggs);
    if (!f->cb || !f->gcb || !f->gaggs)
        return RT_ERR_NOMEM;
    f->n_aggs = 0;
    memset(f->gcb, 0xFF, (size_t)f->n_groups * sizeof *f->gcb); /* RT__UNSET: not sized yet */
    for (uint32_t i = f->n_nodes; i-- > 0;) {
        rt_fold_iter it;
        uint32_t ref;
        uint64_t acc = 0;
        int64_t cursor = f->nodes[i].t0;
        rt_fold_iter_children(f, i, &it);
        while (rt__next(&it, &ref)) {
            uint64_t gap = rt__gap(rt__it_t0(f, ref), cursor);
            cursor = rt__it_t1(f, ref);
            if (ref & RT_FOLD_GROUP) {
                uint32_t g = ref & ~RT_FOLD_GROUP;
                if (f->gcb[g] == RT__UNSET && (rc = rt__size_group(f, s, g)) != RT_OK)
                    return rc;
                acc += rt__group_hdr(f, g, gap) + f->gcb[g];
            } else {
                acc += rt__node_hdr(f, ref, gap) + f->cb[ref];
            }
        }
        if (acc > RT__U32_LIMIT)
            return RT_ERR_STATE;
        f->cb[i] = (uint32_t)acc;
    }
    return RT_OK;
}

RT_INLINE uint8_t *rt__put(uint8_t *p, uint64_t v) { return rt_varint_put(p, v); }

static size_t rt__total(const rt_fold *f)
{
    const rt_fnode *root = &f->nodes[0];
    uint64_t t0 = root->t0 > 0 ? (uint64_t)root->t0 : 0;
    return rt_varint_len(RT_FOLD_ENCODING_VERSION) + rt_varint_len(2) + rt_varint_len(t0) +
           rt_varint_len((uint64_t)(root->t1 - root->t0)) + rt_varint_len(f->calls) + rt_varint_len(rt__nitems(f, 0)) +
           rt_varint_len(f->cb[0]) + f->cb[0];
}

int rt_fold_encode_size(rt_fold *f, size_t *len)
{
    rt__stack s = {NULL, 0, 0};
    *len = 0;
    if (!f->finished || f->err)
        return RT_ERR_STATE;
    rt_free(f->alloc, f->cb);
    rt_free(f->alloc, f->gcb);
    rt_free(f->alloc, f->gaggs);
    f->cb = f->gcb = f->gaggs = NULL;
    int rc = rt__size_all(f, &s);
    rt_free(f->alloc, s.fr);
    if (rc != RT_OK) {
        rt_free(f->alloc, f->cb);
        rt_free(f->alloc, f->gcb);
        rt_free(f->alloc, f->gaggs);
        f->cb = f->gcb = f->gaggs = NULL;
        return rc;
    }
    *len = rt__total(f);
    return RT_OK;
}

int rt_fold_encode_into(rt_fold *f, uint8_t *buf, size_t len)
{
    int rc;
    rt__stack s = {NULL, 0, 0};
    if (!f->finished || f->err || !f->cb || len != rt__total(f))
        return RT_ERR_STATE;
    const rt_fnode *root = &f->nodes[0];
    uint64_t t0 = root->t0 > 0 ? (uint64_t)root->t0 : 0;
    uint8_t *p = buf;
    p = rt__put(p, RT_FOLD_ENCODING_VERSION);
    p = rt__put(p, 2);
    p = rt__put(p, t0);
    p = rt__put(p, (uint64_t)(root->t1 - root->t0));
    p = rt__put(p, f->calls);
    p = rt__put(p, rt__nitems(f, 0));
    p = rt__put(p, f->cb[0]);
    rt_fold_iter it;
    rt_fold_iter_children(f, 0, &it);
    if ((rc = rt__push_frame(f, &s, 0, &it, root->t0)) != RT_OK)
        goto done;
    while (s.n > 0) {
        rt__frame *fr = &s.fr[s.n - 1];
        uint32_t ref;
        if (!rt__frame_next(f, fr, &ref)) {
            s.n--;
            continue;
        }
        uint64_t gap = rt__gap(rt__it_t0(f, ref), fr->cursor);
        fr->cursor = rt__it_t1(f, ref);
        if (ref & RT_FOLD_GROUP) {
            uint32_t g = ref & ~RT_FOLD_GROUP;
            const rt_fgroup *G = &f->groups[g];
            p = rt__put(p, ((uint64_t)G->period << 2) | 1);
            p = rt__put(p, gap);
            int64_t gt0 = rt_fold_group_t0(f, g);
            p = rt__put(p, (uint64_t)(rt_fold_group_t1(f, g) - gt0));
            p = rt__put(p, G->dur_sum);
            p = rt__put(p, G->count);
            p = rt__put(p, rt_fold_group_calls(f, g));
            if (G->period > 1)
                for (uint32_t k = 0; k < 2 * G->period; k++)
                    p = rt__put(p, f->aggs[f->gaggs[g] + k]);
            p = rt__put(p, f->gcb[g]);
            rt_fold_iter_group(f, g, &it);
            if ((rc = rt__push_frame(f, &s, g, &it, gt0)) != RT_OK)
                goto done;
        } else {
            const rt_fnode *n = &f->nodes[ref];
            p = rt__put(p, ((uint64_t)n->fid << 2) | 0);
            p = rt__put(p, gap);
            p = rt__put(p, (uint64_t)(n->t1 - n->t0));
            p = rt__put(p, rt__flags(f, ref));
            if (n->end > ref + 1) {
                p = rt__put(p, rt_fold_node_calls(f, ref));
                p = rt__put(p, rt__nitems(f, ref));
                p = rt__put(p, f->cb[ref]);
                rt_fold_iter_children(f, ref, &it);
                if ((rc = rt__push_frame(f, &s, ref, &it, n->t0)) != RT_OK)
                    goto done;
            }
        }
    }
    rc = (size_t)(p - buf) == len ? RT_OK : RT_ERR_STATE; /* sizes and writes disagree: a bug */
done:
    rt_free(f->alloc, s.fr);
    return rc;
}

int rt_fold_encode(rt_fold *f, uint8_t **out, size_t *len)
{
    size_t n;
    *out = NULL;
    *len = 0;
    int rc = rt_fold_encode_size(f, &n);
    if (rc != RT_OK)
        return rc;
    uint8_t *buf = rt_malloc(f->alloc, n);
    if (!buf)
        return RT_ERR_NOMEM;
    if ((rc = rt_fold_encode_into(f, buf, n)) != RT_OK) {
        rt_free(f->alloc, buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return RT_OK;
}

/* ------------------------------------------------------------ call paths */

typedef struct rt__path {
    uint32_t fid, parent, first, next, last, out;
    uint32_t cfid, cpath; /* the child path found last (siblings mostly repeat a function) */
    uint64_t calls, total;
    int64_t self;
} rt__path;

int rt_fold_paths(rt_fold *f, uint8_t **out, size_t *len)
{
    int rc = RT_OK;
    rt__path *P = NULL;
    uint32_t n = 0, cap = 0;
    uint32_t *stk = NULL, *order = NULL;
    uint8_t *buf = NULL;
    rt_map m;
    rt_map_init(&m, f->alloc);
    *out = NULL;
    *len = 0;
    if (!f->finished || f->err)
        return RT_ERR_STATE;
    stk = rt_malloc(f->alloc, ((size_t)f->max_depth + 2) * 2 * sizeof *stk);
    if (!stk || (rc = rt__grow(f->alloc, (void **)&P, &cap, 1, sizeof *P)) != RT_OK) {
        rc = RT_ERR_NOMEM;
        goto done;
    }
    memset(&P[0], 0, sizeof P[0]);
    P[0].fid = RT_FOLD_ROOT_FID;
    P[0].parent = P[0].first = P[0].next = P[0].last = RT_FOLD_NONE;
    P[0].cfid = RT_FOLD_NONE;
    n = 1;
    uint32_t sp = 0;
    stk[sp++] = f->n_nodes; /* (end, path) pairs; the root covers everything */
    stk[sp++] = 0;
    for (uint32_t i = 1; i < f->n_nodes; i++) {
        const rt_fnode *nd = &f->nodes[i];
        while (stk[sp - 2] <= i)
            sp -= 2;
        uint32_t parent = stk[sp - 1];
        uint64_t key = ((uint64_t)parent << 24) | nd->fid;
        uint64_t *v;
        uint32_t pi;
        if (P[parent].cfid == nd->fid) {
            pi = P[parent].cpath;
        } else if ((v = rt_map_get(&m, key)) != NULL) {
            pi = (uint32_t)*v;
        } else {
            if ((rc = rt__grow(f->alloc, (void **)&P, &cap, (uint64_t)n + 1, sizeof *P)) != RT_OK ||
                (rc = rt_map_put(&m, key, n)) != RT_OK)
                goto done;
            pi = n++;
            rt__path *q = &P[pi];
            memset(q, 0, sizeof *q);
            q->fid = nd->fid;
            q->parent = parent;
            q->first = q->next = q->last = RT_FOLD_NONE;
            q->cfid = RT_FOLD_NONE;
            if (P[parent].last == RT_FOLD_NONE)
                P[parent].first = pi;
            else
                P[P[parent].last].next = pi;
            P[parent].last = pi;
        }
        P[parent].cfid = nd->fid;
        P[parent].cpath = pi;
        uint64_t dur = (uint64_t)(nd->t1 - nd->t0);
        P[pi].calls += rt_fnode_kind(nd) != RT_FNODE_RESUME;
        P[pi].total += dur;
        P[pi].self += (int64_t)dur;
        P[parent].self -= (int64_t)dur;
        if (parent == 0)
            P[0].total += dur;
        stk[sp++] = nd->end;
        stk[sp++] = pi;
    }
    P[0].self = 0;
    /* preorder numbering, iteratively */
    order = rt_malloc(f->alloc, (size_t)n * sizeof *order);
    if (!order) {
        rc = RT_ERR_NOMEM;
        goto done;
    }
    size_t size = rt_varint_len(n);
    uint32_t no = 0, cur = 0;
    while (cur != RT_FOLD_NONE) {
        P[cur].out = no;
        order[no++] = cur;
        if (P[cur].first != RT_FOLD_NONE) {
            cur = P[cur].first;
            continue;
        }
        while (cur != RT_FOLD_NONE && P[cur].next == RT_FOLD_NONE)
            cur = P[cur].parent;
        if (cur != RT_FOLD_NONE)
            cur = P[cur].next;
    }
    for (uint32_t k = 0; k < n; k++) {
        const rt__path *q = &P[order[k]];
        size += rt_varint_len(k == 0 ? 0 : (uint64_t)q->fid + 1) +
                rt_varint_len(k == 0 ? 0 : (uint64_t)P[q->parent].out + 1) + rt_varint_len(q->calls) +
                rt_varint_len(q->total) + rt_varint_len(q->self > 0 ? (uint64_t)q->self : 0);
    }
    buf = rt_malloc(f->alloc, size);
    if (!buf) {
        rc = RT_ERR_NOMEM;
        goto done;
    }
    uint8_t *p = rt__put(buf, n);
    for (uint32_t k = 0; k < n; k++) {
        const rt__path *q = &P[order[k]];
        p = rt__put(p, k == 0 ? 0 : (uint64_t)q->fid + 1);
        p = rt__put(p, k == 0 ? 0 : (uint64_t)P[q->parent].out + 1);
        p = rt__put(p, q->calls);
        p = rt__put(p, q->total);
        p = rt__put(p, q->self > 0 ? (uint64_t)q->self : 0);
    }
    *out = buf;
    *len = size;
    buf = NULL;
done:
    rt_map_free(&m);
    rt_free(f->alloc, P);
    rt_free(f->alloc, stk);
    rt_free(f->alloc, order);
    rt_free(f->alloc, buf);
    return rc;
}
