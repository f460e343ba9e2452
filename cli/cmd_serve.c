/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel serve --listen E --journal DIR --workers N --model DIR --storage URL`:
 * a broker and N workers in one process, for a single machine. The broker
 * runs on the main thread and binds E; each worker runs on threads of its own
 * (reel/worker.h: a render thread and an encode thread) and connects to the
 * broker over loopback, speaking the same protocol as `reel worker`. Clients
 * (`reel submit`, the C and Python clients) connect to E as to `reel broker`.
 *
 * CPU threads and the memory budget are shared out: each worker gets
 * --threads / N compute threads (all the CPUs this process may use / N by
 * default) and --memory-budget / N.
 *
 * SIGINT/SIGTERM: the workers stop taking jobs, finish the ones in hand and
 * report them; then the broker stops. Exit status: 0 after a signal, 2 bad
 * usage, 1 could not start (or the journal failed).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "queue_common.h"
#include "reel/broker.h"
#include "reel/clock.h"
#include "reel/generate.h"
#include "reel/worker.h"
#include "worker_flags.h"
#ifdef REEL_HAVE_ENCODER
#include "reel/encoder.h"
#endif

#define MAX_WORKERS 64

enum {
  OPT_LISTEN = 0x2400,
  OPT_JOURNAL,
  OPT_WORKERS,
  OPT_HEARTBEAT,
  OPT_ENDPOINT_FILE,
  OPT_NO_FSYNC,
};

static const struct option own_options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"journal", required_argument, NULL, OPT_JOURNAL},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT},
    {"endpoint-file", required_argument, NULL, OPT_ENDPOINT_FILE},
    {"no-fsync", no_argument, NULL, OPT_NO_FSYNC},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
};

typedef struct serve_worker {
  reel_worker *w;
  pthread_t thread;
  int started;
} serve_worker;

static volatile sig_atomic_t stopping;
static serve_worker workers[MAX_WORKERS];
static int nworkers;
static int workers_left; /* atomic: worker threads still running */

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
  for (int i = 0; i < nworkers; i++)
    if (workers[i].w) reel_worker_stop(workers[i].w);
}

static void *worker_main(void *arg) {
  serve_worker *s = arg;
  reel_error err;
  reel_error_clear(&err);
  reel_worker_run(s->w, &err);
  /* BYE and the last ACKs need the broker, which polls until every worker thread is done. */
  reel_worker_destroy(&s->w);
  __atomic_sub_fetch(&workers_left, 1, __ATOMIC_ACQ_REL);
  return NULL;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: reel serve --storage URL [--model DIR ...] [--listen ENDPOINT] [--journal DIR|off]\n"
          "                  [--workers N] [options]\n"
          "\n"
          "Runs a broker and N workers in one process (single machine). Clients connect to ENDPOINT\n"
          "as to 'reel broker'; the protocol is docs/protocol.md.\n"
          "\n"
          "  --listen ENDPOINT   ZeroMQ endpoint to bind (default tcp://127.0.0.1:5555)\n"
          "  --journal DIR|off   durable journal directory (created if missing; default off)\n"
          "  --workers N         local workers, 1..64 (default 1); each gets --threads/N compute threads\n"
          "                      and --memory-budget/N\n"
          "  --heartbeat-ms N    broker and worker heartbeat, 10..600000 (default 2500)\n"
          "  --endpoint-file F   write the bound endpoint to F (useful with port *)\n"
          "  --no-fsync          journal without fdatasync (benchmarks only)\n"
          "  -v, --verbose       log at info level (twice: debug)\n"
          "  -h, --help          this help\n"
          "\n");
  worker_flags_usage(f);
}

static int bad(const char *flag, const char *msg) {
  fprintf(stderr, "reel serve: %s: %s\nRun 'reel serve --help' for usage.\n", flag, msg);
  return 2;
}

/* The endpoint local workers connect to: the bound one with a wildcard host made loopback. */
static void local_endpoint(const char *bound, char *out, size_t size) {
  const char *host = strstr(bound, "://");
  if (host && (!strncmp(host + 3, "0.0.0.0:", 8) || !strncmp(host + 3, "*:", 2))) {
    const char *port = strchr(host + 3, ':');
    snprintf(out, size, "%.*s://127.0.0.1%s", (int)(host - bound), bound, port);
  } else {
    snprintf(out, size, "%s", bound);
  }
}

static int cpus_available(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int cmd_serve(int argc, char **argv) {
  struct option table[64];
  size_t n = 0;
  for (; n < sizeof own_options / sizeof own_options[0]; n++) table[n] = own_options[n];
  if (!worker_flags_append(table, n, sizeof table / sizeof table[0])) return 1;
  reel_worker_options wo;
  reel_worker_options_init(&wo);
  reel_broker_options bo;
  reel_broker_options_init(&bo);
  bo.listen = "tcp://127.0.0.1:5555";
  const char *journal = "off", *endpoint_file = NULL;
  int verbose = 0, count = 1;
  long v;
  optind = 1;
  opterr = 0;
  for (;;) {
    int c = getopt_long(argc, argv, ":vh", table, NULL);
    if (c == -1) break;
    int a = worker_flags_apply(&wo, c, optarg, "serve");
    if (a < 0) return 2;
    if (a > 0) continue;
    switch (c) {
      case OPT_LISTEN:
        bo.listen = optarg;
        break;
      case OPT_JOURNAL:
        journal = optarg;
        break;
      case OPT_WORKERS:
        if (queue_parse_int("serve", "--workers", optarg, 1, MAX_WORKERS, &v)) return 2;
        count = (int)v;
        break;
      case OPT_HEARTBEAT:
        if (queue_parse_int("serve", "--heartbeat-ms", optarg, 10, 600000, &v)) return 2;
        bo.heartbeat_ms = (int)v;
        wo.heartbeat_ms = (int)v;
        break;
      case OPT_ENDPOINT_FILE:
        endpoint_file = optarg;
        break;
      case OPT_NO_FSYNC:
        bo.journal_nosync = 1;
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
  int rc = worker_flags_finish(&wo, "serve");
  if (rc) return rc;
  if (strcmp(journal, "off") != 0) {
    if (mkdir(journal, 0755) != 0 && errno != EEXIST) {
      fprintf(stderr, "reel serve: --journal: cannot create %s: %s\n", journal, strerror(errno));
      return 1;
    }
    bo.journal_dir = journal;
  }
  reel_logger lg;
  reel_logger_init(&lg,
                   verbose >= 2 ? REEL_LOG_DEBUG
                   : verbose    ? REEL_LOG_INFO
                                : REEL_LOG_WARN,
                   REEL_LOG_TEXT, 2);
#ifdef REEL_HAVE_ENCODER
  reel_ffmpeg_route_logs();
#endif
  bo.log = &lg;
  reel_error err;
  reel_error_clear(&err);
  reel_broker *b = NULL;
  reel_status st = reel_broker_new(&bo, &b, &err);
  if (st) {
    fprintf(stderr, "reel serve: %s%s%s (%s)\n", err.field, err.field[0] ? ": " : "", err.msg, reel_status_name(st));
    return 1;
  }
  char endpoint[512];
  local_endpoint(reel_broker_endpoint(b), endpoint, sizeof endpoint);
  if (endpoint_file) {
    FILE *f = fopen(endpoint_file, "w");
    if (!f || fprintf(f, "%s\n", reel_broker_endpoint(b)) < 0 || fclose(f) != 0) {
      fprintf(stderr, "reel serve: --endpoint-file: cannot write %s\n", endpoint_file);
      reel_broker_destroy(&b);
      return 1;
    }
  }
  /* Share the machine out between the workers. */
  int cpus = wo.threads ? wo.threads : cpus_available();
  wo.threads = cpus / count > 0 ? cpus / count : 1;
  if (wo.memory_budget) wo.memory_budget /= (uint64_t)count;
  wo.endpoint = endpoint;
  wo.log = &lg;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  char names[MAX_WORKERS][64];
  rc = 0;
  for (int i = 0; i < count; i++) {
    snprintf(names[i], sizeof names[i], "serve-%ld-%d", (long)getpid(), i);
    wo.name = names[i];
    if ((st = reel_worker_new(&wo, &workers[i].w, &err))) {
      fprintf(stderr, "reel serve: worker %d: %s: %s (%s)\n", i, err.field, err.msg, reel_status_name(st));
      rc = st == REEL_EINVAL || st == REEL_ERANGE ? 2 : 1;
      break;
    }
    nworkers = i + 1;
  }
  if (rc == 0) {
    __atomic_store_n(&workers_left, nworkers, __ATOMIC_RELEASE);
    for (int i = 0; i < nworkers; i++) {
      if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) == 0) {
        workers[i].started = 1;
      } else {
        __atomic_sub_fetch(&workers_left, 1, __ATOMIC_ACQ_REL);
        reel_worker_destroy(&workers[i].w);
      }
    }
    fprintf(stderr, "reel serve: listening on %s (broker %s, journal %s) with %d worker%s serving %s, clips to %s\n",
            reel_broker_endpoint(b), reel_broker_id(b), bo.journal_dir ? bo.journal_dir : "off", nworkers,
            nworkers == 1 ? "" : "s", wo.nmodels ? wo.models[0] : reel_default_model(), wo.storage);
    /* The broker serves until every worker has left (after a signal, or --max-jobs). */
    while (__atomic_load_n(&workers_left, __ATOMIC_ACQUIRE) > 0) {
      if ((st = reel_broker_poll(b, 100, &err)) != REEL_OK) {
        fprintf(stderr, "reel serve: broker: %s: %s (%s)\n", err.field, err.msg, reel_status_name(st));
        rc = 1;
        on_signal(0);
        break;
      }
    }
    for (int i = 0; i < nworkers; i++)
      if (workers[i].started) pthread_join(workers[i].thread, NULL);
  } else {
    for (int i = 0; i < nworkers; i++) reel_worker_destroy(&workers[i].w);
  }
  nworkers = 0;
  reel_broker_destroy(&b);
  return rc;
}
