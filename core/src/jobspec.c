/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Job spec parsing and validation. See reel/jobspec.h.
 */
#include "reel/jobspec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "reel/alloc.h"

const char *const reel_sampler_names[] = {"default", "unipc", "euler", "dpm++", NULL};
const char *const reel_codec_names[] = {"h264", "hevc", "av1", "vp9", NULL};
const char *const reel_container_names[] = {"auto", "mp4", "fmp4", "webm", "mkv", NULL};
const char *const reel_backend_names[] = {"auto", "cpu", "cuda", NULL};
const char *const reel_class_names[] = {"interactive", "batch", NULL};

reel_job_limits reel_job_limits_default(void) {
  reel_job_limits l;
  l.max_prompt_bytes = 8192;
  l.max_width = 3840;
  l.max_height = 3840;
  l.max_frames = 1025;
  l.max_steps = 1000;
  l.max_fps = 240.0;
  l.max_deadline_ms = 7LL * 24 * 3600 * 1000;
  return l;
}

void reel_jobspec_init(reel_jobspec *s) {
  memset(s, 0, sizeof *s);
  s->guidance = -1.0;
  s->shift = -1.0;
  s->crf = -1;
  s->poster_frame = -1;
  s->codec = REEL_CODEC_H264;
  s->container = REEL_CONTAINER_AUTO;
}

void reel_jobspec_fini(reel_jobspec *s) {
  if (!s) return;
  reel_free(s->prompt);
  reel_free(s->negative_prompt);
  reel_free(s->model);
  reel_free(s->preset);
  reel_free(s->idempotency_key);
  reel_free(s->output);
  reel_free(s->region);
  reel_free(s->poster);
  reel_free(s->preview_anim);
  reel_jobspec_init(s);
}

reel_status reel_jobspec_set_str(char **member, const char *s) {
  char *copy = NULL;
  if (s) {
    copy = reel_strdup(s);
    if (!copy) return REEL_ENOMEM;
  }
  reel_free(*member);
  *member = copy;
  return REEL_OK;
}

reel_status reel_jobspec_copy(reel_jobspec *dst, const reel_jobspec *src) {
  reel_jobspec tmp = *src;
  tmp.prompt = tmp.negative_prompt = tmp.model = tmp.preset = tmp.idempotency_key = tmp.output = tmp.region = NULL;
  tmp.poster = tmp.preview_anim = NULL;
  if (reel_jobspec_set_str(&tmp.prompt, src->prompt) || reel_jobspec_set_str(&tmp.negative_prompt, src->negative_prompt) ||
      reel_jobspec_set_str(&tmp.model, src->model) || reel_jobspec_set_str(&tmp.preset, src->preset) ||
      reel_jobspec_set_str(&tmp.idempotency_key, src->idempotency_key) ||
      reel_jobspec_set_str(&tmp.output, src->output) || reel_jobspec_set_str(&tmp.region, src->region) ||
      reel_jobspec_set_str(&tmp.poster, src->poster) || reel_jobspec_set_str(&tmp.preview_anim, src->preview_anim)) {
    reel_jobspec_fini(&tmp);
    return REEL_ENOMEM;
  }
  reel_jobspec_fini(dst);
  *dst = tmp;
  return REEL_OK;
}

static const char *const known_fields[] = {
    "prompt", "negative_prompt", "model", "width", "height", "frames", "fps", "steps", "guidance", "shift",
    "sampler", "seed", "codec", "container", "crf", "bitrate", "preset", "backend", "class", "priority", "idempotency_key",
    "output", "region", "deadline_ms", "preview_every", "poster", "poster_frame", "preview_anim", NULL};

/* Copies an optional string field. */
static reel_status take_str(const json_t *obj, const char *path, const char *key, reel_json_need need, size_t max,
                            char **member, reel_error *err) {
  const char *s = NULL;
  reel_status st = reel_json_get_string(obj, path, key, need, max, &s, err);
  if (st != REEL_OK || !s) return st;
  if (reel_jobspec_set_str(member, s) != REEL_OK) return reel_error_set(err, REEL_ENOMEM, key, "out of memory");
  return REEL_OK;
}

/* Identifiers that end up in object keys and logs: printable ASCII without '/' surprises. */
static reel_status check_token(const char *s, const char *path, const char *key, reel_error *err) {
  if (!s) return REEL_OK;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p < 0x21 || *p > 0x7e) {
      char name[REEL_ERROR_FIELD_MAX];
      snprintf(name, sizeof name, "%s.%s", path, key);
      return reel_error_set(err, REEL_EINVAL, name, "must be printable ASCII without spaces");
    }
  }
  return REEL_OK;
}

