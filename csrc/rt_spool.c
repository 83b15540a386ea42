/*
 * rt_spool.c -- the call-stream spool writer (see rt_spool.h).
 *
 * A ring of RT_SPOOL_SLOTS slots. The producer copies a chunk into the next
 * free slot (growing the slot's buffers as needed) and signals; the
 * background thread compresses the oldest full slot, writes it, marks it
 * free and signals back. The lock is held only to move slots between the
 * two sides, never while compressing or writing.
 */
#define _GNU_SOURCE 1 /* syscall(SYS_gettid) */
#include "rt_spool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#ifdef __linux__
#include <sys/syscall.h>
#endif

typedef struct {
    uint8_t *data;      /* the chunk as the engine encoded it */
    size_t dcap;
    uint8_t *out;       /* header + compressed bytes */
    size_t ocap;
    size_t len;
    uint32_t thread_idx, seq;
    uint64_t n_events;
} rt_spool_slot;

struct rt_spool {
    const rt_allocator *alloc;
    int fd;
    int level;
    int threaded;               /* the level asks for the background thread */
    int running;                /* ... and it exists (not paused) */
    int resume;                 /* paused, to be started again at the next put (rt_spool_resume) */
    long tid;                   /* its kernel thread id (Linux), 0 when unknown */
    int err;                    /* sticky: RT_OK or the first error */
    uint64_t stored, raw;
    rt_spool_slot slots[RT_SPOOL_SLOTS];
    unsigned head, count;       /* oldest full slot, number of full slots */
    int busy;                   /* the thread is writing slot `head` (still counted) */
    int closing;
    pthread_mutex_t mu;
    pthread_cond_t full_cv;     /* a slot was filled, or closing */
    pthread_cond_t free_cv;     /* a slot was freed */
    pthread_t thread;
};

