/*
 * rt_export_pprof.c -- gzipped profile.proto (pprof, go tool pprof): sample
 * types calls/count and wall/nanoseconds, one Sample per distinct stack
 * (threads merged), one Function and one Location per function used.
 * A multi-process trace's samples are kept apart per process and carry a
 * numeric label "pid"; a process with a root frame (rt_export_set_process) has
 * a Function and Location of its own, at the root of its stacks.
 * Written from the trie at the end; the core's writer gzips it.
 */
#include "rt_export_impl.h"
#include "rt_stream.h"

typedef struct rt__pprof_state {
    uint8_t *pb;         /* owned: the protobuf message being built */
    size_t pblen, pbcap;
} rt__pprof_state;

static void rt__pprof_free_state(rt_export *e)
{
    rt__pprof_state *ps = e->state;
    rt_free(e->a, ps->pb);
}

static int rt__pb_room(rt_export *e, rt__pprof_state *ps, size_t n)
{
    if (n > SIZE_MAX - ps->pblen ||
        rt_grow(e->a, (void **)&ps->pb, &ps->pbcap, ps->pblen + n, 1, 256) != RT_OK)
        return rt_ex_nomem(e);
    return RT_OK;
}

static void rt__pb_varint(rt_export *e, rt__pprof_state *ps, uint64_t v)
{
    if (rt__pb_room(e, ps, 10) == RT_OK)
        ps->pblen = (size_t)(rt_varint_put(ps->pb + ps->pblen, v) - ps->pb);
}

static void rt__pb_field(rt_export *e, rt__pprof_state *ps, unsigned field, uint64_t v)
{
    rt__pb_varint(e, ps, ((uint64_t)field << 3) | 0);
    rt__pb_varint(e, ps, v);
}

static void rt__pb_bytes(rt_export *e, rt__pprof_state *ps, unsigned field, const void *data, size_t n)
{
    rt__pb_varint(e, ps, ((uint64_t)field << 3) | 2);
    rt__pb_varint(e, ps, n);
    if (rt__pb_room(e, ps, n) == RT_OK) {
        memcpy(ps->pb + ps->pblen, data, n);
        ps->pblen += n;
    }
}

/* Write the message built in ps->pb as top-level field `field` of the Profile. */
static void rt__pb_emit(rt_export *e, rt__pprof_state *ps, unsigned field)
{
    uint8_t hdr[20], *p = hdr;
    if (e->err)
        return;
    p = rt_varint_put(p, ((uint64_t)field << 3) | 2);
    p = rt_varint_put(p, ps->pblen);
    rt_ex_bytes(e, hdr, (size_t)(p - hdr));
    rt_ex_bytes(e, ps->pb, ps->pblen);
    ps->pblen = 0;
}

static void rt__pb_top_varint(rt_export *e, unsigned field, uint64_t v)
{
    uint8_t tmp[20], *p = tmp;
    p = rt_varint_put(p, ((uint64_t)field << 3) | 0);
    p = rt_varint_put(p, v);
    rt_ex_bytes(e, tmp, (size_t)(p - tmp));
}

/* Append string `s` to the string table (field 6); returns its index. */
static uint64_t rt__pb_string(rt_export *e, const char *s, uint64_t *next)
{
    size_t n = strlen(s);
    uint8_t hdr[20], *p = hdr;
    p = rt_varint_put(p, (6u << 3) | 2);
    p = rt_varint_put(p, n);
    rt_ex_bytes(e, hdr, (size_t)(p - hdr));
    rt_ex_bytes(e, s, n);
    return (*next)++;
}

