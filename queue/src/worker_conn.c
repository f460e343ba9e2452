/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Worker connector: an I/O thread that speaks the worker half of the protocol
 * (READY, heartbeats, JOB, CANCEL, PROGRESS, RESULT/ACK, reconnection), and a
 * thread-safe API for the threads that render. See reel/worker_conn.h.
 *
 * Shared state (the job registry, the queue of jobs for the application, the
 * queue of results for the I/O thread) is guarded by one mutex; the I/O thread
 * sleeps in zmq_poll() on the socket and an eventfd that the API pokes.
 */
#include "reel/worker_conn.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/keys.h"
#include "reel/protocol.h"
#include "wire.h"

#define BACKOFF_MIN_MS       250
#define BACKOFF_MAX_MS       8000
#define PROGRESS_INTERVAL_MS 100

typedef struct wc_node {
  reel_worker_job job;
  char *progress; /* pending PROGRESS header (owned, from json_dumps) */
  void *preview;  /* pending PROGRESS payload (reel_malloc'd) or NULL */
  size_t preview_len;
  int64_t progress_sent;
  struct wc_node *next;  /* registry */
  struct wc_node *rnext; /* ready queue */
  int handed_out;
} wc_node;

typedef struct wc_result {
  char id[32];
  int attempt;
  char *hdr; /* from json_dumps */
  size_t len;
  int sent;
  struct wc_result *next;
} wc_result;

struct reel_worker_conn {
  /* Immutable after new (capacity: guarded by mu, see reel_worker_conn_set_capacity). */
  char *endpoint, *name;
  int capacity;
  int credit_dirty; /* mu: a CREDIT is to be sent */
  json_t *caps;
  int curve;
  unsigned char server_key[32], public_key[32], secret_key[32];
  reel_logger deflog;
  const reel_logger *log;
  int efd;
  pthread_t thread;
  int thread_started;
  /* Guarded by mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  wc_node *jobs;
  wc_node *ready_head, *ready_tail;
  wc_result *new_results; /* finished by the application, not yet taken by the thread */
  int stopping;
  int64_t linger_until;
  reel_worker_conn_stats stats;
  /* I/O thread only. */
  void *ctx, *sock, *mon;
  char mon_endpoint[64];
  wc_result *unacked;
  int welcomed;
  int heartbeat_ms, liveness;
  int64_t last_recv, last_send, backoff;
  int bye_sent;
};

void reel_worker_conn_options_init(reel_worker_conn_options *o) {
  memset(o, 0, sizeof *o);
  o->capacity = 1;
  o->heartbeat_ms = 2500;
  o->liveness = 3;
}

static void poke(reel_worker_conn *w) {
  uint64_t one = 1;
  ssize_t r = write(w->efd, &one, sizeof one);
  (void)r;
}

/* ---- socket (I/O thread) ---------------------------------------------------------------------- */

