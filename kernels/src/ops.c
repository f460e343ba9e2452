/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Public op entry points: validate every operand once, here, so that each
 * backend's op can trust its inputs, then dispatch through the function table.
 * Also the broadcast/stride iteration helper that elementwise kernels share.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "backend_impl.h"

/* Checks that t is a usable operand of `op` on backend b. field is "op.name". */
static reel_status check_operand(reel_backend *b, const reel_tensor *t, const char *op, const char *name, int write,
                                 int float_only, reel_error *err) {
  char field[64];
  snprintf(field, sizeof field, "%s.%s", op, name);
  if (!t) return reel_error_set(err, REEL_EINVAL, field, "NULL tensor");
  if (t->ndim < 0 || t->ndim > REEL_MAX_DIMS)
    return reel_error_set(err, REEL_EINVAL, field, "ndim must be 0..%d, got %d", REEL_MAX_DIMS, t->ndim);
  if (!t->buf) return reel_error_set(err, REEL_EINVAL, field, "tensor has no buffer");
  if (t->buf->backend != b)
    return reel_error_set(err, REEL_EINVAL, field, "buffer belongs to backend %s, op runs on %s",
                          t->buf->backend->name, b->name);
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] < 0 || t->stride[i] < 0)
      return reel_error_set(err, REEL_EINVAL, field, "negative shape or stride in dim %d", i);
  if (float_only && !reel_dtype_is_float(t->dtype))
    return reel_error_set(err, REEL_EUNSUPPORTED, field, "dtype %s not supported (f32, f16, bf16)",
                          reel_dtype_name(t->dtype));
  reel_status st = reel_tensor_check_fits(t, field, err);
  if (st != REEL_OK) return st;
  if (write && (t->buf->flags & REEL__BUF_READ_ONLY))
    return reel_error_set(err, REEL_EINVAL, field, "output buffer is read-only");
  return REEL_OK;
}

static reel_status check_backend(reel_backend *b, const char *op, reel_error *err) {
  if (!b) return reel_error_set(err, REEL_EINVAL, op, "NULL backend");
  return REEL_OK;
}

static reel_status unsupported(reel_backend *b, const char *op, reel_error *err) {
  return reel_error_set(err, REEL_EUNSUPPORTED, op, "backend %s does not implement %s", b->name, op);
}

static reel_status shape_mismatch(const char *op, const char *name, const reel_tensor *t, const char *expect,
                                  reel_error *err) {
  char field[64], sb[96];
  snprintf(field, sizeof field, "%s.%s", op, name);
  return reel_error_set(err, REEL_EINVAL, field, "shape mismatch: %s, expected %s",
                        reel_tensor_shape_str(t, sb, sizeof sb), expect);
}

/*
 * Checks that dims [0, ndim-1) of t flatten into rows with one stride and the
 * last dim has unit stride; on success *ld is the row stride (elements).
 */
static int rows_layout(const reel_tensor *t, int64_t *ld) {
  int n = t->ndim;
  if (n == 0) return 0;
  if (t->shape[n - 1] > 1 && t->stride[n - 1] != 1) return 0;
  int64_t row_stride = -1, expect = -1;
  for (int i = n - 2; i >= 0; i--) {
    if (t->shape[i] == 1) continue;
    if (row_stride < 0) {
      row_stride = t->stride[i];
      expect = t->stride[i] * t->shape[i];
    } else {
      if (t->stride[i] != expect) return 0;
      expect = t->stride[i] * t->shape[i];
    }
  }
  *ld = row_stride < 0 ? t->shape[n - 1] : row_stride;
  return 1;
}

