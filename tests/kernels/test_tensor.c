/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of reel/tensor.h: dtype names, f16/bf16 conversions (exact values, ties,
 * subnormals, NaN/Inf, and against the compiler's _Float16 where it exists) and
 * views (slice, permute, reshape of contiguous and strided tensors).
 */
#include <math.h>
#include <string.h>

#include "reel/tensor.h"
#include "testutil.h"

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static void test_dtype(void **state) {
  (void)state;
  assert_int_equal(reel_dtype_size(REEL_F32), 4);
  assert_int_equal(reel_dtype_size(REEL_BF16), 2);
  assert_int_equal(reel_dtype_size(REEL_F16), 2);
  assert_int_equal(reel_dtype_size(REEL_I8), 1);
  assert_int_equal(reel_dtype_size((reel_dtype)99), 0);
  assert_string_equal(reel_dtype_name(REEL_BF16), "bf16");
  assert_string_equal(reel_dtype_name((reel_dtype)99), "invalid");
  reel_dtype dt;
  assert_int_equal(reel_dtype_parse("BF16", &dt), REEL_OK);
  assert_int_equal(dt, REEL_BF16);
  assert_int_equal(reel_dtype_parse("f16", &dt), REEL_OK);
  assert_int_equal(dt, REEL_F16);
  assert_int_equal(reel_dtype_parse("F8_E4M3", &dt), REEL_OK);
  assert_int_equal(dt, REEL_FP8_E4M3);
  assert_int_equal(reel_dtype_parse("F64", &dt), REEL_ENOTFOUND);
  assert_true(reel_dtype_is_float(REEL_F16));
  assert_false(reel_dtype_is_float(REEL_I8));
}

static void test_f16_values(void **state) {
  (void)state;
  assert_int_equal(reel_f32_to_f16(1.0f), 0x3c00);
  assert_int_equal(reel_f32_to_f16(-2.0f), 0xc000);
  assert_int_equal(reel_f32_to_f16(0.0f), 0x0000);
  assert_int_equal(reel_f32_to_f16(-0.0f), 0x8000);
  assert_int_equal(reel_f32_to_f16(65504.0f), 0x7bff);
  assert_int_equal(reel_f32_to_f16(65519.0f), 0x7bff);
  assert_int_equal(reel_f32_to_f16(65520.0f), 0x7c00); /* tie rounds to even = infinity */
  assert_int_equal(reel_f32_to_f16(1e10f), 0x7c00);
  assert_int_equal(reel_f32_to_f16(-INFINITY), 0xfc00);
  assert_int_equal(reel_f32_to_f16(0x1p-24f), 0x0001);  /* smallest subnormal */
  assert_int_equal(reel_f32_to_f16(0x1p-25f), 0x0000);  /* tie to even: 0 */
  assert_int_equal(reel_f32_to_f16(0x1.8p-24f), 0x0002); /* 1.5 units: tie to even 2 */
  assert_int_equal(reel_f32_to_f16(0x1.8p-25f), 0x0001); /* 0.75 units rounds up */
  assert_int_equal(reel_f32_to_f16(0x1p-14f), 0x0400);  /* smallest normal */
  assert_int_equal(reel_f32_to_f16(0x1.ff8p-15f), 0x03ff);
  assert_int_equal(reel_f32_to_f16(0x1.ffap-15f), 0x03ff);
  assert_int_equal(reel_f32_to_f16(0x1.ffcp-15f), 0x0400); /* tie: to even */
  assert_int_equal(reel_f32_to_f16(0x1.ffep-15f), 0x0400); /* rounds up into the normals */
  /* 1 + 2^-11 is a tie between 1 and 1 + 2^-10: to even (1). 1 + 3*2^-11 rounds up to 1 + 2^-9. */
  assert_int_equal(reel_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
  assert_int_equal(reel_f32_to_f16(1.0f + 0x1.8p-10f), 0x3c02);
  uint16_t qn = reel_f32_to_f16(NAN);
  assert_true((qn & 0x7c00) == 0x7c00 && (qn & 0x3ff) != 0);
  /* A NaN whose payload sits only in the low bits must not turn into infinity. */
  uint16_t low = reel_f32_to_f16(from_bits(0x7f800001u));
  assert_true((low & 0x7c00) == 0x7c00 && (low & 0x3ff) != 0);
  assert_true(isnan(reel_f16_to_f32(0x7e00)));
  assert_true(isinf(reel_f16_to_f32(0x7c00)));
  assert_true(reel_f16_to_f32(0x0001) == 0x1p-24f);
  assert_true(reel_f16_to_f32(0x8001) == -0x1p-24f);
  assert_true(reel_f16_to_f32(0x3555) == 0x1.554p-2f);
}

static void test_f16_roundtrip_all(void **state) {
  (void)state;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = reel_f16_to_f32((uint16_t)h);
    uint16_t back = reel_f32_to_f16(f);
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
      assert_true(isnan(f));
      assert_int_equal(back, h | 0x200); /* NaNs come back quiet, payload kept */
    } else {
      assert_int_equal(back, h);
    }
  }
}

