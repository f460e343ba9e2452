/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsing of the job flags. Each value is read strictly (the whole argument
 * must be a number of the right kind) and checked against the same limits the
 * service applies to job specs from the network (reel_job_limits_default).
 */
#include "jobflags.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/alloc.h"

const struct option reel_jobflags_options[] = {
    {"model", required_argument, NULL, REEL_JF_MODEL},
    {"size", required_argument, NULL, REEL_JF_SIZE},
    {"frames", required_argument, NULL, REEL_JF_FRAMES},
    {"fps", required_argument, NULL, REEL_JF_FPS},
    {"seed", required_argument, NULL, REEL_JF_SEED},
    {"steps", required_argument, NULL, REEL_JF_STEPS},
    {"cfg", required_argument, NULL, REEL_JF_CFG},
    {"shift", required_argument, NULL, REEL_JF_SHIFT},
    {"sampler", required_argument, NULL, REEL_JF_SAMPLER},
    {"negative", required_argument, NULL, REEL_JF_NEGATIVE},
    {"codec", required_argument, NULL, REEL_JF_CODEC},
    {"container", required_argument, NULL, REEL_JF_CONTAINER},
    {"crf", required_argument, NULL, REEL_JF_CRF},
    {"preset", required_argument, NULL, REEL_JF_PRESET},
    {"backend", required_argument, NULL, REEL_JF_BACKEND},
    {"bitrate", required_argument, NULL, REEL_JF_BITRATE},
    {"poster", required_argument, NULL, REEL_JF_POSTER},
    {"poster-frame", required_argument, NULL, REEL_JF_POSTER_FRAME},
    {"preview-anim", required_argument, NULL, REEL_JF_PREVIEW_ANIM},
    {"preview-every", required_argument, NULL, REEL_JF_PREVIEW_EVERY},
};
const size_t reel_jobflags_count = sizeof reel_jobflags_options / sizeof reel_jobflags_options[0];

size_t reel_jobflags_table(const struct option *own, struct option *dst, size_t cap) {
  size_t n = 0;
  while (own && own[n].name) n++;
  if (n + reel_jobflags_count + 1 > cap) return 0;
  if (n) memcpy(dst, own, n * sizeof *dst);
  memcpy(dst + n, reel_jobflags_options, reel_jobflags_count * sizeof *dst);
  memset(dst + n + reel_jobflags_count, 0, sizeof *dst);
  return n + reel_jobflags_count;
}

static const struct {
  const char *field, *flag;
} field_flags[] = {
    {"job.model", "--model"},
    {"job.width", "--size"},
    {"job.height", "--size"},
    {"job.frames", "--frames"},
    {"job.fps", "--fps"},
    {"job.seed", "--seed"},
    {"job.steps", "--steps"},
    {"job.guidance", "--cfg"},
    {"job.shift", "--shift"},
    {"job.sampler", "--sampler"},
    {"job.negative_prompt", "--negative"},
    {"job.codec", "--codec"},
    {"job.container", "--container"},
    {"job.crf", "--crf"},
    {"job.bitrate", "--bitrate"},
    {"job.preset", "--preset"},
    {"job.backend", "--backend"},
    {"job.poster", "--poster"},
    {"job.poster_frame", "--poster-frame"},
    {"job.preview_anim", "--preview-anim"},
    {"job.preview_every", "--preview-every"},
    {"job.prompt", "PROMPT"},
};

const char *reel_jobflags_flag_name(const char *field) {
  if (!field) return NULL;
  for (size_t i = 0; i < sizeof field_flags / sizeof field_flags[0]; i++)
    if (!strcmp(field_flags[i].field, field)) return field_flags[i].flag;
  return NULL;
}

int reel_jobflags_rename_field(reel_error *err) {
  const char *flag = err ? reel_jobflags_flag_name(err->field) : NULL;
  if (!flag) return 0;
  snprintf(err->field, sizeof err->field, "%s", flag);
  return 1;
}

