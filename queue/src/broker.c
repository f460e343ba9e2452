/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's event loop: ROUTER socket, ZAP handler, message handlers for
 * clients and workers, dispatch, heartbeats and timers, group commit and the
 * outbox. Job state changes live in broker_jobs.c. Protocol: docs/protocol.md.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "broker_int.h"
#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/keys.h"
#include "wire.h"

#define MAX_BATCH            4096
#define PROGRESS_INTERVAL_MS 100
#define POSITION_INTERVAL_MS 1000
#define SCAN_INTERVAL_MS     100
#define MAX_CAPACITY         64
#define MAX_LIST             1000

static int64_t default_mono(void *ud) {
  (void)ud;
  return reel_now_ms();
}
static int64_t default_wall(void *ud) {
  (void)ud;
  return reel_wall_ms();
}

int64_t brk_mono(const reel_broker *b) { return b->o.mono_ms(b->o.clock_ud); }
int64_t brk_wall(const reel_broker *b) { return b->o.wall_ms(b->o.clock_ud); }
int64_t brk_lease_ms(const reel_broker *b) { return (int64_t)b->o.heartbeat_ms * b->o.liveness; }

void reel_broker_options_init(reel_broker_options *o) {
  memset(o, 0, sizeof *o);
  o->heartbeat_ms = 2500;
  o->liveness = 3;
  o->max_attempts = 3;
  o->max_header_bytes = REEL_PROTO_DEFAULT_MAX_HEADER;
  o->max_payload_bytes = REEL_PROTO_DEFAULT_MAX_PAYLOAD;
  o->job_limits = reel_job_limits_default();
  o->max_queued_per_tenant = 100000;
  o->interactive_burst = 9;
  o->compact_bytes = 64u << 20;
  o->retain_finished = 10000;
}

/* ---- outbox ----------------------------------------------------------------------------------- */

/* As brk_send with a payload frame (copied). */
static reel_status brk_send_payload(reel_broker *b, const brk_peer *to, reel_proto_command cmd, json_t *header,
                                    const void *payload, size_t len) {
  void *copy = NULL;
  if (payload && len) {
    copy = reel_malloc(len);
    if (!copy) {
      if (header) json_decref(header);
      return REEL_ENOMEM;
    }
    memcpy(copy, payload, len);
  }
  reel_status st = brk_send(b, to, cmd, header);
  if (st != REEL_OK) {
    reel_free(copy);
    return st;
  }
  b->out[b->nout - 1].payload = copy;
  b->out[b->nout - 1].payload_len = copy ? len : 0;
  return REEL_OK;
}

reel_status brk_send(reel_broker *b, const brk_peer *to, reel_proto_command cmd, json_t *header) {
  if (!header) return REEL_ENOMEM;
  size_t len = 0;
  char *s = reel_proto_header_dump(header, &len);
  json_decref(header);
  if (!s) return REEL_ENOMEM;
  if (b->nout == b->capout) {
    size_t cap = b->capout ? b->capout * 2 : 256;
    brk_out *no = reel_realloc(b->out, cap * sizeof *no);
    if (!no) {
      free(s);
      return REEL_ENOMEM;
    }
    b->out = no;
    b->capout = cap;
  }
  brk_out *o = &b->out[b->nout++];
  o->peer = *to;
  o->cmd = cmd;
  o->hdr = s;
  o->hdr_len = len;
  o->payload = NULL;
  o->payload_len = 0;
  return REEL_OK;
}

static void send_worker(reel_broker *b, brk_worker *w, reel_proto_command cmd, json_t *header) {
  if (brk_send(b, &w->peer, cmd, header) == REEL_OK) w->last_send = brk_mono(b);
}

static brk_worker *worker_by_peer(reel_broker *b, const brk_peer *p);

/* Sends a group of queued messages in order and empties it. */
static void flush_group(reel_broker *b, brk_out *msgs, size_t *n) {
  for (size_t i = 0; i < *n; i++) {
    brk_out *o = &msgs[i];
    if (reel_wire_send_raw(b->router, o->peer.rid, o->peer.len, reel_proto_command_name(o->cmd), o->hdr, o->hdr_len,
                           o->payload, o->payload_len, ZMQ_DONTWAIT) != 0 &&
        reel_log_enabled(b->log, REEL_LOG_DEBUG))
      reel_log(b->log, REEL_LOG_DEBUG, "broker", NULL, "message not delivered", "command=%s reason=\"%s\"",
               reel_proto_command_name(o->cmd), zmq_strerror(errno));
    if (o->cmd == REEL_CMD_WELCOME) {
      brk_worker *w = worker_by_peer(b, &o->peer);
      if (w) w->welcome_pending = 0;
    }
    free(o->hdr);
    reel_free(o->payload);
  }
  *n = 0;
}

static void drop_group(brk_out *msgs, size_t *n) {
  for (size_t i = 0; i < *n; i++) {
    free(msgs[i].hdr);
    reel_free(msgs[i].payload);
  }
  *n = 0;
}

/*
 * Group commit, pipelined: while one group of journal records is being written
 * and synced by the journal's thread, the loop goes on handling messages and the
 * next group collects. Each group's messages go out when its commit is done, in
 * order. Returns EIO when a commit failed (nothing of that group is sent).
 */
static reel_status settle_commits(reel_broker *b, int wait, reel_error *err) {
  if (!b->journal) {
    flush_group(b, b->out, &b->nout);
    return REEL_OK;
  }
  for (;;) {
    if (reel_journal_commit_busy(b->journal)) {
      reel_status st = reel_journal_commit_finish(b->journal, wait, err);
      if (st == REEL_EAGAIN) return REEL_OK;
      if (st) return st;
      flush_group(b, b->gated, &b->ngated);
    }
    if (reel_journal_pending(b->journal) == 0) {
      flush_group(b, b->out, &b->nout); /* nothing new to make durable: these depend on nothing unsynced */
      return REEL_OK;
    }
    reel_status st = reel_journal_commit_start(b->journal, err);
    if (st) return st;
    /* The current group now waits for that commit. */
    brk_out *tmp = b->gated;
    size_t cap = b->capgated;
    b->gated = b->out;
    b->capgated = b->capout;
    b->ngated = b->nout;
    b->out = tmp;
    b->capout = cap;
    b->nout = 0;
    if (!wait) return REEL_OK;
  }
}

/* Adds "req" to a reply header (stolen) and queues it. */
static void reply(reel_broker *b, const brk_peer *to, reel_proto_command cmd, const json_t *req, json_t *header) {
  if (header && req) json_object_set(header, "req", (json_t *)req);
  if (brk_send(b, to, cmd, header) != REEL_OK)
    reel_log(b->log, REEL_LOG_WARN, "broker", NULL, "reply dropped: out of memory", "command=%s",
             reel_proto_command_name(cmd));
}

static void reply_error(reel_broker *b, const brk_peer *to, const json_t *req, const reel_error *err) {
  reply(b, to, REEL_CMD_ERROR, NULL, reel_proto_error_header(req, err));
}

static void send_followers(reel_broker *b, brk_job *j, json_t *ev) {
  if (!ev) return;
  for (int i = 0; i < j->nfollowers; i++) brk_send(b, &j->followers[i], REEL_CMD_EVENT, json_incref(ev));
  json_decref(ev);
}

void brk_event_state(reel_broker *b, brk_job *j) {
  if (b->replaying || j->nfollowers == 0) return;
  /* A state change flushes the last progress first, so followers see it in order. */
  if (j->progress_dirty) brk_event_progress(b, j);
  json_t *rec = brk_job_json(b, j, 0);
  if (!rec) return;
  send_followers(b, j,
                 json_pack("{s:s, s:s, s:s, s:o}", "event", "state", "job_id", j->id, "state",
                           reel_job_state_names[j->state], "job", rec));
}

void brk_event_progress(reel_broker *b, brk_job *j) {
  j->progress_dirty = 0;
  j->progress_sent = brk_mono(b);
  if (!j->progress || j->nfollowers == 0) {
    brk_job_drop_preview(j);
    return;
  }
  json_t *ev = json_deep_copy(j->progress);
  if (!ev) return;
  json_object_set_new(ev, "event", json_string("progress"));
  json_object_set_new(ev, "job_id", json_string(j->id));
  if (!j->preview) {
    send_followers(b, j, ev);
    return;
  }
  /* The preview image travels once, as the payload frame of this event. */
  json_object_set_new(ev, "preview", json_pack("{s:s, s:I}", "format", "png", "bytes", (json_int_t)j->preview_len));
  for (int i = 0; i < j->nfollowers; i++)
    brk_send_payload(b, &j->followers[i], REEL_CMD_EVENT, json_incref(ev), j->preview, j->preview_len);
  json_decref(ev);
  brk_job_drop_preview(j);
}

/* ---- workers ---------------------------------------------------------------------------------- */

void brk_worker_detach(brk_worker *w, brk_job *j) {
  for (int i = 0; i < w->njobs; i++) {
    if (w->jobs[i] == j) {
      w->jobs[i] = w->jobs[--w->njobs];
      return;
    }
  }
}

static void free_strv(char **v, int n) {
  for (int i = 0; i < n; i++) reel_free(v[i]);
  reel_free(v);
}

