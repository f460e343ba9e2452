/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The queue client library: one DEALER socket, synchronous requests matched by
 * "req", events to a callback, heartbeats, reconnection with backoff and
 * re-following after a broker restart. See reel/client.h.
 */
#include "reel/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/keys.h"
#include "reel/protocol.h"
#include "wire.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 8000

struct reel_client {
  char *endpoint, *tenant;
  int curve;
  unsigned char server_key[32], public_key[32], secret_key[32];
  int64_t timeout_ms;
  int heartbeat_ms, liveness;
  reel_logger deflog;
  const reel_logger *log;
  void *ctx, *sock, *mon;
  char mon_endpoint[64];
  int64_t next_req;
  int64_t last_recv, last_send; /* mono ms */
  int64_t unanswered_since;     /* first send since the last receive; 0 = none */
  int64_t backoff;
  int reconnects;
  int auth_failed;
  char auth_msg[160];
  char broker_id[40];
  /* Pending request (resent after a reconnect). */
  int64_t pending_req;
  const char *pending_cmd;
  char *pending_hdr;
  size_t pending_len;
  /* Followed jobs (re-followed after a broker restart). */
  char (*followed)[REEL_PROTO_JOB_ID_LEN + 1];
  size_t nfollowed, capfollowed;
  reel_client_event_fn handler;
  void *handler_ud;
  reel_client_preview_fn preview;
  void *preview_ud;
  /* reel_client_wait's target. */
  const char *wait_id;
  reel_client_event_fn wait_fn;
  void *wait_ud;
  json_t *wait_final;
};

void reel_client_options_init(reel_client_options *o) {
  memset(o, 0, sizeof *o);
  o->timeout_ms = 30000;
  o->heartbeat_ms = 2500;
  o->liveness = 3;
}

/* ---- followed set ----------------------------------------------------------------------------- */

static int followed_index(const reel_client *c, const char *id) {
  for (size_t i = 0; i < c->nfollowed; i++)
    if (strcmp(c->followed[i], id) == 0) return (int)i;
  return -1;
}

static void follow_add(reel_client *c, const char *id) {
  if (!id || strlen(id) != REEL_PROTO_JOB_ID_LEN || followed_index(c, id) >= 0) return;
  if (c->nfollowed == c->capfollowed) {
    size_t cap = c->capfollowed ? c->capfollowed * 2 : 16;
    void *n = reel_realloc(c->followed, cap * sizeof *c->followed);
    if (!n) return; /* not re-followed after a restart: the caller can still poll STATUS */
    c->followed = n;
    c->capfollowed = cap;
  }
  memcpy(c->followed[c->nfollowed++], id, REEL_PROTO_JOB_ID_LEN + 1);
}

static void follow_remove(reel_client *c, const char *id) {
  int i = id ? followed_index(c, id) : -1;
  if (i < 0) return;
  memcpy(c->followed[i], c->followed[c->nfollowed - 1], REEL_PROTO_JOB_ID_LEN + 1);
  c->nfollowed--;
}

/* ---- socket ----------------------------------------------------------------------------------- */

static void close_socket(reel_client *c) {
  int zero = 0;
  if (c->sock) {
    zmq_socket_monitor(c->sock, NULL, 0);
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(c->sock);
  }
  if (c->mon) {
    zmq_setsockopt(c->mon, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(c->mon);
  }
  c->sock = c->mon = NULL;
}

static reel_status open_socket(reel_client *c, reel_error *err) {
  c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
  if (!c->sock) return reel_error_set(err, REEL_ENETWORK, "zmq", "cannot create a socket: %s", zmq_strerror(errno));
  int zero = 0, ivl = 100, ivl_max = BACKOFF_MAX_MS;
  zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
  zmq_setsockopt(c->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
  if (c->curve) {
    zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, c->server_key, 32);
    zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, c->public_key, 32);
    zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, c->secret_key, 32);
  }
  /* A monitor reports refused handshakes, so that a bad key fails fast instead of timing out. */
  snprintf(c->mon_endpoint, sizeof c->mon_endpoint, "inproc://reel-client-mon-%p-%d", (void *)c, c->reconnects);
  if (zmq_socket_monitor(c->sock, c->mon_endpoint,
                         ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0) {
    c->mon = zmq_socket(c->ctx, ZMQ_PAIR);
    if (c->mon && zmq_connect(c->mon, c->mon_endpoint) != 0) {
      zmq_close(c->mon);
      c->mon = NULL;
    }
  }
  if (zmq_connect(c->sock, c->endpoint) != 0) {
    reel_status st =
        reel_error_set(err, REEL_EINVAL, "endpoint", "cannot connect to %s: %s", c->endpoint, zmq_strerror(errno));
    close_socket(c);
    return st;
  }
  return REEL_OK;
}

