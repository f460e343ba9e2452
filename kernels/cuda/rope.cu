/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CUDA rotary position embedding (reel_op_rope): each thread reads one pair,
 * rotates it with the token's cos/sin and writes it back, so in-place use is safe. The products and the difference are
 * rounded separately (__fmul_rn / __fadd_rn forbid fused multiply-adds), as the
 * CPU op rounds them, so both backends give the same bits for f32.
 */
#include "common.cuh"

/*
 * One block row per (batch, token): the row's one division happens once, and the
 * threads walk its heads x pairs with 32-bit arithmetic (H * D/2 is far below 2^31).
 */
__global__ void rope_kernel(const void *x, int xdt, void *out, int odt, const float *cs, const float *sn, int64_t rows,
                            int64_t T, unsigned H, unsigned half, int64_t xs0, int64_t xs1, int64_t xs2, int64_t os0,
                            int64_t os1, int64_t os2) {
  const unsigned per_row = H * half;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t t = r % T, bi = r / T;
    const int64_t xrow = bi * xs0 + t * xs1, orow = bi * os0 + t * os1;
    const float *ct = cs + t * half, *st = sn + t * half;
    for (unsigned j = threadIdx.x; j < per_row; j += blockDim.x) {
      const unsigned h = j / half, p = j - h * half;
      const int64_t xo = xrow + h * xs2 + 2 * p, oo = orow + h * os2 + 2 * p;
      float x0 = reel__ld(x, xdt, xo), x1 = reel__ld(x, xdt, xo + 1);
      float c = ct[p], s = st[p];
      float o0 = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
      float o1 = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
      reel__st(out, odt, oo, o0);
      reel__st(out, odt, oo + 1, o1);
    }
  }
}

extern "C" reel_status reel__cuda_rope(reel_backend *b, const reel_tensor *x, const reel_tensor *cos_t,
                                       const reel_tensor *sin_t, reel_tensor *out, reel_error *err) {
  REEL_CUDA_CHECK(reel__cuda_use(b));
  const int64_t B = x->shape[0], T = x->shape[1], H = x->shape[2], half = x->shape[3] / 2;
  if (H * half > 0x7fffffff) return reel_error_set(err, REEL_ERANGE, "rope.x", "heads x D/2 must stay below 2^31");
  const int64_t rows = B * T;
  int threads = 32;
  while (threads < 256 && threads < H * half) threads *= 2;
  const unsigned grid = (unsigned)(rows < 65535 * 32 ? rows : 65535 * 32);
  rope_kernel<<<grid, threads, 0, reel__cuda_of(b)->stream>>>(
      reel__tensor_data(x), x->dtype, reel__tensor_data(out), out->dtype, (const float *)reel__tensor_data(cos_t),
      (const float *)reel__tensor_data(sin_t), rows, T, (unsigned)H, (unsigned)half, x->stride[0], x->stride[1],
      x->stride[2], out->stride[0], out->stride[1], out->stride[2]);
  REEL_CUDA_CHECK_LAUNCH();
  reel__backend_set_path(b, "cuda-rope");
  return REEL_OK;
}
