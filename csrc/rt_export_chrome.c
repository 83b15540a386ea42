/*
 * rt_export_chrome.c -- Trace Event JSON (Perfetto, chrome://tracing): one
 * "ph":"X" complete event per span, ts/dur in microseconds with three
 * decimals (nanoseconds survive), "ph":"M" process and thread metadata.
 */
#include <stdio.h>

#include "rt_export_impl.h"

typedef struct rt__chrome_state {
    char *tpre;          /* owned: "pid":P,"tid":T,"ts": of the current thread */
    size_t tpre_len;
    int64_t last_pid;    /* the process named last ("process_name" metadata) */
} rt__chrome_state;

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
    p = rt_ex_put_u64(p, u / 1000);
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

static void rt__chrome_free_state(rt_export *e)
{
    rt__chrome_state *cs = e->state;
    rt_free(e->a, cs->tpre);
}

/* f->pre: {"ph":"X","cat":"...","name":"...", */
static int rt__chrome_fn_ready(rt_export *e, rt_ex_fn *f)
{
    const char *cat = f->kind == RT_FUNC_C ? "{\"ph\":\"X\",\"cat\":\"builtin\",\"name\":"
                                           : "{\"ph\":\"X\",\"cat\":\"python\",\"name\":";
    size_t cl = strlen(cat);
    f->pre_len = cl + f->jname_len + 1;
    if (!(f->pre = rt_malloc(e->a, f->pre_len + 1)))
        return rt_ex_nomem(e);
    memcpy(f->pre, cat, cl);
    memcpy(f->pre + cl, f->jname, f->jname_len);
    f->pre[f->pre_len - 1] = ',';
    f->pre[f->pre_len] = 0;
    return RT_OK;
}

static void rt__chrome_header(rt_export *e)
{
    rt_ex_str(e, "{\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":");
    rt_ex_i64(e, e->o.pid);
    rt_ex_str(e, ",\"tid\":0,\"args\":{\"name\":");
    /* written before the first thread: a multi-process trace has said that thread's process */
    const rt_ex_proc *p = e->cur_proc >= 0 ? &e->procs[e->cur_proc] : NULL;
    rt_ex_jstr(e, p && p->pid == e->o.pid && p->frame ? p->frame : e->name ? e->name : "python");
    rt_ex_str(e, "}}");
    ((rt__chrome_state *)e->state)->last_pid = e->o.pid;
    e->first_item = 0;
}

static int rt__chrome_thread_begin(rt_export *e, const char *name)
{
    rt__chrome_state *cs = e->state;
    char tmp[80];
    if (e->pid != cs->last_pid) {
        /* a process of a multi-process trace: named once, before its first thread */
        rt_ex_sep(e);
        rt_ex_str(e, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":");
        rt_ex_i64(e, e->pid);
        rt_ex_str(e, ",\"tid\":0,\"args\":{\"name\":");
        const rt_ex_proc *p = e->cur_proc >= 0 ? &e->procs[e->cur_proc] : NULL;
        if (p && p->pid == e->pid && p->frame) {  /* "process N: COMMAND" (rt_export_set_process) */
            rt_ex_jstr(e, p->frame);
        } else {
            rt_ex_str(e, "\"pid ");
            rt_ex_i64(e, e->pid);
            rt_ex_str(e, "\"");
        }
        rt_ex_str(e, "}}");
        cs->last_pid = e->pid;
    }
    int n = snprintf(tmp, sizeof tmp, "\"pid\":%lld,\"tid\":%lld,\"ts\":", (long long)e->pid,
                     (long long)e->tid);
    rt_free(e->a, cs->tpre);
    if (!(cs->tpre = rt_ex_strdup(e->a, tmp)))
        return rt_ex_nomem(e);
    cs->tpre_len = (size_t)n;
    rt_ex_sep(e);
    rt_ex_str(e, "{\"ph\":\"M\",\"name\":\"thread_name\",");
    rt_ex_str(e, cs->tpre);
    rt_ex_str(e, "0,\"args\":{\"name\":");
    rt_ex_jstr(e, name ? name : "thread");
    rt_ex_str(e, "}},\n{\"ph\":\"M\",\"name\":\"thread_sort_index\",");
    rt_ex_str(e, cs->tpre);
    rt_ex_str(e, "0,\"args\":{\"sort_index\":");
    rt_ex_i64(e, e->thread_idx);
    rt_ex_str(e, "}}");
    return e->err;
}

static int rt__chrome_close(rt_export *e, const rt_span *s, size_t depth, int64_t t, int64_t dur, int how)
{
    (void)depth;
    (void)t;
    rt__chrome_state *cs = e->state;
    const rt_ex_fn *f = &e->fns[s->fid];
    rt_ex_sep(e);
    rt_ex_bytes(e, f->pre, f->pre_len);
    rt_ex_bytes(e, cs->tpre, cs->tpre_len);
    uint8_t *p = rt_ex_reserve(e, 128);
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
    rt_ex_commit(e, p);
    return e->err;
}

static void rt__chrome_finish(rt_export *e)
{
    rt_ex_str(e, "\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"exporter\":");
    rt_ex_jstr(e, e->exporter ? e->exporter : "retracer");
    rt_ex_str(e, ",\"trace\":");
    rt_ex_jstr(e, e->name);
    rt_ex_str(e, "}}\n");
}

const rt_export_ops rt_export_chrome_ops = {
    .name = "chrome",
    .state_size = sizeof(rt__chrome_state),
    .free_state = rt__chrome_free_state,
    .fn_ready = rt__chrome_fn_ready,
    .header = rt__chrome_header,
    .thread_begin = rt__chrome_thread_begin,
    .close = rt__chrome_close,
    .finish = rt__chrome_finish,
};
