/* test_fold.c -- pattern folding of a thread's call tree (rt_fold). */
#include <stdlib.h>

#include "../rt_fold.h"
#include "rt_test.h"
#include "rt_test_util.h"

/* ------------------------------------------------------------------ helpers */

/*
 * Build a tree from a small language: a letter is a call of fid (letter - 'a'),
 * '(' after a letter opens its children, ')' closes them; '*' after a letter
 * makes it a resumed generator slice, '+' a continued call. Each open and close
 * advances the clock by one.
 */
static int build(rt_fold *f, const char *spec, int64_t *t)
{
    int rc = RT_OK;
    for (const char *c = spec; *c && rc == RT_OK; c++) {
        if (*c >= 'a' && *c <= 'z') {
            int kind = c[1] == '*' ? RT_FNODE_RESUME : c[1] == '+' ? RT_FNODE_CONT : RT_FNODE_CALL;
            rc = rt_fold_open(f, (uint32_t)(*c - 'a'), kind, (*t)++);
            if (kind != RT_FNODE_CALL)
                c++;
            if (rc == RT_OK && c[1] != '(')
                rc = rt_fold_close(f, (*t)++, RT_END_RETURN);
        } else if (*c == ')') {
            rc = rt_fold_close(f, (*t)++, RT_END_RETURN);
        }
    }
    return rc;
}

/* Repeat `unit` n times into a new string (caller frees). */
static char *repeat(const char *unit, size_t n)
{
    size_t u = strlen(unit);
    char *s = malloc(u * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * u, unit, u);
    s[u * n] = 0;
    return s;
}

typedef struct sbuf {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *text)
{
    size_t k = strlen(text);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, text, k + 1);
    b->n += k;
}

/* Render a folded list: a node as its letter (and "(children)"), a group as
 * "[first repetition]xN". Recursive: small trees only. */
static void render_ref(const rt_fold *f, uint32_t ref, sbuf *b);

static void render_iter(const rt_fold *f, rt_fold_iter *it, uint32_t limit, sbuf *b)
{
    uint32_t ref, k = 0;
    while (k++ < limit && rt_fold_next(it, &ref))
        render_ref(f, ref, b);
}

static void render_ref(const rt_fold *f, uint32_t ref, sbuf *b)
{
    rt_fold_iter it;
    char tmp[32];
    if (ref & RT_FOLD_GROUP) {
        const rt_fgroup *g = &f->groups[ref & ~RT_FOLD_GROUP];
        sb_add(b, "[");
        rt_fold_iter_group(f, ref & ~RT_FOLD_GROUP, &it);
        render_iter(f, &it, g->period, b);
        snprintf(tmp, sizeof tmp, "]x%u", g->count);
        sb_add(b, tmp);
        return;
    }
    const rt_fnode *n = &f->nodes[ref];
    tmp[0] = (char)('a' + n->fid);
    tmp[1] = 0;
    sb_add(b, tmp);
    if (n->end > ref + 1) {
        sb_add(b, "(");
        rt_fold_iter_children(f, ref, &it);
        render_iter(f, &it, UINT32_MAX, b);
        sb_add(b, ")");
    }
}

static char *render(const rt_fold *f)
{
    sbuf b = {NULL, 0, 0};
    rt_fold_iter it;
    sb_add(&b, "");
    rt_fold_iter_children(f, 0, &it);
    render_iter(f, &it, UINT32_MAX, &b);
    return b.s;
}

/* Fold `spec` and compare the rendering with `want`. */
static void check_fold(const char *spec, const char *want, uint32_t max_period)
{
    rt_fold f;
    int64_t t = 0;
    rt_fold_opts o = {max_period, 1};
    rt_fold_init(&f, &o, rt_default_allocator());
    CHECK_EQ_I(build(&f, spec, &t), RT_OK);
    CHECK_EQ_I(rt_fold_finish(&f), RT_OK);
    char *got = render(&f);
    CHECK_MSG(strcmp(got, want) == 0, "fold(%.60s): got %.200s, want %s", spec, got, want);
    free(got);
    rt_fold_free(&f);
}

/* --------------------------------------------------- decoding the encoding */

typedef struct dec {
    const uint8_t *p, *end;
    int bad;
} dec;

static uint64_t dv(dec *d)
{
    uint64_t v = 0;
    int shift = 0;
    while (d->p < d->end) {
        uint8_t b = *d->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
        shift += 7;
        if (shift > 63)
            break;
    }
    d->bad = 1;
    return 0;
}

