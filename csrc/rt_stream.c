/* rt_stream.c -- call-stream decoder, and the rewrite of a chunk for a merged trace. */
#include <string.h>

#include "rt_stream.h"

void rt_stream_reader_init(rt_stream_reader *r, const uint8_t *data, size_t len, int64_t t0)
{
    r->p = data;
    r->end = data + len;
    r->t = t0;
}

static int rt__varint_get(rt_stream_reader *r, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    while (r->p < r->end) {
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1)
            return RT_ERR_DATA;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return RT_OK;
        }
        shift += 7;
        if (shift > 63)
            return RT_ERR_DATA;
    }
    return RT_ERR_DATA;
}

/* Add dt to the reader's time; RT_ERR_DATA if the sum leaves int64 (a
 * malformed chunk: signed overflow would be undefined behaviour). */
static int rt__advance(rt_stream_reader *r, uint64_t dt)
{
    if (dt > (uint64_t)INT64_MAX || (r->t > 0 && (int64_t)dt > INT64_MAX - r->t))
        return RT_ERR_DATA;
    r->t += (int64_t)dt;
    return RT_OK;
}

int rt_stream_next(rt_stream_reader *r, rt_event *ev)
{
    uint64_t v, dt;
    if (r->p >= r->end)
        return 0;
    if (rt__varint_get(r, &v) != RT_OK)
        return RT_ERR_DATA;
    ev->tag = (int)(v & 7);
    ev->fid = 0;
    ev->back = 0;
    switch (ev->tag) {
    case RT_EV_ENTER:
    case RT_EV_ENTER_CONT:
        if ((v >> 3) > UINT32_MAX)
            return RT_ERR_DATA;
        ev->fid = (uint32_t)(v >> 3);
        if (rt__varint_get(r, &dt) != RT_OK || rt__advance(r, dt) != RT_OK)
            return RT_ERR_DATA;
        break;
    case RT_EV_RESUME:
        ev->back = v >> 3;
        if (rt__varint_get(r, &dt) != RT_OK || rt__advance(r, dt) != RT_OK)
            return RT_ERR_DATA;
        break;
    case RT_EV_EXIT:
    case RT_EV_EXIT_EXC:
    case RT_EV_SUSPEND:
        if (rt__advance(r, v >> 3) != RT_OK)
            return RT_ERR_DATA;
        break;
    case RT_EV_TIME:
        r->t = (int64_t)(v >> 3);
        break;
    default:
        return RT_ERR_DATA;
    }
    ev->t = r->t;
    return 1;
}

/* Copy `v` as a varint to out (if it fits under cap) and count its bytes. */
static void rt__put(uint8_t *out, size_t cap, size_t *n, uint64_t v)
{
    uint8_t tmp[10];
    size_t k = (size_t)(rt_varint_put(tmp, v) - tmp);
    if (out && *n + k <= cap)
        memcpy(out + *n, tmp, k);
    *n += k;
}

int rt_stream_remap(const uint8_t *in, size_t len, const uint32_t *map, uint32_t nmap,
                    uint64_t shift, uint8_t *out, size_t cap, size_t *out_len)
{
    rt_stream_reader r;
    size_t n = 0;
    uint64_t v, dt;
    rt_stream_reader_init(&r, in, len, 0);
    while (r.p < r.end) {
        if (rt__varint_get(&r, &v) != RT_OK)
            return RT_ERR_DATA;
        int tag = (int)(v & 7);
        switch (tag) {
        case RT_EV_ENTER:
        case RT_EV_ENTER_CONT:
            if ((v >> 3) >= nmap)
                return RT_ERR_DATA;
            rt__put(out, cap, &n, ((uint64_t)map[v >> 3] << 3) | (uint64_t)tag);
            if (rt__varint_get(&r, &dt) != RT_OK)
                return RT_ERR_DATA;
            rt__put(out, cap, &n, dt);
            break;
        case RT_EV_RESUME:
            rt__put(out, cap, &n, v);
            if (rt__varint_get(&r, &dt) != RT_OK)
                return RT_ERR_DATA;
            rt__put(out, cap, &n, dt);
            break;
        case RT_EV_EXIT:
        case RT_EV_EXIT_EXC:
        case RT_EV_SUSPEND:
            rt__put(out, cap, &n, v);
            break;
        case RT_EV_TIME: {
            uint64_t t = v >> 3;
            if (shift > (UINT64_MAX >> 4) || t > (UINT64_MAX >> 4) - shift) /* stays a valid int64 time after << 3 */
                return RT_ERR_DATA;
            rt__put(out, cap, &n, ((t + shift) << 3) | RT_EV_TIME);
            break;
        }
        default:
            return RT_ERR_DATA;
        }
    }
    *out_len = n;
    return (out && n > cap) ? RT_ERR_STATE : RT_OK;
}
