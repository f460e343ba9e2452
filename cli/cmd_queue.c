/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The client verbs of the queue: `reel submit`, `reel status`, `reel cancel`,
 * `reel jobs`, `reel workers`, and `reel keygen`. Each connects with the C
 * client library (queue/) and prints text, or JSON with --json.
 *
 * Exit status: 0 success (submit --wait: the job succeeded), 1 the request or
 * the job failed, 2 bad usage, 130 interrupted.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "queue_common.h"
#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/keys.h"
#include "reel/protocol.h"

enum {
  OPT_JSON = QF_END,
  OPT_WAIT,
  OPT_CLASS,
  OPT_PRIORITY,
  OPT_REGION,
  OPT_DEADLINE,
  OPT_IDEM,
  OPT_OUTPUT,
  OPT_STATE,
  OPT_LIMIT,
  OPT_FORCE,
  OPT_NO_FOLLOW,
};

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static int bad(const char *verb, const char *flag, const char *msg) {
  if (flag)
    fprintf(stderr, "reel %s: %s: %s\n", verb, flag, msg);
  else
    fprintf(stderr, "reel %s: %s\n", verb, msg);
  fprintf(stderr, "Run 'reel %s --help' for usage.\n", verb);
  return 2;
}

/* Common getopt loop errors. */
static int getopt_error(const char *verb, int c, char **argv) {
  return bad(verb, argv[optind - 1], c == ':' ? "needs a value" : "unknown option");
}

/* ---- submit ----------------------------------------------------------------------------------- */

static const struct option submit_own[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"wait", no_argument, NULL, OPT_WAIT},
    {"class", required_argument, NULL, OPT_CLASS},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"region", required_argument, NULL, OPT_REGION},
    {"deadline", required_argument, NULL, OPT_DEADLINE},
    {"idempotency-key", required_argument, NULL, OPT_IDEM},
    {"output", required_argument, NULL, OPT_OUTPUT},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void submit_usage(FILE *f) {
  fprintf(f,
          "usage: reel submit [--broker E] [--wait] [--json] [job options] PROMPT\n"
          "\n"
          "Submits a job to the broker and prints its id; with --wait follows its progress and\n"
          "prints the result.\n"
          "\n"
          "  --wait                 follow the job until it ends; exit 0 only if it succeeded\n"
          "  --json                 print the ACCEPTED reply (or with --wait the final job record)\n"
          "  --class NAME           interactive (default) or batch\n"
          "  --priority N           0..9 within the class, higher first\n"
          "  --region NAME          only workers in this region or with this label\n"
          "  --deadline SECONDS     expire the job if it has not started by then\n"
          "  --idempotency-key KEY  a resubmit with the same key returns the same job\n"
          "  --output KEY           object key under the worker's storage (default <job id>.<ext>)\n"
          "  -v, --verbose          log more\n"
          "  -h, --help             this help\n"
          "\n");
  reel_jobflags_usage(f);
  fprintf(f, "\n");
  queue_flags_usage(f);
}

static char *join_args(int n, char **args) {
  size_t len = 1;
  for (int i = 0; i < n; i++) len += strlen(args[i]) + 1;
  char *s = reel_malloc(len);
  if (!s) return NULL;
  s[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (i) strcat(s, " ");
    strcat(s, args[i]);
  }
  return s;
}

typedef struct follow_state {
  int tty, drawn, json;
  int64_t last_draw;
} follow_state;

