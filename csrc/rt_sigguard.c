/* rt_sigguard.c -- see rt_sigguard.h. */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE /* SIGEV_THREAD_ID, syscall(SYS_gettid) */
#endif

#include "rt_sigguard.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__)
#include <sys/syscall.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

static struct sigaction g_wrapped;     /* the handler the guard calls */
static int g_signo;                    /* 0: no guard */
static pid_t g_owner;                  /* the process whose timer g_timer is */
static timer_t g_timer;
static volatile sig_atomic_t g_armed;  /* 1 until ack: deliveries re-arm the timer */
static volatile long g_resends;
static long g_period_ns;

static void guard_handler(int sig, siginfo_t *info, void *ctx)
{
    int saved = errno;
    if (g_wrapped.sa_flags & SA_SIGINFO) {
        if (g_wrapped.sa_sigaction)
            g_wrapped.sa_sigaction(sig, info, ctx);
    } else if (g_wrapped.sa_handler != SIG_DFL && g_wrapped.sa_handler != SIG_IGN) {
        g_wrapped.sa_handler(sig);
    }
    if (g_armed && g_owner == getpid()) {
        if (info && info->si_code == SI_TIMER)
            g_resends = g_resends + 1;
        struct itimerspec its;
        memset(&its, 0, sizeof its);
        its.it_value.tv_sec = g_period_ns / 1000000000L;
        its.it_value.tv_nsec = g_period_ns % 1000000000L;
        timer_settime(g_timer, 0, &its, NULL); /* async-signal-safe (POSIX) */
    }
    errno = saved;
}

static void disarm(void)
{
    g_armed = 0;
    if (g_signo && g_owner == getpid()) {
        struct itimerspec zero;
        memset(&zero, 0, sizeof zero);
        timer_settime(g_timer, 0, &zero, NULL);
    }
}

void rt_sigguard_remove(void)
{
    disarm();
    if (!g_signo)
        return;
    struct sigaction cur;
    if (sigaction(g_signo, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == guard_handler)
        sigaction(g_signo, &g_wrapped, NULL);
    if (g_owner == getpid())
        timer_delete(g_timer);
    g_signo = 0;
}

int rt_sigguard_install(int signo, long period_ns)
{
    if (signo <= 0 || period_ns <= 0) {
        errno = EINVAL;
        return -1;
    }
    if (g_signo && g_owner != getpid())
        g_signo = 0; /* a forked child's copy of its parent's guard: its timer is not ours */
    rt_sigguard_remove();
    struct sigaction cur;
    if (sigaction(signo, NULL, &cur) != 0)
        return -1;
    if (!(cur.sa_flags & SA_SIGINFO) && (cur.sa_handler == SIG_DFL || cur.sa_handler == SIG_IGN)) {
        errno = EINVAL;
        return -1;
    }
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = signo;
    sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0)
        return -1;
    g_wrapped = cur;
    g_timer = timer;
    g_owner = getpid();
    g_period_ns = period_ns;
    g_resends = 0;
    g_armed = 1;
    g_signo = signo;
    struct sigaction mine = cur; /* the same mask and flags as the handler it wraps */
    mine.sa_flags |= SA_SIGINFO;
    mine.sa_sigaction = guard_handler;
    if (sigaction(signo, &mine, NULL) != 0) {
        int e = errno;
        timer_delete(timer);
        g_signo = 0;
        errno = e;
        return -1;
    }
    return 0;
}

void rt_sigguard_ack(void)
{
    disarm();
}

long rt_sigguard_resends(void)
{
    return g_resends;
}

#else /* not Linux */

int rt_sigguard_install(int signo, long period_ns)
{
    (void)signo;
    (void)period_ns;
    errno = ENOSYS;
    return -1;
}

void rt_sigguard_ack(void) {}
void rt_sigguard_remove(void) {}
long rt_sigguard_resends(void) { return 0; }

#endif
