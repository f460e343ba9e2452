/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Class floor + stride scheduling + priority FIFO. See sched.h and
 * docs/protocol.md ("Scheduling policy").
 */
#include "fairsched.h"

#include <stdlib.h>
#include <string.h>

#include "reel/alloc.h"

struct reel_sched {
  reel_sched_tenant *tenants, *last;
  size_t ntenants;
  int burst;
  int streak;
  uint64_t vtime[REEL_SCHED_CLASSES]; /* pass of the last dispatch in each class */
  size_t queued[REEL_SCHED_CLASSES];
  reel_sched_tenant **scratch; /* sorted active tenants; grown with ntenants */
  size_t scratch_cap;
};

reel_sched *reel_sched_new(int burst) {
  reel_sched *s = reel_calloc(1, sizeof *s);
  if (!s) return NULL;
  s->burst = burst < 1 ? 1 : burst;
  return s;
}

void reel_sched_destroy(reel_sched **sp) {
  if (!sp || !*sp) return;
  reel_sched *s = *sp;
  for (reel_sched_tenant *t = s->tenants, *n; t; t = n) {
    n = t->next;
    reel_free(t->name);
    reel_free(t);
  }
  reel_free(s->scratch);
  reel_free(s);
  *sp = NULL;
}

reel_sched_tenant *reel_sched_tenants(const reel_sched *s) { return s->tenants; }

reel_sched_tenant *reel_sched_tenant_get(reel_sched *s, const char *name, int create) {
  for (reel_sched_tenant *t = s->tenants; t; t = t->next)
    if (strcmp(t->name, name) == 0) return t;
  if (!create) return NULL;
  if (s->ntenants + 1 > s->scratch_cap) {
    size_t cap = s->scratch_cap ? s->scratch_cap * 2 : 16;
    reel_sched_tenant **ns = reel_realloc(s->scratch, cap * sizeof *ns);
    if (!ns) return NULL;
    s->scratch = ns;
    s->scratch_cap = cap;
  }
  reel_sched_tenant *t = reel_calloc(1, sizeof *t);
  if (!t) return NULL;
  t->name = reel_strdup(name);
  if (!t->name) {
    reel_free(t);
    return NULL;
  }
  t->weight = 1;
  if (s->last)
    s->last->next = t;
  else
    s->tenants = t;
  s->last = t;
  s->ntenants++;
  return t;
}

reel_status reel_sched_set_weight(reel_sched *s, const char *name, int weight) {
  if (weight < 1 || weight > REEL_SCHED_MAX_WEIGHT) return REEL_ERANGE;
  reel_sched_tenant *t = reel_sched_tenant_get(s, name, 1);
  if (!t) return REEL_ENOMEM;
  t->weight = weight;
  return REEL_OK;
}

/* Smallest pass among tenants other than `self` with queued work in cls; `fallback` when none. */
static uint64_t min_active_pass(const reel_sched *s, const reel_sched_tenant *self, int cls, uint64_t fallback) {
  int found = 0;
  uint64_t m = 0;
  for (const reel_sched_tenant *t = s->tenants; t; t = t->next) {
    if (t == self || t->queued[cls] == 0) continue;
    if (!found || t->pass[cls] < m) m = t->pass[cls];
    found = 1;
  }
  return found ? m : fallback;
}

void reel_sched_push(reel_sched *s, reel_sched_item *it, reel_sched_tenant *t, int cls, int prio, uint64_t seq) {
  if (it->queued) reel_sched_remove(s, it);
  if (cls < 0 || cls >= REEL_SCHED_CLASSES) cls = REEL_SCHED_CLASSES - 1;
  if (prio < 0) prio = 0;
  if (prio >= REEL_SCHED_PRIORITIES) prio = REEL_SCHED_PRIORITIES - 1;
  it->tenant = t;
  it->cls = cls;
  it->prio = prio;
  it->seq = seq;
  if (t->queued[cls] == 0) {
    uint64_t floor = min_active_pass(s, t, cls, s->vtime[cls]);
    if (t->pass[cls] < floor) t->pass[cls] = floor;
  }
  /* Walk back from the tail to keep seq order; new items stop at once. */
  reel_sched_item *after = t->tail[cls][prio];
  while (after && after->seq > seq) after = after->prev;
  it->prev = after;
  it->next = after ? after->next : t->head[cls][prio];
  if (it->next)
    it->next->prev = it;
  else
    t->tail[cls][prio] = it;
  if (after)
    after->next = it;
  else
    t->head[cls][prio] = it;
  it->queued = 1;
  t->queued[cls]++;
  t->count[cls][prio]++;
  s->queued[cls]++;
}

