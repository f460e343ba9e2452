/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The forward pass of the Wan2.1 transformer (diffusers' WanTransformer3DModel,
 * text-to-video), as a sequence of backend ops:
 *
 *   patchify (strided copies) -> patch Linear          tokens [B, T, dim], frame-major
 *   sinusoidal timestep -> Linear, SiLU, Linear = temb; Linear(SiLU(temb)) = 6 modulation vectors
 *   text -> Linear, GELU-tanh, Linear                  context [B, L, dim]
 *   per block: LayerNorm, modulate -> q, k, v; RMS norm on q, k over the width;
 *              3D rotary embedding; attention; gated residual;
 *              (affine) LayerNorm -> cross-attention on the context; residual;
 *              LayerNorm, modulate -> Linear, GELU-tanh, Linear; gated residual
 *   LayerNorm, modulate with (head table + temb) -> Linear -> unpatchify
 *
 * The small host-side pieces (the rotary tables, in float64 as diffusers builds
 * them, and the timestep embedding, in float32 as PyTorch computes it) are
 * uploaded once per call. All activations are f32 tensors from the caller's
 * arena; the buffers are allocated once per call and reused by every block.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "reel/alloc.h"
#include "wan_internal.h"

/* ---- loading ------------------------------------------------------------------------------ */

static reel_status finish_load(reel_backend *b, reel_weights *w, const reel_wan_config *cfg, int original,
                               const char *prefix, const reel_wan_load_opts *opts, reel_wan_transformer **out,
                               reel_error *err) {
  reel_wan_transformer *m = reel_calloc(1, sizeof *m);
  if (!m) {
    reel_weights_close(&w);
    return reel_error_set(err, REEL_ENOMEM, "transformer", "out of memory");
  }
  m->weights_bf16 = opts && opts->weights_bf16;
  m->act = REEL_F32;
  m->cfg = *cfg;
  m->b = b;
  m->w = w;
  m->original = original;
  m->prefix = prefix;
  reel_status st = reel__wan_load_weights(m, err);
  if (st != REEL_OK) {
    reel_wan_transformer_destroy(&m);
    return st;
  }
  *out = m;
  return REEL_OK;
}

reel_status reel_wan_transformer_load_dir(reel_backend *b, const char *dir, reel_wan_transformer **out,
                                          reel_error *err) {
  return reel_wan_transformer_load_dir_opts(b, dir, NULL, out, err);
}

reel_status reel_wan_transformer_load_file(reel_backend *b, const char *weights, const char *config,
                                           reel_wan_transformer **out, reel_error *err) {
  return reel_wan_transformer_load_file_opts(b, weights, config, NULL, out, err);
}

reel_status reel_wan_transformer_load_dir_opts(reel_backend *b, const char *dir, const reel_wan_load_opts *opts,
                                               reel_wan_transformer **out, reel_error *err) {
  if (out) *out = NULL;
  if (!b || !dir || !out) return reel_error_set(err, REEL_EINVAL, "transformer", "NULL argument");
  char path[4096];
  if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
    return reel_error_set(err, REEL_ELIMIT, "transformer", "path too long");
  reel_wan_config cfg;
  reel_status st = reel_wan_config_load(path, &cfg, err);
  if (st != REEL_OK) return st;
  reel_weights *w = NULL;
  if ((st = reel_weights_open_dir(dir, &w, err)) != REEL_OK) return st;
  int original;
  const char *prefix;
  reel__wan_detect_layout(w, &original, &prefix);
  return finish_load(b, w, &cfg, original, prefix, opts, out, err);
}

reel_status reel_wan_transformer_load_file_opts(reel_backend *b, const char *weights, const char *config,
                                                const reel_wan_load_opts *opts, reel_wan_transformer **out,
                                                reel_error *err) {
  if (out) *out = NULL;
  if (!b || !weights || !out) return reel_error_set(err, REEL_EINVAL, "transformer", "NULL argument");
  reel_wan_config cfg;
  reel_weights *w = NULL;
  reel_status st = reel_weights_open(weights, &w, err);
  if (st != REEL_OK) return st;
  st = config ? reel_wan_config_load(config, &cfg, err) : reel_wan_config_infer(w, &cfg, err);
  if (st != REEL_OK) {
    reel_weights_close(&w);
    return st;
  }
  int original;
  const char *prefix;
  reel__wan_detect_layout(w, &original, &prefix);
  return finish_load(b, w, &cfg, original, prefix, opts, out, err);
}

void reel_wan_transformer_destroy(reel_wan_transformer **pm) {
  if (!pm || !*pm) return;
  reel_wan_transformer *m = *pm;
  for (size_t i = 0; i < m->nowned; i++) reel_tensor_free(&m->owned[i]);
  reel_free(m->owned);
  for (size_t i = 0; m->shard_buf && i < m->nshards; i++) reel_buffer_destroy(&m->shard_buf[i]);
  reel_free(m->shard_buf);
  reel_free((void *)m->shard_base);
  reel_free(m->shard_size);
  reel_free(m->blocks);
  reel_free(m->rope_cos);
  reel_free(m->rope_sin);
  reel_weights_close(&m->w);
  reel_free(m);
  *pm = NULL;
}

