/* test_stream.c -- varint encoding and the call-stream decoder. */
#include <stdlib.h>

#include "../rt_stream.h"
#include "rt_test.h"
#include "rt_test_util.h"

static const uint64_t boundary_values[] = {
    0, 1, 7, 8, 127, 128, 255, 256, 16383, 16384,
    (1ULL << 21) - 1, 1ULL << 21, (1ULL << 28) - 1, 1ULL << 28,
    (1ULL << 32) - 1, 1ULL << 32, (1ULL << 35) - 1, 1ULL << 35,
    (1ULL << 42) - 1, 1ULL << 42, (1ULL << 49) - 1, 1ULL << 49,
    (1ULL << 56) - 1, 1ULL << 56, (1ULL << 61) - 1, 1ULL << 61,
    (1ULL << 63) - 1, 1ULL << 63,
    UINT64_MAX >> 3, (UINT64_MAX >> 3) + 1, UINT64_MAX - 1, UINT64_MAX,
};
#define N_BOUNDARY (sizeof boundary_values / sizeof boundary_values[0])

/* Bytes LEB128 needs for v. */
static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A straightforward reference decoder; returns bytes used or 0. */
static size_t ref_decode(const uint8_t *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

static void test_varint_encode_boundaries(void)
{
    for (size_t i = 0; i < N_BOUNDARY; i++) {
        uint64_t v = boundary_values[i];
        uint8_t buf[RT_EV_MAX_BYTES + 4];
        memset(buf, 0xee, sizeof buf);
        uint8_t *end = rt_varint_put(buf, v);
        size_t n = (size_t)(end - buf);
        CHECK_MSG(n == varint_len(v), "length of varint(%" PRIu64 ") = %zu", v, n);
        CHECK_EQ_U(rt_varint_len(v), n);
        CHECK(n <= 10);
        CHECK_EQ_U(buf[n], 0xee); /* nothing written past the end */
        uint64_t back = 0;
        CHECK_EQ_U(ref_decode(buf, n, &back), n);
        CHECK_MSG(back == v, "varint round trip %" PRIu64 " -> %" PRIu64, v, back);
    }
    /* the exact bytes of a few values */
    uint8_t b[10];
    CHECK_EQ_U(rt_varint_put(b, 0) - b, 1);
    CHECK_EQ_U(b[0], 0);
    CHECK_EQ_U(rt_varint_put(b, 127) - b, 1);
    CHECK_EQ_U(b[0], 0x7f);
    CHECK_EQ_U(rt_varint_put(b, 128) - b, 2);
    CHECK(b[0] == 0x80 && b[1] == 0x01);
    CHECK_EQ_U(rt_varint_put(b, 300) - b, 2);
    CHECK(b[0] == 0xac && b[1] == 0x02);
    CHECK_EQ_U(rt_varint_put(b, UINT64_MAX) - b, 10);
    CHECK_EQ_U(b[9], 0x01);
}

/* Decode exactly one event from `buf`/`len`; returns rt_stream_next's result. */
static int decode_one(const uint8_t *buf, size_t len, int64_t t0, rt_event *ev)
{
    rt_stream_reader r;
    rt_stream_reader_init(&r, buf, len, t0);
    int rc = rt_stream_next(&r, ev);
    if (rc == 1 && rt_stream_next(&r, ev + 1) != 0)
        return 99; /* trailing bytes */
    return rc;
}

static void test_varint_decoder_round_trip(void)
{
    for (size_t i = 0; i < N_BOUNDARY; i++) {
        uint64_t x = boundary_values[i];
        uint8_t buf[32];
        rt_event ev[2];
        size_t n;

        /* RESUME: the first varint carries back<<3 (all 64 bits used) */
        uint64_t back = x >> 3;
        n = (size_t)(rt_varint_put(rt_varint_put(buf, (back << 3) | RT_EV_RESUME), 9) - buf);
        CHECK_MSG(decode_one(buf, n, 1000, ev) == 1, "RESUME back=%" PRIu64, back);
        CHECK_EQ_I(ev[0].tag, RT_EV_RESUME);
        CHECK_EQ_U(ev[0].back, back);
        CHECK_EQ_I(ev[0].t, 1009);

        /* TIME: absolute time t = x>>3 */
        n = (size_t)(rt_varint_put(buf, (back << 3) | RT_EV_TIME) - buf);
        CHECK_MSG(decode_one(buf, n, 5, ev) == 1, "TIME t=%" PRIu64, back);
        CHECK_EQ_I(ev[0].tag, RT_EV_TIME);
        CHECK_EQ_I(ev[0].t, (int64_t)back);

        /* EXIT: dt in the first varint */
        n = (size_t)(rt_varint_put(buf, (back << 3) | RT_EV_EXIT) - buf);
        CHECK_MSG(decode_one(buf, n, 0, ev) == 1, "EXIT dt=%" PRIu64, back);
        CHECK_EQ_I(ev[0].tag, RT_EV_EXIT);
        CHECK_EQ_I(ev[0].t, (int64_t)back);

        /* ENTER: the second varint carries dt (any value that keeps t in int64) */
        if (x <= (uint64_t)INT64_MAX) {
            n = (size_t)(rt_varint_put(rt_varint_put(buf, (7ULL << 3) | RT_EV_ENTER), x) - buf);
            CHECK_MSG(decode_one(buf, n, 0, ev) == 1, "ENTER dt=%" PRIu64, x);
            CHECK_EQ_I(ev[0].tag, RT_EV_ENTER);
            CHECK_EQ_U(ev[0].fid, 7);
            CHECK_EQ_I(ev[0].t, (int64_t)x);
        }

        /* ENTER_CONT: fid is 32 bits */
        if (x <= UINT32_MAX) {
            n = (size_t)(rt_varint_put(rt_varint_put(buf, (x << 3) | RT_EV_ENTER_CONT), 1) - buf);
            CHECK_MSG(decode_one(buf, n, 0, ev) == 1, "ENTER_CONT fid=%" PRIu64, x);
            CHECK_EQ_I(ev[0].tag, RT_EV_ENTER_CONT);
            CHECK_EQ_U(ev[0].fid, x);
        }
    }
}

/* A chunk with every event kind; `bounds` gets the byte offset after each event. */
static size_t build_chunk(uint8_t *buf, size_t *bounds, size_t *nev)
{
    uint8_t *p = buf;
    size_t k = 0;
    p = rt_varint_put(p, ((uint64_t)1000000000000ULL << 3) | RT_EV_TIME);   bounds[k++] = (size_t)(p - buf);
    p = rt_varint_put(p, (3ULL << 3) | RT_EV_ENTER); p = rt_varint_put(p, 5);  bounds[k++] = (size_t)(p - buf);
    p = rt_varint_put(p, (70000ULL << 3) | RT_EV_ENTER); p = rt_varint_put(p, 300); bounds[k++] = (size_t)(p - buf);
    p = rt_varint_put(p, (2ULL << 3) | RT_EV_SUSPEND);                     bounds[k++] = (size_t)(p - buf);
    p = rt_varint_put(p, (1ULL << 3) | RT_EV_RESUME); p = rt_varint_put(p, 1ULL << 40); bounds[k++] = (size_t)(p - buf);
    p = rt_varint_put(p, (129ULL << 3) | RT_EV_EXIT_EXC);                  bounds[k++] = (size_t)(p - buf);
    p = rt_varint_put(p, ((uint64_t)UINT32_MAX << 3) | RT_EV_ENTER_CONT); p = rt_varint_put(p, 0); bounds[k++] = (size_t)(p - buf);
    p = rt_varint_put(p, (0ULL << 3) | RT_EV_EXIT);                        bounds[k++] = (size_t)(p - buf);
    p = rt_varint_put(p, (4ULL << 3) | RT_EV_EXIT);                        bounds[k++] = (size_t)(p - buf);
    *nev = k;
    return (size_t)(p - buf);
}

static void test_decoder_events(void)
{
    uint8_t buf[200];
    size_t bounds[16], nev;
    size_t len = build_chunk(buf, bounds, &nev);
    const int64_t T = 1000000000000LL;
    const rt_event want[] = {
        {RT_EV_TIME, 0, 0, T},
        {RT_EV_ENTER, 3, 0, T + 5},
        {RT_EV_ENTER, 70000, 0, T + 305},
        {RT_EV_SUSPEND, 0, 0, T + 307},
        {RT_EV_RESUME, 0, 1, T + 307 + (1LL << 40)},
        {RT_EV_EXIT_EXC, 0, 0, T + 436 + (1LL << 40)},
        {RT_EV_ENTER_CONT, UINT32_MAX, 0, T + 436 + (1LL << 40)},
        {RT_EV_EXIT, 0, 0, T + 436 + (1LL << 40)},
        {RT_EV_EXIT, 0, 0, T + 440 + (1LL << 40)},
    };
    REQUIRE(nev == sizeof want / sizeof want[0]);
    rt_stream_reader r;
    rt_stream_reader_init(&r, buf, len, 42);
    for (size_t i = 0; i < nev; i++) {
        rt_event ev;
        memset(&ev, 0x5a, sizeof ev);
        int rc = rt_stream_next(&r, &ev);
        CHECK_MSG(rc == 1, "event %zu: rc %d", i, rc);
        CHECK_MSG(ev.tag == want[i].tag && ev.fid == want[i].fid && ev.back == want[i].back &&
                      ev.t == want[i].t,
                  "event %zu: got tag %d fid %" PRIu32 " back %" PRIu64 " t %" PRId64, i, ev.tag,
                  ev.fid, ev.back, ev.t);
    }
    rt_event ev;
    CHECK_EQ_I(rt_stream_next(&r, &ev), 0);
    CHECK_EQ_I(rt_stream_next(&r, &ev), 0); /* stays at the end */

    /* t0 is the time before the chunk's first event */
    uint8_t b2[4];
    size_t n2 = (size_t)(rt_varint_put(b2, (5ULL << 3) | RT_EV_EXIT) - b2);
    rt_stream_reader_init(&r, b2, n2, 100);
    CHECK_EQ_I(rt_stream_next(&r, &ev), 1);
    CHECK_EQ_I(ev.t, 105);

    /* empty chunk */
    rt_stream_reader_init(&r, buf, 0, 0);
    CHECK_EQ_I(rt_stream_next(&r, &ev), 0);
}

static void test_decoder_truncated(void)
{
    uint8_t buf[200];
    size_t bounds[16], nev;
    size_t len = build_chunk(buf, bounds, &nev);
    for (size_t cut = 0; cut < len; cut++) {
        size_t whole = 0; /* complete events within the first `cut` bytes */
        while (whole < nev && bounds[whole] <= cut)
            whole++;
        int at_boundary = whole == 0 ? cut == 0 : bounds[whole - 1] == cut;
        rt_stream_reader r;
        rt_stream_reader_init(&r, buf, cut, 0);
        rt_event ev;
        size_t got = 0;
        int rc;
        while ((rc = rt_stream_next(&r, &ev)) == 1 && got <= nev)
            got++;
        CHECK_MSG(got == whole, "cut at %zu: %zu events decoded, want %zu", cut, got, whole);
        CHECK_MSG(rc == (at_boundary ? 0 : RT_ERR_DATA), "cut at %zu: rc %d", cut, rc);
    }

    /* every strict prefix of a maximal 10-byte varint is truncated */
    uint8_t b[12];
    size_t n = (size_t)(rt_varint_put(b, ((UINT64_MAX >> 3) << 3) | RT_EV_RESUME) - b);
    REQUIRE(n == 10);
    b[n++] = 0; /* dt */
    for (size_t cut = 1; cut < n; cut++) {
        rt_stream_reader r;
        rt_event ev;
        rt_stream_reader_init(&r, b, cut, 0);
        CHECK_MSG(rt_stream_next(&r, &ev) == RT_ERR_DATA, "RESUME cut at %zu", cut);
    }
    rt_stream_reader r;
    rt_event ev;
    rt_stream_reader_init(&r, b, n, 0);
    CHECK_EQ_I(rt_stream_next(&r, &ev), 1);
    CHECK_EQ_U(ev.back, UINT64_MAX >> 3);

    /* an ENTER whose dt varint is missing or cut */
    const uint8_t enter_nodt[] = {(1 << 3) | RT_EV_ENTER};
    rt_stream_reader_init(&r, enter_nodt, sizeof enter_nodt, 0);
    CHECK_EQ_I(rt_stream_next(&r, &ev), RT_ERR_DATA);
    const uint8_t enter_cutdt[] = {(1 << 3) | RT_EV_ENTER, 0x80, 0x80};
    rt_stream_reader_init(&r, enter_cutdt, sizeof enter_cutdt, 0);
    CHECK_EQ_I(rt_stream_next(&r, &ev), RT_ERR_DATA);
}

static int decode_all(const uint8_t *b, size_t n, int64_t t0, rt_event *last)
{
    rt_stream_reader r;
    rt_stream_reader_init(&r, b, n, t0);
    int rc;
    size_t guard = 0;
    while ((rc = rt_stream_next(&r, last)) == 1 && guard++ <= n)
        ;
    return rc;
}

static void test_decoder_overlong_and_invalid(void)
{
    rt_event ev;
    /* 11 bytes: more than any 64-bit value needs */
    const uint8_t eleven[] = {0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    CHECK_EQ_I(decode_all(eleven, sizeof eleven, 0, &ev), RT_ERR_DATA);
    /* 10 bytes whose last byte carries bits beyond 64 */
    const uint8_t overflow[] = {0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    CHECK_EQ_I(decode_all(overflow, sizeof overflow, 0, &ev), RT_ERR_DATA);
    const uint8_t overflow7f[] = {0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    CHECK_EQ_I(decode_all(overflow7f, sizeof overflow7f, 0, &ev), RT_ERR_DATA);
    /* the same, in the second varint (ENTER dt) */
    const uint8_t overlong_dt[] = {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    CHECK_EQ_I(decode_all(overlong_dt, sizeof overlong_dt, 0, &ev), RT_ERR_DATA);
    /* the largest valid 10-byte first varint still decodes */
    const uint8_t max_ok[] = {0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00};
    CHECK_EQ_I(decode_all(max_ok, sizeof max_ok, 0, &ev), 0);
    CHECK_EQ_U(ev.back, UINT64_MAX >> 3);
    /* the reserved tag 7 */
    const uint8_t tag7[] = {0x07};
    CHECK_EQ_I(decode_all(tag7, sizeof tag7, 0, &ev), RT_ERR_DATA);
    const uint8_t tag7_after[] = {(1 << 3) | RT_EV_EXIT, (9 << 3) | 7};
    CHECK_EQ_I(decode_all(tag7_after, sizeof tag7_after, 0, &ev), RT_ERR_DATA);
    /* a function id beyond 32 bits */
    uint8_t big_fid[16];
    size_t n = (size_t)(rt_varint_put(rt_varint_put(big_fid, ((uint64_t)UINT32_MAX + 1) << 3), 0) - big_fid);
    CHECK_EQ_I(decode_all(big_fid, n, 0, &ev), RT_ERR_DATA);
    n = (size_t)(rt_varint_put(rt_varint_put(big_fid, (((uint64_t)UINT32_MAX + 1) << 3) | RT_EV_ENTER_CONT), 0) - big_fid);
    CHECK_EQ_I(decode_all(big_fid, n, 0, &ev), RT_ERR_DATA);
}

/* Times past INT64_MAX cannot be represented: the chunk is malformed. */
static void test_decoder_time_overflow(void)
{
    uint8_t b[64];
    rt_event ev;
    uint8_t *p;
    /* ENTER dt above INT64_MAX */
    p = rt_varint_put(rt_varint_put(b, (1 << 3) | RT_EV_ENTER), (uint64_t)INT64_MAX + 1);
    CHECK_EQ_I(decode_all(b, (size_t)(p - b), 0, &ev), RT_ERR_DATA);
    /* a large TIME followed by a dt that overflows the sum */
    p = rt_varint_put(b, ((UINT64_MAX >> 3) << 3) | RT_EV_TIME);
    p = rt_varint_put(rt_varint_put(p, (1 << 3) | RT_EV_ENTER), (uint64_t)INT64_MAX - 5);
    CHECK_EQ_I(decode_all(b, (size_t)(p - b), 0, &ev), RT_ERR_DATA);
    /* repeated EXIT dts that add up past INT64_MAX */
    p = b;
    for (int i = 0; i < 5; i++)
        p = rt_varint_put(p, ((UINT64_MAX >> 3) << 3) | RT_EV_EXIT);
    CHECK_EQ_I(decode_all(b, (size_t)(p - b), 0, &ev), RT_ERR_DATA);
    /* right at the limit is fine */
    p = rt_varint_put(rt_varint_put(b, (1 << 3) | RT_EV_ENTER), (uint64_t)INT64_MAX - 10);
    CHECK_EQ_I(decode_all(b, (size_t)(p - b), 10, &ev), 0);
    CHECK_EQ_I(ev.t, INT64_MAX);
}

/* Random bytes: the decoder stays inside the buffer, terminates, and
 * every call either yields an event, ends, or reports RT_ERR_DATA. */
static void test_decoder_random_bytes(void)
{
    uint64_t seed = 0xdecafbadULL;
    long bad = 0, errors = 0, events = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = (size_t)(test_rand(&seed) % 24);
        uint8_t *buf = malloc(len ? len : 1); /* exact size: ASan catches overreads */
        if (!buf)
            abort();
        for (size_t i = 0; i < len; i++) {
            uint64_t r = test_rand(&seed);
            /* bias towards continuation bytes and large values */
            buf[i] = (uint8_t)((r & 3) == 0 ? 0xff : (r & 3) == 1 ? (0x80 | (r >> 8)) : (r >> 8));
        }
        rt_stream_reader r;
        rt_stream_reader_init(&r, buf, len, (int64_t)(test_rand(&seed) >> 2));
        rt_event ev;
        int rc;
        size_t calls = 0;
        while ((rc = rt_stream_next(&r, &ev)) == 1) {
            events++;
            if (++calls > len || ev.tag < 0 || ev.tag > 6)
                bad++;
            if (calls > len)
                break;
        }
        if (rc == RT_ERR_DATA)
            errors++;
        else if (rc != 0 && rc != 1)
            bad++;
        if (r.p > r.end || r.p < buf)
            bad++;
        free(buf);
    }
    CHECK_EQ_I(bad, 0);
    CHECK(errors > 0);
    CHECK(events > 0);
}

/* remap: ids mapped, TIME shifted, everything else byte for byte; bad ids refused. */
static void test_remap(void)
{
    uint8_t in[64], *p = in;
    p = rt_varint_put(p, (100ULL << 3) | RT_EV_TIME);
    p = rt_varint_put(p, (2ULL << 3) | RT_EV_ENTER);
    p = rt_varint_put(p, 5);
    p = rt_varint_put(p, (1ULL << 3) | RT_EV_ENTER_CONT);
    p = rt_varint_put(p, 7);
    p = rt_varint_put(p, (3ULL << 3) | RT_EV_SUSPEND);
    p = rt_varint_put(p, (1ULL << 3) | RT_EV_RESUME);
    p = rt_varint_put(p, 2);
    p = rt_varint_put(p, (4ULL << 3) | RT_EV_EXIT);
    p = rt_varint_put(p, (6ULL << 3) | RT_EV_EXIT_EXC);
    size_t len = (size_t)(p - in), need = 0, got = 0;
    uint32_t map[3] = {0, 1000, 70000};
    CHECK_EQ_I(rt_stream_remap(in, len, map, 3, 50, NULL, 0, &need), RT_OK);
    uint8_t out[64];
    CHECK_EQ_I(rt_stream_remap(in, len, map, 3, 50, out, 2, &got), RT_ERR_STATE);
    CHECK_EQ_I(rt_stream_remap(in, len, map, 3, 50, out, sizeof out, &got), RT_OK);
    CHECK_EQ_I((int)got, (int)need);
    rt_stream_reader r;
    rt_event ev;
    rt_stream_reader_init(&r, out, got, 0);
    int tags[8], n = 0;
    uint32_t fids[8];
    int64_t times[8];
    while (n < 8 && rt_stream_next(&r, &ev) == 1) {
        tags[n] = ev.tag;
        fids[n] = ev.fid;
        times[n++] = ev.t;
    }
    CHECK_EQ_I(n, 7);
    CHECK_EQ_I(tags[0], RT_EV_TIME);
    CHECK_EQ_I((int)times[0], 150);
    CHECK_EQ_I((int)fids[1], 70000);
    CHECK_EQ_I((int)times[1], 155);
    CHECK_EQ_I(tags[2], RT_EV_ENTER_CONT);
    CHECK_EQ_I((int)fids[2], 1000);
    CHECK_EQ_I((int)times[6], 155 + 7 + 3 + 2 + 4 + 6);
    uint32_t small[2] = {0, 1};
    CHECK_EQ_I(rt_stream_remap(in, len, small, 2, 0, out, sizeof out, &got), RT_ERR_DATA);
    CHECK_EQ_I(rt_stream_remap(in, 3, map, 3, 0, out, sizeof out, &got), RT_ERR_DATA);
    CHECK_EQ_I(rt_stream_remap(in, len, map, 3, UINT64_MAX, out, sizeof out, &got), RT_ERR_DATA);
}

void suite_stream(void)
{
    RT_RUN(test_varint_encode_boundaries);
    RT_RUN(test_varint_decoder_round_trip);
    RT_RUN(test_decoder_events);
    RT_RUN(test_decoder_truncated);
    RT_RUN(test_decoder_overlong_and_invalid);
    RT_RUN(test_decoder_time_overflow);
    RT_RUN(test_decoder_random_bytes);
    RT_RUN(test_remap);
}
