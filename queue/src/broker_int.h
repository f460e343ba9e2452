/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Broker internals shared by broker.c (sockets, message handlers, timers) and
 * broker_jobs.c (job table, state transitions, journal records, replay,
 * snapshots). Not a public interface.
 */
#ifndef REEL_QUEUE_BROKER_INT_H
#define REEL_QUEUE_BROKER_INT_H

#include <signal.h>
#include <stdint.h>

#include "reel/broker.h"
#include "reel/journal.h"
#include "reel/protocol.h"
#include "fairsched.h"

#define RID_MAX 256

typedef struct brk_worker brk_worker;

typedef struct brk_peer {
  unsigned char rid[RID_MAX];
  size_t len;
} brk_peer;

typedef struct brk_job {
  char id[REEL_PROTO_JOB_ID_LEN + 1];
  reel_sched_item item; /* queue link while queued */
  reel_sched_tenant *tenant;
  reel_job_state state;
  int cls, prio;
  uint64_t seq;
  json_t *spec; /* normalised spec (owned) */
  /* Needs, for matching workers (strings borrowed from spec). */
  const char *model, *region;
  int width, height, frames;
  int backend;
  const char *idem; /* idempotency key, borrowed from spec; NULL = none */
  int64_t deadline_ms;
  int attempts;                                 /* dispatches so far */
  int charged;                                  /* attempts that count towards the limit */
  int64_t accepted_ms, started_ms, finished_ms; /* wall */
  brk_worker *worker;                           /* running on this connected worker */
  char *worker_name;                            /* running: the worker's name (also while orphaned) */
  int64_t orphan_until;                         /* mono; running with no connected worker (after a restart) */
  int cancel_requested;
  json_t *progress;      /* last progress object */
  int progress_dirty;    /* not yet forwarded */
  int64_t progress_sent; /* mono */
  void *preview;         /* preview image of the last progress not yet forwarded (reel_malloc'd) */
  size_t preview_len;
  json_t *outputs, *error, *timings, *history;
  int seed_set;
  uint64_t seed;
  brk_peer *followers;
  int nfollowers, capfollowers;
  size_t position, position_sent;
  struct brk_job *hnext, *inext;       /* id and idempotency hash chains */
  struct brk_job *all_prev, *all_next; /* acceptance order */
  struct brk_job *fin_prev, *fin_next; /* finish order (terminal jobs) */
} brk_job;

struct brk_worker {
  brk_peer peer;
  char name[REEL_PROTO_NAME_MAX + 1];
  int capacity;
  brk_job **jobs;
  int njobs, capjobs;
  json_t *caps; /* as announced (owned) */
  char **models;
  int nmodels;
  unsigned backends; /* bit per reel_backend_kind; 0 = any */
  int max_width, max_height, max_frames;
  char *region;
  char **labels;
  int nlabels;
  int64_t last_recv, last_send, idle_since; /* mono */
  int64_t connected_ms;                     /* wall */
  int flag;                                 /* scratch for dispatch rounds */
  int welcome_pending;                      /* WELCOME waits in the outbox: JOBs must not overtake it */
  brk_worker *next;
};

typedef struct brk_out {
  brk_peer peer;
  reel_proto_command cmd;
  char *hdr; /* from json_dumps: free() */
  size_t hdr_len;
  void *payload; /* reel_malloc'd copy or NULL */
  size_t payload_len;
} brk_out;

typedef struct brk_key {
  unsigned char key[32];
  int worker;                         /* 0 client, 1 worker */
  char name[REEL_PROTO_NAME_MAX + 1]; /* tenant (client) or key name (worker) */
} brk_key;

