/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CPU backend ops against naive double-precision references: every op, the
 * float dtypes, odd shapes (1, 7, 33, non-multiples of the vector width), strided
 * and broadcast operands, every GEMM path this machine has, identical results
 * for 1 and 2 threads, buffers and the tensor arena, and the error paths
 * (operand named on shape mismatch, unsupported dtypes, foreign buffers,
 * read-only outputs, allocation failures).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kref.h"
#include "reel/alloc.h"
#include "testutil.h"

static const reel_dtype float_dtypes[3] = {REEL_F32, REEL_F16, REEL_BF16};

/* Relative precision of a dtype's storage (half an ulp). */
static double dtype_eps(reel_dtype dt) { return dt == REEL_F32 ? 0x1p-24 : dt == REEL_F16 ? 0x1p-11 : 0x1p-8; }

static reel_backend *cpu(int threads) {
  reel_error err;
  reel_error_clear(&err);
  reel_backend *b = reel_backend_new_cpu(threads, &err);
  assert_non_null(b);
  return b;
}

/* ---- Backend and buffers ---- */

static void test_backend_basics(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  assert_null(reel_backend_new_cpu(-1, &err));
  assert_int_equal(err.code, REEL_ERANGE);
  assert_string_equal(err.field, "threads");
  reel_backend *b = cpu(2);
  assert_string_equal(reel_backend_name(b), "cpu");
  assert_int_equal(reel_backend_get_kind(b), REEL_BACKEND_CPU);
  assert_int_equal(reel_backend_threads(b), 2);
  assert_string_equal(reel_backend_last_path(b), "");
  reel_error_clear(&err);
  assert_int_equal(reel_backend_set_option(b, "nope", "x", &err), REEL_ENOTFOUND);
  reel_error_clear(&err);
  assert_int_equal(reel_backend_set_option(b, "matmul", "fastest", &err), REEL_EINVAL);
  assert_string_equal(err.field, "matmul");
  assert_int_equal(reel_backend_set_option(b, "matmul", "portable", NULL), REEL_OK);
  assert_int_equal(reel_backend_synchronize(b, NULL), REEL_OK);
  reel_backend_destroy(&b);
  assert_null(b);
  reel_backend_destroy(&b);
  reel_backend *z = cpu(0);
  assert_true(reel_backend_threads(z) >= 1);
  reel_backend_destroy(&z);
  /* Without a CUDA build (or a device) the CUDA constructor fails cleanly. */
  reel_error_clear(&err);
  reel_backend *g = reel_backend_new_cuda(0, &err);
  if (!g) assert_int_equal(err.code, REEL_ENODEVICE);
  reel_backend_destroy(&g);
}

static void test_buffers(void **state) {
  (void)state;
  reel_backend *b = cpu(1);
  reel_error err;
  reel_error_clear(&err);
  reel_buffer *buf = NULL, *buf2 = NULL;
  assert_int_equal(reel_buffer_new(b, 64, &buf, &err), REEL_OK);
  assert_int_equal(reel_buffer_size(buf), 64);
  assert_ptr_equal(reel_buffer_backend(buf), b);
  assert_non_null(reel_buffer_host_ptr(buf));
  uint8_t in[64], out[64];
  for (int i = 0; i < 64; i++) in[i] = (uint8_t)i;
  assert_int_equal(reel_buffer_upload(buf, 0, in, 64, &err), REEL_OK);
  assert_int_equal(reel_buffer_memset(buf, 8, 0xab, 8, &err), REEL_OK);
  assert_int_equal(reel_buffer_download(buf, 0, out, 64, &err), REEL_OK);
  assert_int_equal(out[7], 7);
  assert_int_equal(out[8], 0xab);
  assert_int_equal(out[16], 16);
  assert_int_equal(reel_buffer_new(b, 32, &buf2, &err), REEL_OK);
  assert_int_equal(reel_buffer_copy(buf2, 0, buf, 16, 32, &err), REEL_OK);
  assert_int_equal(reel_buffer_download(buf2, 0, out, 32, &err), REEL_OK);
  assert_int_equal(out[0], 16);
  assert_int_equal(out[31], 47);
  /* Out of range. */
  reel_error_clear(&err);
  assert_int_equal(reel_buffer_upload(buf, 60, in, 8, &err), REEL_ERANGE);
  assert_string_equal(err.field, "dst");
  reel_error_clear(&err);
  assert_int_equal(reel_buffer_download(buf, 65, out, 0, &err), REEL_ERANGE);
  reel_error_clear(&err);
  assert_int_equal(reel_buffer_copy(buf2, 0, buf, 40, 32, &err), REEL_ERANGE);
  assert_string_equal(err.field, "src");
  reel_error_clear(&err);
  assert_int_equal(reel_buffer_memset(buf, 0, 256, 1, &err), REEL_ERANGE);
  /* Wrapped host memory: no copy, read-only refuses writes. */
  float host[4] = {1, 2, 3, 4};
  reel_buffer *w = NULL;
  assert_int_equal(reel_buffer_wrap_host(b, host, sizeof host, 1, &w, &err), REEL_OK);
  assert_ptr_equal(reel_buffer_host_ptr(w), host);
  reel_error_clear(&err);
  assert_int_equal(reel_buffer_memset(w, 0, 0, 4, &err), REEL_EINVAL);
  assert_non_null(strstr(err.msg, "read-only"));
  reel_buffer_destroy(&w);
  assert_null(w);
  assert_true(host[0] == 1.0f);
  reel_buffer_destroy(&buf);
  reel_buffer_destroy(&buf2);
  reel_buffer_destroy(&buf2);
  reel_backend_destroy(&b);
}