static void on_event(void *ud, const json_t *ev) {
  follow_state *fs = ud;
  const char *kind = json_string_value(json_object_get(ev, "event"));
  if (!kind || fs->json || !fs->tty) return;
  int64_t now = reel_now_ms();
  if (!strcmp(kind, "progress")) {
    if (now - fs->last_draw < 100) return;
    fs->last_draw = now;
    json_t *eta = json_object_get(ev, "eta_ms");
    fprintf(stderr, "\r\033[K%s %lld/%lld  %3.0f%%", json_string_value(json_object_get(ev, "stage")),
            (long long)json_integer_value(json_object_get(ev, "step")),
            (long long)json_integer_value(json_object_get(ev, "steps")),
            100.0 * json_number_value(json_object_get(ev, "fraction")));
    if (eta) fprintf(stderr, "  ETA %.1f s", json_integer_value(eta) / 1000.0);
  } else if (!strcmp(kind, "position")) {
    fprintf(stderr, "\r\033[Kqueued: position %lld", (long long)json_integer_value(json_object_get(ev, "position")));
  } else if (!strcmp(kind, "state")) {
    const char *st = json_string_value(json_object_get(ev, "state"));
    const char *w = json_string_value(json_object_get(json_object_get(ev, "job"), "worker"));
    fprintf(stderr, "\r\033[K%s%s%s", st, w ? " on " : "", w ? w : "");
  }
  fflush(stderr);
  fs->drawn = 1;
}

int cmd_submit(int argc, char **argv) {
  queue_flags q;
  queue_flags_init(&q);
  struct option table[96];
  if (!queue_flags_table(submit_own, 1, table, sizeof table / sizeof table[0])) return 1;
  reel_jobspec spec;
  reel_jobspec_init(&spec);
  reel_error err;
  reel_error_clear(&err);
  int json = 0, wait = 0, rc = 2;
  long v;
  reel_client *c = NULL;
  json_t *specj = NULL, *acc = NULL;
  optind = 1;
  opterr = 0;
  for (;;) {
    int ch = getopt_long(argc, argv, ":vh", table, NULL);
    if (ch == -1) break;
    int a = reel_jobflags_apply(ch, optarg, &spec, &err);
    if (a < 0) {
      rc = bad("submit", err.field, err.msg);
      goto out;
    }
    if (a > 0) continue;
    if ((a = queue_flags_apply(&q, ch, optarg, "submit")) < 0) goto out;
    if (a > 0) continue;
    switch (ch) {
      case OPT_JSON:
        json = 1;
        break;
      case OPT_WAIT:
        wait = 1;
        break;
      case OPT_CLASS: {
        int k = reel_name_index(reel_class_names, optarg);
        if (k < 0) {
          rc = bad("submit", "--class", "must be interactive or batch");
          goto out;
        }
        spec.job_class = (reel_job_class)k;
        break;
      }
      case OPT_PRIORITY:
        if (queue_parse_int("submit", "--priority", optarg, 0, 9, &v)) goto out;
        spec.priority = (int)v;
        break;
      case OPT_REGION:
        if (!reel_proto_is_token(optarg, 64)) {
          rc = bad("submit", "--region", "must be 1..64 printable ASCII characters");
          goto out;
        }
        if (reel_jobspec_set_str(&spec.region, optarg)) goto oom;
        break;
      case OPT_DEADLINE:
        if (queue_parse_int("submit", "--deadline", optarg, 1, 7L * 24 * 3600, &v)) goto out;
        spec.deadline_ms = v * 1000;
        break;
      case OPT_IDEM:
        if (!reel_proto_is_token(optarg, 128)) {
          rc = bad("submit", "--idempotency-key", "must be 1..128 printable ASCII characters");
          goto out;
        }
        if (reel_jobspec_set_str(&spec.idempotency_key, optarg)) goto oom;
        break;
      case OPT_OUTPUT:
        if (reel_jobspec_set_str(&spec.output, optarg)) goto oom;
        break;
      case 'v':
        q.verbose++;
        break;
      case 'h':
        submit_usage(stdout);
        rc = 0;
        goto out;
      default:
        rc = getopt_error("submit", ch, argv);
        goto out;
    }
  }
  if (optind >= argc) {
    rc = bad("submit", "PROMPT", "is missing: say what the clip should show");
    goto out;
  }
  if (!(spec.prompt = join_args(argc - optind, argv + optind))) goto oom;
  if (reel_jobflags_validate(&spec, &err) != REEL_OK) {
    rc = bad("submit", err.field, err.msg);
    goto out;
  }
  if (!(specj = reel_jobspec_to_json(&spec))) goto oom;
  if (q.verbose) reel_logger_init(&q.log, REEL_LOG_INFO, REEL_LOG_TEXT, 2);
  rc = 1;
  if (!(c = queue_connect(&q, "submit"))) goto out;
  reel_status st = reel_client_submit(c, specj, &acc, &err);
  if (st) {
    if (reel_jobflags_rename_field(&err) && (st == REEL_EINVAL || st == REEL_ERANGE)) {
      rc = bad("submit", err.field, err.msg);
    } else {
      rc = queue_fail("submit", st, &err);
    }
    goto out;
  }
  const char *id = json_string_value(json_object_get(acc, "job_id"));
  if (!wait) {
    json_object_del(acc, "req");
    if (json)
      queue_print_json(acc);
    else
      printf("%s\n", id);
    rc = 0;
    goto out;
  }
  if (!json)
    fprintf(stderr, "submitted %s%s\n", id, json_is_true(json_object_get(acc, "duplicate")) ? " (existing job)" : "");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  follow_state fs = {isatty(2), 0, json, 0};
  json_t *job = NULL;
  st = reel_client_wait(c, id, -1, on_event, &fs, &job, &err);
  if (fs.drawn) fprintf(stderr, "\r\033[K");
  if (st == REEL_ECANCELED && interrupted) {
    fprintf(stderr, "reel submit: interrupted; job %s keeps running (reel cancel %s stops it)\n", id, id);
    rc = 130;
    goto out;
  }
  if (st) {
    rc = queue_fail("submit", st, &err);
    goto out;
  }
  /* The final event has no spec; fetch the full record. */
  json_t *full = NULL;
  if (reel_client_status(c, id, &full, &err) == REEL_OK) {
    json_decref(job);
    job = full;
  }
  if (json)
    queue_print_json(job);
  else
    queue_print_job(stdout, job);
  rc = strcmp(json_string_value(json_object_get(job, "state")), "succeeded") == 0 ? 0 : 1;
  json_decref(job);
  goto out;
oom:
  fprintf(stderr, "reel submit: out of memory\n");
  rc = 1;
out:
  if (acc) json_decref(acc);
  if (specj) json_decref(specj);
  reel_client_destroy(&c);
  reel_jobspec_fini(&spec);
  return rc;
}

