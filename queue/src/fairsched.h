/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's dispatch order: two classes (interactive, batch) with a batch
 * floor, weighted fair share between tenants by stride scheduling, and priority +
 * acceptance order within a tenant. The policy is written down in
 * docs/protocol.md ("Scheduling policy"); this file implements exactly that and
 * nothing else, so that it can be tested without sockets or clocks.
 *
 * Items are intrusive (embedded in the broker's job); the scheduler never
 * allocates per item. Tenants are created on first use and live as long as the
 * scheduler.
 */
#ifndef REEL_QUEUE_FAIRSCHED_H
#define REEL_QUEUE_FAIRSCHED_H

#include <stddef.h>
#include <stdint.h>

#include "reel/status.h"

#define REEL_SCHED_CLASSES    2
#define REEL_SCHED_PRIORITIES 10
/* Pass increment for weight 1; a tenant of weight W advances by REEL_SCHED_STRIDE / W per dispatch. */
#define REEL_SCHED_STRIDE     1000000u
#define REEL_SCHED_MAX_WEIGHT 1000

typedef struct reel_sched_tenant reel_sched_tenant;

typedef struct reel_sched_item {
  struct reel_sched_item *prev, *next;
  reel_sched_tenant *tenant;
  int cls;      /* 0 interactive, 1 batch */
  int prio;     /* 0..9, higher first */
  uint64_t seq; /* acceptance order */
  int queued;   /* nonzero while in a queue */
} reel_sched_item;

struct reel_sched_tenant {
  char *name; /* owned */
  int weight; /* 1..REEL_SCHED_MAX_WEIGHT */
  uint64_t pass[REEL_SCHED_CLASSES];
  size_t queued[REEL_SCHED_CLASSES];
  size_t count[REEL_SCHED_CLASSES][REEL_SCHED_PRIORITIES];
  reel_sched_item *head[REEL_SCHED_CLASSES][REEL_SCHED_PRIORITIES];
  reel_sched_item *tail[REEL_SCHED_CLASSES][REEL_SCHED_PRIORITIES];
  size_t dispatched[REEL_SCHED_CLASSES]; /* totals, for tests and stats */
  reel_sched_tenant *next;
};

typedef struct reel_sched reel_sched;

/* `burst`: interactive dispatches in a row before batch gets one while both wait (< 1 counts as 1). NULL on ENOMEM. */
reel_sched *reel_sched_new(int burst);
/* Frees tenants (not items). Accepts NULL. */
void reel_sched_destroy(reel_sched **s);

/* Finds a tenant; creates it (weight 1) when `create`. NULL when absent or on ENOMEM. */
reel_sched_tenant *reel_sched_tenant_get(reel_sched *s, const char *name, int create);
/* Sets a tenant's weight (1..REEL_SCHED_MAX_WEIGHT), creating the tenant. ERANGE, ENOMEM. */
reel_status reel_sched_set_weight(reel_sched *s, const char *name, int weight);
/* First tenant (in creation order) for iteration via ->next. */
reel_sched_tenant *reel_sched_tenants(const reel_sched *s);

/*
 * Queues an item: in its tenant's (class, priority) list, ordered by seq (a
 * requeued item with an old seq goes back to its place). A tenant whose queue in
 * that class was empty has its pass raised to the smallest pass among the
 * tenants with queued work in the class (or the class's last dispatched pass).
 */
void reel_sched_push(reel_sched *s, reel_sched_item *it, reel_sched_tenant *t, int cls, int prio, uint64_t seq);
/* Removes a queued item (no effect if not queued). */
void reel_sched_remove(reel_sched *s, reel_sched_item *it);

/* Returns nonzero when the item may go to the worker being served. */
typedef int (*reel_sched_match_fn)(void *ud, const reel_sched_item *it);

/*
 * Chooses the next item for one worker by the policy, removes it from its queue,
 * charges its tenant's pass and returns it; NULL when nothing matches.
 */
reel_sched_item *reel_sched_pick(reel_sched *s, reel_sched_match_fn match, void *ud);

/* Queued items in a class (-1: both). */
size_t reel_sched_queued(const reel_sched *s, int cls);

/* Position of a queued item as docs/protocol.md defines it (1-based; 0 if not queued). O(queue of its tenant). */
size_t reel_sched_position(const reel_sched_item *it);
/* Position a new item would get at the tail of its (tenant, class, priority) list, counting itself. O(1). */
size_t reel_sched_tail_position(const reel_sched_item *it);
/* Calls fn for every queued item with its position; O(all queued). */
void reel_sched_foreach(const reel_sched *s, void (*fn)(void *ud, reel_sched_item *it, size_t position), void *ud);

/* Consecutive interactive dispatches since the last batch one (for tests). */
int reel_sched_streak(const reel_sched *s);

#endif
