/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The denoising loop with classifier-free guidance (see reel/denoise.h).
 *
 * Layout in the arena, allocated once before the first step: the latents x
 * [S, ...], the batched model input [2S, ...] (x twice) and context [2S, L, D]
 * (cond then uncond), the prediction [2S, ...], the guided prediction [S, ...],
 * the model's prepared context (when its family can prepare one: for Wan the
 * text embedder and every block's cross-attention keys and values, computed once
 * instead of in every step) and the sampler's history; each step then takes the
 * model's temporaries above them and gives them back. The sampler runs on backend tensors through a
 * reel_sched_ops table whose linear combinations are reel_op_lincomb, so the
 * update arithmetic (double accumulation, one rounding) is the same as the host
 * sampler's on every backend.
 */
#include "reel/denoise.h"

#include <math.h>
#include <string.h>

#include "reel/alloc.h"

/* ---- sampler ops on backend tensors ------------------------------------------------------- */

typedef reel_sched_backend sched_ctx;

static void *bs_alloc(void *vctx, size_t n) {
  sched_ctx *c = vctx;
  reel_tensor *t = reel_malloc(sizeof *t);
  if (!t) return NULL;
  int64_t shape[1] = {(int64_t)n};
  if (reel_tensor_arena_alloc(c->arena, REEL_F32, 1, shape, t, c->err) != REEL_OK) {
    reel_free(t);
    return NULL;
  }
  return t;
}

/* The arena memory goes back with the arena; only the descriptor is freed here. */
static void bs_release(void *vctx, void *buf) {
  (void)vctx;
  reel_free(buf);
}

static reel_status bs_lincomb(void *vctx, void *dst, size_t n, int k, const double *coef, void *const *src) {
  sched_ctx *c = vctx;
  (void)n;
  const reel_tensor *xs[REEL_LINCOMB_MAX];
  if (k < 1 || k > REEL_LINCOMB_MAX) return reel_error_set(c->err, REEL_EINTERNAL, "scheduler", "%d terms", k);
  for (int i = 0; i < k; i++) xs[i] = src[i];
  return reel_op_lincomb(c->b, k, coef, xs, dst, c->err);
}

/* The sampler's buffers are flat [n]; the latents it is handed are [S, C, F, H, W]: copy as flat views. */
static reel_status bs_copy(void *vctx, void *dst, const void *src, size_t n) {
  sched_ctx *c = vctx;
  if (dst == src) return REEL_OK;
  int64_t flat[1] = {(int64_t)n};
  reel_tensor d, s;
  reel_status st = reel_tensor_reshape(dst, 1, flat, &d, c->err);
  if (st == REEL_OK) st = reel_tensor_reshape(src, 1, flat, &s, c->err);
  if (st == REEL_OK) st = reel_op_copy(c->b, &s, &d, c->err);
  return st;
}

reel_sched_ops reel_sched_backend_ops(reel_sched_backend *ctx) {
  reel_sched_ops ops = {ctx, bs_alloc, bs_release, bs_lincomb, bs_copy};
  return ops;
}

/* ---- checks ------------------------------------------------------------------------------- */

static reel_status check_params(reel_model *m, const reel_denoise_params *p, int *cfg, reel_error *err) {
  if (!m || !p) return reel_error_set(err, REEL_EINVAL, "denoise", "NULL argument");
  const reel_model_info *info = reel_model_get_info(m);
  if (p->steps < 1 || p->steps > 1000)
    return reel_error_set(err, REEL_ERANGE, "denoise.steps", "must be in 1..1000, got %d", p->steps);
  if (!isfinite(p->guidance) || fabs(p->guidance) > 1000.0)
    return reel_error_set(err, REEL_ERANGE, "denoise.guidance", "must be finite and within +-1000, got %g",
                          p->guidance);
  if (p->samples < 1 || p->samples > 4096)
    return reel_error_set(err, REEL_ERANGE, "denoise.samples", "must be in 1..4096, got %lld", (long long)p->samples);
  if (p->latent[0] != info->latent_channels)
    return reel_error_set(err, REEL_EINVAL, "denoise.latent", "has %lld channels, the model takes %lld",
                          (long long)p->latent[0], (long long)info->latent_channels);
  if (info->out_channels != info->latent_channels)
    return reel_error_set(err, REEL_EUNSUPPORTED, "denoise",
                          "the model predicts %lld channels for %lld-channel latents", (long long)info->out_channels,
                          (long long)info->latent_channels);
  for (int i = 1; i < 4; i++)
    if (p->latent[i] < 1 || p->latent[i] > (1 << 16))
      return reel_error_set(err, REEL_ERANGE, "denoise.latent", "dimension %d must be in 1..65536, got %lld", i,
                            (long long)p->latent[i]);
  if (!p->init && !p->seeds) return reel_error_set(err, REEL_EINVAL, "denoise.seeds", "need seeds or init latents");
  if (p->init) {
    int ok = p->init->ndim == 5 && p->init->shape[0] == p->samples && reel_dtype_is_float(p->init->dtype);
    for (int i = 0; ok && i < 4; i++) ok = p->init->shape[1 + i] == p->latent[i];
    if (!ok) return reel_error_set(err, REEL_EINVAL, "denoise.init", "must be [samples, C, F, H, W] of a float dtype");
  }
  *cfg = p->guidance != 1.0;
  if (!p->cond || p->cond->ndim != 3 || p->cond->shape[0] != p->samples || p->cond->shape[2] != info->text_dim)
    return reel_error_set(err, REEL_EINVAL, "denoise.cond", "must be [%lld, L, %lld]", (long long)p->samples,
                          (long long)info->text_dim);
  if (*cfg) {
    if (!p->uncond) return reel_error_set(err, REEL_EINVAL, "denoise.uncond", "required when guidance != 1");
    if (!reel_tensor_same_shape(p->uncond, p->cond))
      return reel_error_set(err, REEL_EINVAL, "denoise.uncond", "must have cond's shape");
  }
  return REEL_OK;
}