static void test_tensor_arena(void **state) {
  (void)state;
  reel_backend *b = cpu(1);
  reel_error err;
  reel_error_clear(&err);
  reel_tensor_arena *a = reel_tensor_arena_new(b, 1024, &err);
  assert_non_null(a);
  reel_tensor t1, t2, t3;
  int64_t s1[2] = {3, 5};
  assert_int_equal(reel_tensor_arena_alloc(a, REEL_F32, 2, s1, &t1, &err), REEL_OK);
  assert_int_equal(t1.offset, 0);
  assert_int_equal(reel_tensor_arena_used(a), 60);
  size_t mark = reel_tensor_arena_used(a);
  assert_int_equal(reel_tensor_arena_alloc(a, REEL_BF16, 2, s1, &t2, &err), REEL_OK);
  assert_int_equal(t2.offset, 64);
  int64_t big[1] = {300};
  assert_int_equal(reel_tensor_arena_alloc(a, REEL_F32, 1, big, &t3, &err), REEL_ELIMIT);
  assert_string_equal(err.field, "arena");
  assert_non_null(strstr(err.msg, "1024"));
  reel_tensor_arena_release(a, mark);
  assert_int_equal(reel_tensor_arena_used(a), 60);
  assert_int_equal(reel_tensor_arena_peak(a), 94);
  reel_tensor_arena_reset(a);
  assert_int_equal(reel_tensor_arena_used(a), 0);
  assert_int_equal(reel_tensor_arena_capacity(a), 1024);
  /* Arena tensors work as op operands. */
  float x[15];
  kr_fill(x, 15, 1, -1, 1);
  assert_int_equal(reel_tensor_arena_alloc(a, REEL_F32, 2, s1, &t1, &err), REEL_OK);
  assert_int_equal(reel_tensor_upload(&t1, x, sizeof x, &err), REEL_OK);
  assert_int_equal(reel_tensor_arena_alloc(a, REEL_F32, 2, s1, &t2, &err), REEL_OK);
  assert_int_equal(reel_op_silu(b, &t1, &t2, &err), REEL_OK);
  float y[15];
  assert_int_equal(reel_tensor_download(&t2, y, sizeof y, &err), REEL_OK);
  for (int i = 0; i < 15; i++) assert_float_equal(y[i], ref_silu(x[i]), 1e-6);
  reel_tensor_arena_destroy(&a);
  assert_null(a);
  reel_backend_destroy(&b);
}

/* ---- Matmul ---- */

/* Checks out (M x N) against the reference with a bound scaled by the magnitude of each dot product. */
static void check_matmul(const float *got, int64_t M, int64_t N, int64_t K, const float *a, const float *w,
                         const float *bias, float alpha, const char *what) {
  size_t n = (size_t)(M * N);
  float *ref = malloc(n * sizeof *ref), *mag = malloc(n * sizeof *mag);
  ref_matmul(M, N, K, a, w, bias, alpha, ref);
  ref_matmul_mag(M, N, K, a, w, mag);
  for (size_t i = 0; i < n; i++) {
    double bound = 1e-6 * (double)mag[i] * fabs(alpha) * (1.0 + sqrt((double)K)) + 1e-6 * fabs(ref[i]) + 1e-30;
    if (!(fabs((double)got[i] - ref[i]) <= bound))
      fail_msg("%s: M=%lld N=%lld K=%lld element %zu: got %.9g want %.9g (bound %.3g)", what, (long long)M,
               (long long)N, (long long)K, i, got[i], ref[i], bound);
  }
  free(ref);
  free(mag);
}

static const char *paths[] = {"auto", "portable", "avx2", "avx512", "openblas"};

static void run_matmul_case(reel_backend *b, int64_t M, int64_t N, int64_t K, reel_dtype wdt, reel_dtype bdt,
                            int with_bias, const char *path) {
  reel_error err;
  reel_error_clear(&err);
  float *x = malloc((size_t)(M * K) * sizeof *x), *w = malloc((size_t)(N * K) * sizeof *w), bias[512];
  kr_fill(x, (size_t)(M * K), (uint32_t)(M * 7 + K), -1, 1);
  kr_fill(w, (size_t)(N * K), (uint32_t)(N * 13 + K), -1, 1);
  kr_fill(bias, (size_t)N, 99, -2, 2);
  /* x as [2, M/2, K] when M is even, to exercise leading dims. */
  int64_t xs3[3] = {2, M / 2, K}, xs2[2] = {M, K}, ws[2] = {N, K}, bs[1] = {N}, os3[3] = {2, M / 2, N}, os2[2] = {M, N};
  int three = M % 2 == 0;
  reel_tensor tx = kr_tensor(b, REEL_F32, three ? 3 : 2, three ? xs3 : xs2, x);
  reel_tensor tw = kr_tensor(b, wdt, 2, ws, w);
  reel_tensor tb = kr_tensor(b, bdt, 1, bs, bias);
  reel_tensor to;
  assert_int_equal(reel_tensor_new(b, REEL_F32, three ? 3 : 2, three ? os3 : os2, &to, &err), REEL_OK);
  assert_int_equal(reel_op_matmul(b, &tx, &tw, with_bias ? &tb : NULL, &to, &err), REEL_OK);
  if (strcmp(path, "auto") != 0 && M > 3) assert_non_null(strstr(reel_backend_last_path(b), path));
  if (M <= 3 && strcmp(path, "openblas") != 0) assert_non_null(strstr(reel_backend_last_path(b), "dot"));
  float *got = kr_download(b, &to);
  char what[128];
  snprintf(what, sizeof what, "matmul path=%s (%s) w=%s bias=%s", path, reel_backend_last_path(b),
           reel_dtype_name(wdt), with_bias ? reel_dtype_name(bdt) : "none");
  check_matmul(got, M, N, K, x, w, with_bias ? bias : NULL, 1.0f, what);
  free(got);
  free(x);
  free(w);
  reel_tensor_free(&tx);
  reel_tensor_free(&tw);
  reel_tensor_free(&tb);
  reel_tensor_free(&to);
}