/* ---- status / cancel -------------------------------------------------------------------------- */

static const struct option simple_own[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int job_verb(int argc, char **argv, const char *verb, const char *what) {
  queue_flags q;
  queue_flags_init(&q);
  struct option table[32];
  if (!queue_flags_table(simple_own, 0, table, sizeof table / sizeof table[0])) return 1;
  int json = 0;
  optind = 1;
  opterr = 0;
  for (;;) {
    int ch = getopt_long(argc, argv, ":vh", table, NULL);
    if (ch == -1) break;
    int a = queue_flags_apply(&q, ch, optarg, verb);
    if (a < 0) return 2;
    if (a > 0) continue;
    switch (ch) {
      case OPT_JSON:
        json = 1;
        break;
      case 'v':
        q.verbose++;
        break;
      case 'h':
        printf(
            "usage: reel %s [--json] [queue options] JOB\n\n%s\n\n  --json  print the job record as one JSON "
            "object (with a \"state\" field)\n\n",
            verb, what);
        queue_flags_usage(stdout);
        return 0;
      default:
        return getopt_error(verb, ch, argv);
    }
  }
  if (optind != argc - 1) return bad(verb, "JOB", "give exactly one job id");
  reel_client *c = queue_connect(&q, verb);
  if (!c) return 1;
  reel_error err;
  reel_error_clear(&err);
  json_t *job = NULL;
  reel_status st = !strcmp(verb, "cancel") ? reel_client_cancel(c, argv[optind], &job, &err)
                                           : reel_client_status(c, argv[optind], &job, &err);
  reel_client_destroy(&c);
  if (st) return queue_fail(verb, st, &err);
  if (json)
    queue_print_json(job);
  else if (!strcmp(verb, "cancel"))
    printf("%s %s\n", argv[optind],
           json_is_true(json_object_get(job, "cancel_requested")) ? "cancel requested (the worker stops it)"
                                                                  : json_string_value(json_object_get(job, "state")));
  else
    queue_print_job(stdout, job);
  json_decref(job);
  return 0;
}

int cmd_status(int argc, char **argv) {
  return job_verb(argc, argv, "status", "Prints a job's state, attempts, timings and outputs.");
}

int cmd_cancel(int argc, char **argv) {
  return job_verb(argc, argv, "cancel",
                  "Cancels a job: a queued job at once, a running one at its worker's next step boundary.");
}

/* ---- jobs ------------------------------------------------------------------------------------- */

static const struct option jobs_own[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"state", required_argument, NULL, OPT_STATE},
    {"limit", required_argument, NULL, OPT_LIMIT},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int cmd_jobs(int argc, char **argv) {
  queue_flags q;
  queue_flags_init(&q);
  struct option table[32];
  if (!queue_flags_table(jobs_own, 0, table, sizeof table / sizeof table[0])) return 1;
  int json = 0;
  long limit = 100;
  const char *state = NULL;
  optind = 1;
  opterr = 0;
  for (;;) {
    int ch = getopt_long(argc, argv, ":vh", table, NULL);
    if (ch == -1) break;
    int a = queue_flags_apply(&q, ch, optarg, "jobs");
    if (a < 0) return 2;
    if (a > 0) continue;
    switch (ch) {
      case OPT_JSON:
        json = 1;
        break;
      case OPT_STATE:
        if (strcmp(optarg, "active") && reel_name_index(reel_job_state_names, optarg) < 0)
          return bad("jobs", "--state", "must be queued, running, succeeded, failed, canceled, expired or active");
        state = optarg;
        break;
      case OPT_LIMIT:
        if (queue_parse_int("jobs", "--limit", optarg, 1, 1000000, &limit)) return 2;
        break;
      case 'v':
        q.verbose++;
        break;
      case 'h':
        printf(
            "usage: reel jobs [--state S|active] [--limit N] [--json] [queue options]\n\n"
            "Lists this tenant's jobs, oldest first (--json: one job record per line).\n\n");
        queue_flags_usage(stdout);
        return 0;
      default:
        return getopt_error("jobs", ch, argv);
    }
  }
  if (optind < argc) return bad("jobs", argv[optind], "unexpected argument");
  reel_client *c = queue_connect(&q, "jobs");
  if (!c) return 1;
  char after[REEL_PROTO_JOB_ID_LEN + 1] = "";
  long shown = 0;
  int rc = 0;
  if (!json) printf("%-18s  %-9s  %-11s  %3s  %-16s  %s\n", "JOB", "STATE", "CLASS", "TRY", "WORKER", "PROMPT");
  while (shown < limit) {
    json_t *reply = NULL;
    reel_error err;
    reel_error_clear(&err);
    long page = limit - shown > 1000 ? 1000 : limit - shown;
    reel_status st = reel_client_list(c, state, (int)page, after[0] ? after : NULL, &reply, &err);
    if (st) {
      rc = queue_fail("jobs", st, &err);
      break;
    }
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(reply, "jobs"), i, j) {
      if (json) {
        queue_print_json(j);
      } else {
        const char *w = json_string_value(json_object_get(j, "worker"));
        printf("%-18s  %-9s  %-11s  %3lld  %-16.16s  %.60s\n", json_string_value(json_object_get(j, "id")),
               json_string_value(json_object_get(j, "state")), json_string_value(json_object_get(j, "class")),
               (long long)json_integer_value(json_object_get(j, "attempts")), w ? w : "-",
               json_string_value(json_object_get(j, "prompt")));
      }
      snprintf(after, sizeof after, "%s", json_string_value(json_object_get(j, "id")));
      shown++;
    }
    int more = json_is_true(json_object_get(reply, "more"));
    json_decref(reply);
    if (!more) break;
  }
  reel_client_destroy(&c);
  return rc;
}

