/*
 * rt_export.c -- the exporters' core (see rt_export.h for the API and
 * rt_export_impl.h for how a format plugs in): life cycle, errors, the
 * buffered (optionally gzipped) writer, JSON text, function slots, span
 * bookkeeping and the call-tree trie. Each format is its own file.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rt_export_impl.h"

#define RT__MAX_NODES (UINT32_MAX - 2u)
#define RT__FID_SLACK 65536u     /* undescribed fids allowed past the highest described one */

/* The formats, by RT_EXPORT_* value. */
static const rt_export_ops *const rt__formats[] = {
    NULL,
    &rt_export_chrome_ops,     /* RT_EXPORT_CHROME */
    &rt_export_speedscope_ops, /* RT_EXPORT_SPEEDSCOPE */
    &rt_export_folded_ops,     /* RT_EXPORT_FOLDED */
    &rt_export_pprof_ops,      /* RT_EXPORT_PPROF */
    &rt_export_json_ops,       /* RT_EXPORT_JSON */
};
#define RT__NFORMATS (sizeof rt__formats / sizeof rt__formats[0])

/* ------------------------------------------------------------------ errors */

int rt_ex_fail(rt_export *e, int rc, const char *fmt, ...)
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

int rt_ex_nomem(rt_export *e) { return rt_ex_fail(e, RT_ERR_NOMEM, "out of memory"); }

/* --------------------------------------------------------------- writer */

static void rt__emit(rt_export *e, const uint8_t *p, size_t n, int finish)
{
    if (e->err)
        return;
    if (!e->zs) {
        if (n == 0)
            return;
        if (e->out(e->out_ctx, p, n) != 0) {
            rt_ex_fail(e, RT_ERR_IO, "the output could not be written");
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
        zs->avail_out = RT_EX_WBUF;
        int rc = deflate(zs, finish ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_ERROR) {
            rt_ex_fail(e, RT_ERR_STATE, "gzip stream error");
            return;
        }
        size_t have = RT_EX_WBUF - zs->avail_out;
        if (have) {
            if (e->out(e->out_ctx, e->zbuf, have) != 0) {
                rt_ex_fail(e, RT_ERR_IO, "the output could not be written");
                return;
            }
            e->st.bytes += have;
        }
        if (finish ? rc == Z_STREAM_END : (zs->avail_out != 0 && zs->avail_in == 0))
            return;
    }
}

void rt_ex_flush(rt_export *e)
{
    rt__emit(e, e->buf, e->blen, 0);
    e->blen = 0;
}

void rt_ex_bytes(rt_export *e, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n && !e->err) {
        size_t room = RT_EX_WBUF - e->blen;
        if (room == 0) {
            rt_ex_flush(e);
            continue;
        }
        size_t k = n < room ? n : room;
        memcpy(e->buf + e->blen, p, k);
        e->blen += k;
        p += k;
        n -= k;
    }
}

void rt_ex_str(rt_export *e, const char *s) { rt_ex_bytes(e, s, strlen(s)); }

void rt_ex_i64(rt_export *e, int64_t v)
{
    uint8_t *p = rt_ex_reserve(e, 24);
    if (p)
        rt_ex_commit(e, rt_ex_put_i64(p, v));
}