static void test_matmul_paths(void **state) {
  (void)state;
  static const int64_t shapes[][3] = {{1, 1, 1},  {2, 5, 3},   {7, 33, 17}, {33, 7, 5},  {4, 64, 300},
                                      {13, 40, 257}, {64, 70, 64}, {26, 33, 600}, {3, 100, 40},
                                      {200, 45, 520}, {150, 300, 64}};
  reel_backend *b = cpu(2);
  for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
    if (reel_backend_set_option(b, "matmul", paths[p], NULL) != REEL_OK) continue; /* not on this machine/build */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int d = 0; d < 3; d++)
        run_matmul_case(b, shapes[s][0], shapes[s][1], shapes[s][2], float_dtypes[d], float_dtypes[(d + s) % 3],
                        (int)((s + d) % 2), paths[p]);
  }
  reel_backend_destroy(&b);
}

/* Strided x rows (a slice of wider rows) and out rows (a slice of a wider output). */
static void test_matmul_strided_rows(void **state) {
  (void)state;
  reel_backend *b = cpu(2);
  reel_error err;
  reel_error_clear(&err);
  const int64_t M = 9, K = 20, N = 11, KW = 32, NW = 16;
  float xw[9 * 32], w[11 * 20], x[9 * 20];
  kr_fill(xw, sizeof xw / 4, 5, -1, 1);
  kr_fill(w, sizeof w / 4, 6, -1, 1);
  int64_t sxw[2] = {M, KW}, sw[2] = {N, K}, sow[2] = {M, NW};
  reel_tensor txw = kr_tensor(b, REEL_F32, 2, sxw, xw), tw = kr_tensor(b, REEL_F32, 2, sw, w), tow, tx, to;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, sow, &tow, &err), REEL_OK);
  assert_int_equal(reel_buffer_memset(tow.buf, 0, 0, reel_tensor_nbytes(&tow), &err), REEL_OK);
  assert_int_equal(reel_tensor_slice(&txw, 1, 3, K, &tx, &err), REEL_OK);
  assert_int_equal(reel_tensor_slice(&tow, 1, 2, N, &to, &err), REEL_OK);
  for (int64_t m = 0; m < M; m++)
    for (int64_t k = 0; k < K; k++) x[m * K + k] = xw[m * KW + 3 + k];
  for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
    if (reel_backend_set_option(b, "matmul", paths[p], NULL) != REEL_OK) continue;
    assert_int_equal(reel_op_matmul(b, &tx, &tw, NULL, &to, &err), REEL_OK);
    float *all = kr_download(b, &tow);
    float got[9 * 11];
    for (int64_t m = 0; m < M; m++) {
      for (int64_t n = 0; n < N; n++) got[m * N + n] = all[m * NW + 2 + n];
      assert_true(all[m * NW + 0] == 0.0f && all[m * NW + 1] == 0.0f && all[m * NW + 13] == 0.0f);
    }
    check_matmul(got, M, N, K, x, w, NULL, 1.0f, paths[p]);
    free(all);
  }
  reel_tensor_free(&txw);
  reel_tensor_free(&tw);
  reel_tensor_free(&tow);
  reel_backend_destroy(&b);
}

/* Same inputs, 1 and 2 threads: bit-identical output for every GEMM path of ours. */
static void test_matmul_thread_invariance(void **state) {
  (void)state;
  const char *ours[] = {"portable", "avx2", "avx512"};
  const int64_t M = 170, N = 90, K = 300; /* enough rows for the shared-B strategy */
  float *x = malloc(M * K * 4), *w = malloc(N * K * 4);
  kr_fill(x, M * K, 3, -1, 1);
  kr_fill(w, N * K, 4, -1, 1);
  for (size_t p = 0; p < 3; p++) {
    float *res[2];
    int ran = 0;
    for (int t = 0; t < 2; t++) {
      reel_backend *b = cpu(t + 1);
      if (reel_backend_set_option(b, "matmul", ours[p], NULL) != REEL_OK) {
        reel_backend_destroy(&b);
        break;
      }
      int64_t sx[2] = {M, K}, sw[2] = {N, K}, so[2] = {M, N};
      reel_tensor tx = kr_tensor(b, REEL_F32, 2, sx, x), tw = kr_tensor(b, REEL_BF16, 2, sw, w), to;
      assert_int_equal(reel_tensor_new(b, REEL_F32, 2, so, &to, NULL), REEL_OK);
      assert_int_equal(reel_op_matmul(b, &tx, &tw, NULL, &to, NULL), REEL_OK);
      res[t] = kr_download(b, &to);
      ran++;
      reel_tensor_free(&tx);
      reel_tensor_free(&tw);
      reel_tensor_free(&to);
      reel_backend_destroy(&b);
    }
    if (ran == 2) {
      assert_memory_equal(res[0], res[1], (size_t)(M * N) * sizeof(float));
      free(res[0]);
      free(res[1]);
    } else if (ran == 1) {
      free(res[0]);
    }
  }
  free(x);
  free(w);
}

