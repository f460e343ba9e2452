/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPU clamp (reel_op_clamp): out = min(max(x, lo), hi) over any layouts and float dtypes,
 * row by row through the shared strided iterator. NaN passes through unchanged, as
 * torch.clamp leaves it.
 */
#include "cpu_impl.h"

typedef struct clamp_ctx {
  reel__iter it;
  char *out;
  const char *x;
  reel_dtype dto, dtx;
  size_t eo, ex;
  float lo, hi;
} clamp_ctx;

static void clamp_rows(void *vctx, int64_t begin, int64_t end, int tid) {
  (void)tid;
  const clamp_ctx *c = vctx;
  int64_t n = c->it.shape[c->it.ndim - 1];
  float buf[512];
  for (int64_t row = begin; row < end; row++) {
    int64_t off[2];
    reel__iter_row_offsets(&c->it, row, off);
    for (int64_t i0 = 0; i0 < n; i0 += 512) {
      int64_t m = n - i0 < 512 ? n - i0 : 512;
      const char *src = c->x + (size_t)(off[1] + i0 * c->it.stride[1][c->it.ndim - 1]) * c->ex;
      char *dst = c->out + (size_t)(off[0] + i0 * c->it.stride[0][c->it.ndim - 1]) * c->eo;
      reel__load_row(c->dtx, src, c->it.stride[1][c->it.ndim - 1], m, buf);
      for (int64_t i = 0; i < m; i++) {
        float v = buf[i];
        if (v < c->lo) v = c->lo;
        if (v > c->hi) v = c->hi;
        buf[i] = v;
      }
      reel__store_row(c->dto, dst, c->it.stride[0][c->it.ndim - 1], m, buf);
    }
  }
}

reel_status reel__cpu_clamp(reel_backend *b, const reel_tensor *x, float lo, float hi, reel_tensor *out,
                            reel_error *err) {
  (void)err;
  clamp_ctx c;
  const reel_tensor *ops[2] = {out, x};
  reel__iter_init(&c.it, out->ndim, out->shape, 2, ops);
  c.out = reel__tensor_data(out);
  c.x = reel__tensor_data(x);
  c.dto = out->dtype;
  c.dtx = x->dtype;
  c.eo = reel_dtype_size(out->dtype);
  c.ex = reel_dtype_size(x->dtype);
  c.lo = lo;
  c.hi = hi;
  int64_t rows = reel__iter_rows(&c.it), inner = c.it.shape[c.it.ndim - 1];
  int64_t grain = inner >= 16384 ? 1 : 16384 / (inner ? inner : 1);
  reel__pool_run(reel__cpu_of(b)->pool, rows, grain, clamp_rows, &c);
  return REEL_OK;
}
