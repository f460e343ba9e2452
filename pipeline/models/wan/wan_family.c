/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wan2.1 text-to-video as a model family (reel/model.h): a diffusers-layout
 * folder (model_index.json, transformer/, scheduler/, text_encoder/, tokenizer/,
 * vae/). The denoiser is the transformer of reel/wan.h; the default sampler is
 * read from scheduler/scheduler_config.json when the folder has one. The
 * tokenizer + UMT5 text encoder (reel/tokenizer.h, reel/umt5.h) and the VAE
 * (reel/wan_vae.h) are loaded when their folders exist; a folder without them
 * still denoises, and encode_prompt / decode then report REEL_EUNSUPPORTED
 * naming the missing component. On a device backend (CUDA) the transformer's
 * matrices are uploaded once as bf16 and its token activations are bf16. Their scratch lives in arenas of the family's
 * own, sized on first use and kept, so that callers size only the outputs.
 */
#include <stdio.h>
#include <string.h>

#include "reel/alloc.h"
#include "reel/json.h"
#include "reel/model.h"
#include "reel/tokenizer.h"
#include "reel/umt5.h"
#include "reel/wan.h"
#include "reel/wan_vae.h"

#define WAN_TEXT_LEN 512 /* WanPipeline pads prompt embeddings to max_sequence_length = 512 */

/* Nonzero when path is a JSON object whose "_class_name" is one of names. */
static int class_is(const char *path, const char *const *names) {
  json_t *root = NULL;
  if (reel_json_load_file(path, 1u << 20, &root, NULL) != REEL_OK) return 0;
  json_t *v = json_is_object(root) ? json_object_get(root, "_class_name") : NULL;
  int ok = 0;
  for (size_t i = 0; v && json_is_string(v) && names[i] && !ok; i++) ok = strcmp(json_string_value(v), names[i]) == 0;
  json_decref(root);
  return ok;
}

static int wan_probe(const char *dir) {
  static const char *const pipelines[] = {"WanPipeline", NULL};
  static const char *const transformers[] = {"WanTransformer3DModel", NULL};
  char path[4096];
  snprintf(path, sizeof path, "%s/model_index.json", dir);
  if (class_is(path, pipelines)) return 1;
  snprintf(path, sizeof path, "%s/transformer/config.json", dir);
  return class_is(path, transformers);
}

/* The sampler of scheduler/scheduler_config.json, when present; Wan's defaults otherwise. */
static reel_status read_sampler(const char *dir, reel_sched_config *out, reel_error *err) {
  *out = reel_sched_config_default(REEL_SCHED_UNIPC);
  char path[4096];
  snprintf(path, sizeof path, "%s/scheduler/scheduler_config.json", dir);
  json_t *root = NULL;
  reel_status st = reel_json_load_file(path, 1u << 20, &root, err);
  if (st == REEL_ENOTFOUND) {
    reel_error_clear(err);
    return REEL_OK;
  }
  if (st != REEL_OK) return st;
  static const char *const classes[] = {"FlowMatchEulerDiscreteScheduler", "UniPCMultistepScheduler",
                                        "DPMSolverMultistepScheduler", NULL};
  static const reel_sched_kind kinds[] = {REEL_SCHED_EULER, REEL_SCHED_UNIPC, REEL_SCHED_DPMPP_2M};
  int cls = 1;
  st = reel_json_get_enum(root, path, "_class_name", REEL_JSON_OPTIONAL, classes, &cls, err);
  if (st == REEL_OK) {
    reel_sched_config c = reel_sched_config_default(kinds[cls]);
    st = reel_json_get_double(root, path, cls == 0 ? "shift" : "flow_shift", REEL_JSON_OPTIONAL, 0.01, 100.0, &c.shift,
                              err);
    int64_t order = c.solver_order;
    if (st == REEL_OK && cls != 0)
      st = reel_json_get_int(root, path, "solver_order", REEL_JSON_OPTIONAL, 1, cls == 1 ? 3 : 2, &order, err);
    c.solver_order = (int)order;
    if (st == REEL_OK) *out = c;
  }
  json_decref(root);
  return st;
}

typedef struct wan_impl {
  reel_backend *b;
  reel_wan_transformer *tr;
  reel_tokenizer *tok;                     /* NULL without tokenizer/ */
  reel_umt5 *te;                           /* NULL without text_encoder/ */
  reel_wan_vae *vae;                       /* NULL without vae/ */
  reel_tensor_arena *te_arena, *vae_arena; /* private scratch, grown on demand */
} wan_impl;

