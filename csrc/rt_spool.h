/*
 * rt_spool.h -- the call-stream spool writer: each finished chunk of a
 * thread's stream is appended to a file, compressed with zlib in a
 * background thread so that compression stays off the traced program's
 * path.
 *
 * A record in the file (little endian as the machine; tracefile/spool.py
 * reads it): u32 thread_idx, u32 seq, u64 stored length, u64 n_events,
 * u32 raw length, u32 codec (RT_SPOOL_RAW or RT_SPOOL_ZLIB), then the
 * stored bytes. A chunk that zlib does not make smaller is stored raw.
 *
 * Threading contract: rt_spool_put and rt_spool_close are called by one
 * producer at a time (the engine calls its sink under the interpreter's
 * lock); only the background thread writes the file. Every allocation is
 * made by the producer (so allocation-failure tests are deterministic).
 * Errors are sticky: after a failed allocation or write, put and close
 * return the error and nothing more is written.
 */
#ifndef RT_SPOOL_H
#define RT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "rt_common.h"

#define RT_SPOOL_RAW 0u
#define RT_SPOOL_ZLIB 1u
#define RT_SPOOL_HEADER_BYTES 32

/* Chunks waiting for the background thread at most; a producer that finds
 * them all waiting blocks until one is written. */
#define RT_SPOOL_SLOTS 4

typedef struct rt_spool rt_spool;

/* Open a writer appending to `fd` (not owned: the caller closes it after
 * rt_spool_close). `level` 0 stores every chunk raw and writes in the
 * caller's thread (no background thread); 1..9 is the zlib level.
 * Returns NULL when memory or the thread cannot be had. */
rt_spool *rt_spool_open(int fd, int level, const rt_allocator *alloc);

/* Queue one chunk (copied). RT_OK, RT_ERR_NOMEM or RT_ERR_IO (an earlier
 * write failed: the chunk is dropped). */
int rt_spool_put(rt_spool *sp, uint32_t thread_idx, uint32_t seq, const uint8_t *data, size_t len,
                 uint64_t n_events);

/* Write what is queued, stop the thread, free the writer (NULL is a no-op).
 * RT_OK, or the first error seen. */
int rt_spool_close(rt_spool *sp);

/* Stored and raw bytes so far (for the session's statistics); either may be NULL. */
void rt_spool_bytes(const rt_spool *sp, uint64_t *stored, uint64_t *raw);

/* Before a fork: write what is queued and stop the background thread, so that
 * the process forks with no thread of retracer's (chunks put meanwhile are
 * written raw by the caller). Returns 1 when a thread was stopped (on Linux,
 * once the kernel no longer lists it), 0 when there was none. NULL: 0. */
int rt_spool_pause(rt_spool *sp);

/* After the fork, in the parent: the thread starts again with the next chunk
 * put, not now -- CPython 3.13 counts the process's threads for its fork
 * warning after the fork handlers of the parent have run (no-op when not
 * paused). When no thread can be started then, the writer goes on writing raw
 * chunks in the caller's thread. */
void rt_spool_resume(rt_spool *sp);

/* In a forked child: forget the parent's writer without touching its
 * thread (which does not exist in the child) or its file; frees the memory. */
void rt_spool_abandon(rt_spool *sp);

#endif
