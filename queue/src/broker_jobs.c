/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's job table and job state machine: every transition writes one
 * journal record before it changes memory, so that replaying the journal through
 * the same functions rebuilds the same table. Also the record JSON for replies
 * and events, replay, and compaction snapshots.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "reel/alloc.h"
#include "reel/clock.h"

/* ---- hashing ---------------------------------------------------------------------------------- */

static uint64_t fnv1a(const void *data, size_t n, uint64_t h) {
  const unsigned char *p = data;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

static size_t id_bucket(const reel_broker *b, const char *id) {
  return (size_t)(fnv1a(id, strlen(id), 1469598103934665603ull) & (b->nbuckets - 1));
}

static size_t idem_bucket(const reel_broker *b, const reel_sched_tenant *t, const char *key) {
  uint64_t h = fnv1a(t->name, strlen(t->name) + 1, 1469598103934665603ull);
  return (size_t)(fnv1a(key, strlen(key), h) & (b->nbuckets - 1));
}

reel_status brk_table_init(reel_broker *b) {
  b->nbuckets = 1024;
  b->buckets = reel_calloc(b->nbuckets, sizeof *b->buckets);
  b->ibuckets = reel_calloc(b->nbuckets, sizeof *b->ibuckets);
  if (!b->buckets || !b->ibuckets) return REEL_ENOMEM;
  return REEL_OK;
}

void brk_table_fini(reel_broker *b) {
  for (brk_job *j = b->all_head, *n; j; j = n) {
    n = j->all_next;
    brk_job_free(b, j);
  }
  reel_free(b->buckets);
  reel_free(b->ibuckets);
  b->buckets = b->ibuckets = NULL;
}

static void hash_insert(reel_broker *b, brk_job *j) {
  size_t h = id_bucket(b, j->id);
  j->hnext = b->buckets[h];
  b->buckets[h] = j;
  if (j->idem) {
    h = idem_bucket(b, j->tenant, j->idem);
    j->inext = b->ibuckets[h];
    b->ibuckets[h] = j;
  }
}

static void hash_remove(reel_broker *b, brk_job *j) {
  brk_job **pp = &b->buckets[id_bucket(b, j->id)];
  while (*pp && *pp != j) pp = &(*pp)->hnext;
  if (*pp) *pp = j->hnext;
  if (j->idem) {
    pp = &b->ibuckets[idem_bucket(b, j->tenant, j->idem)];
    while (*pp && *pp != j) pp = &(*pp)->inext;
    if (*pp) *pp = j->inext;
  }
}

/* Doubles the tables when they are fuller than one job per bucket; on ENOMEM keeps the old ones. */
static void hash_grow(reel_broker *b) {
  if (b->njobs < b->nbuckets) return;
  size_t n = b->nbuckets * 2;
  brk_job **nb = reel_calloc(n, sizeof *nb), **ni = reel_calloc(n, sizeof *ni);
  if (!nb || !ni) {
    reel_free(nb);
    reel_free(ni);
    return;
  }
  reel_free(b->buckets);
  reel_free(b->ibuckets);
  b->buckets = nb;
  b->ibuckets = ni;
  b->nbuckets = n;
  for (brk_job *j = b->all_head; j; j = j->all_next) hash_insert(b, j);
}

brk_job *brk_job_find(const reel_broker *b, const char *id) {
  for (brk_job *j = b->buckets[id_bucket(b, id)]; j; j = j->hnext)
    if (strcmp(j->id, id) == 0) return j;
  return NULL;
}

brk_job *brk_job_find_idem(const reel_broker *b, const reel_sched_tenant *t, const char *key) {
  for (brk_job *j = b->ibuckets[idem_bucket(b, t, key)]; j; j = j->inext)
    if (j->tenant == t && strcmp(j->idem, key) == 0) return j;
  return NULL;
}

void brk_job_drop_preview(brk_job *j) {
  reel_free(j->preview);
  j->preview = NULL;
  j->preview_len = 0;
}

void brk_job_free(reel_broker *b, brk_job *j) {
  (void)b;
  if (!j) return;
  if (j->spec) json_decref(j->spec);
  if (j->progress) json_decref(j->progress);
  brk_job_drop_preview(j);
  if (j->outputs) json_decref(j->outputs);
  if (j->error) json_decref(j->error);
  if (j->timings) json_decref(j->timings);
  if (j->history) json_decref(j->history);
  reel_free(j->worker_name);
  reel_free(j->followers);
  reel_free(j);
}

reel_status brk_follow(brk_job *j, const brk_peer *p) {
  for (int i = 0; i < j->nfollowers; i++)
    if (j->followers[i].len == p->len && memcmp(j->followers[i].rid, p->rid, p->len) == 0) return REEL_OK;
  if (j->nfollowers >= 64) return REEL_ELIMIT;
  if (j->nfollowers == j->capfollowers) {
    int cap = j->capfollowers ? j->capfollowers * 2 : 2;
    brk_peer *nf = reel_realloc(j->followers, (size_t)cap * sizeof *nf);
    if (!nf) return REEL_ENOMEM;
    j->followers = nf;
    j->capfollowers = cap;
  }
  j->followers[j->nfollowers++] = *p;
  return REEL_OK;
}

/* ---- journal records -------------------------------------------------------------------------- */

/* Appends one record (stolen) to the journal; no-op in memory mode and during replay. */
static reel_status record(reel_broker *b, json_t *rec, reel_error *err) {
  if (!rec) return reel_error_set(err, REEL_ENOMEM, "journal", "out of memory building a record");
  reel_status st = REEL_OK;
  if (b->journal && !b->replaying) {
    size_t len = 0;
    char *s = reel_proto_header_dump(rec, &len);
    if (!s)
      st = reel_error_set(err, REEL_ENOMEM, "journal", "out of memory serialising a record");
    else
      st = reel_journal_append(b->journal, s, len, err);
    free(s);
  }
  json_decref(rec);
  return st;
}

static json_t *rec_new(const char *op, const brk_job *j, int64_t at) {
  return json_pack("{s:s, s:s, s:I}", "op", op, "id", j->id, "at", (json_int_t)at);
}

/* Sets a member, tolerating a NULL value (skipped). Returns nonzero on failure. */
static int set_opt(json_t *o, const char *key, json_t *v) {
  if (!v) return 0;
  return json_object_set(o, key, v);
}

/* A seed as JSON: an integer, or a decimal string above INT64_MAX (docs/protocol.md). */
static json_t *json_u64(uint64_t v) {
  if (v <= (uint64_t)INT64_MAX) return json_integer((json_int_t)v);
  char buf[24];
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
  return json_string(buf);
}

/* Reads a seed written by json_u64; returns 1 when present. */
static int read_u64(const json_t *v, uint64_t *out) {
  if (json_is_integer(v) && json_integer_value(v) >= 0) {
    *out = (uint64_t)json_integer_value(v);
    return 1;
  }
  if (json_is_string(v)) {
    char *end = NULL;
    unsigned long long u = strtoull(json_string_value(v), &end, 10);
    if (end && !*end) {
      *out = u;
      return 1;
    }
  }
  return 0;
}

/* ---- bookkeeping ------------------------------------------------------------------------------ */

static int deadline_tracked(const brk_job *j) {
  return j->state == REEL_JOB_QUEUED && j->deadline_ms > 0 && j->attempts == 0;
}

static void set_state(reel_broker *b, brk_job *j, reel_job_state s) {
  if (deadline_tracked(j)) b->nqueued_deadline--;
  if (j->state == REEL_JOB_RUNNING && !j->worker && j->orphan_until) b->norphans--;
  j->orphan_until = 0;
  j->state = s;
  if (deadline_tracked(j)) b->nqueued_deadline++;
  b->positions_valid = 0;
}

static void fin_append(reel_broker *b, brk_job *j) {
  j->fin_prev = b->fin_tail;
  j->fin_next = NULL;
  if (b->fin_tail)
    b->fin_tail->fin_next = j;
  else
    b->fin_head = j;
  b->fin_tail = j;
  b->nfinished++;
}

static void all_append(reel_broker *b, brk_job *j) {
  j->all_prev = b->all_tail;
  if (b->all_tail)
    b->all_tail->all_next = j;
  else
    b->all_head = j;
  b->all_tail = j;
}

void brk_retention(reel_broker *b) {
  while (b->nfinished > (size_t)b->o.retain_finished && b->fin_head) {
    brk_job *j = b->fin_head;
    b->fin_head = j->fin_next;
    if (b->fin_head)
      b->fin_head->fin_prev = NULL;
    else
      b->fin_tail = NULL;
    b->nfinished--;
    hash_remove(b, j);
    if (j->all_prev)
      j->all_prev->all_next = j->all_next;
    else
      b->all_head = j->all_next;
    if (j->all_next)
      j->all_next->all_prev = j->all_prev;
    else
      b->all_tail = j->all_prev;
    b->njobs--;
    brk_job_free(b, j);
  }
}

/* Appends a history entry for the attempt that just ended. Returns nonzero on ENOMEM. */
static int history_add(brk_job *j, int64_t at, const char *outcome, json_t *error) {
  if (!j->history && !(j->history = json_array())) return 1;
  json_t *h =
      json_pack("{s:i, s:s, s:I, s:I, s:s}", "attempt", j->attempts, "worker", j->worker_name ? j->worker_name : "",
                "started_ms", (json_int_t)j->started_ms, "ended_ms", (json_int_t)at, "outcome", outcome);
  if (!h) return 1;
  if (error) json_object_set(h, "error", error);
  return json_array_append_new(j->history, h);
}

static void clear_running(reel_broker *b, brk_job *j) {
  if (j->worker) brk_worker_detach(j->worker, j);
  j->worker = NULL;
  reel_free(j->worker_name);
  j->worker_name = NULL;
  if (j->progress) json_decref(j->progress);
  j->progress = NULL;
  j->progress_dirty = 0;
  brk_job_drop_preview(j);
  (void)b;
}

/* ---- transitions ------------------------------------------------------------------------------ */

/* Fills the matching fields from the normalised spec. */
static void read_needs(brk_job *j) {
  json_t *s = j->spec;
  j->model = json_string_value(json_object_get(s, "model"));
  j->region = json_string_value(json_object_get(s, "region"));
  j->idem = json_string_value(json_object_get(s, "idempotency_key"));
  j->width = (int)json_integer_value(json_object_get(s, "width"));
  j->height = (int)json_integer_value(json_object_get(s, "height"));
  j->frames = (int)json_integer_value(json_object_get(s, "frames"));
  j->prio = (int)json_integer_value(json_object_get(s, "priority"));
  j->deadline_ms = json_integer_value(json_object_get(s, "deadline_ms"));
  int idx = reel_name_index(reel_backend_names, json_string_value(json_object_get(s, "backend")));
  j->backend = idx < 0 ? REEL_BACKEND_AUTO : idx;
  idx = reel_name_index(reel_class_names, json_string_value(json_object_get(s, "class")));
  j->cls = idx < 0 ? REEL_CLASS_INTERACTIVE : idx;
}

static brk_job *job_alloc(reel_broker *b, const char *id, uint64_t seq, reel_sched_tenant *t, json_t *spec,
                          int64_t accepted_ms) {
  brk_job *j = reel_calloc(1, sizeof *j);
  if (!j) return NULL;
  snprintf(j->id, sizeof j->id, "%s", id);
  j->seq = seq;
  j->tenant = t;
  j->spec = spec;
  j->accepted_ms = accepted_ms;
  j->state = REEL_JOB_QUEUED;
  read_needs(j);
  if (seq >= b->next_seq) b->next_seq = seq + 1;
  return j;
}

/* Links a built job into the table and the queue or lists matching its state. */
static void job_link(reel_broker *b, brk_job *j) {
  reel_job_state s = j->state;
  j->state = REEL_JOB_QUEUED;
  hash_insert(b, j);
  all_append(b, j);
  b->njobs++;
  hash_grow(b);
  if (deadline_tracked(j)) b->nqueued_deadline++;
  if (s == REEL_JOB_QUEUED) {
    reel_sched_push(b->sched, &j->item, j->tenant, j->cls, j->prio, j->seq);
  } else {
    set_state(b, j, s);
    if (reel_job_state_terminal(s)) fin_append(b, j);
  }
  b->positions_valid = 0;
}

reel_status brk_job_submit(reel_broker *b, const char *id, uint64_t seq, reel_sched_tenant *t, json_t *spec,
                           int64_t accepted_ms, brk_job **out, reel_error *err) {
  *out = NULL;
  brk_job *j = job_alloc(b, id, seq, t, spec, accepted_ms);
  if (!j) return reel_error_set(err, REEL_ENOMEM, "job", "out of memory");
  json_t *rec = rec_new("submit", j, accepted_ms);
  if (rec && (json_object_set_new(rec, "seq", json_integer((json_int_t)seq)) ||
              json_object_set_new(rec, "tenant", json_string(t->name)) || json_object_set(rec, "spec", spec))) {
    json_decref(rec);
    rec = NULL;
  }
  reel_status st = record(b, rec, err);
  if (st) {
    j->spec = NULL; /* the caller keeps ownership on failure */
    brk_job_free(b, j);
    return st;
  }
  job_link(b, j);
  b->accepted_total++;
  *out = j;
  return REEL_OK;
}

reel_status brk_job_dispatch(reel_broker *b, brk_job *j, brk_worker *w, const char *worker_name, int attempt,
                             reel_error *err) {
  int64_t at = brk_wall(b);
  char *name = reel_strdup(worker_name);
  if (!name) return reel_error_set(err, REEL_ENOMEM, "job", "out of memory");
  if (w && w->njobs == w->capjobs) {
    int cap = w->capjobs ? w->capjobs * 2 : 4;
    brk_job **nj = reel_realloc(w->jobs, (size_t)cap * sizeof *nj);
    if (!nj) {
      reel_free(name);
      return reel_error_set(err, REEL_ENOMEM, "job", "out of memory");
    }
    w->jobs = nj;
    w->capjobs = cap;
  }
  json_t *rec = rec_new("dispatch", j, at);
  if (rec && (json_object_set_new(rec, "attempt", json_integer(attempt)) ||
              json_object_set_new(rec, "worker", json_string(worker_name)))) {
    json_decref(rec);
    rec = NULL;
  }
  reel_status st = record(b, rec, err);
  if (st) {
    reel_free(name);
    return st;
  }
  reel_sched_remove(b->sched, &j->item);
  if (j->state == REEL_JOB_RUNNING) clear_running(b, j);
  set_state(b, j, REEL_JOB_RUNNING);
  j->attempts = attempt;
  j->charged++;
  j->started_ms = at;
  j->worker_name = name;
  j->worker = w;
  j->cancel_requested = 0;
  if (w) w->jobs[w->njobs++] = j;
  b->dispatched_total++;
  brk_event_state(b, j);
  return REEL_OK;
}

reel_status brk_job_requeue(reel_broker *b, brk_job *j, const char *outcome, json_t *error, reel_error *err) {
  int64_t at = brk_wall(b);
  int charged = j->charged - (strcmp(outcome, "left") == 0 ? 1 : 0);
  if (charged < 0) charged = 0;
  json_t *rec = rec_new("requeue", j, at);
  if (rec && (json_object_set_new(rec, "outcome", json_string(outcome)) ||
              json_object_set_new(rec, "charged", json_integer(charged)) || set_opt(rec, "error", error))) {
    json_decref(rec);
    rec = NULL;
  }
  reel_status st = record(b, rec, err);
  if (st) return st;
  history_add(j, at, outcome, error); /* history is informative: a failed append is not fatal */
  clear_running(b, j);
  j->charged = charged;
  j->cancel_requested = 0;
  set_state(b, j, REEL_JOB_QUEUED);
  reel_sched_push(b->sched, &j->item, j->tenant, j->cls, j->prio, j->seq);
  b->requeued_total++;
  brk_event_state(b, j);
  return REEL_OK;
}

reel_status brk_job_lost(reel_broker *b, brk_job *j, const char *outcome, reel_error *err) {
  if (j->cancel_requested) {
    json_t *e = json_pack("{s:s, s:s, s:s}", "code", "ECANCELED", "field", "", "message",
                          "canceled (the worker was lost before it confirmed)");
    reel_status st = brk_job_finish(b, j, REEL_JOB_CANCELED, outcome, NULL, e, NULL, 0, 0, err);
    if (e) json_decref(e);
    return st;
  }
  int charged = j->charged - (strcmp(outcome, "left") == 0 ? 1 : 0);
  if (charged >= b->o.max_attempts) {
    char msg[160];
    snprintf(msg, sizeof msg, "worker %s lost the job on attempt %d; the limit is %d attempts",
             j->worker_name ? j->worker_name : "?", j->attempts, b->o.max_attempts);
    json_t *e = json_pack("{s:s, s:s, s:s}", "code", "ETIMEDOUT", "field", "max_attempts", "message", msg);
    reel_status st = brk_job_finish(b, j, REEL_JOB_FAILED, outcome, NULL, e, NULL, 0, 0, err);
    if (e) json_decref(e);
    return st;
  }
  return brk_job_requeue(b, j, outcome, NULL, err);
}

reel_status brk_job_cancel(reel_broker *b, brk_job *j, reel_error *err) {
  if (j->state == REEL_JOB_QUEUED) {
    json_t *e = json_pack("{s:s, s:s, s:s}", "code", "ECANCELED", "field", "", "message", "canceled while queued");
    reel_status st = brk_job_finish(b, j, REEL_JOB_CANCELED, NULL, NULL, e, NULL, 0, 0, err);
    if (e) json_decref(e);
    return st;
  }
  if (j->state != REEL_JOB_RUNNING)
    return reel_error_set(err, REEL_ESTATE, "job_id", "job is already %s", reel_job_state_names[j->state]);
  if (j->cancel_requested) return REEL_OK;
  reel_status st = record(b, rec_new("cancel", j, brk_wall(b)), err);
  if (st) return st;
  j->cancel_requested = 1;
  brk_event_state(b, j);
  return REEL_OK;
}

reel_status brk_job_finish(reel_broker *b, brk_job *j, reel_job_state state, const char *outcome, json_t *outputs,
                           json_t *error, json_t *timings, int seed_set, uint64_t seed, reel_error *err) {
  int64_t at = brk_wall(b);
  json_t *rec = rec_new("finish", j, at);
  if (rec && (json_object_set_new(rec, "state", json_string(reel_job_state_names[state])) ||
              (outcome && json_object_set_new(rec, "outcome", json_string(outcome))) ||
              set_opt(rec, "outputs", outputs) || set_opt(rec, "error", error) || set_opt(rec, "timings", timings) ||
              (seed_set && json_object_set_new(rec, "seed", json_u64(seed))))) {
    json_decref(rec);
    rec = NULL;
  }
  reel_status st = record(b, rec, err);
  if (st) return st;
  if (j->state == REEL_JOB_RUNNING) {
    history_add(j, at, outcome ? outcome : reel_job_state_names[state], state == REEL_JOB_SUCCEEDED ? NULL : error);
    clear_running(b, j);
  }
  reel_sched_remove(b->sched, &j->item);
  set_state(b, j, state);
  j->finished_ms = at;
  if (outputs) j->outputs = json_incref(outputs);
  if (error) j->error = json_incref(error);
  if (timings) j->timings = json_incref(timings);
  if (seed_set) {
    j->seed_set = 1;
    j->seed = seed;
  }
  fin_append(b, j);
  b->finished_total++;
  brk_event_state(b, j);
  /* No more events for a terminal job. */
  reel_free(j->followers);
  j->followers = NULL;
  j->nfollowers = j->capfollowers = 0;
  return REEL_OK;
}

/* ---- records as JSON -------------------------------------------------------------------------- */

static void set_position(void *ud, reel_sched_item *it, size_t pos) {
  (void)ud;
  brk_job *j = (brk_job *)((char *)it - offsetof(brk_job, item));
  j->position = pos;
}

void brk_positions(reel_broker *b) {
  if (b->positions_valid) return;
  reel_sched_foreach(b->sched, set_position, NULL);
  b->positions_valid = 1;
}

json_t *brk_job_json(reel_broker *b, brk_job *j, int with_spec) {
  json_t *o =
      json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:I}", "id", j->id, "tenant", j->tenant->name, "state",
                reel_job_state_names[j->state], "class", reel_class_names[j->cls], "priority", j->prio, "attempts",
                j->attempts, "max_attempts", b->o.max_attempts, "accepted_ms", (json_int_t)j->accepted_ms);
  if (!o) return NULL;
  int bad = 0;
  if (j->state == REEL_JOB_QUEUED) {
    brk_positions(b);
    bad |= json_object_set_new(o, "position", json_integer((json_int_t)j->position));
  }
  if (j->state == REEL_JOB_RUNNING) {
    bad |= json_object_set_new(o, "worker", json_string(j->worker_name ? j->worker_name : ""));
    bad |= json_object_set_new(o, "cancel_requested", json_boolean(j->cancel_requested));
    bad |= set_opt(o, "progress", j->progress);
  }
  if (j->started_ms) bad |= json_object_set_new(o, "started_ms", json_integer(j->started_ms));
  if (j->finished_ms) bad |= json_object_set_new(o, "finished_ms", json_integer(j->finished_ms));
  bad |= set_opt(o, "outputs", j->outputs);
  bad |= set_opt(o, "error", j->error);
  bad |= set_opt(o, "timings", j->timings);
  if (j->seed_set) bad |= json_object_set_new(o, "seed", json_u64(j->seed));
  if (j->history && json_array_size(j->history)) bad |= json_object_set(o, "history", j->history);
  if (with_spec) {
    bad |= json_object_set(o, "spec", j->spec);
  } else {
    const char *p = json_string_value(json_object_get(j->spec, "prompt"));
    size_t n = p ? strlen(p) : 0;
    if (n > 120) {
      n = 120;
      while (n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80) n--; /* do not split a UTF-8 sequence */
    }
    bad |= json_object_set_new(o, "prompt", json_stringn(p ? p : "", n));
  }
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* ---- replay and snapshot ---------------------------------------------------------------------- */