void rt_ex_sep(rt_export *e)
{
    if (e->first_item)
        e->first_item = 0;
    else
        rt_ex_bytes(e, ",\n", 2);
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

void rt_ex_jstr(rt_export *e, const char *s)
{
    if (!s) {
        rt_ex_str(e, "null");
        return;
    }
    const uint8_t *p = (const uint8_t *)s;
    uint8_t *o = rt_ex_reserve(e, 1);
    if (!o)
        return;
    *o++ = '"';
    rt_ex_commit(e, o);
    while (*p) {
        o = rt_ex_reserve(e, 8);
        if (!o)
            return;
        size_t adv;
        o += rt__json_char(p, o, &adv);
        rt_ex_commit(e, o);
        p += adv;
    }
    o = rt_ex_reserve(e, 1);
    if (o) {
        *o++ = '"';
        rt_ex_commit(e, o);
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

char *rt_ex_strdup(const rt_allocator *a, const char *s)
{
    size_t n = strlen(s);
    char *d = rt_malloc(a, n + 1);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

/* ------------------------------------------------------------ functions */

static void rt__fn_clear(const rt_allocator *a, rt_ex_fn *f)
{
    rt_free(a, f->name);
    rt_free(a, f->sys);
    rt_free(a, f->file);
    rt_free(a, f->label);
    rt_free(a, f->jname);
    rt_free(a, f->pre);
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
        return rt_ex_nomem(e);
    memset(e->fns + old, 0, (e->nfns - old) * sizeof *e->fns);
    return RT_OK;
}

/* Build the derived strings of slot fid (a placeholder name if undescribed). */
static int rt__fn_ready(rt_export *e, uint32_t fid)
{
    if (fid >= e->nfns || !e->fns[fid].ready) {
        if (fid >= e->max_defined && fid - e->max_defined >= RT__FID_SLACK)
            return rt_ex_fail(e, RT_ERR_DATA, "function id %lu in the call stream is out of range",
                              (unsigned long)fid);
        if (rt__fn_slot(e, fid) != RT_OK)
            return e->err;
    }
    rt_ex_fn *f = &e->fns[fid];
    if (f->ready)
        return RT_OK;
    if (!f->name) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "<fid %lu>", (unsigned long)fid);
        if (!(f->name = rt_ex_strdup(e->a, tmp)))
            return rt_ex_nomem(e);
    }
    const char *lab = f->label ? f->label : f->name;
    size_t n = strlen(lab);
    char *label = rt_malloc(e->a, n + 1);
    if (!label)
        return rt_ex_nomem(e);
    for (size_t i = 0; i <= n; i++) {
        char c = lab[i];
        label[i] = c == ';' ? ':' : (c == '\n' || c == '\r') ? ' ' : c;
    }
    rt_free(e->a, f->label);
    f->label = label;
    f->label_len = n;
    if (!(f->jname = rt__jstr_dup(e->a, f->name, &f->jname_len)))
        return rt_ex_nomem(e);
    if (e->ops->fn_ready && e->ops->fn_ready(e, f) != RT_OK)
        return e->err;
    f->ready = 1;
    return RT_OK;
}

int rt_export_add_function(rt_export *e, uint32_t fid, const rt_export_func *fn)
{
    if (e->err)
        return e->err;
    if (e->stage == RT_EX_DONE)
        return rt_ex_fail(e, RT_ERR_STATE, "function added after the export finished");
    if (rt__fn_slot(e, fid) != RT_OK)
        return e->err;
    rt_ex_fn *f = &e->fns[fid];
    rt__fn_clear(e->a, f);
    if ((fn->name && !(f->name = rt_ex_strdup(e->a, fn->name))) ||
        (fn->system_name && !(f->sys = rt_ex_strdup(e->a, fn->system_name))) ||
        (fn->file && !(f->file = rt_ex_strdup(e->a, fn->file))) ||
        (fn->label && !(f->label = rt_ex_strdup(e->a, fn->label)))) {
        rt__fn_clear(e->a, f);
        return rt_ex_nomem(e);
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
        return rt_ex_fail(e, RT_ERR_NOMEM, "too many distinct stacks");
    if (rt_grow(e->a, (void **)&e->nodes, &e->ncap, e->nnodes + 1, sizeof *e->nodes, 256) != RT_OK)
        return rt_ex_nomem(e);
    if (rt_map_put(&e->index, key, e->nnodes) != RT_OK)
        return rt_ex_nomem(e);
    rt_ex_node *n = &e->nodes[e->nnodes];
    n->parent = parent;
    n->fid = fid;
    n->calls = 0;
    n->total_ns = n->self_ns = 0;
    *out = (uint32_t)e->nnodes++;
    if (e->nnodes > e->st.nodes)
        e->st.nodes = e->nnodes;
    return RT_OK;
}

void rt_ex_trie_reset(rt_export *e)
{
    e->nnodes = 0;
    rt_map_free(&e->index);
    rt_map_init(&e->index, e->a);
}

size_t rt_ex_node_path(rt_export *e, uint32_t i)
{
    size_t n = 0;
    for (uint32_t k = i; k != RT_EX_ROOT; k = e->nodes[k].parent) {
        if (rt_grow(e->a, (void **)&e->path, &e->path_cap, n + 1, sizeof *e->path, 256) != RT_OK) {
            rt_ex_nomem(e);
            return 0;
        }
        e->path[n++] = e->nodes[k].fid;
    }
    return n;
}

/* --------------------------------------------------------------- spans */

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
        return rt_ex_nomem(e);
    e->depth[depth].child = 0;
    if (e->ops->aggregated) {
        uint32_t node = 0;
        if (rt__trie_child(e, depth ? e->depth[depth - 1].node : e->thread_root, s->fid, &node) != RT_OK)
            return e->err;
        e->depth[depth].node = node;
        if (s->kind == RT_SPAN_CALL)
            e->nodes[node].calls++;
    }
    if (e->ops->open)
        e->ops->open(e, s, depth);
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
    if (e->ops->aggregated) {
        rt_ex_node *n = &e->nodes[e->depth[depth].node];
        n->total_ns += dur;
        n->self_ns += self;
    }
    if (e->ops->close)
        e->ops->close(e, s, depth, t, dur, how);
    return e->err;
}

/* ---------------------------------------------------------- life cycle */

int rt_export_format_by_name(const char *name)
{
    for (size_t i = 1; i < RT__NFORMATS; i++)
        if (strcmp(name, rt__formats[i]->name) == 0)
            return (int)i;
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
    if (opts->format < 1 || (size_t)opts->format >= RT__NFORMATS || !out)
        return RT_ERR_STATE;
    const rt_export_ops *ops = rt__formats[opts->format];
    rt_export *e = rt_malloc(alloc, sizeof *e);
    if (!e)
        return RT_ERR_NOMEM;
    memset(e, 0, sizeof *e);
    e->o = *opts;
    e->pid = opts->pid;
    e->cur_proc = -1;
    e->ops = ops;
    e->a = alloc;
    e->out = out;
    e->out_ctx = out_ctx;
    e->first_item = 1;
    rt_map_init(&e->index, alloc);
    e->o.name = e->o.exporter = NULL;
    if ((opts->name && !(e->name = rt_ex_strdup(alloc, opts->name))) ||
        (opts->exporter && !(e->exporter = rt_ex_strdup(alloc, opts->exporter))) ||
        !(e->buf = rt_malloc(alloc, RT_EX_WBUF)))
        goto nomem;
    if (ops->state_size) {
        if (!(e->state = rt_malloc(alloc, ops->state_size)))
            goto nomem;
        memset(e->state, 0, ops->state_size);
    }
    if (ops->gzip) {
        if (!(e->zbuf = rt_malloc(alloc, RT_EX_WBUF)) || !(e->zs = rt_malloc(alloc, sizeof *e->zs)))
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
    if (e->state) {
        if (e->ops->free_state)
            e->ops->free_state(e);
        rt_free(a, e->state);
    }
    for (size_t i = 0; i < e->nfns; i++)
        rt__fn_clear(a, &e->fns[i]);
    rt_free(a, e->fns);
    for (size_t i = 0; i < e->nprocs; i++)
        rt_free(a, e->procs[i].frame);
    rt_free(a, e->procs);
    rt_free(a, e->nodes);
    rt_map_free(&e->index);
    rt_free(a, e->depth);
    rt_free(a, e->path);
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
    if (e->ops->header)
        e->ops->header(e);
    e->stage = RT_EX_READY;
}

void rt_export_set_pid(rt_export *e, int64_t pid) { e->pid = pid; }

int rt_export_set_process(rt_export *e, int64_t pid, const char *frame)
{
    if (e->err)
        return e->err;
    for (size_t i = 0; i < e->nprocs; i++)
        if (e->procs[i].pid == pid) {
            e->cur_proc = (int)i;
            return RT_OK;
        }
    if (e->nprocs >= 1u << 20)
        return rt_ex_fail(e, RT_ERR_DATA, "too many processes");
    if (rt_grow(e->a, (void **)&e->procs, &e->pcap, e->nprocs + 1, sizeof *e->procs, 8) != RT_OK)
        return rt_ex_nomem(e);
    rt_ex_proc *p = &e->procs[e->nprocs];
    p->pid = pid;
    p->frame = NULL;
    p->frame_len = 0;
    if (frame) {
        if (!(p->frame = rt_ex_strdup(e->a, frame)))
            return rt_ex_nomem(e);
        for (char *c = p->frame; *c; c++)  /* as function labels: one frame, one line */
            if (*c == ';')
                *c = ':';
            else if (*c == '\n' || *c == '\r')
                *c = ' ';
        p->frame_len = strlen(p->frame);
    }
    e->cur_proc = (int)e->nprocs++;
    return RT_OK;
}

int rt_export_thread_begin(rt_export *e, uint32_t thread_idx, int64_t tid, const char *name)
{
    if (e->err)
        return e->err;
    if (e->stage == RT_EX_THREAD || e->stage == RT_EX_DONE)
        return rt_ex_fail(e, RT_ERR_STATE, "thread begun while another is open or after the end");
    if (e->stage == RT_EX_NEW)
        rt__header(e);
    e->thread_idx = thread_idx;
    e->tid = tid;
    e->thread_root = RT_EX_ROOT;
    if (e->ops->by_process && e->cur_proc >= 0 &&
        (e->ops->by_process == 2 || e->procs[e->cur_proc].frame) &&
        rt__trie_child(e, RT_EX_ROOT, RT_EX_PROC_FID | (uint32_t)e->cur_proc, &e->thread_root) != RT_OK)
        return e->err;
    e->have_t = 0;
    e->t_first = e->t_last = 0;
    e->thread_calls = 0;
    if (e->ops->thread_begin)
        e->ops->thread_begin(e, name);
    if (e->err)
        return e->err;
    rt_walk_visitor v = {e, rt__open, rt__close};
    rt_walker_init(&e->w, &v, e->a);
    e->walker_live = 1;
    e->nthreads++;
    e->stage = RT_EX_THREAD;
    return RT_OK;
}

int rt_export_feed(rt_export *e, const uint8_t *data, size_t len)
{
    if (e->err)
        return e->err;
    if (e->stage != RT_EX_THREAD)
        return rt_ex_fail(e, RT_ERR_STATE, "chunk fed outside a thread");
    int rc = rt_walker_feed(&e->w, data, len);
    if (rc != RT_OK) {
        if (rc == RT_ERR_DATA)
            return rt_ex_fail(e, RT_ERR_DATA, "malformed call-stream chunk in thread %lu",
                              (unsigned long)e->thread_idx);
        if (rc == RT_ERR_NOMEM)
            return rt_ex_nomem(e);
        return rt_ex_fail(e, rc, "export failed (%d)", rc);
    }
    return RT_OK;
}

int rt_export_thread_end(rt_export *e)
{
    if (e->err)
        return e->err;
    if (e->stage != RT_EX_THREAD)
        return rt_ex_fail(e, RT_ERR_STATE, "thread ended while none is open");
    int rc = rt_walker_finish(&e->w);
    if (rc != RT_OK && !e->err)
        rt_ex_fail(e, rc, rc == RT_ERR_NOMEM ? "out of memory" : "export failed (%d)", rc);
    e->st.events += e->w.events;
    e->st.anomalies += e->w.anomalies;
    rt_walker_free(&e->w);
    e->walker_live = 0;
    if (e->err)
        return e->err;
    if (e->ops->thread_end)
        e->ops->thread_end(e);
    e->stage = RT_EX_READY;
    return e->err;
}

int rt_export_finish(rt_export *e)
{
    if (e->err)
        return e->err;
    if (e->stage == RT_EX_DONE)
        return rt_ex_fail(e, RT_ERR_STATE, "export finished twice");
    if (e->stage == RT_EX_THREAD && rt_export_thread_end(e) != RT_OK)
        return e->err;
    if (e->stage == RT_EX_NEW)
        rt__header(e);
    if (e->ops->finish)
        e->ops->finish(e);
    rt_ex_flush(e);
    if (e->zs)
        rt__emit(e, NULL, 0, 1);
    e->stage = RT_EX_DONE;
    return e->err;
}
