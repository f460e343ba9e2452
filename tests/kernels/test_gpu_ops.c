/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CUDA backend ops against the CPU backend's ops (ctest label gpu): same inputs,
 * normalised mean squared error under a per-op bound. Exits with 77 (ctest's
 * SKIP_RETURN_CODE) when reel was built without CUDA or no device is present.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kref.h"
#include "testutil.h"

typedef struct gpu_fixture {
  reel_backend *cpu, *gpu;
} gpu_fixture;

static gpu_fixture fx;

/* Uploads the same host data to both backends. */
static void pair(reel_dtype dt, int ndim, const int64_t *shape, float *data, reel_tensor *c, reel_tensor *g) {
  *c = kr_tensor(fx.cpu, dt, ndim, shape, data);
  *g = kr_tensor(fx.gpu, dt, ndim, shape, data); /* data is already rounded to dt: the same values go up */
}

static void out_pair(reel_dtype dt, int ndim, const int64_t *shape, reel_tensor *c, reel_tensor *g) {
  assert_int_equal(reel_tensor_new(fx.cpu, dt, ndim, shape, c, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(fx.gpu, dt, ndim, shape, g, NULL), REEL_OK);
}

static void compare(const char *what, const reel_tensor *c, const reel_tensor *g, double bound) {
  assert_int_equal(reel_backend_synchronize(fx.gpu, NULL), REEL_OK);
  float *a = kr_download(fx.cpu, c), *b = kr_download(fx.gpu, g);
  size_t n = (size_t)reel_tensor_numel(c);
  double e = kr_nmse(a, b, n);
  printf("# %-40s nmse %.3e (bound %.1e) path %s\n", what, e, bound, reel_backend_last_path(fx.gpu));
  if (!(e <= bound)) fail_msg("%s: nmse %.3e above %.1e", what, e, bound);
  free(a);
  free(b);
}

static void free_pair(reel_tensor *c, reel_tensor *g) {
  reel_tensor_free(c);
  reel_tensor_free(g);
}

static void test_gpu_matmul(void **state) {
  (void)state;
  static const int64_t shapes[][3] = {{1, 7, 33}, {33, 17, 7}, {64, 96, 128}, {130, 257, 300}};
  const reel_dtype wdts[3] = {REEL_F32, REEL_F16, REEL_BF16};
  for (size_t s = 0; s < 4; s++)
    for (int d = 0; d < 3; d++) {
      int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
      float *x = malloc((size_t)(M * K) * 4), *w = malloc((size_t)(N * K) * 4), *bias = malloc((size_t)N * 4);
      kr_fill(x, (size_t)(M * K), 1, -1, 1);
      kr_fill(w, (size_t)(N * K), 2, -1, 1);
      kr_fill(bias, (size_t)N, 3, -1, 1);
      int64_t sx[2] = {M, K}, sw[2] = {N, K}, sb[1] = {N}, so[2] = {M, N};
      reel_tensor cx, gx, cw, gw, cb, gb, co, go;
      pair(REEL_F32, 2, sx, x, &cx, &gx);
      pair(wdts[d], 2, sw, w, &cw, &gw);
      pair(REEL_F32, 1, sb, bias, &cb, &gb);
      out_pair(REEL_F32, 2, so, &co, &go);
      reel_error err;
      reel_error_clear(&err);
      assert_int_equal(reel_op_matmul(fx.cpu, &cx, &cw, &cb, &co, &err), REEL_OK);
      assert_int_equal(reel_op_matmul(fx.gpu, &gx, &gw, &gb, &go, &err), REEL_OK);
      char what[64];
      snprintf(what, sizeof what, "matmul %lldx%lldx%lld w=%s", (long long)M, (long long)N, (long long)K,
               reel_dtype_name(wdts[d]));
      /* f16/bf16 weights: the GPU also rounds x to that dtype for the tensor cores. */
      compare(what, &co, &go, wdts[d] == REEL_F32 ? 1e-9 : wdts[d] == REEL_F16 ? 1e-5 : 1e-4);
      free_pair(&cx, &gx);
      free_pair(&cw, &gw);
      free_pair(&cb, &gb);
      free_pair(&co, &go);
      free(x);
      free(w);
      free(bias);
    }
}

static void test_gpu_matmul_batched(void **state) {
  (void)state;
  const int64_t B = 2, T = 33, S = 17, H = 3, D = 16;
  float *q = malloc(B * T * H * D * 4), *k = malloc(B * S * H * D * 4);
  kr_fill(q, B * T * H * D, 4, -1, 1);
  kr_fill(k, B * S * H * D, 5, -1, 1);
  int64_t sq[4] = {B, T, H, D}, sk[4] = {B, S, H, D}, ss[4] = {B, H, T, S};
  reel_tensor cq, gq, ck, gk, cs, gs, cqv, gqv, ckv, gkv;
  pair(REEL_F32, 4, sq, q, &cq, &gq);
  pair(REEL_F32, 4, sk, k, &ck, &gk);
  out_pair(REEL_F32, 4, ss, &cs, &gs);
  int perm[4] = {0, 2, 1, 3};
  reel_tensor_permute(&cq, perm, &cqv, NULL);
  reel_tensor_permute(&gq, perm, &gqv, NULL);
  reel_tensor_permute(&ck, perm, &ckv, NULL);
  reel_tensor_permute(&gk, perm, &gkv, NULL);
  reel_error err;
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul_batched(fx.cpu, &cqv, &ckv, 1, 0.25f, &cs, &err), REEL_OK);
  assert_int_equal(reel_op_matmul_batched(fx.gpu, &gqv, &gkv, 1, 0.25f, &gs, &err), REEL_OK);
  compare("matmul_batched q k^T", &cs, &gs, 1e-9);
  free_pair(&cq, &gq);
  free_pair(&ck, &gk);
  free_pair(&cs, &gs);
  free(q);
  free(k);
}