static void worker_clear_caps(brk_worker *w) {
  if (w->caps) json_decref(w->caps);
  w->caps = NULL;
  free_strv(w->models, w->nmodels);
  free_strv(w->labels, w->nlabels);
  reel_free(w->region);
  w->models = w->labels = NULL;
  w->region = NULL;
  w->nmodels = w->nlabels = 0;
  w->backends = 0;
  w->max_width = w->max_height = w->max_frames = 0;
}

static void worker_free(brk_worker *w) {
  if (!w) return;
  worker_clear_caps(w);
  reel_free(w->jobs);
  reel_free(w);
}

static brk_worker *worker_by_peer(reel_broker *b, const brk_peer *p) {
  for (brk_worker *w = b->workers; w; w = w->next)
    if (w->peer.len == p->len && memcmp(w->peer.rid, p->rid, p->len) == 0) return w;
  return NULL;
}

static brk_worker *worker_by_name(reel_broker *b, const char *name) {
  for (brk_worker *w = b->workers; w; w = w->next)
    if (strcmp(w->name, name) == 0) return w;
  return NULL;
}

static void worker_unlink(reel_broker *b, brk_worker *w) {
  for (brk_worker **pp = &b->workers; *pp; pp = &(*pp)->next) {
    if (*pp == w) {
      *pp = w->next;
      b->nworkers--;
      return;
    }
  }
}

/* The worker is gone (silent past its lease, or said BYE): its jobs are lost, it is forgotten. */
static void worker_gone(reel_broker *b, brk_worker *w, const char *outcome) {
  reel_log(b->log, REEL_LOG_INFO, "broker", NULL, strcmp(outcome, "left") == 0 ? "worker left" : "worker lost",
           "worker=%s jobs=%d", w->name, w->njobs);
  while (w->njobs > 0) {
    brk_job *j = w->jobs[0];
    reel_error err;
    reel_error_clear(&err);
    if (brk_job_lost(b, j, outcome, &err) != REEL_OK) {
      /* Out of memory: leave the job as an orphan; the orphan scan retries it. */
      brk_worker_detach(w, j);
      j->worker = NULL;
      j->orphan_until = brk_mono(b);
      b->norphans++;
    }
  }
  worker_unlink(b, w);
  worker_free(w);
}

static int worker_can_run(const brk_worker *w, const brk_job *j) {
  if (j->model && w->nmodels > 0) {
    int ok = 0;
    for (int i = 0; i < w->nmodels && !ok; i++) ok = strcmp(w->models[i], j->model) == 0;
    if (!ok) return 0;
  }
  if (j->backend != REEL_BACKEND_AUTO && w->backends && !(w->backends & (1u << j->backend))) return 0;
  if (j->width && w->max_width && j->width > w->max_width) return 0;
  if (j->height && w->max_height && j->height > w->max_height) return 0;
  if (j->frames && w->max_frames && j->frames > w->max_frames) return 0;
  if (j->region) {
    int ok = w->region && strcmp(w->region, j->region) == 0;
    for (int i = 0; i < w->nlabels && !ok; i++) ok = strcmp(w->labels[i], j->region) == 0;
    if (!ok) return 0;
  }
  return 1;
}

static brk_job *item_job(const reel_sched_item *it) { return (brk_job *)((char *)it - offsetof(brk_job, item)); }

static int match_worker(void *ud, const reel_sched_item *it) { return worker_can_run(ud, item_job(it)); }

/*
 * JOB goes out at once, before the iteration's journal commit: dispatch latency
 * does not include the fsync. Safe because the worker only starts work; if the
 * broker dies before the commit, the client has no ACCEPTED (it resends), and the
 * worker is told to CANCEL the unknown job when it announces it after the restart.
 * Only a WELCOME still waiting in the outbox makes it wait too, to keep the order.
 */
static void send_job(reel_broker *b, brk_worker *w, brk_job *j) {
  json_t *h = json_pack("{s:s, s:i, s:s, s:I, s:O}", "job_id", j->id, "attempt", j->attempts, "tenant", j->tenant->name,
                        "lease_ms", (json_int_t)brk_lease_ms(b), "job", j->spec);
  if (w->welcome_pending || !h) {
    send_worker(b, w, REEL_CMD_JOB, h);
    return;
  }
  size_t len = 0;
  char *s = reel_proto_header_dump(h, &len);
  json_decref(h);
  if (!s) return; /* the lease runs out and the job is requeued */
  if (reel_wire_send_raw(b->router, w->peer.rid, w->peer.len, "JOB", s, len, NULL, 0, ZMQ_DONTWAIT) == 0)
    w->last_send = brk_mono(b);
  free(s);
}

/* Heartbeats say nothing about jobs: they go out at once, never delayed by a slow fsync. */
static void send_heartbeat(reel_broker *b, brk_worker *w) {
  if (reel_wire_send_raw(b->router, w->peer.rid, w->peer.len, "HEARTBEAT", "{}", 2, NULL, 0, ZMQ_DONTWAIT) == 0 ||
      errno != EAGAIN)
    w->last_send = brk_mono(b);
}

static void send_cancel(reel_broker *b, brk_worker *w, const char *id, int attempt) {
  send_worker(b, w, REEL_CMD_CANCEL, json_pack("{s:s, s:i}", "job_id", id, "attempt", attempt));
}

/* Gives queued jobs to workers with free credit, longest-idle worker first. */
static void dispatch(reel_broker *b) {
  if (reel_sched_queued(b->sched, -1) == 0) return;
  for (brk_worker *w = b->workers; w; w = w->next) w->flag = 0;
  for (;;) {
    brk_worker *best = NULL;
    for (brk_worker *w = b->workers; w; w = w->next)
      if (!w->flag && w->njobs < w->capacity && (!best || w->idle_since < best->idle_since)) best = w;
    if (!best) return;
    reel_sched_item *it = reel_sched_pick(b->sched, match_worker, best);
    if (!it) {
      best->flag = 1;
      continue;
    }
    brk_job *j = item_job(it);
    reel_error err;
    reel_error_clear(&err);
    if (brk_job_dispatch(b, j, best, best->name, j->attempts + 1, &err) != REEL_OK) {
      reel_sched_push(b->sched, it, j->tenant, j->cls, j->prio, j->seq);
      reel_log_error(b->log, REEL_LOG_WARN, "broker", j->id, &err);
      return;
    }
    send_job(b, best, j);
    best->idle_since = brk_mono(b);
    if (reel_sched_queued(b->sched, -1) == 0) return;
  }
}

/* ---- request helpers -------------------------------------------------------------------------- */

typedef struct req_ctx {
  brk_peer peer;
  const char *user; /* ZAP user id ("client:T", "worker:N") or NULL without auth */
  const json_t *req;
  reel_msg *msg;
} req_ctx;

static reel_status get_job_id(const json_t *h, const char **id, reel_error *err) {
  reel_status st = reel_json_get_string(h, "", "job_id", REEL_JSON_REQUIRED, REEL_PROTO_JOB_ID_LEN, id, err);
  if (st) return st;
  if (strlen(*id) != REEL_PROTO_JOB_ID_LEN)
    return reel_error_set(err, REEL_EINVAL, "job_id", "must be a %d-character job id", REEL_PROTO_JOB_ID_LEN);
  return REEL_OK;
}

/* The tenant a client request acts as: its key's with auth, else the "tenant" member (default "default"). */
static reel_status req_tenant(reel_broker *b, const req_ctx *c, reel_sched_tenant **t, reel_error *err) {
  const char *name = "default";
  const char *claimed = NULL;
  reel_status st =
      reel_json_get_string(c->msg->header, "", "tenant", REEL_JSON_OPTIONAL, REEL_PROTO_NAME_MAX, &claimed, err);
  if (st) return st;
  if (claimed && !reel_proto_is_token(claimed, REEL_PROTO_NAME_MAX))
    return reel_error_set(err, REEL_EINVAL, "tenant", "must be 1..%d printable ASCII characters without spaces",
                          REEL_PROTO_NAME_MAX);
  if (b->auth) {
    name = c->user + strlen("client:");
    if (claimed && strcmp(claimed, name) != 0)
      return reel_error_set(err, REEL_EAUTH, "tenant", "this key belongs to tenant \"%s\", not \"%s\"", name, claimed);
  } else if (claimed) {
    name = claimed;
  }
  *t = reel_sched_tenant_get(b->sched, name, 1);
  if (!*t) return reel_error_set(err, REEL_ENOMEM, "tenant", "out of memory");
  return REEL_OK;
}

/* Finds a job of the caller's tenant; other tenants' jobs are "not found". */
static reel_status req_job(reel_broker *b, const req_ctx *c, brk_job **out, reel_error *err) {
  const char *id = NULL;
  reel_sched_tenant *t = NULL;
  reel_status st = get_job_id(c->msg->header, &id, err);
  if (st || (st = req_tenant(b, c, &t, err))) return st;
  brk_job *j = brk_job_find(b, id);
  if (!j || j->tenant != t) return reel_error_set(err, REEL_ENOTFOUND, "job_id", "no job %s", id);
  *out = j;
  return REEL_OK;
}

static void reply_job(reel_broker *b, const req_ctx *c, brk_job *j) {
  json_t *rec = brk_job_json(b, j, 1);
  reply(b, &c->peer, REEL_CMD_JOB, c->req, rec ? json_pack("{s:o}", "job", rec) : NULL);
}