/* Attention-like use: q [B,T,H,D] viewed as [B,H,T,D]; scores = q k^T * alpha; o = p v. */
static void test_matmul_batched(void **state) {
  (void)state;
  reel_error err;
  reel_error_clear(&err);
  const int64_t B = 2, T = 7, S = 9, H = 3, D = 5;
  for (size_t p = 0; p < sizeof paths / sizeof paths[0]; p++) {
    reel_backend *b = cpu(2);
    if (reel_backend_set_option(b, "matmul", paths[p], NULL) != REEL_OK) {
      reel_backend_destroy(&b);
      continue;
    }
    for (int di = 0; di < 3; di++) {
      reel_dtype kdt = float_dtypes[di];
      float q[2 * 7 * 3 * 5], k[2 * 9 * 3 * 5], v[1 * 3 * 9 * 5];
      kr_fill(q, sizeof q / 4, 11, -1, 1);
      kr_fill(k, sizeof k / 4, 12, -1, 1);
      kr_fill(v, sizeof v / 4, 13, -1, 1);
      int64_t sq[4] = {B, T, H, D}, sk[4] = {B, S, H, D}, sv[4] = {1, H, S, D}, ss[4] = {B, H, T, S},
              so[4] = {B, H, T, D};
      reel_tensor tq = kr_tensor(b, REEL_F32, 4, sq, q), tk = kr_tensor(b, kdt, 4, sk, k),
                  tv = kr_tensor(b, kdt, 4, sv, v), tsc, to, qv, kv;
      int perm[4] = {0, 2, 1, 3};
      assert_int_equal(reel_tensor_permute(&tq, perm, &qv, NULL), REEL_OK);
      assert_int_equal(reel_tensor_permute(&tk, perm, &kv, NULL), REEL_OK);
      assert_int_equal(reel_tensor_new(b, REEL_F32, 4, ss, &tsc, NULL), REEL_OK);
      assert_int_equal(reel_tensor_new(b, REEL_F32, 4, so, &to, NULL), REEL_OK);
      float alpha = 1.0f / sqrtf((float)D);
      assert_int_equal(reel_op_matmul_batched(b, &qv, &kv, 1, alpha, &tsc, &err), REEL_OK);
      float *sc = kr_download(b, &tsc);
      /* v is broadcast over the batch dim (shape 1) and not transposed. */
      assert_int_equal(reel_op_matmul_batched(b, &tsc, &tv, 0, 1.0f, &to, &err), REEL_OK);
      float *o = kr_download(b, &to);
      for (int64_t bi = 0; bi < B; bi++)
        for (int64_t h = 0; h < H; h++) {
          float qa[7 * 5], kb[9 * 5], vt[5 * 9];
          for (int64_t t = 0; t < T; t++)
            for (int64_t d = 0; d < D; d++) qa[t * D + d] = q[((bi * T + t) * H + h) * D + d];
          for (int64_t s = 0; s < S; s++)
            for (int64_t d = 0; d < D; d++) kb[s * D + d] = k[((bi * S + s) * H + h) * D + d];
          for (int64_t s = 0; s < S; s++)
            for (int64_t d = 0; d < D; d++) vt[d * S + s] = v[(h * S + s) * D + d];
          check_matmul(sc + (bi * H + h) * T * S, T, S, D, qa, kb, NULL, alpha, paths[p]);
          check_matmul(o + (bi * H + h) * T * D, T, D, S, sc + (bi * H + h) * T * S, vt, NULL, 1.0f, paths[p]);
        }
      free(sc);
      free(o);
      reel_tensor_free(&tq);
      reel_tensor_free(&tk);
      reel_tensor_free(&tv);
      reel_tensor_free(&tsc);
      reel_tensor_free(&to);
    }
    reel_backend_destroy(&b);
  }
}

static void test_matmul_errors(void **state) {
  (void)state;
  reel_backend *b = cpu(1), *b2 = cpu(1);
  reel_error err;
  int64_t sx[2] = {4, 8}, sw[2] = {6, 8}, swbad[2] = {6, 7}, so[2] = {4, 6}, sobad[2] = {4, 5}, sb[1] = {5};
  reel_tensor x, w, wbad, o, obad, bias, x2, xi8;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, sx, &x, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, sw, &w, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, swbad, &wbad, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, so, &o, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, sobad, &obad, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 1, sb, &bias, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b2, REEL_F32, 2, sx, &x2, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_I8, 2, sx, &xi8, NULL), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul(b, &x, &wbad, NULL, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "matmul.weight");
  assert_non_null(strstr(err.msg, "[6,7]"));
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul(b, &x, &w, NULL, &obad, &err), REEL_EINVAL);
  assert_string_equal(err.field, "matmul.out");
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul(b, &x, &w, &bias, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "matmul.bias");
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul(b, &x2, &w, NULL, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "matmul.x");
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul(b, &xi8, &w, NULL, &o, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "matmul.x");
  /* f16 activations: valid shapes, but the CPU matmul takes f32 x. */
  reel_tensor xh;
  assert_int_equal(reel_tensor_new(b, REEL_F16, 2, sx, &xh, NULL), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul(b, &xh, &w, NULL, &o, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "matmul.x");
  /* Weight with a non-unit stride along K (a transposed view). */
  reel_tensor wt;
  int64_t sq[2] = {8, 8};
  reel_tensor sqr;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, sq, &sqr, NULL), REEL_OK);
  assert_int_equal(reel_tensor_transpose(&sqr, 0, 1, &wt, NULL), REEL_OK);
  reel_tensor wts;
  assert_int_equal(reel_tensor_slice(&wt, 0, 0, 6, &wts, NULL), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul(b, &x, &wts, NULL, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "matmul.weight");
  /* A view that reaches past its buffer. */
  reel_tensor past = x;
  past.offset = 8;
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul(b, &past, &w, NULL, &o, &err), REEL_ERANGE);
  assert_string_equal(err.field, "matmul.x");
  /* Read-only output. */
  float host[24];
  reel_buffer *ro = NULL;
  assert_int_equal(reel_buffer_wrap_host(b, host, sizeof host, 1, &ro, NULL), REEL_OK);
  reel_tensor oro;
  assert_int_equal(reel_tensor_init(&oro, REEL_F32, 2, so, ro, 0, NULL), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul(b, &x, &w, NULL, &oro, &err), REEL_EINVAL);
  assert_string_equal(err.field, "matmul.out");
  reel_buffer_destroy(&ro);
  /* Batched: K mismatch and bad batch dims. */
  int64_t sa3[3] = {2, 4, 8}, sb3[3] = {3, 6, 8}, so3[3] = {2, 4, 6};
  reel_tensor a3, b3, o3;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 3, sa3, &a3, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 3, sb3, &b3, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 3, so3, &o3, NULL), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul_batched(b, &a3, &b3, 1, 1.0f, &o3, &err), REEL_EINVAL);
  assert_string_equal(err.field, "matmul_batched.b");
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul_batched(b, &a3, &b3, 0, 1.0f, &o3, &err), REEL_EINVAL);
  assert_string_equal(err.field, "matmul_batched.b");
  reel_error_clear(&err);
  assert_int_equal(reel_op_matmul_batched(b, &a3, &a3, 1, NAN, &o3, &err), REEL_EINVAL);
  assert_string_equal(err.field, "matmul_batched.alpha");
  reel_tensor_free(&a3);
  reel_tensor_free(&b3);
  reel_tensor_free(&o3);
  reel_tensor_free(&sqr);
  reel_tensor_free(&xh);
  reel_tensor_free(&x);
  reel_tensor_free(&w);
  reel_tensor_free(&wbad);
  reel_tensor_free(&o);
  reel_tensor_free(&obad);
  reel_tensor_free(&bias);
  reel_tensor_free(&x2);
  reel_tensor_free(&xi8);
  reel_backend_destroy(&b);
  reel_backend_destroy(&b2);
}

