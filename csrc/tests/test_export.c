/* test_export.c -- the exporters: exact output of small hand-made streams in
 * every format, generator slices, JSON escaping, deep stacks, allocation and
 * output failures, misuse. */
#include <stdlib.h>
#include <zlib.h>

#include "../rt_export.h"
#include "../rt_stream.h"
#include "rt_test.h"
#include "rt_test_util.h"

/* ------------------------------------------------------------ helpers */

typedef struct xenc {
    uint8_t *buf, *p;
    size_t cap;
} xenc;

static void xe_init(xenc *e, size_t cap, int64_t t)
{
    e->buf = malloc(cap);
    if (!e->buf)
        abort();
    e->cap = cap;
    e->p = rt_varint_put(e->buf, ((uint64_t)t << 3) | RT_EV_TIME);
}
static void xe_enter(xenc *e, uint32_t fid, uint64_t dt)
{
    e->p = rt_varint_put(e->p, ((uint64_t)fid << 3) | RT_EV_ENTER);
    e->p = rt_varint_put(e->p, dt);
}
static void xe_end(xenc *e, int tag, uint64_t dt) { e->p = rt_varint_put(e->p, (dt << 3) | (uint64_t)tag); }
static void xe_resume(xenc *e, uint64_t back, uint64_t dt)
{
    e->p = rt_varint_put(e->p, (back << 3) | RT_EV_RESUME);
    e->p = rt_varint_put(e->p, dt);
}
static size_t xe_len(const xenc *e) { return (size_t)(e->p - e->buf); }
static void xe_free(xenc *e) { free(e->buf); }

/* An output that keeps everything (or only counts), failing on demand. */
typedef struct out {
    char *s;
    size_t n, cap;
    long calls;
    long fail_at;  /* 1-based call that fails; 0: none */
    int count_only;
} out;

static int out_fn(void *ctx, const uint8_t *data, size_t len)
{
    out *o = ctx;
    o->calls++;
    if (o->fail_at && o->calls >= o->fail_at)
        return -1;
    if (o->count_only) {
        o->n += len;
        return 0;
    }
    if (o->n + len + 1 > o->cap) {
        size_t nc = o->cap ? o->cap : 4096;
        while (nc < o->n + len + 1)
            nc *= 2;
        char *ns = realloc(o->s, nc);
        if (!ns)
            abort();
        o->s = ns;
        o->cap = nc;
    }
    memcpy(o->s + o->n, data, len);
    o->n += len;
    o->s[o->n] = 0;
    return 0;
}

static void out_free(out *o) { free(o->s); memset(o, 0, sizeof *o); }

static const rt_export_func FN_MAIN = {"main", "app.main", "/src/app.py", 10, "main (app.py:10)", RT_FUNC_PY};
static const rt_export_func FN_WORK = {"work", "app.work", "/src/app.py", 3, "work (app.py:3)", RT_FUNC_PY};
static const rt_export_func FN_LEN = {"len", "builtins.len", NULL, 0, "len", RT_FUNC_C};

/* main(0) @1000 calls work(1) [1500, 2250), len(2) [3000, 3000) raising, work again
 * [3100, 4100) and returns @5000. */
static void stream_basic(xenc *e)
{
    xe_init(e, 256, 1000);
    xe_enter(e, 0, 0);
    xe_enter(e, 1, 500);
    xe_end(e, RT_EV_EXIT, 750);
    xe_enter(e, 2, 750);
    xe_end(e, RT_EV_EXIT_EXC, 0);
    xe_enter(e, 1, 100);
    xe_end(e, RT_EV_EXIT, 1000);
    xe_end(e, RT_EV_EXIT, 900);
}

/* Run a whole export of the given chunks (one thread, tid 77, "Main") into o. */
static int run_export(int format, int merge, const xenc *chunks, size_t n, out *o, const rt_allocator *a,
                      rt_export_stats *st)
{
    rt_export *e;
    rt_export_opts opts = {0};
    opts.format = format;
    opts.merge_threads = merge;
    opts.pid = 5;
    opts.name = "t.trace";
    opts.exporter = "retracer test";
    opts.duration_ns = 4000;
    int rc = rt_export_new(&e, &opts, out_fn, o, a);
    if (rc != RT_OK)
        return rc;
    if ((rc = rt_export_add_function(e, 0, &FN_MAIN)) != RT_OK ||
        (rc = rt_export_add_function(e, 1, &FN_WORK)) != RT_OK ||
        (rc = rt_export_add_function(e, 2, &FN_LEN)) != RT_OK ||
        (rc = rt_export_thread_begin(e, 0, 77, "Main")) != RT_OK)
        goto done;
    for (size_t i = 0; i < n; i++)
        if ((rc = rt_export_feed(e, chunks[i].buf, xe_len(&chunks[i]))) != RT_OK)
            goto done;
    if ((rc = rt_export_thread_end(e)) != RT_OK)
        goto done;
    rc = rt_export_finish(e);
done:
    if (st)
        rt_export_get_stats(e, st);
    rt_export_free(e);
    return rc;
}

#define CHECK_STR(got, want) CHECK_MSG(strcmp((got) ? (got) : "", (want)) == 0, "got:\n%s\nwant:\n%s", (got), (want))