/* Job ids are 12 hex digits of wall-clock ms, '-', 5 hex digits of a counter: unique and time-ordered. */
static void new_job_id(reel_broker *b, char id[REEL_PROTO_JOB_ID_LEN + 1]) {
  int64_t now = brk_wall(b);
  if (now > b->last_id_ms) {
    b->last_id_ms = now;
    b->id_counter = 0;
  }
  do {
    snprintf(id, REEL_PROTO_JOB_ID_LEN + 1, "%012llx-%05x", (unsigned long long)(b->last_id_ms & 0xffffffffffffLL),
             (unsigned)(b->id_counter & 0xfffff));
    if (++b->id_counter > 0xfffff) {
      b->id_counter = 0;
      b->last_id_ms++; /* over a million ids in one ms: borrow from the next */
    }
  } while (brk_job_find(b, id));
}

/* ---- client commands -------------------------------------------------------------------------- */

static void on_ping(reel_broker *b, req_ctx *c) {
  reel_sched_tenant *t = NULL;
  reel_error err;
  reel_error_clear(&err);
  if (req_tenant(b, c, &t, &err)) return reply_error(b, &c->peer, c->req, &err);
  reply(b, &c->peer, REEL_CMD_PONG, c->req,
        json_pack("{s:s, s:I, s:i, s:i, s:b, s:s, s:i}", "broker", b->id, "time_ms", (json_int_t)brk_wall(b),
                  "heartbeat_ms", b->o.heartbeat_ms, "liveness", b->o.liveness, "auth", b->auth, "tenant", t->name,
                  "version", REEL_PROTO_VERSION));
}

static void on_submit(reel_broker *b, req_ctx *c) {
  reel_error err;
  reel_error_clear(&err);
  reel_jobspec spec;
  reel_jobspec_init(&spec);
  reel_sched_tenant *t = NULL;
  json_t *norm = NULL;
  int follow = 1;
  reel_status st = reel_json_get_bool(c->msg->header, "", "follow", REEL_JSON_OPTIONAL, &follow, &err);
  if (!st) st = req_tenant(b, c, &t, &err);
  if (!st) st = reel_proto_decode_submit(c->msg->header, &b->o.job_limits, &spec, &err);
  if (st) goto fail;
  if (spec.idempotency_key) {
    brk_job *dup = brk_job_find_idem(b, t, spec.idempotency_key);
    if (dup) {
      if (follow && !reel_job_state_terminal(dup->state)) brk_follow(dup, &c->peer);
      brk_positions(b);
      reply(b, &c->peer, REEL_CMD_ACCEPTED, c->req,
            json_pack("{s:s, s:s, s:I, s:b}", "job_id", dup->id, "state", reel_job_state_names[dup->state], "position",
                      (json_int_t)(dup->state == REEL_JOB_QUEUED ? dup->position : 0), "duplicate", 1));
      reel_jobspec_fini(&spec);
      return;
    }
  }
  if (t->queued[0] + t->queued[1] >= (size_t)b->o.max_queued_per_tenant) {
    st = reel_error_set(&err, REEL_ELIMIT, "tenant.max_queued", "tenant %s has %zu jobs queued, limit %d", t->name,
                        t->queued[0] + t->queued[1], b->o.max_queued_per_tenant);
    goto fail;
  }
  norm = reel_jobspec_to_json(&spec);
  if (!norm) {
    st = reel_error_set(&err, REEL_ENOMEM, "job", "out of memory");
    goto fail;
  }
  char id[REEL_PROTO_JOB_ID_LEN + 1];
  new_job_id(b, id);
  brk_job *j = NULL;
  if ((st = brk_job_submit(b, id, b->next_seq, t, norm, brk_wall(b), &j, &err))) goto fail;
  norm = NULL;
  if (follow) brk_follow(j, &c->peer);
  reply(b, &c->peer, REEL_CMD_ACCEPTED, c->req,
        json_pack("{s:s, s:s, s:I, s:b}", "job_id", j->id, "state", "queued", "position",
                  (json_int_t)reel_sched_tail_position(&j->item), "duplicate", 0));
  reel_jobspec_fini(&spec);
  return;
fail:
  if (norm) json_decref(norm);
  reel_jobspec_fini(&spec);
  reply_error(b, &c->peer, c->req, &err);
}

static void on_status(reel_broker *b, req_ctx *c, int follow) {
  reel_error err;
  reel_error_clear(&err);
  brk_job *j = NULL;
  if (req_job(b, c, &j, &err)) return reply_error(b, &c->peer, c->req, &err);
  if (follow && !reel_job_state_terminal(j->state) && brk_follow(j, &c->peer) != REEL_OK) {
    reel_error_set(&err, REEL_ELIMIT, "job_id", "job %s has the maximum of 64 followers", j->id);
    return reply_error(b, &c->peer, c->req, &err);
  }
  reply_job(b, c, j);
}

static void on_cancel(reel_broker *b, req_ctx *c) {
  reel_error err;
  reel_error_clear(&err);
  brk_job *j = NULL;
  if (req_job(b, c, &j, &err) || brk_job_cancel(b, j, &err)) return reply_error(b, &c->peer, c->req, &err);
  if (j->state == REEL_JOB_RUNNING && j->worker) send_cancel(b, j->worker, j->id, j->attempts);
  reply_job(b, c, j);
}

static void on_list(reel_broker *b, req_ctx *c) {
  reel_error err;
  reel_error_clear(&err);
  reel_sched_tenant *t = NULL;
  const char *state = NULL, *after = NULL;
  int64_t limit = 100;
  const json_t *h = c->msg->header;
  if (req_tenant(b, c, &t, &err) || reel_json_get_string(h, "", "state", REEL_JSON_OPTIONAL, 16, &state, &err) ||
      reel_json_get_string(h, "", "after", REEL_JSON_OPTIONAL, REEL_PROTO_JOB_ID_LEN, &after, &err) ||
      reel_json_get_int(h, "", "limit", REEL_JSON_OPTIONAL, 1, MAX_LIST, &limit, &err))
    return reply_error(b, &c->peer, c->req, &err);
  int want = -1, active = 0;
  if (state) {
    active = strcmp(state, "active") == 0;
    want = reel_name_index(reel_job_state_names, state);
    if (want < 0 && !active) {
      reel_error_set(&err, REEL_EINVAL, "state", "must be a job state or \"active\", got \"%s\"", state);
      return reply_error(b, &c->peer, c->req, &err);
    }
  }
  brk_job *j = b->all_head;
  if (after) {
    brk_job *a = brk_job_find(b, after);
    if (a && a->tenant == t) {
      j = a->all_next;
    } else {
      /* Ids are time-ordered: resume after the first id greater than `after`. */
      while (j && strcmp(j->id, after) <= 0) j = j->all_next;
    }
  }
  json_t *arr = json_array();
  int n = 0, more = 0;
  for (; j && arr; j = j->all_next) {
    if (j->tenant != t) continue;
    if (active ? reel_job_state_terminal(j->state) : (want >= 0 && (int)j->state != want)) continue;
    if (n == limit) {
      more = 1;
      break;
    }
    json_t *rec = brk_job_json(b, j, 0);
    if (!rec || json_array_append_new(arr, rec)) {
      json_decref(arr);
      arr = NULL;
    }
    n++;
  }
  reply(b, &c->peer, REEL_CMD_JOBS, c->req, arr ? json_pack("{s:o, s:b}", "jobs", arr, "more", more) : NULL);
}

static void on_workers(reel_broker *b, req_ctx *c) {
  reel_error err;
  reel_error_clear(&err);
  reel_sched_tenant *t = NULL;
  if (req_tenant(b, c, &t, &err)) return reply_error(b, &c->peer, c->req, &err);
  json_t *arr = json_array();
  int64_t now = brk_mono(b), wall = brk_wall(b);
  for (brk_worker *w = b->workers; w && arr; w = w->next) {
    json_t *running = json_array();
    for (int i = 0; i < w->njobs && running; i++)
      if (w->jobs[i]->tenant == t) json_array_append_new(running, json_string(w->jobs[i]->id));
    json_t *o = json_pack("{s:s, s:i, s:i, s:o, s:O, s:I, s:I}", "name", w->name, "capacity", w->capacity, "busy",
                          w->njobs, "running", running ? running : json_array(), "capabilities",
                          w->caps ? w->caps : json_object(), "connected_ms", (json_int_t)w->connected_ms,
                          "last_seen_ms", (json_int_t)(wall - (now - w->last_recv)));
    if (!o || json_array_append_new(arr, o)) {
      json_decref(arr);
      arr = NULL;
    }
  }
  reel_broker_stats s;
  reel_broker_get_stats(b, &s);
  reply(b, &c->peer, REEL_CMD_WORKERS, c->req,
        arr ? json_pack("{s:o, s:I, s:I}", "workers", arr, "queued", (json_int_t)s.queued, "running",
                        (json_int_t)s.running)
            : NULL);
}

static void on_stats(reel_broker *b, req_ctx *c) {
  reel_broker_stats s;
  reel_broker_get_stats(b, &s);
  reply(b, &c->peer, REEL_CMD_STATS, c->req,
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "queued", (json_int_t)s.queued,
                  "running", (json_int_t)s.running, "workers", (json_int_t)s.workers, "jobs", (json_int_t)s.jobs,
                  "finished", (json_int_t)s.finished, "accepted_total", (json_int_t)s.accepted_total,
                  "dispatched_total", (json_int_t)s.dispatched_total, "finished_total", (json_int_t)s.finished_total,
                  "requeued_total", (json_int_t)s.requeued_total, "journal_bytes", (json_int_t)s.journal_bytes,
                  "journal_commits", (json_int_t)s.journal_commits, "broker", b->id));
}