static void read_monitor(reel_client *c) {
  for (;;) {
    reel_wire_msg m;
    if (!c->mon || reel_wire_recv(c->mon, &m, ZMQ_DONTWAIT) != 0) return;
    if (m.n >= 1 && zmq_msg_size(&m.parts[0]) >= 6) {
      const unsigned char *d = zmq_msg_data(&m.parts[0]);
      uint16_t ev = (uint16_t)(d[0] | d[1] << 8);
      uint32_t val = (uint32_t)d[2] | (uint32_t)d[3] << 8 | (uint32_t)d[4] << 16 | (uint32_t)d[5] << 24;
      c->auth_failed = 1;
      if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        snprintf(c->auth_msg, sizeof c->auth_msg, "the broker refused this client's key (ZAP status %u)", val);
      else if (c->curve)
        snprintf(c->auth_msg, sizeof c->auth_msg, "CURVE handshake failed (wrong broker key?)");
      else
        snprintf(c->auth_msg, sizeof c->auth_msg,
                 "handshake failed: the broker requires CURVE auth (give --key and --broker-key)");
    }
    reel_wire_close(&m);
  }
}

static int send_raw(reel_client *c, const char *cmd, const char *hdr, size_t len) {
  int rc = c->sock ? reel_wire_send_raw(c->sock, NULL, 0, cmd, hdr, len, NULL, 0, ZMQ_DONTWAIT) : -1;
  c->last_send = reel_now_ms();
  if (!c->unanswered_since) c->unanswered_since = c->last_send;
  return rc;
}

static int send_json(reel_client *c, reel_proto_command cmd, json_t *h /* stolen */) {
  if (!h) return -1;
  if (c->tenant && !json_object_get(h, "tenant")) json_object_set_new(h, "tenant", json_string(c->tenant));
  size_t len = 0;
  char *s = reel_proto_header_dump(h, &len);
  json_decref(h);
  if (!s) return -1;
  int rc = send_raw(c, reel_proto_command_name(cmd), s, len);
  free(s);
  return rc;
}

static void refollow_all(reel_client *c) {
  for (size_t i = 0; i < c->nfollowed; i++) {
    char req[REEL_PROTO_JOB_ID_LEN + 8];
    snprintf(req, sizeof req, "follow:%s", c->followed[i]);
    send_json(c, REEL_CMD_FOLLOW, json_pack("{s:s, s:s}", "req", req, "job_id", c->followed[i]));
  }
}

static void reconnect(reel_client *c) {
  close_socket(c);
  c->reconnects++;
  reel_error err;
  reel_error_clear(&err);
  if (open_socket(c, &err) != REEL_OK) reel_log_error(c->log, REEL_LOG_WARN, "client", NULL, &err);
  c->unanswered_since = 0;
  reel_log(c->log, REEL_LOG_INFO, "client", NULL, "reconnecting", "endpoint=%s attempt=%d", c->endpoint, c->reconnects);
  if (c->sock) {
    if (c->pending_hdr) send_raw(c, c->pending_cmd, c->pending_hdr, c->pending_len);
    send_json(c, REEL_CMD_PING, json_pack("{s:s}", "req", "hb"));
    refollow_all(c);
  }
}

/* ---- incoming --------------------------------------------------------------------------------- */

static void deliver_event(reel_client *c, const json_t *ev, const void *payload, size_t payload_len) {
  const char *id = json_string_value(json_object_get(ev, "job_id"));
  const char *kind = json_string_value(json_object_get(ev, "event"));
  const char *state = json_string_value(json_object_get(ev, "state"));
  int terminal = 0;
  if (kind && strcmp(kind, "state") == 0 && state) {
    int s = reel_name_index(reel_job_state_names, state);
    terminal = s >= 0 && reel_job_state_terminal((reel_job_state)s);
  }
  if (c->wait_id && id && strcmp(id, c->wait_id) == 0) {
    if (c->wait_fn) c->wait_fn(c->wait_ud, ev);
    if (terminal && !c->wait_final) {
      json_t *job = json_object_get(ev, "job");
      c->wait_final = job ? json_deep_copy(job) : json_pack("{s:s, s:s}", "id", id, "state", state);
    }
  }
  if (c->handler) c->handler(c->handler_ud, ev);
  if (c->preview && payload && payload_len) c->preview(c->preview_ud, ev, payload, payload_len);
  if (terminal) follow_remove(c, id);
}

