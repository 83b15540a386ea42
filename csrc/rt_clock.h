/*
 * rt_clock.h -- a monotonic nanosecond clock.
 *
 * On x86-64 with an invariant TSC the clock reads the time-stamp counter
 * (~8 ns here, against ~45 ns for clock_gettime) and converts ticks to
 * nanoseconds with a factor calibrated against CLOCK_MONOTONIC. Elsewhere it
 * is CLOCK_MONOTONIC. Values are nanoseconds since the clock's origin (the
 * moment rt_clock_init ran), so they fit comfortably in int64.
 */
#ifndef RT_CLOCK_H
#define RT_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "rt_common.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define RT_CLOCK_TSC 1
#include <x86intrin.h>
#endif

typedef struct rt_clock {
    int use_tsc;          /* 1: read the TSC; 0: read CLOCK_MONOTONIC */
    uint64_t tsc0;        /* TSC value at the origin (ticks) */
    double ns_per_tick;   /* calibrated conversion factor (ns per TSC tick) */
    int64_t mono0;        /* CLOCK_MONOTONIC at the origin (ns) */
} rt_clock;

/*
 * Initialise the clock. `calibrate_ns` is how long to spend measuring the TSC
 * rate (e.g. 5000000 for 5 ms); 0 or a CPU without an invariant TSC selects
 * CLOCK_MONOTONIC. Always succeeds.
 */
void rt_clock_init(rt_clock *c, int64_t calibrate_ns, int allow_tsc);

/* Nanoseconds of CLOCK_MONOTONIC (absolute, for calibration and metadata). */
int64_t rt_clock_monotonic_ns(void);

/* Current time in ns since the origin. Safe from any thread. */
RT_INLINE int64_t rt_clock_now(const rt_clock *c)
{
#ifdef RT_CLOCK_TSC
    if (RT_LIKELY(c->use_tsc))
        return (int64_t)((double)(__rdtsc() - c->tsc0) * c->ns_per_tick);
#endif
    return rt_clock_monotonic_ns() - c->mono0;
}

/* A short description of the clock in use ("tsc" or "monotonic"). */
const char *rt_clock_name(const rt_clock *c);

#endif
