/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The C client library of the queue: connect to a broker, submit jobs, follow
 * their events, query status, cancel, list (docs/protocol.md).
 *
 * A client is single-threaded: calls block until their reply arrives or their
 * timeout passes, and events that arrive meanwhile go to the event handler. While
 * waiting, the client pings an idle broker every heartbeat; when the broker is
 * silent for heartbeat × liveness it reconnects with backoff (250 ms doubling to
 * 8 s) and resends the request. When PONG shows a new broker id (a restart) it
 * sends FOLLOW for every job it follows. Every SUBMIT carries an idempotency key
 * (the client makes one up when the spec has none), so a resend after a reconnect
 * never creates a second job.
 *
 * Replies and job records are jansson objects; the caller owns (json_decref) the
 * objects returned through OUT parameters.
 */
#ifndef REEL_CLIENT_H
#define REEL_CLIENT_H

#include <stdint.h>

#include "reel/json.h"
#include "reel/log.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reel_client reel_client;

typedef struct reel_client_options {
  const char *endpoint;          /* required, e.g. "tcp://127.0.0.1:5555" */
  const char *tenant;            /* without auth: the tenant to act as (NULL = "default") */
  const char *broker_public_key; /* Z85; non-NULL turns CURVE on */
  const char *public_key;        /* Z85 client key pair (required with broker_public_key) */
  const char *secret_key;
  int64_t timeout_ms;     /* per request, including reconnects; default 30000 */
  int heartbeat_ms;       /* until the broker says otherwise; default 2500 */
  int liveness;           /* default 3 */
  const reel_logger *log; /* NULL: warnings to stderr */
} reel_client_options;

void reel_client_options_init(reel_client_options *o);

/*
 * Creates the client and connects (ZeroMQ connects in the background: a broker
 * that is not up yet is fine). EINVAL for bad options or keys.
 */
reel_status reel_client_new(const reel_client_options *o, reel_client **out /* OUT: */, reel_error *err);
/* Closes the connection. Accepts NULL. */
void reel_client_destroy(reel_client **c);

/* Called for every EVENT (header object, borrowed for the call) that arrives while the client waits. */
typedef void (*reel_client_event_fn)(void *ud, const json_t *event);
void reel_client_set_event_handler(reel_client *c, reel_client_event_fn fn, void *ud);
/*
 * Called for every progress EVENT that carries a preview image (payload frame;
 * the header's "preview" says its format), after the event handler: `payload`
 * is `len` bytes, borrowed for the call.
 */
typedef void (*reel_client_preview_fn)(void *ud, const json_t *event, const void *payload, size_t len);
void reel_client_set_preview_handler(reel_client *c, reel_client_preview_fn fn, void *ud);

/*
 * Sends one request and waits for its reply. `header` is borrowed (a "req" and,
 * when configured, "tenant" are added to a copy). On an ERROR reply returns its
 * code with err filled from it (field and message as the broker sent them). On
 * success *reply is the reply header (caller owns) and *reply_cmd its command.
 * ETIMEDOUT when no reply came within the timeout; EAUTH when the CURVE handshake
 * was refused.
 */
reel_status reel_client_request(reel_client *c, const char *command, const json_t *header, json_t **reply /* OUT: */,
                                reel_error *err);

/*
 * Submits a job spec (a JSON object; see docs/protocol.md). On success *accepted is
 * the ACCEPTED header (job_id, state, position, duplicate). The job is followed.
 */
reel_status reel_client_submit(reel_client *c, const json_t *spec, json_t **accepted /* OUT: */, reel_error *err);

/* STATUS: *job is the job record. */
reel_status reel_client_status(reel_client *c, const char *job_id, json_t **job /* OUT: */, reel_error *err);
/* FOLLOW: as status, and the job's events come to this client from now on. */
reel_status reel_client_follow(reel_client *c, const char *job_id, json_t **job /* OUT: may be NULL */,
                               reel_error *err);
/* CANCEL: *job is the record after the cancel (may be NULL). */
reel_status reel_client_cancel(reel_client *c, const char *job_id, json_t **job /* OUT: may be NULL */,
                               reel_error *err);
/* LIST: state may be NULL or "active"; limit 0 = default; after may be NULL. *reply has "jobs" and "more". */
reel_status reel_client_list(reel_client *c, const char *state, int limit, const char *after, json_t **reply /* OUT: */,
                             reel_error *err);

/*
 * Waits up to timeout_ms for incoming messages, hands events to the handler and
 * returns once some arrived (or the time is up). Pings and reconnects as needed.
 * Returns REEL_OK (also when nothing arrived).
 */
reel_status reel_client_poll(reel_client *c, int64_t timeout_ms, reel_error *err);

/*
 * Follows a job until it is terminal or timeout_ms passes (< 0: no limit). Every
 * event of this job also goes to fn (may be NULL). On success *job is the final
 * job record (caller owns; may be NULL). ETIMEDOUT when the timeout passed.
 */
reel_status reel_client_wait(reel_client *c, const char *job_id, int64_t timeout_ms, reel_client_event_fn fn, void *ud,
                             json_t **job /* OUT: may be NULL */, reel_error *err);

/* The broker id from the last PONG ("" before the first). Borrowed. */
const char *reel_client_broker_id(const reel_client *c);
/* Reconnects done so far (for tests and logs). */
int reel_client_reconnects(const reel_client *c);

#ifdef __cplusplus
}
#endif
#endif
