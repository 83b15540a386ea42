/*
 * rt_sigguard.h -- a signal whose interpreter-level handler must run even when
 * it lands just before the main thread blocks in C.
 *
 * CPython's C handler only marks a signal; its Python handler runs when the
 * main thread next executes bytecode, or when a blocking call it is in fails
 * with EINTR. A signal that arrives between the interpreter's last check and
 * the blocking system call (sem_wait, read, ...), or on another thread, leaves
 * the main thread asleep with the handler pending for ever. retracer's SIGTERM
 * handler (it writes the trace, then ends the process as SIGTERM would) hit
 * this: a traced multiprocessing pool worker, terminated while it went back to
 * wait for a task, never ended. Without retracer SIGTERM's default action ends
 * the process whatever it is doing.
 *
 * The guard wraps the handler installed for `signo` (CPython's): it calls it,
 * then, until rt_sigguard_ack, arms a one-shot POSIX timer that sends the same
 * signal again to the thread that installed the guard (SIGEV_THREAD_ID) after
 * `period_ns`. A blocking call there fails with EINTR and the interpreter runs
 * the pending handler; every delivery re-arms the timer.
 *
 * Linux only (SIGEV_THREAD_ID); elsewhere rt_sigguard_install fails with
 * ENOSYS and nothing changes. One guard per process. After fork() the child's
 * guard (inherited handler, no timer: timers are not inherited) only calls
 * the wrapped handler.
 */
#ifndef RT_SIGGUARD_H
#define RT_SIGGUARD_H

/* Wrap the handler installed for `signo` (it must be a handler, not SIG_DFL or
 * SIG_IGN: EINVAL). 0, or -1 with errno. Call it from the thread that must be
 * woken (the interpreter's main thread). Installing again replaces the guard. */
int rt_sigguard_install(int signo, long period_ns);

/* The handler has started: no more re-sends. Async-signal-safe. */
void rt_sigguard_ack(void);

/* Put the wrapped handler back if the guard is still the installed one (a
 * handler set since is left alone) and delete the timer. Safe to call when no
 * guard is installed. */
void rt_sigguard_remove(void);

/* For tests: how many times the timer re-sent the signal since install. */
long rt_sigguard_resends(void);

#endif
