/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The generation path of one job. See reel/generate.h and gen_internal.h.
 *
 * reel_generate_to_sink runs the stages on the calling thread: resolve the
 * spec (and, for a model directory, open the model unless one was lent, then
 * apply its defaults and rules), open the encoder on the sink, render frames
 * into it, finish the encoder and commit the sink. Every failure after the sink
 * was opened aborts it. Model rendering (reel__gen_render): text embeddings of
 * the prompt and the negative prompt, the denoising loop (noise or given
 * latents), VAE decode group by group, colour conversion — with everything the
 * job needs on the compute backend in one arena sized up front, so that a job
 * that does not fit fails before any compute.
 */
#include "reel/generate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frames.h"
#include "gen_internal.h"
#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/denoise.h"
#include "reel/noise.h"
#include "reel/safetensors.h"
#include "reel/testsrc.h"
#ifdef REEL_HAVE_ENCODER
#include "reel/encoder.h"
#endif

/*
 * The model a spec without "model" runs: the small Wan2.1-architecture model
 * trained by tools/train_default_model.py and shipped in
 * samples/models/wan-shapes-tiny/ (see its MODEL_CARD.md).
 */
#define REEL_DEFAULT_MODEL "wan-shapes-tiny"

#ifndef REEL_MODELS_DIR
#define REEL_MODELS_DIR "samples/models"
#endif

const char *reel_default_model(void) { return REEL_DEFAULT_MODEL; }

/* A seed when the spec has none: random, reported in the result. */
uint64_t reel__pick_seed(void) {
  uint64_t s;
  if (getrandom(&s, sizeof s, GRND_NONBLOCK) == (ssize_t)sizeof s) return s;
  s = (uint64_t)reel_now_ns() ^ ((uint64_t)getpid() << 40);
  s ^= s >> 31;
  s *= 0x9e3779b97f4a7c15ULL;
  return s ^ (s >> 29);
}

static int is_dir(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

reel_status reel_model_resolve(const char *name, char *buf, size_t size, reel_error *err) {
  if (!name || !name[0] || !buf || size == 0) return reel_error_set(err, REEL_EINVAL, "job.model", "no model name");
  buf[0] = '\0';
  if (!strchr(name, ':') || name[0] == '/' || name[0] == '.') {
    if (is_dir(name)) {
      if (snprintf(buf, size, "%s", name) >= (int)size)
        return reel_error_set(err, REEL_ELIMIT, "job.model", "path too long");
      return REEL_OK;
    }
    /* A bare name (no '/') is looked up under the model search path. */
    if (!strchr(name, '/') && strcmp(name, "..") != 0 && strcmp(name, ".") != 0) {
      const char *env = getenv("REEL_MODEL_PATH");
      char dirs[4096];
      snprintf(dirs, sizeof dirs, "%s%s%s", env ? env : "", env && env[0] ? ":" : "", REEL_MODELS_DIR);
      for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        if (!d[0]) continue;
        if (snprintf(buf, size, "%s/%s", d, name) < (int)size && is_dir(buf)) return REEL_OK;
      }
      buf[0] = '\0';
    }
  }
  return reel_error_set(err, REEL_ENOTFOUND, "job.model",
                        "'%.200s' is not available: not a builtin model (%s) and no such model directory", name,
                        REEL_TESTSRC_MODEL);
}

#ifdef REEL_HAVE_ENCODER
/* Encoder errors about job fields are reported as "job.<field>" like the spec's own. */
static void job_field(reel_error *err) {
  static const char *const job_fields[] = {"width", "height",    "fps",    "crf",          "bitrate",      "preset",
                                           "codec", "container", "poster", "poster_frame", "preview_anim", NULL};
  if (err && reel_name_index(job_fields, err->field) >= 0) reel_error_prefix_field(err, "job", '.');
}
#endif

static reel_status set_fps(reel_generate_result *res, double fps, reel_error *err) {
#ifdef REEL_HAVE_ENCODER
  if (reel_fps_to_fraction(fps, &res->fps_num, &res->fps_den) != REEL_OK)
    return reel_error_set(err, REEL_ERANGE, "job.fps", "must be in (0, 1000], got %g", fps);
  res->fps = (double)res->fps_num / res->fps_den;
  return REEL_OK;
#else
  (void)res;
  (void)fps;
  return reel_error_set(err, REEL_EUNSUPPORTED, "job",
                        "this reel was built without FFmpeg (REEL_WITH_FFMPEG=OFF): it cannot encode video");
#endif
}

reel_status reel__gen_resolve(reel__gen *g, reel_error *err) {
  const reel_jobspec *spec = g->spec;
  reel_generate_result *res = g->res;
  if (!spec) return reel_error_set(err, REEL_EINVAL, "job", "must not be NULL");
  reel_status st = reel_jobspec_validate(spec, NULL, err);
  if (st != REEL_OK) return st;
  const char *model = spec->model ? spec->model : reel_default_model();
  snprintf(res->model, sizeof res->model, "%s", model);
  snprintf(res->codec, sizeof res->codec, "%s", reel_codec_names[spec->codec]);
  res->seed = spec->seed_set ? spec->seed : 0;
  if (strcmp(model, REEL_TESTSRC_MODEL) != 0) {
    g->is_model = 1;
    if ((st = reel_model_resolve(model, g->model_dir, sizeof g->model_dir, err))) return st;
    const reel_model_family *const *fam = reel_model_families();
    int known = 0;
    for (size_t i = 0; fam[i] && !known; i++) known = fam[i]->probe && fam[i]->probe(g->model_dir);
    if (!known)
      return reel_error_set(err, REEL_EMODEL, "job.model",
                            "'%.200s' is not a model folder reel knows (no family recognises it: a diffusers "
                            "WanPipeline folder has model_index.json and transformer/)",
                            g->model_dir);
    if (spec->fps > 0 && (st = set_fps(res, spec->fps, err))) return st;
    return REEL_OK;
  }
  res->width = spec->width ? spec->width : REEL_TESTSRC_DEFAULT_WIDTH;
  res->height = spec->height ? spec->height : REEL_TESTSRC_DEFAULT_HEIGHT;
  res->frames = spec->frames ? spec->frames : REEL_TESTSRC_DEFAULT_FRAMES;
  reel_testsrc_params tp = {res->width, res->height, res->frames, res->seed};
  if ((st = reel_testsrc_check(&tp, err))) {
    reel_error_prefix_field(err, "job", '.');
    return st;
  }
  return set_fps(res, spec->fps > 0 ? spec->fps : REEL_TESTSRC_DEFAULT_FPS, err);
}

