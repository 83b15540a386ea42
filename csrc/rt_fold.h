/*
 * rt_fold.h -- pattern folding of one thread's call tree (pure C11, no Python.h).
 *
 * The folder builds the thread's call tree from the spans of rt_walk (one node
 * per span: a call, or one slice of a resumed generator), then
 *
 *  - folds consecutive repetitions of the same call sequence among siblings
 *    into groups "N x [sequence]", nested (a group can be an item of a larger
 *    repeated sequence), period 1 included;
 *  - marks recursion: every node records how deeply its own function is
 *    re-entered inside its subtree (directly or through a cycle), so a viewer
 *    shows the outermost call of a recursion as one node with its depth and
 *    total calls;
 *  - encodes the folded tree into a compact byte buffer that viewers decode
 *    lazily (docs/folding.md, "Encoding").
 *
 * "The same call sequence" means the same functions called in the same order
 * at that level: two repetitions are equal when their items have equal keys,
 * where the key of a call is its function id (what the call itself calls is
 * NOT compared) and the key of a nested group is its template and its count.
 * The algorithm (docs/folding.md) is an online, greedy, smallest-period-first
 * folding of each sibling list with hashed comparisons: O(n * P) in the worst
 * case for n spans and a maximum period P, no recursion over call depth
 * (explicit stacks everywhere), memory linear in n.
 *
 * Usage:
 *     rt_fold f;
 *     rt_fold_init(&f, &opts, alloc);
 *     for each chunk of the thread, in order: rt_fold_feed(&f, data, len);
 *     rt_fold_finish(&f);                  // closes open spans and folds
 *     rt_fold_encode(&f, &buf, &len);      // optional: the compact buffer
 *     rt_fold_free(&f);
 * Spans can also be given directly with rt_fold_open / rt_fold_close.
 *
 * Errors are return codes (RT_OK, RT_ERR_NOMEM, RT_ERR_DATA, RT_ERR_STATE);
 * after an error the object can only be freed. `f->err` keeps the first one.
 */
#ifndef RT_FOLD_H
#define RT_FOLD_H

#include "rt_common.h"
#include "rt_walk.h"

#define RT_FOLD_DEFAULT_PERIOD 64     /* longest repeated sequence looked for by default */
#define RT_FOLD_PERIOD_LIMIT 1024     /* largest accepted max_period */
#define RT_FOLD_MAX_FID 0xFFFFFFu     /* function ids above this are malformed input */
#define RT_FOLD_MAX_NODES 0x7FFFFFFEu /* spans per thread (root included) */
#define RT_FOLD_ROOT_FID 0xFFFFFFFFu  /* fid of node 0, the thread's virtual root */
#define RT_FOLD_NONE 0xFFFFFFFFu      /* "no node" */
#define RT_FOLD_GROUP 0x80000000u     /* in an item reference: the rest is a group index */
#define RT_FOLD_ENCODING_VERSION 1

/* Node kinds (bits 0-1 of rt_fnode.info). */
enum { RT_FNODE_CALL = 0, RT_FNODE_RESUME = 1, RT_FNODE_CONT = 2, RT_FNODE_ROOT = 3 };

/* One span of the thread, in preorder (node 0 is the virtual root). */
typedef struct rt_fnode {
    int64_t t0;            /* span start, ns since the trace origin */
    int64_t t1;            /* span end, ns (>= t0) */
    uint32_t fid;          /* function id; RT_FOLD_ROOT_FID for node 0 */
    uint32_t end;          /* one past the last node of this subtree (preorder index) */
    uint32_t calls_before; /* calls (CALL and CONT spans) before this node in preorder:
                              for a CALL or CONT span, its call number in the stream */
    uint32_t info;         /* bits 0-1 kind (RT_FNODE_*), bits 2-3 how the span ended
                              (RT_END_*), bits 4-31 recursion depth: the largest number of
                              nested spans of this fid on one path from this node down,
                              itself included (1: the function is not re-entered) */
} rt_fnode;

RT_INLINE int rt_fnode_kind(const rt_fnode *n) { return (int)(n->info & 3u); }
RT_INLINE int rt_fnode_how(const rt_fnode *n) { return (int)((n->info >> 2) & 3u); }
RT_INLINE uint32_t rt_fnode_depth(const rt_fnode *n) { return n->info >> 4; }