/* Nonzero when every matrix the forward multiplies by is bf16. */
static int matrices_bf16(const reel_wan_transformer *m) {
  const reel_tensor *top[] = {&m->patch_w, &m->time1.w, &m->time2.w,   &m->tproj.w,
                              &m->text1.w, &m->text2.w, &m->proj_out.w};
  for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
    if (top[i]->dtype != REEL_BF16) return 0;
  for (int64_t l = 0; l < m->cfg.layers; l++) {
    const wan_block *bl = &m->blocks[l];
    const wan_linear *ls[] = {&bl->q, &bl->k, &bl->v, &bl->o, &bl->cq, &bl->ck, &bl->cv, &bl->co, &bl->ff1, &bl->ff2};
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
      if (ls[i]->w.dtype != REEL_BF16) return 0;
  }
  return 1;
}

reel_status reel_wan_transformer_set_activations(reel_wan_transformer *m, reel_dtype dt, reel_error *err) {
  if (!m) return reel_error_set(err, REEL_EINVAL, "activations", "NULL transformer");
  if (dt == REEL_F32) {
    m->act = dt;
    return REEL_OK;
  }
  if (dt != REEL_BF16)
    return reel_error_set(err, REEL_EUNSUPPORTED, "activations", "must be f32 or bf16, got %s", reel_dtype_name(dt));
  if (reel_backend_get_kind(m->b) == REEL_BACKEND_CPU)
    return reel_error_set(err, REEL_EUNSUPPORTED, "activations",
                          "bf16 activations need a backend whose matmul takes bf16 inputs (CUDA), not %s",
                          reel_backend_name(m->b));
  if (!matrices_bf16(m))
    return reel_error_set(err, REEL_EUNSUPPORTED, "activations",
                          "bf16 activations need bf16 matrices (load with weights_bf16 or a bf16 checkpoint)");
  m->act = dt;
  return REEL_OK;
}

reel_dtype reel_wan_transformer_activations(const reel_wan_transformer *m) { return m ? m->act : REEL_F32; }

const reel_wan_config *reel_wan_transformer_config(const reel_wan_transformer *m) { return m ? &m->cfg : NULL; }
reel_backend *reel_wan_transformer_backend(const reel_wan_transformer *m) { return m ? m->b : NULL; }
int reel_wan_transformer_original_keys(const reel_wan_transformer *m) { return m ? m->original : 0; }
int64_t reel_wan_transformer_params(const reel_wan_transformer *m) { return m ? m->params : 0; }

/* ---- sizes -------------------------------------------------------------------------------- */

/* The f32 activation buffers of one forward, allocated in this order. */
enum {
  BUF_COS,    /* [T, hd/2] */
  BUF_SIN,    /* [T, hd/2] */
  BUF_TSIN,   /* [B, freq_dim] */
  BUF_TMID,   /* [B, D] */
  BUF_TEMB,   /* [B, D] */
  BUF_TSILU,  /* [B, D] */
  BUF_TPROJ,  /* [B, 6D] */
  BUF_CTX1,   /* [B, L, D] */
  BUF_CTX,    /* [B, L, D] */
  BUF_MOD,    /* [B, 6, D] */
  BUF_MODO,   /* [B, 2, D] */
  BUF_XP,     /* [B, T, C_in pt ph pw] */
  BUF_HIDDEN, /* [B, T, D] */
  BUF_NORM,   /* [B, T, D] */
  BUF_Q,      /* [B, T, D] */
  BUF_K,      /* [B, T, D] */
  BUF_V,      /* [B, T, D] */
  BUF_ATT,    /* [B, T, D] */
  BUF_KC,     /* [B, L, D] */
  BUF_VC,     /* [B, L, D] */
  BUF_FFN,    /* [B, T, ffn] */
  BUF_PROJ,   /* [B, T, C_out pt ph pw] */
  BUF_COUNT
};

typedef struct fwd_shapes {
  int ndim[BUF_COUNT];
  int64_t shape[BUF_COUNT][3];
  reel_dtype dt[BUF_COUNT];
  reel_dtype act; /* activation dtype */
} fwd_shapes;

static void set_shape(fwd_shapes *s, int i, int nd, int64_t a, int64_t b, int64_t c) {
  /* The token activations take the activation dtype; the residual stream, the
     rotary tables, the timestep/modulation vectors and the output projection stay f32. */
  static const unsigned act_bufs = (1u << BUF_CTX1) | (1u << BUF_CTX) | (1u << BUF_XP) | (1u << BUF_NORM) |
                                   (1u << BUF_Q) | (1u << BUF_K) | (1u << BUF_V) | (1u << BUF_ATT) | (1u << BUF_KC) |
                                   (1u << BUF_VC) | (1u << BUF_FFN);
  s->dt[i] = (act_bufs >> i) & 1u ? s->act : REEL_F32;
  s->ndim[i] = nd;
  s->shape[i][0] = a;
  s->shape[i][1] = b;
  s->shape[i][2] = c;
}