reel_status reel_op_matmul(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                           reel_tensor *out, reel_error *err) {
  const char *op = "matmul";
  reel_status st = check_backend(b, op, err);
  if (st == REEL_OK) st = check_operand(b, x, op, "x", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, w, op, "weight", 0, 1, err);
  if (st == REEL_OK && bias) st = check_operand(b, bias, op, "bias", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, out, op, "out", 1, 1, err);
  if (st != REEL_OK) return st;
  char exp[96];
  if (x->ndim < 1) return shape_mismatch(op, "x", x, "at least 1 dim [..., K]", err);
  int64_t K = x->shape[x->ndim - 1];
  if (K < 1) return shape_mismatch(op, "x", x, "K >= 1", err);
  snprintf(exp, sizeof exp, "[N, %lld] (K of x)", (long long)K);
  if (w->ndim != 2 || w->shape[1] != K) return shape_mismatch(op, "weight", w, exp, err);
  int64_t N = w->shape[0];
  snprintf(exp, sizeof exp, "[%lld] (N of weight)", (long long)N);
  if (bias && (bias->ndim != 1 || bias->shape[0] != N)) return shape_mismatch(op, "bias", bias, exp, err);
  int ok = out->ndim == x->ndim && out->shape[out->ndim - 1] == N;
  for (int i = 0; ok && i < x->ndim - 1; i++) ok = out->shape[i] == x->shape[i];
  if (!ok) return shape_mismatch(op, "out", out, "x's shape with the last dim = N of weight", err);
  int64_t ld;
  if (!rows_layout(x, &ld))
    return reel_error_set(err, REEL_EINVAL, "matmul.x", "rows must have unit stride and one row stride (copy first)");
  if (!rows_layout(out, &ld))
    return reel_error_set(err, REEL_EINVAL, "matmul.out", "rows must have unit stride and one row stride");
  if (K > 1 && w->stride[1] != 1)
    return reel_error_set(err, REEL_EINVAL, "matmul.weight", "needs unit stride along K (copy first)");
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->matmul) return unsupported(b, op, err);
  return b->ops->matmul(b, x, w, bias, out, err);
}

reel_status reel_op_matmul_batched(reel_backend *b, const reel_tensor *a, const reel_tensor *bm, int trans_b,
                                   float alpha, reel_tensor *out, reel_error *err) {
  const char *op = "matmul_batched";
  reel_status st = check_backend(b, op, err);
  if (st == REEL_OK) st = check_operand(b, a, op, "a", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, bm, op, "b", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, out, op, "out", 1, 1, err);
  if (st != REEL_OK) return st;
  if (!isfinite(alpha)) return reel_error_set(err, REEL_EINVAL, "matmul_batched.alpha", "must be finite");
  int n = a->ndim;
  if (n < 2) return shape_mismatch(op, "a", a, "[..., M, K] with at least 2 dims", err);
  int64_t M = a->shape[n - 2], K = a->shape[n - 1];
  if (K < 1) return shape_mismatch(op, "a", a, "K >= 1", err);
  char exp[96];
  if (bm->ndim != n) {
    snprintf(exp, sizeof exp, "%d dims like a", n);
    return shape_mismatch(op, "b", bm, exp, err);
  }
  int64_t N = trans_b ? bm->shape[n - 2] : bm->shape[n - 1];
  int64_t bK = trans_b ? bm->shape[n - 1] : bm->shape[n - 2];
  if (bK != K) {
    snprintf(exp, sizeof exp, trans_b ? "[..., N, %lld] (K of a)" : "[..., %lld, N] (K of a)", (long long)K);
    return shape_mismatch(op, "b", bm, exp, err);
  }
  snprintf(exp, sizeof exp, "[..., %lld, %lld] (M of a, N of b)", (long long)M, (long long)N);
  if (out->ndim != n || out->shape[n - 2] != M || out->shape[n - 1] != N) return shape_mismatch(op, "out", out, exp, err);
  for (int i = 0; i < n - 2; i++) {
    if (a->shape[i] != out->shape[i] && a->shape[i] != 1) return shape_mismatch(op, "a", a, "batch dims of out or 1", err);
    if (bm->shape[i] != out->shape[i] && bm->shape[i] != 1)
      return shape_mismatch(op, "b", bm, "batch dims of out or 1", err);
  }
  if ((K > 1 && a->stride[n - 1] != 1) || (bm->shape[n - 1] > 1 && bm->stride[n - 1] != 1) ||
      (N > 1 && out->stride[n - 1] != 1))
    return reel_error_set(err, REEL_EINVAL, op, "each matrix needs unit stride along its last dim (copy first)");
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->matmul_batched) return unsupported(b, op, err);
  return b->ops->matmul_batched(b, a, bm, trans_b ? 1 : 0, alpha, out, err);
}

