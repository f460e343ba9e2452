/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wan transformer configuration: diffusers' config.json, validated field by
 * field, and inference from tensor shapes for single files without one.
 *
 * Sizes (widths, heads, layers, channels, patch) are required: a config that
 * omits one is rejected rather than filled with the 14B defaults diffusers would
 * use. Flags and eps fall back to diffusers' defaults when absent.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "reel/json.h"
#include "reel/wan.h"

#define WAN_CONFIG_MAX_BYTES (1u << 20)

/* Field name "<what>.<key>" for messages. */
static void field(char *buf, size_t size, const char *what, const char *key) {
  snprintf(buf, size, "%s.%s", what, key);
}

/* Image conditioning and other keys whose only supported value is null/absent. */
static reel_status require_null(const json_t *root, const char *what, const char *key, reel_error *err) {
  json_t *v = json_object_get(root, key);
  if (!v || json_is_null(v)) return REEL_OK;
  char f[REEL_ERROR_FIELD_MAX];
  field(f, sizeof f, what, key);
  return reel_error_set(err, REEL_EUNSUPPORTED, f,
                        "must be null: image-conditioned Wan models (I2V) are not supported yet");
}

static reel_status get_size(const json_t *root, const char *what, const char *key, int64_t min, int64_t max,
                            int64_t *out, reel_error *err) {
  return reel_json_get_int(root, what, key, REEL_JSON_REQUIRED, min, max, out, err);
}

static void rope_split(reel_wan_config *c) {
  c->rope_dims[1] = c->rope_dims[2] = 2 * (c->head_dim / 6);
  c->rope_dims[0] = c->head_dim - 2 * c->rope_dims[1];
}

