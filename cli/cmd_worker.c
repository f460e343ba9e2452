/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel worker --broker E --storage URL [--model DIR ...] [...]`: a queue
 * worker (pipeline/: reel/worker.h). It announces its capabilities, takes jobs,
 * runs each one (model from its cache → text encoder → denoising → VAE →
 * encoder → storage) into STORAGE/<job id>.<ext> (or STORAGE/<spec output key>),
 * reports progress and the result, and honours cancels at step and frame
 * boundaries. Output keys depend only on the job, so a job that runs twice
 * overwrites the same object.
 *
 * SIGINT/SIGTERM: stop taking jobs, finish the ones in hand, report them, leave.
 * Exit status: 0 after a signal (or --max-jobs), 2 bad usage, 1 could not start.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "queue_common.h"
#include "reel/generate.h"
#include "reel/protocol.h"
#include "reel/worker.h"
#include "worker_flags.h"
#ifdef REEL_HAVE_ENCODER
#include "reel/encoder.h"
#endif

enum {
  OPT_NAME = QF_END,
  OPT_HEARTBEAT,
};

static const struct option own_options[] = {
    {"name", required_argument, NULL, OPT_NAME},
    {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static reel_worker *volatile running_worker;

static void on_signal(int sig) {
  (void)sig;
  if (running_worker) reel_worker_stop(running_worker);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: reel worker --broker ENDPOINT --storage URL [--model DIR ...] [options]\n"
          "\n"
          "Runs jobs from a broker and writes each clip to STORAGE/<job id>.<ext>.\n"
          "\n"
          "  --name NAME         worker name, stable across restarts (default HOST-PID)\n"
          "  --heartbeat-ms N    until the broker's WELCOME says otherwise (default 2500)\n"
          "  -v, --verbose       log at info level (twice: debug)\n"
          "  -h, --help          this help\n"
          "\n");
  worker_flags_usage(f);
  fprintf(f, "\n");
  queue_flags_usage(f);
}

static int bad(const char *flag, const char *msg) {
  fprintf(stderr, "reel worker: %s: %s\nRun 'reel worker --help' for usage.\n", flag, msg);
  return 2;
}

int cmd_worker(int argc, char **argv) {
  queue_flags q;
  queue_flags_init(&q);
  struct option table[96];
  size_t n = queue_flags_table(own_options, 0, table, sizeof table / sizeof table[0]);
  if (!n || !worker_flags_append(table, n, sizeof table / sizeof table[0])) return 1;
  reel_worker_options o;
  reel_worker_options_init(&o);
  const char *name = NULL;
  long v;
  optind = 1;
  opterr = 0;
  for (;;) {
    int c = getopt_long(argc, argv, ":vh", table, NULL);
    if (c == -1) break;
    int a = queue_flags_apply(&q, c, optarg, "worker");
    if (a < 0) return 2;
    if (a > 0) continue;
    a = worker_flags_apply(&o, c, optarg, "worker");
    if (a < 0) return 2;
    if (a > 0) continue;
    switch (c) {
      case OPT_NAME:
        name = optarg;
        break;
      case OPT_HEARTBEAT:
        if (queue_parse_int("worker", "--heartbeat-ms", optarg, 10, 600000, &v)) return 2;
        o.heartbeat_ms = (int)v;
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
  if (!q.broker || !q.broker[0]) return bad("--broker", "no broker endpoint (give --broker or set REEL_BROKER)");
  int rc = worker_flags_finish(&o, "worker");
  if (rc) return rc;
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
  o.endpoint = q.broker;
  o.name = name;
  o.log = &q.log;
  if (q.server.public_key[0]) {
    o.broker_public_key = q.server.public_key;
    o.public_key = q.own.public_key;
    o.secret_key = q.own.secret_key;
  }
  reel_worker *w = NULL;
  reel_error err;
  reel_error_clear(&err);
  reel_status st = reel_worker_new(&o, &w, &err);
  if (st) {
    fprintf(stderr, "reel worker: %s: %s (%s)\n", err.field, err.msg, reel_status_name(st));
    return st == REEL_EINVAL || st == REEL_ERANGE ? 2 : 1;
  }
  running_worker = w;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  fprintf(stderr, "reel worker: %s serving %s%s for %s, clips to %s\n", name,
          o.nmodels ? o.models[0] : reel_default_model(), o.nmodels > 1 ? " and more" : "", q.broker, o.storage);
  st = reel_worker_run(w, &err);
  running_worker = NULL;
  reel_worker_destroy(&w);
  if (st) {
    fprintf(stderr, "reel worker: %s: %s (%s)\n", err.field, err.msg, reel_status_name(st));
    return 1;
  }
  return 0;
}