static void rt__pprof_finish(rt_export *e)
{
    rt__pprof_state *ps = e->state;
    /* string table: 0 "", then the names of the sample types */
    uint64_t ns = 0;
    rt__pb_string(e, "", &ns);
    uint64_t s_calls = rt__pb_string(e, "calls", &ns), s_count = rt__pb_string(e, "count", &ns);
    uint64_t s_wall = rt__pb_string(e, "wall", &ns), s_nanos = rt__pb_string(e, "nanoseconds", &ns);
    uint64_t s_python = rt__pb_string(e, "python", &ns);
    uint64_t s_pid = e->nprocs ? rt__pb_string(e, "pid", &ns) : 0;
    /* sample_type (1): calls/count, wall/nanoseconds */
    rt__pb_field(e, ps, 1, s_calls);
    rt__pb_field(e, ps, 2, s_count);
    rt__pb_emit(e, ps, 1);
    rt__pb_field(e, ps, 1, s_wall);
    rt__pb_field(e, ps, 2, s_nanos);
    rt__pb_emit(e, ps, 1);
    /* one mapping (3) that says the locations are symbolized already */
    rt__pb_field(e, ps, 1, 1);
    rt__pb_field(e, ps, 5, s_python);
    rt__pb_field(e, ps, 7, 1);
    rt__pb_field(e, ps, 8, 1);
    rt__pb_field(e, ps, 9, 1);
    rt__pb_emit(e, ps, 3);
    /* a Function (5) and a Location (4) per function used; id = fid + 1 */
    for (size_t i = 0; i < e->nfns && !e->err; i++) {
        const rt_ex_fn *f = &e->fns[i];
        if (!f->used)
            continue;
        uint64_t s_name = rt__pb_string(e, f->name, &ns);
        /* system_name only when it differs: pprof "demangles" a Function whose
         * system_name equals its name, which strips <...> from "<module>" */
        uint64_t s_sys = f->sys && strcmp(f->sys, f->name) != 0 ? rt__pb_string(e, f->sys, &ns) : 0;
        uint64_t s_file = f->file ? rt__pb_string(e, f->file, &ns) : 0;
        rt__pb_field(e, ps, 1, i + 1);
        rt__pb_field(e, ps, 2, s_name);
        rt__pb_field(e, ps, 3, s_sys);
        rt__pb_field(e, ps, 4, s_file);
        rt__pb_field(e, ps, 5, (uint64_t)(f->line > 0 ? f->line : 0));
        rt__pb_emit(e, ps, 5);
        /* Location: id, mapping_id, line { function_id, line } */
        rt__pb_field(e, ps, 1, i + 1);
        rt__pb_field(e, ps, 2, 1);
        {
            uint8_t line[24], *p = line;
            p = rt_varint_put(p, (1u << 3) | 0);
            p = rt_varint_put(p, i + 1);
            p = rt_varint_put(p, (2u << 3) | 0);
            p = rt_varint_put(p, (uint64_t)(f->line > 0 ? f->line : 0));
            rt__pb_bytes(e, ps, 4, line, (size_t)(p - line));
        }
        rt__pb_emit(e, ps, 4);
    }
    /* a process's root frame: Function and Location id = nfns + 1 + its index */
    for (size_t k = 0; k < e->nprocs && !e->err; k++) {
        const rt_ex_proc *p = &e->procs[k];
        if (!p->frame)
            continue;
        uint64_t id = (uint64_t)e->nfns + 1 + k;
        rt__pb_field(e, ps, 1, id);
        rt__pb_field(e, ps, 2, rt__pb_string(e, p->frame, &ns));
        rt__pb_emit(e, ps, 5);
        rt__pb_field(e, ps, 1, id);
        rt__pb_field(e, ps, 2, 1);
        {
            uint8_t line[24], *q = line;
            q = rt_varint_put(q, (1u << 3) | 0);
            q = rt_varint_put(q, id);
            rt__pb_bytes(e, ps, 4, line, (size_t)(q - line));
        }
        rt__pb_emit(e, ps, 4);
    }
    /* one Sample (2) per distinct stack: location ids leaf first, values [calls, wall ns] */
    for (size_t i = 0; i < e->nnodes && !e->err; i++) {
        const rt_ex_node *n = &e->nodes[i];
        if (n->self_ns <= 0 && n->calls == 0)
            continue;
        size_t d = rt_ex_node_path(e, (uint32_t)i);
        const rt_ex_proc *proc = NULL;
        if (d && RT_EX_IS_PROC(e->path[d - 1])) {
            uint32_t k = e->path[d - 1] & ~RT_EX_PROC_FID;
            proc = &e->procs[k];
            if (proc->frame)
                e->path[d - 1] = (uint32_t)e->nfns + k;  /* its location id - 1 */
            else
                d--;
        }
        size_t plen = 0;
        for (size_t k = 0; k < d; k++)
            plen += rt_varint_len((uint64_t)e->path[k] + 1);
        rt__pb_varint(e, ps, (1u << 3) | 2);
        rt__pb_varint(e, ps, plen);
        if (rt__pb_room(e, ps, plen) != RT_OK)
            return;
        for (size_t k = 0; k < d; k++)
            ps->pblen = (size_t)(rt_varint_put(ps->pb + ps->pblen, (uint64_t)e->path[k] + 1) - ps->pb);
        uint8_t vals[24], *p = vals;
        p = rt_varint_put(p, n->calls);
        p = rt_varint_put(p, (uint64_t)(n->self_ns > 0 ? n->self_ns : 0));
        rt__pb_bytes(e, ps, 2, vals, (size_t)(p - vals));
        if (proc) {  /* label (3): key "pid", num */
            uint8_t lab[32], *q = lab;
            q = rt_varint_put(q, (1u << 3) | 0);
            q = rt_varint_put(q, s_pid);
            q = rt_varint_put(q, (3u << 3) | 0);
            q = rt_varint_put(q, (uint64_t)proc->pid);
            rt__pb_bytes(e, ps, 3, lab, (size_t)(q - lab));
        }
        rt__pb_emit(e, ps, 2);
    }
    if (e->o.time_unix_ns > 0)
        rt__pb_top_varint(e, 9, (uint64_t)e->o.time_unix_ns);
    if (e->o.duration_ns > 0)
        rt__pb_top_varint(e, 10, (uint64_t)e->o.duration_ns);
    rt__pb_field(e, ps, 1, s_wall); /* period_type (11) */
    rt__pb_field(e, ps, 2, s_nanos);
    rt__pb_emit(e, ps, 11);
    rt__pb_top_varint(e, 12, 1);       /* period */
    rt__pb_top_varint(e, 14, s_wall);  /* default_sample_type */
}

const rt_export_ops rt_export_pprof_ops = {
    .name = "pprof",
    .aggregated = 1,
    .by_process = 2,
    .gzip = 1,
    .state_size = sizeof(rt__pprof_state),
    .free_state = rt__pprof_free_state,
    .finish = rt__pprof_finish,
};
