/*
 * rt_export_speedscope.c -- the speedscope file format: one "evented"
 * profile per thread with "O"/"C" events in nanoseconds; the frames (one per
 * function used) are shared by all profiles and written at the end.
 */
#include <stdio.h>

#include "rt_export_impl.h"

typedef struct rt__speedscope_state {
    uint32_t *frames;    /* owned: frame index -> fid, `nframes` of `frames_cap` */
    size_t nframes, frames_cap;
} rt__speedscope_state;

static void rt__speedscope_free_state(rt_export *e)
{
    rt__speedscope_state *ss = e->state;
    rt_free(e->a, ss->frames);
}

static void rt__speedscope_header(rt_export *e)
{
    rt_ex_str(e, "{\"$schema\":\"https://www.speedscope.app/file-format-schema.json\",\"profiles\":[\n");
}

static int rt__speedscope_thread_begin(rt_export *e, const char *name)
{
    if (e->nthreads)
        rt_ex_str(e, ",\n");
    rt_ex_str(e, "{\"type\":\"evented\",\"name\":");
    /* "<name> (thread <tid>)" */
    const char *nm = name ? name : "thread";
    size_t k = strlen(nm);
    char *full = rt_malloc(e->a, k + 48);
    if (!full)
        return rt_ex_nomem(e);
    memcpy(full, nm, k);
    snprintf(full + k, 48, " (thread %lld)", (long long)e->tid);
    rt_ex_jstr(e, full);
    rt_free(e->a, full);
    rt_ex_str(e, ",\"unit\":\"nanoseconds\",\"events\":[\n");
    e->first_item = 1;
    return e->err;
}

static int rt__speedscope_open(rt_export *e, const rt_span *s, size_t depth)
{
    (void)depth;
    rt__speedscope_state *ss = e->state;
    rt_ex_fn *fn = &e->fns[s->fid];
    if (fn->frame == 0) {
        if (rt_grow(e->a, (void **)&ss->frames, &ss->frames_cap, ss->nframes + 1, sizeof *ss->frames, 256) != RT_OK)
            return rt_ex_nomem(e);
        ss->frames[ss->nframes++] = s->fid;
        fn->frame = (uint32_t)ss->nframes;
    }
    rt_ex_sep(e);
    uint8_t *p = rt_ex_reserve(e, 80);
    if (!p)
        return e->err;
    memcpy(p, "{\"type\":\"O\",\"frame\":", 20);
    p = rt_ex_put_u64(p + 20, fn->frame - 1);
    memcpy(p, ",\"at\":", 6);
    p = rt_ex_put_i64(p + 6, s->t0);
    *p++ = '}';
    rt_ex_commit(e, p);
    return e->err;
}

static int rt__speedscope_close(rt_export *e, const rt_span *s, size_t depth, int64_t t, int64_t dur, int how)
{
    (void)depth;
    (void)dur;
    (void)how;
    rt_ex_sep(e);
    uint8_t *p = rt_ex_reserve(e, 80);
    if (!p)
        return e->err;
    memcpy(p, "{\"type\":\"C\",\"frame\":", 20);
    p = rt_ex_put_u64(p + 20, e->fns[s->fid].frame - 1);
    memcpy(p, ",\"at\":", 6);
    p = rt_ex_put_i64(p + 6, t);
    *p++ = '}';
    rt_ex_commit(e, p);
    return e->err;
}

static void rt__speedscope_thread_end(rt_export *e)
{
    rt_ex_str(e, "\n],\"startValue\":");
    rt_ex_i64(e, e->t_first);
    rt_ex_str(e, ",\"endValue\":");
    rt_ex_i64(e, e->t_last);
    rt_ex_str(e, "}");
}

static void rt__speedscope_finish(rt_export *e)
{
    rt__speedscope_state *ss = e->state;
    rt_ex_str(e, "\n],\"shared\":{\"frames\":[\n");
    for (size_t i = 0; i < ss->nframes && !e->err; i++) {
        const rt_ex_fn *f = &e->fns[ss->frames[i]];
        if (i)
            rt_ex_str(e, ",\n");
        rt_ex_str(e, "{\"name\":");
        rt_ex_bytes(e, f->jname, f->jname_len);
        if (f->file) {
            rt_ex_str(e, ",\"file\":");
            rt_ex_jstr(e, f->file);
        }
        if (f->line > 0) {
            rt_ex_str(e, ",\"line\":");
            rt_ex_i64(e, f->line);
        }
        rt_ex_str(e, "}");
    }
    rt_ex_str(e, "\n]},\"name\":");
    rt_ex_jstr(e, e->name ? e->name : "retracer");
    rt_ex_str(e, ",\"activeProfileIndex\":0,\"exporter\":");
    rt_ex_jstr(e, e->exporter ? e->exporter : "retracer");
    rt_ex_str(e, "}\n");
}

const rt_export_ops rt_export_speedscope_ops = {
    .name = "speedscope",
    .state_size = sizeof(rt__speedscope_state),
    .free_state = rt__speedscope_free_state,
    .header = rt__speedscope_header,
    .thread_begin = rt__speedscope_thread_begin,
    .open = rt__speedscope_open,
    .close = rt__speedscope_close,
    .thread_end = rt__speedscope_thread_end,
    .finish = rt__speedscope_finish,
};
