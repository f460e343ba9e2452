/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_bench_queue: load generator for a running `reel broker` (not a test).
 *
 *   accept:   N SUBMITs from K client sockets with W outstanding each; the rate of
 *             ACCEPTED replies (each one means "in the journal, fsynced" when the
 *             broker journals).
 *   drain:    M instant workers (reply RESULT as soon as a JOB arrives) empty the
 *             queue; the rate of completed jobs.
 *   latency:  L jobs one at a time on an idle queue: submit → ACCEPTED (durable ack)
 *             and submit → JOB at a worker (dispatch), p50/p99/max.
 *
 * Prints one JSON object. tools/bench_queue.py starts the brokers (journal on/off)
 * and RabbitMQ and runs this side by side; see docs/benchmarks.md.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "reel/clock.h"
#include "reel/json.h"

#define SPEC_FMT                                                                                               \
  "{\"req\":%ld,\"job\":{\"prompt\":\"b%ld a lighthouse on a cliff at dusk, waves, slow dolly in\",\"model\":" \
  "\"builtin:testsrc\",\"frames\":16,\"width\":320,\"height\":240,\"class\":\"batch\"},\"follow\":false}"

typedef struct {
  const char *endpoint;
  long jobs, window, latency_jobs;
  int clients, workers;
  /* Shared with the worker thread. */
  atomic_int stop;
  atomic_long received;     /* JOBs received by workers */
  int64_t *job_seen_ns;     /* per latency sample: when its JOB reached a worker (0 = not yet) */
  atomic_long latency_base; /* seq of latency sample 0 */
  void *ctx;                /* shared: inproc notifications from the worker thread */
} bench;

static void *dealer(void *ctx, const char *ep) {
  void *s = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0, hwm = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
  if (zmq_connect(s, ep) != 0) {
    fprintf(stderr, "reel_bench_queue: cannot connect %s: %s\n", ep, zmq_strerror(errno));
    exit(1);
  }
  return s;
}

static void send3(void *s, const char *cmd, const char *hdr, size_t len) {
  zmq_send(s, "reel/1", 6, ZMQ_SNDMORE);
  zmq_send(s, cmd, strlen(cmd), ZMQ_SNDMORE);
  zmq_send(s, hdr, len, 0);
}

/* Receives one message; returns its command in cmd and header (NUL-terminated) in hdr. 0 or -1 (EAGAIN). */
static int recv3(void *s, char *cmd, size_t cmdsz, char *hdr, size_t hdrsz, int flags) {
  char proto[16];
  int n = zmq_recv(s, proto, sizeof proto, flags);
  if (n < 0) return -1;
  int more = 0;
  size_t ml = sizeof more;
  zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
  int c = more ? zmq_recv(s, cmd, cmdsz - 1, 0) : 0;
  cmd[c < 0 ? 0 : (c < (int)cmdsz ? c : (int)cmdsz - 1)] = 0;
  zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
  int h = more ? zmq_recv(s, hdr, hdrsz - 1, 0) : 0;
  hdr[h < 0 ? 0 : (h < (int)hdrsz ? h : (int)hdrsz - 1)] = 0;
  for (zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml); more; zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml)) {
    char sink[64];
    zmq_recv(s, sink, sizeof sink, 0);
  }
  return 0;
}

/* Finds "key":"value" in a header and copies the value. */
static int field(const char *hdr, const char *key, char *out, size_t size) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":\"", key);
  const char *p = strstr(hdr, pat);
  if (!p) return 0;
  p += strlen(pat);
  const char *e = strchr(p, '"');
  if (!e || (size_t)(e - p) >= size) return 0;
  memcpy(out, p, (size_t)(e - p));
  out[e - p] = 0;
  return 1;
}

