/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Arena allocator: a singly linked list of chunks, newest first. Oversized requests
 * get a chunk of their own. reel_arena_reset() keeps the oldest chunk, which after a
 * first job is usually large enough for the next one.
 */
#include "reel/arena.h"

#include <stdint.h>
#include <string.h>

#include "reel/alloc.h"

typedef struct chunk {
  struct chunk *prev; /* older chunk */
  size_t size;        /* usable bytes in data[] */
  size_t used;
  _Alignas(64) unsigned char data[];
} chunk;

struct reel_arena {
  chunk *head;
  size_t chunk_size;
  size_t budget;
  size_t reserved; /* sum of chunk sizes */
  size_t used_before_head; /* bytes used in chunks older than head */
  size_t peak;
};

reel_arena *reel_arena_new(size_t chunk_size, size_t budget) {
  reel_arena *a = reel_calloc(1, sizeof *a);
  if (!a) return NULL;
  a->chunk_size = chunk_size ? chunk_size : (size_t)1 << 20;
  a->budget = budget;
  return a;
}

static void free_chunks(chunk *c, chunk *stop) {
  while (c && c != stop) {
    chunk *prev = c->prev;
    reel_aligned_free(c);
    c = prev;
  }
}

void reel_arena_destroy(reel_arena **arena) {
  if (!arena || !*arena) return;
  free_chunks((*arena)->head, NULL);
  reel_free(*arena);
  *arena = NULL;
}

static size_t align_up(size_t v, size_t a) { return (v + a - 1) & ~(a - 1); }

void *reel_arena_alloc(reel_arena *a, size_t size, size_t align) {
  if (!a) return NULL;
  if (align == 0) align = 64;
  if ((align & (align - 1)) != 0 || align > 4096) return NULL;
  if (size > SIZE_MAX / 2) return NULL;
  chunk *c = a->head;
  if (c) {
    size_t off = align_up(c->used, align);
    if (off <= c->size && size <= c->size - off) {
      c->used = off + size;
      size_t used = a->used_before_head + c->used;
      if (used > a->peak) a->peak = used;
      return c->data + off;
    }
  }
  size_t need = size + align; /* room for alignment inside data[] */
  size_t csize = need > a->chunk_size ? need : a->chunk_size;
  if (a->budget && (a->reserved > a->budget || csize > a->budget - a->reserved)) {
    /* A chunk of exactly what is needed may still fit. */
    csize = need;
    if (a->reserved > a->budget || csize > a->budget - a->reserved) return NULL;
  }
  chunk *n = reel_aligned_alloc(sizeof(chunk) + csize);
  if (!n) return NULL;
  n->prev = c;
  n->size = csize;
  n->used = 0;
  if (c) a->used_before_head += c->used;
  a->head = n;
  a->reserved += csize;
  size_t off = align_up(0, align);
  n->used = off + size;
  size_t used = a->used_before_head + n->used;
  if (used > a->peak) a->peak = used;
  return n->data + off;
}

void *reel_arena_calloc(reel_arena *a, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) return NULL;
  void *p = reel_arena_alloc(a, n * size, 0);
  if (p) memset(p, 0, n * size);
  return p;
}

char *reel_arena_strdup(reel_arena *a, const char *s) {
  if (!s) return NULL;
  size_t len = strlen(s);
  char *d = reel_arena_alloc(a, len + 1, 1);
  if (d) memcpy(d, s, len + 1);
  return d;
}

void reel_arena_reset(reel_arena *a) {
  if (!a || !a->head) return;
  chunk *oldest = a->head;
  while (oldest->prev) oldest = oldest->prev;
  free_chunks(a->head, oldest);
  a->head = oldest;
  a->reserved = oldest->size;
  oldest->used = 0;
  a->used_before_head = 0;
}

reel_arena_mark reel_arena_get_mark(const reel_arena *a) {
  reel_arena_mark m = {NULL, 0};
  if (a && a->head) {
    m.chunk = a->head;
    m.used = a->head->used;
  }
  return m;
}

void reel_arena_release(reel_arena *a, reel_arena_mark m) {
  if (!a) return;
  if (!m.chunk) {
    /* Mark taken on an empty arena: drop everything but keep one chunk. */
    reel_arena_reset(a);
    return;
  }
  while (a->head && a->head != (chunk *)m.chunk) {
    chunk *c = a->head;
    a->head = c->prev;
    a->reserved -= c->size;
    reel_aligned_free(c);
    if (a->head) a->used_before_head -= a->head->used;
  }
  if (a->head) a->head->used = m.used;
}

size_t reel_arena_used(const reel_arena *a) {
  if (!a || !a->head) return 0;
  return a->used_before_head + a->head->used;
}

size_t reel_arena_peak(const reel_arena *a) { return a ? a->peak : 0; }
size_t reel_arena_reserved(const reel_arena *a) { return a ? a->reserved : 0; }
