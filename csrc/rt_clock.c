/* rt_clock.c -- clock calibration. */
#include <string.h>

#include "rt_clock.h"

int64_t rt_clock_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#ifdef RT_CLOCK_TSC
#include <cpuid.h>
static int rt__invariant_tsc(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u)
        return 0;
    __get_cpuid(0x80000007u, &a, &b, &c, &d);
    return (d >> 8) & 1; /* invariant TSC bit */
}
#endif

void rt_clock_init(rt_clock *c, int64_t calibrate_ns, int allow_tsc)
{
    memset(c, 0, sizeof *c);
    c->mono0 = rt_clock_monotonic_ns();
#ifdef RT_CLOCK_TSC
    if (allow_tsc && calibrate_ns > 0 && rt__invariant_tsc()) {
        int64_t m0 = rt_clock_monotonic_ns();
        uint64_t t0 = __rdtsc();
        int64_t m1;
        do {
            m1 = rt_clock_monotonic_ns();
        } while (m1 - m0 < calibrate_ns);
        uint64_t t1 = __rdtsc();
        if (t1 > t0) {
            c->ns_per_tick = (double)(m1 - m0) / (double)(t1 - t0);
            c->use_tsc = 1;
            c->tsc0 = t1;
            c->mono0 = m1;
        }
    }
#else
    (void)calibrate_ns;
    (void)allow_tsc;
#endif
}

const char *rt_clock_name(const rt_clock *c) { return c->use_tsc ? "tsc" : "monotonic"; }