/* Decoded totals, checked against the folder's own numbers. */
typedef struct dstats {
    uint64_t spans, calls, groups, max_call_no;
    int order_ok;   /* call numbers come in preorder, 0, 1, 2, ... */
    int sums_ok;    /* a record's calls equal its own plus its items' */
    int times_ok;   /* items lie inside their parent */
} dstats;

/* Decode `n` items from d (iteratively, with an explicit stack) and render
 * them like render(): groups show their first repetition only. */
static void decode_items(dec *d, uint64_t n, int64_t t0, sbuf *b, dstats *st)
{
    struct fr {
        uint64_t left;       /* items left in this list */
        int64_t cursor;      /* end of the previous item */
        int64_t t_end;       /* end of the owner (items must end before) */
        uint64_t next_call;  /* call number of the next call */
        uint64_t calls_want; /* calls the owner announced for its items */
        uint64_t calls_seen;
        uint64_t period, count, done; /* groups */
        int is_group, hidden;
    };
    static struct fr stk[200010];
    int sp = 1;
    stk[0] = (struct fr){n, t0, INT64_MAX, 0, 0, 0, 0, 0, 0, 0, 0};
    while (sp > 0 && !d->bad) {
        struct fr *fr = &stk[sp - 1];
        if (fr->left == 0) {
            char tmp[32];
            if (fr->is_group)
                snprintf(tmp, sizeof tmp, "]x%llu", (unsigned long long)fr->count);
            else
                snprintf(tmp, sizeof tmp, "%s", sp > 1 ? ")" : "");
            if (!fr->hidden)
                sb_add(b, tmp);
            if (sp > 1 && fr->calls_seen != fr->calls_want)
                st->sums_ok = 0;
            sp--;
            continue;
        }
        fr->left--;
        int hidden = fr->hidden || (fr->is_group && fr->done >= fr->period);
        fr->done++;
        uint64_t w = dv(d);
        uint64_t gap = dv(d);
        int64_t start = fr->cursor + (int64_t)gap;
        if (sp >= (int)(sizeof stk / sizeof stk[0])) {
            d->bad = 1;
            return;
        }
        if ((w & 3) == 1) { /* group */
            uint64_t period = w >> 2, span = dv(d), dsum = dv(d), count = dv(d), calls = dv(d);
            uint64_t asum = dsum, acalls = calls;
            if (period > 1) {
                asum = acalls = 0;
                for (uint64_t k = 0; k < period; k++) {
                    asum += dv(d);
                    acalls += dv(d);
                }
            }
            if (asum != dsum || acalls != calls)
                st->sums_ok = 0;
            dv(d); /* bytes */
            st->groups++;
            fr->cursor = start + (int64_t)span;
            if (fr->cursor > fr->t_end)
                st->times_ok = 0;
            fr->calls_seen += calls;
            if (!hidden)
                sb_add(b, "[");
            stk[sp++] = (struct fr){period * count, start, start + (int64_t)span, fr->next_call,
                                    calls, 0, period, count, 0, 1, hidden};
            fr->next_call += calls;
        } else { /* span */
            uint64_t fid = w >> 2, dur = dv(d), flags = dv(d);
            int own = (int)(flags & 3) != RT_FNODE_RESUME;
            uint64_t calls = (uint64_t)own, nitems = 0;
            if (flags & 16) {
                calls = dv(d);
                nitems = dv(d);
                dv(d); /* bytes */
            }
            st->spans++;
            if (own) {
                if (fr->next_call != st->calls)
                    st->order_ok = 0;
                st->calls++;
            }
            fr->cursor = start + (int64_t)dur;
            if (fr->cursor > fr->t_end)
                st->times_ok = 0;
            fr->calls_seen += calls;
            if (!hidden) {
                char tmp[2] = {(char)('a' + fid), 0};
                sb_add(b, tmp);
            }
            uint64_t child_first = fr->next_call + (uint64_t)own;
            fr->next_call += calls;
            if (nitems) {
                if (!hidden)
                    sb_add(b, "(");
                stk[sp++] = (struct fr){nitems, start, start + (int64_t)dur, child_first,
                                        calls - (uint64_t)own, 0, 0, 0, 0, 0, hidden};
            }
        }
    }
}