static reel_status bad_record(reel_error *err, const char *field, const char *what) {
  return reel_error_set(err, REEL_EFORMAT, field, "%s", what);
}

/* A job from a full snapshot record. */
static reel_status replay_job(reel_broker *b, json_t *r, reel_error *err) {
  json_t *jr = json_object_get(r, "job");
  const char *id = json_string_value(json_object_get(jr, "id"));
  const char *tenant = json_string_value(json_object_get(jr, "tenant"));
  const char *state = json_string_value(json_object_get(jr, "state"));
  json_t *spec = json_object_get(jr, "spec");
  int s = reel_name_index(reel_job_state_names, state);
  if (!id || strlen(id) != REEL_PROTO_JOB_ID_LEN || !tenant || s < 0 || !json_is_object(spec))
    return bad_record(err, "job", "snapshot record lacks id, tenant, state or spec");
  if (brk_job_find(b, id)) return REEL_OK; /* duplicate: keep the first */
  reel_sched_tenant *t = reel_sched_tenant_get(b->sched, tenant, 1);
  if (!t) return reel_error_set(err, REEL_ENOMEM, "job", "out of memory");
  brk_job *j = job_alloc(b, id, (uint64_t)json_integer_value(json_object_get(jr, "seq")), t, json_incref(spec),
                         json_integer_value(json_object_get(jr, "accepted_ms")));
  if (!j) {
    json_decref(spec);
    return reel_error_set(err, REEL_ENOMEM, "job", "out of memory");
  }
  j->state = (reel_job_state)s;
  j->attempts = (int)json_integer_value(json_object_get(jr, "attempts"));
  j->charged = (int)json_integer_value(json_object_get(jr, "charged"));
  j->started_ms = json_integer_value(json_object_get(jr, "started_ms"));
  j->finished_ms = json_integer_value(json_object_get(jr, "finished_ms"));
  j->cancel_requested = json_is_true(json_object_get(jr, "cancel_requested"));
  const char *wn = json_string_value(json_object_get(jr, "worker"));
  if (s == REEL_JOB_RUNNING && wn && !(j->worker_name = reel_strdup(wn))) {
    brk_job_free(b, j);
    return reel_error_set(err, REEL_ENOMEM, "job", "out of memory");
  }
  json_t *v;
  if ((v = json_object_get(jr, "outputs"))) j->outputs = json_incref(v);
  if ((v = json_object_get(jr, "error"))) j->error = json_incref(v);
  if ((v = json_object_get(jr, "timings"))) j->timings = json_incref(v);
  if ((v = json_object_get(jr, "history")) && json_is_array(v)) j->history = json_incref(v);
  if (read_u64(json_object_get(jr, "seed"), &j->seed)) j->seed_set = 1;
  job_link(b, j);
  return REEL_OK;
}