static void test_gpu_elementwise(void **state) {
  (void)state;
  const reel_dtype dts[3] = {REEL_F32, REEL_F16, REEL_BF16};
  for (int d = 0; d < 3; d++) {
    int64_t sx[3] = {2, 33, 70}, sy[2] = {1, 70};
    float *x = malloc(2 * 33 * 70 * 4), y[70];
    kr_fill(x, 2 * 33 * 70, 6, -4, 4);
    kr_fill(y, 70, 7, -2, 2);
    reel_tensor cx, gx, cy, gy, co, go;
    pair(dts[d], 3, sx, x, &cx, &gx);
    pair(REEL_F32, 2, sy, y, &cy, &gy);
    out_pair(dts[d], 3, sx, &co, &go);
    double bound = dts[d] == REEL_F32 ? 1e-12 : 1e-5;
    char what[64];
    assert_int_equal(reel_op_add(fx.cpu, &cx, &cy, &co, NULL), REEL_OK);
    assert_int_equal(reel_op_add(fx.gpu, &gx, &gy, &go, NULL), REEL_OK);
    snprintf(what, sizeof what, "add %s", reel_dtype_name(dts[d]));
    compare(what, &co, &go, bound);
    assert_int_equal(reel_op_mul(fx.cpu, &cx, &cy, &co, NULL), REEL_OK);
    assert_int_equal(reel_op_mul(fx.gpu, &gx, &gy, &go, NULL), REEL_OK);
    snprintf(what, sizeof what, "mul %s", reel_dtype_name(dts[d]));
    compare(what, &co, &go, bound);
    assert_int_equal(reel_op_silu(fx.cpu, &cx, &co, NULL), REEL_OK);
    assert_int_equal(reel_op_silu(fx.gpu, &gx, &go, NULL), REEL_OK);
    snprintf(what, sizeof what, "silu %s", reel_dtype_name(dts[d]));
    compare(what, &co, &go, dts[d] == REEL_F32 ? 1e-11 : 1e-5);
    assert_int_equal(reel_op_gelu_tanh(fx.cpu, &cx, &co, NULL), REEL_OK);
    assert_int_equal(reel_op_gelu_tanh(fx.gpu, &gx, &go, NULL), REEL_OK);
    snprintf(what, sizeof what, "gelu_tanh %s", reel_dtype_name(dts[d]));
    compare(what, &co, &go, dts[d] == REEL_F32 ? 1e-11 : 1e-5);
    /* Copy of a permuted view with a dtype change. */
    int perm[3] = {2, 0, 1};
    int64_t sp[3] = {70, 2, 33};
    reel_tensor cxv, gxv, cc, gc;
    reel_tensor_permute(&cx, perm, &cxv, NULL);
    reel_tensor_permute(&gx, perm, &gxv, NULL);
    out_pair(REEL_F32, 3, sp, &cc, &gc);
    assert_int_equal(reel_op_copy(fx.cpu, &cxv, &cc, NULL), REEL_OK);
    assert_int_equal(reel_op_copy(fx.gpu, &gxv, &gc, NULL), REEL_OK);
    snprintf(what, sizeof what, "copy %s->f32 permuted", reel_dtype_name(dts[d]));
    compare(what, &cc, &gc, 0.0);
    free_pair(&cc, &gc);
    free_pair(&cx, &gx);
    free_pair(&cy, &gy);
    free_pair(&co, &go);
    free(x);
  }
}