/* Encode, decode, and check the decoded rendering against `want`. */
static void check_encoding(rt_fold *f, const char *want)
{
    uint8_t *buf;
    size_t len;
    REQUIRE(rt_fold_encode(f, &buf, &len) == RT_OK);
    dec d = {buf, buf + len, 0};
    CHECK_EQ_U(dv(&d), RT_FOLD_ENCODING_VERSION);
    CHECK_EQ_U(dv(&d), 2); /* root */
    int64_t t0 = (int64_t)dv(&d);
    uint64_t dur = dv(&d), calls = dv(&d), n = dv(&d), cb = dv(&d);
    (void)dur;
    CHECK_EQ_U(calls, f->calls);
    CHECK_EQ_U((size_t)(d.end - d.p), cb);
    sbuf b = {NULL, 0, 0};
    dstats st = {0, 0, 0, 0, 1, 1, 1};
    sb_add(&b, "");
    decode_items(&d, n, t0, &b, &st);
    CHECK(!d.bad);
    CHECK(d.p == d.end);
    CHECK_EQ_U(st.calls, f->calls);
    CHECK(st.order_ok);
    CHECK(st.sums_ok);
    CHECK(st.times_ok);
    if (want)
        CHECK_MSG(strcmp(b.s, want) == 0, "decoded %.200s, want %.200s", b.s, want);
    free(b.s);
    rt_free(f->alloc, buf);
}

/* ------------------------------------------------------------------- tests */

static void test_fold_loop_of_three_calls(void)
{
    char *body = repeat("abc", 50);
    char spec[200];
    snprintf(spec, sizeof spec, "m(%s)", body);
    check_fold(spec, "m([abc]x50)", 0);
    free(body);
}

static void test_fold_period_one_20000(void)
{
    char *body = repeat("s", 20000);
    char *spec = malloc(20010);
    snprintf(spec, 20010, "m(%s)", body);
    rt_fold f;
    int64_t t = 0;
    rt_fold_init(&f, NULL, rt_default_allocator());
    REQUIRE(build(&f, spec, &t) == RT_OK);
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    char *got = render(&f);
    CHECK_MSG(strcmp(got, "m([s]x20000)") == 0, "got %.100s", got);
    CHECK_EQ_U(f.n_groups, 1);
    CHECK_EQ_U(f.groups[0].count, 20000);
    CHECK_EQ_U(rt_fold_group_calls(&f, 0), 20000);
    CHECK_EQ_U(f.groups[0].dur_sum, 20000); /* each call lasts 1 tick */
    CHECK_EQ_I(rt_fold_group_t1(&f, 0) - rt_fold_group_t0(&f, 0), 2 * 20000 - 1);
    CHECK_EQ_U(f.calls, 20001);
    check_encoding(&f, "m([s]x20000)");
    free(got);
    rt_fold_free(&f);
    free(body);
    free(spec);
}

static void test_fold_nested_patterns(void)
{
    /* a loop body calling a, then an inner loop of (b, c) twice, run 3 times */
    check_fold("m(abcbcabcbcabcbc)", "m([a[bc]x2]x3)", 0);
    /* the reference tool's example shape: 6 x [p, g, 2 x [f, l]] */
    char *body = repeat("pgflfl", 6);
    char spec[100];
    snprintf(spec, sizeof spec, "m(%s)", body);
    check_fold(spec, "m([pg[fl]x2]x6)", 0);
    free(body);
    /* period-1 runs inside a longer pattern */
    check_fold("aabaabaab", "[[a]x2b]x3", 0);
    /* three levels */
    char *lvl = repeat("xyyxyy" "z", 4); /* ([x [y]x2]x2 z) x 4 */
    check_fold(lvl, "[[x[y]x2]x2z]x4", 0);
    free(lvl);
}

static void test_fold_exact_groups_and_no_overlap(void)
{
    check_fold("abab", "[ab]x2", 0);
    check_fold("ababa", "[ab]x2a", 0);
    check_fold("xababab", "x[ab]x3", 0);
    check_fold("abcabd", "abcabd", 0);        /* not the same sequence: nothing folded */
    check_fold("abcd", "abcd", 0);
    check_fold("aabab", "[a]x2bab", 0);      /* greedy: the earliest repetition wins */
    check_fold("abcabcab", "[abc]x2ab", 0);  /* an incomplete last repetition stays outside */
    check_fold("aaabbb", "[a]x3[b]x3", 0);
    check_fold("aaaabaaaab", "[[a]x4b]x2", 0);
    check_fold("aaaabaaab", "[a]x4b[a]x3b", 0); /* counts differ: not the same sequence */
    /* items inside a group are never shared with a neighbour */
    rt_fold f;
    int64_t t = 0;
    rt_fold_init(&f, NULL, rt_default_allocator());
    REQUIRE(build(&f, "m(ababcabab)", &t) == RT_OK);
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    uint32_t seen[64] = {0};
    for (uint32_t g = 0; g < f.n_groups; g++)
        for (uint32_t k = 0; k < f.groups[g].period * f.groups[g].count; k++) {
            uint32_t r = f.items[f.groups[g].first + k];
            if (!(r & RT_FOLD_GROUP) && r < 64)
                seen[r]++;
        }
    for (int k = 0; k < 64; k++)
        CHECK_MSG(seen[k] <= 1, "node %d is in %u groups", k, seen[k]);
    char *got = render(&f);
    CHECK_MSG(strcmp(got, "m([[ab]x2c]x2)") != 0, "got %s", got); /* c once: not [..c]x2 */
    CHECK_MSG(strcmp(got, "m([ab]x2c[ab]x2)") == 0, "got %s", got);
    free(got);
    rt_fold_free(&f);
}

