/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Example: submit one job to a reel broker from C and follow it to the end.
 *
 *   cc submit.c $(pkg-config ...) -lreel_queue -lreel_core ...   (or build the
 *   `reel_sample_submit` target of this repository)
 *   ./reel_sample_submit --broker tcp://127.0.0.1:5555 "a red circle moving to the right"
 *
 * It builds a job spec (any field of docs/protocol.md "Job spec" can be added),
 * submits it, prints progress events as they arrive and prints the final job
 * record as JSON on stdout. Exit status: 0 succeeded, 1 the job or a request
 * failed (the error names the field), 2 bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/client.h"

/* Prints one event line to stderr: progress, state changes, queue position (docs/protocol.md "Events"). */
static void on_event(void *ud, const json_t *ev) {
  (void)ud;
  const char *type = json_string_value(json_object_get(ev, "event"));
  if (!type) return;
  if (!strcmp(type, "progress")) {
    const char *stage = json_string_value(json_object_get(ev, "stage"));
    fprintf(stderr, "  progress: %s %lld/%lld (%.0f%%)\n", stage ? stage : "?",
            (long long)json_integer_value(json_object_get(ev, "step")),
            (long long)json_integer_value(json_object_get(ev, "steps")),
            100.0 * json_number_value(json_object_get(ev, "fraction")));
  } else {
    const char *state = json_string_value(json_object_get(ev, "state"));
    fprintf(stderr, "  %s%s%s\n", type, state ? ": " : "", state ? state : "");
  }
}

int main(int argc, char **argv) {
  const char *broker = getenv("REEL_BROKER"), *prompt = NULL;
  long frames = 0, seed = -1; /* 0: the model's default */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--broker") && i + 1 < argc)
      broker = argv[++i];
    else if (!strcmp(argv[i], "--frames") && i + 1 < argc)
      frames = strtol(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
      seed = strtol(argv[++i], NULL, 10);
    else if (argv[i][0] != '-' && !prompt)
      prompt = argv[i];
    else {
      fprintf(stderr, "usage: %s [--broker ENDPOINT] [--frames N] [--seed S] PROMPT\n", argv[0]);
      return 2;
    }
  }
  if (!broker || !prompt) {
    fprintf(stderr, "usage: %s [--broker ENDPOINT] [--frames N] [--seed S] PROMPT (or set REEL_BROKER)\n", argv[0]);
    return 2;
  }

  reel_client_options o;
  reel_client_options_init(&o);
  o.endpoint = broker;
  reel_client *c = NULL;
  reel_error err;
  reel_error_clear(&err);
  char msg[800];
  if (reel_client_new(&o, &c, &err) != REEL_OK) {
    fprintf(stderr, "connect: %s\n", reel_error_format(&err, msg, sizeof msg));
    return 1;
  }

  /* The job spec: a JSON object. Unknown fields are rejected by the broker, naming the field. */
  json_t *spec = json_pack("{s:s}", "prompt", prompt);
  if (frames > 0) json_object_set_new(spec, "frames", json_integer(frames));
  if (seed >= 0) json_object_set_new(spec, "seed", json_integer(seed));

  json_t *accepted = NULL, *job = NULL;
  int rc = 1;
  if (reel_client_submit(c, spec, &accepted, &err) != REEL_OK) {
    fprintf(stderr, "submit: %s\n", reel_error_format(&err, msg, sizeof msg));
    goto end;
  }
  const char *id = json_string_value(json_object_get(accepted, "job_id"));
  fprintf(stderr, "accepted %s\n", id);
  /* Follow until the job is terminal (no time limit). */
  if (reel_client_wait(c, id, -1, on_event, NULL, &job, &err) != REEL_OK) {
    fprintf(stderr, "wait: %s\n", reel_error_format(&err, msg, sizeof msg));
    goto end;
  }
  char *text = json_dumps(job, JSON_INDENT(2));
  printf("%s\n", text);
  free(text);
  rc = strcmp(json_string_value(json_object_get(job, "state")), "succeeded") == 0 ? 0 : 1;
end:
  json_decref(job);
  json_decref(accepted);
  json_decref(spec);
  reel_client_destroy(&c);
  return rc;
}