static reel_status binary(reel_backend *b, reel__binary_op kind, const char *op, const reel_tensor *x,
                          const reel_tensor *y, reel_tensor *out, reel_error *err) {
  reel_status st = check_backend(b, op, err);
  if (st == REEL_OK) st = check_operand(b, x, op, "x", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, y, op, "y", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, out, op, "out", 1, 1, err);
  if (st != REEL_OK) return st;
  int n = x->ndim > y->ndim ? x->ndim : y->ndim;
  int64_t shape[REEL_MAX_DIMS];
  for (int d = 0; d < n; d++) {
    int dx = d - (n - x->ndim), dy = d - (n - y->ndim);
    int64_t sx = dx >= 0 ? x->shape[dx] : 1, sy = dy >= 0 ? y->shape[dy] : 1;
    if (sx != sy && sx != 1 && sy != 1) {
      char sb[96], exp[160];
      snprintf(exp, sizeof exp, "a shape that broadcasts with x %s (dim %d: %lld vs %lld)",
               reel_tensor_shape_str(x, sb, sizeof sb), dy, (long long)sy, (long long)sx);
      return shape_mismatch(op, "y", y, exp, err);
    }
    shape[d] = sx == 1 ? sy : sx;
  }
  int ok = out->ndim == n;
  for (int d = 0; ok && d < n; d++) ok = out->shape[d] == shape[d];
  if (!ok) {
    reel_tensor tmp;
    char sb[96];
    reel_tensor_init(&tmp, REEL_F32, n, shape, NULL, 0, NULL);
    return shape_mismatch(op, "out", out, reel_tensor_shape_str(&tmp, sb, sizeof sb), err);
  }
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->binary) return unsupported(b, op, err);
  return b->ops->binary(b, kind, x, y, out, err);
}

reel_status reel_op_add(reel_backend *b, const reel_tensor *x, const reel_tensor *y, reel_tensor *out,
                        reel_error *err) {
  return binary(b, REEL__BINARY_ADD, "add", x, y, out, err);
}

reel_status reel_op_mul(reel_backend *b, const reel_tensor *x, const reel_tensor *y, reel_tensor *out,
                        reel_error *err) {
  return binary(b, REEL__BINARY_MUL, "mul", x, y, out, err);
}

/* x and out: same shape. */
static reel_status check_same(reel_backend *b, const char *op, const reel_tensor *x, reel_tensor *out,
                              reel_error *err) {
  reel_status st = check_backend(b, op, err);
  if (st == REEL_OK) st = check_operand(b, x, op, "x", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, out, op, "out", 1, 1, err);
  if (st != REEL_OK) return st;
  if (!reel_tensor_same_shape(x, out)) {
    char sb[96];
    return shape_mismatch(op, "out", out, reel_tensor_shape_str(x, sb, sizeof sb), err);
  }
  return REEL_OK;
}

static reel_status unary(reel_backend *b, reel__unary_op kind, const char *op, const reel_tensor *x, reel_tensor *out,
                         reel_error *err) {
  reel_status st = check_same(b, op, x, out, err);
  if (st != REEL_OK) return st;
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->unary) return unsupported(b, op, err);
  return b->ops->unary(b, kind, x, out, err);
}

reel_status reel_op_silu(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err) {
  return unary(b, REEL__UNARY_SILU, "silu", x, out, err);
}

reel_status reel_op_gelu_tanh(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err) {
  return unary(b, REEL__UNARY_GELU_TANH, "gelu_tanh", x, out, err);
}

reel_status reel_op_softmax(reel_backend *b, const reel_tensor *x, reel_tensor *out, reel_error *err) {
  reel_status st = check_same(b, "softmax", x, out, err);
  if (st != REEL_OK) return st;
  if (x->ndim < 1) return shape_mismatch("softmax", "x", x, "at least 1 dim", err);
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->softmax) return unsupported(b, "softmax", err);
  return b->ops->softmax(b, x, out, err);
}

static reel_status check_norm_param(reel_backend *b, const char *op, const char *name, const reel_tensor *p, int64_t D,
                                    reel_error *err) {
  if (!p) return REEL_OK;
  reel_status st = check_operand(b, p, op, name, 0, 1, err);
  if (st != REEL_OK) return st;
  if (p->ndim != 1 || p->shape[0] != D) {
    char exp[48];
    snprintf(exp, sizeof exp, "[%lld] (last dim of x)", (long long)D);
    return shape_mismatch(op, name, p, exp, err);
  }
  return REEL_OK;
}

reel_status reel_op_layer_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                               float eps, reel_tensor *out, reel_error *err) {
  const char *op = "layer_norm";
  reel_status st = check_same(b, op, x, out, err);
  if (st != REEL_OK) return st;
  if (x->ndim < 1) return shape_mismatch(op, "x", x, "at least 1 dim", err);
  int64_t D = x->shape[x->ndim - 1];
  st = check_norm_param(b, op, "weight", w, D, err);
  if (st == REEL_OK) st = check_norm_param(b, op, "bias", bias, D, err);
  if (st != REEL_OK) return st;
  if (!isfinite(eps) || eps < 0) return reel_error_set(err, REEL_ERANGE, "layer_norm.eps", "must be finite and >= 0");
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->layer_norm) return unsupported(b, op, err);
  return b->ops->layer_norm(b, x, w, bias, eps, out, err);
}