static void test_fold_children_are_not_compared(void)
{
    /* the same function called three times with different callees folds */
    rt_fold f;
    int64_t t = 0;
    rt_fold_init(&f, NULL, rt_default_allocator());
    REQUIRE(build(&f, "m(s(x)s(yy)s)", &t) == RT_OK);
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    char *got = render(&f);
    CHECK_MSG(strcmp(got, "m([s(x)]x3)") == 0, "got %s", got);
    REQUIRE(f.n_groups == 2); /* [s]x3 and, inside the second s, [y]x2 */
    uint32_t gi = f.groups[0].count == 3 ? 0 : 1;
    const rt_fgroup *g = &f.groups[gi];
    CHECK_EQ_U(g->count, 3);
    CHECK_EQ_U(rt_fold_group_calls(&f, gi), 6); /* s, x, s, y, y, s */
    /* each repetition can still be opened: the second holds its own callees */
    uint32_t second = f.items[g->first + 1];
    REQUIRE(!(second & RT_FOLD_GROUP));
    CHECK_EQ_U(rt_fold_node_calls(&f, second), 3);
    check_encoding(&f, "m([s(x)]x3)");
    free(got);
    rt_fold_free(&f);
}

static void test_fold_one_group_lists_and_group_room(void)
{
    /* children that fold into a single group need no list: fib-like recursion */
    rt_fold f;
    int64_t t = 0;
    rt_fold_init(&f, NULL, rt_default_allocator());
    REQUIRE(build(&f, "m(b(cc)b(c(dd)c))", &t) == RT_OK);
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    char *got = render(&f);
    CHECK_MSG(strcmp(got, "m([b([c]x2)]x2)") == 0, "got %s", got);
    CHECK(f.flist[1] & RT_FOLD_GROUP); /* m's children: one group, no list */
    CHECK_EQ_U(f.n_lists, 0);
    CHECK_EQ_U(rt_fold_group_calls(&f, f.flist[1] & ~RT_FOLD_GROUP), 8);
    check_encoding(&f, "m([b([c]x2)]x2)");
    free(got);
    rt_fold_free(&f);

    /* groups growing in turns (their item regions are relocated), counts past powers of two */
    rt_fold_init(&f, NULL, rt_default_allocator());
    t = 0;
    REQUIRE(rt_fold_open(&f, 0, RT_FNODE_CALL, t++) == RT_OK);
    for (uint32_t r = 0; r < 37; r++) {
        REQUIRE(rt_fold_open(&f, 1, RT_FNODE_CALL, t++) == RT_OK);
        for (uint32_t k = 0; k < 2 * r + 2; k++) { /* the inner groups take turns to grow */
            rt_fold_open(&f, 2 + (k & 1), RT_FNODE_CALL, t++);
            rt_fold_close(&f, t++, RT_END_RETURN);
        }
        REQUIRE(rt_fold_close(&f, t++, RT_END_RETURN) == RT_OK);
    }
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    got = render(&f);
    CHECK_MSG(strncmp(got, "a([b(cd)]x37)", 4) == 0, "got %.40s", got);
    CHECK_EQ_U(f.groups[f.flist[1] & ~RT_FOLD_GROUP].count, 37);
    uint32_t ok = 1;
    for (uint32_t g = 0; g < f.n_groups; g++) {
        rt_fold_iter it;
        uint32_t ref, k = 0;
        rt_fold_iter_group(&f, g, &it);
        while (rt_fold_next(&it, &ref)) { /* every repetition's items, in order */
            uint32_t want = f.groups[g].period == 2 ? 2 + (k & 1) : 1; /* [c d]xN or [b]x37 */
            ok &= !(ref & RT_FOLD_GROUP) && f.nodes[ref].fid == want;
            k++;
        }
        ok &= k == f.groups[g].period * f.groups[g].count;
    }
    CHECK(ok);
    check_encoding(&f, NULL);
    free(got);
    rt_fold_free(&f);
}

