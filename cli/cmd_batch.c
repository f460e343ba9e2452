/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `reel batch FILE --manifest OUT.jsonl [--concurrency N] [job options]`: runs a
 * prompt list through the queue. FILE has one job per line: plain text is a
 * prompt; a line starting with '{' is a JSON job spec whose members override the
 * job options given as flags. Blank lines and lines starting with '#' are skipped.
 *
 * Every finished line is appended to the manifest (one JSON object per line,
 * flushed and fsynced). A rerun skips the lines the manifest records as
 * succeeded and submits the rest again, so an interrupted batch resumes where it
 * stopped. Each submit carries an idempotency key made from the file, the line
 * and how many times the line was tried, so a rerun that races an earlier run's
 * unfinished job follows that job instead of starting a duplicate.
 *
 * Exit status: 0 every line succeeded, 1 some failed (see the manifest), 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "queue_common.h"
#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/protocol.h"

enum { OPT_MANIFEST = QF_END, OPT_CONCURRENCY, OPT_CLASS, OPT_PRIORITY, OPT_JSON };

static const struct option own_options[] = {
    {"manifest", required_argument, NULL, OPT_MANIFEST},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"class", required_argument, NULL, OPT_CLASS},
    {"priority", required_argument, NULL, OPT_PRIORITY},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
  (void)sig;
  interrupted = 1;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: reel batch FILE --manifest OUT.jsonl [--concurrency N] [job options]\n"
          "\n"
          "Submits one job per line of FILE (a prompt, or a JSON job spec) with at most N in flight,\n"
          "and appends each finished line to the manifest. A rerun skips lines that succeeded.\n"
          "\n"
          "  --manifest FILE    JSON lines: {\"line\", \"job_id\", \"state\", \"outputs\", \"error\", ...}\n"
          "  --concurrency N    jobs in flight at once, 1..10000 (default 8)\n"
          "  --class NAME       batch (default) or interactive\n"
          "  --priority N       0..9\n"
          "  -v, --verbose      log more\n"
          "  -h, --help         this help\n"
          "\n");
  reel_jobflags_usage(f);
  fprintf(f, "\n");
  queue_flags_usage(f);
}

static int bad(const char *flag, const char *msg) {
  fprintf(stderr, "reel batch: %s: %s\nRun 'reel batch --help' for usage.\n", flag, msg);
  return 2;
}

typedef struct line_item {
  long line;  /* 1-based line number in FILE */
  char *text; /* the line without its newline */
  int tries;  /* earlier unsuccessful runs recorded in the manifest */
  int done;   /* succeeded earlier */
  char job_id[REEL_PROTO_JOB_ID_LEN + 1];
  int64_t last_seen; /* mono ms of the last event, for the status safety net */
} line_item;

typedef struct batch {
  line_item *items;
  size_t n, cap;
  FILE *manifest;
  json_t *finished; /* array of terminal job records from events, drained by the main loop */
  long succeeded, failed;
} batch;

static uint64_t fnv1a(const char *s, uint64_t h) {
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

static int read_lines(const char *path, batch *b) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "reel batch: %s: cannot open: %s\n", path, strerror(errno));
    return 1;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long no = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    no++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    const char *p = line;
    while (*p == ' ' || *p == '\t') p++;
    if (!*p || *p == '#') continue;
    if (b->n == b->cap) {
      size_t nc = b->cap ? b->cap * 2 : 256;
      line_item *ni = reel_realloc(b->items, nc * sizeof *ni);
      if (!ni) break;
      b->items = ni;
      b->cap = nc;
    }
    line_item *it = &b->items[b->n];
    memset(it, 0, sizeof *it);
    it->line = no;
    it->text = reel_strdup(p);
    if (!it->text) break;
    b->n++;
  }
  free(line);
  int err = ferror(f);
  fclose(f);
  if (err) fprintf(stderr, "reel batch: %s: read error\n", path);
  return err;
}

static line_item *find_line(batch *b, long line) {
  size_t lo = 0, hi = b->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (b->items[mid].line < line)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < b->n && b->items[lo].line == line ? &b->items[lo] : NULL;
}