reel_status reel_op_rms_norm(reel_backend *b, const reel_tensor *x, const reel_tensor *w, float eps, reel_tensor *out,
                             reel_error *err) {
  const char *op = "rms_norm";
  reel_status st = check_same(b, op, x, out, err);
  if (st != REEL_OK) return st;
  if (x->ndim < 1) return shape_mismatch(op, "x", x, "at least 1 dim", err);
  st = check_norm_param(b, op, "weight", w, x->shape[x->ndim - 1], err);
  if (st != REEL_OK) return st;
  if (!isfinite(eps) || eps < 0) return reel_error_set(err, REEL_ERANGE, "rms_norm.eps", "must be finite and >= 0");
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->rms_norm) return unsupported(b, op, err);
  return b->ops->rms_norm(b, x, w, eps, out, err);
}

reel_status reel_op_copy(reel_backend *b, const reel_tensor *src, reel_tensor *dst, reel_error *err) {
  reel_status st = check_same(b, "copy", src, dst, err);
  if (st != REEL_OK) return st;
  if (reel_tensor_numel(dst) == 0) return REEL_OK;
  if (!b->ops->copy_tensor) return unsupported(b, "copy", err);
  return b->ops->copy_tensor(b, src, dst, err);
}

/* ---- Iteration helper ---- */

void reel__iter_init(reel__iter *it, int out_ndim, const int64_t *out_shape, int nops,
                     const reel_tensor *const *opsv) {
  int64_t shape[REEL_MAX_DIMS];
  int64_t stride[4][REEL_MAX_DIMS];
  int n = 0;
  for (int d = 0; d < out_ndim; d++) {
    if (out_shape[d] == 1) continue; /* size-1 dims never move the position */
    shape[n] = out_shape[d];
    for (int k = 0; k < nops; k++) {
      const reel_tensor *t = opsv[k];
      int td = d - (out_ndim - t->ndim);
      stride[k][n] = (td < 0 || t->shape[td] == 1) ? 0 : t->stride[td];
    }
    n++;
  }
  it->nops = nops;
  if (n == 0) {
    it->ndim = 1;
    it->shape[0] = 1;
    for (int k = 0; k < nops; k++) it->stride[k][0] = 0;
    return;
  }
  /* Merge dim d into d+1 when every operand steps through them as one. */
  int m = 0;
  it->shape[0] = shape[0];
  for (int k = 0; k < nops; k++) it->stride[k][0] = stride[k][0];
  for (int d = 1; d < n; d++) {
    int mergeable = 1;
    for (int k = 0; k < nops && mergeable; k++) mergeable = it->stride[k][m] == shape[d] * stride[k][d];
    if (mergeable) {
      it->shape[m] *= shape[d];
      for (int k = 0; k < nops; k++) it->stride[k][m] = stride[k][d];
    } else {
      m++;
      it->shape[m] = shape[d];
      for (int k = 0; k < nops; k++) it->stride[k][m] = stride[k][d];
    }
  }
  it->ndim = m + 1;
}

int64_t reel__iter_rows(const reel__iter *it) {
  int64_t r = 1;
  for (int d = 0; d < it->ndim - 1; d++) r *= it->shape[d];
  return r;
}

void reel__iter_row_offsets(const reel__iter *it, int64_t row, int64_t *offsets) {
  for (int k = 0; k < it->nops; k++) offsets[k] = 0;
  for (int d = it->ndim - 2; d >= 0; d--) {
    int64_t i = row % it->shape[d];
    row /= it->shape[d];
    for (int k = 0; k < it->nops; k++) offsets[k] += i * it->stride[k][d];
  }
}

/* ---- Diffusion transformer ops (issue 4) -------------------------------------------------- */

/* Checks that `t` broadcasts against `shape` (right-aligned, each dim 1 or equal). */
static reel_status check_broadcast(const char *op, const char *name, const reel_tensor *t, const reel_tensor *to,
                                   reel_error *err) {
  int ok = t->ndim <= to->ndim;
  for (int d = 0; ok && d < t->ndim; d++) {
    int64_t s = t->shape[t->ndim - 1 - d], o = to->shape[to->ndim - 1 - d];
    ok = s == 1 || s == o;
  }
  if (ok) return REEL_OK;
  char sb[96], exp[160];
  snprintf(exp, sizeof exp, "a shape that broadcasts to %s", reel_tensor_shape_str(to, sb, sizeof sb));
  return shape_mismatch(op, name, t, exp, err);
}

