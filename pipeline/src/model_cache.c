/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker's model cache: a short list of loaded models with their byte
 * counts and last use, on one backend. See model_cache.h.
 */
#include "model_cache.h"

#include <string.h>

#include "gen_internal.h"
#include "reel/alloc.h"
#include "reel/clock.h"

typedef struct entry {
  char *dir;
  reel_model *m;
  uint64_t weights, scratch; /* scratch: the largest private scratch a job of it needed */
  uint64_t last_use;         /* a counter, bumped at every get */
  struct entry *next;
} entry;

struct reel__model_cache {
  reel_backend_kind kind;
  int threads;
  uint64_t budget;
  const reel_logger *log;
  reel_backend *b;
  entry *list;
  uint64_t tick;
  uint64_t loaded, evicted;
};

reel__model_cache *reel__model_cache_new(reel_backend_kind kind, int threads, uint64_t budget, const reel_logger *log) {
  reel__model_cache *c = reel_calloc(1, sizeof *c);
  if (!c) return NULL;
  c->kind = kind;
  c->threads = threads;
  c->budget = budget;
  c->log = log;
  return c;
}

static void free_entry(entry *e) {
  reel_model_destroy(&e->m);
  reel_free(e->dir);
  reel_free(e);
}

void reel__model_cache_reset(reel__model_cache *c) {
  if (!c) return;
  for (entry *e = c->list, *n; e; e = n) {
    n = e->next;
    free_entry(e);
  }
  c->list = NULL;
  reel_backend_destroy(&c->b);
}

void reel__model_cache_destroy(reel__model_cache **pc) {
  if (!pc || !*pc) return;
  reel__model_cache_reset(*pc);
  reel_free(*pc);
  *pc = NULL;
}

static uint64_t cached_bytes(const reel__model_cache *c, const entry *except) {
  uint64_t total = 0;
  for (const entry *e = c->list; e; e = e->next)
    if (e != except) total += e->weights + e->scratch;
  return total;
}

/* Drops the least recently used model other than `keep`; 0 when there is none. */
static int evict_one(reel__model_cache *c, const entry *keep) {
  entry **victim = NULL;
  for (entry **pp = &c->list; *pp; pp = &(*pp)->next)
    if (*pp != keep && (!victim || (*pp)->last_use < (*victim)->last_use)) victim = pp;
  if (!victim) return 0;
  entry *e = *victim;
  *victim = e->next;
  reel_log(c->log, REEL_LOG_INFO, "worker", NULL, "model dropped from the cache", "model=%s bytes=%llu", e->dir,
           (unsigned long long)(e->weights + e->scratch));
  free_entry(e);
  c->evicted++;
  return 1;
}

static entry *find_model(reel__model_cache *c, const reel_model *m) {
  for (entry *e = c->list; e; e = e->next)
    if (e->m == m) return e;
  return NULL;
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

reel_status reel__model_cache_get(reel__model_cache *c, const char *dir, reel_model **out, int *loaded,
                                  reel_error *err) {
  *out = NULL;
  *loaded = 0;
  for (entry *e = c->list; e; e = e->next) {
    if (!strcmp(e->dir, dir)) {
      e->last_use = ++c->tick;
      *out = e->m;
      return REEL_OK;
    }
  }
  uint64_t weights = reel_model_folder_weight_bytes(dir);
  if (c->budget && weights > c->budget)
    return reel_error_set(err, REEL_ENOMEM, "job.model",
                          "'%.200s' has %.1f MiB of weights, over the worker's memory budget of %.1f MiB", dir,
                          mib(weights), mib(c->budget));
  while (c->budget && cached_bytes(c, NULL) + weights > c->budget && evict_one(c, NULL)) {
  }
  reel_status st;
  if (!c->b && (st = reel__gen_open_backend(c->kind, c->threads, &c->b, err))) return st;
  entry *e = reel_calloc(1, sizeof *e);
  if (!e || !(e->dir = reel_strdup(dir))) {
    reel_free(e);
    return reel_error_set(err, REEL_ENOMEM, "worker", "out of memory");
  }
  int64_t t0 = reel_now_ns();
  if ((st = reel_model_open(c->b, dir, &e->m, err))) {
    reel_error_prefix_field(err, "model", ':');
    free_entry(e);
    return st;
  }
  e->weights = reel_model_weight_bytes(e->m);
  e->last_use = ++c->tick;
  e->next = c->list;
  c->list = e;
  c->loaded++;
  reel_log(c->log, REEL_LOG_INFO, "worker", NULL, "model loaded", "model=%s family=%s backend=%s bytes=%llu seconds=%.3f",
           dir, reel_model_get_info(e->m)->family, reel_backend_name(c->b), (unsigned long long)e->weights,
           (double)(reel_now_ns() - t0) / 1e9);
  *out = e->m;
  *loaded = 1;
  return REEL_OK;
}

reel_status reel__model_cache_fit(reel__model_cache *c, reel_model *m, uint64_t arena, uint64_t scratch,
                                  const char *what, reel_error *err) {
  entry *e = find_model(c, m);
  if (!e) return reel_error_set(err, REEL_EINTERNAL, "worker", "model not in the cache");
  /* The model's private scratch only grows (it is kept between jobs). */
  const uint64_t held = scratch > e->scratch ? scratch : e->scratch;
  const uint64_t own = e->weights + held + arena;
  if (c->budget && own > c->budget)
    return reel_error_set(err, REEL_ENOMEM, "job",
                          "%s needs %.1f MiB (weights %.1f + scratch %.1f), over the worker's memory budget of %.1f "
                          "MiB",
                          what, mib(own), mib(e->weights), mib(held + arena), mib(c->budget));
  e->scratch = held;
  while (c->budget && cached_bytes(c, e) + own > c->budget && evict_one(c, e)) {
  }
  return REEL_OK;
}

void reel__model_cache_get_stats(const reel__model_cache *c, reel__model_cache_stats *st) {
  memset(st, 0, sizeof *st);
  for (const entry *e = c->list; e; e = e->next) st->models++;
  st->bytes = cached_bytes(c, NULL);
  st->loaded = c->loaded;
  st->evicted = c->evicted;
}
