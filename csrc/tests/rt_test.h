/*
 * rt_test.h -- a tiny unit-test framework for the retracer C engine.
 *
 * CHECK* macros record a failure (with file:line) and let the test go on.
 * Each test is a `void fn(void)` run through RT_RUN(fn) from a suite
 * function; the runner prints one line per test and, at the end, exactly
 *
 *     N passed, M failed
 *
 * (N and M count tests), which is the line CI reads. The process exits
 * non-zero when a test failed.
 *
 * Exactly one translation unit defines RT_TEST_MAIN before including this
 * header: it gets the framework's state and helpers and writes main() with
 * rt_test_begin() / suites / rt_test_end().
 *
 * Optional arguments of the test binary select tests whose name contains
 * one of them (e.g. `rt_tests generator`).
 */
#ifndef RT_TEST_H
#define RT_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*rt_test_fn)(void);

#if defined(__GNUC__)
#define RT_TEST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RT_TEST_PRINTF(f, a)
#endif

/* Record the outcome of one check; returns `ok` so checks can guard code. */
int rt_test_check(int ok, const char *file, int line, const char *fmt, ...) RT_TEST_PRINTF(4, 5);
/* Run one test (skipped if it does not match the command-line filter). */
void rt_test_run(const char *name, rt_test_fn fn);
void rt_test_begin(int argc, char **argv);
/* Print the final line; returns the process exit status. */
int rt_test_end(void);

#define RT_RUN(fn) rt_test_run(#fn, fn)

#define CHECK(cond) rt_test_check(!!(cond), __FILE__, __LINE__, "CHECK(%s)", #cond)

#define CHECK_MSG(cond, ...) rt_test_check(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* Unsigned / signed equality with both values in the failure message. */
#define CHECK_EQ_U(a, b)                                                                     \
    do {                                                                                     \
        uint64_t rt__a = (uint64_t)(a), rt__b = (uint64_t)(b);                               \
        rt_test_check(rt__a == rt__b, __FILE__, __LINE__, "CHECK_EQ_U(%s, %s): %" PRIu64     \
                      " != %" PRIu64, #a, #b, rt__a, rt__b);                                 \
    } while (0)

#define CHECK_EQ_I(a, b)                                                                     \
    do {                                                                                     \
        int64_t rt__a = (int64_t)(a), rt__b = (int64_t)(b);                                  \
        rt_test_check(rt__a == rt__b, __FILE__, __LINE__, "CHECK_EQ_I(%s, %s): %" PRId64     \
                      " != %" PRId64, #a, #b, rt__a, rt__b);                                 \
    } while (0)

/* Stop the current test when a check fails (for checks guarding later code). */
#define REQUIRE(cond)                                                                        \
    do {                                                                                     \
        if (!CHECK_MSG((cond), "REQUIRE(%s)", #cond))                                        \
            return;                                                                          \
    } while (0)

#ifdef RT_TEST_MAIN
#include <stdarg.h>

static int rt__argc;
static char **rt__argv;
static int rt__passed, rt__failed;
static int rt__cur_failures;
static const char *rt__cur_name = "";

int rt_test_check(int ok, const char *file, int line, const char *fmt, ...)
{
    if (ok)
        return 1;
    va_list ap;
    rt__cur_failures++;
    if (rt__cur_failures <= 20) {
        printf("    %s:%d: [%s] ", file, line, rt__cur_name);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf(" failed\n");
    } else if (rt__cur_failures == 21) {
        printf("    [%s] ... more failures not shown\n", rt__cur_name);
    }
    return 0;
}

void rt_test_begin(int argc, char **argv)
{
    rt__argc = argc;
    rt__argv = argv;
    setvbuf(stdout, NULL, _IOLBF, 0);
}

void rt_test_run(const char *name, rt_test_fn fn)
{
    if (rt__argc > 1) {
        int match = 0;
        for (int i = 1; i < rt__argc; i++)
            if (strstr(name, rt__argv[i]))
                match = 1;
        if (!match)
            return;
    }
    rt__cur_name = name;
    rt__cur_failures = 0;
    fn();
    if (rt__cur_failures) {
        rt__failed++;
        printf("FAIL %s (%d failed checks)\n", name, rt__cur_failures);
    } else {
        rt__passed++;
        printf("ok   %s\n", name);
    }
    fflush(stdout);
}

int rt_test_end(void)
{
    printf("%d passed, %d failed\n", rt__passed, rt__failed);
    fflush(stdout);
    return rt__failed ? 1 : 0;
}
#endif /* RT_TEST_MAIN */

#endif