static void wan_destroy(void *p) {
  wan_impl *w = p;
  if (!w) return;
  reel_tensor_arena_destroy(&w->te_arena);
  reel_tensor_arena_destroy(&w->vae_arena);
  reel_wan_vae_destroy(&w->vae);
  reel_umt5_destroy(&w->te);
  reel_tokenizer_destroy(&w->tok);
  reel_wan_transformer_destroy(&w->tr);
  reel_free(w);
}

/* Nonzero when dir/sub/name exists. */
static int has_file(const char *dir, const char *sub, const char *name) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name) >= (int)sizeof path) return 0;
  FILE *f = fopen(path, "rb");
  if (f) fclose(f);
  return f != NULL;
}

static reel_status wan_load(reel_backend *b, const char *dir, void **impl, reel_model_info *info, reel_error *err) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/transformer", dir) >= (int)sizeof path)
    return reel_error_set(err, REEL_ELIMIT, dir, "path too long");
  memset(info, 0, sizeof *info);
  reel_status st = read_sampler(dir, &info->sampler, err);
  if (st != REEL_OK) return st;
  wan_impl *w = reel_calloc(1, sizeof *w);
  if (!w) return reel_error_set(err, REEL_ENOMEM, dir, "out of memory");
  w->b = b;
  /* On a device backend the transformer runs in bf16 (matrices and token activations), as WanPipeline runs it
     with torch_dtype=bfloat16; the CPU keeps the mapped checkpoint and f32 activations. */
  const int device = reel_backend_get_kind(b) != REEL_BACKEND_CPU;
  const reel_wan_load_opts opts = {device};
  st = reel_wan_transformer_load_dir_opts(b, path, &opts, &w->tr, err);
  if (st == REEL_OK && device) st = reel_wan_transformer_set_activations(w->tr, REEL_BF16, err);
  if (st != REEL_OK) {
    reel_error_prefix_field(err, "transformer", '/');
    goto fail;
  }
  const reel_wan_config *c = reel_wan_transformer_config(w->tr);
  info->latent_channels = c->in_channels;
  info->out_channels = c->out_channels;
  for (int i = 0; i < 3; i++) info->latent_multiple[i] = c->patch[i];
  info->text_dim = c->text_dim;
  info->guidance = 5.0; /* WanPipeline's defaults: 480x832, 81 frames, 50 steps, exported at 16 fps */
  info->steps = 50;
  info->default_width = 832;
  info->default_height = 480;
  info->default_frames = 81;
  info->default_fps = 16.0;
  if (has_file(dir, "tokenizer", "tokenizer.json") && has_file(dir, "text_encoder", "config.json")) {
    snprintf(path, sizeof path, "%s/tokenizer", dir);
    if ((st = reel_tokenizer_load_dir(path, &w->tok, err)) != REEL_OK) goto fail;
    snprintf(path, sizeof path, "%s/text_encoder", dir);
    if ((st = reel_umt5_load(b, path, &w->te, err)) != REEL_OK) goto fail;
    if (reel_umt5_get_config(w->te)->d_model != c->text_dim) {
      st = reel_error_set(err, REEL_EMODEL, "text_encoder/config.json.d_model",
                          "is %lld but the transformer's text_dim is %lld",
                          (long long)reel_umt5_get_config(w->te)->d_model, (long long)c->text_dim);
      goto fail;
    }
    info->text_len = WAN_TEXT_LEN; /* 0 (no text encoder) otherwise */
  }
  if (has_file(dir, "vae", "config.json")) {
    snprintf(path, sizeof path, "%s/vae", dir);
    if ((st = reel_wan_vae_load(b, path, &w->vae, err)) != REEL_OK) goto fail;
    info->vae_stride[0] = reel_wan_vae_temporal_factor(w->vae);
    info->vae_stride[1] = info->vae_stride[2] = reel_wan_vae_spatial_factor(w->vae);
  }
  *impl = w;
  return REEL_OK;
fail:
  wan_destroy(w);
  return st;
}

/* A private arena of at least `bytes`, replaced when too small. */
static reel_status ensure_arena(reel_backend *b, reel_tensor_arena **a, size_t bytes, reel_error *err) {
  if (*a && reel_tensor_arena_capacity(*a) >= bytes) {
    reel_tensor_arena_reset(*a);
    return REEL_OK;
  }
  reel_tensor_arena_destroy(a);
  *a = reel_tensor_arena_new(b, bytes, err);
  return *a ? REEL_OK : (err ? err->code : REEL_ENOMEM);
}