#if defined(__FLT16_MAX__) && !defined(__cplusplus)
/* The compiler's own float -> _Float16 conversion rounds to nearest even: compare on many bit patterns. */
static void test_f16_vs_compiler(void **state) {
  (void)state;
  uint32_t x = 12345;
  for (int i = 0; i < 2000000; i++) {
    x = x * 1664525u + 1013904223u;
    float f = from_bits(x);
    if (isnan(f)) continue;
    _Float16 h = (_Float16)f;
    uint16_t hb;
    memcpy(&hb, &h, 2);
    if (reel_f32_to_f16(f) != hb) fail_msg("f32 %a (0x%08x): ours 0x%04x, compiler 0x%04x", f, x, reel_f32_to_f16(f), hb);
  }
}
#endif

static void test_bf16_values(void **state) {
  (void)state;
  assert_int_equal(reel_f32_to_bf16(1.0f), 0x3f80);
  assert_int_equal(reel_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);    /* tie to even */
  assert_int_equal(reel_f32_to_bf16(1.0f + 0x1.8p-7f), 0x3f82);  /* tie to even, upwards */
  assert_int_equal(reel_f32_to_bf16(1.0f + 0x1.2p-8f), 0x3f81);  /* above the tie */
  assert_int_equal(reel_f32_to_bf16(-INFINITY), 0xff80);
  assert_int_equal(reel_f32_to_bf16(3.4e38f), 0x7f80);           /* rounds past the max to infinity */
  assert_int_equal(reel_f32_to_bf16(from_bits(0x7f800001u)) & 0x7fc0, 0x7fc0); /* NaN stays NaN */
  assert_int_equal(reel_f32_to_bf16(from_bits(0xffffffffu)), 0xffff);
  assert_true(reel_bf16_to_f32(0x4049) == 3.140625f);
  for (uint32_t h = 0; h < 65536; h++) {
    float f = reel_bf16_to_f32((uint16_t)h);
    if (isnan(f)) continue;
    assert_int_equal(reel_f32_to_bf16(f), h);
  }
}

static void test_convert_arrays(void **state) {
  (void)state;
  float src[5] = {1.5f, -3.0f, 0.1f, 1e-8f, 70000.0f}, back[5];
  uint16_t h[5], h2[5];
  assert_int_equal(reel_convert(REEL_F32, src, REEL_F16, h, 5), REEL_OK);
  for (int i = 0; i < 5; i++) assert_int_equal(h[i], reel_f32_to_f16(src[i]));
  assert_int_equal(reel_convert(REEL_F16, h, REEL_F32, back, 5), REEL_OK);
  assert_true(back[0] == 1.5f && back[1] == -3.0f && isinf(back[4]));
  assert_int_equal(reel_convert(REEL_F16, h, REEL_BF16, h2, 5), REEL_OK);
  assert_int_equal(h2[0], reel_f32_to_bf16(1.5f));
  assert_int_equal(reel_convert(REEL_F32, src, REEL_BF16, h, 5), REEL_OK);
  assert_int_equal(reel_convert(REEL_BF16, h, REEL_F32, back, 5), REEL_OK);
  assert_true(back[1] == -3.0f);
  assert_int_equal(reel_convert(REEL_I8, src, REEL_F32, back, 1), REEL_EUNSUPPORTED);
}

static void test_init_and_sizes(void **state) {
  (void)state;
  reel_tensor t;
  reel_error err;
  reel_error_clear(&err);
  int64_t shape[3] = {2, 3, 4};
  assert_int_equal(reel_tensor_init(&t, REEL_BF16, 3, shape, NULL, 128, &err), REEL_OK);
  assert_int_equal(reel_tensor_numel(&t), 24);
  assert_int_equal(reel_tensor_nbytes(&t), 48);
  assert_int_equal(reel_tensor_span_bytes(&t), 48);
  assert_int_equal(t.stride[0], 12);
  assert_int_equal(t.stride[2], 1);
  assert_true(reel_tensor_is_contiguous(&t));
  char sb[32];
  assert_string_equal(reel_tensor_shape_str(&t, sb, sizeof sb), "[2,3,4]");
  int64_t bad[2] = {3, -1};
  assert_int_equal(reel_tensor_init(&t, REEL_F32, 2, bad, NULL, 0, &err), REEL_ERANGE);
  assert_string_equal(err.field, "shape[1]");
  reel_error_clear(&err);
  assert_int_equal(reel_tensor_init(&t, REEL_F32, 7, shape, NULL, 0, &err), REEL_ERANGE);
  assert_string_equal(err.field, "ndim");
  reel_error_clear(&err);
  assert_int_equal(reel_tensor_init(&t, (reel_dtype)42, 1, shape, NULL, 0, &err), REEL_EINVAL);
  assert_string_equal(err.field, "dtype");
  assert_int_equal(reel_tensor_init(&t, REEL_F32, 0, NULL, NULL, 0, NULL), REEL_OK);
  assert_int_equal(reel_tensor_numel(&t), 1);
  int64_t zero[2] = {0, 5};
  assert_int_equal(reel_tensor_init(&t, REEL_F32, 2, zero, NULL, 0, NULL), REEL_OK);
  assert_int_equal(reel_tensor_span_bytes(&t), 0);
}

