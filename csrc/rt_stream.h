/*
 * rt_stream.h -- the compact encoding of a thread's call stream.
 *
 * A chunk is a sequence of events. Every event starts with an unsigned LEB128
 * varint whose low 3 bits are the tag; the remaining bits are the event's
 * payload. Times are nanoseconds; each event carries the delta `dt` from the
 * previous event of the same thread (the first event of a chunk is RT_EV_TIME,
 * so a chunk can be decoded on its own). See docs/call-stream.md.
 *
 *   tag 0 ENTER      varint(fid<<3|0)  varint(dt)      a call of function fid begins
 *   tag 1 EXIT       varint(dt<<3|1)                   the innermost open call returns
 *   tag 2 EXIT_EXC   varint(dt<<3|2)                   the innermost open call raises
 *   tag 3 SUSPEND    varint(dt<<3|3)                   the innermost call (a generator or
 *                                                      coroutine) yields; it stays open
 *   tag 4 RESUME     varint(back<<3|4) varint(dt)      the suspended call whose call number is
 *                                                      (calls so far - back) becomes innermost
 *   tag 5 TIME       varint(t<<3|5)                    absolute time t (ns since the trace origin)
 *   tag 6 ENTER_CONT varint(fid<<3|6)  varint(dt)      a generator suspended in another thread
 *                                                      resumes here; counted as a call in this stream
 *   tag 7 reserved
 *
 * Call numbers count ENTER and ENTER_CONT events of the thread, from 0.
 */
#ifndef RT_STREAM_H
#define RT_STREAM_H

#include "rt_common.h"

enum {
    RT_EV_ENTER = 0,
    RT_EV_EXIT = 1,
    RT_EV_EXIT_EXC = 2,
    RT_EV_SUSPEND = 3,
    RT_EV_RESUME = 4,
    RT_EV_TIME = 5,
    RT_EV_ENTER_CONT = 6,
};

/* Largest encoding of one event, in bytes (two 10-byte varints). */
#define RT_EV_MAX_BYTES 20

/* Append `v` as LEB128 at `p`; returns the new end. Caller guarantees room. */
RT_INLINE uint8_t *rt_varint_put(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Bytes LEB128 needs for `v` (1..10). */
RT_INLINE size_t rt_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* A decoded event. */
typedef struct rt_event {
    int tag;        /* RT_EV_* */
    uint32_t fid;   /* ENTER/ENTER_CONT: the function id */
    uint64_t back;  /* RESUME: how many calls back the resumed call is */
    int64_t t;      /* absolute time of the event (ns since origin) */
} rt_event;

/* Sequential decoder over one chunk (borrowed bytes). */
typedef struct rt_stream_reader {
    const uint8_t *p;    /* next byte */
    const uint8_t *end;  /* one past the last byte */
    int64_t t;           /* time of the previous event */
} rt_stream_reader;

/* Start decoding `len` bytes at `data`; `t0` is the time before the chunk. */
void rt_stream_reader_init(rt_stream_reader *r, const uint8_t *data, size_t len, int64_t t0);

/* Decode the next event into `ev`. Returns 1 for an event, 0 at the end of
 * the chunk, RT_ERR_DATA for a malformed or truncated chunk. */
int rt_stream_next(rt_stream_reader *r, rt_event *ev);

/* Rewrite the chunk `in` (`len` bytes) for another trace: every function id f
 * of an ENTER/ENTER_CONT event becomes map[f] (f must be < nmap) and every
 * absolute TIME event moves `shift` ns later; all other bytes are kept.
 * Writes at most `cap` bytes at `out` and sets *out_len to the size of the
 * rewritten chunk (pass out = NULL, cap = 0 to learn the size first).
 * Returns RT_OK, RT_ERR_DATA (malformed chunk, an id outside map, a time that
 * overflows) or RT_ERR_STATE (cap too small; *out_len says how much is needed). */
int rt_stream_remap(const uint8_t *in, size_t len, const uint32_t *map, uint32_t nmap,
                    uint64_t shift, uint8_t *out, size_t cap, size_t *out_len);

#endif