reel_status brk_replay(void *ud, const char *data, size_t len, reel_error *err) {
  reel_broker *b = ud;
  json_t *r = NULL;
  reel_status st = reel_json_parse(data, len, "record", &r, err);
  if (st) return st;
  b->replaying = 1;
  const char *op = json_string_value(json_object_get(r, "op"));
  const char *id = json_string_value(json_object_get(r, "id"));
  brk_job *j = id ? brk_job_find(b, id) : NULL;
  int64_t at = json_integer_value(json_object_get(r, "at"));
  (void)at;
  if (!op) {
    st = bad_record(err, "op", "record without op");
  } else if (strcmp(op, "job") == 0) {
    st = replay_job(b, r, err);
  } else if (strcmp(op, "submit") == 0) {
    const char *tenant = json_string_value(json_object_get(r, "tenant"));
    json_t *spec = json_object_get(r, "spec");
    if (!id || strlen(id) != REEL_PROTO_JOB_ID_LEN || !tenant || !json_is_object(spec)) {
      st = bad_record(err, "submit", "submit record lacks id, tenant or spec");
    } else if (!j) {
      reel_sched_tenant *t = reel_sched_tenant_get(b->sched, tenant, 1);
      brk_job *nj = NULL;
      if (!t)
        st = reel_error_set(err, REEL_ENOMEM, "submit", "out of memory");
      else if ((st = brk_job_submit(b, id, (uint64_t)json_integer_value(json_object_get(r, "seq")), t,
                                    json_incref(spec), json_integer_value(json_object_get(r, "at")), &nj, err)))
        json_decref(spec);
    }
  } else if (!j) {
    /* A record for a job that is not in the table (dropped by retention): nothing to apply. */
  } else if (strcmp(op, "dispatch") == 0) {
    const char *w = json_string_value(json_object_get(r, "worker"));
    st = brk_job_dispatch(b, j, NULL, w ? w : "", (int)json_integer_value(json_object_get(r, "attempt")), err);
    j->started_ms = json_integer_value(json_object_get(r, "at"));
  } else if (strcmp(op, "requeue") == 0) {
    const char *outcome = json_string_value(json_object_get(r, "outcome"));
    st = brk_job_requeue(b, j, outcome ? outcome : "lost", json_object_get(r, "error"), err);
    j->charged = (int)json_integer_value(json_object_get(r, "charged"));
  } else if (strcmp(op, "cancel") == 0) {
    if (j->state == REEL_JOB_RUNNING) j->cancel_requested = 1;
  } else if (strcmp(op, "finish") == 0) {
    int s = reel_name_index(reel_job_state_names, json_string_value(json_object_get(r, "state")));
    uint64_t seed = 0;
    int seed_set = read_u64(json_object_get(r, "seed"), &seed);
    if (s < REEL_JOB_SUCCEEDED) {
      st = bad_record(err, "finish", "finish record with a non-terminal state");
    } else if (!reel_job_state_terminal(j->state)) {
      st = brk_job_finish(b, j, (reel_job_state)s, json_string_value(json_object_get(r, "outcome")),
                          json_object_get(r, "outputs"), json_object_get(r, "error"), json_object_get(r, "timings"),
                          seed_set, seed, err);
      j->finished_ms = json_integer_value(json_object_get(r, "at"));
    }
  } else {
    st = reel_error_set(err, REEL_EFORMAT, "op", "unknown record op \"%s\"", op);
  }
  b->replaying = 0;
  json_decref(r);
  return st;
}