static void forward_shapes(const reel_wan_config *c, reel_dtype act, int64_t B, int64_t T, int64_t L, fwd_shapes *s) {
  const int64_t D = c->dim, pp = c->patch[0] * c->patch[1] * c->patch[2];
  s->act = act;
  set_shape(s, BUF_COS, 2, T, c->head_dim / 2, 0);
  set_shape(s, BUF_SIN, 2, T, c->head_dim / 2, 0);
  set_shape(s, BUF_TSIN, 2, B, c->freq_dim, 0);
  set_shape(s, BUF_TMID, 2, B, D, 0);
  set_shape(s, BUF_TEMB, 2, B, D, 0);
  set_shape(s, BUF_TSILU, 2, B, D, 0);
  set_shape(s, BUF_TPROJ, 2, B, 6 * D, 0);
  set_shape(s, BUF_CTX1, 3, B, L, D);
  set_shape(s, BUF_CTX, 3, B, L, D);
  set_shape(s, BUF_MOD, 3, B, 6, D);
  set_shape(s, BUF_MODO, 3, B, 2, D);
  set_shape(s, BUF_XP, 3, B, T, c->in_channels * pp);
  for (int i = BUF_HIDDEN; i <= BUF_ATT; i++) set_shape(s, i, 3, B, T, D);
  set_shape(s, BUF_KC, 3, B, L, D);
  set_shape(s, BUF_VC, 3, B, L, D);
  set_shape(s, BUF_FFN, 3, B, T, c->ffn_dim);
  set_shape(s, BUF_PROJ, 3, B, T, c->out_channels * pp);
}

/* Validates a latent grid; writes the patched grid. */
#define WAN_MAX_BATCH_TOKENS ((int64_t)1 << 26)

static reel_status check_grid(const reel_wan_config *c, int64_t batch, int64_t F, int64_t H, int64_t W, int64_t L,
                              int64_t grid[3], reel_error *err) {
  const int64_t dims[3] = {F, H, W};
  static const char *const names[3] = {"latents.frames", "latents.height", "latents.width"};
  if (batch < 1 || batch > (1 << 16))
    return reel_error_set(err, REEL_ERANGE, "latents.batch", "must be in 1..65536, got %lld", (long long)batch);
  for (int i = 0; i < 3; i++) {
    if (dims[i] < 1 || dims[i] % c->patch[i] != 0)
      return reel_error_set(err, REEL_EINVAL, names[i], "must be a positive multiple of the patch size %lld, got %lld",
                            (long long)c->patch[i], (long long)dims[i]);
    grid[i] = dims[i] / c->patch[i];
    if (grid[i] > c->rope_max_seq_len)
      return reel_error_set(err, REEL_ERANGE, names[i], "%lld patches exceed rope_max_seq_len %lld", (long long)grid[i],
                            (long long)c->rope_max_seq_len);
  }
  if (L < 1 || L > (1 << 20))
    return reel_error_set(err, REEL_ERANGE, "context.tokens", "must be in 1..1048576, got %lld", (long long)L);
  /* Bounds every buffer size computed from them far inside size_t (480p x 81 frames x CFG is 2^16). */
  if (batch * grid[0] * grid[1] * grid[2] > WAN_MAX_BATCH_TOKENS)
    return reel_error_set(err, REEL_ELIMIT, "latents", "%lld samples x %lld tokens exceed %lld tokens per batch",
                          (long long)batch, (long long)(grid[0] * grid[1] * grid[2]), (long long)WAN_MAX_BATCH_TOKENS);
  if (batch * L > WAN_MAX_BATCH_TOKENS)
    return reel_error_set(err, REEL_ELIMIT, "context", "%lld samples x %lld text tokens exceed %lld per batch",
                          (long long)batch, (long long)L, (long long)WAN_MAX_BATCH_TOKENS);
  return REEL_OK;
}

static size_t shapes_bytes(const fwd_shapes *s) {
  size_t total = 64; /* alignment of the first allocation */
  for (int i = 0; i < BUF_COUNT; i++) {
    size_t n = reel_dtype_size(s->dt[i]);
    for (int d = 0; d < s->ndim[i]; d++) n *= (size_t)s->shape[i][d];
    total += (n + 63) & ~(size_t)63;
  }
  return total;
}

reel_status reel_wan_forward_arena_bytes(const reel_wan_transformer *m, int64_t batch, int64_t frames, int64_t height,
                                         int64_t width, int64_t text_len, size_t *bytes, reel_error *err) {
  if (!m || !bytes) return reel_error_set(err, REEL_EINVAL, "transformer", "NULL argument");
  int64_t grid[3];
  reel_status st = check_grid(&m->cfg, batch, frames, height, width, text_len, grid, err);
  if (st != REEL_OK) return st;
  fwd_shapes s;
  forward_shapes(&m->cfg, m->act, batch, grid[0] * grid[1] * grid[2], text_len, &s);
  *bytes = shapes_bytes(&s);
  return REEL_OK;
}

/* ---- host-side tables --------------------------------------------------------------------- */

/*
 * Rotary cos/sin per token and frequency pair, [T, head_dim/2] each: the first
 * t/2 pairs rotate by the frame index, the next h/2 by the row, the last w/2 by
 * the column, with frequencies 1 / 10000^(2k/n) of each part (float64, then
 * rounded to f32 as diffusers does).
 */
