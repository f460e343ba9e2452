/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Op micro-benchmarks (reel/opbench.h): allocate operands on the backend, fill
 * them with a fixed pattern, one untimed call, then the median of `reps` timed
 * calls with the path the backend reports. Shared by `reel bench ops` and
 * kernels/bench/bench_matmul.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/alloc.h"
#include "reel/clock.h"
#include "reel/opbench.h"

/* Largest element count of one operand: keeps byte sizes far inside size_t and host staging sane. */
#define MAX_ELEMS ((int64_t)1 << 34)

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* n elements in [-0.5, 0.5) from a fixed LCG; the same values every run for a seed. */
static void fill_pattern(float *x, size_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)((s >> 8) * 0x1p-24) - 0.5f;
  }
}

/* Product of dims, or -1 when it exceeds MAX_ELEMS or a dim is < 1. */
static int64_t elems(int n, const int64_t *d) {
  int64_t p = 1;
  for (int i = 0; i < n; i++) {
    if (d[i] < 1 || d[i] > MAX_ELEMS || p > MAX_ELEMS / d[i]) return -1;
    p *= d[i];
  }
  return p;
}

/* A new tensor of dtype dt filled with the pattern for `seed`. */
static reel_status new_filled(reel_backend *b, reel_dtype dt, int ndim, const int64_t *shape, uint32_t seed,
                              reel_tensor *t, reel_error *err) {
  reel_status st = reel_tensor_new(b, dt, ndim, shape, t, err);
  if (st != REEL_OK) return st;
  const size_t n = (size_t)reel_tensor_numel(t);
  float *h = reel_malloc(n * sizeof *h);
  void *c = dt == REEL_F32 ? (void *)h : reel_malloc(n * reel_dtype_size(dt));
  if (!h || !c) {
    st = reel_error_set(err, REEL_ENOMEM, "opbench", "out of memory for %zu host elements", n);
    goto done;
  }
  fill_pattern(h, n, seed);
  if (dt != REEL_F32 && (st = reel_convert(REEL_F32, h, dt, c, n)) != REEL_OK) {
    reel_error_set(err, st, "opbench", "cannot convert to %s", reel_dtype_name(dt));
    goto done;
  }
  st = reel_tensor_upload(t, c, reel_tensor_nbytes(t), err);
done:
  if (c != h) reel_free(c);
  reel_free(h);
  if (st != REEL_OK) reel_tensor_free(t);
  return st;
}

typedef reel_status (*op_fn)(void *ctx, reel_error *err);

/* One untimed call, then reps timed ones (each synchronised); fills out. */
static reel_status time_op(reel_backend *b, op_fn fn, void *ctx, int reps, double flop, reel_opbench_result *out,
                           reel_error *err) {
  double t[REEL_OPBENCH_MAX_REPS];
  reel_status st = fn(ctx, err);
  if (st == REEL_OK) st = reel_backend_synchronize(b, err);
  for (int r = 0; st == REEL_OK && r < reps; r++) {
    const int64_t t0 = reel_now_ns();
    st = fn(ctx, err);
    if (st == REEL_OK) st = reel_backend_synchronize(b, err);
    t[r] = (double)(reel_now_ns() - t0) * 1e-9;
  }
  if (st != REEL_OK) return st;
  qsort(t, (size_t)reps, sizeof t[0], cmp_double);
  out->flop = flop;
  out->reps = reps;
  out->seconds_min = t[0];
  out->seconds_median = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
  /* A call faster than the clock's resolution still gets a finite figure. */
  out->gflops = flop / (out->seconds_median > 1e-9 ? out->seconds_median : 1e-9) * 1e-9;
  strncpy(out->path, reel_backend_last_path(b), sizeof out->path - 1);
  out->path[sizeof out->path - 1] = '\0';
  return REEL_OK;
}

static reel_status check_args(reel_backend *b, int reps, reel_opbench_result *out, reel_error *err) {
  if (!b || !out) return reel_error_set(err, REEL_EINVAL, "opbench", "NULL argument");
  memset(out, 0, sizeof *out);
  if (reps < 1 || reps > REEL_OPBENCH_MAX_REPS)
    return reel_error_set(err, REEL_ERANGE, "reps", "must be 1..%d, got %d", REEL_OPBENCH_MAX_REPS, reps);
  return REEL_OK;
}

/* ---- matmul -------------------------------------------------------------------------------- */

typedef struct matmul_ctx {
  reel_backend *b;
  reel_tensor x, w, o;
} matmul_ctx;

static reel_status run_matmul(void *p, reel_error *err) {
  matmul_ctx *c = p;
  return reel_op_matmul(c->b, &c->x, &c->w, NULL, &c->o, err);
}

