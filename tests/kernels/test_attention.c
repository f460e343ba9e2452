/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_op_attention on the CPU against a naive double-precision softmax(q kᵀ) v:
 * odd sizes that leave partial query blocks, key tiles and padded head dims;
 * strided q/k/v views cut from one fused projection; several key tiles; bf16
 * operands; both the AVX-512 and the portable path; results independent of the
 * thread count; and operand validation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "reel/backend.h"
#include "testutil.h"

static void fill(float *x, size_t n, uint32_t seed, float amp) {
  uint32_t s = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = amp * ((float)(s >> 8) / 16777216.0f * 2.0f - 1.0f);
  }
}

/* Naive attention over logical [B, T, H, D] arrays. */
static void ref_attention(int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t D, int64_t Dv, const float *q,
                          const float *k, const float *v, double scale, float *out) {
  double *s = malloc((size_t)Tk * sizeof *s);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Tq; i++) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < Tk; j++) {
          double acc = 0;
          for (int64_t d = 0; d < D; d++)
            acc += (double)q[((b * Tq + i) * H + h) * D + d] * (double)k[((b * Tk + j) * H + h) * D + d];
          s[j] = acc * scale;
          if (s[j] > mx) mx = s[j];
        }
        for (int64_t j = 0; j < Tk; j++) {
          s[j] = exp(s[j] - mx);
          sum += s[j];
        }
        for (int64_t c = 0; c < Dv; c++) {
          double acc = 0;
          for (int64_t j = 0; j < Tk; j++) acc += s[j] * (double)v[((b * Tk + j) * H + h) * Dv + c];
          out[((b * Tq + i) * H + h) * Dv + c] = (float)(acc / sum);
        }
      }
  free(s);
}

static reel_tensor upload(reel_backend *be, reel_dtype dt, int nd, const int64_t *shape, const float *data) {
  reel_tensor t;
  reel_error err = {0};
  assert_int_equal(reel_tensor_new(be, dt, nd, shape, &t, &err), REEL_OK);
  size_t n = (size_t)reel_tensor_numel(&t);
  if (dt == REEL_F32) {
    assert_int_equal(reel_tensor_upload(&t, data, n * 4, &err), REEL_OK);
  } else {
    uint16_t *h = malloc(n * 2);
    assert_int_equal(reel_convert(REEL_F32, data, dt, h, n), REEL_OK);
    assert_int_equal(reel_tensor_upload(&t, h, n * 2, &err), REEL_OK);
    free(h);
  }
  return t;
}

static float *download(const reel_tensor *t) {
  size_t n = (size_t)reel_tensor_numel(t);
  float *h = malloc(n * sizeof *h);
  reel_error err = {0};
  assert_int_equal(reel_tensor_download(t, h, n * 4, &err), REEL_OK);
  return h;
}

static void round_to(float *x, size_t n, reel_dtype dt) {
  for (size_t i = 0; i < n; i++) x[i] = dt == REEL_BF16 ? reel_bf16_to_f32(reel_f32_to_bf16(x[i])) : x[i];
}

/* Runs one case with contiguous q, k, v; returns the max abs error against the reference. */
static double run_case(reel_backend *be, int64_t B, int64_t Tq, int64_t Tk, int64_t H, int64_t D, int64_t Dv,
                       reel_dtype dt, float amp) {
  size_t nq = (size_t)(B * Tq * H * D), nk = (size_t)(B * Tk * H * D), nv = (size_t)(B * Tk * H * Dv),
         no = (size_t)(B * Tq * H * Dv);
  float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nv * 4), *ref = malloc(no * 4);
  fill(q, nq, 1, amp);
  fill(k, nk, 2, amp);
  fill(v, nv, 3, 1.0f);
  round_to(q, nq, dt);
  round_to(k, nk, dt);
  round_to(v, nv, dt);
  double scale = 1.0 / sqrt((double)D);
  ref_attention(B, Tq, Tk, H, D, Dv, q, k, v, scale, ref);
  int64_t sq[4] = {B, Tq, H, D}, sk[4] = {B, Tk, H, D}, sv[4] = {B, Tk, H, Dv}, so[4] = {B, Tq, H, Dv};
  reel_tensor tq = upload(be, dt, 4, sq, q), tk = upload(be, dt, 4, sk, k), tv = upload(be, dt, 4, sv, v), to;
  reel_error err = {0};
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, so, &to, &err), REEL_OK);
  assert_int_equal(reel_op_attention(be, &tq, &tk, &tv, (float)scale, &to, &err), REEL_OK);
  float *got = download(&to);
  double e = tu_max_abs_diff(ref, got, no, NULL);
  reel_tensor_free(&tq);
  reel_tensor_free(&tk);
  reel_tensor_free(&tv);
  reel_tensor_free(&to);
  free(q);
  free(k);
  free(v);
  free(ref);
  free(got);
  return e;
}