/* ---- worker commands -------------------------------------------------------------------------- */

/* Reads an array of up to `max` tokens into a new string vector. */
static reel_status get_tokens(const json_t *obj, const char *path, const char *key, int max, size_t maxlen, char ***out,
                              int *n, reel_error *err) {
  char field[REEL_ERROR_FIELD_MAX];
  snprintf(field, sizeof field, "%s.%s", path, key);
  *out = NULL;
  *n = 0;
  json_t *a = json_object_get(obj, key);
  if (!a || json_is_null(a)) return REEL_OK;
  if (!json_is_array(a) || json_array_size(a) > (size_t)max)
    return reel_error_set(err, REEL_EINVAL, field, "must be an array of at most %d strings", max);
  char **v = reel_calloc(json_array_size(a) + 1, sizeof *v);
  if (!v) return reel_error_set(err, REEL_ENOMEM, field, "out of memory");
  for (size_t i = 0; i < json_array_size(a); i++) {
    const char *s = json_string_value(json_array_get(a, i));
    if (!s || !reel_proto_is_token(s, maxlen)) {
      free_strv(v, (int)i);
      return reel_error_set(err, REEL_EINVAL, field, "entry %zu must be 1..%zu printable ASCII characters", i, maxlen);
    }
    if (!(v[i] = reel_strdup(s))) {
      free_strv(v, (int)i);
      return reel_error_set(err, REEL_ENOMEM, field, "out of memory");
    }
  }
  *out = v;
  *n = (int)json_array_size(a);
  return REEL_OK;
}

/* Parses "capabilities" into the worker (replacing what it had). */
static reel_status parse_caps(brk_worker *w, const json_t *h, reel_error *err) {
  json_t *caps = json_object_get(h, "capabilities");
  brk_worker tmp;
  memset(&tmp, 0, sizeof tmp);
  reel_status st = REEL_OK;
  if (caps && !json_is_null(caps)) {
    if (!json_is_object(caps)) return reel_error_set(err, REEL_EINVAL, "capabilities", "must be an object");
    int64_t v;
    const char *region = NULL;
    char **backends = NULL;
    int nb = 0;
    if ((st = get_tokens(caps, "capabilities", "models", 64, 1024, &tmp.models, &tmp.nmodels, err))) goto fail;
    if ((st = get_tokens(caps, "capabilities", "labels", 32, 64, &tmp.labels, &tmp.nlabels, err))) goto fail;
    if ((st = get_tokens(caps, "capabilities", "backends", 8, 16, &backends, &nb, err))) goto fail;
    for (int i = 0; i < nb; i++) {
      int k = reel_name_index(reel_backend_names, backends[i]);
      if (k <= 0) {
        free_strv(backends, nb);
        st = reel_error_set(err, REEL_EINVAL, "capabilities.backends", "unknown backend \"%s\" (cpu, cuda)",
                            backends[i]);
        goto fail;
      }
      tmp.backends |= 1u << k;
    }
    free_strv(backends, nb);
    v = 0;
    if ((st = reel_json_get_int(caps, "capabilities", "max_width", REEL_JSON_OPTIONAL, 0, 1 << 16, &v, err))) goto fail;
    tmp.max_width = (int)v;
    v = 0;
    if ((st = reel_json_get_int(caps, "capabilities", "max_height", REEL_JSON_OPTIONAL, 0, 1 << 16, &v, err)))
      goto fail;
    tmp.max_height = (int)v;
    v = 0;
    if ((st = reel_json_get_int(caps, "capabilities", "max_frames", REEL_JSON_OPTIONAL, 0, 1 << 20, &v, err)))
      goto fail;
    tmp.max_frames = (int)v;
    if ((st = reel_json_get_string(caps, "capabilities", "region", REEL_JSON_OPTIONAL, 64, &region, err))) goto fail;
    if (region && (!reel_proto_is_token(region, 64) || !(tmp.region = reel_strdup(region)))) {
      st = reel_error_set(err, REEL_EINVAL, "capabilities.region", "must be 1..64 printable ASCII characters");
      goto fail;
    }
    tmp.caps = json_incref(caps);
  }
  worker_clear_caps(w);
  w->caps = tmp.caps;
  w->models = tmp.models;
  w->nmodels = tmp.nmodels;
  w->labels = tmp.labels;
  w->nlabels = tmp.nlabels;
  w->region = tmp.region;
  w->backends = tmp.backends;
  w->max_width = tmp.max_width;
  w->max_height = tmp.max_height;
  w->max_frames = tmp.max_frames;
  return REEL_OK;
fail:
  worker_clear_caps(&tmp);
  return st;
}

static void attach(reel_broker *b, brk_worker *w, brk_job *j) {
  if (j->worker == w) return;
  if (j->worker) brk_worker_detach(j->worker, j);
  if (w->njobs == w->capjobs) {
    int cap = w->capjobs ? w->capjobs * 2 : 4;
    brk_job **nj = reel_realloc(w->jobs, (size_t)cap * sizeof *nj);
    if (!nj) return; /* stays an orphan: requeued when its lease ends */
    w->jobs = nj;
    w->capjobs = cap;
  }
  w->jobs[w->njobs++] = j;
  j->worker = w;
  if (j->orphan_until) {
    j->orphan_until = 0;
    b->norphans--;
  }
  if (j->worker_name && strcmp(j->worker_name, w->name) != 0) {
    char *n = reel_strdup(w->name);
    if (n) {
      reel_free(j->worker_name);
      j->worker_name = n;
    }
  }
}

static int in_list(const json_t *running, const char *id) {
  size_t i;
  json_t *v;
  json_array_foreach(running, i, v) if (json_is_string(v) && strcmp(json_string_value(v), id) == 0) return 1;
  return 0;
}

static void on_ready(reel_broker *b, req_ctx *c, brk_worker *w) {
  reel_error err;
  reel_error_clear(&err);
  const json_t *h = c->msg->header;
  const char *name = NULL;
  int64_t capacity = 0;
  json_t *running = json_object_get(h, "running");
  reel_status st = reel_json_get_string(h, "", "worker", REEL_JSON_REQUIRED, REEL_PROTO_NAME_MAX, &name, &err);
  if (!st && !reel_proto_is_token(name, REEL_PROTO_NAME_MAX))
    st = reel_error_set(&err, REEL_EINVAL, "worker", "must be 1..%d printable ASCII characters without spaces",
                        REEL_PROTO_NAME_MAX);
  if (!st) st = reel_json_get_int(h, "", "capacity", REEL_JSON_REQUIRED, 1, MAX_CAPACITY, &capacity, &err);
  if (!st && running && !json_is_null(running) && (!json_is_array(running) || json_array_size(running) > 256))
    st = reel_error_set(&err, REEL_EINVAL, "running", "must be an array of at most 256 job ids");
  if (st) return reply_error(b, &c->peer, c->req, &err);
  int fresh = 0;
  if (!w) {
    w = reel_calloc(1, sizeof *w);
    if (!w) {
      reel_error_set(&err, REEL_ENOMEM, "worker", "out of memory");
      return reply_error(b, &c->peer, c->req, &err);
    }
    w->peer = c->peer;
    w->connected_ms = brk_wall(b);
    w->idle_since = brk_mono(b);
    fresh = 1;
  }
  if ((st = parse_caps(w, h, &err))) {
    if (fresh) worker_free(w);
    return reply_error(b, &c->peer, c->req, &err);
  }
  /* A new connection under a known name replaces the old one (a restarted or reconnected worker). */
  brk_worker *old = worker_by_name(b, name);
  if (old && old != w) {
    while (old->njobs > 0) {
      brk_job *j = old->jobs[0];
      if (running && in_list(running, j->id)) {
        attach(b, w, j);
        if (j->worker != w) { /* could not attach: orphan it */
          brk_worker_detach(old, j);
          j->worker = NULL;
          j->orphan_until = brk_mono(b) + brk_lease_ms(b);
          b->norphans++;
        }
      } else if (brk_job_lost(b, j, "lost", &err) != REEL_OK) {
        brk_worker_detach(old, j);
        j->worker = NULL;
        j->orphan_until = brk_mono(b);
        b->norphans++;
      }
    }
    worker_unlink(b, old);
    worker_free(old);
  }
  /* A known connection announcing again: the jobs it no longer lists are lost, except those dispatched
     within the last lease, whose JOB may still have been on its way when the worker wrote READY. */
  for (int k = w->njobs - 1; !fresh && k >= 0; k--) {
    if (k >= w->njobs) continue;
    brk_job *j = w->jobs[k];
    if ((!running || !in_list(running, j->id)) && brk_wall(b) - j->started_ms > brk_lease_ms(b))
      brk_job_lost(b, j, "lost", &err);
  }
  snprintf(w->name, sizeof w->name, "%s", name);
  w->capacity = (int)capacity;
  w->last_recv = brk_mono(b);
  if (fresh) {
    w->next = b->workers;
    b->workers = w;
    b->nworkers++;
  }
  reel_log(b->log, REEL_LOG_INFO, "broker", NULL, "worker ready", "worker=%s capacity=%d running=%d", w->name,
           w->capacity, w->njobs);
  w->welcome_pending = 1;
  send_worker(b, w, REEL_CMD_WELCOME,
              json_pack("{s:s, s:i, s:i, s:I}", "broker", b->id, "heartbeat_ms", b->o.heartbeat_ms, "liveness",
                        b->o.liveness, "max_payload_bytes", (json_int_t)b->o.max_payload_bytes));
  /* Claim running jobs (after WELCOME, so that CANCELs for unknown jobs follow it). */
  size_t i;
  json_t *v;
  if (running) {
    json_array_foreach(running, i, v) {
      const char *id = json_string_value(v);
      if (!id) continue;
      brk_job *j = brk_job_find(b, id);
      if (j && j->state == REEL_JOB_RUNNING && j->worker_name && strcmp(j->worker_name, name) == 0) {
        attach(b, w, j);
        if (j->cancel_requested) send_cancel(b, w, j->id, j->attempts);
      } else if (j && j->state == REEL_JOB_QUEUED && worker_can_run(w, j)) {
        if (brk_job_dispatch(b, j, w, name, j->attempts + 1, &err) != REEL_OK) send_cancel(b, w, id, 0);
      } else {
        send_cancel(b, w, id, j ? j->attempts : 0);
      }
    }
  }
  /* Orphans of this worker name that it no longer has: lost. */
  if (b->norphans) {
    for (brk_job *j = b->all_head; j; j = j->all_next)
      if (j->state == REEL_JOB_RUNNING && !j->worker && j->worker_name && strcmp(j->worker_name, name) == 0)
        brk_job_lost(b, j, "lost", &err);
  }
}

