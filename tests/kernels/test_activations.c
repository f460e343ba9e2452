/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vectorised SiLU and GELU-tanh of the CPU backend (option "activations" = avx512 /
 * avx2, where this CPU has them) against the portable build (libm's expf) and against a
 * double-precision reference: a sweep over the whole f32 range (every 4099th bit pattern
 * of both signs, so huge, tiny and subnormal inputs), a dense sweep of [-24, 24], and the
 * special values (NaN, +-inf, +-0, the overflow thresholds of exp). Also: results do
 * not depend on an element's position (vector body or tail), the path is reported,
 * softmax (which takes its exp from the same kernels) agrees across paths, and bad
 * option values are refused.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kref.h"
#include "reel/backend.h"
#include "testutil.h"

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* One ulp of |v| as an f32 (the subnormal spacing below FLT_MIN). */
static double ulp(double v) {
  double a = fabs(v);
  if (a < FLT_MIN) return ldexp(1.0, -149);
  int e;
  frexp(a, &e);
  return ldexp(1.0, e - 24);
}

/* The inputs: specials, a dense [-24, 24], and a sparse sweep of all bit patterns. Returns the count. */
static size_t make_inputs(float **out) {
  static const float specials[] = {0.0f,   -0.0f,  INFINITY, -INFINITY, NAN,      -NAN,     FLT_MAX,  -FLT_MAX,
                                   FLT_MIN, -FLT_MIN, 1e-45f,  -1e-45f,  88.72f,   88.73f,   89.0f,    -87.33f,
                                   -88.8f,  -89.1f,  -103.9f,  -104.5f,  -150.0f,  1e10f,    -1e10f,   7e12f,
                                   -7e12f,  1.0f,    -1.0f,    0.5f,     -0.5f,    3.0f,     -3.0f,    -5.0f};
  const size_t ns = sizeof specials / sizeof specials[0];
  const size_t dense = 48 * 1024 + 1;          /* [-24, 24] in steps of 2^-10 */
  const size_t sweep = (size_t)(4294967296ull / 4099ull) + 1;
  float *x = malloc((ns + dense + sweep) * sizeof *x);
  assert_non_null(x);
  size_t n = 0;
  for (size_t i = 0; i < ns; i++) x[n++] = specials[i];
  for (size_t i = 0; i < dense; i++) x[n++] = -24.0f + (float)i / 1024.0f;
  for (uint64_t u = 0; u < 4294967296ull; u += 4099) x[n++] = from_bits((uint32_t)u);
  *out = x;
  return n;
}

/* Runs SiLU (op 0) or GELU-tanh (op 1) on the n values of x with the given "activations" path. */
static float *run(reel_backend *b, int op, const float *x, size_t n) {
  int64_t s[1] = {(int64_t)n};
  reel_tensor tx, to;
  reel_error err = {0};
  assert_int_equal(reel_tensor_new(b, REEL_F32, 1, s, &tx, &err), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 1, s, &to, &err), REEL_OK);
  assert_int_equal(reel_tensor_upload(&tx, x, n * sizeof *x, &err), REEL_OK);
  assert_int_equal(op == 0 ? reel_op_silu(b, &tx, &to, &err) : reel_op_gelu_tanh(b, &tx, &to, &err), REEL_OK);
  float *y = malloc(n * sizeof *y);
  assert_non_null(y);
  assert_int_equal(reel_tensor_download(&to, y, n * sizeof *y, &err), REEL_OK);
  reel_tensor_free(&tx);
  reel_tensor_free(&to);
  return y;
}

/* Same class of value: both NaN, or both the same infinity, or both finite. */
static int same_class(float a, float b) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  if (isinf(a) || isinf(b)) return a == b;
  return 1;
}

