/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker in-process, driven through raw DEALER sockets on inproc-free TCP
 * loopback and an injectable clock: submit/status/list, malformed input, lease
 * expiry and the attempt limit, start deadlines, cancel, idempotency, fair-share
 * dispatch order, journal replay across a restart.
 */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "reel/alloc.h"
#include "reel/broker.h"
#include "reel/clock.h"
#include "reel/protocol.h"
#include "testutil.h"

typedef struct {
  int64_t mono, wall;
} fake_clock;

static int64_t fake_mono(void *ud) { return ((fake_clock *)ud)->mono; }
static int64_t fake_wall(void *ud) { return ((fake_clock *)ud)->wall; }

typedef struct {
  char dir[256];
  fake_clock clk;
  reel_broker *b;
  void *ctx;
  void *socks[64];
  int nsocks;
  reel_logger quiet; /* allocation-failure warnings are expected here */
  reel_broker_options o;
} fixture;

static void start_broker(fixture *f) {
  reel_error err;
  reel_error_clear(&err);
  f->o.mono_ms = fake_mono;
  f->o.wall_ms = fake_wall;
  f->o.clock_ud = &f->clk;
  reel_status st = reel_broker_new(&f->o, &f->b, &err);
  if (st) fail_msg("broker: %s: %s", err.field, err.msg);
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  tu_mkdtemp(f->dir, sizeof f->dir);
  f->clk.mono = 1000000;
  f->clk.wall = 1764417600000;
  reel_broker_options_init(&f->o);
  f->o.listen = "tcp://127.0.0.1:*";
  f->o.journal_dir = f->dir;
  f->o.heartbeat_ms = 100;
  f->o.liveness = 3;
  f->o.restart_grace_ms = 300;
  reel_logger_init(&f->quiet, REEL_LOG_ERROR, REEL_LOG_TEXT, 2);
  f->o.log = &f->quiet;
  start_broker(f);
  f->ctx = zmq_ctx_new();
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  reel_broker_destroy(&f->b);
  for (int i = 0; i < f->nsocks; i++) zmq_close(f->socks[i]);
  zmq_ctx_term(f->ctx);
  tu_rmtree(f->dir);
  free(f);
  return 0;
}

static void *dealer(fixture *f) {
  void *s = zmq_socket(f->ctx, ZMQ_DEALER);
  int zero = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  assert_int_equal(zmq_connect(s, reel_broker_endpoint(f->b)), 0);
  if (f->nsocks < 64) f->socks[f->nsocks++] = s;
  return s;
}

static void close_sock(fixture *f, void *s) {
  for (int i = 0; i < f->nsocks; i++) {
    if (f->socks[i] == s) {
      f->socks[i] = f->socks[--f->nsocks];
      break;
    }
  }
  zmq_close(s);
}

static void send_frames(void *s, const char *const *frames, int n) {
  for (int i = 0; i < n; i++) assert_true(zmq_send(s, frames[i], strlen(frames[i]), i + 1 < n ? ZMQ_SNDMORE : 0) >= 0);
}

static void tsend(void *s, const char *cmd, const char *json) {
  const char *fr[3] = {"reel/1", cmd, json};
  send_frames(s, fr, 3);
}

/* Serves the broker until a message arrives on s; returns its header, the command in cmd. */
static json_t *trecv(fixture *f, void *s, char *cmd) {
  for (int i = 0; i < 400; i++) {
    reel_error err;
    reel_error_clear(&err);
    assert_int_equal(reel_broker_poll(f->b, 5, &err), REEL_OK);
    zmq_msg_t parts[4];
    int n = 0, more = 1;
    while (more && n < 4) {
      zmq_msg_init(&parts[n]);
      if (zmq_msg_recv(&parts[n], s, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
        zmq_msg_close(&parts[n]);
        break;
      }
      more = zmq_msg_more(&parts[n]);
      n++;
    }
    if (n == 0) continue;
    assert_int_equal(n, 3);
    assert_int_equal(zmq_msg_size(&parts[0]), 6);
    assert_memory_equal(zmq_msg_data(&parts[0]), "reel/1", 6);
    size_t cl = zmq_msg_size(&parts[1]);
    memcpy(cmd, zmq_msg_data(&parts[1]), cl);
    cmd[cl] = 0;
    json_error_t je;
    json_t *h = json_loadb(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), 0, &je);
    for (int k = 0; k < n; k++) zmq_msg_close(&parts[k]);
    assert_non_null(h);
    return h;
  }
  fail_msg("no message from the broker");
  return NULL;
}

/* Receives until a message with command `want` arrives (skipping others, e.g. events). */
static json_t *expect_cmd(fixture *f, void *s, const char *want) {
  char cmd[32];
  for (int i = 0; i < 10000; i++) {
    json_t *h = trecv(f, s, cmd);
    if (strcmp(cmd, want) == 0) return h;
    json_decref(h);
  }
  fail_msg("no %s", want);
  return NULL;
}

static void expect_error(fixture *f, void *s, const char *code, const char *field) {
  json_t *h = expect_cmd(f, s, "ERROR");
  assert_string_equal(json_string_value(json_object_get(h, "code")), code);
  assert_string_equal(json_string_value(json_object_get(h, "field")), field);
  json_decref(h);
}

