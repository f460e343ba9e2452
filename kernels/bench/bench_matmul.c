/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Matmul benchmark (not a test): GFLOP/s of every CPU GEMM path this machine and
 * build have, side by side in one run, at 2048^3 and at Wan2.1-1.3B linear-layer
 * shapes (M tokens x K -> N: 4096x1536 -> 1536 and -> 8960), with f32 and bf16
 * weights. Prints the path that actually ran (reel_backend_last_path) and the
 * median of several runs; ratios against the first path are what to compare,
 * absolute figures drift on shared machines. The measuring is reel/opbench.h's,
 * shared with `reel bench ops`.
 *
 *   reel_bench_matmul [--threads N] [--reps R] [--shape MxKxN]... [--paths a,b,...] [--dtype f32|bf16|f16|all]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reel/backend.h"
#include "reel/opbench.h"

#define MAX_SHAPES 16

static int run_shape(reel_backend *b, int64_t M, int64_t K, int64_t N, reel_dtype wdt, const char *paths, int reps) {
  double first = 0;
  char list[256];
  snprintf(list, sizeof list, "%s", paths);
  for (char *save = NULL, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
    if (reel_backend_set_option(b, "matmul", p, NULL) != REEL_OK) {
      printf("  %-6lldx%-6lld->%-6lld w=%-4s %-10s %-22s unavailable\n", (long long)M, (long long)K, (long long)N,
             reel_dtype_name(wdt), p, "-");
      continue;
    }
    reel_error err;
    reel_error_clear(&err);
    reel_opbench_result r;
    if (reel_opbench_matmul(b, M, K, N, wdt, reps, &r, &err) != REEL_OK) {
      fprintf(stderr, "matmul failed: %s: %s\n", err.field, err.msg);
      return 1;
    }
    if (first == 0) first = r.gflops;
    printf("  %-6lldx%-6lld->%-6lld w=%-4s %-10s %-22s %8.1f GFLOP/s  %6.3f s  x%.2f\n", (long long)M, (long long)K,
           (long long)N, reel_dtype_name(wdt), p, r.path, r.gflops, r.seconds_median, r.gflops / first);
    fflush(stdout);
  }
  reel_backend_set_option(b, "matmul", "auto", NULL);
  return 0;
}

int main(int argc, char **argv) {
  int threads = 0, reps = 3, nshapes = 0;
  int64_t shapes[MAX_SHAPES][3];
  const char *paths = "avx512,avx2,openblas,portable", *dtype = "all";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--paths") && i + 1 < argc)
      paths = argv[++i];
    else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
      dtype = argv[++i];
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
      fprintf(stderr,
              "usage: %s [--threads N] [--reps R] [--shape MxKxN]... [--paths a,b] [--dtype f32|bf16|f16|all]\n",
              argv[0]);
      return 2;
    }
  }
  if (reps < 1 || reps > REEL_OPBENCH_MAX_REPS) reps = 3;
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