static reel_status rope_tables(reel_wan_transformer *m, const int64_t grid[3], reel_error *err) {
  if (m->rope_cos && memcmp(m->rope_grid, grid, sizeof m->rope_grid) == 0) return REEL_OK;
  const reel_wan_config *c = &m->cfg;
  const int64_t half = c->head_dim / 2, T = grid[0] * grid[1] * grid[2];
  reel_free(m->rope_cos);
  reel_free(m->rope_sin);
  m->rope_sin = NULL;
  m->rope_cos = reel_malloc((size_t)(T * half) * sizeof(float));
  m->rope_sin = reel_malloc((size_t)(T * half) * sizeof(float));
  if (!m->rope_cos || !m->rope_sin) {
    reel_free(m->rope_cos);
    reel_free(m->rope_sin);
    m->rope_cos = m->rope_sin = NULL;
    return reel_error_set(err, REEL_ENOMEM, "rope", "out of memory for %lld x %lld tables", (long long)T,
                          (long long)half);
  }
  /* Angle tables per axis: part p covers pairs [start[p], start[p] + n[p]). */
  int64_t n[3], start[3];
  for (int p = 0; p < 3; p++) n[p] = c->rope_dims[p] / 2;
  start[0] = 0;
  start[1] = n[0];
  start[2] = n[0] + n[1];
  double *freq = reel_malloc((size_t)half * sizeof(double));
  if (!freq) {
    reel_free(m->rope_cos);
    reel_free(m->rope_sin);
    m->rope_cos = m->rope_sin = NULL;
    return reel_error_set(err, REEL_ENOMEM, "rope", "out of memory");
  }
  for (int p = 0; p < 3; p++)
    for (int64_t k = 0; k < n[p]; k++)
      freq[start[p] + k] = 1.0 / pow(10000.0, (double)(2 * k) / (double)c->rope_dims[p]);
  for (int64_t f = 0; f < grid[0]; f++)
    for (int64_t h = 0; h < grid[1]; h++)
      for (int64_t w = 0; w < grid[2]; w++) {
        const int64_t tok = (f * grid[1] + h) * grid[2] + w, pos[3] = {f, h, w};
        float *cr = m->rope_cos + tok * half, *sr = m->rope_sin + tok * half;
        for (int p = 0; p < 3; p++)
          for (int64_t k = start[p]; k < start[p] + n[p]; k++) {
            double a = (double)pos[p] * freq[k];
            cr[k] = (float)cos(a);
            sr[k] = (float)sin(a);
          }
      }
  reel_free(freq);
  memcpy(m->rope_grid, grid, sizeof m->rope_grid);
  return REEL_OK;
}

/*
 * Sinusoidal timestep embedding as diffusers' Timesteps(freq_dim,
 * flip_sin_to_cos=True, downscale_freq_shift=0) computes it in float32:
 * [cos(t f_k), sin(t f_k)] with f_k = exp(-ln(10000) k / half), zero-padded when
 * freq_dim is odd.
 */
static void timestep_embedding(int64_t freq_dim, float t, float *out) {
  const int64_t half = freq_dim / 2;
  const float c = (float)-log(10000.0);
  for (int64_t k = 0; k < half; k++) {
    float e = c * (float)k;
    e = e / (float)half;
    float arg = t * expf(e);
    out[k] = cosf(arg);
    out[half + k] = sinf(arg);
  }
  if (freq_dim % 2) out[freq_dim - 1] = 0.0f;
}

/* ---- forward ------------------------------------------------------------------------------ */

#define CK(expr)                             \
  do {                                       \
    if ((st = (expr)) != REEL_OK) goto done; \
  } while (0)

static reel_status linear(reel_backend *b, const reel_tensor *x, const wan_linear *l, reel_tensor *out,
                          reel_error *err) {
  return reel_op_matmul(b, x, &l->w, &l->b, out, err);
}

/* [B, T, D] -> [B, T, H, hd] */
static reel_status heads_view(const reel_tensor *x, int64_t H, reel_tensor *out, reel_error *err) {
  int64_t s[4] = {x->shape[0], x->shape[1], H, x->shape[2] / H};
  return reel_tensor_reshape(x, 4, s, out, err);
}

/* Chunk i of a [B, n, D] modulation tensor as [B, 1, D]. */
static reel_status chunk(const reel_tensor *mod, int i, reel_tensor *out, reel_error *err) {
  return reel_tensor_slice(mod, 1, i, 1, out, err);
}

/*
 * Attention sub-layer without the output projection: q = RMSNorm(x Wq) over the
 * width, rotated when cos/sin are given, attended over the prepared keys and
 * values into att.
 */