static char *submit(fixture *f, void *s, const char *job_json) {
  char buf[2048];
  snprintf(buf, sizeof buf, "{\"req\":1,\"job\":%s}", job_json);
  tsend(s, "SUBMIT", buf);
  json_t *h = expect_cmd(f, s, "ACCEPTED");
  char *id = strdup(json_string_value(json_object_get(h, "job_id")));
  json_decref(h);
  return id;
}

/* Runs a few broker iterations so that timers see the current (fake) time. */
static void settle(fixture *f) {
  for (int i = 0; i < 3; i++) {
    reel_error err;
    reel_error_clear(&err);
    assert_int_equal(reel_broker_poll(f->b, 1, &err), REEL_OK);
  }
}

static const char *job_state(fixture *f, void *s, const char *id, json_t **rec) {
  settle(f);
  char buf[256];
  snprintf(buf, sizeof buf, "{\"req\":2,\"job_id\":\"%s\"}", id);
  tsend(s, "STATUS", buf);
  json_t *h = expect_cmd(f, s, "JOB");
  static char state[32];
  snprintf(state, sizeof state, "%s", json_string_value(json_object_get(json_object_get(h, "job"), "state")));
  if (rec) *rec = json_incref(json_object_get(h, "job"));
  json_decref(h);
  return state;
}

static void *worker(fixture *f, const char *name, int capacity, const char *caps) {
  void *w = dealer(f);
  char buf[1024];
  snprintf(buf, sizeof buf, "{\"worker\":\"%s\",\"capacity\":%d,\"capabilities\":%s}", name, capacity,
           caps ? caps : "{}");
  tsend(w, "READY", buf);
  json_t *h = expect_cmd(f, w, "WELCOME");
  assert_int_equal(json_integer_value(json_object_get(h, "heartbeat_ms")), 100);
  json_decref(h);
  return w;
}

static void test_submit_status_list(void **state) {
  fixture *f = *state;
  void *c = dealer(f);
  tsend(c, "PING", "{\"req\":\"p\"}");
  json_t *h = expect_cmd(f, c, "PONG");
  assert_string_equal(json_string_value(json_object_get(h, "req")), "p");
  assert_string_equal(json_string_value(json_object_get(h, "broker")), reel_broker_id(f->b));
  json_decref(h);
  tsend(c, "SUBMIT", "{\"req\":9,\"job\":{\"prompt\":\"a red circle\",\"frames\":8}}");
  h = expect_cmd(f, c, "ACCEPTED");
  assert_int_equal(json_integer_value(json_object_get(h, "req")), 9);
  assert_string_equal(json_string_value(json_object_get(h, "state")), "queued");
  assert_int_equal(json_integer_value(json_object_get(h, "position")), 1);
  assert_false(json_is_true(json_object_get(h, "duplicate")));
  const char *id = json_string_value(json_object_get(h, "job_id"));
  assert_int_equal(strlen(id), REEL_PROTO_JOB_ID_LEN);
  char *id2 = submit(f, c, "{\"prompt\":\"second\"}");
  json_t *rec = NULL;
  assert_string_equal(job_state(f, c, id, &rec), "queued");
  assert_string_equal(json_string_value(json_object_get(json_object_get(rec, "spec"), "prompt")), "a red circle");
  assert_int_equal(json_integer_value(json_object_get(rec, "position")), 1);
  json_decref(rec);
  assert_string_equal(job_state(f, c, id2, &rec), "queued");
  assert_int_equal(json_integer_value(json_object_get(rec, "position")), 2);
  json_decref(rec);
  tsend(c, "LIST", "{\"req\":3,\"limit\":1}");
  json_t *l = expect_cmd(f, c, "JOBS");
  assert_int_equal(json_array_size(json_object_get(l, "jobs")), 1);
  assert_true(json_is_true(json_object_get(l, "more")));
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(l, "jobs"), 0), "id")), id);
  json_decref(l);
  /* Another tenant sees nothing. */
  tsend(c, "LIST", "{\"req\":4,\"tenant\":\"other\"}");
  l = expect_cmd(f, c, "JOBS");
  assert_int_equal(json_array_size(json_object_get(l, "jobs")), 0);
  json_decref(l);
  char buf[128];
  snprintf(buf, sizeof buf, "{\"req\":5,\"job_id\":\"%s\",\"tenant\":\"other\"}", id);
  tsend(c, "STATUS", buf);
  expect_error(f, c, "ENOTFOUND", "job_id");
  json_decref(h);
  free(id2);
  close_sock(f, c);
}

