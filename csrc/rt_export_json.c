/*
 * rt_export_json.c -- retracer's own structure (docs/export-json.md): the
 * functions and, per thread (or merged into one tree), the aggregated call
 * tree as a flat list of [parent, fid, calls, total_ns, self_ns] rows.
 */
#include "rt_export_impl.h"

static void rt__json_header(rt_export *e)
{
    rt_ex_str(e, "{\"format\":\"retracer-profile\",\"version\":1,\"unit\":\"ns\",\"name\":");
    rt_ex_jstr(e, e->name);
    rt_ex_str(e, ",\"exporter\":");
    rt_ex_jstr(e, e->exporter);
    rt_ex_str(e, ",\"duration_ns\":");
    rt_ex_i64(e, e->o.duration_ns);
    rt_ex_str(e, ",\"merged_threads\":");
    rt_ex_str(e, e->o.merge_threads ? "true" : "false");
    rt_ex_str(e, ",\n\"threads\":[\n");
}

static int rt__json_thread_begin(rt_export *e, const char *name)
{
    if (!e->o.merge_threads) {
        if (e->nthreads)
            rt_ex_str(e, ",\n");
        rt_ex_str(e, "{\"thread\":");
        rt_ex_i64(e, e->thread_idx);
        rt_ex_str(e, ",\"tid\":");
        rt_ex_i64(e, e->tid);
        rt_ex_str(e, ",\"name\":");
        rt_ex_jstr(e, name);
    }
    return e->err;
}

/* The nodes of the trie as [parent, fid, calls, total_ns, self_ns] rows. */
static void rt__json_nodes(rt_export *e)
{
    rt_ex_str(e, "\"nodes\":[");
    for (size_t i = 0; i < e->nnodes && !e->err; i++) {
        const rt_ex_node *n = &e->nodes[i];
        uint8_t *p = rt_ex_reserve(e, 100);
        if (!p)
            return;
        if (i)
            *p++ = ',';
        *p++ = '\n';
        *p++ = '[';
        p = rt_ex_put_i64(p, n->parent == RT_EX_ROOT ? -1 : (int64_t)n->parent);
        *p++ = ',';
        p = rt_ex_put_u64(p, n->fid);
        *p++ = ',';
        p = rt_ex_put_u64(p, n->calls);
        *p++ = ',';
        p = rt_ex_put_i64(p, n->total_ns);
        *p++ = ',';
        p = rt_ex_put_i64(p, n->self_ns);
        *p++ = ']';
        rt_ex_commit(e, p);
    }
    rt_ex_str(e, "]");
}

static void rt__json_thread_end(rt_export *e)
{
    if (e->o.merge_threads)
        return;
    int64_t total = 0;
    for (size_t i = 0; i < e->nnodes; i++)
        if (e->nodes[i].parent == RT_EX_ROOT)
            total += e->nodes[i].total_ns;
    rt_ex_str(e, ",\"start_ns\":");
    rt_ex_i64(e, e->t_first);
    rt_ex_str(e, ",\"end_ns\":");
    rt_ex_i64(e, e->t_last);
    rt_ex_str(e, ",\"calls\":");
    rt_ex_i64(e, (int64_t)e->thread_calls);
    rt_ex_str(e, ",\"total_ns\":");
    rt_ex_i64(e, total);
    rt_ex_str(e, ",\n");
    rt__json_nodes(e);
    rt_ex_str(e, "}");
    rt_ex_trie_reset(e);
}

static void rt__json_functions(rt_export *e)
{
    int first = 1;
    rt_ex_str(e, "\n],\n\"functions\":[");
    for (size_t i = 0; i < e->nfns && !e->err; i++) {
        const rt_ex_fn *f = &e->fns[i];
        if (!f->defined && !f->used)
            continue;
        rt_ex_str(e, first ? "\n{\"fid\":" : ",\n{\"fid\":");
        first = 0;
        rt_ex_i64(e, (int64_t)i);
        rt_ex_str(e, ",\"name\":");
        rt_ex_bytes(e, f->jname, f->jname_len);
        rt_ex_str(e, ",\"system_name\":");
        rt_ex_jstr(e, f->sys ? f->sys : f->name);
        rt_ex_str(e, ",\"file\":");
        rt_ex_jstr(e, f->file);
        rt_ex_str(e, ",\"line\":");
        if (f->line > 0)
            rt_ex_i64(e, f->line);
        else
            rt_ex_str(e, "null");
        rt_ex_str(e, f->kind == RT_FUNC_C ? ",\"kind\":\"c\"}" : ",\"kind\":\"py\"}");
    }
    rt_ex_str(e, "\n]}\n");
}

static void rt__json_finish(rt_export *e)
{
    if (e->o.merge_threads) {
        int64_t total = 0;
        uint64_t calls = 0;
        for (size_t i = 0; i < e->nnodes; i++) {
            calls += e->nodes[i].calls;
            if (e->nodes[i].parent == RT_EX_ROOT)
                total += e->nodes[i].total_ns;
        }
        rt_ex_str(e, "{\"thread\":-1,\"tid\":null,\"name\":\"all threads\",\"calls\":");
        rt_ex_i64(e, (int64_t)calls);
        rt_ex_str(e, ",\"total_ns\":");
        rt_ex_i64(e, total);
        rt_ex_str(e, ",\n");
        rt__json_nodes(e);
        rt_ex_str(e, "}");
    }
    rt__json_functions(e);
}

const rt_export_ops rt_export_json_ops = {
    .name = "json",
    .aggregated = 1,
    .header = rt__json_header,
    .thread_begin = rt__json_thread_begin,
    .thread_end = rt__json_thread_end,
    .finish = rt__json_finish,
};