static size_t aligned(size_t n) { return (n + 63) & ~(size_t)63; }

reel_status reel_denoise_arena_bytes(reel_model *m, const reel_denoise_params *p, size_t *bytes, reel_error *err) {
  int cfg;
  if (!bytes) return reel_error_set(err, REEL_EINVAL, "denoise", "NULL argument");
  reel_status st = check_params(m, p, &cfg, err);
  if (st != REEL_OK) return st;
  const int64_t S = p->samples, B = cfg ? 2 * S : S, L = p->cond->shape[1], D = p->cond->shape[2];
  const size_t n = (size_t)(p->latent[0] * p->latent[1] * p->latent[2] * p->latent[3]) * sizeof(float);
  size_t model = 0;
  if ((st = reel_model_denoise_arena_bytes(m, B, p->latent, L, &model, err)) != REEL_OK) return st;
  size_t total = 64 + aligned(S * n) + aligned((size_t)B * n); /* x, prediction */
  if (cfg) total += aligned((size_t)B * n) + aligned((size_t)(B * L * D) * sizeof(float)) + aligned(S * n);
  total += (size_t)(p->sampler.solver_order + 2) * aligned(S * n); /* sampler history */
  if (reel_model_can_prepare_context(m)) {
    size_t prep = 0;
    if ((st = reel_model_prepare_context_arena_bytes(m, B, L, &prep, err)) != REEL_OK) return st;
    total += prep;
  }
  *bytes = total + model;
  return REEL_OK;
}

/* x[s] = Philox noise of seeds[s], generated by the backend (the same bits as reel_noise_fill on every backend). */
static reel_status fill_noise(reel_backend *b, const reel_tensor *x, const uint64_t *seeds, int64_t S,
                              reel_error *err) {
  for (int64_t s = 0; s < S; s++) {
    reel_tensor xs;
    reel_status st = reel_tensor_slice(x, 0, s, 1, &xs, err);
    if (st == REEL_OK) st = reel_op_noise(b, seeds[s], 0, &xs, err);
    if (st != REEL_OK) return st;
  }
  return REEL_OK;
}

/* Index of the first non-finite value of t (contiguous f32), or -1. host: scratch of numel floats. */
static int64_t first_nonfinite(const reel_tensor *t, float *host, reel_error *err, reel_status *st) {
  size_t n = (size_t)reel_tensor_numel(t);
  *st = reel_tensor_download(t, host, n * sizeof(float), err);
  if (*st != REEL_OK) return -1;
  for (size_t i = 0; i < n; i++)
    if (!isfinite(host[i])) return (int64_t)i;
  return -1;
}

#define CK(expr)                             \
  do {                                       \
    if ((st = (expr)) != REEL_OK) goto done; \
  } while (0)