static void test_malformed(void **state) {
  fixture *f = *state;
  void *c = dealer(f);
  const char *bad_version[3] = {"reel/2", "PING", "{}"};
  send_frames(c, bad_version, 3);
  json_t *h = expect_cmd(f, c, "ERROR");
  assert_string_equal(json_string_value(json_object_get(h, "field")), "version");
  assert_int_equal(json_integer_value(json_array_get(json_object_get(h, "versions"), 0)), 1);
  json_decref(h);
  const char *bad_proto[3] = {"MDPC02", "PING", "{}"};
  send_frames(c, bad_proto, 3);
  expect_error(f, c, "EPROTO", "protocol");
  const char *two[2] = {"reel/1", "PING"};
  send_frames(c, two, 2);
  expect_error(f, c, "EPROTO", "frames");
  tsend(c, "PING", "not json");
  expect_error(f, c, "EFORMAT", "header");
  tsend(c, "FROB", "{\"req\":77}");
  h = expect_cmd(f, c, "ERROR");
  assert_string_equal(json_string_value(json_object_get(h, "code")), "EUNSUPPORTED");
  assert_int_equal(json_integer_value(json_object_get(h, "req")), 77);
  json_decref(h);
  tsend(c, "ACCEPTED", "{}");
  expect_error(f, c, "EUNSUPPORTED", "command");
  const char *payload[4] = {"reel/1", "PING", "{}", "xx"};
  send_frames(c, payload, 4);
  expect_error(f, c, "EPROTO", "payload");
  /* Oversized header (above the 64 KiB limit, below the transport's cut-off). */
  size_t big = 70000;
  char *hdr = malloc(big + 1);
  memset(hdr, ' ', big);
  hdr[0] = '{';
  hdr[big - 1] = '}';
  hdr[big] = 0;
  tsend(c, "PING", hdr);
  free(hdr);
  expect_error(f, c, "ELIMIT", "header");
  /* Bad job specs name the field. */
  tsend(c, "SUBMIT", "{\"job\":{\"prompt\":\"x\",\"frames\":5000}}");
  expect_error(f, c, "ERANGE", "job.frames");
  tsend(c, "SUBMIT", "{\"job\":{\"prompt\":\"x\",\"colour\":\"red\"}}");
  expect_error(f, c, "EINVAL", "job.colour");
  tsend(c, "SUBMIT", "{\"job\":{}}");
  expect_error(f, c, "EINVAL", "job.prompt");
  tsend(c, "STATUS", "{\"job_id\":\"nope\"}");
  expect_error(f, c, "EINVAL", "job_id");
  tsend(c, "PING", "{\"req\":[1]}");
  expect_error(f, c, "EINVAL", "req");
  /* A worker command from a peer that never said READY. */
  tsend(c, "RESULT", "{\"job_id\":\"x\"}");
  h = expect_cmd(f, c, "DISCONNECT");
  json_decref(h);
  /* Still serving. */
  char *id = submit(f, c, "{\"prompt\":\"still here\"}");
  assert_string_equal(job_state(f, c, id, NULL), "queued");
  free(id);
  close_sock(f, c);
}

static void test_lease_expiry_and_attempt_limit(void **state) {
  fixture *f = *state;
  void *c = dealer(f);
  char *id = submit(f, c, "{\"prompt\":\"poison\"}");
  for (int attempt = 1; attempt <= 3; attempt++) {
    char name[16];
    snprintf(name, sizeof name, "w%d", attempt);
    void *w = worker(f, name, 1, NULL);
    json_t *job = expect_cmd(f, w, "JOB");
    assert_string_equal(json_string_value(json_object_get(job, "job_id")), id);
    assert_int_equal(json_integer_value(json_object_get(job, "attempt")), attempt);
    assert_int_equal(json_integer_value(json_object_get(job, "lease_ms")), 300);
    json_decref(job);
    assert_string_equal(job_state(f, c, id, NULL), "running");
    /* Heartbeats keep the lease: 250 ms of fake time with a heartbeat in between. */
    f->clk.mono += 200;
    tsend(w, "HEARTBEAT", "{}");
    tsend(w, "PING", "{}"); /* its PONG proves the heartbeat was handled at this time */
    json_decref(expect_cmd(f, w, "PONG"));
    f->clk.mono += 200;
    assert_string_equal(job_state(f, c, id, NULL), "running");
    /* Silence past heartbeat × liveness: the worker is dead. */
    f->clk.mono += 301;
    json_t *rec = NULL;
    const char *s = job_state(f, c, id, &rec);
    if (attempt < 3) {
      assert_string_equal(s, "queued");
    } else {
      assert_string_equal(s, "failed");
      assert_string_equal(json_string_value(json_object_get(json_object_get(rec, "error"), "code")), "ETIMEDOUT");
      json_t *hist = json_object_get(rec, "history");
      assert_int_equal(json_array_size(hist), 3);
      for (int k = 0; k < 3; k++) {
        json_t *e = json_array_get(hist, (size_t)k);
        assert_int_equal(json_integer_value(json_object_get(e, "attempt")), k + 1);
        assert_string_equal(json_string_value(json_object_get(e, "outcome")), "lost");
      }
      assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 2), "worker")), "w3");
    }
    json_decref(rec);
    close_sock(f, w);
  }
  free(id);
  close_sock(f, c);
}

static void test_deadline_expiry(void **state) {
  fixture *f = *state;
  void *c = dealer(f);
  char *id = submit(f, c, "{\"prompt\":\"soon\",\"deadline_ms\":5000}");
  f->clk.wall += 4999;
  f->clk.mono += 4999;
  assert_string_equal(job_state(f, c, id, NULL), "queued");
  f->clk.wall += 2;
  f->clk.mono += 200;
  json_t *rec = NULL;
  assert_string_equal(job_state(f, c, id, &rec), "expired");
  assert_string_equal(json_string_value(json_object_get(json_object_get(rec, "error"), "field")), "job.deadline_ms");
  json_decref(rec);
  free(id);
  close_sock(f, c);
}