/* ---- Elementwise ---- */

static void run_binary_case(reel_backend *b, int op, int xn, const int64_t *xs, int yn, const int64_t *ys, reel_dtype xdt,
                            reel_dtype ydt, reel_dtype odt) {
  reel_error err;
  reel_error_clear(&err);
  int on = xn > yn ? xn : yn;
  int64_t os[REEL_MAX_DIMS];
  int64_t nx = 1, ny = 1, no = 1;
  for (int d = 0; d < xn; d++) nx *= xs[d];
  for (int d = 0; d < yn; d++) ny *= ys[d];
  for (int d = 0; d < on; d++) {
    int dx = d - (on - xn), dy = d - (on - yn);
    int64_t a = dx >= 0 ? xs[dx] : 1, c = dy >= 0 ? ys[dy] : 1;
    os[d] = a == 1 ? c : a;
    no *= os[d];
  }
  float *x = malloc((size_t)nx * 4), *y = malloc((size_t)ny * 4), *ref = malloc((size_t)no * 4);
  kr_fill(x, (size_t)nx, 21, -3, 3);
  kr_fill(y, (size_t)ny, 22, -3, 3);
  reel_tensor tx = kr_tensor(b, xdt, xn, xs, x), ty = kr_tensor(b, ydt, yn, ys, y), to;
  assert_int_equal(reel_tensor_new(b, odt, on, os, &to, NULL), REEL_OK);
  assert_int_equal(op == 0 ? reel_op_add(b, &tx, &ty, &to, &err) : reel_op_mul(b, &tx, &ty, &to, &err), REEL_OK);
  float *got = kr_download(b, &to);
  ref_binary(op, on, os, xn, xs, x, yn, ys, y, ref);
  size_t where = 0;
  double e = kr_rel_err(ref, got, (size_t)no, odt == REEL_F16 ? 0x1p-25 : 1e-30, dtype_eps(odt), &where);
  if (e > 1.0) fail_msg("binary op %d %s+%s->%s: element %zu got %g want %g", op, reel_dtype_name(xdt),
                        reel_dtype_name(ydt), reel_dtype_name(odt), where, got[where], ref[where]);
  free(x);
  free(y);
  free(ref);
  free(got);
  reel_tensor_free(&tx);
  reel_tensor_free(&ty);
  reel_tensor_free(&to);
}

