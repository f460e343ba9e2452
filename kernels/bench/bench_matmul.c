/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Matmul benchmark (not a test): GFLOP/s of every CPU GEMM path this machine and
 * build have, side by side in one run, at 2048^3 and at Wan2.1-1.3B linear-layer
 * shapes (M tokens x K -> N: 4096x1536 -> 1536 and -> 8960), with f32 and bf16
 * weights. Prints the path that actually ran (reel_backend_last_path) and the
 * median of several runs; ratios against the first path are what to compare,
 * absolute figures drift on shared machines.
 *
 *   reel_bench_matmul [--threads N] [--reps R] [--shape MxKxN]... [--paths a,b,...] [--dtype f32|bf16|f16|all]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/backend.h"
#include "reel/clock.h"

#define MAX_SHAPES 16

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void fill(float *x, size_t n, uint32_t seed) {
  uint32_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)((s >> 8) * 0x1p-24) - 0.5f;
  }
}

static int run_shape(reel_backend *b, int64_t M, int64_t K, int64_t N, reel_dtype wdt, const char *paths, int reps) {
  reel_error err;
  reel_error_clear(&err);
  int64_t sx[2] = {M, K}, sw[2] = {N, K}, so[2] = {M, N};
  reel_tensor x, w, o;
  if (reel_tensor_new(b, REEL_F32, 2, sx, &x, &err) || reel_tensor_new(b, wdt, 2, sw, &w, &err) ||
      reel_tensor_new(b, REEL_F32, 2, so, &o, &err)) {
    fprintf(stderr, "allocation failed: %s\n", err.msg);
    return 1;
  }
  float *hx = malloc((size_t)(M * K) * 4), *hw = malloc((size_t)(N * K) * 4);
  void *hwc = malloc((size_t)(N * K) * 4);
  fill(hx, (size_t)(M * K), 1);
  fill(hw, (size_t)(N * K), 2);
  reel_convert(REEL_F32, hw, wdt, hwc, (size_t)(N * K));
  reel_tensor_upload(&x, hx, reel_tensor_nbytes(&x), NULL);
  reel_tensor_upload(&w, hwc, reel_tensor_nbytes(&w), NULL);
  double flop = 2.0 * (double)M * (double)N * (double)K, first = 0;
  char list[256];
  snprintf(list, sizeof list, "%s", paths);
  for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    if (reel_backend_set_option(b, "matmul", p, NULL) != REEL_OK) {
      printf("  %-6lldx%-6lld->%-6lld w=%-4s %-10s %-22s unavailable\n", (long long)M, (long long)K, (long long)N,
             reel_dtype_name(wdt), p, "-");
      continue;
    }
    double t[32];
    if (reel_op_matmul(b, &x, &w, NULL, &o, &err) != REEL_OK) { /* warm-up: scratch, pages, caches */
      fprintf(stderr, "matmul failed: %s\n", err.msg);
      return 1;
    }
    for (int r = 0; r < reps; r++) {
      int64_t t0 = reel_now_ns();
      reel_op_matmul(b, &x, &w, NULL, &o, NULL);
      t[r] = (double)(reel_now_ns() - t0) * 1e-9;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    double gf = flop / t[reps / 2] * 1e-9;
    if (first == 0) first = gf;
    printf("  %-6lldx%-6lld->%-6lld w=%-4s %-10s %-22s %8.1f GFLOP/s  %6.3f s  x%.2f\n", (long long)M, (long long)K,
           (long long)N, reel_dtype_name(wdt), p, reel_backend_last_path(b), gf, t[reps / 2], gf / first);
    fflush(stdout);
  }
  reel_backend_set_option(b, "matmul", "auto", NULL);
  free(hx);
  free(hw);
  free(hwc);
  reel_tensor_free(&x);
  reel_tensor_free(&w);
  reel_tensor_free(&o);
  return 0;
}

int main(int argc, char **argv) {
  int threads = 0, reps = 3, nshapes = 0;
  int64_t shapes[MAX_SHAPES][3];
  const char *paths = "avx512,avx2,openblas,portable", *dtype = "all";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--paths") && i + 1 < argc) paths = argv[++i];
    else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dtype = argv[++i];
    else if (!strcmp(argv[i], "--shape") && i + 1 < argc && nshapes < MAX_SHAPES) {
      long long m, k, n;
      if (sscanf(argv[++i], "%lldx%lldx%lld", &m, &k, &n) != 3 || m < 1 || k < 1 || n < 1) {
        fprintf(stderr, "--shape wants MxKxN with positive sizes, got %s\n", argv[i]);
        return 2;
      }
      shapes[nshapes][0] = m;
      shapes[nshapes][1] = k;
      shapes[nshapes][2] = n;
      nshapes++;
    } else {
      fprintf(stderr, "usage: %s [--threads N] [--reps R] [--shape MxKxN]... [--paths a,b] [--dtype f32|bf16|f16|all]\n",
              argv[0]);
      return 2;
    }
  }
  if (reps < 1 || reps > 32) reps = 3;
  if (nshapes == 0) {
    static const int64_t def[3][3] = {{2048, 2048, 2048}, {4096, 1536, 1536}, {4096, 1536, 8960}};
    memcpy(shapes, def, sizeof def);
    nshapes = 3;
  }
  reel_error err;
  reel_error_clear(&err);
  reel_backend *b = reel_backend_new_cpu(threads, &err);
  if (!b) {
    fprintf(stderr, "cpu backend: %s\n", err.msg);
    return 1;
  }
  const char *env = getenv("OPENBLAS_CORETYPE");
  printf("reel_bench_matmul: threads=%d reps=%d (median) OPENBLAS_CORETYPE=%s\n", reel_backend_threads(b), reps,
         env ? env : "(unset)");
  printf("  %-24s %-6s %-10s %-22s %s\n", "M x K -> N", "w", "asked", "ran", "GFLOP/s (ratio to first path)");
  for (int s = 0; s < nshapes; s++) {
    const reel_dtype dts[3] = {REEL_F32, REEL_BF16, REEL_F16};
    for (int d = 0; d < 3; d++) {
      if (strcmp(dtype, "all") ? strcmp(dtype, reel_dtype_name(dts[d])) != 0 : d == 2) continue;
      if (run_shape(b, shapes[s][0], shapes[s][1], shapes[s][2], dts[d], paths, reps)) return 1;
    }
  }
  reel_backend_destroy(&b);
  return 0;
}