reel_status reel_op_rope(reel_backend *b, const reel_tensor *x, const reel_tensor *cos_t, const reel_tensor *sin_t,
                         reel_tensor *out, reel_error *err) {
  const char *op = "rope";
  reel_status st = check_same(b, op, x, out, err);
  if (st == REEL_OK) st = check_operand(b, cos_t, op, "cos", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, sin_t, op, "sin", 0, 1, err);
  if (st != REEL_OK) return st;
  if (x->ndim != 4 || x->shape[3] % 2 != 0) return shape_mismatch(op, "x", x, "[B, T, H, D] with D even", err);
  char exp[96];
  snprintf(exp, sizeof exp, "[%lld, %lld] (T, D/2 of x)", (long long)x->shape[1], (long long)(x->shape[3] / 2));
  const reel_tensor *tabs[2] = {cos_t, sin_t};
  for (int i = 0; i < 2; i++) {
    const char *name = i ? "sin" : "cos";
    if (tabs[i]->ndim != 2 || tabs[i]->shape[0] != x->shape[1] || tabs[i]->shape[1] != x->shape[3] / 2)
      return shape_mismatch(op, name, tabs[i], exp, err);
    if (tabs[i]->dtype != REEL_F32 || !reel_tensor_is_contiguous(tabs[i]))
      return reel_error_set(err, REEL_EUNSUPPORTED, i ? "rope.sin" : "rope.cos", "must be contiguous f32");
  }
  if ((x->shape[3] > 1 && x->stride[3] != 1) || (out->shape[3] > 1 && out->stride[3] != 1))
    return reel_error_set(err, REEL_EINVAL, op, "x and out need unit stride along D");
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->rope) return unsupported(b, op, err);
  return b->ops->rope(b, x, cos_t, sin_t, out, err);
}

reel_status reel_op_attention(reel_backend *b, const reel_tensor *q, const reel_tensor *k, const reel_tensor *v,
                              float scale, reel_tensor *out, reel_error *err) {
  const char *op = "attention";
  reel_status st = check_backend(b, op, err);
  if (st == REEL_OK) st = check_operand(b, q, op, "q", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, k, op, "k", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, v, op, "v", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, out, op, "out", 1, 1, err);
  if (st != REEL_OK) return st;
  if (!isfinite(scale)) return reel_error_set(err, REEL_EINVAL, "attention.scale", "must be finite");
  if (q->ndim != 4 || q->shape[3] < 1) return shape_mismatch(op, "q", q, "[B, Tq, H, D] with D >= 1", err);
  int64_t B = q->shape[0], Tq = q->shape[1], H = q->shape[2], D = q->shape[3];
  char exp[128];
  snprintf(exp, sizeof exp, "[%lld, Tk, %lld, %lld] (B, H, D of q)", (long long)B, (long long)H, (long long)D);
  if (k->ndim != 4 || k->shape[0] != B || k->shape[2] != H || k->shape[3] != D)
    return shape_mismatch(op, "k", k, exp, err);
  int64_t Tk = k->shape[1];
  snprintf(exp, sizeof exp, "[%lld, %lld, %lld, Dv] (B, Tk, H of k), Dv >= 1", (long long)B, (long long)Tk,
           (long long)H);
  if (v->ndim != 4 || v->shape[0] != B || v->shape[1] != Tk || v->shape[2] != H || v->shape[3] < 1)
    return shape_mismatch(op, "v", v, exp, err);
  snprintf(exp, sizeof exp, "[%lld, %lld, %lld, %lld] (B, Tq, H of q, Dv of v)", (long long)B, (long long)Tq,
           (long long)H, (long long)v->shape[3]);
  if (out->ndim != 4 || out->shape[0] != B || out->shape[1] != Tq || out->shape[2] != H ||
      out->shape[3] != v->shape[3])
    return shape_mismatch(op, "out", out, exp, err);
  if (Tk < 1 && Tq > 0) return shape_mismatch(op, "k", k, "at least one key (Tk >= 1)", err);
  const reel_tensor *all[4] = {q, k, v, out};
  static const char *const names[4] = {"attention.q", "attention.k", "attention.v", "attention.out"};
  for (int i = 0; i < 4; i++)
    if (all[i]->shape[3] > 1 && all[i]->stride[3] != 1)
      return reel_error_set(err, REEL_EINVAL, names[i], "needs unit stride along its last dim (copy first)");
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->attention) return unsupported(b, op, err);
  return b->ops->attention(b, q, k, v, scale, out, err);
}

