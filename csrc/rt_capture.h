/*
 * rt_capture.h -- the capture selection policy: which calls of a function
 * have their arguments, result and exception recorded.
 *
 * Recording a call's values costs far more than tracing it, so capture keeps
 * a sample of each function's calls, chosen by this policy. It is plain C so
 * that every binding (CPython today; others later) keeps the same calls. The
 * binding computes what only it can see -- a *shape signature* of the call's
 * arguments, a uint64 hash it defines (README "Which calls are kept" says what
 * the CPython binding puts in it) -- and the policy decides.
 *
 * The rules (one rt_capture per session, state per function id):
 *
 *   budget     each capturable function has `max_count` kept calls. The first
 *              `max_count - shape_share` calls are kept whatever they are
 *              (RT_CAPTURE_FIRST); after that a call is kept only if its
 *              signature differs from the signature of every call looked at
 *              so far (RT_CAPTURE_SHAPE), until `shape_share` more are kept.
 *              Then the function is never looked at again.
 *   shapes     the distinct signatures of the calls kept are remembered per
 *              function, at most `max_shapes` of them; a signature that
 *              cannot be remembered (table full, or out of memory) stays new.
 *   back-off   in the second part, looking at a call costs the binding its
 *              signature, so after every `quiet_looks` looks without a new
 *              signature the policy looks at every 2nd call, then every 4th,
 *              ... up to every `max_stride`-th; a new signature brings it back
 *              to every call.
 *   time       optional (rt_capture_set_time_budget): while the capture time
 *              the binding reported (rt_capture_spend) is over `grace_ns` and
 *              over `share_ppm` millionths of the time since `t_start`, every
 *              call is skipped (RT_CAPTURE_SKIP, counted in `throttled`)
 *              without spending any function's budget; capture resumes when
 *              the run has caught up. So capture never costs more than its
 *              share of the run at any moment, and calls late in the run are
 *              still kept.
 *
 * Use, on every call of function `fid` (the hot path is one load and one
 * branch while the countdown runs):
 *
 *     if (p->left != NULL && rt_capture_look(p, fid) && !rt_capture_throttle(p, fid, now)) {
 *         rt_capture_call c = {0};
 *         c.sig = ...;                            only if rt_capture_uses_shapes(p)
 *         int why = rt_capture_decide(p, fid, &c); RT_CAPTURE_SKIP or why it is kept
 *     }
 *
 * and rt_capture_unseen(p, fid) instead of decide when the binding could not
 * read the call's arguments. Later rules (value-aware signatures, recursion,
 * sampling over time) extend rt_capture_call and rt_capture_config and add
 * reasons; callers that zero-initialise both keep today's behaviour.
 *
 * Threading: not thread-safe; the binding serialises calls (the GIL does).
 * Memory: per function 40 bytes plus its remembered signatures, allocated
 * through the rt_allocator given to rt_capture_init.
 */
#ifndef RT_CAPTURE_H
#define RT_CAPTURE_H

#include "rt_common.h"

/* Why a call is kept (rt_capture_decide); RT_CAPTURE_SKIP: it is not. */
enum {
    RT_CAPTURE_SKIP = 0,
    RT_CAPTURE_FIRST = 1,  /* one of the function's first calls */
    RT_CAPTURE_SHAPE = 2,  /* its shape signature was new for the function */
};

/* The defaults of rt_capture_config_default. */
#define RT_CAPTURE_QUIET_LOOKS 1024u
#define RT_CAPTURE_MAX_STRIDE 64u
#define RT_CAPTURE_MAX_SHAPES 4096u

typedef struct rt_capture_config {
    uint32_t max_count;    /* calls kept per function; 0 keeps none */
    uint32_t shape_share;  /* of them, the calls kept only for a new signature
                              (at most max_count); 0: no signatures at all */
    uint32_t quiet_looks;  /* looks without a new signature before the stride doubles; 0: never doubles */
    uint32_t max_stride;   /* the largest stride (1: always every call) */
    uint32_t max_shapes;   /* signatures remembered per function */
} rt_capture_config;

/* What the binding knows of one call. Zero-initialise, then set the fields. */
typedef struct rt_capture_call {
    uint64_t sig;          /* shape signature of the arguments; read only when
                              rt_capture_uses_shapes() */
    int64_t now;           /* the time of the call (the clock of t_start); read
                              only with a time budget */
} rt_capture_call;

/* Policy state of one function. Read-only outside rt_capture.c. */
typedef struct rt_capture_fn {
    uint32_t first_left;   /* calls still kept unconditionally */
    uint32_t shape_left;   /* calls still kept for a new signature */
    uint32_t stride;       /* look at every stride-th call (1..max_stride); 0: not capturable */
    uint32_t quiet;        /* looks without a new signature since the last new one */
    uint64_t *sigs;        /* owned; the remembered signatures, `nsig` of `capsig` */
    size_t nsig, capsig;
} rt_capture_fn;

/* The policy of one session. The caller owns the struct; fields are
 * read-only outside rt_capture.c (`left` is read by rt_capture_look). */
