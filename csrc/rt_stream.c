/* rt_stream.c -- call-stream decoder. */
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