static reel_status attention(reel_backend *b, const reel_wan_config *c, const reel_tensor *x, const wan_linear *wq,
                             const reel_tensor *nq, const reel_tensor *keys, const reel_tensor *vals,
                             const reel_tensor *cs, const reel_tensor *sn, reel_tensor *q, reel_tensor *att,
                             reel_error *err) {
  reel_status st;
  const float eps = (float)c->eps;
  CK(linear(b, x, wq, q, err));
  CK(reel_op_rms_norm(b, q, nq, eps, q, err));
  reel_tensor q4, k4, v4, a4;
  CK(heads_view(q, c->heads, &q4, err));
  CK(heads_view(keys, c->heads, &k4, err));
  CK(heads_view(vals, c->heads, &v4, err));
  CK(heads_view(att, c->heads, &a4, err));
  if (cs) CK(reel_op_rope(b, &q4, cs, sn, &q4, err));
  CK(reel_op_attention(b, &q4, &k4, &v4, (float)(1.0 / sqrt((double)c->head_dim)), &a4, err));
done:
  return st;
}

/* latents [B, C, F, H, W] -> xp [B, T, C pt ph pw] (Conv3d patch order: c, then pt, ph, pw). */
static reel_status patchify(reel_backend *b, const reel_wan_config *c, const reel_tensor *lat, const int64_t grid[3],
                            reel_tensor *xp, reel_error *err) {
  const int64_t B = lat->shape[0], C = lat->shape[1];
  const int64_t pt = c->patch[0], ph = c->patch[1], pw = c->patch[2], K = C * pt * ph * pw;
  const size_t le = reel_dtype_size(lat->dtype), xe = reel_dtype_size(xp->dtype);
  for (int64_t bi = 0; bi < B; bi++)
    for (int64_t ti = 0; ti < pt; ti++) {
      /* Both sides as [F', H', W', C, ph, pw]. */
      reel_tensor src = *lat, dst = *xp;
      src.ndim = dst.ndim = 6;
      const int64_t shape[6] = {grid[0], grid[1], grid[2], C, ph, pw};
      const int64_t ss[6] = {pt * lat->stride[2], ph * lat->stride[3], pw * lat->stride[4],
                             lat->stride[1],      lat->stride[3],      lat->stride[4]};
      const int64_t ds[6] = {grid[1] * grid[2] * K, grid[2] * K, K, pt * ph * pw, pw, 1};
      for (int d = 0; d < 6; d++) {
        src.shape[d] = dst.shape[d] = shape[d];
        src.stride[d] = ss[d];
        dst.stride[d] = ds[d];
      }
      src.offset = lat->offset + (size_t)(bi * lat->stride[0] + ti * lat->stride[2]) * le;
      dst.offset = xp->offset + (size_t)(bi * grid[0] * grid[1] * grid[2] * K + ti * ph * pw) * xe;
      reel_status st = reel_op_copy(b, &src, &dst, err);
      if (st != REEL_OK) return st;
    }
  return REEL_OK;
}

/* proj [B, T, pt ph pw C] -> out [B, C, F, H, W]. */
static reel_status unpatchify(reel_backend *b, const reel_wan_config *c, const reel_tensor *proj, const int64_t grid[3],
                              reel_tensor *out, reel_error *err) {
  const int64_t B = out->shape[0], C = out->shape[1];
  const int64_t pt = c->patch[0], ph = c->patch[1], pw = c->patch[2], P = C * pt * ph * pw;
  const size_t pe = reel_dtype_size(proj->dtype), oe = reel_dtype_size(out->dtype);
  for (int64_t bi = 0; bi < B; bi++)
    for (int64_t ti = 0; ti < pt; ti++) {
      /* Both sides as [F', H', W', ph, pw, C]. */
      reel_tensor src = *proj, dst = *out;
      src.ndim = dst.ndim = 6;
      const int64_t shape[6] = {grid[0], grid[1], grid[2], ph, pw, C};
      const int64_t ss[6] = {grid[1] * grid[2] * P, grid[2] * P, P, pw * C, C, 1};
      const int64_t ds[6] = {pt * out->stride[2], ph * out->stride[3], pw * out->stride[4],
                             out->stride[3],      out->stride[4],      out->stride[1]};
      for (int d = 0; d < 6; d++) {
        src.shape[d] = dst.shape[d] = shape[d];
        src.stride[d] = ss[d];
        dst.stride[d] = ds[d];
      }
      src.offset = proj->offset + (size_t)(bi * grid[0] * grid[1] * grid[2] * P + ti * ph * pw * C) * pe;
      dst.offset = out->offset + (size_t)(bi * out->stride[0] + ti * out->stride[2]) * oe;
      reel_status st = reel_op_copy(b, &src, &dst, err);
      if (st != REEL_OK) return st;
    }
  return REEL_OK;
}

static reel_status check_arg(const reel_tensor *t, const char *name, int ndim, reel_error *err) {
  if (!t || !t->buf) return reel_error_set(err, REEL_EINVAL, name, "missing tensor");
  if (t->ndim != ndim) return reel_error_set(err, REEL_EINVAL, name, "must have %d dims, has %d", ndim, t->ndim);
  if (!reel_dtype_is_float(t->dtype))
    return reel_error_set(err, REEL_EUNSUPPORTED, name, "dtype %s is not a float dtype", reel_dtype_name(t->dtype));
  return REEL_OK;
}

/* ---- the text side, once per job ---------------------------------------------------------- */