/* ------------------------------------------------------------ formats */

static void test_export_chrome_exact(void)
{
    xenc c;
    out o = {0};
    stream_basic(&c);
    CHECK_EQ_I(run_export(RT_EXPORT_CHROME, 0, &c, 1, &o, rt_default_allocator(), NULL), RT_OK);
    CHECK_STR(o.s,
              "{\"traceEvents\":[\n"
              "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":5,\"tid\":0,\"args\":{\"name\":\"t.trace\"}},\n"
              "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":5,\"tid\":77,\"ts\":0,\"args\":{\"name\":\"Main\"}},\n"
              "{\"ph\":\"M\",\"name\":\"thread_sort_index\",\"pid\":5,\"tid\":77,\"ts\":0,\"args\":{\"sort_index\":0}},\n"
              "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"work\",\"pid\":5,\"tid\":77,\"ts\":1.5,\"dur\":0.75},\n"
              "{\"ph\":\"X\",\"cat\":\"builtin\",\"name\":\"len\",\"pid\":5,\"tid\":77,\"ts\":3,\"dur\":0,\"args\":{\"end\":\"raise\"}},\n"
              "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"work\",\"pid\":5,\"tid\":77,\"ts\":3.1,\"dur\":1},\n"
              "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"main\",\"pid\":5,\"tid\":77,\"ts\":1,\"dur\":4}\n"
              "],\"displayTimeUnit\":\"ns\",\"otherData\":{\"exporter\":\"retracer test\",\"trace\":\"t.trace\"}}\n");
    out_free(&o);
    xe_free(&c);
}

static void test_export_speedscope_exact(void)
{
    xenc c;
    out o = {0};
    stream_basic(&c);
    CHECK_EQ_I(run_export(RT_EXPORT_SPEEDSCOPE, 0, &c, 1, &o, rt_default_allocator(), NULL), RT_OK);
    CHECK_STR(o.s,
              "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\"profiles\":[\n"
              "{\"type\":\"evented\",\"name\":\"Main (thread 77)\",\"unit\":\"nanoseconds\",\"events\":[\n"
              "{\"type\":\"O\",\"frame\":0,\"at\":1000},\n"
              "{\"type\":\"O\",\"frame\":1,\"at\":1500},\n"
              "{\"type\":\"C\",\"frame\":1,\"at\":2250},\n"
              "{\"type\":\"O\",\"frame\":2,\"at\":3000},\n"
              "{\"type\":\"C\",\"frame\":2,\"at\":3000},\n"
              "{\"type\":\"O\",\"frame\":1,\"at\":3100},\n"
              "{\"type\":\"C\",\"frame\":1,\"at\":4100},\n"
              "{\"type\":\"C\",\"frame\":0,\"at\":5000}\n"
              "],\"startValue\":1000,\"endValue\":5000}\n"
              "],\"shared\":{\"frames\":[\n"
              "{\"name\":\"main\",\"file\":\"/src/app.py\",\"line\":10},\n"
              "{\"name\":\"work\",\"file\":\"/src/app.py\",\"line\":3},\n"
              "{\"name\":\"len\"}\n"
              "]},\"name\":\"t.trace\",\"activeProfileIndex\":0,\"exporter\":\"retracer test\"}\n");
    out_free(&o);
    xe_free(&c);
}

static void test_export_folded_exact(void)
{
    xenc c;
    out o = {0};
    stream_basic(&c);
    /* main: 4000 - 750 - 0 - 1000 = 2250 self; work twice under main: 1750; len: 0 (no line) */
    CHECK_EQ_I(run_export(RT_EXPORT_FOLDED, 0, &c, 1, &o, rt_default_allocator(), NULL), RT_OK);
    CHECK_STR(o.s, "main (app.py:10) 2250\n"
                   "main (app.py:10);work (app.py:3) 1750\n");
    out_free(&o);
    xe_free(&c);
}

static void test_export_json_exact(void)
{
    xenc c;
    out o = {0};
    stream_basic(&c);
    CHECK_EQ_I(run_export(RT_EXPORT_JSON, 0, &c, 1, &o, rt_default_allocator(), NULL), RT_OK);
    CHECK_STR(o.s,
              "{\"format\":\"retracer-profile\",\"version\":1,\"unit\":\"ns\",\"name\":\"t.trace\","
              "\"exporter\":\"retracer test\",\"duration_ns\":4000,\"merged_threads\":false,\n"
              "\"threads\":[\n"
              "{\"thread\":0,\"tid\":77,\"name\":\"Main\",\"start_ns\":1000,\"end_ns\":5000,\"calls\":4,"
              "\"total_ns\":4000,\n"
              "\"nodes\":[\n[-1,0,1,4000,2250],\n[0,1,2,1750,1750],\n[0,2,1,0,0]]}\n"
              "],\n"
              "\"functions\":[\n"
              "{\"fid\":0,\"name\":\"main\",\"system_name\":\"app.main\",\"file\":\"/src/app.py\",\"line\":10,\"kind\":\"py\"},\n"
              "{\"fid\":1,\"name\":\"work\",\"system_name\":\"app.work\",\"file\":\"/src/app.py\",\"line\":3,\"kind\":\"py\"},\n"
              "{\"fid\":2,\"name\":\"len\",\"system_name\":\"builtins.len\",\"file\":null,\"line\":null,\"kind\":\"c\"}\n"
              "]}\n");
    out_free(&o);
    xe_free(&c);
}

