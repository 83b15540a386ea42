/* rt_capture.c -- the capture selection policy (see rt_capture.h). */
#include <string.h>

#include "rt_capture.h"

void rt_capture_config_default(rt_capture_config *cfg, uint32_t max_count)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_count = max_count;
    cfg->shape_share = max_count / 4;
    cfg->quiet_looks = RT_CAPTURE_QUIET_LOOKS;
    cfg->max_stride = RT_CAPTURE_MAX_STRIDE;
    cfg->max_shapes = RT_CAPTURE_MAX_SHAPES;
}

void rt_capture_init(rt_capture *p, const rt_capture_config *cfg, const rt_allocator *alloc)
{
    memset(p, 0, sizeof *p);
    p->cfg = *cfg;
    if (p->cfg.shape_share > p->cfg.max_count)
        p->cfg.shape_share = p->cfg.max_count;
    if (p->cfg.max_stride == 0)
        p->cfg.max_stride = 1;
    p->alloc = alloc;
}

void rt_capture_free(rt_capture *p)
{
    if (!p->alloc)
        return; /* never initialised (all zero): nothing to release */
    for (uint32_t i = 0; i < p->nfuncs; i++)
        rt_free(p->alloc, p->fns[i].sigs);
    rt_free(p->alloc, p->fns);
    rt_free(p->alloc, p->left);
    const rt_allocator *a = p->alloc;
    rt_capture_config cfg = p->cfg;
    memset(p, 0, sizeof *p);
    p->alloc = a;
    p->cfg = cfg;
}

int rt_capture_set_func(rt_capture *p, uint32_t fid, int capturable)
{
    if (fid == UINT32_MAX)
        return RT_ERR_STATE;
    if (fid >= p->cap) {
        /* both arrays keep `cap` entries: grow a copy of the capacity for each */
        size_t cap_left = p->cap, cap_fns = p->cap, old = p->cap;
        if (rt_grow(p->alloc, (void **)&p->left, &cap_left, (size_t)fid + 1, sizeof *p->left, 256) != RT_OK)
            return RT_ERR_NOMEM;
        if (rt_grow(p->alloc, (void **)&p->fns, &cap_fns, cap_left, sizeof *p->fns, 256) != RT_OK)
            return RT_ERR_NOMEM; /* `left` is larger, still consistent with cap */
        memset(p->left + old, 0, (cap_left - old) * sizeof *p->left);
        memset(p->fns + old, 0, (cap_left - old) * sizeof *p->fns);
        p->cap = cap_left;
    }
    /* entries past nfuncs are zero (never looked at) since the array grew */
    rt_capture_fn *c = &p->fns[fid];
    rt_free(p->alloc, c->sigs);
    memset(c, 0, sizeof *c);
    if (capturable && p->cfg.max_count > 0) {
        c->first_left = p->cfg.max_count - p->cfg.shape_share;
        c->shape_left = p->cfg.shape_share;
        c->stride = 1;
    }
    p->left[fid] = c->stride ? 1 : 0;
    if (fid >= p->nfuncs)
        p->nfuncs = fid + 1;
    return RT_OK;
}

static int rt__known(const rt_capture_fn *c, uint64_t sig)
{
    for (size_t i = 0; i < c->nsig; i++)
        if (c->sigs[i] == sig)
            return 1;
    return 0;
}

static void rt__remember(rt_capture *p, rt_capture_fn *c, uint64_t sig)
{
    if (c->nsig >= p->cfg.max_shapes ||
        rt_grow(p->alloc, (void **)&c->sigs, &c->capsig, c->nsig + 1, sizeof *c->sigs, 16) != RT_OK) {
        p->lost_shapes++;
        return;
    }
    c->sigs[c->nsig++] = sig;
}

/* When to look next: after `stride` calls while budget is left, else never. */
static void rt__rearm(rt_capture *p, uint32_t fid, const rt_capture_fn *c)
{
    p->left[fid] = (c->first_left || c->shape_left) ? c->stride : 0;
}

void rt_capture_set_time_budget(rt_capture *p, uint32_t share_ppm, uint64_t grace_ns, int64_t t_start)
{
    p->share_ppm = share_ppm;
    p->grace_ns = grace_ns;
    p->t_start = t_start;
}

int rt_capture_over_time(const rt_capture *p, int64_t now)
{
    uint64_t spent = p->spent_ns > p->refund_ns ? p->spent_ns - p->refund_ns : 0;
    if (!p->share_ppm || spent <= p->grace_ns)
        return 0;
    uint64_t elapsed = now > p->t_start ? (uint64_t)(now - p->t_start) : 0;
    /* share * elapsed without overflow (elapsed * ppm passes 2^64 after five hours) */
    uint64_t allowed = elapsed / 1000000u * p->share_ppm + elapsed % 1000000u * p->share_ppm / 1000000u;
    return spent > allowed;
}

int rt_capture_throttle(rt_capture *p, uint32_t fid, int64_t now)
{
    rt_capture_fn *c = &p->fns[fid];
    if (!(c->first_left || c->shape_left) || !rt_capture_over_time(p, now))
        return 0;
    /* over the time budget: skipped, the function's budget and shapes untouched */
    p->looks++;
    if (!p->throttled)
        p->first_throttled = now;
    p->throttled++;
    rt__rearm(p, fid, c);
    return 1;
}

int rt_capture_decide(rt_capture *p, uint32_t fid, const rt_capture_call *call)
{
    rt_capture_fn *c = &p->fns[fid];
    int shapes = rt_capture_uses_shapes(p);
    int why;
    if (rt_capture_throttle(p, fid, call->now))
        return RT_CAPTURE_SKIP;
    p->looks++;
    if (c->first_left) {
        c->first_left--;
        if (shapes && !rt__known(c, call->sig))
            rt__remember(p, c, call->sig);
        why = RT_CAPTURE_FIRST;
    } else if (c->shape_left && !rt__known(c, call->sig)) {
        c->shape_left--;
        c->quiet = 0;
        c->stride = 1;
        rt__remember(p, c, call->sig);
        why = RT_CAPTURE_SHAPE;
    } else {
        /* a known shape (or no budget left): look less often while nothing new comes */
        if (p->cfg.quiet_looks && ++c->quiet % p->cfg.quiet_looks == 0 && c->stride < p->cfg.max_stride) {
            c->stride *= 2;
            if (c->stride > p->cfg.max_stride)
                c->stride = p->cfg.max_stride;
        }
        rt__rearm(p, fid, c);
        return RT_CAPTURE_SKIP;
    }
    p->kept++;
    rt__rearm(p, fid, c);
    return why;
}

void rt_capture_unseen(rt_capture *p, uint32_t fid)
{
    p->looks++;
    rt__rearm(p, fid, &p->fns[fid]);
}

const char *rt_capture_reason(int why)
{
    switch (why) {
    case RT_CAPTURE_FIRST:
        return "first";
    case RT_CAPTURE_SHAPE:
        return "shape";
    default:
        return "skip";
    }
}