static reel_status parse_root(const json_t *root, const char *what, reel_wan_config *out, reel_error *err) {
  static const char *const known[] = {"patch_size",
                                      "num_attention_heads",
                                      "attention_head_dim",
                                      "in_channels",
                                      "out_channels",
                                      "text_dim",
                                      "freq_dim",
                                      "ffn_dim",
                                      "num_layers",
                                      "cross_attn_norm",
                                      "qk_norm",
                                      "eps",
                                      "image_dim",
                                      "added_kv_proj_dim",
                                      "rope_max_seq_len",
                                      "pos_embed_seq_len",
                                      NULL};
  reel_status st = REEL_OK;
  char f[REEL_ERROR_FIELD_MAX];
  reel_wan_config c;
  memset(&c, 0, sizeof c);
  if (!json_is_object(root)) {
    st = reel_error_set(err, REEL_EFORMAT, what, "must be a JSON object");
    goto done;
  }

  /* Keys: metadata ("_class_name", "_diffusers_version", ...) is ignored, anything else must be known. */
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)root, key, val) {
    if (key[0] == '_') continue;
    int ok = 0;
    for (int i = 0; known[i] && !ok; i++) ok = strcmp(key, known[i]) == 0;
    if (!ok) {
      field(f, sizeof f, what, key);
      st = reel_error_set(err, REEL_EUNSUPPORTED, f, "unknown WanTransformer3DModel config key");
      goto done;
    }
  }
  const char *cls = NULL;
  st = reel_json_get_string(root, what, "_class_name", REEL_JSON_OPTIONAL, 128, &cls, err);
  if (st != REEL_OK) goto done;
  if (cls && strcmp(cls, "WanTransformer3DModel") != 0) {
    field(f, sizeof f, what, "_class_name");
    st = reel_error_set(err, REEL_EUNSUPPORTED, f, "must be \"WanTransformer3DModel\", got \"%s\"", cls);
    goto done;
  }

  json_t *patch = json_object_get(root, "patch_size");
  field(f, sizeof f, what, "patch_size");
  if (!patch || !json_is_array(patch) || json_array_size(patch) != 3) {
    st = reel_error_set(err, REEL_EINVAL, f, "must be a list of 3 integers (frames, height, width)");
    goto done;
  }
  for (size_t i = 0; i < 3; i++) {
    json_t *p = json_array_get(patch, i);
    if (!json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > REEL_WAN_MAX_PATCH) {
      st = reel_error_set(err, REEL_ERANGE, f, "entry %zu must be an integer in 1..%d", i, REEL_WAN_MAX_PATCH);
      goto done;
    }
    c.patch[i] = (int64_t)json_integer_value(p);
  }

  if ((st = get_size(root, what, "num_attention_heads", 1, REEL_WAN_MAX_HEADS, &c.heads, err)) != REEL_OK) goto done;
  if ((st = get_size(root, what, "attention_head_dim", 2, REEL_WAN_MAX_DIM, &c.head_dim, err)) != REEL_OK) goto done;
  if (c.head_dim % 2 != 0) {
    field(f, sizeof f, what, "attention_head_dim");
    st = reel_error_set(err, REEL_EINVAL, f, "must be even (rotary pairs), got %lld", (long long)c.head_dim);
    goto done;
  }
  c.dim = c.heads * c.head_dim;
  if (c.dim > REEL_WAN_MAX_DIM) {
    field(f, sizeof f, what, "attention_head_dim");
    st = reel_error_set(err, REEL_ERANGE, f, "num_attention_heads * attention_head_dim must be <= %d, got %lld",
                        REEL_WAN_MAX_DIM, (long long)c.dim);
    goto done;
  }
  if ((st = get_size(root, what, "in_channels", 1, 4096, &c.in_channels, err)) != REEL_OK) goto done;
  c.out_channels = 0;
  if ((st = reel_json_get_int(root, what, "out_channels", REEL_JSON_OPTIONAL, 1, 4096, &c.out_channels, err)) !=
      REEL_OK)
    goto done;
  if (c.out_channels == 0) c.out_channels = c.in_channels; /* diffusers: out_channels or in_channels */
  if ((st = get_size(root, what, "text_dim", 1, REEL_WAN_MAX_DIM, &c.text_dim, err)) != REEL_OK) goto done;
  if ((st = get_size(root, what, "freq_dim", 2, REEL_WAN_MAX_DIM, &c.freq_dim, err)) != REEL_OK) goto done;
  if ((st = get_size(root, what, "ffn_dim", 1, REEL_WAN_MAX_FFN, &c.ffn_dim, err)) != REEL_OK) goto done;
  if ((st = get_size(root, what, "num_layers", 1, REEL_WAN_MAX_LAYERS, &c.layers, err)) != REEL_OK) goto done;

  c.cross_attn_norm = 1;
  if ((st = reel_json_get_bool(root, what, "cross_attn_norm", REEL_JSON_OPTIONAL, &c.cross_attn_norm, err)) != REEL_OK)
    goto done;
  /* diffusers builds RMS norms on q and k whatever qk_norm says; only the across-heads form exists. */
  json_t *qk = json_object_get(root, "qk_norm");
  if (qk && !json_is_null(qk)) {
    const char *s = NULL;
    if ((st = reel_json_get_string(root, what, "qk_norm", REEL_JSON_REQUIRED, 64, &s, err)) != REEL_OK) goto done;
    if (strcmp(s, "rms_norm_across_heads") != 0) {
      field(f, sizeof f, what, "qk_norm");
      st = reel_error_set(err, REEL_EUNSUPPORTED, f, "must be \"rms_norm_across_heads\" or null, got \"%s\"", s);
      goto done;
    }
  }
  c.eps = 1e-6;
  if ((st = reel_json_get_double(root, what, "eps", REEL_JSON_OPTIONAL, 0.0, 1.0, &c.eps, err)) != REEL_OK) goto done;
  if (!(c.eps > 0.0) || !isfinite(c.eps)) {
    field(f, sizeof f, what, "eps");
    st = reel_error_set(err, REEL_ERANGE, f, "must be in (0, 1], got %g", c.eps);
    goto done;
  }
  c.rope_max_seq_len = 1024;
  if ((st = reel_json_get_int(root, what, "rope_max_seq_len", REEL_JSON_OPTIONAL, 1, REEL_WAN_MAX_ROPE,
                              &c.rope_max_seq_len, err)) != REEL_OK)
    goto done;
  if ((st = require_null(root, what, "image_dim", err)) != REEL_OK) goto done;
  if ((st = require_null(root, what, "added_kv_proj_dim", err)) != REEL_OK) goto done;
  if ((st = require_null(root, what, "pos_embed_seq_len", err)) != REEL_OK) goto done;
  rope_split(&c);
  *out = c;
done:
  return st;
}

reel_status reel_wan_config_parse(const char *json, size_t len, const char *what, reel_wan_config *out,
                                  reel_error *err) {
  if (!what) what = "config.json";
  if (!out) return reel_error_set(err, REEL_EINVAL, what, "NULL output");
  memset(out, 0, sizeof *out);
  json_t *root = NULL;
  reel_status st = reel_json_parse(json, len, what, &root, err);
  if (st != REEL_OK) return st;
  st = parse_root(root, what, out, err);
  json_decref(root);
  return st;
}

reel_status reel_wan_config_load(const char *path, reel_wan_config *out, reel_error *err) {
  if (!path || !out) return reel_error_set(err, REEL_EINVAL, "config", "NULL argument");
  memset(out, 0, sizeof *out);
  json_t *root = NULL;
  reel_status st = reel_json_load_file(path, WAN_CONFIG_MAX_BYTES, &root, err);
  if (st != REEL_OK) return st;
  st = parse_root(root, path, out, err);
  json_decref(root);
  return st;
}

/* ---- inference from shapes ----------------------------------------------------------------- */

