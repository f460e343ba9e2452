/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Arena (bump) allocator for per-job scratch memory.
 *
 * A job allocates its scratch from an arena and the worker resets the arena between
 * jobs, so that steady-state generation does no heap traffic. Blocks are 64-byte
 * aligned by default. An arena may have a byte budget: an allocation that would
 * exceed it fails (returns NULL) rather than growing without bound, which is how a
 * worker turns "out of memory" into a failed job instead of a dead process.
 */
#ifndef REEL_ARENA_H
#define REEL_ARENA_H

#include <stddef.h>

#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reel_arena reel_arena;

/* A position to roll back to with reel_arena_release(). */
typedef struct reel_arena_mark {
  void *chunk;
  size_t used;
} reel_arena_mark;

/*
 * Creates an arena whose chunks are at least `chunk_size` bytes (0 = 1 MiB) and
 * whose total size may not exceed `budget` bytes (0 = unlimited). NULL on failure.
 */
reel_arena *reel_arena_new(size_t chunk_size, size_t budget);
/* Frees the arena and everything allocated from it; accepts NULL and NULL *arena. */
void reel_arena_destroy(reel_arena **arena);

/* Returns `size` bytes aligned to `align` (a power of two, 0 = 64), or NULL on failure/over budget. */
void *reel_arena_alloc(reel_arena *arena, size_t size, size_t align);
/* As reel_arena_alloc, zeroed. */
void *reel_arena_calloc(reel_arena *arena, size_t n, size_t size);
/* Copies a string into the arena. */
char *reel_arena_strdup(reel_arena *arena, const char *s);

/* Frees all allocations but keeps the first chunk for reuse. Cannot fail. */
void reel_arena_reset(reel_arena *arena);
reel_arena_mark reel_arena_get_mark(const reel_arena *arena);
/* Frees everything allocated after `mark`. */
void reel_arena_release(reel_arena *arena, reel_arena_mark mark);

/* Bytes handed out (including alignment padding) and the high-water mark since creation. */
size_t reel_arena_used(const reel_arena *arena);
size_t reel_arena_peak(const reel_arena *arena);
/* Bytes reserved from the heap. */
size_t reel_arena_reserved(const reel_arena *arena);

#ifdef __cplusplus
}
#endif
#endif