static void test_cancel_and_idempotency(void **state) {
  fixture *f = *state;
  void *c = dealer(f);
  char *q = submit(f, c, "{\"prompt\":\"queued\",\"idempotency_key\":\"k1\"}");
  /* Idempotent resubmit returns the same job. */
  tsend(c, "SUBMIT", "{\"req\":2,\"job\":{\"prompt\":\"queued\",\"idempotency_key\":\"k1\"}}");
  json_t *h = expect_cmd(f, c, "ACCEPTED");
  assert_string_equal(json_string_value(json_object_get(h, "job_id")), q);
  assert_true(json_is_true(json_object_get(h, "duplicate")));
  json_decref(h);
  /* The same key in another tenant is another job. */
  tsend(c, "SUBMIT", "{\"req\":3,\"tenant\":\"t2\",\"job\":{\"prompt\":\"queued\",\"idempotency_key\":\"k1\"}}");
  h = expect_cmd(f, c, "ACCEPTED");
  assert_string_not_equal(json_string_value(json_object_get(h, "job_id")), q);
  json_decref(h);
  char buf[128];
  snprintf(buf, sizeof buf, "{\"req\":4,\"job_id\":\"%s\"}", q);
  tsend(c, "CANCEL", buf);
  h = expect_cmd(f, c, "JOB");
  assert_string_equal(json_string_value(json_object_get(json_object_get(h, "job"), "state")), "canceled");
  json_decref(h);
  tsend(c, "CANCEL", buf);
  expect_error(f, c, "ESTATE", "job_id");
  /* Running: forwarded to the worker, canceled when it confirms. */
  char *r = submit(f, c, "{\"prompt\":\"running\"}");
  void *w = worker(f, "wc", 1, NULL);
  json_t *job = expect_cmd(f, w, "JOB");
  assert_string_equal(json_string_value(json_object_get(job, "job_id")), r);
  json_decref(job);
  snprintf(buf, sizeof buf, "{\"req\":5,\"job_id\":\"%s\"}", r);
  tsend(c, "CANCEL", buf);
  h = expect_cmd(f, c, "JOB");
  assert_string_equal(json_string_value(json_object_get(json_object_get(h, "job"), "state")), "running");
  assert_true(json_is_true(json_object_get(json_object_get(h, "job"), "cancel_requested")));
  json_decref(h);
  json_t *cn = expect_cmd(f, w, "CANCEL");
  assert_string_equal(json_string_value(json_object_get(cn, "job_id")), r);
  json_decref(cn);
  snprintf(buf, sizeof buf,
           "{\"job_id\":\"%s\",\"attempt\":1,\"state\":\"canceled\",\"error\":{\"code\":\"ECANCELED\"}}", r);
  tsend(w, "RESULT", buf);
  json_t *ack = expect_cmd(f, w, "ACK");
  json_decref(ack);
  assert_string_equal(job_state(f, c, r, NULL), "canceled");
  /* The client that submitted got the state events. */
  free(q);
  free(r);
  close_sock(f, w);
  close_sock(f, c);
}

static void test_fair_share_dispatch(void **state) {
  fixture *f = *state;
  void *c = dealer(f);
  for (int i = 0; i < 6; i++) {
    tsend(c, "SUBMIT", "{\"tenant\":\"A\",\"job\":{\"prompt\":\"a\",\"class\":\"batch\"}}");
    json_decref(expect_cmd(f, c, "ACCEPTED"));
  }
  for (int i = 0; i < 3; i++) {
    tsend(c, "SUBMIT", "{\"tenant\":\"B\",\"job\":{\"prompt\":\"b\",\"class\":\"batch\"}}");
    json_decref(expect_cmd(f, c, "ACCEPTED"));
  }
  tsend(c, "SUBMIT", "{\"tenant\":\"C\",\"job\":{\"prompt\":\"c\"}}"); /* interactive */
  json_decref(expect_cmd(f, c, "ACCEPTED"));
  void *w = worker(f, "wf", 1, NULL);
  char order[16] = "";
  for (int i = 0; i < 10; i++) {
    json_t *job = expect_cmd(f, w, "JOB");
    order[i] = json_string_value(json_object_get(job, "tenant"))[0];
    char buf[256];
    snprintf(buf, sizeof buf, "{\"job_id\":\"%s\",\"attempt\":1,\"state\":\"succeeded\",\"outputs\":[]}",
             json_string_value(json_object_get(job, "job_id")));
    tsend(w, "RESULT", buf);
    json_decref(job);
  }
  assert_string_equal(order, "CABABABAAA");
  close_sock(f, w);
  close_sock(f, c);
}

