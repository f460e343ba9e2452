/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Wan2.1 VAE (see reel/wan_vae.h): config and weights (conv weights repacked to
 * [Cout, kt, kh, kw, Cin] for reel_op_conv3d), the
 * encoder and decoder networks on channels-last frames, and the chunk loops with the
 * causal history.
 *
 * Causal history. Every 3-frame convolution reads [2 history frames | T new frames] from
 * one buffer ("ext"): its producer (norm + SiLU, or the chunk input) writes the new frames
 * after the history copied in front, and afterwards the last two frames of ext become the
 * history. With zero history before the first chunk this is exactly diffusers' feat_cache
 * (zero padding, then the last one or two frames, topped up from the previous cache).
 *
 * Arena planning. A run can be executed in "measure" mode, where allocations are only
 * counted and ops skipped; measuring the first two chunks gives the history shapes and the
 * scratch peak (every later chunk has the second one's shapes), so the arena size is exact.
 */
#include "reel/wan_vae.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model_tensors.h"
#include "reel/alloc.h"
#include "reel/json.h"

enum { HIST_FIRST = 0, HIST_REP = 1, HIST_ON = 2 };

typedef struct vae_hist {
  int64_t frames, h, w, c; /* shape of the history [frames, h, w, c]; frames 0 = not used yet */
  reel_tensor t;
  int state;
} vae_hist;

typedef struct vae_conv {
  reel_tensor w; /* [Cout, kt, kh, kw, Cin] */
  reel_tensor b; /* [Cout] */
  int64_t cin, cout, kt, kh, kw;
  vae_hist hist; /* kt == 3 */
} vae_conv;

typedef struct vae_res {
  int64_t cin, cout;
  reel_tensor n1, n2; /* gamma [C] */
  vae_conv c1, c2, sc;
  int has_sc;
} vae_res;

typedef struct vae_attn {
  int64_t c;
  reel_tensor norm;         /* gamma [C] */
  reel_tensor qkv_w, qkv_b; /* [3C, C], [3C] */
  reel_tensor proj_w, proj_b;
} vae_attn;

enum { RS_UP2D, RS_UP3D, RS_DOWN2D, RS_DOWN3D };

typedef struct vae_resample {
  int mode;
  vae_conv conv;                    /* spatial 3x3 (as [Cout, 1, 3, 3, Cin]) */
  vae_conv time;                    /* 3x1x1 */
  reel_tensor time_w[2], time_b[2]; /* upsample3d: the two halves of the output channels */
  vae_hist hist;                    /* the resample's own history (1 frame for down, 2 for up) */
} vae_resample;

typedef struct vae_layer {
  int kind; /* 0 res, 1 resample */
  vae_res res;
  vae_resample rs;
} vae_layer;

typedef struct vae_net {
  vae_conv conv_in;
  vae_layer *layers; /* encoder down_blocks or decoder up_blocks flattened */
  size_t nlayers;
  vae_res mid0, mid1;
  vae_attn attn;
  reel_tensor norm_out;
  vae_conv conv_out;
} vae_net;

struct reel_wan_vae {
  reel_wan_vae_config cfg;
  reel_backend *b;
  reel__mt mt;
  reel_tensor *owned; /* repacked weights and scaled gammas */
  size_t nowned, capowned;
  vae_net enc, dec;
  vae_conv quant, post_quant;    /* 1x1x1 */
  reel_tensor lat_mean, lat_std; /* [z, 1, 1, 1] */
};

/* ---- config --------------------------------------------------------------------------- */

static reel_status int_list(const json_t *root, const char *key, int64_t *out, int max, int *n, int bools,
                            reel_error *err) {
  char f[64];
  snprintf(f, sizeof f, "config.json.%s", key);
  json_t *a = json_object_get(root, key);
  if (!json_is_array(a) || json_array_size(a) > (size_t)max)
    return reel_error_set(err, REEL_EINVAL, f, "must be an array of at most %d entries", max);
  for (size_t i = 0; i < json_array_size(a); i++) {
    json_t *e = json_array_get(a, i);
    if (bools ? !json_is_boolean(e) : (!json_is_integer(e) || json_integer_value(e) < 1 || json_integer_value(e) > 64))
      return reel_error_set(err, REEL_EINVAL, f, bools ? "entries must be true or false" : "entries must be 1..64");
    out[i] = bools ? json_is_true(e) : json_integer_value(e);
  }
  *n = (int)json_array_size(a);
  return REEL_OK;
}

static reel_status float_list(const json_t *root, const char *key, float *out, int64_t n, reel_error *err) {
  char f[64];
  snprintf(f, sizeof f, "config.json.%s", key);
  json_t *a = json_object_get(root, key);
  if (!json_is_array(a) || (int64_t)json_array_size(a) != n)
    return reel_error_set(err, REEL_EINVAL, f, "must be an array of z_dim (%lld) numbers", (long long)n);
  for (int64_t i = 0; i < n; i++) {
    json_t *e = json_array_get(a, (size_t)i);
    if (!json_is_number(e) || !isfinite(json_number_value(e)))
      return reel_error_set(err, REEL_EINVAL, f, "entry %lld must be a finite number", (long long)i);
    out[i] = (float)json_number_value(e);
  }
  return REEL_OK;
}

/* Pixels per latent of a config's layers: 2 per level below the top, spatially; 2 per temperal_downsample. */
static int64_t cfg_spatial_factor(const reel_wan_vae_config *c) { return (int64_t)1 << (c->nlevels - 1); }

static int64_t cfg_temporal_factor(const reel_wan_vae_config *c) {
  int64_t f = 1;
  for (int i = 0; i < c->nlevels - 1; i++)
    if (c->temperal_downsample[i]) f *= 2;
  return f;
}

static reel_status parse_config(const char *dir, reel_wan_vae_config *c, reel_error *err) {
  char path[4096];
  const char *p = "config.json";
  if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
    return reel_error_set(err, REEL_ELIMIT, "dir", "path longer than %zu bytes", sizeof path);
  json_t *root = NULL;
  reel_status st = reel_json_load_file(path, 1u << 20, &root, err);
  if (st != REEL_OK) return st;
  int64_t tmp[REEL_WAN_VAE_MAX_LEVELS];
  int n = 0, bo = 0;
  memset(c, 0, sizeof *c);
  c->in_channels = c->out_channels = 3;
  c->decoder_base_dim = -1;
  if ((st = reel_json_get_int(root, p, "base_dim", REEL_JSON_REQUIRED, 1, 4096, &c->base_dim, err)) ||
      (st = reel_json_get_int(root, p, "decoder_base_dim", REEL_JSON_OPTIONAL, 1, 4096, &c->decoder_base_dim, err)) ||
      (st = reel_json_get_int(root, p, "z_dim", REEL_JSON_REQUIRED, 1, 64, &c->z_dim, err)) ||
      (st = reel_json_get_int(root, p, "num_res_blocks", REEL_JSON_REQUIRED, 1, 16, &c->num_res_blocks, err)) ||
      (st = reel_json_get_int(root, p, "in_channels", REEL_JSON_OPTIONAL, 1, 64, &c->in_channels, err)) ||
      (st = reel_json_get_int(root, p, "out_channels", REEL_JSON_OPTIONAL, 1, 64, &c->out_channels, err)) ||
      (st = reel_json_get_bool(root, p, "is_residual", REEL_JSON_OPTIONAL, &bo, err)))
    goto out;
  if (c->decoder_base_dim < 0) c->decoder_base_dim = c->base_dim;
  if (bo) {
    st = reel_error_set(err, REEL_EUNSUPPORTED, "config.json.is_residual", "the Wan2.2 residual VAE is not supported");
    goto out;
  }
  json_t *ps = json_object_get(root, "patch_size");
  if (ps && !json_is_null(ps)) {
    st = reel_error_set(err, REEL_EUNSUPPORTED, "config.json.patch_size", "must be null (Wan2.1 layout)");
    goto out;
  }
  json_t *as = json_object_get(root, "attn_scales");
  if (as && (!json_is_array(as) || json_array_size(as) != 0)) {
    st = reel_error_set(err, REEL_EUNSUPPORTED, "config.json.attn_scales",
                        "must be empty (attention only in the middle blocks, as Wan2.1)");
    goto out;
  }
  if ((st = int_list(root, "dim_mult", c->dim_mult, REEL_WAN_VAE_MAX_LEVELS, &c->nlevels, 0, err))) goto out;
  if (c->nlevels < 2) {
    st = reel_error_set(err, REEL_EINVAL, "config.json.dim_mult", "needs at least 2 levels");
    goto out;
  }
  if ((st = int_list(root, "temperal_downsample", tmp, REEL_WAN_VAE_MAX_LEVELS, &n, 1, err))) goto out;
  if (n != c->nlevels - 1) {
    st = reel_error_set(err, REEL_EINVAL, "config.json.temperal_downsample", "must have len(dim_mult) - 1 = %d entries",
                        c->nlevels - 1);
    goto out;
  }
  for (int i = 0; i < n; i++) c->temperal_downsample[i] = (int)tmp[i];
  /* diffusers' WanPipeline sizes the latents by scale_factor_spatial/temporal (defaults 8 and 4), not by the
     layers; a folder whose values disagree with its layers makes diffusers produce another frame size than
     reel, so it is refused rather than run differently. */
  const struct {
    const char *key, *layers;
    int64_t actual;
  } factors[] = {{"scale_factor_spatial", "dim_mult", cfg_spatial_factor(c)},
                 {"scale_factor_temporal", "temperal_downsample", cfg_temporal_factor(c)}};
  for (size_t i = 0; i < sizeof factors / sizeof factors[0]; i++) {
    int64_t v = factors[i].actual;
    if ((st = reel_json_get_int(root, p, factors[i].key, REEL_JSON_OPTIONAL, 1, 1024, &v, err))) goto out;
    if (v != factors[i].actual) {
      char field[64];
      snprintf(field, sizeof field, "config.json.%s", factors[i].key);
      st = reel_error_set(err, REEL_EINVAL, field, "is %lld but the layers (%s) downsample by %lld", (long long)v,
                          factors[i].layers, (long long)factors[i].actual);
      goto out;
    }
  }
  if ((st = float_list(root, "latents_mean", c->latents_mean, c->z_dim, err)) ||
      (st = float_list(root, "latents_std", c->latents_std, c->z_dim, err)))
    goto out;
out:
  json_decref(root);
  return st;
}

/* ---- weights -------------------------------------------------------------------------- */

static reel_tensor *own(reel_wan_vae *v, reel_error *err) {
  if (v->nowned == v->capowned) {
    size_t cap = v->capowned ? v->capowned * 2 : 64;
    reel_tensor *t = reel_realloc(v->owned, cap * sizeof *t);
    if (!t) {
      reel_error_set(err, REEL_ENOMEM, "vae", "out of memory");
      return NULL;
    }
    v->owned = t;
    v->capowned = cap;
  }
  reel_tensor *t = &v->owned[v->nowned];
  memset(t, 0, sizeof *t);
  return t;
}

/* Loads conv `name` ([cout, cin, kt, kh, kw], or [cout, cin, kh, kw] when kt == 0) repacked channels-last. */
static reel_status load_conv(reel_wan_vae *v, const char *name, int64_t cin, int64_t cout, int64_t kt, int64_t kh,
                             int64_t kw, vae_conv *c, reel_error *err) {
  char key[320];
  reel_status st;
  reel_tensor src, view;
  int two_d = kt == 0;
  int64_t shape5[5] = {cout, cin, two_d ? 1 : kt, kh, kw};
  snprintf(key, sizeof key, "%s.weight", name);
  if (two_d) {
    int64_t s4[4] = {cout, cin, kh, kw};
    if ((st = reel__mt_get(&v->mt, key, 4, s4, &src, err)) != REEL_OK) return st;
    if ((st = reel_tensor_reshape(&src, 5, shape5, &src, err)) != REEL_OK) return st;
  } else if ((st = reel__mt_get(&v->mt, key, 5, shape5, &src, err)) != REEL_OK) {
    return st;
  }
  int perm[5] = {0, 2, 3, 4, 1};
  if ((st = reel_tensor_permute(&src, perm, &view, err)) != REEL_OK) return st;
  reel_tensor *w = own(v, err);
  if (!w) return REEL_ENOMEM;
  int64_t ws[5] = {cout, shape5[2], kh, kw, cin};
  if ((st = reel_tensor_new(v->b, src.dtype, 5, ws, w, err)) != REEL_OK) return st;
  v->nowned++;
  if ((st = reel_op_copy(v->b, &view, w, err)) != REEL_OK) return st;
  snprintf(key, sizeof key, "%s.bias", name);
  int64_t bs[1] = {cout};
  if ((st = reel__mt_get(&v->mt, key, 1, bs, &c->b, err)) != REEL_OK) return st;
  c->w = *w;
  c->cin = cin;
  c->cout = cout;
  c->kt = shape5[2];
  c->kh = kh;
  c->kw = kw;
  return REEL_OK;
}

/*
 * gamma [C, 1, 1(, 1)] as an f32 [C] tensor: F.normalize(x) * sqrt(C) * gamma is rms_norm(x) * gamma,
 * since x / sqrt(mean(x^2)) = x / |x| * sqrt(C).
 */
static reel_status load_gamma(reel_wan_vae *v, const char *name, int64_t C, int images, reel_tensor *out,
                              reel_error *err) {
  char key[320];
  snprintf(key, sizeof key, "%s.gamma", name);
  int64_t shape[4] = {C, 1, 1, 1};
  float *g = NULL;
  reel_status st = reel__mt_get_host(&v->mt, key, images ? 3 : 4, shape, &g, err);
  if (st != REEL_OK) return st;
  reel_tensor *t = own(v, err);
  if (!t) {
    reel_free(g);
    return REEL_ENOMEM;
  }
  int64_t cs[1] = {C};
  st = reel_tensor_new(v->b, REEL_F32, 1, cs, t, err);
  if (st == REEL_OK) {
    v->nowned++;
    st = reel_tensor_upload(t, g, (size_t)C * sizeof(float), err);
  }
  reel_free(g);
  *out = *t;
  return st;
}

static reel_status load_res(reel_wan_vae *v, const char *name, int64_t cin, int64_t cout, vae_res *r, reel_error *err) {
  char key[256];
  reel_status st;
  r->cin = cin;
  r->cout = cout;
  snprintf(key, sizeof key, "%s.norm1", name);
  if ((st = load_gamma(v, key, cin, 0, &r->n1, err))) return st;
  snprintf(key, sizeof key, "%s.conv1", name);
  if ((st = load_conv(v, key, cin, cout, 3, 3, 3, &r->c1, err))) return st;
  snprintf(key, sizeof key, "%s.norm2", name);
  if ((st = load_gamma(v, key, cout, 0, &r->n2, err))) return st;
  snprintf(key, sizeof key, "%s.conv2", name);
  if ((st = load_conv(v, key, cout, cout, 3, 3, 3, &r->c2, err))) return st;
  r->has_sc = cin != cout;
  if (r->has_sc) {
    snprintf(key, sizeof key, "%s.conv_shortcut", name);
    if ((st = load_conv(v, key, cin, cout, 1, 1, 1, &r->sc, err))) return st;
  }
  return REEL_OK;
}

static reel_status load_attn(reel_wan_vae *v, const char *name, int64_t C, vae_attn *a, reel_error *err) {
  char key[256];
  reel_status st;
  a->c = C;
  snprintf(key, sizeof key, "%s.norm", name);
  if ((st = load_gamma(v, key, C, 1, &a->norm, err))) return st;
  int64_t s4[4] = {3 * C, C, 1, 1}, s2[2] = {3 * C, C}, b1[1] = {3 * C};
  snprintf(key, sizeof key, "%s.to_qkv.weight", name);
  if ((st = reel__mt_get(&v->mt, key, 4, s4, &a->qkv_w, err)) ||
      (st = reel_tensor_reshape(&a->qkv_w, 2, s2, &a->qkv_w, err)))
    return st;
  snprintf(key, sizeof key, "%s.to_qkv.bias", name);
  if ((st = reel__mt_get(&v->mt, key, 1, b1, &a->qkv_b, err))) return st;
  s4[0] = s2[0] = b1[0] = C;
  snprintf(key, sizeof key, "%s.proj.weight", name);
  if ((st = reel__mt_get(&v->mt, key, 4, s4, &a->proj_w, err)) ||
      (st = reel_tensor_reshape(&a->proj_w, 2, s2, &a->proj_w, err)))
    return st;
  snprintf(key, sizeof key, "%s.proj.bias", name);
  return reel__mt_get(&v->mt, key, 1, b1, &a->proj_b, err);
}

static reel_status load_mid(reel_wan_vae *v, const char *prefix, int64_t C, vae_net *n, reel_error *err) {
  char key[192];
  reel_status st;
  snprintf(key, sizeof key, "%s.mid_block.resnets.0", prefix);
  if ((st = load_res(v, key, C, C, &n->mid0, err))) return st;
  snprintf(key, sizeof key, "%s.mid_block.attentions.0", prefix);
  if ((st = load_attn(v, key, C, &n->attn, err))) return st;
  snprintf(key, sizeof key, "%s.mid_block.resnets.1", prefix);
  return load_res(v, key, C, C, &n->mid1, err);
}

static reel_status add_layer(vae_net *n, vae_layer **out, reel_error *err) {
  vae_layer *l = reel_realloc(n->layers, (n->nlayers + 1) * sizeof *l);
  if (!l) return reel_error_set(err, REEL_ENOMEM, "vae", "out of memory");
  n->layers = l;
  *out = &l[n->nlayers++];
  memset(*out, 0, sizeof **out);
  return REEL_OK;
}

static reel_status load_encoder(reel_wan_vae *v, reel_error *err) {
  const reel_wan_vae_config *c = &v->cfg;
  vae_net *n = &v->enc;
  char key[192];
  reel_status st;
  int64_t dims[REEL_WAN_VAE_MAX_LEVELS + 1];
  dims[0] = c->base_dim;
  for (int i = 0; i < c->nlevels; i++) dims[i + 1] = c->base_dim * c->dim_mult[i];
  if ((st = load_conv(v, "encoder.conv_in", c->in_channels, dims[0], 3, 3, 3, &n->conv_in, err))) return st;
  int idx = 0;
  for (int i = 0; i < c->nlevels; i++) {
    int64_t in = dims[i], out = dims[i + 1];
    for (int64_t r = 0; r < c->num_res_blocks; r++) {
      vae_layer *l;
      if ((st = add_layer(n, &l, err))) return st;
      snprintf(key, sizeof key, "encoder.down_blocks.%d", idx++);
      if ((st = load_res(v, key, in, out, &l->res, err))) return st;
      in = out;
    }
    if (i != c->nlevels - 1) {
      vae_layer *l;
      if ((st = add_layer(n, &l, err))) return st;
      l->kind = 1;
      l->rs.mode = c->temperal_downsample[i] ? RS_DOWN3D : RS_DOWN2D;
      snprintf(key, sizeof key, "encoder.down_blocks.%d.resample.1", idx);
      if ((st = load_conv(v, key, out, out, 0, 3, 3, &l->rs.conv, err))) return st;
      if (l->rs.mode == RS_DOWN3D) {
        snprintf(key, sizeof key, "encoder.down_blocks.%d.time_conv", idx);
        if ((st = load_conv(v, key, out, out, 3, 1, 1, &l->rs.time, err))) return st;
      }
      idx++;
    }
  }
  int64_t top = dims[c->nlevels];
  if ((st = load_mid(v, "encoder", top, n, err))) return st;
  if ((st = load_gamma(v, "encoder.norm_out", top, 0, &n->norm_out, err))) return st;
  if ((st = load_conv(v, "encoder.conv_out", top, 2 * c->z_dim, 3, 3, 3, &n->conv_out, err))) return st;
  return load_conv(v, "quant_conv", 2 * c->z_dim, 2 * c->z_dim, 1, 1, 1, &v->quant, err);
}

static reel_status load_decoder(reel_wan_vae *v, reel_error *err) {
  const reel_wan_vae_config *c = &v->cfg;
  vae_net *n = &v->dec;
  char key[192];
  reel_status st;
  int L = c->nlevels;
  int64_t dims[REEL_WAN_VAE_MAX_LEVELS + 1];
  dims[0] = c->decoder_base_dim * c->dim_mult[L - 1];
  for (int i = 0; i < L; i++) dims[i + 1] = c->decoder_base_dim * c->dim_mult[L - 1 - i];
  if ((st = load_conv(v, "post_quant_conv", c->z_dim, c->z_dim, 1, 1, 1, &v->post_quant, err))) return st;
  if ((st = load_conv(v, "decoder.conv_in", c->z_dim, dims[0], 3, 3, 3, &n->conv_in, err))) return st;
  if ((st = load_mid(v, "decoder", dims[0], n, err))) return st;
  for (int i = 0; i < L; i++) {
    int64_t in = i > 0 ? dims[i] / 2 : dims[i], out = dims[i + 1];
    for (int64_t r = 0; r <= c->num_res_blocks; r++) {
      vae_layer *l;
      if ((st = add_layer(n, &l, err))) return st;
      snprintf(key, sizeof key, "decoder.up_blocks.%d.resnets.%lld", i, (long long)r);
      if ((st = load_res(v, key, in, out, &l->res, err))) return st;
      in = out;
    }
    if (i != L - 1) {
      vae_layer *l;
      if ((st = add_layer(n, &l, err))) return st;
      l->kind = 1;
      /* temperal_upsample = temperal_downsample reversed */
      l->rs.mode = c->temperal_downsample[L - 2 - i] ? RS_UP3D : RS_UP2D;
      snprintf(key, sizeof key, "decoder.up_blocks.%d.upsamplers.0.resample.1", i);
      if ((st = load_conv(v, key, out, out / 2, 0, 3, 3, &l->rs.conv, err))) return st;
      if (l->rs.mode == RS_UP3D) {
        snprintf(key, sizeof key, "decoder.up_blocks.%d.upsamplers.0.time_conv", i);
        if ((st = load_conv(v, key, out, 2 * out, 3, 1, 1, &l->rs.time, err))) return st;
        for (int h = 0; h < 2; h++) {
          if ((st = reel_tensor_slice(&l->rs.time.w, 0, h * out, out, &l->rs.time_w[h], err)) ||
              (st = reel_tensor_slice(&l->rs.time.b, 0, h * out, out, &l->rs.time_b[h], err)))
            return st;
        }
      }
    }
  }
  if ((st = load_gamma(v, "decoder.norm_out", dims[L], 0, &n->norm_out, err))) return st;
  return load_conv(v, "decoder.conv_out", dims[L], c->out_channels, 3, 3, 3, &n->conv_out, err);
}

void reel_wan_vae_destroy(reel_wan_vae **vp) {
  if (!vp || !*vp) return;
  reel_wan_vae *v = *vp;
  for (size_t i = 0; i < v->nowned; i++) reel_tensor_free(&v->owned[i]);
  reel_free(v->owned);
  reel_free(v->enc.layers);
  reel_free(v->dec.layers);
  reel__mt_close(&v->mt);
  reel_free(v);
  *vp = NULL;
}

reel_status reel_wan_vae_load(reel_backend *b, const char *dir, reel_wan_vae **out, reel_error *err) {
  reel_status st;
  *out = NULL;
  if (!b || !dir) return reel_error_set(err, REEL_EINVAL, "vae", "backend and folder are required");
  reel_wan_vae *v = reel_calloc(1, sizeof *v);
  if (!v) return reel_error_set(err, REEL_ENOMEM, "vae", "out of memory");
  v->b = b;
  if ((st = parse_config(dir, &v->cfg, err)) != REEL_OK) goto fail;
  if ((st = reel__mt_open(&v->mt, b, dir, err)) != REEL_OK) goto fail;
  if ((st = load_encoder(v, err)) != REEL_OK) goto fail;
  if ((st = load_decoder(v, err)) != REEL_OK) goto fail;
  {
    int64_t z = v->cfg.z_dim, s[4] = {z, 1, 1, 1};
    reel_tensor *m = own(v, err);
    if (!m) {
      st = REEL_ENOMEM;
      goto fail;
    }
    if ((st = reel_tensor_new(b, REEL_F32, 4, s, m, err)) != REEL_OK) goto fail;
    v->nowned++;
    v->lat_mean = *m;
    reel_tensor *sd = own(v, err);
    if (!sd) {
      st = REEL_ENOMEM;
      goto fail;
    }
    if ((st = reel_tensor_new(b, REEL_F32, 4, s, sd, err)) != REEL_OK) goto fail;
    v->nowned++;
    v->lat_std = *sd;
    /* WanPipeline: latents / (1 / std) + mean, with 1 / std rounded to f32 first. */
    float inv[64], stdv[64];
    for (int64_t i = 0; i < z; i++) {
      inv[i] = 1.0f / v->cfg.latents_std[i];
      stdv[i] = 1.0f / inv[i];
    }
    if ((st = reel_tensor_upload(&v->lat_mean, v->cfg.latents_mean, (size_t)z * sizeof(float), err)) ||
        (st = reel_tensor_upload(&v->lat_std, stdv, (size_t)z * sizeof(float), err)))
      goto fail;
  }
  *out = v;
  return REEL_OK;
fail:
  reel_error_prefix_field(err, "vae", '/');
  reel_wan_vae_destroy(&v);
  return st;
}

const reel_wan_vae_config *reel_wan_vae_get_config(const reel_wan_vae *v) { return &v->cfg; }

int64_t reel_wan_vae_spatial_factor(const reel_wan_vae *v) { return cfg_spatial_factor(&v->cfg); }

int64_t reel_wan_vae_temporal_factor(const reel_wan_vae *v) { return cfg_temporal_factor(&v->cfg); }

/* ---- running -------------------------------------------------------------------------- */

typedef struct vae_run {
  reel_wan_vae *v;
  reel_backend *b;
  reel_tensor_arena *arena;
  int measure;       /* count allocations, skip ops */
  size_t used, peak; /* measure mode */
  reel_error *err;
} vae_run;

#define A64(x) (((x) + 63) / 64 * 64)

static reel_status ralloc(vae_run *r, int64_t t, int64_t h, int64_t w, int64_t c, reel_tensor *out) {
  int64_t s[4] = {t, h, w, c};
  if (r->measure) {
    r->used += A64((size_t)(t * h * w * c) * sizeof(float));
    if (r->used > r->peak) r->peak = r->used;
    return reel_tensor_init(out, REEL_F32, 4, s, NULL, 0, r->err);
  }
  return reel_tensor_arena_alloc(r->arena, REEL_F32, 4, s, out, r->err);
}

#define OP(call)                                            \
  do {                                                      \
    if (!r->measure && (st = (call)) != REEL_OK) return st; \
  } while (0)
#define TRY(call)                            \
  do {                                       \
    if ((st = (call)) != REEL_OK) return st; \
  } while (0)

/* Frames [a, a + n) of a [T, H, W, C] tensor. */
static reel_tensor frames(const reel_tensor *t, int64_t a, int64_t n) {
  reel_tensor v = *t;
  reel_tensor_slice(t, 0, a, n, &v, NULL);
  return v;
}

/* Makes sure a history buffer of `nf` frames exists with this frame shape (measure mode records it). */
static reel_status hist_need(vae_run *r, vae_hist *h, int64_t nf, int64_t H, int64_t W, int64_t C) {
  if (h->frames == 0) {
    if (!r->measure) return reel_error_set(r->err, REEL_EINTERNAL, "vae", "history buffer was not planned");
    h->frames = nf;
    h->h = H;
    h->w = W;
    h->c = C;
    return REEL_OK;
  }
  if (h->frames != nf || h->h != H || h->w != W || h->c != C)
    return reel_error_set(r->err, REEL_EINTERNAL, "vae", "history shape changed between chunks");
  return REEL_OK;
}

/*
 * A buffer [hn + T, H, W, C] whose first hn frames hold history h (zeros before the first
 * chunk); the caller writes the T new frames after them.
 */
static reel_status ext_begin(vae_run *r, vae_hist *h, int64_t hn, int64_t T, int64_t H, int64_t W, int64_t C,
                             reel_tensor *ext) {
  reel_status st;
  TRY(hist_need(r, h, hn, H, W, C));
  TRY(ralloc(r, hn + T, H, W, C, ext));
  reel_tensor head = frames(ext, 0, hn);
  OP(reel_op_copy(r->b, &h->t, &head, r->err));
  return REEL_OK;
}

/* After the conv: the last hn frames of ext become the history. */
static reel_status ext_end(vae_run *r, vae_hist *h, const reel_tensor *ext) {
  reel_status st;
  int64_t n = ext->shape[0];
  reel_tensor tail = frames(ext, n - h->frames, h->frames);
  OP(reel_op_copy(r->b, &tail, &h->t, r->err));
  h->state = HIST_ON;
  return REEL_OK;
}

static reel_status conv(vae_run *r, const vae_conv *c, const reel_tensor *x, int st_t, int sh, int ph0, int ph1, int up,
                        reel_tensor *out) {
  reel_status st;
  reel_conv3d_params p = {{st_t, sh, sh}, {ph0, ph1}, {ph0, ph1}, up};
  int64_t H = x->shape[1] * up, W = x->shape[2] * up;
  int64_t To = (x->shape[0] - c->kt) / st_t + 1, Ho = (H + ph0 + ph1 - c->kh) / sh + 1,
          Wo = (W + ph0 + ph1 - c->kw) / sh + 1;
  TRY(ralloc(r, To, Ho, Wo, c->cout, out));
  OP(reel_op_conv3d(r->b, x, &c->w, &c->b, &p, out, r->err));
  return REEL_OK;
}

/* norm (+ SiLU) of x into `out` (same shape, [T, H, W, C]). */
static reel_status norm_silu(vae_run *r, const reel_tensor *x, const reel_tensor *gamma, int silu, reel_tensor *out) {
  reel_status st;
  float eps = 1e-24f; /* F.normalize clamps the norm at 1e-12: only an all-zero vector sees it */
  OP(reel_op_rms_norm(r->b, x, gamma, eps / (float)x->shape[3], out, r->err));
  if (silu) OP(reel_op_silu(r->b, out, out, r->err));
  return REEL_OK;
}

/* A causal 3x3x3 conv of norm+SiLU(x): ext = [history | silu(norm(x))]. */
static reel_status causal_block(vae_run *r, const vae_conv *c, vae_hist *h, const reel_tensor *x,
                                const reel_tensor *gamma, reel_tensor *out) {
  reel_status st;
  int64_t T = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
  reel_tensor ext, body;
  TRY(ext_begin(r, h, 2, T, H, W, C, &ext));
  body = frames(&ext, 2, T);
  TRY(norm_silu(r, x, gamma, 1, &body));
  TRY(ext_end(r, h, &ext));
  return conv(r, c, &ext, 1, 1, 1, 1, 1, out);
}

static reel_status resblock(vae_run *r, vae_res *rb, const reel_tensor *x, reel_tensor *out) {
  reel_status st;
  reel_tensor sc, y1;
  if (rb->has_sc)
    TRY(conv(r, &rb->sc, x, 1, 1, 0, 0, 1, &sc));
  else
    sc = *x;
  TRY(causal_block(r, &rb->c1, &rb->c1.hist, x, &rb->n1, &y1));
  TRY(causal_block(r, &rb->c2, &rb->c2.hist, &y1, &rb->n2, out));
  OP(reel_op_add(r->b, out, &sc, out, r->err));
  return REEL_OK;
}

/* The middle attention over each frame's pixels, added to x in place. */
static reel_status attention(vae_run *r, const vae_attn *a, reel_tensor *x) {
  reel_status st;
  int64_t T = x->shape[0], P = x->shape[1] * x->shape[2], C = a->c;
  reel_tensor xn, qkv, o, y;
  TRY(ralloc(r, T, x->shape[1], x->shape[2], C, &xn));
  TRY(norm_silu(r, x, &a->norm, 0, &xn));
  TRY(ralloc(r, 1, 1, T * P, 3 * C, &qkv));
  TRY(ralloc(r, T, P, 1, C, &o));
  TRY(ralloc(r, 1, 1, T * P, C, &y));
  if (r->measure) return REEL_OK;
  reel_tensor xn2, qkv2, qkv4, q, k, vv, o2, y2, y4;
  int64_t s2[2] = {T * P, C}, s2q[2] = {T * P, 3 * C}, s4[4] = {T, P, 1, 3 * C};
  TRY(reel_tensor_reshape(&xn, 2, s2, &xn2, r->err));
  TRY(reel_tensor_reshape(&qkv, 2, s2q, &qkv2, r->err));
  TRY(reel_op_matmul(r->b, &xn2, &a->qkv_w, &a->qkv_b, &qkv2, r->err));
  TRY(reel_tensor_reshape(&qkv, 4, s4, &qkv4, r->err));
  TRY(reel_tensor_slice(&qkv4, 3, 0, C, &q, r->err));
  TRY(reel_tensor_slice(&qkv4, 3, C, C, &k, r->err));
  TRY(reel_tensor_slice(&qkv4, 3, 2 * C, C, &vv, r->err));
  TRY(reel_op_attention(r->b, &q, &k, &vv, 1.0f / sqrtf((float)C), &o, r->err));
  TRY(reel_tensor_reshape(&o, 2, s2, &o2, r->err));
  TRY(reel_tensor_reshape(&y, 2, s2, &y2, r->err));
  TRY(reel_op_matmul(r->b, &o2, &a->proj_w, &a->proj_b, &y2, r->err));
  int64_t sx[4] = {T, x->shape[1], x->shape[2], C};
  TRY(reel_tensor_reshape(&y2, 4, sx, &y4, r->err));
  return reel_op_add(r->b, x, &y4, x, r->err);
}

static reel_status resample(vae_run *r, vae_resample *rs, const reel_tensor *x, reel_tensor *out) {
  reel_status st;
  int64_t T = x->shape[0], H = x->shape[1], W = x->shape[2], C = x->shape[3];
  if (rs->mode == RS_UP2D) return conv(r, &rs->conv, x, 1, 1, 1, 1, 2, out);
  if (rs->mode == RS_UP3D) {
    if (rs->hist.state == HIST_FIRST) {
      /* diffusers marks the cache "Rep" and passes the first chunk through */
      TRY(hist_need(r, &rs->hist, 2, H, W, C));
      rs->hist.state = HIST_REP;
      return conv(r, &rs->conv, x, 1, 1, 1, 1, 2, out);
    }
    reel_tensor ext, body, x2;
    TRY(ext_begin(r, &rs->hist, 2, T, H, W, C, &ext));
    body = frames(&ext, 2, T);
    OP(reel_op_copy(r->b, x, &body, r->err));
    TRY(ext_end(r, &rs->hist, &ext));
    /* time_conv makes 2C channels per frame: the first C become frame 2t, the rest 2t+1. */
    TRY(ralloc(r, 2 * T, H, W, C, &x2));
    if (!r->measure) {
      int64_t s5[5] = {T, 2, H, W, C}, s4[4] = {T, H, W, C};
      reel_tensor t5, half;
      reel_conv3d_params p = {{1, 1, 1}, {0, 0}, {0, 0}, 1};
      TRY(reel_tensor_reshape(&x2, 5, s5, &t5, r->err));
      for (int h = 0; h < 2; h++) {
        TRY(reel_tensor_slice(&t5, 1, h, 1, &half, r->err));
        TRY(reel_tensor_reshape(&half, 4, s4, &half, r->err));
        TRY(reel_op_conv3d(r->b, &ext, &rs->time_w[h], &rs->time_b[h], &p, &half, r->err));
      }
    }
    return conv(r, &rs->conv, &x2, 1, 1, 1, 1, 2, out);
  }
  /* downsampling: ZeroPad2d((0, 1, 0, 1)) then a 3x3 stride-2 conv, frame by frame */
  reel_tensor sp;
  TRY(conv(r, &rs->conv, x, 1, 2, 0, 1, 1, &sp));
  if (rs->mode == RS_DOWN2D) {
    *out = sp;
    return REEL_OK;
  }
  int64_t Ho = sp.shape[1], Wo = sp.shape[2], To = sp.shape[0];
  if (rs->hist.state == HIST_FIRST) {
    /* the first chunk passes through; its last frame is the history */
    TRY(hist_need(r, &rs->hist, 1, Ho, Wo, C));
    reel_tensor last = frames(&sp, To - 1, 1);
    OP(reel_op_copy(r->b, &last, &rs->hist.t, r->err));
    rs->hist.state = HIST_ON;
    *out = sp;
    return REEL_OK;
  }
  reel_tensor ext, body;
  TRY(ext_begin(r, &rs->hist, 1, To, Ho, Wo, C, &ext));
  body = frames(&ext, 1, To);
  OP(reel_op_copy(r->b, &sp, &body, r->err));
  TRY(ext_end(r, &rs->hist, &ext));
  return conv(r, &rs->time, &ext, 2, 1, 0, 0, 1, out);
}

/*
 * Layer sequences. Decoder: conv_in, mid res, mid attention, mid res, the up layers,
 * norm_out + SiLU + conv_out (+ clamp). Encoder: conv_in, the down layers, mid res, mid
 * attention, mid res, norm_out + SiLU + conv_out, quant_conv.
 */
static size_t nsteps(const vae_net *n, int dec) { return n->nlayers + (dec ? 5 : 6); }

static reel_status apply_step(vae_run *r, vae_net *n, int dec, size_t k, reel_tensor *x, reel_tensor *y) {
  reel_status st;
  size_t L = n->nlayers;
  size_t mid0 = dec ? 1 : L + 1;
  if (k == 0) {
    reel_tensor ext, body;
    int64_t T = x->shape[0];
    TRY(ext_begin(r, &n->conv_in.hist, 2, T, x->shape[1], x->shape[2], x->shape[3], &ext));
    body = frames(&ext, 2, T);
    OP(reel_op_copy(r->b, x, &body, r->err));
    TRY(ext_end(r, &n->conv_in.hist, &ext));
    return conv(r, &n->conv_in, &ext, 1, 1, 1, 1, 1, y);
  }
  if (k == mid0) return resblock(r, &n->mid0, x, y);
  if (k == mid0 + 1) {
    TRY(attention(r, &n->attn, x));
    *y = *x;
    return REEL_OK;
  }
  if (k == mid0 + 2) return resblock(r, &n->mid1, x, y);
  size_t first = dec ? 4 : 1;
  if (k >= first && k < first + L) {
    vae_layer *l = &n->layers[k - first];
    return l->kind == 0 ? resblock(r, &l->res, x, y) : resample(r, &l->rs, x, y);
  }
  size_t out = dec ? L + 4 : L + 4;
  if (k == out) {
    TRY(causal_block(r, &n->conv_out, &n->conv_out.hist, x, &n->norm_out, y));
    if (dec) OP(reel_op_clamp(r->b, y, -1.0f, 1.0f, y, r->err));
    return REEL_OK;
  }
  return conv(r, &r->v->quant, x, 1, 1, 0, 0, 1, y); /* encoder: quant_conv */
}

/* Moves y to arena offset `mark` (memmove) and releases everything above it. */
static reel_status rmove(vae_run *r, reel_tensor *y, size_t mark) {
  reel_status st;
  size_t bytes = reel_tensor_nbytes(y);
  if (r->measure) {
    r->used = mark + A64(bytes);
    return REEL_OK;
  }
  reel_tensor z;
  reel_tensor_arena_release(r->arena, mark);
  TRY(reel_tensor_arena_alloc(r->arena, REEL_F32, y->ndim, y->shape, &z, r->err));
  if (z.offset != y->offset) TRY(reel_buffer_copy(z.buf, z.offset, y->buf, y->offset, bytes, r->err));
  *y = z;
  return REEL_OK;
}

typedef struct run_ctx {
  vae_run *r;
  vae_net *n;
  int dec;
  int split;        /* run single frames depth-first (causal layers make it exact) */
  reel_tensor *out; /* the chunk's output frames [Tout, H, W, C] */
  int64_t nout;
} run_ctx;

/*
 * Runs steps k.. of the network on x, appending the final frames to c->out. Every step's
 * result is moved down over its input, so only one activation (plus one step's
 * temporaries) is alive per level; with `split`, a multi-frame input is run one frame at a
 * time, depth-first.
 */
static reel_status run_from(run_ctx *c, size_t k, const reel_tensor *xin) {
  vae_run *r = c->r;
  reel_status st;
  size_t base = r->measure ? r->used : reel_tensor_arena_used(r->arena);
  size_t total = nsteps(c->n, c->dec);
  reel_tensor x = *xin;
  int owned = 0;
  for (; k < total; k++) {
    if (c->split && x.shape[0] > 1) {
      for (int64_t t = 0; t < x.shape[0]; t++) {
        reel_tensor f = frames(&x, t, 1);
        TRY(run_from(c, k, &f));
      }
      goto done;
    }
    size_t m = r->measure ? r->used : reel_tensor_arena_used(r->arena);
    reel_tensor y;
    TRY(apply_step(r, c->n, c->dec, k, &x, &y));
    TRY(rmove(r, &y, owned ? base : m));
    x = y;
    owned = 1;
  }
  {
    reel_tensor dst = frames(c->out, c->nout, x.shape[0]);
    OP(reel_op_copy(r->b, &x, &dst, r->err));
    c->nout += x.shape[0];
  }
done:
  if (r->measure)
    r->used = base;
  else
    reel_tensor_arena_release(r->arena, base);
  return REEL_OK;
}

/* Frames a chunk of T inputs gives: temporal up/downsamplers past their first chunk scale T. */
static int64_t chunk_out_frames(const vae_net *n, int dec, int64_t T) {
  for (size_t i = 0; i < n->nlayers; i++) {
    const vae_layer *l = &n->layers[i];
    if (l->kind != 1) continue;
    if (l->rs.mode == RS_UP3D && l->rs.hist.state != HIST_FIRST) T *= 2;
    if (l->rs.mode == RS_DOWN3D && l->rs.hist.state != HIST_FIRST) T = (1 + T - 3) / 2 + 1;
  }
  (void)dec;
  return T;
}

static reel_status run_chunk(vae_run *r, vae_net *n, int dec, const reel_tensor *x, reel_tensor *out) {
  reel_status st;
  int64_t sf = cfg_spatial_factor(&r->v->cfg);
  int64_t To = chunk_out_frames(n, dec, x->shape[0]);
  int64_t H = dec ? x->shape[1] * sf : x->shape[1] / sf, W = dec ? x->shape[2] * sf : x->shape[2] / sf;
  int64_t C = dec ? r->v->cfg.out_channels : 2 * r->v->cfg.z_dim;
  TRY(ralloc(r, To, H, W, C, out));
  run_ctx c = {r, n, dec, dec, out, 0};
  TRY(run_from(&c, 0, x));
  if (c.nout != To)
    return reel_error_set(r->err, REEL_EINTERNAL, "vae", "chunk gave %lld frames, expected %lld", (long long)c.nout,
                          (long long)To);
  return REEL_OK;
}

static reel_status decoder_chunk(vae_run *r, const reel_tensor *x, reel_tensor *out) {
  return run_chunk(r, &r->v->dec, 1, x, out);
}

static reel_status encoder_chunk(vae_run *r, const reel_tensor *x, reel_tensor *out) {
  return run_chunk(r, &r->v->enc, 0, x, out);
}

/* Every history buffer of a network, for planning and allocation. */
static size_t collect_hists(vae_net *n, vae_hist **out, size_t max) {
  size_t k = 0;
#define ADD(h)                 \
  do {                         \
    if (k < max) out[k] = (h); \
    k++;                       \
  } while (0)
  ADD(&n->conv_in.hist);
  ADD(&n->mid0.c1.hist);
  ADD(&n->mid0.c2.hist);
  ADD(&n->mid1.c1.hist);
  ADD(&n->mid1.c2.hist);
  for (size_t i = 0; i < n->nlayers; i++) {
    if (n->layers[i].kind == 0) {
      ADD(&n->layers[i].res.c1.hist);
      ADD(&n->layers[i].res.c2.hist);
    } else {
      ADD(&n->layers[i].rs.hist);
    }
  }
  ADD(&n->conv_out.hist);
#undef ADD
  return k;
}

typedef reel_status (*chunk_fn)(vae_run *r, const reel_tensor *x, reel_tensor *out);

/*
 * Plans a run: measures chunk 0 (t0 frames) and chunk 1 (t1 frames, if any) of h x w x c
 * inputs; returns the history bytes and the scratch peak. Leaves every history unplanned
 * state reset but with its shape recorded.
 */
static reel_status plan(reel_wan_vae *v, vae_net *n, chunk_fn fn, int64_t t0, int64_t t1, int64_t h, int64_t w,
                        int64_t c, size_t *hist_bytes, size_t *scratch, reel_error *err) {
  vae_hist *hs[256];
  size_t nh = collect_hists(n, hs, 256);
  if (nh > 256) return reel_error_set(err, REEL_ELIMIT, "vae", "more than 256 causal convolutions");
  for (size_t i = 0; i < nh; i++) memset(hs[i], 0, sizeof *hs[i]);
  vae_run r = {v, v->b, NULL, 1, 0, 0, err};
  reel_tensor x, out;
  int64_t s[4] = {t0, h, w, c};
  reel_status st = reel_tensor_init(&x, REEL_F32, 4, s, NULL, 0, err);
  if (st == REEL_OK) st = fn(&r, &x, &out);
  if (st == REEL_OK && t1 > 0) {
    s[0] = t1;
    r.used = 0;
    st = reel_tensor_init(&x, REEL_F32, 4, s, NULL, 0, err);
    if (st == REEL_OK) st = fn(&r, &x, &out);
  }
  if (st != REEL_OK) return st;
  size_t hb = 0;
  for (size_t i = 0; i < nh; i++) {
    hs[i]->state = HIST_FIRST;
    if (hs[i]->frames) hb += A64((size_t)(hs[i]->frames * hs[i]->h * hs[i]->w * hs[i]->c) * sizeof(float));
  }
  *hist_bytes = hb;
  *scratch = r.peak;
  return REEL_OK;
}

/* Allocates and zeroes the planned histories of n from the arena. */
static reel_status alloc_hists(vae_run *r, vae_net *n) {
  vae_hist *hs[256];
  size_t nh = collect_hists(n, hs, 256);
  for (size_t i = 0; i < nh; i++) {
    vae_hist *h = hs[i];
    if (!h->frames) continue;
    int64_t s[4] = {h->frames, h->h, h->w, h->c};
    reel_status st = reel_tensor_arena_alloc(r->arena, REEL_F32, 4, s, &h->t, r->err);
    if (st != REEL_OK) return st;
    st = reel_buffer_memset(h->t.buf, h->t.offset, 0, reel_tensor_nbytes(&h->t), r->err);
    if (st != REEL_OK) return st;
    h->state = HIST_FIRST;
  }
  return REEL_OK;
}

reel_status reel_wan_vae_decode_arena_bytes(reel_wan_vae *v, int64_t h, int64_t w, size_t *bytes, reel_error *err) {
  if (h < 1 || w < 1 || h > 4096 || w > 4096)
    return reel_error_set(err, REEL_ERANGE, "latents", "height and width must be 1..4096, got %lld x %lld",
                          (long long)h, (long long)w);
  size_t hb = 0, sc = 0;
  reel_status st = plan(v, &v->dec, decoder_chunk, 1, 1, h, w, v->cfg.z_dim, &hb, &sc, err);
  if (st != REEL_OK) return st;
  int64_t sf = reel_wan_vae_spatial_factor(v), tf = reel_wan_vae_temporal_factor(v);
  /* + one latent frame in channels-last, its post_quant_conv, the chunk's frames in [C, T, H, W] */
  size_t in = 2 * A64((size_t)(h * w * v->cfg.z_dim) * sizeof(float));
  size_t outf = A64((size_t)(v->cfg.out_channels * tf * h * sf * w * sf) * sizeof(float));
  *bytes = hb + sc + in + outf + 4096;
  return REEL_OK;
}

reel_status reel_wan_vae_encode_arena_bytes(reel_wan_vae *v, int64_t H, int64_t W, size_t *bytes, reel_error *err) {
  int64_t sf = reel_wan_vae_spatial_factor(v), tf = reel_wan_vae_temporal_factor(v);
  if (H < sf || W < sf || H % sf || W % sf || H > 16384 || W > 16384)
    return reel_error_set(err, REEL_ERANGE, "video", "height and width must be positive multiples of %lld",
                          (long long)sf);
  size_t hb = 0, sc = 0;
  reel_status st = plan(v, &v->enc, encoder_chunk, 1, tf, H, W, v->cfg.in_channels, &hb, &sc, err);
  if (st != REEL_OK) return st;
  size_t in = A64((size_t)(tf * H * W * v->cfg.in_channels) * sizeof(float));
  size_t outl = 2 * A64((size_t)(2 * v->cfg.z_dim * (H / sf) * (W / sf)) * sizeof(float));
  *bytes = hb + sc + in + outl + 4096;
  return REEL_OK;
}

static reel_status check_arena(reel_tensor_arena *arena, size_t need, reel_error *err) {
  size_t freeb = reel_tensor_arena_capacity(arena) - reel_tensor_arena_used(arena);
  if (freeb < need) return reel_error_set(err, REEL_ELIMIT, "arena", "needs %zu free bytes, has %zu", need, freeb);
  return REEL_OK;
}

reel_status reel_wan_vae_decode_stream(reel_wan_vae *v, const reel_tensor *lat, reel_tensor_arena *arena,
                                       reel_wan_vae_frames_fn fn, void *user, reel_error *err) {
  const reel_wan_vae_config *c = &v->cfg;
  if (!lat || lat->ndim != 4 || lat->shape[0] != c->z_dim || lat->dtype != REEL_F32 || lat->shape[1] < 1)
    return reel_error_set(err, REEL_EINVAL, "latents", "must be f32 [%lld, F >= 1, h, w]", (long long)c->z_dim);
  if (!fn || !arena) return reel_error_set(err, REEL_EINVAL, "vae", "callback and arena are required");
  int64_t F = lat->shape[1], h = lat->shape[2], w = lat->shape[3];
  size_t need = 0;
  reel_status st = reel_wan_vae_decode_arena_bytes(v, h, w, &need, err);
  if (st != REEL_OK) return st;
  if ((st = check_arena(arena, need, err)) != REEL_OK) return st;
  size_t mark0 = reel_tensor_arena_used(arena);
  vae_run run = {v, v->b, arena, 0, 0, 0, err}, *r = &run;
  if ((st = alloc_hists(r, &v->dec)) != REEL_OK) goto done;
  int64_t frame = 0;
  for (int64_t i = 0; i < F; i++) {
    size_t m = reel_tensor_arena_used(arena);
    reel_tensor zf, zq, out, vid;
    /* latent frame i, channels-last, through post_quant_conv */
    int64_t s1[4] = {1, h, w, c->z_dim};
    if ((st = reel_tensor_arena_alloc(arena, REEL_F32, 4, s1, &zf, err)) != REEL_OK) goto done;
    {
      reel_tensor src, perm;
      int p[4] = {1, 2, 3, 0};
      if ((st = reel_tensor_slice(lat, 1, i, 1, &src, err)) || (st = reel_tensor_permute(&src, p, &perm, err)) ||
          (st = reel_op_copy(v->b, &perm, &zf, err)))
        goto done;
    }
    if ((st = conv(r, &v->post_quant, &zf, 1, 1, 0, 0, 1, &zq)) != REEL_OK) goto done;
    if ((st = decoder_chunk(r, &zq, &out)) != REEL_OK) goto done;
    /* [T, H, W, C] -> [C, T, H, W] */
    int64_t T = out.shape[0], H = out.shape[1], W = out.shape[2], C = out.shape[3];
    int64_t sv[4] = {C, T, H, W};
    if ((st = reel_tensor_arena_alloc(arena, REEL_F32, 4, sv, &vid, err)) != REEL_OK) goto done;
    {
      reel_tensor perm;
      int p[4] = {3, 0, 1, 2};
      if ((st = reel_tensor_permute(&out, p, &perm, err)) || (st = reel_op_copy(v->b, &perm, &vid, err))) goto done;
    }
    if ((st = fn(user, &vid, frame, err)) != REEL_OK) goto done;
    frame += T;
    reel_tensor_arena_release(arena, m);
  }
done:
  reel_tensor_arena_release(arena, mark0);
  return st;
}

typedef struct collect_ctx {
  reel_backend *b;
  reel_tensor *video;
} collect_ctx;

static reel_status collect_frames(void *user, const reel_tensor *frames_t, int64_t first, reel_error *err) {
  collect_ctx *c = user;
  reel_tensor dst;
  reel_status st = reel_tensor_slice(c->video, 1, first, frames_t->shape[1], &dst, err);
  if (st != REEL_OK) return st;
  return reel_op_copy(c->b, frames_t, &dst, err);
}

reel_status reel_wan_vae_decode(reel_wan_vae *v, const reel_tensor *lat, reel_tensor_arena *arena, reel_tensor *video,
                                reel_error *err) {
  if (!lat || lat->ndim != 4) return reel_error_set(err, REEL_EINVAL, "latents", "must be [z, F, h, w]");
  int64_t sf = reel_wan_vae_spatial_factor(v), tf = reel_wan_vae_temporal_factor(v);
  int64_t F = lat->shape[1];
  if (!video || video->ndim != 4 || video->dtype != REEL_F32 || video->shape[0] != v->cfg.out_channels ||
      video->shape[1] != 1 + tf * (F - 1) || video->shape[2] != lat->shape[2] * sf ||
      video->shape[3] != lat->shape[3] * sf)
    return reel_error_set(err, REEL_EINVAL, "video", "must be f32 [%lld, %lld, %lld, %lld]",
                          (long long)v->cfg.out_channels, (long long)(1 + tf * (F - 1)),
                          (long long)(lat->shape[2] * sf), (long long)(lat->shape[3] * sf));
  collect_ctx c = {v->b, video};
  return reel_wan_vae_decode_stream(v, lat, arena, collect_frames, &c, err);
}

reel_status reel_wan_vae_encode(reel_wan_vae *v, const reel_tensor *video, reel_tensor_arena *arena, reel_tensor *mean,
                                reel_tensor *logvar, reel_error *err) {
  const reel_wan_vae_config *c = &v->cfg;
  int64_t sf = reel_wan_vae_spatial_factor(v), tf = reel_wan_vae_temporal_factor(v);
  if (!video || video->ndim != 4 || video->shape[0] != c->in_channels || video->dtype != REEL_F32 ||
      video->shape[1] < 1)
    return reel_error_set(err, REEL_EINVAL, "video", "must be f32 [%lld, T >= 1, H, W]", (long long)c->in_channels);
  int64_t T = video->shape[1], H = video->shape[2], W = video->shape[3];
  if ((T - 1) % tf)
    return reel_error_set(err, REEL_EINVAL, "video", "frame count must be 1 + %lld k, got %lld", (long long)tf,
                          (long long)T);
  int64_t F = 1 + (T - 1) / tf, h = H / sf, w = W / sf;
  const reel_tensor *outs[2] = {mean, logvar};
  for (int k = 0; k < 2; k++) {
    const reel_tensor *o = outs[k];
    if (!o && k == 1) continue;
    if (!o || o->ndim != 4 || o->dtype != REEL_F32 || o->shape[0] != c->z_dim || o->shape[1] != F || o->shape[2] != h ||
        o->shape[3] != w)
      return reel_error_set(err, REEL_EINVAL, k ? "logvar" : "mean", "must be f32 [%lld, %lld, %lld, %lld]",
                            (long long)c->z_dim, (long long)F, (long long)h, (long long)w);
  }
  size_t need = 0;
  reel_status st = reel_wan_vae_encode_arena_bytes(v, H, W, &need, err);
  if (st != REEL_OK) return st;
  if ((st = check_arena(arena, need, err)) != REEL_OK) return st;
  size_t mark0 = reel_tensor_arena_used(arena);
  vae_run run = {v, v->b, arena, 0, 0, 0, err}, *r = &run;
  if ((st = alloc_hists(r, &v->enc)) != REEL_OK) goto done;
  for (int64_t i = 0; i < F; i++) {
    size_t m = reel_tensor_arena_used(arena);
    int64_t t0 = i == 0 ? 0 : 1 + tf * (i - 1), n = i == 0 ? 1 : tf;
    reel_tensor x, out;
    int64_t sx[4] = {n, H, W, c->in_channels};
    if ((st = reel_tensor_arena_alloc(arena, REEL_F32, 4, sx, &x, err)) != REEL_OK) goto done;
    {
      reel_tensor src, perm;
      int p[4] = {1, 2, 3, 0};
      if ((st = reel_tensor_slice(video, 1, t0, n, &src, err)) || (st = reel_tensor_permute(&src, p, &perm, err)) ||
          (st = reel_op_copy(v->b, &perm, &x, err)))
        goto done;
    }
    if ((st = encoder_chunk(r, &x, &out)) != REEL_OK) goto done;
    /* out [1, h, w, 2z]: mean = channels [0, z), logvar = clamp(channels [z, 2z), -30, 20) */
    for (int k = 0; k < 2; k++) {
      if (!outs[k]) continue;
      reel_tensor part, perm, dst, tmp;
      int p[4] = {3, 0, 1, 2};
      if ((st = reel_tensor_slice(&out, 3, k * c->z_dim, c->z_dim, &part, err)) ||
          (st = reel_tensor_permute(&part, p, &perm, err)) || (st = reel_tensor_slice(outs[k], 1, i, 1, &dst, err)))
        goto done;
      if (k == 0) {
        if ((st = reel_op_copy(v->b, &perm, &dst, err))) goto done;
      } else {
        int64_t s[4] = {c->z_dim, 1, h, w};
        if ((st = reel_tensor_arena_alloc(arena, REEL_F32, 4, s, &tmp, err)) ||
            (st = reel_op_copy(v->b, &perm, &tmp, err)) || (st = reel_op_clamp(v->b, &tmp, -30.0f, 20.0f, &tmp, err)) ||
            (st = reel_op_copy(v->b, &tmp, &dst, err)))
          goto done;
      }
    }
    reel_tensor_arena_release(arena, m);
  }
done:
  reel_tensor_arena_release(arena, mark0);
  return st;
}

reel_status reel_wan_vae_denormalize(reel_wan_vae *v, const reel_tensor *lat, reel_tensor *out, reel_error *err) {
  if (!lat || lat->ndim != 4 || lat->shape[0] != v->cfg.z_dim)
    return reel_error_set(err, REEL_EINVAL, "latents", "must be [%lld, F, h, w]", (long long)v->cfg.z_dim);
  reel_status st = reel_op_mul(v->b, lat, &v->lat_std, out, err);
  if (st == REEL_OK) st = reel_op_add(v->b, out, &v->lat_mean, out, err);
  return st;
}