/* Reads an existing manifest: which lines succeeded, how often the others were tried. */
static int read_manifest(const char *path, batch *b) {
  FILE *f = fopen(path, "r");
  if (!f) return errno == ENOENT ? 0 : 1;
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long no = 0;
  while ((len = getline(&line, &cap, f)) >= 0) {
    no++;
    json_error_t je;
    json_t *o = json_loadb(line, (size_t)len, 0, &je);
    if (!o) {
      /* A line cut by a crash at the end is expected; anything else is worth a note. */
      fprintf(stderr, "reel batch: %s:%ld: not JSON, ignored\n", path, no);
      continue;
    }
    line_item *it = find_line(b, (long)json_integer_value(json_object_get(o, "line")));
    const char *state = json_string_value(json_object_get(o, "state"));
    if (it && state) {
      if (!strcmp(state, "succeeded"))
        it->done = 1;
      else
        it->tries++;
    }
    json_decref(o);
  }
  free(line);
  fclose(f);
  return 0;
}

static void on_event(void *ud, const json_t *ev) {
  batch *b = ud;
  const char *kind = json_string_value(json_object_get(ev, "event"));
  const char *id = json_string_value(json_object_get(ev, "job_id"));
  if (!kind || !id) return;
  for (size_t i = 0; i < b->n; i++)
    if (!strcmp(b->items[i].job_id, id)) b->items[i].last_seen = reel_now_ms();
  if (strcmp(kind, "state")) return;
  int s = reel_name_index(reel_job_state_names, json_string_value(json_object_get(ev, "state")));
  if (s < 0 || !reel_job_state_terminal((reel_job_state)s)) return;
  json_t *job = json_object_get(ev, "job");
  json_array_append_new(b->finished, job ? json_deep_copy(job) : json_pack("{s:s, s:i}", "id", id, "state", s));
}

static void write_manifest(batch *b, line_item *it, const json_t *job, const json_t *local_error) {
  json_t *o = json_pack("{s:I, s:s}", "line", (json_int_t)it->line, "state",
                        job ? json_string_value(json_object_get(job, "state")) : "failed");
  if (!o) return;
  if (it->job_id[0]) json_object_set_new(o, "job_id", json_string(it->job_id));
  json_object_set_new(o, "prompt", json_stringn(it->text, strlen(it->text) > 200 ? 200 : strlen(it->text)));
  const char *keys[] = {"outputs", "error", "attempts", "worker", "accepted_ms", "finished_ms", "seed", NULL};
  for (int k = 0; job && keys[k]; k++) {
    json_t *v = json_object_get(job, keys[k]);
    if (v) json_object_set(o, keys[k], v);
  }
  if (local_error) json_object_set(o, "error", (json_t *)local_error);
  char *s = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!s) return;
  fprintf(b->manifest, "%s\n", s);
  free(s);
  fflush(b->manifest);
  fsync(fileno(b->manifest));
}

/* Builds the spec of a line: the flags' spec, overridden by a JSON line's members. */
static json_t *line_spec(const json_t *defaults, const char *text, reel_error *err) {
  json_t *spec = json_deep_copy(defaults);
  if (!spec) {
    reel_error_set(err, REEL_ENOMEM, "job", "out of memory");
    return NULL;
  }
  if (text[0] == '{') {
    json_t *o = NULL;
    if (reel_json_parse(text, strlen(text), "line", &o, err) != REEL_OK || !json_is_object(o)) {
      if (o) reel_error_set(err, REEL_EINVAL, "line", "a line starting with '{' must be a JSON object (a job spec)");
      if (o) json_decref(o);
      json_decref(spec);
      return NULL;
    }
    json_object_update(spec, o);
    json_decref(o);
  } else {
    json_object_set_new(spec, "prompt", json_string(text));
  }
  /* Validate here so that a bad line is reported without a round trip. */
  reel_jobspec s;
  reel_jobspec_init(&s);
  reel_status st = reel_jobspec_from_json(spec, "job", NULL, &s, err);
  reel_jobspec_fini(&s);
  if (st) {
    json_decref(spec);
    return NULL;
  }
  return spec;
}