reel_status reel__gen_resolve_model(reel__gen *g, reel_model *m, reel_error *err) {
  const reel_jobspec *spec = g->spec;
  reel_generate_result *res = g->res;
  const reel_model_info *in = reel_model_get_info(m);
  g->model = m;
  snprintf(res->family, sizeof res->family, "%s", in->family ? in->family : "");
  snprintf(res->backend, sizeof res->backend, "%s", reel_backend_name(reel_model_backend(m)));
  if (in->text_len <= 0)
    return reel_error_set(err, REEL_EMODEL, "job.model", "'%.200s' has no text encoder (tokenizer/ and text_encoder/)",
                          g->model_dir);
  if (in->vae_stride[0] <= 0 || in->vae_stride[1] <= 0 || in->vae_stride[2] <= 0)
    return reel_error_set(err, REEL_EMODEL, "job.model", "'%.200s' has no VAE (vae/)", g->model_dir);
  int w = spec->width ? spec->width : in->default_width;
  int h = spec->height ? spec->height : in->default_height;
  int f = spec->frames ? spec->frames : in->default_frames;
  const int64_t mh = in->vae_stride[1] * (in->latent_multiple[1] > 0 ? in->latent_multiple[1] : 1);
  const int64_t mw = in->vae_stride[2] * (in->latent_multiple[2] > 0 ? in->latent_multiple[2] : 1);
  const int64_t ft = in->vae_stride[0], mf = in->latent_multiple[0] > 0 ? in->latent_multiple[0] : 1;
  if (w <= 0 || w % mw)
    return reel_error_set(err, REEL_EINVAL, "job.width",
                          "must be a multiple of %lld for this model (VAE stride %lld x patch %lld), got %d",
                          (long long)mw, (long long)in->vae_stride[2], (long long)(mw / in->vae_stride[2]), w);
  if (h <= 0 || h % mh)
    return reel_error_set(err, REEL_EINVAL, "job.height",
                          "must be a multiple of %lld for this model (VAE stride %lld x patch %lld), got %d",
                          (long long)mh, (long long)in->vae_stride[1], (long long)(mh / in->vae_stride[1]), h);
  if (f <= 0 || (f - 1) % ft || ((f - 1) / ft + 1) % mf)
    return reel_error_set(err, REEL_EINVAL, "job.frames",
                          "must be 1 + %lld k (1, %lld, %lld, ...) for this model (VAE temporal stride %lld), got %d",
                          (long long)ft, (long long)(1 + ft), (long long)(1 + 2 * ft), (long long)ft, f);
  res->width = w;
  res->height = h;
  res->frames = f;
  reel_status st;
  if (spec->fps <= 0 && (st = set_fps(res, in->default_fps > 0 ? in->default_fps : 16.0, err))) return st;
  g->latent[0] = in->latent_channels;
  g->latent[1] = (f - 1) / ft + 1;
  g->latent[2] = h / in->vae_stride[1];
  g->latent[3] = w / in->vae_stride[2];
  /* The sampler: the model's own configuration unless the job names another kind. */
  reel_sched_kind kind = reel_sched_kind_from_sampler(spec->sampler, in->sampler.kind);
  g->sched = kind == in->sampler.kind ? in->sampler : reel_sched_config_default(kind);
  g->sched.shift = spec->shift > 0 ? spec->shift : in->sampler.shift;
  static const char *const kind_names[] = {"euler", "unipc", "dpm++"};
  snprintf(res->sampler, sizeof res->sampler, "%s", kind_names[kind]);
  res->shift = g->sched.shift;
  res->steps = spec->steps ? spec->steps : in->steps;
  double guidance = spec->guidance >= 0 ? spec->guidance : in->guidance;
  /* As diffusers: guidance_scale > 1 enables classifier-free guidance; otherwise the conditional pass alone. */
  g->guidance = guidance > 1.0 ? guidance : 1.0;
  res->guidance = g->guidance;
  g->negative = spec->negative_prompt ? spec->negative_prompt : in->default_negative_prompt;
  if (!g->negative) g->negative = "";
  res->model_bytes = reel_model_weight_bytes(m);
  return REEL_OK;
}

static size_t aligned(size_t n) { return (n + 63) & ~(size_t)63; }

/* Descriptor-only embeddings [1, L, D], for sizing the denoiser's arena. */
static reel_denoise_params denoise_params(reel__gen *g, const reel_tensor *cond, const reel_tensor *uncond) {
  reel_denoise_params p;
  memset(&p, 0, sizeof p);
  p.sampler = g->sched;
  p.steps = g->res->steps;
  p.guidance = g->guidance;
  p.samples = 1;
  memcpy(p.latent, g->latent, sizeof p.latent);
  p.seeds = &g->res->seed;
  p.cond = cond;
  p.uncond = g->guidance != 1.0 ? uncond : NULL;
  return p;
}

static void embed_desc(reel__gen *g, reel_tensor *t) {
  const reel_model_info *in = reel_model_get_info(g->model);
  memset(t, 0, sizeof *t);
  int64_t shape[3] = {1, in->text_len, in->text_dim};
  reel_tensor_init(t, REEL_F32, 3, shape, NULL, 0, NULL);
}