/* Instant workers: every JOB is answered with RESULT at once. */
static void *workers_main(void *arg) {
  bench *b = arg;
  void *ctx = zmq_ctx_new();
  /* Tells the main thread when a latency sample's JOB arrived (so that it blocks instead of spinning). */
  void *notify = zmq_socket(b->ctx, ZMQ_PAIR);
  zmq_connect(notify, "inproc://bench-seen");
  void *socks[64];
  zmq_pollitem_t items[64];
  int n = b->workers > 64 ? 64 : b->workers;
  for (int i = 0; i < n; i++) {
    socks[i] = dealer(ctx, b->endpoint);
    char hdr[200];
    int len = snprintf(hdr, sizeof hdr, "{\"worker\":\"bench-%d\",\"capacity\":64,\"capabilities\":{}}", i);
    send3(socks[i], "READY", hdr, (size_t)len);
    items[i] = (zmq_pollitem_t){socks[i], 0, ZMQ_POLLIN, 0};
  }
  int64_t last_hb = reel_now_ms();
  char cmd[32], hdr[4096], id[64], prompt[256], out[256];
  while (!atomic_load(&b->stop)) {
    if (zmq_poll(items, n, 50) < 0) break;
    for (int i = 0; i < n; i++) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      while (recv3(socks[i], cmd, sizeof cmd, hdr, sizeof hdr, ZMQ_DONTWAIT) == 0) {
        if (strcmp(cmd, "JOB") != 0) continue;
        int64_t now = reel_now_ns();
        if (!field(hdr, "job_id", id, sizeof id)) continue;
        if (field(hdr, "prompt", prompt, sizeof prompt) && prompt[0] == 'b') {
          long seq = strtol(prompt + 1, NULL, 10);
          long k = seq - atomic_load(&b->latency_base);
          if (k >= 0 && k < b->latency_jobs) {
            __atomic_store_n(&b->job_seen_ns[k], now, __ATOMIC_RELEASE);
            zmq_send(notify, "", 0, ZMQ_DONTWAIT);
          }
        }
        atomic_fetch_add(&b->received, 1);
        int len = snprintf(out, sizeof out, "{\"job_id\":\"%s\",\"attempt\":1,\"state\":\"succeeded\"}", id);
        send3(socks[i], "RESULT", out, (size_t)len);
      }
    }
    if (reel_now_ms() - last_hb > 500) {
      last_hb = reel_now_ms();
      for (int i = 0; i < n; i++) send3(socks[i], "HEARTBEAT", "{}", 2);
    }
  }
  for (int i = 0; i < n; i++) {
    send3(socks[i], "BYE", "{}", 2);
    zmq_close(socks[i]);
  }
  zmq_close(notify);
  zmq_ctx_term(ctx);
  return NULL;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct(int64_t *v, long n, double p) {
  if (n == 0) return 0;
  long i = (long)(p * (double)(n - 1) + 0.5);
  return (double)v[i] / 1e6; /* ns → ms */
}