static void test_shapes_both_paths(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(2, &err);
  assert_non_null(be);
  static const char *const paths[] = {"portable", "avx512"};
  for (int p = 0; p < 2; p++) {
    reel_status st = reel_backend_set_option(be, "attention", paths[p], &err);
    if (st == REEL_EUNSUPPORTED) continue; /* no AVX-512 on this CPU */
    assert_int_equal(st, REEL_OK);
    /* Partial query block, one partial key tile, head dim not a multiple of 16. */
    assert_true(run_case(be, 2, 45, 7, 3, 20, 20, REEL_F32, 2.0f) < 2e-6);
    /* Several key tiles with a ragged last one (128 + 128 + 44) and several query blocks. */
    assert_true(run_case(be, 1, 130, 300, 2, 16, 16, REEL_F32, 3.0f) < 2e-6);
    /* Wide heads (Dv = 128 needs two column chunks) and Dv != D. */
    assert_true(run_case(be, 1, 9, 33, 2, 128, 72, REEL_F32, 0.5f) < 2e-6);
    /* Large logits: the running maximum must keep exp() in range. */
    assert_true(run_case(be, 1, 5, 200, 1, 8, 8, REEL_F32, 12.0f) < 5e-6);
    /* bf16 inputs are read exactly; accumulation is still f32. */
    assert_true(run_case(be, 2, 17, 40, 2, 24, 24, REEL_BF16, 1.0f) < 2e-6);
  }
  reel_backend_destroy(&be);
}

/* q, k, v as strided views of one [B, T, 3, H, D] projection, output into a view of a wider tensor. */
static void test_strided_views(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(2, &err);
  const int64_t B = 2, T = 37, H = 3, D = 12;
  size_t n = (size_t)(B * T * 3 * H * D);
  float *qkv = malloc(n * 4);
  fill(qkv, n, 9, 1.5f);
  int64_t shape[5] = {B, T, 3, H, D};
  reel_tensor t = upload(be, REEL_F32, 5, shape, qkv), views[3];
  float *q = malloc((size_t)(B * T * H * D) * 4), *k = malloc((size_t)(B * T * H * D) * 4),
        *v = malloc((size_t)(B * T * H * D) * 4);
  for (int w = 0; w < 3; w++) {
    reel_tensor s;
    assert_int_equal(reel_tensor_slice(&t, 2, w, 1, &s, &err), REEL_OK);
    int64_t ns[4] = {B, T, H, D};
    assert_int_equal(reel_tensor_reshape(&s, 4, ns, &views[w], &err), REEL_OK);
    float *dst = w == 0 ? q : w == 1 ? k : v;
    for (int64_t i = 0; i < B * T; i++) memcpy(dst + i * H * D, qkv + (i * 3 + w) * H * D, (size_t)(H * D) * 4);
  }
  float *ref = malloc((size_t)(B * T * H * D) * 4);
  ref_attention(B, T, T, H, D, D, q, k, v, 1.0 / sqrt((double)D), ref);
  /* Output into the middle of a [B, T, H, 2D] tensor. */
  int64_t wide[4] = {B, T, H, 2 * D};
  reel_tensor ow, ov;
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, wide, &ow, &err), REEL_OK);
  assert_int_equal(reel_buffer_memset(ow.buf, 0, 0, reel_tensor_nbytes(&ow), &err), REEL_OK);
  assert_int_equal(reel_tensor_slice(&ow, 3, D / 2, D, &ov, &err), REEL_OK);
  assert_int_equal(reel_op_attention(be, &views[0], &views[1], &views[2], (float)(1.0 / sqrt((double)D)), &ov, &err),
                   REEL_OK);
  float *got = download(&ow);
  double e = 0;
  for (int64_t r = 0; r < B * T * H; r++)
    for (int64_t d = 0; d < 2 * D; d++) {
      float g = got[r * 2 * D + d];
      if (d < D / 2 || d >= D / 2 + D) {
        assert_true(g == 0.0f); /* outside the view: untouched */
      } else {
        double diff = fabs(g - ref[r * D + d - D / 2]);
        if (diff > e) e = diff;
      }
    }
  assert_true(e < 2e-6);
  reel_tensor_free(&t);
  reel_tensor_free(&ow);
  free(qkv);
  free(q);
  free(k);
  free(v);
  free(ref);
  free(got);
  reel_backend_destroy(&be);
}