static void test_binary_broadcast(void **state) {
  (void)state;
  reel_backend *b = cpu(2);
  static const struct {
    int xn;
    int64_t xs[4];
    int yn;
    int64_t ys[4];
  } cases[] = {
      {1, {1}, 1, {1}},
      {1, {33}, 1, {33}},
      {3, {2, 3, 5}, 1, {5}},
      {3, {2, 3, 5}, 2, {3, 1}},
      {2, {4, 1}, 2, {1, 7}},
      {3, {2, 1, 33}, 3, {1, 3, 1}},
      {1, {7}, 3, {2, 3, 7}},
      {4, {2, 3, 4, 5000}, 4, {2, 1, 4, 5000}}, /* rows longer than one parallel segment */
      {2, {64, 17}, 1, {1}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int op = 0; op < 2; op++)
      for (int d = 0; d < 3; d++)
        run_binary_case(b, op, cases[c].xn, cases[c].xs, cases[c].yn, cases[c].ys, float_dtypes[d],
                        float_dtypes[(d + c) % 3], float_dtypes[(d + op + c) % 3 == 0 ? 0 : (d + op) % 3]);
  reel_backend_destroy(&b);
}

/* add on strided views: a permuted x, a sliced y, and in place (out is x). */
static void test_binary_strided_inplace(void **state) {
  (void)state;
  reel_backend *b = cpu(2);
  reel_error err;
  reel_error_clear(&err);
  float x[3 * 4 * 5], y[4 * 8], ref[60], xl[60], yl[20];
  kr_fill(x, 60, 31, -1, 1);
  kr_fill(y, 32, 32, -1, 1);
  int64_t sx[3] = {3, 4, 5}, sy[2] = {4, 8};
  reel_tensor tx = kr_tensor(b, REEL_F32, 3, sx, x), ty = kr_tensor(b, REEL_F32, 2, sy, y), xv, yv;
  int perm[3] = {2, 0, 1}; /* [5, 3, 4] */
  assert_int_equal(reel_tensor_permute(&tx, perm, &xv, NULL), REEL_OK);
  assert_int_equal(reel_tensor_slice(&ty, 1, 2, 4, &yv, NULL), REEL_OK); /* [4, 4] stride 8 */
  reel_tensor yv1;
  int64_t s14[2] = {1, 4};
  (void)s14;
  /* broadcast y [4,4] against x view [5,3,4]: needs y [.., 4] -> use one row of y */
  assert_int_equal(reel_tensor_slice(&yv, 0, 1, 1, &yv1, NULL), REEL_OK); /* [1, 4] */
  kr_gather(&xv, x, xl);
  kr_gather(&yv1, y, yl);
  int64_t os[3] = {5, 3, 4}, ys[2] = {1, 4};
  ref_binary(0, 3, os, 3, os, xl, 2, ys, yl, ref);
  assert_int_equal(reel_op_add(b, &xv, &yv1, &xv, &err), REEL_OK);
  float *got = kr_download(b, &xv);
  assert_memory_equal(got, ref, sizeof ref);
  free(got);
  reel_tensor_free(&tx);
  reel_tensor_free(&ty);
  reel_backend_destroy(&b);
}

static void test_unary(void **state) {
  (void)state;
  reel_backend *b = cpu(2);
  static const int64_t lens[] = {1, 7, 33, 1000, 20001};
  for (int op = 0; op < 2; op++)
    for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++)
      for (int di = 0; di < 3; di++)
        for (int dout = 0; dout < 3; dout++) {
          int64_t n = lens[l];
          float *x = malloc((size_t)n * 4);
          kr_fill(x, (size_t)n, (uint32_t)(n + op), -8, 8);
          int64_t s[1] = {n};
          reel_tensor tx = kr_tensor(b, float_dtypes[di], 1, s, x), to;
          assert_int_equal(reel_tensor_new(b, float_dtypes[dout], 1, s, &to, NULL), REEL_OK);
          assert_int_equal(op == 0 ? reel_op_silu(b, &tx, &to, NULL) : reel_op_gelu_tanh(b, &tx, &to, NULL), REEL_OK);
          float *got = kr_download(b, &to);
          for (int64_t i = 0; i < n; i++) {
            float r = op == 0 ? ref_silu(x[i]) : ref_gelu_tanh(x[i]);
            double tol = 4e-6 + 2 * dtype_eps(float_dtypes[dout]) * fabs(r);
            if (!(fabs(got[i] - r) <= tol)) fail_msg("unary %d x=%g got %g want %g", op, x[i], got[i], r);
          }
          free(got);
          free(x);
          reel_tensor_free(&tx);
          reel_tensor_free(&to);
        }
  reel_backend_destroy(&b);
}

/* ---- Row ops ---- */

typedef enum { R_SOFTMAX, R_LN, R_RMS } row_op;

static void run_row_case(reel_backend *b, row_op op, int64_t rows, int64_t D, reel_dtype xdt, reel_dtype odt,
                         reel_dtype wdt, int with_w, int with_b, int permuted) {
  reel_error err;
  reel_error_clear(&err);
  float *x = malloc((size_t)(rows * D) * 4), *w = malloc((size_t)D * 4), *bb = malloc((size_t)D * 4);
  float *xl = malloc((size_t)(rows * D) * 4), *ref = malloc((size_t)(rows * D) * 4);
  kr_fill(x, (size_t)(rows * D), (uint32_t)(rows * 3 + D), -4, 4);
  kr_fill(w, (size_t)D, 7, 0.5f, 1.5f);
  kr_fill(bb, (size_t)D, 8, -1, 1);
  reel_tensor tx, xv, to, tw, tb;
  if (permuted) {
    /* Physical [D, rows]; the logical [rows, D] view has stride rows along the normalised dim. */
    int64_t ps[2] = {D, rows};
    tx = kr_tensor(b, xdt, 2, ps, x);
    assert_int_equal(reel_tensor_transpose(&tx, 0, 1, &xv, NULL), REEL_OK);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t i = 0; i < D; i++) xl[r * D + i] = x[i * rows + r];
  } else {
    int64_t ls[2] = {rows, D};
    tx = kr_tensor(b, xdt, 2, ls, x);
    xv = tx;
    memcpy(xl, x, (size_t)(rows * D) * 4);
  }
  int64_t os[2] = {rows, D}, ds[1] = {D};
  assert_int_equal(reel_tensor_new(b, odt, 2, os, &to, NULL), REEL_OK);
  tw = kr_tensor(b, wdt, 1, ds, w);
  tb = kr_tensor(b, wdt, 1, ds, bb);
  const float eps = 1e-5f;
  reel_status st;
  if (op == R_SOFTMAX) {
    st = reel_op_softmax(b, &xv, &to, &err);
    ref_softmax(rows, D, xl, ref);
  } else if (op == R_LN) {
    st = reel_op_layer_norm(b, &xv, with_w ? &tw : NULL, with_b ? &tb : NULL, eps, &to, &err);
    ref_layer_norm(rows, D, xl, with_w ? w : NULL, with_b ? bb : NULL, eps, ref);
  } else {
    st = reel_op_rms_norm(b, &xv, with_w ? &tw : NULL, eps, &to, &err);
    ref_rms_norm(rows, D, xl, with_w ? w : NULL, eps, ref);
  }
  assert_int_equal(st, REEL_OK);
  float *got = kr_download(b, &to);
  size_t where = 0;
  double e = kr_rel_err(ref, got, (size_t)(rows * D), 2e-6 * (op == R_SOFTMAX ? 0.1 : 1.0), 2 * dtype_eps(odt) + 2e-6, &where);
  if (e > 1.0)
    fail_msg("row op %d rows=%lld D=%lld x=%s out=%s: element %zu got %.8g want %.8g", op, (long long)rows, (long long)D,
             reel_dtype_name(xdt), reel_dtype_name(odt), where, got[where], ref[where]);
  free(got);
  free(x);
  free(w);
  free(bb);
  free(xl);
  free(ref);
  reel_tensor_free(&tx);
  reel_tensor_free(&to);
  reel_tensor_free(&tw);
  reel_tensor_free(&tb);
}

