/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared flags and output helpers of the queue verbs. See queue_common.h.
 */
#include "queue_common.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reel/clock.h"
#include "reel/protocol.h"

const struct option queue_flag_options[] = {
    {"broker", required_argument, NULL, QF_BROKER},         {"key", required_argument, NULL, QF_KEY},
    {"broker-key", required_argument, NULL, QF_BROKER_KEY}, {"tenant", required_argument, NULL, QF_TENANT},
    {"timeout", required_argument, NULL, QF_TIMEOUT},
};
const size_t queue_flag_count = sizeof queue_flag_options / sizeof queue_flag_options[0];

void queue_flags_init(queue_flags *q) {
  memset(q, 0, sizeof *q);
  q->broker = getenv("REEL_BROKER");
  q->key = getenv("REEL_KEY");
  q->broker_key = getenv("REEL_BROKER_KEY");
  q->tenant = getenv("REEL_TENANT");
  q->timeout_ms = 30000;
  reel_logger_init(&q->log, REEL_LOG_WARN, REEL_LOG_TEXT, 2);
}

size_t queue_flags_table(const struct option *own, int with_job, struct option *dst, size_t cap) {
  size_t n = 0;
  for (; own[n].name; n++) {
    if (n + 1 >= cap) return 0;
    dst[n] = own[n];
  }
  for (size_t i = 0; i < queue_flag_count; i++) {
    if (n + 1 >= cap) return 0;
    dst[n++] = queue_flag_options[i];
  }
  if (with_job) {
    for (size_t i = 0; i < reel_jobflags_count; i++) {
      if (n + 1 >= cap) return 0;
      dst[n++] = reel_jobflags_options[i];
    }
  }
  memset(&dst[n], 0, sizeof dst[n]);
  return n;
}

int queue_parse_int(const char *verb, const char *flag, const char *arg, long lo, long hi, long *out) {
  char *end = NULL;
  long v = strtol(arg, &end, 10);
  if (!arg[0] || *end || v < lo || v > hi) {
    fprintf(stderr, "reel %s: %s: must be an integer in %ld..%ld, got '%.40s'\n", verb, flag, lo, hi, arg);
    return 1;
  }
  *out = v;
  return 0;
}

int queue_flags_apply(queue_flags *q, int opt, const char *arg, const char *verb) {
  long v;
  switch (opt) {
    case QF_BROKER:
      q->broker = arg;
      return 1;
    case QF_KEY:
      q->key = arg;
      return 1;
    case QF_BROKER_KEY:
      q->broker_key = arg;
      return 1;
    case QF_TENANT:
      if (!reel_proto_is_token(arg, REEL_PROTO_NAME_MAX)) {
        fprintf(stderr, "reel %s: --tenant: must be 1..%d printable ASCII characters without spaces\n", verb,
                REEL_PROTO_NAME_MAX);
        return -1;
      }
      q->tenant = arg;
      return 1;
    case QF_TIMEOUT:
      if (queue_parse_int(verb, "--timeout", arg, 1, 86400, &v)) return -1;
      q->timeout_ms = v * 1000;
      return 1;
    default:
      return 0;
  }
}

int queue_flags_keys(queue_flags *q, const char *verb) {
  reel_error err;
  reel_error_clear(&err);
  memset(&q->own, 0, sizeof q->own);
  memset(&q->server, 0, sizeof q->server);
  if (!q->broker_key || !q->broker_key[0]) {
    if (q->key && q->key[0]) fprintf(stderr, "reel %s: note: --key is ignored without --broker-key (no CURVE)\n", verb);
    return 0;
  }
  if (reel_keys_valid_z85(q->broker_key)) {
    snprintf(q->server.public_key, sizeof q->server.public_key, "%s", q->broker_key);
  } else if (reel_keys_load(q->broker_key, 0, &q->server, &err) != REEL_OK) {
    fprintf(stderr, "reel %s: --broker-key: %s: %s\n", verb, err.field, err.msg);
    return 1;
  }
  if (!q->key || !q->key[0]) {
    fprintf(stderr, "reel %s: --key: required with --broker-key (a .key file from 'reel keygen')\n", verb);
    return 1;
  }
  if (reel_keys_load(q->key, 1, &q->own, &err) != REEL_OK) {
    fprintf(stderr, "reel %s: --key: %s: %s\n", verb, err.field, err.msg);
    return 1;
  }
  return 0;
}