/* ------------------------------------------------ a minimal pprof reader */

typedef struct pb {
    const uint8_t *p, *end;
} pb;

static int pb_varint(pb *b, uint64_t *v)
{
    *v = 0;
    for (unsigned s = 0; b->p < b->end && s < 64; s += 7) {
        uint8_t c = *b->p++;
        *v |= (uint64_t)(c & 0x7f) << s;
        if (!(c & 0x80))
            return 1;
    }
    return 0;
}

/* Next field: number, wire type, varint value or (data, len). */
static int pb_next(pb *b, unsigned *field, unsigned *wt, uint64_t *v, const uint8_t **data)
{
    uint64_t key;
    if (b->p >= b->end || !pb_varint(b, &key))
        return 0;
    *field = (unsigned)(key >> 3);
    *wt = (unsigned)(key & 7);
    if (*wt == 0)
        return pb_varint(b, v);
    if (*wt == 2) {
        if (!pb_varint(b, v) || *v > (uint64_t)(b->end - b->p))
            return 0;
        *data = b->p;
        b->p += *v;
        return 1;
    }
    return 0;
}

typedef struct pprof_summary {
    int ok;
    size_t strings, samples, functions, locations, sample_types;
    uint64_t sum_calls, sum_wall, max_locs;
    uint64_t default_type, period;
    char str[16][32];        /* the first strings */
    uint64_t first_sample_locs[4];
    size_t labels;           /* sample labels, with their numbers summed */
    uint64_t label_key, label_num_sum;
} pprof_summary;

static void pprof_read(const uint8_t *gz, size_t gzlen, pprof_summary *s)
{
    memset(s, 0, sizeof *s);
    size_t cap = 1 << 20, n = 0;
    uint8_t *raw = malloc(cap);
    if (!raw)
        abort();
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        abort();
    zs.next_in = (Bytef *)(uintptr_t)gz;
    zs.avail_in = (uInt)gzlen;
    int rc;
    do {
        if (n == cap) {
            cap *= 2;
            raw = realloc(raw, cap);
            if (!raw)
                abort();
        }
        zs.next_out = raw + n;
        zs.avail_out = (uInt)(cap - n);
        rc = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
    } while (rc == Z_OK);
    inflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(raw);
        return;
    }
    pb b = {raw, raw + n};
    unsigned f, wt;
    uint64_t v;
    const uint8_t *d = NULL;
    s->ok = 1;
    while (b.p < b.end) {
        if (!pb_next(&b, &f, &wt, &v, &d)) {
            s->ok = 0;
            break;
        }
        if (f == 6) {
            if (s->strings < 16) {
                size_t k = v < 31 ? (size_t)v : 31;
                memcpy(s->str[s->strings], d, k);
                s->str[s->strings][k] = 0;
            }
            s->strings++;
        } else if (f == 1) {
            s->sample_types++;
        } else if (f == 4) {
            s->locations++;
        } else if (f == 5) {
            s->functions++;
        } else if (f == 14) {
            s->default_type = v;
        } else if (f == 12) {
            s->period = v;
        } else if (f == 2) {
            pb m = {d, d + v};
            unsigned mf, mwt;
            uint64_t mv;
            const uint8_t *md = NULL;
            uint64_t nlocs = 0;
            while (m.p < m.end && pb_next(&m, &mf, &mwt, &mv, &md)) {
                pb q = {md, md + mv};
                uint64_t x;
                if (mf == 1) {
                    while (q.p < q.end && pb_varint(&q, &x)) {
                        if (s->samples == 0 && nlocs < 4)
                            s->first_sample_locs[nlocs] = x;
                        nlocs++;
                    }
                } else if (mf == 3) {
                    unsigned lf, lwt;
                    uint64_t lv;
                    const uint8_t *ld = NULL;
                    while (q.p < q.end && pb_next(&q, &lf, &lwt, &lv, &ld)) {
                        if (lf == 1)
                            s->label_key = lv;
                        else if (lf == 3)
                            s->label_num_sum += lv;
                    }
                    s->labels++;
                } else if (mf == 2) {
                    if (pb_varint(&q, &x))
                        s->sum_calls += x;
                    if (pb_varint(&q, &x))
                        s->sum_wall += x;
                }
            }
            if (nlocs > s->max_locs)
                s->max_locs = nlocs;
            s->samples++;
        }
    }
    free(raw);
}

