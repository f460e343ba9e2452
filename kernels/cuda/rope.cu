/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CUDA rotary position embedding (reel_op_rope): one thread per (batch, token,
 * head, pair), reading the pair, rotating it with the token's cos/sin and
 * writing it back, so in-place use is safe. The products and the difference are
 * rounded separately (__fmul_rn / __fadd_rn forbid fused multiply-adds), as the
 * CPU op rounds them, so both backends give the same bits for f32.
 */
#include "common.cuh"

__global__ void rope_kernel(const void *x, int xdt, void *out, int odt, const float *cs, const float *sn, int64_t B,
                            int64_t T, int64_t H, int64_t half, int64_t xs0, int64_t xs1, int64_t xs2, int64_t os0,
                            int64_t os1, int64_t os2) {
  const int64_t n = B * T * H * half;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    int64_t p = i % half, r = i / half;
    int64_t h = r % H;
    r /= H;
    int64_t t = r % T, bi = r / T;
    int64_t xo = bi * xs0 + t * xs1 + h * xs2 + 2 * p, oo = bi * os0 + t * os1 + h * os2 + 2 * p;
    float x0 = reel__ld(x, xdt, xo), x1 = reel__ld(x, xdt, xo + 1);
    float c = cs[t * half + p], s = sn[t * half + p];
    float o0 = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
    float o1 = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
    reel__st(out, odt, oo, o0);
    reel__st(out, odt, oo + 1, o1);
  }
}

extern "C" reel_status reel__cuda_rope(reel_backend *b, const reel_tensor *x, const reel_tensor *cos_t,
                                       const reel_tensor *sin_t, reel_tensor *out, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  const int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], half = x->shape[3] / 2;
  const int64_t n = B * T * H * half;
  rope_kernel<<<reel__cuda_blocks(n), 256, 0, reel__cuda_of(b)->stream>>>(
      reel__tensor_data(x), x->dtype, reel__tensor_data(out), out->dtype, (const float *)reel__tensor_data(cos_t),
      (const float *)reel__tensor_data(sin_t), B, T, H, half, x->stride[0], x->stride[1], x->stride[2], out->stride[0],
      out->stride[1], out->stride[2]);
  REEL_CUDA_CHECK_LAUNCH();
  reel__backend_set_path(b, "cuda-rope");
  return REEL_OK;
}