static void test_fold_max_period(void)
{
    /* a sequence of 70 distinct calls, three times */
    rt_fold f;
    rt_fold_opts o64 = {64, 1}, o128 = {128, 1};
    for (int pass = 0; pass < 2; pass++) {
        rt_fold_init(&f, pass ? &o128 : &o64, rt_default_allocator());
        int64_t t = 0;
        REQUIRE(rt_fold_open(&f, 999, RT_FNODE_CALL, t++) == RT_OK);
        for (int r = 0; r < 3; r++)
            for (uint32_t k = 0; k < 70; k++) {
                rt_fold_open(&f, 1000 + k, RT_FNODE_CALL, t++);
                rt_fold_close(&f, t++, RT_END_RETURN);
            }
        REQUIRE(rt_fold_finish(&f) == RT_OK);
        if (pass == 0) {
            CHECK_EQ_U(f.n_groups, 0); /* period 70 > 64: not looked for */
        } else {
            REQUIRE(f.n_groups == 1);
            CHECK_EQ_U(f.groups[0].period, 70);
            CHECK_EQ_U(f.groups[0].count, 3);
        }
        rt_fold_free(&f);
    }
}

static void test_fold_all_distinct_and_aperiodic(void)
{
    /* 100,000 calls of distinct functions: nothing folds */
    rt_fold f;
    rt_fold_init(&f, NULL, rt_default_allocator());
    int64_t t = 0;
    rt_fold_open(&f, 0, RT_FNODE_CALL, t++);
    for (uint32_t k = 0; k < 100000; k++) {
        rt_fold_open(&f, 1 + k, RT_FNODE_CALL, t++);
        rt_fold_close(&f, t++, RT_END_RETURN);
    }
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    CHECK_EQ_U(f.n_groups, 0);
    CHECK_EQ_U(f.flist[1], 0);
    check_encoding(&f, NULL);
    rt_fold_free(&f);

    /* a square-free sequence over three functions (no block ever follows
     * itself), 200,000 long: nothing may fold, whatever the period */
    size_t n = 200000;
    uint8_t *tm = malloc(n + 2);
    for (size_t i = 0; i < n + 2; i++)
        tm[i] = (uint8_t)(__builtin_popcountll(i) & 1);
    rt_fold_opts o = {RT_FOLD_PERIOD_LIMIT, 1};
    rt_fold_init(&f, &o, rt_default_allocator());
    t = 0;
    rt_fold_open(&f, 9, RT_FNODE_CALL, t++);
    for (size_t i = 0; i < n; i++) {
        /* ternary square-free word: the number of 1s between consecutive 0s of Thue-Morse,
         * here as the difference sequence t[i+1] - t[i] + 1 */
        uint32_t fid = (uint32_t)(tm[i + 1] - tm[i] + 1);
        rt_fold_open(&f, fid, RT_FNODE_CALL, t++);
        rt_fold_close(&f, t++, RT_END_RETURN);
    }
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    CHECK_EQ_U(f.n_groups, 0);
    rt_fold_free(&f);
    free(tm);
}

static void test_fold_recursion_depth_and_calls(void)
{
    /* fib(15) as a call tree: one node, depth 15, 1973 calls */
    rt_fold f;
    rt_fold_init(&f, NULL, rt_default_allocator());
    int64_t t = 0;
    /* explicit stack of pending n values; open on push, close after children */
    int stack[64], state[64], sp = 0;
    stack[sp] = 15;
    state[sp++] = 0;
    rt_fold_open(&f, 7, RT_FNODE_CALL, t++);
    while (sp > 0) {
        int n = stack[sp - 1];
        if (n < 2 || state[sp - 1] == 2) {
            rt_fold_close(&f, t++, RT_END_RETURN);
            sp--;
            continue;
        }
        int child = n - 1 - state[sp - 1];
        state[sp - 1]++;
        rt_fold_open(&f, 7, RT_FNODE_CALL, t++);
        stack[sp] = child;
        state[sp++] = 0;
    }
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    CHECK_EQ_U(f.calls, 1973);
    CHECK_EQ_U(rt_fold_node_calls(&f, 1), 1973);
    CHECK_EQ_U(rt_fnode_depth(&f.nodes[1]), 15);
    CHECK_EQ_U(rt_fnode_depth(&f.nodes[2]), 14); /* fib(14) inside */
    check_encoding(&f, NULL);
    rt_fold_free(&f);

    /* through a cycle: f -> g -> f -> g -> h */
    rt_fold_init(&f, NULL, rt_default_allocator());
    t = 0;
    REQUIRE(build(&f, "f(g(f(g(h))))x", &t) == RT_OK);
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    CHECK_EQ_U(rt_fnode_depth(&f.nodes[1]), 2); /* f re-entered once */
    CHECK_EQ_U(rt_fnode_depth(&f.nodes[2]), 2); /* g too */
    CHECK_EQ_U(rt_fnode_depth(&f.nodes[3]), 1);
    CHECK_EQ_U(rt_fnode_depth(&f.nodes[5]), 1); /* h */
    CHECK_EQ_U(rt_fnode_depth(&f.nodes[6]), 1); /* x after it */
    rt_fold_free(&f);
}