reel_status reel_op_modulate(reel_backend *b, const reel_tensor *x, const reel_tensor *shift,
                             const reel_tensor *scale, reel_tensor *out, reel_error *err) {
  const char *op = "modulate";
  reel_status st = check_same(b, op, x, out, err);
  if (st == REEL_OK) st = check_operand(b, shift, op, "shift", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, scale, op, "scale", 0, 1, err);
  if (st == REEL_OK) st = check_broadcast(op, "shift", shift, x, err);
  if (st == REEL_OK) st = check_broadcast(op, "scale", scale, x, err);
  if (st != REEL_OK) return st;
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->modulate) return unsupported(b, op, err);
  return b->ops->modulate(b, x, shift, scale, out, err);
}

reel_status reel_op_gated_add(reel_backend *b, const reel_tensor *x, const reel_tensor *y, const reel_tensor *gate,
                              reel_tensor *out, reel_error *err) {
  const char *op = "gated_add";
  reel_status st = check_same(b, op, x, out, err);
  if (st == REEL_OK) st = check_operand(b, y, op, "y", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, gate, op, "gate", 0, 1, err);
  if (st != REEL_OK) return st;
  if (!reel_tensor_same_shape(x, y)) {
    char sb[96];
    return shape_mismatch(op, "y", y, reel_tensor_shape_str(x, sb, sizeof sb), err);
  }
  st = check_broadcast(op, "gate", gate, x, err);
  if (st != REEL_OK) return st;
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->gated_add) return unsupported(b, op, err);
  return b->ops->gated_add(b, x, y, gate, out, err);
}

reel_status reel_op_lincomb(reel_backend *b, int n, const double *coef, const reel_tensor *const *x,
                            reel_tensor *out, reel_error *err) {
  const char *op = "lincomb";
  reel_status st = check_backend(b, op, err);
  if (st != REEL_OK) return st;
  if (n < 1 || n > REEL_LINCOMB_MAX)
    return reel_error_set(err, REEL_ERANGE, "lincomb.n", "must be 1..%d, got %d", REEL_LINCOMB_MAX, n);
  if (!coef || !x) return reel_error_set(err, REEL_EINVAL, op, "NULL coefficients or inputs");
  st = check_operand(b, out, op, "out", 1, 1, err);
  if (st != REEL_OK) return st;
  int64_t numel = reel_tensor_numel(out);
  for (int i = 0; i < n; i++) {
    char name[16];
    snprintf(name, sizeof name, "x[%d]", i);
    st = check_operand(b, x[i], op, name, 0, 1, err);
    if (st != REEL_OK) return st;
    if (!isfinite(coef[i])) return reel_error_set(err, REEL_EINVAL, "lincomb.coef", "coef[%d] is not finite", i);
    if (x[i]->dtype != REEL_F32 || !reel_tensor_is_contiguous(x[i]))
      return reel_error_set(err, REEL_EUNSUPPORTED, "lincomb.x", "x[%d] must be contiguous f32", i);
    if (reel_tensor_numel(x[i]) != numel)
      return reel_error_set(err, REEL_EINVAL, "lincomb.x", "x[%d] has %lld elements, out has %lld", i,
                            (long long)reel_tensor_numel(x[i]), (long long)numel);
  }
  if (out->dtype != REEL_F32 || !reel_tensor_is_contiguous(out))
    return reel_error_set(err, REEL_EUNSUPPORTED, "lincomb.out", "must be contiguous f32");
  if (numel == 0) return REEL_OK;
  if (!b->ops->lincomb) return unsupported(b, op, err);
  return b->ops->lincomb(b, n, coef, x, out, err);
}

/* ---- Video VAE ops (issue 5) ---- */

/* [T, H, W, C] with the inner three dims contiguous (any stride along T). */
static int frames_layout(const reel_tensor *t) {
  if (t->ndim != 4) return 0;
  int64_t C = t->shape[3], W = t->shape[2], H = t->shape[1];
  return (C <= 1 || t->stride[3] == 1) && (W <= 1 || t->stride[2] == C) && (H <= 1 || t->stride[1] == W * C);
}

