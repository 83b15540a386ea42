/* rt_walk.c -- call stream to nested spans (see rt_walk.h). */
#include "rt_walk.h"

void rt_walker_init(rt_walker *w, const rt_walk_visitor *v, const rt_allocator *alloc)
{
    w->v = *v;
    w->alloc = alloc;
    w->stack = NULL;
    w->depth = w->cap = 0;
    rt_map_init(&w->suspended, alloc);
    w->calls = 0;
    w->t = 0;
    w->events = 0;
    w->anomalies = 0;
}

void rt_walker_free(rt_walker *w)
{
    rt_free(w->alloc, w->stack);
    w->stack = NULL;
    w->depth = w->cap = 0;
    rt_map_free(&w->suspended);
}

static int rt__walk_push(rt_walker *w, uint32_t fid, int kind, uint64_t call_no, int64_t t)
{
    if (rt_grow(w->alloc, (void **)&w->stack, &w->cap, w->depth + 1, sizeof *w->stack, 64) != RT_OK)
        return RT_ERR_NOMEM;
    rt_span *s = &w->stack[w->depth];
    s->fid = fid;
    s->kind = kind;
    s->call_no = call_no;
    s->t0 = t;
    w->depth++;
    return w->v.open ? w->v.open(w->v.ud, s, w->depth - 1) : RT_OK;
}

static int rt__walk_pop(rt_walker *w, int64_t t, int how)
{
    w->depth--;
    rt_span *s = &w->stack[w->depth];
    if (how == RT_END_SUSPEND) {
        int rc = rt_map_put(&w->suspended, s->call_no, s->fid);
        if (rc != RT_OK) {
            w->depth++;
            return rc;
        }
    }
    return w->v.close ? w->v.close(w->v.ud, s, w->depth, t, how) : RT_OK;
}

int rt_walker_feed(rt_walker *w, const uint8_t *data, size_t len)
{
    rt_stream_reader r;
    rt_event ev;
    int rc;
    rt_stream_reader_init(&r, data, len, w->t);
    while ((rc = rt_stream_next(&r, &ev)) == 1) {
        w->events++;
        w->t = ev.t;
        switch (ev.tag) {
        case RT_EV_ENTER:
        case RT_EV_ENTER_CONT:
            rc = rt__walk_push(w, ev.fid, ev.tag == RT_EV_ENTER ? RT_SPAN_CALL : RT_SPAN_CONT,
                               w->calls, ev.t);
            w->calls++;
            break;
        case RT_EV_EXIT:
        case RT_EV_EXIT_EXC:
        case RT_EV_SUSPEND:
            if (w->depth == 0) {
                w->anomalies++;
                rc = RT_OK;
                break;
            }
            rc = rt__walk_pop(w, ev.t, ev.tag == RT_EV_EXIT ? RT_END_RETURN
                                       : ev.tag == RT_EV_EXIT_EXC ? RT_END_RAISE : RT_END_SUSPEND);
            break;
        case RT_EV_RESUME: {
            uint64_t *fid;
            uint64_t call_no;
            if (ev.back == 0 || ev.back > w->calls) {
                w->anomalies++;
                rc = RT_OK;
                break;
            }
            call_no = w->calls - ev.back;
            fid = rt_map_get(&w->suspended, call_no);
            if (!fid) {
                w->anomalies++;
                rc = RT_OK;
                break;
            }
            uint32_t f = (uint32_t)*fid;
            rt_map_del(&w->suspended, call_no);
            rc = rt__walk_push(w, f, RT_SPAN_RESUME, call_no, ev.t);
            break;
        }
        default: /* TIME */
            rc = RT_OK;
            break;
        }
        if (rc != RT_OK)
            return rc;
    }
    return rc; /* 0 at the end of the chunk, RT_ERR_DATA when malformed */
}

int rt_walker_finish(rt_walker *w)
{
    while (w->depth > 0) {
        int rc = rt__walk_pop(w, w->t, RT_END_OPEN);
        if (rc != RT_OK)
            return rc;
    }
    return RT_OK;
}
