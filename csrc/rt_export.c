/* rt_export.c -- exporters of the call stream (see rt_export.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "rt_export.h"
#include "rt_map.h"
#include "rt_walk.h"

#define RT__WBUF 65536u          /* writer buffer: the largest block given to out() */
#define RT__ROOT UINT32_MAX      /* parent of a root node */
#define RT__MAX_NODES (UINT32_MAX - 2u)
#define RT__FID_SLACK 65536u     /* undescribed fids allowed past the highest described one */

enum { RT__NEW = 0, RT__READY = 1, RT__THREAD = 2, RT__DONE = 3 };

/* One function slot, indexed by fid. Every string is owned. */
typedef struct rt__fn {
    char *name;          /* display name (UTF-8, as given) */
    char *sys;           /* system name, NULL: name */
    char *file;          /* NULL if none */
    char *label;         /* folded frame text, sanitised */
    char *jname;         /* name as a JSON string literal, quotes included */
    char *xpre;          /* CHROME: {"ph":"X","cat":"...","name":"...", */
    size_t label_len, jname_len, xpre_len;
    int64_t line;
    int kind;
    int defined;         /* described by rt_export_add_function */
    int ready;           /* derived strings (label, jname, xpre) built */
    int used;            /* appears in a span */
    uint32_t frame;      /* SPEEDSCOPE: its frame index + 1; 0 before its first span */
} rt__fn;

/* What the exporter keeps for an open span at one depth. */
typedef struct rt__depth {
    int64_t child;       /* time of the children closed so far (ns) */
    uint32_t node;       /* its call-tree node (aggregated formats) */
} rt__depth;

/* A call-tree node: one distinct stack. */
typedef struct rt__node {
    uint32_t parent;     /* node index, RT__ROOT for a root */
    uint32_t fid;
    uint64_t calls;      /* spans here that began a call */
    int64_t total_ns;    /* time of the spans here, children included */
    int64_t self_ns;     /* time of the spans here, children excluded */
} rt__node;

struct rt_export {
    rt_export_opts o;
    char *name, *exporter;             /* owned copies of o.name / o.exporter */
    const rt_allocator *a;             /* borrowed */
    int state;
    int err;                           /* first error (RT_OK while none) */
    char errstr[200];

    /* buffered writer */
    rt_export_out_fn out;
    void *out_ctx;
    uint8_t *buf;                      /* RT__WBUF bytes, owned */
    size_t blen;
    z_stream *zs;                      /* PPROF: owned, deflate state */
    uint8_t *zbuf;                     /* PPROF: RT__WBUF bytes of compressed output, owned */

    /* functions */
    rt__fn *fns;                       /* owned, nfns slots */
    size_t nfns;
    uint32_t max_defined;              /* highest described fid + 1 */

    /* current thread */
    rt_walker w;
    int walker_live;
    int64_t tid;
    uint32_t thread_idx;
    char *tpre;                        /* CHROME: "pid":P,"tid":T,"ts": (owned) */
    size_t tpre_len;
    int64_t t_first, t_last;
    int have_t;
    uint64_t thread_calls;
    int nthreads;                      /* threads begun */
    int first_item;                    /* no separator needed before the next array item */

    /* per open span depth: its trie node and the time of its children closed so far */
    rt__depth *depth;
    size_t dcap;

    /* call-tree trie */
    rt__node *nodes;
    size_t nnodes, ncap;
    rt_map index;                      /* (parent+1)<<32 | fid -> node index */

    /* SPEEDSCOPE frames */
    uint32_t *frames;                  /* frame index -> fid */
    size_t nframes, frames_cap;

    /* scratch */
    uint32_t *path;                    /* fids of a stack, leaf first */
    size_t path_cap;
    uint8_t *pb;                       /* protobuf message being built */
    size_t pblen, pbcap;

    rt_export_stats st;
};

/* ------------------------------------------------------------------ errors */

static int rt__fail(rt_export *e, int rc, const char *fmt, ...)
{
    if (e->err == RT_OK) {
        va_list ap;
        e->err = rc;
        va_start(ap, fmt);
        vsnprintf(e->errstr, sizeof e->errstr, fmt, ap);
        va_end(ap);
    }
    return e->err;
}

static int rt__nomem(rt_export *e) { return rt__fail(e, RT_ERR_NOMEM, "out of memory"); }

/* --------------------------------------------------------------- writer */

static void rt__emit(rt_export *e, const uint8_t *p, size_t n, int finish)
{
    if (e->err)
        return;
    if (!e->zs) {
        if (n == 0)
            return;
        if (e->out(e->out_ctx, p, n) != 0) {
            rt__fail(e, RT_ERR_IO, "the output could not be written");
            return;
        }
        e->st.bytes += n;
        return;
    }
    z_stream *zs = e->zs;
    zs->next_in = (Bytef *)(uintptr_t)p;
    zs->avail_in = (uInt)n;
    for (;;) {
        zs->next_out = e->zbuf;
        zs->avail_out = RT__WBUF;
        int rc = deflate(zs, finish ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_ERROR) {
            rt__fail(e, RT_ERR_STATE, "gzip stream error");
            return;
        }
        size_t have = RT__WBUF - zs->avail_out;
        if (have) {
            if (e->out(e->out_ctx, e->zbuf, have) != 0) {
                rt__fail(e, RT_ERR_IO, "the output could not be written");
                return;
            }
            e->st.bytes += have;
        }
        if (finish ? rc == Z_STREAM_END : (zs->avail_out != 0 && zs->avail_in == 0))
            return;
    }
}

static void rt__flush(rt_export *e)
{
    rt__emit(e, e->buf, e->blen, 0);
    e->blen = 0;
}