void reel_sched_remove(reel_sched *s, reel_sched_item *it) {
  if (!it->queued) return;
  reel_sched_tenant *t = it->tenant;
  int cls = it->cls, prio = it->prio;
  if (it->prev)
    it->prev->next = it->next;
  else
    t->head[cls][prio] = it->next;
  if (it->next)
    it->next->prev = it->prev;
  else
    t->tail[cls][prio] = it->prev;
  it->prev = it->next = NULL;
  it->queued = 0;
  t->queued[cls]--;
  t->count[cls][prio]--;
  s->queued[cls]--;
}

static int cmp_tenant(const void *a, const void *b, int cls) {
  const reel_sched_tenant *x = *(reel_sched_tenant *const *)a, *y = *(reel_sched_tenant *const *)b;
  if (x->pass[cls] != y->pass[cls]) return x->pass[cls] < y->pass[cls] ? -1 : 1;
  return strcmp(x->name, y->name);
}
static int cmp_tenant0(const void *a, const void *b) { return cmp_tenant(a, b, 0); }
static int cmp_tenant1(const void *a, const void *b) { return cmp_tenant(a, b, 1); }

/* The item the policy would give the worker from class cls, or NULL. */
static reel_sched_item *candidate(reel_sched *s, int cls, reel_sched_match_fn match, void *ud) {
  if (s->queued[cls] == 0) return NULL;
  size_t n = 0;
  for (reel_sched_tenant *t = s->tenants; t; t = t->next)
    if (t->queued[cls]) s->scratch[n++] = t;
  qsort(s->scratch, n, sizeof *s->scratch, cls == 0 ? cmp_tenant0 : cmp_tenant1);
  for (size_t i = 0; i < n; i++) {
    reel_sched_tenant *t = s->scratch[i];
    for (int p = REEL_SCHED_PRIORITIES - 1; p >= 0; p--)
      for (reel_sched_item *it = t->head[cls][p]; it; it = it->next)
        if (!match || match(ud, it)) return it;
  }
  return NULL;
}

reel_sched_item *reel_sched_pick(reel_sched *s, reel_sched_match_fn match, void *ud) {
  reel_sched_item *inter = candidate(s, 0, match, ud);
  reel_sched_item *batch = candidate(s, 1, match, ud);
  reel_sched_item *it;
  if (inter && batch)
    it = s->streak >= s->burst ? batch : inter;
  else
    it = inter ? inter : batch;
  if (!it) return NULL;
  if (it->cls == 0)
    s->streak++;
  else
    s->streak = 0;
  reel_sched_tenant *t = it->tenant;
  s->vtime[it->cls] = t->pass[it->cls];
  t->pass[it->cls] += REEL_SCHED_STRIDE / (uint64_t)t->weight;
  t->dispatched[it->cls]++;
  reel_sched_remove(s, it);
  return it;
}

size_t reel_sched_queued(const reel_sched *s, int cls) {
  if (cls < 0) return s->queued[0] + s->queued[1];
  return cls < REEL_SCHED_CLASSES ? s->queued[cls] : 0;
}

size_t reel_sched_position(const reel_sched_item *it) {
  if (!it->queued) return 0;
  const reel_sched_tenant *t = it->tenant;
  size_t pos = 1;
  for (int p = REEL_SCHED_PRIORITIES - 1; p > it->prio; p--) pos += t->count[it->cls][p];
  for (const reel_sched_item *x = t->head[it->cls][it->prio]; x && x != it; x = x->next) pos++;
  return pos;
}

size_t reel_sched_tail_position(const reel_sched_item *it) {
  const reel_sched_tenant *t = it->tenant;
  size_t pos = 0;
  for (int p = REEL_SCHED_PRIORITIES - 1; p >= it->prio; p--) pos += t->count[it->cls][p];
  return pos;
}

void reel_sched_foreach(const reel_sched *s, void (*fn)(void *ud, reel_sched_item *it, size_t position), void *ud) {
  for (reel_sched_tenant *t = s->tenants; t; t = t->next)
    for (int c = 0; c < REEL_SCHED_CLASSES; c++) {
      size_t pos = 1;
      for (int p = REEL_SCHED_PRIORITIES - 1; p >= 0; p--)
        for (reel_sched_item *it = t->head[c][p]; it; it = it->next) fn(ud, it, pos++);
    }
}

int reel_sched_streak(const reel_sched *s) { return s->streak; }
