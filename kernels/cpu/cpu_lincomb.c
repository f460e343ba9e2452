/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Linear combinations of contiguous f32 vectors for the samplers: accumulated
 * in double and rounded once, exactly as the host scheduler ops do, so a
 * sampler gives the same bits whether it runs on host arrays or on backend
 * tensors. Chunks of the flat range go to the pool.
 */
#include "cpu_impl.h"

#define CHUNK 8192

typedef struct lincomb_ctx {
  int n;
  double coef[REEL_LINCOMB_MAX];
  const float *x[REEL_LINCOMB_MAX];
  float *out;
  int64_t numel;
} lincomb_ctx;

static void lincomb_chunks(void *vctx, int64_t begin, int64_t end, int tid) {
  (void)tid;
  const lincomb_ctx *c = vctx;
  double acc[256];
  for (int64_t ch = begin; ch < end; ch++) {
    int64_t i0 = ch * CHUNK, i1 = i0 + CHUNK < c->numel ? i0 + CHUNK : c->numel;
    for (int64_t j = i0; j < i1; j += 256) {
      int64_t m = i1 - j < 256 ? i1 - j : 256;
      for (int64_t i = 0; i < m; i++) acc[i] = 0.0;
      for (int k = 0; k < c->n; k++) {
        const double a = c->coef[k];
        const float *x = c->x[k] + j;
        for (int64_t i = 0; i < m; i++) acc[i] += a * (double)x[i];
      }
      /* Every input of this stretch is read before it is written, so out may alias any x[k]. */
      for (int64_t i = 0; i < m; i++) c->out[j + i] = (float)acc[i];
    }
  }
}

reel_status reel__cpu_lincomb(reel_backend *b, int n, const double *coef, const reel_tensor *const *x, reel_tensor *out,
                              reel_error *err) {
  (void)err;
  lincomb_ctx c;
  c.n = n;
  for (int k = 0; k < n; k++) {
    c.coef[k] = coef[k];
    c.x[k] = reel__tensor_data(x[k]);
  }
  c.out = reel__tensor_data(out);
  c.numel = reel_tensor_numel(out);
  reel__pool_run(reel__cpu_of(b)->pool, (c.numel + CHUNK - 1) / CHUNK, 4, lincomb_chunks, &c);
  return REEL_OK;
}