/* Arena bytes of a model job: embeddings, initial latents, preview scratch, the denoiser's share. */
reel_status reel__gen_scratch_bytes(reel__gen *g, uint64_t *arena, uint64_t *scratch, reel_error *err) {
  reel_tensor cond;
  embed_desc(g, &cond);
  reel_denoise_params p = denoise_params(g, &cond, &cond);
  size_t den = 0, priv = 0;
  reel_status st = reel_denoise_arena_bytes(g->model, &p, &den, err);
  if (st == REEL_OK) st = reel_model_scratch_bytes(g->model, g->latent, &priv, err);
  if (st != REEL_OK) return st;
  const size_t n = (size_t)(g->latent[0] * g->latent[1] * g->latent[2] * g->latent[3]) * sizeof(float);
  const size_t plane = (size_t)(g->latent[0] * g->latent[2] * g->latent[3]) * sizeof(float);
  size_t extra = 2 * aligned(reel_tensor_nbytes(&cond)) + 2 * aligned(n) + 2 * aligned(plane) + 4096;
  *arena = den + extra;
  *scratch = priv;
  return REEL_OK;
}

static double mib(uint64_t b) { return (double)b / (1024.0 * 1024.0); }

reel_status reel__gen_check_budget(reel__gen *g, uint64_t budget, reel_error *err) {
  uint64_t arena = 0, scratch = 0;
  reel_status st = reel__gen_scratch_bytes(g, &arena, &scratch, err);
  if (st != REEL_OK || budget == 0) return st;
  uint64_t weights = reel_model_weight_bytes(g->model), need = weights + arena + scratch;
  if (need > budget)
    return reel_error_set(err, REEL_ENOMEM, "job",
                          "%dx%d x %d frames needs %.1f MiB (weights %.1f + scratch %.1f), over the memory budget "
                          "of %.1f MiB",
                          g->res->width, g->res->height, g->res->frames, mib(need), mib(weights), mib(arena + scratch),
                          mib(budget));
  return REEL_OK;
}

reel_status reel__gen_open_backend(reel_backend_kind kind, int threads, reel_backend **out, reel_error *err) {
  *out = NULL;
  if (kind == REEL_BACKEND_CUDA || (kind == REEL_BACKEND_AUTO && reel_backend_cuda_built())) {
    reel_error e;
    reel_error_clear(&e);
    *out = reel_backend_new_cuda(0, &e);
    if (*out) return REEL_OK;
    if (kind == REEL_BACKEND_CUDA)
      return reel_error_set(err, e.code ? e.code : REEL_ENODEVICE, "job.backend", "cuda: %s", e.msg);
  }
  *out = reel_backend_new_cpu(threads, err);
  if (!*out) {
    reel_error_prefix_field(err, "job.backend", '.');
    return err && err->code ? err->code : REEL_EBACKEND;
  }
  return REEL_OK;
}

uint64_t reel__peak_rss_bytes(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) break;
  fclose(f);
  return (uint64_t)kb * 1024u;
}

/* ---- progress ----------------------------------------------------------------------------- */

int reel__gen_progress(reel__gen *g, const char *stage, int frames_done, int steps_done, const uint8_t *preview, int pw,
                       int ph) {
  const reel_generate_options *o = g->o;
  if (!o || !o->progress) return 0;
  const int64_t now = reel_now_ns();
  const int steps = g->is_model ? g->res->steps : 0, frames = g->res->frames;
  reel_progress p;
  memset(&p, 0, sizeof p);
  p.stage = stage;
  p.frames_done = frames_done;
  p.frames_total = frames;
  p.steps_done = steps_done;
  p.steps_total = steps;
  p.elapsed_seconds = (double)(now - g->t_start) / 1e9;
  p.eta_seconds = -1;
  p.preview = preview;
  p.preview_width = pw;
  p.preview_height = ph;
  if (!g->is_model) {
    p.fraction = !strcmp(stage, "finish") ? 0.99 : frames ? 0.98 * frames_done / frames : 0;
  } else {
    /* Usual shares of a model job: load 5% (when it loads), text 5%, denoise 70%, decode + encode 18%, finish 2%. */
    const double base = g->loaded ? 0.05 : 0.0, span = 1.0 - base;
    if (!strcmp(stage, "load"))
      p.fraction = 0;
    else if (!strcmp(stage, "text"))
      p.fraction = base;
    else if (!strcmp(stage, "denoise"))
      p.fraction = base + span * (0.05 + 0.70 * steps_done / (steps ? steps : 1));
    else if (!strcmp(stage, "decode") || !strcmp(stage, "encode"))
      p.fraction = base + span * (0.75 + 0.23 * frames_done / (frames ? frames : 1));
    else
      p.fraction = 0.99;
    if (!strcmp(stage, "denoise") && steps_done > 0 && g->t_denoise0) {
      double per_step = (double)(now - g->t_denoise0) / 1e9 / steps_done;
      /* The tail (decode, encode, upload) usually takes a quarter of the denoising time. */
      p.eta_seconds = per_step * (steps - steps_done) + 0.25 * per_step * steps;
    } else if ((!strcmp(stage, "decode") || !strcmp(stage, "encode")) && frames_done > 0 && g->t_decode0) {
      double per_frame = (double)(now - g->t_decode0) / 1e9 / frames_done;
      p.eta_seconds = per_frame * (frames - frames_done);
    }
  }
  if (!g->is_model && frames_done > 0) {
    double per_frame = p.elapsed_seconds / frames_done;
    p.eta_seconds = per_frame * (frames - frames_done);
  }
  return o->progress(&p, o->progress_user);
}

/* ---- the clip: encoder on a sink ------------------------------------------------------------ */