/* Handles one incoming message; returns 1 when it is the reply to `want` (stored in *reply). */
static int handle_incoming(reel_client *c, reel_wire_msg *m, int64_t want, reel_status *st, json_t **reply,
                           reel_error *err) {
  reel_msg msg;
  reel_msg_init(&msg);
  reel_error derr;
  reel_error_clear(&derr);
  if (reel_wire_decode(m, 0, NULL, &msg, &derr) != REEL_OK) {
    reel_log(c->log, REEL_LOG_WARN, "client", NULL, "malformed message from the broker", "field=%s", derr.field);
    reel_msg_fini(&msg);
    return 0;
  }
  c->last_recv = reel_now_ms();
  c->unanswered_since = 0;
  c->backoff = BACKOFF_MIN_MS;
  json_t *h = msg.header;
  json_t *req = json_object_get(h, "req");
  int done = 0;
  if (msg.cmd == REEL_CMD_EVENT) {
    deliver_event(c, h, msg.has_payload ? msg.payload : NULL, msg.has_payload ? msg.payload_size : 0);
  } else if (msg.cmd == REEL_CMD_PONG) {
    const char *id = json_string_value(json_object_get(h, "broker"));
    json_t *hb = json_object_get(h, "heartbeat_ms"), *lv = json_object_get(h, "liveness");
    if (json_is_integer(hb) && json_integer_value(hb) >= 10 && json_integer_value(hb) <= 600000)
      c->heartbeat_ms = (int)json_integer_value(hb);
    if (json_is_integer(lv) && json_integer_value(lv) >= 1 && json_integer_value(lv) <= 100)
      c->liveness = (int)json_integer_value(lv);
    if (id && strlen(id) < sizeof c->broker_id && strcmp(id, c->broker_id) != 0) {
      int restarted = c->broker_id[0] != '\0';
      snprintf(c->broker_id, sizeof c->broker_id, "%s", id);
      if (restarted) {
        reel_log(c->log, REEL_LOG_INFO, "client", NULL, "broker restarted", "broker=%s following=%zu", id,
                 c->nfollowed);
        if (c->pending_hdr) send_raw(c, c->pending_cmd, c->pending_hdr, c->pending_len);
        refollow_all(c);
      }
    }
  } else if (json_is_string(req) && strncmp(json_string_value(req), "follow:", 7) == 0) {
    /* Reply to a re-follow: a job that ended while we were away reports its end as an event. */
    json_t *job = json_object_get(h, "job");
    const char *state = json_string_value(json_object_get(job, "state"));
    int s = state ? reel_name_index(reel_job_state_names, state) : -1;
    if (msg.cmd == REEL_CMD_JOB && s >= 0 && reel_job_state_terminal((reel_job_state)s)) {
      json_t *ev = json_pack("{s:s, s:s, s:s, s:O}", "event", "state", "job_id",
                             json_string_value(json_object_get(job, "id")), "state", state, "job", job);
      if (ev) {
        deliver_event(c, ev, NULL, 0);
        json_decref(ev);
      }
    } else if (msg.cmd == REEL_CMD_ERROR) {
      follow_remove(c, json_string_value(req) + 7);
    }
  }
  if (want > 0 && json_is_integer(req) && json_integer_value(req) == want && msg.cmd != REEL_CMD_EVENT) {
    done = 1;
    if (msg.cmd == REEL_CMD_ERROR) {
      *st = reel_proto_error_from_header(h, err);
    } else {
      *st = REEL_OK;
      *reply = json_incref(h);
    }
  }
  reel_msg_fini(&msg);
  return done;
}

/*
 * Serves the socket until `deadline` (mono ms) or, when want > 0, until that
 * request's reply arrives; when want == 0, until a batch of incoming messages was
 * handled. Returns ETIMEDOUT at the deadline with want > 0.
 */