/* Asks the broker for STATS and returns the number of queued + running jobs. */
static long backlog(void *s) {
  char cmd[32], hdr[4096];
  send3(s, "STATS", "{\"req\":\"stats\"}", 15);
  for (;;) {
    if (recv3(s, cmd, sizeof cmd, hdr, sizeof hdr, 0) != 0) return -1;
    if (strcmp(cmd, "STATS") != 0) continue;
    json_error_t je;
    json_t *h = json_loads(hdr, 0, &je);
    long n =
        h ? (long)(json_integer_value(json_object_get(h, "queued")) + json_integer_value(json_object_get(h, "running")))
          : -1;
    if (h) json_decref(h);
    return n;
  }
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  b.jobs = 20000;
  b.window = 256;
  b.latency_jobs = 2000;
  b.clients = 4;
  b.workers = 4;
  static const struct option opts[] = {{"broker", required_argument, NULL, 'b'},
                                       {"jobs", required_argument, NULL, 'n'},
                                       {"clients", required_argument, NULL, 'c'},
                                       {"window", required_argument, NULL, 'w'},
                                       {"latency-jobs", required_argument, NULL, 'l'},
                                       {"workers", required_argument, NULL, 'k'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
    switch (c) {
      case 'b':
        b.endpoint = optarg;
        break;
      case 'n':
        b.jobs = atol(optarg);
        break;
      case 'c':
        b.clients = atoi(optarg);
        break;
      case 'w':
        b.window = atol(optarg);
        break;
      case 'l':
        b.latency_jobs = atol(optarg);
        break;
      case 'k':
        b.workers = atoi(optarg);
        break;
      default:
        fprintf(stderr,
                "usage: reel_bench_queue --broker ENDPOINT [--jobs N] [--clients K] [--window W] "
                "[--latency-jobs L] [--workers M]\n");
        return c == 'h' ? 0 : 2;
    }
  }
  if (!b.endpoint || b.jobs < 1 || b.clients < 1 || b.clients > 64 || b.window < 1 || b.latency_jobs < 1 ||
      b.workers < 1) {
    fprintf(stderr, "reel_bench_queue: bad arguments (--broker is required)\n");
    return 2;
  }
  b.job_seen_ns = calloc((size_t)b.latency_jobs, sizeof *b.job_seen_ns);
  atomic_store(&b.latency_base, -1000000000L);
  void *ctx = zmq_ctx_new();
  b.ctx = ctx;
  void *seen = zmq_socket(ctx, ZMQ_PAIR);
  zmq_bind(seen, "inproc://bench-seen");
  void *cs[64];
  for (int i = 0; i < b.clients; i++) cs[i] = dealer(ctx, b.endpoint);
  /* Warm up the connections. */
  char cmd[32], hdr[4096], buf[512];
  for (int i = 0; i < b.clients; i++) {
    send3(cs[i], "PING", "{}", 2);
    recv3(cs[i], cmd, sizeof cmd, hdr, sizeof hdr, 0);
  }
  /* Accept phase. */
  long sent = 0, acked = 0, errors = 0, seq = 0;
  long outstanding[64] = {0};
  int64_t t0 = reel_now_ns();
  zmq_pollitem_t items[64];
  for (int i = 0; i < b.clients; i++) items[i] = (zmq_pollitem_t){cs[i], 0, ZMQ_POLLIN, 0};
  while (acked + errors < b.jobs) {
    for (int i = 0; i < b.clients; i++) {
      while (outstanding[i] < b.window && sent < b.jobs) {
        int len = snprintf(buf, sizeof buf, SPEC_FMT, seq, seq);
        seq++;
        send3(cs[i], "SUBMIT", buf, (size_t)len);
        outstanding[i]++;
        sent++;
      }
    }
    zmq_poll(items, b.clients, 1000);
    for (int i = 0; i < b.clients; i++) {
      while (recv3(cs[i], cmd, sizeof cmd, hdr, sizeof hdr, ZMQ_DONTWAIT) == 0) {
        if (!strcmp(cmd, "ACCEPTED"))
          acked++;
        else if (!strcmp(cmd, "ERROR")) {
          if (errors++ == 0) fprintf(stderr, "reel_bench_queue: %s\n", hdr);
        } else
          continue;
        outstanding[i]--;
      }
    }
  }
  double accept_s = (double)(reel_now_ns() - t0) / 1e9;
  /* Drain phase: instant workers empty the queue. */
  pthread_t th;
  int64_t t1 = reel_now_ns();
  pthread_create(&th, NULL, workers_main, &b);
  while (atomic_load(&b.received) < acked) reel_sleep_ms(2);
  while (backlog(cs[0]) > 0) reel_sleep_ms(2);
  double drain_s = (double)(reel_now_ns() - t1) / 1e9;
  /* Latency phase: one job at a time on an idle queue. */
  int64_t *ack_ns = calloc((size_t)b.latency_jobs, sizeof *ack_ns);
  int64_t *disp_ns = calloc((size_t)b.latency_jobs, sizeof *disp_ns);
  atomic_store(&b.latency_base, seq);
  for (long k = 0; k < b.latency_jobs; k++) {
    int len = snprintf(buf, sizeof buf, SPEC_FMT, seq, seq);
    seq++;
    int64_t ts = reel_now_ns();
    send3(cs[0], "SUBMIT", buf, (size_t)len);
    for (;;) {
      if (recv3(cs[0], cmd, sizeof cmd, hdr, sizeof hdr, 0) != 0) break;
      if (!strcmp(cmd, "ACCEPTED") || !strcmp(cmd, "ERROR")) break;
    }
    ack_ns[k] = reel_now_ns() - ts;
    while (!__atomic_load_n(&b.job_seen_ns[k], __ATOMIC_ACQUIRE)) {
      char x;
      zmq_recv(seen, &x, 1, 0);
    }
    disp_ns[k] = b.job_seen_ns[k] - ts;
  }
  atomic_store(&b.stop, 1);
  pthread_join(th, NULL);
  qsort(ack_ns, (size_t)b.latency_jobs, sizeof *ack_ns, cmp_i64);
  qsort(disp_ns, (size_t)b.latency_jobs, sizeof *disp_ns, cmp_i64);
  printf(
      "{\"jobs\":%ld,\"clients\":%d,\"window\":%ld,\"errors\":%ld,\"accept_seconds\":%.4f,"
      "\"accepted_per_s\":%.0f,\"workers\":%d,\"drain_seconds\":%.4f,\"completed_per_s\":%.0f,"
      "\"latency_jobs\":%ld,\"ack_ms\":{\"p50\":%.4f,\"p99\":%.4f,\"max\":%.4f},"
      "\"dispatch_ms\":{\"p50\":%.4f,\"p99\":%.4f,\"max\":%.4f}}\n",
      b.jobs, b.clients, b.window, errors, accept_s, (double)acked / accept_s, b.workers, drain_s,
      (double)acked / drain_s, b.latency_jobs, pct(ack_ns, b.latency_jobs, 0.5), pct(ack_ns, b.latency_jobs, 0.99),
      pct(ack_ns, b.latency_jobs, 1.0), pct(disp_ns, b.latency_jobs, 0.5), pct(disp_ns, b.latency_jobs, 0.99),
      pct(disp_ns, b.latency_jobs, 1.0));
  for (int i = 0; i < b.clients; i++) zmq_close(cs[i]);
  zmq_close(seen);
  zmq_ctx_term(ctx);
  free(ack_ns);
  free(disp_ns);
  free(b.job_seen_ns);
  return errors ? 1 : 0;
}