/* A run of repetitions among siblings. Its items are `period * count` item
 * references (nodes or nested groups), repetition r's k-th item at
 * items[first + r * period + k]. The items are consecutive siblings, so their
 * subtrees are one range of preorder nodes: the group's start is the start
 * of its first top-level node (rt_fold_group_t0). 40 bytes: a trace can make
 * millions of groups. */
typedef struct rt_fgroup {
    uint64_t dur_sum;  /* sum of the items' durations, ns (a nested group counts its dur_sum) */
    int64_t t1;        /* end of the last item, ns */
    uint32_t n0;       /* first top-level node of the first item (a node, or a group's n0) */
    uint32_t period;   /* items per repetition (1..max_period) */
    uint32_t count;    /* repetitions (>= 2) */
    uint32_t tmpl;     /* template id: equal item-key sequences have equal ids */
    uint32_t first;    /* offset of the first item reference in rt_fold.items; the room
                          reserved there is period * (count rounded up to a power of two) */
    uint32_t calls;    /* calls in every repetition, subtrees included */
} rt_fgroup;

/* A node's folded list of children: `len` item references at items[first]. */
typedef struct rt_flist {
    uint32_t first, len;
} rt_flist;

typedef struct rt_fold_opts {
    uint32_t max_period; /* longest repeated sequence looked for, 1..RT_FOLD_PERIOD_LIMIT
                            (0: RT_FOLD_DEFAULT_PERIOD) */
    int patterns;        /* non-zero: fold repetitions; 0: only the tree and recursion */
} rt_fold_opts;

typedef struct rt_fold {
    const rt_allocator *alloc; /* borrowed; must outlive the object */
    rt_fold_opts opts;
    int err;                   /* first error returned, RT_OK while none */
    int finished;              /* rt_fold_finish done */

    /* the tree (valid after rt_fold_finish) */
    rt_fnode *nodes;           /* owned; n_nodes entries, node 0 = the thread's root */
    uint32_t n_nodes, cap_nodes;
    uint32_t calls;            /* calls (CALL and CONT spans) in the thread */
    uint32_t max_depth;        /* deepest nesting of spans (root children = 1) */

    /* the folding (valid after rt_fold_finish) */
    rt_fgroup *groups;         /* owned */
    uint32_t n_groups, cap_groups;
    uint32_t *items;           /* owned; item references of groups and folded lists */
    uint32_t n_items, cap_items;
    uint32_t *flist;           /* owned; per node: 0 (children not folded: every child is
                                  an item), RT_FOLD_GROUP | g (the children are one group,
                                  g: the list is that one item) or 1 + index into lists */
    rt_flist *lists;           /* owned */
    uint32_t n_lists, cap_lists;

    /* internal state */
    rt_walker walker;
    uint32_t *open;            /* open node indices, innermost last */
    uint32_t n_open, cap_open;
    uint32_t *active;          /* per fid: innermost open node of that fid, or RT_FOLD_NONE */
    uint32_t n_active;
    uint64_t *wkey;            /* folding work stack: item keys */
    uint32_t *wref;            /* item references */
    uint32_t *wper;            /* period of a group item, 0 for a node */
    uint64_t *wh;              /* prefix hashes (one more entry than the stack) */
    uint32_t wlen, wcap;
    uint64_t *pw;              /* powers of the hash base, 0..max_period */
    uint64_t *tkeys;           /* template keys */
    uint32_t n_tkeys, cap_tkeys;
    uint64_t *thash;           /* per template: hash */
    uint32_t *toff, *tlen;     /* per template: offset in tkeys, length */
    uint32_t n_tmpl, cap_tmpl;
    uint32_t tlast;            /* the template interned last (checked before the hash table) */
    rt_map tmap;               /* template hash (probed) -> template id */
    uint64_t *aggs;            /* per group and template item: dur sum, calls */
    size_t n_aggs, cap_aggs;
    uint32_t *cb;              /* per node: encoded size of its children */
    uint32_t *gcb;             /* per group: encoded size of its items */
    uint32_t *gaggs;           /* per group: offset of its per-template-item sums in aggs */
    uint32_t *parent;          /* per node, built on demand by rt_fold_find_call */
} rt_fold;

/* Initialise (no allocation). `opts` may be NULL for the defaults. */
void rt_fold_init(rt_fold *f, const rt_fold_opts *opts, const rt_allocator *alloc);

/* Release everything; the object must be initialised again before reuse. */
void rt_fold_free(rt_fold *f);