/* The tensor under either key layout (with or without the repackaging prefix). */
static const reel_st_tensor *find_any(const reel_weights *w, const char *diffusers, const char *original) {
  static const char *const prefixes[] = {"", "model.diffusion_model."};
  char name[256];
  for (int p = 0; p < 2; p++) {
    const char *names[2] = {diffusers, original};
    for (int i = 0; i < 2; i++) {
      snprintf(name, sizeof name, "%s%s", prefixes[p], names[i]);
      const reel_st_tensor *t = reel_weights_find(w, name);
      if (t) return t;
    }
  }
  return NULL;
}

static reel_status need(const reel_st_tensor *t, const char *name, int rank, reel_error *err) {
  if (!t) return reel_error_set(err, REEL_ENOTFOUND, name, "missing: cannot infer the configuration without it");
  if (t->rank != rank) return reel_error_set(err, REEL_EMODEL, name, "has rank %d, expected %d", t->rank, rank);
  for (int i = 0; i < rank; i++)
    if (t->shape[i] < 1) return reel_error_set(err, REEL_EMODEL, name, "has an empty dimension");
  return REEL_OK;
}

reel_status reel_wan_config_infer(const reel_weights *w, reel_wan_config *out, reel_error *err) {
  if (!w || !out) return reel_error_set(err, REEL_EINVAL, "weights", "NULL argument");
  memset(out, 0, sizeof *out);
  reel_wan_config c;
  memset(&c, 0, sizeof c);
  const reel_st_tensor *pe = find_any(w, "patch_embedding.weight", "patch_embedding.weight");
  reel_status st = need(pe, "patch_embedding.weight", 5, err);
  if (st != REEL_OK) return st;
  c.dim = pe->shape[0];
  c.in_channels = pe->shape[1];
  for (int i = 0; i < 3; i++) c.patch[i] = pe->shape[2 + i];
  const reel_st_tensor *te = find_any(w, "condition_embedder.text_embedder.linear_1.weight", "text_embedding.0.weight");
  if ((st = need(te, "text_embedding.0.weight", 2, err)) != REEL_OK) return st;
  c.text_dim = te->shape[1];
  const reel_st_tensor *tm = find_any(w, "condition_embedder.time_embedder.linear_1.weight", "time_embedding.0.weight");
  if ((st = need(tm, "time_embedding.0.weight", 2, err)) != REEL_OK) return st;
  c.freq_dim = tm->shape[1];
  const reel_st_tensor *ff = find_any(w, "blocks.0.ffn.net.0.proj.weight", "blocks.0.ffn.0.weight");
  if ((st = need(ff, "blocks.0.ffn.0.weight", 2, err)) != REEL_OK) return st;
  c.ffn_dim = ff->shape[0];
  const reel_st_tensor *head = find_any(w, "proj_out.weight", "head.head.weight");
  if ((st = need(head, "head.head.weight", 2, err)) != REEL_OK) return st;
  int64_t pp = c.patch[0] * c.patch[1] * c.patch[2];
  if (head->shape[0] % pp != 0)
    return reel_error_set(err, REEL_EMODEL, "head.head.weight",
                          "has %lld rows, not a multiple of the patch volume %lld", (long long)head->shape[0],
                          (long long)pp);
  c.out_channels = head->shape[0] / pp;
  for (c.layers = 0; c.layers < REEL_WAN_MAX_LAYERS; c.layers++) {
    char d[64], o[64];
    snprintf(d, sizeof d, "blocks.%lld.attn1.to_q.weight", (long long)c.layers);
    snprintf(o, sizeof o, "blocks.%lld.self_attn.q.weight", (long long)c.layers);
    if (!find_any(w, d, o)) break;
  }
  if (c.layers == 0) return reel_error_set(err, REEL_ENOTFOUND, "blocks.0.self_attn.q.weight", "missing: no blocks");
  c.cross_attn_norm = find_any(w, "blocks.0.norm2.weight", "blocks.0.norm3.weight") != NULL;
  if (c.dim % 128 != 0)
    return reel_error_set(err, REEL_EMODEL, "patch_embedding.weight",
                          "width %lld is not a multiple of 128: give a config.json with num_attention_heads",
                          (long long)c.dim);
  c.head_dim = 128;
  c.heads = c.dim / 128;
  c.eps = 1e-6;
  c.rope_max_seq_len = 1024;
  if (c.heads > REEL_WAN_MAX_HEADS || c.dim > REEL_WAN_MAX_DIM || c.ffn_dim > REEL_WAN_MAX_FFN ||
      c.patch[0] > REEL_WAN_MAX_PATCH || c.patch[1] > REEL_WAN_MAX_PATCH || c.patch[2] > REEL_WAN_MAX_PATCH ||
      c.in_channels > 4096 || c.out_channels > 4096 || c.text_dim > REEL_WAN_MAX_DIM || c.freq_dim < 2 ||
      c.freq_dim > REEL_WAN_MAX_DIM)
    return reel_error_set(err, REEL_ELIMIT, "weights", "inferred configuration exceeds reel's limits");
  rope_split(&c);
  *out = c;
  return REEL_OK;
}
