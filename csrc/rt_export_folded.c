/*
 * rt_export_folded.c -- folded stacks (flamegraph.pl, inferno): one
 * "root;...;leaf weight" line per distinct stack with self time, weight =
 * self time in nanoseconds, threads merged. Written from the trie at the end.
 * A multi-process trace's stacks are kept apart per process, each under its
 * process's root frame when it has one (rt_export_set_process).
 */
#include "rt_export_impl.h"

static void rt__folded_finish(rt_export *e)
{
    for (size_t i = 0; i < e->nnodes && !e->err; i++) {
        if (e->nodes[i].self_ns <= 0)
            continue;
        size_t d = rt_ex_node_path(e, (uint32_t)i);
        if (d && RT_EX_IS_PROC(e->path[d - 1])) {
            const rt_ex_proc *p = &e->procs[e->path[d - 1] & ~RT_EX_PROC_FID];
            d--;
            if (p->frame) {
                rt_ex_bytes(e, p->frame, p->frame_len);
                rt_ex_bytes(e, ";", 1);
            }
        }
        while (d-- > 0 && !e->err) {
            const rt_ex_fn *f = &e->fns[e->path[d]];
            rt_ex_bytes(e, f->label, f->label_len);
            if (d)
                rt_ex_bytes(e, ";", 1);
        }
        uint8_t *p = rt_ex_reserve(e, 24);
        if (!p)
            return;
        *p++ = ' ';
        p = rt_ex_put_i64(p, e->nodes[i].self_ns);
        *p++ = '\n';
        rt_ex_commit(e, p);
    }
}

const rt_export_ops rt_export_folded_ops = {
    .name = "folded",
    .aggregated = 1,
    .by_process = 1,
    .finish = rt__folded_finish,
};
