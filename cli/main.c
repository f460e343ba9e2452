/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The `reel` command: dispatches to one verb per file (cli/cmd_*.c). This folder
 * is the only place in reel that calls exit().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "reel/json.h"

typedef struct {
  const char *name;
  int (*run)(int argc, char **argv);
  const char *summary;
} verb;

static int cmd_version(int argc, char **argv) {
  (void)argc;
  (void)argv;
  printf("reel %s\n", REEL_VERSION_STRING);
  return 0;
}

static const verb verbs[] = {
    {"generate", cmd_generate, "generate one clip from a prompt in this process"},
#ifdef REEL_HAVE_ENCODER
    {"preview", cmd_preview, "play a clip in the terminal, or write a contact sheet"},
#endif
#ifdef REEL_HAVE_QUEUE
    {"broker", cmd_broker, "run the job queue broker"},
    {"worker", cmd_worker, "run jobs from a broker"},
    {"serve", cmd_serve, "a broker and local workers in one process (single machine)"},
    {"submit", cmd_submit, "submit a job to the broker (--wait follows it)"},
    {"status", cmd_status, "show a job's state, attempts, timings and outputs"},
    {"cancel", cmd_cancel, "cancel a queued or running job"},
    {"jobs", cmd_jobs, "list this tenant's jobs"},
    {"workers", cmd_workers, "list the workers connected to the broker"},
    {"batch", cmd_batch, "run a prompt list through the queue, resumable with a manifest"},
    {"keygen", cmd_keygen, "write a CURVE key pair for queue auth"},
#endif
    {"bench", cmd_bench, "measure throughput, latency and cost (generate, ops, queue)"},
    {"tune", cmd_tune, "search threads, GEMM path and activations for a job on this machine"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: reel <verb> [options]\n\nverbs:\n");
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
  fprintf(f, "\nRun 'reel <verb> --help' for the options of a verb.\n");
}

int main(int argc, char **argv) {
  reel_json_use_reel_alloc();
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) return cmd_version(0, NULL);
  for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
    if (!strcmp(argv[1], verbs[i].name)) exit(verbs[i].run(argc - 1, argv + 1));
  fprintf(stderr, "reel: unknown verb '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