static void test_fold_deep_recursion_100k(void)
{
    const uint32_t depth = 100000;
    rt_fold f;
    rt_fold_init(&f, NULL, rt_default_allocator());
    int64_t t = 0;
    for (uint32_t k = 0; k < depth; k++)
        REQUIRE(rt_fold_open(&f, 3, RT_FNODE_CALL, t++) == RT_OK);
    for (uint32_t k = 0; k < depth; k++) {
        /* each level calls a helper after its recursive call returns */
        REQUIRE(rt_fold_open(&f, 4, RT_FNODE_CALL, t++) == RT_OK);
        REQUIRE(rt_fold_close(&f, t++, RT_END_RETURN) == RT_OK);
        REQUIRE(rt_fold_close(&f, t++, RT_END_RETURN) == RT_OK);
    }
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    CHECK_EQ_U(f.calls, 2 * depth);
    CHECK_EQ_U(f.max_depth, depth + 1);
    CHECK_EQ_U(rt_fnode_depth(&f.nodes[1]), depth);
    check_encoding(&f, NULL);
    uint8_t *paths;
    size_t len;
    REQUIRE(rt_fold_paths(&f, &paths, &len) == RT_OK);
    dec d = {paths, paths + len, 0};
    CHECK_EQ_U(dv(&d), 2 * (uint64_t)depth + 1); /* root, depth levels, a helper under each */
    rt_free(f.alloc, paths);
    uint32_t node;
    CHECK_EQ_I(rt_fold_find_call(&f, 3, 50000, &node), RT_OK); /* the 50001st call starts at 50000 */
    CHECK_EQ_U(node, 50001);
    rt_fold_free(&f);
}

static void test_fold_paths_merge_and_times(void)
{
    rt_fold f;
    rt_fold_init(&f, NULL, rt_default_allocator());
    int64_t t = 0;
    REQUIRE(build(&f, "m(a(b)a(bb)c)", &t) == RT_OK);
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    uint8_t *buf;
    size_t len;
    REQUIRE(rt_fold_paths(&f, &buf, &len) == RT_OK);
    dec d = {buf, buf + len, 0};
    uint64_t n = dv(&d);
    CHECK_EQ_U(n, 5); /* root, m, m>a, m>a>b, m>c */
    uint64_t want[5][3] = {{0, 0, 0}, {'m' - 'a' + 1, 1, 1}, {1, 2, 2}, {2, 3, 3}, {3, 2, 1}};
    for (uint64_t k = 0; k < n; k++) {
        uint64_t fid = dv(&d), parent = dv(&d), calls = dv(&d), total = dv(&d), self = dv(&d);
        CHECK_EQ_U(fid, want[k][0]);
        CHECK_EQ_U(parent, want[k][1]);
        if (k > 0)
            CHECK_EQ_U(calls, want[k][2]);
        if (k == 3)
            CHECK_EQ_U(total, 3); /* three calls of b, one tick each */
        if (k == 2)
            CHECK_EQ_U(self, total - 3);
    }
    CHECK(d.p == d.end && !d.bad);
    rt_free(f.alloc, buf);
    rt_fold_free(&f);
}

/* A growable stream encoder for tests. */
typedef struct genc {
    uint8_t *buf;
    size_t n, cap;
} genc;

static void ge_room(genc *e)
{
    if (e->n + 32 > e->cap) {
        e->cap = e->cap ? e->cap * 2 : 1024;
        e->buf = realloc(e->buf, e->cap);
    }
}
static void ge_v(genc *e, uint64_t v)
{
    ge_room(e);
    e->n = (size_t)(rt_varint_put(e->buf + e->n, v) - e->buf);
}