/* ---- workers ---------------------------------------------------------------------------------- */

int cmd_workers(int argc, char **argv) {
  queue_flags q;
  queue_flags_init(&q);
  struct option table[32];
  if (!queue_flags_table(simple_own, 0, table, sizeof table / sizeof table[0])) return 1;
  int json = 0;
  optind = 1;
  opterr = 0;
  for (;;) {
    int ch = getopt_long(argc, argv, ":vh", table, NULL);
    if (ch == -1) break;
    int a = queue_flags_apply(&q, ch, optarg, "workers");
    if (a < 0) return 2;
    if (a > 0) continue;
    switch (ch) {
      case OPT_JSON:
        json = 1;
        break;
      case 'v':
        q.verbose++;
        break;
      case 'h':
        printf("usage: reel workers [--json] [queue options]\n\nLists the workers connected to the broker.\n\n");
        queue_flags_usage(stdout);
        return 0;
      default:
        return getopt_error("workers", ch, argv);
    }
  }
  if (optind < argc) return bad("workers", argv[optind], "unexpected argument");
  reel_client *c = queue_connect(&q, "workers");
  if (!c) return 1;
  json_t *reply = NULL;
  reel_error err;
  reel_error_clear(&err);
  reel_status st = reel_client_request(c, "WORKERS", NULL, &reply, &err);
  reel_client_destroy(&c);
  if (st) return queue_fail("workers", st, &err);
  if (json) {
    json_object_del(reply, "req");
    queue_print_json(reply);
  } else {
    printf("%-24s  %8s  %4s  %s\n", "WORKER", "CAPACITY", "BUSY", "MODELS");
    size_t i, k;
    json_t *w, *m;
    json_array_foreach(json_object_get(reply, "workers"), i, w) {
      printf("%-24s  %8lld  %4lld  ", json_string_value(json_object_get(w, "name")),
             (long long)json_integer_value(json_object_get(w, "capacity")),
             (long long)json_integer_value(json_object_get(w, "busy")));
      json_array_foreach(json_object_get(json_object_get(w, "capabilities"), "models"), k, m)
          printf("%s%s", k ? "," : "", json_string_value(m));
      printf("\n");
    }
    printf("queued %lld, running %lld\n", (long long)json_integer_value(json_object_get(reply, "queued")),
           (long long)json_integer_value(json_object_get(reply, "running")));
  }
  json_decref(reply);
  return 0;
}