/* Checks context [B, L, text_dim]. */
static reel_status check_context(const reel_wan_config *c, const reel_tensor *context, int64_t B, reel_error *err) {
  reel_status st = check_arg(context, "context", 3, err);
  if (st != REEL_OK) return st;
  if ((B >= 0 && context->shape[0] != B) || context->shape[0] < 1 || context->shape[1] < 1 ||
      context->shape[2] != c->text_dim)
    return reel_error_set(err, REEL_EINVAL, "context",
                          "must be [%lld, L, %lld] (batch, text_dim), got [%lld, %lld, %lld]", (long long)B,
                          (long long)c->text_dim, (long long)context->shape[0], (long long)context->shape[1],
                          (long long)context->shape[2]);
  return REEL_OK;
}

/* The cross-attention keys (which = 0) or values (1) of block li as a [B, L, D] view of text. */
static reel_status text_kv(const reel_tensor *text, int64_t li, int which, reel_tensor *out, reel_error *err) {
  reel_tensor s;
  reel_status st = reel_tensor_slice(text, 0, li, 1, &s, err);
  if (st == REEL_OK) st = reel_tensor_slice(&s, 1, which, 1, &s, err);
  if (st == REEL_OK) st = reel_tensor_reshape(&s, 3, text->shape + 2, out, err);
  return st;
}

static size_t act_bytes(reel_dtype dt, int64_t n) { return (reel_dtype_size(dt) * (size_t)n + 63) & ~(size_t)63; }

reel_status reel_wan_text_arena_bytes(const reel_wan_transformer *m, int64_t batch, int64_t text_len, size_t *bytes,
                                      reel_error *err) {
  if (!m || !bytes) return reel_error_set(err, REEL_EINVAL, "transformer", "NULL argument");
  if (batch < 1 || batch > (1 << 16) || text_len < 1 || text_len > (1 << 20) || batch * text_len > WAN_MAX_BATCH_TOKENS)
    return reel_error_set(err, REEL_ERANGE, "context",
                          "batch must be in 1..65536, tokens in 1..1048576 and their product at most %lld",
                          (long long)WAN_MAX_BATCH_TOKENS);
  const int64_t n = batch * text_len * m->cfg.dim;
  *bytes = 64 + act_bytes(m->act, m->cfg.layers * 2 * n) + 2 * act_bytes(m->act, n);
  return REEL_OK;
}

reel_status reel_wan_prepare_text(reel_wan_transformer *m, const reel_tensor *context, reel_tensor_arena *arena,
                                  reel_tensor *text, reel_error *err) {
  if (text) memset(text, 0, sizeof *text);
  if (!m || !arena || !text) return reel_error_set(err, REEL_EINVAL, "transformer", "NULL argument");
  const reel_wan_config *c = &m->cfg;
  reel_backend *b = m->b;
  reel_status st = check_context(c, context, -1, err);
  if (st != REEL_OK) return st;
  const int64_t B = context->shape[0], L = context->shape[1];
  size_t need;
  if ((st = reel_wan_text_arena_bytes(m, B, L, &need, err)) != REEL_OK) return st;
  const size_t start = reel_tensor_arena_used(arena);
  int64_t ts[5] = {c->layers, 2, B, L, c->dim}, cs[3] = {B, L, c->dim};
  reel_tensor ctx1, ctx, kc, vc;
  CK(reel_tensor_arena_alloc(arena, m->act, 5, ts, text, err));
  const size_t mark = reel_tensor_arena_used(arena);
  CK(reel_tensor_arena_alloc(arena, m->act, 3, cs, &ctx1, err));
  CK(reel_tensor_arena_alloc(arena, m->act, 3, cs, &ctx, err));
  CK(linear(b, context, &m->text1, &ctx1, err));
  CK(reel_op_gelu_tanh(b, &ctx1, &ctx1, err));
  CK(linear(b, &ctx1, &m->text2, &ctx, err));
  for (int64_t li = 0; li < c->layers; li++) {
    const wan_block *bl = &m->blocks[li];
    CK(text_kv(text, li, 0, &kc, err));
    CK(text_kv(text, li, 1, &vc, err));
    CK(linear(b, &ctx, &bl->ck, &kc, err));
    CK(reel_op_rms_norm(b, &kc, &bl->cnorm_k, (float)c->eps, &kc, err));
    CK(linear(b, &ctx, &bl->cv, &vc, err));
  }
  reel_tensor_arena_release(arena, mark);
  return REEL_OK;
done:
  reel_tensor_arena_release(arena, start);
  memset(text, 0, sizeof *text);
  return st;
}

/* ---- the forward -------------------------------------------------------------------------- */

