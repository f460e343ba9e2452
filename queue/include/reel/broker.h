/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The queue broker: owns job state, journals it, dispatches jobs to workers,
 * tracks leases by heartbeat and tells clients what happens to their jobs. The
 * protocol it speaks and the policies it applies are docs/protocol.md.
 *
 * One broker is single-threaded: reel_broker_run() (or repeated
 * reel_broker_poll() calls) serves its ROUTER socket, its ZAP handler (with auth)
 * and its timers. Each loop iteration handles every waiting message, commits the
 * journal once (group commit), then sends the iteration's replies and
 * dispatches, so an ACCEPTED always follows the fsync of its job.
 */
#ifndef REEL_BROKER_H
#define REEL_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "reel/jobspec.h"
#include "reel/log.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reel_broker reel_broker;

/* Milliseconds from an injectable clock (tests drive leases and deadlines with a fake one). */
typedef int64_t (*reel_clock_fn)(void *ud);

typedef struct reel_broker_options {
  const char *listen;         /* ZeroMQ endpoint to bind, e.g. "tcp://0.0.0.0:5555" (required) */
  const char *journal_dir;    /* directory of the journal; NULL = in memory only (not durable) */
  int journal_nosync;         /* commit without fdatasync (benchmarks only) */
  const char *auth_dir;       /* KEYDIR for CURVE + ZAP; NULL = no auth */
  int heartbeat_ms;           /* default 2500 */
  int liveness;               /* heartbeats missed before a peer is dead; default 3 */
  int max_attempts;           /* dispatches per job before it fails; default 3 */
  int restart_grace_ms;       /* after a restart, how long running jobs wait for their worker to claim them;
                                 0 = max(2 x heartbeat x liveness, 3000) */
  size_t max_header_bytes;    /* default REEL_PROTO_DEFAULT_MAX_HEADER */
  size_t max_payload_bytes;   /* default REEL_PROTO_DEFAULT_MAX_PAYLOAD */
  reel_job_limits job_limits; /* limits applied to submitted specs */
  int max_queued_per_tenant;  /* default 100000 */
  int interactive_burst;      /* default 9 */
  uint64_t compact_bytes;     /* compaction threshold; default 64 MiB */
  int retain_finished;        /* terminal jobs kept; default 10000 */
  const reel_logger *log;     /* NULL: warnings and errors to stderr */
  reel_clock_fn mono_ms;      /* monotonic clock for heartbeats and leases; NULL = reel_now_ms */
  reel_clock_fn wall_ms;      /* wall clock for timestamps and deadlines; NULL = reel_wall_ms */
  void *clock_ud;
} reel_broker_options;

/* Fills the defaults above (listen and journal_dir NULL). Cannot fail. */
void reel_broker_options_init(reel_broker_options *o);

/*
 * Opens and replays the journal, loads the auth key directory and binds. On
 * failure *out is NULL and err says why (ESTATE: journal in use; EFORMAT:
 * corrupt journal or key file; ENETWORK: cannot bind).
 */
reel_status reel_broker_new(const reel_broker_options *o, reel_broker **out /* OUT: */, reel_error *err);

/* Unbinds, closes the journal (nothing pending is lost: everything acknowledged is committed). Accepts NULL. */
void reel_broker_destroy(reel_broker **b);

/* Sets a tenant's fair-share weight (1..1000). ERANGE, ENOMEM. */
reel_status reel_broker_set_tenant_weight(reel_broker *b, const char *tenant, int weight);

/*
 * One loop iteration: waits up to timeout_ms for messages (less when a timer is
 * due), handles them, commits the journal, sends replies, dispatches, runs timers.
 * Returns REEL_OK, or EIO when the journal cannot be written (the broker must
 * then stop: the replies of that iteration were not sent).
 */
reel_status reel_broker_poll(reel_broker *b, int timeout_ms, reel_error *err);

/* Runs reel_broker_poll() until reel_broker_stop() or an error. */
reel_status reel_broker_run(reel_broker *b, reel_error *err);

/* Asks reel_broker_run() to return after the current iteration. Async-signal-safe. */
void reel_broker_stop(reel_broker *b);

/* The endpoint actually bound (resolves "tcp://127.0.0.1:*"). Borrowed. */
const char *reel_broker_endpoint(const reel_broker *b);

/* The broker instance id sent in PONG and WELCOME. Borrowed. */
const char *reel_broker_id(const reel_broker *b);

typedef struct reel_broker_stats {
  size_t jobs, queued, running, finished, workers;
  uint64_t messages_total; /* messages received from peers */
  uint64_t accepted_total, dispatched_total, finished_total, requeued_total;
  uint64_t journal_bytes, journal_commits, compactions;
  uint64_t replayed_records, replay_truncated_bytes;
} reel_broker_stats;

void reel_broker_get_stats(const reel_broker *b, reel_broker_stats *st /* OUT: */);

#ifdef __cplusplus
}
#endif
#endif