typedef struct rt_capture {
    uint32_t *left;            /* owned; per fid: calls until the next look (1: the
                                  next call; 0: never again). NULL before the first
                                  rt_capture_set_func. `cap` entries */
    rt_capture_fn *fns;        /* owned; per fid state, `cap` entries */
    size_t cap;                /* entries of left and fns */
    uint32_t nfuncs;           /* 1 + highest fid set */
    rt_capture_config cfg;     /* copied, normalised (shape_share <= max_count, max_stride >= 1) */
    const rt_allocator *alloc; /* borrowed; must outlive the policy */
    uint64_t kept;             /* calls kept so far, all functions */
    uint64_t looks;            /* calls looked at so far (decide + unseen) */
    uint64_t lost_shapes;      /* signatures not remembered (table full or out of memory) */
    /* the time budget (all 0: none) */
    uint32_t share_ppm;        /* capture's share of the run, millionths; 0: no time budget */
    uint64_t grace_ns;         /* capture time always allowed */
    int64_t t_start;           /* when the run started */
    uint64_t spent_ns;         /* capture time reported so far */
    uint64_t refund_ns;        /* of it, one-time costs that do not count */
    uint64_t throttled;        /* calls skipped because capture was over its share */
    int64_t first_throttled;   /* `now` of the first of them (valid when throttled > 0) */
} rt_capture;

/* The configuration of README "Which calls are kept" for a budget of
 * `max_count`: shape_share = max_count / 4, quiet_looks 1024, max_stride 64,
 * max_shapes 4096. */
void rt_capture_config_default(rt_capture_config *cfg, uint32_t max_count);

/* Initialise an empty policy (no allocation). `cfg` is copied. */
void rt_capture_init(rt_capture *p, const rt_capture_config *cfg, const rt_allocator *alloc);

/* Release everything; the policy is empty and can be used or initialised
 * again. A zero-filled struct (never initialised) is accepted. */
void rt_capture_free(rt_capture *p);

/*
 * Declare function `fid` (dense ids from 0, chosen by the caller) before its
 * first call: `capturable` 0 means its calls are never looked at. Declaring a
 * fid again starts it afresh. RT_OK, RT_ERR_NOMEM (the policy is unchanged)
 * or RT_ERR_STATE (fid UINT32_MAX).
 */
int rt_capture_set_func(rt_capture *p, uint32_t fid, int capturable);

/* 1 when the decision reads rt_capture_call.sig (shape_share > 0): the
 * binding computes signatures only then. */
RT_INLINE int rt_capture_uses_shapes(const rt_capture *p) { return p->cfg.shape_share > 0; }

/*
 * Count a call of `fid` (declared, and p->left != NULL): 1 when the policy
 * wants to look at this call (then call rt_capture_decide or
 * rt_capture_unseen), 0 otherwise.
 */
RT_INLINE int rt_capture_look(rt_capture *p, uint32_t fid)
{
    uint32_t *l = &p->left[fid];
    return *l != 0 && --*l == 0;
}

/*
 * Before reading the arguments of the call rt_capture_look asked for (which
 * costs the binding a tuple and a signature): 1 when capture is over its time
 * budget at `now` -- the call is skipped and counted in `throttled` as
 * rt_capture_decide would, and the binding stops there --, 0 when it is not
 * (then call rt_capture_decide).
 */
int rt_capture_throttle(rt_capture *p, uint32_t fid, int64_t now);

/*
 * The call of `fid` rt_capture_look asked for: RT_CAPTURE_FIRST or
 * RT_CAPTURE_SHAPE when it is kept (the binding records it), RT_CAPTURE_SKIP
 * when not. Sets when the policy looks again. Never fails: a signature that
 * cannot be remembered is counted in lost_shapes.
 */
int rt_capture_decide(rt_capture *p, uint32_t fid, const rt_capture_call *call);

/* The call of `fid` rt_capture_look asked for could not be looked at (its
 * arguments were not readable): nothing is kept, the next look is as if the
 * call had not been asked for. */
void rt_capture_unseen(rt_capture *p, uint32_t fid);

/* Give the policy a time budget: capture may take `share_ppm` millionths of
 * the time since `t_start` (0: no budget), and `grace_ns` in any case. */
void rt_capture_set_time_budget(rt_capture *p, uint32_t share_ppm, uint64_t grace_ns, int64_t t_start);

/* The binding spent `ns` capturing (a call's values, its end, a yield). */
RT_INLINE void rt_capture_spend(rt_capture *p, uint64_t ns) { p->spent_ns += ns; }

/* Of the time spent, `ns` was a one-time cost that is not capture's share of
 * the run (the binding loading a library on first need). */
RT_INLINE void rt_capture_refund(rt_capture *p, uint64_t ns) { p->refund_ns += ns; }

/* 1 when capture is over its time budget at `now`. */
int rt_capture_over_time(const rt_capture *p, int64_t now);

/* "first", "shape" (or "skip") for an RT_CAPTURE_* value; static storage. */
const char *rt_capture_reason(int why);

#endif