reel_status reel_jobspec_from_json(const json_t *obj, const char *path, const reel_job_limits *limits,
                                   reel_jobspec *spec, reel_error *err) {
  reel_job_limits def = reel_job_limits_default();
  if (!limits) limits = &def;
  if (!path) path = "job";
  reel_jobspec s;
  reel_jobspec_init(&s);
  reel_status st = reel_json_check_keys(obj, path, known_fields, err);
  if (st) goto fail;
  int64_t i64;
  int idx;
  if ((st = take_str(obj, path, "prompt", REEL_JSON_REQUIRED, (size_t)limits->max_prompt_bytes, &s.prompt, err))) goto fail;
  if ((st = take_str(obj, path, "negative_prompt", REEL_JSON_OPTIONAL, (size_t)limits->max_prompt_bytes,
                     &s.negative_prompt, err)))
    goto fail;
  if ((st = take_str(obj, path, "model", REEL_JSON_OPTIONAL, 1024, &s.model, err))) goto fail;
#define GET_INT(key, lo, hi, member)                                                                  \
  do {                                                                                                \
    i64 = (member);                                                                                   \
    if ((st = reel_json_get_int(obj, path, key, REEL_JSON_OPTIONAL, lo, hi, &i64, err))) goto fail;   \
    (member) = (int)i64;                                                                              \
  } while (0)
  GET_INT("width", 16, limits->max_width, s.width);
  GET_INT("height", 16, limits->max_height, s.height);
  GET_INT("frames", 1, limits->max_frames, s.frames);
  GET_INT("steps", 1, limits->max_steps, s.steps);
  GET_INT("crf", 0, 63, s.crf);
  GET_INT("bitrate", 1, 1000000, s.bitrate);
  GET_INT("priority", 0, 9, s.priority);
  GET_INT("preview_every", 0, 1000, s.preview_every);
  GET_INT("poster_frame", 0, limits->max_frames - 1, s.poster_frame);
#undef GET_INT
  if ((st = reel_json_get_double(obj, path, "fps", REEL_JSON_OPTIONAL, 1.0, limits->max_fps, &s.fps, err))) goto fail;
  if ((st = reel_json_get_double(obj, path, "guidance", REEL_JSON_OPTIONAL, 0.0, 100.0, &s.guidance, err))) goto fail;
  if ((st = reel_json_get_double(obj, path, "shift", REEL_JSON_OPTIONAL, 0.01, 100.0, &s.shift, err))) goto fail;
  if (json_object_get(obj, "seed") && !json_is_null(json_object_get(obj, "seed"))) {
    if ((st = reel_json_get_u64(obj, path, "seed", REEL_JSON_REQUIRED, &s.seed, err))) goto fail;
    s.seed_set = 1;
  }
#define GET_ENUM(key, names, member)                                                                  \
  do {                                                                                                \
    idx = (int)(member);                                                                              \
    if ((st = reel_json_get_enum(obj, path, key, REEL_JSON_OPTIONAL, names, &idx, err))) goto fail;   \
    (member) = idx;                                                                                   \
  } while (0)
  GET_ENUM("sampler", reel_sampler_names, s.sampler);
  GET_ENUM("codec", reel_codec_names, s.codec);
  GET_ENUM("container", reel_container_names, s.container);
  GET_ENUM("backend", reel_backend_names, s.backend);
  GET_ENUM("class", reel_class_names, s.job_class);
#undef GET_ENUM
  if ((st = take_str(obj, path, "preset", REEL_JSON_OPTIONAL, 32, &s.preset, err))) goto fail;
  if ((st = take_str(obj, path, "idempotency_key", REEL_JSON_OPTIONAL, 128, &s.idempotency_key, err))) goto fail;
  if ((st = take_str(obj, path, "output", REEL_JSON_OPTIONAL, 1024, &s.output, err))) goto fail;
  if ((st = take_str(obj, path, "region", REEL_JSON_OPTIONAL, 64, &s.region, err))) goto fail;
  if ((st = take_str(obj, path, "poster", REEL_JSON_OPTIONAL, 1024, &s.poster, err))) goto fail;
  if ((st = take_str(obj, path, "preview_anim", REEL_JSON_OPTIONAL, 1024, &s.preview_anim, err))) goto fail;
  i64 = 0;
  if ((st = reel_json_get_int(obj, path, "deadline_ms", REEL_JSON_OPTIONAL, 0, limits->max_deadline_ms, &i64, err)))
    goto fail;
  s.deadline_ms = i64;
  if ((st = check_token(s.preset, path, "preset", err)) || (st = check_token(s.region, path, "region", err)) ||
      (st = check_token(s.idempotency_key, path, "idempotency_key", err)))
    goto fail;
  if ((st = reel_jobspec_validate(&s, limits, err))) goto fail;
  reel_jobspec_fini(spec);
  *spec = s;
  return REEL_OK;
fail:
  reel_jobspec_fini(&s);
  return st;
}

