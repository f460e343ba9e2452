/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Flags and helpers shared by the queue verbs (submit, status, cancel, jobs,
 * workers, batch, worker): where the broker is (--broker, $REEL_BROKER), CURVE
 * keys (--key/$REEL_KEY, --broker-key/$REEL_BROKER_KEY), the tenant without auth
 * (--tenant/$REEL_TENANT), the request timeout, and printing job records.
 */
#ifndef REEL_CLI_QUEUE_COMMON_H
#define REEL_CLI_QUEUE_COMMON_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "jobflags.h"
#include "reel/client.h"
#include "reel/keys.h"
#include "reel/log.h"

/* getopt_long values of the shared queue flags (after the job flags' range). */
enum {
  QF_BROKER = REEL_JF_END + 0x100,
  QF_KEY,
  QF_BROKER_KEY,
  QF_TENANT,
  QF_TIMEOUT,
  QF_END /* first value free for a verb */
};

typedef struct queue_flags {
  const char *broker;     /* endpoint */
  const char *key;        /* this peer's .key file */
  const char *broker_key; /* broker's .pub/.key file or a Z85 key */
  const char *tenant;
  int64_t timeout_ms;
  int verbose;
  reel_logger log;
  reel_keypair own, server; /* loaded by queue_flags_keys() */
} queue_flags;

/* The shared flags, without a terminating zero entry. */
extern const struct option queue_flag_options[];
extern const size_t queue_flag_count;

/* Fills defaults from the environment. */
void queue_flags_init(queue_flags *q);
/* Builds a getopt table: own (zero-terminated) + queue flags (+ job flags when with_job) + terminator. */
size_t queue_flags_table(const struct option *own, int with_job, struct option *dst, size_t cap);
/* Applies one option: 1 applied, 0 not a queue flag, -1 bad value (message printed, prefixed by verb). */
int queue_flags_apply(queue_flags *q, int opt, const char *arg, const char *verb);
/* Loads the key files named by the flags. Returns nonzero (message printed) on failure. */
int queue_flags_keys(queue_flags *q, const char *verb);
/* Connects a client. Returns NULL (message printed) on failure. */
reel_client *queue_connect(queue_flags *q, const char *verb);
/* Writes the shared flags' help. */
void queue_flags_usage(FILE *f);

/* Prints a job record as text (several lines). */
void queue_print_job(FILE *f, const json_t *job);
/* Prints one JSON value compactly on a line of stdout. */
void queue_print_json(const json_t *v);
/* Prints a broker or client error: "reel VERB: field: message (CODE)". Returns 1 (the exit status). */
int queue_fail(const char *verb, reel_status st, const reel_error *err);

/* Parses a decimal integer in lo..hi; returns nonzero (message printed) when invalid. */
int queue_parse_int(const char *verb, const char *flag, const char *arg, long lo, long hi, long *out);

#endif