static reel_status wan_encode_prompt(void *impl, const char *prompt, reel_tensor_arena *arena, reel_tensor *embeds,
                                     reel_error *err) {
  wan_impl *w = impl;
  if (!w->tok || !w->te)
    return reel_error_set(err, REEL_EUNSUPPORTED, "text_encoder", "this model folder has no tokenizer/text_encoder");
  if (!prompt) return reel_error_set(err, REEL_EINVAL, "prompt", "is NULL");
  int32_t ids[WAN_TEXT_LEN], mask[WAN_TEXT_LEN];
  char *clean = NULL;
  size_t clen = 0;
  reel_status st =
      reel_tokenizer_prompt_clean(prompt, strlen(prompt), &clean, &clen, err); /* WanPipeline's prompt_clean */
  if (st != REEL_OK) return st;
  st = reel_tokenizer_encode_padded(w->tok, clean, clen, WAN_TEXT_LEN, ids, mask, NULL, err);
  reel_free(clean);
  if (st != REEL_OK) return st;
  int64_t shape[2] = {WAN_TEXT_LEN, reel_umt5_get_config(w->te)->d_model};
  if ((st = reel_tensor_arena_alloc(arena, REEL_F32, 2, shape, embeds, err)) != REEL_OK) return st;
  if ((st = ensure_arena(w->b, &w->te_arena, reel_umt5_arena_bytes(w->te, WAN_TEXT_LEN) + 4096, err)) != REEL_OK)
    return st;
  return reel_umt5_prompt_embeds(w->te, ids, mask, WAN_TEXT_LEN, w->te_arena, embeds, NULL, err);
}

static reel_status wan_denoise_arena_bytes(void *impl, int64_t batch, const int64_t latent[4], int64_t text_len,
                                           size_t *bytes, reel_error *err) {
  return reel_wan_forward_arena_bytes(((wan_impl *)impl)->tr, batch, latent[1], latent[2], latent[3], text_len, bytes,
                                      err);
}

static reel_status wan_denoise(void *impl, const reel_tensor *latents, const float *timesteps,
                               const reel_tensor *context, reel_tensor_arena *arena, reel_tensor *out,
                               reel_error *err) {
  return reel_wan_forward(((wan_impl *)impl)->tr, latents, timesteps, context, arena, out, err);
}

static reel_status wan_prepare_context_arena_bytes(void *impl, int64_t batch, int64_t text_len, size_t *bytes,
                                                   reel_error *err) {
  return reel_wan_text_arena_bytes(((wan_impl *)impl)->tr, batch, text_len, bytes, err);
}

static reel_status wan_prepare_context(void *impl, const reel_tensor *context, reel_tensor_arena *arena,
                                       reel_tensor *prepared, reel_error *err) {
  return reel_wan_prepare_text(((wan_impl *)impl)->tr, context, arena, prepared, err);
}

static reel_status wan_denoise_prepared(void *impl, const reel_tensor *latents, const float *timesteps,
                                        const reel_tensor *prepared, reel_tensor_arena *arena, reel_tensor *out,
                                        reel_error *err) {
  return reel_wan_forward_text(((wan_impl *)impl)->tr, latents, timesteps, prepared, arena, out, err);
}

/* WanPipeline: latents / (1 / std) + mean, then the VAE, sample by sample. */
static reel_status wan_decode(void *impl, const reel_tensor *latents, reel_tensor_arena *arena, reel_tensor *frames,
                              reel_error *err) {
  wan_impl *w = impl;
  (void)arena;
  if (!w->vae) return reel_error_set(err, REEL_EUNSUPPORTED, "vae", "this model folder has no vae");
  if (!latents || latents->ndim != 5 || !frames || frames->ndim != 5 || frames->shape[0] != latents->shape[0])
    return reel_error_set(err, REEL_EINVAL, "latents", "latents [B, C, F, H, W] and frames [B, 3, F', H', W'] needed");
  size_t need = 0;
  reel_status st = reel_wan_vae_decode_arena_bytes(w->vae, latents->shape[3], latents->shape[4], &need, err);
  if (st != REEL_OK) return st;
  size_t lat_bytes = (size_t)(reel_tensor_numel(latents) / latents->shape[0]) * sizeof(float) + 64;
  if ((st = ensure_arena(w->b, &w->vae_arena, need + lat_bytes, err)) != REEL_OK) return st;
  for (int64_t i = 0; i < latents->shape[0] && st == REEL_OK; i++) {
    reel_tensor src, dst, un;
    reel_tensor_arena_reset(w->vae_arena);
    if ((st = reel_tensor_slice(latents, 0, i, 1, &src, err)) ||
        (st = reel_tensor_reshape(&src, 4, latents->shape + 1, &src, err)) ||
        (st = reel_tensor_slice(frames, 0, i, 1, &dst, err)) ||
        (st = reel_tensor_reshape(&dst, 4, frames->shape + 1, &dst, err)) ||
        (st = reel_tensor_arena_alloc(w->vae_arena, REEL_F32, 4, latents->shape + 1, &un, err)) ||
        (st = reel_wan_vae_denormalize(w->vae, &src, &un, err)))
      break;
    st = reel_wan_vae_decode(w->vae, &un, w->vae_arena, &dst, err);
  }
  return st;
}