/* Checks one vector path against the portable path (5 ulp) and the double reference. */
static void check_path(const char *path) {
  reel_backend *b = reel_backend_new_cpu(2, NULL);
  assert_non_null(b);
  reel_error err = {0};
  reel_status st = reel_backend_set_option(b, "activations", path, &err);
  if (st == REEL_EUNSUPPORTED) {
    /* This CPU lacks the instruction set: nothing to compare. */
    reel_backend_destroy(&b);
    return;
  }
  assert_int_equal(st, REEL_OK);
  reel_backend *p = reel_backend_new_cpu(2, NULL);
  assert_non_null(p);
  assert_int_equal(reel_backend_set_option(p, "activations", "portable", &err), REEL_OK);
  float *x = NULL;
  size_t n = make_inputs(&x);
  for (int op = 0; op < 2; op++) {
    float *got = run(b, op, x, n);
    char want_path[32];
    snprintf(want_path, sizeof want_path, "cpu-%s-act", path);
    assert_string_equal(reel_backend_last_path(b), want_path);
    float *ref = run(p, op, x, n);
    assert_string_equal(reel_backend_last_path(p), "cpu-portable-act");
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
      if (!same_class(got[i], ref[i]))
        fail_msg("%s op %d x=%a: got %a, portable %a", path, op, (double)x[i], (double)got[i], (double)ref[i]);
      if (!isfinite(got[i])) continue;
      double d = fabs((double)got[i] - (double)ref[i]) / ulp(ref[i]);
      if (d > worst) worst = d;
      if (!(d <= 5.0))
        fail_msg("%s op %d x=%a: got %a, portable %a (%.1f ulp)", path, op, (double)x[i], (double)got[i],
                 (double)ref[i], d);
      /* Against the exact function: 8 ulp relative, more for GELU where u (five f32 roundings and the rounded
         constants, up to ~6 ulp of u, as in torch's f32 GELU) has its error amplified by e^(-2u) to 2|u| times
         that, plus a tiny absolute floor for results that underflow. */
      if (fabs(x[i]) <= 24.0f) {
        const double v = x[i], u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
        /* In double, without the cancellation of 1 + tanh(u) near u = -inf (kref's ref_gelu_tanh has it). */
        double r = op == 0 ? v / (1.0 + exp(-v)) : v / (1.0 + exp(-2.0 * u));
        double tol = 1.2e-7 * (8.0 + (op == 1 ? 12.0 * fabs(u) : 0.0)) * fabs(r) + 1e-30;
        if (!(fabs((double)got[i] - r) <= tol))
          fail_msg("%s op %d x=%a: got %a, exact %a", path, op, (double)x[i], (double)got[i], r);
      }
    }
    print_message("%s op %d: %zu values, at most %.2f ulp from the portable build\n", path, op, n, worst);
    /* Position independence: the same values at other offsets and lengths (vector tails) give the same bits. */
    for (size_t len = 1; len <= 40; len++)
      for (size_t off = 0; off < 3; off++) {
        float *part = run(b, op, x + 200 + off * 7, len);
        assert_memory_equal(part, got + 200 + off * 7, len * sizeof *part);
        free(part);
      }
    free(got);
    free(ref);
  }
  free(x);
  reel_backend_destroy(&p);
  reel_backend_destroy(&b);
}

static void test_avx512(void **state) {
  (void)state;
  check_path("avx512");
}

static void test_avx2(void **state) {
  (void)state;
  check_path("avx2");
}

/* The default path agrees with the double reference on the values a network sees, in every dtype. */
static void test_auto_values(void **state) {
  (void)state;
  reel_backend *b = reel_backend_new_cpu(1, NULL);
  assert_non_null(b);
  float x[9] = {-6.0f, -2.5f, -1.0f, -1e-3f, 0.0f, 1e-3f, 0.7f, 2.0f, 9.0f};
  for (int op = 0; op < 2; op++) {
    float *y = run(b, op, x, 9);
    for (int i = 0; i < 9; i++) {
      double r = op == 0 ? (double)ref_silu(x[i]) : (double)ref_gelu_tanh(x[i]);
      assert_true(fabs((double)y[i] - r) <= 1e-6 * fabs(r) + 1e-12);
    }
    free(y);
  }
  reel_backend_destroy(&b);
}

/* Softmax rows (with -inf entries and a wide range) agree between each vector path and the portable one. */
static void test_softmax_paths(void **state) {
  (void)state;
  static const char *const paths[] = {"avx512", "avx2"};
  const int64_t R = 6, D = 77;
  float *x = malloc((size_t)(R * D) * sizeof *x);
  assert_non_null(x);
  kr_fill(x, (size_t)(R * D), 7, -60.0f, 60.0f);
  x[3] = -INFINITY;
  x[D + 5] = -INFINITY;
  int64_t s[2] = {R, D};
  float *want = NULL;
  for (int p = -1; p < 2; p++) {
    reel_backend *b = reel_backend_new_cpu(2, NULL);
    assert_non_null(b);
    reel_status st = reel_backend_set_option(b, "activations", p < 0 ? "portable" : paths[p], NULL);
    if (st == REEL_EUNSUPPORTED) {
      reel_backend_destroy(&b);
      continue;
    }
    assert_int_equal(st, REEL_OK);
    reel_tensor tx = kr_tensor(b, REEL_F32, 2, s, x), to;
    assert_int_equal(reel_tensor_new(b, REEL_F32, 2, s, &to, NULL), REEL_OK);
    assert_int_equal(reel_op_softmax(b, &tx, &to, NULL), REEL_OK);
    float *got = kr_download(b, &to);
    if (p < 0) {
      want = got;
    } else {
      for (int64_t i = 0; i < R * D; i++)
        if (!(fabs((double)got[i] - (double)want[i]) <= 4.0 * ulp(want[i])))
          fail_msg("softmax %s [%lld]: %a vs portable %a", paths[p], (long long)i, (double)got[i], (double)want[i]);
      free(got);
    }
    reel_tensor_free(&tx);
    reel_tensor_free(&to);
    reel_backend_destroy(&b);
  }
  free(want);
  free(x);
}

static void test_option_errors(void **state) {
  (void)state;
  reel_backend *b = reel_backend_new_cpu(1, NULL);
  assert_non_null(b);
  reel_error err = {0};
  assert_int_equal(reel_backend_set_option(b, "activations", "sse9", &err), REEL_EINVAL);
  assert_string_equal(err.field, "activations");
  assert_int_equal(reel_backend_set_option(b, "activations", "portable", &err), REEL_OK);
  assert_int_equal(reel_backend_set_option(b, "activations", "auto", &err), REEL_OK);
  reel_backend_destroy(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_avx512),
      cmocka_unit_test(test_avx2),
      cmocka_unit_test(test_auto_values),
      cmocka_unit_test(test_softmax_paths),
      cmocka_unit_test(test_option_errors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
