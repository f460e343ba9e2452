/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The generation path of one job. See reel/generate.h. For builtin:testsrc:
 * validate the spec, fill the model's defaults, render each frame and push it
 * to the encoder (which streams into the sink), then finish the encoder and
 * commit the sink. Every failure after the sink was opened aborts it.
 */
#include "reel/generate.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/testsrc.h"
#ifdef REEL_HAVE_ENCODER
#include "reel/encoder.h"
#endif

const char *reel_default_model(void) { return REEL_TESTSRC_MODEL; }

/* A seed when the spec has none: random, reported in the result. */
static uint64_t pick_seed(void) {
  uint64_t s;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s) return s;
  s = (uint64_t)reel_now_ns() ^ ((uint64_t)getpid() << 40);
  s ^= s >> 31;
  s *= 0x9e3779b97f4a7c15ULL;
  return s ^ (s >> 29);
}

#ifdef REEL_HAVE_ENCODER
/* Encoder errors about job fields are reported as "job.<field>" like the spec's own. */
static void job_field(reel_error *err) {
  static const char *const job_fields[] = {"width",  "height", "fps",       "crf", "bitrate",
                                           "preset", "codec",  "container", NULL};
  if (err && reel_name_index(job_fields, err->field) >= 0) reel_error_prefix_field(err, "job", '.');
}

#endif

/* Validates the spec and fills res with the model's view of it (size, frames, rate, seed). */
static reel_status resolve(const reel_jobspec *spec, reel_generate_result *res, reel_error *err) {
  if (!spec) return reel_error_set(err, REEL_EINVAL, "job", "must not be NULL");
  reel_status st = reel_jobspec_validate(spec, NULL, err);
  if (st != REEL_OK) return st;
  const char *model = spec->model ? spec->model : reel_default_model();
  if (strcmp(model, REEL_TESTSRC_MODEL) != 0)
    return reel_error_set(err, REEL_ENOTFOUND, "job.model", "'%.200s' is not available (this build has: %s)", model,
                          REEL_TESTSRC_MODEL);
  snprintf(res->model, sizeof res->model, "%s", model);
  res->width = spec->width ? spec->width : REEL_TESTSRC_DEFAULT_WIDTH;
  res->height = spec->height ? spec->height : REEL_TESTSRC_DEFAULT_HEIGHT;
  res->frames = spec->frames ? spec->frames : REEL_TESTSRC_DEFAULT_FRAMES;
  res->seed = spec->seed_set ? spec->seed : 0;
  snprintf(res->codec, sizeof res->codec, "%s", reel_codec_names[spec->codec]);
  double fps = spec->fps > 0 ? spec->fps : REEL_TESTSRC_DEFAULT_FPS;
  reel_testsrc_params tp = {res->width, res->height, res->frames, res->seed};
  if ((st = reel_testsrc_check(&tp, err))) {
    reel_error_prefix_field(err, "job", '.');
    return st;
  }
#ifdef REEL_HAVE_ENCODER
  if (reel_fps_to_fraction(fps, &res->fps_num, &res->fps_den) != REEL_OK)
    return reel_error_set(err, REEL_ERANGE, "job.fps", "must be in (0, 1000], got %g", fps);
  res->fps = (double)res->fps_num / res->fps_den;
  return REEL_OK;
#else
  (void)fps;
  return reel_error_set(err, REEL_EUNSUPPORTED, "job",
                        "this reel was built without FFmpeg (REEL_WITH_FFMPEG=OFF): it cannot encode video");
#endif
}

#ifdef REEL_HAVE_ENCODER
static void encoder_options(const reel_jobspec *spec, const reel_generate_result *res, const reel_generate_options *o,
                            reel_encoder_options *eo) {
  reel_encoder_options_init(eo);
  eo->codec = spec->codec;
  eo->container = spec->container;
  eo->width = res->width;
  eo->height = res->height;
  eo->fps_num = res->fps_num;
  eo->fps_den = res->fps_den;
  eo->crf = spec->crf;
  eo->bitrate = spec->bitrate;
  eo->preset = spec->preset;
  eo->threads = o ? o->threads : 0;
  eo->log = o ? o->log : NULL;
  eo->job_id = o ? o->job_id : NULL;
}
#endif

