/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation wrappers and the failure injector. See reel/alloc.h.
 */
#include "reel/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The only mutable process-wide state in core/ (a test facility, see alloc.h). */
static atomic_long inject_countdown = -1;
static atomic_int inject_persist = 0;
static atomic_long inject_failures = 0;
static atomic_long alloc_calls = 0;
static atomic_long alloc_failed_total = 0; /* injected and real failures */

void reel_alloc_fail_after(long countdown, int persist) {
  atomic_store(&inject_failures, 0);
  atomic_store(&inject_persist, persist ? 1 : 0);
  atomic_store(&inject_countdown, countdown < 0 ? -1 : countdown);
}

long reel_alloc_failures(void) { return atomic_load(&inject_failures); }
long reel_alloc_calls(void) { return atomic_load(&alloc_calls); }
long reel_alloc_failed_total(void) { return atomic_load(&alloc_failed_total); }

/* Counts a NULL result so that callers can tell "out of memory" from other failures of a library. */
static void *counted(void *p) {
  if (!p) atomic_fetch_add(&alloc_failed_total, 1);
  return p;
}

/* Returns nonzero when this allocation must fail. */
static int inject_fire(void) {
  atomic_fetch_add(&alloc_calls, 1);
  long c = atomic_load(&inject_countdown);
  if (c < 0) return 0;
  if (c == 0) {
    if (!atomic_load(&inject_persist)) atomic_store(&inject_countdown, -1);
    atomic_fetch_add(&inject_failures, 1);
    return 1;
  }
  /* Another thread may have raced us; a lost decrement only delays the failure. */
  atomic_compare_exchange_strong(&inject_countdown, &c, c - 1);
  return 0;
}

void *reel_malloc(size_t size) {
  if (inject_fire()) return counted(NULL);
  return counted(malloc(size ? size : 1));
}

void *reel_calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  if (inject_fire()) return counted(NULL);
  return counted(calloc(n ? n : 1, size ? size : 1));
}

void *reel_realloc(void *p, size_t size) {
  if (inject_fire()) return counted(NULL);
  return counted(realloc(p, size ? size : 1));
}

void *reel_aligned_alloc(size_t size) {
  if (inject_fire()) return counted(NULL);
  void *p = NULL;
  if (posix_memalign(&p, 64, size ? size : 64) != 0) return counted(NULL);
  return p;
}

void reel_aligned_free(void *p) { free(p); }

void reel_free(void *p) { free(p); }

void *reel__malloc_uninjected(size_t size) { return counted(malloc(size ? size : 1)); }

char *reel_strdup(const char *s) {
  if (!s) return NULL;
  return reel_strndup(s, strlen(s));
}

char *reel_strndup(const char *s, size_t n) {
  if (!s) return NULL;
  size_t len = strnlen(s, n);
  char *d = reel_malloc(len + 1);
  if (!d) return NULL;
  memcpy(d, s, len);
  d[len] = '\0';
  return d;
}
