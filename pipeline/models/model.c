/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The model-family front end: probing a folder for its family, the optional
 * reel.json with the folder's generation defaults, and wrappers that check
 * arguments once and report a component the family lacks as REEL_EUNSUPPORTED
 * instead of calling through a NULL pointer.
 */
#include "reel/model.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "reel/alloc.h"
#include "reel/json.h"

struct reel_model {
  const reel_model_family *family;
  reel_backend *b;
  void *impl;
  reel_model_info info;
  char *dir;
  char *negative; /* info.default_negative_prompt */
  uint64_t weight_bytes;
};

#define REEL_JSON_MAX_BYTES (1u << 20)

/* Sizes of the *.safetensors files in dir and (depth 1) its subfolders. */
static uint64_t weight_bytes(const char *dir, int depth) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  uint64_t total = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
    struct stat sb;
    if (stat(path, &sb) != 0) continue;
    size_t n = strlen(e->d_name);
    if (S_ISDIR(sb.st_mode)) {
      if (depth > 0 && strcmp(e->d_name, "reference") != 0) total += weight_bytes(path, depth - 1);
    } else if (S_ISREG(sb.st_mode) && n > 12 && !strcmp(e->d_name + n - 12, ".safetensors")) {
      total += (uint64_t)sb.st_size;
    }
  }
  closedir(d);
  return total;
}

/* <dir>/reel.json: the folder's generation defaults over the family's. Absent is fine. */
static reel_status read_defaults(reel_model *m, const char *dir, reel_error *err) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/reel.json", dir) >= (int)sizeof path)
    return reel_error_set(err, REEL_ELIMIT, "model", "path too long");
  json_t *root = NULL;
  reel_status st = reel_json_load_file(path, REEL_JSON_MAX_BYTES, &root, err);
  if (st == REEL_ENOTFOUND) {
    reel_error_clear(err);
    return REEL_OK;
  }
  if (st != REEL_OK) return st;
  static const char *const keys[] = {"width", "height", "frames",  "fps", "steps", "guidance",
                                     "shift", "sampler", "negative_prompt", "description", NULL};
  static const char *const samplers[] = {"unipc", "euler", "dpm++", NULL};
  static const reel_sched_kind kinds[] = {REEL_SCHED_UNIPC, REEL_SCHED_EULER, REEL_SCHED_DPMPP_2M};
  reel_model_info *in = &m->info;
  int64_t w = in->default_width, h = in->default_height, f = in->default_frames, steps = in->steps;
  double fps = in->default_fps, guidance = in->guidance, shift = in->sampler.shift;
  int sampler = -1;
  const char *neg = NULL, *desc = NULL;
  if (!json_is_object(root)) {
    st = reel_error_set(err, REEL_EFORMAT, path, "must be a JSON object");
  } else if ((st = reel_json_check_keys(root, path, keys, err)) ||
             (st = reel_json_get_int(root, path, "width", REEL_JSON_OPTIONAL, 16, 8192, &w, err)) ||
             (st = reel_json_get_int(root, path, "height", REEL_JSON_OPTIONAL, 16, 8192, &h, err)) ||
             (st = reel_json_get_int(root, path, "frames", REEL_JSON_OPTIONAL, 1, 100000, &f, err)) ||
             (st = reel_json_get_double(root, path, "fps", REEL_JSON_OPTIONAL, 1.0, 1000.0, &fps, err)) ||
             (st = reel_json_get_int(root, path, "steps", REEL_JSON_OPTIONAL, 1, 1000, &steps, err)) ||
             (st = reel_json_get_double(root, path, "guidance", REEL_JSON_OPTIONAL, 0.0, 100.0, &guidance, err)) ||
             (st = reel_json_get_double(root, path, "shift", REEL_JSON_OPTIONAL, 0.01, 100.0, &shift, err)) ||
             (st = reel_json_get_enum(root, path, "sampler", REEL_JSON_OPTIONAL, samplers, &sampler, err)) ||
             (st = reel_json_get_string(root, path, "negative_prompt", REEL_JSON_OPTIONAL, 8192, &neg, err)) ||
             (st = reel_json_get_string(root, path, "description", REEL_JSON_OPTIONAL, 8192, &desc, err))) {
    /* err names the member */
  } else {
    if (sampler >= 0) {
      double keep = shift;
      in->sampler = reel_sched_config_default(kinds[sampler]);
      in->sampler.shift = keep;
    }
    in->default_width = (int)w;
    in->default_height = (int)h;
    in->default_frames = (int)f;
    in->default_fps = fps;
    in->steps = (int)steps;
    in->guidance = guidance;
    in->sampler.shift = shift;
    if (neg) {
      char *copy = reel_strdup(neg);
      if (!copy) {
        st = reel_error_set(err, REEL_ENOMEM, path, "out of memory");
      } else {
        reel_free(m->negative);
        m->negative = copy;
      }
    }
  }
  json_decref(root);
  return st;
}

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
  m->dir = reel_strdup(dir);
  if (!m->dir) {
    reel_free(m);
    return reel_error_set(err, REEL_ENOMEM, "model", "out of memory");
  }
  reel_status st = family->load(b, dir, &m->impl, &m->info, err);
  if (st != REEL_OK) {
    m->impl = NULL;
    reel_model_destroy(&m);
    return st;
  }
  m->info.family = family->name;
  if ((st = read_defaults(m, dir, err)) != REEL_OK) {
    reel_model_destroy(&m);
    return st;
  }
  m->info.default_negative_prompt = m->negative ? m->negative : "";
  m->weight_bytes = weight_bytes(dir, 1);
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
  if (m->impl && m->family->destroy) m->family->destroy(m->impl);
  reel_free(m->dir);
  reel_free(m->negative);
  reel_free(m);
  *pm = NULL;
}

