/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel worker --broker E --storage URL [--model M] [...]`: a queue worker. It
 * announces its capabilities, takes jobs, runs each through reel_generate()
 * (pipeline/: frames → encoder → sink) into STORAGE/<job id>.<ext> (or
 * STORAGE/<spec output key>), reports progress and the result, and honours
 * cancels at frame/step boundaries. Output keys depend only on the job, so a job
 * that runs twice overwrites the same object.
 *
 * SIGINT/SIGTERM: stop taking jobs, finish the running ones, report them, leave.
 * Exit status: 0 after a signal, 2 bad usage, 1 could not start.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "queue_common.h"
#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/generate.h"
#include "reel/protocol.h"
#include "reel/worker_conn.h"
#ifdef REEL_HAVE_ENCODER
#include "reel/encoder.h"
#endif

enum {
  OPT_STORAGE = QF_END,
  OPT_MODEL,
  OPT_NAME,
  OPT_CAPACITY,
  OPT_REGION,
  OPT_LABEL,
  OPT_MAX_WIDTH,
  OPT_MAX_HEIGHT,
  OPT_MAX_FRAMES,
  OPT_THREADS,
  OPT_HEARTBEAT,
  OPT_MAX_JOBS,
};

static const struct option own_options[] = {
    {"storage", required_argument, NULL, OPT_STORAGE},
    {"model", required_argument, NULL, OPT_MODEL},
    {"name", required_argument, NULL, OPT_NAME},
    {"capacity", required_argument, NULL, OPT_CAPACITY},
    {"region", required_argument, NULL, OPT_REGION},
    {"label", required_argument, NULL, OPT_LABEL},
    {"max-width", required_argument, NULL, OPT_MAX_WIDTH},
    {"max-height", required_argument, NULL, OPT_MAX_HEIGHT},
    {"max-frames", required_argument, NULL, OPT_MAX_FRAMES},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
    {"max-jobs", required_argument, NULL, OPT_MAX_JOBS},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

typedef struct worker_ctx {
  reel_worker_conn *conn;
  const char *storage; /* root URL without a trailing '/' */
  const char *default_model;
  const reel_logger *log;
  int threads;
  long max_jobs; /* 0 = unlimited (tests) */
  pthread_mutex_t mu;
  long started;
} worker_ctx;

typedef struct job_run {
  worker_ctx *w;
  reel_worker_job *job;
  int canceled;
} job_run;

static void usage(FILE *f) {
  fprintf(f,
          "usage: reel worker --broker ENDPOINT --storage URL [options]\n"
          "\n"
          "Runs jobs from a broker and writes each clip to STORAGE/<job id>.<ext>.\n"
          "\n"
          "  --storage URL       where clips go: file:///abs/dir (or a directory path), s3://bucket/prefix\n"
          "  --model NAME        a model this worker serves (repeatable; default builtin:testsrc)\n"
          "  --name NAME         worker name, stable across restarts (default HOST-PID)\n"
          "  --capacity N        jobs at once, 1..64 (default 1)\n"
          "  --region NAME       region this worker is in; --label NAME (repeatable) other labels\n"
          "  --max-width N, --max-height N, --max-frames N   largest jobs this worker takes\n"
          "  --threads N         encoder threads per job (0 = automatic)\n"
          "  --heartbeat-ms N    until the broker's WELCOME says otherwise (default 2500)\n"
          "  --max-jobs N        leave after N jobs (0 = never)\n"
          "  -v, --verbose       log at info level (twice: debug)\n"
          "  -h, --help          this help\n"
          "\n");
  queue_flags_usage(f);
}

static int bad(const char *flag, const char *msg) {
  fprintf(stderr, "reel worker: %s: %s\nRun 'reel worker --help' for usage.\n", flag, msg);
  return 2;
}

static const char *stage_name(const char *s) {
  if (!strcmp(s, "denoise")) return "denoising";
  if (!strcmp(s, "encode")) return "encoding";
  if (!strcmp(s, "finish")) return "uploading";
  return s;
}

static int on_progress(const reel_progress *p, void *user) {
  job_run *r = user;
  double fraction = 0;
  int step = p->frames_done, steps = p->frames_total;
  if (p->steps_total > 0 && !strcmp(p->stage, "denoise")) {
    step = p->steps_done;
    steps = p->steps_total;
    fraction = 0.9 * p->steps_done / p->steps_total;
  } else if (p->frames_total > 0) {
    fraction =
        (p->steps_total > 0 ? 0.9 : 0.0) + (p->steps_total > 0 ? 0.1 : 1.0) * p->frames_done / (double)p->frames_total;
  }
  if (!strcmp(p->stage, "finish")) fraction = 0.99;
  int64_t eta = -1;
  if (fraction > 0.01 && p->elapsed_seconds > 0) eta = (int64_t)(p->elapsed_seconds * (1 - fraction) / fraction * 1000);
  if (reel_worker_conn_progress(r->w->conn, r->job, stage_name(p->stage), step, steps, fraction, eta) ==
      REEL_ECANCELED) {
    r->canceled = 1;
    return 1;
  }
  return 0;
}

static const char *container_ext(reel_container c) {
  switch (c) {
    case REEL_CONTAINER_WEBM:
      return ".webm";
    case REEL_CONTAINER_MKV:
      return ".mkv";
    default:
      return ".mp4";
  }
}

static const char *content_type(reel_container c) {
  switch (c) {
    case REEL_CONTAINER_WEBM:
      return "video/webm";
    case REEL_CONTAINER_MKV:
      return "video/x-matroska";
    default:
      return "video/mp4";
  }
}

/* A spec's "output" is a key under the storage root: relative, no "..", no scheme. */
static int valid_key(const char *k) {
  if (!k[0] || k[0] == '/' || strstr(k, "://") || strlen(k) > 512) return 0;
  for (const char *p = k; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == '\\') return 0;
  const char *p = k;
  while (p) {
    if (!strncmp(p, "..", 2) && (p[2] == '/' || p[2] == '\0')) return 0;
    p = strchr(p, '/');
    if (p) p++;
  }
  return 1;
}

static void run_job(worker_ctx *w, reel_worker_job *job) {
  job_run r = {w, job, 0};
  reel_error err;
  reel_error_clear(&err);
  reel_jobspec spec;
  reel_jobspec_init(&spec);
  char url[2048];
  json_t *outputs = NULL, *timings = NULL;
  int state = REEL_JOB_FAILED, retry = 0;
  reel_generate_result res;
  memset(&res, 0, sizeof res);
  reel_status st = reel_jobspec_copy(&spec, &job->spec);
  if (st) {
    reel_error_set(&err, st, "job", "out of memory");
    goto done;
  }
  if (!spec.model && (st = reel_jobspec_set_str(&spec.model, w->default_model))) {
    reel_error_set(&err, st, "job", "out of memory");
    goto done;
  }
  if (spec.output) {
    if (!valid_key(spec.output)) {
      reel_error_set(&err, REEL_EINVAL, "job.output",
                     "must be a relative key under the worker's storage (no scheme, no leading '/', no '..')");
      goto done;
    }
    snprintf(url, sizeof url, "%s/%s", w->storage, spec.output);
  } else {
    snprintf(url, sizeof url, "%s/%s%s", w->storage, job->id, container_ext(spec.container));
  }
  reel_log(w->log, REEL_LOG_INFO, "worker", job->id, "job started", "attempt=%d url=%s", job->attempt, url);
  reel_generate_options go;
  memset(&go, 0, sizeof go);
  go.log = w->log;
  go.job_id = job->id;
  go.progress = on_progress;
  go.progress_user = &r;
  go.threads = w->threads;
  st = reel_generate(&spec, url, &go, &res, &err);
  if (st == REEL_OK) {
    state = REEL_JOB_SUCCEEDED;
    outputs = json_pack("[{s:s, s:I, s:s, s:s}]", "url", res.url, "bytes", (json_int_t)res.bytes, "content_type",
                        content_type(spec.container), "sha256", res.sha256);
    timings = json_pack("{s:f, s:f, s:f, s:f}", "total_s", res.seconds_total, "render_s", res.seconds_render,
                        "encode_s", res.seconds_encode, "commit_s", res.seconds_commit);
  } else if (st == REEL_ECANCELED && r.canceled) {
    state = REEL_JOB_CANCELED;
  } else {
    retry = st == REEL_ESTORAGE || st == REEL_ENETWORK || st == REEL_EIO;
  }
done:
  if (state != REEL_JOB_SUCCEEDED) reel_log_error(w->log, REEL_LOG_INFO, "worker", job->id, &err);
  reel_status fst = reel_worker_conn_finish(w->conn, &job, state, outputs, &err, retry, timings,
                                            state == REEL_JOB_SUCCEEDED, res.seed);
  for (int i = 0; fst == REEL_ENOMEM && i < 100; i++) {
    reel_sleep_ms(100);
    fst = reel_worker_conn_finish(w->conn, &job, state, outputs, &err, retry, timings, state == REEL_JOB_SUCCEEDED,
                                  res.seed);
  }
  reel_log(w->log, REEL_LOG_INFO, "worker", NULL, "job finished", "state=%s", reel_job_state_names[state]);
  if (outputs) json_decref(outputs);
  if (timings) json_decref(timings);
  reel_jobspec_fini(&spec);
}

static void *render_loop(void *arg) {
  worker_ctx *w = arg;
  while (!stopping) {
    pthread_mutex_lock(&w->mu);
    int done = w->max_jobs && w->started >= w->max_jobs;
    pthread_mutex_unlock(&w->mu);
    if (done) break;
    reel_worker_job *job = NULL;
    reel_error err;
    reel_error_clear(&err);
    if (reel_worker_conn_next(w->conn, 200, &job, &err) != REEL_OK) continue;
    pthread_mutex_lock(&w->mu);
    w->started++;
    pthread_mutex_unlock(&w->mu);
    run_job(w, job);
  }
  return NULL;
}

#define MAX_LIST 16

int cmd_worker(int argc, char **argv) {
  queue_flags q;
  queue_flags_init(&q);
  struct option table[64];
  if (!queue_flags_table(own_options, 0, table, sizeof table / sizeof table[0])) return 1;
  const char *storage = NULL, *name = NULL, *region = NULL;
  const char *models[MAX_LIST], *labels[MAX_LIST];
  int nmodels = 0, nlabels = 0, capacity = 1, threads = 0, heartbeat = 2500;
  long max_w = 0, max_h = 0, max_f = 0, max_jobs = 0, v;
  optind = 1;
  opterr = 0;
  for (;;) {
    int c = getopt_long(argc, argv, ":vh", table, NULL);
    if (c == -1) break;
    int a = queue_flags_apply(&q, c, optarg, "worker");
    if (a < 0) return 2;
    if (a > 0) continue;
    switch (c) {
      case OPT_STORAGE:
        storage = optarg;
        break;
      case OPT_MODEL:
        if (nmodels == MAX_LIST) return bad("--model", "at most 16 times");
        models[nmodels++] = optarg;
        break;
      case OPT_NAME:
        name = optarg;
        break;
      case OPT_CAPACITY:
        if (queue_parse_int("worker", "--capacity", optarg, 1, 64, &v)) return 2;
        capacity = (int)v;
        break;
      case OPT_REGION:
        region = optarg;
        break;
      case OPT_LABEL:
        if (nlabels == MAX_LIST) return bad("--label", "at most 16 times");
        labels[nlabels++] = optarg;
        break;
      case OPT_MAX_WIDTH:
        if (queue_parse_int("worker", "--max-width", optarg, 16, 65536, &max_w)) return 2;
        break;
      case OPT_MAX_HEIGHT:
        if (queue_parse_int("worker", "--max-height", optarg, 16, 65536, &max_h)) return 2;
        break;
      case OPT_MAX_FRAMES:
        if (queue_parse_int("worker", "--max-frames", optarg, 1, 1 << 20, &max_f)) return 2;
        break;
      case OPT_THREADS:
        if (queue_parse_int("worker", "--threads", optarg, 0, 256, &v)) return 2;
        threads = (int)v;
        break;
      case OPT_HEARTBEAT:
        if (queue_parse_int("worker", "--heartbeat-ms", optarg, 10, 600000, &v)) return 2;
        heartbeat = (int)v;
        break;
      case OPT_MAX_JOBS:
        if (queue_parse_int("worker", "--max-jobs", optarg, 0, 1L << 40, &max_jobs)) return 2;
        break;
      case 'v':
        q.verbose++;
        break;
      case 'h':
        usage(stdout);
        return 0;
      case ':':
        return bad(argv[optind - 1], "needs a value");
      default:
        return bad(argv[optind - 1], "unknown option");
    }
  }
  if (optind < argc) return bad(argv[optind], "unexpected argument");
  if (!storage || !storage[0]) return bad("--storage", "required: where clips go (file:///abs/dir or s3://bucket)");
  if (!q.broker || !q.broker[0]) return bad("--broker", "no broker endpoint (give --broker or set REEL_BROKER)");
  if (region && !reel_proto_is_token(region, 64)) return bad("--region", "must be 1..64 printable characters");
  for (int i = 0; i < nlabels; i++)
    if (!reel_proto_is_token(labels[i], 64)) return bad("--label", "must be 1..64 printable characters");
  if (nmodels == 0) models[nmodels++] = reel_default_model();
  char root[1024];
  snprintf(root, sizeof root, "%s", storage);
  size_t rl = strlen(root);
  while (rl > 1 && root[rl - 1] == '/') root[--rl] = '\0';
  /* A local storage directory is created if missing (like mkdir -p). */
  const char *local = !strncmp(root, "file://", 7) ? root + 7 : strstr(root, "://") ? NULL : root;
  if (local && !strncmp(local, "localhost/", 10)) local += 9;
  if (local && local[0]) {
    char path[1024];
    snprintf(path, sizeof path, "%s", local);
    for (char *p = path + 1;; p++) {
      if (*p == '/' || *p == '\0') {
        char saved = *p;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
          fprintf(stderr, "reel worker: --storage: cannot create %s: %s\n", path, strerror(errno));
          return 1;
        }
        *p = saved;
        if (!saved) break;
      }
    }
  }
  char default_name[128];
  if (!name) {
    char host[64] = "worker";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
      if (*p == ' ' || (unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) *p = '-';
    snprintf(default_name, sizeof default_name, "%.40s-%ld", host, (long)getpid());
    name = default_name;
  }
  if (!reel_proto_is_token(name, REEL_PROTO_NAME_MAX)) return bad("--name", "must be 1..64 printable characters");
  if (queue_flags_keys(&q, "worker")) return 2;
  reel_logger_init(&q.log,
                   q.verbose >= 2 ? REEL_LOG_DEBUG
                   : q.verbose    ? REEL_LOG_INFO
                                  : REEL_LOG_WARN,
                   REEL_LOG_TEXT, 2);
#ifdef REEL_HAVE_ENCODER
  reel_ffmpeg_route_logs();
#endif
  json_t *caps = json_object(), *jm = json_array(), *jl = json_array();
  for (int i = 0; i < nmodels; i++) json_array_append_new(jm, json_string(models[i]));
  for (int i = 0; i < nlabels; i++) json_array_append_new(jl, json_string(labels[i]));
  json_object_set_new(caps, "models", jm);
  json_object_set_new(caps, "backends", json_pack("[s]", "cpu"));
  if (nlabels)
    json_object_set_new(caps, "labels", jl);
  else
    json_decref(jl);
  if (region) json_object_set_new(caps, "region", json_string(region));
  if (max_w) json_object_set_new(caps, "max_width", json_integer(max_w));
  if (max_h) json_object_set_new(caps, "max_height", json_integer(max_h));
  if (max_f) json_object_set_new(caps, "max_frames", json_integer(max_f));
  reel_worker_conn_options o;
  reel_worker_conn_options_init(&o);
  o.endpoint = q.broker;
  o.name = name;
  o.capacity = capacity;
  o.capabilities = caps;
  o.heartbeat_ms = heartbeat;
  o.log = &q.log;
  if (q.server.public_key[0]) {
    o.broker_public_key = q.server.public_key;
    o.public_key = q.own.public_key;
    o.secret_key = q.own.secret_key;
  }
  worker_ctx w;
  memset(&w, 0, sizeof w);
  pthread_mutex_init(&w.mu, NULL);
  w.storage = root;
  w.default_model = models[0];
  w.log = &q.log;
  w.threads = threads;
  w.max_jobs = max_jobs;
  reel_error err;
  reel_error_clear(&err);
  reel_status st = reel_worker_conn_new(&o, &w.conn, &err);
  json_decref(caps);
  if (st) {
    fprintf(stderr, "reel worker: %s: %s (%s)\n", err.field, err.msg, reel_status_name(st));
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  fprintf(stderr, "reel worker: %s serving %s (capacity %d) for %s, clips to %s\n", name, models[0], capacity, q.broker,
          root);
  pthread_t th[64];
  int nth = 0;
  for (int i = 0; i < capacity; i++)
    if (pthread_create(&th[nth], NULL, render_loop, &w) == 0) nth++;
  for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
  reel_worker_conn_destroy(&w.conn, 5000);
  pthread_mutex_destroy(&w.mu);
  return 0;
}