static void test_export_pprof_decodes(void)
{
    xenc c;
    out o = {0};
    pprof_summary s;
    stream_basic(&c);
    CHECK_EQ_I(run_export(RT_EXPORT_PPROF, 0, &c, 1, &o, rt_default_allocator(), NULL), RT_OK);
    REQUIRE(o.n > 18);
    CHECK_EQ_U((uint8_t)o.s[0], 0x1f); /* gzip magic */
    CHECK_EQ_U((uint8_t)o.s[1], 0x8b);
    pprof_read((const uint8_t *)o.s, o.n, &s);
    CHECK(s.ok);
    CHECK_EQ_U(s.sample_types, 2);
    /* main, main;work, main;len (calls but no time) */
    CHECK_EQ_U(s.samples, 3);
    CHECK_EQ_U(s.sum_calls, 4);
    CHECK_EQ_U(s.sum_wall, 4000);
    CHECK_EQ_U(s.functions, 3);
    CHECK_EQ_U(s.locations, 3);
    CHECK_EQ_U(s.max_locs, 2);
    CHECK_EQ_U(s.first_sample_locs[0], 1); /* main: fid 0 -> id 1 */
    CHECK_STR(s.str[0], "");
    CHECK_STR(s.str[1], "calls");
    CHECK_STR(s.str[2], "count");
    CHECK_STR(s.str[3], "wall");
    CHECK_STR(s.str[4], "nanoseconds");
    CHECK_EQ_U(s.default_type, 3);
    CHECK_EQ_U(s.period, 1);
    out_free(&o);
    xe_free(&c);
}

/* ------------------------------------------------------- generators */

static void test_export_generator_slices(void)
{
    /* main(0) enters gen(1) @10, gen yields @20, work(2) [30,40), resume gen @50
     * (back = calls 3 - call 1 = 2), gen returns @70, main returns @100. */
    static const rt_export_func fg = {"gen", NULL, "/g.py", 1, "gen", RT_FUNC_PY};
    xenc c;
    xe_init(&c, 256, 0);
    xe_enter(&c, 0, 0);
    xe_enter(&c, 1, 10);
    xe_end(&c, RT_EV_SUSPEND, 10);
    xe_enter(&c, 2, 10);
    xe_end(&c, RT_EV_EXIT, 10);
    xe_resume(&c, 2, 10);
    xe_end(&c, RT_EV_EXIT, 20);
    xe_end(&c, RT_EV_EXIT, 30);
    const char *want[] = {
        /* chrome: the two slices of gen are two X events, the second marked resumed */
        "\"name\":\"gen\",\"pid\":1,\"tid\":1,\"ts\":0.01,\"dur\":0.01,\"args\":{\"end\":\"yield\"}}",
        "\"name\":\"gen\",\"pid\":1,\"tid\":1,\"ts\":0.05,\"dur\":0.02,\"args\":{\"start\":\"resume\"}}",
    };
    for (int fmt = RT_EXPORT_CHROME; fmt <= RT_EXPORT_JSON; fmt++) {
        rt_export *e;
        out o = {0};
        rt_export_opts opts = {0};
        opts.format = fmt;
        opts.pid = 1;
        REQUIRE(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()) == RT_OK);
        CHECK_EQ_I(rt_export_add_function(e, 0, &FN_MAIN), RT_OK);
        CHECK_EQ_I(rt_export_add_function(e, 1, &fg), RT_OK);
        CHECK_EQ_I(rt_export_add_function(e, 2, &FN_WORK), RT_OK);
        CHECK_EQ_I(rt_export_thread_begin(e, 0, 1, NULL), RT_OK);
        CHECK_EQ_I(rt_export_feed(e, c.buf, xe_len(&c)), RT_OK);
        CHECK_EQ_I(rt_export_finish(e), RT_OK); /* ends the open thread */
        rt_export_stats st;
        rt_export_get_stats(e, &st);
        CHECK_EQ_U(st.spans, 4);
        CHECK_EQ_U(st.calls, 3);
        CHECK_EQ_U(st.anomalies, 0);
        CHECK_EQ_U(st.max_depth, 2);
        rt_export_free(e);
        if (fmt == RT_EXPORT_CHROME) {
            CHECK_MSG(strstr(o.s, want[0]) != NULL, "no first slice in %s", o.s);
            CHECK_MSG(strstr(o.s, want[1]) != NULL, "no resumed slice in %s", o.s);
        } else if (fmt == RT_EXPORT_FOLDED) {
            /* gen: one node, 10 + 20 ns; main 100 - 30 - 10 = 60 */
            CHECK_STR(o.s, "main (app.py:10) 60\nmain (app.py:10);gen 30\nmain (app.py:10);work (app.py:3) 10\n");
        } else if (fmt == RT_EXPORT_JSON) {
            CHECK_MSG(strstr(o.s, "\"nodes\":[\n[-1,0,1,100,60],\n[0,1,1,30,30],\n[0,2,1,10,10]]") != NULL,
                      "nodes in %s", o.s);
        } else if (fmt == RT_EXPORT_SPEEDSCOPE) {
            CHECK_MSG(strstr(o.s, "{\"type\":\"O\",\"frame\":1,\"at\":50},\n{\"type\":\"C\",\"frame\":1,\"at\":70}") != NULL,
                      "resumed slice in %s", o.s);
        }
        out_free(&o);
    }
    xe_free(&c);
}

/* ---------------------------------------------------------- escaping */

