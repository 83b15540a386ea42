/* test_clock.c -- the monotonic clock (smoke test: no timing assertions
 * beyond "does not go backwards" and "advances across a sleep"). */
#include <time.h>

#include "../rt_clock.h"
#include "rt_test.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void check_clock(const rt_clock *c)
{
    int64_t prev = rt_clock_now(c);
    CHECK(prev >= 0);
    long backwards = 0;
    for (int i = 0; i < 100000; i++) {
        int64_t now = rt_clock_now(c);
        if (now < prev)
            backwards++;
        prev = now;
    }
    CHECK_EQ_I(backwards, 0);
    /* bracket each reading with CLOCK_MONOTONIC so preemption cannot fool
     * the check: the elapsed time lies in [mc - mb, md - ma] */
    int64_t ma = rt_clock_monotonic_ns();
    int64_t c0 = rt_clock_now(c);
    int64_t mb = rt_clock_monotonic_ns();
    sleep_ms(20);
    int64_t mc = rt_clock_monotonic_ns();
    int64_t c1 = rt_clock_now(c);
    int64_t md = rt_clock_monotonic_ns();
    CHECK(mc - mb >= 20000000);
    /* very loose bounds: a TSC calibrated in 2 ms is far better than 2x */
    CHECK_MSG(c1 - c0 >= (mc - mb) / 2 && c1 - c0 <= (md - ma) * 2,
              "clock advanced %" PRId64 " ns while monotonic advanced %" PRId64 "..%" PRId64, c1 - c0,
              mc - mb, md - ma);
}

static void test_clock_monotonic(void)
{
    rt_clock c;
    rt_clock_init(&c, 0, 1);
    CHECK_EQ_I(c.use_tsc, 0);
    CHECK(strcmp(rt_clock_name(&c), "monotonic") == 0);
    check_clock(&c);
    rt_clock_init(&c, 1000000, 0); /* TSC not allowed */
    CHECK_EQ_I(c.use_tsc, 0);
    check_clock(&c);
}

static void test_clock_calibrated(void)
{
    rt_clock c;
    rt_clock_init(&c, 2000000, 1);
    const char *name = rt_clock_name(&c);
    CHECK(strcmp(name, c.use_tsc ? "tsc" : "monotonic") == 0);
    if (c.use_tsc)
        CHECK(c.ns_per_tick > 0.0);
    check_clock(&c);
}

void suite_clock(void)
{
    RT_RUN(test_clock_monotonic);
    RT_RUN(test_clock_calibrated);
}
