/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The job flags shared by every verb that describes a job (`reel generate`,
 * `reel submit`, `reel batch`): --model, --size, --frames, --fps, --seed,
 * --steps, --cfg, --shift, --sampler, --negative, --codec, --container, --crf,
 * --bitrate, --preset, --backend, --poster, --poster-frame, --preview-anim. A verb appends reel_jobflags_options to its own
 * getopt_long table and hands each result to reel_jobflags_apply().
 *
 * Errors name the flag ("--frames") and the limit; reel_jobflags_flag_name()
 * turns a job spec field ("job.frames") into the flag that sets it, so errors
 * found later (by validation, the encoder) still point at a flag.
 */
#ifndef REEL_CLI_JOBFLAGS_H
#define REEL_CLI_JOBFLAGS_H

#include <getopt.h>
#include <stdio.h>

#include "reel/jobspec.h"
#include "reel/status.h"

/* getopt_long values of the job flags: above the char range, so verbs keep their short options. */
enum {
  REEL_JF_MODEL = 0x1000,
  REEL_JF_SIZE,
  REEL_JF_FRAMES,
  REEL_JF_FPS,
  REEL_JF_SEED,
  REEL_JF_STEPS,
  REEL_JF_CFG,
  REEL_JF_SHIFT,
  REEL_JF_SAMPLER,
  REEL_JF_NEGATIVE,
  REEL_JF_CODEC,
  REEL_JF_CONTAINER,
  REEL_JF_CRF,
  REEL_JF_BITRATE,
  REEL_JF_PREVIEW_EVERY,
  REEL_JF_PRESET,
  REEL_JF_BACKEND,
  REEL_JF_POSTER,
  REEL_JF_POSTER_FRAME,
  REEL_JF_PREVIEW_ANIM,
  REEL_JF_END /* first value free for a verb's own long-only options */
};

/* The job flags, without a terminating zero entry. */
extern const struct option reel_jobflags_options[];
extern const size_t reel_jobflags_count;

/*
 * Builds a getopt_long table: `own` (terminated by a zero entry) followed by the
 * job flags and a zero entry, into dst of capacity cap. Returns the number of
 * entries written (without the terminator), or 0 if cap is too small.
 */
size_t reel_jobflags_table(const struct option *own, struct option *dst, size_t cap);

/*
 * Applies one getopt_long result. Returns 1 when `opt` is a job flag and was
 * applied to spec, 0 when it is not a job flag, and -1 when its value is bad
 * (err names the flag and the limit, code REEL_EINVAL/REEL_ERANGE/REEL_ENOMEM).
 */
int reel_jobflags_apply(int opt, const char *arg, reel_jobspec *spec, reel_error *err);

/* Validates the whole spec with reel_jobspec_validate() and renames the field to its flag. */
reel_status reel_jobflags_validate(const reel_jobspec *spec, reel_error *err);

/* The flag that sets a job field ("job.frames" -> "--frames"), or NULL. */
const char *reel_jobflags_flag_name(const char *field);

/* If err->field is a job field, replaces it with its flag. Returns nonzero when it did. */
int reel_jobflags_rename_field(reel_error *err);

/* Writes the job flags' help, one line each. */
void reel_jobflags_usage(FILE *f);

#endif