/* Nonzero when `name` ends in one of the NULL-terminated extensions (".png"), ignoring case. */
static int has_extension(const char *name, const char *const *exts) {
  const char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
  if (!dot || (slash && slash > dot)) return 0;
  for (int i = 0; exts[i]; i++)
    if (!strcasecmp(dot, exts[i])) return 1;
  return 0;
}

static reel_status check_range_int(const char *field, int v, int lo, int hi, reel_error *err) {
  if (v == 0) return REEL_OK; /* model default */
  if (v < lo || v > hi) return reel_error_set(err, REEL_ERANGE, field, "must be in %d..%d, got %d", lo, hi, v);
  return REEL_OK;
}

reel_status reel_jobspec_validate(const reel_jobspec *s, const reel_job_limits *limits, reel_error *err) {
  reel_job_limits def = reel_job_limits_default();
  if (!limits) limits = &def;
  reel_status st;
  if (!s->prompt) return reel_error_set(err, REEL_EINVAL, "job.prompt", "required field is missing");
  size_t plen = strlen(s->prompt);
  if (plen > (size_t)limits->max_prompt_bytes)
    return reel_error_set(err, REEL_ELIMIT, "job.prompt", "is %zu bytes, limit %d", plen, limits->max_prompt_bytes);
  if (s->negative_prompt && strlen(s->negative_prompt) > (size_t)limits->max_prompt_bytes)
    return reel_error_set(err, REEL_ELIMIT, "job.negative_prompt", "is %zu bytes, limit %d",
                          strlen(s->negative_prompt), limits->max_prompt_bytes);
  if ((st = check_range_int("job.width", s->width, 16, limits->max_width, err))) return st;
  if ((st = check_range_int("job.height", s->height, 16, limits->max_height, err))) return st;
  if (s->width % 2 || s->height % 2)
    return reel_error_set(err, REEL_EINVAL, s->width % 2 ? "job.width" : "job.height",
                          "must be even (4:2:0 video), got %d", s->width % 2 ? s->width : s->height);
  if ((st = check_range_int("job.frames", s->frames, 1, limits->max_frames, err))) return st;
  if ((st = check_range_int("job.steps", s->steps, 1, limits->max_steps, err))) return st;
  if (s->fps != 0.0 && (!isfinite(s->fps) || s->fps < 1.0 || s->fps > limits->max_fps))
    return reel_error_set(err, REEL_ERANGE, "job.fps", "must be in 1..%g, got %g", limits->max_fps, s->fps);
  if (!isfinite(s->guidance) || s->guidance > 100.0)
    return reel_error_set(err, REEL_ERANGE, "job.guidance", "must be in 0..100, got %g", s->guidance);
  if (!isfinite(s->shift) || s->shift > 100.0 || (s->shift >= 0 && s->shift < 0.01))
    return reel_error_set(err, REEL_ERANGE, "job.shift", "must be in 0.01..100, got %g", s->shift);
  if (s->crf < -1 || s->crf > 63) return reel_error_set(err, REEL_ERANGE, "job.crf", "must be in 0..63, got %d", s->crf);
  if (s->bitrate < 0 || s->bitrate > 1000000)
    return reel_error_set(err, REEL_ERANGE, "job.bitrate", "must be in 1..1000000 kbit/s, got %d", s->bitrate);
  if (s->bitrate && s->crf >= 0)
    return reel_error_set(err, REEL_EINVAL, "job.bitrate", "cannot be combined with crf (%d): set one of them", s->crf);
  if (s->priority < 0 || s->priority > 9)
    return reel_error_set(err, REEL_ERANGE, "job.priority", "must be in 0..9, got %d", s->priority);
  if (s->deadline_ms < 0 || s->deadline_ms > limits->max_deadline_ms)
    return reel_error_set(err, REEL_ERANGE, "job.deadline_ms", "must be in 0..%lld, got %lld",
                          (long long)limits->max_deadline_ms, (long long)s->deadline_ms);
  static const char *const poster_exts[] = {".png", ".jpg", ".jpeg", NULL}, *const anim_exts[] = {".webp", ".gif", NULL};
  if (s->poster && (!s->poster[0] || !has_extension(s->poster, poster_exts)))
    return reel_error_set(err, REEL_EINVAL, "job.poster", "'%.200s': must end in .png, .jpg or .jpeg", s->poster);
  if (s->preview_anim && (!s->preview_anim[0] || !has_extension(s->preview_anim, anim_exts)))
    return reel_error_set(err, REEL_EINVAL, "job.preview_anim", "'%.200s': must end in .webp or .gif",
                          s->preview_anim);
  if (s->poster_frame < -1 || s->poster_frame >= limits->max_frames)
    return reel_error_set(err, REEL_ERANGE, "job.poster_frame", "must be in 0..%d, got %d", limits->max_frames - 1,
                          s->poster_frame);
  if (s->poster_frame >= 0 && !s->poster)
    return reel_error_set(err, REEL_EINVAL, "job.poster_frame", "needs a poster to go with it");
  if (s->poster_frame >= 0 && s->frames && s->poster_frame >= s->frames)
    return reel_error_set(err, REEL_ERANGE, "job.poster_frame", "must be below the %d frames asked for, got %d",
                          s->frames, s->poster_frame);
  if ((s->container == REEL_CONTAINER_WEBM) && (s->codec == REEL_CODEC_H264 || s->codec == REEL_CODEC_HEVC))
    return reel_error_set(err, REEL_EINVAL, "job.container", "webm carries only vp9 or av1, not %s",
                          reel_codec_names[s->codec]);
  return REEL_OK;
}

