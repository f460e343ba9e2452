/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Heap allocation for all of reel, with a failure-injection hook for tests.
 *
 * Library code allocates through reel_malloc()/reel_calloc()/reel_realloc() and
 * frees with reel_free(). Tests arm the injector ("fail the Nth allocation from
 * now") to drive every cleanup path, in the manner of SQLite's fault injection.
 * The injector is the one piece of process-wide mutable state in core/: it is a
 * test facility, atomic, and disarmed unless a test arms it.
 */
#ifndef REEL_ALLOC_H
#define REEL_ALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Returns NULL on failure (or when the injector fires). Zero-size requests return a unique pointer. */
void *reel_malloc(size_t size);
/* Zeroed memory; NULL on failure or on n*size overflow. */
void *reel_calloc(size_t n, size_t size);
/* As realloc(); on failure returns NULL and leaves `p` untouched. */
void *reel_realloc(void *p, size_t size);
/* 64-byte aligned allocation (for SIMD kernels); free with reel_aligned_free(). */
void *reel_aligned_alloc(size_t size);
void reel_aligned_free(void *p);
/* Accepts NULL. */
void reel_free(void *p);
/* Heap copy of a string; NULL on failure. */
char *reel_strdup(const char *s);
/* Heap copy of the first n bytes of s plus a NUL; NULL on failure. */
char *reel_strndup(const char *s, size_t n);

/*
 * Arms the injector: the allocation `countdown` calls from now fails (0 = the next
 * one). If `persist` is nonzero every allocation after that one fails too.
 * A negative countdown disarms it.
 */
void reel_alloc_fail_after(long countdown, int persist);
/* Number of allocations the injector has failed since it was last armed. */
long reel_alloc_failures(void);
/* Number of allocation calls seen since process start (for sizing injection loops). */
long reel_alloc_calls(void);
/*
 * Number of allocations that returned NULL since process start, injected or
 * real. A caller compares it before and after a library call to tell "out of
 * memory" from the library's other failures (jansson reports some allocation
 * failures as syntax errors).
 */
long reel_alloc_failed_total(void);

/* Internal: malloc that counts a failure but is never injected (jansson's allocator, see json.c). */
void *reel__malloc_uninjected(size_t size);

#ifdef __cplusplus
}
#endif
#endif