static void test_fold_from_stream_with_generators(void)
{
    /* main calls a generator (fid 1) that yields twice; between, it calls f (fid 2) */
    genc e = {NULL, 0, 0};
    ge_v(&e, (100ULL << 3) | RT_EV_TIME);
    ge_v(&e, (0ULL << 3) | RT_EV_ENTER), ge_v(&e, 0);     /* main, call 0 */
    ge_v(&e, (1ULL << 3) | RT_EV_ENTER), ge_v(&e, 1);     /* gen, call 1 */
    ge_v(&e, (1ULL << 3) | RT_EV_SUSPEND);
    ge_v(&e, (2ULL << 3) | RT_EV_ENTER), ge_v(&e, 1);     /* f, call 2 */
    ge_v(&e, (1ULL << 3) | RT_EV_EXIT);
    ge_v(&e, (2ULL << 3) | RT_EV_RESUME), ge_v(&e, 1);    /* gen again (back 2 = call 1) */
    ge_v(&e, (1ULL << 3) | RT_EV_SUSPEND);
    ge_v(&e, (2ULL << 3) | RT_EV_ENTER), ge_v(&e, 1);     /* f, call 3 */
    ge_v(&e, (1ULL << 3) | RT_EV_EXIT);
    ge_v(&e, (3ULL << 3) | RT_EV_RESUME), ge_v(&e, 1);    /* gen (back 3 = call 1) */
    ge_v(&e, (1ULL << 3) | RT_EV_EXIT);
    ge_v(&e, (1ULL << 3) | RT_EV_EXIT);                   /* main returns */
    rt_fold f;
    rt_fold_init(&f, NULL, rt_default_allocator());
    REQUIRE(rt_fold_feed(&f, e.buf, e.n) == RT_OK);
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    CHECK_EQ_U(f.calls, 4);
    CHECK_EQ_U(f.n_nodes, 1 + 6);
    char *got = render(&f);
    CHECK_MSG(strcmp(got, "a([bc]x2b)") == 0, "got %s", got);
    CHECK_EQ_I(rt_fnode_kind(&f.nodes[2]), RT_FNODE_CALL);
    CHECK_EQ_I(rt_fnode_kind(&f.nodes[4]), RT_FNODE_RESUME);
    CHECK_EQ_U(f.nodes[5].calls_before, 3); /* the second f is call 3 */
    CHECK_EQ_I(rt_fnode_how(&f.nodes[2]), RT_END_SUSPEND);
    CHECK_EQ_U(rt_fold_group_calls(&f, 0), 3); /* gen, f, (resumed gen: no call), f */
    check_encoding(&f, "a([bc]x2b)");
    uint32_t node;
    CHECK_EQ_I(rt_fold_find_call(&f, 2, f.nodes[5].t0, &node), RT_OK);
    CHECK_EQ_U(node, 5);
    CHECK_EQ_I(rt_fold_find_call(&f, 0, f.nodes[5].t0, &node), RT_OK); /* inside main */
    CHECK_EQ_U(node, 1);
    CHECK_EQ_I(rt_fold_find_call(&f, 9, f.nodes[5].t0, &node), RT_ERR_STATE);
    free(got);
    rt_fold_free(&f);
    free(e.buf);
}

static void test_fold_misuse_and_bad_input(void)
{
    rt_fold f;
    rt_fold_init(&f, NULL, rt_default_allocator());
    CHECK_EQ_I(rt_fold_close(&f, 0, RT_END_RETURN), RT_ERR_STATE);
    rt_fold_free(&f);

    rt_fold_init(&f, NULL, rt_default_allocator());
    CHECK_EQ_I(rt_fold_open(&f, RT_FOLD_MAX_FID + 1, RT_FNODE_CALL, 0), RT_ERR_DATA);
    CHECK_EQ_I(rt_fold_finish(&f), RT_ERR_DATA); /* the first error sticks */
    rt_fold_free(&f);

    uint8_t junk[] = {0x80, 0x80};
    rt_fold_init(&f, NULL, rt_default_allocator());
    CHECK_EQ_I(rt_fold_feed(&f, junk, sizeof junk), RT_ERR_DATA);
    rt_fold_free(&f);

    /* an empty thread encodes as a root with no items */
    rt_fold_init(&f, NULL, rt_default_allocator());
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    CHECK_EQ_U(f.n_nodes, 1);
    CHECK_EQ_I(rt_fold_finish(&f), RT_ERR_STATE);
    rt_fold_free(&f);
    rt_fold_init(&f, NULL, rt_default_allocator());
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    check_encoding(&f, "");
    rt_fold_free(&f);

    /* spans still open at the end are closed at the last time seen */
    rt_fold_init(&f, NULL, rt_default_allocator());
    rt_fold_open(&f, 1, RT_FNODE_CALL, 5);
    rt_fold_open(&f, 2, RT_FNODE_CALL, 9);
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    CHECK_EQ_I(f.nodes[1].t1, 9);
    CHECK_EQ_I(rt_fnode_how(&f.nodes[2]), RT_END_OPEN);
    rt_fold_free(&f);
}