static reel_status pump(reel_client *c, int64_t deadline, int64_t want, json_t **reply, reel_error *err) {
  reel_status st = REEL_ETIMEDOUT;
  for (;;) {
    int64_t now = reel_now_ms();
    if (c->auth_failed) return reel_error_set(err, REEL_EAUTH, "auth", "%s", c->auth_msg);
    int64_t silence = (int64_t)c->heartbeat_ms * c->liveness;
    if (c->unanswered_since && now - c->unanswered_since > silence) {
      /* Pinged and nothing came back: the broker is gone. Wait (backoff), then reconnect. */
      int64_t pause = c->backoff;
      if (now + pause > deadline) pause = deadline - now;
      if (pause > 0) reel_sleep_ms(pause);
      if (reel_now_ms() >= deadline) break;
      c->backoff = c->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff * 2;
      reconnect(c);
      continue;
    }
    if (now - c->last_send >= c->heartbeat_ms && now - c->last_recv >= c->heartbeat_ms)
      send_json(c, REEL_CMD_PING, json_pack("{s:s}", "req", "hb"));
    if (now >= deadline) break;
    int64_t wake = deadline;
    if (c->last_send + c->heartbeat_ms < wake) wake = c->last_send + c->heartbeat_ms;
    if (c->unanswered_since && c->unanswered_since + silence + 1 < wake) wake = c->unanswered_since + silence + 1;
    int64_t t = wake - now;
    if (t < 1) t = 1;
    zmq_pollitem_t items[2] = {{c->sock, 0, ZMQ_POLLIN, 0}, {c->mon, 0, ZMQ_POLLIN, 0}};
    int rc = zmq_poll(items, c->mon ? 2 : 1, (long)t);
    if (rc < 0) {
      if (errno == EINTR) return reel_error_set(err, REEL_ECANCELED, "poll", "interrupted");
      return reel_error_set(err, REEL_ENETWORK, "poll", "%s", zmq_strerror(errno));
    }
    if (c->mon && (items[1].revents & ZMQ_POLLIN)) read_monitor(c);
    if (items[0].revents & ZMQ_POLLIN) {
      int got = 0;
      for (int i = 0; i < 1000; i++) {
        reel_wire_msg m;
        if (reel_wire_recv(c->sock, &m, ZMQ_DONTWAIT) != 0) break;
        int done = handle_incoming(c, &m, want, &st, reply, err);
        reel_wire_close(&m);
        if (done) return st;
        got = 1;
      }
      /* Without a request to wait for, return once something was handled (the caller looks at it). */
      if (want == 0 && got) return REEL_OK;
    }
  }
  if (want > 0)
    return reel_error_set(err, REEL_ETIMEDOUT, "timeout", "no reply from %s within %lld ms", c->endpoint,
                          (long long)c->timeout_ms);
  return REEL_OK;
}

/* ---- public API ------------------------------------------------------------------------------- */

reel_status reel_client_new(const reel_client_options *o, reel_client **out, reel_error *err) {
  *out = NULL;
  if (!o->endpoint || !o->endpoint[0])
    return reel_error_set(err, REEL_EINVAL, "broker", "no broker endpoint (give --broker or set REEL_BROKER)");
  if (o->tenant && !reel_proto_is_token(o->tenant, REEL_PROTO_NAME_MAX))
    return reel_error_set(err, REEL_EINVAL, "tenant", "must be 1..%d printable ASCII characters", REEL_PROTO_NAME_MAX);
  reel_status st = REEL_OK;
  reel_client *c = reel_calloc(1, sizeof *c);
  if (!c) return reel_error_set(err, REEL_ENOMEM, "client", "out of memory");
  reel_logger_init(&c->deflog, REEL_LOG_WARN, REEL_LOG_TEXT, 2);
  c->log = o->log ? o->log : &c->deflog;
  c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
  c->heartbeat_ms = o->heartbeat_ms >= 10 ? o->heartbeat_ms : 2500;
  c->liveness = o->liveness >= 1 ? o->liveness : 3;
  c->backoff = BACKOFF_MIN_MS;
  c->endpoint = reel_strdup(o->endpoint);
  if (o->tenant) c->tenant = reel_strdup(o->tenant);
  if (!c->endpoint || (o->tenant && !c->tenant)) {
    st = reel_error_set(err, REEL_ENOMEM, "client", "out of memory");
    goto fail;
  }
  if (o->broker_public_key) {
    if (reel_keys_decode(o->broker_public_key, c->server_key) != REEL_OK) {
      st = reel_error_set(err, REEL_EINVAL, "broker_key", "not a 40-character Z85 public key");
      goto fail;
    }
    if (!o->public_key || !o->secret_key || reel_keys_decode(o->public_key, c->public_key) != REEL_OK ||
        reel_keys_decode(o->secret_key, c->secret_key) != REEL_OK) {
      st = reel_error_set(err, REEL_EINVAL, "key", "CURVE needs this client's key pair (a .key file from reel keygen)");
      goto fail;
    }
    c->curve = 1;
  }
  unsigned char rnd[4];
  if (getrandom(rnd, sizeof rnd, 0) == (ssize_t)sizeof rnd)
    c->next_req = (int64_t)(rnd[0] | rnd[1] << 8 | (rnd[2] & 0x7f) << 16) * 1000;
  c->ctx = zmq_ctx_new();
  if (!c->ctx) {
    st = reel_error_set(err, REEL_ENETWORK, "zmq", "cannot create a context");
    goto fail;
  }
  if ((st = open_socket(c, err))) goto fail;
  c->last_recv = c->last_send = reel_now_ms();
  *out = c;
  return REEL_OK;
fail:
  reel_client_destroy(&c);
  return st;
}