void brk_after_replay(reel_broker *b) {
  int64_t grace = b->o.restart_grace_ms;
  if (grace <= 0) {
    grace = 2 * brk_lease_ms(b);
    if (grace < 3000) grace = 3000;
  }
  int64_t until = brk_mono(b) + grace;
  for (brk_job *j = b->all_head; j; j = j->all_next) {
    if (j->state == REEL_JOB_RUNNING && !j->worker && !j->orphan_until) {
      j->orphan_until = until;
      b->norphans++;
    }
  }
}

reel_status brk_snapshot(void *ud, reel_journal *jn, reel_error *err) {
  reel_broker *b = ud;
  for (brk_job *j = b->all_head; j; j = j->all_next) {
    json_t *o = brk_job_json(b, j, 1);
    if (!o) return reel_error_set(err, REEL_ENOMEM, "snapshot", "out of memory");
    json_object_del(o, "position");
    json_object_del(o, "progress");
    json_object_del(o, "max_attempts");
    int bad = json_object_set_new(o, "seq", json_integer((json_int_t)j->seq));
    bad |= json_object_set_new(o, "charged", json_integer(j->charged));
    json_t *r = json_pack("{s:s, s:o}", "op", "job", "job", o);
    if (bad || !r) {
      if (r)
        json_decref(r);
      else
        json_decref(o);
      return reel_error_set(err, REEL_ENOMEM, "snapshot", "out of memory");
    }
    size_t len = 0;
    char *s = reel_proto_header_dump(r, &len);
    json_decref(r);
    if (!s) return reel_error_set(err, REEL_ENOMEM, "snapshot", "out of memory");
    reel_status st = reel_journal_append(jn, s, len, err);
    free(s);
    if (st) return st;
  }
  return REEL_OK;
}