static void test_thread_independent(void **state) {
  (void)state;
  reel_error err = {0};
  const int64_t B = 1, T = 150, H = 2, D = 32;
  size_t n = (size_t)(B * T * H * D);
  float *x = malloc(n * 4);
  float *res[2];
  for (int r = 0; r < 2; r++) {
    reel_backend *be = reel_backend_new_cpu(r == 0 ? 1 : 3, &err);
    int64_t s[4] = {B, T, H, D};
    fill(x, n, 5, 2.0f);
    reel_tensor q = upload(be, REEL_F32, 4, s, x), o;
    assert_int_equal(reel_tensor_new(be, REEL_F32, 4, s, &o, &err), REEL_OK);
    assert_int_equal(reel_op_attention(be, &q, &q, &q, 0.2f, &o, &err), REEL_OK);
    res[r] = download(&o);
    reel_tensor_free(&q);
    reel_tensor_free(&o);
    reel_backend_destroy(&be);
  }
  assert_memory_equal(res[0], res[1], n * 4);
  free(res[0]);
  free(res[1]);
  free(x);
}

static void test_validation(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(1, &err);
  int64_t s[4] = {1, 4, 2, 8}, sk[4] = {1, 5, 2, 6}, so3[3] = {1, 4, 16};
  reel_tensor q, k, o, o3;
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, s, &q, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, sk, &k, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, s, &o, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 3, so3, &o3, &err), REEL_OK);
  assert_int_equal(reel_op_attention(be, &q, &k, &k, 1.0f, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "attention.k");
  reel_error_clear(&err);
  assert_int_equal(reel_op_attention(be, &q, &q, &q, 1.0f, &o3, &err), REEL_EINVAL);
  assert_string_equal(err.field, "attention.out");
  reel_error_clear(&err);
  assert_int_equal(reel_op_attention(be, &q, &q, &q, NAN, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "attention.scale");
  reel_error_clear(&err);
  reel_tensor qt;
  assert_int_equal(reel_tensor_transpose(&q, 1, 3, &qt, &err), REEL_OK);
  int64_t st[4] = {1, 8, 2, 4};
  reel_tensor ot;
  assert_int_equal(reel_tensor_new(be, REEL_F32, 4, st, &ot, &err), REEL_OK);
  assert_int_equal(reel_op_attention(be, &qt, &qt, &qt, 1.0f, &ot, &err), REEL_EINVAL);
  assert_string_equal(err.field, "attention.q");
  reel_tensor_free(&q);
  reel_tensor_free(&k);
  reel_tensor_free(&o);
  reel_tensor_free(&o3);
  reel_tensor_free(&ot);
  reel_backend_destroy(&be);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shapes_both_paths),
      cmocka_unit_test(test_strided_views),
      cmocka_unit_test(test_thread_independent),
      cmocka_unit_test(test_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