reel_status reel_op_conv3d(reel_backend *b, const reel_tensor *x, const reel_tensor *w, const reel_tensor *bias,
                           const reel_conv3d_params *p, reel_tensor *out, reel_error *err) {
  const char *op = "conv3d";
  reel_status st = check_backend(b, op, err);
  if (st == REEL_OK) st = check_operand(b, x, op, "x", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, w, op, "weight", 0, 1, err);
  if (st == REEL_OK && bias) st = check_operand(b, bias, op, "bias", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, out, op, "out", 1, 1, err);
  if (st != REEL_OK) return st;
  if (!p) return reel_error_set(err, REEL_EINVAL, "conv3d.params", "NULL");
  for (int i = 0; i < 3; i++)
    if (p->stride[i] < 1 || p->stride[i] > 64)
      return reel_error_set(err, REEL_EINVAL, "conv3d.stride", "must be 1..64, got %d", p->stride[i]);
  for (int i = 0; i < 2; i++)
    if (p->pad_h[i] < 0 || p->pad_w[i] < 0 || p->pad_h[i] > 64 || p->pad_w[i] > 64)
      return reel_error_set(err, REEL_EINVAL, "conv3d.padding", "must be 0..64");
  if (p->upsample != 1 && p->upsample != 2)
    return reel_error_set(err, REEL_EINVAL, "conv3d.upsample", "must be 1 or 2, got %d", p->upsample);
  if (!frames_layout(x)) return shape_mismatch(op, "x", x, "[T, H, W, Cin], contiguous within a frame", err);
  if (w->ndim != 5 || !reel_tensor_is_contiguous(w) || w->shape[4] != x->shape[3])
    return shape_mismatch(op, "weight", w, "contiguous [Cout, kt, kh, kw, Cin] with Cin of x", err);
  int64_t Co = w->shape[0], kt = w->shape[1], kh = w->shape[2], kw = w->shape[3];
  if (bias && (bias->ndim != 1 || bias->shape[0] != Co)) return shape_mismatch(op, "bias", bias, "[Cout]", err);
  int64_t Hu = x->shape[1] * p->upsample, Wu = x->shape[2] * p->upsample;
  int64_t hp = Hu + p->pad_h[0] + p->pad_h[1], wp = Wu + p->pad_w[0] + p->pad_w[1];
  if (x->shape[0] < kt || hp < kh || wp < kw || kt < 1 || kh < 1 || kw < 1)
    return shape_mismatch(op, "x", x, "at least kt frames and a padded frame no smaller than the kernel", err);
  int64_t To = (x->shape[0] - kt) / p->stride[0] + 1, Ho = (hp - kh) / p->stride[1] + 1,
          Wo = (wp - kw) / p->stride[2] + 1;
  char exp[128];
  snprintf(exp, sizeof exp, "[%lld, %lld, %lld, %lld], contiguous within a frame", (long long)To, (long long)Ho,
           (long long)Wo, (long long)Co);
  if (!frames_layout(out) || out->shape[0] != To || out->shape[1] != Ho || out->shape[2] != Wo || out->shape[3] != Co)
    return shape_mismatch(op, "out", out, exp, err);
  if (x->dtype != REEL_F32 || out->dtype != REEL_F32)
    return reel_error_set(err, REEL_EUNSUPPORTED, "conv3d.x", "x and out must be f32");
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->conv3d) return unsupported(b, op, err);
  return b->ops->conv3d(b, x, w, bias, p, out, err);
}

reel_status reel_op_clamp(reel_backend *b, const reel_tensor *x, float lo, float hi, reel_tensor *out,
                          reel_error *err) {
  const char *op = "clamp";
  reel_status st = check_same(b, op, x, out, err);
  if (st != REEL_OK) return st;
  if (!(lo <= hi)) return reel_error_set(err, REEL_EINVAL, "clamp.lo", "must be <= hi (got %g, %g)", lo, hi);
  if (reel_tensor_numel(out) == 0) return REEL_OK;
  if (!b->ops->clamp) return unsupported(b, op, err);
  return b->ops->clamp(b, x, lo, hi, out, err);
}

/* ---- Noise and colour conversion (issue 9) ---- */

reel_status reel_op_noise(reel_backend *b, uint64_t seed, uint64_t offset, reel_tensor *out, reel_error *err) {
  const char *op = "noise";
  reel_status st = check_backend(b, op, err);
  if (st == REEL_OK) st = check_operand(b, out, op, "out", 1, 1, err);
  if (st != REEL_OK) return st;
  if (out->dtype != REEL_F32 || !reel_tensor_is_contiguous(out))
    return reel_error_set(err, REEL_EUNSUPPORTED, "noise.out", "must be contiguous f32");
  const uint64_t limit = (uint64_t)1 << 62, n = (uint64_t)reel_tensor_numel(out);
  if (offset > limit || n > limit - offset)
    return reel_error_set(err, REEL_ERANGE, "noise.offset", "offset + elements must be <= 2^62 (offset %llu, %llu elements)",
                          (unsigned long long)offset, (unsigned long long)n);
  if (n == 0) return REEL_OK;
  if (!b->ops->noise) return unsupported(b, op, err);
  return b->ops->noise(b, seed, offset, out, err);
}