/* Room for n bytes (n <= RT__WBUF) at the end of the buffer, or NULL after an error. */
static uint8_t *rt__reserve(rt_export *e, size_t n)
{
    if (e->err)
        return NULL;
    if (RT__WBUF - e->blen < n) {
        rt__flush(e);
        if (e->err)
            return NULL;
    }
    return e->buf + e->blen;
}

static void rt__commit(rt_export *e, const uint8_t *end) { e->blen = (size_t)(end - e->buf); }

static void rt__bytes(rt_export *e, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n && !e->err) {
        size_t room = RT__WBUF - e->blen;
        if (room == 0) {
            rt__flush(e);
            continue;
        }
        size_t k = n < room ? n : room;
        memcpy(e->buf + e->blen, p, k);
        e->blen += k;
        p += k;
        n -= k;
    }
}

static void rt__str(rt_export *e, const char *s) { rt__bytes(e, s, strlen(s)); }

static uint8_t *rt__put_u64(uint8_t *p, uint64_t v)
{
    uint8_t tmp[20];
    int n = 0;
    do {
        tmp[n++] = (uint8_t)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static uint8_t *rt__put_i64(uint8_t *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return rt__put_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return rt__put_u64(p, (uint64_t)v);
}

/* Nanoseconds as microseconds with up to three decimals ("12.345", "7", "0.05"). */
static uint8_t *rt__put_usec(uint8_t *p, int64_t ns)
{
    uint64_t u;
    if (ns < 0) {
        *p++ = '-';
        u = (uint64_t)0 - (uint64_t)ns;
    } else {
        u = (uint64_t)ns;
    }
    p = rt__put_u64(p, u / 1000);
    unsigned r = (unsigned)(u % 1000);
    if (r) {
        *p++ = '.';
        *p++ = (uint8_t)('0' + r / 100);
        r %= 100;
        if (r) {
            *p++ = (uint8_t)('0' + r / 10);
            r %= 10;
            if (r)
                *p++ = (uint8_t)('0' + r);
        }
    }
    return p;
}

static void rt__i64(rt_export *e, int64_t v)
{
    uint8_t *p = rt__reserve(e, 24);
    if (p)
        rt__commit(e, rt__put_i64(p, v));
}

/* ------------------------------------------------------------ JSON text */

/* Length of the valid UTF-8 sequence at p (2..4), or 0 if invalid. */
static size_t rt__utf8_len(const uint8_t *p)
{
    uint8_t c = p[0];
#define RT__CONT(x) ((x) >= 0x80 && (x) <= 0xBF)
    if (c >= 0xC2 && c <= 0xDF)
        return RT__CONT(p[1]) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        uint8_t lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        return (p[1] >= lo && p[1] <= hi && RT__CONT(p[2])) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        uint8_t lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        return (p[1] >= lo && p[1] <= hi && RT__CONT(p[2]) && RT__CONT(p[3])) ? 4 : 0;
    }
    return 0;
#undef RT__CONT
}

/* The character at p (of a NUL-terminated string) as JSON string content:
 * writes up to 6 bytes to out, returns their count; *adv = bytes consumed. */
static size_t rt__json_char(const uint8_t *p, uint8_t *out, size_t *adv)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t c = *p;
    *adv = 1;
    if (c >= 0x80) {
        size_t n = rt__utf8_len(p);
        if (n == 0) {
            memcpy(out, "\\ufffd", 6);
            return 6;
        }
        memcpy(out, p, n);
        *adv = n;
        return n;
    }
    switch (c) {
    case '"': out[0] = '\\'; out[1] = '"'; return 2;
    case '\\': out[0] = '\\'; out[1] = '\\'; return 2;
    case '\n': out[0] = '\\'; out[1] = 'n'; return 2;
    case '\r': out[0] = '\\'; out[1] = 'r'; return 2;
    case '\t': out[0] = '\\'; out[1] = 't'; return 2;
    case '\b': out[0] = '\\'; out[1] = 'b'; return 2;
    case '\f': out[0] = '\\'; out[1] = 'f'; return 2;
    default:
        break;
    }
    if (c < 0x20) {
        memcpy(out, "\\u00", 4);
        out[4] = (uint8_t)hex[c >> 4];
        out[5] = (uint8_t)hex[c & 15];
        return 6;
    }
    out[0] = c;
    return 1;
}

/* Write s as a JSON string literal (quotes included); NULL writes null. */
static void rt__jstr(rt_export *e, const char *s)
{
    if (!s) {
        rt__str(e, "null");
        return;
    }
    const uint8_t *p = (const uint8_t *)s;
    uint8_t *o = rt__reserve(e, 1);
    if (!o)
        return;
    *o++ = '"';
    rt__commit(e, o);
    while (*p) {
        o = rt__reserve(e, 8);
        if (!o)
            return;
        size_t adv;
        o += rt__json_char(p, o, &adv);
        rt__commit(e, o);
        p += adv;
    }
    o = rt__reserve(e, 1);
    if (o) {
        *o++ = '"';
        rt__commit(e, o);
    }
}

/* A newly allocated JSON string literal of s (quotes included). */
static char *rt__jstr_dup(const rt_allocator *a, const char *s, size_t *lenp)
{
    size_t n = 2, adv;
    uint8_t tmp[8];
    for (const uint8_t *p = (const uint8_t *)s; *p; p += adv)
        n += rt__json_char(p, tmp, &adv);
    char *out = rt_malloc(a, n + 1);
    if (!out)
        return NULL;
    uint8_t *o = (uint8_t *)out;
    *o++ = '"';
    for (const uint8_t *p = (const uint8_t *)s; *p; p += adv)
        o += rt__json_char(p, o, &adv);
    *o++ = '"';
    *o = 0;
    *lenp = n;
    return out;
}