#ifdef REEL_HAVE_ENCODER
static reel_status run_testsrc(const reel_jobspec *spec, reel_sink *sink, const reel_generate_options *o,
                               reel_generate_result *res, int64_t t_start, reel_error *err) {
  reel_status st;
  reel_encoder *enc = NULL;
  uint8_t *rgb = NULL;
  reel_testsrc_params tp = {res->width, res->height, res->frames, res->seed};
  reel_encoder_options eo;
  encoder_options(spec, res, o, &eo);
  if ((st = reel_encoder_open(&eo, sink, &enc, err))) {
    job_field(err);
    goto done;
  }
  size_t stride = (size_t)res->width * 3;
  rgb = reel_malloc(stride * (size_t)res->height);
  if (!rgb) {
    st = reel_error_set(err, REEL_ENOMEM, "frame", "no memory for a %dx%d frame", res->width, res->height);
    goto done;
  }
  int64_t render_ns = 0;
  for (int i = 0; i < res->frames; i++) {
    int64_t t0 = reel_now_ns();
    reel_testsrc_render(&tp, i, rgb, stride);
    render_ns += reel_now_ns() - t0;
    if ((st = reel_encoder_push_rgb(enc, rgb, stride, err))) goto done;
    if (o->progress) {
      reel_progress p = {"encode", i + 1, res->frames, 0, 0, (double)(reel_now_ns() - t_start) / 1e9};
      if (o->progress(&p, o->progress_user)) {
        st = reel_error_set(err, REEL_ECANCELED, "job", "canceled after %d of %d frames", i + 1, res->frames);
        goto done;
      }
    }
  }
  if (o->progress) {
    /* The encoder still holds its lookahead; flushing it and writing the trailer can take a while. */
    reel_progress p = {"finish", res->frames, res->frames, 0, 0, (double)(reel_now_ns() - t_start) / 1e9};
    if (o->progress(&p, o->progress_user)) {
      st = reel_error_set(err, REEL_ECANCELED, "job", "canceled before the clip was finished");
      goto done;
    }
  }
  reel_encoder_stats stats;
  if ((st = reel_encoder_finish(enc, &stats, err))) goto done;
  res->seconds_render = (double)render_ns / 1e9;
  res->seconds_encode = stats.convert_seconds + stats.encode_seconds;
  snprintf(res->encoder, sizeof res->encoder, "%s", stats.encoder);
  snprintf(res->container, sizeof res->container, "%s", stats.container);
done:
  reel_free(rgb);
  reel_encoder_destroy(&enc);
  return st;
}
#endif

reel_status reel_generate_check(const reel_jobspec *spec, reel_error *err) {
  reel_generate_result res;
  memset(&res, 0, sizeof res);
  reel_status st = resolve(spec, &res, err);
  if (st != REEL_OK) return st;
#ifdef REEL_HAVE_ENCODER
  reel_encoder_options eo;
  encoder_options(spec, &res, NULL, &eo);
  if ((st = reel_encoder_check_options(&eo, 1, err))) job_field(err);
#endif
  return st;
}

reel_status reel_generate_to_sink(const reel_jobspec *spec, reel_sink **sinkp, const reel_generate_options *opts,
                                  reel_generate_result *res, reel_error *err) {
  reel_generate_options defaults;
  reel_generate_result local;
  if (!opts) {
    memset(&defaults, 0, sizeof defaults);
    opts = &defaults;
  }
  if (!res) res = &local;
  memset(res, 0, sizeof *res);
  if (!sinkp || !*sinkp) return reel_error_set(err, REEL_EINVAL, "sink", "must not be NULL");
  reel_sink *sink = *sinkp;
  *sinkp = NULL;
  int64_t t_start = reel_now_ns();
  reel_status st;
  if ((st = resolve(spec, res, err))) goto fail;
  if (!spec->seed_set) res->seed = pick_seed();
#ifdef REEL_HAVE_ENCODER
  reel_log(opts->log, REEL_LOG_INFO, "pipeline", opts->job_id, "generating",
           "model=%s width=%d height=%d frames=%d fps=%d/%d seed=%llu url=%s", res->model, res->width, res->height,
           res->frames, res->fps_num, res->fps_den, (unsigned long long)res->seed, reel_sink_url(sink));
  if (spec->steps || spec->guidance >= 0 || spec->shift >= 0 || spec->sampler != REEL_SAMPLER_DEFAULT ||
      spec->negative_prompt)
    reel_log(opts->log, REEL_LOG_DEBUG, "pipeline", opts->job_id,
             "builtin:testsrc ignores steps, guidance, shift, sampler and negative prompt", NULL);
  if ((st = run_testsrc(spec, sink, opts, res, t_start, err))) goto fail;
  int64_t t_commit = reel_now_ns();
  reel_sink_result sr;
  st = reel_sink_close(&sink, &sr, err);
  if (st != REEL_OK) goto fail;
  res->seconds_commit = (double)(reel_now_ns() - t_commit) / 1e9;
  snprintf(res->url, sizeof res->url, "%s", sr.url);
  res->bytes = sr.bytes;
  memcpy(res->sha256, sr.sha256, sizeof res->sha256);
  res->seconds_total = (double)(reel_now_ns() - t_start) / 1e9;
  reel_log(opts->log, REEL_LOG_INFO, "pipeline", opts->job_id, "clip written",
           "url=%s bytes=%llu sha256=%s frames=%d seconds=%.3f", res->url, (unsigned long long)res->bytes, res->sha256,
           res->frames, res->seconds_total);
  return REEL_OK;
#else
  (void)t_start;
  st = REEL_EUNSUPPORTED; /* resolve() has failed already */
#endif
fail:
  reel_sink_abort(&sink);
  return st;
}

reel_status reel_generate(const reel_jobspec *spec, const char *url, const reel_generate_options *opts,
                          reel_generate_result *res, reel_error *err) {
  if (res) memset(res, 0, sizeof *res);
  if (!url && spec) url = spec->output;
  if (!url) return reel_error_set(err, REEL_EINVAL, "job.output", "no output URL or path was given");
  reel_sink *sink = NULL;
  reel_status st = reel_sink_open(url, opts ? opts->sink_opts : NULL, &sink, err);
  if (st != REEL_OK) return st;
  if (sink->log == NULL && opts) sink->log = opts->log;
  return reel_generate_to_sink(spec, &sink, opts, res, err);
}