static void test_gpu_rows(void **state) {
  (void)state;
  const reel_dtype dts[3] = {REEL_F32, REEL_F16, REEL_BF16};
  static const int64_t shapes[][2] = {{1, 1}, {7, 33}, {64, 1536}, {3, 5000}};
  for (int d = 0; d < 3; d++)
    for (int s = 0; s < 4; s++) {
      int64_t R = shapes[s][0], D = shapes[s][1];
      float *x = malloc((size_t)(R * D) * 4), *w = malloc((size_t)D * 4), *bb = malloc((size_t)D * 4);
      kr_fill(x, (size_t)(R * D), 8, -4, 4);
      kr_fill(w, (size_t)D, 9, 0.5f, 1.5f);
      kr_fill(bb, (size_t)D, 10, -1, 1);
      int64_t sx[2] = {R, D}, sd[1] = {D};
      reel_tensor cx, gx, cw, gw, cb, gb, co, go;
      pair(dts[d], 2, sx, x, &cx, &gx);
      pair(REEL_F32, 1, sd, w, &cw, &gw);
      pair(REEL_F32, 1, sd, bb, &cb, &gb);
      out_pair(dts[d], 2, sx, &co, &go);
      double bound = dts[d] == REEL_F32 ? 1e-10 : 1e-5;
      char what[64];
      assert_int_equal(reel_op_softmax(fx.cpu, &cx, &co, NULL), REEL_OK);
      assert_int_equal(reel_op_softmax(fx.gpu, &gx, &go, NULL), REEL_OK);
      snprintf(what, sizeof what, "softmax %lldx%lld %s", (long long)R, (long long)D, reel_dtype_name(dts[d]));
      compare(what, &co, &go, bound);
      assert_int_equal(reel_op_layer_norm(fx.cpu, &cx, &cw, &cb, 1e-6f, &co, NULL), REEL_OK);
      assert_int_equal(reel_op_layer_norm(fx.gpu, &gx, &gw, &gb, 1e-6f, &go, NULL), REEL_OK);
      snprintf(what, sizeof what, "layer_norm %lldx%lld %s", (long long)R, (long long)D, reel_dtype_name(dts[d]));
      compare(what, &co, &go, bound);
      assert_int_equal(reel_op_rms_norm(fx.cpu, &cx, &cw, 1e-6f, &co, NULL), REEL_OK);
      assert_int_equal(reel_op_rms_norm(fx.gpu, &gx, &gw, 1e-6f, &go, NULL), REEL_OK);
      snprintf(what, sizeof what, "rms_norm %lldx%lld %s", (long long)R, (long long)D, reel_dtype_name(dts[d]));
      compare(what, &co, &go, bound);
      free_pair(&cx, &gx);
      free_pair(&cw, &gw);
      free_pair(&cb, &gb);
      free_pair(&co, &go);
      free(x);
      free(w);
      free(bb);
    }
}

static void test_gpu_buffers(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  reel_buffer *a = NULL, *b = NULL;
  assert_int_equal(reel_buffer_new(fx.gpu, 1000, &a, &err), REEL_OK);
  assert_int_equal(reel_buffer_new(fx.gpu, 1000, &b, &err), REEL_OK);
  assert_null(reel_buffer_host_ptr(a));
  uint8_t in[1000], out[1000];
  for (int i = 0; i < 1000; i++) in[i] = (uint8_t)(i * 7);
  assert_int_equal(reel_buffer_upload(a, 0, in, 1000, &err), REEL_OK);
  assert_int_equal(reel_buffer_memset(a, 100, 0x5a, 10, &err), REEL_OK);
  assert_int_equal(reel_buffer_copy(b, 0, a, 0, 1000, &err), REEL_OK);
  assert_int_equal(reel_buffer_download(b, 0, out, 1000, &err), REEL_OK);
  assert_int_equal(out[99], (uint8_t)(99 * 7));
  assert_int_equal(out[100], 0x5a);
  assert_int_equal(out[110], (uint8_t)(110 * 7));
  reel_buffer *w = NULL;
  reel_error_clear(&err);
  assert_int_equal(reel_buffer_wrap_host(fx.gpu, in, 1000, 1, &w, &err), REEL_EUNSUPPORTED);
  reel_buffer_destroy(&a);
  reel_buffer_destroy(&b);
}

int main(void) {
  reel_error err;
  reel_error_clear(&err);
  fx.gpu = reel_backend_new_cuda(0, &err);
  if (!fx.gpu) {
    char buf[700];
    printf("SKIP: no CUDA backend: %s\n", reel_error_format(&err, buf, sizeof buf));
    return 77;
  }
  fx.cpu = reel_backend_new_cpu(0, &err);
  if (!fx.cpu) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gpu_buffers),      cmocka_unit_test(test_gpu_matmul),
      cmocka_unit_test(test_gpu_matmul_batched), cmocka_unit_test(test_gpu_elementwise),
      cmocka_unit_test(test_gpu_rows),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  reel_backend_destroy(&fx.gpu);
  reel_backend_destroy(&fx.cpu);
  return rc;
}