static char *rt__strdup(const rt_allocator *a, const char *s)
{
    size_t n = strlen(s);
    char *d = rt_malloc(a, n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* ------------------------------------------------------------ functions */

static void rt__fn_clear(const rt_allocator *a, rt__fn *f)
{
    rt_free(a, f->name);
    rt_free(a, f->sys);
    rt_free(a, f->file);
    rt_free(a, f->label);
    rt_free(a, f->jname);
    rt_free(a, f->xpre);
    int used = f->used;
    uint32_t frame = f->frame;
    memset(f, 0, sizeof *f);
    f->used = used;
    f->frame = frame;
}

/* Make sure slot `fid` exists. */
static int rt__fn_slot(rt_export *e, uint32_t fid)
{
    if (fid < e->nfns)
        return RT_OK;
    size_t old = e->nfns;
    if (rt_grow(e->a, (void **)&e->fns, &e->nfns, (size_t)fid + 1, sizeof *e->fns, 64) != RT_OK)
        return rt__nomem(e);
    memset(e->fns + old, 0, (e->nfns - old) * sizeof *e->fns);
    return RT_OK;
}

/* Build the derived strings of slot fid (a placeholder name if undescribed). */
static int rt__fn_ready(rt_export *e, uint32_t fid)
{
    if (fid >= e->nfns || !e->fns[fid].ready) {
        if (fid >= e->max_defined && fid - e->max_defined >= RT__FID_SLACK)
            return rt__fail(e, RT_ERR_DATA, "function id %lu in the call stream is out of range",
                            (unsigned long)fid);
        if (rt__fn_slot(e, fid) != RT_OK)
            return e->err;
    }
    rt__fn *f = &e->fns[fid];
    if (f->ready)
        return RT_OK;
    if (!f->name) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "<fid %lu>", (unsigned long)fid);
        if (!(f->name = rt__strdup(e->a, tmp)))
            return rt__nomem(e);
    }
    const char *lab = f->label ? f->label : f->name;
    size_t n = strlen(lab);
    char *label = rt_malloc(e->a, n + 1);
    if (!label)
        return rt__nomem(e);
    for (size_t i = 0; i <= n; i++) {
        char c = lab[i];
        label[i] = c == ';' ? ':' : (c == '\n' || c == '\r') ? ' ' : c;
    }
    rt_free(e->a, f->label);
    f->label = label;
    f->label_len = n;
    if (!(f->jname = rt__jstr_dup(e->a, f->name, &f->jname_len)))
        return rt__nomem(e);
    if (e->o.format == RT_EXPORT_CHROME) {
        const char *cat = f->kind == RT_FUNC_C ? "{\"ph\":\"X\",\"cat\":\"builtin\",\"name\":"
                                               : "{\"ph\":\"X\",\"cat\":\"python\",\"name\":";
        size_t cl = strlen(cat);
        f->xpre_len = cl + f->jname_len + 1;
        if (!(f->xpre = rt_malloc(e->a, f->xpre_len + 1)))
            return rt__nomem(e);
        memcpy(f->xpre, cat, cl);
        memcpy(f->xpre + cl, f->jname, f->jname_len);
        f->xpre[f->xpre_len - 1] = ',';
        f->xpre[f->xpre_len] = 0;
    }
    f->ready = 1;
    return RT_OK;
}

int rt_export_add_function(rt_export *e, uint32_t fid, const rt_export_func *fn)
{
    if (e->err)
        return e->err;
    if (e->state == RT__DONE)
        return rt__fail(e, RT_ERR_STATE, "function added after the export finished");
    if (rt__fn_slot(e, fid) != RT_OK)
        return e->err;
    rt__fn *f = &e->fns[fid];
    rt__fn_clear(e->a, f);
    if ((fn->name && !(f->name = rt__strdup(e->a, fn->name))) ||
        (fn->system_name && !(f->sys = rt__strdup(e->a, fn->system_name))) ||
        (fn->file && !(f->file = rt__strdup(e->a, fn->file))) ||
        (fn->label && !(f->label = rt__strdup(e->a, fn->label)))) {
        rt__fn_clear(e->a, f);
        return rt__nomem(e);
    }
    f->line = fn->line;
    f->kind = fn->kind;
    f->defined = 1;
    if (fid + 1u > e->max_defined)
        e->max_defined = fid + 1u;
    if (rt__fn_ready(e, fid) != RT_OK) {
        rt__fn_clear(e->a, f);
        return e->err;
    }
    return RT_OK;
}

/* ---------------------------------------------------------------- trie */

static int rt__trie_child(rt_export *e, uint32_t parent, uint32_t fid, uint32_t *out)
{
    uint64_t key = ((uint64_t)(uint32_t)(parent + 1u) << 32) | fid;
    uint64_t *v = rt_map_get(&e->index, key);
    if (v) {
        *out = (uint32_t)*v;
        return RT_OK;
    }
    if (e->nnodes >= RT__MAX_NODES)
        return rt__fail(e, RT_ERR_NOMEM, "too many distinct stacks");
    if (rt_grow(e->a, (void **)&e->nodes, &e->ncap, e->nnodes + 1, sizeof *e->nodes, 256) != RT_OK)
        return rt__nomem(e);
    if (rt_map_put(&e->index, key, e->nnodes) != RT_OK)
        return rt__nomem(e);
    rt__node *n = &e->nodes[e->nnodes];
    n->parent = parent;
    n->fid = fid;
    n->calls = 0;
    n->total_ns = n->self_ns = 0;
    *out = (uint32_t)e->nnodes++;
    if (e->nnodes > e->st.nodes)
        e->st.nodes = e->nnodes;
    return RT_OK;
}

static void rt__trie_reset(rt_export *e)
{
    e->nnodes = 0;
    rt_map_free(&e->index);
    rt_map_init(&e->index, e->a);
}