/* ---- keygen ----------------------------------------------------------------------------------- */

static const struct option keygen_own[] = {
    {"force", no_argument, NULL, OPT_FORCE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int cmd_keygen(int argc, char **argv) {
  int force = 0;
  optind = 1;
  opterr = 0;
  for (;;) {
    int ch = getopt_long(argc, argv, ":h", keygen_own, NULL);
    if (ch == -1) break;
    switch (ch) {
      case OPT_FORCE:
        force = 1;
        break;
      case 'h':
        printf(
            "usage: reel keygen [--force] NAME\n\n"
            "Writes a CURVE key pair: NAME.key (public + secret, mode 0600) and NAME.pub (public).\n"
            "Broker: KEYDIR/broker.key. Allow a client of tenant T: copy its .pub to KEYDIR/clients/T/;\n"
            "a worker: to KEYDIR/workers/. Prints the public key.\n");
        return 0;
      default:
        return getopt_error("keygen", ch, argv);
    }
  }
  if (optind != argc - 1) return bad("keygen", "NAME", "give exactly one output name (e.g. keys/broker)");
  const char *base = argv[optind];
  size_t n = strlen(base);
  char trimmed[4096];
  if (n >= sizeof trimmed) return bad("keygen", "NAME", "too long");
  snprintf(trimmed, sizeof trimmed, "%s", base);
  if (n > 4 && (!strcmp(base + n - 4, ".key") || !strcmp(base + n - 4, ".pub"))) trimmed[n - 4] = '\0';
  reel_keypair kp;
  reel_error err;
  reel_error_clear(&err);
  reel_status st = reel_keys_generate(&kp, &err);
  if (!st) st = reel_keys_write(trimmed, &kp, force, &err);
  if (st) return queue_fail("keygen", st, &err);
  printf("%s\n", kp.public_key);
  fprintf(stderr, "wrote %s.key (secret) and %s.pub\n", trimmed, trimmed);
  return 0;
}