reel_client *queue_connect(queue_flags *q, const char *verb) {
  if (!q->broker || !q->broker[0]) {
    fprintf(stderr, "reel %s: --broker: no broker endpoint (give --broker tcp://HOST:PORT or set REEL_BROKER)\n", verb);
    return NULL;
  }
  if (queue_flags_keys(q, verb)) return NULL;
  reel_client_options o;
  reel_client_options_init(&o);
  o.endpoint = q->broker;
  o.tenant = q->tenant;
  o.timeout_ms = q->timeout_ms;
  o.log = &q->log;
  if (q->server.public_key[0]) {
    o.broker_public_key = q->server.public_key;
    o.public_key = q->own.public_key;
    o.secret_key = q->own.secret_key;
  }
  reel_client *c = NULL;
  reel_error err;
  reel_error_clear(&err);
  if (reel_client_new(&o, &c, &err) != REEL_OK) {
    fprintf(stderr, "reel %s: %s: %s\n", verb, err.field, err.msg);
    return NULL;
  }
  return c;
}

void queue_flags_usage(FILE *f) {
  fprintf(f,
          "queue options:\n"
          "  --broker ENDPOINT   the broker, e.g. tcp://host:5555 (default $REEL_BROKER)\n"
          "  --broker-key FILE   the broker's public key (.pub file or 40 Z85 characters; default\n"
          "                      $REEL_BROKER_KEY): turns CURVE encryption and auth on\n"
          "  --key FILE          this client's key pair from 'reel keygen' (default $REEL_KEY)\n"
          "  --tenant NAME       without auth: the tenant to act as (default $REEL_TENANT or 'default')\n"
          "  --timeout SECONDS   per request, including reconnects (default 30)\n");
}

void queue_print_json(const json_t *v) {
  char *s = json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(10));
  if (s) {
    printf("%s\n", s);
    free(s);
  }
  fflush(stdout);
}

int queue_fail(const char *verb, reel_status st, const reel_error *err) {
  fprintf(stderr, "reel %s: %s%s%s (%s)\n", verb, err->field, err->field[0] ? ": " : "",
          err->msg[0] ? err->msg : reel_strerror(st), reel_status_name(st));
  return 1;
}

static void print_time(FILE *f, const char *label, const json_t *job, const char *key) {
  json_t *v = json_object_get(job, key);
  if (!json_is_integer(v) || json_integer_value(v) <= 0) return;
  char buf[40];
  fprintf(f, "  %-9s %s\n", label, reel_format_rfc3339(json_integer_value(v), buf, sizeof buf));
}

void queue_print_job(FILE *f, const json_t *job) {
  const char *s;
  fprintf(f, "job %s  %s\n", json_string_value(json_object_get(job, "id")),
          json_string_value(json_object_get(job, "state")));
  fprintf(f, "  tenant    %s, class %s, priority %lld, attempts %lld of %lld\n",
          json_string_value(json_object_get(job, "tenant")), json_string_value(json_object_get(job, "class")),
          (long long)json_integer_value(json_object_get(job, "priority")),
          (long long)json_integer_value(json_object_get(job, "attempts")),
          (long long)json_integer_value(json_object_get(job, "max_attempts")));
  json_t *spec = json_object_get(job, "spec");
  s = json_string_value(json_object_get(spec ? spec : job, "prompt"));
  if (s) fprintf(f, "  prompt    %s\n", s);
  if (json_object_get(job, "position"))
    fprintf(f, "  position  %lld\n", (long long)json_integer_value(json_object_get(job, "position")));
  if ((s = json_string_value(json_object_get(job, "worker")))) fprintf(f, "  worker    %s\n", s);
  json_t *p = json_object_get(job, "progress");
  if (p)
    fprintf(f, "  progress  %s %lld/%lld (%.0f%%)\n", json_string_value(json_object_get(p, "stage")),
            (long long)json_integer_value(json_object_get(p, "step")),
            (long long)json_integer_value(json_object_get(p, "steps")),
            100.0 * json_number_value(json_object_get(p, "fraction")));
  if (json_is_true(json_object_get(job, "cancel_requested"))) fprintf(f, "  cancel    requested\n");
  print_time(f, "accepted", job, "accepted_ms");
  print_time(f, "started", job, "started_ms");
  print_time(f, "finished", job, "finished_ms");
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(job, "outputs"), i, v) {
    fprintf(f, "  output    %s (%lld bytes)\n", json_string_value(json_object_get(v, "url")),
            (long long)json_integer_value(json_object_get(v, "bytes")));
  }
  json_t *e = json_object_get(job, "error");
  if (e) {
    const char *field = json_string_value(json_object_get(e, "field"));
    fprintf(f, "  error     %s: %s%s%s\n", json_string_value(json_object_get(e, "code")), field ? field : "",
            field && field[0] ? ": " : "", json_string_value(json_object_get(e, "message")));
  }
  json_array_foreach(json_object_get(job, "history"), i, v) {
    fprintf(f, "  attempt %lld on %s: %s\n", (long long)json_integer_value(json_object_get(v, "attempt")),
            json_string_value(json_object_get(v, "worker")), json_string_value(json_object_get(v, "outcome")));
  }
}
