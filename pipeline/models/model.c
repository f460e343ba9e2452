/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The model-family front end: probing a folder for its family, and wrappers that
 * check arguments once and report a component the family lacks as
 * REEL_EUNSUPPORTED instead of calling through a NULL pointer.
 */
#include "reel/model.h"

#include <string.h>

#include "reel/alloc.h"

struct reel_model {
  const reel_model_family *family;
  reel_backend *b;
  void *impl;
  reel_model_info info;
};

static const reel_model_family *const families[] = {&reel_model_family_wan21, NULL};

const reel_model_family *const *reel_model_families(void) { return families; }

reel_status reel_model_open_family(reel_backend *b, const reel_model_family *family, const char *dir, reel_model **out,
                                   reel_error *err) {
  if (out) *out = NULL;
  if (!b || !family || !dir || !out) return reel_error_set(err, REEL_EINVAL, "model", "NULL argument");
  if (!family->load || !family->denoise)
    return reel_error_set(err, REEL_EUNSUPPORTED, "model", "family %s cannot load models", family->name);
  reel_model *m = reel_calloc(1, sizeof *m);
  if (!m) return reel_error_set(err, REEL_ENOMEM, "model", "out of memory");
  m->family = family;
  m->b = b;
  reel_status st = family->load(b, dir, &m->impl, &m->info, err);
  if (st != REEL_OK) {
    reel_free(m);
    return st;
  }
  m->info.family = family->name;
  *out = m;
  return REEL_OK;
}

reel_status reel_model_open(reel_backend *b, const char *dir, reel_model **out, reel_error *err) {
  if (out) *out = NULL;
  if (!b || !dir || !out) return reel_error_set(err, REEL_EINVAL, "model", "NULL argument");
  for (size_t i = 0; families[i]; i++)
    if (families[i]->probe && families[i]->probe(dir)) return reel_model_open_family(b, families[i], dir, out, err);
  return reel_error_set(err, REEL_EUNSUPPORTED, dir, "no known model family recognises this folder");
}

void reel_model_destroy(reel_model **pm) {
  if (!pm || !*pm) return;
  reel_model *m = *pm;
  if (m->family->destroy) m->family->destroy(m->impl);
  reel_free(m);
  *pm = NULL;
}

const reel_model_info *reel_model_get_info(const reel_model *m) { return m ? &m->info : NULL; }
const reel_model_family *reel_model_get_family(const reel_model *m) { return m ? m->family : NULL; }
reel_backend *reel_model_backend(const reel_model *m) { return m ? m->b : NULL; }

static reel_status missing(const reel_model *m, const char *component, reel_error *err) {
  return reel_error_set(err, REEL_EUNSUPPORTED, component, "the %s model in this build has no %s", m->family->name,
                        component);
}

reel_status reel_model_encode_prompt(reel_model *m, const char *prompt, reel_tensor_arena *arena, reel_tensor *embeds,
                                     reel_error *err) {
  if (!m || !prompt || !arena || !embeds) return reel_error_set(err, REEL_EINVAL, "prompt", "NULL argument");
  if (!m->family->encode_prompt) return missing(m, "text_encoder", err);
  return m->family->encode_prompt(m->impl, prompt, arena, embeds, err);
}

reel_status reel_model_denoise_arena_bytes(reel_model *m, int64_t batch, const int64_t latent[4], int64_t text_len,
                                           size_t *bytes, reel_error *err) {
  if (!m || !latent || !bytes) return reel_error_set(err, REEL_EINVAL, "model", "NULL argument");
  if (!m->family->denoise_arena_bytes) return missing(m, "denoiser", err);
  return m->family->denoise_arena_bytes(m->impl, batch, latent, text_len, bytes, err);
}

reel_status reel_model_denoise(reel_model *m, const reel_tensor *latents, const float *timesteps,
                               const reel_tensor *context, reel_tensor_arena *arena, reel_tensor *out,
                               reel_error *err) {
  if (!m) return reel_error_set(err, REEL_EINVAL, "model", "NULL model");
  return m->family->denoise(m->impl, latents, timesteps, context, arena, out, err);
}

reel_status reel_model_decode(reel_model *m, const reel_tensor *latents, reel_tensor_arena *arena, reel_tensor *frames,
                              reel_error *err) {
  if (!m || !latents || !arena || !frames) return reel_error_set(err, REEL_EINVAL, "latents", "NULL argument");
  if (!m->family->decode) return missing(m, "vae", err);
  return m->family->decode(m->impl, latents, arena, frames, err);
}
