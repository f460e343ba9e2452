/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The job specification: what a client asks for (prompt, model, size, frames,
 * sampler, codec, ...), shared by the CLI, the queue and the worker pipeline.
 *
 * A spec arrives as JSON from outside (a client message, a JSONL batch line) or
 * from CLI flags. reel_jobspec_from_json() accepts only known fields, checks each
 * against reel_job_limits and names the field and limit on failure. Zero in a
 * numeric field means "the model's default"; the pipeline fills those in.
 */
#ifndef REEL_JOBSPEC_H
#define REEL_JOBSPEC_H

#include <stdint.h>

#include "reel/json.h"
#include "reel/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { REEL_SAMPLER_DEFAULT = 0, REEL_SAMPLER_UNIPC, REEL_SAMPLER_EULER, REEL_SAMPLER_DPMPP_2M } reel_sampler;
typedef enum { REEL_CODEC_H264 = 0, REEL_CODEC_HEVC, REEL_CODEC_AV1, REEL_CODEC_VP9 } reel_codec;
typedef enum { REEL_CONTAINER_AUTO = 0, REEL_CONTAINER_MP4, REEL_CONTAINER_FMP4, REEL_CONTAINER_WEBM, REEL_CONTAINER_MKV } reel_container;
typedef enum { REEL_BACKEND_AUTO = 0, REEL_BACKEND_CPU, REEL_BACKEND_CUDA } reel_backend_kind;
typedef enum { REEL_CLASS_INTERACTIVE = 0, REEL_CLASS_BATCH } reel_job_class;

/* Names, indexed by the enums above, NULL-terminated (for reel_json_get_enum and flag parsing). */
extern const char *const reel_sampler_names[];
extern const char *const reel_codec_names[];
extern const char *const reel_container_names[];
extern const char *const reel_backend_names[];
extern const char *const reel_class_names[];

/* Limits a service applies to specs; reel_job_limits_default() gives the built-in ones. */
typedef struct reel_job_limits {
  int max_prompt_bytes;   /* prompt and negative prompt, bytes of UTF-8 */
  int max_width, max_height;
  int max_frames;
  int max_steps;
  double max_fps;
  int64_t max_deadline_ms;
} reel_job_limits;

reel_job_limits reel_job_limits_default(void);

typedef struct reel_jobspec {
  char *prompt;          /* required; owned */
  char *negative_prompt; /* NULL = model default; owned */
  char *model;           /* model name or directory; NULL = service default; owned */
  int width, height;     /* pixels; 0 = model default */
  int frames;            /* 0 = model default */
  double fps;            /* 0 = model default */
  int steps;             /* denoising steps; 0 = model default */
  double guidance;       /* classifier-free guidance scale; < 0 = model default */
  double shift;          /* flow shift; < 0 = model default */
  reel_sampler sampler;
  uint64_t seed;
  int seed_set;          /* 0: the service picks a seed and reports it */
  reel_codec codec;
  reel_container container;
  int crf;               /* -1 = codec default */
  int bitrate;           /* average video bit rate, kbit/s, instead of crf; 0 = use crf */
  char *preset;          /* encoder preset; NULL = default; owned */
  reel_backend_kind backend;
  reel_job_class job_class;
  int priority;          /* 0..9 within the class, higher first */
  char *idempotency_key; /* owned; NULL = none */
  char *output;          /* storage URL or key; NULL = service default; owned */
  char *region;          /* required worker region/label; NULL = any; owned */
  int64_t deadline_ms;   /* time-to-start deadline after acceptance; 0 = none */
  int preview_every;     /* preview frame every K steps; 0 = off */
  char *poster;          /* poster image URL or path (.png, .jpg, .jpeg); NULL = none; owned */
  int poster_frame;      /* the poster's frame, 0-based; -1 = the middle frame */
  char *preview_anim;    /* animated preview URL or path (.webp, .gif); NULL = none; owned */
} reel_jobspec;

/* Fills defaults (no prompt). Cannot fail. */
void reel_jobspec_init(reel_jobspec *spec);
/* Frees owned strings and re-inits. Accepts NULL. */
void reel_jobspec_fini(reel_jobspec *spec);
/* Deep copy into an init'ed or zeroed dst (dst's old strings are freed). */
reel_status reel_jobspec_copy(reel_jobspec *dst, const reel_jobspec *src);

/* Replaces an owned string member with a copy of s (NULL allowed). */
reel_status reel_jobspec_set_str(char **member, const char *s);

/*
 * Reads a spec from a JSON object; unknown fields are rejected. `path` names the
 * object in errors ("job"). On failure spec is left init'ed (nothing leaks).
 */
reel_status reel_jobspec_from_json(const json_t *obj, const char *path, const reel_job_limits *limits,
                                   reel_jobspec *spec /* OUT: */, reel_error *err);

/* Checks a spec (e.g. one built from flags) against limits. */
reel_status reel_jobspec_validate(const reel_jobspec *spec, const reel_job_limits *limits, reel_error *err);

/* New JSON object describing the spec (omits defaults); NULL on allocation failure. */
json_t *reel_jobspec_to_json(const reel_jobspec *spec);

/* Parses "WxH" (e.g. "832x480"). */
reel_status reel_parse_size(const char *s, int *w /* OUT: */, int *h /* OUT: */);

/* Returns the index of `s` in a NULL-terminated name list, or -1. */
int reel_name_index(const char *const *names, const char *s);

#ifdef __cplusplus
}
#endif
#endif