#ifdef REEL_HAVE_ENCODER
struct reel__clip {
  reel_encoder *enc;
  int frames;
};

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
  eo->poster = spec->poster;
  eo->poster_frame = spec->poster_frame;
  eo->preview_anim = spec->preview_anim;
  eo->expected_frames = res->frames;
  eo->side_sink_opts = o ? o->sink_opts : NULL;
  /* --backend cpu keeps the whole job off the GPU, the encoder included. */
  eo->hw = spec->backend == REEL_BACKEND_CPU ? REEL_HW_OFF : REEL_HW_AUTO;
}

reel_status reel__clip_open(reel__gen *g, reel_sink *sink, reel__clip **out, reel_error *err) {
  *out = NULL;
  reel__clip *c = reel_calloc(1, sizeof *c);
  if (!c) return reel_error_set(err, REEL_ENOMEM, "encoder", "out of memory");
  reel_encoder_options eo;
  encoder_options(g->spec, g->res, g->o, &eo);
  reel_status st = reel_encoder_open(&eo, sink, &c->enc, err);
  if (st != REEL_OK) {
    job_field(err);
    reel_free(c);
    return st;
  }
  *out = c;
  return REEL_OK;
}

reel_status reel__clip_push(reel__clip *c, const uint8_t *rgb, size_t stride, reel_error *err) {
  reel_status st = reel_encoder_push_rgb(c->enc, rgb, stride, err);
  if (st == REEL_OK) c->frames++;
  return st;
}

reel_status reel__clip_finish(reel__clip *c, reel_generate_result *res, reel_error *err) {
  reel_encoder_stats stats;
  reel_status st = reel_encoder_finish(c->enc, &stats, err);
  if (st != REEL_OK) return st;
  res->seconds_encode = stats.convert_seconds + stats.encode_seconds;
  snprintf(res->encoder, sizeof res->encoder, "%s", stats.encoder);
  snprintf(res->container, sizeof res->container, "%s", stats.container);
  snprintf(res->poster_url, sizeof res->poster_url, "%s", stats.poster_url);
  res->poster_frame = stats.poster_frame;
  snprintf(res->preview_url, sizeof res->preview_url, "%s", stats.preview_url);
  res->preview_frames = stats.preview_frames;
  return REEL_OK;
}

void reel__clip_destroy(reel__clip **c) {
  if (!c || !*c) return;
  reel_encoder_destroy(&(*c)->enc);
  reel_free(*c);
  *c = NULL;
}

int reel__clip_frames(const reel__clip *c) { return c ? c->frames : 0; }
#else
reel_status reel__clip_open(reel__gen *g, reel_sink *sink, reel__clip **out, reel_error *err) {
  (void)g;
  (void)sink;
  *out = NULL;
  return reel_error_set(err, REEL_EUNSUPPORTED, "job", "this reel was built without FFmpeg: it cannot encode video");
}
reel_status reel__clip_push(reel__clip *c, const uint8_t *rgb, size_t stride, reel_error *err) {
  (void)c;
  (void)rgb;
  (void)stride;
  return reel_error_set(err, REEL_EUNSUPPORTED, "job", "no encoder");
}
reel_status reel__clip_finish(reel__clip *c, reel_generate_result *res, reel_error *err) {
  (void)c;
  (void)res;
  return reel_error_set(err, REEL_EUNSUPPORTED, "job", "no encoder");
}
void reel__clip_destroy(reel__clip **c) {
  if (c) *c = NULL;
}
int reel__clip_frames(const reel__clip *c) {
  (void)c;
  return 0;
}
#endif

/* ---- rendering: testsrc --------------------------------------------------------------------- */

static reel_status render_testsrc(reel__gen *g, reel__push_fn push, void *user, reel_error *err) {
  reel_generate_result *res = g->res;
  reel_testsrc_params tp = {res->width, res->height, res->frames, res->seed};
  size_t stride = (size_t)res->width * 3;
  uint8_t *rgb = reel_malloc(stride * (size_t)res->height);
  if (!rgb) return reel_error_set(err, REEL_ENOMEM, "frame", "no memory for a %dx%d frame", res->width, res->height);
  reel_status st = REEL_OK;
  int64_t render_ns = 0;
  for (int i = 0; i < res->frames && st == REEL_OK; i++) {
    int64_t t0 = reel_now_ns();
    reel_testsrc_render(&tp, i, rgb, stride);
    render_ns += reel_now_ns() - t0;
    st = push(user, rgb, stride, i, err);
  }
  res->seconds_render = (double)render_ns / 1e9;
  reel_free(rgb);
  return st;
}

/* ---- rendering: models ---------------------------------------------------------------------- */

typedef struct model_run {
  reel__gen *g;
  reel_backend *b;
  reel_tensor_arena *arena;
  reel__push_fn push;
  void *user;
  float *host;   /* one decoded chunk, [3, n, H, W] */
  size_t host_n; /* floats */
  uint8_t *rgb;  /* one frame */
  int64_t push_ns;
  /* previews */
  uint8_t *preview;
  int pw, ph;
  int preview_step;
  reel_status preview_st;
} model_run;

/* Downloads a [3, n, H, W] chunk to the host buffer (grown when needed). */
static reel_status fetch_chunk(model_run *r, const reel_tensor *frames, reel_error *err) {
  size_t n = (size_t)reel_tensor_numel(frames);
  if (n > r->host_n) {
    float *h = reel_realloc(r->host, n * sizeof(float));
    if (!h) return reel_error_set(err, REEL_ENOMEM, "decode", "out of memory for %zu decoded values", n);
    r->host = h;
    r->host_n = n;
  }
  if (frames->ndim != 4 || frames->shape[0] != 3)
    return reel_error_set(err, REEL_EINTERNAL, "decode", "the VAE gave frames of %d dims, expected [3, n, H, W]",
                          frames->ndim);
  if (reel_tensor_is_contiguous(frames)) return reel_tensor_download(frames, r->host, n * sizeof(float), err);
  return reel_error_set(err, REEL_EINTERNAL, "decode", "the VAE gave non-contiguous frames");
}