static void test_export_json_escaping(void)
{
    /* quotes, backslash, control characters, UTF-8 kept, an invalid byte replaced */
    static const rt_export_func odd = {"a\"b\\c\nd\te\x01 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xff\xc3", NULL,
                                       "C:\\dir\\\"x\".py", 7, "f;g\nh", RT_FUNC_PY};
    const char *want = "\"a\\\"b\\\\c\\nd\\te\\u0001 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \\ufffd\\ufffd\"";
    xenc c;
    xe_init(&c, 64, 0);
    xe_enter(&c, 9, 1);
    xe_end(&c, RT_EV_EXIT, 5);
    for (int fmt = RT_EXPORT_CHROME; fmt <= RT_EXPORT_JSON; fmt++) {
        if (fmt == RT_EXPORT_PPROF)
            continue;
        rt_export *e;
        out o = {0};
        rt_export_opts opts = {0};
        opts.format = fmt;
        opts.name = "tr\"ace";
        REQUIRE(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()) == RT_OK);
        CHECK_EQ_I(rt_export_add_function(e, 9, &odd), RT_OK);
        CHECK_EQ_I(rt_export_thread_begin(e, 0, 1, "th\"read"), RT_OK);
        CHECK_EQ_I(rt_export_feed(e, c.buf, xe_len(&c)), RT_OK);
        CHECK_EQ_I(rt_export_finish(e), RT_OK);
        rt_export_free(e);
        if (fmt == RT_EXPORT_FOLDED) {
            CHECK_STR(o.s, "f:g h 5\n");
        } else {
            CHECK_MSG(strstr(o.s, want) != NULL, "format %d: escaped name not in %s", fmt, o.s);
            CHECK_MSG(strstr(o.s, "th\\\"read") != NULL, "thread name not escaped in %s", o.s);
            if (fmt != RT_EXPORT_CHROME)
                CHECK_MSG(strstr(o.s, "\"C:\\\\dir\\\\\\\"x\\\".py\"") != NULL, "file escaped in %s", o.s);
            CHECK_MSG(strstr(o.s, "\"tr\\\"ace\"") != NULL, "profile name escaped in %s", o.s);
        }
        out_free(&o);
    }
    xe_free(&c);
}

static void test_export_unknown_fid(void)
{
    xenc c;
    out o = {0};
    rt_export *e;
    rt_export_opts opts = {0};
    opts.format = RT_EXPORT_FOLDED;
    xe_init(&c, 64, 0);
    xe_enter(&c, 3, 1);
    xe_end(&c, RT_EV_EXIT, 5);
    REQUIRE(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()) == RT_OK);
    CHECK_EQ_I(rt_export_thread_begin(e, 0, 1, NULL), RT_OK);
    CHECK_EQ_I(rt_export_feed(e, c.buf, xe_len(&c)), RT_OK);
    CHECK_EQ_I(rt_export_finish(e), RT_OK);
    CHECK_STR(o.s, "<fid 3> 5\n");
    rt_export_free(e);
    out_free(&o);
    xe_free(&c);

    /* a fid far beyond the described ones is malformed data, not a huge allocation */
    out o2 = {0};
    xe_init(&c, 64, 0);
    xe_enter(&c, 4000000000u, 1);
    REQUIRE(rt_export_new(&e, &opts, out_fn, &o2, rt_default_allocator()) == RT_OK);
    CHECK_EQ_I(rt_export_thread_begin(e, 0, 1, NULL), RT_OK);
    CHECK_EQ_I(rt_export_feed(e, c.buf, xe_len(&c)), RT_ERR_DATA);
    CHECK_MSG(strstr(rt_export_errstr(e), "out of range") != NULL, "%s", rt_export_errstr(e));
    rt_export_free(e);
    out_free(&o2);
    xe_free(&c);
}

/* ------------------------------------------------------ deep stacks */

static void deep_stream(xenc *c, size_t depth)
{
    xe_init(c, depth * 6 + 16, 0);
    for (size_t i = 0; i < depth; i++)
        xe_enter(c, 0, 1);
    for (size_t i = 0; i < depth; i++)
        xe_end(c, RT_EV_EXIT, 1);
}