/* Private scratch of encode_prompt (UMT5 on 512 tokens) and decode_stream (latents + one VAE chunk). */
static reel_status wan_scratch_bytes(void *impl, const int64_t latent[4], size_t *bytes, reel_error *err) {
  wan_impl *w = impl;
  size_t total = 0, need = 0;
  if (w->te) total += reel_umt5_arena_bytes(w->te, WAN_TEXT_LEN) + 4096;
  if (w->vae) {
    reel_status st = reel_wan_vae_decode_arena_bytes(w->vae, latent[2], latent[3], &need, err);
    if (st != REEL_OK) return st;
    total += need + (size_t)(latent[0] * latent[1] * latent[2] * latent[3]) * sizeof(float) + 64;
  }
  *bytes = total;
  return REEL_OK;
}

typedef struct stream_ctx {
  reel_model_frames_fn fn;
  void *user;
} stream_ctx;

static reel_status stream_chunk(void *user, const reel_tensor *frames, int64_t first_frame, reel_error *err) {
  stream_ctx *c = user;
  return c->fn(c->user, frames, first_frame, err);
}

/* One sample: un-normalise into the private arena, then the VAE chunk by chunk. */
static reel_status wan_decode_stream(void *impl, const reel_tensor *latents, reel_model_frames_fn fn, void *user,
                                     reel_error *err) {
  wan_impl *w = impl;
  if (!w->vae) return reel_error_set(err, REEL_EUNSUPPORTED, "vae", "this model folder has no vae");
  if (!latents || latents->ndim != 4)
    return reel_error_set(err, REEL_EINVAL, "latents", "must be one sample's latents [C, F, H, W]");
  size_t need = 0;
  reel_status st = reel_wan_vae_decode_arena_bytes(w->vae, latents->shape[2], latents->shape[3], &need, err);
  if (st != REEL_OK) return st;
  size_t lat_bytes = (size_t)reel_tensor_numel(latents) * sizeof(float) + 64;
  if ((st = ensure_arena(w->b, &w->vae_arena, need + lat_bytes, err)) != REEL_OK) return st;
  reel_tensor un;
  if ((st = reel_tensor_arena_alloc(w->vae_arena, REEL_F32, 4, latents->shape, &un, err)) ||
      (st = reel_wan_vae_denormalize(w->vae, latents, &un, err)))
    return st;
  stream_ctx c = {fn, user};
  st = reel_wan_vae_decode_stream(w->vae, &un, w->vae_arena, stream_chunk, &c, err);
  reel_tensor_arena_reset(w->vae_arena);
  return st;
}

/* "activations": the transformer's token activation dtype (f32, or bf16 where the backend and matrices allow). */
static reel_status wan_set_option(void *impl, const char *key, const char *value, reel_error *err) {
  wan_impl *w = impl;
  if (strcmp(key, "activations") != 0) return reel_error_set(err, REEL_ENOTFOUND, key, "unknown wan2.1 setting");
  reel_dtype dt;
  if (strcmp(value, "f32") == 0)
    dt = REEL_F32;
  else if (strcmp(value, "bf16") == 0)
    dt = REEL_BF16;
  else
    return reel_error_set(err, REEL_EINVAL, "activations", "must be f32 or bf16, got \"%.40s\"", value);
  return reel_wan_transformer_set_activations(w->tr, dt, err);
}

static reel_status wan_get_option(void *impl, const char *key, char *buf, size_t size, reel_error *err) {
  wan_impl *w = impl;
  if (strcmp(key, "activations") != 0) return reel_error_set(err, REEL_ENOTFOUND, key, "unknown wan2.1 setting");
  snprintf(buf, size, "%s", reel_dtype_name(reel_wan_transformer_activations(w->tr)));
  return REEL_OK;
}

const reel_model_family reel_model_family_wan21 = {
    .name = "wan2.1",
    .probe = wan_probe,
    .load = wan_load,
    .destroy = wan_destroy,
    .encode_prompt = wan_encode_prompt,
    .denoise_arena_bytes = wan_denoise_arena_bytes,
    .denoise = wan_denoise,
    .decode = wan_decode,
    .decode_stream = wan_decode_stream,
    .scratch_bytes = wan_scratch_bytes,
    .prepare_context_arena_bytes = wan_prepare_context_arena_bytes,
    .prepare_context = wan_prepare_context,
    .denoise_prepared = wan_denoise_prepared,
    .set_option = wan_set_option,
    .get_option = wan_get_option,
};