static void on_progress(reel_broker *b, req_ctx *c, brk_worker *w) {
  reel_error err;
  reel_error_clear(&err);
  const json_t *h = c->msg->header;
  const char *id = NULL, *stage = NULL;
  int64_t step = 0, steps = 0, eta = -1;
  double fraction = 0;
  if (get_job_id(h, &id, &err) || reel_json_get_string(h, "", "stage", REEL_JSON_REQUIRED, 32, &stage, &err) ||
      reel_json_get_int(h, "", "step", REEL_JSON_OPTIONAL, 0, 1000000, &step, &err) ||
      reel_json_get_int(h, "", "steps", REEL_JSON_OPTIONAL, 0, 1000000, &steps, &err) ||
      reel_json_get_double(h, "", "fraction", REEL_JSON_OPTIONAL, 0.0, 1.0, &fraction, &err) ||
      reel_json_get_int(h, "", "eta_ms", REEL_JSON_OPTIONAL, 0, INT64_MAX / 2, &eta, &err))
    return reply_error(b, &c->peer, c->req, &err);
  brk_job *j = brk_job_find(b, id);
  if (!j || j->state != REEL_JOB_RUNNING || j->worker != w) return;
  json_t *p = json_pack("{s:s, s:I, s:I, s:f}", "stage", stage, "step", (json_int_t)step, "steps", (json_int_t)steps,
                        "fraction", fraction);
  if (!p) return;
  if (eta >= 0) json_object_set_new(p, "eta_ms", json_integer(eta));
  if (j->progress) json_decref(j->progress);
  j->progress = p;
  j->progress_dirty = 1;
  if (c->msg->has_payload && c->msg->payload_size > 0) {
    /* A preview image (PNG): kept until forwarded with the next progress event; a newer one replaces it. */
    void *copy = reel_malloc(c->msg->payload_size);
    if (copy) {
      memcpy(copy, c->msg->payload, c->msg->payload_size);
      brk_job_drop_preview(j);
      j->preview = copy;
      j->preview_len = c->msg->payload_size;
    }
  }
  if (brk_mono(b) - j->progress_sent >= PROGRESS_INTERVAL_MS) brk_event_progress(b, j);
}

/* Validates the members of a RESULT that are stored in the record. */
static reel_status check_result(const json_t *h, json_t **outputs, json_t **error, json_t **timings, reel_error *err) {
  *outputs = json_object_get(h, "outputs");
  *error = json_object_get(h, "error");
  *timings = json_object_get(h, "timings");
  if (*outputs && json_is_null(*outputs)) *outputs = NULL;
  if (*error && json_is_null(*error)) *error = NULL;
  if (*timings && json_is_null(*timings)) *timings = NULL;
  char field[64];
  if (*outputs) {
    if (!json_is_array(*outputs) || json_array_size(*outputs) > 16)
      return reel_error_set(err, REEL_EINVAL, "outputs", "must be an array of at most 16 objects");
    size_t i;
    json_t *o;
    json_array_foreach(*outputs, i, o) {
      snprintf(field, sizeof field, "outputs[%zu]", i);
      const char *url = NULL, *ct = NULL;
      int64_t bytes = 0;
      reel_status st;
      if (!json_is_object(o)) return reel_error_set(err, REEL_EINVAL, field, "must be an object");
      if ((st = reel_json_get_string(o, field, "url", REEL_JSON_REQUIRED, 2048, &url, err)) ||
          (st = reel_json_get_int(o, field, "bytes", REEL_JSON_OPTIONAL, 0, INT64_MAX, &bytes, err)) ||
          (st = reel_json_get_string(o, field, "content_type", REEL_JSON_OPTIONAL, 128, &ct, err)))
        return st;
      if (json_object_size(o) > 8) return reel_error_set(err, REEL_ELIMIT, field, "has more than 8 members");
    }
  }
  if (*error) {
    const char *code = NULL, *f = NULL, *m = NULL;
    reel_status st, c;
    if (!json_is_object(*error)) return reel_error_set(err, REEL_EINVAL, "error", "must be an object");
    if ((st = reel_json_get_string(*error, "error", "code", REEL_JSON_REQUIRED, 32, &code, err)) ||
        (st = reel_json_get_string(*error, "error", "field", REEL_JSON_OPTIONAL, REEL_ERROR_FIELD_MAX, &f, err)) ||
        (st = reel_json_get_string(*error, "error", "message", REEL_JSON_OPTIONAL, REEL_ERROR_MSG_MAX, &m, err)))
      return st;
    if (reel_status_from_name(code, &c) != REEL_OK || c == REEL_OK)
      return reel_error_set(err, REEL_EINVAL, "error.code", "must be a reel status name such as EMODEL, got \"%s\"",
                            code);
    if (json_object_size(*error) > 4) return reel_error_set(err, REEL_ELIMIT, "error", "has more than 4 members");
  }
  if (*timings) {
    if (!json_is_object(*timings) || json_object_size(*timings) > 16)
      return reel_error_set(err, REEL_EINVAL, "timings", "must be an object of at most 16 numbers");
    const char *k;
    json_t *v;
    json_object_foreach(*timings, k, v) {
      if (!json_is_number(v)) return reel_error_set(err, REEL_EINVAL, "timings", "member \"%s\" is not a number", k);
    }
  }
  return REEL_OK;
}

static void on_result(reel_broker *b, req_ctx *c, brk_worker *w) {
  reel_error err;
  reel_error_clear(&err);
  const json_t *h = c->msg->header;
  const char *id = NULL;
  int64_t attempt = 0;
  int st_idx = -1, retry = 0, seed_set = 0;
  uint64_t seed = 0;
  json_t *outputs, *error, *timings;
  reel_status st = get_job_id(h, &id, &err);
  if (!st) st = reel_json_get_int(h, "", "attempt", REEL_JSON_OPTIONAL, 0, 1000000, &attempt, &err);
  if (!st) st = reel_json_get_enum(h, "", "state", REEL_JSON_REQUIRED, reel_job_state_names, &st_idx, &err);
  if (!st && st_idx != REEL_JOB_SUCCEEDED && st_idx != REEL_JOB_FAILED && st_idx != REEL_JOB_CANCELED)
    st = reel_error_set(&err, REEL_EINVAL, "state", "must be succeeded, failed or canceled");
  if (!st) st = reel_json_get_bool(h, "", "retry", REEL_JSON_OPTIONAL, &retry, &err);
  if (!st && json_object_get(h, "seed") && !json_is_null(json_object_get(h, "seed"))) {
    st = reel_json_get_u64(h, "", "seed", REEL_JSON_REQUIRED, &seed, &err);
    seed_set = 1;
  }
  if (!st) st = check_result(h, &outputs, &error, &timings, &err);
  brk_job *j = id ? brk_job_find(b, id) : NULL;
  if (st && j && j->state == REEL_JOB_RUNNING && j->worker == w) {
    /* A result that breaks the protocol still ends the attempt: fail it, so that the job is not stuck. */
    char msg[REEL_ERROR_MSG_MAX + REEL_ERROR_FIELD_MAX + 64];
    snprintf(msg, sizeof msg, "the worker sent an invalid RESULT: %s: %s", err.field, err.msg);
    json_t *e = json_pack("{s:s, s:s, s:s}", "code", "EPROTO", "field", err.field, "message", msg);
    reel_error ferr;
    reel_error_clear(&ferr);
    reel_log_error(b->log, REEL_LOG_WARN, "broker", id, &err);
    st = brk_job_finish(b, j, REEL_JOB_FAILED, NULL, NULL, e, NULL, 0, 0, &ferr);
    if (e) json_decref(e);
    if (st) return;
    reply_error(b, &c->peer, c->req, &err);
    send_worker(b, w, REEL_CMD_ACK, json_pack("{s:s, s:I}", "job_id", id, "attempt", (json_int_t)attempt));
    return;
  }
  if (st) return reply_error(b, &c->peer, c->req, &err);
  reel_job_state state = (reel_job_state)st_idx;
  if (j && !reel_job_state_terminal(j->state)) {
    int mine = j->state == REEL_JOB_RUNNING && j->worker == w;
    if (state == REEL_JOB_SUCCEEDED) {
      brk_worker *other = j->state == REEL_JOB_RUNNING && !mine ? j->worker : NULL;
      int other_attempt = j->attempts;
      st = brk_job_finish(b, j, REEL_JOB_SUCCEEDED, mine || j->state == REEL_JOB_QUEUED ? NULL : "superseded", outputs,
                          NULL, timings, seed_set, seed, &err);
      if (!st && other) send_cancel(b, other, j->id, other_attempt);
    } else if (mine && state == REEL_JOB_FAILED && retry && !j->cancel_requested && j->charged < b->o.max_attempts) {
      st = brk_job_requeue(b, j, "failed", error, &err);
    } else if (mine) {
      st = brk_job_finish(b, j, state, NULL, NULL, error, timings, seed_set, seed, &err);
    }
    /* A failure or cancel from an attempt that no longer holds the job changes nothing. */
  }
  if (st) {
    /* Not applied (out of memory): no ACK, the worker sends the result again. */
    reel_log_error(b->log, REEL_LOG_WARN, "broker", id, &err);
    return;
  }
  if (j && j->state != REEL_JOB_RUNNING) brk_worker_detach(w, j);
  send_worker(b, w, REEL_CMD_ACK, json_pack("{s:s, s:I}", "job_id", id, "attempt", (json_int_t)attempt));
}