static void test_matching(void **state) {
  fixture *f = *state;
  void *c = dealer(f);
  char *big = submit(f, c, "{\"prompt\":\"big\",\"width\":1920,\"height\":1080}");
  char *eu = submit(f, c, "{\"prompt\":\"eu\",\"region\":\"eu\"}");
  char *m = submit(f, c, "{\"prompt\":\"m\",\"model\":\"wan\"}");
  void *w = worker(f, "small", 3,
                   "{\"max_width\":832,\"max_height\":480,\"models\":[\"builtin:testsrc\"],\"labels\":[\"us\"]}");
  /* Nothing matches: no JOB within a few iterations. */
  for (int i = 0; i < 5; i++) {
    reel_error err;
    reel_error_clear(&err);
    reel_broker_poll(f->b, 2, &err);
  }
  char buf[8];
  assert_int_equal(zmq_recv(w, buf, sizeof buf, ZMQ_DONTWAIT), -1);
  void *w2 = worker(f, "eu-big", 3, "{\"region\":\"eu\",\"models\":[\"wan\"]}");
  int got = 0;
  for (int i = 0; i < 3; i++) {
    json_t *job = expect_cmd(f, w2, "JOB");
    const char *id = json_string_value(json_object_get(job, "job_id"));
    got += !strcmp(id, big) || !strcmp(id, eu) || !strcmp(id, m);
    json_decref(job);
  }
  assert_int_equal(got, 3);
  free(big);
  free(eu);
  free(m);
  close_sock(f, w);
  close_sock(f, w2);
  close_sock(f, c);
}

static void test_replay_after_restart(void **state) {
  fixture *f = *state;
  void *c = dealer(f);
  char *a = submit(f, c, "{\"prompt\":\"survives\",\"idempotency_key\":\"keep\"}");
  char *b = submit(f, c, "{\"prompt\":\"finished\"}");
  void *w = worker(f, "wr", 2, NULL);
  json_t *j1 = expect_cmd(f, w, "JOB");
  json_t *j2 = expect_cmd(f, w, "JOB");
  json_decref(j1);
  json_decref(j2);
  char buf[256];
  snprintf(
      buf, sizeof buf,
      "{\"job_id\":\"%s\",\"attempt\":1,\"state\":\"succeeded\",\"outputs\":[{\"url\":\"file:///x.mp4\",\"bytes\":7}],"
      "\"seed\":42}",
      b);
  tsend(w, "RESULT", buf);
  json_decref(expect_cmd(f, w, "ACK"));
  close_sock(f, w);
  close_sock(f, c);
  /* Restart on the same journal. */
  reel_broker_destroy(&f->b);
  start_broker(f);
  reel_broker_stats st;
  reel_broker_get_stats(f->b, &st);
  assert_int_equal(st.jobs, 2);
  assert_int_equal(st.running, 1); /* a is running on wr, waiting for it to come back */
  c = dealer(f);
  json_t *rec = NULL;
  assert_string_equal(job_state(f, c, b, &rec), "succeeded");
  assert_int_equal(json_integer_value(json_object_get(rec, "seed")), 42);
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(rec, "outputs"), 0), "url")),
                      "file:///x.mp4");
  json_decref(rec);
  assert_string_equal(job_state(f, c, a, NULL), "running");
  /* The worker reconnects and claims a: it stays running, then succeeds. A job the broker does not
     know (one whose acceptance never reached the disk) is canceled. */
  w = dealer(f);
  snprintf(buf, sizeof buf, "{\"worker\":\"wr\",\"capacity\":2,\"running\":[\"%s\",\"0000000000ff-00000\"]}", a);
  tsend(w, "READY", buf);
  char wcmd[32];
  json_t *first = trecv(f, w, wcmd);
  assert_string_equal(wcmd, "WELCOME");
  json_decref(first);
  json_t *unknown = expect_cmd(f, w, "CANCEL");
  assert_string_equal(json_string_value(json_object_get(unknown, "job_id")), "0000000000ff-00000");
  json_decref(unknown);
  snprintf(buf, sizeof buf, "{\"job_id\":\"%s\",\"attempt\":1,\"state\":\"succeeded\"}", a);
  tsend(w, "RESULT", buf);
  json_decref(expect_cmd(f, w, "ACK"));
  assert_string_equal(job_state(f, c, a, &rec), "succeeded");
  assert_int_equal(json_integer_value(json_object_get(rec, "attempts")), 1);
  json_decref(rec);
  /* The idempotency key survived the restart. */
  tsend(c, "SUBMIT", "{\"req\":3,\"job\":{\"prompt\":\"survives\",\"idempotency_key\":\"keep\"}}");
  json_t *h = expect_cmd(f, c, "ACCEPTED");
  assert_string_equal(json_string_value(json_object_get(h, "job_id")), a);
  json_decref(h);
  /* An unclaimed running job is requeued after one lease. */
  tsend(w, "BYE", "{}");
  settle(f);
  char *d = submit(f, c, "{\"prompt\":\"orphan\"}");
  void *w3 = worker(f, "w3", 1, NULL);
  json_decref(expect_cmd(f, w3, "JOB"));
  close_sock(f, w3);
  close_sock(f, w);
  close_sock(f, c);
  reel_broker_destroy(&f->b);
  start_broker(f);
  c = dealer(f);
  assert_string_equal(job_state(f, c, d, NULL), "running");
  f->clk.mono += 301;
  assert_string_equal(job_state(f, c, d, &rec), "queued");
  assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(rec, "history"), 0), "outcome")),
                      "lost");
  json_decref(rec);
  close_sock(f, c);
  free(a);
  free(b);
  free(d);
}