static reel_status on_chunk(void *user, const reel_tensor *frames, int64_t first, reel_error *err) {
  model_run *r = user;
  reel__gen *g = r->g;
  reel_status st = fetch_chunk(r, frames, err);
  if (st != REEL_OK) return st;
  const int64_t n = frames->shape[1], H = frames->shape[2], W = frames->shape[3];
  if (H != g->res->height || W != g->res->width)
    return reel_error_set(err, REEL_EINTERNAL, "decode", "the VAE gave %lldx%lld frames for a %dx%d job", (long long)W,
                          (long long)H, g->res->width, g->res->height);
  for (int64_t t = 0; t < n; t++) {
    int64_t idx = first + t;
    if (idx >= g->res->frames) break;
    int64_t bad = reel__frame_to_rgb8(r->host, n, t, H, W, r->rgb);
    if (bad >= 0)
      return reel_error_set(err, REEL_ENONFINITE, "decode", "the VAE produced a non-finite value in frame %lld",
                            (long long)idx);
    int64_t t0 = reel_now_ns();
    st = r->push(r->user, r->rgb, (size_t)W * 3, (int)idx, err);
    r->push_ns += reel_now_ns() - t0;
    if (st != REEL_OK) return st;
    g->frames_decoded = (int)idx + 1;
  }
  if (reel__gen_progress(g, "decode", g->frames_decoded, g->res->steps, NULL, 0, 0))
    return reel_error_set(err, REEL_ECANCELED, "job", "canceled after %d of %d frames", g->frames_decoded,
                          g->res->frames);
  return REEL_OK;
}

/* The preview's decoded frame 0: converted, downscaled. */
static reel_status on_preview_chunk(void *user, const reel_tensor *frames, int64_t first, reel_error *err) {
  model_run *r = user;
  if (first != 0) return REEL_OK;
  reel_status st = fetch_chunk(r, frames, err);
  if (st != REEL_OK) return st;
  const int64_t n = frames->shape[1], H = frames->shape[2], W = frames->shape[3];
  if (reel__frame_to_rgb8(r->host, n, 0, H, W, r->rgb) >= 0)
    return reel_error_set(err, REEL_ENONFINITE, "preview", "the preview frame has non-finite values");
  reel__rgb8_downscale(r->rgb, (int)W, (int)H, r->preview, r->pw, r->ph);
  return REEL_OK;
}

/* Decodes frame 0 of the clean-latent estimate latents - sigma * prediction into r->preview. */
static reel_status make_preview(model_run *r, const reel_denoise_progress *p, reel_error *err) {
  reel__gen *g = r->g;
  const size_t mark = reel_tensor_arena_used(r->arena);
  int64_t shape[4] = {g->latent[0], 1, g->latent[2], g->latent[3]};
  reel_tensor x0, v0, xs, vs;
  reel_status st;
  if ((st = reel_tensor_arena_alloc(r->arena, REEL_F32, 4, shape, &x0, err)) ||
      (st = reel_tensor_arena_alloc(r->arena, REEL_F32, 4, shape, &v0, err)) ||
      (st = reel_tensor_slice(p->latents, 2, 0, 1, &xs, err)) || (st = reel_tensor_reshape(&xs, 4, shape, &xs, err)) ||
      (st = reel_tensor_slice(p->prediction, 2, 0, 1, &vs, err)) ||
      (st = reel_tensor_reshape(&vs, 4, shape, &vs, err)) || (st = reel_op_copy(r->b, &xs, &x0, err)) ||
      (st = reel_op_copy(r->b, &vs, &v0, err)))
    goto done;
  {
    const reel_tensor *terms[2] = {&x0, &v0};
    const double coef[2] = {1.0, -p->sigma};
    if ((st = reel_op_lincomb(r->b, 2, coef, terms, &x0, err))) goto done;
  }
  st = reel_model_decode_stream(g->model, &x0, on_preview_chunk, r, err);
done:
  reel_tensor_arena_release(r->arena, mark);
  return st;
}

static reel_status on_step(void *ctx, const reel_denoise_progress *p) {
  model_run *r = ctx;
  reel__gen *g = r->g;
  const reel_generate_options *o = g->o;
  const int done = p->step + 1;
  if (o->test_nan_after_step == done) {
    /* Test hook: poison the latents; the next prediction (or the final check) must catch it. */
    const float nan = NAN;
    reel_error e;
    reel_error_clear(&e);
    reel_buffer_upload(p->latents->buf, p->latents->offset, &nan, sizeof nan, &e);
    reel_log(o->log, REEL_LOG_WARN, "pipeline", o->job_id, "test hook: latents poisoned with NaN", "step=%d", done);
  }
  const uint8_t *preview = NULL;
  if (r->preview && g->spec->preview_every > 0 && done % g->spec->preview_every == 0 && done < p->steps) {
    reel_error e;
    reel_error_clear(&e);
    reel_status st = make_preview(r, p, &e);
    if (st == REEL_OK) {
      preview = r->preview;
    } else if (st != REEL_ENONFINITE) {
      /* A preview is an extra: a failure is logged, the job goes on. */
      reel_log_error(o->log, REEL_LOG_WARN, "pipeline", o->job_id, &e);
    }
  }
  if (reel__gen_progress(g, "denoise", 0, done, preview, r->pw, r->ph)) return REEL_ECANCELED;
  return REEL_OK;
}

