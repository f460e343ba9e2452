/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel broker --listen ENDPOINT --journal DIR [--auth KEYDIR] [...]`: runs the
 * queue broker (queue/, docs/protocol.md) until SIGINT or SIGTERM.
 *
 * Exit status: 0 after a signal, 2 bad usage, 1 the broker could not start or
 * stopped on an error (a journal write failure stops it: nothing unacknowledged
 * is lost, a restart replays the journal).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "queue_common.h"
#include "reel/broker.h"

enum {
  OPT_LISTEN = 0x2000,
  OPT_JOURNAL,
  OPT_AUTH,
  OPT_HEARTBEAT,
  OPT_LIVENESS,
  OPT_ATTEMPTS,
  OPT_MAX_QUEUED,
  OPT_BURST,
  OPT_WEIGHT,
  OPT_COMPACT,
  OPT_RETAIN,
  OPT_MAX_HEADER,
  OPT_MAX_PAYLOAD,
  OPT_MAX_PROMPT,
  OPT_MAX_WIDTH,
  OPT_MAX_HEIGHT,
  OPT_MAX_FRAMES,
  OPT_MAX_STEPS,
  OPT_NO_FSYNC,
  OPT_ENDPOINT_FILE,
  OPT_LOG_JSON,
  OPT_GRACE,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"journal", required_argument, NULL, OPT_JOURNAL},
    {"auth", required_argument, NULL, OPT_AUTH},
    {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
    {"liveness", required_argument, NULL, OPT_LIVENESS},
    {"max-attempts", required_argument, NULL, OPT_ATTEMPTS},
    {"max-queued-per-tenant", required_argument, NULL, OPT_MAX_QUEUED},
    {"interactive-burst", required_argument, NULL, OPT_BURST},
    {"tenant-weight", required_argument, NULL, OPT_WEIGHT},
    {"compact-mb", required_argument, NULL, OPT_COMPACT},
    {"retain-finished", required_argument, NULL, OPT_RETAIN},
    {"max-header-bytes", required_argument, NULL, OPT_MAX_HEADER},
    {"max-payload-bytes", required_argument, NULL, OPT_MAX_PAYLOAD},
    {"max-prompt-bytes", required_argument, NULL, OPT_MAX_PROMPT},
    {"max-width", required_argument, NULL, OPT_MAX_WIDTH},
    {"max-height", required_argument, NULL, OPT_MAX_HEIGHT},
    {"max-frames", required_argument, NULL, OPT_MAX_FRAMES},
    {"max-steps", required_argument, NULL, OPT_MAX_STEPS},
    {"no-fsync", no_argument, NULL, OPT_NO_FSYNC},
    {"endpoint-file", required_argument, NULL, OPT_ENDPOINT_FILE},
    {"log-json", no_argument, NULL, OPT_LOG_JSON},
    {"restart-grace-ms", required_argument, NULL, OPT_GRACE},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static reel_broker *running_broker;

static void on_signal(int sig) {
  (void)sig;
  if (running_broker) reel_broker_stop(running_broker);
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: reel broker --journal DIR|off [--listen ENDPOINT] [--auth KEYDIR] [options]\n"
          "\n"
          "Runs the job queue broker. Clients (reel submit, the C and Python clients) and workers\n"
          "(reel worker) connect to it; the protocol is docs/protocol.md.\n"
          "\n"
          "  --listen ENDPOINT          ZeroMQ endpoint to bind (default tcp://*:5555)\n"
          "  --journal DIR|off          durable journal directory (created if missing); 'off' keeps jobs\n"
          "                             in memory only (not durable: benchmarks and experiments)\n"
          "  --auth KEYDIR              CURVE encryption + key allowlists: KEYDIR/broker.key,\n"
          "                             KEYDIR/clients/<tenant>/*.pub, KEYDIR/workers/*.pub\n"
          "  --heartbeat-ms N           heartbeat interval, 10..600000 (default 2500)\n"
          "  --liveness N               heartbeats missed before a peer is dead, 1..100 (default 3)\n"
          "  --max-attempts N           dispatches per job before it fails, 1..100 (default 3)\n"
          "  --restart-grace-ms N       after a restart, how long running jobs wait for their worker\n"
          "                             to reclaim them (default max(2 x heartbeat x liveness, 3000))\n"
          "  --max-queued-per-tenant N  (default 100000)\n"
          "  --interactive-burst N      interactive dispatches in a row before batch gets one\n"
          "                             while both wait, 1..1000 (default 9)\n"
          "  --tenant-weight NAME=W     fair-share weight of a tenant, 1..1000 (default 1; repeatable)\n"
          "  --compact-mb N             compact the journal past N MiB (default 64)\n"
          "  --retain-finished N        finished jobs kept for status and idempotency (default 10000)\n"
          "  --max-header-bytes N       (default 65536)   --max-payload-bytes N (default 1048576)\n"
          "  --max-prompt-bytes N       (default 8192)\n"
          "  --max-width N, --max-height N, --max-frames N, --max-steps N   job spec limits\n"
          "  --no-fsync                 commit the journal without fdatasync (benchmarks only)\n"
          "  --endpoint-file FILE       write the bound endpoint to FILE (useful with port *)\n"
          "  --log-json                 log JSON lines instead of text\n"
          "  -v, --verbose              log at info level (twice: debug)\n"
          "  -h, --help                 this help\n");
}

static int bad(const char *flag, const char *msg) {
  fprintf(stderr, "reel broker: %s: %s\nRun 'reel broker --help' for usage.\n", flag, msg);
  return 2;
}

#define MAX_WEIGHTS 64

int cmd_broker(int argc, char **argv) {
  reel_broker_options o;
  reel_broker_options_init(&o);
  o.listen = "tcp://*:5555";
  const char *journal = NULL, *endpoint_file = NULL;
  const char *weights[MAX_WEIGHTS];
  int nweights = 0, verbose = 0, log_json = 0;
  long v;
  optind = 1;
  opterr = 0;
  for (;;) {
    int c = getopt_long(argc, argv, ":vh", options, NULL);
    if (c == -1) break;
    switch (c) {
      case OPT_LISTEN:
        o.listen = optarg;
        break;
      case OPT_JOURNAL:
        journal = optarg;
        break;
      case OPT_AUTH:
        o.auth_dir = optarg;
        break;
      case OPT_HEARTBEAT:
        if (queue_parse_int("broker", "--heartbeat-ms", optarg, 10, 600000, &v)) return 2;
        o.heartbeat_ms = (int)v;
        break;
      case OPT_LIVENESS:
        if (queue_parse_int("broker", "--liveness", optarg, 1, 100, &v)) return 2;
        o.liveness = (int)v;
        break;
      case OPT_ATTEMPTS:
        if (queue_parse_int("broker", "--max-attempts", optarg, 1, 100, &v)) return 2;
        o.max_attempts = (int)v;
        break;
      case OPT_MAX_QUEUED:
        if (queue_parse_int("broker", "--max-queued-per-tenant", optarg, 1, 100000000, &v)) return 2;
        o.max_queued_per_tenant = (int)v;
        break;
      case OPT_BURST:
        if (queue_parse_int("broker", "--interactive-burst", optarg, 1, 1000, &v)) return 2;
        o.interactive_burst = (int)v;
        break;
      case OPT_WEIGHT:
        if (nweights == MAX_WEIGHTS) return bad("--tenant-weight", "at most 64 times");
        weights[nweights++] = optarg;
        break;
      case OPT_COMPACT:
        if (queue_parse_int("broker", "--compact-mb", optarg, 1, 1 << 20, &v)) return 2;
        o.compact_bytes = (uint64_t)v << 20;
        break;
      case OPT_RETAIN:
        if (queue_parse_int("broker", "--retain-finished", optarg, 0, 100000000, &v)) return 2;
        o.retain_finished = (int)v;
        break;
      case OPT_MAX_HEADER:
        if (queue_parse_int("broker", "--max-header-bytes", optarg, 1024, 64L << 20, &v)) return 2;
        o.max_header_bytes = (size_t)v;
        break;
      case OPT_MAX_PAYLOAD:
        if (queue_parse_int("broker", "--max-payload-bytes", optarg, 0, 256L << 20, &v)) return 2;
        o.max_payload_bytes = (size_t)v;
        break;
      case OPT_MAX_PROMPT:
        if (queue_parse_int("broker", "--max-prompt-bytes", optarg, 1, 1 << 20, &v)) return 2;
        o.job_limits.max_prompt_bytes = (int)v;
        break;
      case OPT_MAX_WIDTH:
        if (queue_parse_int("broker", "--max-width", optarg, 16, 16384, &v)) return 2;
        o.job_limits.max_width = (int)v;
        break;
      case OPT_MAX_HEIGHT:
        if (queue_parse_int("broker", "--max-height", optarg, 16, 16384, &v)) return 2;
        o.job_limits.max_height = (int)v;
        break;
      case OPT_MAX_FRAMES:
        if (queue_parse_int("broker", "--max-frames", optarg, 1, 100000, &v)) return 2;
        o.job_limits.max_frames = (int)v;
        break;
      case OPT_MAX_STEPS:
        if (queue_parse_int("broker", "--max-steps", optarg, 1, 100000, &v)) return 2;
        o.job_limits.max_steps = (int)v;
        break;
      case OPT_NO_FSYNC:
        o.journal_nosync = 1;
        break;
      case OPT_ENDPOINT_FILE:
        endpoint_file = optarg;
        break;
      case OPT_LOG_JSON:
        log_json = 1;
        break;
      case OPT_GRACE:
        if (queue_parse_int("broker", "--restart-grace-ms", optarg, 0, 3600000, &v)) return 2;
        o.restart_grace_ms = (int)v;
        break;
      case 'v':
        verbose++;
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
  if (!journal) return bad("--journal", "required: a directory for the durable journal, or 'off'");
  if (strcmp(journal, "off") != 0) {
    if (mkdir(journal, 0755) != 0 && errno != EEXIST) {
      fprintf(stderr, "reel broker: --journal: cannot create %s: %s\n", journal, strerror(errno));
      return 1;
    }
    o.journal_dir = journal;
  }
  reel_logger lg;
  reel_logger_init(&lg,
                   verbose >= 2 ? REEL_LOG_DEBUG
                   : verbose    ? REEL_LOG_INFO
                                : REEL_LOG_WARN,
                   log_json ? REEL_LOG_JSON : REEL_LOG_TEXT, 2);
  o.log = &lg;
  reel_error err;
  reel_error_clear(&err);
  reel_broker *b = NULL;
  reel_status st = reel_broker_new(&o, &b, &err);
  if (st) {
    fprintf(stderr, "reel broker: %s%s%s (%s)\n", err.field, err.field[0] ? ": " : "", err.msg, reel_status_name(st));
    return 1;
  }
  for (int i = 0; i < nweights; i++) {
    char name[128];
    const char *eq = strchr(weights[i], '=');
    long w = 0;
    if (!eq || (size_t)(eq - weights[i]) >= sizeof name ||
        queue_parse_int("broker", "--tenant-weight", eq + 1, 1, 1000, &w)) {
      reel_broker_destroy(&b);
      return bad("--tenant-weight", "must be NAME=W with W in 1..1000");
    }
    memcpy(name, weights[i], (size_t)(eq - weights[i]));
    name[eq - weights[i]] = '\0';
    if (reel_broker_set_tenant_weight(b, name, (int)w) != REEL_OK) {
      reel_broker_destroy(&b);
      return bad("--tenant-weight", "bad tenant name");
    }
  }
  if (endpoint_file) {
    FILE *f = fopen(endpoint_file, "w");
    if (!f || fprintf(f, "%s\n", reel_broker_endpoint(b)) < 0 || fclose(f) != 0) {
      fprintf(stderr, "reel broker: --endpoint-file: cannot write %s\n", endpoint_file);
      reel_broker_destroy(&b);
      return 1;
    }
  }
  fprintf(stderr, "reel broker: listening on %s (broker %s, journal %s, auth %s)\n", reel_broker_endpoint(b),
          reel_broker_id(b), o.journal_dir ? o.journal_dir : "off", o.auth_dir ? o.auth_dir : "off");
  running_broker = b;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  st = reel_broker_run(b, &err);
  running_broker = NULL;
  reel_broker_destroy(&b);
  if (st) {
    fprintf(stderr, "reel broker: stopped: %s: %s (%s)\n", err.field, err.msg, reel_status_name(st));
    return 1;
  }
  return 0;
}