/* Fill e->path with the fids from node i up to its root (leaf first); returns the depth. */
static size_t rt__node_path(rt_export *e, uint32_t i)
{
    size_t n = 0;
    for (uint32_t k = i; k != RT__ROOT; k = e->nodes[k].parent) {
        if (rt_grow(e->a, (void **)&e->path, &e->path_cap, n + 1, sizeof *e->path, 256) != RT_OK) {
            rt__nomem(e);
            return 0;
        }
        e->path[n++] = e->nodes[k].fid;
    }
    return n;
}

/* --------------------------------------------------------------- spans */

static void rt__sep(rt_export *e)
{
    if (e->first_item)
        e->first_item = 0;
    else
        rt__bytes(e, ",\n", 2);
}

static int rt__open(void *ud, const rt_span *s, size_t depth)
{
    rt_export *e = ud;
    if (e->err)
        return e->err;
    if (rt__fn_ready(e, s->fid) != RT_OK)
        return e->err;
    e->fns[s->fid].used = 1;
    e->st.spans++;
    if (s->kind == RT_SPAN_CALL) {
        e->st.calls++;
        e->thread_calls++;
    }
    if (depth + 1 > e->st.max_depth)
        e->st.max_depth = depth + 1;
    if (!e->have_t) {
        e->t_first = s->t0;
        e->have_t = 1;
    }
    e->t_last = s->t0;
    if (rt_grow(e->a, (void **)&e->depth, &e->dcap, depth + 1, sizeof *e->depth, 256) != RT_OK)
        return rt__nomem(e);
    e->depth[depth].child = 0;
    switch (e->o.format) {
    case RT_EXPORT_SPEEDSCOPE: {
        rt__fn *fn = &e->fns[s->fid];
        if (fn->frame == 0) {
            if (rt_grow(e->a, (void **)&e->frames, &e->frames_cap, e->nframes + 1, sizeof *e->frames, 256) != RT_OK)
                return rt__nomem(e);
            e->frames[e->nframes++] = s->fid;
            fn->frame = (uint32_t)e->nframes;
        }
        uint32_t fr = fn->frame - 1;
        rt__sep(e);
        uint8_t *p = rt__reserve(e, 80);
        if (!p)
            return e->err;
        memcpy(p, "{\"type\":\"O\",\"frame\":", 20);
        p = rt__put_u64(p + 20, fr);
        memcpy(p, ",\"at\":", 6);
        p = rt__put_i64(p + 6, s->t0);
        *p++ = '}';
        rt__commit(e, p);
        break;
    }
    case RT_EXPORT_FOLDED:
    case RT_EXPORT_PPROF:
    case RT_EXPORT_JSON: {
        uint32_t node = 0;
        if (rt__trie_child(e, depth ? e->depth[depth - 1].node : RT__ROOT, s->fid, &node) != RT_OK)
            return e->err;
        e->depth[depth].node = node;
        if (s->kind == RT_SPAN_CALL)
            e->nodes[node].calls++;
        break;
    }
    default:
        break;
    }
    return e->err;
}

static int rt__close(void *ud, const rt_span *s, size_t depth, int64_t t, int how)
{
    rt_export *e = ud;
    if (e->err)
        return e->err;
    int64_t dur = t - s->t0;
    if (dur < 0)
        dur = 0;
    int64_t self = dur - e->depth[depth].child;
    if (self < 0)
        self = 0;
    if (depth > 0)
        e->depth[depth - 1].child += dur;
    if (t > e->t_last)
        e->t_last = t;
    switch (e->o.format) {
    case RT_EXPORT_CHROME: {
        const rt__fn *f = &e->fns[s->fid];
        rt__sep(e);
        rt__bytes(e, f->xpre, f->xpre_len);
        rt__bytes(e, e->tpre, e->tpre_len);
        uint8_t *p = rt__reserve(e, 128);
        if (!p)
            return e->err;
        p = rt__put_usec(p, s->t0);
        memcpy(p, ",\"dur\":", 7);
        p = rt__put_usec(p + 7, dur);
        if (s->kind != RT_SPAN_CALL || how != RT_END_RETURN) {
            static const char *starts[] = {"", "resume", "continued"};
            static const char *ends[] = {"", "raise", "yield", "still running"};
            const char *sep = "";
            memcpy(p, ",\"args\":{", 9);
            p += 9;
            if (s->kind != RT_SPAN_CALL) {
                size_t k = strlen(starts[s->kind]);
                memcpy(p, "\"start\":\"", 9);
                memcpy(p + 9, starts[s->kind], k);
                p += 9 + k;
                *p++ = '"';
                sep = ",";
            }
            if (how != RT_END_RETURN) {
                size_t k = strlen(ends[how]);
                if (*sep)
                    *p++ = ',';
                memcpy(p, "\"end\":\"", 7);
                memcpy(p + 7, ends[how], k);
                p += 7 + k;
                *p++ = '"';
            }
            *p++ = '}';
        }
        *p++ = '}';
        rt__commit(e, p);
        break;
    }
    case RT_EXPORT_SPEEDSCOPE: {
        rt__sep(e);
        uint8_t *p = rt__reserve(e, 80);
        if (!p)
            return e->err;
        memcpy(p, "{\"type\":\"C\",\"frame\":", 20);
        p = rt__put_u64(p + 20, e->fns[s->fid].frame - 1);
        memcpy(p, ",\"at\":", 6);
        p = rt__put_i64(p + 6, t);
        *p++ = '}';
        rt__commit(e, p);
        break;
    }
    case RT_EXPORT_FOLDED:
    case RT_EXPORT_PPROF:
    case RT_EXPORT_JSON: {
        rt__node *n = &e->nodes[e->depth[depth].node];
        n->total_ns += dur;
        n->self_ns += self;
        break;
    }
    default:
        break;
    }
    return e->err;
}

/* ---------------------------------------------------------- life cycle */

