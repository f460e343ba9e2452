/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel bench queue`: the queue's own overhead, measured with the libraries a
 * deployment runs: a broker (reel/broker.h) in this process with its journal on
 * a temporary directory (fdatasync per group commit) or off, clients of the C
 * client library (reel/client.h), and instant workers on the worker connector
 * (reel/worker_conn.h) that finish every job the moment it arrives. Three phases,
 * as tools/bench_queue.py's load generator measures a broker (which stays the
 * tool for the RabbitMQ comparison):
 *
 *   accept    N submits from K client threads, one outstanding each (the client
 *             library is synchronous); rate of ACCEPTED, each one durable first
 *   drain     M instant workers empty the backlog; rate of completed jobs
 *   latency   L jobs one at a time on the idle queue: submit → ACCEPTED (ack) and
 *             submit → the job handed to a worker (dispatch); p50/p99/max
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cli.h"
#include "reel/alloc.h"
#include "reel/broker.h"
#include "reel/client.h"
#include "reel/clock.h"
#include "reel/protocol.h"
#include "reel/worker_conn.h"

#define MAX_THREADS     64
#define WORKER_CAPACITY 16

static const char *verb = "bench queue";

enum { OPT_JSON = 0x2000, OPT_JOBS, OPT_JOURNAL, OPT_CLIENTS, OPT_WORKERS, OPT_LATENCY };

static const struct option queue_options[] = {{"help", no_argument, NULL, 'h'},
                                              {"json", no_argument, NULL, OPT_JSON},
                                              {"jobs", required_argument, NULL, OPT_JOBS},
                                              {"journal", required_argument, NULL, OPT_JOURNAL},
                                              {"clients", required_argument, NULL, OPT_CLIENTS},
                                              {"workers", required_argument, NULL, OPT_WORKERS},
                                              {"latency-jobs", required_argument, NULL, OPT_LATENCY},
                                              {NULL, 0, NULL, 0}};

static void queue_usage(FILE *f) {
  fprintf(f,
          "usage: reel bench queue [options]\n"
          "\n"
          "Durable accepts/s, drain rate and ack/dispatch latency of an in-process broker with\n"
          "instant in-process workers (the libraries reel broker / reel worker run).\n"
          "\n"
          "options:\n"
          "  --jobs N           jobs submitted in the accept phase, 1..1000000 (default 2000)\n"
          "  --journal on|off   journal on a temporary directory with fdatasync (default on), or in memory\n"
          "  --clients K        client threads, one outstanding submit each, 1..%d (default 8)\n"
          "  --workers M        instant workers (capacity %d each), 1..%d (default 4)\n"
          "  --latency-jobs L   jobs one at a time for the latency phase, 0..100000 (default min(N, 500))\n"
          "  --json             one JSON object on stdout (fields: docs/bench.md)\n"
          "  -h, --help         this help\n",
          MAX_THREADS, WORKER_CAPACITY, MAX_THREADS);
}

typedef struct qbench {
  char endpoint[256];
  long jobs, latency_jobs;
  int clients, workers;
  const reel_logger *log;
  /* accept phase */
  atomic_long next_seq; /* next job number to submit */
  atomic_long accepted, errors;
  pthread_mutex_t mu;
  char first_error[640];
  /* workers */
  atomic_int stop;
  atomic_long completed;
  long latency_base; /* job number of latency sample 0 (written before those jobs exist) */
  int64_t *seen_ns;  /* per latency sample: when a worker got its job (0 = not yet); guarded by mu */
  pthread_cond_t seen_cv;
  atomic_int worker_failed;
} qbench;

static json_t *job_spec(long seq) {
  char prompt[128];
  snprintf(prompt, sizeof prompt, "b%ld a lighthouse on a cliff at dusk, waves, slow dolly in", seq);
  return json_pack("{s:s, s:s, s:i, s:i, s:i, s:s}", "prompt", prompt, "model", "builtin:testsrc", "frames", 16,
                   "width", 320, "height", 240, "class", "batch");
}

static void note_error(qbench *q, const reel_error *err) {
  pthread_mutex_lock(&q->mu);
  if (!q->first_error[0]) snprintf(q->first_error, sizeof q->first_error, "%s: %s", err->field, err->msg);
  pthread_mutex_unlock(&q->mu);
}

static reel_status new_client(const qbench *q, reel_client **c, reel_error *err) {
  reel_client_options o;
  reel_client_options_init(&o);
  o.endpoint = q->endpoint;
  o.tenant = "bench";
  o.log = q->log;
  return reel_client_new(&o, c, err);
}

/* Accept phase: submits jobs until N were taken, one outstanding at a time. */
static void *client_main(void *arg) {
  qbench *q = arg;
  reel_client *c = NULL;
  reel_error err;
  reel_error_clear(&err);
  if (new_client(q, &c, &err) != REEL_OK) {
    note_error(q, &err);
    for (long s; (s = atomic_fetch_add(&q->next_seq, 1)) < q->jobs;) atomic_fetch_add(&q->errors, 1);
    return NULL;
  }
  for (long s; (s = atomic_fetch_add(&q->next_seq, 1)) < q->jobs;) {
    json_t *spec = job_spec(s), *acc = NULL;
    reel_error_clear(&err);
    reel_status st =
        spec ? reel_client_submit(c, spec, &acc, &err) : reel_error_set(&err, REEL_ENOMEM, "job", "out of memory");
    json_decref(spec);
    json_decref(acc);
    if (st == REEL_OK) {
      atomic_fetch_add(&q->accepted, 1);
    } else {
      atomic_fetch_add(&q->errors, 1);
      note_error(q, &err);
    }
  }
  reel_client_destroy(&c);
  return NULL;
}

/* An instant worker: every job is finished as succeeded the moment it arrives. */
static void *worker_main(void *arg) {
  void **a = arg;
  qbench *q = a[0];
  reel_worker_conn *w = a[1];
  json_t *outputs = json_array();
  while (!atomic_load(&q->stop)) {
    reel_worker_job *job = NULL;
    if (reel_worker_conn_next(w, 50, &job, NULL) != REEL_OK || !job) continue;
    const int64_t now = reel_now_ns();
    const char *p = job->spec.prompt;
    if (p && p[0] == 'b') {
      long k = strtol(p + 1, NULL, 10) - q->latency_base;
      if (k >= 0 && k < q->latency_jobs) {
        pthread_mutex_lock(&q->mu);
        q->seen_ns[k] = now;
        pthread_cond_broadcast(&q->seen_cv);
        pthread_mutex_unlock(&q->mu);
      }
    }
    if (reel_worker_conn_finish(w, &job, REEL_JOB_SUCCEEDED, outputs, NULL, 0, NULL, 0, 0) != REEL_OK)
      atomic_store(&q->worker_failed, 1);
    atomic_fetch_add(&q->completed, 1);
  }
  json_decref(outputs);
  return NULL;
}

static void *broker_main(void *arg) {
  reel_broker *b = arg;
  reel_error err;
  reel_error_clear(&err);
  if (reel_broker_run(b, &err) != REEL_OK) fprintf(stderr, "reel bench queue: broker: %s: %s\n", err.field, err.msg);
  return NULL;
}

/* queued + running at the broker, or -1. */
static long backlog(reel_client *c) {
  json_t *h = json_object(), *reply = NULL;
  long n = -1;
  if (h && reel_client_request(c, "STATS", h, &reply, NULL) == REEL_OK)
    n = (long)(json_integer_value(json_object_get(reply, "queued")) +
               json_integer_value(json_object_get(reply, "running")));
  json_decref(h);
  json_decref(reply);
  return n;
}

static long journal_commits(reel_client *c) {
  json_t *h = json_object(), *reply = NULL;
  long n = -1;
  if (h && reel_client_request(c, "STATS", h, &reply, NULL) == REEL_OK)
    n = (long)json_integer_value(json_object_get(reply, "journal_commits"));
  json_decref(h);
  json_decref(reply);
  return n;
}

static json_t *ms_stats(const int64_t *ns, long n) {
  double *v = reel_malloc((size_t)(n ? n : 1) * sizeof *v);
  if (!v) return NULL;
  for (long i = 0; i < n; i++) v[i] = (double)ns[i] / 1e6;
  bench_stats s;
  int bad = bench_stats_of(v, (int)n, &s);
  reel_free(v);
  return bad ? NULL : bench_stats_json(&s);
}

int bench_queue_main(int argc, char **argv) {
  long jobs = 2000, latency = -1, clients = 8, workers = 4;
  int json = 0, journal = 1, rc = 1;
  optind = 1;
  opterr = 0;
  for (int o; (o = getopt_long(argc, argv, ":h", queue_options, NULL)) != -1;) {
    switch (o) {
      case 'h':
        queue_usage(stdout);
        return 0;
      case OPT_JSON:
        json = 1;
        break;
      case OPT_JOBS:
        if (bench_parse_int(verb, "--jobs", optarg, 1, 1000000, &jobs)) return 2;
        break;
      case OPT_JOURNAL:
        if (strcmp(optarg, "on") && strcmp(optarg, "off"))
          return bench_usage_error(verb, "--journal", "must be on or off");
        journal = !strcmp(optarg, "on");
        break;
      case OPT_CLIENTS:
        if (bench_parse_int(verb, "--clients", optarg, 1, MAX_THREADS, &clients)) return 2;
        break;
      case OPT_WORKERS:
        if (bench_parse_int(verb, "--workers", optarg, 1, MAX_THREADS, &workers)) return 2;
        break;
      case OPT_LATENCY:
        if (bench_parse_int(verb, "--latency-jobs", optarg, 0, 100000, &latency)) return 2;
        break;
      case ':': {
        char msg[160];
        snprintf(msg, sizeof msg, "option '%.60s' needs a value", argv[optind - 1]);
        return bench_usage_error(verb, NULL, msg);
      }
      default: {
        char msg[160];
        snprintf(msg, sizeof msg, "unknown option '%.60s'", argv[optind - 1]);
        return bench_usage_error(verb, NULL, msg);
      }
    }
  }
  if (optind < argc) {
    char msg[160];
    snprintf(msg, sizeof msg, "unexpected argument '%.60s'", argv[optind]);
    return bench_usage_error(verb, NULL, msg);
  }
  if (latency < 0) latency = jobs < 500 ? jobs : 500;

  qbench q;
  memset(&q, 0, sizeof q);
  q.jobs = jobs;
  q.latency_jobs = latency;
  q.clients = (int)clients;
  q.workers = (int)workers;
  q.latency_base = jobs; /* the latency phase's jobs are numbered after the accept phase's */
  pthread_mutex_init(&q.mu, NULL);
  pthread_cond_init(&q.seen_cv, NULL);
  reel_logger lg;
  reel_logger_init(&lg, REEL_LOG_ERROR, REEL_LOG_TEXT, 2);
  q.log = &lg;

  char dir[512] = "";
  reel_broker *broker = NULL;
  reel_client *c0 = NULL;
  reel_worker_conn *conns[MAX_THREADS] = {0};
  pthread_t broker_th, th[MAX_THREADS], wth[MAX_THREADS];
  void *wargs[MAX_THREADS][2];
  int broker_started = 0, nworkers_started = 0;
  int64_t *ack_ns = reel_calloc((size_t)(latency ? latency : 1), sizeof *ack_ns);
  int64_t *disp_ns = reel_calloc((size_t)(latency ? latency : 1), sizeof *disp_ns);
  q.seen_ns = reel_calloc((size_t)(latency ? latency : 1), sizeof *q.seen_ns);
  reel_error err;
  reel_error_clear(&err);
  if (!ack_ns || !disp_ns || !q.seen_ns) {
    fprintf(stderr, "reel %s: out of memory\n", verb);
    goto out;
  }
  if (journal && bench_mkdtemp(dir, sizeof dir, "reel-bench-journal")) {
    fprintf(stderr, "reel %s: cannot create a temporary journal directory\n", verb);
    goto out;
  }
  reel_broker_options bo;
  reel_broker_options_init(&bo);
  bo.listen = "tcp://127.0.0.1:*";
  bo.journal_dir = journal ? dir : NULL;
  bo.max_queued_per_tenant = (int)(jobs + latency + 16);
  bo.log = &lg;
  if (reel_broker_new(&bo, &broker, &err) != REEL_OK) {
    fprintf(stderr, "reel %s: broker: %s: %s\n", verb, err.field, err.msg);
    goto out;
  }
  snprintf(q.endpoint, sizeof q.endpoint, "%s", reel_broker_endpoint(broker));
  if (pthread_create(&broker_th, NULL, broker_main, broker) != 0) {
    fprintf(stderr, "reel %s: cannot start the broker thread\n", verb);
    goto out;
  }
  broker_started = 1;
  if (new_client(&q, &c0, &err) != REEL_OK || backlog(c0) < 0) {
    fprintf(stderr, "reel %s: client: %s\n", verb, err.msg[0] ? err.msg : "the broker does not answer");
    goto out;
  }
  const long commits0 = journal_commits(c0);

  /* Accept. */
  int64_t t0 = reel_now_ns();
  int started = 0;
  for (; started < q.clients; started++)
    if (pthread_create(&th[started], NULL, client_main, &q) != 0) break;
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  const double accept_s = (double)(reel_now_ns() - t0) / 1e9;
  if (started == 0) {
    fprintf(stderr, "reel %s: cannot start client threads\n", verb);
    goto out;
  }
  const long accepted = atomic_load(&q.accepted), errors = atomic_load(&q.errors);
  const long commits = journal_commits(c0) - commits0;

  /* Drain: instant workers empty the queue. */
  t0 = reel_now_ns();
  for (; nworkers_started < q.workers; nworkers_started++) {
    reel_worker_conn_options wo;
    reel_worker_conn_options_init(&wo);
    char name[32];
    snprintf(name, sizeof name, "bench-%d", nworkers_started);
    wo.endpoint = q.endpoint;
    wo.name = name;
    wo.capacity = WORKER_CAPACITY;
    wo.log = &lg;
    reel_error_clear(&err);
    if (reel_worker_conn_new(&wo, &conns[nworkers_started], &err) != REEL_OK) break;
    wargs[nworkers_started][0] = &q;
    wargs[nworkers_started][1] = conns[nworkers_started];
    if (pthread_create(&wth[nworkers_started], NULL, worker_main, wargs[nworkers_started]) != 0) {
      reel_worker_conn_destroy(&conns[nworkers_started], 0);
      break;
    }
  }
  if (nworkers_started < q.workers) {
    fprintf(stderr, "reel %s: cannot start worker %d: %s\n", verb, nworkers_started, err.msg);
    goto out;
  }
  for (;;) {
    long n = atomic_load(&q.completed) >= accepted ? backlog(c0) : 1;
    if (n == 0) break;
    if (n < 0) {
      fprintf(stderr, "reel %s: the broker stopped answering during the drain\n", verb);
      goto out;
    }
    reel_sleep_ms(2);
  }
  const double drain_s = (double)(reel_now_ns() - t0) / 1e9;

  /* Latency: one job at a time on the idle queue. */
  long lat_errors = 0;
  for (long k = 0; k < latency; k++) {
    json_t *spec = job_spec(jobs + k), *acc = NULL;
    reel_error_clear(&err);
    const int64_t ts = reel_now_ns();
    reel_status st = spec ? reel_client_submit(c0, spec, &acc, &err) : REEL_ENOMEM;
    ack_ns[k] = reel_now_ns() - ts;
    json_decref(spec);
    json_decref(acc);
    if (st != REEL_OK) {
      lat_errors++;
      note_error(&q, &err);
      continue;
    }
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&q.mu);
    int timed_out = 0;
    while (!q.seen_ns[k] && !timed_out) timed_out = pthread_cond_timedwait(&q.seen_cv, &q.mu, &until) != 0;
    disp_ns[k] = q.seen_ns[k] - ts;
    pthread_mutex_unlock(&q.mu);
    if (timed_out) {
      fprintf(stderr, "reel %s: latency job %ld was accepted but no worker got it within 30 s\n", verb, k);
      goto out;
    }
  }

  bench_machine mc;
  bench_machine_get(&mc);
  json_t *o = json_object();
  if (o) {
    json_object_set_new(o, "bench", json_string("queue"));
    json_object_set_new(o, "reel_version", json_string(REEL_VERSION_STRING));
    json_object_set_new(o, "machine", bench_machine_json(&mc));
    json_object_set_new(
        o, "config",
        json_pack("{s:I, s:i, s:i, s:i, s:I, s:s, s:s}", "jobs", (json_int_t)jobs, "clients", q.clients, "workers",
                  q.workers, "worker_capacity", WORKER_CAPACITY, "latency_jobs", (json_int_t)latency, "journal",
                  journal ? "on" : "off", "sync", journal ? "fdatasync" : "none"));
    json_object_set_new(
        o, "accept",
        json_pack("{s:f, s:I, s:I, s:f, s:I, s:f}", "seconds", accept_s, "accepted", (json_int_t)accepted, "errors",
                  (json_int_t)errors, "per_second", accept_s > 0 ? accepted / accept_s : 0.0, "journal_commits",
                  (json_int_t)commits, "jobs_per_commit", commits > 0 ? (double)accepted / commits : 0.0));
    json_object_set_new(o, "drain",
                        json_pack("{s:f, s:I, s:f}", "seconds", drain_s, "completed", (json_int_t)accepted,
                                  "per_second", drain_s > 0 ? accepted / drain_s : 0.0));
    json_object_set_new(o, "latency",
                        json_pack("{s:I, s:I, s:o, s:o}", "jobs", (json_int_t)latency, "errors", (json_int_t)lat_errors,
                                  "ack_ms", ms_stats(ack_ns, latency), "dispatch_ms", ms_stats(disp_ns, latency)));
  }
  char *text = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
  if (!text) {
    json_decref(o);
    fprintf(stderr, "reel %s: out of memory\n", verb);
    goto out;
  }
  if (json) {
    printf("%s\n", text);
  } else {
    json_t *lat = json_object_get(o, "latency");
    json_t *ack = json_object_get(lat, "ack_ms"), *disp = json_object_get(lat, "dispatch_ms");
    printf("reel bench queue (reel %s)\n", REEL_VERSION_STRING);
    bench_machine_print(stdout, &mc);
    printf(
        "config:   %ld jobs, %d client threads (one outstanding submit each), %d instant workers (capacity %d), "
        "journal %s\n",
        jobs, q.clients, q.workers, WORKER_CAPACITY, journal ? "on (fdatasync per group commit)" : "off");
    printf("accept:   %.0f jobs/s %s (%ld accepted, %ld errors in %.3f s", accept_s > 0 ? accepted / accept_s : 0.0,
           journal ? "durable" : "in memory", accepted, errors, accept_s);
    if (journal) printf("; %.1f jobs per journal commit", commits > 0 ? (double)accepted / commits : 0.0);
    printf(")\n");
    printf("drain:    %.0f jobs/s completed by instant workers (%.3f s)\n", drain_s > 0 ? accepted / drain_s : 0.0,
           drain_s);
    if (latency > 0) {
      printf("latency:  %ld jobs one at a time\n", latency);
      printf("  ack      p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", json_real_value(json_object_get(ack, "p50")),
             json_real_value(json_object_get(ack, "p99")), json_real_value(json_object_get(ack, "max")));
      printf("  dispatch p50 %.3f ms  p99 %.3f ms  max %.3f ms\n", json_real_value(json_object_get(disp, "p50")),
             json_real_value(json_object_get(disp, "p99")), json_real_value(json_object_get(disp, "max")));
    }
  }
  free(text);
  json_decref(o);
  if (errors || lat_errors || atomic_load(&q.worker_failed)) {
    fprintf(stderr, "reel %s: %ld submits failed%s%s\n", verb, errors + lat_errors, q.first_error[0] ? ": " : "",
            q.first_error);
    rc = 1;
  } else {
    rc = 0;
  }
out:
  atomic_store(&q.stop, 1);
  for (int i = 0; i < nworkers_started; i++) pthread_join(wth[i], NULL);
  for (int i = 0; i < nworkers_started; i++) reel_worker_conn_destroy(&conns[i], 200);
  reel_client_destroy(&c0);
  if (broker_started) {
    reel_broker_stop(broker);
    pthread_join(broker_th, NULL);
  }
  reel_broker_destroy(&broker);
  if (dir[0]) bench_rmtree(dir);
  reel_free(ack_ns);
  reel_free(disp_ns);
  reel_free(q.seen_ns);
  pthread_cond_destroy(&q.seen_cv);
  pthread_mutex_destroy(&q.mu);
  return rc;
}