int cmd_batch(int argc, char **argv) {
  queue_flags q;
  queue_flags_init(&q);
  struct option table[96];
  if (!queue_flags_table(own_options, 1, table, sizeof table / sizeof table[0])) return 1;
  reel_jobspec flags;
  reel_jobspec_init(&flags);
  flags.job_class = REEL_CLASS_BATCH;
  reel_error err;
  reel_error_clear(&err);
  const char *manifest = NULL;
  long concurrency = 8, v;
  int rc = 2;
  batch b;
  memset(&b, 0, sizeof b);
  reel_client *c = NULL;
  json_t *defaults = NULL;
  optind = 1;
  opterr = 0;
  for (;;) {
    int ch = getopt_long(argc, argv, ":vh", table, NULL);
    if (ch == -1) break;
    int a = reel_jobflags_apply(ch, optarg, &flags, &err);
    if (a < 0) {
      rc = bad(err.field, err.msg);
      goto out;
    }
    if (a > 0) continue;
    if ((a = queue_flags_apply(&q, ch, optarg, "batch")) < 0) goto out;
    if (a > 0) continue;
    switch (ch) {
      case OPT_MANIFEST:
        manifest = optarg;
        break;
      case OPT_CONCURRENCY:
        if (queue_parse_int("batch", "--concurrency", optarg, 1, 10000, &concurrency)) goto out;
        break;
      case OPT_CLASS: {
        int k = reel_name_index(reel_class_names, optarg);
        if (k < 0) {
          rc = bad("--class", "must be interactive or batch");
          goto out;
        }
        flags.job_class = (reel_job_class)k;
        break;
      }
      case OPT_PRIORITY:
        if (queue_parse_int("batch", "--priority", optarg, 0, 9, &v)) goto out;
        flags.priority = (int)v;
        break;
      case 'v':
        q.verbose++;
        break;
      case 'h':
        usage(stdout);
        rc = 0;
        goto out;
      default:
        rc = bad(argv[optind - 1], ch == ':' ? "needs a value" : "unknown option");
        goto out;
    }
  }
  if (optind != argc - 1) {
    rc = bad("FILE", "give exactly one prompt file");
    goto out;
  }
  if (!manifest) {
    rc = bad("--manifest", "required: where finished lines are recorded (JSON lines)");
    goto out;
  }
  const char *file = argv[optind];
  rc = 1;
  if (read_lines(file, &b) || read_manifest(manifest, &b)) goto out;
  /* The flags' spec without a prompt: validate with a placeholder, then drop it. */
  flags.prompt = reel_strdup("x");
  if (!flags.prompt) goto out;
  if (reel_jobflags_validate(&flags, &err) != REEL_OK) {
    rc = bad(err.field, err.msg);
    goto out;
  }
  defaults = reel_jobspec_to_json(&flags);
  b.finished = json_array();
  if (!defaults || !b.finished) goto out;
  json_object_del(defaults, "prompt");
  char abs[PATH_MAX];
  uint64_t file_hash = fnv1a(realpath(file, abs) ? abs : file, 1469598103934665603ull);
  b.manifest = fopen(manifest, "a");
  if (!b.manifest) {
    fprintf(stderr, "reel batch: --manifest: cannot open %s: %s\n", manifest, strerror(errno));
    goto out;
  }
  if (q.verbose) reel_logger_init(&q.log, REEL_LOG_INFO, REEL_LOG_TEXT, 2);
  if (!(c = queue_connect(&q, "batch"))) goto out;
  reel_client_set_event_handler(c, on_event, &b);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  size_t next = 0, inflight = 0, skipped = 0, total = 0;
  for (size_t i = 0; i < b.n; i++) {
    if (b.items[i].done) {
      skipped++;
      b.succeeded++;
    }
  }
  total = b.n;
  int tty = isatty(2);
  int64_t last_draw = 0, last_check = reel_now_ms();
  if (skipped)
    fprintf(stderr, "reel batch: %zu of %zu lines already succeeded (manifest %s)\n", skipped, total, manifest);
  rc = 0;
  while (!interrupted) {
    /* Fill the window. */
    while (inflight < (size_t)concurrency && next < b.n && !interrupted) {
      line_item *it = &b.items[next++];
      if (it->done) continue;
      reel_error_clear(&err);
      json_t *spec = line_spec(defaults, it->text, &err);
      if (!spec) {
        json_t *e =
            json_pack("{s:s, s:s, s:s}", "code", reel_status_name(err.code), "field", err.field, "message", err.msg);
        write_manifest(&b, it, NULL, e);
        if (e) json_decref(e);
        fprintf(stderr, "reel batch: %s:%ld: %s: %s\n", file, it->line, err.field, err.msg);
        b.failed++;
        continue;
      }
      if (!json_object_get(spec, "idempotency_key")) {
        char key[96];
        snprintf(key, sizeof key, "batch-%016llx-%ld-%d", (unsigned long long)fnv1a(it->text, file_hash), it->line,
                 it->tries);
        json_object_set_new(spec, "idempotency_key", json_string(key));
      }
      json_t *acc = NULL;
      reel_status st = reel_client_submit(c, spec, &acc, &err);
      json_decref(spec);
      if (st) {
        queue_fail("batch", st, &err);
        if (st == REEL_ETIMEDOUT || st == REEL_EAUTH || st == REEL_ENETWORK || st == REEL_ECANCELED) {
          rc = 1;
          interrupted = 1;
          break;
        }
        json_t *e = json_pack("{s:s, s:s, s:s}", "code", reel_status_name(st), "field", err.field, "message", err.msg);
        write_manifest(&b, it, NULL, e);
        if (e) json_decref(e);
        b.failed++;
        continue;
      }
      snprintf(it->job_id, sizeof it->job_id, "%s", json_string_value(json_object_get(acc, "job_id")));
      it->last_seen = reel_now_ms();
      inflight++;
      /* A duplicate may already be finished: its FOLLOW reply is the final state. */
      const char *state = json_string_value(json_object_get(acc, "state"));
      int s = state ? reel_name_index(reel_job_state_names, state) : -1;
      json_decref(acc);
      if (s >= 0 && reel_job_state_terminal((reel_job_state)s)) {
        json_t *job = NULL;
        if (reel_client_status(c, it->job_id, &job, &err) == REEL_OK) json_array_append_new(b.finished, job);
      }
    }
    if (inflight == 0 && next >= b.n) break;
    reel_error_clear(&err);
    reel_status st = reel_client_poll(c, 200, &err);
    if (st && st != REEL_ECANCELED) {
      rc = queue_fail("batch", st, &err);
      break;
    }
    /* Record finished lines. */
    size_t k;
    json_t *job;
    json_array_foreach(b.finished, k, job) {
      const char *id = json_string_value(json_object_get(job, "id"));
      for (size_t i = 0; id && i < b.n; i++) {
        line_item *it = &b.items[i];
        if (!it->done && !strcmp(it->job_id, id)) {
          write_manifest(&b, it, job, NULL);
          it->done = 1;
          it->job_id[0] = '\0';
          inflight--;
          if (!strcmp(json_string_value(json_object_get(job, "state")), "succeeded"))
            b.succeeded++;
          else
            b.failed++;
        }
      }
    }
    json_array_clear(b.finished);
    /* Safety net: a job quiet for 10 s gets a STATUS (an event may have been lost to a disconnect). */
    int64_t now = reel_now_ms();
    if (now - last_check > 2000) {
      last_check = now;
      for (size_t i = 0; i < b.n; i++) {
        line_item *it = &b.items[i];
        if (it->done || !it->job_id[0] || now - it->last_seen < 10000) continue;
        json_t *rec = NULL;
        it->last_seen = now;
        if (reel_client_status(c, it->job_id, &rec, &err) != REEL_OK) continue;
        int s = reel_name_index(reel_job_state_names, json_string_value(json_object_get(rec, "state")));
        if (s >= 0 && reel_job_state_terminal((reel_job_state)s))
          json_array_append_new(b.finished, rec);
        else
          json_decref(rec);
      }
    }
    if (tty && now - last_draw > 200) {
      last_draw = now;
      fprintf(stderr, "\r\033[Kdone %ld/%zu (failed %ld), in flight %zu", b.succeeded + b.failed, total, b.failed,
              inflight);
      fflush(stderr);
    }
  }
  if (tty) fprintf(stderr, "\r\033[K");
  fprintf(stderr, "reel batch: %ld of %zu lines succeeded, %ld failed%s\n", b.succeeded, total, b.failed,
          interrupted ? " (interrupted: rerun to resume)" : "");
  if (interrupted && rc == 0) rc = 130;
  if (rc == 0 && (b.failed || (size_t)b.succeeded < total)) rc = 1;
out:
  reel_client_destroy(&c);
  if (b.manifest) fclose(b.manifest);
  for (size_t i = 0; i < b.n; i++) reel_free(b.items[i].text);
  reel_free(b.items);
  if (b.finished) json_decref(b.finished);
  if (defaults) json_decref(defaults);
  reel_jobspec_fini(&flags);
  return rc;
}