static int rt__write_all(int fd, const uint8_t *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void rt__header(uint8_t *h, const rt_spool_slot *s, uint64_t stored, uint32_t codec)
{
    uint32_t raw = (uint32_t)s->len;
    memcpy(h, &s->thread_idx, 4);
    memcpy(h + 4, &s->seq, 4);
    memcpy(h + 8, &stored, 8);
    memcpy(h + 16, &s->n_events, 8);
    memcpy(h + 24, &raw, 4);
    memcpy(h + 28, &codec, 4);
}

/* Compress (when it helps) and write one slot; returns RT_OK or RT_ERR_IO. */
static int rt__write_slot(rt_spool *sp, rt_spool_slot *s, int compress, uint64_t *stored_out)
{
    uint8_t *h = s->out;
    if (compress && sp->level > 0) {
        uLongf zlen = (uLongf)(s->ocap - RT_SPOOL_HEADER_BYTES);
        if (compress2(s->out + RT_SPOOL_HEADER_BYTES, &zlen, s->data, (uLong)s->len, sp->level) == Z_OK &&
            zlen < s->len) {
            rt__header(h, s, zlen, RT_SPOOL_ZLIB);
            *stored_out = zlen;
            return rt__write_all(sp->fd, s->out, RT_SPOOL_HEADER_BYTES + (size_t)zlen) ? RT_ERR_IO : RT_OK;
        }
    }
    rt__header(h, s, s->len, RT_SPOOL_RAW);
    *stored_out = s->len;
    if (rt__write_all(sp->fd, h, RT_SPOOL_HEADER_BYTES) || rt__write_all(sp->fd, s->data, s->len))
        return RT_ERR_IO;
    return RT_OK;
}

static void *rt__spool_main(void *arg)
{
    rt_spool *sp = arg;
    pthread_mutex_lock(&sp->mu);
#ifdef __linux__
    sp->tid = (long)syscall(SYS_gettid);
#endif
    for (;;) {
        while (sp->count == 0 && !sp->closing)
            pthread_cond_wait(&sp->full_cv, &sp->mu);
        if (sp->count == 0)
            break;  /* closing and drained */
        rt_spool_slot *s = &sp->slots[sp->head];
        int failed = sp->err != RT_OK;
        sp->busy = 1;
        pthread_mutex_unlock(&sp->mu);
        uint64_t stored = 0;
        int rc = failed ? RT_OK : rt__write_slot(sp, s, 1, &stored);
        pthread_mutex_lock(&sp->mu);
        sp->busy = 0;
        if (rc != RT_OK && sp->err == RT_OK)
            sp->err = rc;
        if (!failed && rc == RT_OK) {
            sp->stored += RT_SPOOL_HEADER_BYTES + stored;
            sp->raw += s->len;
        }
        sp->head = (sp->head + 1) % RT_SPOOL_SLOTS;
        sp->count--;
        pthread_cond_signal(&sp->free_cv);
    }
    pthread_mutex_unlock(&sp->mu);
    return NULL;
}

/* Start the background thread; 0 or pthread_create's error. */
static int rt__start_thread(rt_spool *sp)
{
    /* the writer thread takes no signals: a process-directed signal delivered to it
     * would not interrupt the main thread's blocking call (Python runs its handlers
     * there), and a SIGTERM could wait for ever behind a sem_wait */
    sigset_t all, old;
    sigfillset(&all);
    sp->tid = 0;
    sp->closing = 0;
    int masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    int created = pthread_create(&sp->thread, NULL, rt__spool_main, sp);
    if (masked)
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    sp->running = created == 0;
    return created;
}

/* Stop the thread after it wrote every queued chunk. */
static void rt__stop_thread(rt_spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    sp->closing = 1;
    pthread_cond_signal(&sp->full_cv);
    pthread_mutex_unlock(&sp->mu);
    pthread_join(sp->thread, NULL);
    sp->running = 0;
    sp->closing = 0;
}

rt_spool *rt_spool_open(int fd, int level, const rt_allocator *alloc)
{
    if (level < 0 || level > 9)
        level = 1;
    rt_spool *sp = rt_malloc(alloc, sizeof *sp);
    if (!sp)
        return NULL;
    memset(sp, 0, sizeof *sp);
    sp->alloc = alloc;
    sp->fd = fd;
    sp->level = level;
    sp->threaded = level > 0;
    if (sp->threaded) {
        if (pthread_mutex_init(&sp->mu, NULL) != 0) {
            rt_free(alloc, sp);
            return NULL;
        }
        if (pthread_cond_init(&sp->full_cv, NULL) != 0) {
            pthread_mutex_destroy(&sp->mu);
            rt_free(alloc, sp);
            return NULL;
        }
        if (pthread_cond_init(&sp->free_cv, NULL) != 0) {
            pthread_cond_destroy(&sp->full_cv);
            pthread_mutex_destroy(&sp->mu);
            rt_free(alloc, sp);
            return NULL;
        }
        if (rt__start_thread(sp) != 0) {
            pthread_cond_destroy(&sp->free_cv);
            pthread_cond_destroy(&sp->full_cv);
            pthread_mutex_destroy(&sp->mu);
            rt_free(alloc, sp);
            return NULL;
        }
    }
    return sp;
}

/* Make slot `s` hold `len` bytes and their compressed form; RT_ERR_NOMEM leaves it as it was. */
static int rt__slot_room(rt_spool *sp, rt_spool_slot *s, size_t len)
{
    size_t out_need = RT_SPOOL_HEADER_BYTES + (sp->level > 0 ? (size_t)compressBound((uLong)len) : 0);
    if (s->dcap < len) {
        uint8_t *d = rt_realloc(sp->alloc, s->data, len);
        if (!d)
            return RT_ERR_NOMEM;
        s->data = d;
        s->dcap = len;
    }
    if (s->ocap < out_need) {
        uint8_t *o = rt_realloc(sp->alloc, s->out, out_need);
        if (!o)
            return RT_ERR_NOMEM;
        s->out = o;
        s->ocap = out_need;
    }
    return RT_OK;
}

int rt_spool_put(rt_spool *sp, uint32_t thread_idx, uint32_t seq, const uint8_t *data, size_t len,
                 uint64_t n_events)
{
    if (!sp->running && sp->resume) {  /* the first chunk after a fork: the thread again */
        sp->resume = 0;
        (void)rt__start_thread(sp);       /* no thread: written here, raw, as while paused */
    }
    if (!sp->running) {  /* no thread (level 0, or paused): written here, raw */
        if (sp->err != RT_OK)
            return sp->err;
        rt_spool_slot *s = &sp->slots[0];
        int rc = rt__slot_room(sp, s, 0);  /* the header buffer */
        if (rc != RT_OK)
            return sp->err = rc;
        s->thread_idx = thread_idx;
        s->seq = seq;
        s->n_events = n_events;
        s->len = len;
        uint8_t *keep = s->data;
        s->data = (uint8_t *)data;  /* written straight from the caller's buffer */
        uint64_t stored = 0;
        rc = rt__write_slot(sp, s, 0, &stored);
        s->data = keep;
        if (rc != RT_OK)
            return sp->err = rc;
        sp->stored += RT_SPOOL_HEADER_BYTES + stored;
        sp->raw += len;
        return RT_OK;
    }
    pthread_mutex_lock(&sp->mu);
    while (sp->count == RT_SPOOL_SLOTS && sp->err == RT_OK)
        pthread_cond_wait(&sp->free_cv, &sp->mu);
    if (sp->err != RT_OK) {
        int err = sp->err;
        pthread_mutex_unlock(&sp->mu);
        return err;
    }
    rt_spool_slot *s = &sp->slots[(sp->head + sp->count) % RT_SPOOL_SLOTS];
    pthread_mutex_unlock(&sp->mu);
    /* the slot is free: the thread does not look at it until it is counted */
    int rc = rt__slot_room(sp, s, len);
    if (rc != RT_OK) {
        pthread_mutex_lock(&sp->mu);
        if (sp->err == RT_OK)
            sp->err = rc;
        pthread_mutex_unlock(&sp->mu);
        return rc;
    }
    if (len)
        memcpy(s->data, data, len);
    s->len = len;
    s->thread_idx = thread_idx;
    s->seq = seq;
    s->n_events = n_events;
    pthread_mutex_lock(&sp->mu);
    sp->count++;
    pthread_cond_signal(&sp->full_cv);
    pthread_mutex_unlock(&sp->mu);
    return RT_OK;
}

static void rt__free_slots(rt_spool *sp)
{
    for (unsigned i = 0; i < RT_SPOOL_SLOTS; i++) {
        rt_free(sp->alloc, sp->slots[i].data);
        rt_free(sp->alloc, sp->slots[i].out);
    }
}

int rt_spool_close(rt_spool *sp)
{
    if (!sp)
        return RT_OK;
    if (sp->threaded) {
        if (sp->running)
            rt__stop_thread(sp);
        pthread_cond_destroy(&sp->free_cv);
        pthread_cond_destroy(&sp->full_cv);
        pthread_mutex_destroy(&sp->mu);
    }
    int err = sp->err;
    rt__free_slots(sp);
    rt_free(sp->alloc, sp);
    return err;
}

void rt_spool_bytes(const rt_spool *sp, uint64_t *stored, uint64_t *raw)
{
    rt_spool *m = (rt_spool *)sp;
    if (m->threaded)
        pthread_mutex_lock(&m->mu);
    if (stored)
        *stored = m->stored;
    if (raw)
        *raw = m->raw;
    if (m->threaded)
        pthread_mutex_unlock(&m->mu);
}

int rt_spool_pause(rt_spool *sp)
{
    if (!sp || !sp->running)
        return 0;
    rt__stop_thread(sp);
    long tid = sp->tid;  /* set by the thread: read after the join */
#ifdef __linux__
    /* pthread_join returns when the thread has stopped running, a moment before the
     * kernel forgets it; what counts the process's threads (CPython's fork warning
     * reads /proc/self/stat) still sees it until then */
    if (tid > 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/task/%ld", tid);
        struct timespec nap = {0, 100000};
        for (int i = 0; i < 2000 && access(path, F_OK) == 0; i++)
            nanosleep(&nap, NULL);
    }
#else
    (void)tid;
#endif
    return 1;
}

void rt_spool_resume(rt_spool *sp)
{
    if (!sp || !sp->threaded || sp->running || sp->err != RT_OK)
        return;
    sp->resume = 1;
}

void rt_spool_abandon(rt_spool *sp)
{
    if (!sp)
        return;
    rt__free_slots(sp);
    rt_free(sp->alloc, sp);
}