static void test_export_deep_recursion(void)
{
    /* 100,000 nested calls: the span formats and the JSON tree (linear size);
     * 3,000 for folded and pprof, whose size grows with depth squared. */
    static const rt_export_func f = {"r", NULL, "/r.py", 1, "r", RT_FUNC_PY};
    for (int fmt = RT_EXPORT_CHROME; fmt <= RT_EXPORT_JSON; fmt++) {
        size_t depth = (fmt == RT_EXPORT_FOLDED || fmt == RT_EXPORT_PPROF) ? 3000 : 100000;
        xenc c;
        deep_stream(&c, depth);
        out o = {0};
        o.count_only = fmt != RT_EXPORT_FOLDED && fmt != RT_EXPORT_PPROF;
        rt_export *e;
        rt_export_opts opts = {0};
        opts.format = fmt;
        REQUIRE(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()) == RT_OK);
        CHECK_EQ_I(rt_export_add_function(e, 0, &f), RT_OK);
        CHECK_EQ_I(rt_export_thread_begin(e, 0, 1, NULL), RT_OK);
        CHECK_EQ_I(rt_export_feed(e, c.buf, xe_len(&c)), RT_OK);
        CHECK_EQ_I(rt_export_thread_end(e), RT_OK);
        CHECK_EQ_I(rt_export_finish(e), RT_OK);
        rt_export_stats st;
        rt_export_get_stats(e, &st);
        CHECK_EQ_U(st.max_depth, depth);
        CHECK_EQ_U(st.calls, depth);
        CHECK_EQ_U(st.bytes, o.n);
        if (fmt != RT_EXPORT_CHROME && fmt != RT_EXPORT_SPEEDSCOPE)
            CHECK_EQ_U(st.nodes, depth);
        rt_export_free(e);
        if (fmt == RT_EXPORT_FOLDED) {
            /* every level has 2 ns of self time (the innermost 1); the deepest line has `depth` frames */
            size_t lines = 0, frames = 0;
            for (size_t i = 0; i < o.n; i++) {
                lines += o.s[i] == '\n';
                frames += o.s[i] == 'r';
            }
            CHECK_EQ_U(lines, depth);
            CHECK_EQ_U(frames, depth * (depth + 1) / 2);
            CHECK(strstr(o.s, "r 2\n") == o.s);
        } else if (fmt == RT_EXPORT_PPROF) {
            pprof_summary s;
            pprof_read((const uint8_t *)o.s, o.n, &s);
            CHECK(s.ok);
            CHECK_EQ_U(s.samples, depth);
            CHECK_EQ_U(s.max_locs, depth);
            CHECK_EQ_U(s.sum_calls, depth);
            CHECK_EQ_U(s.sum_wall, 2 * depth - 1); /* the innermost call has 1 ns */
        }
        out_free(&o);
        xe_free(&c);
    }
}

/* ----------------------------------------------------------- failures */

/* Run the basic export under an allocator failing at request k = 1, 2, ...
 * until it succeeds: every failure is RT_ERR_NOMEM and leaks nothing, and the
 * output of the successful run is the same as with the default allocator. */
static void test_export_allocation_failures(void)
{
    xenc c[2];
    stream_basic(&c[0]);
    deep_stream(&c[1], 700); /* more growth: stacks, trie, map, scratch */
    for (int fmt = RT_EXPORT_CHROME; fmt <= RT_EXPORT_JSON; fmt++) {
        out ref = {0};
        CHECK_EQ_I(run_export(fmt, fmt == RT_EXPORT_JSON, c, 2, &ref, rt_default_allocator(), NULL), RT_OK);
        int ok = 0;
        long k;
        for (k = 1; k < 500 && !ok; k++) {
            test_alloc ta;
            test_alloc_init(&ta);
            ta.fail_at = k;
            out o = {0};
            int rc = run_export(fmt, fmt == RT_EXPORT_JSON, c, 2, &o, &ta.a, NULL);
            if (ta.n_failed == 0) {
                CHECK_EQ_I(rc, RT_OK);
                CHECK_MSG(o.n == ref.n && memcmp(o.s, ref.s, o.n) == 0, "format %d: output differs", fmt);
                ok = 1;
            } else {
                CHECK_MSG(rc == RT_ERR_NOMEM, "format %d, failing request %ld: rc %d", fmt, k, rc);
            }
            CHECK_MSG(ta.live == 0, "format %d, failing request %ld: %ld blocks leaked", fmt, k, ta.live);
            out_free(&o);
        }
        CHECK_MSG(ok, "format %d never succeeded", fmt);
        CHECK_MSG(k > 3, "format %d: only %ld allocations", fmt, k);
        out_free(&ref);
    }
    xe_free(&c[0]);
    xe_free(&c[1]);
}

static void test_export_output_failure(void)
{
    /* a stream big enough for several 64 KiB blocks; the output fails at block 1, 2, 3 */
    xenc c;
    deep_stream(&c, 20000);
    for (int fmt = RT_EXPORT_CHROME; fmt <= RT_EXPORT_JSON; fmt++) {
        if (fmt == RT_EXPORT_FOLDED || fmt == RT_EXPORT_PPROF)
            continue; /* the 20,000-deep stack would make them huge */
        for (long k = 1; k <= 3; k++) {
            test_alloc ta;
            test_alloc_init(&ta);
            out o = {0};
            o.count_only = 1;
            o.fail_at = k;
            int rc = run_export(fmt, 0, &c, 1, &o, &ta.a, NULL);
            CHECK_MSG(rc == RT_ERR_IO, "format %d, failing block %ld: rc %d", fmt, k, rc);
            CHECK_EQ_I(o.calls, k); /* nothing more is written after the failure */
            CHECK_EQ_I(ta.live, 0);
        }
    }
    xe_free(&c);
    /* folded and pprof fail on their one block at the end */
    stream_basic(&c);
    for (int fmt = RT_EXPORT_FOLDED; fmt <= RT_EXPORT_PPROF; fmt++) {
        out o = {0};
        o.fail_at = 1;
        CHECK_EQ_I(run_export(fmt, 0, &c, 1, &o, rt_default_allocator(), NULL), RT_ERR_IO);
        CHECK_EQ_I(o.calls, 1);
    }
    xe_free(&c);
}