reel_status reel_denoise(reel_model *m, const reel_denoise_params *p, reel_tensor_arena *arena, reel_tensor *latents,
                         reel_error *err) {
  int cfg = 0;
  if (!arena || !latents) return reel_error_set(err, REEL_EINVAL, "denoise", "NULL argument");
  memset(latents, 0, sizeof *latents);
  reel_status st = check_params(m, p, &cfg, err);
  if (st != REEL_OK) return st;
  reel_backend *b = reel_model_backend(m);
  const int64_t S = p->samples, B = cfg ? 2 * S : S;
  const size_t n = (size_t)(p->latent[0] * p->latent[1] * p->latent[2] * p->latent[3]);
  const size_t mark = reel_tensor_arena_used(arena);
  reel_scheduler *sched = NULL;
  float *host = NULL, *ts = NULL;
  reel_sched_backend sc = {b, arena, err};
  const reel_sched_ops ops = reel_sched_backend_ops(&sc);

  int64_t xs[5] = {S, p->latent[0], p->latent[1], p->latent[2], p->latent[3]};
  int64_t bs[5] = {B, p->latent[0], p->latent[1], p->latent[2], p->latent[3]};
  reel_tensor x, pred, xin, ctx, guided;
  CK(reel_tensor_arena_alloc(arena, REEL_F32, 5, xs, &x, err));
  CK(reel_tensor_arena_alloc(arena, REEL_F32, 5, bs, &pred, err));
  xin = x;
  ctx = *p->cond;
  guided = pred;
  reel_tensor cond_half, uncond_half;
  if (cfg) {
    int64_t cs[3] = {B, p->cond->shape[1], p->cond->shape[2]};
    CK(reel_tensor_arena_alloc(arena, REEL_F32, 5, bs, &xin, err));
    CK(reel_tensor_arena_alloc(arena, REEL_F32, 3, cs, &ctx, err));
    CK(reel_tensor_arena_alloc(arena, REEL_F32, 5, xs, &guided, err));
    reel_tensor half;
    CK(reel_tensor_slice(&ctx, 0, 0, S, &half, err));
    CK(reel_op_copy(b, p->cond, &half, err));
    CK(reel_tensor_slice(&ctx, 0, S, S, &half, err));
    CK(reel_op_copy(b, p->uncond, &half, err));
    CK(reel_tensor_slice(&pred, 0, 0, S, &cond_half, err));
    CK(reel_tensor_slice(&pred, 0, S, S, &uncond_half, err));
  }
  /* The text side of the model once for the whole loop, when the family can. */
  reel_tensor prepared;
  const int use_prepared = reel_model_can_prepare_context(m);
  if (use_prepared) CK(reel_model_prepare_context(m, &ctx, arena, &prepared, err));
  CK(reel_scheduler_new(&p->sampler, p->steps, S * n, &ops, &sched, err));

  host = reel_malloc(S * n * sizeof(float));
  ts = reel_malloc((size_t)B * sizeof(float));
  if (!host || !ts) {
    st = reel_error_set(err, REEL_ENOMEM, "denoise", "out of memory");
    goto done;
  }
  if (p->init) {
    CK(reel_op_copy(b, p->init, &x, err));
    int64_t bad = first_nonfinite(&x, host, err, &st);
    if (st != REEL_OK) goto done;
    if (bad >= 0) {
      st = reel_error_set(err, REEL_ENONFINITE, "denoise.init", "element %lld is not finite", (long long)bad);
      goto done;
    }
  } else {
    CK(fill_noise(b, &x, p->seeds, S, err));
  }

  for (int i = 0; i < p->steps; i++) {
    const double t = reel_scheduler_timestep(sched, i);
    for (int64_t k = 0; k < B; k++) ts[k] = (float)t;
    if (cfg) {
      reel_tensor half;
      CK(reel_tensor_slice(&xin, 0, 0, S, &half, err));
      CK(reel_op_copy(b, &x, &half, err));
      CK(reel_tensor_slice(&xin, 0, S, S, &half, err));
      CK(reel_op_copy(b, &x, &half, err));
    }
    if (use_prepared)
      CK(reel_model_denoise_prepared(m, &xin, ts, &prepared, arena, &pred, err));
    else
      CK(reel_model_denoise(m, &xin, ts, &ctx, arena, &pred, err));
    if (cfg) {
      /* uncond + g (cond - uncond), as one combination. */
      const reel_tensor *terms[2] = {&cond_half, &uncond_half};
      const double coef[2] = {p->guidance, 1.0 - p->guidance};
      CK(reel_op_lincomb(b, 2, coef, terms, &guided, err));
    }
    int64_t bad = first_nonfinite(&guided, host, err, &st);
    if (st != REEL_OK) goto done;
    if (bad >= 0) {
      st = reel_error_set(err, REEL_ENONFINITE, "denoise",
                          "the model's prediction at step %d (timestep %g) has a non-finite value at element %lld", i,
                          t, (long long)bad);
      goto done;
    }
    CK(reel_scheduler_step(sched, &guided, &x, err));
    if (p->callback) {
      reel_denoise_progress pr = {i, p->steps, t, reel_scheduler_sigma(sched, i + 1), &x, &guided};
      st = p->callback(p->callback_ctx, &pr);
      if (st != REEL_OK) {
        if (st == REEL_ECANCELED)
          reel_error_set(err, st, "denoise", "canceled after step %d of %d", i + 1, p->steps);
        else
          reel_error_set(err, st, "denoise", "stopped by the callback after step %d", i + 1);
        goto done;
      }
    }
  }
  *latents = x;
done:
  reel_scheduler_destroy(&sched);
  reel_free(host);
  reel_free(ts);
  if (st != REEL_OK) reel_tensor_arena_release(arena, mark);
  return st;
}