const reel_model_info *reel_model_get_info(const reel_model *m) { return m ? &m->info : NULL; }
const reel_model_family *reel_model_get_family(const reel_model *m) { return m ? m->family : NULL; }
reel_backend *reel_model_backend(const reel_model *m) { return m ? m->b : NULL; }
const char *reel_model_dir(const reel_model *m) { return m ? m->dir : NULL; }
uint64_t reel_model_weight_bytes(const reel_model *m) { return m ? m->weight_bytes : 0; }
uint64_t reel_model_folder_weight_bytes(const char *dir) { return dir ? weight_bytes(dir, 1) : 0; }

static reel_status missing(const reel_model *m, const char *component, reel_error *err) {
  return reel_error_set(err, REEL_EUNSUPPORTED, component, "the %s model in this build has no %s", m->family->name,
                        component);
}

reel_status reel_model_set_option(reel_model *m, const char *key, const char *value, reel_error *err) {
  if (!m || !key || !value) return reel_error_set(err, REEL_EINVAL, "option", "NULL argument");
  if (!m->family->set_option)
    return reel_error_set(err, REEL_ENOTFOUND, key, "the %s model has no run-time settings", m->family->name);
  return m->family->set_option(m->impl, key, value, err);
}

reel_status reel_model_get_option(const reel_model *m, const char *key, char *buf, size_t size, reel_error *err) {
  if (!m || !key || !buf || !size) return reel_error_set(err, REEL_EINVAL, "option", "NULL argument");
  if (!m->family->get_option)
    return reel_error_set(err, REEL_ENOTFOUND, key, "the %s model has no run-time settings", m->family->name);
  return m->family->get_option(m->impl, key, buf, size, err);
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

int reel_model_can_prepare_context(const reel_model *m) {
  return m && m->family->prepare_context && m->family->prepare_context_arena_bytes && m->family->denoise_prepared;
}

reel_status reel_model_prepare_context_arena_bytes(reel_model *m, int64_t batch, int64_t text_len, size_t *bytes,
                                                   reel_error *err) {
  if (!m || !bytes) return reel_error_set(err, REEL_EINVAL, "model", "NULL argument");
  if (!reel_model_can_prepare_context(m)) return missing(m, "prepared context", err);
  return m->family->prepare_context_arena_bytes(m->impl, batch, text_len, bytes, err);
}

reel_status reel_model_prepare_context(reel_model *m, const reel_tensor *context, reel_tensor_arena *arena,
                                       reel_tensor *prepared, reel_error *err) {
  if (!m || !context || !arena || !prepared) return reel_error_set(err, REEL_EINVAL, "context", "NULL argument");
  if (!reel_model_can_prepare_context(m)) return missing(m, "prepared context", err);
  return m->family->prepare_context(m->impl, context, arena, prepared, err);
}

reel_status reel_model_denoise_prepared(reel_model *m, const reel_tensor *latents, const float *timesteps,
                                        const reel_tensor *prepared, reel_tensor_arena *arena, reel_tensor *out,
                                        reel_error *err) {
  if (!m) return reel_error_set(err, REEL_EINVAL, "model", "NULL model");
  if (!reel_model_can_prepare_context(m)) return missing(m, "prepared context", err);
  return m->family->denoise_prepared(m->impl, latents, timesteps, prepared, arena, out, err);
}

reel_status reel_model_decode(reel_model *m, const reel_tensor *latents, reel_tensor_arena *arena, reel_tensor *frames,
                              reel_error *err) {
  if (!m || !latents || !arena || !frames) return reel_error_set(err, REEL_EINVAL, "latents", "NULL argument");
  if (!m->family->decode) return missing(m, "vae", err);
  return m->family->decode(m->impl, latents, arena, frames, err);
}

reel_status reel_model_scratch_bytes(reel_model *m, const int64_t latent[4], size_t *bytes, reel_error *err) {
  if (!m || !latent || !bytes) return reel_error_set(err, REEL_EINVAL, "model", "NULL argument");
  *bytes = 0;
  if (!m->family->scratch_bytes) return REEL_OK;
  return m->family->scratch_bytes(m->impl, latent, bytes, err);
}

reel_status reel_model_decode_stream(reel_model *m, const reel_tensor *latents, reel_model_frames_fn fn, void *user,
                                     reel_error *err) {
  if (!m || !latents || !fn) return reel_error_set(err, REEL_EINVAL, "latents", "NULL argument");
  if (!m->family->decode_stream) return missing(m, "vae", err);
  return m->family->decode_stream(m->impl, latents, fn, user, err);
}
