/* test_spool.c -- the spool writer: every chunk arrives once, in order, with
 * its header, compressed or raw; errors are sticky; allocation failures
 * leave nothing behind. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include "../rt_spool.h"
#include "rt_test.h"
#include "rt_test_util.h"

/* A chunk that compresses (repeating events) or does not (random bytes). */
static void fill(uint8_t *buf, size_t len, int random, uint64_t *state)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = random ? (uint8_t)test_rand(state) : (uint8_t)(i % 7 == 0 ? 0x21 : (i & 3));
}

typedef struct {
    int ok;
    unsigned n, zlib, raw;
} readback;

/* Read the records of `f` back and check them against chunks made by fill(). */
static readback read_records(FILE *f, size_t len, unsigned expect, int random_every)
{
    readback r = {1, 0, 0, 0};
    uint8_t hdr[RT_SPOOL_HEADER_BYTES];
    uint8_t *want = malloc(len), *got = malloc(len), *stored = malloc(compressBound((uLong)len) + 16);
    uint64_t state = 7;
    rewind(f);
    while (fread(hdr, 1, sizeof hdr, f) == sizeof hdr) {
        uint32_t tidx, seq, raw_len, codec;
        uint64_t slen, nev;
        memcpy(&tidx, hdr, 4);
        memcpy(&seq, hdr + 4, 4);
        memcpy(&slen, hdr + 8, 8);
        memcpy(&nev, hdr + 16, 8);
        memcpy(&raw_len, hdr + 24, 4);
        memcpy(&codec, hdr + 28, 4);
        unsigned i = r.n;
        fill(want, len, random_every && i % random_every == 0, &state);
        if (tidx != i % 3 || seq != i || nev != (uint64_t)i * 10 || raw_len != len || slen > compressBound((uLong)len) ||
            fread(stored, 1, (size_t)slen, f) != slen) {
            r.ok = 0;
            break;
        }
        if (codec == RT_SPOOL_ZLIB) {
            uLongf out = (uLongf)len;
            if (uncompress(got, &out, stored, (uLong)slen) != Z_OK || out != len || memcmp(got, want, len)) {
                r.ok = 0;
                break;
            }
            r.zlib++;
        } else if (codec == RT_SPOOL_RAW) {
            if (slen != len || memcmp(stored, want, len)) {
                r.ok = 0;
                break;
            }
            r.raw++;
        } else {
            r.ok = 0;
            break;
        }
        r.n++;
    }
    free(want);
    free(got);
    free(stored);
    if (r.n != expect)
        r.ok = 0;
    return r;
}

static int put_chunks(rt_spool *sp, unsigned n, size_t len, int random_every)
{
    uint8_t *buf = malloc(len);
    uint64_t state = 7;
    int rc = RT_OK;
    for (unsigned i = 0; i < n && rc == RT_OK; i++) {
        fill(buf, len, random_every && i % random_every == 0, &state);
        rc = rt_spool_put(sp, i % 3, i, buf, len, (uint64_t)i * 10);
        memset(buf, 0xEE, len);  /* the writer copied it: changing it now changes nothing */
    }
    free(buf);
    return rc;
}

static void test_spool_compressed_in_order(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    FILE *f = tmpfile();
    rt_spool *sp = rt_spool_open(fileno(f), 1, &ta.a);
    CHECK(sp != NULL);
    /* more chunks than slots, so the producer waits for the thread; every 5th does not compress */
    CHECK_EQ_I(put_chunks(sp, 40, 20000, 5), RT_OK);
    uint64_t stored = 0, raw = 0;
    CHECK_EQ_I(rt_spool_close(sp), RT_OK);
    readback r = read_records(f, 20000, 40, 5);
    CHECK(r.ok);
    CHECK_EQ_U(r.raw, 8);   /* random bytes: stored as they are */
    CHECK_EQ_U(r.zlib, 32);
    CHECK_EQ_I(ta.live, 0);
    (void)stored;
    (void)raw;
    fclose(f);
}

static void test_spool_level0_raw_in_caller(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    FILE *f = tmpfile();
    rt_spool *sp = rt_spool_open(fileno(f), 0, &ta.a);
    CHECK(sp != NULL);
    CHECK_EQ_I(put_chunks(sp, 9, 3000, 0), RT_OK);
    uint64_t stored = 0, raw = 0;
    rt_spool_bytes(sp, &stored, &raw);
    CHECK_EQ_U(raw, 9 * 3000);
    CHECK_EQ_U(stored, 9 * (3000 + RT_SPOOL_HEADER_BYTES));
    CHECK_EQ_I(rt_spool_close(sp), RT_OK);
    readback r = read_records(f, 3000, 9, 0);
    CHECK(r.ok);
    CHECK_EQ_U(r.raw, 9);
    CHECK_EQ_I(ta.live, 0);
    fclose(f);
}

static void test_spool_bytes_counts_what_was_written(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    FILE *f = tmpfile();
    rt_spool *sp = rt_spool_open(fileno(f), 1, &ta.a);
    CHECK_EQ_I(put_chunks(sp, 6, 50000, 0), RT_OK);
    CHECK_EQ_I(rt_spool_close(sp), RT_OK);
    long size = (fseek(f, 0, SEEK_END), ftell(f));
    CHECK(size > 0 && size < 6 * 50000 / 4);  /* the repeating chunks shrink well */
    fclose(f);
}

