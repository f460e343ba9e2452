/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker connector: the worker half of the queue protocol (docs/protocol.md,
 * "Worker commands"), for a process that renders jobs.
 *
 * A background I/O thread owns the ZeroMQ socket: it announces the worker's
 * capabilities (READY), keeps heartbeats going while jobs run for minutes,
 * notices a dead or restarted broker and reconnects with backoff, marks jobs
 * canceled when the broker says so, and keeps every result until the broker has
 * acknowledged it (a job that finished while the broker was down is reported when
 * it is back). Application threads call reel_worker_conn_next() to get a job,
 * reel_worker_conn_progress() at each step boundary, and
 * reel_worker_conn_finish() once; these calls are thread-safe.
 */
#ifndef REEL_WORKER_CONN_H
#define REEL_WORKER_CONN_H

#include <stdint.h>

#include "reel/jobspec.h"
#include "reel/json.h"
#include "reel/log.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reel_worker_conn reel_worker_conn;

typedef struct reel_worker_conn_options {
  const char *endpoint;          /* required */
  const char *name;              /* worker name (stable across restarts); required */
  int capacity;                  /* jobs at once, 1..64; default 1 */
  const json_t *capabilities;    /* the READY "capabilities" object (borrowed; copied); NULL = anything */
  const char *broker_public_key; /* Z85; non-NULL turns CURVE on */
  const char *public_key, *secret_key;
  int heartbeat_ms; /* until WELCOME says otherwise; default 2500 */
  int liveness;     /* default 3 */
  const reel_logger *log;
} reel_worker_conn_options;

void reel_worker_conn_options_init(reel_worker_conn_options *o);

/* A job handed to the application. Read-only for the application except through the calls below. */
typedef struct reel_worker_job {
  char id[32];
  int attempt;
  char tenant[72];
  json_t *spec_json;     /* the job spec as received (owned by the job) */
  reel_jobspec spec;     /* parsed with reel_jobspec_from_json */
  int64_t received_ms;   /* mono */
  volatile int canceled; /* set by the I/O thread when the broker sends CANCEL */
} reel_worker_job;

/* Starts the I/O thread and connects. EINVAL for bad options; ENOMEM. */
reel_status reel_worker_conn_new(const reel_worker_conn_options *o, reel_worker_conn **out /* OUT: */, reel_error *err);

/*
 * Stops: sends BYE (running jobs are requeued without counting as an attempt),
 * waits up to linger_ms for unacknowledged results to be acknowledged, stops the
 * thread and frees everything. Jobs not finished are abandoned. Accepts NULL.
 */
void reel_worker_conn_destroy(reel_worker_conn **w, int64_t linger_ms);

/*
 * Waits up to timeout_ms (< 0: forever) for a job. REEL_OK with *job set, or
 * ETIMEDOUT. A job whose spec does not parse is failed back to the broker
 * (EINVAL) and not returned. The caller must pass the job to
 * reel_worker_conn_finish() exactly once.
 */
reel_status reel_worker_conn_next(reel_worker_conn *w, int64_t timeout_ms, reel_worker_job **job /* OUT: */,
                                  reel_error *err);

/*
 * Reports progress (sent at most every 100 ms per job; the last one is kept).
 * `fraction` in 0..1 for the whole job; eta_ms < 0 = unknown. Returns ECANCELED
 * when the broker canceled the job: stop at this step boundary and finish it as
 * canceled.
 */
reel_status reel_worker_conn_progress(reel_worker_conn *w, reel_worker_job *job, const char *stage, int step, int steps,
                                      double fraction, int64_t eta_ms);

/*
 * As reel_worker_conn_progress with a preview image (PNG bytes, copied; at most
 * the broker's max_payload_bytes) as the PROGRESS payload frame. When a report
 * is replaced before it was sent, its preview is carried over unless the new
 * one has its own. payload may be NULL (len 0).
 */
reel_status reel_worker_conn_progress_payload(reel_worker_conn *w, reel_worker_job *job, const char *stage, int step,
                                              int steps, double fraction, int64_t eta_ms, const void *payload,
                                              size_t len);

/*
 * Reports the end of a job and releases it (*job becomes NULL). state is
 * REEL_JOB_SUCCEEDED (outputs: array of {url, bytes, content_type}), REEL_JOB_FAILED
 * (err: the failure; retry nonzero for a transient one) or REEL_JOB_CANCELED.
 * `outputs`, `timings` are borrowed. The result is kept and resent until the
 * broker acknowledges it.
 */
reel_status reel_worker_conn_finish(reel_worker_conn *w, reel_worker_job **job, int state, const json_t *outputs,
                                    const reel_error *failure, int retry, const json_t *timings, int seed_set,
                                    uint64_t seed);

/*
 * Changes how many jobs the broker may lease to this worker at once (1..64):
 * sent as CREDIT (and in READY after a reconnect). Jobs already leased stay.
 * ERANGE for a bad value.
 */
reel_status reel_worker_conn_set_capacity(reel_worker_conn *w, int capacity);

typedef struct reel_worker_conn_stats {
  int connected; /* WELCOME received on the current connection */
  int reconnects;
  int running; /* jobs handed out and not finished */
  int unacked; /* results waiting for ACK */
  uint64_t jobs_received, results_acked;
  char broker_id[40];
} reel_worker_conn_stats;

void reel_worker_conn_get_stats(reel_worker_conn *w, reel_worker_conn_stats *st /* OUT: */);

#ifdef __cplusplus
}
#endif
#endif