static void test_compaction_keeps_state(void **state) {
  fixture *f = *state;
  reel_broker_destroy(&f->b);
  f->o.compact_bytes = 4096;
  f->o.retain_finished = 5;
  start_broker(f);
  void *c = dealer(f);
  void *w = worker(f, "wk", 1, "{\"models\":[\"builtin:testsrc\"]}");
  char *last = NULL;
  for (int i = 0; i < 40; i++) {
    free(last);
    last = submit(f, c, "{\"prompt\":\"compact me please, this is a long enough prompt to grow the journal\"}");
    json_t *job = expect_cmd(f, w, "JOB");
    char buf[256];
    snprintf(buf, sizeof buf, "{\"job_id\":\"%s\",\"attempt\":1,\"state\":\"succeeded\"}",
             json_string_value(json_object_get(job, "job_id")));
    json_decref(job);
    tsend(w, "RESULT", buf);
    json_decref(expect_cmd(f, w, "ACK"));
  }
  char *q = submit(f, c, "{\"prompt\":\"left queued\",\"model\":\"nobody-serves-this\"}");
  reel_broker_stats st;
  reel_broker_get_stats(f->b, &st);
  if (st.compactions < 1) fail_msg("no compaction: journal %llu bytes", (unsigned long long)st.journal_bytes);
  assert_int_equal(st.finished, 5);
  close_sock(f, w);
  close_sock(f, c);
  reel_broker_destroy(&f->b);
  start_broker(f);
  reel_broker_get_stats(f->b, &st);
  assert_int_equal(st.finished, 5);
  assert_int_equal(st.queued, 1);
  c = dealer(f);
  assert_string_equal(job_state(f, c, last, NULL), "succeeded");
  assert_string_equal(job_state(f, c, q, NULL), "queued");
  close_sock(f, c);
  free(last);
  free(q);
}

/* Receives until an EVENT of kind `kind` arrives; returns it. */
static json_t *expect_event(fixture *f, void *s, const char *kind) {
  for (int i = 0; i < 50; i++) {
    json_t *h = expect_cmd(f, s, "EVENT");
    if (!strcmp(json_string_value(json_object_get(h, "event")), kind)) return h;
    json_decref(h);
  }
  fail_msg("no %s event", kind);
  return NULL;
}

static void test_events_and_tenant_limit(void **state) {
  fixture *f = *state;
  reel_broker_destroy(&f->b);
  f->o.max_queued_per_tenant = 2;
  start_broker(f);
  void *c = dealer(f);
  char *a = submit(f, c, "{\"prompt\":\"first\"}");
  char *b = submit(f, c, "{\"prompt\":\"second\"}");
  /* The tenant's queue is full. */
  tsend(c, "SUBMIT", "{\"job\":{\"prompt\":\"third\"}}");
  expect_error(f, c, "ELIMIT", "tenant.max_queued");
  /* Another tenant is not affected. */
  tsend(c, "SUBMIT", "{\"tenant\":\"other\",\"job\":{\"prompt\":\"x\",\"model\":\"none\"}}");
  json_decref(expect_cmd(f, c, "ACCEPTED"));
  /* a runs: b moves to position 1, which its follower hears within a second. */
  void *w = worker(f, "we", 1, "{\"models\":[\"builtin:testsrc\"]}");
  json_t *job = expect_cmd(f, w, "JOB");
  assert_string_equal(json_string_value(json_object_get(job, "job_id")), a);
  json_decref(job);
  json_t *ev = expect_event(f, c, "state");
  assert_string_equal(json_string_value(json_object_get(ev, "job_id")), a);
  assert_string_equal(json_string_value(json_object_get(ev, "state")), "running");
  assert_string_equal(json_string_value(json_object_get(json_object_get(ev, "job"), "worker")), "we");
  json_decref(ev);
  /* A second of fake time, with heartbeats so that the worker keeps its lease. */
  for (int i = 0; i < 5; i++) {
    f->clk.mono += 201;
    tsend(w, "HEARTBEAT", "{}");
    tsend(w, "PING", "{}");
    json_decref(expect_cmd(f, w, "PONG"));
  }
  ev = expect_event(f, c, "position");
  assert_string_equal(json_string_value(json_object_get(ev, "job_id")), b);
  assert_int_equal(json_integer_value(json_object_get(ev, "position")), 1);
  json_decref(ev);
  /* Progress from the worker reaches the follower. */
  char buf[256];
  snprintf(buf, sizeof buf,
           "{\"job_id\":\"%s\",\"attempt\":1,\"stage\":\"encoding\",\"step\":3,\"steps\":8,\"fraction\":0.375,"
           "\"eta_ms\":500}",
           a);
  tsend(w, "PROGRESS", buf);
  ev = expect_event(f, c, "progress");
  assert_string_equal(json_string_value(json_object_get(ev, "stage")), "encoding");
  assert_int_equal(json_integer_value(json_object_get(ev, "step")), 3);
  assert_int_equal(json_integer_value(json_object_get(ev, "eta_ms")), 500);
  json_decref(ev);
  /* Bad progress is an error naming the field; the job is unaffected. */
  snprintf(buf, sizeof buf, "{\"job_id\":\"%s\",\"stage\":\"x\",\"fraction\":2}", a);
  tsend(w, "PROGRESS", buf);
  expect_error(f, w, "ERANGE", "fraction");
  /* A retryable failure requeues; the final success shows both attempts. */
  snprintf(buf, sizeof buf,
           "{\"job_id\":\"%s\",\"attempt\":1,\"state\":\"failed\",\"retry\":true,"
           "\"error\":{\"code\":\"ESTORAGE\",\"message\":\"bucket unreachable\"}}",
           a);
  tsend(w, "RESULT", buf);
  /* ACK (after the commit) and the next JOB (sent at once) may come in either order. */
  job = NULL;
  int acked = 0;
  while (!job || !acked) {
    char cmd[32];
    json_t *h = trecv(f, w, cmd);
    if (!strcmp(cmd, "ACK"))
      acked = 1;
    else if (!strcmp(cmd, "JOB") && !job)
      job = json_incref(h);
    json_decref(h);
  }
  /* a again (it keeps its place in front of b) */
  assert_string_equal(json_string_value(json_object_get(job, "job_id")), a);
  assert_int_equal(json_integer_value(json_object_get(job, "attempt")), 2);
  json_decref(job);
  /* The worker leaves: a is requeued without using up an attempt. */
  tsend(w, "BYE", "{}");
  json_t *rec = NULL;
  assert_string_equal(job_state(f, c, a, &rec), "queued");
  json_t *hist = json_object_get(rec, "history");
  assert_int_equal(json_array_size(hist), 2);
  assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 0), "outcome")), "failed");
  assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(hist, 0), "error"), "code")),
                      "ESTORAGE");
  assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 1), "outcome")), "left");
  json_decref(rec);
  void *w2 = worker(f, "we2", 1, "{\"models\":[\"builtin:testsrc\"]}");
  job = expect_cmd(f, w2, "JOB");
  assert_int_equal(json_integer_value(json_object_get(job, "attempt")), 3);
  json_decref(job);
  snprintf(buf, sizeof buf, "{\"job_id\":\"%s\",\"attempt\":3,\"state\":\"succeeded\"}", a);
  tsend(w2, "RESULT", buf);
  json_decref(expect_cmd(f, w2, "ACK"));
  assert_string_equal(job_state(f, c, a, &rec), "succeeded");
  assert_int_equal(json_array_size(json_object_get(rec, "history")), 3);
  json_decref(rec);
  close_sock(f, w2);
  close_sock(f, w);
  close_sock(f, c);
  free(a);
  free(b);
}