static void test_fold_encode_in_two_steps(void)
{
    rt_fold f;
    int64_t t = 0;
    rt_fold_init(&f, NULL, rt_default_allocator());
    size_t n;
    CHECK_EQ_I(rt_fold_encode_size(&f, &n), RT_ERR_STATE); /* before finish */
    REQUIRE(build(&f, "m(abab)", &t) == RT_OK);
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    uint8_t *one;
    size_t len;
    REQUIRE(rt_fold_encode(&f, &one, &len) == RT_OK);
    REQUIRE(rt_fold_encode_size(&f, &n) == RT_OK);
    CHECK_EQ_U(n, len);
    uint8_t *two = malloc(n + 1);
    CHECK_EQ_I(rt_fold_encode_into(&f, two, n + 1), RT_ERR_STATE); /* not the size */
    CHECK_EQ_I(rt_fold_encode_into(&f, two, n), RT_OK);
    CHECK(memcmp(one, two, n) == 0);
    free(two);
    rt_free(f.alloc, one);
    rt_fold_free(&f);
}

static void test_fold_no_patterns(void)
{
    rt_fold f;
    rt_fold_opts o = {0, 0};
    rt_fold_init(&f, &o, rt_default_allocator());
    int64_t t = 0;
    REQUIRE(build(&f, "m(ssss)", &t) == RT_OK);
    REQUIRE(rt_fold_finish(&f) == RT_OK);
    CHECK_EQ_U(f.n_groups, 0);
    char *got = render(&f);
    CHECK_MSG(strcmp(got, "m(ssss)") == 0, "got %s", got);
    check_encoding(&f, "m(ssss)");
    free(got);
    rt_fold_free(&f);
}

/* Every allocation failing in turn: an error is returned, nothing leaks. */
static void test_fold_alloc_failures(void)
{
    char *body = repeat("abcbcx(yyy)", 40);
    char spec[1024];
    snprintf(spec, sizeof spec, "m(%sq(r(s(t))))", body);
    free(body);
    int ok_seen = 0;
    for (long k = 1; k < 400 && !ok_seen; k++) {
        test_alloc ta;
        test_alloc_init(&ta);
        ta.fail_at = k;
        rt_fold f;
        int64_t t = 0;
        rt_fold_init(&f, NULL, &ta.a);
        int rc = build(&f, spec, &t);
        if (rc == RT_OK)
            rc = rt_fold_finish(&f);
        uint8_t *buf = NULL, *paths = NULL;
        size_t len;
        uint32_t node;
        if (rc == RT_OK)
            rc = rt_fold_encode(&f, &buf, &len);
        if (rc == RT_OK)
            rc = rt_fold_paths(&f, &paths, &len);
        if (rc == RT_OK)
            rc = rt_fold_find_call(&f, 'z' - 'a', 5, &node) == RT_ERR_NOMEM ? RT_ERR_NOMEM : RT_OK;
        if (ta.n_failed == 0) {
            CHECK_EQ_I(rc, RT_OK);
            ok_seen = 1;
        } else {
            CHECK_MSG(rc == RT_ERR_NOMEM, "allocation %ld failed, rc %d", k, rc);
        }
        rt_free(&ta.a, buf);
        rt_free(&ta.a, paths);
        rt_fold_free(&f);
        CHECK_MSG(ta.live == 0, "allocation %ld failed: %ld blocks leaked", k, ta.live);
    }
    CHECK(ok_seen);
}

void suite_fold(void)
{
    RT_RUN(test_fold_loop_of_three_calls);
    RT_RUN(test_fold_period_one_20000);
    RT_RUN(test_fold_nested_patterns);
    RT_RUN(test_fold_exact_groups_and_no_overlap);
    RT_RUN(test_fold_children_are_not_compared);
    RT_RUN(test_fold_one_group_lists_and_group_room);
    RT_RUN(test_fold_max_period);
    RT_RUN(test_fold_all_distinct_and_aperiodic);
    RT_RUN(test_fold_recursion_depth_and_calls);
    RT_RUN(test_fold_deep_recursion_100k);
    RT_RUN(test_fold_paths_merge_and_times);
    RT_RUN(test_fold_from_stream_with_generators);
    RT_RUN(test_fold_misuse_and_bad_input);
    RT_RUN(test_fold_encode_in_two_steps);
    RT_RUN(test_fold_no_patterns);
    RT_RUN(test_fold_alloc_failures);
}