/* BT.709 luma weights; limited-range scales and offsets at 8 bits (times 4 at 10 bits). */
#define YUV_KR 0.2126
#define YUV_KB 0.0722

reel_status reel_op_rgb_to_yuv420(reel_backend *b, const reel_tensor *rgb, float lo, float hi, reel_tensor *y,
                                  reel_tensor *u, reel_tensor *v, reel_error *err) {
  const char *op = "rgb_to_yuv420";
  reel_status st = check_backend(b, op, err);
  if (st == REEL_OK) st = check_operand(b, rgb, op, "rgb", 0, 1, err);
  if (st == REEL_OK) st = check_operand(b, y, op, "y", 1, 0, err);
  if (st == REEL_OK) st = check_operand(b, u, op, "u", 1, 0, err);
  if (st == REEL_OK) st = check_operand(b, v, op, "v", 1, 0, err);
  if (st != REEL_OK) return st;
  if (!isfinite(lo) || !isfinite(hi) || !(lo < hi) || !isfinite(1.0f / (hi - lo)))
    return reel_error_set(err, REEL_EINVAL, "rgb_to_yuv420.lo", "need finite lo < hi (got %g, %g)", lo, hi);
  if (rgb->ndim != 4 || rgb->shape[1] != 3 || rgb->shape[2] % 2 || rgb->shape[3] % 2)
    return shape_mismatch(op, "rgb", rgb, "[F, 3, H, W] with H and W even", err);
  const int64_t F = rgb->shape[0], H = rgb->shape[2], W = rgb->shape[3];
  char exp[96];
  snprintf(exp, sizeof exp, "[%lld, %lld, %lld] (F, H, W of rgb)", (long long)F, (long long)H, (long long)W);
  if (y->ndim != 3 || y->shape[0] != F || y->shape[1] != H || y->shape[2] != W)
    return shape_mismatch(op, "y", y, exp, err);
  snprintf(exp, sizeof exp, "[%lld, %lld, %lld] (F, H/2, W/2 of rgb)", (long long)F, (long long)(H / 2),
           (long long)(W / 2));
  if (u->ndim != 3 || u->shape[0] != F || u->shape[1] != H / 2 || u->shape[2] != W / 2)
    return shape_mismatch(op, "u", u, exp, err);
  if (v->ndim != 3 || v->shape[0] != F || v->shape[1] != H / 2 || v->shape[2] != W / 2)
    return shape_mismatch(op, "v", v, exp, err);
  if (y->dtype != REEL_U8 && y->dtype != REEL_U16)
    return reel_error_set(err, REEL_EUNSUPPORTED, "rgb_to_yuv420.y", "dtype %s: u8 or u16", reel_dtype_name(y->dtype));
  if (u->dtype != y->dtype || v->dtype != y->dtype)
    return reel_error_set(err, REEL_EINVAL, u->dtype != y->dtype ? "rgb_to_yuv420.u" : "rgb_to_yuv420.v",
                          "must have y's dtype %s", reel_dtype_name(y->dtype));
  if (reel_tensor_numel(y) == 0) return REEL_OK;
  if (!b->ops->rgb_to_yuv420) return unsupported(b, op, err);
  const double s = y->dtype == REEL_U16 ? 4.0 : 1.0, kg = 1.0 - YUV_KR - YUV_KB;
  const double ys = 219.0 * s, cs = 224.0 * s;
  reel__yuv_coefs k;
  k.lo = lo;
  k.inv = 1.0f / (hi - lo);
  k.ky[0] = (float)(ys * YUV_KR);
  k.ky[1] = (float)(ys * kg);
  k.ky[2] = (float)(ys * YUV_KB);
  k.ku[0] = (float)(-cs * YUV_KR / (2.0 * (1.0 - YUV_KB)));
  k.ku[1] = (float)(-cs * kg / (2.0 * (1.0 - YUV_KB)));
  k.ku[2] = (float)(cs / 2.0);
  k.kv[0] = (float)(cs / 2.0);
  k.kv[1] = (float)(-cs * kg / (2.0 * (1.0 - YUV_KR)));
  k.kv[2] = (float)(-cs * YUV_KB / (2.0 * (1.0 - YUV_KR)));
  k.yoff = (float)(16.0 * s);
  k.coff = (float)(128.0 * s);
  k.maxv = (float)(s * 256.0 - 1.0);
  return b->ops->rgb_to_yuv420(b, rgb, &k, y, u, v, err);
}