/* Decode one chunk of the thread's call stream (in seq order) and add its
 * spans. RT_OK, RT_ERR_DATA (malformed chunk, or a fid above RT_FOLD_MAX_FID),
 * RT_ERR_NOMEM, RT_ERR_STATE (after finish, or more than RT_FOLD_MAX_NODES). */
int rt_fold_feed(rt_fold *f, const uint8_t *data, size_t len);

/* Add a span directly: it opens at t0 inside the innermost open span.
 * `kind` is RT_FNODE_CALL, RT_FNODE_RESUME or RT_FNODE_CONT. */
int rt_fold_open(rt_fold *f, uint32_t fid, int kind, int64_t t0);

/* Close the innermost open span at t (`how` is RT_END_*). RT_ERR_STATE when
 * no span is open. */
int rt_fold_close(rt_fold *f, int64_t t, int how);

/* Close the spans still open (RT_END_OPEN) and fold every sibling list. */
int rt_fold_finish(rt_fold *f);

/* Calls in the subtree of node i (itself included when it is a call). */
RT_INLINE uint32_t rt_fold_node_calls(const rt_fold *f, uint32_t i)
{
    const rt_fnode *n = &f->nodes[i];
    uint32_t after = n->end < f->n_nodes ? f->nodes[n->end].calls_before : f->calls;
    return after - n->calls_before;
}

/* Start (ns) of group g: the start of its first item. */
RT_INLINE int64_t rt_fold_group_t0(const rt_fold *f, uint32_t g) { return f->nodes[f->groups[g].n0].t0; }

/* End (ns) of group g: the end of its last item. */
RT_INLINE int64_t rt_fold_group_t1(const rt_fold *f, uint32_t g) { return f->groups[g].t1; }

/* Calls in all repetitions of group g, subtrees included. */
RT_INLINE uint32_t rt_fold_group_calls(const rt_fold *f, uint32_t g) { return f->groups[g].calls; }

/* Iterate a folded list: the children of a node, or the items of a group. */
typedef struct rt_fold_iter {
    const rt_fold *f;
    const uint32_t *refs; /* folded: the item references; NULL: `one`, or raw children */
    uint32_t pos, end;    /* index into refs, or the next child node and the parent's end */
    uint32_t one;         /* the only item of a list of one group; RT_FOLD_NONE otherwise */
} rt_fold_iter;

void rt_fold_iter_children(const rt_fold *f, uint32_t node, rt_fold_iter *it);
void rt_fold_iter_group(const rt_fold *f, uint32_t group, rt_fold_iter *it);
/* 1 and the next item reference in *ref (a node index, or RT_FOLD_GROUP | group
 * index), or 0 at the end. */
int rt_fold_next(rt_fold_iter *it, uint32_t *ref);

/* The node of the call of `fid` that a captured call made at time t belongs
 * to: the CALL/CONT span of `fid` starting exactly at t, else the innermost
 * span of `fid` containing t. RT_OK with *node set, RT_ERR_STATE if none
 * (or before finish), RT_ERR_NOMEM. */
int rt_fold_find_call(rt_fold *f, uint32_t fid, int64_t t, uint32_t *node);

/* Encode the folded tree (docs/folding.md, "Encoding"). On RT_OK *out is a
 * buffer from the folder's allocator holding *len bytes; the caller frees it
 * with rt_free(f->alloc, *out). RT_ERR_STATE before finish or when the
 * encoding would exceed 4 GiB. */
int rt_fold_encode(rt_fold *f, uint8_t **out, size_t *len);

/* The same in two steps, for a caller that owns the destination: the size of
 * the encoding (RT_OK, RT_ERR_NOMEM, RT_ERR_STATE), then the bytes written into
 * `buf` of exactly that size (RT_ERR_STATE when `len` is not that size or the
 * size was not computed since the last change). */
int rt_fold_encode_size(rt_fold *f, size_t *len);
int rt_fold_encode_into(rt_fold *f, uint8_t *buf, size_t len);

/* Encode the thread's call-path profile: every distinct path of function ids
 * from the root, merged (a flame graph's data), in preorder, first-seen order:
 *     varint(n_paths), then per path: varint(fid + 1) (0 for the root),
 *     varint(parent index + 1) (0 for the root), varint(calls),
 *     varint(total ns), varint(self ns).
 * Same ownership rules as rt_fold_encode. */
int rt_fold_paths(rt_fold *f, uint8_t **out, size_t *len);

#endif
