/* test_sigguard.c -- the guard that re-sends a signal to the thread that must
 * run its handler (rt_sigguard.h). SIGUSR1 stands for SIGTERM. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "rt_sigguard.h"
#include "rt_test.h"

#if defined(__linux__)

static volatile sig_atomic_t g_calls;

static void counting_handler(int sig)
{
    (void)sig;
    g_calls = g_calls + 1;
}

static void set_handler(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* sleep ms milliseconds whatever signals interrupt it */
static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) == -1 && errno == EINTR) {
    }
}

static void test_sigguard_needs_a_handler(void)
{
    set_handler(SIGUSR1, SIG_DFL);
    errno = 0;
    CHECK(rt_sigguard_install(SIGUSR1, 10000000L) == -1);
    CHECK_EQ_I(errno, EINVAL);
    struct sigaction cur;
    sigaction(SIGUSR1, NULL, &cur);
    CHECK(!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_DFL);
}

static void test_sigguard_resends_until_acked(void)
{
    g_calls = 0;
    set_handler(SIGUSR1, counting_handler);
    CHECK_EQ_I(rt_sigguard_install(SIGUSR1, 5000000L), 0);
    raise(SIGUSR1);
    CHECK_EQ_I(g_calls, 1);
    sleep_ms(120);
    long resends = rt_sigguard_resends();
    CHECK_MSG(resends >= 3, "resends = %ld in 120 ms at one per 5 ms", resends);
    CHECK_EQ_I(g_calls, 1 + resends);
    rt_sigguard_ack();
    sleep_ms(20); /* one already on its way may still arrive */
    sig_atomic_t after_ack = g_calls;
    sleep_ms(60);
    CHECK_EQ_I(g_calls, after_ack);
    rt_sigguard_remove();
    struct sigaction cur;
    sigaction(SIGUSR1, NULL, &cur);
    CHECK(!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == counting_handler);
    set_handler(SIGUSR1, SIG_DFL);
}

static void test_sigguard_leaves_a_newer_handler_alone(void)
{
    set_handler(SIGUSR1, counting_handler);
    CHECK_EQ_I(rt_sigguard_install(SIGUSR1, 5000000L), 0);
    set_handler(SIGUSR1, SIG_IGN); /* the program's own choice, made after the guard */
    rt_sigguard_remove();
    struct sigaction cur;
    sigaction(SIGUSR1, NULL, &cur);
    CHECK(!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN);
    set_handler(SIGUSR1, SIG_DFL);
}

static void *signal_myself(void *arg)
{
    (void)arg;
    sleep_ms(30);
    pthread_kill(pthread_self(), SIGUSR1); /* handled on this thread: the waiter is not woken */
    return NULL;
}

/* The bug it fixes: the signal is handled while the waiting thread is not in
 * its system call (here: on another thread). The waiter, which checks for a
 * handled signal only when its wait fails with EINTR, as CPython does, is
 * woken by the guard's re-send; without it, it would wait for the deadline. */
static void test_sigguard_wakes_a_waiter_that_missed_it(void)
{
    g_calls = 0;
    set_handler(SIGUSR1, counting_handler);
    CHECK_EQ_I(rt_sigguard_install(SIGUSR1, 5000000L), 0);
    sem_t never;
    sem_init(&never, 0, 0);
    pthread_t t;
    pthread_create(&t, NULL, signal_myself, NULL);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    int rc, err;
    do {
        rc = sem_timedwait(&never, &deadline);
        err = errno;
    } while (rc == -1 && err == EINTR && g_calls == 0);
    CHECK_EQ_I(rc, -1);
    CHECK_MSG(err == EINTR, "the wait ended with %s, not EINTR", strerror(err));
    CHECK(g_calls >= 1);
    rt_sigguard_ack();
    pthread_join(t, NULL);
    sem_destroy(&never);
    rt_sigguard_remove();
    set_handler(SIGUSR1, SIG_DFL);
}

void suite_sigguard(void)
{
    RT_RUN(test_sigguard_needs_a_handler);
    RT_RUN(test_sigguard_resends_until_acked);
    RT_RUN(test_sigguard_leaves_a_newer_handler_alone);
    RT_RUN(test_sigguard_wakes_a_waiter_that_missed_it);
}

#else

void suite_sigguard(void) {}

#endif
