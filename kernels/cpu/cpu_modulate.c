/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The two elementwise ops around every adaptive-norm block of a diffusion
 * transformer, fused so each is one pass over the activations:
 *   modulate   out = x * (1 + scale) + shift
 *   gated_add  out = x + y * gate
 * The per-sample vectors (shift, scale, gate) broadcast over tokens. Each result
 * is rounded as the reference rounds it (1 + scale first, then the product, then
 * the sum). Rows of the merged iteration space are split into segments handed to
 * the pool; f32 operands with unit (or zero, for the broadcast vectors) inner
 * stride run straight over memory, everything else through f32 staging arrays.
 */
#include "cpu_impl.h"

#define SEG 4096 /* elements per parallel piece of a row */
#define CH  256  /* elements per staging chunk */

typedef enum { FUSED_MODULATE, FUSED_GATED_ADD } fused_kind;

typedef struct fused_ctx {
  reel__iter it; /* operands: out, x, a, b (modulate: a = shift, b = scale; gated_add: a = y, b = gate) */
  char *base[4];
  reel_dtype dt[4];
  size_t esz[4];
  int64_t inner, segs;
  fused_kind kind;
} fused_ctx;

/* sa / sb: 1 for a vector, 0 for a broadcast scalar. */
static void compute(fused_kind kind, float *o, const float *x, const float *a, int64_t sa, const float *bv, int64_t sb,
                    int64_t n) {
  if (kind == FUSED_MODULATE) {
    if (sa && sb) {
      for (int64_t i = 0; i < n; i++) {
        float s1 = 1.0f + bv[i];
        float p = x[i] * s1;
        o[i] = p + a[i];
      }
    } else {
      for (int64_t i = 0; i < n; i++) {
        float s1 = 1.0f + bv[i * sb];
        float p = x[i] * s1;
        o[i] = p + a[i * sa];
      }
    }
  } else {
    if (sa && sb) {
      for (int64_t i = 0; i < n; i++) {
        float p = a[i] * bv[i];
        o[i] = x[i] + p;
      }
    } else {
      for (int64_t i = 0; i < n; i++) {
        float p = a[i * sa] * bv[i * sb];
        o[i] = x[i] + p;
      }
    }
  }
}

static void fused_piece(void *vctx, int64_t begin, int64_t end, int tid) {
  (void)tid;
  const fused_ctx *c = vctx;
  const int d = c->it.ndim - 1;
  float f[4][CH];
  for (int64_t piece = begin; piece < end; piece++) {
    int64_t row = piece / c->segs;
    int64_t j0 = (piece % c->segs) * SEG;
    int64_t j1 = j0 + SEG < c->inner ? j0 + SEG : c->inner;
    int64_t off[4], st[4];
    char *p[4];
    reel__iter_row_offsets(&c->it, row, off);
    for (int k = 0; k < 4; k++) {
      st[k] = c->it.stride[k][d];
      p[k] = c->base[k] + (size_t)((off[k] + j0 * st[k]) * (int64_t)c->esz[k]);
    }
    int64_t n = j1 - j0;
    int fast = st[0] == 1 && st[1] == 1 && (st[2] == 1 || st[2] == 0) && (st[3] == 1 || st[3] == 0);
    for (int k = 0; fast && k < 4; k++) fast = c->dt[k] == REEL_F32;
    if (fast) {
      compute(c->kind, (float *)p[0], (const float *)p[1], (const float *)p[2], st[2], (const float *)p[3], st[3], n);
      continue;
    }
    for (int64_t j = 0; j < n; j += CH) {
      int64_t m = n - j < CH ? n - j : CH;
      int64_t s[4] = {1, 1, 1, 1};
      for (int k = 1; k < 4; k++) {
        if (st[k] == 0) {
          reel__load_row(c->dt[k], p[k], 0, 1, f[k]);
          s[k] = 0;
        } else {
          reel__load_row(c->dt[k], p[k] + (size_t)(j * st[k] * (int64_t)c->esz[k]), st[k], m, f[k]);
        }
      }
      compute(c->kind, f[0], f[1], f[2], s[2], f[3], s[3], m);
      reel__store_row(c->dt[0], p[0] + (size_t)(j * st[0] * (int64_t)c->esz[0]), st[0], m, f[0]);
    }
  }
}

static reel_status run_fused(reel_backend *b, fused_kind kind, const reel_tensor *out, const reel_tensor *x,
                             const reel_tensor *a, const reel_tensor *bv) {
  fused_ctx c;
  const reel_tensor *opsv[4] = {out, x, a, bv};
  reel__iter_init(&c.it, out->ndim, out->shape, 4, opsv);
  for (int k = 0; k < 4; k++) {
    c.base[k] = reel__tensor_data(opsv[k]);
    c.dt[k] = opsv[k]->dtype;
    c.esz[k] = reel_dtype_size(opsv[k]->dtype);
  }
  c.kind = kind;
  c.inner = c.it.shape[c.it.ndim - 1];
  c.segs = (c.inner + SEG - 1) / SEG;
  int64_t pieces = reel__iter_rows(&c.it) * c.segs;
  int64_t per_piece = c.inner < SEG ? c.inner : SEG;
  int64_t grain = (16384 + per_piece - 1) / per_piece;
  reel__pool_run(reel__cpu_of(b)->pool, pieces, grain, fused_piece, &c);
  return REEL_OK;
}

reel_status reel__cpu_modulate(reel_backend *b, const reel_tensor *x, const reel_tensor *shift,
                               const reel_tensor *scale, reel_tensor *out, reel_error *err) {
  (void)err;
  return run_fused(b, FUSED_MODULATE, out, x, shift, scale);
}

reel_status reel__cpu_gated_add(reel_backend *b, const reel_tensor *x, const reel_tensor *y, const reel_tensor *gate,
                                reel_tensor *out, reel_error *err) {
  (void)err;
  return run_fused(b, FUSED_GATED_ADD, out, x, y, gate);
}