/* One forward from the context (text NULL) or from reel_wan_prepare_text()'s tensor (context NULL). */
static reel_status forward(reel_wan_transformer *m, const reel_tensor *latents, const float *timesteps,
                           const reel_tensor *context, const reel_tensor *text, reel_tensor_arena *arena,
                           reel_tensor *out, reel_error *err) {
  if (!m || !timesteps || !arena) return reel_error_set(err, REEL_EINVAL, "transformer", "NULL argument");
  const reel_wan_config *c = &m->cfg;
  reel_backend *b = m->b;
  reel_status st;
  if ((st = check_arg(latents, "latents", 5, err)) != REEL_OK) return st;
  if ((st = check_arg(out, "out", 5, err)) != REEL_OK) return st;
  const int64_t B = latents->shape[0];
  if (latents->shape[1] != c->in_channels)
    return reel_error_set(err, REEL_EINVAL, "latents", "has %lld channels, the model takes in_channels=%lld",
                          (long long)latents->shape[1], (long long)c->in_channels);
  if (text) {
    if (!text->buf || text->ndim != 5 || text->dtype != m->act || text->shape[0] != c->layers || text->shape[1] != 2 ||
        text->shape[2] != B || text->shape[3] < 1 || text->shape[4] != c->dim)
      return reel_error_set(err, REEL_EINVAL, "text", "must be reel_wan_prepare_text()'s [%lld, 2, %lld, L, %lld] %s",
                            (long long)c->layers, (long long)B, (long long)c->dim, reel_dtype_name(m->act));
  } else if ((st = check_context(c, context, B, err)) != REEL_OK) {
    return st;
  }
  const int64_t L = text ? text->shape[3] : context->shape[1];
  int64_t grid[3];
  if ((st = check_grid(c, B, latents->shape[2], latents->shape[3], latents->shape[4], L, grid, err)) != REEL_OK)
    return st;
  if (out->shape[0] != B || out->shape[1] != c->out_channels || out->shape[2] != latents->shape[2] ||
      out->shape[3] != latents->shape[3] || out->shape[4] != latents->shape[4])
    return reel_error_set(err, REEL_EINVAL, "out", "must be [%lld, %lld, %lld, %lld, %lld]", (long long)B,
                          (long long)c->out_channels, (long long)latents->shape[2], (long long)latents->shape[3],
                          (long long)latents->shape[4]);
  for (int64_t i = 0; i < B; i++)
    if (!isfinite(timesteps[i]))
      return reel_error_set(err, REEL_EINVAL, "timesteps", "timestep %lld is not finite", (long long)i);

  const int64_t T = grid[0] * grid[1] * grid[2], D = c->dim, half = c->head_dim / 2;
  const float eps = (float)c->eps;
  fwd_shapes fs;
  forward_shapes(c, m->act, B, T, L, &fs);
  const size_t mark = reel_tensor_arena_used(arena);
  float *tsin = NULL;
  reel_tensor t[BUF_COUNT];
  for (int i = 0; i < BUF_COUNT; i++) {
    st = reel_tensor_arena_alloc(arena, fs.dt[i], fs.ndim[i], fs.shape[i], &t[i], err);
    if (st != REEL_OK) goto done;
  }

  /* Host-side inputs: rotary tables and the timestep embedding. */
  CK(rope_tables(m, grid, err));
  CK(reel_tensor_upload(&t[BUF_COS], m->rope_cos, (size_t)(T * half) * sizeof(float), err));
  CK(reel_tensor_upload(&t[BUF_SIN], m->rope_sin, (size_t)(T * half) * sizeof(float), err));
  tsin = reel_malloc((size_t)(B * c->freq_dim) * sizeof(float));
  if (!tsin) {
    st = reel_error_set(err, REEL_ENOMEM, "timesteps", "out of memory");
    goto done;
  }
  for (int64_t i = 0; i < B; i++) timestep_embedding(c->freq_dim, timesteps[i], tsin + i * c->freq_dim);
  CK(reel_tensor_upload(&t[BUF_TSIN], tsin, (size_t)(B * c->freq_dim) * sizeof(float), err));

  /* Condition embeddings. */
  CK(linear(b, &t[BUF_TSIN], &m->time1, &t[BUF_TMID], err));
  CK(reel_op_silu(b, &t[BUF_TMID], &t[BUF_TMID], err));
  CK(linear(b, &t[BUF_TMID], &m->time2, &t[BUF_TEMB], err));
  CK(reel_op_silu(b, &t[BUF_TEMB], &t[BUF_TSILU], err));
  CK(linear(b, &t[BUF_TSILU], &m->tproj, &t[BUF_TPROJ], err));
  if (!text) {
    CK(linear(b, context, &m->text1, &t[BUF_CTX1], err));
    CK(reel_op_gelu_tanh(b, &t[BUF_CTX1], &t[BUF_CTX1], err));
    CK(linear(b, &t[BUF_CTX1], &m->text2, &t[BUF_CTX], err));
  }
  reel_tensor tproj3;
  {
    int64_t s3[3] = {B, 6, D};
    CK(reel_tensor_reshape(&t[BUF_TPROJ], 3, s3, &tproj3, err));
  }

  /* Patch embedding. */
  CK(patchify(b, c, latents, grid, &t[BUF_XP], err));
  CK(reel_op_matmul(b, &t[BUF_XP], &m->patch_w, &m->patch_b, &t[BUF_HIDDEN], err));

  reel_tensor *x = &t[BUF_HIDDEN], *nrm = &t[BUF_NORM], *mod = &t[BUF_MOD];
  for (int64_t li = 0; li < c->layers; li++) {
    const wan_block *bl = &m->blocks[li];
    reel_tensor shift, scale, gate;
    CK(reel_op_add(b, &bl->sst, &tproj3, mod, err));

    /* Self-attention. */
    CK(chunk(mod, 0, &shift, err));
    CK(chunk(mod, 1, &scale, err));
    CK(chunk(mod, 2, &gate, err));
    CK(reel_op_layer_norm(b, x, NULL, NULL, eps, nrm, err));
    CK(reel_op_modulate(b, nrm, &shift, &scale, nrm, err));
    CK(linear(b, nrm, &bl->k, &t[BUF_K], err));
    CK(reel_op_rms_norm(b, &t[BUF_K], &bl->norm_k, eps, &t[BUF_K], err));
    CK(linear(b, nrm, &bl->v, &t[BUF_V], err));
    {
      reel_tensor k4;
      CK(heads_view(&t[BUF_K], c->heads, &k4, err));
      CK(reel_op_rope(b, &k4, &t[BUF_COS], &t[BUF_SIN], &k4, err));
    }
    CK(attention(b, c, nrm, &bl->q, &bl->norm_q, &t[BUF_K], &t[BUF_V], &t[BUF_COS], &t[BUF_SIN], &t[BUF_Q], &t[BUF_ATT],
                 err));
    CK(linear(b, &t[BUF_ATT], &bl->o, nrm, err));
    CK(reel_op_gated_add(b, x, nrm, &gate, x, err));

    /* Cross-attention on the text. */
    const reel_tensor *cin = x;
    if (c->cross_attn_norm) {
      CK(reel_op_layer_norm(b, x, &bl->norm2_w, &bl->norm2_b, eps, nrm, err));
      cin = nrm;
    }
    reel_tensor kc = t[BUF_KC], vc = t[BUF_VC];
    if (text) {
      CK(text_kv(text, li, 0, &kc, err));
      CK(text_kv(text, li, 1, &vc, err));
    } else {
      CK(linear(b, &t[BUF_CTX], &bl->ck, &kc, err));
      CK(reel_op_rms_norm(b, &kc, &bl->cnorm_k, eps, &kc, err));
      CK(linear(b, &t[BUF_CTX], &bl->cv, &vc, err));
    }
    CK(attention(b, c, cin, &bl->cq, &bl->cnorm_q, &kc, &vc, NULL, NULL, &t[BUF_Q], &t[BUF_ATT], err));
    CK(linear(b, &t[BUF_ATT], &bl->co, nrm, err));
    CK(reel_op_add(b, x, nrm, x, err));

    /* Feed-forward. */
    CK(chunk(mod, 3, &shift, err));
    CK(chunk(mod, 4, &scale, err));
    CK(chunk(mod, 5, &gate, err));
    CK(reel_op_layer_norm(b, x, NULL, NULL, eps, nrm, err));
    CK(reel_op_modulate(b, nrm, &shift, &scale, nrm, err));
    CK(linear(b, nrm, &bl->ff1, &t[BUF_FFN], err));
    CK(reel_op_gelu_tanh(b, &t[BUF_FFN], &t[BUF_FFN], err));
    CK(linear(b, &t[BUF_FFN], &bl->ff2, nrm, err));
    CK(reel_op_gated_add(b, x, nrm, &gate, x, err));
  }

  /* Output head: shift/scale from the head table plus temb (not the projected vectors). */
  {
    reel_tensor temb3, shift, scale;
    int64_t s3[3] = {B, 1, D};
    CK(reel_tensor_reshape(&t[BUF_TEMB], 3, s3, &temb3, err));
    CK(reel_op_add(b, &m->head_sst, &temb3, &t[BUF_MODO], err));
    CK(chunk(&t[BUF_MODO], 0, &shift, err));
    CK(chunk(&t[BUF_MODO], 1, &scale, err));
    CK(reel_op_layer_norm(b, x, NULL, NULL, eps, nrm, err));
    CK(reel_op_modulate(b, nrm, &shift, &scale, nrm, err));
    CK(linear(b, nrm, &m->proj_out, &t[BUF_PROJ], err));
    CK(unpatchify(b, c, &t[BUF_PROJ], grid, out, err));
  }
done:
  reel_free(tsin);
  reel_tensor_arena_release(arena, mark);
  return st;
}

reel_status reel_wan_forward(reel_wan_transformer *m, const reel_tensor *latents, const float *timesteps,
                             const reel_tensor *context, reel_tensor_arena *arena, reel_tensor *out, reel_error *err) {
  if (!context) return reel_error_set(err, REEL_EINVAL, "context", "missing tensor");
  return forward(m, latents, timesteps, context, NULL, arena, out, err);
}

reel_status reel_wan_forward_text(reel_wan_transformer *m, const reel_tensor *latents, const float *timesteps,
                                  const reel_tensor *text, reel_tensor_arena *arena, reel_tensor *out,
                                  reel_error *err) {
  if (!text) return reel_error_set(err, REEL_EINVAL, "text", "missing tensor");
  return forward(m, latents, timesteps, NULL, text, arena, out, err);
}