reel_status reel_opbench_matmul(reel_backend *b, int64_t M, int64_t K, int64_t N, reel_dtype wdt, int reps,
                                reel_opbench_result *out, reel_error *err) {
  reel_status st = check_args(b, reps, out, err);
  if (st != REEL_OK) return st;
  const int64_t sx[2] = {M, K}, sw[2] = {N, K}, so[2] = {M, N};
  if (elems(2, sx) < 0 || elems(2, sw) < 0 || elems(2, so) < 0)
    return reel_error_set(err, REEL_ERANGE, "shape",
                          "M, K, N must be >= 1 with each operand at most 2^34 elements, "
                          "got %lldx%lldx%lld",
                          (long long)M, (long long)K, (long long)N);
  matmul_ctx c;
  memset(&c, 0, sizeof c);
  c.b = b;
  if ((st = new_filled(b, REEL_F32, 2, sx, 1, &c.x, err)) == REEL_OK &&
      (st = new_filled(b, wdt, 2, sw, 2, &c.w, err)) == REEL_OK &&
      (st = reel_tensor_new(b, REEL_F32, 2, so, &c.o, err)) == REEL_OK)
    st = time_op(b, run_matmul, &c, reps, 2.0 * (double)M * (double)N * (double)K, out, err);
  reel_tensor_free(&c.x);
  reel_tensor_free(&c.w);
  reel_tensor_free(&c.o);
  return st;
}

/* ---- attention ----------------------------------------------------------------------------- */

typedef struct attn_ctx {
  reel_backend *b;
  reel_tensor q, k, v, o;
  float scale;
} attn_ctx;

static reel_status run_attention(void *p, reel_error *err) {
  attn_ctx *c = p;
  return reel_op_attention(c->b, &c->q, &c->k, &c->v, c->scale, &c->o, err);
}

reel_status reel_opbench_attention(reel_backend *b, int64_t batch, int64_t tokens, int64_t heads, int64_t head_dim,
                                   reel_dtype dt, int reps, reel_opbench_result *out, reel_error *err) {
  reel_status st = check_args(b, reps, out, err);
  if (st != REEL_OK) return st;
  const int64_t s[4] = {batch, tokens, heads, head_dim};
  if (elems(4, s) < 0)
    return reel_error_set(err, REEL_ERANGE, "shape",
                          "batch, tokens, heads, head_dim must be >= 1 with at most 2^34 "
                          "elements, got %lldx%lldx%lldx%lld",
                          (long long)batch, (long long)tokens, (long long)heads, (long long)head_dim);
  attn_ctx c;
  memset(&c, 0, sizeof c);
  c.b = b;
  c.scale = (float)(1.0 / sqrt((double)head_dim));
  if ((st = new_filled(b, dt, 4, s, 3, &c.q, err)) == REEL_OK &&
      (st = new_filled(b, dt, 4, s, 4, &c.k, err)) == REEL_OK &&
      (st = new_filled(b, dt, 4, s, 5, &c.v, err)) == REEL_OK &&
      (st = reel_tensor_new(b, dt, 4, s, &c.o, err)) == REEL_OK)
    st = time_op(b, run_attention, &c, reps,
                 4.0 * (double)batch * (double)heads * (double)tokens * (double)tokens * (double)head_dim, out, err);
  reel_tensor_free(&c.q);
  reel_tensor_free(&c.k);
  reel_tensor_free(&c.v);
  reel_tensor_free(&c.o);
  return st;
}

/* ---- conv3d -------------------------------------------------------------------------------- */

typedef struct conv_ctx {
  reel_backend *b;
  reel_tensor x, w, bias, o;
  reel_conv3d_params p;
} conv_ctx;

static reel_status run_conv(void *p, reel_error *err) {
  conv_ctx *c = p;
  return reel_op_conv3d(c->b, &c->x, &c->w, &c->bias, &c->p, &c->o, err);
}

reel_status reel_opbench_conv3d(reel_backend *b, int64_t frames, int64_t H, int64_t W, int64_t cin, int64_t cout, int k,
                                reel_dtype wdt, int reps, reel_opbench_result *out, reel_error *err) {
  reel_status st = check_args(b, reps, out, err);
  if (st != REEL_OK) return st;
  if (k < 1 || k > 7 || k % 2 == 0 || frames < k)
    return reel_error_set(err, REEL_ERANGE, "shape",
                          "kernel must be odd in 1..7 and frames >= kernel, got k=%d, "
                          "frames=%lld",
                          k, (long long)frames);
  const int64_t sx[4] = {frames, H, W, cin}, sw[5] = {cout, k, k, k, cin}, sb[1] = {cout},
                so[4] = {frames - k + 1, H, W, cout};
  if (elems(4, sx) < 0 || elems(5, sw) < 0 || elems(4, so) < 0)
    return reel_error_set(err, REEL_ERANGE, "shape", "sizes must be >= 1 with at most 2^34 elements per operand");
  conv_ctx c;
  memset(&c, 0, sizeof c);
  c.b = b;
  for (int i = 0; i < 3; i++) c.p.stride[i] = 1;
  c.p.pad_h[0] = c.p.pad_h[1] = c.p.pad_w[0] = c.p.pad_w[1] = k / 2;
  c.p.upsample = 1;
  if ((st = new_filled(b, REEL_F32, 4, sx, 6, &c.x, err)) == REEL_OK &&
      (st = new_filled(b, wdt, 5, sw, 7, &c.w, err)) == REEL_OK &&
      (st = new_filled(b, REEL_F32, 1, sb, 8, &c.bias, err)) == REEL_OK &&
      (st = reel_tensor_new(b, REEL_F32, 4, so, &c.o, err)) == REEL_OK)
    st = time_op(b, run_conv, &c, reps,
                 2.0 * (double)(frames - k + 1) * (double)H * (double)W * (double)cout * (double)cin * k * k * k, out,
                 err);
  reel_tensor_free(&c.x);
  reel_tensor_free(&c.w);
  reel_tensor_free(&c.bias);
  reel_tensor_free(&c.o);
  return st;
}