int rt_export_format_by_name(const char *name)
{
    static const struct { const char *n; int f; } names[] = {
        {"chrome", RT_EXPORT_CHROME}, {"speedscope", RT_EXPORT_SPEEDSCOPE}, {"folded", RT_EXPORT_FOLDED},
        {"pprof", RT_EXPORT_PPROF},   {"json", RT_EXPORT_JSON},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].n) == 0)
            return names[i].f;
    return 0;
}

static voidpf rt__zalloc(voidpf opaque, uInt items, uInt size)
{
    const rt_allocator *a = opaque;
    if (size && items > SIZE_MAX / size)
        return Z_NULL;
    return rt_malloc(a, (size_t)items * size);
}

static void rt__zfree(voidpf opaque, voidpf p) { rt_free((const rt_allocator *)opaque, p); }

int rt_export_new(rt_export **ep, const rt_export_opts *opts, rt_export_out_fn out, void *out_ctx,
                  const rt_allocator *alloc)
{
    *ep = NULL;
    if (opts->format < RT_EXPORT_CHROME || opts->format > RT_EXPORT_JSON || !out)
        return RT_ERR_STATE;
    rt_export *e = rt_malloc(alloc, sizeof *e);
    if (!e)
        return RT_ERR_NOMEM;
    memset(e, 0, sizeof *e);
    e->o = *opts;
    e->a = alloc;
    e->out = out;
    e->out_ctx = out_ctx;
    e->first_item = 1;
    rt_map_init(&e->index, alloc);
    e->o.name = e->o.exporter = NULL;
    if ((opts->name && !(e->name = rt__strdup(alloc, opts->name))) ||
        (opts->exporter && !(e->exporter = rt__strdup(alloc, opts->exporter))) ||
        !(e->buf = rt_malloc(alloc, RT__WBUF)))
        goto nomem;
    if (opts->format == RT_EXPORT_PPROF) {
        if (!(e->zbuf = rt_malloc(alloc, RT__WBUF)) || !(e->zs = rt_malloc(alloc, sizeof *e->zs)))
            goto nomem;
        memset(e->zs, 0, sizeof *e->zs);
        e->zs->zalloc = rt__zalloc;
        e->zs->zfree = rt__zfree;
        e->zs->opaque = (voidpf)(uintptr_t)alloc;
        int level = opts->gzip_level >= 1 && opts->gzip_level <= 9 ? opts->gzip_level : 6;
        /* windowBits 15 + 16: a gzip header and trailer */
        if (deflateInit2(e->zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            rt_free(alloc, e->zs);
            e->zs = NULL;
            goto nomem;
        }
    }
    *ep = e;
    return RT_OK;
nomem:
    rt_export_free(e);
    return RT_ERR_NOMEM;
}

void rt_export_free(rt_export *e)
{
    if (!e)
        return;
    const rt_allocator *a = e->a;
    if (e->walker_live)
        rt_walker_free(&e->w);
    if (e->zs) {
        deflateEnd(e->zs);
        rt_free(a, e->zs);
    }
    for (size_t i = 0; i < e->nfns; i++)
        rt__fn_clear(a, &e->fns[i]);
    rt_free(a, e->fns);
    rt_free(a, e->frames);
    rt_free(a, e->nodes);
    rt_map_free(&e->index);
    rt_free(a, e->depth);
    rt_free(a, e->path);
    rt_free(a, e->pb);
    rt_free(a, e->tpre);
    rt_free(a, e->zbuf);
    rt_free(a, e->buf);
    rt_free(a, e->name);
    rt_free(a, e->exporter);
    rt_free(a, e);
}

const char *rt_export_errstr(const rt_export *e) { return e->errstr; }

void rt_export_get_stats(const rt_export *e, rt_export_stats *st)
{
    *st = e->st;
    if (e->walker_live) {
        st->events += e->w.events;
        st->anomalies += e->w.anomalies;
    }
}

static void rt__header(rt_export *e)
{
    switch (e->o.format) {
    case RT_EXPORT_CHROME:
        rt__str(e, "{\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":");
        rt__i64(e, e->o.pid);
        rt__str(e, ",\"tid\":0,\"args\":{\"name\":");
        rt__jstr(e, e->name ? e->name : "python");
        rt__str(e, "}}");
        e->first_item = 0;
        break;
    case RT_EXPORT_SPEEDSCOPE:
        rt__str(e, "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\"profiles\":[\n");
        break;
    case RT_EXPORT_JSON:
        rt__str(e, "{\"format\":\"retracer-profile\",\"version\":1,\"unit\":\"ns\",\"name\":");
        rt__jstr(e, e->name);
        rt__str(e, ",\"exporter\":");
        rt__jstr(e, e->exporter);
        rt__str(e, ",\"duration_ns\":");
        rt__i64(e, e->o.duration_ns);
        rt__str(e, ",\"merged_threads\":");
        rt__str(e, e->o.merge_threads ? "true" : "false");
        rt__str(e, ",\n\"threads\":[\n");
        break;
    default:
        break;
    }
    e->state = RT__READY;
}

int rt_export_thread_begin(rt_export *e, uint32_t thread_idx, int64_t tid, const char *name)
{
    if (e->err)
        return e->err;
    if (e->state == RT__THREAD || e->state == RT__DONE)
        return rt__fail(e, RT_ERR_STATE, "thread begun while another is open or after the end");
    if (e->state == RT__NEW)
        rt__header(e);
    e->thread_idx = thread_idx;
    e->tid = tid;
    e->have_t = 0;
    e->t_first = e->t_last = 0;
    e->thread_calls = 0;
    switch (e->o.format) {
    case RT_EXPORT_CHROME: {
        char tmp[80];
        int n = snprintf(tmp, sizeof tmp, "\"pid\":%lld,\"tid\":%lld,\"ts\":", (long long)e->o.pid,
                         (long long)tid);
        rt_free(e->a, e->tpre);
        if (!(e->tpre = rt__strdup(e->a, tmp)))
            return rt__nomem(e);
        e->tpre_len = (size_t)n;
        rt__sep(e);
        rt__str(e, "{\"ph\":\"M\",\"name\":\"thread_name\",");
        rt__str(e, e->tpre);
        rt__str(e, "0,\"args\":{\"name\":");
        rt__jstr(e, name ? name : "thread");
        rt__str(e, "}},\n{\"ph\":\"M\",\"name\":\"thread_sort_index\",");
        rt__str(e, e->tpre);
        rt__str(e, "0,\"args\":{\"sort_index\":");
        rt__i64(e, thread_idx);
        rt__str(e, "}}");
        break;
    }
    case RT_EXPORT_SPEEDSCOPE:
        if (e->nthreads)
            rt__str(e, ",\n");
        rt__str(e, "{\"type\":\"evented\",\"name\":");
        {
            /* "<name> (thread <tid>)" */
            const char *nm = name ? name : "thread";
            size_t k = strlen(nm);
            char *full = rt_malloc(e->a, k + 48);
            if (!full)
                return rt__nomem(e);
            memcpy(full, nm, k);
            snprintf(full + k, 48, " (thread %lld)", (long long)tid);
            rt__jstr(e, full);
            rt_free(e->a, full);
        }
        rt__str(e, ",\"unit\":\"nanoseconds\",\"events\":[\n");
        e->first_item = 1;
        break;
    case RT_EXPORT_JSON:
        if (!e->o.merge_threads) {
            if (e->nthreads)
                rt__str(e, ",\n");
            rt__str(e, "{\"thread\":");
            rt__i64(e, thread_idx);
            rt__str(e, ",\"tid\":");
            rt__i64(e, tid);
            rt__str(e, ",\"name\":");
            rt__jstr(e, name);
        }
        break;
    default:
        break;
    }
    if (e->err)
        return e->err;
    rt_walk_visitor v = {e, rt__open, rt__close};
    rt_walker_init(&e->w, &v, e->a);
    e->walker_live = 1;
    e->nthreads++;
    e->state = RT__THREAD;
    return RT_OK;
}

int rt_export_feed(rt_export *e, const uint8_t *data, size_t len)
{
    if (e->err)
        return e->err;
    if (e->state != RT__THREAD)
        return rt__fail(e, RT_ERR_STATE, "chunk fed outside a thread");
    int rc = rt_walker_feed(&e->w, data, len);
    if (rc != RT_OK) {
        if (rc == RT_ERR_DATA)
            return rt__fail(e, RT_ERR_DATA, "malformed call-stream chunk in thread %lu",
                            (unsigned long)e->thread_idx);
        if (rc == RT_ERR_NOMEM)
            return rt__nomem(e);
        return rt__fail(e, rc, "export failed (%d)", rc);
    }
    return RT_OK;
}

/* JSON: the nodes of the trie as [parent, fid, calls, total_ns, self_ns] rows. */
static void rt__json_nodes(rt_export *e)
{
    rt__str(e, "\"nodes\":[");
    for (size_t i = 0; i < e->nnodes && !e->err; i++) {
        const rt__node *n = &e->nodes[i];
        uint8_t *p = rt__reserve(e, 100);
        if (!p)
            return;
        if (i)
            *p++ = ',';
        *p++ = '\n';
        *p++ = '[';
        p = rt__put_i64(p, n->parent == RT__ROOT ? -1 : (int64_t)n->parent);
        *p++ = ',';
        p = rt__put_u64(p, n->fid);
        *p++ = ',';
        p = rt__put_u64(p, n->calls);
        *p++ = ',';
        p = rt__put_i64(p, n->total_ns);
        *p++ = ',';
        p = rt__put_i64(p, n->self_ns);
        *p++ = ']';
        rt__commit(e, p);
    }
    rt__str(e, "]");
}

int rt_export_thread_end(rt_export *e)
{
    if (e->err)
        return e->err;
    if (e->state != RT__THREAD)
        return rt__fail(e, RT_ERR_STATE, "thread ended while none is open");
    int rc = rt_walker_finish(&e->w);
    if (rc != RT_OK && !e->err)
        rt__fail(e, rc, rc == RT_ERR_NOMEM ? "out of memory" : "export failed (%d)", rc);
    e->st.events += e->w.events;
    e->st.anomalies += e->w.anomalies;
    rt_walker_free(&e->w);
    e->walker_live = 0;
    if (e->err)
        return e->err;
    switch (e->o.format) {
    case RT_EXPORT_SPEEDSCOPE:
        rt__str(e, "\n],\"startValue\":");
        rt__i64(e, e->t_first);
        rt__str(e, ",\"endValue\":");
        rt__i64(e, e->t_last);
        rt__str(e, "}");
        break;
    case RT_EXPORT_JSON:
        if (!e->o.merge_threads) {
            int64_t total = 0;
            for (size_t i = 0; i < e->nnodes; i++)
                if (e->nodes[i].parent == RT__ROOT)
                    total += e->nodes[i].total_ns;
            rt__str(e, ",\"start_ns\":");
            rt__i64(e, e->t_first);
            rt__str(e, ",\"end_ns\":");
            rt__i64(e, e->t_last);
            rt__str(e, ",\"calls\":");
            rt__i64(e, (int64_t)e->thread_calls);
            rt__str(e, ",\"total_ns\":");
            rt__i64(e, total);
            rt__str(e, ",\n");
            rt__json_nodes(e);
            rt__str(e, "}");
            rt__trie_reset(e);
        }
        break;
    default:
        break;
    }
    e->state = RT__READY;
    return e->err;
}

/* ------------------------------------------------------------- folded */

static void rt__folded(rt_export *e)
{
    for (size_t i = 0; i < e->nnodes && !e->err; i++) {
        if (e->nodes[i].self_ns <= 0)
            continue;
        size_t d = rt__node_path(e, (uint32_t)i);
        while (d-- > 0 && !e->err) {
            const rt__fn *f = &e->fns[e->path[d]];
            rt__bytes(e, f->label, f->label_len);
            if (d)
                rt__bytes(e, ";", 1);
        }
        uint8_t *p = rt__reserve(e, 24);
        if (!p)
            return;
        *p++ = ' ';
        p = rt__put_i64(p, e->nodes[i].self_ns);
        *p++ = '\n';
        rt__commit(e, p);
    }
}

/* ------------------------------------------------------------- pprof */

static int rt__pb_room(rt_export *e, size_t n)
{
    if (n > SIZE_MAX - e->pblen ||
        rt_grow(e->a, (void **)&e->pb, &e->pbcap, e->pblen + n, 1, 256) != RT_OK)
        return rt__nomem(e);
    return RT_OK;
}

static void rt__pb_varint(rt_export *e, uint64_t v)
{
    if (rt__pb_room(e, 10) == RT_OK)
        e->pblen = (size_t)(rt_varint_put(e->pb + e->pblen, v) - e->pb);
}

static void rt__pb_field(rt_export *e, unsigned field, uint64_t v)
{
    rt__pb_varint(e, ((uint64_t)field << 3) | 0);
    rt__pb_varint(e, v);
}

static void rt__pb_bytes(rt_export *e, unsigned field, const void *data, size_t n)
{
    rt__pb_varint(e, ((uint64_t)field << 3) | 2);
    rt__pb_varint(e, n);
    if (rt__pb_room(e, n) == RT_OK) {
        memcpy(e->pb + e->pblen, data, n);
        e->pblen += n;
    }
}

/* Write the message built in e->pb as top-level field `field` of the Profile. */
static void rt__pb_emit(rt_export *e, unsigned field)
{
    uint8_t hdr[20], *p = hdr;
    if (e->err)
        return;
    p = rt_varint_put(p, ((uint64_t)field << 3) | 2);
    p = rt_varint_put(p, e->pblen);
    rt__bytes(e, hdr, (size_t)(p - hdr));
    rt__bytes(e, e->pb, e->pblen);
    e->pblen = 0;
}

static void rt__pb_top_varint(rt_export *e, unsigned field, uint64_t v)
{
    uint8_t tmp[20], *p = tmp;
    p = rt_varint_put(p, ((uint64_t)field << 3) | 0);
    p = rt_varint_put(p, v);
    rt__bytes(e, tmp, (size_t)(p - tmp));
}

/* Append string `s` to the string table (field 6); returns its index. */
static uint64_t rt__pb_string(rt_export *e, const char *s, uint64_t *next)
{
    size_t n = strlen(s);
    uint8_t hdr[20], *p = hdr;
    p = rt_varint_put(p, (6u << 3) | 2);
    p = rt_varint_put(p, n);
    rt__bytes(e, hdr, (size_t)(p - hdr));
    rt__bytes(e, s, n);
    return (*next)++;
}

static void rt__pprof(rt_export *e)
{
    /* string table: 0 "", then the names of the sample types */
    uint64_t ns = 0;
    rt__pb_string(e, "", &ns);
    uint64_t s_calls = rt__pb_string(e, "calls", &ns), s_count = rt__pb_string(e, "count", &ns);
    uint64_t s_wall = rt__pb_string(e, "wall", &ns), s_nanos = rt__pb_string(e, "nanoseconds", &ns);
    uint64_t s_python = rt__pb_string(e, "python", &ns);
    /* sample_type (1): calls/count, wall/nanoseconds */
    rt__pb_field(e, 1, s_calls);
    rt__pb_field(e, 2, s_count);
    rt__pb_emit(e, 1);
    rt__pb_field(e, 1, s_wall);
    rt__pb_field(e, 2, s_nanos);
    rt__pb_emit(e, 1);
    /* one mapping (3) that says the locations are symbolized already */
    rt__pb_field(e, 1, 1);
    rt__pb_field(e, 5, s_python);
    rt__pb_field(e, 7, 1);
    rt__pb_field(e, 8, 1);
    rt__pb_field(e, 9, 1);
    rt__pb_emit(e, 3);
    /* a Function (5) and a Location (4) per function used; id = fid + 1 */
    for (size_t i = 0; i < e->nfns && !e->err; i++) {
        const rt__fn *f = &e->fns[i];
        if (!f->used)
            continue;
        uint64_t s_name = rt__pb_string(e, f->name, &ns);
        /* system_name only when it differs: pprof "demangles" a Function whose
         * system_name equals its name, which strips <...> from "<module>" */
        uint64_t s_sys = f->sys && strcmp(f->sys, f->name) != 0 ? rt__pb_string(e, f->sys, &ns) : 0;
        uint64_t s_file = f->file ? rt__pb_string(e, f->file, &ns) : 0;
        rt__pb_field(e, 1, i + 1);
        rt__pb_field(e, 2, s_name);
        rt__pb_field(e, 3, s_sys);
        rt__pb_field(e, 4, s_file);
        rt__pb_field(e, 5, (uint64_t)(f->line > 0 ? f->line : 0));
        rt__pb_emit(e, 5);
        /* Location: id, mapping_id, line { function_id, line } */
        rt__pb_field(e, 1, i + 1);
        rt__pb_field(e, 2, 1);
        {
            uint8_t line[24], *p = line;
            p = rt_varint_put(p, (1u << 3) | 0);
            p = rt_varint_put(p, i + 1);
            p = rt_varint_put(p, (2u << 3) | 0);
            p = rt_varint_put(p, (uint64_t)(f->line > 0 ? f->line : 0));
            rt__pb_bytes(e, 4, line, (size_t)(p - line));
        }
        rt__pb_emit(e, 4);
    }
    /* one Sample (2) per distinct stack: location ids leaf first, values [calls, wall ns] */
    for (size_t i = 0; i < e->nnodes && !e->err; i++) {
        const rt__node *n = &e->nodes[i];
        if (n->self_ns <= 0 && n->calls == 0)
            continue;
        size_t d = rt__node_path(e, (uint32_t)i);
        size_t plen = 0;
        for (size_t k = 0; k < d; k++)
            plen += rt_varint_len((uint64_t)e->path[k] + 1);
        rt__pb_varint(e, (1u << 3) | 2);
        rt__pb_varint(e, plen);
        if (rt__pb_room(e, plen) != RT_OK)
            return;
        for (size_t k = 0; k < d; k++)
            e->pblen = (size_t)(rt_varint_put(e->pb + e->pblen, (uint64_t)e->path[k] + 1) - e->pb);
        uint8_t vals[24], *p = vals;
        p = rt_varint_put(p, n->calls);
        p = rt_varint_put(p, (uint64_t)(n->self_ns > 0 ? n->self_ns : 0));
        rt__pb_bytes(e, 2, vals, (size_t)(p - vals));
        rt__pb_emit(e, 2);
    }
    if (e->o.time_unix_ns > 0)
        rt__pb_top_varint(e, 9, (uint64_t)e->o.time_unix_ns);
    if (e->o.duration_ns > 0)
        rt__pb_top_varint(e, 10, (uint64_t)e->o.duration_ns);
    rt__pb_field(e, 1, s_wall); /* period_type (11) */
    rt__pb_field(e, 2, s_nanos);
    rt__pb_emit(e, 11);
    rt__pb_top_varint(e, 12, 1);       /* period */
    rt__pb_top_varint(e, 14, s_wall);  /* default_sample_type */
}

/* ------------------------------------------------------------- finish */

static void rt__speedscope_frames(rt_export *e)
{
    rt__str(e, "\n],\"shared\":{\"frames\":[\n");
    for (size_t i = 0; i < e->nframes && !e->err; i++) {
        const rt__fn *f = &e->fns[e->frames[i]];
        if (i)
            rt__str(e, ",\n");
        rt__str(e, "{\"name\":");
        rt__bytes(e, f->jname, f->jname_len);
        if (f->file) {
            rt__str(e, ",\"file\":");
            rt__jstr(e, f->file);
        }
        if (f->line > 0) {
            rt__str(e, ",\"line\":");
            rt__i64(e, f->line);
        }
        rt__str(e, "}");
    }
    rt__str(e, "\n]},\"name\":");
    rt__jstr(e, e->name ? e->name : "retracer");
    rt__str(e, ",\"activeProfileIndex\":0,\"exporter\":");
    rt__jstr(e, e->exporter ? e->exporter : "retracer");
    rt__str(e, "}\n");
}

static void rt__json_functions(rt_export *e)
{
    int first = 1;
    rt__str(e, "\n],\n\"functions\":[");
    for (size_t i = 0; i < e->nfns && !e->err; i++) {
        const rt__fn *f = &e->fns[i];
        if (!f->defined && !f->used)
            continue;
        rt__str(e, first ? "\n{\"fid\":" : ",\n{\"fid\":");
        first = 0;
        rt__i64(e, (int64_t)i);
        rt__str(e, ",\"name\":");
        rt__bytes(e, f->jname, f->jname_len);
        rt__str(e, ",\"system_name\":");
        rt__jstr(e, f->sys ? f->sys : f->name);
        rt__str(e, ",\"file\":");
        rt__jstr(e, f->file);
        rt__str(e, ",\"line\":");
        if (f->line > 0)
            rt__i64(e, f->line);
        else
            rt__str(e, "null");
        rt__str(e, f->kind == RT_FUNC_C ? ",\"kind\":\"c\"}" : ",\"kind\":\"py\"}");
    }
    rt__str(e, "\n]}\n");
}

int rt_export_finish(rt_export *e)
{
    if (e->err)
        return e->err;
    if (e->state == RT__DONE)
        return rt__fail(e, RT_ERR_STATE, "export finished twice");
    if (e->state == RT__THREAD && rt_export_thread_end(e) != RT_OK)
        return e->err;
    if (e->state == RT__NEW)
        rt__header(e);
    switch (e->o.format) {
    case RT_EXPORT_CHROME:
        rt__str(e, "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"exporter\":");
        rt__jstr(e, e->exporter ? e->exporter : "retracer");
        rt__str(e, ",\"trace\":");
        rt__jstr(e, e->name);
        rt__str(e, "}}\n");
        break;
    case RT_EXPORT_SPEEDSCOPE:
        rt__speedscope_frames(e);
        break;
    case RT_EXPORT_FOLDED:
        rt__folded(e);
        break;
    case RT_EXPORT_PPROF:
        rt__pprof(e);
        break;
    case RT_EXPORT_JSON:
        if (e->o.merge_threads) {
            int64_t total = 0;
            uint64_t calls = 0;
            for (size_t i = 0; i < e->nnodes; i++) {
                calls += e->nodes[i].calls;
                if (e->nodes[i].parent == RT__ROOT)
                    total += e->nodes[i].total_ns;
            }
            rt__str(e, "{\"thread\":-1,\"tid\":null,\"name\":\"all threads\",\"calls\":");
            rt__i64(e, (int64_t)calls);
            rt__str(e, ",\"total_ns\":");
            rt__i64(e, total);
            rt__str(e, ",\n");
            rt__json_nodes(e);
            rt__str(e, "}");
        }
        rt__json_functions(e);
        break;
    default:
        break;
    }
    rt__flush(e);
    if (e->zs)
        rt__emit(e, NULL, 0, 1);
    e->state = RT__DONE;
    return e->err;
}
