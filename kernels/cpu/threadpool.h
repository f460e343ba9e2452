/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small fixed-size pthread pool with one operation: parallel-for over an index
 * range. The CPU backend owns one; the calling thread works too (as thread 0), so
 * a pool of 1 thread has no workers and runs everything inline. Chunks are handed
 * out dynamically, so which thread runs which chunk varies between runs: kernels
 * must make every output element's value independent of that (they do, by
 * computing each element entirely inside one chunk).
 */
#ifndef REEL_CPU_THREADPOOL_H
#define REEL_CPU_THREADPOOL_H

#include <stdint.h>

#include "reel/status.h"

typedef struct reel__pool reel__pool;

/* fn processes indices [begin, end); tid is 0..threads-1 and unique among concurrent calls. */
typedef void (*reel__pool_fn)(void *ctx, int64_t begin, int64_t end, int tid);

/* Starts threads-1 workers. NULL on failure (err set). */
reel__pool *reel__pool_new(int threads, reel_error *err);
/* Stops and joins the workers; accepts NULL and NULL *p. */
void reel__pool_destroy(reel__pool **p);
int reel__pool_threads(const reel__pool *p);

/*
 * Runs fn over [0, n) in chunks of `grain` indices (>= 1) and returns when all
 * are done. Not reentrant: fn must not call reel__pool_run on the same pool.
 */
void reel__pool_run(reel__pool *p, int64_t n, int64_t grain, reel__pool_fn fn, void *ctx);

#endif
