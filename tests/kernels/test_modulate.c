/* SPDX-License-Identifier: Apache-2.0 */
/*
 * reel_op_modulate (x * (1 + scale) + shift) and reel_op_gated_add (x + y * gate)
 * on the CPU: per-sample vectors broadcast over tokens, in place, a strided
 * (sliced) shift/scale like the chunks of a modulation table, bf16 operands,
 * and shape validation naming the operand.
 */
#include <stdlib.h>
#include <string.h>

#include "reel/backend.h"
#include "testutil.h"

static void fill(float *x, size_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 3u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 8) / 16777216.0f * 2.0f - 1.0f;
  }
}

static reel_tensor make(reel_backend *be, reel_dtype dt, int nd, const int64_t *shape, const float *data) {
  reel_tensor t;
  reel_error err = {0};
  assert_int_equal(reel_tensor_new(be, dt, nd, shape, &t, &err), REEL_OK);
  size_t n = (size_t)reel_tensor_numel(&t), es = reel_dtype_size(dt);
  void *h = malloc(n * es);
  assert_int_equal(reel_convert(REEL_F32, data, dt, h, n), REEL_OK);
  assert_int_equal(reel_tensor_upload(&t, h, n * es, &err), REEL_OK);
  free(h);
  return t;
}

enum { B = 2, T = 33, D = 40 };

/* mod [B, 6, D] like the six modulation vectors of a block; x, y [B, T, D]. */
static void test_modulate_and_gate(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(2, &err);
  float *x = malloc(B * T * D * 4), *y = malloc(B * T * D * 4), mod[B * 6 * D], *ref = malloc(B * T * D * 4),
        *got = malloc(B * T * D * 4);
  fill(x, B * T * D, 1);
  fill(y, B * T * D, 2);
  fill(mod, B * 6 * D, 3);
  int64_t sx[3] = {B, T, D}, sm[3] = {B, 6, D};
  reel_tensor tx = make(be, REEL_F32, 3, sx, x), ty = make(be, REEL_F32, 3, sx, y), tm = make(be, REEL_F32, 3, sm, mod);
  reel_tensor shift, scale, gate, to;
  assert_int_equal(reel_tensor_slice(&tm, 1, 0, 1, &shift, &err), REEL_OK);
  assert_int_equal(reel_tensor_slice(&tm, 1, 1, 1, &scale, &err), REEL_OK);
  assert_int_equal(reel_tensor_slice(&tm, 1, 2, 1, &gate, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 3, sx, &to, &err), REEL_OK);

  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int d = 0; d < D; d++) {
        float s1 = 1.0f + mod[(b * 6 + 1) * D + d];
        float p = x[(b * T + t) * D + d] * s1;
        ref[(b * T + t) * D + d] = p + mod[(b * 6 + 0) * D + d];
      }
  assert_int_equal(reel_op_modulate(be, &tx, &shift, &scale, &to, &err), REEL_OK);
  assert_int_equal(reel_tensor_download(&to, got, B * T * D * 4, &err), REEL_OK);
  assert_memory_equal(got, ref, B * T * D * 4);

  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int d = 0; d < D; d++) {
        float p = y[(b * T + t) * D + d] * mod[(b * 6 + 2) * D + d];
        ref[(b * T + t) * D + d] = x[(b * T + t) * D + d] + p;
      }
  /* In place on x, as the residual stream is updated. */
  assert_int_equal(reel_op_gated_add(be, &tx, &ty, &gate, &tx, &err), REEL_OK);
  assert_int_equal(reel_tensor_download(&tx, got, B * T * D * 4, &err), REEL_OK);
  assert_memory_equal(got, ref, B * T * D * 4);

  /* bf16 modulation vectors and bf16 output through the staged path. */
  reel_tensor tmb = make(be, REEL_BF16, 3, sm, mod), shb, scb, tob;
  assert_int_equal(reel_tensor_slice(&tmb, 1, 3, 1, &shb, &err), REEL_OK);
  assert_int_equal(reel_tensor_slice(&tmb, 1, 4, 1, &scb, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_BF16, 3, sx, &tob, &err), REEL_OK);
  assert_int_equal(reel_op_modulate(be, &ty, &shb, &scb, &tob, &err), REEL_OK);
  uint16_t *hb = malloc(B * T * D * 2);
  assert_int_equal(reel_tensor_download(&tob, hb, B * T * D * 2, &err), REEL_OK);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int d = 0; d < D; d++) {
        float sh = reel_bf16_to_f32(reel_f32_to_bf16(mod[(b * 6 + 3) * D + d]));
        float sc = reel_bf16_to_f32(reel_f32_to_bf16(mod[(b * 6 + 4) * D + d]));
        float p = y[(b * T + t) * D + d] * (1.0f + sc);
        assert_int_equal(hb[(b * T + t) * D + d], reel_f32_to_bf16(p + sh));
      }

  reel_tensor_free(&tx);
  reel_tensor_free(&ty);
  reel_tensor_free(&tm);
  reel_tensor_free(&to);
  reel_tensor_free(&tmb);
  reel_tensor_free(&tob);
  free(x);
  free(y);
  free(ref);
  free(got);
  free(hb);
  reel_backend_destroy(&be);
}

static void test_validation(void **state) {
  (void)state;
  reel_error err = {0};
  reel_backend *be = reel_backend_new_cpu(1, &err);
  int64_t sx[3] = {2, 5, 8}, sbad[3] = {2, 1, 7}, sy[3] = {2, 4, 8}, sv[3] = {2, 1, 8};
  reel_tensor x, bad, y, v;
  assert_int_equal(reel_tensor_new(be, REEL_F32, 3, sx, &x, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 3, sbad, &bad, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 3, sy, &y, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(be, REEL_F32, 3, sv, &v, &err), REEL_OK);
  assert_int_equal(reel_op_modulate(be, &x, &v, &bad, &x, &err), REEL_EINVAL);
  assert_string_equal(err.field, "modulate.scale");
  reel_error_clear(&err);
  assert_int_equal(reel_op_gated_add(be, &x, &y, &v, &x, &err), REEL_EINVAL);
  assert_string_equal(err.field, "gated_add.y");
  reel_error_clear(&err);
  assert_int_equal(reel_op_gated_add(be, &x, &x, &bad, &x, &err), REEL_EINVAL);
  assert_string_equal(err.field, "gated_add.gate");
  reel_tensor_free(&x);
  reel_tensor_free(&bad);
  reel_tensor_free(&y);
  reel_tensor_free(&v);
  reel_backend_destroy(&be);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_modulate_and_gate),
      cmocka_unit_test(test_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