static void test_export_misuse_and_bad_data(void)
{
    rt_export *e;
    out o = {0};
    rt_export_opts opts = {0};
    opts.format = 42;
    CHECK_EQ_I(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()), RT_ERR_STATE);
    CHECK(e == NULL);
    CHECK_EQ_I(rt_export_format_by_name("pprof"), RT_EXPORT_PPROF);
    CHECK_EQ_I(rt_export_format_by_name("svg"), 0);

    opts.format = RT_EXPORT_CHROME;
    REQUIRE(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()) == RT_OK);
    uint8_t chunk[] = {RT_EV_TIME};
    CHECK_EQ_I(rt_export_feed(e, chunk, 1), RT_ERR_STATE);          /* no thread */
    CHECK_EQ_I(rt_export_thread_begin(e, 0, 1, NULL), RT_ERR_STATE); /* sticky */
    CHECK(strstr(rt_export_errstr(e), "outside a thread") != NULL);
    rt_export_free(e);

    REQUIRE(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()) == RT_OK);
    CHECK_EQ_I(rt_export_thread_begin(e, 0, 1, NULL), RT_OK);
    CHECK_EQ_I(rt_export_thread_begin(e, 1, 2, NULL), RT_ERR_STATE);
    rt_export_free(e);

    REQUIRE(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()) == RT_OK);
    CHECK_EQ_I(rt_export_finish(e), RT_OK);
    CHECK_EQ_I(rt_export_finish(e), RT_ERR_STATE);
    rt_export_free(e);
    out_free(&o);

    /* a truncated chunk */
    REQUIRE(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()) == RT_OK);
    uint8_t bad[] = {RT_EV_TIME, (1u << 3) | RT_EV_ENTER, 0x80};
    CHECK_EQ_I(rt_export_thread_begin(e, 3, 1, NULL), RT_OK);
    CHECK_EQ_I(rt_export_feed(e, bad, sizeof bad), RT_ERR_DATA);
    CHECK(strstr(rt_export_errstr(e), "malformed call-stream chunk in thread 3") != NULL);
    CHECK_EQ_I(rt_export_finish(e), RT_ERR_DATA);
    rt_export_free(e);
    out_free(&o);
}

static void test_export_threads_and_merge(void)
{
    /* two threads running work(): per-thread trees in JSON, one merged tree with
     * merge_threads, folded merges, chrome names both threads */
    xenc a, b;
    xe_init(&a, 64, 0);
    xe_enter(&a, 1, 0);
    xe_end(&a, RT_EV_EXIT, 10);
    xe_init(&b, 64, 5);
    xe_enter(&b, 1, 0);
    xe_end(&b, RT_EV_EXIT, 30);
    for (int fmt = RT_EXPORT_CHROME; fmt <= RT_EXPORT_JSON + 1; fmt++) {
        int merge = fmt == RT_EXPORT_JSON + 1;
        rt_export *e;
        out o = {0};
        rt_export_opts opts = {0};
        opts.format = merge ? RT_EXPORT_JSON : fmt;
        opts.merge_threads = merge;
        REQUIRE(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()) == RT_OK);
        CHECK_EQ_I(rt_export_add_function(e, 1, &FN_WORK), RT_OK);
        CHECK_EQ_I(rt_export_thread_begin(e, 0, 100, "A"), RT_OK);
        CHECK_EQ_I(rt_export_feed(e, a.buf, xe_len(&a)), RT_OK);
        CHECK_EQ_I(rt_export_thread_end(e), RT_OK);
        CHECK_EQ_I(rt_export_thread_begin(e, 1, 200, "B"), RT_OK);
        CHECK_EQ_I(rt_export_feed(e, b.buf, xe_len(&b)), RT_OK);
        CHECK_EQ_I(rt_export_thread_end(e), RT_OK);
        CHECK_EQ_I(rt_export_finish(e), RT_OK);
        rt_export_free(e);
        switch (merge ? 0 : fmt) {
        case RT_EXPORT_CHROME:
            CHECK(strstr(o.s, "\"tid\":100,\"ts\":0,\"args\":{\"name\":\"A\"}") != NULL);
            CHECK(strstr(o.s, "\"tid\":200,\"ts\":0.005,\"dur\":0.03}") != NULL);
            break;
        case RT_EXPORT_SPEEDSCOPE:
            CHECK(strstr(o.s, "\"name\":\"B (thread 200)\"") != NULL);
            CHECK(strstr(o.s, "\"startValue\":5,\"endValue\":35}") != NULL);
            CHECK(strstr(o.s, "\"frames\":[\n{\"name\":\"work\",\"file\":\"/src/app.py\",\"line\":3}\n]") != NULL);
            break;
        case RT_EXPORT_FOLDED:
            CHECK_STR(o.s, "work (app.py:3) 40\n");
            break;
        case RT_EXPORT_JSON:
            CHECK(strstr(o.s, "\"name\":\"A\",\"start_ns\":0,\"end_ns\":10,\"calls\":1,\"total_ns\":10,\n\"nodes\":[\n[-1,1,1,10,10]]") != NULL);
            CHECK(strstr(o.s, "\"name\":\"B\",\"start_ns\":5,\"end_ns\":35,\"calls\":1,\"total_ns\":30,\n\"nodes\":[\n[-1,1,1,30,30]]") != NULL);
            break;
        case 0:
            CHECK_MSG(strstr(o.s, "{\"thread\":-1,\"tid\":null,\"name\":\"all threads\",\"calls\":2,\"total_ns\":40,\n"
                                  "\"nodes\":[\n[-1,1,2,40,40]]}") != NULL, "%s", o.s);
            CHECK(strstr(o.s, "\"merged_threads\":true") != NULL);
            break;
        default:
            break;
        }
        out_free(&o);
    }
    xe_free(&a);
    xe_free(&b);
}