static void test_spool_write_error_is_sticky(void)
{
    for (int level = 0; level <= 1; level++) {
        test_alloc ta;
        test_alloc_init(&ta);
        int fds[2];
        CHECK(pipe(fds) == 0);
        close(fds[0]);
        close(fds[1]);  /* writing to a closed descriptor fails (EBADF) */
        rt_spool *sp = rt_spool_open(fds[1], level, &ta.a);
        CHECK(sp != NULL);
        int rc = put_chunks(sp, 30, 1000, 0);
        int crc = rt_spool_close(sp);
        if (level == 0)
            CHECK_EQ_I(rc, RT_ERR_IO);
        CHECK_EQ_I(crc, RT_ERR_IO);
        CHECK_EQ_I(ta.live, 0);
    }
}

static void test_spool_allocation_failures(void)
{
    /* every allocation failing in turn: open fails cleanly, or put reports
     * RT_ERR_NOMEM and close gives the same error; nothing leaks */
    for (long k = 1; k < 40; k++) {
        test_alloc ta;
        test_alloc_init(&ta);
        ta.fail_at = k;
        FILE *f = tmpfile();
        rt_spool *sp = rt_spool_open(fileno(f), 1, &ta.a);
        if (sp) {
            int rc = put_chunks(sp, 10, 4000, 3);
            int crc = rt_spool_close(sp);
            CHECK(rc == RT_OK || rc == RT_ERR_NOMEM);
            CHECK_EQ_I(crc, rc);
            if (rc == RT_OK)
                CHECK(read_records(f, 4000, 10, 3).ok);
        }
        CHECK_EQ_I(ta.live, 0);
        fclose(f);
    }
}

static void test_spool_abandon_frees(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    rt_spool *sp = rt_spool_open(-1, 0, &ta.a);
    CHECK(sp != NULL);
    rt_spool_abandon(sp);
    rt_spool_abandon(NULL);
    CHECK_EQ_I(rt_spool_close(NULL), RT_OK);
    CHECK_EQ_I(ta.live, 0);
}

/* Threads of this process, as the kernel counts them (what CPython's fork warning reads). */
static int process_threads(void)
{
#ifdef __linux__
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
#else
    return 1;
#endif
}

static void put_one(rt_spool *sp, unsigned i, size_t len)
{
    uint8_t *buf = malloc(len);
    fill(buf, len, 0, NULL);
    CHECK_EQ_I(rt_spool_put(sp, i % 3, i, buf, len, (uint64_t)i * 10), RT_OK);
    free(buf);
}

/* Paused before a fork: everything queued is written, the thread is gone (the kernel
 * counts one thread), chunks put meanwhile are written raw in order, and resume
 * brings the thread back. */
static void test_spool_pause_and_resume(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    FILE *f = tmpfile();
    CHECK_EQ_I(rt_spool_pause(NULL), 0);
    rt_spool *sp = rt_spool_open(fileno(f), 1, &ta.a);
    CHECK(sp != NULL);
    unsigned i = 0;
    for (; i < 10; i++)
        put_one(sp, i, 20000);
    CHECK_EQ_I(process_threads(), 2);
    CHECK_EQ_I(rt_spool_pause(sp), 1);
    CHECK_EQ_I(process_threads(), 1);
    CHECK_EQ_I(rt_spool_pause(sp), 0);  /* already paused */
    uint64_t raw = 0;
    rt_spool_bytes(sp, NULL, &raw);
    CHECK_EQ_U(raw, 10 * 20000);        /* all written before the pause returned */
    for (; i < 15; i++)
        put_one(sp, i, 20000);
    rt_spool_resume(sp);
    CHECK_EQ_I(process_threads(), 1);        /* not before the next chunk */
    put_one(sp, i++, 20000);
    CHECK_EQ_I(process_threads(), 2);
    rt_spool_resume(sp);                     /* already running */
    for (; i < 25; i++)
        put_one(sp, i, 20000);
    CHECK_EQ_I(rt_spool_close(sp), RT_OK);
    readback r = read_records(f, 20000, 25, 0);
    CHECK(r.ok);
    CHECK_EQ_U(r.raw, 5);
    CHECK_EQ_U(r.zlib, 20);
    CHECK_EQ_I(ta.live, 0);
    fclose(f);
}

/* A level-0 writer has no thread: pause and resume do nothing. */
static void test_spool_pause_without_thread(void)
{
    test_alloc ta;
    test_alloc_init(&ta);
    FILE *f = tmpfile();
    rt_spool *sp = rt_spool_open(fileno(f), 0, &ta.a);
    CHECK_EQ_I(rt_spool_pause(sp), 0);
    put_one(sp, 0, 100);
    rt_spool_resume(sp);
    put_one(sp, 1, 100);
    CHECK_EQ_I(process_threads(), 1);
    CHECK_EQ_I(rt_spool_close(sp), RT_OK);
    readback r = read_records(f, 100, 2, 0);
    CHECK(r.ok);
    CHECK_EQ_U(r.raw, 2);
    CHECK_EQ_I(ta.live, 0);
    fclose(f);
}

void suite_spool(void)
{
    RT_RUN(test_spool_pause_and_resume);
    RT_RUN(test_spool_pause_without_thread);
    RT_RUN(test_spool_compressed_in_order);
    RT_RUN(test_spool_level0_raw_in_caller);
    RT_RUN(test_spool_bytes_counts_what_was_written);
    RT_RUN(test_spool_write_error_is_sticky);
    RT_RUN(test_spool_allocation_failures);
    RT_RUN(test_spool_abandon_frees);
}