static void on_credit(reel_broker *b, req_ctx *c, brk_worker *w) {
  reel_error err;
  reel_error_clear(&err);
  int64_t capacity = 0;
  if (reel_json_get_int(c->msg->header, "", "capacity", REEL_JSON_REQUIRED, 1, MAX_CAPACITY, &capacity, &err))
    return reply_error(b, &c->peer, c->req, &err);
  w->capacity = (int)capacity;
}

/* ---- message dispatch ------------------------------------------------------------------------- */

static int is_worker_cmd(reel_proto_command cmd) {
  return cmd == REEL_CMD_READY || cmd == REEL_CMD_HEARTBEAT || cmd == REEL_CMD_PROGRESS || cmd == REEL_CMD_RESULT ||
         cmd == REEL_CMD_CREDIT || cmd == REEL_CMD_BYE;
}

static int is_client_cmd(reel_proto_command cmd) {
  return cmd == REEL_CMD_PING || cmd == REEL_CMD_SUBMIT || cmd == REEL_CMD_STATUS || cmd == REEL_CMD_FOLLOW ||
         cmd == REEL_CMD_CANCEL || cmd == REEL_CMD_LIST || cmd == REEL_CMD_WORKERS || cmd == REEL_CMD_STATS;
}

static void handle(reel_broker *b, reel_wire_msg *wm) {
  if (wm->n < 1) return;
  req_ctx c;
  memset(&c, 0, sizeof c);
  size_t rid_len = zmq_msg_size(&wm->parts[0]);
  if (rid_len == 0 || rid_len > RID_MAX) return;
  memcpy(c.peer.rid, zmq_msg_data(&wm->parts[0]), rid_len);
  c.peer.len = rid_len;
  reel_msg msg;
  reel_msg_init(&msg);
  c.msg = &msg;
  reel_error err;
  reel_error_clear(&err);
  reel_proto_limits lim = {b->o.max_header_bytes, b->o.max_payload_bytes};
  reel_status st = reel_wire_decode(wm, 1, &lim, &msg, &err);
  if (msg.header) {
    reel_status rs = reel_proto_get_req(msg.header, &c.req, &err);
    if (!st) st = rs;
  }
  if (!st && msg.has_payload && msg.cmd != REEL_CMD_PROGRESS)
    st = reel_error_set(&err, REEL_EPROTO, "payload", "%s takes no payload frame", msg.command);
  if (!st && !is_worker_cmd(msg.cmd) && !is_client_cmd(msg.cmd))
    st = reel_error_set(&err, REEL_EUNSUPPORTED, "command", "%s is sent by the broker, not to it", msg.command);
  if (!st && b->auth) {
    c.user = zmq_msg_gets(&wm->parts[wm->n - 1], "User-Id");
    int worker_key = c.user && strncmp(c.user, "worker:", 7) == 0;
    int client_key = c.user && strncmp(c.user, "client:", 7) == 0;
    if (is_worker_cmd(msg.cmd) ? !worker_key : !client_key)
      st = reel_error_set(&err, REEL_EAUTH, "command", "this key may not send %s (it is a %s key)", msg.command,
                          worker_key ? "worker" : "client");
  }
  if (st) {
    if (reel_log_enabled(b->log, REEL_LOG_DEBUG)) reel_log_error(b->log, REEL_LOG_DEBUG, "broker", NULL, &err);
    reply_error(b, &c.peer, c.req, &err);
    reel_msg_fini(&msg);
    return;
  }
  if (is_worker_cmd(msg.cmd)) {
    brk_worker *w = worker_by_peer(b, &c.peer);
    if (w) w->last_recv = brk_mono(b);
    if (msg.cmd == REEL_CMD_READY) {
      on_ready(b, &c, w);
    } else if (!w) {
      reply(b, &c.peer, REEL_CMD_DISCONNECT, NULL,
            json_pack("{s:s}", "reason", "unknown worker: send READY (the broker may have restarted)"));
    } else {
      switch (msg.cmd) {
        case REEL_CMD_HEARTBEAT:
          break;
        case REEL_CMD_PROGRESS:
          on_progress(b, &c, w);
          break;
        case REEL_CMD_RESULT:
          on_result(b, &c, w);
          break;
        case REEL_CMD_CREDIT:
          on_credit(b, &c, w);
          break;
        case REEL_CMD_BYE:
          worker_gone(b, w, "left");
          break;
        default:
          break;
      }
    }
  } else {
    switch (msg.cmd) {
      case REEL_CMD_PING:
        on_ping(b, &c);
        break;
      case REEL_CMD_SUBMIT:
        on_submit(b, &c);
        break;
      case REEL_CMD_STATUS:
        on_status(b, &c, 0);
        break;
      case REEL_CMD_FOLLOW:
        on_status(b, &c, 1);
        break;
      case REEL_CMD_CANCEL:
        on_cancel(b, &c);
        break;
      case REEL_CMD_LIST:
        on_list(b, &c);
        break;
      case REEL_CMD_WORKERS:
        on_workers(b, &c);
        break;
      case REEL_CMD_STATS:
        on_stats(b, &c);
        break;
      default:
        break;
    }
  }
  reel_msg_fini(&msg);
}

/* ---- ZAP (auth) ------------------------------------------------------------------------------- */

static void zap_reply(void *zap, const zmq_msg_t *reqid, const char *code, const char *text, const char *user) {
  zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
  zmq_send(zap, zmq_msg_data((zmq_msg_t *)reqid), zmq_msg_size((zmq_msg_t *)reqid), ZMQ_SNDMORE);
  zmq_send(zap, code, strlen(code), ZMQ_SNDMORE);
  zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
  zmq_send(zap, user, strlen(user), ZMQ_SNDMORE);
  zmq_send(zap, "", 0, 0);
}

static void handle_zap(reel_broker *b) {
  for (;;) {
    reel_wire_msg m;
    if (reel_wire_recv(b->zap, &m, ZMQ_DONTWAIT) != 0) return;
    /* version, request id, domain, address, routing id, mechanism, credentials... */
    if (m.n < 6) {
      reel_wire_close(&m);
      continue; /* a REP socket cannot answer a message it cannot parse; libzmq never sends one */
    }
    const char *mech = zmq_msg_data(&m.parts[5]);
    size_t mech_len = zmq_msg_size(&m.parts[5]);
    char user[REEL_PROTO_NAME_MAX + 16] = "";
    const char *code = "400", *text = "unknown key";
    if (mech_len == 5 && memcmp(mech, "CURVE", 5) == 0 && m.n >= 7 && zmq_msg_size(&m.parts[6]) == 32) {
      const unsigned char *key = zmq_msg_data(&m.parts[6]);
      for (int i = 0; i < b->nkeys; i++) {
        if (memcmp(b->keys[i].key, key, 32) == 0) {
          snprintf(user, sizeof user, "%s:%s", b->keys[i].worker ? "worker" : "client", b->keys[i].name);
          code = "200";
          text = "OK";
          break;
        }
      }
    } else {
      text = "CURVE required";
    }
    if (code[0] != '2') reel_log(b->log, REEL_LOG_INFO, "broker", NULL, "connection refused", "reason=\"%s\"", text);
    zap_reply(b->zap, &m.parts[1], code, text, user);
    reel_wire_close(&m);
  }
}

static reel_status add_key(reel_broker *b, const char *path, int worker, const char *name, reel_error *err) {
  reel_keypair kp;
  reel_status st = reel_keys_load(path, 0, &kp, err);
  if (st) return st;
  brk_key *nk = reel_realloc(b->keys, (size_t)(b->nkeys + 1) * sizeof *nk);
  if (!nk) return reel_error_set(err, REEL_ENOMEM, path, "out of memory");
  b->keys = nk;
  brk_key *k = &b->keys[b->nkeys++];
  reel_keys_decode(kp.public_key, k->key);
  k->worker = worker;
  snprintf(k->name, sizeof k->name, "%s", name);
  return REEL_OK;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n > m && strcmp(s + n - m, suffix) == 0;
}