/* Threads of two processes: folded puts each process's stacks under its root frame
 * (or merges them without frames); pprof keeps them apart, with a "pid" label and,
 * with frames, a process location at the root. */
static void test_export_processes(void)
{
    xenc a, b, c;
    xe_init(&a, 64, 0);
    xe_enter(&a, 1, 0);
    xe_end(&a, RT_EV_EXIT, 10);
    xe_init(&b, 64, 5);
    xe_enter(&b, 1, 0);
    xe_end(&b, RT_EV_EXIT, 30);
    xe_init(&c, 64, 7);
    xe_enter(&c, 0, 0);
    xe_enter(&c, 1, 1);
    xe_end(&c, RT_EV_EXIT, 100);
    xe_end(&c, RT_EV_EXIT, 2);
    for (int fmt = RT_EXPORT_FOLDED; fmt <= RT_EXPORT_PPROF; fmt += RT_EXPORT_PPROF - RT_EXPORT_FOLDED) {
        for (int frames = 0; frames < 2; frames++) {
            rt_export *e;
            out o = {0};
            rt_export_opts opts = {0};
            opts.format = fmt;
            REQUIRE(rt_export_new(&e, &opts, out_fn, &o, rt_default_allocator()) == RT_OK);
            CHECK_EQ_I(rt_export_add_function(e, 0, &FN_MAIN), RT_OK);
            CHECK_EQ_I(rt_export_add_function(e, 1, &FN_WORK), RT_OK);
            const xenc *streams[3] = {&a, &b, &c};
            const int64_t pids[3] = {10, 20, 10};
            for (int t = 0; t < 3; t++) {
                CHECK_EQ_I(rt_export_set_process(e, pids[t], !frames ? NULL : pids[t] == 10 ? "process 10: a;b.py"
                                                                                           : "process 20: c.py"),
                           RT_OK);
                CHECK_EQ_I(rt_export_thread_begin(e, (uint32_t)t, 100 + t, "T"), RT_OK);
                CHECK_EQ_I(rt_export_feed(e, streams[t]->buf, xe_len(streams[t])), RT_OK);
                CHECK_EQ_I(rt_export_thread_end(e), RT_OK);
            }
            CHECK_EQ_I(rt_export_finish(e), RT_OK);
            rt_export_stats st;
            rt_export_get_stats(e, &st);
            rt_export_free(e);
            if (fmt == RT_EXPORT_FOLDED) {
                if (frames)  /* ';' in a frame's text is ':' (one frame) */
                    CHECK_STR(o.s, "process 10: a:b.py;work (app.py:3) 10\n"
                                   "process 20: c.py;work (app.py:3) 30\n"
                                   "process 10: a:b.py;main (app.py:10) 3\n"
                                   "process 10: a:b.py;main (app.py:10);work (app.py:3) 100\n");
                else
                    CHECK_STR(o.s, "work (app.py:3) 40\n"
                                   "main (app.py:10) 3\n"
                                   "main (app.py:10);work (app.py:3) 100\n");
            } else {
                /* trie: 2 process nodes + work under each + main and work under process 10 */
                CHECK_EQ_U(st.nodes, 6);
                pprof_summary s;
                pprof_read((const uint8_t *)o.s, o.n, &s);
                CHECK(s.ok);
                /* work@10, work@20, main@10, main;work@10: each labelled with its pid */
                CHECK_EQ_U(s.samples, 4);
                CHECK_EQ_U(s.labels, 4);
                CHECK_EQ_U(s.label_num_sum, 10 + 20 + 10 + 10);
                CHECK_STR(s.str[s.label_key], "pid");
                CHECK_EQ_U(s.sum_wall, 10 + 30 + 3 + 100);
                CHECK_EQ_U(s.locations, frames ? 4 : 2);  /* the processes' own, with frames */
                CHECK_EQ_U(s.max_locs, frames ? 3 : 2);
            }
            out_free(&o);
        }
    }
    xe_free(&a);
    xe_free(&b);
    xe_free(&c);
}

void suite_export(void)
{
    RT_RUN(test_export_processes);
    RT_RUN(test_export_chrome_exact);
    RT_RUN(test_export_speedscope_exact);
    RT_RUN(test_export_folded_exact);
    RT_RUN(test_export_json_exact);
    RT_RUN(test_export_pprof_decodes);
    RT_RUN(test_export_generator_slices);
    RT_RUN(test_export_json_escaping);
    RT_RUN(test_export_unknown_fid);
    RT_RUN(test_export_deep_recursion);
    RT_RUN(test_export_allocation_failures);
    RT_RUN(test_export_output_failure);
    RT_RUN(test_export_misuse_and_bad_data);
    RT_RUN(test_export_threads_and_merge);
}