static void close_socket(reel_worker_conn *w, int linger) {
  if (w->sock) {
    zmq_socket_monitor(w->sock, NULL, 0);
    zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(w->sock);
  }
  if (w->mon) {
    int zero = 0;
    zmq_setsockopt(w->mon, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(w->mon);
  }
  w->sock = w->mon = NULL;
  w->welcomed = 0;
  pthread_mutex_lock(&w->mu);
  w->stats.connected = 0;
  pthread_mutex_unlock(&w->mu);
}

static int send_raw(reel_worker_conn *w, const char *cmd, const char *hdr, size_t len) {
  if (!w->sock) return -1;
  int rc = reel_wire_send_raw(w->sock, NULL, 0, cmd, hdr, len, NULL, 0, ZMQ_DONTWAIT);
  if (rc == 0) w->last_send = reel_now_ms();
  return rc;
}

static int send_json(reel_worker_conn *w, reel_proto_command cmd, json_t *h /* stolen */) {
  if (!h) return -1;
  size_t len = 0;
  char *s = reel_proto_header_dump(h, &len);
  json_decref(h);
  if (!s) return -1;
  int rc = send_raw(w, reel_proto_command_name(cmd), s, len);
  free(s);
  return rc;
}

/* Jobs this worker holds: handed out or waiting, plus results not yet acknowledged. */
static json_t *running_list(reel_worker_conn *w) {
  json_t *a = json_array();
  if (!a) return NULL;
  pthread_mutex_lock(&w->mu);
  for (wc_node *n = w->jobs; n; n = n->next) json_array_append_new(a, json_string(n->job.id));
  for (wc_result *r = w->new_results; r; r = r->next) json_array_append_new(a, json_string(r->id));
  pthread_mutex_unlock(&w->mu);
  for (wc_result *r = w->unacked; r; r = r->next) json_array_append_new(a, json_string(r->id));
  return a;
}

static void send_ready(reel_worker_conn *w) {
  json_t *running = running_list(w);
  pthread_mutex_lock(&w->mu);
  int capacity = w->capacity;
  w->credit_dirty = 0; /* READY carries it */
  pthread_mutex_unlock(&w->mu);
  json_t *h = json_pack("{s:s, s:i, s:o}", "worker", w->name, "capacity", capacity, "running",
                        running ? running : json_array());
  if (h && w->caps) json_object_set(h, "capabilities", w->caps);
  send_json(w, REEL_CMD_READY, h);
}

static void open_socket(reel_worker_conn *w) {
  w->sock = zmq_socket(w->ctx, ZMQ_DEALER);
  if (!w->sock) return;
  int zero = 0, ivl = 100, ivl_max = BACKOFF_MAX_MS;
  zmq_setsockopt(w->sock, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(w->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
  zmq_setsockopt(w->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
  if (w->curve) {
    zmq_setsockopt(w->sock, ZMQ_CURVE_SERVERKEY, w->server_key, 32);
    zmq_setsockopt(w->sock, ZMQ_CURVE_PUBLICKEY, w->public_key, 32);
    zmq_setsockopt(w->sock, ZMQ_CURVE_SECRETKEY, w->secret_key, 32);
  }
  snprintf(w->mon_endpoint, sizeof w->mon_endpoint, "inproc://reel-worker-mon-%p-%d", (void *)w, w->stats.reconnects);
  if (zmq_socket_monitor(w->sock, w->mon_endpoint,
                         ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) == 0) {
    w->mon = zmq_socket(w->ctx, ZMQ_PAIR);
    if (w->mon && zmq_connect(w->mon, w->mon_endpoint) != 0) {
      zmq_close(w->mon);
      w->mon = NULL;
    }
  }
  if (zmq_connect(w->sock, w->endpoint) != 0) {
    reel_log(w->log, REEL_LOG_ERROR, "worker", NULL, "cannot connect", "endpoint=%s reason=\"%s\"", w->endpoint,
             zmq_strerror(errno));
    close_socket(w, 0);
    return;
  }
  w->last_recv = reel_now_ms();
  send_ready(w);
}

static void read_monitor(reel_worker_conn *w) {
  for (;;) {
    reel_wire_msg m;
    if (!w->mon || reel_wire_recv(w->mon, &m, ZMQ_DONTWAIT) != 0) return;
    if (m.n >= 1 && zmq_msg_size(&m.parts[0]) >= 2) {
      const unsigned char *d = zmq_msg_data(&m.parts[0]);
      uint16_t ev = (uint16_t)(d[0] | d[1] << 8);
      reel_log(w->log, REEL_LOG_ERROR, "worker", NULL,
               ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "the broker refused this worker's key"
                                                     : "handshake with the broker failed (auth settings?)",
               "endpoint=%s", w->endpoint);
    }
    reel_wire_close(&m);
  }
}

/* ---- results ---------------------------------------------------------------------------------- */

static void free_result(wc_result *r) {
  if (!r) return;
  free(r->hdr);
  reel_free(r);
}

static void send_results(reel_worker_conn *w) {
  if (!w->welcomed) return;
  for (wc_result *r = w->unacked; r; r = r->next)
    if (!r->sent && send_raw(w, "RESULT", r->hdr, r->len) == 0) r->sent = 1;
}

static void take_new_results(reel_worker_conn *w) {
  pthread_mutex_lock(&w->mu);
  wc_result *list = w->new_results;
  w->new_results = NULL;
  pthread_mutex_unlock(&w->mu);
  /* Keep order: append to the end of unacked. */
  wc_result **tail = &w->unacked;
  while (*tail) tail = &(*tail)->next;
  /* new_results is LIFO: reverse it. */
  wc_result *rev = NULL;
  while (list) {
    wc_result *n = list->next;
    list->next = rev;
    rev = list;
    list = n;
  }
  *tail = rev;
}

static void on_ack(reel_worker_conn *w, const json_t *h) {
  const char *id = json_string_value(json_object_get(h, "job_id"));
  if (!id) return;
  for (wc_result **pp = &w->unacked; *pp; pp = &(*pp)->next) {
    if (strcmp((*pp)->id, id) == 0) {
      wc_result *r = *pp;
      *pp = r->next;
      free_result(r);
      pthread_mutex_lock(&w->mu);
      w->stats.results_acked++;
      pthread_mutex_unlock(&w->mu);
      return;
    }
  }
}

/* Queues a RESULT built by the thread itself (a job whose spec did not parse). */
static void push_result(reel_worker_conn *w, const char *id, int attempt, json_t *h /* stolen */) {
  wc_result *r = reel_calloc(1, sizeof *r);
  if (!r || !h || !(r->hdr = reel_proto_header_dump(h, &r->len))) {
    reel_free(r);
    if (h) json_decref(h);
    return;
  }
  json_decref(h);
  snprintf(r->id, sizeof r->id, "%s", id);
  r->attempt = attempt;
  wc_result **tail = &w->unacked;
  while (*tail) tail = &(*tail)->next;
  *tail = r;
}

/* ---- incoming (I/O thread) -------------------------------------------------------------------- */

static void on_job(reel_worker_conn *w, const json_t *h) {
  const char *id = json_string_value(json_object_get(h, "job_id"));
  const char *tenant = json_string_value(json_object_get(h, "tenant"));
  json_t *spec = json_object_get(h, "job");
  int attempt = (int)json_integer_value(json_object_get(h, "attempt"));
  if (!id || strlen(id) >= sizeof((reel_worker_job *)0)->id || !json_is_object(spec)) {
    reel_log(w->log, REEL_LOG_WARN, "worker", NULL, "malformed JOB from the broker", NULL);
    return;
  }
  /* Already have it (a duplicate after a reconnect)? */
  pthread_mutex_lock(&w->mu);
  for (wc_node *n = w->jobs; n; n = n->next) {
    if (strcmp(n->job.id, id) == 0) {
      pthread_mutex_unlock(&w->mu);
      return;
    }
  }
  pthread_mutex_unlock(&w->mu);
  /* The broker validated the spec against its limits; parse it without narrower ones. */
  reel_job_limits lim = {INT_MAX, INT_MAX, INT_MAX, INT_MAX, INT_MAX, 1e9, INT64_MAX};
  wc_node *n = reel_calloc(1, sizeof *n);
  reel_error err;
  reel_error_clear(&err);
  if (!n) {
    reel_error_set(&err, REEL_ENOMEM, "job", "worker out of memory");
  } else {
    reel_jobspec_init(&n->job.spec);
    reel_jobspec_from_json(spec, "job", &lim, &n->job.spec, &err);
  }
  if (err.code) {
    reel_log_error(w->log, REEL_LOG_WARN, "worker", id, &err);
    push_result(w, id, attempt,
                json_pack("{s:s, s:i, s:s, s:{s:s, s:s, s:s}}", "job_id", id, "attempt", attempt, "state", "failed",
                          "error", "code", reel_status_name(err.code), "field", err.field, "message", err.msg));
    if (n) reel_jobspec_fini(&n->job.spec);
    reel_free(n);
    send_results(w);
    return;
  }
  snprintf(n->job.id, sizeof n->job.id, "%s", id);
  snprintf(n->job.tenant, sizeof n->job.tenant, "%s", tenant ? tenant : "");
  n->job.attempt = attempt;
  n->job.spec_json = json_incref(spec);
  n->job.received_ms = reel_now_ms();
  pthread_mutex_lock(&w->mu);
  n->next = w->jobs;
  w->jobs = n;
  if (w->ready_tail)
    w->ready_tail->rnext = n;
  else
    w->ready_head = n;
  w->ready_tail = n;
  w->stats.jobs_received++;
  w->stats.running++;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void on_cancel(reel_worker_conn *w, const json_t *h) {
  const char *id = json_string_value(json_object_get(h, "job_id"));
  if (!id) return;
  pthread_mutex_lock(&w->mu);
  for (wc_node *n = w->jobs; n; n = n->next)
    if (strcmp(n->job.id, id) == 0) __atomic_store_n(&n->job.canceled, 1, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&w->mu);
}

static void handle_incoming(reel_worker_conn *w, reel_wire_msg *m) {
  reel_msg msg;
  reel_msg_init(&msg);
  reel_error err;
  reel_error_clear(&err);
  reel_proto_limits lim = {16u << 20, 16u << 20};
  if (reel_wire_decode(m, 0, &lim, &msg, &err) != REEL_OK) {
    reel_log(w->log, REEL_LOG_WARN, "worker", NULL, "malformed message from the broker", "field=%s", err.field);
    reel_msg_fini(&msg);
    return;
  }
  w->last_recv = reel_now_ms();
  const json_t *h = msg.header;
  switch (msg.cmd) {
    case REEL_CMD_WELCOME: {
      json_t *hb = json_object_get(h, "heartbeat_ms"), *lv = json_object_get(h, "liveness");
      if (json_is_integer(hb) && json_integer_value(hb) >= 10 && json_integer_value(hb) <= 600000)
        w->heartbeat_ms = (int)json_integer_value(hb);
      if (json_is_integer(lv) && json_integer_value(lv) >= 1 && json_integer_value(lv) <= 100)
        w->liveness = (int)json_integer_value(lv);
      w->welcomed = 1;
      w->backoff = BACKOFF_MIN_MS;
      const char *bid = json_string_value(json_object_get(h, "broker"));
      pthread_mutex_lock(&w->mu);
      w->stats.connected = 1;
      snprintf(w->stats.broker_id, sizeof w->stats.broker_id, "%s", bid ? bid : "");
      pthread_mutex_unlock(&w->mu);
      for (wc_result *r = w->unacked; r; r = r->next) r->sent = 0;
      send_results(w);
      reel_log(w->log, REEL_LOG_INFO, "worker", NULL, "connected", "broker=%s heartbeat_ms=%d", bid ? bid : "",
               w->heartbeat_ms);
      break;
    }
    case REEL_CMD_JOB:
      on_job(w, h);
      break;
    case REEL_CMD_CANCEL:
      on_cancel(w, h);
      break;
    case REEL_CMD_ACK:
      on_ack(w, h);
      break;
    case REEL_CMD_DISCONNECT:
      w->welcomed = 0;
      reel_log(w->log, REEL_LOG_INFO, "worker", NULL, "broker asked to announce again", NULL);
      send_ready(w);
      break;
    case REEL_CMD_ERROR:
      reel_proto_error_from_header(h, &err);
      reel_log_error(w->log, REEL_LOG_WARN, "worker", NULL, &err);
      break;
    default:
      break;
  }
  reel_msg_fini(&msg);
}

/* ---- the I/O thread --------------------------------------------------------------------------- */

static void flush_progress(reel_worker_conn *w, int64_t now) {
  if (!w->welcomed) return;
  char *due[128];
  void *pay[128];
  size_t plen[128];
  int k = 0;
  pthread_mutex_lock(&w->mu);
  for (wc_node *n = w->jobs; n && k < 128; n = n->next) {
    if (n->progress && now - n->progress_sent >= PROGRESS_INTERVAL_MS) {
      due[k] = n->progress;
      pay[k] = n->preview;
      plen[k++] = n->preview_len;
      n->progress = NULL;
      n->preview = NULL;
      n->preview_len = 0;
      n->progress_sent = now;
    }
  }
  pthread_mutex_unlock(&w->mu);
  for (int i = 0; i < k; i++) {
    if (w->sock && reel_wire_send_raw(w->sock, NULL, 0, "PROGRESS", due[i], strlen(due[i]), pay[i], plen[i],
                                      ZMQ_DONTWAIT) == 0)
      w->last_send = reel_now_ms();
    free(due[i]);
    reel_free(pay[i]);
  }
}

static void count_unacked(reel_worker_conn *w) {
  int n = 0;
  for (wc_result *r = w->unacked; r; r = r->next) n++;
  pthread_mutex_lock(&w->mu);
  w->stats.unacked = n;
  pthread_mutex_unlock(&w->mu);
}

static void *io_main(void *arg) {
  reel_worker_conn *w = arg;
  w->backoff = BACKOFF_MIN_MS;
  open_socket(w);
  int64_t reconnect_at = 0;
  for (;;) {
    int64_t now = reel_now_ms();
    pthread_mutex_lock(&w->mu);
    int stopping = w->stopping;
    int64_t linger_until = w->linger_until;
    pthread_mutex_unlock(&w->mu);
    take_new_results(w);
    send_results(w);
    if (stopping && (!w->unacked || now >= linger_until || !w->sock)) {
      if (w->welcomed) send_json(w, REEL_CMD_BYE, json_object());
      break;
    }
    if (!w->sock) {
      if (now >= reconnect_at) {
        pthread_mutex_lock(&w->mu);
        w->stats.reconnects++;
        pthread_mutex_unlock(&w->mu);
        open_socket(w);
      }
    } else if (now - w->last_recv > (int64_t)w->heartbeat_ms * w->liveness) {
      reel_log(w->log, REEL_LOG_WARN, "worker", NULL, "broker silent: reconnecting", "backoff_ms=%lld",
               (long long)w->backoff);
      close_socket(w, 0);
      reconnect_at = now + w->backoff;
      w->backoff = w->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff * 2;
      continue;
    } else if (w->welcomed && now - w->last_send >= w->heartbeat_ms) {
      /* Before WELCOME there is nothing to say: READY is not repeated on the same connection (a second
         READY would race the JOBs already on their way); a broker that never answers is left by the
         silence rule above, and the new connection announces again. */
      json_t *running = running_list(w);
      send_json(w, REEL_CMD_HEARTBEAT, json_pack("{s:o}", "running", running ? running : json_array()));
    }
    flush_progress(w, now);
    if (w->welcomed) {
      pthread_mutex_lock(&w->mu);
      int dirty = w->credit_dirty, capacity = w->capacity;
      w->credit_dirty = 0;
      pthread_mutex_unlock(&w->mu);
      if (dirty) send_json(w, REEL_CMD_CREDIT, json_pack("{s:i}", "capacity", capacity));
    }
    count_unacked(w);
    int64_t t = PROGRESS_INTERVAL_MS;
    if (w->sock && w->last_send + w->heartbeat_ms - now < t) t = w->last_send + w->heartbeat_ms - now;
    if (!w->sock && reconnect_at - now < t) t = reconnect_at - now;
    if (t < 1) t = 1;
    zmq_pollitem_t items[3] = {{NULL, w->efd, ZMQ_POLLIN, 0}, {w->sock, 0, ZMQ_POLLIN, 0}, {w->mon, 0, ZMQ_POLLIN, 0}};
    int nitems = w->sock ? (w->mon ? 3 : 2) : 1;
    if (zmq_poll(items, nitems, (long)t) < 0 && errno != EINTR) break;
    if (items[0].revents & ZMQ_POLLIN) {
      uint64_t v;
      ssize_t r = read(w->efd, &v, sizeof v);
      (void)r;
    }
    if (nitems == 3 && (items[2].revents & ZMQ_POLLIN)) read_monitor(w);
    if (nitems >= 2 && (items[1].revents & ZMQ_POLLIN)) {
      for (int i = 0; i < 1000 && w->sock; i++) {
        reel_wire_msg m;
        if (reel_wire_recv(w->sock, &m, ZMQ_DONTWAIT) != 0) break;
        handle_incoming(w, &m);
        reel_wire_close(&m);
      }
    }
  }
  close_socket(w, 1000);
  return NULL;
}

/* ---- API -------------------------------------------------------------------------------------- */

static void free_node(wc_node *n) {
  if (!n) return;
  if (n->job.spec_json) json_decref(n->job.spec_json);
  reel_jobspec_fini(&n->job.spec);
  free(n->progress);
  reel_free(n->preview);
  reel_free(n);
}

reel_status reel_worker_conn_new(const reel_worker_conn_options *o, reel_worker_conn **out, reel_error *err) {
  *out = NULL;
  if (!o->endpoint || !o->endpoint[0])
    return reel_error_set(err, REEL_EINVAL, "broker", "no broker endpoint (give --broker or set REEL_BROKER)");
  if (!reel_proto_is_token(o->name, REEL_PROTO_NAME_MAX))
    return reel_error_set(err, REEL_EINVAL, "name", "must be 1..%d printable ASCII characters without spaces",
                          REEL_PROTO_NAME_MAX);
  if (o->capacity < 1 || o->capacity > 64)
    return reel_error_set(err, REEL_ERANGE, "capacity", "must be in 1..64, got %d", o->capacity);
  if (o->capabilities && !json_is_object(o->capabilities))
    return reel_error_set(err, REEL_EINVAL, "capabilities", "must be a JSON object");
  reel_status st = REEL_OK;
  reel_worker_conn *w = reel_calloc(1, sizeof *w);
  if (!w) return reel_error_set(err, REEL_ENOMEM, "worker", "out of memory");
  w->efd = -1;
  pthread_mutex_init(&w->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  reel_logger_init(&w->deflog, REEL_LOG_WARN, REEL_LOG_TEXT, 2);
  w->log = o->log ? o->log : &w->deflog;
  w->capacity = o->capacity;
  w->heartbeat_ms = o->heartbeat_ms >= 10 ? o->heartbeat_ms : 2500;
  w->liveness = o->liveness >= 1 ? o->liveness : 3;
  w->endpoint = reel_strdup(o->endpoint);
  w->name = reel_strdup(o->name);
  if (o->capabilities) w->caps = json_deep_copy(o->capabilities);
  if (!w->endpoint || !w->name || (o->capabilities && !w->caps)) {
    st = reel_error_set(err, REEL_ENOMEM, "worker", "out of memory");
    goto fail;
  }
  if (o->broker_public_key) {
    if (reel_keys_decode(o->broker_public_key, w->server_key) != REEL_OK) {
      st = reel_error_set(err, REEL_EINVAL, "broker_key", "not a 40-character Z85 public key");
      goto fail;
    }
    if (!o->public_key || !o->secret_key || reel_keys_decode(o->public_key, w->public_key) != REEL_OK ||
        reel_keys_decode(o->secret_key, w->secret_key) != REEL_OK) {
      st = reel_error_set(err, REEL_EINVAL, "key", "CURVE needs this worker's key pair (a .key file from reel keygen)");
      goto fail;
    }
    w->curve = 1;
  }
  w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  w->ctx = zmq_ctx_new();
  if (w->efd < 0 || !w->ctx) {
    st = reel_error_set(err, REEL_ENETWORK, "worker", "cannot create the I/O context: %s", strerror(errno));
    goto fail;
  }
  if (pthread_create(&w->thread, NULL, io_main, w) != 0) {
    st = reel_error_set(err, REEL_EINTERNAL, "worker", "cannot start the I/O thread");
    goto fail;
  }
  w->thread_started = 1;
  *out = w;
  return REEL_OK;
fail:
  reel_worker_conn_destroy(&w, 0);
  return st;
}

void reel_worker_conn_destroy(reel_worker_conn **wp, int64_t linger_ms) {
  if (!wp || !*wp) return;
  reel_worker_conn *w = *wp;
  if (w->thread_started) {
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    w->linger_until = reel_now_ms() + (linger_ms > 0 ? linger_ms : 0);
    pthread_mutex_unlock(&w->mu);
    poke(w);
    pthread_join(w->thread, NULL);
  }
  if (w->ctx) zmq_ctx_term(w->ctx);
  if (w->efd >= 0) close(w->efd);
  for (wc_node *n = w->jobs, *x; n; n = x) {
    x = n->next;
    free_node(n);
  }
  for (wc_result *r = w->unacked, *x; r; r = x) {
    x = r->next;
    free_result(r);
  }
  for (wc_result *r = w->new_results, *x; r; r = x) {
    x = r->next;
    free_result(r);
  }
  if (w->caps) json_decref(w->caps);
  reel_free(w->endpoint);
  reel_free(w->name);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  reel_free(w);
  *wp = NULL;
}

reel_status reel_worker_conn_next(reel_worker_conn *w, int64_t timeout_ms, reel_worker_job **job, reel_error *err) {
  *job = NULL;
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  if (timeout_ms >= 0) {
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
  }
  pthread_mutex_lock(&w->mu);
  while (!w->ready_head && !w->stopping) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&w->cv, &w->mu);
    } else if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT) {
      break;
    }
  }
  wc_node *n = w->ready_head;
  if (n) {
    w->ready_head = n->rnext;
    if (!w->ready_head) w->ready_tail = NULL;
    n->rnext = NULL;
    n->handed_out = 1;
  }
  pthread_mutex_unlock(&w->mu);
  if (!n) return reel_error_set(err, REEL_ETIMEDOUT, "job", "no job within %lld ms", (long long)timeout_ms);
  *job = &n->job;
  return REEL_OK;
}

static wc_node *node_of(reel_worker_job *job) { return (wc_node *)((char *)job - offsetof(wc_node, job)); }

reel_status reel_worker_conn_progress(reel_worker_conn *w, reel_worker_job *job, const char *stage, int step, int steps,
                                      double fraction, int64_t eta_ms) {
  return reel_worker_conn_progress_payload(w, job, stage, step, steps, fraction, eta_ms, NULL, 0);
}

reel_status reel_worker_conn_progress_payload(reel_worker_conn *w, reel_worker_job *job, const char *stage, int step,
                                              int steps, double fraction, int64_t eta_ms, const void *payload,
                                              size_t len) {
  if (__atomic_load_n(&job->canceled, __ATOMIC_ACQUIRE)) return REEL_ECANCELED;
  if (fraction < 0 || fraction != fraction) fraction = 0;
  if (fraction > 1) fraction = 1;
  json_t *h =
      json_pack("{s:s, s:i, s:s, s:i, s:i, s:f}", "job_id", job->id, "attempt", job->attempt, "stage",
                stage ? stage : "", "step", step < 0 ? 0 : step, "steps", steps < 0 ? 0 : steps, "fraction", fraction);
  if (!h) return REEL_ENOMEM;
  if (eta_ms >= 0) json_object_set_new(h, "eta_ms", json_integer(eta_ms));
  char *s = reel_proto_header_dump(h, NULL);
  json_decref(h);
  if (!s) return REEL_ENOMEM;
  void *copy = NULL;
  if (payload && len) {
    copy = reel_malloc(len);
    if (!copy) {
      free(s);
      return REEL_ENOMEM;
    }
    memcpy(copy, payload, len);
  }
  wc_node *n = node_of(job);
  pthread_mutex_lock(&w->mu);
  free(n->progress);
  n->progress = s;
  if (copy) {
    reel_free(n->preview);
    n->preview = copy;
    n->preview_len = len;
  }
  int due = reel_now_ms() - n->progress_sent >= PROGRESS_INTERVAL_MS;
  pthread_mutex_unlock(&w->mu);
  if (due) poke(w);
  return REEL_OK;
}

reel_status reel_worker_conn_finish(reel_worker_conn *w, reel_worker_job **jobp, int state, const json_t *outputs,
                                    const reel_error *failure, int retry, const json_t *timings, int seed_set,
                                    uint64_t seed) {
  if (!jobp || !*jobp) return REEL_EINVAL;
  reel_worker_job *job = *jobp;
  wc_node *n = node_of(job);
  const char *sname = state == REEL_JOB_SUCCEEDED ? "succeeded" : state == REEL_JOB_CANCELED ? "canceled" : "failed";
  json_t *h = json_pack("{s:s, s:i, s:s}", "job_id", job->id, "attempt", job->attempt, "state", sname);
  wc_result *r = reel_calloc(1, sizeof *r);
  reel_status st = REEL_OK;
  if (!h || !r) {
    st = REEL_ENOMEM;
  } else {
    if (outputs && state == REEL_JOB_SUCCEEDED) json_object_set(h, "outputs", (json_t *)outputs);
    if (timings) json_object_set(h, "timings", (json_t *)timings);
    if (seed_set) {
      /* JSON integers are signed 64-bit here: larger seeds travel as decimal strings (docs/protocol.md). */
      char buf[24];
      snprintf(buf, sizeof buf, "%llu", (unsigned long long)seed);
      json_object_set_new(h, "seed", seed <= (uint64_t)INT64_MAX ? json_integer((json_int_t)seed) : json_string(buf));
    }
    if (state != REEL_JOB_SUCCEEDED) {
      reel_status code = failure && failure->code     ? failure->code
                         : state == REEL_JOB_CANCELED ? REEL_ECANCELED
                                                      : REEL_EINTERNAL;
      json_object_set_new(
          h, "error",
          json_pack("{s:s, s:s, s:s}", "code", reel_status_name(code), "field", failure ? failure->field : "",
                    "message", failure && failure->msg[0] ? failure->msg : reel_strerror(code)));
      if (retry && state == REEL_JOB_FAILED) json_object_set_new(h, "retry", json_true());
    }
    r->hdr = reel_proto_header_dump(h, &r->len);
    if (!r->hdr) st = REEL_ENOMEM;
  }
  if (h) json_decref(h);
  if (st) {
    reel_free(r);
    return st; /* the job stays with the caller, who may retry */
  }
  snprintf(r->id, sizeof r->id, "%s", job->id);
  r->attempt = job->attempt;
  pthread_mutex_lock(&w->mu);
  for (wc_node **pp = &w->jobs; *pp; pp = &(*pp)->next) {
    if (*pp == n) {
      *pp = n->next;
      break;
    }
  }
  r->next = w->new_results;
  w->new_results = r;
  w->stats.running--;
  pthread_mutex_unlock(&w->mu);
  poke(w);
  free_node(n);
  *jobp = NULL;
  return REEL_OK;
}

reel_status reel_worker_conn_set_capacity(reel_worker_conn *w, int capacity) {
  if (!w || capacity < 1 || capacity > 64) return REEL_ERANGE;
  pthread_mutex_lock(&w->mu);
  int changed = w->capacity != capacity;
  w->capacity = capacity;
  if (changed) w->credit_dirty = 1;
  pthread_mutex_unlock(&w->mu);
  if (changed) poke(w);
  return REEL_OK;
}

void reel_worker_conn_get_stats(reel_worker_conn *w, reel_worker_conn_stats *st) {
  pthread_mutex_lock(&w->mu);
  *st = w->stats;
  for (wc_result *r = w->new_results; r; r = r->next) st->unacked++;
  pthread_mutex_unlock(&w->mu);
}