static void test_views(void **state) {
  (void)state;
  reel_tensor t, v, w;
  reel_error err;
  reel_error_clear(&err);
  int64_t shape[4] = {2, 5, 3, 4}; /* B, T, H, D */
  assert_int_equal(reel_tensor_init(&t, REEL_F32, 4, shape, NULL, 0, NULL), REEL_OK);
  /* Slice T = 1..3. */
  assert_int_equal(reel_tensor_slice(&t, 1, 1, 3, &v, &err), REEL_OK);
  assert_int_equal(v.offset, 1 * 12 * 4);
  assert_int_equal(v.shape[1], 3);
  assert_false(reel_tensor_is_contiguous(&v));
  assert_int_equal(reel_tensor_span_bytes(&v), (size_t)((1 * 60 + 2 * 12 + 2 * 4 + 3) + 1) * 4);
  assert_int_equal(reel_tensor_slice(&t, -1, 2, 3, &v, &err), REEL_ERANGE);
  assert_string_equal(err.field, "start");
  reel_error_clear(&err);
  assert_int_equal(reel_tensor_slice(&t, 4, 0, 1, &v, &err), REEL_ERANGE);
  /* Permute to B, H, T, D. */
  int perm[4] = {0, 2, 1, 3};
  assert_int_equal(reel_tensor_permute(&t, perm, &v, NULL), REEL_OK);
  assert_int_equal(v.shape[1], 3);
  assert_int_equal(v.stride[1], 4);
  assert_int_equal(v.stride[2], 12);
  int bad[4] = {0, 1, 1, 3};
  reel_error_clear(&err);
  assert_int_equal(reel_tensor_permute(&t, bad, &v, &err), REEL_EINVAL);
  assert_string_equal(err.field, "perm[2]");
  /* Contiguous reshape with -1. */
  int64_t ns[2] = {-1, 12};
  assert_int_equal(reel_tensor_reshape(&t, 2, ns, &v, NULL), REEL_OK);
  assert_int_equal(v.shape[0], 10);
  assert_int_equal(v.stride[0], 12);
  int64_t wrong[2] = {7, 12};
  assert_int_equal(reel_tensor_reshape(&t, 2, wrong, &v, NULL), REEL_EINVAL);
  /* Strided: slice of columns of [10, 12] -> [10, 6] (row stride 12), split the last dim into 2 x 3. */
  int64_t flat[2] = {10, 12};
  assert_int_equal(reel_tensor_reshape(&t, 2, flat, &v, NULL), REEL_OK);
  assert_int_equal(reel_tensor_slice(&v, 1, 6, 6, &w, NULL), REEL_OK);
  int64_t split[3] = {10, 2, 3};
  assert_int_equal(reel_tensor_reshape(&w, 3, split, &v, NULL), REEL_OK);
  assert_int_equal(v.stride[0], 12);
  assert_int_equal(v.stride[1], 3);
  assert_int_equal(v.stride[2], 1);
  assert_int_equal(v.offset, w.offset);
  /* Merging rows of the sliced view would need a copy. */
  int64_t merged[1] = {60};
  reel_error_clear(&err);
  assert_int_equal(reel_tensor_reshape(&w, 1, merged, &v, &err), REEL_EINVAL);
  assert_non_null(strstr(err.msg, "copy"));
  /* Permuted [B,H,T,D] -> merging H and T is impossible, merging T and D too; splitting D works. */
  assert_int_equal(reel_tensor_permute(&t, perm, &w, NULL), REEL_OK);
  int64_t bhtd2[5] = {2, 3, 5, 2, 2};
  assert_int_equal(reel_tensor_reshape(&w, 5, bhtd2, &v, NULL), REEL_OK);
  assert_int_equal(v.stride[2], 12);
  assert_int_equal(v.stride[3], 2);
  int64_t ht[3] = {2, 15, 4};
  assert_int_equal(reel_tensor_reshape(&w, 3, ht, &v, NULL), REEL_EINVAL);
  /* Transpose. */
  assert_int_equal(reel_tensor_transpose(&t, -1, -2, &v, NULL), REEL_OK);
  assert_int_equal(v.shape[3], 3);
  assert_int_equal(v.stride[3], 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dtype),           cmocka_unit_test(test_f16_values),
      cmocka_unit_test(test_f16_roundtrip_all),
#if defined(__FLT16_MAX__) && !defined(__cplusplus)
      cmocka_unit_test(test_f16_vs_compiler),
#endif
      cmocka_unit_test(test_bf16_values),     cmocka_unit_test(test_convert_arrays),
      cmocka_unit_test(test_init_and_sizes),  cmocka_unit_test(test_views),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