/* Initial latents from a safetensors file into `dst` [1, C, F, H, W] f32. */
static reel_status read_latents(model_run *r, const char *path, const reel_tensor *dst, reel_error *err) {
  reel_safetensors *sf = NULL;
  reel_status st = reel_safetensors_open(path, &sf, err);
  if (st != REEL_OK) {
    reel_error_prefix_field(err, "latents", ':');
    return st;
  }
  const reel_st_tensor *t = reel_safetensors_find(sf, "latents");
  if (!t) t = reel_safetensors_find(sf, "latents_init");
  reel_dtype dt = REEL_F32;
  const int64_t *L = r->g->latent;
  if (!t) {
    st = reel_error_set(err, REEL_ENOTFOUND, "latents", "%.200s has no tensor \"latents\" or \"latents_init\"", path);
    goto done;
  }
  if (t->dtype == REEL_ST_F32)
    dt = REEL_F32;
  else if (t->dtype == REEL_ST_F16)
    dt = REEL_F16;
  else if (t->dtype == REEL_ST_BF16)
    dt = REEL_BF16;
  else {
    st = reel_error_set(err, REEL_EUNSUPPORTED, "latents", "%s is %s; F32, F16 or BF16 needed", t->name,
                        reel_st_dtype_name(t->dtype));
    goto done;
  }
  {
    int off = t->rank == 5 ? 1 : 0;
    int ok = (t->rank == 4 || (t->rank == 5 && t->shape[0] == 1));
    for (int i = 0; ok && i < 4; i++) ok = t->shape[off + i] == L[i];
    if (!ok) {
      st = reel_error_set(err, REEL_EINVAL, "latents",
                          "%s must be [1, %lld, %lld, %lld, %lld] for this job (%dx%d, %d frames), got rank %d",
                          t->name, (long long)L[0], (long long)L[1], (long long)L[2], (long long)L[3], r->g->res->width,
                          r->g->res->height, r->g->res->frames, t->rank);
      goto done;
    }
  }
  {
    const size_t mark = reel_tensor_arena_used(r->arena);
    reel_tensor raw;
    int64_t shape[5] = {1, L[0], L[1], L[2], L[3]};
    if ((st = reel_tensor_arena_alloc(r->arena, dt, 5, shape, &raw, err)) == REEL_OK &&
        (st = reel_buffer_upload(raw.buf, raw.offset, t->data, t->nbytes, err)) == REEL_OK)
      st = reel_op_copy(r->b, &raw, (reel_tensor *)dst, err);
    reel_tensor_arena_release(r->arena, mark);
  }
done:
  reel_safetensors_close(&sf);
  return st;
}

static reel_status dump_latents(model_run *r, const float *init, const float *final, reel_error *err) {
  reel__gen *g = r->g;
  const reel_generate_result *res = g->res;
  int64_t shape[5] = {1, g->latent[0], g->latent[1], g->latent[2], g->latent[3]};
  reel_st_entry e[2] = {{"latents_init", REEL_ST_F32, 5, shape, init}, {"latents_final", REEL_ST_F32, 5, shape, final}};
  char seed[32], steps[16], guidance[32], shift[32], size[32], frames[16];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)res->seed);
  snprintf(steps, sizeof steps, "%d", res->steps);
  snprintf(guidance, sizeof guidance, "%.17g", res->guidance);
  snprintf(shift, sizeof shift, "%.17g", res->shift);
  snprintf(size, sizeof size, "%dx%d", res->width, res->height);
  snprintf(frames, sizeof frames, "%d", res->frames);
  reel_st_kv meta[] = {{"format", "reel-latents-1"},
                       {"prompt", g->spec->prompt},
                       {"negative_prompt", g->negative},
                       {"model", res->model},
                       {"seed", seed},
                       {"steps", steps},
                       {"guidance", guidance},
                       {"shift", shift},
                       {"sampler", res->sampler},
                       {"size", size},
                       {"frames", frames},
                       {"latents_init", g->o->latents_path ? "file" : "philox"}};
  reel_status st = reel_safetensors_write(g->o->dump_latents_path, e, 2, meta, sizeof meta / sizeof meta[0], err);
  if (st != REEL_OK) reel_error_prefix_field(err, "dump_latents", ':');
  return st;
}