static void test_superseded_result(void **state) {
  fixture *f = *state;
  void *c = dealer(f);
  char *a = submit(f, c, "{\"prompt\":\"slow\"}");
  void *w1 = worker(f, "old", 1, NULL);
  json_decref(expect_cmd(f, w1, "JOB"));
  /* w1 goes silent long enough to lose its lease; w2 takes the job. */
  f->clk.mono += 301;
  settle(f);
  void *w2 = worker(f, "new", 1, NULL);
  json_t *job = expect_cmd(f, w2, "JOB");
  assert_int_equal(json_integer_value(json_object_get(job, "attempt")), 2);
  json_decref(job);
  /* w1 was only slow: its result arrives and finishes the job; w2 is told to cancel. */
  char buf[256];
  tsend(w1, "READY", "{\"worker\":\"old\",\"capacity\":1}");
  json_decref(expect_cmd(f, w1, "WELCOME"));
  snprintf(buf, sizeof buf, "{\"job_id\":\"%s\",\"attempt\":1,\"state\":\"succeeded\"}", a);
  tsend(w1, "RESULT", buf);
  json_decref(expect_cmd(f, w1, "ACK"));
  json_t *cn = expect_cmd(f, w2, "CANCEL");
  assert_string_equal(json_string_value(json_object_get(cn, "job_id")), a);
  json_decref(cn);
  json_t *rec = NULL;
  assert_string_equal(job_state(f, c, a, &rec), "succeeded");
  json_t *hist = json_object_get(rec, "history");
  assert_string_equal(json_string_value(json_object_get(json_array_get(hist, 1), "outcome")), "superseded");
  json_decref(rec);
  /* w2's late cancel confirmation changes nothing. */
  snprintf(buf, sizeof buf, "{\"job_id\":\"%s\",\"attempt\":2,\"state\":\"canceled\"}", a);
  tsend(w2, "RESULT", buf);
  json_decref(expect_cmd(f, w2, "ACK"));
  assert_string_equal(job_state(f, c, a, NULL), "succeeded");
  close_sock(f, w1);
  close_sock(f, w2);
  close_sock(f, c);
  free(a);
}

/*
 * Polls the broker until it has handled one more message; with fail_at >= 0 the
 * fail_at-th allocation of that iteration fails. Returns the allocations the
 * iteration made.
 */
static long poll_one_message(fixture *f, long fail_at) {
  reel_broker_stats st;
  reel_broker_get_stats(f->b, &st);
  uint64_t before = st.messages_total;
  for (int i = 0; i < 2000; i++) {
    long c0 = reel_alloc_calls();
    if (fail_at >= 0) reel_alloc_fail_after(fail_at, 0);
    reel_error err;
    reel_error_clear(&err);
    assert_int_equal(reel_broker_poll(f->b, 5, &err), REEL_OK);
    reel_alloc_fail_after(-1, 0);
    long used = reel_alloc_calls() - c0;
    reel_broker_get_stats(f->b, &st);
    if (st.messages_total > before) return used;
  }
  fail_msg("the broker received no message");
  return 0;
}