static void test_row_ops(void **state) {
  (void)state;
  reel_backend *b = cpu(2);
  static const int64_t shapes[][2] = {{1, 1}, {1, 7}, {3, 33}, {5, 17}, {2, 1000}, {40, 64}};
  for (int op = 0; op < 3; op++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      for (int d = 0; d < 3; d++)
        for (int perm = 0; perm < 2; perm++)
          run_row_case(b, (row_op)op, shapes[s][0], shapes[s][1], float_dtypes[d], float_dtypes[(d + perm) % 3],
                       float_dtypes[(d + s) % 3], (int)((s + perm) % 2), (int)(s % 3 != 1), perm);
  reel_backend_destroy(&b);
}

/* In place: out is the same view as x. */
static void test_row_ops_inplace(void **state) {
  (void)state;
  reel_backend *b = cpu(2);
  float x[6 * 10], ref[60];
  kr_fill(x, 60, 41, -3, 3);
  int64_t s[2] = {6, 10};
  reel_tensor t = kr_tensor(b, REEL_F32, 2, s, x);
  assert_int_equal(reel_op_softmax(b, &t, &t, NULL), REEL_OK);
  ref_softmax(6, 10, x, ref);
  float *got = kr_download(b, &t);
  assert_true(kr_rel_err(ref, got, 60, 1e-7, 1e-5, NULL) <= 1.0);
  free(got);
  reel_tensor_free(&t);
  reel_backend_destroy(&b);
}

/* Elementwise and row ops give bit-identical results for 1 and 2 threads. */
static void test_thread_invariance(void **state) {
  (void)state;
  const int64_t R = 300, D = 257;
  float *x = malloc(R * D * 4), *y = malloc(D * 4), *w = malloc(D * 4);
  kr_fill(x, R * D, 51, -5, 5);
  kr_fill(y, D, 52, -1, 1);
  kr_fill(w, D, 53, 0, 2);
  float *res[2][6];
  for (int t = 0; t < 2; t++) {
    reel_backend *b = cpu(t + 1);
    int64_t s[2] = {R, D}, sd[1] = {D};
    reel_tensor tx = kr_tensor(b, REEL_F32, 2, s, x), ty = kr_tensor(b, REEL_F32, 1, sd, y),
                tw = kr_tensor(b, REEL_BF16, 1, sd, w), to;
    assert_int_equal(reel_tensor_new(b, REEL_F32, 2, s, &to, NULL), REEL_OK);
    assert_int_equal(reel_op_add(b, &tx, &ty, &to, NULL), REEL_OK);
    res[t][0] = kr_download(b, &to);
    assert_int_equal(reel_op_mul(b, &tx, &ty, &to, NULL), REEL_OK);
    res[t][1] = kr_download(b, &to);
    assert_int_equal(reel_op_gelu_tanh(b, &tx, &to, NULL), REEL_OK);
    res[t][2] = kr_download(b, &to);
    assert_int_equal(reel_op_softmax(b, &tx, &to, NULL), REEL_OK);
    res[t][3] = kr_download(b, &to);
    assert_int_equal(reel_op_layer_norm(b, &tx, &tw, &ty, 1e-6f, &to, NULL), REEL_OK);
    res[t][4] = kr_download(b, &to);
    assert_int_equal(reel_op_rms_norm(b, &tx, &tw, 1e-6f, &to, NULL), REEL_OK);
    res[t][5] = kr_download(b, &to);
    reel_tensor_free(&tx);
    reel_tensor_free(&ty);
    reel_tensor_free(&tw);
    reel_tensor_free(&to);
    reel_backend_destroy(&b);
  }
  for (int k = 0; k < 6; k++) {
    assert_memory_equal(res[0][k], res[1][k], (size_t)(R * D) * 4);
    free(res[0][k]);
    free(res[1][k]);
  }
  free(x);
  free(y);
  free(w);
}

static void test_copy_convert(void **state) {
  (void)state;
  reel_backend *b = cpu(2);
  reel_error err;
  reel_error_clear(&err);
  float x[2 * 3 * 4];
  kr_fill(x, 24, 61, -100, 100);
  int64_t s[3] = {2, 3, 4}, sp[3] = {4, 2, 3};
  reel_tensor tx = kr_tensor(b, REEL_F32, 3, s, x), xv, to;
  int perm[3] = {2, 0, 1};
  assert_int_equal(reel_tensor_permute(&tx, perm, &xv, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_BF16, 3, sp, &to, NULL), REEL_OK);
  assert_int_equal(reel_op_copy(b, &xv, &to, &err), REEL_OK);
  assert_true(reel_tensor_is_contiguous(&to));
  uint16_t raw[24];
  assert_int_equal(reel_tensor_download(&to, raw, sizeof raw, &err), REEL_OK);
  float xl[24];
  kr_gather(&xv, x, xl);
  for (int i = 0; i < 24; i++) assert_int_equal(raw[i], reel_f32_to_bf16(xl[i]));
  /* Mismatched shapes name the operand. */
  reel_tensor bad;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 3, s, &bad, NULL), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_copy(b, &xv, &bad, &err), REEL_EINVAL);
  assert_string_equal(err.field, "copy.out");
  reel_tensor_free(&bad);
  reel_tensor_free(&tx);
  reel_tensor_free(&to);
  reel_backend_destroy(&b);
}