static reel_status render_model(reel__gen *g, reel__push_fn push, void *user, reel_error *err) {
  reel_generate_result *res = g->res;
  const reel_generate_options *o = g->o;
  reel_model *m = g->model;
  model_run r;
  memset(&r, 0, sizeof r);
  r.g = g;
  r.b = reel_model_backend(m);
  r.push = push;
  r.user = user;
  float *init_h = NULL, *final_h = NULL;
  reel_status st;
  uint64_t arena_bytes = 0, scratch = 0;
  const size_t n = (size_t)(g->latent[0] * g->latent[1] * g->latent[2] * g->latent[3]);
  int64_t t0 = reel_now_ns();
  if ((st = reel__gen_scratch_bytes(g, &arena_bytes, &scratch, err))) goto done;
  r.arena = reel_tensor_arena_new(r.b, arena_bytes, err);
  if (!r.arena) {
    st = err && err->code ? err->code : REEL_ENOMEM;
    reel_error_prefix_field(err, "job", '.');
    goto done;
  }
  r.rgb = reel_malloc((size_t)res->width * res->height * 3);
  if (!r.rgb) {
    st = reel_error_set(err, REEL_ENOMEM, "job", "out of memory for a %dx%d frame", res->width, res->height);
    goto done;
  }
  if (g->spec->preview_every > 0) {
    int P = o->preview_size >= 16 && o->preview_size <= 1024 ? o->preview_size : 160;
    if (res->width >= res->height) {
      r.pw = res->width < P ? res->width : P;
      r.ph = (int)((int64_t)res->height * r.pw / res->width);
    } else {
      r.ph = res->height < P ? res->height : P;
      r.pw = (int)((int64_t)res->width * r.ph / res->height);
    }
    if (r.pw < 1) r.pw = 1;
    if (r.ph < 1) r.ph = 1;
    r.preview = reel_malloc((size_t)r.pw * r.ph * 3);
    if (!r.preview) {
      st = reel_error_set(err, REEL_ENOMEM, "job", "out of memory for the preview");
      goto done;
    }
  }

  /* Text: the prompt, and the negative prompt when guidance is on. */
  if (reel__gen_progress(g, "text", 0, 0, NULL, 0, 0)) {
    st = reel_error_set(err, REEL_ECANCELED, "job", "canceled before the text encoder");
    goto done;
  }
  reel_tensor cond, uncond, c3, u3;
  memset(&uncond, 0, sizeof uncond);
  memset(&u3, 0, sizeof u3);
  if ((st = reel_model_encode_prompt(m, g->spec->prompt, r.arena, &cond, err))) {
    reel_error_prefix_field(err, "job.prompt", ':');
    goto done;
  }
  int64_t es[3] = {1, cond.shape[0], cond.shape[1]};
  if ((st = reel_tensor_reshape(&cond, 3, es, &c3, err))) goto done;
  if (g->guidance != 1.0) {
    if ((st = reel_model_encode_prompt(m, g->negative, r.arena, &uncond, err))) {
      reel_error_prefix_field(err, "job.negative_prompt", ':');
      goto done;
    }
    if ((st = reel_tensor_reshape(&uncond, 3, es, &u3, err))) goto done;
  }
  res->seconds_text = (double)(reel_now_ns() - t0) / 1e9;

  /* Initial latents: from a file, or Philox noise of the seed (the denoiser fills it). */
  reel_tensor init;
  int64_t ls[5] = {1, g->latent[0], g->latent[1], g->latent[2], g->latent[3]};
  int have_init = 0;
  if (o->latents_path) {
    if ((st = reel_tensor_arena_alloc(r.arena, REEL_F32, 5, ls, &init, err)) ||
        (st = read_latents(&r, o->latents_path, &init, err)))
      goto done;
    have_init = 1;
  }
  if (o->dump_latents_path) {
    init_h = reel_malloc(n * sizeof(float));
    final_h = reel_malloc(n * sizeof(float));
    if (!init_h || !final_h) {
      st = reel_error_set(err, REEL_ENOMEM, "dump_latents", "out of memory for %zu latents", n);
      goto done;
    }
    if (have_init) {
      if ((st = reel_tensor_download(&init, init_h, n * sizeof(float), err))) goto done;
    } else {
      reel_noise_fill(res->seed, 0, init_h, n);
    }
  }

  /* Denoise. */
  reel_denoise_params p = denoise_params(g, &c3, &u3);
  p.init = have_init ? &init : NULL;
  p.callback = on_step;
  p.callback_ctx = &r;
  reel_tensor latents;
  t0 = reel_now_ns();
  g->t_denoise0 = t0;
  if (reel__gen_progress(g, "denoise", 0, 0, NULL, 0, 0)) {
    st = reel_error_set(err, REEL_ECANCELED, "job", "canceled before the first step");
    goto done;
  }
  if ((st = reel_denoise(m, &p, r.arena, &latents, err))) {
    if (st == REEL_ECANCELED && err) snprintf(err->field, sizeof err->field, "job");
    goto done;
  }
  res->seconds_denoise = (double)(reel_now_ns() - t0) / 1e9;
  {
    /* The last step's output is not checked by the loop: check it before decoding. */
    float *h = final_h ? final_h : reel_malloc(n * sizeof(float));
    if (!h) {
      st = reel_error_set(err, REEL_ENOMEM, "job", "out of memory");
      goto done;
    }
    st = reel_tensor_download(&latents, h, n * sizeof(float), err);
    for (size_t i = 0; st == REEL_OK && i < n; i++)
      if (!isfinite(h[i]))
        st = reel_error_set(err, REEL_ENONFINITE, "denoise", "the final latents have a non-finite value at element %zu",
                            i);
    if (h != final_h) reel_free(h);
    if (st != REEL_OK) goto done;
  }
  if (o->dump_latents_path && (st = dump_latents(&r, init_h, final_h, err))) goto done;

  /* Decode group by group; each frame is converted and pushed as it comes. */
  t0 = reel_now_ns();
  g->t_decode0 = t0;
  reel_tensor one;
  if ((st = reel_tensor_reshape(&latents, 4, g->latent, &one, err))) goto done;
  if ((st = reel_model_decode_stream(m, &one, on_chunk, &r, err))) goto done;
  res->seconds_decode = (double)(reel_now_ns() - t0 - r.push_ns) / 1e9;
  if (g->frames_decoded != res->frames) {
    st = reel_error_set(err, REEL_EINTERNAL, "decode", "the VAE gave %d frames, the job has %d", g->frames_decoded,
                        res->frames);
    goto done;
  }
done:
  if (r.arena) {
    size_t priv = 0;
    reel_error e;
    reel_error_clear(&e);
    reel_model_scratch_bytes(m, g->latent, &priv, &e);
    res->peak_scratch_bytes = reel_tensor_arena_peak(r.arena) + priv + reel_backend_scratch_bytes(r.b);
  }
  res->seconds_render = res->seconds_load + res->seconds_text + res->seconds_denoise + res->seconds_decode;
  reel_tensor_arena_destroy(&r.arena);
  reel_free(r.host);
  reel_free(r.rgb);
  reel_free(r.preview);
  reel_free(init_h);
  reel_free(final_h);
  return st;
}

reel_status reel__gen_render(reel__gen *g, reel__push_fn push, void *user, reel_error *err) {
  if (!g->is_model) return render_testsrc(g, push, user, err);
  if (!g->model) return reel_error_set(err, REEL_EINTERNAL, "job", "no model was resolved");
  return render_model(g, push, user, err);
}