/*
 * Allocation failures while the broker handles a submit, a dispatch and a result:
 * every failure point in turn. The broker must neither crash nor leak (ASan), and
 * must stay consistent: every ACCEPTED job exists afterwards and can finish.
 */
static void test_allocation_failures(void **state) {
  fixture *f = *state;
  void *c = dealer(f);
  void *w = worker(f, "wa", 64, NULL);
  char *accepted[1000];
  int naccepted = 0;
  /* How many allocations the broker iteration that handles one submit makes (dispatch and events included). */
  tsend(c, "SUBMIT", "{\"job\":{\"prompt\":\"clean\",\"frames\":4}}");
  long per_submit = poll_one_message(f, -1);
  json_decref(expect_cmd(f, c, "ACCEPTED"));
  /* (jansson's own allocations are never failed on purpose: see reel_json_use_reel_alloc().) */
  assert_true(per_submit > 3);
  for (long k = 0; k < per_submit + 10; k++) {
    char buf[256];
    snprintf(buf, sizeof buf, "{\"req\":%ld,\"job\":{\"prompt\":\"fault %ld\",\"frames\":4}}", k, k);
    tsend(c, "SUBMIT", buf);
    /* Fail the k-th allocation of the iteration that handles this message. */
    poll_one_message(f, k);
    reel_error err;
    reel_error_clear(&err);
    for (int i = 0; i < 3; i++) reel_broker_poll(f->b, 1, &err);
    /* Collect replies without waiting for ones that were lost to the failure. */
    char cmd[32];
    for (;;) {
      zmq_msg_t parts[3];
      int n = 0, more = 1;
      while (more && n < 3) {
        zmq_msg_init(&parts[n]);
        if (zmq_msg_recv(&parts[n], c, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
          zmq_msg_close(&parts[n]);
          break;
        }
        more = zmq_msg_more(&parts[n]);
        n++;
      }
      if (n == 0) break;
      if (n == 3) {
        size_t cl = zmq_msg_size(&parts[1]);
        memcpy(cmd, zmq_msg_data(&parts[1]), cl);
        cmd[cl] = 0;
        if (!strcmp(cmd, "ACCEPTED")) {
          json_error_t je;
          json_t *h = json_loadb(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), 0, &je);
          if (h) {
            accepted[naccepted++] = strdup(json_string_value(json_object_get(h, "job_id")));
            json_decref(h);
          }
        }
      }
      for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
    }
    /* The worker answers whatever it got, also under failures. */
    for (;;) {
      char wcmd[32], hdr[8192];
      int r = zmq_recv(w, hdr, sizeof hdr, ZMQ_DONTWAIT);
      if (r < 0) break;
      r = zmq_recv(w, wcmd, sizeof wcmd - 1, 0);
      wcmd[r < 0 ? 0 : r] = 0;
      r = zmq_recv(w, hdr, sizeof hdr - 1, 0);
      hdr[r < 0 ? 0 : r] = 0;
      if (strcmp(wcmd, "JOB") != 0) continue;
      json_error_t je;
      json_t *h = json_loads(hdr, 0, &je);
      char res[256];
      snprintf(res, sizeof res, "{\"job_id\":\"%s\",\"attempt\":%lld,\"state\":\"succeeded\"}",
               json_string_value(json_object_get(h, "job_id")),
               (long long)json_integer_value(json_object_get(h, "attempt")));
      json_decref(h);
      tsend(w, "RESULT", res);
      poll_one_message(f, k % 40);
    }
  }
  /* Late failure points fall after the submit's own allocations: those submits went through. */
  assert_true(naccepted >= 3);
  /* Every accepted job is known and reaches a terminal state once things are normal again. */
  tsend(w, "READY", "{\"worker\":\"wa\",\"capacity\":64}");
  json_decref(expect_cmd(f, w, "WELCOME"));
  for (int i = 0; i < naccepted; i++) {
    json_t *rec = NULL;
    const char *st = job_state(f, c, accepted[i], &rec);
    if (!strcmp(st, "running") || !strcmp(st, "queued")) {
      /* Its RESULT was lost to a failure (no ACK): the worker would resend it; do so. */
      char res[256];
      snprintf(res, sizeof res, "{\"job_id\":\"%s\",\"attempt\":%lld,\"state\":\"succeeded\"}", accepted[i],
               (long long)json_integer_value(json_object_get(rec, "attempts")));
      tsend(w, "RESULT", res);
      json_decref(expect_cmd(f, w, "ACK"));
      st = job_state(f, c, accepted[i], NULL);
    }
    assert_string_equal(st, "succeeded");
    json_decref(rec);
    free(accepted[i]);
  }
  close_sock(f, w);
  close_sock(f, c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_submit_status_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_expiry_and_attempt_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_and_idempotency, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fair_share_dispatch, setup, teardown),
      cmocka_unit_test_setup_teardown(test_matching, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay_after_restart, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compaction_keeps_state, setup, teardown),
      cmocka_unit_test_setup_teardown(test_events_and_tenant_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_superseded_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_allocation_failures, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