json_t *reel_jobspec_to_json(const reel_jobspec *s) {
  json_t *o = json_object();
  if (!o) return NULL;
  int bad = 0;
#define SET(key, val)                                         \
  do {                                                        \
    json_t *v_ = (val);                                       \
    if (!v_ || json_object_set_new(o, key, v_) != 0) bad = 1; \
  } while (0)
  if (s->prompt) SET("prompt", json_string(s->prompt));
  if (s->negative_prompt) SET("negative_prompt", json_string(s->negative_prompt));
  if (s->model) SET("model", json_string(s->model));
  if (s->width) SET("width", json_integer(s->width));
  if (s->height) SET("height", json_integer(s->height));
  if (s->frames) SET("frames", json_integer(s->frames));
  if (s->fps > 0) SET("fps", json_real(s->fps));
  if (s->steps) SET("steps", json_integer(s->steps));
  if (s->guidance >= 0) SET("guidance", json_real(s->guidance));
  if (s->shift >= 0) SET("shift", json_real(s->shift));
  if (s->sampler != REEL_SAMPLER_DEFAULT) SET("sampler", json_string(reel_sampler_names[s->sampler]));
  if (s->seed_set) {
    if (s->seed <= (uint64_t)INT64_MAX) {
      SET("seed", json_integer((json_int_t)s->seed));
    } else {
      char buf[32];
      snprintf(buf, sizeof buf, "%llu", (unsigned long long)s->seed);
      SET("seed", json_string(buf));
    }
  }
  SET("codec", json_string(reel_codec_names[s->codec]));
  if (s->container != REEL_CONTAINER_AUTO) SET("container", json_string(reel_container_names[s->container]));
  if (s->crf >= 0) SET("crf", json_integer(s->crf));
  if (s->bitrate) SET("bitrate", json_integer(s->bitrate));
  if (s->preset) SET("preset", json_string(s->preset));
  if (s->backend != REEL_BACKEND_AUTO) SET("backend", json_string(reel_backend_names[s->backend]));
  if (s->job_class != REEL_CLASS_INTERACTIVE) SET("class", json_string(reel_class_names[s->job_class]));
  if (s->priority) SET("priority", json_integer(s->priority));
  if (s->idempotency_key) SET("idempotency_key", json_string(s->idempotency_key));
  if (s->output) SET("output", json_string(s->output));
  if (s->region) SET("region", json_string(s->region));
  if (s->deadline_ms) SET("deadline_ms", json_integer(s->deadline_ms));
  if (s->preview_every) SET("preview_every", json_integer(s->preview_every));
  if (s->poster) SET("poster", json_string(s->poster));
  if (s->poster_frame >= 0) SET("poster_frame", json_integer(s->poster_frame));
  if (s->preview_anim) SET("preview_anim", json_string(s->preview_anim));
#undef SET
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

reel_status reel_parse_size(const char *s, int *w, int *h) {
  if (!s) return REEL_EINVAL;
  char *end = NULL;
  long a = strtol(s, &end, 10);
  if (end == s || (*end != 'x' && *end != 'X')) return REEL_EINVAL;
  const char *p = end + 1;
  long b = strtol(p, &end, 10);
  if (end == p || *end != '\0' || a <= 0 || b <= 0 || a > 65536 || b > 65536) return REEL_EINVAL;
  *w = (int)a;
  *h = (int)b;
  return REEL_OK;
}

int reel_name_index(const char *const *names, const char *s) {
  if (!s) return -1;
  for (int i = 0; names[i]; i++)
    if (strcmp(names[i], s) == 0) return i;
  return -1;
}
