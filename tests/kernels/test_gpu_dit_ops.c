/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The diffusion-transformer ops of the CUDA backend against the CPU backend
 * (ctest label gpu): rotary embedding, modulation, gated residual and the
 * sampler's linear combination (the same bits: both round every step alike), and
 * fused attention on both CUDA paths (bf16 tensor cores with zero-padded head
 * widths, exact f32 fallback) over ragged sequence lengths, permuted layouts,
 * cross-attention shapes and every float dtype, each under a normalised-MSE
 * bound. Exits with 77 (ctest's SKIP_RETURN_CODE) without CUDA or a device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kref.h"
#include "testutil.h"

static reel_backend *cpu, *gpu;

static void pair(reel_dtype dt, int ndim, const int64_t *shape, float *data, reel_tensor *c, reel_tensor *g) {
  *c = kr_tensor(cpu, dt, ndim, shape, data);
  *g = kr_tensor(gpu, dt, ndim, shape, data);
}

static void out_pair(reel_dtype dt, int ndim, const int64_t *shape, reel_tensor *c, reel_tensor *g) {
  assert_int_equal(reel_tensor_new(cpu, dt, ndim, shape, c, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(gpu, dt, ndim, shape, g, NULL), REEL_OK);
}

static void free_pair(reel_tensor *c, reel_tensor *g) {
  reel_tensor_free(c);
  reel_tensor_free(g);
}

/* NMSE of the GPU result against the CPU one; bound 0 demands the same bits. */
static void compare(const char *what, const reel_tensor *c, const reel_tensor *g, double bound) {
  assert_int_equal(reel_backend_synchronize(gpu, NULL), REEL_OK);
  float *a = kr_download(cpu, c), *b = kr_download(gpu, g);
  size_t n = (size_t)reel_tensor_numel(c);
  double e = kr_nmse(a, b, n);
  printf("# %-52s nmse %.3e (bound %.1e) path %s\n", what, e, bound, reel_backend_last_path(gpu));
  if (bound == 0.0) {
    if (memcmp(a, b, n * sizeof *a) != 0) fail_msg("%s: results differ (nmse %.3e), expected the same bits", what, e);
  } else if (!(e <= bound)) {
    fail_msg("%s: nmse %.3e above %.1e", what, e, bound);
  }
  free(a);
  free(b);
}

static void test_rope(void **state) {
  (void)state;
  const reel_dtype dts[3] = {REEL_F32, REEL_F16, REEL_BF16};
  const int64_t B = 2, T = 37, H = 3, D = 20;
  for (int d = 0; d < 3; d++) {
    size_t n = (size_t)(B * T * H * D);
    float *x = malloc(n * 4), cs[37 * 10], sn[37 * 10];
    kr_fill(x, n, 21, -2, 2);
    for (int i = 0; i < 37 * 10; i++) {
      cs[i] = cosf(0.1f * (float)i);
      sn[i] = sinf(0.1f * (float)i);
    }
    /* x stored [B, H, T, D], seen as a permuted [B, T, H, D] view; out in place. */
    int64_t sx[4] = {B, H, T, D}, st[2] = {T, D / 2};
    int perm[4] = {0, 2, 1, 3};
    reel_tensor cx, gx, cvx, gvx, cc, gc, csn, gsn;
    pair(dts[d], 4, sx, x, &cx, &gx);
    pair(REEL_F32, 2, st, cs, &cc, &gc);
    pair(REEL_F32, 2, st, sn, &csn, &gsn);
    reel_tensor_permute(&cx, perm, &cvx, NULL);
    reel_tensor_permute(&gx, perm, &gvx, NULL);
    assert_int_equal(reel_op_rope(cpu, &cvx, &cc, &csn, &cvx, NULL), REEL_OK);
    assert_int_equal(reel_op_rope(gpu, &gvx, &gc, &gsn, &gvx, NULL), REEL_OK);
    char what[64];
    snprintf(what, sizeof what, "rope %s in place, permuted", reel_dtype_name(dts[d]));
    compare(what, &cx, &gx, 0.0); /* the same f32 steps and round-to-nearest-even stores */
    free_pair(&cx, &gx);
    free_pair(&cc, &gc);
    free_pair(&csn, &gsn);
    free(x);
  }
}

static void test_modulate_gated_add(void **state) {
  (void)state;
  const reel_dtype dts[3] = {REEL_F32, REEL_F16, REEL_BF16};
  static const int64_t widths[3] = {7, 96, 1536};
  for (int d = 0; d < 3; d++)
    for (int wi = 0; wi < 3; wi++) {
      const int64_t B = 2, T = 45, D = widths[wi];
      size_t n = (size_t)(B * T * D);
      float *x = malloc(n * 4), *y = malloc(n * 4), *sh = malloc((size_t)(B * D) * 4),
            *sc = malloc((size_t)(B * D) * 4);
      kr_fill(x, n, 31, -3, 3);
      kr_fill(y, n, 32, -3, 3);
      kr_fill(sh, (size_t)(B * D), 33, -1, 1);
      kr_fill(sc, (size_t)(B * D), 34, -1, 1);
      int64_t sx[3] = {B, T, D}, sv[3] = {B, 1, D};
      reel_tensor cx, gx, cy, gy, csh, gsh, csc, gsc, co, go;
      pair(dts[d], 3, sx, x, &cx, &gx);
      pair(dts[d], 3, sx, y, &cy, &gy);
      pair(REEL_F32, 3, sv, sh, &csh, &gsh);
      pair(REEL_F32, 3, sv, sc, &csc, &gsc);
      out_pair(dts[d], 3, sx, &co, &go);
      char what[64];
      assert_int_equal(reel_op_modulate(cpu, &cx, &csh, &csc, &co, NULL), REEL_OK);
      assert_int_equal(reel_op_modulate(gpu, &gx, &gsh, &gsc, &go, NULL), REEL_OK);
      snprintf(what, sizeof what, "modulate [2,45,%lld] %s", (long long)D, reel_dtype_name(dts[d]));
      compare(what, &co, &go, 0.0);
      /* Gated residual in place on x. */
      assert_int_equal(reel_op_gated_add(cpu, &cx, &cy, &csc, &cx, NULL), REEL_OK);
      assert_int_equal(reel_op_gated_add(gpu, &gx, &gy, &gsc, &gx, NULL), REEL_OK);
      snprintf(what, sizeof what, "gated_add [2,45,%lld] %s in place", (long long)D, reel_dtype_name(dts[d]));
      compare(what, &cx, &gx, 0.0);
      free_pair(&cx, &gx);
      free_pair(&cy, &gy);
      free_pair(&csh, &gsh);
      free_pair(&csc, &gsc);
      free_pair(&co, &go);
      free(x);
      free(y);
      free(sh);
      free(sc);
    }
}

static void test_lincomb(void **state) {
  (void)state;
  enum { K = 6 };
  const int64_t n = 100003;
  float *h[K];
  reel_tensor c[K], g[K];
  const reel_tensor *cp[K], *gp[K];
  const double coef[K] = {0.3, -1.25, 7e-4, 2.0, -0.5, 1.0 / 3.0};
  for (int k = 0; k < K; k++) {
    h[k] = malloc((size_t)n * 4);
    kr_fill(h[k], (size_t)n, 40 + (uint32_t)k, -3, 3);
    pair(REEL_F32, 1, &n, h[k], &c[k], &g[k]);
    cp[k] = &c[k];
    gp[k] = &g[k];
  }
  for (int m = 1; m <= K; m++) {
    reel_tensor co, go;
    out_pair(REEL_F32, 1, &n, &co, &go);
    assert_int_equal(reel_op_lincomb(cpu, m, coef, cp, &co, NULL), REEL_OK);
    assert_int_equal(reel_op_lincomb(gpu, m, coef, gp, &go, NULL), REEL_OK);
    char what[48];
    snprintf(what, sizeof what, "lincomb n=%d", m);
    compare(what, &co, &go, 0.0);
    free_pair(&co, &go);
  }
  /* Output aliasing the first input. */
  assert_int_equal(reel_op_lincomb(cpu, K, coef, cp, &c[0], NULL), REEL_OK);
  assert_int_equal(reel_op_lincomb(gpu, K, coef, gp, &g[0], NULL), REEL_OK);
  compare("lincomb in place", &c[0], &g[0], 0.0);
  for (int k = 0; k < K; k++) {
    free_pair(&c[k], &g[k]);
    free(h[k]);
  }
}

typedef struct attn_case {
  int64_t B, Tq, Tk, H, D, Dv;
  reel_dtype dt;
  int permuted; /* q/k/v stored [B, H, T, D] and seen through a permuted view */
} attn_case;

static void run_attention(const attn_case *ac, const char *path, double bound) {
  reel_error err = {0};
  assert_int_equal(reel_backend_set_option(gpu, "attention", path, &err), REEL_OK);
  size_t nq = (size_t)(ac->B * ac->Tq * ac->H * ac->D), nk = (size_t)(ac->B * ac->Tk * ac->H * ac->D),
         nv = (size_t)(ac->B * ac->Tk * ac->H * ac->Dv);
  float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nv * 4);
  kr_fill(q, nq, 51, -2, 2);
  kr_fill(k, nk, 52, -2, 2);
  kr_fill(v, nv, 53, -1, 1);
  reel_tensor cq, gq, ck, gk, cv, gv, co, go, vq[2], vk[2], vv[2];
  int64_t so[4] = {ac->B, ac->Tq, ac->H, ac->Dv};
  if (ac->permuted) {
    int64_t sq[4] = {ac->B, ac->H, ac->Tq, ac->D}, sk[4] = {ac->B, ac->H, ac->Tk, ac->D},
            sv[4] = {ac->B, ac->H, ac->Tk, ac->Dv};
    int perm[4] = {0, 2, 1, 3};
    pair(ac->dt, 4, sq, q, &cq, &gq);
    pair(ac->dt, 4, sk, k, &ck, &gk);
    pair(ac->dt, 4, sv, v, &cv, &gv);
    reel_tensor_permute(&cq, perm, &vq[0], NULL);
    reel_tensor_permute(&gq, perm, &vq[1], NULL);
    reel_tensor_permute(&ck, perm, &vk[0], NULL);
    reel_tensor_permute(&gk, perm, &vk[1], NULL);
    reel_tensor_permute(&cv, perm, &vv[0], NULL);
    reel_tensor_permute(&gv, perm, &vv[1], NULL);
  } else {
    int64_t sq[4] = {ac->B, ac->Tq, ac->H, ac->D}, sk[4] = {ac->B, ac->Tk, ac->H, ac->D},
            sv[4] = {ac->B, ac->Tk, ac->H, ac->Dv};
    pair(ac->dt, 4, sq, q, &cq, &gq);
    pair(ac->dt, 4, sk, k, &ck, &gk);
    pair(ac->dt, 4, sv, v, &cv, &gv);
    vq[0] = cq, vq[1] = gq, vk[0] = ck, vk[1] = gk, vv[0] = cv, vv[1] = gv;
  }
  out_pair(ac->dt, 4, so, &co, &go);
  const float scale = 1.0f / sqrtf((float)ac->D);
  assert_int_equal(reel_op_attention(cpu, &vq[0], &vk[0], &vv[0], scale, &co, &err), REEL_OK);
  if (reel_op_attention(gpu, &vq[1], &vk[1], &vv[1], scale, &go, &err) != REEL_OK)
    fail_msg("attention on %s: %s: %s", path, err.field, err.msg);
  char what[96];
  snprintf(what, sizeof what, "attention %s B%lld Tq%lld Tk%lld H%lld D%lld Dv%lld %s%s", path, (long long)ac->B,
           (long long)ac->Tq, (long long)ac->Tk, (long long)ac->H, (long long)ac->D, (long long)ac->Dv,
           reel_dtype_name(ac->dt), ac->permuted ? " perm" : "");
  compare(what, &co, &go, bound);
  free_pair(&cq, &gq);
  free_pair(&ck, &gk);
  free_pair(&cv, &gv);
  free_pair(&co, &go);
  free(q);
  free(k);
  free(v);
  assert_int_equal(reel_backend_set_option(gpu, "attention", "auto", &err), REEL_OK);
}

static void test_attention(void **state) {
  (void)state;
  static const attn_case cases[] = {
      {1, 1, 1, 1, 128, 128, REEL_F32, 0},     /* one query, one key */
      {2, 300, 300, 3, 128, 128, REEL_F32, 0}, /* ragged tiles (300 = 2x128 + 44 queries, 4x64 + 44 keys) */
      {2, 257, 77, 2, 128, 128, REEL_BF16, 1}, /* cross-attention shape, bf16, permuted */
      {1, 129, 65, 4, 64, 64, REEL_F16, 0},    /* DP 64, f16 */
      {2, 70, 33, 3, 20, 20, REEL_F32, 1},     /* fixture head width, padded to 64 */
      {1, 40, 50, 2, 12, 72, REEL_F32, 0},     /* D != Dv, padded to 128 */
      {1, 1024, 1024, 2, 128, 128, REEL_BF16, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    /* bf16 operands on the tensor cores: NMSE ~1e-5; the f32 fallback is exact to rounding. */
    run_attention(&cases[i], "mma", 4e-5);
    run_attention(&cases[i], "auto", 4e-5);
    run_attention(&cases[i], "simt", cases[i].dt == REEL_F32 ? 1e-10 : 2e-5);
  }
  /* Head width above 128: auto falls back to the exact kernel; mma refuses. */
  attn_case wide = {1, 33, 40, 2, 160, 160, REEL_F32, 0};
  run_attention(&wide, "auto", 1e-10);
  reel_error err = {0};
  assert_int_equal(reel_backend_set_option(gpu, "attention", "mma", &err), REEL_OK);
  int64_t s[4] = {1, 4, 1, 160};
  reel_tensor q, o;
  assert_int_equal(reel_tensor_new(gpu, REEL_F32, 4, s, &q, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(gpu, REEL_F32, 4, s, &o, &err), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_attention(gpu, &q, &q, &q, 0.1f, &o, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "attention.q");
  assert_int_equal(reel_backend_set_option(gpu, "attention", "auto", &err), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_backend_set_option(gpu, "attention", "fast", &err), REEL_EINVAL);
  reel_tensor_free(&q);
  reel_tensor_free(&o);
}

/* Operands of mixed dtypes and alignments: bf16 q read in place, f32 k packed, a bf16 v view at an odd offset packed.
 */
static void test_attention_mixed(void **state) {
  (void)state;
  reel_error err = {0};
  const int64_t Tq = 100, Tk = 90, H = 2, D = 128;
  size_t nq = (size_t)(Tq * H * D), nk = (size_t)(Tk * H * D);
  float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc((nk + 4) * 4);
  kr_fill(q, nq, 91, -2, 2);
  kr_fill(k, nk, 92, -2, 2);
  kr_fill(v, nk + 4, 93, -1, 1);
  int64_t sq[4] = {1, Tq, H, D}, sk[4] = {1, Tk, H, D}, vflat[1] = {(int64_t)nk + 4};
  reel_tensor cq, gq, ck, gk, cvb, gvb, co, go;
  pair(REEL_BF16, 4, sq, q, &cq, &gq);
  pair(REEL_F32, 4, sk, k, &ck, &gk);
  pair(REEL_BF16, 1, vflat, v, &cvb, &gvb);
  reel_tensor cv, gv, tmp;
  /* v = elements [4, 4 + nk) of the flat buffer: 8-byte aligned rows, not 16. */
  assert_int_equal(reel_tensor_slice(&cvb, 0, 4, (int64_t)nk, &tmp, &err), REEL_OK);
  assert_int_equal(reel_tensor_reshape(&tmp, 4, sk, &cv, &err), REEL_OK);
  assert_int_equal(reel_tensor_slice(&gvb, 0, 4, (int64_t)nk, &tmp, &err), REEL_OK);
  assert_int_equal(reel_tensor_reshape(&tmp, 4, sk, &gv, &err), REEL_OK);
  out_pair(REEL_F32, 4, sq, &co, &go);
  assert_int_equal(reel_op_attention(cpu, &cq, &ck, &cv, 0.088f, &co, &err), REEL_OK);
  assert_int_equal(reel_op_attention(gpu, &gq, &gk, &gv, 0.088f, &go, &err), REEL_OK);
  compare("attention mixed operands (bf16 in place, f32 packed, misaligned bf16 packed)", &co, &go, 4e-5);
  free_pair(&cq, &gq);
  free_pair(&ck, &gk);
  free_pair(&cvb, &gvb);
  free_pair(&co, &go);
  free(q);
  free(k);
  free(v);
}

int main(void) {
  reel_error err;
  reel_error_clear(&err);
  gpu = reel_backend_new_cuda(0, &err);
  if (!gpu) {
    char buf[700];
    printf("SKIP: no CUDA backend: %s\n", reel_error_format(&err, buf, sizeof buf));
    return 77;
  }
  cpu = reel_backend_new_cpu(0, &err);
  if (!cpu) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rope),      cmocka_unit_test(test_modulate_gated_add), cmocka_unit_test(test_lincomb),
      cmocka_unit_test(test_attention), cmocka_unit_test(test_attention_mixed),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  reel_backend_destroy(&gpu);
  reel_backend_destroy(&cpu);
  return rc;
}