struct reel_broker {
  reel_broker_options o;
  reel_logger deflog;
  const reel_logger *log;
  char id[33];
  char endpoint[256];
  void *ctx, *router, *zap;
  int auth;
  brk_key *keys;
  int nkeys;
  unsigned char secret[32];
  reel_journal *journal;
  int replaying;
  volatile sig_atomic_t stop;
  reel_sched *sched;
  /* Job table. */
  brk_job **buckets, **ibuckets;
  size_t nbuckets, njobs;
  brk_job *all_head, *all_tail;
  brk_job *fin_head, *fin_tail;
  size_t nfinished, nqueued_deadline, norphans;
  uint64_t next_seq;
  uint32_t id_counter;
  int64_t last_id_ms;
  brk_worker *workers;
  size_t nworkers;
  brk_out *out; /* messages of the current group: sent after the journal commit that covers them */
  size_t nout, capout;
  brk_out *gated; /* messages waiting for the commit in flight */
  size_t ngated, capgated;
  int positions_valid;
  /* Timers (mono). */
  int64_t next_scan, next_positions;
  uint64_t snapshot_bytes; /* journal size after the last compaction (or open) */
  /* Counters. */
  uint64_t messages_total, accepted_total, dispatched_total, finished_total, requeued_total, compactions;
  uint64_t replayed_records, replay_truncated;
};

/* Clocks. */
int64_t brk_mono(const reel_broker *b);
int64_t brk_wall(const reel_broker *b);
int64_t brk_lease_ms(const reel_broker *b);

/* Job table (broker_jobs.c). */
reel_status brk_table_init(reel_broker *b);
void brk_table_fini(reel_broker *b);
brk_job *brk_job_find(const reel_broker *b, const char *id);
brk_job *brk_job_find_idem(const reel_broker *b, const reel_sched_tenant *t, const char *key);
void brk_job_free(reel_broker *b, brk_job *j);
/* Drops the oldest terminal jobs beyond the retention limit (between iterations, never mid-handler). */
void brk_retention(reel_broker *b);
reel_status brk_follow(brk_job *j, const brk_peer *p);

/*
 * State transitions. Each writes its journal record (unless replaying), applies
 * the change and queues events to followers. On ENOMEM/journal failure nothing
 * has changed.
 */
reel_status brk_job_submit(reel_broker *b, const char *id, uint64_t seq, reel_sched_tenant *t, json_t *spec,
                           int64_t accepted_ms, brk_job **out, reel_error *err);
reel_status brk_job_dispatch(reel_broker *b, brk_job *j, brk_worker *w, const char *worker_name, int attempt,
                             reel_error *err);
/* The lease of a running job ended without a result: outcome "lost" or "left". Requeues, fails or cancels. */
reel_status brk_job_lost(reel_broker *b, brk_job *j, const char *outcome, reel_error *err);
/* A retryable failure: requeue if attempts remain. */
reel_status brk_job_requeue(reel_broker *b, brk_job *j, const char *outcome, json_t *error, reel_error *err);
reel_status brk_job_cancel(reel_broker *b, brk_job *j, reel_error *err);
reel_status brk_job_finish(reel_broker *b, brk_job *j, reel_job_state state, const char *outcome, json_t *outputs,
                           json_t *error, json_t *timings, int seed_set, uint64_t seed, reel_error *err);

/* JSON of a job record (docs/protocol.md "Job record"). NULL on ENOMEM. */
json_t *brk_job_json(reel_broker *b, brk_job *j, int with_spec);
/* Recomputes j->position for every queued job when stale. */
void brk_positions(reel_broker *b);

/* Journal replay and snapshot (broker_jobs.c). */
reel_status brk_replay(void *ud, const char *data, size_t len, reel_error *err);
reel_status brk_snapshot(void *ud, reel_journal *j, reel_error *err);
/* After replay: orphan leases for running jobs. */
void brk_after_replay(reel_broker *b);

/* Worker side of a transition (broker.c). */
void brk_worker_detach(brk_worker *w, brk_job *j);

/* Outgoing messages (broker.c): queued now, sent after the journal commit. */
reel_status brk_send(reel_broker *b, const brk_peer *to, reel_proto_command cmd, json_t *header /* stolen */);
void brk_event_state(reel_broker *b, brk_job *j);
void brk_event_progress(reel_broker *b, brk_job *j);
/* Forgets a job's pending preview image. */
void brk_job_drop_preview(brk_job *j);

#endif
