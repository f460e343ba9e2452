/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The flags of a model-serving worker, shared by `reel worker` and `reel serve`:
 * --model (repeatable), --storage, --backend, --threads, --memory-budget,
 * --capacity, --no-overlap, --queue-mb, --region, --label, --max-width/--max-height/
 * --max-frames, --preview-size, --max-jobs. A verb appends worker_flag_options
 * to its getopt table and hands each result to worker_flags_apply(), then calls
 * worker_flags_finish() to check and complete the options.
 */
#ifndef REEL_CLI_WORKER_FLAGS_H
#define REEL_CLI_WORKER_FLAGS_H

#include <getopt.h>
#include <stdio.h>

#include "reel/worker.h"

/* getopt_long values (above the queue flags' range). */
enum {
  WF_MODEL = 0x3000,
  WF_STORAGE,
  WF_BACKEND,
  WF_THREADS,
  WF_MEMORY,
  WF_NO_OVERLAP,
  WF_QUEUE_MB,
  WF_REGION,
  WF_LABEL,
  WF_MAX_WIDTH,
  WF_MAX_HEIGHT,
  WF_MAX_FRAMES,
  WF_PREVIEW_SIZE,
  WF_MAX_JOBS,
  WF_CAPACITY,
  WF_END
};

extern const struct option worker_flag_options[];
extern const size_t worker_flag_count;

/* Appends the worker flags to dst[n..] (no terminator). Returns the new count, or 0 when cap is too small. */
size_t worker_flags_append(struct option *dst, size_t n, size_t cap);

/* Applies one option: 1 applied, 0 not a worker flag, -1 bad value (message printed, prefixed by verb). */
int worker_flags_apply(reel_worker_options *o, int opt, const char *arg, const char *verb);

/*
 * Checks that --storage was given, creates a local storage directory when
 * missing (like mkdir -p), and reads the test hook from the environment
 * (REEL_TEST_NAN_MARKER, in builds with REEL_TEST_HOOKS only; a warning says it
 * is on). Returns 0, or the exit status after printing why.
 */
int worker_flags_finish(reel_worker_options *o, const char *verb);

/* Writes the worker flags' help. */
void worker_flags_usage(FILE *f);

/* Parses "4G", "512M", "1048576" into bytes. Returns nonzero when invalid. */
int worker_parse_bytes(const char *s, uint64_t *out);

#endif