/* Adds every NAME.pub of a directory; `tenant` NULL means worker keys named by their file. */
static reel_status load_key_dir(reel_broker *b, const char *dir, const char *tenant, reel_error *err) {
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? REEL_OK : reel_error_set(err, REEL_EIO, dir, "cannot read: %s", strerror(errno));
  reel_status st = REEL_OK;
  struct dirent *e;
  char path[4096], name[REEL_PROTO_NAME_MAX + 1];
  while (!st && (e = readdir(d))) {
    if (!ends_with(e->d_name, ".pub")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    size_t n = strlen(e->d_name) - 4;
    if (n > REEL_PROTO_NAME_MAX) n = REEL_PROTO_NAME_MAX;
    memcpy(name, e->d_name, n);
    name[n] = '\0';
    st = add_key(b, path, tenant == NULL, tenant ? tenant : name, err);
  }
  closedir(d);
  return st;
}

static reel_status load_auth(reel_broker *b, const char *dir, reel_error *err) {
  char path[4096];
  reel_keypair kp;
  snprintf(path, sizeof path, "%s/broker.key", dir);
  reel_status st = reel_keys_load(path, 1, &kp, err);
  if (st) return st;
  reel_keys_decode(kp.secret_key, b->secret);
  snprintf(path, sizeof path, "%s/workers", dir);
  if ((st = load_key_dir(b, path, NULL, err))) return st;
  snprintf(path, sizeof path, "%s/clients", dir);
  DIR *d = opendir(path);
  if (d) {
    struct dirent *e;
    while (!st && (e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char sub[4352];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      DIR *probe = opendir(sub);
      if (!probe) continue;
      closedir(probe);
      if (!reel_proto_is_token(e->d_name, REEL_PROTO_NAME_MAX)) {
        st = reel_error_set(err, REEL_EINVAL, sub, "tenant directory names must be 1..%d printable characters",
                            REEL_PROTO_NAME_MAX);
        break;
      }
      st = load_key_dir(b, sub, e->d_name, err);
    }
    closedir(d);
  }
  if (st) return st;
  reel_log(b->log, REEL_LOG_INFO, "broker", NULL, "auth keys loaded", "keys=%d dir=%s", b->nkeys, dir);
  return REEL_OK;
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

static reel_status check_options(const reel_broker_options *o, reel_error *err) {
  if (!o->listen || !o->listen[0]) return reel_error_set(err, REEL_EINVAL, "listen", "an endpoint is required");
  if (o->heartbeat_ms < 10 || o->heartbeat_ms > 600000)
    return reel_error_set(err, REEL_ERANGE, "heartbeat_ms", "must be in 10..600000, got %d", o->heartbeat_ms);
  if (o->liveness < 1 || o->liveness > 100)
    return reel_error_set(err, REEL_ERANGE, "liveness", "must be in 1..100, got %d", o->liveness);
  if (o->max_attempts < 1 || o->max_attempts > 100)
    return reel_error_set(err, REEL_ERANGE, "max_attempts", "must be in 1..100, got %d", o->max_attempts);
  if (o->max_header_bytes < 1024 || o->max_header_bytes > (64u << 20))
    return reel_error_set(err, REEL_ERANGE, "max_header_bytes", "must be in 1024..%u, got %zu", 64u << 20,
                          o->max_header_bytes);
  if (o->max_payload_bytes > (256u << 20))
    return reel_error_set(err, REEL_ERANGE, "max_payload_bytes", "must be at most %u, got %zu", 256u << 20,
                          o->max_payload_bytes);
  if (o->max_queued_per_tenant < 1)
    return reel_error_set(err, REEL_ERANGE, "max_queued_per_tenant", "must be at least 1");
  if (o->interactive_burst < 1 || o->interactive_burst > 1000)
    return reel_error_set(err, REEL_ERANGE, "interactive_burst", "must be in 1..1000, got %d", o->interactive_burst);
  if (o->retain_finished < 0) return reel_error_set(err, REEL_ERANGE, "retain_finished", "must be >= 0");
  if (o->restart_grace_ms < 0 || o->restart_grace_ms > 3600000)
    return reel_error_set(err, REEL_ERANGE, "restart_grace_ms", "must be in 0..3600000, got %d", o->restart_grace_ms);
  return REEL_OK;
}

reel_status reel_broker_new(const reel_broker_options *opt, reel_broker **out, reel_error *err) {
  *out = NULL;
  reel_status st = check_options(opt, err);
  if (st) return st;
  reel_broker *b = reel_calloc(1, sizeof *b);
  if (!b) return reel_error_set(err, REEL_ENOMEM, "broker", "out of memory");
  b->o = *opt;
  if (!b->o.mono_ms) b->o.mono_ms = default_mono;
  if (!b->o.wall_ms) b->o.wall_ms = default_wall;
  if (!b->o.max_payload_bytes) b->o.max_payload_bytes = REEL_PROTO_DEFAULT_MAX_PAYLOAD;
  reel_logger_init(&b->deflog, REEL_LOG_WARN, REEL_LOG_TEXT, 2);
  b->log = opt->log ? opt->log : &b->deflog;
  b->o.listen = NULL; /* not kept: the caller's string */
  b->o.journal_dir = NULL;
  b->o.auth_dir = NULL;
  b->o.log = NULL;
  unsigned char rnd[16];
  if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
    int64_t t = reel_now_ns();
    for (size_t i = 0; i < sizeof rnd; i++) rnd[i] = (unsigned char)((t >> (i % 8 * 8)) ^ (intptr_t)b >> (i % 4));
  }
  for (size_t i = 0; i < sizeof rnd; i++) snprintf(b->id + 2 * i, 3, "%02x", rnd[i]);
  b->id_counter = 0;
  b->next_seq = 1;
  if (!(b->sched = reel_sched_new(opt->interactive_burst)) || brk_table_init(b) != REEL_OK) {
    st = reel_error_set(err, REEL_ENOMEM, "broker", "out of memory");
    goto fail;
  }
  if (opt->auth_dir) {
    if ((st = load_auth(b, opt->auth_dir, err))) goto fail;
    b->auth = 1;
  }
  if (opt->journal_dir) {
    reel_journal_info info;
    if ((st = reel_journal_open(opt->journal_dir, brk_replay, b, &info, &b->journal, err))) goto fail;
    reel_journal_set_nosync(b->journal, opt->journal_nosync);
    b->replayed_records = info.records_replayed;
    b->replay_truncated = info.truncated_bytes;
    b->snapshot_bytes = info.bytes_replayed;
    brk_after_replay(b);
    brk_retention(b);
    if (info.truncated_bytes)
      reel_log(b->log, REEL_LOG_WARN, "broker", NULL, "journal: dropped a torn last record", "bytes=%llu",
               (unsigned long long)info.truncated_bytes);
    reel_log(b->log, REEL_LOG_INFO, "broker", NULL, "journal replayed", "records=%llu jobs=%zu queued=%zu",
             (unsigned long long)info.records_replayed, b->njobs, reel_sched_queued(b->sched, -1));
  }
  b->ctx = zmq_ctx_new();
  if (!b->ctx) {
    st = reel_error_set(err, REEL_ENETWORK, "zmq", "cannot create a context: %s", zmq_strerror(errno));
    goto fail;
  }
  if (b->auth) {
    b->zap = zmq_socket(b->ctx, ZMQ_REP);
    if (!b->zap || zmq_bind(b->zap, "inproc://zeromq.zap.01") != 0) {
      st = reel_error_set(err, REEL_ENETWORK, "zap", "cannot bind the ZAP handler: %s", zmq_strerror(errno));
      goto fail;
    }
  }
  b->router = zmq_socket(b->ctx, ZMQ_ROUTER);
  if (!b->router) {
    st = reel_error_set(err, REEL_ENETWORK, "zmq", "cannot create a socket: %s", zmq_strerror(errno));
    goto fail;
  }
  int one = 1, hwm = 1000000, linger = 2000;
  int64_t maxmsg = (int64_t)(4 * (b->o.max_header_bytes + b->o.max_payload_bytes) + 4096);
  zmq_setsockopt(b->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
  zmq_setsockopt(b->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(b->router, ZMQ_RCVHWM, &hwm, sizeof hwm);
  zmq_setsockopt(b->router, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(b->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
  if (b->auth) {
    zmq_setsockopt(b->router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(b->router, ZMQ_CURVE_SECRETKEY, b->secret, 32);
    zmq_setsockopt(b->router, ZMQ_ZAP_DOMAIN, "reel", 4);
  }
  if (zmq_bind(b->router, opt->listen) != 0) {
    st = reel_error_set(err, REEL_ENETWORK, "listen", "cannot bind %s: %s", opt->listen, zmq_strerror(errno));
    goto fail;
  }
  size_t elen = sizeof b->endpoint;
  if (zmq_getsockopt(b->router, ZMQ_LAST_ENDPOINT, b->endpoint, &elen) != 0)
    snprintf(b->endpoint, sizeof b->endpoint, "%s", opt->listen);
  int64_t now = brk_mono(b);
  b->next_scan = now;
  b->next_positions = now + POSITION_INTERVAL_MS;
  reel_log(b->log, REEL_LOG_INFO, "broker", NULL, "listening", "endpoint=%s broker=%s auth=%d journal=%s", b->endpoint,
           b->id, b->auth, opt->journal_dir ? opt->journal_dir : "off");
  *out = b;
  return REEL_OK;
fail:
  reel_broker_destroy(&b);
  return st;
}

void reel_broker_destroy(reel_broker **bp) {
  if (!bp || !*bp) return;
  reel_broker *b = *bp;
  if (b->router) {
    reel_error err;
    reel_error_clear(&err);
    if (settle_commits(b, 1, &err) != REEL_OK) reel_log_error(b->log, REEL_LOG_ERROR, "broker", NULL, &err);
  }
  drop_group(b->gated, &b->ngated);
  drop_group(b->out, &b->nout);
  reel_free(b->out);
  reel_free(b->gated);
  if (b->router) zmq_close(b->router);
  if (b->zap) zmq_close(b->zap);
  if (b->ctx) zmq_ctx_term(b->ctx);
  for (brk_worker *w = b->workers, *n; w; w = n) {
    n = w->next;
    worker_free(w);
  }
  brk_table_fini(b);
  reel_sched_destroy(&b->sched);
  reel_journal_close(&b->journal);
  reel_free(b->keys);
  reel_free(b);
  *bp = NULL;
}

reel_status reel_broker_set_tenant_weight(reel_broker *b, const char *tenant, int weight) {
  if (!reel_proto_is_token(tenant, REEL_PROTO_NAME_MAX)) return REEL_EINVAL;
  return reel_sched_set_weight(b->sched, tenant, weight);
}

const char *reel_broker_endpoint(const reel_broker *b) { return b->endpoint; }
const char *reel_broker_id(const reel_broker *b) { return b->id; }
void reel_broker_stop(reel_broker *b) { b->stop = 1; }

void reel_broker_get_stats(const reel_broker *b, reel_broker_stats *s) {
  memset(s, 0, sizeof *s);
  s->jobs = b->njobs;
  s->queued = reel_sched_queued(b->sched, -1);
  s->finished = b->nfinished;
  s->running = b->njobs - s->queued - s->finished;
  s->workers = b->nworkers;
  s->messages_total = b->messages_total;
  s->accepted_total = b->accepted_total;
  s->dispatched_total = b->dispatched_total;
  s->finished_total = b->finished_total;
  s->requeued_total = b->requeued_total;
  s->journal_bytes = b->journal ? reel_journal_size(b->journal) : 0;
  s->journal_commits = b->journal ? reel_journal_commits(b->journal) : 0;
  s->compactions = b->compactions;
  s->replayed_records = b->replayed_records;
  s->replay_truncated_bytes = b->replay_truncated;
}

/* ---- timers ----------------------------------------------------------------------------------- */

static void send_position(void *ud, reel_sched_item *it, size_t pos) {
  reel_broker *b = ud;
  brk_job *j = item_job(it);
  j->position = pos;
  if (j->nfollowers && pos != j->position_sent) {
    j->position_sent = pos;
    send_followers(b, j,
                   json_pack("{s:s, s:s, s:I, s:I}", "event", "position", "job_id", j->id, "position", (json_int_t)pos,
                             "queued", (json_int_t)reel_sched_queued(b->sched, -1)));
  }
}

static void timers(reel_broker *b) {
  int64_t now = brk_mono(b);
  int64_t lease = brk_lease_ms(b);
  for (brk_worker *w = b->workers, *n; w; w = n) {
    n = w->next;
    if (now - w->last_recv > lease)
      worker_gone(b, w, "lost");
    else if (now - w->last_send >= b->o.heartbeat_ms)
      send_heartbeat(b, w);
  }
  if (now >= b->next_scan) {
    b->next_scan = now + SCAN_INTERVAL_MS;
    reel_error err;
    if (b->norphans || b->nqueued_deadline) {
      int64_t wall = brk_wall(b);
      for (brk_job *j = b->all_head, *n; j; j = n) {
        n = j->all_next;
        reel_error_clear(&err);
        if (j->state == REEL_JOB_RUNNING && !j->worker && j->orphan_until && j->orphan_until <= now) {
          brk_job_lost(b, j, "lost", &err);
        } else if (j->state == REEL_JOB_QUEUED && j->deadline_ms > 0 && j->attempts == 0 &&
                   wall >= j->accepted_ms + j->deadline_ms) {
          char msg[128];
          snprintf(msg, sizeof msg, "not started within its deadline of %lld ms", (long long)j->deadline_ms);
          json_t *e = json_pack("{s:s, s:s, s:s}", "code", "ETIMEDOUT", "field", "job.deadline_ms", "message", msg);
          brk_job_finish(b, j, REEL_JOB_EXPIRED, NULL, NULL, e, NULL, 0, 0, &err);
          if (e) json_decref(e);
        }
      }
    }
    for (brk_worker *w = b->workers; w; w = w->next)
      for (int i = 0; i < w->njobs; i++)
        if (w->jobs[i]->progress_dirty && now - w->jobs[i]->progress_sent >= PROGRESS_INTERVAL_MS)
          brk_event_progress(b, w->jobs[i]);
  }
  if (now >= b->next_positions) {
    b->next_positions = now + POSITION_INTERVAL_MS;
    if (reel_sched_queued(b->sched, -1)) {
      reel_sched_foreach(b->sched, send_position, b);
      b->positions_valid = 1;
    }
  }
}

static int next_timeout(reel_broker *b, int timeout_ms) {
  int64_t now = brk_mono(b);
  int64_t due = b->next_scan;
  if (b->next_positions < due) due = b->next_positions;
  int64_t lease = brk_lease_ms(b);
  for (brk_worker *w = b->workers; w; w = w->next) {
    if (w->last_send + b->o.heartbeat_ms < due) due = w->last_send + b->o.heartbeat_ms;
    if (w->last_recv + lease + 1 < due) due = w->last_recv + lease + 1;
  }
  int64_t t = due - now;
  if (t < 0) t = 0;
  if (timeout_ms >= 0 && t > timeout_ms) t = timeout_ms;
  return (int)t;
}

static void maybe_compact(reel_broker *b) {
  if (!b->journal) return;
  uint64_t size = reel_journal_size(b->journal);
  if (size <= b->o.compact_bytes || size <= 2 * b->snapshot_bytes) return;
  reel_error err;
  reel_error_clear(&err);
  reel_status st = reel_journal_compact(b->journal, brk_snapshot, b, &err);
  uint64_t after = reel_journal_size(b->journal);
  if (st) {
    reel_log_error(b->log, REEL_LOG_WARN, "broker", NULL, &err);
    /* Retry once the journal has doubled again rather than on every iteration. */
    b->snapshot_bytes = size;
    return;
  }
  b->snapshot_bytes = after;
  b->compactions++;
  reel_log(b->log, REEL_LOG_INFO, "broker", NULL, "journal compacted", "before=%llu after=%llu jobs=%zu",
           (unsigned long long)size, (unsigned long long)after, b->njobs);
}

reel_status reel_broker_poll(reel_broker *b, int timeout_ms, reel_error *err) {
  zmq_pollitem_t items[3];
  int n = 0, zap_at = -1, commit_at = -1;
  items[n++] = (zmq_pollitem_t){b->router, 0, ZMQ_POLLIN, 0};
  if (b->zap) {
    zap_at = n;
    items[n++] = (zmq_pollitem_t){b->zap, 0, ZMQ_POLLIN, 0};
  }
  if (b->journal && reel_journal_commit_busy(b->journal)) {
    commit_at = n;
    items[n++] = (zmq_pollitem_t){NULL, reel_journal_commit_fd(b->journal), ZMQ_POLLIN, 0};
  }
  int rc = zmq_poll(items, n, next_timeout(b, timeout_ms));
  if (rc < 0 && errno != EINTR) return reel_error_set(err, REEL_ENETWORK, "poll", "%s", zmq_strerror(errno));
  (void)commit_at; /* a finished commit is collected below either way */
  if (rc > 0 && zap_at >= 0 && (items[zap_at].revents & ZMQ_POLLIN)) handle_zap(b);
  if (rc > 0 && (items[0].revents & ZMQ_POLLIN)) {
    for (int i = 0; i < MAX_BATCH; i++) {
      reel_wire_msg m;
      if (reel_wire_recv(b->router, &m, ZMQ_DONTWAIT) != 0) break;
      b->messages_total++;
      handle(b, &m);
      reel_wire_close(&m);
    }
  }
  dispatch(b);
  timers(b);
  dispatch(b);
  reel_status st = settle_commits(b, 0, err);
  if (st) {
    /* Durability of these groups is unknown: send none of them; the caller stops. */
    drop_group(b->gated, &b->ngated);
    drop_group(b->out, &b->nout);
    return st;
  }
  brk_retention(b);
  if (b->journal && !reel_journal_commit_busy(b->journal) && reel_journal_pending(b->journal) == 0) maybe_compact(b);
  return REEL_OK;
}

reel_status reel_broker_run(reel_broker *b, reel_error *err) {
  while (!b->stop) {
    reel_status st = reel_broker_poll(b, 1000, err);
    if (st) return st;
  }
  return REEL_OK;
}