void reel_client_destroy(reel_client **cp) {
  if (!cp || !*cp) return;
  reel_client *c = *cp;
  close_socket(c);
  if (c->ctx) zmq_ctx_term(c->ctx);
  reel_free(c->endpoint);
  reel_free(c->tenant);
  reel_free(c->followed);
  free(c->pending_hdr);
  if (c->wait_final) json_decref(c->wait_final);
  reel_free(c);
  *cp = NULL;
}

void reel_client_set_event_handler(reel_client *c, reel_client_event_fn fn, void *ud) {
  c->handler = fn;
  c->handler_ud = ud;
}

void reel_client_set_preview_handler(reel_client *c, reel_client_preview_fn fn, void *ud) {
  c->preview = fn;
  c->preview_ud = ud;
}

const char *reel_client_broker_id(const reel_client *c) { return c->broker_id; }
int reel_client_reconnects(const reel_client *c) { return c->reconnects; }

reel_status reel_client_request(reel_client *c, const char *command, const json_t *header, json_t **reply,
                                reel_error *err) {
  *reply = NULL;
  reel_proto_command cmd = reel_proto_command_lookup(command, strlen(command));
  if (cmd == REEL_CMD_UNKNOWN) return reel_error_set(err, REEL_EINVAL, "command", "unknown command %s", command);
  json_t *h = header ? json_deep_copy(header) : json_object();
  if (!h) return reel_error_set(err, REEL_ENOMEM, "request", "out of memory");
  int64_t req = ++c->next_req;
  json_object_set_new(h, "req", json_integer(req));
  if (c->tenant && !json_object_get(h, "tenant")) json_object_set_new(h, "tenant", json_string(c->tenant));
  size_t len = 0;
  char *s = reel_proto_header_dump(h, &len);
  json_decref(h);
  if (!s) return reel_error_set(err, REEL_ENOMEM, "request", "out of memory");
  free(c->pending_hdr);
  c->pending_hdr = s;
  c->pending_len = len;
  c->pending_cmd = reel_proto_command_name(cmd);
  c->pending_req = req;
  send_raw(c, c->pending_cmd, s, len); /* a failed send is retried by the reconnect logic */
  reel_status st = pump(c, reel_now_ms() + c->timeout_ms, req, reply, err);
  free(c->pending_hdr);
  c->pending_hdr = NULL;
  c->pending_req = 0;
  return st;
}

reel_status reel_client_submit(reel_client *c, const json_t *spec, json_t **accepted, reel_error *err) {
  *accepted = NULL;
  if (!json_is_object(spec)) return reel_error_set(err, REEL_EINVAL, "job", "must be a JSON object");
  json_t *job = json_deep_copy(spec);
  if (!job) return reel_error_set(err, REEL_ENOMEM, "job", "out of memory");
  if (!json_object_get(job, "idempotency_key")) {
    /* A resend after a reconnect must not create a second job. */
    unsigned char rnd[12];
    char key[40];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
      int64_t t = reel_now_ns();
      for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (unsigned char)(t >> (i % 8 * 8)) ^ (unsigned char)i;
    }
    int n = snprintf(key, sizeof key, "auto-");
    for (size_t i = 0; i < sizeof rnd; i++) n += snprintf(key + n, sizeof key - (size_t)n, "%02x", rnd[i]);
    json_object_set_new(job, "idempotency_key", json_string(key));
  }
  json_t *h = json_pack("{s:o, s:b}", "job", job, "follow", 1);
  if (!h) return reel_error_set(err, REEL_ENOMEM, "job", "out of memory");
  reel_status st = reel_client_request(c, "SUBMIT", h, accepted, err);
  json_decref(h);
  if (st == REEL_OK) follow_add(c, json_string_value(json_object_get(*accepted, "job_id")));
  return st;
}

