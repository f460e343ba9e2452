/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wan2.1 text-to-video as a model family (reel/model.h): a diffusers-layout
 * folder (model_index.json, transformer/, scheduler/, text_encoder/, tokenizer/,
 * vae/). The denoiser is the transformer of reel/wan.h; the default sampler is
 * read from scheduler/scheduler_config.json when the folder has one. The text
 * encoder (UMT5) and the VAE are separate components that fill the family's
 * encode_prompt and decode entries when they are built; until then those
 * entries are NULL and the wrappers report REEL_EUNSUPPORTED.
 */
#include <stdio.h>
#include <string.h>

#include "reel/json.h"
#include "reel/model.h"
#include "reel/wan.h"

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

static reel_status wan_load(reel_backend *b, const char *dir, void **impl, reel_model_info *info, reel_error *err) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/transformer", dir) >= (int)sizeof path)
    return reel_error_set(err, REEL_ELIMIT, dir, "path too long");
  memset(info, 0, sizeof *info);
  reel_status st = read_sampler(dir, &info->sampler, err);
  if (st != REEL_OK) return st;
  reel_wan_transformer *m = NULL;
  st = reel_wan_transformer_load_dir(b, path, &m, err);
  if (st != REEL_OK) {
    reel_error_prefix_field(err, "transformer", '/');
    return st;
  }
  const reel_wan_config *c = reel_wan_transformer_config(m);
  info->latent_channels = c->in_channels;
  info->out_channels = c->out_channels;
  for (int i = 0; i < 3; i++) info->latent_multiple[i] = c->patch[i];
  info->text_dim = c->text_dim;
  info->text_len = WAN_TEXT_LEN;
  info->guidance = 5.0; /* WanPipeline's defaults */
  info->steps = 50;
  *impl = m;
  return REEL_OK;
}

static void wan_destroy(void *impl) {
  reel_wan_transformer *m = impl;
  reel_wan_transformer_destroy(&m);
}

static reel_status wan_denoise_arena_bytes(void *impl, int64_t batch, const int64_t latent[4], int64_t text_len,
                                           size_t *bytes, reel_error *err) {
  return reel_wan_forward_arena_bytes(impl, batch, latent[1], latent[2], latent[3], text_len, bytes, err);
}

static reel_status wan_denoise(void *impl, const reel_tensor *latents, const float *timesteps,
                               const reel_tensor *context, reel_tensor_arena *arena, reel_tensor *out,
                               reel_error *err) {
  return reel_wan_forward(impl, latents, timesteps, context, arena, out, err);
}

const reel_model_family reel_model_family_wan21 = {
    .name = "wan2.1",
    .probe = wan_probe,
    .load = wan_load,
    .destroy = wan_destroy,
    .encode_prompt = NULL, /* UMT5 text encoder: issue 5 */
    .denoise_arena_bytes = wan_denoise_arena_bytes,
    .denoise = wan_denoise,
    .decode = NULL, /* Wan VAE: issue 5 */
};