static void test_op_errors(void **state) {
  (void)state;
  reel_backend *b = cpu(1);
  reel_error err;
  int64_t s[2] = {3, 5}, s4[1] = {4}, s3[2] = {3, 4};
  reel_tensor x, y, o, w4, i8, o34;
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, s, &x, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 1, s4, &y, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, s, &o, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 1, s4, &w4, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_I8, 2, s, &i8, NULL), REEL_OK);
  assert_int_equal(reel_tensor_new(b, REEL_F32, 2, s3, &o34, NULL), REEL_OK);
  reel_error_clear(&err);
  assert_int_equal(reel_op_add(b, &x, &y, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "add.y");
  reel_error_clear(&err);
  assert_int_equal(reel_op_mul(b, &x, &x, &o34, &err), REEL_EINVAL);
  assert_string_equal(err.field, "mul.out");
  reel_error_clear(&err);
  assert_int_equal(reel_op_add(b, &i8, &x, &o, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "add.x");
  assert_non_null(strstr(err.msg, "i8"));
  reel_error_clear(&err);
  assert_int_equal(reel_op_silu(b, &x, &o34, &err), REEL_EINVAL);
  assert_string_equal(err.field, "silu.out");
  reel_error_clear(&err);
  assert_int_equal(reel_op_gelu_tanh(b, &i8, &o, &err), REEL_EUNSUPPORTED);
  assert_string_equal(err.field, "gelu_tanh.x");
  reel_error_clear(&err);
  assert_int_equal(reel_op_layer_norm(b, &x, &w4, NULL, 1e-5f, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "layer_norm.weight");
  reel_error_clear(&err);
  assert_int_equal(reel_op_layer_norm(b, &x, NULL, &w4, 1e-5f, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "layer_norm.bias");
  reel_error_clear(&err);
  assert_int_equal(reel_op_layer_norm(b, &x, NULL, NULL, -1.0f, &o, &err), REEL_ERANGE);
  assert_string_equal(err.field, "layer_norm.eps");
  reel_error_clear(&err);
  assert_int_equal(reel_op_rms_norm(b, &x, &w4, 1e-5f, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "rms_norm.weight");
  reel_error_clear(&err);
  assert_int_equal(reel_op_rms_norm(b, &x, NULL, NAN, &o, &err), REEL_ERANGE);
  reel_error_clear(&err);
  assert_int_equal(reel_op_softmax(b, &x, &o34, &err), REEL_EINVAL);
  assert_string_equal(err.field, "softmax.out");
  reel_error_clear(&err);
  assert_int_equal(reel_op_softmax(b, NULL, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "softmax.x");
  reel_error_clear(&err);
  assert_int_equal(reel_op_softmax(NULL, &x, &o, &err), REEL_EINVAL);
  reel_tensor nobuf = x;
  nobuf.buf = NULL;
  reel_error_clear(&err);
  assert_int_equal(reel_op_silu(b, &nobuf, &o, &err), REEL_EINVAL);
  assert_string_equal(err.field, "silu.x");
  reel_tensor_free(&x);
  reel_tensor_free(&y);
  reel_tensor_free(&o);
  reel_tensor_free(&w4);
  reel_tensor_free(&i8);
  reel_tensor_free(&o34);
  reel_backend_destroy(&b);
}

/* Allocation failures anywhere in backend creation, buffer allocation and op scratch fail cleanly. */
static void test_alloc_failures(void **state) {
  (void)state;
  int64_t sx[2] = {40, 300}, sw[2] = {50, 300}, so[2] = {40, 50};
  for (long n = 0; n < 40; n++) {
    reel_error err;
    reel_error_clear(&err);
    reel_alloc_fail_after(n, 0);
    reel_backend *b = reel_backend_new_cpu(2, &err);
    reel_tensor x = {0}, w = {0}, o = {0};
    reel_status st = b ? REEL_OK : err.code;
    if (st == REEL_OK) st = reel_tensor_new(b, REEL_F32, 2, sx, &x, &err);
    if (st == REEL_OK) st = reel_tensor_new(b, REEL_BF16, 2, sw, &w, &err);
    if (st == REEL_OK) st = reel_tensor_new(b, REEL_F32, 2, so, &o, &err);
    if (st == REEL_OK) st = reel_op_matmul(b, &x, &w, NULL, &o, &err);
    if (st == REEL_OK) st = reel_op_softmax(b, &o, &o, &err);
    long failures = reel_alloc_failures();
    reel_alloc_fail_after(-1, 0);
    if (failures > 0) assert_int_equal(st, REEL_ENOMEM);
    else assert_int_equal(st, REEL_OK);
    reel_tensor_free(&x);
    reel_tensor_free(&w);
    reel_tensor_free(&o);
    reel_backend_destroy(&b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_backend_basics),
      cmocka_unit_test(test_buffers),
      cmocka_unit_test(test_tensor_arena),
      cmocka_unit_test(test_matmul_paths),
      cmocka_unit_test(test_matmul_strided_rows),
      cmocka_unit_test(test_matmul_thread_invariance),
      cmocka_unit_test(test_matmul_batched),
      cmocka_unit_test(test_matmul_errors),
      cmocka_unit_test(test_binary_broadcast),
      cmocka_unit_test(test_binary_strided_inplace),
      cmocka_unit_test(test_unary),
      cmocka_unit_test(test_row_ops),
      cmocka_unit_test(test_row_ops_inplace),
      cmocka_unit_test(test_thread_invariance),
      cmocka_unit_test(test_copy_convert),
      cmocka_unit_test(test_op_errors),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
