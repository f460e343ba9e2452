/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CUDA linear combinations for the samplers (reel_op_lincomb): out = sum_k c_k x_k
 * over contiguous f32 vectors, accumulated in double in the order k = 0..n-1 with
 * each product and sum rounded on its own (__dmul_rn / __dadd_rn), then rounded
 * once to f32: the same bits as the CPU op and the host scheduler, so a sampler's
 * trajectory does not depend on where its vectors live. Each thread reads all
 * inputs of its element before writing it, so out may alias any x[k].
 */
#include "common.cuh"

typedef struct lincomb_args {
  int n;
  double coef[REEL_LINCOMB_MAX];
  const float *x[REEL_LINCOMB_MAX];
} lincomb_args;

__global__ void lincomb_kernel(lincomb_args a, float *out, int64_t numel) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < numel; i += (int64_t)gridDim.x * blockDim.x) {
    double acc = 0.0;
    for (int k = 0; k < a.n; k++) acc = __dadd_rn(acc, __dmul_rn(a.coef[k], (double)a.x[k][i]));
    out[i] = __double2float_rn(acc);
  }
}

extern "C" reel_status reel__cuda_lincomb(reel_backend *b, int n, const double *coef, const reel_tensor *const *x,
                                          reel_tensor *out, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  lincomb_args a;
  memset(&a, 0, sizeof a);
  a.n = n;
  for (int k = 0; k < n; k++) {
    a.coef[k] = coef[k];
    a.x[k] = (const float *)reel__tensor_data(x[k]);
  }
  int64_t numel = reel_tensor_numel(out);
  lincomb_kernel<<<reel__cuda_blocks(numel), 256, 0, reel__cuda_of(b)->stream>>>(a, (float *)reel__tensor_data(out),
                                                                                 numel);
  REEL_CUDA_CHECK_LAUNCH();
  reel__backend_set_path(b, "cuda-lincomb");
  return REEL_OK;
}