static int parse_long(const char *arg, long long lo, long long hi, long long *out) {
  if (!arg || !*arg) return -1;
  errno = 0;
  char *end = NULL;
  long long v = strtoll(arg, &end, 10);
  if (errno || *end || end == arg || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int parse_double(const char *arg, double lo, double hi, double *out) {
  if (!arg || !*arg) return -1;
  errno = 0;
  char *end = NULL;
  double v = strtod(arg, &end);
  if (errno || *end || end == arg || !isfinite(v) || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

static int bad(reel_error *err, reel_status code, const char *flag, const char *fmt, const char *arg) {
  char msg[REEL_ERROR_MSG_MAX];
  snprintf(msg, sizeof msg, fmt, arg ? arg : "");
  reel_error_set(err, code, flag, "%s", msg);
  return -1;
}

/* "one of: a, b, c" for a NULL-terminated name list. */
static void list_names(const char *const *names, char *buf, size_t size) {
  size_t at = 0;
  buf[0] = '\0';
  for (int i = 0; names[i] && at < size; i++)
    at += (size_t)snprintf(buf + at, size - at, "%s%s", i ? ", " : "", names[i]);
}

static int set_enum(const char *flag, const char *const *names, const char *arg, int *member, reel_error *err) {
  int i = reel_name_index(names, arg);
  if (i < 0) {
    char list[160];
    list_names(names, list, sizeof list);
    reel_error_set(err, REEL_EINVAL, flag, "must be one of: %s; got '%.40s'", list, arg);
    return -1;
  }
  *member = i;
  return 1;
}

static int set_string(const char *flag, const char *arg, size_t max, char **member, reel_error *err) {
  size_t n = strlen(arg);
  if (n > max) {
    reel_error_set(err, REEL_ELIMIT, flag, "is %zu bytes, limit %zu", n, max);
    return -1;
  }
  if (reel_jobspec_set_str(member, arg) != REEL_OK) {
    reel_error_set(err, REEL_ENOMEM, flag, "out of memory");
    return -1;
  }
  return 1;
}

int reel_jobflags_apply(int opt, const char *arg, reel_jobspec *spec, reel_error *err) {
  reel_job_limits lim = reel_job_limits_default();
  long long v;
  double d;
  int e;
  switch (opt) {
    case REEL_JF_MODEL:
      if (!arg[0]) return bad(err, REEL_EINVAL, "--model", "must name a model, got an empty string%s", "");
      return set_string("--model", arg, 1024, &spec->model, err);
    case REEL_JF_SIZE: {
      int w, h;
      if (reel_parse_size(arg, &w, &h) != REEL_OK)
        return bad(err, REEL_EINVAL, "--size", "must be WIDTHxHEIGHT (e.g. 832x480), got '%.40s'", arg);
      if (w < 16 || h < 16 || w > lim.max_width || h > lim.max_height || w % 2 || h % 2) {
        reel_error_set(err, REEL_ERANGE, "--size",
                       "width and height must be even, width in 16..%d and height in "
                       "16..%d; got %dx%d",
                       lim.max_width, lim.max_height, w, h);
        return -1;
      }
      spec->width = w;
      spec->height = h;
      return 1;
    }
    case REEL_JF_FRAMES:
      if (parse_long(arg, 1, lim.max_frames, &v)) {
        reel_error_set(err, REEL_ERANGE, "--frames", "must be an integer in 1..%d, got '%.40s'", lim.max_frames, arg);
        return -1;
      }
      spec->frames = (int)v;
      return 1;
    case REEL_JF_FPS:
      if (parse_double(arg, 1.0, lim.max_fps, &d)) {
        reel_error_set(err, REEL_ERANGE, "--fps", "must be a number in 1..%g, got '%.40s'", lim.max_fps, arg);
        return -1;
      }
      spec->fps = d;
      return 1;
    case REEL_JF_SEED: {
      errno = 0;
      char *end = NULL;
      unsigned long long s = arg[0] && arg[0] != '-' && arg[0] != '+' ? strtoull(arg, &end, 10) : 0;
      if (!end || errno || *end || end == arg)
        return bad(err, REEL_ERANGE, "--seed", "must be an integer in 0..18446744073709551615, got '%.40s'", arg);
      spec->seed = s;
      spec->seed_set = 1;
      return 1;
    }
    case REEL_JF_STEPS:
      if (parse_long(arg, 1, lim.max_steps, &v)) {
        reel_error_set(err, REEL_ERANGE, "--steps", "must be an integer in 1..%d, got '%.40s'", lim.max_steps, arg);
        return -1;
      }
      spec->steps = (int)v;
      return 1;
    case REEL_JF_CFG:
      if (parse_double(arg, 0.0, 100.0, &d))
        return bad(err, REEL_ERANGE, "--cfg", "must be a number in 0..100, got '%.40s'", arg);
      spec->guidance = d;
      return 1;
    case REEL_JF_SHIFT:
      if (parse_double(arg, 0.01, 100.0, &d))
        return bad(err, REEL_ERANGE, "--shift", "must be a number in 0.01..100, got '%.40s'", arg);
      spec->shift = d;
      return 1;
    case REEL_JF_SAMPLER:
      e = (int)spec->sampler;
      if (set_enum("--sampler", reel_sampler_names, arg, &e, err) < 0) return -1;
      spec->sampler = (reel_sampler)e;
      return 1;
    case REEL_JF_NEGATIVE:
      return set_string("--negative", arg, (size_t)lim.max_prompt_bytes, &spec->negative_prompt, err);
    case REEL_JF_CODEC:
      e = (int)spec->codec;
      if (set_enum("--codec", reel_codec_names, arg, &e, err) < 0) return -1;
      spec->codec = (reel_codec)e;
      return 1;
    case REEL_JF_CONTAINER:
      e = (int)spec->container;
      if (set_enum("--container", reel_container_names, arg, &e, err) < 0) return -1;
      spec->container = (reel_container)e;
      return 1;
    case REEL_JF_CRF:
      if (parse_long(arg, 0, 63, &v))
        return bad(err, REEL_ERANGE, "--crf", "must be an integer in 0..63, got '%.40s'", arg);
      spec->crf = (int)v;
      return 1;
    case REEL_JF_BITRATE:
      if (parse_long(arg, 1, 1000000, &v))
        return bad(err, REEL_ERANGE, "--bitrate", "must be an integer in 1..1000000 (kbit/s), got '%.40s'", arg);
      spec->bitrate = (int)v;
      return 1;
    case REEL_JF_PRESET:
      for (const unsigned char *p = (const unsigned char *)arg; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
          return bad(err, REEL_EINVAL, "--preset", "must be a name without spaces, got '%.40s'", arg);
      if (!arg[0]) return bad(err, REEL_EINVAL, "--preset", "must name a preset, got an empty string%s", "");
      return set_string("--preset", arg, 32, &spec->preset, err);
    case REEL_JF_POSTER:
      if (!arg[0]) return bad(err, REEL_EINVAL, "--poster", "must be a file path or URL, got an empty string%s", "");
      return set_string("--poster", arg, 1024, &spec->poster, err);
    case REEL_JF_POSTER_FRAME:
      if (parse_long(arg, 0, lim.max_frames - 1, &v)) {
        reel_error_set(err, REEL_ERANGE, "--poster-frame", "must be an integer in 0..%d, got '%.40s'",
                       lim.max_frames - 1, arg);
        return -1;
      }
      spec->poster_frame = (int)v;
      return 1;
    case REEL_JF_PREVIEW_ANIM:
      if (!arg[0])
        return bad(err, REEL_EINVAL, "--preview-anim", "must be a file path or URL, got an empty string%s", "");
      return set_string("--preview-anim", arg, 1024, &spec->preview_anim, err);
    case REEL_JF_PREVIEW_EVERY:
      if (parse_long(arg, 0, 1000, &v)) {
        reel_error_set(err, REEL_ERANGE, "--preview-every", "must be an integer in 0..1000 (0 = off), got '%.40s'",
                       arg);
        return -1;
      }
      spec->preview_every = (int)v;
      return 1;
    case REEL_JF_BACKEND:
      e = (int)spec->backend;
      if (set_enum("--backend", reel_backend_names, arg, &e, err) < 0) return -1;
      spec->backend = (reel_backend_kind)e;
      return 1;
    default:
      return 0;
  }
}

reel_status reel_jobflags_validate(const reel_jobspec *spec, reel_error *err) {
  reel_job_limits lim = reel_job_limits_default();
  reel_status st = reel_jobspec_validate(spec, &lim, err);
  if (st != REEL_OK) reel_jobflags_rename_field(err);
  return st;
}

void reel_jobflags_usage(FILE *f) {
  reel_job_limits lim = reel_job_limits_default();
  char samplers[96], codecs[96], containers[96], backends[96];
  list_names(reel_sampler_names, samplers, sizeof samplers);
  list_names(reel_codec_names, codecs, sizeof codecs);
  list_names(reel_container_names, containers, sizeof containers);
  list_names(reel_backend_names, backends, sizeof backends);
  fprintf(f,
          "job options (0 or unset = the model's default):\n"
          "  --model NAME       model name or directory\n"
          "  --size WxH         frame size, even, 16..%dx16..%d\n"
          "  --frames N         frames, 1..%d\n"
          "  --fps F            frames per second, 1..%g\n"
          "  --seed S           noise seed, 0..2^64-1 (random and reported when unset)\n"
          "  --steps N          denoising steps, 1..%d\n"
          "  --cfg G            classifier-free guidance scale, 0..100\n"
          "  --shift S          flow shift, 0.01..100\n"
          "  --sampler NAME     one of: %s\n"
          "  --negative TEXT    negative prompt\n"
          "  --codec NAME       one of: %s (default h264)\n"
          "  --container NAME   one of: %s (auto: mp4 for files, fragmented mp4 for streams)\n"
          "  --crf N            constant rate factor within the codec's range: h264 0..51 (default 23),\n"
          "                     hevc 0..51 (28), av1 1..63 (35), vp9 0..63 (31)\n"
          "  --bitrate KBPS     average bit rate in kbit/s, 1..1000000, instead of --crf\n"
          "  --preset NAME      encoder preset: h264/hevc ultrafast..placebo (default medium),\n"
          "                     av1 0..13 (8, higher is faster), vp9 0..8 (cpu-used, 4)\n"
          "  --backend NAME     one of: %s\n"
          "  --poster FILE      also write a poster image (.png, .jpg) of one frame\n"
          "  --poster-frame K   the poster's frame, 0..%d (default: the middle frame)\n"
          "  --preview-anim FILE\n"
          "                     also write a small looping preview (.webp, .gif; 320 px wide, 6 fps)\n"
          "  --preview-every N  progress previews: a low-resolution frame every N denoising steps (0 = off)\n",
          lim.max_width, lim.max_height, lim.max_frames, lim.max_fps, lim.max_steps, samplers, codecs, containers,
          backends, lim.max_frames - 1);
}