static reel_status job_request(reel_client *c, const char *cmd, const char *job_id, json_t **job, reel_error *err) {
  if (job) *job = NULL;
  if (!job_id) return reel_error_set(err, REEL_EINVAL, "job_id", "required");
  json_t *h = json_pack("{s:s}", "job_id", job_id);
  if (!h) return reel_error_set(err, REEL_ENOMEM, "job_id", "out of memory");
  json_t *reply = NULL;
  reel_status st = reel_client_request(c, cmd, h, &reply, err);
  json_decref(h);
  if (st) return st;
  if (job) {
    *job = json_incref(json_object_get(reply, "job"));
    if (!*job) st = reel_error_set(err, REEL_EPROTO, "job", "the broker's reply has no job record");
  }
  json_decref(reply);
  return st;
}

reel_status reel_client_status(reel_client *c, const char *job_id, json_t **job, reel_error *err) {
  return job_request(c, "STATUS", job_id, job, err);
}

reel_status reel_client_follow(reel_client *c, const char *job_id, json_t **job, reel_error *err) {
  json_t *rec = NULL;
  reel_status st = job_request(c, "FOLLOW", job_id, &rec, err);
  if (st) return st;
  const char *state = json_string_value(json_object_get(rec, "state"));
  int s = state ? reel_name_index(reel_job_state_names, state) : -1;
  if (s >= 0 && !reel_job_state_terminal((reel_job_state)s)) follow_add(c, job_id);
  if (job)
    *job = rec;
  else
    json_decref(rec);
  return REEL_OK;
}

reel_status reel_client_cancel(reel_client *c, const char *job_id, json_t **job, reel_error *err) {
  return job_request(c, "CANCEL", job_id, job, err);
}

reel_status reel_client_list(reel_client *c, const char *state, int limit, const char *after, json_t **reply,
                             reel_error *err) {
  json_t *h = json_object();
  if (!h) return reel_error_set(err, REEL_ENOMEM, "list", "out of memory");
  if (state) json_object_set_new(h, "state", json_string(state));
  if (limit > 0) json_object_set_new(h, "limit", json_integer(limit));
  if (after) json_object_set_new(h, "after", json_string(after));
  reel_status st = reel_client_request(c, "LIST", h, reply, err);
  json_decref(h);
  return st;
}

reel_status reel_client_poll(reel_client *c, int64_t timeout_ms, reel_error *err) {
  return pump(c, reel_now_ms() + (timeout_ms < 0 ? 0 : timeout_ms), 0, NULL, err);
}

reel_status reel_client_wait(reel_client *c, const char *job_id, int64_t timeout_ms, reel_client_event_fn fn, void *ud,
                             json_t **job, reel_error *err) {
  if (job) *job = NULL;
  int64_t deadline = timeout_ms < 0 ? INT64_MAX / 2 : reel_now_ms() + timeout_ms;
  c->wait_id = job_id;
  c->wait_fn = fn;
  c->wait_ud = ud;
  if (c->wait_final) json_decref(c->wait_final);
  c->wait_final = NULL;
  json_t *rec = NULL;
  reel_status st = reel_client_follow(c, job_id, &rec, err);
  if (st == REEL_OK) {
    const char *state = json_string_value(json_object_get(rec, "state"));
    int s = state ? reel_name_index(reel_job_state_names, state) : -1;
    if (s >= 0 && reel_job_state_terminal((reel_job_state)s) && !c->wait_final) c->wait_final = json_incref(rec);
    json_decref(rec);
  }
  while (st == REEL_OK && !c->wait_final) {
    int64_t now = reel_now_ms();
    if (now >= deadline) {
      st = reel_error_set(err, REEL_ETIMEDOUT, "timeout", "job %s did not finish within %lld ms", job_id,
                          (long long)timeout_ms);
      break;
    }
    int64_t slice = deadline - now < 1000 ? deadline - now : 1000;
    st = pump(c, now + slice, 0, NULL, err);
  }
  if (st == REEL_OK && job) {
    *job = c->wait_final;
    c->wait_final = NULL;
  }
  if (c->wait_final) json_decref(c->wait_final);
  c->wait_final = NULL;
  c->wait_id = NULL;
  c->wait_fn = NULL;
  return st;
}