void reel__gen_committed(reel__gen *g, const reel_sink_result *sr) {
  reel_generate_result *res = g->res;
  snprintf(res->url, sizeof res->url, "%s", sr->url);
  res->bytes = sr->bytes;
  memcpy(res->sha256, sr->sha256, sizeof res->sha256);
  res->seconds_total = (double)(reel_now_ns() - g->t_start) / 1e9;
  res->peak_rss_bytes = reel__peak_rss_bytes();
  reel_log(g->o->log, REEL_LOG_INFO, "pipeline", g->o->job_id, "clip written",
           "url=%s bytes=%llu sha256=%s frames=%d seconds=%.3f", res->url, (unsigned long long)res->bytes, res->sha256,
           res->frames, res->seconds_total);
}

/* ---- the one-thread path -------------------------------------------------------------------- */

reel_status reel_generate_check(const reel_jobspec *spec, reel_error *err) {
  reel_generate_result res;
  reel_generate_options o;
  memset(&res, 0, sizeof res);
  memset(&o, 0, sizeof o);
  reel__gen g;
  memset(&g, 0, sizeof g);
  g.spec = spec;
  g.o = &o;
  g.res = &res;
  reel_status st = reel__gen_resolve(&g, err);
  if (st != REEL_OK) return st;
#ifdef REEL_HAVE_ENCODER
  reel_encoder_options eo;
  encoder_options(spec, &res, NULL, &eo);
  if (g.is_model) {
    /* The model's defaults are not known without loading it: check the rest with a stand-in size and rate. */
    if (!eo.width) eo.width = 64;
    if (!eo.height) eo.height = 64;
    if (!eo.fps_num) {
      eo.fps_num = 16;
      eo.fps_den = 1;
    }
  }
  if ((st = reel_encoder_check_options(&eo, 1, err))) job_field(err);
#endif
  return st;
}

typedef struct push_direct {
  reel__gen *g;
  reel__clip *clip;
} push_direct;

static reel_status push_to_clip(void *user, const uint8_t *rgb, size_t stride, int index, reel_error *err) {
  push_direct *d = user;
  const reel_generate_options *o = d->g->o;
  reel_status st;
  if (o->frame && (st = o->frame(o->frame_user, rgb, stride, index, err))) return st;
  if ((st = reel__clip_push(d->clip, rgb, stride, err))) return st;
  if (reel__gen_progress(d->g, "encode", index + 1, d->g->is_model ? d->g->res->steps : 0, NULL, 0, 0))
    return reel_error_set(err, REEL_ECANCELED, "job", "canceled after %d of %d frames", index + 1, d->g->res->frames);
  return REEL_OK;
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
  reel__gen g;
  memset(&g, 0, sizeof g);
  g.spec = spec;
  g.o = opts;
  g.res = res;
  g.t_start = reel_now_ns();
  reel_backend *b = NULL;
  reel_model *m = NULL;
  reel__clip *clip = NULL;
  reel_status st;
  if ((st = reel__gen_resolve(&g, err))) goto fail;
  if (!spec->seed_set) res->seed = reel__pick_seed();
  if (g.is_model) {
    m = opts->model;
    if (!m) {
      int64_t t0 = reel_now_ns();
      g.loaded = 1;
      if (reel__gen_progress(&g, "load", 0, 0, NULL, 0, 0)) {
        st = reel_error_set(err, REEL_ECANCELED, "job", "canceled before the model was loaded");
        goto fail;
      }
      if ((st = reel__gen_open_backend(spec->backend, opts->threads, &b, err))) goto fail;
      if ((st = reel_model_open(b, g.model_dir, &m, err))) {
        reel_error_prefix_field(err, "model", ':');
        goto fail;
      }
      res->seconds_load = (double)(reel_now_ns() - t0) / 1e9;
    }
    if ((st = reel__gen_resolve_model(&g, m, err))) goto fail;
    if ((st = reel__gen_check_budget(&g, opts->memory_budget, err))) goto fail;
  } else if (spec->steps || spec->guidance >= 0 || spec->shift >= 0 || spec->sampler != REEL_SAMPLER_DEFAULT ||
             spec->negative_prompt) {
    reel_log(opts->log, REEL_LOG_DEBUG, "pipeline", opts->job_id,
             "builtin:testsrc ignores steps, guidance, shift, sampler and negative prompt", NULL);
  }
  reel_log(opts->log, REEL_LOG_INFO, "pipeline", opts->job_id, "generating",
           "model=%s width=%d height=%d frames=%d fps=%d/%d seed=%llu steps=%d url=%s", res->model, res->width,
           res->height, res->frames, res->fps_num, res->fps_den, (unsigned long long)res->seed, res->steps,
           reel_sink_url(sink));
  if ((st = reel__clip_open(&g, sink, &clip, err))) goto fail;
  push_direct d = {&g, clip};
  if ((st = reel__gen_render(&g, push_to_clip, &d, err))) goto fail;
  if (reel__gen_progress(&g, "finish", res->frames, res->steps, NULL, 0, 0)) {
    /* The encoder still holds its lookahead; flushing it and writing the trailer can take a while. */
    st = reel_error_set(err, REEL_ECANCELED, "job", "canceled before the clip was finished");
    goto fail;
  }
  if ((st = reel__clip_finish(clip, res, err))) goto fail;
  reel__clip_destroy(&clip);
  if (!opts->model) {
    reel_model_destroy(&m);
    reel_backend_destroy(&b);
  }
  int64_t t_commit = reel_now_ns();
  reel_sink_result sr;
  if ((st = reel_sink_close(&sink, &sr, err))) goto fail;
  res->seconds_commit = (double)(reel_now_ns() - t_commit) / 1e9;
  reel__gen_committed(&g, &sr);
  return REEL_OK;
fail:
  reel__clip_destroy(&clip);
  if (!opts->model) reel_model_destroy(&m);
  reel_backend_destroy(&b);
  reel_sink_abort(&sink);
  res->peak_rss_bytes = reel__peak_rss_bytes();
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
